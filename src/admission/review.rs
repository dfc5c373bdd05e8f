//! AdmissionReview in and out. Reading is lenient: everything but `request.uid` may be missing or
//! malformed, and the answer always carries the uid.

use crate::model::Kind;
use base64::Engine;
use json_patch::PatchOperation;
use kube::core::admission::{AdmissionResponse, META_KIND};
use kube::core::{Status, TypeMeta};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Other(String),
}

impl Operation {
    pub fn as_str(&self) -> &str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Other(s) => s,
        }
    }
}

/// The parts of an AdmissionRequest rollout-guard uses.
#[derive(Debug, Clone)]
pub struct Request {
    pub api_version: String,
    pub uid: String,
    /// `None` when the request is for a kind rollout-guard does not judge.
    pub kind: Option<Kind>,
    /// `group/Kind` as sent, for logs and metrics of other kinds.
    pub kind_name: String,
    pub namespace: String,
    pub name: String,
    pub operation: Operation,
    pub sub_resource: String,
    pub user: String,
    pub groups: Vec<String>,
    pub dry_run: bool,
    /// `request.object` and `request.oldObject` as JSON text: the views are read from it
    /// without building a tree, and a tree is built only for an object that may be patched.
    pub object: Option<Box<RawValue>>,
    pub old_object: Option<Box<RawValue>>,
}

/// Why a body is not an AdmissionReview with a uid (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum BadReview {
    #[error("expected an AdmissionReview JSON body, found invalid JSON: {0}")]
    Json(String),
    #[error("expected an AdmissionReview with request.uid, found {0}")]
    NoUid(String),
}

pub fn parse(body: &[u8]) -> Result<Request, BadReview> {
    match parse_typed(body) {
        Some(request) => Ok(request),
        None => parse_lenient(body),
    }
}

/// The common case, read straight into the fields we use (everything else is skipped). Any
/// surprise (a field of another type, an empty uid, a duplicate key) leaves the body to
/// [`parse_lenient`], which gives the same answer for every body this one accepts.
fn parse_typed(body: &[u8]) -> Option<Request> {
    #[derive(Deserialize)]
    struct Review<'a> {
        #[serde(rename = "apiVersion", default)]
        api_version: Option<String>,
        #[serde(borrow)]
        request: TypedRequest<'a>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct TypedRequest<'a> {
        uid: String,
        #[serde(default)]
        kind: Option<GroupKind>,
        #[serde(default)]
        namespace: Option<String>,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        operation: Option<String>,
        #[serde(default)]
        sub_resource: Option<String>,
        #[serde(default)]
        user_info: Option<UserInfo>,
        #[serde(default)]
        dry_run: Option<bool>,
        #[serde(default, borrow)]
        object: Option<&'a RawValue>,
        #[serde(default, borrow)]
        old_object: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct GroupKind {
        #[serde(default)]
        group: Option<String>,
        #[serde(default)]
        kind: Option<String>,
    }
    #[derive(Deserialize)]
    struct UserInfo {
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        groups: Option<Vec<String>>,
    }
    let review: Review<'_> = serde_json::from_slice(body).ok()?;
    let r = review.request;
    if r.uid.is_empty() {
        return None;
    }
    let (group, kind) = r
        .kind
        .map(|k| (k.group.unwrap_or_default(), k.kind.unwrap_or_default()))
        .unwrap_or_default();
    let (user, groups) = r
        .user_info
        .map(|u| (u.username.unwrap_or_default(), u.groups.unwrap_or_default()))
        .unwrap_or_default();
    Some(Request {
        api_version: api_version(review.api_version.as_deref()),
        uid: r.uid,
        kind: Kind::from_group_kind(&group, &kind),
        kind_name: kind_name(&group, &kind),
        namespace: r.namespace.unwrap_or_default(),
        name: r.name.unwrap_or_default(),
        operation: operation(r.operation.as_deref()),
        sub_resource: r.sub_resource.unwrap_or_default(),
        user,
        groups,
        dry_run: r.dry_run.unwrap_or(false),
        object: r.object.map(RawValue::to_owned),
        old_object: r.old_object.map(RawValue::to_owned),
    })
}

fn api_version(sent: Option<&str>) -> String {
    match sent {
        Some(v @ "admission.k8s.io/v1beta1") => v.to_string(),
        _ => "admission.k8s.io/v1".to_string(),
    }
}

fn kind_name(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{group}/{kind}")
    }
}

fn operation(sent: Option<&str>) -> Operation {
    match sent {
        Some("CREATE") => Operation::Create,
        Some("UPDATE") => Operation::Update,
        Some(other) => Operation::Other(other.to_string()),
        None => Operation::Other(String::new()),
    }
}

/// Any JSON body: every field but `request.uid` may be missing or of another type.
fn parse_lenient(body: &[u8]) -> Result<Request, BadReview> {
    let mut review: Value =
        serde_json::from_slice(body).map_err(|e| BadReview::Json(e.to_string()))?;
    let api_version = api_version(review.get("apiVersion").and_then(Value::as_str));
    let Some(request) = review.get_mut("request").and_then(Value::as_object_mut) else {
        return Err(BadReview::NoUid("no request object".into()));
    };
    let uid = match request.get("uid") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) => return Err(BadReview::NoUid("an empty request.uid".into())),
        Some(other) => {
            return Err(BadReview::NoUid(format!(
                "request.uid as {}",
                crate::model::object::describe(other)
            )))
        }
        None => return Err(BadReview::NoUid("no request.uid".into())),
    };
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let group = text(request.get("kind").and_then(|k| k.get("group")));
    let kind = text(request.get("kind").and_then(|k| k.get("kind")));
    let operation = operation(request.get("operation").and_then(Value::as_str));
    let user_info = request.get("userInfo");
    let groups = user_info
        .and_then(|u| u.get("groups"))
        .and_then(Value::as_array)
        .map(|g| {
            g.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let take = |request: &mut serde_json::Map<String, Value>, key: &str| match request.remove(key) {
        Some(Value::Null) | None => None,
        Some(v) => serde_json::value::to_raw_value(&v).ok(),
    };
    Ok(Request {
        api_version,
        kind: Kind::from_group_kind(&group, &kind),
        kind_name: kind_name(&group, &kind),
        namespace: text(request.get("namespace")),
        name: text(request.get("name")),
        operation,
        sub_resource: text(request.get("subResource")),
        user: text(user_info.and_then(|u| u.get("username"))),
        groups,
        dry_run: request
            .get("dryRun")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        object: take(request, "object"),
        old_object: take(request, "oldObject"),
        uid,
    })
}

/// What the webhook answers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    pub allowed: bool,
    /// The denial message (status.message).
    pub message: Option<String>,
    pub warnings: Vec<String>,
    /// JSONPatch operations (RFC 6902), in order; empty means no patch.
    pub patch: Vec<PatchOperation>,
}

impl Verdict {
    pub fn allow() -> Self {
        Verdict {
            allowed: true,
            ..Default::default()
        }
    }

    pub fn deny(message: String) -> Self {
        Verdict {
            allowed: false,
            message: Some(message),
            ..Default::default()
        }
    }

    pub fn with_warning(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }
}

/// The API server may cut warnings longer than this; ours are shortened first.
pub const MAX_WARNING_LEN: usize = 256;

pub fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Serialises the AdmissionReview response, in the `apiVersion` the request used.
///
/// Built with kube-core's [`AdmissionResponse`] and [`AdmissionReview`]; two fields are then put
/// in the form the API server itself writes (its Go types, `k8s.io/api/admission/v1`):
/// - `patch` is `[]byte`, which JSON carries as a base64 string. kube-core serialises its
///   `Vec<u8>` as an array of numbers, which Go also decodes but which is three times longer.
/// - `status` (`*metav1.Status`) only on a denial: kube-core always writes it, `{}` when allowed.
///
/// Never a malformed review: whatever cannot be encoded falls back to a minimal valid answer
/// with the uid copied (see [`fallback`]).
pub fn respond(api_version: &str, uid: &str, verdict: &Verdict) -> Vec<u8> {
    let mut response = build(api_version, uid, verdict);
    // Encoded below, as base64.
    let patch = response.patch.take();
    let review = response.into_review();
    let encoded = serde_json::to_value(&review).and_then(|mut v| {
        if let Some(response) = v.get_mut("response").and_then(Value::as_object_mut) {
            if verdict.message.is_none() {
                response.remove("status");
            }
            if let Some(patch) = &patch {
                let patch = base64::engine::general_purpose::STANDARD.encode(patch);
                response.insert("patch".to_string(), Value::String(patch));
            }
        }
        serde_json::to_vec(&v)
    });
    finish(api_version, uid, verdict, encoded)
}

/// The typed response. A patch that cannot be serialised is left out, with a warning: the
/// request is then allowed unchanged, as when nothing could be restored.
fn build(api_version: &str, uid: &str, verdict: &Verdict) -> AdmissionResponse {
    // `AdmissionResponse` is `#[non_exhaustive]` and its other constructor wants a typed
    // `AdmissionRequest` (read leniently here instead, see [`parse`]); every public field is set
    // below, and `patchType` through `with_patch`.
    let mut response = AdmissionResponse::invalid("");
    response.types = TypeMeta {
        api_version: api_version.to_string(),
        kind: META_KIND.to_string(),
    };
    response.uid = uid.to_string();
    response.allowed = verdict.allowed;
    response.result = match &verdict.message {
        Some(message) => Status {
            code: 403,
            reason: "Forbidden".to_string(),
            message: message.clone(),
            ..Status::default()
        },
        None => Status::default(),
    };
    let mut warnings: Vec<String> = verdict
        .warnings
        .iter()
        .map(|w| shorten(w, MAX_WARNING_LEN))
        .collect();
    if !verdict.patch.is_empty() {
        let patch = json_patch::Patch(verdict.patch.clone());
        match response.clone().with_patch(patch) {
            Ok(patched) => response = patched,
            Err(err) => warnings.push(shorten(
                &format!("rollout-guard: nothing restored: the patch cannot be encoded ({err})"),
                MAX_WARNING_LEN,
            )),
        }
    }
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    response
}

/// The encoded review, or when encoding failed the minimal valid one.
fn finish(
    api_version: &str,
    uid: &str,
    verdict: &Verdict,
    encoded: Result<Vec<u8>, serde_json::Error>,
) -> Vec<u8> {
    match encoded {
        Ok(body) => body,
        Err(err) => {
            tracing::error!(uid, error = %err, "AdmissionReview response cannot be encoded; answering with a minimal one");
            fallback(api_version, uid, verdict.allowed)
        }
    }
}

/// A minimal valid AdmissionReview: uid, allowed and, on a denial, a fixed reason; no patch. Its
/// only variable parts are the uid (escaped by serde_json, which cannot fail on a string) and
/// the apiVersion (one of two constants).
fn fallback(api_version: &str, uid: &str, allowed: bool) -> Vec<u8> {
    let api_version = if api_version == "admission.k8s.io/v1beta1" {
        "admission.k8s.io/v1beta1"
    } else {
        "admission.k8s.io/v1"
    };
    let uid = serde_json::to_string(uid).unwrap_or_else(|_| "\"\"".to_string());
    let status = if allowed {
        String::new()
    } else {
        r#","status":{"code":403,"reason":"Forbidden","message":"denied by rollout-guard (the full answer could not be encoded; see its log)"}"#
            .to_string()
    };
    format!(
        r#"{{"apiVersion":"{api_version}","kind":"AdmissionReview","response":{{"uid":{uid},"allowed":{allowed}{status}}}}}"#
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The typed fast path and the lenient path read the same request from every body the
    /// typed one accepts.
    #[test]
    fn both_readers_agree() {
        let bodies = [
            r#"{"apiVersion":"admission.k8s.io/v1beta1","request":{"uid":"a","kind":{"group":"","version":"v1","kind":"Service"},
               "namespace":"ns","name":"n","operation":"UPDATE","subResource":"","userInfo":{"username":"u","groups":["g1","g2"]},
               "dryRun":true,"object":{"b":[1,{"c":null}],"a":"x"},"oldObject":null,"extra":{"ignored":[1,2]}}}"#,
            r#"{"request":{"uid":"b","operation":"DELETE","object":null}}"#,
            r#"{"request":{"uid":"c","kind":{"group":"networking.istio.io","kind":"VirtualService"},"object":[1,2]}}"#,
        ];
        for body in bodies {
            let mut typed = parse_typed(body.as_bytes()).expect("typed reader accepts it");
            let mut lenient = parse_lenient(body.as_bytes()).expect("lenient reader accepts it");
            // The objects are the same JSON (the lenient reader re-serialises with sorted keys).
            let tree = |r: Option<Box<RawValue>>| {
                r.map(|r| serde_json::from_str::<Value>(r.get()).unwrap())
            };
            assert_eq!(tree(typed.object.take()), tree(lenient.object.take()));
            assert_eq!(
                tree(typed.old_object.take()),
                tree(lenient.old_object.take())
            );
            assert_eq!(format!("{typed:?}"), format!("{lenient:?}"));
        }
        // A field of another type is left to the lenient reader.
        let odd = br#"{"request":{"uid":"d","dryRun":"yes","userInfo":{"groups":["g",3]}}}"#;
        assert!(parse_typed(odd).is_none());
        let r = parse(odd).unwrap();
        assert_eq!((r.dry_run, r.groups), (false, vec!["g".to_string()]));
    }

    #[test]
    fn uid_is_required() {
        assert!(matches!(parse(b"{"), Err(BadReview::Json(_))));
        assert!(matches!(parse(b"{}"), Err(BadReview::NoUid(_))));
        assert!(
            matches!(parse(br#"{"request":{"uid":7}}"#), Err(BadReview::NoUid(m)) if m.contains("number 7"))
        );
        let r = parse(br#"{"request":{"uid":"u1"}}"#).unwrap();
        assert_eq!((r.uid.as_str(), r.kind), ("u1", None));
    }

    #[test]
    fn fields_are_read_leniently() {
        let r = parse(
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u",
            "kind":{"group":"networking.istio.io","version":"v1beta1","kind":"VirtualService"},
            "namespace":"shop","name":"vs","operation":"UPDATE","dryRun":true,
            "userInfo":{"username":"alice","groups":["dev",3]},"object":{"a":1},"oldObject":null}}"#,
        )
        .unwrap();
        assert_eq!(r.kind, Some(Kind::VirtualService));
        assert_eq!(r.operation, Operation::Update);
        assert!(r.dry_run);
        assert_eq!(r.groups, ["dev"]);
        assert!(r.object.is_some() && r.old_object.is_none());
    }

    fn answer(api_version: &str, verdict: &Verdict) -> Value {
        serde_json::from_slice(&respond(api_version, "u-1", verdict)).expect("valid JSON")
    }

    fn replace_a() -> PatchOperation {
        PatchOperation::Replace(json_patch::ReplaceOperation {
            path: json_patch::jsonptr::PointerBuf::from_tokens(["a/b"]),
            value: json!(1),
        })
    }

    /// The whole answer, field by field, as the API server reads it.
    #[test]
    fn response_wire_form() {
        assert_eq!(
            answer("admission.k8s.io/v1", &Verdict::allow()),
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": "u-1", "allowed": true}})
        );
        assert_eq!(
            answer(
                "admission.k8s.io/v1",
                &Verdict::deny("no".into()).with_warning("w")
            ),
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": "u-1", "allowed": false, "warnings": ["w"],
                    "status": {"code": 403, "reason": "Forbidden", "message": "no"}}})
        );
        let patched = Verdict {
            allowed: true,
            message: None,
            warnings: vec!["x".repeat(300), "é".repeat(200)],
            patch: vec![replace_a()],
        };
        let out = answer("admission.k8s.io/v1", &patched);
        let patch = base64::engine::general_purpose::STANDARD
            .encode(br#"[{"op":"replace","path":"/a~1b","value":1}]"#);
        let warnings = &out["response"]["warnings"];
        assert_eq!(
            out,
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": "u-1", "allowed": true, "patchType": "JSONPatch", "patch": patch,
                    "warnings": warnings}})
        );
        for (w, sent) in warnings.as_array().unwrap().iter().zip(&patched.warnings) {
            let w = w.as_str().unwrap();
            assert!(w.len() <= MAX_WARNING_LEN && w.ends_with('…'), "{w}");
            assert!(sent.starts_with(w.trim_end_matches('…')));
        }
    }

    /// The answer is in the apiVersion the request used (only v1 and v1beta1 exist).
    #[test]
    fn the_api_version_is_echoed() {
        for (sent, answered) in [
            ("admission.k8s.io/v1beta1", "admission.k8s.io/v1beta1"),
            ("admission.k8s.io/v1", "admission.k8s.io/v1"),
        ] {
            let out = answer(sent, &Verdict::deny("no".into()));
            assert_eq!(out["apiVersion"], answered);
            assert_eq!(out["response"]["status"]["code"], 403);
        }
        let r = parse(br#"{"apiVersion":"admission.k8s.io/v2","request":{"uid":"u"}}"#).unwrap();
        assert_eq!(r.api_version, "admission.k8s.io/v1");
    }

    /// When the answer cannot be encoded, a minimal valid one goes out: uid copied, the verdict
    /// kept, nothing else.
    #[test]
    fn an_answer_that_cannot_be_encoded_falls_back_to_a_minimal_valid_one() {
        let failed = || Err(<serde_json::Error as serde::ser::Error>::custom("boom"));
        let uid = "quote\" back\\slash \u{1} ✓";
        for (verdict, api_version) in [
            (Verdict::allow(), "admission.k8s.io/v1"),
            (Verdict::deny("no".into()), "admission.k8s.io/v1beta1"),
            (
                Verdict {
                    patch: vec![replace_a()],
                    ..Verdict::allow().with_warning("w")
                },
                "something else",
            ),
        ] {
            let body = finish(api_version, uid, &verdict, failed());
            let out: Value = serde_json::from_slice(&body).expect("valid JSON");
            let response = out["response"].as_object().expect("a response");
            assert_eq!(response["uid"], uid);
            assert_eq!(response["allowed"], verdict.allowed);
            for absent in ["patch", "patchType", "warnings"] {
                assert!(!response.contains_key(absent), "{absent} in {out}");
            }
            let expected_version = if api_version.ends_with("v1beta1") {
                api_version
            } else {
                "admission.k8s.io/v1"
            };
            assert_eq!(out["apiVersion"], expected_version);
            assert_eq!(out["kind"], "AdmissionReview");
            if verdict.allowed {
                assert!(!response.contains_key("status"), "{out}");
            } else {
                assert_eq!(response["status"]["code"], 403);
                assert_eq!(response["status"]["reason"], "Forbidden");
                assert!(response["status"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()));
            }
        }
        // An answer that encodes is passed through.
        assert_eq!(
            finish(
                "admission.k8s.io/v1",
                "u",
                &Verdict::allow(),
                Ok(b"x".to_vec())
            ),
            b"x"
        );
    }
}
