use super::meta::RawMeta;
use super::{DestinationRule, Meta, Rollout, Service, VirtualService};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

/// The four kinds rollout-guard reads. Everything else is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Rollout,
    VirtualService,
    DestinationRule,
    Service,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Rollout,
        Kind::VirtualService,
        Kind::DestinationRule,
        Kind::Service,
    ];

    /// Recognises a kind from `apiVersion` and `kind` (group and version checked).
    pub fn from_type(api_version: &str, kind: &str) -> Option<Kind> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        match (group, kind) {
            ("argoproj.io", "Rollout") if version == "v1alpha1" => Some(Kind::Rollout),
            ("networking.istio.io", "VirtualService")
                if matches!(version, "v1alpha3" | "v1beta1" | "v1") =>
            {
                Some(Kind::VirtualService)
            }
            ("networking.istio.io", "DestinationRule")
                if matches!(version, "v1alpha3" | "v1beta1" | "v1") =>
            {
                Some(Kind::DestinationRule)
            }
            ("", "Service") if version == "v1" => Some(Kind::Service),
            _ => None,
        }
    }

    /// Recognises a kind from an AdmissionReview `request.kind` (group, kind; version ignored
    /// as the webhooks use `matchPolicy: Equivalent`).
    pub fn from_group_kind(group: &str, kind: &str) -> Option<Kind> {
        match (group, kind) {
            ("argoproj.io", "Rollout") => Some(Kind::Rollout),
            ("networking.istio.io", "VirtualService") => Some(Kind::VirtualService),
            ("networking.istio.io", "DestinationRule") => Some(Kind::DestinationRule),
            ("", "Service") => Some(Kind::Service),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Rollout => "Rollout",
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
            Kind::Service => "Service",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The cluster name of this cluster (empty), shared so that local keys do not allocate for it.
pub fn local_cluster() -> Arc<str> {
    static LOCAL: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    LOCAL.get_or_init(|| Arc::from("")).clone()
}

/// Identity of a cached object.
///
/// `cluster` is the Rollouts cluster a Rollout or Service lives in: empty for this cluster,
/// a remote cluster's name in the Istio primary role (`--rollouts-cluster-secrets`). VirtualServices
/// and DestinationRules always have an empty cluster: there is one Istio config cluster (this one,
/// or the primary that `--istio-primary-secrets` finds), and every Rollout resolves them there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: Arc<str>,
    pub name: Arc<str>,
    pub cluster: Arc<str>,
}

impl ObjectKey {
    /// A key in this cluster.
    pub fn new(kind: Kind, namespace: &str, name: &str) -> Self {
        ObjectKey {
            kind,
            namespace: Arc::from(namespace),
            name: Arc::from(name),
            cluster: local_cluster(),
        }
    }

    /// A key in `cluster` (empty: this cluster).
    pub fn in_cluster(kind: Kind, cluster: &Arc<str>, namespace: &str, name: &str) -> Self {
        ObjectKey {
            cluster: cluster.clone(),
            ..ObjectKey::new(kind, namespace, name)
        }
    }

    pub fn is_local(&self) -> bool {
        self.cluster.is_empty()
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)?;
        if !self.cluster.is_empty() {
            write!(f, " (cluster {})", self.cluster)?;
        }
        Ok(())
    }
}

/// A view with metadata (for [`Object::in_cluster`]).
trait HasMeta {
    fn meta_mut(&mut self) -> &mut Meta;
}

macro_rules! has_meta {
    ($($t:ty),*) => {$(
        impl HasMeta for $t {
            fn meta_mut(&mut self) -> &mut Meta {
                &mut self.meta
            }
        }
    )*};
}
has_meta!(Rollout, VirtualService, DestinationRule, Service);

/// One parsed object of a known kind.
#[derive(Debug, Clone)]
pub enum Object {
    Rollout(Arc<Rollout>),
    VirtualService(Arc<VirtualService>),
    DestinationRule(Arc<DestinationRule>),
    Service(Arc<Service>),
}

impl Object {
    /// The same parsed version (one allocation), not merely equal content.
    pub fn is_same_version(&self, other: &Object) -> bool {
        match (self, other) {
            (Object::Rollout(a), Object::Rollout(b)) => Arc::ptr_eq(a, b),
            (Object::VirtualService(a), Object::VirtualService(b)) => Arc::ptr_eq(a, b),
            (Object::DestinationRule(a), Object::DestinationRule(b)) => Arc::ptr_eq(a, b),
            (Object::Service(a), Object::Service(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Object::Rollout(_) => Kind::Rollout,
            Object::VirtualService(_) => Kind::VirtualService,
            Object::DestinationRule(_) => Kind::DestinationRule,
            Object::Service(_) => Kind::Service,
        }
    }

    pub fn meta(&self) -> &Meta {
        match self {
            Object::Rollout(o) => &o.meta,
            Object::VirtualService(o) => &o.meta,
            Object::DestinationRule(o) => &o.meta,
            Object::Service(o) => &o.meta,
        }
    }

    /// The object's key, sharing the view's strings (no allocation).
    pub fn key(&self) -> ObjectKey {
        let m = self.meta();
        ObjectKey {
            kind: self.kind(),
            namespace: m.namespace.clone(),
            name: m.name.clone(),
            cluster: m.cluster.clone(),
        }
    }

    /// The same object, as read from `cluster` (a remote Rollouts cluster's Rollouts and
    /// Services; see [`ObjectKey`]).
    pub fn in_cluster(self, cluster: &Arc<str>) -> Object {
        fn tag<T: Clone + HasMeta>(mut view: Arc<T>, cluster: &Arc<str>) -> Arc<T> {
            Arc::make_mut(&mut view).meta_mut().cluster = cluster.clone();
            view
        }
        if self.meta().cluster == *cluster {
            return self;
        }
        match self {
            Object::Rollout(o) => Object::Rollout(tag(o, cluster)),
            Object::VirtualService(o) => Object::VirtualService(tag(o, cluster)),
            Object::DestinationRule(o) => Object::DestinationRule(tag(o, cluster)),
            Object::Service(o) => Object::Service(tag(o, cluster)),
        }
    }

    /// Parses a document (already decoded from YAML or JSON). `Ok(None)` for kinds that are
    /// not ours; an error names the field path, what was expected and what was found.
    pub fn parse(doc: &Value, default_namespace: &str) -> Result<Option<Object>, ParseError> {
        let Some(map) = doc.as_object() else {
            return Err(ParseError::new(
                "",
                format!("expected an object, found {}", describe(doc)),
            ));
        };
        let api_version = match map.get("apiVersion") {
            Some(Value::String(s)) if !s.is_empty() => s.as_str(),
            Some(Value::String(_)) | None => {
                return Err(ParseError::new("apiVersion", "apiVersion is missing"))
            }
            Some(other) => {
                return Err(ParseError::new(
                    "apiVersion",
                    format!("expected a string, found {}", describe(other)),
                ))
            }
        };
        let kind = match map.get("kind") {
            Some(Value::String(s)) if !s.is_empty() => s.as_str(),
            Some(Value::String(_)) | None => {
                return Err(ParseError::new("kind", "kind is missing"))
            }
            Some(other) => {
                return Err(ParseError::new(
                    "kind",
                    format!("expected a string, found {}", describe(other)),
                ))
            }
        };
        let Some(kind) = Kind::from_type(api_version, kind) else {
            return Ok(None);
        };
        Self::parse_kind(kind, doc, default_namespace).map(Some)
    }

    /// Parses a document whose kind is already known (an AdmissionReview names it).
    pub fn parse_kind(
        kind: Kind,
        doc: &Value,
        default_namespace: &str,
    ) -> Result<Object, ParseError> {
        if !doc.is_object() {
            return Err(ParseError::new(
                "",
                format!("expected a {kind} object, found {}", describe(doc)),
            ));
        }
        let part = |key: &str| doc.get(key).map(Json::Tree);
        Self::from_parts(
            kind,
            part("metadata"),
            part("spec"),
            part("status"),
            default_namespace,
        )
    }

    /// Like [`Object::parse_kind`], straight from JSON text (an AdmissionReview's `object`):
    /// fields the views do not keep are skipped without building a tree.
    pub fn parse_kind_raw(
        kind: Kind,
        raw: &RawValue,
        default_namespace: &str,
    ) -> Result<Object, ParseError> {
        Self::parse_kind_split(kind, raw, TopLevel::split(raw).as_ref(), default_namespace)
    }

    /// Like [`Object::parse_kind_raw`], with `raw` already split by [`TopLevel::split`] (`None`:
    /// it could not be, and is read as a tree).
    pub fn parse_kind_split(
        kind: Kind,
        raw: &RawValue,
        fields: Option<&TopLevel<'_>>,
        default_namespace: &str,
    ) -> Result<Object, ParseError> {
        let Some(fields) = fields else {
            // Not an object, or keys with escapes that cannot be borrowed: read it as a tree.
            let doc: Value = serde_json::from_str(raw.get())
                .map_err(|e| ParseError::new("", format!("expected JSON, found: {e}")))?;
            return Self::parse_kind(kind, &doc, default_namespace);
        };
        let text = |key: &str| {
            fields
                .get(key)
                .filter(|r| r.get() != "null")
                .map(Json::Text)
        };
        Self::from_parts(
            kind,
            text("metadata"),
            text("spec"),
            text("status"),
            default_namespace,
        )
    }

    fn from_parts(
        kind: Kind,
        metadata: Option<Json<'_>>,
        spec: Option<Json<'_>>,
        status: Option<Json<'_>>,
        default_namespace: &str,
    ) -> Result<Object, ParseError> {
        let meta: RawMeta = match metadata {
            Some(m) => field("metadata", m)?,
            None => RawMeta::default(),
        };
        let meta = meta.into_meta(default_namespace);
        let spec = spec.unwrap_or(Json::Tree(&Value::Null));
        Ok(match kind {
            Kind::Rollout => Object::Rollout(Arc::new(Rollout::from_parts(meta, spec, status)?)),
            Kind::VirtualService => {
                Object::VirtualService(Arc::new(VirtualService::from_spec(meta, spec)?))
            }
            Kind::DestinationRule => {
                Object::DestinationRule(Arc::new(DestinationRule::from_spec(meta, spec)?))
            }
            Kind::Service => Object::Service(Arc::new(Service::from_spec(meta, spec)?)),
        })
    }
}

/// A JSON object's top-level fields as text, split in one pass over it: what both the view
/// ([`Object::parse_kind_split`]) and a comparison of two versions field by field read, so that
/// neither scans the whole object again.
#[derive(Debug)]
pub struct TopLevel<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'a> TopLevel<'a> {
    /// `None` when `raw` is not a JSON object, repeats a key, or has a key with an escape in it
    /// (it cannot be borrowed): read such an object as a tree instead.
    pub fn split(raw: &'a RawValue) -> Option<TopLevel<'a>> {
        if !raw.get().trim_start().starts_with('{') {
            return None;
        }
        let mut fields: Vec<(&'a str, &'a RawValue)> =
            serde_json::from_str::<FieldList<'a>>(raw.get()).ok()?.0;
        fields.sort_unstable_by_key(|(k, _)| *k);
        if fields.windows(2).any(|w| w[0].0 == w[1].0) {
            return None;
        }
        Some(TopLevel(fields))
    }

    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0
            .binary_search_by_key(&key, |(k, _)| *k)
            .ok()
            .map(|at| self.0[at].1)
    }

    /// The fields, sorted by key, as (key, JSON text).
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.0.iter().map(|(k, v)| (*k, v.get()))
    }
}

/// An object's fields in document order, keys and values borrowed.
struct FieldList<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for FieldList<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = FieldList<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(6));
                while let Some(entry) = map.next_entry::<&'de str, &'de RawValue>()? {
                    fields.push(entry);
                }
                Ok(FieldList(fields))
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// A document that is not a valid object of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct ParseError {
    pub path: String,
    pub message: String,
}

impl ParseError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ParseError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Deserialises `value` (found at `prefix`) into `T`, reporting the full path of a bad field.
/// A `null` is read as an absent value.
pub(crate) fn field<T: DeserializeOwned + Default>(
    prefix: &str,
    value: Json<'_>,
) -> Result<T, ParseError> {
    // Plain deserialisation first: tracking the path of every token (including the ones that
    // are skipped, such as managedFields) costs more than the parse itself, and is only needed
    // to explain an error.
    let plain = match value {
        Json::Tree(Value::Null) => return Ok(T::default()),
        Json::Tree(v) => T::deserialize(v),
        Json::Text(raw) if raw.get() == "null" => return Ok(T::default()),
        Json::Text(raw) => serde_json::from_str(raw.get()),
    };
    if let Ok(parsed) = plain {
        return Ok(parsed);
    }
    let result = match value {
        Json::Tree(v) => serde_path_to_error::deserialize(v),
        Json::Text(raw) => {
            let mut de = serde_json::Deserializer::from_str(raw.get());
            serde_path_to_error::deserialize(&mut de)
        }
    };
    result.map_err(|err| {
        let inner = err.path().to_string();
        let path = match (prefix.is_empty(), inner.as_str()) {
            (_, ".") => prefix.to_string(),
            (true, p) => p.to_string(),
            (false, p) if p.starts_with('[') => format!("{prefix}{p}"),
            (false, p) => format!("{prefix}.{p}"),
        };
        // Positions in the text of one field mean nothing to the writer: the path says where.
        let message = err.into_inner().to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        ParseError::new(path, message)
    })
}

/// Where a part of an object comes from: a decoded tree (YAML, the kube API) or JSON text (an
/// AdmissionReview body, read without building a tree).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Json<'a> {
    Tree(&'a Value),
    Text(&'a RawValue),
}

/// A short description of a JSON value for "found ..." messages.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.len() > 40 => {
            format!("string \"{}…\"", &s[..s.floor_char_boundary(40)])
        }
        Value::String(s) => format!("string {s:?}"),
        Value::Array(a) => format!("a list of {} items", a.len()),
        Value::Object(_) => "an object".into(),
    }
}

/// Lists read to their exact length: a `Vec` that serde grows from empty holds room for four
/// entries, and nearly every list in a view holds one or two.
pub(crate) mod exact {
    use serde::{Deserialize, Deserializer};

    pub fn vec<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
        let mut list = Vec::deserialize(d)?;
        list.shrink_to_fit();
        Ok(list)
    }

    pub fn opt_vec<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<Vec<T>>, D::Error> {
        let mut list = Option::<Vec<T>>::deserialize(d)?;
        if let Some(list) = &mut list {
            list.shrink_to_fit();
        }
        Ok(list)
    }
}

/// Lenient integer fields: Kubernetes clients write whole numbers as floats (`80.0`) at times.
pub(crate) mod lenient_int {
    use serde::{Deserialize, Deserializer};

    pub fn opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        let v = Option::<serde_json::Number>::deserialize(d)?;
        match v {
            None => Ok(None),
            Some(n) => to_int(&n).map(Some).map_err(serde::de::Error::custom),
        }
    }

    fn to_int(n: &serde_json::Number) -> Result<i64, String> {
        if let Some(i) = n.as_i64() {
            return Ok(i);
        }
        match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
            _ => Err(format!("invalid value: number {n}, expected an integer")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_are_recognised_by_group_and_version() {
        assert_eq!(
            Kind::from_type("argoproj.io/v1alpha1", "Rollout"),
            Some(Kind::Rollout)
        );
        for v in ["v1alpha3", "v1beta1", "v1"] {
            assert_eq!(
                Kind::from_type(&format!("networking.istio.io/{v}"), "VirtualService"),
                Some(Kind::VirtualService)
            );
        }
        assert_eq!(Kind::from_type("v1", "Service"), Some(Kind::Service));
        assert_eq!(Kind::from_type("serving.knative.dev/v1", "Service"), None);
        assert_eq!(
            Kind::from_type("networking.istio.io/v1alpha3", "Gateway"),
            None
        );
    }

    #[test]
    fn missing_type_fields_are_errors() {
        let err = Object::parse(&json!({"kind": "Service"}), "default").unwrap_err();
        assert_eq!(err.path, "apiVersion");
        let err = Object::parse(&json!({"apiVersion": "v1"}), "default").unwrap_err();
        assert_eq!(err.path, "kind");
        let err = Object::parse(&json!(["a"]), "default").unwrap_err();
        assert!(err.message.contains("expected an object"));
    }

    #[test]
    fn wrong_types_name_the_path() {
        let doc = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "r"},
            "spec": {"strategy": {"canary": {"steps": [{"setWeight": 10}, {"setWeight": "ten"}]}}}
        });
        let err = Object::parse(&doc, "default").unwrap_err();
        assert_eq!(err.path, "spec.strategy.canary.steps[1].setWeight");
        assert!(err.message.contains("string \"ten\""), "{}", err.message);
    }

    #[test]
    fn namespace_defaults() {
        let doc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}});
        let obj = Object::parse(&doc, "default").unwrap().unwrap();
        assert_eq!(obj.key(), ObjectKey::new(Kind::Service, "default", "s"));
    }
}
