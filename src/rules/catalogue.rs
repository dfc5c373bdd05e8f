//! Every rule id with its severity and scope. DESIGN.md pins the ids and severities.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
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

#[derive(Debug, Clone, Copy)]
pub struct RuleInfo {
    pub id: &'static str,
    pub severity: Severity,
    pub scope: Scope,
}

use Scope::*;
use Severity::*;

const fn r(id: &'static str, severity: Severity, scope: Scope) -> RuleInfo {
    RuleInfo {
        id,
        severity,
        scope,
    }
}

pub const RULES: &[RuleInfo] = &[
    // Rollout, self-contained.
    r("istio-virtualservice-form", Deny, SelfContained),
    r("services-required", Deny, SelfContained),
    r("services-distinct", Deny, SelfContained),
    r("set-weight-range", Deny, SelfContained),
    r("mirror-percentage-range", Deny, SelfContained),
    r("canary-scale-range", Deny, SelfContained),
    r("managed-routes-required", Deny, SelfContained),
    r("managed-route-undefined", Deny, SelfContained),
    r("header-match-value", Deny, SelfContained),
    r("max-traffic-weight-unsupported", Deny, SelfContained),
    r("virtualservice-reference-form", Warn, SelfContained),
    // Rollout against other objects.
    r("reference-missing", Warn, Reference),
    r("http-route-not-found", Deny, Reference),
    r("http-route-ambiguous", Deny, Reference),
    r("tls-route-not-found", Deny, Reference),
    r("tls-route-ambiguous", Deny, Reference),
    r("tcp-route-not-found", Deny, Reference),
    r("tcp-route-ambiguous", Deny, Reference),
    r("canary-destination-missing", Deny, Reference),
    r("stable-destination-missing", Deny, Reference),
    r("destinationrule-subset-missing", Deny, Reference),
    r("service-selector-mismatch", Deny, Reference),
    r("service-managed-by-other-rollout", Deny, Reference),
    r("route-list-ignored", Warn, Reference),
    r("destinationrule-host-mismatch", Warn, Reference),
    r("destination-host-form", Warn, Reference),
    r("foreign-destination", Warn, Reference),
    r("managed-route-collision", Warn, Reference),
    // VirtualService and DestinationRule on their own.
    r("sni-host-not-in-hosts", Deny, SelfContained),
    r("route-weights-invalid", Deny, SelfContained),
    r("subset-name-duplicate", Deny, SelfContained),
    // A write against the Rollouts that reference it.
    r("breaks-rollout", Deny, Dependents),
    // Input handling (not rules of DESIGN.md's list: how unreadable input is reported).
    r("invalid-object", Deny, Input),
    r("duplicate-object", Warn, Input),
];

/// The catalogue entry of a rule id. Ids are compile-time constants of this crate, so an
/// unknown id is a programming error caught by the catalogue test below.
pub fn rule(id: &str) -> RuleInfo {
    RULES
        .iter()
        .copied()
        .find(|r| r.id == id)
        .unwrap_or(RuleInfo {
            id: "unknown-rule",
            severity: Deny,
            scope: Input,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_known() {
        let mut ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
        ids.sort();
        let before = ids.len();
        ids.dedup();
        assert_eq!(before, ids.len());
        assert_eq!(rule("breaks-rollout").severity, Deny);
        assert_eq!(rule("reference-missing").severity, Warn);
        assert_eq!(rule("no-such-rule").id, "unknown-rule");
    }

    /// Every id in the catalogue is emitted somewhere in the rule modules.
    #[test]
    fn every_rule_is_implemented() {
        let sources = [
            include_str!("rollout_spec.rs"),
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
        for r in RULES {
            assert!(
                sources.contains(&format!("\"{}\"", r.id)),
                "rule {} is never emitted",
                r.id
            );
        }
    }
}
