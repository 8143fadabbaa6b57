//! `aviso demo`: the main job on embedded defaults. A workspace with SQLite and
//! file transports, the bundled sample of the registry and the OSC directory,
//! the programme's activities, campaigns run to completion, and the indicators.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Args;
use tokio::sync::watch;

use super::{print, thousands, Context};
use crate::campaigns::manage::{self, CampaignRequest};
use crate::campaigns::{ActivitySplit, CampaignSchedule, NewActivity};
use crate::clock::{Clock, ManualClock};
use crate::config::{Config, DEFAULT_DATABASE_URL, DEFAULT_FROM, DEFAULT_ZONE};
use crate::contacts::{import_file, ImportOptions, Segment};
use crate::domain::{ChannelKind, SuppressionReason, SuppressionScope};
use crate::schedule::parse_at;
use crate::settings::{Env, Overrides, Settings};
use crate::store::Suppression;
use crate::templates::LangMode;

const CONTACTS: &str = include_str!("demo/contactos.csv");
const ORGANIZATIONS: &str = include_str!("demo/osc.csv");
/// Marks a directory as a demo workspace, so a second `aviso demo` may replace it.
const MARKER: &str = ".aviso-demo";

/// The workspace's aviso.toml.
fn config() -> String {
    format!(
        r#"# aviso demo workspace: an embedded SQLite database and file transports.
# Nothing leaves this machine: e-mails are written to outbox/email as .eml files,
# SMS to outbox/sms/sms.jsonl. Try:
#   aviso --config aviso-demo/aviso.toml campaign status
#   aviso --config aviso-demo/aviso.toml contacts count --segment 'entity=OAX channel=sms'
database_url = "{DEFAULT_DATABASE_URL}"

[email]
from = "{DEFAULT_FROM}"
provider = "file://outbox/email"

[sms]
provider = "file://outbox/sms"

# What a message costs (sample prices): per SMS segment and per e-mail, by
# destination country. A country with no price (and no default) shows as
# "no price" in `campaign estimate` and the indicators, never as free.
[prices]
currency = "MXN"

[prices.sms]
US = 0.16
CA = 0.18
MX = 0.35
ES = 0.95
DE = 1.40
FR = 1.20
GB = 0.85

[prices.email]
default = 0.0
"#
    )
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to create the demo workspace (replaced if it holds an earlier demo)
    #[arg(long, default_value = "aviso-demo")]
    pub dir: PathBuf,
}

pub(super) async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = prepare_dir(&args.dir)?;
    let config_path = dir.join("aviso.toml");
    std::fs::write(&config_path, config())
        .with_context(|| format!("{}: cannot write", config_path.display()))?;
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    std::fs::write(data.join("contactos.csv"), CONTACTS)?;
    std::fs::write(data.join("osc.csv"), ORGANIZATIONS)?;

    let config = Config::load(Some(&config_path))?;
    // The demo's database is its workspace's, whatever AVISO_DATABASE_URL says.
    let overrides = Overrides {
        database_url: config.database_url(),
        ..Overrides::default()
    };
    let mut settings = Settings::resolve(config, Env::process(), overrides)?;
    // Its templates are the built-in ones, whatever ./templates holds.
    settings.templates_dir = None;
    // The demo replays the autumn of 2021 on a clock it moves itself.
    let clock = ManualClock::at(parse_at("2021-08-30 09:00", DEFAULT_ZONE)?.timestamp_millis());
    let ctx = Context {
        settings,
        clock: clock.clone(),
    };
    let store = ctx.store().await?;
    let now = ctx.now_ms();
    print(&format!("aviso demo in {}", dir.display()));

    print("\n1. Contacts");
    for (file, list) in [("contactos.csv", "ciudadania"), ("osc.csv", "osc")] {
        let options = ImportOptions {
            list: list.into(),
            rejects: Some(data.join(format!("{list}.rejects.csv"))),
            dry_run: false,
            encoding: None,
            progress: false,
        };
        let s = import_file(store.as_ref(), &data.join(file), &options, now).await?;
        let reasons = match s.rejected {
            0 => String::new(),
            _ => format!(" (line and reason in data/{list}.rejects.csv)"),
        };
        print(&format!(
            "   {file}: {} rows read, {} imported, {} rejected{reasons}",
            thousands(s.read as i64),
            thousands(s.imported as i64),
            thousands(s.rejected as i64)
        ));
    }
    // A citizen who asked not to be written to again: every run honours it.
    store
        .add_suppressions(&[Suppression {
            address: "+17735550126".into(),
            scope: SuppressionScope::All,
            reason: SuppressionReason::OptOut,
            source: "demo".into(),
            created_at: now,
        }])
        .await?;

    print("\n2. Activities of the work programme");
    let citizens = store.list_id("ciudadania").await?.unwrap_or_default();
    let cpve = |channel: &str| Segment::parse(&format!("credential=CPVE channel={channel}"));
    let sms_audience = store
        .count_contacts(Some(citizens), &cpve("sms")?)
        .await?
        .total;
    let mail_audience = store
        .count_contacts(Some(citizens), &cpve("email")?)
        .await?
        .total;
    let registration = Some(("2021-09-01", "2022-03-10"));
    let activities = [
        (
            "SMS-REG",
            "Envío de mensajes SMS a ciudadanía con CPVE (2 envíos)",
            Some(ChannelKind::Sms),
            2 * sms_audience,
            registration,
            ActivitySplit::Whole,
        ),
        (
            "MAIL-REG",
            "Envío de correos electrónicos a ciudadanía con CPVE (2 envíos)",
            Some(ChannelKind::Email),
            2 * mail_audience,
            registration,
            ActivitySplit::Whole,
        ),
        (
            "CARPETA",
            "Carpeta informativa digital mensual a OSC (sep–dic 2021)",
            Some(ChannelKind::Email),
            4 * 170,
            Some(("2021-09-01", "2021-12-31")),
            ActivitySplit::Monthly,
        ),
        (
            "LLAMADAS",
            "Intentos de llamada a ciudadanía (INETEL)",
            None,
            95_000,
            registration,
            ActivitySplit::Monthly,
        ),
        (
            "TALLERES",
            "Talleres de registro con OSC",
            None,
            2,
            registration,
            ActivitySplit::Whole,
        ),
        (
            "EVENTOS",
            "Eventos virtuales",
            None,
            2,
            registration,
            ActivitySplit::Whole,
        ),
    ];
    for (code, name, channel, programmed, period, split) in activities {
        let activity = NewActivity {
            code: code.into(),
            name: name.into(),
            channel,
            programmed,
            period_from: period.map(|p: (&str, &str)| p.0.to_string()),
            period_to: period.map(|p| p.1.to_string()),
            split,
        };
        manage::create_activity(store.as_ref(), activity, clock.now_ms()).await?;
        print(&format!(
            "   {code:<9} programmed {:>7}  {name}",
            thousands(programmed)
        ));
    }

    print("\n3. Campaigns, scheduled as staff would schedule them");
    let renderer = ctx.renderer()?;
    let zone = ctx.settings.zone;
    let at = |local: &str| -> anyhow::Result<i64> { Ok(parse_at(local, zone)?.timestamp_millis()) };
    let monthly = CampaignSchedule {
        recurrence: Some(crate::schedule::Monthly::new(1, "10:00")?),
        recur_until: Some(at("2021-12-31 23:59")?),
        ..CampaignSchedule::default()
    };
    let once = |when: &str| -> anyhow::Result<CampaignSchedule> {
        Ok(CampaignSchedule {
            start_at: Some(at(when)?),
            ..CampaignSchedule::default()
        })
    };
    let campaigns = [
        (
            "SMS-REG",
            "registro_abierto",
            ChannelKind::Sms,
            "ciudadania",
            once("2021-09-01 10:00")?,
        ),
        (
            "MAIL-REG",
            "registro_abierto",
            ChannelKind::Email,
            "ciudadania",
            once("2021-09-01 10:00")?,
        ),
        (
            "CARPETA",
            "carpeta_mensual",
            ChannelKind::Email,
            "osc",
            monthly,
        ),
        (
            "SMS-REG",
            "recordatorio_voto",
            ChannelKind::Sms,
            "ciudadania",
            once("2021-11-15 10:00")?,
        ),
        (
            "MAIL-REG",
            "recordatorio_voto",
            ChannelKind::Email,
            "ciudadania",
            once("2021-11-15 10:00")?,
        ),
    ];
    let mut ids = Vec::new();
    for (activity, template, channel, list, schedule) in campaigns {
        let organizations = list == "osc";
        let vars = match template {
            "carpeta_mensual" => renderer
                .sample_vars(template)?
                .as_object()
                .cloned()
                .unwrap_or_default(),
            _ => serde_json::Map::new(),
        };
        let when = match (schedule.start_at, &schedule.recurrence) {
            (Some(ms), _) => crate::report::local_time(ms, zone),
            _ => "the 1st of every month, 10:00, until December".into(),
        };
        let request = CampaignRequest {
            activity: activity.into(),
            template: template.into(),
            channel: Some(channel),
            list: list.into(),
            segment: if organizations {
                String::new()
            } else {
                "credential=CPVE".into()
            },
            lang: organizations.then_some(LangMode::Both),
            vars,
            attachment_limit: ctx.settings.email.attachment_limit,
            schedule,
            ..CampaignRequest::default()
        };
        let id =
            manage::create_campaign(store.as_ref(), &renderer, request, clock.now_ms()).await?;
        print(&format!(
            "   #{id} {template} by {channel} to {list}: {when}"
        ));
        ids.push(id);
    }
    // Work the programme counts but aviso does not send: the call centre's
    // attempts and the events held, as staff record them (sample figures).
    for (code, done, date) in [
        ("LLAMADAS", 12_410, "2021-09-30"),
        ("LLAMADAS", 14_105, "2021-10-31"),
        ("LLAMADAS", 13_870, "2021-11-30"),
        ("TALLERES", 2, "2021-11-20"),
        ("EVENTOS", 1, "2021-10-28"),
    ] {
        if let Some(activity) = store.activity(code).await? {
            store
                .record_activity(activity.id, done, date, Some("demo"), clock.now_ms())
                .await?;
        }
    }

    print("\n4. The worker through the autumn of 2021 (simulated dates, file transports)");
    let started = std::time::Instant::now();
    let dispatcher = ctx.dispatcher(store.clone()).await?;
    let (_keep, shutdown) = watch::channel(false);
    for day in [
        "2021-09-01",
        "2021-10-01",
        "2021-11-01",
        "2021-11-15",
        "2021-12-01",
    ] {
        clock.set(at(&format!("{day} 10:05"))?);
        let report = dispatcher.run(true, shutdown.clone()).await?;
        print(&format!(
            "   {day}: {:>6} messages sent, {} failed",
            thousands(report.sent as i64),
            thousands(report.failed as i64)
        ));
    }
    print(&format!(
        "   ({:.1} s of real time)",
        started.elapsed().as_secs_f64()
    ));

    print("\n5. Campaign status");
    for id in &ids {
        let s = manage::status_of(store.as_ref(), *id, zone, clock.now_ms()).await?;
        print(&format!(
            "   #{} {:<36} {:<9} runs {} total {:>6}: sent {:>6}, suppressed {:>3}, failed {:>3}",
            s.id,
            s.name,
            s.state,
            s.runs,
            thousands(s.total),
            thousands(s.counts.sent + s.counts.delivered),
            thousands(s.counts.suppressed),
            thousands(s.counts.failed)
        ));
    }

    print("\n6. Indicators (sent / programmed × 100)");
    let report = crate::report::indicators(
        store.as_ref(),
        &[crate::report::GroupKey::Activity],
        None,
        None,
        zone,
        ctx.settings.prices.as_deref(),
    )
    .await?;
    print(&crate::report::to_table(
        &report,
        crate::domain::Language::Es,
    ));
    print(
        "\n   By month: aviso --config aviso-demo/aviso.toml report indicators --by activity,month",
    );
    print(&format!(
        "\nThe workspace stays for inspection: e-mails in {0}/outbox/email, SMS in {0}/outbox/sms,\n\
         and every command works on it, e.g. `aviso --config {0}/aviso.toml campaign status --json`.",
        args.dir.display()
    ));
    Ok(ExitCode::SUCCESS)
}

/// Creates the workspace directory, replacing an earlier demo but nothing else.
fn prepare_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    if dir.exists() {
        let is_demo = dir.join(MARKER).exists();
        let empty = std::fs::read_dir(dir)?.next().is_none();
        if !is_demo && !empty {
            bail!(
                "{} exists and is not an earlier demo: choose another place with --dir",
                dir.display()
            );
        }
        if is_demo {
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("{}: cannot replace the earlier demo", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "created by `aviso demo`; a new demo replaces this directory\n",
    )?;
    Ok(std::fs::canonicalize(dir)?)
}
