//! Each case applies the returned JSONPatch to the request object and compares the whole result
//! with the expected object.

use super::testing::apply;
use super::{restore_values, Mutation};
use crate::index::Index;
use crate::model::{Kind, Object};
use serde_json::{json, Value};

fn parse(doc: &Value) -> Object {
    Object::parse(doc, "default")
        .expect("parses")
        .expect("known kind")
}

fn world(docs: &[Value]) -> Index {
    Index::from_objects(docs.iter().map(parse))
}

fn rollout(canary: Value, status: Value) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "checkout", "namespace": "shop"},
        "spec": {"template": {"metadata": {"labels": {"app": "checkout"}}}, "strategy": {"canary": canary}},
        "status": status
    })
}

fn steps() -> Value {
    json!([{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}])
}

fn host_canary(vs_ref: Value) -> Value {
    json!({"canaryService": "checkout-canary", "stableService": "checkout-stable",
        "trafficRouting": {"istio": {"virtualService": vs_ref}}, "steps": steps()})
}

/// Step 2/4, canary weight 20 recorded by the controller.
fn status(canary: i64) -> Value {
    json!({"currentStepIndex": 1, "stableRS": "s1", "currentPodHash": "c2",
        "canary": {"weights": {"canary": {"weight": canary, "podTemplateHash": "c2", "serviceName": "checkout-canary"},
                               "stable": {"weight": 100 - canary, "podTemplateHash": "s1", "serviceName": "checkout-stable"}}}})
}

fn vs(spec: Value) -> Value {
    json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
        "metadata": {"name": "checkout", "namespace": "shop"}, "spec": spec})
}

fn split(stable: &str, canary: &str, s: i64, c: i64) -> Value {
    json!([{"destination": {"host": stable}, "weight": s}, {"destination": {"host": canary}, "weight": c}])
}

fn http(name: &str, s: i64, c: i64) -> Value {
    json!({"name": name, "route": split("checkout-stable", "checkout-canary", s, c)})
}

fn run(kind: Kind, request: &Value, live: Option<&Value>, index: &Index) -> Mutation {
    restore_values(kind, "shop", request, live, index)
}

/// The request, with the patch applied, must equal `expected`; a second review of the patched
/// object must yield no patch.
fn assert_restores(
    kind: Kind,
    request: &Value,
    live: Option<&Value>,
    index: &Index,
    expected: &Value,
) -> Mutation {
    let m = run(kind, request, live, index);
    let patched = apply(request, &m.patch);
    assert_eq!(&patched, expected, "patch {:?}", m.patch);
    let again = run(kind, &patched, live, index);
    assert!(again.patch.is_empty(), "not idempotent: {:?}", again.patch);
    for w in &m.warnings {
        assert!(w.len() < 256, "warning too long: {w}");
    }
    m
}

#[test]
fn http_weights_are_restored_with_the_designed_warning() {
    let index = world(&[rollout(
        host_canary(json!({"name": "checkout", "routes": ["primary"]})),
        status(20),
    )]);
    let live = vs(json!({"hosts": ["checkout"], "http": [http("primary", 80, 20)]}));
    let request = vs(json!({"hosts": ["checkout"], "http": [http("primary", 100, 0)]}));
    let m = assert_restores(Kind::VirtualService, &request, Some(&live), &index, &live);
    assert_eq!(
        m.warnings,
        ["rollout-guard: kept weights stable=80 canary=20 on VirtualService shop/checkout route \"primary\" (Rollout shop/checkout, step 2/4); request had 100/0"]
    );
    assert_eq!(m.restores, 1);
    assert_eq!(m.patch.len(), 2, "only the two weights: {:?}", m.patch);
}

#[test]
fn in_the_istio_primary_weights_are_restored_from_a_remote_clusters_rollout() {
    let east: std::sync::Arc<str> = std::sync::Arc::from("east");
    let remote = parse(&rollout(
        host_canary(json!({"name": "checkout", "routes": ["primary"]})),
        status(20),
    ))
    .in_cluster(&east);
    let index = Index::from_objects([remote]);
    let live = vs(json!({"hosts": ["checkout"], "http": [http("primary", 80, 20)]}));
    let request = vs(json!({"hosts": ["checkout"], "http": [http("primary", 100, 0)]}));
    let m = assert_restores(Kind::VirtualService, &request, Some(&live), &index, &live);
    assert_eq!(m.restores, 1, "{:?}", m.warnings);
}

#[test]
fn tls_and_tcp_routes_listed_and_unlisted() {
    let tls = |s, c| json!({"match": [{"port": 443, "sniHosts": ["checkout"]}], "route": split("checkout-stable", "checkout-canary", s, c)});
    let tcp = |s, c| json!({"match": [{"port": 3000}], "route": split("checkout-stable", "checkout-canary", s, c)});
    let live = vs(
        json!({"hosts": ["checkout"], "http": [http("primary", 80, 20)], "tls": [tls(80, 20)], "tcp": [tcp(80, 20)]}),
    );
    let request = vs(
        json!({"hosts": ["checkout"], "http": [http("primary", 100, 0)], "tls": [tls(100, 0)], "tcp": [tcp(100, 0)]}),
    );
    // Unlisted: tls[0] and tcp[0] are managed when the Rollout omits tlsRoutes/tcpRoutes.
    let unlisted = world(&[rollout(
        host_canary(json!({"name": "checkout", "routes": ["primary"]})),
        status(20),
    )]);
    let m = assert_restores(
        Kind::VirtualService,
        &request,
        Some(&live),
        &unlisted,
        &live,
    );
    assert_eq!(m.restores, 3);
    // Listed by port and SNI set / port.
    let listed = world(&[rollout(
        host_canary(json!({"name": "checkout", "routes": ["primary"],
            "tlsRoutes": [{"port": 443, "sniHosts": ["checkout"]}], "tcpRoutes": [{"port": 3000}]})),
        status(20),
    )]);
    assert_restores(Kind::VirtualService, &request, Some(&live), &listed, &live);
}

#[test]
fn subset_level_weights() {
    let canary = json!({"trafficRouting": {"istio": {"virtualService": {"name": "checkout", "routes": ["primary"]},
        "destinationRule": {"name": "checkout", "canarySubsetName": "canary", "stableSubsetName": "stable"}}}, "steps": steps()});
    let index = world(&[rollout(canary, status(20))]);
    let route = |s, c| {
        json!({"name": "primary", "route": [
        {"destination": {"host": "checkout", "subset": "stable"}, "weight": s},
        {"destination": {"host": "checkout", "subset": "canary"}, "weight": c}]})
    };
    let live = vs(json!({"hosts": ["checkout"], "http": [route(80, 20)]}));
    let request = vs(json!({"hosts": ["checkout"], "http": [route(100, 0)]}));
    assert_restores(Kind::VirtualService, &request, Some(&live), &index, &live);
}

#[test]
fn ping_pong_weights() {
    let canary = json!({"pingPong": {"pingService": "ping", "pongService": "pong"},
        "trafficRouting": {"istio": {"virtualService": {"name": "checkout"}}}, "steps": steps()});
    let mut st = status(20);
    st["canary"]["stablePingPong"] = json!("ping");
    let index = world(&[rollout(canary, st)]);
    // stable is ping, canary is pong.
    let live =
        vs(json!({"hosts": ["checkout"], "http": [{"route": split("ping", "pong", 80, 20)}]}));
    let request =
        vs(json!({"hosts": ["checkout"], "http": [{"route": split("ping", "pong", 100, 0)}]}));
    let m = assert_restores(Kind::VirtualService, &request, Some(&live), &index, &live);
    assert!(m.warnings[0].contains("route http[0]"), "{:?}", m.warnings);
}

#[test]
fn several_virtualservices_per_rollout() {
    let canary = json!({"canaryService": "checkout-canary", "stableService": "checkout-stable",
        "trafficRouting": {"istio": {"virtualServices": [
            {"name": "checkout", "routes": ["primary"]}, {"name": "checkout-internal", "routes": ["internal"]}]}},
        "steps": steps()});
    let index = world(&[rollout(canary, status(20))]);
    let live = vs(json!({"hosts": ["checkout"], "http": [http("primary", 80, 20)]}));
    let request = vs(json!({"hosts": ["checkout"], "http": [http("primary", 100, 0)]}));
    assert_restores(Kind::VirtualService, &request, Some(&live), &index, &live);
    let mut live2 = vs(json!({"hosts": ["internal"], "http": [http("internal", 80, 20)]}));
    live2["metadata"]["name"] = json!("checkout-internal");
    let mut request2 = vs(json!({"hosts": ["internal"], "http": [http("internal", 100, 0)]}));
    request2["metadata"]["name"] = json!("checkout-internal");
    assert_restores(
        Kind::VirtualService,
        &request2,
        Some(&live2),
        &index,
        &live2,
    );
}

#[test]
fn experiment_destinations_are_kept() {
    let mut st = status(10);
    st["canary"]["weights"]["stable"]["weight"] = json!(70);
    st["canary"]["weights"]["additional"] =
        json!([{"weight": 20, "serviceName": "checkout-exp", "podTemplateHash": "e3"}]);
    let index = world(&[rollout(
        host_canary(json!({"name": "checkout", "routes": ["primary"]})),
        st,
    )]);
    let live = vs(
        json!({"hosts": ["checkout"], "http": [{"name": "primary", "route": [
        {"destination": {"host": "checkout-stable"}, "weight": 70},
        {"destination": {"host": "checkout-canary"}, "weight": 10},
        {"destination": {"host": "checkout-exp"}, "weight": 20}]}]}),
    );
    let request = vs(json!({"hosts": ["checkout"], "http": [http("primary", 100, 0)]}));
    let m = assert_restores(Kind::VirtualService, &request, Some(&live), &index, &live);
    assert!(
        m.warnings[0].contains("stable=70 canary=10 checkout-exp=20"),
        "{:?}",
        m.warnings
    );
}

#[test]
fn the_live_object_wins_over_the_status_with_a_warning() {
    // The controller has written 50 to the VirtualService but not yet to the status (20).
    let index = world(&[rollout(
        host_canary(json!({"name": "checkout", "routes": ["primary"]})),
        status(20),
    )]);
    let live = vs(json!({"hosts": ["checkout"], "http": [http("primary", 50, 50)]}));
    let request = vs(json!({"hosts": ["checkout"], "http": [http("primary", 100, 0)]}));
    let m = assert_restores(Kind::VirtualService, &request, Some(&live), &index, &live);
    assert_eq!(m.status_disagreements, 1);
    assert!(
        m.warnings
            .iter()
            .any(|w| w.contains("differs from status.canary.weights (20)")),
        "{:?}",
        m.warnings
    );
}

#[test]
fn dropped_header_and_mirror_routes_are_put_back_in_place() {
    let mut canary = host_canary(json!({"name": "checkout", "routes": ["primary"]}));
    canary["trafficRouting"]["managedRoutes"] = json!([{"name": "header"}, {"name": "mirror"}]);
    let index = world(&[rollout(canary, status(20))]);
    let header = json!({"name": "header", "match": [{"headers": {"x-canary": {"exact": "1"}}}],
        "route": [{"destination": {"host": "checkout-canary"}, "weight": 100}]});
    let mirror = json!({"name": "mirror", "match": [{"method": {"exact": "GET"}}],
        "route": split("checkout-stable", "checkout-canary", 80, 20), "mirror": {"host": "checkout-canary"},
        "mirrorPercentage": {"value": 50.0}});
    let live = vs(
        json!({"hosts": ["checkout"], "http": [header, mirror, http("primary", 80, 20), http("other", 100, 0)]}),
    );
    let request = vs(
        json!({"hosts": ["checkout"], "http": [http("primary", 100, 0), http("other", 100, 0)]}),
    );
    let m = assert_restores(Kind::VirtualService, &request, Some(&live), &index, &live);
    assert_eq!(m.restores, 3, "{:?}", m.warnings);
    assert!(m
        .warnings
        .iter()
        .any(|w| w.contains("kept managed header route \"header\"")));
    assert!(m
        .warnings
        .iter()
        .any(|w| w.contains("kept managed mirror route \"mirror\"")));
}

#[test]
fn create_takes_weights_from_the_status() {
    let index = world(&[rollout(
        host_canary(json!({"name": "checkout", "routes": ["primary"]})),
        status(20),
    )]);
    let request = vs(json!({"hosts": ["checkout"], "http": [http("primary", 100, 0)]}));
    let expected = vs(json!({"hosts": ["checkout"], "http": [http("primary", 80, 20)]}));
    let m = assert_restores(Kind::VirtualService, &request, None, &index, &expected);
    assert!(
        m.warnings[0].contains("from its status"),
        "{:?}",
        m.warnings
    );
}

/// Found while hardening (issue 7): `100 - canary - additional` on a status read leniently
/// overflowed (a panic in debug builds, a wrapped-around weight in release builds).
#[test]
fn create_with_out_of_range_status_weights_is_left_alone_with_a_reason() {
    let request = vs(json!({"hosts": ["checkout"], "http": [http("primary", 100, 0)]}));
    for (canary, additional) in [
        (json!(i64::MIN), json!([])),
        (
            json!(20),
            json!([{"weight": i64::MAX, "serviceName": "x"}, {"weight": i64::MAX, "serviceName": "y"}]),
        ),
        (json!(-5), json!([])),
        (json!(150), json!([])),
        (json!(60), json!([{"weight": 50, "serviceName": "x"}])),
    ] {
        let mut st = status(20);
        st["canary"]["weights"]["canary"]["weight"] = canary.clone();
        st["canary"]["weights"]["additional"] = additional.clone();
        let index = world(&[rollout(
            host_canary(json!({"name": "checkout", "routes": ["primary"]})),
            st,
        )]);
        let m = run(Kind::VirtualService, &request, None, &index);
        assert!(m.patch.is_empty(), "{canary} {additional}: {:?}", m.patch);
        assert!(
            m.warnings[0].contains("out of range"),
            "{canary} {additional}: {:?}",
            m.warnings
        );
    }
}

#[test]
fn create_without_a_record_is_left_alone_with_a_reason() {
    let request = vs(json!({"hosts": ["checkout"], "http": [http("primary", 100, 0)]}));
    let no_weights = world(&[rollout(
        host_canary(json!({"name": "checkout", "routes": ["primary"]})),
        json!({"currentStepIndex": 1}),
    )]);
    let m = run(Kind::VirtualService, &request, None, &no_weights);
    assert!(m.patch.is_empty());
    assert!(
        m.warnings[0].contains("no status.canary.weights"),
        "{:?}",
        m.warnings
    );
    let bad_status = world(&[rollout(
        host_canary(json!({"name": "checkout", "routes": ["primary"]})),
        json!({"currentStepIndex": "two"}),
    )]);
    let m = run(Kind::VirtualService, &request, None, &bad_status);
    assert!(m.patch.is_empty());
    assert!(m.warnings[0].contains("cannot be read"), "{:?}", m.warnings);
    // No Rollout references it: nothing to say.
    let m = run(Kind::VirtualService, &request, None, &Index::new());
    assert_eq!(m, Mutation::default());
}

#[test]
fn what_no_rollout_manages_is_never_touched() {
    let index = world(&[rollout(
        host_canary(json!({"name": "checkout", "routes": ["primary"]})),
        status(20),
    )]);
    let live = vs(json!({"hosts": ["checkout"], "http": [
        {"name": "primary", "route": [
            {"destination": {"host": "checkout-stable"}, "weight": 70},
            {"destination": {"host": "checkout-canary"}, "weight": 20},
            {"destination": {"host": "legacy"}, "weight": 10}]},
        http("other", 80, 20)], "gateways": ["mesh"]}));
    let request = vs(
        json!({"hosts": ["checkout", "checkout.example.com"], "http": [
        {"name": "primary", "timeout": "5s", "route": [
            {"destination": {"host": "checkout-stable"}, "weight": 100},
            {"destination": {"host": "checkout-canary"}, "weight": 0},
            {"destination": {"host": "legacy"}, "weight": 0}]},
        http("other", 100, 0)]}),
    );
    let mut expected = request.clone();
    expected["spec"]["http"][0]["route"][0]["weight"] = json!(70);
    expected["spec"]["http"][0]["route"][1]["weight"] = json!(20);
    assert_restores(
        Kind::VirtualService,
        &request,
        Some(&live),
        &index,
        &expected,
    );
}

#[test]
fn a_route_claimed_by_two_rollouts_is_not_mutated() {
    let mut second = rollout(
        host_canary(json!({"name": "checkout", "routes": ["primary"]})),
        status(20),
    );
    second["metadata"]["name"] = json!("checkout-v2");
    let index = world(&[
        rollout(
            host_canary(json!({"name": "checkout", "routes": ["primary"]})),
            status(20),
        ),
        second,
    ]);
    let live = vs(json!({"hosts": ["checkout"], "http": [http("primary", 80, 20)]}));
    let request = vs(json!({"hosts": ["checkout"], "http": [http("primary", 100, 0)]}));
    let m = run(Kind::VirtualService, &request, Some(&live), &index);
    assert!(m.patch.is_empty());
    assert!(
        m.warnings[0].contains("claimed by Rollouts shop/checkout and shop/checkout-v2"),
        "{:?}",
        m.warnings
    );
}

#[test]
fn skip_annotations() {
    let live = vs(json!({"hosts": ["checkout"], "http": [http("primary", 80, 20)]}));
    let mut request = vs(json!({"hosts": ["checkout"], "http": [http("primary", 100, 0)]}));
    let index = world(&[rollout(
        host_canary(json!({"name": "checkout", "routes": ["primary"]})),
        status(20),
    )]);
    request["metadata"]["annotations"] = json!({"rollout-guard.io/skip": "true"});
    assert!(run(Kind::VirtualService, &request, Some(&live), &index)
        .patch
        .is_empty());
    let mut skipped = rollout(
        host_canary(json!({"name": "checkout", "routes": ["primary"]})),
        status(20),
    );
    skipped["metadata"]["annotations"] = json!({"rollout-guard.io/skip": "true"});
    let request = vs(json!({"hosts": ["checkout"], "http": [http("primary", 100, 0)]}));
    let m = run(
        Kind::VirtualService,
        &request,
        Some(&live),
        &world(&[skipped]),
    );
    assert!(
        m.patch.is_empty() && m.warnings[0].contains("rollout-guard.io/skip"),
        "{m:?}"
    );
}

#[test]
fn no_difference_no_patch() {
    let index = world(&[rollout(
        host_canary(json!({"name": "checkout", "routes": ["primary"]})),
        status(20),
    )]);
    let live = vs(json!({"hosts": ["checkout"], "http": [http("primary", 80, 20)]}));
    assert_eq!(
        run(Kind::VirtualService, &live, Some(&live), &index),
        Mutation::default()
    );
}

fn dr(subsets: Value, annotated: bool) -> Value {
    let mut d = json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
        "metadata": {"name": "checkout", "namespace": "shop"}, "spec": {"host": "checkout", "subsets": subsets}});
    if annotated {
        d["metadata"]["annotations"] =
            json!({"argo-rollouts.argoproj.io/managed-by-rollouts": "checkout"});
    }
    d
}

fn subset_rollout(st: Value) -> Value {
    rollout(
        json!({"trafficRouting": {"istio": {"virtualService": {"name": "checkout"},
            "destinationRule": {"name": "checkout", "canarySubsetName": "canary", "stableSubsetName": "stable"}}},
            "steps": steps()}),
        st,
    )
}

#[test]
fn destinationrule_hashes_annotation_and_experiment_subsets() {
    let mut st = status(20);
    st["canary"]["weights"]["additional"] =
        json!([{"weight": 10, "serviceName": "checkout-exp", "podTemplateHash": "e3"}]);
    let index = world(&[subset_rollout(st)]);
    let live = dr(
        json!([{"name": "stable", "labels": {"app": "checkout", "rollouts-pod-template-hash": "s1"}},
               {"name": "canary", "labels": {"app": "checkout", "rollouts-pod-template-hash": "c2"}},
               {"name": "checkout-exp", "labels": {"rollouts-pod-template-hash": "e3"}}]),
        true,
    );
    let request = dr(
        json!([{"name": "stable", "labels": {"app": "checkout"}}, {"name": "canary"}]),
        false,
    );
    let expected = dr(
        json!([{"name": "stable", "labels": {"app": "checkout", "rollouts-pod-template-hash": "s1"}},
               {"name": "canary", "labels": {"rollouts-pod-template-hash": "c2"}},
               {"name": "checkout-exp", "labels": {"rollouts-pod-template-hash": "e3"}}]),
        true,
    );
    let m = assert_restores(
        Kind::DestinationRule,
        &request,
        Some(&live),
        &index,
        &expected,
    );
    assert_eq!(m.restores, 4, "{:?}", m.warnings);
}

#[test]
fn destinationrule_create_takes_hashes_from_the_status() {
    let index = world(&[subset_rollout(status(20))]);
    let request = dr(json!([{"name": "stable"}, {"name": "canary"}]), false);
    let expected = dr(
        json!([{"name": "stable", "labels": {"rollouts-pod-template-hash": "s1"}},
               {"name": "canary", "labels": {"rollouts-pod-template-hash": "c2"}}]),
        true,
    );
    assert_restores(Kind::DestinationRule, &request, None, &index, &expected);
}

fn svc(name: &str, selector: Value, annotated: bool) -> Value {
    let mut s = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "shop"},
        "spec": {"selector": selector, "ports": [{"port": 80}]}});
    if annotated {
        s["metadata"]["annotations"] =
            json!({"argo-rollouts.argoproj.io/managed-by-rollouts": "checkout"});
    }
    s
}

#[test]
fn service_selector_and_annotation() {
    let index = world(&[rollout(
        host_canary(json!({"name": "checkout"})),
        status(20),
    )]);
    let live = svc(
        "checkout-canary",
        json!({"app": "checkout", "rollouts-pod-template-hash": "c2"}),
        true,
    );
    let request = svc("checkout-canary", json!({"app": "checkout"}), false);
    assert_restores(Kind::Service, &request, Some(&live), &index, &live);
    // CREATE: from the status, stable Service gets the stable hash.
    let request = svc("checkout-stable", json!({"app": "checkout"}), false);
    let expected = svc(
        "checkout-stable",
        json!({"app": "checkout", "rollouts-pod-template-hash": "s1"}),
        true,
    );
    assert_restores(Kind::Service, &request, None, &index, &expected);
}

#[test]
fn never_a_hash_on_a_subset_mode_service() {
    let index = world(&[subset_rollout(status(20))]);
    let request = svc("checkout", json!({"app": "checkout"}), false);
    let live = svc(
        "checkout",
        json!({"app": "checkout", "rollouts-pod-template-hash": "x"}),
        false,
    );
    assert_eq!(
        run(Kind::Service, &request, Some(&live), &index),
        Mutation::default()
    );
    assert_eq!(
        run(Kind::Service, &request, None, &index),
        Mutation::default()
    );
}

#[test]
fn unknown_owner_is_a_warning() {
    let request = dr(json!([{"name": "stable"}]), true);
    let m = run(Kind::DestinationRule, &request, None, &Index::new());
    assert!(m.patch.is_empty());
    assert!(
        m.warnings[0]
            .contains("Rollout shop/checkout named by its managed-by annotation is not known"),
        "{:?}",
        m.warnings
    );
}

#[test]
fn step_text() {
    let r = |st: Value, steps: Value| {
        let mut doc = rollout(host_canary(json!({"name": "checkout"})), st);
        doc["spec"]["strategy"]["canary"]["steps"] = steps;
        match parse(&doc) {
            Object::Rollout(r) => super::owner(&r),
            _ => unreachable!(),
        }
    };
    assert_eq!(r(json!({}), steps()), "(Rollout shop/checkout, step 1/4)");
    assert_eq!(
        r(json!({"currentStepIndex": 4}), steps()),
        "(Rollout shop/checkout, step completed)"
    );
    assert_eq!(r(json!({}), json!([])), "(Rollout shop/checkout)");
}

/// The managed-by annotation key has a `/`: its pointer is escaped (`~1`), and the patch applied
/// from its JSON text reaches that key, not a nested `argo-rollouts.argoproj.io` object.
#[test]
fn escaped_pointers_for_annotation_and_label_keys() {
    let index = world(&[subset_rollout(status(20))]);
    let live = dr(
        json!([{"name": "stable", "labels": {"rollouts-pod-template-hash": "s1"}},
               {"name": "canary", "labels": {"rollouts-pod-template-hash": "c2"}}]),
        true,
    );
    let mut request = dr(
        json!([{"name": "stable", "labels": {"rollouts-pod-template-hash": "old"}}, {"name": "canary", "labels": {}}]),
        false,
    );
    request["metadata"]["annotations"] = json!({"team": "shop"});
    let mut expected = live.clone();
    expected["metadata"]["annotations"]["team"] = json!("shop");
    let m = assert_restores(
        Kind::DestinationRule,
        &request,
        Some(&live),
        &index,
        &expected,
    );
    let ops: Vec<Value> = m
        .patch
        .iter()
        .map(|op| serde_json::to_value(op).unwrap())
        .collect();
    for op in [
        json!({"op": "replace", "path": "/spec/subsets/0/labels/rollouts-pod-template-hash", "value": "s1"}),
        json!({"op": "add", "path": "/spec/subsets/1/labels/rollouts-pod-template-hash", "value": "c2"}),
        json!({"op": "add", "path": "/metadata/annotations/argo-rollouts.argoproj.io~1managed-by-rollouts", "value": "checkout"}),
    ] {
        assert!(ops.contains(&op), "{op} not in {ops:?}");
    }
    assert_eq!(ops.len(), 3, "{ops:?}");
}
