//! Artifact repository resolution (pure): Argo's `spec.artifactRepositoryRef {configMap, key}`
//! → a key of a ConfigMap in the workflow's namespace (default name `artifact-repositories`,
//! default key from its annotation `workflows.argoproj.io/default-artifact-repository`); with
//! no reference and no such ConfigMap (or no default annotation), cairn's built-in store.
//!
//! The result is recorded in `.status.artifactRepositoryRef` ([`Resolved::status`]) as Argo
//! records it, so a workflow keeps the repository it started with.
//!
//! Supported repository kinds: `s3` (S3-compatible: `endpoint`, `bucket`, `region`,
//! `insecure`, `accessKeySecret` / `secretKeySecret` (Secret key selectors), `keyFormat`);
//! anything else is refused naming the ConfigMap, the key and the field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::ArtifactError;

/// Argo's default name of the repositories ConfigMap.
pub const DEFAULT_CONFIGMAP: &str = "artifact-repositories";
/// Annotation naming the default key of that ConfigMap.
pub const DEFAULT_KEY_ANNOTATION: &str = "workflows.argoproj.io/default-artifact-repository";

/// A Secret key selector (`{name, key}`); the value itself never passes through cairn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRef {
    /// Secret name (in the workflow's namespace).
    pub name: String,
    /// Key in the Secret.
    pub key: String,
}

/// An S3-compatible location: a repository, or one artifact's (then `key` is set).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Repository {
    /// `host[:port]` (Argo's form) or a URL.
    #[serde(default)]
    pub endpoint: String,
    /// Bucket.
    #[serde(default)]
    pub bucket: String,
    /// Region (default `us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Plain HTTP instead of HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    /// Access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_secret: Option<SecretRef>,
    /// Secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_secret: Option<SecretRef>,
    /// Object key (an artifact's location).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// Key pattern of outputs (a repository's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_format: Option<String>,
}

impl S3Repository {
    /// Parses Argo's `s3` object; `field` is its path for messages (`template` the template or
    /// the ConfigMap it comes from).
    pub fn from_json(
        template: &str,
        field: &str,
        obj: &Map<String, Value>,
    ) -> Result<Self, ArtifactError> {
        let invalid = |f: &str, expected: &str| ArtifactError::Invalid {
            template: template.to_string(),
            field: format!("{field}.{f}"),
            expected: expected.to_string(),
        };
        let string = |f: &str| -> Result<Option<String>, ArtifactError> {
            match obj.get(f) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(invalid(f, "a string")),
            }
        };
        let secret = |f: &str| -> Result<Option<SecretRef>, ArtifactError> {
            match obj.get(f) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Object(sel)) => {
                    let part = |k: &str| {
                        sel.get(k)
                            .and_then(Value::as_str)
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .ok_or_else(|| invalid(&format!("{f}.{k}"), "a non-empty string"))
                    };
                    Ok(Some(SecretRef {
                        name: part("name")?,
                        key: part("key")?,
                    }))
                }
                Some(_) => Err(invalid(f, "a Secret key selector {name, key}")),
            }
        };
        let insecure = match obj.get("insecure") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(invalid("insecure", "a boolean")),
        };
        if obj.get("useSDKCreds") == Some(&Value::Bool(true)) {
            return Err(ArtifactError::Unsupported {
                template: template.to_string(),
                field: format!("{field}.useSDKCreds"),
                what: "SDK (IRSA / instance) credentials".to_string(),
                supported: "accessKeySecret and secretKeySecret".to_string(),
            });
        }
        Ok(Self {
            endpoint: string("endpoint")?.unwrap_or_default(),
            bucket: string("bucket")?.unwrap_or_default(),
            region: string("region")?,
            insecure,
            access_key_secret: secret("accessKeySecret")?,
            secret_key_secret: secret("secretKeySecret")?,
            key: string("key")?.unwrap_or_default(),
            key_format: string("keyFormat")?,
        })
    }

    /// Fills what this location leaves unset from `repo` (Argo's key-only artifacts).
    pub fn fill_from(&mut self, repo: &S3Repository) {
        if self.endpoint.is_empty() {
            self.endpoint.clone_from(&repo.endpoint);
        }
        if self.bucket.is_empty() {
            self.bucket.clone_from(&repo.bucket);
        }
        if self.region.is_none() {
            self.region.clone_from(&repo.region);
        }
        if self.insecure.is_none() {
            self.insecure = repo.insecure;
        }
        if self.access_key_secret.is_none() {
            self.access_key_secret.clone_from(&repo.access_key_secret);
        }
        if self.secret_key_secret.is_none() {
            self.secret_key_secret.clone_from(&repo.secret_key_secret);
        }
        if self.key_format.is_none() {
            self.key_format.clone_from(&repo.key_format);
        }
    }

    /// Refuses a location that cannot be reached: no endpoint, no bucket, one credential
    /// without the other.
    pub fn check(&self, template: &str, field: &str) -> Result<(), ArtifactError> {
        let missing = |f: &str, expected: &str| ArtifactError::Invalid {
            template: template.to_string(),
            field: format!("{field}.{f}"),
            expected: expected.to_string(),
        };
        if self.endpoint.is_empty() {
            return Err(missing(
                "endpoint",
                "an endpoint (inline, or from the artifact repository)",
            ));
        }
        if self.bucket.is_empty() {
            return Err(missing(
                "bucket",
                "a bucket (inline, or from the artifact repository)",
            ));
        }
        match (&self.access_key_secret, &self.secret_key_secret) {
            (Some(_), None) => Err(missing(
                "secretKeySecret",
                "a Secret key selector, since accessKeySecret is set",
            )),
            (None, Some(_)) => Err(missing(
                "accessKeySecret",
                "a Secret key selector, since secretKeySecret is set",
            )),
            _ => Ok(()),
        }
    }

    /// The base URL of the endpoint: `http(s)://host[:port]`.
    pub fn endpoint_url(&self) -> String {
        if self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://") {
            self.endpoint.trim_end_matches('/').to_string()
        } else if self.insecure == Some(true) {
            format!("http://{}", self.endpoint)
        } else {
            format!("https://{}", self.endpoint)
        }
    }

    /// Argo's JSON of this location (no credential values: selectors only).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Where outputs go when an artifact names no location of its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
// One value per workflow, cloned per pod request: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum ArtifactRepository {
    /// cairn's built-in store (no repository configured).
    #[default]
    Builtin,
    /// An S3-compatible repository.
    S3(S3Repository),
}

/// Errors of resolution: each names the ConfigMap, the key and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepositoryError {
    /// The referenced ConfigMap does not exist.
    #[error("spec.artifactRepositoryRef: ConfigMap {namespace}/{name} not found")]
    NoConfigMap {
        /// Namespace.
        namespace: String,
        /// ConfigMap name.
        name: String,
    },
    /// No key was given and the ConfigMap has no default annotation.
    #[error(
        "spec.artifactRepositoryRef: ConfigMap {namespace}/{name}: no key given and no {DEFAULT_KEY_ANNOTATION} annotation"
    )]
    NoDefaultKey {
        /// Namespace.
        namespace: String,
        /// ConfigMap name.
        name: String,
    },
    /// The key is not in the ConfigMap.
    #[error("spec.artifactRepositoryRef: ConfigMap {namespace}/{name} has no key {key:?}")]
    NoKey {
        /// Namespace.
        namespace: String,
        /// ConfigMap name.
        name: String,
        /// Key.
        key: String,
    },
    /// The key's value is not a valid repository.
    #[error("ConfigMap {namespace}/{name} key {key:?}: {message}")]
    Invalid {
        /// Namespace.
        namespace: String,
        /// ConfigMap name.
        name: String,
        /// Key.
        key: String,
        /// What is wrong (names the field).
        message: String,
    },
    /// `spec.artifactRepositoryRef` itself is malformed.
    #[error("spec.artifactRepositoryRef.{field}: expected {expected}")]
    BadRef {
        /// Field.
        field: String,
        /// What was expected.
        expected: String,
    },
}

/// A ConfigMap as resolution reads it (the shell fetches it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigMapData {
    /// `data`.
    pub data: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
}

/// A resolved repository and what to record in `.status.artifactRepositoryRef`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The repository.
    pub repository: ArtifactRepository,
    /// Argo's `ArtifactRepositoryRefStatus` JSON.
    pub status: Value,
}

/// The ConfigMap name a workflow's repository lives in (to fetch before [`resolve`]).
pub fn configmap_name(spec_ref: Option<&Value>) -> Result<String, RepositoryError> {
    match spec_ref.filter(|v| !v.is_null()) {
        None => Ok(DEFAULT_CONFIGMAP.to_string()),
        Some(Value::Object(r)) => match r.get("configMap") {
            None | Some(Value::Null) => Ok(DEFAULT_CONFIGMAP.to_string()),
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::String(_)) => Ok(DEFAULT_CONFIGMAP.to_string()),
            Some(_) => Err(RepositoryError::BadRef {
                field: "configMap".to_string(),
                expected: "a ConfigMap name".to_string(),
            }),
        },
        Some(_) => Err(RepositoryError::BadRef {
            field: "(itself)".to_string(),
            expected: "an object {configMap, key}".to_string(),
        }),
    }
}

/// Resolves the repository of a workflow in `namespace` from its `spec.artifactRepositoryRef`
/// and the ConfigMap named by [`configmap_name`] (`None`: it does not exist). Pure.
pub fn resolve(
    namespace: &str,
    spec_ref: Option<&Value>,
    configmap: Option<&ConfigMapData>,
) -> Result<Resolved, RepositoryError> {
    let name = configmap_name(spec_ref)?;
    let explicit = spec_ref.is_some_and(|v| !v.is_null());
    let given_key = match spec_ref.and_then(|r| r.get("key")) {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) if !k.is_empty() => Some(k.clone()),
        Some(Value::String(_)) => None,
        Some(_) => {
            return Err(RepositoryError::BadRef {
                field: "key".to_string(),
                expected: "a string".to_string(),
            });
        }
    };
    let builtin = || Resolved {
        repository: ArtifactRepository::Builtin,
        status: json!({"default": true, "artifactRepository": {"cairn": {}}}),
    };
    let Some(cm) = configmap else {
        return if explicit {
            Err(RepositoryError::NoConfigMap {
                namespace: namespace.to_string(),
                name,
            })
        } else {
            Ok(builtin())
        };
    };
    let key = match given_key.or_else(|| cm.annotations.get(DEFAULT_KEY_ANNOTATION).cloned()) {
        Some(key) => key,
        None if explicit => {
            return Err(RepositoryError::NoDefaultKey {
                namespace: namespace.to_string(),
                name,
            });
        }
        None => return Ok(builtin()),
    };
    let Some(text) = cm.data.get(&key) else {
        return Err(RepositoryError::NoKey {
            namespace: namespace.to_string(),
            name,
            key,
        });
    };
    let invalid = |message: String| RepositoryError::Invalid {
        namespace: namespace.to_string(),
        name: name.clone(),
        key: key.clone(),
        message,
    };
    let value: Value = serde_saphyr::from_str(text)
        .map_err(|e| invalid(format!("not a YAML repository object: {e}")))?;
    let Value::Object(obj) = &value else {
        return Err(invalid(
            "expected a YAML object such as `s3: {endpoint, bucket, ...}`".to_string(),
        ));
    };
    let origin = format!("ConfigMap {namespace}/{name} key {key}");
    let mut repository = None;
    for (kind, body) in obj {
        match (kind.as_str(), body) {
            ("archiveLogs", _) => {}
            ("s3", Value::Object(s3)) => {
                let s3 = S3Repository::from_json(&origin, "s3", s3)
                    .map_err(|e| invalid(e.to_string()))?;
                s3.check(&origin, "s3")
                    .map_err(|e| invalid(e.to_string()))?;
                repository = Some(ArtifactRepository::S3(s3));
            }
            ("s3", _) => return Err(invalid("s3: expected an object".to_string())),
            (other, _) => {
                return Err(invalid(format!(
                    "{other}: repository kind not supported by cairn (supported: s3; without a repository cairn uses its built-in store)"
                )));
            }
        }
    }
    let Some(repository) = repository else {
        return Err(invalid("no repository (expected `s3:`)".to_string()));
    };
    Ok(Resolved {
        repository,
        status: json!({
            "configMap": name,
            "key": key,
            "namespace": namespace,
            "artifactRepository": value,
        }),
    })
}

/// The repository recorded in `.status.artifactRepositoryRef` (what [`Resolved::status`]
/// wrote), `None` when nothing usable is recorded.
pub fn from_status(status: &Value) -> Option<ArtifactRepository> {
    let repo = status.get("artifactRepository")?;
    if repo.get("cairn").is_some() {
        return Some(ArtifactRepository::Builtin);
    }
    let s3 = repo.get("s3")?.as_object()?;
    S3Repository::from_json("status", "artifactRepositoryRef.artifactRepository.s3", s3)
        .ok()
        .map(ArtifactRepository::S3)
}
