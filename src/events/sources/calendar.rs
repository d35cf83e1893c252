//! The `calendar` event source: events on a cron schedule or at a fixed interval, with
//! Argo Events' semantics, and a last fire time persisted in redb so a restart neither skips nor
//! doubles a due event.
//!
//! Owns: checking a `spec.calendar.<event>` entry into a [`CalendarSpec`]; the pure due-time rule
//! [`next_fire`]; the event a fire produces ([`calendar_event`]); the per-event task [`run`]; the
//! `events_calendar_state` table (key `<namespace>/<eventsource>/<event>`, JSON
//! [`CalendarState`]) and [`forget`], which drops an EventSource's records.
//!
//! Semantics (Argo Events' calendar source, looked up in its docs and sources):
//! - `schedule`: a standard 5-field cron expression (robfig/cron, as CronWorkflows parse it:
//!   see `workflow::cron`; a `CRON_TZ=`/`TZ=` prefix is honoured). Descriptors (`@daily`,
//!   `@every`) are refused, as Argo's parser (fields only) refuses them. `interval`: a Go
//!   duration (`10s`, `1h30m`), truncated to whole seconds, at least 1 s (robfig's rule; Argo
//!   passes zero and negative intervals through, cairn refuses them). When both are set the
//!   schedule wins, as in Argo. Neither is an error.
//! - `timezone`: an IANA zone for the schedule and for `exclusionDates`; absent, the zone given
//!   to [`CalendarSpec::parse`] (cairn's process zone, as an Argo pod uses its own).
//! - `exclusionDates`: entries `EXDATE:<yyyymmddThhmmssZ>[,<...>]` (RFC 5545); a slot whose
//!   civil date in the zone equals an excluded entry's date does not fire. Argo ignores entries
//!   without the `EXDATE:` prefix; cairn refuses them (a silently ignored exclusion is a trap).
//! - The event: type `calendar`, source the EventSource, subject the event name, data
//!   `{"eventTime": "<slot as Go's time.String() in the zone>", "metadata": {...}}` (`metadata`
//!   only when set). `context.time` is the slot itself (Argo stamps the dispatch time; cairn uses
//!   the slot so a re-emit is the identical event).
//!
//! Persistence and catch-up (cairn always persists; Argo's `persistence.configMap` is not used,
//! the redb record replaces it):
//! - The first start records an anchor (the start time, whole seconds): interval slots are
//!   `anchor + k·interval` forever after, so restarts keep the grid (Argo's timer drifts by its
//!   own latency; cairn's does not). The first slot is the first one after the anchor.
//! - After each fire the slot is written to the record *before* the next slot is considered.
//! - Missed slots (cairn was down, or the loop woke late): by default one event, for the
//!   *latest* missed slot, then the schedule continues — a restart neither skips a due event nor
//!   floods (Kubernetes CronJob's and CronWorkflow's rule). With `persistence.catchup.enabled`
//!   (Argo's catch-up) every missed slot fires in order, but none older than
//!   `catchup.maxDuration` before now when that is set.
//! - A crash between the publish and the record write re-emits the same slot after the restart
//!   with the same event id ([`event_id`] over the slot's RFC 3339 time), so sensors see one
//!   event, not two.
//! - When the schedule fields change (schedule, interval, timezone, exclusions, catch-up) the
//!   record restarts from the current time: an edit never fires missed slots of the new
//!   schedule.
//!
//! Invariants: [`next_fire`] and [`CalendarSpec::parse`] are pure (time is an input); every
//! search loop is bounded (by the schedule search horizon and by the number of exclusion
//! dates); [`run`] never sleeps longer than [`MAX_SLEEP`] without re-reading the clock.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use redb::TableDefinition;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{SourceContext, SourceError, emit};
use crate::events::event::{Event, EventContext, JSON_CONTENT_TYPE, SPEC_VERSION, event_id};
use crate::events::types::CalendarEventSource;
use crate::store::{JsonTable, Store, StoreError};
use crate::workflow::cron::{CronError, Schedule, parse_schedule};
use crate::workflow::retry::parse_go_duration;

/// The calendar records: `<namespace>/<eventsource>/<event>` -> JSON [`CalendarState`].
/// Created by the first write (a database without it reads as "no record").
pub const CALENDAR_STATE: TableDefinition<&str, &[u8]> =
    TableDefinition::new("events_calendar_state");

const TABLE: JsonTable<CalendarState> = JsonTable::new(CALENDAR_STATE);

/// The longest single sleep of [`run`]: the wall clock is re-read at least this often, so a
/// clock step or a suspended machine delays a slot by at most this much.
pub const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Back-off bounds after a failed publish or record write.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Errors of the calendar source.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// A field of the calendar entry is invalid.
    #[error("eventsource {object}: spec.calendar.{event}.{field}: {problem}")]
    Spec {
        /// `<namespace>/<eventsource>`.
        object: String,
        /// The event name (key under `spec.calendar`).
        event: String,
        /// The field (`schedule`, `interval`, `exclusionDates[1]`...).
        field: String,
        /// What is wrong and what was expected.
        problem: String,
    },
    /// Reading or writing the calendar record failed.
    #[error("eventsource {object}: calendar {event}: state record: {source}")]
    Store {
        /// `<namespace>/<eventsource>`.
        object: String,
        /// The event name.
        event: String,
        /// The store error.
        #[source]
        source: StoreError,
    },
}

impl CalendarError {
    /// Short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            CalendarError::Spec { .. } => "spec",
            CalendarError::Store { .. } => "store",
        }
    }
}

/// Argo's catch-up settings (`persistence.catchup`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catchup {
    /// Missed slots older than this before now are not fired (`maxDuration`).
    pub max_duration: Option<SignedDuration>,
}

/// A checked calendar entry.
#[derive(Clone, Debug)]
pub struct CalendarSpec {
    schedule: Schedule,
    tz: TimeZone,
    exclusions: BTreeSet<Date>,
    catchup: Option<Catchup>,
    metadata: BTreeMap<String, String>,
    key: String,
}

/// The persisted record of one calendar event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CalendarState {
    /// Origin of interval slots and lower bound of all slots (first start, whole seconds).
    pub anchor: Timestamp,
    /// The last slot fired (published and recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fired: Option<Timestamp>,
    /// The schedule fields the record was made for ([`CalendarSpec::key`]).
    pub spec_key: String,
}

impl CalendarState {
    /// A fresh record at `now` (truncated to whole seconds) for `spec`.
    pub fn new(spec: &CalendarSpec, now: Timestamp) -> CalendarState {
        CalendarState {
            anchor: Timestamp::from_second(now.as_second()).unwrap_or(now),
            last_fired: None,
            spec_key: spec.key.clone(),
        }
    }
}

impl CalendarSpec {
    /// Checks a calendar entry. `object` is `<namespace>/<eventsource>`, `event` its key under
    /// `spec.calendar`; `default_tz` applies when `timezone` is unset.
    pub fn parse(
        object: &str,
        event: &str,
        spec: &CalendarEventSource,
        default_tz: &TimeZone,
    ) -> Result<CalendarSpec, CalendarError> {
        let err = |field: &str, problem: String| CalendarError::Spec {
            object: object.to_owned(),
            event: event.to_owned(),
            field: field.to_owned(),
            problem,
        };
        let tz = match spec.timezone.as_deref() {
            None | Some("") => default_tz.clone(),
            Some(zone) => TimeZone::get(zone).map_err(|_| {
                err(
                    "timezone",
                    format!(
                        "unknown time zone {zone:?} (expected an IANA name such as Europe/Paris)"
                    ),
                )
            })?,
        };
        let schedule_text = spec.schedule.as_deref().map(str::trim).unwrap_or("");
        let interval_text = spec.interval.as_deref().map(str::trim).unwrap_or("");
        let (schedule, source) = if !schedule_text.is_empty() {
            let fields = schedule_text
                .strip_prefix("CRON_TZ=")
                .or_else(|| schedule_text.strip_prefix("TZ="))
                .and_then(|rest| rest.split_once(char::is_whitespace).map(|(_, s)| s.trim()))
                .unwrap_or(schedule_text);
            if fields.starts_with('@') {
                return Err(err(
                    "schedule",
                    format!(
                        "{schedule_text:?}: expected 5 cron fields (minute hour day-of-month month day-of-week); descriptors such as @daily are not accepted (use interval for a fixed period)"
                    ),
                ));
            }
            let parsed = parse_schedule(object, "schedule", schedule_text, &tz)
                .map_err(|e| err("schedule", cron_problem(schedule_text, e)))?;
            (parsed, format!("schedule={schedule_text}"))
        } else if !interval_text.is_empty() {
            let d = parse_go_duration(interval_text).map_err(|e| {
                err(
                    "interval",
                    format!("{interval_text:?}: {e} (expected a Go duration such as 10s or 1h30m)"),
                )
            })?;
            if d <= SignedDuration::ZERO {
                return Err(err(
                    "interval",
                    format!("{interval_text:?}: expected a positive duration"),
                ));
            }
            let secs = d.as_secs().max(1);
            let parsed = parse_schedule(object, "interval", &format!("@every {secs}s"), &tz)
                .map_err(|e| err("interval", cron_problem(interval_text, e)))?;
            (parsed, format!("interval={secs}s"))
        } else {
            return Err(err(
                "schedule",
                "expected a schedule (cron) or an interval (duration); neither is set".to_owned(),
            ));
        };

        let mut exclusions = BTreeSet::new();
        for (i, entry) in spec.exclusion_dates.iter().flatten().enumerate() {
            let field = format!("exclusionDates[{i}]");
            let Some(list) = entry.trim().strip_prefix("EXDATE:") else {
                return Err(err(
                    &field,
                    format!("{entry:?}: expected EXDATE:<yyyymmddThhmmssZ>[,...] (RFC 5545)"),
                ));
            };
            for item in list.split(',') {
                let dt = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", item.trim()).map_err(
                    |_| {
                        err(
                            &field,
                            format!("{item:?}: expected a UTC date-time such as 20261224T000000Z"),
                        )
                    },
                )?;
                exclusions.insert(dt.date());
            }
        }

        let catchup = parse_catchup(&spec.extra).map_err(|(f, p)| err(&f, p))?;
        let metadata = match spec.extra.get("metadata") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(err(
                        &format!("metadata.{k}"),
                        format!("expected a string, found {v}"),
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(err(
                    "metadata",
                    format!("expected a map of strings, found {other}"),
                ));
            }
        };

        let key = format!(
            "{source};tz={};exclusions={};catchup={}",
            tz.iana_name().unwrap_or("local"),
            exclusions
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(","),
            match &catchup {
                None => "off".to_owned(),
                Some(Catchup { max_duration: None }) => "on".to_owned(),
                Some(Catchup {
                    max_duration: Some(d),
                }) => format!("max {}s", d.as_secs()),
            }
        );
        Ok(CalendarSpec {
            schedule,
            tz,
            exclusions,
            catchup,
            metadata,
            key,
        })
    }

    /// The zone of the schedule, of exclusion dates and of `eventTime`.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The schedule fields as one string: a record made for another key is started afresh.
    pub fn key(&self) -> &str {
        &self.key
    }

    fn excluded(&self, t: Timestamp) -> Option<Date> {
        let day = t.to_zoned(self.tz.clone()).date();
        self.exclusions.contains(&day).then_some(day)
    }

    /// Start of civil `day` in the zone.
    fn start_of(&self, day: Date) -> Option<Timestamp> {
        day.to_zoned(self.tz.clone()).ok().map(|z| z.timestamp())
    }

    /// The first slot strictly after `after` on a day that is not excluded.
    fn next_slot(&self, after: Timestamp, anchor: Timestamp) -> Option<Timestamp> {
        let mut from = after;
        // Each excluded hit moves `from` past a distinct excluded day.
        for _ in 0..=self.exclusions.len() {
            let t = self.schedule.next_after(from, Some(anchor))?;
            let Some(day) = self.excluded(t) else {
                return Some(t);
            };
            let next_day = self.start_of(day.tomorrow().ok()?)?;
            from = next_day.checked_sub(SignedDuration::from_nanos(1)).ok()?;
        }
        None
    }

    /// The last slot in `(floor, upto]` on a day that is not excluded.
    fn latest_slot(
        &self,
        upto: Timestamp,
        floor: Timestamp,
        anchor: Timestamp,
    ) -> Option<Timestamp> {
        let mut upto = upto;
        for _ in 0..=self.exclusions.len() {
            let t = self
                .schedule
                .latest_at_or_before(upto, Some(floor), Some(anchor))?;
            let Some(day) = self.excluded(t) else {
                return Some(t);
            };
            upto = self
                .start_of(day)?
                .checked_sub(SignedDuration::from_nanos(1))
                .ok()?;
        }
        None
    }
}

/// `persistence.catchup` from the entry's unmodelled fields: `(field, problem)` on error.
fn parse_catchup(extra: &crate::events::types::Extra) -> Result<Option<Catchup>, (String, String)> {
    let Some(catchup) = extra.get("persistence").and_then(|p| p.get("catchup")) else {
        return Ok(None);
    };
    let enabled = match catchup.get("enabled") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err((
                "persistence.catchup.enabled".to_owned(),
                format!("expected true or false, found {other}"),
            ));
        }
    };
    if !enabled {
        return Ok(None);
    }
    let max_duration = match catchup.get("maxDuration") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => {
            let d = parse_go_duration(s.trim()).map_err(|e| {
                (
                    "persistence.catchup.maxDuration".to_owned(),
                    format!("{s:?}: {e} (expected a Go duration such as 5m)"),
                )
            })?;
            if d < SignedDuration::ZERO {
                return Err((
                    "persistence.catchup.maxDuration".to_owned(),
                    format!("{s:?}: expected a duration that is not negative"),
                ));
            }
            Some(d)
        }
        Some(other) => {
            return Err((
                "persistence.catchup.maxDuration".to_owned(),
                format!("expected a duration string, found {other}"),
            ));
        }
    };
    Ok(Some(Catchup { max_duration }))
}

/// The problem text of a schedule error from `workflow::cron`, without its CronWorkflow framing.
fn cron_problem(text: &str, e: CronError) -> String {
    match e {
        CronError::Schedule { problem, .. } => format!("{text:?}: {problem}"),
        CronError::TimeZone { zone, .. } => format!(
            "{text:?}: unknown time zone {zone:?} in the prefix (expected an IANA name such as Europe/Paris)"
        ),
        other => format!("{text:?}: {other}"),
    }
}

/// The slot to fire next for `state` at `now`: at or before `now` means "fire it now", after
/// `now` means "sleep until then"; `None` when the schedule never fires again. See the module
/// docs for the catch-up rule.
pub fn next_fire(spec: &CalendarSpec, state: &CalendarState, now: Timestamp) -> Option<Timestamp> {
    let after = state
        .last_fired
        .map_or(state.anchor, |l| l.max(state.anchor));
    match &spec.catchup {
        None => {
            let first = spec.next_slot(after, state.anchor)?;
            if first > now {
                return Some(first);
            }
            // Missed or due: the latest slot due, once.
            spec.latest_slot(now, after, state.anchor).or(Some(first))
        }
        Some(Catchup { max_duration }) => {
            let floor = max_duration
                .and_then(|m| now.checked_sub(m).ok())
                .map_or(after, |f| f.max(after));
            spec.next_slot(floor, state.anchor)
        }
    }
}

/// Go's `time.Time.String()` rendering of `t` in `tz` (what Argo puts in `eventTime`), without
/// the monotonic clock suffix.
pub fn go_time_string(t: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned(tz.clone());
    let frac = if t.subsec_nanosecond() == 0 {
        String::new()
    } else {
        let digits = format!("{:09}", t.subsec_nanosecond());
        format!(".{}", digits.trim_end_matches('0'))
    };
    format!(
        "{}{frac} {}",
        z.strftime("%Y-%m-%d %H:%M:%S"),
        z.strftime("%z %Z")
    )
}

/// The event fired for `slot` of calendar `event_name` of EventSource `namespace/event_source`.
pub fn calendar_event(
    namespace: &str,
    event_source: &str,
    event_name: &str,
    spec: &CalendarSpec,
    slot: Timestamp,
) -> Event {
    let mut data = json!({"eventTime": go_time_string(slot, &spec.tz)});
    if !spec.metadata.is_empty() {
        data["metadata"] = json!(spec.metadata);
    }
    Event {
        context: EventContext {
            id: event_id(namespace, event_source, event_name, &slot.to_string()),
            source: event_source.to_owned(),
            specversion: SPEC_VERSION.to_owned(),
            type_: "calendar".to_owned(),
            subject: event_name.to_owned(),
            datacontenttype: JSON_CONTENT_TYPE.to_owned(),
            time: slot,
        },
        data,
    }
}

fn record_key(namespace: &str, event_source: &str, event_name: &str) -> String {
    format!("{namespace}/{event_source}/{event_name}")
}

fn load(store: &Store, key: &str) -> Result<Option<CalendarState>, StoreError> {
    store.read(|txn| match TABLE.get(txn, key) {
        Err(StoreError::Redb(e)) if matches!(*e, redb::Error::TableDoesNotExist(_)) => Ok(None),
        other => other,
    })
}

async fn save(store: &Store, key: &str, state: &CalendarState) -> Result<(), StoreError> {
    let key = key.to_owned();
    let state = state.clone();
    store
        .write(move |txn| TABLE.insert(txn, &key, &state))
        .await
}

/// Removes the calendar records of EventSource `namespace/event_source` (it was deleted), except
/// those of the events named in `keep` (still in its spec). Returns how many were removed.
pub async fn forget(
    store: &Store,
    namespace: &str,
    event_source: &str,
    keep: &[String],
) -> Result<usize, StoreError> {
    let prefix = format!("{namespace}/{event_source}/");
    let keep: Vec<String> = keep
        .iter()
        .map(|e| record_key(namespace, event_source, e))
        .collect();
    store
        .write(move |txn| {
            TABLE.retain_in(txn, |k, _| {
                !k.starts_with(&prefix) || keep.iter().any(|x| x == k)
            })
        })
        .await
}

/// Runs calendar `event_name` of the context's EventSource until its schedule ends (`Ok`) or
/// its spec is invalid (`Err`, before anything fires). Publishing and record failures are
/// retried with back-off, never fatal; the task is stopped by dropping (aborting) it.
pub async fn run(
    ctx: SourceContext,
    event_name: String,
    spec: CalendarEventSource,
) -> Result<(), CalendarError> {
    let object = format!("{}/{}", ctx.namespace, ctx.event_source);
    let parsed = CalendarSpec::parse(&object, &event_name, &spec, &TimeZone::system())?;
    let (ctx_ref, name) = (&ctx, event_name.as_str());
    run_loop(
        &ctx.store,
        &ctx.namespace,
        &ctx.event_source,
        name,
        &parsed,
        Timestamp::now,
        move |event| emit(ctx_ref, name, event),
    )
    .await
}

/// The loop of [`run`], with the clock and the publisher as inputs (tests drive it with tokio's
/// paused clock). `publish` must return only once the event is durable.
async fn run_loop<F, Fut>(
    store: &Store,
    namespace: &str,
    event_source: &str,
    event_name: &str,
    spec: &CalendarSpec,
    clock: impl Fn() -> Timestamp,
    mut publish: F,
) -> Result<(), CalendarError>
where
    F: FnMut(Event) -> Fut,
    Fut: Future<Output = Result<u64, SourceError>>,
{
    let key = record_key(namespace, event_source, event_name);
    let store_err = |source| CalendarError::Store {
        object: format!("{namespace}/{event_source}"),
        event: event_name.to_owned(),
        source,
    };
    let mut state = match load(store, &key).map_err(store_err)? {
        Some(s) if s.spec_key == spec.key => s,
        found => {
            let fresh = CalendarState::new(spec, clock());
            if found.is_some() {
                tracing::info!(
                    namespace,
                    event_source,
                    event = event_name,
                    "calendar schedule changed: missed slots of the old schedule are not fired"
                );
            }
            persist(store, &key, &fresh, namespace, event_source, event_name)
                .await
                .map_err(store_err)?;
            fresh
        }
    };
    let mut backoff = RETRY_MIN;
    loop {
        let now = clock();
        let Some(slot) = next_fire(spec, &state, now) else {
            tracing::info!(
                namespace,
                event_source,
                event = event_name,
                "calendar schedule has no further slot"
            );
            return Ok(());
        };
        if slot > now {
            let wait = Duration::try_from(slot.duration_since(now)).unwrap_or(MAX_SLEEP);
            tokio::time::sleep(wait.min(MAX_SLEEP)).await;
            continue;
        }
        let event = calendar_event(namespace, event_source, event_name, spec, slot);
        if let Err(error) = publish(event).await {
            tracing::warn!(namespace, event_source, event = event_name, slot = %slot, error = %error, retry_in_ms = backoff.as_millis() as u64, "calendar event not published; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_MAX);
            continue;
        }
        backoff = RETRY_MIN;
        state.last_fired = Some(slot);
        persist(store, &key, &state, namespace, event_source, event_name)
            .await
            .map_err(store_err)?;
        tracing::debug!(
            namespace,
            event_source,
            event = event_name,
            slot = %slot,
            "calendar event fired"
        );
    }
}

/// Writes the record, retrying with back-off until it is durable (the loop must not move past
/// a slot it has not recorded). Fails only when the store has stopped (cairn is shutting down).
async fn persist(
    store: &Store,
    key: &str,
    state: &CalendarState,
    namespace: &str,
    event_source: &str,
    event_name: &str,
) -> Result<(), StoreError> {
    let mut backoff = RETRY_MIN;
    loop {
        match save(store, key, state).await {
            Ok(()) => return Ok(()),
            Err(StoreError::WriterStopped) => return Err(StoreError::WriterStopped),
            Err(error) => {
                metrics::counter!("cairn_events_calendar_state_errors_total", "reason" => error.metric_label()).increment(1);
                tracing::warn!(namespace, event_source, event = event_name, error = %error, retry_in_ms = backoff.as_millis() as u64, "calendar record not written; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests;
