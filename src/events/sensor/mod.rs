//! Sensors: dependencies in, triggers out, with Argo Events' semantics and effectively-once
//! side effects.
//!
//! This module is the pure core; [`runner`] runs one Sensor against the bus and [`controller`]
//! runs every Sensor the cluster has.
//! - [`compile`] checks a Sensor's spec once (dependencies, filters, conditions, resets,
//!   trigger kinds, retry strategies, rate limits) and keeps what runs; every problem is a
//!   message naming the sensor and field, for the status. A trigger with a problem does not run;
//!   the others do.
//! - [`SensorState`] is what a sensor keeps between deliveries, persisted in redb (table
//!   `events_sensor_state`, key `<namespace>/<name>`) before anything is acknowledged: per
//!   trigger the event collected per dependency (whole events: parameters read them when the
//!   trigger fires), per dependency the ids of the last [`SEEN_PER_DEPENDENCY`] events
//!   processed (a redelivery is recognised and not counted twice), and the outbox of firings
//!   decided but not yet recorded in the history.
//! - [`step`] takes one delivery: a duplicate is only acknowledged; otherwise the dependency's
//!   filters decide ([`crate::events::filter::filter_event`]); a mismatch becomes an
//!   [`Unmatched`] history record with the reason; a match is offered to every trigger whose
//!   condition names the dependency ([`crate::events::conditions::Pending`], resets applied),
//!   and each trigger whose condition now holds becomes a [`Fire`] in the outbox.
//!
//! Crash safety (the order the runner keeps): state (with the outbox) and unmatched records are
//! written in one transaction, then the outbox fires (each firing skipped when the history
//! already has its outcome, [`crate::events::history::History::outcome`]), outcomes are
//! recorded, the outbox is trimmed, and only then are the deliveries acknowledged. A crash at
//! any point either redelivers events already in `seen` (acknowledged without effect) or
//! replays an outbox firing whose object name is deterministic or whose outcome is recorded.
//!
//! Invariants: pure (time is an input); no input panics; `seen` and the outbox are bounded.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::bus::{Delivery, Topic, consumer_name};
use super::conditions::{self, Condition, Pending, Resets};
use super::event::Event;
use super::filter::{self, Verdict};
use super::history::Unmatched;
use super::trigger::rate::RateLimit;
use super::trigger::retry::Backoff;
use super::trigger::{self, Kind};
use super::types::{EventDependency, Sensor, Trigger};

pub mod controller;
pub mod runner;

pub use controller::run;

/// Event ids remembered per dependency to recognise redeliveries.
pub const SEEN_PER_DEPENDENCY: usize = 4096;
/// Firings kept in the outbox at most (older ones are dropped with a warning by the runner;
/// reaching it needs thousands of firings failing to be recorded).
pub const MAX_OUTBOX: usize = 10_000;

/// Errors of running sensors.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    /// The database failed.
    #[error("sensor {sensor}: {source}")]
    Store {
        /// Sensor `namespace/name`.
        sensor: String,
        /// The store's error.
        source: crate::store::StoreError,
    },
    /// The bus failed.
    #[error("sensor {sensor}: {source}")]
    Bus {
        /// Sensor `namespace/name`.
        sensor: String,
        /// The bus's error.
        source: super::bus::BusError,
    },
    /// The history failed.
    #[error("sensor {sensor}: {source}")]
    History {
        /// Sensor `namespace/name`.
        sensor: String,
        /// The history's error.
        source: super::history::HistoryError,
    },
}

impl SensorError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            SensorError::Store { .. } => "store",
            SensorError::Bus { .. } => "bus",
            SensorError::History { .. } => "history",
        }
    }
}

/// A trigger that runs.
#[derive(Clone, Debug)]
pub struct CompiledTrigger {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// The trigger as written.
    pub spec: Trigger,
    /// When it fires.
    pub condition: Condition,
    /// When collected events are forgotten.
    pub resets: Resets,
    /// Attempts and waits.
    pub backoff: Backoff,
    /// Pacing, when set.
    pub rate: Option<RateLimit>,
}

/// A dependency and where it reads.
#[derive(Clone, Debug)]
pub struct CompiledDependency {
    /// The dependency as written.
    pub spec: EventDependency,
    /// The bus topic (the EventSource lives in the sensor's namespace, as in Argo Events).
    pub topic: Topic,
    /// Its durable consumer's name.
    pub consumer: String,
}

/// A Sensor checked and ready to run.
#[derive(Clone, Debug)]
pub struct CompiledSensor {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Dependencies by name (those with an event source and event name).
    pub dependencies: BTreeMap<String, CompiledDependency>,
    /// Triggers that run.
    pub triggers: Vec<CompiledTrigger>,
    /// Problems with dependencies (`DependenciesProvided=False`).
    pub dependency_problems: Vec<String>,
    /// Problems with triggers, including kinds cairn does not run (`TriggersProvided=False`).
    pub trigger_problems: Vec<String>,
}

impl CompiledSensor {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Checks a Sensor and keeps what can run (see the module docs).
pub fn compile(sensor: &Sensor) -> CompiledSensor {
    let namespace = sensor.metadata.namespace.clone().unwrap_or_default();
    let name = sensor.metadata.name.clone().unwrap_or_default();
    let key = format!("{namespace}/{name}");
    let deps_spec = sensor.spec.dependencies.clone().unwrap_or_default();
    let mut dependency_problems = Vec::new();
    let mut dependencies = BTreeMap::new();
    if deps_spec.is_empty() {
        dependency_problems.push(format!(
            "sensor {key}: spec.dependencies: at least one dependency is required"
        ));
    }
    for (i, d) in deps_spec.iter().enumerate() {
        let field = format!("spec.dependencies[{i}]");
        if d.name.is_empty() {
            dependency_problems.push(format!("sensor {key}: {field}.name: a name is required"));
            continue;
        }
        if dependencies.contains_key(&d.name) {
            dependency_problems.push(format!(
                "sensor {key}: {field}.name: dependency {:?} is defined twice",
                d.name
            ));
            continue;
        }
        let source = d.event_source_name.clone().unwrap_or_default();
        let event = d.event_name.clone().unwrap_or_default();
        if source.is_empty() || event.is_empty() {
            dependency_problems.push(format!(
                "sensor {key}: {field}: eventSourceName and eventName are required"
            ));
            continue;
        }
        dependency_problems.extend(filter::validate(&key, d).into_iter().map(|e| e.to_string()));
        if d.transform.is_some() {
            dependency_problems.push(format!(
                "sensor {key}: {field}.transform: not supported by cairn (events reach \
                 triggers untransformed)"
            ));
        }
        dependencies.insert(
            d.name.clone(),
            CompiledDependency {
                spec: d.clone(),
                topic: Topic::new(&namespace, &source, &event),
                consumer: consumer_name(&namespace, &name, &d.name),
            },
        );
    }
    let mut triggers: Vec<CompiledTrigger> = Vec::new();
    let mut trigger_problems = Vec::new();
    let mut names = BTreeSet::new();
    let triggers_spec = sensor.spec.triggers.clone().unwrap_or_default();
    if triggers_spec.is_empty() {
        trigger_problems.push(format!(
            "sensor {key}: spec.triggers: at least one trigger is required"
        ));
    }
    for (i, t) in triggers_spec.iter().enumerate() {
        let field = format!("spec.triggers[{i}]");
        let Some(template) = &t.template else {
            trigger_problems.push(format!("sensor {key}: {field}.template: required"));
            continue;
        };
        if template.name.is_empty() {
            trigger_problems.push(format!(
                "sensor {key}: {field}.template.name: a name is required"
            ));
            continue;
        }
        if !names.insert(template.name.clone()) {
            trigger_problems.push(format!(
                "sensor {key}: {field}.template.name: trigger {:?} is defined twice",
                template.name
            ));
            continue;
        }
        let compiled = (|| -> Result<CompiledTrigger, String> {
            let kind = trigger::check(template)?;
            let condition = conditions::parse_conditions(
                &key,
                &template.name,
                template.conditions.as_deref(),
                &deps_spec,
            )
            .map_err(|e| e.to_string())?;
            let resets = conditions::parse_resets(
                &key,
                &template.name,
                template.conditions_reset.as_deref().unwrap_or_default(),
            )
            .map_err(|e| e.to_string())?;
            let backoff = Backoff::parse(t.retry_strategy.as_ref())
                .map_err(|e| format!("trigger {}: {e}", template.name))?;
            let rate = RateLimit::parse(t.rate_limit.as_ref())
                .map_err(|e| format!("trigger {}: {e}", template.name))?;
            Ok(CompiledTrigger {
                name: template.name.clone(),
                kind,
                spec: t.clone(),
                condition,
                resets,
                backoff,
                rate,
            })
        })();
        match compiled {
            Ok(c) => triggers.push(c),
            Err(e) if e.starts_with("sensor ") => trigger_problems.push(e),
            Err(e) => trigger_problems.push(format!("sensor {key}: {field}: {e}")),
        }
    }
    CompiledSensor {
        namespace,
        name,
        dependencies,
        triggers,
        dependency_problems,
        trigger_problems,
    }
}

/// An event collected for a dependency.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Held {
    /// The event.
    pub event: Event,
    /// When it was collected.
    pub at: Timestamp,
}

/// A trigger firing decided but not yet recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fire {
    /// Trigger name.
    pub trigger: String,
    /// The events it fires with, by dependency.
    pub events: BTreeMap<String, Event>,
}

impl Fire {
    /// Event ids by dependency (the effectively-once key).
    pub fn event_ids(&self) -> BTreeMap<String, String> {
        self.events
            .iter()
            .map(|(d, e)| (d.clone(), e.context.id.clone()))
            .collect()
    }
}

/// What a sensor keeps between deliveries (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SensorState {
    /// Trigger → dependency → collected event.
    #[serde(default)]
    pub pending: BTreeMap<String, BTreeMap<String, Held>>,
    /// Dependency → ids of the events processed last (oldest first).
    #[serde(default)]
    pub seen: BTreeMap<String, VecDeque<String>>,
    /// Firings decided, not yet recorded.
    #[serde(default)]
    pub outbox: Vec<Fire>,
}

impl SensorState {
    /// Drops what belongs to dependencies and triggers the sensor no longer has (its spec
    /// changed).
    pub fn retain_known(&mut self, sensor: &CompiledSensor) {
        let triggers: BTreeSet<&str> = sensor.triggers.iter().map(|t| t.name.as_str()).collect();
        self.pending.retain(|t, _| triggers.contains(t.as_str()));
        for held in self.pending.values_mut() {
            held.retain(|d, _| sensor.dependencies.contains_key(d));
        }
        self.seen.retain(|d, _| sensor.dependencies.contains_key(d));
        self.outbox
            .retain(|f| triggers.contains(f.trigger.as_str()));
    }
}

/// What one delivery did.
#[derive(Clone, Debug, PartialEq)]
pub struct StepOutput {
    /// Firings this delivery completed (also appended to the state's outbox).
    pub fires: Vec<Fire>,
    /// The history record when the event was not used.
    pub unmatched: Option<Unmatched>,
    /// The delivery was already processed (a redelivery): nothing else happened.
    pub duplicate: bool,
    /// The sequence to acknowledge once the state is durable.
    pub ack: u64,
}

/// Processes one delivery of `dependency` at `now` (see the module docs).
pub fn step(
    sensor: &CompiledSensor,
    state: &mut SensorState,
    dependency: &str,
    delivery: &Delivery,
    now: Timestamp,
) -> StepOutput {
    let event = &delivery.event;
    let id = event.context.id.clone();
    let mut out = StepOutput {
        fires: Vec::new(),
        unmatched: None,
        duplicate: false,
        ack: delivery.seq,
    };
    let seen = state.seen.entry(dependency.to_owned()).or_default();
    if seen.contains(&id) {
        out.duplicate = true;
        return out;
    }
    seen.push_back(id.clone());
    while seen.len() > SEEN_PER_DEPENDENCY {
        seen.pop_front();
    }
    let unmatched = |reason: String| Unmatched {
        dependency: dependency.to_owned(),
        event_id: id.clone(),
        at: now,
        reason,
    };
    let Some(dep) = sensor.dependencies.get(dependency) else {
        out.unmatched = Some(unmatched(format!(
            "the sensor has no dependency {dependency:?} any more"
        )));
        return out;
    };
    if let Verdict::NoMatch(reason) = filter::filter_event(&dep.spec, event) {
        out.unmatched = Some(unmatched(reason));
        return out;
    }
    let mut used = false;
    for t in &sensor.triggers {
        if !t.condition.dependencies().contains(dependency) {
            continue;
        }
        used = true;
        let held = state.pending.entry(t.name.clone()).or_default();
        // Rebuild the trigger's `Pending` from what is held (collection order), then offer.
        let mut order: Vec<(&String, &Held)> = held.iter().collect();
        order.sort_by_key(|(_, h)| h.at);
        let mut pending = Pending::default();
        let mut fired = None;
        for (d, h) in order {
            if let Some(f) = pending.offer(&t.condition, &t.resets, d, &h.event.context.id, h.at) {
                // Only when the spec changed to a weaker condition: fire with what was held.
                fired = Some(f);
            }
        }
        let mut candidates = std::mem::take(held);
        candidates.insert(
            dependency.to_owned(),
            Held {
                event: event.clone(),
                at: now,
            },
        );
        if fired.is_none() {
            fired = pending.offer(&t.condition, &t.resets, dependency, &id, now);
        } else {
            pending.expire(&t.resets, now);
        }
        match fired {
            Some(ids) => {
                let events = ids
                    .keys()
                    .filter_map(|d| candidates.get(d).map(|h| (d.clone(), h.event.clone())))
                    .collect();
                let fire = Fire {
                    trigger: t.name.clone(),
                    events,
                };
                state.outbox.push(fire.clone());
                out.fires.push(fire);
                // What the condition did not use stays collected.
                let left: BTreeMap<String, Held> = pending
                    .events()
                    .keys()
                    .filter_map(|d| candidates.get(d).map(|h| (d.clone(), h.clone())))
                    .collect();
                state.pending.insert(t.name.clone(), left);
            }
            None => {
                let keep: BTreeMap<String, Held> = pending
                    .events()
                    .iter()
                    .filter_map(|(d, c)| {
                        candidates
                            .get(d)
                            .filter(|h| h.event.context.id == c.event_id)
                            .map(|h| (d.clone(), h.clone()))
                    })
                    .collect();
                state.pending.insert(t.name.clone(), keep);
            }
        }
    }
    if !used {
        out.unmatched = Some(unmatched(
            "no trigger's conditions name this dependency".into(),
        ));
    }
    while state.outbox.len() > MAX_OUTBOX {
        state.outbox.remove(0);
    }
    out
}

#[cfg(test)]
mod tests;
