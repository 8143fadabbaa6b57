//! Campaign control with an injected clock: monthly runs (one per month,
//! whatever the number of workers or restarts), missed runs, send windows in
//! the recipient's local time, and expiry.

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;

use aviso::campaigns::manage::{self, CampaignRequest};
use aviso::campaigns::{CampaignSchedule, CampaignState, RunState};
use aviso::clock::Clock;
use aviso::domain::ChannelKind;
use aviso::schedule::{zones::zones_of, Monthly, Window};

use crate::support::engine::{ms, Setup};

fn organizations(from: usize, to: usize) -> String {
    let mut csv = String::from("organizacion,entidad,email,idioma,pais\n");
    for i in from..to {
        csv.push_str(&format!("Club Número {i},,club{i}@example.org,es,US\n"));
    }
    csv
}

fn request(template: &str, list: &str) -> CampaignRequest {
    CampaignRequest {
        activity: "ACT".into(),
        template: template.into(),
        channel: Some(ChannelKind::Email),
        list: list.into(),
        attachment_limit: 1 << 20,
        ..CampaignRequest::default()
    }
}

#[tokio::test]
async fn a_monthly_campaign_makes_one_run_per_month_to_the_list_as_it_was() {
    let s = Setup::new(ms("2021-09-01T08:00:00-05:00")).await;
    s.email_activity().await;
    s.import("osc", &organizations(0, 10)).await;
    let mut req = request("carpeta_mensual", "osc");
    req.vars = s
        .renderer
        .sample_vars("carpeta_mensual")
        .unwrap()
        .as_object()
        .unwrap()
        .clone();
    req.schedule = CampaignSchedule {
        recurrence: Some(Monthly::new(1, "10:00").unwrap()),
        ..CampaignSchedule::default()
    };
    let id = s.campaign(req).await;

    let months = ["2021-09", "2021-10", "2021-11", "2021-12"];
    for (i, month) in months.iter().enumerate() {
        // Just after 10:00 in Mexico City on the 1st; the list grows every month.
        s.clock.set(ms(&format!("{month}-01T10:05:00-06:00")));
        if i > 0 {
            s.import("osc", &organizations(10 * i, 10 * (i + 1))).await;
        }
        // Two workers at once, then a "restarted" one: still one run a month.
        s.run_workers(2).await;
        s.run_workers(1).await;
        let runs = s.store.runs(id).await.unwrap();
        assert_eq!(runs.len(), i + 1, "after {month}: {runs:?}");
        let run = runs.last().unwrap();
        assert_eq!(run.period, *month);
        assert_eq!(
            run.total,
            10 * (i as i64 + 1),
            "the list as it was in {month}"
        );
        assert_eq!(run.state, RunState::Completed);
        // Between runs the campaign waits for the next month.
        let status = manage::status_of(
            s.store.as_ref(),
            id,
            chrono_tz::America::Mexico_City,
            s.clock.now_ms(),
        )
        .await
        .unwrap();
        assert_eq!(status.state, CampaignState::Scheduled);
        assert!(status.next_run.is_some());
    }
    let counts = s.store.status_counts(id).await.unwrap().messages;
    assert_eq!(counts.sent, 10 + 20 + 30 + 40);
    assert_eq!(s.store.runs(id).await.unwrap().len(), 4);
}

#[tokio::test]
async fn a_run_whose_time_passed_three_days_ago_is_missed_not_sent() {
    let s = Setup::new(ms("2021-09-01T08:00:00-05:00")).await;
    s.email_activity().await;
    s.import("osc", &organizations(0, 5)).await;
    let mut once = request("carpeta_mensual", "osc");
    once.vars = s
        .renderer
        .sample_vars("carpeta_mensual")
        .unwrap()
        .as_object()
        .unwrap()
        .clone();
    once.schedule.start_at = Some(ms("2021-09-02T10:00:00-05:00"));
    let id = s.campaign(once).await;

    // Nothing ran until three days after the campaign's time.
    s.clock.set(ms("2021-09-05T10:00:00-05:00"));
    s.run_workers(1).await;
    let runs = s.store.runs(id).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].state, RunState::Missed);
    assert_eq!(runs[0].total, 0);
    let campaign = s.store.campaign(id).await.unwrap().unwrap();
    assert_eq!(campaign.state, CampaignState::Missed);
    assert!(s.sent().await.is_empty(), "nothing is sent late");
}

#[tokio::test]
async fn a_run_within_the_grace_period_is_sent() {
    let s = Setup::new(ms("2021-09-01T08:00:00-05:00")).await;
    s.email_activity().await;
    s.import("osc", &organizations(0, 5)).await;
    let mut once = request("carpeta_mensual", "osc");
    once.vars = s
        .renderer
        .sample_vars("carpeta_mensual")
        .unwrap()
        .as_object()
        .unwrap()
        .clone();
    once.schedule.start_at = Some(ms("2021-09-02T10:00:00-05:00"));
    let id = s.campaign(once).await;
    s.clock.set(ms("2021-09-02T09:59:00-05:00"));
    s.run_workers(1).await;
    assert!(s.store.runs(id).await.unwrap().is_empty(), "not yet");
    s.clock.set(ms("2021-09-02T20:00:00-05:00"));
    s.run_workers(1).await;
    assert_eq!(s.sent().await.len(), 5);
}

fn citizens_in(countries: &[(&str, &str, &str)]) -> String {
    let mut csv = String::from("id_contacto,nombre,apellidos,entidad,pais,email,idioma\n");
    for (i, (country, _, _)) in countries.iter().enumerate() {
        csv.push_str(&format!(
            "W{i},Nombre,Apellido,OAX,{country},w{i}@example.org,es\n"
        ));
    }
    csv
}

#[tokio::test]
async fn nobody_receives_a_message_outside_their_window() {
    // Recipients in the US (New York and Los Angeles count as the US), Spain and Japan.
    let people = [
        ("US", "", ""),
        ("US", "", ""),
        ("ES", "", ""),
        ("JP", "", ""),
    ];
    let s = Setup::new(ms("2021-11-10T00:00:00Z")).await;
    s.email_activity().await;
    s.import("mundo", &citizens_in(&people)).await;
    let mut req = request("registro_abierto", "mundo");
    req.window = Some(Window::parse("09:00-20:00").unwrap());
    let id = s.campaign(req).await;
    manage::start(s.store.as_ref(), id, chrono_tz::UTC, s.clock.now_ms())
        .await
        .unwrap();

    // Walk through two days in steps of 37 minutes, letting a worker run each time.
    let window = Window::parse("09:00-20:00").unwrap();
    let mut sent_so_far = 0;
    for step in 0..80 {
        s.clock.set(ms("2021-11-10T00:00:00Z") + step * 37 * 60_000);
        s.run_workers(1).await;
        let sent = s.sent().await;
        for (country, at) in &sent[..] {
            let at = DateTime::<Utc>::from_timestamp_millis(*at).unwrap();
            let zones: &[Tz] = zones_of(country).unwrap();
            assert!(window.is_open(zones, at), "{country} got a message at {at}");
        }
        sent_so_far = sent.len();
        if sent_so_far == people.len() {
            break;
        }
    }
    assert_eq!(
        sent_so_far,
        people.len(),
        "everyone is reached within two days"
    );

    // The US recipients were sent only once it was 09:00 in Los Angeles (17:00 UTC).
    for (country, at) in s.sent().await {
        let at = DateTime::<Utc>::from_timestamp_millis(at).unwrap();
        if country == "US" {
            assert!(at.hour() >= 17 || at.hour() < 1, "US at {at}");
        }
    }
}

#[tokio::test]
async fn waiting_messages_use_no_attempt_and_status_says_when_they_go() {
    let s = Setup::new(ms("2021-11-10T03:00:00Z")).await; // 22:00 in New York, 19:00 in Los Angeles
    s.email_activity().await;
    s.import("mundo", &citizens_in(&[("US", "", "")])).await;
    let mut req = request("registro_abierto", "mundo");
    req.window = Some(Window::parse("09:00-20:00").unwrap());
    let id = s.campaign(req).await;
    manage::start(s.store.as_ref(), id, chrono_tz::UTC, s.clock.now_ms())
        .await
        .unwrap();
    s.run_workers(1).await;
    let status = manage::status_of(s.store.as_ref(), id, chrono_tz::UTC, s.clock.now_ms())
        .await
        .unwrap();
    assert_eq!(status.waiting_for_window, 1);
    assert_eq!(
        status.counts.queued, 1,
        "waiting, not retrying: no attempt used"
    );
    assert_eq!(
        status.next_window_opens.as_deref(),
        Some("2021-11-10T17:00:00+00:00")
    );
}

#[tokio::test]
async fn unsent_messages_expire_instead_of_going_out_late() {
    let s = Setup::new(ms("2021-11-10T03:00:00Z")).await;
    s.email_activity().await;
    s.import("mundo", &citizens_in(&[("US", "", ""), ("JP", "", "")]))
        .await;
    let mut req = request("registro_abierto", "mundo");
    req.window = Some(Window::parse("09:00-20:00").unwrap());
    req.expires = Some(aviso::schedule::Expiry::At(ms("2021-11-10T12:00:00Z")));
    let id = s.campaign(req).await;
    manage::start(s.store.as_ref(), id, chrono_tz::UTC, s.clock.now_ms())
        .await
        .unwrap();
    s.run_workers(1).await; // Tokyo is open (12:00 there): sent. The US waits.
    s.clock.set(ms("2021-11-10T17:30:00Z")); // The US window opens, but the campaign expired.
    s.run_workers(1).await;
    let counts = s.store.status_counts(id).await.unwrap().messages;
    assert_eq!((counts.sent, counts.expired), (1, 1), "{counts:?}");
}
