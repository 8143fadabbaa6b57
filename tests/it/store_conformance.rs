//! The `Store` contract, written once and run against both backends: SQLite (a
//! temp file) and PostgreSQL (a fresh database on the test server; those tests
//! are ignored unless run on purpose, as ops/test does). Each behaviour below is an
//! `async fn(&Backend)`; `conformance!` turns it into one test per backend, e.g.
//! `store_conformance::sqlite::claims_never_overlap` and
//! `store_conformance::postgres::claims_never_overlap`.
//!
//! Times are fixed Unix milliseconds: the store takes `now` from its caller, so
//! leases and retries are tested without sleeping.

use std::collections::BTreeSet;
use std::sync::Arc;

use aviso::campaigns::{
    ActivitySplit, Campaign, CampaignSchedule, CampaignState, CampaignVars, ClaimedMessage,
    MessageStatus, NewActivity, NewCampaign, Outcome, OutcomeKind, RecordReport, RunState,
    StatusCounts, Transition,
};
use aviso::contacts::{Contact, Segment};
use aviso::domain::{CapPolicy, FrequencyCap, WhenCapped};
use aviso::domain::{
    ChannelKind, ContactKind, Country, Credential, EmailAddress, Entity, Language, Modality,
    PhoneNumber, Population, SuppressionReason, SuppressionScope,
};
use aviso::replies::{
    AppliedReply, InboundSource, NewInbound, ReplyAction, ReplyKeyword, ReplyStatus,
};
use aviso::schedule::{Monthly, Window};
use aviso::store::{
    PaceSignal, Store, StoreError, Suppression, WorkerHealth, WorkerInfo, LOST_WORKERS_KEPT_MS,
};
use aviso::templates::{Attachment, LangMode};

use crate::support::create_pg_database;
use crate::support::peers::postgres_url;

/// 2022-01-01T00:00:00Z.
const T0: i64 = 1_640_995_200_000;
const LEASE: i64 = 60_000;

/// A store under test, with what it needs to be opened again.
struct Backend {
    store: Arc<dyn Store>,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    fn s(&self) -> &dyn Store {
        self.store.as_ref()
    }
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("aviso.db").display());
    let store = aviso::store::open(&url).await.expect("open SQLite");
    assert_eq!(store.backend(), "sqlite");
    Backend {
        store,
        url,
        _dir: Some(dir),
    }
}

async fn postgres() -> Backend {
    let url = create_pg_database(&postgres_url());
    let store = aviso::store::open(&url).await.expect("open PostgreSQL");
    assert_eq!(store.backend(), "postgres");
    Backend {
        store,
        url,
        _dir: None,
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(&super::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs PostgreSQL: run ops/test"]
                async fn $case() {
                    let backend = super::postgres().await;
                    super::$case(&backend).await;
                }
            )*
        }
    };
}

conformance!(
    migrations_apply_twice_and_keep_the_data,
    lists_are_created_once_and_found_by_name,
    contact_upsert_updates_hashes_and_adds_membership,
    contact_round_trips_every_field,
    count_contacts_by_list_and_segment,
    sample_contacts_have_an_address_and_come_longest_name_first,
    suppressions_are_added_once_and_listed_by_scope,
    setting_or_init_keeps_the_first_value,
    activities_are_unique_by_code,
    campaigns_round_trip_every_field,
    campaign_state_changes_only_from_allowed_states,
    campaigns_in_lists_only_the_states_asked_for,
    a_campaign_row_that_does_not_read_is_corrupt_naming_campaign_and_field,
    an_activity_row_that_does_not_read_is_corrupt_naming_activity_and_field,
    store_methods_move_a_campaign_only_from_the_states_given,
    start_run_freezes_the_audience_with_suppressions_and_missing_addresses,
    start_run_applies_the_segment,
    starting_the_same_period_twice_queues_nothing,
    claim_leases_due_messages_once,
    claims_never_overlap,
    expired_lease_returns_the_message_only_after_housekeeping,
    stale_lease_epoch_outcome_is_not_recorded,
    extended_lease_survives_housekeeping,
    paused_campaign_messages_are_not_claimed,
    record_outcomes_of_every_kind,
    metrics_count_messages_by_channel_and_status_across_campaigns,
    metrics_sum_attempts_by_provider_outcome_and_latency,
    metrics_count_the_attempts_made_before_their_sums_were_kept,
    the_ledger_is_read_in_pages_each_message_once_in_order,
    batches_of_any_size_record_each_outcome_and_attempt_once,
    release_returns_only_the_workers_own_claims,
    housekeeping_completes_runs_and_one_off_campaigns,
    cancelled_campaign_leftovers_are_cancelled,
    status_counts_add_up_to_the_run_totals_across_runs,
    recent_failures_are_the_campaigns_own_latest_attempts,
    has_contacts_turns_true_with_the_first_contact,
    new_contacts_are_inserted_and_an_existing_one_changes_nothing,
    shared_pace_hands_out_each_slot_once_at_the_rate,
    shared_pace_slows_down_once_a_second_and_recovers_to_the_ceiling,
    workers_register_report_in_hold_leases_and_are_forgotten,
    slow_downs_are_reported_to_every_worker_and_the_latest_wins,
    baja_suppresses_and_alta_lifts_only_the_citizens_own_baja,
    replies_are_recorded_with_their_outcome_and_read_in_pages,
    frequency_caps_are_kept_with_their_campaigns,
    capped_claims_count_across_campaigns_and_hold_or_defer,
    capped_claims_at_once_share_the_cap,
    sent_segments_are_kept_per_message_and_summed_for_the_indicators,
    unreached_messages_and_members_without_an_address_are_found,
    call_attempts_are_recorded_once_by_key_and_counted_by_day,
);

// ---------------------------------------------------------------------------
// Helpers

fn phone(p: &str) -> PhoneNumber {
    PhoneNumber::parse(p, None).unwrap()
}

fn email(e: &str) -> EmailAddress {
    EmailAddress::parse(e).unwrap()
}

/// A citizen of `entity` with the given addresses.
fn citizen(id: &str, entity: Entity, mail: Option<&str>, tel: Option<&str>) -> Contact {
    Contact {
        id: id.into(),
        kind: ContactKind::Citizen,
        first_name: Some(format!("Nombre {id}")),
        last_name: Some("Apellido".into()),
        entity: Some(entity),
        country: Some(Country::parse("US").unwrap()),
        email: mail.map(email),
        phone: tel.map(phone),
        language: Language::Es,
        credential: Some(Credential::Cpve),
        population: Some(Population::Primaria),
        modality: Some(Modality::Postal),
    }
}

/// `n` citizens with a phone and an e-mail each: `P000`, `P001`…
fn people(n: usize) -> Vec<Contact> {
    (0..n)
        .map(|i| {
            citizen(
                &format!("P{i:03}"),
                Entity::ALL[i % 4],
                Some(&format!("p{i}@example.com")),
                Some(&format!("+1213555{:04}", 100 + i)),
            )
        })
        .collect()
}

fn ids(contacts: &[Contact]) -> Vec<String> {
    contacts.iter().map(|c| c.id.clone()).collect()
}

async fn save(store: &dyn Store, list: &str, contacts: &[Contact]) -> i64 {
    let list_id = store.ensure_list(list, T0).await.unwrap();
    store
        .save_contacts(list_id, contacts, &ids(contacts), T0)
        .await
        .unwrap();
    list_id
}

fn activity(code: &str) -> NewActivity {
    NewActivity {
        code: code.into(),
        name: format!("Actividad {code}"),
        channel: Some(ChannelKind::Sms),
        programmed: 120_000,
        period_from: Some("2021-09-01".into()),
        period_to: Some("2022-06-05".into()),
        split: ActivitySplit::Whole,
    }
}

/// A draft SMS campaign (recurring if `recurrence` is given) over `contacts`,
/// which join a list of their own.
async fn campaign_over(
    store: &dyn Store,
    name: &str,
    contacts: &[Contact],
    recurrence: Option<&str>,
) -> Campaign {
    campaign_with(store, name, contacts, recurrence, None).await
}

/// [`campaign_over`], with a frequency cap.
async fn campaign_with(
    store: &dyn Store,
    name: &str,
    contacts: &[Contact],
    recurrence: Option<&str>,
    frequency_cap: Option<CapPolicy>,
) -> Campaign {
    let list_id = save(store, &format!("list-{name}"), contacts).await;
    let activity_id = store
        .create_activity(&activity(&format!("ACT-{name}")), T0)
        .await
        .unwrap();
    let id = store
        .create_campaign(
            &NewCampaign {
                activity_id,
                name: name.into(),
                template: "registro_abierto".into(),
                channel: ChannelKind::Sms,
                list_id,
                segment: Segment::default(),
                lang_mode: LangMode::Contact,
                provider: None,
                vars: CampaignVars::new(),
                attachments: Vec::new(),
                state: CampaignState::Draft,
                start_at: None,
                recurrence: recurrence.map(|_| Monthly::new(1, "10:00").unwrap()),
                recur_until: None,
                window: None,
                expires_at: None,
                expires_after: None,
                frequency_cap,
                budget_micros: None,
            },
            T0,
        )
        .await
        .unwrap();
    store.campaign(id).await.unwrap().unwrap()
}

/// A campaign over `contacts` whose one-off run has started (SMS).
async fn started(store: &dyn Store, name: &str, contacts: &[Contact]) -> Campaign {
    start(store, campaign_over(store, name, contacts, None).await).await
}

/// Starts the one-off run of an SMS campaign.
async fn start(store: &dyn Store, campaign: Campaign) -> Campaign {
    let start = store
        .start_run(&campaign, "once", None, Transition::Start.from_states(), T0)
        .await
        .unwrap();
    assert!(start.created);
    store.campaign(campaign.id).await.unwrap().unwrap()
}

/// The campaign's message counts, checked to add up to its runs' frozen totals.
async fn counts(store: &dyn Store, campaign_id: i64) -> StatusCounts {
    let c = store.status_counts(campaign_id).await.unwrap();
    let (counts, no_address) = (c.messages, c.no_address);
    let runs = store.runs(campaign_id).await.unwrap();
    let total: i64 = runs.iter().map(|r| r.total).sum();
    assert_eq!(counts.total(), total, "{counts:?} vs runs {runs:?}");
    assert_eq!(no_address, runs.iter().map(|r| r.no_address).sum::<i64>());
    counts
}

async fn claim(
    store: &dyn Store,
    c: &Campaign,
    worker: &str,
    now: i64,
    limit: i64,
) -> Vec<ClaimedMessage> {
    store.claim(c.id, worker, now, LEASE, limit).await.unwrap()
}

fn outcome(m: &ClaimedMessage, kind: OutcomeKind) -> Outcome {
    Outcome {
        message_id: m.id,
        lease_epoch: m.lease_epoch,
        provider: "test".into(),
        code: Some("250".into()),
        reason: None,
        latency_ms: Some(5),
        kind,
    }
}

fn sent(m: &ClaimedMessage) -> Outcome {
    outcome(
        m,
        OutcomeKind::Sent {
            provider_ref: Some(format!("ref-{}", m.id)),
            segments: Some(1),
        },
    )
}

async fn record(store: &dyn Store, worker: &str, outcomes: &[Outcome], now: i64) -> RecordReport {
    store.record_outcomes(worker, outcomes, now).await.unwrap()
}

fn suppression(address: &str, scope: SuppressionScope, reason: SuppressionReason) -> Suppression {
    Suppression {
        address: address.into(),
        scope,
        reason,
        source: "test".into(),
        created_at: T0,
    }
}

fn message_ids(messages: &[ClaimedMessage]) -> BTreeSet<i64> {
    messages.iter().map(|m| m.id).collect()
}

// ---------------------------------------------------------------------------
// Schema, lists and contacts

async fn migrations_apply_twice_and_keep_the_data(b: &Backend) {
    let list = b.s().ensure_list("registro", T0).await.unwrap();
    // A second process opening the same database runs the migrations again.
    let again = aviso::store::open(&b.url).await.expect("second open");
    assert_eq!(again.list_id("registro").await.unwrap(), Some(list));
    let third = aviso::store::open(&b.url).await.expect("third open");
    assert_eq!(third.ensure_list("registro", T0).await.unwrap(), list);
}

async fn lists_are_created_once_and_found_by_name(b: &Backend) {
    let s = b.s();
    let a = s.ensure_list("registro", T0).await.unwrap();
    assert_eq!(s.ensure_list("registro", T0 + 1).await.unwrap(), a);
    let other = s.ensure_list("osc", T0).await.unwrap();
    assert_ne!(a, other);
    assert_eq!(s.list_id("registro").await.unwrap(), Some(a));
    assert_eq!(s.list_id("nope").await.unwrap(), None);
}

async fn contact_upsert_updates_hashes_and_adds_membership(b: &Backend) {
    let s = b.s();
    let mut contacts = people(2);
    let a = save(s, "a", &contacts).await;
    let wanted = vec!["P000".to_string(), "P001".into(), "P999".into()];
    let hashes = s.contact_hashes(&wanted).await.unwrap();
    assert_eq!(hashes.len(), 2, "only stored contacts have a hash");
    assert_eq!(hashes["P000"], contacts[0].content_hash());

    contacts[0].email = Some(email("nueva@example.org"));
    s.save_contacts(a, &contacts[..1], &["P000".into()], T0 + 1)
        .await
        .unwrap();
    let hashes = s.contact_hashes(&wanted).await.unwrap();
    assert_eq!(hashes["P000"], contacts[0].content_hash());
    assert_eq!(hashes["P001"], contacts[1].content_hash());
    let stored = s.contact("P000").await.unwrap().unwrap();
    assert_eq!(stored.contact, contacts[0]);

    // Membership only (nothing changed): added to the second list, kept in the first.
    let b_list = s.ensure_list("b", T0).await.unwrap();
    for _ in 0..2 {
        s.save_contacts(b_list, &[], &["P000".into()], T0 + 2)
            .await
            .unwrap();
    }
    assert_eq!(s.contact("P000").await.unwrap().unwrap().lists, ["a", "b"]);
    assert_eq!(s.contact("P001").await.unwrap().unwrap().lists, ["a"]);
    assert!(s.contact("P999").await.unwrap().is_none());
}

async fn new_contacts_are_inserted_and_an_existing_one_changes_nothing(b: &Backend) {
    let s = b.s();
    let contacts = people(3);
    let list = s.ensure_list("nuevos", T0).await.unwrap();
    s.insert_new_contacts(list, &contacts[..2], &ids(&contacts[..2]), T0)
        .await
        .unwrap();
    let stored = s.contact("P001").await.unwrap().unwrap();
    assert_eq!(stored.contact, contacts[1]);
    assert_eq!(stored.lists, ["nuevos"]);

    // P001 is stored already: the whole batch is refused, P002 included.
    let mut changed = contacts[1..].to_vec();
    changed[0].email = Some(email("otra@example.org"));
    let other = s.ensure_list("otra", T0).await.unwrap();
    assert!(s
        .insert_new_contacts(other, &changed, &ids(&changed), T0 + 1)
        .await
        .is_err());
    assert!(s.contact("P002").await.unwrap().is_none());
    let stored = s.contact("P001").await.unwrap().unwrap();
    assert_eq!(stored.contact, contacts[1], "unchanged");
    assert_eq!(stored.lists, ["nuevos"], "no membership added");
}

async fn contact_round_trips_every_field(b: &Backend) {
    let s = b.s();
    let full = Contact {
        id: "C00000001".into(),
        kind: ContactKind::Citizen,
        first_name: Some("María José".into()),
        last_name: Some("O'Connor Núñez, \"la güera\"".into()),
        entity: Some(Entity::Tam),
        country: Some(Country::parse("CA").unwrap()),
        email: Some(email("maria.jose@example.org")),
        phone: Some(phone("+15145550104")),
        language: Language::En,
        credential: Some(Credential::Cpv),
        population: Some(Population::Terciaria),
        modality: Some(Modality::Electronica),
    };
    let bare = Contact {
        id: "OSC-asociacion-chee".into(),
        kind: ContactKind::Organization,
        first_name: Some("Asociación Chee".into()),
        last_name: None,
        entity: None,
        country: None,
        email: Some(email("contacto@asociacion-chee.example.org")),
        phone: None,
        language: Language::Es,
        credential: None,
        population: None,
        modality: None,
    };
    save(s, "todos", &[full.clone(), bare.clone()]).await;
    for c in [full, bare] {
        let record = s.contact(&c.id).await.unwrap().unwrap();
        assert_eq!(record.contact, c);
        assert_eq!(record.lists, ["todos"]);
    }
}

async fn count_contacts_by_list_and_segment(b: &Backend) {
    let s = b.s();
    let mut en = citizen("C3", Entity::Dgo, None, Some("+12135550103"));
    en.language = Language::En;
    let org = Contact {
        id: "OSC-x".into(),
        kind: ContactKind::Organization,
        first_name: Some("Club".into()),
        last_name: None,
        entity: None,
        country: None,
        email: Some(email("club@example.org")),
        phone: None,
        language: Language::Es,
        credential: None,
        population: None,
        modality: None,
    };
    let registro = save(
        s,
        "registro",
        &[
            citizen(
                "C1",
                Entity::Oax,
                Some("c1@example.com"),
                Some("+12135550101"),
            ),
            citizen("C2", Entity::Oax, Some("c2@example.com"), None),
            en,
        ],
    )
    .await;
    let osc = save(s, "osc", &[org]).await;

    let all = s.count_contacts(None, &Segment::default()).await.unwrap();
    assert_eq!(all.total, 4);
    assert_eq!(
        all.by_entity.into_iter().collect::<Vec<_>>(),
        [
            ("DGO".to_string(), 1),
            ("OAX".into(), 2),
            ("none".into(), 1)
        ]
    );
    assert_eq!((all.by_channel.sms, all.by_channel.email), (2, 3));
    assert_eq!(all.by_language["es"], 3);
    assert_eq!(all.by_language["en"], 1);
    assert_eq!(
        (all.by_kind["citizen"], all.by_kind["organization"]),
        (3, 1)
    );

    let in_list = s
        .count_contacts(Some(registro), &Segment::default())
        .await
        .unwrap();
    assert_eq!(in_list.total, 3);
    assert_eq!(
        s.count_contacts(Some(osc), &Segment::default())
            .await
            .unwrap()
            .total,
        1
    );

    for (expr, list, want) in [
        ("entity=OAX", None, 2),
        ("entity=OAX,DGO", Some(registro), 3),
        ("channel=sms", None, 2),
        ("channel=email", None, 3),
        ("lang=en", None, 1),
        ("kind=organization", None, 1),
        ("entity=OAX channel=sms", Some(registro), 1),
        ("kind=organization", Some(registro), 0),
    ] {
        let segment = Segment::parse(expr).unwrap();
        assert_eq!(
            s.count_contacts(list, &segment).await.unwrap().total,
            want,
            "{expr} in {list:?}"
        );
    }
}

async fn sample_contacts_have_an_address_and_come_longest_name_first(b: &Backend) {
    let s = b.s();
    let mut long = citizen("C1", Entity::Oax, None, Some("+12135550101"));
    long.first_name = Some("María Guadalupe del Carmen".into());
    let short = citizen("C2", Entity::Oax, None, Some("+12135550102"));
    let no_phone = citizen("C3", Entity::Oax, Some("c3@example.com"), None);
    let list = save(s, "l", &[short, no_phone, long]).await;
    let sample = s
        .sample_contacts(list, &Segment::default(), ChannelKind::Sms, 10)
        .await
        .unwrap();
    assert_eq!(ids(&sample), ["C1", "C2"]);
    let one = s
        .sample_contacts(list, &Segment::default(), ChannelKind::Email, 1)
        .await
        .unwrap();
    assert_eq!(ids(&one), ["C3"]);
}

// ---------------------------------------------------------------------------
// Suppressions, settings, activities, campaigns

async fn suppressions_are_added_once_and_listed_by_scope(b: &Backend) {
    let s = b.s();
    use SuppressionReason::*;
    use SuppressionScope as Scope;
    let first = [
        suppression("+12135550101", Scope::Sms, OptOut),
        suppression("ana@example.com", Scope::Email, HardBounce),
        suppression("+12135550102", Scope::All, Deceased),
    ];
    assert_eq!(s.add_suppressions(&first).await.unwrap(), 3);
    let second = [
        suppression("+12135550101", Scope::Sms, Complaint),
        // The same address on another scope is a suppression of its own.
        suppression("+12135550101", Scope::All, DoNotContact),
    ];
    assert_eq!(s.add_suppressions(&second).await.unwrap(), 1);
    assert_eq!(s.add_suppressions(&[]).await.unwrap(), 0);

    let all = s.suppressions(None).await.unwrap();
    assert_eq!(all.len(), 4);
    let sms = s.suppressions(Some(Scope::Sms)).await.unwrap();
    assert_eq!(sms, [first[0].clone()], "the first reason is kept");
    let every = s.suppressions(Some(Scope::All)).await.unwrap();
    let addresses: BTreeSet<&str> = every.iter().map(|x| x.address.as_str()).collect();
    assert_eq!(addresses, BTreeSet::from(["+12135550101", "+12135550102"]));
    assert_eq!(
        s.suppressions(Some(Scope::Email)).await.unwrap()[0].reason,
        HardBounce
    );
}

async fn setting_or_init_keeps_the_first_value(b: &Backend) {
    let s = b.s();
    assert_eq!(
        s.setting_or_init("token_key", "first").await.unwrap(),
        "first"
    );
    assert_eq!(
        s.setting_or_init("token_key", "second").await.unwrap(),
        "first"
    );
    assert_eq!(s.setting_or_init("other", "x").await.unwrap(), "x");
}

async fn activities_are_unique_by_code(b: &Backend) {
    let s = b.s();
    let sms = activity("SMS-REG");
    let id = s.create_activity(&sms, T0).await.unwrap();
    let mut calls = activity("CALLS");
    calls.channel = None;
    calls.split = ActivitySplit::Monthly;
    s.create_activity(&calls, T0 + 1).await.unwrap();

    let stored = s.activity("SMS-REG").await.unwrap().unwrap();
    assert_eq!(
        (stored.id, stored.code.as_str(), stored.name.as_str()),
        (id, "SMS-REG", "Actividad SMS-REG")
    );
    assert_eq!(
        (stored.channel, stored.programmed, stored.split),
        (Some(ChannelKind::Sms), 120_000, ActivitySplit::Whole)
    );
    assert_eq!(
        (stored.period_from.as_deref(), stored.period_to.as_deref()),
        (Some("2021-09-01"), Some("2022-06-05"))
    );
    assert_eq!(stored.created_at, T0);

    match s.create_activity(&sms, T0).await {
        Err(StoreError::Conflict(msg)) => assert!(msg.contains("SMS-REG"), "{msg}"),
        other => panic!("duplicate activity: {other:?}"),
    }
    let codes: Vec<String> = s
        .activities()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.code)
        .collect();
    assert_eq!(codes, ["SMS-REG", "CALLS"]);
    assert!(s.activity("NOPE").await.unwrap().is_none());
}

async fn campaigns_round_trip_every_field(b: &Backend) {
    let s = b.s();
    let list_id = s.ensure_list("osc", T0).await.unwrap();
    let activity_id = s.create_activity(&activity("CARPETA"), T0).await.unwrap();
    let new = NewCampaign {
        activity_id,
        name: "Carpeta → osc".into(),
        template: "carpeta_mensual".into(),
        channel: ChannelKind::Email,
        list_id,
        segment: Segment::parse("kind=organization").unwrap(),
        lang_mode: LangMode::Both,
        provider: Some("smtp-main".into()),
        vars: serde_json::from_str(r#"{"month":"2021-10"}"#).unwrap(),
        attachments: vec![Attachment {
            path: "/tmp/b.pdf".into(),
            name: "b.pdf".into(),
            mime: "application/pdf".into(),
            size: 3,
        }],
        state: CampaignState::Scheduled,
        start_at: Some(T0 + 3_600_000),
        recurrence: Some(Monthly::new(15, "10:00").unwrap()),
        recur_until: None,
        window: Some(Window::parse("09:00-20:00").unwrap()),
        expires_at: Some(T0 + 86_400_000),
        expires_after: Some(172_800_000),
        frequency_cap: None,
        budget_micros: Some(1_500_000_000),
    };
    let id = s.create_campaign(&new, T0).await.unwrap();
    let c = s.campaign(id).await.unwrap().unwrap();
    assert_eq!(c.activity_id, activity_id);
    assert_eq!(
        (c.activity_code.as_str(), c.list_name.as_str()),
        ("CARPETA", "osc")
    );
    let back = NewCampaign {
        activity_id: c.activity_id,
        name: c.name.clone(),
        template: c.template.clone(),
        channel: c.channel,
        list_id: c.list_id,
        segment: c.segment.clone(),
        lang_mode: c.lang_mode,
        provider: c.provider.clone(),
        vars: c.vars.clone(),
        attachments: c.attachments.clone(),
        state: c.state,
        start_at: c.start_at,
        recurrence: c.recurrence,
        recur_until: c.recur_until,
        window: c.window,
        expires_at: c.expires_at,
        expires_after: c.expires_after,
        frequency_cap: None,
        budget_micros: c.budget_micros,
    };
    assert_eq!(back, new);
    assert_eq!((c.created_at, c.updated_at, c.pause_reason), (T0, T0, None));

    let second = s
        .create_campaign(
            &NewCampaign {
                name: "otra".into(),
                ..new.clone()
            },
            T0,
        )
        .await
        .unwrap();
    let listed: Vec<i64> = s.campaigns().await.unwrap().iter().map(|c| c.id).collect();
    assert_eq!(listed, [id, second]);
    assert!(s.campaign(second + 1000).await.unwrap().is_none());
}

async fn campaign_state_changes_only_from_allowed_states(b: &Backend) {
    let s = b.s();
    use CampaignState::*;
    let c = campaign_over(s, "states", &people(1), None).await;
    let state = |c: Campaign| (c.state, c.pause_reason);
    assert!(!s
        .set_campaign_state(c.id, &[Running], Paused, Some("x"), T0)
        .await
        .unwrap());
    assert_eq!(
        state(s.campaign(c.id).await.unwrap().unwrap()),
        (Draft, None)
    );

    assert!(s
        .set_campaign_state(c.id, &[Draft], Scheduled, None, T0 + 1)
        .await
        .unwrap());
    assert!(s
        .set_campaign_state(
            c.id,
            &[Running, Scheduled],
            Paused,
            Some("gateway down"),
            T0 + 2
        )
        .await
        .unwrap());
    let paused = s.campaign(c.id).await.unwrap().unwrap();
    assert_eq!(paused.updated_at, T0 + 2);
    assert_eq!(state(paused), (Paused, Some("gateway down".into())));

    assert!(s
        .set_campaign_state(c.id, &[Paused], Running, None, T0 + 3)
        .await
        .unwrap());
    assert_eq!(
        state(s.campaign(c.id).await.unwrap().unwrap()),
        (Running, None)
    );
    assert!(!s
        .set_campaign_state(c.id + 1000, &[Running], Cancelled, None, T0)
        .await
        .unwrap());
}

async fn campaigns_in_lists_only_the_states_asked_for(b: &Backend) {
    let s = b.s();
    use CampaignState::*;
    let draft = campaign_over(s, "borrador", &people(1), None).await;
    let scheduled = campaign_over(s, "programada", &people(1), None).await;
    let running = campaign_over(s, "en-curso", &people(1), None).await;
    let paused = campaign_over(s, "pausada", &people(1), None).await;
    for (c, to) in [
        (&scheduled, Scheduled),
        (&running, Running),
        (&paused, Paused),
    ] {
        assert!(s
            .set_campaign_state(c.id, &[Draft], to, None, T0)
            .await
            .unwrap());
    }
    let ids = |cs: Vec<Campaign>| cs.iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(ids(s.campaigns_in(&[Running]).await.unwrap()), [running.id]);
    assert_eq!(
        ids(s.campaigns_in(&[Running, Scheduled]).await.unwrap()),
        [scheduled.id, running.id],
        "by id, whatever the order of the states"
    );
    assert_eq!(ids(s.campaigns_in(&[Draft]).await.unwrap()), [draft.id]);
    assert!(s.campaigns_in(&[Cancelled]).await.unwrap().is_empty());
    assert!(s.campaigns_in(&[]).await.unwrap().is_empty());
    let full = s.campaigns_in(&[Paused]).await.unwrap();
    assert_eq!(
        full,
        [s.campaign(paused.id).await.unwrap().unwrap()],
        "every field"
    );
}

/// Changes the database behind the store's back, as a bug or a hand edit would.
async fn raw_sql(b: &Backend, statements: &str) {
    use sqlx::Connection;
    match b.s().backend() {
        "sqlite" => {
            let mut db = sqlx::SqliteConnection::connect(&b.url).await.unwrap();
            sqlx::raw_sql(statements).execute(&mut db).await.unwrap();
        }
        _ => {
            let mut db = sqlx::PgConnection::connect(&b.url).await.unwrap();
            sqlx::raw_sql(statements).execute(&mut db).await.unwrap();
        }
    }
}

async fn a_campaign_row_that_does_not_read_is_corrupt_naming_campaign_and_field(b: &Backend) {
    let s = b.s();
    let c = campaign_over(s, "corrupt", &people(1), None).await;
    let id = c.id;
    let good = "state = 'draft', channel = 'sms', segment = '', vars = '{}', \
                recurrence = NULL, window_start = NULL, window_end = NULL";
    let mut ws = crate::support::Workspace::new();
    ws.database_url = b.url.clone();
    for (bad, field) in [
        ("state = 'sent'", "state"),
        ("channel = 'fax'", "channel"),
        ("segment = 'planet=mars'", "segment"),
        ("vars = '[1, 2]'", "vars"),
        ("recurrence = 'weekly'", "recurrence"),
        ("window_start = '09:00'", "window"),
    ] {
        raw_sql(b, &format!("UPDATE campaigns SET {bad} WHERE id = {id}")).await;
        let named = format!("campaign {id}, {field}:");
        let is_corrupt = |e: StoreError| match e {
            StoreError::Corrupt(m) => assert!(m.starts_with(&named), "{bad}: {m}"),
            other => panic!("{bad}: {other}"),
        };
        is_corrupt(s.campaign(id).await.unwrap_err());
        is_corrupt(s.campaigns().await.unwrap_err());
        if field != "state" {
            // A row in no known state is in none of those asked for.
            is_corrupt(s.campaigns_in(CampaignState::ALL).await.unwrap_err());
        }
        let stderr = ws.fails(&["campaign", "list"], 1);
        assert!(
            stderr.contains("cannot read") && stderr.contains(&named),
            "{bad}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{bad}: {stderr}");
        raw_sql(b, &format!("UPDATE campaigns SET {good} WHERE id = {id}")).await;
        assert_eq!(s.campaign(id).await.unwrap().unwrap(), c, "{bad} undone");
    }
    assert_eq!(
        s.campaigns()
            .await
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        [id]
    );
}

async fn an_activity_row_that_does_not_read_is_corrupt_naming_activity_and_field(b: &Backend) {
    let s = b.s();
    let sms = activity("SMS-REG");
    s.create_activity(&sms, T0).await.unwrap();
    let stored = s.activity("SMS-REG").await.unwrap().unwrap();
    for (bad, field) in [
        ("channel = 'fax'", "channel"),
        ("split = 'weekly'", "split"),
    ] {
        raw_sql(
            b,
            &format!("UPDATE activities SET {bad} WHERE code = 'SMS-REG'"),
        )
        .await;
        let is_corrupt = |e: StoreError| match e {
            StoreError::Corrupt(m) => {
                assert!(
                    m.starts_with(&format!("activity SMS-REG, {field}:")),
                    "{bad}: {m}"
                )
            }
            other => panic!("{bad}: {other}"),
        };
        is_corrupt(s.activity("SMS-REG").await.unwrap_err());
        is_corrupt(s.activities().await.unwrap_err());
        raw_sql(
            b,
            "UPDATE activities SET channel = 'sms', split = 'none' WHERE code = 'SMS-REG'",
        )
        .await;
        assert_eq!(
            s.activity("SMS-REG").await.unwrap().unwrap(),
            stored,
            "{bad} undone"
        );
    }
}

async fn store_methods_move_a_campaign_only_from_the_states_given(b: &Backend) {
    let s = b.s();
    use CampaignState::*;
    let state = |id| async move { s.campaign(id).await.unwrap().unwrap().state };
    let moved = |id: i64, to| async move {
        assert!(s
            .set_campaign_state(id, &[Draft], to, None, T0)
            .await
            .unwrap())
    };

    // A run starts whatever the state; the campaign moves only from `from`.
    let paused = campaign_over(s, "from-start", &people(2), None).await;
    moved(paused.id, Paused).await;
    let run = s
        .start_run(&paused, "once", None, &[Draft], T0)
        .await
        .unwrap();
    assert!(run.created);
    assert_eq!(state(paused.id).await, Paused);
    let draft = campaign_over(s, "from-start-draft", &people(2), None).await;
    s.start_run(&draft, "once", None, &[Draft], T0)
        .await
        .unwrap();
    assert_eq!(state(draft.id).await, Running);

    // A new schedule, typed, read back as given; only from `from`.
    let c = campaign_over(s, "from-reschedule", &people(1), None).await;
    let monthly = CampaignSchedule {
        start_at: Some(T0 + 1_000),
        recurrence: Some(Monthly::new(31, "08:30").unwrap()),
        recur_until: Some(T0 + 86_400_000),
    };
    assert!(!s
        .update_schedule(c.id, &monthly, &[Missed], T0)
        .await
        .unwrap());
    assert!(!s.update_schedule(c.id, &monthly, &[], T0).await.unwrap());
    assert_eq!(s.campaign(c.id).await.unwrap().unwrap(), c);
    assert!(s
        .update_schedule(c.id, &monthly, &[Draft], T0 + 1)
        .await
        .unwrap());
    let back = s.campaign(c.id).await.unwrap().unwrap();
    assert_eq!(
        (back.state, back.start_at, back.recurrence, back.recur_until),
        (
            Scheduled,
            monthly.start_at,
            monthly.recurrence,
            monthly.recur_until
        )
    );

    // A missed run is recorded either way; the campaign becomes missed only from `from`.
    let kept = campaign_over(s, "from-missed-kept", &people(1), None).await;
    let missed = campaign_over(s, "from-missed", &people(1), None).await;
    for c in [&kept, &missed] {
        moved(c.id, Scheduled).await;
    }
    assert!(s
        .record_missed_run(kept.id, "once", T0, &[Paused], T0 + 1)
        .await
        .unwrap());
    assert!(s
        .record_missed_run(missed.id, "once", T0, &[Scheduled], T0 + 1)
        .await
        .unwrap());
    assert_eq!(
        (state(kept.id).await, state(missed.id).await),
        (Scheduled, Missed)
    );

    // Failed messages are queued again either way; the campaign runs again only from `from`.
    for (name, from, expected) in [
        ("from-retry-kept", &[][..], Paused),
        ("from-retry", &[Paused][..], Running),
    ] {
        let c = started(s, name, &people(1)).await;
        let m = claim(s, &c, "w", T0, 1).await.remove(0);
        let failed = outcome(
            &m,
            OutcomeKind::Failed {
                permanent: false,
                suppress: None,
            },
        );
        record(s, "w", &[failed], T0 + 1).await;
        assert!(s
            .set_campaign_state(c.id, &[Running], Paused, Some("x"), T0 + 2)
            .await
            .unwrap());
        assert_eq!(s.retry_failed(c.id, from, T0 + 3).await.unwrap(), 1);
        assert_eq!(state(c.id).await, expected, "{name}");
        assert_eq!(counts(s, c.id).await.queued, 1, "{name}");
    }
}

// ---------------------------------------------------------------------------
// Runs: freezing the audience

async fn start_run_freezes_the_audience_with_suppressions_and_missing_addresses(b: &Backend) {
    let s = b.s();
    let audience = [
        citizen("A", Entity::Oax, None, Some("+12135550101")),
        citizen("B", Entity::Oax, None, Some("+12135550102")), // opted out of SMS
        citizen("C", Entity::Dgo, None, Some("+12135550103")), // deceased: all channels
        citizen("D", Entity::Dgo, None, Some("+12135550104")), // bounced e-mail only
        citizen("E", Entity::Tam, Some("e@example.com"), None), // no phone
    ];
    s.add_suppressions(&[
        suppression(
            "+12135550102",
            SuppressionScope::Sms,
            SuppressionReason::OptOut,
        ),
        suppression(
            "+12135550103",
            SuppressionScope::All,
            SuppressionReason::Deceased,
        ),
        suppression(
            "+12135550104",
            SuppressionScope::Email,
            SuppressionReason::HardBounce,
        ),
    ])
    .await
    .unwrap();
    let c = campaign_over(s, "freeze", &audience, None).await;
    let start = s
        .start_run(&c, "once", None, Transition::Start.from_states(), T0)
        .await
        .unwrap();
    assert!(start.created);
    assert_eq!((start.total, start.suppressed, start.no_address), (4, 2, 1));

    let counts_now = counts(s, c.id).await;
    assert_eq!((counts_now.queued, counts_now.suppressed), (2, 2));
    let runs = s.runs(c.id).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].id, runs[0].period.as_str(), runs[0].state),
        (start.run_id, "once", RunState::Running)
    );
    assert_eq!(
        (runs[0].total, runs[0].no_address, runs[0].started_at),
        (4, 1, Some(T0))
    );
    assert_eq!(
        s.campaign(c.id).await.unwrap().unwrap().state,
        CampaignState::Running
    );

    // Frozen: later contacts and suppressions do not change the run.
    let list = s.list_id("list-freeze").await.unwrap().unwrap();
    let late = citizen("F", Entity::Ags, None, Some("+12135550106"));
    s.save_contacts(list, &[late], &["F".into()], T0 + 1)
        .await
        .unwrap();
    s.add_suppressions(&[suppression(
        "+12135550101",
        SuppressionScope::Sms,
        SuppressionReason::OptOut,
    )])
    .await
    .unwrap();
    assert_eq!(counts(s, c.id).await, counts_now);

    // The queued ones are A and D, with the frozen contact fields.
    let claimed = claim(s, &c, "w", T0, 10).await;
    let mut got: Vec<(String, String)> = claimed
        .iter()
        .map(|m| (m.contact_id.clone(), m.address.clone()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("A".into(), "+12135550101".into()),
            ("D".into(), "+12135550104".into())
        ]
    );
    let a = claimed.iter().find(|m| m.contact_id == "A").unwrap();
    assert_eq!(
        (a.channel, a.kind.as_str(), a.language.as_str()),
        (ChannelKind::Sms, "citizen", "es")
    );
    // Every frozen field, each in its place (claims are read by position).
    let strings = |v: [&Option<String>; 7]| v.map(|f| f.clone());
    assert_eq!(
        strings([
            &a.first_name,
            &a.last_name,
            &a.entity,
            &a.country,
            &a.credential,
            &a.population,
            &a.modality
        ]),
        [
            Some("Nombre A".to_string()),
            Some("Apellido".to_string()),
            Some("OAX".to_string()),
            Some("US".to_string()),
            Some(Credential::Cpve.to_string()),
            Some(Population::Primaria.to_string()),
            Some(Modality::Postal.to_string()),
        ]
    );
    assert_eq!(
        (a.run_id, a.campaign_id, a.attempts),
        (start.run_id, c.id, 0)
    );
}

async fn start_run_applies_the_segment(b: &Backend) {
    let s = b.s();
    let audience = [
        citizen("A", Entity::Oax, Some("a@example.com"), None),
        citizen("B", Entity::Dgo, Some("b@example.com"), None),
        citizen("C", Entity::Oax, None, Some("+12135550103")),
    ];
    let c = campaign_over(s, "segment", &audience, Some("month")).await;
    let oax = Segment::parse("entity=OAX").unwrap();
    let by = |channel| Campaign {
        channel,
        segment: oax.clone(),
        ..c.clone()
    };
    let start = Transition::Start.from_states();
    let email_run = s
        .start_run(&by(ChannelKind::Email), "2021-10", None, start, T0)
        .await
        .unwrap();
    // A has an e-mail; C is in the segment but has none.
    assert_eq!((email_run.total, email_run.no_address), (1, 1));
    let sms_run = s
        .start_run(&by(ChannelKind::Sms), "2021-11", None, start, T0)
        .await
        .unwrap();
    assert_eq!((sms_run.total, sms_run.no_address), (1, 1));
    let claimed = claim(s, &c, "w", T0, 10).await;
    let mut got: Vec<(&str, ChannelKind)> = claimed
        .iter()
        .map(|m| (m.contact_id.as_str(), m.channel))
        .collect();
    got.sort();
    assert_eq!(got, [("A", ChannelKind::Email), ("C", ChannelKind::Sms)]);
    counts(s, c.id).await;
}

async fn starting_the_same_period_twice_queues_nothing(b: &Backend) {
    let s = b.s();
    let c = started(s, "twice", &people(3)).await;
    let before = counts(s, c.id).await;
    let run_id = s.runs(c.id).await.unwrap()[0].id;
    // Even with a new member in the list since.
    let list = s.list_id("list-twice").await.unwrap().unwrap();
    let late = citizen("Z", Entity::Ags, None, Some("+12135550199"));
    s.save_contacts(list, &[late], &["Z".into()], T0)
        .await
        .unwrap();
    let again = s
        .start_run(&c, "once", None, Transition::Start.from_states(), T0 + 1)
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(
        (again.run_id, again.total, again.no_address),
        (run_id, 3, 0)
    );
    assert_eq!(counts(s, c.id).await, before);
    assert_eq!(s.runs(c.id).await.unwrap().len(), 1);
}

// ---------------------------------------------------------------------------
// The outbox: claims and leases

async fn claim_leases_due_messages_once(b: &Backend) {
    let s = b.s();
    let draft = campaign_over(s, "draft", &people(2), None).await;
    assert!(
        claim(s, &draft, "w", T0, 10).await.is_empty(),
        "no run, nothing to claim"
    );

    let c = started(s, "claim", &people(5)).await;
    let first = claim(s, &c, "w1", T0, 2).await;
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|m| m.lease_epoch >= 1 && m.attempts == 0));
    let second = claim(s, &c, "w2", T0, 10).await;
    assert_eq!(second.len(), 3);
    assert!(message_ids(&first).is_disjoint(&message_ids(&second)));
    assert!(
        claim(s, &c, "w3", T0 + 1, 10).await.is_empty(),
        "all leased"
    );
    assert_eq!(counts(s, c.id).await.sending, 5);
    // Messages not due yet are not claimed: a fresh run queues them at `now`.
    let later = campaign_over(s, "later", &people(1), None).await;
    s.start_run(
        &later,
        "once",
        None,
        Transition::Start.from_states(),
        T0 + 10_000,
    )
    .await
    .unwrap();
    assert!(claim(s, &later, "w", T0 + 9_999, 10).await.is_empty());
    assert_eq!(claim(s, &later, "w", T0 + 10_000, 10).await.len(), 1);
}

async fn claims_never_overlap(b: &Backend) {
    let c = started(b.s(), "race", &people(60)).await;
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = b.store.clone();
        let campaign = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .claim(campaign.id, &format!("w{w}"), T0, LEASE, 3)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|m| m.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "a message was claimed twice");
    assert_eq!(all.len(), 60);
    assert_eq!(counts(b.s(), c.id).await.sending, 60);
}

async fn expired_lease_returns_the_message_only_after_housekeeping(b: &Backend) {
    let s = b.s();
    let c = started(s, "lease", &people(1)).await;
    let m = claim(s, &c, "dead", T0, 1).await.remove(0);
    // The lease has run out, but until housekeeping it is still "sending".
    assert!(claim(s, &c, "w", T0 + LEASE + 5_000, 1).await.is_empty());
    s.housekeeping(T0 + LEASE - 1).await.unwrap();
    assert!(claim(s, &c, "w", T0 + LEASE, 1).await.is_empty());
    s.housekeeping(T0 + LEASE).await.unwrap();
    assert_eq!(counts(s, c.id).await.queued, 1);
    let again = claim(s, &c, "w", T0 + LEASE, 1).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, m.id);
    assert!(again[0].lease_epoch > m.lease_epoch);
    assert_eq!(again[0].attempts, 0, "an expired lease is not an attempt");
}

async fn stale_lease_epoch_outcome_is_not_recorded(b: &Backend) {
    let s = b.s();
    let c = started(s, "stale", &people(2)).await;
    let old = claim(s, &c, "slow", T0, 2).await;
    s.housekeeping(T0 + LEASE).await.unwrap();
    let new = claim(s, &c, "fast", T0 + LEASE, 2).await;
    assert_eq!(message_ids(&new), message_ids(&old));

    // The slow worker finishes late: neither of its outcomes counts.
    let late = record(s, "slow", &[sent(&old[0]), sent(&old[1])], T0 + LEASE + 1).await;
    assert_eq!((late.recorded, late.lost_lease), (0, 2));
    assert_eq!(counts(s, c.id).await.sending, 2);

    // The new owner's do; a repeat of the same outcome is then stale too.
    let on_time = record(s, "fast", &[sent(&new[0]), sent(&new[1])], T0 + LEASE + 2).await;
    assert_eq!((on_time.recorded, on_time.lost_lease), (2, 0));
    let repeat = record(s, "fast", &[sent(&new[0])], T0 + LEASE + 3).await;
    assert_eq!((repeat.recorded, repeat.lost_lease), (0, 1));
    let n = counts(s, c.id).await;
    assert_eq!((n.sent, n.sending), (2, 0));
}

async fn extended_lease_survives_housekeeping(b: &Backend) {
    let s = b.s();
    let c = started(s, "extend", &people(2)).await;
    claim(s, &c, "busy", T0, 2).await;
    assert_eq!(s.extend_leases("busy", T0 + 10 * LEASE).await.unwrap(), 2);
    assert_eq!(s.extend_leases("nobody", T0 + 10 * LEASE).await.unwrap(), 0);
    s.housekeeping(T0 + 5 * LEASE).await.unwrap();
    assert_eq!(counts(s, c.id).await.sending, 2);
    s.housekeeping(T0 + 10 * LEASE).await.unwrap();
    assert_eq!(counts(s, c.id).await.queued, 2);
}

async fn paused_campaign_messages_are_not_claimed(b: &Backend) {
    let s = b.s();
    use CampaignState::*;
    let c = started(s, "pause", &people(3)).await;
    assert!(s
        .set_campaign_state(c.id, &[Running], Paused, Some("operator"), T0)
        .await
        .unwrap());
    assert!(claim(s, &c, "w", T0, 10).await.is_empty());
    assert!(s
        .set_campaign_state(c.id, &[Paused], Running, None, T0)
        .await
        .unwrap());
    assert_eq!(claim(s, &c, "w", T0, 10).await.len(), 3);
}

// ---------------------------------------------------------------------------
// The outbox: outcomes

async fn metrics_count_messages_by_channel_and_status_across_campaigns(b: &Backend) {
    let s = b.s();
    let first = started(s, "metrics-a", &people(3)).await;
    started(s, "metrics-b", &people(2)).await;
    let m = claim(s, &first, "w", T0, 2).await;
    record(s, "w", &[sent(&m[0])], T0 + 1).await;
    let snapshot = s.metrics().await.unwrap();
    let count = |status: &str| {
        snapshot
            .messages
            .iter()
            .find(|(channel, st, _)| channel == "sms" && st == status)
            .map(|(_, _, n)| *n)
    };
    assert_eq!(
        (count("queued"), count("sending"), count("sent")),
        (Some(3), Some(1), Some(1)),
        "{:?}",
        snapshot.messages
    );
    assert!(snapshot
        .messages
        .iter()
        .all(|(channel, _, _)| channel == "sms"));
}

/// Records sends of `campaign` in three batches through two providers:
/// every kind of outcome, latencies on and around the histogram's bounds and
/// none, and a stale outcome, which makes no attempt.
async fn record_timed_outcomes(s: &dyn Store, campaign: &Campaign) {
    let claimed = claim(s, campaign, "w", T0, 12).await;
    let latencies = [None, Some(0), Some(10), Some(11), Some(700), Some(40_000)];
    let mut outcomes = Vec::new();
    for (i, m) in claimed.iter().enumerate() {
        let kind = match i % 3 {
            0 => OutcomeKind::Sent {
                provider_ref: None,
                segments: None,
            },
            1 => OutcomeKind::Retry {
                next_attempt_at: T0 + 60_000,
            },
            _ => OutcomeKind::Failed {
                permanent: true,
                suppress: None,
            },
        };
        let mut o = outcome(m, kind);
        o.provider = if i < 8 { "kannel" } else { "twilio" }.into();
        o.latency_ms = latencies[i % latencies.len()];
        outcomes.push(o);
    }
    let mut stale = sent(&claimed[0]);
    stale.lease_epoch -= 1;
    stale.latency_ms = Some(3);
    outcomes.insert(5, stale);
    for (i, batch) in outcomes.chunks(5).enumerate() {
        record(s, "w", batch, T0 + 1 + i as i64).await;
    }
}

async fn metrics_sum_attempts_by_provider_outcome_and_latency(b: &Backend) {
    let s = b.s();
    let c = started(s, "metrics-attempts", &people(12)).await;
    record_timed_outcomes(s, &c).await;
    let snapshot = s.metrics().await.unwrap();
    // Messages 0-7 through kannel, 8-11 through twilio; kinds cycle sent,
    // temporary, permanent; latencies cycle none, 0, 10, 11, 700, 40000.
    let attempts = |p: &str, o: &str, n: i64| (p.to_string(), o.to_string(), n);
    assert_eq!(
        snapshot.attempts,
        vec![
            attempts("kannel", "permanent", 2),
            attempts("kannel", "sent", 3),
            attempts("kannel", "temporary", 3),
            attempts("twilio", "permanent", 2),
            attempts("twilio", "sent", 1),
            attempts("twilio", "temporary", 1),
        ]
    );
    let latency: Vec<_> = snapshot
        .latency
        .iter()
        .map(|r| (r.provider.as_str(), r.buckets.clone(), r.count, r.sum_ms))
        .collect();
    // Buckets (cumulative): <= 10, 50, 100, 250, 500, 1000, 5000, 30000 ms.
    assert_eq!(
        latency,
        vec![
            // Messages 1-5 and 7: 0, 10, 11, 700, 40000, 0 (0 and 6 untimed).
            ("kannel", vec![3, 4, 4, 4, 4, 5, 5, 5], 6, 40_721),
            // Messages 8-11: 10, 11, 700, 40000.
            ("twilio", vec![1, 2, 2, 2, 2, 3, 3, 3], 4, 40_721),
        ]
    );
}

async fn metrics_count_the_attempts_made_before_their_sums_were_kept(b: &Backend) {
    let s = b.s();
    let c = started(s, "metrics-backfill", &people(12)).await;
    record_timed_outcomes(s, &c).await;
    let before = s.metrics().await.unwrap();
    // As if the attempts had been made before migration 4: its table and its
    // record gone, then the database opened again.
    raw_sql(
        b,
        "DROP TABLE attempt_totals; DELETE FROM _sqlx_migrations WHERE version = 4",
    )
    .await;
    let reopened = aviso::store::open(&b.url).await.expect("open again");
    let after = reopened.metrics().await.unwrap();
    assert!(!before.attempts.is_empty() && !before.latency.is_empty());
    assert_eq!(after, before);
}

async fn the_ledger_is_read_in_pages_each_message_once_in_order(b: &Backend) {
    let s = b.s();
    let before = started(s, "ledger-before", &people(2)).await;
    let c = started(s, "ledger", &people(5)).await;
    started(s, "ledger-after", &people(2)).await;
    let claimed = claim(s, &c, "w", T0, 2).await;
    record(s, "w", &[sent(&claimed[0])], T0 + 1).await;

    let all = s.message_ledger(c.id, &[], 0, 100).await.unwrap();
    let ids: Vec<i64> = all.iter().map(|r| r.message_id).collect();
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "by id: {ids:?}");
    assert!(all.iter().all(|r| r.campaign == "ledger"));

    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = s.message_ledger(c.id, &[], after, 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = last.message_id;
        paged.extend(page.iter().map(|r| r.message_id));
    }
    assert_eq!(paged, ids, "pages of two give every message once, in order");

    let sent: Vec<String> = vec!["sent".into()];
    let only_sent = s.message_ledger(c.id, &sent, 0, 100).await.unwrap();
    assert_eq!(only_sent.len(), 1);
    assert_eq!(only_sent[0].message_id, claimed[0].id);
    assert!(s
        .message_ledger(before.id + 1000, &[], 0, 100)
        .await
        .unwrap()
        .is_empty());

    // Where the export starts: the campaign's first message, past the older
    // campaign's; none for a campaign without messages.
    assert_eq!(s.first_message_id(c.id).await.unwrap(), Some(ids[0]));
    assert!(s.first_message_id(before.id).await.unwrap() < Some(ids[0]));
    assert_eq!(s.first_message_id(before.id + 1000).await.unwrap(), None);

    // The export's loop, with pages of two: the same rows, as one JSON array.
    use aviso::report::{export_ledger, LedgerFormat};
    let (rows, out) = export_ledger(s, c.id, &[], LedgerFormat::Json, Vec::new(), 2)
        .await
        .unwrap();
    assert_eq!(rows, 5);
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let exported: Vec<i64> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["message_id"].as_i64().unwrap())
        .collect();
    assert_eq!(exported, ids);
    let (rows, out) = export_ledger(s, c.id, &sent, LedgerFormat::Csv, Vec::new(), 2)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    assert_eq!(
        String::from_utf8(out).unwrap().lines().count(),
        2,
        "header and one row"
    );
    let (rows, out) = export_ledger(s, before.id + 1000, &[], LedgerFormat::Csv, Vec::new(), 2)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    assert_eq!(
        String::from_utf8(out).unwrap().lines().count(),
        1,
        "the header alone"
    );
}

async fn record_outcomes_of_every_kind(b: &Backend) {
    let s = b.s();
    let c = started(s, "outcomes", &people(5)).await;
    let mut m = claim(s, &c, "w", T0, 5).await;
    m.sort_by_key(|m| m.id);
    let retry_at = T0 + 60_000;
    let defer_to = T0 + 30_000;
    let bounced = m[2].address.clone();
    let report = record(
        s,
        "w",
        &[
            sent(&m[0]),
            outcome(
                &m[1],
                OutcomeKind::Retry {
                    next_attempt_at: retry_at,
                },
            ),
            outcome(
                &m[2],
                OutcomeKind::Failed {
                    permanent: true,
                    suppress: Some((
                        bounced.clone(),
                        SuppressionScope::Sms,
                        SuppressionReason::Invalid,
                    )),
                },
            ),
            outcome(
                &m[3],
                OutcomeKind::Deferred {
                    next_attempt_at: defer_to,
                },
            ),
            outcome(&m[4], OutcomeKind::Expired),
        ],
        T0 + 1,
    )
    .await;
    assert_eq!((report.recorded, report.lost_lease), (5, 0));
    let n = counts(s, c.id).await;
    assert_eq!(
        (n.sent, n.retrying, n.failed, n.queued, n.expired, n.sending),
        (1, 1, 1, 1, 1, 0),
        "{n:?}"
    );

    // A permanent failure suppresses the address, saying which provider said so.
    let suppressed = s.suppressions(Some(SuppressionScope::Sms)).await.unwrap();
    assert_eq!(suppressed.len(), 1);
    assert_eq!(suppressed[0].address, bounced);
    assert_eq!(suppressed[0].reason, SuppressionReason::Invalid);
    assert_eq!(suppressed[0].source, "provider:test");

    // Deferred: back in the queue at its time, without having used an attempt.
    assert!(claim(s, &c, "w", defer_to - 1, 5).await.is_empty());
    let deferred = claim(s, &c, "w", defer_to, 5).await;
    assert_eq!(deferred.len(), 1);
    assert_eq!((deferred[0].id, deferred[0].attempts), (m[3].id, 0));

    // Retry: claimable at its time, with the attempt counted.
    assert!(claim(s, &c, "w", retry_at - 1, 5).await.is_empty());
    let retried = claim(s, &c, "w", retry_at, 5).await;
    assert_eq!(retried.len(), 1);
    assert_eq!((retried[0].id, retried[0].attempts), (m[1].id, 1));
    let failed = record(
        s,
        "w",
        &[outcome(
            &retried[0],
            OutcomeKind::Failed {
                permanent: false,
                suppress: None,
            },
        )],
        retry_at + 1,
    )
    .await;
    assert_eq!(failed.recorded, 1);
    let n = counts(s, c.id).await;
    assert_eq!((n.failed, n.retrying, n.sending), (2, 0, 1), "{n:?}");
    // Final states are never claimed again.
    assert!(claim(s, &c, "w", retry_at + LEASE * 100, 5)
        .await
        .is_empty());
}

/// Batches are recorded a chunk at a time, each padded to a power of two: the
/// padding must record nothing, at every size and across chunks.
async fn batches_of_any_size_record_each_outcome_and_attempt_once(b: &Backend) {
    let s = b.s();
    let c = started(s, "batch sizes", &people(300)).await;
    let mut claimed = claim(s, &c, "w", T0, 300).await;
    assert_eq!(claimed.len(), 300);
    let mut at = T0;
    let mut attempts = 0;
    // 1 and 2 are powers of two already; 3, 100 and 194 are padded (194 spans
    // a whole chunk and part of the next).
    for size in [1, 2, 3, 100, 194] {
        let batch: Vec<ClaimedMessage> = claimed.drain(..size).collect();
        let mut outcomes: Vec<Outcome> = batch.iter().map(sent).collect();
        // One outcome of an old claim: its lease no longer holds.
        let mut stale = sent(&batch[0]);
        stale.lease_epoch -= 1;
        outcomes.insert(0, stale);
        at += 1;
        let report = record(s, "w", &outcomes, at).await;
        assert_eq!(
            (report.recorded, report.lost_lease),
            (size as u64, 1),
            "{size}"
        );
        attempts += size as i64;
        let recent = s.recent_failures(c.id, 0, 1_000).await.unwrap();
        assert_eq!(
            (recent.attempts, recent.failed),
            (attempts, 0),
            "attempts after {size}"
        );
    }
    let n = counts(s, c.id).await;
    assert_eq!((n.sent, n.sending), (300, 0), "{n:?}");
}

async fn release_returns_only_the_workers_own_claims(b: &Backend) {
    let s = b.s();
    let c = started(s, "release", &people(3)).await;
    let mine = claim(s, &c, "a", T0, 2).await;
    let ids: Vec<i64> = mine.iter().map(|m| m.id).collect();
    assert_eq!(s.release("b", &ids, T0 + 1).await.unwrap(), 0);
    assert_eq!(s.release("a", &ids, T0 + 1).await.unwrap(), 2);
    assert_eq!(
        s.release("a", &ids, T0 + 1).await.unwrap(),
        0,
        "already released"
    );
    assert_eq!(counts(s, c.id).await.queued, 3);

    // A message that already had an attempt goes back as "retrying".
    let one = claim(s, &c, "a", T0 + 2, 1).await.remove(0);
    record(
        s,
        "a",
        &[outcome(
            &one,
            OutcomeKind::Retry {
                next_attempt_at: T0 + 3,
            },
        )],
        T0 + 2,
    )
    .await;
    let again = claim(s, &c, "a", T0 + 3, 3).await;
    assert_eq!(again.len(), 3);
    let all: Vec<i64> = again.iter().map(|m| m.id).collect();
    assert_eq!(s.release("a", &all, T0 + 4).await.unwrap(), 3);
    let n = counts(s, c.id).await;
    assert_eq!((n.queued, n.retrying), (2, 1), "{n:?}");
}

async fn housekeeping_completes_runs_and_one_off_campaigns(b: &Backend) {
    let s = b.s();
    let once = started(s, "once", &people(2)).await;
    let monthly = campaign_over(s, "monthly", &people(2), Some("month")).await;
    s.start_run(
        &monthly,
        "2021-10",
        None,
        Transition::Start.from_states(),
        T0,
    )
    .await
    .unwrap();

    s.housekeeping(T0).await.unwrap();
    for c in [&once, &monthly] {
        assert_eq!(
            s.runs(c.id).await.unwrap()[0].state,
            RunState::Running,
            "messages are pending"
        );
        assert_eq!(
            s.campaign(c.id).await.unwrap().unwrap().state,
            CampaignState::Running
        );
    }
    for c in [&once, &monthly] {
        let batch = claim(s, c, "w", T0, 10).await;
        let outcomes: Vec<Outcome> = batch.iter().map(sent).collect();
        record(s, "w", &outcomes, T0 + 1).await;
    }
    s.housekeeping(T0 + 2).await.unwrap();
    for c in [&once, &monthly] {
        let run = &s.runs(c.id).await.unwrap()[0];
        assert_eq!(
            (run.state, run.finished_at),
            (RunState::Completed, Some(T0 + 2))
        );
    }
    assert_eq!(
        s.campaign(once.id).await.unwrap().unwrap().state,
        CampaignState::Completed
    );
    // A recurring campaign goes back to waiting for its next period.
    assert_eq!(
        s.campaign(monthly.id).await.unwrap().unwrap().state,
        CampaignState::Scheduled
    );

    // A run whose audience is all suppressed has nothing to wait for.
    let gone = citizen("G", Entity::Oax, None, Some("+12135550177"));
    s.add_suppressions(&[suppression(
        "+12135550177",
        SuppressionScope::All,
        SuppressionReason::Deceased,
    )])
    .await
    .unwrap();
    let quiet = started(s, "quiet", &[gone]).await;
    s.housekeeping(T0 + 3).await.unwrap();
    assert_eq!(
        s.campaign(quiet.id).await.unwrap().unwrap().state,
        CampaignState::Completed
    );
    assert_eq!(counts(s, quiet.id).await.suppressed, 1);
}

async fn cancelled_campaign_leftovers_are_cancelled(b: &Backend) {
    let s = b.s();
    use CampaignState::*;
    let c = started(s, "cancel", &people(4)).await;
    let in_flight = claim(s, &c, "w", T0, 1).await.remove(0);
    assert!(s
        .set_campaign_state(c.id, &[Running], Cancelled, None, T0 + 1)
        .await
        .unwrap());
    assert_eq!(s.cancel_pending(c.id, T0 + 1).await.unwrap(), 3);
    let n = counts(s, c.id).await;
    assert_eq!(
        (n.cancelled, n.sending),
        (3, 1),
        "what is in flight finishes"
    );
    assert_eq!(s.runs(c.id).await.unwrap()[0].state, RunState::Cancelled);

    // The in-flight one is released by its worker: housekeeping cancels it too.
    assert_eq!(s.release("w", &[in_flight.id], T0 + 2).await.unwrap(), 1);
    s.housekeeping(T0 + 3).await.unwrap();
    let n = counts(s, c.id).await;
    assert_eq!((n.cancelled, n.queued), (4, 0), "{n:?}");
    assert_eq!(
        s.campaign(c.id).await.unwrap().unwrap().state,
        CampaignState::Cancelled
    );
}

async fn status_counts_add_up_to_the_run_totals_across_runs(b: &Backend) {
    let s = b.s();
    let mut audience = people(6);
    audience.push(citizen("NOPHONE", Entity::Oax, Some("x@example.com"), None));
    s.add_suppressions(&[suppression(
        audience[0].phone.as_ref().unwrap().as_str(),
        SuppressionScope::Sms,
        SuppressionReason::OptOut,
    )])
    .await
    .unwrap();
    let c = campaign_over(s, "periods", &audience, Some("month")).await;
    for (i, period) in ["2021-10", "2021-11"].iter().enumerate() {
        let now = T0 + i as i64 * 1_000;
        let start = s
            .start_run(&c, period, None, Transition::Start.from_states(), now)
            .await
            .unwrap();
        assert_eq!((start.total, start.suppressed, start.no_address), (6, 1, 1));
        counts(s, c.id).await;
        let batch = claim(s, &c, "w", now, 4).await;
        counts(s, c.id).await;
        let outcomes: Vec<Outcome> = batch
            .iter()
            .enumerate()
            .map(|(j, m)| match j {
                0 => sent(m),
                1 => outcome(
                    m,
                    OutcomeKind::Retry {
                        next_attempt_at: now + 10,
                    },
                ),
                2 => outcome(
                    m,
                    OutcomeKind::Failed {
                        permanent: true,
                        suppress: None,
                    },
                ),
                _ => outcome(m, OutcomeKind::Expired),
            })
            .collect();
        record(s, "w", &outcomes, now + 1).await;
        counts(s, c.id).await;
    }
    // The second batch may take leftovers of the first run: claims are per
    // campaign. Either way each batch gave one outcome of each kind.
    let n = counts(s, c.id).await;
    assert_eq!(n.total(), 12);
    assert_eq!(
        (n.suppressed, n.sent, n.failed, n.expired),
        (2, 2, 2, 2),
        "{n:?}"
    );
    assert_eq!(n.retrying + n.queued, 4, "{n:?}");
    let no_address = s.status_counts(c.id).await.unwrap().no_address;
    assert_eq!(no_address, 2);
}

async fn recent_failures_are_the_campaigns_own_latest_attempts(b: &Backend) {
    let s = b.s();
    let failing = started(s, "failing", &people(6)).await;
    let healthy = started(s, "healthy", &people(6)).await;
    let refused = OutcomeKind::Failed {
        permanent: true,
        suppress: None,
    };
    let m = claim(s, &failing, "w", T0, 6).await;
    let outcomes: Vec<Outcome> = m.iter().map(|m| outcome(m, refused.clone())).collect();
    record(s, "w", &outcomes, T0).await;
    // Newer attempts of another campaign do not hide these, nor count for it.
    let m = claim(s, &healthy, "w", T0, 6).await;
    record(s, "w", &m.iter().map(sent).collect::<Vec<_>>(), T0 + 1).await;
    let r = s.recent_failures(failing.id, 0, 4).await.unwrap();
    assert_eq!((r.attempts, r.failed), (4, 4));
    assert!(r.last.is_some());
    let r = s.recent_failures(failing.id, 0, 200).await.unwrap();
    assert_eq!((r.attempts, r.failed), (6, 6));
    let r = s.recent_failures(healthy.id, 0, 200).await.unwrap();
    assert_eq!((r.attempts, r.failed, r.last), (6, 0, None));
    // Attempts from before `since` (the campaign's resume) do not count.
    let r = s.recent_failures(failing.id, T0 + 1, 200).await.unwrap();
    assert_eq!((r.attempts, r.failed, r.last), (0, 0, None));
}

/// The slow-downs as (provider, at).
async fn slow_downs(s: &dyn Store) -> Vec<(String, i64)> {
    let downs = s.slow_downs().await.unwrap();
    downs.into_iter().map(|d| (d.name, d.slowed_at)).collect()
}

async fn slow_downs_are_reported_to_every_worker_and_the_latest_wins(b: &Backend) {
    let s = b.s();
    assert!(s.slow_downs().await.unwrap().is_empty());
    s.report_slow_down("smtp://relay", T0 + 5).await.unwrap();
    // An older report arriving late does not hide the newer one.
    s.report_slow_down("smtp://relay", T0 + 2).await.unwrap();
    assert_eq!(slow_downs(s).await, [("smtp://relay".to_string(), T0 + 5)]);
    // A provider a worker described keeps its description.
    s.save_provider_state(&aviso::store::ProviderState {
        name: "kannel://gw".into(),
        rate: 40.0,
        base_rate: 80.0,
        reason: Some("slowed".into()),
        updated_at: T0,
    })
    .await
    .unwrap();
    s.report_slow_down("kannel://gw", T0 + 9).await.unwrap();
    assert_eq!(
        slow_downs(s).await,
        [
            ("kannel://gw".to_string(), T0 + 9),
            ("smtp://relay".to_string(), T0 + 5)
        ]
    );
    let gw = s.provider_states().await.unwrap().remove(0);
    assert_eq!((gw.rate, gw.base_rate), (40.0, 80.0));
}

async fn has_contacts_turns_true_with_the_first_contact(b: &Backend) {
    let s = b.s();
    assert!(!s.has_contacts().await.unwrap());
    s.ensure_list("empty", T0).await.unwrap();
    assert!(!s.has_contacts().await.unwrap(), "a list is not a contact");
    save(s, "one", &people(1)).await;
    assert!(s.has_contacts().await.unwrap());
}

// ---------------------------------------------------------------------------
// Workers as one sender

fn slow_down() -> Option<PaceSignal> {
    Some(PaceSignal::SlowDown {
        retry_after_ms: None,
    })
}

async fn shared_pace_hands_out_each_slot_once_at_the_rate(b: &Backend) {
    let s = b.s();
    let now = T0 as f64;
    let first = s.take_pace("p", 10.0, 5, None, now).await.unwrap();
    assert_eq!((first.first_slot, first.rate), (now, 10.0));
    let next = s.take_pace("p", 10.0, 5, None, now).await.unwrap();
    assert_eq!(next.first_slot, now + 500.0, "after the 5 slots of 100 ms");
    let told = s.take_pace("p", 10.0, 0, slow_down(), now).await.unwrap();
    assert_eq!(told.rate, 5.0, "a refusal told without taking a slot");
    assert_eq!(
        s.take_pace("p", 10.0, 1, None, now)
            .await
            .unwrap()
            .first_slot,
        now + 1000.0,
        "the next slot is where it was"
    );
    assert_eq!(
        s.take_pace("q", 4.0, 1, None, now)
            .await
            .unwrap()
            .first_slot,
        now,
        "each provider has its own pace"
    );

    // Workers taking at the same moment, each through its own connections:
    // the slots they get follow each other without a gap or an overlap.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = aviso::store::open(&b.url).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut firsts = Vec::new();
            for _ in 0..5 {
                let grant = store.take_pace("p", 10.0, 3, None, now).await.unwrap();
                firsts.push(grant.first_slot);
            }
            firsts
        }));
    }
    let mut firsts = Vec::new();
    for t in tasks {
        firsts.extend(t.await.unwrap());
    }
    firsts.sort_by(f64::total_cmp);
    // At 5 a second since the refusal: 200 ms a slot.
    let expected: Vec<f64> = (0..20).map(|i| now + 1200.0 + 600.0 * i as f64).collect();
    assert_eq!(firsts, expected);

    // Slots nobody took while the provider was idle are not saved up.
    let later = now + 60_000.0;
    assert_eq!(
        s.take_pace("p", 10.0, 1, None, later)
            .await
            .unwrap()
            .first_slot,
        later
    );
}

async fn shared_pace_slows_down_once_a_second_and_recovers_to_the_ceiling(b: &Backend) {
    let s = b.s();
    let slow = slow_down();
    let take = |signal, at: i64| async move {
        s.take_pace("p", 100.0, 1, signal, at as f64)
            .await
            .unwrap()
            .rate
    };
    assert_eq!(take(None, T0).await, 100.0);
    assert_eq!(take(slow, T0 + 10).await, 50.0);
    assert_eq!(take(slow, T0 + 20).await, 50.0, "a burst is one signal");
    assert_eq!(take(slow, T0 + 1010).await, 25.0);
    let state = s.provider_states().await.unwrap();
    let p = state.iter().find(|p| p.name == "p").expect("p has a state");
    assert_eq!((p.rate, p.base_rate), (25.0, 100.0), "{p:?}");
    assert!(p.reason.is_some(), "campaign status says why: {p:?}");
    assert_eq!(p.updated_at, T0 + 1010);

    let recovered = Some(PaceSignal::Recovered);
    assert_eq!(take(recovered, T0 + 1500).await, 25.0, "within the second");
    assert_eq!(take(slow, T0 + 1900).await, 25.0, "halved a moment ago");
    assert_eq!(
        take(recovered, T0 + 2010).await,
        25.0,
        "a refusal less than a second ago holds recovery back"
    );
    assert_eq!(take(recovered, T0 + 2900).await, 31.25);
    let mut at = T0 + 3900;
    while at < T0 + 20_000 {
        take(recovered, at).await;
        at += 1000;
    }
    assert_eq!(take(None, at).await, 100.0, "back to the configured rate");
    let state = s.provider_states().await.unwrap();
    assert_eq!(state.iter().find(|p| p.name == "p").unwrap().reason, None);

    // Retry-After holds every worker back.
    let wait = Some(PaceSignal::SlowDown {
        retry_after_ms: Some(3000),
    });
    at += 1000;
    let grant = s.take_pace("p", 100.0, 1, wait, at as f64).await.unwrap();
    assert!(grant.first_slot >= (at + 3000) as f64, "{grant:?}");
    // Never below the floor.
    for i in 1..10 {
        take(slow, at + 1000 * i).await;
    }
    assert_eq!(take(None, at + 10_000).await, 1.0);
    // A new configuration caps a slowed rate; an unslowed one follows it.
    let capped = s
        .take_pace("p", 0.5, 1, None, (at + 11_000) as f64)
        .await
        .unwrap();
    assert_eq!(capped.rate, 0.5);
    for ceiling in [10.0, 20.0] {
        let grant = s.take_pace("q", ceiling, 1, None, T0 as f64).await;
        assert_eq!(grant.unwrap().rate, ceiling);
    }
}

async fn workers_register_report_in_hold_leases_and_are_forgotten(b: &Backend) {
    let s = b.s();
    let worker = |id: &str, started_at: i64| WorkerInfo {
        id: id.into(),
        host: "host-a".into(),
        pid: 4242,
        version: "0.1.0".into(),
        lease_ms: 2000,
        started_at,
    };
    s.register_worker(&worker("w1", T0), T0).await.unwrap();
    s.register_worker(&worker("w2", T0 + 1), T0 + 1)
        .await
        .unwrap();
    let c = started(s, "fleet", &people(5)).await;
    assert_eq!(claim(s, &c, "w1", T0 + 2, 3).await.len(), 3);
    assert_eq!(claim(s, &c, "someone-else", T0 + 2, 1).await.len(), 1);

    assert!(s.worker_heartbeat("w1", T0 + 3000).await.unwrap());
    assert!(
        !s.worker_heartbeat("ghost", T0 + 3000).await.unwrap(),
        "not registered"
    );
    let workers = s.workers().await.unwrap();
    let ids: Vec<&str> = workers.iter().map(|w| w.info.id.as_str()).collect();
    assert_eq!(ids, ["w1", "w2"], "by start time");
    let (w1, w2) = (&workers[0], &workers[1]);
    assert_eq!(w1.info, worker("w1", T0));
    assert_eq!(w1.heartbeat_at, T0 + 3000);
    assert_eq!(w1.leased, [(c.id, 3)]);
    assert!(w2.leased.is_empty());
    assert_eq!(w1.health(T0 + 3000), WorkerHealth::Live);
    assert_eq!(
        w2.health(T0 + 3000),
        WorkerHealth::Lost,
        "silent past its lease"
    );

    // A clean stop leaves the list.
    s.deregister_worker("w2").await.unwrap();
    assert_eq!(s.workers().await.unwrap().len(), 1);
    // A lost worker's row is kept a while, then housekeeping forgets it.
    let lost_since = T0 + 3000 + 2000;
    s.housekeeping(lost_since + LOST_WORKERS_KEPT_MS)
        .await
        .unwrap();
    let kept = s.workers().await.unwrap();
    assert_eq!(kept.len(), 1);
    assert!(
        kept[0].leased.is_empty(),
        "its leases went back to the queue"
    );
    s.housekeeping(lost_since + LOST_WORKERS_KEPT_MS + 1)
        .await
        .unwrap();
    assert!(s.workers().await.unwrap().is_empty());
    // Registering again (the same id after a restart) is an update.
    s.register_worker(&worker("w1", T0 + 9), T0 + 9)
        .await
        .unwrap();
    s.register_worker(&worker("w1", T0 + 10), T0 + 10)
        .await
        .unwrap();
    let again = s.workers().await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].info.started_at, T0 + 10);
}

// ---------------------------------------------------------------------------
// Citizens' SMS replies (BAJA / ALTA)

fn inbound(from: &str, text: &str) -> NewInbound {
    NewInbound::new(InboundSource::Kannel, phone(from), text)
}

async fn apply(store: &dyn Store, from: &str, text: &str, now: i64) -> AppliedReply {
    store.apply_reply(&inbound(from, text), now).await.unwrap()
}

async fn sms_reasons(
    store: &dyn Store,
    address: &str,
) -> Vec<(SuppressionScope, SuppressionReason)> {
    store
        .suppressions(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.address == address)
        .map(|s| (s.scope, s.reason))
        .collect()
}

async fn baja_suppresses_and_alta_lifts_only_the_citizens_own_baja(b: &Backend) {
    use SuppressionReason::*;
    use SuppressionScope as Scope;
    let s = b.s();
    let (own, bounced, called, unknown) = (
        "+12135550101",
        "+12135550102",
        "+12135550103",
        "+12135550104",
    );
    s.add_suppressions(&[
        suppression(bounced, Scope::Sms, Invalid),
        suppression(called, Scope::All, DoNotContact),
    ])
    .await
    .unwrap();

    // The citizen's own BAJA, then ALTA: suppressed, then free again.
    assert_eq!(
        apply(s, own, "baja", T0).await.action,
        ReplyAction::Suppressed
    );
    assert_eq!(sms_reasons(s, own).await, [(Scope::Sms, Reply)]);
    assert_eq!(
        apply(s, own, "STOP", T0 + 1).await.action,
        ReplyAction::AlreadySuppressed
    );
    let alta = apply(s, own, "alta", T0 + 2).await;
    assert_eq!((alta.action, alta.kept), (ReplyAction::Resubscribed, None));
    assert!(sms_reasons(s, own).await.is_empty());
    assert_eq!(
        apply(s, own, "alta", T0 + 3).await.action,
        ReplyAction::NotSuppressed
    );

    // An invalid number's suppression is not the citizen's to lift.
    assert_eq!(
        apply(s, bounced, "baja", T0).await.action,
        ReplyAction::AlreadySuppressed
    );
    let alta = apply(s, bounced, "ALTA", T0 + 1).await;
    assert_eq!(
        (alta.action, alta.kept),
        (ReplyAction::KeptSuppressed, Some(Invalid))
    );
    assert_eq!(sms_reasons(s, bounced).await, [(Scope::Sms, Invalid)]);

    // The call centre's stop covers every channel: BAJA adds the citizen's
    // own on SMS, ALTA takes only that one away.
    assert_eq!(
        apply(s, called, "baja", T0).await.action,
        ReplyAction::Suppressed
    );
    let alta = apply(s, called, "alta", T0 + 1).await;
    assert_eq!(
        (alta.action, alta.kept),
        (ReplyAction::KeptSuppressed, Some(DoNotContact))
    );
    assert_eq!(sms_reasons(s, called).await, [(Scope::All, DoNotContact)]);

    // Anything else changes nothing.
    assert_eq!(
        apply(s, unknown, "hola", T0).await.action,
        ReplyAction::Ignored
    );
    assert!(sms_reasons(s, unknown).await.is_empty());
}

async fn replies_are_recorded_with_their_outcome_and_read_in_pages(b: &Backend) {
    let s = b.s();
    let baja = apply(s, "+12135550101", "Baja por favor", T0).await;
    let unknown = apply(s, "+12135550102", "¿cuándo votamos?", T0 + 5).await;
    let alta = apply(s, "+12135550101", "ALTA", T0 + 9).await;
    assert!(baja.id < unknown.id && unknown.id < alta.id);
    assert!(s
        .record_reply(baja.id, ReplyStatus::Sent, Some("kannel: 0".into()))
        .await
        .unwrap());
    assert!(s
        .record_reply(alta.id, ReplyStatus::Failed, Some("down".into()))
        .await
        .unwrap());
    assert!(!s
        .record_reply(alta.id + 100, ReplyStatus::Sent, None)
        .await
        .unwrap());

    let log = s.inbound_log(0, 10).await.unwrap();
    let summary: Vec<_> = log
        .iter()
        .map(|r| {
            (
                r.id,
                r.received_at,
                r.keyword,
                r.action,
                r.reply,
                r.reply_detail.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                baja.id,
                T0,
                ReplyKeyword::OptOut,
                ReplyAction::Suppressed,
                ReplyStatus::Sent,
                Some("kannel: 0")
            ),
            (
                unknown.id,
                T0 + 5,
                ReplyKeyword::Unknown,
                ReplyAction::Ignored,
                ReplyStatus::NotSent,
                None
            ),
            (
                alta.id,
                T0 + 9,
                ReplyKeyword::OptIn,
                ReplyAction::Resubscribed,
                ReplyStatus::Failed,
                Some("down")
            ),
        ]
    );
    assert_eq!(log[1].text, "¿cuándo votamos?");
    assert_eq!(log[1].phone.as_str(), "+12135550102");
    assert_eq!(log[0].source, InboundSource::Kannel);
    let page = s.inbound_log(baja.id, 1).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, unknown.id);
    assert!(s.inbound_log(alta.id, 10).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// The frequency cap

const DAY: i64 = 86_400_000;

fn cap_policy(cap: &str, when: WhenCapped) -> CapPolicy {
    CapPolicy {
        cap: FrequencyCap::parse(cap).unwrap(),
        when,
    }
}

/// A started SMS campaign over `contacts` with `policy` as its cap.
async fn capped(
    store: &dyn Store,
    name: &str,
    contacts: &[Contact],
    policy: Option<CapPolicy>,
) -> Campaign {
    start(
        store,
        campaign_with(store, name, contacts, None, policy).await,
    )
    .await
}

async fn frequency_caps_are_kept_with_their_campaigns(b: &Backend) {
    let policy = cap_policy("2/7d", WhenCapped::Defer);
    let with = capped(b.s(), "with", &people(1), Some(policy)).await;
    let without = capped(b.s(), "without", &people(1), None).await;
    assert_eq!(b.s().frequency_cap(with.id).await.unwrap(), Some(policy));
    assert_eq!(b.s().frequency_cap(without.id).await.unwrap(), None);
    assert_eq!(b.s().frequency_cap(9999).await.unwrap(), None);
}

async fn capped_claims_count_across_campaigns_and_hold_or_defer(b: &Backend) {
    let s = b.s();
    let hold = cap_policy("1/1d", WhenCapped::Hold);
    let defer = cap_policy("1/1d", WhenCapped::Defer);
    let everyone = people(5);
    let first = capped(s, "first", &everyone, Some(hold)).await;
    let second = capped(s, "second", &everyone, Some(hold)).await;
    let third = capped(s, "third", &everyone[..3], Some(defer)).await;

    let got = s
        .claim_capped(first.id, "w1", T0, LEASE, 100, &hold)
        .await
        .unwrap();
    assert_eq!((got.claimed.len(), got.held, got.deferred), (5, 0, 0));
    record(
        s,
        "w1",
        &got.claimed.iter().map(sent).collect::<Vec<_>>(),
        T0 + 10,
    )
    .await;

    // Another campaign to the same people within the day: held for good.
    let got = s
        .claim_capped(second.id, "w1", T0 + 1000, LEASE, 100, &hold)
        .await
        .unwrap();
    assert_eq!((got.claimed.len(), got.held, got.deferred), (0, 5, 0));
    let c = counts(s, second.id).await;
    assert_eq!((c.capped, c.sending, c.queued), (5, 0, 0));
    let ledger = s.message_ledger(second.id, &[], 0, 100).await.unwrap();
    assert!(ledger
        .iter()
        .all(|r| r.status == MessageStatus::Capped && r.last_code.as_deref() == Some("cap")));
    assert_eq!(
        s.metrics()
            .await
            .unwrap()
            .messages
            .iter()
            .find(|(_, st, _)| st == "capped")
            .map(|m| m.2),
        Some(5)
    );

    // Deferred: back in the queue until the day has passed.
    let got = s
        .claim_capped(third.id, "w1", T0 + 2000, LEASE, 100, &defer)
        .await
        .unwrap();
    assert_eq!((got.claimed.len(), got.held, got.deferred), (0, 0, 3));
    assert_eq!(counts(s, third.id).await.queued, 3);
    let early = s
        .claim_capped(third.id, "w1", T0 + DAY - 1, LEASE, 100, &defer)
        .await
        .unwrap();
    assert_eq!(
        early,
        aviso::store::CappedClaim::default(),
        "nothing is due before the day has passed"
    );
    let got = s
        .claim_capped(third.id, "w1", T0 + DAY + 1, LEASE, 100, &defer)
        .await
        .unwrap();
    assert_eq!((got.claimed.len(), got.held, got.deferred), (3, 0, 0));

    // A message claimed again (its lease expired) keeps its place; others wait.
    s.housekeeping(T0 + DAY + 1 + LEASE).await.unwrap();
    let again = s
        .claim_capped(third.id, "w2", T0 + DAY + 2 + LEASE, LEASE, 100, &defer)
        .await
        .unwrap();
    assert_eq!((again.claimed.len(), again.deferred), (3, 0));
    assert_eq!(counts(s, third.id).await.total(), 3);
}

async fn capped_claims_at_once_share_the_cap(b: &Backend) {
    const N: usize = 200;
    let hold = cap_policy("1/1d", WhenCapped::Hold);
    let everyone = people(N);
    let mut campaigns = Vec::new();
    for name in ["a", "b", "c"] {
        campaigns.push(capped(b.s(), name, &everyone, Some(hold)).await);
    }
    // A store per worker, as separate processes would have.
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = aviso::store::open(&b.url).await.unwrap();
        let ids: Vec<i64> = campaigns.iter().map(|c| c.id).collect();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let mut none = true;
                for i in 0..ids.len() {
                    let id = ids[(i + w) % ids.len()];
                    let got = store
                        .claim_capped(id, &format!("w{w}"), T0, LEASE, 7, &hold)
                        .await
                        .unwrap();
                    none &= got.claimed.is_empty() && got.held == 0;
                    mine.extend(got.claimed.into_iter().map(|m| m.address));
                }
                if none {
                    return mine;
                }
            }
        }));
    }
    let mut addresses = Vec::new();
    for t in tasks {
        addresses.extend(t.await.unwrap());
    }
    let distinct: BTreeSet<&String> = addresses.iter().collect();
    assert_eq!(distinct.len(), N, "every recipient got a message");
    assert_eq!(addresses.len(), N, "no recipient got two");
    let mut capped_total = 0;
    for c in &campaigns {
        let c = counts(b.s(), c.id).await;
        assert_eq!(c.sending + c.capped, N as i64, "{c:?}");
        capped_total += c.capped;
    }
    assert_eq!(capped_total, 2 * N as i64);
}

// ---------------------------------------------------------------------------
// Cost and the call centre

async fn sent_segments_are_kept_per_message_and_summed_for_the_indicators(b: &Backend) {
    let s = b.s();
    let c = started(s, "segments", &people(3)).await;
    let claimed = claim(s, &c, "w", T0, 10).await;
    assert_eq!(claimed.len(), 3);
    let with_segments = |m: &ClaimedMessage, n: i64| {
        outcome(
            m,
            OutcomeKind::Sent {
                provider_ref: None,
                segments: Some(n),
            },
        )
    };
    let failed = outcome(
        &claimed[2],
        OutcomeKind::Failed {
            permanent: true,
            suppress: None,
        },
    );
    let outcomes = [
        with_segments(&claimed[0], 2),
        with_segments(&claimed[1], 3),
        failed,
    ];
    assert_eq!(record(s, "w", &outcomes, T0 + 1).await.recorded, 3);
    let ledger = s.message_ledger(c.id, &[], 0, 10).await.unwrap();
    let segments: Vec<Option<i64>> = ledger.iter().map(|r| r.segments).collect();
    assert_eq!(segments, [Some(2), Some(3), None]);
    let facts = s.message_facts(None, None).await.unwrap();
    let (accepted, summed) = facts
        .iter()
        .fold((0, 0), |(a, n), f| (a + f.accepted, n + f.segments));
    assert_eq!((accepted, summed), (2, 5));
    let failed_fact = facts
        .iter()
        .find(|f| f.status == MessageStatus::Failed)
        .unwrap();
    assert_eq!((failed_fact.accepted, failed_fact.segments), (0, 0));
}

async fn unreached_messages_and_members_without_an_address_are_found(b: &Backend) {
    let s = b.s();
    let audience = [
        citizen("A", Entity::Oax, None, Some("+12135550101")), // sent
        citizen("B", Entity::Oax, None, Some("+12135550102")), // invalid before
        citizen("C", Entity::Dgo, None, Some("+12135550103")), // opted out: not to call
        citizen("D", Entity::Dgo, Some("d@example.com"), None), // no phone
        citizen("E", Entity::Tam, None, Some("+12135550105")), // fails now
        citizen("F", Entity::Tam, None, Some("+12135550106")), // bounced before
    ];
    s.add_suppressions(&[
        suppression(
            "+12135550102",
            SuppressionScope::Sms,
            SuppressionReason::Invalid,
        ),
        suppression(
            "+12135550103",
            SuppressionScope::All,
            SuppressionReason::OptOut,
        ),
        suppression(
            "+12135550106",
            SuppressionScope::All,
            SuppressionReason::HardBounce,
        ),
    ])
    .await
    .unwrap();
    let c = started(s, "unreached", &audience).await;
    let claimed = claim(s, &c, "w", T0, 10).await;
    let outcomes: Vec<Outcome> = claimed
        .iter()
        .map(|m| match m.contact_id.as_str() {
            "E" => outcome(
                m,
                OutcomeKind::Failed {
                    permanent: true,
                    suppress: None,
                },
            ),
            _ => sent(m),
        })
        .collect();
    record(s, "w", &outcomes, T0 + 1).await;
    let found: Vec<(String, String, Option<String>)> = s
        .unreached_messages(c.id)
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.contact.id, u.status.to_string(), u.reason))
        .collect();
    let expect = |id: &str, status: &str, reason: Option<&str>| {
        (
            id.to_string(),
            status.to_string(),
            reason.map(str::to_string),
        )
    };
    let mut found = found;
    found.sort();
    assert_eq!(
        found,
        [
            expect("B", "suppressed", Some("invalid")),
            expect("E", "failed", None),
            expect("F", "suppressed", Some("hard_bounce")),
        ]
    );
    let without = s
        .without_address_page(c.list_id, &Segment::default(), ChannelKind::Sms, "", 10)
        .await
        .unwrap();
    assert_eq!(ids(&without), ["D"]);
    assert_eq!(without[0].email, Some(email("d@example.com")));
    let after = s
        .without_address_page(c.list_id, &Segment::default(), ChannelKind::Sms, "D", 10)
        .await
        .unwrap();
    assert!(after.is_empty());
    let by_mail = s
        .without_address_page(c.list_id, &Segment::default(), ChannelKind::Email, "", 10)
        .await
        .unwrap();
    assert_eq!(ids(&by_mail), ["A", "B", "C", "E", "F"]);
}

async fn call_attempts_are_recorded_once_by_key_and_counted_by_day(b: &Backend) {
    use aviso::calls::CallAttempt;
    let s = b.s();
    let calls = NewActivity {
        channel: None,
        ..activity("LLAMADAS")
    };
    let id = s.create_activity(&calls, T0).await.unwrap();
    let attempt = |key: &str, day: u32| CallAttempt {
        key: key.into(),
        contact_id: Some(key.into()),
        phone: Some(phone("+12135550101")),
        date: chrono::NaiveDate::from_ymd_opt(2021, 10, day).unwrap(),
        outcome: "Contestó".into(),
    };
    let first = [attempt("a", 1), attempt("b", 1), attempt("c", 2)];
    assert_eq!(
        s.record_call_attempts(id, &first, "f1", T0).await.unwrap(),
        3
    );
    let records = s.activity_records().await.unwrap();
    let mut records: Vec<_> = records
        .into_iter()
        .map(|r| (r.activity_id, r.done, r.date))
        .collect();
    records.sort();
    assert_eq!(
        records,
        [
            (id, 1, "2021-10-02".to_string()),
            (id, 2, "2021-10-01".to_string())
        ]
    );
    // The same file again, with one more row: only that row counts.
    let again = [
        attempt("a", 1),
        attempt("b", 1),
        attempt("c", 2),
        attempt("d", 2),
    ];
    assert_eq!(
        s.record_call_attempts(id, &again, "f2", T0).await.unwrap(),
        1
    );
    let total: i64 = s
        .activity_records()
        .await
        .unwrap()
        .iter()
        .map(|r| r.done)
        .sum();
    assert_eq!(total, 4);
    assert_eq!(
        s.record_call_attempts(id, &again, "f2", T0).await.unwrap(),
        0
    );
    assert_eq!(s.activity_records().await.unwrap().len(), 3);
}
