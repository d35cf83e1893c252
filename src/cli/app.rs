//! `cairn app …`: the client side of Argo CD's `argocd app` commands over cairn's API.
//!
//! Owns the subcommands (`list`, `get`, `diff`, `sync`, `history`, `rollback`, `delete`,
//! `create -f`), their flags (`--prune`, `--dry-run`, `--resource GROUP:KIND:[NAMESPACE/]NAME`,
//! `--async`, `--timeout`, `-o json|yaml|wide`), and the wait loop that shows a sync's progress
//! (the operation state is polled once a second and each resource result is printed when it
//! first appears or changes).
//!
//! The pure pieces (argument parsing, progress lines, phase decisions) are unit-tested; the HTTP
//! calls go through the shared [`Client`](super::Client).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};

use super::Client;
use super::output::{self, OutputFormat, Table};

/// `cairn app` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AppCommand {
    /// List Applications.
    List {
        /// Only this project's Applications.
        #[arg(short = 'p', long, env = "CAIRN_PROJECT")]
        project: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// Show one Application with its resources.
    Get {
        /// Application name.
        name: String,
        /// Refresh first (re-resolve the revision).
        #[arg(long)]
        refresh: bool,
        /// Refresh first, re-rendering the manifests.
        #[arg(long)]
        hard_refresh: bool,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// Show the difference between Git and the cluster, per resource.
    Diff {
        /// Application name.
        name: String,
        /// Refresh first, re-rendering the manifests.
        #[arg(long)]
        hard_refresh: bool,
    },
    /// Sync an Application to its target revision (or `--revision`).
    Sync {
        /// Application name.
        name: String,
        /// Delete resources that are no longer in Git.
        #[arg(long)]
        prune: bool,
        /// Plan only: nothing is changed.
        #[arg(long)]
        dry_run: bool,
        /// Sync only these resources: `GROUP:KIND:NAME` or `GROUP:KIND:NAMESPACE/NAME`
        /// (empty group for core kinds: `:Service:web`). Repeatable.
        #[arg(long = "resource", value_name = "GROUP:KIND:NAME")]
        resources: Vec<String>,
        /// Sync to this revision instead of the target revision.
        #[arg(long)]
        revision: Option<String>,
        /// Sync options for this operation (`Replace=true`, …). Repeatable.
        #[arg(long = "sync-option")]
        sync_options: Vec<String>,
        /// Return once the operation is requested, without waiting.
        #[arg(long = "async")]
        no_wait: bool,
        /// Seconds to wait for the operation (0: no limit).
        #[arg(long, default_value_t = 0)]
        timeout: u64,
        /// Output format of the final state.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// Show the deployment history.
    History {
        /// Application name.
        name: String,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// Roll back to a history id (refused while automated sync is on).
    Rollback {
        /// Application name.
        name: String,
        /// History id (`cairn app history`).
        id: i64,
        /// Delete resources not in that revision.
        #[arg(long)]
        prune: bool,
        /// Plan only.
        #[arg(long)]
        dry_run: bool,
        /// Return once the operation is requested.
        #[arg(long = "async")]
        no_wait: bool,
        /// Seconds to wait (0: no limit).
        #[arg(long, default_value_t = 0)]
        timeout: u64,
    },
    /// Delete an Application (and, with cascade, its resources).
    Delete {
        /// Application name.
        name: String,
        /// Delete the Application's resources too.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        cascade: bool,
        /// `foreground` or `background` deletion of the resources.
        #[arg(long)]
        propagation_policy: Option<String>,
        /// Do not ask for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Create an Application from a manifest file (YAML or JSON).
    Create {
        /// The manifest (`-` for stdin).
        #[arg(short = 'f', long)]
        file: PathBuf,
        /// Update the Application if it exists with another spec.
        #[arg(long)]
        upsert: bool,
        /// Skip the project and destination checks.
        #[arg(long)]
        validate: Option<bool>,
    },
}

/// Runs one `cairn app` command against the current server.
pub async fn run(command: AppCommand) -> anyhow::Result<()> {
    let client = Client::current()?;
    match command {
        AppCommand::List { project, output } => {
            client
                .app_list(project.as_deref(), output.unwrap_or_default())
                .await
        }
        AppCommand::Get {
            name,
            refresh,
            hard_refresh,
            output,
        } => {
            if refresh || hard_refresh {
                let kind = if hard_refresh { "hard" } else { "normal" };
                client
                    .send(
                        Method::POST,
                        &format!("/api/v1/applications/{name}/refresh?refresh={kind}"),
                        json!({}),
                    )
                    .await?;
            }
            let app = client.get(&format!("/api/v1/applications/{name}")).await?;
            print_app(&app, output.unwrap_or_default())
        }
        AppCommand::Diff { name, hard_refresh } => {
            let q = if hard_refresh { "?refresh=hard" } else { "" };
            let diff = client
                .get(&format!("/api/v1/applications/{name}/diff{q}"))
                .await?;
            let text = render_diff(&diff);
            print!("{text}");
            if diff_has_changes(&diff) {
                // `argocd app diff` exits 1 when there are differences.
                bail!("{name}: the cluster differs from Git");
            }
            Ok(())
        }
        AppCommand::Sync {
            name,
            prune,
            dry_run,
            resources,
            revision,
            sync_options,
            no_wait,
            timeout,
            output,
        } => {
            let selected = resources
                .iter()
                .map(|r| parse_resource(r))
                .collect::<Result<Vec<_>, _>>()?;
            let mut body = json!({"prune": prune, "dryRun": dry_run});
            if !selected.is_empty() {
                body["resources"] = json!(selected);
            }
            if let Some(r) = revision {
                body["revision"] = json!(r);
            }
            if !sync_options.is_empty() {
                body["syncOptions"] = json!(sync_options);
            }
            let requested = client
                .send(
                    Method::POST,
                    &format!("/api/v1/applications/{name}/sync"),
                    body,
                )
                .await?;
            if no_wait {
                println!("sync of {name} requested");
                return Ok(());
            }
            let app = wait(&client, &name, timeout, &requested).await?;
            finish(&app, output.unwrap_or_default())
        }
        AppCommand::History { name, output } => {
            let list = client
                .get(&format!("/api/v1/applications/{name}/history"))
                .await?;
            history_table().print_list(&list, output.unwrap_or_default())
        }
        AppCommand::Rollback {
            name,
            id,
            prune,
            dry_run,
            no_wait,
            timeout,
        } => {
            let requested = client
                .send(
                    Method::POST,
                    &format!("/api/v1/applications/{name}/rollback"),
                    json!({"id": id, "prune": prune, "dryRun": dry_run}),
                )
                .await?;
            if no_wait {
                println!("rollback of {name} to {id} requested");
                return Ok(());
            }
            let app = wait(&client, &name, timeout, &requested).await?;
            finish(&app, OutputFormat::Table)
        }
        AppCommand::Delete {
            name,
            cascade,
            propagation_policy,
            yes,
        } => {
            if !yes && std::io::stdin().is_terminal() {
                let what = if cascade {
                    " and all its resources"
                } else {
                    ""
                };
                eprint!("Are you sure you want to delete '{name}'{what}? [y/n] ");
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                if !matches!(line.trim(), "y" | "Y" | "yes") {
                    bail!("deletion of {name} cancelled");
                }
            }
            let mut path = format!("/api/v1/applications/{name}?cascade={cascade}");
            if let Some(p) = propagation_policy {
                path.push_str(&format!("&propagationPolicy={p}"));
            }
            client.send(Method::DELETE, &path, json!({})).await?;
            println!("application '{name}' deleted");
            Ok(())
        }
        AppCommand::Create {
            file,
            upsert,
            validate,
        } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading stdin")?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let manifest = parse_manifest(&text)
                .with_context(|| format!("{}: not an Application manifest", file.display()))?;
            let mut path = format!("/api/v1/applications?upsert={upsert}");
            if let Some(v) = validate {
                path.push_str(&format!("&validate={v}"));
            }
            let app = client.send(Method::POST, &path, manifest).await?;
            println!(
                "application '{}' created",
                output::field(&app, "/metadata/name")
            );
            Ok(())
        }
    }
}

/// Parses `GROUP:KIND:NAME` or `GROUP:KIND:NAMESPACE/NAME` (Argo CD's `--resource`).
pub fn parse_resource(arg: &str) -> anyhow::Result<Value> {
    let parts: Vec<&str> = arg.splitn(3, ':').collect();
    let [group, kind, rest] = parts.as_slice() else {
        bail!("--resource {arg:?}: expected GROUP:KIND:NAME or GROUP:KIND:NAMESPACE/NAME");
    };
    let (namespace, name) = rest.split_once('/').unwrap_or(("", rest));
    if kind.is_empty() || name.is_empty() {
        bail!("--resource {arg:?}: KIND and NAME must not be empty");
    }
    let mut r = json!({"group": group, "kind": kind, "name": name});
    if !namespace.is_empty() {
        r["namespace"] = json!(namespace);
    }
    Ok(r)
}

/// The one Application in a YAML or JSON text.
pub fn parse_manifest(text: &str) -> anyhow::Result<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).context("invalid YAML")?;
    let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
    match docs.as_slice() {
        [one] => {
            let kind = one.get("kind").and_then(Value::as_str).unwrap_or("");
            if kind != "Application" {
                bail!("field `kind`: expected Application, found {kind:?}");
            }
            Ok(one.clone())
        }
        [] => bail!("the file holds no document"),
        many => bail!("expected one document, found {}", many.len()),
    }
}

/// Whether an operation phase is final.
pub fn terminal(phase: &str) -> bool {
    matches!(phase, "Succeeded" | "Failed" | "Error")
}

/// Progress lines for resource results not printed yet (or changed since), keyed by
/// `group/kind/namespace/name`; `seen` is updated.
pub fn progress_lines(app: &Value, seen: &mut BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    let results = app
        .pointer("/status/operationState/syncResult/resources")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for r in &results {
        let f = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let key = format!(
            "{}/{}/{}/{}",
            f("group"),
            f("kind"),
            f("namespace"),
            f("name")
        );
        let state = format!("{} {} {}", f("status"), f("hookPhase"), f("message"));
        if seen.get(&key) == Some(&state) {
            continue;
        }
        seen.insert(key, state);
        let hook = f("hookType");
        let hook = if hook.is_empty() {
            String::new()
        } else {
            format!(" [{hook}]")
        };
        let status = if f("hookPhase").is_empty() {
            f("status")
        } else {
            f("hookPhase")
        };
        out.push(format!(
            "{:<10} {:<22} {:<14} {}{}  {}",
            f("syncPhase"),
            f("kind"),
            status,
            f("name"),
            hook,
            f("message"),
        ));
    }
    out
}

/// Whether the operation requested (the API's answer `requested`, which still shows the
/// previous operation's state) has finished in `app` (pure): `.operation` consumed, a final
/// phase, and that state is not the previous operation's (another start time, or a
/// non-final phase was observed since the request).
pub fn operation_done(app: &Value, requested: &Value, saw_running: bool) -> bool {
    let phase = output::field(app, "/status/operationState/phase");
    let started = output::field(app, "/status/operationState/startedAt");
    let previous = output::field(requested, "/status/operationState/startedAt");
    app.get("operation").is_none_or(Value::is_null)
        && terminal(&phase)
        && (started != previous || saw_running)
}

async fn wait(
    client: &Client,
    name: &str,
    timeout: u64,
    requested: &Value,
) -> anyhow::Result<Value> {
    let start = Instant::now();
    let mut seen = BTreeMap::new();
    let mut last_phase = String::new();
    let mut saw_running = false;
    loop {
        let app = client.get(&format!("/api/v1/applications/{name}")).await?;
        let phase = output::field(&app, "/status/operationState/phase");
        saw_running |=
            phase != "-" && !terminal(&phase) && app.get("operation").is_none_or(Value::is_null);
        if saw_running
            || output::field(&app, "/status/operationState/startedAt")
                != output::field(requested, "/status/operationState/startedAt")
        {
            // Only this operation's results are progress (not the previous one's).
            for line in progress_lines(&app, &mut seen) {
                println!("{line}");
            }
            if phase != last_phase && phase != "-" {
                eprintln!("operation: {phase}");
                last_phase = phase.clone();
            }
        }
        if operation_done(&app, requested, saw_running) {
            return Ok(app);
        }
        if timeout > 0 && start.elapsed() >= Duration::from_secs(timeout) {
            bail!("timed out after {timeout}s waiting for the operation on {name} (phase {phase})");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn finish(app: &Value, format: OutputFormat) -> anyhow::Result<()> {
    let phase = output::field(app, "/status/operationState/phase");
    let message = output::field(app, "/status/operationState/message");
    match format {
        OutputFormat::Json | OutputFormat::Yaml => output::print_value(app, format)?,
        _ => print_app(app, format)?,
    }
    if phase != "Succeeded" {
        bail!("operation {phase}: {message}");
    }
    Ok(())
}

fn print_app(app: &Value, format: OutputFormat) -> anyhow::Result<()> {
    if matches!(format, OutputFormat::Json | OutputFormat::Yaml) {
        return output::print_value(app, format);
    }
    print!("{}", render_app(app));
    Ok(())
}

/// `argocd app get`'s text: summary, conditions, resources.
pub fn render_app(app: &Value) -> String {
    let f = |p: &str| output::field(app, p);
    let mut s = String::new();
    let source = if app.pointer("/spec/sources").is_some() {
        "/spec/sources/0"
    } else {
        "/spec/source"
    };
    let rows = [
        ("Name", f("/metadata/name")),
        ("Project", f("/spec/project")),
        ("Server", f("/spec/destination/server")),
        ("Namespace", f("/spec/destination/namespace")),
        ("Repo", f(&format!("{source}/repoURL"))),
        ("Target", f(&format!("{source}/targetRevision"))),
        ("Path", f(&format!("{source}/path"))),
        (
            "Sync Policy",
            if app.pointer("/spec/syncPolicy/automated").is_some() {
                "Automated".into()
            } else {
                "Manual".into()
            },
        ),
        (
            "Sync Status",
            format!(
                "{} ({})",
                f("/status/sync/status"),
                f("/status/sync/revision")
            ),
        ),
        ("Health Status", f("/status/health/status")),
    ];
    for (k, v) in rows {
        s.push_str(&format!("{:<15}{}\n", format!("{k}:"), v));
    }
    if let Some(op) = app.pointer("/status/operationState") {
        s.push_str(&format!(
            "\nOperation:     {}\nPhase:         {}\nMessage:       {}\n",
            if op.pointer("/operation/sync").is_some() {
                "Sync"
            } else {
                "-"
            },
            output::field(op, "/phase"),
            output::field(op, "/message")
        ));
    }
    let conditions = app
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !conditions.is_empty() {
        s.push_str("\nCONDITION            MESSAGE\n");
        for c in &conditions {
            s.push_str(&format!(
                "{:<20} {}\n",
                output::field(c, "/type"),
                output::field(c, "/message")
            ));
        }
    }
    let resources = app
        .pointer("/status/resources")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !resources.is_empty() {
        s.push('\n');
        s.push_str(&resource_table().render(&resources, false));
    }
    s
}

fn resource_table() -> Table {
    Table::new(
        &["GROUP", "KIND", "NAMESPACE", "NAME", "STATUS", "HEALTH"],
        &[],
    )
    .columns(|r| {
        vec![
            output::field(r, "/group"),
            output::field(r, "/kind"),
            output::field(r, "/namespace"),
            output::field(r, "/name"),
            output::field(r, "/status"),
            output::field(r, "/health/status"),
        ]
    })
}

fn history_table() -> Table {
    Table::new(&["ID", "DATE", "REVISION"], &["INITIATED BY", "SOURCE"]).columns(|h| {
        vec![
            output::field(h, "/id"),
            output::field(h, "/deployedAt"),
            output::field(h, "/revision"),
            output::field(h, "/initiatedBy/username"),
            output::field(h, "/source/repoURL"),
        ]
    })
}

/// Whether a diff answer reports any difference.
pub fn diff_has_changes(diff: &Value) -> bool {
    diff.get("items")
        .and_then(Value::as_array)
        .is_some_and(|items| {
            items
                .iter()
                .any(|i| i.get("modified").and_then(Value::as_bool).unwrap_or(false))
        })
}

/// `argocd app diff`'s text: one `===== group/Kind namespace/name ======` header per changed
/// resource, followed by its unified diff (live → desired).
pub fn render_diff(diff: &Value) -> String {
    let mut s = String::new();
    for item in diff
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if !item
            .get("modified")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            continue;
        }
        let f = |k: &str| {
            item.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        s.push_str(&format!(
            "\n===== {}/{} {}/{} ======\n",
            f("group"),
            f("kind"),
            f("namespace"),
            f("name")
        ));
        s.push_str(&f("diff"));
        if !s.ends_with('\n') {
            s.push('\n');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_argument_table() {
        let cases: &[(&str, Option<Value>)] = &[
            (
                "apps:Deployment:web",
                Some(json!({"group": "apps", "kind": "Deployment", "name": "web"})),
            ),
            (
                ":Service:team-a/web",
                Some(json!({"group": "", "kind": "Service", "name": "web", "namespace": "team-a"})),
            ),
            ("Deployment:web", None),
            ("apps::web", None),
            ("apps:Deployment:", None),
            ("apps:Deployment:ns/", None),
        ];
        for (arg, want) in cases {
            assert_eq!(parse_resource(arg).ok(), *want, "{arg}");
        }
    }

    #[test]
    fn manifest_table() {
        let one = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: web\n";
        assert_eq!(parse_manifest(one).expect("one")["metadata"]["name"], "web");
        assert!(
            parse_manifest(&format!("{one}---\n")).is_ok(),
            "trailing separator"
        );
        let cases = [
            (format!("{one}---\n{one}"), "expected one document, found 2"),
            ("kind: AppProject\n".to_string(), "expected Application"),
            ("".to_string(), "no document"),
            ("a: [".to_string(), "invalid YAML"),
        ];
        for (text, want) in cases {
            let err = format!("{:#}", parse_manifest(&text).expect_err("invalid"));
            assert!(err.contains(want), "{err}");
        }
        let json_text = r#"{"kind": "Application", "metadata": {"name": "j"}}"#;
        assert_eq!(
            parse_manifest(json_text).expect("json")["metadata"]["name"],
            "j"
        );
    }

    #[test]
    fn progress_prints_each_result_once_and_changes_again() {
        let state = |status: &str, hook_phase: &str| {
            json!({"status": {"operationState": {"phase": "Running", "syncResult": {"resources": [
                {"group": "", "kind": "ConfigMap", "namespace": "a", "name": "cfg", "status": "Synced",
                 "message": "configmap/cfg serverside-applied", "syncPhase": "Sync"},
                {"group": "batch", "kind": "Job", "namespace": "a", "name": "migrate", "status": status,
                 "hookPhase": hook_phase, "hookType": "PreSync", "syncPhase": "PreSync", "message": ""}
            ]}}}})
        };
        let mut seen = BTreeMap::new();
        let first = progress_lines(&state("", "Running"), &mut seen);
        assert_eq!(first.len(), 2);
        assert!(progress_lines(&state("", "Running"), &mut seen).is_empty());
        let again = progress_lines(&state("Synced", "Succeeded"), &mut seen);
        assert_eq!(again.len(), 1);
        assert!(
            again[0].contains("Succeeded") && again[0].contains("migrate [PreSync]"),
            "{}",
            again[0]
        );
    }

    #[test]
    fn the_previous_operations_state_is_not_taken_for_the_new_one() {
        let state = |op: bool, phase: &str, started: &str| {
            let mut v =
                json!({"status": {"operationState": {"phase": phase, "startedAt": started}}});
            if op {
                v["operation"] = json!({"sync": {}});
            }
            v
        };
        let requested = state(true, "Succeeded", "t1");
        let cases = [
            (
                state(true, "Succeeded", "t1"),
                false,
                false,
                "not consumed yet",
            ),
            (
                state(false, "Succeeded", "t1"),
                false,
                false,
                "consumed, old state still shown",
            ),
            (state(false, "Running", "t2"), false, false, "running"),
            (
                state(false, "Succeeded", "t2"),
                false,
                true,
                "finished, new start time",
            ),
            (
                state(false, "Failed", "t1"),
                true,
                true,
                "same second, but a run was seen",
            ),
        ];
        for (app, saw_running, want, label) in cases {
            assert_eq!(
                operation_done(&app, &requested, saw_running),
                want,
                "{label}"
            );
        }
        // A first operation: no previous state at all.
        let fresh = json!({"operation": {"sync": {}}});
        assert!(operation_done(
            &state(false, "Succeeded", "t1"),
            &fresh,
            false
        ));
    }

    #[test]
    fn phases() {
        for (p, t) in [
            ("Running", false),
            ("Terminating", false),
            ("Succeeded", true),
            ("Failed", true),
            ("Error", true),
            ("-", false),
        ] {
            assert_eq!(terminal(p), t, "{p}");
        }
    }

    #[test]
    fn app_text_and_diff_text() {
        let app = json!({
            "metadata": {"name": "web"},
            "spec": {"project": "team", "destination": {"server": "https://kubernetes.default.svc", "namespace": "team-a"},
                     "source": {"repoURL": "https://g/r", "targetRevision": "main", "path": "apps/web"},
                     "syncPolicy": {"automated": {}}},
            "status": {"sync": {"status": "Synced", "revision": "abc"}, "health": {"status": "Healthy"},
                       "conditions": [{"type": "SyncError", "message": "boom"}],
                       "resources": [{"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "team-a",
                                      "name": "web", "status": "Synced", "health": {"status": "Healthy"}}]}
        });
        insta::assert_snapshot!(render_app(&app));
        let diff = json!({"items": [
            {"group": "apps", "kind": "Deployment", "namespace": "a", "name": "web", "modified": true,
             "diff": "--- live\n+++ desired\n-  replicas: 3\n+  replicas: 1\n"},
            {"group": "", "kind": "Service", "namespace": "a", "name": "web", "modified": false, "diff": ""}
        ]});
        assert!(diff_has_changes(&diff));
        insta::assert_snapshot!(render_diff(&diff));
        assert!(!diff_has_changes(&json!({"items": []})));
    }
}
