//! Every rule as a [`RuleId`], with its id, severity and scope as constants. DESIGN.md pins the
//! ids and severities; README.md's rule list, lint's output and the metrics are derived from this
//! one table, so a rule cannot exist in one place only.

use serde::{Serialize, Serializer};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Deny,
    Warn,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Deny => "deny",
            Severity::Warn => "warn",
        }
    }
}

/// Where a rule looks, which decides how the admission policy treats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The object alone: always denies at deny level (subject to the ratchet).
    SelfContained,
    /// A Rollout against other objects: governed by `--reference-severity`.
    Reference,
    /// A VirtualService/DestinationRule/Service write against the Rollouts that use it.
    Dependents,
    /// The input could not be read as an object.
    Input,
}

macro_rules! catalogue {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal, $severity:ident, $scope:ident; )*) => {
        /// A rule of rollout-guard. Its id (`RuleId::id`) is what messages, lint output and
        /// metrics show.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum RuleId {
            $( $(#[$doc])* $variant, )*
        }

        impl RuleId {
            /// Every rule, in catalogue order.
            pub const ALL: &'static [RuleId] = &[$(RuleId::$variant),*];

            pub const fn id(self) -> &'static str {
                match self { $(RuleId::$variant => $id,)* }
            }

            /// The severity DESIGN.md gives the rule (admission policy may lower it).
            pub const fn severity(self) -> Severity {
                match self { $(RuleId::$variant => Severity::$severity,)* }
            }

            pub const fn scope(self) -> Scope {
                match self { $(RuleId::$variant => Scope::$scope,)* }
            }

            pub fn from_id(id: &str) -> Option<RuleId> {
                match id { $($id => Some(RuleId::$variant),)* _ => None }
            }
        }
    };
}

catalogue! {
    // Rollout, self-contained.
    IstioVirtualServiceForm = "istio-virtualservice-form", Deny, SelfContained;
    ServicesRequired = "services-required", Deny, SelfContained;
    ServicesDistinct = "services-distinct", Deny, SelfContained;
    SetWeightRange = "set-weight-range", Deny, SelfContained;
    MirrorPercentageRange = "mirror-percentage-range", Deny, SelfContained;
    CanaryScaleRange = "canary-scale-range", Deny, SelfContained;
    ManagedRoutesRequired = "managed-routes-required", Deny, SelfContained;
    ManagedRouteUndefined = "managed-route-undefined", Deny, SelfContained;
    HeaderMatchValue = "header-match-value", Deny, SelfContained;
    MaxTrafficWeightUnsupported = "max-traffic-weight-unsupported", Deny, SelfContained;
    VirtualServiceReferenceForm = "virtualservice-reference-form", Warn, SelfContained;
    /// Argo Rollouts' generic Rollout validation, in its wording (steps, maxSurge/maxUnavailable,
    /// selector, strategy, counts).
    RolloutSpecInvalid = "rollout-spec-invalid", Deny, SelfContained;
    // Rollout against other objects.
    ReferenceMissing = "reference-missing", Warn, Reference;
    HttpRouteNotFound = "http-route-not-found", Deny, Reference;
    HttpRouteAmbiguous = "http-route-ambiguous", Deny, Reference;
    TlsRouteNotFound = "tls-route-not-found", Deny, Reference;
    TlsRouteAmbiguous = "tls-route-ambiguous", Deny, Reference;
    TcpRouteNotFound = "tcp-route-not-found", Deny, Reference;
    TcpRouteAmbiguous = "tcp-route-ambiguous", Deny, Reference;
    CanaryDestinationMissing = "canary-destination-missing", Deny, Reference;
    StableDestinationMissing = "stable-destination-missing", Deny, Reference;
    DestinationRuleSubsetMissing = "destinationrule-subset-missing", Deny, Reference;
    ServiceSelectorMismatch = "service-selector-mismatch", Deny, Reference;
    ServiceManagedByOtherRollout = "service-managed-by-other-rollout", Deny, Reference;
    RouteListIgnored = "route-list-ignored", Warn, Reference;
    /// The VirtualService has no http, tls or tcp route: Argo Rollouts refuses the Rollout.
    VirtualServiceWithoutRoutes = "virtualservice-without-routes", Deny, Reference;
    /// A setHeaderRoute/setMirrorRoute step against a VirtualService without http routes: the
    /// controller fails the step.
    ManagedRouteNeedsHttp = "managed-route-needs-http", Deny, Reference;
    DestinationRuleHostMismatch = "destinationrule-host-mismatch", Warn, Reference;
    DestinationHostForm = "destination-host-form", Warn, Reference;
    ForeignDestination = "foreign-destination", Warn, Reference;
    ManagedRouteCollision = "managed-route-collision", Warn, Reference;
    // VirtualService and DestinationRule on their own.
    SniHostNotInHosts = "sni-host-not-in-hosts", Deny, SelfContained;
    /// Istio's own VirtualService validation, in its wording: no http, tls or tcp route.
    VirtualServiceRoutesRequired = "virtualservice-routes-required", Deny, SelfContained;
    /// A host Istio refuses: bad syntax, `*` on a mesh VirtualService, overlapping hosts.
    VirtualServiceHostInvalid = "virtualservice-host-invalid", Deny, SelfContained;
    /// A TLS route without a match, a match without sniHosts, an SNI host of bad syntax.
    TlsMatchInvalid = "tls-match-invalid", Deny, SelfContained;
    RouteWeightsInvalid = "route-weights-invalid", Deny, SelfContained;
    SubsetNameDuplicate = "subset-name-duplicate", Deny, SelfContained;
    // A write against the Rollouts that reference it.
    BreaksRollout = "breaks-rollout", Deny, Dependents;
    // Input handling (not rules of DESIGN.md's list: how unreadable input is reported).
    InvalidObject = "invalid-object", Deny, Input;
    DuplicateObject = "duplicate-object", Warn, Input;
    /// A key the kind's schema does not know (lint only; `schema`).
    UnknownField = "unknown-field", Warn, Input;
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl Serialize for RuleId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_read_back() {
        let mut ids: Vec<&str> = RuleId::ALL.iter().map(|r| r.id()).collect();
        ids.sort();
        let before = ids.len();
        ids.dedup();
        assert_eq!(before, ids.len());
        for rule in RuleId::ALL {
            assert_eq!(RuleId::from_id(rule.id()), Some(*rule));
        }
        assert_eq!(RuleId::from_id("no-such-rule"), None);
        assert_eq!(RuleId::BreaksRollout.severity(), Severity::Deny);
        assert_eq!(RuleId::ReferenceMissing.severity(), Severity::Warn);
    }

    /// Every rule is emitted somewhere outside this table (a variant nobody constructs would be
    /// a rule documented but never checked).
    #[test]
    fn every_rule_is_implemented() {
        let sources = [
            include_str!("rollout_spec.rs"),
            include_str!("rollout_argo.rs"),
            include_str!("route_selection.rs"),
            include_str!("destinations.rs"),
            include_str!("subsets.rs"),
            include_str!("services.rs"),
            include_str!("references.rs"),
            include_str!("virtualservice.rs"),
            include_str!("destinationrule.rs"),
            include_str!("breaks.rs"),
            include_str!("../lint.rs"),
        ]
        .concat();
        for rule in RuleId::ALL {
            assert!(
                sources.contains(&format!("RuleId::{rule:?}")),
                "rule {rule} is never emitted"
            );
        }
    }

    /// README.md lists every rule by id, and names no rule this table lacks.
    #[test]
    fn readme_lists_exactly_the_catalogue() {
        let readme = include_str!("../../README.md");
        for rule in RuleId::ALL {
            assert!(
                readme.contains(&format!("`{}`", rule.id())),
                "README.md does not list rule {rule}"
            );
        }
        for (_, rest) in readme
            .match_indices("[")
            .map(|(i, _)| readme.split_at(i + 1))
        {
            let Some(end) = rest.find(']') else { continue };
            let candidate = &rest[..end];
            let looks_like_an_id = candidate.len() > 3
                && candidate.contains('-')
                && candidate.starts_with(|c: char| c.is_ascii_lowercase())
                && candidate
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-');
            if looks_like_an_id && rest[end..].starts_with("] ") {
                assert!(
                    RuleId::from_id(candidate).is_some(),
                    "README.md shows rule [{candidate}], which the catalogue lacks"
                );
            }
        }
    }
}
