//! `rollout-guard explain NAMESPACE/ROLLOUT`: what a Rollout owns (its routes and their
//! destinations, its DestinationRule subsets, its Services' selectors), their live values next to
//! the desired ones (the Rollout's status and current step), and what the drift guard would keep
//! if the objects were re-applied from Git, computed by the drift guard itself on a Git-like
//! version of each live object.

use crate::drift;
use crate::index::{Index, Lookup};
use crate::model::roles::{Role, Roles};
use crate::model::rollout::{Rollout, VsRef};
use crate::model::routes::{self, RouteProblem};
use crate::model::virtualservice::{tcp_route_port, tls_route_identity, RouteDestination};
use crate::model::{Kind, Object, ObjectKey, ANNOTATION_MANAGED_BY, POD_TEMPLATE_HASH};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// The objects explain reads, as JSON (the drift guard works on JSON), with their views.
#[derive(Default)]
pub struct World {
    pub index: Index,
    raw: HashMap<ObjectKey, Value>,
}

impl World {
    /// Objects of our kinds among `docs`; others and unreadable ones are left out (lint says why).
    pub fn from_docs(docs: impl IntoIterator<Item = Value>) -> Self {
        let mut world = World::default();
        for doc in docs {
            if let Ok(Some(object)) = Object::parse(&doc, "default") {
                world.raw.insert(object.key(), doc);
                world.index.upsert(object);
            }
        }
        world
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub rollout: RolloutPart,
    pub services: Vec<ServicePart>,
    pub virtual_services: Vec<VirtualServicePart>,
    pub destination_rule: Option<DestinationRulePart>,
    /// What a re-apply from Git would have kept, object by object (from the drift guard).
    pub kept: Vec<KeptPart>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutPart {
    pub namespace: String,
    pub name: String,
    /// `2/4`, `completed`, or none without steps.
    pub step: Option<String>,
    /// The canary weight the current step asks for (the last setWeight up to it).
    pub step_weight: Option<i64>,
    /// `status.canary.weights`: what the controller last set.
    pub status_weights: Option<StatusWeights>,
    /// `status.stableRS` and `status.currentPodHash`: the hashes the stable and canary select.
    pub stable_hash: Option<String>,
    pub canary_hash: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StatusWeights {
    pub canary: Option<i64>,
    pub stable: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePart {
    pub role: &'static str,
    pub namespace: String,
    pub name: String,
    pub found: bool,
    pub selector: BTreeMap<String, String>,
    /// The `rollouts-pod-template-hash` the controller selects for this role.
    pub desired_hash: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServicePart {
    pub namespace: String,
    pub name: String,
    pub found: bool,
    pub routes: Vec<RoutePart>,
    /// `managedRoutes`: header and mirror routes the controller inserts, and whether they are there.
    pub managed_routes: Vec<ManagedRoutePart>,
    /// Why a route reference selects nothing (the rule ids lint reports).
    pub problems: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RoutePart {
    /// `http`, `tls` or `tcp`.
    pub section: &'static str,
    pub index: usize,
    /// The http route's name, `port 443 sni [a, b]` for TLS, `port 5000` for TCP.
    pub name: String,
    pub destinations: Vec<DestinationPart>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationPart {
    pub host: String,
    pub subset: Option<String>,
    pub role: &'static str,
    pub weight: Option<i64>,
    /// From `status.canary.weights` (canary and stable only).
    pub status_weight: Option<i64>,
    /// What the current step's setWeight gives (canary: w, stable: 100 - w).
    pub step_weight: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct ManagedRoutePart {
    pub name: String,
    pub present: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRulePart {
    pub namespace: String,
    pub name: String,
    pub found: bool,
    pub subsets: Vec<SubsetPart>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubsetPart {
    pub role: &'static str,
    pub name: String,
    pub found: bool,
    pub hash: Option<String>,
    pub desired_hash: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct KeptPart {
    pub object: String,
    /// One line per value kept.
    pub kept: Vec<String>,
    /// The drift guard's other warnings (why something is not restored).
    pub notes: Vec<String>,
}

/// Why there is nothing to explain.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("expected NAMESPACE/ROLLOUT, found {0:?}")]
    Target(String),
    #[error("expected a Rollout {key} in {from}, found none; Rollouts there: {known}")]
    UnknownRollout {
        key: String,
        from: String,
        known: String,
    },
}

pub fn parse_target(target: &str) -> Result<(String, String), ExplainError> {
    match target.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(ExplainError::Target(target.to_string())),
    }
}

pub fn explain(
    world: &World,
    namespace: &str,
    name: &str,
    from: &str,
) -> Result<Explanation, ExplainError> {
    let Some(rollout) = world.index.rollout(namespace, name) else {
        let known: Vec<String> = world
            .index
            .keys(Kind::Rollout)
            .iter()
            .take(crate::rules::MAX_LISTED)
            .map(|k| format!("{}/{}", k.namespace, k.name))
            .collect();
        return Err(ExplainError::UnknownRollout {
            key: format!("{namespace}/{name}"),
            from: from.to_string(),
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        });
    };
    let roles = Roles::of(&rollout);
    let rollout_part = rollout_part(&rollout);
    let services = services(world, &rollout, &roles, &rollout_part);
    let virtual_services = rollout
        .vs_refs()
        .into_iter()
        .map(|(_, vs_ref)| virtual_service(world, &rollout, vs_ref, &roles, &rollout_part))
        .collect();
    let destination_rule = destination_rule(world, &rollout, &roles);
    let kept = kept(world, &rollout, &roles);
    Ok(Explanation {
        rollout: rollout_part,
        services,
        virtual_services,
        destination_rule,
        kept,
    })
}

fn rollout_part(rollout: &Rollout) -> RolloutPart {
    let status = rollout.status.as_ref().ok();
    let steps = rollout.steps();
    // Without `status.currentStepIndex` the controller has not started the steps: no step to show.
    let index = status
        .and_then(|s| s.current_step_index)
        .map(|i| usize::try_from(i).unwrap_or(0));
    let (step, step_weight) = match index {
        _ if steps.is_empty() => (None, None),
        None => (None, None),
        Some(i) if i >= steps.len() => (Some("completed".to_string()), Some(0)),
        Some(i) => {
            let weight = steps[..=i]
                .iter()
                .rev()
                .find_map(|s| s.set_weight)
                .unwrap_or(0);
            (Some(format!("{}/{}", i + 1, steps.len())), Some(weight))
        }
    };
    let weights = status.and_then(|s| s.canary.weights.as_ref());
    RolloutPart {
        namespace: rollout.meta.namespace.to_string(),
        name: rollout.meta.name.to_string(),
        step,
        step_weight,
        status_weights: weights.map(|w| StatusWeights {
            canary: w.canary.weight,
            stable: w.stable.weight,
        }),
        stable_hash: status.and_then(|s| s.stable_rs.clone()),
        canary_hash: status.and_then(|s| s.current_pod_hash.clone()),
    }
}

fn services(
    world: &World,
    rollout: &Rollout,
    roles: &Roles,
    part: &RolloutPart,
) -> Vec<ServicePart> {
    let ns = &rollout.meta.namespace;
    [
        ("canary", &roles.canary_service, &part.canary_hash),
        ("stable", &roles.stable_service, &part.stable_hash),
    ]
    .into_iter()
    .filter(|(_, name, _)| !name.is_empty())
    .map(|(role, name, hash)| {
        let live = world.index.service_of(rollout, name);
        ServicePart {
            role,
            namespace: ns.to_string(),
            name: name.clone(),
            found: live.is_some(),
            selector: live
                .map(|s| {
                    s.selector
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            // Never in subset mode: there the controller leaves the Services alone.
            desired_hash: hash.clone().filter(|_| !roles.subset_mode()),
        }
    })
    .collect()
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Canary => "canary",
        Role::Stable => "stable",
        Role::Experiment => "experiment",
        Role::AdditionalSubset => "additional-subset",
        Role::Foreign => "other",
    }
}

fn virtual_service(
    world: &World,
    rollout: &Rollout,
    vs_ref: &VsRef,
    roles: &Roles,
    part: &RolloutPart,
) -> VirtualServicePart {
    let (ns, name) = vs_ref.target(&rollout.meta.namespace);
    let mut out = VirtualServicePart {
        namespace: ns.clone(),
        name: name.clone(),
        found: false,
        routes: Vec::new(),
        managed_routes: Vec::new(),
        problems: Vec::new(),
    };
    let Some(vs) = world.index.virtual_service(&ns, &name) else {
        out.problems.push(format!(
            "[reference-missing] VirtualService {ns}/{name} does not exist: the controller cannot set its weights"
        ));
        return out;
    };
    out.found = true;
    let sel = routes::select(rollout, vs_ref, &vs);
    let status = part.status_weights.as_ref();
    let destination = |d: &RouteDestination| {
        let role = roles.classify(&d.destination);
        let (status_weight, step_weight) = match role {
            Role::Canary => (status.and_then(|s| s.canary), part.step_weight),
            Role::Stable => (
                status.and_then(|s| s.stable),
                part.step_weight.map(|w| 100 - w),
            ),
            _ => (None, None),
        };
        DestinationPart {
            host: d.destination.host.clone(),
            subset: d.destination.subset.clone(),
            role: role_name(role),
            weight: d.weight,
            status_weight,
            step_weight,
        }
    };
    for &i in &sel.http {
        let r = &vs.http_routes()[i];
        out.routes.push(RoutePart {
            section: "http",
            index: i,
            name: r.name().to_string(),
            destinations: r.route.iter().map(destination).collect(),
        });
    }
    for &i in &sel.tls {
        let r = &vs.tls_routes()[i];
        let (port, sni) = tls_route_identity(r);
        out.routes.push(RoutePart {
            section: "tls",
            index: i,
            name: format!(
                "port {} sni [{}]",
                port.map_or("(several)".to_string(), |p| p.to_string()),
                sni.into_iter().collect::<Vec<_>>().join(", ")
            ),
            destinations: r.route.iter().map(destination).collect(),
        });
    }
    for &i in &sel.tcp {
        let r = &vs.tcp_routes()[i];
        out.routes.push(RoutePart {
            section: "tcp",
            index: i,
            name: format!(
                "port {}",
                tcp_route_port(r).map_or("(several)".to_string(), |p| p.to_string())
            ),
            destinations: r.route.iter().map(destination).collect(),
        });
    }
    out.managed_routes = rollout
        .managed_route_names()
        .into_iter()
        .map(|m| ManagedRoutePart {
            name: m.to_string(),
            present: vs.http_routes().iter().any(|r| r.name() == m),
        })
        .collect();
    out.problems = sel.problems.iter().map(describe_problem).collect();
    out
}

fn describe_problem(p: &RouteProblem) -> String {
    match p {
        RouteProblem::HttpNotFound { index, name } => {
            format!("[http-route-not-found] routes[{index}] names {name:?}, which the VirtualService lacks")
        }
        RouteProblem::HttpDuplicate { index, name } => {
            format!("[http-route-ambiguous] routes[{index}] names {name:?}, defined more than once")
        }
        RouteProblem::HttpAmbiguous { candidates } => {
            format!("[http-route-ambiguous] routes omitted and several http routes could be meant: {candidates:?}")
        }
        RouteProblem::TlsNotFound { index, .. } => {
            format!("[tls-route-not-found] tlsRoutes[{index}] matches no TLS route")
        }
        RouteProblem::TlsAmbiguous { count } => {
            format!("[tls-route-ambiguous] tlsRoutes omitted and the VirtualService has {count} TLS routes")
        }
        RouteProblem::TcpNotFound { index } => {
            format!("[tcp-route-not-found] tcpRoutes[{index}] matches no TCP route")
        }
        RouteProblem::TcpAmbiguous { count } => {
            format!("[tcp-route-ambiguous] tcpRoutes omitted and the VirtualService has {count} TCP routes")
        }
        RouteProblem::ListIgnored { field, vs_field } => format!(
            "[route-list-ignored] {field} is ignored: the VirtualService has no {vs_field} routes"
        ),
    }
}

fn destination_rule(
    world: &World,
    rollout: &Rollout,
    roles: &Roles,
) -> Option<DestinationRulePart> {
    let dr_ref = rollout.istio()?.destination_rule.as_ref()?;
    let ns = &rollout.meta.namespace;
    let key = ObjectKey::new(Kind::DestinationRule, ns, &dr_ref.name);
    let raw = world.raw.get(&key);
    let weights = rollout
        .status
        .as_ref()
        .ok()
        .and_then(|s| s.canary.weights.as_ref());
    let subsets = [
        (
            "canary",
            &roles.canary_subset,
            weights.and_then(|w| w.canary.pod_template_hash.clone()),
        ),
        (
            "stable",
            &roles.stable_subset,
            weights.and_then(|w| w.stable.pod_template_hash.clone()),
        ),
    ]
    .into_iter()
    .map(|(role, name, desired_hash)| {
        let live = raw.and_then(|r| {
            r.pointer("/spec/subsets")?
                .as_array()?
                .iter()
                .find(|s| s.get("name").and_then(Value::as_str) == Some(name.as_str()))
        });
        SubsetPart {
            role,
            name: name.clone(),
            found: live.is_some(),
            hash: live
                .and_then(|s| s.pointer(&format!("/labels/{POD_TEMPLATE_HASH}")))
                .and_then(Value::as_str)
                .map(str::to_string),
            desired_hash,
        }
    })
    .collect();
    Some(DestinationRulePart {
        namespace: ns.to_string(),
        name: dr_ref.name.clone(),
        found: raw.is_some(),
        subsets,
    })
}

/// The drift guard's answer to a re-apply of each object the Rollout owns, as Git usually holds
/// it: all traffic on stable (stable 100, canary 0), no `rollouts-pod-template-hash`, no
/// controller annotation, no controller-inserted (managed) routes.
fn kept(world: &World, rollout: &Rollout, roles: &Roles) -> Vec<KeptPart> {
    let mut out = Vec::new();
    for key in crate::index::references_of(rollout) {
        let Some(live) = world.raw.get(&key) else {
            continue;
        };
        let git = as_in_git(&key, live, rollout, roles, world);
        let m = drift::restore_values(key.kind, &key.namespace, &git, Some(live), &world.index);
        let notes = m
            .warnings
            .iter()
            .filter(|w| !m.kept.contains(w))
            .cloned()
            .collect();
        out.push(KeptPart {
            object: key.to_string(),
            kept: m.kept,
            notes,
        });
    }
    out
}

fn as_in_git(
    key: &ObjectKey,
    live: &Value,
    rollout: &Rollout,
    roles: &Roles,
    world: &World,
) -> Value {
    let mut git = live.clone();
    if let Some(meta) = git.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove(ANNOTATION_MANAGED_BY);
        }
    }
    match key.kind {
        Kind::Service => {
            if let Some(sel) = git
                .pointer_mut("/spec/selector")
                .and_then(Value::as_object_mut)
            {
                sel.remove(POD_TEMPLATE_HASH);
            }
        }
        Kind::DestinationRule => {
            for subset in git
                .pointer_mut("/spec/subsets")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let name = subset.get("name").and_then(Value::as_str).unwrap_or("");
                if name == roles.canary_subset || name == roles.stable_subset {
                    if let Some(labels) = subset.get_mut("labels").and_then(Value::as_object_mut) {
                        labels.remove(POD_TEMPLATE_HASH);
                    }
                }
            }
        }
        Kind::VirtualService => {
            let Some(vs) = world.index.virtual_service(&key.namespace, &key.name) else {
                return git;
            };
            for (_, vs_ref) in rollout.vs_refs() {
                if vs_ref.target(&rollout.meta.namespace)
                    != (key.namespace.to_string(), key.name.to_string())
                {
                    continue;
                }
                let sel = routes::select(rollout, vs_ref, &vs);
                for (section, indexes) in
                    [("http", &sel.http), ("tls", &sel.tls), ("tcp", &sel.tcp)]
                {
                    for &i in indexes {
                        let Some(dests) = git
                            .pointer_mut(&format!("/spec/{section}/{i}/route"))
                            .and_then(Value::as_array_mut)
                        else {
                            continue;
                        };
                        for d in dests {
                            let Ok(parsed) = serde_json::from_value::<RouteDestination>(d.clone())
                            else {
                                continue;
                            };
                            let weight = match roles.classify(&parsed.destination) {
                                Role::Canary => 0,
                                Role::Stable => 100,
                                _ => continue,
                            };
                            d["weight"] = weight.into();
                        }
                    }
                }
            }
            let managed = rollout.managed_route_names();
            if let Some(http) = git.pointer_mut("/spec/http").and_then(Value::as_array_mut) {
                http.retain(|r| {
                    !r.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| managed.contains(&n))
                });
            }
        }
        Kind::Rollout => {}
    }
    git
}

impl Explanation {
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let r = &self.rollout;
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        let mut head = format!("Rollout {}/{}", r.namespace, r.name);
        if let Some(step) = &r.step {
            head.push_str(&format!(": step {step}"));
            if let Some(w) = r.step_weight {
                head.push_str(&format!(" (canary weight {w} by the steps)"));
            }
        }
        if let Some(w) = &r.status_weights {
            head.push_str(&format!(
                "; status weights canary={} stable={}",
                opt(w.canary),
                opt(w.stable)
            ));
        }
        line(head);
        if r.stable_hash.is_some() || r.canary_hash.is_some() {
            line(format!(
                "  pod template hashes: stable {}, canary {}",
                r.stable_hash.as_deref().unwrap_or("-"),
                r.canary_hash.as_deref().unwrap_or("-")
            ));
        }
        for s in &self.services {
            let what = if s.found {
                format!("selector {}", labels(&s.selector))
            } else {
                "not found".to_string()
            };
            let desired = s
                .desired_hash
                .as_ref()
                .map(|h| format!(" (the controller selects {POD_TEMPLATE_HASH}={h})"))
                .unwrap_or_default();
            line(format!(
                "{} Service {}/{}: {what}{desired}",
                s.role, s.namespace, s.name
            ));
        }
        for vs in &self.virtual_services {
            line(format!(
                "VirtualService {}/{}{}",
                vs.namespace,
                vs.name,
                if vs.found { ":" } else { ": not found" }
            ));
            for route in &vs.routes {
                line(format!(
                    "  {} route {:?} [{}]:",
                    route.section, route.name, route.index
                ));
                for d in &route.destinations {
                    let subset = d
                        .subset
                        .as_ref()
                        .map(|s| format!(" subset {s}"))
                        .unwrap_or_default();
                    let mut desired = Vec::new();
                    if let Some(w) = d.status_weight {
                        desired.push(format!("status {w}"));
                    }
                    if let Some(w) = d.step_weight {
                        desired.push(format!("step {w}"));
                    }
                    let desired = if desired.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", desired.join(", "))
                    };
                    line(format!(
                        "    {}{subset}: {} weight {}{desired}",
                        d.host,
                        d.role,
                        opt(d.weight)
                    ));
                }
            }
            for m in &vs.managed_routes {
                line(format!(
                    "  managed route {:?}: {}",
                    m.name,
                    if m.present { "present" } else { "absent" }
                ));
            }
            for p in &vs.problems {
                line(format!("  problem: {p}"));
            }
        }
        if let Some(dr) = &self.destination_rule {
            line(format!(
                "DestinationRule {}/{}{}",
                dr.namespace,
                dr.name,
                if dr.found { ":" } else { ": not found" }
            ));
            for s in dr.subsets.iter().filter(|_| dr.found) {
                let live = if s.found {
                    format!(
                        "{POD_TEMPLATE_HASH}={}",
                        s.hash.as_deref().unwrap_or("(none)")
                    )
                } else {
                    "not found".to_string()
                };
                let desired = s
                    .desired_hash
                    .as_ref()
                    .map(|h| format!(" (status: {h})"))
                    .unwrap_or_default();
                line(format!("  {} subset {:?}: {live}{desired}", s.role, s.name));
            }
        }
        line(
            "A re-apply from Git (stable 100, canary 0, no pod-template-hash, no controller annotation, no managed \
             routes) would keep:"
                .to_string(),
        );
        let mut any = false;
        for k in &self.kept {
            for kept in &k.kept {
                any = true;
                line(format!(
                    "  {}",
                    kept.strip_prefix("rollout-guard: ").unwrap_or(kept)
                ));
            }
            for note in &k.notes {
                any = true;
                line(format!(
                    "  note: {}",
                    note.strip_prefix("rollout-guard: ").unwrap_or(note)
                ));
            }
        }
        if !any {
            line(
                "  nothing: the live objects hold no controller-owned value that such a write would change"
                    .to_string(),
            );
        }
        out
    }
}

fn opt(v: Option<i64>) -> String {
    v.map_or("-".to_string(), |v| v.to_string())
}

fn labels(m: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// The whole command: 0 explained, 2 nothing to explain (bad target, nothing read, no such
/// Rollout), as lint's usage errors.
pub async fn run(
    target: &str,
    manifests: &[String],
    kubeconfig: Option<&std::path::Path>,
    output: crate::lint::Output,
    stdout: &mut dyn std::io::Write,
    stderr: &mut dyn std::io::Write,
) -> i32 {
    let fail = |stderr: &mut dyn std::io::Write, e: &dyn std::fmt::Display| {
        let _ = writeln!(stderr, "rollout-guard explain: {e}");
        2
    };
    let (namespace, name) = match parse_target(target) {
        Ok(t) => t,
        Err(e) => return fail(stderr, &e),
    };
    let (world, from) = if manifests.is_empty() {
        let listed = async {
            let (client, from) = crate::audit::connect(kubeconfig).await?;
            let listed = crate::audit::list(&client, &[]).await?;
            Ok::<_, anyhow::Error>((listed, from))
        };
        match listed.await {
            Ok((listed, from)) => (World::from_docs(listed.into_iter().map(|(_, v)| v)), from),
            Err(e) => return fail(stderr, &format!("{e:#}")),
        }
    } else {
        let (inputs, errors) = crate::lint::read_inputs(manifests, &mut std::io::stdin());
        for e in &errors {
            let _ = writeln!(stderr, "rollout-guard explain: {e}");
        }
        if inputs.is_empty() {
            return fail(stderr, &"nothing could be read");
        }
        let docs = inputs
            .iter()
            .flat_map(|i| crate::lint::items(i).1)
            .filter_map(|(_, item)| item.ok());
        (World::from_docs(docs), manifests.join(" "))
    };
    let explanation = match explain(&world, &namespace, &name, &from) {
        Ok(e) => e,
        Err(e) => return fail(stderr, &e),
    };
    let written = match output {
        crate::lint::Output::Text => stdout.write_all(explanation.to_text().as_bytes()),
        crate::lint::Output::Json => serde_json::to_writer_pretty(&mut *stdout, &explanation)
            .map_err(std::io::Error::other)
            .and_then(|_| stdout.write_all(b"\n")),
    };
    match written {
        Ok(()) => 0,
        Err(e) => fail(stderr, &format!("cannot write the explanation: {e}")),
    }
}
