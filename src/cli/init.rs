use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Args;

use super::print;

const TEMPLATE: &str = r#"# aviso configuration. Every setting has a default; flags and AVISO_* variables
# override what is written here. Paths are relative to this file.

# The database: a SQLite file (created on first use), or PostgreSQL to run
# several workers on several hosts: postgres://aviso@db.internal/aviso
database_url = "sqlite://aviso.db"

# Campaign times (--at, --every month --time) are read in this zone.
timezone = "America/Mexico_City"

# Where `aviso serve` is reachable by recipients (unsubscribe links) and SMS
# gateways (delivery reports). Put a TLS proxy in front when it faces the internet.
public_url = "http://127.0.0.1:8025"

[email]
from = "Voto desde el Extranjero <avisos@votoextranjero.example>"
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
# Temporary failures wait 30 s, then 60 s, … up to 30 min, 8 attempts in all.
initial_seconds = 30
multiplier = 2.0
max_interval_seconds = 1800
max_attempts = 8

[schedule]
# A run found this long after its time is recorded as missed, not sent late.
grace_hours = 24
# Send only in these hours of each recipient's local time, unless a campaign says otherwise.
default_window = "09:00-20:00"
# A campaign pauses itself when more than half of its last 200 attempts failed for good.
autopause_window = 200
autopause_ratio = 0.5

[worker]
# Messages being prepared or sent at once (each provider also caps its connections with pool=).
concurrency = 32
lease_seconds = 60

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
"#;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Replace an existing configuration file
    #[arg(long)]
    pub force: bool,
}

pub async fn run(config_path: &std::path::Path, args: InitArgs) -> anyhow::Result<ExitCode> {
    if config_path.exists() && !args.force {
        bail!(
            "{} already exists: edit it, or use --force to start again",
            config_path.display()
        );
    }
    std::fs::write(config_path, TEMPLATE)
        .with_context(|| format!("{}: cannot write", config_path.display()))?;
    let config = crate::config::Config::load(Some(config_path))?;
    let url = config.database_url(None);
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
    use super::TEMPLATE;

    #[test]
    fn the_documented_prices_are_valid_once_uncommented() {
        let start = TEMPLATE.find("# [prices]").unwrap();
        let uncommented: String = TEMPLATE[start..]
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
