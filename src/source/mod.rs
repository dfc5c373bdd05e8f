//! Sources feed the index: `files` (YAML read from a folder, re-read on change) and `kube`
//! (kube-rs watchers). The server learns from [`SourceStatus`] when the state is loaded (readiness)
//! and whether it is stale (a watch broken for longer than `--stale-after`).

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

/// Starts the configured source as a task that feeds `index` and reports into `status` until it
/// is aborted. An error means the source could not start at all (bad flags, no kube config).
pub async fn start(
    config: &SourceConfig,
    index: crate::index::SharedIndex,
    status: std::sync::Arc<SourceStatus>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    config.check()?;
    match config.kind {
        SourceKind::Files => {
            let dir = config.manifests.clone().unwrap_or_default();
            let source = files::FilesSource::new(dir);
            Ok(tokio::spawn(files::run(
                source,
                config.poll_interval,
                index,
                status,
                metrics,
            )))
        }
        SourceKind::Kube => {
            let client = ::kube::Client::try_default().await.map_err(|e| {
                anyhow::anyhow!("--source kube: expected a kubeconfig or an in-cluster service account, found: {e}")
            })?;
            Ok(tokio::spawn(kube::run(
                client,
                index,
                status,
                config.namespaces.clone(),
            )))
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
