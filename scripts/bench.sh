#!/usr/bin/env bash
# `make bench`: the benchmarks against DESIGN.md "Performance targets", then BENCHMARKS.md.
#
#   decision   criterion + 20,000 timed calls per request kind at 100/1,000/10,000 apps (~3.5 min)
#   footprint  RSS and heap per cached object, index build time, lint objects/s (~1 min)
#   loadgen    HTTPS serve vs an allow-everything baseline, start to ready, RSS (~2 min)
#   storm      decision latency while a writer thread upserts the index: snapshots vs a RwLock (~2 min)
#   kube       serve --source kube on kube-apiserver 1.34 holding 50,000 objects: load time, start to
#              ready, RSS, bytes per object; HTTPS latency quiet and during a watch-event storm (~5 min)
#   profile    flat perf profiles of the decision bench and of lint at 10,000 apps (~2 min; needs perf,
#              installed from Debian's linux-perf when missing)
#   opa        OPA serving benches/opa/policy.rego over the same objects as data.inventory against
#              rollout-guard's /validate: agreement on fixture reviews, latency, throughput, RSS (~3 min)
#
# The decision and footprint sizes include 13,000 apps (the scale curve, assembled by the report).
# BENCH_QUICK=1 shrinks everything for a quick check (100/1,000 apps, 3 s loads); the sizes can also
# be set one by one: RG_BENCH_SIZES, RG_LOADGEN_APPS/_SECONDS, RG_KUBE_APPS/_SECONDS/_STORM_RATE,
# RG_OPA_APPS/_SECONDS/_CALLS. The kube and opa steps need Go and the Go module proxy the first time
# (kube-apiserver, etcd, kube-load and opa are built and cached by scripts/build-e2e-tools.sh).
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
# The commit measured, taken before the run: the report may be regenerated later from the same
# results (`cargo run --release --example bench_report -- BENCHMARKS.md` with these three set).
export RG_BENCH_COMMIT
RG_BENCH_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    RG_BENCH_COMMIT="$RG_BENCH_COMMIT with uncommitted changes"
fi

if [ "${BENCH_QUICK:-0}" = 1 ]; then
    export RG_BENCH_SIZES=${RG_BENCH_SIZES:-100,1000} RG_LOADGEN_APPS=${RG_LOADGEN_APPS:-1000}
    export RG_LOADGEN_SECONDS=${RG_LOADGEN_SECONDS:-3} RG_KUBE_APPS=${RG_KUBE_APPS:-1000}
    export RG_KUBE_SECONDS=${RG_KUBE_SECONDS:-3} RG_OPA_APPS=${RG_OPA_APPS:-1000}
    export RG_OPA_SECONDS=${RG_OPA_SECONDS:-3} RG_OPA_CALLS=${RG_OPA_CALLS:-200}
fi

echo "== building (release binary, benches, report)"
$CARGO build --release --bin rollout-guard --example bench_report || exit 1
$CARGO bench --no-run --bench decision --bench footprint --bench loadgen --bench storm \
    --bench kube --bench opa || exit 1
# The peers (Go; cached after the first build). A failure leaves their sections out.
TOOLS=$(scripts/build-e2e-tools.sh kube-apiserver etcd kube-load opa) \
    || echo "building kube-apiserver/etcd/kube-load/opa failed" | tee -a "$OUT/failures.txt"

step() {
    local name=$1 limit=$2
    echo "== $name (at most ${limit}s)"
    if ! timeout --kill-after=10 "$limit" $CARGO bench --bench "$name" 2>&1 | tee "$OUT/$name.log"; then
        echo "bench $name failed or timed out; see $OUT/$name.log" | tee -a "$OUT/failures.txt"
    fi
}

# kube: a fresh 1.34 control plane in our own run dir, the upstream CRDs, then the bench.
# The run dir (etcd's data) on tmpfs when there is one: etcd's fsync on this machine's shared disk
# takes 100-200 ms and would be what the load measures.
KUBE_RUN=$TARGET_DIR/bench-kube
[ -d /dev/shm ] && [ -w /dev/shm ] && KUBE_RUN=/dev/shm/rollout-guard-bench-kube-$$
kube_down() {
    [ -d "$KUBE_RUN" ] || return 0
    ROLLOUT_GUARD_KUBE_RUN=$KUBE_RUN scripts/kube-down.sh --version 1.34 >/dev/null 2>&1 || true
    case $KUBE_RUN in /dev/shm/*) rm -rf "$KUBE_RUN" ;; esac
}
trap kube_down EXIT
kube_up() {
    local kc ar f crd
    kc=$(ROLLOUT_GUARD_KUBE_RUN=$KUBE_RUN scripts/kube-up.sh --version 1.34 --fresh) || return 1
    ar=$(cd tests/e2e/tools && GOFLAGS=-mod=mod GOTOOLCHAIN=local go list -m -f '{{.Dir}}' github.com/argoproj/argo-rollouts) \
        || return 1
    for f in "$ar"/manifests/crds/rollout-crd.yaml tests/e2e/crds-upstream/istio-*.yaml; do
        KUBECONFIG=$kc kubectl apply --server-side -f "$f" >/dev/null || return 1
    done
    for crd in rollouts.argoproj.io virtualservices.networking.istio.io destinationrules.networking.istio.io; do
        KUBECONFIG=$kc kubectl wait --for=condition=Established --timeout=60s "crd/$crd" >/dev/null || return 1
    done
    echo "$kc"
}

step decision 480
# Flat perf profiles of the decisions and of lint (the binary `cargo bench --no-run` just built).
DECISION_BIN=$($CARGO bench --no-run --bench decision 2>&1 | sed -n 's/.*Executable [^(]*(\(.*\))$/\1/p' | tail -1)
echo "== profile (at most 400s)"
if ! timeout --kill-after=10 400 scripts/bench-profile.sh "$OUT" "$DECISION_BIN" 2>&1 | tee "$OUT/profile.log"; then
    echo "profile failed or timed out; see $OUT/profile.log" | tee -a "$OUT/failures.txt"
fi
step footprint 200
step loadgen 300
step storm 240
if [ -n "${TOOLS:-}" ] && KUBECONFIG_BENCH=$(kube_up); then
    RG_KUBECONFIG=$KUBECONFIG_BENCH RG_KUBE_LOAD=$TOOLS/kube-load \
        RG_KUBE_APISERVER_PID=$(cat "$KUBE_RUN/apiserver.pid") step kube 900
else
    echo "bench kube: the control plane did not start (see $KUBE_RUN/*.log)" | tee -a "$OUT/failures.txt"
fi
kube_down
if [ -n "${TOOLS:-}" ]; then RG_OPA_BIN=$TOOLS/opa step opa 300; fi

echo "== BENCHMARKS.md"
$CARGO run --release --example bench_report -- BENCHMARKS.md
