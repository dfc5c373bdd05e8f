#!/usr/bin/env bash
# End-to-end tests against a real kube-apiserver 1.20 and etcd on 127.0.0.1 (scripts/kube-up.sh):
# installs the CRDs and the RBAC of manifests/, runs `rollout-guard serve --source kube` as the
# manifests' ServiceAccount (impersonated), registers both webhooks by URL and drives them with
# kubectl. Prints one line per case and "N passed, N failed"; exits non-zero on a failure.
#
#   tests/e2e/run.sh            ROLLOUT_GUARD_BIN (default target/debug/rollout-guard)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BIN=${ROLLOUT_GUARD_BIN:-$ROOT/target/debug/rollout-guard}
W=$ROOT/.e2e
# Free ports by default, so that nothing else listening here can answer in the webhook's place.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=${E2E_WEBHOOK_PORT:-$(free_port)}
ADMIN=${E2E_ADMIN_PORT:-$(free_port)}
CONTROLLER=system:serviceaccount:argo-rollouts:argo-rollouts
M=tests/e2e/manifests
PASSED=0
FAILED=0
SERVER_PID=

die() { echo "e2e: error: $*" >&2; exit 1; }
[ -x "$BIN" ] || die "no binary at $BIN (cargo build first)"
mkdir -p "$W"
rm -rf "$W/certs" "$W/rendered" "$W/out"
mkdir -p "$W/out"

export ROLLOUT_GUARD_KUBE_RUN=$W/kube
KC=$(scripts/kube-up.sh --fresh) || die "the control plane did not start (see $W/kube/*.log)"
export KUBECONFIG=$KC

stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null
  fi
  SERVER_PID=
}
cleanup() {
  stop_server
  scripts/kube-down.sh >/dev/null 2>&1 || true
}
trap cleanup EXIT

ok() { PASSED=$((PASSED + 1)); echo "ok   - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $*"; }

# expect_fail NAME PATTERN CMD...: the command must fail and its output contain PATTERN.
expect_fail() {
  local name=$1 pattern=$2; shift 2
  if "$@" >"$W/out/last" 2>&1; then
    fail "$name: expected a refusal, the command succeeded"; sed 's/^/       /' "$W/out/last"
  elif grep -q -- "$pattern" "$W/out/last"; then
    ok "$name"
  else
    fail "$name: refused without '$pattern'"; sed 's/^/       /' "$W/out/last"
  fi
}
# expect_ok NAME PATTERN CMD...: the command must succeed (and print PATTERN, unless empty).
expect_ok() {
  local name=$1 pattern=$2; shift 2
  if ! "$@" >"$W/out/last" 2>&1; then
    fail "$name: the command failed"; sed 's/^/       /' "$W/out/last"
  elif [ -n "$pattern" ] && ! grep -q -- "$pattern" "$W/out/last"; then
    fail "$name: output lacks '$pattern'"; sed 's/^/       /' "$W/out/last"
  else
    ok "$name"
  fi
}
# expect_eq NAME WANT CMD...: the command's output must equal WANT.
expect_eq() {
  local name=$1 want=$2; shift 2
  local got
  got=$("$@" 2>"$W/out/stderr")
  if [ "$got" = "$want" ]; then ok "$name"; else fail "$name: expected '$want', found '$got' $(cat "$W/out/stderr")"; fi
}
weights() { kubectl get virtualservice "$1" -n shop -o jsonpath='{.spec.http[0].route[*].weight}'; }
render() { sed -e "s/ROUTE/$2/g" -e "s/TIMEOUT/${3:-10s}/g" -e "s/TRAFFIC_POLICY/${4:-}/" "$M/$1"; }
as_controller() { kubectl --as="$CONTROLLER" "$@"; }

# --- cluster setup ---------------------------------------------------------------------------
kubectl apply -f tests/e2e/crds >/dev/null || die "cannot install the CRDs"
for crd in rollouts.argoproj.io virtualservices.networking.istio.io destinationrules.networking.istio.io; do
  kubectl wait --for=condition=Established "crd/$crd" --timeout=30s >/dev/null || die "CRD $crd not established"
done
kubectl apply -f manifests/namespace.yaml -f manifests/serviceaccount.yaml -f manifests/clusterrole.yaml \
  -f manifests/clusterrolebinding.yaml >/dev/null || die "cannot apply the RBAC manifests"
kubectl create namespace shop >/dev/null || die "cannot create namespace shop"
# The controller's identity needs rights of its own to change objects (impersonation by admin).
kubectl create clusterrolebinding e2e-argo-rollouts --clusterrole=cluster-admin --user="$CONTROLLER" >/dev/null

# The webhook reads the cluster as the manifests' ServiceAccount: get/list/watch only.
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
ca=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.certificate-authority}')
cat >"$W/webhook.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: e2e, cluster: {server: "$server", certificate-authority: "$ca"}}]
users: [{name: webhook, user: {token: admin-token, as: "system:serviceaccount:rollout-guard:rollout-guard"}}]
contexts: [{name: e2e, context: {cluster: e2e, user: webhook}}]
current-context: e2e
KC

"$BIN" dev-certs --out "$W/certs" >/dev/null || die "cannot generate certificates"

start_server() {
  KUBECONFIG=$W/webhook.kubeconfig RUST_LOG=${RUST_LOG:-info} "$BIN" serve --source kube \
    --listen 127.0.0.1:$PORT --admin-listen 127.0.0.1:$ADMIN \
    --tls-cert "$W/certs/tls.crt" --tls-key "$W/certs/tls.key" --stale-after 3s >>"$W/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || die "rollout-guard exited; see $W/server.log"
    sleep 0.1
  done
  die "rollout-guard not ready after 10 s; see $W/server.log"
}
# Waits until the webhook's index has seen a change (watch events are asynchronous).
settle() { sleep "${1:-1}"; }

start_server
scripts/render-webhooks.sh --ca "$W/certs/ca.crt" --out "$W/rendered" --url "https://127.0.0.1:$PORT" >/dev/null \
  || die "cannot render the webhook configurations"
kubectl apply -f "$W/rendered" >/dev/null || die "cannot register the webhooks"
sleep 1

kubectl apply -f "$M/base.yaml" >/dev/null || die "cannot apply the base objects"
settle

metric() { curl -s "http://127.0.0.1:$ADMIN/metrics" | awk -v m="$1" '$1==m {print $2}'; }

# --- (a) references are checked at apply time --------------------------------------------------
expect_fail "(a) a new Rollout naming a route the live VirtualService lacks is refused" "http-route-not-found" \
  kubectl apply -f <(render rollout.yaml primry)
expect_ok "(a) the Rollout with the right route is accepted" "" kubectl apply -f <(render rollout.yaml primary)
settle
# A rename applied as one sync applies it: the two writes back to back, in either order (Argo CD
# orders custom resources by name), the second before the first one's watch event can be relied on.
expect_ok "(a) renaming the route, the VirtualService first: a breaks-rollout warning, not a refusal" "breaks-rollout" \
  kubectl apply -f <(render vs-git.yaml next)
expect_ok "(a) ... then the Rollout, at once" "" kubectl apply -f <(render rollout.yaml next)
expect_ok "(a) renaming it again, the Rollout first: an http-route-not-found warning" "http-route-not-found" \
  kubectl apply -f <(render rollout.yaml main)
expect_ok "(a) ... then the VirtualService, at once" "" kubectl apply -f <(render vs-git.yaml main)
settle

# --- (b) the seed's SNI-host VirtualService ----------------------------------------------------
expect_fail "(b) the seed's VirtualService is refused per SNI host" \
  'SNI host "reviews.bookinfo.com" is not a compatible subset of any of the virtual service hosts: \[rollouts-demo-vsvc1.local\]' \
  kubectl apply -f "$M/seed-sni.yaml"

# --- (c) a VirtualService change that breaks a live Rollout ------------------------------------
# Under --breaks-severity auto, a write that breaks a live Rollout is refused only when the two
# cannot be one sync: here the VirtualService belongs to another Argo CD application than the
# Rollout (tracking annotations). The denial is confirmed with the API server before it is given.
expect_fail "(c) a VirtualService change of another application that breaks the Rollout is refused, naming it" \
  "breaks-rollout.*Rollout shop/checkout" \
  kubectl apply -f <(render vs-git.yaml other | sed 's|^metadata: {name: checkout, namespace: shop}|metadata: {name: checkout, namespace: shop, annotations: {argocd.argoproj.io/tracking-id: "mesh:networking.istio.io/VirtualService:shop/checkout"}}|')
expect_ok "(c) ... the same change from a writer without a marker is a warning (it may be half of a sync)" "breaks-rollout" \
  kubectl apply --dry-run=server -f <(render vs-git.yaml other)
# The denials above ((a)'s wrong route, (c); kubectl may send a refused apply twice) were read again
# from the API server before they were given: every one confirmed, none failed.
confirmed=$(metric 'rollout_guard_admission_confirmations_total{result="confirmed"}')
failed=$(metric 'rollout_guard_admission_confirmations_total{result="failed"}')
expect_eq "(c) ... each denial was confirmed with the API server first" "yes" \
  sh -c "[ '${confirmed:-0}' -ge 2 ] && [ -z '$failed' ] && echo yes || echo 'confirmed=${confirmed:-0} failed=${failed:-0}'"

# --- (d) GitOps re-apply mid-canary keeps the controller's weights ----------------------------
kubectl patch rollout checkout -n shop --subresource=status --type=merge -p \
  '{"status":{"currentStepIndex":1,"stableRS":"s1","currentPodHash":"c2","canary":{"weights":{"canary":{"weight":20,"podTemplateHash":"c2","serviceName":"checkout-canary"},"stable":{"weight":80,"podTemplateHash":"s1","serviceName":"checkout-stable"}}}}}' \
  >/dev/null || fail "(d) setting the Rollout status through the status subresource"
as_controller patch virtualservice checkout -n shop --type=json \
  -p '[{"op":"replace","path":"/spec/http/0/route/0/weight","value":80},{"op":"replace","path":"/spec/http/0/route/1/weight","value":20}]' >/dev/null \
  || fail "(d) the controller sets 80/20"
settle
expect_eq "(d) the controller's write is stored as is" "80 20" weights checkout
expect_ok "(d) kubectl apply of Git's 100/0 prints our warning" 'Warning: rollout-guard: kept weights stable=80 canary=20 on VirtualService shop/checkout route "main"' \
  kubectl apply -f <(render vs-git.yaml main 15s)
expect_eq "(d) ... and 80/20 is stored" "80 20" weights checkout

# --- (f) server-side dry run shows the corrected object -----------------------------------------
expect_eq "(f) kubectl apply --dry-run=server shows the corrected weights" "80 20" \
  kubectl apply --dry-run=server -f <(render vs-git.yaml main 20s) -o jsonpath='{.spec.http[0].route[*].weight}'

# --- (e) delete and re-apply from Git: weights from the status ---------------------------------
kubectl delete virtualservice checkout -n shop >/dev/null
settle
expect_ok "(e) re-creating the VirtualService from Git is accepted" "" kubectl apply -f <(render vs-git.yaml main)
expect_eq "(e) ... with 80/20 from status.canary.weights" "80 20" weights checkout

# --- (h) the controller changes weights freely ---------------------------------------------------
as_controller patch virtualservice checkout -n shop --type=json \
  -p '[{"op":"replace","path":"/spec/http/0/route/0/weight","value":50},{"op":"replace","path":"/spec/http/0/route/1/weight","value":50}]' >/dev/null
expect_eq "(h) the controller's identity sets 50/50 untouched" "50 50" weights checkout

# --- (g) a DestinationRule re-apply keeps its hashes ---------------------------------------------
kubectl apply -f <(render subset.yaml primary) >/dev/null || fail "(g) the subset-level objects are accepted"
settle
as_controller patch destinationrule reviews -n shop --type=json -p '[
  {"op":"add","path":"/metadata/annotations","value":{"argo-rollouts.argoproj.io/managed-by-rollouts":"reviews"}},
  {"op":"add","path":"/spec/subsets/0/labels/rollouts-pod-template-hash","value":"c2"},
  {"op":"add","path":"/spec/subsets/1/labels/rollouts-pod-template-hash","value":"s1"}]' >/dev/null \
  || fail "(g) the controller sets the subset hashes"
settle
expect_ok "(g) a Git re-apply of the DestinationRule prints our warning" "kept rollouts-pod-template-hash" \
  kubectl apply -f <(render subset.yaml primary 10s 'trafficPolicy: {connectionPool: {tcp: {maxConnections: 10}}}')
expect_eq "(g) ... and the hashes are stored" "c2 s1" \
  kubectl get destinationrule reviews -n shop -o 'jsonpath={.spec.subsets[*].labels.rollouts-pod-template-hash}'

# --- (j) the watch breaks and comes back: --stale-after ------------------------------------------
# A review the webhook would deny while its state is fresh: renaming the Rollout's route.
review() {  # review OPERATION OBJECT_JSON OLD_JSON
  python3 -c 'import json,sys; print(json.dumps({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
    "uid":"e2e-stale","kind":{"group":"networking.istio.io","version":"v1beta1","kind":"VirtualService"},
    "namespace":"shop","name":"checkout","operation":sys.argv[1],"userInfo":{"username":"argocd"},
    "object":json.loads(sys.argv[2]),"oldObject":json.loads(sys.argv[3])}}))' "$@"
}
post() { curl -s --cacert "$W/certs/ca.crt" -H 'Content-Type: application/json' --data @- "https://127.0.0.1:$PORT/$1"; }
live_vs=$(kubectl get virtualservice checkout -n shop -o json)
# Renamed by another Argo CD application than the Rollout's: denied while the state is fresh.
renamed_vs=$(echo "$live_vs" | python3 -c 'import json,sys; v=json.load(sys.stdin); v["spec"]["http"][0]["name"]="renamed"; v["metadata"].setdefault("annotations",{})["argocd.argoproj.io/tracking-id"]="mesh:networking.istio.io/VirtualService:shop/checkout"; print(json.dumps(v))')
git_vs=$(echo "$live_vs" | python3 -c 'import json,sys; v=json.load(sys.stdin); r=v["spec"]["http"][0]["route"]; r[0]["weight"]=100; r[1]["weight"]=0; print(json.dumps(v))')
expect_eq "(j) fresh: a breaking VirtualService review is denied" "False" \
  sh -c "$(declare -f review post); $(printf 'W=%q PORT=%q' "$W" "$PORT"); review UPDATE '$renamed_vs' '$live_vs' | post validate | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"response\"][\"allowed\"])'"
# until SECONDS CMD...: polls CMD (every 0.2 s) until it succeeds; fails after SECONDS.
until_within() {
  local limit=$1; shift
  local end=$((SECONDS + limit))
  until "$@"; do [ "$SECONDS" -ge "$end" ] && return 1; sleep 0.2; done
}
metric_is() { [ "$(metric "$1")" = "$2" ]; }
# Every watcher feed logged a completed list after line SINCE of the server log.
FEEDS="Rollout VirtualService DestinationRule Service"
feeds_relisted_since() {
  local since=$1 f
  for f in $FEEDS; do
    tail -n +"$((since + 1))" "$W/server.log" | grep -q "listed feed=$f/\*" || return 1
  done
}
missing_relists_since() {
  local since=$1 f
  for f in $FEEDS; do
    tail -n +"$((since + 1))" "$W/server.log" | grep -q "listed feed=$f/\*" || printf '%s ' "$f"
  done
}
# kill_apiserver: a crash, so that every watch breaks at once; waits until the process is gone.
kill_apiserver() {
  local pid
  pid=$(cat "$W/kube/apiserver.pid")
  kill -KILL "$pid"
  until_within 10 sh -c "! kill -0 $pid 2>/dev/null"
}
# How long a feed may take to relist once the API server answers again (README.md, failure
# table): the relist deadline (10 s) + the longest reconnect delay (5 s) + the API server's own
# warm-up (RBAC and CRD informers), with a margin.
RELIST_BOUND=40

kill_apiserver
until_within 15 metric_is rollout_guard_state_stale 1
expect_eq "(j) the watch broken longer than --stale-after: the staleness gauge says so" "1" metric rollout_guard_state_stale
expect_eq "(j) ... /readyz stays ready" "200" curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN/readyz"
expect_eq "(j) ... the cross-object denial becomes a warning" "True breaks-rollout" \
  sh -c "$(declare -f review post); $(printf 'W=%q PORT=%q' "$W" "$PORT"); review UPDATE '$renamed_vs' '$live_vs' | post validate | python3 -c 'import json,sys; r=json.load(sys.stdin)[\"response\"]; print(r[\"allowed\"], \"breaks-rollout\" if any(\"breaks-rollout\" in w for w in r.get(\"warnings\",[])) else r)'"
expect_eq "(j) ... and mutation is skipped with a warning" "no-patch stale" \
  sh -c "$(declare -f review post); $(printf 'W=%q PORT=%q' "$W" "$PORT"); review UPDATE '$git_vs' '$live_vs' | post mutate | python3 -c 'import json,sys; r=json.load(sys.stdin)[\"response\"]; print(\"patch\" if \"patch\" in r else \"no-patch\", \"stale\" if any(\"stale\" in w for w in r.get(\"warnings\",[])) else r)'"
# Kill and restart the API server in a loop: after every restart every feed must relist (the
# DestinationRule feed once stayed silent after 403s for over 60 s).
RESTARTS=${E2E_APISERVER_RESTARTS:-3}
for round in $(seq 1 "$RESTARTS"); do
  if [ "$round" -gt 1 ]; then
    kill_apiserver
    until_within 15 metric_is rollout_guard_state_stale 1 || fail "(j) restart $round: the broken watch did not make the state stale"
  fi
  since=$(wc -l <"$W/server.log")
  scripts/kube-up.sh >/dev/null || die "the API server did not come back (restart $round)"
  back=$SECONDS
  if until_within "$RELIST_BOUND" feeds_relisted_since "$since"; then
    ok "(j) restart $round/$RESTARTS: every feed relisted, $((SECONDS - back)) s after the API server was up"
  else
    fail "(j) restart $round/$RESTARTS: no relist within $RELIST_BOUND s from: $(missing_relists_since "$since")"
    tail -n +"$((since + 1))" "$W/server.log" | grep "feed\|watch" | tail -20 | sed "s/^/       /"
  fi
  until_within 10 metric_is rollout_guard_state_stale 0
  expect_eq "(j) restart $round/$RESTARTS: the state is fresh again" "0" metric rollout_guard_state_stale
done
expect_eq "(j) ... and the breaking review is denied again" "False" \
  sh -c "$(declare -f review post); $(printf 'W=%q PORT=%q' "$W" "$PORT"); review UPDATE '$renamed_vs' '$live_vs' | post validate | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"response\"][\"allowed\"])'"
echo "     feed restarts by the liveness guard: $(curl -s "http://127.0.0.1:$ADMIN/metrics" | awk '/^rollout_guard_feed_restarts_total/ {printf "%s=%s ", $1, $2}')"

# --- (k) --namespace limits what is watched ------------------------------------------------------
SCOPED_PORT=$(free_port); SCOPED_ADMIN=$(free_port)
KUBECONFIG=$W/webhook.kubeconfig "$BIN" serve --source kube --namespace other-team \
  --listen 127.0.0.1:$SCOPED_PORT --admin-listen 127.0.0.1:$SCOPED_ADMIN \
  --tls-cert "$W/certs/tls.crt" --tls-key "$W/certs/tls.key" >>"$W/scoped.log" 2>&1 &
SCOPED_PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$SCOPED_ADMIN/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
expect_eq "(k) a server watching only other-team is ready and has none of shop's Rollouts" "0" \
  sh -c "curl -s http://127.0.0.1:$SCOPED_ADMIN/metrics | awk '\$1==\"rollout_guard_index_objects{kind=\\\"Rollout\\\"}\" {print \$2}'"
expect_eq "(k) ... so it does not judge shop's breaking VirtualService change" "True" \
  sh -c "$(declare -f review); review UPDATE '$renamed_vs' '$live_vs' | curl -s --cacert '$W/certs/ca.crt' -H 'Content-Type: application/json' --data @- https://127.0.0.1:$SCOPED_PORT/validate | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"response\"][\"allowed\"])'"
kill -TERM "$SCOPED_PID"; wait "$SCOPED_PID" 2>/dev/null

# --- (i) with the webhook stopped: validation fails closed, mutation fails open ------------------
stop_server
expect_fail "(i) a VirtualService write fails closed while the webhook is down" "failed calling webhook" \
  kubectl apply -f <(render vs-git.yaml main 30s)
expect_fail "(i) a Rollout write fails closed while the webhook is down" "failed calling webhook" \
  kubectl apply -f <(render rollout.yaml main | sed 's/replicas: 2/replicas: 3/')
expect_ok "(i) a Service write passes (validation Ignore, mutation fails open)" "" \
  kubectl apply -f <(sed 's/port: 80, targetPort: 8080/port: 81, targetPort: 8080/' "$M/base.yaml" | python3 -c 'import sys; print(sys.stdin.read().split("---")[0])')

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
