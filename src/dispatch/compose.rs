//! From an outbox row to a message a provider can take: render the template in
//! the recipient's language, add the per-message headers and tokens.

use std::sync::Arc;

use lettre::address::Envelope;
use serde_json::Value;

use crate::campaigns::{Campaign, ClaimedMessage};
use crate::channels::{Channel, DkimSigner, EmailOut, Outgoing, SmsOut};
use crate::domain::{ChannelKind, EmailAddress, Invalid};
use crate::schedule::Window;
use crate::templates::{
    build_email, Attachment, EmailHeaders, EmailSettings, LangMode, Recipient, RenderedEmail,
    Renderer,
};
use crate::tokens::{Purpose, Tokens};

/// A campaign, prepared once per worker: parsed settings and loaded attachments.
pub struct CampaignPlan {
    pub id: i64,
    pub name: String,
    pub template: String,
    pub channel: ChannelKind,
    pub lang_mode: LangMode,
    pub vars: Value,
    pub attachments: Vec<(Attachment, Arc<Vec<u8>>)>,
    pub provider: Option<String>,
    pub expires_at: Option<i64>,
    /// Send only inside this window of the recipient's local time.
    pub window: Option<Window>,
    /// The campaign's frequency cap (read from the store, not the campaign row).
    pub cap: Option<crate::domain::CapPolicy>,
}

impl CampaignPlan {
    /// `default_window` applies when the campaign sets none. Fails when an
    /// attachment cannot be read.
    pub fn prepare(c: &Campaign, default_window: Option<Window>) -> Result<CampaignPlan, String> {
        let mut attachments = Vec::with_capacity(c.attachments.len());
        for a in &c.attachments {
            let bytes = a.load().map_err(|e| e.to_string())?;
            attachments.push((a.clone(), bytes));
        }
        Ok(CampaignPlan {
            id: c.id,
            name: c.name.clone(),
            template: c.template.clone(),
            channel: c.channel,
            lang_mode: c.lang_mode,
            vars: Value::Object(c.vars.clone()),
            attachments,
            provider: c.provider.clone(),
            expires_at: c.expires_at,
            window: c.window.or(default_window),
            cap: None,
        })
    }
}

/// Builds the message for an outbox row.
pub struct Composer {
    pub renderer: Arc<Renderer>,
    pub tokens: Tokens,
    pub email: EmailSettings,
    /// Where `aviso serve` is reachable, for receipt URLs.
    pub public_url: String,
    /// Messages written in Spanish because the template lacks the contact's language.
    pub fallbacks: std::sync::atomic::AtomicU64,
}

impl Composer {
    pub fn new(
        renderer: Arc<Renderer>,
        tokens: Tokens,
        email: EmailSettings,
        public_url: String,
    ) -> Composer {
        Composer {
            renderer,
            tokens,
            email,
            public_url,
            fallbacks: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn count_fallback(&self, fell_back: bool, m: &ClaimedMessage, template: &str) {
        if fell_back {
            self.fallbacks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(
                "message {}: template {template} has no {} version; sent in Spanish",
                m.id,
                m.language
            );
        }
    }
}

impl Composer {
    /// `channel` says what the message may carry: 8-bit bodies (see
    /// [`EmailHeaders::eight_bit`]) and a delivery-report URL.
    pub fn compose(
        &self,
        plan: &CampaignPlan,
        m: &ClaimedMessage,
        channel: &dyn Channel,
    ) -> Result<Outgoing, String> {
        let recipient = recipient_of(m);
        let reference = reference(m.id);
        match plan.channel {
            ChannelKind::Sms => {
                let sms = self
                    .renderer
                    .render_sms(&plan.template, plan.lang_mode, &recipient, &plan.vars)
                    .map_err(|e| e.to_string())?;
                self.count_fallback(sms.fell_back, m, &plan.template);
                let status_url = channel.reports_delivery().then(|| {
                    let token = self.tokens.token(Purpose::Receipt, m.id);
                    format!("{}/receipts/sms/{token}", self.public_url)
                });
                Ok(Outgoing::Sms(SmsOut {
                    reference,
                    to: m.address.clone(),
                    text: sms.text,
                    encoding: sms.info.encoding,
                    segments: sms.info.segments,
                    status_url,
                }))
            }
            ChannelKind::Email => {
                let token = self.tokens.token(Purpose::Unsubscribe, m.id);
                let unsubscribe = self.email.unsubscribe_url(&token);
                let rendered = self
                    .renderer
                    .render_email(
                        &plan.template,
                        plan.lang_mode,
                        &recipient,
                        &plan.vars,
                        &unsubscribe,
                    )
                    .map_err(|e| e.to_string())?;
                self.count_fallback(rendered.fell_back, m, &plan.template);
                let to = EmailAddress::parse(&m.address).map_err(|Invalid(e)| e)?;
                let message_id = message_id(m, &self.email);
                let headers = EmailHeaders {
                    from: &self.email.from,
                    to: &to,
                    to_name: Some(recipient.full_name.as_str()).filter(|n| !n.is_empty()),
                    message_id: &message_id,
                    unsubscribe_url: Some(&unsubscribe),
                    eight_bit: channel.takes_8bit(),
                };
                let (envelope, raw) =
                    email_bytes(&rendered, &headers, &plan.attachments, channel.dkim())?;
                Ok(Outgoing::Email(EmailOut {
                    reference,
                    envelope,
                    raw,
                }))
            }
        }
    }
}

/// A message's envelope and its bytes exactly as they go on the wire: built,
/// then signed when the provider has a DKIM key. `aviso templates preview
/// --eml` goes through here too, so the preview is what would be sent.
pub fn email_bytes(
    rendered: &RenderedEmail,
    headers: &EmailHeaders<'_>,
    attachments: &[(Attachment, Arc<Vec<u8>>)],
    dkim: Option<&DkimSigner>,
) -> Result<(Envelope, Vec<u8>), String> {
    let message = build_email(rendered, headers, attachments).map_err(|e| e.to_string())?;
    let envelope = message.envelope().clone();
    let raw = message.formatted();
    let raw = match dkim {
        Some(signer) => signer.sign(&raw).map_err(|e| e.to_string())?,
        None => raw,
    };
    Ok((envelope, raw))
}

/// The reference a provider sees for an outbox row: stable across resends.
pub fn reference(message_id: i64) -> String {
    format!("m{message_id}")
}

/// `<aviso.{run}.{message}@{sender's domain}>`: the same for every resend of a
/// row, so a duplicate after a crash can be recognised downstream.
pub fn message_id(m: &ClaimedMessage, email: &EmailSettings) -> String {
    let domain = email.from.email.domain();
    format!("<aviso.{}.{}@{domain}>", m.run_id, m.id)
}

pub fn recipient_of(m: &ClaimedMessage) -> Recipient {
    let full_name = [m.first_name.as_deref(), m.last_name.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    Recipient {
        id: m.contact_id.clone(),
        kind: m.kind.clone(),
        first_name: m.first_name.clone(),
        last_name: m.last_name.clone(),
        full_name,
        entity: m.entity.clone(),
        country: m.country.clone(),
        language: m.language.clone(),
        credential: m.credential.clone(),
        population: m.population.clone(),
        modality: m.modality.clone(),
    }
}
