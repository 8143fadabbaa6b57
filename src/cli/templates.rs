use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};

use super::{print, print_json, Context};
use crate::domain::ContactKind;
use crate::templates::{self, sms, LangMode, Recipient, Renderer};

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// Check every template (or one): files, variables, sample renders, SMS length.
    ///
    /// Exit status 1 if anything is wrong; each problem names its file.
    Check(CheckArgs),
    /// Show a message exactly as it would be sent
    Preview(PreviewArgs),
    /// List the templates with their channels and variables
    List,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Only this template
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Channel {
    Sms,
    Email,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Lang {
    Es,
    En,
    Both,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    pub name: String,
    #[arg(long, value_enum)]
    pub channel: Channel,
    #[arg(long, value_enum, default_value = "es")]
    pub lang: Lang,
    /// Render for this stored contact (otherwise the sample contact of samples.toml)
    #[arg(long, value_name = "ID", conflicts_with = "sample")]
    pub contact: Option<String>,
    /// Render for the sample contact (the default)
    #[arg(long)]
    pub sample: bool,
}

#[derive(Debug, Args)]
pub struct SmsInfoArgs {
    /// The message text
    pub text: String,
    /// Map characters outside GSM-7 to their nearest GSM-7 form first (á→a, “→")
    #[arg(long)]
    pub transliterate: bool,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(ctx: &Context, cmd: TemplatesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TemplatesCommand::Check(args) => {
            let set = ctx.template_set()?;
            let problems = templates::check(&set, args.name.as_deref());
            for p in &problems {
                eprintln!("{p}");
            }
            if problems.is_empty() {
                let n = match args.name {
                    Some(_) => 1,
                    None => set.templates.len(),
                };
                print(&format!("{n} template(s) in {}: all good", set.origin));
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("{} problem(s) found", problems.len());
                Ok(ExitCode::FAILURE)
            }
        }
        TemplatesCommand::Preview(args) => preview(ctx, args).await,
        TemplatesCommand::List => {
            let set = ctx.template_set()?;
            for def in set.templates.values() {
                let channels: Vec<String> =
                    def.meta.channels.iter().map(|c| c.to_string()).collect();
                let vars: Vec<&str> = def.meta.variables.keys().map(String::as_str).collect();
                print(&format!(
                    "{:<20} {:<10} vars: {:<30} {}",
                    def.name,
                    channels.join(","),
                    if vars.is_empty() {
                        "-".to_string()
                    } else {
                        vars.join(",")
                    },
                    def.meta.description
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn preview(ctx: &Context, args: PreviewArgs) -> anyhow::Result<ExitCode> {
    let set = ctx.template_set()?;
    let renderer = Renderer::new(set)?;
    let def = renderer.template(&args.name)?;
    let recipient = match &args.contact {
        Some(id) => {
            let store = ctx.store().await?;
            let Some(record) = store.contact(id).await? else {
                bail!("contact {id:?} does not exist");
            };
            Recipient::from_contact(&record.contact)
        }
        None => {
            let kind = match def.meta.audience {
                Some(ContactKind::Organization) => "organization",
                _ => "citizen",
            };
            let sample = renderer
                .templates()
                .samples
                .get(kind)
                .and_then(|v| v.as_table())
                .cloned()
                .unwrap_or_default();
            Recipient::from_sample(&sample)
        }
    };
    let mode = match args.lang {
        Lang::Es => LangMode::Es,
        Lang::En => LangMode::En,
        Lang::Both => LangMode::Both,
    };
    let vars = renderer.sample_vars(&args.name)?;
    match args.channel {
        Channel::Sms => {
            let sms = renderer.render_sms(&args.name, mode, &recipient, &vars)?;
            print(&format!(
                "SMS ({}): {}, {} {}, {} segment(s)",
                sms.language,
                sms.info.encoding.as_str(),
                sms.info.units,
                unit(sms.info.encoding),
                sms.info.segments
            ));
            print("---");
            print(&sms.text);
        }
        Channel::Email => {
            let settings = ctx.email_settings()?;
            let token = "PREVIEW";
            let url = settings.unsubscribe_url(token);
            let email = renderer.render_email(&args.name, mode, &recipient, &vars, &url)?;
            print(&format!("From: {}", settings.from));
            print(&format!("Subject: {}", email.subject));
            print(&format!("List-Unsubscribe: <{url}>"));
            print("List-Unsubscribe-Post: List-Unsubscribe=One-Click");
            print(&format!("Content-Language: {}", email.language));
            print("\n--- text/plain; charset=utf-8 ---");
            print(&email.text);
            print("\n--- text/html; charset=utf-8 ---");
            print(&email.html);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn unit(encoding: sms::SmsEncoding) -> &'static str {
    match encoding {
        sms::SmsEncoding::Gsm7 => "septets",
        sms::SmsEncoding::Ucs2 => "UTF-16 units",
    }
}

pub fn sms_info(args: SmsInfoArgs) -> anyhow::Result<ExitCode> {
    let prepared = sms::prepare(&args.text, args.transliterate);
    let info = &prepared.info;
    if args.json {
        print_json(&serde_json::json!({
            "encoding": info.encoding,
            "units": info.units,
            "segments": info.segments,
            "characters": info.characters,
            "text": prepared.text,
        }))?;
    } else {
        print(&format!(
            "{}: {} characters, {} {}, {} segment(s)",
            info.encoding.as_str(),
            info.characters,
            info.units,
            unit(info.encoding),
            info.segments
        ));
        if args.transliterate && prepared.text != args.text {
            print(&format!("sent as: {}", prepared.text));
        }
        if info.encoding == sms::SmsEncoding::Ucs2 {
            let outside: String = prepared
                .text
                .chars()
                .filter(|c| !sms::is_gsm7(*c))
                .collect();
            print(&format!("not in GSM-7: {outside}"));
        }
    }
    Ok(ExitCode::SUCCESS)
}
