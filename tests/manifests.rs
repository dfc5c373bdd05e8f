//! The deployable manifests parse and agree with the binary: the Deployment's arguments are
//! accepted by the command line, ports, probe paths, Service and webhook paths line up, RBAC is
//! read-only on the four kinds, and each webhook entry has the settings DESIGN.md gives.

use clap::Parser;
use rollout_guard::cli::{Cli, Command};
use serde_json::Value;
use std::collections::BTreeSet;

fn load(name: &str) -> Vec<Value> {
    let path = format!("{}/manifests/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.split("\n---")
        .filter(|doc| {
            doc.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .map(|doc| serde_yaml_ng::from_str::<Value>(doc).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

fn one(name: &str) -> Value {
    let docs = load(name);
    assert_eq!(docs.len(), 1, "{name}");
    docs.into_iter().next().unwrap()
}

fn strs(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

#[test]
fn every_manifest_parses_and_the_kustomization_lists_them() {
    let kustomization = one("kustomization.yaml");
    let listed = strs(&kustomization["resources"]);
    for entry in std::fs::read_dir(format!("{}/manifests", env!("CARGO_MANIFEST_DIR"))).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".yaml") && name != "kustomization.yaml" {
            assert!(!load(&name).is_empty());
            assert!(
                listed.contains(&name),
                "{name} is not in kustomization.yaml"
            );
        }
    }
    for name in [
        "cert-manager/issuer.yaml",
        "cert-manager/certificate.yaml",
        "cert-manager/kustomization.yaml",
    ] {
        assert!(!load(name).is_empty());
    }
}

#[test]
fn the_deployment_runs_the_binary_as_it_is_configured() {
    let deployment = one("deployment.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    assert!(deployment["spec"]["replicas"].as_i64().unwrap() >= 2);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert!(
        container["resources"]["requests"].is_object()
            && container["resources"]["limits"].is_object()
    );
    assert!(pod["topologySpreadConstraints"].is_array());

    let mut args = vec!["rollout-guard".to_string()];
    args.extend(
        container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string()),
    );
    let cli = Cli::try_parse_from(&args)
        .unwrap_or_else(|e| panic!("the Deployment's args are refused: {e}"));
    let Command::Serve(serve) = cli.command else {
        panic!("the Deployment does not run serve")
    };
    let config = serve.into_config();

    // The defaults of the binary are what the Deployment spells out.
    let defaults = match Cli::try_parse_from([
        "rollout-guard",
        "serve",
        "--tls-cert",
        "c",
        "--tls-key",
        "k",
    ])
    .unwrap()
    .command
    {
        Command::Serve(s) => s.into_config(),
        _ => unreachable!(),
    };
    assert_eq!(config.listen, defaults.listen);
    assert_eq!(config.admin_listen, defaults.admin_listen);

    let port = |name: &str| {
        container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["containerPort"]
            .as_u64()
            .unwrap() as u16
    };
    assert_eq!(port("https"), config.listen.port());
    assert_eq!(port("metrics"), config.admin_listen.port());
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/livez");
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(
            container[probe]["httpGet"]["port"], "metrics",
            "{probe} is not on the admin port"
        );
    }

    // The TLS files are where the Secret is mounted.
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "tls")
        .expect("tls mount");
    let dir = mount["mountPath"].as_str().unwrap();
    let rollout_guard::server::Certificates::Files(files) = &config.tls else {
        panic!("the Deployment does not serve certificate files")
    };
    assert!(files.cert.starts_with(dir) && files.key.starts_with(dir));
}

#[test]
fn the_service_reaches_the_https_port() {
    let service = one("service.yaml");
    let deployment = one("deployment.yaml");
    assert_eq!(service["metadata"]["name"], "rollout-guard");
    assert_eq!(
        service["metadata"]["namespace"],
        deployment["metadata"]["namespace"]
    );
    let https = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == 443)
        .expect("port 443");
    // By name or by number, it must be the container's https port.
    let container_port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "https")
        .unwrap()["containerPort"]
        .clone();
    assert!(
        https["targetPort"] == "https" || https["targetPort"] == container_port,
        "{https}"
    );
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn rbac_is_read_only_on_the_four_kinds_and_writes_only_events() {
    let role = one("clusterrole.yaml");
    let mut resources = BTreeSet::new();
    let (events, reads): (Vec<&Value>, Vec<&Value>) = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .partition(|r| strs(&r["resources"]).contains("events"));
    // kube-runtime's recorder: events.k8s.io/v1, create and (for a repeat's series) patch.
    assert_eq!(events.len(), 1, "one rule for Events");
    assert_eq!(
        strs(&events[0]["apiGroups"]),
        ["events.k8s.io"].map(String::from).into()
    );
    assert_eq!(
        strs(&events[0]["resources"]),
        ["events"].map(String::from).into()
    );
    assert_eq!(
        strs(&events[0]["verbs"]),
        ["create", "patch"].map(String::from).into()
    );
    for rule in reads {
        assert_eq!(
            strs(&rule["verbs"]),
            ["get", "list", "watch"].map(String::from).into(),
            "{rule}"
        );
        for r in strs(&rule["resources"]) {
            resources.insert(r);
        }
    }
    assert_eq!(
        resources,
        [
            "destinationrules",
            "rollouts",
            "services",
            "virtualservices"
        ]
        .map(String::from)
        .into()
    );
}

fn webhooks(name: &str) -> Vec<Value> {
    one(name)["webhooks"].as_array().unwrap().clone()
}

#[test]
fn webhook_entries_follow_the_design() {
    let service = one("service.yaml");
    for (file, path, kinds) in [
        (
            "validatingwebhookconfiguration.yaml",
            "/validate",
            vec![
                "rollouts",
                "virtualservices",
                "destinationrules",
                "services",
            ],
        ),
        (
            "mutatingwebhookconfiguration.yaml",
            "/mutate",
            vec!["virtualservices", "destinationrules", "services"],
        ),
    ] {
        let entries = webhooks(file);
        let mut seen = Vec::new();
        for w in &entries {
            let name = w["name"].as_str().unwrap();
            let client = &w["clientConfig"]["service"];
            assert_eq!(client["name"], service["metadata"]["name"], "{name}");
            assert_eq!(
                client["namespace"], service["metadata"]["namespace"],
                "{name}"
            );
            assert_eq!(client["path"], path, "{name}");
            assert_eq!(client["port"], 443, "{name}");
            assert_eq!(
                strs(&w["admissionReviewVersions"]),
                ["v1".to_string()].into(),
                "{name}"
            );
            assert_eq!(w["sideEffects"], "None", "{name}");
            assert_eq!(w["matchPolicy"], "Equivalent", "{name}");
            assert_eq!(w["timeoutSeconds"], 5, "{name}");
            assert!(w["namespaceSelector"].is_object(), "{name}");
            let rules = w["rules"].as_array().unwrap();
            assert_eq!(rules.len(), 1, "one kind per entry: {name}");
            let rule = &rules[0];
            assert_eq!(
                strs(&rule["operations"]),
                ["CREATE", "UPDATE"].map(String::from).into(),
                "{name}"
            );
            let resources = strs(&rule["resources"]);
            assert_eq!(resources.len(), 1, "{name}");
            let resource = resources.into_iter().next().unwrap();
            assert!(
                !resource.contains('/'),
                "subresources are never registered: {name}"
            );
            if resource.ends_with(".istio.io") || rule["apiGroups"][0] == "networking.istio.io" {
                assert_eq!(
                    strs(&rule["apiVersions"]),
                    ["v1", "v1alpha3", "v1beta1"].map(String::from).into(),
                    "{name}"
                );
            }
            let expected_policy = match (path, resource.as_str()) {
                ("/validate", "services") => "Ignore",
                ("/validate", _) => "Fail",
                _ => "Ignore",
            };
            assert_eq!(w["failurePolicy"], expected_policy, "{name}");
            if path == "/mutate" {
                assert_eq!(w["reinvocationPolicy"], "IfNeeded", "{name}");
            }
            seen.push(resource);
        }
        seen.sort();
        let mut want: Vec<String> = kinds.into_iter().map(String::from).collect();
        want.sort();
        assert_eq!(seen, want, "{file}");
    }
}
