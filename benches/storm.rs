//! Decision latency under a watch-event storm: the same reviews decided while another thread
//! writes the index at a fixed rate of `EVENTS_PER_SECOND` (upserting the state's own objects, as
//! a relist or a burst of controller status writes would), against the same reviews on a quiet
//! index, in one run. The rate is the same for both ways of sharing, so that they are compared
//! under the same load.
//!
//! Measured side by side:
//! - `quiet`: snapshots, no writer (the baseline);
//! - `idle writer`: snapshots and a thread that wakes at the storm's rate and writes nothing: what
//!   any second busy thread costs a decision on 2 shared cores, whatever the design;
//! - `snapshot`: `SharedIndex` (what `serve` uses): each decision takes an immutable snapshot,
//!   the writer publishes a new version per event; neither waits for the other; replaced
//!   versions are freed by the writer once no decision holds them;
//! - `rwlock`: the design it replaced, a `std::sync::RwLock<Index>` whose read guard is held for
//!   the whole decision while the writer takes the write lock per event. Its writer cannot keep
//!   the rate (the readers stall it), so
//! - `snapshot, rwlock's rate`: `SharedIndex` again, its writer paced to the events/s the rwlock's
//!   writer reached in the slice just before: the two designs under the same write load.
//!
//! All are measured in ten interleaved rounds (the order rotating), their samples pooled: on a
//! shared machine a burst of load from elsewhere then falls on all of them alike instead of on
//! whichever ran at that moment.
//!
//! `cargo bench --bench storm` (about two minutes); under `cargo test` a few calls on a small state.

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
    fn start(per_second: f64, mut write: impl FnMut(u64) + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let events = Arc::new(AtomicU64::new(0));
        let (s, e) = (stop.clone(), events.clone());
        let interval = Duration::from_secs_f64(1.0 / per_second.max(1.0));
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

    /// Stops the writer; the events it wrote and the seconds it ran.
    fn finish(mut self) -> (u64, f64) {
        let seconds = self.started.elapsed().as_secs_f64();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        (self.events.load(Ordering::Relaxed), seconds)
    }
}

fn timed(calls: usize, mut decide: impl FnMut()) -> Samples {
    let mut samples = Samples::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        decide();
        samples.push(t.elapsed());
    }
    samples
}

/// How fast a way of sharing is written during its slices.
#[derive(Clone, Copy, PartialEq)]
enum Pace {
    Quiet,
    Asked,
    /// The events/s that the sharing at this position reached in its latest slice; it runs
    /// right after that one.
    AsReachedBy(usize),
}

/// Runs a decision on the index as this way of sharing lets a reader see it.
type Read = Box<dyn Fn(&dyn Fn(&Index))>;
/// Writes one watch event's object the way this way of sharing lets a writer.
type Write = Arc<dyn Fn(Object) + Send + Sync>;

/// One way of sharing the index: how a decision reads it, how the storm writes it.
struct Sharing {
    read: Read,
    write: Write,
    pace: Pace,
}

/// What one way of sharing measured over all rounds.
#[derive(Default)]
struct Measured {
    samples: Samples,
    /// p99 of each round's slice, in round order: the paired comparison of two ways of sharing
    /// measured back to back, which a burst in one slice moves much less than the pooled p99.
    round_p99: Vec<u64>,
    events: u64,
    seconds: f64,
}

impl Measured {
    fn events_per_second(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }
}

/// Measures every way of sharing in `ROUNDS` interleaved slices (the order rotating each round),
/// so that a burst of load from elsewhere on the machine lands on all of them alike.
fn interleaved<const N: usize>(
    sharings: &[Sharing; N],
    objects: &Arc<Vec<Object>>,
    calls: usize,
    decide_on: &dyn Fn(&Index),
) -> [Measured; N] {
    const ROUNDS: usize = 10;
    let mut measured: [Measured; N] = std::array::from_fn(|_| Measured::default());
    let mut latest_rate = [f64::from(EVENTS_PER_SECOND); N];
    let mut next_event = 0u64;
    let leaders: Vec<usize> = (0..N)
        .filter(|&i| !matches!(sharings[i].pace, Pace::AsReachedBy(_)))
        .collect();
    for round in 0..ROUNDS {
        for turn in 0..leaders.len() {
            let leader = leaders[(round + turn) % leaders.len()];
            let followers = (0..N).filter(|&i| sharings[i].pace == Pace::AsReachedBy(leader));
            for which in std::iter::once(leader).chain(followers) {
                let sharing = &sharings[which];
                let rate = match sharing.pace {
                    Pace::Quiet => None,
                    Pace::Asked => Some(f64::from(EVENTS_PER_SECOND)),
                    Pace::AsReachedBy(other) => Some(latest_rate[other]),
                };
                let storm = rate.map(|rate| {
                    let (objects, write, offset) =
                        (objects.clone(), sharing.write.clone(), next_event);
                    Storm::start(rate, move |i| {
                        write(objects[(offset + i) as usize % objects.len()].clone());
                    })
                });
                let mut slice = timed(calls / ROUNDS, || (sharing.read)(decide_on));
                slice.sort();
                let m = &mut measured[which];
                m.round_p99.push(slice.quantile(0.99));
                m.samples.extend(slice);
                if let Some(storm) = storm {
                    let (events, seconds) = storm.finish();
                    next_event += events;
                    latest_rate[which] = events as f64 / seconds.max(1e-9);
                    m.events += events;
                    m.seconds += seconds;
                }
            }
        }
    }
    for m in &mut measured {
        m.samples.sort();
    }
    measured
}

/// The median of `values` (NaN when empty).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let bench = results::bench_mode();
    let (n, calls) = if bench { (10_000, 20_000) } else { (100, 20) };
    let policy = Policy::default();
    let objects = objects(n);
    let cases = gen::cases(n);
    let shared_objects = Arc::new(objects.clone());
    let mut section = Section::new("storm");
    section.line(format!(
        "### Decision latency under a watch-event storm ({n} apps, {} objects; a writer thread upserts \
         the state's objects at {EVENTS_PER_SECOND} events/s)",
        objects.len()
    ));
    section.line("");
    section.line(
        "Each column pools 10 interleaved rounds (the order rotating; the snapshot at the rwlock's rate \
         right after the rwlock's slice, paced to what its writer reached), so that load from elsewhere \
         on the machine falls on all of them alike.",
    );
    section.line("");
    section.line(format!(
        "Load average (1, 5, 15 min) when this section started: {}. The columns are measured in turn, \
         so a busy machine loads all of them; but when other processes take the cores, the snapshot \
         writer's extra work per event (copying the path it changes) competes with the decisions.",
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into())
    ));
    section.line("");
    section.line("p50 / p99 of each, and in brackets its p99 over the quiet p99.");
    section.line("");
    section.line("| request | quiet p50 / p99 | idle writer | snapshot storm | rwlock storm | snapshot at the rwlock's rate | p99 snapshot / rwlock, same rate: pooled | median of the 10 rounds' ratios | events/s snapshot / rwlock / snapshot at its rate |");
    section.line("|---|---|---|---|---|---|---:|---:|---|");
    let mut worst_ratio: f64 = 0.0;
    let mut slowest_locked_writer = f64::INFINITY;
    let mut same_load_ratios = Vec::new();
    let mut round_ratios = Vec::new();
    let mut medians_not_worse = 0;

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

        let snapshots = || {
            let shared = SharedIndex::new(Index::from_objects(objects.iter().cloned()));
            let reader = shared.clone();
            (
                Box::new(move |decide: &dyn Fn(&Index)| decide(&reader.snapshot())) as Read,
                Arc::new(move |o: Object| {
                    shared.update(|index| index.upsert(o));
                }) as Write,
            )
        };
        let (read, _) = snapshots();
        let quiet = Sharing {
            read,
            write: Arc::new(drop),
            pace: Pace::Quiet,
        };
        let (read, _) = snapshots();
        let idle = Sharing {
            read,
            write: Arc::new(|o: Object| {
                black_box(o);
            }),
            pace: Pace::Asked,
        };
        let (read, write) = snapshots();
        let snapshot = Sharing {
            read,
            write,
            pace: Pace::Asked,
        };
        let locked = Arc::new(RwLock::new(Index::from_objects(objects.iter().cloned())));
        let reader = locked.clone();
        let rwlock = Sharing {
            read: Box::new(move |decide: &dyn Fn(&Index)| {
                let guard = reader.read().unwrap_or_else(|p| p.into_inner());
                decide(&guard);
            }),
            write: Arc::new(move |o: Object| {
                locked.write().unwrap_or_else(|p| p.into_inner()).upsert(o);
            }),
            pace: Pace::Asked,
        };
        let (read, write) = snapshots();
        let matched = Sharing {
            read,
            write,
            pace: Pace::AsReachedBy(3),
        };
        let [quiet, idle, snapshot, rwlock, matched] = interleaved(
            &[quiet, idle, snapshot, rwlock, matched],
            &shared_objects,
            calls,
            &decide_on,
        );
        let rates = [&snapshot, &rwlock, &matched].map(Measured::events_per_second);
        let paired: Vec<f64> = matched
            .round_p99
            .iter()
            .zip(&rwlock.round_p99)
            .map(|(m, r)| *m as f64 / (*r).max(1) as f64)
            .collect();
        let paired_median = median(paired.clone());
        round_ratios.extend(paired);
        let [quiet, idle, snapshot, rwlock, matched] =
            [quiet, idle, snapshot, rwlock, matched].map(|m| m.samples);

        let ratio = |s: &Samples| s.quantile(0.99) as f64 / quiet.quantile(0.99).max(1) as f64;
        let cell = |s: &Samples| {
            format!(
                "{} / {} µs ({:.2})",
                micros(s.quantile(0.5)),
                micros(s.quantile(0.99)),
                ratio(s)
            )
        };
        worst_ratio = worst_ratio.max(ratio(&snapshot));
        slowest_locked_writer = slowest_locked_writer.min(rates[1]);
        let against_lock = matched.quantile(0.99) as f64 / rwlock.quantile(0.99).max(1) as f64;
        same_load_ratios.push(against_lock);
        medians_not_worse += usize::from(snapshot.quantile(0.5) <= rwlock.quantile(0.5));
        let label = format!("{} {}", case.name, wh.as_str());
        section.line(format!(
            "| {label} | {} / {} µs | {} | {} | {} | {} | {:.2} | {paired_median:.2} | {:.0} / {:.0} / {:.0} |",
            micros(quiet.quantile(0.5)),
            micros(quiet.quantile(0.99)),
            cell(&idle),
            cell(&snapshot),
            cell(&rwlock),
            cell(&matched),
            against_lock,
            rates[0],
            rates[1],
            rates[2],
        ));
        for (column, samples) in [
            ("quiet", &quiet),
            ("idle_writer", &idle),
            ("snapshot", &snapshot),
            ("rwlock", &rwlock),
            ("snapshot_rwlock_rate", &matched),
        ] {
            section.figure(
                format!("{}_{}_{column}_p99_ns", case.name, wh.as_str()),
                samples.quantile(0.99),
            );
        }
    }
    let not_worse = same_load_ratios.iter().filter(|r| **r <= 1.0).count();
    let median_same_load = median(same_load_ratios.clone());
    let rounds_not_worse = round_ratios.iter().filter(|r| **r <= 1.0).count();
    let median_rounds = median(round_ratios.clone());
    section.line("");
    section.line(format!(
        "Under the same write load (snapshot at the rwlock's rate against the rwlock), decision p99 with \
         snapshots is {not_worse} of {} rows lower or equal, median ratio {median_same_load:.2}; p50 under the \
         storm at the asked rate is lower or equal to the rwlock's in {medians_not_worse} of {} rows. Worst \
         p99 ratio, snapshot storm / quiet: {worst_ratio:.2}; the idle-writer column is the part of it that \
         any second thread waking {EVENTS_PER_SECOND} times a second costs on 2 shared cores.",
        same_load_ratios.len(),
        cases.len(),
    ));
    section.line("");
    section.line(format!(
        "Paired by round (each snapshot slice at the rwlock's rate against the rwlock slice just before it, \
         p99 against p99): {rounds_not_worse} of {} pairs lower or equal, median ratio {median_rounds:.2}.",
        round_ratios.len(),
    ));
    section.line("");
    section.line(format!(
        "Under the RwLock the writer fell to {slowest_locked_writer:.0} events/s of the {EVENTS_PER_SECOND} \
         asked in the slowest row: readers holding the lock stall the feed, so the index falls behind the \
         API server. With snapshots the writer keeps its rate in every row."
    ));
    section.line("");
    section.line(
        "Tried and not kept (2026-12-02): publishing at most one snapshot per feed every 5 ms, the events \
         in between applied together (200 snapshots/s instead of 5,000). Two runs, 10,000 apps: p99 under \
         the storm 0.8-2.2x the per-event figures depending on the row, no consistent gain, so the \
         index stays exact per event.",
    );
    section.figure("median_same_load_p99_ratio", median_same_load);
    section.figure("median_round_paired_p99_ratio", median_rounds);
    section.figure(
        "round_pairs_not_worse",
        format!("{rounds_not_worse}/{}", round_ratios.len()),
    );
    section.figure("worst_snapshot_p99_ratio", worst_ratio);
    section.figure(
        "slowest_rwlock_writer_events_per_second",
        slowest_locked_writer,
    );
    section.write();
}
