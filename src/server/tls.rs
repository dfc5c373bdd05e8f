//! TLS: rustls with the ring provider, TLS 1.2 and 1.3 only, and a serving certificate that is
//! swapped without a restart.
//!
//! [`CertResolver`] hands every handshake the current [`CertifiedKey`] from an `ArcSwap` (a
//! lock-free load). [`CertWatcher`] re-reads the certificate and key files every interval
//! (through their paths, so a Kubernetes Secret's `..data` symlink swap is seen like a plain
//! overwrite), and when the bytes differ from the pair in use it parses them, checks that the
//! key matches the certificate and stores the new pair. A pair that does not load keeps the old
//! one serving; it is reported (error log, `rollout_guard_tls_reloads_total{result="failure"}`)
//! once it has stayed the same for one interval, so that a rotation caught between writing the
//! certificate and writing the key is not reported.
//!
//! `--client-ca` is read once at start (a new CA needs a restart).

use crate::metrics::Metrics;
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The only protocol versions the server is built with. rustls implements nothing older.
pub const PROTOCOL_VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The crypto provider of the whole process.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM certificate chain and key and checks that they belong together.
pub fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("expected PEM certificates, found an error: {e}"))?;
    if chain.is_empty() {
        return Err("expected a PEM certificate (BEGIN CERTIFICATE), found none".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("expected a PEM private key, found: {e}"))?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("the private key cannot be used: {e}"))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err("the private key does not match the certificate".into())
        }
        Err(e) => Err(format!("the certificate cannot be read: {e}")),
    }
}

/// The certificate and key files (`--tls-cert`, `--tls-key`).
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The bytes of both files, or why they could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Pair(Vec<u8>, Vec<u8>),
    Unreadable(String),
}

impl CertFiles {
    fn read(&self) -> Seen {
        let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        match (read(&self.cert), read(&self.key)) {
            (Ok(c), Ok(k)) => Seen::Pair(c, k),
            (Err(e), _) | (_, Err(e)) => Seen::Unreadable(format!("cannot read {e}")),
        }
    }

    /// Loads the pair once.
    pub fn load(&self, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
        match self.read() {
            Seen::Pair(c, k) => certified_key(&c, &k, provider),
            Seen::Unreadable(e) => Err(e),
        }
    }
}

/// Gives every handshake the current certificate; swapped lock-free.
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
}

impl CertResolver {
    pub fn new(key: CertifiedKey) -> Self {
        CertResolver {
            current: ArcSwap::from_pointee(key),
        }
    }

    pub fn store(&self, key: CertifiedKey) {
        self.current.store(Arc::new(key));
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The server configuration: TLS 1.2/1.3, ALPN h2 and http/1.1, the resolver's certificate,
/// and with `client_ca` client certificates required and verified against it.
pub fn server_config(
    resolver: Arc<CertResolver>,
    client_ca: Option<&Path>,
    provider: Arc<CryptoProvider>,
) -> anyhow::Result<ServerConfig> {
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(|e| anyhow::anyhow!("TLS configuration: {e}"))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("--client-ca {}: cannot read: {e}", path.display()))?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    anyhow::anyhow!(
                        "--client-ca {}: expected PEM certificates: {e}",
                        path.display()
                    )
                })?;
                roots.add(cert).map_err(|e| {
                    anyhow::anyhow!(
                        "--client-ca {}: a certificate cannot be used: {e}",
                        path.display()
                    )
                })?;
            }
            if roots.is_empty() {
                anyhow::bail!(
                    "--client-ca {}: expected at least one PEM certificate, found none",
                    path.display()
                );
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| anyhow::anyhow!("--client-ca {}: {e}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Sets `rollout_guard_tls_certificate_expiry_timestamp_seconds` from the served chain's first
/// certificate.
fn record_expiry(metrics: &Metrics, cert_pem: &[u8]) {
    if let Some(t) = std::str::from_utf8(cert_pem)
        .ok()
        .and_then(crate::server::self_certs::not_after)
    {
        metrics.tls_certificate_expiry(t);
    }
}

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// The files hold the pair in use.
    Unchanged,
    /// A new pair is in use.
    Reloaded,
    /// A new pair did not load; waiting one interval before reporting it.
    Pending,
    /// A new pair did not load and stayed so: reported; the old pair keeps serving.
    Failed(String),
    /// Still the same broken pair, already reported.
    StillBroken,
}

/// Polls the certificate files and swaps in new pairs.
pub struct CertWatcher {
    files: CertFiles,
    resolver: Arc<CertResolver>,
    provider: Arc<CryptoProvider>,
    metrics: Arc<Metrics>,
    active: Seen,
    previous: Option<Seen>,
    reported: Option<Seen>,
}

impl CertWatcher {
    /// Loads the pair (an error here stops the server) and returns the resolver that serves it
    /// with the watcher that keeps it current. The files are read once, so the watcher knows
    /// exactly which bytes are in use.
    pub fn load(
        files: CertFiles,
        provider: Arc<CryptoProvider>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<(Arc<CertResolver>, CertWatcher)> {
        let active = files.read();
        let key = match &active {
            Seen::Pair(c, k) => certified_key(c, k, &provider).map_err(|e| {
                anyhow::anyhow!(
                    "--tls-cert {} / --tls-key {}: {e}",
                    files.cert.display(),
                    files.key.display()
                )
            })?,
            Seen::Unreadable(e) => anyhow::bail!("--tls-cert/--tls-key: {e}"),
        };
        let resolver = Arc::new(CertResolver::new(key));
        if let Seen::Pair(c, _) = &active {
            record_expiry(&metrics, c);
        }
        let watcher = CertWatcher {
            files,
            resolver: resolver.clone(),
            provider,
            metrics,
            active,
            previous: None,
            reported: None,
        };
        Ok((resolver, watcher))
    }

    pub fn poll(&mut self) -> Poll {
        let seen = self.files.read();
        let result = if seen == self.active {
            self.reported = None;
            Poll::Unchanged
        } else if self.reported.as_ref() == Some(&seen) {
            Poll::StillBroken
        } else {
            let loaded = match &seen {
                Seen::Pair(c, k) => certified_key(c, k, &self.provider),
                Seen::Unreadable(e) => Err(e.clone()),
            };
            match loaded {
                Ok(key) => {
                    self.resolver.store(key);
                    if let Seen::Pair(c, _) = &seen {
                        record_expiry(&self.metrics, c);
                    }
                    self.active = seen.clone();
                    self.reported = None;
                    self.metrics.tls_reload(true);
                    tracing::info!(
                        cert = %self.files.cert.display(),
                        "serving certificate reloaded"
                    );
                    Poll::Reloaded
                }
                Err(e) if self.previous.as_ref() == Some(&seen) => {
                    self.reported = Some(seen.clone());
                    self.metrics.tls_reload(false);
                    tracing::error!(
                        cert = %self.files.cert.display(),
                        key = %self.files.key.display(),
                        error = %e,
                        "the new certificate and key do not load; the previous pair keeps serving"
                    );
                    Poll::Failed(e)
                }
                Err(_) => Poll::Pending,
            }
        };
        self.previous = Some(seen);
        result
    }

    /// Polls every `interval` until the task is aborted.
    pub async fn run(mut self, interval: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            self.poll();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn pairs_are_checked() {
        let p = provider();
        let (c1, k1) = pair("one.test");
        let (_, k2) = pair("two.test");
        assert!(certified_key(c1.as_bytes(), k1.as_bytes(), &p).is_ok());
        let err = certified_key(c1.as_bytes(), k2.as_bytes(), &p)
            .err()
            .unwrap();
        assert!(err.contains("does not match"), "{err}");
        let err = certified_key(b"garbage", k1.as_bytes(), &p).err().unwrap();
        assert!(err.contains("found none"), "{err}");
        let err = certified_key(c1.as_bytes(), b"", &p).err().unwrap();
        assert!(err.contains("private key"), "{err}");
        let broken = c1.replace("MII", "MIX");
        assert!(certified_key(broken.as_bytes(), k1.as_bytes(), &p).is_err());
    }

    #[test]
    fn only_tls12_and_tls13() {
        let versions: Vec<_> = PROTOCOL_VERSIONS.iter().map(|v| v.version).collect();
        assert_eq!(
            versions,
            [
                rustls::ProtocolVersion::TLSv1_3,
                rustls::ProtocolVersion::TLSv1_2
            ]
        );
    }

    #[test]
    fn watcher_reloads_and_reports_broken_pairs_once() {
        let dir = tempfile::tempdir().unwrap();
        let files = CertFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
        };
        let write = |(c, k): &(String, String)| {
            std::fs::write(&files.cert, c).unwrap();
            std::fs::write(&files.key, k).unwrap();
        };
        let first = pair("one.test");
        write(&first);
        let metrics = Arc::new(Metrics::new());
        let (resolver, mut w) = CertWatcher::load(files.clone(), provider(), metrics).unwrap();
        assert_eq!(w.poll(), Poll::Unchanged);

        let second = pair("two.test");
        write(&second);
        assert_eq!(w.poll(), Poll::Reloaded);
        let served = resolver.current().cert[0].clone();
        assert_eq!(
            served.as_ref(),
            CertificateDer::from_pem_slice(second.0.as_bytes())
                .unwrap()
                .as_ref()
        );

        std::fs::write(&files.cert, "garbage").unwrap();
        assert_eq!(w.poll(), Poll::Pending);
        assert!(matches!(w.poll(), Poll::Failed(_)));
        assert_eq!(w.poll(), Poll::StillBroken);
        assert_eq!(resolver.current().cert[0], served, "old pair kept");

        std::fs::write(&files.cert, &second.0).unwrap();
        assert_eq!(w.poll(), Poll::Unchanged);
        std::fs::remove_file(&files.key).unwrap();
        assert_eq!(w.poll(), Poll::Pending);
        assert!(matches!(w.poll(), Poll::Failed(e) if e.contains("cannot read")));
    }
}
