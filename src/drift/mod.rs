//! The drift guard (DESIGN.md "Mutation: what is restored"): during a canary the Argo Rollouts
//! controller owns the weights of the routes it manages, the header/mirror routes it inserts,
//! the `rollouts-pod-template-hash` labels/selectors and the managed-by annotation. A GitOps
//! re-apply carries stale values for those; this module computes the JSONPatch that puts the
//! live values back into the request, and a warning per restore.
//!
//! Pure: (request object, live object, index) in, patch and warnings out. Both objects are read
//! from their JSON text only where a controller-owned field is (see [`patch::Doc`]).

mod hashes;
mod patch;
mod virtualservice;

pub use patch::Patcher;

use crate::index::Lookup;
use crate::model::{Kind, Object, ObjectKey, Rollout};
use serde_json::value::RawValue;
use serde_json::Value;

/// What the drift guard decided for one request.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Mutation {
    /// RFC 6902 operations, in order, against the request object.
    pub patch: Vec<json_patch::PatchOperation>,
    pub warnings: Vec<String>,
    /// How many fields or routes were restored.
    pub restores: usize,
    /// One line per restore, as its warning says it (uncut): what an Event about it tells.
    pub kept: Vec<String>,
    /// The live object and the Rollout status disagree (the live object won).
    pub status_disagreements: usize,
}

/// The object a request writes: its JSON text, and its view as the caller already read it.
#[derive(Clone, Copy)]
pub struct Written<'a> {
    pub raw: &'a RawValue,
    pub view: &'a Object,
}

/// Restores controller-owned fields in the request's object (the patch is planned on its text).
/// `live` is `oldObject` on UPDATE and `None` on CREATE; `namespace` is the request's, for
/// objects that do not name their own.
pub fn restore(
    namespace: &str,
    request: Written<'_>,
    live: Option<&RawValue>,
    world: &dyn Lookup,
) -> Mutation {
    let mut patcher = Patcher::new(request.raw);
    let mut notes = Notes::default();
    match request.view {
        Object::VirtualService(vs) => {
            virtualservice::restore(namespace, vs, live, world, &mut patcher, &mut notes)
        }
        Object::DestinationRule(_) => {
            hashes::restore_destination_rule(namespace, live, world, &mut patcher, &mut notes)
        }
        Object::Service(_) => {
            hashes::restore_service(namespace, live, world, &mut patcher, &mut notes)
        }
        Object::Rollout(_) => {}
    }
    Mutation {
        patch: patcher.into_ops(),
        warnings: notes.warnings,
        restores: notes.kept.len(),
        kept: notes.kept,
        status_disagreements: notes.status_disagreements,
    }
}

/// [`restore`] on objects held as trees (`explain`, tests): each is written out as text and
/// read as the webhook reads a request. An object that is not a valid one of `kind` gets no
/// patch, as a request with it gets none.
pub fn restore_values(
    kind: Kind,
    namespace: &str,
    object: &Value,
    live: Option<&Value>,
    world: &dyn Lookup,
) -> Mutation {
    let text = |v: &Value| RawValue::from_string(v.to_string());
    let (Ok(raw), Ok(live)) = (text(object), live.map(text).transpose()) else {
        return Mutation::default();
    };
    let Ok(view) = Object::parse_kind_raw(kind, &raw, namespace) else {
        return Mutation::default();
    };
    restore(
        namespace,
        Written {
            raw: &raw,
            view: &view,
        },
        live.as_deref(),
        world,
    )
}

#[derive(Debug, Default)]
pub(crate) struct Notes {
    pub warnings: Vec<String>,
    pub kept: Vec<String>,
    pub status_disagreements: usize,
}

impl Notes {
    pub fn restored(&mut self, warning: String) {
        self.kept.push(warning.clone());
        self.warnings.push(warning);
    }
    pub fn warn(&mut self, warning: String) {
        self.warnings.push(warning);
    }
}

/// `(Rollout shop/checkout, step 2/4)`: which Rollout owns the value, and where it is.
pub(crate) fn owner(rollout: &Rollout) -> String {
    let name = format!("Rollout {}/{}", rollout.meta.namespace, rollout.meta.name);
    let steps = rollout.steps().len();
    if steps == 0 {
        return format!("({name})");
    }
    let index = rollout
        .status
        .as_ref()
        .ok()
        .and_then(|s| s.current_step_index)
        .unwrap_or(0);
    if index >= steps as i64 {
        format!("({name}, step completed)")
    } else {
        format!("({name}, step {}/{steps})", index.max(0) + 1)
    }
}

/// The Rollouts that reference `key` and are not skipped; skipped ones get a warning.
pub(crate) fn rollouts_for(
    key: &ObjectKey,
    world: &dyn Lookup,
    notes: &mut Notes,
) -> Vec<std::sync::Arc<Rollout>> {
    let mut out = Vec::new();
    for rk in world.rollouts_referencing(key) {
        let Some(crate::model::Object::Rollout(rollout)) = world.object(&rk) else {
            continue;
        };
        if rollout.meta.skip {
            notes.warn(format!(
                "rollout-guard: nothing restored for {key} from Rollout {}/{}: it has annotation rollout-guard.io/skip=true",
                rk.namespace, rk.name
            ));
            continue;
        }
        out.push(rollout);
    }
    out
}

#[cfg(test)]
pub(crate) mod testing {
    use json_patch::PatchOperation;
    use serde_json::Value;

    /// Applies a mutation's patch to the request object, as the API server does: from its JSON
    /// text, so that what is applied is what goes on the wire.
    pub fn apply(object: &Value, ops: &[PatchOperation]) -> Value {
        let text = serde_json::to_string(ops).expect("serialisable patch");
        let patch: json_patch::Patch = serde_json::from_str(&text).expect("valid patch");
        assert_eq!(patch.0, ops, "the patch survives its JSON round trip");
        let mut doc = object.clone();
        json_patch::patch(&mut doc, &patch).expect("patch applies");
        doc
    }
}

#[cfg(test)]
mod tests;
