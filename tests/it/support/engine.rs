//! The engine in-process, with an injected clock: a store, a renderer and
//! workers wired as the CLI wires them, on file transports or any channel a
//! test brings, for tests where time must move on command.

use std::sync::Arc;

use chrono::DateTime;
use tokio::sync::watch;

use aviso::campaigns::manage::{self, CampaignRequest};
use aviso::campaigns::{ActivitySplit, NewActivity};
use aviso::channels::FileChannel;
use aviso::cli::Context;
use aviso::clock::{Clock, ManualClock};
use aviso::config::Config;
use aviso::contacts::{import_file, ImportOptions};
use aviso::dispatch::{ChannelSet, Dispatcher};
use aviso::domain::ChannelKind;
use aviso::settings::{Env, Overrides, Settings};
use aviso::store::Store;
use aviso::templates::{Renderer, TemplateSet};

/// Milliseconds of an RFC 3339 time.
pub fn ms(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

/// A store, a clock and the means to run workers against file transports.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub store: Arc<dyn Store>,
    pub clock: Arc<ManualClock>,
    pub renderer: Arc<Renderer>,
}

impl Setup {
    pub async fn new(now: i64) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("aviso.db").display());
        Setup::on(&url, dir, now).await
    }

    /// The same on the database at `url` (e.g. a fresh PostgreSQL database).
    pub async fn on(url: &str, dir: tempfile::TempDir, now: i64) -> Setup {
        let store = aviso::store::open(url).await.unwrap();
        let renderer = Arc::new(Renderer::new(TemplateSet::built_in().unwrap()).unwrap());
        Setup {
            dir,
            url: url.to_string(),
            store,
            clock: ManualClock::at(now),
            renderer,
        }
    }

    pub async fn import(&self, list: &str, csv: &str) {
        let path = self
            .dir
            .path()
            .join(format!("{list}-{}.csv", self.clock.now_ms()));
        std::fs::write(&path, csv).unwrap();
        let options = ImportOptions {
            list: list.into(),
            rejects: Some(self.dir.path().join("rejects.csv")),
            dry_run: false,
            encoding: None,
            progress: false,
        };
        let summary = import_file(self.store.as_ref(), &path, &options, self.clock.now_ms())
            .await
            .unwrap();
        assert_eq!(summary.rejected, 0, "{summary:?}");
    }

    /// The activity `ACT`, for e-mail, that the tests' campaigns count against.
    pub async fn email_activity(&self) {
        manage::create_activity(
            self.store.as_ref(),
            NewActivity {
                code: "ACT".into(),
                name: "Actividad".into(),
                channel: Some(ChannelKind::Email),
                programmed: 100,
                period_from: None,
                period_to: None,
                split: ActivitySplit::Whole,
            },
            self.clock.now_ms(),
        )
        .await
        .unwrap();
    }

    pub async fn campaign(&self, request: CampaignRequest) -> i64 {
        manage::create_campaign(
            self.store.as_ref(),
            &self.renderer,
            request,
            self.clock.now_ms(),
        )
        .await
        .unwrap()
    }

    /// A worker as `aviso worker --once` would run it, with this clock, on
    /// file transports.
    pub async fn dispatcher(&self, worker: &str) -> Dispatcher {
        let out = self.dir.path().join("out");
        let channels = ChannelSet {
            email: Some(Arc::new(
                FileChannel::new(out.join("email"), ChannelKind::Email).unwrap(),
            )),
            sms: Some(Arc::new(
                FileChannel::new(out.join("sms"), ChannelKind::Sms).unwrap(),
            )),
            ..ChannelSet::default()
        };
        self.dispatcher_with(worker, channels).await
    }

    /// A worker sending through `channels`, wired by the CLI's own code
    /// (`Context::dispatcher_with`) with no aviso.toml and no environment.
    pub async fn dispatcher_with(&self, worker: &str, channels: ChannelSet) -> Dispatcher {
        let overrides = Overrides {
            database_url: Some(self.url.clone()),
            ..Overrides::default()
        };
        let context = Context {
            settings: Settings::resolve(Config::absent(), Env::default(), overrides).unwrap(),
            clock: self.clock.clone(),
        };
        let mut dispatcher = context
            .dispatcher_with(self.store.clone(), channels)
            .await
            .unwrap();
        dispatcher.options.worker_id = worker.into();
        dispatcher
    }

    pub async fn run_workers(&self, n: usize) {
        let mut dispatchers = Vec::new();
        for i in 0..n {
            dispatchers.push(self.dispatcher(&format!("worker-{i}")).await);
        }
        let (_keep, shutdown) = watch::channel(false);
        let runs = dispatchers.iter().map(|d| d.run(true, shutdown.clone()));
        for report in futures::future::join_all(runs).await {
            report.unwrap();
        }
    }

    /// (country, sent at) of every message sent.
    pub async fn sent(&self) -> Vec<(String, i64)> {
        let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
        sqlx::query_as("SELECT country, sent_at FROM messages WHERE sent_at IS NOT NULL")
            .fetch_all(&pool)
            .await
            .unwrap()
    }
}

/// A `registro_abierto` e-mail campaign of activity `ACT` to the list `citizens`.
pub fn email_request() -> CampaignRequest {
    CampaignRequest {
        activity: "ACT".into(),
        template: "registro_abierto".into(),
        channel: Some(ChannelKind::Email),
        list: "citizens".into(),
        attachment_limit: 1 << 20,
        ..CampaignRequest::default()
    }
}
