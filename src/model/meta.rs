use super::intern::{APPLICATIONS, NAMESPACES};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

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
    /// The same allocation as the name in the object's key ([`crate::model::Object::key`]).
    pub name: Arc<str>,
    /// Shared by every object of the namespace ([`super::intern::NAMESPACES`]).
    pub namespace: Arc<str>,
    pub skip: bool,
    pub managed_by: Option<Box<str>>,
    /// The GitOps application that applies the object, when it carries a marker of one (Argo
    /// CD's tracking annotation or instance label, Flux's Kustomization or HelmRelease labels):
    /// two objects of different applications are never written by one sync.
    /// Shared by the objects of the application ([`super::intern::APPLICATIONS`]).
    pub application: Option<Arc<str>>,
    /// The cluster the object was read from, for Rollouts and Services of a remote Rollouts
    /// cluster (`--rollouts-cluster-secrets`); empty for this cluster and for Istio config, of
    /// which there is one cluster (see [`crate::model::ObjectKey`]).
    pub cluster: Arc<str>,
}

/// Argo CD's annotation tracking: `<app>:<group>/<kind>:<namespace>/<name>`.
pub const ANNOTATION_ARGOCD_TRACKING: &str = "argocd.argoproj.io/tracking-id";
/// Argo CD's label tracking (its default), also set by Helm charts to the release name.
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
const FLUX_MARKERS: [(&str, &str, &str); 2] = [
    (
        "kustomize.toolkit.fluxcd.io/name",
        "kustomize.toolkit.fluxcd.io/namespace",
        "flux Kustomization",
    ),
    (
        "helm.toolkit.fluxcd.io/name",
        "helm.toolkit.fluxcd.io/namespace",
        "flux HelmRelease",
    ),
];

fn application(
    annotations: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> Option<String> {
    if let Some((app, _)) = annotations
        .get(ANNOTATION_ARGOCD_TRACKING)
        .and_then(|t| t.split_once(':'))
    {
        return Some(format!("argocd {app}"));
    }
    for (name, namespace, what) in FLUX_MARKERS {
        if let Some(n) = labels.get(name) {
            let ns = labels.get(namespace).map_or("", String::as_str);
            return Some(format!("{what} {ns}/{n}"));
        }
    }
    labels.get(LABEL_INSTANCE).map(|i| format!("instance {i}"))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct RawMeta {
    pub name: Option<String>,
    pub namespace: Option<String>,
    #[serde(rename = "generateName")]
    pub generate_name: Option<String>,
    pub annotations: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
}

impl RawMeta {
    pub(crate) fn into_meta(self, default_namespace: &str) -> Meta {
        let annotations = self.annotations.unwrap_or_default();
        let labels = self.labels.unwrap_or_default();
        let namespace = self
            .namespace
            .as_deref()
            .filter(|ns| !ns.is_empty())
            .unwrap_or(default_namespace);
        Meta {
            application: application(&annotations, &labels).map(|a| APPLICATIONS.intern(&a)),
            name: Arc::from(self.name.or(self.generate_name).unwrap_or_default()),
            namespace: NAMESPACES.intern(namespace),
            skip: annotations
                .get(ANNOTATION_SKIP)
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            managed_by: annotations
                .get(ANNOTATION_MANAGED_BY)
                .map(|owner| Box::from(owner.as_str())),
            cluster: super::object::local_cluster(),
        }
    }
}

/// A label set or selector in one allocation: its entries sorted by key, each key and value
/// written as `<length in bytes>:<text>` (a `BTreeMap` node holds 11 entries whatever the count,
/// ~550 bytes for one label; a slice of `String` pairs is one allocation per key and per value).
/// A set holds a handful of entries, so reads scan it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Labels(Box<str>);

impl Labels {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The entries, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        Entries(&self.0)
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

struct Entries<'a>(&'a str);

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let key = self.take()?;
        let value = self.take()?;
        Some((key, value))
    }
}

impl<'a> Entries<'a> {
    fn take(&mut self) -> Option<&'a str> {
        let (len, rest) = self.0.split_once(':')?;
        let (text, rest) = rest.split_at_checked(len.parse().ok()?)?;
        self.0 = rest;
        Some(text)
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(m: BTreeMap<String, String>) -> Self {
        use fmt::Write as _;
        let mut text = String::new();
        for s in m.iter().flat_map(|(k, v)| [k, v]) {
            // Writing to a String cannot fail.
            let _ = write!(text, "{}:{s}", s.len());
        }
        Labels(text.into_boxed_str())
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BTreeMap::<String, String>::deserialize(d).map(Labels::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_back_what_they_were_built_from() {
        let entries = [
            ("app", "web"),
            ("", ""),
            ("odd:key", "12:3"),
            ("ünï", "cödé"),
        ];
        let map: BTreeMap<String, String> = entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let labels = Labels::from(map.clone());
        let read: Vec<(&str, &str)> = labels.iter().collect();
        let want: Vec<(&str, &str)> = map.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(read, want);
        assert_eq!(labels.len(), 4);
        assert_eq!(labels.get("odd:key"), Some("12:3"));
        assert_eq!(labels.get(""), Some(""));
        assert_eq!(labels.get("missing"), None);
        assert!(Labels::default().is_empty() && Labels::default().iter().next().is_none());
    }
}
