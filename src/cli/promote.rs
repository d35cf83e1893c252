//! `cairn model promote` and `cairn model rollback`, and the promotions list: thin calls of
//! `api::promotions`, printed with the shared output formats.
//!
//! Inside a workflow step (`CAIRN_EXEC_SPEC` set, see `cli::model::pod_channel`) `promote`
//! needs no login: it posts the same body to `/executor/v1/models/{name}/promote`
//! (`lineage::promote::executor`) with the pod's projected token, and cairn checks RBAC for the
//! pod's service account. Outside a step it is the user's `POST /api/v1/models/{name}/promote`.

use serde_json::{Value, json};

use anyhow::Context;

use super::Client;
use super::output::{OutputFormat, Table};
use crate::workflow::executor::SPEC_ENV;

/// Bound of a promotion request from a step: the server's whole push bound (7 x 90 s) plus
/// margin.
const POD_PROMOTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(660);

/// `cairn model promote|rollback|promotions`, as variants of `cairn model`.
#[derive(Debug, clap::Subcommand)]
pub enum PromoteCommand {
    /// Promote a version to an alias by a commit to the GitOps repository (`[[promotion]]`).
    Promote {
        /// Model name.
        name: String,
        /// The version to promote.
        #[arg(long)]
        version: u64,
        /// The alias, e.g. `prod`.
        #[arg(long)]
        alias: String,
        /// Push a `promote/<model>-<alias>-v<version>` branch for review instead.
        #[arg(long)]
        review: bool,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// Revert the latest promotion of an alias (the alias moves back).
    Rollback {
        /// Model name.
        name: String,
        /// The alias.
        #[arg(long)]
        alias: String,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
    /// List promotions (of one model).
    Promotions {
        /// Model name.
        name: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
}

/// Runs one of [`PromoteCommand`].
pub async fn run(command: PromoteCommand) -> anyhow::Result<()> {
    if let PromoteCommand::Promote {
        name,
        version,
        alias,
        review,
        output,
    } = &command
        && let Some((server, token_file)) =
            super::model::pod_channel(std::env::var(SPEC_ENV).ok().as_deref())?
    {
        let record = promote_from_pod(
            &server,
            &token_file,
            name,
            &promote_body(*version, alias, *review),
        )
        .await?;
        return table().print_one(&record, output.unwrap_or_default());
    }
    let client = Client::current()?;
    match command {
        PromoteCommand::Promote {
            name,
            version,
            alias,
            review,
            output,
        } => {
            promote(
                &client,
                &name,
                version,
                &alias,
                review,
                output.unwrap_or_default(),
            )
            .await
        }
        PromoteCommand::Rollback {
            name,
            alias,
            output,
        } => rollback(&client, &name, &alias, output.unwrap_or_default()).await,
        PromoteCommand::Promotions { name, output } => {
            list(&client, name.as_deref(), output.unwrap_or_default()).await
        }
    }
}

/// The table of promotion records.
fn table() -> Table {
    let s = |v: &Value, k: &str| match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    Table::new(
        &["MODEL", "ALIAS", "VERSION", "KIND", "COMMIT", "BRANCH"],
        &["FILE", "BY", "AT", "PREVIOUS", "SYNC"],
    )
    .columns(move |v| {
        let commit = s(v, "commit");
        vec![
            s(v, "model"),
            s(v, "alias"),
            s(v, "version"),
            s(v, "kind"),
            if commit.is_empty() {
                "(no change)".into()
            } else {
                commit.chars().take(12).collect()
            },
            s(v, "pushedBranch"),
            s(v, "file"),
            s(v, "by"),
            s(v, "at"),
            s(v, "previousVersion"),
            v.get("sync")
                .map(|sync| format!("{} {}", s(sync, "phase"), s(sync, "healthyAt")))
                .unwrap_or_default(),
        ]
    })
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `cairn model promote NAME --version N --alias ALIAS [--review]`.
pub async fn promote(
    client: &Client,
    name: &str,
    version: u64,
    alias: &str,
    review: bool,
    format: OutputFormat,
) -> anyhow::Result<()> {
    let record = client
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/models/{}/promote", encode(name)),
            promote_body(version, alias, review),
        )
        .await?;
    table().print_one(&record, format)
}

/// The body of a promotion, the API's and the executor route's alike. Pure.
pub fn promote_body(version: u64, alias: &str, review: bool) -> Value {
    let mut body = json!({ "version": version, "alias": alias });
    if review {
        body["review"] = json!(true);
    }
    body
}

/// Promotes from inside a workflow step, with the pod's token, at cairn's executor URL.
async fn promote_from_pod(
    server: &str,
    token_file: &std::path::Path,
    name: &str,
    body: &Value,
) -> anyhow::Result<Value> {
    let token = std::fs::read_to_string(token_file)
        .with_context(|| format!("reading the pod's token {}", token_file.display()))?;
    let http = crate::workflow::artifacts::transfer::http_client().map_err(anyhow::Error::msg)?;
    let url = format!(
        "{}{}",
        server.trim_end_matches('/'),
        crate::lineage::promote::executor::promote_path(&encode(name))
    );
    // A promotion fetches and pushes (each step bounded by the server's Git timeout, 90 s by
    // default, up to 3 push attempts); wait for the server's own bound rather than a shorter one.
    let resp = http
        .post(&url)
        .bearer_auth(token.trim())
        .timeout(POD_PROMOTE_TIMEOUT)
        .json(body)
        .send()
        .await
        .with_context(|| format!("connecting to {server}"))?;
    Ok(super::check(resp).await?.json().await?)
}

/// `cairn model rollback NAME --alias ALIAS`.
pub async fn rollback(
    client: &Client,
    name: &str,
    alias: &str,
    format: OutputFormat,
) -> anyhow::Result<()> {
    let record = client
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/models/{}/rollback", encode(name)),
            json!({ "alias": alias }),
        )
        .await?;
    table().print_one(&record, format)
}

/// `cairn model promotions [NAME]`.
pub async fn list(
    client: &Client,
    model: Option<&str>,
    format: OutputFormat,
) -> anyhow::Result<()> {
    let path = match model {
        Some(m) => format!("/api/v1/promotions?model={}", encode(m)),
        None => "/api/v1/promotions".to_string(),
    };
    let list = client.get(&path).await?;
    table().print_list(&list, format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows() {
        let record = json!({
            "model": "recommender", "alias": "prod", "version": 4, "kind": "Promote",
            "commit": "0123456789abcdef0123", "pushedBranch": "main", "file": "v.yaml",
            "by": "alice", "at": "2026-12-07T08:00:00Z", "previousVersion": 3,
        });
        assert_eq!(
            table().render(&[record], false),
            "MODEL        ALIAS  VERSION  KIND     COMMIT        BRANCH\n\
             recommender  prod   4        Promote  0123456789ab  main\n"
        );
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn bodies_are_the_apis() {
        assert_eq!(
            promote_body(4, "prod", false),
            json!({"version": 4, "alias": "prod"})
        );
        assert_eq!(
            promote_body(4, "prod", true),
            json!({"version": 4, "alias": "prod", "review": true})
        );
        // The executor route parses what the CLI sends.
        let sent = serde_json::to_vec(&promote_body(4, "prod", true)).unwrap_or_default();
        let parsed = crate::lineage::promote::executor::parse_body("m", &sent).expect("parsed");
        assert_eq!((parsed.version, parsed.review), (4, Some(true)));
    }
}
