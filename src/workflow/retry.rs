//! Retry decisions for one node: Argo's `retryStrategy`, `activeDeadlineSeconds` and template
//! `timeout`, as pure functions of data.
//!
//! Owns: parsing a template's `retryStrategy` into a checked [`RetryStrategy`] (limit, policy,
//! backoff), Argo's duration syntax ([`parse_string_to_duration`], [`parse_go_duration`]), the
//! transient-error classifier of `OnTransientError` ([`TransientMatcher`]) and the decision
//! [`decide`]: given the attempts so far, retry now, retry at a time, or give up with the message
//! Argo writes on the node.
//!
//! How a controller uses it: parse once per template with [`RetryStrategy::parse`] (after the
//! expression engine has rendered a templated `limit`); after each attempt of a node ends
//! Failed or Error, call [`decide`] with every attempt (oldest first) and a [`DecideInput`]
//! (now, the workflow deadline, a shutdown strategy, the `expression` evaluated over
//! [`expression_scope`], the transient matcher built once from `TRANSIENT_ERROR_PATTERN`). On
//! [`RetryDecision::RetryAt`], requeue at that time and call again; the wait is derived from the
//! attempts' recorded times, so a restart of cairn in the middle of a backoff waits only what is
//! left, never twice. A retry attempt's pod gets [`retry_execution_deadline`] as its deadline.
//!
//! Invariants (Argo's `processNodeRetries`, checked in this order):
//! 1. a stopping/terminating workflow or a passed workflow deadline gives up;
//! 2. with `backoff`: past `maxDuration` since the first attempt started gives up; the wait
//!    before retry n+1 (n attempts so far) is `duration * factor^(n-1)` (`factor` applies only
//!    when > 0), capped by `cap`, counted from the last attempt's end; a wait ending after the
//!    `maxDuration` deadline gives up at once; still waiting → `RetryAt` — but only when a
//!    `limit` is set and not exhausted (Argo does not wait otherwise), and only for a retry that
//!    the checks below allow (Argo waits, then gives up: same phase and message, later);
//! 3. the policy: `OnFailure` (the default) retries Failed only, `OnError` Error only, `Always`
//!    both, `OnTransientError` either when the last message is transient;
//! 4. `limit` counts retries after the first attempt (at most `limit + 1` attempts); no limit
//!    retries without end, as Argo does;
//! 5. `expression` false gives up.
//!
//! `retryStrategy.affinity` (node anti-affinity between attempts) is a pod-building concern and
//! is ignored here. Argo's default list of transient messages is reproduced from
//! `util/errors/errors.go` (only its message checks: the node message reaches Argo as a plain
//! internal error, so its type checks never match there either).

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::types;

/// A problem in a `retryStrategy`, a duration, or a transient-error pattern.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RetryError {
    /// `retryStrategy.limit` is neither an integer nor a string holding one.
    #[error(
        "template {template}: retryStrategy.limit: expected an integer or a string holding one, found {found}"
    )]
    Limit {
        /// The template's name.
        template: String,
        /// The value found.
        found: String,
    },
    /// `retryStrategy.retryPolicy` is not one of Argo's four policies.
    #[error(
        "template {template}: retryStrategy.retryPolicy: expected Always, OnFailure, OnError or OnTransientError, found {found:?}"
    )]
    Policy {
        /// The template's name.
        template: String,
        /// The value found.
        found: String,
    },
    /// `retryStrategy.backoff` is not an object, or one of its fields is malformed.
    #[error("template {template}: retryStrategy.backoff.{field}: {problem}")]
    Backoff {
        /// The template's name.
        template: String,
        /// The offending field (`duration`, `factor`, `maxDuration`, `cap`, or `` for the object).
        field: &'static str,
        /// What was expected.
        problem: String,
    },
    /// A duration string is not a number of seconds nor a Go duration (`1h30m`, `10s`, `300ms`).
    #[error("invalid duration {input:?}: {problem}")]
    Duration {
        /// The text.
        input: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// `TRANSIENT_ERROR_PATTERN` uses regular-expression syntax this matcher does not support.
    #[error(
        "TRANSIENT_ERROR_PATTERN {pattern:?}: unsupported syntax {construct:?} (supported: literals, \\-escapes, '.', '*', '^', '$' and '|')"
    )]
    Pattern {
        /// The pattern.
        pattern: String,
        /// The construct refused.
        construct: char,
    },
}

/// Which failed attempts are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryPolicy {
    /// Failed and Error attempts.
    Always,
    /// Failed attempts (main container exited non-zero): Argo's default.
    OnFailure,
    /// Error attempts (controller errors, deleted pods, failed init/wait containers).
    OnError,
    /// Failed or Error attempts whose message is a transient error.
    OnTransientError,
}

/// A checked `retryStrategy.backoff`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Wait before the first retry.
    pub duration: SignedDuration,
    /// Multiplier per further retry; applied only when > 0 (Argo's rule).
    pub factor: Option<i64>,
    /// Limit on the time since the first attempt started.
    pub max_duration: Option<SignedDuration>,
    /// Upper bound of one wait.
    pub cap: Option<SignedDuration>,
}

/// A checked `retryStrategy`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryStrategy {
    /// Retries after the first attempt; `None` retries without end.
    pub limit: Option<i64>,
    /// Which phases are retried.
    pub policy: RetryPolicy,
    /// Waits between attempts.
    pub backoff: Option<Backoff>,
    /// Whether an `expression` is set (the caller evaluates it and passes the result).
    pub has_expression: bool,
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptPhase {
    /// The main container ran and exited non-zero (or a condition failed).
    Failed,
    /// A system error: pod deleted, controller error, init or wait container failure.
    Error,
}

/// One finished attempt of a node (a child of the retry node), oldest first in [`decide`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Failed or Error.
    pub phase: AttemptPhase,
    /// The main container's exit code, when it ran.
    pub exit_code: Option<i32>,
    /// The node message (what transient patterns are matched against).
    pub message: String,
    /// When the attempt started (the first attempt's start anchors `maxDuration`).
    pub started_at: Timestamp,
    /// When the attempt finished (anchors the backoff wait).
    pub finished_at: Timestamp,
}

/// What [`decide`] needs besides the strategy and the attempts.
#[derive(Clone, Debug)]
pub struct DecideInput<'a> {
    /// The current time.
    pub now: Timestamp,
    /// The workflow's deadline (`activeDeadlineSeconds` from its start), if any.
    pub workflow_deadline: Option<Timestamp>,
    /// The workflow's shutdown strategy (`Stop` or `Terminate`), if one is set.
    pub shutdown: Option<&'a str>,
    /// `retryStrategy.expression` evaluated with the last attempt's scope; `None` without one.
    pub expression: Option<bool>,
    /// The transient-error classifier.
    pub transient: &'a TransientMatcher,
}

/// What to do with a node whose last attempt failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Create the next attempt now.
    RetryNow,
    /// Wait for the backoff: create the next attempt at `at` (requeue then, and decide again).
    RetryAt {
        /// When the wait ends.
        at: Timestamp,
        /// The whole wait, for the node message `Backoff for <wait>`.
        wait: SignedDuration,
    },
    /// No more attempts: the node ends in the last attempt's phase with this message.
    GiveUp {
        /// The phase the node ends in.
        phase: AttemptPhase,
        /// The node message, as Argo writes it.
        reason: String,
    },
}

impl RetryStrategy {
    /// Checks a template's `retryStrategy`. A templated `limit` must be rendered before.
    pub fn parse(template: &str, raw: &types::RetryStrategy) -> Result<RetryStrategy, RetryError> {
        let limit = match &raw.limit {
            None | Some(Value::Null) => None,
            Some(v) => Some(int_or_string(v).ok_or_else(|| RetryError::Limit {
                template: template.to_owned(),
                found: v.to_string(),
            })?),
        };
        let policy = match raw.retry_policy.as_deref() {
            None | Some("") | Some("OnFailure") => RetryPolicy::OnFailure,
            Some("Always") => RetryPolicy::Always,
            Some("OnError") => RetryPolicy::OnError,
            Some("OnTransientError") => RetryPolicy::OnTransientError,
            Some(other) => {
                return Err(RetryError::Policy {
                    template: template.to_owned(),
                    found: other.to_owned(),
                });
            }
        };
        let backoff = match &raw.backoff {
            None | Some(Value::Null) => None,
            Some(v) => Some(parse_backoff(template, v)?),
        };
        Ok(RetryStrategy {
            limit,
            policy,
            backoff,
            has_expression: raw.expression.as_deref().is_some_and(|e| !e.is_empty()),
        })
    }
}

fn parse_backoff(template: &str, raw: &Value) -> Result<Backoff, RetryError> {
    let err = |field: &'static str, problem: String| RetryError::Backoff {
        template: template.to_owned(),
        field,
        problem,
    };
    let Value::Object(map) = raw else {
        return Err(err("", format!("expected an object, found {raw}")));
    };
    // Argo reads duration-like fields as strings; a bare number is accepted too since it is
    // what a YAML author writes for "seconds" and the meaning is unambiguous.
    let duration_field = |field: &'static str| -> Result<Option<SignedDuration>, RetryError> {
        match map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => parse_string_to_duration(s)
                .map(Some)
                .map_err(|e| err(field, e.to_string())),
            Some(Value::Number(n)) => parse_string_to_duration(&n.to_string())
                .map(Some)
                .map_err(|e| err(field, e.to_string())),
            Some(other) => Err(err(
                field,
                format!("expected a duration string, found {other}"),
            )),
        }
    };
    // Argo fails the node at run time when a backoff has no duration; cairn reports it when the
    // template is checked, before any pod runs.
    let duration = duration_field("duration")?.ok_or_else(|| {
        err(
            "duration",
            "a backoff needs a base duration (seconds or a duration such as \"10s\")".to_owned(),
        )
    })?;
    let factor = match map.get("factor") {
        None | Some(Value::Null) => None,
        Some(v) => Some(int_or_string(v).ok_or_else(|| {
            err(
                "factor",
                format!("expected an integer or a string holding one, found {v}"),
            )
        })?),
    };
    Ok(Backoff {
        duration,
        factor,
        max_duration: duration_field("maxDuration")?,
        cap: duration_field("cap")?,
    })
}

/// An IntOrString read as Kubernetes' `intstr.Int32` does: an integer, or a string holding one.
fn int_or_string(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().filter(|i| i32::try_from(*i).is_ok()),
        Value::String(s) => s.parse::<i32>().ok().map(i64::from),
        _ => None,
    }
}

/// Argo's `ParseStringToDuration`: a plain integer is seconds, anything else a Go duration.
pub fn parse_string_to_duration(s: &str) -> Result<SignedDuration, RetryError> {
    if let Ok(secs) = s.parse::<i64>() {
        return Ok(SignedDuration::from_secs(secs));
    }
    parse_go_duration(s)
}

/// Go's `time.ParseDuration`: `[-+]` then one or more `<decimal><unit>` with units ns, us (µs),
/// ms, s, m, h; a bare `0` is allowed. Used for template `timeout`, which Argo parses this way.
pub fn parse_go_duration(input: &str) -> Result<SignedDuration, RetryError> {
    let bad = |problem| RetryError::Duration {
        input: input.to_owned(),
        problem,
    };
    let (negative, mut rest) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if rest == "0" {
        return Ok(SignedDuration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad("empty"));
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(bad("expected a number"));
        }
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per: i128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(bad("missing unit")),
            _ => return Err(bad("unknown unit")),
        };
        rest = &rest[unit_len..];
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        let whole: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad("number too large"))?
        };
        let mut value = whole.checked_mul(nanos_per).ok_or(bad("overflow"))?;
        // The fraction is scaled digit by digit so "1.5h" is exact and no float is involved.
        let mut scale = nanos_per;
        for d in frac_part.bytes() {
            scale /= 10;
            value += i128::from(d - b'0') * scale;
        }
        total = total.checked_add(value).ok_or(bad("overflow"))?;
        if total > i128::from(i64::MAX) {
            return Err(bad("overflow"));
        }
    }
    let nanos =
        i64::try_from(if negative { -total } else { total }).map_err(|_| bad("overflow"))?;
    Ok(SignedDuration::from_nanos(nanos))
}

/// Whether an `activeDeadlineSeconds` (or any seconds deadline) counted from `start` has passed
/// at `now`. Strictly after, as Argo's `time.Now().After(deadline)`.
pub fn deadline_exceeded(start: Timestamp, deadline_secs: i64, now: Timestamp) -> bool {
    match start.checked_add(SignedDuration::from_secs(deadline_secs)) {
        Ok(deadline) => now > deadline,
        // A deadline beyond the representable range never passes.
        Err(_) => false,
    }
}

/// Whether a template `timeout` (a Go duration such as "30s") counted from the node's start has
/// passed at `now`; `Ok(None)`-free: an empty timeout never expires.
pub fn template_timed_out(
    node_started_at: Timestamp,
    timeout: &str,
    now: Timestamp,
) -> Result<bool, RetryError> {
    if timeout.is_empty() {
        return Ok(false);
    }
    let limit = parse_go_duration(timeout)?;
    Ok(match node_started_at.checked_add(limit) {
        Ok(deadline) => now > deadline,
        Err(_) => false,
    })
}

/// Argo's built-in transient messages (`util/errors/errors.go`), matched as substrings.
const DEFAULT_TRANSIENT: &[&str] = &[
    "etcdserver: leader changed",
    "etcdserver: request timed out",
    "etcdserver: too many requests",
    "Connection closed by foreign host",
    "net/http: TLS handshake timeout",
    "i/o timeout",
    "connection timed out",
    "connection reset by peer",
    "http2: client connection lost",
    "http2: server sent GOAWAY and closed the connection",
    "connect: connection refused",
    "invalid connection",
    "upper: no more rows in",
];

/// Classifies a node message as transient: Argo's defaults plus `TRANSIENT_ERROR_PATTERN`.
///
/// The pattern is a Go regular expression in Argo; without a regex engine in the crate, cairn
/// supports the subset real patterns use (literals, `\`-escapes, `.`, `*`, `^`, `$`, top-level
/// `|`) and refuses anything else when the matcher is built, so a pattern never silently
/// matches differently.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransientMatcher {
    branches: Vec<Vec<Token>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Atom {
    Char(char),
    Any,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    One(Atom),
    Star(Atom),
    Start,
    End,
}

impl TransientMatcher {
    /// A matcher from the value of `TRANSIENT_ERROR_PATTERN` (`None` or empty: defaults only).
    pub fn new(pattern: Option<&str>) -> Result<TransientMatcher, RetryError> {
        let Some(pattern) = pattern.filter(|p| !p.is_empty()) else {
            return Ok(TransientMatcher::default());
        };
        let refuse = |construct| RetryError::Pattern {
            pattern: pattern.to_owned(),
            construct,
        };
        let mut branches = vec![Vec::new()];
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            let atom = match c {
                '\\' => match chars.next() {
                    Some(e) if e.is_ascii_punctuation() => Atom::Char(e),
                    Some(e) => return Err(refuse(e)),
                    None => return Err(refuse('\\')),
                },
                '.' => Atom::Any,
                '|' => {
                    branches.push(Vec::new());
                    continue;
                }
                '^' => {
                    push(&mut branches, Token::Start);
                    continue;
                }
                '$' => {
                    push(&mut branches, Token::End);
                    continue;
                }
                '*' => {
                    let last = branches.last_mut().and_then(|b| b.pop());
                    match last {
                        Some(Token::One(a)) => push(&mut branches, Token::Star(a)),
                        _ => return Err(refuse('*')),
                    }
                    continue;
                }
                '(' | ')' | '[' | ']' | '{' | '}' | '+' | '?' => return Err(refuse(c)),
                other => Atom::Char(other),
            };
            push(&mut branches, Token::One(atom));
        }
        Ok(TransientMatcher { branches })
    }

    /// Whether `message` is a transient error.
    pub fn is_transient(&self, message: &str) -> bool {
        if DEFAULT_TRANSIENT.iter().any(|p| message.contains(p)) {
            return true;
        }
        let chars: Vec<char> = message.chars().collect();
        self.branches.iter().any(|b| search(b, &chars))
    }
}

fn push(branches: &mut [Vec<Token>], t: Token) {
    if let Some(b) = branches.last_mut() {
        b.push(t);
    }
}

/// Unanchored search, as Go's `regexp.MatchString`.
fn search(pattern: &[Token], text: &[char]) -> bool {
    if let Some((Token::Start, rest)) = pattern.split_first() {
        return match_here(rest, text);
    }
    (0..=text.len()).any(|i| match_here(pattern, &text[i..]))
}

fn atom_matches(a: Atom, c: char) -> bool {
    match a {
        Atom::Any => c != '\n',
        Atom::Char(x) => x == c,
    }
}

fn match_here(pattern: &[Token], text: &[char]) -> bool {
    match pattern.split_first() {
        None => true,
        Some((Token::End, rest)) => text.is_empty() && match_here(rest, text),
        // A `^` after the start (as in `a|^b` is handled per branch) only matches at offset 0,
        // which match_here never is past the first call; treat it as failing elsewhere.
        Some((Token::Start, _)) => false,
        Some((Token::One(a), rest)) => {
            text.first().is_some_and(|c| atom_matches(*a, *c)) && match_here(rest, &text[1..])
        }
        Some((Token::Star(a), rest)) => {
            let mut i = 0;
            loop {
                if match_here(rest, &text[i..]) {
                    return true;
                }
                match text.get(i) {
                    Some(c) if atom_matches(*a, *c) => i += 1,
                    _ => return false,
                }
            }
        }
    }
}

/// The wait before the next attempt after `attempts` attempts: `duration * factor^(attempts-1)`
/// (factor only when > 0), capped by `cap`; saturates instead of overflowing.
pub fn backoff_wait(backoff: &Backoff, attempts: usize) -> SignedDuration {
    let mut wait = backoff.duration;
    if let Some(factor) = backoff.factor.filter(|f| *f > 0) {
        let exp = u32::try_from(attempts.saturating_sub(1)).unwrap_or(u32::MAX);
        let mult = i128::from(factor).checked_pow(exp);
        let nanos = mult.and_then(|m| backoff.duration.as_nanos().checked_mul(m));
        wait = match nanos {
            Some(n) => i64::try_from(n)
                .map(SignedDuration::from_nanos)
                .unwrap_or(SignedDuration::MAX),
            None => SignedDuration::MAX,
        };
    }
    if let Some(cap) = backoff.cap
        && wait > cap
    {
        wait = cap;
    }
    wait
}

/// The variables `retryStrategy.expression` sees, as Argo's `buildRetryStrategyLocalScope` sets
/// them (all strings): `retries` (the last attempt's 0-based index), `lastRetry.exitCode` (`-1`
/// when the container never exited), `lastRetry.status`, `lastRetry.duration` (seconds) and
/// `lastRetry.message`. Empty when there is no attempt yet.
pub fn expression_scope(attempts: &[Attempt]) -> BTreeMap<String, String> {
    let mut scope = BTreeMap::new();
    let Some(last) = attempts.last() else {
        return scope;
    };
    let status = match last.phase {
        AttemptPhase::Failed => "Failed",
        AttemptPhase::Error => "Error",
    };
    let seconds = last
        .finished_at
        .duration_since(last.started_at)
        .as_secs_f64();
    for (k, v) in [
        ("retries", (attempts.len() - 1).to_string()),
        (
            "lastRetry.exitCode",
            last.exit_code
                .map_or_else(|| "-1".to_owned(), |c| c.to_string()),
        ),
        ("lastRetry.status", status.to_owned()),
        ("lastRetry.duration", seconds.to_string()),
        ("lastRetry.message", last.message.clone()),
    ] {
        scope.insert(k.to_owned(), v);
    }
    scope
}

/// The execution deadline of a retry attempt under `backoff.maxDuration`: the first attempt's
/// start plus `maxDuration` (Argo overrides the new pod's deadline with it, so a retry cannot
/// outlive the budget). `None` for the first attempt or without `maxDuration`.
pub fn retry_execution_deadline(
    strategy: &RetryStrategy,
    attempts: &[Attempt],
) -> Option<Timestamp> {
    let max = strategy.backoff.as_ref()?.max_duration?;
    let first = attempts.first()?;
    Some(
        first
            .started_at
            .saturating_add(max)
            .unwrap_or(Timestamp::MAX),
    )
}

/// A UTC instant as Go's `time.Time.String()` prints it (`2006-01-02 15:04:05.5 +0000 UTC`),
/// which is how Argo's node messages show deadlines.
fn go_time_string(t: Timestamp) -> String {
    let mut out = t.strftime("%Y-%m-%d %H:%M:%S").to_string();
    let nanos = t.subsec_nanosecond();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

/// Decides what follows the last of `attempts` (oldest first; each ended Failed or Error).
/// With no attempts the first one is due: [`RetryDecision::RetryNow`].
pub fn decide(
    strategy: &RetryStrategy,
    attempts: &[Attempt],
    input: &DecideInput<'_>,
) -> RetryDecision {
    let (Some(first), Some(last)) = (attempts.first(), attempts.last()) else {
        return RetryDecision::RetryNow;
    };
    let give_up = |reason: String| RetryDecision::GiveUp {
        phase: last.phase,
        reason,
    };
    let count = attempts.len();
    let limit_left = strategy
        .limit
        .is_some_and(|l| i64::try_from(count).is_ok_and(|c| c <= l));

    if let Some(strategy_name) = input.shutdown {
        return give_up(format!("Stopped with strategy '{strategy_name}'"));
    }
    if let Some(deadline) = input.workflow_deadline
        && input.now > deadline
    {
        return give_up(format!(
            "retry exceeded workflow deadline {}",
            go_time_string(deadline)
        ));
    }

    let mut wait_until = None;
    if let Some(backoff) = &strategy.backoff {
        let max_deadline = backoff
            .max_duration
            .map(|d| first.started_at.saturating_add(d).unwrap_or(Timestamp::MAX));
        if let Some(max_deadline) = max_deadline
            && input.now > max_deadline
        {
            return give_up("Max duration limit exceeded".to_owned());
        }
        let wait = backoff_wait(backoff, count);
        let at = last
            .finished_at
            .saturating_add(wait)
            .unwrap_or(Timestamp::MAX);
        if let Some(max_deadline) = max_deadline
            && at > max_deadline
        {
            return give_up("Backoff would exceed max duration limit".to_owned());
        }
        // Argo waits only when a limit is set and not exhausted; otherwise it goes straight on to
        // the policy and limit checks (so an exhausted limit gives up without waiting).
        if input.now < at && limit_left {
            wait_until = Some((at, wait));
        }
    }

    let (on_failed, on_error) = match strategy.policy {
        RetryPolicy::Always => (true, true),
        RetryPolicy::OnFailure => (true, false),
        RetryPolicy::OnError => (false, true),
        RetryPolicy::OnTransientError => {
            let t = input.transient.is_transient(&last.message);
            (t, t)
        }
    };
    let retryable = match last.phase {
        AttemptPhase::Failed => on_failed,
        AttemptPhase::Error => on_error,
    };
    if !retryable {
        return give_up(last.message.clone());
    }
    if let Some(limit) = strategy.limit
        && i64::try_from(count).map_or(true, |c| c > limit)
    {
        return give_up("No more retries left".to_owned());
    }
    if input.expression == Some(false) {
        return give_up("retryStrategy.expression evaluated to false".to_owned());
    }
    // Argo marks "Backoff for ..." before the policy and expression checks and gives up on a
    // later pass; the outcome is the same, so cairn waits only for a retry that will happen.
    if let Some((at, wait)) = wait_until {
        return RetryDecision::RetryAt { at, wait };
    }
    RetryDecision::RetryNow
}

#[cfg(test)]
mod tests;
