//! Every rule is a pure function from objects (and, for cross-object rules, a [`Lookup`]) to
//! findings. A finding carries the rule id, its severity, the object and field path it is about
//! and a message that says what was expected, what was found and how to fix it.
//!
//! One module per concern; the rule id in a message leads to the module in one hop:
//! - `rollout_spec`: a Rollout on its own (the canary and traffic-routing rules);
//! - `rollout_argo`: Argo Rollouts' generic Rollout validation;
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
pub mod rollout_argo;
pub mod rollout_spec;
pub mod route_selection;
pub mod services;
pub mod subsets;
pub mod virtualservice;

pub use catalogue::{RuleId, Scope, Severity};

use crate::index::Lookup;
use crate::model::{Object, ObjectKey, Rollout};
use serde::Serialize;

/// One problem found in one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: RuleId,
    pub severity: Severity,
    #[serde(skip)]
    pub object: ObjectKey,
    pub path: String,
    pub message: String,
    /// The place in another object the finding is about (e.g. `VirtualService shop/vs spec.tls[0]`),
    /// part of its identity so that two routes with the same problem stay two findings.
    #[serde(skip)]
    pub target: String,
    /// What the finding is about, by content rather than position (a step's content, a route's
    /// name, a host): with the position-free path and target, the finding's identity.
    #[serde(skip)]
    pub subject: String,
}

impl Finding {
    /// A finding at the severity the catalogue gives the rule.
    pub fn new(
        rule: RuleId,
        object: &ObjectKey,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            rule,
            severity: rule.severity(),
            object: object.clone(),
            path: path.into(),
            message: message.into(),
            target: String::new(),
            subject: String::new(),
        }
    }

    /// Adds what the finding is about, by content (see [`Finding::identity`]).
    pub fn about(mut self, subject: impl AsRef<str>) -> Self {
        if !self.subject.is_empty() {
            self.subject.push_str(" / ");
        }
        self.subject.push_str(subject.as_ref());
        self
    }

    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = target.into();
        self
    }

    pub fn scope(&self) -> Scope {
        self.rule.scope()
    }

    /// What identifies "the same problem" across two versions of an object (the ratchet,
    /// breaks-rollout): the rule, the path and target without array positions, and the subject.
    /// Not the wording, and not positions: inserting a step or a route before an old problem
    /// leaves it the same problem.
    pub fn identity(&self) -> Identity {
        Identity {
            rule: self.rule,
            path: without_positions(&self.path),
            target: without_positions(&self.target),
            subject: self.subject.clone(),
        }
    }
}

/// See [`Finding::identity`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identity {
    pub rule: RuleId,
    pub path: String,
    pub target: String,
    pub subject: String,
}

/// `spec.http[2].route[0]` → `spec.http[].route[]`.
pub(crate) fn without_positions(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push(c);
            }
            ']' => {
                in_index = false;
                out.push(c);
            }
            d if in_index && d.is_ascii_digit() => {}
            other => {
                in_index = false;
                out.push(other);
            }
        }
    }
    out
}

/// Old problems of an object, counted: `remove` takes one occurrence, so that a second copy of
/// an old problem is new (and denies), while the old one stays a warning.
#[derive(Debug, Default)]
pub struct Known(std::collections::HashMap<Identity, usize>);

impl Known {
    pub fn of<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Self {
        let mut known = Known::default();
        for f in findings {
            *known.0.entry(f.identity()).or_default() += 1;
        }
        known
    }

    /// True when `f` was already known (and uses up that occurrence).
    pub fn take(&mut self, f: &Finding) -> bool {
        match self.0.get_mut(&f.identity()) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
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
        Object::Rollout(r) => {
            let mut findings = rollout_spec::check(r);
            rollout_argo::check(r, &object.key(), &mut findings);
            findings
        }
        Object::VirtualService(vs) => virtualservice::check(vs),
        Object::DestinationRule(dr) => destinationrule::check(dr),
        Object::Service(_) => Vec::new(),
    }
}

/// The rules a Rollout gets against the objects it references.
pub fn check_references(rollout: &Rollout, world: &dyn Lookup) -> Vec<Finding> {
    references::check(rollout, world)
}

/// At most this many items of a list are shown in a message; the rest are counted.
pub const MAX_LISTED: usize = 20;

/// Formats a list of names for a message: `[a, b]`, `none` when empty, and past
/// [`MAX_LISTED`] items `[a, b, …, and 7 more]`.
pub(crate) fn list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let mut shown: Vec<String> = Vec::new();
    let mut more = 0usize;
    for item in items {
        if shown.len() < MAX_LISTED {
            shown.push(item.as_ref().to_string());
        } else {
            more += 1;
        }
    }
    if shown.is_empty() {
        return "none".to_string();
    }
    if more > 0 {
        shown.push(format!("and {more} more"));
    }
    format!("[{}]", shown.join(", "))
}

/// Quoted names for a message: `["a", "b"]`, or `none`.
pub(crate) fn quoted<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    list(items.into_iter().map(|s| format!("{:?}", s.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_bounded() {
        assert_eq!(list(Vec::<String>::new()), "none");
        assert_eq!(list(["a", "b"]), "[a, b]");
        let many: Vec<String> = (0..25).map(|i| i.to_string()).collect();
        let shown = list(&many);
        assert!(shown.ends_with(", 19, and 5 more]"), "{shown}");
        assert_eq!(quoted(["x"]), "[\"x\"]");
    }

    #[test]
    fn identity_ignores_positions() {
        assert_eq!(
            without_positions("spec.http[12].route[0].weight"),
            "spec.http[].route[].weight"
        );
        assert_eq!(without_positions("a[b1]"), "a[b1]");
        let key = ObjectKey::new(crate::model::Kind::Rollout, "ns", "r");
        let at = |i: usize| {
            Finding::new(
                RuleId::SetWeightRange,
                &key,
                format!("steps[{i}].setWeight"),
                "m",
            )
            .about("step {setWeight: 120}")
        };
        let mut known = Known::of([&at(0)]);
        assert!(known.take(&at(3)), "moved by an inserted step: still known");
        assert!(!known.take(&at(4)), "a second copy is new");
    }
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
        findings.iter().map(|f| f.rule.id()).collect()
    }
}
