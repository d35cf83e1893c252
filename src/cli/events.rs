//! `cairn eventsource`, `cairn sensor` and `cairn events`: Argo Events objects, a sensor's
//! trigger history, the events on the bus, and sending a test event — all through the server's
//! `/api/v1/events/...` routes, as the logged-in user.

use anyhow::{Context, bail};
use clap::Subcommand;
use jiff::Timestamp;
use serde_json::Value;

use super::Client;
use super::output::{self, OutputFormat, Table, print_value};

/// `cairn eventsource` subcommands.
#[derive(Debug, Subcommand)]
pub enum EventSourceCommand {
    /// List EventSources.
    List {
        /// Namespace; all namespaces the caller may see when omitted.
        #[arg(short = 'n', long, env = "CAIRN_NAMESPACE")]
        namespace: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// Show an EventSource.
    Get {
        /// Its name.
        name: String,
        /// Namespace.
        #[arg(short = 'n', long, env = "CAIRN_NAMESPACE", default_value = "default")]
        namespace: String,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
}

/// `cairn sensor` subcommands.
#[derive(Debug, Subcommand)]
pub enum SensorCommand {
    /// List Sensors.
    List {
        /// Namespace; all namespaces the caller may see when omitted.
        #[arg(short = 'n', long, env = "CAIRN_NAMESPACE")]
        namespace: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// Show a Sensor.
    Get {
        /// Its name.
        name: String,
        /// Namespace.
        #[arg(short = 'n', long, env = "CAIRN_NAMESPACE", default_value = "default")]
        namespace: String,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// A Sensor's trigger outcomes and unmatched events, newest first.
    History {
        /// Its name.
        name: String,
        /// Namespace.
        #[arg(short = 'n', long, env = "CAIRN_NAMESPACE", default_value = "default")]
        namespace: String,
        /// Only records since this time (RFC 3339) or this long ago (`1h`, `30m`).
        #[arg(long)]
        since: Option<String>,
        /// At most this many records.
        #[arg(long)]
        limit: Option<usize>,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
}

/// `cairn events` subcommands.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Events on the bus, newest first.
    List {
        /// Only events of this EventSource (`NAME`, or `NAMESPACE/NAME`).
        #[arg(long)]
        source: Option<String>,
        /// Only events since this time (RFC 3339) or this long ago (`1h`, `30m`).
        #[arg(long)]
        since: Option<String>,
        /// Namespace of the EventSources; all the caller may see when omitted.
        #[arg(short = 'n', long, env = "CAIRN_NAMESPACE")]
        namespace: Option<String>,
        /// At most this many events.
        #[arg(long)]
        limit: Option<usize>,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// Send an event to an EventSource's endpoint (for testing a Sensor), as the logged-in user.
    Send {
        /// `EVENTSOURCE/ENDPOINT`, e.g. `webhook/recommender-dataset-ready`.
        target: String,
        /// The JSON payload.
        #[arg(short = 'd', long = "data", default_value = "{}")]
        data: String,
        /// Namespace of the EventSource.
        #[arg(short = 'n', long, env = "CAIRN_NAMESPACE", default_value = "default")]
        namespace: String,
        /// Output format of the answer (the event's id and sequence number).
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
}

/// `since` as the query value: an RFC 3339 time as given, or a duration back from now.
fn since_param(since: &str, now: Timestamp) -> anyhow::Result<String> {
    if let Ok(t) = since.parse::<Timestamp>() {
        return Ok(t.to_string());
    }
    let ago = crate::config::parse_duration(since).map_err(|e| {
        anyhow::anyhow!(
            "--since: expected an RFC 3339 time (2026-01-02T03:04:05Z) or a duration (1h, 30m), \
             got {since:?}: {e}"
        )
    })?;
    let ago = jiff::SignedDuration::try_from(ago).context("--since: duration too large")?;
    Ok(now
        .checked_sub(ago)
        .context("--since: duration reaches before year -9999")?
        .to_string())
}

/// A query string from the parameters that are set (values percent-encoded).
fn query(params: &[(&str, Option<String>)]) -> String {
    let set: Vec<String> = params
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if set.is_empty() {
        String::new()
    } else {
        format!("?{}", set.join("&"))
    }
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `EVENTSOURCE/ENDPOINT` split at the first `/` (the endpoint may contain more).
fn split_target(target: &str) -> anyhow::Result<(&str, &str)> {
    match target.split_once('/') {
        Some((es, ep)) if !es.is_empty() && !ep.trim_start_matches('/').is_empty() => {
            Ok((es, ep.trim_start_matches('/')))
        }
        _ => bail!("expected EVENTSOURCE/ENDPOINT (e.g. webhook/example), got {target:?}"),
    }
}

fn conditions_summary(o: &Value) -> String {
    let Some(conds) = o.pointer("/status/conditions").and_then(Value::as_array) else {
        return String::new();
    };
    conds
        .iter()
        .filter(|c| c.get("status").and_then(Value::as_str) != Some("True"))
        .filter_map(|c| {
            let t = c.get("type").and_then(Value::as_str)?;
            let m = c.get("message").and_then(Value::as_str).unwrap_or_default();
            Some(format!("{t}: {m}"))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn ready(o: &Value) -> String {
    match o.pointer("/status/conditions").and_then(Value::as_array) {
        None => "Unknown".to_owned(),
        Some(c) if c.is_empty() => "Unknown".to_owned(),
        Some(c) => {
            let all = c
                .iter()
                .all(|c| c.get("status").and_then(Value::as_str) == Some("True"));
            if all { "True" } else { "False" }.to_owned()
        }
    }
}

fn source_types(o: &Value) -> String {
    o.get("spec")
        .and_then(Value::as_object)
        .map(|spec| {
            spec.iter()
                .filter(|(k, v)| {
                    v.is_object() && !matches!(k.as_str(), "template" | "service" | "eventBusName")
                })
                .map(|(k, v)| {
                    let n = v.as_object().map_or(0, |m| m.len());
                    format!("{k}({n})")
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn eventsource_table() -> Table {
    Table::new(&["NAMESPACE", "NAME", "SOURCES", "READY"], &["MESSAGE"]).columns(|o| {
        vec![
            output::field(o, "/metadata/namespace"),
            output::field(o, "/metadata/name"),
            source_types(o),
            ready(o),
            conditions_summary(o),
        ]
    })
}

fn sensor_table() -> Table {
    Table::new(
        &["NAMESPACE", "NAME", "DEPENDENCIES", "TRIGGERS", "READY"],
        &["MESSAGE"],
    )
    .columns(|o| {
        let names = |ptr: &str, key: &str| {
            o.pointer(ptr)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|d| d.pointer(key).and_then(Value::as_str).map(str::to_owned))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()
        };
        vec![
            output::field(o, "/metadata/namespace"),
            output::field(o, "/metadata/name"),
            names("/spec/dependencies", "/name"),
            names("/spec/triggers", "/template/name"),
            ready(o),
            conditions_summary(o),
        ]
    })
}

fn history_table() -> Table {
    Table::new(
        &["TIME", "RECORD", "TRIGGER/DEPENDENCY", "RESULT"],
        &["EVENTS"],
    )
    .columns(|r| {
        let e = r.get("entry").unwrap_or(r);
        let s = |k: &str| {
            e.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let record = s("record");
        let what = if record == "unmatched" {
            s("dependency")
        } else {
            s("trigger")
        };
        let result = match (record.as_str(), s("result").as_str()) {
            ("unmatched", _) => format!("unmatched: {}", s("reason")),
            (_, "object") => {
                let ns = s("namespace");
                let name = if ns.is_empty() {
                    s("name")
                } else {
                    format!("{ns}/{}", s("name"))
                };
                format!("{} {} {name}", s("action"), s("kind"))
            }
            (_, "done") => s("detail"),
            (_, "failed") => format!("failed: {}", s("error")),
            (_, other) => other.to_owned(),
        };
        let events = match e.get("eventIds").and_then(Value::as_object) {
            Some(m) => m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(","),
            None => s("eventId"),
        };
        vec![s("at"), record, what, result, events]
    })
}

fn events_table() -> Table {
    Table::new(
        &["TIME", "NAMESPACE", "EVENTSOURCE", "EVENT", "ID"],
        &["SEQ", "TYPE"],
    )
    .columns(|e| {
        vec![
            output::field(e, "/context/time"),
            output::field(e, "/namespace"),
            output::field(e, "/eventSource"),
            output::field(e, "/eventName"),
            output::field(e, "/context/id"),
            output::field(e, "/seq"),
            output::field(e, "/context/type"),
        ]
    })
}

/// Runs `cairn eventsource ...`.
pub async fn run_eventsource(command: EventSourceCommand) -> anyhow::Result<()> {
    let client = Client::current()?;
    match command {
        EventSourceCommand::List { namespace, output } => {
            let list = client
                .get(&format!(
                    "/api/v1/events/eventsources{}",
                    query(&[("namespace", namespace)])
                ))
                .await?;
            eventsource_table().print_list(&list, output.unwrap_or_default())
        }
        EventSourceCommand::Get {
            name,
            namespace,
            output,
        } => {
            let o = client
                .get(&format!("/api/v1/events/eventsources/{namespace}/{name}"))
                .await?;
            eventsource_table().print_one(&o, output.unwrap_or_default())
        }
    }
}

/// Runs `cairn sensor ...`.
pub async fn run_sensor(command: SensorCommand) -> anyhow::Result<()> {
    let client = Client::current()?;
    match command {
        SensorCommand::List { namespace, output } => {
            let list = client
                .get(&format!(
                    "/api/v1/events/sensors{}",
                    query(&[("namespace", namespace)])
                ))
                .await?;
            sensor_table().print_list(&list, output.unwrap_or_default())
        }
        SensorCommand::Get {
            name,
            namespace,
            output,
        } => {
            let o = client
                .get(&format!("/api/v1/events/sensors/{namespace}/{name}"))
                .await?;
            sensor_table().print_one(&o, output.unwrap_or_default())
        }
        SensorCommand::History {
            name,
            namespace,
            since,
            limit,
            output,
        } => {
            let since = since
                .map(|s| since_param(&s, Timestamp::now()))
                .transpose()?;
            let list = client
                .get(&format!(
                    "/api/v1/events/sensors/{namespace}/{name}/history{}",
                    query(&[("since", since), ("limit", limit.map(|l| l.to_string()))])
                ))
                .await?;
            history_table().print_list(&list, output.unwrap_or_default())
        }
    }
}

/// Runs `cairn events ...`.
pub async fn run_events(command: EventsCommand) -> anyhow::Result<()> {
    let client = Client::current()?;
    match command {
        EventsCommand::List {
            source,
            since,
            namespace,
            limit,
            output,
        } => {
            let since = since
                .map(|s| since_param(&s, Timestamp::now()))
                .transpose()?;
            let list = client
                .get(&format!(
                    "/api/v1/events/log{}",
                    query(&[
                        ("namespace", namespace),
                        ("source", source),
                        ("since", since),
                        ("limit", limit.map(|l| l.to_string())),
                    ])
                ))
                .await?;
            events_table().print_list(&list, output.unwrap_or_default())
        }
        EventsCommand::Send {
            target,
            data,
            namespace,
            output,
        } => {
            let (event_source, endpoint) = split_target(&target)?;
            let body: Value = serde_json::from_str(&data)
                .with_context(|| format!("-d: expected JSON, got {data:?}"))?;
            let answer = client
                .send(
                    reqwest::Method::POST,
                    &format!("/api/v1/events/send/{namespace}/{event_source}/{endpoint}"),
                    body,
                )
                .await?;
            match output {
                Some(format @ (OutputFormat::Json | OutputFormat::Yaml)) => {
                    print_value(&answer, format)
                }
                _ => {
                    println!(
                        "event {} sent to {namespace}/{event_source}/{endpoint} (bus sequence {})",
                        output::field(&answer, "/id"),
                        output::field(&answer, "/seq"),
                    );
                    Ok(())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_times_and_durations() {
        let now: Timestamp = "2026-12-06T12:00:00Z".parse().expect("time");
        assert_eq!(
            since_param("2026-12-01T00:00:00Z", now).expect("time"),
            "2026-12-01T00:00:00Z"
        );
        assert_eq!(
            since_param("90m", now).expect("duration"),
            "2026-12-06T10:30:00Z"
        );
        let err = since_param("yesterday", now).expect_err("bad");
        assert!(err.to_string().contains("--since"), "{err}");
    }

    #[test]
    fn targets_split_at_the_first_slash() {
        assert_eq!(
            split_target("webhook/example").expect("ok"),
            ("webhook", "example")
        );
        assert_eq!(split_target("hooks/a/b").expect("ok"), ("hooks", "a/b"));
        assert!(split_target("webhook").is_err());
        assert!(split_target("/example").is_err());
        assert!(split_target("webhook/").is_err());
    }

    #[test]
    fn queries_encode_values_and_skip_unset() {
        assert_eq!(query(&[("a", None)]), "");
        assert_eq!(
            query(&[
                ("since", Some("2026-12-06T10:30:00Z".to_owned())),
                ("x", None),
                ("source", Some("ns/a b".to_owned()))
            ]),
            "?since=2026-12-06T10%3A30%3A00Z&source=ns%2Fa%20b"
        );
    }

    #[test]
    fn tables_read_argo_objects() {
        let es = serde_json::json!({
            "metadata": {"namespace": "ml", "name": "webhook"},
            "spec": {"webhook": {"a": {}, "b": {}}, "kafka": {"k": {}}, "service": {"ports": []}},
            "status": {"conditions": [
                {"type": "SourcesProvided", "status": "False", "message": "kafka is not run by cairn"},
                {"type": "Deployed", "status": "True"}
            ]}
        });
        let rows = eventsource_table().render(&[es], true);
        assert!(
            rows.contains("webhook(2),kafka(1)") || rows.contains("kafka(1),webhook(2)"),
            "{rows}"
        );
        assert!(rows.contains("False"), "{rows}");
        assert!(
            rows.contains("SourcesProvided: kafka is not run by cairn"),
            "{rows}"
        );
    }

    #[test]
    fn history_rows_read_outcomes_and_unmatched_events() {
        let records = [
            serde_json::json!({"namespace": "ml", "sensor": "s", "entry": {
                "record": "outcome", "trigger": "train", "eventIds": {"dep": "e1"},
                "at": "2026-12-06T12:00:00Z", "attempts": 1, "result": "object",
                "kind": "Workflow", "namespace": "ml", "name": "s-train-abc", "action": "created"}}),
            serde_json::json!({"namespace": "ml", "sensor": "s", "entry": {
                "record": "unmatched", "dependency": "dep", "eventId": "e2",
                "at": "2026-12-06T12:00:01Z", "reason": "data filter body.x: no value"}}),
            serde_json::json!({"namespace": "ml", "sensor": "s", "entry": {
                "record": "outcome", "trigger": "notify", "eventIds": {"dep": "e3"},
                "at": "2026-12-06T12:00:02Z", "attempts": 3, "result": "failed",
                "error": "POST http://x/ -> 500"}}),
        ];
        let out = history_table().render(&records, true);
        assert!(out.contains("created Workflow ml/s-train-abc"), "{out}");
        assert!(out.contains("dep=e1"), "{out}");
        assert!(
            out.contains("unmatched: data filter body.x: no value"),
            "{out}"
        );
        assert!(out.contains("failed: POST http://x/ -> 500"), "{out}");
    }
}
