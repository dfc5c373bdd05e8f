//! AdmissionReview parsing, decision and patch building on arbitrary bodies, against an index
//! with a managed canary, or against the state read from YAML that follows the body after a NUL
//! byte (`body \0 state.yaml`: a JSON body never holds a raw NUL). Invariants: never a panic; a
//! 200 answer is a well-formed AdmissionReview with the request's uid; a patch applies to the
//! request object, and reviewing the patched object again asks for no further change.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollout_guard::admission::{handle, Context, Policy, Webhook};
use rollout_guard::index::Index;
use rollout_guard::lint::{load, Input};
use rollout_guard::model::Object;
use serde_json::{json, Value};
use std::sync::OnceLock;

fn canary() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let docs = [
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "checkout", "namespace": "shop"},
                "spec": {"template": {"metadata": {"labels": {"app": "checkout"}}}, "strategy": {"canary": {
                    "canaryService": "checkout-canary", "stableService": "checkout-stable",
                    "trafficRouting": {"managedRoutes": [{"name": "header"}], "istio": {
                        "virtualService": {"name": "checkout", "routes": ["primary"]},
                        "destinationRule": {"name": "checkout", "canarySubsetName": "canary", "stableSubsetName": "stable"}}},
                    "steps": [{"setWeight": 20}, {"pause": {}}]}}},
                "status": {"currentStepIndex": 1, "canary": {"weights": {"canary": {"weight": 20, "podTemplateHash": "c"},
                    "stable": {"weight": 80, "podTemplateHash": "s"}}}}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "checkout-canary", "namespace": "shop"},
                "spec": {"selector": {"app": "checkout"}}}),
            json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
                "metadata": {"name": "checkout", "namespace": "shop"},
                "spec": {"hosts": ["checkout"], "http": [{"name": "primary", "route": [
                    {"destination": {"host": "checkout-stable"}, "weight": 80},
                    {"destination": {"host": "checkout-canary"}, "weight": 20}]}]}}),
        ];
        Index::from_objects(docs.iter().filter_map(|d| Object::parse(d, "default").ok().flatten()))
    })
}

fn state(yaml: &[u8]) -> Index {
    let text = String::from_utf8_lossy(yaml).into_owned();
    let loaded = load(&Input {
        name: "state.yaml".into(),
        text,
    });
    Index::from_objects(loaded.objects.into_iter().map(|o| o.object))
}

fn check(data: &[u8], ctx: &Context<'_>) {
    for webhook in [Webhook::Validate, Webhook::Mutate] {
        let reply = handle(webhook, data, ctx);
        if reply.status != 200 {
            assert_eq!(reply.status, 400);
            continue;
        }
        let out: Value = serde_json::from_slice(&reply.body).expect("a 200 answer is JSON");
        assert!(out["response"]["allowed"].is_boolean());
        let Ok(request) = serde_json::from_slice::<Value>(data) else {
            // The typed reader skips the fields it does not use without validating them
            // (invalid UTF-8 there is not looked at); the answer must still carry a uid.
            assert!(out["response"]["uid"]
                .as_str()
                .is_some_and(|u| !u.is_empty()));
            continue;
        };
        assert_eq!(out["response"]["uid"], request["request"]["uid"]);
        if let Some(patch) = out["response"]["patch"].as_str() {
            use base64::Engine;
            assert_eq!(webhook, Webhook::Mutate, "only /mutate patches");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(patch)
                .expect("base64");
            let ops: Value = serde_json::from_slice(&bytes).expect("patch is JSON");
            let patch: json_patch::Patch = serde_json::from_value(ops).expect("a JSONPatch");
            let mut object = request["request"]["object"].clone();
            json_patch::patch(&mut object, &patch)
                .expect("the patch applies to the request object");
            // reinvocationPolicy: IfNeeded: the patched object must not be patched again.
            let mut again = request.clone();
            again["request"]["object"] = object;
            let body = serde_json::to_vec(&again).expect("serialises");
            let reply = handle(Webhook::Mutate, &body, ctx);
            let out: Value = serde_json::from_slice(&reply.body).expect("JSON");
            assert!(
                out["response"].get("patch").is_none(),
                "not idempotent: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let policy = Policy::default();
    match data.iter().position(|b| *b == 0) {
        None => check(
            data,
            &Context {
                index: canary(),
                policy: &policy,
                stale: false,
            },
        ),
        Some(at) => {
            let index = state(&data[at + 1..]);
            check(
                &data[..at],
                &Context {
                    index: &index,
                    policy: &policy,
                    stale: false,
                },
            );
        }
    }
});
