//! `rollout-guard explain` on fixtures: the library's answer, and the command's output and exit
//! codes.

use rollout_guard::explain::{explain, Explanation, World};
use rollout_guard::lint::{items, read_inputs};
use serde_json::{json, Value};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_rollout-guard");

fn docs(paths: &[&str]) -> Vec<Value> {
    let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
    let (inputs, errors) = read_inputs(&paths, &mut std::io::empty());
    assert!(errors.is_empty(), "{errors:?}");
    inputs
        .iter()
        .flat_map(|i| items(i).1)
        .map(|(_, item)| item.expect("readable YAML"))
        .collect()
}

fn explained(docs: Vec<Value>, target: &str) -> (Explanation, Value) {
    let (ns, name) = target.split_once('/').unwrap();
    let e = explain(&World::from_docs(docs), ns, name, "fixtures").expect("explained");
    let json = serde_json::to_value(&e).unwrap();
    (e, json)
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn a_host_level_canary_mid_rollout() {
    let (e, j) = explained(docs(&["examples/manifests"]), "shop/checkout");
    assert_eq!(j["rollout"]["step"], "2/4");
    assert_eq!(j["rollout"]["stepWeight"], 20);
    assert_eq!(
        j["rollout"]["statusWeights"],
        json!({"canary": 20, "stable": 80})
    );
    let vs = &j["virtualServices"][0];
    assert_eq!(
        (vs["name"].as_str(), vs["found"].as_bool()),
        (Some("checkout"), Some(true))
    );
    let route = &vs["routes"][0];
    assert_eq!(
        (route["section"].as_str(), route["name"].as_str()),
        (Some("http"), Some("primary"))
    );
    assert_eq!(
        route["destinations"],
        json!([
            {"host": "checkout-stable", "subset": null, "role": "stable", "weight": 80, "statusWeight": 80, "stepWeight": 80},
            {"host": "checkout-canary", "subset": null, "role": "canary", "weight": 20, "statusWeight": 20, "stepWeight": 20},
        ])
    );
    let canary = &j["services"][0];
    assert_eq!(canary["role"], "canary");
    assert_eq!(
        canary["selector"]["rollouts-pod-template-hash"],
        "7c5d9f6b8d"
    );
    assert_eq!(canary["desiredHash"], "7c5d9f6b8d");
    // What the drift guard keeps on a re-apply of Git's version, in its own words.
    let kept: Vec<&str> = e
        .kept
        .iter()
        .flat_map(|k| k.kept.iter().map(String::as_str))
        .collect();
    assert!(
        kept.contains(
            &"rollout-guard: kept weights stable=80 canary=20 on VirtualService shop/checkout route \"primary\" \
              (Rollout shop/checkout, step 2/4); request had 100/0"
        ),
        "{kept:#?}"
    );
    assert!(
        kept.iter()
            .any(|k| k.starts_with("rollout-guard: kept selector rollouts-pod-template-hash=5f8b7c6d9a on Service shop/checkout-stable")),
        "{kept:#?}"
    );
    let text = e.to_text();
    assert!(
        text.contains("    checkout-canary: canary weight 20 (status 20, step 20)\n"),
        "{text}"
    );
}

#[test]
fn a_subset_level_canary_shows_the_destinationrule() {
    let (e, j) = explained(docs(&["examples/manifests"]), "shop/payments");
    assert_eq!(j["services"], json!([]), "subset mode: no Services");
    let dr = &j["destinationRule"];
    assert_eq!(dr["found"], true);
    assert_eq!(
        dr["subsets"],
        json!([
            {"role": "canary", "name": "canary", "found": true, "hash": "6b7d8c9f5e", "desiredHash": "6b7d8c9f5e"},
            {"role": "stable", "name": "stable", "found": true, "hash": "84c6d5f7b9", "desiredHash": "84c6d5f7b9"},
        ])
    );
    let kept: Vec<&str> = e
        .kept
        .iter()
        .flat_map(|k| k.kept.iter().map(String::as_str))
        .collect();
    assert!(
        kept.iter().any(|k| k.contains("kept rollouts-pod-template-hash=6b7d8c9f5e on DestinationRule shop/payments subset \"canary\"")),
        "{kept:#?}"
    );
}

#[test]
fn a_missing_virtualservice_is_shown_as_not_found() {
    let without_vs: Vec<Value> = docs(&["examples/manifests/checkout-host-level.yaml"])
        .into_iter()
        .filter(|d| d["kind"] != "VirtualService")
        .collect();
    let (e, j) = explained(without_vs, "shop/checkout");
    let vs = &j["virtualServices"][0];
    assert_eq!(
        (vs["found"].as_bool(), vs["routes"].as_array().map(Vec::len)),
        (Some(false), Some(0))
    );
    assert!(vs["problems"][0]
        .as_str()
        .unwrap()
        .starts_with("[reference-missing] VirtualService shop/checkout does not exist"));
    assert!(
        e.kept
            .iter()
            .all(|k| !k.object.starts_with("VirtualService")),
        "{:?}",
        e.kept
    );
    assert!(e
        .to_text()
        .contains("VirtualService shop/checkout: not found\n"));
}

#[test]
fn managed_routes_and_tls_routes() {
    let rollout = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}},
            "strategy": {"canary": {"canaryService": "web-canary", "stableService": "web-stable",
            "trafficRouting": {"managedRoutes": [{"name": "hdr"}],
                "istio": {"virtualService": {"name": "web", "routes": ["primary"]}}},
            "steps": [{"setWeight": 30}, {"setHeaderRoute": {"name": "hdr", "match": [{"headerName": "x", "headerValue": {"exact": "1"}}]}}, {"pause": {}}]}}},
        "status": {"currentStepIndex": 2, "canary": {"weights": {"canary": {"weight": 30}, "stable": {"weight": 70}}}}});
    let vs = json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"hosts": ["web"], "http": [
            {"name": "hdr", "match": [{"headers": {"x": {"exact": "1"}}}], "route": [{"destination": {"host": "web-canary"}, "weight": 100}]},
            {"name": "primary", "route": [{"destination": {"host": "web-stable"}, "weight": 70}, {"destination": {"host": "web-canary"}, "weight": 30}]}]}});
    let (e, j) = explained(vec![rollout, vs], "shop/web");
    assert_eq!(j["rollout"]["step"], "3/3");
    assert_eq!(
        j["rollout"]["stepWeight"], 30,
        "the last setWeight up to the current step"
    );
    assert_eq!(
        j["virtualServices"][0]["managedRoutes"],
        json!([{"name": "hdr", "present": true}])
    );
    assert_eq!(j["virtualServices"][0]["routes"][0]["index"], 1);
    let kept: Vec<&str> = e
        .kept
        .iter()
        .flat_map(|k| k.kept.iter().map(String::as_str))
        .collect();
    assert!(
        kept.iter()
            .any(|k| k.contains("kept managed header route \"hdr\"")),
        "{kept:#?}"
    );
    assert!(
        kept.iter()
            .any(|k| k.contains("kept weights stable=70 canary=30")),
        "{kept:#?}"
    );

    let (_, j) = explained(
        docs(&["tests/fixtures/argo-rollouts/host-level-http-and-tls.yaml"]),
        "default/istio-host-split",
    );
    let routes = &j["virtualServices"][0]["routes"];
    assert_eq!(routes[1]["section"], "tls");
    assert_eq!(routes[1]["name"], "port 3000 sni [istio-host-split]");
    assert_eq!(
        j["rollout"]["step"],
        Value::Null,
        "no status: the steps have not started"
    );
}

#[test]
fn the_command_explains_and_refuses_what_it_cannot() {
    let (code, out, _) = run(&[
        "explain",
        "shop/checkout",
        "--manifests",
        "examples/manifests",
        "--output",
        "json",
    ]);
    assert_eq!(code, 0);
    let j: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(j["rollout"]["name"], "checkout");

    let (code, out, err) = run(&["explain", "shop/nope", "--manifests", "examples/manifests"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert_eq!(
        err,
        "rollout-guard explain: expected a Rollout shop/nope in examples/manifests, found none; Rollouts there: \
         shop/checkout, shop/payments\n"
    );
    let (code, _, err) = run(&["explain", "checkout", "--manifests", "examples/manifests"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("expected NAMESPACE/ROLLOUT, found \"checkout\""),
        "{err}"
    );
    let (code, _, err) = run(&[
        "explain",
        "shop/checkout",
        "--manifests",
        "no/such/dir.yaml",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("nothing could be read"), "{err}");
}
