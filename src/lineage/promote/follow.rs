//! After a promotion's push: ask the Applications that track the edited file to refresh, and
//! follow them until they are synced to the commit and Healthy (bounded by [`FOLLOW_TIMEOUT`]),
//! recording the sync phase and the time it became Healthy in the PROMOTIONS record and the
//! lineage graph.
//!
//! Pure: [`tracks`] (does an Application deploy this file of this repository?) and [`observe`]
//! (where is it relative to the commit?). The I/O shell, [`follow`], polls the Applications
//! through the Kubernetes API, every [`POLL_INTERVAL`].

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tracing::Instrument;

use super::op::{self, Promotion, SyncRecord};
use crate::gitops::source::url::normalize_url;
use crate::gitops::types::Application;
use crate::gitops::webhook::{AppRefresher, RefreshKind};
use crate::store::Store;

/// How long a promotion is followed.
pub const FOLLOW_TIMEOUT: Duration = Duration::from_secs(600);
/// How often the Applications are read while following.
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Whether `app` deploys `file` of repository `repo` (one of its sources has that repository and
/// a path containing the file; a Helm chart's values file counts when it is under the path).
pub fn tracks(app: &Application, repo: &str, file: &str) -> bool {
    let want = normalize_url(repo);
    app.spec
        .source
        .iter()
        .chain(app.spec.sources.iter().flatten())
        .any(|s| {
            let same_repo = s
                .repo_url
                .as_deref()
                .is_some_and(|u| normalize_url(u) == want);
            let path = s.path.as_deref().unwrap_or("").trim_matches('/');
            same_repo
                && (path.is_empty()
                    || path == "."
                    || file == path
                    || file.starts_with(&format!("{path}/")))
        })
}

/// Where an Application is relative to a promotion commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// Not yet synced to the commit.
    Pending,
    /// Synced to the commit; `healthy` when its health is `Healthy`.
    Synced {
        /// The last operation's phase (`Succeeded` when no operation ran, e.g. auto-sync
        /// already recorded).
        phase: String,
        /// Health is `Healthy`.
        healthy: bool,
    },
}

/// Observes `app` against `commit`.
pub fn observe(app: &Application, commit: &str) -> Observation {
    let Some(status) = &app.status else {
        return Observation::Pending;
    };
    let sync = status.sync.as_ref();
    let at_commit = sync.is_some_and(|s| {
        s.revision.as_deref() == Some(commit) || s.revisions.iter().flatten().any(|r| r == commit)
    });
    let synced = sync.and_then(|s| s.status.as_deref()) == Some("Synced");
    if !(at_commit && synced) {
        return Observation::Pending;
    }
    let phase = status
        .operation_state
        .as_ref()
        .and_then(|o| o.phase.clone())
        .unwrap_or_else(|| "Succeeded".into());
    let healthy = status.health.as_ref().and_then(|h| h.status.as_deref()) == Some("Healthy");
    Observation::Synced { phase, healthy }
}

fn app_name(app: &Application) -> String {
    format!(
        "{}/{}",
        app.metadata.namespace.as_deref().unwrap_or_default(),
        app.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Follows `promotion` (which must carry a commit): refreshes the Applications in `namespaces`
/// that track its file of `repo`, then polls them until each is synced to the commit and
/// Healthy, or [`FOLLOW_TIMEOUT`] passes; records what it saw. Errors are logged: following is
/// best effort and never undoes the promotion.
pub async fn follow(
    client: kube::Client,
    refresher: Option<Arc<dyn AppRefresher>>,
    namespaces: Vec<String>,
    store: Store,
    promotion: Promotion,
    repo: String,
) {
    let Some(commit) = promotion.commit.clone() else {
        return;
    };
    let span = tracing::info_span!("follow_promotion", id = %promotion.id, commit = %commit);
    let work = async {
        let mut apps = Vec::new();
        for ns in &namespaces {
            let api: kube::Api<Application> = kube::Api::namespaced(client.clone(), ns);
            match api.list(&Default::default()).await {
                Ok(list) => apps.extend(
                    list.items
                        .into_iter()
                        .filter(|a| tracks(a, &repo, &promotion.file)),
                ),
                Err(error) => tracing::warn!(namespace = %ns, %error, "listing Applications"),
            }
        }
        if apps.is_empty() {
            tracing::info!("no Application tracks the promoted file");
            return;
        }
        for app in &apps {
            let (ns, name) = (
                app.metadata.namespace.clone().unwrap_or_default(),
                app.metadata.name.clone().unwrap_or_default(),
            );
            if let Some(r) = &refresher
                && let Err(error) = r.refresh(&ns, &name, RefreshKind::Normal).await
            {
                tracing::warn!(app = %name, %error, "refresh after promotion");
            }
        }
        let mut pending: Vec<(String, String)> = apps
            .iter()
            .map(|a| {
                (
                    a.metadata.namespace.clone().unwrap_or_default(),
                    a.metadata.name.clone().unwrap_or_default(),
                )
            })
            .collect();
        let mut recorded_phase: Vec<String> = Vec::new();
        while !pending.is_empty() {
            tokio::time::sleep(POLL_INTERVAL).await;
            let mut still = Vec::new();
            for (ns, name) in pending {
                let api: kube::Api<Application> = kube::Api::namespaced(client.clone(), &ns);
                let app = match api.get(&name).await {
                    Ok(a) => a,
                    Err(error) => {
                        tracing::debug!(app = %name, %error, "reading Application");
                        still.push((ns, name));
                        continue;
                    }
                };
                match observe(&app, &commit) {
                    Observation::Pending => still.push((ns, name)),
                    Observation::Synced { phase, healthy } => {
                        let full = app_name(&app);
                        if !healthy {
                            if !recorded_phase.contains(&full) {
                                record(&store, &promotion.id, &full, &phase, None).await;
                                recorded_phase.push(full);
                            }
                            still.push((ns, name));
                            continue;
                        }
                        record(&store, &promotion.id, &full, &phase, Some(Timestamp::now())).await;
                        tracing::info!(app = %full, %phase, "promotion synced and Healthy");
                    }
                }
            }
            pending = still;
        }
    }
    .instrument(span);
    // Best effort: at the bound, whatever was recorded stays.
    let _ = tokio::time::timeout(FOLLOW_TIMEOUT, work).await;
}

async fn record(
    store: &Store,
    id: &str,
    application: &str,
    phase: &str,
    healthy_at: Option<Timestamp>,
) {
    let (id, sync) = (
        id.to_string(),
        SyncRecord {
            application: application.to_string(),
            phase: phase.to_string(),
            healthy_at,
        },
    );
    if let Err(error) = store
        .write(move |txn| op::record_sync(txn, &id, &sync))
        .await
    {
        tracing::warn!(app = %application, %error, "recording promotion sync");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(yaml: &str) -> Application {
        serde_saphyr::from_str(yaml).expect("Application")
    }

    const APP: &str = "
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: recommender-prod, namespace: argocd}
spec:
  source:
    repoURL: https://git.example.com/acme/gitops.git
    path: apps/recommender
    targetRevision: main
";

    #[test]
    fn which_applications_track_the_file() {
        let a = app(APP);
        let repo = "https://git.example.com/acme/gitops";
        assert!(tracks(&a, repo, "apps/recommender/values/prod.yaml"));
        assert!(!tracks(&a, repo, "apps/recommender-two/values.yaml"));
        assert!(!tracks(
            &a,
            "https://git.example.com/acme/other.git",
            "apps/recommender/v.yaml"
        ));
        let multi = app(&APP.replace(
            "  source:\n    repoURL: https://git.example.com/acme/gitops.git\n    path: apps/recommender\n    targetRevision: main\n",
            "  sources:\n  - repoURL: https://charts.example.com\n    chart: serve\n  - repoURL: https://git.example.com/acme/gitops.git\n    path: apps/recommender\n",
        ));
        assert!(tracks(&multi, repo, "apps/recommender/values/prod.yaml"));
    }

    #[test]
    fn observation_needs_the_commit_synced_and_healthy() {
        let with = |status: &str| app(&format!("{APP}status:\n{status}"));
        let c = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(observe(&app(APP), c), Observation::Pending);
        assert_eq!(
            observe(&with("  sync: {status: Synced, revision: abc}\n"), c),
            Observation::Pending
        );
        assert_eq!(
            observe(
                &with(&format!("  sync: {{status: OutOfSync, revision: {c}}}\n")),
                c
            ),
            Observation::Pending
        );
        assert_eq!(
            observe(
                &with(&format!(
                    "  sync: {{status: Synced, revision: {c}}}\n  health: {{status: Progressing}}\n  operationState: {{phase: Succeeded}}\n"
                )),
                c
            ),
            Observation::Synced {
                phase: "Succeeded".into(),
                healthy: false
            }
        );
        assert_eq!(
            observe(
                &with(&format!(
                    "  sync: {{status: Synced, revisions: [x, {c}]}}\n  health: {{status: Healthy}}\n"
                )),
                c
            ),
            Observation::Synced {
                phase: "Succeeded".into(),
                healthy: true
            }
        );
    }
}
