//! Workflow artifacts: where a step's input artifacts come from and where its output artifacts
//! go, as Argo Workflows' "Artifacts" and "Configuring your artifact repository" describe them.
//!
//! This module is the pure core: the template's `inputs.artifacts` / `outputs.artifacts` (Argo's
//! JSON, kept as written) become the executor's [`InputArtifact`] / [`OutputArtifact`] specs
//! ([`input_spec`], [`output_spec`]), with the output key from the repository's `keyFormat` or
//! Argo's default `{{workflow.name}}/{{pod.name}}/<file>` ([`output_key`]), the archive strategy
//! ([`Archive::of`]: `tar` (gzip) by default, `none` for a single file), and the artifact JSON
//! the executor reports ([`reported`]: location + `digest` + `size`). Repository resolution
//! (`spec.artifactRepositoryRef` → a ConfigMap key, or the built-in store) is in [`repository`].
//!
//! The I/O edges are thin: [`store`] (cairn's built-in content-addressed store in the data dir),
//! [`routes`] (the HTTP routes the executor uploads to and downloads from, authenticated with
//! the pod's projected service-account token through a TokenReview) and [`transfer`] (the
//! executor side: archive, extract, upload, download with bounded retries).
//!
//! Location of an artifact in cairn's built-in store (not an Argo location; Argo clients ignore
//! unknown fields): `cairn: {key: "<workflow>/<pod>/<file>"}`, the key relative to the workflow's
//! namespace. Every artifact an executor reports carries `digest: "sha256:<hex>"` (of the stored
//! bytes, i.e. of the archive when archived) and `size` (bytes stored), which lineage reads and
//! which a consumer verifies on download.
//!
//! Invariants:
//! - Everything here is total on input: a malformed artifact is an [`ArtifactError`] naming the
//!   template, the artifact and the field, never a panic.
//! - No credential value ever passes through this module: S3 credentials are Secret key
//!   selectors, resolved by the kubelet into the executor's environment.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub mod cluster;
pub mod repository;
pub mod routes;
pub mod s3;
pub mod store;
pub mod transfer;

pub use repository::{ArtifactRepository, S3Repository, SecretRef};

/// Location key of cairn's built-in store in an artifact's JSON.
pub const BUILTIN_LOCATION: &str = "cairn";

/// Argo's default key pattern when a repository sets no `keyFormat`; the file name is appended.
pub const DEFAULT_KEY_PATTERN: &str = "{{workflow.name}}/{{pod.name}}";

/// Errors of artifact specs. Each names the template, the artifact and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    /// A field is missing or has the wrong shape.
    #[error("template {template:?}: {field}: expected {expected}")]
    Invalid {
        /// Template name.
        template: String,
        /// Path of the field (`outputs.artifacts[0].path`).
        field: String,
        /// What was expected.
        expected: String,
    },
    /// A location or archive cairn does not implement.
    #[error("template {template:?}: {field}: {what} is not supported by cairn ({supported})")]
    Unsupported {
        /// Template name.
        template: String,
        /// Path of the field.
        field: String,
        /// What was found.
        what: String,
        /// What is supported instead.
        supported: String,
    },
    /// A `keyFormat` uses a variable cairn does not know.
    #[error(
        "artifact repository: keyFormat {format:?}: unknown variable {{{{{variable}}}}} (known: workflow.name, workflow.namespace, workflow.uid, pod.name, artifact.name)"
    )]
    KeyFormat {
        /// The format.
        format: String,
        /// The unknown variable.
        variable: String,
    },
}

/// How an output is stored: Argo's `archive` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Archive {
    /// gzip-compressed tar holding one entry named after the path's last component (Argo's
    /// default, `archive: {tar: {}}`).
    Tar,
    /// The file's bytes as they are (`archive: {none: {}}`); only for a single file.
    None,
}

impl Archive {
    /// The archive of an artifact's JSON (`archive` absent → tar, as Argo); `field` is the path
    /// of the artifact for messages.
    pub fn of(
        template: &str,
        field: &str,
        art: &Map<String, Value>,
    ) -> Result<Self, ArtifactError> {
        let Some(archive) = art.get("archive").filter(|v| !v.is_null()) else {
            return Ok(Self::Tar);
        };
        let Value::Object(strategy) = archive else {
            return Err(ArtifactError::Invalid {
                template: template.to_string(),
                field: format!("{field}.archive"),
                expected: "an object: {tar: {}} or {none: {}}".to_string(),
            });
        };
        let keys: Vec<&str> = strategy.keys().map(String::as_str).collect();
        match keys.as_slice() {
            [] | ["tar"] => Ok(Self::Tar),
            ["none"] => Ok(Self::None),
            [other] => Err(ArtifactError::Unsupported {
                template: template.to_string(),
                field: format!("{field}.archive.{other}"),
                what: format!("archive strategy {other:?}"),
                supported: "tar, none".to_string(),
            }),
            _ => Err(ArtifactError::Invalid {
                template: template.to_string(),
                field: format!("{field}.archive"),
                expected: "exactly one strategy: tar or none".to_string(),
            }),
        }
    }

    /// The JSON Argo writes for it.
    pub fn to_json(self) -> Value {
        match self {
            Self::Tar => json!({"tar": {}}),
            Self::None => json!({"none": {}}),
        }
    }
}

/// Where an input comes from or an output goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Location {
    /// cairn's built-in store: `key` relative to the workflow's namespace.
    Builtin {
        /// Object key.
        key: String,
    },
    /// An S3-compatible bucket.
    S3(S3Repository),
    /// Inline content (`raw.data`), inputs only.
    Raw {
        /// The content.
        data: String,
    },
    /// An HTTP(S) URL (`http.url`), inputs only; fetched with GET, no credentials.
    Http {
        /// The URL.
        url: String,
    },
}

/// One input artifact for the executor's init step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputArtifact {
    /// Artifact name.
    pub name: String,
    /// Where the main container sees it.
    pub path: PathBuf,
    /// File mode to set (Argo's `mode`), on a file or on every file of a directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Whether a missing artifact is skipped instead of failing the node.
    #[serde(default)]
    pub optional: bool,
    /// Where it comes from; `None` for an optional artifact that was not supplied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// How it was stored when known (`None`: detected from the bytes, as Argo does for
    /// artifacts it did not produce).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<Archive>,
    /// `sha256:<hex>` recorded by the producer; the download is verified against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Environment variables with the S3 credentials (S3 locations with Secret selectors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<s3::CredentialEnv>,
}

/// One output artifact for the executor's main step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputArtifact {
    /// Artifact name.
    pub name: String,
    /// Where the command leaves it (relative paths: against the working directory).
    pub path: PathBuf,
    /// Whether a missing path is skipped instead of failing the node.
    #[serde(default)]
    pub optional: bool,
    /// How it is stored.
    pub archive: Archive,
    /// Where it goes (the key already formatted).
    pub location: Location,
    /// Environment variables with the S3 credentials (S3 locations with Secret selectors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<s3::CredentialEnv>,
}

/// What the executor stored for one output: the artifact as Argo reports it plus the digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stored {
    /// Artifact name.
    pub name: String,
    /// `sha256:<hex>` of the stored bytes.
    pub digest: String,
    /// Bytes stored.
    pub size: u64,
}

/// The artifact JSON an executor reports in `outputs.artifacts` (Argo's shape: `name`, `path`,
/// `archive`, the location), plus `digest` and `size`. Pure.
pub fn reported(out: &OutputArtifact, stored: &Stored) -> Value {
    let mut art = Map::new();
    art.insert("name".into(), json!(out.name));
    art.insert("path".into(), json!(out.path.to_string_lossy()));
    art.insert("archive".into(), out.archive.to_json());
    match &out.location {
        Location::Builtin { key } => {
            art.insert(BUILTIN_LOCATION.into(), json!({"key": key}));
        }
        Location::S3(s3) => {
            art.insert("s3".into(), s3.to_json());
        }
        Location::Raw { data } => {
            art.insert("raw".into(), json!({"data": data}));
        }
        Location::Http { url } => {
            art.insert("http".into(), json!({"url": url}));
        }
    }
    art.insert("digest".into(), json!(stored.digest));
    art.insert("size".into(), json!(stored.size));
    Value::Object(art)
}

/// Variables of a key format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVars<'a> {
    /// Workflow name.
    pub workflow_name: &'a str,
    /// Workflow namespace.
    pub namespace: &'a str,
    /// Workflow uid.
    pub workflow_uid: &'a str,
    /// Pod name.
    pub pod_name: &'a str,
}

/// The key of an output: `keyFormat` rendered (Argo: the whole key), or Argo's default
/// `{{workflow.name}}/{{pod.name}}/<file>` where the file is `<name>.tgz` when archived, the
/// path's last component otherwise. Pure.
pub fn output_key(
    key_format: Option<&str>,
    vars: &KeyVars<'_>,
    name: &str,
    path: &str,
    archive: Archive,
) -> Result<String, ArtifactError> {
    let rendered = |format: &str| render_key(format, vars, name);
    match key_format.filter(|f| !f.trim().is_empty()) {
        Some(format) => rendered(format),
        None => {
            let file = match archive {
                Archive::Tar => format!("{name}.tgz"),
                Archive::None => path
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .filter(|f| !f.is_empty())
                    .unwrap_or(name)
                    .to_string(),
            };
            Ok(format!("{}/{file}", rendered(DEFAULT_KEY_PATTERN)?))
        }
    }
}

fn render_key(format: &str, vars: &KeyVars<'_>, artifact: &str) -> Result<String, ArtifactError> {
    let mut out = String::new();
    let mut rest = format;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let variable = after[..end].trim();
        let value = match variable {
            "workflow.name" => vars.workflow_name,
            "workflow.namespace" => vars.namespace,
            "workflow.uid" => vars.workflow_uid,
            "pod.name" => vars.pod_name,
            "artifact.name" => artifact,
            other => {
                return Err(ArtifactError::KeyFormat {
                    format: format.to_string(),
                    variable: other.to_string(),
                });
            }
        };
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Argo's artifact location fields cairn does not implement.
const UNSUPPORTED_LOCATIONS: &[&str] = &[
    "gcs",
    "git",
    "artifactory",
    "hdfs",
    "oss",
    "azure",
    "plugin",
];

fn field_str<'a>(
    template: &str,
    field: &str,
    art: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, ArtifactError> {
    match art.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ArtifactError::Invalid {
            template: template.to_string(),
            field: format!("{field}.{key}"),
            expected: "a string".to_string(),
        }),
    }
}

fn as_object<'a>(
    template: &str,
    field: &str,
    art: &'a Value,
) -> Result<&'a Map<String, Value>, ArtifactError> {
    art.as_object().ok_or_else(|| ArtifactError::Invalid {
        template: template.to_string(),
        field: field.to_string(),
        expected: "an artifact object".to_string(),
    })
}

fn name_of(template: &str, field: &str, art: &Map<String, Value>) -> Result<String, ArtifactError> {
    match field_str(template, field, art, "name")? {
        Some(name) if !name.is_empty() => Ok(name.to_string()),
        _ => Err(ArtifactError::Invalid {
            template: template.to_string(),
            field: format!("{field}.name"),
            expected: "a non-empty name".to_string(),
        }),
    }
}

fn optional_of(art: &Map<String, Value>) -> bool {
    art.get("optional") == Some(&Value::Bool(true))
}

/// The executor spec of one input artifact (`inputs.artifacts[index]`, its location filled by
/// the operator from an argument or written inline). Pure.
pub fn input_spec(
    template: &str,
    index: usize,
    art: &Value,
    repository: &ArtifactRepository,
) -> Result<InputArtifact, ArtifactError> {
    let field = format!("inputs.artifacts[{index}]");
    let obj = as_object(template, &field, art)?;
    let name = name_of(template, &field, obj)?;
    let field = format!("inputs.artifacts.{name}");
    let path = match field_str(template, &field, obj, "path")? {
        Some(p) if p.starts_with('/') => PathBuf::from(p),
        _ => {
            return Err(ArtifactError::Invalid {
                template: template.to_string(),
                field: format!("{field}.path"),
                expected: "an absolute path where the artifact is placed".to_string(),
            });
        }
    };
    let mode = match obj.get("mode") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64().and_then(|m| u32::try_from(m).ok()) {
            Some(m) if m <= 0o7777 => Some(m),
            _ => {
                return Err(ArtifactError::Invalid {
                    template: template.to_string(),
                    field: format!("{field}.mode"),
                    expected: "a file mode (an integer up to 4095, e.g. 493 for 0755)".to_string(),
                });
            }
        },
    };
    let mut location = location_of(template, &field, obj, true)?;
    if let Some(Location::S3(s3)) = location.as_mut() {
        // Key-only artifacts take the bucket and endpoint from the repository.
        if let ArtifactRepository::S3(repo) = repository {
            s3.fill_from(repo);
        }
        s3.check(template, &format!("{field}.s3"))?;
    }
    let credentials = credentials_of(location.as_ref(), "IN", index);
    let archive = if obj.get("archive").is_some_and(|a| !a.is_null()) {
        Some(Archive::of(template, &field, obj)?)
    } else {
        None
    };
    let digest = field_str(template, &field, obj, "digest")?.map(str::to_string);
    Ok(InputArtifact {
        name,
        path,
        mode,
        optional: optional_of(obj),
        location,
        archive,
        digest,
        credentials,
    })
}

fn credentials_of(
    location: Option<&Location>,
    direction: &str,
    index: usize,
) -> Option<s3::CredentialEnv> {
    match location {
        Some(Location::S3(s3)) if s3.access_key_secret.is_some() => {
            Some(s3::credential_env(direction, index))
        }
        _ => None,
    }
}

/// The location written in an artifact, if any: `cairn`, `s3`, `raw` (inputs), `http`
/// (inputs); other Argo locations are refused by name.
fn location_of(
    template: &str,
    field: &str,
    obj: &Map<String, Value>,
    input: bool,
) -> Result<Option<Location>, ArtifactError> {
    for key in UNSUPPORTED_LOCATIONS {
        if obj.get(*key).is_some_and(|v| !v.is_null()) {
            return Err(ArtifactError::Unsupported {
                template: template.to_string(),
                field: format!("{field}.{key}"),
                what: format!("the {key} artifact location"),
                supported: if input {
                    "s3, raw, http and cairn's built-in store".to_string()
                } else {
                    "s3 and cairn's built-in store".to_string()
                },
            });
        }
    }
    let sub = |key: &str| -> Result<Option<&Map<String, Value>>, ArtifactError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) => Ok(Some(o)),
            Some(_) => Err(ArtifactError::Invalid {
                template: template.to_string(),
                field: format!("{field}.{key}"),
                expected: "an object".to_string(),
            }),
        }
    };
    if let Some(loc) = sub(BUILTIN_LOCATION)? {
        let f = format!("{field}.{BUILTIN_LOCATION}");
        let key = field_str(template, &f, loc, "key")?.unwrap_or_default();
        if key.is_empty() {
            return Err(ArtifactError::Invalid {
                template: template.to_string(),
                field: format!("{f}.key"),
                expected: "a key".to_string(),
            });
        }
        return Ok(Some(Location::Builtin {
            key: key.to_string(),
        }));
    }
    if let Some(loc) = sub("s3")? {
        let s3 = S3Repository::from_json(template, &format!("{field}.s3"), loc)?;
        return Ok(Some(Location::S3(s3)));
    }
    if input {
        if let Some(loc) = sub("raw")? {
            let data =
                field_str(template, &format!("{field}.raw"), loc, "data")?.unwrap_or_default();
            return Ok(Some(Location::Raw {
                data: data.to_string(),
            }));
        }
        if let Some(loc) = sub("http")? {
            let f = format!("{field}.http");
            let url = field_str(template, &f, loc, "url")?.unwrap_or_default();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ArtifactError::Invalid {
                    template: template.to_string(),
                    field: format!("{f}.url"),
                    expected: "an http:// or https:// URL".to_string(),
                });
            }
            if loc.get("headers").is_some() || loc.get("auth").is_some() {
                return Err(ArtifactError::Unsupported {
                    template: template.to_string(),
                    field: f,
                    what: "http headers/auth".to_string(),
                    supported: "a plain GET of the url".to_string(),
                });
            }
            return Ok(Some(Location::Http {
                url: url.to_string(),
            }));
        }
    } else {
        for key in ["raw", "http"] {
            if obj.get(key).is_some_and(|v| !v.is_null()) {
                return Err(ArtifactError::Unsupported {
                    template: template.to_string(),
                    field: format!("{field}.{key}"),
                    what: format!("an output to a {key} location"),
                    supported: "s3 and cairn's built-in store".to_string(),
                });
            }
        }
    }
    Ok(None)
}

/// The executor spec of one output artifact: its archive, and where it goes — an inline `s3:`
/// location (its key kept, or formatted when absent), else the workflow's repository, else the
/// built-in store. Pure.
pub fn output_spec(
    template: &str,
    index: usize,
    art: &Value,
    repository: &ArtifactRepository,
    vars: &KeyVars<'_>,
) -> Result<OutputArtifact, ArtifactError> {
    let field = format!("outputs.artifacts[{index}]");
    let obj = as_object(template, &field, art)?;
    let name = name_of(template, &field, obj)?;
    let field = format!("outputs.artifacts.{name}");
    let path = match field_str(template, &field, obj, "path")? {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => {
            return Err(ArtifactError::Invalid {
                template: template.to_string(),
                field: format!("{field}.path"),
                expected: "the path the step writes the artifact to".to_string(),
            });
        }
    };
    let archive = Archive::of(template, &field, obj)?;
    let key = |format: Option<&str>| output_key(format, vars, &name, &path, archive);
    let location = match location_of(template, &field, obj, false)? {
        Some(Location::S3(mut s3)) => {
            // An inline location without a key (or a partial one) takes the rest from the
            // repository, as Argo merges an artifact with its repository.
            if let ArtifactRepository::S3(repo) = repository {
                s3.fill_from(repo);
            }
            if s3.key.is_empty() {
                s3.key = key(s3.key_format.as_deref())?;
            }
            s3.check(template, &format!("{field}.s3"))?;
            Location::S3(s3)
        }
        Some(Location::Builtin { key }) => Location::Builtin { key },
        Some(_) | None => match repository {
            ArtifactRepository::Builtin => Location::Builtin { key: key(None)? },
            ArtifactRepository::S3(repo) => {
                let mut s3 = repo.clone();
                s3.key = key(repo.key_format.as_deref())?;
                Location::S3(s3)
            }
        },
    };
    let credentials = credentials_of(Some(&location), "OUT", index);
    Ok(OutputArtifact {
        name,
        path: PathBuf::from(path),
        optional: optional_of(obj),
        archive,
        location,
        credentials,
    })
}

/// `sha256:<hex>` of bytes already hashed.
pub fn digest_string(hex: &str) -> String {
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests;
