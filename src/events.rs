//! Kubernetes Events for restores and denials (`serve --source kube`, `--events on`): Argo CD does
//! not show admission warnings, and Events on the object are where its users look.
//!
//! The decision only says what happened ([`Happening`], carried in the outcome); this module turns
//! it into an `events.k8s.io/v1` Event through kube-runtime's [`Recorder`], off the request path:
//! the handler offers it to a bounded channel ([`Emitter::offer`] never waits; a full channel drops
//! the Event and counts it) and one task publishes. Repeats of the same Event (same object, reason
//! and note) within the recorder's window become one Event with a growing `series.count`; each
//! object may cause at most [`BURST`] Events at once and one more every [`REFILL`].

use crate::admission::{Happening, Outcome, What};
use crate::metrics::Metrics;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// `reportingController` of every Event rollout-guard writes.
pub const REPORTING_CONTROLLER: &str = "rollout-guard";
/// The drift guard kept controller-owned values in a write.
pub const REASON_RESTORED: &str = "FieldsRestored";
/// rollout-guard refused a write.
pub const REASON_DENIED: &str = "Denied";
/// An allowed write that breaks a live Rollout (`breaks-rollout` at warn).
pub const REASON_BREAKS: &str = "BreaksRollout";
/// Events waiting to be published; more are dropped (and counted), never waited for.
pub const QUEUE: usize = 256;
/// Events one object may cause at once ...
pub const BURST: u32 = 10;
/// ... and one more per this interval.
pub const REFILL: Duration = Duration::from_secs(30);
/// The API server's bound on `note` (1 kB).
const NOTE_MAX: usize = 1024;
/// How long one publish may take before it is given up.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// kube-runtime's recorder counts repeats in a series for 6 minutes; a recorder per distinct Event
/// is kept as long, and at most this many.
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
const MAX_TRACKED: usize = 4096;

/// An Event ready for the recorder: what it is about and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub regarding: ObjectReference,
    pub warning: bool,
    pub reason: &'static str,
    pub action: &'static str,
    pub note: String,
}

/// Two Events with the same key are the same Event repeated (a series), not two.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DedupeKey {
    object: ObjectId,
    uid: Option<String>,
    reason: &'static str,
    note: String,
}

/// An object by apiVersion, kind, namespace and name: what the rate limit counts per.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectId {
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
}

impl Draft {
    pub fn key(&self) -> DedupeKey {
        DedupeKey {
            object: self.object(),
            uid: self.regarding.uid.clone(),
            reason: self.reason,
            note: self.note.clone(),
        }
    }

    pub fn object(&self) -> ObjectId {
        let r = &self.regarding;
        let text = |s: &Option<String>| s.clone().unwrap_or_default();
        ObjectId {
            api_version: text(&r.api_version),
            kind: text(&r.kind),
            namespace: text(&r.namespace),
            name: text(&r.name),
        }
    }

    fn event(&self) -> Event {
        Event {
            type_: if self.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: self.reason.to_string(),
            note: Some(self.note.clone()),
            action: self.action.to_string(),
            secondary: None,
        }
    }
}

/// The Event for a restore or a denial: on the object as the request names it, the rule ids and
/// the kept values in the note.
pub fn draft(h: &Happening) -> Draft {
    let r = &h.regarding;
    let regarding = ObjectReference {
        api_version: Some(r.api_version.clone()).filter(|s| !s.is_empty()),
        kind: Some(r.kind.clone()),
        namespace: Some(r.namespace.clone()).filter(|s| !s.is_empty()),
        name: Some(r.name.clone()),
        uid: r.uid.clone(),
        ..ObjectReference::default()
    };
    let who = if h.user.is_empty() {
        "an unknown user".to_string()
    } else {
        h.user.clone()
    };
    let (warning, reason, action, note) = match &h.what {
        What::Restored { kept } => (
            false,
            REASON_RESTORED,
            "RestoreFields",
            format!(
                "{} by {who}: rollout-guard {}",
                h.operation,
                unprefixed(kept)
            ),
        ),
        What::Denied { rules, message } => (
            true,
            REASON_DENIED,
            "Deny",
            format!(
                "{} by {who} denied [{}]: {message}",
                h.operation,
                rules.join(", ")
            ),
        ),
        What::Breaks { warnings } => (
            true,
            REASON_BREAKS,
            "Warn",
            format!(
                "{} by {who} allowed, but it breaks a live Rollout: {}",
                h.operation,
                unprefixed(warnings)
            ),
        ),
    };
    Draft {
        regarding,
        warning,
        reason,
        action,
        note: cut(note, NOTE_MAX),
    }
}

/// Warning lines joined for a note, without the `rollout-guard: ` each starts with.
fn unprefixed(lines: &[String]) -> String {
    let lines: Vec<&str> = lines
        .iter()
        .map(|l| l.strip_prefix("rollout-guard: ").unwrap_or(l))
        .collect();
    lines.join("; ")
}

/// At most `max` bytes, cut at a character boundary with an ellipsis.
fn cut(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    text
}

/// Per-object token buckets: [`BURST`] Events at once, one more per [`REFILL`].
#[derive(Debug)]
pub struct Limiter {
    buckets: HashMap<ObjectId, (f64, Instant)>,
    burst: u32,
    refill: Duration,
}

impl Limiter {
    pub fn new(burst: u32, refill: Duration) -> Self {
        Limiter {
            buckets: HashMap::new(),
            burst,
            refill,
        }
    }

    /// Takes a token for `object` if it has one.
    pub fn allow(&mut self, object: &ObjectId, now: Instant) -> bool {
        let (burst, refill) = (f64::from(self.burst), self.refill.as_secs_f64().max(1e-9));
        if self.buckets.len() >= MAX_TRACKED {
            // Objects whose bucket is full again are as good as new: forget them.
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() / refill < burst
            });
        }
        let (tokens, at) = self.buckets.entry(object.clone()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() / refill).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What was published recently, by [`DedupeKey`]: a repeat within the window continues the same
/// Event's series (through the same recorder) instead of creating another.
#[derive(Debug)]
pub struct Recent<T> {
    entries: HashMap<DedupeKey, (T, Instant)>,
    window: Duration,
    max: usize,
}

impl<T> Recent<T> {
    pub fn new(window: Duration, max: usize) -> Self {
        Recent {
            entries: HashMap::new(),
            window,
            max,
        }
    }

    /// The entry for `key` (made with `make` when new or expired), and whether it is a repeat.
    pub fn entry(&mut self, key: DedupeKey, now: Instant, make: impl FnOnce() -> T) -> (&T, bool) {
        let window = self.window;
        self.entries
            .retain(|_, (_, at)| now.duration_since(*at) < window);
        if self.entries.len() >= self.max && !self.entries.contains_key(&key) {
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        let repeat = self.entries.contains_key(&key);
        let slot = self.entries.entry(key).or_insert_with(|| (make(), now));
        slot.1 = now;
        (&slot.0, repeat)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The request side: offers an outcome's Event to the publishing task without waiting.
#[derive(Debug, Clone)]
pub struct Emitter {
    queue: mpsc::Sender<Happening>,
    metrics: Arc<Metrics>,
}

impl Emitter {
    /// An emitter and the receiving end of its queue (of `capacity` Events).
    pub fn channel(capacity: usize, metrics: Arc<Metrics>) -> (Self, mpsc::Receiver<Happening>) {
        let (queue, rx) = mpsc::channel(capacity.max(1));
        (Emitter { queue, metrics }, rx)
    }

    /// Queues the Event `outcome` calls for, if any; a full queue drops it (counted as `dropped`).
    pub fn offer(&self, outcome: &Outcome) {
        let Some(h) = &outcome.happening else {
            return;
        };
        // Full or closed (the publisher gone at shutdown): never wait, count it.
        if self.queue.try_send(h.clone()).is_err() {
            self.metrics.event(reason_of(h), "dropped");
        }
    }
}

fn reason_of(h: &Happening) -> &'static str {
    match h.what {
        What::Restored { .. } => REASON_RESTORED,
        What::Denied { .. } => REASON_DENIED,
        What::Breaks { .. } => REASON_BREAKS,
    }
}

/// rollout-guard as the reporter: `instance` is the pod's name (`POD_NAME`, set by the
/// Deployment from `metadata.name`), else the hostname.
pub fn reporter() -> Reporter {
    match std::env::var("POD_NAME") {
        Ok(pod) if !pod.trim().is_empty() => Reporter {
            controller: REPORTING_CONTROLLER.into(),
            instance: Some(pod),
        },
        _ => Reporter::from(REPORTING_CONTROLLER),
    }
}

/// Starts the publishing task; the emitter goes to the request handlers.
pub fn start(
    client: kube::Client,
    metrics: Arc<Metrics>,
) -> (Emitter, tokio::task::JoinHandle<()>) {
    let (emitter, rx) = Emitter::channel(QUEUE, metrics.clone());
    let task = tokio::spawn(publish(rx, client, reporter(), metrics));
    (emitter, task)
}

/// Publishes queued Events one at a time until the queue closes.
async fn publish(
    mut rx: mpsc::Receiver<Happening>,
    client: kube::Client,
    reporter: Reporter,
    metrics: Arc<Metrics>,
) {
    let mut limiter = Limiter::new(BURST, REFILL);
    let mut recent: Recent<Recorder> = Recent::new(SERIES_WINDOW, MAX_TRACKED);
    while let Some(h) = rx.recv().await {
        let draft = draft(&h);
        let now = Instant::now();
        if !limiter.allow(&draft.object(), now) {
            metrics.event(draft.reason, "rate_limited");
            continue;
        }
        let (recorder, repeat) = recent.entry(draft.key(), now, || {
            Recorder::new(client.clone(), reporter.clone())
        });
        let published = tokio::time::timeout(
            PUBLISH_TIMEOUT,
            recorder.publish(&draft.event(), &draft.regarding),
        )
        .await;
        let failure = match published {
            Ok(Ok(())) => {
                metrics.event(draft.reason, if repeat { "repeated" } else { "created" });
                continue;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {PUBLISH_TIMEOUT:?}"),
        };
        metrics.event(draft.reason, "failed");
        tracing::warn!(
            reason = draft.reason,
            kind = draft.regarding.kind.as_deref().unwrap_or(""),
            namespace = draft.regarding.namespace.as_deref().unwrap_or(""),
            name = draft.regarding.name.as_deref().unwrap_or(""),
            error = %failure,
            "cannot write the Event"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{handle, Context, Policy, Webhook};
    use crate::index::Index;
    use crate::model::Object;
    use serde_json::{json, Value};

    fn world() -> Index {
        let rollout = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "checkout", "namespace": "shop"},
            "spec": {"strategy": {"canary": {"canaryService": "c", "stableService": "s",
                "trafficRouting": {"istio": {"virtualService": {"name": "checkout", "routes": ["primary"]}}},
                "steps": [{"setWeight": 20}, {"pause": {}}]}}},
            "status": {"currentStepIndex": 1, "canary": {"weights": {"canary": {"weight": 20}, "stable": {"weight": 80}}}}});
        let vs = vs(80, 20);
        Index::from_objects([rollout, vs].map(|d| Object::parse(&d, "default").unwrap().unwrap()))
    }

    fn vs(stable: i64, canary: i64) -> Value {
        json!({"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
            "metadata": {"name": "checkout", "namespace": "shop", "uid": "vs-uid-1"},
            "spec": {"hosts": ["checkout"], "http": [{"name": "primary", "route": [
                {"destination": {"host": "s"}, "weight": stable}, {"destination": {"host": "c"}, "weight": canary}]}]}})
    }

    fn outcome(webhook: Webhook, request: Value) -> Outcome {
        let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request});
        let index = world();
        let policy = Policy::default();
        let ctx = Context {
            index: &index,
            policy: &policy,
            stale: false,
        };
        handle(webhook, &serde_json::to_vec(&body).unwrap(), &ctx).outcome
    }

    fn gitops_update(dry_run: bool) -> Outcome {
        outcome(
            Webhook::Mutate,
            json!({"uid": "u1", "kind": {"group": "networking.istio.io", "version": "v1beta1", "kind": "VirtualService"},
                "namespace": "shop", "name": "checkout", "operation": "UPDATE", "dryRun": dry_run,
                "userInfo": {"username": "system:serviceaccount:argocd:argocd-application-controller"},
                "object": vs(100, 0), "oldObject": vs(80, 20)}),
        )
    }

    fn wrong_route_create(dry_run: bool) -> Outcome {
        let rollout = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop", "uid": "drawn-by-the-api-server"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}},
                "strategy": {"canary": {"canaryService": "c", "stableService": "s",
                "trafficRouting": {"istio": {"virtualService": {"name": "checkout", "routes": ["primry"]}}},
                "steps": [{"setWeight": 20}]}}}});
        outcome(
            Webhook::Validate,
            json!({"uid": "u2", "kind": {"group": "argoproj.io", "version": "v1alpha1", "kind": "Rollout"},
                "namespace": "shop", "name": "web", "operation": "CREATE", "dryRun": dry_run,
                "userInfo": {"username": "alice"}, "object": rollout}),
        )
    }

    #[test]
    fn a_restore_is_a_normal_event_on_the_virtualservice_with_the_kept_weights() {
        let o = gitops_update(false);
        let d = draft(o.happening.as_ref().expect("a restore calls for an Event"));
        assert_eq!(d.reason, REASON_RESTORED);
        assert!(!d.warning);
        assert_eq!(
            d.regarding,
            ObjectReference {
                api_version: Some("networking.istio.io/v1beta1".into()),
                kind: Some("VirtualService".into()),
                namespace: Some("shop".into()),
                name: Some("checkout".into()),
                uid: Some("vs-uid-1".into()),
                ..ObjectReference::default()
            }
        );
        assert_eq!(
            d.note,
            "UPDATE by system:serviceaccount:argocd:argocd-application-controller: rollout-guard kept weights \
             stable=80 canary=20 on VirtualService shop/checkout route \"primary\" (Rollout shop/checkout, step 2/2); \
             request had 100/0"
        );
        let e = d.event();
        assert_eq!(
            (e.type_, e.action.as_str()),
            (EventType::Normal, "RestoreFields")
        );
    }

    #[test]
    fn an_allowed_write_that_breaks_a_live_rollout_is_a_warning_event() {
        let renamed = |route: &str| {
            let mut doc = vs(80, 20);
            doc["spec"]["http"][0]["name"] = json!(route);
            doc
        };
        let request = |dry_run: bool| {
            json!({"uid": "u3", "kind": {"group": "networking.istio.io", "version": "v1beta1", "kind": "VirtualService"},
                "namespace": "shop", "name": "checkout", "operation": "UPDATE", "dryRun": dry_run,
                "userInfo": {"username": "alice"}, "object": renamed("main"), "oldObject": vs(80, 20)})
        };
        let o = outcome(Webhook::Validate, request(false));
        let d = draft(
            o.happening
                .as_ref()
                .expect("a breaking write calls for an Event"),
        );
        assert_eq!(
            (d.reason, d.warning, d.action),
            (REASON_BREAKS, true, "Warn")
        );
        assert_eq!(d.regarding.uid.as_deref(), Some("vs-uid-1"));
        assert!(
            d.note
                .starts_with("UPDATE by alice allowed, but it breaks a live Rollout: ")
                && d.note.contains("[breaks-rollout]")
                && d.note.contains("Rollout shop/checkout"),
            "{}",
            d.note
        );
        assert!(outcome(Webhook::Validate, request(true))
            .happening
            .is_none());
        let unchanged = json!({"uid": "u4", "kind": {"group": "networking.istio.io", "version": "v1beta1", "kind": "VirtualService"},
            "namespace": "shop", "name": "checkout", "operation": "UPDATE",
            "userInfo": {"username": "alice"}, "object": vs(80, 20), "oldObject": vs(80, 20)});
        assert!(outcome(Webhook::Validate, unchanged).happening.is_none());
    }

    #[test]
    fn a_denied_create_is_a_warning_on_the_object_as_named_without_a_uid() {
        let o = wrong_route_create(false);
        let d = draft(o.happening.as_ref().expect("a denial calls for an Event"));
        assert_eq!(d.reason, REASON_DENIED);
        assert!(d.warning);
        assert_eq!(d.regarding.kind.as_deref(), Some("Rollout"));
        assert_eq!(
            d.regarding.api_version.as_deref(),
            Some("argoproj.io/v1alpha1")
        );
        assert_eq!(d.regarding.name.as_deref(), Some("web"));
        assert_eq!(
            d.regarding.uid, None,
            "a denied CREATE stores no object: the uid the API server drew is never used"
        );
        assert!(
            d.note.starts_with("CREATE by alice denied [http-route-not-found]: rollout-guard denied Rollout shop/web"),
            "{}",
            d.note
        );
        assert!(d.note.contains("\"primry\""), "{}", d.note);
    }

    #[test]
    fn a_denied_update_names_the_stored_object_by_its_uid() {
        let rollout = |weight: i64| {
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                "metadata": {"name": "checkout", "namespace": "shop", "uid": "ro-uid-1"},
                "spec": {"selector": {"matchLabels": {"app": "c"}}, "template": {"metadata": {"labels": {"app": "c"}}},
                    "strategy": {"canary": {"canaryService": "c", "stableService": "s",
                    "trafficRouting": {"istio": {"virtualService": {"name": "checkout", "routes": ["primary"]}}},
                    "steps": [{"setWeight": weight}]}}}})
        };
        let o = outcome(
            Webhook::Validate,
            json!({"uid": "u4", "kind": {"group": "argoproj.io", "version": "v1alpha1", "kind": "Rollout"},
                "namespace": "shop", "name": "checkout", "operation": "UPDATE",
                "userInfo": {"username": "alice"}, "object": rollout(200), "oldObject": rollout(20)}),
        );
        let d = draft(o.happening.as_ref().expect("a denial calls for an Event"));
        assert_eq!(
            (d.reason, d.regarding.uid.as_deref()),
            (REASON_DENIED, Some("ro-uid-1"))
        );
        assert!(
            d.note
                .starts_with("UPDATE by alice denied [set-weight-range]"),
            "{}",
            d.note
        );
    }

    #[test]
    fn dry_runs_and_plain_answers_call_for_no_event() {
        assert!(gitops_update(true).happening.is_none());
        assert!(wrong_route_create(true).happening.is_none());
        let unchanged = outcome(
            Webhook::Mutate,
            json!({"uid": "u3", "kind": {"group": "networking.istio.io", "version": "v1beta1", "kind": "VirtualService"},
                "namespace": "shop", "name": "checkout", "operation": "UPDATE",
                "userInfo": {"username": "bob"}, "object": vs(80, 20), "oldObject": vs(80, 20)}),
        );
        assert!(unchanged.happening.is_none());
    }

    #[test]
    fn the_dedupe_key_is_object_reason_and_note() {
        let a = draft(gitops_update(false).happening.as_ref().unwrap());
        let b = draft(gitops_update(false).happening.as_ref().unwrap());
        assert_eq!(a.key(), b.key());
        let mut other_step = a.clone();
        other_step.note = other_step.note.replace("step 2/2", "step 1/2");
        assert_ne!(a.key(), other_step.key());
        assert_eq!(a.object(), other_step.object());
        let mut recreated = a.clone();
        recreated.regarding.uid = Some("vs-uid-2".into());
        assert_ne!(a.key(), recreated.key());
    }

    #[test]
    fn long_notes_are_cut_to_the_api_limit() {
        let long = "é".repeat(2000);
        let cut = cut(long, NOTE_MAX);
        assert!(cut.len() <= NOTE_MAX && cut.ends_with('…'), "{}", cut.len());
        assert_eq!(super::cut("short".into(), NOTE_MAX), "short");
    }

    #[test]
    fn the_limiter_allows_a_burst_per_object_then_one_per_interval() {
        let mut l = Limiter::new(3, Duration::from_secs(30));
        let a = draft(gitops_update(false).happening.as_ref().unwrap()).object();
        let b = draft(wrong_route_create(false).happening.as_ref().unwrap()).object();
        let t0 = Instant::now();
        assert_eq!((0..5).filter(|_| l.allow(&a, t0)).count(), 3);
        assert!(l.allow(&b, t0), "another object has its own bucket");
        assert!(!l.allow(&a, t0 + Duration::from_secs(29)));
        assert!(l.allow(&a, t0 + Duration::from_secs(31)));
        assert!(!l.allow(&a, t0 + Duration::from_secs(32)));
    }

    #[test]
    fn repeats_within_the_window_continue_the_series() {
        let mut recent: Recent<u32> = Recent::new(Duration::from_secs(60), 2);
        let a = draft(gitops_update(false).happening.as_ref().unwrap()).key();
        let b = draft(wrong_route_create(false).happening.as_ref().unwrap()).key();
        let t0 = Instant::now();
        assert_eq!(recent.entry(a.clone(), t0, || 1), (&1, false));
        assert_eq!(
            recent.entry(a.clone(), t0 + Duration::from_secs(59), || 2),
            (&1, true)
        );
        assert_eq!(
            recent.entry(b.clone(), t0 + Duration::from_secs(60), || 3),
            (&3, false)
        );
        // Past the window the same Event starts a new series.
        assert_eq!(
            recent.entry(a.clone(), t0 + Duration::from_secs(200), || 4),
            (&4, false)
        );
        let mut third = b.clone();
        third.note.push('!');
        recent.entry(third, t0 + Duration::from_secs(201), || 5);
        assert_eq!(recent.len(), 2, "bounded: the oldest goes");
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        let metrics = Arc::new(Metrics::new());
        let (emitter, mut rx) = Emitter::channel(1, metrics.clone());
        let o = gitops_update(false);
        emitter.offer(&o);
        emitter.offer(&o);
        emitter.offer(&gitops_update(true));
        let text = metrics.encode(
            &Index::new(),
            &crate::source::SourceStatus::new(Duration::from_secs(60)),
        );
        assert!(
            text.contains(
                r#"rollout_guard_events_total{reason="FieldsRestored",result="dropped"} 1"#
            ),
            "{text}"
        );
        assert_eq!(rx.recv().await.as_ref(), o.happening.as_ref());
        assert!(rx.try_recv().is_err(), "the dry run was never queued");
    }
}
