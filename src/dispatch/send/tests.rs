//! `send_one` alone: from a claimed message, a plan and a provider's answer to
//! the outcome the recorder commits.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use super::*;
use crate::channels::{Accepted, ProviderInfo};
use crate::clock::ManualClock;
use crate::domain::SuppressionReason;
use crate::schedule::Window;
use crate::templates::{EmailSettings, LangMode, Renderer, TemplateSet};
use crate::tokens::Tokens;

const CAMPAIGN: i64 = 7;
/// 2021-10-04T12:00:00Z.
const NOW: i64 = 1_633_348_800_000;

/// A provider that gives every send the same answer, and counts the sends.
struct Fixed {
    info: ProviderInfo,
    answer: Option<Result<Accepted, DeliveryError>>,
    sends: AtomicUsize,
}

impl Fixed {
    /// `None`: never answers.
    fn new(answer: Option<Result<Accepted, DeliveryError>>) -> Fixed {
        Fixed {
            info: ProviderInfo {
                name: "fixed".into(),
                kind: ChannelKind::Email,
                rate: None,
                connections: 1,
            },
            answer,
            sends: AtomicUsize::new(0),
        }
    }

    fn sends(&self) -> usize {
        self.sends.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Channel for Fixed {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    async fn send(&self, _message: &Outgoing) -> Result<Accepted, DeliveryError> {
        self.sends.fetch_add(1, Ordering::SeqCst);
        match &self.answer {
            Some(answer) => answer.clone(),
            None => std::future::pending().await,
        }
    }
}

fn context() -> SendContext {
    let renderer = Renderer::new(TemplateSet::built_in().unwrap()).unwrap();
    let email = EmailSettings::new(
        "Voto <avisos@votoextranjero.example>",
        "http://127.0.0.1:8025/unsubscribe/{token}".into(),
        1 << 20,
    )
    .unwrap();
    SendContext {
        composer: Arc::new(Composer::new(
            Arc::new(renderer),
            Tokens::new(b"test key"),
            email,
            "http://127.0.0.1:8025".into(),
        )),
        clock: ManualClock::at(NOW),
        retry: RetryPolicy::default(),
        send_timeout: Duration::from_millis(50),
        gates: HashMap::new(),
        shared: HashMap::new(),
        refused_at: std::sync::Mutex::default(),
        started: std::time::Instant::now(),
        zone: chrono_tz::America::Mexico_City,
        running: std::sync::RwLock::new(HashSet::from([CAMPAIGN])),
    }
}

fn plan() -> CampaignPlan {
    CampaignPlan {
        id: CAMPAIGN,
        name: "Registro".into(),
        template: "registro_abierto".into(),
        channel: ChannelKind::Email,
        lang_mode: LangMode::Contact,
        vars: serde_json::json!({}),
        attachments: Vec::new(),
        provider: None,
        expires_at: None,
        window: None,
        cap: None,
    }
}

/// A citizen in Tokyo (one time zone), on a first attempt.
fn message() -> ClaimedMessage {
    ClaimedMessage {
        id: 42,
        run_id: 1,
        campaign_id: CAMPAIGN,
        contact_id: "C1".into(),
        channel: ChannelKind::Email,
        address: "ana@example.org".into(),
        kind: "citizen".into(),
        first_name: Some("Ana".into()),
        last_name: Some("López".into()),
        entity: Some("OAX".into()),
        country: Some("JP".into()),
        language: "es".into(),
        credential: Some("CPVE".into()),
        population: Some("primaria".into()),
        modality: Some("postal".into()),
        attempts: 0,
        lease_epoch: 3,
    }
}

fn temporary(retry_after: Option<Duration>) -> DeliveryError {
    DeliveryError::Temporary {
        code: Some("451".into()),
        reason: "451 try again later".into(),
        retry_after,
        throttle: false,
    }
}

#[tokio::test]
async fn an_expired_campaign_sends_nothing() {
    let channel = Fixed::new(Some(Ok(Accepted::default())));
    let plan = CampaignPlan {
        expires_at: Some(NOW),
        ..plan()
    };
    let outcome = send_one(&context(), &plan, &channel, &message()).await;
    assert_eq!(outcome.kind, OutcomeKind::Expired);
    assert_eq!((outcome.message_id, outcome.lease_epoch), (42, 3));
    assert_eq!(channel.sends(), 0);
}

#[tokio::test]
async fn outside_the_window_of_the_recipients_zone_waits_for_it_without_an_attempt() {
    let channel = Fixed::new(Some(Ok(Accepted::default())));
    let plan = CampaignPlan {
        window: Some(Window::parse("09:00-20:00").unwrap()),
        ..plan()
    };
    // 21:00 in Tokyo: the window opens at 09:00 there, 00:00 UTC.
    let outcome = send_one(&context(), &plan, &channel, &message()).await;
    assert_eq!(
        outcome.kind,
        OutcomeKind::Deferred {
            next_attempt_at: NOW + 12 * 3_600_000
        }
    );
    assert_eq!(outcome.code.as_deref(), Some("window"));
    assert_eq!(channel.sends(), 0);

    // Inside the window, it goes.
    let ctx = context();
    let clock = ManualClock::at(NOW - 6 * 3_600_000);
    let ctx = SendContext { clock, ..ctx };
    let outcome = send_one(&ctx, &plan, &channel, &message()).await;
    assert!(
        matches!(outcome.kind, OutcomeKind::Sent { .. }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_template_that_cannot_render_fails_for_good_before_the_provider() {
    let channel = Fixed::new(Some(Ok(Accepted::default())));
    let plan = CampaignPlan {
        template: "no_such_template".into(),
        ..plan()
    };
    let outcome = send_one(&context(), &plan, &channel, &message()).await;
    assert_eq!(
        outcome.kind,
        OutcomeKind::Failed {
            permanent: true,
            suppress: None
        }
    );
    assert_eq!(
        (outcome.provider.as_str(), outcome.code.as_deref()),
        ("aviso", Some("template"))
    );
    assert_eq!(channel.sends(), 0);
}

#[tokio::test]
async fn an_accepted_message_is_sent_with_the_providers_reference() {
    let channel = Fixed::new(Some(Ok(Accepted {
        code: Some("250".into()),
        provider_ref: Some("abc".into()),
    })));
    let outcome = send_one(&context(), &plan(), &channel, &message()).await;
    assert_eq!(
        outcome.kind,
        OutcomeKind::Sent {
            provider_ref: Some("abc".into()),
            segments: None
        }
    );
    assert_eq!(
        (outcome.provider.as_str(), outcome.code.as_deref()),
        ("fixed", Some("250"))
    );
    assert!(outcome.latency_ms.is_some());
    assert_eq!(channel.sends(), 1);
}

#[tokio::test]
async fn a_temporary_failure_is_retried_later_and_gives_up_on_the_last_attempt() {
    let channel = Fixed::new(Some(Err(temporary(None))));
    let outcome = send_one(&context(), &plan(), &channel, &message()).await;
    let OutcomeKind::Retry { next_attempt_at } = outcome.kind else {
        panic!("{outcome:?}")
    };
    // 30 s ± 50 %.
    assert!((NOW + 15_000..=NOW + 45_000).contains(&next_attempt_at));
    assert_eq!(outcome.code.as_deref(), Some("451"));

    // The provider's Retry-After wins over a shorter backoff.
    let channel = Fixed::new(Some(Err(temporary(Some(Duration::from_secs(3600))))));
    let outcome = send_one(&context(), &plan(), &channel, &message()).await;
    assert_eq!(
        outcome.kind,
        OutcomeKind::Retry {
            next_attempt_at: NOW + 3_600_000
        }
    );

    let last = ClaimedMessage {
        attempts: i64::from(RetryPolicy::default().max_attempts) - 1,
        ..message()
    };
    let outcome = send_one(&context(), &plan(), &channel, &last).await;
    assert_eq!(
        outcome.kind,
        OutcomeKind::Failed {
            permanent: false,
            suppress: None
        }
    );
    let reason = outcome.reason.unwrap_or_default();
    assert!(reason.starts_with("gave up after 8 attempts"), "{reason}");
}

#[tokio::test]
async fn no_answer_within_the_send_timeout_is_a_temporary_failure() {
    let channel = Fixed::new(None);
    let outcome = send_one(&context(), &plan(), &channel, &message()).await;
    assert!(
        matches!(outcome.kind, OutcomeKind::Retry { .. }),
        "{outcome:?}"
    );
    let reason = outcome.reason.unwrap_or_default();
    assert!(reason.starts_with("no answer within"), "{reason}");
}

#[tokio::test]
async fn a_permanent_failure_fails_at_once_and_suppresses_when_the_address_is_bad() {
    let refused = |suppress| {
        Fixed::new(Some(Err(DeliveryError::Permanent {
            code: Some("550".into()),
            reason: "550 5.1.1 no such user".into(),
            suppress,
        })))
    };
    let channel = refused(Some(SuppressionReason::HardBounce));
    let outcome = send_one(&context(), &plan(), &channel, &message()).await;
    assert_eq!(
        outcome.kind,
        OutcomeKind::Failed {
            permanent: true,
            suppress: Some((
                "ana@example.org".into(),
                SuppressionScope::Email,
                SuppressionReason::HardBounce
            ))
        }
    );
    assert_eq!(outcome.code.as_deref(), Some("550"));

    let outcome = send_one(&context(), &plan(), &refused(None), &message()).await;
    assert_eq!(
        outcome.kind,
        OutcomeKind::Failed {
            permanent: true,
            suppress: None
        }
    );
}

#[tokio::test]
async fn a_message_of_a_campaign_paused_while_it_waited_goes_back_unsent() {
    let channel = Fixed::new(Some(Ok(Accepted::default())));
    let ctx = SendContext {
        running: std::sync::RwLock::new(HashSet::new()),
        ..context()
    };
    let outcome = send_one(&ctx, &plan(), &channel, &message()).await;
    assert_eq!(
        outcome.kind,
        OutcomeKind::Deferred {
            next_attempt_at: NOW
        }
    );
    assert_eq!(channel.sends(), 0);
}
