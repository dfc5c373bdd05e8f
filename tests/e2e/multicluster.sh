#!/usr/bin/env bash
# End-to-end tests of Argo Rollouts' Istio multicluster setup (issue 13) against the real thing: two
# kube-apiserver v1.34.1 + etcd 3.6.4 control planes on 127.0.0.1 (scripts/kube-up.sh --version 1.34
# --run-dir, one run dir each), the real Argo Rollouts controller v1.9.1 and its kubectl plugin, the
# upstream CRDs, and two `rollout-guard serve --source kube` processes registered by URL.
#
#   P  the Istio primary: Istio's VirtualService and DestinationRule CRDs (no Argo Rollouts CRD),
#      the VirtualServices, and
#      the ServiceAccount argo-rollouts/argo-rollouts-istio-primary with the ClusterRole Argo
#      Rollouts' docs give it ("Multicluster Setup": get/list/watch/update/patch VirtualServices and
#      DestinationRules). rollout-guard G_P runs here with --rollouts-cluster-secrets rollout-guard:
#      the Secret rollout-guard/rollouts-cluster-east (label rollout-guard.io/rollouts-cluster=true,
#      data key "east") holds a kubeconfig for R as the read-only remote reader
#      (manifests/multicluster/rollouts-cluster/remote-reader.yaml). G_P is registered in P for
#      VirtualServices and DestinationRules (validate and mutate), with matchConditions that keep the
#      controller's identities away.
#   R  the Rollouts cluster: Argo Rollouts' CRDs and RBAC, the controller (leader election off, as its
#      ServiceAccount), rs-ready, the Rollouts and their Services, and the Secret
#      argo-rollouts/istio-remote-secret-primary (label istio.argoproj.io/primary-cluster=true, data
#      key "primary"), whose kubeconfig reaches P as argo-rollouts-istio-primary with a token of that
#      ServiceAccount (kubectl create token, as `istioctl x create-remote-secret` would put one). No
#      Istio CRDs: the controller v1.9.1 does every Istio read and write through the primary's client
#      (cmd/rollouts-controller/main.go GetPrimaryClusterDynamicClient; controller.go and
#      rollout/trafficrouting/istio use istioPrimaryDynamicClient, also for DoesIstioExist), so it
#      needs none here. rollout-guard G_R runs here with --istio-primary-secrets argo-rollouts,
#      registered in R for Rollouts and Services (manifests/multicluster/rollouts-cluster).
#
# Cases, each check line prefixed with its letter (E2E_MULTI_CASES="b d" runs only some; (a) always
# runs: it creates the canary the others drive):
#   (a) without rollout-guard: the controller in R walks a host-level canary, writing its weights
#       into P's VirtualService (80/20 after set image, 100/0 after promote)
#   (b) a GitOps re-apply of P's VirtualService with Git's 100/0 mid-canary keeps the controller's
#       weights: G_P restores them, no stored version has 100/0
#   (c) a Rollout in R naming a route P's VirtualService lacks is refused by G_R (the message names
#       the route); the right one is accepted and the controller makes it Healthy
#   (d) renaming the managed route of P's VirtualService is refused by G_P (breaks-rollout: the
#       VirtualService and the Rollout in R belong to different Argo CD applications, which the
#       default --breaks-severity auto denies); without that marker it is a warning (dry run)
#   (e) the primary Secret deleted in R at run time: G_R's index drops P's VirtualServices; created
#       again, they come back and G_R refuses a wrong route again
#   (f) R's API server killed (SIGKILL): G_P's cluster_ready{cluster="east"} 0, state_stale 1 after
#       --stale-after (2 s here); a GitOps re-apply is not denied (recorded: what was stored and what
#       the controller did); R back: cluster_ready 1 within E2E_MULTI_RETURN_BOUND (30) s, guarded again
#
#   tests/e2e/multicluster.sh   ROLLOUT_GUARD_BIN (default target/debug/rollout-guard; cargo build first)
#   E2E_MULTI_TIMEOUT           seconds any one wait may take (default 90)
#   E2E_MULTI_CASES="b c"       run only these cases ((a) always runs)
#   E2E_MULTI_RETURN_BOUND      case (f): seconds from R's API server being ready again until G_P's
#                               cluster_ready{cluster="east"} is 1 and state_stale 0 (default 30)
#   E2E_MULTI_ISTIO_CRDS_IN_R=1 also install Istio's CRDs in R (the controller does not need them;
#                               G_R reads VirtualServices and DestinationRules in R while it has no
#                               primary Secret, case (e))
#   E2E_MULTI_ROLLOUT_CRD_IN_P=1 also install Argo Rollouts' Rollout CRD in P (P has no Rollout either way)
#
# Prints one line per check ("note - ..." lines record what was observed and count for nothing) and
# "N passed, N failed"; exits non-zero on a failure. Working files and logs: .e2e-multi/
# (controller.log, rs-ready.log, guard-p.log, guard-r.log, kube-p/, kube-r/, rec/).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BIN=${ROLLOUT_GUARD_BIN:-$ROOT/target/debug/rollout-guard}
W=$ROOT/.e2e-multi
T=${E2E_MULTI_TIMEOUT:-90}
CASES=${E2E_MULTI_CASES:-}
RETURN_BOUND=${E2E_MULTI_RETURN_BOUND:-30}
ISTIO_CRDS_IN_R=${E2E_MULTI_ISTIO_CRDS_IN_R:-0}
ROLLOUT_CRD_IN_P=${E2E_MULTI_ROLLOUT_CRD_IN_P:-0}
STALE_AFTER=2
CONTROLLER=system:serviceaccount:argo-rollouts:argo-rollouts
PRIMARY_WRITER=system:serviceaccount:argo-rollouts:argo-rollouts-istio-primary
GITOPS=system:serviceaccount:argocd:argocd-application-controller
GUARD=system:serviceaccount:rollout-guard:rollout-guard
READER=system:serviceaccount:rollout-guard:rollout-guard-remote-reader
MC=manifests/multicluster
PASSED=0
FAILED=0
PIDS=()
GP_PID=
GR_PID=
START=$SECONDS
die() { echo "e2e-multi: error: $*" >&2; exit 1; }
log() { echo "e2e-multi: $*" >&2; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
[ -x "$BIN" ] || die "no binary at $BIN (cargo build first)"
command -v kubectl >/dev/null || die "kubectl is required"
python3 -c 'import yaml' 2>/dev/null || die "python3 with PyYAML is required (apt-get install python3-yaml)"
rm -rf "$W"
mkdir -p "$W/out" "$W/rec" "$W/git"

TB=$(scripts/build-e2e-tools.sh) || die "building the test tools failed (see above)"

stop_pid() {  # stop_pid PID: TERM, wait for it to exit
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}
cleanup() {
  local pid
  stop_pid "$GP_PID"; stop_pid "$GR_PID"
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  scripts/kube-down.sh --run-dir "$W/kube-r" >/dev/null 2>&1 || true
  scripts/kube-down.sh --run-dir "$W/kube-p" >/dev/null 2>&1 || true
}
trap cleanup EXIT

ok() { PASSED=$((PASSED + 1)); echo "ok   - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $*"; }
note() { echo "note - $*"; }
indent() { sed 's/^/       /' "$@"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }  # since T0: seconds, one decimal

# poll SECONDS CMD...: runs CMD every 0.2 s until it succeeds; false after SECONDS.
poll() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}
# eventually NAME WANT CMD...: CMD's output must become WANT within T seconds.
eventually() {
  local name=$1 want=$2 got deadline=$((SECONDS + T))
  shift 2
  while :; do
    got=$("$@" 2>&1)
    [ "$got" = "$want" ] && { ok "$name"; return 0; }
    [ $SECONDS -lt $deadline ] || break
    sleep 0.2
  done
  fail "$name: expected '$want' within ${T}s, found '$got'"
  return 1
}
# expect_fail NAME PATTERN CMD...: the command must fail and its output contain PATTERN.
expect_fail() {
  local name=$1 pattern=$2
  shift 2
  if "$@" >"$W/out/last" 2>&1; then
    fail "$name: expected a refusal, the command succeeded"; indent "$W/out/last"
  elif grep -q -- "$pattern" "$W/out/last"; then
    ok "$name"
  else
    fail "$name: refused without '$pattern'"; indent "$W/out/last"
  fi
}
# expect_ok NAME PATTERN CMD...: the command must succeed (and print PATTERN, unless empty).
expect_ok() {
  local name=$1 pattern=$2
  shift 2
  if ! "$@" >"$W/out/last" 2>&1; then
    fail "$name: the command failed"; indent "$W/out/last"
  elif [ -n "$pattern" ] && ! grep -q -- "$pattern" "$W/out/last"; then
    fail "$name: output lacks '$pattern'"; indent "$W/out/last"
  else
    ok "$name"
  fi
}
# want C: case C is to run (E2E_MULTI_CASES empty, or listing C).
want() { [ -z "$CASES" ] || [[ " $CASES " == *" $1 "* ]]; }

# --- two control planes -------------------------------------------------------------------------
KP=$(scripts/kube-up.sh --version 1.34 --fresh --run-dir "$W/kube-p") || die "P's control plane did not start (see $W/kube-p/*.log)"
KR=$(scripts/kube-up.sh --version 1.34 --fresh --run-dir "$W/kube-r") || die "R's control plane did not start (see $W/kube-r/*.log)"
unset KUBECONFIG
kp() { kubectl --kubeconfig "$KP" "$@"; }
kr() { kubectl --kubeconfig "$KR" "$@"; }
server_of() { kubectl --kubeconfig "$1" config view --minify -o jsonpath='{.clusters[0].cluster.server}'; }
P_SERVER=$(server_of "$KP"); R_SERVER=$(server_of "$KR")
log "tools in $TB; P (Istio primary) $P_SERVER, R (Rollouts cluster) $R_SERVER"

# impersonating_kubeconfig FILE ADMIN_KUBECONFIG USER: that server's admin credentials acting as USER
# (RBAC applies to USER), as real.sh runs the controller and rollout-guard.
impersonating_kubeconfig() {
  local server ca
  server=$(server_of "$2")
  ca=$(kubectl --kubeconfig "$2" config view --minify -o jsonpath='{.clusters[0].cluster.certificate-authority}')
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters: [{name: e2e, cluster: {server: "$server", certificate-authority: "$ca"}}]
users: [{name: u, user: {token: admin-token, as: "$3"}}]
contexts: [{name: e2e, context: {cluster: e2e, user: u, namespace: shop}}]
current-context: e2e
KC
}
# token_kubeconfig ADMIN_KUBECONFIG RUN_DIR NAME TOKEN: a self-contained kubeconfig (CA data inline,
# a ServiceAccount token), the shape `istioctl x create-remote-secret` writes into its Secret.
token_kubeconfig() {
  cat <<KC
apiVersion: v1
kind: Config
clusters:
- name: $3
  cluster:
    server: $(server_of "$1")
    certificate-authority-data: $(base64 -w0 "$2/ca.crt")
users:
- name: $3
  user:
    token: $4
contexts:
- name: $3
  context: {cluster: $3, user: $3}
current-context: $3
KC
}
# cluster_secret NAMESPACE NAME LABEL KEY KUBECONFIG_FILE: the Secret (JSON) with one data key.
cluster_secret() {
  python3 - "$@" <<'PY'
import json, sys
ns, name, label, key, path = sys.argv[1:]
k, v = label.split("=", 1)
print(json.dumps({"apiVersion": "v1", "kind": "Secret",
                  "metadata": {"name": name, "namespace": ns, "labels": {k: v}},
                  "stringData": {key: open(path).read()}}))
PY
}
crd_established() {
  [ "$(kubectl --kubeconfig "$1" get crd "$2" -o jsonpath='{.status.conditions[?(@.type=="Established")].status}')" = True ]
}
# rollout-guard's own RBAC (manifests/) in a cluster; the GitOps writer as Argo CD has it.
base_rbac() {
  kubectl --kubeconfig "$1" apply -f manifests/namespace.yaml -f manifests/serviceaccount.yaml -f manifests/clusterrole.yaml \
    -f manifests/clusterrolebinding.yaml >/dev/null || die "cannot apply rollout-guard's RBAC manifests"
  kubectl --kubeconfig "$1" create namespace argocd >/dev/null \
    && kubectl --kubeconfig "$1" create serviceaccount argocd-application-controller -n argocd >/dev/null \
    && kubectl --kubeconfig "$1" create clusterrolebinding e2e-argocd --clusterrole=cluster-admin \
      --serviceaccount=argocd:argocd-application-controller >/dev/null \
    && kubectl --kubeconfig "$1" create namespace shop >/dev/null \
    || die "cannot create the GitOps identity and namespace shop"
}

# P: Istio 1.30.3's CRDs (full schemas), the primary writer of Argo Rollouts' docs, rollout-guard.
for f in tests/e2e/crds-upstream/istio-*.yaml; do
  kp apply --server-side -f "$f" >/dev/null || die "cannot install the CRD in $f (P)"
done
for crd in virtualservices.networking.istio.io destinationrules.networking.istio.io; do
  poll "$T" crd_established "$KP" "$crd" || die "CRD $crd not established in P after ${T}s"
done
kp create namespace argo-rollouts >/dev/null && kp create serviceaccount argo-rollouts-istio-primary -n argo-rollouts >/dev/null \
  || die "cannot create the primary writer's ServiceAccount in P"
kp apply -f - >/dev/null <<'YAML' || die "cannot create the primary writer's ClusterRole in P"
# Argo Rollouts' docs, "Multicluster Setup", steps 2 and 3.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: argo-rollouts-istio-primary
rules:
- apiGroups: [networking.istio.io]
  resources: [virtualservices, destinationrules]
  verbs: [get, list, watch, update, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: argo-rollouts-istio-primary
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: argo-rollouts-istio-primary
subjects:
- kind: ServiceAccount
  name: argo-rollouts-istio-primary
  namespace: argo-rollouts
YAML
base_rbac "$KP"
kp apply -f "$MC/primary/secrets-role.yaml" >/dev/null || die "cannot apply $MC/primary/secrets-role.yaml (P)"

AR=$(cd tests/e2e/tools && GOFLAGS=-mod=mod GOTOOLCHAIN=local go mod download github.com/argoproj/argo-rollouts \
  && GOFLAGS=-mod=mod GOTOOLCHAIN=local go list -m -f '{{.Dir}}' github.com/argoproj/argo-rollouts) \
  && [ -d "$AR/manifests/crds" ] || die "cannot find the argo-rollouts module's manifests (go list -m in tests/e2e/tools)"
# P is a pure Istio primary: no Argo Rollouts CRD (rollout-guard before main 40a504b never became
# ready there: its local Rollout feed failed with 404 and was restarted every --relist-deadline).
if [ "$ROLLOUT_CRD_IN_P" = 1 ]; then
  kp apply --server-side -f "$AR/manifests/crds/rollout-crd.yaml" >/dev/null || die "cannot install the Rollout CRD (P)"
  poll "$T" crd_established "$KP" rollouts.argoproj.io || die "CRD rollouts.argoproj.io not established in P after ${T}s"
fi

# R: Argo Rollouts' CRDs, ServiceAccount, config and RBAC (manifests/base, role, cluster-install),
# rollout-guard with the Rollouts-cluster Role and the remote reader.
for f in "$AR"/manifests/crds/*-crd.yaml; do
  kr apply --server-side -f "$f" >/dev/null || die "cannot install the CRD in $f (R)"
done
for crd in rollouts.argoproj.io experiments.argoproj.io analysisruns.argoproj.io analysistemplates.argoproj.io \
  clusteranalysistemplates.argoproj.io; do
  poll "$T" crd_established "$KR" "$crd" || die "CRD $crd not established in R after ${T}s"
done
if [ "$ISTIO_CRDS_IN_R" = 1 ]; then  # not needed by the controller; a variant (see the header)
  for f in tests/e2e/crds-upstream/istio-*.yaml; do kr apply --server-side -f "$f" >/dev/null || die "cannot install $f (R)"; done
  poll "$T" crd_established "$KR" virtualservices.networking.istio.io || die "Istio's CRDs not established in R"
fi
kr create namespace argo-rollouts >/dev/null || die "cannot create namespace argo-rollouts (R)"
for f in base/argo-rollouts-sa.yaml base/argo-rollouts-config.yaml base/argo-rollouts-notification-secret.yaml \
  role/argo-rollouts-clusterrole.yaml cluster-install/argo-rollouts-clusterrolebinding.yaml; do
  kr apply -n argo-rollouts -f "$AR/manifests/$f" >/dev/null || die "cannot apply $AR/manifests/$f (R)"
done
base_rbac "$KR"
kr apply -f "$MC/rollouts-cluster/secrets-role.yaml" -f "$MC/rollouts-cluster/remote-reader.yaml" >/dev/null \
  || die "cannot apply $MC/rollouts-cluster/{secrets-role,remote-reader}.yaml (R)"

# The two Secrets: in R the one Argo Rollouts reads (P as the primary writer), in P the one G_P reads
# (R as the remote reader). Tokens from the TokenRequest API (real ServiceAccount tokens: the API
# server authenticates them and RBAC applies to the ServiceAccount).
PRIMARY_TOKEN=$(kp create token argo-rollouts-istio-primary -n argo-rollouts --duration 4h) || die "cannot create a token for argo-rollouts-istio-primary (P)"
READER_TOKEN=$(kr create token rollout-guard-remote-reader -n rollout-guard --duration 4h) || die "cannot create a token for the remote reader (R)"
token_kubeconfig "$KP" "$W/kube-p" primary "$PRIMARY_TOKEN" >"$W/primary.kubeconfig"
token_kubeconfig "$KR" "$W/kube-r" east "$READER_TOKEN" >"$W/east.kubeconfig"
PRIMARY_SECRET=$(cluster_secret argo-rollouts istio-remote-secret-primary istio.argoproj.io/primary-cluster=true primary "$W/primary.kubeconfig")
EAST_SECRET=$(cluster_secret rollout-guard rollouts-cluster-east rollout-guard.io/rollouts-cluster=true east "$W/east.kubeconfig")
create_primary_secret() { kr apply -f - <<<"$PRIMARY_SECRET" >/dev/null; }
create_primary_secret || die "cannot create the primary Secret in R"
kp apply -f - <<<"$EAST_SECRET" >/dev/null || die "cannot create the Rollouts-cluster Secret in P"
# What each identity may do, as the API servers see it (the manifests' RBAC and the docs').
can_p() { kp auth can-i "$@" 2>/dev/null; }
can_r() { kr auth can-i "$@" 2>/dev/null; }
rbac_ok() {
  [ "$(can_p patch virtualservices -n shop --as "$PRIMARY_WRITER")" = yes ] && [ "$(can_p create virtualservices -n shop --as "$PRIMARY_WRITER")" = no ] \
    && [ "$(can_r watch rollouts.argoproj.io -n shop --as "$READER")" = yes ] && [ "$(can_r watch services -n shop --as "$READER")" = yes ] \
    && [ "$(can_r update rollouts.argoproj.io -n shop --as "$READER")" = no ] && [ "$(can_r get secrets -n shop --as "$READER")" = no ] \
    && [ "$(can_r watch secrets -n argo-rollouts --as "$GUARD")" = yes ] && [ "$(can_r watch secrets -n shop --as "$GUARD")" = no ] \
    && [ "$(can_p watch secrets -n rollout-guard --as "$GUARD")" = yes ] && [ "$(can_p get secrets -n argo-rollouts --as "$GUARD")" = no ]
}
if rbac_ok; then
  ok "(a) RBAC: P's primary writer may update VirtualServices; R's remote reader only reads Rollouts and Services; rollout-guard reads Secrets only in argo-rollouts (R) and rollout-guard (P)"
else
  fail "(a) RBAC of the primary writer, the remote reader or rollout-guard's Secret Roles is not as the manifests say"
fi

impersonating_kubeconfig "$W/controller.kubeconfig" "$KR" "$CONTROLLER"
impersonating_kubeconfig "$W/gitops-p.kubeconfig" "$KP" "$GITOPS"
impersonating_kubeconfig "$W/guard-p.kubeconfig" "$KP" "$GUARD"
impersonating_kubeconfig "$W/guard-r.kubeconfig" "$KR" "$GUARD"

# The Argo Rollouts controller in R, as its ServiceAccount, leader election off. It reads the
# primary Secret once, at start.
CTRL_METRICS=$(free_port); CTRL_HEALTHZ=$(free_port)
POD_NAMESPACE=argo-rollouts "$TB/rollouts-controller" --kubeconfig "$W/controller.kubeconfig" --leader-elect=false \
  --metricsPort "$CTRL_METRICS" --healthzPort "$CTRL_HEALTHZ" --loglevel info >"$W/controller.log" 2>&1 &
CTRL_PID=$!
PIDS+=("$CTRL_PID")
"$TB/rs-ready" --kubeconfig "$KR" >"$W/rs-ready.log" 2>&1 &
PIDS+=($!)
controller_up() { curl -sf "http://127.0.0.1:$CTRL_HEALTHZ/healthz" >/dev/null && kill -0 "$CTRL_PID"; }
poll "$T" controller_up || { tail -n 30 "$W/controller.log" >&2; die "the controller is not healthy after ${T}s; log: $W/controller.log"; }
poll "$T" grep -q "watching ReplicaSets" "$W/rs-ready.log" || die "rs-ready did not start; log: $W/rs-ready.log"
if poll "$T" grep -q 'Istio primary/config cluster is primary' "$W/controller.log" && poll "$T" grep -q 'Istio detected' "$W/controller.log"; then
  ok "(a) the controller in R took the primary Secret (its log: \"Istio primary/config cluster is primary\", \"Istio detected\" with no Istio CRD in R)"
else
  fail "(a) the controller did not log that it uses the primary cluster and detects Istio there"; grep -i istio "$W/controller.log" | tail -5 | indent
fi
log "controller $("$TB/rollouts-controller" --version 2>/dev/null | head -1) up (pid $CTRL_PID)"

# --- the app: Services and Rollout in R, VirtualService in P --------------------------------------
# As two Argo CD applications would hold it: "shop" (R) and "mesh" (P), marked by tracking-id.
services_yaml() {  # services_yaml APP
  local s
  for s in canary stable; do
    cat <<YAML
---
apiVersion: v1
kind: Service
metadata: {name: $1-$s, namespace: shop}
spec: {selector: {app: $1}, ports: [{name: http, port: 80, targetPort: 8080}]}
YAML
  done
}
# vs_yaml APP ROUTE [TIMEOUT [APPLICATION]]: the VirtualService as Git has it (100/0); APPLICATION "-"
# leaves out the tracking-id.
vs_yaml() {
  local app=$1 route=$2 timeout=${3:-10s} application=${4:-mesh} marker=
  [ "$application" = - ] || marker="  annotations: {argocd.argoproj.io/tracking-id: \"$application:networking.istio.io/VirtualService:shop/$app\"}"
  cat <<YAML
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: $app
  namespace: shop
$marker
spec:
  hosts: [$app]
  http:
  - name: $route
    timeout: $timeout
    route:
    - destination: {host: $app-stable}
      weight: 100
    - destination: {host: $app-canary}
      weight: 0
YAML
}
rollout_yaml() {  # rollout_yaml APP ROUTE [SET_WEIGHT]
  cat <<YAML
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: $1
  namespace: shop
  annotations: {argocd.argoproj.io/tracking-id: "shop:argoproj.io/Rollout:shop/$1"}
spec:
  replicas: 2
  selector: {matchLabels: {app: $1}}
  template:
    metadata: {labels: {app: $1}}
    spec: {containers: [{name: $1, image: nginx:1.25}]}
  strategy:
    canary:
      canaryService: $1-canary
      stableService: $1-stable
      trafficRouting: {istio: {virtualService: {name: $1, routes: [$2]}}}
      steps: [{setWeight: ${3:-20}}, {pause: {}}]
YAML
}
weights() { kp get virtualservice "$1" -n shop -o jsonpath='{.spec.http[0].route[*].weight}'; }
ro_field() { kr get rollout "$1" -n shop -o jsonpath="$2"; }
# ro_state ROLLOUT: phase and step (R), and its VirtualService's http weights (P), in one line.
ro_state() { echo "$(ro_field "$1" '{.status.phase} step={.status.currentStepIndex}') weights=$(weights "$1")"; }
IMAGE_N=25
new_image() {
  IMAGE_N=$((IMAGE_N + 1))
  plugin set image "$1" "$1=nginx:1.$IMAGE_N" -n shop
}
plugin() { "$TB/kubectl-argo-rollouts" --kubeconfig "$KR" "$@"; }
as_gitops_p() { kp --as="$GITOPS" "$@"; }
GIT_T=10
gitops_write() {  # gitops_write HOW [ROUTE [APPLICATION]]: one GitOps write of Git's checkout VirtualService to P
  GIT_T=$((GIT_T + 1))
  vs_yaml checkout "${2:-primary}" "${GIT_T}s" "${3:-mesh}" >"$W/git/vs.yaml"
  case $1 in
    kubectl-csa) as_gitops_p apply -f "$W/git/vs.yaml" ;;
    kubectl-ssa) as_gitops_p apply --server-side --field-manager argocd-controller --force-conflicts -f "$W/git/vs.yaml" ;;
    engine-csa) "$TB/gitops-sync" --kubeconfig "$W/gitops-p.kubeconfig" --namespace shop "$W/git" ;;
    dry-run) as_gitops_p apply --dry-run=server -f "$W/git/vs.yaml" ;;
  esac
}
declare -A HOW_NAME=([kubectl-csa]="kubectl apply (client-side)" [kubectl-ssa]="kubectl apply --server-side --field-manager argocd-controller"
  [engine-csa]="gitops-engine sync (client-side apply)")
# canary C: checkout paused at 80/20 (set image first when it is not).
canary() {
  [ "$(ro_state checkout)" = "Paused step=1 weights=80 20" ] && return 0
  expect_ok "$1 kubectl argo rollouts set image (in R)" "" new_image checkout
  eventually "$1 ... the controller in R sets 80/20 (setWeight 20) in P's VirtualService and pauses" "Paused step=1 weights=80 20" ro_state checkout
}
finish() {  # finish C: promote --full; Healthy at 100/0
  expect_ok "$1 kubectl argo rollouts promote --full" "" plugin promote --full checkout -n shop
  eventually "$1 ... Healthy, 100/0 in P" "Healthy step=2 weights=100 0" ro_state checkout
}

# --- (a) the canary across clusters, no rollout-guard at all -------------------------------------
{ services_yaml checkout; services_yaml pay; } | kr apply -f - >/dev/null || die "cannot apply the Services (R)"
{ vs_yaml checkout primary; echo ---; vs_yaml pay primary; } | as_gitops_p apply -f - >/dev/null || die "cannot apply the VirtualServices (P)"
expect_ok "(a) no rollout-guard anywhere: the Rollout checkout is created in R (VirtualService checkout only in P)" "" \
  kr apply -f <(rollout_yaml checkout primary)
eventually "(a) ... the controller brings the first revision up: Healthy, P's VirtualService at 100/0" "Healthy step=2 weights=100 0" ro_state checkout
expect_ok "(a) kubectl argo rollouts set image (in R)" "" new_image checkout
eventually "(a) ... the controller in R writes 80/20 (setWeight 20) into P's VirtualService and pauses at step 1/2" \
  "Paused step=1 weights=80 20" ro_state checkout
last_manager() {  # last_manager KUBECTL_FN KIND NAME: the newest managedFields entry's manager and its operation
  "$1" get "$2" "$3" -n shop -o jsonpath='{range .metadata.managedFields[*]}{.time} {.manager} {.operation}{"\n"}{end}' | sort | tail -1 | cut -d' ' -f2-
}
note "(a) P's VirtualService checkout was last written by: $(last_manager kp virtualservice checkout) (the controller's client, authenticated in P as $PRIMARY_WRITER)"
expect_ok "(a) kubectl argo rollouts promote" "" plugin promote checkout -n shop
eventually "(a) ... Healthy, the new revision stable, 100/0 in P" "Healthy step=2 weights=100 0" ro_state checkout

# --- rollout-guard: G_P in P, G_R in R ---------------------------------------------------------------
"$BIN" dev-certs --out "$W/certs" >/dev/null || die "cannot generate certificates"
GP_PORT=$(free_port); GP_ADMIN=$(free_port); GR_PORT=$(free_port); GR_ADMIN=$(free_port)
start_gp() {  # G_P: the primary's rollout-guard, as its ServiceAccount in P
  KUBECONFIG=$W/guard-p.kubeconfig RUST_LOG=${RUST_LOG:-info} "$BIN" serve --source kube \
    --rollouts-cluster-secrets rollout-guard --stale-after "${STALE_AFTER}s" \
    --listen "127.0.0.1:$GP_PORT" --admin-listen "127.0.0.1:$GP_ADMIN" \
    --tls-cert "$W/certs/tls.crt" --tls-key "$W/certs/tls.key" --request-log all >>"$W/guard-p.log" 2>&1 &
  GP_PID=$!
}
gp_ready() { curl -sf "http://127.0.0.1:$GP_ADMIN/readyz"; }
start_gr() {  # G_R: the Rollouts cluster's rollout-guard, as its ServiceAccount in R
  KUBECONFIG=$W/guard-r.kubeconfig RUST_LOG=${RUST_LOG:-info} "$BIN" serve --source kube \
    --istio-primary-secrets argo-rollouts \
    --listen "127.0.0.1:$GR_PORT" --admin-listen "127.0.0.1:$GR_ADMIN" \
    --tls-cert "$W/certs/tls.crt" --tls-key "$W/certs/tls.key" --request-log all >>"$W/guard-r.log" 2>&1 &
  GR_PID=$!
  poll "$T" curl -sf "http://127.0.0.1:$GR_ADMIN/readyz" || { tail -n 20 "$W/guard-r.log" >&2; die "G_R not ready after ${T}s; see $W/guard-r.log"; }
}
metric_p() { curl -s "http://127.0.0.1:$GP_ADMIN/metrics" | awk -v m="$1" '$1==m {print $2}'; }
metric_r() { curl -s "http://127.0.0.1:$GR_ADMIN/metrics" | awk -v m="$1" '$1==m {print $2}'; }
ready_p() { metric_p "rollout_guard_cluster_ready{cluster=\"$1\"}"; }
ready_r() { metric_r "rollout_guard_cluster_ready{cluster=\"$1\"}"; }
index_p() { metric_p "rollout_guard_index_objects{kind=\"$1\"}"; }
index_r() { metric_r "rollout_guard_index_objects{kind=\"$1\"}"; }
count() { "$1" get "$2" -A --no-headers 2>/dev/null | wc -l | tr -d ' '; }
start_gp
# Bounded by 30 s: three --relist-deadline restarts of a feed that cannot list.
if poll 30 gp_ready; then
  ok "(a) G_P ready (/readyz 200) in P$( [ "$ROLLOUT_CRD_IN_P" = 1 ] && echo ", Rollout CRD installed" || echo ", which has no Rollout CRD (a pure Istio primary)")"
elif [ "$ROLLOUT_CRD_IN_P" = 1 ]; then
  tail -n 20 "$W/guard-p.log" >&2; die "G_P not ready after 30 s; see $W/guard-p.log"
else
  fail "(a) G_P ready in P, which has no Rollout CRD (a pure Istio primary): /readyz $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$GP_ADMIN/readyz") after 30 s; its log: $(grep -m1 -o 'cannot tell whether Rollouts are served.*' "$W/guard-p.log" | cut -c1-200); $(grep -c 'feed restarted feed=Rollout/\*' "$W/guard-p.log") restarts of feed Rollout/*. The Rollout CRD is installed in P for the other cases"
  kp apply --server-side -f "$AR/manifests/crds/rollout-crd.yaml" >/dev/null || die "cannot install the Rollout CRD (P)"
  poll "$T" gp_ready || { tail -n 20 "$W/guard-p.log" >&2; die "G_P not ready ${T}s after the Rollout CRD was installed in P; see $W/guard-p.log"; }
fi
start_gr
ok "(a) G_R ready (/readyz 200) in R$( [ "$ISTIO_CRDS_IN_R" = 1 ] && echo ", Istio CRDs installed" || echo ", which has no Istio CRD")"
# Caught up: each index holds what the clusters hold (G_P: P's VirtualServices and R's Rollouts;
# G_R: R's Rollouts and P's VirtualServices), and every cluster is ready.
gp_caught_up() {
  [ "$(ready_p local)" = 1 ] && [ "$(ready_p east)" = 1 ] && [ "$(index_p VirtualService)" = "$(count kp virtualservices)" ] \
    && [ "$(index_p Rollout)" = "$(count kr rollouts)" ]
}
gr_caught_up() {
  [ "$(ready_r local)" = 1 ] && [ "$(ready_r primary)" = 1 ] && [ "$(index_r VirtualService)" = "$(count kp virtualservices)" ] \
    && [ "$(index_r Rollout)" = "$(count kr rollouts)" ]
}
index_line() {  # index_line FN: the cluster_ready and index gauges of one server, in one line
  curl -s "http://127.0.0.1:$1/metrics" | awk '/^rollout_guard_(cluster_ready|index_objects|state_stale|state_broken_seconds)/ { printf "%s%s %s", sep, $1, $2; sep = ", " }'
}
if poll "$T" gp_caught_up; then
  ok "(a) G_P (--rollouts-cluster-secrets rollout-guard) indexes P's VirtualServices and R's Rollouts, cluster_ready{cluster=\"east\"} 1"
else
  fail "(a) G_P did not catch up: $(index_line "$GP_ADMIN") (P has $(count kp virtualservices) VirtualServices, R $(count kr rollouts) Rollouts)"
fi
if poll "$T" gr_caught_up; then
  ok "(a) G_R (--istio-primary-secrets argo-rollouts) indexes R's Rollouts and P's VirtualServices, cluster_ready{cluster=\"primary\"} 1"
else
  fail "(a) G_R did not catch up: $(index_line "$GR_ADMIN") (P has $(count kp virtualservices) VirtualServices, R $(count kr rollouts) Rollouts)"
fi

# keep_entries FILE NAME...: only the webhook entries NAME.* of a rendered configuration.
keep_entries() {
  python3 - "$@" <<'PY'
import sys, yaml
path, keep = sys.argv[1], sys.argv[2:]
doc = yaml.safe_load(open(path))
doc["webhooks"] = [w for w in doc["webhooks"] if w["name"].split(".")[0] in keep]
yaml.safe_dump(doc, open(path, "w"), sort_keys=False)
PY
}
render_webhooks() {  # render_webhooks DIR PORT [flags]: by URL, namespace names kept, matchConditions
  local dir=$1 port=$2
  shift 2
  scripts/render-webhooks.sh --ca "$W/certs/ca.crt" --out "$dir" --url "https://127.0.0.1:$port" \
    --keep-namespace-names --match-conditions "$@" >/dev/null
}
# P: VirtualServices and DestinationRules, the controller's identities exempt (as manifests/multicluster/primary).
render_webhooks "$W/rendered-p" "$GP_PORT" --exempt-user "$CONTROLLER" --exempt-user "$PRIMARY_WRITER" \
  && keep_entries "$W/rendered-p/validatingwebhookconfiguration.yaml" virtualservices destinationrules \
  && keep_entries "$W/rendered-p/mutatingwebhookconfiguration.yaml" virtualservices destinationrules \
  || die "cannot render P's webhook configurations"
# R: Rollouts and Services (as manifests/multicluster/rollouts-cluster).
render_webhooks "$W/rendered-r" "$GR_PORT" --exempt-user "$CONTROLLER" \
  && keep_entries "$W/rendered-r/validatingwebhookconfiguration.yaml" rollouts services \
  && keep_entries "$W/rendered-r/mutatingwebhookconfiguration.yaml" services \
  || die "cannot render R's webhook configurations"
kp apply -f "$W/rendered-p" >/dev/null || die "cannot register G_P in P"
kr apply -f "$W/rendered-r" >/dev/null || die "cannot register G_R in R"
# The API server calls a webhook once its informer has the configuration: poll for a refusal by a
# rule that needs no other object (Istio's SNI rule in P, setWeight's range in R).
sni_refused() { ! kp apply --dry-run=server -f tests/e2e/manifests/seed-sni.yaml; }
weight_refused() { ! kr apply --dry-run=server -f <(rollout_yaml probe primary 200); }
poll "$T" sni_refused || die "G_P's webhooks never became active in P"
poll "$T" weight_refused || die "G_R's webhooks never became active in R"

# --- recorders: every stored version of P's VirtualService ---------------------------------------
REC_N=0
# krec NAME JSONPATH: `kubectl get --watch` on P's VirtualService NAME (a list, then a watch from its
# resourceVersion, so no version is missed), "RESOURCE_VERSION FIELDS" per version; sets KREC, KREC_PID.
krec() {
  REC_N=$((REC_N + 1))
  KREC=$W/rec/$1.$REC_N
  # kubectl itself in the background (not the kp function, whose subshell TERM would not stop it).
  kubectl --kubeconfig "$KP" get virtualservice "$1" -n shop --watch -o jsonpath="{.metadata.resourceVersion} $2{\"\\n\"}" >"$KREC" 2>"$KREC.err" &
  KREC_PID=$!
  PIDS+=("$KREC_PID")
  poll "$T" test -s "$KREC" || die "kubectl get --watch did not start: $(cat "$KREC.err")"
}
current_rv() { kp get virtualservice "$1" -n shop -o jsonpath='{.metadata.resourceVersion}'; }
krec_has() { awk -v rv="$2" '$1 == rv { found = 1 } END { exit !found }' "$1"; }
krec_versions() { awk 'END { print NR - 1 }' "$1"; }
krec_changed() { awk '{ $1 = ""; if (NR == 1) first = $0; else if ($0 != first) n++ } END { print n + 0 }' "$1"; }
krec_first() { awk 'NR == 1 { $1 = ""; sub(/^ /, ""); print; exit }' "$1"; }
krec_wait() {  # krec_wait FILE NAME: the recording holds the object's current version; stop the recorder
  local rv
  rv=$(current_rv "$2")
  poll "$T" krec_has "$1" "$rv" || { stop_pid "$KREC_PID"; return 1; }
  stop_pid "$KREC_PID"
  return 0
}
VS_WEIGHTS='{.spec.http[0].name}:{.spec.http[0].route[*].weight}'
# guarded NAME HOW: Git's 100/0 re-applied to P by the GitOps identity mid-canary; every version it
# stored must equal the one before it (the controller's).
guarded() {
  local name=$1 how=$2 n changed
  krec checkout "$VS_WEIGHTS"
  if ! gitops_write "$how" >"$W/out/last" 2>&1; then
    fail "$name: the write failed"; indent "$W/out/last"; stop_pid "$KREC_PID"; return 1
  fi
  if ! krec_wait "$KREC" checkout; then
    fail "$name: the watch never saw version $(current_rv checkout)"; return 1
  fi
  n=$(krec_versions "$KREC"); changed=$(krec_changed "$KREC")
  if [ "$n" -lt 1 ]; then
    fail "$name: no new version was stored (the write changed nothing)"; indent "$KREC"
  elif [ "$changed" -ne 0 ]; then
    fail "$name: expected every stored version as the controller had it ($(krec_first "$KREC")), found $changed other(s)"; indent "$KREC"
  else
    ok "$name: 0 of $n stored version(s) differ from the controller's ($(krec_first "$KREC"))"
  fi
}

# --- (b) a GitOps re-apply in P mid-canary keeps the weights the controller in R set -------------
if want b; then
  canary "(b)"
  for how in kubectl-csa kubectl-ssa engine-csa; do
    guarded "(b) G_P guards P's VirtualService: ${HOW_NAME[$how]} of Git's 100/0 as the GitOps identity in P" "$how"
  done
  expect_ok "(b) ... and kubectl prints G_P's warning to the GitOps writer" \
    'Warning: rollout-guard: kept weights stable=80 canary=20 on VirtualService shop/checkout route "primary"' \
    gitops_write kubectl-csa
  note "(b) the warning: $(grep -o 'Warning: .*' "$W/out/last" | head -1 | cut -c1-300)"
  exempt_requests() { grep -F " admission " "$W/guard-p.log" | grep -cF "user=$PRIMARY_WRITER "; }
  if [ "$(exempt_requests)" = 0 ]; then
    ok "(b) with matchConditions no admission request from $PRIMARY_WRITER (the controller's writes in P) reached G_P (its log, by user)"
  else
    fail "(b) expected no admission request from $PRIMARY_WRITER in G_P's log, found $(exempt_requests)"
  fi
fi

# --- (c) G_R validates a Rollout in R against P's VirtualService ---------------------------------
if want c; then
  expect_fail "(c) a new Rollout in R naming route \"primry\" that P's VirtualService pay lacks is refused by G_R, naming the route" \
    'http-route-not-found.*expected an http route named "primry" in VirtualService shop/pay' kr apply -f <(rollout_yaml pay primry)
  if ! grep -q 'its http routes are \["primary"\]' "$W/out/last"; then
    fail "(c) the refusal does not list P's routes ([\"primary\"])"; indent "$W/out/last"
  else
    ok "(c) ... the refusal lists the routes P's VirtualService has ([\"primary\"]): $(grep -o '\[http-route-not-found\].*' "$W/out/last" | head -1 | cut -c1-300)"
  fi
  expect_ok "(c) the Rollout naming route \"primary\" is accepted by G_R" "" kr apply -f <(rollout_yaml pay primary)
  eventually "(c) ... and the controller makes it Healthy, P's VirtualService pay at 100/0" "Healthy step=2 weights=100 0" ro_state pay
fi

# --- (d) a breaking VirtualService change in P is refused by G_P ---------------------------------
if want d; then
  canary "(d)"
  poll "$T" gp_caught_up || fail "(d) G_P's index is not caught up: $(index_line "$GP_ADMIN")"
  expect_fail "(d) renaming P's managed route primary to main (Argo CD application mesh; the Rollout in R belongs to shop) is refused by G_P: breaks-rollout naming the Rollout" \
    'breaks-rollout.*Rollout shop/checkout' gitops_write kubectl-csa main mesh
  note "(d) G_P's denial: $(grep -o '\[breaks-rollout\].*' "$W/out/last" | head -1 | cut -c1-400)"
  expect_ok "(d) the same rename without the application marker (maybe half of a coordinated change) is allowed with a breaks-rollout warning (server-side dry run)" \
    'Warning: .*breaks-rollout' gitops_write dry-run main -
  eventually "(d) ... nothing changed: the canary still at 80/20 on route primary" "primary:80 20" \
    kp get virtualservice checkout -n shop -o jsonpath="$VS_WEIGHTS"
fi

# --- (e) the primary Secret removed and re-created at run time ------------------------------------
if want e; then
  vs_in_p=$(count kp virtualservices)
  poll "$T" gr_caught_up || fail "(e) G_R's index is not caught up before the removal: $(index_line "$GR_ADMIN")"
  kr delete secret istio-remote-secret-primary -n argo-rollouts >/dev/null || fail "(e) cannot delete the primary Secret"
  dropped() { [ "$(index_r VirtualService)" = 0 ] && { [ -z "$(ready_r primary)" ] || [ "$(ready_r primary)" = 0 ]; }; }
  if poll "$T" dropped; then
    ok "(e) primary Secret deleted in R: G_R's index drops P's $vs_in_p VirtualServices (index_objects{kind=\"VirtualService\"} 0), cluster_ready{cluster=\"primary\"} $( [ -z "$(ready_r primary)" ] && echo gone || echo 0)"
  else
    fail "(e) after deleting the primary Secret: $(index_line "$GR_ADMIN")"
  fi
  note "(e) meanwhile G_R ($( [ "$ISTIO_CRDS_IN_R" = 1 ] && echo "Istio CRDs in R" || echo "no Istio CRD in R")): $(index_line "$GR_ADMIN"); /readyz $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$GR_ADMIN/readyz")"
  kr apply --dry-run=server -f <(rollout_yaml pay2 primry) >"$W/out/last" 2>&1; rc=$?
  note "(e) meanwhile a new Rollout naming route primry (server-side dry run): exit $rc: $(grep -v '^rollout.argoproj.io' "$W/out/last" | tr '\n' ' ' | cut -c1-300)"
  create_primary_secret || fail "(e) cannot create the primary Secret again"
  if poll "$T" gr_caught_up; then
    ok "(e) ... created again: G_R indexes P's $(index_r VirtualService) VirtualServices, cluster_ready{cluster=\"primary\"} 1"
  else
    fail "(e) after re-creating the primary Secret: $(index_line "$GR_ADMIN")"
  fi
  expect_fail "(e) ... and G_R refuses a Rollout naming a route P's VirtualService lacks again (server-side dry run)" \
    'expected an http route named "primry" in VirtualService shop/pay' \
    kr apply --dry-run=server -f <(rollout_yaml pay primry | sed 's/^  name: pay$/  name: pay2/')
fi

# --- (f) R cut off from G_P, then back ---------------------------------------------------------------
if want f; then
  C="(f)"
  canary "$C"
  poll "$T" gp_caught_up || fail "$C G_P's index is not caught up before the outage: $(index_line "$GP_ADMIN")"
  # Cut off at once, as a network partition or a crash would: R's API server SIGKILLed (its etcd
  # keeps running; kube-up.sh starts the server again on the same ports and data).
  kill -KILL "$(cat "$W/kube-r/apiserver.pid")" || fail "$C cannot kill R's API server"
  down_at=$(now)
  east_down() { [ "$(ready_p east)" = 0 ]; }
  stale_p() { [ "$(metric_p rollout_guard_state_stale)" = 1 ]; }
  if poll "$T" east_down; then
    east_down_at=$(now)
    ok "$C R's API server killed: G_P's cluster_ready{cluster=\"east\"} 0 after $(since "$down_at") s"
  else
    east_down_at=$(now)
    fail "$C R's API server killed: cluster_ready{cluster=\"east\"} is '$(ready_p east)' after ${T}s"
  fi
  if poll "$T" stale_p; then
    ok "$C ... rollout_guard_state_stale 1 after $(since "$down_at") s ($(since "$east_down_at") s after cluster_ready 0; --stale-after ${STALE_AFTER}s); cluster_ready{cluster=\"local\"} $(ready_p local)"
  else
    fail "$C rollout_guard_state_stale is '$(metric_p rollout_guard_state_stale)' ${T}s after R went away"
  fi
  note "$C G_P /readyz while R is away: $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$GP_ADMIN/readyz")"
  # A breaking change is no longer denied (the Rollout in R cannot be read): a warning (dry run).
  expect_ok "$C ... the rename (d) refused is allowed with a warning while stale (server-side dry run)" \
    'Warning: ' gitops_write dry-run main mesh
  note "$C its warnings: $(grep -o 'Warning: .*' "$W/out/last" | tr '\n' ' ' | cut -c1-400)"
  # Git's 100/0 re-applied while stale: not denied; record what is stored and what the controller
  # (which still reaches P, and not its own API server) does.
  krec checkout "$VS_WEIGHTS"
  if gitops_write kubectl-csa >"$W/out/last" 2>&1; then
    ok "$C ... a GitOps re-apply of Git's 100/0 while stale is not denied"
    cp "$W/out/last" "$W/out/stale-write"
    expect_ok "$C ... G_P tells the writer it restored nothing because the state is stale" 'Warning: .*stale' cat "$W/out/stale-write"
    note "$C its warnings: $(grep -o 'Warning: .*' "$W/out/stale-write" | tr '\n' ' ' | cut -c1-400)"
  else
    fail "$C a GitOps re-apply while stale was refused"; indent "$W/out/last"
  fi
  # What was stored, and whether the controller (which still reaches P, but not its own API server)
  # puts its weights back: wait until the write's version is recorded, then, if it stored 100/0,
  # for a later version at 80/20 (up to 15 s).
  wrote=$(current_rv checkout)
  poll "$T" krec_has "$KREC" "$wrote" || fail "$C the watch never saw version $wrote"
  stale_stored() { tail -n +2 "$KREC" | grep -q ':100 0$'; }
  corrected() { awk 'NR > 1 && / primary:100 0$/ { s = 1 } s && / primary:80 20$/ { f = 1 } END { exit !f }' "$KREC"; }
  if stale_stored; then poll 15 corrected; fi
  stop_pid "$KREC_PID"
  if ! stale_stored; then outcome="no version at 100/0 was stored"
  elif corrected; then outcome="100/0 was stored, and the controller put 80/20 back without its own API server (last writer: $(last_manager kp virtualservice checkout))"
  else outcome="100/0 was stored and stayed for 15 s (the controller did not correct it while R was away)"; fi
  note "$C stored versions of P's VirtualService (resourceVersion route:weights) from the re-apply on: $(tail -n +2 "$KREC" | tr '\n' ';') — $outcome"
  scripts/kube-up.sh --version 1.34 --run-dir "$W/kube-r" >/dev/null 2>"$W/out/kube-up.err" || { cat "$W/out/kube-up.err" >&2; die "R's API server did not come back"; }
  ready_at=$SECONDS; away=$(since "$down_at")
  east_back() { [ "$(ready_p east)" = 1 ] && [ "$(metric_p rollout_guard_state_stale)" = 0 ]; }
  if poll "$RETURN_BOUND" east_back; then
    ok "$C R back: cluster_ready{cluster=\"east\"} 1 and state_stale 0 within ${RETURN_BOUND} s of its API server being ready (took $((SECONDS - ready_at)) s; R was away ${away} s)"
  else
    fail "$C R back: within ${RETURN_BOUND} s cluster_ready{cluster=\"east\"} is '$(ready_p east)', state_stale '$(metric_p rollout_guard_state_stale)'"
    grep -i 'east\|feed' "$W/guard-p.log" | tail -8 | indent
  fi
  # The controller, reconnected to R, keeps or puts back its 80/20.
  eventually "$C ... the canary is at 80/20 again" "Paused step=1 weights=80 20" ro_state checkout
  poll "$T" gp_caught_up || fail "$C G_P's index did not catch up after R came back: $(index_line "$GP_ADMIN")"
  guarded "$C ... and guarded again: kubectl apply of Git's 100/0" kubectl-csa
  finish "$C"
fi

# --- summary -----------------------------------------------------------------------------------------
note "G_R at the end: $(index_line "$GR_ADMIN")"
note "G_P at the end: $(index_line "$GP_ADMIN")"
for pid in "$GP_PID" "$GR_PID"; do
  kill -0 "$pid" 2>/dev/null || fail "rollout-guard (pid $pid) exited during the run; see $W/guard-*.log"
done
log "took $((SECONDS - START)) s"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
