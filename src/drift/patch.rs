//! Builds a JSONPatch while applying it to a copy of the request object, so that every operation
//! refers to the document as the operations before it left it (RFC 6902 applies them in order).

use serde_json::{Map, Value};

pub struct Patcher {
    doc: Value,
    ops: Vec<Value>,
}

/// One step of a JSON pointer: an object key or an array index.
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

/// A pointer path from keys and indexes: `at!["spec", "http", 0, "route"]`.
macro_rules! at {
    ($($step:expr),* $(,)?) => { [$($crate::drift::patch::Step::from($step)),*] };
}

pub(crate) use at;

fn pointer(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        out.push('/');
        match step {
            Step::Key(k) => out.push_str(&k.replace('~', "~0").replace('/', "~1")),
            Step::Index(i) => out.push_str(&i.to_string()),
        }
    }
    out
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

    pub fn into_ops(self) -> Vec<Value> {
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
        let op = if exists { "replace" } else { "add" };
        self.ops
            .push(serde_json::json!({"op": op, "path": pointer(path), "value": value}));
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
        let op = if exists { "replace" } else { "add" };
        self.ops
            .push(serde_json::json!({"op": op, "path": pointer(path), "value": value}));
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
        self.ops
            .push(serde_json::json!({"op": "add", "path": pointer(&full), "value": value}));
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
        assert_eq!(ops[1]["path"], "/metadata/annotations/a~1b");
        assert_eq!(apply(&doc, &ops), expected);
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
