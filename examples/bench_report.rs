//! Assembles BENCHMARKS.md from the result files the benchmarks wrote under
//! `target/bench-results/` (`decision.json`, `footprint.json`, `loadgen.json`): the machine, then
//! each target of DESIGN.md "Performance targets" marked met or not with the figure behind it,
//! then every section's tables. Run by `scripts/bench.sh` (`make bench`).
//!
//! `cargo run --release --example bench_report -- [OUT=BENCHMARKS.md]`

use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const SECTIONS: [&str; 7] = [
    "decision",
    "footprint",
    "loadgen",
    "storm",
    "kube",
    "opa",
    "profile",
];
const MIB: f64 = 1024.0 * 1024.0;

struct Results {
    markdown: Vec<(String, String)>,
    figures: Map<String, Value>,
    missing: Vec<String>,
}

fn load(dir: &Path) -> Results {
    let mut r = Results {
        markdown: Vec::new(),
        figures: Map::new(),
        missing: Vec::new(),
    };
    for name in SECTIONS {
        let path = dir.join(format!("{name}.json"));
        let doc = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()));
        match doc {
            Ok(doc) => {
                r.markdown.push((
                    name.to_string(),
                    doc["markdown"].as_str().unwrap_or("").to_string(),
                ));
                if let Some(f) = doc["figures"].as_object() {
                    for (k, v) in f {
                        r.figures.insert(format!("{name}.{k}"), v.clone());
                    }
                }
            }
            Err(e) => r.missing.push(format!("{name} ({}: {e})", path.display())),
        }
    }
    r
}

fn command(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: f64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let rustc = command("rustc", &["--version"]).unwrap_or_else(|| "unknown".into());
    let date = std::env::var("RG_BENCH_STARTED")
        .ok()
        .or_else(|| command("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]))
        .unwrap_or_default();
    // `scripts/bench.sh` records the commit before the run; otherwise the checkout's own.
    let commit = std::env::var("RG_BENCH_COMMIT").ok().unwrap_or_else(|| {
        let head = command("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_default();
        let dirty = command("git", &["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|s| !s.is_empty());
        if dirty {
            format!("{head} with uncommitted changes")
        } else {
            head
        }
    });
    let load = std::env::var("RG_BENCH_LOADAVG").unwrap_or_else(|_| "unknown".into());
    let mut out = String::new();
    let _ = writeln!(out, "- date: {date}");
    let _ = writeln!(out, "- CPU: {model}; `nproc`: {nproc}");
    let _ = writeln!(out, "- memory: {:.1} GiB", mem_kib / 1024.0 / 1024.0);
    let _ = writeln!(out, "- {rustc}; release profile (`opt-level=3`)");
    let _ = writeln!(out, "- commit: {commit}");
    let _ = writeln!(
        out,
        "- load average (1, 5, 15 min) when the run started: {load}. Other processes on the \
         machine share its 2 cores: tail figures (p99.9, max) are the most sensitive to them."
    );
    out
}

struct Target {
    what: &'static str,
    measured: String,
    met: Option<bool>,
    note: String,
}

fn num(f: &Map<String, Value>, key: &str) -> Option<f64> {
    f.get(key).and_then(Value::as_f64)
}

fn targets(f: &Map<String, Value>) -> Vec<Target> {
    let mut out = Vec::new();

    // Decision time: p99 ≤ 20 µs per kind at 10,000 Rollouts.
    let apps = num(f, "decision.worst_p99_apps").unwrap_or(0.0) as u64;
    let p99s: Vec<(String, f64)> = f
        .iter()
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix(&format!("decision.p99_ns.{apps}."))?;
            Some((rest.replace('.', " "), v.as_f64()? / 1000.0))
        })
        .collect();
    let parse_share: Option<f64> = f
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("decision.parse_p50_ns.{apps}.")))
        .filter_map(|(_, v)| v.as_f64())
        .reduce(f64::min)
        .map(|ns| ns / 1000.0);
    if p99s.is_empty() {
        out.push(Target {
            what: "decision p99 ≤ 20 µs per request kind at 10,000 Rollouts",
            measured: "not measured".into(),
            met: None,
            note: String::new(),
        });
    } else {
        let over: Vec<&(String, f64)> = p99s.iter().filter(|(_, p)| *p > 20.0).collect();
        let worst = p99s
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(k, p)| format!("{k} {p:.0} µs"))
            .unwrap_or_default();
        let best = p99s
            .iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(k, p)| format!("{k} {p:.0} µs"))
            .unwrap_or_default();
        out.push(Target {
            what: "decision p99 ≤ 20 µs per request kind at 10,000 Rollouts",
            measured: format!("{apps} apps: p99 from {best} to {worst}"),
            met: Some(over.is_empty()),
            note: if over.is_empty() {
                String::new()
            } else {
                format!(
                    "{} of {} kinds over. Reading the AdmissionReview (`review::parse`, typed, objects \
                     kept as raw JSON) takes {} µs at p50 for the smallest body; each object is then \
                     scanned again for its view (the whole text, `managedFields` included, at a few \
                     hundred MB/s), the rules of a VirtualService/DestinationRule/Service write run \
                     twice per referencing Rollout (before and after, for `breaks-rollout`), and the \
                     drift guard reads an owned object's text again along the paths it patches{}",
                    over.len(),
                    p99s.len(),
                    parse_share
                        .map(|p| format!("{p:.0}"))
                        .unwrap_or_else(|| "–".into()),
                    profile_note(f, "decisions")
                )
            },
        });
    }

    // Throughput ≥ 80 % of the baseline.
    match num(f, "loadgen.throughput_ratio") {
        Some(ratio) => {
            let cpu = match (
                num(f, "loadgen.cpu_per_request_serve_us"),
                num(f, "loadgen.cpu_per_request_baseline_us"),
            ) {
                (Some(s), Some(b)) => format!(
                    "server CPU per request {s:.0} µs against the baseline's {b:.0} µs: the \
                     decision and what surrounds it (a log line, metrics) cost {:.0} µs a request \
                     in the server, where TLS, HTTP and the body cost {b:.0}",
                    s - b
                ),
                _ => String::new(),
            };
            out.push(Target {
                what: "HTTPS throughput ≥ 80 % of the allow-everything baseline (same run)",
                measured: format!(
                    "{:.0} % ({:.0} / {:.0} req/s)",
                    ratio * 100.0,
                    num(f, "loadgen.throughput_serve").unwrap_or(0.0),
                    num(f, "loadgen.throughput_baseline").unwrap_or(0.0)
                ),
                met: Some(ratio >= 0.8),
                note: if ratio >= 0.8 { String::new() } else { cpu },
            });
        }
        None => out.push(Target {
            what: "HTTPS throughput ≥ 80 % of the allow-everything baseline (same run)",
            measured: "not measured".into(),
            met: None,
            note: f
                .get("loadgen.serve_error")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        }),
    }

    // p99 ≤ 2 ms at half of that throughput.
    match num(f, "loadgen.half_load_p99_ns") {
        Some(p99) => {
            let ms = p99 / 1e6;
            out.push(Target {
                what: "HTTPS p99 ≤ 2 ms at half the measured throughput",
                measured: format!(
                    "p99 {ms:.2} ms at {:.0} req/s",
                    num(f, "loadgen.half_load_rate").unwrap_or(0.0)
                ),
                met: Some(ms <= 2.0),
                note: if ms <= 2.0 {
                    String::new()
                } else {
                    let baseline = num(f, "loadgen.baseline_half_load_p99_ns")
                        .map(|b| {
                            format!(
                                "the baseline at the same rate has p99 {:.2} ms: on 2 cores shared \
                                 with the client, the stack alone is near the budget; ",
                                b / 1e6
                            )
                        })
                        .unwrap_or_default();
                    format!(
                        "{baseline}each request also holds a worker for its whole decision (server \
                         CPU per request in the HTTPS table), so one that arrives behind another \
                         waits it out"
                    )
                },
            });
        }
        None => out.push(Target {
            what: "HTTPS p99 ≤ 2 ms at half the measured throughput",
            measured: "not measured".into(),
            met: None,
            note: String::new(),
        }),
    }

    // RSS ≤ 64 MiB with 50,000 objects.
    let rss = num(f, "loadgen.serve_rss");
    let per_object = num(f, "footprint.bytes_per_object.10000");
    let heap_per_object = num(f, "footprint.heap_bytes_per_object.10000");
    match rss.or(num(f, "footprint.index_rss_delta.10000")) {
        Some(bytes) => {
            let mib = bytes / MIB;
            let source = if rss.is_some() {
                "RSS of `serve` with the 50,000 objects, after the load runs"
            } else {
                "ΔRSS of the index alone (serve not measured)"
            };
            out.push(Target {
                what: "RSS ≤ 64 MiB with 50,000 objects (bytes per cached object published)",
                measured: format!(
                    "{mib:.0} MiB ({source}); {} bytes per cached object (ΔRSS), {} heap bytes",
                    per_object.map(|v| format!("{v:.0}")).unwrap_or_else(|| "–".into()),
                    heap_per_object
                        .map(|v| format!("{v:.0}"))
                        .unwrap_or_else(|| "–".into())
                ),
                met: Some(mib <= 64.0),
                note: if mib <= 64.0 {
                    String::new()
                } else {
                    let views = num(f, "footprint.views_bytes_per_object.10000");
                    format!(
                        "the index alone grows RSS by {} bytes per object: {} of heap, of which the \
                         parsed views {} and the index's maps the rest, plus the allocator's \
                         per-block overhead. Next in line: the Rollout view (about 1 KiB of struct, \
                         its 8 steps 80 bytes each), the reverse-reference sets (a key and a one-entry \
                         slice for each object a Rollout names); namespaces and names are already \
                         shared with the keys",
                        per_object.map(|v| format!("{v:.0}")).unwrap_or_else(|| "–".into()),
                        heap_per_object
                            .map(|v| format!("{v:.0}"))
                            .unwrap_or_else(|| "–".into()),
                        views.map(|v| format!("{v:.0}")).unwrap_or_else(|| "–".into()),
                    )
                },
            });
        }
        None => out.push(Target {
            what: "RSS ≤ 64 MiB with 50,000 objects (bytes per cached object published)",
            measured: "not measured".into(),
            met: None,
            note: String::new(),
        }),
    }

    // Ready ≤ 1 s.
    match num(f, "loadgen.ready_ns") {
        Some(ns) => {
            let s = ns / 1e9;
            let mibps = match (
                num(f, "footprint.lint_bytes"),
                num(f, "footprint.lint_load_ns"),
            ) {
                (Some(b), Some(t)) if t > 0.0 => Some(b / MIB / (t / 1e9)),
                _ => None,
            };
            out.push(Target {
                what: "ready ≤ 1 s after start from 50,000 objects in files mode",
                measured: format!("{:.0} ms", s * 1000.0),
                met: Some(s <= 1.0),
                note: if s <= 1.0 {
                    String::new()
                } else {
                    format!(
                        "the first load reads the files' YAML into `serde_json::Value` trees \
                         (serde_yaml_ng, files parsed on both cores){}; the files hold the live \
                         objects (status included), about 2.2 KiB of YAML per object{}",
                        mibps
                            .map(|m| format!(", as `lint` does at about {m:.0} MiB/s"))
                            .unwrap_or_default(),
                        profile_note(f, "lint")
                            .replace("this run's profile", "this run's lint profile")
                    )
                },
            });
        }
        None => out.push(Target {
            what: "ready ≤ 1 s after start from 50,000 objects in files mode",
            measured: "not measured".into(),
            met: None,
            note: f
                .get("loadgen.serve_error")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        }),
    }

    // lint ≥ 50,000 objects/s.
    match num(f, "footprint.lint_objects_per_s") {
        Some(rate) => {
            let bytes_per_object = match (
                num(f, "footprint.lint_bytes"),
                num(f, "footprint.lint_objects"),
            ) {
                (Some(b), Some(o)) if o > 0.0 => b / o,
                _ => 0.0,
            };
            let load_share = match (
                num(f, "footprint.lint_load_ns"),
                num(f, "footprint.lint_ns"),
            ) {
                (Some(l), Some(t)) if t > 0.0 => l / t * 100.0,
                _ => 0.0,
            };
            out.push(Target {
                what: "`lint` ≥ 50,000 objects/s",
                measured: format!("{rate:.0} objects/s"),
                met: Some(rate >= 50_000.0),
                note: if rate >= 50_000.0 {
                    String::new()
                } else {
                    format!(
                        "{load_share:.0} % of the time is `lint::load` (YAML to `Value` with \
                         serde_yaml_ng, then `Object::parse`); at {bytes_per_object:.0} bytes of \
                         YAML per object the target needs {:.0} MiB/s of YAML{}",
                        50_000.0 * bytes_per_object / MIB,
                        profile_note(f, "lint")
                    )
                },
            });
        }
        None => out.push(Target {
            what: "`lint` ≥ 50,000 objects/s",
            measured: "not measured".into(),
            met: None,
            note: String::new(),
        }),
    }
    out
}

/// The scale curve: decision p99 (from `decision`) and RSS (from `footprint`) by state size.
fn scale_curve(f: &Map<String, Value>) -> Option<String> {
    let mut sizes: Vec<u64> = f
        .keys()
        .filter_map(|k| {
            k.strip_prefix("decision.p99_ns.")?
                .split('.')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    if sizes.is_empty() {
        return None;
    }
    let mut out = String::from(
        "## Scale curve\n\n\
         The same decisions and the same index at each size, from the two sections above: decision \
         p99 over the 9 request kinds (one thread, `admission::handle`, 20,000 timed calls each) and \
         the RSS of a fresh process holding only the index (footprint). 13,000 apps is the largest \
         single cluster reported to Argo Rollouts (11,000-13,000 Rollouts, argo-rollouts#2855).\n\n\
         | apps | objects | decision p99, best kind µs | median kind µs | worst kind µs | p50 median kind µs | RSS MiB | ΔRSS bytes / object | index build ms |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let quantiles = |prefix: String| {
        let mut v: Vec<f64> = f
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(_, v)| v.as_f64())
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let cell = |v: Option<f64>, scale: f64, digits: usize| {
        v.map(|x| format!("{:.*}", digits, x / scale))
            .unwrap_or_else(|| "–".into())
    };
    for n in sizes {
        let p99 = quantiles(format!("decision.p99_ns.{n}."));
        let p50 = quantiles(format!("decision.p50_ns.{n}."));
        let median = |v: &[f64]| v.get(v.len() / 2).copied();
        let _ = writeln!(
            out,
            "| {n} | {} | {} | {} | {} | {} | {} | {} | {} |",
            n * 5,
            cell(p99.first().copied(), 1000.0, 1),
            cell(median(&p99), 1000.0, 1),
            cell(p99.last().copied(), 1000.0, 1),
            cell(median(&p50), 1000.0, 1),
            cell(num(f, &format!("footprint.rss_after.{n}")), MIB, 1),
            cell(num(f, &format!("footprint.bytes_per_object.{n}")), 1.0, 0),
            cell(num(f, &format!("footprint.index_build_ns.{n}")), 1e6, 0),
        );
    }
    Some(out)
}

/// The three largest parts of a profile of this run (`scripts/bench-profile.sh`), for a target's
/// note: "; profile: JSON reading 35 %, allocator 18 %, ...". Empty when it was not measured.
fn profile_note(f: &Map<String, Value>, name: &str) -> String {
    let prefix = format!("profile.{name}.");
    let mut parts: Vec<(&str, f64)> = f
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?, v.as_f64()?)))
        .filter(|(k, _)| *k != "other")
        .collect();
    if parts.is_empty() {
        return String::new();
    }
    parts.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top: Vec<String> = parts
        .iter()
        .take(3)
        .map(|(k, p)| format!("{k} {p:.0} %"))
        .collect();
    format!(
        "; in this run's profile (below) the largest parts are {}",
        top.join(", ")
    )
}

fn main() {
    let out_path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("BENCHMARKS.md"));
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("bench-results");
    let results = load(&dir);
    let mut md = String::new();
    md.push_str("# Benchmarks\n\n");
    md.push_str(
        "Written by `make bench` (`scripts/bench.sh`: the benches `decision`, `footprint`, \
         `loadgen`, `storm`, `kube` and `opa` under `benches/`, the profiles of `scripts/bench-profile.sh`, then `examples/bench_report.rs`); do not edit by hand, run it \
         again. The targets are DESIGN.md's \"Performance targets\". Benchmarks are not tests: \
         nothing here fails a build.\n\n",
    );
    md.push_str("## Machine\n\n");
    md.push_str(&machine());
    md.push('\n');
    md.push_str("## Against the targets\n\n");
    md.push_str("| target | measured | verdict | what stands in the way |\n|---|---|---|---|\n");
    for t in targets(&results.figures) {
        let verdict = match t.met {
            Some(true) => "**met**",
            Some(false) => "**not met**",
            None => "not measured",
        };
        let _ = writeln!(
            md,
            "| {} | {} | {verdict} | {} |",
            t.what, t.measured, t.note
        );
    }
    md.push('\n');
    md.push_str(
        "## The state\n\n\
         `benches/support/gen.rs` (also `cargo run --release --example gen_state -- DIR N`): N apps, \
         each a Rollout (labels, annotations, a pod template with two containers, probes, resources, \
         8 canary steps; live form with status), its VirtualService (an http route `primary` with \
         retries and a timeout; a managed TLS route for every third app), a DestinationRule (subset \
         level with canary/stable subsets for every fifth app, a traffic policy only otherwise) and \
         canary/stable Services: 5 objects. Namespaces `team-000`…`team-099`; every fifth app is \
         mid-canary (80/20). Live form: about 2.2 KiB of YAML per object; Git form 1.7 KiB. The \
         generated state lints clean (no finding). Sizes: 100, 1,000, 10,000 and 13,000 apps (500, \
         5,000, 50,000, 65,000 objects).\n\n",
    );
    for (name, markdown) in &results.markdown {
        md.push_str(markdown.trim_end());
        md.push_str("\n\n");
        if name == "footprint" {
            if let Some(curve) = scale_curve(&results.figures) {
                md.push_str(&curve);
                md.push('\n');
            }
        }
    }
    md.push_str(WHAT_WAS_TRIED);
    // `make soak` owns the part between its markers: keep it.
    if let Ok(previous) = std::fs::read_to_string(&out_path) {
        if let (Some(start), Some(end)) = (
            previous.find("<!-- soak:begin -->"),
            previous.find("<!-- soak:end -->"),
        ) {
            if start < end {
                md.push_str(&previous[start..end + "<!-- soak:end -->".len()]);
                md.push_str("\n\n");
            }
        }
    }
    if !results.missing.is_empty() {
        md.push_str("## Not measured in this run\n\n");
        for m in &results.missing {
            let _ = writeln!(md, "- {m}");
        }
        md.push('\n');
    }
    match std::fs::write(&out_path, md) {
        Ok(()) => println!("wrote {}", out_path.display()),
        Err(e) => {
            eprintln!("cannot write {}: {e}", out_path.display());
            std::process::exit(1);
        }
    }
}

/// What has been tried against the misses, with the gains measured at the time (p50 at 10,000
/// apps unless said otherwise); kept here so that the report is regenerated with it.
const WHAT_WAS_TRIED: &str = "## What was tried\n\n\
Where `serve`'s CPU went in an earlier run (perf with call graphs, 10,000 apps, closed loop, \
before the changes below): `admission::handle` 57 % (reading the review into a tree 28 %, drift guard 11 %, \
validation 11 %, view parsing 9 %), glibc malloc/free about 24 % of all samples, socket I/O about \
20 %, the files source's rescans 9-10 %, tracing 1.5 %. The same decision cost about 90 µs inside \
the server against 51 µs in the benchmark loop (cache and allocator pressure from the other \
tasks).\n\n\
- **Typed AdmissionReview reading** (kept): the review is read into typed fields with `object` and \
  `oldObject` kept as raw JSON, instead of a `serde_json::Value` tree; trees are built only for an \
  object a Rollout may own (mutation). `review::parse`: 23-30 µs → 4-5 µs for a 5 KiB body, \
  77 → 11 µs for the 14.7 KiB Rollout UPDATE. Validate: Rollout CREATE 41 → 18 µs, Rollout UPDATE \
  113 → 52 µs, VirtualService 41 → 23 µs, DestinationRule 36 → 22 µs. Mutation of an owned object \
  got slower (VirtualService 100/0: 64 → 71 µs): it reads the text twice (view, then tree).\n\
- **Path tracking only on error** (kept): views were deserialised through `serde_path_to_error`, \
  which tracks the path of every skipped token; now a plain pass first and the tracked pass only to \
  explain an error. View of a VirtualService from a tree: 3.9 → 1.4 µs.\n\
- **Metadata-only check without clones or trees** (kept): Rollout UPDATE validate 56 → 22 µs for \
  that step.\n\
- **Smaller views** (kept): label maps and selectors as sorted boxed slices instead of `BTreeMap`, \
  rarely used step actions boxed (`Step` 184 → 48 bytes), reverse references as vectors: index \
  1,971 → 1,233 bytes per object, `serve` RSS 112 → 80 MiB.\n\
- **mimalloc** as the global allocator (not kept: a dependency decision; measured once): server CPU \
  per request 164 → 121 µs, throughput +30 %, but RSS +7 MiB.\n\
- **Files source rescans** every second cost 60-70 ms of CPU per second at 10,000 files; with \
  `--reload-interval 1h` the half-load p99 fell from 8.8 to 3.6 ms in one run. Replaced \
  (2026-12-02) by a watch on the folder (`notify`, inotify): a burst of changes is followed by one \
  scan that reads only changed files and writes only changed objects to the index; a full scan \
  every 60 s. Same state, the binaries before and after side by side, twice: idle CPU from 4 to \
  8 s after ready 53-65 ms/s → 0 ms/s; RSS unchanged (126 → 125 MiB).\n\
- **YAML** (ready time, lint): serde_yaml_ng tops out at 36-42 MiB/s even into small typed structs \
  on this machine; the targets need about 82 MiB/s. Parsing files on both cores would give about \
  2×, not 4×.\n\
- **Other YAML readers** (evaluated 2026-12-02, none kept): each read the generated state at 2,000 \
  apps (Git form 16.5 MiB, live form 21.5 MiB), one thread, medians of 7 interleaved runs, load \
  average 1.3-2.0, as a ratio to serde_yaml_ng 0.10 in the same run (32.8 and 30.6 MiB/s): \
  serde-saphyr 2.2 (set to read as serde_yaml_ng does) 0.49 and 0.54; saphyr-parser 0.3.4, \
  granit-parser 2.2 and yaml-rust2 0.13.2 each with an event-to-`serde_json::Value` builder 1.04 \
  and 1.16, 1.06 and 1.17, 1.12 and 1.27. The parsers alone, building nothing, reach 1.25-1.64× \
  (yaml-rust2 about 50 MiB/s): no reader comes near 82 MiB/s, and building the `Value` is only \
  about 12 % of serde_yaml_ng's time. All refused the hostile inputs (billion laughs, nesting 100k \
  to 1M deep) with the nesting guard in front; serde_yaml_ng is the only one that needs the guard \
  to stay fast. Compared document by document with serde_yaml_ng (30,000 generated documents, the \
  789 of the fuzz corpus, the 159 fixtures, the manifests): the generated state is read alike by \
  all; the differences are control characters in plain scalars (accepted by saphyr-parser and \
  yaml-rust2, refused by libyaml and kubectl), anchors with `:` in their names, custom tags, null \
  keys and, with serde-saphyr's defaults, YAML 1.1 booleans, merge keys and duplicate keys. A \
  switch would gain at most 1.27× on the live form and change how edge documents read, so \
  serde_yaml_ng stays.\n\
- **Snapshots instead of a lock** (kept): decisions read an immutable snapshot of the index \
  (`ArcSwap` of persistent maps); under the old `RwLock` the storm's writer was stalled by the \
  readers (806 events/s of the 5,000 asked in one row on 2026-12-02), so the index fell behind. \
  With snapshots nothing waits, but each event copies the path it changes and old snapshots are \
  freed by whichever thread drops them last, often a decision: the storm's p99 cost is CPU and \
  allocator work on 2 shared cores, not waiting.\n\
- **Replaced snapshots freed by the writers** (kept, 2026-12-02): `SharedIndex` keeps a replaced \
  version until no decision holds it and frees it on the writer's thread (at most 64 kept). Same \
  run, 10,000 apps, against the same snapshots freed by whoever drops them last (the \
  `reader-freed` column; load average 2.6 from an e2e run beside it): storm medians lower in all 9 \
  rows (by 9-30 %), p99 lower in 5 (Rollout UPDATE 611 against 2,771 µs, VirtualService 100/0 \
  mutate 1,813 against 5,352 µs), higher in 2 (a DestinationRule UPDATE 1,270 against 786 µs). The \
  RwLock's p99 was still lower in that run, with its writer near the asked rate: the storm's cost \
  is the writer's CPU on 2 cores.\n\
- **Publishing at most one snapshot every 5 ms** under a storm (not kept, 2026-12-02): two runs at \
  10,000 apps gave p99 under the storm between 0.8× and 2.2× the per-event figures depending on the \
  row, no consistent gain, so each event still publishes its own snapshot.\n\
- **Interleaved storm measurement and a same-load column** (2026-12-02, later): the storm bench \
  now measures every way of sharing in 10 interleaved rounds, adds an idle writer (a thread waking \
  at the storm's rate and writing nothing) and a snapshot column paced to the rate the RwLock's \
  writer reached. Two runs, 10,000 apps: storm p50 with snapshots at or below the RwLock's in 9 of \
  9 rows; at the same write load the snapshot p99 is 0.73-1.33× the RwLock's (median 1.09 and \
  1.15); the idle writer alone takes p99 to 0.9-2.1× quiet. The write itself costs 3.2-3.5 µs per \
  VirtualService, DestinationRule or Service event and 14 µs per Rollout (27 µs before each \
  reverse-reference set sat behind its own `Arc`, so that copying a map node no longer copies \
  every set in it), against 0.8-4 µs in place: the rest is the path copy and the reference counts \
  of the entries it holds. Keys behind an `Arc` as well: 3.4 → 3.2 µs an event, not kept (one \
  more allocation per object). Paired by round as well (each snapshot slice at the RwLock's rate \
  against the RwLock slice just before it), on a machine otherwise idle (load average 1.3-2.1), two \
  runs: snapshot p99 at or below the RwLock's in 9 of 9 rows (median 0.78 and 0.82 pooled; 84 and 72 \
  of 90 round pairs, median 0.78 and 0.89). The runs above that found it about 10 % worse had an \
  e2e or a Go build beside them; one more run beside a Go build (load average 3.8-4.4) gave median \
  1.25 (3 of 9 rows): when other processes take the cores, the writer's extra CPU per event (the \
  path copy) is what the decisions pay.\n\
- **Each object's top-level fields split once** (kept, 2026-12-02): on an UPDATE the view and the \
  metadata-only check used to scan each object separately; now one pass splits it into its \
  top-level fields as text and both read those. Rollout UPDATE validate at 1,000 apps, the \
  benches before and after run alternately twice: p50 111 and 86 µs → 65 and 62 µs (noisy; the \
  decision table above has this run's figures).\n\
- **Patches planned on the text, not on trees** (kept, 2026-12-02): the drift guard used to build \
  JSON trees of both objects (without `managedFields`) and read the request's view again from its \
  tree for every managed route. Now the patch is planned on the request's text, split one level at \
  a time only along the paths it reads or writes (`drift::patch::Doc`), the request's view is the \
  one already read, and the live view is read once from `oldObject`'s text. p50 at 1,000 apps, the \
  benches before and after run alternately twice (load average 1-2.6): VirtualService 100/0 mutate \
  49.2 and 49.6 → 35.7 and 36.1 µs, VirtualService 80/20 (nothing to restore) 38.6 and 39.0 → 21.2 \
  and 21.4 µs, DestinationRule mutate 31.7 and 32.3 → 27.6 and 27.7 µs, Service mutate 30.4 and \
  30.6 → 24.5 and 24.4 µs; validation unchanged.\n\
- **Shared strings and smaller views** (kept, 2026-12-02): an object's name and namespace are one \
  `Arc<str>` each, shared by its view and its key, and namespaces and GitOps application markers \
  are interned (one allocation for all objects of a namespace; strings no object holds are swept \
  when the set has doubled); label sets and selectors are one allocation each; the views' lists \
  are read to their exact length. Footprint at 10,000 apps, each step measured alone: heap \
  1,601 → 1,466 (shared strings) → 1,389 (labels) bytes per object, ΔRSS 1,997 → 1,768 → 1,606; \
  by kind, Rollout 2,231 → 1,967, VirtualService 908 → 863, DestinationRule 285 → 240, Service \
  364 → 235. A Service keeps its key, its selector (compared with a Rollout's pod template when \
  a Rollout naming it is admitted later, and shown by `explain`) and its managed-by annotation: \
  less than its key, not nothing.\n\
- **Index maps as B-trees** (kept, 2026-12-02): the persistent maps behind the snapshots were \
  hash array mapped tries (`imbl::HashMap`), whose nodes are fixed arrays of slots however few \
  are filled; as `imbl::OrdMap` (B-tree nodes at least half full) heap 1,389 → 978 bytes per \
  object and ΔRSS 1,606 → 1,191 at 10,000 apps. Same-machine runs of the decision and storm \
  benches before and after: decision p50 within 0-1.6 µs, the storm's writer still at 4,900-5,000 \
  events/s, no request kind consistently slower; the index builds in 83 ms instead of 76.\n\
- **The body's memory estimate without a branch per byte** (kept, 2026-12-02): before a body is \
  parsed its share of the memory budget is estimated by counting `,`, `[`, `{` and `:`; a profile \
  of `serve` under the closed loop put that `match` per byte at 11.8 % of the server's CPU. \
  Counted branch-free in blocks of 255 bytes (the compiler then counts a vector register at a \
  time): 9.5 → 0.8 µs for an 8 KiB body.\n\
- **A non-validating splitter for objects already read** (not kept, 2026-12-02): every object is \
  scanned again after the review was read (its top-level split, then its view); a hand-written \
  scan for quotes and brackets, relying on the text being valid JSON already, split a 2.7 KiB \
  Rollout with `managedFields` in 1.6 µs against serde_json's 2.1 µs (1.35×): about a microsecond \
  per object, not worth a second JSON reader to keep correct.\n\
- **Logs off the request path** (kept): a non-blocking writer on its own thread (lines dropped when \
  it falls behind are counted in `rollout_guard_log_lines_dropped_total`), and a plain allow is \
  logged at debug unless `--request-log all`.\n\
- **YAML on both cores** (kept): files and documents are parsed in parallel, in order \
  (`src/parallel.rs`), for `lint` and the files source's scan.\n\n";
