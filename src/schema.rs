//! Unknown fields: every key of a Rollout, VirtualService, DestinationRule or Service that its
//! schema does not know (rule `unknown-field`, lint only). `kubectl apply` (server-side field
//! validation) and `kubectl argo rollouts lint` (strict decoding) refuse such a key; the typed
//! views of `model` ignore it, so a typo such as `canaryservice` would otherwise pass unnoticed.
//!
//! The schemas are data files in `schemas/` (see its README.md): the upstream CRDs of Argo Rollouts
//! v1.9.1 and Istio 1.30.3, and hand-written Service and ObjectMeta schemas in the same shape. Each
//! is embedded with `include_str!`, read once on first use ([`LazyLock`], per kind) and compiled
//! into a small field tree that keeps only what the walk needs: `properties` (the known keys),
//! `additionalProperties` (a map: any key), `items`, `x-kubernetes-preserve-unknown-fields`
//! (unknown keys kept: nothing to report below) and `x-kubernetes-int-or-string` (a scalar).
//! Types, formats and enums are not checked here (the views report a wrong type where they read
//! a field); `status` is not checked; `metadata` is ObjectMeta for every kind.
//!
//! Bounded work: the walk goes no deeper than the schema (at most [`MAX_DEPTH`] levels), visits
//! at most [`MAX_VALUES`] values per object, lists at most [`MAX_LISTED`] unknown fields per object
//! (then counts the rest), and computes suggestions only for keys up to [`MAX_SUGGEST_LEN`]
//! characters.

use crate::model::Kind;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::LazyLock;

/// Schema levels compiled (deeper levels accept anything); the walk follows the schema, so this
/// bounds its recursion too. The deepest upstream schema (the Rollout's pod template) has 17.
pub const MAX_DEPTH: usize = 64;
/// Values visited per object before the walk stops (with a finding that says so).
pub const MAX_VALUES: usize = 1_000_000;
/// Unknown fields listed per object; the rest are counted in one last entry.
pub const MAX_LISTED: usize = 50;
/// Keys longer than this (in characters) get no suggestion and are shortened in messages.
pub const MAX_SUGGEST_LEN: usize = 64;

const ROLLOUT_CRD: &str = include_str!("../schemas/argo-rollouts-v1.9.1-rollouts.argoproj.io.yaml");
const VIRTUALSERVICE_CRD: &str =
    include_str!("../schemas/istio-1.30.3-virtualservices.networking.istio.io.yaml");
const DESTINATIONRULE_CRD: &str =
    include_str!("../schemas/istio-1.30.3-destinationrules.networking.istio.io.yaml");
const SERVICE_SCHEMA: &str = include_str!("../schemas/kubernetes-v1.34-service.yaml");
const OBJECTMETA_SCHEMA: &str = include_str!("../schemas/kubernetes-v1.34-objectmeta.yaml");

/// One unknown field of an object: the path of the field itself (`spec.strategy.canary.canaryservice`)
/// and a message naming it, where it is and the nearest known field there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownField {
    pub path: String,
    pub message: String,
}

/// The unknown fields of one document of a kind of ours, in document order. The version is read
/// from `apiVersion`; a version without a schema, or a schema that failed to load (a unit test
/// keeps that from shipping), gives none.
pub fn unknown_fields(kind: Kind, doc: &Value) -> Vec<UnknownField> {
    let version = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(|v| v.rsplit_once('/').map_or(v, |(_, version)| version))
        .unwrap_or("");
    let Some(root) = schema(kind).and_then(|s| s.root(version)) else {
        return Vec::new();
    };
    let mut walk = Walk::default();
    let mut path = String::new();
    walk.node(root, doc, &mut path, 0);
    walk.finish()
}

/// The compiled schema of a kind (all its versions), `None` if the embedded file did not load.
fn schema(kind: Kind) -> Option<&'static KindSchema> {
    static ROLLOUT: LazyLock<Result<KindSchema, String>> =
        LazyLock::new(|| KindSchema::from_crd(ROLLOUT_CRD));
    static VIRTUALSERVICE: LazyLock<Result<KindSchema, String>> =
        LazyLock::new(|| KindSchema::from_crd(VIRTUALSERVICE_CRD));
    static DESTINATIONRULE: LazyLock<Result<KindSchema, String>> =
        LazyLock::new(|| KindSchema::from_crd(DESTINATIONRULE_CRD));
    static SERVICE: LazyLock<Result<KindSchema, String>> =
        LazyLock::new(|| KindSchema::from_schema("v1", SERVICE_SCHEMA));
    let schema = match kind {
        Kind::Rollout => &*ROLLOUT,
        Kind::VirtualService => &*VIRTUALSERVICE,
        Kind::DestinationRule => &*DESTINATIONRULE,
        Kind::Service => &*SERVICE,
    };
    schema.as_ref().ok()
}

fn object_meta() -> Result<&'static Node, String> {
    static META: LazyLock<Result<Node, String>> = LazyLock::new(|| {
        let file: SchemaFile = serde_yaml_ng::from_str(OBJECTMETA_SCHEMA)
            .map_err(|e| format!("ObjectMeta schema: {e}"))?;
        Ok(compile(&file.open_api_v3_schema, 0))
    });
    META.as_ref().map_err(Clone::clone)
}

// ---- the schema files, as far as they are read ----

#[derive(Deserialize)]
struct Crd {
    spec: CrdSpec,
}

#[derive(Deserialize)]
struct CrdSpec {
    versions: Vec<CrdVersion>,
}

#[derive(Deserialize)]
struct CrdVersion {
    name: String,
    schema: Option<SchemaFile>,
}

/// A CRD version's `schema`, and the shape of the hand-written files.
#[derive(Deserialize)]
struct SchemaFile {
    #[serde(rename = "openAPIV3Schema")]
    open_api_v3_schema: Props,
}

/// One node of an OpenAPI v3 schema: the keys that decide which fields exist.
#[derive(Deserialize, PartialEq, Default)]
#[serde(default)]
struct Props {
    #[serde(rename = "type")]
    ty: Option<String>,
    properties: BTreeMap<String, Props>,
    items: Option<Box<Props>>,
    #[serde(rename = "additionalProperties")]
    additional_properties: Option<Additional>,
    #[serde(rename = "x-kubernetes-preserve-unknown-fields")]
    preserve_unknown_fields: bool,
    #[serde(rename = "x-kubernetes-int-or-string")]
    int_or_string: bool,
}

#[derive(Deserialize, PartialEq)]
#[serde(untagged)]
enum Additional {
    Allowed(bool),
    Schema(Box<Props>),
}

// ---- the compiled tree ----

/// What a schema says about the value at one place.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// Nothing to check below: a scalar, int-or-string, or preserve-unknown-fields without
    /// properties.
    Any,
    /// An object: its known fields (sorted by name) and what any other key is.
    Object {
        fields: Box<[(Box<str>, Node)]>,
        other: Other,
    },
    /// An array of these.
    Array(Box<Node>),
}

/// What an object key that is not among the known fields is.
#[derive(Debug, Clone, PartialEq)]
enum Other {
    /// Unknown: reported.
    Unknown,
    /// Kept as it is (`x-kubernetes-preserve-unknown-fields`, `additionalProperties: true`).
    Any,
    /// A map entry (`additionalProperties`) with this value schema.
    Map(Box<Node>),
}

fn compile(p: &Props, depth: usize) -> Node {
    if depth >= MAX_DEPTH || p.int_or_string {
        return Node::Any;
    }
    if let Some(items) = &p.items {
        return Node::Array(Box::new(compile(items, depth + 1)));
    }
    let is_object = p.ty.as_deref() == Some("object")
        || !p.properties.is_empty()
        || p.additional_properties.is_some();
    if !is_object {
        return Node::Any;
    }
    let other = match &p.additional_properties {
        Some(Additional::Schema(s)) => match compile(s, depth + 1) {
            Node::Any => Other::Any,
            node => Other::Map(Box::new(node)),
        },
        Some(Additional::Allowed(true)) => Other::Any,
        _ if p.preserve_unknown_fields => Other::Any,
        _ => Other::Unknown,
    };
    if p.properties.is_empty() && other == Other::Any {
        return Node::Any;
    }
    // BTreeMap order is byte order, the order `binary_search_by` on `str` expects.
    let fields = p
        .properties
        .iter()
        .map(|(name, child)| (Box::from(name.as_str()), compile(child, depth + 1)))
        .collect();
    Node::Object { fields, other }
}

impl Node {
    fn field(&self, name: &str) -> Option<&Node> {
        match self {
            Node::Object { fields, .. } => fields
                .binary_search_by(|(n, _)| (**n).cmp(name))
                .ok()
                .map(|i| &fields[i].1),
            _ => None,
        }
    }
}

/// One kind's schema: a tree per served version (versions with identical schemas share one).
struct KindSchema {
    versions: Vec<(String, usize)>,
    roots: Vec<Node>,
}

impl KindSchema {
    fn from_crd(text: &str) -> Result<KindSchema, String> {
        let crd: Crd = serde_yaml_ng::from_str(text).map_err(|e| format!("CRD: {e}"))?;
        let mut seen: Vec<&Props> = Vec::new();
        let mut schema = KindSchema {
            versions: Vec::new(),
            roots: Vec::new(),
        };
        for version in &crd.spec.versions {
            let Some(file) = &version.schema else {
                continue;
            };
            let props = &file.open_api_v3_schema;
            let at = match seen.iter().position(|p| *p == props) {
                Some(at) => at,
                None => {
                    seen.push(props);
                    schema.roots.push(root(props)?);
                    schema.roots.len() - 1
                }
            };
            schema.versions.push((version.name.clone(), at));
        }
        Ok(schema)
    }

    fn from_schema(version: &str, text: &str) -> Result<KindSchema, String> {
        let file: SchemaFile = serde_yaml_ng::from_str(text).map_err(|e| format!("schema: {e}"))?;
        Ok(KindSchema {
            versions: vec![(version.to_string(), 0)],
            roots: vec![root(&file.open_api_v3_schema)?],
        })
    }

    fn root(&self, version: &str) -> Option<&Node> {
        self.versions
            .iter()
            .find(|(v, _)| v == version)
            .and_then(|(_, at)| self.roots.get(*at))
    }
}

/// A document's top level: the schema's properties (CRDs of Istio leave out the common ones),
/// `apiVersion` and `kind`, `metadata` as ObjectMeta, `status` not checked.
fn root(props: &Props) -> Result<Node, String> {
    let meta = object_meta()?.clone();
    let Node::Object { fields, other } = compile(props, 0) else {
        return Err("expected an object schema at the top level".into());
    };
    let mut fields: BTreeMap<Box<str>, Node> = fields.into_vec().into_iter().collect();
    fields.insert("apiVersion".into(), Node::Any);
    fields.insert("kind".into(), Node::Any);
    fields.insert("metadata".into(), meta);
    fields.insert("status".into(), Node::Any);
    Ok(Node::Object {
        fields: fields.into_iter().collect(),
        other,
    })
}

// ---- the walk ----

#[derive(Default)]
struct Walk {
    found: Vec<UnknownField>,
    /// Unknown fields past [`MAX_LISTED`], counted only.
    unlisted: usize,
    values: usize,
    stopped: bool,
}

impl Walk {
    fn node(&mut self, node: &Node, value: &Value, path: &mut String, depth: usize) {
        if self.stopped {
            return;
        }
        self.values += 1;
        if self.values > MAX_VALUES || depth > MAX_DEPTH {
            self.stopped = true;
            return;
        }
        match (node, value) {
            (Node::Any, _) => {}
            (Node::Array(item), Value::Array(values)) => {
                for (i, v) in values.iter().enumerate() {
                    let len = path.len();
                    let _ = write!(path, "[{i}]");
                    self.node(item, v, path, depth + 1);
                    path.truncate(len);
                }
            }
            (Node::Object { fields, other }, Value::Object(map)) => {
                for (key, v) in map {
                    let child = node.field(key).or(match other {
                        Other::Map(value) => Some(value.as_ref()),
                        _ => None,
                    });
                    match child {
                        Some(child) => {
                            let len = path.len();
                            push_key(path, key);
                            self.node(child, v, path, depth + 1);
                            path.truncate(len);
                        }
                        None if *other == Other::Any => {}
                        None => self.unknown(fields, key, path),
                    }
                }
            }
            // A value of another type than the schema's: not this rule's business.
            _ => {}
        }
    }

    fn unknown(&mut self, fields: &[(Box<str>, Node)], key: &str, at: &str) {
        if self.found.len() >= MAX_LISTED {
            self.unlisted += 1;
            return;
        }
        let mut path = at.to_string();
        push_key(&mut path, &shorten(key));
        let place = if at.is_empty() {
            "the top level".to_string()
        } else {
            at.to_string()
        };
        let names = || fields.iter().map(|(n, _)| n.as_ref());
        let mut message = format!(
            "unknown field {} at {place}",
            serde_json::Value::from(shorten(key))
        );
        match nearest(key, names()) {
            Some(near) => {
                let _ = write!(message, "; did you mean \"{near}\"?");
            }
            None if fields.is_empty() => message.push_str("; no field is allowed there"),
            None if fields.len() <= 12 => {
                let _ = write!(
                    message,
                    "; the fields there are {}",
                    names().collect::<Vec<_>>().join(", ")
                );
            }
            None => {
                let _ = write!(
                    message,
                    "; none of the {} fields there is close to it",
                    fields.len()
                );
            }
        }
        self.found.push(UnknownField { path, message });
    }

    fn finish(mut self) -> Vec<UnknownField> {
        if self.unlisted > 0 {
            self.found.push(UnknownField {
                path: String::new(),
                message: format!(
                    "{} more unknown fields (only the first {MAX_LISTED} are listed)",
                    self.unlisted
                ),
            });
        }
        if self.stopped {
            self.found.push(UnknownField {
                path: String::new(),
                message: format!(
                    "stopped looking for unknown fields after {MAX_VALUES} values or {MAX_DEPTH} \
                     levels; the rest of the object was not checked"
                ),
            });
        }
        self.found
    }
}

/// Appends `.key`, or `["key"]` when the key is not a plain name (dots, spaces, empty).
fn push_key(path: &mut String, key: &str) {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    } else {
        let _ = write!(path, "[{}]", serde_json::Value::from(key));
    }
}

fn shorten(key: &str) -> String {
    match key.char_indices().nth(MAX_SUGGEST_LEN) {
        Some((at, _)) => format!("{}…", &key[..at]),
        None => key.to_string(),
    }
}

/// The known name closest to `key` (case-insensitive edit distance, a swap of neighbours counting
/// one), if it is close enough: at most a third of the longer name's length, between 1 and 4
/// edits. Ties go to the first name in byte order.
fn nearest<'a>(key: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    if key.chars().count() > MAX_SUGGEST_LEN {
        return None;
    }
    let key: Vec<char> = key.chars().flat_map(char::to_lowercase).collect();
    let mut best: Option<(usize, &str)> = None;
    for name in names {
        let lower: Vec<char> = name.chars().flat_map(char::to_lowercase).collect();
        let limit = (key.len().max(lower.len()) / 3).clamp(1, 4);
        let d = distance(&key, &lower);
        if d <= limit && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, name));
        }
    }
    best.map(|(_, name)| name)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
/// neighbouring characters each cost one.
fn distance(a: &[char], b: &[char]) -> usize {
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            current[j] = d;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml_ng::from_str(text).expect("test YAML")
    }

    fn unknown(kind: Kind, text: &str) -> Vec<UnknownField> {
        unknown_fields(kind, &yaml(text))
    }

    /// The paths found, sorted (map order is not document order without serde_json's
    /// `preserve_order`).
    fn paths(found: &[UnknownField]) -> Vec<&str> {
        let mut paths: Vec<&str> = found.iter().map(|u| u.path.as_str()).collect();
        paths.sort();
        paths
    }

    fn message<'a>(found: &'a [UnknownField], path: &str) -> &'a str {
        found
            .iter()
            .find(|u| u.path == path)
            .map_or("(no such finding)", |u| u.message.as_str())
    }

    const ROLLOUT: &str = "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: r}\n";

    #[test]
    fn every_schema_loads() {
        for kind in Kind::ALL {
            let schema = schema(kind);
            assert!(schema.is_some(), "{kind}: {:?}", schema.map(|_| ()));
        }
        assert!(object_meta().is_ok());
        let rollout = schema(Kind::Rollout).expect("loads");
        assert_eq!(rollout.versions, [("v1alpha1".to_string(), 0)]);
        for kind in [Kind::VirtualService, Kind::DestinationRule] {
            let s = schema(kind).expect("loads");
            let mut versions: Vec<&str> = s.versions.iter().map(|(v, _)| v.as_str()).collect();
            versions.sort();
            assert_eq!(versions, ["v1", "v1alpha3", "v1beta1"], "{kind}");
            // Istio serves the same schema under every version: one tree.
            assert_eq!(s.roots.len(), 1, "{kind}");
        }
    }

    #[test]
    fn pod_template_is_the_full_pod_spec() {
        let rollout = schema(Kind::Rollout).and_then(|s| s.root("v1alpha1"));
        let container = rollout
            .and_then(|n| n.field("spec"))
            .and_then(|n| n.field("template"))
            .and_then(|n| n.field("spec"))
            .and_then(|n| n.field("containers"));
        let Some(Node::Array(container)) = container else {
            panic!("expected containers to be an array, found {container:?}");
        };
        assert!(container.field("readinessProbe").is_some());
    }

    #[test]
    fn typos_at_several_depths() {
        let found = unknown(
            Kind::Rollout,
            &format!(
                "{ROLLOUT}specs: {{}}\nspec:\n  replica: 3\n  strategy:\n    canary:\n      canaryservice: c\n      stableService: s\n      trafficRouting:\n        istio:\n          virtualService: {{name: vs, rutes: [primary]}}\n  template:\n    spec:\n      containers:\n      - name: app\n        imagePullPolicy: Always\n        readinessProbe: {{httpGet: {{path: /, prot: 8080}}}}\n"
            ),
        );
        assert_eq!(
            paths(&found),
            [
                "spec.replica",
                "spec.strategy.canary.canaryservice",
                "spec.strategy.canary.trafficRouting.istio.virtualService.rutes",
                "spec.template.spec.containers[0].readinessProbe.httpGet.prot",
                "specs",
            ]
        );
        assert_eq!(
            message(&found, "spec.strategy.canary.canaryservice"),
            "unknown field \"canaryservice\" at spec.strategy.canary; did you mean \"canaryService\"?"
        );
        assert_eq!(
            message(&found, "spec.replica"),
            "unknown field \"replica\" at spec; did you mean \"replicas\"?"
        );
        assert_eq!(
            message(
                &found,
                "spec.template.spec.containers[0].readinessProbe.httpGet.prot"
            ),
            "unknown field \"prot\" at spec.template.spec.containers[0].readinessProbe.httpGet; \
             did you mean \"port\"?"
        );
        assert_eq!(
            message(&found, "specs"),
            "unknown field \"specs\" at the top level; did you mean \"spec\"?"
        );
    }

    #[test]
    fn maps_accept_any_key() {
        let found = unknown(
            Kind::Service,
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  labels: {app: a, \"example.com/x\": y}\n  annotations: {anything: goes}\nspec:\n  selector: {app: a, whatever: b}\n  ports: [{port: 80, targetPort: http}]\n",
        );
        assert!(found.is_empty(), "{found:?}");
        let found = unknown(
            Kind::DestinationRule,
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: h\n  subsets:\n  - name: canary\n    labels: {app: a, any-key: b}\n",
        );
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn metadata_is_object_meta() {
        let found = unknown(
            Kind::VirtualService,
            "apiVersion: networking.istio.io/v1beta1\nkind: VirtualService\nmetadata:\n  name: v\n  namespce: shop\n  ownerReferences: [{kind: Rollout, name: r, uid: u, controler: true}]\n  managedFields: [{manager: m, fieldsV1: {\"f:spec\": {}}}]\nspec: {hosts: [a]}\nstatus: {anything: here}\n",
        );
        assert_eq!(
            paths(&found),
            ["metadata.namespce", "metadata.ownerReferences[0].controler"]
        );
        assert_eq!(
            message(&found, "metadata.namespce"),
            "unknown field \"namespce\" at metadata; did you mean \"namespace\"?"
        );
        assert!(message(&found, "metadata.ownerReferences[0].controler")
            .ends_with("did you mean \"controller\"?"));
    }

    #[test]
    fn preserve_unknown_fields_subtree_accepts_anything() {
        let found = unknown(
            Kind::Rollout,
            &format!(
                "{ROLLOUT}spec:\n  strategy:\n    canary:\n      steps:\n      - plugin: {{name: p, config: {{any: {{thing: [1, {{deep: true}}]}}}}}}\n      trafficRouting:\n        plugins: {{argoproj-labs/gatewayAPI: {{httpRoute: r}}}}\n  template:\n    spec:\n      volumes: [{{name: v, emptyDir: {{whatever: 1}}}}]\n      containers: [{{name: a, resources: {{limits: {{example.com/gpu: 1}}}}}}]\n"
            ),
        );
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn arrays_of_objects() {
        let found = unknown(
            Kind::VirtualService,
            "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata: {name: v}\nspec:\n  hosts: [a]\n  http:\n  - name: primary\n    route:\n    - destination: {host: stable}\n      weight: 100\n    - destinaton: {host: canary}\n      wieght: 0\n  tls:\n  - match: [{port: 443, sniHost: [a]}]\n    route: [{destination: {host: a}}]\n",
        );
        assert_eq!(
            paths(&found),
            [
                "spec.http[0].route[1].destinaton",
                "spec.http[0].route[1].wieght",
                "spec.tls[0].match[0].sniHost",
            ]
        );
        assert_eq!(
            message(&found, "spec.http[0].route[1].destinaton"),
            "unknown field \"destinaton\" at spec.http[0].route[1]; did you mean \"destination\"?"
        );
        assert!(
            message(&found, "spec.http[0].route[1].wieght").ends_with("did you mean \"weight\"?")
        );
        assert!(
            message(&found, "spec.tls[0].match[0].sniHost").ends_with("did you mean \"sniHosts\"?")
        );
    }

    #[test]
    fn no_suggestion_when_nothing_is_close() {
        let found = unknown(
            Kind::Service,
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 80, zzz: 1}]\n  frobnicate: true\n",
        );
        assert_eq!(paths(&found), ["spec.frobnicate", "spec.ports[0].zzz"]);
        assert_eq!(
            message(&found, "spec.ports[0].zzz"),
            "unknown field \"zzz\" at spec.ports[0]; the fields there are appProtocol, name, \
             nodePort, port, protocol, targetPort"
        );
        assert_eq!(
            message(&found, "spec.frobnicate"),
            "unknown field \"frobnicate\" at spec; none of the 20 fields there is close to it"
        );
    }

    #[test]
    fn nearest_name() {
        let names = ["canaryService", "stableService", "steps", "trafficRouting"];
        let near = |key: &str| nearest(key, names.iter().copied());
        assert_eq!(near("canaryservice"), Some("canaryService"));
        assert_eq!(near("stabelService"), Some("stableService"));
        assert_eq!(near("step"), Some("steps"));
        assert_eq!(near("trafficrouting"), Some("trafficRouting"));
        assert_eq!(near("stp"), None);
        assert_eq!(near("service"), None);
        assert_eq!(near(&"x".repeat(100)), None);
        assert_eq!(distance(&['a', 'b'], &['b', 'a']), 1);
        assert_eq!(distance(&[], &['a', 'b']), 2);
    }

    #[test]
    fn odd_keys_and_versions() {
        let found = unknown(
            Kind::Service,
            "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  \"a.b\": 1\n  \"\": 2\n",
        );
        assert_eq!(paths(&found), ["spec[\"\"]", "spec[\"a.b\"]"]);
        // A version without a schema, a document of another shape: nothing to say.
        assert!(unknown(Kind::Service, "apiVersion: v2\nkind: Service\nfoo: 1\n").is_empty());
        assert!(unknown_fields(Kind::Rollout, &Value::from("text")).is_empty());
        assert!(unknown(
            Kind::Rollout,
            "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: just-text\nspec: [1, 2]\n"
        )
        .is_empty());
    }

    #[test]
    fn listing_is_bounded() {
        let mut text = String::from("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n");
        for i in 0..(MAX_LISTED + 7) {
            text.push_str(&format!("  unknown{i}: 1\n"));
        }
        text.push_str(&format!("  {}: 1\n", "k".repeat(500)));
        let found = unknown(Kind::Service, &text);
        assert_eq!(found.len(), MAX_LISTED + 1);
        assert_eq!(found[MAX_LISTED].path, "");
        assert_eq!(
            found[MAX_LISTED].message,
            "8 more unknown fields (only the first 50 are listed)"
        );
        assert!(found.iter().all(|f| f.message.len() < 400));
    }

    #[test]
    fn long_keys_are_shortened() {
        let key = "k".repeat(500);
        let found = unknown(
            Kind::Service,
            &format!("apiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec: {{{key}: 1}}\n"),
        );
        assert_eq!(found.len(), 1);
        assert!(found[0].path.len() < 80, "{}", found[0].path);
        assert!(found[0].message.contains('…'));
    }
}
