//! The dispatch loop with no peer at all: the library's own worker, wired as
//! the CLI wires it, on SQLite in a temp dir, sending through a provider that
//! answers from a script. Retries, permanent failures, auto-pause and a worker
//! killed mid-run, with a manual clock so that retries come due on command.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use aviso::campaigns::manage;
use aviso::campaigns::{CampaignState, StatusCounts};
use aviso::clock::Clock;
use aviso::dispatch::{AutoPause, ChannelSet, Dispatcher, WorkerReport, RECORD_BATCH};
use aviso::domain::{ChannelKind, SuppressionReason, SuppressionScope};

use crate::dispatch::citizens_csv;
use crate::support::engine::{email_request, ms, Setup};
use crate::support::scripted::{Answer, ScriptedChannel};

const T0: &str = "2021-10-04T12:00:00-05:00";

/// A started e-mail campaign to `n` citizens.
async fn started_campaign(s: &Setup, n: usize) -> i64 {
    s.email_activity().await;
    s.import("citizens", &citizens_csv(n)).await;
    let id = s.campaign(email_request()).await;
    manage::start(s.store.as_ref(), id, chrono_tz::UTC, s.clock.now_ms())
        .await
        .unwrap();
    id
}

async fn worker(s: &Setup, name: &str, channel: &Arc<ScriptedChannel>) -> Dispatcher {
    let channels = ChannelSet {
        email: Some(channel.clone()),
        ..ChannelSet::default()
    };
    s.dispatcher_with(name, channels).await
}

/// One `aviso worker --once`: sends what is due, then returns.
async fn once(d: &Dispatcher) -> WorkerReport {
    let (_keep, shutdown) = watch::channel(false);
    d.run(true, shutdown).await.unwrap()
}

async fn counts(s: &Setup, id: i64) -> StatusCounts {
    s.store.status_counts(id).await.unwrap().messages
}

/// A message as the outbox holds it.
#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: i64,
    address: String,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
}

async fn rows(s: &Setup, campaign: i64) -> Vec<Row> {
    let pool = sqlx::SqlitePool::connect(&s.url).await.unwrap();
    sqlx::query_as(
        "SELECT id, address, status, attempts, next_attempt_at FROM messages \
         WHERE campaign_id = $1 ORDER BY id",
    )
    .bind(campaign)
    .fetch_all(&pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_failures_are_retried_later_each_time_then_sent_once() {
    let s = Setup::new(ms(T0)).await;
    let id = started_campaign(&s, 1).await;
    let script = [
        Answer::Temporary,
        Answer::Temporary,
        Answer::TooMany {
            retry_after: Duration::from_secs(600),
        },
        Answer::Timeout,
    ];
    let channel = Arc::new(ScriptedChannel::new(ChannelKind::Email, script, Answer::Ok));
    let mut d = worker(&s, "w", &channel).await;
    // The one answer that never comes is a temporary failure after this.
    d.options.send_timeout = Duration::from_millis(200);

    let mut waits = Vec::new();
    for attempt in 1..=4 {
        let report = once(&d).await;
        assert_eq!((report.retrying, report.sent), (1, 0), "attempt {attempt}");
        let [m] = &rows(&s, id).await[..] else {
            panic!("one message")
        };
        assert_eq!((m.status.as_str(), m.attempts), ("retrying", attempt));
        waits.push(m.next_attempt_at - s.clock.now_ms());
        // Not due yet: a worker now sends nothing.
        let report = once(&d).await;
        assert_eq!((report.retrying, report.sent), (0, 0), "attempt {attempt}");
        s.clock.set(m.next_attempt_at);
    }
    let report = once(&d).await;
    assert_eq!((report.sent, report.retrying, report.failed), (1, 0, 0));
    let [m] = &rows(&s, id).await[..] else {
        panic!("one message")
    };
    assert_eq!((m.status.as_str(), m.attempts), ("sent", 5));
    let answers: Vec<Answer> = channel.calls().into_iter().map(|c| c.answer).collect();
    assert_eq!(answers.len(), 5, "{answers:?}");
    assert_eq!(answers[4], Answer::Ok);

    // The default policy: 30 s doubling, ±50 % jitter; a 429 waits at least
    // its Retry-After.
    assert!((15_000..=45_000).contains(&waits[0]), "{waits:?}");
    assert!((30_000..=90_000).contains(&waits[1]), "{waits:?}");
    assert!(waits[2] >= 600_000, "{waits:?}");
    assert!((120_000..=360_000).contains(&waits[3]), "{waits:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_fails_at_once_and_a_bad_address_is_suppressed() {
    let s = Setup::new(ms(T0)).await;
    let id = started_campaign(&s, 3).await;
    let script = [
        Answer::Permanent {
            suppress: Some(SuppressionReason::HardBounce),
        },
        Answer::Permanent { suppress: None },
    ];
    let channel = Arc::new(ScriptedChannel::new(ChannelKind::Email, script, Answer::Ok));
    let mut d = worker(&s, "w", &channel).await;
    // One sender: the script's answers go to the messages in order.
    d.options.concurrency = 1;

    let report = once(&d).await;
    assert_eq!(
        (report.sent, report.failed, report.retrying),
        (1, 2, 0),
        "{report:?}"
    );
    let c = counts(&s, id).await;
    assert_eq!((c.sent, c.failed, c.queued, c.retrying), (1, 2, 0, 0));
    let rows = rows(&s, id).await;
    let by_reference = |i: usize| {
        let reference = &channel.calls()[i].reference;
        rows.iter()
            .find(|r| format!("m{}", r.id) == *reference)
            .unwrap_or_else(|| panic!("no message {reference}"))
    };
    let (bounced, refused) = (by_reference(0), by_reference(1));
    for m in [bounced, refused] {
        assert_eq!((m.status.as_str(), m.attempts), ("failed", 1), "{m:?}");
    }

    // Only the address the provider called bad is kept from later runs.
    let suppressed = s
        .store
        .suppressions(Some(SuppressionScope::Email))
        .await
        .unwrap();
    let suppressed: Vec<(&str, SuppressionReason)> = suppressed
        .iter()
        .map(|x| (x.address.as_str(), x.reason))
        .collect();
    assert_eq!(
        suppressed,
        [(bounced.address.as_str(), SuppressionReason::HardBounce)]
    );

    // Nothing is retried.
    s.clock.set(ms(T0) + 86_400_000);
    let report = once(&d).await;
    assert_eq!((report.sent, report.failed, report.retrying), (0, 0, 0));
    assert_eq!(channel.calls().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_permanent_failures_pauses_the_campaign_and_keeps_the_rest() {
    const N: i64 = 2000;
    let s = Setup::new(ms(T0)).await;
    let id = started_campaign(&s, N as usize).await;
    // A provider refusing everything, slowly enough that the worker looks at
    // its failures long before it could have tried the whole list.
    let channel = Arc::new(
        ScriptedChannel::new(ChannelKind::Email, [], Answer::Permanent { suppress: None })
            .slow(Duration::from_millis(2)),
    );
    let mut d = worker(&s, "w", &channel).await;
    d.options.concurrency = 2;
    d.options.batch = 20;
    d.options.autopause = AutoPause {
        window: 20,
        ratio: 0.5,
    };
    // The worker looks at failures once a second of its clock.
    let clock = s.clock.clone();
    let ticking = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            clock.set(clock.now_ms() + 1000);
        }
    });
    once(&d).await;
    ticking.abort();

    let campaign = s.store.campaign(id).await.unwrap().unwrap();
    assert_eq!(campaign.state, CampaignState::Paused);
    let reason = campaign.pause_reason.unwrap_or_default();
    assert!(reason.contains("paused automatically"), "{reason}");
    let paused = counts(&s, id).await;
    assert!(paused.failed > 10, "{paused:?}");
    assert!(paused.queued > 0, "the pause kept the rest: {paused:?}");
    assert_eq!(paused.failed + paused.queued, N, "{paused:?}");
    assert_eq!(channel.calls().len() as i64, paused.failed);

    // Paused stays paused: a worker sends nothing more, and the permanent
    // failures are never tried again.
    s.clock.set(s.clock.now_ms() + 86_400_000);
    let report = once(&d).await;
    assert_eq!((report.sent, report.failed, report.retrying), (0, 0, 0));
    assert_eq!(counts(&s, id).await, paused);
    let refs: Vec<String> = channel.calls().into_iter().map(|c| c.reference).collect();
    let distinct: HashSet<&String> = refs.iter().collect();
    assert_eq!(distinct.len(), refs.len(), "each message tried once");

    // The cause fixed and the campaign resumed, the failures that paused it
    // do not pause it again: the rest is sent.
    let fixed = Arc::new(ScriptedChannel::new(ChannelKind::Email, [], Answer::Ok));
    let mut d = worker(&s, "w2", &fixed).await;
    d.options.autopause = AutoPause {
        window: 20,
        ratio: 0.5,
    };
    manage::resume(s.store.as_ref(), id, s.clock.now_ms())
        .await
        .unwrap();
    let report = once(&d).await;
    assert_eq!(report.sent as i64, paused.queued, "{report:?}");
    let done = counts(&s, id).await;
    assert_eq!(
        (done.sent, done.failed, done.queued),
        (paused.queued, paused.failed, 0)
    );
    let campaign = s.store.campaign(id).await.unwrap().unwrap();
    assert_eq!(campaign.state, CampaignState::Completed);
}

/// What the providers saw around a worker killed mid-run.
struct Crash {
    /// Every message of the campaign, by reference.
    all: HashSet<String>,
    /// Accepted from the worker that was killed.
    before: HashSet<String>,
    /// Sends it had under way when it was killed (never answered).
    in_flight: Vec<String>,
    /// Accepted from the worker that took over.
    after: HashSet<String>,
    /// Sends of the worker that took over, duplicates included.
    survivor_sends: usize,
}

const CRASH_N: usize = 300;
const CRASH_CONCURRENCY: usize = 4;
const BEFORE_THE_CRASH: usize = 100;

/// A worker whose provider accepts a hundred messages and then hangs is
/// killed (its whole runtime dropped, as `kill -9` would) once every sender
/// hangs, and, with `committed`, once the hundred are recorded; past its
/// leases, another worker sends what is left.
fn crash_and_take_over(committed: bool) -> Crash {
    let main = tokio::runtime::Runtime::new().unwrap();
    let s = main.block_on(Setup::new(ms(T0)));
    let id = main.block_on(started_campaign(&s, CRASH_N));

    let first = Arc::new(ScriptedChannel::new(
        ChannelKind::Email,
        vec![Answer::Ok; BEFORE_THE_CRASH],
        Answer::Timeout,
    ));
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    doomed.block_on(async {
        let w = Setup::on(&s.url, tempfile::tempdir().unwrap(), ms(T0)).await;
        let mut d = worker(&w, "doomed", &first).await;
        d.options.concurrency = CRASH_CONCURRENCY;
        let (stop, shutdown) = watch::channel(false);
        tokio::spawn(async move {
            let _stop = stop;
            d.run(false, shutdown).await
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let stuck = first.calls().len() >= BEFORE_THE_CRASH + CRASH_CONCURRENCY;
            let recorded = !committed || counts(&w, id).await.sent == BEFORE_THE_CRASH as i64;
            if stuck && recorded {
                break;
            }
            assert!(Instant::now() < deadline, "the worker never got there");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    doomed.shutdown_background();

    // Past the dead worker's leases.
    s.clock.set(ms(T0) + 120_000);
    let second = Arc::new(ScriptedChannel::new(ChannelKind::Email, [], Answer::Ok));
    main.block_on(async {
        let d = worker(&s, "survivor", &second).await;
        once(&d).await;
        let c = counts(&s, id).await;
        assert_eq!(
            (c.sent, c.queued, c.sending, c.retrying, c.failed),
            (CRASH_N as i64, 0, 0, 0, 0),
            "{c:?}"
        );
    });
    Crash {
        all: main
            .block_on(rows(&s, id))
            .iter()
            .map(|r| format!("m{}", r.id))
            .collect(),
        before: first.accepted().into_iter().collect(),
        in_flight: first
            .calls()
            .into_iter()
            .filter(|c| c.answer == Answer::Timeout)
            .map(|c| c.reference)
            .collect(),
        after: second.accepted().into_iter().collect(),
        survivor_sends: second.calls().len(),
    }
}

/// Killed before its outcomes were committed: what it sent may go again,
/// never more than its in-flight window, and nothing is lost.
#[test]
fn a_worker_killed_mid_run_loses_nothing_and_resends_at_most_its_in_flight() {
    let crash = crash_and_take_over(false);
    assert_eq!(crash.in_flight.len(), CRASH_CONCURRENCY);
    assert_eq!(
        &crash.before | &crash.after,
        crash.all,
        "every message reached the provider"
    );
    for reference in &crash.in_flight {
        assert!(crash.after.contains(reference), "{reference} was lost");
    }
    let twice = crash.before.intersection(&crash.after).count();
    assert!(
        twice <= CRASH_CONCURRENCY + RECORD_BATCH,
        "{twice} sent twice: more than the in-flight window"
    );
    assert_eq!(crash.survivor_sends, crash.after.len(), "one send each");
}

/// Killed after its outcomes were committed: the worker that takes over
/// sends exactly what the dead one had not recorded, none of it twice.
#[test]
fn a_worker_killed_after_recording_leaves_exactly_the_unrecorded_to_the_next() {
    let crash = crash_and_take_over(true);
    assert_eq!(crash.before.len(), BEFORE_THE_CRASH);
    assert!(crash.before.is_disjoint(&crash.after), "nothing sent twice");
    assert_eq!(&crash.before | &crash.after, crash.all);
    for reference in &crash.in_flight {
        assert!(crash.after.contains(reference), "{reference} was lost");
    }
    assert_eq!(crash.survivor_sends, CRASH_N - BEFORE_THE_CRASH);
}
