//! Prometheus metrics (`/metrics` on the admin port), with typed label sets whose values are
//! bounded by construction: kinds are the four kinds or `other`, operations `CREATE`, `UPDATE`
//! or `other`, rules come from the rule catalogue (`&'static str`).

use crate::admission::{Decision, Outcome, Webhook};
use crate::index::Index;
use crate::model::Kind;
use crate::source::SourceStatus;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::fmt::Write;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A request's kind as a label: one of the four kinds or `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KindLabel {
    Known(Kind),
    Other,
}

impl KindLabel {
    pub fn from_name(name: &str) -> Self {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .map_or(KindLabel::Other, KindLabel::Known)
    }
}

impl EncodeLabelValue for KindLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            KindLabel::Known(k) => k.as_str(),
            KindLabel::Other => "other",
        })
    }
}

/// `CREATE`, `UPDATE` or `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationLabel {
    Create,
    Update,
    Other,
}

impl OperationLabel {
    pub fn from_name(name: &str) -> Self {
        match name {
            "CREATE" => OperationLabel::Create,
            "UPDATE" => OperationLabel::Update,
            _ => OperationLabel::Other,
        }
    }
}

impl EncodeLabelValue for OperationLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            OperationLabel::Create => "CREATE",
            OperationLabel::Update => "UPDATE",
            OperationLabel::Other => "other",
        })
    }
}

/// How a request ended: the admission decision, or an HTTP-level refusal before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecisionLabel {
    Allowed,
    Patched,
    Denied,
    /// HTTP 400: no AdmissionReview with a uid.
    Invalid,
    /// HTTP 413.
    TooLarge,
    /// HTTP 408: the body did not arrive in time.
    Timeout,
    /// HTTP 400: the body could not be read (connection error).
    BadBody,
    /// HTTP 503: no room in the in-flight memory budget within the request timeout.
    Busy,
}

impl From<Decision> for DecisionLabel {
    fn from(d: Decision) -> Self {
        match d {
            Decision::Allowed => DecisionLabel::Allowed,
            Decision::Patched => DecisionLabel::Patched,
            Decision::Denied => DecisionLabel::Denied,
            Decision::Invalid => DecisionLabel::Invalid,
        }
    }
}

impl EncodeLabelValue for DecisionLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            DecisionLabel::Allowed => "allowed",
            DecisionLabel::Patched => "patched",
            DecisionLabel::Denied => "denied",
            DecisionLabel::Invalid => "invalid",
            DecisionLabel::TooLarge => "too_large",
            DecisionLabel::Timeout => "timeout",
            DecisionLabel::BadBody => "bad_body",
            DecisionLabel::Busy => "busy",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    pub webhook: &'static str,
    pub kind: KindLabel,
    pub operation: OperationLabel,
    pub decision: DecisionLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct WebhookLabels {
    pub webhook: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RuleLabels {
    pub rule: &'static str,
}

/// A cluster the kube source reads: `local`, or a remote cluster's name (at most
/// [`crate::source::clusters::MAX_REMOTE_CLUSTERS`] of them, so the label stays bounded).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ClusterLabels {
    pub cluster: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: KindLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct EventLabels {
    pub reason: &'static str,
    pub result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FindingLabels {
    pub rule: &'static str,
    pub severity: &'static str,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~3.3 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
}

/// Every metric rollout-guard exports. Cheap to update from any thread.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    denials: Family<RuleLabels, Counter>,
    duration: Family<WebhookLabels, Histogram, fn() -> Histogram>,
    restores: Family<KindLabels, Counter>,
    skips: Family<KindLabels, Counter>,
    exempt: Family<WebhookLabels, Counter>,
    degraded: Family<ReasonLabels, Counter>,
    confirmations: Family<ResultLabels, Counter>,
    tls_reloads: Family<ResultLabels, Counter>,
    source_errors: Counter,
    feed_restarts: Family<KindLabels, Counter>,
    index_objects: Family<KindLabels, Gauge>,
    stale: Gauge,
    broken_seconds: Gauge<f64, AtomicU64>,
    tls_expiry: Gauge,
    events: Family<EventLabels, Counter>,
    findings: Family<FindingLabels, Gauge>,
    log_lines_dropped: Counter,
    cluster_ready: Family<ClusterLabels, Gauge>,
    /// What `log_lines_dropped` last took from the log writer's own count.
    log_lines_dropped_seen: std::sync::atomic::AtomicU64,
}

/// The log writer's count of lines it dropped (its queue was full), set once by the binary.
static LOG_DROPS: std::sync::OnceLock<Box<dyn Fn() -> u64 + Send + Sync>> =
    std::sync::OnceLock::new();

/// Makes `rollout_guard_log_lines_dropped_total` follow `dropped` (the non-blocking log writer's
/// counter). Only the first call counts.
pub fn follow_log_drops(dropped: impl Fn() -> u64 + Send + Sync + 'static) {
    let _ = LOG_DROPS.set(Box::new(dropped));
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("rollout_guard");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "admission_requests",
            "Admission requests by webhook, kind, operation and decision",
            requests.clone(),
        );
        let denials = Family::<RuleLabels, Counter>::default();
        registry.register(
            "admission_denials",
            "Denials (or would-be denials in warn mode) by rule",
            denials.clone(),
        );
        let duration = Family::<WebhookLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register_with_unit(
            "admission_duration",
            "Time from the request head to the answer, body reading included",
            prometheus_client::registry::Unit::Seconds,
            duration.clone(),
        );
        let restores = Family::<KindLabels, Counter>::default();
        registry.register(
            "drift_restores",
            "Controller-owned values restored by the mutating webhook, by kind",
            restores.clone(),
        );
        let skips = Family::<KindLabels, Counter>::default();
        registry.register(
            "admission_skips",
            "Requests for objects with rollout-guard.io/skip=true, by kind",
            skips.clone(),
        );
        let exempt = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "admission_exempt",
            "Requests from exempt users or groups, by webhook",
            exempt.clone(),
        );
        let degraded = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "admission_degraded",
            "Decisions that could not be made as usual, each also a warning: old-object-unreadable (no \
             ratchet), unconfirmed (a cross-object denial became warnings)",
            degraded.clone(),
        );
        let confirmations = Family::<ResultLabels, Counter>::default();
        registry.register(
            "admission_confirmations",
            "Cross-object denials read again from the API server: confirmed, cleared (the cache was \
             behind), failed",
            confirmations.clone(),
        );
        let tls_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "tls_reloads",
            "Serving certificate reloads (success) and rejected new pairs (failure)",
            tls_reloads.clone(),
        );
        let source_errors = Counter::default();
        registry.register(
            "source_errors",
            "Manifests, folders or watched objects the state source could not read",
            source_errors.clone(),
        );
        let feed_restarts = Family::<KindLabels, Counter>::default();
        registry.register(
            "feed_restarts",
            "Watchers torn down and started again (no relist within --relist-deadline), by kind",
            feed_restarts.clone(),
        );
        let index_objects = Family::<KindLabels, Gauge>::default();
        registry.register(
            "index_objects",
            "Objects in the in-memory index, by kind",
            index_objects.clone(),
        );
        let stale = Gauge::default();
        registry.register(
            "state_stale",
            "1 while the cluster state is stale (broken longer than --stale-after)",
            stale.clone(),
        );
        let broken_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "state_broken_seconds",
            "How long the longest-broken watch has been broken (0 when none is)",
            broken_seconds.clone(),
        );
        let cluster_ready = Family::<ClusterLabels, Gauge>::default();
        registry.register(
            "cluster_ready",
            "1 when every feed of the cluster (local, or a remote one) has listed and none is broken",
            cluster_ready.clone(),
        );
        let log_lines_dropped = Counter::default();
        registry.register(
            "log_lines_dropped",
            "Log lines dropped because the log writer's queue was full (requests never wait for logs)",
            log_lines_dropped.clone(),
        );
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "events",
            "Kubernetes Events for restores (FieldsRestored) and denials (Denied), by result: created, \
             repeated (a series), rate_limited, dropped (queue full), failed",
            events.clone(),
        );
        let findings = Family::<FindingLabels, Gauge>::default();
        registry.register(
            "findings",
            "Findings of the lint rules over the live state, by rule and severity (recomputed as objects \
             change)",
            findings.clone(),
        );
        let tls_expiry = Gauge::default();
        registry.register(
            "tls_certificate_expiry_timestamp_seconds",
            "When the serving certificate in use expires (Unix time)",
            tls_expiry.clone(),
        );
        Metrics {
            registry,
            events,
            findings,
            requests,
            denials,
            duration,
            restores,
            skips,
            exempt,
            degraded,
            confirmations,
            tls_reloads,
            source_errors,
            feed_restarts,
            index_objects,
            stale,
            broken_seconds,
            log_lines_dropped,
            cluster_ready,
            log_lines_dropped_seen: std::sync::atomic::AtomicU64::new(0),
            tls_expiry,
        }
    }

    /// Records one answered admission request.
    pub fn observe(&self, outcome: &Outcome, elapsed: Duration) {
        let webhook = outcome.webhook.as_str();
        let kind = KindLabel::from_name(&outcome.kind);
        self.requests
            .get_or_create(&RequestLabels {
                webhook,
                kind,
                operation: OperationLabel::from_name(&outcome.operation),
                decision: outcome.decision.into(),
            })
            .inc();
        for rule in &outcome.denied_rules {
            self.denials.get_or_create(&RuleLabels { rule }).inc();
        }
        if outcome.restores > 0 {
            self.restores
                .get_or_create(&KindLabels { kind })
                .inc_by(u64::try_from(outcome.restores).unwrap_or(u64::MAX));
        }
        if outcome.skipped {
            self.skips.get_or_create(&KindLabels { kind }).inc();
        }
        if outcome.exempt {
            self.exempt.get_or_create(&WebhookLabels { webhook }).inc();
        }
        for reason in &outcome.degraded {
            self.degraded.get_or_create(&ReasonLabels { reason }).inc();
        }
        if let Some(c) = outcome.confirmation {
            self.confirmations
                .get_or_create(&ResultLabels { result: c.as_str() })
                .inc();
        }
        self.duration
            .get_or_create(&WebhookLabels { webhook })
            .observe(elapsed.as_secs_f64());
    }

    /// Records a request refused before the admission core saw it (413, 408, 503, unreadable body).
    pub fn observe_refused(&self, webhook: Webhook, decision: DecisionLabel, elapsed: Duration) {
        let webhook = webhook.as_str();
        self.requests
            .get_or_create(&RequestLabels {
                webhook,
                kind: KindLabel::Other,
                operation: OperationLabel::Other,
                decision,
            })
            .inc();
        self.duration
            .get_or_create(&WebhookLabels { webhook })
            .observe(elapsed.as_secs_f64());
    }

    pub fn tls_reload(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.tls_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    pub fn event(&self, reason: &'static str, result: &'static str) {
        self.events
            .get_or_create(&EventLabels { reason, result })
            .inc();
    }

    /// Sets the findings gauge of one rule and severity.
    pub fn set_findings(&self, rule: &'static str, severity: &'static str, count: usize) {
        self.findings
            .get_or_create(&FindingLabels { rule, severity })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// The expiry (Unix seconds) of the serving certificate now in use.
    pub fn tls_certificate_expiry(&self, not_after: i64) {
        self.tls_expiry.set(not_after);
    }

    pub fn source_error(&self) {
        self.source_errors.inc();
    }

    pub fn feed_restart(&self, kind: Kind) {
        self.feed_restarts
            .get_or_create(&KindLabels {
                kind: KindLabel::Known(kind),
            })
            .inc();
    }

    /// Refreshes the gauges that describe the state, then encodes everything (OpenMetrics text).
    pub fn encode(&self, index: &Index, status: &SourceStatus) -> String {
        for kind in Kind::ALL {
            self.index_objects
                .get_or_create(&KindLabels {
                    kind: KindLabel::Known(kind),
                })
                .set(i64::try_from(index.count(kind)).unwrap_or(i64::MAX));
        }
        self.stale.set(i64::from(status.is_stale()));
        // Clusters come and go with their Secrets: only the ones followed now are reported.
        self.cluster_ready.clear();
        for (cluster, ready) in status.clusters() {
            self.cluster_ready
                .get_or_create(&ClusterLabels { cluster })
                .set(i64::from(ready));
        }
        self.broken_seconds
            .set(status.broken_for().map_or(0.0, |d| d.as_secs_f64()));
        if let Some(dropped) = LOG_DROPS.get() {
            let now = dropped();
            let seen = self
                .log_lines_dropped_seen
                .fetch_max(now, std::sync::atomic::Ordering::Relaxed);
            self.log_lines_dropped.inc_by(now.saturating_sub(seen));
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            let _ = writeln!(out, "# encoding failed: {e}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(kind: &str, operation: &str, decision: Decision) -> Outcome {
        Outcome {
            webhook: Webhook::Validate,
            decision,
            uid: "u".into(),
            kind: kind.into(),
            namespace: "ns".into(),
            name: "n".into(),
            operation: operation.into(),
            user: "u".into(),
            dry_run: false,
            denied_rules: vec!["http-route-not-found"],
            restores: 2,
            exempt: false,
            skipped: true,
            degraded: vec!["unconfirmed"],
            confirmation: Some(crate::admission::Confirmation::Failed),
            warnings: 0,
            error: None,
            happening: None,
        }
    }

    #[test]
    fn labels_are_bounded_and_encoded() {
        let m = Metrics::new();
        m.observe(
            &outcome("Rollout", "CREATE", Decision::Denied),
            Duration::from_micros(30),
        );
        m.observe(
            &outcome("apps/Deployment", "DELETE", Decision::Allowed),
            Duration::from_millis(1),
        );
        m.observe_refused(Webhook::Mutate, DecisionLabel::TooLarge, Duration::ZERO);
        m.tls_reload(false);
        m.source_error();
        m.feed_restart(Kind::DestinationRule);
        let status = SourceStatus::new(Duration::from_secs(60));
        let text = m.encode(&Index::new(), &status);
        for line in [
            r#"rollout_guard_admission_requests_total{webhook="validate",kind="Rollout",operation="CREATE",decision="denied"} 1"#,
            r#"rollout_guard_admission_requests_total{webhook="validate",kind="other",operation="other",decision="allowed"} 1"#,
            r#"rollout_guard_admission_requests_total{webhook="mutate",kind="other",operation="other",decision="too_large"} 1"#,
            r#"rollout_guard_admission_denials_total{rule="http-route-not-found"} 2"#,
            r#"rollout_guard_drift_restores_total{kind="Rollout"} 2"#,
            r#"rollout_guard_admission_skips_total{kind="other"} 1"#,
            r#"rollout_guard_tls_reloads_total{result="failure"} 1"#,
            r#"rollout_guard_admission_degraded_total{reason="unconfirmed"} 2"#,
            r#"rollout_guard_admission_confirmations_total{result="failed"} 2"#,
            r#"rollout_guard_source_errors_total 1"#,
            r#"rollout_guard_feed_restarts_total{kind="DestinationRule"} 1"#,
            r#"rollout_guard_index_objects{kind="VirtualService"} 0"#,
            r#"rollout_guard_state_stale 0"#,
            r#"rollout_guard_tls_certificate_expiry_timestamp_seconds 0"#,
            r#"rollout_guard_admission_duration_seconds_count{webhook="validate"} 2"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
