//! Applying a citizen's reply and sending the confirmation.

use std::sync::Arc;

use serde_json::Value;

use super::{InboundOutcome, NewInbound, ReplyAction, ReplyStatus};
use crate::channels::{Channel, Outgoing, SmsOut};
use crate::clock::Clock;
use crate::domain::{mask_phone, PhoneNumber};
use crate::store::{Store, StoreError};
use crate::templates::{LangMode, Recipient, Renderer};

/// Applies inbound SMS and sends the confirmations.
pub struct Replier {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// The templates; none when they could not be loaded (the reply then fails).
    pub renderer: Option<Arc<Renderer>>,
    /// The SMS provider campaigns use; without one, changes still apply and
    /// are recorded, but no confirmation goes out.
    pub sms: Option<Arc<dyn Channel>>,
}

impl Replier {
    pub async fn handle(&self, inbound: NewInbound) -> Result<InboundOutcome, StoreError> {
        let applied = self
            .store
            .apply_reply(&inbound, self.clock.now_ms())
            .await?;
        let who = mask_phone(inbound.phone.as_str());
        match (applied.action, applied.kept) {
            (ReplyAction::KeptSuppressed, Some(reason)) => tracing::info!(
                "inbound SMS {} from {who}: {} asked, but the number stays suppressed ({reason}); no reply",
                applied.id,
                inbound.keyword
            ),
            (action, _) => tracing::info!(
                "inbound SMS {} from {who}: {}, {action}",
                applied.id,
                inbound.keyword
            ),
        }
        let reply = match applied.action.reply_template() {
            Some(template) => self.confirm(applied.id, &inbound.phone, template).await?,
            None => ReplyStatus::NotSent,
        };
        Ok(InboundOutcome {
            id: applied.id,
            keyword: inbound.keyword,
            action: applied.action,
            reply,
        })
    }

    /// Sends the confirmation straight through the provider, not through the
    /// outbox: outbox rows belong to a campaign's run and count towards its
    /// programmed totals, and a confirmation belongs to no campaign. It is
    /// tried once; the attempt and the provider's answer go in its `inbound`
    /// row. A failed confirmation leaves the change itself in place.
    async fn confirm(
        &self,
        id: i64,
        phone: &PhoneNumber,
        template: &str,
    ) -> Result<ReplyStatus, StoreError> {
        let (status, detail) = match &self.sms {
            None => (
                ReplyStatus::NoProvider,
                Some("no SMS provider is configured".to_string()),
            ),
            Some(channel) => match self.render(id, phone, template).await? {
                Err(why) => (ReplyStatus::Failed, Some(why)),
                Ok(sms) => match channel.send(&Outgoing::Sms(sms)).await {
                    Ok(accepted) => (
                        ReplyStatus::Sent,
                        Some(format!(
                            "{}{}",
                            channel.name(),
                            accepted.code.map(|c| format!(": {c}")).unwrap_or_default()
                        )),
                    ),
                    Err(e) => (
                        ReplyStatus::Failed,
                        Some(format!("{}: {e}", channel.name())),
                    ),
                },
            },
        };
        if status != ReplyStatus::Sent {
            tracing::warn!(
                "inbound SMS {id}: the {template} reply was not sent: {}",
                detail.as_deref().unwrap_or("")
            );
        }
        self.store.record_reply(id, status, detail).await?;
        Ok(status)
    }

    /// The reply in the language of the contact with this number (Spanish when
    /// the number is nobody's, or theirs is not available).
    async fn render(
        &self,
        id: i64,
        phone: &PhoneNumber,
        template: &str,
    ) -> Result<Result<SmsOut, String>, StoreError> {
        let mut recipient = Recipient {
            kind: "citizen".into(),
            language: "es".into(),
            ..Recipient::default()
        };
        let contacts = self.store.contacts_with_phone(phone.as_str()).await?;
        if let Some(holder) = contacts.first() {
            if let Some(record) = self.store.contact(&holder.id).await? {
                recipient = Recipient::from_contact(&record.contact);
            }
        }
        let Some(renderer) = &self.renderer else {
            return Ok(Err(
                "the templates could not be loaded when aviso serve started".into(),
            ));
        };
        let rendered = match renderer.render_sms(
            template,
            LangMode::Contact,
            &recipient,
            &Value::Object(Default::default()),
        ) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e.to_string())),
        };
        Ok(Ok(SmsOut {
            reference: format!("in{id}"),
            to: phone.as_str().to_string(),
            text: rendered.text,
            encoding: rendered.info.encoding,
            segments: rendered.info.segments,
            status_url: None,
        }))
    }
}
