//! The kube source: kube-rs watchers on Rollouts, VirtualServices, DestinationRules and Services
//! (cluster-wide or per `--namespace`) keep the index current, event by event. A relist replaces
//! that watcher's scope atomically; errors reconnect with backoff and start the staleness clock.

use super::SourceStatus;
use crate::index::SharedIndex;
use crate::model::{Kind, Object, ObjectKey};
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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

/// Runs one watcher per kind and namespace (or cluster-wide) until the process ends. Marks the
/// status loaded once every watcher has listed. Resource discovery is retried with backoff.
pub async fn run(
    client: Client,
    index: SharedIndex,
    status: Arc<SourceStatus>,
    namespaces: Vec<String>,
) {
    let mut delay = Duration::from_millis(500);
    let resources = loop {
        match resources(&client).await {
            Ok(r) => break r,
            Err(err) => {
                tracing::error!(error = %err, retry_in = ?delay, "cannot discover the watched resources");
                status.set_broken("discovery");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    };
    status.set_healthy("discovery");
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    let pending = Arc::new(AtomicUsize::new(resources.len() * scopes.len()));
    let mut tasks = Vec::new();
    for (kind, ar) in &resources {
        for scope in &scopes {
            let api: Api<DynamicObject> = match scope {
                Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
                None => Api::all_with(client.clone(), ar),
            };
            let feed = Feed {
                kind: *kind,
                namespace: scope.clone(),
                index: index.clone(),
                status: status.clone(),
                pending: pending.clone(),
            };
            tasks.push(tokio::spawn(feed.watch(api)));
        }
    }
    for task in tasks {
        if let Err(err) = task.await {
            tracing::error!(error = %err, "a watcher task ended unexpectedly");
        }
    }
}

/// Reconnect delays: 250 ms doubling to 5 s. Shorter than kube-rs' default (30 s at most),
/// because every second of a broken watch is a second of possibly stale decisions.
#[derive(Debug, Clone)]
pub struct ReconnectBackoff {
    next: Duration,
}

impl ReconnectBackoff {
    const FIRST: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(5);
}

impl Default for ReconnectBackoff {
    fn default() -> Self {
        ReconnectBackoff { next: Self::FIRST }
    }
}

impl Iterator for ReconnectBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        Some(delay)
    }
}

impl kube::runtime::utils::Backoff for ReconnectBackoff {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

struct Feed {
    kind: Kind,
    namespace: Option<String>,
    index: SharedIndex,
    status: Arc<SourceStatus>,
    pending: Arc<AtomicUsize>,
}

impl Feed {
    fn name(&self) -> String {
        format!("{}/{}", self.kind, self.namespace.as_deref().unwrap_or("*"))
    }

    async fn watch(self, api: Api<DynamicObject>) {
        let name = self.name();
        let mut listed_once = false;
        let mut buffer: Vec<Object> = Vec::new();
        let stream =
            watcher::watcher(api, watcher::Config::default()).backoff(ReconnectBackoff::default());
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Init) => buffer.clear(),
                Ok(Event::InitApply(o)) => buffer.extend(self.convert(o)),
                Ok(Event::InitDone) => {
                    let objects = std::mem::take(&mut buffer);
                    let count = objects.len();
                    self.index.update(|index| {
                        index.replace_scope(self.kind, self.namespace.as_deref(), objects)
                    });
                    self.status.set_healthy(&name);
                    tracing::info!(feed = %name, objects = count, "listed");
                    if !listed_once {
                        listed_once = true;
                        if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
                            self.status.set_loaded();
                            tracing::info!("cluster state loaded");
                        }
                    }
                }
                Ok(Event::Apply(o)) => {
                    self.status.set_healthy(&name);
                    let key = ObjectKey::new(
                        self.kind,
                        o.metadata.namespace.as_deref().unwrap_or_default(),
                        o.metadata.name.as_deref().unwrap_or_default(),
                    );
                    match self.convert(o) {
                        Some(object) => self.index.update(|index| index.upsert(object)),
                        None => self.index.update(|index| index.remove(&key)),
                    };
                }
                Ok(Event::Delete(o)) => {
                    self.status.set_healthy(&name);
                    let ns = o.metadata.namespace.clone().unwrap_or_default();
                    let obj_name = o.metadata.name.clone().unwrap_or_default();
                    self.index
                        .update(|index| index.remove(&ObjectKey::new(self.kind, &ns, &obj_name)));
                }
                Err(err) => {
                    self.status.set_broken(&name);
                    tracing::warn!(feed = %name, error = %err, "watch failed; reconnecting with backoff");
                }
            }
        }
    }

    /// A watched object as a cached view; one that cannot be read is left out (and logged), so
    /// that the rules never see half an object.
    fn convert(&self, o: DynamicObject) -> Option<Object> {
        let ns = o.metadata.namespace.clone().unwrap_or_default();
        let value = match serde_json::to_value(&o) {
            Ok(v) => v,
            Err(err) => {
                tracing::warn!(kind = %self.kind, error = %err, "cannot serialise a watched object");
                return None;
            }
        };
        match Object::parse_kind(self.kind, &value, &ns) {
            Ok(object) => Some(object),
            Err(err) => {
                tracing::warn!(kind = %self.kind, namespace = %ns, name = ?o.metadata.name, error = %err,
                    "a watched object cannot be read; it is left out of the index");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ReconnectBackoff;
    use kube::runtime::utils::Backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_to_a_cap_and_resets() {
        let mut b = ReconnectBackoff::default();
        let delays: Vec<Duration> = b.by_ref().take(7).collect();
        assert_eq!(delays[0], Duration::from_millis(250));
        assert_eq!(delays[1], Duration::from_millis(500));
        assert_eq!(delays[6], Duration::from_secs(5));
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_millis(250)));
    }
}
