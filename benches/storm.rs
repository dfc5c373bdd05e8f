//! Decision latency under a watch-event storm: the same reviews decided while another thread
//! writes the index at a fixed rate of `EVENTS_PER_SECOND` (upserting the state's own objects, as
//! a relist or a burst of controller status writes would), against the same reviews on a quiet
//! index, in one run. The rate is the same for both ways of sharing, so that they are compared
//! under the same load.
//!
//! Four ways of sharing the index are measured side by side:
//! - `quiet`: snapshots, no writer (the baseline);
//! - `snapshot`: `SharedIndex` (what `serve` uses): each decision takes an immutable snapshot,
//!   the writer publishes a new version per event; neither waits for the other; replaced
//!   versions are freed by the writer once no decision holds them;
//! - `reader-freed`: the same snapshots in a plain `ArcSwap`, where whoever drops a replaced
//!   version last frees it (often a decision);
//! - `rwlock`: the design it replaced, a `std::sync::RwLock<Index>` whose read guard is held for
//!   the whole decision while the writer takes the write lock per event.
//!
//! `cargo bench --bench storm` (about a minute); under `cargo test` a few calls on a small state.

#[path = "support/gen.rs"]
mod gen;
#[path = "support/results.rs"]
mod results;

use criterion::black_box;
use results::{micros, Samples, Section};
use rollout_guard::admission::{handle, Context, Policy, Webhook};
use rollout_guard::index::{Index, SharedIndex};
use rollout_guard::model::Object;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// "Thousands of updates per second": a relist of a large namespace, or many Rollouts' status.
const EVENTS_PER_SECOND: u32 = 5_000;

fn objects(n: usize) -> Vec<Object> {
    gen::live_objects(n)
        .map(|v| {
            Object::parse(&v, "default")
                .expect("generated objects parse")
                .expect("generated objects are of our kinds")
        })
        .collect()
}

/// Runs `write` in a loop on its own thread until dropped; counts the events.
struct Storm {
    stop: Arc<AtomicBool>,
    events: Arc<AtomicU64>,
    started: Instant,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Storm {
    fn start(mut write: impl FnMut(u64) + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let events = Arc::new(AtomicU64::new(0));
        let (s, e) = (stop.clone(), events.clone());
        let interval = Duration::from_secs(1) / EVENTS_PER_SECOND;
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                write(i);
                i += 1;
                e.store(i, Ordering::Relaxed);
                // Paced to the rate; a writer that falls behind catches up without sleeping.
                let due = started + interval * u32::try_from(i).unwrap_or(u32::MAX);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        });
        Storm {
            stop,
            events,
            started: Instant::now(),
            thread: Some(thread),
        }
    }

    /// Stops the writer; events per second while it ran.
    fn finish(mut self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.events.load(Ordering::Relaxed) as f64 / self.started.elapsed().as_secs_f64()
    }
}

fn timed(calls: usize, mut decide: impl FnMut()) -> Samples {
    let mut samples = Samples::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        decide();
        samples.push(t.elapsed());
    }
    samples.sort();
    samples
}

fn main() {
    let bench = results::bench_mode();
    let (n, calls) = if bench { (10_000, 20_000) } else { (100, 20) };
    let policy = Policy::default();
    let objects = objects(n);
    let cases = gen::cases(n);
    let mut section = Section::new("storm");
    section.line(format!(
        "### Decision latency under a watch-event storm ({n} apps, {} objects; a writer thread upserts \
         the state's objects at {EVENTS_PER_SECOND} events/s)",
        objects.len()
    ));
    section.line("");
    section.line("| request | quiet p50 / p99 | snapshot storm p50 / p99 (ratio of p99) | reader-freed storm p50 / p99 (ratio of p99) | rwlock storm p50 / p99 (ratio of p99) | events/s snapshot / reader-freed / rwlock |");
    section.line("|---|---|---|---|---|---|");
    let mut worst_ratio: f64 = 0.0;
    let mut slowest_locked_writer = f64::INFINITY;

    for case in &cases {
        let wh = if case.mutate {
            Webhook::Mutate
        } else {
            Webhook::Validate
        };
        let decide_on = |index: &Index| {
            let ctx = Context {
                index,
                policy: &policy,
                stale: false,
            };
            black_box(handle(wh, black_box(&case.body), &ctx));
        };

        let shared = SharedIndex::new(Index::from_objects(objects.iter().cloned()));
        let quiet = timed(calls, || decide_on(&shared.snapshot()));

        let writer_objects = objects.clone();
        let writer = shared.clone();
        let storm = Storm::start(move |i| {
            let o = writer_objects[i as usize % writer_objects.len()].clone();
            writer.update(|index| index.upsert(o));
        });
        let snapshot = timed(calls, || decide_on(&shared.snapshot()));
        let snapshot_rate = storm.finish();

        // The same snapshots without the writers' retirement of replaced versions: whoever drops
        // a version last frees it, often a decision (what SharedIndex did before).
        let plain = Arc::new(arc_swap::ArcSwap::from_pointee(Index::from_objects(
            objects.iter().cloned(),
        )));
        let writer_objects = objects.clone();
        let writer = plain.clone();
        let storm = Storm::start(move |i| {
            let o = writer_objects[i as usize % writer_objects.len()].clone();
            let mut next = Index::clone(&writer.load());
            next.upsert(o);
            writer.store(Arc::new(next));
        });
        let reader_freed = timed(calls, || decide_on(&plain.load_full()));
        let reader_freed_rate = storm.finish();

        let locked = Arc::new(RwLock::new(Index::from_objects(objects.iter().cloned())));
        let writer_objects = objects.clone();
        let writer = locked.clone();
        let storm = Storm::start(move |i| {
            let o = writer_objects[i as usize % writer_objects.len()].clone();
            writer.write().unwrap_or_else(|p| p.into_inner()).upsert(o);
        });
        let rwlock = timed(calls, || {
            let guard = locked.read().unwrap_or_else(|p| p.into_inner());
            decide_on(&guard);
        });
        let rwlock_rate = storm.finish();

        let ratio = |s: &Samples| s.quantile(0.99) as f64 / quiet.quantile(0.99).max(1) as f64;
        worst_ratio = worst_ratio.max(ratio(&snapshot));
        slowest_locked_writer = slowest_locked_writer.min(rwlock_rate);
        section.line(format!(
            "| {} | {} / {} µs | {} / {} µs ({:.2}) | {} / {} µs ({:.2}) | {} / {} µs ({:.2}) | {:.0} / {:.0} / {:.0} |",
            case.name,
            micros(quiet.quantile(0.5)),
            micros(quiet.quantile(0.99)),
            micros(snapshot.quantile(0.5)),
            micros(snapshot.quantile(0.99)),
            ratio(&snapshot),
            micros(reader_freed.quantile(0.5)),
            micros(reader_freed.quantile(0.99)),
            ratio(&reader_freed),
            micros(rwlock.quantile(0.5)),
            micros(rwlock.quantile(0.99)),
            ratio(&rwlock),
            snapshot_rate,
            reader_freed_rate,
            rwlock_rate,
        ));
        section.figure(format!("{}_quiet_p99_ns", case.name), quiet.quantile(0.99));
        section.figure(
            format!("{}_snapshot_p99_ns", case.name),
            snapshot.quantile(0.99),
        );
        section.figure(
            format!("{}_reader_freed_p99_ns", case.name),
            reader_freed.quantile(0.99),
        );
        section.figure(
            format!("{}_rwlock_p99_ns", case.name),
            rwlock.quantile(0.99),
        );
    }
    section.line("");
    section.line(format!(
        "Worst p99 ratio, snapshot storm / quiet: {worst_ratio:.2}. On 2 shared cores the writer takes one \
         core, so part of any ratio above 1 is CPU taken, not waiting; the rwlock column shows what waiting adds."
    ));
    section.line("");
    section.line(format!(
        "Under the RwLock the writer fell to {slowest_locked_writer:.0} events/s of the {EVENTS_PER_SECOND} \
         asked in the slowest row: readers holding the lock stall the feed, so the index falls behind the \
         API server, and that lighter write load is part of why some rwlock p99s look better. With \
         snapshots the writer keeps its rate in every row."
    ));
    section.line("");
    section.line(
        "Tried and not kept (2026-12-02): publishing at most one snapshot per feed every 5 ms, the events \
         in between applied together (200 snapshots/s instead of 5,000). Two runs, 10,000 apps: p99 under \
         the storm 0.8-2.2x the per-event figures depending on the row, no consistent gain, so the \
         index stays exact per event. What the storm costs a decision is the CPU the writer takes on 2 \
         shared cores (each event parses nothing here but still copies map paths and drops old nodes), \
         not waiting.",
    );
    section.figure("worst_snapshot_p99_ratio", worst_ratio);
    section.figure(
        "slowest_rwlock_writer_events_per_second",
        slowest_locked_writer,
    );
    section.write();
}
