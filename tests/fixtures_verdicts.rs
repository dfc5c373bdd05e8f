//! Every fixture in tests/fixtures/argo-rollouts gets the verdict of its README's
//! "rollout-guard" column.

use rollout_guard::lint::{lint, Input, Report};
use rollout_guard::rules::Severity;

fn lint_fixture(name: &str) -> Report {
    let path = format!(
        "{}/tests/fixtures/argo-rollouts/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("fixture exists");
    lint(&[Input {
        name: name.to_string(),
        text,
    }])
}

fn rules(report: &Report, severity: Severity) -> Vec<String> {
    let mut v: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.severity == severity)
        .map(|f| format!("{} {}/{}", f.rule, f.kind, f.name))
        .collect();
    v.sort();
    v
}

#[test]
fn clean_fixtures() {
    for name in [
        "host-level-http.yaml",
        "subset-level-http.yaml",
        "subset-level-single-route.yaml",
        "host-level-http-and-tls.yaml",
        "multiple-virtualservices-lint-valid.yaml",
        "managed-routes-set-header-route.yaml",
        "managed-routes-set-mirror-route.yaml",
        "managed-routes-set-mirror-route-example.yaml",
        "ping-pong-host-level.yaml",
        "host-level-experiment-step.yaml",
        "subset-level-experiment-step.yaml",
    ] {
        let r = lint_fixture(name);
        assert!(r.findings.is_empty(), "{name}: {}", r.to_text());
        assert!(r.objects >= 4, "{name}: only {} objects read", r.objects);
    }
}

#[test]
fn tls_only_warns_that_routes_are_ignored() {
    let r = lint_fixture("host-level-tls-only.yaml");
    assert!(rules(&r, Severity::Deny).is_empty(), "{}", r.to_text());
    assert_eq!(
        rules(&r, Severity::Warn),
        ["route-list-ignored Rollout/istio-host-split-tls"]
    );
}

#[test]
fn getting_started_multiple_virtualservices_is_the_seed_error() {
    let r = lint_fixture("multiple-virtualservices-getting-started.yaml");
    assert_eq!(
        rules(&r, Severity::Deny),
        [
            "sni-host-not-in-hosts VirtualService/rollouts-demo-vsvc1",
            "sni-host-not-in-hosts VirtualService/rollouts-demo-vsvc1",
            "sni-host-not-in-hosts VirtualService/rollouts-demo-vsvc2",
            "sni-host-not-in-hosts VirtualService/rollouts-demo-vsvc2",
        ]
    );
    let messages: Vec<&str> = r.findings.iter().map(|f| f.message.as_str()).collect();
    assert!(messages.iter().any(|m| m.starts_with(
        "SNI host \"reviews.bookinfo.com\" is not a compatible subset of any of the virtual service hosts: [rollouts-demo-vsvc1.local]"
    )));
    assert!(messages.iter().any(|m| m.starts_with(
        "SNI host \"localhost\" is not a compatible subset of any of the virtual service hosts: [rollouts-demo-vsvc1.local]"
    )));
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn tcp_tls_http_doc_is_denied() {
    let r = lint_fixture("tcp-tls-http-multi-vsvc-getting-started-doc.yaml");
    let deny = rules(&r, Severity::Deny);
    assert!(
        deny.contains(&"tls-route-not-found Rollout/rollouts-demo".to_string()),
        "{deny:?}"
    );
    assert!(
        deny.contains(&"http-route-not-found Rollout/rollouts-demo".to_string()),
        "{deny:?}"
    );
    assert!(deny.contains(&"sni-host-not-in-hosts VirtualService/rollouts-demo-vsvc1".to_string()));
    assert!(deny.contains(&"sni-host-not-in-hosts VirtualService/rollouts-demo-vsvc2".to_string()));
    let warn = rules(&r, Severity::Warn);
    assert_eq!(
        warn.iter()
            .filter(|w| w.starts_with("duplicate-object"))
            .count(),
        2,
        "{warn:?}"
    );
    let tls = r
        .findings
        .iter()
        .find(|f| f.rule.id() == "tls-route-not-found")
        .expect("tls finding");
    assert!(
        tls.message
            .contains("nearest is spec.tls[0] with port 443 and sniHosts [reviews.bookinfo.com]"),
        "{}",
        tls.message
    );
}

#[test]
fn invalid_service_labels_report_both_services() {
    let r = lint_fixture("lint-invalid-service-labels.yaml");
    assert_eq!(
        rules(&r, Severity::Deny),
        [
            "service-selector-mismatch Rollout/invalid-rollout",
            "service-selector-mismatch Rollout/invalid-rollout"
        ]
    );
    assert!(r.findings.iter().all(|f| f
        .message
        .contains("app=istio-host-split (pod template has app=invalid-rollout)")));
}

#[test]
fn snippets_are_not_yaml_inputs() {
    // `.txt` fragments are not picked up from a folder.
    let dir = format!(
        "{}/tests/fixtures/argo-rollouts",
        env!("CARGO_MANIFEST_DIR")
    );
    let (inputs, errors) = rollout_guard::lint::read_inputs(&[dir], &mut std::io::empty());
    assert!(errors.is_empty());
    assert!(inputs.iter().all(|i| i.name.ends_with(".yaml")));
    assert_eq!(inputs.len(), 15);
}

/// Upstream's own manifests use only fields upstream's schemas know: none of them gets an
/// `unknown-field` warning (one would mean the schema reading is wrong).
#[test]
fn fixtures_have_no_unknown_fields() {
    for dir in [
        "tests/fixtures/argo-rollouts",
        "examples/manifests",
        "tests/e2e/manifests",
    ] {
        let dir = format!("{}/{dir}", env!("CARGO_MANIFEST_DIR"));
        let (inputs, errors) =
            rollout_guard::lint::read_inputs(std::slice::from_ref(&dir), &mut std::io::empty());
        assert!(errors.is_empty(), "{errors:?}");
        let report = lint(&inputs);
        assert!(report.objects > 0, "{dir}: no objects");
        let unknown: Vec<String> = report
            .findings
            .iter()
            .filter(|f| f.rule.id() == "unknown-field")
            .map(|f| format!("{}:{}: {}", f.file, f.document, f.message))
            .collect();
        assert!(unknown.is_empty(), "{dir}: {unknown:#?}");
    }
}
