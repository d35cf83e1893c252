//! `rateLimit` (`unit`: `Second` | `Minute` | `Hour`, `requestsPerUnit`) as a pure pacer.
//!
//! Argo Events paces a rate-limited trigger evenly (a leaky bucket): firings are spaced at
//! least `unit / requestsPerUnit` apart, and a firing that comes early waits for its slot.
//! [`Pacer::reserve`] takes the current instant and returns how long to wait; time is an input,
//! so tests drive it without clocks.
//!
//! Invariants: pure; `requestsPerUnit` below 1 is an error (Argo treats 0 as "no limit", which
//! cairn spells by leaving `rateLimit` out); the interval is never zero.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

/// A parsed `rateLimit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// The minimum spacing between firings.
    pub interval: Duration,
}

impl RateLimit {
    /// Parses `rateLimit`; `None` when absent. Errors name the field.
    pub fn parse(v: Option<&Value>) -> Result<Option<RateLimit>, String> {
        let Some(v) = v.filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let Some(obj) = v.as_object() else {
            return Err(format!("rateLimit: expected an object, found {v}"));
        };
        let unit = match obj.get("unit").and_then(Value::as_str).unwrap_or("Second") {
            "Second" | "" => Duration::from_secs(1),
            "Minute" => Duration::from_secs(60),
            "Hour" => Duration::from_secs(3600),
            other => {
                return Err(format!(
                    "rateLimit.unit: {other:?} is not a unit (expected Second, Minute or Hour)"
                ));
            }
        };
        let per = match obj.get("requestsPerUnit") {
            None | Some(Value::Null) => 1,
            Some(n) => n.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
                format!("rateLimit.requestsPerUnit: expected an integer of at least 1, found {n}")
            })?,
        };
        let per = u32::try_from(per).unwrap_or(u32::MAX);
        let interval = (unit / per).max(Duration::from_nanos(1));
        Ok(Some(RateLimit { interval }))
    }
}

/// Spaces firings `interval` apart.
#[derive(Clone, Debug)]
pub struct Pacer {
    interval: Duration,
    next: Option<Instant>,
}

impl Pacer {
    /// A pacer for `limit`.
    pub fn new(limit: &RateLimit) -> Pacer {
        Pacer {
            interval: limit.interval,
            next: None,
        }
    }

    /// Reserves the next slot at or after `now`; returns how long to wait for it.
    pub fn reserve(&mut self, now: Instant) -> Duration {
        let slot = match self.next {
            Some(n) if n > now => n,
            _ => now,
        };
        self.next = Some(slot + self.interval);
        slot - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_units_and_rejects_nonsense() {
        let l = RateLimit::parse(Some(&json!({"unit": "Minute", "requestsPerUnit": 4})))
            .expect("ok")
            .expect("some");
        assert_eq!(l.interval, Duration::from_secs(15));
        assert_eq!(RateLimit::parse(None).expect("none"), None);
        assert!(RateLimit::parse(Some(&json!({"unit": "Day"}))).is_err());
        assert!(RateLimit::parse(Some(&json!({"requestsPerUnit": 0}))).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_spaces_firings_evenly() {
        let limit = RateLimit {
            interval: Duration::from_millis(500),
        };
        let mut p = Pacer::new(&limit);
        let t0 = Instant::now();
        assert_eq!(p.reserve(t0), Duration::ZERO);
        assert_eq!(p.reserve(t0), Duration::from_millis(500));
        assert_eq!(p.reserve(t0), Duration::from_millis(1000));
        // After a quiet period the next firing goes at once.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(p.reserve(later), Duration::ZERO);
        assert_eq!(
            p.reserve(later + Duration::from_millis(100)),
            Duration::from_millis(400)
        );
    }
}
