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
            if port == Some(want_port) && sni == want_sni {
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
