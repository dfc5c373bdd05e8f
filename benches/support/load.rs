//! What the HTTP benchmarks share: server processes (spawn, ready, CPU, stop), test certificates,
//! and the load driver: K keep-alive HTTP/1.1 connections (over TLS or plain), closed loop or
//! scheduled at a fixed rate, latency per request (from the scheduled time in the open loop).
//!
//! Included with `#[path]` by `loadgen`, `kube` and `opa` (next to `results.rs`).
#![allow(dead_code)]

use crate::results::{millis, Samples};
use axum::body::Bytes;
use axum::http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::RootCertStore;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub const WARMUP: Duration = Duration::from_secs(1);
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);

pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// Processes, ports, certificates.

pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

pub struct Certs {
    pub ca_pem: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn make_certs(dir: &Path) -> Result<Certs, String> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let err = |e: rcgen::Error| e.to_string();
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "rollout-guard bench CA");
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().map_err(err)?;
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .map_err(err)?
        .signed_by(&leaf_key, &issuer)
        .map_err(err)?;
    let cert = dir.join("tls.crt");
    let key = dir.join("tls.key");
    std::fs::write(&cert, leaf.pem()).map_err(|e| e.to_string())?;
    std::fs::write(&key, leaf_key.serialize_pem()).map_err(|e| e.to_string())?;
    Ok(Certs {
        ca_pem: ca_cert.pem(),
        cert,
        key,
    })
}

/// A server process (ours to stop).
pub struct Server {
    pub child: Child,
    pub name: &'static str,
}

impl Server {
    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// SIGTERM (by pid), then a kill if it has not exited within 10 s.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// utime + stime of the process so far.
    pub fn cpu(&self) -> Duration {
        cpu_of(&self.pid())
    }
}

pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

pub fn cpu_of(pid: &str) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the command (which may contain spaces) in parentheses.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
}

pub fn log_file(path: &Path) -> Result<Stdio, String> {
    std::fs::File::create(path)
        .map(Stdio::from)
        .map_err(|e| format!("{}: {e}", path.display()))
}

pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if StdTcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(format!("nothing listens on {addr} after {timeout:?}"))
}

/// `GET /readyz` over plain HTTP: `true` on a 200.
pub fn ready(admin: SocketAddr) -> bool {
    let Ok(mut s) = StdTcpStream::connect_timeout(&admin, Duration::from_millis(50)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// A `rollout-guard serve` that answered 200 on `/readyz`.
pub struct Serve {
    pub server: Server,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub ready_after: Duration,
}

/// Spawns `BIN serve SOURCE_ARGS... --tls-cert .. --tls-key .. --listen .. --admin-listen ..` with
/// `envs` set, and polls `/readyz` every 5 ms until a 200 (at most `timeout`).
pub fn spawn_serve(
    bin: &Path,
    source_args: &[String],
    envs: &[(&str, &Path)],
    certs: &Certs,
    log: &Path,
    timeout: Duration,
) -> Result<Serve, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let started = Instant::now();
    let mut command = Command::new(bin);
    command
        .arg("serve")
        .args(source_args)
        .arg("--tls-cert")
        .arg(&certs.cert)
        .arg("--tls-key")
        .arg(&certs.key)
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--admin-listen")
        .arg(admin.to_string());
    for (k, v) in envs {
        command.env(k, v);
    }
    let child = command
        .stdout(Stdio::null())
        .stderr(log_file(log)?)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let mut server = Server {
        child,
        name: "rollout-guard serve",
    };
    loop {
        if ready(admin) {
            break;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!(
                "rollout-guard serve exited with {status} before it was ready (log: {})",
                log.display()
            ));
        }
        if started.elapsed() > timeout {
            server.stop();
            return Err(format!(
                "rollout-guard serve not ready after {timeout:?} (log: {})",
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let ready_after = started.elapsed();
    Ok(Serve {
        server,
        addr,
        admin,
        ready_after,
    })
}

/// `GET PATH` over plain HTTP/1.1 (the admin port): the body of a 200, `None` otherwise.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = StdTcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Some(dechunk(body));
    }
    Some(body.to_string())
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The client.

#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// `None`: plain HTTP.
    pub tls: Option<TlsConnector>,
}

pub fn connector(ca_pem: &[u8]) -> Result<TlsConnector, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

pub async fn connect(target: &Target) -> Result<Sender, String> {
    let tcp = TcpStream::connect(target.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", target.addr))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let Some(tls) = &target.tls else {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        return Ok(sender);
    };
    let name = ServerName::IpAddress(target.addr.ip().into());
    let stream = tls
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends one request and reads the whole answer; `Ok(true)` on a 200.
pub async fn exchange(sender: &mut Sender, case: &(String, Bytes)) -> Result<bool, String> {
    sender.ready().await.map_err(|e| e.to_string())?;
    let request = Request::post(case.0.as_str())
        .header(header::HOST, "127.0.0.1")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(case.1.clone()))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let ok = response.status() == StatusCode::OK;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(ok && body.starts_with(b"{"))
}

#[derive(Default)]
pub struct Run {
    pub samples: Samples,
    pub errors: usize,
    pub elapsed: Duration,
    pub first_error: Option<String>,
}

impl Run {
    pub fn throughput(&self) -> f64 {
        self.samples.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// K connections; `rate` `None` = closed loop, `Some(r)` = r requests/s in total, scheduled.
pub async fn load(
    target: &Target,
    cases: Arc<Vec<(String, Bytes)>>,
    connections: usize,
    duration: Duration,
    rate: Option<f64>,
) -> Run {
    let start = Instant::now() + WARMUP;
    let end = start + duration;
    let mut tasks = Vec::new();
    for c in 0..connections {
        let target = target.clone();
        let cases = cases.clone();
        tasks.push(tokio::spawn(async move {
            let mut run = Run::default();
            let mut sender = match connect(&target).await {
                Ok(s) => s,
                Err(e) => {
                    run.errors += 1;
                    run.first_error = Some(e);
                    return run;
                }
            };
            let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r));
            let first = match interval {
                Some(i) => Instant::now() + i.mul_f64(c as f64 / connections as f64),
                None => Instant::now(),
            };
            let mut next = first;
            let mut k = c * 7;
            loop {
                let scheduled = match interval {
                    Some(i) => {
                        let at = next;
                        next += i;
                        tokio::time::sleep_until(at.into()).await;
                        at
                    }
                    None => Instant::now(),
                };
                if scheduled >= end {
                    break;
                }
                let case = &cases[k % cases.len()];
                k += 1;
                let result = exchange(&mut sender, case).await;
                let done = Instant::now();
                match result {
                    Ok(true) if scheduled >= start => run.samples.push(done - scheduled),
                    Ok(true) => {}
                    Ok(false) => run.errors += 1,
                    Err(e) => {
                        run.errors += 1;
                        run.first_error.get_or_insert(e);
                        match connect(&target).await {
                            Ok(s) => sender = s,
                            Err(e) => {
                                run.first_error.get_or_insert(e);
                                break;
                            }
                        }
                    }
                }
            }
            run
        }));
    }
    let mut total = Run::default();
    for t in tasks {
        if let Ok(run) = t.await {
            total.samples.extend(run.samples);
            total.errors += run.errors;
            if total.first_error.is_none() {
                total.first_error = run.first_error;
            }
        }
    }
    total.elapsed = duration;
    total.samples.sort();
    total
}

// ---------------------------------------------------------------------------------------------
// The measurement.

pub struct Measured {
    pub name: &'static str,
    pub mode: String,
    pub run: Run,
    pub cpu: Option<Duration>,
}

/// What every run of one invocation shares.
pub struct Plan<'a> {
    pub rt: &'a tokio::runtime::Runtime,
    pub cases: &'a Arc<Vec<(String, Bytes)>>,
    pub connections: usize,
    pub duration: Duration,
}

impl Measured {
    /// Server CPU (utime + stime) per answered request, in µs.
    pub fn cpu_per_request_us(&self) -> Option<f64> {
        self.cpu
            .filter(|_| !self.run.samples.is_empty())
            .map(|c| c.as_secs_f64() * 1e6 / self.run.samples.len() as f64)
    }
}

pub fn measure(
    plan: &Plan<'_>,
    name: &'static str,
    server: Option<&Server>,
    target: &Target,
    rate: Option<f64>,
) -> Measured {
    let Plan {
        rt,
        cases,
        connections,
        duration,
    } = *plan;
    let cpu_before = server.map(Server::cpu);
    let run = rt.block_on(load(target, cases.clone(), connections, duration, rate));
    let cpu = server
        .map(Server::cpu)
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    let mode = match rate {
        None => format!("closed loop, {connections} connections"),
        Some(r) => format!("{r:.0} req/s scheduled over {connections} connections"),
    };
    println!(
        "{name:>9} {mode}: {:.0} req/s, p50 {} ms, p99 {} ms, p99.9 {} ms, errors {}{}",
        run.throughput(),
        millis(run.samples.quantile(0.5)),
        millis(run.samples.quantile(0.99)),
        millis(run.samples.quantile(0.999)),
        run.errors,
        run.first_error
            .as_deref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    Measured {
        name,
        mode,
        run,
        cpu,
    }
}

pub fn bin_path() -> PathBuf {
    if let Some(b) = std::env::var_os("RG_BIN") {
        return PathBuf::from(b);
    }
    crate::results::results_dir()
        .parent()
        .map(|t| t.join("release").join("rollout-guard"))
        .unwrap_or_default()
}

/// One POST on a new connection: the status and the whole body.
pub async fn post(target: &Target, path: &str, body: Bytes) -> Result<(StatusCode, Bytes), String> {
    let mut sender = connect(target).await?;
    sender.ready().await.map_err(|e| e.to_string())?;
    let request = Request::post(path)
        .header(header::HOST, "127.0.0.1")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// Each case alone on one connection, `calls` times in a row (after a tenth as many to warm up):
/// the latency of each kind of request without queueing behind others.
pub async fn per_case(
    target: &Target,
    cases: &[(String, Bytes)],
    calls: usize,
) -> Result<Vec<Samples>, String> {
    let mut sender = connect(target).await?;
    let mut out = Vec::new();
    for case in cases {
        for _ in 0..calls / 10 {
            exchange(&mut sender, case).await?;
        }
        let mut samples = Samples::with_capacity(calls);
        for _ in 0..calls {
            let t = Instant::now();
            if !exchange(&mut sender, case).await? {
                return Err(format!("{}: not a 200 with a JSON body", case.0));
            }
            samples.push(t.elapsed());
        }
        samples.sort();
        out.push(samples);
    }
    Ok(out)
}
