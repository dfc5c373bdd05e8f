//! A write to a VirtualService, DestinationRule or Service against the live Rollouts that
//! reference it: a cross-object finding that the write makes appear is `breaks-rollout`.

use super::{Finding, Known, RuleId, Severity};
use crate::index::Lookup;
use crate::model::{Kind, Object, ObjectKey};
use std::collections::BTreeSet;

/// One new deny-level problem of one live Rollout, caused by the write.
#[derive(Debug, Clone)]
pub struct Break {
    /// The `breaks-rollout` finding on the written object.
    pub finding: Finding,
    pub rollout: ObjectKey,
    /// The GitOps application that applies the Rollout, if it carries a marker of one.
    pub rollout_application: Option<std::sync::Arc<str>>,
}

/// What a write changes for the Rollouts that reference the written object.
#[derive(Debug, Default)]
pub struct Impact {
    /// One per new deny-level problem.
    pub breaks: Vec<Break>,
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
        let mut known = Known::of(&old);
        for f in super::check_references(&rollout, after) {
            if known.take(&f) || f.rule == RuleId::ReferenceMissing {
                continue;
            }
            match f.severity {
                Severity::Deny => impact.breaks.push(Break {
                    finding: breaks_rollout(written, &rollout_key, &f),
                    rollout: rollout_key.clone(),
                    rollout_application: rollout.meta.application.clone(),
                }),
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
 RuleId::BreaksRollout,
        written,
        "spec",
        format!(
            "this {kind} change breaks {rollout}: [{}] {}: {}; change the Rollout to match (in the same sync is \
             fine), or keep what it uses",
            f.rule, f.path, f.message
        ),
    )
    .with_target(format!("Rollout {}/{} {} {} {}", rollout.namespace, rollout.name, f.rule, f.path, f.target))
    .about(format!("{} {}", f.rule, f.subject))
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
        let findings: Vec<Finding> = impact.breaks.iter().map(|b| b.finding.clone()).collect();
        assert_eq!(rules_of(&findings), ["breaks-rollout"]);
        assert_eq!(
            impact.breaks[0].rollout,
            ObjectKey::new(Kind::Rollout, "shop", "app")
        );
        let msg = &findings[0].message;
        assert!(
            msg.contains("Rollout shop/app") && msg.contains("http-route-not-found"),
            "{msg}"
        );
        assert!(msg.contains("change the Rollout to match"), "{msg}");
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
        assert_eq!(check(&key, &base, &after).breaks.len(), 1);
    }
}
