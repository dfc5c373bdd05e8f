//! `serve --certificates self`: rollout-guard keeps its own CA and serving certificate.
//!
//! This module is the pure part: what a stored pair is worth at a given time ([`decide`]) and
//! the new pair when it is worth nothing more ([`renew`]). [`cluster`] reads and writes the
//! Secret, injects the CA into the webhook configurations and swaps the served pair.
//!
//! The Secret holds `ca.crt` (the CAs the API server is to trust, the signing one first, older
//! ones kept while they are still valid so that a CA rotation never leaves a served certificate
//! untrusted), `ca.key` (the signing CA's key), `tls.crt` and `tls.key` (the serving pair).
//! A certificate is renewed once two thirds of its lifetime have passed.

pub mod cluster;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::RootCertStore;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// The Secret's keys.
pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const TLS_CERT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";

/// At most this many CAs stay in the bundle (the signing one and those it replaced).
const MAX_BUNDLE: usize = 3;

/// What the certificates are issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// DNS names or IP addresses of the serving certificate (the Service names the API server
    /// dials, or 127.0.0.1 for a webhook registered by URL).
    pub sans: Vec<String>,
    /// Lifetime of the serving certificate.
    pub validity: Duration,
    /// Lifetime of the CA.
    pub ca_validity: Duration,
}

impl Settings {
    /// Checks the settings before anything is issued with them.
    pub fn check(&self) -> Result<(), String> {
        if self.sans.is_empty() {
            return Err(
                "--certificates self: expected at least one --cert-san (the Service DNS name the \
                 API server dials), found none"
                    .into(),
            );
        }
        for san in &self.sans {
            san_type(san)?;
        }
        if self.validity < Duration::from_secs(30) {
            return Err(format!(
                "--cert-validity: expected at least 30s, found {}s",
                self.validity.as_secs()
            ));
        }
        if self.ca_validity < self.validity * 2 {
            return Err(format!(
                "--ca-validity: expected at least twice --cert-validity ({}s), found {}s",
                self.validity.as_secs() * 2,
                self.ca_validity.as_secs()
            ));
        }
        Ok(())
    }
}

fn san_type(san: &str) -> Result<SanType, String> {
    if let Ok(ip) = san.parse::<std::net::IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let invalid = || format!("--cert-san: expected a DNS name or an IP address, found {san:?}");
    // rustls's check is the one a TLS client applies to the name it dials.
    ServerName::try_from(san.to_string()).map_err(|_| invalid())?;
    let name = san.to_string().try_into().map_err(|_| invalid())?;
    Ok(SanType::DnsName(name))
}

/// The PEM texts of the Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pki {
    /// The trusted CAs, the signing one first.
    pub ca_bundle: String,
    pub ca_key: String,
    pub tls_cert: String,
    pub tls_key: String,
}

impl Pki {
    /// Reads the Secret's data; a missing or non-UTF-8 key is an error naming it.
    pub fn from_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Pki, String> {
        let get = |key: &str| -> Result<String, String> {
            let bytes = data
                .get(key)
                .ok_or_else(|| format!("expected the key {key:?}, found none"))?;
            String::from_utf8(bytes.clone())
                .map_err(|_| format!("expected PEM text under {key:?}, found binary data"))
        };
        Ok(Pki {
            ca_bundle: get(CA_CERT)?,
            ca_key: get(CA_KEY)?,
            tls_cert: get(TLS_CERT)?,
            tls_key: get(TLS_KEY)?,
        })
    }

    pub fn to_data(&self) -> BTreeMap<String, Vec<u8>> {
        [
            (CA_CERT, &self.ca_bundle),
            (CA_KEY, &self.ca_key),
            (TLS_CERT, &self.tls_cert),
            (TLS_KEY, &self.tls_key),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
    }
}

/// What a stored pair is worth now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Valid; look at it again at `renew_at` (Unix seconds) at the latest.
    Keep { renew_at: i64 },
    /// A new serving certificate from the signing CA, and why.
    RenewServing(String),
    /// A new CA (the valid older ones stay trusted) and a new serving certificate, and why.
    RenewCa(String),
}

/// The validity window of one certificate, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub not_before: i64,
    pub not_after: i64,
}

impl Window {
    /// Two thirds into the lifetime: from here on the certificate is renewed.
    pub fn renew_at(&self) -> i64 {
        self.not_before + (self.not_after - self.not_before) * 2 / 3
    }

    pub fn renewal_due(&self, now: i64) -> bool {
        now >= self.renew_at()
    }

    pub fn valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now < self.not_after
    }
}

/// The facts of one certificate the decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub window: Window,
    pub serial: Vec<u8>,
    pub sans: BTreeSet<String>,
    pub spki: Vec<u8>,
    pub is_ca: bool,
}

/// Parses the certificates of a PEM text, in order.
pub fn parse_pem_certs(pem: &str) -> Result<Vec<(CertificateDer<'static>, CertInfo)>, String> {
    let ders = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("expected PEM certificates, found an error: {e}"))?;
    if ders.is_empty() {
        return Err("expected a PEM certificate (BEGIN CERTIFICATE), found none".into());
    }
    ders.into_iter()
        .map(|der| {
            let info = cert_info(&der)?;
            Ok((der, info))
        })
        .collect()
}

/// The facts of a DER certificate.
pub fn cert_info(der: &CertificateDer<'_>) -> Result<CertInfo, String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("expected an X.509 certificate, found: {e}"))?;
    let mut sans = BTreeSet::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => {
                    sans.insert(d.to_string());
                }
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(std::net::IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes)
                            .ok()
                            .map(std::net::IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        sans.insert(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        window: Window {
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        },
        serial: cert.raw_serial().to_vec(),
        sans,
        spki: cert.public_key().raw.to_vec(),
        is_ca: cert.is_ca(),
    })
}

/// The expiry (Unix seconds) of the first certificate of a PEM chain.
pub fn not_after(pem: &str) -> Option<i64> {
    parse_pem_certs(pem)
        .ok()
        .and_then(|certs| certs.first().map(|(_, i)| i.window.not_after))
}

/// What the stored pair is worth at `now` (Unix seconds) for `settings`.
pub fn decide(
    pki: &Pki,
    settings: &Settings,
    now: i64,
    provider: &Arc<CryptoProvider>,
) -> Decision {
    let cas = match parse_pem_certs(&pki.ca_bundle) {
        Ok(cas) => cas,
        Err(e) => return Decision::RenewCa(format!("{CA_CERT}: {e}")),
    };
    let (ca_der, ca) = &cas[0];
    if !ca.is_ca {
        return Decision::RenewCa(format!("{CA_CERT}: the first certificate is not a CA"));
    }
    match KeyPair::from_pem(&pki.ca_key) {
        Ok(key) if key.subject_public_key_info() == ca.spki => {}
        Ok(_) => return Decision::RenewCa(format!("{CA_KEY} does not match {CA_CERT}")),
        Err(e) => return Decision::RenewCa(format!("{CA_KEY}: expected a PEM private key: {e}")),
    }
    if !ca.window.valid_at(now) {
        return Decision::RenewCa("the CA is not valid now".into());
    }
    if ca.window.renewal_due(now) {
        return Decision::RenewCa("two thirds of the CA's lifetime have passed".into());
    }

    if let Err(e) =
        crate::server::tls::certified_key(pki.tls_cert.as_bytes(), pki.tls_key.as_bytes(), provider)
    {
        return Decision::RenewServing(format!("{TLS_CERT}/{TLS_KEY}: {e}"));
    }
    let leaf = match parse_pem_certs(&pki.tls_cert) {
        Ok(certs) => certs.into_iter().next().map(|c| c.1),
        Err(e) => return Decision::RenewServing(format!("{TLS_CERT}: {e}")),
    };
    let Some(leaf) = leaf else {
        return Decision::RenewServing(format!("{TLS_CERT}: no certificate"));
    };
    let wanted: BTreeSet<String> = settings.sans.iter().cloned().collect();
    if leaf.sans != wanted {
        return Decision::RenewServing(format!(
            "the serving certificate is for {:?}, expected {:?}",
            leaf.sans, wanted
        ));
    }
    if let Err(e) = verify_serving(ca_der, &pki.tls_cert, &settings.sans, now, provider) {
        return Decision::RenewServing(e);
    }
    if leaf.window.renewal_due(now) {
        return Decision::RenewServing(
            "two thirds of the serving certificate's lifetime have passed".into(),
        );
    }
    Decision::Keep {
        renew_at: leaf.window.renew_at().min(ca.window.renew_at()),
    }
}

/// Checks, as a TLS client would, that the serving certificate chains to `ca` for every name.
fn verify_serving(
    ca: &CertificateDer<'static>,
    tls_cert: &str,
    names: &[String],
    now: i64,
    provider: &Arc<CryptoProvider>,
) -> Result<(), String> {
    let mut roots = RootCertStore::empty();
    roots
        .add(ca.clone())
        .map_err(|e| format!("the CA cannot be used: {e}"))?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("the CA cannot be used: {e}"))?;
    let chain = CertificateDer::pem_slice_iter(tls_cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{TLS_CERT}: {e}"))?;
    let (leaf, rest) = chain
        .split_first()
        .ok_or_else(|| format!("{TLS_CERT}: no certificate"))?;
    let at = UnixTime::since_unix_epoch(Duration::from_secs(now.max(0) as u64));
    for name in names {
        let server_name =
            ServerName::try_from(name.clone()).map_err(|e| format!("--cert-san {name:?}: {e}"))?;
        verifier
            .verify_server_cert(leaf, rest, &server_name, &[], at)
            .map_err(|e| format!("the serving certificate does not verify for {name}: {e}"))?;
    }
    Ok(())
}

/// How far back a new certificate's validity starts, for clocks slightly behind ours.
fn backdate(validity: Duration) -> i64 {
    (validity.as_secs() / 10).min(300) as i64
}

fn timestamp(unix: i64) -> Result<time::OffsetDateTime, rcgen::Error> {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map_err(|_| rcgen::Error::CouldNotParseCertificate)
}

fn serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    fastrand::fill(&mut bytes);
    // A positive INTEGER with no leading zero byte.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// The new pair `decision` asks for (`old` is what the Secret held, if anything usable).
pub fn renew(
    decision: &Decision,
    old: Option<&Pki>,
    settings: &Settings,
    now: i64,
) -> Result<Pki, rcgen::Error> {
    let (ca_bundle, ca_key_pem) = match (decision, old) {
        (Decision::RenewServing(_), Some(old)) => (old.ca_bundle.clone(), old.ca_key.clone()),
        _ => {
            let (ca_pem, key_pem) = issue_ca(settings, now)?;
            // The older CAs stay trusted while they are valid: replicas may still serve
            // certificates they signed until they read the Secret again.
            let mut bundle = vec![ca_pem];
            if let Some(old) = old {
                if let Ok(certs) = parse_pem_certs(&old.ca_bundle) {
                    for (der, info) in certs {
                        if info.is_ca && info.window.valid_at(now) && bundle.len() < MAX_BUNDLE {
                            bundle.push(pem_of(&der));
                        }
                    }
                }
            }
            (bundle.concat(), key_pem)
        }
    };
    let (tls_cert, tls_key) = issue_serving(&ca_bundle, &ca_key_pem, settings, now)?;
    Ok(Pki {
        ca_bundle,
        ca_key: ca_key_pem,
        tls_cert,
        tls_key,
    })
}

fn pem_of(der: &CertificateDer<'_>) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn issue_ca(settings: &Settings, now: i64) -> Result<(String, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("rollout-guard CA {now}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(serial());
    params.not_before = timestamp(now - backdate(settings.ca_validity))?;
    params.not_after = timestamp(now + settings.ca_validity.as_secs() as i64)?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A serving certificate signed by the first CA of `ca_bundle`; it never outlives that CA.
fn issue_serving(
    ca_bundle: &str,
    ca_key_pem: &str,
    settings: &Settings,
    now: i64,
) -> Result<(String, String), rcgen::Error> {
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    let ca_pem = parse_pem_certs(ca_bundle)
        .ok()
        .and_then(|c| c.into_iter().next())
        .ok_or(rcgen::Error::CouldNotParseCertificate)?;
    let ca_not_after = ca_pem.1.window.not_after;
    let issuer = Issuer::from_ca_cert_der(&ca_pem.0, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.subject_alt_names = settings
        .sans
        .iter()
        .map(|s| san_type(s).map_err(|_| rcgen::Error::InvalidIpAddressOctetLength(0)))
        .collect::<Result<_, _>>()?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "rollout-guard");
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.serial_number = Some(serial());
    params.not_before = timestamp(now - backdate(settings.validity))?;
    params.not_after = timestamp((now + settings.validity.as_secs() as i64).min(ca_not_after))?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn settings() -> Settings {
        Settings {
            sans: vec!["rollout-guard.rollout-guard.svc".into(), "127.0.0.1".into()],
            validity: Duration::from_secs(90 * DAY as u64),
            ca_validity: Duration::from_secs(3650 * DAY as u64),
        }
    }

    fn provider() -> Arc<CryptoProvider> {
        crate::server::tls::provider()
    }

    fn fresh(now: i64) -> Pki {
        renew(&Decision::RenewCa("new".into()), None, &settings(), now).unwrap()
    }

    fn leaf(pki: &Pki) -> CertInfo {
        parse_pem_certs(&pki.tls_cert).unwrap().remove(0).1
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_new_pair_is_valid_for_its_names_and_kept() {
        let pki = fresh(NOW);
        let info = leaf(&pki);
        assert_eq!(
            info.sans,
            settings().sans.into_iter().collect::<BTreeSet<_>>()
        );
        assert!(!info.is_ca);
        assert_eq!(info.window.not_after, NOW + 90 * DAY);
        assert!(info.window.not_before <= NOW);
        let ca = parse_pem_certs(&pki.ca_bundle).unwrap();
        assert_eq!(ca.len(), 1);
        assert!(ca[0].1.is_ca);
        // It serves: rustls loads it, and it verifies for each name under the CA.
        crate::server::tls::certified_key(
            pki.tls_cert.as_bytes(),
            pki.tls_key.as_bytes(),
            &provider(),
        )
        .unwrap();
        assert_eq!(
            decide(&pki, &settings(), NOW, &provider()),
            Decision::Keep {
                renew_at: info.window.renew_at()
            }
        );
        // The Secret round-trips.
        assert_eq!(Pki::from_data(&pki.to_data()).unwrap(), pki);
    }

    #[test]
    fn renewal_is_due_at_two_thirds_of_the_lifetime() {
        let w = Window {
            not_before: 0,
            not_after: 90,
        };
        assert_eq!(w.renew_at(), 60);
        assert!(!w.renewal_due(59));
        assert!(w.renewal_due(60));
        let pki = fresh(NOW);
        let renew_at = leaf(&pki).window.renew_at();
        assert!(matches!(
            decide(&pki, &settings(), renew_at - 1, &provider()),
            Decision::Keep { .. }
        ));
        let due = decide(&pki, &settings(), renew_at, &provider());
        assert!(
            matches!(due, Decision::RenewServing(ref why) if why.contains("two thirds")),
            "{due:?}"
        );

        // The serving renewal keeps the CA, changes the serial, and is valid again.
        let renewed = renew(&due, Some(&pki), &settings(), renew_at).unwrap();
        assert_eq!(renewed.ca_bundle, pki.ca_bundle);
        assert_eq!(renewed.ca_key, pki.ca_key);
        assert_ne!(leaf(&renewed).serial, leaf(&pki).serial);
        assert!(matches!(
            decide(&renewed, &settings(), renew_at, &provider()),
            Decision::Keep { .. }
        ));
    }

    #[test]
    fn a_rotated_ca_keeps_the_old_one_trusted() {
        let pki = fresh(NOW);
        let ca_due = NOW + 3650 * DAY * 2 / 3 + DAY;
        let decision = decide(&pki, &settings(), ca_due, &provider());
        assert!(matches!(decision, Decision::RenewCa(_)), "{decision:?}");
        let rotated = renew(&decision, Some(&pki), &settings(), ca_due).unwrap();
        let bundle = parse_pem_certs(&rotated.ca_bundle).unwrap();
        assert_eq!(bundle.len(), 2, "new CA first, the old one still trusted");
        let old = parse_pem_certs(&pki.ca_bundle).unwrap();
        assert_eq!(bundle[1].1.serial, old[0].1.serial);
        assert_ne!(bundle[0].1.serial, old[0].1.serial);
        assert!(matches!(
            decide(&rotated, &settings(), ca_due, &provider()),
            Decision::Keep { .. }
        ));
        // The serving certificate never outlives its CA.
        let late = NOW + 3650 * DAY - 10 * DAY;
        let (cert, _) = issue_serving(&pki.ca_bundle, &pki.ca_key, &settings(), late).unwrap();
        assert_eq!(
            parse_pem_certs(&cert).unwrap()[0].1.window.not_after,
            parse_pem_certs(&pki.ca_bundle).unwrap()[0]
                .1
                .window
                .not_after
        );
    }

    #[test]
    fn broken_or_foreign_contents_are_replaced() {
        let pki = fresh(NOW);
        let other = fresh(NOW);
        let s = settings();
        let p = provider();
        // A serving pair from another CA.
        let foreign = Pki {
            tls_cert: other.tls_cert.clone(),
            tls_key: other.tls_key.clone(),
            ..pki.clone()
        };
        assert!(
            matches!(decide(&foreign, &s, NOW, &p), Decision::RenewServing(ref w) if w.contains("does not verify"))
        );
        // A key that does not match its certificate.
        let mismatched = Pki {
            tls_key: other.tls_key.clone(),
            ..pki.clone()
        };
        assert!(
            matches!(decide(&mismatched, &s, NOW, &p), Decision::RenewServing(ref w) if w.contains("does not match"))
        );
        // Names changed (the Service was renamed).
        let renamed = Settings {
            sans: vec!["other.rollout-guard.svc".into()],
            ..s.clone()
        };
        assert!(
            matches!(decide(&pki, &renamed, NOW, &p), Decision::RenewServing(ref w) if w.contains("expected"))
        );
        // A CA key that is not the CA's.
        let wrong_ca_key = Pki {
            ca_key: other.ca_key.clone(),
            ..pki.clone()
        };
        assert!(
            matches!(decide(&wrong_ca_key, &s, NOW, &p), Decision::RenewCa(ref w) if w.contains("does not match"))
        );
        let garbage = Pki {
            ca_bundle: "garbage".into(),
            ..pki.clone()
        };
        assert!(matches!(
            decide(&garbage, &s, NOW, &p),
            Decision::RenewCa(_)
        ));
        // Expired altogether.
        assert!(matches!(
            decide(&pki, &s, NOW + 4000 * DAY, &p),
            Decision::RenewCa(_)
        ));
        // A Secret without a key says which.
        let mut data = pki.to_data();
        data.remove(TLS_KEY);
        assert!(Pki::from_data(&data).unwrap_err().contains("tls.key"));
    }

    #[test]
    fn settings_are_checked() {
        let mut s = settings();
        assert!(s.check().is_ok());
        s.sans.clear();
        assert!(s.check().unwrap_err().contains("--cert-san"));
        let s = Settings {
            validity: Duration::from_secs(10),
            ..settings()
        };
        assert!(s.check().unwrap_err().contains("--cert-validity"));
        let s = Settings {
            ca_validity: settings().validity,
            ..settings()
        };
        assert!(s.check().unwrap_err().contains("--ca-validity"));
        let s = Settings {
            sans: vec!["not a name".into()],
            ..settings()
        };
        assert!(s.check().unwrap_err().contains("found \"not a name\""));
    }
}
