//! The `log` trigger: writes the fired events to cairn's log (Argo Events' log trigger, for
//! trying a sensor out).
//!
//! `intervalSeconds` (optional) logs at most once per interval per trigger; a firing inside the
//! interval is recorded as skipped. Each event is logged with its context and data as tracing
//! fields; webhook header values whose names suggest credentials (authorization, cookie,
//! token, secret, signature, api-key) are replaced by `<redacted>`.
//!
//! Invariant: never fails; the interval state is in memory (a restart may log once more).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::Firing;
use crate::events::history::OutcomeResult;
use crate::events::types::TriggerTemplate;

/// Header names (lowercase substrings) whose values are never logged.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "token",
    "secret",
    "signature",
    "api-key",
    "apikey",
];

/// When each trigger last logged (for `intervalSeconds`).
#[derive(Debug, Default)]
pub struct LogState {
    last: Mutex<HashMap<String, Instant>>,
}

/// The event data with credential-like header values redacted.
pub fn redacted(data: &Value) -> Value {
    let mut data = data.clone();
    if let Some(headers) = data.get_mut("header").and_then(Value::as_object_mut) {
        for (name, value) in headers.iter_mut() {
            let lower = name.to_ascii_lowercase();
            if SECRET_HEADERS.iter().any(|s| lower.contains(s)) {
                *value = Value::String("<redacted>".into());
            }
        }
    }
    data
}

impl LogState {
    /// Logs the firing's events unless the trigger logged within its interval.
    pub fn fire(&self, firing: &Firing<'_>, template: &TriggerTemplate) -> OutcomeResult {
        let interval = template
            .log
            .as_ref()
            .and_then(|l| l.get("intervalSeconds"))
            .and_then(Value::as_u64)
            .map(Duration::from_secs)
            .unwrap_or_default();
        let key = format!(
            "{}/{}/{}",
            firing.sensor_namespace, firing.sensor, template.name
        );
        let now = Instant::now();
        if !interval.is_zero() {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(t) = last
                .get(&key)
                .filter(|t| now.duration_since(**t) < interval)
            {
                let _ = t;
                return OutcomeResult::Done {
                    detail: format!("not logged (intervalSeconds {})", interval.as_secs()),
                };
            }
            last.insert(key, now);
        }
        for (dependency, event) in firing.events {
            tracing::info!(
                sensor_namespace = firing.sensor_namespace,
                sensor = firing.sensor,
                trigger = %template.name,
                dependency = %dependency,
                event_id = %event.context.id,
                event_source = %event.context.source,
                event_name = %event.context.subject,
                data = %redacted(&event.data),
                "sensor log trigger"
            );
        }
        OutcomeResult::Done {
            detail: format!("logged {} event(s)", firing.events.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn credential_headers_are_redacted() {
        let data = json!({"header": {"Authorization": ["Bearer x"], "X-Hub-Signature-256": ["sha"],
                                     "Content-Type": ["application/json"]}, "body": {"a": 1}});
        let r = redacted(&data);
        assert_eq!(r["header"]["Authorization"], "<redacted>");
        assert_eq!(r["header"]["X-Hub-Signature-256"], "<redacted>");
        assert_eq!(r["header"]["Content-Type"][0], "application/json");
        assert_eq!(r["body"]["a"], 1);
    }
}
