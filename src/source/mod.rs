//! Sources feed the index: `files` (YAML read from a folder, re-read on change) and `kube`
//! (kube-rs watchers), both writing through [`feed::FeedWriter`]. The server learns from
//! [`SourceStatus`] when the state is loaded (readiness) and whether it is stale (a watch broken
//! for longer than `--stale-after`); the kube source also gives it a [`LiveRead`] for confirming
//! cross-object denials.
//!
//! [`LiveRead`]: crate::admission::confirm::LiveRead

pub mod feed;
pub mod files;
pub mod kube;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Shared between a source (writer) and the server (reader).
#[derive(Debug)]
pub struct SourceStatus {
    loaded: AtomicBool,
    /// Since when each broken feed (a watcher, a folder) has been failing.
    broken_since: Mutex<HashMap<String, Instant>>,
    stale_after: Duration,
}

impl SourceStatus {
    pub fn new(stale_after: Duration) -> Self {
        SourceStatus {
            loaded: AtomicBool::new(false),
            broken_since: Mutex::new(HashMap::new()),
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
}

impl SourceConfig {
    /// Problems that can be found before anything is bound or started.
    pub fn check(&self) -> anyhow::Result<()> {
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
            let discovered = kube::Resources::default();
            let live = kube::KubeLiveRead::new(
                client.clone(),
                discovered.clone(),
                kube::KubeLiveRead::TIMEOUT,
            );
            let options = kube::KubeOptions {
                namespaces: config.namespaces.clone(),
                relist_deadline: config.relist_deadline,
            };
            let task = tokio::spawn(kube::run(
                kube_config,
                client.clone(),
                index,
                status,
                metrics,
                options,
                discovered,
            ));
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
        let slow = SourceStatus::new(Duration::from_secs(60));
        slow.set_broken("rollouts");
        assert!(!slow.is_stale() && slow.broken_for().is_some());
    }
}
