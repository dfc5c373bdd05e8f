//! A peer in the same run: Open Policy Agent (the policy engine under Gatekeeper) serving
//! `benches/opa/policy.rego`, rollout-guard's cross-object checks in Rego, over the same objects
//! loaded as `data.inventory` (Gatekeeper's layout, `data.inventory.namespace[ns][apiVersion][kind][name]`),
//! asked with the same AdmissionReviews (`input.review` = the review's request) on loopback,
//! side by side with `rollout-guard serve --source files` on its HTTPS `/validate`.
//!
//! - Agreement first: a handful of reviews against the same state, each with the verdict it must
//!   get (allow the good ones, deny a wrong route, a missing destination, a write that breaks a
//!   Rollout), sent to both; a disagreement is printed loudly and written into the section.
//! - Then for each server in turn (OPA over HTTP, OPA over HTTPS with the same kind of
//!   certificate as rollout-guard, rollout-guard over HTTPS): start to ready, each review kind
//!   alone on one connection (p50/p99), a closed loop over K connections, then a fixed rate (the
//!   same for all: half of OPA-over-HTTP's closed-loop throughput), server CPU and RSS.
//!
//! Environment: `RG_OPA_BIN` (the `opa` binary; scripts/build-e2e-tools.sh opa), `RG_OPA_APPS`
//! (10000), `RG_OPA_SECONDS` (10), `RG_OPA_CALLS` (per-kind calls, 1000), `RG_LOADGEN_CONNECTIONS`
//! (8), `RG_BIN` (rollout-guard, default target/release/rollout-guard). Under `cargo test` it
//! only checks that the reviews it would send are well-formed.

#[path = "support/gen.rs"]
mod gen;
#[path = "support/load.rs"]
mod load;
#[path = "support/results.rs"]
mod results;

use axum::body::Bytes;
use gen::Form;
use load::{
    bin_path, connector, env_num, free_port, log_file, make_certs, measure, per_case, post,
    spawn_serve, Certs, Measured, Plan, Server, Target, READY_TIMEOUT,
};
use results::{micros, millis, Samples, Section};
use serde_json::{json, Map, Value};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const POLICY: &str = "benches/opa/policy.rego";
const OPA_PATH: &str = "/v1/data/rolloutguard/violation";

/// A review with the verdict both engines must give.
struct Fixture {
    name: &'static str,
    allowed: bool,
    body: Vec<u8>,
}

fn set(doc: &mut Value, pointer: &str, value: Value) {
    match doc.pointer_mut(pointer) {
        Some(slot) => *slot = value,
        None => panic!("fixture: no {pointer} in the generated object"),
    }
}

/// Reviews against the state of `n` apps: good ones (allowed by both) and broken ones (denied by
/// both), of the kinds the policy covers.
fn fixtures(n: usize) -> Vec<Fixture> {
    let h = gen::host_target(n);
    let s = gen::subset_target(n);
    let live = gen::with_managed_fields;
    // A CREATE of the app's own Rollout, as the decision benchmark sends it (its Services are
    // annotated as managed by that name).
    let created = |i: usize| gen::rollout(i, Form::Manifest);
    let fixture = |name, allowed, body| Fixture {
        name,
        allowed,
        body,
    };
    let mut wrong_route = created(h);
    set(
        &mut wrong_route,
        "/spec/strategy/canary/trafficRouting/istio/virtualService/routes",
        json!(["primry"]),
    );
    let mut wrong_canary = created(h);
    set(
        &mut wrong_canary,
        "/spec/strategy/canary/canaryService",
        json!(format!("{}-stable", gen::name(h + 1))),
    );
    let mut wrong_subset = created(s);
    set(
        &mut wrong_subset,
        "/spec/strategy/canary/trafficRouting/istio/destinationRule/canarySubsetName",
        json!("preview"),
    );
    let old_vs = live(gen::virtual_service(h, Form::Live));
    let mut renamed = old_vs.clone();
    set(&mut renamed, "/spec/http/0/name", json!("main"));
    let mut retargeted = old_vs.clone();
    set(
        &mut retargeted,
        "/spec/http/0/route/1/destination/host",
        json!(format!("{}-canary", gen::name(h + 1))),
    );
    let mut relabelled = old_vs.clone();
    set(&mut relabelled, "/spec/http/0/timeout", json!("15s"));
    let old_dr = live(gen::destination_rule(s, Form::Live));
    let mut dropped_subset = old_dr.clone();
    if let Some(subsets) = dropped_subset
        .pointer_mut("/spec/subsets")
        .and_then(Value::as_array_mut)
    {
        subsets.retain(|x| x["name"] != "canary");
    }
    let mut retuned = old_dr.clone();
    set(
        &mut retuned,
        "/spec/trafficPolicy/outlierDetection/consecutive5xxErrors",
        json!(7),
    );
    vec![
        fixture(
            "Rollout CREATE, host level, routes as in the VirtualService",
            true,
            gen::review(101, "CREATE", &live(created(h)), None),
        ),
        fixture(
            "Rollout CREATE, subset level",
            true,
            gen::review(102, "CREATE", &live(created(s)), None),
        ),
        fixture(
            "Rollout CREATE naming http route `primry` (http-route-not-found)",
            false,
            gen::review(103, "CREATE", &live(wrong_route), None),
        ),
        fixture(
            "Rollout CREATE whose canaryService is not in the route (canary-destination-missing)",
            false,
            gen::review(104, "CREATE", &live(wrong_canary), None),
        ),
        fixture(
            "Rollout CREATE naming a subset the DestinationRule lacks (destinationrule-subset-missing)",
            false,
            gen::review(105, "CREATE", &live(wrong_subset), None),
        ),
        fixture(
            "VirtualService UPDATE of the timeout",
            true,
            gen::review(106, "UPDATE", &relabelled, Some(&old_vs)),
        ),
        fixture(
            "VirtualService UPDATE renaming the managed route (breaks-rollout)",
            false,
            gen::review(107, "UPDATE", &renamed, Some(&old_vs)),
        ),
        fixture(
            "VirtualService UPDATE sending the canary share to another app (breaks-rollout)",
            false,
            gen::review(108, "UPDATE", &retargeted, Some(&old_vs)),
        ),
        fixture(
            "DestinationRule UPDATE of the traffic policy",
            true,
            gen::review(109, "UPDATE", &retuned, Some(&old_dr)),
        ),
        fixture(
            "DestinationRule UPDATE dropping the canary subset (breaks-rollout)",
            false,
            gen::review(110, "UPDATE", &dropped_subset, Some(&old_dr)),
        ),
    ]
}

/// Gatekeeper's input: `{"input": {"review": <the AdmissionReview's request>}}`.
fn opa_input(admission_review: &[u8]) -> Result<Vec<u8>, String> {
    let mut review: Value = serde_json::from_slice(admission_review).map_err(|e| e.to_string())?;
    let request = review
        .get_mut("request")
        .map(Value::take)
        .ok_or("an AdmissionReview without request")?;
    serde_json::to_vec(&json!({"input": {"review": request}})).map_err(|e| e.to_string())
}

/// `data.json` for OPA: `{"inventory": {"namespace": {ns: {apiVersion: {kind: {name: object}}}}}}`.
fn write_inventory(path: &Path, n: usize) -> Result<usize, String> {
    let mut namespaces = Map::new();
    let mut count = 0;
    for object in gen::live_objects(n) {
        let ns = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let gv = object["apiVersion"].as_str().unwrap_or("").to_string();
        let kind = object["kind"].as_str().unwrap_or("").to_string();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let slot = namespaces
            .entry(ns)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .and_then(|m| m.entry(gv).or_insert_with(|| json!({})).as_object_mut())
            .and_then(|m| m.entry(kind).or_insert_with(|| json!({})).as_object_mut());
        if let Some(m) = slot {
            m.insert(name, object);
            count += 1;
        }
    }
    let doc = json!({"inventory": {"namespace": namespaces}});
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    serde_json::to_writer(&mut w, &doc).map_err(|e| e.to_string())?;
    w.flush().map_err(|e| e.to_string())?;
    Ok(count)
}

/// Whether an answer allows: rollout-guard's `response.allowed`, OPA's empty violation set.
fn allowed(engine: Engine, body: &[u8]) -> Result<(bool, String), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    match engine {
        Engine::RolloutGuard => {
            let allowed = v["response"]["allowed"]
                .as_bool()
                .ok_or("no response.allowed")?;
            let why = v["response"]["status"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string();
            Ok((allowed, why))
        }
        Engine::Opa => {
            let violations = v["result"].as_array().ok_or("no result array")?;
            let why = violations
                .iter()
                .filter_map(|x| x["msg"].as_str())
                .collect::<Vec<_>>()
                .join("; ");
            Ok((violations.is_empty(), why))
        }
    }
}

/// One engine's answer to one fixture.
struct Answer {
    allowed: bool,
    why: String,
}

/// Each engine's answers, in fixture order.
type Verdicts = Vec<(&'static str, Vec<Answer>)>;

#[derive(Clone, Copy, PartialEq)]
enum Engine {
    RolloutGuard,
    Opa,
}

/// One engine answering the fixtures; the lines of disagreement (with the expected verdict).
fn check_agreement(
    rt: &tokio::runtime::Runtime,
    engine: Engine,
    target: &Target,
    fixtures: &[Fixture],
) -> Result<Vec<Answer>, String> {
    let mut out = Vec::new();
    for f in fixtures {
        let (path, body) = match engine {
            Engine::RolloutGuard => ("/validate", f.body.clone()),
            Engine::Opa => (OPA_PATH, opa_input(&f.body)?),
        };
        let (status, answer) = rt.block_on(post(target, path, Bytes::from(body)))?;
        if !status.is_success() {
            return Err(format!(
                "{}: HTTP {status}: {}",
                f.name,
                String::from_utf8_lossy(&answer)
            ));
        }
        let (allowed, why) = allowed(engine, &answer)?;
        out.push(Answer { allowed, why });
    }
    Ok(out)
}

struct Opa {
    server: Server,
    addr: SocketAddr,
    ready_after: Duration,
}

/// `opa run --server` on 127.0.0.1 with the policy and the inventory; ready when a review is
/// answered (the files are loaded before it listens).
fn spawn_opa(
    rt: &tokio::runtime::Runtime,
    opa: &Path,
    data: &Path,
    tls: Option<(&Certs, tokio_rustls::TlsConnector)>,
    probe: &[u8],
    log: &Path,
) -> Result<Opa, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let started = Instant::now();
    let mut command = Command::new(opa);
    command
        .args([
            "run",
            "--server",
            "--disable-telemetry",
            "--log-level",
            "error",
        ])
        .arg("--addr")
        .arg(addr.to_string());
    if let Some((certs, _)) = &tls {
        command
            .arg("--tls-cert-file")
            .arg(&certs.cert)
            .arg("--tls-private-key-file")
            .arg(&certs.key);
    }
    let child = command
        .arg(POLICY)
        .arg(data)
        .stdout(Stdio::null())
        .stderr(log_file(log)?)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", opa.display()))?;
    let mut server = Server { child, name: "opa" };
    let target = Target {
        addr,
        tls: tls.map(|(_, c)| c),
    };
    loop {
        if let Ok((status, _)) = rt.block_on(post(&target, OPA_PATH, Bytes::from(probe.to_vec()))) {
            if status.is_success() {
                break;
            }
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!(
                "opa exited with {status} before it answered (log: {})",
                log.display()
            ));
        }
        if started.elapsed() > READY_TIMEOUT {
            server.stop();
            return Err(format!("opa did not answer within {READY_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Opa {
        server,
        addr,
        ready_after: started.elapsed(),
    })
}

/// What one server gave.
struct Row {
    name: &'static str,
    transport: &'static str,
    ready: Duration,
    rss_ready: Option<u64>,
    rss_after: Option<u64>,
    per_kind: Vec<Samples>,
    closed: Measured,
    fixed: Option<Measured>,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("opa bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let bench = results::bench_mode();
    let apps = env_num("RG_OPA_APPS", if bench { 10_000 } else { 100 }) as usize;
    let fixtures = fixtures(apps);
    let validate: Vec<gen::Case> = gen::cases(apps).into_iter().filter(|c| !c.mutate).collect();
    // Well-formed inputs for both engines (all that `cargo test` checks: it has no OPA).
    for f in &fixtures {
        opa_input(&f.body).map_err(|e| format!("{}: {e}", f.name))?;
    }
    if !bench {
        println!(
            "opa bench: {} fixtures and {} review kinds well-formed",
            fixtures.len(),
            validate.len()
        );
        return Ok(());
    }
    let mut s = Section::new("opa");
    let opa = match std::env::var_os("RG_OPA_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            s.line("## A peer in the same run: OPA");
            s.line("");
            s.line("Not measured: `RG_OPA_BIN` was not set (scripts/bench.sh builds OPA with scripts/build-e2e-tools.sh opa).");
            s.figure("error", "RG_OPA_BIN not set");
            s.write();
            return Ok(());
        }
    };
    let seconds = env_num("RG_OPA_SECONDS", 10);
    let calls = env_num("RG_OPA_CALLS", 1000) as usize;
    let connections = env_num("RG_LOADGEN_CONNECTIONS", 8) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;

    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let certs = make_certs(dir.path())?;
    let tls = connector(certs.ca_pem.as_bytes())?;
    let state = dir.path().join("state");
    let data = dir.path().join("data.json");
    let started = Instant::now();
    let objects = gen::write_tree(&state, apps, Form::Live).map_err(|e| e.to_string())?;
    let inventory = write_inventory(&data, apps)?;
    let data_mib = std::fs::metadata(&data).map(|m| m.len()).unwrap_or(0) as f64 / 1048576.0;
    println!(
        "state: {objects} objects as YAML files and {inventory} in data.json ({data_mib:.1} MiB), written in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let rg_cases: Arc<Vec<(String, Bytes)>> = Arc::new(
        validate
            .iter()
            .map(|c| ("/validate".to_string(), Bytes::from(c.body.clone())))
            .collect(),
    );
    let opa_cases: Arc<Vec<(String, Bytes)>> = Arc::new(
        validate
            .iter()
            .map(|c| opa_input(&c.body).map(|b| (OPA_PATH.to_string(), Bytes::from(b))))
            .collect::<Result<_, _>>()?,
    );
    let plan = |cases| Plan {
        rt: &rt,
        cases,
        connections,
        duration: Duration::from_secs(seconds),
    };

    let mut rows: Vec<Row> = Vec::new();
    let mut verdicts: Verdicts = Vec::new();
    let mut fixed_rate = None;

    // OPA over HTTP, then over HTTPS.
    for (transport, with_tls) in [("HTTP", false), ("HTTPS", true)] {
        let opa_tls = with_tls.then(|| (&certs, tls.clone()));
        let probe = &opa_cases[0].1;
        let log = dir.path().join(format!("opa-{transport}.log"));
        let o = spawn_opa(&rt, &opa, &data, opa_tls, probe, &log)?;
        println!(
            "opa ({transport}) answered after {:.0} ms",
            o.ready_after.as_secs_f64() * 1000.0
        );
        let rss_ready = results::rss_of(&o.server.pid());
        let target = Target {
            addr: o.addr,
            tls: with_tls.then(|| tls.clone()),
        };
        if !with_tls {
            verdicts.push((
                "OPA",
                check_agreement(&rt, Engine::Opa, &target, &fixtures)?,
            ));
        }
        let per_kind = rt.block_on(per_case(&target, &opa_cases, calls))?;
        let closed = measure(&plan(&opa_cases), "opa", Some(&o.server), &target, None);
        let rate = *fixed_rate.get_or_insert(closed.run.throughput() / 2.0);
        let fixed = measure(
            &plan(&opa_cases),
            "opa",
            Some(&o.server),
            &target,
            Some(rate),
        );
        rows.push(Row {
            name: "OPA",
            transport: if with_tls { "HTTPS" } else { "HTTP" },
            ready: o.ready_after,
            rss_ready,
            rss_after: results::rss_of(&o.server.pid()),
            per_kind,
            closed,
            fixed: Some(fixed),
        });
        o.server.stop();
    }

    // rollout-guard over HTTPS, files source, the same objects.
    let bin = bin_path();
    // `--breaks-severity deny`: the Rego policy denies every write that breaks a Rollout, as
    // Gatekeeper policies do; rollout-guard's default (`auto`) warns when the two objects may be
    // halves of one GitOps change. The reviews measured break nothing, so only the fixtures
    // see the difference.
    let source = vec![
        "--source".to_string(),
        "files".into(),
        "--manifests".into(),
        state.display().to_string(),
        "--breaks-severity".into(),
        "deny".into(),
    ];
    let serve = spawn_serve(
        &bin,
        &source,
        &[],
        &certs,
        &dir.path().join("serve.log"),
        READY_TIMEOUT,
    )?;
    let rss_ready = results::rss_of(&serve.server.pid());
    let target = Target {
        addr: serve.addr,
        tls: Some(tls.clone()),
    };
    verdicts.push((
        "rollout-guard",
        check_agreement(&rt, Engine::RolloutGuard, &target, &fixtures)?,
    ));
    let per_kind = rt.block_on(per_case(&target, &rg_cases, calls))?;
    let closed = measure(
        &plan(&rg_cases),
        "serve",
        Some(&serve.server),
        &target,
        None,
    );
    let fixed = fixed_rate.map(|rate| {
        measure(
            &plan(&rg_cases),
            "serve",
            Some(&serve.server),
            &target,
            Some(rate),
        )
    });
    rows.push(Row {
        name: "rollout-guard",
        transport: "HTTPS",
        ready: serve.ready_after,
        rss_ready,
        rss_after: results::rss_of(&serve.server.pid()),
        per_kind,
        closed,
        fixed,
    });
    serve.server.stop();

    report(
        &mut s,
        apps,
        objects,
        data_mib,
        connections,
        seconds,
        calls,
        &validate,
        &fixtures,
        &verdicts,
        &rows,
    );
    s.write();
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn report(
    s: &mut Section,
    apps: usize,
    objects: usize,
    data_mib: f64,
    connections: usize,
    seconds: u64,
    calls: usize,
    validate: &[gen::Case],
    fixtures: &[Fixture],
    verdicts: &Verdicts,
    rows: &[Row],
) {
    s.line("## A peer in the same run: OPA");
    s.line("");
    s.line(format!(
        "Open Policy Agent {} (`opa run --server`, built from its Go module pinned in \
         `tests/bench/opa/go.mod` by `scripts/build-e2e-tools.sh opa`; default flags, log level error) \
         serving `benches/opa/policy.rego`, rollout-guard's cross-object checks written in Rego the \
         way Gatekeeper users write them (a Rollout's http and tls routes exist in its VirtualService; \
         each managed route has the canary and stable destinations; the DestinationRule has the \
         subsets; a VirtualService or DestinationRule write does not break a Rollout that uses it, \
         checked before and after), over the same {objects} objects ({apps} apps, live form) loaded \
         as `data.inventory` in Gatekeeper's layout (`data.inventory.namespace[ns][apiVersion][kind][name]`, \
         {data_mib:.0} MiB of JSON, a file given to `opa run`), asked `POST {OPA_PATH}` with \
         `{{\"input\": {{\"review\": <the AdmissionReview's request>}}}}`. Against it \
         `rollout-guard serve --source files --breaks-severity deny` on the same objects (the Rego \
         policy denies every breaking write, as a Gatekeeper constraint does; rollout-guard's default \
         only warns when the write may be half of one GitOps change), `POST /validate` over HTTPS, \
         all its rules. The same {} validating AdmissionReviews of the decision benchmark ({}), on \
         127.0.0.1; OPA over plain HTTP (as Gatekeeper's own process asks it: in-process, no \
         network) and over HTTPS with the same kind of certificate (fair to rollout-guard, which is \
         always HTTPS). Client as in \"HTTPS on loopback\" (same process, shared cores).",
        opa_version(),
        validate.len(),
        validate.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
    ));
    s.line("");

    // Agreement.
    let mut disagreements = 0;
    s.line("Agreement on reviews against the same state (expected verdict; each engine's answer):");
    s.line("");
    s.line("| review | expected | OPA | rollout-guard |");
    s.line("|---|---|---|---|");
    let verdict = |engine: &str, i: usize| {
        verdicts
            .iter()
            .find(|(e, _)| *e == engine)
            .and_then(|(_, v)| v.get(i))
    };
    let word = |a: bool| if a { "allow" } else { "deny" };
    for (i, f) in fixtures.iter().enumerate() {
        let cell = |engine: &str| match verdict(engine, i) {
            Some(Answer { allowed, why }) => {
                let mark = if *allowed == f.allowed {
                    ""
                } else {
                    " **DISAGREES**"
                };
                let why = if why.is_empty() {
                    String::new()
                } else {
                    let why = why.split_whitespace().collect::<Vec<_>>().join(" ");
                    format!(" ({})", why.chars().take(110).collect::<String>())
                };
                format!("{}{mark}{why}", word(*allowed))
            }
            None => "–".into(),
        };
        for engine in ["OPA", "rollout-guard"] {
            if verdict(engine, i).is_some_and(|a| a.allowed != f.allowed) {
                disagreements += 1;
                eprintln!(
                    "\n!!! DISAGREEMENT: {engine} says {} on \"{}\" (expected {})\n",
                    word(!f.allowed),
                    f.name,
                    word(f.allowed)
                );
            }
        }
        s.line(format!(
            "| {} | {} | {} | {} |",
            f.name,
            word(f.allowed),
            cell("OPA").replace('|', "\\|"),
            cell("rollout-guard").replace('|', "\\|")
        ));
    }
    s.line("");
    s.line(if disagreements == 0 {
        format!("Both engines give the expected verdict on all {} reviews.", fixtures.len())
    } else {
        format!("**{disagreements} answers disagree with the expected verdict**: the comparison below is not of equivalent work until they are fixed.")
    });
    s.figure("disagreements", disagreements);
    s.line("");

    // Per kind.
    s.line(format!(
        "Each review kind alone on one keep-alive connection, {calls} requests in a row (p50 / p99, ms):"
    ));
    s.line("");
    let mut head = "| server |".to_string();
    let mut rule = "|---|".to_string();
    for c in validate {
        head.push_str(&format!(" {} |", c.name));
        rule.push_str("---:|");
    }
    s.line(head);
    s.line(rule);
    for r in rows {
        let mut line = format!("| {} ({}) |", r.name, r.transport);
        for samples in &r.per_kind {
            line.push_str(&format!(
                " {} / {} |",
                millis(samples.quantile(0.5)),
                millis(samples.quantile(0.99))
            ));
        }
        s.line(line);
    }
    s.line("");

    s.line(format!(
        "Load: {connections} keep-alive connections cycling through the {} kinds, {seconds} s after 1 s of warm-up; \
         the fixed rate is half OPA-over-HTTP's closed-loop throughput, the same for every server.",
        validate.len()
    ));
    s.line("");
    s.line("| server | load | req/s | p50 ms | p99 ms | p99.9 ms | errors | server CPU µs / req | ready s | RSS ready MiB | RSS after MiB |");
    s.line("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        for m in std::iter::once(&r.closed).chain(r.fixed.as_ref()) {
            s.line(format!(
                "| {} ({}) | {} | {:.0} | {} | {} | {} | {} | {} | {:.2} | {} | {} |",
                r.name,
                r.transport,
                m.mode,
                m.run.throughput(),
                millis(m.run.samples.quantile(0.5)),
                millis(m.run.samples.quantile(0.99)),
                millis(m.run.samples.quantile(0.999)),
                m.run.errors,
                m.cpu_per_request_us()
                    .map(|c| format!("{c:.0}"))
                    .unwrap_or_else(|| "–".into()),
                r.ready.as_secs_f64(),
                r.rss_ready.map(results::mib).unwrap_or_else(|| "–".into()),
                r.rss_after.map(results::mib).unwrap_or_else(|| "–".into()),
            ));
        }
    }
    let find = |name: &str, transport: &str| {
        rows.iter()
            .find(|r| r.name == name && r.transport == transport)
    };
    if let (Some(rg), Some(opa_http), Some(opa_https)) = (
        find("rollout-guard", "HTTPS"),
        find("OPA", "HTTP"),
        find("OPA", "HTTPS"),
    ) {
        let tp = |r: &Row| r.closed.run.throughput();
        let p99 = |r: &Row| {
            r.fixed
                .as_ref()
                .map(|m| m.run.samples.quantile(0.99))
                .unwrap_or(0)
        };
        let p50_kind = |r: &Row| {
            let mut all = Samples::default();
            for k in &r.per_kind {
                all.extend(k.clone());
            }
            all.sort();
            all.quantile(0.5)
        };
        s.line("");
        s.line(format!(
            "Ratios, rollout-guard (HTTPS) against OPA: closed-loop throughput **{:.1}×** OPA over HTTP \
             ({:.0} / {:.0} req/s) and **{:.1}×** OPA over HTTPS ({:.0} req/s); p99 at the fixed rate \
             {} ms against {} ms (HTTP) and {} ms (HTTPS); median of the single-connection latencies \
             {} µs against {} µs (HTTP); RSS {} MiB against {} MiB.",
            tp(rg) / tp(opa_http),
            tp(rg),
            tp(opa_http),
            tp(rg) / tp(opa_https),
            tp(opa_https),
            millis(p99(rg)),
            millis(p99(opa_http)),
            millis(p99(opa_https)),
            micros(p50_kind(rg)),
            micros(p50_kind(opa_http)),
            rg.rss_after.map(results::mib).unwrap_or_default(),
            opa_http.rss_after.map(results::mib).unwrap_or_default(),
        ));
        s.figure("throughput_rollout_guard", tp(rg));
        s.figure("throughput_opa_http", tp(opa_http));
        s.figure("throughput_opa_https", tp(opa_https));
        s.figure("rss_rollout_guard", rg.rss_after.unwrap_or(0));
        s.figure("rss_opa", opa_http.rss_after.unwrap_or(0));
        s.figure("fixed_p99_ns_rollout_guard", p99(rg));
        s.figure("fixed_p99_ns_opa_http", p99(opa_http));
    }
}

fn opa_version() -> String {
    std::fs::read_to_string("tests/bench/opa/go.mod")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| {
                    l.trim()
                        .strip_prefix("require github.com/open-policy-agent/opa ")
                })
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "(version unknown)".into())
}
