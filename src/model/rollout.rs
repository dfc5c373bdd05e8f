//! The fields of an Argo Rollout (`argoproj.io/v1alpha1`) that the rules and the drift guard read.

use super::object::{exact, field, lenient_int, Json, ParseError};
use super::Meta;
use serde::Deserialize;

#[derive(Debug, Clone)]
pub struct Rollout {
    pub meta: Meta,
    pub spec: RolloutSpec,
    /// The status as the controller wrote it, or why it could not be read. A bad status never
    /// makes the Rollout itself unreadable: only the drift guard needs it.
    pub status: Result<RolloutStatus, ParseError>,
}

impl Rollout {
    pub(crate) fn from_parts(
        meta: Meta,
        spec: Json<'_>,
        status: Option<Json<'_>>,
    ) -> Result<Self, ParseError> {
        let spec: RolloutSpec = field("spec", spec)?;
        let status = match status {
            Some(s) => field("status", s),
            None => Ok(RolloutStatus::default()),
        };
        Ok(Rollout { meta, spec, status })
    }

    pub fn canary(&self) -> Option<&Canary> {
        self.spec.strategy.canary.as_ref()
    }

    pub fn istio(&self) -> Option<&Istio> {
        self.canary()?.traffic_routing.as_ref()?.istio.as_ref()
    }

    /// The VirtualService references with their index in `virtualServices` (None for the
    /// single `virtualService` form).
    pub fn vs_refs(&self) -> Vec<(Option<usize>, &VsRef)> {
        let Some(istio) = self.istio() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(one) = &istio.virtual_service {
            out.push((None, one));
        }
        if let Some(many) = &istio.virtual_services {
            out.extend(many.iter().enumerate().map(|(i, r)| (Some(i), r)));
        }
        out
    }

    pub fn managed_route_names(&self) -> Vec<&str> {
        self.canary()
            .and_then(|c| c.traffic_routing.as_ref())
            .and_then(|t| t.managed_routes.as_ref())
            .map(|m| m.iter().map(|r| r.name.as_str()).collect())
            .unwrap_or_default()
    }

    pub fn template_labels(&self) -> Option<&super::meta::Labels> {
        let t = self.spec.template.as_ref()?;
        t.metadata.as_ref().map(|m| &m.labels)
    }

    pub fn steps(&self) -> &[Step] {
        self.canary().map(|c| c.steps.as_slice()).unwrap_or(&[])
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RolloutSpec {
    pub strategy: Strategy,
    pub template: Option<PodTemplate>,
    pub workload_ref: Option<WorkloadRef>,
    pub selector: Option<Selector>,
    #[serde(deserialize_with = "lenient_int::opt")]
    pub replicas: Option<i64>,
    #[serde(deserialize_with = "lenient_int::opt")]
    pub min_ready_seconds: Option<i64>,
    #[serde(deserialize_with = "lenient_int::opt")]
    pub revision_history_limit: Option<i64>,
    #[serde(deserialize_with = "lenient_int::opt")]
    pub progress_deadline_seconds: Option<i64>,
}

/// Only what Argo Rollouts' generic validation asks of a selector: is it there, is it empty.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Selector {
    pub match_labels: super::meta::Labels,
    pub match_expressions: Vec<serde::de::IgnoredAny>,
}

/// A Kubernetes int-or-string (`maxSurge: 1`, `maxSurge: "25%"`, `duration: 10s`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    Str(String),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WorkloadRef {
    pub kind: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PodTemplate {
    pub metadata: Option<PodTemplateMeta>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PodTemplateMeta {
    pub labels: super::meta::Labels,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Strategy {
    pub canary: Option<Canary>,
    pub blue_green: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Canary {
    pub canary_service: Option<String>,
    pub stable_service: Option<String>,
    pub ping_pong: Option<PingPong>,
    pub traffic_routing: Option<TrafficRouting>,
    #[serde(deserialize_with = "exact::vec")]
    pub steps: Vec<Step>,
    pub max_surge: Option<IntOrString>,
    pub max_unavailable: Option<IntOrString>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PingPong {
    pub ping_service: String,
    pub pong_service: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TrafficRouting {
    pub istio: Option<Istio>,
    /// Other routers, only to tell which one is configured.
    pub smi: Option<serde::de::IgnoredAny>,
    pub alb: Option<serde::de::IgnoredAny>,
    pub plugins: Option<serde::de::IgnoredAny>,
    #[serde(deserialize_with = "exact::opt_vec")]
    pub managed_routes: Option<Vec<ManagedRoute>>,
    #[serde(deserialize_with = "lenient_int::opt")]
    pub max_traffic_weight: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ManagedRoute {
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Istio {
    pub virtual_service: Option<VsRef>,
    #[serde(deserialize_with = "exact::opt_vec")]
    pub virtual_services: Option<Vec<VsRef>>,
    pub destination_rule: Option<DrRef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VsRef {
    pub name: String,
    #[serde(default)]
    #[serde(deserialize_with = "exact::opt_vec")]
    pub routes: Option<Vec<String>>,
    #[serde(default)]
    #[serde(deserialize_with = "exact::opt_vec")]
    pub tls_routes: Option<Vec<TlsRouteRef>>,
    #[serde(default)]
    #[serde(deserialize_with = "exact::opt_vec")]
    pub tcp_routes: Option<Vec<TcpRouteRef>>,
}

/// Which Argo Rollouts release's reading of a VirtualService reference rollout-guard follows
/// (`--argo-rollouts-version`): the only difference between v1.9.x and v1.10.x that matters here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ArgoVersion {
    /// v1.10: a trailing `.cluster.local` is stripped and the last dot-segment is the namespace
    /// (argo-rollouts#4766), so VirtualService names with dots work.
    #[default]
    #[value(name = "1.10")]
    V1_10,
    /// v1.9: `a.b.c` is VirtualService `a` in namespace `b` (the rest ignored).
    #[value(name = "1.9")]
    V1_9,
}

impl ArgoVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            ArgoVersion::V1_10 => "v1.10",
            ArgoVersion::V1_9 => "v1.9",
        }
    }

    /// (namespace, name) of the VirtualService `reference` names, as this release reads it.
    pub fn split(self, reference: &str, rollout_namespace: &str) -> (String, String) {
        let (ns, name) = match self {
            ArgoVersion::V1_9 => {
                let mut fields = reference.split('.');
                let name = fields.next().unwrap_or_default();
                (fields.next().unwrap_or_default(), name)
            }
            ArgoVersion::V1_10 => {
                let trimmed = reference
                    .strip_suffix(".cluster.local")
                    .unwrap_or(reference);
                match trimmed.rsplit_once('.') {
                    Some((name, ns)) => (ns, name),
                    None => ("", trimmed),
                }
            }
        };
        let ns = if ns.is_empty() { rollout_namespace } else { ns };
        (ns.to_string(), name.to_string())
    }
}

/// The release whose reading this process follows: set once from the command line before any
/// object is read (a process-wide setting like the flags it comes from), `1.10` otherwise.
static ARGO_VERSION: std::sync::OnceLock<ArgoVersion> = std::sync::OnceLock::new();

/// Sets the process's `--argo-rollouts-version`; the first call wins.
pub fn set_argo_version(version: ArgoVersion) {
    let _ = ARGO_VERSION.set(version);
}

pub fn argo_version() -> ArgoVersion {
    ARGO_VERSION.get().copied().unwrap_or_default()
}

impl VsRef {
    /// (namespace, name) of the VirtualService this reference names, as the configured Argo
    /// Rollouts release reads it (see [`ArgoVersion::split`]).
    pub fn target(&self, rollout_namespace: &str) -> (String, String) {
        argo_version().split(&self.name, rollout_namespace)
    }
}

#[cfg(test)]
mod reference_tests {
    use super::ArgoVersion::{V1_10, V1_9};

    #[test]
    fn references_split_as_each_release_splits_them() {
        let split = |v: super::ArgoVersion, r: &str| {
            let (ns, name) = v.split(r, "home");
            format!("{ns}/{name}")
        };
        for v in [V1_9, V1_10] {
            assert_eq!(split(v, "vs"), "home/vs");
            assert_eq!(split(v, "vs.shop"), "shop/vs");
            assert_eq!(split(v, "vs."), "home/vs");
        }
        assert_eq!(split(V1_9, "vs.shop.svc.cluster.local"), "shop/vs");
        assert_eq!(split(V1_10, "vs.shop.cluster.local"), "shop/vs");
        assert_eq!(split(V1_10, "my.vs.shop"), "shop/my.vs");
        assert_eq!(split(V1_9, "my.vs.shop"), "vs/my");
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, rename_all = "camelCase")]
pub struct TlsRouteRef {
    #[serde(deserialize_with = "lenient_int::opt")]
    pub port: Option<i64>,
    #[serde(deserialize_with = "exact::vec")]
    pub sni_hosts: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct TcpRouteRef {
    #[serde(deserialize_with = "lenient_int::opt")]
    pub port: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrRef {
    pub name: String,
    pub canary_subset_name: String,
    pub stable_subset_name: String,
    #[serde(default)]
    #[serde(deserialize_with = "exact::vec")]
    pub additional_subset_names: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Step {
    #[serde(deserialize_with = "lenient_int::opt")]
    pub set_weight: Option<i64>,
    pub set_canary_scale: Option<Box<SetCanaryScale>>,
    pub set_header_route: Option<Box<SetHeaderRoute>>,
    pub set_mirror_route: Option<Box<SetMirrorRoute>>,
    pub experiment: Option<Box<ExperimentStep>>,
    pub pause: Option<Pause>,
    pub analysis: Option<serde::de::IgnoredAny>,
    pub plugin: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Pause {
    pub duration: Option<IntOrString>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SetCanaryScale {
    #[serde(deserialize_with = "lenient_int::opt")]
    pub weight: Option<i64>,
    #[serde(deserialize_with = "lenient_int::opt")]
    pub replicas: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SetHeaderRoute {
    pub name: String,
    #[serde(rename = "match")]
    #[serde(deserialize_with = "exact::opt_vec")]
    pub matches: Option<Vec<HeaderRoutingMatch>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HeaderRoutingMatch {
    pub header_name: String,
    pub header_value: Option<StringMatch>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StringMatch {
    pub exact: Option<String>,
    pub regex: Option<String>,
    pub prefix: Option<String>,
}

impl StringMatch {
    /// How many of exact/regex/prefix are set (non-empty, as Argo counts them).
    pub fn kinds_set(&self) -> usize {
        [&self.exact, &self.regex, &self.prefix]
            .iter()
            .filter(|v| v.as_deref().is_some_and(|s| !s.is_empty()))
            .count()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SetMirrorRoute {
    pub name: String,
    #[serde(deserialize_with = "lenient_int::opt")]
    pub percentage: Option<i64>,
    #[serde(rename = "match")]
    #[serde(deserialize_with = "exact::opt_vec")]
    pub matches: Option<Vec<RouteMatch>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RouteMatch {
    pub method: Option<StringMatch>,
    pub path: Option<StringMatch>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ExperimentStep {
    #[serde(deserialize_with = "exact::vec")]
    pub templates: Vec<ExperimentTemplate>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ExperimentTemplate {
    pub name: String,
    #[serde(deserialize_with = "lenient_int::opt")]
    pub weight: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RolloutStatus {
    #[serde(deserialize_with = "lenient_int::opt")]
    pub current_step_index: Option<i64>,
    pub current_pod_hash: Option<String>,
    #[serde(rename = "stableRS")]
    pub stable_rs: Option<String>,
    pub abort: bool,
    pub canary: CanaryStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CanaryStatus {
    pub weights: Option<TrafficWeights>,
    pub stable_ping_pong: Option<String>,
    pub current_experiment: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TrafficWeights {
    pub canary: WeightDestination,
    pub stable: WeightDestination,
    #[serde(deserialize_with = "exact::vec")]
    pub additional: Vec<WeightDestination>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WeightDestination {
    #[serde(deserialize_with = "lenient_int::opt")]
    pub weight: Option<i64>,
    pub service_name: Option<String>,
    pub pod_template_hash: Option<String>,
}
