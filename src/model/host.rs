//! Istio host-name algebra (`pkg/config/host/name.go`): byte-wise, case-sensitive, a leading `*`
//! makes a wildcard that matches by plain suffix.

fn is_wildcard(h: &str) -> bool {
    h.starts_with('*')
}

/// `n` is covered by `o` (Istio `Name.SubsetOf`).
pub fn subset_of(n: &str, o: &str) -> bool {
    match (is_wildcard(n), is_wildcard(o)) {
        (true, true) => n.len() >= o.len() && n[1..].ends_with(&o[1..]),
        (true, false) => false,
        (false, true) => n.ends_with(&o[1..]),
        (false, false) => n == o,
    }
}

/// `n` and `o` overlap in either direction (Istio `Name.Matches`).
pub fn matches(n: &str, o: &str) -> bool {
    match (is_wildcard(n), is_wildcard(o)) {
        (true, true) => {
            if n.len() < o.len() {
                o[1..].ends_with(&n[1..])
            } else {
                n[1..].ends_with(&o[1..])
            }
        }
        (true, false) => o.ends_with(&n[1..]),
        (false, true) => n.ends_with(&o[1..]),
        (false, false) => n == o,
    }
}

/// Whether `s` parses as an IP address (Istio skips the SNI subset check for those).
pub fn is_ip(s: &str) -> bool {
    let bare = s.split('%').next().unwrap_or(s);
    bare.parse::<std::net::IpAddr>().is_ok()
}

/// The text before the first dot: how Argo Rollouts compares a destination host with a Service name.
pub fn first_label(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
}

/// Short-name expansion as Istio does at runtime (`ResolveShortnameToFQDN`): a name without a dot
/// is qualified with the namespace; anything with a dot is taken as written.
pub fn expand_short_name(host: &str, namespace: &str) -> String {
    if host.is_empty() || host == "*" || host.contains('.') || is_ip(host) {
        host.to_string()
    } else {
        format!("{host}.{namespace}.svc.cluster.local")
    }
}

/// Istio's `ValidateWildcardDomain` (`pkg/config/validation/agent`): `None` when `d` is a valid
/// host or wildcard host, otherwise Istio's message.
pub fn wildcard_domain_error(d: &str) -> Option<String> {
    if d.len() > 255 {
        return Some(format!("domain name {d:?} too long (max 255)"));
    }
    if d.is_empty() {
        return Some("empty domain name not allowed".to_string());
    }
    let (first, rest) = match d.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (d, None),
    };
    if !is_wildcard_dns1123_label(first) {
        return Some(format!(
            "domain name {d:?} invalid (label {first:?} invalid)"
        ));
    }
    rest.and_then(dns1123_labels_error)
}

/// Istio's `ValidateWildcardDomainForVirtualServiceBoundToGateway(sni, d)`: as
/// [`wildcard_domain_error`], but SNI hosts of the form `outbound_.<PORT>_._.<HOSTNAME>` pass.
pub fn gateway_domain_error(sni: bool, d: &str) -> Option<String> {
    if !sni || !d.starts_with("outbound_") || d.len() > 255 {
        return wildcard_domain_error(d);
    }
    let parts: Vec<&str> = d.split('_').collect();
    if parts.len() < 4 {
        return Some(format!(
            "domain name {d} invalid, should follow 'outbound_.<PORT>_._.<HOSTNAME>' format"
        ));
    }
    if parts[0] != "outbound" {
        return Some(format!(
            "domain name {d:?} invalid (label {:?} invalid)",
            parts[0]
        ));
    }
    let port = parts[1].trim_matches('.');
    let hostname = parts[3].trim_matches('.');
    if !port.bytes().any(|b| b.is_ascii_digit()) {
        return Some(format!(
            "domain name {d:?} invalid (label {port:?} invalid). should follow outbound_.<PORT>_._.<HOSTNAME> format"
        ));
    }
    if !hostname.bytes().any(|b| b.is_ascii_alphabetic()) {
        return Some(format!(
            "domain name {d:?} invalid (label {hostname:?} invalid). should follow outbound_.<PORT>_._.<HOSTNAME> format"
        ));
    }
    None
}

/// `ValidateDNS1123Labels`: every label a DNS-1123 label (an empty last one allowed: a trailing
/// dot), the top-level one not all-numeric.
fn dns1123_labels_error(s: &str) -> Option<String> {
    let labels: Vec<&str> = s.split('.').collect();
    let last = labels.len() - 1;
    if labels[last].parse::<i64>().is_ok() {
        return Some(format!(
            "domain name {s:?} invalid (top level domain {:?} cannot be all-numeric)",
            labels[last]
        ));
    }
    labels
        .iter()
        .enumerate()
        .filter(|(i, label)| !(*i == last && label.is_empty()))
        .find(|(_, label)| !is_dns1123_label(label))
        .map(|(_, label)| format!("domain name {s:?} invalid (label {label:?} invalid)"))
}

/// `[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?`, at most 63 bytes (Istio allows upper case).
fn is_dns1123_label(label: &str) -> bool {
    let b = label.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// `^(\*|(\*|\*-)?[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?)$`, at most 63 bytes.
fn is_wildcard_dns1123_label(label: &str) -> bool {
    if label.len() > 63 {
        return false;
    }
    if label == "*" {
        return true;
    }
    let rest = label
        .strip_prefix("*-")
        .or_else(|| label.strip_prefix('*'))
        .unwrap_or(label);
    is_dns1123_label(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upstream `TestValidateWildcardDomain` and `TestValidateWildcardDomainForVirtualServiceBoundToGateway`.
    #[test]
    fn domain_syntax_as_istio_checks_it() {
        let long = "x".repeat(256);
        assert!(wildcard_domain_error("").is_some_and(|e| e.contains("empty")));
        assert!(wildcard_domain_error(&long).is_some_and(|e| e.contains("too long")));
        for ok in [
            "x".repeat(63).as_str(),
            "*",
            "*.bar.com",
            "*foo",
            "*foo.bar.com",
            "*-foo.bar.com",
            "istio.io.",
            "reviews",
        ] {
            assert_eq!(wildcard_domain_error(ok), None, "{ok}");
        }
        for bad in ["foo.*.com", "foo*.bar.com", "1.1.1.1", "foo.ba!r"] {
            assert!(
                wildcard_domain_error(bad).is_some_and(|e| e.contains("invalid")),
                "{bad}"
            );
        }
        assert_eq!(
            wildcard_domain_error("foo.*.com").as_deref(),
            Some("domain name \"*.com\" invalid (label \"*\" invalid)")
        );
        assert_eq!(
            gateway_domain_error(true, "outbound_.80_._.e2e.foobar.mesh"),
            None
        );
        assert_eq!(gateway_domain_error(true, "outbound.com"), None);
        for bad in [
            "neverbound_.80_._.e2e.foobar.mesh",
            "outbound_.thisIsNotAPort_._.e2e.foobar.mesh",
            "outbound_.80_._",
        ] {
            assert!(gateway_domain_error(true, bad).is_some(), "{bad}");
        }
        assert!(gateway_domain_error(false, "outbound_.80_._.e2e.foobar.mesh").is_some());
    }

    // Upstream TestNameMatches (istio pkg/config/host/name_test.go).
    #[test]
    fn matches_table() {
        let table = [
            ("", "", true),
            ("a.facebook.com", "*.facebook.COM", false),
            ("", "foo.com", false),
            ("foo.com", "", false),
            ("foo.com", "foo.com", true),
            ("bar.com", "foo.com", false),
            ("foo.com", "bar.com", false),
            ("bar.foo.com", "foo.com", false),
            ("foo.com", "bar.foo.com", false),
            ("*.com", "foo.com", true),
            ("*.com", "bar.com", true),
            ("*.foo.com", "bar.foo.com", true),
            ("*", "foo.com", true),
            ("*", "*.com", true),
            ("*", "com", true),
            ("*", "*", true),
            ("*", "", true),
            ("*.com", "*.foo.com", true),
            ("foo.com", "*.foo.com", false),
            ("*.foo.com", "foo.com", false),
            ("*.foo.bar.baz", "baz", false),
            ("baz", "*.foo.bar.baz", false),
            ("*.foo.bar.baz", "*.baz", true),
            ("foo.bar.baz", "*.baz", true),
        ];
        for (a, b, want) in table {
            assert_eq!(matches(a, b), want, "{a:?}.Matches({b:?})");
        }
    }

    // Upstream TestNameSubsetOf.
    #[test]
    fn subset_of_table() {
        let table = [
            ("", "", true),
            ("", "foo.com", false),
            ("foo.com", "", false),
            ("foo.com", "foo.com", true),
            ("bar.com", "foo.com", false),
            ("foo.com", "bar.com", false),
            ("bar.foo.com", "foo.com", false),
            ("foo.com", "bar.foo.com", false),
            ("foo.com", "*.com", true),
            ("bar.com", "*.com", true),
            ("bar.foo.com", "*.foo.com", true),
            ("foo.com", "*", true),
            ("*.com", "*", true),
            ("com", "*", true),
            ("*", "*", true),
            ("", "*", true),
            ("*.foo.com", "*.com", true),
            ("*.foo.com", "foo.com", false),
            ("*.foo.bar.baz", "baz", false),
            ("foo.bar.baz", "*.baz", true),
        ];
        for (a, b, want) in table {
            assert_eq!(subset_of(a, b), want, "{a:?}.SubsetOf({b:?})");
        }
    }

    // Cases derived from the algorithm in istio-validation-spec.md §4.3.
    #[test]
    fn derived_cases() {
        let table = [
            (
                "reviews.bookinfo.com",
                "rollouts-demo-vsvc1.local",
                false,
                false,
            ),
            ("reviews.bookinfo.com", "*.bookinfo.com", true, true),
            ("*.bookinfo.com", "reviews.bookinfo.com", false, true),
            ("bookinfo.com", "*.bookinfo.com", false, false),
            ("barfoo.com", "*foo.com", true, true),
            ("*foo.com", "*.com", true, true),
            ("*.com", "*foo.com", false, true),
            ("*", "*.com", false, true),
            ("*.a.com", "*.b.a.com", false, true),
            ("x-foo.baz", "*-foo.baz", true, true),
            ("foo.baz", "*-foo.baz", false, false),
            ("reviews", "reviews.default.svc.cluster.local", false, false),
            ("Reviews.bookinfo.com", "reviews.bookinfo.com", false, false),
        ];
        for (a, b, subset, overlap) in table {
            assert_eq!(subset_of(a, b), subset, "{a:?}.SubsetOf({b:?})");
            assert_eq!(matches(a, b), overlap, "{a:?}.Matches({b:?})");
        }
    }

    #[test]
    fn ip_addresses() {
        assert!(is_ip("1.1.1.1"));
        assert!(is_ip("::ffff:1.2.3.4"));
        assert!(is_ip("fe80::1%eth0"));
        assert!(!is_ip("localhost"));
        assert!(!is_ip("10.0.0.0/8"));
    }

    #[test]
    fn short_names_expand_in_the_namespace() {
        assert_eq!(expand_short_name("svc", "ns"), "svc.ns.svc.cluster.local");
        assert_eq!(expand_short_name("svc.other", "ns"), "svc.other");
        assert_eq!(first_label("svc.ns.svc.cluster.local"), "svc");
    }
}
