//! The one place where what a source saw becomes index changes, status and readiness.
//!
//! Both sources go through a [`FeedWriter`]: the kube source with one writer per watcher (one
//! kind in one namespace, or cluster-wide), the files source with one writer for the whole
//! folder. So the rules they share — a relist replaces the feed's scope, an object that cannot be
//! read keeps its last good version, readiness waits for every feed's first list, a failure
//! starts the staleness clock and a relist stops it — are written once.

use super::SourceStatus;
use crate::index::{Index, Lookup, SharedIndex};
use crate::metrics::Metrics;
use crate::model::{Kind, Object, ObjectKey};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What one feed owns in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every object of every kind (the files source).
    Everything,
    /// One kind of one cluster (see [`ObjectKey`] for what `cluster` means), in one namespace or
    /// (`None`) cluster-wide (one watcher).
    Kind {
        kind: Kind,
        cluster: Arc<str>,
        namespace: Option<String>,
    },
}

impl Scope {
    fn contains(&self, key: &ObjectKey) -> bool {
        match self {
            Scope::Everything => true,
            Scope::Kind {
                kind,
                cluster,
                namespace,
            } => {
                key.kind == *kind
                    && key.cluster == *cluster
                    && namespace.as_deref().is_none_or(|ns| *key.namespace == *ns)
            }
        }
    }
}

/// Counts the feeds that have not listed yet; the last one to list marks the state loaded
/// (unless the feeds are [`Loading::detached`]).
#[derive(Debug)]
pub struct Loading {
    unlisted: AtomicUsize,
    gates_readiness: bool,
}

impl Loading {
    pub fn new(feeds: usize) -> Arc<Self> {
        Arc::new(Loading {
            unlisted: AtomicUsize::new(feeds),
            gates_readiness: true,
        })
    }

    /// Feeds that readiness does not wait for (a remote cluster's, started at run time): until
    /// they list, they count as broken instead.
    pub fn detached() -> Arc<Self> {
        Arc::new(Loading {
            unlisted: AtomicUsize::new(0),
            gates_readiness: false,
        })
    }

    /// Whether the last of these feeds to list marks the state loaded.
    pub fn gates_readiness(&self) -> bool {
        self.gates_readiness
    }

    /// One of the feeds listed for the first time; the last one marks the state loaded.
    pub fn mark_listed(&self, status: &SourceStatus) {
        if self.gates_readiness && self.listed() {
            status.set_loaded();
            tracing::info!("state loaded");
        }
    }

    /// Returns true for the call that took the count to zero.
    fn listed(&self) -> bool {
        self.unlisted
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            == Ok(1)
    }
}

/// Writes one feed's changes into the shared index and reports its health.
#[derive(Debug)]
pub struct FeedWriter {
    name: String,
    scope: Scope,
    index: SharedIndex,
    status: Arc<SourceStatus>,
    metrics: Arc<Metrics>,
    loading: Arc<Loading>,
    listed_once: bool,
    /// Failed since the last list or event (its first failure is logged as a warning).
    broken: bool,
    /// The cluster the feed reads, as reported (`local`, or a remote cluster's name).
    cluster: String,
}

impl FeedWriter {
    pub fn new(
        name: impl Into<String>,
        scope: Scope,
        index: SharedIndex,
        status: Arc<SourceStatus>,
        metrics: Arc<Metrics>,
        loading: Arc<Loading>,
    ) -> Self {
        let name = name.into();
        let cluster = super::LOCAL_CLUSTER.to_string();
        status.add_feed(&cluster, &name);
        if !loading.gates_readiness {
            // Not listed yet: the staleness clock runs until it does.
            status.set_broken(&name);
        }
        FeedWriter {
            name,
            scope,
            index,
            status,
            metrics,
            loading,
            listed_once: false,
            broken: false,
            cluster,
        }
    }

    /// Reports the feed under `cluster` (`rollout_guard_cluster_ready`) instead of `local`.
    pub fn reporting_as(mut self, cluster: &str) -> Self {
        self.status.remove_cluster_feed(&self.cluster, &self.name);
        self.cluster = cluster.to_string();
        self.status.add_feed(&self.cluster, &self.name);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Failed, and not listed nor changed since.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// A complete list of the scope arrived: it replaces what the index had there (objects deleted
    /// while the feed was away disappear). Objects in `unreadable` were in the list but could not
    /// be read: their last good version, if the index has one, stays.
    pub fn relisted(&mut self, objects: Vec<Object>, unreadable: &[ObjectKey]) {
        let count = objects.len();
        self.index.update(|index| {
            let kept: Vec<Object> = unreadable
                .iter()
                .filter(|key| self.scope.contains(key))
                .filter_map(|key| index.object(key))
                .collect();
            replace_scope(index, &self.scope, objects.into_iter().chain(kept));
        });
        self.healthy();
        self.status.set_listed(&self.cluster, &self.name);
        tracing::info!(feed = %self.name, objects = count, unreadable = unreadable.len(), "listed");
        if !self.listed_once {
            self.listed_once = true;
            self.loading.mark_listed(&self.status);
        }
    }

    /// An object was created or changed.
    pub fn applied(&mut self, object: Object) {
        self.healthy();
        self.index.update(|index| index.upsert(object));
    }

    /// An object was deleted.
    pub fn deleted(&mut self, key: &ObjectKey) {
        self.healthy();
        self.index.update(|index| index.remove(key));
    }

    /// A new version of an object cannot be read. Removing the object would flip verdicts on a
    /// half-written change, so its last good version stays; logged and counted.
    pub fn unreadable(&mut self, key: &ObjectKey, error: &str) {
        self.healthy();
        let kept = self.index.snapshot().object(key).is_some();
        tracing::error!(feed = %self.name, object = %key, error = %error, last_good_version_kept = kept,
            "a watched object cannot be read");
        self.metrics.source_error();
    }

    /// The feed failed (a watch broke, a folder could not be listed): the staleness clock runs
    /// from the first failure until the next relist.
    pub fn failed(&mut self, error: &str) {
        self.status.set_broken(&self.name);
        if std::mem::replace(&mut self.broken, true) {
            tracing::debug!(feed = %self.name, error = %error, "feed still failing");
        } else {
            tracing::warn!(feed = %self.name, error = %error, "feed failed");
        }
    }

    fn healthy(&mut self) {
        self.broken = false;
        self.status.set_healthy(&self.name);
    }
}

/// A feed that stops (its cluster is no longer followed) is no longer reported nor broken.
impl Drop for FeedWriter {
    fn drop(&mut self) {
        self.status.remove_cluster_feed(&self.cluster, &self.name);
        self.status.set_healthy(&self.name);
    }
}

fn replace_scope(index: &mut Index, scope: &Scope, objects: impl Iterator<Item = Object>) {
    match scope {
        Scope::Everything => index.replace_where(|_| true, objects.collect()),
        Scope::Kind {
            kind,
            cluster,
            namespace,
        } => index.replace_scope(*kind, cluster, namespace.as_deref(), objects.collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn service(ns: &str, name: &str) -> Object {
        Object::parse(
            &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}}),
            "default",
        )
        .ok()
        .flatten()
        .expect("a valid Service")
    }

    fn writer(scope: Scope, index: &SharedIndex, loading: &Arc<Loading>) -> FeedWriter {
        FeedWriter::new(
            "test",
            scope,
            index.clone(),
            Arc::new(SourceStatus::new(Duration::from_secs(60))),
            Arc::new(Metrics::new()),
            loading.clone(),
        )
    }

    #[test]
    fn a_relist_keeps_the_last_good_version_of_an_unreadable_object() {
        let index = SharedIndex::default();
        let loading = Loading::new(1);
        let scope = Scope::Kind {
            kind: Kind::Service,
            cluster: crate::model::object::local_cluster(),
            namespace: Some("a".into()),
        };
        let mut feed = writer(scope, &index, &loading);
        feed.relisted(vec![service("a", "one"), service("a", "two")], &[]);
        let two = ObjectKey::new(Kind::Service, "a", "two");
        let three = ObjectKey::new(Kind::Service, "a", "three");
        feed.relisted(vec![], &[two.clone(), three.clone()]);
        let snapshot = index.snapshot();
        assert!(snapshot.object(&two).is_some(), "last good version kept");
        assert!(
            snapshot.object(&three).is_none(),
            "never read, nothing to keep"
        );
        assert!(snapshot
            .object(&ObjectKey::new(Kind::Service, "a", "one"))
            .is_none());
    }

    #[test]
    fn loading_counts_each_feed_once() {
        let loading = Loading::new(2);
        assert!(!loading.listed());
        assert!(loading.listed());
        assert!(!loading.listed(), "never below zero, never twice");
    }
}
