//! The admission routes. This layer only translates: it reads the body (bounded in size and
//! time), hands it to [`admission::handle`] with the index and the policy, and writes the
//! [`Reply`](admission::Reply) back; it logs and counts what happened. No decision is made here.
//!
//! - `POST /validate`, `POST /mutate`; other paths 404, other methods 405.
//! - A body over `max_body_bytes` gets 413: at once when `Content-Length` says so, otherwise as
//!   soon as the streamed body passes the limit.
//! - A refused body the client is still sending (413, or 503 while it is read) is read on and
//!   discarded in the background after the answer is sent, bounded in bytes and time (see
//!   [`linger`]): cutting it off at once makes HTTP/1.1 close the connection on unread bytes
//!   (a TCP reset that a client still writing sees as a broken pipe, not as the answer) and
//!   HTTP/2 reset the stream while the client uploads (RFC 9113 §8.1 allows it after the answer,
//!   but clients such as curl 7.88 then fail the transfer without showing the status).
//! - A body that does not arrive within `request_timeout` gets 408; one whose stream breaks, 400.
//! - Memory: bodies being read and decided share a budget (`max_inflight_bytes`) that covers their
//!   bytes and an estimate of their parsed JSON (a 7 MiB `[0,0,…]` decodes to about 120 MiB of
//!   `serde_json::Value`s). A request takes its share before it grows (the declared length, then
//!   each chunk, then the estimate before parsing) and gives it back when answered: one whose
//!   estimate alone exceeds the budget gets 413; one that cannot get its share within
//!   `request_timeout` gets 503.

use crate::admission::confirm::LiveRead;
use crate::admission::{self, Decision, Policy, Webhook};
use crate::index::SharedIndex;
use crate::metrics::{DecisionLabel, Metrics};
use crate::source::SourceStatus;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};

/// About 7 MiB: an UPDATE review carries two objects of up to ~1.5 MiB each, JSON-escaped.
pub const DEFAULT_MAX_BODY_BYTES: usize = 7 * 1024 * 1024;
/// Under the webhooks' `timeoutSeconds: 5`, leaving the API server time to read the answer.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_millis(3500);
/// Well inside the answer deadline: a denial is confirmed or turned into warnings in time.
pub const DEFAULT_CONFIRM_BUDGET: Duration = Duration::from_secs(1);
/// Memory for the requests in flight (bodies and their parsed JSON, estimated): with the state
/// of 50,000 objects and the runtime this stays well under the Deployment's 256 MiB limit.
pub const DEFAULT_MAX_INFLIGHT_BYTES: usize = 96 * 1024 * 1024;

/// Estimated heap bytes per JSON value (a `serde_json::Value` is 32 bytes; arrays grow by
/// doubling) and per object member (a `String` key, its value and the map's share).
const VALUE_COST: usize = 48;
const MEMBER_COST: usize = 128;

/// Bounds on one request, and on all of them together.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// Budget shared by the requests being read and decided (see the module docs).
    pub max_inflight_bytes: usize,
    /// Time to read a denial's objects again from the API server (`--confirm-timeout`).
    pub confirm_budget: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_inflight_bytes: DEFAULT_MAX_INFLIGHT_BYTES,
            confirm_budget: DEFAULT_CONFIRM_BUDGET,
        }
    }
}

/// An upper estimate of the memory `body` takes once parsed, its own bytes included: every `,`,
/// `[` and `{` may start a value and every `:` an object member (inside strings too, which only
/// overestimates).
pub fn decoded_estimate(body: &[u8]) -> usize {
    let (mut values, mut members) = (0usize, 0usize);
    // Branch-free byte counts in blocks whose sums fit a u8, so that the compiler can count a
    // vector register's worth of bytes at a time: a `match` per byte took about a tenth of
    // `serve`'s CPU under load.
    for block in body.chunks(255) {
        let (mut v, mut m) = (0u8, 0u8);
        for &b in block {
            v += u8::from(b == b',') | u8::from(b == b'[') | u8::from(b == b'{');
            m += u8::from(b == b':');
        }
        values += usize::from(v);
        members += usize::from(m);
    }
    body.len()
        .saturating_add(values.saturating_mul(VALUE_COST))
        .saturating_add(members.saturating_mul(MEMBER_COST))
}

fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}

/// What the handlers read.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

struct Shared {
    index: SharedIndex,
    /// Reads objects from the API server to confirm a cross-object denial (kube source only).
    live: Option<Arc<dyn LiveRead>>,
    /// Queues the Events of restores and denials (kube source, `--events on`).
    events: Option<crate::events::Emitter>,
    policy: Policy,
    status: Arc<SourceStatus>,
    metrics: Arc<Metrics>,
    limits: Limits,
    request_log: RequestLog,
    /// The in-flight memory budget, in KiB.
    budget: Semaphore,
    budget_kib: usize,
}

impl AppState {
    pub fn new(
        index: SharedIndex,
        policy: Policy,
        status: Arc<SourceStatus>,
        metrics: Arc<Metrics>,
        limits: Limits,
    ) -> Self {
        let budget_kib = kib(limits.max_inflight_bytes).clamp(1, Semaphore::MAX_PERMITS);
        AppState(Arc::new(Shared {
            index,
            live: None,
            events: None,
            policy,
            status,
            metrics,
            limits,
            request_log: RequestLog::default(),
            budget: Semaphore::new(budget_kib),
            budget_kib,
        }))
    }
}

/// Which admission requests get a log line at info level (the others at debug).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RequestLog {
    /// Denials, patches, warnings, break-glass skips, exempt writes and errors: what changed or
    /// was refused. A plain allowed request is logged at debug.
    #[default]
    Changes,
    /// Every request.
    All,
}

impl RequestLog {
    fn at_info(self, o: &admission::Outcome) -> bool {
        self == RequestLog::All
            || o.decision != Decision::Allowed
            || o.warnings > 0
            || o.skipped
            || o.exempt
            || o.error.is_some()
    }
}

impl AppState {
    /// Log lines per request: see [`RequestLog`].
    pub fn with_request_log(self, request_log: RequestLog) -> Self {
        match Arc::try_unwrap(self.0) {
            Ok(mut shared) => {
                shared.request_log = request_log;
                AppState(Arc::new(shared))
            }
            Err(shared) => AppState(shared),
        }
    }

    /// Confirm cross-object denials with `live` before they are given (the kube source's reader).
    pub fn with_live_reader(self, live: Option<Arc<dyn LiveRead>>) -> Self {
        match Arc::try_unwrap(self.0) {
            Ok(mut shared) => {
                shared.live = live;
                AppState(Arc::new(shared))
            }
            Err(shared) => AppState(shared),
        }
    }
}

impl AppState {
    /// Record restores and denials as Events through `events` (off the request path).
    pub fn with_events(self, events: Option<crate::events::Emitter>) -> Self {
        match Arc::try_unwrap(self.0) {
            Ok(mut shared) => {
                shared.events = events;
                AppState(Arc::new(shared))
            }
            Err(shared) => AppState(shared),
        }
    }
}

/// The admission router (served over TLS by [`super::https`]).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .route("/mutate", post(mutate))
        .fallback(not_found)
        .with_state(state)
}

async fn validate(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    admit(&state, Webhook::Validate, &headers, body).await
}

async fn mutate(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    admit(&state, Webhook::Mutate, &headers, body).await
}

async fn not_found() -> Response {
    text(
        StatusCode::NOT_FOUND,
        "not found: rollout-guard serves POST /validate and POST /mutate\n".into(),
    )
}

enum BodyError {
    TooLarge,
    /// The body with its parsed JSON would take more than the whole budget.
    TooComplex(usize),
    Timeout,
    /// No room in the budget within the request timeout.
    Busy,
    Broken(String),
}

/// A request's share of the in-flight memory budget, grown as the body arrives.
struct Share<'a> {
    budget: &'a Semaphore,
    budget_kib: usize,
    permit: Option<SemaphorePermit<'a>>,
    kib: usize,
    deadline: tokio::time::Instant,
}

impl<'a> Share<'a> {
    /// Grows the share to cover `bytes`, waiting for room until the deadline.
    async fn cover(&mut self, bytes: usize) -> Result<(), BodyError> {
        let want = kib(bytes);
        if want > self.budget_kib {
            return Err(BodyError::TooComplex(bytes));
        }
        if want <= self.kib {
            return Ok(());
        }
        let more = u32::try_from(want - self.kib).map_err(|_| BodyError::TooComplex(bytes))?;
        let permit =
            match tokio::time::timeout_at(self.deadline, self.budget.acquire_many(more)).await {
                Ok(Ok(p)) => p,
                Ok(Err(_)) | Err(_) => return Err(BodyError::Busy),
            };
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
        self.kib = want;
        Ok(())
    }
}

async fn read_body<'a>(
    headers: &HeaderMap,
    body: Body,
    shared: &'a Shared,
) -> Result<(Bytes, Share<'a>), BodyError> {
    let limits = shared.limits;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        linger(body, &limits);
        return Err(BodyError::TooLarge);
    }
    let deadline = tokio::time::Instant::now() + limits.request_timeout;
    let mut share = Share {
        budget: &shared.budget,
        budget_kib: shared.budget_kib,
        permit: None,
        kib: 0,
        deadline,
    };
    let declared = declared.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
    if let Err(err) = share.cover(declared).await {
        linger(body, &limits);
        return Err(err);
    }
    let mut buf = Vec::with_capacity(declared);
    let mut body = body;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(BodyError::Timeout),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(BodyError::Broken(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            let len = buf.len().saturating_add(data.len());
            if len > limits.max_body_bytes {
                linger(body, &limits);
                return Err(BodyError::TooLarge);
            }
            if let Err(err) = share.cover(len).await {
                linger(body, &limits);
                return Err(err);
            }
            buf.extend_from_slice(&data);
        }
    }
    // Before parsing: room for what the parsed JSON will take.
    share.cover(decoded_estimate(&buf)).await?;
    Ok((Bytes::from(buf), share))
}

/// After a refusal, how much more of a body is read and discarded: at most twice the limit, for
/// at most [`LINGER_TIME`], and no longer than [`LINGER_IDLE`] without a byte. (A client that
/// declared more is read up to the bound all the same: clients that stop sending once they see a
/// final status, as curl does, then get the answer before the stream or connection is cut.)
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_IDLE: Duration = Duration::from_millis(500);

/// Reads the rest of a refused `body` in the background and discards it, so that the client,
/// still sending, gets the answer (see the module docs). Holds no memory but one frame at a time
/// and no share of the budget. When it stops before the end of the body, dropping it resets the
/// HTTP/2 stream (NO_ERROR, the answer being complete) or closes the HTTP/1.1 connection.
fn linger(body: Body, limits: &Limits) {
    let bound = limits.max_body_bytes.saturating_mul(2);
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut body = body;
        let mut read = 0usize;
        let deadline = tokio::time::Instant::now() + LINGER_TIME;
        while read <= bound {
            let wait = deadline.min(tokio::time::Instant::now() + LINGER_IDLE);
            match tokio::time::timeout_at(wait, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    read = read.saturating_add(frame.data_ref().map_or(0, Bytes::len));
                }
                // The end of the body, a broken stream, or a client too slow to wait for.
                Ok(None) | Ok(Some(Err(_))) | Err(_) => break,
            }
        }
    });
}

/// One line per admission request; the level must be a constant for `tracing::event!`.
macro_rules! log_admission {
    ($level:expr, $webhook:expr, $o:expr, $elapsed:expr) => {
        tracing::event!(
            $level,
            webhook = $webhook.as_str(),
            uid = %$o.uid,
            kind = %$o.kind,
            namespace = %$o.namespace,
            name = %$o.name,
            operation = %$o.operation,
            user = %$o.user,
            decision = $o.decision.as_str(),
            denied_rules = %$o.denied_rules.join(","),
            restores = $o.restores,
            warnings = $o.warnings,
            exempt = $o.exempt,
            skipped = $o.skipped,
            dry_run = $o.dry_run,
            confirmation = $o.confirmation.map_or("", |c| c.as_str()),
            error = $o.error.as_deref().unwrap_or(""),
            micros = u64::try_from($elapsed.as_micros()).unwrap_or(u64::MAX),
            "admission"
        )
    };
}

async fn admit(state: &AppState, webhook: Webhook, headers: &HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let shared = &state.0;
    // `_share` (the request's part of the memory budget) is given back once the reply is built.
    let (bytes, _share) = match read_body(headers, body, shared).await {
        Ok(b) => b,
        Err(err) => return refuse(shared, webhook, err, started),
    };
    // The body is read; from here on the decision works on one immutable snapshot of the index.
    let reply = admission::handle_live(
        webhook,
        &bytes,
        shared.index.snapshot(),
        &shared.policy,
        shared.status.is_stale(),
        shared.live.as_deref(),
        shared.limits.confirm_budget,
    )
    .await;
    let elapsed = started.elapsed();
    shared.metrics.observe(&reply.outcome, elapsed);
    if let Some(events) = &shared.events {
        events.offer(&reply.outcome);
    }
    let o = &reply.outcome;
    if shared.request_log.at_info(o) {
        log_admission!(tracing::Level::INFO, webhook, o, elapsed);
    } else {
        log_admission!(tracing::Level::DEBUG, webhook, o, elapsed);
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, reply.content_type)],
        reply.body,
    )
        .into_response()
}

fn refuse(shared: &Shared, webhook: Webhook, err: BodyError, started: Instant) -> Response {
    let limits = shared.limits;
    let (status, label, message) = match err {
        BodyError::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            DecisionLabel::TooLarge,
            format!(
                "request body too large: expected at most {} bytes",
                limits.max_body_bytes
            ),
        ),
        BodyError::TooComplex(bytes) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            DecisionLabel::TooLarge,
            format!(
                "request body too large to decode: about {} KiB with its parsed JSON, expected at most {} KiB",
                kib(bytes),
                shared.budget_kib
            ),
        ),
        BodyError::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            DecisionLabel::Busy,
            format!(
                "too many large requests in flight: no memory for this one within {} ms; retry",
                limits.request_timeout.as_millis()
            ),
        ),
        BodyError::Timeout => (
            StatusCode::REQUEST_TIMEOUT,
            DecisionLabel::Timeout,
            format!(
                "request body not received within {} ms",
                limits.request_timeout.as_millis()
            ),
        ),
        BodyError::Broken(e) => (
            StatusCode::BAD_REQUEST,
            DecisionLabel::BadBody,
            format!("request body cannot be read: {e}"),
        ),
    };
    let elapsed = started.elapsed();
    shared.metrics.observe_refused(webhook, label, elapsed);
    tracing::warn!(
        webhook = webhook.as_str(),
        status = status.as_u16(),
        error = %message,
        "admission request refused"
    );
    text(status, format!("{message}\n"))
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn outcome(decision: Decision) -> admission::Outcome {
        admission::Outcome {
            webhook: Webhook::Validate,
            decision,
            uid: "u".into(),
            kind: "VirtualService".into(),
            namespace: "ns".into(),
            name: "n".into(),
            operation: "UPDATE".into(),
            user: "u".into(),
            dry_run: false,
            denied_rules: Vec::new(),
            restores: 0,
            exempt: false,
            skipped: false,
            degraded: Vec::new(),
            confirmation: None,
            warnings: 0,
            error: None,
            happening: None,
        }
    }

    #[test]
    fn only_requests_that_changed_or_refused_something_are_logged_at_info_by_default() {
        let changes = RequestLog::Changes;
        assert!(!changes.at_info(&outcome(Decision::Allowed)));
        assert!(RequestLog::All.at_info(&outcome(Decision::Allowed)));
        for decision in [Decision::Denied, Decision::Patched, Decision::Invalid] {
            assert!(changes.at_info(&outcome(decision)), "{decision:?}");
        }
        let with = |change: fn(&mut admission::Outcome)| {
            let mut o = outcome(Decision::Allowed);
            change(&mut o);
            changes.at_info(&o)
        };
        assert!(with(|o| o.warnings = 1));
        assert!(with(|o| o.skipped = true), "break-glass is always logged");
        assert!(with(|o| o.exempt = true));
        assert!(with(|o| o.error = Some("unreadable".into())));
    }

    #[test]
    fn the_decoded_estimate_covers_what_serde_json_builds() {
        assert_eq!(decoded_estimate(b""), 0);
        assert_eq!(decoded_estimate(b"7"), 1);
        // Two values in an array, one member in an object.
        assert_eq!(decoded_estimate(b"[0,0]"), 5 + 2 * VALUE_COST);
        assert_eq!(
            decoded_estimate(br#"{"a":1}"#),
            7 + VALUE_COST + MEMBER_COST
        );
        // 7 MiB of `0,` would be about 120 MiB of values: more than the default budget.
        let zeros = "0,".repeat(7 * 1024 * 1024 / 2);
        assert!(decoded_estimate(zeros.as_bytes()) > DEFAULT_MAX_INFLIGHT_BYTES);
        // An ordinary review is a small share.
        let review = br#"{"request":{"uid":"u","object":{"spec":{"hosts":["a","b"]}}}}"#;
        assert!(decoded_estimate(review) < 2 * 1024);
    }

    /// The block-wise count is exact: same as counting byte by byte, at every length around the
    /// block size and with every byte counted (a block of only `{` must not overflow its sum).
    #[test]
    fn the_decoded_estimate_counts_every_byte() {
        let naive = |body: &[u8]| {
            let values = body
                .iter()
                .filter(|b| matches!(b, b',' | b'[' | b'{'))
                .count();
            let members = body.iter().filter(|&&b| b == b':').count();
            body.len() + values * VALUE_COST + members * MEMBER_COST
        };
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let alphabet = b",[{:}]\" a0";
        let body: Vec<u8> = (0..5_000)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                alphabet[(seed % alphabet.len() as u64) as usize]
            })
            .collect();
        for len in (0..600).chain([1_019, 1_020, 1_021, 4_999, 5_000]) {
            assert_eq!(
                decoded_estimate(&body[..len]),
                naive(&body[..len]),
                "{len} bytes"
            );
        }
        for all in [b"{", b":", b","] {
            let same = all.repeat(1_000);
            assert_eq!(decoded_estimate(&same), naive(&same));
        }
    }

    /// Signals on `dropped` when the stream (and so the body made of it) is dropped.
    struct Guard(Option<tokio::sync::oneshot::Sender<()>>);
    impl Drop for Guard {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(());
            }
        }
    }

    fn limits(max_body_bytes: usize) -> Limits {
        Limits {
            max_body_bytes,
            ..Limits::default()
        }
    }

    /// A client that never stops sending is read up to twice the limit, then cut off.
    #[tokio::test]
    async fn a_refused_body_is_read_on_up_to_twice_the_limit() {
        let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (tx, dropped) = tokio::sync::oneshot::channel();
        let guard = Guard(Some(tx));
        let counter = taken.clone();
        let endless = futures::stream::repeat_with(move || {
            let _ = &guard;
            counter.fetch_add(1024, std::sync::atomic::Ordering::SeqCst);
            Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 1024]))
        });
        linger(Body::from_stream(endless), &limits(64 * 1024));
        tokio::time::timeout(Duration::from_secs(10), dropped)
            .await
            .expect("cut off in time")
            .expect("dropped");
        let taken = taken.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            (128 * 1024..=130 * 1024).contains(&taken),
            "{taken} bytes read"
        );
    }

    /// A client that stops sending is given up on after LINGER_IDLE.
    #[tokio::test]
    async fn a_refused_body_that_stalls_is_given_up() {
        let (tx, dropped) = tokio::sync::oneshot::channel();
        let guard = Guard(Some(tx));
        let stalled =
            futures::stream::pending::<Result<Bytes, std::io::Error>>().inspect(move |_| {
                let _ = &guard;
            });
        let started = Instant::now();
        linger(Body::from_stream(stalled), &limits(64 * 1024));
        tokio::time::timeout(Duration::from_secs(10), dropped)
            .await
            .expect("given up in time")
            .expect("dropped");
        let took = started.elapsed();
        assert!(
            took >= LINGER_IDLE && took < LINGER_TIME,
            "given up after {took:?}"
        );
    }
}
