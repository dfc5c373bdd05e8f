//! What the benchmark binaries share: percentiles, RSS, and the result files that
//! `examples/bench_report.rs` assembles into BENCHMARKS.md.
//!
//! Each binary writes `target/bench-results/<section>.json`:
//! `{"section": .., "markdown": .., "figures": {name: number}}`; the figures are what the
//! "against the targets" table reads.
#![allow(dead_code)]

use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::time::Duration;

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs bench binaries without it,
/// and then they only smoke-test themselves (small, fast, nothing written).
pub fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The state sizes (apps) to measure: `RG_BENCH_SIZES` (comma-separated), else `default`.
pub fn sizes(default: &[usize]) -> Vec<usize> {
    std::env::var("RG_BENCH_SIZES")
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|n| n.trim().replace('_', "").parse().ok())
                .collect::<Vec<usize>>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

pub fn results_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("bench-results")
}

/// Latency samples in nanoseconds, sorted on demand.
#[derive(Debug, Default, Clone)]
pub struct Samples(pub Vec<u64>);

impl Samples {
    pub fn with_capacity(n: usize) -> Self {
        Samples(Vec::with_capacity(n))
    }

    pub fn push(&mut self, d: Duration) {
        self.0.push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn sort(&mut self) {
        self.0.sort_unstable();
    }

    /// The `q` quantile (0..=1) of sorted samples, nearest rank; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.0.is_empty() {
            return 0;
        }
        let rank = (q * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    pub fn mean(&self) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.iter().map(|&v| v as f64).sum::<f64>() / self.0.len() as f64
    }

    pub fn max(&self) -> u64 {
        self.0.iter().copied().max().unwrap_or(0)
    }
}

pub fn micros(ns: u64) -> String {
    let us = ns as f64 / 1000.0;
    if us < 10.0 {
        format!("{us:.2}")
    } else if us < 100.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

pub fn millis(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1e6)
}

/// VmRSS of a process (`self` or a pid), in bytes.
pub fn rss_of(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_kib(&status, "VmRSS:").map(|k| k * 1024)
}

/// VmHWM (peak RSS) of a process, in bytes.
pub fn peak_rss_of(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_kib(&status, "VmHWM:").map(|k| k * 1024)
}

pub fn rss() -> u64 {
    rss_of("self").unwrap_or(0)
}

fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

/// One section of BENCHMARKS.md and its key figures.
pub struct Section {
    pub name: &'static str,
    pub markdown: String,
    pub figures: Map<String, Value>,
}

impl Section {
    pub fn new(name: &'static str) -> Self {
        Section {
            name,
            markdown: String::new(),
            figures: Map::new(),
        }
    }

    pub fn line(&mut self, text: impl AsRef<str>) {
        self.markdown.push_str(text.as_ref());
        self.markdown.push('\n');
    }

    pub fn figure(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        self.figures.insert(name.into(), value.into());
    }

    /// Writes `target/bench-results/<name>.json` (bench mode only) and echoes the markdown.
    pub fn write(&self) {
        println!("\n{}", self.markdown);
        if !bench_mode() {
            return;
        }
        let dir = results_dir();
        let doc = json!({"section": self.name, "markdown": self.markdown, "figures": self.figures});
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            std::fs::write(
                dir.join(format!("{}.json", self.name)),
                serde_json::to_vec_pretty(&doc).unwrap_or_default(),
            )
        });
        match written {
            Ok(()) => println!(
                "wrote {}",
                dir.join(format!("{}.json", self.name)).display()
            ),
            Err(e) => eprintln!("cannot write results to {}: {e}", dir.display()),
        }
    }
}
