use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Args;

use super::print;
use crate::config::{
    Config, DEFAULT_AUTOPAUSE_RATIO, DEFAULT_AUTOPAUSE_WINDOW, DEFAULT_CONCURRENCY,
    DEFAULT_DATABASE_URL, DEFAULT_FROM, DEFAULT_GRACE_HOURS, DEFAULT_LEASE_SECONDS,
    DEFAULT_PUBLIC_URL, DEFAULT_RETRY_INITIAL_SECONDS, DEFAULT_RETRY_MAX_ATTEMPTS,
    DEFAULT_RETRY_MAX_INTERVAL_SECONDS, DEFAULT_RETRY_MULTIPLIER, DEFAULT_ZONE,
};
use crate::settings::{Env, Overrides, Settings};

/// The aviso.toml `aviso init` writes: every setting explained, at its
/// default where it has one.
fn sample() -> String {
    let zone = DEFAULT_ZONE.name();
    let second = DEFAULT_RETRY_INITIAL_SECONDS * DEFAULT_RETRY_MULTIPLIER;
    let max_minutes = DEFAULT_RETRY_MAX_INTERVAL_SECONDS / 60.0;
    let percent = DEFAULT_AUTOPAUSE_RATIO * 100.0;
    format!(
        r#"# aviso configuration. Every setting has a default; flags and AVISO_* variables
# override what is written here. Paths are relative to this file.

# The database: a SQLite file (created on first use), or PostgreSQL to run
# several workers on several hosts: postgres://aviso@db.internal/aviso
database_url = "{DEFAULT_DATABASE_URL}"

# Campaign times (--at, --every month --time) are read in this zone.
timezone = "{zone}"

# Where `aviso serve` is reachable by recipients (unsubscribe links) and SMS
# gateways (delivery reports). Put a TLS proxy in front when it faces the internet.
public_url = "{DEFAULT_PUBLIC_URL}"

[email]
from = "{DEFAULT_FROM}"
# smtp://host:587?tls=starttls&pool=8&rate=50 (credentials: AVISO_SMTP_USERNAME,
# AVISO_SMTP_PASSWORD), or file://outbox/email to write .eml files instead.
# DKIM signing (SMTP only): add &dkim=SELECTOR._domainkey.DOMAIN (where the
# public key is published; DOMAIN as in `from`) and &dkim_key=dkim.pem (a PEM
# key, RSA of 2048 bits or more, or Ed25519: openssl genpkey -algorithm ed25519
# -out dkim.pem), or give the key file in AVISO_DKIM_KEY_FILE. The worker checks
# the key before it sends anything. See it signed:
#   aviso templates preview registro_abierto --channel email --eml
provider = "file://outbox/email"
# At most COUNT e-mails per PERIOD (h, d or w) to one address, counted across
# campaigns; what goes over is held as `capped` (or deferred with
# `campaign create --when-capped defer`). A campaign can set its own with
# --frequency-cap. Fixed when a campaign is created. Unset: no cap.
# frequency_cap = "2/7d"

[sms]
# kannel://host:13013?from=INE, twilio://api.twilio.com?from=+1…,
# webhook+https://host/path, or file://outbox/sms. Credentials or signing
# secret: AVISO_SMS_USERNAME and AVISO_SMS_PASSWORD.
provider = "file://outbox/sms"
# At most one SMS a day to one phone, across campaigns (see [email] above).
# frequency_cap = "1/1d"

[retry]
# Temporary failures wait {DEFAULT_RETRY_INITIAL_SECONDS} s, then {second} s, … up to {max_minutes} min, {DEFAULT_RETRY_MAX_ATTEMPTS} attempts in all.
initial_seconds = {DEFAULT_RETRY_INITIAL_SECONDS}
multiplier = {DEFAULT_RETRY_MULTIPLIER:?}
max_interval_seconds = {DEFAULT_RETRY_MAX_INTERVAL_SECONDS}
max_attempts = {DEFAULT_RETRY_MAX_ATTEMPTS}

[schedule]
# A run found this long after its time is recorded as missed, not sent late.
grace_hours = {DEFAULT_GRACE_HOURS}
# Send only in these hours of each recipient's local time, unless a campaign says otherwise.
default_window = "09:00-20:00"
# A campaign pauses itself when more than {percent} % of its last {DEFAULT_AUTOPAUSE_WINDOW} attempts failed for good.
autopause_window = {DEFAULT_AUTOPAUSE_WINDOW}
autopause_ratio = {DEFAULT_AUTOPAUSE_RATIO:?}

[worker]
# Messages being prepared or sent at once (each provider also caps its connections with pool=).
concurrency = {DEFAULT_CONCURRENCY}
lease_seconds = {DEFAULT_LEASE_SECONDS}

# What a message costs, for `aviso campaign estimate`, budgets and the spent
# cost in `aviso report indicators`: per SMS segment and per e-mail, by the
# recipient's country (ISO code), in one currency, up to six decimals. A
# country with neither a price nor a default shows as "no price", never free.
# Uncomment the section below to use it.
# [prices]
# currency = "MXN"
# budget = 1500        # refuse to start a run whose estimate costs more (campaign create --budget overrides it)
# [prices.sms]
# US = 0.16
# CA = 0.18
# MX = 0.35
# default = 1.20
# [prices.email]
# default = 0.0
"#
    )
}
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Replace an existing configuration file
    #[arg(long)]
    pub force: bool,
}

pub(super) async fn run(config_path: &std::path::Path, args: InitArgs) -> anyhow::Result<ExitCode> {
    if config_path.exists() && !args.force {
        bail!(
            "{} already exists: edit it, or use --force to start again",
            config_path.display()
        );
    }
    std::fs::write(config_path, sample())
        .with_context(|| format!("{}: cannot write", config_path.display()))?;
    // The database the file names: the environment has no say in `init`.
    let config = Config::load(Some(config_path))?;
    let url = Settings::resolve(config, Env::default(), Overrides::default())?.database_url;
    crate::store::open(&url).await?;
    print(&format!(
        "wrote {} and created the database {url}",
        config_path.display()
    ));
    print("next: aviso contacts import FILE --list NAME, then aviso templates check");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::sample;
    use crate::config::{Config, DEFAULT_DATABASE_URL};
    use crate::schedule::Window;
    use crate::settings::{Env, Overrides, Settings};

    #[test]
    fn the_sample_holds_the_defaults() {
        let text = sample();
        let config = Config::parse(&text, PathBuf::from("aviso.toml")).unwrap();
        assert_eq!(
            config.file.database_url.as_deref(),
            Some(DEFAULT_DATABASE_URL)
        );
        let written = Settings::resolve(config, Env::default(), Overrides::default()).unwrap();
        let default =
            Settings::resolve(Config::absent(), Env::default(), Overrides::default()).unwrap();
        assert_eq!(written.zone, default.zone);
        assert_eq!(written.public_url, default.public_url);
        assert_eq!(written.email.from, default.email.from);
        assert_eq!(
            written.email.unsubscribe_template,
            default.email.unsubscribe_template
        );
        assert_eq!(
            written.email.attachment_limit,
            default.email.attachment_limit
        );
        assert_eq!(written.retry, default.retry);
        assert_eq!(written.grace_ms, default.grace_ms);
        assert_eq!(written.autopause, default.autopause);
        assert_eq!(written.concurrency, default.concurrency);
        assert_eq!(written.lease, default.lease);
        assert_eq!(
            (written.email_cap, written.sms_cap),
            (default.email_cap, default.sms_cap)
        );
        assert!(written.providers.is_empty() && written.prices.is_none());
        // What the sample suggests beyond the defaults.
        assert_eq!(
            written.default_window,
            Some(Window::parse("09:00-20:00").unwrap())
        );
        assert_eq!(
            written.email_provider.as_deref(),
            Some("file://outbox/email")
        );
        assert_eq!(written.sms_provider.as_deref(), Some("file://outbox/sms"));
    }

    #[test]
    fn the_documented_prices_are_valid_once_uncommented() {
        let text = sample();
        let start = text.find("# [prices]").unwrap();
        let uncommented: String = text[start..]
            .lines()
            .map(|l| l.trim_start_matches("# "))
            .collect::<Vec<_>>()
            .join("\n");
        let table: toml::Table = toml::from_str(&uncommented).unwrap();
        let prices =
            crate::cost::PriceTable::from_toml(table["prices"].as_table().unwrap(), "aviso.toml")
                .unwrap();
        assert_eq!(prices.currency.code(), "MXN");
        assert!(prices.budget.is_some());
    }
}
