//! The HTTPS accept loop: a tokio listener, a rustls handshake per connection (bounded in time),
//! then HTTP/2 when the client negotiated `h2` by ALPN and HTTP/1.1 otherwise (RFC 9113 §3.3:
//! HTTP/2 over TLS is only negotiated by ALPN), every connection watched for idleness and for a
//! graceful drain.
//!
//! Bounds on what a client can hold (each a `serve` flag, see README.md "Failure behaviour"):
//! - `max_connections` connections at once: at the cap the loop stops accepting and new
//!   connections wait in the kernel's listen backlog until one closes (logged, at most every 10 s);
//! - the TLS handshake must finish within `handshake_timeout`;
//! - HTTP/1.1: a request head (the first, and every next one on a keep-alive connection) must
//!   arrive within `header_read_timeout` from when the server starts waiting for it (hyper's
//!   timer: trickling bytes does not extend it), so slow or idle HTTP/1.1 connections close;
//! - any connection on which no byte moves either way for `idle_timeout` is shut down gracefully
//!   (HTTP/2 GOAWAY; HTTP/1.1 close after the request in flight), and dropped when it still has not
//!   finished after another `idle_timeout`. This is what bounds idle HTTP/2 connections, which
//!   have no header timeout.
//!
//! On shutdown the loop stops accepting and drops the listener (new connections are refused),
//! every open connection is told to finish: HTTP/1.1 completes the request in flight and closes,
//! HTTP/2 sends GOAWAY. [`serve`] returns when all have finished or the drain deadline passed.
//!
//! [`serve_plain`] is the same loop without TLS (HTTP/1.1 only), for the admin port.

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Default of `--max-connections`: the API servers need a few (HTTP/2 multiplexes their calls);
/// at this many, buffers and TLS state stay within tens of MiB.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// The largest `--max-connections` accepted.
pub const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;

/// Timeouts and limits of the connection layer.
#[derive(Debug, Clone, Copy)]
pub struct ConnOptions {
    /// Slowloris guard: the request head must arrive within this (HTTP/1.1).
    pub header_read_timeout: Duration,
    /// The TLS handshake must finish within this.
    pub handshake_timeout: Duration,
    /// How long in-flight requests get after shutdown begins.
    pub drain_timeout: Duration,
    /// A connection on which no byte moves for this long is shut down gracefully.
    pub idle_timeout: Duration,
    /// At most this many connections at once (more wait in the listen backlog).
    pub max_connections: usize,
}

impl Default for ConnOptions {
    fn default() -> Self {
        ConnOptions {
            header_read_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(25),
            idle_timeout: Duration::from_secs(60),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// How the drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// Every connection finished.
    Complete,
    /// The deadline passed with connections still open (they are dropped).
    DeadlineExceeded,
}

/// The two connection builders, chosen per connection by ALPN.
struct Builders {
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new(options: &ConnOptions) -> Self {
        // What one connection can make the server buffer is bounded, so that
        // `max_connections` of them fit in memory: HTTP/1.1 reads at most 64 KiB ahead (heads
        // are far smaller), HTTP/2 lets a client send 128 KiB per stream and 256 KiB per
        // connection before the body is read (hyper's defaults: 1 MiB each).
        let mut h1 = auto::Builder::new(TokioExecutor::new());
        h1.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_read_timeout)
            .max_buf_size(64 * 1024);
        let mut h2 = auto::Builder::new(TokioExecutor::new());
        h2.http2()
            .timer(TokioTimer::new())
            .initial_stream_window_size(128 * 1024)
            .initial_connection_window_size(256 * 1024);
        Builders {
            h1: h1.http1_only(),
            h2: h2.http2_only(),
        }
    }
}

/// Serves `app` over TLS on `listener` until `shutdown` is cancelled, then drains.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    options: ConnOptions,
    shutdown: CancellationToken,
) -> Drained {
    accept_loop(
        listener,
        Some(TlsAcceptor::from(tls)),
        app,
        options,
        shutdown,
    )
    .await
}

/// Serves `app` over plain HTTP/1.1 (the admin port) with the same bounds, until `shutdown` is
/// cancelled, then drains.
pub async fn serve_plain(
    listener: TcpListener,
    app: Router,
    options: ConnOptions,
    shutdown: CancellationToken,
) -> Drained {
    accept_loop(listener, None, app, options, shutdown).await
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    options: ConnOptions,
    shutdown: CancellationToken,
) -> Drained {
    let builders = Arc::new(Builders::new(&options));
    let max = options.max_connections.clamp(1, MAX_CONNECTIONS_LIMIT);
    let slots = Arc::new(Semaphore::new(max));
    let mut warned_full: Option<Instant> = None;
    loop {
        // A free slot first: at the cap, new connections wait in the listen backlog.
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if warned_full.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                    warned_full = Some(Instant::now());
                    tracing::warn!(
                        max_connections = max,
                        tls = tls.is_some(),
                        "connection limit reached; new connections wait until one closes"
                    );
                }
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                }
            }
        };
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                tokio::spawn(connection(
                    tcp,
                    peer,
                    permit,
                    tls.clone(),
                    builders.clone(),
                    TowerToHyperService::new(app.clone()),
                    options,
                    shutdown.clone(),
                ));
            }
        }
    }
    drop(listener);
    let open = max - slots.available_permits();
    tracing::info!(
        connections = open,
        tls = tls.is_some(),
        "stopped accepting; draining in-flight requests"
    );
    // Every connection task holds a slot until it ends: all slots back means all have finished.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(options.drain_timeout, slots.acquire_many(all)).await;
    match drained {
        Ok(_) => Drained::Complete,
        Err(_) => Drained::DeadlineExceeded,
    }
}

/// One connection, from the TLS handshake (if any) to its end; holds `_slot` throughout.
#[allow(clippy::too_many_arguments)]
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    _slot: OwnedSemaphorePermit,
    tls: Option<TlsAcceptor>,
    builders: Arc<Builders>,
    service: TowerToHyperService<Router>,
    options: ConnOptions,
    shutdown: CancellationToken,
) {
    let Some(acceptor) = tls else {
        return http(tcp, peer, &builders.h1, service, options, shutdown).await;
    };
    let stream = match tokio::time::timeout(options.handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let h2 = stream.get_ref().1.alpn_protocol() == Some(&b"h2"[..]);
    let builder = if h2 { &builders.h2 } else { &builders.h1 };
    http(stream, peer, builder, service, options, shutdown).await
}

/// HTTP on an established stream until the connection ends, closing it gracefully on shutdown
/// or after `idle_timeout` without a byte moving (dropped after a second quiet `idle_timeout`).
async fn http<S>(
    stream: S,
    peer: SocketAddr,
    builder: &auto::Builder<TokioExecutor>,
    service: TowerToHyperService<Router>,
    options: ConnOptions,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(AtomicU64::new(0));
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);

    let idle_timeout = options.idle_timeout.max(Duration::from_millis(4));
    let tick = idle_timeout / 4;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = activity.load(Ordering::Relaxed);
    let mut quiet_since = Instant::now();
    let mut closing = false;
    let ended = loop {
        tokio::select! {
            ended = conn.as_mut() => break ended,
            () = shutdown.cancelled(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = ticks.tick() => {
                let now = activity.load(Ordering::Relaxed);
                if now != seen {
                    seen = now;
                    quiet_since = Instant::now();
                } else if quiet_since.elapsed() >= idle_timeout {
                    if closing {
                        tracing::debug!(%peer, "connection still quiet after a graceful close; dropped");
                        return;
                    }
                    tracing::debug!(%peer, "idle connection: closing");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                    quiet_since = Instant::now();
                }
            }
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// A stream that counts the reads and writes that moved bytes (for the idle timeout).
struct Tracked<S> {
    inner: S,
    activity: Arc<AtomicU64>,
}

impl<S> Tracked<S> {
    fn moved(&self, n: usize) {
        if n > 0 {
            self.activity.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            self.moved(buf.filled().len().saturating_sub(before));
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.moved(n);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            self.moved(n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
