//! The admission routes. This layer only translates: it reads the body (bounded in size and
//! time), hands it to [`admission::handle`] with the index and the policy, and writes the
//! [`Reply`](admission::Reply) back; it logs and counts what happened. No decision is made here.
//!
//! - `POST /validate`, `POST /mutate`; other paths 404, other methods 405.
//! - A body over `max_body_bytes` gets 413: at once when `Content-Length` says so, otherwise as
//!   soon as the streamed body passes the limit.
//! - A body that does not arrive within `request_timeout` gets 408; one whose stream breaks, 400.

use crate::admission::{self, Context, Policy, Webhook};
use crate::index::SharedIndex;
use crate::metrics::{DecisionLabel, Metrics};
use crate::source::SourceStatus;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// About 7 MiB: an UPDATE review carries two objects of up to ~1.5 MiB each, JSON-escaped.
pub const DEFAULT_MAX_BODY_BYTES: usize = 7 * 1024 * 1024;
/// Under the webhooks' `timeoutSeconds: 5`, leaving the API server time to read the answer.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_millis(3500);

/// Bounds on one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// What the handlers read.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

struct Shared {
    index: SharedIndex,
    policy: Policy,
    status: Arc<SourceStatus>,
    metrics: Arc<Metrics>,
    limits: Limits,
}

impl AppState {
    pub fn new(
        index: SharedIndex,
        policy: Policy,
        status: Arc<SourceStatus>,
        metrics: Arc<Metrics>,
        limits: Limits,
    ) -> Self {
        AppState(Arc::new(Shared {
            index,
            policy,
            status,
            metrics,
            limits,
        }))
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
    Timeout,
    Broken(String),
}

async fn read_body(headers: &HeaderMap, body: Body, limits: Limits) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return Err(BodyError::TooLarge);
    }
    let collect = Limited::new(body, limits.max_body_bytes).collect();
    match tokio::time::timeout(limits.request_timeout, collect).await {
        Err(_) => Err(BodyError::Timeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BodyError::TooLarge),
        Ok(Err(e)) => Err(BodyError::Broken(e.to_string())),
    }
}

async fn admit(state: &AppState, webhook: Webhook, headers: &HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let shared = &state.0;
    let bytes = match read_body(headers, body, shared.limits).await {
        Ok(b) => b,
        Err(err) => return refuse(shared, webhook, err, started),
    };
    let reply = {
        let index = shared.index.read();
        let ctx = Context {
            index: &*index,
            policy: &shared.policy,
            stale: shared.status.is_stale(),
        };
        admission::handle(webhook, &bytes, &ctx)
    };
    let elapsed = started.elapsed();
    shared.metrics.observe(&reply.outcome, elapsed);
    let o = &reply.outcome;
    let denied_rules = o.denied_rules.join(",");
    tracing::info!(
        webhook = webhook.as_str(),
        uid = %o.uid,
        kind = %o.kind,
        namespace = %o.namespace,
        name = %o.name,
        operation = %o.operation,
        decision = o.decision.as_str(),
        denied_rules = %denied_rules,
        restores = o.restores,
        warnings = o.warnings,
        exempt = o.exempt,
        skipped = o.skipped,
        dry_run = o.dry_run,
        error = o.error.as_deref().unwrap_or(""),
        micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "admission"
    );
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
