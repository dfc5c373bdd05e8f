//! The kube source: kube-rs watchers on Rollouts, VirtualServices, DestinationRules and Services
//! (cluster-wide or per `--namespace`) keep the index current, event by event, through one
//! [`FeedWriter`] each. A relist replaces that watcher's scope; errors reconnect with jittered
//! backoff and start the staleness clock; a feed that has not relisted within the relist deadline
//! after a failure is torn down and started again on a fresh client (see [`supervise`]).
//!
//! [`KubeLiveRead`] reads objects again from the API server (quorum GETs) so that a cross-object
//! denial never rests on the watch cache alone.

use super::clusters::Multicluster;
use super::feed::{FeedWriter, Loading, Scope};
use super::watched::WatchedObject;
use super::{SourceStatus, LOCAL_CLUSTER};
use crate::admission::confirm::LiveRead;
use crate::index::SharedIndex;
use crate::metrics::Metrics;
use crate::model::object::local_cluster;
use crate::model::{Kind, Object, ObjectKey};
use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use kube::api::{Api, ApiResource, GroupVersionKind};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The API resource of each kind, as this cluster serves it.
pub async fn resources(client: &Client) -> anyhow::Result<Vec<(Kind, ApiResource)>> {
    resources_for(client, &Kind::ALL).await
}

/// The API resource of each of `kinds`, as this cluster serves it. The Istio group is asked only
/// when a VirtualService or DestinationRule is wanted (a remote Rollouts cluster need not serve it).
pub async fn resources_for(
    client: &Client,
    kinds: &[Kind],
) -> anyhow::Result<Vec<(Kind, ApiResource)>> {
    let mut out = Vec::new();
    if kinds.contains(&Kind::Rollout) {
        out.push((
            Kind::Rollout,
            ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout"),
                "rollouts",
            ),
        ));
    }
    if kinds.contains(&Kind::Service) {
        out.push((
            Kind::Service,
            ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("", "v1", "Service"),
                "services",
            ),
        ));
    }
    let istio_kinds: Vec<(Kind, &str)> = [
        (Kind::VirtualService, "VirtualService"),
        (Kind::DestinationRule, "DestinationRule"),
    ]
    .into_iter()
    .filter(|(kind, _)| kinds.contains(kind))
    .collect();
    if istio_kinds.is_empty() {
        return Ok(out);
    }
    let istio = kube::discovery::group(client, "networking.istio.io")
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "expected the networking.istio.io API group to be served, found an error: {e}"
            )
        })?;
    for (kind, name) in istio_kinds {
        let (ar, _) = istio.recommended_kind(name).ok_or_else(|| {
            anyhow::anyhow!(
                "expected networking.istio.io to serve {name}, found versions {:?} without it",
                istio.versions().collect::<Vec<_>>()
            )
        })?;
        out.push((kind, ar));
    }
    Ok(out)
}

/// Whether the cluster serves `argoproj.io/v1alpha1` `rollouts` (its Argo Rollouts CRD). The API
/// groups are asked first: for a group that is not served the API server answers a plain-text
/// 404, which the client does not read as NotFound.
async fn rollouts_served(client: &Client, deadline: Duration) -> Result<bool, String> {
    let ask = async {
        let groups = client.list_api_groups().await.map_err(|e| e.to_string())?;
        let served = groups
            .groups
            .iter()
            .any(|g| g.name == "argoproj.io" && g.versions.iter().any(|v| v.version == "v1alpha1"));
        if !served {
            return Ok(false);
        }
        let list = client
            .list_api_group_resources("argoproj.io/v1alpha1")
            .await
            .map_err(|e| e.to_string())?;
        Ok(list.resources.iter().any(|r| r.name == "rollouts"))
    };
    tokio::time::timeout(deadline, ask)
        .await
        .map_err(|_| format!("no answer within {deadline:?}"))?
}

/// Where live reads go: for each (cluster in the key, kind), the client of the cluster that
/// serves it and its API resource. Filled as each cluster's resources are discovered; a cluster
/// that is no longer followed is taken out.
#[derive(Default)]
pub struct LiveClusters {
    routes: std::sync::Mutex<std::collections::HashMap<LiveRoute, (Client, ApiResource)>>,
}

/// The cluster in a key, and its kind.
type LiveRoute = (Arc<str>, Kind);

impl LiveClusters {
    pub fn register(
        &self,
        key_cluster: &Arc<str>,
        client: &Client,
        resources: &[(Kind, ApiResource)],
    ) {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        for (kind, ar) in resources {
            routes.insert((key_cluster.clone(), *kind), (client.clone(), ar.clone()));
        }
    }

    pub fn unregister(&self, key_cluster: &str, kinds: &[Kind]) {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        routes.retain(|(cluster, kind), _| !(**cluster == *key_cluster && kinds.contains(kind)));
    }

    fn route(&self, key: &ObjectKey) -> Option<(Client, ApiResource)> {
        let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        routes.get(&(key.cluster.clone(), key.kind)).cloned()
    }
}

impl std::fmt::Debug for LiveClusters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys: Vec<String> = routes
            .keys()
            .map(|(cluster, kind)| format!("{cluster}/{kind}"))
            .collect();
        keys.sort();
        f.debug_struct("LiveClusters")
            .field("routes", &keys)
            .finish()
    }
}

/// What the kube source needs besides the index, status and metrics.
#[derive(Debug, Clone)]
pub struct KubeOptions {
    /// `--namespace` (empty: cluster-wide), in every cluster read.
    pub namespaces: Vec<String>,
    /// `--relist-deadline`: how long a failed feed may go without relisting before it is restarted.
    pub relist_deadline: Duration,
    /// Which other clusters are read, found through which Secrets.
    pub multicluster: Multicluster,
}

/// An API server, and how to reach it again (a restarted feed builds a fresh client from
/// `config`).
#[derive(Clone)]
pub struct Connection {
    pub config: kube::Config,
    pub client: Client,
}

/// What every feed of the kube source shares.
#[derive(Clone)]
pub struct Shared {
    pub index: SharedIndex,
    pub status: Arc<SourceStatus>,
    pub metrics: Arc<Metrics>,
    pub options: KubeOptions,
    pub live: Arc<LiveClusters>,
}

/// The feeds one connection carries: which kinds, the cluster their keys carry (see
/// [`ObjectKey`]), the name they are reported under (`local` or the remote cluster's), and what
/// their feed names start with (so that two sets of feeds on one cluster never share a name).
#[derive(Debug, Clone)]
pub struct Placement {
    pub kinds: Vec<Kind>,
    pub key_cluster: Arc<str>,
    pub label: String,
    pub prefix: String,
    /// Rollouts are read only if the cluster serves them (an Istio primary need not run Argo
    /// Rollouts); without this a missing Rollout CRD is a broken feed.
    pub rollouts_optional: bool,
}

impl Placement {
    pub fn local(kinds: &[Kind]) -> Self {
        Placement {
            kinds: kinds.to_vec(),
            key_cluster: local_cluster(),
            label: LOCAL_CLUSTER.to_string(),
            prefix: String::new(),
            rollouts_optional: false,
        }
    }

    /// Feeds of another cluster, reported under `label`, their names prefixed with it.
    pub fn remote(kinds: &[Kind], key_cluster: Arc<str>, label: &str) -> Self {
        Placement {
            kinds: kinds.to_vec(),
            key_cluster,
            label: label.to_string(),
            prefix: format!("{label}: "),
            rollouts_optional: false,
        }
    }

    /// A feed's name: `Rollout/*` here, `east: Rollout/*` for another cluster.
    pub fn feed_name(&self, what: &str) -> String {
        format!("{}{what}", self.prefix)
    }
}

/// Runs the kube source until the process ends: the local cluster's feeds, and in a multicluster
/// role the follower of the Secrets that name the other clusters (see [`super::clusters`]).
/// Marks the status loaded once every local feed has listed (and the Secrets, when followed).
pub async fn run(local: Connection, shared: Shared) {
    let scopes = shared.options.namespaces.len().max(1);
    match shared.options.multicluster.clone() {
        Multicluster::Off => {
            let loading = Loading::new(Kind::ALL.len() * scopes);
            run_feeds(local, Placement::local(&Kind::ALL), loading, shared).await;
        }
        Multicluster::IstioPrimary { secrets } => {
            let kinds = [Kind::Rollout, Kind::Service];
            let loading = Loading::new(kinds.len() * scopes + 1);
            let feeds = run_feeds(
                local.clone(),
                Placement::local(&kinds),
                loading.clone(),
                shared.clone(),
            );
            let follower = super::clusters::follow_istio_primary(local, secrets, loading, shared);
            futures::future::join(feeds, follower).await;
        }
        Multicluster::RolloutsClusters { secrets, label } => {
            let loading = Loading::new(Kind::ALL.len() * scopes + 1);
            let feeds = run_feeds(
                local.clone(),
                Placement {
                    rollouts_optional: true,
                    ..Placement::local(&Kind::ALL)
                },
                loading.clone(),
                shared.clone(),
            );
            let follower =
                super::clusters::follow_rollouts_clusters(local, secrets, label, loading, shared);
            futures::future::join(feeds, follower).await;
        }
    }
}

/// Runs one watcher per kind of `placement` and namespace (or cluster-wide) on `conn` until
/// aborted (aborting it stops every watcher: they live in its `JoinSet`). Resource discovery is
/// retried with backoff; once it succeeds, live reads of these kinds go to `conn`.
pub async fn run_feeds(
    conn: Connection,
    placement: Placement,
    loading: Arc<Loading>,
    shared: Shared,
) {
    let status = &shared.status;
    let deadline = shared.options.relist_deadline;
    let discovery = placement.feed_name("discovery");
    status.add_feed(&placement.label, &discovery);
    if !loading.gates_readiness() {
        status.set_broken(&discovery);
    }
    let mut kinds = placement.kinds.clone();
    if placement.rollouts_optional && kinds.contains(&Kind::Rollout) {
        match rollouts_served(&conn.client, deadline).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(cluster = %placement.label,
                    "argoproj.io/v1alpha1 Rollouts are not served here: no Rollouts are read in this cluster");
                kinds.retain(|k| *k != Kind::Rollout);
                for _ in 0..shared.options.namespaces.len().max(1) {
                    loading.mark_listed(status);
                }
            }
            Err(error) => {
                // Unknown: watch them; a broken feed says more than a guess.
                tracing::warn!(cluster = %placement.label, error = %error,
                    "cannot tell whether Rollouts are served; watching them");
            }
        }
    }
    let mut delays = ReconnectBackoff::default();
    let resources = loop {
        match tokio::time::timeout(deadline, resources_for(&conn.client, &kinds)).await {
            Ok(Ok(r)) => break r,
            outcome => {
                let error = match outcome {
                    Ok(Err(err)) => err.to_string(),
                    _ => format!("no answer within {deadline:?}"),
                };
                let delay = delays.next().unwrap_or(ReconnectBackoff::MAX);
                tracing::error!(cluster = %placement.label, error = %error, retry_in = ?delay,
                    "cannot discover the watched resources");
                status.set_broken(&discovery);
                tokio::time::sleep(delay).await;
            }
        }
    };
    status.set_healthy(&discovery);
    status.set_listed(&placement.label, &discovery);
    shared
        .live
        .register(&placement.key_cluster, &conn.client, &resources);
    let scopes: Vec<Option<String>> = if shared.options.namespaces.is_empty() {
        vec![None]
    } else {
        shared
            .options
            .namespaces
            .iter()
            .cloned()
            .map(Some)
            .collect()
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (kind, ar) in &resources {
        for namespace in &scopes {
            let scope = Scope::Kind {
                kind: *kind,
                cluster: placement.key_cluster.clone(),
                namespace: namespace.clone(),
            };
            let writer = FeedWriter::new(
                placement.feed_name(&feed_name(*kind, namespace.as_deref())),
                scope,
                shared.index.clone(),
                status.clone(),
                shared.metrics.clone(),
                loading.clone(),
            )
            .reporting_as(&placement.label);
            let feed = KubeFeed::new(*kind, writer).in_cluster(&placement.key_cluster);
            let connect = watch_factory(
                conn.config.clone(),
                conn.client.clone(),
                ar.clone(),
                namespace.clone(),
            );
            tasks.spawn(supervise(feed, connect, deadline));
        }
    }
    while let Some(done) = tasks.join_next().await {
        if let Err(err) = done {
            tracing::error!(cluster = %placement.label, error = %err, "a watcher task ended unexpectedly");
        }
    }
}

fn feed_name(kind: Kind, namespace: Option<&str>) -> String {
    format!("{kind}/{}", namespace.unwrap_or("*"))
}

/// Makes a watcher stream on each call: the first on the shared client, every later one (a
/// restart) on a client of its own, so that a restart never reuses a pooled connection to a
/// server that stopped answering.
fn watch_factory(
    config: kube::Config,
    client: Client,
    ar: ApiResource,
    namespace: Option<String>,
) -> impl FnMut() -> futures::stream::BoxStream<'static, Result<Event<WatchedObject>, watcher::Error>>
{
    let mut first = true;
    move || {
        let client = if std::mem::take(&mut first) {
            client.clone()
        } else {
            Client::try_from(config.clone()).unwrap_or_else(|err| {
                tracing::warn!(error = %err, "cannot build a fresh kube client; the shared one is reused");
                client.clone()
            })
        };
        let api: Api<WatchedObject> = match &namespace {
            Some(ns) => Api::namespaced_with(client, ns, &ar),
            None => Api::all_with(client, &ar),
        };
        watcher::watcher(api, watcher::Config::default())
            .backoff(ReconnectBackoff::default())
            .boxed()
    }
}

/// Reconnect delays with "equal jitter": the ceiling doubles from 500 ms to 5 s and each delay
/// is drawn from the upper half of it, so every delay lies in 250 ms ..= 5 s and replicas that
/// lost the same API server do not come back in lockstep. Shorter than kube-rs' default (30 s
/// at most), because every second of a broken watch is a second of possibly stale decisions.
///
/// kube-runtime resets a backoff on every successful item, and a watcher yields `Init` (a
/// success) before each list attempt, so a reset would keep a failing list at the shortest delay
/// forever. The reset is by time instead: delays start over once none was needed for
/// [`ReconnectBackoff::QUIET`].
#[derive(Debug, Clone)]
pub struct ReconnectBackoff {
    ceiling: Duration,
    last_delay_at: Option<Instant>,
    rng: fastrand::Rng,
}

impl ReconnectBackoff {
    pub const MIN: Duration = Duration::from_millis(250);
    pub const MAX: Duration = Duration::from_secs(5);
    const FIRST_CEILING: Duration = Duration::from_millis(500);
    pub const QUIET: Duration = Duration::from_secs(10);

    /// A backoff with a fixed random seed (tests).
    pub fn with_seed(seed: u64) -> Self {
        ReconnectBackoff {
            ceiling: Self::FIRST_CEILING,
            last_delay_at: None,
            rng: fastrand::Rng::with_seed(seed),
        }
    }
}

impl Default for ReconnectBackoff {
    fn default() -> Self {
        Self::with_seed(fastrand::u64(..))
    }
}

impl Iterator for ReconnectBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = Instant::now();
        if self
            .last_delay_at
            .is_some_and(|at| now.duration_since(at) >= Self::QUIET)
        {
            self.ceiling = Self::FIRST_CEILING;
        }
        self.last_delay_at = Some(now);
        let ceiling = self.ceiling;
        self.ceiling = (self.ceiling * 2).min(Self::MAX);
        let half = u64::try_from((ceiling / 2).as_millis()).unwrap_or(u64::MAX);
        Some(Duration::from_millis(half + self.rng.u64(0..=half)))
    }
}

impl kube::runtime::utils::Backoff for ReconnectBackoff {
    /// Ignored: see the type's documentation.
    fn reset(&mut self) {}
}

/// What one watcher event meant for the liveness guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// A list began (`Init`) or brought an object (`InitApply`).
    Listing { objects: bool },
    /// A list completed: the scope is current.
    Relisted,
    /// An object changed or was deleted.
    Changed,
    /// The watch or the list failed.
    Failed,
}

/// Turns one watcher's events into index changes (through its [`FeedWriter`]).
#[derive(Debug)]
pub struct KubeFeed {
    kind: Kind,
    /// The cluster the objects' keys carry (see [`ObjectKey`]).
    cluster: Arc<str>,
    writer: FeedWriter,
    /// The list in progress: what it brought so far, and the keys it had that cannot be read.
    listing: Option<(Vec<Object>, Vec<ObjectKey>)>,
}

impl KubeFeed {
    pub fn new(kind: Kind, writer: FeedWriter) -> Self {
        KubeFeed {
            kind,
            cluster: local_cluster(),
            writer,
            listing: None,
        }
    }

    /// Objects of this feed are keyed in `cluster` (a remote Rollouts cluster).
    pub fn in_cluster(mut self, cluster: &Arc<str>) -> Self {
        self.cluster = cluster.clone();
        self
    }

    pub fn handle<E: Display>(&mut self, event: Result<Event<WatchedObject>, E>) -> Observed {
        match event {
            Ok(Event::Init) => {
                self.listing = Some(Default::default());
                Observed::Listing { objects: false }
            }
            Ok(Event::InitApply(o)) => {
                let (objects, unreadable) = self.listing.get_or_insert_with(Default::default);
                match o.view(self.kind, &self.cluster) {
                    Ok(object) => objects.push(object),
                    Err(err) => {
                        let key = o.key(self.kind, &self.cluster);
                        tracing::error!(feed = %self.writer.name(), object = %key, error = %err,
                            "a listed object cannot be read");
                        self.writer.metrics().source_error();
                        unreadable.push(key);
                    }
                }
                Observed::Listing { objects: true }
            }
            Ok(Event::InitDone) => {
                let (objects, unreadable) = self.listing.take().unwrap_or_default();
                self.writer.relisted(objects, &unreadable);
                Observed::Relisted
            }
            Ok(Event::Apply(o)) => {
                match o.view(self.kind, &self.cluster) {
                    Ok(object) => self.writer.applied(object),
                    Err(err) => self
                        .writer
                        .unreadable(&o.key(self.kind, &self.cluster), &err),
                }
                Observed::Changed
            }
            Ok(Event::Delete(o)) => {
                self.writer.deleted(&o.key(self.kind, &self.cluster));
                Observed::Changed
            }
            Err(err) => {
                self.writer.failed(&err.to_string());
                Observed::Failed
            }
        }
    }
}

/// Drives a feed from the streams `connect` makes, and keeps it live: from the feed's start, and
/// again from its first failure, it must complete a list within `relist_deadline`; when it does
/// not (a list that hangs, a watch that resumed silently, errors that do not stop), the stream is
/// dropped, the feed counts as failed, and a new stream is made after a short jittered pause.
/// Objects changing during a list (`InitApply`) push the deadline back, so a long list of a large
/// cluster is not cut short. A stream that ends is restarted the same way. Runs until aborted.
pub async fn supervise<F, S, E>(mut feed: KubeFeed, mut connect: F, relist_deadline: Duration)
where
    F: FnMut() -> S,
    S: Stream<Item = Result<Event<WatchedObject>, E>>,
    E: Display,
{
    let mut pauses = ReconnectBackoff::default();
    let mut relist_due = Some(Instant::now() + relist_deadline);
    loop {
        // The stream (and its connection) is dropped at the end of this block, before the pause.
        let why = {
            let stream = connect();
            futures::pin_mut!(stream);
            loop {
                let next = match relist_due {
                    Some(due) => match tokio::time::timeout_at(due, stream.next()).await {
                        Ok(next) => next,
                        Err(_) => {
                            break format!(
                                "no relist within {relist_deadline:?}; restarting the watcher"
                            )
                        }
                    },
                    None => stream.next().await,
                };
                let Some(event) = next else {
                    break "the watch stream ended; restarting the watcher".to_string();
                };
                match feed.handle(event) {
                    Observed::Failed => {
                        relist_due.get_or_insert(Instant::now() + relist_deadline);
                    }
                    Observed::Listing { objects: true } => {
                        if relist_due.is_some() {
                            relist_due = Some(Instant::now() + relist_deadline);
                        }
                    }
                    Observed::Relisted => relist_due = None,
                    Observed::Listing { objects: false } | Observed::Changed => {}
                }
            }
        };
        feed.writer.failed(&why);
        feed.writer.metrics().feed_restart(feed.kind);
        tracing::warn!(feed = %feed.writer.name(), reason = %why, "feed restarted");
        tokio::time::sleep(pauses.next().unwrap_or(ReconnectBackoff::MIN)).await;
        relist_due = Some(Instant::now() + relist_deadline);
    }
}

/// [`LiveRead`] with the kube clients: one quorum GET per key (a GET without `resourceVersion`
/// is served from etcd, never from the API server's watch cache), each to the cluster that
/// serves its kind for its key ([`LiveClusters`]), all at once, each bounded by `timeout`.
#[derive(Clone)]
pub struct KubeLiveRead {
    clusters: Arc<LiveClusters>,
    timeout: Duration,
}

impl KubeLiveRead {
    /// Bound on each GET; the caller bounds the whole read as well.
    pub const TIMEOUT: Duration = Duration::from_secs(1);

    pub fn new(clusters: Arc<LiveClusters>, timeout: Duration) -> Self {
        KubeLiveRead { clusters, timeout }
    }

    async fn read_one(&self, key: &ObjectKey) -> Result<(ObjectKey, Option<Object>), String> {
        let Some((client, ar)) = self.clusters.route(key) else {
            return Err(format!(
                "{key}: its kind is not discovered (yet) in the cluster that serves it"
            ));
        };
        let api: Api<WatchedObject> = Api::namespaced_with(client, &key.namespace, &ar);
        let got = match tokio::time::timeout(self.timeout, api.get(&key.name)).await {
            Ok(got) => got,
            Err(_) => {
                return Err(format!(
                    "{key}: the API server did not answer within {:?}",
                    self.timeout
                ))
            }
        };
        match got {
            Ok(o) => o
                .view(key.kind, &key.cluster)
                .map(|object| (key.clone(), Some(object)))
                .map_err(|e| format!("{key}: the API server's version cannot be read: {e}")),
            Err(kube::Error::Api(status)) if status.is_not_found() => Ok((key.clone(), None)),
            Err(err) => Err(format!("{key}: cannot read it from the API server: {err}")),
        }
    }
}

impl std::fmt::Debug for KubeLiveRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeLiveRead")
            .field("clusters", &self.clusters)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl LiveRead for KubeLiveRead {
    fn read<'a>(
        &'a self,
        keys: &'a [ObjectKey],
    ) -> BoxFuture<'a, Result<Vec<(ObjectKey, Option<Object>)>, String>> {
        Box::pin(async move {
            futures::future::try_join_all(keys.iter().map(|key| self.read_one(key))).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Lookup;
    use futures::stream;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    type Item = Result<Event<WatchedObject>, String>;

    fn dynamic(doc: serde_json::Value) -> WatchedObject {
        WatchedObject::from_json(&doc.to_string()).expect("an object with a name")
    }

    fn service(name: &str, app: &str) -> WatchedObject {
        dynamic(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "shop"}, "spec": {"selector": {"app": app}}}))
    }

    fn broken_service(name: &str) -> WatchedObject {
        dynamic(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "shop"}, "spec": {"selector": 3}}))
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new(Kind::Service, "shop", name)
    }

    struct Harness {
        index: SharedIndex,
        status: Arc<SourceStatus>,
        metrics: Arc<Metrics>,
        loading: Arc<Loading>,
    }

    impl Harness {
        fn new(feeds: usize) -> Self {
            Harness {
                index: SharedIndex::default(),
                // Zero: "stale" means "some feed is broken now".
                status: Arc::new(SourceStatus::new(Duration::ZERO)),
                metrics: Arc::new(Metrics::new()),
                loading: Loading::new(feeds),
            }
        }

        fn feed(&self, kind: Kind) -> KubeFeed {
            let writer = FeedWriter::new(
                feed_name(kind, None),
                Scope::Kind {
                    kind,
                    cluster: crate::model::object::local_cluster(),
                    namespace: None,
                },
                self.index.clone(),
                self.status.clone(),
                self.metrics.clone(),
                self.loading.clone(),
            );
            KubeFeed::new(kind, writer)
        }

        fn has(&self, name: &str) -> bool {
            self.index.snapshot().object(&key(name)).is_some()
        }

        fn selector_of(&self, name: &str) -> Option<String> {
            match self.index.snapshot().object(&key(name)) {
                Some(Object::Service(s)) => Some(format!("{:?}", s.selector)),
                _ => None,
            }
        }

        fn source_errors(&self) -> String {
            let text = self.metrics.encode(&self.index.snapshot(), &self.status);
            text.lines()
                .find(|l| l.starts_with("rollout_guard_source_errors_total"))
                .unwrap_or_default()
                .to_string()
        }
    }

    fn relist(objects: Vec<WatchedObject>) -> Vec<Item> {
        let mut events = vec![Ok(Event::Init)];
        events.extend(objects.into_iter().map(|o| Ok(Event::InitApply(o))));
        events.push(Ok(Event::InitDone));
        events
    }

    fn feed_all(feed: &mut KubeFeed, events: Vec<Item>) {
        for event in events {
            feed.handle(event);
        }
    }

    #[test]
    fn a_relist_replaces_the_scope_so_objects_deleted_while_away_disappear() {
        let h = Harness::new(1);
        let mut feed = h.feed(Kind::Service);
        feed_all(
            &mut feed,
            relist(vec![service("a", "a"), service("b", "b")]),
        );
        assert!(h.has("a") && h.has("b"));
        feed.handle(Err::<Event<WatchedObject>, _>(
            "connection refused".to_string(),
        ));
        assert!(h.status.is_stale(), "a failure starts the staleness clock");
        feed_all(
            &mut feed,
            relist(vec![service("b", "b2"), service("c", "c")]),
        );
        assert!(!h.has("a") && h.has("b") && h.has("c"));
        assert!(h.selector_of("b").is_some_and(|s| s.contains("b2")));
        assert!(!h.status.is_stale(), "a relist clears it");
    }

    #[test]
    fn apply_and_delete_change_one_object() {
        let h = Harness::new(1);
        let mut feed = h.feed(Kind::Service);
        feed_all(&mut feed, relist(vec![service("a", "a")]));
        assert_eq!(
            feed.handle(Ok::<_, String>(Event::Apply(service("b", "b")))),
            Observed::Changed
        );
        feed.handle(Ok::<_, String>(Event::Delete(service("a", "a"))));
        assert!(!h.has("a") && h.has("b"));
    }

    #[test]
    fn an_unreadable_update_keeps_the_last_good_version_and_is_counted() {
        let h = Harness::new(1);
        let mut feed = h.feed(Kind::Service);
        feed_all(&mut feed, relist(vec![service("a", "good")]));
        feed.handle(Ok::<_, String>(Event::Apply(broken_service("a"))));
        assert!(h.selector_of("a").is_some_and(|s| s.contains("good")));
        assert_eq!(h.source_errors(), "rollout_guard_source_errors_total 1");
        // A relist that still has the broken version keeps the good one too; one never read
        // successfully stays out.
        feed_all(
            &mut feed,
            relist(vec![broken_service("a"), broken_service("new")]),
        );
        assert!(h.selector_of("a").is_some_and(|s| s.contains("good")));
        assert!(!h.has("new"));
        assert_eq!(h.source_errors(), "rollout_guard_source_errors_total 3");
        feed.handle(Ok::<_, String>(Event::Apply(service("a", "fixed"))));
        assert!(h.selector_of("a").is_some_and(|s| s.contains("fixed")));
    }

    #[test]
    fn ready_only_after_every_feeds_first_list() {
        let h = Harness::new(2);
        let mut services = h.feed(Kind::Service);
        let mut rollouts = h.feed(Kind::Rollout);
        feed_all(&mut services, relist(vec![service("a", "a")]));
        assert!(!h.status.is_loaded());
        rollouts.handle(Ok::<_, String>(Event::Init));
        rollouts.handle(Err::<Event<WatchedObject>, _>("403 forbidden".to_string()));
        assert!(!h.status.is_loaded());
        feed_all(&mut services, relist(vec![]));
        assert!(
            !h.status.is_loaded(),
            "a second list of one feed does not count twice"
        );
        feed_all(&mut rollouts, relist(vec![]));
        assert!(h.status.is_loaded());
    }

    #[test]
    fn backoff_stays_within_its_bounds_with_jitter_and_starts_over_after_quiet() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let mut a = ReconnectBackoff::with_seed(1);
            let mut b = ReconnectBackoff::with_seed(2);
            let delays: Vec<Duration> = a.by_ref().take(20).collect();
            let others: Vec<Duration> = b.by_ref().take(20).collect();
            for d in delays.iter().chain(&others) {
                assert!(
                    (ReconnectBackoff::MIN..=ReconnectBackoff::MAX).contains(d),
                    "{d:?}"
                );
            }
            assert!(delays[0] <= Duration::from_millis(500));
            assert!(delays[10..]
                .iter()
                .all(|d| *d >= Duration::from_millis(2500)));
            assert_ne!(delays, others, "two replicas do not reconnect in lockstep");
            kube::runtime::utils::Backoff::reset(&mut a);
            assert!(
                a.next().is_some_and(|d| d >= Duration::from_millis(2500)),
                "a reset by a success does not shorten a failing list's delays"
            );
            tokio::time::advance(ReconnectBackoff::QUIET).await;
            assert!(a.next().is_some_and(|d| d <= Duration::from_millis(500)));
        });
    }

    /// The stuck feed of issue 10: the first watcher fails and then never yields again (a list
    /// that hangs, or a watch that resumed without a relist); only a new watcher lists again.
    fn stuck_then_relisting(
        connects: Arc<AtomicUsize>,
    ) -> impl FnMut() -> stream::BoxStream<'static, Item> {
        move || {
            let events = if connects.fetch_add(1, Ordering::SeqCst) == 0 {
                let mut events = relist(vec![service("old", "old")]);
                events.push(Err("403 forbidden: RBAC not warm".to_string()));
                events
            } else {
                relist(vec![service("new", "new")])
            };
            stream::iter(events).chain(stream::pending()).boxed()
        }
    }

    /// Polls (in paused time) until `done` or `limit` passes; returns the time it took.
    async fn within(limit: Duration, done: impl Fn() -> bool) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() <= limit {
            if done() {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    #[tokio::test(start_paused = true)]
    async fn a_feed_stuck_after_a_failure_is_restarted_and_relists() {
        let h = Harness::new(1);
        let connects = Arc::new(AtomicUsize::new(0));
        let deadline = Duration::from_secs(10);
        let task = tokio::spawn(supervise(
            h.feed(Kind::Service),
            stuck_then_relisting(connects.clone()),
            deadline,
        ));
        assert!(within(Duration::from_secs(1), || h.has("old")
            && h.status.is_stale())
        .await
        .is_some());
        assert!(
            within(deadline - Duration::from_secs(2), || connects
                .load(Ordering::SeqCst)
                > 1)
            .await
            .is_none(),
            "not restarted before the deadline"
        );
        let took = within(Duration::from_secs(10), || {
            h.has("new") && !h.status.is_stale()
        })
        .await;
        assert!(took.is_some(), "the feed never recovered");
        assert!(!h.has("old"), "the fresh relist replaced the scope");
        assert_eq!(connects.load(Ordering::SeqCst), 2);
        let text = h.metrics.encode(&h.index.snapshot(), &h.status);
        assert!(
            text.contains(r#"rollout_guard_feed_restarts_total{kind="Service"} 1"#),
            "{text}"
        );
        task.abort();
    }

    /// The same stream without the guard (the watch loop before issue 10): stuck for good.
    #[tokio::test(start_paused = true)]
    async fn without_the_guard_the_stuck_feed_never_recovers() {
        let h = Harness::new(1);
        let connects = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(supervise(
            h.feed(Kind::Service),
            stuck_then_relisting(connects.clone()),
            Duration::from_secs(24 * 3600),
        ));
        assert!(within(Duration::from_secs(120), || h.has("new"))
            .await
            .is_none());
        assert!(h.has("old") && h.status.is_stale());
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_list_that_hangs_is_restarted_too() {
        let h = Harness::new(1);
        let connects = Arc::new(AtomicUsize::new(0));
        let counter = connects.clone();
        let connect = move || {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                stream::iter(vec![Ok(Event::Init)])
                    .chain(stream::pending())
                    .boxed()
            } else {
                stream::iter(relist(vec![service("a", "a")]))
                    .chain(stream::pending())
                    .boxed()
            }
        };
        let task = tokio::spawn(supervise(
            h.feed(Kind::Service),
            connect,
            Duration::from_secs(10),
        ));
        assert!(within(Duration::from_secs(20), || h.status.is_loaded()
            && h.has("a"))
        .await
        .is_some());
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_list_that_makes_progress_is_not_cut_short() {
        let h = Harness::new(1);
        let connects = Arc::new(AtomicUsize::new(0));
        let counter = connects.clone();
        let connect = move || {
            counter.fetch_add(1, Ordering::SeqCst);
            // An object every 6 s: the whole list takes longer than the deadline.
            let mut events = relist((0..4).map(|i| service(&format!("s{i}"), "x")).collect());
            let done = events.pop();
            let init = events.remove(0);
            stream::iter([init])
                .chain(stream::iter(events).then(|e| async {
                    tokio::time::sleep(Duration::from_secs(6)).await;
                    e
                }))
                .chain(stream::iter(done))
                .chain(stream::pending())
                .boxed()
        };
        let task = tokio::spawn(supervise(
            h.feed(Kind::Service),
            connect,
            Duration::from_secs(10),
        ));
        assert!(within(Duration::from_secs(60), || h.status.is_loaded())
            .await
            .is_some());
        assert_eq!(connects.load(Ordering::SeqCst), 1);
        task.abort();
    }

    /// A kube client whose "API server" answers every request with `status` and `body`, or never.
    fn client_answering(answer: Option<(u16, serde_json::Value)>) -> Client {
        let service = tower::service_fn(move |_req: http::Request<kube::client::Body>| {
            let answer = answer.clone();
            async move {
                let Some((status, body)) = answer else {
                    futures::future::pending::<()>().await;
                    unreachable!("pending never completes");
                };
                http::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(body.to_string().into_bytes()))
            }
        });
        Client::new(service, "default")
    }

    fn live(answer: Option<(u16, serde_json::Value)>) -> KubeLiveRead {
        let clusters = Arc::new(LiveClusters::default());
        let service = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("", "v1", "Service"),
            "services",
        );
        clusters.register(
            &local_cluster(),
            &client_answering(answer),
            &[(Kind::Service, service)],
        );
        KubeLiveRead::new(clusters, Duration::from_secs(1))
    }

    fn status_body(code: u16, reason: &str) -> serde_json::Value {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "x", "reason": reason, "code": code})
    }

    #[tokio::test]
    async fn a_live_read_returns_the_object_as_the_api_server_has_it() {
        let body = serde_json::to_value(service("a", "live")).expect("json");
        let read = live(Some((200, body))).read(&[key("a")]).await;
        let objects = read.expect("read");
        assert!(
            matches!(&objects[..], [(k, Some(Object::Service(s)))] if *k == key("a") && format!("{:?}", s.selector).contains("live"))
        );
    }

    #[tokio::test]
    async fn a_live_read_maps_not_found_to_none_and_other_errors_to_a_message() {
        let gone = live(Some((404, status_body(404, "NotFound"))))
            .read(&[key("a")])
            .await;
        assert!(matches!(gone.as_deref(), Ok([(_, None)])), "{gone:?}");
        let forbidden = live(Some((403, status_body(403, "Forbidden"))))
            .read(&[key("a")])
            .await;
        let message = forbidden.expect_err("403 is an error");
        assert!(
            message.contains("Service shop/a") && message.contains("cannot read"),
            "{message}"
        );
        let unreadable = live(Some((
            200,
            serde_json::to_value(broken_service("a")).expect("json"),
        )))
        .read(&[key("a")])
        .await;
        assert!(unreadable.is_err_and(|m| m.contains("cannot be read")));
        let unknown = live(Some((404, status_body(404, "NotFound"))))
            .read(&[ObjectKey::new(Kind::Rollout, "shop", "r")])
            .await;
        assert!(unknown.is_err_and(|m| m.contains("not discovered")));
        let undiscovered = KubeLiveRead::new(Arc::default(), Duration::from_secs(1));
        assert!(undiscovered
            .read(&[key("a")])
            .await
            .is_err_and(|m| m.contains("not discovered")));
        let remote = ObjectKey::in_cluster(Kind::Service, &Arc::from("east"), "shop", "a");
        assert!(
            live(Some((404, status_body(404, "NotFound"))))
                .read(&[remote])
                .await
                .is_err_and(|m| m.contains("(cluster east)")),
            "a key of another cluster is never read from this one"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_live_read_that_gets_no_answer_times_out_with_a_message() {
        let read = live(None).read(&[key("a"), key("b")]).await;
        assert!(read.is_err_and(|m| m.contains("did not answer within 1s")));
    }
}
