//! Decision time per request kind: `admission::handle` on a serialized AdmissionReview body
//! (JSON parsing, the rules or the drift guard, the response and its JSONPatch), against an index
//! of 100, 1,000, 10,000 and 13,000 apps (5 objects each; 13,000 is the largest single cluster
//! reported to Argo Rollouts, argo-rollouts#2855). `RG_BENCH_SIZES=100,1000` picks other sizes.
//!
//! Two measurements: criterion (mean, median with confidence intervals) and, because DESIGN.md
//! asks for tail latency, 20,000 individually timed calls per kind and size (p50/p99/p99.9).
//!
//! `cargo bench --bench decision` (about 2 minutes); under `cargo test` it runs each kind a few
//! times on the smallest state and writes nothing.

#[path = "support/gen.rs"]
mod gen;
#[path = "support/results.rs"]
mod results;

use criterion::{black_box, Criterion};
use results::{micros, Samples, Section};
use rollout_guard::admission::{handle, review, Context, Decision, Policy, Webhook};
use rollout_guard::index::Index;
use rollout_guard::model::Object;
use serde_json::Value;
use std::time::{Duration, Instant};

const SIZES: [usize; 4] = [100, 1_000, 10_000, 13_000];
/// The size DESIGN.md's decision target is stated at.
const TARGET_APPS: usize = 10_000;
const CALLS: usize = 20_000;
const WARMUP_CALLS: usize = 2_000;
const PARSE_CALLS: usize = 5_000;

fn webhook(case: &gen::Case) -> Webhook {
    if case.mutate {
        Webhook::Mutate
    } else {
        Webhook::Validate
    }
}

fn id(case: &gen::Case) -> String {
    format!(
        "{}.{}",
        if case.mutate { "mutate" } else { "validate" },
        case.name.replace('/', "-")
    )
}

fn build_index(n: usize) -> Index {
    Index::from_objects(gen::live_objects(n).map(|v| {
        Object::parse(&v, "default")
            .expect("generated objects parse")
            .expect("generated objects are of our kinds")
    }))
}

struct Row {
    n: usize,
    case: String,
    body_bytes: usize,
    decision: &'static str,
    warnings: usize,
    restores: usize,
    criterion_mean_ns: Option<f64>,
    criterion_median_ns: Option<f64>,
    parse_p50: u64,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

/// Criterion's point estimates (ns) for one benchmark, if it ran in bench mode.
fn criterion_estimates(group: &str, function: &str) -> (Option<f64>, Option<f64>) {
    let path = results::results_dir()
        .parent()
        .map(|t| t.join("criterion"))
        .unwrap_or_default()
        .join(group)
        .join(function)
        .join("new")
        .join("estimates.json");
    let Ok(text) = std::fs::read_to_string(path) else {
        return (None, None);
    };
    let Ok(v) = serde_json::from_str::<Value>(&text) else {
        return (None, None);
    };
    let get = |k: &str| v[k]["point_estimate"].as_f64();
    (get("mean"), get("median"))
}

fn main() {
    let bench = results::bench_mode();
    let sizes = results::sizes(&SIZES);
    let sizes: &[usize] = if bench { &sizes } else { &SIZES[..1] };
    let (calls, warmup, parse_calls) = if bench {
        (CALLS, WARMUP_CALLS, PARSE_CALLS)
    } else {
        (20, 5, 5)
    };
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
        .configure_from_args();
    let policy = Policy::default();
    let mut rows = Vec::new();
    let mut index_build = Vec::new();

    for &n in sizes {
        let started = Instant::now();
        let index = build_index(n);
        index_build.push((n, index.len(), started.elapsed()));
        let ctx = Context {
            index: &index,
            policy: &policy,
            stale: false,
        };
        let cases = gen::cases(n);

        let group_name = format!("decision-{n}");
        let mut group = criterion.benchmark_group(&group_name);
        for case in &cases {
            let wh = webhook(case);
            group.bench_function(id(case), |b| {
                b.iter(|| handle(wh, black_box(&case.body), &ctx))
            });
        }
        group.finish();

        for case in &cases {
            let wh = webhook(case);
            let reply = handle(wh, &case.body, &ctx);
            assert_eq!(reply.status, 200, "{}: {:?}", case.label(), reply.outcome);
            assert_ne!(
                reply.outcome.decision,
                Decision::Denied,
                "{}: generated requests are allowed: {}",
                case.label(),
                String::from_utf8_lossy(&reply.body)
            );
            for _ in 0..warmup {
                black_box(handle(wh, black_box(&case.body), &ctx));
            }
            let mut samples = Samples::with_capacity(calls);
            for _ in 0..calls {
                let t = Instant::now();
                let r = handle(wh, black_box(&case.body), &ctx);
                drop(black_box(r));
                samples.push(t.elapsed());
            }
            samples.sort();
            let mut parse = Samples::with_capacity(parse_calls);
            for _ in 0..parse_calls {
                let t = Instant::now();
                let r = review::parse(black_box(&case.body));
                drop(black_box(r));
                parse.push(t.elapsed());
            }
            parse.sort();
            let (mean, median) = criterion_estimates(&group_name, &id(case));
            rows.push(Row {
                n,
                case: case.label(),
                body_bytes: case.body.len(),
                decision: reply.outcome.decision.as_str(),
                warnings: reply.outcome.warnings,
                restores: reply.outcome.restores,
                criterion_mean_ns: mean,
                criterion_median_ns: median,
                parse_p50: parse.quantile(0.5),
                p50: samples.quantile(0.5),
                p99: samples.quantile(0.99),
                p999: samples.quantile(0.999),
                max: samples.max(),
            });
        }
    }
    criterion.final_summary();
    report(&rows, &index_build, calls);
}

fn report(rows: &[Row], index_build: &[(usize, usize, Duration)], calls: usize) {
    let mut s = Section::new("decision");
    s.line("## Decision time per request");
    s.line("");
    s.line(format!(
        "`admission::handle` on a serialized AdmissionReview body (JSON parsing, rules or drift guard, \
         response and JSONPatch included), one thread, against an index of N apps × 5 objects. \
         Bodies are what the API server sends for a GitOps writer (Argo CD's service account): \
         objects with `managedFields`, UPDATEs with both objects. criterion: mean and median \
         (1 s warm-up, 2 s measurement, 50 samples); p50/p99/p99.9/max: {calls} individually timed \
         calls after a warm-up. \"of which parse\" is `review::parse` alone (typed reading, objects kept \
         as raw JSON), p50."
    ));
    s.line("");
    s.line("| apps (objects) | request | body KiB | answer | crit. mean µs | crit. median µs | p50 µs | p99 µs | p99.9 µs | max µs | of which parse µs |");
    s.line("|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    let fmt_ns = |v: Option<f64>| v.map(|ns| micros(ns as u64)).unwrap_or_else(|| "–".into());
    for r in rows {
        let answer = match (r.decision, r.restores, r.warnings) {
            (d, 0, 0) => d.to_string(),
            (d, 0, w) => format!("{d}, {w} warn."),
            (d, n, _) => format!("{d} ({n} restores)"),
        };
        s.line(format!(
            "| {} ({}) | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.n,
            r.n * gen::OBJECTS_PER_APP,
            r.case,
            r.body_bytes as f64 / 1024.0,
            answer,
            fmt_ns(r.criterion_mean_ns),
            fmt_ns(r.criterion_median_ns),
            micros(r.p50),
            micros(r.p99),
            micros(r.p999),
            micros(r.max),
            micros(r.parse_p50),
        ));
        let key = r.case.replace(' ', ".").replace('/', "-");
        s.figure(format!("p50_ns.{}.{key}", r.n), r.p50);
        s.figure(format!("p99_ns.{}.{key}", r.n), r.p99);
        s.figure(format!("parse_p50_ns.{}.{key}", r.n), r.parse_p50);
    }
    s.line("");
    s.line("Set-up of each state (generate the live objects as JSON, `Object::parse`, `Index::from_objects`):");
    s.line("");
    for (n, objects, d) in index_build {
        s.line(format!(
            "- {n} apps: {objects} objects in {:.0} ms",
            d.as_secs_f64() * 1000.0
        ));
    }
    let target_size = if rows.iter().any(|r| r.n == TARGET_APPS) {
        Some(TARGET_APPS)
    } else {
        rows.iter().map(|r| r.n).max()
    };
    if let Some(largest) = target_size {
        let worst = rows
            .iter()
            .filter(|r| r.n == largest)
            .max_by_key(|r| r.p99)
            .map(|r| (r.case.clone(), r.p99));
        if let Some((case, p99)) = worst {
            s.figure("worst_p99_apps", largest);
            s.figure("worst_p99_ns", p99);
            s.figure("worst_p99_case", case);
        }
    }
    s.write();
}
