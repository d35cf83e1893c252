//! `cairn wf ...` and `cairn cron ...`: the `argo` CLI's workflow commands over cairn's API.
//!
//! Mirrors `argo`: `submit FILE | --from workflowtemplate/NAME | --from cronworkflow/NAME
//! [-p k=v] [--wait] [--watch]`, `list`, `get` (with the node tree), `logs [--follow]`,
//! `delete`, `suspend`, `resume`, `stop`, `terminate`, `retry`, `resubmit`,
//! `template list|get|create`, and `cron list|get|suspend|resume`. `--wait` exits non-zero
//! unless the workflow Succeeded, as `argo submit --wait` does.
//!
//! The node tree ([`render_tree`]) is pure: a function of the Workflow and the current time.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use super::output::{self, OutputFormat, Table, print_value};
use super::{Client, check};
use crate::workflow::actions::{apply_submit_parameters, is_completed, parse_parameters};
use crate::workflow::types::Workflow;

/// `cairn wf` subcommands.
#[derive(Debug, Subcommand)]
pub enum WfCommand {
    /// Submit Workflows from a file, or one from a WorkflowTemplate or CronWorkflow.
    Submit {
        /// YAML or JSON file(s) with Workflows (several documents allowed).
        files: Vec<PathBuf>,
        /// `workflowtemplate/NAME`, `clusterworkflowtemplate/NAME` or `cronworkflow/NAME`.
        #[arg(long, conflicts_with = "files")]
        from: Option<String>,
        /// Namespace.
        #[arg(short = 'n', long, env = "CAIRN_NAMESPACE", default_value = "default")]
        namespace: String,
        /// Parameter `NAME=VALUE` (repeatable).
        #[arg(short = 'p', long = "parameter")]
        parameters: Vec<String>,
        /// `metadata.generateName` of the new Workflow.
        #[arg(long)]
        generate_name: Option<String>,
        /// Controller instance id: the Workflow is labelled for the controller run with this
        /// `[workflow] instance_id` (Argo's `--instanceid`).
        #[arg(long = "instanceid")]
        instance_id: Option<String>,
        /// Wait until the workflow completes; fail unless it Succeeded.
        #[arg(long)]
        wait: bool,
        /// Draw the node tree until the workflow completes.
        #[arg(long)]
        watch: bool,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// List Workflows.
    List {
        /// Namespace (default: all namespaces).
        #[arg(short = 'n', long, env = "CAIRN_NAMESPACE")]
        namespace: Option<String>,
        /// Label selector.
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// Archived workflows instead of live ones.
        #[arg(long)]
        archived: bool,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// Show one Workflow and its node tree.
    Get {
        /// Workflow name.
        name: String,
        /// Namespace.
        #[arg(short = 'n', long, env = "CAIRN_NAMESPACE", default_value = "default")]
        namespace: String,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// Print the logs of every step (live, or archived once pods are gone).
    Logs {
        /// Workflow name.
        name: String,
        /// Namespace.
        #[arg(short = 'n', long, env = "CAIRN_NAMESPACE", default_value = "default")]
        namespace: String,
        /// Keep streaming until the workflow completes.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only this node id.
        #[arg(long)]
        node: Option<String>,
    },
    /// Delete a Workflow.
    Delete {
        /// Workflow name.
        name: String,
        /// Namespace.
        #[arg(short = 'n', long, env = "CAIRN_NAMESPACE", default_value = "default")]
        namespace: String,
    },
    /// Suspend a Workflow.
    Suspend(ActionArgs),
    /// Resume a suspended Workflow.
    Resume(ActionArgs),
    /// Stop a Workflow (exit handlers run).
    Stop(ActionArgs),
    /// Terminate a Workflow (exit handlers do not run).
    Terminate(ActionArgs),
    /// Retry a Failed/Error Workflow: only failed nodes run again.
    Retry(ActionArgs),
    /// Submit a new Workflow from an old one's spec.
    Resubmit(ActionArgs),
    /// WorkflowTemplates.
    Template {
        #[command(subcommand)]
        command: TemplateCommand,
    },
}

/// Arguments of the action commands.
#[derive(Debug, clap::Args)]
pub struct ActionArgs {
    /// Workflow name.
    pub name: String,
    /// Namespace.
    #[arg(short = 'n', long, env = "CAIRN_NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// Parameter `NAME=VALUE` (retry, resubmit).
    #[arg(short = 'p', long = "parameter")]
    pub parameters: Vec<String>,
}

/// `cairn wf template` subcommands.
#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// List WorkflowTemplates.
    List {
        /// Namespace.
        #[arg(short = 'n', long, env = "CAIRN_NAMESPACE", default_value = "default")]
        namespace: String,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// Show a WorkflowTemplate.
    Get {
        /// Name.
        name: String,
        /// Namespace.
        #[arg(short = 'n', long, env = "CAIRN_NAMESPACE", default_value = "default")]
        namespace: String,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// Create WorkflowTemplates from a file (validated first).
    Create {
        /// YAML or JSON file.
        file: PathBuf,
        /// Namespace.
        #[arg(short = 'n', long, env = "CAIRN_NAMESPACE", default_value = "default")]
        namespace: String,
    },
}

/// `cairn cron` subcommands.
#[derive(Debug, Subcommand)]
pub enum CronCommand {
    /// List CronWorkflows.
    List {
        /// Namespace.
        #[arg(short = 'n', long, env = "CAIRN_NAMESPACE", default_value = "default")]
        namespace: String,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// Show a CronWorkflow.
    Get {
        /// Name.
        name: String,
        /// Namespace.
        #[arg(short = 'n', long, env = "CAIRN_NAMESPACE", default_value = "default")]
        namespace: String,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// Stop scheduling.
    Suspend {
        /// Name.
        name: String,
        /// Namespace.
        #[arg(short = 'n', long, env = "CAIRN_NAMESPACE", default_value = "default")]
        namespace: String,
    },
    /// Schedule again.
    Resume {
        /// Name.
        name: String,
        /// Namespace.
        #[arg(short = 'n', long, env = "CAIRN_NAMESPACE", default_value = "default")]
        namespace: String,
    },
}

/// Reads every document of a YAML or JSON file.
pub fn read_documents(path: &std::path::Path) -> anyhow::Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if text.trim_start().starts_with('{') {
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        return Ok(vec![v]);
    }
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .with_context(|| format!("{} is not valid YAML", path.display()))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

fn wf_table() -> Table {
    Table::new(
        &["NAMESPACE", "NAME", "STATUS", "AGE", "DURATION"],
        &["FINISHED", "MESSAGE"],
    )
    .columns(|w| {
        vec![
            output::field(w, "/metadata/namespace"),
            output::field(w, "/metadata/name"),
            output::field(w, "/status/phase"),
            output::field(w, "/status/startedAt"),
            duration_text(
                w.pointer("/status/startedAt").and_then(Value::as_str),
                w.pointer("/status/finishedAt").and_then(Value::as_str),
                jiff::Timestamp::now(),
            ),
            output::field(w, "/status/finishedAt"),
            output::field(w, "/status/message"),
        ]
    })
}

fn archived_table() -> Table {
    Table::new(&["NAMESPACE", "NAME", "STATUS", "FINISHED", "UID"], &[]).columns(|w| {
        vec![
            output::field(w, "/namespace"),
            output::field(w, "/name"),
            output::field(w, "/phase"),
            output::field(w, "/finishedAt"),
            output::field(w, "/uid"),
        ]
    })
}

/// `1h2m3s`-style duration between two RFC 3339 times (`now` when not finished).
pub fn duration_text(
    started: Option<&str>,
    finished: Option<&str>,
    now: jiff::Timestamp,
) -> String {
    let Some(start) = started.and_then(|s| s.parse::<jiff::Timestamp>().ok()) else {
        return "-".into();
    };
    let end = finished
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .unwrap_or(now);
    let secs = end.duration_since(start).as_secs().max(0);
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

fn phase_mark(phase: &str) -> &'static str {
    match phase {
        "Succeeded" => "✔",
        "Failed" | "Error" => "✖",
        "Running" => "●",
        "Pending" => "◷",
        "Skipped" | "Omitted" => "○",
        _ => "?",
    }
}

/// The node tree of a Workflow as `argo get` prints it: one line per node (each once), with
/// its phase, template and duration, indented under its parent.
pub fn render_tree(wf: &Value, now: jiff::Timestamp) -> String {
    let nodes = wf
        .pointer("/status/nodes")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let name = wf
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut out = String::new();
    let mut seen = BTreeSet::new();
    let mut stack: Vec<(String, usize)> = Vec::new();
    // Roots: the workflow's node and the exit handler's.
    let mut roots: Vec<String> = nodes
        .iter()
        .filter(|(_, n)| {
            let node_name = n.get("name").and_then(Value::as_str).unwrap_or_default();
            node_name == name || node_name == format!("{name}.onExit")
        })
        .map(|(id, _)| id.clone())
        .collect();
    roots.sort_by_key(|id| id != name);
    for root in roots.into_iter().rev() {
        stack.push((root, 0));
    }
    while let Some((id, depth)) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        let Some(n) = nodes.get(&id) else { continue };
        let text = |k: &str| n.get(k).and_then(Value::as_str).unwrap_or_default();
        let phase = text("phase");
        let label = if text("displayName").is_empty() {
            text("name")
        } else {
            text("displayName")
        };
        let template = if text("templateName").is_empty() {
            n.pointer("/templateRef/template")
                .and_then(Value::as_str)
                .unwrap_or_default()
        } else {
            text("templateName")
        };
        let duration = duration_text(
            n.get("startedAt").and_then(Value::as_str),
            n.get("finishedAt").and_then(Value::as_str),
            now,
        );
        let mut line = format!(
            "{}{} {label}  {template}  {phase}  {duration}",
            "  ".repeat(depth),
            phase_mark(phase)
        );
        if !text("message").is_empty() {
            line.push_str("  ");
            line.push_str(text("message"));
        }
        out.push_str(line.trim_end());
        out.push('\n');
        let children: Vec<String> = n
            .get("children")
            .and_then(Value::as_array)
            .map(|c| {
                c.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        for child in children.into_iter().rev() {
            stack.push((child, depth + 1));
        }
    }
    out
}

fn print_workflow(wf: &Value, format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Table | OutputFormat::Wide => {
            let field = |p: &str| output::field(wf, p);
            println!("Name:        {}", field("/metadata/name"));
            println!("Namespace:   {}", field("/metadata/namespace"));
            println!("Status:      {}", field("/status/phase"));
            if wf.pointer("/status/message").is_some() {
                println!("Message:     {}", field("/status/message"));
            }
            println!("Started:     {}", field("/status/startedAt"));
            println!("Finished:    {}", field("/status/finishedAt"));
            println!(
                "Duration:    {}",
                duration_text(
                    wf.pointer("/status/startedAt").and_then(Value::as_str),
                    wf.pointer("/status/finishedAt").and_then(Value::as_str),
                    jiff::Timestamp::now()
                )
            );
            let tree = render_tree(wf, jiff::Timestamp::now());
            if !tree.is_empty() {
                println!();
                print!("{tree}");
            }
            Ok(())
        }
        other => print_value(wf, other),
    }
}

fn phase_of(wf: &Value) -> Option<&str> {
    wf.pointer("/status/phase").and_then(Value::as_str)
}

/// Polls until the workflow completes; with `watch`, redraws its tree each time.
async fn wait_for(
    client: &Client,
    namespace: &str,
    name: &str,
    watch: bool,
) -> anyhow::Result<Value> {
    loop {
        let wf = client
            .get(&format!("/api/v1/workflows/{namespace}/{name}"))
            .await?;
        if watch {
            // Clear the screen and draw the tree again (as `argo watch`).
            print!("\x1b[2J\x1b[H");
            print_workflow(&wf, OutputFormat::Table)?;
            let _ = std::io::stdout().flush();
        }
        if is_completed(phase_of(&wf)) {
            return Ok(wf);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Runs a `cairn wf` command.
pub async fn run(command: WfCommand) -> anyhow::Result<()> {
    let client = Client::current()?;
    match command {
        WfCommand::Submit {
            files,
            from,
            namespace,
            parameters,
            generate_name,
            instance_id,
            wait,
            watch,
            output,
        } => {
            let format = output.unwrap_or_default();
            let params = parse_parameters(&parameters)?;
            let mut created: Vec<Value> = Vec::new();
            if let Some(from) = from {
                let (kind, name) = from.split_once('/').with_context(|| {
                    format!("--from {from:?}: expected KIND/NAME, e.g. workflowtemplate/train")
                })?;
                let labels = instance_id
                    .as_ref()
                    .map(|id| format!("{}={id}", crate::workflow::controller::LABEL_INSTANCE_ID));
                let body = json!({
                    "resourceKind": kind,
                    "resourceName": name,
                    "submitOptions": {
                        "parameters": parameters,
                        "generateName": generate_name,
                        "labels": labels,
                    },
                });
                created.push(
                    client
                        .send(
                            reqwest::Method::POST,
                            &format!("/api/v1/workflows/{namespace}/submit"),
                            body,
                        )
                        .await?,
                );
            } else {
                if files.is_empty() {
                    bail!("give a file to submit, or --from KIND/NAME");
                }
                for file in &files {
                    for doc in read_documents(file)? {
                        let mut wf: Workflow = serde_json::from_value(doc).with_context(|| {
                            format!("{}: a document is not a Workflow", file.display())
                        })?;
                        apply_submit_parameters(&mut wf, &params);
                        if let Some(id) = &instance_id {
                            wf.metadata
                                .labels
                                .get_or_insert_with(Default::default)
                                .insert(
                                    crate::workflow::controller::LABEL_INSTANCE_ID.to_owned(),
                                    id.clone(),
                                );
                        }
                        if let Some(g) = &generate_name {
                            wf.metadata.generate_name = Some(g.clone());
                            wf.metadata.name = None;
                        }
                        let ns = wf
                            .metadata
                            .namespace
                            .clone()
                            .unwrap_or_else(|| namespace.clone());
                        created.push(
                            client
                                .send(
                                    reqwest::Method::POST,
                                    &format!("/api/v1/workflows/{ns}"),
                                    json!({ "workflow": wf }),
                                )
                                .await?,
                        );
                    }
                }
            }
            let mut failed = Vec::new();
            for wf in &created {
                let name = wf
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let ns = wf
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or(&namespace)
                    .to_owned();
                if !(wait || watch) {
                    print_workflow(wf, format)?;
                    continue;
                }
                let done = wait_for(&client, &ns, &name, watch).await?;
                if !watch {
                    print_workflow(&done, format)?;
                }
                if phase_of(&done) != Some("Succeeded") {
                    failed.push(format!("{ns}/{name} {}", phase_of(&done).unwrap_or("?")));
                }
            }
            if !failed.is_empty() {
                bail!("workflow did not succeed: {}", failed.join(", "));
            }
            Ok(())
        }
        WfCommand::List {
            namespace,
            selector,
            archived,
            output,
        } => {
            let format = output.unwrap_or_default();
            let mut query: Vec<String> = Vec::new();
            if let Some(s) = &selector {
                query.push(format!("labelSelector={}", urlencode(s)));
            }
            if archived {
                if let Some(ns) = &namespace {
                    query.push(format!("namespace={}", urlencode(ns)));
                }
                let list = client
                    .get(&format!("/api/v1/archived-workflows?{}", query.join("&")))
                    .await?;
                return archived_table().print_list(&list, format);
            }
            let path = match &namespace {
                Some(ns) => format!("/api/v1/workflows/{ns}?{}", query.join("&")),
                None => format!("/api/v1/workflows?{}", query.join("&")),
            };
            let list = client.get(&path).await?;
            wf_table().print_list(&list, format)
        }
        WfCommand::Get {
            name,
            namespace,
            output,
        } => {
            let wf = client
                .get(&format!("/api/v1/workflows/{namespace}/{name}"))
                .await?;
            print_workflow(&wf, output.unwrap_or_default())
        }
        WfCommand::Logs {
            name,
            namespace,
            follow,
            node,
        } => logs(&client, &namespace, &name, follow, node.as_deref()).await,
        WfCommand::Delete { name, namespace } => {
            client
                .send(
                    reqwest::Method::DELETE,
                    &format!("/api/v1/workflows/{namespace}/{name}"),
                    json!({}),
                )
                .await?;
            println!("Workflow '{name}' deleted");
            Ok(())
        }
        WfCommand::Suspend(a) => action(&client, "suspend", a).await,
        WfCommand::Resume(a) => action(&client, "resume", a).await,
        WfCommand::Stop(a) => action(&client, "stop", a).await,
        WfCommand::Terminate(a) => action(&client, "terminate", a).await,
        WfCommand::Retry(a) => action(&client, "retry", a).await,
        WfCommand::Resubmit(a) => action(&client, "resubmit", a).await,
        WfCommand::Template { command } => template(&client, command).await,
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn action(client: &Client, verb: &str, a: ActionArgs) -> anyhow::Result<()> {
    parse_parameters(&a.parameters)?;
    let wf = client
        .send(
            reqwest::Method::PUT,
            &format!("/api/v1/workflows/{}/{}/{verb}", a.namespace, a.name),
            json!({ "parameters": a.parameters }),
        )
        .await?;
    let new_name = wf
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or(&a.name);
    match verb {
        "resubmit" => println!("Workflow '{new_name}' submitted (from '{}')", a.name),
        _ => println!("workflow {} {verb}", a.name),
    }
    Ok(())
}

async fn logs(
    client: &Client,
    namespace: &str,
    name: &str,
    follow: bool,
    node: Option<&str>,
) -> anyhow::Result<()> {
    let mut url = format!(
        "{}/api/v1/workflows/{namespace}/{name}/log?follow={follow}",
        client.server
    );
    if let Some(n) = node {
        url.push_str(&format!("&nodeId={}", urlencode(n)));
    }
    // No overall timeout: a followed log lasts as long as the workflow.
    let http = reqwest::Client::builder()
        .user_agent(concat!("cairn-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")?;
    let resp = http
        .get(url)
        .bearer_auth(&client.token)
        .send()
        .await
        .with_context(|| format!("connecting to {}", client.server))?;
    let resp = check(resp).await?;
    let mut resp = resp;
    let mut pending: Vec<u8> = Vec::new();
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = resp.chunk().await.context("reading the log stream")? {
        pending.extend_from_slice(&chunk);
        while let Some(i) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                let pod = v
                    .pointer("/result/podName")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let content = v
                    .pointer("/result/content")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                writeln!(out, "{pod}: {content}")?;
            }
        }
    }
    Ok(())
}

async fn template(client: &Client, command: TemplateCommand) -> anyhow::Result<()> {
    let table = || {
        Table::new(&["NAME", "CREATED"], &[]).columns(|t| {
            vec![
                output::field(t, "/metadata/name"),
                output::field(t, "/metadata/creationTimestamp"),
            ]
        })
    };
    match command {
        TemplateCommand::List { namespace, output } => {
            let list = client
                .get(&format!("/api/v1/workflow-templates/{namespace}"))
                .await?;
            table().print_list(&list, output.unwrap_or_default())
        }
        TemplateCommand::Get {
            name,
            namespace,
            output,
        } => {
            let t = client
                .get(&format!("/api/v1/workflow-templates/{namespace}/{name}"))
                .await?;
            match output.unwrap_or_default() {
                OutputFormat::Table | OutputFormat::Wide => print_value(&t, OutputFormat::Yaml),
                other => print_value(&t, other),
            }
        }
        TemplateCommand::Create { file, namespace } => {
            for doc in read_documents(&file)? {
                let ns = doc
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or(&namespace)
                    .to_owned();
                let created = client
                    .send(
                        reqwest::Method::POST,
                        &format!("/api/v1/workflow-templates/{ns}"),
                        json!({ "template": doc }),
                    )
                    .await?;
                println!(
                    "WorkflowTemplate '{}' created",
                    output::field(&created, "/metadata/name")
                );
            }
            Ok(())
        }
    }
}

/// Runs a `cairn cron` command.
pub async fn run_cron(command: CronCommand) -> anyhow::Result<()> {
    let client = Client::current()?;
    let table = || {
        Table::new(
            &["NAME", "SCHEDULE", "SUSPENDED", "LAST SCHEDULED", "ACTIVE"],
            &["TIMEZONE", "POLICY"],
        )
        .columns(|c| {
            let schedule = c
                .pointer("/spec/schedule")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| output::field(c, "/spec/schedules"));
            vec![
                output::field(c, "/metadata/name"),
                schedule,
                c.pointer("/spec/suspend")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                    .to_string(),
                output::field(c, "/status/lastScheduledTime"),
                c.pointer("/status/active")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
                    .to_string(),
                output::field(c, "/spec/timezone"),
                output::field(c, "/spec/concurrencyPolicy"),
            ]
        })
    };
    match command {
        CronCommand::List { namespace, output } => {
            let list = client
                .get(&format!("/api/v1/cron-workflows/{namespace}"))
                .await?;
            table().print_list(&list, output.unwrap_or_default())
        }
        CronCommand::Get {
            name,
            namespace,
            output,
        } => {
            let c = client
                .get(&format!("/api/v1/cron-workflows/{namespace}/{name}"))
                .await?;
            table().print_one(&c, output.unwrap_or_default())
        }
        CronCommand::Suspend { name, namespace } => {
            cron_action(&client, "suspend", &namespace, &name).await
        }
        CronCommand::Resume { name, namespace } => {
            cron_action(&client, "resume", &namespace, &name).await
        }
    }
}

async fn cron_action(
    client: &Client,
    verb: &str,
    namespace: &str,
    name: &str,
) -> anyhow::Result<()> {
    client
        .send(
            reqwest::Method::PUT,
            &format!("/api/v1/cron-workflows/{namespace}/{name}/{verb}"),
            json!({}),
        )
        .await?;
    println!("CronWorkflow '{name}' {verb}ed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn durations() {
        let now = ts("2026-01-01T01:02:03Z");
        for (start, end, want) in [
            (
                Some("2026-01-01T00:00:00Z"),
                Some("2026-01-01T00:00:05Z"),
                "5s",
            ),
            (
                Some("2026-01-01T00:00:00Z"),
                Some("2026-01-01T00:02:05Z"),
                "2m5s",
            ),
            (Some("2026-01-01T00:00:00Z"), None, "1h2m3s"),
            (None, None, "-"),
            (Some("garbage"), None, "-"),
        ] {
            assert_eq!(duration_text(start, end, now), want, "{start:?} {end:?}");
        }
    }

    #[test]
    fn tree_lists_each_node_once_under_its_parent() {
        let wf = json!({
            "metadata": {"name": "wf"},
            "status": {"nodes": {
                "wf": {"name": "wf", "displayName": "wf", "phase": "Failed", "templateName": "main",
                       "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:30Z",
                       "children": ["wf-a", "wf-b"]},
                "wf-a": {"name": "wf.a", "displayName": "a", "phase": "Succeeded", "templateName": "echo",
                         "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:10Z",
                         "children": ["wf-b"]},
                "wf-b": {"name": "wf.b", "displayName": "b", "phase": "Failed", "templateName": "echo",
                         "message": "Error (exit code 1)",
                         "startedAt": "2026-01-01T00:00:10Z", "finishedAt": "2026-01-01T00:00:30Z"},
                "wf-x": {"name": "wf.onExit", "displayName": "wf.onExit", "phase": "Succeeded",
                         "templateName": "cleanup",
                         "startedAt": "2026-01-01T00:00:30Z", "finishedAt": "2026-01-01T00:00:31Z"}
            }}
        });
        let got = render_tree(&wf, ts("2026-01-01T00:01:00Z"));
        assert_eq!(
            got,
            "✖ wf  main  Failed  30s\n  ✔ a  echo  Succeeded  10s\n    ✖ b  echo  Failed  20s  Error (exit code 1)\n✔ wf.onExit  cleanup  Succeeded  1s\n"
        );
        assert_eq!(
            render_tree(
                &json!({"metadata": {"name": "x"}}),
                ts("2026-01-01T00:00:00Z")
            ),
            ""
        );
    }

    #[test]
    fn documents_from_yaml_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("wf.yaml");
        std::fs::write(
            &yaml,
            "kind: Workflow\nmetadata: {name: a}\n---\nkind: Workflow\nmetadata: {name: b}\n",
        )
        .unwrap();
        let docs = read_documents(&yaml).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1]["metadata"]["name"], "b");
        let js = dir.path().join("wf.json");
        std::fs::write(&js, r#"{"kind": "Workflow"}"#).unwrap();
        assert_eq!(read_documents(&js).unwrap().len(), 1);
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "a: [").unwrap();
        let err = read_documents(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.yaml"), "{err}");
    }

    #[test]
    fn urlencoding() {
        assert_eq!(urlencode("a=b,c!=d"), "a%3Db%2Cc%21%3Dd");
        assert_eq!(urlencode("plain-1.x_~"), "plain-1.x_~");
    }
}
