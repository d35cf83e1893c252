//! The promotion operation: RBAC, plan, commit + push, then one store write (the alias, the
//! PROMOTIONS record, the lineage graph's promotion context). Also rollback (a revert commit of
//! the latest promotion of a model's alias) and the PROMOTIONS table's reads.
//!
//! Invariants:
//! - The RBAC check (`models`, `promote`, `<model>/<alias>`) runs before anything reads the
//!   registry or touches Git: a denied promotion makes no commit.
//! - The version must exist and be Ready ([`plan`], pure).
//! - The alias moves only after the push succeeded, in the same transaction as the PROMOTIONS
//!   record and the lineage record; a review-mode promotion (a `promote/...` branch) records the
//!   promotion but leaves the alias where it is, since nothing is deployed until the branch is
//!   merged.
//! - One promotion per repository at a time in this process (a per-URL lock), so two promotions
//!   do not race each other's push.
//! - PROMOTIONS keys are `<model>/<alias>/<at, 20-digit ns since the epoch>`: a `<model>/` prefix
//!   holds a model's promotions in time order, `<model>/<alias>/` an alias's.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use jiff::Timestamp;
use redb::WriteTransaction;
use serde::{Deserialize, Serialize};

use super::PromoteError;
use super::git::{self, Change, Pushed, Target};
use super::rule::{self, CommitInfo, PromotionRule, TemplateVars};
use super::yaml_edit::YamlPath;
use crate::gitops::source::url::redact_url;
use crate::gitops::source::{CredentialStore, KnownHosts, RepoCredentials};
use crate::lineage::graph::{self, PromotionLink};
use crate::lineage::registry::{self, ModelVersion, Reader, VersionStatus};
use crate::store::tables::PROMOTIONS;
use crate::store::{Store, StoreError};

/// Default bound of one fetch or push (Argo CD's repo-server Git timeout).
pub const DEFAULT_GIT_TIMEOUT: Duration = Duration::from_secs(90);

/// What a promotion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PromotionKind {
    /// Moved the alias to a version.
    Promote,
    /// Reverted an earlier promotion's commit.
    Rollback,
}

/// The sync of a promotion's commit, as followed after the push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRecord {
    /// `<namespace>/<name>` of the Application.
    pub application: String,
    /// The sync operation's phase (`Succeeded`, `Failed`, ...).
    pub phase: String,
    /// When the Application was Healthy at the commit, if it became so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_at: Option<Timestamp>,
}

/// One record of the PROMOTIONS table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Promotion {
    /// The key: `<model>/<alias>/<20-digit ns>`.
    pub id: String,
    /// Promote or rollback.
    pub kind: PromotionKind,
    /// Model name.
    pub model: String,
    /// The version the alias points at after this promotion.
    pub version: u64,
    /// The alias.
    pub alias: String,
    /// Repository URL, redacted.
    pub repo: String,
    /// The tracked branch.
    pub branch: String,
    /// The branch pushed (the tracked one, or the review branch).
    pub pushed_branch: String,
    /// Whether this went to a review branch (the alias did not move).
    pub review: bool,
    /// The file edited.
    pub file: String,
    /// The commit made; `None` when the file already had the values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// For a rollback: the commit reverted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverts: Option<String>,
    /// Who promoted (RBAC subject).
    pub by: String,
    /// When.
    pub at: Timestamp,
    /// The version the alias pointed at before, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<u64>,
    /// The lineage graph's promotion context, when a commit was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage_id: Option<String>,
    /// Push attempts.
    pub attempts: u32,
    /// The sync of the commit, once followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncRecord>,
}

/// The pure part of a promotion: which rule, which values, which message, which branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The matching rule.
    pub rule: PromotionRule,
    /// The branch to push.
    pub push_branch: String,
    /// Paths and rendered values.
    pub values: Vec<(YamlPath, String)>,
    /// The commit message.
    pub message: String,
}

/// Plans promoting `version` to `alias`: the version must be Ready and a rule must match.
pub fn plan(
    rules: &[PromotionRule],
    version: &ModelVersion,
    alias: &str,
    review: Option<bool>,
    content_base: Option<&str>,
) -> Result<Plan, PromoteError> {
    if version.status != VersionStatus::Ready {
        return Err(PromoteError::NotReady {
            model: version.model.clone(),
            version: version.version,
            status: version.status.as_str(),
        });
    }
    let rule =
        rule::find_rule(rules, &version.model, alias).ok_or_else(|| PromoteError::NoRule {
            model: version.model.clone(),
            alias: alias.to_string(),
        })?;
    let run = version
        .run
        .as_ref()
        .map(|r| format!("{}/{}", r.namespace, r.workflow));
    let vars = TemplateVars {
        model: version.model.clone(),
        version: version.version,
        uri: version.source_uri.clone(),
        digest: version.digest.clone().unwrap_or_default(),
        alias: alias.to_string(),
        run: run.clone().unwrap_or_default(),
        url: content_base
            .map(|base| {
                crate::lineage::registry::content::content_url(
                    base,
                    &version.model,
                    version.version,
                )
            })
            .unwrap_or_default(),
    };
    let mut values = Vec::with_capacity(rule.set.len());
    for (path, template) in &rule.set {
        // Validated with the config; a parse failure here means an unvalidated rule.
        let path = YamlPath::parse(path).map_err(|source| PromoteError::Edit {
            file: rule.file.clone(),
            source,
        })?;
        values.push((path, rule::render(template, &vars)));
    }
    let review = review.unwrap_or(rule.review);
    let push_branch = if review {
        rule::review_branch(&version.model, alias, version.version)
    } else {
        rule.branch.clone()
    };
    let message = rule::commit_message(&CommitInfo {
        model: &version.model,
        version: version.version,
        alias,
        file: &rule.file,
        lineage_id: version.lineage_id.as_deref(),
        run: run.as_deref(),
        reverts: None,
    });
    Ok(Plan {
        rule: rule.clone(),
        push_branch,
        values,
        message,
    })
}

/// The PROMOTIONS key.
pub fn promotion_key(model: &str, alias: &str, at: Timestamp) -> String {
    let ns = u128::try_from(at.as_nanosecond()).unwrap_or(0);
    format!("{model}/{alias}/{ns:020}")
}

fn decode(key: &str, bytes: &[u8]) -> Result<Promotion, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Decode {
        table: "promotions".into(),
        key: key.to_owned(),
        source,
    })
}

/// Promotions of `model` (all models when `None`), oldest first.
pub fn list_promotions(
    txn: &(impl Reader + ?Sized),
    model: Option<&str>,
) -> Result<Vec<Promotion>, StoreError> {
    let prefix = model.map(|m| format!("{m}/")).unwrap_or_default();
    txn.raw_prefix(PROMOTIONS, &prefix)?
        .iter()
        .map(|(k, v)| decode(k, v))
        .collect()
}

/// The latest non-review promotion of (model, alias) that made a commit.
pub fn latest_promotion(
    txn: &(impl Reader + ?Sized),
    model: &str,
    alias: &str,
) -> Result<Option<Promotion>, StoreError> {
    let prefix = format!("{model}/{alias}/");
    let rows = txn.raw_prefix(PROMOTIONS, &prefix)?;
    for (k, v) in rows.iter().rev() {
        let p = decode(k, v)?;
        if !p.review && p.commit.is_some() {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

fn put(txn: &WriteTransaction, p: &Promotion) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(p).map_err(|source| StoreError::Decode {
        table: "promotions".into(),
        key: p.id.clone(),
        source,
    })?;
    let mut t = txn.open_table(PROMOTIONS)?;
    t.insert(p.id.as_str(), bytes.as_slice())?;
    Ok(())
}

/// Records the followed sync of a promotion (and in the graph, by commit).
pub fn record_sync(
    txn: &WriteTransaction,
    id: &str,
    sync: &SyncRecord,
) -> Result<(), PromoteError> {
    let Some(bytes) = txn.raw_get(PROMOTIONS, id)? else {
        return Ok(());
    };
    let mut p = decode(id, &bytes)?;
    if let Some(commit) = &p.commit {
        graph::record_sync(txn, commit, &sync.application, &sync.phase, sync.healthy_at)
            .map_err(|e| PromoteError::Graph(Box::new(e)))?;
    }
    p.sync = Some(sync.clone());
    put(txn, &p)?;
    Ok(())
}

/// Where credentials for a repository URL come from (the Argo CD repository Secrets).
pub trait Credentials: Send + Sync {
    /// The credentials for `url`, if any.
    fn for_url<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Option<RepoCredentials>>;
}

impl Credentials for CredentialStore {
    fn for_url<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Option<RepoCredentials>> {
        let creds = CredentialStore::for_url(self, url);
        Box::pin(async move { creds })
    }
}

/// Credentials from the Argo CD repository / repo-creds Secrets of the control namespace, read
/// at each promotion (as the GitOps controller reads them at each reconcile).
pub struct SecretCredentials {
    client: kube::Client,
    namespace: String,
}

impl SecretCredentials {
    /// Reads Secrets in `namespace`.
    pub fn new(client: kube::Client, namespace: impl Into<String>) -> Self {
        Self {
            client,
            namespace: namespace.into(),
        }
    }
}

impl Credentials for SecretCredentials {
    fn for_url<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Option<RepoCredentials>> {
        Box::pin(async move {
            use crate::gitops::source::{RepoSecret, creds::SECRET_TYPE_LABEL};
            let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
                kube::Api::namespaced(self.client.clone(), &self.namespace);
            let lp = kube::api::ListParams::default()
                .labels(&format!("{SECRET_TYPE_LABEL} in (repository,repo-creds)"));
            let secrets = match api.list(&lp).await {
                Ok(list) => list.items,
                Err(error) => {
                    tracing::warn!(%error, "listing repository secrets failed; pushing anonymously");
                    Vec::new()
                }
            };
            let parsed = secrets
                .iter()
                .filter_map(|s| match RepoSecret::from_secret(s) {
                    Ok(r) => r,
                    Err(error) => {
                        tracing::warn!(%error, "repository secret ignored");
                        None
                    }
                })
                .collect();
            CredentialStore::new(parsed).for_url(url)
        })
    }
}

/// Settings of the [`Promoter`].
pub struct PromoterConfig {
    /// The `[[promotion]]` entries (validated).
    pub rules: Vec<PromotionRule>,
    /// cairn's data dir; work repositories live under `<data_dir>/promote/`.
    pub data_dir: PathBuf,
    /// SSH host keys.
    pub known_hosts: KnownHosts,
    /// Bound of one fetch or push.
    pub timeout: Duration,
    /// `workflow.executor_url`: the base of `{{url}}`.
    pub content_base: Option<String>,
}

/// Runs promotions; share one per process.
pub struct Promoter {
    store: Store,
    config: PromoterConfig,
    creds: Arc<dyn Credentials>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Who asks, and whether the policy lets them promote an object (`<model>/<alias>`).
pub struct Actor<'a> {
    /// The RBAC subject recorded as `by`.
    pub subject: &'a str,
    /// `models`, `promote`, object -> allowed.
    pub allowed: &'a (dyn Fn(&str) -> bool + Send + Sync),
}

impl Promoter {
    /// A promoter over `store`.
    pub fn new(store: Store, config: PromoterConfig, creds: Arc<dyn Credentials>) -> Self {
        Self {
            store,
            config,
            creds,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// The promoter of a server: `[[promotion]]` rules, work repositories under the data dir,
    /// credentials from the repository Secrets of `namespace` (none without a cluster).
    pub fn from_config(
        config: &crate::config::Config,
        store: Store,
        kube: Option<kube::Client>,
        namespace: &str,
    ) -> Arc<Self> {
        let creds: Arc<dyn Credentials> = match kube {
            Some(client) => Arc::new(SecretCredentials::new(client, namespace)),
            None => Arc::new(CredentialStore::new(Vec::new())),
        };
        Arc::new(Self::new(
            store,
            PromoterConfig {
                rules: config.promotion.clone(),
                data_dir: config.server.data_dir.clone(),
                known_hosts: KnownHosts::default(),
                timeout: DEFAULT_GIT_TIMEOUT,
                content_base: config.workflow.executor_url.clone(),
            },
            creds,
        ))
    }

    /// The store records are written to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The rules.
    pub fn rules(&self) -> &[PromotionRule] {
        &self.config.rules
    }

    fn lock_for(&self, url: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(url.to_string()).or_default().clone()
    }

    fn authorize(actor: &Actor<'_>, model: &str, alias: &str) -> Result<(), PromoteError> {
        let object = registry::alias_key(model, alias);
        if (actor.allowed)(&object) {
            Ok(())
        } else {
            Err(PromoteError::Forbidden {
                subject: actor.subject.to_string(),
                object,
            })
        }
    }

    async fn target(&self, rule: &PromotionRule, push_branch: &str) -> Target {
        Target {
            url: rule.repo.clone(),
            branch: rule.branch.clone(),
            push_branch: push_branch.to_string(),
            file: rule.file.clone(),
            creds: self.creds.for_url(&rule.repo).await,
            known_hosts: self.config.known_hosts.clone(),
            timeout: self.config.timeout,
            work_root: self.config.data_dir.join("promote"),
            author_name: rule.author_name.clone(),
            author_email: rule.author_email.clone(),
        }
    }

    async fn push(
        &self,
        target: Target,
        change: Change,
        message: String,
    ) -> Result<Pushed, PromoteError> {
        let lock = self.lock_for(&target.url);
        let _guard = lock.lock().await;
        // Each network step has its own deadline; this bounds the whole (attempts x 2 steps).
        let bound = self.config.timeout * (2 * git::MAX_PUSH_ATTEMPTS + 1);
        let task =
            tokio::task::spawn_blocking(move || git::commit_and_push(&target, &change, &message));
        match tokio::time::timeout(bound, task).await {
            Err(_) => Err(PromoteError::Aborted {
                op: "push",
                reason: format!("timed out after {}s", bound.as_secs()),
            }),
            Ok(Err(join)) => Err(PromoteError::Aborted {
                op: "push",
                reason: join.to_string(),
            }),
            Ok(Ok(out)) => out,
        }
    }

    /// Promotes `model` `version` to `alias` (see the module docs). `review` overrides the
    /// rule's `review`.
    pub async fn promote(
        &self,
        actor: &Actor<'_>,
        model: &str,
        version: u64,
        alias: &str,
        review: Option<bool>,
    ) -> Result<Promotion, PromoteError> {
        registry::validate_alias(model, alias).map_err(|e| PromoteError::Registry(Box::new(e)))?;
        Self::authorize(actor, model, alias)?;
        let mv = self
            .store
            .read(|txn| registry::get_version(txn, model, version))
            .map_err(|e| PromoteError::Registry(Box::new(e)))?;
        let plan = plan(
            &self.config.rules,
            &mv,
            alias,
            review,
            self.config.content_base.as_deref(),
        )?;
        let review = plan.push_branch != plan.rule.branch;
        let target = self.target(&plan.rule, &plan.push_branch).await;
        let pushed = self
            .push(
                target,
                Change::Set(plan.values.clone()),
                plan.message.clone(),
            )
            .await?;
        let at = Timestamp::now();
        let mut record = Promotion {
            id: promotion_key(model, alias, at),
            kind: PromotionKind::Promote,
            model: model.to_string(),
            version,
            alias: alias.to_string(),
            repo: redact_url(&plan.rule.repo),
            branch: plan.rule.branch.clone(),
            pushed_branch: plan.push_branch.clone(),
            review,
            file: plan.rule.file.clone(),
            commit: pushed.commit.clone(),
            reverts: None,
            by: actor.subject.to_string(),
            at,
            previous_version: None,
            lineage_id: None,
            attempts: pushed.attempts,
            sync: None,
        };
        let rule_repo = plan.rule.repo.clone();
        let saved = self
            .store
            .write(move |txn| {
                let mut r = record.clone();
                if !r.review {
                    let previous =
                        registry::set_alias(txn, &r.model, &r.alias, r.version, &r.by, r.at)
                            .map_err(|e| PromoteError::Registry(Box::new(e)))?;
                    r.previous_version = previous.map(|p| p.version);
                }
                if let Some(commit) = &r.commit {
                    let link = PromotionLink {
                        model: r.model.clone(),
                        version: r.version,
                        alias: r.alias.clone(),
                        repo: redact_url(&rule_repo),
                        path: r.file.clone(),
                        commit: commit.clone(),
                        application: None,
                    };
                    r.lineage_id = Some(
                        graph::record_promotion(txn, &link)
                            .map_err(|e| PromoteError::Graph(Box::new(e)))?,
                    );
                }
                put(txn, &r)?;
                Ok::<_, PromoteError>(r)
            })
            .await?;
        record = saved;
        tracing::info!(
            model = %record.model,
            version = record.version,
            alias = %record.alias,
            commit = record.commit.as_deref().unwrap_or("none"),
            review = record.review,
            by = %record.by,
            "model promoted"
        );
        Ok(record)
    }

    /// Reverts the latest promotion of (model, alias): a revert commit, the alias back to the
    /// version it had before, recorded like a promotion.
    pub async fn rollback(
        &self,
        actor: &Actor<'_>,
        model: &str,
        alias: &str,
    ) -> Result<Promotion, PromoteError> {
        registry::validate_alias(model, alias).map_err(|e| PromoteError::Registry(Box::new(e)))?;
        Self::authorize(actor, model, alias)?;
        let nothing = || PromoteError::NothingToRollBack {
            model: model.to_string(),
            alias: alias.to_string(),
        };
        let last = self
            .store
            .read(|txn| latest_promotion(txn, model, alias))?
            .ok_or_else(nothing)?;
        let (Some(commit), Some(back_to)) = (last.commit.clone(), last.previous_version) else {
            return Err(nothing());
        };
        let rule = rule::find_rule(&self.config.rules, model, alias)
            .ok_or_else(|| PromoteError::NoRule {
                model: model.to_string(),
                alias: alias.to_string(),
            })?
            .clone();
        let message = rule::commit_message(&CommitInfo {
            model,
            version: back_to,
            alias,
            file: &last.file,
            lineage_id: None,
            run: None,
            reverts: Some(&commit),
        });
        let mut target = self.target(&rule, &rule.branch).await;
        target.file = last.file.clone();
        let pushed = self
            .push(target, Change::Revert(commit.clone()), message)
            .await?;
        let at = Timestamp::now();
        let record = Promotion {
            id: promotion_key(model, alias, at),
            kind: PromotionKind::Rollback,
            model: model.to_string(),
            version: back_to,
            alias: alias.to_string(),
            repo: redact_url(&rule.repo),
            branch: rule.branch.clone(),
            pushed_branch: rule.branch.clone(),
            review: false,
            file: last.file.clone(),
            commit: pushed.commit.clone(),
            reverts: Some(commit),
            by: actor.subject.to_string(),
            at,
            previous_version: Some(last.version),
            lineage_id: None,
            attempts: pushed.attempts,
            sync: None,
        };
        let repo = redact_url(&rule.repo);
        let saved = self
            .store
            .write(move |txn| {
                let mut r = record.clone();
                registry::set_alias(txn, &r.model, &r.alias, r.version, &r.by, r.at)
                    .map_err(|e| PromoteError::Registry(Box::new(e)))?;
                if let Some(commit) = &r.commit {
                    let link = PromotionLink {
                        model: r.model.clone(),
                        version: r.version,
                        alias: r.alias.clone(),
                        repo: repo.clone(),
                        path: r.file.clone(),
                        commit: commit.clone(),
                        application: None,
                    };
                    r.lineage_id = Some(
                        graph::record_promotion(txn, &link)
                            .map_err(|e| PromoteError::Graph(Box::new(e)))?,
                    );
                }
                put(txn, &r)?;
                Ok::<_, PromoteError>(r)
            })
            .await?;
        tracing::info!(
            model = %saved.model,
            alias = %saved.alias,
            version = saved.version,
            commit = saved.commit.as_deref().unwrap_or("none"),
            by = %saved.by,
            "model promotion rolled back"
        );
        Ok(saved)
    }
}

#[cfg(test)]
mod tests;
