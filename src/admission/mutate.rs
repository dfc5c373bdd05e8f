//! `POST /mutate`: the drift guard behind the admission policy. Never denies: an object that
//! cannot be read is allowed with a warning (validation is the webhook that refuses it).

use super::review::{shorten, Operation, Request, Verdict, MAX_WARNING_LEN};
use super::{pass, screen, Context, Notes};
use crate::drift;
use crate::model::{Kind, Object, ANNOTATION_MANAGED_BY};

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
    // Most objects belong to no Rollout: then there is nothing to restore.
    let may_be_owned = !ctx.index.rollouts_referencing(&parsed.key()).is_empty()
        || parsed.meta().managed_by.is_some()
        || live.is_some_and(|l| l.get().contains(ANNOTATION_MANAGED_BY));
    if !may_be_owned {
        return pass();
    }
    let written = drift::Written {
        raw: object,
        view: &parsed,
    };
    let mutation = drift::restore(&request.namespace, written, live.map(|l| &**l), ctx.index);
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

#[cfg(test)]
mod tests {
    use crate::admission::{handle, Context, Decision, Policy, Webhook};
    use crate::index::Index;
    use crate::model::Object;
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
