//! A VirtualService on its own: the Istio checks that matter to a canary (SNI hosts against the
//! VirtualService hosts, destination weights), with Istio's own semantics and wording.

use super::{Finding, RuleId};
use crate::model::host::{is_ip, subset_of};
use crate::model::virtualservice::RouteDestination;
use crate::model::{Kind, ObjectKey, VirtualService};

pub fn check(vs: &VirtualService) -> Vec<Finding> {
    let key = ObjectKey::new(Kind::VirtualService, &vs.meta.namespace, &vs.meta.name);
    let mut out = Vec::new();
    for (i, route) in vs.tls_routes().iter().enumerate() {
        for (j, m) in route.matches.iter().enumerate() {
            for (k, sni) in m.sni_hosts.iter().enumerate() {
                // Istio warns about IP addresses and skips the subset check for them.
                if is_ip(sni) || vs.hosts.iter().any(|h| subset_of(sni, h)) {
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
        assert!(check(&tls_vs(json!(["*"]), json!(["anything.example"]))).is_empty());
        // IP addresses are Istio's warning, not this rule.
        assert!(check(&tls_vs(json!(["app"]), json!(["1.1.1.1"]))).is_empty());
        // A wildcard SNI host is never covered by a non-wildcard host.
        assert_eq!(
            rules_of(&check(&tls_vs(json!(["a.b.com"]), json!(["*.b.com"])))),
            ["sni-host-not-in-hosts"]
        );
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
