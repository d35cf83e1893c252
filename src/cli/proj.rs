//! `cairn proj …`: the client side of Argo CD's `argocd proj role create-token|delete-token|
//! list-tokens`, plus `cairn proj rotate-signing-key` (cairn keeps the signing key in its store
//! where Argo CD keeps `server.secretkey` in `argocd-secret`).
//!
//! The HTTP calls go through the shared [`Client`](super::Client); the pure piece (the token
//! table's time column) is unit-tested.

use anyhow::Context;
use reqwest::Method;
use serde_json::{Value, json};

use super::Client;
use super::output::{self, OutputFormat, Table};

/// `cairn proj` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ProjCommand {
    /// Manage a project's roles.
    Role {
        #[command(subcommand)]
        command: RoleCommand,
    },
    /// Replace the key that signs project tokens. Tokens signed by the old key stop working,
    /// at once or after `--grace`.
    RotateSigningKey {
        /// How long tokens signed by the old key keep working (`1h`, `7d`; default: not at all).
        #[arg(long)]
        grace: Option<String>,
    },
}

/// `cairn proj role` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RoleCommand {
    /// Create a token for a role (listed in the AppProject; the token is printed once).
    CreateToken {
        /// Project name.
        project: String,
        /// Role name.
        role: String,
        /// Lifetime before the token expires, e.g. `10m`, `12h`, `7d` (default: no expiry).
        #[arg(short = 'e', long)]
        expires_in: Option<String>,
        /// Token id (default: a random UUID).
        #[arg(short = 'i', long)]
        id: Option<String>,
        /// Print the token only, for scripts.
        #[arg(short = 't', long)]
        token_only: bool,
    },
    /// Delete (revoke) a token by its issued-at (Unix seconds) or id.
    DeleteToken {
        /// Project name.
        project: String,
        /// Role name.
        role: String,
        /// Issued-at (as `list-tokens -u` prints it) or token id.
        issued_at_or_id: String,
    },
    /// List a role's tokens.
    ListTokens {
        /// Project name.
        project: String,
        /// Role name.
        role: String,
        /// Print timestamps as Unix time (for `delete-token`).
        #[arg(short = 'u', long)]
        unixtime: bool,
        /// Output format.
        #[arg(short = 'o', long, env = "CAIRN_OUTPUT")]
        output: Option<OutputFormat>,
    },
}

/// Runs a `cairn proj` command against the current server.
pub async fn run(command: ProjCommand) -> anyhow::Result<()> {
    let client = Client::current()?;
    match command {
        ProjCommand::Role { command } => role(&client, command).await,
        ProjCommand::RotateSigningKey { grace } => {
            let out = client
                .send(
                    Method::POST,
                    "/api/v1/project-signing-key/rotate",
                    json!({ "grace": grace }),
                )
                .await?;
            println!("signing key rotated: {}", output::field(&out, "/kid"));
            match out.get("previousKid").and_then(Value::as_str) {
                Some(prev) => println!(
                    "tokens signed by {prev} work until {}",
                    output::field(&out, "/previousValidUntil")
                ),
                None => println!("tokens signed by the previous key no longer work"),
            }
            Ok(())
        }
    }
}

async fn role(client: &Client, command: RoleCommand) -> anyhow::Result<()> {
    match command {
        RoleCommand::CreateToken {
            project,
            role,
            expires_in,
            id,
            token_only,
        } => {
            let out = client
                .send(
                    Method::POST,
                    &tokens_path(&project, &role),
                    json!({ "expiresIn": expires_in, "id": id }),
                )
                .await?;
            let token = out
                .get("token")
                .and_then(Value::as_str)
                .context("the server returned no token")?;
            if token_only {
                println!("{token}");
            } else {
                println!("Create token succeeded for proj:{project}:{role}.");
                println!("  ID: {}", output::field(&out, "/id"));
                println!("  Issued At: {}", time(out.get("iat"), false));
                println!("  Expires At: {}", time(out.get("exp"), false));
                println!("  Token: {token}");
            }
            Ok(())
        }
        RoleCommand::DeleteToken {
            project,
            role,
            issued_at_or_id,
        } => {
            client
                .send(
                    Method::DELETE,
                    &format!("{}/{issued_at_or_id}", tokens_path(&project, &role)),
                    json!({}),
                )
                .await?;
            println!("token {issued_at_or_id} of proj:{project}:{role} deleted");
            Ok(())
        }
        RoleCommand::ListTokens {
            project,
            role,
            unixtime,
            output: format,
        } => {
            let list = client.get(&tokens_path(&project, &role)).await?;
            Table::new(&["ID", "ISSUED AT", "EXPIRES AT"], &[])
                .columns(move |t| {
                    vec![
                        output::field(t, "/id"),
                        time(t.get("iat"), unixtime),
                        time(t.get("exp"), unixtime),
                    ]
                })
                .print_list(&list, format.unwrap_or_default())
        }
    }
}

fn tokens_path(project: &str, role: &str) -> String {
    format!("/api/v1/projects/{project}/roles/{role}/token")
}

/// A Unix-seconds field as RFC 3339 (or as given with `unix`); absent or 0: `Never`/`<none>`.
fn time(v: Option<&Value>, unix: bool) -> String {
    match v.and_then(Value::as_i64).filter(|s| *s != 0) {
        None => "<none>".to_owned(),
        Some(s) if unix => s.to_string(),
        Some(s) => jiff::Timestamp::from_second(s)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_rfc3339_or_unix() {
        let v = json!(1_800_000_000);
        assert_eq!(time(Some(&v), true), "1800000000");
        assert_eq!(time(Some(&v), false), "2027-01-15T08:00:00Z");
        assert_eq!(time(None, false), "<none>");
        assert_eq!(time(Some(&json!(0)), true), "<none>");
        assert_eq!(
            tokens_path("team-a", "ci"),
            "/api/v1/projects/team-a/roles/ci/token"
        );
    }
}
