#!/usr/bin/env bash
# `make oracle`: builds the oracle (Go, pinned modules via the Go module proxy) and
# rollout-guard (cargo build), rebuilds upstream's test fixtures as YAML, generates
# ORACLE_CASES cases from ORACLE_SEED, and compares every verdict (compare.py).
# ORACLE_ARGO=1.10|1.9 picks the Argo Rollouts version compared (default 1.10, as rollout-guard).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
cases="${ORACLE_CASES:-5000}"
seed="${ORACLE_SEED:-1}"
argo="${ORACLE_ARGO:-1.10}"
out="$root/target/oracle"
mkdir -p "$out" "$here/bin"
t0=$(date +%s)

echo "oracle: building (Go: oracle-argo v1.9.1 and v1.10.1, oracle-istio; cargo build)"
( cd "$here/argo" && nice -n 15 go build -o "$here/bin/oracle-argo-v1.9" . \
                  && nice -n 15 go build -modfile=go.v110.mod -o "$here/bin/oracle-argo-v1.10" . )
( cd "$here/istio" && nice -n 15 go build -o "$here/bin/oracle-istio" . )
nice -n 15 "${CARGO:-cargo}" build --quiet
t1=$(date +%s)

stamp="$out/upstream/.stamp"
if [ ! -f "$stamp" ] || [ "$here/upstream/rebuild.sh" -nt "$stamp" ] || [ "$here/upstream/istio_dump_test.go.in" -nt "$stamp" ]; then
  "$here/upstream/rebuild.sh" "$out/upstream"
  touch "$stamp"
fi
gen="$out/cases-seed$seed-n$cases"
if [ ! -d "$gen" ] || [ "$here/gen.py" -nt "$gen" ]; then
  rm -rf "$gen"
  python3 "$here/gen.py" --seed "$seed" --count "$cases" --out "$gen"
fi
t2=$(date +%s)

# Self-check: the oracle must give upstream's expected verdict on upstream's own tests.
python3 "$here/selfcheck.py" --istio "$here/bin/oracle-istio" --argo "$here/bin/oracle-argo-v1.9" "$out/upstream"

if [ "$argo" = "1.9" ]; then main="$here/bin/oracle-argo-v1.9"; other="$here/bin/oracle-argo-v1.10"
else main="$here/bin/oracle-argo-v1.10"; other="$here/bin/oracle-argo-v1.9"; fi
shopt -s nullglob
set +e
python3 "$here/compare.py" --guard target/debug/rollout-guard --argo "$main" --argo-other "$other" \
  --argo-version "$argo" --istio "$here/bin/oracle-istio" \
  --table README.md --table "$here/README.md" --report "$out/disagreements.jsonl" \
  tests/fixtures/argo-rollouts/*.yaml "$here"/examples/*.yaml "$out"/upstream/argo-lint/*.y*ml "$out"/upstream/istio/*.yaml "$out"/upstream/argo-istio/*.yaml "$gen"/*.yaml
rc=$?
set -e
t3=$(date +%s)
echo "oracle: build $((t1 - t0))s, corpus $((t2 - t1))s, compare $((t3 - t2))s; every disagreement in $out/disagreements.jsonl"
exit $rc
