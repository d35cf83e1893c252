//! What the metadata watches of the home cluster know about each watched kind: every object's
//! namespace and name, and the application its tracking id names (objects of this
//! installation only). With it the live listing asks only for what can concern an app — one
//! namespace, or a few objects by name — instead of listing the kind cluster-wide on every
//! reconcile; [`fetch_plan`] makes that choice.
//!
//! Invariants: until a kind's initial listing is complete ([`KindIndex::is_synced`]) the index
//! answers nothing and the kind is listed cluster-wide, as without it; a relisting (a watch
//! that expired) is collected aside and replaces the index whole when done, so the index is
//! never a mix of two listings. Pure: the controller feeds it the watch events.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// An object of one kind: namespace (`None` for cluster-scoped kinds) and name.
pub type ObjRef = (Option<String>, String);

/// Objects asked for by name at most per namespace (or for a cluster-scoped kind); more are
/// listed.
pub const GET_MAX: usize = 8;

#[derive(Clone, Debug, Default)]
struct Objects {
    /// Every object, with the app its tracking id names, if any.
    owners: HashMap<ObjRef, Option<String>>,
    /// Objects per namespace.
    per_namespace: HashMap<Option<String>, usize>,
}

impl Objects {
    fn upsert(&mut self, obj: ObjRef, owner: Option<String>) {
        let ns = obj.0.clone();
        if self.owners.insert(obj, owner).is_none() {
            *self.per_namespace.entry(ns).or_insert(0) += 1;
        }
    }

    fn remove(&mut self, obj: &ObjRef) {
        if self.owners.remove(obj).is_some()
            && let Some(n) = self.per_namespace.get_mut(&obj.0)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_namespace.remove(&obj.0);
            }
        }
    }
}

/// The index of one kind.
#[derive(Clone, Debug, Default)]
pub struct KindIndex {
    synced: bool,
    current: Objects,
    relisting: Option<Objects>,
}

impl KindIndex {
    /// A (re)listing starts.
    pub fn init(&mut self) {
        self.relisting = Some(Objects::default());
    }

    /// An object of the (re)listing.
    pub fn init_apply(&mut self, obj: ObjRef, owner: Option<String>) {
        match self.relisting.as_mut() {
            Some(r) => r.upsert(obj, owner),
            // A listing event without its start: take it as a change.
            None => self.current.upsert(obj, owner),
        }
    }

    /// The (re)listing is complete: it replaces what was known.
    pub fn init_done(&mut self) {
        if let Some(r) = self.relisting.take() {
            self.current = r;
        }
        self.synced = true;
    }

    /// An object was created or changed.
    pub fn apply(&mut self, obj: ObjRef, owner: Option<String>) {
        if let Some(r) = self.relisting.as_mut() {
            r.upsert(obj.clone(), owner.clone());
        }
        self.current.upsert(obj, owner);
    }

    /// An object was deleted.
    pub fn delete(&mut self, obj: &ObjRef) {
        if let Some(r) = self.relisting.as_mut() {
            r.remove(obj);
        }
        self.current.remove(obj);
    }

    /// Whether an initial listing completed.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// The objects whose tracking id names `app`.
    pub fn owned_by(&self, app: &str) -> BTreeSet<ObjRef> {
        self.current
            .owners
            .iter()
            .filter(|(_, o)| o.as_deref() == Some(app))
            .map(|(r, _)| r.clone())
            .collect()
    }

    /// How many objects of the kind `namespace` holds.
    pub fn count(&self, namespace: &Option<String>) -> usize {
        self.current
            .per_namespace
            .get(namespace)
            .copied()
            .unwrap_or(0)
    }
}

/// One request of a listing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fetch {
    /// List the kind everywhere.
    All,
    /// List the kind in one namespace.
    Namespace(String),
    /// Read one object.
    Get(ObjRef),
}

/// The requests that find every object of a kind `app` tracks or wants (`wanted`: the
/// identities of its desired objects of this kind): cluster-wide without a synced index;
/// else per namespace holding any of them, a namespace by name when it holds many more objects
/// than the app's (each read costs a request; a list returns the whole namespace), and
/// nothing when there is nothing to find.
pub fn fetch_plan(
    index: Option<&KindIndex>,
    app: &str,
    wanted: &BTreeSet<ObjRef>,
    namespaced: bool,
) -> Vec<Fetch> {
    let Some(index) = index.filter(|i| i.is_synced()) else {
        return vec![Fetch::All];
    };
    let mut refs = index.owned_by(app);
    refs.extend(wanted.iter().cloned());
    if refs.is_empty() {
        return Vec::new();
    }
    if !namespaced {
        return if refs.len() <= GET_MAX {
            refs.into_iter().map(Fetch::Get).collect()
        } else {
            vec![Fetch::All]
        };
    }
    let mut by_namespace: BTreeMap<Option<String>, Vec<ObjRef>> = BTreeMap::new();
    for r in refs {
        by_namespace.entry(r.0.clone()).or_default().push(r);
    }
    let mut out = Vec::new();
    for (ns, objs) in by_namespace {
        let Some(name) = ns.clone() else {
            // A namespaced kind without a namespace (never defaulted): only a full list
            // finds it.
            return vec![Fetch::All];
        };
        let crowded = index.count(&ns) > 2 * objs.len() + GET_MAX;
        if crowded && objs.len() <= GET_MAX {
            out.extend(objs.into_iter().map(Fetch::Get));
        } else {
            out.push(Fetch::Namespace(name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(ns: &str, name: &str) -> ObjRef {
        (Some(ns.to_owned()), name.to_owned())
    }

    fn synced(objs: &[(ObjRef, Option<&str>)]) -> KindIndex {
        let mut i = KindIndex::default();
        i.init();
        for (o, owner) in objs {
            i.init_apply(o.clone(), owner.map(str::to_owned));
        }
        i.init_done();
        i
    }

    #[test]
    fn nothing_is_answered_before_the_first_listing_completes() {
        let mut i = KindIndex::default();
        i.init();
        i.init_apply(r("a", "x"), Some("app".into()));
        assert_eq!(
            fetch_plan(Some(&i), "app", &BTreeSet::new(), true),
            vec![Fetch::All]
        );
        assert_eq!(
            fetch_plan(None, "app", &BTreeSet::new(), true),
            vec![Fetch::All]
        );
        i.init_done();
        assert_eq!(
            fetch_plan(Some(&i), "app", &BTreeSet::new(), true),
            vec![Fetch::Namespace("a".into())]
        );
    }

    #[test]
    fn changes_and_relistings_keep_the_index_exact() {
        let mut i = synced(&[(r("a", "x"), Some("app")), (r("a", "y"), None)]);
        assert_eq!(i.count(&Some("a".into())), 2);
        i.apply(r("a", "x"), Some("other".into()));
        assert!(i.owned_by("app").is_empty());
        assert_eq!(i.count(&Some("a".into())), 2);
        i.apply(r("b", "z"), Some("app".into()));
        assert_eq!(i.owned_by("app"), BTreeSet::from([r("b", "z")]));
        i.delete(&r("a", "y"));
        i.delete(&r("a", "missing"));
        assert_eq!(i.count(&Some("a".into())), 1);
        // A relisting replaces the index whole once complete, keeping changes seen meanwhile.
        i.init();
        i.init_apply(r("c", "w"), Some("app".into()));
        assert_eq!(i.owned_by("app"), BTreeSet::from([r("b", "z")]));
        i.apply(r("c", "v"), Some("app".into()));
        i.init_done();
        assert_eq!(
            i.owned_by("app"),
            BTreeSet::from([r("c", "w"), r("c", "v")])
        );
        assert_eq!(i.count(&Some("a".into())), 0);
        assert!(i.is_synced());
    }

    #[test]
    fn a_namespace_is_listed_unless_the_app_has_few_objects_among_many() {
        let mut objs: Vec<(ObjRef, Option<&str>)> = vec![
            (r("shared", "mine-1"), Some("app")),
            (r("own", "o"), Some("app")),
        ];
        for n in 0..100 {
            objs.push((r("shared", &format!("other-{n}")), Some("other")));
        }
        let i = synced(&objs);
        let wanted = BTreeSet::from([r("shared", "mine-2"), r("own", "p")]);
        assert_eq!(
            fetch_plan(Some(&i), "app", &wanted, true),
            vec![
                Fetch::Namespace("own".into()),
                Fetch::Get(r("shared", "mine-1")),
                Fetch::Get(r("shared", "mine-2")),
            ]
        );
        // Many objects of the app in a crowded namespace: one list.
        let many: BTreeSet<ObjRef> = (0..20).map(|n| r("shared", &format!("new-{n}"))).collect();
        assert_eq!(
            fetch_plan(Some(&i), "app", &many, true),
            vec![
                Fetch::Namespace("own".into()),
                Fetch::Namespace("shared".into())
            ]
        );
        // Nothing tracked, nothing wanted: no request at all.
        assert!(fetch_plan(Some(&i), "nobody", &BTreeSet::new(), true).is_empty());
    }

    #[test]
    fn cluster_scoped_kinds_are_read_by_name_when_few() {
        let i = synced(&[((None, "ns-a".into()), Some("app"))]);
        let wanted = BTreeSet::from([(None, "ns-b".to_owned())]);
        assert_eq!(
            fetch_plan(Some(&i), "app", &wanted, false),
            vec![
                Fetch::Get((None, "ns-a".into())),
                Fetch::Get((None, "ns-b".into()))
            ]
        );
        let lots: BTreeSet<ObjRef> = (0..=GET_MAX).map(|n| (None, format!("n{n}"))).collect();
        assert_eq!(fetch_plan(Some(&i), "app", &lots, false), vec![Fetch::All]);
        // A namespaced object without a namespace can only be found by a full list.
        assert_eq!(
            fetch_plan(
                Some(&i),
                "app",
                &BTreeSet::from([(None, "x".to_owned())]),
                true
            ),
            vec![Fetch::All]
        );
    }
}
