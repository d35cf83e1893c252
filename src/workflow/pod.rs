//! The pod builder: turns a [`PodRequest`] (one attempt of a `container` or `script` node, its
//! template already resolved and substituted by the operator) into the core/v1 Pod the
//! controller creates, and turns what the controller later sees of that pod (and of the
//! executor's WorkflowTaskResult) into a [`PodObservation`] ([`observe`]).
//!
//! The pod is Argo's emissary pod with cairn as the executor:
//! - an init container `init` (the executor image, which holds only `/cairn`) runs
//!   `/cairn exec-init /var/run/cairn/cairn`, copying the static binary into the emptyDir
//!   `var-run-cairn`, mounted at [`PodSettings::mount_path`] in every cairn-managed container;
//! - the main container `main` is the template's container, everything the user wrote kept
//!   (image, env, resources, volumeMounts, workingDir, securityContext...), except that its
//!   `command` becomes `/var/run/cairn/cairn exec -- <command> <args>` (for a script:
//!   `... -- <command> <args> /var/run/cairn/script`, Argo's `command + args + [script file]`),
//!   `args` is folded into it, and the [`ExecSpec`] (outputs, result capture, limits, the
//!   script source) travels as JSON in [`SPEC_ENV`], next to the reporting variables
//!   ([`report::ENV_NODE_ID`] ...);
//! - pod-level settings follow Argo's `createWorkflowPod` / `addSchedulingConstraints` /
//!   `setupServiceAccount` (argoproj/argo-workflows `workflow/controller/workflowpod.go`): the
//!   template's `nodeSelector`, `tolerations`, `affinity`, `schedulerName`, `priorityClassName`,
//!   `securityContext`, `serviceAccountName`, `automountServiceAccountToken` win over the
//!   workflow's (`podPriorityClassName` there); `hostAliases` are the workflow's followed by the
//!   template's; `imagePullSecrets`, `hostNetwork`, `dnsPolicy`, `dnsConfig` are the workflow's;
//!   volumes are the template's own plus the workflow `volumes` and `volumeClaimTemplates`
//!   (claim `<workflow>-<name>`) that a container mounts, a mount of an unknown volume being an
//!   error (Argo: "volume '...' not found in workflow spec"); labels and annotations are the
//!   workflow's `podMetadata`, then the template's `metadata`, then cairn's own (which win, so
//!   a user label can never detach a pod from its workflow);
//! - `podSpecPatch` (the workflow's, then the template's; YAML or JSON) is applied last, as a
//!   strategic merge on the pod spec ([`patch`]).
//!
//! A node that needs nothing from the executor (no script, no captured `result`, no output
//! parameters, no input or output artifacts: [`needs_executor`]) gets the pod without it: no
//! `init` container, no `var-run-cairn` volume, `main` exactly as written (the image's
//! entrypoint when there is no `command`), and the annotation [`ANNOTATION_EXECUTOR`]` = none`
//! telling [`observe`] that the pod status is the whole report. Its outcome (exit code, message,
//! times) and its log come from the kubelet either way; what it saves is the executor's copy
//! into every pod, which was the largest part of a short step's start (the issue 5 benchmark).
//!
//! Invariants:
//! - [`build_pod`] is pure and total on input: every problem of the request is a [`PodError`]
//!   naming the template and the field, never a panic.
//! - The executor can always report: a pod with the executor whose service-account token is not
//!   mounted cannot write its WorkflowTaskResult, so `automountServiceAccountToken: false` is
//!   refused there (Argo refuses it too unless `executor.serviceAccountName` is set, which cairn
//!   does not support); a pod without the executor keeps it as written.
//! - [`ANNOTATION_EXECUTOR`] is on a pod exactly when it has no executor: cairn sets or removes
//!   it after the user's annotations, so `podMetadata` cannot make outputs look reported.
//! - cairn's labels, annotations, the `init` container, the `var-run-cairn` volume and the
//!   wrapped command are set after the user's values, so a template cannot break the contract
//!   with the controller (only an explicit `podSpecPatch` can, as in Argo).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Map, Value, json};

use super::artifacts::transfer::{ChannelSpec, staged_sub_path};
use super::artifacts::{self, InputArtifact, KeyVars, Location};
use super::executor::report;
use super::executor::{
    DEFAULT_OUTPUT_LIMIT_BYTES, ExecSpec, MAIN_CONTAINER, OutputParameter, SPEC_ENV, ValueFrom,
};
use super::node::{
    ANNOTATION_NODE_ID, ANNOTATION_NODE_NAME, LABEL_COMPLETED, LABEL_WORKFLOW, PodRequest,
};
use super::types::{Container, Parameter, any_string};

pub mod container_set;
mod observe;
pub mod patch;
mod rbac;

pub use container_set::{ANNOTATION_CONTAINER_SET, observe_containers};
pub use observe::{TERMINAL_WAITING_REASONS, observe};
pub use rbac::{EXECUTOR_ROLE, executor_rbac};

/// Set on a pod that runs without cairn's executor (value [`EXECUTOR_NONE`]): no
/// WorkflowTaskResult will come, the pod status is the whole report.
pub const ANNOTATION_EXECUTOR: &str = "workflows.cairn.dev/executor";
/// Value of [`ANNOTATION_EXECUTOR`] on a pod without the executor.
pub const EXECUTOR_NONE: &str = "none";
/// Name of the init container that installs the executor (Argo's `init`).
pub const INIT_CONTAINER: &str = "init";
/// Name of the emptyDir holding the executor binary and the script source.
pub const VOLUME_NAME: &str = "var-run-cairn";
/// Default mount path of [`VOLUME_NAME`] (Argo's emissary uses `/var/run/argo`).
pub const DEFAULT_MOUNT_PATH: &str = "/var/run/cairn";
/// Path of the binary inside the executor image.
pub const IMAGE_BINARY: &str = "/cairn";
/// The uid the init container runs as: not root, so pods under `runAsNonRoot` policies start
/// (Argo's executor runs as 8737 for the same reason).
pub const EXECUTOR_UID: i64 = 8737;
/// Largest [`SPEC_ENV`] value accepted: Linux refuses to exec a process with one environment
/// string over 128 KiB (`MAX_ARG_STRLEN`), which would fail the container with an obscure
/// error; refusing earlier names the template instead.
pub const MAX_SPEC_ENV_BYTES: usize = 120 * 1024;

/// The MLflow client's tracking-URI variable.
pub const MLFLOW_URI_ENV: &str = "MLFLOW_TRACKING_URI";
/// The [`MLFLOW_URI_ENV`] value that means "cairn's MLflow API, as this pod".
pub const MLFLOW_CAIRN: &str = "cairn";

/// Name of the projected service-account token volume (audience `cairn`) the executor
/// presents to cairn's artifact routes.
pub const TOKEN_VOLUME: &str = "cairn-token";
/// Where [`TOKEN_VOLUME`] is mounted.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/cairn-token";
/// Lifetime asked for the projected token: the kubelet refreshes it at 80 %, so a long step
/// still uploads with a valid one; one hour bounds what a leaked token is worth.
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3600;

/// The default executor image: the one `make executor` builds for this version of cairn.
pub fn default_executor_image() -> String {
    format!("localhost/cairn/executor:{}", crate::VERSION)
}

/// Controller-wide settings of the pods it builds.
#[derive(Clone, Debug, PartialEq)]
pub struct PodSettings {
    /// Image holding the static cairn binary at [`IMAGE_BINARY`].
    pub executor_image: String,
    /// Pull policy of the executor image (default `IfNotPresent`: the image is versioned).
    pub image_pull_policy: String,
    /// Resources of the init container (core/v1 ResourceRequirements as JSON); Argo's executor
    /// defaults: requests cpu 10m, memory 64Mi.
    pub executor_resources: Value,
    /// Where the shared emptyDir is mounted.
    pub mount_path: String,
    /// Size limit of each output (a parameter file, the result).
    pub output_limit_bytes: u64,
    /// Base URL at which pods reach cairn's executor routes (`[workflow] executor_url`);
    /// needed for artifacts in the built-in store.
    pub executor_url: Option<String>,
    /// Argo's image index (`[workflow.images]`): the entrypoint and cmd of images, by
    /// reference exactly as templates write it, for wrapped containers that give no `command`.
    pub images: BTreeMap<String, ImageCommand>,
}

/// One entry of Argo's image index (the workflow-controller ConfigMap's `images`): what the
/// image's config says, since neither Argo's emissary nor cairn's executor can run an image's
/// entrypoint without knowing it. The argv is `entrypoint` followed by the template's `args`,
/// or `cmd` when it gives none (the container runtime's rule).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageCommand {
    /// The image's `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// The image's `Cmd`.
    pub cmd: Vec<String>,
}

impl Default for PodSettings {
    fn default() -> Self {
        Self {
            executor_image: default_executor_image(),
            image_pull_policy: "IfNotPresent".to_string(),
            executor_resources: json!({"requests": {"cpu": "10m", "memory": "64Mi"}}),
            mount_path: DEFAULT_MOUNT_PATH.to_string(),
            output_limit_bytes: DEFAULT_OUTPUT_LIMIT_BYTES,
            executor_url: None,
            images: BTreeMap::new(),
        }
    }
}

impl PodSettings {
    /// Path of the executor binary inside the pod's containers.
    pub fn binary_path(&self) -> String {
        format!("{}/cairn", self.mount_path.trim_end_matches('/'))
    }

    /// Path where a script template's source is written.
    pub fn script_path(&self) -> String {
        format!("{}/script", self.mount_path.trim_end_matches('/'))
    }
}

/// Why a pod cannot be built. Each names the template and the field concerned.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// The template is not a `container` or `script` template.
    #[error(
        "template {template:?}: expected a `container` or `script` template to run as a pod, found {found}"
    )]
    NotAPodTemplate {
        /// Template name.
        template: String,
        /// What it is instead.
        found: String,
    },
    /// No command: cairn's executor needs the argv (it does not read image configs).
    #[error(
        "template {template:?}: `{field}` is required (cairn's executor runs the command itself and cannot read the image's entrypoint); set it, e.g. command: [sh, -c], or give the image's entrypoint in cairn.toml under [workflow.images.\"<image>\"] (Argo's image index)"
    )]
    MissingCommand {
        /// Template name.
        template: String,
        /// `container.command` or `script.command`.
        field: String,
    },
    /// A field does not have the expected shape.
    #[error("template {template:?}: `{field}`: expected {expected}")]
    InvalidField {
        /// Template name.
        template: String,
        /// Path of the field.
        field: String,
        /// What was expected.
        expected: String,
    },
    /// A container mounts a volume that neither the template nor the workflow declares.
    #[error(
        "template {template:?}: `{field}` mounts volume {volume:?}, which is not in the template's `volumes`, the workflow's `volumes` or its `volumeClaimTemplates`"
    )]
    UnknownVolume {
        /// Template name.
        template: String,
        /// Path of the volumeMount.
        field: String,
        /// The volume name.
        volume: String,
    },
    /// The service-account token is not mounted, so the executor could not report.
    #[error(
        "template {template:?}: `{field}: false` is not supported: cairn's executor reports outputs with the pod's service-account token"
    )]
    AutomountDisabled {
        /// Template name.
        template: String,
        /// `automountServiceAccountToken` of the template or `spec.automountServiceAccountToken`.
        field: String,
    },
    /// A `podSpecPatch` is not a YAML/JSON object, or does not apply.
    #[error("template {template:?}: `{field}` is invalid: {message}")]
    InvalidPodSpecPatch {
        /// Template name.
        template: String,
        /// `podSpecPatch` of the template or `spec.podSpecPatch`.
        field: String,
        /// Parser or merge message.
        message: String,
    },
    /// The executor spec is too large for an environment variable.
    #[error(
        "template {template:?}: the executor spec (outputs and script `source`) is {bytes} bytes, over the limit of {limit} bytes; move large scripts into the image or an input artifact"
    )]
    SpecTooLarge {
        /// Template name.
        template: String,
        /// Size of the JSON.
        bytes: usize,
        /// [`MAX_SPEC_ENV_BYTES`].
        limit: usize,
    },
    /// An input or output artifact cannot be set up.
    #[error("{0}")]
    Artifact(#[from] artifacts::ArtifactError),
    /// Artifacts of the built-in store, but pods cannot reach cairn.
    #[error(
        "template {template:?}: {field} uses cairn's built-in artifact store, but [workflow] executor_url (the URL step pods reach cairn at) is not set; set it or configure an artifact repository"
    )]
    NoExecutorUrl {
        /// Template name.
        template: String,
        /// The artifact concerned.
        field: String,
    },
    /// `MLFLOW_TRACKING_URI: cairn`, but pods cannot reach cairn.
    #[error(
        "template {template:?}: env MLFLOW_TRACKING_URI is \"cairn\" (log MLflow runs to cairn), but [workflow] executor_url (the URL step pods reach cairn at) is not set; set it or give the MLflow server's URL"
    )]
    NoExecutorUrlForMlflow {
        /// Template name.
        template: String,
    },
    /// The assembled pod is not a valid core/v1 Pod (a user field of the wrong type).
    #[error("template {template:?}: the pod built from it is not a valid core/v1 Pod: {message}")]
    InvalidPod {
        /// Template name.
        template: String,
        /// Deserializer message (names the offending field).
        message: String,
    },
}

impl PodError {
    /// Short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::NotAPodTemplate { .. } => "not_a_pod_template",
            Self::MissingCommand { .. } => "missing_command",
            Self::InvalidField { .. } => "invalid_field",
            Self::UnknownVolume { .. } => "unknown_volume",
            Self::AutomountDisabled { .. } => "automount_disabled",
            Self::InvalidPodSpecPatch { .. } => "invalid_pod_spec_patch",
            Self::SpecTooLarge { .. } => "spec_too_large",
            Self::InvalidPod { .. } => "invalid_pod",
            Self::Artifact(_) => "artifact",
            Self::NoExecutorUrl { .. } | Self::NoExecutorUrlForMlflow { .. } => "no_executor_url",
        }
    }
}

/// Which container field of the template runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Container,
    Script,
    /// One container of a `containerSet` ([`container_set`]).
    ContainerSet,
}

impl Kind {
    fn field(self) -> &'static str {
        match self {
            Self::Container => "container",
            Self::Script => "script",
            Self::ContainerSet => "containerSet.containers",
        }
    }
}

/// Builds the pod of one node attempt. Pure; see the module docs for what the pod holds.
pub fn build_pod(req: &PodRequest, settings: &PodSettings) -> Result<Pod, PodError> {
    let tmpl = &req.template;
    let name = tmpl.name.as_str();
    if tmpl.container.is_none() && tmpl.script.is_none() && tmpl.container_set.is_some() {
        let built = set_containers(req, settings)?;
        return assemble(req, settings, built);
    }
    let (kind, ctr) = match (&tmpl.container, &tmpl.script) {
        (Some(c), _) => (Kind::Container, c),
        (None, Some(s)) => (Kind::Script, s),
        (None, None) => {
            let found = tmpl
                .template_type()
                .map(|t| format!("{t:?}").to_lowercase())
                .unwrap_or_else(|| "no template type".to_string());
            return Err(PodError::NotAPodTemplate {
                template: name.to_string(),
                found,
            });
        }
    };
    let spec = exec_spec(req, kind, ctr, settings)?;
    let wrapped = needs_executor(kind, &spec);
    let spec_json = serde_json::to_string(&spec).map_err(|e| PodError::InvalidField {
        template: name.to_string(),
        field: "outputs".to_string(),
        expected: format!("serializable outputs ({e})"),
    })?;
    if spec_json.len() > MAX_SPEC_ENV_BYTES {
        return Err(PodError::SpecTooLarge {
            template: name.to_string(),
            bytes: spec_json.len(),
            limit: MAX_SPEC_ENV_BYTES,
        });
    }

    let main = if wrapped {
        let argv = user_argv(name, kind, ctr, settings)?;
        main_container(req, kind, ctr, settings, argv, &spec, spec_json.clone())?
    } else {
        bare_main_container(name, kind, ctr)?
    };
    assemble(
        req,
        settings,
        Built {
            kind,
            wrapped,
            spec,
            spec_json,
            containers: vec![main],
            set_names: None,
        },
    )
}

/// The node's own containers, before the pod around them is assembled.
struct Built {
    kind: Kind,
    /// Whether the executor is in the pod.
    wrapped: bool,
    /// The spec the `init` container stages inputs for (`main`'s).
    spec: ExecSpec,
    spec_json: String,
    /// `main`, or the set's containers.
    containers: Vec<Value>,
    /// The set's container names (containerSet pods only).
    set_names: Option<Vec<String>>,
}

/// The containers of a `containerSet` node: each wrapped with its [`SetRole`], the set's
/// `volumeMounts` added; `main` (if any) with the template's outputs.
///
/// [`SetRole`]: crate::workflow::executor::container_set::SetRole
fn set_containers(req: &PodRequest, settings: &PodSettings) -> Result<Built, PodError> {
    let name = req.template.name.as_str();
    let set = container_set::parse(&req.template)?;
    let kind = Kind::ContainerSet;
    let mut containers = Vec::new();
    let mut init_spec: Option<(ExecSpec, String)> = None;
    for m in &set.members {
        let mut spec = exec_spec(req, kind, &m.container, settings)?;
        let reports = m.name == MAIN_CONTAINER;
        if !reports {
            spec.outputs.clear();
            spec.script = false;
            spec.input_artifacts.clear();
            spec.output_artifacts.clear();
            spec.artifact_channel = None;
        }
        spec.container_set = Some(container_set::role(
            &set,
            m,
            &settings.mount_path,
            req.active_deadline_seconds,
        ));
        let spec_json = serde_json::to_string(&spec).map_err(|e| PodError::InvalidField {
            template: name.to_string(),
            field: "outputs".to_string(),
            expected: format!("serializable outputs ({e})"),
        })?;
        if spec_json.len() > MAX_SPEC_ENV_BYTES {
            return Err(PodError::SpecTooLarge {
                template: name.to_string(),
                bytes: spec_json.len(),
                limit: MAX_SPEC_ENV_BYTES,
            });
        }
        let argv = user_argv(name, kind, &m.container, settings)?;
        let mut ctr = main_container(
            req,
            kind,
            &m.container,
            settings,
            argv,
            &spec,
            spec_json.clone(),
        )?;
        ctr["name"] = json!(m.name);
        if let Some(mounts) = ctr.get_mut("volumeMounts").and_then(Value::as_array_mut) {
            for mount in set.volume_mounts.iter().rev() {
                mounts.insert(0, mount.clone());
            }
        }
        if reports {
            init_spec = Some((spec, spec_json));
        }
        containers.push(ctr);
    }
    let (spec, spec_json) = init_spec.unwrap_or_else(|| {
        let spec = ExecSpec {
            command: Vec::new(),
            working_dir: None,
            outputs: Vec::new(),
            script: false,
            output_limit_bytes: settings.output_limit_bytes,
            script_source: None,
            script_path: None,
            input_artifacts: Vec::new(),
            output_artifacts: Vec::new(),
            artifact_channel: None,
            container_set: None,
            mlflow_token: false,
        };
        (spec, String::new())
    });
    Ok(Built {
        kind,
        wrapped: true,
        spec,
        spec_json,
        containers,
        set_names: Some(set.members.iter().map(|m| m.name.clone()).collect()),
    })
}

/// The pod around the node's containers: cairn's `init`, the user's init containers and
/// sidecars, volumes, pod-level fields, metadata, `podSpecPatch`.
fn assemble(req: &PodRequest, settings: &PodSettings, built: Built) -> Result<Pod, PodError> {
    let Built {
        kind,
        wrapped,
        spec,
        spec_json,
        containers: own,
        set_names,
    } = built;
    let tmpl = &req.template;
    let name = tmpl.name.as_str();
    let template_extra = &tmpl.extra;
    let spec_extra = &req.spec.extra;

    let mut init_containers = Vec::new();
    if wrapped {
        init_containers.push(init_container(req, settings, &spec, &spec_json));
    }
    let main_mounts = own
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(MAIN_CONTAINER))
        .or_else(|| own.first())
        .and_then(|c| c.get("volumeMounts").cloned());
    for (i, c) in list(template_extra, "initContainers", name)?
        .into_iter()
        .enumerate()
    {
        init_containers.push(user_container(
            c,
            name,
            &format!("initContainers[{i}]"),
            main_mounts.as_ref(),
        )?);
    }
    let mut containers = own;
    for (i, c) in list(template_extra, "sidecars", name)?
        .into_iter()
        .enumerate()
    {
        containers.push(user_container(
            c,
            name,
            &format!("sidecars[{i}]"),
            main_mounts.as_ref(),
        )?);
    }

    let volumes = volumes(req, kind, wrapped, &init_containers, &containers)?;

    let mut pod_spec = Map::new();
    pod_spec.insert("restartPolicy".into(), json!("Never"));
    if !init_containers.is_empty() {
        pod_spec.insert("initContainers".into(), Value::Array(init_containers));
    }
    pod_spec.insert("containers".into(), Value::Array(containers));
    if !volumes.is_empty() {
        pod_spec.insert("volumes".into(), Value::Array(volumes));
    }
    if let Some(deadline) = req.active_deadline_seconds {
        pod_spec.insert("activeDeadlineSeconds".into(), json!(deadline));
    }
    // Template first, then workflow (Argo's precedence); empty collections count as unset.
    let service_account = tmpl
        .extra
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| {
            req.spec
                .service_account_name
                .clone()
                .filter(|s| !s.is_empty())
        });
    if let Some(sa) = service_account {
        pod_spec.insert("serviceAccountName".into(), json!(sa));
    }
    let automount = match set(template_extra, "automountServiceAccountToken") {
        Some(v) => Some((v, "automountServiceAccountToken".to_string())),
        None => set(spec_extra, "automountServiceAccountToken")
            .map(|v| (v, "spec.automountServiceAccountToken".to_string())),
    };
    if let Some((value, field)) = automount {
        match value.as_bool() {
            Some(true) => {
                pod_spec.insert("automountServiceAccountToken".into(), json!(true));
            }
            Some(false) if !wrapped => {
                pod_spec.insert("automountServiceAccountToken".into(), json!(false));
            }
            Some(false) => {
                return Err(PodError::AutomountDisabled {
                    template: name.to_string(),
                    field,
                });
            }
            None => {
                return Err(PodError::InvalidField {
                    template: name.to_string(),
                    field,
                    expected: "a boolean".to_string(),
                });
            }
        }
    }
    for (pod_key, tmpl_key, wf_key) in [
        ("nodeSelector", "nodeSelector", "nodeSelector"),
        ("tolerations", "tolerations", "tolerations"),
        ("affinity", "affinity", "affinity"),
        ("schedulerName", "schedulerName", "schedulerName"),
        (
            "priorityClassName",
            "priorityClassName",
            "podPriorityClassName",
        ),
        ("securityContext", "securityContext", "securityContext"),
    ] {
        if let Some(v) = set(template_extra, tmpl_key).or_else(|| set(spec_extra, wf_key)) {
            pod_spec.insert(pod_key.into(), v.clone());
        }
    }
    for key in ["imagePullSecrets", "hostNetwork", "dnsPolicy", "dnsConfig"] {
        if let Some(v) = set(spec_extra, key) {
            pod_spec.insert(key.into(), v.clone());
        }
    }
    let mut host_aliases = list(spec_extra, "hostAliases", name)?;
    host_aliases.extend(list(template_extra, "hostAliases", name)?);
    if !host_aliases.is_empty() {
        pod_spec.insert("hostAliases".into(), Value::Array(host_aliases));
    }

    let mut pod_spec = Value::Object(pod_spec);
    for (source, field) in [
        (spec_extra, "spec.podSpecPatch"),
        (template_extra, "podSpecPatch"),
    ] {
        let Some(text) = set(source, "podSpecPatch") else {
            continue;
        };
        let patch_value = parse_patch(text).map_err(|message| PodError::InvalidPodSpecPatch {
            template: name.to_string(),
            field: field.to_string(),
            message,
        })?;
        patch::strategic_merge(&mut pod_spec, &patch_value);
    }

    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": req.pod_name,
            "namespace": req.namespace,
            "labels": labels(req)?,
            "annotations": annotations(req, wrapped, set_names.as_deref())?,
            "ownerReferences": [{
                "apiVersion": crate::k8s::API_VERSION,
                "kind": "Workflow",
                "name": req.workflow_name,
                "uid": req.workflow_uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": pod_spec,
    });
    serde_json::from_value(pod).map_err(|e| PodError::InvalidPod {
        template: name.to_string(),
        message: e.to_string(),
    })
}

/// Whether the node needs cairn's executor in its pod: a script, a captured `result`, output
/// parameters, or input/output artifacts. Anything else (a plain container whose outcome is its
/// exit code and its log) runs as the user wrote it: the pod status says all the executor would
/// report, and the pod starts without the init container copying the executor in.
fn needs_executor(kind: Kind, spec: &ExecSpec) -> bool {
    kind == Kind::Script
        || spec.script
        || !spec.outputs.is_empty()
        || !spec.input_artifacts.is_empty()
        || !spec.output_artifacts.is_empty()
        || spec.artifact_channel.is_some()
}

/// Whether the step runs cairn's own binary from the executor volume (e.g.
/// `/var/run/cairn/cairn model register ...`, directly or inside `sh -c`): such a step needs
/// the volume, and the projected token and cairn's URL to call cairn as its pod.
/// A step that logs to cairn's MLflow API ([`logs_to_cairn_mlflow`]) calls cairn the same way.
fn calls_cairn(ctr: &Container, settings: &PodSettings) -> bool {
    let binary = format!("{}/cairn", settings.mount_path.trim_end_matches('/'));
    logs_to_cairn_mlflow(ctr)
        || ctr
            .command
            .iter()
            .chain(ctr.args.iter())
            .flatten()
            .chain(ctr.source.iter())
            .any(|s| s.contains(&binary))
}

/// Whether the step's `env` sets `MLFLOW_TRACKING_URI` to [`MLFLOW_CAIRN`]: it logs MLflow
/// runs to cairn as its pod. cairn puts its real URL there (`<executor_url>/executor/v1/mlflow`)
/// and the executor hands the command the pod's token as `MLFLOW_TRACKING_TOKEN`, so the runs
/// link to the step's node in lineage.
pub fn logs_to_cairn_mlflow(ctr: &Container) -> bool {
    ctr.env.iter().flatten().any(|e| {
        e.get("name").and_then(Value::as_str) == Some(MLFLOW_URI_ENV)
            && e.get("value").and_then(Value::as_str) == Some(MLFLOW_CAIRN)
    })
}

/// `env` with [`MLFLOW_CAIRN`] as `MLFLOW_TRACKING_URI` replaced by cairn's MLflow URL for pods.
fn resolve_mlflow_uri(env: &mut [Value], executor_url: Option<&str>) {
    let Some(base) = executor_url else {
        return;
    };
    for e in env {
        if e.get("name").and_then(Value::as_str) == Some(MLFLOW_URI_ENV)
            && e.get("value").and_then(Value::as_str) == Some(MLFLOW_CAIRN)
        {
            e["value"] = json!(format!(
                "{}{}",
                base.trim_end_matches('/'),
                crate::lineage::mlflow::EXECUTOR_PREFIX
            ));
        }
    }
}

/// The template's container as a JSON object named `main`, without the script `source`: the
/// start of both the wrapped and the unwrapped `main`.
fn main_base(template: &str, kind: Kind, ctr: &Container) -> Result<Map<String, Value>, PodError> {
    let Ok(Value::Object(mut main)) = serde_json::to_value(ctr) else {
        return Err(PodError::InvalidField {
            template: template.to_string(),
            field: kind.field().to_string(),
            expected: "an object".to_string(),
        });
    };
    main.insert("name".into(), json!(MAIN_CONTAINER));
    main.remove("source");
    Ok(main)
}

/// The user's container as `main`, unwrapped (see [`needs_executor`]): every field kept, the
/// image's entrypoint used when the template gives no `command`.
fn bare_main_container(template: &str, kind: Kind, ctr: &Container) -> Result<Value, PodError> {
    let main = main_base(template, kind, ctr)?;
    // The same shape checks as the wrapped container, so errors name the field.
    for key in ["env", "volumeMounts"] {
        array_field(&main, key, template, kind)?;
    }
    Ok(Value::Object(main))
}

/// The argv the wrapper runs: command + args (+ the script path).
fn user_argv(
    template: &str,
    kind: Kind,
    ctr: &Container,
    settings: &PodSettings,
) -> Result<Vec<String>, PodError> {
    let command = ctr.command.as_deref().unwrap_or_default();
    let args = ctr.args.as_deref().filter(|a| !a.is_empty());
    let mut argv = Vec::new();
    if command.first().is_some_and(|program| !program.is_empty()) {
        argv.extend(command.iter().cloned());
        argv.extend(args.into_iter().flatten().cloned());
    } else if let Some(known) = ctr.image.as_deref().and_then(|i| settings.images.get(i)) {
        argv.extend(known.entrypoint.iter().cloned());
        argv.extend(args.unwrap_or(&known.cmd).iter().cloned());
    }
    if argv.first().is_none_or(|program| program.is_empty()) {
        let field = match (kind, ctr.name.as_deref()) {
            (Kind::ContainerSet, Some(n)) => format!("containerSet.containers[{n}].command"),
            _ => format!("{}.command", kind.field()),
        };
        return Err(PodError::MissingCommand {
            template: template.to_string(),
            field,
        });
    }
    if kind == Kind::Script {
        argv.push(settings.script_path());
    }
    Ok(argv)
}

/// What the wrapper needs besides the argv.
fn exec_spec(
    req: &PodRequest,
    kind: Kind,
    ctr: &Container,
    settings: &PodSettings,
) -> Result<ExecSpec, PodError> {
    let name = &req.template.name;
    let mut outputs = Vec::new();
    let params = req
        .template
        .outputs
        .as_ref()
        .and_then(|o| o.parameters.as_deref())
        .unwrap_or_default();
    for (i, p) in params.iter().enumerate() {
        outputs.push(output_parameter(name, i, p)?);
    }
    let working_dir = match ctr.extra.get("workingDir") {
        None | Some(Value::Null) => None,
        Some(Value::String(dir)) => Some(dir.into()),
        Some(_) => {
            return Err(PodError::InvalidField {
                template: name.clone(),
                field: format!("{}.workingDir", kind.field()),
                expected: "a string".to_string(),
            });
        }
    };
    let (script_source, script_path) = match kind {
        Kind::Script => (
            Some(ctr.source.clone().unwrap_or_default()),
            Some(settings.script_path().into()),
        ),
        Kind::Container | Kind::ContainerSet => (None, None),
    };
    let repository = req.artifact_repository.clone().unwrap_or_default();
    let vars = KeyVars {
        workflow_name: &req.workflow_name,
        namespace: &req.namespace,
        workflow_uid: &req.workflow_uid,
        pod_name: &req.pod_name,
    };
    let mut input_artifacts = Vec::new();
    for (i, art) in req
        .template
        .inputs
        .as_ref()
        .and_then(|x| x.artifacts.as_deref())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        input_artifacts.push(artifacts::input_spec(name, i, art, &repository)?);
    }
    let mut output_artifacts = Vec::new();
    for (i, art) in req
        .template
        .outputs
        .as_ref()
        .and_then(|x| x.artifacts.as_deref())
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        output_artifacts.push(artifacts::output_spec(name, i, art, &repository, &vars)?);
    }
    let builtin = |l: Option<&Location>| matches!(l, Some(Location::Builtin { .. }));
    let needs_server = input_artifacts
        .iter()
        .find(|a| builtin(a.location.as_ref()))
        .map(|a| format!("inputs.artifacts.{}", a.name))
        .or_else(|| {
            output_artifacts
                .iter()
                .find(|a| builtin(Some(&a.location)))
                .map(|a| format!("outputs.artifacts.{}", a.name))
        });
    if logs_to_cairn_mlflow(ctr) && settings.executor_url.is_none() {
        return Err(PodError::NoExecutorUrlForMlflow {
            template: name.clone(),
        });
    }
    if let Some(field) = needs_server
        && settings.executor_url.is_none()
    {
        return Err(PodError::NoExecutorUrl {
            template: name.clone(),
            field,
        });
    }
    let artifact_channel =
        (!input_artifacts.is_empty() || !output_artifacts.is_empty() || calls_cairn(ctr, settings))
            .then(|| ChannelSpec {
                server: settings.executor_url.clone(),
                token_file: format!("{TOKEN_MOUNT_PATH}/token").into(),
                namespace: req.namespace.clone(),
                staging_dir: format!("{}/inputs", settings.mount_path.trim_end_matches('/')).into(),
            });
    Ok(ExecSpec {
        command: Vec::new(),
        working_dir,
        outputs,
        script: req.capture_result || kind == Kind::Script,
        output_limit_bytes: settings.output_limit_bytes,
        script_source,
        script_path,
        input_artifacts,
        output_artifacts,
        artifact_channel,
        container_set: None,
        mlflow_token: logs_to_cairn_mlflow(ctr),
    })
}

/// An Argo output parameter as the executor reads it (`valueFrom.path`, `default`, `supplied`).
fn output_parameter(
    template: &str,
    index: usize,
    p: &Parameter,
) -> Result<OutputParameter, PodError> {
    let field = |f: &str| format!("outputs.parameters[{index}].valueFrom.{f}");
    let value_from = match &p.value_from {
        None | Some(Value::Null) => None,
        Some(Value::Object(from)) => {
            let path = match from.get("path") {
                None | Some(Value::Null) => None,
                Some(Value::String(path)) => Some(path.into()),
                Some(_) => {
                    return Err(PodError::InvalidField {
                        template: template.to_string(),
                        field: field("path"),
                        expected: "a string".to_string(),
                    });
                }
            };
            Some(ValueFrom {
                path,
                default: from.get("default").filter(|v| !v.is_null()).map(any_string),
                supplied: from.get("supplied").filter(|v| !v.is_null()).cloned(),
            })
        }
        Some(_) => {
            return Err(PodError::InvalidField {
                template: template.to_string(),
                field: format!("outputs.parameters[{index}].valueFrom"),
                expected: "an object".to_string(),
            });
        }
    };
    Ok(OutputParameter {
        name: p.name.clone(),
        value_from,
    })
}

/// The user's container as `main`: every field kept, the command wrapped.
fn main_container(
    req: &PodRequest,
    kind: Kind,
    ctr: &Container,
    settings: &PodSettings,
    argv: Vec<String>,
    spec: &ExecSpec,
    spec_json: String,
) -> Result<Value, PodError> {
    let template = &req.template.name;
    let mut main = main_base(template, kind, ctr)?;
    main.remove("args");
    let mut command = vec![settings.binary_path(), "exec".to_string(), "--".to_string()];
    command.extend(argv);
    main.insert("command".into(), json!(command));

    let mut env = array_field(&main, "env", template, kind)?;
    resolve_mlflow_uri(&mut env, settings.executor_url.as_deref());
    for (key, value) in [
        (SPEC_ENV, spec_json.as_str()),
        (report::ENV_NAMESPACE, req.namespace.as_str()),
        (report::ENV_WORKFLOW_NAME, req.workflow_name.as_str()),
        (report::ENV_WORKFLOW_UID, req.workflow_uid.as_str()),
        (report::ENV_NODE_ID, req.node_id.as_str()),
        (report::ENV_POD_NAME, req.pod_name.as_str()),
    ] {
        // Last in the list, so a user variable of the same name cannot shadow cairn's.
        env.retain(|e| e.get("name").and_then(Value::as_str) != Some(key));
        env.push(json!({"name": key, "value": value}));
    }
    env.extend(credential_env(spec.output_artifacts.iter().map(|a| {
        (
            a.credentials.as_ref(),
            match &a.location {
                Location::S3(s3) => Some(s3),
                _ => None,
            },
        )
    })));
    main.insert("env".into(), Value::Array(env));

    let mut mounts = array_field(&main, "volumeMounts", template, kind)?;
    mounts.push(json!({"name": VOLUME_NAME, "mountPath": settings.mount_path}));
    // Each input, staged by the init step on the shared volume, appears at its path.
    for (i, input) in spec.input_artifacts.iter().enumerate() {
        mounts.push(json!({
            "name": VOLUME_NAME,
            "mountPath": input.path.to_string_lossy(),
            "subPath": staged_sub_path(i),
        }));
    }
    if !spec.output_artifacts.is_empty()
        || (spec.artifact_channel.is_some() && calls_cairn(ctr, settings))
    {
        mounts.push(json!({"name": TOKEN_VOLUME, "mountPath": TOKEN_MOUNT_PATH, "readOnly": true}));
    }
    main.insert("volumeMounts".into(), Value::Array(mounts));
    Ok(Value::Object(main))
}

fn array_field(
    container: &Map<String, Value>,
    key: &str,
    template: &str,
    kind: Kind,
) -> Result<Vec<Value>, PodError> {
    match container.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items.clone()),
        Some(_) => Err(PodError::InvalidField {
            template: template.to_string(),
            field: format!("{}.{key}", kind.field()),
            expected: "a list".to_string(),
        }),
    }
}

/// Environment entries taking S3 credentials from their Secrets (`valueFrom.secretKeyRef`),
/// so no value is ever in the pod spec.
fn credential_env<'a>(
    items: impl Iterator<
        Item = (
            Option<&'a artifacts::s3::CredentialEnv>,
            Option<&'a artifacts::S3Repository>,
        ),
    >,
) -> Vec<Value> {
    let mut env = Vec::new();
    for (names, s3) in items {
        let (Some(names), Some(s3)) = (names, s3) else {
            continue;
        };
        for (var, sel) in [
            (&names.access_key, &s3.access_key_secret),
            (&names.secret_key, &s3.secret_key_secret),
        ] {
            if let Some(sel) = sel {
                env.push(json!({
                    "name": var,
                    "valueFrom": {"secretKeyRef": {"name": sel.name, "key": sel.key}},
                }));
            }
        }
    }
    env
}

/// The `init` container: copies the executor next to the user's command and, when the
/// template has input artifacts, stages them on the shared volume.
fn init_container(
    req: &PodRequest,
    settings: &PodSettings,
    spec: &ExecSpec,
    spec_json: &str,
) -> Value {
    let mut init = init_base(settings);
    if spec.input_artifacts.is_empty() {
        return init;
    }
    let mut env = vec![json!({"name": SPEC_ENV, "value": spec_json})];
    for (key, value) in [
        (report::ENV_NAMESPACE, req.namespace.as_str()),
        (report::ENV_WORKFLOW_NAME, req.workflow_name.as_str()),
        (report::ENV_WORKFLOW_UID, req.workflow_uid.as_str()),
        (report::ENV_NODE_ID, req.node_id.as_str()),
        (report::ENV_POD_NAME, req.pod_name.as_str()),
    ] {
        env.push(json!({"name": key, "value": value}));
    }
    env.extend(credential_env(spec.input_artifacts.iter().map(
        |a: &InputArtifact| {
            (
                a.credentials.as_ref(),
                match &a.location {
                    Some(Location::S3(s3)) => Some(s3),
                    _ => None,
                },
            )
        },
    )));
    init["env"] = Value::Array(env);
    if let Some(mounts) = init["volumeMounts"].as_array_mut() {
        mounts.push(json!({"name": TOKEN_VOLUME, "mountPath": TOKEN_MOUNT_PATH, "readOnly": true}));
    }
    init
}

fn init_base(settings: &PodSettings) -> Value {
    json!({
        "name": INIT_CONTAINER,
        "image": settings.executor_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": [IMAGE_BINARY, "exec-init", settings.binary_path()],
        "resources": settings.executor_resources,
        "volumeMounts": [{"name": VOLUME_NAME, "mountPath": settings.mount_path}],
        "securityContext": {
            "runAsUser": EXECUTOR_UID,
            "runAsNonRoot": true,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]},
        },
    })
}

/// A template `initContainers` / `sidecars` entry (Argo's UserContainer): kept as written, with
/// the main container's mounts added when `mirrorVolumeMounts` is true (Argo's rule).
fn user_container(
    entry: Value,
    template: &str,
    field: &str,
    main_mounts: Option<&Value>,
) -> Result<Value, PodError> {
    let Value::Object(mut ctr) = entry else {
        return Err(PodError::InvalidField {
            template: template.to_string(),
            field: field.to_string(),
            expected: "a container object".to_string(),
        });
    };
    let mirror = ctr.remove("mirrorVolumeMounts").and_then(|v| v.as_bool()) == Some(true);
    if mirror && let Some(Value::Array(extra)) = main_mounts {
        let mounts = ctr
            .entry("volumeMounts")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(mounts) = mounts {
            mounts.extend(
                extra
                    .iter()
                    .filter(|m| m.get("name").and_then(Value::as_str) != Some(VOLUME_NAME))
                    .cloned(),
            );
        }
    }
    Ok(Value::Object(ctr))
}

/// The pod's volumes: the executor's emptyDir, the template's own volumes, then every workflow
/// volume or claim template a container mounts.
fn volumes(
    req: &PodRequest,
    kind: Kind,
    wrapped: bool,
    init_containers: &[Value],
    containers: &[Value],
) -> Result<Vec<Value>, PodError> {
    let template = req.template.name.as_str();
    let mut out = Vec::new();
    if wrapped {
        out.push(json!({"name": VOLUME_NAME, "emptyDir": {}}));
    }
    // The projected token, when cairn's containers present it for artifacts.
    let token_mounted = init_containers.iter().chain(containers).any(|c| {
        c.get("volumeMounts")
            .and_then(Value::as_array)
            .is_some_and(|ms| {
                ms.iter()
                    .any(|m| m.get("name").and_then(Value::as_str) == Some(TOKEN_VOLUME))
            })
    });
    if token_mounted {
        out.push(json!({
            "name": TOKEN_VOLUME,
            "projected": {"sources": [{"serviceAccountToken": {
                "audience": artifacts::routes::AUDIENCE,
                "expirationSeconds": TOKEN_EXPIRATION_SECONDS,
                "path": "token",
            }}]},
        }));
    }
    let template_volumes = list(&req.template.extra, "volumes", template)?;
    out.extend(template_volumes.iter().cloned());
    let workflow_volumes = req.spec.volumes.clone().unwrap_or_default();
    let claims: Vec<(String, Value)> = req
        .spec
        .volume_claim_templates
        .iter()
        .flatten()
        .filter_map(|c| {
            let name = c.pointer("/metadata/name")?.as_str()?.to_string();
            let claim = format!("{}-{name}", req.workflow_name);
            Some((
                name.clone(),
                json!({"name": name, "persistentVolumeClaim": {"claimName": claim}}),
            ))
        })
        .collect();
    let named = |v: &Value, n: &str| v.get("name").and_then(Value::as_str) == Some(n);
    let mut mounted: Vec<(String, String)> = Vec::new();
    for (group, field_of) in [
        (containers, "containers"),
        (init_containers, "initContainers"),
    ] {
        for (ci, c) in group.iter().enumerate() {
            let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
            // Report the user's own path for `main`, the pod path for the others.
            let prefix = if cname == MAIN_CONTAINER {
                kind.field().to_string()
            } else {
                format!("pod.spec.{field_of}[{ci}]")
            };
            for (mi, m) in c
                .get("volumeMounts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                if let Some(vol) = m.get("name").and_then(Value::as_str) {
                    mounted.push((vol.to_string(), format!("{prefix}.volumeMounts[{mi}]")));
                }
            }
        }
    }
    for (vol, field) in mounted {
        if out.iter().any(|v| named(v, &vol)) {
            continue;
        }
        if let Some(v) = workflow_volumes.iter().find(|v| named(v, &vol)) {
            out.push(v.clone());
        } else if let Some((_, v)) = claims.iter().find(|(n, _)| *n == vol) {
            out.push(v.clone());
        } else {
            return Err(PodError::UnknownVolume {
                template: template.to_string(),
                field,
                volume: vol,
            });
        }
    }
    Ok(out)
}

/// Labels: podMetadata, then the template's metadata, then cairn's.
fn labels(req: &PodRequest) -> Result<BTreeMap<String, String>, PodError> {
    let mut out = metadata_map(req, "labels")?;
    out.insert(LABEL_WORKFLOW.to_string(), req.workflow_name.clone());
    out.insert(LABEL_COMPLETED.to_string(), "false".to_string());
    Ok(out)
}

/// Annotations: podMetadata, then the template's metadata, then cairn's.
fn annotations(
    req: &PodRequest,
    wrapped: bool,
    set_names: Option<&[String]>,
) -> Result<BTreeMap<String, String>, PodError> {
    let mut out = metadata_map(req, "annotations")?;
    match set_names {
        Some(names) => {
            out.insert(ANNOTATION_CONTAINER_SET.to_string(), names.join(","));
        }
        None => {
            out.remove(ANNOTATION_CONTAINER_SET);
        }
    }
    out.insert(ANNOTATION_NODE_NAME.to_string(), req.node_name.clone());
    out.insert(ANNOTATION_NODE_ID.to_string(), req.node_id.clone());
    if wrapped {
        out.remove(ANNOTATION_EXECUTOR);
    } else {
        out.insert(ANNOTATION_EXECUTOR.to_string(), EXECUTOR_NONE.to_string());
    }
    Ok(out)
}

fn metadata_map(req: &PodRequest, key: &str) -> Result<BTreeMap<String, String>, PodError> {
    let mut out = BTreeMap::new();
    let sources = [
        (req.spec.extra.get("podMetadata"), "spec.podMetadata"),
        (req.template.metadata.as_ref(), "metadata"),
    ];
    for (source, path) in sources {
        let Some(map) = source.and_then(|m| m.get(key)).filter(|v| !v.is_null()) else {
            continue;
        };
        let Value::Object(map) = map else {
            return Err(PodError::InvalidField {
                template: req.template.name.clone(),
                field: format!("{path}.{key}"),
                expected: "a map of strings".to_string(),
            });
        };
        for (k, v) in map {
            // Users write `version: 2`; the apiserver needs strings, Argo renders them as text.
            out.insert(k.clone(), any_string(v));
        }
    }
    Ok(out)
}

/// A field that is set: present, not null, not an empty string, list or map.
fn set<'a>(extra: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    extra.get(key).filter(|v| match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    })
}

/// A list field, empty when absent.
fn list(extra: &Map<String, Value>, key: &str, template: &str) -> Result<Vec<Value>, PodError> {
    match extra.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items.clone()),
        Some(_) => Err(PodError::InvalidField {
            template: template.to_string(),
            field: key.to_string(),
            expected: "a list".to_string(),
        }),
    }
}

/// A `podSpecPatch`: a YAML or JSON object given as a string (Argo's type), or already an object.
fn parse_patch(value: &Value) -> Result<Value, String> {
    let parsed = match value {
        Value::String(text) => {
            serde_saphyr::from_str::<Value>(text).map_err(|e| format!("not YAML/JSON: {e}"))?
        }
        other => other.clone(),
    };
    if parsed.is_object() {
        Ok(parsed)
    } else {
        Err("expected an object (a partial PodSpec)".to_string())
    }
}

#[cfg(test)]
mod tests;
