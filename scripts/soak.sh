#!/usr/bin/env bash
# `make soak`: a bounded soak of `rollout-guard serve --source files` (release build) on 127.0.0.1.
#
#   state   SOAK_APPS apps (default 1,000: 5,000 objects) from examples/gen_state.rs
#   load    the loadgen bench against the running server (RG_LOADGEN_TARGET): SOAK_CONNECTIONS
#           keep-alive connections (8), half of SOAK_SECONDS in a closed loop, half at half that
#           rate; meanwhile a client that opens a new TLS connection for every request (curl),
#           alternating a valid review and a malformed body (400)
#   probe   VmRSS, open file descriptors and threads of the server from /proc/PID every second,
#           from ready to exit (load, then SOAK_IDLE seconds idle), then SIGTERM: exit 0 expected
#
# Writes the "Soak" section of BENCHMARKS.md: only the part between `<!-- soak:begin -->` and
# `<!-- soak:end -->` (appended when the markers are missing), so `make bench`'s sections stay.
# Raw samples: target/soak/. Fails only if the server dies, errors on SIGTERM, or nothing was
# measured; a growing RSS is reported, not failed (a soak is a measurement).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
SECONDS_TOTAL=${SOAK_SECONDS:-60}
APPS=${SOAK_APPS:-1000}
CONNECTIONS=${SOAK_CONNECTIONS:-8}
IDLE=${SOAK_IDLE:-5}
WARMUP=${SOAK_WARMUP:-10}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT=$TARGET_DIR/soak
DOC=${SOAK_DOC:-BENCHMARKS.md}
BIN=$TARGET_DIR/release/rollout-guard

# Not at the same time as `make bench` (2 cores: each would skew the other's figures).
BENCH_PROCS='loadgen|footprint|criterion|scripts/bench.sh'
if pgrep -f "$BENCH_PROCS" >/dev/null; then
    echo "soak: benchmarks are running on this machine; run the soak when they are done" >&2
    exit 1
fi

echo "== building (release binary, gen_state, loadgen)"
$CARGO build --release --bin rollout-guard --example gen_state
$CARGO bench --no-run --bench loadgen
if pgrep -f "$BENCH_PROCS" >/dev/null; then
    echo "soak: benchmarks started meanwhile; run the soak when they are done" >&2
    exit 1
fi

rm -rf "$OUT"
mkdir -p "$OUT"
WORK=$(mktemp -d)
SERVER=
CHURN=
SAMPLER=
cleanup() {
    for p in $CHURN $SAMPLER; do kill "$p" 2>/dev/null || true; done
    if [ -n "$SERVER" ] && kill -0 "$SERVER" 2>/dev/null; then kill -KILL "$SERVER" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== state: $APPS apps"
"$TARGET_DIR/release/examples/gen_state" "$WORK/state" "$APPS" live
"$BIN" dev-certs --out "$WORK/certs" >/dev/null

"$BIN" serve --source files --manifests "$WORK/state" \
    --tls-cert "$WORK/certs/tls.crt" --tls-key "$WORK/certs/tls.key" \
    --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 2>"$WORK/serve.log" &
SERVER=$!
addr_of() { grep -m1 "$1" "$WORK/serve.log" 2>/dev/null | grep -o 'addr=[0-9.]*:[0-9]*' | cut -d= -f2; }
HTTPS= ADMIN=
for _ in $(seq 1 600); do
    HTTPS=$(addr_of "HTTPS listener bound" || true)
    ADMIN=$(addr_of "admin listener bound" || true)
    if [ -n "$HTTPS" ] && [ -n "$ADMIN" ] && curl -sf "http://$ADMIN/readyz" >/dev/null; then break; fi
    kill -0 "$SERVER" 2>/dev/null || { echo "soak: the server exited at start:" >&2; cat "$WORK/serve.log" >&2; exit 1; }
    sleep 0.1
done
curl -sf "http://$ADMIN/readyz" >/dev/null || { echo "soak: not ready after 60 s" >&2; exit 1; }
echo "== serve ready: https://$HTTPS, admin http://$ADMIN, pid $SERVER"

# One line per second: seconds since ready, VmRSS KiB, open fds, threads, phase.
PHASE_FILE=$WORK/phase
echo ready >"$PHASE_FILE"
(
    start=$(date +%s.%N)
    while kill -0 "$SERVER" 2>/dev/null; do
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER/status" 2>/dev/null || true)
        threads=$(awk '/^Threads:/ {print $2}' "/proc/$SERVER/status" 2>/dev/null || true)
        fds=$(ls "/proc/$SERVER/fd" 2>/dev/null | wc -l)
        now=$(date +%s.%N)
        [ -n "$rss" ] && awk -v a="$now" -v b="$start" -v r="$rss" -v f="$fds" -v t="$threads" -v p="$(cat "$PHASE_FILE")" \
            'BEGIN { printf "%.1f %d %d %d %s\n", a - b, r, f, t, p }'
        sleep 1
    done
) >"$OUT/samples.txt" &
SAMPLER=$!
sleep 2

# A new TLS connection per request, valid and malformed bodies in turn.
REVIEW=$(mktemp -p "$WORK")
cat >"$REVIEW" <<EOF
{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"soak-churn","kind":{"group":"networking.istio.io","version":"v1beta1","kind":"VirtualService"},"namespace":"team-001","name":"app-00001","operation":"UPDATE","userInfo":{"username":"system:serviceaccount:argocd:argocd-application-controller"},"object":{"apiVersion":"networking.istio.io/v1beta1","kind":"VirtualService","metadata":{"name":"app-00001","namespace":"team-001"},"spec":{"hosts":["app-00001"],"http":[{"name":"primary","route":[{"destination":{"host":"app-00001-stable"},"weight":100},{"destination":{"host":"app-00001-canary"},"weight":0}]}]}},"oldObject":{"apiVersion":"networking.istio.io/v1beta1","kind":"VirtualService","metadata":{"name":"app-00001","namespace":"team-001"},"spec":{"hosts":["app-00001"],"http":[{"name":"primary","route":[{"destination":{"host":"app-00001-stable"},"weight":80},{"destination":{"host":"app-00001-canary"},"weight":20}]}]}}}}
EOF
(
    n=0
    while true; do
        n=$((n + 1))
        if [ $((n % 2)) -eq 0 ]; then body=@$REVIEW; want=200; else body='{"request": {"uid": '; want=400; fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$WORK/certs/ca.crt" \
            -H 'Content-Type: application/json' --data "$body" "https://$HTTPS/mutate" 2>/dev/null) || true
        echo "${code:-000} $want"
        sleep 0.05
    done
) >"$OUT/churn.txt" &
CHURN=$!

echo "== load: ${SECONDS_TOTAL}s (loadgen, $CONNECTIONS connections) + a new connection per request"
echo load >"$PHASE_FILE"
HALF=$(( (SECONDS_TOTAL + 1) / 2 ))
RG_LOADGEN_TARGET=$HTTPS RG_LOADGEN_CA=$WORK/certs/ca.crt RG_LOADGEN_SECONDS=$HALF \
    RG_LOADGEN_CONNECTIONS=$CONNECTIONS RG_LOADGEN_APPS=$APPS \
    $CARGO bench --bench loadgen 2>&1 | tee "$OUT/loadgen.log"
kill "$CHURN" 2>/dev/null || true
wait "$CHURN" 2>/dev/null || true
CHURN=
echo idle >"$PHASE_FILE"
sleep "$IDLE"

echo "== SIGTERM"
kill -0 "$SERVER" 2>/dev/null || { echo "soak: the server died under load:" >&2; tail -20 "$WORK/serve.log" >&2; exit 1; }
kill -TERM "$SERVER"
set +e
wait "$SERVER"
EXIT=$?
set -e
SERVER=
wait "$SAMPLER" 2>/dev/null || true
SAMPLER=
cp "$WORK/serve.log" "$OUT/serve.log" 2>/dev/null || true
WARNINGS=$(grep -c -E ' (WARN|ERROR) ' "$WORK/serve.log" || true)

# Figures: RSS at ready, after the warm-up, at the end of the load, max, idle; least-squares slope
# over the load after the warm-up.
read -r READY_RSS WARM_RSS END_RSS MAX_RSS IDLE_RSS SLOPE N FD0 FD1 TH0 TH1 LOAD_SECS < <(awk -v warm="$WARMUP" '
    $5 == "ready" && !r { r = $2; fd0 = $3; th0 = $4 }
    $5 == "load" { if (!l0) l0 = $1; t = $1 - l0; last = $2; lt = t; fd1 = $3; th1 = $4
                   if (t >= warm) { if (!w) w = $2; n++; sx += t; sy += $2; sxx += t * t; sxy += t * $2 } }
    $2 > max { max = $2 }
    $5 == "idle" { idle = $2 }
    END {
        slope = (n > 1 && n * sxx - sx * sx != 0) ? (n * sxy - sx * sy) / (n * sxx - sx * sx) * 60 : 0
        printf "%d %d %d %d %d %.1f %d %d %d %d %d %.0f\n", r, w, last, max, idle, slope, n, fd0, fd1, th0, th1, lt
    }' "$OUT/samples.txt")
if [ "${N:-0}" -lt 2 ]; then echo "soak: too few samples" >&2; exit 1; fi

CHURN_TOTAL=$(wc -l <"$OUT/churn.txt")
CHURN_OK=$(awk '$1 == $2' "$OUT/churn.txt" | wc -l)
LOAD_LINES=$(grep -E '^ *target ' "$OUT/loadgen.log" | sed 's/^ *//' || true)
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
GROWTH_KIB=$(awk -v s="$SLOPE" -v n="$N" 'BEGIN { printf "%.0f", s * n / 60 }')
VERDICT=$(awk -v g="$GROWTH_KIB" -v w="$WARM_RSS" 'BEGIN {
    if (g < 0) g = -g
    if (g <= 1024 || g <= w * 0.02) print "**no growth**: within noise (under 1 MiB or 2 % over the window)"
    else print "**growth**: above noise; investigate"
}')

SECTION=$WORK/soak.md
{
    echo "<!-- soak:begin -->"
    echo "## Soak"
    echo
    echo "Written by \`make soak\` (\`scripts/soak.sh\`), $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores. \`rollout-guard serve --source files\` (release build) with $APPS apps ($((APPS * 5)) objects) on 127.0.0.1, ${LOAD_SECS} s of load: the \`loadgen\` bench against the running server (\`RG_LOADGEN_TARGET\`; $CONNECTIONS keep-alive HTTP/1.1 connections over TLS, the 9 AdmissionReview kinds, ${HALF} s closed loop then ${HALF} s at half that rate, each after 1 s of warm-up) and, at the same time, a client opening a new TLS connection for every request (curl, every 50 ms; a GitOps re-apply on \`/mutate\` and a malformed body in turn). Then ${IDLE} s idle and SIGTERM. VmRSS, open file descriptors and threads of the server read from \`/proc/PID\` every second (raw: \`target/soak/samples.txt\`)."
    echo
    echo "| RSS | MiB |"
    echo "|---|---:|"
    echo "| ready, before the load | $(mib "$READY_RSS") |"
    echo "| after ${WARMUP} s of load (warm-up) | $(mib "$WARM_RSS") |"
    echo "| end of the load | $(mib "$END_RSS") |"
    echo "| max | $(mib "$MAX_RSS") |"
    echo "| ${IDLE} s after the load | $(mib "$IDLE_RSS") |"
    echo
    echo "Slope after the warm-up (least squares over $N one-second samples): **${SLOPE} KiB/min** (${GROWTH_KIB} KiB over the window) — $VERDICT."
    echo "Open file descriptors $FD0 at ready, $FD1 at the end of the load; threads $TH0 → $TH1."
    echo
    echo "Load (loadgen's lines):"
    echo
    echo '```'
    if [ -n "$LOAD_LINES" ]; then echo "$LOAD_LINES"; else echo "(no loadgen output; see target/soak/loadgen.log)"; fi
    echo '```'
    echo
    echo "New-connection client: $CHURN_OK of $CHURN_TOTAL answers with the expected status (200 for the review, 400 for the malformed body). Server log: $WARNINGS WARN/ERROR lines. Exit status on SIGTERM: **$EXIT**."
    echo "<!-- soak:end -->"
} >"$SECTION"

# Replace the marked block, or append it.
if [ -f "$DOC" ] && grep -q '<!-- soak:begin -->' "$DOC" && grep -q '<!-- soak:end -->' "$DOC"; then
    awk -v section="$SECTION" '
        /<!-- soak:begin -->/ { while ((getline line < section) > 0) print line; skip = 1; next }
        /<!-- soak:end -->/ { skip = 0; next }
        !skip { print }' "$DOC" >"$WORK/doc.md"
    cp "$WORK/doc.md" "$DOC"
else
    { [ -f "$DOC" ] && [ -s "$DOC" ] && echo; cat "$SECTION"; } >>"$DOC"
fi
cp "$SECTION" "$OUT/soak.md"
echo "== $DOC: Soak section written"
cat "$SECTION"
if [ "$EXIT" -ne 0 ]; then echo "soak: exit status $EXIT on SIGTERM" >&2; exit 1; fi
