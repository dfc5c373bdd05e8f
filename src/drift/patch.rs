//! Builds a JSONPatch while applying it to a copy of the request object, so that every operation
//! refers to the document as the operations before it left it (RFC 6902 applies them in order).
//!
//! The operations are `json_patch` types and their paths `jsonptr` pointers: keys are escaped by
//! the library (RFC 6901: `~` as `~0`, `/` as `~1`), never by string replacement here.

use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{AddOperation, PatchOperation, ReplaceOperation};
use serde_json::{Map, Value};

pub struct Patcher {
    doc: Value,
    ops: Vec<PatchOperation>,
}

/// One step of a path into the document: an object key or an array index. (A JSON Pointer alone
/// does not say which: `0` may be either.)
#[derive(Debug, Clone)]
pub enum Step {
    Key(String),
    Index(usize),
}

impl From<&str> for Step {
    fn from(s: &str) -> Self {
        Step::Key(s.to_string())
    }
}

impl From<usize> for Step {
    fn from(i: usize) -> Self {
        Step::Index(i)
    }
}

impl Step {
    fn token(&self) -> Token<'_> {
        match self {
            Step::Key(k) => Token::new(k.as_str()),
            Step::Index(i) => Token::from(*i),
        }
    }
}

/// A pointer path from keys and indexes: `at!["spec", "http", 0, "route"]`.
macro_rules! at {
    ($($step:expr),* $(,)?) => { [$($crate::drift::patch::Step::from($step)),*] };
}

pub(crate) use at;

/// The RFC 6901 pointer to `path`, each key escaped by `jsonptr`.
fn pointer(path: &[Step]) -> PointerBuf {
    PointerBuf::from_tokens(path.iter().map(Step::token))
}

fn get<'a>(doc: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |v, step| match step {
        Step::Key(k) => v.get(k.as_str()),
        Step::Index(i) => v.get(*i),
    })
}

fn get_mut<'a>(doc: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    path.iter().try_fold(doc, |v, step| match step {
        Step::Key(k) => v.get_mut(k.as_str()),
        Step::Index(i) => v.get_mut(*i),
    })
}

/// `replace` when the target exists, `add` otherwise.
fn set_op(exists: bool, path: &[Step], value: Value) -> PatchOperation {
    let path = pointer(path);
    if exists {
        PatchOperation::Replace(ReplaceOperation { path, value })
    } else {
        PatchOperation::Add(AddOperation { path, value })
    }
}

impl Patcher {
    pub fn new(doc: Value) -> Self {
        Patcher {
            doc,
            ops: Vec::new(),
        }
    }

    pub fn doc(&self) -> &Value {
        &self.doc
    }

    pub fn into_ops(self) -> Vec<PatchOperation> {
        self.ops
    }

    pub fn get(&self, path: &[Step]) -> Option<&Value> {
        get(&self.doc, path)
    }

    /// Sets `path` to `value`: `replace` when it exists, `add` otherwise, creating missing
    /// parent objects (never arrays) on the way. No operation when the value is already there.
    /// Returns false when the path cannot be reached (a parent is not an object).
    pub fn set(&mut self, path: &[Step], value: Value) -> bool {
        if let Some(current) = get(&self.doc, path) {
            if *current == value {
                return true;
            }
        }
        let Some((last, parents)) = path.split_last() else {
            return false;
        };
        // Walk down, creating missing objects where a key leads to nothing (never arrays).
        for depth in 0..parents.len() {
            let prefix = &parents[..=depth];
            let next = path.get(depth + 1);
            match (get(&self.doc, prefix), next) {
                (Some(Value::Object(_)), Some(Step::Key(_))) => continue,
                (Some(Value::Array(items)), Some(Step::Index(i))) if *i < items.len() => continue,
                (Some(Value::Null) | None, Some(Step::Key(_)))
                    if matches!(prefix.last(), Some(Step::Key(_))) =>
                {
                    if !self.put(prefix, Value::Object(Map::new())) {
                        return false;
                    }
                }
                _ => return false,
            }
        }
        let exists = get(&self.doc, path).is_some();
        match (last, get_mut(&mut self.doc, parents)) {
            (Step::Key(k), Some(Value::Object(map))) => {
                map.insert(k.clone(), value.clone());
            }
            (Step::Index(i), Some(Value::Array(items))) if *i < items.len() => {
                items[*i] = value.clone()
            }
            _ => return false,
        }
        self.ops.push(set_op(exists, path, value));
        true
    }

    /// `add` of a new key under an existing (or null/missing) parent object.
    fn put(&mut self, path: &[Step], value: Value) -> bool {
        let Some((Step::Key(k), parents)) = path.split_last() else {
            return false;
        };
        let exists = get(&self.doc, path).is_some();
        match get_mut(&mut self.doc, parents) {
            Some(Value::Object(map)) => {
                map.insert(k.clone(), value.clone());
            }
            _ => return false,
        }
        self.ops.push(set_op(exists, path, value));
        true
    }

    /// Inserts `value` at `index` of the array at `path` (appends when `index` is past the end).
    pub fn insert(&mut self, path: &[Step], index: usize, value: Value) -> bool {
        let Some(Value::Array(items)) = get_mut(&mut self.doc, path) else {
            return false;
        };
        let index = index.min(items.len());
        items.insert(index, value.clone());
        let mut full = path.to_vec();
        full.push(Step::Index(index));
        self.ops.push(PatchOperation::Add(AddOperation {
            path: pointer(&full),
            value,
        }));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::testing::apply;
    use serde_json::json;

    #[test]
    fn set_replaces_adds_and_creates_parents() {
        let doc = json!({"metadata": {"name": "x"}, "spec": {"subsets": [{"name": "canary"}]}});
        let mut p = Patcher::new(doc.clone());
        assert!(p.set(&at!["metadata", "annotations", "a/b"], json!("v")));
        assert!(p.set(&at!["spec", "subsets", 0, "labels", "h"], json!("1")));
        assert!(p.set(&at!["metadata", "name"], json!("x")));
        let expected = p.doc().clone();
        let ops = p.into_ops();
        assert_eq!(ops.len(), 4, "{ops:?}");
        assert_eq!(ops[1].path().as_str(), "/metadata/annotations/a~1b");
        assert_eq!(apply(&doc, &ops), expected);
    }

    /// Keys with `/` and `~` (annotation and label keys are full of them) are escaped as RFC 6901
    /// says, the operations serialise as RFC 6902 objects, and they reach exactly the named key.
    #[test]
    fn keys_that_need_escaping() {
        let managed = "argo-rollouts.argoproj.io/managed-by-rollouts";
        let doc = json!({"metadata": {"annotations": {managed: "old", "argo-rollouts.argoproj.io": {}}},
            "spec": {"subsets": [{"name": "canary", "labels": {"app": "x"}}]}});
        let mut p = Patcher::new(doc.clone());
        assert!(p.set(&at!["metadata", "annotations", managed], json!("checkout")));
        assert!(p.set(
            &at!["spec", "subsets", 0, "labels", "rollouts-pod-template-hash"],
            json!("c2")
        ));
        assert!(p.set(
            &at!["metadata", "labels", "app.kubernetes.io/name"],
            json!("n")
        ));
        assert!(p.set(&at!["metadata", "labels", "odd~key/~1"], json!("t")));
        let expected = p.doc().clone();
        let ops = p.into_ops();
        let paths: Vec<&str> = ops.iter().map(|op| op.path().as_str()).collect();
        assert_eq!(
            paths,
            [
                "/metadata/annotations/argo-rollouts.argoproj.io~1managed-by-rollouts",
                "/spec/subsets/0/labels/rollouts-pod-template-hash",
                "/metadata/labels",
                "/metadata/labels/app.kubernetes.io~1name",
                "/metadata/labels/odd~0key~1~01",
            ]
        );
        assert_eq!(
            serde_json::to_value(&ops[0]).unwrap(),
            json!({"op": "replace",
                "path": "/metadata/annotations/argo-rollouts.argoproj.io~1managed-by-rollouts",
                "value": "checkout"})
        );
        assert_eq!(
            serde_json::to_value(&ops[1]).unwrap(),
            json!({"op": "add", "path": "/spec/subsets/0/labels/rollouts-pod-template-hash", "value": "c2"})
        );
        let patched = apply(&doc, &ops);
        assert_eq!(patched, expected);
        assert_eq!(patched["metadata"]["annotations"][managed], "checkout");
        // The look-alike nested key is untouched: the `/` was a key character, not a step.
        assert_eq!(
            patched["metadata"]["annotations"]["argo-rollouts.argoproj.io"],
            json!({})
        );
        assert_eq!(patched["metadata"]["labels"]["odd~key/~1"], "t");
    }

    #[test]
    fn insert_keeps_order_of_operations() {
        let doc = json!({"spec": {"http": [{"name": "primary"}]}});
        let mut p = Patcher::new(doc.clone());
        p.insert(&at!["spec", "http"], 0, json!({"name": "h1"}));
        p.insert(&at!["spec", "http"], 1, json!({"name": "h2"}));
        p.insert(&at!["spec", "http"], 9, json!({"name": "last"}));
        let expected = p.doc().clone();
        assert_eq!(
            expected["spec"]["http"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap())
                .collect::<Vec<_>>(),
            ["h1", "h2", "primary", "last"]
        );
        assert_eq!(apply(&doc, &p.into_ops()), expected);
    }

    #[test]
    fn unreachable_paths_are_refused() {
        let mut p = Patcher::new(json!({"spec": {"subsets": "oops"}}));
        assert!(!p.set(&at!["spec", "subsets", 0, "labels"], json!({})));
        assert!(p.into_ops().is_empty());
    }
}
