//! A provider in-process that answers from a script, so the dispatch loop's
//! retry, pause and crash paths run without any peer: each send takes the next
//! answer of the script, and once it is used up, the standing answer.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use aviso::channels::{Accepted, Channel, DeliveryError, Outgoing, ProviderInfo};
use aviso::domain::{ChannelKind, SuppressionReason};

/// What the provider answers to one send.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Accepted (250 / 202).
    Ok,
    /// Try again later (SMTP 451).
    Temporary,
    /// Fails for good (SMTP 550); `suppress` when the address itself is bad.
    Permanent { suppress: Option<SuppressionReason> },
    /// HTTP 429 with Retry-After.
    TooMany { retry_after: Duration },
    /// Never answers: the worker's send timeout decides, or a crash.
    Timeout,
}

/// One send the provider saw: the message's reference (`m<id>`) and the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub reference: String,
    pub answer: Answer,
}

pub struct ScriptedChannel {
    info: ProviderInfo,
    script: Mutex<VecDeque<Answer>>,
    standing: Answer,
    /// How long every answer takes: a slow provider.
    latency: Duration,
    calls: Mutex<Vec<Call>>,
}

impl ScriptedChannel {
    /// A provider named `scripted` for `kind`, answering `script` in order,
    /// then `standing` to every send after.
    pub fn new(
        kind: ChannelKind,
        script: impl IntoIterator<Item = Answer>,
        standing: Answer,
    ) -> ScriptedChannel {
        ScriptedChannel {
            info: ProviderInfo {
                name: "scripted".into(),
                kind,
                rate: None,
                connections: 64,
            },
            script: Mutex::new(script.into_iter().collect()),
            standing,
            latency: Duration::ZERO,
            calls: Mutex::default(),
        }
    }

    /// The same, taking `latency` over every answer.
    pub fn slow(self, latency: Duration) -> ScriptedChannel {
        ScriptedChannel { latency, ..self }
    }

    /// Every send so far, in the order they reached the provider.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// References of the messages the provider accepted, in order (with a
    /// latency: also those it is about to accept).
    pub fn accepted(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| c.answer == Answer::Ok)
            .map(|c| c.reference)
            .collect()
    }

    fn next_answer(&self) -> Answer {
        let scripted = self.script.lock().unwrap().pop_front();
        scripted.unwrap_or_else(|| self.standing.clone())
    }
}

#[async_trait]
impl Channel for ScriptedChannel {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    async fn send(&self, message: &Outgoing) -> Result<Accepted, DeliveryError> {
        let answer = self.next_answer();
        self.calls.lock().unwrap().push(Call {
            reference: message.reference().to_string(),
            answer: answer.clone(),
        });
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        match answer {
            Answer::Ok => Ok(Accepted {
                code: Some("250".into()),
                provider_ref: Some(format!("scripted-{}", message.reference())),
            }),
            Answer::Temporary => Err(DeliveryError::Temporary {
                code: Some("451".into()),
                reason: "451 4.3.0 try again later".into(),
                retry_after: None,
                throttle: false,
            }),
            Answer::Permanent { suppress } => Err(DeliveryError::Permanent {
                code: Some("550".into()),
                reason: "550 5.1.1 no such user".into(),
                suppress,
            }),
            Answer::TooMany { retry_after } => Err(DeliveryError::Temporary {
                code: Some("429".into()),
                reason: "429 Too Many Requests".into(),
                retry_after: Some(retry_after),
                throttle: true,
            }),
            Answer::Timeout => std::future::pending().await,
        }
    }
}
