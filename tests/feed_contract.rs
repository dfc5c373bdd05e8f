//! The source contract: the same sequence of changes, seen by the files source (files written,
//! rewritten, broken and removed, then the folder scanned) and by the kube source (watch events
//! through one feed per kind), gives the same index — the same objects and the same reverse
//! references. Both sources write through `source::feed::FeedWriter`; this test pins down what
//! their translations into it must agree on: relists, removals, and the last good version of an
//! object that cannot be read.

use kube::runtime::watcher::Event;
use rollout_guard::index::{references_of, Index, Lookup, SharedIndex};
use rollout_guard::metrics::Metrics;
use rollout_guard::model::{Kind, Object, ObjectKey};
use rollout_guard::source::feed::{FeedWriter, Loading, Scope};
use rollout_guard::source::files::FilesSource;
use rollout_guard::source::kube::KubeFeed;
use rollout_guard::source::watched::WatchedObject;
use rollout_guard::source::SourceStatus;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// One change in the cluster (or the Git folder).
enum Step {
    /// An object is created or changed.
    Write(Value),
    /// A version that cannot be read (a field of the wrong type).
    Break(Value),
    Delete(Kind, &'static str),
    /// Deleted while the watch is away: no event, only the next relist shows it.
    DeleteUnseen(Kind, &'static str),
    /// The watch breaks and relists; for the folder, nothing new.
    Reconnect,
}

fn rollout(name: &str, vs: &str, canary: &str) -> Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"strategy": {"canary": {"canaryService": canary, "stableService": "stable",
            "trafficRouting": {"istio": {"virtualService": {"name": vs, "routes": ["primary"]},
                "destinationRule": {"name": "rules", "canarySubsetName": "canary", "stableSubsetName": "stable"}}}}}}})
}

fn virtual_service(name: &str, route: &str) -> Value {
    json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"hosts": ["shop.local"], "http": [{"name": route, "route": [
            {"destination": {"host": "stable"}, "weight": 100},
            {"destination": {"host": "canary"}, "weight": 0}]}]}})
}

fn destination_rule(name: &str) -> Value {
    json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"host": "shop", "subsets": [{"name": "canary", "labels": {"app": "shop"}},
            {"name": "stable", "labels": {"app": "shop"}}]}})
}

fn service(name: &str, app: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "shop"},
        "spec": {"selector": {"app": app}}})
}

fn broken(mut doc: Value) -> Value {
    match doc["kind"].as_str() {
        Some("Service") => doc["spec"]["selector"] = json!(3),
        Some("Rollout") => doc["spec"]["strategy"] = json!("canary"),
        Some("VirtualService") => doc["spec"]["http"] = json!({"name": "x"}),
        _ => doc["spec"]["subsets"] = json!("none"),
    }
    doc
}

fn kind_of(doc: &Value) -> Kind {
    let (api_version, kind) = (doc["apiVersion"].as_str(), doc["kind"].as_str());
    Kind::from_type(api_version.unwrap_or_default(), kind.unwrap_or_default())
        .expect("one of our kinds")
}

fn name_of(doc: &Value) -> String {
    doc["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The folder: one file per object.
struct Folder {
    dir: tempfile::TempDir,
    source: FilesSource,
    writer: FeedWriter,
    index: SharedIndex,
}

impl Folder {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let index = SharedIndex::default();
        let writer = FeedWriter::new(
            "files",
            Scope::Everything,
            index.clone(),
            Arc::new(SourceStatus::new(Duration::from_secs(60))),
            Arc::new(Metrics::new()),
            Loading::new(1),
        );
        Folder {
            source: FilesSource::new(dir.path().to_path_buf()),
            dir,
            writer,
            index,
        }
    }

    fn path(&self, kind: Kind, name: &str) -> PathBuf {
        self.dir.path().join(format!("{kind}-{name}.yaml"))
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Write(doc) | Step::Break(doc) => {
                let doc = match step {
                    Step::Break(_) => broken(doc.clone()),
                    _ => doc.clone(),
                };
                // Through a new file renamed into place (as editors and ConfigMap mounts do): a
                // new inode, so a rewrite within the same second is seen as a change.
                let path = self.path(kind_of(&doc), &name_of(&doc));
                let staged = path.with_extension("staged");
                std::fs::write(&staged, doc.to_string()).expect("write a manifest");
                std::fs::rename(&staged, &path).expect("rename a manifest into place");
            }
            Step::Delete(kind, name) | Step::DeleteUnseen(kind, name) => {
                std::fs::remove_file(self.path(*kind, name)).expect("remove a manifest");
            }
            Step::Reconnect => {}
        }
        let scan = self.source.scan();
        assert!(scan.unlisted.is_none(), "{scan:?}");
        let mut warnings = Vec::new();
        let objects = self.source.objects(&mut warnings);
        assert!(warnings.is_empty(), "{warnings:?}");
        self.writer.relisted(objects, &[]);
    }
}

/// The API server (what a relist returns) and one watcher feed per kind.
struct Cluster {
    live: BTreeMap<(Kind, String), Value>,
    feeds: BTreeMap<Kind, KubeFeed>,
    index: SharedIndex,
}

impl Cluster {
    fn new() -> Self {
        let index = SharedIndex::default();
        let status = Arc::new(SourceStatus::new(Duration::from_secs(60)));
        let metrics = Arc::new(Metrics::new());
        let loading = Loading::new(Kind::ALL.len());
        let feeds = Kind::ALL
            .into_iter()
            .map(|kind| {
                let writer = FeedWriter::new(
                    format!("{kind}/*"),
                    Scope::Kind {
                        kind,
                        cluster: rollout_guard::model::object::local_cluster(),
                        namespace: None,
                    },
                    index.clone(),
                    status.clone(),
                    metrics.clone(),
                    loading.clone(),
                );
                (kind, KubeFeed::new(kind, writer))
            })
            .collect();
        Cluster {
            live: BTreeMap::new(),
            feeds,
            index,
        }
    }

    fn send(&mut self, kind: Kind, event: Event<WatchedObject>) {
        let feed = self.feeds.get_mut(&kind).expect("a feed per kind");
        feed.handle(Ok::<_, String>(event));
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Write(doc) | Step::Break(doc) => {
                let doc = match step {
                    Step::Break(_) => broken(doc.clone()),
                    _ => doc.clone(),
                };
                let kind = kind_of(&doc);
                self.live.insert((kind, name_of(&doc)), doc.clone());
                self.send(kind, Event::Apply(dynamic(doc)));
            }
            Step::Delete(kind, name) => {
                let doc = self
                    .live
                    .remove(&(*kind, name.to_string()))
                    .expect("a live object");
                self.send(*kind, Event::Delete(dynamic(doc)));
            }
            Step::DeleteUnseen(kind, name) => {
                self.live.remove(&(*kind, name.to_string()));
            }
            Step::Reconnect => {
                for kind in Kind::ALL {
                    let feed = self.feeds.get_mut(&kind).expect("a feed per kind");
                    feed.handle(Err::<Event<WatchedObject>, _>("watch closed".to_string()));
                    feed.handle(Ok::<_, String>(Event::Init));
                    for ((k, _), doc) in &self.live {
                        if *k == kind {
                            feed.handle(Ok::<_, String>(Event::InitApply(dynamic(doc.clone()))));
                        }
                    }
                    feed.handle(Ok::<_, String>(Event::InitDone));
                }
            }
        }
    }
}

fn dynamic(doc: Value) -> WatchedObject {
    WatchedObject::from_json(&doc.to_string()).expect("an object with a name")
}

/// Everything a decision can see: each object (its view, printed) and who references what.
fn contents(
    index: &Index,
) -> (
    BTreeMap<ObjectKey, String>,
    BTreeMap<ObjectKey, Vec<ObjectKey>>,
) {
    let objects: BTreeMap<ObjectKey, String> = index
        .objects()
        .map(|o| (o.key(), format!("{o:?}")))
        .collect();
    let mut targets: BTreeSet<ObjectKey> = objects.keys().cloned().collect();
    for o in index.objects() {
        if let Object::Rollout(r) = o {
            targets.extend(references_of(r));
        }
    }
    let references = targets
        .into_iter()
        .map(|k| {
            let rollouts = index.rollouts_referencing(&k);
            (k, rollouts)
        })
        .filter(|(_, rollouts)| !rollouts.is_empty())
        .collect();
    (objects, references)
}

fn names(index: &Index, kind: Kind) -> Vec<String> {
    index
        .keys(kind)
        .into_iter()
        .map(|k| k.name.to_string())
        .collect()
}

#[test]
fn the_same_changes_through_either_source_give_the_same_index() {
    let initial = [
        rollout("checkout", "checkout", "canary"),
        virtual_service("checkout", "primary"),
        destination_rule("rules"),
        service("canary", "checkout"),
        service("stable", "checkout"),
    ];
    let mut steps: Vec<(Step, bool)> = initial
        .iter()
        .cloned()
        .map(|d| (Step::Write(d), false))
        .collect();
    steps.extend([
        (Step::Reconnect, true),
        (Step::Write(rollout("search", "search", "canary")), true),
        (Step::Write(virtual_service("search", "main")), true),
        (Step::Break(service("canary", "checkout")), true),
        (Step::Write(virtual_service("checkout", "renamed")), true),
        (Step::Delete(Kind::Service, "stable"), true),
        // Away: the watch misses these; the relist must show them.
        (Step::DeleteUnseen(Kind::Rollout, "search"), false),
        (Step::Reconnect, true),
        (Step::Break(rollout("checkout", "other", "canary")), true),
        (Step::Reconnect, true),
        (Step::Write(service("canary", "fixed")), true),
        (Step::Break(destination_rule("never-good")), true),
        (Step::Write(rollout("checkout", "search", "canary")), true),
        (Step::Delete(Kind::VirtualService, "checkout"), true),
    ]);

    let mut folder = Folder::new();
    let mut cluster = Cluster::new();
    for (number, (step, compare)) in steps.iter().enumerate() {
        folder.step(step);
        cluster.step(step);
        if *compare {
            let files = contents(&folder.index.snapshot());
            let kube = contents(&cluster.index.snapshot());
            assert_eq!(files.0, kube.0, "objects differ after step {}", number + 1);
            assert_eq!(
                files.1,
                kube.1,
                "reverse references differ after step {}",
                number + 1
            );
        }
    }

    // And the end state is what the sequence means.
    let end = cluster.index.snapshot();
    assert_eq!(names(&end, Kind::Rollout), ["checkout"]);
    assert_eq!(names(&end, Kind::VirtualService), ["search"]);
    assert_eq!(
        names(&end, Kind::DestinationRule),
        ["rules"],
        "never-good was never read"
    );
    assert_eq!(names(&end, Kind::Service), ["canary"]);
    let search_vs = ObjectKey::new(Kind::VirtualService, "shop", "search");
    assert_eq!(
        end.rollouts_referencing(&search_vs),
        [ObjectKey::new(Kind::Rollout, "shop", "checkout")]
    );
}

#[test]
fn an_unreadable_version_keeps_the_last_good_one_in_both_sources() {
    let steps = [
        Step::Write(rollout("checkout", "checkout", "canary")),
        Step::Reconnect,
        Step::Break(rollout("checkout", "elsewhere", "canary")),
    ];
    let mut folder = Folder::new();
    let mut cluster = Cluster::new();
    for step in &steps {
        folder.step(step);
        cluster.step(step);
    }
    let checkout_vs = ObjectKey::new(Kind::VirtualService, "shop", "checkout");
    let rollout_key = ObjectKey::new(Kind::Rollout, "shop", "checkout");
    for index in [folder.index.snapshot(), cluster.index.snapshot()] {
        assert_eq!(
            index.rollouts_referencing(&checkout_vs),
            std::slice::from_ref(&rollout_key)
        );
    }
}
