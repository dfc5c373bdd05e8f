//! `rollout-guard serve`: the HTTPS admission server and its admin port.
//!
//! Lifecycle: load the serving certificate (an error stops here) → start the admin port
//! (`/livez` answers from now on, `/readyz` says 503) → bind the HTTPS listener → start the state
//! source and the certificate watcher → ready once the source has loaded. On SIGTERM or SIGINT:
//! `/readyz` turns 503, the listener closes, in-flight requests finish (up to the drain
//! deadline), and `run` returns `Ok` (exit 0). A second signal cuts the drain short.

pub mod admin;
pub mod https;
pub mod router;
pub mod tls;

use crate::admission::Policy;
use crate::index::SharedIndex;
use crate::metrics::Metrics;
use crate::source::{self, SourceConfig, SourceStatus};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Everything `serve` needs, from the command line.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub tls: tls::CertFiles,
    pub client_ca: Option<PathBuf>,
    pub source: SourceConfig,
    pub policy: Policy,
    pub stale_after: Duration,
    pub limits: router::Limits,
    pub conn: https::ConnOptions,
    /// How often the certificate files are re-read.
    pub reload_interval: Duration,
    pub request_log: router::RequestLog,
}

/// Runs the server until SIGTERM/SIGINT; `Ok` after a drain, `Err` when it cannot start or the
/// state source fails.
pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    // First, so that a signal during startup is a clean stop rather than the default kill.
    let mut signals = Signals::new()?;
    let provider = tls::provider();
    let metrics = Arc::new(Metrics::new());
    let status = Arc::new(SourceStatus::new(config.stale_after));
    let health = Arc::new(admin::Health::new(status.clone()));
    let index = SharedIndex::default();

    config.source.check()?;
    let (resolver, watcher) =
        tls::CertWatcher::load(config.tls.clone(), provider.clone(), metrics.clone())?;
    let server_config = tls::server_config(resolver, config.client_ca.as_deref(), provider)?;
    health.set_tls_loaded();

    // The source starts loading while the listeners bind; readiness waits for both.
    // The kube source also reads objects fresh from the API server, to confirm a cross-object
    // denial before it is given; the files source has no such reader (its folder is the truth).
    let source::Started {
        task: mut source_task,
        live,
    } = source::start(
        &config.source,
        index.clone(),
        status.clone(),
        metrics.clone(),
    )
    .await?;

    let shutdown = CancellationToken::new();
    let admin_stop = CancellationToken::new();
    let admin_listener = TcpListener::bind(config.admin_listen)
        .await
        .map_err(|e| anyhow::anyhow!("--admin-listen {}: cannot bind: {e}", config.admin_listen))?;
    let admin_addr = admin_listener.local_addr()?;
    let admin_app = admin::router(admin::AdminState {
        health: health.clone(),
        metrics: metrics.clone(),
        index: index.clone(),
        source: status.clone(),
    });
    // Plain HTTP/1.1 with the same header, idle and connection bounds as the webhooks.
    let admin_task = tokio::spawn(https::serve_plain(
        admin_listener,
        admin_app,
        https::ConnOptions {
            drain_timeout: Duration::from_secs(2),
            ..config.conn
        },
        admin_stop.clone(),
    ));
    tracing::info!(addr = %admin_addr, "admin listener bound (/livez, /readyz, /metrics)");

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("--listen {}: cannot bind: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    health.set_listening();
    tracing::info!(addr = %addr, "HTTPS listener bound (POST /validate, POST /mutate)");

    let watcher_task = tokio::spawn(watcher.run(config.reload_interval));

    let state = router::AppState::new(
        index.clone(),
        config.policy.clone(),
        status.clone(),
        metrics.clone(),
        config.limits,
    )
    .with_live_reader(live)
    .with_request_log(config.request_log);
    let serving = tokio::spawn(https::serve(
        listener,
        Arc::new(server_config),
        router::router(state),
        config.conn,
        shutdown.clone(),
    ));

    let failure = tokio::select! {
        signal = signals.next() => {
            health.set_shutting_down();
            tracing::info!(signal, "shutting down: not ready, no new connections, draining");
            None
        }
        ended = &mut source_task => {
            health.set_shutting_down();
            let why = match ended {
                Ok(()) => "the state source stopped".to_string(),
                Err(e) => format!("the state source failed: {e}"),
            };
            tracing::error!(error = %why, "shutting down");
            Some(why)
        }
    };
    shutdown.cancel();
    let drained = tokio::select! {
        d = serving => d.unwrap_or(https::Drained::Complete),
        signal = signals.next() => {
            tracing::warn!(signal, "second signal: in-flight requests are cut off");
            https::Drained::DeadlineExceeded
        }
    };
    match drained {
        https::Drained::Complete => tracing::info!("drained"),
        https::Drained::DeadlineExceeded => {
            tracing::warn!("drain deadline passed; open connections are dropped")
        }
    }
    source_task.abort();
    watcher_task.abort();
    admin_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), admin_task).await;
    match failure {
        Some(why) => Err(anyhow::anyhow!(why)),
        None => Ok(()),
    }
}

/// SIGTERM and SIGINT as one stream.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())
                .map_err(|e| anyhow::anyhow!("cannot listen for SIGTERM: {e}"))?,
            int: signal(SignalKind::interrupt())
                .map_err(|e| anyhow::anyhow!("cannot listen for SIGINT: {e}"))?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}
