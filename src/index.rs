//! The in-memory index: objects by key plus reverse references from each VirtualService,
//! DestinationRule and Service to the Rollouts that name it, so that a write to any of them
//! finds its Rollouts without a scan.
//!
//! The maps are persistent (structure-shared): cloning an index is O(1) and a change copies only
//! the path to what it touches. That is what lets [`SharedIndex`] publish a new immutable snapshot
//! per watch event while decisions keep reading the one they started with.
//!
//! They are B-trees (`imbl::OrdMap`), not HAMTs (`imbl::HashMap`): a HAMT node holds a fixed
//! array of slots however few are filled, and with 50,000 objects that cost about 400 heap bytes
//! an object more; a B-tree node is at least half full, and lookups cost about the same.

use crate::model::intern::NAMESPACES;
use crate::model::object::local_cluster;
use crate::model::{DestinationRule, Kind, Object, ObjectKey, Rollout, Service, VirtualService};
use arc_swap::ArcSwap;
use imbl::OrdMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default, Clone)]
pub struct Index {
    objects: OrdMap<ObjectKey, Object>,
    /// Each set, sorted, in its own `Arc`: copying a map node for a new snapshot then copies
    /// pointers, not every set in the node. A slice of exactly its length, because nearly every
    /// set holds one Rollout (a `Vec` would hold room for four).
    referenced_by: OrdMap<ObjectKey, Arc<[ObjectKey]>>,
}

/// Read access to objects: the index itself, or the index with one object replaced.
pub trait Lookup {
    fn object(&self, key: &ObjectKey) -> Option<Object>;
    /// The Rollouts whose spec references `key`.
    fn rollouts_referencing(&self, key: &ObjectKey) -> Vec<ObjectKey>;

    fn rollout(&self, namespace: &str, name: &str) -> Option<Arc<Rollout>> {
        match self.object(&ObjectKey::new(Kind::Rollout, namespace, name)) {
            Some(Object::Rollout(r)) => Some(r),
            _ => None,
        }
    }
    fn virtual_service(&self, namespace: &str, name: &str) -> Option<Arc<VirtualService>> {
        match self.object(&ObjectKey::new(Kind::VirtualService, namespace, name)) {
            Some(Object::VirtualService(v)) => Some(v),
            _ => None,
        }
    }
    fn destination_rule(&self, namespace: &str, name: &str) -> Option<Arc<DestinationRule>> {
        match self.object(&ObjectKey::new(Kind::DestinationRule, namespace, name)) {
            Some(Object::DestinationRule(d)) => Some(d),
            _ => None,
        }
    }
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>> {
        match self.object(&ObjectKey::new(Kind::Service, namespace, name)) {
            Some(Object::Service(s)) => Some(s),
            _ => None,
        }
    }
    /// A Service a Rollout names: in the Rollout's namespace and cluster.
    fn service_of(&self, rollout: &Rollout, name: &str) -> Option<Arc<Service>> {
        let key = ObjectKey::in_cluster(
            Kind::Service,
            &rollout.meta.cluster,
            &rollout.meta.namespace,
            name,
        );
        match self.object(&key) {
            Some(Object::Service(s)) => Some(s),
            _ => None,
        }
    }
}

/// Every object a Rollout's spec references (VirtualServices, its DestinationRule, its Services).
/// Services are in the Rollout's cluster; VirtualServices and DestinationRules in the one Istio
/// config cluster (see [`ObjectKey`]). Keys in the Rollout's namespace share its string.
pub fn references_of(rollout: &Rollout) -> Vec<ObjectKey> {
    let ns = &rollout.meta.namespace;
    let key = |kind, cluster: &Arc<str>, namespace: &Arc<str>, name: &str| ObjectKey {
        kind,
        namespace: namespace.clone(),
        name: Arc::from(name),
        cluster: cluster.clone(),
    };
    let local = local_cluster();
    let mut out = Vec::new();
    for (_, vs_ref) in rollout.vs_refs() {
        let (vs_ns, vs_name) = vs_ref.target(ns);
        if *vs_ns == **ns {
            out.push(key(Kind::VirtualService, &local, ns, &vs_name));
        } else {
            out.push(ObjectKey::new(Kind::VirtualService, &vs_ns, &vs_name));
        }
    }
    if let Some(dr) = rollout.istio().and_then(|i| i.destination_rule.as_ref()) {
        out.push(key(Kind::DestinationRule, &local, ns, &dr.name));
    }
    if let Some(c) = rollout.canary() {
        let pp = c.ping_pong.as_ref();
        let names = [
            c.canary_service.as_deref(),
            c.stable_service.as_deref(),
            pp.map(|p| p.ping_service.as_str()),
            pp.map(|p| p.pong_service.as_str()),
        ];
        for name in names.into_iter().flatten().filter(|n| !n.is_empty()) {
            out.push(key(Kind::Service, &rollout.meta.cluster, ns, name));
        }
    }
    out.sort();
    out.dedup();
    out
}

impl Index {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_objects(objects: impl IntoIterator<Item = Object>) -> Self {
        let mut index = Index::new();
        for o in objects {
            index.upsert(o);
        }
        index
    }

    /// Inserts or replaces an object; returns the previous version.
    pub fn upsert(&mut self, object: Object) -> Option<Object> {
        let key = object.key();
        if let Object::Rollout(r) = &object {
            for target in references_of(r) {
                let set = self.referenced_by.get(&target).map_or(&[][..], |s| &s[..]);
                if let Err(at) = set.binary_search(&key) {
                    let mut grown = Vec::with_capacity(set.len() + 1);
                    grown.extend_from_slice(&set[..at]);
                    grown.push(key.clone());
                    grown.extend_from_slice(&set[at..]);
                    let target = self.stored_key(target);
                    self.referenced_by.insert(target, grown.into());
                }
            }
        }
        let previous = self.objects.insert(key.clone(), object);
        match &previous {
            Some(Object::Rollout(old)) => {
                let now = match self.objects.get(&key) {
                    Some(Object::Rollout(r)) => references_of(r),
                    _ => Vec::new(),
                };
                for target in references_of(old) {
                    if !now.contains(&target) {
                        self.unlink(&target, &key);
                    }
                }
            }
            // A new object that Rollouts already reference: their sets are filed under a key
            // built from a Rollout's spec; file them under the object's own strings instead.
            // An update keeps the key its object was first filed under, so that a watch event
            // writes this map only when a reference changes.
            None => {
                if let Some((_, rollouts)) = self.referenced_by.remove_with_key(&key) {
                    self.referenced_by.insert(key, rollouts);
                }
            }
            Some(_) => {}
        }
        previous
    }

    /// `key` as the index stores it: the stored object's key when there is one (its strings
    /// already allocated), else `key` with its namespace shared.
    fn stored_key(&self, key: ObjectKey) -> ObjectKey {
        match self.objects.get_key_value(&key) {
            Some((stored, _)) => stored.clone(),
            None => ObjectKey {
                namespace: NAMESPACES.intern(&key.namespace),
                ..key
            },
        }
    }

    pub fn remove(&mut self, key: &ObjectKey) -> Option<Object> {
        let previous = self.objects.remove(key);
        if let Some(Object::Rollout(old)) = &previous {
            for target in references_of(old) {
                self.unlink(&target, key);
            }
        }
        previous
    }

    fn unlink(&mut self, target: &ObjectKey, rollout: &ObjectKey) {
        if let Some(set) = self.referenced_by.get_mut(target) {
            if let Ok(at) = set.binary_search(rollout) {
                *set = set
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != at)
                    .map(|(_, k)| k.clone())
                    .collect();
            }
            if set.is_empty() {
                self.referenced_by.remove(target);
            }
        }
    }

    /// Replaces every object of `kind` in `cluster` (in `namespace`, or everywhere) with
    /// `objects`: how a watcher's relist lands, so that objects deleted while it was away
    /// disappear.
    pub fn replace_scope(
        &mut self,
        kind: Kind,
        cluster: &str,
        namespace: Option<&str>,
        objects: Vec<Object>,
    ) {
        self.replace_where(
            |k| {
                k.kind == kind
                    && *k.cluster == *cluster
                    && namespace.is_none_or(|ns| *k.namespace == *ns)
            },
            objects,
        );
    }

    /// Replaces every object whose key is `in_scope` with `objects`. An object that is already
    /// in the index as the very same version (the files source passes on what it did not re-read)
    /// is left as it is, so a relist costs in proportion to what changed.
    pub fn replace_where(&mut self, in_scope: impl Fn(&ObjectKey) -> bool, objects: Vec<Object>) {
        if self.objects.is_empty() {
            // A first load: nothing to compare with.
            for object in objects {
                self.upsert(object);
            }
            return;
        }
        let keep: std::collections::HashSet<ObjectKey> = objects.iter().map(Object::key).collect();
        let gone: Vec<ObjectKey> = self
            .objects
            .keys()
            .filter(|k| in_scope(k) && !keep.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            self.remove(&key);
        }
        for object in objects {
            let unchanged = self
                .objects
                .get(&object.key())
                .is_some_and(|current| current.is_same_version(&object));
            if !unchanged {
                self.upsert(object);
            }
        }
    }

    /// Removes every object read from `cluster` (a remote cluster no longer configured).
    pub fn remove_cluster(&mut self, cluster: &str) -> usize {
        let gone: Vec<ObjectKey> = self
            .objects
            .keys()
            .filter(|k| *k.cluster == *cluster)
            .cloned()
            .collect();
        for key in &gone {
            self.remove(key);
        }
        gone.len()
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.objects.keys().filter(|k| k.kind == kind).count()
    }

    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.objects.values()
    }

    /// Keys of one namespace and kind, or of all, sorted (for listings and resyncs).
    pub fn keys(&self, kind: Kind) -> Vec<ObjectKey> {
        let mut keys: Vec<ObjectKey> = self
            .objects
            .keys()
            .filter(|k| k.kind == kind)
            .cloned()
            .collect();
        keys.sort();
        keys
    }
}

impl Lookup for Index {
    fn object(&self, key: &ObjectKey) -> Option<Object> {
        self.objects.get(key).cloned()
    }

    fn rollouts_referencing(&self, key: &ObjectKey) -> Vec<ObjectKey> {
        self.referenced_by
            .get(key)
            .map(|set| set.to_vec())
            .unwrap_or_default()
    }
}

impl<L: Lookup + ?Sized> Lookup for Arc<L> {
    fn object(&self, key: &ObjectKey) -> Option<Object> {
        (**self).object(key)
    }

    fn rollouts_referencing(&self, key: &ObjectKey) -> Vec<ObjectKey> {
        (**self).rollouts_referencing(key)
    }
}

/// The index as it would be with one object written (`Some`) or deleted (`None`): how a request
/// is judged before it is stored.
pub struct Overlay<'a, L: Lookup + ?Sized> {
    pub base: &'a L,
    pub key: ObjectKey,
    pub object: Option<Object>,
}

impl<L: Lookup + ?Sized> Lookup for Overlay<'_, L> {
    fn object(&self, key: &ObjectKey) -> Option<Object> {
        if *key == self.key {
            self.object.clone()
        } else {
            self.base.object(key)
        }
    }

    fn rollouts_referencing(&self, key: &ObjectKey) -> Vec<ObjectKey> {
        let mut out = self.base.rollouts_referencing(key);
        if self.key.kind == Kind::Rollout {
            out.retain(|k| *k != self.key);
            if let Some(Object::Rollout(r)) = &self.object {
                if references_of(r).contains(key) {
                    out.push(self.key.clone());
                    out.sort();
                }
            }
        }
        out
    }
}

/// The index shared by the sources (writers) and the admission handlers (readers).
///
/// Readers take an immutable [`snapshot`](SharedIndex::snapshot) (an `Arc` load, no lock) and
/// decide on it for as long as they like; writers build the next version from the current one and
/// publish it. Writers are serialised among themselves by a mutex that no reader ever touches, so
/// no request waits for a watch event and no watch event waits for a request.
///
/// A replaced snapshot is not freed by whoever lets go of it last: the writers keep it until no
/// reader holds it and free it themselves, so that under a storm of watch events the work of
/// freeing old versions (the map nodes each event copied) stays off the request path.
#[derive(Debug, Clone, Default)]
pub struct SharedIndex(Arc<Published>);

#[derive(Debug, Default)]
struct Published {
    current: ArcSwap<Index>,
    writers: Mutex<Retired>,
}

/// Replaced snapshots that readers may still hold, oldest first.
#[derive(Debug, Default)]
struct Retired(std::collections::VecDeque<Arc<Index>>);

impl Retired {
    /// Past this many, the oldest is let go even if a reader still holds it (then that reader
    /// frees it): a reader that holds a snapshot for long does not make the writers hoard.
    const MAX: usize = 64;

    /// Keeps `old` until no reader holds it; frees, here, the ones no reader holds any more.
    fn retire(&mut self, old: Arc<Index>) {
        self.0.push_back(old);
        self.0.retain(|snapshot| Arc::strong_count(snapshot) > 1);
        while self.0.len() > Self::MAX {
            self.0.pop_front();
        }
    }
}

impl SharedIndex {
    pub fn new(index: Index) -> Self {
        SharedIndex(Arc::new(Published {
            current: ArcSwap::from_pointee(index),
            writers: Mutex::new(Retired::default()),
        }))
    }

    /// The index as it is now; later writes do not change it.
    pub fn snapshot(&self) -> Arc<Index> {
        self.0.current.load_full()
    }

    /// Applies one change and publishes the result as the new snapshot.
    pub fn update<R>(&self, change: impl FnOnce(&mut Index) -> R) -> R {
        let mut retired = self
            .0
            .writers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut next = Index::clone(&self.0.current.load());
        let result = change(&mut next);
        retired.retire(self.0.current.swap(Arc::new(next)));
        result
    }

    pub fn replace(&self, index: Index) {
        let mut retired = self
            .0
            .writers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        retired.retire(self.0.current.swap(Arc::new(index)));
    }

    /// Replaced snapshots still kept for readers (tests).
    #[cfg(test)]
    fn retired(&self) -> usize {
        self.0
            .writers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(doc: serde_json::Value) -> Object {
        Object::parse(&doc, "default").unwrap().unwrap()
    }

    fn rollout(vs: &str) -> Object {
        parse(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "r", "namespace": "ns"},
            "spec": {"strategy": {"canary": {"canaryService": "c", "stableService": "s",
                "trafficRouting": {"istio": {"virtualService": {"name": vs}}}}}}
        }))
    }

    #[test]
    fn a_relist_keeps_unchanged_versions_and_drops_what_is_gone() {
        let kept = rollout("vs1");
        let other = parse(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "c", "namespace": "ns"}}));
        let mut index = Index::from_objects([kept.clone(), other.clone()]);
        let reread = parse(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "c", "namespace": "ns"}}));
        index.replace_where(|_| true, vec![kept.clone()]);
        assert_eq!(
            index.len(),
            1,
            "the Service missing from the relist is gone"
        );
        index.replace_where(|_| true, vec![kept.clone(), reread.clone()]);
        let lookup = |o: &Object| index.object(&o.key()).expect("indexed");
        assert!(lookup(&kept).is_same_version(&kept));
        assert!(lookup(&reread).is_same_version(&reread) && !reread.is_same_version(&other));
        assert_eq!(
            index
                .rollouts_referencing(&ObjectKey::new(Kind::VirtualService, "ns", "vs1"))
                .len(),
            1
        );
    }

    #[test]
    fn reverse_references_are_filed_under_the_objects_own_strings() {
        let service = parse(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "c", "namespace": "ns"}}));
        let vs = parse(
            json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
            "metadata": {"name": "vs1", "namespace": "ns"}}),
        );
        // One target stored before the Rollout, one after it.
        let index = Index::from_objects([service.clone(), rollout("vs1"), vs.clone()]);
        let rollout = index
            .object(&ObjectKey::new(Kind::Rollout, "ns", "r"))
            .expect("indexed");
        for target in [&service, &vs] {
            let (filed, set) = index
                .referenced_by
                .get_key_value(&target.key())
                .expect("referenced");
            assert!(Arc::ptr_eq(&filed.name, &target.meta().name), "{filed}");
            assert!(Arc::ptr_eq(&set[0].name, &rollout.meta().name));
        }
        let (filed, _) = index
            .referenced_by
            .get_key_value(&ObjectKey::new(Kind::Service, "ns", "s"))
            .expect("a Service not stored yet is referenced too");
        assert!(Arc::ptr_eq(&filed.namespace, &service.meta().namespace));
        assert!(Arc::ptr_eq(&rollout.meta().namespace, &vs.meta().namespace));
    }

    #[test]
    fn replaced_snapshots_are_kept_while_read_and_freed_by_the_writer() {
        let shared = SharedIndex::default();
        let held = shared.snapshot();
        shared.update(|i| i.upsert(rollout("vs1")));
        assert_eq!(shared.retired(), 1, "a reader holds the replaced snapshot");
        assert!(held.is_empty() && shared.snapshot().len() == 1);
        drop(held);
        assert_eq!(Arc::strong_count(&shared.0.writers.lock().unwrap().0[0]), 1);
        shared.update(|i| i.upsert(rollout("vs2")));
        assert_eq!(shared.retired(), 0, "no reader: both freed by the writer");
        let readers: Vec<Arc<Index>> = (0..Retired::MAX + 5)
            .map(|_| {
                let s = shared.snapshot();
                shared.update(|i| i.upsert(rollout("vs3")));
                s
            })
            .collect();
        assert_eq!(shared.retired(), Retired::MAX, "bounded");
        drop(readers);
        shared.update(|i| i.upsert(rollout("vs4")));
        assert_eq!(shared.retired(), 0);
    }

    #[test]
    fn reverse_references_follow_updates_and_deletes() {
        let mut index = Index::new();
        index.upsert(rollout("vs1"));
        let vs1 = ObjectKey::new(Kind::VirtualService, "ns", "vs1");
        let vs2 = ObjectKey::new(Kind::VirtualService, "other", "vs2");
        let r = ObjectKey::new(Kind::Rollout, "ns", "r");
        assert_eq!(index.rollouts_referencing(&vs1), vec![r.clone()]);
        assert_eq!(
            index.rollouts_referencing(&ObjectKey::new(Kind::Service, "ns", "c")),
            vec![r.clone()]
        );

        index.upsert(rollout("vs2.other"));
        assert!(index.rollouts_referencing(&vs1).is_empty());
        assert_eq!(index.rollouts_referencing(&vs2), vec![r.clone()]);

        index.remove(&r);
        assert!(index.rollouts_referencing(&vs2).is_empty());
        assert!(index.is_empty());
    }

    #[test]
    fn rollouts_sharing_an_object_are_kept_sorted_and_unlinked_one_by_one() {
        let named = |name: &str| {
            let Object::Rollout(r) = rollout("shared") else {
                unreachable!("rollout() builds a Rollout")
            };
            let mut r = (*r).clone();
            r.meta.name = name.into();
            Object::Rollout(Arc::new(r))
        };
        let mut index = Index::new();
        for name in ["b", "c", "a"] {
            index.upsert(named(name));
        }
        let shared = ObjectKey::new(Kind::VirtualService, "ns", "shared");
        let key = |name: &str| ObjectKey::new(Kind::Rollout, "ns", name);
        assert_eq!(
            index.rollouts_referencing(&shared),
            vec![key("a"), key("b"), key("c")]
        );
        index.remove(&key("b"));
        assert_eq!(
            index.rollouts_referencing(&shared),
            vec![key("a"), key("c")]
        );
        index.upsert(named("a"));
        assert_eq!(
            index.rollouts_referencing(&shared),
            vec![key("a"), key("c")],
            "an update that keeps its references adds no second entry"
        );
    }

    #[test]
    fn replace_scope_drops_what_a_relist_no_longer_has() {
        let svc = |ns: &str, name: &str| {
            parse(
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}}),
            )
        };
        let mut index = Index::from_objects([
            svc("a", "one"),
            svc("a", "two"),
            svc("b", "three"),
            rollout("vs1"),
        ]);
        index.replace_scope(Kind::Service, "", Some("a"), vec![svc("a", "two")]);
        assert_eq!(index.count(Kind::Service), 2);
        index.replace_scope(Kind::Service, "", None, vec![]);
        assert_eq!(index.count(Kind::Service), 0);
        assert_eq!(index.count(Kind::Rollout), 1);
    }

    #[test]
    fn a_snapshot_does_not_see_later_writes() {
        let shared = SharedIndex::new(Index::from_objects([rollout("vs1")]));
        let before = shared.snapshot();
        let r = ObjectKey::new(Kind::Rollout, "ns", "r");
        shared.update(|index| index.remove(&r));
        assert!(before.object(&r).is_some());
        assert!(shared.snapshot().object(&r).is_none());
        shared.update(|index| index.upsert(rollout("vs2")));
        let vs2 = ObjectKey::new(Kind::VirtualService, "ns", "vs2");
        assert_eq!(shared.snapshot().rollouts_referencing(&vs2), vec![r]);
        assert!(before.rollouts_referencing(&vs2).is_empty());
    }

    #[test]
    fn overlay_replaces_one_object() {
        let mut index = Index::new();
        index.upsert(rollout("vs1"));
        let r = ObjectKey::new(Kind::Rollout, "ns", "r");
        let vs1 = ObjectKey::new(Kind::VirtualService, "ns", "vs1");
        let overlay = Overlay {
            base: &index,
            key: r.clone(),
            object: Some(rollout("vs3")),
        };
        assert!(overlay.rollouts_referencing(&vs1).is_empty());
        assert_eq!(
            overlay.rollouts_referencing(&ObjectKey::new(Kind::VirtualService, "ns", "vs3")),
            vec![r.clone()]
        );
        let deleted = Overlay {
            base: &index,
            key: r.clone(),
            object: None,
        };
        assert!(deleted.object(&r).is_none());
    }
}
