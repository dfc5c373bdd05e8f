//! Sources feed the index: `files` (YAML read from a folder, re-read on change) and `kube`
//! (kube-rs watchers), both writing through [`feed::FeedWriter`]. The server learns from
//! [`SourceStatus`] when the state is loaded (readiness) and whether it is stale (a watch broken
//! for longer than `--stale-after`); the kube source also gives it a [`LiveRead`] for confirming
//! cross-object denials.
//!
//! [`LiveRead`]: crate::admission::confirm::LiveRead

pub mod clusters;
pub mod feed;
pub mod files;
pub mod kube;
pub mod watched;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shared between a source (writer) and the server (reader).
#[derive(Debug)]
pub struct SourceStatus {
    loaded: AtomicBool,
    /// Since when each broken feed (a watcher, a folder) has been failing.
    broken_since: Mutex<HashMap<String, Instant>>,
    /// The feeds of each cluster (`local`, or a remote cluster's name) and which have listed.
    clusters: Mutex<BTreeMap<String, ClusterFeeds>>,
    stale_after: Duration,
}

#[derive(Debug, Default)]
struct ClusterFeeds {
    feeds: BTreeSet<String>,
    listed: BTreeSet<String>,
}

/// The name the local cluster is reported under (`rollout_guard_cluster_ready{cluster="local"}`).
pub const LOCAL_CLUSTER: &str = "local";

impl SourceStatus {
    pub fn new(stale_after: Duration) -> Self {
        SourceStatus {
            loaded: AtomicBool::new(false),
            broken_since: Mutex::new(HashMap::new()),
            clusters: Mutex::new(BTreeMap::new()),
            stale_after,
        }
    }

    /// The initial state is in the index.
    pub fn set_loaded(&self) {
        self.loaded.store(true, Ordering::SeqCst);
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::SeqCst)
    }

    /// A feed (one watch, or a folder read) failed; its first failure starts the staleness clock.
    pub fn set_broken(&self, feed: &str) {
        let mut since = self.broken_since.lock().unwrap_or_else(|p| p.into_inner());
        since.entry(feed.to_string()).or_insert_with(Instant::now);
    }

    /// Events flow again on this feed.
    pub fn set_healthy(&self, feed: &str) {
        self.broken_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(feed);
    }

    /// A feed of `cluster` exists (it counts against the cluster's readiness until it lists).
    pub fn add_feed(&self, cluster: &str, feed: &str) {
        let mut clusters = self.clusters.lock().unwrap_or_else(|p| p.into_inner());
        let entry = clusters.entry(cluster.to_string()).or_default();
        entry.feeds.insert(feed.to_string());
    }

    /// A feed is reported under another cluster now.
    pub fn remove_cluster_feed(&self, cluster: &str, feed: &str) {
        let mut clusters = self.clusters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = clusters.get_mut(cluster) {
            entry.feeds.remove(feed);
            entry.listed.remove(feed);
            if entry.feeds.is_empty() {
                clusters.remove(cluster);
            }
        }
    }

    /// A feed of `cluster` completed a list.
    pub fn set_listed(&self, cluster: &str, feed: &str) {
        let mut clusters = self.clusters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = clusters.get_mut(cluster) {
            entry.listed.insert(feed.to_string());
        }
    }

    /// A cluster is no longer followed: its feeds neither count as broken nor are reported.
    pub fn remove_cluster(&self, cluster: &str) {
        let removed = self
            .clusters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(cluster);
        if let Some(removed) = removed {
            let mut since = self.broken_since.lock().unwrap_or_else(|p| p.into_inner());
            for feed in removed.feeds {
                since.remove(&feed);
            }
        }
    }

    /// Each followed cluster and whether it is ready: every feed listed, none broken now.
    pub fn clusters(&self) -> Vec<(String, bool)> {
        let clusters = self.clusters.lock().unwrap_or_else(|p| p.into_inner());
        let since = self.broken_since.lock().unwrap_or_else(|p| p.into_inner());
        clusters
            .iter()
            .map(|(name, c)| {
                let ready = c
                    .feeds
                    .iter()
                    .all(|f| c.listed.contains(f) && !since.contains_key(f));
                (name.clone(), ready)
            })
            .collect()
    }

    /// How long the longest-broken feed has been broken, if any is.
    pub fn broken_for(&self) -> Option<Duration> {
        let since = self.broken_since.lock().unwrap_or_else(|p| p.into_inner());
        since.values().map(Instant::elapsed).max()
    }

    /// Broken for longer than `--stale-after`: cross-object denials become warnings and
    /// mutation is skipped. Readiness is not affected.
    pub fn is_stale(&self) -> bool {
        self.broken_for().is_some_and(|d| d >= self.stale_after)
    }
}

/// Where the cluster state comes from (`--source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceKind {
    /// Watch the API server (kube-rs watchers).
    Kube,
    /// Read YAML manifests from `--manifests DIR` and re-read them when they change.
    Files,
}

/// What the sources need from the command line.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub kind: SourceKind,
    /// `--manifests DIR` (files source).
    pub manifests: Option<std::path::PathBuf>,
    /// `--namespace NS` (kube source: watch only these; empty means all).
    pub namespaces: Vec<String>,
    /// How often the files source looks for changes.
    pub poll_interval: Duration,
    /// `--relist-deadline` (kube source): a feed that failed and has not relisted within this
    /// is restarted with a fresh watcher.
    pub relist_deadline: Duration,
    /// The kube source's multicluster role (`--istio-primary-secrets`,
    /// `--rollouts-cluster-secrets`).
    pub multicluster: clusters::Multicluster,
}

impl SourceConfig {
    /// Problems that can be found before anything is bound or started.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.kind == SourceKind::Files && self.multicluster != clusters::Multicluster::Off {
            anyhow::bail!(
                "--istio-primary-secrets and --rollouts-cluster-secrets need --source kube, found --source files"
            );
        }
        if self.kind == SourceKind::Files {
            let Some(dir) = &self.manifests else {
                anyhow::bail!("--source files needs --manifests DIR");
            };
            if !dir.is_dir() {
                anyhow::bail!(
                    "--manifests {}: expected a folder, found {}",
                    dir.display(),
                    if dir.exists() { "a file" } else { "nothing" }
                );
            }
        }
        Ok(())
    }
}

/// A started source.
pub struct Started {
    /// Feeds `index` until aborted; ends only if the source gives up.
    pub task: tokio::task::JoinHandle<()>,
    /// Reads objects as the API server has them now, for confirming cross-object denials: `Some`
    /// for the kube source, `None` for the files source (there the index is the truth).
    pub live: Option<std::sync::Arc<dyn crate::admission::confirm::LiveRead>>,
    /// The kube source's client (for Events); `None` for the files source.
    pub client: Option<::kube::Client>,
}

/// Starts the configured source as a task that feeds `index` and reports into `status` until it
/// is aborted. An error means the source could not start at all (bad flags, no kube config).
pub async fn start(
    config: &SourceConfig,
    index: crate::index::SharedIndex,
    status: std::sync::Arc<SourceStatus>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
) -> anyhow::Result<Started> {
    config.check()?;
    match config.kind {
        SourceKind::Files => {
            let dir = config.manifests.clone().unwrap_or_default();
            let source = files::FilesSource::new(dir);
            let task = tokio::spawn(files::run(
                source,
                config.poll_interval,
                index,
                status,
                metrics,
            ));
            Ok(Started {
                task,
                live: None,
                client: None,
            })
        }
        SourceKind::Kube => {
            let no_client = |e: &dyn std::fmt::Display| {
                anyhow::anyhow!("--source kube: expected a kubeconfig or an in-cluster service account, found: {e}")
            };
            let kube_config = ::kube::Config::infer().await.map_err(|e| no_client(&e))?;
            let client =
                ::kube::Client::try_from(kube_config.clone()).map_err(|e| no_client(&e))?;
            let live_clusters = std::sync::Arc::new(kube::LiveClusters::default());
            let live = kube::KubeLiveRead::new(live_clusters.clone(), kube::KubeLiveRead::TIMEOUT);
            let shared = kube::Shared {
                index,
                status,
                metrics,
                options: kube::KubeOptions {
                    namespaces: config.namespaces.clone(),
                    relist_deadline: config.relist_deadline,
                    multicluster: config.multicluster.clone(),
                },
                live: live_clusters,
            };
            let local = kube::Connection {
                config: kube_config,
                client: client.clone(),
            };
            let task = tokio::spawn(kube::run(local, shared));
            Ok(Started {
                task,
                live: Some(std::sync::Arc::new(live)),
                client: Some(client),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staleness_follows_the_clock() {
        let s = SourceStatus::new(Duration::from_millis(0));
        assert!(!s.is_stale());
        s.set_broken("rollouts");
        s.set_broken("services");
        assert!(s.is_stale());
        s.set_healthy("rollouts");
        assert!(s.is_stale(), "services is still broken");
        s.set_healthy("services");
        assert!(!s.is_stale());
        let clusters = SourceStatus::new(Duration::from_secs(60));
        clusters.add_feed("east", "east: Rollout/*");
        clusters.add_feed(LOCAL_CLUSTER, "Rollout/*");
        assert_eq!(
            clusters.clusters(),
            [("east".to_string(), false), ("local".to_string(), false)]
        );
        clusters.set_listed("east", "east: Rollout/*");
        assert_eq!(clusters.clusters()[0], ("east".to_string(), true));
        clusters.set_broken("east: Rollout/*");
        assert_eq!(clusters.clusters()[0], ("east".to_string(), false));
        clusters.remove_cluster("east");
        assert!(
            clusters.broken_for().is_none(),
            "a removed cluster is not broken"
        );
        assert_eq!(clusters.clusters(), [("local".to_string(), false)]);
        let slow = SourceStatus::new(Duration::from_secs(60));
        slow.set_broken("rollouts");
        assert!(!slow.is_stale() && slow.broken_for().is_some());
    }
}
