//! `POST /mutate`: the drift guard behind the admission policy. Never denies: an object that
//! cannot be read is allowed with a warning (validation is the webhook that refuses it).

use super::review::{shorten, Operation, Request, Verdict, MAX_WARNING_LEN};
use super::{pass, screen, Context, Notes};
use crate::drift;
use crate::model::{Kind, Object, ANNOTATION_MANAGED_BY};
use serde_json::value::RawValue;
use serde_json::Value;

pub fn mutate(request: &Request, ctx: &Context<'_>) -> (Verdict, Notes) {
    let kind = match screen(request, ctx.policy) {
        Ok(Kind::Rollout) => return pass(),
        Ok(kind) => kind,
        Err(answer) => return *answer,
    };
    let Some(object) = &request.object else {
        return pass();
    };
    let parsed = match Object::parse_kind_raw(kind, object, &request.namespace) {
        Ok(o) => o,
        Err(err) => {
            let warning = format!(
                "rollout-guard: nothing restored on {kind} {}/{}: it cannot be read ({err})",
                request.namespace, request.name
            );
            return (
                Verdict::allow().with_warning(shorten(&warning, MAX_WARNING_LEN)),
                Notes::default(),
            );
        }
    };
    if parsed.meta().skip {
        return (
            Verdict::allow(),
            Notes {
                skipped: true,
                ..Notes::default()
            },
        );
    }
    let live = request
        .old_object
        .as_ref()
        .filter(|_| request.operation == Operation::Update);
    if ctx.stale {
        let managed = !ctx.index.rollouts_referencing(&parsed.key()).is_empty();
        let verdict = Verdict::allow();
        return if managed {
            let warning = format!(
                "rollout-guard: nothing restored on {}: the cluster state is stale (a watch is broken), so the live \
                 values cannot be trusted",
                parsed.key()
            );
            (
                verdict.with_warning(shorten(&warning, MAX_WARNING_LEN)),
                Notes::default(),
            )
        } else {
            (verdict, Notes::default())
        };
    }
    // Most objects belong to no Rollout: then there is nothing to restore and no tree to build.
    let may_be_owned = !ctx.index.rollouts_referencing(&parsed.key()).is_empty()
        || parsed.meta().managed_by.is_some()
        || live.is_some_and(|l| l.get().contains(ANNOTATION_MANAGED_BY));
    if !may_be_owned {
        return pass();
    }
    let object = match tree_without_managed_fields(object) {
        Ok(object) => object,
        Err(err) => return not_rebuilt(&parsed, "the request object", &err),
    };
    let live = match live.map(|l| tree_without_managed_fields(l)) {
        None => None,
        Some(Ok(live)) => Some(live),
        Some(Err(err)) => return not_rebuilt(&parsed, "oldObject", &err),
    };
    let mutation = drift::restore(kind, &request.namespace, object, live.as_ref(), ctx.index);
    let verdict = Verdict {
        allowed: true,
        message: None,
        warnings: mutation
            .warnings
            .iter()
            .map(|w| shorten(w, MAX_WARNING_LEN))
            .collect(),
        patch: mutation.patch,
    };
    (
        verdict,
        Notes {
            restores: mutation.restores,
            kept: mutation.kept,
            ..Notes::default()
        },
    )
}

/// The object as a tree to plan a patch on, without `metadata.managedFields`: often the larger
/// part of a GitOps writer's object, and nothing the drift guard reads or patches.
fn tree_without_managed_fields(raw: &RawValue) -> Result<Value, serde_json::Error> {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
    use serde_json::Map;

    /// Reads a JSON object; `skip` names the one key (at this level) left out, and `inner`
    /// (a key and its own skip) the one object below read the same way.
    struct Without {
        skip: Option<&'static str>,
        inner: Option<(&'static str, &'static str)>,
    }
    impl<'de> DeserializeSeed<'de> for Without {
        type Value = Value;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Without {
        type Value = Value;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut out = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                if Some(key.as_str()) == self.skip {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                let value = match self.inner {
                    Some((inner, skip)) if inner == key => map.next_value_seed(Without {
                        skip: Some(skip),
                        inner: None,
                    })?,
                    _ => map.next_value::<Value>()?,
                };
                out.insert(key, value);
            }
            Ok(Value::Object(out))
        }
        // Anything else (metadata that is not an object) is kept as it is, for the views' own
        // errors to describe.
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element::<Value>()? {
                out.push(v);
            }
            Ok(Value::Array(out))
        }
    }
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let tree = Without {
        skip: None,
        inner: Some(("metadata", "managedFields")),
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(tree)
}

/// The views were read but the tree a patch is planned on was not: nothing is restored, and the
/// writer and the metrics are told (never silently).
fn not_rebuilt(object: &Object, what: &str, err: &serde_json::Error) -> (Verdict, Notes) {
    let warning = format!(
        "rollout-guard: nothing restored on {}: {what} cannot be read as JSON ({err})",
        object.key()
    );
    let notes = Notes {
        degraded: vec!["rebuild-failed"],
        ..Notes::default()
    };
    (
        Verdict::allow().with_warning(shorten(&warning, MAX_WARNING_LEN)),
        notes,
    )
}

#[cfg(test)]
mod tests {
    use super::tree_without_managed_fields;
    use crate::admission::{handle, Context, Decision, Policy, Webhook};
    use crate::index::Index;
    use crate::model::Object;
    use serde_json::value::RawValue;
    use serde_json::{json, Value};

    fn world() -> Index {
        let rollout = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "checkout", "namespace": "shop"},
            "spec": {"strategy": {"canary": {"canaryService": "c", "stableService": "s",
                "trafficRouting": {"istio": {"virtualService": {"name": "checkout", "routes": ["primary"]}}},
                "steps": [{"setWeight": 20}]}}},
            "status": {"currentStepIndex": 0, "canary": {"weights": {"canary": {"weight": 20}, "stable": {"weight": 80}}}}});
        Index::from_objects([Object::parse(&rollout, "default").unwrap().unwrap()])
    }

    fn vs(stable: i64, canary: i64) -> Value {
        json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
            "metadata": {"name": "checkout", "namespace": "shop"},
            "spec": {"hosts": ["checkout"], "http": [{"name": "primary", "route": [
                {"destination": {"host": "s"}, "weight": stable}, {"destination": {"host": "c"}, "weight": canary}]}]}})
    }

    fn review(user: &str, dry_run: bool, object: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "u-1", "kind": {"group": "networking.istio.io", "version": "v1beta1", "kind": "VirtualService"},
            "namespace": "shop", "name": "checkout", "operation": "UPDATE", "dryRun": dry_run,
            "userInfo": {"username": user}, "object": object, "oldObject": vs(80, 20)}}))
        .unwrap()
    }

    fn answer(body: &[u8], stale: bool) -> (Decision, Value) {
        let index = world();
        let policy = Policy::default();
        let reply = handle(
            Webhook::Mutate,
            body,
            &Context {
                index: &index,
                policy: &policy,
                stale,
            },
        );
        assert_eq!(reply.status, 200);
        (
            reply.outcome.decision,
            serde_json::from_slice(&reply.body).unwrap(),
        )
    }

    #[test]
    fn the_tree_a_patch_is_planned_on_leaves_out_only_managed_fields() {
        let text = r#"{"apiVersion":"v1","metadata":{"name":"a","managedFields":[{"manager":"argocd-controller"}],"annotations":{"x":"y"}},"spec":{"managedFields":1}}"#;
        let raw = RawValue::from_string(text.to_string()).unwrap();
        let tree = tree_without_managed_fields(&raw).unwrap();
        let mut expected: Value = serde_json::from_str(text).unwrap();
        expected["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        assert_eq!(tree, expected, "a key of that name elsewhere is kept");
        let odd = RawValue::from_string(r#"{"metadata":"x","spec":[1,null,true]}"#.into()).unwrap();
        assert_eq!(
            tree_without_managed_fields(&odd).unwrap(),
            json!({"metadata": "x", "spec": [1, null, true]})
        );
        let trailing = RawValue::from_string("[1]".into()).unwrap();
        assert_eq!(tree_without_managed_fields(&trailing).unwrap(), json!([1]));
    }

    #[test]
    fn gitops_update_is_patched_and_dry_run_gets_the_same_answer() {
        let (decision, wet) = answer(&review("argocd", false, vs(100, 0)), false);
        assert_eq!(decision, Decision::Patched);
        assert_eq!(wet["response"]["uid"], "u-1");
        assert_eq!(wet["response"]["patchType"], "JSONPatch");
        let (_, dry) = answer(&review("argocd", true, vs(100, 0)), false);
        assert_eq!(wet, dry);
    }

    #[test]
    fn the_controller_is_never_mutated() {
        let (decision, out) = answer(
            &review(crate::admission::DEFAULT_EXEMPT_USER, false, vs(50, 50)),
            false,
        );
        assert_eq!(decision, Decision::Allowed);
        assert!(out["response"].get("patch").is_none());
    }

    #[test]
    fn stale_state_skips_mutation_with_a_warning() {
        let (decision, out) = answer(&review("argocd", false, vs(100, 0)), true);
        assert_eq!(decision, Decision::Allowed);
        assert!(out["response"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("stale"));
    }

    #[test]
    fn unreadable_objects_are_allowed_with_a_warning() {
        let mut bad = vs(100, 0);
        bad["spec"]["http"] = json!("nope");
        let (decision, out) = answer(&review("argocd", false, bad), false);
        assert_eq!(decision, Decision::Allowed);
        assert!(out["response"]["allowed"].as_bool().unwrap());
        assert!(out["response"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("cannot be read"));
    }
}
