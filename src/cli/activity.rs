use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use super::{print, print_json, thousands, Context};
use crate::campaigns::manage;
use crate::campaigns::{ActivitySplit, NewActivity};
use crate::domain::ChannelKind;

#[derive(Debug, Subcommand)]
pub enum ActivityCommand {
    /// Add a line of the work programme, with its programmed total.
    ///
    /// Example: aviso activity create --code SMS-REG --name "Envío de mensajes SMS"
    ///          --channel sms --programmed 120000 --from 2021-09-01 --to 2022-03-10
    Create(CreateArgs),
    /// List activities
    List(ListArgs),
    /// Record work aviso does not send but the programme counts (calls made,
    /// workshops held, materials sent), so one report covers every indicator.
    ///
    /// Example: aviso activity record --code CALLS --done 12000 --date 2021-10-31
    Record(RecordArgs),
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    #[arg(long)]
    pub code: String,
    /// How many were done
    #[arg(long)]
    pub done: i64,
    /// When (YYYY-MM-DD): the report counts it in that month
    #[arg(long)]
    pub date: chrono::NaiveDate,
    #[arg(long)]
    pub note: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ActivityChannel {
    Sms,
    Email,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Split {
    /// One total for the whole activity
    None,
    /// The total spreads evenly over the months of --from..--to
    Monthly,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Short code, e.g. SMS-REG
    #[arg(long)]
    pub code: String,
    /// Name as in the work programme
    #[arg(long)]
    pub name: String,
    /// The channel aviso sends it on (leave out for counted work such as calls or events)
    #[arg(long, value_enum)]
    pub channel: Option<ActivityChannel>,
    /// The programmed total (messages, calls, events…)
    #[arg(long)]
    pub programmed: i64,
    /// First day of the activity's period (YYYY-MM-DD)
    #[arg(long)]
    pub from: Option<String>,
    /// Last day of the activity's period (YYYY-MM-DD)
    #[arg(long)]
    pub to: Option<String>,
    /// How the programmed total spreads over months in reports
    #[arg(long, value_enum, default_value = "none")]
    pub split: Split,
    /// A programmed total for one entity, ENTITY=N (repeatable): reports by
    /// entity then show the programme's figure for each
    #[arg(long = "target", value_name = "ENTITY=N")]
    pub targets: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub json: bool,
}

pub(super) async fn run(ctx: &Context, cmd: ActivityCommand) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    match cmd {
        ActivityCommand::Create(a) => {
            let activity = NewActivity {
                code: a.code.trim().to_string(),
                name: a.name.trim().to_string(),
                channel: a.channel.map(|c| match c {
                    ActivityChannel::Sms => ChannelKind::Sms,
                    ActivityChannel::Email => ChannelKind::Email,
                }),
                programmed: a.programmed,
                period_from: a.from,
                period_to: a.to,
                split: match a.split {
                    Split::None => ActivitySplit::Whole,
                    Split::Monthly => ActivitySplit::Monthly,
                },
            };
            let mut targets = Vec::new();
            for t in &a.targets {
                let (entity, n) = t.split_once('=').ok_or_else(|| {
                    anyhow::anyhow!("--target {t:?}: write ENTITY=N, e.g. OAX=40000")
                })?;
                let entity = crate::domain::Entity::parse(entity)?;
                let n: i64 = n
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| anyhow::anyhow!("--target {t:?}: {n:?} is not a count"))?;
                targets.push((entity.code().to_string(), n));
            }
            let id =
                manage::create_activity(store.as_ref(), activity.clone(), ctx.now_ms()).await?;
            if !targets.is_empty() {
                store.set_activity_targets(id, &targets).await?;
            }
            if a.json {
                print_json(&serde_json::json!({"id": id, "code": activity.code}))?;
            } else {
                print(&format!(
                    "activity {} created: {} (programmed {})",
                    activity.code,
                    activity.name,
                    thousands(activity.programmed)
                ));
            }
        }
        ActivityCommand::Record(a) => {
            let Some(activity) = store.activity(&a.code).await? else {
                anyhow::bail!(
                    "activity {:?} does not exist (create it with `aviso activity create`)",
                    a.code
                );
            };
            if a.done < 0 {
                anyhow::bail!("--done cannot be negative");
            }
            let date = a.date.format("%Y-%m-%d").to_string();
            let id = store
                .record_activity(activity.id, a.done, &date, a.note.as_deref(), ctx.now_ms())
                .await?;
            if a.json {
                print_json(
                    &serde_json::json!({"id": id, "code": activity.code, "done": a.done, "date": date}),
                )?;
            } else {
                print(&format!(
                    "recorded {} done for {} on {date}",
                    thousands(a.done),
                    activity.code
                ));
            }
        }
        ActivityCommand::List(a) => {
            let activities = store.activities().await?;
            if a.json {
                print_json(&activities)?;
            } else {
                for x in activities {
                    print(&format!(
                        "{:<12} {:<6} {:>10}  {}",
                        x.code,
                        x.channel.map_or("-", |c| c.code()),
                        thousands(x.programmed),
                        x.name
                    ));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
