//! A Rollout's route lists (`routes`, `tlsRoutes`, `tcpRoutes`, `managedRoutes`) against the
//! routes its VirtualService defines.

use super::{list, quoted, Finding, RuleId};
use crate::model::routes::{RouteProblem, Selection};
use crate::model::virtualservice::tls_route_identity;
use crate::model::{ObjectKey, Rollout, VirtualService};

pub fn check(
    rollout: &Rollout,
    key: &ObjectKey,
    base: &str,
    vs: &VirtualService,
    selection: &Selection,
    out: &mut Vec<Finding>,
) {
    let vs_name = format!("{}/{}", vs.meta.namespace, vs.meta.name);
    let http_names = || {
        quoted(vs.http_routes().iter().map(|r| {
            if r.name().is_empty() {
                "(unnamed)"
            } else {
                r.name()
            }
        }))
    };
    for problem in &selection.problems {
        let subject = match problem {
            RouteProblem::HttpNotFound { name, .. } | RouteProblem::HttpDuplicate { name, .. } => {
                format!("VirtualService {vs_name} http {name:?}")
            }
            RouteProblem::TlsNotFound { index, .. } => {
                format!(
                    "VirtualService {vs_name} tls {}",
                    vs_tls_ref(rollout, base, *index)
                )
            }
            RouteProblem::TcpNotFound { index } => {
                format!(
                    "VirtualService {vs_name} tcp port {}",
                    vs_tcp_port(rollout, base, *index)
                )
            }
            _ => format!("VirtualService {vs_name}"),
        };
        out.push(match problem {
            RouteProblem::HttpNotFound { index, name } => Finding::new(
 RuleId::HttpRouteNotFound,
                key,
                format!("{base}.routes[{index}]"),
                format!(
                    "expected an http route named {name:?} in VirtualService {vs_name}, found none; its http \
                     routes are {}",
                    http_names()
                ),
            ),
            RouteProblem::HttpDuplicate { index, name } => Finding::new(
 RuleId::HttpRouteAmbiguous,
                key,
                format!("{base}.routes[{index}]"),
                format!(
                    "expected one http route named {name:?} in VirtualService {vs_name}, found several; give \
                     each route a unique name"
                ),
            ),
            RouteProblem::HttpAmbiguous { candidates } => Finding::new(
 RuleId::HttpRouteAmbiguous,
                key,
                format!("{base}.routes"),
                format!(
                    "expected routes to name the http routes to manage: VirtualService {vs_name} has {} http \
                     routes outside managedRoutes ({}) and the controller needs exactly one when routes is \
                     omitted",
                    candidates.len(),
                    quoted(candidates.iter().map(|c| if c.is_empty() { "(unnamed)" } else { c.as_str() }))
                ),
            ),
            RouteProblem::TlsNotFound { index, nearest } => {
                let want = vs_tls_ref(rollout, base, *index);
                let nearest = match nearest.and_then(|i| vs.tls_routes().get(i).map(|r| (i, r))) {
                    Some((i, route)) => {
                        let (port, sni) = tls_route_identity(route);
                        format!(
                            "; nearest is spec.tls[{i}] with port {} and sniHosts {}",
                            port.map_or("(several)".to_string(), |p| p.to_string()),
                            list(sni)
                        )
                    }
                    None => String::new(),
                };
                let twice = vs_tls_duplicates(rollout, base, *index);
                let twice = if twice.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; sniHosts lists {} more than once, and Argo Rollouts compares the list's length with the \
                         route's distinct hosts, so it matches no route: list each host once",
                        quoted(twice)
                    )
                };
                Finding::new(
                    RuleId::TlsRouteNotFound,
                    key,
                    format!("{base}.tlsRoutes[{index}]"),
                    format!(
                        "expected a TLS route in VirtualService {vs_name} with {want} (the same port and exactly \
                         the same SNI set), found none{nearest}{twice}"
                    ),
                )
            }
            RouteProblem::TlsAmbiguous { count } => Finding::new(
 RuleId::TlsRouteAmbiguous,
                key,
                format!("{base}.tlsRoutes"),
                format!(
                    "expected tlsRoutes to select among the {count} TLS routes of VirtualService {vs_name}, found \
                     it omitted; the controller needs exactly one TLS route when tlsRoutes is omitted"
                ),
            ),
            RouteProblem::TcpNotFound { index } => {
                let port = vs_tcp_port(rollout, base, *index);
                let ports: Vec<String> = vs
                    .tcp_routes()
                    .iter()
                    .map(|r| crate::model::virtualservice::tcp_route_port(r).map_or("(several)".into(), |p| p.to_string()))
                    .collect();
                Finding::new(
 RuleId::TcpRouteNotFound,
                    key,
                    format!("{base}.tcpRoutes[{index}]"),
                    format!(
                        "expected a TCP route with port {port} in VirtualService {vs_name}, found none; its TCP \
                         routes match ports {}",
                        list(ports)
                    ),
                )
            }
            RouteProblem::TcpAmbiguous { count } => Finding::new(
 RuleId::TcpRouteAmbiguous,
                key,
                format!("{base}.tcpRoutes"),
                format!(
                    "expected tcpRoutes to select among the {count} TCP routes of VirtualService {vs_name}, found \
                     it omitted; the controller needs exactly one TCP route when tcpRoutes is omitted"
                ),
            ),
            RouteProblem::ListIgnored { field, vs_field } => Finding::new(
 RuleId::RouteListIgnored,
                key,
                format!("{base}.{field}"),
                format!(
                    "{field} is set but VirtualService {vs_name} has no {vs_field}; Argo Rollouts ignores the \
                     list, so nothing checks or patches those routes"
                ),
            ),
        }
        .about(subject));
    }

    let managed = rollout
        .canary()
        .and_then(|c| c.traffic_routing.as_ref())
        .and_then(|t| t.managed_routes.as_ref());
    for (i, m) in managed.into_iter().flatten().enumerate() {
        if let Some(j) = vs.http_routes().iter().position(|r| r.name() == m.name) {
            let route = &vs.http_routes()[j];
            // A route the controller wrote has one destination (header) or a mirror; both are
            // expected mid-rollout and are not the user's.
            let written_by_controller = route.mirror.is_some() || route.route.len() == 1;
            if written_by_controller && is_step_route(rollout, &m.name) {
                continue;
            }
            out.push(
                Finding::new(
 RuleId::ManagedRouteCollision,
                    key,
                    format!("spec.strategy.canary.trafficRouting.managedRoutes[{i}]"),
                    format!(
                        "managedRoutes name {:?} is also http route spec.http[{j}] of VirtualService {vs_name}; \
                         the controller deletes every route named in managedRoutes when a rollout ends or aborts; \
                         rename one of them",
                        m.name
                    ),
                )
                .with_target(format!("VirtualService {vs_name}"))
                .about(format!("managed route {:?}", m.name)),
            );
        }
    }
}

fn is_step_route(rollout: &Rollout, name: &str) -> bool {
    rollout.steps().iter().any(|s| {
        s.set_header_route.as_ref().is_some_and(|h| h.name == name)
            || s.set_mirror_route.as_ref().is_some_and(|m| m.name == name)
    })
}

fn vs_ref_at<'a>(rollout: &'a Rollout, base: &str) -> Option<&'a crate::model::rollout::VsRef> {
    rollout
        .vs_refs()
        .into_iter()
        .find(|(i, _)| super::references::vs_ref_path(*i) == base)
        .map(|(_, r)| r)
}

fn vs_tls_ref(rollout: &Rollout, base: &str, index: usize) -> String {
    let Some(r) = vs_ref_at(rollout, base).and_then(|r| r.tls_routes.as_ref()?.get(index).cloned())
    else {
        return "the listed port and SNI hosts".into();
    };
    let mut sni = r.sni_hosts.clone();
    sni.sort();
    sni.dedup();
    format!("port {} and sniHosts {}", r.port.unwrap_or(0), list(sni))
}

/// The hosts a `tlsRoutes[index].sniHosts` list names more than once.
fn vs_tls_duplicates(rollout: &Rollout, base: &str, index: usize) -> Vec<String> {
    let Some(r) = vs_ref_at(rollout, base).and_then(|r| r.tls_routes.as_ref()?.get(index).cloned())
    else {
        return Vec::new();
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut twice: Vec<String> = r
        .sni_hosts
        .iter()
        .filter(|h| !seen.insert(h.as_str()))
        .cloned()
        .collect();
    twice.sort();
    twice.dedup();
    twice
}

fn vs_tcp_port(rollout: &Rollout, base: &str, index: usize) -> i64 {
    vs_ref_at(rollout, base)
        .and_then(|r| r.tcp_routes.as_ref()?.get(index).and_then(|t| t.port))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use crate::rules::references::check;
    use crate::rules::testing::*;
    use serde_json::json;

    fn world(vs_spec: serde_json::Value) -> crate::index::Index {
        index(vec![
            object(vs_doc("app-vs", vs_spec)),
            service("app-canary", json!({"app": "app"})),
            service("app-stable", json!({"app": "app"})),
        ])
    }

    fn http(name: Option<&str>) -> serde_json::Value {
        let mut r = json!({"route": [
            {"destination": {"host": "app-stable"}, "weight": 100},
            {"destination": {"host": "app-canary"}, "weight": 0}]});
        if let Some(n) = name {
            r["name"] = json!(n);
        }
        r
    }

    fn tls(port: i64, sni: &[&str]) -> serde_json::Value {
        json!({"match": [{"port": port, "sniHosts": sni}], "route": [
            {"destination": {"host": "app-stable"}, "weight": 100},
            {"destination": {"host": "app-canary"}, "weight": 0}]})
    }

    #[test]
    fn a_tls_route_listing_a_host_twice_matches_nothing() {
        let r = rollout(host_level(json!({"name": "app-vs",
            "tlsRoutes": [{"port": 443, "sniHosts": ["app.example", "app.example"]}]})));
        let w = index(vec![object(vs_doc(
            "app-vs",
            json!({"hosts": ["app.example"], "tls": [{"match": [
            {"port": 443, "sniHosts": ["app.example"]}], "route": [
            {"destination": {"host": "app-stable"}, "weight": 100},
            {"destination": {"host": "app-canary"}, "weight": 0}]}]}),
        ))]);
        let f = crate::rules::references::check(&r, &w);
        let tls: Vec<_> = f
            .iter()
            .filter(|f| f.rule == crate::rules::RuleId::TlsRouteNotFound)
            .collect();
        assert_eq!(tls.len(), 1, "{f:?}");
        assert!(
            tls[0].message.contains("more than once"),
            "{}",
            tls[0].message
        );
    }

    #[test]
    fn http_route_found_and_not_found() {
        let w = world(
            json!({"hosts": ["app"], "http": [http(Some("primary")), http(Some("secondary"))]}),
        );
        assert!(check(
            &rollout(host_level(json!({"name": "app-vs", "routes": ["primary"]}))),
            &w
        )
        .is_empty());
        let f = check(
            &rollout(host_level(json!({"name": "app-vs", "routes": ["primry"]}))),
            &w,
        );
        assert_eq!(rules_of(&f), ["http-route-not-found"]);
        assert!(
            f[0].message.contains("[\"primary\", \"secondary\"]"),
            "{}",
            f[0].message
        );
        assert_eq!(
            f[0].path,
            "spec.strategy.canary.trafficRouting.istio.virtualService.routes[0]"
        );
    }

    #[test]
    fn http_route_ambiguous() {
        let w = world(json!({"hosts": ["app"], "http": [http(Some("a")), http(Some("b"))]}));
        let f = check(&rollout(host_level(json!({"name": "app-vs"}))), &w);
        assert_eq!(rules_of(&f), ["http-route-ambiguous"]);
        let dup = world(json!({"hosts": ["app"], "http": [http(Some("a")), http(Some("a"))]}));
        let f = check(
            &rollout(host_level(json!({"name": "app-vs", "routes": ["a"]}))),
            &dup,
        );
        assert_eq!(rules_of(&f), ["http-route-ambiguous"]);
        // One route, or the first unnamed one when the others are managed: not ambiguous.
        let one = world(json!({"hosts": ["app"], "http": [http(None)]}));
        assert!(check(&rollout(host_level(json!({"name": "app-vs"}))), &one).is_empty());
    }

    #[test]
    fn tls_route_not_found_shows_the_nearest() {
        let w =
            world(json!({"hosts": ["app"], "tls": [tls(443, &["app"]), tls(8443, &["app", "x"])]}));
        let ok = host_level(
            json!({"name": "app-vs", "tlsRoutes": [{"port": 443, "sniHosts": ["app"]}]}),
        );
        assert!(check(&rollout(ok), &w).is_empty());
        let bad =
            host_level(json!({"name": "app-vs", "tlsRoutes": [{"port": 8443, "sniHosts": ["x"]}]}));
        let f = check(&rollout(bad), &w);
        assert_eq!(rules_of(&f), ["tls-route-not-found"]);
        assert!(
            f[0].message
                .contains("nearest is spec.tls[1] with port 8443 and sniHosts [app, x]"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn tls_route_ambiguous_when_omitted() {
        let w = world(json!({"hosts": ["app"], "tls": [tls(443, &["app"]), tls(8443, &["app"])]}));
        let f = check(&rollout(host_level(json!({"name": "app-vs"}))), &w);
        assert_eq!(rules_of(&f), ["tls-route-ambiguous"]);
    }

    #[test]
    fn tcp_routes() {
        let tcp = |port: i64| {
            json!({"match": [{"port": port}], "route": [
            {"destination": {"host": "app-stable"}, "weight": 100},
            {"destination": {"host": "app-canary"}, "weight": 0}]})
        };
        let w = world(json!({"hosts": ["app"], "tcp": [tcp(3000), tcp(4000)]}));
        assert!(check(
            &rollout(host_level(
                json!({"name": "app-vs", "tcpRoutes": [{"port": 3000}]})
            )),
            &w
        )
        .is_empty());
        let f = check(
            &rollout(host_level(
                json!({"name": "app-vs", "tcpRoutes": [{"port": 5000}]}),
            )),
            &w,
        );
        assert_eq!(rules_of(&f), ["tcp-route-not-found"]);
        assert!(f[0].message.contains("[3000, 4000]"), "{}", f[0].message);
        let f = check(&rollout(host_level(json!({"name": "app-vs"}))), &w);
        assert_eq!(rules_of(&f), ["tcp-route-ambiguous"]);
    }

    #[test]
    fn route_list_ignored() {
        let w = world(json!({"hosts": ["app"], "tls": [tls(443, &["app"])]}));
        let f = check(
            &rollout(host_level(json!({"name": "app-vs", "routes": ["primary"]}))),
            &w,
        );
        assert_eq!(rules_of(&f), ["route-list-ignored"]);
    }

    #[test]
    fn managed_route_collision() {
        let w = world(
            json!({"hosts": ["app"], "http": [http(Some("primary")), http(Some("canary-header"))]}),
        );
        let mut c = host_level(json!({"name": "app-vs", "routes": ["primary"]}));
        c["trafficRouting"]["managedRoutes"] = json!([{"name": "canary-header"}]);
        let f = check(&rollout(c), &w);
        assert_eq!(rules_of(&f), ["managed-route-collision"]);
        let mut c = host_level(json!({"name": "app-vs", "routes": ["primary"]}));
        c["trafficRouting"]["managedRoutes"] = json!([{"name": "other"}]);
        assert!(check(&rollout(c), &w).is_empty());
    }
}
