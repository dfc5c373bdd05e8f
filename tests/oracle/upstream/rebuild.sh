#!/usr/bin/env bash
# Rebuilds upstream's own test fixtures as YAML cases, with upstream's expected verdict, into
# OUT (default target/oracle/upstream). Nothing is copied by hand:
#   argo-lint/   kubectl argo rollouts lint testdata of argo-rollouts v1.9.1 (the module's files,
#                copied from the Go module cache); expected verdicts read from lint_test.go
#                (TestLintValidRollout / TestLintInvalidRollout) into expected.tsv.
#   istio/       every VirtualService and DestinationRule that Istio's own tests in
#                pkg/config/validation (TestValidateVirtualService, TestValidateDestinationRule,
#                and the virtualservice_test.go tables) pass to ValidateVirtualService /
#                ValidateDestinationRule, dumped by go test with an overlay file
#                (istio_dump_test.go.in) that wraps those two functions; `go test` passing means
#                each recorded verdict is the tests' expected one.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${1:-$root/target/oracle/upstream}"
rm -rf "$out"
mkdir -p "$out/argo-lint" "$out/istio"

argo_dir="$(cd "$here/../argo" && go list -m -f '{{.Dir}}' github.com/argoproj/argo-rollouts)"
[ -d "$argo_dir" ] || { echo "rebuild: argo-rollouts module not found (run from a built tests/oracle/argo)" >&2; exit 2; }
td="$argo_dir/pkg/kubectl-argo-rollouts/cmd/lint/testdata"
for f in "$td"/*; do
  b="$(basename "$f")"
  case "$b" in *.json) b="$b.yaml" ;; esac
  { echo "# Source: github.com/argoproj/argo-rollouts@v1.9.1 pkg/kubectl-argo-rollouts/cmd/lint/testdata/$(basename "$f")"; cat "$f"; } > "$out/argo-lint/$b"
done
python3 - "$argo_dir/pkg/kubectl-argo-rollouts/cmd/lint/lint_test.go" "$out/argo-lint/expected.tsv" <<'PY'
import re, sys
src = open(sys.argv[1]).read()
rows = []
valid = re.search(r"func TestLintValidRollout.*?tests := \[\]string\{(.*?)\n\t\}", src, re.S).group(1)
for f in re.findall(r'"testdata/([^"]+)"', valid):
    rows.append((f, "accept", ""))
inv = re.search(r"func TestLintInvalidRollout.*?tests := \[\]struct \{.*?\}\{(.*?)\n\t\}\n", src, re.S).group(1)
for f, msg in re.findall(r'"testdata/([^"]+)",\s*(?:errmsg:\s*)?"((?:[^"\\]|\\.)*)"', inv):
    rows.append((f, "refuse", msg.encode().decode("unicode_escape").strip()))
with open(sys.argv[2], "w") as o:
    for f, v, m in rows:
        if f.endswith(".json"):
            f += ".yaml"
        o.write(f"{f}\t{v}\t{m}\n")
print(f"rebuild: {len(rows)} lint testdata verdicts from lint_test.go")
PY

istio_dir="$(cd "$here/../istio" && go list -m -f '{{.Dir}}' istio.io/istio)"
# A build-time copy of the package with its tests (the module cache cannot be overlaid), in a
# throw-away module that requires the same istio.io/istio as tests/oracle/istio.
work="$root/target/oracle/istio-dump"
rm -rf "$work"; mkdir -p "$work/validation"
cp "$istio_dir"/pkg/config/validation/*.go "$work/validation/"
cp -r "$istio_dir"/pkg/config/validation/testdata "$work/validation/" 2>/dev/null || true
chmod -R u+w "$work"
rm -f "$work/validation/fuzz_test.go" "$work/validation/openapi_test.go"
cp "$here/istio_dump_test.go.in" "$work/validation/zz_oracle_dump_test.go"
sed 's#^module .*#module oracle.local/istiodump#' "$here/../istio/go.mod" | grep -v 'tests/oracle/input' > "$work/go.mod"
cp "$here/../istio/go.sum" "$work/go.sum"
( cd "$work" && ORACLE_DUMP="$out/istio" GOFLAGS=-mod=mod nice -n 15 go test -count=1 \
    -run '^(TestValidateVirtualService|TestValidateDestinationRule|TestValidateChainingVirtualService)$' \
    ./validation >"$work/test.log" 2>&1 ) || { tail -30 "$work/test.log" >&2; echo "rebuild: Istio's validation tests failed (so the dumped verdicts are not upstream's expected ones)" >&2; exit 1; }
# argo-rollouts v1.9.1 rollout/trafficrouting/istio's own tests, through reconcileVirtualService.
awork="$root/target/oracle/argo-istio-dump"
rm -rf "$awork"; mkdir -p "$awork/istio" "$out/argo-istio"
cp "$argo_dir"/rollout/trafficrouting/istio/*.go "$awork/istio/"
chmod -R u+w "$awork"
sed -i 's/^func (r \*Reconciler) reconcileVirtualService(/func (r *Reconciler) reconcileVirtualServiceOracleOrig(/' "$awork/istio/istio.go"
grep -q reconcileVirtualServiceOracleOrig "$awork/istio/istio.go" || { echo "rebuild: reconcileVirtualService not found in argo-rollouts' istio.go" >&2; exit 1; }
cp "$here/argo_istio_dump_test.go.in" "$awork/istio/zz_oracle_dump_test.go"
sed 's#^module .*#module oracle.local/argoistiodump#' "$here/../argo/go.mod" | grep -v 'tests/oracle/input' > "$awork/go.mod"
cp "$here/../argo/go.sum" "$awork/go.sum"
( cd "$awork" && ORACLE_DUMP="$out/argo-istio" GOFLAGS=-mod=mod nice -n 15 go test -count=1 ./istio >"$awork/test.log" 2>&1 ) \
  || { tail -30 "$awork/test.log" >&2; echo "rebuild: argo-rollouts' istio tests failed (so the dumped verdicts are not upstream's expected ones)" >&2; exit 1; }
echo "rebuild: $(ls "$out/argo-istio"/*.yaml | wc -l) reconciles from argo-rollouts' rollout/trafficrouting/istio tests"
echo "rebuild: $(ls "$out/istio"/*.yaml | wc -l) Istio test objects; $(ls "$out/argo-lint" | grep -c -v expected.tsv) lint testdata files, in $out"
