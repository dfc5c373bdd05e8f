//! The real binary: `serve --source files` becomes ready, and on SIGTERM turns unready, stops
//! accepting, finishes the request in flight and exits 0. Startup errors exit 1 naming the flag.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_exits_0() {
    let pki = Pki::new("test CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    pki.server(&["localhost"]).write(&cert, &key);
    let manifests = common::repo("examples/manifests");
    let mut server = Server::start(&[
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
