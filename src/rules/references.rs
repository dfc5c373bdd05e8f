//! A Rollout against the objects it references: which exist, then the rules of each kind.

use super::{destinations, route_selection, services, subsets, Finding, RuleId};
use crate::index::Lookup;
use crate::model::roles::Roles;
use crate::model::routes;
use crate::model::{Kind, ObjectKey, Rollout};

pub const ISTIO: &str = "spec.strategy.canary.trafficRouting.istio";

/// The field path of a VirtualService reference.
pub fn vs_ref_path(index: Option<usize>) -> String {
    match index {
        Some(i) => format!("{ISTIO}.virtualServices[{i}]"),
        None => format!("{ISTIO}.virtualService"),
    }
}

pub fn check(rollout: &Rollout, world: &dyn Lookup) -> Vec<Finding> {
    let key = ObjectKey::new(Kind::Rollout, &rollout.meta.namespace, &rollout.meta.name);
    let mut out = Vec::new();
    if rollout.canary().is_none() {
        return out;
    }
    let roles = Roles::of(rollout);
    for (i, vs_ref) in rollout.vs_refs() {
        let base = vs_ref_path(i);
        let (ns, name) = vs_ref.target(&rollout.meta.namespace);
        let Some(vs) = world.virtual_service(&ns, &name) else {
            out.push(missing(
                &key,
                format!("{base}.name"),
                Kind::VirtualService,
                &ns,
                &name,
            ));
            continue;
        };
        if vs.http_routes().is_empty() && vs.tls_routes().is_empty() && vs.tcp_routes().is_empty() {
            out.push(
                Finding::new(
                    RuleId::VirtualServiceWithoutRoutes,
                    &key,
                    format!("{base}.name"),
                    format!(
                        "expected VirtualService {ns}/{name} to have http, tls or tcp routes, found none (Argo \
                         Rollouts: \"Unable to get any of the HTTP, TCP or TLS routes for the Istio \
                         VirtualService\"); add the route whose weights the controller sets"
                    ),
                )
                .about(format!("VirtualService {ns}/{name}")),
            );
            continue;
        }
        let steps_needing_http: Vec<&str> = rollout
            .steps()
            .iter()
            .filter_map(|s| {
                if s.set_header_route.is_some() {
                    Some("setHeaderRoute")
                } else if s.set_mirror_route.is_some() {
                    Some("setMirrorRoute")
                } else {
                    None
                }
            })
            .collect();
        if vs.http_routes().is_empty() {
            if let Some(step) = steps_needing_http.first() {
                out.push(
                    Finding::new(
                        RuleId::ManagedRouteNeedsHttp,
                        &key,
                        format!("{base}.name"),
                        format!(
                            "a {step} step adds an http route to VirtualService {ns}/{name}, which has no http \
                             routes: the controller fails the step (\"spec.http not found\"); add an http route, or \
                             drop the header/mirror steps"
                        ),
                    )
                    .about(format!("VirtualService {ns}/{name}")),
                );
            }
        }
        let selection = routes::select(rollout, vs_ref, &vs);
        route_selection::check(rollout, &key, &base, &vs, &selection, &mut out);
        destinations::check(rollout, &key, &base, &vs, &selection, &roles, &mut out);
    }
    subsets::check(rollout, &key, world, &mut out);
    services::check(rollout, &key, world, &mut out);
    out
}

pub(crate) fn missing(key: &ObjectKey, path: String, kind: Kind, ns: &str, name: &str) -> Finding {
    Finding::new(
        RuleId::ReferenceMissing,
        key,
        path,
        format!(
            "expected {kind} {ns}/{name} to exist, found none; it is checked when it is applied \
             (GitOps may apply it later in the same sync)"
        ),
    )
    .about(format!("{kind} {ns}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::*;
    use serde_json::json;

    #[test]
    fn a_virtualservice_without_routes_or_without_http_for_header_steps() {
        let r = rollout(host_level(json!({"name": "app-vs"})));
        let empty = index(vec![object(vs_doc("app-vs", json!({"hosts": ["app"]})))]);
        let f = check(&r, &empty);
        assert!(
            rules_of(&f).contains(&"virtualservice-without-routes"),
            "{f:?}"
        );
        assert!(!rules_of(&f).contains(&"route-list-ignored"), "{f:?}");

        let mut canary = host_level(json!({"name": "app-vs"}));
        canary["trafficRouting"]["managedRoutes"] = json!([{"name": "h"}]);
        canary["steps"] = json!([{"setHeaderRoute": {"name": "h", "match": [{"headerName": "x", "headerValue": {"exact": "1"}}]}}]);
        let tls_only = index(vec![object(vs_doc(
            "app-vs",
            json!({"hosts": ["app"], "tls": [{"match": [
            {"port": 443, "sniHosts": ["app"]}], "route": [
            {"destination": {"host": "app-stable"}, "weight": 100}, {"destination": {"host": "app-canary"}, "weight": 0}]}]}),
        ))]);
        let f = check(&rollout(canary), &tls_only);
        assert!(rules_of(&f).contains(&"managed-route-needs-http"), "{f:?}");
    }

    #[test]
    fn missing_objects_are_warnings() {
        let r = rollout(host_level(json!({"name": "app-vs"})));
        let f = check(&r, &index(vec![]));
        assert_eq!(
            rules_of(&f),
            [
                "reference-missing",
                "reference-missing",
                "reference-missing"
            ]
        );
        assert!(f.iter().all(|f| f.severity == crate::rules::Severity::Warn));
        assert!(
            f[0].message.contains("VirtualService shop/app-vs"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn cross_namespace_reference() {
        let r = rollout(host_level(json!({"name": "app-vs.mesh"})));
        let f = check(&r, &index(vec![]));
        assert!(
            f[0].message.contains("VirtualService mesh/app-vs"),
            "{}",
            f[0].message
        );
    }
}
