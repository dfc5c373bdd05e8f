//! Memory and bulk throughput:
//!
//! - RSS before and after building the index of 100, 1,000, 10,000 and 13,000 apps (5 objects each),
//!   each size in a fresh process (this binary re-runs itself), objects generated, parsed and
//!   inserted one at a time as a watch delivers them; bytes per cached object = ΔRSS / objects;
//! - the time to parse those objects (`Object::parse` from JSON trees) and to build the index
//!   from them (`Index::from_objects`);
//! - `lint::lint` over the 10,000 apps' manifests as one 50,000-document YAML text in memory.
//!
//! `cargo bench --bench footprint` (about a minute); under `cargo test`: 100 apps, nothing written.

#[path = "support/gen.rs"]
mod gen;
#[path = "support/results.rs"]
mod results;

use results::{mib, Section};
use rollout_guard::index::Index;
use rollout_guard::lint::{self, Input};
use rollout_guard::model::Object;
use serde_json::{json, Value};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::process::Command;
use std::time::{Duration, Instant};

/// Counts heap bytes in use (the system allocator underneath), so that the index's own size can be
/// told from the allocator's slack in RSS.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap bytes in use now (requested sizes; a realloc's growth is already in `bytes_allocated`).
fn heap() -> u64 {
    let s = GLOBAL.stats();
    s.bytes_allocated.saturating_sub(s.bytes_deallocated) as u64
}

const SIZES: [usize; 4] = [100, 1_000, 10_000, 13_000];
const CHILD_ENV: &str = "RG_FOOTPRINT_APPS";
const LINT_APPS: usize = 10_000;
const LINT_RUNS: usize = 3;

fn parse(v: &Value) -> Object {
    Object::parse(v, "default")
        .expect("generated objects parse")
        .expect("generated objects are of our kinds")
}

/// In a fresh process: memory of the index of `n` apps, then the parse and build times.
fn child(n: usize) -> Value {
    let before = results::rss();
    let heap_before = heap();
    let mut index = Index::new();
    for v in gen::live_objects(n) {
        index.upsert(parse(&v));
    }
    let after = results::rss();
    let heap_after = heap();
    let objects = index.len();
    drop(index);

    // Heap of the parsed views alone, by kind (no index maps).
    let mut by_kind = serde_json::Map::new();
    let mut views = 0;
    for (slot, kind) in [
        (0, "Rollout"),
        (1, "VirtualService"),
        (2, "DestinationRule"),
        (3, "Service"),
    ] {
        let heap0 = heap();
        let kept: Vec<Object> = (0..n)
            .flat_map(|i| {
                let all = gen::objects(i, gen::Form::Live);
                let mut mine = vec![parse(&all[slot])];
                if slot == 3 {
                    mine.push(parse(&all[4]));
                }
                mine
            })
            .collect();
        let bytes = heap().saturating_sub(heap0);
        views += bytes;
        by_kind.insert(kind.into(), json!(bytes / kept.len().max(1) as u64));
        drop(kept);
    }

    let values: Vec<Value> = gen::live_objects(n).collect();
    let started = Instant::now();
    let parsed: Vec<Object> = values.iter().map(parse).collect();
    let parse_time = started.elapsed();
    let started = Instant::now();
    let index = Index::from_objects(parsed);
    let build_time = started.elapsed();
    assert_eq!(index.len(), objects);
    json!({
        "apps": n,
        "objects": objects,
        "rss_before": before,
        "rss_after": after,
        "heap_index": heap_after.saturating_sub(heap_before),
        "heap_views": views,
        "heap_by_kind": by_kind,
        "parse_ns": parse_time.as_nanos() as u64,
        "build_ns": build_time.as_nanos() as u64,
    })
}

fn run_child(n: usize) -> Result<Value, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.env(CHILD_ENV, n.to_string());
    if results::bench_mode() {
        cmd.arg("--bench");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run the child: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "child for {n} apps failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or("child printed no result")?;
    serde_json::from_str(line).map_err(|e| format!("child result: {e}"))
}

struct LintRun {
    load: Duration,
    lint: Duration,
    objects: usize,
    findings: usize,
}

fn lint_runs(apps: usize, runs: usize) -> (usize, Vec<LintRun>) {
    let text = gen::yaml_stream(apps, gen::Form::Manifest);
    let bytes = text.len();
    let inputs = [Input {
        name: "state.yaml".into(),
        text,
    }];
    let mut out = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let loaded = lint::load(&inputs[0]);
        let load = started.elapsed();
        drop(loaded);
        let started = Instant::now();
        let report = lint::lint(&inputs);
        let lint = started.elapsed();
        out.push(LintRun {
            load,
            lint,
            objects: report.objects,
            findings: report.findings.len(),
        });
    }
    (bytes, out)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if let Ok(n) = std::env::var(CHILD_ENV) {
        let n: usize = n.parse().expect("a number of apps");
        println!("{}", child(n));
        return;
    }
    let bench = results::bench_mode();
    let sizes = results::sizes(&SIZES);
    let sizes: &[usize] = if bench { &sizes } else { &SIZES[..1] };
    let mut s = Section::new("footprint");
    s.line("## Memory and index build");
    s.line("");
    s.line(
        "Each size in a fresh process: VmRSS before and after generating, parsing (`Object::parse`) \
         and inserting (`Index::upsert`) the live objects one at a time, as a watch delivers them \
         (the transient JSON trees are freed as it goes; what stays is the index and the allocator's \
         slack). Build times on objects generated beforehand: parse = `Object::parse` of every JSON \
         tree, index = `Index::from_objects` of the parsed objects.",
    );
    s.line("");
    s.line("| apps | objects | RSS before MiB | RSS after MiB | ΔRSS MiB | ΔRSS bytes / object | heap bytes / object | of which views | parse ms | index ms | parse+index objects/s |");
    s.line("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut last_by_kind = None;
    for &n in sizes {
        let r = match run_child(n) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e}");
                s.line(format!(
                    "| {n} | – | – | – | – | – | – | – | – | – | – |  ({e})"
                ));
                continue;
            }
        };
        let num = |k: &str| r[k].as_u64().unwrap_or(0);
        let objects = num("objects");
        let delta = num("rss_after").saturating_sub(num("rss_before"));
        let per_object = delta / objects.max(1);
        let parse_ns = num("parse_ns");
        let build_ns = num("build_ns");
        let rate = objects as f64 / ((parse_ns + build_ns) as f64 / 1e9);
        let heap_per_object = num("heap_index") / objects.max(1);
        let views_per_object = num("heap_views") / objects.max(1);
        s.line(format!(
            "| {n} | {objects} | {} | {} | {} | {per_object} | {heap_per_object} | {views_per_object} | {:.1} | {:.1} | {:.0} |",
            mib(num("rss_before")),
            mib(num("rss_after")),
            mib(delta),
            parse_ns as f64 / 1e6,
            build_ns as f64 / 1e6,
            rate
        ));
        s.figure(format!("index_rss_delta.{n}"), delta);
        s.figure(format!("rss_after.{n}"), num("rss_after"));
        s.figure(format!("bytes_per_object.{n}"), per_object);
        s.figure(format!("heap_bytes_per_object.{n}"), heap_per_object);
        s.figure(format!("views_bytes_per_object.{n}"), views_per_object);
        s.figure(format!("index_build_ns.{n}"), build_ns);
        last_by_kind = Some((n, r["heap_by_kind"].clone()));
        s.figure(format!("parse_ns.{n}"), parse_ns);
    }

    if let Some((n, by_kind)) = last_by_kind {
        s.line("");
        let parts: Vec<String> = by_kind
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect())
            .unwrap_or_default();
        s.line(format!(
            "Heap bytes per parsed view at {n} apps, by kind (requested bytes, without the \
             allocator's per-block overhead): {}. Struct sizes: `Object` {} B, `Rollout` {} B, \
             `Step` {} B, `VirtualService` {} B, `HttpRoute` {} B, `RouteDestination` {} B, \
             `ObjectKey` {} B.",
            parts.join(", "),
            std::mem::size_of::<Object>(),
            std::mem::size_of::<rollout_guard::model::Rollout>(),
            std::mem::size_of::<rollout_guard::model::rollout::Step>(),
            std::mem::size_of::<rollout_guard::model::VirtualService>(),
            std::mem::size_of::<rollout_guard::model::virtualservice::HttpRoute>(),
            std::mem::size_of::<rollout_guard::model::virtualservice::RouteDestination>(),
            std::mem::size_of::<rollout_guard::model::ObjectKey>(),
        ));
    }

    let (apps, runs) = if bench {
        (LINT_APPS, LINT_RUNS)
    } else {
        (100, 1)
    };
    let (bytes, runs) = lint_runs(apps, runs);
    let objects = runs.first().map(|r| r.objects).unwrap_or(0);
    let findings = runs.first().map(|r| r.findings).unwrap_or(0);
    let lint_time = median(runs.iter().map(|r| r.lint).collect());
    let load_time = median(runs.iter().map(|r| r.load).collect());
    let rate = objects as f64 / lint_time.as_secs_f64();
    s.line("");
    s.line("## lint throughput");
    s.line("");
    s.line(format!(
        "`lint::lint` over the manifests (Git form: no status, weights 100/0) of {apps} apps as one \
         multi-document YAML text of {:.1} MiB held in memory ({objects} objects, {:.0} bytes of YAML \
         per object on average, {findings} findings); median of {} runs. `lint::load` alone is the \
         YAML split and parse plus `Object::parse`; the rest of `lint` is the rules and the index.",
        bytes as f64 / (1024.0 * 1024.0),
        bytes as f64 / objects.max(1) as f64,
        runs.len()
    ));
    s.line("");
    s.line("| objects | YAML MiB | lint s | objects/s | MiB/s | of which `lint::load` s |");
    s.line("|---:|---:|---:|---:|---:|---:|");
    s.line(format!(
        "| {objects} | {:.1} | {:.2} | {rate:.0} | {:.1} | {:.2} |",
        bytes as f64 / (1024.0 * 1024.0),
        lint_time.as_secs_f64(),
        bytes as f64 / (1024.0 * 1024.0) / lint_time.as_secs_f64(),
        load_time.as_secs_f64()
    ));
    s.figure("lint_objects", objects);
    s.figure("lint_bytes", bytes);
    s.figure("lint_ns", lint_time.as_nanos() as u64);
    s.figure("lint_load_ns", load_time.as_nanos() as u64);
    s.figure("lint_objects_per_s", rate);
    s.write();
}
