//! Multicluster: the other clusters the kube source reads, found through labelled kubeconfig
//! Secrets in this cluster and followed at run time.
//!
//! - Rollouts cluster (`--istio-primary-secrets`): Argo Rollouts reads and writes
//!   VirtualServices and DestinationRules in the Istio primary through the Secret labelled
//!   `istio.argoproj.io/primary-cluster=true`; rollout-guard finds the same Secret as the
//!   controller does (the first one, its first data key) and watches those two kinds there.
//!   Without such a Secret they are watched here, as in one cluster.
//! - Istio primary (`--rollouts-cluster-secrets`): every data key of every Secret labelled
//!   `rollout-guard.io/rollouts-cluster=true` (or `--rollouts-cluster-label`) is a remote cluster
//!   whose Rollouts and Services are watched beside this cluster's four kinds, keyed by cluster.
//!
//! Readiness waits for this cluster's feeds and the first list of the Secrets, never for another
//! cluster: until another cluster's feeds list, they count as broken (the state goes stale after
//! `--stale-after`, as for a local watch that broke).

use super::feed::Loading;
use super::kube::{run_feeds, Connection, Placement, Shared};
use super::LOCAL_CLUSTER;
use crate::model::object::local_cluster;
use crate::model::Kind;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// The label Argo Rollouts looks for on the Istio primary's kubeconfig Secret.
pub const PRIMARY_CLUSTER_LABEL: &str = "istio.argoproj.io/primary-cluster=true";
/// The default label of a remote Rollouts cluster's kubeconfig Secret (`--rollouts-cluster-label`).
pub const ROLLOUTS_CLUSTER_LABEL: &str = "rollout-guard.io/rollouts-cluster=true";
/// At most this many remote clusters (it bounds the `cluster` label of the metrics).
pub const MAX_REMOTE_CLUSTERS: usize = 32;

/// Where the kubeconfig Secrets are looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretScope {
    /// Every namespace (as the Argo Rollouts controller does unless `--namespaced`).
    All,
    /// One namespace.
    Namespace(String),
}

/// A Secrets flag: `off` (`None`), or where to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsFlag(pub Option<SecretScope>);

impl SecretScope {
    /// `off`, `all` or a namespace name (`--istio-primary-secrets`, `--rollouts-cluster-secrets`).
    pub fn parse(value: &str) -> Result<SecretsFlag, String> {
        match value {
            "off" => Ok(SecretsFlag(None)),
            "all" => Ok(SecretsFlag(Some(SecretScope::All))),
            ns if is_dns_label(ns) => Ok(SecretsFlag(Some(SecretScope::Namespace(ns.to_string())))),
            other => Err(format!(
                "expected off, all or a namespace name (lowercase letters, digits and '-', at most 63), found '{other}'"
            )),
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The multicluster role of the kube source.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Multicluster {
    /// One cluster.
    #[default]
    Off,
    /// This is a Rollouts cluster: VirtualServices and DestinationRules are read in the Istio
    /// primary that the Argo Rollouts Secret names.
    IstioPrimary { secrets: SecretScope },
    /// This is the Istio primary: Rollouts and Services are also read in the clusters that
    /// Secrets with `label` name.
    RolloutsClusters { secrets: SecretScope, label: String },
}

/// A Secret's identity: namespace, then name (the order the API server lists in).
pub type SecretId = (String, String);

/// The Istio primary as the Argo Rollouts controller finds it: the first labelled Secret and its
/// first data key (the cluster's name; its value a kubeconfig).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryChoice {
    pub secret: String,
    pub cluster: String,
    pub kubeconfig: String,
}

/// `Ok(None)`: no labelled Secret (VirtualServices and DestinationRules are read here). An error
/// says why the first Secret cannot be used.
pub fn choose_primary(
    secrets: &BTreeMap<SecretId, Secret>,
) -> Result<Option<PrimaryChoice>, String> {
    let Some(((ns, name), secret)) = secrets.iter().next() else {
        return Ok(None);
    };
    let id = format!("{ns}/{name}");
    // The controller takes one key of a Go map (any); with one key, as istioctl writes it, that
    // is the key. With several, the first in order here.
    let Some((cluster, kubeconfig)) = secret.data.as_ref().and_then(|d| d.iter().next()) else {
        return Err(format!(
            "Secret {id} (labelled {PRIMARY_CLUSTER_LABEL}): expected a data key holding a kubeconfig, found no data"
        ));
    };
    let kubeconfig = String::from_utf8(kubeconfig.0.clone()).map_err(|_| {
        format!("Secret {id} key {cluster}: expected a kubeconfig (UTF-8 YAML), found binary data")
    })?;
    if cluster.is_empty() || cluster == LOCAL_CLUSTER {
        return Err(format!(
            "Secret {id}: expected a cluster name as the data key, found '{cluster}'"
        ));
    }
    Ok(Some(PrimaryChoice {
        secret: id,
        cluster: cluster.clone(),
        kubeconfig,
    }))
}

/// A remote Rollouts cluster named by a Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCluster {
    pub secret: String,
    pub kubeconfig: String,
}

/// Every remote cluster the Secrets name (each data key one cluster), and what could not be used:
/// a name that is not a DNS-1123 subdomain or is `local`, binary data, a name that a Secret
/// earlier in order already took, clusters past [`MAX_REMOTE_CLUSTERS`].
pub fn remote_clusters(
    secrets: &BTreeMap<SecretId, Secret>,
) -> (BTreeMap<String, RemoteCluster>, Vec<String>) {
    let mut clusters = BTreeMap::new();
    let mut problems = Vec::new();
    for ((ns, name), secret) in secrets {
        let id = format!("{ns}/{name}");
        for (cluster, data) in secret.data.iter().flatten() {
            let valid = cluster.len() <= 253
                && cluster != LOCAL_CLUSTER
                && cluster.split('.').all(is_dns_label);
            if !valid {
                problems.push(format!(
                    "Secret {id}: expected a cluster name (a DNS-1123 subdomain other than 'local') as the data key, found '{cluster}'"
                ));
                continue;
            }
            let Ok(kubeconfig) = String::from_utf8(data.0.clone()) else {
                problems.push(format!(
                    "Secret {id} key {cluster}: expected a kubeconfig (UTF-8 YAML), found binary data"
                ));
                continue;
            };
            if let Some(first) = clusters.get(cluster) {
                let first: &RemoteCluster = first;
                problems.push(format!(
                    "Secret {id} key {cluster}: cluster {cluster} is already named by Secret {}; this one is ignored",
                    first.secret
                ));
                continue;
            }
            if clusters.len() == MAX_REMOTE_CLUSTERS {
                problems.push(format!(
                    "Secret {id} key {cluster}: at most {MAX_REMOTE_CLUSTERS} remote clusters are read; this one is ignored"
                ));
                continue;
            }
            clusters.insert(
                cluster.clone(),
                RemoteCluster {
                    secret: id.clone(),
                    kubeconfig,
                },
            );
        }
    }
    (clusters, problems)
}

/// A client for the cluster a kubeconfig describes (its current context).
pub async fn connect(kubeconfig: &str) -> Result<Connection, String> {
    let parsed = kube::config::Kubeconfig::from_yaml(kubeconfig)
        .map_err(|e| format!("expected a kubeconfig, found: {e}"))?;
    let config =
        kube::Config::from_custom_kubeconfig(parsed, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| format!("the kubeconfig cannot be used: {e}"))?;
    let client = kube::Client::try_from(config.clone())
        .map_err(|e| format!("cannot make a client from the kubeconfig: {e}"))?;
    Ok(Connection { config, client })
}

/// The labelled Secrets as a watch keeps them, with the readiness and health of that watch.
struct SecretFollower {
    feed: String,
    known: BTreeMap<SecretId, Secret>,
    listing: Option<BTreeMap<SecretId, Secret>>,
    listed_once: bool,
    loading: Arc<Loading>,
    shared: Shared,
}

impl SecretFollower {
    fn new(feed: &str, loading: Arc<Loading>, shared: Shared) -> Self {
        shared.status.add_feed(LOCAL_CLUSTER, feed);
        SecretFollower {
            feed: feed.to_string(),
            known: BTreeMap::new(),
            listing: None,
            listed_once: false,
            loading,
            shared,
        }
    }

    /// Takes one watch event; true when the set of Secrets may have changed (after the first list).
    fn handle(&mut self, event: Result<Event<Secret>, watcher::Error>) -> bool {
        let status = &self.shared.status;
        let changed = match event {
            Ok(Event::Init) => {
                self.listing = Some(BTreeMap::new());
                false
            }
            Ok(Event::InitApply(s)) => {
                self.listing
                    .get_or_insert_with(BTreeMap::new)
                    .insert(id_of(&s), s);
                false
            }
            Ok(Event::InitDone) => {
                self.known = self.listing.take().unwrap_or_default();
                status.set_healthy(&self.feed);
                status.set_listed(LOCAL_CLUSTER, &self.feed);
                tracing::info!(feed = %self.feed, secrets = self.known.len(), "listed");
                if !std::mem::replace(&mut self.listed_once, true) {
                    self.loading.mark_listed(status);
                }
                true
            }
            Ok(Event::Apply(s)) => {
                status.set_healthy(&self.feed);
                self.known.insert(id_of(&s), s);
                true
            }
            Ok(Event::Delete(s)) => {
                status.set_healthy(&self.feed);
                self.known.remove(&id_of(&s));
                true
            }
            Err(err) => {
                tracing::warn!(feed = %self.feed, error = %err, "feed failed");
                status.set_broken(&self.feed);
                false
            }
        };
        changed && self.listed_once
    }
}

fn id_of(s: &Secret) -> SecretId {
    (
        s.metadata.namespace.clone().unwrap_or_default(),
        s.metadata.name.clone().unwrap_or_default(),
    )
}

fn secret_watch(
    local: &Connection,
    scope: &SecretScope,
    label: &str,
) -> futures::stream::BoxStream<'static, Result<Event<Secret>, watcher::Error>> {
    let api: Api<Secret> = match scope {
        SecretScope::All => Api::all(local.client.clone()),
        SecretScope::Namespace(ns) => Api::namespaced(local.client.clone(), ns),
    };
    watcher::watcher(api, watcher::Config::default().labels(label))
        .backoff(super::kube::ReconnectBackoff::default())
        .boxed()
}

/// Starts the feeds of a connection that readiness does not wait for (see [`Loading::detached`]).
fn spawn_feeds(conn: Connection, placement: &Placement, shared: &Shared) -> JoinHandle<()> {
    tokio::spawn(run_feeds(
        conn,
        placement.clone(),
        Loading::detached(),
        shared.clone(),
    ))
}

/// Feeds that run on another connection, and what they were started for.
struct Running<T> {
    wanted: T,
    placement: Placement,
    task: Option<JoinHandle<()>>,
}

impl<T> Running<T> {
    /// Stops the feeds and waits until they are gone: the watchers' registrations go with them,
    /// the discovery's (not a watcher) is taken out here, and another cluster's altogether.
    async fn stop(self, shared: &Shared) {
        if let Some(task) = self.task {
            task.abort();
            let _ = task.await;
        }
        let discovery = self.placement.feed_name("discovery");
        shared
            .status
            .remove_cluster_feed(&self.placement.label, &discovery);
        shared.status.set_healthy(&discovery);
        if self.placement.label != LOCAL_CLUSTER {
            shared.status.remove_cluster(&self.placement.label);
        }
    }
}

/// Rollouts cluster: follows the Argo Rollouts primary-cluster Secret and runs the
/// VirtualService and DestinationRule feeds against the cluster it names (here without one).
pub async fn follow_istio_primary(
    local: Connection,
    scope: SecretScope,
    loading: Arc<Loading>,
    shared: Shared,
) {
    const ISTIO_KINDS: [Kind; 2] = [Kind::VirtualService, Kind::DestinationRule];
    let problem_feed = "istio-primary secret";
    let mut follower = SecretFollower::new("istio-primary secrets", loading, shared.clone());
    let mut current: Option<Running<Option<PrimaryChoice>>> = None;
    let mut last_problem: Option<String> = None;
    let stream = secret_watch(&local, &scope, PRIMARY_CLUSTER_LABEL);
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        if !follower.handle(event) {
            continue;
        }
        let wanted = match choose_primary(&follower.known) {
            Ok(wanted) => wanted,
            Err(problem) => {
                if last_problem.as_ref() != Some(&problem) {
                    tracing::error!(problem = %problem, "the Istio primary's Secret cannot be used; the feeds in place are kept");
                    shared.metrics.source_error();
                    last_problem = Some(problem);
                }
                shared.status.set_broken(problem_feed);
                continue;
            }
        };
        last_problem = None;
        shared.status.set_healthy(problem_feed);
        if current.as_ref().is_some_and(|r| r.wanted == wanted) {
            continue;
        }
        let first = current.is_none();
        if let Some(old) = current.take() {
            old.stop(&shared).await;
            shared.live.unregister("", &ISTIO_KINDS);
            // What the old cluster had is not what the new one has.
            shared.index.update(|index| {
                for kind in ISTIO_KINDS {
                    index.replace_scope(kind, "", None, Vec::new());
                }
            });
        }
        let (connection, placement) = match &wanted {
            // Here: named apart from this cluster's Rollout and Service feeds.
            None => (
                Ok(local.clone()),
                Placement {
                    prefix: "istio: ".to_string(),
                    ..Placement::local(&ISTIO_KINDS)
                },
            ),
            Some(choice) => (
                connect(&choice.kubeconfig).await,
                Placement::remote(&ISTIO_KINDS, local_cluster(), &choice.cluster),
            ),
        };
        let task = match connection {
            Ok(conn) => {
                match &wanted {
                    Some(c) => tracing::info!(cluster = %c.cluster, secret = %c.secret,
                        "VirtualServices and DestinationRules are read in the Istio primary"),
                    None if !first => tracing::info!(
                        "no Istio primary Secret any more: VirtualServices and DestinationRules are read in this cluster"
                    ),
                    None => {}
                }
                Some(spawn_feeds(conn, &placement, &shared))
            }
            Err(problem) => {
                tracing::error!(cluster = %placement.label, problem = %problem,
                    "cannot connect to the Istio primary; VirtualServices and DestinationRules are not read");
                shared.metrics.source_error();
                shared.status.set_broken(problem_feed);
                None
            }
        };
        current = Some(Running {
            wanted,
            placement,
            task,
        });
    }
}

/// Istio primary: follows the remote Rollouts clusters' Secrets and runs a Rollout and Service
/// feed in each named cluster; a cluster whose Secret goes away is stopped and its objects leave
/// the index.
pub async fn follow_rollouts_clusters(
    local: Connection,
    scope: SecretScope,
    label: String,
    loading: Arc<Loading>,
    shared: Shared,
) {
    const ROLLOUT_KINDS: [Kind; 2] = [Kind::Rollout, Kind::Service];
    let mut follower = SecretFollower::new("rollouts-cluster secrets", loading, shared.clone());
    let mut running: BTreeMap<String, Running<RemoteCluster>> = BTreeMap::new();
    let mut reported: Vec<String> = Vec::new();
    let stream = secret_watch(&local, &scope, &label);
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        if !follower.handle(event) {
            continue;
        }
        let (wanted, problems) = remote_clusters(&follower.known);
        for problem in problems.iter().filter(|p| !reported.contains(p)) {
            tracing::error!(problem = %problem, "a remote cluster's Secret cannot be used");
            shared.metrics.source_error();
        }
        reported = problems;
        let gone: Vec<String> = running
            .iter()
            .filter(|(name, r)| wanted.get(*name) != Some(&r.wanted))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            if let Some(old) = running.remove(&name) {
                old.stop(&shared).await;
            }
            let key_cluster: Arc<str> = Arc::from(name.as_str());
            shared.live.unregister(&key_cluster, &ROLLOUT_KINDS);
            let removed = shared.index.update(|index| index.remove_cluster(&name));
            if !wanted.contains_key(&name) {
                tracing::info!(cluster = %name, objects_removed = removed, "remote cluster no longer read");
            }
        }
        for (name, remote) in wanted {
            if running.contains_key(&name) {
                continue;
            }
            let placement = Placement::remote(&ROLLOUT_KINDS, Arc::from(name.as_str()), &name);
            let task = match connect(&remote.kubeconfig).await {
                Ok(conn) => {
                    tracing::info!(cluster = %name, secret = %remote.secret, "reading Rollouts and Services in a remote cluster");
                    Some(spawn_feeds(conn, &placement, &shared))
                }
                Err(problem) => {
                    tracing::error!(cluster = %name, secret = %remote.secret, problem = %problem,
                        "cannot connect to a remote cluster");
                    shared.metrics.source_error();
                    // Reported as not ready, and stale after --stale-after, until its Secret changes.
                    let feed = placement.feed_name("connection");
                    shared.status.add_feed(&name, &feed);
                    shared.status.set_broken(&feed);
                    None
                }
            };
            running.insert(
                name,
                Running {
                    wanted: remote,
                    placement,
                    task,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(ns: &str, name: &str, data: &[(&str, &[u8])]) -> (SecretId, Secret) {
        let mut s = Secret::default();
        s.metadata.namespace = Some(ns.into());
        s.metadata.name = Some(name.into());
        s.data = Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                .collect(),
        );
        ((ns.into(), name.into()), s)
    }

    #[test]
    fn the_primary_is_the_first_secret_and_its_first_key() {
        assert_eq!(choose_primary(&BTreeMap::new()), Ok(None));
        let secrets: BTreeMap<_, _> = [
            secret("istio", "z", &[("other", b"kc-z")]),
            secret(
                "argo-rollouts",
                "remote",
                &[("primary", b"kc"), ("second", b"x")],
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            choose_primary(&secrets),
            Ok(Some(PrimaryChoice {
                secret: "argo-rollouts/remote".into(),
                cluster: "primary".into(),
                kubeconfig: "kc".into(),
            }))
        );
        let empty: BTreeMap<_, _> = [secret("a", "b", &[])].into_iter().collect();
        let message = choose_primary(&empty).expect_err("no data");
        assert!(
            message.contains("a/b") && message.contains("found no data"),
            "{message}"
        );
        let binary: BTreeMap<_, _> = [secret("a", "b", &[("p", &[0xff, 0xfe])])]
            .into_iter()
            .collect();
        assert!(choose_primary(&binary).is_err_and(|m| m.contains("binary")));
    }

    #[test]
    fn every_key_is_a_remote_cluster_and_bad_ones_are_reported() {
        let secrets: BTreeMap<_, _> = [
            secret(
                "rollout-guard",
                "a",
                &[("east", b"kc-east"), ("local", b"x")],
            ),
            secret(
                "rollout-guard",
                "b",
                &[("east", b"other"), ("west.eu", b"kc-west")],
            ),
            secret(
                "rollout-guard",
                "c",
                &[("Bad_Name", b"x"), ("bin", &[0xff])],
            ),
        ]
        .into_iter()
        .collect();
        let (clusters, problems) = remote_clusters(&secrets);
        assert_eq!(
            clusters.keys().collect::<Vec<_>>(),
            ["east", "west.eu"],
            "{problems:?}"
        );
        assert_eq!(clusters["east"].kubeconfig, "kc-east");
        assert_eq!(clusters["east"].secret, "rollout-guard/a");
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("'local'")));
        assert!(problems
            .iter()
            .any(|p| p.contains("already named by Secret rollout-guard/a")));
        assert!(problems.iter().any(|p| p.contains("'Bad_Name'")));
        assert!(problems.iter().any(|p| p.contains("binary")));
    }

    #[test]
    fn remote_clusters_are_bounded() {
        let names: Vec<String> = (0..MAX_REMOTE_CLUSTERS + 3)
            .map(|i| format!("c{i:02}"))
            .collect();
        let data: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"kc"[..])).collect();
        let secrets: BTreeMap<_, _> = [secret("ns", "many", &data)].into_iter().collect();
        let (clusters, problems) = remote_clusters(&secrets);
        assert_eq!(clusters.len(), MAX_REMOTE_CLUSTERS);
        assert_eq!(problems.len(), 3);
    }

    #[test]
    fn secret_scopes_parse_with_clear_errors() {
        assert_eq!(SecretScope::parse("off"), Ok(SecretsFlag(None)));
        assert_eq!(
            SecretScope::parse("all"),
            Ok(SecretsFlag(Some(SecretScope::All)))
        );
        assert_eq!(
            SecretScope::parse("argo-rollouts"),
            Ok(SecretsFlag(Some(SecretScope::Namespace(
                "argo-rollouts".into()
            ))))
        );
        let message = SecretScope::parse("Argo").expect_err("not a namespace name");
        assert!(message.contains("found 'Argo'"), "{message}");
    }

    #[tokio::test]
    async fn a_kubeconfig_that_is_not_one_is_refused_with_a_message() {
        let Err(message) = connect("clusters: 3").await else {
            panic!("not a kubeconfig");
        };
        assert!(message.contains("expected a kubeconfig"), "{message}");
        let kubeconfig = "apiVersion: v1\nkind: Config\nclusters: [{name: p, cluster: {server: 'https://127.0.0.1:1'}}]\n\
            users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: p, user: u}}]\ncurrent-context: c\n";
        assert!(
            connect(kubeconfig).await.is_ok(),
            "a plain token kubeconfig connects lazily"
        );
    }
}
