//! A subset-level Rollout against its DestinationRule: the canary and stable subsets must exist
//! (Argo Rollouts never checks; deliberately stricter, see README.md), and the DestinationRule must
//! be for the host the VirtualService routes to.
//!
//! `additionalSubsetNames` are not looked for here: they live in DestinationRules of their own
//! (Argo Rollouts' istio.md, "Additional Subset DestinationRule's"), and the controller removes
//! every other subset from the canary/stable DestinationRule.

use super::references::{missing, vs_ref_path, ISTIO};
use super::{quoted, Finding, RuleId};
use crate::index::Lookup;
use crate::model::host::expand_short_name;
use crate::model::roles::{Role, Roles};
use crate::model::routes;
use crate::model::{Kind, ObjectKey, Rollout};
use std::collections::BTreeSet;

pub fn check(rollout: &Rollout, key: &ObjectKey, world: &dyn Lookup, out: &mut Vec<Finding>) {
    let Some(dr_ref) = rollout.istio().and_then(|i| i.destination_rule.as_ref()) else {
        return;
    };
    let ns: &str = &rollout.meta.namespace;
    let Some(dr) = world.destination_rule(ns, &dr_ref.name) else {
        out.push(missing(
            key,
            format!("{ISTIO}.destinationRule.name"),
            Kind::DestinationRule,
            ns,
            &dr_ref.name,
        ));
        return;
    };
    let wanted = [
        (
            "canarySubsetName".to_string(),
            dr_ref.canary_subset_name.as_str(),
        ),
        (
            "stableSubsetName".to_string(),
            dr_ref.stable_subset_name.as_str(),
        ),
    ];
    for (field, subset) in wanted {
        if !dr.has_subset(subset) {
            out.push(Finding::new(
 RuleId::DestinationRuleSubsetMissing,
                key,
                format!("{ISTIO}.destinationRule.{field}"),
                format!(
                    "expected subset {subset:?} in DestinationRule {ns}/{}, found none; its subsets are {}; add \
                     the subset (the controller sets its rollouts-pod-template-hash label). Argo Rollouts does not \
                     check this: traffic the VirtualService sends to a missing subset fails with 503",
                    dr.meta.name,
                    quoted(dr.subset_names())
                ),
            ));
        }
    }

    // The subsets only apply to traffic for the DestinationRule's host.
    let roles = Roles::of(rollout);
    let dr_host = expand_short_name(&dr.host, &dr.meta.namespace);
    let mut reported = BTreeSet::new();
    for (i, vs_ref) in rollout.vs_refs() {
        let (vs_ns, vs_name) = vs_ref.target(ns);
        let Some(vs) = world.virtual_service(&vs_ns, &vs_name) else {
            continue;
        };
        let sel = routes::select(rollout, vs_ref, &vs);
        let dests = sel
            .http
            .iter()
            .flat_map(|&j| vs.http_routes()[j].route.iter())
            .chain(
                sel.tls
                    .iter()
                    .flat_map(|&j| vs.tls_routes()[j].route.iter()),
            )
            .chain(
                sel.tcp
                    .iter()
                    .flat_map(|&j| vs.tcp_routes()[j].route.iter()),
            );
        for d in dests {
            let by_subset = !d.destination.subset().is_empty()
                && matches!(roles.classify(&d.destination), Role::Canary | Role::Stable);
            if !by_subset {
                continue;
            }
            let host = expand_short_name(&d.destination.host, &vs.meta.namespace);
            if host != dr_host
                && reported.insert((vs_ns.clone(), vs_name.clone(), d.destination.host.clone()))
            {
                out.push(
                    Finding::new(
 RuleId::DestinationRuleHostMismatch,
                        key,
                        format!("{}.name", vs_ref_path(i)),
                        format!(
                            "VirtualService {vs_ns}/{vs_name} routes the subsets to host {:?} ({host}), but \
                             DestinationRule {ns}/{} is for host {:?} ({dr_host}); the subsets would not apply; \
                             use the same host in both",
                            d.destination.host, dr.meta.name, dr.host
                        ),
                    )
                    .with_target(format!("VirtualService {vs_ns}/{vs_name} host {}", d.destination.host)),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::references::check;
    use crate::rules::testing::*;
    use serde_json::json;

    fn subset_rollout() -> std::sync::Arc<crate::model::Rollout> {
        rollout(json!({"trafficRouting": {"istio": {
            "virtualService": {"name": "app-vs", "routes": ["primary"]},
            "destinationRule": {"name": "app-dr", "canarySubsetName": "canary", "stableSubsetName": "stable",
                "additionalSubsetNames": ["extra"]}}}}))
    }

    fn vs(host: &str) -> crate::model::Object {
        object(vs_doc(
            "app-vs",
            json!({"hosts": ["app"], "http": [{"name": "primary", "route": [
            {"destination": {"host": host, "subset": "stable"}, "weight": 90},
            {"destination": {"host": host, "subset": "canary"}, "weight": 0},
            {"destination": {"host": host, "subset": "extra"}, "weight": 10}]}]}),
        ))
    }

    #[test]
    fn subsets_present() {
        let w = index(vec![
            vs("app"),
            dr("app-dr", "app", &["stable", "canary", "extra"]),
        ]);
        assert!(check(&subset_rollout(), &w).is_empty());
    }

    #[test]
    fn subset_missing_lists_what_exists() {
        let w = index(vec![vs("app"), dr("app-dr", "app", &["stable", "v2"])]);
        let f = check(&subset_rollout(), &w);
        assert_eq!(rules_of(&f), ["destinationrule-subset-missing"]);
        assert!(
            f[0].message.contains("[\"stable\", \"v2\"]"),
            "{}",
            f[0].message
        );
        assert!(f[0].path.ends_with("canarySubsetName"));
    }

    /// Argo Rollouts' istio.md, "Additional Subset DestinationRule's": the additional subset lives
    /// in a DestinationRule of its own host; the canary/stable one holds only canary and stable.
    #[test]
    fn additional_subsets_in_their_own_destinationrule_are_accepted() {
        let vs = object(vs_doc(
            "app-vs",
            json!({"hosts": ["app"], "http": [{"name": "primary", "route": [
            {"destination": {"host": "app", "subset": "stable"}, "weight": 90},
            {"destination": {"host": "app", "subset": "canary"}, "weight": 0},
            {"destination": {"host": "app-extra", "subset": "extra"}, "weight": 10}]}]}),
        ));
        let w = index(vec![
            vs,
            dr("app-dr", "app", &["canary", "stable"]),
            dr("app-extra-dr", "app-extra", &["extra"]),
        ]);
        let f = check(&subset_rollout(), &w);
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn host_mismatch_is_a_warning() {
        let w = index(vec![
            vs("app"),
            dr("app-dr", "other", &["stable", "canary", "extra"]),
        ]);
        let f = check(&subset_rollout(), &w);
        assert_eq!(rules_of(&f), ["destinationrule-host-mismatch"]);
        let fqdn = index(vec![
            vs("app.shop.svc.cluster.local"),
            dr("app-dr", "app", &["stable", "canary", "extra"]),
        ]);
        assert!(check(&subset_rollout(), &fqdn).is_empty());
    }

    #[test]
    fn missing_destinationrule_is_a_warning() {
        let w = index(vec![vs("app")]);
        assert_eq!(
            rules_of(&check(&subset_rollout(), &w)),
            ["reference-missing"]
        );
    }
}
