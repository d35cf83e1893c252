//! Trigger conditions: which dependencies must have delivered an event before a trigger fires,
//! and when collected events are forgotten (`conditionsReset`).
//!
//! `conditions` is a boolean expression over dependency names with `&&`, `||` and parentheses
//! (`&&` binds tighter, as in govaluate); names may contain letters, digits, `_`, `-` and `.`
//! (`dep-a && (dep-b || dep.c)`). Without `conditions`, every dependency of the sensor is
//! required (an `&&` of all). A name that is not a dependency of the sensor is an error at
//! parse time, naming the sensor, the trigger and the field.
//!
//! [`Pending`] is a trigger's collected state: the latest event per dependency (a newer event
//! replaces an older one, as in Argo). When the condition holds, the trigger fires with the
//! events of the dependencies the condition names and the state is cleared.
//! `conditionsReset[].byTime` (`cron` + IANA `timezone`, UTC by default) forgets every event
//! collected before a scheduled reset time: an event collected at `t` is still pending at `now`
//! only when no reset time falls in `(t, now]`. Cron syntax and zones are those of CronWorkflows
//! ([`crate::workflow::cron`]).
//!
//! Invariants: pure; time is an input; parsing is bounded (nesting depth capped).

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::types::{ConditionsResetCriteria, EventDependency};
use crate::workflow::cron::{CronError, Schedule, parse_schedule};

/// Caps parenthesis nesting so hostile input cannot overflow the stack.
const MAX_DEPTH: usize = 64;

/// A trigger's conditions or reset schedule that cannot work as written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConditionsError {
    /// `conditions` does not parse.
    #[error("sensor {sensor}: trigger {trigger}: {field}: {message} (in {text:?})")]
    Syntax {
        /// Sensor `namespace/name`.
        sensor: String,
        /// Trigger name.
        trigger: String,
        /// Field path.
        field: String,
        /// The expression.
        text: String,
        /// What was expected, with the column.
        message: String,
    },
    /// `conditions` names a dependency the sensor does not have.
    #[error(
        "sensor {sensor}: trigger {trigger}: {field}: unknown dependency {name:?} (the sensor has: {known})"
    )]
    UnknownDependency {
        /// Sensor `namespace/name`.
        sensor: String,
        /// Trigger name.
        trigger: String,
        /// Field path.
        field: String,
        /// The unknown name.
        name: String,
        /// The sensor's dependency names, comma separated.
        known: String,
    },
    /// A `conditionsReset` entry is invalid.
    #[error("sensor {sensor}: trigger {trigger}: {field}: {message}")]
    Reset {
        /// Sensor `namespace/name`.
        sensor: String,
        /// Trigger name.
        trigger: String,
        /// Field path.
        field: String,
        /// What was expected.
        message: String,
    },
}

impl ConditionsError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ConditionsError::Syntax { .. } => "conditions_syntax",
            ConditionsError::UnknownDependency { .. } => "conditions_unknown_dependency",
            ConditionsError::Reset { .. } => "conditions_reset",
        }
    }
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// This dependency has an event.
    Dep(String),
    /// Both hold.
    And(Box<Condition>, Box<Condition>),
    /// Either holds.
    Or(Box<Condition>, Box<Condition>),
}

impl Condition {
    /// Whether the condition holds when exactly the dependencies in `satisfied` have events.
    pub fn eval(&self, satisfied: &dyn Fn(&str) -> bool) -> bool {
        match self {
            Condition::Dep(d) => satisfied(d),
            Condition::And(a, b) => a.eval(satisfied) && b.eval(satisfied),
            Condition::Or(a, b) => a.eval(satisfied) || b.eval(satisfied),
        }
    }

    /// Every dependency the condition names.
    pub fn dependencies(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.collect(&mut out);
        out
    }

    fn collect(&self, out: &mut BTreeSet<String>) {
        match self {
            Condition::Dep(d) => {
                out.insert(d.clone());
            }
            Condition::And(a, b) | Condition::Or(a, b) => {
                a.collect(out);
                b.collect(out);
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    And,
    Or,
    Open,
    Close,
}

fn lex(text: &str) -> Result<Vec<(usize, Tok)>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((col, Tok::Open));
                i += 1;
            }
            ')' => {
                out.push((col, Tok::Close));
                i += 1;
            }
            '&' | '|' => {
                if chars.get(i + 1) != Some(&c) {
                    return Err(format!("column {col}: expected {c}{c}"));
                }
                out.push((col, if c == '&' { Tok::And } else { Tok::Or }));
                i += 2;
            }
            c if c.is_alphanumeric() || c == '_' || c == '-' || c == '.' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '-' | '.'))
                {
                    i += 1;
                }
                out.push((col, Tok::Name(chars[start..i].iter().collect())));
            }
            other => {
                return Err(format!(
                    "column {col}: unexpected {other:?} (only dependency names, &&, || and parentheses)"
                ));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    at: usize,
    end_col: usize,
}

impl Parser {
    fn col(&self) -> usize {
        self.toks.get(self.at).map_or(self.end_col, |(c, _)| *c)
    }

    fn or(&mut self, depth: usize) -> Result<Condition, String> {
        let mut left = self.and(depth)?;
        while matches!(self.toks.get(self.at), Some((_, Tok::Or))) {
            self.at += 1;
            let right = self.and(depth)?;
            left = Condition::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Condition, String> {
        let mut left = self.atom(depth)?;
        while matches!(self.toks.get(self.at), Some((_, Tok::And))) {
            self.at += 1;
            let right = self.atom(depth)?;
            left = Condition::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn atom(&mut self, depth: usize) -> Result<Condition, String> {
        if depth > MAX_DEPTH {
            return Err(format!("nesting deeper than {MAX_DEPTH}"));
        }
        let col = self.col();
        match self.toks.get(self.at).cloned() {
            Some((_, Tok::Name(n))) => {
                self.at += 1;
                Ok(Condition::Dep(n))
            }
            Some((_, Tok::Open)) => {
                self.at += 1;
                let inner = self.or(depth + 1)?;
                match self.toks.get(self.at) {
                    Some((_, Tok::Close)) => {
                        self.at += 1;
                        Ok(inner)
                    }
                    _ => Err(format!("column {}: expected ')'", self.col())),
                }
            }
            Some((_, t)) => Err(format!(
                "column {col}: expected a dependency name or '(', found {}",
                describe(&t)
            )),
            None => Err(format!(
                "column {col}: expected a dependency name, found the end"
            )),
        }
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Name(n) => format!("{n:?}"),
        Tok::And => "'&&'".into(),
        Tok::Or => "'||'".into(),
        Tok::Open => "'('".into(),
        Tok::Close => "')'".into(),
    }
}

/// Parses a trigger's `conditions` against the sensor's dependencies. `None` or blank means
/// all dependencies (`&&`).
pub fn parse_conditions(
    sensor: &str,
    trigger: &str,
    text: Option<&str>,
    dependencies: &[EventDependency],
) -> Result<Condition, ConditionsError> {
    let field = "template.conditions";
    let syntax = |message: String| ConditionsError::Syntax {
        sensor: sensor.to_owned(),
        trigger: trigger.to_owned(),
        field: field.to_owned(),
        text: text.unwrap_or_default().to_owned(),
        message,
    };
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        let mut all = dependencies.iter().map(|d| Condition::Dep(d.name.clone()));
        let first = all
            .next()
            .ok_or_else(|| syntax("the sensor has no dependencies".into()))?;
        return Ok(all.fold(first, |acc, d| Condition::And(Box::new(acc), Box::new(d))));
    };
    let toks = lex(text).map_err(syntax)?;
    let mut p = Parser {
        toks,
        at: 0,
        end_col: text.chars().count() + 1,
    };
    let cond = p.or(0).map_err(syntax)?;
    if let Some((col, t)) = p.toks.get(p.at) {
        return Err(syntax(format!(
            "column {col}: expected '&&', '||' or the end, found {}",
            describe(t)
        )));
    }
    let known: BTreeSet<&str> = dependencies.iter().map(|d| d.name.as_str()).collect();
    if let Some(name) = cond
        .dependencies()
        .into_iter()
        .find(|n| !known.contains(n.as_str()))
    {
        return Err(ConditionsError::UnknownDependency {
            sensor: sensor.to_owned(),
            trigger: trigger.to_owned(),
            field: field.to_owned(),
            name,
            known: known.into_iter().collect::<Vec<_>>().join(", "),
        });
    }
    Ok(cond)
}

/// The reset schedules of a trigger.
#[derive(Debug, Clone, Default)]
pub struct Resets {
    schedules: Vec<Schedule>,
}

/// Parses `conditionsReset`; entries without `byTime` are ignored (Argo has no other kind).
pub fn parse_resets(
    sensor: &str,
    trigger: &str,
    resets: &[ConditionsResetCriteria],
) -> Result<Resets, ConditionsError> {
    let mut schedules = Vec::new();
    for (i, r) in resets.iter().enumerate() {
        let Some(by) = &r.by_time else { continue };
        let err = |field: String, message: String| ConditionsError::Reset {
            sensor: sensor.to_owned(),
            trigger: trigger.to_owned(),
            field,
            message,
        };
        let base = format!("template.conditionsReset[{i}].byTime");
        let tz = match by.timezone.as_deref().filter(|z| !z.is_empty()) {
            None => TimeZone::UTC,
            Some(z) => TimeZone::get(z).map_err(|_| {
                err(
                    format!("{base}.timezone"),
                    format!("unknown time zone {z:?} (expected an IANA name like Europe/Paris)"),
                )
            })?,
        };
        if by.cron.trim().is_empty() {
            return Err(err(
                format!("{base}.cron"),
                "a cron schedule is required".into(),
            ));
        }
        let s = parse_schedule(trigger, &format!("{base}.cron"), &by.cron, &tz).map_err(
            |e| match e {
                CronError::Schedule {
                    schedule, problem, ..
                } => err(format!("{base}.cron"), format!("{schedule:?}: {problem}")),
                CronError::TimeZone { zone, .. } => err(
                    format!("{base}.cron"),
                    format!("unknown time zone {zone:?} in the schedule prefix"),
                ),
                other => err(format!("{base}.cron"), other.to_string()),
            },
        )?;
        schedules.push(s);
    }
    Ok(Resets { schedules })
}

impl Resets {
    /// The latest reset time in `(after, now]`, if any.
    pub fn reset_between(&self, after: Timestamp, now: Timestamp) -> Option<Timestamp> {
        self.schedules
            .iter()
            .filter_map(|s| s.latest_at_or_before(now, Some(after), None))
            .filter(|t| *t > after)
            .max()
    }

    /// The next reset strictly after `now` (when the shell should wake up to drop state).
    pub fn next_after(&self, now: Timestamp) -> Option<Timestamp> {
        self.schedules
            .iter()
            .filter_map(|s| s.next_after(now, None))
            .min()
    }
}

/// One collected event of a dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collected {
    /// The event id.
    pub event_id: String,
    /// When it was collected.
    pub at: Timestamp,
}

/// A trigger's collected events (the latest per dependency).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    events: BTreeMap<String, Collected>,
}

impl Pending {
    /// Drops events collected before a reset time that has passed by `now`.
    pub fn expire(&mut self, resets: &Resets, now: Timestamp) {
        self.events
            .retain(|_, c| resets.reset_between(c.at, now).is_none());
    }

    /// Records an event for `dependency` at `now` and decides: when `condition` holds, returns
    /// the events it fires with (dependency → event id, only the dependencies the condition
    /// names) and clears the state; otherwise keeps collecting.
    pub fn offer(
        &mut self,
        condition: &Condition,
        resets: &Resets,
        dependency: &str,
        event_id: &str,
        now: Timestamp,
    ) -> Option<BTreeMap<String, String>> {
        self.expire(resets, now);
        if !condition.dependencies().contains(dependency) {
            return None;
        }
        self.events.insert(
            dependency.to_owned(),
            Collected {
                event_id: event_id.to_owned(),
                at: now,
            },
        );
        if !condition.eval(&|d| self.events.contains_key(d)) {
            return None;
        }
        let fired = std::mem::take(&mut self.events)
            .into_iter()
            .map(|(d, c)| (d, c.event_id))
            .collect();
        Some(fired)
    }

    /// The collected events, by dependency.
    pub fn events(&self) -> &BTreeMap<String, Collected> {
        &self.events
    }
}

#[cfg(test)]
mod tests;
