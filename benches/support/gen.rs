//! Synthetic cluster state for the benchmarks: N apps, each a Rollout with its VirtualService,
//! DestinationRule and two Services (canary, stable) = 5 objects.
//!
//! Objects carry what real ones carry (labels, annotations, a pod template with two containers,
//! probes and resources, a traffic policy, ports, and in the live form the status, uid,
//! resourceVersion and — for AdmissionReview bodies — `managedFields`), so that parsing costs
//! what it costs in a cluster. Everything is deterministic in the app number `i`:
//!
//! - namespace `team-NNN` (`i % 100`), name `app-NNNNN`;
//! - `i % 5 == 0`: subset-level (the DestinationRule carries the canary/stable subsets and the
//!   Rollout references it); otherwise host-level (the DestinationRule only sets a traffic policy);
//! - `i % 10 < 2`: mid-canary (step 2 of 8, weights stable 80 / canary 20); otherwise idle;
//! - `i % 3 == 0`: the VirtualService also has a TLS route that the Rollout manages.
//!
//! Two forms: [`Form::Manifest`] is what Git holds (weights 100/0, no hashes, no status);
//! [`Form::Live`] is what the API server holds (controller-owned values in place, status).
//!
//! Included with `#[path]` by the benches and `examples/gen_state.rs`.
#![allow(dead_code)]

use serde_json::{json, Map, Value};
use std::path::Path;

pub const NAMESPACES: usize = 100;
pub const OBJECTS_PER_APP: usize = 5;
/// Argo CD's service account: a GitOps writer, neither exempt nor the controller.
pub const GITOPS_USER: &str = "system:serviceaccount:argocd:argocd-application-controller";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Manifest,
    Live,
}

pub fn name(i: usize) -> String {
    format!("app-{i:05}")
}

pub fn namespace(i: usize) -> String {
    format!("team-{:03}", i % NAMESPACES)
}

pub fn subset_level(i: usize) -> bool {
    i.is_multiple_of(5)
}

pub fn in_canary(i: usize) -> bool {
    i % 10 < 2
}

pub fn has_tls(i: usize) -> bool {
    i.is_multiple_of(3)
}

/// A host-level app near the middle of `0..n`, mid-canary, with a TLS route.
pub fn host_target(n: usize) -> usize {
    let mut i = (n / 2).max(21);
    while i % 30 != 21 {
        i -= 1;
    }
    debug_assert!(!subset_level(i) && in_canary(i) && has_tls(i));
    i
}

/// A subset-level app near the middle of `0..n`, mid-canary, with a TLS route.
pub fn subset_target(n: usize) -> usize {
    let mut i = (n / 2).max(30);
    while !i.is_multiple_of(30) {
        i -= 1;
    }
    debug_assert!(subset_level(i) && in_canary(i) && has_tls(i));
    i
}

/// A deterministic 10-character string in the alphabet Kubernetes uses for pod template hashes.
pub fn hash(i: usize, salt: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut x = (i as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(salt.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let mut out = String::with_capacity(10);
    for _ in 0..10 {
        x ^= x >> 31;
        x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
        out.push(ALPHABET[(x % ALPHABET.len() as u64) as usize] as char);
    }
    out
}

fn uid(i: usize, salt: u64) -> String {
    let h = format!(
        "{}{}{}",
        hash(i, salt),
        hash(i, salt + 1),
        hash(i, salt + 2)
    );
    let hex: String = h
        .bytes()
        .map(|b| char::from_digit(u32::from(b) % 16, 16).unwrap_or('0'))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..30].repeat(2)[..12]
    )
}

pub fn stable_hash(i: usize) -> String {
    hash(i, 1)
}

pub fn canary_hash(i: usize) -> String {
    if in_canary(i) {
        hash(i, 2)
    } else {
        stable_hash(i)
    }
}

/// (stable, canary) weights: what the controller holds live, 100/0 in Git.
pub fn weights(i: usize, form: Form) -> (i64, i64) {
    match form {
        Form::Live if in_canary(i) => (80, 20),
        _ => (100, 0),
    }
}

fn labels(i: usize, component: &str) -> Value {
    json!({
        "app": name(i),
        "app.kubernetes.io/name": name(i),
        "app.kubernetes.io/instance": format!("{}-{}", namespace(i), name(i)),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "shop",
        "app.kubernetes.io/managed-by": "argocd",
        "team": namespace(i),
        "environment": "production",
    })
}

fn metadata(i: usize, object_name: &str, kind: &str, component: &str, form: Form) -> Value {
    let mut annotations = json!({
        "argocd.argoproj.io/tracking-id": format!("{}:{kind}:{}/{object_name}", namespace(i), namespace(i)),
        "owner.example.com/team": format!("{}@example.com", namespace(i)),
        "owner.example.com/runbook": format!("https://runbooks.example.com/{}/{}", namespace(i), name(i)),
    });
    let mut meta = json!({
        "name": object_name,
        "namespace": namespace(i),
        "labels": labels(i, component),
    });
    if form == Form::Live {
        meta["uid"] = json!(uid(i, kind.len() as u64 * 7 + object_name.len() as u64));
        meta["resourceVersion"] = json!(format!("{}", 1_000_000 + i * 13));
        meta["generation"] = json!(7);
        meta["creationTimestamp"] = json!("2024-05-01T10:00:00Z");
        let managed = matches!(kind, "Service" | "DestinationRule")
            && (kind == "DestinationRule") == subset_level(i);
        if managed {
            annotations["argo-rollouts.argoproj.io/managed-by-rollouts"] = json!(name(i));
        }
        if kind == "Rollout" {
            annotations["rollout.argoproj.io/revision"] = json!("7");
        }
    }
    meta["annotations"] = annotations;
    meta
}

fn container(i: usize) -> Value {
    json!({
        "name": "app",
        "image": format!("registry.example.com/{}/{}:1.{}.{}", namespace(i), name(i), i % 40, i % 7),
        "imagePullPolicy": "IfNotPresent",
        "args": ["--port=8080", "--metrics-port=9090", "--log-level=info", "--log-format=json"],
        "ports": [
            {"name": "http", "containerPort": 8080, "protocol": "TCP"},
            {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}
        ],
        "env": [
            {"name": "APP_NAME", "value": name(i)},
            {"name": "APP_ENV", "value": "production"},
            {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector.observability:4317"},
            {"name": "OTEL_SERVICE_NAME", "value": name(i)},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": format!("{}-db", name(i)), "key": "url"}}},
            {"name": "CACHE_TTL_SECONDS", "value": "300"}
        ],
        "resources": {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"}
        },
        "readinessProbe": {
            "httpGet": {"path": "/healthz/ready", "port": "http"},
            "initialDelaySeconds": 5, "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz/live", "port": "http"},
            "initialDelaySeconds": 15, "periodSeconds": 20, "timeoutSeconds": 2, "failureThreshold": 3
        },
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/app", "readOnly": true},
            {"name": "tmp", "mountPath": "/tmp"}
        ],
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "capabilities": {"drop": ["ALL"]}
        }
    })
}

fn sidecar() -> Value {
    json!({
        "name": "log-shipper",
        "image": "registry.example.com/platform/log-shipper:3.2.1",
        "args": ["--input=/var/log/app", "--output=otlp://otel-collector.observability:4317"],
        "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/var/log/app"}]
    })
}

pub fn rollout(i: usize, form: Form) -> Value {
    let n = name(i);
    let mut vs_ref = json!({"name": n, "routes": ["primary"]});
    if has_tls(i) {
        vs_ref["tlsRoutes"] = json!([{"port": 443, "sniHosts": [format!("{n}.example.com")]}]);
    }
    let mut istio = json!({"virtualService": vs_ref});
    if subset_level(i) {
        istio["destinationRule"] =
            json!({"name": n, "canarySubsetName": "canary", "stableSubsetName": "stable"});
    }
    let steps = json!([
        {"setWeight": 20}, {"pause": {"duration": "2m"}},
        {"setWeight": 40}, {"pause": {"duration": "2m"}},
        {"setWeight": 60}, {"pause": {"duration": "2m"}},
        {"setWeight": 80}, {"pause": {}}
    ]);
    let mut template_labels =
        json!({"app": n, "team": namespace(i), "version": format!("1.{}", i % 40)});
    template_labels["sidecar.istio.io/inject"] = json!("true");
    let mut doc = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": metadata(i, &n, "Rollout", "server", form),
        "spec": {
            "replicas": 4,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": {"app": n}},
            "template": {
                "metadata": {
                    "labels": template_labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": "9090",
                        "proxy.istio.io/config": "{ \"holdApplicationUntilProxyStarts\": true }"
                    }
                },
                "spec": {
                    "serviceAccountName": n,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 10001, "fsGroup": 10001},
                    "containers": [container(i), sidecar()],
                    "volumes": [
                        {"name": "config", "configMap": {"name": format!("{n}-config")}},
                        {"name": "tmp", "emptyDir": {}}
                    ],
                    "topologySpreadConstraints": [{
                        "maxSkew": 1,
                        "topologyKey": "topology.kubernetes.io/zone",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": {"app": n}}
                    }]
                }
            },
            "strategy": {"canary": {
                "canaryService": format!("{n}-canary"),
                "stableService": format!("{n}-stable"),
                "trafficRouting": {"istio": istio},
                "steps": steps
            }}
        }
    });
    if form == Form::Live {
        let (stable, canary) = weights(i, form);
        let step = if in_canary(i) { 1 } else { 8 };
        doc["status"] = json!({
            "observedGeneration": "7",
            "phase": if in_canary(i) { "Paused" } else { "Healthy" },
            "replicas": 5, "updatedReplicas": 1, "readyReplicas": 5, "availableReplicas": 5,
            "currentStepIndex": step,
            "currentStepHash": hash(i, 3),
            "currentPodHash": canary_hash(i),
            "stableRS": stable_hash(i),
            "selector": format!("app={n}"),
            "canary": {"weights": {
                "canary": {"weight": canary, "podTemplateHash": canary_hash(i), "serviceName": format!("{n}-canary")},
                "stable": {"weight": stable, "podTemplateHash": stable_hash(i), "serviceName": format!("{n}-stable")}
            }},
            "pauseConditions": if in_canary(i) {
                json!([{"reason": "CanaryPauseStep", "startTime": "2024-05-01T10:05:00Z"}])
            } else { json!(null) },
            "conditions": [
                {"type": "Available", "status": "True", "reason": "AvailableReason",
                 "message": "Rollout has minimum availability",
                 "lastTransitionTime": "2024-05-01T10:01:00Z", "lastUpdateTime": "2024-05-01T10:01:00Z"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": format!("ReplicaSet \"{n}-{}\" has successfully progressed.", canary_hash(i)),
                 "lastTransitionTime": "2024-05-01T10:02:00Z", "lastUpdateTime": "2024-05-01T10:02:00Z"},
                {"type": "Healthy", "status": "True", "reason": "RolloutHealthy",
                 "message": "Rollout is healthy",
                 "lastTransitionTime": "2024-05-01T10:03:00Z", "lastUpdateTime": "2024-05-01T10:03:00Z"},
                {"type": "Paused", "status": if in_canary(i) { "True" } else { "False" },
                 "reason": "RolloutPaused", "message": "Rollout is paused",
                 "lastTransitionTime": "2024-05-01T10:05:00Z", "lastUpdateTime": "2024-05-01T10:05:00Z"}
            ]
        });
    }
    doc
}

fn destination(host: String, subset: Option<&str>, port: u16, weight: i64) -> Value {
    let mut d = json!({"host": host, "port": {"number": port}});
    if let Some(s) = subset {
        d["subset"] = json!(s);
    }
    json!({"destination": d, "weight": weight})
}

/// The canary/stable destinations of app `i` with the given weights.
fn split(i: usize, port: u16, stable: i64, canary: i64) -> Value {
    let n = name(i);
    if subset_level(i) {
        json!([
            destination(format!("{n}-stable"), Some("stable"), port, stable),
            destination(format!("{n}-stable"), Some("canary"), port, canary)
        ])
    } else {
        json!([
            destination(format!("{n}-stable"), None, port, stable),
            destination(format!("{n}-canary"), None, port, canary)
        ])
    }
}

/// The VirtualService with explicit weights (stable, canary).
pub fn virtual_service_with(i: usize, form: Form, stable: i64, canary: i64) -> Value {
    let n = name(i);
    let mut spec = json!({
        "hosts": [n, format!("{n}.{}.svc.cluster.local", namespace(i)), format!("{n}.example.com")],
        "gateways": ["istio-system/public-gateway", "mesh"],
        "http": [{
            "name": "primary",
            "match": [{"uri": {"prefix": "/"}}],
            "retries": {"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx,connect-failure,refused-stream"},
            "timeout": "10s",
            "headers": {"response": {"set": {"x-served-by": n}}},
            "route": split(i, 80, stable, canary)
        }]
    });
    if has_tls(i) {
        spec["tls"] = json!([{
            "match": [{"port": 443, "sniHosts": [format!("{n}.example.com")]}],
            "route": split(i, 443, stable, canary)
        }]);
    }
    json!({
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": metadata(i, &n, "VirtualService", "routing", form),
        "spec": spec
    })
}

pub fn virtual_service(i: usize, form: Form) -> Value {
    let (stable, canary) = weights(i, form);
    virtual_service_with(i, form, stable, canary)
}

pub fn destination_rule(i: usize, form: Form) -> Value {
    let n = name(i);
    let mut spec = json!({
        "host": format!("{n}-stable"),
        "trafficPolicy": {
            "connectionPool": {
                "tcp": {"maxConnections": 1000, "connectTimeout": "3s"},
                "http": {"http1MaxPendingRequests": 1024, "maxRequestsPerConnection": 100}
            },
            "outlierDetection": {"consecutive5xxErrors": 5, "interval": "30s", "baseEjectionTime": "30s"},
            "tls": {"mode": "ISTIO_MUTUAL"}
        }
    });
    if subset_level(i) {
        let subset = |name: &str, hash: String| {
            let mut labels = json!({"app": n});
            if form == Form::Live {
                labels["rollouts-pod-template-hash"] = json!(hash);
            }
            json!({"name": name, "labels": labels})
        };
        spec["subsets"] = json!([
            subset("stable", stable_hash(i)),
            subset("canary", canary_hash(i))
        ]);
    }
    json!({
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "DestinationRule",
        "metadata": metadata(i, &n, "DestinationRule", "routing", form),
        "spec": spec
    })
}

/// `role` is `"canary"` or `"stable"`.
pub fn service(i: usize, role: &str, form: Form) -> Value {
    let n = name(i);
    let mut selector = json!({"app": n});
    if form == Form::Live && !subset_level(i) {
        let h = if role == "canary" {
            canary_hash(i)
        } else {
            stable_hash(i)
        };
        selector["rollouts-pod-template-hash"] = json!(h);
    }
    let mut spec = json!({
        "type": "ClusterIP",
        "ports": [
            {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
            {"name": "https", "port": 443, "targetPort": "http", "protocol": "TCP"},
            {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
        ],
        "selector": selector
    });
    if form == Form::Live {
        let ip = format!(
            "10.96.{}.{}",
            (i * 2 + usize::from(role == "canary")) / 250,
            (i * 2 + usize::from(role == "canary")) % 250 + 2
        );
        spec["clusterIP"] = json!(ip);
        spec["clusterIPs"] = json!([ip]);
        spec["ipFamilies"] = json!(["IPv4"]);
        spec["ipFamilyPolicy"] = json!("SingleStack");
        spec["sessionAffinity"] = json!("None");
        spec["internalTrafficPolicy"] = json!("Cluster");
    }
    let mut doc = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(i, &format!("{n}-{role}"), "Service", "server", form),
        "spec": spec
    });
    if form == Form::Live {
        doc["status"] = json!({"loadBalancer": {}});
    }
    doc
}

/// The five objects of app `i`: Rollout, VirtualService, DestinationRule, canary and stable Service.
pub fn objects(i: usize, form: Form) -> [Value; OBJECTS_PER_APP] {
    [
        rollout(i, form),
        virtual_service(i, form),
        destination_rule(i, form),
        service(i, "canary", form),
        service(i, "stable", form),
    ]
}

/// `fieldsV1` as the API server writes it: every key as `f:key`, lists as `.`.
fn fields_v1(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(format!("f:{k}"), fields_v1(v));
            }
            Value::Object(out)
        }
        Value::Array(_) => json!({".": {}}),
        _ => json!({}),
    }
}

/// Adds `metadata.managedFields` (the GitOps writer's apply and the controller's update), which
/// the API server includes in every AdmissionReview object.
pub fn with_managed_fields(mut doc: Value) -> Value {
    let mut applied = Map::new();
    for key in ["metadata", "spec"] {
        if let Some(v) = doc.get(key) {
            let mut f = fields_v1(v);
            if let Some(m) = f.as_object_mut() {
                for skip in [
                    "f:uid",
                    "f:resourceVersion",
                    "f:generation",
                    "f:creationTimestamp",
                ] {
                    m.remove(skip);
                }
            }
            applied.insert(format!("f:{key}"), f);
        }
    }
    let status = doc.get("status").map(fields_v1);
    let mut entries = vec![json!({
        "manager": "argocd-controller",
        "operation": "Apply",
        "apiVersion": doc["apiVersion"],
        "time": "2024-05-01T10:00:00Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": Value::Object(applied)
    })];
    if let Some(status) = status {
        entries.push(json!({
            "manager": "rollouts-controller",
            "operation": "Update",
            "apiVersion": doc["apiVersion"],
            "time": "2024-05-01T10:05:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:status": status},
            "subresource": "status"
        }));
    }
    if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("managedFields".into(), Value::Array(entries));
    }
    doc
}

/// YAML text of one or more documents, `---`-separated.
pub fn yaml(docs: &[Value]) -> String {
    let mut out = String::new();
    for d in docs {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(d).expect("YAML"));
    }
    out
}

/// The whole state of `n` apps as one multi-document YAML stream.
pub fn yaml_stream(n: usize, form: Form) -> String {
    let mut out = String::new();
    for i in 0..n {
        out.push_str(&yaml(&objects(i, form)));
    }
    out
}

/// Writes one file per app, `DIR/<namespace>/<name>.yaml`; returns the number of objects.
pub fn write_tree(dir: &Path, n: usize, form: Form) -> std::io::Result<usize> {
    for ns in 0..NAMESPACES.min(n) {
        std::fs::create_dir_all(dir.join(namespace(ns)))?;
    }
    for i in 0..n {
        let path = dir.join(namespace(i)).join(format!("{}.yaml", name(i)));
        std::fs::write(path, yaml(&objects(i, form)))?;
    }
    Ok(n * OBJECTS_PER_APP)
}

/// One request a benchmark sends.
#[derive(Debug, Clone)]
pub struct Case {
    /// `rollout-create`, `vs-update`, ...
    pub name: &'static str,
    /// `true` for `/mutate`, `false` for `/validate`.
    pub mutate: bool,
    pub body: Vec<u8>,
}

impl Case {
    pub fn path(&self) -> &'static str {
        if self.mutate {
            "/mutate"
        } else {
            "/validate"
        }
    }

    pub fn label(&self) -> String {
        format!(
            "{} {}",
            self.name,
            if self.mutate { "mutate" } else { "validate" }
        )
    }
}

fn group_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

fn resource(kind: &str) -> &'static str {
    match kind {
        "Rollout" => "rollouts",
        "VirtualService" => "virtualservices",
        "DestinationRule" => "destinationrules",
        _ => "services",
    }
}

/// An AdmissionReview body as the API server sends it.
pub fn review(uid_seed: usize, operation: &str, object: &Value, old: Option<&Value>) -> Vec<u8> {
    let api_version = object["apiVersion"].as_str().unwrap_or("");
    let kind = object["kind"].as_str().unwrap_or("");
    let (group, version) = group_version(api_version);
    let gvk = json!({"group": group, "version": version, "kind": kind});
    let gvr = json!({"group": group, "version": version, "resource": resource(kind)});
    let options_kind = if operation == "CREATE" {
        "CreateOptions"
    } else {
        "UpdateOptions"
    };
    let body = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid(uid_seed, 99),
            "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": object["metadata"]["name"],
            "namespace": object["metadata"]["namespace"],
            "operation": operation,
            "userInfo": {
                "username": GITOPS_USER,
                "uid": "2f1c7a52-6c36-4a53-9f6f-3b8e8d6f1b10",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:argocd", "system:authenticated"]
            },
            "object": object,
            "oldObject": old,
            "dryRun": false,
            "options": {"kind": options_kind, "apiVersion": "meta.k8s.io/v1", "fieldManager": "argocd-controller"}
        }
    });
    serde_json::to_vec(&body).expect("JSON")
}

fn set(doc: &mut Value, pointer: &str, value: Value) {
    if let Some(slot) = doc.pointer_mut(pointer) {
        *slot = value;
    }
}

fn remove_key(doc: &mut Value, pointer: &str, key: &str) {
    if let Some(m) = doc.pointer_mut(pointer).and_then(Value::as_object_mut) {
        m.remove(key);
    }
}

/// The requests of the decision benchmark, against a state of `n` apps (live form). Every one is
/// a GitOps writer's (not exempt) and allowed; the mutating ones restore controller-owned values.
pub fn cases(n: usize) -> Vec<Case> {
    let h = host_target(n);
    let s = subset_target(n);
    let live = with_managed_fields;

    // Rollout CREATE: the manifest as created (no status yet).
    let mut created = rollout(h, Form::Manifest);
    created["metadata"]["uid"] = json!(uid(h, 5));
    created["metadata"]["creationTimestamp"] = json!("2024-05-01T10:00:00Z");
    let created = live(created);

    // Rollout UPDATE: a new image (a new revision) over the live object.
    let old_rollout = live(rollout(h, Form::Live));
    let mut new_rollout = old_rollout.clone();
    set(
        &mut new_rollout,
        "/spec/template/spec/containers/0/image",
        json!(format!(
            "registry.example.com/{}/{}:2.0.0",
            namespace(h),
            name(h)
        )),
    );

    // VirtualService UPDATE: Git's 100/0 over the live 80/20 (the drift guard restores it).
    let old_vs = live(virtual_service(h, Form::Live));
    let mut gitops_vs = old_vs.clone();
    for section in ["http", "tls"] {
        set(
            &mut gitops_vs,
            &format!("/spec/{section}/0/route/0/weight"),
            json!(100),
        );
        set(
            &mut gitops_vs,
            &format!("/spec/{section}/0/route/1/weight"),
            json!(0),
        );
    }
    // ... and one that keeps the live weights (a label change): nothing to restore.
    let mut relabelled_vs = old_vs.clone();
    set(
        &mut relabelled_vs,
        "/metadata/labels/environment",
        json!("prod"),
    );
    set(&mut relabelled_vs, "/spec/http/0/timeout", json!("15s"));

    // DestinationRule UPDATE (subset level): Git's subsets without the hash label, and a new
    // traffic policy.
    let old_dr = live(destination_rule(s, Form::Live));
    let mut gitops_dr = old_dr.clone();
    for subset in 0..2 {
        remove_key(
            &mut gitops_dr,
            &format!("/spec/subsets/{subset}/labels"),
            "rollouts-pod-template-hash",
        );
    }
    set(
        &mut gitops_dr,
        "/spec/trafficPolicy/outlierDetection/consecutive5xxErrors",
        json!(7),
    );

    // Service UPDATE (host level): Git's selector without the hash.
    let old_svc = live(service(h, "canary", Form::Live));
    let mut gitops_svc = old_svc.clone();
    remove_key(
        &mut gitops_svc,
        "/spec/selector",
        "rollouts-pod-template-hash",
    );
    set(&mut gitops_svc, "/spec/ports/2/port", json!(9091));

    let case = |name, mutate, body| Case { name, mutate, body };
    vec![
        case("rollout-create", false, review(1, "CREATE", &created, None)),
        case(
            "rollout-update",
            false,
            review(2, "UPDATE", &new_rollout, Some(&old_rollout)),
        ),
        case(
            "vs-update",
            false,
            review(3, "UPDATE", &gitops_vs, Some(&old_vs)),
        ),
        case(
            "vs-update-100/0",
            true,
            review(4, "UPDATE", &gitops_vs, Some(&old_vs)),
        ),
        case(
            "vs-update-80/20",
            true,
            review(5, "UPDATE", &relabelled_vs, Some(&old_vs)),
        ),
        case(
            "dr-update",
            false,
            review(6, "UPDATE", &gitops_dr, Some(&old_dr)),
        ),
        case(
            "dr-update",
            true,
            review(7, "UPDATE", &gitops_dr, Some(&old_dr)),
        ),
        case(
            "svc-update",
            false,
            review(8, "UPDATE", &gitops_svc, Some(&old_svc)),
        ),
        case(
            "svc-update",
            true,
            review(9, "UPDATE", &gitops_svc, Some(&old_svc)),
        ),
    ]
}

/// The live state of `n` apps, as the index holds it.
pub fn live_objects(n: usize) -> impl Iterator<Item = Value> {
    (0..n).flat_map(|i| objects(i, Form::Live))
}
