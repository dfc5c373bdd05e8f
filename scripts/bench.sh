#!/usr/bin/env bash
# `make bench`: the benchmarks against DESIGN.md "Performance targets", then BENCHMARKS.md.
#
#   decision   criterion + 20,000 timed calls per request kind at 100/1,000/10,000 apps (~3.5 min)
#   footprint  RSS and heap per cached object, index build time, lint objects/s (~1 min)
#   loadgen    HTTPS serve vs an allow-everything baseline, start to ready, RSS (~2 min)
#   storm      decision latency while a writer thread upserts the index: snapshots vs a RwLock (~1 min)
#
# Each step is bounded by `timeout`; a step that fails or times out leaves its section out of
# BENCHMARKS.md (listed under "Not measured") and the others still run. Benchmarks are not tests:
# nothing here fails on a slow figure. Results: target/bench-results/ (JSON and logs).
set -uo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT=$TARGET_DIR/bench-results
rm -rf "$OUT"
mkdir -p "$OUT"

export RG_BENCH_STARTED
RG_BENCH_STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
export RG_BENCH_LOADAVG
RG_BENCH_LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)

echo "== building (release binary, benches, report)"
$CARGO build --release --bin rollout-guard --example bench_report || exit 1
$CARGO bench --no-run --bench decision --bench footprint --bench loadgen --bench storm || exit 1

step() {
    local name=$1 limit=$2
    echo "== $name (at most ${limit}s)"
    if ! timeout --kill-after=10 "$limit" $CARGO bench --bench "$name" 2>&1 | tee "$OUT/$name.log"; then
        echo "bench $name failed or timed out; see $OUT/$name.log" | tee -a "$OUT/failures.txt"
    fi
}

step decision 420
step footprint 180
step loadgen 300
step storm 240

echo "== BENCHMARKS.md"
$CARGO run --release --example bench_report -- BENCHMARKS.md
