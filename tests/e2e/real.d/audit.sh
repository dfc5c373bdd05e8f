# Sourced by tests/e2e/real.sh (its helpers: ok, fail, poll, expect_ok, metric, indent; W, T, BIN).
# `rollout-guard audit` against the API server, and serve's rollout_guard_findings gauge, on a
# Rollout broken while rollout-guard was not looking (its namespace labelled rollout-guard.io/ignore,
# so the webhooks are not called) in namespace audit-bad, and a sound one in audit-ok.
au_objects() {  # au_objects NS ROUTE: Services, a VirtualService with route "primary", a Rollout naming ROUTE
  cat <<YAML
apiVersion: v1
kind: Service
metadata: {name: x-canary, namespace: $1}
spec: {selector: {app: x}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: x-stable, namespace: $1}
spec: {selector: {app: x}, ports: [{port: 80}]}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: x, namespace: $1}
spec:
  hosts: [x]
  http:
  - name: primary
    route:
    - {destination: {host: x-stable}, weight: 100}
    - {destination: {host: x-canary}, weight: 0}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: x, namespace: $1}
spec:
  replicas: 1
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: x}}
    spec: {containers: [{name: x, image: nginx:1.25}]}
  strategy:
    canary:
      canaryService: x-canary
      stableService: x-stable
      trafficRouting: {istio: {virtualService: {name: x, routes: [$2]}}}
      steps: [{setWeight: 20}, {pause: {}}]
YAML
}
AU_METRIC='rollout_guard_findings{rule="http-route-not-found",severity="deny"}'
au_findings() { local v; v=$(metric "$AU_METRIC"); echo "${v:-0}"; }
au_findings_are() { [ "$(au_findings)" = "$1" ]; }
AU_BEFORE=$(au_findings)
AU_KC=$W/webhook.kubeconfig  # rollout-guard's own identity: read-only on the four kinds
if ! kubectl create namespace audit-bad >/dev/null || ! kubectl label namespace audit-bad rollout-guard.io/ignore=true >/dev/null \
  || ! kubectl create namespace audit-ok >/dev/null || ! au_objects audit-bad primry | kubectl apply -f - >/dev/null \
  || ! au_objects audit-ok primary | kubectl apply -f - >/dev/null; then
  fail "(audit) cannot create the objects in audit-bad and audit-ok"
else
  "$BIN" audit --kubeconfig "$AU_KC" --namespace audit-bad >"$W/out/audit.txt" 2>&1; rc=$?
  if [ "$rc" = 1 ] && grep -qF '/apis/argoproj.io/v1alpha1/namespaces/audit-bad/rollouts/x: Rollout audit-bad/x: deny [http-route-not-found]' "$W/out/audit.txt"; then
    ok "(audit) audit --namespace audit-bad finds the Rollout broken behind rollout-guard's back (exit 1, lint's text)"
  else
    fail "(audit) audit --namespace audit-bad: expected exit 1 and an http-route-not-found line, found exit $rc"; indent "$W/out/audit.txt"
  fi
  "$BIN" audit --kubeconfig "$AU_KC" --namespace audit-bad --output json >"$W/out/audit.json" 2>"$W/out/audit.err"; rc=$?
  if [ "$rc" = 1 ] && python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
f = [f for f in r["findings"] if f["rule"] == "http-route-not-found"]
assert r["summary"]["deny"] >= 1 and f and f[0]["namespace"] == "audit-bad" and f[0]["name"] == "x" and f[0]["severity"] == "deny", r
' "$W/out/audit.json"; then
    ok "(audit) ... --output json has lint's shape and the finding"
  else
    fail "(audit) ... --output json: exit $rc"; indent "$W/out/audit.json" "$W/out/audit.err"
  fi
  expect_ok "(audit) audit --namespace audit-ok: no deny finding, exit 0" "4 objects from" \
    "$BIN" audit --kubeconfig "$AU_KC" --namespace audit-ok
  "$BIN" audit --kubeconfig "$AU_KC" >"$W/out/audit-all.txt" 2>&1; rc=$?
  if [ "$rc" = 1 ] && grep -qF 'Rollout audit-bad/x: deny [http-route-not-found]' "$W/out/audit-all.txt"; then
    ok "(audit) audit of the whole cluster finds it too ($(tail -1 "$W/out/audit-all.txt"))"
  else
    fail "(audit) audit of the whole cluster: exit $rc"; indent "$W/out/audit-all.txt"
  fi
  "$BIN" audit --kubeconfig "$W/no-such.kubeconfig" >"$W/out/audit-none.txt" 2>&1; rc=$?
  if [ "$rc" = 2 ] && grep -q 'no-such.kubeconfig' "$W/out/audit-none.txt"; then
    ok "(audit) a kubeconfig that cannot be read: exit 2 with the reason"
  else
    fail "(audit) a missing kubeconfig: expected exit 2, found $rc"; indent "$W/out/audit-none.txt"
  fi
  # serve's gauge over the live state: up by one, and back once the Rollout is fixed.
  if poll "$T" au_findings_are $((AU_BEFORE + 1)); then
    ok "(audit) serve's $AU_METRIC counts the broken Rollout ($AU_BEFORE -> $((AU_BEFORE + 1)))"
  else
    fail "(audit) serve's $AU_METRIC: expected $((AU_BEFORE + 1)) within ${T}s, found $(au_findings)"
  fi
  kubectl patch rollout x -n audit-bad --type=json \
    -p '[{"op":"replace","path":"/spec/strategy/canary/trafficRouting/istio/virtualService/routes/0","value":"primary"}]' >/dev/null
  if poll "$T" au_findings_are "$AU_BEFORE"; then
    ok "(audit) ... and recounts when the Rollout is fixed (back to $AU_BEFORE)"
  else
    fail "(audit) ... after the fix: expected $AU_BEFORE within ${T}s, found $(au_findings)"
  fi
fi
