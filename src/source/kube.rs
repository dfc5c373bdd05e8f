//! The kube source: kube-rs watchers on Rollouts, VirtualServices, DestinationRules and Services
//! (cluster-wide or per `--namespace`) keep the index current, event by event, through one
//! [`FeedWriter`] each. A relist replaces that watcher's scope; errors reconnect with jittered
//! backoff and start the staleness clock; a feed that has not relisted within the relist deadline
//! after a failure is torn down and started again on a fresh client (see [`supervise`]).
//!
//! [`KubeLiveRead`] reads objects again from the API server (quorum GETs) so that a cross-object
//! denial never rests on the watch cache alone.

use super::feed::{FeedWriter, Loading, Scope};
use super::SourceStatus;
use crate::admission::confirm::LiveRead;
use crate::index::SharedIndex;
use crate::metrics::Metrics;
use crate::model::{Kind, Object, ObjectKey};
use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use std::fmt::Display;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

/// The watched kinds with the API resource each is served as, once discovered.
pub type Resources = Arc<OnceLock<Vec<(Kind, ApiResource)>>>;

/// The API resource of each kind, as this cluster serves it.
pub async fn resources(client: &Client) -> anyhow::Result<Vec<(Kind, ApiResource)>> {
    let rollout = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout"),
        "rollouts",
    );
    let service =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Service"), "services");
    let istio = kube::discovery::group(client, "networking.istio.io")
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "expected the networking.istio.io API group to be served, found an error: {e}"
            )
        })?;
    let mut out = vec![(Kind::Rollout, rollout), (Kind::Service, service)];
    for (kind, name) in [
        (Kind::VirtualService, "VirtualService"),
        (Kind::DestinationRule, "DestinationRule"),
    ] {
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

/// What the kube source needs besides the index, status and metrics.
#[derive(Debug, Clone)]
pub struct KubeOptions {
    /// `--namespace` (empty: cluster-wide).
    pub namespaces: Vec<String>,
    /// `--relist-deadline`: how long a failed feed may go without relisting before it is restarted.
    pub relist_deadline: Duration,
}

/// Runs one watcher per kind and namespace (or cluster-wide) until the process ends. Marks the
/// status loaded once every watcher has listed. Resource discovery is retried with backoff;
/// `discovered` is filled once it succeeds (the live reads need it).
pub async fn run(
    config: kube::Config,
    client: Client,
    index: SharedIndex,
    status: Arc<SourceStatus>,
    metrics: Arc<Metrics>,
    options: KubeOptions,
    discovered: Resources,
) {
    let mut delays = ReconnectBackoff::default();
    let resources = loop {
        match tokio::time::timeout(options.relist_deadline, resources(&client)).await {
            Ok(Ok(r)) => break r,
            outcome => {
                let error = match outcome {
                    Ok(Err(err)) => err.to_string(),
                    _ => format!("no answer within {:?}", options.relist_deadline),
                };
                let delay = delays.next().unwrap_or(ReconnectBackoff::MAX);
                tracing::error!(error = %error, retry_in = ?delay, "cannot discover the watched resources");
                status.set_broken("discovery");
                tokio::time::sleep(delay).await;
            }
        }
    };
    status.set_healthy("discovery");
    let _ = discovered.set(resources.clone());
    let scopes: Vec<Option<String>> = if options.namespaces.is_empty() {
        vec![None]
    } else {
        options.namespaces.iter().cloned().map(Some).collect()
    };
    let loading = Loading::new(resources.len() * scopes.len());
    let mut tasks = Vec::new();
    for (kind, ar) in &resources {
        for namespace in &scopes {
            let scope = Scope::Kind {
                kind: *kind,
                namespace: namespace.clone(),
            };
            let writer = FeedWriter::new(
                feed_name(*kind, namespace.as_deref()),
                scope,
                index.clone(),
                status.clone(),
                metrics.clone(),
                loading.clone(),
            );
            let feed = KubeFeed::new(*kind, writer);
            let connect = watch_factory(config.clone(), client.clone(), ar.clone(), namespace.clone());
            tasks.push(tokio::spawn(supervise(feed, connect, options.relist_deadline)));
        }
    }
    for task in tasks {
        if let Err(err) = task.await {
            tracing::error!(error = %err, "a watcher task ended unexpectedly");
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
) -> impl FnMut() -> futures::stream::BoxStream<'static, Result<Event<DynamicObject>, watcher::Error>>
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
        let api: Api<DynamicObject> = match &namespace {
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
    writer: FeedWriter,
    /// The list in progress: what it brought so far, and the keys it had that cannot be read.
    listing: Option<(Vec<Object>, Vec<ObjectKey>)>,
}

impl KubeFeed {
    pub fn new(kind: Kind, writer: FeedWriter) -> Self {
        KubeFeed {
            kind,
            writer,
            listing: None,
        }
    }

    pub fn handle<E: Display>(&mut self, event: Result<Event<DynamicObject>, E>) -> Observed {
        match event {
            Ok(Event::Init) => {
                self.listing = Some(Default::default());
                Observed::Listing { objects: false }
            }
            Ok(Event::InitApply(o)) => {
                let (objects, unreadable) = self.listing.get_or_insert_with(Default::default);
                match read_object(self.kind, &o) {
                    Ok(object) => objects.push(object),
                    Err(err) => {
                        let key = key_of(self.kind, &o);
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
                match read_object(self.kind, &o) {
                    Ok(object) => self.writer.applied(object),
                    Err(err) => self.writer.unreadable(&key_of(self.kind, &o), &err),
                }
                Observed::Changed
            }
            Ok(Event::Delete(o)) => {
                self.writer.deleted(&key_of(self.kind, &o));
                Observed::Changed
            }
            Err(err) => {
                self.writer.failed(&err.to_string());
                Observed::Failed
            }
        }
    }
}

fn key_of(kind: Kind, o: &DynamicObject) -> ObjectKey {
    ObjectKey::new(
        kind,
        o.metadata.namespace.as_deref().unwrap_or_default(),
        o.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// An object from the API server as a cached view, or why it cannot be read.
fn read_object(kind: Kind, o: &DynamicObject) -> Result<Object, String> {
    let ns = o.metadata.namespace.as_deref().unwrap_or_default();
    let value = serde_json::to_value(o).map_err(|e| format!("cannot serialise it: {e}"))?;
    Object::parse_kind(kind, &value, ns).map_err(|e| e.to_string())
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
    S: Stream<Item = Result<Event<DynamicObject>, E>>,
    E: Display,
{
    let mut pauses = ReconnectBackoff::default();
    let mut relist_due = Some(Instant::now() + relist_deadline);
    loop {
        let stream = connect();
        futures::pin_mut!(stream);
        let why = loop {
            let next = match relist_due {
                Some(due) => match tokio::time::timeout_at(due, stream.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        break format!("no relist within {relist_deadline:?}; restarting the watcher")
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
        };
        feed.writer.failed(&why);
        feed.writer.metrics().feed_restart(feed.kind);
        tracing::warn!(feed = %feed.writer.name(), reason = %why, "feed restarted");
        drop(stream);
        tokio::time::sleep(pauses.next().unwrap_or(ReconnectBackoff::MIN)).await;
        relist_due = Some(Instant::now() + relist_deadline);
    }
}

/// [`LiveRead`] with the kube client: one quorum GET per key (a GET without `resourceVersion` is
/// served from etcd, never from the API server's watch cache), all at once, each bounded by
/// `timeout`.
#[derive(Clone)]
pub struct KubeLiveRead {
    client: Client,
    resources: Resources,
    timeout: Duration,
}

impl KubeLiveRead {
    /// Bound on each GET; the caller bounds the whole read as well.
    pub const TIMEOUT: Duration = Duration::from_secs(1);

    pub fn new(client: Client, resources: Resources, timeout: Duration) -> Self {
        KubeLiveRead {
            client,
            resources,
            timeout,
        }
    }

    async fn read_one(
        &self,
        resources: &[(Kind, ApiResource)],
        key: &ObjectKey,
    ) -> Result<(ObjectKey, Option<Object>), String> {
        let Some((_, ar)) = resources.iter().find(|(kind, _)| *kind == key.kind) else {
            return Err(format!("{key}: its kind is not served by this cluster"));
        };
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &key.namespace, ar);
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
            Ok(o) => read_object(key.kind, &o)
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
            .field("discovered", &self.resources.get().is_some())
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
            let Some(resources) = self.resources.get() else {
                return Err("the watched API resources are not discovered yet".to_string());
            };
            futures::future::try_join_all(keys.iter().map(|key| self.read_one(resources, key)))
                .await
        })
    }
}
