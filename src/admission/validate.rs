//! `POST /validate`: the rules under the admission policy (ratchet, reference severity,
//! breaks-rollout, exemptions, skip annotation, warn mode), in two steps: [`prepare`] reads the
//! objects (no index involved) and [`judge`] decides on a snapshot of the index. A judgement whose
//! denial rests on other objects names them, so that they can be read again from the API server
//! before it denies (see [`super::confirm`]).

use super::review::{shorten, Operation, Request, Verdict, MAX_WARNING_LEN};
use super::{pass, screen, BreaksSeverity, Context, Mode, Notes, Policy, ReferenceSeverity};
use crate::index::{references_of, Overlay};
use crate::model::{Kind, Object, ObjectKey, TopLevel};
use crate::rules::{self, breaks, Finding, Known, RuleId, Scope, Severity, MAX_LISTED};

/// A review read into views: everything [`judge`] needs, and nothing from the index.
#[derive(Debug)]
pub enum Prepared {
    /// Answered without the index (not ours, exempt, skipped, metadata only, unreadable).
    Answered(Verdict, Notes),
    Object(Box<Written>),
}

/// The object a review writes, with its previous version.
#[derive(Debug)]
pub struct Written {
    pub object: Object,
    pub create: bool,
    /// `oldObject` on UPDATE: `Ok(None)` when there is none, `Err` when it cannot be read (then
    /// every finding is judged as new, and a warning says so).
    pub old: Result<Option<Object>, String>,
}

pub fn prepare(request: &Request, policy: &Policy) -> Prepared {
    let kind = match screen(request, policy) {
        Ok(kind) => kind,
        Err(answer) => {
            let (verdict, notes) = *answer;
            return Prepared::Answered(verdict, notes);
        }
    };
    let Some(raw) = &request.object else {
        let (verdict, notes) = deny_invalid(
            policy,
            kind,
            request,
            "expected request.object, found none".into(),
        );
        return Prepared::Answered(verdict, notes);
    };
    // Each object's top-level fields are split once: the view and the metadata-only check both
    // read them, so neither scans the whole text again.
    let fields = TopLevel::split(raw);
    let object = match Object::parse_kind_split(kind, raw, fields.as_ref(), &request.namespace) {
        Ok(o) => o,
        Err(err) => {
            let message = format!(
                "{kind} {}/{} cannot be read: {err}",
                request.namespace, request.name
            );
            let (verdict, notes) = deny_invalid(policy, kind, request, message);
            return Prepared::Answered(verdict, notes);
        }
    };
    if object.meta().skip {
        let warning = format!(
            "rollout-guard: validation skipped for {} (annotation rollout-guard.io/skip=true)",
            object.key()
        );
        let notes = Notes {
            skipped: true,
            ..Notes::default()
        };
        return Prepared::Answered(Verdict::allow().with_warning(warning), notes);
    }
    let old_raw = request
        .old_object
        .as_ref()
        .filter(|_| request.operation == Operation::Update);
    let old_fields = old_raw.map(|o| TopLevel::split(o));
    if let (Some(new), Some(Some(old))) = (&fields, &old_fields) {
        if same_except_metadata(new, old) {
            let (verdict, notes) = pass();
            return Prepared::Answered(verdict, notes);
        }
    }
    let old = match (old_raw, old_fields) {
        (Some(o), Some(f)) => Object::parse_kind_split(kind, o, f.as_ref(), &request.namespace)
            .map(Some)
            .map_err(|e| e.to_string()),
        _ => Ok(None),
    };
    Prepared::Object(Box::new(Written {
        object,
        create: request.operation == Operation::Create,
        old,
    }))
}

/// What the rules found, sorted by what the policy makes of them.
#[derive(Debug, Default)]
pub struct Judgement {
    /// Self-contained problems that deny (the object alone is wrong).
    pub deny: Vec<Finding>,
    /// Problems against other objects that deny, if the API server confirms them.
    pub deny_cross: Vec<Finding>,
    pub warn: Vec<Finding>,
    /// The objects `deny_cross` rests on (other than the written one).
    pub depends_on: Vec<ObjectKey>,
    /// Warnings that are not findings (a ratchet off, a confirmation that failed).
    pub notices: Vec<String>,
    pub notes: Notes,
}

impl Judgement {
    /// A denial that rests on the cache: to be confirmed before it is given.
    pub fn needs_confirmation(&self) -> bool {
        !self.deny_cross.is_empty()
    }

    /// The API server could not be asked: the cross-object denials become warnings.
    pub fn unconfirmed(mut self, why: &str) -> Self {
        let count = self.deny_cross.len();
        self.warn.append(&mut self.deny_cross);
        self.notices.push(format!(
            "rollout-guard: {count} cross-object problem{} not confirmed with the API server ({why}); allowed, \
             reported as warnings",
            if count == 1 { "" } else { "s" }
        ));
        self.notes.degraded.push("unconfirmed");
        self
    }
}

pub fn judge(written: &Written, ctx: &Context<'_>) -> Judgement {
    let mut j = Judgement::default();
    let object = &written.object;
    let old = match &written.old {
        Ok(old) => old.as_ref(),
        Err(err) => {
            j.notices.push(shorten(
                &format!(
                    "rollout-guard: oldObject cannot be read ({err}); every problem is judged as new (no ratchet)"
                ),
                MAX_WARNING_LEN,
            ));
            j.notes.degraded.push("old-object-unreadable");
            None
        }
    };

    // Self-contained rules, ratcheted against the old object.
    let old_self = old.map(rules::check_self).unwrap_or_default();
    let mut known = Known::of(&old_self);
    for f in rules::check_self(object) {
        if f.severity == Severity::Deny && !known.take(&f) {
            j.deny.push(f);
        } else {
            j.warn.push(f);
        }
    }

    let key = object.key();
    let after = Overlay {
        base: ctx.index,
        key: key.clone(),
        object: Some(object.clone()),
    };
    match object {
        Object::Rollout(rollout) => {
            let old_refs = match old {
                Some(Object::Rollout(o)) => {
                    let before = Overlay {
                        base: ctx.index,
                        key: key.clone(),
                        object: old.cloned(),
                    };
                    rules::check_references(o, &before)
                }
                _ => Vec::new(),
            };
            let mut known = Known::of(&old_refs);
            let level_denies = match ctx.policy.reference_severity {
                ReferenceSeverity::Auto => written.create,
                ReferenceSeverity::Warn => false,
                ReferenceSeverity::Deny => true,
            };
            for f in rules::check_references(rollout, &after) {
                let old_problem = known.take(&f);
                if f.rule == RuleId::ManagedRouteCollision && old_problem {
                    continue;
                }
                if f.severity == Severity::Deny && level_denies && !old_problem && !ctx.stale {
                    j.deny_cross.push(f);
                } else {
                    j.warn.push(f);
                }
            }
            if !j.deny_cross.is_empty() {
                j.depends_on = references_of(rollout);
            }
        }
        _ => {
            let before = Overlay {
                base: ctx.index,
                key: key.clone(),
                object: old.cloned(),
            };
            let impact = breaks::check(&key, &before, &after);
            let mut depends_on = Vec::new();
            for b in impact.breaks {
                let denies = !ctx.stale
                    && match ctx.policy.breaks_severity {
                        BreaksSeverity::Warn => false,
                        BreaksSeverity::Deny => true,
                        BreaksSeverity::Auto => cannot_be_one_sync(
                            object.meta().application.as_deref(),
                            b.rollout_application.as_deref(),
                        ),
                    };
                if denies {
                    if let Some(Object::Rollout(r)) =
                        crate::index::Lookup::object(&after, &b.rollout)
                    {
                        depends_on.extend(references_of(&r).into_iter().filter(|k| *k != key));
                    }
                    depends_on.push(b.rollout);
                    j.deny_cross.push(b.finding);
                } else {
                    j.warn.push(b.finding);
                }
            }
            depends_on.sort();
            depends_on.dedup();
            j.depends_on = depends_on;
            j.warn.extend(impact.warnings);
        }
    }
    j
}

/// Under `--breaks-severity auto`, a write that breaks a live Rollout is denied only when the two
/// cannot be halves of one coordinated change: both carry markers of GitOps applications, and the
/// applications differ. Anything else (one sync of one application, `kubectl apply -f DIR`,
/// objects without markers) may be followed by the Rollout's own write, in either order.
pub fn cannot_be_one_sync(written: Option<&str>, rollout: Option<&str>) -> bool {
    matches!((written, rollout), (Some(w), Some(r)) if w != r)
}

/// The answer a judgement gives under the policy.
pub fn verdict(object: &Object, j: Judgement, policy: &Policy) -> (Verdict, Notes) {
    let Judgement {
        mut deny,
        deny_cross,
        warn,
        notices,
        mut notes,
        ..
    } = j;
    deny.extend(deny_cross);
    let mut verdict = Verdict::allow();
    let mut rules_denied: Vec<&'static str> = deny.iter().map(|f| f.rule.id()).collect();
    rules_denied.sort();
    rules_denied.dedup();
    notes.denied_rules = rules_denied;
    if !deny.is_empty() {
        match policy.mode {
            Mode::Enforce => {
                verdict = Verdict::deny(denial_message(object, &deny));
            }
            Mode::Warn => {
                for f in &deny {
                    let text = warning("would deny", f);
                    if f.rule == RuleId::BreaksRollout {
                        notes.breaking.push(text.clone());
                    }
                    verdict.warnings.push(text);
                }
            }
        }
    }
    verdict.warnings.extend(notices);
    for f in &warn {
        if f.scope() == Scope::Input && f.severity == Severity::Deny {
            continue;
        }
        let text = warning("warning", f);
        if f.rule == RuleId::BreaksRollout {
            notes.breaking.push(text.clone());
        }
        verdict.warnings.push(text);
    }
    (verdict, notes)
}

/// Validation without confirmation: the index is the truth (files source, lint-like callers).
pub fn validate(request: &Request, ctx: &Context<'_>) -> (Verdict, Notes) {
    match prepare(request, ctx.policy) {
        Prepared::Answered(verdict, notes) => (verdict, notes),
        Prepared::Object(written) => verdict(&written.object, judge(&written, ctx), ctx.policy),
    }
}

fn denial_message(object: &Object, deny: &[Finding]) -> String {
    let key = object.key();
    let mut message = format!(
        "rollout-guard denied {key}: {} problem{}",
        deny.len(),
        if deny.len() == 1 { "" } else { "s" }
    );
    for f in deny.iter().take(MAX_LISTED) {
        let about = if f.object != key {
            format!(" ({})", f.object)
        } else {
            String::new()
        };
        message.push_str(&format!(
            "\n- [{}]{about} {}: {}",
            f.rule, f.path, f.message
        ));
    }
    if deny.len() > MAX_LISTED {
        message.push_str(&format!("\n- and {} more", deny.len() - MAX_LISTED));
    }
    message
}

fn warning(level: &str, f: &Finding) -> String {
    let about = if f.object.kind == Kind::Rollout {
        format!(" {}", f.object)
    } else {
        String::new()
    };
    shorten(
        &format!(
            "rollout-guard {level}: [{}]{about} {}: {}",
            f.rule, f.path, f.message
        ),
        MAX_WARNING_LEN,
    )
}

fn deny_invalid(
    policy: &Policy,
    kind: Kind,
    request: &Request,
    message: String,
) -> (Verdict, Notes) {
    let notes = Notes {
        denied_rules: vec![RuleId::InvalidObject.id()],
        ..Notes::default()
    };
    let text = format!(
        "rollout-guard denied {kind} {}/{}: [{}] {message}",
        request.namespace,
        request.name,
        RuleId::InvalidObject
    );
    match policy.mode {
        Mode::Enforce => (Verdict::deny(text), notes),
        Mode::Warn => (
            Verdict::allow().with_warning(shorten(&text, MAX_WARNING_LEN)),
            notes,
        ),
    }
}

/// An update that changes only `metadata` (or `status`) always passes. The API server writes
/// both objects the same way, so the other fields are compared as text: a field whose text
/// differs counts as changed (at worst a reordered field is judged in full, which the ratchet
/// makes harmless), and no tree is built.
/// Whether two versions of an object differ only in `metadata` and `status`, judged on the text
/// of every other top-level field (equal JSON written differently counts as a change: it is then
/// judged in full, never skipped).
fn same_except_metadata(new: &TopLevel<'_>, old: &TopLevel<'_>) -> bool {
    let relevant = |(k, _): &(&str, &str)| !matches!(*k, "metadata" | "status");
    new.iter().filter(relevant).eq(old.iter().filter(relevant))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::review::parse;
    use crate::admission::Policy;
    use crate::index::Index;
    use crate::rules::testing::*;
    use serde_json::value::RawValue;
    use serde_json::{json, Value};

    fn review(op: &str, object: Value, old: Option<Value>) -> Request {
        let kind = object["kind"].as_str().unwrap_or("").to_string();
        let group = object["apiVersion"]
            .as_str()
            .unwrap_or("")
            .rsplit_once('/')
            .map(|(g, _)| g.to_string())
            .unwrap_or_default();
        let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "u1", "kind": {"group": group, "version": "v1", "kind": kind},
            "namespace": "shop", "name": object["metadata"]["name"], "operation": op,
            "userInfo": {"username": "alice", "groups": ["devs"]},
            "object": object, "oldObject": old}});
        parse(&serde_json::to_vec(&body).unwrap()).unwrap()
    }

    fn vs_route(name: &str) -> Value {
        vs_doc(
            "app-vs",
            json!({"hosts": ["app"], "http": [{"name": name, "route": [
            {"destination": {"host": "app-stable"}, "weight": 100},
            {"destination": {"host": "app-canary"}, "weight": 0}]}]}),
        )
    }

    fn world() -> Index {
        index(vec![
            object(rollout_doc(host_level(
                json!({"name": "app-vs", "routes": ["primary"]}),
            ))),
            object(vs_route("primary")),
            service("app-canary", json!({"app": "app"})),
            service("app-stable", json!({"app": "app"})),
        ])
    }

    fn run(policy: &Policy, index: &Index, req: &Request) -> Verdict {
        validate(
            req,
            &Context {
                index,
                policy,
                stale: false,
            },
        )
        .0
    }

    fn wrong_route_rollout() -> Value {
        rollout_doc(host_level(json!({"name": "app-vs", "routes": ["primry"]})))
    }

    #[test]
    fn a_new_rollout_with_a_wrong_route_is_denied() {
        let mut index = world();
        index.remove(&crate::model::ObjectKey::new(Kind::Rollout, "shop", "app"));
        let v = run(
            &Policy::default(),
            &index,
            &review("CREATE", wrong_route_rollout(), None),
        );
        assert!(!v.allowed);
        assert!(v.message.unwrap().contains("[http-route-not-found]"));
    }

    #[test]
    fn an_update_with_a_wrong_route_warns_under_auto() {
        let old = rollout_doc(host_level(json!({"name": "app-vs", "routes": ["primary"]})));
        let req = review("UPDATE", wrong_route_rollout(), Some(old));
        let v = run(&Policy::default(), &world(), &req);
        assert!(v.allowed);
        assert!(
            v.warnings
                .iter()
                .any(|w| w.contains("http-route-not-found")),
            "{:?}",
            v.warnings
        );
        let deny = Policy {
            reference_severity: ReferenceSeverity::Deny,
            ..Policy::default()
        };
        assert!(!run(&deny, &world(), &req).allowed);
        let warn = Policy {
            reference_severity: ReferenceSeverity::Warn,
            ..Policy::default()
        };
        let create = review("CREATE", wrong_route_rollout(), None);
        assert!(run(&warn, &index(vec![object(vs_route("primary"))]), &create).allowed);
    }

    #[test]
    fn ratchet_keeps_old_problems_as_warnings() {
        let mut bad = rollout_doc(host_level(json!({"name": "app-vs", "routes": ["primary"]})));
        bad["spec"]["strategy"]["canary"]["steps"] = json!([{"setWeight": 120}]);
        let mut newer = bad.clone();
        newer["spec"]["replicas"] = json!(3);
        let v = run(
            &Policy::default(),
            &world(),
            &review("UPDATE", newer.clone(), Some(bad.clone())),
        );
        assert!(v.allowed, "{:?}", v.message);
        assert!(v.warnings.iter().any(|w| w.contains("set-weight-range")));
        let good = rollout_doc(host_level(json!({"name": "app-vs", "routes": ["primary"]})));
        assert!(
            !run(
                &Policy::default(),
                &world(),
                &review("UPDATE", newer, Some(good))
            )
            .allowed
        );
    }

    #[test]
    fn breaking_a_live_rollout_warns_and_denies_only_across_applications() {
        let req = review("UPDATE", vs_route("main"), Some(vs_route("primary")));
        let v = run(&Policy::default(), &world(), &req);
        assert!(v.allowed, "{:?}", v.message);
        assert!(
            v.warnings
                .iter()
                .any(|w| w.contains("[breaks-rollout]") && w.contains("Rollout shop/app")),
            "{:?}",
            v.warnings
        );
        let deny = Policy {
            breaks_severity: BreaksSeverity::Deny,
            ..Policy::default()
        };
        let msg = run(&deny, &world(), &req).message.unwrap();
        assert!(
            msg.contains("[breaks-rollout]") && msg.contains("Rollout shop/app"),
            "{msg}"
        );

        // Under auto: the VirtualService of another Argo CD application cannot be half of the
        // Rollout's sync, so it is denied; one of the same application is warned.
        let tracked = |mut doc: Value, app: &str| {
            doc["metadata"]["annotations"] =
                json!({"argocd.argoproj.io/tracking-id": format!("{app}:x/Kind:shop/n")});
            doc
        };
        let mut index = world();
        let rollout = rollout_doc(host_level(json!({"name": "app-vs", "routes": ["primary"]})));
        index.upsert(object(tracked(rollout, "shop-app")));
        let other = review(
            "UPDATE",
            tracked(vs_route("main"), "mesh"),
            Some(tracked(vs_route("primary"), "mesh")),
        );
        assert!(!run(&Policy::default(), &index, &other).allowed);
        let same = review(
            "UPDATE",
            tracked(vs_route("main"), "shop-app"),
            Some(tracked(vs_route("primary"), "shop-app")),
        );
        assert!(run(&Policy::default(), &index, &same).allowed);
        assert!(cannot_be_one_sync(Some("argocd a"), Some("argocd b")));
        assert!(!cannot_be_one_sync(None, Some("argocd b")));
        assert!(!cannot_be_one_sync(Some("argocd a"), Some("argocd a")));
    }

    #[test]
    fn in_the_istio_primary_a_virtualservice_write_is_judged_against_remote_rollouts() {
        use crate::index::Lookup;
        let east: std::sync::Arc<str> = std::sync::Arc::from("east");
        let remote = |doc: Value| object(doc).in_cluster(&east);
        let rollout = rollout_doc(host_level(json!({"name": "app-vs", "routes": ["primary"]})));
        let index = index(vec![
            remote(rollout),
            object(vs_route("primary")),
            service("app-canary", json!({"app": "app"})).in_cluster(&east),
            service("app-stable", json!({"app": "app"})).in_cluster(&east),
        ]);
        let deny = Policy {
            breaks_severity: BreaksSeverity::Deny,
            ..Policy::default()
        };
        let same = review("UPDATE", vs_route("primary"), Some(vs_route("primary")));
        let v = run(&deny, &index, &same);
        assert!(v.allowed && v.warnings.is_empty(), "{:?}", v.warnings);
        let rename = review("UPDATE", vs_route("main"), Some(vs_route("primary")));
        let msg = run(&deny, &index, &rename).message.unwrap_or_default();
        assert!(
            msg.contains("[breaks-rollout]") && msg.contains("Rollout shop/app (cluster east)"),
            "{msg}"
        );
        // The remote Rollout's Services are its own cluster's: local ones of the same name do
        // not stand in for them.
        let Some(crate::model::Object::Rollout(r)) =
            index.object(&ObjectKey::in_cluster(Kind::Rollout, &east, "shop", "app"))
        else {
            panic!("the remote Rollout is indexed under its cluster");
        };
        assert!(index.service_of(&r, "app-canary").is_some());
        let mut local_services = index.clone();
        for name in ["app-canary", "app-stable"] {
            local_services.remove(&ObjectKey::in_cluster(Kind::Service, &east, "shop", name));
            local_services.upsert(service(name, json!({"app": "app"})));
        }
        assert!(local_services.service_of(&r, "app-canary").is_none());
        assert!(crate::index::references_of(&r)
            .iter()
            .any(|k| k.kind == Kind::Service && *k.cluster == *"east"));
        assert!(crate::index::references_of(&r)
            .iter()
            .any(|k| k.kind == Kind::VirtualService && k.is_local()));
    }

    #[test]
    fn the_ratchet_pairs_problems_by_content_not_position() {
        let mut old = rollout_doc(host_level(json!({"name": "app-vs", "routes": ["primary"]})));
        old["spec"]["strategy"]["canary"]["steps"] = json!([{"setWeight": 20}, {"setWeight": 120}]);
        let mut new = old.clone();
        // A step inserted before the old problem moves it from steps[1] to steps[2].
        new["spec"]["strategy"]["canary"]["steps"] =
            json!([{"setWeight": 10}, {"setWeight": 20}, {"setWeight": 120}]);
        let v = run(
            &Policy::default(),
            &world(),
            &review("UPDATE", new.clone(), Some(old.clone())),
        );
        assert!(v.allowed, "{:?}", v.message);
        assert!(v.warnings.iter().any(|w| w.contains("set-weight-range")));
        // A second bad step is a new problem.
        new["spec"]["strategy"]["canary"]["steps"] =
            json!([{"setWeight": 20}, {"setWeight": 120}, {"setWeight": 130}]);
        let v = run(
            &Policy::default(),
            &world(),
            &review("UPDATE", new, Some(old)),
        );
        assert!(!v.allowed);
        assert_eq!(v.message.unwrap().matches("[set-weight-range]").count(), 1);

        // A VirtualService route inserted before an old problem route: still only a warning.
        let bad_route = json!({"name": "legacy", "route": [
            {"destination": {"host": "a"}, "weight": -1}, {"destination": {"host": "b"}, "weight": 101}]});
        let good_route = json!({"name": "primary", "route": [
            {"destination": {"host": "app-stable"}, "weight": 100},
            {"destination": {"host": "app-canary"}, "weight": 0}]});
        let extra = json!({"name": "extra", "route": [{"destination": {"host": "x"}}]});
        let old_vs = vs_doc(
            "app-vs",
            json!({"hosts": ["app"], "http": [good_route.clone(), bad_route.clone()]}),
        );
        let new_vs = vs_doc(
            "app-vs",
            json!({"hosts": ["app"], "http": [extra, good_route, bad_route]}),
        );
        let v = run(
            &Policy::default(),
            &world(),
            &review("UPDATE", new_vs, Some(old_vs)),
        );
        assert!(v.allowed, "{:?}", v.message);
        assert!(v
            .warnings
            .iter()
            .any(|w| w.contains("route-weights-invalid")));
    }

    #[test]
    fn an_unreadable_old_object_turns_the_ratchet_off_with_a_warning() {
        let mut bad = rollout_doc(host_level(json!({"name": "app-vs", "routes": ["primary"]})));
        bad["spec"]["strategy"]["canary"]["steps"] = json!([{"setWeight": 120}]);
        let mut broken_old = bad.clone();
        broken_old["spec"]["strategy"]["canary"]["steps"] = json!("not-a-list");
        let (v, notes) = validate(
            &review("UPDATE", bad, Some(broken_old)),
            &Context {
                index: &world(),
                policy: &Policy::default(),
                stale: false,
            },
        );
        assert!(!v.allowed);
        assert!(
            v.warnings.iter().any(|w| w.contains("no ratchet")),
            "{:?}",
            v.warnings
        );
        assert_eq!(notes.degraded, ["old-object-unreadable"]);
    }

    #[test]
    fn denial_messages_list_at_most_twenty_problems() {
        let mut bad = rollout_doc(host_level(json!({"name": "app-vs", "routes": ["primary"]})));
        let steps: Vec<Value> = (0..25).map(|i| json!({"setWeight": 200 + i})).collect();
        bad["spec"]["strategy"]["canary"]["steps"] = json!(steps);
        let v = run(&Policy::default(), &world(), &review("CREATE", bad, None));
        let msg = v.message.unwrap();
        assert!(
            msg.starts_with("rollout-guard denied Rollout shop/app: 25 problems"),
            "{msg}"
        );
        assert_eq!(msg.matches("[set-weight-range]").count(), 20);
        assert!(msg.ends_with("- and 5 more"), "{msg}");
    }

    #[test]
    fn the_seed_virtualservice_is_denied() {
        let vs = vs_doc(
            "seed",
            json!({"hosts": ["rollouts-demo-vsvc1.local"], "tls": [{"match": [{"port": 3000,
            "sniHosts": ["reviews.bookinfo.com", "localhost"]}], "route": [{"destination": {"host": "s"}, "weight": 100}]}]}),
        );
        let v = run(
            &Policy::default(),
            &Index::new(),
            &review("CREATE", vs, None),
        );
        let msg = v.message.unwrap();
        assert_eq!(msg.matches("[sni-host-not-in-hosts]").count(), 2, "{msg}");
    }

    #[test]
    fn exempt_users_skip_and_warn_mode() {
        let req = review("UPDATE", vs_route("main"), Some(vs_route("primary")));
        let exempt = Policy {
            exempt_users: vec!["alice".into()],
            ..Policy::default()
        };
        assert!(run(&exempt, &world(), &req).allowed);
        let by_group = Policy {
            exempt_groups: vec!["devs".into()],
            ..Policy::default()
        };
        assert!(run(&by_group, &world(), &req).allowed);
        let audit = Policy {
            mode: Mode::Warn,
            breaks_severity: BreaksSeverity::Deny,
            ..Policy::default()
        };
        let v = run(&audit, &world(), &req);
        assert!(
            v.allowed
                && v.warnings
                    .iter()
                    .any(|w| w.contains("would deny: [breaks-rollout]")),
            "{:?}",
            v.warnings
        );
        let mut skipped = vs_route("main");
        skipped["metadata"]["annotations"] = json!({"rollout-guard.io/skip": "true"});
        let v = run(
            &Policy::default(),
            &world(),
            &review("UPDATE", skipped, Some(vs_route("primary"))),
        );
        assert!(v.allowed && v.warnings[0].contains("skipped"));
    }

    #[test]
    fn metadata_only_is_judged_on_the_text_of_the_other_fields() {
        let raw = |s: &str| serde_json::value::RawValue::from_string(s.to_string()).unwrap();
        let old = raw(r#"{"metadata":{"name":"a"},"spec":{"x":1,"y":[1,2]},"status":{"s":1}}"#);
        let reordered = raw(
            r#"{"spec":{"y":[1,2],"x":1},"metadata":{"name":"a","labels":{"l":"1"}},"status":{"s":2}}"#,
        );
        let changed = raw(r#"{"metadata":{"name":"a"},"spec":{"x":2,"y":[1,2]}}"#);
        let escaped = raw(r#"{"metadata":{"name":"a"},"sp\u0065c":{"x":1,"y":[1,2]}}"#);
        let relabelled =
            raw(r#"{"metadata":{"name":"a","labels":{"l":"1"}},"spec":{"x":1,"y":[1,2]}}"#);
        let same = |new: &RawValue| {
            let (Some(new), Some(old)) = (TopLevel::split(new), TopLevel::split(&old)) else {
                // An object that cannot be split is never taken for metadata-only.
                return false;
            };
            same_except_metadata(&new, &old)
        };
        assert!(same(&relabelled));
        assert!(!same(&changed));
        // Differing text is a change, even where the JSON is equal: judged in full, never skipped.
        assert!(!same(&reordered));
        assert!(!same(&escaped));
        assert!(!same(&raw("[1]")));
        assert!(TopLevel::split(&raw(r#"{"spec":1,"spec":2}"#)).is_none());
    }

    #[test]
    fn metadata_only_updates_pass() {
        let mut old = vs_route("primary");
        old["spec"]["tls"] =
            json!([{"match": [{"sniHosts": ["x"]}], "route": [{"destination": {"host": "a"}}]}]);
        let mut new = old.clone();
        new["metadata"]["labels"] = json!({"team": "a"});
        assert!(
            run(
                &Policy::default(),
                &world(),
                &review("UPDATE", new, Some(old))
            )
            .allowed
        );
    }

    #[test]
    fn unreadable_objects_are_denied_with_the_path() {
        let mut bad = rollout_doc(host_level(json!({"name": "app-vs"})));
        bad["spec"]["strategy"]["canary"]["steps"] = json!("not-a-list");
        let v = run(&Policy::default(), &world(), &review("CREATE", bad, None));
        let msg = v.message.unwrap();
        assert!(
            msg.contains("spec.strategy.canary.steps") && msg.contains("invalid-object"),
            "{msg}"
        );
    }

    #[test]
    fn stale_state_turns_cross_object_denials_into_warnings() {
        let req = review("UPDATE", vs_route("main"), Some(vs_route("primary")));
        let index = world();
        let policy = Policy {
            breaks_severity: BreaksSeverity::Deny,
            ..Policy::default()
        };
        let v = validate(
            &req,
            &Context {
                index: &index,
                policy: &policy,
                stale: true,
            },
        )
        .0;
        assert!(v.allowed && v.warnings.iter().any(|w| w.contains("breaks-rollout")));
    }
}
