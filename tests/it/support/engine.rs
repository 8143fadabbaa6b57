//! The engine in-process, with an injected clock: a store, a renderer and
//! workers on file transports, for tests where time must move on command.

use std::sync::Arc;

use chrono::DateTime;
use tokio::sync::watch;

use aviso::campaigns::manage::{self, CampaignRequest};
use aviso::campaigns::NewActivity;
use aviso::channels::FileChannel;
use aviso::clock::{Clock, ManualClock};
use aviso::contacts::{import_file, ImportOptions};
use aviso::dispatch::{ChannelSet, Composer, DispatchOptions, Dispatcher};
use aviso::domain::ChannelKind;
use aviso::store::Store;
use aviso::templates::{EmailSettings, Renderer, TemplateSet};
use aviso::tokens::Tokens;

/// Milliseconds of an RFC 3339 time.
pub fn ms(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

/// A store, a clock and the means to run workers against file transports.
pub struct Setup {
    pub dir: tempfile::TempDir,
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

    pub async fn activity(&self, channel: &str) {
        manage::create_activity(
            self.store.as_ref(),
            NewActivity {
                code: "ACT".into(),
                name: "Actividad".into(),
                channel: Some(channel.into()),
                programmed: 100,
                period_from: None,
                period_to: None,
                split: "none".into(),
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

    /// A worker as `aviso worker --once` would run it, with this clock.
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
        let composer = Composer::new(
            self.renderer.clone(),
            Tokens::from_store(self.store.as_ref()).await.unwrap(),
            EmailSettings::new(
                "Voto <avisos@votoextranjero.example>",
                "http://127.0.0.1:8025/unsubscribe/{token}".into(),
                1 << 20,
            )
            .unwrap(),
            "http://127.0.0.1:8025".into(),
        );
        Dispatcher {
            store: self.store.clone(),
            composer: Arc::new(composer),
            channels,
            clock: self.clock.clone(),
            options: DispatchOptions::new(worker.into()),
        }
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
        let url = format!("sqlite://{}", self.dir.path().join("aviso.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query_as("SELECT country, sent_at FROM messages WHERE sent_at IS NOT NULL")
            .fetch_all(&pool)
            .await
            .unwrap()
    }
}
