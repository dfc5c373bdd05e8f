//! HTTPS on loopback: `rollout-guard serve --source files` with the 50,000-object state against an
//! allow-everything server built on the same stack, in the same run.
//!
//! - The baseline is this binary re-run as a server (`RG_LOADGEN_BASELINE=1`): the project's own
//!   TLS configuration (`server::tls::server_config`, ring, TLS 1.2/1.3, ALPN h2 + http/1.1) and
//!   accept loop (`server::https::serve`: tokio-rustls, hyper-util auto builder, graceful drain),
//!   an axum router whose handlers read the body, copy `request.uid` and answer allowed.
//! - Start to ready: `serve` is spawned on the state folder and `/readyz` polled every 5 ms.
//! - Closed loop: K keep-alive HTTP/1.1 connections over TLS, each sending the next request as soon
//!   as the previous answer is read, for a fixed time after a warm-up; bodies are the decision
//!   benchmark's AdmissionReviews (9 kinds in turn).
//! - Open loop at half the measured `serve` throughput: requests are scheduled at a fixed rate
//!   across the K connections and latency is taken from the scheduled time (queueing included).
//! - Server CPU per request (utime + stime of the server process over the run) and RSS.
//!
//! Everything is on 127.0.0.1 and bounded in time (about 2 minutes with the defaults). Knobs
//! (environment): `RG_LOADGEN_SECONDS` (10), `RG_LOADGEN_CONNECTIONS` (8), `RG_LOADGEN_APPS`
//! (10000), `RG_BIN` (default `target/release/rollout-guard`), `RG_SERVE_ARGS` (more `serve`
//! flags, e.g. `--reload-interval 1h`), and `RG_LOADGEN_TARGET=HOST:PORT`
//! with `RG_LOADGEN_CA=ca.pem` to load an already running server instead (no baseline, no spawn).
//!
//! `cargo bench --bench loadgen`; under `cargo test` it only runs the baseline for a moment.

#[path = "support/gen.rs"]
mod gen;
#[path = "support/results.rs"]
mod results;

#[path = "support/load.rs"]
mod load;

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use load::{
    bin_path, connector, env_num, free_port, log_file, make_certs, measure, spawn_serve,
    wait_for_port, Certs, Measured, Plan, Server, Target, READY_TIMEOUT, WARMUP,
};
use results::{millis, Section};
use rollout_guard::server::{https, tls};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BASELINE_ENV: &str = "RG_LOADGEN_BASELINE";
const READY_RUNS: usize = 3;
const IDLE: Duration = Duration::from_secs(4);

// ---------------------------------------------------------------------------------------------
// The baseline server.

#[derive(serde::Deserialize)]
struct UidOnly<'a> {
    #[serde(borrow)]
    request: RequestUid<'a>,
}

#[derive(serde::Deserialize)]
struct RequestUid<'a> {
    #[serde(borrow)]
    uid: std::borrow::Cow<'a, str>,
}

async fn allow(body: Bytes) -> axum::response::Response {
    match serde_json::from_slice::<UidOnly<'_>>(&body) {
        Ok(review) => {
            let answer = serde_json::json!({
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {"uid": review.request.uid, "allowed": true}
            });
            (
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::to_vec(&answer).unwrap_or_default(),
            )
                .into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("no request.uid: {e}\n")).into_response(),
    }
}

/// `RG_LOADGEN_BASELINE=1 loadgen LISTEN CERT KEY`: serves until killed.
fn baseline_server(args: &[String]) -> Result<(), String> {
    let [listen, cert, key] = args else {
        return Err("baseline server: expected LISTEN CERT KEY".into());
    };
    let listen: SocketAddr = listen.parse().map_err(|e| format!("{listen}: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let provider = tls::provider();
        let files = tls::CertFiles {
            cert: PathBuf::from(cert),
            key: PathBuf::from(key),
        };
        let certified = files.load(&provider).map_err(|e| e.to_string())?;
        let resolver = Arc::new(tls::CertResolver::new(certified));
        let config = tls::server_config(resolver, None, provider).map_err(|e| e.to_string())?;
        let app = Router::new()
            .route("/validate", post(allow))
            .route("/mutate", post(allow));
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("{listen}: {e}"))?;
        println!(
            "listening {}",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        https::serve(
            listener,
            Arc::new(config),
            app,
            https::ConnOptions::default(),
            tokio_util::sync::CancellationToken::new(),
        )
        .await;
        Ok(())
    })
}

fn spawn_baseline(certs: &Certs, log: &Path) -> Result<(Server, SocketAddr), String> {
    let port = free_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let child = Command::new(exe)
        .env(BASELINE_ENV, "1")
        .arg(addr.to_string())
        .arg(&certs.cert)
        .arg(&certs.key)
        .stdout(Stdio::null())
        .stderr(log_file(log)?)
        .spawn()
        .map_err(|e| format!("cannot start the baseline server: {e}"))?;
    let server = Server {
        child,
        name: "baseline",
    };
    wait_for_port(addr, Duration::from_secs(10))?;
    Ok((server, addr))
}

fn extra_serve_args() -> Vec<String> {
    std::env::var("RG_SERVE_ARGS")
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if std::env::var_os(BASELINE_ENV).is_some() {
        if let Err(e) = baseline_server(&args) {
            eprintln!("{e}");
            std::process::exit(1);
        }
        return;
    }
    if let Err(e) = run() {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let bench = results::bench_mode();
    let seconds = env_num("RG_LOADGEN_SECONDS", if bench { 10 } else { 1 });
    let connections = env_num("RG_LOADGEN_CONNECTIONS", 8) as usize;
    let apps = env_num("RG_LOADGEN_APPS", if bench { 10_000 } else { 100 }) as usize;
    let duration = Duration::from_secs(seconds);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let cases: Arc<Vec<(String, Bytes)>> = Arc::new(
        gen::cases(apps)
            .into_iter()
            .map(|c| (c.path().to_string(), Bytes::from(c.body)))
            .collect(),
    );

    let plan = Plan {
        rt: &rt,
        cases: &cases,
        connections,
        duration,
    };

    // An already running server: load it and stop.
    if let Ok(addr) = std::env::var("RG_LOADGEN_TARGET") {
        let addr: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
        let ca = std::env::var("RG_LOADGEN_CA").map_err(|_| "RG_LOADGEN_CA is needed")?;
        let ca = std::fs::read(&ca).map_err(|e| format!("{ca}: {e}"))?;
        let target = Target {
            addr,
            tls: Some(connector(&ca)?),
        };
        let closed = measure(&plan, "target", None, &target, None);
        let half = closed.run.throughput() / 2.0;
        measure(&plan, "target", None, &target, Some(half));
        return Ok(());
    }

    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let certs = make_certs(dir.path())?;
    let tls = connector(certs.ca_pem.as_bytes())?;

    if !bench {
        let (server, addr) = spawn_baseline(&certs, &dir.path().join("baseline.log"))?;
        let target = Target {
            addr,
            tls: Some(tls),
        };
        let m = measure(
            &Plan {
                rt: &rt,
                cases: &cases,
                connections: 2,
                duration: Duration::from_millis(300),
            },
            "baseline",
            Some(&server),
            &target,
            None,
        );
        server.stop();
        if m.run.samples.is_empty() || m.run.errors > 0 {
            return Err(format!(
                "the baseline answered {} requests with {} errors",
                m.run.samples.len(),
                m.run.errors
            ));
        }
        return Ok(());
    }

    let mut s = Section::new("loadgen");
    let bin = bin_path();
    let state = dir.path().join("state");
    let started = Instant::now();
    let objects = gen::write_tree(&state, apps, gen::Form::Live).map_err(|e| e.to_string())?;
    println!(
        "state: {objects} objects in {} files, written in {:.1} s",
        apps,
        started.elapsed().as_secs_f64()
    );

    let mut measured: Vec<Measured> = Vec::new();
    let mut ready_times = Vec::new();
    let mut serve_rss = None;
    let mut serve_error = None;
    let mut idle_cpu = None;

    // Baseline first (closed loop), then serve.
    let (baseline, baseline_addr) = spawn_baseline(&certs, &dir.path().join("baseline.log"))?;
    let baseline_target = Target {
        addr: baseline_addr,
        tls: Some(tls.clone()),
    };
    measured.push(measure(
        &plan,
        "baseline",
        Some(&baseline),
        &baseline_target,
        None,
    ));
    let baseline_rss = results::rss_of(&baseline.pid());

    if bin.exists() {
        // Start to ready, a few times (the files are in the page cache after the first).
        let mut last = None;
        for run in 0..READY_RUNS {
            let mut source = vec![
                "--source".to_string(),
                "files".into(),
                "--manifests".into(),
                state.display().to_string(),
            ];
            source.extend(extra_serve_args());
            match spawn_serve(
                &bin,
                &source,
                &[],
                &certs,
                &dir.path().join("serve.log"),
                READY_TIMEOUT,
            ) {
                Ok(serve) => {
                    println!(
                        "serve ready after {:.0} ms",
                        serve.ready_after.as_secs_f64() * 1000.0
                    );
                    ready_times.push(serve.ready_after);
                    if run + 1 == READY_RUNS {
                        last = Some(serve);
                    } else {
                        serve.server.stop();
                    }
                }
                Err(e) => {
                    serve_error = Some(e);
                    break;
                }
            }
        }
        if let Some(serve) = last {
            let rss_ready = results::rss_of(&serve.server.pid());
            // Idle: what the server costs with no requests, once the first load's after-work (the
            // scan that follows the folder watch's start, freeing) is over.
            std::thread::sleep(IDLE);
            let before = serve.server.cpu();
            std::thread::sleep(IDLE);
            idle_cpu = Some(serve.server.cpu().saturating_sub(before));
            let target = Target {
                addr: serve.addr,
                tls: Some(tls.clone()),
            };
            let closed = measure(&plan, "serve", Some(&serve.server), &target, None);
            let half = closed.run.throughput() / 2.0;
            measured.push(closed);
            measured.push(measure(
                &plan,
                "serve",
                Some(&serve.server),
                &target,
                Some(half),
            ));
            measured.push(measure(
                &plan,
                "baseline",
                Some(&baseline),
                &baseline_target,
                Some(half),
            ));
            serve_rss = Some((
                rss_ready,
                results::rss_of(&serve.server.pid()),
                results::peak_rss_of(&serve.server.pid()),
            ));
            serve.server.stop();
        }
    } else {
        serve_error = Some(format!(
            "{} does not exist (run `cargo build --release`)",
            bin.display()
        ));
    }
    baseline.stop();

    report(
        &mut s,
        apps,
        objects,
        connections,
        duration,
        &measured,
        &ready_times,
        serve_rss,
        baseline_rss,
        idle_cpu,
        serve_error,
    );
    s.write();
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn report(
    s: &mut Section,
    apps: usize,
    objects: usize,
    connections: usize,
    duration: Duration,
    measured: &[Measured],
    ready_times: &[Duration],
    serve_rss: Option<(Option<u64>, Option<u64>, Option<u64>)>,
    baseline_rss: Option<u64>,
    idle_cpu: Option<Duration>,
    serve_error: Option<String>,
) {
    s.line("## HTTPS on loopback");
    s.line("");
    s.line(format!(
        "`rollout-guard serve --source files` on {apps} apps ({objects} objects, one YAML file per \
         app) and the allow-everything baseline (same TLS configuration and accept loop, \
         `server::tls` + `server::https`, an axum handler that copies the uid), each its own \
         process, default tokio runtime, default logging (serve logs one line per request to \
         stderr, here a file). Client: this process, 2 tokio workers, hyper HTTP/1.1 over \
         tokio-rustls (TLS 1.3), {connections} keep-alive connections, bodies cycling through the \
         9 AdmissionReviews of the decision benchmark; {}s measured after {}s of warm-up. \
         Client and server share the 2 cores, so the client's own TLS and HTTP work (about as \
         much as a server's) is in every figure; server CPU per request (utime+stime of the server \
         process / requests) is the figure without it.",
        duration.as_secs(),
        WARMUP.as_secs()
    ));
    s.line("");
    s.line("| server | load | req/s | p50 ms | p99 ms | p99.9 ms | errors | server CPU µs / req |");
    s.line("|---|---|---:|---:|---:|---:|---:|---:|");
    for m in measured {
        let cpu_per_req = m
            .cpu
            .filter(|_| !m.run.samples.0.is_empty())
            .map(|c| c.as_secs_f64() * 1e6 / m.run.samples.len() as f64);
        s.line(format!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} |",
            m.name,
            m.mode,
            m.run.throughput(),
            millis(m.run.samples.quantile(0.5)),
            millis(m.run.samples.quantile(0.99)),
            millis(m.run.samples.quantile(0.999)),
            m.run.errors,
            cpu_per_req
                .map(|c| format!("{c:.0}"))
                .unwrap_or_else(|| "–".into())
        ));
    }
    let closed = |name: &str| {
        measured
            .iter()
            .find(|m| m.name == name && !m.mode.contains("scheduled"))
    };
    let cpu_per_req = |m: &Measured| {
        m.cpu
            .map(|c| c.as_secs_f64() * 1e6 / m.run.samples.len().max(1) as f64)
    };
    if let (Some(b), Some(sv)) = (closed("baseline"), closed("serve")) {
        let ratio = sv.run.throughput() / b.run.throughput();
        s.line("");
        s.line(format!(
            "Throughput serve / baseline: **{:.0} %** ({:.0} / {:.0} req/s).",
            ratio * 100.0,
            sv.run.throughput(),
            b.run.throughput()
        ));
        s.figure("throughput_serve", sv.run.throughput());
        s.figure("throughput_baseline", b.run.throughput());
        s.figure("throughput_ratio", ratio);
        if let (Some(cs), Some(cb)) = (cpu_per_req(sv), cpu_per_req(b)) {
            s.line(format!(
                "Server CPU per request: serve {cs:.0} µs, baseline {cb:.0} µs: the baseline's share is \
                 {:.0} % (what a client on another machine would see as the throughput ratio at \
                 saturation).",
                cb / cs * 100.0
            ));
            s.figure("cpu_per_request_serve_us", cs);
            s.figure("cpu_per_request_baseline_us", cb);
        }
    }
    if let Some(half) = measured
        .iter()
        .find(|m| m.name == "baseline" && m.mode.contains("scheduled"))
    {
        s.figure("baseline_half_load_p99_ns", half.run.samples.quantile(0.99));
    }
    if let Some(half) = measured
        .iter()
        .find(|m| m.name == "serve" && m.mode.contains("scheduled"))
    {
        s.figure("half_load_rate", half.run.throughput());
        s.figure("half_load_p99_ns", half.run.samples.quantile(0.99));
        s.figure("half_load_errors", half.run.errors);
    }
    s.line("");
    if !ready_times.is_empty() {
        let mut sorted = ready_times.to_vec();
        sorted.sort();
        let median = sorted[sorted.len() / 2];
        let all: Vec<String> = ready_times
            .iter()
            .map(|d| format!("{:.0}", d.as_secs_f64() * 1000.0))
            .collect();
        s.line(format!(
            "Start to ready (spawn `serve` → first 200 from `/readyz`, polled every 5 ms) with \
             {objects} objects in files: median **{:.0} ms** of {} starts ({} ms; the first read \
             the files just written, so all from the page cache).",
            median.as_secs_f64() * 1000.0,
            ready_times.len(),
            all.join(", ")
        ));
        s.figure("ready_ns", median.as_nanos() as u64);
    }
    if let Some((ready, after, peak)) = serve_rss {
        let f = |v: Option<u64>| v.map(results::mib).unwrap_or_else(|| "–".into());
        s.line(format!(
            "RSS of `serve` with {objects} objects: {} MiB when ready, {} MiB after the load runs, \
             peak (VmHWM) {} MiB; the baseline server: {} MiB.",
            f(ready),
            f(after),
            f(peak),
            f(baseline_rss)
        ));
        if let Some(r) = after.or(ready) {
            s.figure("serve_rss", r);
        }
        if let Some(p) = peak {
            s.figure("serve_peak_rss", p);
        }
    }
    if let Some(cpu) = idle_cpu {
        let share = cpu.as_secs_f64() / IDLE.as_secs_f64() * 100.0;
        s.line(format!(
            "Idle `serve` (no requests, {}s measured from {}s after ready): {:.0} ms of CPU per second \
             ({share:.1} % of a core). The manifests folder is watched (inotify), not rescanned; what is \
             left is the certificate files' check every `--reload-interval` (default 1 s).",
            IDLE.as_secs(),
            IDLE.as_secs(),
            cpu.as_secs_f64() * 1000.0 / IDLE.as_secs_f64()
        ));
        s.figure("serve_idle_cpu_share", share);
    }
    if let Some(e) = serve_error {
        s.line(format!("`serve` was not measured: {e}."));
        s.figure("serve_error", e);
    }
}
