//! A VirtualService on its own: what Istio's webhook refuses (routes, hosts, TLS matches and SNI
//! hosts, destination weights), with Istio's own semantics and wording
//! (`pkg/config/validation/virtualservice.go`).

use super::{Finding, RuleId};
use crate::model::host::{gateway_domain_error, is_ip, matches, subset_of, wildcard_domain_error};
use crate::model::virtualservice::RouteDestination;
use crate::model::{Kind, ObjectKey, VirtualService};

pub fn check(vs: &VirtualService) -> Vec<Finding> {
    let key = ObjectKey::new(Kind::VirtualService, &vs.meta.namespace, &vs.meta.name);
    let mut out = Vec::new();
    if vs.http_routes().is_empty() && vs.tls_routes().is_empty() && vs.tcp_routes().is_empty() {
        out.push(Finding::new(
            RuleId::VirtualServiceRoutesRequired,
            &key,
            "spec",
            "http, tcp or tls must be provided in virtual service; add the route the Rollout manages",
        ));
    }
    hosts(vs, &key, &mut out);
    // Istio's `isGateway` for SNI hosts: `mesh` not among the gateways (also when there are none).
    let sni_via_gateway = !vs.gateways.iter().any(|g| g == "mesh");
    for (i, route) in vs.tls_routes().iter().enumerate() {
        if route.matches.is_empty() {
            out.push(Finding::new(
                RuleId::TlsMatchInvalid,
                &key,
                format!("spec.tls[{i}].match"),
                "TLS route must have at least one match condition; add a match with port and sniHosts",
            )
            .about(format!("tls route {:?}", route.route)));
        }
        for (j, m) in route.matches.iter().enumerate() {
            if m.sni_hosts.is_empty() {
                out.push(Finding::new(
                    RuleId::TlsMatchInvalid,
                    &key,
                    format!("spec.tls[{i}].match[{j}].sniHosts"),
                    "TLS match must have at least one SNI host; list the hosts this route serves",
                )
                .about(format!("tls {:?}", route.matches)));
            }
            for (k, sni) in m.sni_hosts.iter().enumerate() {
                let syntax = if sni_via_gateway {
                    gateway_domain_error(true, sni)
                } else {
                    wildcard_domain_error(sni)
                };
                // Istio warns about IP addresses and skips the subset check for them.
                if is_ip(sni) {
                    continue;
                }
                if let Some(problem) = syntax {
                    out.push(
                        Finding::new(
                            RuleId::TlsMatchInvalid,
                            &key,
                            format!("spec.tls[{i}].match[{j}].sniHosts[{k}]"),
                            format!(
                                "{problem}; write a host name or a wildcard such as *.example.com"
                            ),
                        )
                        .about(format!("tls {:?} sni {sni}", route.matches)),
                    );
                    continue;
                }
                if vs.hosts.iter().any(|h| subset_of(sni, h)) {
                    continue;
                }
                out.push(Finding::new(
 RuleId::SniHostNotInHosts,
                    &key,
                    format!("spec.tls[{i}].match[{j}].sniHosts[{k}]"),
                    format!(
                        "SNI host {sni:?} is not a compatible subset of any of the virtual service hosts: [{}]; \
                         add it (or a wildcard that covers it) to spec.hosts, or remove it from sniHosts",
                        vs.hosts.join(", ")
                    ),
                )
                .about(format!("tls {:?} sni {sni}", route.matches)));
            }
        }
    }
    let routes = vs
        .http_routes()
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                format!("spec.http[{i}]"),
                format!("http {:?}", r.name()),
                r.route.as_slice(),
            )
        })
        .chain(vs.tls_routes().iter().enumerate().map(|(i, r)| {
            (
                format!("spec.tls[{i}]"),
                format!("tls {:?}", r.matches),
                r.route.as_slice(),
            )
        }))
        .chain(vs.tcp_routes().iter().enumerate().map(|(i, r)| {
            (
                format!("spec.tcp[{i}]"),
                format!("tcp {:?}", r.matches),
                r.route.as_slice(),
            )
        }));
    for (path, subject, dests) in routes {
        let first = out.len();
        weights(&key, &path, dests, &mut out);
        for f in &mut out[first..] {
            f.subject = format!("{subject} / {}", f.subject);
        }
    }
    out
}

/// `spec.hosts` as Istio checks them: each a valid (wildcard) domain or an IP, `*` only on a
/// VirtualService bound to gateways alone, and (when all are valid) no two that overlap.
fn hosts(vs: &VirtualService, key: &ObjectKey, out: &mut Vec<Finding>) {
    let applies_to_mesh = vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh");
    let applies_to_gateway = !applies_to_mesh;
    let sni = vs
        .tls_routes()
        .iter()
        .any(|r| r.matches.iter().any(|m| !m.sni_hosts.is_empty()));
    let mut all_valid = true;
    for (i, host) in vs.hosts.iter().enumerate() {
        let syntax = if applies_to_gateway {
            gateway_domain_error(sni, host)
        } else {
            wildcard_domain_error(host)
        };
        let problem = match syntax {
            Some(_) if is_ip(host) => None,
            Some(problem) => {
                all_valid = false;
                Some(problem)
            }
            None if applies_to_mesh && host == "*" => Some(
                "wildcard host * is not allowed for virtual services bound to the mesh gateway"
                    .to_string(),
            ),
            None => None,
        };
        if let Some(problem) = problem {
            out.push(
                Finding::new(
                    RuleId::VirtualServiceHostInvalid,
                    key,
                    format!("spec.hosts[{i}]"),
                    format!("{problem}; Istio refuses the VirtualService"),
                )
                .about(format!("host {host}")),
            );
        }
    }
    if !all_valid {
        return;
    }
    for (i, a) in vs.hosts.iter().enumerate() {
        for b in &vs.hosts[i + 1..] {
            if matches(a, b) {
                out.push(
                    Finding::new(
                        RuleId::VirtualServiceHostInvalid,
                        key,
                        "spec.hosts",
                        format!(
                            "duplicate hosts in virtual service: {a} & {b}; keep one (overlapping wildcards count)"
                        ),
                    )
                    .about(format!("hosts {a} & {b}")),
                );
            }
        }
    }
}

/// Istio ≥ 1.15: no negative weight, and not every destination at 0 when there are several.
fn weights(key: &ObjectKey, path: &str, dests: &[RouteDestination], out: &mut Vec<Finding>) {
    for (j, d) in dests.iter().enumerate() {
        if let Some(w) = d.weight.filter(|w| *w < 0) {
            out.push(
                Finding::new(
                    RuleId::RouteWeightsInvalid,
                    key,
                    format!("{path}.route[{j}].weight"),
                    format!(
                        "expected a weight of 0 or more, found weight {w} < 0 (destination {:?})",
                        d.destination.host
                    ),
                )
                .about(format!(
                    "{:?} {:?}",
                    d.destination.host,
                    d.destination.subset()
                )),
            );
        }
    }
    if dests.len() > 1 && dests.iter().all(|d| d.weight.unwrap_or(0) == 0) {
        out.push(Finding::new(
 RuleId::RouteWeightsInvalid,
            key,
            format!("{path}.route"),
            format!(
                "expected at least one destination with a weight above 0, found total destination weight = 0 across \
                 {} destinations; Istio rejects this route",
                dests.len()
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{rules_of, vs};
    use serde_json::json;

    fn tls_vs(hosts: serde_json::Value, sni: serde_json::Value) -> std::sync::Arc<VirtualService> {
        vs(
            "v",
            json!({"hosts": hosts, "tls": [{"match": [{"port": 3000, "sniHosts": sni}],
            "route": [{"destination": {"host": "s"}, "weight": 100}]}]}),
        )
    }

    #[test]
    fn the_seed_case_gets_one_finding_per_sni_host() {
        let f = check(&tls_vs(
            json!(["rollouts-demo-vsvc1.local"]),
            json!(["reviews.bookinfo.com", "localhost"]),
        ));
        assert_eq!(
            rules_of(&f),
            ["sni-host-not-in-hosts", "sni-host-not-in-hosts"]
        );
        assert!(f[0].message.starts_with(
            "SNI host \"reviews.bookinfo.com\" is not a compatible subset of any of the virtual service hosts: \
             [rollouts-demo-vsvc1.local]"
        ));
        assert!(f[1]
            .message
            .starts_with("SNI host \"localhost\" is not a compatible subset"));
        assert_eq!(f[1].path, "spec.tls[0].match[0].sniHosts[1]");
    }

    #[test]
    fn covered_sni_hosts_pass() {
        assert!(check(&tls_vs(json!(["app"]), json!(["app"]))).is_empty());
        assert!(check(&tls_vs(
            json!(["a.com", "*.bookinfo.com"]),
            json!(["reviews.bookinfo.com"])
        ))
        .is_empty());
        let on_a_gateway = vs(
            "v",
            json!({"hosts": ["*"], "gateways": ["edge"], "tls": [{"match": [{"port": 3000,
            "sniHosts": ["anything.example"]}], "route": [{"destination": {"host": "s"}}]}]}),
        );
        assert!(check(&on_a_gateway).is_empty());
        // IP addresses are Istio's warning, not this rule.
        assert!(check(&tls_vs(json!(["app"]), json!(["1.1.1.1"]))).is_empty());
        // A wildcard SNI host is never covered by a non-wildcard host.
        assert_eq!(
            rules_of(&check(&tls_vs(json!(["a.b.com"]), json!(["*.b.com"])))),
            ["sni-host-not-in-hosts"]
        );
    }

    /// Upstream `TestValidateVirtualService` outcomes (istio-validation-spec.md §6.4).
    #[test]
    fn what_istio_refuses_in_a_virtualservice() {
        let http = json!([{"route": [{"destination": {"host": "s"}}]}]);
        let rules = |spec: serde_json::Value| rules_of(&check(&vs("v", spec)));
        assert_eq!(
            rules(json!({"hosts": ["a"]})),
            ["virtualservice-routes-required"]
        );
        assert_eq!(
            rules(json!({"hosts": ["*"], "http": http})),
            ["virtualservice-host-invalid"]
        );
        assert_eq!(
            rules(json!({"hosts": ["*"], "gateways": ["gw"], "http": http})),
            Vec::<&str>::new()
        );
        assert_eq!(
            rules(json!({"hosts": ["*"], "gateways": ["mesh", "gw"], "http": http})),
            ["virtualservice-host-invalid"]
        );
        assert_eq!(
            rules(json!({"hosts": ["foo.ba!r"], "http": http})),
            ["virtualservice-host-invalid"]
        );
        assert_eq!(
            rules(json!({"hosts": ["1.2.3.4"], "http": http})),
            Vec::<&str>::new()
        );
        let dup = check(&vs(
            "v",
            json!({"hosts": ["*.foo.bar", "*.bar"], "http": http}),
        ));
        assert_eq!(rules_of(&dup), ["virtualservice-host-invalid"]);
        assert!(dup[0]
            .message
            .starts_with("duplicate hosts in virtual service: *.foo.bar & *.bar"));
        assert_eq!(
            rules(json!({"hosts": ["a", "a"], "http": http})),
            ["virtualservice-host-invalid"]
        );

        let bad_sni = check(&tls_vs(json!(["a.com"]), json!(["foo.*.com"])));
        assert_eq!(
            rules_of(&bad_sni),
            ["tls-match-invalid"],
            "invalid, not 'not a compatible subset'"
        );
        assert!(
            bad_sni[0]
                .message
                .starts_with("domain name \"*.com\" invalid"),
            "{}",
            bad_sni[0].message
        );
        let no_sni = vs(
            "v",
            json!({"hosts": ["a"], "tls": [{"match": [{"port": 443}],
            "route": [{"destination": {"host": "s"}}]}]}),
        );
        let f = check(&no_sni);
        assert_eq!(rules_of(&f), ["tls-match-invalid"]);
        assert!(f[0]
            .message
            .starts_with("TLS match must have at least one SNI host"));
        let no_match = vs(
            "v",
            json!({"hosts": ["a"], "tls": [{"route": [{"destination": {"host": "s"}}]}]}),
        );
        assert_eq!(rules_of(&check(&no_match)), ["tls-match-invalid"]);
    }

    #[test]
    fn route_weights() {
        let ok = vs(
            "v",
            json!({"hosts": ["a"], "http": [{"route": [
            {"destination": {"host": "s"}, "weight": 550}, {"destination": {"host": "c"}, "weight": 500}]},
            {"route": [{"destination": {"host": "s"}, "weight": 0}]}]}),
        );
        assert!(check(&ok).is_empty());
        let negative = vs(
            "v",
            json!({"hosts": ["a"], "http": [{"route": [
            {"destination": {"host": "s"}, "weight": 5}, {"destination": {"host": "c"}, "weight": -1}]}]}),
        );
        assert_eq!(rules_of(&check(&negative)), ["route-weights-invalid"]);
        let zero = vs(
            "v",
            json!({"hosts": ["a"], "tcp": [{"route": [
            {"destination": {"host": "s"}, "weight": 0}, {"destination": {"host": "c"}}]}]}),
        );
        let f = check(&zero);
        assert_eq!(rules_of(&f), ["route-weights-invalid"]);
        assert!(f[0].message.contains("total destination weight = 0"));
    }
}
