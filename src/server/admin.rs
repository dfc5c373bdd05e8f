//! The admin port (plain HTTP): `/livez` (200 while the process runs), `/readyz` (200 only when
//! the serving certificate is loaded, the HTTPS listener is bound and the state source has
//! loaded, and never again once shutdown has begun) and `/metrics` (OpenMetrics text).

use crate::index::SharedIndex;
use crate::metrics::{self, Metrics};
use crate::source::SourceStatus;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The lifecycle flags readiness is made of.
#[derive(Debug)]
pub struct Health {
    tls_loaded: AtomicBool,
    listening: AtomicBool,
    shutting_down: AtomicBool,
    source: Arc<SourceStatus>,
}

impl Health {
    pub fn new(source: Arc<SourceStatus>) -> Self {
        Health {
            tls_loaded: AtomicBool::new(false),
            listening: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            source,
        }
    }

    pub fn set_tls_loaded(&self) {
        self.tls_loaded.store(true, Ordering::SeqCst);
    }

    pub fn set_listening(&self) {
        self.listening.store(true, Ordering::SeqCst);
    }

    /// From SIGTERM on: not ready, for good.
    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// What keeps the server from being ready; empty when it is ready.
    pub fn not_ready(&self) -> Vec<&'static str> {
        let mut reasons = Vec::new();
        if self.shutting_down.load(Ordering::SeqCst) {
            reasons.push("shutting down");
        }
        if !self.tls_loaded.load(Ordering::SeqCst) {
            reasons.push("serving certificate not loaded");
        }
        if !self.listening.load(Ordering::SeqCst) {
            reasons.push("HTTPS listener not bound");
        }
        if !self.source.is_loaded() {
            reasons.push("state not loaded");
        }
        reasons
    }

    pub fn is_ready(&self) -> bool {
        self.not_ready().is_empty()
    }
}

#[derive(Clone)]
pub struct AdminState {
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    pub index: SharedIndex,
    pub source: Arc<SourceStatus>,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found: /livez, /readyz, /metrics\n",
            )
        })
        .with_state(state)
}

async fn livez() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let reasons = state.health.not_ready();
    if reasons.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", reasons.join(", ")),
        )
            .into_response()
    }
}

async fn metrics_text(State(state): State<AdminState>) -> Response {
    let body = {
        let index = state.index.snapshot();
        state.metrics.encode(&index, &state.source)
    };
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn readiness_needs_everything_and_ends_at_shutdown() {
        let source = Arc::new(SourceStatus::new(Duration::from_secs(60)));
        let h = Health::new(source.clone());
        assert_eq!(h.not_ready().len(), 3);
        h.set_tls_loaded();
        h.set_listening();
        assert_eq!(h.not_ready(), ["state not loaded"]);
        source.set_loaded();
        assert!(h.is_ready());
        source.set_broken("x");
        assert!(
            h.is_ready(),
            "a broken watch does not make the server unready"
        );
        h.set_shutting_down();
        assert_eq!(h.not_ready(), ["shutting down"]);
    }
}
