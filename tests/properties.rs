//! Properties: host matching keeps its algebra; the drift guard's patch is idempotent and never
//! touches a field it does not own.

use proptest::prelude::*;
use rollout_guard::drift;
use rollout_guard::index::Index;
use rollout_guard::model::host::{matches, subset_of};
use rollout_guard::model::{Kind, Object};
use serde_json::{json, Value};

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,6}(\\.[a-z]{1,6}){0,3}",
        "\\*(\\.[a-z]{1,6}){1,3}",
        "\\*[a-z-]{1,4}(\\.[a-z]{1,6}){0,2}",
        Just("*".to_string()),
    ]
}

proptest! {
    #[test]
    fn a_host_covers_itself(h in host()) {
        prop_assert!(subset_of(&h, &h));
        prop_assert!(matches(&h, &h));
    }

    #[test]
    fn star_covers_every_host(h in host()) {
        prop_assert!(subset_of(&h, "*"));
        prop_assert!(matches(&h, "*") && matches("*", &h));
    }

    #[test]
    fn matches_is_symmetric_and_contains_subset_of(a in host(), b in host()) {
        prop_assert_eq!(matches(&a, &b), matches(&b, &a));
        if subset_of(&a, &b) {
            prop_assert!(matches(&a, &b));
        }
    }

    #[test]
    fn subset_of_is_transitive(a in host(), b in host(), c in host()) {
        if subset_of(&a, &b) && subset_of(&b, &c) {
            prop_assert!(subset_of(&a, &c));
        }
    }
}

fn rollout_index(canary_weight: i64) -> Index {
    let rollout = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "app", "namespace": "ns"},
        "spec": {"strategy": {"canary": {"canaryService": "app-canary", "stableService": "app-stable",
            "trafficRouting": {"istio": {"virtualService": {"name": "app", "routes": ["primary"]}}},
            "steps": [{"setWeight": 20}, {"pause": {}}]}}},
        "status": {"currentStepIndex": 0, "canary": {"weights": {"canary": {"weight": canary_weight}, "stable": {"weight": 100 - canary_weight}}}}});
    Index::from_objects([Object::parse(&rollout, "default").unwrap().unwrap()])
}

/// A VirtualService with the managed route `primary`, an unmanaged route and arbitrary extras.
fn vs(
    stable: i64,
    canary: i64,
    foreign: Option<i64>,
    other: (i64, i64),
    timeout: Option<&str>,
    hosts: &[String],
) -> Value {
    let mut primary = json!({"name": "primary", "route": [
        {"destination": {"host": "app-stable"}, "weight": stable},
        {"destination": {"host": "app-canary"}, "weight": canary}]});
    if let Some(w) = foreign {
        primary["route"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": {"host": "legacy"}, "weight": w}));
    }
    if let Some(t) = timeout {
        primary["timeout"] = json!(t);
    }
    json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
        "metadata": {"name": "app", "namespace": "ns"},
        "spec": {"hosts": hosts, "http": [primary, {"name": "other", "route": [
            {"destination": {"host": "app-stable"}, "weight": other.0},
            {"destination": {"host": "app-canary"}, "weight": other.1}]}]}})
}

/// The object without the weights the guard owns (canary/stable of the managed route).
fn without_owned(mut v: Value) -> Value {
    if let Some(route) = v
        .pointer_mut("/spec/http/0/route")
        .and_then(Value::as_array_mut)
    {
        for d in route.iter_mut().take(2) {
            if let Some(m) = d.as_object_mut() {
                m.remove("weight");
            }
        }
    }
    v
}

fn apply(doc: &Value, ops: &[json_patch::PatchOperation]) -> Value {
    let text = serde_json::to_string(ops).unwrap();
    let patch: json_patch::Patch = serde_json::from_str(&text).unwrap();
    let mut out = doc.clone();
    json_patch::patch(&mut out, &patch).unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn patches_are_idempotent_and_touch_only_owned_fields(
        live_c in 0i64..=100, req_s in 0i64..=100, req_c in 0i64..=100,
        foreign in proptest::option::of(0i64..=50), live_foreign in proptest::option::of(0i64..=50),
        other in (0i64..=100, 0i64..=100), live_other in (0i64..=100, 0i64..=100),
        timeout in proptest::option::of("[1-9]s"), hosts in proptest::collection::vec("[a-z]{1,5}", 1..3),
        create in any::<bool>(),
    ) {
        let index = rollout_index(live_c);
        let live = vs(100 - live_c, live_c, live_foreign, live_other, None, &["app".to_string()]);
        let request = vs(req_s, req_c, foreign, other, timeout.as_deref(), &hosts);
        let live_ref = if create { None } else { Some(&live) };
        let m = drift::restore_values(Kind::VirtualService, "ns", &request, live_ref, &index);
        let patched = apply(&request, &m.patch);
        // Only the owned weights may differ from the request.
        prop_assert_eq!(without_owned(patched.clone()), without_owned(request.clone()));
        // The owned weights are the live ones (or, on CREATE, the recorded ones).
        prop_assert_eq!(&patched["spec"]["http"][0]["route"][0]["weight"], &json!(100 - live_c));
        prop_assert_eq!(&patched["spec"]["http"][0]["route"][1]["weight"], &json!(live_c));
        // A second review of the patched object changes nothing.
        let again = drift::restore_values(Kind::VirtualService, "ns", &patched, live_ref, &index);
        prop_assert!(again.patch.is_empty());
        // No patch when nothing differs.
        if req_s == 100 - live_c && req_c == live_c {
            prop_assert!(m.patch.is_empty());
        }
    }
}
