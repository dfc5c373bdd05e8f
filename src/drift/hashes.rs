//! DestinationRule subsets and Services: the `rollouts-pod-template-hash` label/selector, the
//! managed-by annotation, and (DestinationRule) the experiment subsets the controller appended.

use super::patch::{at, Doc, Patcher};
use super::{owner, rollouts_for, Notes};
use crate::index::Lookup;
use crate::model::roles::Roles;
use crate::model::{
    Kind, ObjectKey, Rollout, ANNOTATION_MANAGED_BY, ANNOTATION_SKIP, POD_TEMPLATE_HASH,
};
use serde_json::value::RawValue;
use serde_json::Value;
use std::sync::Arc;

fn skip(doc: &mut Doc<'_>) -> bool {
    doc.str_at(&at!["metadata", "annotations", ANNOTATION_SKIP])
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn annotation(doc: &mut Doc<'_>) -> Option<String> {
    doc.str_at(&at!["metadata", "annotations", ANNOTATION_MANAGED_BY])
        .map(str::to_string)
}

/// `subsets[i].name` and its `rollouts-pod-template-hash` label.
fn subset(doc: &mut Doc<'_>, i: usize) -> (Option<String>, Option<String>) {
    let name = doc
        .str_at(&at!["spec", "subsets", i, "name"])
        .map(str::to_string);
    let hash = doc
        .str_at(&at!["spec", "subsets", i, "labels", POD_TEMPLATE_HASH])
        .map(str::to_string);
    (name, hash)
}

fn subset_count(doc: &mut Doc<'_>) -> usize {
    doc.len_at(&at!["spec", "subsets"]).unwrap_or(0)
}

fn has_subset(doc: &mut Doc<'_>, name: &str) -> bool {
    (0..subset_count(doc)).any(|i| doc.str_at(&at!["spec", "subsets", i, "name"]) == Some(name))
}

/// The one Rollout whose controller-owned fields this object carries, or `None` with a warning
/// when there is none or more than one.
fn single_owner(
    key: &ObjectKey,
    rollouts: Vec<Arc<Rollout>>,
    notes: &mut Notes,
) -> Option<Arc<Rollout>> {
    match rollouts.len() {
        0 => None,
        1 => rollouts.into_iter().next(),
        _ => {
            let names: Vec<String> = rollouts
                .iter()
                .map(|r| format!("{}/{}", r.meta.namespace, r.meta.name))
                .collect();
            notes.warn(format!(
                "rollout-guard: {key} is referenced by Rollouts {}; nothing restored",
                names.join(" and ")
            ));
            None
        }
    }
}

/// The Rollouts an object belongs to: those that reference it; when none does, the one its
/// managed-by annotation names must exist, or the answer cannot be known.
fn owners(
    key: &ObjectKey,
    request: &mut Doc<'_>,
    live: Option<&mut Doc<'_>>,
    world: &dyn Lookup,
    notes: &mut Notes,
) -> Option<Arc<Rollout>> {
    let rollouts = rollouts_for(key, world, notes);
    if rollouts.is_empty() {
        if let Some(name) = live.and_then(annotation).or_else(|| annotation(request)) {
            if world.rollout(&key.namespace, &name).is_none() {
                notes.warn(format!(
                    "rollout-guard: nothing restored on {key}: Rollout {}/{name} named by its managed-by annotation is not known",
                    key.namespace
                ));
            }
        }
        return None;
    }
    single_owner(key, rollouts, notes)
}

/// The key of the request object and the one Rollout that owns its controller fields, unless
/// it is skipped or has no (single) owner.
fn owned(
    kind: Kind,
    namespace: &str,
    live: Option<&mut Doc<'_>>,
    world: &dyn Lookup,
    patcher: &mut Patcher<'_>,
    notes: &mut Notes,
) -> Option<(ObjectKey, Arc<Rollout>)> {
    let request = patcher.doc();
    let name = request
        .str_at(&at!["metadata", "name"])
        .map(str::to_string)?;
    if skip(request) {
        return None;
    }
    let ns = request
        .str_at(&at!["metadata", "namespace"])
        .filter(|n| !n.is_empty())
        .unwrap_or(namespace)
        .to_string();
    let key = ObjectKey::new(kind, &ns, &name);
    let rollout = owners(&key, request, live, world, notes)?;
    Some((key, rollout))
}

/// Hashes recorded in the Rollout status on CREATE, or why they cannot be known.
fn status_hashes(rollout: &Rollout) -> Result<(Option<String>, Option<String>), String> {
    let status = rollout
        .status
        .as_ref()
        .map_err(|e| format!("its status cannot be read ({e})"))?;
    let weights = status.canary.weights.as_ref().ok_or_else(|| {
        "it has no status.canary.weights (no weight set yet, or a controller older than v1.1)"
            .to_string()
    })?;
    Ok((
        weights.canary.pod_template_hash.clone(),
        weights.stable.pod_template_hash.clone(),
    ))
}

fn restore_annotation(
    key: &ObjectKey,
    rollout: &Rollout,
    live: Option<&mut Doc<'_>>,
    patcher: &mut Patcher<'_>,
    notes: &mut Notes,
) {
    let want = match live {
        Some(l) => annotation(l),
        None => Some(rollout.meta.name.to_string()),
    };
    let Some(want) = want else { return };
    let had = annotation(patcher.doc());
    if had.as_deref() == Some(want.as_str()) {
        return;
    }
    let had = had.unwrap_or_else(|| "none".to_string());
    if patcher.set(
        &at!["metadata", "annotations", ANNOTATION_MANAGED_BY],
        Value::from(want.clone()),
    ) {
        notes.restored(format!(
            "rollout-guard: kept annotation {ANNOTATION_MANAGED_BY}={want} on {key} {}; request had {had}",
            owner(rollout)
        ));
    }
}

pub(super) fn restore_destination_rule(
    namespace: &str,
    live: Option<&RawValue>,
    world: &dyn Lookup,
    patcher: &mut Patcher<'_>,
    notes: &mut Notes,
) {
    let mut live_doc = live.map(Doc::new);
    let mut live = live_doc.as_mut();
    let Some((key, rollout)) = owned(
        Kind::DestinationRule,
        namespace,
        live.as_deref_mut(),
        world,
        patcher,
        notes,
    ) else {
        return;
    };
    let Some(dr_ref) = rollout.istio().and_then(|i| i.destination_rule.clone()) else {
        return;
    };

    // The hash each controller-owned subset should carry.
    let mut wanted: Vec<(String, String)> = Vec::new();
    match live.as_deref_mut() {
        Some(live) => {
            let roles = Roles::of(&rollout);
            let owned = |n: &str| {
                n == dr_ref.canary_subset_name
                    || n == dr_ref.stable_subset_name
                    || roles.experiment_services.iter().any(|e| e == n)
            };
            for i in 0..subset_count(live) {
                if let (Some(n), Some(h)) = subset(live, i) {
                    if owned(&n) {
                        wanted.push((n, h));
                    }
                }
            }
            restore_experiment_subsets(&key, &rollout, &roles, live, patcher, notes);
        }
        None => match status_hashes(&rollout) {
            Ok((canary, stable)) => {
                wanted.extend(canary.map(|h| (dr_ref.canary_subset_name.clone(), h)));
                wanted.extend(stable.map(|h| (dr_ref.stable_subset_name.clone(), h)));
            }
            Err(why) => {
                notes.warn(format!(
                    "rollout-guard: nothing restored on re-created {key}: Rollout {}/{} {why}",
                    rollout.meta.namespace, rollout.meta.name
                ));
                return;
            }
        },
    }
    for (name, hash) in wanted {
        let request = patcher.doc();
        let Some((i, had)) = (0..subset_count(request)).find_map(|i| match subset(request, i) {
            (Some(n), had) if n == name => Some((i, had)),
            _ => None,
        }) else {
            continue;
        };
        if had.as_deref() == Some(hash.as_str()) {
            continue;
        }
        let had = had.unwrap_or_else(|| "none".to_string());
        if patcher.set(
            &at!["spec", "subsets", i, "labels", POD_TEMPLATE_HASH],
            Value::from(hash.clone()),
        ) {
            notes.restored(format!(
                "rollout-guard: kept {POD_TEMPLATE_HASH}={hash} on {key} subset {name:?} {}; request had {had}",
                owner(&rollout)
            ));
        }
    }
    restore_annotation(&key, &rollout, live, patcher, notes);
}

/// Subsets named after a running experiment's Services, appended by the controller.
fn restore_experiment_subsets(
    key: &ObjectKey,
    rollout: &Rollout,
    roles: &Roles,
    live: &mut Doc<'_>,
    patcher: &mut Patcher<'_>,
    notes: &mut Notes,
) {
    for i in 0..subset_count(live) {
        let (Some(n), _) = subset(live, i) else {
            continue;
        };
        if !roles.experiment_services.contains(&n) {
            continue;
        }
        if has_subset(patcher.doc(), &n) {
            continue;
        }
        if !patcher.doc().exists(&at!["spec", "subsets"])
            && !patcher.set(&at!["spec", "subsets"], Value::Array(Vec::new()))
        {
            continue;
        }
        let Some(value) = live
            .get(&at!["spec", "subsets", i])
            .and_then(|s| s.to_value())
        else {
            continue;
        };
        let len = subset_count(patcher.doc());
        if patcher.insert(&at!["spec", "subsets"], len, value) {
            notes.restored(format!(
                "rollout-guard: kept experiment subset {n:?} on {key} {}; request dropped it",
                owner(rollout)
            ));
        }
    }
}

pub(super) fn restore_service(
    namespace: &str,
    live: Option<&RawValue>,
    world: &dyn Lookup,
    patcher: &mut Patcher<'_>,
    notes: &mut Notes,
) {
    let mut live_doc = live.map(Doc::new);
    let mut live = live_doc.as_mut();
    let Some((key, rollout)) = owned(
        Kind::Service,
        namespace,
        live.as_deref_mut(),
        world,
        patcher,
        notes,
    ) else {
        return;
    };
    let name = key.name.to_string();
    let roles = Roles::of(&rollout);
    // Only Services the controller switches: host level (canary/stable) and ping-pong.
    let is_canary = roles.canary_service == name;
    let is_stable = roles.stable_service == name;
    if !is_canary && !is_stable {
        return;
    }
    let selector_hash = at!["spec", "selector", POD_TEMPLATE_HASH];
    let want = match live.as_deref_mut() {
        Some(live) => live.str_at(&selector_hash).map(str::to_string),
        None => match status_hashes(&rollout) {
            Ok((canary, stable)) => {
                if is_canary {
                    canary
                } else {
                    stable
                }
            }
            Err(why) => {
                notes.warn(format!(
                    "rollout-guard: nothing restored on re-created {key}: Rollout {}/{} {why}",
                    rollout.meta.namespace, rollout.meta.name
                ));
                return;
            }
        },
    };
    if let Some(hash) = want {
        let had = patcher.doc().str_at(&selector_hash).map(str::to_string);
        if had.as_deref() != Some(hash.as_str()) {
            let had = had.unwrap_or_else(|| "none".to_string());
            if patcher.set(&selector_hash, Value::from(hash.clone())) {
                notes.restored(format!(
                    "rollout-guard: kept selector {POD_TEMPLATE_HASH}={hash} on {key} {}; request had {had}",
                    owner(&rollout)
                ));
            }
        }
    }
    restore_annotation(&key, &rollout, live, patcher, notes);
}
