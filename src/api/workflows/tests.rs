use super::*;
use crate::workflow::types::{CronWorkflowSpec, WorkflowSpec};

struct NoTemplates;
impl TemplateLookup for NoTemplates {
    fn workflow_template(&self, _: &str, _: &str) -> Option<WorkflowTemplate> {
        None
    }
    fn cluster_workflow_template(&self, _: &str) -> Option<ClusterWorkflowTemplate> {
        None
    }
}

fn message(e: ApiError) -> String {
    match e {
        ApiError::BadRequest(m) => m,
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[test]
fn invalid_workflows_are_400s_naming_the_field() {
    let ok = Workflow::test("ns", "wf");
    check_workflow(&ok, &NoTemplates).unwrap();
    let mut bad = Workflow::test("ns", "wf");
    bad.spec.entrypoint = Some("nope".into());
    let m = message(check_workflow(&bad, &NoTemplates).unwrap_err());
    assert!(m.starts_with("workflow wf is invalid: "), "{m}");
    assert!(m.contains("spec.entrypoint"), "{m}");
    let mut reffed = Workflow::test("ns", "wf");
    reffed.spec = WorkflowSpec {
        workflow_template_ref: Some(crate::workflow::types::WorkflowTemplateRef {
            name: Some("missing".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let m = message(check_workflow(&reffed, &NoTemplates).unwrap_err());
    assert!(m.contains("spec.workflowTemplateRef"), "{m}");
    assert!(m.contains("missing"), "{m}");
}

#[test]
fn submit_from_templates_and_cron() {
    let opts = SubmitOptions {
        parameters: vec!["a=1".into()],
        labels: Some("team=ml".into()),
        ..Default::default()
    };
    let wf = workflow_from("workflowtemplate", "train", "ml", None, &opts).unwrap();
    assert_eq!(wf.metadata.generate_name.as_deref(), Some("train-"));
    assert_eq!(wf.metadata.namespace.as_deref(), Some("ml"));
    let r = wf.spec.workflow_template_ref.as_ref().unwrap();
    assert_eq!((r.name.as_deref(), r.cluster_scope), (Some("train"), None));
    let labels = wf.metadata.labels.clone().unwrap();
    assert_eq!(labels[LABEL_WORKFLOW_TEMPLATE], "train");
    assert_eq!(labels["team"], "ml");
    let p = &wf
        .spec
        .arguments
        .as_ref()
        .unwrap()
        .parameters
        .as_ref()
        .unwrap()[0];
    assert_eq!(
        (p.name.as_str(), p.value_text().as_deref()),
        ("a", Some("1"))
    );

    let wf = workflow_from(
        "clusterworkflowtemplate",
        "c",
        "ml",
        None,
        &SubmitOptions::default(),
    )
    .unwrap();
    assert_eq!(
        wf.spec.workflow_template_ref.unwrap().cluster_scope,
        Some(true)
    );
    assert_eq!(
        wf.metadata.labels.unwrap()[LABEL_CLUSTER_WORKFLOW_TEMPLATE],
        "c"
    );

    let cron = CronWorkflow {
        spec: CronWorkflowSpec {
            workflow_spec: Some(Workflow::test("ml", "x").spec),
            workflow_metadata: Some(json!({"labels": {"owner": "bob"}})),
            ..Default::default()
        },
        ..Default::default()
    };
    let named = SubmitOptions {
        name: Some("manual".into()),
        ..Default::default()
    };
    let wf = workflow_from("cronworkflow", "nightly", "ml", Some(&cron), &named).unwrap();
    assert_eq!(wf.metadata.name.as_deref(), Some("manual"));
    assert_eq!(wf.metadata.generate_name, None);
    assert_eq!(wf.spec.entrypoint.as_deref(), Some("main"));
    let labels = wf.metadata.labels.unwrap();
    assert_eq!(labels[LABEL_CRON_WORKFLOW], "nightly");
    assert_eq!(labels["owner"], "bob");
    assert!(matches!(
        workflow_from("cronworkflow", "gone", "ml", None, &named),
        Err(ApiError::NotFound(_))
    ));
    let m = message(workflow_from("pod", "x", "ml", None, &named).unwrap_err());
    assert!(m.contains("resourceKind \"pod\""), "{m}");
    let bad_labels = SubmitOptions {
        labels: Some("nolabel".into()),
        ..Default::default()
    };
    let m = message(workflow_from("workflowtemplate", "t", "ml", None, &bad_labels).unwrap_err());
    assert!(m.contains("submitOptions.labels"), "{m}");
    let bad_param = SubmitOptions {
        parameters: vec!["novalue".into()],
        ..Default::default()
    };
    let m = message(workflow_from("workflowtemplate", "t", "ml", None, &bad_param).unwrap_err());
    assert!(m.contains("expected NAME=VALUE"), "{m}");
}

#[test]
fn kinds_normalize_like_argo_cli() {
    for (given, want) in [
        ("WorkflowTemplate", "workflowtemplate"),
        ("workflowtemplate", "workflowtemplate"),
        ("ClusterWorkflowTemplate", "clusterworkflowtemplate"),
        ("cronwf", "cronworkflow"),
        ("CronWorkflow", "cronworkflow"),
        ("other", "other"),
    ] {
        assert_eq!(normalize_kind(given), want, "{given}");
    }
}

#[test]
fn pod_nodes_use_deterministic_pod_names() {
    let mut wf = Workflow::test("ns", "wf");
    let node = |name: &str, kind: &str| crate::workflow::types::NodeStatus {
        name: Some(name.into()),
        node_type: Some(kind.into()),
        template_name: Some("step".into()),
        ..Default::default()
    };
    wf.status = Some(crate::workflow::types::WorkflowStatus {
        nodes: Some(
            [
                ("wf".to_owned(), node("wf", "DAG")),
                ("wf-1".to_owned(), node("wf.a", "Pod")),
            ]
            .into(),
        ),
        ..Default::default()
    });
    assert_eq!(
        pod_nodes(&wf),
        [(
            "wf-1".to_owned(),
            crate::workflow::node::pod_name("wf", "step", "wf.a")
        )]
    );
}
