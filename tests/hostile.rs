//! Hostile clients against the admission server on 127.0.0.1 (in-process, real TLS): slow and
//! idle connections, many idle connections, the connection cap, HTTP/2, deeply nested input, TLS
//! garbage and plain HTTP on the TLS port. Every case checks that a well-behaved client is served
//! afterwards (and while the hostile ones are connected).
//!
//! Bodies over the default limit get 413 over HTTP/1.1 and HTTP/2, declared or streamed, while
//! the client is still sending (`bodies_over_the_default_limit_get_413_over_http1_and_h2`).
//! Covered elsewhere, not repeated here: a head-only HTTP/1.1 request declaring 64 MiB and a
//! chunked one (tests/tls.rs), malformed and truncated bodies, a TLS 1.0/1.1
//! ClientHello, "not HTTP" inside TLS (tests/tls.rs `bad_bodies_do_not_stop_the_server`,
//! `tls10_and_tls11_are_impossible`); a body that never arrives (408) and every prefix of a review
//! (tests/router.rs); broken and deleted certificate files (tests/tls.rs); SIGTERM with requests
//! in flight and under load (tests/shutdown.rs).

mod common;

use common::{connect, default_connector, fixture, request_head, Pki, TlsServer, STEP};
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rollout_guard::server::https::{self, ConnOptions};
use rollout_guard::server::router::{Limits, DEFAULT_MAX_BODY_BYTES};
use rollout_guard::server::tls::CertFiles;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NAME: &str = "localhost";

async fn start(pki: &Pki, conn: ConnOptions, limits: Limits) -> (TlsServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let files = CertFiles {
        cert: dir.path().join("tls.crt"),
        key: dir.path().join("tls.key"),
    };
    pki.server(&[NAME, "127.0.0.1"])
        .write(&files.cert, &files.key);
    (TlsServer::start_with(files, None, conn, limits).await, dir)
}

/// A well-behaved client: a valid Rollout on a new connection, allowed. Returns how long it took.
async fn served(pki: &Pki, addr: SocketAddr) -> Duration {
    let started = Instant::now();
    let a = common::post(
        &default_connector(pki),
        addr,
        NAME,
        "/validate",
        &fixture("rollout-create-valid.json"),
    )
    .await
    .expect("a well-behaved client is served");
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["response"]["allowed"], true);
    started.elapsed()
}

/// Reads until the peer closes (EOF or an error): what arrived and how long it took.
async fn until_closed<S: AsyncRead + Unpin>(stream: &mut S) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(STEP, stream.read(&mut buf)).await {
            Err(_) => panic!("the server did not close the connection within {STEP:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return (got, started.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn assert_between(what: &str, took: Duration, low: Duration, high: Duration) {
    assert!(
        took >= low && took <= high,
        "{what}: closed after {took:?}, expected between {low:?} and {high:?}"
    );
}

/// Deterministic pseudo-random bytes (xorshift64).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_heads_are_cut_off_by_the_header_read_timeout() {
    let pki = Pki::new("test CA");
    let conn = ConnOptions {
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(60),
        ..ConnOptions::default()
    };
    let (server, _dir) = start(&pki, conn, Limits::default()).await;
    let addr = server.addr;
    let c = default_connector(&pki);

    // Each stalls after the handshake with part of a request (or nothing) sent.
    let stalls: [(&str, &[u8]); 4] = [
        ("nothing", b""),
        ("one byte", b"P"),
        ("half a request line", b"POST /valid"),
        (
            "a head without its end",
            b"POST /validate HTTP/1.1\r\nHost: x\r\n",
        ),
    ];
    let mut tasks = Vec::new();
    for (what, bytes) in stalls {
        let mut s = connect(&c, addr, NAME).await.unwrap();
        s.write_all(bytes).await.unwrap();
        s.flush().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let (_, took) = until_closed(&mut s).await;
            (what, took)
        }));
    }
    // Slowloris proper: a header byte every 100 ms; trickling does not extend the timeout.
    let trickle = {
        let s = connect(&c, addr, NAME).await.unwrap();
        tokio::spawn(async move {
            let (mut read, mut write) = tokio::io::split(s);
            let started = Instant::now();
            let _ = write
                .write_all(b"POST /validate HTTP/1.1\r\nX-Slow: ")
                .await;
            let writer = async {
                for _ in 0..100 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if write.write_all(b"x").await.is_err() || write.flush().await.is_err() {
                        break;
                    }
                }
                std::future::pending::<()>().await;
            };
            tokio::select! {
                _ = until_closed(&mut read) => {}
                () = writer => {}
            }
            ("a header byte every 100 ms", started.elapsed())
        })
    };

    // Meanwhile others are served at once.
    let during = served(&pki, addr).await;
    assert!(during < Duration::from_secs(2), "served in {during:?}");

    tasks.push(trickle);
    for t in tasks {
        let (what, took) = t.await.unwrap();
        assert_between(
            what,
            took,
            Duration::from_millis(800),
            Duration::from_secs(5),
        );
    }
    served(&pki, addr).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let pki = Pki::new("test CA");
    let conn = ConnOptions {
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(1),
        ..ConnOptions::default()
    };
    let (server, _dir) = start(&pki, conn, Limits::default()).await;
    let addr = server.addr;

    // HTTP/2 (no header timeout applies): a client that sends its preface and SETTINGS, then
    // nothing, gets a GOAWAY and a close.
    let mut h2 = connect(&h2_connector(&pki), addr, NAME).await.unwrap();
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    h2.flush().await.unwrap();
    // HTTP/1.1 with a long header timeout: after one answer, the idle keep-alive connection.
    let mut h1 = connect(&default_connector(&pki), addr, NAME).await.unwrap();
    let body = fixture("rollout-create-valid.json");
    let head = request_head("POST", "/validate", body.len()).replace("Connection: close\r\n", "");
    h1.write_all(head.as_bytes()).await.unwrap();
    h1.write_all(&body).await.unwrap();
    h1.flush().await.unwrap();
    // An HTTP/1.1 connection that never sends a byte.
    let mut silent = connect(&default_connector(&pki), addr, NAME).await.unwrap();

    let (h2_bytes, h2_took) = until_closed(&mut h2).await;
    let frames = h2_frame_types(&h2_bytes);
    assert!(
        frames.contains(&0x7),
        "expected a GOAWAY frame, found types {frames:?}"
    );
    assert_between(
        "idle HTTP/2",
        h2_took,
        Duration::from_millis(900),
        Duration::from_secs(5),
    );
    let (h1_bytes, _) = until_closed(&mut h1).await;
    assert!(
        h1_bytes.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&h1_bytes)
    );
    let (_, silent_took) = until_closed(&mut silent).await;
    assert!(silent_took <= Duration::from_secs(5), "{silent_took:?}");

    served(&pki, addr).await;
    server.stop().await;
}

fn h2_connector(pki: &Pki) -> tokio_rustls::TlsConnector {
    let mut config = rustls::ClientConfig::builder_with_provider(common::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(pki.roots())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// The frame types in an HTTP/2 byte stream (server side: no preface).
fn h2_frame_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 9 {
        let len =
            (usize::from(bytes[0]) << 16) | (usize::from(bytes[1]) << 8) | usize::from(bytes[2]);
        types.push(bytes[3]);
        bytes = &bytes[(9 + len).min(bytes.len())..];
    }
    types
}

type H2Sender<B> = hyper::client::conn::http2::SendRequest<B>;

async fn h2_client<B>(pki: &Pki, addr: SocketAddr) -> H2Sender<B>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = connect(&h2_connector(pki), addr, NAME).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

async fn h2_post<B>(sender: &mut H2Sender<B>, body: B) -> (u16, Bytes)
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let request = hyper::Request::post(format!("https://{NAME}/validate"))
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let response = tokio::time::timeout(STEP, sender.send_request(request))
        .await
        .expect("answered in time")
        .expect("an HTTP/2 answer");
    let status = response.status().as_u16();
    let body = tokio::time::timeout(STEP, response.into_body().collect())
        .await
        .expect("body in time")
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_is_served_and_bodies_over_the_limit_get_413_on_their_stream_only() {
    let pki = Pki::new("test CA");
    let limits = Limits {
        max_body_bytes: 64 * 1024,
        ..Limits::default()
    };
    let (server, _dir) = start(&pki, ConnOptions::default(), limits).await;
    let valid = Bytes::from(fixture("rollout-create-valid.json"));

    let mut sender = h2_client::<Full<Bytes>>(&pki, server.addr).await;
    let (status, body) = h2_post(&mut sender, Full::new(valid.clone())).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["response"]["allowed"], true);
    // Over the limit with a known length: 413; the connection serves the next stream.
    let (status, _) = h2_post(&mut sender, Full::new(Bytes::from(vec![b' '; 128 * 1024]))).await;
    assert_eq!(status, 413);
    let (status, _) = h2_post(&mut sender, Full::new(valid.clone())).await;
    assert_eq!(status, 200);

    // Over the limit in a stream of unknown length: 413 once the limit is passed.
    type Chunks =
        StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>>;
    let mut streaming = h2_client::<Chunks>(&pki, server.addr).await;
    let chunks: Vec<Result<Frame<Bytes>, std::io::Error>> = (0..16)
        .map(|_| Ok(Frame::data(Bytes::from(vec![b' '; 16 * 1024]))))
        .collect();
    let (status, _) = h2_post(
        &mut streaming,
        StreamBody::new(futures::stream::iter(chunks)),
    )
    .await;
    assert_eq!(status, 413);
    let ok: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![Ok(Frame::data(valid.clone()))];
    let (status, _) = h2_post(&mut streaming, StreamBody::new(futures::stream::iter(ok))).await;
    assert_eq!(status, 200);

    // Many streams at once on one connection.
    let answers = futures::stream::iter(0..50)
        .map(|_| {
            let mut s = sender.clone();
            let body = Full::new(valid.clone());
            async move { h2_post(&mut s, body).await.0 }
        })
        .buffer_unordered(50)
        .collect::<Vec<_>>()
        .await;
    assert!(answers.iter().all(|s| *s == 200), "{answers:?}");
    served(&pki, server.addr).await;
    server.stop().await;
}

/// A request body for clients of either protocol.
type AnyBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// `len` bytes in 64 KiB frames, and a receiver that gets `()` once the client has taken the
/// last one to send, or an error as soon as the body is dropped before that (the server cut the
/// upload off: a reset stream or a closed connection). (With a declared length the client never
/// asks for the end of the body, so the last frame is the signal.)
fn upload(len: usize) -> (AnyBody, tokio::sync::oneshot::Receiver<()>) {
    let (sent, finished) = tokio::sync::oneshot::channel();
    let mut sent = Some(sent);
    let chunk = Bytes::from(vec![b' '; 64 * 1024]);
    let count = len.div_ceil(64 * 1024);
    let frames = (1..=count).map(move |i| {
        if i == count {
            if let Some(sent) = sent.take() {
                let _ = sent.send(());
            }
        }
        Ok::<_, std::io::Error>(Frame::data(chunk.clone()))
    });
    let body = BodyExt::boxed(StreamBody::new(futures::stream::iter(frames)));
    (body, finished)
}

/// One connection with hyper's client, HTTP/2 or HTTP/1.1 (chosen by ALPN).
enum Client {
    H1(hyper::client::conn::http1::SendRequest<AnyBody>),
    H2(hyper::client::conn::http2::SendRequest<AnyBody>),
}

impl Client {
    async fn connect(pki: &Pki, addr: SocketAddr, h2: bool) -> Client {
        let connector = if h2 {
            h2_connector(pki)
        } else {
            default_connector(pki)
        };
        let io = TokioIo::new(connect(&connector, addr, NAME).await.unwrap());
        if h2 {
            let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            Client::H2(sender)
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            Client::H1(sender)
        }
    }

    /// POSTs `body` to `/validate`, with `Content-Length` when `length` is given (HTTP/1.1
    /// chunked or HTTP/2 without `content-length` otherwise): the status and body of the
    /// answer, or what went wrong instead.
    async fn post(
        &mut self,
        body: AnyBody,
        length: Option<usize>,
    ) -> Result<(u16, String), String> {
        let mut request = hyper::Request::post(format!("https://{NAME}/validate"))
            .header("host", NAME)
            .header("content-type", "application/json");
        if let Some(length) = length {
            request = request.header("content-length", length);
        }
        let request = request.body(body).map_err(|e| e.to_string())?;
        let exchange = async {
            let response = match self {
                Client::H1(sender) => {
                    sender.ready().await?;
                    sender.send_request(request).await?
                }
                Client::H2(sender) => sender.send_request(request).await?,
            };
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, String::from_utf8_lossy(&body).to_string()))
        };
        match tokio::time::timeout(STEP, exchange).await {
            Err(_) => Err("no answer in time".into()),
            Ok(Err(e)) => Err(format!("{e:?}")),
            Ok(Ok(answer)) => Ok(answer),
        }
    }
}

/// At the default limit (7 MiB) a client sending 8 MiB gets its 413 over HTTP/1.1 and HTTP/2,
/// with its length declared or not, and may finish sending: the server reads the rest and
/// discards it rather than cutting the upload off under the answer (before, HTTP/1.1 with a
/// declared length saw a broken pipe instead of the 413, and HTTP/2 reset the stream mid-upload,
/// which curl 7.88 reports as "Stream error in the HTTP/2 framing layer" with no status). The
/// connection then serves the next request. Bodies larger than the flow-control windows and the
/// socket buffers are what matters: the client is still sending when the answer is ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_default_limit_get_413_over_http1_and_h2() {
    let pki = Pki::new("test CA");
    let (server, _dir) = start(&pki, ConnOptions::default(), Limits::default()).await;
    let over = DEFAULT_MAX_BODY_BYTES + 1024 * 1024;
    let valid = fixture("rollout-create-valid.json");
    let mut failures = Vec::new();
    for h2 in [false, true] {
        let protocol = if h2 { "HTTP/2" } else { "HTTP/1.1" };
        let mut client = Client::connect(&pki, server.addr, h2).await;
        for (shape, length) in [("declared", Some(over)), ("streamed", None)] {
            let (body, finished) = upload(over);
            match client.post(body, length).await {
                Ok((413, text)) if text.contains("too large") => {}
                other => failures.push(format!("{protocol} {shape}: {other:?}")),
            }
            match tokio::time::timeout(STEP, finished).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    failures.push(format!("{protocol} {shape}: the upload was cut off"));
                    client = Client::connect(&pki, server.addr, h2).await;
                    continue;
                }
                Err(_) => panic!("{protocol} {shape}: the upload neither finished nor failed"),
            }
            let body = Full::new(Bytes::from(valid.clone()))
                .map_err(|never| match never {})
                .boxed();
            match client.post(body, Some(valid.len())).await {
                Ok((200, _)) => {}
                other => failures.push(format!("{protocol} {shape}, the next request: {other:?}")),
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    served(&pki, server.addr).await;
    server.stop().await;
}

fn review_with_object(object: &str) -> Vec<u8> {
    format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"deep-1",
        "kind":{{"group":"networking.istio.io","version":"v1","kind":"VirtualService"}},
        "namespace":"shop","name":"deep","operation":"CREATE","userInfo":{{"username":"alice"}},
        "object":{object}}}}}"#
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_input_is_refused_without_a_stack_overflow() {
    let pki = Pki::new("test CA");
    let (server, _dir) = start(&pki, ConnOptions::default(), Limits::default()).await;
    let c = default_connector(&pki);
    let post = |path: &'static str, body: Vec<u8>| {
        let c = c.clone();
        let addr = server.addr;
        async move { common::post(&c, addr, NAME, path, &body).await.unwrap() }
    };

    // 100,000 `[`: serde_json stops at its recursion limit (128): 400 with a one-line reason.
    let deep = "[".repeat(100_000);
    for body in [
        deep.clone().into_bytes(),
        format!("{}{}", deep, "]".repeat(100_000)).into_bytes(),
        review_with_object(&deep),
        review_with_object(&"{\"a\":".repeat(100_000)),
    ] {
        for path in ["/validate", "/mutate"] {
            let a = post(path, body.clone()).await;
            assert_eq!(
                a.status,
                400,
                "{path}: {}",
                String::from_utf8_lossy(&a.body)
            );
            let reason = String::from_utf8_lossy(&a.body);
            assert!(reason.contains("recursion limit"), "{reason}");
            assert_eq!(reason.trim_end().lines().count(), 1, "{reason}");
        }
    }

    // Balanced nesting inside the object of a review with a uid, 100 and 100,000 deep: the
    // review is read, the object is not (200: denied on /validate, allowed on /mutate).
    for depth in [100, 100_000] {
        let object = format!(
            r#"{{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{{"name":"deep","namespace":"shop"}},"spec":{{"hosts":{}"x"{}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let a = post("/validate", review_with_object(&object)).await;
        assert_eq!(
            a.status,
            200,
            "{depth}: {}",
            String::from_utf8_lossy(&a.body)
        );
        let r = &a.json()["response"];
        assert_eq!(
            (r["uid"].as_str(), r["allowed"].as_bool()),
            (Some("deep-1"), Some(false))
        );
        assert!(r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot be read"));
        let a = post("/mutate", review_with_object(&object)).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.json()["response"]["allowed"], true);
    }

    served(&pki, server.addr).await;
    server.stop().await;
}

/// YAML (lint and the files source read it with the same loader): deep block nesting stops at
/// the parser's recursion limit, and deep flow nesting is refused before parsing, in linear time
/// (the parser's scanner is quadratic in flow depth: 400 KB took 32 s before the guard).
#[test]
fn deeply_nested_yaml_is_refused_quickly() {
    use rollout_guard::lint::{lint, Input};
    let started = Instant::now();
    for (text, expected) in [
        ("[".repeat(100_000), "nested at most 256"),
        (
            format!("a: {}", "{a: ".repeat(100_000)),
            "nested at most 256",
        ),
        (format!("[{}", "a: [".repeat(100_000)), "nested at most 256"),
        ("- ".repeat(100_000), "recursion limit"),
        (
            (0..1000)
                .map(|i| format!("{}a:\n", " ".repeat(i)))
                .collect(),
            "recursion limit",
        ),
    ] {
        let report = lint(&[Input {
            name: "deep.yaml".into(),
            text,
        }]);
        assert_eq!(report.summary.deny, 1, "{:?}", report.findings);
        let f = &report.findings[0];
        assert_eq!(f.rule.id(), "invalid-object");
        assert!(f.message.contains(expected), "{}", f.message);
    }
    // Billion laughs: aliases are not expanded without bound.
    let mut laughs = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
    {
        laughs.push_str(&format!(
            "{name}: &{name} [{}]\n",
            vec![format!("*{prev}"); 9].join(",")
        ));
    }
    laughs.push_str("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n");
    let report = lint(&[Input {
        name: "laughs.yaml".into(),
        text: laughs,
    }]);
    assert_eq!(report.summary.deny, 1, "{:?}", report.findings);
    assert!(
        report.findings[0].message.contains("repetition limit"),
        "{}",
        report.findings[0].message
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// Found while hardening: a 7 MiB `[0,0,…]` review decodes to about 120 MiB of JSON values, so a
/// few at once went past the Deployment's 256 MiB limit. Bodies and their estimated parsed size
/// now share a budget (`--max-inflight-mib`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_share_a_memory_budget() {
    let pki = Pki::new("test CA");
    let limits = Limits {
        max_inflight_bytes: 1024 * 1024,
        request_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let (server, _dir) = start(&pki, ConnOptions::default(), limits).await;
    let addr = server.addr;
    let c = default_connector(&pki);

    // Alone too much once parsed (600 KB of `0,`): 413 before parsing.
    let zeros = review_with_object(&format!("[{}0]", "0,".repeat(300_000)));
    let a = common::post(&c, addr, NAME, "/validate", &zeros)
        .await
        .unwrap();
    assert_eq!(a.status, 413, "{}", String::from_utf8_lossy(&a.body));
    assert!(String::from_utf8_lossy(&a.body).contains("too large to decode"));
    served(&pki, addr).await;

    // No room in time: 503. A chunked request (no declared length) starts first; a second one
    // declares 900 KB and holds that share while its body trickles; the first's next chunk then
    // finds no room before its own deadline.
    let mut first = connect(&c, addr, NAME).await.unwrap();
    first
        .write_all(b"POST /validate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    first.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut holder = connect(&c, addr, NAME).await.unwrap();
    holder
        .write_all(request_head("POST", "/validate", 900_000).as_bytes())
        .await
        .unwrap();
    holder.write_all(b"{").await.unwrap();
    holder.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let chunk = 200 * 1024;
    first
        .write_all(format!("{chunk:x}\r\n{}\r\n0\r\n\r\n", " ".repeat(chunk)).as_bytes())
        .await
        .unwrap();
    first.flush().await.unwrap();
    let a = common::read_answer(&mut first).await.unwrap();
    assert_eq!(a.status, 503, "{}", String::from_utf8_lossy(&a.body));
    let a = common::read_answer(&mut holder).await.unwrap();
    assert_eq!(a.status, 408, "{}", String::from_utf8_lossy(&a.body));
    // Shares are given back: served as usual.
    served(&pki, addr).await;
    let text = server.metrics_text();
    assert!(text.contains(r#"decision="busy"} 1"#), "{text}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_idle_connections_do_not_starve_other_clients() {
    let pki = Pki::new("test CA");
    // A cap above them (the default, 256, would make new clients wait for the idle ones to time
    // out: that case is the next test).
    let conn = ConnOptions {
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        max_connections: 1024,
        ..ConnOptions::default()
    };
    let (server, _dir) = start(&pki, conn, Limits::default()).await;
    let addr = server.addr;
    let c = default_connector(&pki);
    let rss_before = rss_kib();

    let idle: Vec<_> = futures::stream::iter(0..500)
        .map(|_| {
            let c = c.clone();
            async move { connect(&c, addr, NAME).await.expect("an idle connection") }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert_eq!(idle.len(), 500);

    // While they are open: one client after another, then a burst, each served promptly.
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        slowest = slowest.max(served(&pki, addr).await);
    }
    let burst: Vec<Duration> = futures::stream::iter(0..20)
        .map(|_| served(&pki, addr))
        .buffer_unordered(20)
        .collect()
        .await;
    slowest = slowest.max(burst.into_iter().max().unwrap_or_default());
    assert!(
        slowest < Duration::from_secs(3),
        "slowest answer {slowest:?} with 500 idle connections"
    );
    eprintln!(
        "500 idle TLS connections (both ends in this process): RSS {} → {} KiB; slowest answer {slowest:?}",
        rss_before,
        rss_kib()
    );

    drop(idle);
    served(&pki, addr).await;
    server.stop().await;
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_new_clients_wait_until_a_connection_closes() {
    let pki = Pki::new("test CA");
    let conn = ConnOptions {
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(60),
        max_connections: 8,
        ..ConnOptions::default()
    };
    let (server, _dir) = start(&pki, conn, Limits::default()).await;
    let addr = server.addr;
    let c = default_connector(&pki);
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(connect(&c, addr, NAME).await.unwrap());
    }
    // The ninth waits in the backlog until the header timeout frees a slot, then is served.
    let waited = served(&pki, addr).await;
    assert!(
        waited >= Duration::from_millis(500),
        "served after {waited:?}: the cap did not hold"
    );
    for mut s in idle {
        until_closed(&mut s).await;
    }
    let after = served(&pki, addr).await;
    assert!(after < Duration::from_secs(2), "{after:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_garbage_and_plain_http_are_dropped_and_the_server_keeps_serving() {
    let pki = Pki::new("test CA");
    let conn = ConnOptions {
        handshake_timeout: Duration::from_secs(1),
        ..ConnOptions::default()
    };
    let (server, _dir) = start(&pki, conn, Limits::default()).await;
    let addr = server.addr;
    let raw = || async move { TcpStream::connect(addr).await.unwrap() };

    // A ClientHello record that announces 512 bytes and stalls after 10: the handshake timeout.
    let mut stalled = raw().await;
    stalled
        .write_all(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0, 0, 0, 0,
        ])
        .await
        .unwrap();
    let stalled = tokio::spawn(async move { until_closed(&mut stalled).await.1 });

    // Random bytes, several seeds.
    for seed in 1..=8 {
        let mut s = raw().await;
        let _ = s.write_all(&noise(seed, 16 * 1024)).await;
        let (_, took) = until_closed(&mut s).await;
        assert!(took <= Duration::from_secs(3), "seed {seed}: {took:?}");
    }
    // Plain HTTP on the TLS port: no plaintext answer, closed.
    let mut s = raw().await;
    let body = fixture("rollout-create-valid.json");
    s.write_all(request_head("POST", "/validate", body.len()).as_bytes())
        .await
        .unwrap();
    let _ = s.write_all(&body).await;
    let (got, took) = until_closed(&mut s).await;
    assert!(
        !got.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(took <= Duration::from_secs(3), "{took:?}");
    // Garbage records after a completed handshake (bypassing TLS): the connection is closed.
    let mut tls = connect(&default_connector(&pki), addr, NAME).await.unwrap();
    let _ = tls.get_mut().0.write_all(&noise(99, 4096)).await;
    let (_, took) = until_closed(&mut tls).await;
    assert!(took <= Duration::from_secs(3), "{took:?}");

    let during = served(&pki, addr).await;
    assert!(during < Duration::from_secs(2), "{during:?}");
    let took = stalled.await.unwrap();
    assert_between(
        "a stalled ClientHello",
        took,
        Duration::from_millis(800),
        Duration::from_secs(4),
    );
    served(&pki, addr).await;
    server.stop().await;
}

/// The admin port (plain HTTP/1.1) has the same header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_port_cuts_off_slow_heads_too() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/livez", axum::routing::get(|| async { "ok\n" }));
    let stop = tokio_util::sync::CancellationToken::new();
    let conn = ConnOptions {
        header_read_timeout: Duration::from_secs(1),
        ..ConnOptions::default()
    };
    let serving = tokio::spawn(https::serve_plain(listener, app, conn, stop.clone()));

    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /liv").await.unwrap();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert_eq!(common::get(addr, "/livez").await.unwrap().status, 200);
    let (slow, silent) = tokio::join!(until_closed(&mut slow), until_closed(&mut silent));
    for (what, (_, took)) in [("slow head", slow), ("silent", silent)] {
        assert_between(
            what,
            took,
            Duration::from_millis(700),
            Duration::from_secs(5),
        );
    }
    assert_eq!(common::get(addr, "/livez").await.unwrap().status, 200);
    stop.cancel();
    let drained = tokio::time::timeout(STEP, serving).await.unwrap().unwrap();
    assert_eq!(drained, https::Drained::Complete);
}
