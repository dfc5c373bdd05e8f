//! The real binary: `serve --source files` becomes ready, and on SIGTERM turns unready, stops
//! accepting, finishes the request in flight and exits 0 — also under load from several
//! keep-alive clients, where every request the server took gets its whole answer. Startup errors
//! exit 1 naming the flag.

mod common;

use common::{
    connect, default_connector, eventually, fixture, get, read_answer, request_head, Pki, STEP,
};
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const BIN: &str = env!("CARGO_BIN_EXE_rollout-guard");

/// The child is killed if a test fails before it exits.
struct Server {
    child: Child,
    logs: mpsc::Receiver<serde_json::Value>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(["--log-format", "json", "serve"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, logs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({"message": line}));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        Server { child, logs }
    }

    /// Waits for a log line whose message starts with `prefix`.
    fn wait_log(&self, prefix: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.logs.recv_timeout(left) {
                Ok(v) if v["message"].as_str().is_some_and(|m| m.starts_with(prefix)) => return v,
                Ok(_) => {}
                Err(e) => panic!("no log line {prefix:?}: {e}"),
            }
        }
    }

    fn addr(&self, prefix: &str) -> SocketAddr {
        self.wait_log(prefix)["addr"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no addr in the {prefix:?} line"))
    }

    fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The real binary serving examples/manifests on free ports, ready.
struct Ready {
    pki: Pki,
    _dir: tempfile::TempDir,
    server: Server,
    admin: std::net::SocketAddr,
    https: std::net::SocketAddr,
}

async fn ready_server() -> Ready {
    let pki = Pki::new("test CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    pki.server(&["localhost"]).write(&cert, &key);
    let manifests = common::repo("examples/manifests");
    let server = Server::start(&[
        "--source=files",
        &format!("--manifests={}", manifests.display()),
        &format!("--tls-cert={}", cert.display()),
        &format!("--tls-key={}", key.display()),
        "--listen=127.0.0.1:0",
        "--admin-listen=127.0.0.1:0",
        "--request-timeout=20s",
    ]);
    let admin = server.addr("admin listener bound");
    let https = server.addr("HTTPS listener bound");
    eventually(STEP, "/readyz 200", || async {
        get(admin, "/readyz").await.is_ok_and(|a| a.status == 200)
    })
    .await;
    Ready {
        pki,
        _dir: dir,
        server,
        admin,
        https,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_exits_0() {
    let Ready {
        pki,
        _dir,
        mut server,
        admin,
        https,
    } = ready_server().await;
    assert_eq!(get(admin, "/livez").await.unwrap().status, 200);
    let metrics = get(admin, "/metrics").await.unwrap();
    let metrics = String::from_utf8_lossy(&metrics.body);
    assert!(
        metrics.contains(r#"rollout_guard_index_objects{kind="Rollout"} 2"#),
        "{metrics}"
    );

    // A request whose body arrives slowly: the head and half the body now, the rest after SIGTERM.
    let c = default_connector(&pki);
    let body = fixture("rollout-create-wrong-route.json");
    let mut slow = connect(&c, https, "localhost").await.unwrap();
    slow.write_all(request_head("POST", "/validate", body.len()).as_bytes())
        .await
        .unwrap();
    slow.write_all(&body[..body.len() / 2]).await.unwrap();
    slow.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    sigterm(server.child.id());
    server.wait_log("shutting down");
    let readyz = get(admin, "/readyz").await;
    assert!(
        readyz.as_ref().map_or(true, |a| a.status == 503),
        "/readyz after SIGTERM: {readyz:?}"
    );
    eventually(STEP, "the HTTPS listener to close", || async {
        tokio::net::TcpStream::connect(https).await.is_err()
    })
    .await;

    slow.write_all(&body[body.len() / 2..]).await.unwrap();
    slow.flush().await.unwrap();
    let answer = read_answer(&mut slow).await.unwrap();
    assert_eq!(answer.status, 200);
    let response = &answer.json()["response"];
    assert_eq!(response["allowed"], false);
    assert!(response["status"]["message"]
        .as_str()
        .unwrap()
        .contains("http-route-not-found"));

    let status = server.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// What one request on a keep-alive connection got.
#[derive(Debug)]
enum Got {
    /// A whole answer; `close` when the server ends the connection after it.
    Answer {
        status: u16,
        body: Vec<u8>,
        close: bool,
    },
    /// Not a byte of an answer before the connection closed: the request was not taken (a client
    /// sends it again, as Go's transport does).
    Nothing,
    /// Part of an answer, then the connection broke: never acceptable.
    Partial(Vec<u8>),
}

async fn exchange<S>(stream: &mut tokio::io::BufReader<S>, request: &[u8]) -> Got
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    if stream.write_all(request).await.is_err() || stream.flush().await.is_err() {
        return Got::Nothing;
    }
    let mut head = Vec::new();
    loop {
        let before = head.len();
        match tokio::time::timeout(STEP, stream.read_until(b'\n', &mut head)).await {
            Err(_) => panic!("no answer within {STEP:?}"),
            Ok(Ok(0)) | Ok(Err(_)) if head.is_empty() => return Got::Nothing,
            Ok(Ok(0)) | Ok(Err(_)) => return Got::Partial(head),
            Ok(Ok(_)) if &head[before..] == b"\r\n" => break,
            Ok(Ok(_)) => {}
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let close = text.lines().any(|l| l.trim() == "connection: close");
    let mut body = vec![0u8; length];
    match tokio::time::timeout(STEP, stream.read_exact(&mut body)).await {
        Ok(Ok(_)) => Got::Answer {
            status,
            body,
            close,
        },
        _ => Got::Partial(head),
    }
}

#[derive(Default)]
struct Tally {
    /// (uid sent, status, body, answered after the SIGTERM was sent)
    answers: Vec<(String, u16, Vec<u8>, bool)>,
    unanswered: usize,
    partial: Vec<Vec<u8>>,
}

/// Sends requests back to back on keep-alive connections, reconnecting when the server closes
/// one, until a connection is refused (the listener closed) or `deadline`.
async fn load_client(
    id: usize,
    addr: SocketAddr,
    connector: tokio_rustls::TlsConnector,
    sigterm_at: std::sync::Arc<std::sync::OnceLock<Instant>>,
    deadline: Instant,
) -> Tally {
    let template: serde_json::Value =
        serde_json::from_slice(&fixture("rollout-create-valid.json")).unwrap();
    let mut tally = Tally::default();
    let mut n = 0;
    'connections: while Instant::now() < deadline {
        let Ok(stream) = connect(&connector, addr, "localhost").await else {
            break;
        };
        let mut stream = tokio::io::BufReader::new(stream);
        while Instant::now() < deadline {
            n += 1;
            let uid = format!("load-{id}-{n}");
            let mut review = template.clone();
            review["request"]["uid"] = uid.clone().into();
            let body = serde_json::to_vec(&review).unwrap();
            let head =
                request_head("POST", "/validate", body.len()).replace("Connection: close\r\n", "");
            let mut request = head.into_bytes();
            request.extend_from_slice(&body);
            match exchange(&mut stream, &request).await {
                Got::Answer {
                    status,
                    body,
                    close,
                } => {
                    let after = sigterm_at.get().is_some_and(|t| Instant::now() > *t);
                    tally.answers.push((uid, status, body, after));
                    if close {
                        continue 'connections;
                    }
                }
                Got::Nothing => {
                    tally.unanswered += 1;
                    continue 'connections;
                }
                Got::Partial(bytes) => {
                    tally.partial.push(bytes);
                    continue 'connections;
                }
            }
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_completes_every_accepted_request_and_exits_0() {
    let Ready {
        pki,
        _dir,
        mut server,
        admin: _,
        https,
    } = ready_server().await;

    const CLIENTS: usize = 8;
    let c = default_connector(&pki);
    let sigterm_at = std::sync::Arc::new(std::sync::OnceLock::new());
    let deadline = Instant::now() + STEP;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            tokio::spawn(load_client(
                id,
                https,
                c.clone(),
                sigterm_at.clone(),
                deadline,
            ))
        })
        .collect();
    // And one request certainly in flight at the signal: half its body now, the rest after.
    let body = fixture("rollout-create-valid.json");
    let mut slow = connect(&c, https, "localhost").await.unwrap();
    slow.write_all(request_head("POST", "/validate", body.len()).as_bytes())
        .await
        .unwrap();
    slow.write_all(&body[..body.len() / 2]).await.unwrap();
    slow.flush().await.unwrap();

    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = sigterm_at.set(Instant::now());
    sigterm(server.child.id());
    tokio::time::sleep(Duration::from_millis(200)).await;
    slow.write_all(&body[body.len() / 2..]).await.unwrap();
    slow.flush().await.unwrap();
    let answer = read_answer(&mut slow).await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["response"]["allowed"], true);

    let mut total = Tally::default();
    for (id, client) in clients.into_iter().enumerate() {
        let t = client.await.unwrap();
        assert!(!t.answers.is_empty(), "client {id} got no answer at all");
        total.answers.extend(t.answers);
        total.unanswered += t.unanswered;
        total.partial.extend(t.partial);
    }
    assert!(
        Instant::now() < deadline,
        "clients were still being served {STEP:?} after the start"
    );
    assert!(
        total.partial.is_empty(),
        "{} answers cut off mid-way, e.g. {:?}",
        total.partial.len(),
        String::from_utf8_lossy(&total.partial[0])
    );
    for (uid, status, body, _) in &total.answers {
        assert_eq!(*status, 200, "{uid}: {}", String::from_utf8_lossy(body));
        let v: serde_json::Value = serde_json::from_slice(body)
            .unwrap_or_else(|e| panic!("{uid}: {e}: {}", String::from_utf8_lossy(body)));
        assert_eq!(v["response"]["uid"], uid.as_str());
        assert_eq!(v["response"]["allowed"], true);
    }
    let after = total.answers.iter().filter(|a| a.3).count();
    eprintln!(
        "{} answers ({after} after SIGTERM was sent), {} requests not taken (connection closed \
         before any byte of an answer), 0 cut off",
        total.answers.len(),
        total.unanswered
    );
    let status = server.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn startup_errors_exit_1_and_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.crt");
    for (args, expected) in [
        (
            vec![
                "--source=files".to_string(),
                format!("--manifests={}", dir.path().display()),
                format!("--tls-cert={}", missing.display()),
                format!("--tls-key={}", missing.display()),
                "--listen=127.0.0.1:0".into(),
                "--admin-listen=127.0.0.1:0".into(),
            ],
            "--tls-cert",
        ),
        (
            vec![
                "--source=files".to_string(),
                format!("--manifests={}", missing.display()),
                "--tls-cert=x".into(),
                "--tls-key=y".into(),
            ],
            "--manifests",
        ),
    ] {
        let out = Command::new(BIN)
            .arg("serve")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let out = Command::new(BIN)
        .args(["serve", "--tls-cert=x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "usage errors are clap's exit 2");
}
