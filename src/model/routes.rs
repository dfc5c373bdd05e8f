//! The routes of a VirtualService that a Rollout manages: exactly the set the controller patches.

use super::rollout::{Rollout, VsRef};
use super::virtualservice::{tcp_route_port, tls_route_identity, VirtualService};
use std::collections::BTreeSet;

/// Why a reference does not select a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteProblem {
    /// `routes[i]` names a route the VirtualService does not have.
    HttpNotFound {
        index: usize,
        name: String,
    },
    /// `routes[i]` names a route defined more than once.
    HttpDuplicate {
        index: usize,
        name: String,
    },
    /// `routes` omitted and several http routes are candidates.
    HttpAmbiguous {
        candidates: Vec<String>,
    },
    /// `tlsRoutes[i]` matches no TLS route; `nearest` is the closest one by port and SNI overlap.
    TlsNotFound {
        index: usize,
        nearest: Option<usize>,
    },
    /// `tlsRoutes` omitted and the VirtualService has several TLS routes.
    TlsAmbiguous {
        count: usize,
    },
    TcpNotFound {
        index: usize,
    },
    TcpAmbiguous {
        count: usize,
    },
    /// A route list for a route type the VirtualService does not have (Argo ignores it).
    ListIgnored {
        field: &'static str,
        vs_field: &'static str,
    },
}

/// Indexes of the weighted routes a reference selects, and what went wrong selecting them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub http: Vec<usize>,
    pub tls: Vec<usize>,
    pub tcp: Vec<usize>,
    pub problems: Vec<RouteProblem>,
}

/// The weighted routes (whose canary/stable weights the controller sets) that `vs_ref` selects.
pub fn select(rollout: &Rollout, vs_ref: &VsRef, vs: &VirtualService) -> Selection {
    let mut sel = Selection::default();
    let managed = rollout.managed_route_names();
    select_http(vs_ref, vs, &managed, &mut sel);
    select_tls(vs_ref, vs, &mut sel);
    select_tcp(vs_ref, vs, &mut sel);
    sel
}

fn select_http(vs_ref: &VsRef, vs: &VirtualService, managed: &[&str], sel: &mut Selection) {
    let listed = vs_ref.routes.as_deref().unwrap_or(&[]);
    let Some(http) = &vs.http else {
        if !listed.is_empty() {
            sel.problems.push(RouteProblem::ListIgnored {
                field: "routes",
                vs_field: "spec.http",
            });
        }
        return;
    };
    if listed.is_empty() {
        if http.len() == 1 {
            sel.http.push(0);
            return;
        }
        let unmanaged: Vec<&str> = http
            .iter()
            .map(|r| r.name())
            .filter(|n| n.is_empty() || !managed.contains(n))
            .collect();
        if unmanaged.len() > 1 {
            sel.problems.push(RouteProblem::HttpAmbiguous {
                candidates: unmanaged.iter().map(|n| n.to_string()).collect(),
            });
            return;
        }
        if let Some(i) = http.iter().position(|r| r.name().is_empty()) {
            sel.http.push(i);
        }
        return;
    }
    for (index, name) in listed.iter().enumerate() {
        let found: Vec<usize> = http
            .iter()
            .enumerate()
            .filter(|(_, r)| r.name() == name)
            .map(|(i, _)| i)
            .collect();
        match found.as_slice() {
            [] => sel.problems.push(RouteProblem::HttpNotFound {
                index,
                name: name.clone(),
            }),
            [i] => {
                if !sel.http.contains(i) {
                    sel.http.push(*i)
                }
            }
            _ => sel.problems.push(RouteProblem::HttpDuplicate {
                index,
                name: name.clone(),
            }),
        }
    }
}

fn select_tls(vs_ref: &VsRef, vs: &VirtualService, sel: &mut Selection) {
    let listed = vs_ref.tls_routes.as_deref().unwrap_or(&[]);
    let Some(tls) = &vs.tls else {
        if !listed.is_empty() {
            sel.problems.push(RouteProblem::ListIgnored {
                field: "tlsRoutes",
                vs_field: "spec.tls",
            });
        }
        return;
    };
    if tls.is_empty() {
        return;
    }
    if listed.is_empty() {
        if tls.len() == 1 {
            sel.tls.push(0);
        } else {
            sel.problems
                .push(RouteProblem::TlsAmbiguous { count: tls.len() });
        }
        return;
    }
    for (index, want) in listed.iter().enumerate() {
        let want_port = want.port.unwrap_or(0);
        let want_sni: BTreeSet<&str> = want.sni_hosts.iter().map(String::as_str).collect();
        let mut any = false;
        for (i, route) in tls.iter().enumerate() {
            let (port, sni) = tls_route_identity(route);
            // Argo Rollouts compares the listed hosts with the route's distinct hosts by length
            // first (`evaluate.Equal`), so a list naming a host twice matches no route.
            if port == Some(want_port) && sni == want_sni && want.sni_hosts.len() == sni.len() {
                any = true;
                if !sel.tls.contains(&i) {
                    sel.tls.push(i);
                }
            }
        }
        if !any {
            let nearest = tls
                .iter()
                .enumerate()
                .max_by_key(|(i, route)| {
                    let (port, sni) = tls_route_identity(route);
                    let overlap = sni.intersection(&want_sni).count();
                    // Same port first, then the largest SNI overlap, then the earliest route.
                    (port == Some(want_port), overlap, usize::MAX - i)
                })
                .map(|(i, _)| i);
            sel.problems
                .push(RouteProblem::TlsNotFound { index, nearest });
        }
    }
}

fn select_tcp(vs_ref: &VsRef, vs: &VirtualService, sel: &mut Selection) {
    let listed = vs_ref.tcp_routes.as_deref().unwrap_or(&[]);
    let Some(tcp) = &vs.tcp else {
        if !listed.is_empty() {
            sel.problems.push(RouteProblem::ListIgnored {
                field: "tcpRoutes",
                vs_field: "spec.tcp",
            });
        }
        return;
    };
    if tcp.is_empty() {
        return;
    }
    if listed.is_empty() {
        if tcp.len() == 1 {
            sel.tcp.push(0);
        } else {
            sel.problems
                .push(RouteProblem::TcpAmbiguous { count: tcp.len() });
        }
        return;
    }
    for (index, want) in listed.iter().enumerate() {
        let want_port = want.port.unwrap_or(0);
        let mut any = false;
        for (i, route) in tcp.iter().enumerate() {
            if tcp_route_port(route) == Some(want_port) {
                any = true;
                if !sel.tcp.contains(&i) {
                    sel.tcp.push(i);
                }
            }
        }
        if !any {
            sel.problems.push(RouteProblem::TcpNotFound { index });
        }
    }
}

/// Names of the http routes the controller inserts and owns: header and mirror routes named in
/// `managedRoutes`.
pub fn managed_route_names(rollout: &Rollout) -> BTreeSet<String> {
    rollout
        .managed_route_names()
        .into_iter()
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Object;
    use serde_json::{json, Value};

    fn rollout(vs_ref: Value, managed: Value) -> Rollout {
        let doc = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "r"},
            "spec": {"strategy": {"canary": {"canaryService": "c", "stableService": "s",
                "trafficRouting": {"managedRoutes": managed, "istio": {"virtualService": vs_ref}}}}}});
        match Object::parse(&doc, "default").unwrap().unwrap() {
            Object::Rollout(r) => (*r).clone(),
            _ => unreachable!(),
        }
    }

    fn vs(spec: Value) -> VirtualService {
        let doc = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "v"}, "spec": spec});
        match Object::parse(&doc, "default").unwrap().unwrap() {
            Object::VirtualService(v) => (*v).clone(),
            _ => unreachable!(),
        }
    }

    fn route(name: Option<&str>) -> Value {
        let mut r = json!({"route": [{"destination": {"host": "s"}, "weight": 100}]});
        if let Some(n) = name {
            r["name"] = json!(n);
        }
        r
    }

    fn sel(vs_ref: Value, managed: Value, spec: Value) -> Selection {
        let r = rollout(vs_ref.clone(), managed);
        let (_, reference) = r.vs_refs()[0];
        select(&r, &reference.clone(), &vs(spec))
    }

    #[test]
    fn http_routes_named_in_routes() {
        let s = sel(
            json!({"name": "v", "routes": ["b"]}),
            json!(null),
            json!({"http": [route(Some("a")), route(Some("b"))]}),
        );
        assert_eq!(s.http, [1]);
    }

    #[test]
    fn routes_omitted_selects_the_single_route() {
        let s = sel(
            json!({"name": "v"}),
            json!(null),
            json!({"http": [route(Some("only"))]}),
        );
        assert_eq!(s.http, [0]);
    }

    #[test]
    fn routes_omitted_selects_the_first_unnamed_route_when_the_others_are_managed() {
        let s = sel(
            json!({"name": "v"}),
            json!([{"name": "header"}]),
            json!({"http": [route(Some("header")), route(None)]}),
        );
        assert_eq!((s.http.clone(), s.problems.clone()), (vec![1], vec![]));
    }

    #[test]
    fn routes_omitted_with_several_unmanaged_routes_is_ambiguous() {
        let s = sel(
            json!({"name": "v"}),
            json!(null),
            json!({"http": [route(None), route(Some("b"))]}),
        );
        assert!(matches!(
            s.problems.as_slice(),
            [RouteProblem::HttpAmbiguous { .. }]
        ));
    }

    #[test]
    fn tls_routes_match_by_port_and_exact_sni_set() {
        let tls = |port: i64, sni: Value| json!({"match": [{"port": port, "sniHosts": sni}], "route": []});
        let spec = json!({"tls": [tls(443, json!(["a", "b"])), tls(443, json!(["a"]))]});
        let s = sel(
            json!({"name": "v", "tlsRoutes": [{"port": 443, "sniHosts": ["b", "a"]}]}),
            json!(null),
            spec.clone(),
        );
        assert_eq!(s.tls, [0]);
        let s = sel(
            json!({"name": "v", "tlsRoutes": [{"port": 443, "sniHosts": ["a", "c"]}]}),
            json!(null),
            spec.clone(),
        );
        assert!(matches!(
            s.problems.as_slice(),
            [RouteProblem::TlsNotFound {
                nearest: Some(0),
                ..
            }]
        ));
        let s = sel(json!({"name": "v"}), json!(null), spec);
        assert!(matches!(
            s.problems.as_slice(),
            [RouteProblem::TlsAmbiguous { count: 2 }]
        ));
    }

    #[test]
    fn unlisted_tls_and_tcp_take_index_zero() {
        let spec = json!({"http": [route(None)], "tls": [{"match": [{"sniHosts": ["a"]}], "route": []}],
            "tcp": [{"match": [{"port": 3000}], "route": []}]});
        let s = sel(json!({"name": "v"}), json!(null), spec);
        assert_eq!((s.http, s.tls, s.tcp), (vec![0], vec![0], vec![0]));
    }

    #[test]
    fn tcp_routes_match_by_port() {
        let tcp = |port: i64| json!({"match": [{"port": port}], "route": []});
        let s = sel(
            json!({"name": "v", "tcpRoutes": [{"port": 4000}]}),
            json!(null),
            json!({"tcp": [tcp(3000), tcp(4000)]}),
        );
        assert_eq!(s.tcp, [1]);
    }

    #[test]
    fn managed_route_names_are_the_controllers() {
        let r = rollout(
            json!({"name": "v"}),
            json!([{"name": "header"}, {"name": "mirror"}]),
        );
        assert_eq!(
            managed_route_names(&r).into_iter().collect::<Vec<_>>(),
            ["header", "mirror"]
        );
    }
}
