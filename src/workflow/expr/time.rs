//! Time values of expressions: Go's `time.Time` and `time.Duration` as expr-lang exposes them
//! (`now()`, `date(s)`, `duration(s)`, `t1 - t2`, `t + d`, `d.Seconds()`, `t.Unix()`).
//!
//! Owns [`Time`] (an instant plus the fixed UTC offset it was written with, so `.Hour()` is the
//! hour as written, as Go's `time.Parse` keeps the offset) and [`Duration`] (signed nanoseconds
//! in an `i64`, exactly Go's range), their Go text forms (`Time.String()`, `Duration.String()`,
//! JSON as RFC 3339 with nanoseconds / integer nanoseconds), Go's `time.ParseDuration` grammar,
//! the arithmetic the operators need and the methods users call on them.
//!
//! Invariants: pure (the clock is the caller's: `now()` reads [`super::Scope::set_now`], never the
//! system clock); no input panics; arithmetic that leaves Go's `Duration` range or jiff's
//! timestamp range (years -9999..=9999) is an error, except `Time - Time`, which saturates as
//! Go's `Sub` does.
//!
//! Differences from expr-lang, each an error rather than a guess: `date(s)` accepts RFC 3339
//! (`2026-01-01T00:05:00Z`, optional fraction and offset), `2006-01-02` and
//! `2006-01-02 15:04:05` (the last two in UTC, cairn's only local zone); a layout or time-zone
//! argument, `Format`, `Round`, `In` and `Location` are not supported. `now()` is UTC.
//! `Month()` and `Weekday()` give ints (January = 1, Sunday = 0), Go's underlying values.

use std::cmp::Ordering;

use jiff::Timestamp;
use jiff::tz::Offset;

use super::value::Value;

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// An instant with the UTC offset it is shown in (Go's `time.Time` with a fixed zone).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Time {
    ts: Timestamp,
    /// Seconds east of UTC; 0 shows as `UTC`.
    offset: i32,
}

/// A signed span in nanoseconds (Go's `time.Duration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration {
    nanos: i64,
}

impl Time {
    /// The instant `ts`, shown in UTC.
    pub fn utc(ts: Timestamp) -> Self {
        Self { ts, offset: 0 }
    }

    /// The instant.
    pub fn timestamp(&self) -> Timestamp {
        self.ts
    }

    fn civil(&self) -> jiff::civil::DateTime {
        let off = Offset::from_seconds(self.offset).unwrap_or(Offset::UTC);
        off.to_datetime(self.ts)
    }

    /// Orders two instants (offsets do not matter, as Go's `Before`/`After`/`Equal`).
    pub fn cmp_instant(&self, other: &Time) -> Ordering {
        self.ts.cmp(&other.ts)
    }

    /// `self - other`, saturated to Go's `Duration` range as Go's `Time.Sub`.
    pub fn sub(&self, other: &Time) -> Duration {
        let d = self.ts.as_nanosecond() - other.ts.as_nanosecond();
        Duration {
            nanos: d.clamp(i64::MIN as i128, i64::MAX as i128) as i64,
        }
    }

    /// `self + d`, keeping the offset; an error outside the supported years.
    pub fn add(&self, d: Duration) -> Result<Time, String> {
        let n = self.ts.as_nanosecond() + i128::from(d.nanos);
        Timestamp::from_nanosecond(n)
            .map(|ts| Time {
                ts,
                offset: self.offset,
            })
            .map_err(|_| format!("{} + {} is out of range", self.go_string(), d.go_string()))
    }

    /// Go's `Time.String()`: `2006-01-02 15:04:05.999999999 -0700 MST` (`+0000 UTC` in UTC, the
    /// offset twice for a zone without a name).
    pub fn go_string(&self) -> String {
        let dt = self.civil();
        let frac = frac_digits(i64::from(dt.subsec_nanosecond()), 9);
        let zone = offset_text(self.offset, false);
        let name = if self.offset == 0 {
            "UTC".to_owned()
        } else {
            zone.clone()
        };
        format!(
            "{}-{:02}-{:02} {:02}:{:02}:{:02}{frac} {zone} {name}",
            year_text(dt.year()),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        )
    }

    /// Go's `time.RFC3339Nano` form, which `json.Marshal` writes: `2006-01-02T15:04:05.999999999Z07:00`.
    pub fn rfc3339(&self) -> String {
        let dt = self.civil();
        let frac = frac_digits(i64::from(dt.subsec_nanosecond()), 9);
        let zone = if self.offset == 0 {
            "Z".to_owned()
        } else {
            offset_text(self.offset, true)
        };
        format!(
            "{}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}{zone}",
            year_text(dt.year()),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        )
    }

    /// Parses what `date(s)` accepts (see the module docs).
    pub fn parse(s: &str) -> Result<Time, String> {
        let expected = || {
            format!(
                "cannot parse {s:?} as a date: expected RFC 3339 (2006-01-02T15:04:05Z07:00), \
                 2006-01-02 or 2006-01-02 15:04:05"
            )
        };
        let b = s.as_bytes();
        if b.len() == 10 {
            let d: jiff::civil::Date = s.parse().map_err(|_| expected())?;
            return d
                .to_datetime(jiff::civil::Time::midnight())
                .to_zoned(jiff::tz::TimeZone::UTC)
                .map(|z| Time::utc(z.timestamp()))
                .map_err(|_| expected());
        }
        if b.len() == 19 && b[10] == b' ' {
            let dt: jiff::civil::DateTime = s.parse().map_err(|_| expected())?;
            return dt
                .to_zoned(jiff::tz::TimeZone::UTC)
                .map(|z| Time::utc(z.timestamp()))
                .map_err(|_| expected());
        }
        // RFC 3339: a `T`, then `Z` or a `±hh:mm` offset at the end.
        if b.len() < 20 || b[10] != b'T' {
            return Err(expected());
        }
        let offset = match b[b.len() - 1] {
            b'Z' => 0,
            _ => s
                .get(s.len().saturating_sub(6)..)
                .and_then(parse_offset)
                .ok_or_else(expected)?,
        };
        let ts: Timestamp = s.parse().map_err(|_| expected())?;
        Ok(Time { ts, offset })
    }

    /// Calls a method of `time.Time` (`t.Unix()`, `t.Add(d)`); `None` when there is none of
    /// that name.
    pub fn method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        let dt = self.civil();
        let int = |i: i64| Some(no_args(args).map(|()| Value::Int(i)));
        match name {
            "Unix" => int(self.ts.as_second()),
            "UnixMilli" => int(self.ts.as_millisecond()),
            "UnixMicro" => int(self.ts.as_microsecond()),
            "UnixNano" => int(saturate(self.ts.as_nanosecond())),
            "Year" => int(dt.year().into()),
            "Month" => int(dt.month().into()),
            "Day" => int(dt.day().into()),
            "Hour" => int(dt.hour().into()),
            "Minute" => int(dt.minute().into()),
            "Second" => int(dt.second().into()),
            "Nanosecond" => int(dt.subsec_nanosecond().into()),
            "YearDay" => int(dt.date().day_of_year().into()),
            "Weekday" => int(dt.weekday().to_sunday_zero_offset().into()),
            "UTC" => Some(no_args(args).map(|()| Value::Time(Time::utc(self.ts)))),
            "String" => Some(no_args(args).map(|()| Value::Str(self.go_string()))),
            "Before" | "After" | "Equal" => Some(one_time(args).map(|o| {
                let ord = self.cmp_instant(&o);
                Value::Bool(match name {
                    "Before" => ord.is_lt(),
                    "After" => ord.is_gt(),
                    _ => ord.is_eq(),
                })
            })),
            "Sub" => Some(one_time(args).map(|o| Value::Duration(self.sub(&o)))),
            "Add" => Some(one_duration(args).and_then(|d| self.add(d).map(Value::Time))),
            _ => None,
        }
    }
}

impl Duration {
    /// A span of `nanos` nanoseconds.
    pub fn from_nanos(nanos: i64) -> Self {
        Self { nanos }
    }

    /// The span in nanoseconds.
    pub fn nanos(&self) -> i64 {
        self.nanos
    }

    /// `self + other`, an error on overflow (Go would wrap).
    pub fn checked_add(&self, other: Duration) -> Result<Duration, String> {
        self.nanos
            .checked_add(other.nanos)
            .map(Duration::from_nanos)
            .ok_or_else(|| format!("{} + {} overflows", self.go_string(), other.go_string()))
    }

    /// The span negated, an error for the one value Go cannot negate.
    pub fn checked_neg(&self) -> Result<Duration, String> {
        self.nanos
            .checked_neg()
            .map(Duration::from_nanos)
            .ok_or_else(|| format!("-({}) overflows", self.go_string()))
    }

    /// Go's `time.ParseDuration`: `[-+]` then one or more `<decimal><unit>` with units `ns`,
    /// `us` (`µs`), `ms`, `s`, `m`, `h` (`1h30m`, `1.5s`, `-360s`); `0` alone is zero.
    pub fn parse(s: &str) -> Result<Duration, String> {
        let bad = |why: &str| format!("invalid duration {s:?}: {why} (e.g. \"1h30m\" or \"360s\")");
        let (neg, mut rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        if rest == "0" {
            return Ok(Duration::from_nanos(0));
        }
        if rest.is_empty() {
            return Err(bad("empty"));
        }
        // The limit is 2^63 for a negative span (i64::MIN), 2^63 - 1 otherwise.
        let limit: u128 = if neg { 1 << 63 } else { (1 << 63) - 1 };
        let mut total: u128 = 0;
        while !rest.is_empty() {
            let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            let (int_part, after) = rest.split_at(int_len);
            let (frac_part, after) = match after.strip_prefix('.') {
                Some(a) => {
                    let n = a.bytes().take_while(u8::is_ascii_digit).count();
                    a.split_at(n)
                }
                None => ("", after),
            };
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(bad("expected a number"));
            }
            let unit_len = after
                .find(|c: char| c == '.' || c.is_ascii_digit())
                .unwrap_or(after.len());
            let (unit, after) = after.split_at(unit_len);
            let scale: u128 = match unit {
                "ns" => 1,
                "us" | "µs" | "μs" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                "" => return Err(bad("missing unit")),
                _ => return Err(bad(&format!("unknown unit {unit:?}"))),
            };
            let int: u128 = if int_part.is_empty() {
                0
            } else {
                int_part.parse().map_err(|_| bad("number too large"))?
            };
            let mut v = int.checked_mul(scale).ok_or_else(|| bad("out of range"))?;
            // At most 18 fraction digits matter at nanosecond precision for any unit.
            let digits = &frac_part[..frac_part.len().min(18)];
            if !digits.is_empty() {
                let f: u128 = digits.parse().map_err(|_| bad("bad fraction"))?;
                let denom = 10u128.pow(digits.len() as u32);
                v += f * scale / denom;
            }
            total = total.checked_add(v).ok_or_else(|| bad("out of range"))?;
            if total > limit {
                return Err(bad("out of range"));
            }
            rest = after;
        }
        let signed = if neg { -(total as i128) } else { total as i128 };
        Ok(Duration::from_nanos(signed as i64))
    }

    /// Go's `Duration.String()`: `72h3m0.5s`, `1.5ms`, `0s`.
    pub fn go_string(&self) -> String {
        let neg = self.nanos < 0;
        let u = self.nanos.unsigned_abs();
        let sign = if neg { "-" } else { "" };
        if u == 0 {
            return "0s".into();
        }
        if u < NANOS_PER_SEC as u64 {
            let (prec, unit) = match u {
                0..1_000 => (0, "ns"),
                1_000..1_000_000 => (3, "µs"),
                _ => (6, "ms"),
            };
            let pow = 10u64.pow(prec);
            let frac = frac_digits((u % pow) as i64, prec);
            return format!("{sign}{}{frac}{unit}", u / pow);
        }
        let frac = frac_digits((u % NANOS_PER_SEC as u64) as i64, 9);
        let secs = u / NANOS_PER_SEC as u64;
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        if h > 0 {
            format!("{sign}{h}h{m}m{s}{frac}s")
        } else if m > 0 {
            format!("{sign}{m}m{s}{frac}s")
        } else {
            format!("{sign}{s}{frac}s")
        }
    }

    fn units(&self, unit: i64) -> f64 {
        let whole = self.nanos / unit;
        let rest = self.nanos % unit;
        whole as f64 + rest as f64 / unit as f64
    }

    /// Calls a method of `time.Duration` (`d.Seconds()`); `None` when there is none of that
    /// name.
    pub fn method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        let float = |f: f64| Some(no_args(args).map(|()| Value::Float(f)));
        let int = |i: i64| Some(no_args(args).map(|()| Value::Int(i)));
        match name {
            "Hours" => float(self.units(3600 * NANOS_PER_SEC)),
            "Minutes" => float(self.units(60 * NANOS_PER_SEC)),
            "Seconds" => float(self.units(NANOS_PER_SEC)),
            "Milliseconds" => int(self.nanos / 1_000_000),
            "Microseconds" => int(self.nanos / 1_000),
            "Nanoseconds" => int(self.nanos),
            "Abs" => Some(
                no_args(args)
                    .map(|()| Value::Duration(Duration::from_nanos(self.nanos.saturating_abs()))),
            ),
            "String" => Some(no_args(args).map(|()| Value::Str(self.go_string()))),
            _ => None,
        }
    }
}

/// The method names of [`Time`] and [`Duration`], which the parser accepts after a `.`.
pub(crate) const METHODS: &[&str] = &[
    "Unix",
    "UnixMilli",
    "UnixMicro",
    "UnixNano",
    "Year",
    "Month",
    "Day",
    "Hour",
    "Minute",
    "Second",
    "Nanosecond",
    "YearDay",
    "Weekday",
    "UTC",
    "String",
    "Before",
    "After",
    "Equal",
    "Sub",
    "Add",
    "Hours",
    "Minutes",
    "Seconds",
    "Milliseconds",
    "Microseconds",
    "Nanoseconds",
    "Abs",
];

/// Calls method `name` on a time value.
pub(crate) fn call_method(recv: &Value, name: &str, args: &[Value]) -> Result<Value, String> {
    let found = match recv {
        Value::Time(t) => t.method(name, args),
        Value::Duration(d) => d.method(name, args),
        _ => None,
    };
    found.unwrap_or_else(|| Err(format!("type {} has no method {name}", recv.type_name())))
}

fn no_args(args: &[Value]) -> Result<(), String> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(format!("takes no arguments, got {}", args.len()))
    }
}

fn one_time(args: &[Value]) -> Result<Time, String> {
    match args {
        [Value::Time(t)] => Ok(*t),
        [other] => Err(format!("needs a time.Time, got {}", other.type_name())),
        _ => Err(format!("takes one time.Time, got {} arguments", args.len())),
    }
}

fn one_duration(args: &[Value]) -> Result<Duration, String> {
    match args {
        [Value::Duration(d)] => Ok(*d),
        [other] => Err(format!("needs a time.Duration, got {}", other.type_name())),
        _ => Err(format!(
            "takes one time.Duration, got {} arguments",
            args.len()
        )),
    }
}

fn saturate(n: i128) -> i64 {
    n.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// `.ddd` with trailing zeros removed, empty when `v` is 0 (`v` has `prec` digits).
fn frac_digits(v: i64, prec: u32) -> String {
    if v == 0 {
        return String::new();
    }
    let s = format!(".{v:0width$}", width = prec as usize);
    s.trim_end_matches('0').to_owned()
}

fn year_text(y: i16) -> String {
    if y < 0 {
        format!("-{:04}", -i32::from(y))
    } else {
        format!("{y:04}")
    }
}

/// `+0200` (Go's `-0700`) or `+02:00` (`Z07:00`).
fn offset_text(secs: i32, colon: bool) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    let (h, m) = (a / 3600, (a / 60) % 60);
    if colon {
        format!("{sign}{h:02}:{m:02}")
    } else {
        format!("{sign}{h:02}{m:02}")
    }
}

/// `±hh:mm` to seconds.
fn parse_offset(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.len() != 6 || b[3] != b':' {
        return None;
    }
    let sign = match b[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let h: i32 = s.get(1..3)?.parse().ok()?;
    let m: i32 = s.get(4..6)?.parse().ok()?;
    (h < 24 && m < 60).then_some(sign * (h * 3600 + m * 60))
}
