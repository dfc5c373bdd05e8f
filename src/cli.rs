//! The command line (DESIGN.md "Interfaces": the flag names and defaults are the contract).

use crate::admission::{BreaksSeverity, Mode, Policy, ReferenceSeverity, DEFAULT_EXEMPT_USER};
use crate::lint;
use crate::server::self_certs::{cluster::SelfCertConfig, Settings as SelfCertSettings};
use crate::server::{https, router, tls, Certificates, ServeConfig};
use crate::source::{clusters, SourceConfig, SourceKind};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "rollout-guard",
    version,
    about = "Admission webhook for Argo Rollouts canaries with Istio"
)]
pub struct Cli {
    /// Log format (logs go to stderr; the level comes from RUST_LOG, default info).
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
    /// How a VirtualService reference with dots is read, as this Argo Rollouts release reads it
    /// (lint and serve alike; messages say which reading was used).
    #[arg(long, value_enum, default_value = "1.10", global = true)]
    pub argo_rollouts_version: crate::model::rollout::ArgoVersion,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `serve --certificates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CertificatesKind {
    Files,
    #[value(name = "self")]
    SelfManaged,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check YAML files, folders (recursively) or stdin (`-`) with the admission rules.
    Lint {
        /// Files, folders or `-` for stdin (default: stdin).
        paths: Vec<String>,
        #[arg(long, value_enum, default_value = "text")]
        output: lint::Output,
    },
    /// Check every Rollout in a cluster with its objects, with lint's rules, output and exit codes.
    Audit {
        /// The kubeconfig to use (default: KUBECONFIG, ~/.kube/config, or in cluster).
        #[arg(long, value_name = "PATH")]
        kubeconfig: Option<PathBuf>,
        /// Only this namespace (repeatable; default: all).
        #[arg(long = "namespace", value_name = "NS")]
        namespaces: Vec<String>,
        #[arg(long, value_enum, default_value = "text")]
        output: lint::Output,
    },
    /// What a Rollout owns (routes, destinations, subsets, selectors), their live and desired
    /// values, and what the drift guard would keep on a re-apply from Git.
    Explain {
        /// The Rollout, as NAMESPACE/NAME.
        #[arg(value_name = "NAMESPACE/ROLLOUT")]
        target: String,
        /// Read the objects from these files or folders (`-`: stdin) instead of a cluster.
        #[arg(long, value_name = "PATH", num_args = 1..)]
        manifests: Vec<String>,
        /// The kubeconfig to use when reading a cluster (default: KUBECONFIG, ~/.kube/config).
        #[arg(long, value_name = "PATH", conflicts_with = "manifests")]
        kubeconfig: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        output: lint::Output,
    },
    /// Serve the admission webhooks over HTTPS (POST /validate, POST /mutate) and the admin
    /// port (/livez, /readyz, /metrics).
    Serve(Box<ServeArgs>),
    /// Write a development CA and serving certificate (ca.crt, ca.key, tls.crt, tls.key).
    DevCerts {
        /// Folder to write into (created if missing).
        #[arg(long, value_name = "DIR", default_value = "certs")]
        out: PathBuf,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
        /// An extra DNS name or IP address for the serving certificate (repeatable).
        #[arg(long = "san", value_name = "NAME")]
        sans: Vec<String>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// HTTPS address of the webhooks.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Where the serving certificate comes from: `files` (--tls-cert, --tls-key) or `self`
    /// (a CA and serving pair rollout-guard creates in the Secret --cert-secret, injects into
    /// its webhook configurations' caBundle and renews at two thirds of --cert-validity).
    /// Default: files.
    #[arg(long, value_enum)]
    pub certificates: Option<CertificatesKind>,
    /// PEM certificate (chain) served; re-read when it changes.
    #[arg(
        long,
        value_name = "PATH",
        required_unless_present = "certificates",
        required_if_eq("certificates", "files")
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert; re-read when it changes.
    #[arg(
        long,
        value_name = "PATH",
        required_unless_present = "certificates",
        required_if_eq("certificates", "files")
    )]
    pub tls_key: Option<PathBuf>,
    /// --certificates self: the Secret holding the CA and the serving pair.
    #[arg(long, value_name = "NAME", default_value = "rollout-guard-certs")]
    pub cert_secret: String,
    /// --certificates self: the namespace of --cert-secret.
    #[arg(
        long,
        value_name = "NS",
        env = "POD_NAMESPACE",
        default_value = "rollout-guard"
    )]
    pub cert_namespace: String,
    /// --certificates self: a DNS name or IP address of the serving certificate (repeatable;
    /// the Service names the API server dials).
    #[arg(long = "cert-san", value_name = "NAME")]
    pub cert_sans: Vec<String>,
    /// --certificates self: lifetime of the serving certificate (renewed at two thirds of it).
    #[arg(long, value_name = "DURATION", default_value = "2160h", value_parser = parse_positive_duration)]
    pub cert_validity: Duration,
    /// --certificates self: lifetime of the CA (renewed at two thirds of it; the old one stays
    /// in the caBundle while it is valid).
    #[arg(long, value_name = "DURATION", default_value = "87600h", value_parser = parse_positive_duration)]
    pub ca_validity: Duration,
    /// --certificates self: the ValidatingWebhookConfiguration whose caBundle rollout-guard
    /// sets (empty: none).
    #[arg(long, value_name = "NAME", default_value = "rollout-guard")]
    pub validating_webhook: String,
    /// --certificates self: the MutatingWebhookConfiguration whose caBundle rollout-guard sets
    /// (empty: none).
    #[arg(long, value_name = "NAME", default_value = "rollout-guard")]
    pub mutating_webhook: String,
    /// --certificates self: longest time between two looks at the Secret and the caBundle.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_positive_duration)]
    pub cert_check_interval: Duration,
    /// Require client certificates signed by this PEM CA bundle (read at start).
    #[arg(long, value_name = "PATH")]
    pub client_ca: Option<PathBuf>,
    /// Plain-HTTP address of /livez, /readyz and /metrics.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
    pub admin_listen: SocketAddr,
    /// Where the cluster state comes from.
    #[arg(long, value_enum, default_value = "kube")]
    pub source: SourceKind,
    /// Files source: folder of YAML manifests, read at start and re-read when they change.
    #[arg(long, value_name = "DIR", required_if_eq("source", "files"))]
    pub manifests: Option<PathBuf>,
    /// Kube source: watch only this namespace (repeatable; default: all).
    #[arg(long = "namespace", value_name = "NS")]
    pub namespaces: Vec<String>,
    /// Kube source, in a Rollouts cluster whose Istio primary is another cluster: look for the
    /// Argo Rollouts Secret labelled istio.argoproj.io/primary-cluster=true in every namespace
    /// (`all`) or in one, and read VirtualServices and DestinationRules in the cluster it names.
    #[arg(long, value_name = "off|all|NS", default_value = "off", value_parser = clusters::SecretScope::parse)]
    pub istio_primary_secrets: clusters::SecretsFlag,
    /// Kube source, in the Istio primary: also read Rollouts and Services in every cluster that a
    /// kubeconfig Secret labelled --rollouts-cluster-label names (in every namespace, or one).
    #[arg(long, value_name = "off|all|NS", default_value = "off", value_parser = clusters::SecretScope::parse)]
    pub rollouts_cluster_secrets: clusters::SecretsFlag,
    /// The label selector of the remote Rollouts clusters' kubeconfig Secrets.
    #[arg(long, value_name = "KEY=VALUE", default_value = clusters::ROLLOUTS_CLUSTER_LABEL,
          value_parser = parse_label)]
    pub rollouts_cluster_label: String,
    /// The identity the remote Argo Rollouts controllers write VirtualServices and
    /// DestinationRules with in the Istio primary; exempt while --rollouts-cluster-secrets is on.
    #[arg(long, value_name = "USER", default_value = DEFAULT_PRIMARY_WRITER)]
    pub primary_writer: String,
    /// `warn`: every denial becomes an allowed response with warnings (audit mode).
    #[arg(long, value_enum, default_value = "enforce")]
    pub mode: Mode,
    /// Level of a Rollout's findings against other objects that exist.
    #[arg(long, value_enum, default_value = "auto")]
    pub reference_severity: ReferenceSeverity,
    /// Level of `breaks-rollout` (a VirtualService/DestinationRule/Service write that breaks a
    /// live Rollout): `auto` warns, and denies only when the two objects belong to different
    /// GitOps applications (so they cannot be one coordinated change).
    #[arg(long, value_enum, default_value = "auto")]
    pub breaks_severity: BreaksSeverity,
    /// Time to confirm a cross-object denial with the API server before it becomes a warning
    /// (kube source; inside the webhooks' timeoutSeconds).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub confirm_timeout: Duration,
    /// User never denied nor mutated (repeatable; giving any replaces the default).
    #[arg(long = "exempt-user", value_name = "NAME", default_value = DEFAULT_EXEMPT_USER)]
    pub exempt_users: Vec<String>,
    /// Group never denied nor mutated (repeatable).
    #[arg(long = "exempt-group", value_name = "NAME")]
    pub exempt_groups: Vec<String>,
    /// A watch broken for longer than this makes the state stale (e.g. 60s, 2m, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub stale_after: Duration,
    /// Kube source: a watch that failed and has not relisted within this is torn down and started
    /// again on a fresh connection.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_positive_duration)]
    pub relist_deadline: Duration,
    /// Answer within this, body reading included (keep it under the webhooks' timeoutSeconds).
    #[arg(long, value_name = "DURATION", default_value = "3500ms", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// After SIGTERM, how long in-flight requests get to finish.
    #[arg(long, value_name = "DURATION", default_value = "25s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// How often the certificate files are checked for changes, and the manifests folder where
    /// it cannot be watched.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub reload_interval: Duration,
    /// HTTP/1.1: a request head must arrive within this once the server waits for it (slow or
    /// idle clients are disconnected).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_positive_duration)]
    pub header_read_timeout: Duration,
    /// The TLS handshake must finish within this.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_positive_duration)]
    pub tls_handshake_timeout: Duration,
    /// A connection on which no byte moves for this long is closed gracefully (HTTP/2: GOAWAY).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_positive_duration)]
    pub idle_timeout: Duration,
    /// Memory for the requests in flight, in MiB: their bodies and an estimate of their parsed
    /// JSON. A request that alone needs more gets 413; one that finds no room in time, 503.
    #[arg(long, value_name = "MIB", default_value_t = (router::DEFAULT_MAX_INFLIGHT_BYTES / (1024 * 1024)) as u32,
          value_parser = clap::value_parser!(u32).range(8..=65536))]
    pub max_inflight_mib: u32,
    /// At most this many HTTPS connections at once; more wait in the listen backlog.
    #[arg(long, value_name = "N", default_value_t = https::DEFAULT_MAX_CONNECTIONS,
          value_parser = parse_max_connections)]
    pub max_connections: usize,
    /// Which admission requests are logged at info: `changes` (denials, patches, warnings,
    /// skips, exempt writes, errors; a plain allow at debug) or `all`.
    #[arg(long, value_enum, default_value = "changes")]
    pub request_log: router::RequestLog,
    /// Kubernetes Events on the object for each restore and denial (kube source only: with
    /// `--source files` there is no cluster to write them to).
    #[arg(long, value_enum, default_value = "on")]
    pub events: Switch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// The ServiceAccount Argo Rollouts' multicluster docs create in the Istio primary.
pub const DEFAULT_PRIMARY_WRITER: &str =
    "system:serviceaccount:argo-rollouts:argo-rollouts-istio-primary";

/// `KEY=VALUE`, a label selector of one equality.
fn parse_label(text: &str) -> Result<String, String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() && !value.contains('=') && !key.contains(',') => {
            Ok(text.to_string())
        }
        _ => Err(format!("expected KEY=VALUE, found '{text}'")),
    }
}

impl ServeArgs {
    /// Problems between flags that clap cannot see.
    pub fn check(&self) -> Result<(), String> {
        if self.istio_primary_secrets.0.is_some() && self.rollouts_cluster_secrets.0.is_some() {
            return Err(
                "expected at most one of --istio-primary-secrets (this is a Rollouts cluster) and \
                 --rollouts-cluster-secrets (this is the Istio primary), found both"
                    .to_string(),
            );
        }
        Ok(())
    }

    fn multicluster(&self) -> clusters::Multicluster {
        match (
            &self.istio_primary_secrets.0,
            &self.rollouts_cluster_secrets.0,
        ) {
            (Some(secrets), _) => clusters::Multicluster::IstioPrimary {
                secrets: secrets.clone(),
            },
            (None, Some(secrets)) => clusters::Multicluster::RolloutsClusters {
                secrets: secrets.clone(),
                label: self.rollouts_cluster_label.clone(),
            },
            (None, None) => clusters::Multicluster::Off,
        }
    }

    pub fn into_config(self) -> ServeConfig {
        let nonempty = |v: Vec<String>| v.into_iter().filter(|s| !s.is_empty()).collect();
        let multicluster = self.multicluster();
        let mut exempt_users: Vec<String> = nonempty(self.exempt_users);
        if self.rollouts_cluster_secrets.0.is_some()
            && !self.primary_writer.is_empty()
            && !exempt_users.contains(&self.primary_writer)
        {
            exempt_users.push(self.primary_writer);
        }
        ServeConfig {
            listen: self.listen,
            admin_listen: self.admin_listen,
            tls: match self.certificates.unwrap_or(CertificatesKind::Files) {
                CertificatesKind::Files => Certificates::Files(tls::CertFiles {
                    cert: self.tls_cert.unwrap_or_default(),
                    key: self.tls_key.unwrap_or_default(),
                }),
                CertificatesKind::SelfManaged => Certificates::SelfManaged(SelfCertConfig {
                    namespace: self.cert_namespace,
                    secret: self.cert_secret,
                    validating_webhook: self.validating_webhook,
                    mutating_webhook: self.mutating_webhook,
                    settings: SelfCertSettings {
                        sans: nonempty(self.cert_sans),
                        validity: self.cert_validity,
                        ca_validity: self.ca_validity,
                    },
                    check_interval: self.cert_check_interval,
                }),
            },
            client_ca: self.client_ca,
            source: SourceConfig {
                kind: self.source,
                manifests: self.manifests,
                namespaces: nonempty(self.namespaces),
                poll_interval: self.reload_interval,
                relist_deadline: self.relist_deadline,
                multicluster,
            },
            policy: Policy {
                mode: self.mode,
                reference_severity: self.reference_severity,
                breaks_severity: self.breaks_severity,
                // An empty name would exempt requests that carry no user at all.
                exempt_users,
                exempt_groups: nonempty(self.exempt_groups),
            },
            stale_after: self.stale_after,
            limits: router::Limits {
                request_timeout: self.request_timeout,
                confirm_budget: self.confirm_timeout,
                max_inflight_bytes: self.max_inflight_mib as usize * 1024 * 1024,
                ..router::Limits::default()
            },
            conn: https::ConnOptions {
                header_read_timeout: self.header_read_timeout,
                handshake_timeout: self.tls_handshake_timeout,
                drain_timeout: self.shutdown_timeout,
                idle_timeout: self.idle_timeout,
                max_connections: self.max_connections,
            },
            reload_interval: self.reload_interval,
            request_log: self.request_log,
            events: self.events == Switch::On,
        }
    }
}

/// Parses `500ms`, `60s`, `2m`, `1h` (one number, one unit; a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let invalid = || format!("expected a duration like 500ms, 60s, 2m or 1h, found {text:?}");
    let n: u64 = number.parse().map_err(|_| invalid())?;
    let millis_per = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(invalid()),
    };
    n.checked_mul(millis_per)
        .map(Duration::from_millis)
        .ok_or_else(invalid)
}

/// A duration above zero (a zero timeout would cut off every client).
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        Duration::ZERO => Err(format!("expected a duration above 0, found {text:?}")),
        d => Ok(d),
    }
}

fn parse_max_connections(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=https::MAX_CONNECTIONS_LIMIT).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a number of connections from 1 to {}, found {text:?}",
            https::MAX_CONNECTIONS_LIMIT
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in [
            "",
            "s",
            "1.5s",
            "-1s",
            "10 s",
            "3d",
            "99999999999999999999s",
            "1m30s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_duration("x").unwrap_err().contains("500ms"));
    }

    fn serve(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let mut argv = vec!["rollout-guard", "serve"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Serve(args) => *args,
            other => panic!("parsed as {other:?}"),
        })
    }

    #[test]
    fn serve_defaults_are_the_contract() {
        let a = serve(&["--tls-cert", "c", "--tls-key", "k"]).unwrap();
        assert_eq!(a.listen.to_string(), "0.0.0.0:8443");
        assert_eq!(a.admin_listen.to_string(), "0.0.0.0:8080");
        assert_eq!(a.source, SourceKind::Kube);
        assert_eq!(a.mode, Mode::Enforce);
        assert_eq!(a.reference_severity, ReferenceSeverity::Auto);
        assert_eq!(a.exempt_users, [DEFAULT_EXEMPT_USER]);
        assert!(a.exempt_groups.is_empty() && a.namespaces.is_empty());
        assert_eq!(a.stale_after, Duration::from_secs(60));
        assert_eq!(a.relist_deadline, Duration::from_secs(10));
        let config = a.into_config();
        assert!(config.limits.request_timeout < Duration::from_secs(4));
        assert_eq!(config.conn.header_read_timeout, Duration::from_secs(10));
        assert_eq!(config.conn.handshake_timeout, Duration::from_secs(10));
        assert_eq!(config.conn.idle_timeout, Duration::from_secs(60));
        assert_eq!(config.conn.drain_timeout, Duration::from_secs(25));
        assert_eq!(config.conn.max_connections, https::DEFAULT_MAX_CONNECTIONS);
        assert_eq!(
            config.limits.max_inflight_bytes,
            router::DEFAULT_MAX_INFLIGHT_BYTES
        );
        assert_eq!(config.policy.exempt_users, [DEFAULT_EXEMPT_USER]);
        assert!(config.events, "Events are on by default");
    }

    #[test]
    fn serve_flags() {
        let a = serve(&[
            "--tls-cert=c",
            "--tls-key=k",
            "--client-ca=ca",
            "--listen=127.0.0.1:9443",
            "--admin-listen=127.0.0.1:9080",
            "--source=files",
            "--manifests=m",
            "--namespace=a",
            "--namespace=b",
            "--mode=warn",
            "--reference-severity=deny",
            "--exempt-user=alice",
            "--exempt-user=",
            "--exempt-group=ops",
            "--stale-after=2m",
            "--header-read-timeout=1s",
            "--tls-handshake-timeout=2s",
            "--idle-timeout=500ms",
            "--max-connections=64",
            "--max-inflight-mib=32",
            "--events=off",
        ])
        .unwrap();
        assert_eq!(a.namespaces, ["a", "b"]);
        assert_eq!(a.mode, Mode::Warn);
        assert_eq!(a.reference_severity, ReferenceSeverity::Deny);
        let config = a.into_config();
        assert_eq!(config.policy.exempt_users, ["alice"]);
        assert_eq!(config.policy.exempt_groups, ["ops"]);
        assert_eq!(config.stale_after, Duration::from_secs(120));
        assert_eq!(config.source.kind, SourceKind::Files);
        assert!(config.client_ca.is_some());
        assert_eq!(config.conn.header_read_timeout, Duration::from_secs(1));
        assert_eq!(config.conn.handshake_timeout, Duration::from_secs(2));
        assert_eq!(config.conn.idle_timeout, Duration::from_millis(500));
        assert_eq!(config.conn.max_connections, 64);
        assert_eq!(config.limits.max_inflight_bytes, 32 * 1024 * 1024);
        assert!(!config.events);
    }

    #[test]
    fn self_certificates_need_no_files() {
        let config = serve(&[
            "--certificates",
            "self",
            "--cert-san",
            "rollout-guard.rollout-guard.svc",
            "--cert-validity",
            "30s",
            "--validating-webhook",
            "",
        ])
        .unwrap()
        .into_config();
        let Certificates::SelfManaged(c) = config.tls else {
            panic!("expected self-managed certificates")
        };
        assert_eq!(c.secret, "rollout-guard-certs");
        assert_eq!(c.settings.validity, Duration::from_secs(30));
        assert_eq!(c.settings.ca_validity, Duration::from_secs(87600 * 3600));
        assert_eq!(c.validating_webhook, "");
        assert_eq!(c.mutating_webhook, "rollout-guard");
    }

    #[test]
    fn serve_rejects_bad_flags() {
        assert!(
            serve(&["--tls-key", "k"]).is_err(),
            "--tls-cert is required"
        );
        assert!(serve(&["--certificates", "files", "--tls-key", "k"]).is_err());
        assert!(serve(&["--certificates", "self", "--cert-validity", "0s"]).is_err());
        assert!(serve(&["--tls-cert=c", "--tls-key=k", "--source=files"]).is_err());
        assert!(serve(&["--tls-cert=c", "--tls-key=k", "--stale-after=soon"]).is_err());
        assert!(serve(&["--tls-cert=c", "--tls-key=k", "--mode=audit"]).is_err());
        assert!(serve(&["--tls-cert=c", "--tls-key=k", "--header-read-timeout=0s"]).is_err());
        assert!(serve(&["--tls-cert=c", "--tls-key=k", "--idle-timeout=0ms"]).is_err());
        assert!(serve(&["--tls-cert=c", "--tls-key=k", "--max-connections=0"]).is_err());
        assert!(serve(&["--tls-cert=c", "--tls-key=k", "--max-connections=-1"]).is_err());
        assert!(serve(&["--tls-cert=c", "--tls-key=k", "--max-connections=2000000"]).is_err());
        assert!(serve(&["--tls-cert=c", "--tls-key=k", "--max-inflight-mib=1"]).is_err());
        assert!(serve(&["--tls-cert=c", "--tls-key=k", "--events=maybe"]).is_err());
    }

    #[test]
    fn lint_and_dev_certs_parse() {
        let cli =
            Cli::try_parse_from(["rollout-guard", "lint", "--output", "json", "a.yaml"]).unwrap();
        assert!(
            matches!(cli.command, Command::Lint { ref paths, output: lint::Output::Json } if paths == &["a.yaml"])
        );
        let cli =
            Cli::try_parse_from(["rollout-guard", "dev-certs", "--out", "x", "--force"]).unwrap();
        assert!(matches!(cli.command, Command::DevCerts { force: true, .. }));
    }

    #[test]
    fn audit_and_explain_parse() {
        let cli = Cli::try_parse_from([
            "rollout-guard",
            "audit",
            "--kubeconfig",
            "k",
            "--namespace",
            "shop",
            "--output",
            "json",
        ])
        .unwrap();
        assert!(
            matches!(cli.command, Command::Audit { ref namespaces, output: lint::Output::Json, .. } if namespaces == &["shop"])
        );
        let cli = Cli::try_parse_from([
            "rollout-guard",
            "explain",
            "shop/checkout",
            "--manifests",
            "a.yaml",
            "b/",
        ])
        .unwrap();
        assert!(
            matches!(cli.command, Command::Explain { ref target, ref manifests, .. } if target == "shop/checkout" && manifests.len() == 2)
        );
        assert!(Cli::try_parse_from([
            "rollout-guard",
            "explain",
            "shop/x",
            "--manifests",
            "a",
            "--kubeconfig",
            "k",
        ])
        .is_err());
    }
}
