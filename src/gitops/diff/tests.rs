//! Tests of the diff module: table-driven cases, then snapshots of rendered diffs.

use serde_json::{Value, json};

use super::*;
use crate::gitops::types::ResourceIgnoreDifferences;

fn y(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("test YAML parses")
}

/// The desired Deployment, as rendered from Git.
const DESIRED: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: shop/web:1.0
          ports: [{containerPort: 8080}]
        - name: sidecar
          image: proxy:1.0
"#;

/// The same Deployment as the API server returns it: server-set metadata, defaults, status, an
/// HPA that scaled it to 5 (kube-controller-manager owns spec.replicas), a mutating webhook that
/// injected a container (istio-sidecar-injector owns it).
const LIVE: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
  uid: 0b9c3e52-6b1e-4c5e-9a57-1d0f4b1c2f10
  resourceVersion: "48213"
  generation: 7
  creationTimestamp: "2026-11-20T09:00:00Z"
  annotations:
    deployment.kubernetes.io/revision: "3"
    argocd.argoproj.io/tracking-id: "shop:apps/Deployment:shop/web"
  managedFields:
    - manager: cairn
      operation: Apply
      apiVersion: apps/v1
      fieldsType: FieldsV1
      fieldsV1:
        f:metadata:
          f:labels: {f:app: {}}
          f:annotations: {"f:argocd.argoproj.io/tracking-id": {}}
        f:spec:
          f:selector: {}
          f:template:
            f:metadata: {f:labels: {f:app: {}}}
            f:spec:
              f:containers:
                'k:{"name":"web"}':
                  .: {}
                  f:name: {}
                  f:image: {}
                  f:ports:
                    .: {}
                    'k:{"containerPort":8080,"protocol":"TCP"}': {.: {}, f:containerPort: {}}
                'k:{"name":"sidecar"}': {.: {}, f:name: {}, f:image: {}}
    - manager: kube-controller-manager
      operation: Update
      apiVersion: apps/v1
      subresource: scale
      fieldsType: FieldsV1
      fieldsV1:
        f:spec: {f:replicas: {}}
    - manager: istio-sidecar-injector
      operation: Update
      apiVersion: apps/v1
      fieldsType: FieldsV1
      fieldsV1:
        f:spec:
          f:template:
            f:spec:
              f:containers:
                'k:{"name":"istio-proxy"}': {.: {}, f:name: {}, f:image: {}}
    - manager: kube-controller-manager
      operation: Update
      apiVersion: apps/v1
      subresource: status
      fieldsType: FieldsV1
      fieldsV1:
        f:status: {f:replicas: {}, f:readyReplicas: {}}
spec:
  replicas: 5
  revisionHistoryLimit: 10
  progressDeadlineSeconds: 600
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 25%, maxUnavailable: 25%}}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      restartPolicy: Always
      containers:
        - name: web
          image: shop/web:1.0
          imagePullPolicy: IfNotPresent
          ports: [{containerPort: 8080, protocol: TCP}]
        - name: sidecar
          image: proxy:1.0
          imagePullPolicy: IfNotPresent
        - name: istio-proxy
          image: istio/proxyv2:1.20
status:
  replicas: 5
  readyReplicas: 5
"#;

fn rule(kind: &str) -> ResourceIgnoreDifferences {
    ResourceIgnoreDifferences {
        group: Some("apps".into()),
        kind: Some(kind.into()),
        ..Default::default()
    }
}

fn pointers(mut r: ResourceIgnoreDifferences, ps: &[&str]) -> ResourceIgnoreDifferences {
    r.json_pointers = Some(ps.iter().map(|s| (*s).to_owned()).collect());
    r
}

fn jqs(mut r: ResourceIgnoreDifferences, es: &[&str]) -> ResourceIgnoreDifferences {
    r.jq_path_expressions = Some(es.iter().map(|s| (*s).to_owned()).collect());
    r
}

fn managers(mut r: ResourceIgnoreDifferences, ms: &[&str]) -> ResourceIgnoreDifferences {
    r.managed_fields_managers = Some(ms.iter().map(|s| (*s).to_owned()).collect());
    r
}

fn opts(mode: DiffMode, rules: Vec<ResourceIgnoreDifferences>) -> DiffOptions {
    DiffOptions {
        mode,
        status: StatusComparison::default(),
        ignore_differences: rules,
        field_manager: Some("cairn".to_owned()),
        sensitive_annotations: vec![],
        ignore_aggregated_roles: false,
    }
}

/// Set `pointer` in a copy of `obj` (creating maps on the way).
fn with(obj: &Value, pointer: &str, value: Value) -> Value {
    let mut out = obj.clone();
    let mut cur = &mut out;
    let tokens: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    let (last, parents) = tokens.split_last().expect("pointer has a token");
    for t in parents {
        cur = match cur {
            Value::Array(a) => &mut a[t.parse::<usize>().expect("index")],
            Value::Object(m) => m.entry(t.to_string()).or_insert_with(|| json!({})),
            _ => panic!("cannot descend into {t}"),
        };
    }
    match cur {
        Value::Array(a) => a[last.parse::<usize>().expect("index")] = value,
        Value::Object(m) => {
            m.insert(last.to_string(), value);
        }
        _ => panic!("cannot set {last}"),
    }
    out
}

fn without(obj: &Value, pointer: &str) -> Value {
    let mut out = obj.clone();
    pointer::remove(&mut out, &pointer::parse(pointer).expect("valid pointer"));
    out
}

/// (case, target, live, options, expected `modified`).
type Case = (&'static str, Value, Value, DiffOptions, bool);

fn deployment_cases() -> Vec<Case> {
    let desired = y(DESIRED);
    let live = y(LIVE);
    // Live as the desired one would be after apply, without HPA and injector (for cases about
    // one thing at a time).
    let plain_live = without(
        &with(&live, "/spec/replicas", json!(2)),
        "/spec/template/spec/containers/2",
    );
    let cs = DiffMode::ClientSide;
    let ss = DiffMode::ServerSide;
    vec![
        (
            "identical objects",
            desired.clone(),
            desired.clone(),
            opts(cs, vec![]),
            false,
        ),
        (
            "server-set metadata, defaults and status of the live object are ignored",
            desired.clone(),
            plain_live.clone(),
            opts(cs, vec![]),
            false,
        ),
        (
            "HPA-scaled replicas are a difference without a rule",
            desired.clone(),
            with(&plain_live, "/spec/replicas", json!(5)),
            opts(cs, vec![]),
            true,
        ),
        (
            "injected container changes the list length: a difference without a rule",
            desired.clone(),
            live.clone(),
            opts(cs, vec![]),
            true,
        ),
        (
            "managedFieldsManagers: replicas owned by kube-controller-manager, container by the injector",
            desired.clone(),
            live.clone(),
            opts(
                cs,
                vec![managers(
                    rule("Deployment"),
                    &["kube-controller-manager", "istio-sidecar-injector"],
                )],
            ),
            false,
        ),
        (
            "managedFieldsManagers: only kube-controller-manager leaves the injected container",
            desired.clone(),
            live.clone(),
            opts(
                cs,
                vec![managers(rule("Deployment"), &["kube-controller-manager"])],
            ),
            true,
        ),
        (
            "managedFieldsManagers: a manager owning nothing relevant changes nothing",
            desired.clone(),
            with(&plain_live, "/spec/replicas", json!(5)),
            opts(cs, vec![managers(rule("Deployment"), &["kubectl-edit"])]),
            true,
        ),
        (
            "managedFieldsManagers: a rule for another kind does not apply",
            desired.clone(),
            with(&plain_live, "/spec/replicas", json!(5)),
            opts(
                cs,
                vec![managers(rule("StatefulSet"), &["kube-controller-manager"])],
            ),
            true,
        ),
        (
            "managedFieldsManagers: a system-level rule for all kinds (`*`)",
            desired.clone(),
            with(&plain_live, "/spec/replicas", json!(5)),
            opts(
                cs,
                vec![managers(
                    ResourceIgnoreDifferences {
                        group: Some("*".into()),
                        kind: Some("*".into()),
                        ..Default::default()
                    },
                    &["kube-controller-manager"],
                )],
            ),
            false,
        ),
        (
            "jsonPointers: /spec/replicas",
            desired.clone(),
            with(&plain_live, "/spec/replicas", json!(5)),
            opts(cs, vec![pointers(rule("Deployment"), &["/spec/replicas"])]),
            false,
        ),
        (
            "jsonPointers: kind glob",
            desired.clone(),
            with(&plain_live, "/spec/replicas", json!(5)),
            opts(cs, vec![pointers(rule("Deploy*"), &["/spec/replicas"])]),
            false,
        ),
        (
            "jsonPointers: another group does not match",
            desired.clone(),
            with(&plain_live, "/spec/replicas", json!(5)),
            opts(
                cs,
                vec![pointers(
                    ResourceIgnoreDifferences {
                        group: Some("extensions".into()),
                        kind: Some("Deployment".into()),
                        ..Default::default()
                    },
                    &["/spec/replicas"],
                )],
            ),
            true,
        ),
        (
            "jsonPointers: matching name and namespace",
            desired.clone(),
            with(&plain_live, "/spec/replicas", json!(5)),
            opts(
                cs,
                vec![pointers(
                    ResourceIgnoreDifferences {
                        name: Some("web".into()),
                        namespace: Some("shop".into()),
                        ..rule("Deployment")
                    },
                    &["/spec/replicas"],
                )],
            ),
            false,
        ),
        (
            "jsonPointers: another name does not match",
            desired.clone(),
            with(&plain_live, "/spec/replicas", json!(5)),
            opts(
                cs,
                vec![pointers(
                    ResourceIgnoreDifferences {
                        name: Some("api".into()),
                        ..rule("Deployment")
                    },
                    &["/spec/replicas"],
                )],
            ),
            true,
        ),
        (
            "jsonPointers: another namespace does not match",
            desired.clone(),
            with(&plain_live, "/spec/replicas", json!(5)),
            opts(
                cs,
                vec![pointers(
                    ResourceIgnoreDifferences {
                        namespace: Some("staging".into()),
                        ..rule("Deployment")
                    },
                    &["/spec/replicas"],
                )],
            ),
            true,
        ),
        (
            "jsonPointers: array element",
            desired.clone(),
            with(
                &plain_live,
                "/spec/template/spec/containers/0/image",
                json!("shop/web:2.0"),
            ),
            opts(
                cs,
                vec![pointers(
                    rule("Deployment"),
                    &["/spec/template/spec/containers/0/image"],
                )],
            ),
            false,
        ),
        (
            "jsonPointers: escaped annotation key",
            with(
                &desired,
                "/metadata/annotations",
                json!({"example.com/hash": "a"}),
            ),
            with(
                &plain_live,
                "/metadata/annotations/example.com~1hash",
                json!("b"),
            ),
            opts(
                cs,
                vec![pointers(
                    rule("Deployment"),
                    &["/metadata/annotations/example.com~1hash"],
                )],
            ),
            false,
        ),
        (
            "jsonPointers: a pointer that resolves nowhere is harmless",
            desired.clone(),
            with(&plain_live, "/spec/replicas", json!(5)),
            opts(
                cs,
                vec![pointers(rule("Deployment"), &["/spec/nothing/here"])],
            ),
            true,
        ),
        (
            "jq: .spec.replicas",
            desired.clone(),
            with(&plain_live, "/spec/replicas", json!(5)),
            opts(cs, vec![jqs(rule("Deployment"), &[".spec.replicas"])]),
            false,
        ),
        (
            "jq: select by name ignores the sidecar's image",
            desired.clone(),
            with(
                &plain_live,
                "/spec/template/spec/containers/1/image",
                json!("proxy:9"),
            ),
            opts(
                cs,
                vec![jqs(
                    rule("Deployment"),
                    &[r#".spec.template.spec.containers[] | select(.name == "sidecar") | .image"#],
                )],
            ),
            false,
        ),
        (
            "jq: select by name does not hide the web container's image",
            desired.clone(),
            with(
                &plain_live,
                "/spec/template/spec/containers/0/image",
                json!("shop/web:2.0"),
            ),
            opts(
                cs,
                vec![jqs(
                    rule("Deployment"),
                    &[r#".spec.template.spec.containers[] | select(.name == "sidecar") | .image"#],
                )],
            ),
            true,
        ),
        (
            "jq: whole injected container removed by select",
            desired.clone(),
            with(&live, "/spec/replicas", json!(2)),
            opts(
                cs,
                vec![jqs(
                    rule("Deployment"),
                    &[r#".spec.template.spec.containers[] | select(.name == "istio-proxy")"#],
                )],
            ),
            false,
        ),
        (
            "jq: bracketed annotation key",
            with(
                &desired,
                "/metadata/annotations",
                json!({"example.com/hash": "a"}),
            ),
            with(
                &plain_live,
                "/metadata/annotations/example.com~1hash",
                json!("b"),
            ),
            opts(
                cs,
                vec![jqs(
                    rule("Deployment"),
                    &[r#".metadata.annotations["example.com/hash"]"#],
                )],
            ),
            false,
        ),
        (
            "jq: every container's image",
            desired.clone(),
            with(
                &with(
                    &plain_live,
                    "/spec/template/spec/containers/0/image",
                    json!("a:2"),
                ),
                "/spec/template/spec/containers/1/image",
                json!("b:2"),
            ),
            opts(
                cs,
                vec![jqs(
                    rule("Deployment"),
                    &[".spec.template.spec.containers[].image"],
                )],
            ),
            false,
        ),
        (
            "jq: index form",
            desired.clone(),
            with(
                &plain_live,
                "/spec/template/spec/containers/0/image",
                json!("a:2"),
            ),
            opts(
                cs,
                vec![jqs(
                    rule("Deployment"),
                    &[".spec.template.spec.containers[0].image"],
                )],
            ),
            false,
        ),
        (
            "client-side: a label someone added live is not a difference",
            desired.clone(),
            with(&plain_live, "/metadata/labels/team", json!("ops")),
            opts(cs, vec![]),
            false,
        ),
        (
            "client-side: a changed label is",
            desired.clone(),
            with(&plain_live, "/metadata/labels/app", json!("api")),
            opts(cs, vec![]),
            true,
        ),
        (
            "client-side: a field set in Git but missing live is",
            with(&desired, "/spec/minReadySeconds", json!(10)),
            plain_live.clone(),
            opts(cs, vec![]),
            true,
        ),
        (
            "three-way: a label deleted from Git that cairn applied is a difference",
            without(&desired, "/metadata/labels"),
            plain_live.clone(),
            opts(cs, vec![]),
            true,
        ),
        (
            "two-way (no field manager): the deleted label is not seen",
            without(&desired, "/metadata/labels"),
            plain_live.clone(),
            DiffOptions {
                field_manager: None,
                ..opts(cs, vec![])
            },
            false,
        ),
        (
            "three-way: only cairn's own Apply entry counts",
            without(&desired, "/metadata/labels"),
            plain_live.clone(),
            DiffOptions {
                field_manager: Some("kubectl".into()),
                ..opts(cs, vec![])
            },
            false,
        ),
        (
            "three-way: a port deleted from Git that cairn applied is a difference",
            without(&desired, "/spec/template/spec/containers/0/ports"),
            plain_live.clone(),
            opts(cs, vec![]),
            true,
        ),
        (
            "three-way: a deleted field that is also ignored is not",
            without(&desired, "/metadata/labels"),
            plain_live.clone(),
            opts(
                cs,
                vec![pointers(rule("Deployment"), &["/metadata/labels"])],
            ),
            false,
        ),
        (
            "merge-keyed lists: swapped containers are paired by name",
            desired.clone(),
            {
                let mut l = plain_live.clone();
                if let Some(Value::Array(c)) = l.pointer_mut("/spec/template/spec/containers") {
                    c.swap(0, 1);
                }
                l
            },
            opts(cs, vec![]),
            false,
        ),
        (
            "merge-keyed lists: a container changed after reordering is still seen",
            with(
                &desired,
                "/spec/template/spec/containers/1/image",
                json!("proxy:2.0"),
            ),
            {
                let mut l = plain_live.clone();
                if let Some(Value::Array(c)) = l.pointer_mut("/spec/template/spec/containers") {
                    c.swap(0, 1);
                }
                l
            },
            opts(cs, vec![]),
            true,
        ),
        (
            "other lists are positional: reordered args differ",
            with(
                &desired,
                "/spec/template/spec/containers/0/args",
                json!(["--a", "--b"]),
            ),
            with(
                &plain_live,
                "/spec/template/spec/containers/0/args",
                json!(["--b", "--a"]),
            ),
            opts(cs, vec![]),
            true,
        ),
        (
            "merge-keyed lists: env reordered by a controller",
            with(
                &desired,
                "/spec/template/spec/containers/0/env",
                json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
            ),
            with(
                &plain_live,
                "/spec/template/spec/containers/0/env",
                json!([{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]),
            ),
            opts(cs, vec![]),
            false,
        ),
        (
            "merge-keyed lists: an initContainer injected first is an extra item",
            with(
                &desired,
                "/spec/template/spec/initContainers",
                json!([{"name": "migrate", "image": "m:1"}]),
            ),
            with(
                &plain_live,
                "/spec/template/spec/initContainers",
                json!([{"name": "istio-init", "image": "i:1"}, {"name": "migrate", "image": "m:1", "imagePullPolicy": "IfNotPresent"}]),
            ),
            opts(cs, vec![]),
            true,
        ),
        (
            "merge-keyed lists: the injected initContainer ignored by jq",
            with(
                &desired,
                "/spec/template/spec/initContainers",
                json!([{"name": "migrate", "image": "m:1"}]),
            ),
            with(
                &plain_live,
                "/spec/template/spec/initContainers",
                json!([{"name": "istio-init", "image": "i:1"}, {"name": "migrate", "image": "m:1", "imagePullPolicy": "IfNotPresent"}]),
            ),
            opts(
                cs,
                vec![jqs(
                    rule("Deployment"),
                    &[r#".spec.template.spec.initContainers[] | select(.name == "istio-init")"#],
                )],
            ),
            false,
        ),
        (
            "server-side: predicted equals live (defaults included)",
            without(&with(&live, "/spec/replicas", json!(5)), "/status"),
            live.clone(),
            opts(ss, vec![]),
            false,
        ),
        (
            "server-side: every field of the prediction counts",
            desired.clone(),
            plain_live.clone(),
            opts(ss, vec![]),
            true,
        ),
        (
            "server-side: a changed image in the prediction",
            with(
                &live,
                "/spec/template/spec/containers/0/image",
                json!("shop/web:2.0"),
            ),
            live.clone(),
            opts(ss, vec![]),
            true,
        ),
    ]
}

fn small_cases() -> Vec<Case> {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "ns"}, "data": {"k": "v"}});
    let ss = |status| DiffOptions {
        mode: DiffMode::ServerSide,
        status,
        ignore_differences: vec![],
        field_manager: None,
        sensitive_annotations: vec![],
        ignore_aggregated_roles: false,
    };
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "x.example.com"}, "spec": {"group": "example.com"}});
    let aggregated = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "monitoring"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"rbac.example.com/aggregate-to-monitoring": "true"}}]}});
    vec![
        (
            "last-applied and tracking-id annotations are bookkeeping",
            cm.clone(),
            with(
                &cm,
                "/metadata/annotations",
                json!({LAST_APPLIED: "{}", "argocd.argoproj.io/tracking-id": "a:/ConfigMap:ns/c"}),
            ),
            ss(StatusComparison::IgnoreAll),
            false,
        ),
        (
            "empty map in Git equals an absent one",
            with(&cm, "/metadata/annotations", json!({})),
            cm.clone(),
            ss(StatusComparison::IgnoreAll),
            false,
        ),
        (
            "empty list and null equal absent",
            with(
                &with(&cm, "/binaryData", json!(null)),
                "/metadata/finalizers",
                json!([]),
            ),
            cm.clone(),
            ss(StatusComparison::IgnoreAll),
            false,
        ),
        (
            "1 equals 1.0",
            with(&cm, "/spec", json!({"n": 1})),
            with(&cm, "/spec", json!({"n": 1.0})),
            ss(StatusComparison::IgnoreAll),
            false,
        ),
        (
            "\"1\" differs from 1",
            with(&cm, "/spec", json!({"n": "1"})),
            with(&cm, "/spec", json!({"n": 1})),
            ss(StatusComparison::IgnoreAll),
            true,
        ),
        (
            "status ignored for every kind by default",
            with(&cm, "/status", json!({"a": 1})),
            with(&cm, "/status", json!({"a": 2})),
            ss(StatusComparison::IgnoreAll),
            false,
        ),
        (
            "status compared with `none`",
            with(&cm, "/status", json!({"a": 1})),
            with(&cm, "/status", json!({"a": 2})),
            ss(StatusComparison::Compare),
            true,
        ),
        (
            "status of a non-CRD compared with `crd`",
            with(&cm, "/status", json!({"a": 1})),
            with(&cm, "/status", json!({"a": 2})),
            ss(StatusComparison::IgnoreCrdOnly),
            true,
        ),
        (
            "status of a CRD ignored with `crd`",
            with(&crd, "/status", json!({})),
            with(&crd, "/status", json!({"acceptedNames": {"kind": "X"}})),
            ss(StatusComparison::IgnoreCrdOnly),
            false,
        ),
        (
            "aggregated ClusterRole: rules filled by the controller are ignored when asked",
            aggregated.clone(),
            with(
                &aggregated,
                "/rules",
                json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
            ),
            DiffOptions {
                ignore_aggregated_roles: true,
                ..ss(StatusComparison::IgnoreAll)
            },
            false,
        ),
        (
            "aggregated ClusterRole: rules compared by default",
            aggregated.clone(),
            with(
                &aggregated,
                "/rules",
                json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
            ),
            ss(StatusComparison::IgnoreAll),
            true,
        ),
        (
            "a changed value",
            cm.clone(),
            with(&cm, "/data/k", json!("w")),
            ss(StatusComparison::IgnoreAll),
            true,
        ),
    ]
}

fn secret(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
        "type": "Opaque", "data": data})
}

fn secret_cases() -> Vec<Case> {
    let b64 = secret::base64_for_tests;
    let string_data = |pw: &str| {
        let mut s = secret(json!(null));
        s["stringData"] = json!({"password": pw});
        s
    };
    vec![
        (
            "Secret: stringData in Git equals the same data live",
            string_data("hunter2"),
            secret(json!({"password": b64(b"hunter2")})),
            opts(DiffMode::ClientSide, vec![]),
            false,
        ),
        (
            "Secret: changed stringData is detected",
            string_data("hunter3"),
            secret(json!({"password": b64(b"hunter2")})),
            opts(DiffMode::ClientSide, vec![]),
            true,
        ),
        (
            "Secret: changed data is detected",
            secret(json!({"password": b64(b"new")})),
            secret(json!({"password": b64(b"old")})),
            opts(DiffMode::ServerSide, vec![]),
            true,
        ),
        (
            "Secret: an added key is detected",
            secret(json!({"password": b64(b"p"), "user": b64(b"u")})),
            secret(json!({"password": b64(b"p")})),
            opts(DiffMode::ServerSide, vec![]),
            true,
        ),
    ]
}

#[test]
fn modified_table() {
    let cases: Vec<Case> = deployment_cases()
        .into_iter()
        .chain(small_cases())
        .chain(secret_cases())
        .collect();
    assert!(cases.len() >= 45, "{} cases", cases.len());
    for (name, target, live, o, expected) in cases {
        let d = diff(&target, &live, &o).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(d.modified, expected, "{name}:\n{}", d.text);
        assert_eq!(d.modified, !d.patch.is_empty(), "{name}");
        assert_eq!(d.modified, !d.text.is_empty(), "{name}");
    }
}

#[test]
fn errors_name_the_offending_rule() {
    let d = y(DESIRED);
    let bad_managed = with(
        &y(LIVE),
        "/metadata/managedFields/1/fieldsV1",
        json!({"f:spec": {"x:replicas": {}}}),
    );
    let cases: Vec<(&str, Vec<ResourceIgnoreDifferences>, Value, &str, &str)> = vec![
        (
            "pointer without slash",
            vec![pointers(rule("Deployment"), &["spec/replicas"])],
            d.clone(),
            "bad_json_pointer",
            "\"spec/replicas\"",
        ),
        (
            "pointer with bad escape",
            vec![pointers(rule("Deployment"), &["/a~2b"])],
            d.clone(),
            "bad_json_pointer",
            "\"/a~2b\"",
        ),
        (
            "jq function",
            vec![jqs(rule("Deployment"), &[".spec | length"])],
            d.clone(),
            "unsupported_jq",
            ".spec | length",
        ),
        (
            "jq del",
            vec![jqs(rule("Deployment"), &["del(.spec)"])],
            d.clone(),
            "unsupported_jq",
            "del(.spec)",
        ),
        (
            "jq recursive descent",
            vec![jqs(rule("Deployment"), &["..image"])],
            d.clone(),
            "unsupported_jq",
            "..image",
        ),
        (
            "jq comparison",
            vec![jqs(rule("Deployment"), &[".a[] | select(.n > 1)"])],
            d.clone(),
            "unsupported_jq",
            "select(.n > 1)",
        ),
        (
            "jq slice",
            vec![jqs(rule("Deployment"), &[".a[1:2]"])],
            d.clone(),
            "unsupported_jq",
            ".a[1:2]",
        ),
        (
            "jq unterminated string",
            vec![jqs(rule("Deployment"), &[r#".a["x]"#])],
            d.clone(),
            "unsupported_jq",
            "unterminated",
        ),
        (
            "jq trailing dot",
            vec![jqs(rule("Deployment"), &[".a."])],
            d.clone(),
            "unsupported_jq",
            "field name",
        ),
        (
            "bad FieldsV1 element",
            vec![managers(rule("Deployment"), &["kube-controller-manager"])],
            bad_managed,
            "bad_managed_fields",
            "x:replicas",
        ),
    ];
    for (name, rules, live, label, needle) in cases {
        let o = opts(DiffMode::ClientSide, rules);
        let err = diff(&d, &live, &o).expect_err(name);
        assert_eq!(err.metric_label(), label, "{name}: {err}");
        assert!(err.to_string().contains(needle), "{name}: {err}");
        if label != "bad_managed_fields" {
            assert_eq!(o.validate(), Err(err), "{name}: validate reports it too");
        }
    }
    let err = diff(&cm("a", "1"), &cm("b", "1"), &DiffOptions::default()).expect_err("mismatch");
    assert_eq!(
        err.to_string(),
        "target is /ConfigMap/shop/a but live is /ConfigMap/shop/b: not the same object"
    );
    let no_kind = json!({"apiVersion": "v1", "metadata": {"name": "x"}});
    let err = diff(&no_kind, &no_kind, &DiffOptions::default()).expect_err("no kind");
    assert_eq!(err.to_string(), "target object: no kind");
}

#[test]
fn jq_removal_table() {
    let doc = json!({
        "a": {"b": 1, "c": 2, "x/y": 3, "x.y": 4},
        "l": [{"name": "p", "v": 1, "on": true}, {"name": "q", "v": 2, "on": false}, {"name": "r", "v": 3}],
    });
    let cases: Vec<(&str, Value)> = vec![
        (".a.b", json!({"a": {"c": 2, "x/y": 3, "x.y": 4}})),
        (r#".a["x/y"]"#, json!({"a": {"b": 1, "c": 2, "x.y": 4}})),
        (r#".a."x.y""#, json!({"a": {"b": 1, "c": 2, "x/y": 3}})),
        (r#".["a"]"#, json!({})),
        (".a[]", json!({"a": {}})),
        (
            ".l[1]",
            json!({"l": [{"name": "p", "v": 1, "on": true}, {"name": "r", "v": 3}]}),
        ),
        (
            ".l[-1]",
            json!({"l": [{"name": "p", "v": 1, "on": true}, {"name": "q", "v": 2, "on": false}]}),
        ),
        (
            ".l[].v",
            json!({"l": [{"name": "p", "on": true}, {"name": "q", "on": false}, {"name": "r"}]}),
        ),
        (
            ".l[] | select(.name != \"q\")",
            json!({"l": [{"name": "q", "v": 2, "on": false}]}),
        ),
        (
            ".l[] | select(.v == 3)",
            json!({"l": [{"name": "p", "v": 1, "on": true}, {"name": "q", "v": 2, "on": false}]}),
        ),
        (
            ".l[] | select(.on == true) | .v",
            json!({"l": [{"name": "p", "on": true}, {"name": "q", "v": 2, "on": false}, {"name": "r", "v": 3}]}),
        ),
        (
            ".l[] | select(.on == null) | .name",
            json!({"l": [{"name": "p", "v": 1, "on": true}, {"name": "q", "v": 2, "on": false}, {"v": 3}]}),
        ),
        (
            ".l[]?.v",
            json!({"l": [{"name": "p", "on": true}, {"name": "q", "on": false}, {"name": "r"}]}),
        ),
        (".a.b?", json!({"a": {"c": 2, "x/y": 3, "x.y": 4}})),
        (".nothing.here", doc.clone()),
        (".l[7]", doc.clone()),
        (".a.b[0]", doc.clone()),
    ];
    for (expr, expected) in cases {
        let mut got = doc.clone();
        JqPathOrPanic::parse(expr).remove(&mut got);
        // Only the keys that remain matter for the table; compare everything else untouched.
        let mut want = doc.clone();
        merge_expected(&mut want, &expected);
        assert_eq!(got, want, "{expr}");
    }
}

struct JqPathOrPanic;
impl JqPathOrPanic {
    fn parse(expr: &str) -> jq::JqPath {
        jq::JqPath::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
    }
}

/// The table lists only the top-level keys an expression touches: replace those in `want`.
fn merge_expected(want: &mut Value, expected: &Value) {
    if let (Value::Object(w), Value::Object(e)) = (want, expected) {
        if e.is_empty() {
            // `del(.["a"])` removed the only touched key.
            w.shift_remove("a");
        }
        for (k, v) in e {
            w.insert(k.clone(), v.clone());
        }
    }
}

#[test]
fn pointer_parsing() {
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("/a/b", vec!["a", "b"]),
        ("/a~1b/c~0d", vec!["a/b", "c~d"]),
        ("/", vec![""]),
        ("/a/0", vec!["a", "0"]),
    ];
    for (p, want) in cases {
        assert_eq!(pointer::parse(p).expect(p), want, "{p}");
    }
    let mut doc = json!({"l": [1, 2, 3], "m": {"": 1, "01": 2}});
    for p in ["/l/01", "/l/-", "/l/9", "/m/01"] {
        pointer::remove(&mut doc, &pointer::parse(p).expect(p));
    }
    assert_eq!(doc, json!({"l": [1, 2, 3], "m": {"": 1}}));
}

#[test]
fn fields_v1_removal() {
    let live = y(LIVE);
    let set = managed::FieldSet::of_managers(&live, &["cairn".to_owned()]).expect("parses");
    let mut obj = live.clone();
    set.remove_from(&mut obj);
    // cairn owns what it applied of its two containers (each keeps the server's default it did
    // not apply), labels and the tracking annotation; the injected container and replicas stay.
    assert_eq!(
        obj.pointer("/spec/template/spec/containers"),
        Some(&json!([
            // The port item keeps the defaulted protocol no one applied, so it stays.
            {"imagePullPolicy": "IfNotPresent", "ports": [{"protocol": "TCP"}]},
            {"imagePullPolicy": "IfNotPresent"},
            {"name": "istio-proxy", "image": "istio/proxyv2:1.20"},
        ]))
    );
    assert_eq!(obj.pointer("/spec/replicas"), Some(&json!(5)));
    // labels is owned only through its child (no "."), so the emptied map stays (and the diff's
    // empty-map normalization then drops it).
    assert_eq!(obj.pointer("/metadata/labels"), Some(&json!({})));

    // v: set items (finalizers) and i: indices.
    let mut o = json!({"metadata": {"finalizers": ["a", "b", "c"]}, "l": [1, 2, 3]});
    let set = managed::FieldSet::parse(
        &json!({"f:metadata": {"f:finalizers": {"v:\"b\"": {}, ".": {}}}, "f:l": {"i:0": {}}}),
        "m",
    )
    .expect("parses");
    set.remove_from(&mut o);
    assert_eq!(
        o,
        json!({"metadata": {"finalizers": ["a", "c"]}, "l": [2, 3]})
    );

    // An element owned with "." keeps what others own.
    let mut o = json!({"spec": {"a": 1, "b": 2}});
    let set =
        managed::FieldSet::parse(&json!({"f:spec": {".": {}, "f:a": {}}}), "m").expect("parses");
    set.remove_from(&mut o);
    assert_eq!(o, json!({"spec": {"b": 2}}));
}

#[test]
fn secret_values_never_appear() {
    let b64 = secret::base64_for_tests;
    let mut live = secret(json!({"password": b64(b"old-pw"), "user": b64(b"admin")}));
    live["metadata"]["annotations"] = json!({LAST_APPLIED: serde_json::to_string(&secret(json!({"password": b64(b"older-pw")}))).expect("json")});
    let target = secret(json!({"password": b64(b"new-pw"), "user": b64(b"admin")}));
    let d = diff(&target, &live, &opts(DiffMode::ServerSide, vec![])).expect("diff");
    assert!(d.modified);
    let shown = serde_json::to_string(&d).expect("serializes");
    for value in ["old-pw", "new-pw", "older-pw", "admin"] {
        assert!(!shown.contains(value), "{value} leaked");
        assert!(
            !shown.contains(&b64(value.as_bytes())),
            "{value} leaked in base64"
        );
    }
    // Equal values share a marker, different ones do not.
    assert_eq!(
        d.normalized_live["data"]["user"],
        d.normalized_target["data"]["user"]
    );
    assert_ne!(
        d.normalized_live["data"]["password"],
        d.normalized_target["data"]["password"]
    );
    insta::assert_snapshot!(d.text);
}

#[test]
fn mask_secret_alone_and_last_applied() {
    let mut s = secret(json!({"a": "eA==", "b": "eA==", "c": "eQ=="}));
    s["stringData"] = json!({"d": "plain"});
    s["metadata"]["annotations"] = json!({LAST_APPLIED: "{not json: plain"});
    mask_secret(&mut s);
    assert_eq!(
        s["data"],
        json!({"a": "++++++++", "b": "++++++++", "c": "++++++++"})
    );
    assert_eq!(s["stringData"], json!({"d": "++++++++"}));
    assert_eq!(
        s["metadata"]["annotations"][LAST_APPLIED],
        json!("++++++++")
    );

    // Sensitive annotations are masked on Secrets only.
    let mut s = secret(json!({}));
    s["metadata"]["annotations"] = json!({"vault/token": "s3cr3t", "team": "ops"});
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "annotations": {"vault/token": "visible"}}});
    mask_secrets(&mut [&mut s, &mut cm], &["vault/token".to_owned()]);
    assert_eq!(
        s["metadata"]["annotations"],
        json!({"vault/token": "++++++++", "team": "ops"})
    );
    assert_eq!(cm["metadata"]["annotations"]["vault/token"], "visible");

    // Same key, three distinct values across four versions: 8, 12, 8, 16 `+`, in first-seen order.
    let (mut a, mut b, mut c) = (
        secret(json!({"k": "MQ=="})),
        secret(json!({"k": "Mg=="})),
        secret(json!({"k": "MQ=="})),
    );
    let mut d = secret(json!({"k": "Mw=="}));
    mask_secrets(&mut [&mut a, &mut b, &mut c, &mut d], &[]);
    let lens: Vec<usize> = [&a, &b, &c, &d]
        .iter()
        .map(|o| o["data"]["k"].as_str().map_or(0, str::len))
        .collect();
    assert_eq!(lens, vec![8, 12, 8, 16]);

    // A ConfigMap is not masked; a Secret of another API group is not a core Secret.
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}});
    mask_secret(&mut cm);
    assert_eq!(cm["data"]["k"], "v");
}

#[test]
fn base64_matches_rfc4648_vectors() {
    let b64 = secret::base64_for_tests;
    let cases = [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ];
    for (plain, encoded) in cases {
        assert_eq!(b64(plain.as_bytes()), encoded, "{plain}");
    }
}

#[test]
fn glob_table() {
    let cases = [
        ("*", "", true),
        ("*", "apps", true),
        ("", "", true),
        ("", "apps", false),
        ("apps", "apps", true),
        ("*.k8s.io", "apiextensions.k8s.io", true),
        ("*.k8s.io", "apps", false),
        ("a*a", "a", false),
        ("a*b*c", "axxbyyc", true),
        ("Deploy*", "Deployment", true),
    ];
    for (pattern, text, want) in cases {
        assert_eq!(glob(pattern, text), want, "{pattern} vs {text}");
    }
}

#[test]
fn unified_diff_shapes() {
    assert_eq!(patch::unified("a\nb\n", "a\nb\n", "l", "t"), "");
    let a: String = (1..=20).map(|i| format!("line{i}\n")).collect();
    let b = a.replace("line3\n", "line3x\n").replace("line18\n", "");
    insta::assert_snapshot!(patch::unified(&a, &b, "live", "target"));
}

#[test]
fn deployment_diff_snapshot() {
    let desired = with(
        &y(DESIRED),
        "/spec/template/spec/containers/0/image",
        json!("shop/web:1.1"),
    );
    let d = diff(
        &desired,
        &y(LIVE),
        &opts(
            DiffMode::ClientSide,
            vec![managers(rule("Deployment"), &["kube-controller-manager"])],
        ),
    )
    .expect("diff");
    insta::assert_snapshot!("deployment_text", d.text);
    insta::assert_json_snapshot!("deployment_patch", d.patch);
}

fn hook_job() -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "migrate", "namespace": "shop",
            "annotations": {"argocd.argoproj.io/hook": "PreSync"}},
        "spec": {"template": {"spec": {"containers": [{"name": "m", "image": "m"}]}}}})
}

fn cm(name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "shop"}, "data": {"k": value}})
}

/// (case, desired, live, options, expected application status).
type AppCase<'o> = (
    &'static str,
    Vec<Value>,
    Vec<Value>,
    &'o DiffOptions,
    SyncStatusCode,
);

#[test]
fn app_status_table() {
    let extraneous_ignored = with(
        &cm("old", "v"),
        "/metadata/annotations",
        json!({COMPARE_OPTIONS: "IgnoreExtraneous"}),
    );
    let bad_jq = DiffOptions {
        ignore_differences: vec![jqs(
            ResourceIgnoreDifferences {
                kind: Some("ConfigMap".into()),
                ..Default::default()
            },
            &["keys"],
        )],
        ..DiffOptions::default()
    };
    let d = DiffOptions::default();
    let cases: Vec<AppCase> = vec![
        (
            "all equal",
            vec![cm("a", "1")],
            vec![cm("a", "1")],
            &d,
            SyncStatusCode::Synced,
        ),
        ("nothing at all", vec![], vec![], &d, SyncStatusCode::Synced),
        (
            "one differs",
            vec![cm("a", "1"), cm("b", "1")],
            vec![cm("a", "1"), cm("b", "2")],
            &d,
            SyncStatusCode::OutOfSync,
        ),
        (
            "missing live",
            vec![cm("a", "1")],
            vec![],
            &d,
            SyncStatusCode::OutOfSync,
        ),
        (
            "extraneous live",
            vec![cm("a", "1")],
            vec![cm("a", "1"), cm("old", "v")],
            &d,
            SyncStatusCode::OutOfSync,
        ),
        (
            "extraneous with IgnoreExtraneous",
            vec![cm("a", "1")],
            vec![cm("a", "1"), extraneous_ignored.clone()],
            &d,
            SyncStatusCode::Synced,
        ),
        (
            "IgnoreExtraneous does not hide a missing object",
            vec![cm("a", "1")],
            vec![extraneous_ignored],
            &d,
            SyncStatusCode::OutOfSync,
        ),
        (
            "hooks are left out",
            vec![cm("a", "1"), hook_job()],
            vec![cm("a", "1")],
            &d,
            SyncStatusCode::Synced,
        ),
        (
            "live hooks are left out too",
            vec![cm("a", "1")],
            vec![cm("a", "1"), hook_job()],
            &d,
            SyncStatusCode::Synced,
        ),
        (
            "failed comparison",
            vec![cm("a", "1")],
            vec![cm("a", "1")],
            &bad_jq,
            SyncStatusCode::Unknown,
        ),
        (
            "failed comparison and a missing object",
            vec![cm("a", "1"), cm("b", "1")],
            vec![cm("a", "1")],
            &bad_jq,
            SyncStatusCode::OutOfSync,
        ),
        (
            "unidentifiable object",
            vec![cm("a", "1"), json!({"kind": "ConfigMap"})],
            vec![cm("a", "1")],
            &d,
            SyncStatusCode::Unknown,
        ),
    ];
    for (name, desired, live, o, want) in cases {
        let got = compare_app(&desired, &live, o);
        assert_eq!(got.status, want, "{name}: {:#?}", got.resources);
        assert!(got.resources.iter().all(|r| r.key.kind != "Job"), "{name}");
    }
}

#[test]
fn app_comparison_snapshot() {
    let desired = vec![cm("a", "1"), cm("b", "1"), cm("c", "1"), hook_job()];
    let live = vec![cm("a", "1"), cm("b", "2"), cm("old", "v")];
    let got = compare_app(&desired, &live, &DiffOptions::default());
    assert_eq!(
        got.in_sync()
            .into_iter()
            .map(|k| k.name)
            .collect::<Vec<_>>(),
        vec!["a".to_owned()]
    );
    let summary: Vec<String> = got
        .resources
        .iter()
        .map(|r| {
            format!(
                "{} {}{}{}",
                r.key,
                r.status.as_str(),
                if r.requires_pruning {
                    " requiresPruning"
                } else {
                    ""
                },
                r.diff.as_ref().map_or(String::new(), |d| format!(
                    " patch={}",
                    serde_json::to_string(&d.patch).unwrap_or_default()
                )),
            )
        })
        .collect();
    insta::assert_snapshot!(format!(
        "app: {}\n{}",
        got.status.as_str(),
        summary.join("\n")
    ));
}

#[test]
fn options_for_app_merge_app_and_system_rules() {
    let mut app = crate::gitops::types::Application::default();
    app.spec.ignore_differences = Some(vec![pointers(rule("Deployment"), &["/spec/replicas"])]);
    let system = vec![managers(rule("*"), &["kube-controller-manager"])];
    let o = DiffOptions::for_app(&app, &system);
    assert_eq!(o.ignore_differences.len(), 2);
    assert_eq!(o.mode, DiffMode::ClientSide);
    assert_eq!(o.validate(), Ok(()));
}

#[test]
fn status_comparison_setting() {
    let cases = [
        ("", Ok(StatusComparison::IgnoreAll)),
        ("all", Ok(StatusComparison::IgnoreAll)),
        ("crd", Ok(StatusComparison::IgnoreCrdOnly)),
        (" off ", Ok(StatusComparison::Compare)),
        ("none", Ok(StatusComparison::Compare)),
        (
            "everything",
            Err(DiffError::BadStatusComparison {
                value: "everything".into(),
            }),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(StatusComparison::parse(text), want, "{text:?}");
    }
}

#[test]
fn mode_from_the_application_annotation() {
    let app = |annotation: Option<&str>| {
        let mut app = crate::gitops::types::Application::default();
        if let Some(a) = annotation {
            app.metadata.annotations = Some([(COMPARE_OPTIONS.to_owned(), a.to_owned())].into());
        }
        app
    };
    let cases = [
        (None, DiffMode::ClientSide, DiffMode::ClientSide),
        (None, DiffMode::ServerSide, DiffMode::ServerSide),
        (
            Some("ServerSideDiff=true"),
            DiffMode::ClientSide,
            DiffMode::ServerSide,
        ),
        (
            Some("IncludeMutationWebhook=true, ServerSideDiff=true"),
            DiffMode::ClientSide,
            DiffMode::ServerSide,
        ),
        (
            Some("ServerSideDiff=false"),
            DiffMode::ServerSide,
            DiffMode::ClientSide,
        ),
        (
            Some("IgnoreExtraneous"),
            DiffMode::ServerSide,
            DiffMode::ServerSide,
        ),
    ];
    for (annotation, default, want) in cases {
        assert_eq!(
            DiffMode::of_app(&app(annotation), default),
            want,
            "{annotation:?}"
        );
    }
    let o = DiffOptions::for_app(&app(Some("ServerSideDiff=true")), &[]);
    assert_eq!(o.mode, DiffMode::ServerSide);
    assert_eq!(o.field_manager.as_deref(), Some("cairn"));
}

#[test]
fn one_sided_diffs_are_normalized_and_masked() {
    let b64 = secret::base64_for_tests;
    let mut live_secret = secret(json!({"token": b64(b"tok-123")}));
    live_secret["metadata"]["uid"] = json!("u-1");
    let missing = cm("new", "1");
    let got = compare_app(&[missing], &[live_secret], &DiffOptions::default());
    assert_eq!(got.status, SyncStatusCode::OutOfSync);
    let shown = serde_json::to_string(&got).expect("serializes");
    assert!(
        !shown.contains("tok-123") && !shown.contains(&b64(b"tok-123")),
        "{shown}"
    );
    assert!(
        !shown.contains("u-1"),
        "server-set fields are normalized away: {shown}"
    );
    let texts: Vec<String> = got
        .resources
        .iter()
        .map(|r| {
            format!(
                "{} {}\n{}",
                r.key,
                r.status.as_str(),
                r.diff.as_ref().map_or("", |d| d.text.as_str())
            )
        })
        .collect();
    insta::assert_snapshot!(texts.join("\n"));
}

#[test]
fn repeated_objects_warn_and_the_last_wins() {
    let got = compare_app(
        &[cm("a", "1"), cm("a", "2")],
        &[cm("a", "2")],
        &DiffOptions::default(),
    );
    assert_eq!(got.status, SyncStatusCode::Synced);
    assert_eq!(
        got.warnings,
        vec!["target object /ConfigMap/shop/a appears more than once; the last one is compared"]
    );
    assert!(got.errors.is_empty());
}
