//! DestinationRule subsets and Services: the `rollouts-pod-template-hash` label/selector, the
//! managed-by annotation, and (DestinationRule) the experiment subsets the controller appended.

use super::patch::{at, Patcher};
use super::{owner, rollouts_for, Notes};
use crate::index::Lookup;
use crate::model::roles::Roles;
use crate::model::{Kind, ObjectKey, Rollout, ANNOTATION_MANAGED_BY, POD_TEMPLATE_HASH};
use serde_json::Value;
use std::sync::Arc;

fn meta_name(raw: &Value) -> Option<&str> {
    raw.pointer("/metadata/name").and_then(Value::as_str)
}

fn skip(raw: &Value) -> bool {
    raw.pointer(&format!(
        "/metadata/annotations/{}",
        crate::model::ANNOTATION_SKIP.replace('/', "~1")
    ))
    .and_then(Value::as_str)
    .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn annotation(raw: &Value) -> Option<&str> {
    raw.get("metadata")?
        .get("annotations")?
        .get(ANNOTATION_MANAGED_BY)?
        .as_str()
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
    request: &Value,
    live: Option<&Value>,
    world: &dyn Lookup,
    notes: &mut Notes,
) -> Option<Arc<Rollout>> {
    let rollouts = rollouts_for(key, world, notes);
    if rollouts.is_empty() {
        if let Some(name) = live.and_then(annotation).or_else(|| annotation(request)) {
            if world.rollout(&key.namespace, name).is_none() {
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
    live: Option<&Value>,
    world: &dyn Lookup,
    patcher: &Patcher,
    notes: &mut Notes,
) -> Option<(ObjectKey, Arc<Rollout>)> {
    let request = patcher.doc();
    let name = meta_name(request)?;
    if skip(request) {
        return None;
    }
    let ns = request
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or(namespace);
    let key = ObjectKey::new(kind, ns, name);
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
    live: Option<&Value>,
    patcher: &mut Patcher,
    notes: &mut Notes,
) {
    let want = match live {
        Some(l) => annotation(l).map(str::to_string),
        None => Some(rollout.meta.name.to_string()),
    };
    let Some(want) = want else { return };
    if annotation(patcher.doc()) == Some(want.as_str()) {
        return;
    }
    let had = annotation(patcher.doc()).unwrap_or("none").to_string();
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
    live: Option<&Value>,
    world: &dyn Lookup,
    patcher: &mut Patcher,
    notes: &mut Notes,
) {
    let Some((key, rollout)) = owned(
        Kind::DestinationRule,
        namespace,
        live,
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
    match live {
        Some(live) => {
            let roles = Roles::of(&rollout);
            let owned = |n: &str| {
                n == dr_ref.canary_subset_name
                    || n == dr_ref.stable_subset_name
                    || roles.experiment_services.iter().any(|e| e == n)
            };
            for subset in live
                .pointer("/spec/subsets")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(n) = subset.get("name").and_then(Value::as_str) else {
                    continue;
                };
                let hash = subset
                    .get("labels")
                    .and_then(|l| l.get(POD_TEMPLATE_HASH))
                    .and_then(Value::as_str);
                if let (true, Some(h)) = (owned(n), hash) {
                    wanted.push((n.to_string(), h.to_string()));
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
    for (subset, hash) in wanted {
        let subsets = patcher
            .doc()
            .pointer("/spec/subsets")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let Some(i) = subsets
            .iter()
            .position(|s| s.get("name").and_then(Value::as_str) == Some(subset.as_str()))
        else {
            continue;
        };
        let had = subsets[i]
            .get("labels")
            .and_then(|l| l.get(POD_TEMPLATE_HASH))
            .and_then(Value::as_str);
        if had == Some(hash.as_str()) {
            continue;
        }
        let had = had.unwrap_or("none").to_string();
        if patcher.set(
            &at!["spec", "subsets", i, "labels", POD_TEMPLATE_HASH],
            Value::from(hash.clone()),
        ) {
            notes.restored(format!(
                "rollout-guard: kept {POD_TEMPLATE_HASH}={hash} on {key} subset {subset:?} {}; request had {had}",
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
    live: &Value,
    patcher: &mut Patcher,
    notes: &mut Notes,
) {
    for subset in live
        .pointer("/spec/subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(n) = subset.get("name").and_then(Value::as_str) else {
            continue;
        };
        if !roles.experiment_services.iter().any(|e| e == n) {
            continue;
        }
        let present = patcher
            .doc()
            .pointer("/spec/subsets")
            .and_then(Value::as_array)
            .is_some_and(|s| {
                s.iter()
                    .any(|x| x.get("name").and_then(Value::as_str) == Some(n))
            });
        if present {
            continue;
        }
        if patcher.doc().pointer("/spec/subsets").is_none()
            && !patcher.set(&at!["spec", "subsets"], Value::Array(Vec::new()))
        {
            continue;
        }
        let len = patcher
            .doc()
            .pointer("/spec/subsets")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if patcher.insert(&at!["spec", "subsets"], len, subset.clone()) {
            notes.restored(format!(
                "rollout-guard: kept experiment subset {n:?} on {key} {}; request dropped it",
                owner(rollout)
            ));
        }
    }
}

pub(super) fn restore_service(
    namespace: &str,
    live: Option<&Value>,
    world: &dyn Lookup,
    patcher: &mut Patcher,
    notes: &mut Notes,
) {
    let Some((key, rollout)) = owned(Kind::Service, namespace, live, world, patcher, notes) else {
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
    let want = match live {
        Some(live) => live
            .pointer(&format!("/spec/selector/{POD_TEMPLATE_HASH}"))
            .and_then(Value::as_str)
            .map(str::to_string),
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
        let had = patcher
            .doc()
            .pointer(&format!("/spec/selector/{POD_TEMPLATE_HASH}"))
            .and_then(Value::as_str)
            .map(str::to_string);
        if had.as_deref() != Some(hash.as_str()) {
            let had = had.unwrap_or_else(|| "none".to_string());
            if patcher.set(
                &at!["spec", "selector", POD_TEMPLATE_HASH],
                Value::from(hash.clone()),
            ) {
                notes.restored(format!(
                    "rollout-guard: kept selector {POD_TEMPLATE_HASH}={hash} on {key} {}; request had {had}",
                    owner(&rollout)
                ));
            }
        }
    }
    restore_annotation(&key, &rollout, live, patcher, notes);
}
