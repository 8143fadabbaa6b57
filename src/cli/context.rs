//! What every command is given: the resolved settings, the clock, and the
//! ways to the database, the templates and the providers they name.

use std::sync::Arc;

use crate::channels::open_provider;
use crate::clock::Clock;
use crate::dispatch::{ChannelSet, Composer, DispatchOptions, Dispatcher};
use crate::domain::ChannelKind;
use crate::settings::Settings;
use crate::store::Store;
use crate::templates::{Renderer, TemplateSet};
use crate::tokens::Tokens;

/// What every command needs: the settings and a way to reach the database.
pub struct Context {
    pub settings: Settings,
    pub clock: Arc<dyn Clock>,
}

impl Context {
    pub async fn store(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(crate::store::open(&self.settings.database_url).await?)
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn template_set(&self) -> anyhow::Result<TemplateSet> {
        Ok(match &self.settings.templates_dir {
            Some(dir) => TemplateSet::from_dir(dir)?,
            None => TemplateSet::built_in()?,
        })
    }

    pub fn renderer(&self) -> anyhow::Result<Renderer> {
        Ok(Renderer::new(self.template_set()?)?)
    }

    /// Fails, saying how to fix it, if no provider is configured for a channel.
    pub fn check_provider(&self, kind: ChannelKind, named: Option<&str>) -> anyhow::Result<()> {
        if let Some(name) = named {
            match self.settings.providers.get(name) {
                Some(p) if p.channel == kind => return Ok(()),
                Some(p) => anyhow::bail!("provider {name:?} is for {}, not {kind}", p.channel),
                None => anyhow::bail!(
                    "provider {name:?} is not configured: add [providers.{name}] to aviso.toml"
                ),
            }
        }
        if self.settings.provider_url(kind).is_none() {
            let (var, section) = match kind {
                ChannelKind::Email => ("AVISO_EMAIL_PROVIDER", "email"),
                ChannelKind::Sms => ("AVISO_SMS_PROVIDER", "sms"),
            };
            anyhow::bail!(
                "no {kind} provider is configured: set {var} or `provider` under [{section}] in aviso.toml (e.g. file:///var/spool/aviso for a dry run)"
            );
        }
        Ok(())
    }

    /// The e-mail provider configured by default, opened (its DKIM key loaded
    /// and checked); `None` when there is none.
    pub fn email_provider(&self) -> anyhow::Result<Option<Arc<dyn crate::channels::Channel>>> {
        let Some(url) = self.settings.provider_url(ChannelKind::Email) else {
            return Ok(None);
        };
        Ok(Some(open_provider(
            url,
            ChannelKind::Email,
            &self.settings.credentials()?,
        )?))
    }

    /// Every provider this process can use.
    pub fn channel_set(&self) -> anyhow::Result<ChannelSet> {
        let ctx = self.settings.credentials()?;
        let mut set = ChannelSet::default();
        if let Some(url) = self.settings.provider_url(ChannelKind::Email) {
            set.email = Some(open_provider(url, ChannelKind::Email, &ctx)?);
        }
        if let Some(url) = self.settings.provider_url(ChannelKind::Sms) {
            set.sms = Some(open_provider(url, ChannelKind::Sms, &ctx)?);
        }
        for (name, p) in &self.settings.providers {
            set.named
                .insert(name.clone(), open_provider(&p.url, p.channel, &ctx)?);
        }
        Ok(set)
    }

    /// A dispatcher with the settings' worker, retry and schedule options.
    pub async fn dispatcher(&self, store: Arc<dyn Store>) -> anyhow::Result<Dispatcher> {
        let channels = self.channel_set()?;
        self.dispatcher_with(store, channels).await
    }

    /// [`Context::dispatcher`] sending through `channels` instead of the
    /// configured providers: the in-process tests wire their workers here, so
    /// they run what the CLI runs.
    pub async fn dispatcher_with(
        &self,
        store: Arc<dyn Store>,
        channels: ChannelSet,
    ) -> anyhow::Result<Dispatcher> {
        let settings = &self.settings;
        let renderer = Arc::new(self.renderer()?);
        let mut options = DispatchOptions::new(crate::dispatch::worker_id());
        options.concurrency = settings.concurrency;
        options.lease = settings.lease;
        options.retry = settings.retry.clone();
        options.schedule = crate::schedule::ScheduleSettings {
            zone: settings.zone,
            grace_ms: settings.grace_ms,
            budget: Some(self.budget_guard(renderer.clone())),
        };
        options.default_window = settings.default_window;
        options.autopause = settings.autopause;
        let composer = Composer::new(
            renderer,
            Tokens::from_store(store.as_ref()).await?,
            settings.email.clone(),
            settings.public_url.clone(),
        );
        Ok(Dispatcher {
            store,
            composer: Arc::new(composer),
            channels,
            clock: self.clock.clone(),
            options,
        })
    }

    /// What refuses runs over budget, with the prices of aviso.toml.
    pub fn budget_guard(&self, renderer: Arc<Renderer>) -> crate::cost::BudgetGuard {
        crate::cost::BudgetGuard {
            prices: self.settings.prices.clone(),
            renderer,
        }
    }
}

/// SIGINT (Ctrl-C) or SIGTERM (service managers, `kill`).
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
