//! A canary Rollout against its Services (every canary Rollout with a pod template, with or
//! without traffic routing): each Service must select the Rollout's pods and not belong to
//! another Rollout.

use super::references::missing;
use super::{Finding, RuleId};
use crate::index::Lookup;
use crate::model::{Kind, ObjectKey, Rollout, POD_TEMPLATE_HASH};

pub fn check(rollout: &Rollout, key: &ObjectKey, world: &dyn Lookup, out: &mut Vec<Finding>) {
    let Some(canary) = rollout.canary() else {
        return;
    };
    let ns: &str = &rollout.meta.namespace;
    let pp = canary.ping_pong.as_ref();
    let refs = [
        ("canaryService", canary.canary_service.as_deref()),
        ("stableService", canary.stable_service.as_deref()),
        ("pingPong.pingService", pp.map(|p| p.ping_service.as_str())),
        ("pingPong.pongService", pp.map(|p| p.pong_service.as_str())),
    ];
    for (field, name) in refs {
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            continue;
        };
        let path = format!("spec.strategy.canary.{field}");
        let Some(svc) = world.service_of(rollout, name) else {
            out.push(missing(key, path, Kind::Service, ns, name));
            continue;
        };
        if let Some(labels) = rollout
            .template_labels()
            .filter(|_| rollout.spec.workload_ref.is_none())
        {
            let mismatched: Vec<String> = svc
                .selector
                .iter()
                .filter(|(k, _)| *k != POD_TEMPLATE_HASH)
                .filter(|(k, v)| labels.get(k) != Some(*v))
                .map(|(k, v)| match labels.get(k) {
                    Some(have) => format!("{k}={v} (pod template has {k}={have})"),
                    None => format!("{k}={v} (pod template has no label {k})"),
                })
                .collect();
            if !mismatched.is_empty() {
                out.push(Finding::new(
 RuleId::ServiceSelectorMismatch,
                    key,
                    path.clone(),
                    format!(
                        "expected Service {ns}/{name} to select the Rollout's pods, found selector {}; the Service \
                         would send no traffic to them; make its selector a subset of spec.template.metadata.labels",
                        mismatched.join(", ")
                    ),
                ));
            }
        }
        if let Some(owner) = svc
            .meta
            .managed_by
            .as_deref()
            .filter(|o| **o != *rollout.meta.name)
        {
            out.push(Finding::new(
 RuleId::ServiceManagedByOtherRollout,
                key,
                path,
                format!(
                    "expected Service {ns}/{name} to be free or managed by Rollout {:?}, found it managed by Rollout \
                     {owner:?} (annotation argo-rollouts.argoproj.io/managed-by-rollouts); use another Service",
                    rollout.meta.name
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::references::check;
    use crate::rules::testing::*;
    use serde_json::json;

    fn canary_only() -> serde_json::Value {
        json!({"canaryService": "app-canary", "stableService": "app-stable", "steps": [{"setWeight": 10}]})
    }

    #[test]
    fn selectors_must_match_the_template() {
        let ok = index(vec![
            service(
                "app-canary",
                json!({"app": "app", "rollouts-pod-template-hash": "abc"}),
            ),
            service("app-stable", json!({"app": "app"})),
        ]);
        assert!(check(&rollout(canary_only()), &ok).is_empty());
        let bad = index(vec![
            service("app-canary", json!({"app": "other"})),
            service("app-stable", json!({"tier": "web"})),
        ]);
        let f = check(&rollout(canary_only()), &bad);
        assert_eq!(
            rules_of(&f),
            ["service-selector-mismatch", "service-selector-mismatch"]
        );
        assert!(
            f[0].message
                .contains("app=other (pod template has app=app)"),
            "{}",
            f[0].message
        );
        assert!(f[1].message.contains("no label tier"), "{}", f[1].message);
    }

    #[test]
    fn managed_by_another_rollout() {
        let owned = object(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "app-canary", "namespace": "shop",
                "annotations": {"argo-rollouts.argoproj.io/managed-by-rollouts": "someone-else"}},
            "spec": {"selector": {"app": "app"}}}));
        let w = index(vec![owned, service("app-stable", json!({"app": "app"}))]);
        assert_eq!(
            rules_of(&check(&rollout(canary_only()), &w)),
            ["service-managed-by-other-rollout"]
        );
        let mine = object(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "app-canary", "namespace": "shop",
                "annotations": {"argo-rollouts.argoproj.io/managed-by-rollouts": "app"}},
            "spec": {"selector": {"app": "app"}}}));
        let w = index(vec![mine, service("app-stable", json!({"app": "app"}))]);
        assert!(check(&rollout(canary_only()), &w).is_empty());
    }
}
