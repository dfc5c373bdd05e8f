//! Every rule is a pure function from objects (and, for cross-object rules, a [`Lookup`]) to
//! findings. A finding carries the rule id, its severity, the object and field path it is about
//! and a message that says what was expected, what was found and how to fix it.
//!
//! One module per concern; the rule id in a message leads to the module in one hop:
//! - `rollout_spec`: a Rollout on its own;
//! - `route_selection`: a Rollout's route lists against its VirtualServices;
//! - `destinations`: the destinations of the routes a Rollout manages;
//! - `subsets`: a Rollout against its DestinationRule;
//! - `services`: a Rollout against its Services;
//! - `references`: which referenced objects exist, and the entry point for cross-object rules;
//! - `virtualservice`, `destinationrule`: those kinds on their own;
//! - `breaks`: a VirtualService/DestinationRule/Service write against the Rollouts that use it.

pub mod breaks;
pub mod catalogue;
pub mod destinationrule;
pub mod destinations;
pub mod references;
pub mod rollout_spec;
pub mod route_selection;
pub mod services;
pub mod subsets;
pub mod virtualservice;

pub use catalogue::{rule, RuleInfo, Scope, Severity, RULES};

use crate::index::Lookup;
use crate::model::{Object, ObjectKey, Rollout};
use serde::Serialize;

/// One problem found in one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    #[serde(skip)]
    pub object: ObjectKey,
    pub path: String,
    pub message: String,
    /// The place in another object the finding is about (e.g. `VirtualService shop/vs spec.tls[0]`),
    /// part of its identity so that two routes with the same problem stay two findings.
    #[serde(skip)]
    pub target: String,
}

impl Finding {
    /// A finding at the severity the catalogue gives the rule.
    pub fn new(
        rule_id: &'static str,
        object: &ObjectKey,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            rule: rule_id,
            severity: rule(rule_id).severity,
            object: object.clone(),
            path: path.into(),
            message: message.into(),
            target: String::new(),
        }
    }

    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = target.into();
        self
    }

    pub fn scope(&self) -> Scope {
        rule(self.rule).scope
    }

    /// What identifies "the same problem" across two versions of an object (the ratchet,
    /// breaks-rollout): the rule and the path, not the wording.
    pub fn identity(&self) -> (&'static str, &str, &str) {
        (self.rule, self.path.as_str(), self.target.as_str())
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}: {}", self.rule, self.path, self.message)
    }
}

/// The rules an object gets on its own (no other object needed).
pub fn check_self(object: &Object) -> Vec<Finding> {
    match object {
        Object::Rollout(r) => rollout_spec::check(r),
        Object::VirtualService(vs) => virtualservice::check(vs),
        Object::DestinationRule(dr) => destinationrule::check(dr),
        Object::Service(_) => Vec::new(),
    }
}

/// The rules a Rollout gets against the objects it references.
pub fn check_references(rollout: &Rollout, world: &dyn Lookup) -> Vec<Finding> {
    references::check(rollout, world)
}

/// Formats a list of names for a message: `[a, b]`, or `none` when empty.
pub(crate) fn list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let items: Vec<String> = items.into_iter().map(|s| s.as_ref().to_string()).collect();
    if items.is_empty() {
        "none".to_string()
    } else {
        format!("[{}]", items.join(", "))
    }
}

/// Quoted names for a message: `["a", "b"]`, or `none`.
pub(crate) fn quoted<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    list(items.into_iter().map(|s| format!("{:?}", s.as_ref())))
}

#[cfg(test)]
pub(crate) mod testing {
    //! Small builders for rule tests.
    use crate::index::Index;
    use crate::model::{Object, Rollout, VirtualService};
    use serde_json::{json, Value};
    use std::sync::Arc;

    pub fn object(doc: Value) -> Object {
        Object::parse(&doc, "default")
            .expect("parses")
            .expect("known kind")
    }

    pub fn rollout_doc(canary: Value) -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "app", "namespace": "shop"},
            "spec": {
                "selector": {"matchLabels": {"app": "app"}},
                "template": {"metadata": {"labels": {"app": "app"}}},
                "strategy": {"canary": canary}
            }
        })
    }

    pub fn rollout(canary: Value) -> Arc<Rollout> {
        match object(rollout_doc(canary)) {
            Object::Rollout(r) => r,
            _ => unreachable!(),
        }
    }

    pub fn vs_doc(name: &str, spec: Value) -> Value {
        json!({
            "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": "shop"}, "spec": spec
        })
    }

    pub fn vs(name: &str, spec: Value) -> Arc<VirtualService> {
        match object(vs_doc(name, spec)) {
            Object::VirtualService(v) => v,
            _ => unreachable!(),
        }
    }

    pub fn service(name: &str, selector: Value) -> Object {
        object(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"selector": selector}
        }))
    }

    pub fn dr(name: &str, host: &str, subsets: &[&str]) -> Object {
        let subsets: Vec<Value> = subsets.iter().map(|s| json!({"name": s})).collect();
        object(json!({
            "apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"host": host, "subsets": subsets}
        }))
    }

    /// A host-level canary: Services `app-canary`/`app-stable`, VirtualService `app-vs`.
    pub fn host_level(vs_ref: Value) -> Value {
        json!({
            "canaryService": "app-canary", "stableService": "app-stable",
            "trafficRouting": {"istio": {"virtualService": vs_ref}},
            "steps": [{"setWeight": 20}, {"pause": {}}]
        })
    }

    pub fn index(objects: Vec<Object>) -> Index {
        Index::from_objects(objects)
    }

    pub fn rules_of(findings: &[crate::rules::Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.rule).collect()
    }
}
