//! The admission server over a real TLS socket: protocol versions, client certificates,
//! certificate rotation (plain overwrite and a Secret's symlink swap), broken new pairs, deleted
//! certificate files, and bad bodies that must not stop it. (Hostile clients: tests/hostile.rs.)

mod common;

use common::{
    connect, connector, default_connector, eventually, fixture, post, read_answer, request_head,
    Pki, TlsServer, STEP,
};
use rollout_guard::server::tls::{self, CertFiles};
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NAME: &str = "localhost";

fn files_in(dir: &Path) -> CertFiles {
    CertFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
    }
}

/// A server with a certificate for `localhost` (and 127.0.0.1), files in a tempdir.
async fn server(pki: &Pki, client_ca: Option<&Path>) -> (TlsServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let files = files_in(dir.path());
    pki.server(&[NAME, "127.0.0.1"])
        .write(&files.cert, &files.key);
    (TlsServer::start(files, client_ca).await, dir)
}

async fn served_der(
    connector: &tokio_rustls::TlsConnector,
    server: &TlsServer,
    name: &str,
) -> Option<Vec<u8>> {
    let stream = connect(connector, server.addr, name).await.ok()?;
    let (_, conn) = stream.get_ref();
    conn.peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls13_and_tls12_handshakes_serve_validate() {
    let pki = Pki::new("test CA");
    let (server, _dir) = server(&pki, None).await;
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let c = connector(&pki, &[version], None);
        let stream = connect(&c, server.addr, NAME).await.unwrap();
        assert_eq!(stream.get_ref().1.protocol_version(), Some(version.version));
        drop(stream);
        let a = post(
            &c,
            server.addr,
            NAME,
            "/validate",
            &fixture("virtualservice-create-sni.json"),
        )
        .await
        .unwrap();
        assert_eq!(a.status, 200, "{:?}", version.version);
        assert_eq!(a.json()["response"]["allowed"], false);
    }
    // ALPN offers HTTP/2 too.
    let mut config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(pki.roots())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let h2 = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let stream = connect(&h2, server.addr, NAME).await.unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    server.stop().await;
}

/// A TLS 1.0 or 1.1 ClientHello (no supported_versions extension) gets no ServerHello.
fn legacy_client_hello(minor: u8) -> Vec<u8> {
    let mut body = vec![0x03, minor];
    body.extend_from_slice(&[0x5a; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]); // two CBC suites
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let len = body.len();
    let mut handshake = vec![0x01, 0, (len >> 8) as u8, len as u8];
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01, 0, handshake.len() as u8];
    record.extend(handshake);
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls10_and_tls11_are_impossible() {
    let versions: Vec<_> = tls::PROTOCOL_VERSIONS.iter().map(|v| v.version).collect();
    assert_eq!(
        versions,
        [
            rustls::ProtocolVersion::TLSv1_3,
            rustls::ProtocolVersion::TLSv1_2
        ]
    );
    let pki = Pki::new("test CA");
    let (server, _dir) = server(&pki, None).await;
    for minor in [1, 2] {
        let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(&legacy_client_hello(minor)).await.unwrap();
        let mut first = [0u8; 1];
        let read = tokio::time::timeout(STEP, tcp.read(&mut first))
            .await
            .expect("the server answers or closes");
        match read {
            Ok(0) | Err(_) => {}
            Ok(_) => assert_eq!(
                first[0],
                0x15,
                "TLS 1.{}: expected an alert record, found content type {:#x}",
                minor - 1,
                first[0]
            ),
        }
    }
    // Still serving after the refusals.
    let a = post(
        &default_connector(&pki),
        server.addr,
        NAME,
        "/validate",
        &fixture("rollout-create-valid.json"),
    )
    .await
    .unwrap();
    assert_eq!(a.status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_required_with_a_client_ca() {
    let pki = Pki::new("server CA");
    let clients = Pki::new("client CA");
    let strangers = Pki::new("another CA");
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_path = ca_dir.path().join("client-ca.crt");
    std::fs::write(&ca_path, &clients.ca_cert).unwrap();
    let (server, _dir) = server(&pki, Some(&ca_path)).await;
    let body = fixture("rollout-create-valid.json");

    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let anonymous = connector(&pki, &[version], None);
        let refused = post(&anonymous, server.addr, NAME, "/validate", &body).await;
        assert!(
            refused.is_err(),
            "{:?}: answered without a client certificate",
            version.version
        );

        let stranger = strangers.client("kube-apiserver");
        let c = connector(&pki, &[version], Some(&stranger));
        let refused = post(&c, server.addr, NAME, "/validate", &body).await;
        assert!(
            refused.is_err(),
            "{:?}: answered a foreign client certificate",
            version.version
        );

        let apiserver = clients.client("kube-apiserver");
        let c = connector(&pki, &[version], Some(&apiserver));
        let a = post(&c, server.addr, NAME, "/validate", &body)
            .await
            .unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(a.json()["response"]["allowed"], true);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_certificate_is_served_without_a_restart() {
    let pki = Pki::new("test CA");
    let (server, dir) = server(&pki, None).await;
    let c = default_connector(&pki);
    assert!(served_der(&c, &server, NAME).await.is_some());
    assert!(served_der(&c, &server, "rotated.test").await.is_none());

    let rotated = pki.server(&["rotated.test"]);
    // The key first, then the certificate, as a careless rotation would: the half-written
    // state is not served and not reported.
    let files = files_in(dir.path());
    std::fs::write(&files.key, &rotated.key).unwrap();
    std::fs::write(&files.cert, &rotated.cert).unwrap();
    let expected = rotated.der().as_ref().to_vec();
    eventually(STEP, "the rotated certificate", || async {
        served_der(&c, &server, "rotated.test").await.as_deref() == Some(&expected[..])
    })
    .await;
    assert!(
        served_der(&c, &server, NAME).await.is_none(),
        "old name no longer served"
    );
    let metrics = server.metrics_text();
    assert!(
        metrics.contains(r#"rollout_guard_tls_reloads_total{result="success"} 1"#),
        "{metrics}"
    );
    server.stop().await;
}

/// Kubernetes Secret volumes: `tls.crt -> ..data/tls.crt`, `..data -> ..<timestamp>`, and a
/// rotation writes a new timestamped folder and renames a new `..data` link over the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_symlink_swap_is_served_without_a_restart() {
    use std::os::unix::fs::symlink;
    let pki = Pki::new("test CA");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let first = root.join("..2026_11_23_10_00_00.000000001");
    std::fs::create_dir(&first).unwrap();
    pki.server(&[NAME])
        .write(&first.join("tls.crt"), &first.join("tls.key"));
    symlink("..2026_11_23_10_00_00.000000001", root.join("..data")).unwrap();
    symlink("..data/tls.crt", root.join("tls.crt")).unwrap();
    symlink("..data/tls.key", root.join("tls.key")).unwrap();
    let server = TlsServer::start(files_in(root), None).await;
    let c = default_connector(&pki);
    assert!(served_der(&c, &server, NAME).await.is_some());

    let rotated = pki.server(&["rotated.test"]);
    let second = root.join("..2026_11_23_11_00_00.000000002");
    std::fs::create_dir(&second).unwrap();
    rotated.write(&second.join("tls.crt"), &second.join("tls.key"));
    symlink("..2026_11_23_11_00_00.000000002", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(&first).unwrap();

    let expected = rotated.der().as_ref().to_vec();
    eventually(STEP, "the swapped certificate", || async {
        served_der(&c, &server, "rotated.test").await.as_deref() == Some(&expected[..])
    })
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_new_pair_keeps_the_old_one_serving() {
    let pki = Pki::new("test CA");
    let (server, dir) = server(&pki, None).await;
    let files = files_in(dir.path());
    let c = default_connector(&pki);
    let original = served_der(&c, &server, NAME).await.unwrap();
    let failures = |n: u32| {
        let line = format!(r#"rollout_guard_tls_reloads_total{{result="failure"}} {n}"#);
        let server = &server;
        move || {
            let found = server.metrics_text().contains(&line);
            async move { found }
        }
    };

    // Garbage in the certificate file.
    std::fs::write(&files.cert, "-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    eventually(STEP, "the garbage to be reported", failures(1)).await;
    assert_eq!(
        served_der(&c, &server, NAME).await.as_deref(),
        Some(&original[..])
    );

    // A valid certificate with somebody else's key.
    let other = pki.server(&["rotated.test"]);
    let mismatched = pki.server(&["rotated.test"]);
    std::fs::write(&files.cert, &other.cert).unwrap();
    std::fs::write(&files.key, &mismatched.key).unwrap();
    eventually(STEP, "the mismatch to be reported", failures(2)).await;
    assert_eq!(
        served_der(&c, &server, NAME).await.as_deref(),
        Some(&original[..])
    );
    assert!(served_der(&c, &server, "rotated.test").await.is_none());

    // Fixed: the new pair is served.
    std::fs::write(&files.key, &other.key).unwrap();
    let expected = other.der().as_ref().to_vec();
    eventually(STEP, "the repaired pair", || async {
        served_der(&c, &server, "rotated.test").await.as_deref() == Some(&expected[..])
    })
    .await;
    server.stop().await;
}

/// The files vanish (a Secret deleted, a volume unmounted): the pair in memory keeps serving, the
/// failure is logged and counted once, and a valid pair written later is picked up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_certificate_files_keep_the_old_pair_serving() {
    let pki = Pki::new("test CA");
    let (server, dir) = server(&pki, None).await;
    let files = files_in(dir.path());
    let c = default_connector(&pki);
    let original = served_der(&c, &server, NAME).await.unwrap();
    let reported = |line: &'static str| {
        let server = &server;
        move || {
            let found = server.metrics_text().contains(line);
            async move { found }
        }
    };

    std::fs::remove_file(&files.cert).unwrap();
    std::fs::remove_file(&files.key).unwrap();
    eventually(
        STEP,
        "the deletion to be reported",
        reported(r#"rollout_guard_tls_reloads_total{result="failure"} 1"#),
    )
    .await;
    assert_eq!(
        served_der(&c, &server, NAME).await.as_deref(),
        Some(&original[..])
    );
    let a = post(
        &c,
        server.addr,
        NAME,
        "/validate",
        &fixture("rollout-create-valid.json"),
    )
    .await
    .unwrap();
    assert_eq!(a.status, 200);
    // Reported once, not at every poll.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(server
        .metrics_text()
        .contains(r#"rollout_guard_tls_reloads_total{result="failure"} 1"#));

    let next = pki.server(&["rotated.test"]);
    next.write(&files.cert, &files.key);
    let expected = next.der().as_ref().to_vec();
    eventually(STEP, "the new pair", || async {
        served_der(&c, &server, "rotated.test").await.as_deref() == Some(&expected[..])
    })
    .await;
    assert!(server
        .metrics_text()
        .contains(r#"rollout_guard_tls_reloads_total{result="success"} 1"#));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_do_not_stop_the_server() {
    let pki = Pki::new("test CA");
    let (server, _dir) = server(&pki, None).await;
    let c = default_connector(&pki);
    let valid = fixture("virtualservice-update-gitops-100-0.json");

    // Malformed, wrongly typed, no uid: 400 each.
    for body in [
        &b"{\"request\": {\"uid\": "[..],
        &br#"{"request": {"uid": ["a"]}}"#[..],
        &b"\x00\xff garbage"[..],
        &valid[..valid.len() - 10],
    ] {
        let a = post(&c, server.addr, NAME, "/validate", body)
            .await
            .unwrap();
        assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
    }

    // Truncated on the wire: Content-Length promises more than is sent, then the client hangs up.
    let mut stream = connect(&c, server.addr, NAME).await.unwrap();
    stream
        .write_all(request_head("POST", "/mutate", valid.len()).as_bytes())
        .await
        .unwrap();
    stream.write_all(&valid[..100]).await.unwrap();
    stream.flush().await.unwrap();
    drop(stream);

    // Huge by Content-Length: 413 before the body is read. (Only the head is sent: bytes the
    // server never reads would make its close a reset that can swallow the answer.)
    let mut stream = connect(&c, server.addr, NAME).await.unwrap();
    stream
        .write_all(request_head("POST", "/validate", 64 * 1024 * 1024).as_bytes())
        .await
        .unwrap();
    stream.flush().await.unwrap();
    let a = read_answer(&mut stream).await.unwrap();
    assert_eq!(a.status, 413);

    // Huge without a declared size (chunked): 413 once the limit is passed.
    let mut stream = connect(&c, server.addr, NAME).await.unwrap();
    stream
        .write_all(
            b"POST /mutate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut chunk = format!("{:x}\r\n", 1024 * 1024).into_bytes();
    chunk.extend(std::iter::repeat_n(b' ', 1024 * 1024));
    chunk.extend_from_slice(b"\r\n");
    for _ in 0..7 {
        stream.write_all(&chunk).await.unwrap();
    }
    stream.write_all(b"1\r\n \r\n").await.unwrap();
    stream.flush().await.unwrap();
    let a = read_answer(&mut stream).await.unwrap();
    assert_eq!(a.status, 413);

    // Not HTTP at all.
    let mut stream = connect(&c, server.addr, NAME).await.unwrap();
    stream
        .write_all(b"\x16\x03\x01 hello\r\n\r\n")
        .await
        .unwrap();
    let _ = read_answer(&mut stream).await;

    // And a good request still gets its answer.
    let a = post(&c, server.addr, NAME, "/mutate", &valid)
        .await
        .unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["response"]["patchType"], "JSONPatch");
    assert_eq!(
        server.stop().await,
        rollout_guard::server::https::Drained::Complete
    );
}
