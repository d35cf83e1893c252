use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use tokio::sync::mpsc;

use super::*;

fn source(v: Value) -> CalendarEventSource {
    serde_json::from_value(v).expect("calendar entry")
}

fn spec(v: Value) -> CalendarSpec {
    CalendarSpec::parse("ns/es", "tick", &source(v), &TimeZone::UTC).expect("valid spec")
}

fn parse_err(v: Value) -> String {
    CalendarSpec::parse("ns/es", "tick", &source(v), &TimeZone::UTC)
        .expect_err("invalid spec")
        .to_string()
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn state(anchor: &str, last: Option<&str>, spec: &CalendarSpec) -> CalendarState {
    CalendarState {
        anchor: ts(anchor),
        last_fired: last.map(ts),
        spec_key: spec.key().to_owned(),
    }
}

#[test]
fn interval_slots_follow_the_anchor_grid() {
    let s = spec(json!({"interval": "10s"}));
    let st = state("2026-12-06T12:00:00Z", None, &s);
    // Before the first slot: wait for it.
    assert_eq!(
        next_fire(&s, &st, ts("2026-12-06T12:00:03Z")),
        Some(ts("2026-12-06T12:00:10Z"))
    );
    // At (or just after) the slot: it is due.
    assert_eq!(
        next_fire(&s, &st, ts("2026-12-06T12:00:10.2Z")),
        Some(ts("2026-12-06T12:00:10Z"))
    );
    // Once fired, the next one.
    let st = state("2026-12-06T12:00:00Z", Some("2026-12-06T12:00:10Z"), &s);
    assert_eq!(
        next_fire(&s, &st, ts("2026-12-06T12:00:10.3Z")),
        Some(ts("2026-12-06T12:00:20Z"))
    );
}

#[test]
fn missed_slots_fire_once_for_the_latest_by_default() {
    let s = spec(json!({"interval": "10s"}));
    let st = state("2026-12-06T12:00:00Z", Some("2026-12-06T12:00:10Z"), &s);
    let now = ts("2026-12-06T12:01:05Z");
    assert_eq!(next_fire(&s, &st, now), Some(ts("2026-12-06T12:01:00Z")));
    let st = state("2026-12-06T12:00:00Z", Some("2026-12-06T12:01:00Z"), &s);
    assert_eq!(next_fire(&s, &st, now), Some(ts("2026-12-06T12:01:10Z")));
}

#[test]
fn catchup_fires_every_missed_slot_within_max_duration() {
    let all = spec(json!({"interval": "10s", "persistence": {"catchup": {"enabled": true}}}));
    let st = state("2026-12-06T12:00:00Z", Some("2026-12-06T12:00:10Z"), &all);
    let now = ts("2026-12-06T12:01:05Z");
    assert_eq!(next_fire(&all, &st, now), Some(ts("2026-12-06T12:00:20Z")));

    let bounded = spec(json!({"interval": "10s",
        "persistence": {"catchup": {"enabled": true, "maxDuration": "30s"}, "configMap": {"name": "x"}}}));
    let st = state(
        "2026-12-06T12:00:00Z",
        Some("2026-12-06T12:00:10Z"),
        &bounded,
    );
    // Slots older than now - 30s (12:00:35) are dropped.
    assert_eq!(
        next_fire(&bounded, &st, now),
        Some(ts("2026-12-06T12:00:40Z"))
    );

    // Disabled catch-up is the default rule.
    let off = spec(json!({"interval": "10s", "persistence": {"catchup": {"enabled": false}}}));
    let st = state("2026-12-06T12:00:00Z", Some("2026-12-06T12:00:10Z"), &off);
    assert_eq!(next_fire(&off, &st, now), Some(ts("2026-12-06T12:01:00Z")));
}

#[test]
fn cron_schedule_in_a_zone_skips_a_dst_gap() {
    // 02:30 does not exist in New York on 2026-03-08 (spring forward).
    let s = spec(json!({"schedule": "30 2 * * *", "timezone": "America/New_York"}));
    let st = state("2026-03-07T12:00:00Z", None, &s);
    assert_eq!(
        next_fire(&s, &st, ts("2026-03-07T12:00:00Z")),
        Some(ts("2026-03-09T06:30:00Z"))
    );
    // Without a timezone the default zone (UTC here) applies.
    let utc = spec(json!({"schedule": "30 2 * * *"}));
    assert_eq!(
        next_fire(&utc, &st, ts("2026-03-07T12:00:00Z")),
        Some(ts("2026-03-08T02:30:00Z"))
    );
    // A CRON_TZ prefix is honoured.
    let pre = spec(json!({"schedule": "CRON_TZ=Asia/Tokyo 0 9 * * *"}));
    assert_eq!(
        next_fire(&pre, &st, ts("2026-03-07T12:00:00Z")),
        Some(ts("2026-03-08T00:00:00Z"))
    );
}

#[test]
fn exclusion_dates_skip_whole_days_in_the_zone() {
    let s = spec(json!({
        "schedule": "0 9 * * *", "timezone": "Europe/Paris",
        "exclusionDates": ["EXDATE:20261225T000000Z,20261226T000000Z"]
    }));
    let st = state("2026-12-01T00:00:00Z", Some("2026-12-24T08:00:00Z"), &s);
    // 25 and 26 December are excluded: next is the 27th, 09:00 CET.
    assert_eq!(
        next_fire(&s, &st, ts("2026-12-24T09:00:00Z")),
        Some(ts("2026-12-27T08:00:00Z"))
    );
    // Down over the excluded days and past the 27th's slot: that slot, once.
    assert_eq!(
        next_fire(&s, &st, ts("2026-12-28T07:00:00Z")),
        Some(ts("2026-12-27T08:00:00Z"))
    );
    // The latest missed slot that is not excluded, when the latest one is.
    let st2 = state("2026-12-01T00:00:00Z", Some("2026-12-23T08:00:00Z"), &s);
    assert_eq!(
        next_fire(&s, &st2, ts("2026-12-26T12:00:00Z")),
        Some(ts("2026-12-24T08:00:00Z"))
    );

    // The civil date is taken in the zone: 23:00 New York on the 25th is the 26th in UTC.
    let ny = spec(json!({
        "schedule": "0 23 * * *", "timezone": "America/New_York",
        "exclusionDates": ["EXDATE:20261225T000000Z"]
    }));
    let st = state("2026-12-24T00:00:00Z", Some("2026-12-24T04:00:00Z"), &ny);
    // 23:00 on the 24th in New York is the 25th in UTC: not excluded.
    assert_eq!(
        next_fire(&ny, &st, ts("2026-12-24T05:00:00Z")),
        Some(ts("2026-12-25T04:00:00Z"))
    );
    let st = state("2026-12-24T00:00:00Z", Some("2026-12-25T04:00:00Z"), &ny);
    assert_eq!(
        next_fire(&ny, &st, ts("2026-12-25T05:00:00Z")),
        Some(ts("2026-12-27T04:00:00Z"))
    );

    // Intervals honour exclusions too.
    let iv = spec(json!({"interval": "12h", "exclusionDates": ["EXDATE:20261207T000000Z"]}));
    let st = state("2026-12-06T00:00:00Z", Some("2026-12-06T12:00:00Z"), &iv);
    assert_eq!(
        next_fire(&iv, &st, ts("2026-12-06T13:00:00Z")),
        Some(ts("2026-12-08T00:00:00Z"))
    );
}

#[test]
fn schedules_that_never_fire_end() {
    let s = spec(json!({"schedule": "0 0 30 2 *"}));
    let st = state("2026-01-01T00:00:00Z", None, &s);
    assert_eq!(next_fire(&s, &st, ts("2026-01-01T00:00:00Z")), None);
    // Excluded slots are skipped one day at a time, however many there are in a row.
    let s = spec(json!({"schedule": "0 0 1 1 *", "exclusionDates": [
        "EXDATE:20270101T000000Z,20280101T000000Z,20290101T000000Z,20300101T000000Z,20310101T000000Z,20320101T000000Z"
    ]}));
    let st = state("2026-06-01T00:00:00Z", None, &s);
    assert_eq!(
        next_fire(&s, &st, ts("2026-06-01T00:00:00Z")),
        Some(ts("2033-01-01T00:00:00Z"))
    );
}

#[test]
fn schedule_wins_over_interval_and_short_intervals_round_up() {
    let both = spec(json!({"schedule": "0 * * * *", "interval": "10s"}));
    let st = state("2026-12-06T12:00:05Z", None, &both);
    assert_eq!(
        next_fire(&both, &st, ts("2026-12-06T12:00:05Z")),
        Some(ts("2026-12-06T13:00:00Z"))
    );
    let short = spec(json!({"interval": "500ms"}));
    let st = state("2026-12-06T12:00:05Z", None, &short);
    assert_eq!(
        next_fire(&short, &st, ts("2026-12-06T12:00:05Z")),
        Some(ts("2026-12-06T12:00:06Z"))
    );
    let odd = spec(json!({"interval": "1m30.9s"}));
    let st = state("2026-12-06T12:00:00Z", None, &odd);
    assert_eq!(
        next_fire(&odd, &st, ts("2026-12-06T12:00:00Z")),
        Some(ts("2026-12-06T12:01:30Z"))
    );
}

#[test]
fn invalid_entries_name_the_object_field_and_expectation() {
    let cases = [
        (
            json!({}),
            "spec.calendar.tick.schedule: expected a schedule (cron) or an interval",
        ),
        (
            json!({"schedule": "61 * * * *"}),
            "spec.calendar.tick.schedule: \"61 * * * *\"",
        ),
        (json!({"schedule": "* * * *"}), "expected exactly 5 fields"),
        (
            json!({"schedule": "@daily"}),
            "descriptors such as @daily are not accepted",
        ),
        (
            json!({"schedule": "CRON_TZ=Mars/Base 0 * * * *"}),
            "unknown time zone \"Mars/Base\"",
        ),
        (
            json!({"interval": "ten seconds"}),
            "spec.calendar.tick.interval: \"ten seconds\"",
        ),
        (json!({"interval": "0s"}), "expected a positive duration"),
        (json!({"interval": "-5s"}), "expected a positive duration"),
        (
            json!({"interval": "1s", "timezone": "Mars/Base"}),
            "spec.calendar.tick.timezone: unknown time zone \"Mars/Base\"",
        ),
        (
            json!({"interval": "1s", "exclusionDates": ["EXDATE:20261224T000000Z", "20261225T000000Z"]}),
            "spec.calendar.tick.exclusionDates[1]: \"20261225T000000Z\": expected EXDATE:",
        ),
        (
            json!({"interval": "1s", "exclusionDates": ["EXDATE:2026-12-25"]}),
            "exclusionDates[0]: \"2026-12-25\": expected a UTC date-time",
        ),
        (
            json!({"interval": "1s", "metadata": {"a": 1}}),
            "spec.calendar.tick.metadata.a: expected a string",
        ),
        (
            json!({"interval": "1s", "metadata": "x"}),
            "spec.calendar.tick.metadata: expected a map of strings",
        ),
        (
            json!({"interval": "1s", "persistence": {"catchup": {"enabled": "yes"}}}),
            "persistence.catchup.enabled: expected true or false",
        ),
        (
            json!({"interval": "1s", "persistence": {"catchup": {"enabled": true, "maxDuration": "soon"}}}),
            "persistence.catchup.maxDuration: \"soon\"",
        ),
    ];
    for (input, want) in cases {
        let got = parse_err(input.clone());
        assert!(got.starts_with("eventsource ns/es: "), "{input}: {got}");
        assert!(got.contains(want), "{input}: {got}\n  wanted: {want}");
    }
}

#[test]
fn spec_key_changes_with_the_schedule_fields_only() {
    let a = spec(json!({"interval": "10s", "metadata": {"k": "v"}}));
    let b = spec(json!({"interval": "10s", "metadata": {"k": "w"}}));
    let c = spec(json!({"interval": "20s"}));
    let d = spec(json!({"interval": "10s", "timezone": "Europe/Paris"}));
    let e = spec(json!({"interval": "10s", "persistence": {"catchup": {"enabled": true}}}));
    assert_eq!(a.key(), b.key());
    for other in [&c, &d, &e] {
        assert_ne!(a.key(), other.key());
    }
}

#[test]
fn go_time_strings_match_go() {
    assert_eq!(
        go_time_string(ts("2026-12-06T19:00:00Z"), &TimeZone::UTC),
        "2026-12-06 19:00:00 +0000 UTC"
    );
    let paris = TimeZone::get("Europe/Paris").expect("zone");
    assert_eq!(
        go_time_string(ts("2026-12-06T19:00:00Z"), &paris),
        "2026-12-06 20:00:00 +0100 CET"
    );
    assert_eq!(
        go_time_string(ts("2026-07-06T19:00:00.25Z"), &paris),
        "2026-07-06 21:00:00.25 +0200 CEST"
    );
}

#[test]
fn events_have_argo_shape_and_ids_from_the_slot() {
    let s = spec(json!({"interval": "10s", "metadata": {"team": "ml"}}));
    let slot = ts("2026-12-06T12:00:10Z");
    let e = calendar_event("ns", "es", "tick", &s, slot);
    assert_eq!(
        e.context.id,
        event_id("ns", "es", "tick", "2026-12-06T12:00:10Z")
    );
    assert_eq!(e, calendar_event("ns", "es", "tick", &s, slot));
    assert_ne!(
        e.context.id,
        calendar_event("ns", "es", "tick", &s, ts("2026-12-06T12:00:20Z"))
            .context
            .id
    );
    let mut shown = e.to_json();
    shown["context"]["id"] = json!("<id>");
    insta::assert_json_snapshot!(shown, @r#"
    {
      "context": {
        "id": "<id>",
        "source": "es",
        "specversion": "1.0",
        "type": "calendar",
        "subject": "tick",
        "datacontenttype": "application/json",
        "time": "2026-12-06T12:00:10Z"
      },
      "data": {
        "eventTime": "2026-12-06 12:00:10 +0000 UTC",
        "metadata": {
          "team": "ml"
        }
      }
    }
    "#);
    let plain = calendar_event("ns", "es", "tick", &spec(json!({"interval": "10s"})), slot);
    assert_eq!(
        plain.data,
        json!({"eventTime": "2026-12-06 12:00:10 +0000 UTC"})
    );
}

// ---- the loop, on tokio's paused clock ----

const BASE: i64 = 1_800_000_000; // 2027-01-15T08:00:00Z

/// Wall clock following tokio's (paused) clock: `BASE` at `origin`.
fn paused_clock(origin: tokio::time::Instant) -> impl Fn() -> Timestamp + Send + 'static {
    let start = origin;
    move || {
        let elapsed = tokio::time::Instant::now() - start;
        Timestamp::from_second(BASE).expect("base")
            + SignedDuration::try_from(elapsed).expect("elapsed")
    }
}

fn slot(k: i64) -> Timestamp {
    Timestamp::from_second(BASE + 10 * k).expect("slot")
}

/// Publishes into a channel; the call numbered `hang_at` (1-based) publishes and then never
/// returns (a crash between publish and the record write); calls in `fail` fail first.
fn publisher(
    tx: mpsc::UnboundedSender<Event>,
    hang_at: Option<usize>,
    fail: &'static [usize],
) -> impl FnMut(Event) -> std::pin::Pin<Box<dyn Future<Output = Result<u64, SourceError>> + Send>>
+ Send
+ 'static {
    let calls = Arc::new(AtomicUsize::new(0));
    move |event| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        let tx = tx.clone();
        Box::pin(async move {
            if fail.contains(&n) {
                return Err(SourceError::Publish {
                    namespace: "ns".to_owned(),
                    event_source: "es".to_owned(),
                    event_name: "tick".to_owned(),
                    source: crate::events::bus::BusError::UnknownConsumer("test".to_owned()),
                });
            }
            let _ = tx.send(event);
            if hang_at == Some(n) {
                std::future::pending::<()>().await;
            }
            Ok(n as u64)
        })
    }
}

fn start(
    origin: tokio::time::Instant,
    store: &Store,
    entry: Value,
    hang_at: Option<usize>,
    fail: &'static [usize],
) -> (
    tokio::task::JoinHandle<Result<(), CalendarError>>,
    mpsc::UnboundedReceiver<Event>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let store = store.clone();
    let spec = spec(entry);
    let handle = tokio::spawn(async move {
        run_loop(
            &store,
            "ns",
            "es",
            "tick",
            &spec,
            paused_clock(origin),
            publisher(tx, hang_at, fail),
        )
        .await
    });
    (handle, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Event>) -> Timestamp {
    rx.recv().await.expect("an event").context.time
}

fn record(store: &Store) -> Option<CalendarState> {
    load(store, "ns/es/tick").expect("read record")
}

async fn stop(handle: tokio::task::JoinHandle<Result<(), CalendarError>>) {
    handle.abort();
    let _ = handle.await;
}

#[tokio::test(start_paused = true)]
async fn loop_fires_each_slot_on_time_and_records_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("store");
    let origin = tokio::time::Instant::now();
    let (handle, mut rx) = start(origin, &store, json!({"interval": "10s"}), Some(4), &[]);
    for k in 1..=3 {
        assert_eq!(next(&mut rx).await, slot(k));
    }
    // The fourth publish hangs; by then the third slot is recorded.
    assert_eq!(next(&mut rx).await, slot(4));
    let rec = record(&store).expect("record");
    assert_eq!(rec.anchor, slot(0));
    assert_eq!(rec.last_fired, Some(slot(3)));
    stop(handle).await;
}

#[tokio::test(start_paused = true)]
async fn restart_after_a_crash_between_publish_and_record_re_emits_the_same_event() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("store");
    let origin = tokio::time::Instant::now();
    let (handle, mut rx) = start(origin, &store, json!({"interval": "10s"}), Some(3), &[]);
    assert_eq!(next(&mut rx).await, slot(1));
    assert_eq!(next(&mut rx).await, slot(2));
    let first = rx.recv().await.expect("slot 3");
    stop(handle).await;
    assert_eq!(record(&store).and_then(|r| r.last_fired), Some(slot(2)));

    let (handle, mut rx) = start(origin, &store, json!({"interval": "10s"}), Some(2), &[]);
    let again = rx.recv().await.expect("slot 3 again");
    assert_eq!(again, first, "the same slot is the same event (same id)");
    assert_eq!(next(&mut rx).await, slot(4));
    stop(handle).await;
}

#[tokio::test(start_paused = true)]
async fn restart_after_downtime_fires_the_latest_missed_slot_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("store");
    let origin = tokio::time::Instant::now();
    let (handle, mut rx) = start(origin, &store, json!({"interval": "10s"}), Some(3), &[]);
    for k in 1..=3 {
        assert_eq!(next(&mut rx).await, slot(k));
    }
    stop(handle).await;
    // Down from slot 3 + 0 to slot 6 + 5 s.
    tokio::time::advance(Duration::from_secs(35)).await;
    let (handle, mut rx) = start(origin, &store, json!({"interval": "10s"}), Some(3), &[]);
    assert_eq!(next(&mut rx).await, slot(6));
    assert_eq!(next(&mut rx).await, slot(7));
    assert_eq!(next(&mut rx).await, slot(8));
    assert_eq!(record(&store).and_then(|r| r.last_fired), Some(slot(7)));
    stop(handle).await;
}

#[tokio::test(start_paused = true)]
async fn restart_with_catchup_fires_every_missed_slot_in_order() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("store");
    let origin = tokio::time::Instant::now();
    let entry = json!({"interval": "10s", "persistence": {"catchup": {"enabled": true}}});
    let (handle, mut rx) = start(origin, &store, entry.clone(), Some(3), &[]);
    for k in 1..=3 {
        assert_eq!(next(&mut rx).await, slot(k));
    }
    stop(handle).await;
    tokio::time::advance(Duration::from_secs(35)).await;
    let (handle, mut rx) = start(origin, &store, entry, Some(6), &[]);
    // Slot 3 was published but not recorded: re-emitted (same id), then 4, 5, 6 at once.
    for k in 3..=7 {
        assert_eq!(next(&mut rx).await, slot(k));
    }
    stop(handle).await;
}

#[tokio::test(start_paused = true)]
async fn failed_publishes_are_retried_without_skipping_the_slot() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("store");
    let origin = tokio::time::Instant::now();
    let (handle, mut rx) = start(origin, &store, json!({"interval": "1h"}), Some(4), &[1, 2]);
    let first = rx.recv().await.expect("event");
    assert_eq!(
        first.context.time,
        Timestamp::from_second(BASE + 3600).expect("t")
    );
    // Published on the third attempt (after 0.5 s + 1 s of back-off), still for slot 1.
    assert_eq!(
        next(&mut rx).await,
        Timestamp::from_second(BASE + 7200).expect("t")
    );
    stop(handle).await;
}

#[tokio::test(start_paused = true)]
async fn a_changed_schedule_starts_afresh_and_forget_drops_records() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("store");
    let origin = tokio::time::Instant::now();
    let (handle, mut rx) = start(origin, &store, json!({"interval": "10s"}), Some(2), &[]);
    assert_eq!(next(&mut rx).await, slot(1));
    assert_eq!(next(&mut rx).await, slot(2));
    stop(handle).await;
    tokio::time::advance(Duration::from_secs(100)).await;
    // A new interval: no missed slot of it fires; its grid starts now (slot 12 of the old one).
    let (handle, mut rx) = start(origin, &store, json!({"interval": "7s"}), Some(1), &[]);
    assert_eq!(
        next(&mut rx).await,
        Timestamp::from_second(BASE + 120 + 7).expect("t")
    );
    stop(handle).await;
    let rec = record(&store).expect("record");
    assert_eq!(rec.anchor, slot(12));

    let removed = forget(&store, "ns", "es", &["other".to_owned()])
        .await
        .expect("forget");
    assert_eq!(removed, 1);
    assert_eq!(record(&store), None);
}
