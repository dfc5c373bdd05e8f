use super::object::{exact, field, lenient_int, Json, ParseError};
use super::Meta;
use serde::Deserialize;
use std::collections::BTreeSet;

/// A `networking.istio.io` VirtualService: hosts and the routes with their destinations.
#[derive(Debug, Clone, Default)]
pub struct VirtualService {
    pub meta: Meta,
    pub hosts: Vec<String>,
    pub gateways: Vec<String>,
    /// `None` when `spec.http` is absent (Argo Rollouts then skips HTTP checks).
    pub http: Option<Vec<HttpRoute>>,
    pub tls: Option<Vec<TlsRoute>>,
    pub tcp: Option<Vec<TcpRoute>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSpec {
    #[serde(deserialize_with = "exact::opt_vec")]
    hosts: Option<Vec<String>>,
    #[serde(deserialize_with = "exact::opt_vec")]
    gateways: Option<Vec<String>>,
    #[serde(deserialize_with = "exact::opt_vec")]
    http: Option<Vec<HttpRoute>>,
    #[serde(deserialize_with = "exact::opt_vec")]
    tls: Option<Vec<TlsRoute>>,
    #[serde(deserialize_with = "exact::opt_vec")]
    tcp: Option<Vec<TcpRoute>>,
}

impl VirtualService {
    pub(crate) fn from_spec(meta: Meta, spec: Json<'_>) -> Result<Self, ParseError> {
        let raw: RawSpec = field("spec", spec)?;
        Ok(VirtualService {
            meta,
            hosts: raw.hosts.unwrap_or_default(),
            gateways: raw.gateways.unwrap_or_default(),
            http: raw.http,
            tls: raw.tls,
            tcp: raw.tcp,
        })
    }

    pub fn http_routes(&self) -> &[HttpRoute] {
        self.http.as_deref().unwrap_or(&[])
    }
    pub fn tls_routes(&self) -> &[TlsRoute] {
        self.tls.as_deref().unwrap_or(&[])
    }
    pub fn tcp_routes(&self) -> &[TcpRoute] {
        self.tcp.as_deref().unwrap_or(&[])
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HttpRoute {
    pub name: Option<String>,
    #[serde(deserialize_with = "exact::vec")]
    pub route: Vec<RouteDestination>,
    pub mirror: Option<Destination>,
}

impl HttpRoute {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TlsRoute {
    #[serde(rename = "match")]
    #[serde(deserialize_with = "exact::vec")]
    pub matches: Vec<TlsMatch>,
    #[serde(deserialize_with = "exact::vec")]
    pub route: Vec<RouteDestination>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TlsMatch {
    #[serde(deserialize_with = "lenient_int::opt")]
    pub port: Option<i64>,
    #[serde(deserialize_with = "exact::vec")]
    pub sni_hosts: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TcpRoute {
    #[serde(rename = "match")]
    #[serde(deserialize_with = "exact::vec")]
    pub matches: Vec<L4Match>,
    #[serde(deserialize_with = "exact::vec")]
    pub route: Vec<RouteDestination>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct L4Match {
    #[serde(deserialize_with = "lenient_int::opt")]
    pub port: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RouteDestination {
    pub destination: Destination,
    #[serde(deserialize_with = "lenient_int::opt")]
    pub weight: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Destination {
    pub host: String,
    pub subset: Option<String>,
}

impl Destination {
    pub fn subset(&self) -> &str {
        self.subset.as_deref().unwrap_or("")
    }
}

/// How Argo Rollouts identifies a TLS route: the single distinct match port (0 when none; `None`
/// when the matches use several ports, which Argo never selects) and the union of SNI hosts.
pub fn tls_route_identity(route: &TlsRoute) -> (Option<i64>, BTreeSet<&str>) {
    let ports: BTreeSet<i64> = route.matches.iter().map(|m| m.port.unwrap_or(0)).collect();
    let port = match ports.len() {
        0 => Some(0),
        1 => ports.into_iter().next(),
        _ => None,
    };
    let snis = route
        .matches
        .iter()
        .flat_map(|m| m.sni_hosts.iter().map(String::as_str))
        .collect();
    (port, snis)
}

/// The single distinct match port of a TCP route (0 when none; `None` with several).
pub fn tcp_route_port(route: &TcpRoute) -> Option<i64> {
    let ports: BTreeSet<i64> = route.matches.iter().map(|m| m.port.unwrap_or(0)).collect();
    match ports.len() {
        0 => Some(0),
        1 => ports.into_iter().next(),
        _ => None,
    }
}
