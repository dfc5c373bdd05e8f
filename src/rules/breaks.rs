//! A write to a VirtualService, DestinationRule or Service against the live Rollouts that
//! reference it: a cross-object finding that the write makes appear is `breaks-rollout`.

use super::{Finding, Severity};
use crate::index::Lookup;
use crate::model::{Kind, Object, ObjectKey};
use std::collections::BTreeSet;

/// What a write changes for the Rollouts that reference the written object.
#[derive(Debug, Default)]
pub struct Impact {
    /// `breaks-rollout` findings on the written object, one per new deny-level problem.
    pub breaks: Vec<Finding>,
    /// New warning-level findings of those Rollouts (passed on as warnings).
    pub warnings: Vec<Finding>,
    /// Rollouts skipped because they carry the skip annotation.
    pub skipped: Vec<ObjectKey>,
}

/// `before` and `after` are the world without and with the write.
pub fn check(written: &ObjectKey, before: &dyn Lookup, after: &dyn Lookup) -> Impact {
    let mut impact = Impact::default();
    let mut rollouts: BTreeSet<ObjectKey> =
        after.rollouts_referencing(written).into_iter().collect();
    rollouts.extend(before.rollouts_referencing(written));
    for rollout_key in rollouts {
        let Some(Object::Rollout(rollout)) = after.object(&rollout_key) else {
            continue;
        };
        if rollout.meta.skip {
            impact.skipped.push(rollout_key);
            continue;
        }
        let old = super::check_references(&rollout, before);
        let old_ids: BTreeSet<_> = old.iter().map(Finding::identity).collect();
        for f in super::check_references(&rollout, after) {
            if old_ids.contains(&f.identity()) || f.rule == "reference-missing" {
                continue;
            }
            match f.severity {
                Severity::Deny => impact
                    .breaks
                    .push(breaks_rollout(written, &rollout_key, &f)),
                Severity::Warn => impact.warnings.push(f),
            }
        }
    }
    impact
}

fn breaks_rollout(written: &ObjectKey, rollout: &ObjectKey, f: &Finding) -> Finding {
    let kind = match written.kind {
        Kind::VirtualService => "VirtualService",
        Kind::DestinationRule => "DestinationRule",
        _ => "Service",
    };
    Finding::new(
        "breaks-rollout",
        written,
        "spec",
        format!(
            "this {kind} change breaks Rollout {}/{}: [{}] {}: {}; if the Rollout is changed in the same commit, \
             apply the Rollout first",
            rollout.namespace, rollout.name, f.rule, f.path, f.message
        ),
    )
    .with_target(format!("Rollout {}/{} {} {} {}", rollout.namespace, rollout.name, f.rule, f.path, f.target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Overlay;
    use crate::rules::testing::*;
    use serde_json::json;

    fn vs_with(route: &str) -> crate::model::Object {
        object(vs_doc(
            "app-vs",
            json!({"hosts": ["app"], "http": [{"name": route, "route": [
            {"destination": {"host": "app-stable"}, "weight": 100},
            {"destination": {"host": "app-canary"}, "weight": 0}]}]}),
        ))
    }

    fn world() -> crate::index::Index {
        index(vec![
            object(rollout_doc(host_level(
                json!({"name": "app-vs", "routes": ["primary"]}),
            ))),
            vs_with("primary"),
            service("app-canary", json!({"app": "app"})),
            service("app-stable", json!({"app": "app"})),
        ])
    }

    #[test]
    fn renaming_a_managed_route_breaks_the_rollout() {
        let base = world();
        let key = ObjectKey::new(Kind::VirtualService, "shop", "app-vs");
        let after = Overlay {
            base: &base,
            key: key.clone(),
            object: Some(vs_with("main")),
        };
        let impact = check(&key, &base, &after);
        assert_eq!(rules_of(&impact.breaks), ["breaks-rollout"]);
        let msg = &impact.breaks[0].message;
        assert!(
            msg.contains("Rollout shop/app") && msg.contains("http-route-not-found"),
            "{msg}"
        );
        assert!(msg.contains("apply the Rollout first"), "{msg}");
    }

    #[test]
    fn an_unrelated_change_passes() {
        let base = world();
        let key = ObjectKey::new(Kind::VirtualService, "shop", "app-vs");
        let after = Overlay {
            base: &base,
            key: key.clone(),
            object: Some(vs_with("primary")),
        };
        assert!(check(&key, &base, &after).breaks.is_empty());
    }

    #[test]
    fn a_service_selector_change_breaks_the_rollout() {
        let base = world();
        let key = ObjectKey::new(Kind::Service, "shop", "app-canary");
        let after = Overlay {
            base: &base,
            key: key.clone(),
            object: Some(service("app-canary", json!({"app": "x"}))),
        };
        assert_eq!(
            rules_of(&check(&key, &base, &after).breaks),
            ["breaks-rollout"]
        );
    }
}
