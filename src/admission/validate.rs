//! `POST /validate`: the rules under the admission policy (ratchet, reference severity,
//! breaks-rollout, exemptions, skip annotation, warn mode).

use super::review::{shorten, Operation, Request, Verdict, MAX_WARNING_LEN};
use super::{pass, screen, Context, Mode, Notes, ReferenceSeverity};
use crate::index::Overlay;
use crate::model::{Kind, Object};
use crate::rules::{self, breaks, Finding, Scope, Severity};
use serde_json::value::RawValue;
use std::collections::{BTreeMap, BTreeSet};

pub fn validate(request: &Request, ctx: &Context<'_>) -> (Verdict, Notes) {
    let kind = match screen(request, ctx) {
        Ok(kind) => kind,
        Err(answer) => return answer,
    };
    let Some(raw) = &request.object else {
        return deny_invalid(
            ctx,
            kind,
            request,
            "expected request.object, found none".into(),
        );
    };
    let object = match Object::parse_kind_raw(kind, raw, &request.namespace) {
        Ok(o) => o,
        Err(err) => {
            return deny_invalid(
                ctx,
                kind,
                request,
                format!(
                    "{kind} {}/{} cannot be read: {err}",
                    request.namespace, request.name
                ),
            )
        }
    };
    if object.meta().skip {
        let warning = format!(
            "rollout-guard: validation skipped for {} (annotation rollout-guard.io/skip=true)",
            object.key()
        );
        return (
            Verdict::allow().with_warning(warning),
            Notes {
                skipped: true,
                ..Notes::default()
            },
        );
    }
    let old_raw = request
        .old_object
        .as_ref()
        .filter(|_| request.operation == Operation::Update);
    if old_raw.is_some_and(|old| same_except_metadata(raw, old)) {
        return pass();
    }
    let old = old_raw.and_then(|o| Object::parse_kind_raw(kind, o, &request.namespace).ok());
    let create = request.operation == Operation::Create;

    let mut deny: Vec<Finding> = Vec::new();
    let mut warn: Vec<Finding> = Vec::new();

    // Self-contained rules, ratcheted against the old object.
    let old_self: BTreeSet<_> = old
        .as_ref()
        .map(rules::check_self)
        .unwrap_or_default()
        .into_iter()
        .map(owned_identity)
        .collect();
    for f in rules::check_self(&object) {
        if f.severity == Severity::Deny && !old_self.contains(&owned_identity(f.clone())) {
            deny.push(f);
        } else {
            warn.push(f);
        }
    }

    let key = object.key();
    let after = Overlay {
        base: ctx.index,
        key: key.clone(),
        object: Some(object.clone()),
    };
    match &object {
        Object::Rollout(rollout) => {
            let old_refs: BTreeSet<_> = match &old {
                Some(Object::Rollout(o)) => {
                    let before = Overlay {
                        base: ctx.index,
                        key: key.clone(),
                        object: old.clone(),
                    };
                    rules::check_references(o, &before)
                        .into_iter()
                        .map(owned_identity)
                        .collect()
                }
                _ => BTreeSet::new(),
            };
            for f in rules::check_references(rollout, &after) {
                let denies = f.severity == Severity::Deny
                    && !ctx.stale
                    && !old_refs.contains(&owned_identity(f.clone()))
                    && match ctx.policy.reference_severity {
                        ReferenceSeverity::Auto => create,
                        ReferenceSeverity::Warn => false,
                        ReferenceSeverity::Deny => true,
                    };
                if f.rule == "managed-route-collision"
                    && old_refs.contains(&owned_identity(f.clone()))
                {
                    continue;
                }
                if denies {
                    deny.push(f);
                } else {
                    warn.push(f);
                }
            }
        }
        _ => {
            let before = Overlay {
                base: ctx.index,
                key: key.clone(),
                object: old.clone(),
            };
            let impact = breaks::check(&key, &before, &after);
            for f in impact.breaks {
                if ctx.stale {
                    warn.push(f);
                } else {
                    deny.push(f);
                }
            }
            warn.extend(impact.warnings);
        }
    }
    verdict(ctx, &object, deny, warn)
}

fn owned_identity(f: Finding) -> (&'static str, String, String) {
    (f.rule, f.path, f.target)
}

fn verdict(
    ctx: &Context<'_>,
    object: &Object,
    deny: Vec<Finding>,
    warn: Vec<Finding>,
) -> (Verdict, Notes) {
    let mut notes = Notes::default();
    let mut verdict = Verdict::allow();
    let mut rules_denied: Vec<&'static str> = deny.iter().map(|f| f.rule).collect();
    rules_denied.sort();
    rules_denied.dedup();
    notes.denied_rules = rules_denied;
    if !deny.is_empty() {
        match ctx.policy.mode {
            Mode::Enforce => {
                verdict = Verdict::deny(denial_message(object, &deny));
            }
            Mode::Warn => {
                for f in &deny {
                    verdict.warnings.push(warning("would deny", f));
                }
            }
        }
    }
    for f in &warn {
        if f.scope() == Scope::Input && f.severity == Severity::Deny {
            continue;
        }
        verdict.warnings.push(warning("warning", f));
    }
    (verdict, notes)
}

fn denial_message(object: &Object, deny: &[Finding]) -> String {
    let key = object.key();
    let mut message = format!(
        "rollout-guard denied {key}: {} problem{}",
        deny.len(),
        if deny.len() == 1 { "" } else { "s" }
    );
    for f in deny {
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
    ctx: &Context<'_>,
    kind: Kind,
    request: &Request,
    message: String,
) -> (Verdict, Notes) {
    let notes = Notes {
        denied_rules: vec!["invalid-object"],
        ..Notes::default()
    };
    let text = format!(
        "rollout-guard denied {kind} {}/{}: [invalid-object] {message}",
        request.namespace, request.name
    );
    match ctx.policy.mode {
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
fn same_except_metadata(new: &RawValue, old: &RawValue) -> bool {
    type Fields<'a> = BTreeMap<&'a str, &'a RawValue>;
    let (Ok(n), Ok(o)) = (
        serde_json::from_str::<Fields<'_>>(new.get()),
        serde_json::from_str::<Fields<'_>>(old.get()),
    ) else {
        return false;
    };
    fn relevant<'a>(m: &Fields<'a>) -> Vec<(&'a str, &'a str)> {
        m.iter()
            .filter(|(k, _)| !matches!(**k, "metadata" | "status"))
            .map(|(k, v)| (*k, v.get()))
            .collect()
    }
    new.get().trim_start().starts_with('{') && relevant(&n) == relevant(&o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::review::parse;
    use crate::admission::Policy;
    use crate::index::Index;
    use crate::rules::testing::*;
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
    fn breaking_a_live_rollout_is_denied_and_names_it() {
        let req = review("UPDATE", vs_route("main"), Some(vs_route("primary")));
        let v = run(&Policy::default(), &world(), &req);
        assert!(!v.allowed);
        let msg = v.message.unwrap();
        assert!(
            msg.contains("[breaks-rollout]") && msg.contains("Rollout shop/app"),
            "{msg}"
        );
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
        assert!(same_except_metadata(&relabelled, &old));
        assert!(!same_except_metadata(&changed, &old));
        // Differing text is a change, even where the JSON is equal: judged in full, never skipped.
        assert!(!same_except_metadata(&reordered, &old));
        assert!(!same_except_metadata(&escaped, &old));
        assert!(!same_except_metadata(&raw("[1]"), &old));
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
        let policy = Policy::default();
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
