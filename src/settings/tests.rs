use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::config::{DEFAULT_CONFIG, DEFAULT_LEASE_SECONDS};

fn file(text: &str) -> Config {
    Config::parse(text, PathBuf::from("conf/aviso.toml")).unwrap()
}

fn env(vars: &[(&str, &str)]) -> Env {
    Env::from_vars(vars.iter().map(|(n, v)| (n.to_string(), v.to_string())))
}

fn resolve(config: Config, vars: &[(&str, &str)], cli: Overrides) -> Settings {
    Settings::resolve(config, env(vars), cli).unwrap()
}

fn error(text: &str, vars: &[(&str, &str)]) -> String {
    Settings::resolve(file(text), env(vars), Overrides::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn with_nothing_set_every_setting_is_its_default() {
    let s = resolve(Config::absent(), &[], Overrides::default());
    assert_eq!(s.database_url, DEFAULT_DATABASE_URL);
    assert_eq!(s.zone, DEFAULT_ZONE);
    assert_eq!(s.public_url, DEFAULT_PUBLIC_URL);
    // Out of the box, the links aviso sends point at where `aviso serve` listens.
    assert_eq!(
        DEFAULT_PUBLIC_URL.strip_prefix("http://"),
        Some(crate::config::DEFAULT_LISTEN)
    );
    assert_eq!(
        s.email.unsubscribe_url("T"),
        format!("{DEFAULT_PUBLIC_URL}/unsubscribe/T")
    );
    assert_eq!(s.email.attachment_limit, DEFAULT_ATTACHMENT_LIMIT);
    assert_eq!(s.concurrency, DEFAULT_CONCURRENCY);
    assert_eq!(s.lease, Duration::from_secs(DEFAULT_LEASE_SECONDS));
    assert_eq!(s.autopause, AutoPause::default());
    assert_eq!(s.retry, RetryPolicy::default());
    assert_eq!(s.grace_ms, hours_ms(DEFAULT_GRACE_HOURS));
    assert_eq!((s.email_provider, s.sms_provider), (None, None));
    assert!(s.default_window.is_none() && s.prices.is_none());
}

#[test]
fn the_database_url_is_flag_then_environment_then_file_then_default() {
    let text = "database_url = \"sqlite://data/aviso.db\"\n";
    let flag = || Overrides {
        database_url: Some("sqlite://flag.db".into()),
        ..Overrides::default()
    };
    let var = [("AVISO_DATABASE_URL", "postgres://env/aviso")];
    assert_eq!(
        resolve(file(text), &var, flag()).database_url,
        "sqlite://flag.db"
    );
    let s = resolve(file(text), &var, Overrides::default());
    assert_eq!(s.database_url, "postgres://env/aviso");
    // A relative SQLite path in the file is relative to the file.
    let s = resolve(file(text), &[], Overrides::default());
    assert_eq!(s.database_url, "sqlite://conf/data/aviso.db");
    let s = resolve(file(""), &[], Overrides::default());
    assert_eq!(s.database_url, DEFAULT_DATABASE_URL);
}

#[test]
fn a_secret_may_come_from_the_file_a_variable_names() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("url");
    std::fs::write(&secret, "postgres://from/file\n").unwrap();
    let named = secret.to_str().unwrap();
    let s = resolve(
        file(""),
        &[("AVISO_DATABASE_URL_FILE", named)],
        Overrides::default(),
    );
    assert_eq!(s.database_url, "postgres://from/file");
    // systemd's credentials, named after the variable.
    std::fs::write(dir.path().join("receipts-secret"), "s3cret").unwrap();
    let creds = [("CREDENTIALS_DIRECTORY", dir.path().to_str().unwrap())];
    let s = resolve(
        file("[receipts]\nsecret = \"file\"\n"),
        &creds,
        Overrides::default(),
    );
    assert_eq!(s.receipts_secret().unwrap().as_deref(), Some("s3cret"));
    // Debug output names the variables, never their values.
    assert!(!format!("{s:?}").contains(dir.path().to_str().unwrap()));
}

#[test]
fn the_environment_overrides_the_file() {
    let text = "public_url = \"https://file.example/\"\n\
                [email]\nprovider = \"file://outbox/email\"\n\
                [sms]\nprovider = \"file://outbox/sms\"\nusername = \"u\"\npassword = \"p\"\n\
                [receipts]\nsecret = \"from-file\"\n";
    let s = resolve(file(text), &[], Overrides::default());
    assert_eq!(s.public_url, "https://file.example");
    assert_eq!(
        s.email.unsubscribe_url("T"),
        "https://file.example/unsubscribe/T"
    );
    assert_eq!(s.provider_url(ChannelKind::Sms), Some("file://outbox/sms"));
    let credentials = s.credentials().unwrap();
    assert_eq!(credentials.sms_username.as_deref(), Some("u"));
    assert_eq!(credentials.base_dir, PathBuf::from("conf"));
    assert_eq!(s.receipts_secret().unwrap().as_deref(), Some("from-file"));
    let vars = [
        ("AVISO_PUBLIC_URL", "https://env.example"),
        ("AVISO_SMS_PROVIDER", "kannel://gw:13013"),
        // Empty: as if unset.
        ("AVISO_EMAIL_PROVIDER", ""),
        ("AVISO_SMS_USERNAME", "env-user"),
        ("AVISO_RECEIPTS_SECRET", "from-env"),
    ];
    let s = resolve(file(text), &vars, Overrides::default());
    assert_eq!(s.public_url, "https://env.example");
    assert_eq!(s.provider_url(ChannelKind::Sms), Some("kannel://gw:13013"));
    assert_eq!(
        s.provider_url(ChannelKind::Email),
        Some("file://outbox/email")
    );
    let credentials = s.credentials().unwrap();
    assert_eq!(credentials.sms_username.as_deref(), Some("env-user"));
    assert_eq!(credentials.sms_password.as_deref(), Some("p"));
    assert_eq!(s.receipts_secret().unwrap().as_deref(), Some("from-env"));
}

#[test]
fn the_worker_flags_override_the_file() {
    let text = "[worker]\nconcurrency = 8\nlease_seconds = 120\n";
    let s = resolve(file(text), &[], Overrides::default());
    assert_eq!((s.concurrency, s.lease), (8, Duration::from_secs(120)));
    let flags = Overrides {
        concurrency: Some(4),
        lease: Some(Duration::from_secs(30)),
        ..Overrides::default()
    };
    let s = resolve(file(text), &[], flags);
    assert_eq!((s.concurrency, s.lease), (4, Duration::from_secs(30)));
    // At least one send at a time, and one attempt to judge by.
    let text = "[worker]\nconcurrency = 0\n[schedule]\nautopause_window = 0\n";
    let s = resolve(file(text), &[], Overrides::default());
    assert_eq!((s.concurrency, s.autopause.window), (1, 1));
}

#[test]
fn the_file_sets_what_only_it_can() {
    let text = "timezone = \"UTC\"\ntemplates = \"tpl\"\n\
                [schedule]\ngrace_hours = 2\ndefault_window = \"09:00-20:00\"\n\
                autopause_ratio = 1.0\n\
                [retry]\nmax_attempts = 3\n\
                [sms]\nfrequency_cap = \"1/1d\"\n\
                [providers.bulk]\nchannel = \"correo\"\nurl = \"file://bulk\"\n";
    let s = resolve(file(text), &[], Overrides::default());
    assert_eq!(s.zone, chrono_tz::UTC);
    assert_eq!(s.templates_dir, Some(PathBuf::from("conf/tpl")));
    assert_eq!(s.grace_ms, 2 * 3_600_000);
    assert_eq!(
        s.default_window,
        Some(Window::parse("09:00-20:00").unwrap())
    );
    assert_eq!(s.autopause.ratio, 1.0);
    assert_eq!(s.retry.max_attempts, 3);
    assert_eq!(s.retry.initial, RetryPolicy::default().initial);
    assert!(s.frequency_cap(ChannelKind::Sms).is_some());
    assert!(s.frequency_cap(ChannelKind::Email).is_none());
    assert_eq!(s.providers["bulk"].channel, ChannelKind::Email);
    let flag = Overrides {
        templates: Some(PathBuf::from("mine")),
        ..Overrides::default()
    };
    let s = resolve(file(text), &[], flag);
    assert_eq!(s.templates_dir, Some(PathBuf::from("mine")));
}

#[test]
fn a_bad_value_is_named_with_its_file_and_key() {
    let err = error("timezone = \"Mars/Olympus\"\n", &[]);
    assert!(
        err.starts_with("conf/aviso.toml: timezone: unknown time zone"),
        "{err}"
    );
    let err = error("[schedule]\ndefault_window = \"late\"\n", &[]);
    assert!(
        err.starts_with("conf/aviso.toml: [schedule] default_window: "),
        "{err}"
    );
    let err = error("[email]\nfrom = \"nobody\"\n", &[]);
    assert!(err.starts_with("conf/aviso.toml: [email] from: "), "{err}");
    let err = error(
        "[providers.x]\nchannel = \"fax\"\nurl = \"file://x\"\n",
        &[],
    );
    assert!(
        err.starts_with("conf/aviso.toml: [providers.x] channel: "),
        "{err}"
    );
    let err = error("[prices]\ncurrency = \"MXN\"\n[prices.sms]\nXX = 1\n", &[]);
    assert!(
        err.starts_with("conf/aviso.toml: [prices.sms] XX: "),
        "{err}"
    );
    // What the file's reader refuses names the key and the line too.
    let parse = |text: &str| {
        Config::parse(text, DEFAULT_CONFIG.into())
            .unwrap_err()
            .to_string()
    };
    let err = parse("# workers\n[worker] # this host\nconcurrency = \"many\"\n");
    assert!(
        err.starts_with("aviso.toml: [worker] concurrency: line 3: invalid type"),
        "{err}"
    );
    let err = parse("timezone = 5\n");
    assert!(err.starts_with("aviso.toml: timezone: line 1: "), "{err}");
    let err = parse("[sms]\nfrequency_cap = \"2/7x\"\n");
    assert!(
        err.starts_with("aviso.toml: [sms] frequency_cap: line 2: "),
        "{err}"
    );
    let err = parse("[worker]\nconcurency = 3\n");
    assert!(
        err.starts_with("aviso.toml: [worker] concurency: line 2: unknown field"),
        "{err}"
    );
    let err = parse("[worker\n");
    assert!(err.starts_with("aviso.toml: line 1: "), "{err}");
}

#[test]
fn an_unreadable_secret_is_named_with_its_variable() {
    let missing = [("AVISO_DATABASE_URL_FILE", "/no/such/secret")];
    let err = error("", &missing);
    assert!(
        err.starts_with("AVISO_DATABASE_URL_FILE: /no/such/secret: cannot read the secret"),
        "{err}"
    );
    // The providers' secrets are read when a provider is opened, not before.
    let missing = [("AVISO_SMTP_PASSWORD_FILE", "/no/such/secret")];
    let s = resolve(file(""), &missing, Overrides::default());
    let err = s.credentials().unwrap_err().to_string();
    assert!(err.starts_with("AVISO_SMTP_PASSWORD_FILE: "), "{err}");
}
