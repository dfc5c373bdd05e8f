//! Sources feed the index: `files` (YAML read from a folder, re-read on change) and `kube`
//! (kube-rs watchers). The server learns from [`SourceStatus`] when the state is loaded (readiness)
//! and whether it is stale (a watch broken for longer than `--stale-after`).

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
