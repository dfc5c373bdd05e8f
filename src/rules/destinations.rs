//! The destinations of the weighted routes a Rollout manages: the canary and the stable must both
//! be there, hosts must resolve where Argo Rollouts thinks they do, and destinations with no role
//! must not carry weight (the controller deletes them).

use super::{list, Finding, RuleId};
use crate::model::host::first_label;
use crate::model::roles::{Role, Roles};
use crate::model::routes::Selection;
use crate::model::virtualservice::RouteDestination;
use crate::model::{ObjectKey, Rollout, VirtualService};

pub fn check(
    rollout: &Rollout,
    key: &ObjectKey,
    base: &str,
    vs: &VirtualService,
    selection: &Selection,
    roles: &Roles,
    out: &mut Vec<Finding>,
) {
    let vs_name = format!("{}/{}", vs.meta.namespace, vs.meta.name);
    let vs_ref = rollout
        .vs_refs()
        .into_iter()
        .find(|(i, _)| super::references::vs_ref_path(*i) == base)
        .map(|(_, r)| r);
    let listed_http = vs_ref.and_then(|r| r.routes.as_deref()).unwrap_or(&[]);

    let mut routes: Vec<(String, String, &[RouteDestination])> = Vec::new();
    for &i in &selection.http {
        let route = &vs.http_routes()[i];
        let path = match listed_http.iter().position(|n| n == route.name()) {
            Some(k) => format!("{base}.routes[{k}]"),
            None => base.to_string(),
        };
        let label = if route.name().is_empty() {
            format!("spec.http[{i}]")
        } else {
            format!("spec.http[{i}] ({:?})", route.name())
        };
        routes.push((path, label, &route.route));
    }
    for &i in &selection.tls {
        routes.push((
            route_path(
                base,
                "tlsRoutes",
                vs_ref.and_then(|r| r.tls_routes.as_ref()).map(Vec::len),
            ),
            format!("spec.tls[{i}]"),
            &vs.tls_routes()[i].route,
        ));
    }
    for &i in &selection.tcp {
        routes.push((
            route_path(
                base,
                "tcpRoutes",
                vs_ref.and_then(|r| r.tcp_routes.as_ref()).map(Vec::len),
            ),
            format!("spec.tcp[{i}]"),
            &vs.tcp_routes()[i].route,
        ));
    }

    for (path, label, dests) in routes {
        let target = format!("VirtualService {vs_name} {label}");
        let first_of_route = out.len();
        let found = || list(dests.iter().map(describe));
        let has = |role: Role| dests.iter().any(|d| roles.classify(&d.destination) == role);
        if roles.names_canary() && !has(Role::Canary) {
            out.push(
                Finding::new(
 RuleId::CanaryDestinationMissing,
                    key,
                    path.clone(),
                    format!(
                        "expected the canary {} among the destinations of {label} in VirtualService {vs_name}, \
                         found {}; add a destination for it (weight 0 is fine)",
                        roles.describe_canary(),
                        found()
                    ),
                )
                .with_target(target.clone()),
            );
        }
        if roles.names_stable() && !has(Role::Stable) {
            out.push(
                Finding::new(
 RuleId::StableDestinationMissing,
                    key,
                    path.clone(),
                    format!(
                        "expected the stable {} among the destinations of {label} in VirtualService {vs_name}, \
                         found {}; add a destination for it",
                        roles.describe_stable(),
                        found()
                    ),
                )
                .with_target(target.clone()),
            );
        }
        for (j, d) in dests.iter().enumerate() {
            let role = roles.classify(&d.destination);
            match role {
                Role::Foreign if d.weight.unwrap_or(0) != 0 => out.push(
                    Finding::new(
 RuleId::ForeignDestination,
                        key,
                        path.clone(),
                        format!(
                            "destination {} of {label} in VirtualService {vs_name} is neither the canary, the stable \
                             nor an experiment or additional subset, and has weight {}; the controller deletes such \
                             a destination when it sets weights; give it weight 0 or move it to another route",
                            describe(d),
                            d.weight.unwrap_or(0)
                        ),
                    )
                    .with_target(format!("{target} route[{j}]"))
                    .about(describe(d)),
                ),
                Role::Canary | Role::Stable if !roles.subset_mode() || d.destination.subset().is_empty() => {
                    if let Some(problem) = host_form(&d.destination.host, &vs.meta.namespace, &rollout.meta.namespace) {
                        out.push(
                            Finding::new(
 RuleId::DestinationHostForm,
                                key,
                                path.clone(),
                                format!("destination host {:?} of {label} in VirtualService {vs_name}: {problem}", d.destination.host),
                            )
                            .with_target(format!("{target} route[{j}]"))
                            .about(describe(d)),
                        );
                    }
                }
                _ => {}
            }
        }
        // The route by what names it (its name, or its TLS/TCP match), not its position.
        let subject = route_subject(vs, &label);
        for f in &mut out[first_of_route..] {
            f.subject = format!("{subject} / {}", f.subject);
        }
    }
}

fn route_subject(vs: &VirtualService, label: &str) -> String {
    let at = |prefix: &str| {
        label
            .strip_prefix(prefix)
            .and_then(|rest| rest.split(']').next())
            .and_then(|i| i.parse::<usize>().ok())
    };
    if let Some(route) = at("spec.http[").and_then(|i| vs.http_routes().get(i)) {
        format!("http {:?}", route.name())
    } else if let Some(route) = at("spec.tls[").and_then(|i| vs.tls_routes().get(i)) {
        format!("tls {:?}", route.matches)
    } else if let Some(route) = at("spec.tcp[").and_then(|i| vs.tcp_routes().get(i)) {
        format!("tcp {:?}", route.matches)
    } else {
        label.to_string()
    }
}

fn route_path(base: &str, field: &str, listed: Option<usize>) -> String {
    match listed {
        Some(n) if n > 0 => format!("{base}.{field}"),
        _ => base.to_string(),
    }
}

fn describe(d: &RouteDestination) -> String {
    let mut s = d.destination.host.clone();
    if let Some(sub) = d.destination.subset.as_deref().filter(|s| !s.is_empty()) {
        s.push_str(&format!(" (subset {sub})"));
    }
    s
}

/// The host-forms table of DESIGN.md: how a destination host naming the Rollout's Service
/// (in namespace `ns`) resolves from a VirtualService in namespace `vs_ns`. `None` when it is fine.
pub fn host_form(host: &str, vs_ns: &str, ns: &str) -> Option<String> {
    let svc = first_label(host);
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        [_] if vs_ns == ns => None,
        [_] => Some(format!(
            "Istio resolves the short name to {svc}.{vs_ns}.svc.cluster.local (the VirtualService's namespace), \
             not the Rollout's namespace {ns:?}; write {svc}.{ns}.svc.cluster.local"
        )),
        [_, host_ns, "svc", "cluster", "local"] if *host_ns == ns => None,
        [_, host_ns, "svc", "cluster", "local"] => Some(format!(
            "expected the Rollout's namespace {ns:?}, found {host_ns:?}; traffic would go to another namespace's Service"
        )),
        [_, _] | [_, _, "svc"] => Some(format!(
            "Istio does not expand this form and takes it as written; use the FQDN {svc}.{}.svc.cluster.local",
            labels[1]
        )),
        _ => Some(format!(
            "Argo Rollouts matches it to Service {svc:?} by its first label, but Istio sends traffic to {host} as \
             written; use {svc} or {svc}.{ns}.svc.cluster.local"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::host_form;
    use crate::rules::references::check;
    use crate::rules::testing::*;
    use serde_json::json;

    #[test]
    fn host_forms_table() {
        // `svc`: fine in the same namespace, a warning across namespaces.
        assert_eq!(host_form("svc", "ns", "ns"), None);
        assert!(host_form("svc", "mesh", "ns")
            .unwrap()
            .contains("svc.mesh.svc.cluster.local"));
        // FQDN: fine when the namespace agrees.
        assert_eq!(host_form("svc.ns.svc.cluster.local", "mesh", "ns"), None);
        assert!(host_form("svc.other.svc.cluster.local", "ns", "ns")
            .unwrap()
            .contains("\"other\""));
        // `svc.ns` and `svc.ns.svc` are not expanded by Istio.
        assert!(host_form("svc.ns", "ns", "ns")
            .unwrap()
            .contains("does not expand"));
        assert!(host_form("svc.ns.svc", "ns", "ns")
            .unwrap()
            .contains("does not expand"));
        // Another FQDN.
        assert!(host_form("svc.example.com", "ns", "ns")
            .unwrap()
            .contains("first label"));
    }

    fn world(dests: serde_json::Value) -> crate::index::Index {
        index(vec![
            object(vs_doc(
                "app-vs",
                json!({"hosts": ["app"], "http": [{"name": "primary", "route": dests}]}),
            )),
            service("app-canary", json!({"app": "app"})),
            service("app-stable", json!({"app": "app"})),
        ])
    }

    fn r() -> std::sync::Arc<crate::model::Rollout> {
        rollout(host_level(json!({"name": "app-vs", "routes": ["primary"]})))
    }

    #[test]
    fn canary_and_stable_destinations() {
        let ok = world(
            json!([{"destination": {"host": "app-stable"}, "weight": 100},
                             {"destination": {"host": "app-canary"}, "weight": 0}]),
        );
        assert!(check(&r(), &ok).is_empty());
        let no_canary = world(json!([{"destination": {"host": "app-stable"}, "weight": 100}]));
        let f = check(&r(), &no_canary);
        assert_eq!(rules_of(&f), ["canary-destination-missing"]);
        assert!(
            f[0].message.contains("found [app-stable]"),
            "{}",
            f[0].message
        );
        let no_stable = world(json!([{"destination": {"host": "app-canary"}, "weight": 100}]));
        assert_eq!(
            rules_of(&check(&r(), &no_stable)),
            ["stable-destination-missing"]
        );
    }

    #[test]
    fn foreign_destination_with_weight() {
        let w = world(
            json!([{"destination": {"host": "app-stable"}, "weight": 90},
                            {"destination": {"host": "app-canary"}, "weight": 0},
                            {"destination": {"host": "legacy"}, "weight": 10}]),
        );
        assert_eq!(rules_of(&check(&r(), &w)), ["foreign-destination"]);
        let zero = world(
            json!([{"destination": {"host": "app-stable"}, "weight": 100},
                               {"destination": {"host": "app-canary"}, "weight": 0},
                               {"destination": {"host": "legacy"}, "weight": 0}]),
        );
        assert!(check(&r(), &zero).is_empty());
    }

    #[test]
    fn destination_host_form_warning() {
        let w = world(
            json!([{"destination": {"host": "app-stable.shop"}, "weight": 100},
                            {"destination": {"host": "app-canary.shop.svc.cluster.local"}, "weight": 0}]),
        );
        let f = check(&r(), &w);
        assert_eq!(rules_of(&f), ["destination-host-form"]);
    }

    #[test]
    fn unlisted_tls_route_is_checked() {
        let w = index(vec![
            object(vs_doc(
                "app-vs",
                json!({"hosts": ["app"],
                "http": [{"name": "primary", "route": [
                    {"destination": {"host": "app-stable"}, "weight": 100},
                    {"destination": {"host": "app-canary"}, "weight": 0}]}],
                "tls": [{"match": [{"port": 443, "sniHosts": ["app"]}], "route": [
                    {"destination": {"host": "app-stable"}, "weight": 100}]}]}),
            )),
            service("app-canary", json!({"app": "app"})),
            service("app-stable", json!({"app": "app"})),
        ]);
        let f = check(&r(), &w);
        assert_eq!(rules_of(&f), ["canary-destination-missing"]);
        assert!(f[0].message.contains("spec.tls[0]"), "{}", f[0].message);
    }

    #[test]
    fn experiment_destinations_have_a_role() {
        let mut doc = rollout_doc(host_level(json!({"name": "app-vs", "routes": ["primary"]})));
        doc["status"] = json!({"canary": {"weights": {"canary": {"weight": 10}, "stable": {"weight": 70},
            "additional": [{"weight": 20, "serviceName": "app-exp"}]}}});
        let r = match object(doc) {
            crate::model::Object::Rollout(r) => r,
            _ => unreachable!(),
        };
        let w = world(
            json!([{"destination": {"host": "app-stable"}, "weight": 70},
                            {"destination": {"host": "app-canary"}, "weight": 10},
                            {"destination": {"host": "app-exp"}, "weight": 20}]),
        );
        assert!(check(&r, &w).is_empty());
    }
}
