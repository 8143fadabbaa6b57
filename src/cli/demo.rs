//! `aviso demo`: the main job on embedded defaults. A workspace with SQLite and
//! file transports, the bundled sample of the registry and the OSC directory,
//! the programme's activities, campaigns run to completion, and the indicators.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::Args;
use tokio::sync::watch;

use super::{print, thousands, Context};
use crate::campaigns::manage::{self, CampaignRequest};
use crate::campaigns::NewActivity;
use crate::config::Config;
use crate::contacts::{import_file, ImportOptions, Segment};
use crate::dispatch::DispatchOptions;
use crate::domain::{ChannelKind, SuppressionReason, SuppressionScope};
use crate::store::Suppression;
use crate::templates::LangMode;

const CONTACTS: &str = include_str!("demo/contactos.csv");
const ORGANIZATIONS: &str = include_str!("demo/osc.csv");
/// Marks a directory as a demo workspace, so a second `aviso demo` may replace it.
const MARKER: &str = ".aviso-demo";

const CONFIG: &str = r#"# aviso demo workspace: an embedded SQLite database and file transports.
# Nothing leaves this machine: e-mails are written to outbox/email as .eml files,
# SMS to outbox/sms/sms.jsonl. Try:
#   aviso --config aviso-demo/aviso.toml campaign status
#   aviso --config aviso-demo/aviso.toml contacts count --segment 'entity=OAX channel=sms'
database_url = "sqlite://aviso.db"

[email]
from = "Voto desde el Extranjero <avisos@votoextranjero.example>"
provider = "file://outbox/email"

[sms]
provider = "file://outbox/sms"
"#;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to create the demo workspace (replaced if it holds an earlier demo)
    #[arg(long, default_value = "aviso-demo")]
    pub dir: PathBuf,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = prepare_dir(&args.dir)?;
    let config_path = dir.join("aviso.toml");
    std::fs::write(&config_path, CONFIG)
        .with_context(|| format!("{}: cannot write", config_path.display()))?;
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    std::fs::write(data.join("contactos.csv"), CONTACTS)?;
    std::fs::write(data.join("osc.csv"), ORGANIZATIONS)?;

    let config = Config::load(Some(&config_path))?;
    let ctx = Context {
        database_url: config.database_url(None),
        templates_dir: None,
        config,
        clock: Arc::new(crate::clock::SystemClock),
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
    let activities = [
        (
            "SMS-REG",
            "Envío de mensajes SMS a ciudadanía con CPVE (2 envíos)",
            Some("sms"),
            2 * sms_audience,
            None,
        ),
        (
            "MAIL-REG",
            "Envío de correos electrónicos a ciudadanía con CPVE (2 envíos)",
            Some("email"),
            2 * mail_audience,
            None,
        ),
        (
            "CARPETA",
            "Carpeta informativa digital mensual a OSC (sep–dic 2021)",
            Some("email"),
            4 * 170,
            Some(("2021-09-01", "2021-12-31")),
        ),
        (
            "LLAMADAS",
            "Intentos de llamada a ciudadanía (INETEL)",
            None,
            95_000,
            Some(("2021-09-01", "2022-03-10")),
        ),
        ("TALLERES", "Talleres de registro con OSC", None, 2, None),
        ("EVENTOS", "Eventos virtuales", None, 2, None),
    ];
    for (code, name, channel, programmed, period) in activities {
        manage::create_activity(
            store.as_ref(),
            NewActivity {
                code: code.into(),
                name: name.into(),
                channel: channel.map(str::to_string),
                programmed,
                period_from: period.map(|p: (&str, &str)| p.0.to_string()),
                period_to: period.map(|p| p.1.to_string()),
                split: if period.is_some() {
                    "monthly".into()
                } else {
                    "none".into()
                },
            },
            now,
        )
        .await?;
        print(&format!(
            "   {code:<9} programmed {:>7}  {name}",
            thousands(programmed)
        ));
    }

    // Work the programme counts but aviso does not send: the call centre's
    // attempts and the events held, as staff would record them (sample figures).
    for (code, done, date) in [
        ("LLAMADAS", 31_250, "2021-10-31"),
        ("LLAMADAS", 29_870, "2021-11-30"),
        ("TALLERES", 2, "2021-11-20"),
        ("EVENTOS", 1, "2021-10-28"),
    ] {
        if let Some(activity) = store.activity(code).await? {
            store
                .record_activity(activity.id, done, date, Some("demo"), now)
                .await?;
        }
    }

    print("\n3. Campaigns");
    let renderer = ctx.renderer()?;
    let carpeta_vars = renderer.sample_vars("carpeta_mensual")?;
    let campaigns = [
        (
            "SMS-REG",
            "registro_abierto",
            ChannelKind::Sms,
            "ciudadania",
            "credential=CPVE",
            None,
        ),
        (
            "SMS-REG",
            "recordatorio_voto",
            ChannelKind::Sms,
            "ciudadania",
            "credential=CPVE",
            None,
        ),
        (
            "MAIL-REG",
            "registro_abierto",
            ChannelKind::Email,
            "ciudadania",
            "credential=CPVE",
            None,
        ),
        (
            "MAIL-REG",
            "recordatorio_voto",
            ChannelKind::Email,
            "ciudadania",
            "credential=CPVE",
            None,
        ),
        (
            "CARPETA",
            "carpeta_mensual",
            ChannelKind::Email,
            "osc",
            "",
            Some(LangMode::Both),
        ),
    ];
    let mut ids = Vec::new();
    for (activity, template, channel, list, segment, lang) in campaigns {
        let vars = match template {
            "carpeta_mensual" => carpeta_vars.as_object().cloned().unwrap_or_default(),
            _ => serde_json::Map::new(),
        };
        let request = CampaignRequest {
            activity: activity.into(),
            template: template.into(),
            channel: Some(channel),
            list: list.into(),
            segment: segment.into(),
            lang,
            name: None,
            vars,
            attachments: Vec::new(),
            attachment_limit: ctx.email_settings()?.attachment_limit,
            provider: None,
            schedule: Default::default(),
            window: None,
            expires: None,
        };
        let id = manage::create_campaign(store.as_ref(), &renderer, request, now).await?;
        let run = manage::start(store.as_ref(), id, ctx.zone()?, now).await?;
        print(&format!(
            "   #{id} {template} by {channel} to {list}: {} queued, {} suppressed, {} without an address",
            thousands(run.total - run.suppressed),
            thousands(run.suppressed),
            thousands(run.no_address)
        ));
        ids.push(id);
    }

    print("\n4. Sending (worker on file transports)");
    let started = std::time::Instant::now();
    let dispatcher = ctx
        .dispatcher(
            store.clone(),
            DispatchOptions::new(crate::dispatch::worker_id()),
        )
        .await?;
    let (_keep, shutdown) = watch::channel(false);
    let report = dispatcher.run(true, shutdown).await?;
    print(&format!(
        "   {} messages sent in {:.1} s, {} failed",
        thousands(report.sent as i64),
        started.elapsed().as_secs_f64(),
        thousands(report.failed as i64)
    ));

    print("\n5. Campaign status");
    for id in &ids {
        let s = manage::status_of(store.as_ref(), *id, ctx.zone()?, ctx.now_ms()).await?;
        print(&format!(
            "   #{} {:<40} {:<9} total {:>6}: sent {:>6}, suppressed {:>3}, failed {:>3}",
            s.id,
            s.name,
            s.state,
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
        ctx.zone()?,
    )
    .await?;
    print(&crate::report::to_table(
        &report,
        crate::domain::Language::Es,
    ));
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
