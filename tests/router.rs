//! The admission router without a socket: AdmissionReview JSON files in, HTTP answers out.

mod common;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use base64::Engine;
use common::{app, app_with, fixture, repo};
use http_body_util::BodyExt;
use rollout_guard::metrics::Metrics;
use rollout_guard::server::router::{Limits, DEFAULT_MAX_BODY_BYTES};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

struct Answer {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "expected JSON, found {e}: {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn response(&self) -> Value {
        let v = self.json();
        assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(v["kind"], "AdmissionReview");
        v["response"].clone()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

async fn send(router: axum::Router, request: Request<Body>) -> Answer {
    let response = tokio::time::timeout(Duration::from_secs(10), router.oneshot(request))
        .await
        .expect("answered in time")
        .expect("infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        status,
        content_type,
        body,
    }
}

fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

async fn review(path: &str, name: &str) -> Answer {
    send(app(), post(path, fixture(name))).await
}

fn uid_of(name: &str) -> String {
    let v: Value = serde_json::from_slice(&fixture(name)).unwrap();
    v["request"]["uid"].as_str().unwrap().to_string()
}

fn patch_of(response: &Value) -> Vec<Value> {
    let encoded = response["patch"].as_str().expect("a patch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn warnings_of(response: &Value) -> Vec<String> {
    response["warnings"]
        .as_array()
        .map(|w| w.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

const WITH_UID: &[&str] = &[
    "rollout-create-valid.json",
    "rollout-create-wrong-route.json",
    "rollout-create-wrong-route-dry-run.json",
    "rollout-create-unparseable.json",
    "virtualservice-update-unparseable.json",
    "virtualservice-update-gitops-100-0.json",
    "virtualservice-update-by-controller.json",
    "virtualservice-create-sni.json",
    "virtualservice-object-is-a-list.json",
    "deployment-create.json",
    "request-fields-wrong-types.json",
];

#[tokio::test]
async fn the_uid_is_always_copied_and_the_answer_is_200() {
    for name in WITH_UID {
        for path in ["/validate", "/mutate"] {
            let a = review(path, name).await;
            assert_eq!(a.status, StatusCode::OK, "{path} {name}: {}", a.text());
            assert_eq!(a.content_type, "application/json");
            assert_eq!(a.response()["uid"], uid_of(name), "{path} {name}");
        }
    }
}

#[tokio::test]
async fn a_valid_rollout_is_allowed() {
    let r = review("/validate", "rollout-create-valid.json")
        .await
        .response();
    assert_eq!(r["allowed"], true, "{r}");
    assert!(r.get("status").is_none() && r.get("patch").is_none());
}

#[tokio::test]
async fn a_wrong_route_is_denied_with_a_message() {
    let r = review("/validate", "rollout-create-wrong-route.json")
        .await
        .response();
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 403);
    let message = r["status"]["message"].as_str().unwrap();
    assert!(message.contains("[http-route-not-found]"), "{message}");
    assert!(
        message.contains("\"primary-route\"") && message.contains("[\"primary\"]"),
        "{message}"
    );
    // dryRun gets the same answer: the webhook has no side effects.
    let dry = review("/validate", "rollout-create-wrong-route-dry-run.json")
        .await
        .response();
    assert_eq!(dry["status"]["message"], r["status"]["message"]);
}

#[tokio::test]
async fn the_sni_seed_case_is_denied() {
    let r = review("/validate", "virtualservice-create-sni.json")
        .await
        .response();
    assert_eq!(r["allowed"], false);
    let message = r["status"]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "SNI host \"reviews.bookinfo.com\" is not a compatible subset of any of the virtual service hosts: [rollouts-demo-vsvc1.local]"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn other_kinds_are_allowed_untouched() {
    for path in ["/validate", "/mutate"] {
        let r = review(path, "deployment-create.json").await.response();
        assert_eq!(r["allowed"], true);
        for absent in ["status", "patch", "patchType", "warnings"] {
            assert!(r.get(absent).is_none(), "{path}: {absent} in {r}");
        }
    }
}

#[tokio::test]
async fn a_gitops_reapply_keeps_the_live_weights() {
    let r = review("/mutate", "virtualservice-update-gitops-100-0.json")
        .await
        .response();
    assert_eq!(r["allowed"], true);
    assert_eq!(r["patchType"], "JSONPatch");
    let patch = patch_of(&r);
    assert!(
        patch.contains(&serde_json::json!({"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 80})),
        "{patch:?}"
    );
    assert!(
        patch.contains(&serde_json::json!({"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 20})),
        "{patch:?}"
    );
    let warnings = warnings_of(&r);
    assert!(
        warnings.iter().any(|w| w.contains("kept weights")),
        "{warnings:?}"
    );
    // The same write passes validation (the weights are valid, only stale).
    let v = review("/validate", "virtualservice-update-gitops-100-0.json")
        .await
        .response();
    assert_eq!(v["allowed"], true);
}

#[tokio::test]
async fn the_controller_is_exempt() {
    for path in ["/validate", "/mutate"] {
        let r = review(path, "virtualservice-update-by-controller.json")
            .await
            .response();
        assert_eq!(r["allowed"], true);
        assert!(r.get("patch").is_none(), "{path}: {r}");
    }
}

#[tokio::test]
async fn an_unparseable_object_is_denied_on_validate_and_allowed_with_a_warning_on_mutate() {
    let r = review("/validate", "rollout-create-unparseable.json")
        .await
        .response();
    assert_eq!(r["allowed"], false);
    let message = r["status"]["message"].as_str().unwrap();
    assert!(message.contains("[invalid-object]"), "{message}");
    assert!(
        message.contains("spec.strategy.canary.steps[0].setWeight"),
        "{message}"
    );

    let v = review("/validate", "virtualservice-update-unparseable.json")
        .await
        .response();
    assert_eq!(v["allowed"], false);
    assert!(v["status"]["message"]
        .as_str()
        .unwrap()
        .contains("spec.http"));
    let m = review("/mutate", "virtualservice-update-unparseable.json")
        .await
        .response();
    assert_eq!(m["allowed"], true);
    assert!(m.get("patch").is_none());
    let warnings = warnings_of(&m);
    assert!(
        warnings.iter().any(|w| w.contains("cannot be read")),
        "{warnings:?}"
    );

    let list = review("/validate", "virtualservice-object-is-a-list.json")
        .await
        .response();
    assert_eq!(list["allowed"], false, "{list}");
    assert!(list["status"]["message"]
        .as_str()
        .unwrap()
        .contains("expected a VirtualService object, found a list"));
}

#[tokio::test]
async fn wrongly_typed_request_fields_are_read_leniently() {
    for path in ["/validate", "/mutate"] {
        let a = review(path, "request-fields-wrong-types.json").await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.response()["allowed"], true);
    }
}

fn assert_one_line_400(a: &Answer, what: &str) {
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{what}: {}", a.text());
    assert!(a.content_type.starts_with("text/plain"), "{what}");
    let text = a.text();
    assert!(
        text.ends_with('\n') && text.trim_end().lines().count() == 1 && !text.trim().is_empty(),
        "{what}: {text:?}"
    );
}

#[tokio::test]
async fn no_uid_is_400_with_a_one_line_reason() {
    for name in ["no-uid.json", "uid-wrong-type.json"] {
        for path in ["/validate", "/mutate"] {
            let a = review(path, name).await;
            assert_one_line_400(&a, name);
            assert!(a.text().contains("request.uid"), "{}", a.text());
        }
    }
}

#[tokio::test]
async fn malformed_and_truncated_bodies_are_400() {
    let valid = fixture("rollout-create-valid.json");
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("not json", b"not json".to_vec()),
        ("truncated", valid[..valid.len() / 2].to_vec()),
        ("null", b"null".to_vec()),
        ("array", b"[1,2]".to_vec()),
        ("string", b"\"AdmissionReview\"".to_vec()),
        ("request is a string", br#"{"request":"x"}"#.to_vec()),
        ("binary", vec![0xff, 0xfe, 0x00, 0x9c]),
        ("deep nesting", "[".repeat(100_000).into_bytes()),
    ];
    for (what, body) in bodies {
        for path in ["/validate", "/mutate"] {
            let a = send(app(), post(path, body.clone())).await;
            assert_one_line_400(&a, what);
        }
    }
}

#[tokio::test]
async fn every_prefix_of_a_review_gets_a_well_formed_answer() {
    let valid = fixture("virtualservice-update-gitops-100-0.json");
    let router = app();
    for end in (0..valid.len()).step_by(37) {
        let a = send(router.clone(), post("/mutate", valid[..end].to_vec())).await;
        assert!(
            a.status == StatusCode::BAD_REQUEST || a.status == StatusCode::OK,
            "prefix {end}: {}",
            a.status
        );
    }
}

#[tokio::test]
async fn over_the_limit_is_413_by_content_length_and_by_stream() {
    // Declared too large: refused before reading.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/validate")
        .header(
            header::CONTENT_LENGTH,
            (DEFAULT_MAX_BODY_BYTES + 1).to_string(),
        )
        .body(Body::from_stream(futures::stream::pending::<
            Result<Vec<u8>, std::io::Error>,
        >()))
        .unwrap();
    let a = send(app(), request).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text());

    // Streamed without a length: refused when the limit is passed.
    let chunk = vec![b' '; 1024 * 1024];
    let chunks = (0..8).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
    let request = post("/mutate", Body::from_stream(futures::stream::iter(chunks)));
    let a = send(app(), request).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text());

    // A whole body over the limit.
    let a = send(
        app(),
        post("/validate", vec![b' '; DEFAULT_MAX_BODY_BYTES + 1]),
    )
    .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);

    // At the limit it is read (and judged: whitespace is not a review).
    let mut body = fixture("rollout-create-valid.json");
    body.resize(DEFAULT_MAX_BODY_BYTES, b' ');
    let a = send(app(), post("/validate", body)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
}

#[tokio::test]
async fn a_body_that_never_arrives_is_408() {
    let metrics = Arc::new(Metrics::new());
    let limits = Limits {
        request_timeout: Duration::from_millis(100),
        ..Limits::default()
    };
    let request = post(
        "/validate",
        Body::from_stream(futures::stream::pending::<Result<Vec<u8>, std::io::Error>>()),
    );
    let a = send(app_with(limits, metrics.clone()), request).await;
    assert_eq!(a.status, StatusCode::REQUEST_TIMEOUT, "{}", a.text());
    let text = metrics.encode(
        &rollout_guard::index::Index::new(),
        &common::loaded_status(),
    );
    assert!(text.contains(r#"decision="timeout"} 1"#), "{text}");
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405() {
    for (method, path, status) in [
        (Method::POST, "/", StatusCode::NOT_FOUND),
        (Method::POST, "/validate/extra", StatusCode::NOT_FOUND),
        (Method::GET, "/metrics", StatusCode::NOT_FOUND),
        (Method::GET, "/validate", StatusCode::METHOD_NOT_ALLOWED),
        (Method::PUT, "/mutate", StatusCode::METHOD_NOT_ALLOWED),
        (Method::DELETE, "/validate", StatusCode::METHOD_NOT_ALLOWED),
    ] {
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .body(Body::from(fixture("rollout-create-valid.json")))
            .unwrap();
        let a = send(app(), request).await;
        assert_eq!(a.status, status, "{method} {path}");
    }
}

#[tokio::test]
async fn requests_are_counted() {
    let metrics = Arc::new(Metrics::new());
    let router = app_with(Limits::default(), metrics.clone());
    for (path, name) in [
        ("/validate", "rollout-create-wrong-route.json"),
        ("/mutate", "virtualservice-update-gitops-100-0.json"),
        ("/validate", "deployment-create.json"),
        ("/validate", "no-uid.json"),
        ("/mutate", "virtualservice-update-by-controller.json"),
    ] {
        send(router.clone(), post(path, fixture(name))).await;
    }
    let text = metrics.encode(
        &common::example_index().snapshot(),
        &common::loaded_status(),
    );
    for line in [
        r#"rollout_guard_admission_requests_total{webhook="validate",kind="Rollout",operation="CREATE",decision="denied"} 1"#,
        r#"rollout_guard_admission_requests_total{webhook="mutate",kind="VirtualService",operation="UPDATE",decision="patched"} 1"#,
        r#"rollout_guard_admission_requests_total{webhook="validate",kind="other",operation="CREATE",decision="allowed"} 1"#,
        r#"rollout_guard_admission_requests_total{webhook="validate",kind="other",operation="other",decision="invalid"} 1"#,
        r#"rollout_guard_admission_denials_total{rule="http-route-not-found"} 1"#,
        r#"rollout_guard_drift_restores_total{kind="VirtualService"} 1"#,
        r#"rollout_guard_admission_exempt_total{webhook="mutate"} 1"#,
        r#"rollout_guard_index_objects{kind="Rollout"} 2"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

/// The README's "Try it" section: the example reviews against the example state.
#[tokio::test]
async fn the_examples_behave_as_documented() {
    let read = |name: &str| std::fs::read(repo(&format!("examples/reviews/{name}"))).unwrap();
    let a = send(
        app(),
        post("/validate", read("rollout-create-wrong-route.json")),
    )
    .await;
    assert_eq!(a.response()["allowed"], false);
    let a = send(
        app(),
        post("/validate", read("virtualservice-create-sni.json")),
    )
    .await;
    assert_eq!(a.response()["allowed"], false);
    let a = send(
        app(),
        post("/mutate", read("virtualservice-update-gitops-100-0.json")),
    )
    .await;
    let r = a.response();
    assert_eq!(r["patchType"], "JSONPatch", "{r}");
}
