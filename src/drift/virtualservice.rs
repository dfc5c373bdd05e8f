//! VirtualService: the weights of the routes a Rollout manages, and the header/mirror routes
//! the controller inserted.

use super::patch::{at, Doc, Patcher, Step};
use super::{owner, rollouts_for, Notes};
use crate::index::Lookup;
use crate::model::roles::{Role, Roles};
use crate::model::routes::{self, Selection};
use crate::model::virtualservice::{tcp_route_port, tls_route_identity, RouteDestination};
use crate::model::{Kind, ObjectKey, Rollout, VirtualService};
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How a route is recognised in both versions of the object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum RouteId {
    Http(String),
    /// The first unnamed http route (selected when `routes` is omitted).
    HttpUnnamed,
    Tls(Option<i64>, BTreeSet<String>),
    Tcp(Option<i64>),
}

impl RouteId {
    fn section(&self) -> &'static str {
        match self {
            RouteId::Http(_) | RouteId::HttpUnnamed => "http",
            RouteId::Tls(..) => "tls",
            RouteId::Tcp(_) => "tcp",
        }
    }

    fn find(&self, vs: &VirtualService) -> Option<usize> {
        match self {
            RouteId::Http(name) => vs.http_routes().iter().position(|r| r.name() == name),
            RouteId::HttpUnnamed => vs.http_routes().iter().position(|r| r.name().is_empty()),
            RouteId::Tls(port, sni) => vs.tls_routes().iter().position(|r| {
                let (p, s) = tls_route_identity(r);
                p == *port && s.into_iter().map(str::to_string).collect::<BTreeSet<_>>() == *sni
            }),
            RouteId::Tcp(port) => vs
                .tcp_routes()
                .iter()
                .position(|r| tcp_route_port(r) == *port),
        }
    }

    fn describe(&self, index: usize) -> String {
        match self {
            RouteId::Http(name) => format!("route {name:?}"),
            _ => format!("route {}[{index}]", self.section()),
        }
    }

    fn destinations<'a>(&self, vs: &'a VirtualService, index: usize) -> &'a [RouteDestination] {
        match self {
            RouteId::Http(_) | RouteId::HttpUnnamed => &vs.http_routes()[index].route,
            RouteId::Tls(..) => &vs.tls_routes()[index].route,
            RouteId::Tcp(_) => &vs.tcp_routes()[index].route,
        }
    }
}

fn weighted_route_ids(live: &VirtualService, sel: &Selection) -> Vec<(RouteId, usize)> {
    let mut out = Vec::new();
    for &i in &sel.http {
        let name = live.http_routes()[i].name();
        out.push((
            if name.is_empty() {
                RouteId::HttpUnnamed
            } else {
                RouteId::Http(name.to_string())
            },
            i,
        ));
    }
    for &i in &sel.tls {
        let (port, sni) = tls_route_identity(&live.tls_routes()[i]);
        out.push((
            RouteId::Tls(port, sni.into_iter().map(str::to_string).collect()),
            i,
        ));
    }
    for &i in &sel.tcp {
        out.push((RouteId::Tcp(tcp_route_port(&live.tcp_routes()[i])), i));
    }
    out
}

struct Claim {
    rollout: Arc<Rollout>,
    roles: Roles,
}

/// `request` is the view of the object the patcher holds the text of. Restoring weights and
/// experiment destinations changes neither the routes' names nor their order, so the view
/// stays true of the routes for the whole weight pass; the managed routes, inserted last, are
/// looked up in the patched text itself.
pub(super) fn restore(
    namespace: &str,
    request: &VirtualService,
    live: Option<&RawValue>,
    world: &dyn Lookup,
    patcher: &mut Patcher<'_>,
    notes: &mut Notes,
) {
    let key = ObjectKey::new(
        Kind::VirtualService,
        &request.meta.namespace,
        &request.meta.name,
    );
    if request.meta.skip {
        return;
    }
    let rollouts = rollouts_for(&key, world, notes);
    if rollouts.is_empty() {
        return;
    }
    match live {
        Some(live_raw) => {
            let Ok(live) = parse(live_raw, namespace) else {
                notes.warn(format!(
                    "rollout-guard: nothing restored on {key}: the live object cannot be read"
                ));
                return;
            };
            let mut live_doc = Doc::new(live_raw);
            restore_from_live(
                &key,
                &live,
                request,
                &mut live_doc,
                &rollouts,
                patcher,
                notes,
            );
        }
        None => restore_from_status(&key, request, &rollouts, patcher, notes),
    }
}

fn parse(raw: &RawValue, namespace: &str) -> Result<Arc<VirtualService>, ()> {
    match crate::model::Object::parse_kind_raw(Kind::VirtualService, raw, namespace) {
        Ok(crate::model::Object::VirtualService(vs)) => Ok(vs),
        _ => Err(()),
    }
}

/// Claims of every managed weighted route (evaluated on `vs`) by the Rollouts that reference it.
fn claims<'a>(
    key: &ObjectKey,
    vs: &VirtualService,
    rollouts: &'a [Arc<Rollout>],
) -> BTreeMap<RouteId, Vec<&'a Arc<Rollout>>> {
    let mut claims: BTreeMap<RouteId, Vec<&Arc<Rollout>>> = BTreeMap::new();
    for rollout in rollouts {
        for (_, vs_ref) in rollout.vs_refs() {
            let (ns, name) = vs_ref.target(&rollout.meta.namespace);
            if *ns != *key.namespace || *name != *key.name {
                continue;
            }
            let sel = routes::select(rollout, vs_ref, vs);
            for (id, _) in weighted_route_ids(vs, &sel) {
                let entry = claims.entry(id).or_default();
                if !entry.iter().any(|r| Arc::ptr_eq(r, rollout)) {
                    entry.push(rollout);
                }
            }
        }
    }
    claims
}

fn contested(
    key: &ObjectKey,
    id: &RouteId,
    index: usize,
    owners: &[&Arc<Rollout>],
    notes: &mut Notes,
) -> bool {
    if owners.len() < 2 {
        return false;
    }
    let names: Vec<String> = owners
        .iter()
        .map(|r| format!("{}/{}", r.meta.namespace, r.meta.name))
        .collect();
    notes.warn(format!(
        "rollout-guard: {} of {key} is claimed by Rollouts {}; its weights were not restored",
        id.describe(index),
        names.join(" and ")
    ));
    true
}

/// The managed weighted routes of `vs`, each with its index in `vs` and its one owner. A route
/// two Rollouts claim gets a warning and is left out.
fn owned_routes<'a>(
    key: &ObjectKey,
    vs: &VirtualService,
    rollouts: &'a [Arc<Rollout>],
    notes: &mut Notes,
) -> Vec<(RouteId, usize, &'a Arc<Rollout>)> {
    let mut out = Vec::new();
    for (id, owners) in claims(key, vs, rollouts) {
        let Some(index) = id.find(vs) else {
            continue;
        };
        if contested(key, &id, index, &owners, notes) {
            continue;
        }
        out.push((id, index, owners[0]));
    }
    out
}

fn route_path(id: &RouteId, index: usize) -> Vec<Step> {
    at!["spec", id.section(), index, "route"].to_vec()
}

/// UPDATE: the weights of the live object win.
fn restore_from_live(
    key: &ObjectKey,
    live: &VirtualService,
    request: &VirtualService,
    live_doc: &mut Doc<'_>,
    rollouts: &[Arc<Rollout>],
    patcher: &mut Patcher<'_>,
    notes: &mut Notes,
) {
    for (id, live_index, rollout) in owned_routes(key, live, rollouts, notes) {
        let claim = Claim {
            rollout: rollout.clone(),
            roles: Roles::of(rollout),
        };
        let Some(index) = id.find(request) else {
            continue;
        };
        let live_dests = id.destinations(live, live_index);
        let request_dests = id.destinations(request, index);
        let mut changed = false;
        for (j, live_dest) in live_dests.iter().enumerate() {
            let role = claim.roles.classify(&live_dest.destination);
            if !matches!(role, Role::Canary | Role::Stable | Role::Experiment) {
                continue;
            }
            let live_weight = live_dest.weight.unwrap_or(0);
            match request_dests
                .iter()
                .position(|d| d.destination == live_dest.destination)
            {
                Some(k) if request_dests[k].weight.unwrap_or(0) != live_weight => {
                    let mut path = route_path(&id, index);
                    path.extend([Step::Index(k), Step::Key("weight".into())]);
                    changed |= patcher.set(&path, Value::from(live_weight));
                }
                Some(_) => {}
                None if role == Role::Experiment => {
                    // The controller added this experiment destination; Git does not have it.
                    let added = live_doc
                        .get(&at!["spec", id.section(), live_index, "route", j])
                        .and_then(|d| d.to_value());
                    if let Some(added) = added {
                        let path = route_path(&id, index);
                        let len = patcher.doc().len_at(&path).unwrap_or(0);
                        changed |= patcher.insert(&path, len, added);
                    }
                }
                None => {}
            }
        }
        if changed {
            let kept = weights_text(&claim.roles, live_dests, false);
            let had = weights_text(&claim.roles, request_dests, true);
            notes.restored(format!(
                "rollout-guard: kept weights {kept} on VirtualService {}/{} {} {}; request had {had}",
                key.namespace,
                key.name,
                id.describe(index),
                owner(&claim.rollout),
            ));
            status_check(key, &id, index, &claim, live_dests, notes);
        }
    }
    restore_managed_routes(key, live, live_doc, rollouts, patcher, notes);
}

/// The controller writes the VirtualService before its status: a disagreement is normal for a
/// moment, so the live object wins, and the writer is told.
fn status_check(
    key: &ObjectKey,
    id: &RouteId,
    index: usize,
    claim: &Claim,
    live: &[RouteDestination],
    notes: &mut Notes,
) {
    let Some(recorded) = claim
        .rollout
        .status
        .as_ref()
        .ok()
        .and_then(|s| s.canary.weights.as_ref())
        .and_then(|w| w.canary.weight)
    else {
        return;
    };
    let live_canary = live
        .iter()
        .find(|d| claim.roles.classify(&d.destination) == Role::Canary)
        .and_then(|d| d.weight)
        .unwrap_or(0);
    if live_canary != recorded {
        notes.status_disagreements += 1;
        notes.warn(format!(
            "rollout-guard: live canary weight {live_canary} on VirtualService {}/{} {} differs from status.canary.weights \
             ({recorded}) of Rollout {}/{}; the live weight was kept",
            key.namespace,
            key.name,
            id.describe(index),
            claim.rollout.meta.namespace,
            claim.rollout.meta.name
        ));
    }
}

/// Header and mirror routes named in `managedRoutes` that the live object has and the request
/// dropped are put back where they were.
fn restore_managed_routes(
    key: &ObjectKey,
    live: &VirtualService,
    live_doc: &mut Doc<'_>,
    rollouts: &[Arc<Rollout>],
    patcher: &mut Patcher<'_>,
    notes: &mut Notes,
) {
    if live_doc.len_at(&at!["spec", "http"]).is_none() {
        return;
    }
    let mut owners: BTreeMap<String, Vec<&Arc<Rollout>>> = BTreeMap::new();
    for rollout in rollouts {
        for name in routes::managed_route_names(rollout) {
            owners.entry(name).or_default().push(rollout);
        }
    }
    for (live_index, route) in live.http_routes().iter().enumerate() {
        let name = route.name();
        let Some(claimants) = owners.get(name).filter(|_| !name.is_empty()) else {
            continue;
        };
        let id = RouteId::Http(name.to_string());
        if contested(key, &id, live_index, claimants, notes) {
            continue;
        }
        let request = patcher.doc();
        let present = (0..request.len_at(&at!["spec", "http"]).unwrap_or(0))
            .any(|i| request.str_at(&at!["spec", "http", i, "name"]) == Some(name));
        if present {
            continue;
        }
        let Some(route_value) = live_doc
            .get(&at!["spec", "http", live_index])
            .and_then(|r| r.to_value())
        else {
            continue;
        };
        if !patcher.doc().exists(&at!["spec", "http"])
            && !patcher.set(&at!["spec", "http"], Value::Array(Vec::new()))
        {
            continue;
        }
        if patcher.insert(&at!["spec", "http"], live_index, route_value) {
            let what = if route.mirror.is_some() {
                "mirror"
            } else {
                "header"
            };
            notes.restored(format!(
                "rollout-guard: kept managed {what} route {name:?} on VirtualService {}/{} {}; request dropped it",
                key.namespace,
                key.name,
                owner(claimants[0])
            ));
        }
    }
}

/// CREATE (the VirtualService was deleted and re-applied): weights from the Rollout's
/// `status.canary.weights`; without that record nothing is mutated.
fn restore_from_status(
    key: &ObjectKey,
    request: &VirtualService,
    rollouts: &[Arc<Rollout>],
    patcher: &mut Patcher<'_>,
    notes: &mut Notes,
) {
    for (id, index, rollout) in owned_routes(key, request, rollouts, notes) {
        let weights = match &rollout.status {
            Err(err) => {
                notes.warn(format!(
                    "rollout-guard: weights of VirtualService {}/{} not restored: status of Rollout {}/{} cannot be read ({err})",
                    key.namespace, key.name, rollout.meta.namespace, rollout.meta.name
                ));
                continue;
            }
            Ok(status) => match &status.canary.weights {
                Some(w) => w.clone(),
                None => {
                    notes.warn(format!(
                        "rollout-guard: weights of VirtualService {}/{} not restored: Rollout {}/{} has no \
                         status.canary.weights (no weight set yet, or a controller older than v1.1)",
                        key.namespace, key.name, rollout.meta.namespace, rollout.meta.name
                    ));
                    continue;
                }
            },
        };
        let roles = Roles::of(rollout);
        let canary = weights.canary.weight.unwrap_or(0);
        // Saturating: the status is read leniently and may hold any i64 (never a panic or a
        // wrapped-around sum).
        let additional = weights
            .additional
            .iter()
            .filter_map(|a| a.weight)
            .fold(0i64, i64::saturating_add);
        let in_range = |w: i64| (0..=100).contains(&w);
        if !in_range(canary)
            || !weights
                .additional
                .iter()
                .filter_map(|a| a.weight)
                .all(in_range)
            || canary.saturating_add(additional) > 100
        {
            notes.warn(format!(
                "rollout-guard: weights of VirtualService {}/{} not restored: status.canary.weights of Rollout {}/{} \
                 are out of range (canary {canary}, additional {additional}; expected 0..100 in total)",
                key.namespace, key.name, rollout.meta.namespace, rollout.meta.name
            ));
            continue;
        }
        let stable = 100 - canary - additional;
        let dests = id.destinations(request, index).to_vec();
        let mut changed = false;
        for (k, d) in dests.iter().enumerate() {
            let want = match roles.classify(&d.destination) {
                Role::Canary => canary,
                Role::Stable => stable,
                Role::Experiment => weights
                    .additional
                    .iter()
                    .find(|a| {
                        a.service_name.as_deref()
                            == Some(crate::model::host::first_label(&d.destination.host))
                    })
                    .and_then(|a| a.weight)
                    .unwrap_or(0),
                _ => continue,
            };
            if d.weight.unwrap_or(0) != want {
                let mut path = route_path(&id, index);
                path.extend([Step::Index(k), Step::Key("weight".into())]);
                changed |= patcher.set(&path, Value::from(want));
            }
        }
        if changed {
            notes.restored(format!(
                "rollout-guard: set weights stable={stable} canary={canary} on re-created VirtualService {}/{} {} {} from \
                 its status; request had {}",
                key.namespace,
                key.name,
                id.describe(index),
                owner(rollout),
                weights_text(&roles, &dests, true)
            ));
        }
    }
}

/// `stable=80 canary=20` for kept values, `100/0` (stable/canary) for what the request had;
/// experiment destinations follow as `name=weight`.
fn weights_text(roles: &Roles, dests: &[RouteDestination], short: bool) -> String {
    let weight = |role: Role| {
        dests
            .iter()
            .find(|d| roles.classify(&d.destination) == role)
            .map_or("-".to_string(), |d| d.weight.unwrap_or(0).to_string())
    };
    let mut text = if short {
        format!("{}/{}", weight(Role::Stable), weight(Role::Canary))
    } else {
        format!(
            "stable={} canary={}",
            weight(Role::Stable),
            weight(Role::Canary)
        )
    };
    for d in dests
        .iter()
        .filter(|d| roles.classify(&d.destination) == Role::Experiment)
    {
        text.push_str(&format!(
            " {}={}",
            crate::model::host::first_label(&d.destination.host),
            d.weight.unwrap_or(0)
        ));
    }
    text
}
