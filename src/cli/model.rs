//! `cairn model ...`: the model registry over `/api/v1/models` (see `api::models`).
//!
//! `list`, `get NAME [--version N | --alias A]`, `create NAME`, `register --name N --uri U
//! [--digest D] [--metric k=v]... [--param k=v]... [--tag k=v]... [--artifact NAME]`,
//! `alias NAME ALIAS --version N | --delete`, `delete NAME [--version N]`, all with
//! `-o json|yaml|wide`.
//!
//! Inside a workflow step (the executor's environment: [`SPEC_ENV`] holds the step's spec with
//! cairn's executor URL and the projected service-account token's path) `register` needs no
//! login: it posts to `/executor/v1/models/{name}/versions` with the pod's own token, and cairn
//! links the version to the step's workflow node from the token, never from what the step
//! claims. There, `--artifact NAME` names the step's artifact (an input, or an output of an
//! earlier step) whose URI and digest cairn reads from the Workflow's status.
//!
//! The pure pieces (`k=v` parsing, the request body, the pod detection) are unit-tested.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};

use super::output::{self, OutputFormat, Table};
use super::{Client, check};
use crate::workflow::artifacts::transfer::ChannelSpec;
use crate::workflow::executor::SPEC_ENV;

/// `cairn model` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ModelCommand {
    /// List registered models.
    List {
        /// Only names containing this.
        #[arg(long)]
        name_contains: Option<String>,
        /// Only models with this tag, `KEY=VALUE`.
        #[arg(long)]
        tag: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// Show a model and its versions, or one version (`--version`, `--alias`).
    Get {
        /// Model name.
        name: String,
        /// Only this version.
        #[arg(long, conflicts_with = "alias")]
        version: Option<u64>,
        /// Only the version this alias points at.
        #[arg(long)]
        alias: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// Create a model (`register` also creates it when missing).
    Create {
        /// Model name: lowercase letters, digits, '-', '_', '.'.
        name: String,
        /// Description.
        #[arg(long, default_value = "")]
        description: String,
        /// Tag `KEY=VALUE` (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// Register a new version of a model (creating the model when missing).
    Register(RegisterArgs),
    /// Point an alias at a version, or delete it.
    Alias {
        /// Model name.
        name: String,
        /// Alias, e.g. `champion` (not `latest`, not a number or `v<number>`).
        alias: String,
        /// The version to point it at.
        #[arg(long, required_unless_present = "delete", conflicts_with = "delete")]
        version: Option<u64>,
        /// Delete the alias.
        #[arg(long)]
        delete: bool,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// Delete a model with all its versions and aliases, or one version.
    Delete {
        /// Model name.
        name: String,
        /// Only this version (and the aliases pointing at it).
        #[arg(long)]
        version: Option<u64>,
    },
    /// Promotion by Git commit: `promote`, `rollback`, `promotions` (`cli::promote`).
    #[command(flatten)]
    Promotion(super::promote::PromoteCommand),
}

/// `cairn model register` arguments.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RegisterArgs {
    /// Model name.
    #[arg(long)]
    pub name: String,
    /// Where the model's files are (e.g. `s3://bucket/key`).
    #[arg(long, required_unless_present = "artifact")]
    pub uri: Option<String>,
    /// The artifact's digest, `sha256:<64 hex>`.
    #[arg(long)]
    pub digest: Option<String>,
    /// In a workflow step: the step's artifact of this name; cairn resolves its URI and
    /// digest from the Workflow.
    #[arg(long)]
    pub artifact: Option<String>,
    /// Metric `KEY=NUMBER` (repeatable).
    #[arg(long = "metric")]
    pub metrics: Vec<String>,
    /// Hyperparameter `KEY=VALUE` (repeatable).
    #[arg(long = "param")]
    pub params: Vec<String>,
    /// Tag `KEY=VALUE` (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Description.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Output format.
    #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
    pub output: Option<OutputFormat>,
}

/// `KEY=VALUE` pairs into a map; `flag` names the option in errors. Pure.
pub fn parse_pairs(flag: &str, items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_owned(), v.to_owned());
            }
            _ => bail!("--{flag} {item:?}: expected KEY=VALUE"),
        }
    }
    Ok(out)
}

/// `KEY=NUMBER` pairs. Pure.
pub fn parse_metrics(items: &[String]) -> anyhow::Result<BTreeMap<String, f64>> {
    parse_pairs("metric", items)?
        .into_iter()
        .map(|(k, v)| match v.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Ok((k, n)),
            _ => bail!("--metric {k}={v}: expected a finite number after '='"),
        })
        .collect()
}

/// The registration body both routes take. Pure.
pub fn register_body(args: &RegisterArgs) -> anyhow::Result<Value> {
    let mut body = json!({
        "metrics": parse_metrics(&args.metrics)?,
        "params": parse_pairs("param", &args.params)?,
        "tags": parse_pairs("tag", &args.tags)?,
        "description": args.description,
    });
    if let Some(uri) = &args.uri {
        body["sourceUri"] = json!(uri);
    }
    if let Some(d) = &args.digest {
        body["digest"] = json!(d);
    }
    if let Some(a) = &args.artifact {
        body["artifact"] = json!(a);
    }
    Ok(body)
}

/// Where a step registers: cairn's executor URL and the token file, from the executor's spec
/// in the environment. `None` outside a workflow step. Pure over the variable's value.
pub fn pod_channel(spec_env: Option<&str>) -> anyhow::Result<Option<(String, PathBuf)>> {
    let Some(text) = spec_env else {
        return Ok(None);
    };
    let spec: Value =
        serde_json::from_str(text).with_context(|| format!("{SPEC_ENV} is not valid JSON"))?;
    let Some(channel) = spec.get("artifactChannel").filter(|c| !c.is_null()) else {
        bail!(
            "this step's pod has no channel to cairn ({SPEC_ENV} has no artifactChannel): run \
             /var/run/cairn/cairn from the step's command so cairn mounts its token"
        );
    };
    let channel: ChannelSpec =
        serde_json::from_value(channel.clone()).context("reading the step's artifactChannel")?;
    let server = channel.server.context(
        "cairn's executor URL is not configured ([workflow] executor_url), so a step cannot \
         reach cairn",
    )?;
    Ok(Some((server, channel.token_file)))
}

/// Registers from inside a workflow step, with the pod's token.
async fn register_from_pod(
    server: &str,
    token_file: &std::path::Path,
    args: &RegisterArgs,
) -> anyhow::Result<Value> {
    let token = std::fs::read_to_string(token_file)
        .with_context(|| format!("reading the pod's token {}", token_file.display()))?;
    let http = crate::workflow::artifacts::transfer::http_client().map_err(anyhow::Error::msg)?;
    let url = format!(
        "{}{}",
        server.trim_end_matches('/'),
        crate::lineage::registry::executor::versions_path(&args.name)
    );
    let resp = http
        .post(&url)
        .bearer_auth(token.trim())
        .timeout(std::time::Duration::from_secs(60))
        .json(&register_body(args)?)
        .send()
        .await
        .with_context(|| format!("connecting to {server}"))?;
    Ok(check(resp).await?.json().await?)
}

fn models_table() -> Table {
    Table::new(
        &["NAME", "LATEST", "ALIASES", "UPDATED"],
        &["DESCRIPTION", "CREATED BY"],
    )
    .columns(|m| {
        let aliases = m
            .get("aliases")
            .and_then(Value::as_object)
            .map(|a| {
                a.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "-".into());
        vec![
            output::field(m, "/name"),
            output::field(m, "/latestVersion"),
            aliases,
            output::field(m, "/updated"),
            output::field(m, "/description"),
            output::field(m, "/createdBy"),
        ]
    })
}

fn metrics_text(v: &Value) -> String {
    v.get("metrics")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, n)| format!("{k}={n}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".into())
}

fn versions_table() -> Table {
    Table::new(
        &["VERSION", "STATUS", "ALIASES", "METRICS", "CREATED"],
        &["SOURCE", "DIGEST", "RUN", "CREATED BY"],
    )
    .columns(|v| {
        let run = match (v.pointer("/run/namespace"), v.pointer("/run/workflow")) {
            (Some(ns), Some(wf)) => format!(
                "{}/{}",
                ns.as_str().unwrap_or_default(),
                wf.as_str().unwrap_or_default()
            ),
            _ => "-".into(),
        };
        vec![
            output::field(v, "/version"),
            output::field(v, "/status"),
            output::field(v, "/aliases"),
            metrics_text(v),
            output::field(v, "/created"),
            output::field(v, "/sourceUri"),
            output::field(v, "/digest"),
            run,
            output::field(v, "/createdBy"),
        ]
    })
}

fn path_segment(s: &str) -> String {
    // Names and aliases are validated server-side; encode anything a user typed anyway.
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

/// Runs a `cairn model` command.
pub async fn run(command: ModelCommand) -> anyhow::Result<()> {
    if let ModelCommand::Register(args) = &command
        && let Some((server, token_file)) = pod_channel(std::env::var(SPEC_ENV).ok().as_deref())?
    {
        let version = register_from_pod(&server, &token_file, args).await?;
        return print_registered(&version, args.output.unwrap_or_default());
    }
    // Promotion has its own login handling (in a step: the pod's token, no login).
    let command = match command {
        ModelCommand::Promotion(command) => return super::promote::run(command).await,
        other => other,
    };
    let client = Client::current()?;
    match command {
        ModelCommand::List {
            name_contains,
            tag,
            output,
        } => {
            let mut query = Vec::new();
            if let Some(s) = &name_contains {
                query.push(format!("nameContains={}", path_segment(s)));
            }
            if let Some(t) = &tag {
                query.push(format!("tag={}", path_segment(t)));
            }
            let path = if query.is_empty() {
                "/api/v1/models".to_owned()
            } else {
                format!("/api/v1/models?{}", query.join("&"))
            };
            let list = client.get(&path).await?;
            models_table().print_list(&list, output.unwrap_or_default())
        }
        ModelCommand::Get {
            name,
            version,
            alias,
            output,
        } => {
            let format = output.unwrap_or_default();
            let base = format!("/api/v1/models/{}", path_segment(&name));
            if let Some(v) = version {
                let one = client.get(&format!("{base}/versions/{v}")).await?;
                return versions_table().print_one(&one, format);
            }
            if let Some(a) = alias {
                let one = client
                    .get(&format!("{base}/aliases/{}", path_segment(&a)))
                    .await?;
                return match format {
                    OutputFormat::Table | OutputFormat::Wide => {
                        let mut v = one.get("modelVersion").cloned().unwrap_or_default();
                        v["aliases"] = json!([a]);
                        versions_table().print_one(&v, format)
                    }
                    other => output::print_value(&one, other),
                };
            }
            let model = client.get(&base).await?;
            let versions = client.get(&format!("{base}/versions")).await?;
            match format {
                OutputFormat::Table | OutputFormat::Wide => {
                    println!("Name:        {}", output::field(&model, "/name"));
                    println!("Description: {}", output::field(&model, "/description"));
                    println!("Tags:        {}", pairs_text(model.get("tags")));
                    println!(
                        "Created:     {} by {}",
                        output::field(&model, "/created"),
                        output::field(&model, "/createdBy")
                    );
                    println!();
                    versions_table().print_list(&versions, format)
                }
                other => {
                    let mut both = model;
                    both["versions"] = versions.get("items").cloned().unwrap_or_default();
                    output::print_value(&both, other)
                }
            }
        }
        ModelCommand::Create {
            name,
            description,
            tags,
            output,
        } => {
            let body = json!({
                "name": name,
                "description": description,
                "tags": parse_pairs("tag", &tags)?,
            });
            let model = client.send(Method::POST, "/api/v1/models", body).await?;
            match output.unwrap_or_default() {
                OutputFormat::Table | OutputFormat::Wide => {
                    println!("model {} created", output::field(&model, "/name"));
                    Ok(())
                }
                other => output::print_value(&model, other),
            }
        }
        ModelCommand::Register(args) => {
            if args.artifact.is_some() && args.uri.is_none() {
                bail!(
                    "--artifact names a workflow step's artifact and works inside a workflow \
                     step only; outside one, give --uri (and --digest)"
                );
            }
            let version = client
                .send(
                    Method::POST,
                    &format!("/api/v1/models/{}/versions", path_segment(&args.name)),
                    register_body(&args)?,
                )
                .await?;
            print_registered(&version, args.output.unwrap_or_default())
        }
        ModelCommand::Alias {
            name,
            alias,
            version,
            delete,
            output,
        } => {
            let path = format!(
                "/api/v1/models/{}/aliases/{}",
                path_segment(&name),
                path_segment(&alias)
            );
            let out = if delete {
                client.send(Method::DELETE, &path, json!({})).await?
            } else {
                let version = version.context("--version is required unless --delete")?;
                client
                    .send(Method::PUT, &path, json!({ "version": version }))
                    .await?
            };
            match output.unwrap_or_default() {
                OutputFormat::Table | OutputFormat::Wide if delete => {
                    println!(
                        "alias {alias} of {name} deleted (was version {})",
                        output::field(&out, "/version")
                    );
                    Ok(())
                }
                OutputFormat::Table | OutputFormat::Wide => {
                    match out.get("previousVersion").and_then(Value::as_u64) {
                        Some(prev) => println!(
                            "alias {alias} of {name} moved from version {prev} to {}",
                            output::field(&out, "/version")
                        ),
                        None => println!(
                            "alias {alias} of {name} set to version {}",
                            output::field(&out, "/version")
                        ),
                    }
                    Ok(())
                }
                other => output::print_value(&out, other),
            }
        }
        ModelCommand::Delete { name, version } => {
            let base = format!("/api/v1/models/{}", path_segment(&name));
            match version {
                Some(v) => {
                    let out = client
                        .send(Method::DELETE, &format!("{base}/versions/{v}"), json!({}))
                        .await?;
                    println!(
                        "version {v} of {name} deleted (aliases removed: {})",
                        output::field(&out, "/deletedAliases")
                    );
                }
                None => {
                    let out = client.send(Method::DELETE, &base, json!({})).await?;
                    println!(
                        "model {name} deleted (versions: {}; aliases: {})",
                        output::field(&out, "/deleted/versions"),
                        output::field(&out, "/deleted/aliases")
                    );
                }
            }
            Ok(())
        }
        ModelCommand::Promotion(command) => super::promote::run(command).await,
    }
}

fn pairs_text(v: Option<&Value>) -> String {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".into())
}

fn print_registered(version: &Value, format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Table | OutputFormat::Wide => {
            println!(
                "registered {} version {}",
                output::field(version, "/model"),
                output::field(version, "/version")
            );
            Ok(())
        }
        other => output::print_value(version, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pairs_and_metrics() {
        let p = parse_pairs("param", &strings(&["a=1", "b=x=y", "c="])).expect("pairs");
        assert_eq!(p["a"], "1");
        assert_eq!(p["b"], "x=y");
        assert_eq!(p["c"], "");
        for bad in ["a", "=1"] {
            let err = parse_pairs("param", &strings(&[bad])).expect_err(bad);
            assert_eq!(
                err.to_string(),
                format!("--param {bad:?}: expected KEY=VALUE")
            );
        }
        let m = parse_metrics(&strings(&["score=0.41", "n= 3"])).expect("metrics");
        assert_eq!(m["score"], 0.41);
        assert_eq!(m["n"], 3.0);
        for bad in ["score=high", "score=NaN", "score=inf"] {
            let err = parse_metrics(&strings(&[bad])).expect_err(bad);
            assert!(
                err.to_string().contains("expected a finite number"),
                "{err}"
            );
        }
    }

    #[test]
    fn body_carries_only_what_was_given() {
        let args = RegisterArgs {
            name: "recommender".into(),
            artifact: Some("model".into()),
            metrics: strings(&["score=0.41"]),
            params: strings(&["top_k=20"]),
            ..Default::default()
        };
        let body = register_body(&args).expect("body");
        assert_eq!(
            body,
            json!({
                "metrics": {"score": 0.41},
                "params": {"top_k": "20"},
                "tags": {},
                "description": "",
                "artifact": "model",
            })
        );
        let args = RegisterArgs {
            uri: Some("s3://m/1".into()),
            digest: Some("sha256:ab".into()),
            ..args
        };
        let body = register_body(&args).expect("body");
        assert_eq!(body["sourceUri"], "s3://m/1");
        assert_eq!(body["digest"], "sha256:ab");
        assert!(body.get("run").is_none());
    }

    #[test]
    fn pod_detection() {
        assert!(pod_channel(None).expect("outside").is_none());
        let spec = json!({
            "artifactChannel": {
                "server": "http://cairn.cairn:8081",
                "tokenFile": "/var/run/cairn-token/token",
                "namespace": "ml",
                "stagingDir": "/var/run/cairn/inputs",
            }
        })
        .to_string();
        let (server, token) = pod_channel(Some(&spec)).expect("inside").expect("channel");
        assert_eq!(server, "http://cairn.cairn:8081");
        assert_eq!(token, PathBuf::from("/var/run/cairn-token/token"));
        let no_url = json!({"artifactChannel": {
            "tokenFile": "/t", "namespace": "ml", "stagingDir": "/s"
        }})
        .to_string();
        let err = pod_channel(Some(&no_url)).expect_err("no url").to_string();
        assert!(err.contains("executor_url"), "{err}");
        let err = pod_channel(Some(r#"{"command": []}"#))
            .expect_err("no channel")
            .to_string();
        assert!(err.contains("no artifactChannel"), "{err}");
        assert!(pod_channel(Some("{")).is_err());
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(path_segment("recommender"), "recommender");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
