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

#[cfg(test)]
mod tests {
    use super::*;

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
