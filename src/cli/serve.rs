use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;

use super::Context;
use crate::receipts::{router, Receipts};
use crate::replies::Replier;
use crate::tokens::Tokens;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (put a TLS proxy in front when it faces the internet)
    #[arg(long, default_value = crate::config::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
}

pub(super) async fn run(ctx: &Context, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let store = ctx.store().await?;
    // Delivery reports and bounces must keep flowing whatever happens to the
    // templates or the SMS provider's settings: a problem there only stops
    // the confirmations of citizens' replies, and says so.
    let renderer = match ctx.renderer() {
        Ok(renderer) => {
            for template in ["respuesta_baja", "respuesta_alta"] {
                if let Err(e) = renderer.template(template) {
                    tracing::warn!("{e}: SMS replies to BAJA / ALTA will not be confirmed");
                }
            }
            Some(Arc::new(renderer))
        }
        Err(e) => {
            tracing::warn!("{e:#}: SMS replies to BAJA / ALTA will not be confirmed");
            None
        }
    };
    let sms = match ctx.channel_set() {
        Ok(set) => set.sms,
        Err(e) => {
            tracing::warn!("{e:#}: SMS replies to BAJA / ALTA will not be confirmed");
            None
        }
    };
    let replies = Replier {
        store: store.clone(),
        clock: ctx.clock.clone(),
        renderer,
        sms,
    };
    let receipts = Receipts {
        tokens: Tokens::from_store(store.as_ref()).await?,
        store,
        clock: ctx.clock.clone(),
        bounce_secret: ctx.settings.receipts_secret()?,
        replies: Some(Arc::new(replies)),
    };
    if receipts.bounce_secret.is_none() {
        tracing::warn!(
            "no AVISO_RECEIPTS_SECRET: the bounce and inbound SMS endpoints stay closed"
        );
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(
        "listening on {} (reports, bounces, unsubscribes, inbound SMS, /healthz, /metrics); public URL {}",
        listener.local_addr()?,
        ctx.settings.public_url
    );
    axum::serve(listener, router(receipts))
        .with_graceful_shutdown(super::wait_for_signal())
        .await
        .context("the HTTP server stopped")?;
    Ok(ExitCode::SUCCESS)
}
