use serde::Deserialize;
use std::collections::BTreeMap;

/// Break-glass annotation: `rollout-guard.io/skip: "true"` skips validation and mutation.
pub const ANNOTATION_SKIP: &str = "rollout-guard.io/skip";
/// Written by the Argo Rollouts controller on Services and DestinationRules it manages.
pub const ANNOTATION_MANAGED_BY: &str = "argo-rollouts.argoproj.io/managed-by-rollouts";
/// The label/selector key the controller owns on Services, DestinationRule subsets and pods.
pub const POD_TEMPLATE_HASH: &str = "rollouts-pod-template-hash";

/// The parts of `metadata` the rules use. Only the two annotations that matter are kept,
/// so that cached objects stay small.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    pub name: String,
    pub namespace: String,
    pub skip: bool,
    pub managed_by: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct RawMeta {
    pub name: Option<String>,
    pub namespace: Option<String>,
    #[serde(rename = "generateName")]
    pub generate_name: Option<String>,
    pub annotations: Option<BTreeMap<String, String>>,
}

impl RawMeta {
    pub(crate) fn into_meta(self, default_namespace: &str) -> Meta {
        let annotations = self.annotations.unwrap_or_default();
        Meta {
            name: self.name.or(self.generate_name).unwrap_or_default(),
            namespace: self
                .namespace
                .filter(|ns| !ns.is_empty())
                .unwrap_or_else(|| default_namespace.to_string()),
            skip: annotations
                .get(ANNOTATION_SKIP)
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            managed_by: annotations.get(ANNOTATION_MANAGED_BY).cloned(),
        }
    }
}

/// A label set or selector: a handful of entries kept as a sorted boxed slice (a `BTreeMap` node
/// holds 11 entries whatever the count: ~550 bytes for one label).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(Box<[(String, String)]>);

impl Labels {
    pub fn get(&self, key: &str) -> Option<&String> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(m: BTreeMap<String, String>) -> Self {
        Labels(m.into_iter().collect::<Vec<_>>().into_boxed_slice())
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BTreeMap::<String, String>::deserialize(d).map(Labels::from)
    }
}
