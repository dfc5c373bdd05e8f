//! The kube source against a real API server: `rollout-guard serve --source kube` on the e2e
//! control plane (kube-apiserver v1.34.1 + etcd 3.6.4, scripts/kube-up.sh) holding the
//! benchmark state, then a watch-event storm while `/validate` and `/mutate` are driven over HTTPS.
//!
//! 1. Load: the state's objects (benches/support/gen.rs, live form) written as JSON lines and
//!    created by `kube-load create` (tests/e2e/tools/cmd/kube-load: client-go, a pool of workers,
//!    no client-side rate limit), Rollout status through the status subresource.
//! 2. Start to ready: `serve --source kube` spawned with the kubeconfig, `/readyz` polled every
//!    5 ms; VmRSS when ready and the index's object count from `/metrics`. The same with a serve
//!    that watches one empty namespace gives the RSS without the state: the difference per object
//!    is the cost of an object in the kube source.
//! 3. Quiet: the load driver of `loadgen` (K keep-alive HTTPS connections, the decision
//!    benchmark's 9 AdmissionReviews in turn): a closed loop, then half that rate scheduled.
//! 4. Storm: `kube-load storm` merge-patches an annotation of the VirtualServices and Rollouts in
//!    turn at a paced rate (bounded in count and time) and the same two loads run during it.
//!
//! Environment: `RG_KUBECONFIG` (admin kubeconfig of an API server that holds none of the
//! state's namespaces yet; scripts/bench.sh starts one), `RG_KUBE_LOAD` (the kube-load binary),
//! `RG_KUBE_APPS` (10000), `RG_KUBE_SECONDS` (10), `RG_KUBE_STORM_RATE` (2000 patches/s),
//! `RG_KUBE_WORKERS` (48), `RG_KUBE_STATUS` (paused: which Rollouts get their status written; all, none),
//! `RG_KUBE_LOAD_SECONDS` (420: no create starts later), `RG_LOADGEN_CONNECTIONS` (8), `RG_BIN`, `RG_KUBE_APISERVER_PID` (to
//! report the API server's CPU per write). Under `cargo test` it does
//! nothing but write the objects file of a small state and read it back.

#[path = "support/gen.rs"]
mod gen;
#[path = "support/load.rs"]
mod load;
#[path = "support/results.rs"]
mod results;

use axum::body::Bytes;
use load::{
    bin_path, connector, env_num, http_get, log_file, make_certs, measure, spawn_serve, Measured,
    Plan, Serve, Target,
};
use results::{millis, Section};
use serde_json::Value;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(300);

fn write_objects(path: &Path, n: usize) -> Result<usize, String> {
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let mut count = 0;
    for object in gen::live_objects(n) {
        serde_json::to_writer(&mut w, &object).map_err(|e| e.to_string())?;
        w.write_all(b"\n").map_err(|e| e.to_string())?;
        count += 1;
    }
    w.flush().map_err(|e| e.to_string())?;
    Ok(count)
}

/// Runs `kube-load ARGS...` to the end: its JSON report (the last stdout line).
fn kube_load(loader: &Path, args: &[String], log: &Path) -> Result<Value, String> {
    let out = Command::new(loader)
        .args(args)
        .stderr(log_file(log)?)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", loader.display()))?;
    parse_report(out.status.success(), &out.stdout, log)
}

fn parse_report(success: bool, stdout: &[u8], log: &Path) -> Result<Value, String> {
    let text = String::from_utf8_lossy(stdout);
    let last = text.lines().last().unwrap_or("");
    if !success {
        let tail = std::fs::read_to_string(log).unwrap_or_default();
        return Err(format!(
            "kube-load failed: {}",
            tail.lines().last().unwrap_or("(no output)")
        ));
    }
    serde_json::from_str(last).map_err(|e| format!("kube-load's report {last:?}: {e}"))
}

/// Objects in the index, by the `rollout_guard_index_objects` gauges of `/metrics`.
fn indexed(serve: &Serve) -> Option<u64> {
    let metrics = http_get(serve.admin, "/metrics")?;
    let total = metrics
        .lines()
        .filter(|l| l.starts_with("rollout_guard_index_objects{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    Some(total as u64)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("kube bench: {e}");
        std::process::exit(1);
    }
}

struct Phase {
    name: &'static str,
    closed: Measured,
    fixed: Measured,
    cpu_per_s: f64,
}

fn run() -> Result<(), String> {
    let bench = results::bench_mode();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let objects_file = dir.path().join("objects.jsonl");
    if !bench {
        let n = write_objects(&objects_file, 10)?;
        let text = std::fs::read_to_string(&objects_file).map_err(|e| e.to_string())?;
        for line in text.lines() {
            serde_json::from_str::<Value>(line).map_err(|e| e.to_string())?;
        }
        println!("kube bench: {n} objects written as JSON lines and read back");
        return Ok(());
    }
    let mut s = Section::new("kube");
    let (kubeconfig, loader) = match (
        std::env::var_os("RG_KUBECONFIG"),
        std::env::var_os("RG_KUBE_LOAD"),
    ) {
        (Some(k), Some(l)) => (PathBuf::from(k), PathBuf::from(l)),
        _ => {
            s.line("## The kube source");
            s.line("");
            s.line("Not measured: `RG_KUBECONFIG` and `RG_KUBE_LOAD` are needed (scripts/bench.sh starts the API server and builds kube-load).");
            s.figure("error", "RG_KUBECONFIG or RG_KUBE_LOAD not set");
            s.write();
            return Ok(());
        }
    };
    let apps = env_num("RG_KUBE_APPS", 10_000) as usize;
    let seconds = env_num("RG_KUBE_SECONDS", 10);
    let storm_rate = env_num("RG_KUBE_STORM_RATE", 2000);
    let workers = env_num("RG_KUBE_WORKERS", 48);
    // Rollout status for the mid-canary Rollouts only by default: status writes to the Rollout
    // CRD are the slowest part of the load here (all: RG_KUBE_STATUS=all).
    let status = std::env::var("RG_KUBE_STATUS").unwrap_or_else(|_| "paused".into());
    // `make bench` stays bounded: no create starts after this (what was loaded is a prefix of
    // the state, reported).
    let load_seconds = env_num("RG_KUBE_LOAD_SECONDS", 420);
    let connections = env_num("RG_LOADGEN_CONNECTIONS", 8) as usize;
    let bin = bin_path();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;

    // 1. Load.
    let objects = write_objects(&objects_file, apps)?;
    println!("loading {objects} objects ({apps} apps) into the API server");
    let objects_arg = objects_file.display().to_string();
    let kc = kubeconfig.display().to_string();
    let apiserver = std::env::var("RG_KUBE_APISERVER_PID").ok();
    let apiserver_cpu = || apiserver.as_deref().map(load::cpu_of);
    let cpu_before_load = apiserver_cpu();
    let created = kube_load(
        &loader,
        &[
            "create".into(),
            "--kubeconfig".into(),
            kc.clone(),
            "--objects".into(),
            objects_arg.clone(),
            "--workers".into(),
            workers.to_string(),
            "--status".into(),
            status.clone(),
            "--deadline".into(),
            format!("{load_seconds}s"),
        ],
        &dir.path().join("kube-load-create.log"),
    )?;
    println!("kube-load create: {created}");
    let load_cpu = apiserver_cpu()
        .zip(cpu_before_load)
        .map(|(a, b)| a.saturating_sub(b));
    if created["errors"].as_u64() != Some(0) {
        return Err(format!("kube-load create had errors: {created}"));
    }
    let objects = created["created"].as_u64().unwrap_or(0) as usize;

    // 2. Start to ready.
    let certs = make_certs(dir.path())?;
    let tls = connector(certs.ca_pem.as_bytes())?;
    let kube = ["--source".to_string(), "kube".into()];
    let envs = [("KUBECONFIG", kubeconfig.as_path())];
    let mut empty_args = kube.to_vec();
    empty_args.extend(["--namespace".into(), "rollout-guard-bench-empty".into()]);
    let empty = spawn_serve(
        &bin,
        &empty_args,
        &envs,
        &certs,
        &dir.path().join("serve-empty.log"),
        READY_TIMEOUT,
    )?;
    let empty_rss = results::rss_of(&empty.server.pid());
    empty.server.stop();
    let serve = spawn_serve(
        &bin,
        &kube,
        &envs,
        &certs,
        &dir.path().join("serve.log"),
        READY_TIMEOUT,
    )?;
    let ready_after = serve.ready_after;
    let rss_ready = results::rss_of(&serve.server.pid());
    let in_index = indexed(&serve);
    println!(
        "serve --source kube ready after {:.0} ms, RSS {}, index {:?}",
        ready_after.as_secs_f64() * 1000.0,
        rss_ready.map(results::mib).unwrap_or_default(),
        in_index
    );

    // 3. Quiet, 4. storm.
    let cases: Arc<Vec<(String, Bytes)>> = Arc::new(
        gen::cases(apps)
            .into_iter()
            .map(|c| (c.path().to_string(), Bytes::from(c.body)))
            .collect(),
    );
    let plan = Plan {
        rt: &rt,
        cases: &cases,
        connections,
        duration: Duration::from_secs(seconds),
    };
    let target = Target {
        addr: serve.addr,
        tls: Some(tls),
    };
    let phase = |name: &'static str, rate: Option<f64>| {
        let cpu = serve.server.cpu();
        let t = Instant::now();
        let closed = measure(&plan, name, Some(&serve.server), &target, None);
        let rate = rate.unwrap_or(closed.run.throughput() / 2.0);
        let fixed = measure(&plan, name, Some(&serve.server), &target, Some(rate));
        let cpu_per_s =
            serve.server.cpu().saturating_sub(cpu).as_secs_f64() / t.elapsed().as_secs_f64();
        Phase {
            name,
            closed,
            fixed,
            cpu_per_s,
        }
    };
    let quiet = phase("quiet", None);
    let rate = quiet.fixed.run.throughput();

    // Two loads of `seconds` after a second of warm-up each, and a margin to start.
    let storm_seconds = 2 * (seconds + 1) + 4;
    let storm_log = dir.path().join("kube-load-storm.log");
    let mut storm: Child = Command::new(&loader)
        .args([
            "storm",
            "--kubeconfig",
            &kc,
            "--objects",
            &objects_arg,
            "--workers",
            &workers.to_string(),
            "--rate",
            &storm_rate.to_string(),
            "--duration",
            &format!("{storm_seconds}s"),
            "--max",
            &(storm_rate * storm_seconds).to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(log_file(&storm_log)?)
        .spawn()
        .map_err(|e| format!("cannot start kube-load storm: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&storm_log)
        .unwrap_or_default()
        .contains("storm of")
    {
        if Instant::now() > deadline || storm.try_wait().ok().flatten().is_some() {
            let _ = storm.kill();
            return Err(format!(
                "kube-load storm did not start; see {}",
                storm_log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let cpu_before_storm = apiserver_cpu();
    let stormy = phase("storm", Some(rate));
    let storm_out = storm
        .wait_with_output()
        .map_err(|e| format!("kube-load storm: {e}"))?;
    let storm_report = parse_report(storm_out.status.success(), &storm_out.stdout, &storm_log)?;
    println!("kube-load storm: {storm_report}");
    let storm_cpu = apiserver_cpu()
        .zip(cpu_before_storm)
        .map(|(a, b)| a.saturating_sub(b));
    let rss_after = results::rss_of(&serve.server.pid());
    let peak = results::peak_rss_of(&serve.server.pid());
    let in_index_after = indexed(&serve);
    serve.server.stop();

    report(
        &mut s,
        Report {
            apps,
            objects,
            connections,
            seconds,
            created: &created,
            ready_after,
            rss_ready,
            empty_rss,
            rss_after,
            peak,
            in_index,
            in_index_after,
            phases: [&quiet, &stormy],
            storm: &storm_report,
            load_cpu,
            storm_cpu,
        },
    );
    s.write();
    Ok(())
}

struct Report<'a> {
    apps: usize,
    objects: usize,
    connections: usize,
    seconds: u64,
    created: &'a Value,
    ready_after: Duration,
    rss_ready: Option<u64>,
    empty_rss: Option<u64>,
    rss_after: Option<u64>,
    peak: Option<u64>,
    in_index: Option<u64>,
    in_index_after: Option<u64>,
    phases: [&'a Phase; 2],
    storm: &'a Value,
    /// The API server's CPU (utime + stime) during the load and during the storm.
    load_cpu: Option<Duration>,
    storm_cpu: Option<Duration>,
}

fn report(s: &mut Section, r: Report<'_>) {
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    let mib = |v: Option<u64>| v.map(results::mib).unwrap_or_else(|| "–".into());
    s.line("## The kube source");
    s.line("");
    s.line(format!(
        "`rollout-guard serve --source kube` against kube-apiserver v1.34.1 and etcd 3.6.4 on \
         127.0.0.1 (scripts/kube-up.sh --version 1.34, its own run dir, the upstream Argo Rollouts \
         and Istio CRDs installed as tests/e2e/real.sh does) holding the state of {} apps: {} \
         objects ({}), the live form of \"The state\", Rollout status written through the status \
         subresource for `kube-load --status {}` (paused: the 2 in 10 Rollouts mid-canary, whose \
         live weights and hashes the drift guard reads; all: every Rollout). The API server, etcd, the loader, rollout-guard and the client share the 2 cores.",
        r.apps,
        f(r.created, "objects"),
        r.created["by_kind"]
            .as_object()
            .map(|m| m
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default(),
        r.created["status_which"].as_str().unwrap_or("?"),
    ));
    if r.created["deadline_hit"].as_bool() == Some(true) {
        s.line("");
        s.line(format!(
            "**Only {} of the {} objects were loaded**: the load stops starting creates after \
             `RG_KUBE_LOAD_SECONDS` so that `make bench` stays bounded; everything below is for \
             the {} objects loaded (a prefix of the state: whole apps in order, the last one partly).",
            r.objects,
            f(r.created, "objects"),
            r.objects
        ));
    }
    s.line("");
    s.line(format!(
        "Load (`kube-load create`, client-go, {} concurrent requests, no client-side rate limit): \
         {} objects created in **{:.1} s** ({:.0} objects/s), then {} Rollout status writes in {:.1} s; \
         {:.1} s in all, {} errors.",
        f(r.created, "workers"),
        r.objects,
        f(r.created, "create_seconds"),
        f(r.created, "objects_per_second"),
        f(r.created, "status_updates"),
        f(r.created, "status_seconds"),
        f(r.created, "total_seconds"),
        f(r.created, "errors"),
    ));
    if let Some(cpu) = r.load_cpu {
        let writes = r.objects as f64 + f(r.created, "status_updates");
        s.line(format!(
            "The API server spent {:.0} s of CPU on it ({:.1} ms per write, {:.2} cores on average): \
             what bounds the load rate on these shared cores.",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1000.0 / writes.max(1.0),
            cpu.as_secs_f64() / f(r.created, "total_seconds").max(1e-9)
        ));
    }
    s.line("");
    let per_object = match (r.rss_ready, r.empty_rss) {
        (Some(full), Some(empty)) if r.objects > 0 => {
            Some((full.saturating_sub(empty)) as f64 / r.objects as f64)
        }
        _ => None,
    };
    s.line(format!(
        "Start to ready (spawn `serve --source kube` → first 200 from `/readyz`, polled every 5 ms): \
         **{:.0} ms** with the index holding {} objects (`rollout_guard_index_objects`). RSS when \
         ready **{} MiB**; the same server watching one empty namespace: {} MiB, so **{} bytes per \
         object** (ΔRSS / objects). After the loads and the storm: {} MiB, peak (VmHWM) {} MiB, index {} objects.",
        r.ready_after.as_secs_f64() * 1000.0,
        r.in_index.map(|n| n.to_string()).unwrap_or_else(|| "?".into()),
        mib(r.rss_ready),
        mib(r.empty_rss),
        per_object.map(|b| format!("{b:.0}")).unwrap_or_else(|| "–".into()),
        mib(r.rss_after),
        mib(r.peak),
        r.in_index_after.map(|n| n.to_string()).unwrap_or_else(|| "?".into()),
    ));
    s.figure("ready_ns", r.ready_after.as_nanos() as u64);
    s.figure("load_seconds", f(r.created, "total_seconds"));
    if let Some(rss) = r.rss_ready {
        s.figure("rss_ready", rss);
    }
    if let Some(b) = per_object {
        s.figure("bytes_per_object", b);
    }
    s.line("");
    s.line(format!(
        "Watch-event storm (`kube-load storm`): merge patches of an annotation on the {} VirtualServices \
         and Rollouts in turn, paced at {:.0}/s for at most {:.0} s: {} sent in {:.1} s = **{:.0} \
         events/s achieved**, {} errors, {} slots missed (all workers busy). Each is a watch event for \
         rollout-guard (a new resourceVersion; the index re-reads the object). Load as in \"HTTPS on \
         loopback\": {} keep-alive HTTPS connections, the 9 AdmissionReviews in turn, {} s after 1 s \
         of warm-up; the fixed rate is half the quiet closed loop's, the same in both phases.",
        f(r.storm, "targets"),
        f(r.storm, "rate"),
        r.storm["seconds"].as_f64().map(|x| x.ceil()).unwrap_or(0.0),
        f(r.storm, "sent"),
        f(r.storm, "seconds"),
        f(r.storm, "achieved_rate"),
        f(r.storm, "errors"),
        f(r.storm, "late"),
        r.connections,
        r.seconds,
    ));
    if let Some(cpu) = r.storm_cpu {
        s.line(format!(
            "The API server's CPU during the storm: {:.1} s, {:.1} ms per patch: the rate it can take \
             here while rollout-guard and the client run beside it.",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1000.0 / f(r.storm, "sent").max(1.0)
        ));
    }
    s.line("");
    s.line("| phase | load | req/s | p50 ms | p99 ms | p99.9 ms | errors | server CPU µs / req | server CPU (cores) |");
    s.line("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for p in r.phases {
        for m in [&p.closed, &p.fixed] {
            s.line(format!(
                "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {:.2} |",
                p.name,
                m.mode,
                m.run.throughput(),
                millis(m.run.samples.quantile(0.5)),
                millis(m.run.samples.quantile(0.99)),
                millis(m.run.samples.quantile(0.999)),
                m.run.errors,
                m.cpu_per_request_us()
                    .map(|c| format!("{c:.0}"))
                    .unwrap_or_else(|| "–".into()),
                p.cpu_per_s,
            ));
        }
    }
    let [quiet, storm] = r.phases;
    let ratio = |a: &Measured, b: &Measured, q: f64| {
        b.run.samples.quantile(q) as f64 / a.run.samples.quantile(q).max(1) as f64
    };
    s.line("");
    s.line(format!(
        "Storm against quiet, at the same fixed rate: p50 ×{:.2}, p99 ×{:.2} ({} → {} ms); closed-loop \
         throughput ×{:.2} ({:.0} → {:.0} req/s).",
        ratio(&quiet.fixed, &storm.fixed, 0.5),
        ratio(&quiet.fixed, &storm.fixed, 0.99),
        millis(quiet.fixed.run.samples.quantile(0.99)),
        millis(storm.fixed.run.samples.quantile(0.99)),
        storm.closed.run.throughput() / quiet.closed.run.throughput().max(1e-9),
        quiet.closed.run.throughput(),
        storm.closed.run.throughput(),
    ));
    s.figure("storm_events_per_s", f(r.storm, "achieved_rate"));
    s.figure("quiet_fixed_p99_ns", quiet.fixed.run.samples.quantile(0.99));
    s.figure("storm_fixed_p99_ns", storm.fixed.run.samples.quantile(0.99));
}
