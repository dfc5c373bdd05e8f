//! The files source: every `*.yaml`/`*.yml` under `--manifests DIR` (recursively; the `..data`
//! internals of a mounted ConfigMap are skipped) is read with the lint module's loader, the index
//! objects that changed are written to the index, and the folder is followed for changes.
//!
//! Following: the folder is watched (inotify on Linux, through `notify`); a burst of changes is
//! followed by one scan, and a full scan runs every [`RESCAN_WHILE_WATCHED`] in case a watch
//! missed something. Where no watch can be set up (inotify limits, some network filesystems), or
//! after the folder could not be listed, it is polled every `--reload-interval` instead. A scan
//! compares each file's (size, modification time, inode) with the previous one and reads only
//! those that differ; the inode makes a ConfigMap's symlink swap visible even when size and time
//! agree.
//!
//! A file that cannot be read or has a document that cannot be parsed is logged (once per
//! version of the file) and counted in `rollout_guard_source_errors_total`; **its last good
//! version stays in the index** (a half-saved edit must not make objects vanish and flip
//! verdicts). A file that never had a good version contributes the objects it could read.
//! The other files are unaffected. When the same object is in two files, the file that sorts
//! last wins (as `lint` does for documents), and a warning is logged.
//!
//! Readiness: the status is marked loaded after the first scan of the folder, whatever errors
//! single files had. A folder that cannot be listed marks the `files` feed broken (staleness
//! clock) and keeps the previous index.

use super::feed::{FeedWriter, Loading, Scope};
use super::SourceStatus;
use crate::index::{Index, SharedIndex};
use crate::lint::{self, Input};
use crate::metrics::Metrics;
use crate::model::{Object, ObjectKey};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The status feed name the files source reports under.
pub const FEED: &str = "files";

/// While the folder is watched, a full scan still runs this often (or every `--reload-interval`
/// if that is longer), in case a watch event was lost.
pub const RESCAN_WHILE_WATCHED: Duration = Duration::from_secs(60);

/// After a change is seen, how long the source waits for the rest of the burst (an editor's
/// save, a `git checkout`, a ConfigMap's symlink swap) before it scans.
const SETTLE: Duration = Duration::from_millis(50);

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Stamp {
    fn of(path: &Path) -> std::io::Result<Stamp> {
        let meta = std::fs::metadata(path)?;
        Ok(Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode: inode(&meta),
        })
    }
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.ino()
}

#[cfg(not(unix))]
fn inode(_meta: &std::fs::Metadata) -> u64 {
    0
}

#[derive(Debug)]
struct FileState {
    stamp: Stamp,
    /// The objects of the last good version (or, if there never was one, what could be read).
    objects: Vec<Object>,
    /// The last version read was good.
    good: bool,
}

/// What one scan found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Files read (new or changed) in this scan.
    pub read: usize,
    /// Files gone since the previous scan.
    pub removed: usize,
    /// Problems, one line each (`file:document: message`), logged by the caller.
    pub errors: Vec<String>,
    /// The folder could not be listed (nothing changed).
    pub unlisted: Option<String>,
}

impl Scan {
    pub fn changed(&self) -> bool {
        self.read > 0 || self.removed > 0
    }
}

/// The state of the folder between polls.
#[derive(Debug)]
pub struct FilesSource {
    dir: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
}

impl FilesSource {
    pub fn new(dir: PathBuf) -> Self {
        FilesSource {
            dir,
            files: BTreeMap::new(),
        }
    }

    /// Looks at every file once; reads only those that are new or changed.
    pub fn scan(&mut self) -> Scan {
        let mut scan = Scan::default();
        let paths = match lint::yaml_files(&self.dir) {
            Ok(p) => p,
            Err(e) => {
                scan.unlisted = Some(format!("{}: cannot list folder: {e}", self.dir.display()));
                return scan;
            }
        };
        let before = self.files.len();
        self.files.retain(|p, _| paths.binary_search(p).is_ok());
        scan.removed = before - self.files.len();
        let mut changed = Vec::new();
        for path in paths {
            let stamp = match Stamp::of(&path) {
                Ok(s) => s,
                // Gone between listing and stat: the next scan sees it removed.
                Err(_) => continue,
            };
            if self.files.get(&path).is_some_and(|f| f.stamp == stamp) {
                continue;
            }
            changed.push((path, stamp));
        }
        scan.read = changed.len();
        // Reading and parsing are the slow part (a first load of thousands of files): on every core.
        let read = crate::parallel::map_ordered(&changed, |(path, _)| read_file(path));
        for ((path, stamp), (objects, errors)) in changed.into_iter().zip(read) {
            let previous = self.files.remove(&path);
            let state = if errors.is_empty() {
                FileState {
                    stamp,
                    objects,
                    good: true,
                }
            } else {
                let kept = previous.filter(|p| p.good);
                let note = if kept.is_some() {
                    "; its last good version stays in use"
                } else {
                    ""
                };
                scan.errors
                    .extend(errors.into_iter().map(|e| format!("{e}{note}")));
                match kept {
                    Some(p) => FileState {
                        stamp,
                        objects: p.objects,
                        good: true,
                    },
                    None => FileState {
                        stamp,
                        objects,
                        good: false,
                    },
                }
            };
            self.files.insert(path, state);
        }
        scan
    }

    /// Everything currently read, in file order (a later duplicate replaces an earlier one when
    /// indexed); duplicates are reported in `warnings`.
    pub fn objects(&self, warnings: &mut Vec<String>) -> Vec<Object> {
        let mut objects = Vec::new();
        let mut origin: HashMap<ObjectKey, &Path> = HashMap::new();
        for (path, state) in &self.files {
            for object in &state.objects {
                if let Some(first) = origin.insert(object.key(), path) {
                    warnings.push(format!(
                        "{}: {} is also defined in {}; this one is used",
                        path.display(),
                        object.key(),
                        first.display()
                    ));
                }
                objects.push(object.clone());
            }
        }
        objects
    }

    /// The index of everything currently read; duplicates are reported in `warnings`.
    pub fn index(&self, warnings: &mut Vec<String>) -> Index {
        Index::from_objects(self.objects(warnings))
    }

    pub fn files(&self) -> usize {
        self.files.len()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A watch on the manifests folder: each change that may alter what a scan finds wakes
/// [`changed`](FolderWatch::changed).
struct FolderWatch {
    signal: Arc<tokio::sync::Notify>,
    _watcher: notify::RecommendedWatcher,
}

impl FolderWatch {
    fn start(dir: &Path) -> notify::Result<Self> {
        use notify::Watcher;
        let signal = Arc::new(tokio::sync::Notify::new());
        let wake = signal.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Reads (the scan's own included) change nothing; anything else, or an error of the
                // watch itself (a lost event queue), is a reason to look.
                let read_only = event.as_ref().is_ok_and(|e| {
                    matches!(e.kind, notify::EventKind::Access(access)
                    if access != notify::event::AccessKind::Close(notify::event::AccessMode::Write))
                });
                if !read_only {
                    wake.notify_one();
                }
            })?;
        watcher.watch(dir, notify::RecursiveMode::Recursive)?;
        Ok(FolderWatch {
            signal,
            _watcher: watcher,
        })
    }

    /// Returns once the folder changed and the burst settled, or after `rescan` at the latest.
    async fn changed(&self, rescan: Duration) {
        tokio::select! {
            () = self.signal.notified() => tokio::time::sleep(SETTLE).await,
            () = tokio::time::sleep(rescan) => {}
        }
    }
}

/// Reads and parses one file: its objects and its problems (one line each).
fn read_file(path: &Path) -> (Vec<Object>, Vec<String>) {
    let name = path.display().to_string();
    let text = match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => {
                return (
                    Vec::new(),
                    vec![format!("{name}: expected UTF-8 text, found binary data")],
                )
            }
        },
        Err(e) => return (Vec::new(), vec![format!("{name}: cannot read: {e}")]),
    };
    let loaded = lint::load(&Input { name, text });
    let errors = loaded
        .invalid
        .iter()
        .map(|f| {
            let path = if f.path.is_empty() {
                String::new()
            } else {
                format!(" {}:", f.path)
            };
            format!("{}:{}:{path} {}", f.file, f.document, f.message)
        })
        .collect();
    (
        loaded.objects.into_iter().map(|o| o.object).collect(),
        errors,
    )
}

/// Follows the folder (a watch, else a poll every `interval`) and relists it through one
/// [`FeedWriter`] (scope: everything) when anything changed. Runs until the task is aborted.
pub async fn run(
    mut source: FilesSource,
    interval: Duration,
    index: SharedIndex,
    status: Arc<SourceStatus>,
    metrics: Arc<Metrics>,
) {
    let mut writer = FeedWriter::new(
        FEED,
        Scope::Everything,
        index,
        status,
        metrics.clone(),
        Loading::new(1),
    );
    let mut listed = false;
    let dir = source.dir().to_path_buf();
    let mut watch: Option<FolderWatch> = None;
    let mut watch_refused = false;
    loop {
        // A first scan, and the first after the folder could not be listed, relist even when no
        // file changed: that is what makes the state loaded, or fresh again.
        let must_list = !listed || writer.is_broken();
        // Reading, parsing and indexing is blocking work: off the async workers.
        let scanned = tokio::task::spawn_blocking(move || {
            let scan = source.scan();
            let mut warnings = Vec::new();
            if scan.unlisted.is_none() && (scan.changed() || must_list) {
                let objects = source.objects(&mut warnings);
                for w in &warnings {
                    tracing::warn!(warning = %w, "duplicate object in the manifests");
                }
                writer.relisted(objects, &[]);
                tracing::info!(
                    files = source.files(),
                    read = scan.read,
                    removed = scan.removed,
                    "manifests loaded"
                );
            }
            (source, writer, scan)
        })
        .await;
        let (current, current_writer, scan) = match scanned {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "the manifests scan failed; the files source stops");
                return;
            }
        };
        (source, writer) = (current, current_writer);
        match &scan.unlisted {
            Some(err) => {
                if !writer.is_broken() {
                    metrics.source_error();
                }
                writer.failed(&format!("{err}; keeping the previous state"));
            }
            None => {
                listed = true;
                for err in &scan.errors {
                    tracing::error!(error = %err, "cannot load a manifest");
                    metrics.source_error();
                }
            }
        }
        if scan.unlisted.is_some() {
            // A folder that went away takes its watch with it: poll until it lists again.
            watch = None;
        } else if watch.is_none() {
            match FolderWatch::start(&dir) {
                Ok(w) => {
                    tracing::debug!(folder = %dir.display(), "watching the manifests folder");
                    watch = Some(w);
                    watch_refused = false;
                    // Started after the scan, so that the scan's own reads of every file are not
                    // events to wade through; what changed in between is caught by scanning
                    // again now (only changed files are read).
                    continue;
                }
                Err(e) if !watch_refused => {
                    watch_refused = true;
                    tracing::warn!(folder = %dir.display(), error = %e, interval = ?interval,
                        "cannot watch the manifests folder; polling it instead");
                }
                Err(_) => {}
            }
        }
        match &watch {
            Some(w) => w.changed(interval.max(RESCAN_WHILE_WATCHED)).await,
            None => tokio::time::sleep(interval).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Lookup;
    use crate::model::Kind;

    fn service(name: &str) -> String {
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\nspec: {{selector: {{app: {name}}}}}\n")
    }

    fn has(index: &Index, name: &str) -> bool {
        index
            .object(&ObjectKey::new(Kind::Service, "shop", name))
            .is_some()
    }

    fn build(source: &FilesSource) -> Index {
        source.index(&mut Vec::new())
    }

    #[test]
    fn loads_changes_and_removals() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), service("a")).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(
            dir.path().join("sub/b.yml"),
            format!("{}---\n{}", service("b"), service("c")),
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let mut source = FilesSource::new(dir.path().to_path_buf());
        let scan = source.scan();
        assert_eq!((scan.read, scan.errors.len()), (2, 0));
        let index = build(&source);
        assert_eq!(index.count(Kind::Service), 3);

        assert!(!source.scan().changed(), "nothing changed");

        std::fs::write(dir.path().join("a.yaml"), service("a2")).unwrap();
        std::fs::remove_file(dir.path().join("sub/b.yml")).unwrap();
        let scan = source.scan();
        assert_eq!((scan.read, scan.removed), (1, 1));
        let index = build(&source);
        assert!(has(&index, "a2") && !has(&index, "a") && !has(&index, "b"));
    }

    #[test]
    fn a_broken_file_keeps_its_last_good_version() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.yaml");
        std::fs::write(&a, service("a")).unwrap();
        std::fs::write(dir.path().join("b.yaml"), service("b")).unwrap();
        let mut source = FilesSource::new(dir.path().to_path_buf());
        source.scan();

        std::fs::write(&a, format!("{}---\nkind: [\n", service("a-new"))).unwrap();
        let scan = source.scan();
        assert_eq!(scan.errors.len(), 1, "{:?}", scan.errors);
        assert!(scan.errors[0].contains("a.yaml:2:"), "{:?}", scan.errors);
        assert!(scan.errors[0].contains("last good version"));
        let index = build(&source);
        assert!(has(&index, "a") && !has(&index, "a-new") && has(&index, "b"));

        std::fs::write(&a, service("a-fixed")).unwrap();
        let scan = source.scan();
        assert!(scan.errors.is_empty());
        let index = build(&source);
        assert!(has(&index, "a-fixed") && !has(&index, "a"));
    }

    #[test]
    fn a_file_broken_from_the_start_gives_what_it_can() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            format!(
                "{}---\napiVersion: v1\nkind: Service\nmetadata: {{name: x}}\nspec: {{selector: 3}}\n",
                service("a")
            ),
        )
        .unwrap();
        let mut source = FilesSource::new(dir.path().to_path_buf());
        let scan = source.scan();
        assert_eq!(scan.errors.len(), 1);
        assert!(
            scan.errors[0].contains("spec.selector"),
            "{:?}",
            scan.errors
        );
        assert!(has(&build(&source), "a"));
    }

    #[test]
    fn duplicates_are_reported_and_the_last_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("1.yaml"), service("a")).unwrap();
        std::fs::write(dir.path().join("2.yaml"), service("a")).unwrap();
        let mut source = FilesSource::new(dir.path().to_path_buf());
        source.scan();
        let mut warnings = Vec::new();
        let index = source.index(&mut warnings);
        assert_eq!(index.len(), 1);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("2.yaml"), "{warnings:?}");
    }

    #[test]
    fn an_unlistable_folder_is_reported() {
        let mut source = FilesSource::new(PathBuf::from("/nonexistent/rollout-guard"));
        let scan = source.scan();
        assert!(scan.unlisted.is_some());
        assert!(!scan.changed());
    }

    #[test]
    fn the_files_source_needs_a_folder() {
        use crate::source::{SourceConfig, SourceKind};
        let config = |manifests: Option<&str>| SourceConfig {
            kind: SourceKind::Files,
            manifests: manifests.map(PathBuf::from),
            namespaces: Vec::new(),
            poll_interval: Duration::from_secs(1),
            relist_deadline: Duration::from_secs(10),
            multicluster: Default::default(),
        };
        let err = |c: SourceConfig| c.check().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(config(None)).contains("--manifests DIR"));
        assert!(err(config(Some("/nonexistent/x"))).contains("found nothing"));
        assert!(
            err(config(Some(file!()))).contains("found a file") || !PathBuf::from(file!()).exists()
        );
        assert!(config(Some(env!("CARGO_MANIFEST_DIR"))).check().is_ok());
    }

    /// A files source running on a new folder holding `a.yaml`, polled every `poll`.
    fn running(
        poll: Duration,
    ) -> (
        tempfile::TempDir,
        SharedIndex,
        Arc<SourceStatus>,
        tokio::task::JoinHandle<()>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), service("a")).unwrap();
        let index = SharedIndex::default();
        let status = Arc::new(SourceStatus::new(Duration::from_secs(60)));
        let task = tokio::spawn(run(
            FilesSource::new(dir.path().to_path_buf()),
            poll,
            index.clone(),
            status.clone(),
            Arc::new(Metrics::new()),
        ));
        (dir, index, status, task)
    }

    /// Polls `done` until it holds; fails the test with `what` past `deadline`.
    async fn wait_for(what: &str, deadline: std::time::Instant, done: impl Fn() -> bool) {
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what} not seen");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn run_marks_loaded_and_follows_changes() {
        let (dir, index, status, task) = running(Duration::from_millis(20));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        wait_for("the first load", deadline, || status.is_loaded()).await;
        assert!(has(&index.snapshot(), "a"));
        std::fs::write(dir.path().join("b.yaml"), service("b")).unwrap();
        wait_for("a change", deadline, || has(&index.snapshot(), "b")).await;
        task.abort();
    }

    #[tokio::test]
    async fn a_watched_folder_is_followed_without_polling() {
        // An hour between polls: what is seen within the test's deadline came through the watch.
        let (dir, index, status, task) = running(Duration::from_secs(3600));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        wait_for("the first load", deadline, || status.is_loaded()).await;
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b.yaml"), service("b")).unwrap();
        wait_for("a file in a new subfolder", deadline, || {
            has(&index.snapshot(), "b")
        })
        .await;
        std::fs::remove_file(dir.path().join("a.yaml")).unwrap();
        wait_for("a removal", deadline, || !has(&index.snapshot(), "a")).await;
        task.abort();
    }
}
