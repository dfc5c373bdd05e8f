//! `rollout-guard dev-certs --out DIR`: a development CA and a serving certificate signed by it,
//! for `make run` and for registering the webhooks against a local API server. Not for
//! production (use cert-manager or your own PKI there).
//!
//! Writes `ca.crt`, `ca.key`, `tls.crt`, `tls.key` (ECDSA P-256; keys mode 0600). Existing files
//! are never overwritten without `--force`.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// The serving certificate's names: loopback and the in-cluster Service `rollout-guard` in
/// namespace `rollout-guard`.
pub const DEFAULT_SANS: &[&str] = &[
    "127.0.0.1",
    "localhost",
    "rollout-guard",
    "rollout-guard.rollout-guard",
    "rollout-guard.rollout-guard.svc",
    "rollout-guard.rollout-guard.svc.cluster.local",
];

pub const FILES: [&str; 4] = ["ca.crt", "ca.key", "tls.crt", "tls.key"];

/// PEM texts of a CA and a serving pair.
pub struct DevCerts {
    pub ca_cert: String,
    pub ca_key: String,
    pub tls_cert: String,
    pub tls_key: String,
}

fn current_year() -> i32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Close enough for validity bounds that start a year back.
    1970 + i32::try_from(secs / 31_556_952).unwrap_or(0)
}

/// Generates a CA (valid 10 years) and a serving certificate for `sans` (valid 2 years).
pub fn generate(sans: &[String]) -> Result<DevCerts, rcgen::Error> {
    let year = current_year();
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "rollout-guard development CA");
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    ca.not_after = rcgen::date_time_ymd(year + 10, 1, 1);
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, &ca_key);

    let tls_key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(sans.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "rollout-guard");
    leaf.distinguished_name = dn;
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(year + 2, 1, 1);
    let tls_cert = leaf.signed_by(&tls_key, &issuer)?;
    Ok(DevCerts {
        ca_cert: ca_cert.pem(),
        ca_key: ca_key.serialize_pem(),
        tls_cert: tls_cert.pem(),
        tls_key: tls_key.serialize_pem(),
    })
}

/// Writes the four files into `out` (created if missing). Without `force`, refuses when any of
/// them exists, before writing anything.
pub fn write(out: &Path, sans: &[String], force: bool) -> anyhow::Result<Vec<PathBuf>> {
    let paths: Vec<PathBuf> = FILES.iter().map(|f| out.join(f)).collect();
    if !force {
        let existing: Vec<String> = paths
            .iter()
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            anyhow::bail!(
                "{} already exist{}; use --force to replace",
                existing.join(", "),
                if existing.len() == 1 { "s" } else { "" }
            );
        }
    }
    std::fs::create_dir_all(out)
        .map_err(|e| anyhow::anyhow!("{}: cannot create folder: {e}", out.display()))?;
    let certs = generate(sans).map_err(|e| anyhow::anyhow!("cannot generate certificates: {e}"))?;
    let contents = [
        (&certs.ca_cert, false),
        (&certs.ca_key, true),
        (&certs.tls_cert, false),
        (&certs.tls_key, true),
    ];
    for (path, (text, secret)) in paths.iter().zip(contents) {
        write_file(path, text, secret)
            .map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", path.display()))?;
    }
    Ok(paths)
}

fn write_file(path: &Path, text: &str, secret: bool) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    std::io::Write::write_all(&mut options.open(path)?, text.as_bytes())
}

/// The command: returns the exit code.
pub fn run(out: &Path, extra_sans: &[String], force: bool) -> i32 {
    let mut sans: Vec<String> = DEFAULT_SANS.iter().map(|s| s.to_string()).collect();
    sans.extend(extra_sans.iter().cloned());
    match write(out, &sans, force) {
        Ok(paths) => {
            for p in paths {
                println!("wrote {}", p.display());
            }
            0
        }
        Err(e) => {
            eprintln!("rollout-guard dev-certs: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::tls;

    #[test]
    fn writes_a_usable_pair_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let sans: Vec<String> = DEFAULT_SANS.iter().map(|s| s.to_string()).collect();
        let paths = write(dir.path(), &sans, false).unwrap();
        assert_eq!(paths.len(), 4);
        let files = tls::CertFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
        };
        assert!(files.load(&tls::provider()).is_ok());
        let before = std::fs::read(dir.path().join("tls.crt")).unwrap();
        let err = write(dir.path(), &sans, false).unwrap_err().to_string();
        assert!(err.contains("--force"), "{err}");
        assert_eq!(std::fs::read(dir.path().join("tls.crt")).unwrap(), before);
        write(dir.path(), &sans, true).unwrap();
        assert_ne!(std::fs::read(dir.path().join("tls.crt")).unwrap(), before);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("tls.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn the_serving_certificate_verifies_against_the_ca_for_every_name() {
        let sans: Vec<String> = DEFAULT_SANS.iter().map(|s| s.to_string()).collect();
        let certs = generate(&sans).unwrap();
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(certs.ca_cert.as_bytes()).unwrap())
            .unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots.into(),
            tls::provider(),
        )
        .build()
        .unwrap();
        let leaf = CertificateDer::from_pem_slice(certs.tls_cert.as_bytes()).unwrap();
        for name in DEFAULT_SANS {
            let server_name = ServerName::try_from(*name).unwrap();
            rustls::client::danger::ServerCertVerifier::verify_server_cert(
                &*verifier,
                &leaf,
                &[],
                &server_name,
                &[],
                UnixTime::now(),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
