//! What is already broken: `rollout-guard audit` checks every Rollout in a cluster with its
//! objects, with lint's rules, output and exit codes; in `serve`, the `rollout_guard_findings`
//! gauge counts the findings of the same rules over the live index, recounted as objects change.

use crate::index::{Index, SharedIndex};
use crate::lint::{self, Output, Report};
use crate::metrics::Metrics;
use crate::model::Object;
use crate::rules::{self, RuleId, Severity};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How often `serve` looks whether the state changed since the last count (changes in between are
/// counted together, once).
pub const RECOUNT_INTERVAL: Duration = Duration::from_secs(5);
/// Objects per list request.
const PAGE: u32 = 500;

/// Findings by rule and severity.
pub type Tally = BTreeMap<(RuleId, Severity), usize>;

/// The findings of the lint rules over an index: every object on its own, every Rollout against
/// the objects it references. (Unknown fields are not counted: the index keeps no raw objects.)
pub fn tally(index: &Index) -> Tally {
    let mut out = Tally::new();
    let mut count = |f: rules::Finding| *out.entry((f.rule, f.severity)).or_default() += 1;
    for object in index.objects() {
        rules::check_self(object).into_iter().for_each(&mut count);
        if let Object::Rollout(r) = object {
            rules::check_references(r, index)
                .into_iter()
                .for_each(&mut count);
        }
    }
    out
}

/// Recounts whenever the index changed since the last count (looked at every `interval`), off the
/// request path (a blocking task on a snapshot), and sets the gauge; a rule and severity that no
/// longer has findings goes to 0. Runs until aborted.
pub async fn keep_counting(index: SharedIndex, metrics: Arc<Metrics>, interval: Duration) {
    let mut counted: Option<Arc<Index>> = None;
    let mut shown = Tally::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let snapshot = index.snapshot();
        if counted.as_ref().is_some_and(|c| Arc::ptr_eq(c, &snapshot)) {
            continue;
        }
        let of = snapshot.clone();
        let Ok(now) = tokio::task::spawn_blocking(move || tally(&of)).await else {
            continue;
        };
        for (rule, severity) in shown.keys() {
            if !now.contains_key(&(*rule, *severity)) {
                metrics.set_findings(rule.id(), severity.as_str(), 0);
            }
        }
        for ((rule, severity), n) in &now {
            metrics.set_findings(rule.id(), severity.as_str(), *n);
        }
        shown = now;
        counted = Some(snapshot);
    }
}

/// A client from `--kubeconfig`, or the usual resolution (`KUBECONFIG`, `~/.kube/config`, in
/// cluster), and a name for the cluster (its context, or its server).
pub async fn connect(kubeconfig: Option<&Path>) -> anyhow::Result<(kube::Client, String)> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                anyhow::anyhow!("--kubeconfig {}: expected a kubeconfig, found: {e}", path.display())
            })?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| anyhow::anyhow!("--kubeconfig {}: {e}", path.display()))?
        }
        None => kube::Config::infer().await.map_err(|e| {
            anyhow::anyhow!("expected a kubeconfig (--kubeconfig, KUBECONFIG, ~/.kube/config) or an in-cluster service account, found: {e}")
        })?,
    };
    let name = config.cluster_url.to_string();
    let client = kube::Client::try_from(config)
        .map_err(|e| anyhow::anyhow!("cannot make a client for {name}: {e}"))?;
    Ok((client, name))
}

/// Every Rollout, VirtualService, DestinationRule and Service of the cluster (or of
/// `namespaces`), as JSON documents with apiVersion and kind, each named by its API path.
pub async fn list(
    client: &kube::Client,
    namespaces: &[String],
) -> anyhow::Result<Vec<(String, serde_json::Value)>> {
    let resources = crate::source::kube::resources(client).await?;
    let mut out = Vec::new();
    for (_, ar) in &resources {
        let apis: Vec<Api<DynamicObject>> = if namespaces.is_empty() {
            vec![Api::all_with(client.clone(), ar)]
        } else {
            namespaces
                .iter()
                .map(|ns| Api::namespaced_with(client.clone(), ns, ar))
                .collect()
        };
        for api in apis {
            list_all(&api, ar, &mut out).await?;
        }
    }
    Ok(out)
}

async fn list_all(
    api: &Api<DynamicObject>,
    ar: &ApiResource,
    out: &mut Vec<(String, serde_json::Value)>,
) -> anyhow::Result<()> {
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|e| anyhow::anyhow!("cannot list {}: {e}", ar.plural))?;
        for o in page.items {
            let mut value = serde_json::to_value(&o)
                .map_err(|e| anyhow::anyhow!("cannot read a listed {}: {e}", ar.kind))?;
            // List items of built-in kinds come without apiVersion and kind.
            if let Some(map) = value.as_object_mut() {
                map.entry("apiVersion")
                    .or_insert_with(|| ar.api_version.clone().into());
                map.entry("kind").or_insert_with(|| ar.kind.clone().into());
            }
            let ns = o.metadata.namespace.as_deref().unwrap_or("");
            let name = o.metadata.name.as_deref().unwrap_or("");
            out.push((api_path(ar, ns, name), value));
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(()),
        }
    }
}

/// `/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/checkout`: where the object lives.
fn api_path(ar: &ApiResource, namespace: &str, name: &str) -> String {
    let root = if ar.group.is_empty() {
        format!("/api/{}", ar.version)
    } else {
        format!("/apis/{}/{}", ar.group, ar.version)
    };
    format!("{root}/namespaces/{namespace}/{}/{name}", ar.plural)
}

/// lint's checks over listed objects: each finding's `file` is the object's API path.
pub fn report(listed: &[(String, serde_json::Value)], from: &str) -> Report {
    let mut report = Report {
        listed_from: Some(from.to_string()),
        ..Report::default()
    };
    let mut objects = Vec::new();
    for (path, value) in listed {
        report.documents += 1;
        match lint::parse_item(path, 0, value, true) {
            Ok(Some(object)) => objects.push((path.clone(), object)),
            Ok(None) => {}
            Err(f) => report.push(*f),
        }
    }
    lint::check(&mut report, objects);
    report
}

/// The whole command: lint's exit codes (0 no deny finding, 1 at least one, 2 the cluster could
/// not be read).
pub async fn run(
    kubeconfig: Option<&Path>,
    namespaces: &[String],
    output: Output,
    stdout: &mut dyn std::io::Write,
    stderr: &mut dyn std::io::Write,
) -> i32 {
    let listed = async {
        let (client, name) = connect(kubeconfig).await?;
        let listed = list(&client, namespaces).await?;
        Ok::<_, anyhow::Error>((listed, name))
    };
    let (listed, name) = match listed.await {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(stderr, "rollout-guard audit: {e:#}");
            return 2;
        }
    };
    let report = report(&listed, &name);
    lint::write_report(&report, output, "audit", stdout, stderr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn objects() -> Vec<serde_json::Value> {
        vec![
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                "metadata": {"name": "checkout", "namespace": "shop"},
                "spec": {"selector": {"matchLabels": {"app": "checkout"}},
                    "template": {"metadata": {"labels": {"app": "checkout"}}},
                    "strategy": {"canary": {"canaryService": "checkout-canary", "stableService": "checkout-stable",
                    "trafficRouting": {"istio": {"virtualService": {"name": "checkout", "routes": ["primry"]}}},
                    "steps": [{"setWeight": 20}]}}}}),
            json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
                "metadata": {"name": "checkout", "namespace": "shop"},
                "spec": {"hosts": ["checkout"], "http": [{"name": "primary", "route": [
                    {"destination": {"host": "checkout-stable"}, "weight": 100},
                    {"destination": {"host": "checkout-canary"}, "weight": 0}]}]}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "checkout-canary", "namespace": "shop"},
                "spec": {"selector": {"app": "checkout"}}}),
        ]
    }

    fn index(docs: &[serde_json::Value]) -> Index {
        Index::from_objects(
            docs.iter()
                .map(|d| Object::parse(d, "default").unwrap().unwrap()),
        )
    }

    #[test]
    fn the_tally_counts_lint_rules_by_rule_and_severity() {
        let t = tally(&index(&objects()));
        assert_eq!(
            t.get(&(RuleId::HttpRouteNotFound, Severity::Deny)),
            Some(&1)
        );
        assert_eq!(
            t.get(&(RuleId::ReferenceMissing, Severity::Warn)),
            Some(&1),
            "{t:?}"
        );
        let mut fixed = objects();
        fixed[0]["spec"]["strategy"]["canary"]["trafficRouting"]["istio"]["virtualService"]
            ["routes"] = json!(["primary"]);
        let t = tally(&index(&fixed));
        assert_eq!(t.get(&(RuleId::HttpRouteNotFound, Severity::Deny)), None);
    }

    #[test]
    fn the_report_is_lints_with_api_paths() {
        let listed: Vec<(String, serde_json::Value)> = objects()
            .into_iter()
            .map(|d| {
                let ar = match d["kind"].as_str() {
                    Some("Rollout") => ApiResource::from_gvk_with_plural(
                        &kube::api::GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout"),
                        "rollouts",
                    ),
                    Some("Service") => ApiResource::from_gvk_with_plural(
                        &kube::api::GroupVersionKind::gvk("", "v1", "Service"),
                        "services",
                    ),
                    _ => ApiResource::from_gvk_with_plural(
                        &kube::api::GroupVersionKind::gvk(
                            "networking.istio.io",
                            "v1beta1",
                            "VirtualService",
                        ),
                        "virtualservices",
                    ),
                };
                let name = d["metadata"]["name"].as_str().unwrap().to_string();
                (api_path(&ar, "shop", &name), d)
            })
            .collect();
        let r = report(&listed, "https://127.0.0.1:6443/");
        assert_eq!(r.exit_code(), 1);
        let f = r
            .findings
            .iter()
            .find(|f| f.rule == RuleId::HttpRouteNotFound)
            .expect("the wrong route is found");
        assert_eq!(
            f.file,
            "/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/checkout"
        );
        assert_eq!(f.document, 0);
        let text = r.to_text();
        assert!(
            text.contains("/apis/argoproj.io/v1alpha1/namespaces/shop/rollouts/checkout: Rollout shop/checkout: deny [http-route-not-found]"),
            "{text}"
        );
        assert!(
            text.ends_with("3 objects from https://127.0.0.1:6443/: 1 deny, 1 warn\n"),
            "{text}"
        );
        assert_eq!(
            api_path(&listed_ar_service(), "shop", "s"),
            "/api/v1/namespaces/shop/services/s"
        );
    }

    fn listed_ar_service() -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("", "v1", "Service"),
            "services",
        )
    }

    #[tokio::test]
    async fn the_gauge_follows_the_index() {
        let shared = SharedIndex::new(index(&objects()));
        let metrics = Arc::new(Metrics::new());
        let task = tokio::spawn(keep_counting(
            shared.clone(),
            metrics.clone(),
            Duration::from_millis(10),
        ));
        let status = crate::source::SourceStatus::new(Duration::from_secs(60));
        let line = r#"rollout_guard_findings{rule="http-route-not-found",severity="deny"} "#;
        let value = |m: &Metrics| {
            m.encode(&Index::new(), &status)
                .lines()
                .find_map(|l| l.strip_prefix(line).map(str::to_string))
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while value(&metrics).as_deref() != Some("1") {
            assert!(tokio::time::Instant::now() < deadline, "never counted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut fixed = objects();
        fixed[0]["spec"]["strategy"]["canary"]["trafficRouting"]["istio"]["virtualService"]
            ["routes"] = json!(["primary"]);
        shared.replace(index(&fixed));
        while value(&metrics).as_deref() != Some("0") {
            assert!(tokio::time::Instant::now() < deadline, "never recounted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
    }
}
