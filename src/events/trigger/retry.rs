//! `retryStrategy` (Argo Events' `Backoff`) as a pure schedule: how many attempts a failing
//! trigger gets and how long to wait before each retry.
//!
//! Semantics (Kubernetes' `wait.Backoff`, which Argo Events uses): `steps` is the number of
//! attempts; the wait before retry `i` (0-based) is `duration × factor^i`, plus a random share
//! of up to `jitter ×` that wait. `duration` is an integer (nanoseconds, as Argo's
//! `Int64OrString`) or a Go duration string (`"1s"`, `"500ms"`); `factor` and `jitter` are
//! numbers or decimal strings. A trigger without `retryStrategy`, or with `steps` absent or 0,
//! makes one attempt ([`Backoff::default`]).
//!
//! Invariants: pure (the jitter's random draw is an input); attempts are capped at
//! [`MAX_STEPS`] and each wait at [`MAX_WAIT`], so no spec can make a trigger retry forever.

use std::time::Duration;

use serde_json::Value;

/// Most attempts any strategy gets.
pub const MAX_STEPS: u32 = 100;
/// Longest single wait between attempts.
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// A parsed retry strategy.
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    /// Attempts in all (at least 1).
    pub steps: u32,
    /// Wait before the first retry.
    pub duration: Duration,
    /// Multiplier of the wait per retry (0 or absent: 1).
    pub factor: f64,
    /// Random extra of up to this share of each wait (0: none).
    pub jitter: f64,
}

impl Default for Backoff {
    /// No `retryStrategy`: one attempt (duration 1s, factor 1, no jitter for a strategy that
    /// sets only `steps`).
    fn default() -> Self {
        Backoff {
            steps: 1,
            duration: Duration::from_secs(1),
            factor: 1.0,
            jitter: 0.0,
        }
    }
}

/// Parses a Go duration (`1h2m3.5s`, `300ms`, `1us`, `10ns`) or an integer of nanoseconds.
pub fn parse_go_duration(v: &Value) -> Result<Duration, String> {
    if let Some(n) = v.as_u64() {
        return Ok(Duration::from_nanos(n));
    }
    let Some(s) = v.as_str() else {
        return Err(format!(
            "expected nanoseconds or a duration like \"1s\", found {v}"
        ));
    };
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_nanos(n));
    }
    let bad = || format!("{s:?} is not a duration (expected e.g. \"1s\", \"500ms\", \"2m\")");
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_end);
        let n: f64 = num.parse().map_err(|_| bad())?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += n * scale;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

fn amount(field: &str, v: &Value) -> Result<f64, String> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n.is_finite() && n >= 0.0 => Ok(n),
        _ => Err(format!(
            "{field}: expected a non-negative number like 1.5 or \"1.5\", found {v}"
        )),
    }
}

impl Backoff {
    /// Parses a trigger's `retryStrategy`; errors name the field.
    pub fn parse(v: Option<&Value>) -> Result<Backoff, String> {
        let Some(v) = v.filter(|v| !v.is_null()) else {
            return Ok(Backoff::default());
        };
        let Some(obj) = v.as_object() else {
            return Err(format!("retryStrategy: expected an object, found {v}"));
        };
        let mut b = Backoff::default();
        if let Some(s) = obj.get("steps").filter(|s| !s.is_null()) {
            let n = s
                .as_i64()
                .ok_or_else(|| format!("retryStrategy.steps: expected an integer, found {s}"))?;
            b.steps = u32::try_from(n.clamp(1, i64::from(MAX_STEPS))).unwrap_or(1);
        }
        if let Some(d) = obj.get("duration").filter(|d| !d.is_null()) {
            b.duration =
                parse_go_duration(d).map_err(|e| format!("retryStrategy.duration: {e}"))?;
        }
        if let Some(f) = obj.get("factor").filter(|f| !f.is_null()) {
            b.factor = amount("retryStrategy.factor", f)?;
        }
        if let Some(j) = obj.get("jitter").filter(|j| !j.is_null()) {
            b.jitter = amount("retryStrategy.jitter", j)?;
        }
        Ok(b)
    }

    /// The wait before retry `retry` (0 = after the first failed attempt), with `draw` in
    /// `[0, 1)` choosing the jitter. `None` when no attempt is left.
    pub fn wait(&self, retry: u32, draw: f64) -> Option<Duration> {
        if retry + 1 >= self.steps {
            return None;
        }
        let factor = if self.factor == 0.0 { 1.0 } else { self.factor };
        let exp = i32::try_from(retry).unwrap_or(i32::MAX);
        let base = self.duration.as_secs_f64() * factor.powi(exp);
        let jittered = base + base * self.jitter * draw.clamp(0.0, 1.0);
        let secs = jittered.min(MAX_WAIT.as_secs_f64());
        Some(Duration::try_from_secs_f64(secs).unwrap_or(MAX_WAIT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schedule_grows_by_factor_and_stops_after_steps() {
        let b = Backoff::parse(Some(&json!({"steps": 4, "duration": "1s", "factor": "2"})))
            .expect("parse");
        let waits: Vec<Option<Duration>> = (0..4).map(|i| b.wait(i, 0.0)).collect();
        assert_eq!(
            waits,
            [
                Some(Duration::from_secs(1)),
                Some(Duration::from_secs(2)),
                Some(Duration::from_secs(4)),
                None
            ]
        );
    }

    #[test]
    fn jitter_adds_up_to_its_share() {
        let b = Backoff::parse(Some(
            &json!({"steps": 3, "duration": 1_000_000_000u64, "jitter": 0.5}),
        ))
        .expect("parse");
        assert_eq!(b.wait(0, 0.0), Some(Duration::from_secs(1)));
        assert_eq!(b.wait(0, 1.0), Some(Duration::from_millis(1500)));
        assert_eq!(b.wait(1, 0.5), Some(Duration::from_millis(1250)));
    }

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(Backoff::parse(None).expect("none").steps, 1);
        assert_eq!(Backoff::parse(None).expect("none").wait(0, 0.0), None);
        let zero = Backoff::parse(Some(&json!({"steps": 0}))).expect("zero");
        assert_eq!(zero.steps, 1);
        let huge = Backoff::parse(Some(
            &json!({"steps": 1_000_000, "duration": "1h", "factor": 10}),
        ))
        .expect("huge");
        assert_eq!(huge.steps, MAX_STEPS);
        assert_eq!(huge.wait(5, 0.0), Some(MAX_WAIT));
    }

    #[test]
    fn bad_fields_are_named() {
        for (spec, field) in [
            (json!({"steps": "x"}), "retryStrategy.steps"),
            (json!({"duration": "soon"}), "retryStrategy.duration"),
            (json!({"factor": "-1"}), "retryStrategy.factor"),
            (json!({"jitter": true}), "retryStrategy.jitter"),
            (json!([1]), "retryStrategy"),
        ] {
            let err = Backoff::parse(Some(&spec)).expect_err("bad");
            assert!(err.starts_with(field), "{err}");
        }
    }

    #[test]
    fn go_durations() {
        for (s, d) in [
            ("1s", Duration::from_secs(1)),
            ("1m30s", Duration::from_secs(90)),
            ("250ms", Duration::from_millis(250)),
            ("1.5h", Duration::from_secs(5400)),
            ("10", Duration::from_nanos(10)),
        ] {
            assert_eq!(parse_go_duration(&json!(s)).expect(s), d);
        }
        for bad in ["", "1x", "s", "1s2"] {
            assert!(parse_go_duration(&json!(bad)).is_err(), "{bad}");
        }
    }
}
