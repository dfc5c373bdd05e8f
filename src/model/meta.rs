use super::intern::{APPLICATIONS, NAMESPACES};
use serde::Deserialize;
use std::collections::BTreeMap;
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
