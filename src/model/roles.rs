//! Which destinations of a route belong to a Rollout, and as what.

use super::host::first_label;
use super::rollout::Rollout;
use super::virtualservice::Destination;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Canary,
    Stable,
    /// An experiment Service the controller added (`status.canary.weights.additional`).
    Experiment,
    /// A subset in `additionalSubsetNames`: its weight is the user's.
    AdditionalSubset,
    /// No role: the controller deletes it from a managed route when its weight is not 0.
    Foreign,
}

/// The canary and stable destinations of a Rollout, as the controller resolves them.
#[derive(Debug, Clone, Default)]
pub struct Roles {
    pub canary_service: String,
    pub stable_service: String,
    pub canary_subset: String,
    pub stable_subset: String,
    pub additional_subsets: Vec<String>,
    pub experiment_services: Vec<String>,
    pub ping_pong: bool,
}

impl Roles {
    pub fn of(rollout: &Rollout) -> Roles {
        let mut roles = Roles::default();
        let Some(canary) = rollout.canary() else {
            return roles;
        };
        let canary_svc = canary.canary_service.clone().unwrap_or_default();
        let stable_svc = canary.stable_service.clone().unwrap_or_default();
        match (
            &canary.ping_pong,
            canary_svc.is_empty() && stable_svc.is_empty(),
        ) {
            (Some(pp), true) => {
                roles.ping_pong = true;
                let stable_is_ping = rollout
                    .status
                    .as_ref()
                    .ok()
                    .and_then(|s| s.canary.stable_ping_pong.as_deref())
                    == Some("ping");
                if stable_is_ping {
                    roles.stable_service = pp.ping_service.clone();
                    roles.canary_service = pp.pong_service.clone();
                } else {
                    roles.stable_service = pp.pong_service.clone();
                    roles.canary_service = pp.ping_service.clone();
                }
            }
            _ => {
                roles.canary_service = canary_svc;
                roles.stable_service = stable_svc;
            }
        }
        if let Some(dr) = rollout.istio().and_then(|i| i.destination_rule.as_ref()) {
            roles.canary_subset = dr.canary_subset_name.clone();
            roles.stable_subset = dr.stable_subset_name.clone();
            roles.additional_subsets = dr.additional_subset_names.clone();
        }
        if let Ok(status) = &rollout.status {
            if let Some(w) = &status.canary.weights {
                roles.experiment_services = w
                    .additional
                    .iter()
                    .filter_map(|a| a.service_name.clone())
                    .filter(|s| !s.is_empty())
                    .collect();
            }
        }
        roles
    }

    /// Subset level: the canary and stable are subsets of one host.
    pub fn subset_mode(&self) -> bool {
        !self.canary_subset.is_empty() || !self.stable_subset.is_empty()
    }

    /// Argo's order: canary first, then stable, then experiment, then additional subsets.
    pub fn classify(&self, d: &Destination) -> Role {
        let host = first_label(&d.host);
        let subset = d.subset();
        let is = |svc: &str, sub: &str| {
            (!svc.is_empty() && host == svc) || (!subset.is_empty() && subset == sub)
        };
        if is(&self.canary_service, &self.canary_subset) {
            Role::Canary
        } else if is(&self.stable_service, &self.stable_subset) {
            Role::Stable
        } else if self.experiment_services.iter().any(|e| e == host) {
            Role::Experiment
        } else if !subset.is_empty() && self.additional_subsets.iter().any(|s| s == subset) {
            Role::AdditionalSubset
        } else {
            Role::Foreign
        }
    }

    /// Whether the Rollout names a canary (a Service, or a subset in subset mode) at all; when it
    /// does not, the missing field is the Rollout's own problem, not the VirtualService's.
    pub fn names_canary(&self) -> bool {
        !if self.subset_mode() {
            &self.canary_subset
        } else {
            &self.canary_service
        }
        .is_empty()
    }

    pub fn names_stable(&self) -> bool {
        !if self.subset_mode() {
            &self.stable_subset
        } else {
            &self.stable_service
        }
        .is_empty()
    }

    /// How the canary is named in messages.
    pub fn describe_canary(&self) -> String {
        if self.subset_mode() {
            format!("DestinationRule subset {:?}", self.canary_subset)
        } else {
            format!("Service {:?}", self.canary_service)
        }
    }

    pub fn describe_stable(&self) -> String {
        if self.subset_mode() {
            format!("DestinationRule subset {:?}", self.stable_subset)
        } else {
            format!("Service {:?}", self.stable_service)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Object;
    use serde_json::json;

    fn rollout(canary: serde_json::Value, status: serde_json::Value) -> Rollout {
        let doc = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "r", "namespace": "ns"},
            "spec": {"strategy": {"canary": canary}},
            "status": status,
        });
        match Object::parse(&doc, "default").unwrap().unwrap() {
            Object::Rollout(r) => (*r).clone(),
            _ => unreachable!(),
        }
    }

    fn dest(host: &str, subset: Option<&str>) -> Destination {
        Destination {
            host: host.into(),
            subset: subset.map(str::to_string),
        }
    }

    #[test]
    fn host_level_compares_the_first_label() {
        let r = rollout(
            json!({"canaryService": "c", "stableService": "s"}),
            json!({}),
        );
        let roles = Roles::of(&r);
        assert_eq!(roles.classify(&dest("c", None)), Role::Canary);
        assert_eq!(
            roles.classify(&dest("s.ns.svc.cluster.local", None)),
            Role::Stable
        );
        assert_eq!(roles.classify(&dest("other", None)), Role::Foreign);
    }

    #[test]
    fn subset_level_compares_subsets() {
        let r = rollout(
            json!({"trafficRouting": {"istio": {"destinationRule": {
                "name": "dr", "canarySubsetName": "canary", "stableSubsetName": "stable",
                "additionalSubsetNames": ["extra"]}}}}),
            json!({}),
        );
        let roles = Roles::of(&r);
        assert!(roles.subset_mode());
        assert_eq!(roles.classify(&dest("svc", Some("canary"))), Role::Canary);
        assert_eq!(roles.classify(&dest("svc", Some("stable"))), Role::Stable);
        assert_eq!(
            roles.classify(&dest("svc", Some("extra"))),
            Role::AdditionalSubset
        );
        assert_eq!(roles.classify(&dest("svc", None)), Role::Foreign);
    }

    #[test]
    fn ping_pong_follows_the_status() {
        let spec = json!({"pingPong": {"pingService": "ping", "pongService": "pong"}});
        let roles = Roles::of(&rollout(spec.clone(), json!({})));
        assert_eq!(
            (roles.canary_service.as_str(), roles.stable_service.as_str()),
            ("ping", "pong")
        );
        let roles = Roles::of(&rollout(
            spec,
            json!({"canary": {"stablePingPong": "ping"}}),
        ));
        assert_eq!(
            (roles.canary_service.as_str(), roles.stable_service.as_str()),
            ("pong", "ping")
        );
    }

    #[test]
    fn experiments_come_from_the_status() {
        let r = rollout(
            json!({"canaryService": "c", "stableService": "s"}),
            json!({"canary": {"weights": {"canary": {"weight": 10}, "stable": {"weight": 70},
                "additional": [{"weight": 20, "serviceName": "r-exp"}]}}}),
        );
        assert_eq!(
            Roles::of(&r).classify(&dest("r-exp", None)),
            Role::Experiment
        );
    }
}
