//! CronWorkflow scheduling as pure functions: which scheduled time is due, what to do with it,
//! which finished runs to delete, and the child Workflow's name.
//!
//! Owns: parsing `spec.schedule` / `spec.schedules` (Argo's robfig/cron "standard" syntax) with
//! `timezone`, `startingDeadlineSeconds`, `concurrencyPolicy`, `suspend` and the history limits
//! into a checked [`CronSpec`]; [`due`], the scheduling decision; [`history_to_delete`];
//! [`child_workflow_name`].
//!
//! How a controller uses it: build the [`CronSpec`] with [`CronSpec::from_cron_workflow`] (the
//! default zone is the controller's, `jiff::tz::TimeZone::system()`, as Argo defaults to the
//! machine's zone). On every reconcile call [`due`] with the last scheduled time *already
//! decided* (run or skipped; persisted by the controller), the current time and the number of
//! active runs. `Run`/`ReplaceThenRun` → (terminate the active runs, then) create the Workflow
//! named [`child_workflow_name`] (an AlreadyExists answer means it was created before a restart:
//! treat it as done), then persist `scheduled_time` (and set `status.lastScheduledTime`, as Argo
//! does for runs). `Skip` → persist `scheduled_time` so it is never reconsidered. `Wait` →
//! requeue at `next`. Because the decision depends only on the persisted time and `now`, a
//! restart neither skips nor doubles a run.
//!
//! Invariants and rules:
//! - **Syntax** (robfig/cron `ParseStandard`, which Argo uses): exactly 5 fields `minute hour
//!   day-of-month month day-of-week` with `*`, `?`, lists, ranges, `/step` (`a/step` means
//!   `a-max/step`), month and weekday names; weekdays 0–6 with 0 = Sunday; descriptors
//!   `@yearly @annually @monthly @weekly @daily @midnight @hourly` and `@every <go duration>`; an
//!   optional `CRON_TZ=<zone> ` or `TZ=<zone> ` prefix overrides `timezone`. The `cron` crate
//!   wants 6–7 fields with seconds and numbers weekdays 1–7 from Sunday: cairn prefixes second
//!   `0` and rewrites the weekday field to that numbering before handing it over; the crate then
//!   validates the fields and answers membership. When both day-of-month and day-of-week are
//!   restricted a day matches either (Vixie cron's and robfig's rule); when either is `*`/`?`
//!   both must match.
//! - **Time zones and DST** (robfig's rule, so cairn fires exactly when Argo does): a run happens
//!   at every instant whose wall-clock reading in the zone matches. A wall time in a
//!   spring-forward gap does not exist, so that run is skipped that day (a daily 02:30 job in
//!   America/New_York does not run on the second Sunday of March); a wall time in a fall-back
//!   fold exists twice, so it runs twice (a daily 01:30 job runs at 01:30 EDT and 01:30 EST).
//! - **`@every d`**: times are `anchor + k·d`, the anchor being the last scheduled time, or the
//!   Unix epoch before any run (robfig counts from when the entry was added, which a restart
//!   would change; the epoch keeps the times deterministic). `d` is truncated to whole seconds
//!   and at least 1 s, as robfig does.
//! - **Due time**: the most recent scheduled time `t` in `(last, now]` across all schedules;
//!   older missed times are never run (Kubernetes CronJob's and Argo's rule). `t` is *on time*
//!   when `now - t <= ON_TIME_GRACE`: it runs whatever `startingDeadlineSeconds` says, as Argo's
//!   in-process timer does. Otherwise it was missed (cairn was down): it runs only when a last
//!   scheduled time exists and `now < t + startingDeadlineSeconds` (Argo's
//!   `shouldOutstandingWorkflowsBeRun`; without the field, or with 0, missed times are skipped).
//! - **Policies**, checked after the deadline: `suspend` skips; `Forbid` skips while a run is
//!   active; `Replace` stops the active runs first; `Allow` (the default) always runs.
//! - **History**: only finished runs count; Succeeded runs beyond `successfulJobsHistoryLimit`
//!   (default 3) and Failed/Error runs beyond `failedJobsHistoryLimit` (default 1) are deleted,
//!   oldest `finishedAt` first (a negative limit means the default, as in Argo).
//!
//! - **Validation** (Argo's `ValidateCronWorkflow`): not both `schedule` and `schedules`; a name
//!   of at most 52 characters; `startingDeadlineSeconds` not negative; a known policy and zone.
//!
//! `when` and `stopStrategy` are in [`when`] (evaluated by the caller before acting on `Run`).
//! Argo's "schedule just edited: run no missed time" rule is the caller's, with
//! [`schedule_string`] (see there).

use std::str::FromStr;

use cron::TimeUnitSpec;
use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};

use super::retry::parse_go_duration;
use super::types::{CronWorkflow, CronWorkflowSpec};

/// How late a wake-up may be and still count as the scheduled run itself rather than a missed
/// one: a reconcile queued for the scheduled second can start a few seconds late (queueing,
/// leader hand-over, a busy runtime), and Kubernetes' CronJob controller likewise warns that
/// deadlines under 10 s may miss runs.
pub const ON_TIME_GRACE: SignedDuration = SignedDuration::from_secs(10);

/// How far the schedule search looks (robfig gives up after five years too): a schedule such as
/// `0 0 30 2 *` (30 February) never fires.
const SEARCH_DAYS: i32 = 5 * 366;

/// Longest CronWorkflow name (Argo's limit): `-` plus ten digits of Unix seconds must still fit
/// a 63-character Workflow name.
pub const MAX_CRON_NAME: usize = 52;

/// Default `successfulJobsHistoryLimit` (Argo's).
pub const DEFAULT_SUCCESSFUL_HISTORY: usize = 3;
/// Default `failedJobsHistoryLimit` (Argo's).
pub const DEFAULT_FAILED_HISTORY: usize = 1;

/// A problem in a CronWorkflow's scheduling fields.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CronError {
    /// A schedule does not parse.
    #[error("cronworkflow {cron}: {field} {schedule:?}: {problem}")]
    Schedule {
        /// The CronWorkflow's name.
        cron: String,
        /// `spec.schedule` or `spec.schedules[i]`.
        field: String,
        /// The schedule text.
        schedule: String,
        /// What is wrong.
        problem: String,
    },
    /// Neither `schedule` nor `schedules` is set (or the list is empty).
    #[error("cronworkflow {cron}: spec.schedules: expected at least one schedule")]
    NoSchedule {
        /// The CronWorkflow's name.
        cron: String,
    },
    /// Both `schedule` and `schedules` are set.
    #[error("cronworkflow {cron}: spec.schedule and spec.schedules: set only one of them")]
    BothSchedules {
        /// The CronWorkflow's name.
        cron: String,
    },
    /// `timezone` (or a `CRON_TZ=` prefix) is not a known IANA zone.
    #[error(
        "cronworkflow {cron}: {field}: unknown time zone {zone:?} (expected an IANA name such as America/Los_Angeles)"
    )]
    TimeZone {
        /// The CronWorkflow's name.
        cron: String,
        /// `spec.timezone` or the schedule field holding the prefix.
        field: String,
        /// The zone name.
        zone: String,
    },
    /// The name leaves no room for the `-<unix seconds>` suffix of child names (63 characters).
    #[error(
        "cronworkflow {cron}: metadata.name: must not be more than {MAX_CRON_NAME} characters long (currently {len}), so child names fit in 63"
    )]
    NameTooLong {
        /// The CronWorkflow's name.
        cron: String,
        /// Its length.
        len: usize,
    },
    /// `startingDeadlineSeconds` is negative.
    #[error(
        "cronworkflow {cron}: spec.startingDeadlineSeconds: must not be negative, found {found}"
    )]
    StartingDeadline {
        /// The CronWorkflow's name.
        cron: String,
        /// The value found.
        found: i64,
    },
    /// `concurrencyPolicy` is not Allow, Forbid or Replace.
    #[error(
        "cronworkflow {cron}: spec.concurrencyPolicy: expected Allow, Forbid or Replace, found {found:?}"
    )]
    ConcurrencyPolicy {
        /// The CronWorkflow's name.
        cron: String,
        /// The value found.
        found: String,
    },
}

/// What to do when a run is due while others are active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConcurrencyPolicy {
    /// Run alongside (default).
    Allow,
    /// Skip the new run.
    Forbid,
    /// Stop the active runs, then run.
    Replace,
}

/// One parsed schedule with its zone.
#[derive(Clone, Debug)]
pub struct Schedule {
    source: String,
    tz: TimeZone,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Fields {
        schedule: Box<cron::Schedule>,
        dom_star: bool,
        dow_star: bool,
    },
    Every(i64),
}

/// A checked CronWorkflow spec: what [`due`] and [`history_to_delete`] need.
#[derive(Clone, Debug)]
pub struct CronSpec {
    /// The schedules (their times are merged).
    pub schedules: Vec<Schedule>,
    /// `startingDeadlineSeconds`.
    pub starting_deadline_seconds: Option<i64>,
    /// `concurrencyPolicy`.
    pub concurrency_policy: ConcurrencyPolicy,
    /// `suspend`.
    pub suspend: bool,
    /// Succeeded runs kept.
    pub successful_history_limit: usize,
    /// Failed/Error runs kept.
    pub failed_history_limit: usize,
}

/// Why a due time is not run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// `spec.suspend` is true.
    Suspended,
    /// `Forbid` and runs are active.
    ConcurrencyForbid {
        /// How many.
        active: usize,
    },
    /// Missed (cairn was not running) and outside `startingDeadlineSeconds`.
    MissedDeadline,
}

/// What [`due`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CronDecision {
    /// Create the run for `scheduled_time`.
    Run {
        /// The scheduled time (names the child and fills `{{workflow.scheduledTime}}`).
        scheduled_time: Timestamp,
    },
    /// Stop the active runs (Replace), then create the run.
    ReplaceThenRun {
        /// The scheduled time.
        scheduled_time: Timestamp,
        /// How many runs are to be stopped.
        active: usize,
    },
    /// Do not run `scheduled_time`; persist it as decided.
    Skip {
        /// The scheduled time.
        scheduled_time: Timestamp,
        /// Why.
        reason: SkipReason,
    },
    /// Nothing due; wake at `next` (`None`: the schedules never fire again).
    Wait {
        /// The next scheduled time.
        next: Option<Timestamp>,
    },
}

/// The phase of a run, for the history limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunPhase {
    /// Not finished (never deleted by history limits).
    Running,
    /// Succeeded.
    Succeeded,
    /// Failed.
    Failed,
    /// Error.
    Error,
}

/// One child Workflow of the CronWorkflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSummary {
    /// The Workflow's name.
    pub name: String,
    /// Its phase.
    pub phase: RunPhase,
    /// When it finished.
    pub finished_at: Option<Timestamp>,
}

impl CronSpec {
    /// Checks a CronWorkflow's scheduling fields; `default_tz` applies when `timezone` is unset.
    pub fn from_cron_workflow(
        cw: &CronWorkflow,
        default_tz: &TimeZone,
    ) -> Result<CronSpec, CronError> {
        let cron = cw.metadata.name.clone().unwrap_or_default();
        let spec = &cw.spec;
        if cron.len() > MAX_CRON_NAME {
            let len = cron.len();
            return Err(CronError::NameTooLong { cron, len });
        }
        if let Some(found) = spec.starting_deadline_seconds.filter(|d| *d < 0) {
            return Err(CronError::StartingDeadline { cron, found });
        }
        let tz = match spec.timezone.as_deref() {
            None | Some("") => default_tz.clone(),
            Some(zone) => TimeZone::get(zone).map_err(|_| CronError::TimeZone {
                cron: cron.clone(),
                field: "spec.timezone".to_owned(),
                zone: zone.to_owned(),
            })?,
        };
        let list: Vec<(String, &str)> = match (&spec.schedules, spec.schedule.as_deref()) {
            (Some(list), Some(one)) if !list.is_empty() && !one.is_empty() => {
                return Err(CronError::BothSchedules { cron });
            }
            (Some(list), _) if !list.is_empty() => list
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("spec.schedules[{i}]"), s.as_str()))
                .collect(),
            (_, Some(one)) if !one.is_empty() => vec![("spec.schedule".to_owned(), one)],
            _ => return Err(CronError::NoSchedule { cron }),
        };
        let schedules = list
            .into_iter()
            .map(|(field, text)| parse_schedule(&cron, &field, text, &tz))
            .collect::<Result<Vec<_>, _>>()?;
        let concurrency_policy = match spec.concurrency_policy.as_deref() {
            None | Some("") | Some("Allow") => ConcurrencyPolicy::Allow,
            Some("Forbid") => ConcurrencyPolicy::Forbid,
            Some("Replace") => ConcurrencyPolicy::Replace,
            Some(other) => {
                return Err(CronError::ConcurrencyPolicy {
                    cron,
                    found: other.to_owned(),
                });
            }
        };
        let limit =
            |v: Option<i64>, default| v.and_then(|n| usize::try_from(n).ok()).unwrap_or(default);
        Ok(CronSpec {
            schedules,
            starting_deadline_seconds: spec.starting_deadline_seconds,
            concurrency_policy,
            suspend: spec.suspend.unwrap_or(false),
            successful_history_limit: limit(
                spec.successful_jobs_history_limit,
                DEFAULT_SUCCESSFUL_HISTORY,
            ),
            failed_history_limit: limit(spec.failed_jobs_history_limit, DEFAULT_FAILED_HISTORY),
        })
    }
}

/// A schedule problem before it is attributed to a CronWorkflow field (internal: callers see
/// [`CronError`]).
#[derive(Debug, PartialEq, Eq)]
enum ScheduleError {
    /// The text does not parse.
    Syntax(String),
    /// The `CRON_TZ=`/`TZ=` zone is unknown.
    Zone(String),
}

impl ScheduleError {
    fn named(self, cron: &str, field: &str, text: &str) -> CronError {
        match self {
            ScheduleError::Syntax(problem) => CronError::Schedule {
                cron: cron.to_owned(),
                field: field.to_owned(),
                schedule: text.to_owned(),
                problem,
            },
            ScheduleError::Zone(zone) => CronError::TimeZone {
                cron: cron.to_owned(),
                field: field.to_owned(),
                zone,
            },
        }
    }
}

/// Parses one schedule in Argo's syntax (see the module docs) in zone `tz`; errors name the
/// CronWorkflow `cron` and its `field` (`spec.schedules[0]`...).
pub fn parse_schedule(
    cron: &str,
    field: &str,
    text: &str,
    tz: &TimeZone,
) -> Result<Schedule, CronError> {
    parse_schedule_text(text, tz).map_err(|e| e.named(cron, field, text))
}

fn parse_schedule_text(text: &str, tz: &TimeZone) -> Result<Schedule, ScheduleError> {
    let syntax = |p: &str| ScheduleError::Syntax(p.to_owned());
    let mut rest = text.trim();
    let mut tz = tz.clone();
    for prefix in ["CRON_TZ=", "TZ="] {
        if let Some(after) = rest.strip_prefix(prefix) {
            let (zone, tail) = after
                .split_once(char::is_whitespace)
                .ok_or_else(|| syntax("a time zone prefix must be followed by a schedule"))?;
            tz = TimeZone::get(zone).map_err(|_| ScheduleError::Zone(zone.to_owned()))?;
            rest = tail.trim();
            break;
        }
    }
    let fields_text = match rest {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => {
            if let Some(d) = rest.strip_prefix("@every ") {
                let dur = parse_go_duration(d.trim())
                    .map_err(|e| ScheduleError::Syntax(format!("@every: {e}")))?;
                // robfig: at least one second, truncated to whole seconds.
                let secs = dur.as_secs().max(1);
                return Ok(Schedule {
                    source: text.to_owned(),
                    tz,
                    kind: Kind::Every(secs),
                });
            }
            if rest.starts_with('@') {
                return Err(syntax(
                    "unknown descriptor (expected @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every <duration>)",
                ));
            }
            rest
        }
    };
    let fields: Vec<&str> = fields_text.split_whitespace().collect();
    let [minute, hour, dom, month, dow] = fields[..] else {
        return Err(ScheduleError::Syntax(format!(
            "expected exactly 5 fields (minute hour day-of-month month day-of-week), found {}",
            fields.len()
        )));
    };
    for (name, f) in [
        ("minute", minute),
        ("hour", hour),
        ("day-of-month", dom),
        ("month", month),
    ] {
        check_step_positive(name, f)?;
        check_ranges(name, f)?;
    }
    let dow_list = weekdays_for_cron_crate(dow)?;
    // `?` means `*` in robfig; the cron crate accepts it only in day fields, so normalise.
    let q = |f: &str| f.replace('?', "*");
    let expression = format!(
        "0 {} {} {} {} {}",
        q(minute),
        q(hour),
        q(dom),
        q(month),
        dow_list
    );
    let schedule = cron::Schedule::from_str(&expression)
        .map_err(|e| ScheduleError::Syntax(format!("invalid field: {e}")))?;
    Ok(Schedule {
        source: text.to_owned(),
        tz,
        kind: Kind::Fields {
            schedule: Box::new(schedule),
            dom_star: is_star(dom),
            dow_star: is_star(dow),
        },
    })
}

/// robfig's "star bit": a list item starting with `*` or `?` without a step above 1.
fn is_star(field: &str) -> bool {
    field.split(',').any(|item| {
        let (range, step) = item.split_once('/').unwrap_or((item, "1"));
        (range == "*" || range == "?") && step.parse::<u32>().is_ok_and(|s| s <= 1)
    })
}

/// robfig's field grammar, which is narrower than the cron crate's: no `L`, `W` or `#`, names
/// only in the month field (weekdays are expanded separately), and no backwards ranges (the
/// cron crate would read some of those differently or accept them).
fn check_ranges(name: &str, field: &str) -> Result<(), ScheduleError> {
    let names_allowed = name == "month";
    let allowed = |c: char| {
        c.is_ascii_digit()
            || matches!(c, '*' | '?' | ',' | '-' | '/')
            || (names_allowed && c.is_ascii_alphabetic())
    };
    if let Some(bad) = field.chars().find(|c| !allowed(*c)) {
        return Err(ScheduleError::Syntax(format!(
            "{name}: unexpected character {bad:?}"
        )));
    }
    for item in field.split(',') {
        let range = item.split_once('/').map_or(item, |(r, _)| r);
        if let Some((a, b)) = range.split_once('-')
            && let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>())
            && a > b
        {
            return Err(ScheduleError::Syntax(format!(
                "{name}: range {range:?} runs backwards"
            )));
        }
    }
    Ok(())
}

fn check_step_positive(name: &str, field: &str) -> Result<(), ScheduleError> {
    for item in field.split(',') {
        if let Some((_, step)) = item.split_once('/')
            && step.parse::<u32>().map_or(true, |s| s == 0)
        {
            return Err(ScheduleError::Syntax(format!(
                "{name}: step {step:?} must be a positive integer"
            )));
        }
    }
    Ok(())
}

const WEEKDAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn weekday_number(s: &str) -> Result<u32, ScheduleError> {
    if let Some(i) = WEEKDAY_NAMES.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return u32::try_from(i).map_err(|_| ScheduleError::Syntax("weekday".to_owned()));
    }
    match s.parse::<u32>() {
        Ok(n) if n <= 6 => Ok(n),
        _ => Err(ScheduleError::Syntax(format!(
            "day-of-week: {s:?} is not 0-6 or a weekday name (sun..sat)"
        ))),
    }
}

/// Expands a robfig day-of-week field (0-6 from Sunday) into the cron crate's numbering (1-7
/// from Sunday) as an explicit list, so no range ever wraps differently in the two syntaxes.
fn weekdays_for_cron_crate(field: &str) -> Result<String, ScheduleError> {
    check_step_positive("day-of-week", field)?;
    let mut days = [false; 7];
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<usize>()
                    .map_err(|_| ScheduleError::Syntax(format!("day-of-week: bad step {s:?}")))?,
            ),
            None => (item, 1),
        };
        let (lo, hi) = match range {
            "*" | "?" => (0, 6),
            _ => match range.split_once('-') {
                Some((a, b)) => (weekday_number(a)?, weekday_number(b)?),
                // robfig: `a/step` runs from a to the maximum.
                None if item.contains('/') => (weekday_number(range)?, 6),
                None => {
                    let n = weekday_number(range)?;
                    (n, n)
                }
            },
        };
        if lo > hi {
            return Err(ScheduleError::Syntax(format!(
                "day-of-week: range {range:?} runs backwards"
            )));
        }
        for d in (lo..=hi).step_by(step) {
            if let Some(slot) = usize::try_from(d).ok().and_then(|d| days.get_mut(d)) {
                *slot = true;
            }
        }
    }
    let list: Vec<String> = (1..=7)
        .zip(days)
        .filter(|(_, on)| *on)
        .map(|(n, _)| n.to_string())
        .collect();
    Ok(list.join(","))
}

impl Schedule {
    /// The schedule as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The zone it runs in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The first scheduled time strictly after `after`; `anchor` is the origin of `@every`
    /// schedules (see the module docs).
    pub fn next_after(&self, after: Timestamp, anchor: Option<Timestamp>) -> Option<Timestamp> {
        match &self.kind {
            Kind::Every(step) => {
                let origin = anchor.map_or(0, Timestamp::as_second);
                let k = (after.as_second() - origin).div_euclid(*step) + 1;
                Timestamp::from_second(origin.checked_add(k.checked_mul(*step)?)?).ok()
            }
            Kind::Fields { .. } => {
                let mut day = after.to_zoned(self.tz.clone()).date().yesterday().ok()?;
                let mut best: Option<Timestamp> = None;
                for _ in 0..SEARCH_DAYS {
                    let found = self
                        .instants_on(day)
                        .into_iter()
                        .filter(|t| *t > after)
                        .min();
                    if let Some(t) = found {
                        // A day's instants precede the next day's, except across a fold at
                        // midnight: look one day further before answering.
                        if let Some(b) = best {
                            return Some(b.min(t));
                        }
                        best = Some(t);
                    } else if best.is_some() {
                        return best;
                    }
                    day = day.tomorrow().ok()?;
                }
                best
            }
        }
    }

    /// The last scheduled time at or before `now` and strictly after `floor` (if any).
    pub fn latest_at_or_before(
        &self,
        now: Timestamp,
        floor: Option<Timestamp>,
        anchor: Option<Timestamp>,
    ) -> Option<Timestamp> {
        let t = match &self.kind {
            Kind::Every(step) => {
                let origin = anchor.map_or(0, Timestamp::as_second);
                let k = (now.as_second() - origin).div_euclid(*step);
                Timestamp::from_second(origin.checked_add(k.checked_mul(*step)?)?).ok()?
            }
            Kind::Fields { .. } => {
                let floor_day =
                    floor.and_then(|f| f.to_zoned(self.tz.clone()).date().yesterday().ok());
                let mut day = now.to_zoned(self.tz.clone()).date().tomorrow().ok()?;
                let mut best: Option<Timestamp> = None;
                let mut found_days = 0;
                for _ in 0..SEARCH_DAYS {
                    let found = self
                        .instants_on(day)
                        .into_iter()
                        .filter(|t| *t <= now)
                        .max();
                    if let Some(t) = found {
                        best = Some(best.map_or(t, |b| b.max(t)));
                        found_days += 1;
                    }
                    // One more day after the first hit covers a fold across midnight.
                    if found_days >= 2 || (found_days == 1 && found.is_none()) {
                        break;
                    }
                    if floor_day.is_some_and(|f| day < f) {
                        break;
                    }
                    day = day.yesterday().ok()?;
                }
                best?
            }
        };
        match floor {
            Some(f) if t <= f => None,
            _ => Some(t),
        }
    }

    /// Every instant on civil `day` (in the zone) whose wall-clock time matches: none for a
    /// wall time in a gap, two for a wall time in a fold.
    fn instants_on(&self, day: Date) -> Vec<Timestamp> {
        let Kind::Fields {
            schedule,
            dom_star,
            dow_star,
        } = &self.kind
        else {
            return Vec::new();
        };
        let ord = |v: i8| u32::try_from(v).unwrap_or(0);
        if !schedule.months().includes(ord(day.month())) {
            return Vec::new();
        }
        let dom = schedule.days_of_month().includes(ord(day.day()));
        let dow = schedule
            .days_of_week()
            .includes(ord(day.weekday().to_sunday_zero_offset()) + 1);
        let day_ok = if *dom_star || *dow_star {
            dom && dow
        } else {
            dom || dow
        };
        if !day_ok {
            return Vec::new();
        }
        let mut out = Vec::new();
        for h in schedule.hours().iter() {
            for m in schedule.minutes().iter() {
                let (Ok(h), Ok(m)) = (i8::try_from(h), i8::try_from(m)) else {
                    continue;
                };
                let dt: DateTime = day.at(h, m, 0, 0);
                match self.tz.to_ambiguous_timestamp(dt).offset() {
                    AmbiguousOffset::Unambiguous { offset } => {
                        out.extend(offset.to_timestamp(dt).ok())
                    }
                    AmbiguousOffset::Gap { .. } => {}
                    AmbiguousOffset::Fold { before, after } => {
                        out.extend(before.to_timestamp(dt).ok());
                        out.extend(after.to_timestamp(dt).ok());
                    }
                }
            }
        }
        out
    }
}

impl CronSpec {
    /// The next scheduled time strictly after `after`, across all schedules.
    pub fn next_after(&self, after: Timestamp, anchor: Option<Timestamp>) -> Option<Timestamp> {
        self.schedules
            .iter()
            .filter_map(|s| s.next_after(after, anchor))
            .min()
    }
}

/// Decides what the CronWorkflow does at `now` (see the module docs for the rules).
/// `last_scheduled` is the latest scheduled time already decided (run or skipped).
pub fn due(
    spec: &CronSpec,
    last_scheduled: Option<Timestamp>,
    now: Timestamp,
    active_runs: usize,
) -> CronDecision {
    let latest = spec
        .schedules
        .iter()
        .filter_map(|s| s.latest_at_or_before(now, last_scheduled, last_scheduled))
        .max();
    let Some(scheduled_time) = latest else {
        return CronDecision::Wait {
            next: next_wake(spec, last_scheduled, now),
        };
    };
    let on_time = now.duration_since(scheduled_time) <= ON_TIME_GRACE;
    let within_deadline = last_scheduled.is_some()
        && spec.starting_deadline_seconds.is_some_and(|d| {
            scheduled_time
                .saturating_add(SignedDuration::from_secs(d))
                .is_ok_and(|end| now < end)
        });
    if !on_time && last_scheduled.is_none() {
        // Never run, and this time passed before cairn looked: nothing to catch up on.
        return CronDecision::Wait {
            next: next_wake(spec, last_scheduled, now),
        };
    }
    let skip = |reason| CronDecision::Skip {
        scheduled_time,
        reason,
    };
    if spec.suspend {
        return skip(SkipReason::Suspended);
    }
    if !on_time && !within_deadline {
        return skip(SkipReason::MissedDeadline);
    }
    match spec.concurrency_policy {
        ConcurrencyPolicy::Forbid if active_runs > 0 => skip(SkipReason::ConcurrencyForbid {
            active: active_runs,
        }),
        ConcurrencyPolicy::Replace if active_runs > 0 => CronDecision::ReplaceThenRun {
            scheduled_time,
            active: active_runs,
        },
        _ => CronDecision::Run { scheduled_time },
    }
}

/// The schedules as one string, as Argo writes it to the `workflows.argoproj.io/last-used-schedule`
/// annotation (`CRON_TZ=<zone> ` before each when `timezone` is set, `,` between). When it
/// differs from the annotation the schedule was just edited, and Argo runs no missed time: the
/// caller passes `last_scheduled = None` to [`due`] for that reconcile (on-time runs still
/// happen; a repeat is caught by the deterministic child name).
pub fn schedule_string(spec: &CronWorkflowSpec) -> String {
    let with_tz = |s: &str| match spec.timezone.as_deref() {
        Some(tz) if !tz.is_empty() => format!("CRON_TZ={tz} {s}"),
        _ => s.to_owned(),
    };
    match spec.schedule.as_deref() {
        Some(one) if !one.is_empty() => with_tz(one),
        _ => spec
            .schedules
            .iter()
            .flatten()
            .map(|s| with_tz(s))
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// The next time to wake: after `now`, and after the last decided time even when a clock behind
/// the one that decided it reads `now` (so a decided time is never offered again).
fn next_wake(spec: &CronSpec, last: Option<Timestamp>, now: Timestamp) -> Option<Timestamp> {
    spec.next_after(last.map_or(now, |l| l.max(now)), last)
}

/// The child Workflow's name for a scheduled time, as Argo names it:
/// `<cron-name>-<unix seconds>`. Deterministic, so a restart never creates a run twice.
pub fn child_workflow_name(cron_name: &str, scheduled_time: Timestamp) -> String {
    format!("{cron_name}-{}", scheduled_time.as_second())
}

/// The finished runs to delete under the history limits: per outcome, all but the `keep` most
/// recently finished (stable for equal times; runs without `finishedAt` sort last).
pub fn history_to_delete(
    runs: &[RunSummary],
    successful_limit: usize,
    failed_limit: usize,
) -> Vec<String> {
    let pick = |want: &dyn Fn(RunPhase) -> bool, keep: usize| -> Vec<String> {
        let mut group: Vec<&RunSummary> = runs.iter().filter(|r| want(r.phase)).collect();
        group.sort_by_key(|r| std::cmp::Reverse(r.finished_at));
        group
            .into_iter()
            .skip(keep)
            .map(|r| r.name.clone())
            .collect()
    };
    let mut out = pick(&|p| p == RunPhase::Succeeded, successful_limit);
    out.extend(pick(
        &|p| matches!(p, RunPhase::Failed | RunPhase::Error),
        failed_limit,
    ));
    out
}

pub mod when;

#[cfg(test)]
mod tests;
