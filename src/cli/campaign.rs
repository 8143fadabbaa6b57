use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand, ValueEnum};

mod status;

use status::{print_status, watch};

use super::{estimate, print, print_json, thousands, Context};
use crate::campaigns::manage::{self, CampaignRequest};
use crate::campaigns::CampaignSchedule;
use crate::cost::Money;
use crate::domain::{CapPolicy, ChannelKind, FrequencyCap, WhenCapped};
use crate::schedule::{parse_at, parse_expires, Monthly, Window};
use crate::templates::LangMode;

/// Parsed once per run: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Create a campaign: a template sent to a list (or a segment of it).
    ///
    /// Everything is checked now: the template renders for a sample of the
    /// real audience, its variables are given, the provider is configured.
    /// Nothing is sent until `aviso campaign start`.
    Create(CreateArgs),
    /// What the next run would send and cost, before it starts.
    ///
    /// Recipients as a run would freeze them (list, segment, an address for
    /// the channel, suppressions), every SMS rendered and measured as the
    /// worker sends it (GSM-7 or UCS-2, segments), and the cost by country and
    /// entity from [prices] in aviso.toml. A country without a price shows
    /// "no price", never zero.
    ///
    /// Example: aviso campaign estimate 3 --json
    Estimate(EstimateArgs),
    /// Freeze the audience into the outbox; workers then send it
    Start(IdArgs),
    /// Stop sending (what is in flight finishes); `resume` continues.
    /// `--all` pauses every running or scheduled campaign at once
    Pause(PauseArgs),
    /// Continue paused campaigns where they stopped
    Resume(ResumeArgs),
    /// Stop for good: nothing more is sent
    Cancel(IdArgs),
    /// Every campaign with its state and counts
    List(ListArgs),
    /// Counts by message status (they always add up to the total)
    Status(StatusArgs),
    /// Change when a campaign runs (--at, or --every month)
    Reschedule(RescheduleArgs),
    /// Send again what failed for reasons that were not permanent (attempts
    /// exhausted during an outage); permanent failures and suppressed
    /// addresses never go again
    Retry(IdArgs),
}

/// When a campaign runs.
#[derive(Debug, Args, Default)]
pub struct ScheduleArgs {
    /// Start at this time: YYYY-MM-DD HH:MM in the configured zone, or RFC 3339
    #[arg(long, value_name = "TIME", conflicts_with = "every")]
    pub at: Option<String>,
    /// Repeat every month (one run per month, keyed by the month)
    #[arg(long, value_enum)]
    pub every: Option<Every>,
    /// Day of the month for --every month (days past the month's end mean its last day)
    #[arg(long, default_value_t = 1, requires = "every")]
    pub day: u32,
    /// Time of day for --every month, HH:MM in the configured zone
    #[arg(long, default_value = "10:00", requires = "every")]
    pub time: String,
    /// No monthly run after this date (YYYY-MM-DD)
    #[arg(long, value_name = "DATE", requires = "every")]
    pub until: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Every {
    Month,
}

#[derive(Debug, Args)]
pub struct RescheduleArgs {
    pub id: i64,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Channel {
    Sms,
    Email,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Lang {
    /// Each contact's own language (Spanish when unknown)
    Contact,
    Es,
    En,
    /// One bilingual message, Spanish first
    Both,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The activity this campaign counts towards (its code)
    #[arg(long)]
    pub activity: String,
    /// Template name (see `aviso templates list`)
    #[arg(long)]
    pub template: String,
    /// sms or email [default: the activity's channel]
    #[arg(long, value_enum)]
    pub channel: Option<Channel>,
    /// The list to send to
    #[arg(long)]
    pub list: String,
    /// Narrow the list, e.g. 'entity=OAX,DGO lang=en'
    #[arg(long, default_value = "")]
    pub segment: String,
    /// Language of the messages [default: the template's, usually each contact's]
    #[arg(long, value_enum)]
    pub lang: Option<Lang>,
    /// A name people will recognise [default: TEMPLATE → LIST]
    #[arg(long)]
    pub name: Option<String>,
    /// A template variable, NAME=VALUE (repeatable)
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Template variables from a TOML file (for lists such as events)
    #[arg(long = "vars", value_name = "FILE")]
    pub vars_file: Option<PathBuf>,
    /// A file to attach to every e-mail (repeatable)
    #[arg(long = "attach", value_name = "FILE")]
    pub attachments: Vec<PathBuf>,
    /// A named provider from aviso.toml [providers.NAME] instead of the default
    #[arg(long)]
    pub provider: Option<String>,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    /// Send only between these hours of each recipient's local time, e.g. 09:00-20:00
    #[arg(long, value_name = "HH:MM-HH:MM")]
    pub window: Option<String>,
    /// Unsent messages expire at this time (YYYY-MM-DD HH:MM) or this long after a run starts (72h)
    #[arg(long, value_name = "TIME|DURATION")]
    pub expires: Option<String>,
    /// At most COUNT messages per PERIOD (h, d or w) to one recipient on this
    /// channel, counted across every capped campaign, even ones sending at the
    /// same time: `--frequency-cap 1/1d` (one a day), `2/7d` (two a week);
    /// `none` for no cap [default: `frequency_cap` under [sms] or [email] in
    /// aviso.toml, else none]
    #[arg(long, value_name = "COUNT/PERIOD", value_parser = parse_cap)]
    pub frequency_cap: Option<CapChoice>,
    /// What happens to a message over the cap: `hold` (status `capped`, never
    /// sent) or `defer` (waits, and goes when the recipient's period leaves
    /// room, unless the campaign expires first), e.g. --when-capped defer
    #[arg(long, value_name = "hold|defer", default_value = "hold", value_parser = WhenCapped::parse)]
    pub when_capped: WhenCapped,
    /// Refuse to start a run whose estimate costs more than this, in the
    /// currency of [prices] (overrides `budget` there), e.g. --budget 1500
    #[arg(long, value_name = "AMOUNT", value_parser = parse_money)]
    pub budget: Option<Money>,
    /// Print the id and the estimate as JSON
    #[arg(long)]
    pub json: bool,
}

/// `--frequency-cap`: a cap, or none even if aviso.toml sets one.
#[derive(Debug, Clone, Copy)]
pub enum CapChoice {
    Cap(FrequencyCap),
    Uncapped,
}

fn parse_cap(value: &str) -> Result<CapChoice, String> {
    if value.trim().eq_ignore_ascii_case("none") {
        return Ok(CapChoice::Uncapped);
    }
    FrequencyCap::parse(value)
        .map(CapChoice::Cap)
        .map_err(|e| format!("{e}; or `none`"))
}

fn parse_money(text: &str) -> Result<Money, String> {
    Money::parse(text)
}

#[derive(Debug, Args)]
pub struct EstimateArgs {
    /// The campaign (see `aviso campaign list`)
    pub id: i64,
    /// Print the estimate as JSON: counts as numbers, money as exact decimal
    /// strings ("537.31"), and null cost for a country without a price
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    pub id: i64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PauseArgs {
    /// The campaign to pause
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub id: Option<i64>,
    /// Pause every running or scheduled campaign (and print how to resume them)
    #[arg(long)]
    pub all: bool,
    /// Why, shown in `campaign status`
    #[arg(long, default_value = "paused by an operator")]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The campaigns to resume, e.g. the ids `pause --all` printed
    #[arg(required = true, num_args = 1..)]
    pub ids: Vec<i64>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// One campaign [default: all]
    pub id: Option<i64>,
    #[arg(long)]
    pub json: bool,
    /// Keep showing progress, with rate and time left, until the campaign is done
    #[arg(long, requires = "id")]
    pub watch: bool,
}

pub(super) async fn run(ctx: &Context, cmd: CampaignCommand) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let store = store.as_ref();
    let now = ctx.now_ms();
    match cmd {
        CampaignCommand::Create(args) => {
            let json = args.json;
            let id = create(ctx, args).await?;
            let estimate = estimate::of(ctx, store, id).await?;
            if json {
                print_json(&serde_json::json!({ "id": id, "estimate": estimate }))?;
            } else {
                print(&format!(
                    "campaign {id} created; send it with `aviso campaign start {id}`"
                ));
                estimate::print_estimate(&estimate);
            }
        }
        CampaignCommand::Estimate(args) => {
            let estimate = estimate::of(ctx, store, args.id).await?;
            if args.json {
                print_json(&estimate)?;
            } else {
                estimate::print_estimate(&estimate);
            }
        }
        CampaignCommand::Start(args) => {
            if let Some(campaign) = store.campaign(args.id).await? {
                let guard = ctx.budget_guard(std::sync::Arc::new(ctx.renderer()?));
                guard.check(store, &campaign).await?;
            }
            let run = manage::start(store, args.id, ctx.settings.zone, now).await?;
            if args.json {
                print_json(&run)?;
            } else if run.created {
                print(&format!(
                    "campaign {} started: {} messages queued ({} suppressed), {} contacts without an address for this channel",
                    args.id,
                    thousands(run.total - run.suppressed),
                    thousands(run.suppressed),
                    thousands(run.no_address)
                ));
                print("workers send it now (`aviso worker`); follow it with `aviso campaign status --watch`");
            } else {
                print(&format!(
                    "campaign {} already ran (run {}): nothing new to send",
                    args.id, run.run_id
                ));
            }
        }
        CampaignCommand::Pause(args) => match args.id {
            Some(id) => {
                manage::pause(store, id, &args.reason, now).await?;
                print(&format!("campaign {id} paused"));
            }
            None => {
                let ids = manage::pause_all(store, &args.reason, now).await?;
                if ids.is_empty() {
                    print("no campaign was running or scheduled: nothing to pause");
                } else {
                    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
                    print(&format!(
                        "paused {} campaign(s): {}",
                        ids.len(),
                        list.join(" ")
                    ));
                    print(&format!(
                        "resume them with: aviso campaign resume {}",
                        list.join(" ")
                    ));
                }
            }
        },
        CampaignCommand::Resume(args) => {
            for id in args.ids {
                manage::resume(store, id, now).await?;
                print(&format!("campaign {id} resumed"));
            }
        }
        CampaignCommand::Cancel(args) => {
            let n = manage::cancel(store, args.id, now).await?;
            print(&format!(
                "campaign {} cancelled; {} unsent messages will not go out",
                args.id,
                thousands(n as i64)
            ));
        }
        CampaignCommand::List(args) => {
            let mut all = Vec::new();
            for c in store.campaigns().await? {
                all.push(manage::status(store, &c, ctx.settings.zone, now).await?);
            }
            if args.json {
                print_json(&all)?;
            } else {
                print(&format!(
                    "{:>4}  {:<10} {:<6} {:<12} {:>8} {:>8} {:>8}  {:<25} {:<22} NAME",
                    "ID",
                    "STATE",
                    "CHAN",
                    "ACTIVITY",
                    "TOTAL",
                    "SENT",
                    "FAILED",
                    "NEXT RUN",
                    "LAST RUN"
                ));
                for s in &all {
                    let last = s
                        .last_run
                        .as_ref()
                        .map(|r| format!("{} {}", r.period, r.state))
                        .unwrap_or_else(|| "-".into());
                    print(&format!(
                        "{:>4}  {:<10} {:<6} {:<12} {:>8} {:>8} {:>8}  {:<25} {:<22} {}",
                        s.id,
                        s.state,
                        s.channel,
                        s.activity,
                        thousands(s.total),
                        thousands(s.counts.sent + s.counts.delivered),
                        thousands(s.counts.failed),
                        s.next_run.as_deref().unwrap_or("-"),
                        last,
                        s.name
                    ));
                }
            }
        }
        CampaignCommand::Reschedule(args) => {
            let schedule = schedule_of(ctx, &args.schedule)?;
            if schedule.start_at.is_none() && schedule.recurrence.is_none() {
                bail!("say when: --at TIME or --every month");
            }
            manage::reschedule(store, args.id, &schedule, now).await?;
            print(&format!("campaign {} rescheduled", args.id));
        }
        CampaignCommand::Retry(args) => {
            let n = manage::retry(store, args.id, now).await?;
            if args.json {
                print_json(&serde_json::json!({ "requeued": n }))?;
            } else {
                print(&format!(
                    "campaign {}: {} messages queued again",
                    args.id,
                    thousands(n as i64)
                ));
            }
        }
        CampaignCommand::Status(args) => match args.id {
            Some(id) if args.watch => watch(ctx, store, id).await?,
            Some(id) => {
                let status = manage::status_of(store, id, ctx.settings.zone, now).await?;
                if args.json {
                    print_json(&status)?;
                } else {
                    print_status(&status);
                }
            }
            None => {
                let mut all = Vec::new();
                for c in store.campaigns().await? {
                    all.push(manage::status(store, &c, ctx.settings.zone, now).await?);
                }
                if args.json {
                    print_json(&all)?;
                } else {
                    for s in &all {
                        print_status(s);
                    }
                }
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// The schedule flags as stored times.
fn schedule_of(ctx: &Context, args: &ScheduleArgs) -> anyhow::Result<CampaignSchedule> {
    let zone = ctx.settings.zone;
    let mut schedule = CampaignSchedule {
        start_at: args
            .at
            .as_deref()
            .map(|at| parse_at(at, zone).map(|t| t.timestamp_millis()))
            .transpose()?,
        ..CampaignSchedule::default()
    };
    if let Some(Every::Month) = args.every {
        schedule.recurrence = Some(Monthly::new(args.day, &args.time)?);
        schedule.recur_until = args
            .until
            .as_deref()
            .map(|d| parse_at(&format!("{d} 23:59"), zone).map(|t| t.timestamp_millis()))
            .transpose()?;
    }
    Ok(schedule)
}

async fn create(ctx: &Context, args: CreateArgs) -> anyhow::Result<i64> {
    let zone = ctx.settings.zone;
    let renderer = ctx.renderer()?;
    let mut vars = serde_json::Map::new();
    if let Some(file) = &args.vars_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("{}: cannot read the variables file", file.display()))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{}: {}",
                file.display(),
                e.to_string().trim().replace('\n', " ")
            )
        })?;
        if let serde_json::Value::Object(map) =
            crate::templates::toml_to_json(&toml::Value::Table(table))
        {
            vars.extend(map);
        }
    }
    for pair in &args.vars {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("--var {pair:?}: write it as NAME=VALUE");
        };
        vars.insert(
            name.trim().to_string(),
            serde_json::Value::String(value.to_string()),
        );
    }
    let channel = args.channel.map(|c| match c {
        Channel::Sms => ChannelKind::Sms,
        Channel::Email => ChannelKind::Email,
    });
    let request = CampaignRequest {
        activity: args.activity,
        template: args.template,
        channel,
        list: args.list,
        segment: args.segment,
        lang: args.lang.map(|l| match l {
            Lang::Contact => LangMode::Contact,
            Lang::Es => LangMode::Es,
            Lang::En => LangMode::En,
            Lang::Both => LangMode::Both,
        }),
        name: args.name,
        vars,
        attachments: args.attachments,
        attachment_limit: ctx.settings.email.attachment_limit,
        provider: args.provider.clone(),
        schedule: schedule_of(ctx, &args.schedule)?,
        window: args.window.as_deref().map(Window::parse).transpose()?,
        expires: args
            .expires
            .as_deref()
            .map(|e| parse_expires(e, zone))
            .transpose()?,
        frequency_cap: None,
        budget: args.budget,
    };
    let store = ctx.store().await?;
    // The provider must exist before anything is queued for it.
    let activity_channel = store
        .activity(&request.activity)
        .await?
        .and_then(|a| a.channel);
    let kind = channel.or(activity_channel);
    if let Some(kind) = kind {
        ctx.check_provider(kind, args.provider.as_deref())?;
    }
    let cap = match args.frequency_cap {
        Some(CapChoice::Cap(cap)) => Some(cap),
        Some(CapChoice::Uncapped) => None,
        None => kind.and_then(|kind| ctx.settings.frequency_cap(kind)),
    };
    let request = CampaignRequest {
        frequency_cap: cap.map(|cap| CapPolicy {
            cap,
            when: args.when_capped,
        }),
        ..request
    };
    Ok(manage::create_campaign(store.as_ref(), &renderer, request, ctx.now_ms()).await?)
}
