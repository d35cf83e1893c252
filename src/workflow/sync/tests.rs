use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde_json::{Value, json};

use super::*;

fn at(secs: i64) -> Option<Timestamp> {
    Timestamp::from_second(1_700_000_000 + secs).ok()
}

fn want<'a>(holder: &'a str, locks: &[(&str, usize)], priority: i64, created: i64) -> Want<'a> {
    Want {
        holder,
        priority,
        created: at(created),
        locks: locks.iter().map(|(k, l)| ((*k).to_owned(), *l)).collect(),
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

const M: &str = "ns/Mutex/m";
const S: &str = "ns/ConfigMap/cm/k";

// ---- lock refs --------------------------------------------------------------------------

#[test]
fn legacy_and_plural_forms_give_argo_keys_sorted_and_deduplicated() {
    let block = json!({
        "mutex": {"name": "a"},
        "semaphore": {"configMapKeyRef": {"name": "cm", "key": "wf"}},
        "mutexes": [{"name": "b"}, {"name": "a"}, {"name": "c", "namespace": "other"}],
        "semaphores": [{"configMapKeyRef": {"name": "cm", "key": "t"}, "namespace": "shared"}],
    });
    let refs = lock_refs(&block, "argo", "spec.synchronization").unwrap();
    let keys: Vec<&str> = refs.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "argo/ConfigMap/cm/wf",
            "argo/Mutex/a",
            "argo/Mutex/b",
            "other/Mutex/c",
            "shared/ConfigMap/cm/t",
        ]
    );
    assert_eq!(
        refs[4].kind,
        LockKind::Semaphore {
            namespace: "shared".into(),
            config_map: "cm".into(),
            key: "t".into()
        }
    );
    assert!(refs[1].is_mutex());
}

#[test]
fn absent_or_empty_blocks_ask_for_nothing() {
    assert!(lock_refs(&Value::Null, "ns", "p").unwrap().is_empty());
    assert!(lock_refs(&json!({}), "ns", "p").unwrap().is_empty());
    assert!(
        lock_refs(&json!({"mutexes": []}), "ns", "p")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn malformed_blocks_name_the_field_and_what_was_expected() {
    let cases = [
        (json!("x"), "spec.synchronization: expected an object"),
        (
            json!({"mutex": {}}),
            "spec.synchronization.mutex.name: expected a non-empty string",
        ),
        (
            json!({"mutexes": [{"name": "a/b"}]}),
            "spec.synchronization.mutexes[0].name: 'a/b' must not contain '/'",
        ),
        (
            json!({"mutexes": {"name": "a"}}),
            "spec.synchronization.mutexes: expected a list",
        ),
        (
            json!({"semaphore": {"configMapKeyRef": {"name": "cm"}}}),
            "spec.synchronization.semaphore.configMapKeyRef.key: expected a non-empty string",
        ),
        (
            json!({"semaphores": [{"namespace": "x"}]}),
            "spec.synchronization.semaphores[0].configMapKeyRef: expected an object with 'name' and 'key'",
        ),
        (
            json!({"mutexes": [{"name": "a", "database": true}]}),
            "spec.synchronization.mutexes[0].database: database locks are not supported by cairn (its locks are local to the controller); use a mutex or a ConfigMap semaphore",
        ),
    ];
    for (block, want) in cases {
        let err = lock_refs(&block, "ns", "spec.synchronization").unwrap_err();
        assert_eq!(err.to_string(), want, "{block}");
        assert_eq!(err.metric_label(), "sync_spec");
    }
}

#[test]
fn holder_keys_and_their_workflow() {
    assert_eq!(holder_key("ns", "wf", None), "ns/wf");
    assert_eq!(holder_key("ns", "wf", Some("wf-123")), "ns/wf/wf-123");
    assert_eq!(workflow_of("ns/wf/wf-123"), "ns/wf");
    assert_eq!(workflow_of("ns/wf"), "ns/wf");
    assert_eq!(
        waiting_message(M, 0, 1),
        "Waiting for ns/Mutex/m lock. Lock status: 0/1"
    );
    assert!(is_waiting_message(Some(&waiting_message(S, 1, 2))));
    assert!(!is_waiting_message(Some("Waiting for the pod")));
    assert!(!is_waiting_message(None));
}

#[test]
fn limits_parse_from_the_config_map_value() {
    assert_eq!(parse_limit(S, ConfigMapValue::Found(" 3\n".into())), Ok(3));
    assert_eq!(parse_limit(S, ConfigMapValue::Found("0".into())), Ok(0));
    let bad = parse_limit(S, ConfigMapValue::Found("two".into())).unwrap_err();
    assert_eq!(
        bad.to_string(),
        "semaphore ns/ConfigMap/cm/k: the ConfigMap value 'two' is not a non-negative integer"
    );
    assert_eq!(bad.metric_label(), "sync_limit");
    assert!(parse_limit(S, ConfigMapValue::Found("-1".into())).is_err());
    assert_eq!(
        parse_limit(S, ConfigMapValue::NoKey)
            .unwrap_err()
            .to_string(),
        "semaphore ns/ConfigMap/cm/k: the ConfigMap has no such key"
    );
    assert_eq!(
        parse_limit(S, ConfigMapValue::NoConfigMap)
            .unwrap_err()
            .to_string(),
        "semaphore ns/ConfigMap/cm/k: the ConfigMap does not exist"
    );
}

// ---- the table --------------------------------------------------------------------------

#[test]
fn a_mutex_admits_one_holder_and_the_release_wakes_the_next() {
    let mut t = LockTable::new();
    let (o, wake) = t.try_acquire(&want("ns/a", &[(M, 1)], 0, 0));
    assert_eq!(o, Outcome::Acquired);
    assert!(wake.is_empty());
    let (o, _) = t.try_acquire(&want("ns/b", &[(M, 1)], 0, 1));
    assert_eq!(
        o,
        Outcome::Waiting {
            key: M.into(),
            available: 0,
            limit: 1
        }
    );
    assert_eq!(t.holders(M), ["ns/a"]);
    assert_eq!(t.waiters(M), ["ns/b"]);
    assert_eq!(t.release("ns/a", &[M.into()]), set(&["ns/b"]));
    let (o, _) = t.try_acquire(&want("ns/b", &[(M, 1)], 0, 1));
    assert_eq!(o, Outcome::Acquired);
    assert!(t.waiters(M).is_empty());
}

#[test]
fn acquiring_again_is_idempotent() {
    let mut t = LockTable::new();
    for _ in 0..3 {
        assert_eq!(
            t.try_acquire(&want("ns/a", &[(M, 1)], 0, 0)).0,
            Outcome::Acquired
        );
    }
    assert_eq!(t.holders(M), ["ns/a"]);
    assert!(t.waiters(M).is_empty());
}

#[test]
fn waiters_queue_by_priority_then_creation_then_name() {
    let mut t = LockTable::new();
    t.try_acquire(&want("ns/holder", &[(M, 1)], 0, 0));
    t.try_acquire(&want("ns/old", &[(M, 1)], 0, 10));
    t.try_acquire(&want("ns/new", &[(M, 1)], 0, 20));
    t.try_acquire(&want("ns/urgent", &[(M, 1)], 5, 30));
    t.try_acquire(&want("ns/low", &[(M, 1)], -1, 1));
    t.try_acquire(&want("ns/also-old", &[(M, 1)], 0, 10));
    assert_eq!(
        t.waiters(M),
        ["ns/urgent", "ns/also-old", "ns/old", "ns/new", "ns/low"]
    );
    // The release wakes only the front (one free slot).
    assert_eq!(t.release("ns/holder", &[M.into()]), set(&["ns/urgent"]));
    // Someone behind the front cannot jump the queue...
    let (o, wake) = t.try_acquire(&want("ns/new", &[(M, 1)], 0, 20));
    assert!(matches!(o, Outcome::Waiting { available: 1, .. }));
    // ...and its attempt wakes the front, whose slot it is.
    assert_eq!(wake, set(&["ns/urgent"]));
    assert_eq!(
        t.try_acquire(&want("ns/urgent", &[(M, 1)], 5, 30)).0,
        Outcome::Acquired
    );
}

#[test]
fn a_changed_priority_moves_the_waiter() {
    let mut t = LockTable::new();
    t.try_acquire(&want("ns/holder", &[(M, 1)], 0, 0));
    t.try_acquire(&want("ns/a", &[(M, 1)], 0, 1));
    t.try_acquire(&want("ns/b", &[(M, 1)], 0, 2));
    t.try_acquire(&want("ns/b", &[(M, 1)], 9, 2));
    assert_eq!(t.waiters(M), ["ns/b", "ns/a"]);
}

#[test]
fn a_semaphore_admits_up_to_its_limit_and_the_first_free_waiters() {
    let mut t = LockTable::new();
    assert_eq!(
        t.try_acquire(&want("ns/a", &[(S, 2)], 0, 0)).0,
        Outcome::Acquired
    );
    assert_eq!(
        t.try_acquire(&want("ns/b", &[(S, 2)], 0, 1)).0,
        Outcome::Acquired
    );
    let (o, _) = t.try_acquire(&want("ns/c", &[(S, 2)], 0, 2));
    assert_eq!(
        o,
        Outcome::Waiting {
            key: S.into(),
            available: 0,
            limit: 2
        }
    );
    t.try_acquire(&want("ns/d", &[(S, 2)], 0, 3));
    t.try_acquire(&want("ns/e", &[(S, 2)], 0, 4));
    // Two free slots: the first two waiters are woken and either may go first.
    let wake = t.release_workflow("ns/a");
    assert_eq!(wake, set(&["ns/c"]));
    let wake = t.release("ns/b", &[S.into()]);
    assert_eq!(wake, set(&["ns/c", "ns/d"]));
    assert_eq!(
        t.try_acquire(&want("ns/d", &[(S, 2)], 0, 3)).0,
        Outcome::Acquired
    );
    // ns/e is behind ns/c, which still has the last slot.
    assert!(matches!(
        t.try_acquire(&want("ns/e", &[(S, 2)], 0, 4)).0,
        Outcome::Waiting { available: 1, .. }
    ));
    assert_eq!(
        t.try_acquire(&want("ns/c", &[(S, 2)], 0, 2)).0,
        Outcome::Acquired
    );
    assert_eq!(t.holders(S), ["ns/c", "ns/d"]);
    assert_eq!(t.waiters(S), ["ns/e"]);
}

#[test]
fn raising_a_limit_wakes_waiters_and_lowering_it_takes_nothing_away() {
    let mut t = LockTable::new();
    t.try_acquire(&want("ns/a", &[(S, 1)], 0, 0));
    t.try_acquire(&want("ns/b", &[(S, 1)], 0, 1));
    t.try_acquire(&want("ns/c", &[(S, 1)], 0, 2));
    assert_eq!(t.set_limit(S, 3), set(&["ns/b", "ns/c"]));
    assert_eq!(
        t.try_acquire(&want("ns/c", &[(S, 3)], 0, 2)).0,
        Outcome::Acquired
    );
    assert_eq!(
        t.try_acquire(&want("ns/b", &[(S, 3)], 0, 1)).0,
        Outcome::Acquired
    );
    // Limit lowered to 1: all three keep their hold; nobody new gets in.
    assert!(t.set_limit(S, 1).is_empty());
    assert_eq!(t.holders(S).len(), 3);
    let (o, _) = t.try_acquire(&want("ns/d", &[(S, 1)], 0, 3));
    assert_eq!(
        o,
        Outcome::Waiting {
            key: S.into(),
            available: 0,
            limit: 1
        }
    );
    t.release("ns/a", &[S.into()]);
    t.release("ns/b", &[S.into()]);
    assert!(matches!(
        t.try_acquire(&want("ns/d", &[(S, 1)], 0, 3)).0,
        Outcome::Waiting { .. }
    ));
    assert_eq!(t.release("ns/c", &[S.into()]), set(&["ns/d"]));
    assert_eq!(
        t.try_acquire(&want("ns/d", &[(S, 1)], 0, 3)).0,
        Outcome::Acquired
    );
    // A limit carried by an attempt counts like a ConfigMap change.
    assert_eq!(t.limit(S), Some(1));
    assert!(t.set_limit("ns/Mutex/unknown", 4).is_empty());
}

#[test]
fn a_zero_limit_admits_nobody() {
    let mut t = LockTable::new();
    assert_eq!(
        t.try_acquire(&want("ns/a", &[(S, 0)], 0, 0)).0,
        Outcome::Waiting {
            key: S.into(),
            available: 0,
            limit: 0
        }
    );
}

#[test]
fn several_locks_are_taken_all_or_none() {
    let mut t = LockTable::new();
    let other = "ns/Mutex/other";
    t.try_acquire(&want("ns/a", &[(other, 1)], 0, 0));
    let (o, _) = t.try_acquire(&want("ns/b", &[(M, 1), (other, 1)], 0, 1));
    assert_eq!(
        o,
        Outcome::Waiting {
            key: other.into(),
            available: 0,
            limit: 1
        }
    );
    // Nothing of the request is held, and it waits in both queues.
    assert!(t.holders(M).is_empty());
    assert_eq!(t.waiters(M), ["ns/b"]);
    assert_eq!(t.waiters(other), ["ns/b"]);
    // Argo's caveat: the front of M's queue blocks a later request for M alone.
    assert!(matches!(
        t.try_acquire(&want("ns/c", &[(M, 1)], 0, 2)).0,
        Outcome::Waiting { available: 1, .. }
    ));
    assert_eq!(t.release("ns/a", &[other.into()]), set(&["ns/b"]));
    assert_eq!(
        t.try_acquire(&want("ns/b", &[(M, 1), (other, 1)], 0, 1)).0,
        Outcome::Acquired
    );
    assert_eq!(t.holders(M), ["ns/b"]);
    assert_eq!(t.holders(other), ["ns/b"]);
    assert_eq!(t.waiters(M), ["ns/c"]);
}

#[test]
fn nodes_of_one_workflow_do_not_block_each_other_in_the_queue() {
    let mut t = LockTable::new();
    // Limit 2: one slot taken by another workflow's node, then two nodes of wf queue.
    t.try_acquire(&want("ns/other/n0", &[(S, 2)], 0, 0));
    t.try_acquire(&want("ns/other/n1", &[(S, 2)], 0, 0));
    t.try_acquire(&want("ns/wf/n1", &[(S, 2)], 0, 5));
    t.try_acquire(&want("ns/wf/n2", &[(S, 2)], 0, 5));
    assert_eq!(t.waiters(S), ["ns/wf/n1", "ns/wf/n2"]);
    t.release("ns/other/n0", &[S.into()]);
    // n2 behind its sibling n1 may take the free slot.
    assert_eq!(
        t.try_acquire(&want("ns/wf/n2", &[(S, 2)], 0, 5)).0,
        Outcome::Acquired
    );
    // An older workflow queues ahead of the younger one's nodes.
    t.release("ns/other/n1", &[S.into()]);
    assert_eq!(
        t.try_acquire(&want("ns/x", &[(S, 2)], 0, 1)).0,
        Outcome::Acquired
    );
    assert_eq!(t.waiters(S), ["ns/wf/n1"]);
    // The workflow level of the same workflow is another level: its nodes do block it.
    t.release("ns/x", &[S.into()]);
    assert!(matches!(
        t.try_acquire(&want("ns/wf", &[(S, 2)], 0, 9)).0,
        Outcome::Waiting { available: 1, .. }
    ));
}

#[test]
fn releasing_a_workflow_drops_its_holds_and_waits_at_every_level() {
    let mut t = LockTable::new();
    t.try_acquire(&want("ns/wf", &[(M, 1)], 0, 0));
    t.try_acquire(&want("ns/wf/n1", &[(S, 1)], 0, 0));
    t.try_acquire(&want("ns/wf/n2", &[(S, 1)], 0, 0));
    t.try_acquire(&want("ns/wf-2", &[(M, 1)], 0, 1));
    t.try_acquire(&want("ns/wf-2/n", &[(S, 1)], 0, 1));
    let wake = t.release_workflow("ns/wf");
    // `ns/wf-2` shares the prefix but is another workflow.
    assert_eq!(wake, set(&["ns/wf-2", "ns/wf-2/n"]));
    assert!(t.holders(M).is_empty());
    assert!(t.holders(S).is_empty());
    assert_eq!(t.waiters(M), ["ns/wf-2"]);
    assert_eq!(t.waiters(S), ["ns/wf-2/n"]);
    // Releasing what nobody holds changes nothing.
    assert!(
        t.release("ns/ghost", &[M.into(), "ns/Mutex/none".into()])
            .is_empty()
    );
}

#[test]
fn the_table_forgets_keys_nobody_uses() {
    let mut t = LockTable::new();
    t.try_acquire(&want("ns/a", &[(M, 1)], 0, 0));
    t.release("ns/a", &[M.into()]);
    assert_eq!(t.limit(M), None);
    assert!(t.keys_with_prefix("ns/").is_empty());
}

#[test]
fn keys_of_one_config_map_are_found_by_prefix() {
    let mut t = LockTable::new();
    t.try_acquire(&want("ns/a", &[("ns/ConfigMap/cm/a", 1)], 0, 0));
    t.try_acquire(&want("ns/a", &[("ns/ConfigMap/cm/b", 1)], 0, 0));
    t.try_acquire(&want("ns/a", &[("ns/ConfigMap/cm2/a", 1)], 0, 0));
    t.try_acquire(&want("ns/a", &[(M, 1)], 0, 0));
    assert_eq!(
        t.keys_with_prefix(&config_map_prefix("ns", "cm")),
        ["ns/ConfigMap/cm/a", "ns/ConfigMap/cm/b"]
    );
}

#[test]
fn restore_holds_whatever_the_limit_so_nothing_is_held_twice() {
    let mut t = LockTable::new();
    t.restore("ns/a", M, Some(1));
    t.restore("ns/b", M, Some(1));
    assert_eq!(t.holders(M), ["ns/a", "ns/b"]);
    assert!(matches!(
        t.try_acquire(&want("ns/c", &[(M, 1)], 0, 0)).0,
        Outcome::Waiting { available: 0, .. }
    ));
    t.release("ns/a", &[M.into()]);
    assert!(matches!(
        t.try_acquire(&want("ns/c", &[(M, 1)], 0, 0)).0,
        Outcome::Waiting { .. }
    ));
    assert_eq!(t.release("ns/b", &[M.into()]), set(&["ns/c"]));
    // Unknown limit: the holders' count.
    t.restore("ns/x", S, None);
    assert_eq!(t.limit(S), Some(1));
}

// ---- the gate, the status, the restore --------------------------------------------------

struct Config(BTreeMap<(String, String, String), String>);

impl SemaphoreConfig for Config {
    fn value(&self, namespace: &str, name: &str, key: &str) -> ConfigMapValue {
        match self.0.get(&(namespace.into(), name.into(), key.into())) {
            Some(v) => ConfigMapValue::Found(v.clone()),
            None => ConfigMapValue::NoConfigMap,
        }
    }
}

fn config(limit: &str) -> Config {
    Config(BTreeMap::from([(
        ("ns".into(), "cm".into(), "k".into()),
        limit.into(),
    )]))
}

fn refs(block: Value) -> Vec<LockRef> {
    lock_refs(&block, "ns", "spec.synchronization").unwrap()
}

#[test]
fn the_gate_reads_limits_answers_argo_messages_and_collects_workflows_to_wake() {
    let mut table = LockTable::new();
    let cfg = config("1");
    let sem = refs(json!({"semaphores": [{"configMapKeyRef": {"name": "cm", "key": "k"}}]}));
    let mut gate = Gate::new(&mut table, &cfg);
    let req = |holder| LockRequest {
        holder,
        priority: 0,
        created: at(0),
        refs: &sem,
    };
    assert_eq!(gate.acquire(&req("ns/a/n1")), Ok(Acquire::Acquired));
    let waiting = gate.acquire(&req("ns/b")).unwrap();
    assert_eq!(
        waiting,
        Acquire::Waiting {
            message: "Waiting for ns/ConfigMap/cm/k lock. Lock status: 0/1".into(),
            holders: vec![(sem[0].clone(), vec!["ns/a/n1".into()])],
        }
    );
    gate.release("ns/a/n1", &sem);
    assert_eq!(gate.woken, set(&["ns/b"]));
    gate.release_workflow("ns", "b");
    let missing = refs(json!({"semaphore": {"configMapKeyRef": {"name": "cm", "key": "other"}}}));
    let err = gate
        .acquire(&LockRequest {
            holder: "ns/c",
            priority: 0,
            created: None,
            refs: &missing,
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "semaphore ns/ConfigMap/cm/other: the ConfigMap does not exist"
    );
}

#[test]
fn status_records_holds_and_waits_as_argo_does() {
    let mutex = refs(json!({"mutex": {"name": "m"}}));
    let sem = refs(json!({"semaphore": {"configMapKeyRef": {"name": "cm", "key": "k"}}}));
    let mut s = SyncStatus::default();
    s.waiting(&[(mutex[0].clone(), vec!["ns/other".into()])]);
    s.waiting(&[(sem[0].clone(), vec!["ns/x/1".into(), "ns/y".into()])]);
    let mut extra = serde_json::Map::new();
    s.write(&mut extra);
    assert_eq!(
        extra[FIELD],
        json!({
            "mutex": {"waiting": [{"mutex": "ns/Mutex/m", "holder": "ns/other"}]},
            "semaphore": {"waiting": [{"semaphore": "ns/ConfigMap/cm/k", "holders": ["ns/x/1", "ns/y"]}]},
        })
    );
    s.acquired("ns/wf", &mutex);
    s.acquired("ns/wf/n1", &sem);
    s.acquired("ns/wf/n2", &sem);
    s.acquired("ns/wf/n2", &sem);
    s.write(&mut extra);
    assert_eq!(
        extra[FIELD],
        json!({
            "mutex": {"holding": [{"mutex": "ns/Mutex/m", "holder": "ns/wf"}]},
            "semaphore": {"holding": [{"semaphore": "ns/ConfigMap/cm/k", "holders": ["ns/wf/n1", "ns/wf/n2"]}]},
        })
    );
    assert_eq!(SyncStatus::read(&extra), s);
    assert_eq!(
        s.holdings(),
        [
            ("ns/Mutex/m".to_string(), "ns/wf".to_string()),
            ("ns/ConfigMap/cm/k".into(), "ns/wf/n1".into()),
            ("ns/ConfigMap/cm/k".into(), "ns/wf/n2".into()),
        ]
    );
    // A wait for a key this workflow holds is not recorded.
    s.waiting(&[(mutex[0].clone(), vec!["ns/wf".into()])]);
    assert!(s.mutex.as_ref().unwrap().waiting.is_empty());
    s.released("ns/wf/n1", &sem);
    s.released("ns/wf/n2", &sem);
    s.released("ns/wf", &mutex);
    s.write(&mut extra);
    assert!(!extra.contains_key(FIELD));
    s.waiting(&[(mutex[0].clone(), vec![])]);
    s.clear_waiting();
    s.write(&mut extra);
    assert!(!extra.contains_key(FIELD));
}

#[test]
fn restore_reads_running_workflows_only_and_upgrades_legacy_holder_names() {
    let cfg = config("2");
    let status = |v: Value| -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert(FIELD.into(), v);
        m
    };
    let running = status(json!({
        "mutex": {"holding": [{"mutex": M, "holder": "ns/wf"}]},
        "semaphore": {"holding": [{"semaphore": S, "holders": ["ns/wf/n1", "n2"]}]},
    }));
    let legacy =
        status(json!({"mutex": {"holding": [{"mutex": "ns/Mutex/old", "holder": "old"}]}}));
    let done =
        status(json!({"mutex": {"holding": [{"mutex": "ns/Mutex/done", "holder": "ns/done"}]}}));
    let mut t = LockTable::new();
    let n = restore_from_status(
        &mut t,
        &[
            RestoreInput {
                namespace: "ns",
                name: "wf",
                status_extra: &running,
                completed: false,
            },
            RestoreInput {
                namespace: "ns",
                name: "old",
                status_extra: &legacy,
                completed: false,
            },
            RestoreInput {
                namespace: "ns",
                name: "done",
                status_extra: &done,
                completed: true,
            },
        ],
        &cfg,
    );
    assert_eq!(n, 4);
    assert_eq!(t.holders(M), ["ns/wf"]);
    assert_eq!(t.holders(S), ["ns/wf/n1", "ns/wf/n2"]);
    assert_eq!(t.limit(S), Some(2));
    assert_eq!(t.holders("ns/Mutex/old"), ["ns/old"]);
    assert!(t.holders("ns/Mutex/done").is_empty());
    // The restored holders keep others out.
    let mut gate = Gate::new(&mut t, &cfg);
    let sem = refs(json!({"semaphore": {"configMapKeyRef": {"name": "cm", "key": "k"}}}));
    assert!(matches!(
        gate.acquire(&LockRequest {
            holder: "ns/new",
            priority: 0,
            created: None,
            refs: &sem
        }),
        Ok(Acquire::Waiting { .. })
    ));
}
