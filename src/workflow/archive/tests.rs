use super::*;

fn finished(ns: &str, name: &str, uid: &str, phase: &str, finished: &str) -> Workflow {
    let mut wf = Workflow::test(ns, name).with_phase(phase);
    wf.metadata.uid = Some(uid.to_owned());
    wf.metadata.labels = Some([("team".to_owned(), ns.to_owned())].into());
    let status = wf.status.as_mut().unwrap();
    status.started_at = Some("2026-01-01T00:00:00Z".to_owned());
    status.finished_at = Some(finished.to_owned());
    wf
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn log(node: &str, content: &str) -> LogInput {
    LogInput {
        node_id: node.to_owned(),
        pod_name: format!("pod-{node}"),
        container: "main".to_owned(),
        content: content.to_owned(),
    }
}

fn open(limit: usize) -> (tempfile::TempDir, Archive) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, Archive::new(store, limit))
}

#[test]
fn truncation_table() {
    let cases: [(&str, usize, &str, bool); 4] = [
        ("hello", 10, "hello", false),
        ("hello", 5, "hello", false),
        ("hello world", 5, "world", true),
        // "é" is two bytes: the cut moves forward to a character boundary.
        ("aéb", 2, "b", true),
    ];
    for (input, limit, tail, truncated) in cases {
        let (out, t) = truncate_log(input, limit);
        assert_eq!(t, truncated, "{input:?}");
        if truncated {
            assert!(out.starts_with(TRUNCATION_MARKER), "{out}");
            assert!(out.ends_with(&format!("\n{tail}")), "{out}");
            assert!(out.contains(&format!("of {} bytes", input.len())), "{out}");
        } else {
            assert_eq!(out, tail);
        }
    }
}

#[test]
fn selector_table() {
    use LabelRequirement::*;
    let ok: [(&str, Vec<LabelRequirement>); 4] = [
        ("", vec![]),
        ("a=b", vec![Equals("a".into(), "b".into())]),
        (
            "a==b, c!=d",
            vec![
                Equals("a".into(), "b".into()),
                NotEquals("c".into(), "d".into()),
            ],
        ),
        ("e,!f", vec![Exists("e".into()), NotExists("f".into())]),
    ];
    for (text, want) in ok {
        assert_eq!(parse_selector(text).unwrap(), want, "{text}");
    }
    for bad in ["=b", "env in (a,b)", "!"] {
        let err = parse_selector(bad).unwrap_err();
        assert!(err.to_string().contains(bad), "{err}");
    }
    let labels: BTreeMap<String, String> = [("a".to_owned(), "b".to_owned())].into();
    for (text, want) in [
        ("a=b", true),
        ("a=c", false),
        ("a!=c", true),
        ("x!=c", true),
        ("a", true),
        ("!a", false),
        ("!x", true),
        ("a=b,x", false),
    ] {
        let reqs = parse_selector(text).unwrap();
        assert_eq!(reqs.iter().all(|r| r.matches(&labels)), want, "{text}");
    }
}

#[test]
fn record_needs_a_uid() {
    let wf = Workflow::test("ns", "wf");
    let err = record(&wf, ts("2026-01-01T00:00:00Z")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "workflow ns/wf has no metadata.uid: expected an object read from the cluster"
    );
}

#[tokio::test]
async fn archive_get_list_logs_delete() {
    let (_dir, archive) = open(8);
    let a = finished("ml", "train", "u1", "Succeeded", "2026-01-01T00:01:00Z");
    let b = finished("ml", "eval", "u2", "Failed", "2026-01-01T00:03:00Z");
    let c = finished(
        "ops",
        "train-nightly",
        "u3",
        "Succeeded",
        "2026-01-01T00:02:00Z",
    );
    let now = ts("2026-01-02T00:00:00Z");
    archive
        .archive(&a, vec![log("n1", "short"), log("n2", "0123456789")], now)
        .await
        .unwrap();
    archive.archive(&b, vec![], now).await.unwrap();
    archive
        .archive(&c, vec![log("n1", "other")], now)
        .await
        .unwrap();

    let got = archive.get("u1").unwrap().unwrap();
    assert_eq!(got.workflow, a);
    assert_eq!(got.summary.phase.as_deref(), Some("Succeeded"));
    assert_eq!(archive.get("nope").unwrap(), None);

    let names = |f: ArchiveFilter| -> Vec<String> {
        archive
            .list(&f)
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect()
    };
    assert_eq!(
        names(ArchiveFilter::default()),
        ["eval", "train-nightly", "train"]
    );
    assert_eq!(
        names(ArchiveFilter {
            namespace: Some("ml".into()),
            ..Default::default()
        }),
        ["eval", "train"]
    );
    assert_eq!(
        names(ArchiveFilter {
            name_prefix: Some("train".into()),
            ..Default::default()
        }),
        ["train-nightly", "train"]
    );
    assert_eq!(
        names(ArchiveFilter {
            labels: parse_selector("team=ops").unwrap(),
            ..Default::default()
        }),
        ["train-nightly"]
    );

    let logs = archive.logs("u1").unwrap();
    assert_eq!(logs.len(), 2);
    assert_eq!(
        (logs[0].content.as_str(), logs[0].truncated),
        ("short", false)
    );
    assert!(logs[1].truncated);
    assert!(
        logs[1].content.ends_with("\n23456789"),
        "{}",
        logs[1].content
    );
    assert_eq!(logs[1].original_bytes, 10);
    // Logs of another uid sharing a node id are not mixed in.
    assert_eq!(archive.logs("u3").unwrap().len(), 1);

    assert_eq!(
        archive
            .get_by_name("ml", "eval")
            .unwrap()
            .unwrap()
            .summary
            .uid,
        "u2"
    );
    assert!(archive.delete("u1").await.unwrap());
    assert!(!archive.delete("u1").await.unwrap());
    assert_eq!(archive.get("u1").unwrap(), None);
    assert!(archive.logs("u1").unwrap().is_empty());
    assert_eq!(archive.logs("u3").unwrap().len(), 1);
    assert_eq!(names(ArchiveFilter::default()), ["eval", "train-nightly"]);
}

#[tokio::test]
async fn re_archiving_replaces_and_reused_names_are_kept_apart() {
    let (dir, archive) = open(DEFAULT_NODE_LOG_LIMIT);
    let first = finished("ml", "wf", "u1", "Failed", "2026-01-01T00:01:00Z");
    archive
        .archive(
            &first,
            vec![log("n", "attempt 1")],
            ts("2026-01-01T00:02:00Z"),
        )
        .await
        .unwrap();
    // Retried and finished again: same uid, replaced.
    let again = finished("ml", "wf", "u1", "Succeeded", "2026-01-01T00:05:00Z");
    archive
        .archive(
            &again,
            vec![log("n", "attempt 2")],
            ts("2026-01-01T00:06:00Z"),
        )
        .await
        .unwrap();
    assert_eq!(archive.list(&ArchiveFilter::default()).unwrap().len(), 1);
    assert_eq!(archive.logs("u1").unwrap()[0].content, "attempt 2");
    // Deleted and re-created under the same name: a second entry; by name gives the newest.
    let recreated = finished("ml", "wf", "u2", "Succeeded", "2026-01-02T00:00:00Z");
    archive
        .archive(&recreated, vec![], ts("2026-01-02T00:01:00Z"))
        .await
        .unwrap();
    assert_eq!(archive.list(&ArchiveFilter::default()).unwrap().len(), 2);
    assert_eq!(
        archive
            .get_by_name("ml", "wf")
            .unwrap()
            .unwrap()
            .summary
            .uid,
        "u2"
    );
    // Survives a reopen of the database.
    drop(archive);
    let archive = Archive::new(Store::open(dir.path()).unwrap(), DEFAULT_NODE_LOG_LIMIT);
    assert_eq!(archive.get("u1").unwrap().unwrap().workflow, again);
}

#[tokio::test]
async fn logs_put_before_the_record_are_kept() {
    let (_dir, archive) = open(DEFAULT_NODE_LOG_LIMIT);
    archive
        .put_logs("u1", vec![log("a", "gc'd early")])
        .await
        .unwrap();
    assert_eq!(archive.get("u1").unwrap(), None);
    let wf = finished("ml", "wf", "u1", "Succeeded", "2026-01-01T00:01:00Z");
    archive
        .archive(
            &wf,
            vec![log("b", "at the end")],
            ts("2026-01-01T00:02:00Z"),
        )
        .await
        .unwrap();
    let logs: Vec<String> = archive
        .logs("u1")
        .unwrap()
        .into_iter()
        .map(|l| l.content)
        .collect();
    assert_eq!(logs, ["gc'd early", "at the end"]);
}
