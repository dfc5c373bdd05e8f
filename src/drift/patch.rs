//! Builds a JSONPatch while applying it to the request object, so that every operation refers
//! to the document as the operations before it left it (RFC 6902 applies them in order).
//!
//! The document is never read whole: [`Doc`] splits the request's JSON text one level at a time,
//! only along the paths the drift guard reads or writes (`metadata.annotations`, one route's
//! weights, the subsets); every other member (`managedFields`, the pod template, the other
//! routes) stays the text it came as.
//!
//! The operations are `json_patch` types and their paths `jsonptr` pointers: keys are escaped by
//! the library (RFC 6901: `~` as `~0`, `/` as `~1`), never by string replacement here.

use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{AddOperation, PatchOperation, ReplaceOperation};
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::fmt;

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

/// A part of a document: still its text, or split one level, or a scalar.
#[derive(Debug)]
pub enum Node<'a> {
    /// Not looked into yet.
    Text(&'a RawValue),
    /// Members in document order. A repeated key is looked up as its last occurrence, as a JSON
    /// reader that keeps the last value (serde_json's, Go's) sees it.
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
    Array(Vec<Node<'a>>),
    /// A string, number, boolean or null.
    Scalar(Value),
}

impl<'a> Node<'a> {
    fn from_value(value: Value) -> Node<'a> {
        match value {
            Value::Object(map) => Node::Object(
                map.into_iter()
                    .map(|(k, v)| (Cow::Owned(k), Node::from_value(v)))
                    .collect(),
            ),
            Value::Array(items) => Node::Array(items.into_iter().map(Node::from_value).collect()),
            scalar => Node::Scalar(scalar),
        }
    }

    /// Splits a [`Node::Text`] one level. The text is valid JSON (it was read as a `RawValue`),
    /// so an error here is a nesting limit: the part is then treated as unreachable.
    fn open(&mut self) -> Option<()> {
        let Node::Text(raw) = self else {
            return Some(());
        };
        let text = raw.get();
        *self = match text.trim_start().as_bytes().first() {
            Some(b'{') => Node::Object(serde_json::from_str::<Members<'a>>(text).ok()?.0),
            Some(b'[') => Node::Array(serde_json::from_str::<Items<'a>>(text).ok()?.0),
            _ => Node::Scalar(serde_json::from_str(text).ok()?),
        };
        Some(())
    }

    /// The child at `step`, opening this node first.
    fn child(&mut self, step: &Step) -> Option<&mut Node<'a>> {
        self.open()?;
        match (self, step) {
            (Node::Object(members), Step::Key(k)) => members
                .iter_mut()
                .rev()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v),
            (Node::Array(items), Step::Index(i)) => items.get_mut(*i),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// The whole part as a JSON value (what an `add` of it to another document carries);
    /// `None` only past serde_json's nesting limit.
    pub fn to_value(&self) -> Option<Value> {
        Some(match self {
            Node::Text(raw) => serde_json::from_str(raw.get()).ok()?,
            Node::Object(members) => {
                let mut map = Map::new();
                for (k, v) in members {
                    map.insert(k.to_string(), v.to_value()?);
                }
                Value::Object(map)
            }
            Node::Array(items) => Value::Array(
                items
                    .iter()
                    .map(Node::to_value)
                    .collect::<Option<Vec<_>>>()?,
            ),
            Node::Scalar(v) => v.clone(),
        })
    }

    /// Whether this part equals `value`, without reading more of it than the answer needs.
    fn equals(&mut self, value: &Value) -> bool {
        if self.open().is_none() {
            return false;
        }
        match (self, value) {
            (Node::Scalar(a), b) => a == b,
            (Node::Array(items), Value::Array(want)) => {
                items.len() == want.len() && items.iter_mut().zip(want).all(|(n, v)| n.equals(v))
            }
            (node @ Node::Object(_), Value::Object(_)) => node.to_value().as_ref() == Some(value),
            _ => false,
        }
    }
}

/// A JSON document read lazily (see the module's comment).
#[derive(Debug)]
pub struct Doc<'a> {
    root: Node<'a>,
}

impl<'a> Doc<'a> {
    pub fn new(raw: &'a RawValue) -> Self {
        Doc {
            root: Node::Text(raw),
        }
    }

    /// The part at `path`, split as far as the path goes; `None` when it is not there.
    pub fn get(&mut self, path: &[Step]) -> Option<&Node<'a>> {
        self.get_mut(path).map(|n| &*n)
    }

    fn get_mut(&mut self, path: &[Step]) -> Option<&mut Node<'a>> {
        let mut node = &mut self.root;
        for step in path {
            node = node.child(step)?;
        }
        node.open()?;
        Some(node)
    }

    pub fn str_at(&mut self, path: &[Step]) -> Option<&str> {
        self.get(path).and_then(Node::as_str)
    }

    /// The length of the array at `path`; `None` when there is no array there.
    pub fn len_at(&mut self, path: &[Step]) -> Option<usize> {
        match self.get(path)? {
            Node::Array(items) => Some(items.len()),
            _ => None,
        }
    }

    pub fn exists(&mut self, path: &[Step]) -> bool {
        self.get(path).is_some()
    }

    /// The whole document as a JSON value (tests compare it with the patched request).
    #[cfg(test)]
    pub fn to_value(&self) -> Value {
        self.root
            .to_value()
            .expect("a test document within the nesting limit")
    }
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

/// The request object and the operations planned on it so far.
pub struct Patcher<'a> {
    doc: Doc<'a>,
    ops: Vec<PatchOperation>,
}

impl<'a> Patcher<'a> {
    pub fn new(request: &'a RawValue) -> Self {
        Patcher {
            doc: Doc::new(request),
            ops: Vec::new(),
        }
    }

    /// The request object as the operations so far leave it.
    pub fn doc(&mut self) -> &mut Doc<'a> {
        &mut self.doc
    }

    pub fn into_ops(self) -> Vec<PatchOperation> {
        self.ops
    }

    /// Sets `path` to `value`: `replace` when it exists, `add` otherwise, creating missing
    /// parent objects (never arrays) on the way. No operation when the value is already there.
    /// Returns false when the path cannot be reached (a parent is not an object).
    pub fn set(&mut self, path: &[Step], value: Value) -> bool {
        if let Some(current) = self.doc.get_mut(path) {
            if current.equals(&value) {
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
            match (self.doc.get(prefix), next) {
                (Some(Node::Object(_)), Some(Step::Key(_))) => continue,
                (Some(Node::Array(items)), Some(Step::Index(i))) if *i < items.len() => continue,
                (Some(Node::Scalar(Value::Null)) | None, Some(Step::Key(_)))
                    if matches!(prefix.last(), Some(Step::Key(_))) =>
                {
                    if !self.put(prefix, Value::Object(Map::new())) {
                        return false;
                    }
                }
                _ => return false,
            }
        }
        let exists = self.doc.exists(path);
        if !place(self.doc.get_mut(parents), last, &value) {
            return false;
        }
        self.ops.push(set_op(exists, path, value));
        true
    }

    /// `add` of a new key under an existing (or null/missing) parent object.
    fn put(&mut self, path: &[Step], value: Value) -> bool {
        let Some((last @ Step::Key(_), parents)) = path.split_last() else {
            return false;
        };
        let exists = self.doc.exists(path);
        if !matches!(self.doc.get(parents), Some(Node::Object(_))) {
            return false;
        }
        if !place(self.doc.get_mut(parents), last, &value) {
            return false;
        }
        self.ops.push(set_op(exists, path, value));
        true
    }

    /// Inserts `value` at `index` of the array at `path` (appends when `index` is past the end).
    pub fn insert(&mut self, path: &[Step], index: usize, value: Value) -> bool {
        let Some(Node::Array(items)) = self.doc.get_mut(path) else {
            return false;
        };
        let index = index.min(items.len());
        items.insert(index, Node::from_value(value.clone()));
        let mut full = path.to_vec();
        full.push(Step::Index(index));
        self.ops.push(PatchOperation::Add(AddOperation {
            path: pointer(&full),
            value,
        }));
        true
    }
}

/// Writes `value` as the member `last` of `parent` (an object key, or an index within an array).
fn place(parent: Option<&mut Node<'_>>, last: &Step, value: &Value) -> bool {
    match (parent, last) {
        (Some(Node::Object(members)), Step::Key(k)) => {
            let node = Node::from_value(value.clone());
            match members.iter_mut().rev().find(|(name, _)| name == k) {
                Some((_, slot)) => *slot = node,
                None => members.push((Cow::Owned(k.clone()), node)),
            }
            true
        }
        (Some(Node::Array(items)), Step::Index(i)) if *i < items.len() => {
            items[*i] = Node::from_value(value.clone());
            true
        }
        _ => false,
    }
}

/// An object's members, keys borrowed where they have no escapes, values as text.
struct Members<'a>(Vec<(Cow<'a, str>, Node<'a>)>);

impl<'de> serde::Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((Key(k), v)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    out.push((k, Node::Text(v)));
                }
                Ok(Members(out))
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// An object key: borrowed from the text, or decoded when it has an escape in it.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyText;
        impl<'de> Visitor<'de> for KeyText {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(KeyText)
    }
}

/// An array's items as text.
struct Items<'a>(Vec<Node<'a>>);

impl<'de> serde::Deserialize<'de> for Items<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Elements;
        impl<'de> Visitor<'de> for Elements {
            type Value = Items<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON array")
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4));
                while let Some(item) = seq.next_element::<&'de RawValue>()? {
                    out.push(Node::Text(item));
                }
                Ok(Items(out))
            }
        }
        deserializer.deserialize_seq(Elements)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::testing::apply;
    use serde_json::json;

    fn text(doc: &Value) -> Box<RawValue> {
        RawValue::from_string(doc.to_string()).expect("valid JSON")
    }

    #[test]
    fn set_replaces_adds_and_creates_parents() {
        let doc = json!({"metadata": {"name": "x"}, "spec": {"subsets": [{"name": "canary"}]}});
        let raw = text(&doc);
        let mut p = Patcher::new(&raw);
        assert!(p.set(&at!["metadata", "annotations", "a/b"], json!("v")));
        assert!(p.set(&at!["spec", "subsets", 0, "labels", "h"], json!("1")));
        assert!(p.set(&at!["metadata", "name"], json!("x")));
        let expected = p.doc().to_value();
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
        let raw = text(&doc);
        let mut p = Patcher::new(&raw);
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
        let expected = p.doc().to_value();
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
        let raw = text(&doc);
        let mut p = Patcher::new(&raw);
        p.insert(&at!["spec", "http"], 0, json!({"name": "h1"}));
        p.insert(&at!["spec", "http"], 1, json!({"name": "h2"}));
        p.insert(&at!["spec", "http"], 9, json!({"name": "last"}));
        let expected = p.doc().to_value();
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
        let raw = text(&json!({"spec": {"subsets": "oops"}}));
        let mut p = Patcher::new(&raw);
        assert!(!p.set(&at!["spec", "subsets", 0, "labels"], json!({})));
        assert!(p.into_ops().is_empty());
    }

    fn member<'a, 'b>(node: &'b Node<'a>, key: &str) -> &'b Node<'a> {
        match node {
            Node::Object(members) => &members.iter().find(|(k, _)| k == key).expect("a member").1,
            other => panic!("expected an object, found {other:?}"),
        }
    }

    /// What is not on a path the drift guard asks for stays text: `managedFields` and `spec` are
    /// never split when only an annotation is read and written.
    #[test]
    fn only_the_parts_on_a_path_are_split() {
        let doc = json!({"metadata": {"name": "a", "managedFields": [{"manager": "argocd", "fieldsV1": {"f:spec": {}}}],
            "annotations": {"x": "y"}}, "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}});
        let raw = text(&doc);
        let mut p = Patcher::new(&raw);
        assert_eq!(
            p.doc().str_at(&at!["metadata", "annotations", "x"]),
            Some("y")
        );
        assert!(p.set(&at!["metadata", "annotations", "x"], json!("z")));
        let root = &p.doc().root;
        assert!(matches!(member(root, "spec"), Node::Text(_)));
        let metadata = member(root, "metadata");
        assert!(matches!(member(metadata, "managedFields"), Node::Text(_)));
        assert!(matches!(member(metadata, "annotations"), Node::Object(_)));
        let mut expected = doc.clone();
        expected["metadata"]["annotations"]["x"] = json!("z");
        assert_eq!(p.doc().to_value(), expected);
        assert_eq!(apply(&doc, &p.into_ops()), expected);
    }

    /// A repeated key is its last occurrence (as serde_json and Go read it); a key with an escape
    /// in its text is found by what it decodes to.
    #[test]
    fn repeated_and_escaped_keys() {
        let raw = RawValue::from_string(r#"{"w": 1, "w": 2, "a\/b": "x", "list": []}"#.into())
            .expect("valid JSON");
        let mut p = Patcher::new(&raw);
        assert_eq!(
            p.doc().get(&at!["w"]).and_then(|n| n.to_value()),
            Some(json!(2))
        );
        assert_eq!(p.doc().str_at(&at!["a/b"]), Some("x"));
        assert!(p.set(&at!["w"], json!(2)), "already so: no operation");
        assert!(p.set(&at!["list"], json!([])), "already so: no operation");
        assert!(p.set(&at!["w"], json!(3)));
        let ops = p.into_ops();
        assert_eq!(ops.len(), 1, "{ops:?}");
        assert_eq!(
            serde_json::to_value(&ops[0]).expect("serialisable"),
            json!({"op": "replace", "path": "/w", "value": 3})
        );
    }
}
