//! `cairn lineage ...`: queries over the lineage graph through `/api/v1/lineage` (see
//! `api::lineage` and `lineage::query`).
//!
//! - `model NAME:VERSION`: the provenance of a model version (run, datasets, code,
//!   hyperparameters, metrics).
//! - `serving KIND/NAME -n NAMESPACE`: what model version serves at a live workload (from its
//!   Application's synced promotion commit) and its provenance.
//! - `graph --from ID --hops N [--direction up|down|both]`: the bounded subgraph around a node
//!   (`ID` is a node id, `a:`/`x:`/`c:` + 32 hex digits, or `NAME:VERSION` for a model version).
//! - `export [--file PATH]`: the whole graph as JSON.
//!
//! `model`, `serving` and `graph` take `-o json|yaml|wide`; JSON and YAML print the server's
//! answer as it came, the tables decode it into the `lineage::query` types first, so a server
//! answering in another shape is reported, not half-printed.
//!
//! The pure pieces (argument parsing, the rendering of a provenance, a serving answer and a
//! subgraph) are unit-tested; the shell only fetches and prints.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::{Value, json};

use super::Client;
use super::output::{self, OutputFormat, Table};
use crate::lineage::graph::{ContextKind, Node, context_id, model_version_name};
use crate::lineage::query::{MAX_HOPS, Provenance, Serving, Subgraph};

/// Errors of `cairn lineage` argument parsing and answer decoding (user-facing).
#[derive(Debug, thiserror::Error)]
pub enum LineageCliError {
    /// A model version reference is not `NAME:VERSION`.
    #[error("model version {found:?}: {field}: expected {expected}")]
    ModelRef {
        /// What was given.
        found: String,
        /// The part that is wrong (`NAME:VERSION`, `name`, `version`).
        field: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// A workload reference is not `KIND/NAME` with a known kind.
    #[error("workload {found:?}: {field}: expected {expected}")]
    Workload {
        /// What was given.
        found: String,
        /// The part that is wrong (`KIND/NAME`, `kind`, `name`).
        field: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// `--from` is neither a node id nor a model version.
    #[error(
        "--from {found:?}: expected a lineage node id (a:, x: or c: followed by 32 hex digits) or a model version NAME:VERSION"
    )]
    NodeRef {
        /// What was given.
        found: String,
    },
    /// `--hops` is over the server's limit.
    #[error("--hops {found}: expected at most {MAX_HOPS}")]
    Hops {
        /// What was given.
        found: u32,
    },
    /// The server's answer does not have the shape of the lineage query types.
    #[error("the server's {what} answer cannot be read: {source}")]
    Decode {
        /// Which answer (`provenance`, `serving`, `graph`).
        what: &'static str,
        /// The decoder's error.
        source: serde_json::Error,
    },
}

impl LineageCliError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::ModelRef { .. } => "invalid_model_ref",
            Self::Workload { .. } => "invalid_workload",
            Self::NodeRef { .. } => "invalid_node_ref",
            Self::Hops { .. } => "invalid_hops",
            Self::Decode { .. } => "decode",
        }
    }
}

/// `cairn lineage` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum LineageCommand {
    /// Where a model version came from: run, datasets, code, hyperparameters, metrics.
    Model {
        /// The model version, `NAME:VERSION` (e.g. `recommender:3`).
        version: String,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// What model version serves at a live workload, and where it came from.
    Serving {
        /// The workload, `KIND/NAME` (e.g. `deployment/recommender`).
        workload: String,
        /// Its namespace.
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// The subgraph around a node, up to a hop limit.
    Graph {
        /// Start node: a node id, or a model version `NAME:VERSION`.
        #[arg(long)]
        from: String,
        /// Hop limit.
        #[arg(long, default_value_t = 3)]
        hops: u32,
        /// Which edges to follow: `up` (what it came from), `down` (what came from it), `both`.
        #[arg(long, value_enum, default_value_t = GraphDirection::Both)]
        direction: GraphDirection,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// The whole lineage graph as JSON.
    Export {
        /// Write to this file instead of standard output.
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

/// `--direction` of `cairn lineage graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphDirection {
    /// What the node came from.
    Up,
    /// What came from the node.
    Down,
    /// Both.
    Both,
}

impl GraphDirection {
    fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
            Self::Both => "both",
        }
    }
}

/// Parses `NAME:VERSION` (version a positive integer). Pure.
pub fn parse_model_version(s: &str) -> Result<(String, u64), LineageCliError> {
    let err = |field, expected| LineageCliError::ModelRef {
        found: s.to_owned(),
        field,
        expected,
    };
    let Some((name, version)) = s.rsplit_once(':') else {
        return Err(err("NAME:VERSION", "NAME:VERSION, e.g. recommender:3"));
    };
    if name.is_empty() {
        return Err(err("name", "a model name before ':'"));
    }
    match version.parse::<u64>() {
        Ok(v) if v > 0 && version.bytes().all(|b| b.is_ascii_digit()) => Ok((name.to_owned(), v)),
        _ => Err(err("version", "a positive integer after ':'")),
    }
}

/// Workload kinds the serving query resolves, as `(accepted spellings, canonical kind)`; the
/// canonical kind is what the API takes.
const WORKLOAD_KINDS: &[(&[&str], &str)] = &[
    (&["deployment", "deploy"], "deployment"),
    (&["statefulset", "sts"], "statefulset"),
    (&["daemonset", "ds"], "daemonset"),
    (&["replicaset", "rs"], "replicaset"),
    (&["pod", "po"], "pod"),
    (&["service", "svc"], "service"),
    (&["configmap", "cm"], "configmap"),
    (&["job"], "job"),
    (&["cronjob", "cj"], "cronjob"),
    (&["rollout", "ro"], "rollout"),
];

const KINDS_EXPECTED: &str = "one of deployment (deploy), statefulset (sts), daemonset (ds), \
     replicaset (rs), pod (po), service (svc), configmap (cm), job, cronjob (cj), rollout (ro)";

/// Parses `KIND/NAME` as `kubectl` writes it (`deployment/web`, `deploy/web`,
/// `Deployments/web`) into the canonical kind and the name. Pure.
pub fn parse_workload(s: &str) -> Result<(&'static str, String), LineageCliError> {
    let err = |field, expected| LineageCliError::Workload {
        found: s.to_owned(),
        field,
        expected,
    };
    let Some((kind, name)) = s.split_once('/') else {
        return Err(err("KIND/NAME", "KIND/NAME, e.g. deployment/recommender"));
    };
    let lower = kind.to_ascii_lowercase();
    let singular = lower
        .strip_suffix('s')
        .filter(|k| k.len() > 2)
        .unwrap_or(&lower);
    let Some(canonical) = WORKLOAD_KINDS
        .iter()
        .find(|(names, _)| names.contains(&lower.as_str()) || names.contains(&singular))
        .map(|(_, c)| *c)
    else {
        return Err(err("kind", KINDS_EXPECTED));
    };
    let valid_name = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'));
    if !valid_name {
        return Err(err(
            "name",
            "a Kubernetes object name (lowercase letters, digits, '-', '.') after '/'",
        ));
    }
    Ok((canonical, name.to_owned()))
}

fn is_node_id(s: &str) -> bool {
    let hex = s
        .strip_prefix("a:")
        .or_else(|| s.strip_prefix("x:"))
        .or_else(|| s.strip_prefix("c:"));
    hex.is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The node id `--from` names: a node id as given, or the context of a model version
/// `NAME:VERSION`. Pure.
pub fn resolve_from(s: &str) -> Result<String, LineageCliError> {
    let lower = s.to_ascii_lowercase();
    if is_node_id(&lower) {
        return Ok(lower);
    }
    match parse_model_version(s) {
        Ok((name, version)) => Ok(context_id(
            ContextKind::ModelVersion,
            &model_version_name(&name, version),
        )),
        Err(_) => Err(LineageCliError::NodeRef {
            found: s.to_owned(),
        }),
    }
}

/// Percent-encodes a path segment.
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Renders rows of cells as an aligned table (`wide_headers` only with `wide`).
fn table(
    headers: &[&'static str],
    wide_headers: &[&'static str],
    rows: &[Vec<String>],
    wide: bool,
) -> String {
    let items: Vec<Value> = rows.iter().map(|r| json!(r)).collect();
    Table::new(headers, wide_headers)
        .columns(|row| {
            row.as_array()
                .map(|cells| {
                    cells
                        .iter()
                        .map(|c| c.as_str().unwrap_or_default().to_owned())
                        .collect()
                })
                .unwrap_or_default()
        })
        .render(&items, wide)
}

fn or_dash(s: Option<&str>) -> String {
    match s {
        Some(s) if !s.is_empty() => s.to_owned(),
        _ => "-".to_owned(),
    }
}

/// A JSON value as text: strings without quotes.
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn pairs<'a>(items: impl Iterator<Item = (&'a String, String)>) -> String {
    let text = items
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    if text.is_empty() {
        "-".to_owned()
    } else {
        text
    }
}

/// The first 12 characters of a commit sha (the full one with `wide`).
fn short_rev(rev: &str, wide: bool) -> &str {
    if wide {
        rev
    } else {
        rev.get(..12).unwrap_or(rev)
    }
}

/// The human summary of a provenance. Pure.
pub fn render_provenance(p: &Provenance, wide: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Model version:   {}:{}", p.model, p.version);
    if let Some(a) = &p.model_artifact {
        let digest = a.artifact.digest.as_deref().map(|d| format!(" ({d})"));
        let _ = writeln!(
            out,
            "Model artifact:  {}{}",
            a.artifact.uri,
            if wide {
                digest.unwrap_or_default()
            } else {
                String::new()
            }
        );
    }
    let run = p.run.as_ref().map(|r| {
        let prop = |k: &str| r.properties.get(k).map(value_text);
        let mut text = match (prop("namespace"), prop("workflow")) {
            (Some(ns), Some(wf)) => format!("{ns}/{wf}"),
            _ => format!("uid {}", r.uid),
        };
        if let Some(phase) = prop("phase") {
            let _ = write!(text, " ({phase})");
        }
        if wide {
            let _ = write!(text, " [{}]", r.id);
        }
        text
    });
    let _ = writeln!(
        out,
        "Run:             {}",
        run.unwrap_or_else(|| "-".into())
    );
    let pipeline = match (&p.code.template, &p.code.template_revision) {
        (Some(t), Some(r)) => format!("{t}@{}", short_rev(r, wide)),
        (Some(t), None) => t.clone(),
        (None, _) => "-".to_owned(),
    };
    let _ = writeln!(out, "Pipeline:        {pipeline}");
    let _ = writeln!(
        out,
        "Hyperparameters: {}",
        pairs(p.hyperparameters.iter().map(|(k, v)| (k, v.clone())))
    );
    let _ = writeln!(
        out,
        "Metrics:         {}",
        pairs(p.metrics.registered.iter().map(|(k, v)| (k, value_text(v))))
    );
    if wide && !p.metrics.run_outputs.is_empty() {
        let _ = writeln!(
            out,
            "Run outputs:     {}",
            pairs(p.metrics.run_outputs.iter().map(|(k, v)| (k, v.clone())))
        );
    }
    if p.truncated {
        let _ = writeln!(out, "(the walk hit the node budget: the answer is partial)");
    }

    out.push('\n');
    if p.datasets.is_empty() {
        out.push_str("No datasets recorded upstream.\n");
    } else {
        let rows: Vec<Vec<String>> = p
            .datasets
            .iter()
            .map(|d| {
                vec![
                    d.artifact.name.clone(),
                    d.artifact.uri.clone(),
                    or_dash(d.artifact.digest.as_deref()),
                    d.artifact
                        .size
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        out.push_str(&table(
            &["DATASET", "URI"],
            &["DIGEST", "SIZE"],
            &rows,
            wide,
        ));
    }

    out.push('\n');
    if p.code.images.is_empty() {
        out.push_str("No images recorded upstream.\n");
    } else {
        let rows: Vec<Vec<String>> = p
            .code
            .images
            .iter()
            .map(|i| {
                vec![
                    i.template.clone(),
                    or_dash(Some(&i.image)),
                    or_dash(i.image_digest.as_deref()),
                ]
            })
            .collect();
        out.push_str(&table(&["STEP", "IMAGE"], &["IMAGE DIGEST"], &rows, wide));
    }

    if wide && !p.executions.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = p
            .executions
            .iter()
            .map(|x| {
                let e = &x.execution;
                vec![
                    e.template.clone(),
                    or_dash(Some(&e.phase)),
                    e.exit_code
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "-".into()),
                    e.attempt.to_string(),
                    x.id.clone(),
                ]
            })
            .collect();
        out.push_str(&table(
            &["TRAINED BY", "PHASE", "EXIT", "ATTEMPT", "ID"],
            &[],
            &rows,
            wide,
        ));
    }
    out
}

/// The human summary of a serving answer. Pure.
pub fn render_serving(s: &Serving, wide: bool) -> String {
    let mut out = String::new();
    let o = &s.object;
    let _ = writeln!(
        out,
        "Workload:        {} {}/{}",
        o.kind, o.namespace, o.name
    );
    let _ = writeln!(
        out,
        "Application:     {} (synced at {})",
        s.application,
        short_rev(&s.revision, wide)
    );
    for p in &s.promotions {
        let prop = |k: &str| p.context.properties.get(k).map(value_text);
        let mut text = p.context.name.clone();
        if let Some(phase) = prop("sync_phase") {
            let _ = write!(text, ", sync {phase}");
        }
        if let Some(at) = prop("healthy_at") {
            let _ = write!(text, ", healthy since {at}");
        }
        let _ = writeln!(out, "Promotion:       {text}");
        if wide && let (Some(repo), Some(path)) = (prop("repo"), prop("path")) {
            let _ = writeln!(out, "                 {repo} {path}");
        }
    }
    if s.models.is_empty() {
        out.push_str("\nThe promotion names no model version with a lineage record.\n");
    }
    for m in &s.models {
        out.push('\n');
        out.push_str(&render_provenance(m, wide));
    }
    out
}

fn node_summary(node: Option<&Node>, wide: bool) -> (String, String, String) {
    match node {
        None => ("-".into(), "(not captured)".into(), String::new()),
        Some(Node::Artifact(a)) => {
            let ty = serde_json::to_value(a.type_)
                .ok()
                .map(|v| value_text(&v))
                .unwrap_or_else(|| "artifact".into());
            let mut detail = a.uri.clone();
            if wide && let Some(d) = &a.digest {
                let _ = write!(detail, " {d}");
            }
            (ty, a.name.clone(), detail)
        }
        Some(Node::Execution(x)) => {
            let mut detail = format!("{} ({})", x.image, or_dash(Some(&x.phase)));
            if wide && let Some(d) = &x.image_digest {
                detail = format!("{} {d} ({})", x.image, or_dash(Some(&x.phase)));
            }
            (
                "execution".into(),
                format!("{}/{} {}", x.namespace, x.workflow, x.template),
                detail,
            )
        }
        Some(Node::Context(c)) => {
            let ty = serde_json::to_value(c.kind)
                .ok()
                .map(|v| value_text(&v))
                .unwrap_or_else(|| "context".into());
            let detail = if wide {
                pairs(c.properties.iter().map(|(k, v)| (k, value_text(v))))
            } else {
                String::new()
            };
            (ty, c.name.clone(), detail)
        }
    }
}

/// The nodes and edges tables of a subgraph. Pure.
pub fn render_subgraph(g: &Subgraph, wide: bool) -> String {
    let mut out = String::new();
    let rows: Vec<Vec<String>> = g
        .nodes
        .iter()
        .map(|n| {
            let (ty, name, detail) = node_summary(n.node.as_ref(), wide);
            vec![
                n.id.clone(),
                n.hops.to_string(),
                ty,
                name,
                or_dash(Some(&detail)),
            ]
        })
        .collect();
    out.push_str(&table(
        &["ID", "HOPS", "TYPE", "NAME"],
        &["DETAIL"],
        &rows,
        wide,
    ));
    out.push('\n');
    if g.edges.is_empty() {
        out.push_str("No edges.\n");
    } else {
        let rows: Vec<Vec<String>> = g
            .edges
            .iter()
            .map(|e| {
                let kind = serde_json::to_value(e.kind)
                    .ok()
                    .map(|v| value_text(&v))
                    .unwrap_or_default();
                vec![e.from.clone(), kind, e.to.clone()]
            })
            .collect();
        out.push_str(&table(&["FROM", "KIND", "TO"], &[], &rows, wide));
    }
    if g.truncated {
        out.push_str("(the walk hit the node budget: the graph is partial)\n");
    }
    out
}

fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    v: Value,
) -> Result<T, LineageCliError> {
    serde_json::from_value(v).map_err(|source| LineageCliError::Decode { what, source })
}

/// Prints an answer: the server's JSON/YAML, or the rendered text.
fn print_answer<T: serde::de::DeserializeOwned>(
    what: &'static str,
    answer: Value,
    format: OutputFormat,
    render: impl Fn(&T, bool) -> String,
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Table | OutputFormat::Wide => {
            let typed: T = decode(what, answer)?;
            print!("{}", render(&typed, format == OutputFormat::Wide));
            Ok(())
        }
        other => output::print_value(&answer, other),
    }
}

/// Writes `text` to `path` through a temporary file in the same directory and a rename, so a
/// failed export never leaves a half-written file under the name asked for.
fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut name = path
        .file_name()
        .with_context(|| format!("--file {}: expected a file path", path.display()))?
        .to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

/// Runs a `cairn lineage` command.
pub async fn run(command: LineageCommand) -> anyhow::Result<()> {
    // Parse before connecting: argument errors need no login.
    match command {
        LineageCommand::Model { version, output } => {
            let (name, v) = parse_model_version(&version)?;
            let client = Client::current()?;
            let answer = client
                .get(&format!("/api/v1/lineage/models/{}/{v}", segment(&name)))
                .await?;
            print_answer::<Provenance>("provenance", answer, output.unwrap_or_default(), |p, w| {
                render_provenance(p, w)
            })
        }
        LineageCommand::Serving {
            workload,
            namespace,
            output,
        } => {
            let (kind, name) = parse_workload(&workload)?;
            let client = Client::current()?;
            let answer = client
                .get(&format!(
                    "/api/v1/lineage/serving/{}/{kind}/{}",
                    segment(&namespace),
                    segment(&name)
                ))
                .await?;
            print_answer::<Serving>("serving", answer, output.unwrap_or_default(), |s, w| {
                render_serving(s, w)
            })
        }
        LineageCommand::Graph {
            from,
            hops,
            direction,
            output,
        } => {
            let id = resolve_from(&from)?;
            if hops > MAX_HOPS {
                return Err(LineageCliError::Hops { found: hops }.into());
            }
            let client = Client::current()?;
            let answer = client
                .get(&format!(
                    "/api/v1/lineage/graph?from={}&hops={hops}&direction={}",
                    segment(&id),
                    direction.as_str()
                ))
                .await?;
            print_answer::<Subgraph>("graph", answer, output.unwrap_or_default(), |g, w| {
                render_subgraph(g, w)
            })
        }
        LineageCommand::Export { file } => {
            let client = Client::current()?;
            let answer = client.get("/api/v1/lineage/export").await?;
            let text = serde_json::to_string_pretty(&answer).context("rendering JSON")?;
            match file {
                Some(path) => {
                    write_file(&path, &format!("{text}\n"))?;
                    let nodes = answer
                        .get("nodes")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                    let edges = answer
                        .get("edges")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                    eprintln!(
                        "exported {nodes} nodes and {edges} edges to {}",
                        path.display()
                    );
                }
                None => println!("{text}"),
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: LineageCommand,
    }

    #[test]
    fn model_versions_parse_and_errors_name_what_was_expected() {
        assert_eq!(
            parse_model_version("recommender:3").expect("valid"),
            ("recommender".to_owned(), 3)
        );
        for (bad, field, expected) in [
            (
                "recommender",
                "NAME:VERSION",
                "NAME:VERSION, e.g. recommender:3",
            ),
            (":3", "name", "a model name before ':'"),
            ("recommender:", "version", "a positive integer after ':'"),
            ("recommender:0", "version", "a positive integer after ':'"),
            ("recommender:v3", "version", "a positive integer after ':'"),
            ("recommender:+3", "version", "a positive integer after ':'"),
            (
                "recommender:prod",
                "version",
                "a positive integer after ':'",
            ),
        ] {
            let err = parse_model_version(bad).expect_err(bad);
            assert_eq!(err.metric_label(), "invalid_model_ref");
            assert_eq!(
                err.to_string(),
                format!("model version {bad:?}: {field}: expected {expected}")
            );
        }
    }

    #[test]
    fn workloads_parse_like_kubectl() {
        for (given, kind) in [
            ("deployment/web", "deployment"),
            ("Deployment/web", "deployment"),
            ("deployments/web", "deployment"),
            ("deploy/web", "deployment"),
            ("sts/web", "statefulset"),
            ("statefulsets/web", "statefulset"),
            ("ds/web", "daemonset"),
            ("rs/web", "replicaset"),
            ("po/web", "pod"),
            ("pods/web", "pod"),
            ("svc/web", "service"),
            ("cm/web", "configmap"),
            ("jobs/web", "job"),
            ("cj/web", "cronjob"),
            ("rollouts/web", "rollout"),
        ] {
            assert_eq!(
                parse_workload(given).expect(given),
                (kind, "web".to_owned()),
                "{given}"
            );
        }
        let err = parse_workload("web").expect_err("no kind");
        assert!(
            err.to_string().contains("KIND/NAME: expected KIND/NAME"),
            "{err}"
        );
        let err = parse_workload("secret/web").expect_err("secret");
        assert_eq!(err.metric_label(), "invalid_workload");
        assert!(
            err.to_string()
                .starts_with("workload \"secret/web\": kind: expected one of deployment"),
            "{err}"
        );
        for bad in ["deployment/", "deployment/Web", "deployment/a/b"] {
            let err = parse_workload(bad).expect_err(bad);
            assert!(
                err.to_string()
                    .contains(": name: expected a Kubernetes object name"),
                "{err}"
            );
        }
    }

    #[test]
    fn from_takes_node_ids_or_model_versions() {
        let id = format!("x:{}", "ab".repeat(16));
        assert_eq!(resolve_from(&id).expect("id"), id);
        assert_eq!(
            resolve_from(&format!("C:{}", "AB".repeat(16))).expect("upper"),
            format!("c:{}", "ab".repeat(16))
        );
        assert_eq!(
            resolve_from("recommender:3").expect("model version"),
            context_id(ContextKind::ModelVersion, "recommender/3")
        );
        for bad in ["x:abc", "recommender", "q:"] {
            let err = resolve_from(bad).expect_err(bad);
            assert_eq!(err.metric_label(), "invalid_node_ref");
            assert!(
                err.to_string().contains("expected a lineage node id"),
                "{err}"
            );
        }
    }

    #[test]
    fn command_line_parses() {
        let cli = Cli::try_parse_from([
            "lineage",
            "serving",
            "deployment/recommender",
            "-n",
            "ml",
            "-o",
            "wide",
        ])
        .expect("serving");
        match cli.command {
            LineageCommand::Serving {
                workload,
                namespace,
                output,
            } => {
                assert_eq!(workload, "deployment/recommender");
                assert_eq!(namespace, "ml");
                assert_eq!(output, Some(OutputFormat::Wide));
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from([
            "lineage",
            "graph",
            "--from",
            "recommender:3",
            "--hops",
            "2",
            "--direction",
            "up",
        ])
        .expect("graph");
        match cli.command {
            LineageCommand::Graph {
                from,
                hops,
                direction,
                ..
            } => {
                assert_eq!((from.as_str(), hops), ("recommender:3", 2));
                assert_eq!(direction, GraphDirection::Up);
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(
            Cli::try_parse_from(["lineage", "graph", "--from", "a", "--direction", "left"])
                .is_err()
        );
        assert!(Cli::try_parse_from(["lineage", "model", "recommender:3", "-o", "table"]).is_err());
    }

    fn provenance() -> Provenance {
        let execution = json!({
            "id": format!("x:{}", "11".repeat(16)),
            "namespace": "ml", "workflow": "recommender-pipeline-x7k2", "workflow_uid": "uid-1",
            "node_id": "recommender-pipeline-x7k2-1", "template": "train", "attempt": 0,
            "image": "registry.local/bookstore-train:1.0",
            "image_digest": "registry.local/bookstore-train@sha256:aaaa",
            "command": ["python", "train.py"], "inputs": {"seed": "7", "top_k": "20"},
            "outputs": {}, "exit_code": 0, "phase": "Succeeded"
        });
        decode(
            "provenance",
            json!({
                "model": "recommender",
                "version": 3,
                "model_version": {"id": format!("c:{}", "22".repeat(16)), "kind": "model_version",
                                  "name": "recommender/3", "properties": {"metrics": {"score": 0.41}}},
                "model_artifact": {"id": format!("a:{}", "33".repeat(16)), "name": "recommender",
                                   "uri": "s3://models/recommender/3", "digest": "sha256:bbbb",
                                   "type": "model"},
                "executions": [execution],
                "registered_by": null,
                "datasets": [{"id": format!("a:{}", "44".repeat(16)), "name": "dataset",
                              "uri": "s3://data/books.csv", "digest": "sha256:cccc", "size": 1024,
                              "type": "dataset"}],
                "code": {"template": "recommender-pipeline",
                         "template_revision": "0123456789abcdef0123456789abcdef01234567",
                         "images": [{"template": "train", "image": "registry.local/bookstore-train:1.0",
                                     "image_digest": "registry.local/bookstore-train@sha256:aaaa"}]},
                "hyperparameters": {"seed": "7", "top_k": "20"},
                "metrics": {"registered": {"score": 0.41}, "run_outputs": {"eval.score": "0.41"}},
                "run": {"id": format!("c:{}", "55".repeat(16)), "uid": "uid-1",
                        "properties": {"namespace": "ml", "workflow": "recommender-pipeline-x7k2",
                                       "phase": "Succeeded"}},
                "truncated": false
            }),
        )
        .expect("a provenance answer")
    }

    #[test]
    fn provenance_summary_and_wide_table() {
        let p = provenance();
        let text = render_provenance(&p, false);
        assert!(
            text.contains("recommender-pipeline@0123456789ab\n"),
            "{text}"
        );
        assert!(!text.contains("sha256:cccc"), "{text}");
        insta::assert_snapshot!("provenance", text);
        let wide = render_provenance(&p, true);
        for needed in [
            "s3://data/books.csv",
            "sha256:cccc",
            "registry.local/bookstore-train@sha256:aaaa",
            "recommender-pipeline@0123456789abcdef0123456789abcdef01234567",
            "seed=7, top_k=20",
            "score=0.41",
            "eval.score=0.41",
        ] {
            assert!(wide.contains(needed), "{needed} missing from\n{wide}");
        }
        insta::assert_snapshot!("provenance_wide", wide);
    }

    #[test]
    fn serving_answer_renders_the_model_and_its_provenance() {
        let s: Serving = decode(
            "serving",
            json!({
                "object": {"namespace": "ml", "kind": "Deployment", "name": "recommender",
                           "tracking_id": "recommender-prod:apps/Deployment:ml/recommender"},
                "application": "recommender-prod",
                "revision": "fedcba9876543210fedcba9876543210fedcba98",
                "promotions": [{"id": format!("c:{}", "66".repeat(16)), "kind": "promotion",
                                "name": "recommender/prod@fedcba9876543210fedcba9876543210fedcba98",
                                "properties": {"sync_phase": "Succeeded",
                                               "healthy_at": "2026-12-07T02:10:00Z",
                                               "repo": "http://git.local/gitops.git",
                                               "path": "apps/recommender/values/prod.yaml"}}],
                "models": [serde_json::to_value(provenance()).expect("serializes")]
            }),
        )
        .expect("a serving answer");
        let text = render_serving(&s, false);
        assert!(text.contains("Model version:   recommender:3"), "{text}");
        insta::assert_snapshot!("serving", text);
        let wide = render_serving(&s, true);
        assert!(wide.contains("apps/recommender/values/prod.yaml"), "{wide}");
        assert!(wide.contains("sha256:cccc"), "{wide}");
    }

    #[test]
    fn subgraph_renders_nodes_and_edges() {
        let p = provenance();
        let g: Subgraph = decode(
            "graph",
            json!({
                "from": p.model_version.id,
                "nodes": [
                    {"id": p.model_version.id, "hops": 0,
                     "node": {"node": "context", "kind": "model_version", "name": "recommender/3",
                              "properties": {"version": 3}}},
                    {"id": format!("a:{}", "33".repeat(16)), "hops": 1,
                     "node": {"node": "artifact", "name": "recommender", "uri": "s3://models/recommender/3",
                              "digest": "sha256:bbbb", "type": "model"}},
                    {"id": format!("x:{}", "77".repeat(16)), "hops": 1, "node": null}
                ],
                "edges": [
                    {"from": format!("a:{}", "33".repeat(16)), "to": p.model_version.id, "kind": "member"},
                    {"from": format!("x:{}", "77".repeat(16)), "to": p.model_version.id, "kind": "produced"}
                ],
                "truncated": true
            }),
        )
        .expect("a graph answer");
        let text = render_subgraph(&g, false);
        assert!(text.contains("(not captured)"), "{text}");
        assert!(
            text.ends_with("(the walk hit the node budget: the graph is partial)\n"),
            "{text}"
        );
        insta::assert_snapshot!("graph", text);
        let wide = render_subgraph(&g, true);
        assert!(
            wide.contains("s3://models/recommender/3 sha256:bbbb"),
            "{wide}"
        );
        assert!(wide.contains("version=3"), "{wide}");
    }

    #[test]
    fn answers_of_another_shape_are_reported() {
        let err = decode::<Provenance>("provenance", json!({"model": "recommender"}))
            .expect_err("missing fields");
        assert_eq!(err.metric_label(), "decode");
        assert!(
            err.to_string()
                .starts_with("the server's provenance answer cannot be read"),
            "{err}"
        );
    }

    #[test]
    fn export_file_is_replaced_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lineage.json");
        std::fs::write(&path, "old").expect("seed");
        write_file(&path, "{}\n").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{}\n");
        assert!(!dir.path().join("lineage.json.tmp").exists());
        assert!(write_file(Path::new("/"), "{}").is_err());
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("recommender"), "recommender");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
