use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand, ValueEnum};

use super::{print, print_json, Context};
use crate::domain::{ContactKind, EmailAddress};
use crate::templates::{self, sms, EmailHeaders, LangMode, Recipient, Renderer};

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// Check every template (or one): files, variables, sample renders, SMS length.
    ///
    /// Exit status 1 if anything is wrong; each problem names its file.
    Check(CheckArgs),
    /// Show a message exactly as it would be sent
    ///
    /// With --eml, the whole e-mail as it would go to the SMTP server (MIME
    /// parts, headers, and the DKIM signature when the e-mail provider has
    /// `dkim=`), e.g.
    ///   aviso templates preview registro_abierto --channel email --eml --out muestra.eml
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
    /// E-mail only: write the complete message (RFC 5322 .eml) as it would be
    /// sent, signed when the e-mail provider has `dkim=`; open it in a mail
    /// program or check it with `dkimverify`
    #[arg(long)]
    pub eml: bool,
    /// With --eml: write the message to FILE (readable by its owner only)
    /// instead of the terminal, e.g. --out muestra.eml
    #[arg(long, value_name = "FILE", requires = "eml")]
    pub out: Option<PathBuf>,
}

/// The address a preview of the sample contact is written to.
const SAMPLE_ADDRESS: &str = "muestra@example.org";

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

pub(super) async fn run(ctx: &Context, cmd: TemplatesCommand) -> anyhow::Result<ExitCode> {
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
    if args.eml && matches!(args.channel, Channel::Sms) {
        eprintln!("error: --eml writes an e-mail: use it with --channel email");
        return Ok(ExitCode::from(2));
    }
    let (recipient, address) = match &args.contact {
        Some(id) => {
            let store = ctx.store().await?;
            let Some(record) = store.contact(id).await? else {
                bail!("contact {id:?} does not exist");
            };
            let address = record.contact.email.clone();
            (Recipient::from_contact(&record.contact), address)
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
            let address = EmailAddress::parse(SAMPLE_ADDRESS).ok();
            (Recipient::from_sample(&sample), address)
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
        Channel::Email if args.eml => {
            let Some(to) = address else {
                bail!("contact {:?} has no e-mail address", recipient.id);
            };
            write_eml(ctx, &renderer, &args, mode, &recipient, &vars, &to)?;
        }
        Channel::Email => {
            let settings = &ctx.settings.email;
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

/// The message as `email_bytes` makes it for the worker, signed by the
/// default e-mail provider's DKIM key when it has one.
fn write_eml(
    ctx: &Context,
    renderer: &Renderer,
    args: &PreviewArgs,
    mode: LangMode,
    recipient: &Recipient,
    vars: &serde_json::Value,
    to: &EmailAddress,
) -> anyhow::Result<()> {
    let settings = &ctx.settings.email;
    let provider = ctx.email_provider()?;
    let url = settings.unsubscribe_url("PREVIEW");
    let email = renderer.render_email(&args.name, mode, recipient, vars, &url)?;
    let message_id = format!("<aviso.preview@{}>", settings.from.email.domain());
    let headers = EmailHeaders {
        from: &settings.from,
        to,
        to_name: Some(recipient.full_name.as_str()).filter(|n| !n.is_empty()),
        message_id: &message_id,
        unsubscribe_url: Some(&url),
        eight_bit: provider.as_ref().is_some_and(|p| p.takes_8bit()),
    };
    let dkim = provider.as_ref().and_then(|p| p.dkim());
    let (_, raw) = crate::dispatch::email_bytes(&email, &headers, &[], dkim)
        .map_err(|e| anyhow::anyhow!("cannot build the e-mail: {e}"))?;
    match &args.out {
        Some(path) => {
            // The message names its recipient: the owner's eyes only.
            super::report::open_private(path)
                .and_then(|mut f| f.write_all(&raw))
                .with_context(|| format!("{}: cannot write", path.display()))?;
            let signed = match dkim {
                Some(signer) => format!("signed for {} ({})", signer.domain(), signer.algorithm()),
                None => "not signed (no dkim= on the e-mail provider)".into(),
            };
            print(&format!(
                "{} bytes written to {}, {signed}",
                raw.len(),
                path.display()
            ));
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = stdout.write_all(&raw).and_then(|_| stdout.flush()) {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    return Err(e).context("cannot write the message");
                }
            }
        }
    }
    Ok(())
}

fn unit(encoding: sms::SmsEncoding) -> &'static str {
    match encoding {
        sms::SmsEncoding::Gsm7 => "septets",
        sms::SmsEncoding::Ucs2 => "UTF-16 units",
    }
}

pub(super) fn sms_info(args: SmsInfoArgs) -> anyhow::Result<ExitCode> {
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
