//! Helpers shared by the router, TLS and shutdown tests: fixtures, the example state, a small PKI
//! made with rcgen, an in-process TLS server and a raw HTTP/1.1-over-TLS client.
#![allow(dead_code)]

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rollout_guard::admission::Policy;
use rollout_guard::index::SharedIndex;
use rollout_guard::metrics::Metrics;
use rollout_guard::server::{https, router, tls};
use rollout_guard::source::files::FilesSource;
use rollout_guard::source::SourceStatus;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

/// Every network step of a test is bounded by this.
pub const STEP: Duration = Duration::from_secs(10);

pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(repo(&format!("tests/fixtures/reviews/{name}")))
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The index of `examples/manifests` (the state `make run` serves).
pub fn example_index() -> SharedIndex {
    let mut source = FilesSource::new(repo("examples/manifests"));
    let scan = source.scan();
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    let mut warnings = Vec::new();
    let index = source.index(&mut warnings);
    assert!(warnings.is_empty(), "{warnings:?}");
    SharedIndex::new(index)
}

pub fn loaded_status() -> Arc<SourceStatus> {
    let status = Arc::new(SourceStatus::new(Duration::from_secs(60)));
    status.set_loaded();
    status
}

pub fn app_with(limits: router::Limits, metrics: Arc<Metrics>) -> axum::Router {
    router::router(router::AppState::new(
        example_index(),
        Policy::default(),
        loaded_status(),
        metrics,
        limits,
    ))
}

pub fn app() -> axum::Router {
    app_with(router::Limits::default(), Arc::new(Metrics::new()))
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    tls::provider()
}

/// A certificate and key in PEM.
#[derive(Clone)]
pub struct Pair {
    pub cert: String,
    pub key: String,
}

impl Pair {
    pub fn der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(self.cert.as_bytes()).unwrap()
    }

    pub fn write(&self, cert: &Path, key: &Path) {
        std::fs::write(cert, &self.cert).unwrap();
        std::fs::write(key, &self.key).unwrap();
    }
}

/// A test CA that issues server and client certificates.
pub struct Pki {
    pub ca_cert: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        Pki {
            ca_cert: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn issue(&self, sans: &[&str], usage: ExtendedKeyUsagePurpose) -> Pair {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            sans.first().copied().unwrap_or("client"),
        );
        params.distinguished_name = dn;
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    pub fn server(&self, sans: &[&str]) -> Pair {
        self.issue(sans, ExtendedKeyUsagePurpose::ServerAuth)
    }

    pub fn client(&self, name: &str) -> Pair {
        self.issue(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }

    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca_cert.as_bytes()).unwrap())
            .unwrap();
        roots
    }
}

/// A rustls client trusting `pki`, limited to `versions`, optionally with a client certificate.
pub fn connector(
    pki: &Pki,
    versions: &[&'static SupportedProtocolVersion],
    client: Option<&Pair>,
) -> TlsConnector {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(pki.roots());
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(pair) => builder
            .with_client_auth_cert(
                vec![pair.der()],
                PrivateKeyDer::from_pem_slice(pair.key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    TlsConnector::from(Arc::new(config))
}

pub fn default_connector(pki: &Pki) -> TlsConnector {
    connector(pki, rustls::DEFAULT_VERSIONS, None)
}

pub async fn connect(
    connector: &TlsConnector,
    addr: SocketAddr,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    let step = async {
        let tcp = TcpStream::connect(addr).await?;
        connector.connect(server_name, tcp).await
    };
    tokio::time::timeout(STEP, step)
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))?
}

/// An HTTP answer read off the wire.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "expected JSON, found {e}: {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

pub fn request_head(method: &str, path: &str, content_length: usize) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: rollout-guard\r\nContent-Type: application/json\r\n\
         Content-Length: {content_length}\r\nConnection: close\r\n\r\n"
    )
}

/// Reads an HTTP/1.1 answer until the server closes the connection.
pub async fn read_answer<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
) -> std::io::Result<Answer> {
    let mut raw = Vec::new();
    let read = tokio::time::timeout(STEP, stream.read_to_end(&mut raw)).await;
    match read {
        Err(_) => return Err(std::io::Error::other("answer timed out")),
        // A TLS peer that closes without close_notify: keep what arrived.
        Ok(Err(e)) if raw.is_empty() => return Err(e),
        Ok(_) => {}
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP head in {} bytes", raw.len())))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    Ok(Answer {
        status,
        head,
        body: raw[split + 4..].to_vec(),
    })
}

/// POSTs `body` over a new TLS connection.
pub async fn post(
    connector: &TlsConnector,
    addr: SocketAddr,
    name: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<Answer> {
    let mut stream = connect(connector, addr, name).await?;
    stream
        .write_all(request_head("POST", path, body.len()).as_bytes())
        .await?;
    stream.write_all(body).await?;
    stream.flush().await?;
    read_answer(&mut stream).await
}

/// A plain HTTP GET (admin port).
pub async fn get(addr: SocketAddr, path: &str) -> std::io::Result<Answer> {
    let step = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        read_answer(&mut stream).await
    };
    tokio::time::timeout(STEP, step)
        .await
        .map_err(|_| std::io::Error::other("GET timed out"))?
}

/// Polls `check` every 25 ms until it is true; panics after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The admission server in-process over TLS: example state, certificate files watched every
/// 50 ms.
pub struct TlsServer {
    pub addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    pub index: SharedIndex,
    shutdown: CancellationToken,
    serving: tokio::task::JoinHandle<https::Drained>,
    watcher: tokio::task::JoinHandle<()>,
}

impl TlsServer {
    pub async fn start(files: tls::CertFiles, client_ca: Option<&Path>) -> TlsServer {
        let conn = https::ConnOptions {
            drain_timeout: Duration::from_secs(5),
            ..https::ConnOptions::default()
        };
        TlsServer::start_with(files, client_ca, conn, router::Limits::default()).await
    }

    /// With the connection options and request limits given.
    pub async fn start_with(
        files: tls::CertFiles,
        client_ca: Option<&Path>,
        conn: https::ConnOptions,
        limits: router::Limits,
    ) -> TlsServer {
        let provider = provider();
        let metrics = Arc::new(Metrics::new());
        let (resolver, watcher) =
            tls::CertWatcher::load(files, provider.clone(), metrics.clone()).unwrap();
        let config = tls::server_config(resolver, client_ca, provider).unwrap();
        let watcher = tokio::spawn(watcher.run(Duration::from_millis(50)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let index = example_index();
        let app = router::router(router::AppState::new(
            index.clone(),
            Policy::default(),
            loaded_status(),
            metrics.clone(),
            limits,
        ));
        let shutdown = CancellationToken::new();
        let serving = tokio::spawn(https::serve(
            listener,
            Arc::new(config),
            app,
            conn,
            shutdown.clone(),
        ));
        TlsServer {
            addr,
            metrics,
            index,
            shutdown,
            serving,
            watcher,
        }
    }

    pub fn metrics_text(&self) -> String {
        let index = self.index.snapshot();
        self.metrics
            .encode(&index, &SourceStatus::new(Duration::from_secs(60)))
    }

    pub async fn stop(self) -> https::Drained {
        self.shutdown.cancel();
        self.watcher.abort();
        tokio::time::timeout(STEP, self.serving)
            .await
            .expect("drain within the step")
            .expect("serve task")
    }
}
