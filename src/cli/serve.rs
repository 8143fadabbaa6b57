use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::Context;
use crate::dispatch::Tokens;
use crate::receipts::{router, Receipts};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (put a TLS proxy in front when it faces the internet)
    #[arg(long, default_value = "127.0.0.1:8025")]
    pub listen: SocketAddr,
}

pub async fn run(ctx: &Context, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    let receipts = Receipts {
        tokens: Tokens::from_store(store.as_ref()).await?,
        store,
        clock: ctx.clock.clone(),
        bounce_secret: crate::config::secret_from_env("AVISO_RECEIPTS_SECRET")?
            .or_else(|| ctx.config.file.receipts.secret.clone()),
    };
    if receipts.bounce_secret.is_none() {
        tracing::warn!("no AVISO_RECEIPTS_SECRET: the bounce endpoint stays closed");
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(
        "listening on {} (reports, bounces, unsubscribes, /healthz, /metrics); public URL {}",
        listener.local_addr()?,
        ctx.config.public_url()
    );
    axum::serve(listener, router(receipts))
        .with_graceful_shutdown(super::wait_for_signal())
        .await
        .context("the HTTP server stopped")?;
    Ok(ExitCode::SUCCESS)
}
