//! A Rollout on its own: the mistakes Argo Rollouts would report as `InvalidSpec` at reconcile
//! time, caught when the Rollout is applied.

use super::{quoted, Finding, RuleId};
use crate::model::rollout::{argo_version, ArgoVersion, StringMatch};
use crate::model::{ObjectKey, Rollout};

const CANARY: &str = "spec.strategy.canary";
const ISTIO: &str = "spec.strategy.canary.trafficRouting.istio";

pub fn check(rollout: &Rollout) -> Vec<Finding> {
    let key = ObjectKey::new(
        crate::model::Kind::Rollout,
        &rollout.meta.namespace,
        &rollout.meta.name,
    );
    let mut out = Vec::new();
    let Some(canary) = rollout.canary() else {
        return out;
    };
    let routing = canary.traffic_routing.as_ref();
    let istio = rollout.istio();

    if let Some(istio) = istio {
        match (&istio.virtual_service, &istio.virtual_services) {
            (Some(_), Some(_)) => out.push(Finding::new(
 RuleId::IstioVirtualServiceForm,
                &key,
                ISTIO,
                "expected exactly one of virtualService or virtualServices, found both; keep one \
                 (an empty virtualServices list counts as set)",
            )),
            (None, None) => out.push(Finding::new(
 RuleId::IstioVirtualServiceForm,
                &key,
                ISTIO,
                "expected exactly one of virtualService or virtualServices, found neither; name the \
                 VirtualService whose weights the controller sets",
            )),
            _ => {}
        }
        for (i, vs_ref) in rollout.vs_refs() {
            if vs_ref.name.matches('.').count() > 1 {
                let path = match i {
                    Some(i) => format!("{ISTIO}.virtualServices[{i}].name"),
                    None => format!("{ISTIO}.virtualService.name"),
                };
                let ns = &rollout.meta.namespace;
                let version = argo_version();
                let other = match version {
                    ArgoVersion::V1_10 => ArgoVersion::V1_9,
                    ArgoVersion::V1_9 => ArgoVersion::V1_10,
                };
                let (vs_ns, vs_name) = version.split(&vs_ref.name, ns);
                let (other_ns, other_name) = other.split(&vs_ref.name, ns);
                let differs = if (&vs_ns, &vs_name) == (&other_ns, &other_name) {
                    format!("Argo Rollouts {} reads it the same way", other.as_str())
                } else {
                    format!(
                        "Argo Rollouts {} reads it as VirtualService {other_name:?} in namespace {other_ns:?}",
                        other.as_str()
                    )
                };
                out.push(
                    Finding::new(
                        RuleId::VirtualServiceReferenceForm,
                        &key,
                        path,
                        format!(
                            "expected \"name\" or \"name.namespace\", found {:?}: read as Argo Rollouts {} reads it \
                             (--argo-rollouts-version), VirtualService {vs_name:?} in namespace {vs_ns:?}; {differs}; \
                             write \"name.namespace\" with no other dots",
                            vs_ref.name,
                            version.as_str()
                        ),
                    )
                    .about(&vs_ref.name),
                );
            }
        }
    }

    let canary_svc = canary.canary_service.as_deref().unwrap_or("");
    let stable_svc = canary.stable_service.as_deref().unwrap_or("");
    let has_dr = istio.is_some_and(|i| i.destination_rule.is_some());
    if routing.is_some() && !has_dr && canary.ping_pong.is_none() {
        for (field, value) in [("stableService", stable_svc), ("canaryService", canary_svc)] {
            if value.is_empty() {
                out.push(Finding::new(
 RuleId::ServicesRequired,
                    &key,
                    format!("{CANARY}.{field}"),
                    format!(
                        "expected a Service name: host-level traffic routing needs both canaryService and \
                         stableService, found {field} unset; set it, or use a destinationRule for \
                         subset-level routing"
                    ),
                ));
            }
        }
    }
    if !canary_svc.is_empty() && canary_svc == stable_svc {
        out.push(Finding::new(
            RuleId::ServicesDistinct,
            &key,
            format!("{CANARY}.stableService"),
            format!(
                "expected two different Services, found {canary_svc:?} as both canaryService and \
                 stableService; the canary and stable pods need a Service each"
            ),
        ));
    }
    if let Some(pp) = &canary.ping_pong {
        for (field, value) in [
            ("pingService", &pp.ping_service),
            ("pongService", &pp.pong_service),
        ] {
            if value.is_empty() {
                out.push(Finding::new(
                    RuleId::ServicesRequired,
                    &key,
                    format!("{CANARY}.pingPong.{field}"),
                    format!(
                        "expected a Service name in pingPong.{field}, found it empty: the ping-pong feature needs \
                         both pingService and pongService (Argo Rollouts: \"Ping service and Pong service must to \
                         be set to use Ping-Pong feature\")"
                    ),
                ));
            }
        }
        if !pp.ping_service.is_empty() && pp.ping_service == pp.pong_service {
            out.push(Finding::new(
 RuleId::ServicesDistinct,
                &key,
                format!("{CANARY}.pingPong.pingService"),
                format!(
                    "expected two different Services, found {:?} as both pingService and pongService",
                    pp.ping_service
                ),
            ));
        }
    }
    if let Some(max) = routing.and_then(|r| r.max_traffic_weight) {
        if istio.is_some() {
            out.push(Finding::new(
 RuleId::MaxTrafficWeightUnsupported,
                &key,
                format!("{CANARY}.trafficRouting.maxTrafficWeight"),
                format!(
                    "maxTrafficWeight is only supported with Nginx and plugin routers, found {max} with \
                     Istio; remove it (Istio weights are out of 100)"
                ),
            ));
        }
    }

    let managed = routing.and_then(|r| r.managed_routes.as_ref());
    for (i, step) in canary.steps.iter().enumerate() {
        let step_path = format!("{CANARY}.steps[{i}]");
        let first_of_step = out.len();
        if let Some(w) = step.set_weight {
            if !(0..=100).contains(&w) {
                out.push(Finding::new(
                    RuleId::SetWeightRange,
                    &key,
                    format!("{step_path}.setWeight"),
                    format!("expected a weight between 0 and 100, found {w}"),
                ));
            }
        }
        if let Some(scale) = &step.set_canary_scale {
            if let Some(w) = scale.weight.filter(|w| !(0..=100).contains(w)) {
                out.push(Finding::new(
                    RuleId::CanaryScaleRange,
                    &key,
                    format!("{step_path}.setCanaryScale.weight"),
                    format!("expected a percentage between 0 and 100, found {w}"),
                ));
            }
            if let Some(n) = scale.replicas.filter(|n| *n < 0) {
                out.push(Finding::new(
                    RuleId::CanaryScaleRange,
                    &key,
                    format!("{step_path}.setCanaryScale.replicas"),
                    format!("expected a replica count of 0 or more, found {n}"),
                ));
            }
        }
        if let Some(mirror) = &step.set_mirror_route {
            if let Some(p) = mirror.percentage.filter(|p| !(0..=100).contains(p)) {
                out.push(Finding::new(
                    RuleId::MirrorPercentageRange,
                    &key,
                    format!("{step_path}.setMirrorRoute.percentage"),
                    format!("expected a percentage between 0 and 100, found {p}"),
                ));
            }
            for (j, m) in mirror.matches.iter().flatten().enumerate() {
                for (field, sm) in [("method", &m.method), ("path", &m.path)] {
                    if let Some(sm) = sm {
                        string_match(
                            &mut out,
                            &key,
                            format!("{step_path}.setMirrorRoute.match[{j}].{field}"),
                            sm,
                        );
                    }
                }
            }
        }
        if let Some(header) = &step.set_header_route {
            for (j, m) in header.matches.iter().flatten().enumerate() {
                let path = format!("{step_path}.setHeaderRoute.match[{j}].headerValue");
                match &m.header_value {
                    Some(sm) => string_match(&mut out, &key, path, sm),
                    None => out.push(Finding::new(
 RuleId::HeaderMatchValue,
                        &key,
                        path,
                        format!(
                            "expected exactly one of exact, regex or prefix for header {:?}, found no headerValue",
                            m.header_name
                        ),
                    )),
                }
            }
        }
        let route_step = [
            step.set_header_route
                .as_ref()
                .map(|s| ("setHeaderRoute", s.name.as_str())),
            step.set_mirror_route
                .as_ref()
                .map(|s| ("setMirrorRoute", s.name.as_str())),
        ];
        for (field, name) in route_step.into_iter().flatten() {
            match managed {
                None if routing.is_some() => out.push(Finding::new(
 RuleId::ManagedRoutesRequired,
                    &key,
                    format!("{step_path}.{field}"),
                    format!(
                        "a {field} step needs spec.strategy.canary.trafficRouting.managedRoutes, found none; \
                         add {{name: {name:?}}} to managedRoutes"
                    ),
                )),
                Some(list) if !list.iter().any(|r| r.name == name) => out.push(Finding::new(
 RuleId::ManagedRouteUndefined,
                    &key,
                    format!("{step_path}.{field}.name"),
                    format!(
                        "expected a route listed in trafficRouting.managedRoutes, found {name:?}; managedRoutes \
                         lists {}",
                        quoted(list.iter().map(|r| r.name.as_str()))
                    ),
                )),
                _ => {}
            }
        }
        // Steps have no names: a step's problems are about its content, wherever it moves.
        let subject = format!("step {step:?}");
        for f in &mut out[first_of_step..] {
            f.subject.clone_from(&subject);
        }
    }
    out
}

fn string_match(out: &mut Vec<Finding>, key: &ObjectKey, path: String, sm: &StringMatch) {
    let n = sm.kinds_set();
    if n != 1 {
        out.push(Finding::new(
            RuleId::HeaderMatchValue,
            key,
            path,
            format!("expected exactly one of exact, regex or prefix, found {n}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{host_level, rollout, rules_of};
    use serde_json::json;

    fn ids(canary: serde_json::Value) -> Vec<&'static str> {
        rules_of(&check(&rollout(canary)))
    }

    #[test]
    fn a_valid_host_level_rollout_is_clean() {
        assert!(ids(host_level(json!({"name": "app-vs", "routes": ["primary"]}))).is_empty());
    }

    #[test]
    fn virtualservice_form() {
        let both = json!({"canaryService": "c", "stableService": "s", "trafficRouting": {"istio": {
            "virtualService": {"name": "a"}, "virtualServices": [{"name": "b"}]}}});
        assert_eq!(ids(both), ["istio-virtualservice-form"]);
        let neither =
            json!({"canaryService": "c", "stableService": "s", "trafficRouting": {"istio": {}}});
        assert_eq!(ids(neither), ["istio-virtualservice-form"]);
        let empty_list = json!({"canaryService": "c", "stableService": "s", "trafficRouting": {"istio": {
            "virtualServices": []}}});
        assert!(ids(empty_list).is_empty());
    }

    #[test]
    fn reference_form_warns_on_two_dots() {
        assert_eq!(
            ids(host_level(json!({"name": "vs.ns.cluster"}))),
            ["virtualservice-reference-form"]
        );
        assert!(ids(host_level(json!({"name": "vs.ns"}))).is_empty());
    }

    #[test]
    fn services_required_and_distinct() {
        let missing = json!({"canaryService": "c", "trafficRouting": {"istio": {"virtualService": {"name": "v"}}}});
        assert_eq!(ids(missing), ["services-required"]);
        let subset = json!({"trafficRouting": {"istio": {"virtualService": {"name": "v"},
            "destinationRule": {"name": "d", "canarySubsetName": "c", "stableSubsetName": "s"}}}});
        assert!(ids(subset).is_empty());
        let same = json!({"canaryService": "x", "stableService": "x",
            "trafficRouting": {"istio": {"virtualService": {"name": "v"}}}});
        assert_eq!(ids(same), ["services-distinct"]);
        let pp = json!({"pingPong": {"pingService": "p", "pongService": "p"},
            "trafficRouting": {"istio": {"virtualService": {"name": "v"}}}});
        assert_eq!(ids(pp), ["services-distinct"]);
    }

    #[test]
    fn ranges() {
        let mut c = host_level(json!({"name": "v"}));
        c["steps"] =
            json!([{"setWeight": 101}, {"setWeight": -1}, {"setWeight": 100}, {"setWeight": 0}]);
        assert_eq!(ids(c.clone()), ["set-weight-range", "set-weight-range"]);
        c["steps"] = json!([{"setCanaryScale": {"weight": 150}}, {"setCanaryScale": {"replicas": -2}},
            {"setCanaryScale": {"weight": 50}}]);
        assert_eq!(ids(c.clone()), ["canary-scale-range", "canary-scale-range"]);
        c["trafficRouting"]["managedRoutes"] = json!([{"name": "m"}]);
        c["steps"] = json!([{"setMirrorRoute": {"name": "m", "percentage": 120}},
            {"setMirrorRoute": {"name": "m", "percentage": 50}}]);
        assert_eq!(ids(c), ["mirror-percentage-range"]);
    }

    #[test]
    fn managed_routes() {
        let mut c = host_level(json!({"name": "v"}));
        c["steps"] = json!([{"setHeaderRoute": {"name": "h", "match": [{"headerName": "x", "headerValue": {"exact": "1"}}]}}]);
        assert_eq!(ids(c.clone()), ["managed-routes-required"]);
        c["trafficRouting"]["managedRoutes"] = json!([{"name": "other"}]);
        let f = check(&rollout(c.clone()));
        assert_eq!(rules_of(&f), ["managed-route-undefined"]);
        assert!(f[0].message.contains("[\"other\"]"), "{}", f[0].message);
        c["trafficRouting"]["managedRoutes"] = json!([{"name": "h"}]);
        assert!(ids(c).is_empty());
    }

    #[test]
    fn header_match_value() {
        let mut c = host_level(json!({"name": "v"}));
        c["trafficRouting"]["managedRoutes"] = json!([{"name": "h"}]);
        c["steps"] = json!([{"setHeaderRoute": {"name": "h", "match": [
            {"headerName": "a", "headerValue": {"exact": "1", "regex": "2"}},
            {"headerName": "b", "headerValue": {}},
            {"headerName": "c"},
            {"headerName": "d", "headerValue": {"prefix": "x"}}]}}]);
        assert_eq!(
            ids(c),
            [
                "header-match-value",
                "header-match-value",
                "header-match-value"
            ]
        );
    }

    #[test]
    fn max_traffic_weight_is_not_for_istio() {
        let mut c = host_level(json!({"name": "v"}));
        c["trafficRouting"]["maxTrafficWeight"] = json!(1000);
        assert_eq!(ids(c), ["max-traffic-weight-unsupported"]);
    }
}

#[cfg(test)]
mod ping_pong_tests {
    use super::*;
    use crate::rules::references;
    use crate::rules::testing::*;
    use serde_json::json;

    #[test]
    fn an_empty_ping_or_pong_service_names_the_missing_field() {
        let r = rollout(json!({
            "pingPong": {"pingService": "", "pongService": "app-pong"},
            "trafficRouting": {"istio": {"virtualService": {"name": "app-vs", "routes": ["primary"]}}}
        }));
        let f = check(&r);
        assert_eq!(rules_of(&f), ["services-required"]);
        assert!(f[0].path.ends_with("pingPong.pingService"), "{}", f[0].path);
        let world = index(vec![object(vs_doc(
            "app-vs",
            json!({"hosts": ["app"], "http": [{"name": "primary", "route": [
                {"destination": {"host": "app-pong"}, "weight": 100}]}]}),
        ))]);
        let refs = references::check(&r, &world);
        assert!(
            !refs.iter().any(|f| f.message.contains("Service \"\"")),
            "no message about an empty Service: {refs:?}"
        );
    }
}
