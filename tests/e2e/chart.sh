#!/usr/bin/env bash
# The Helm chart (charts/rollout-guard) and `serve --certificates self`, end to end, with real
# helm v3.22.0 (tests/e2e/tools/helm) against kube-apiserver v1.34.1 + etcd 3.6.4 on 127.0.0.1
# (scripts/kube-up.sh --version 1.34; no kubelet, no controllers):
#
#   (a) helm lint, for the default values and for each certificate mode with every option on
#   (b) the chart renders the objects of manifests/ (tests/e2e/chart/manifests-values.yaml), and
#       with multicluster.role=rollouts|primary those of manifests/ with the kustomize Component
#       manifests/multicluster/rollouts-cluster|primary (kubectl kustomize); role none changes nothing
#   (c) rendering rules: matchConditions from .Capabilities.KubeVersion, no caBundle in self
#       mode, caBundle from the value in provided mode, clear errors for bad values, each
#       multicluster role's entries, flags and Secret RBAC
#   (d) helm template for each certificate mode and each multicluster role, validated by the API server
#       (kubectl apply --dry-run=server), with cert-manager's and prometheus-operator's CRDs
#   (e) helm install (self mode, monitoring on, webhooks by URL) and the chart's RBAC as the
#       chart's ServiceAccount sees it
#   (f) two rollout-guard replicas out of cluster as that ServiceAccount: the first creates the
#       Secret, the other adopts it; the CA is injected into the installed configurations and
#       the API server calls rollout-guard with it (a dry-run apply gets its denial)
#   (g) helm upgrade: values change, rollout-guard's caBundle stays
#   (h) a forced renewal (--cert-validity 30s) under a loop of requests: none fails, the served
#       serial (openssl s_client) changes; with a configuration deleted (break-glass) renewals go
#       on, and once helm upgrade recreates it the CA is injected again
#   (j) Argo CD's syncs of the chart's webhook configurations (gitops-engine, client-side and
#       server-side apply as argocd-controller) keep the injected caBundle, and
#       `kubectl diff --server-side` of them shows no difference (README.md "With Argo CD"); Argo
#       CD's own diff (argocd-diff, Argo CD v3.2.0's util/argo/diff): its Legacy diff without
#       ignoreDifferences (what it shows is recorded), with README.md's ignoreDifferences entry (in
#       sync), and its ServerSideDiff (in sync)
#   (i) uninstall in the documented order: webhook configurations first, then helm uninstall
#
#   tests/e2e/chart.sh     ROLLOUT_GUARD_BIN (default target/debug/rollout-guard; cargo build first)
#   E2E_CHART_TIMEOUT      seconds any one wait may take (default 90)
#
# Prints one line per case and "N passed, N failed"; exits non-zero on a failure.
# Working files and logs: .e2e-chart/ (rg-1.log, rg-2.log, kube/*.log, rendered/).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BIN=${ROLLOUT_GUARD_BIN:-$ROOT/target/debug/rollout-guard}
W=$ROOT/.e2e-chart
T=${E2E_CHART_TIMEOUT:-90}
CHART=charts/rollout-guard
NS=rollout-guard
SA=system:serviceaccount:$NS:rollout-guard
PASSED=0
FAILED=0
PIDS=()

die() { echo "e2e-chart: error: $*" >&2; exit 1; }
log() { echo "e2e-chart: $*" >&2; }
ok() { PASSED=$((PASSED + 1)); echo "ok   - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $*"; }
indent() { sed 's/^/       /' "$@"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# poll SECONDS CMD...: runs CMD every 0.2 s until it succeeds; false after SECONDS.
poll() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
}
# check NAME CMD...: one case, passed when CMD succeeds; its output is shown on failure.
check() {
  local name=$1
  shift
  if "$@" >"$W/out/last" 2>&1; then ok "$name"; else fail "$name"; indent "$W/out/last"; fi
}

[ -x "$BIN" ] || die "no binary at $BIN (cargo build first)"
command -v kubectl >/dev/null || die "kubectl is required"
command -v openssl >/dev/null || die "openssl is required"
python3 -c 'import yaml' 2>/dev/null || die "python3 with PyYAML is required (apt-get install python3-yaml)"
rm -rf "$W"
mkdir -p "$W/out" "$W/rendered"

TB=$(scripts/build-e2e-tools.sh kube-apiserver etcd helm gitops-sync argocd-diff) || die "building the test tools failed (see above)"
HELM=$TB/helm
helm() { "$HELM" "$@"; }
# render MODE [helm flags]: the chart in namespace $NS with every optional object on.
render() {
  local mode=$1
  shift
  helm template rollout-guard "$CHART" -n "$NS" --kube-version 1.34.1 --set certificates.mode="$mode" \
    --set metrics.serviceMonitor.enabled=true --set metrics.prometheusRule.enabled=true \
    --set metrics.dashboard.enabled=true "$@"
}
MODES=(cert-manager self provided)

# --- (a) lint ---------------------------------------------------------------------------------
check "(a) helm lint, default values" helm lint --strict "$CHART"
for mode in "${MODES[@]}"; do
  check "(a) helm lint, certificates.mode=$mode with ServiceMonitor, PrometheusRule and dashboard" \
    helm lint --strict "$CHART" --set certificates.mode="$mode" --set metrics.serviceMonitor.enabled=true \
    --set metrics.prometheusRule.enabled=true --set metrics.dashboard.enabled=true
done

# --- (b) manifests/ is what the chart renders -------------------------------------------------
for mode in provided cert-manager; do
  extra=
  [ $mode = cert-manager ] && extra=--cert-manager
  check "(b) manifests/$([ $mode = cert-manager ] && echo ' + manifests/cert-manager') equal the chart (certificates.mode=$mode)" \
    bash -c "'$HELM' template rollout-guard '$CHART' -n '$NS' -f tests/e2e/chart/manifests-values.yaml \
      --set certificates.mode=$mode | python3 tests/e2e/chart/compare-manifests.py '$ROOT' $extra"
done

# multicluster.role rollouts / primary: the chart renders manifests/ with the kustomize Component
# manifests/multicluster/<role> (kubectl kustomize of an overlay of both, compared as data).
kustomized() {  # kustomized COMPONENT: kubectl kustomize of manifests/ with that Component
  local dir=$W/overlay-${1//\//-}
  mkdir -p "$dir"
  printf 'resources: [../../manifests]\ncomponents: [../../manifests/%s]\n' "$1" >"$dir/kustomization.yaml"
  kubectl kustomize "$dir"
}
for role in rollouts primary; do
  component=multicluster/$([ $role = rollouts ] && echo rollouts-cluster || echo primary)
  if kustomized "$component" >"$W/rendered/kustomize-$role.yaml" 2>"$W/out/last"; then
    check "(b) manifests/ + manifests/$component equal the chart (multicluster.role=$role, matchConditions on)" \
      bash -c "'$HELM' template rollout-guard '$CHART' -n '$NS' -f tests/e2e/chart/manifests-values.yaml \
        --set certificates.mode=provided --set multicluster.role=$role --set webhooks.matchConditions=true \
        | python3 tests/e2e/chart/compare-manifests.py '$ROOT' --expected '$W/rendered/kustomize-$role.yaml'"
  else
    fail "(b) kubectl kustomize of manifests/ with manifests/$component failed"; indent "$W/out/last"
  fi
done
check "(b) multicluster.role=none (the default) renders exactly what no multicluster value does" \
  bash -c "diff <('$HELM' template rollout-guard '$CHART' -n '$NS' --kube-version 1.34.1) \
    <('$HELM' template rollout-guard '$CHART' -n '$NS' --kube-version 1.34.1 --set multicluster.role=none \
      --set multicluster.secretNamespace=x --set multicluster.primaryWriter=y --set multicluster.remoteReader.create=false)"

# --- (c) rendering rules ----------------------------------------------------------------------
count_in() { grep -c -- "$1" || true; }
mc_134=$(render self | count_in 'matchConditions:')
mc_127=$(render self --kube-version 1.27.0 | count_in 'matchConditions:')
mc_off=$(render self --set webhooks.matchConditions=false | count_in 'matchConditions:')
mc_on=$(render self --kube-version 1.27.0 --set webhooks.matchConditions=true | count_in 'matchConditions:')
if [ "$mc_134" = 7 ] && [ "$mc_127" = 0 ] && [ "$mc_off" = 0 ] && [ "$mc_on" = 7 ]; then
  ok "(c) matchConditions on all 7 entries from Kubernetes 1.28 (auto), none on 1.27, forced by true/false"
else
  fail "(c) matchConditions: 1.34 auto $mc_134, 1.27 auto $mc_127, false $mc_off, true on 1.27 $mc_on (expected 7 0 0 7)"
fi
check "(c) exempt groups become a second matchCondition" \
  bash -c "'$HELM' template x '$CHART' -n '$NS' --kube-version 1.34.1 --set 'exemptGroups={ci:deployers}' \
    | grep -c \"g in \\['ci:deployers'\\]\" | grep -qx 7"
render self >"$W/rendered/self.yaml"
check "(c) self mode renders no caBundle, no Secret volume, and the self flags" \
  bash -c "! grep -q 'caBundle:' '$W/rendered/self.yaml' && ! grep -q 'secretName: rollout-guard-tls' '$W/rendered/self.yaml' \
    && grep -q -- '--certificates' '$W/rendered/self.yaml'"
check "(c) provided mode renders the caBundle value into all 7 entries" \
  bash -c "'$HELM' template x '$CHART' -n '$NS' --set certificates.mode=provided --set certificates.caBundle=Q0E= \
    | grep -c 'caBundle: Q0E=' | grep -qx 7"
# multicluster: which entries, which flags, which RBAC each role renders.
entries_of() { python3 -c '
import sys, yaml
for d in yaml.safe_load_all(sys.stdin):
    if d and d["kind"].endswith("WebhookConfiguration"):
        print(d["kind"][0] + ":" + ",".join(w["name"].split(".")[0] for w in d["webhooks"]))'; }
roles_ok() {
  local r p pa all
  r=$(render self --set multicluster.role=rollouts | entries_of | sort | tr '\n' ' ')
  p=$(render self --set multicluster.role=primary | entries_of | sort | tr '\n' ' ')
  [ "$r" = "M:services V:rollouts,services " ] || { echo "role rollouts entries: $r"; return 1; }
  [ "$p" = "M:virtualservices,destinationrules V:virtualservices,destinationrules " ] || { echo "role primary entries: $p"; return 1; }
  render self --set multicluster.role=rollouts | grep -A1 -- '- --istio-primary-secrets' | grep -qx '            - argo-rollouts' \
    || { echo "role rollouts: no --istio-primary-secrets argo-rollouts"; return 1; }
  render self --set multicluster.role=primary | grep -A1 -- '- --rollouts-cluster-secrets' | grep -qx '            - rollout-guard' \
    || { echo "role primary: no --rollouts-cluster-secrets rollout-guard"; return 1; }
  render self --set multicluster.role=primary | grep -q -- '--primary-writer' && { echo "default primaryWriter spelled out"; return 1; }
  pa=$(render self --set multicluster.role=primary --set multicluster.primaryWriter=system:serviceaccount:mesh:writer)
  grep -A1 -- '- --primary-writer' <<<"$pa" | grep -q 'system:serviceaccount:mesh:writer' || { echo "no --primary-writer"; return 1; }
  [ "$(grep -c "'system:serviceaccount:mesh:writer'\])" <<<"$pa")" = 4 ] || { echo "primaryWriter not in the 4 matchConditions"; return 1; }
  all=$(render self --set multicluster.role=primary --set multicluster.secretNamespace=all)
  grep -q 'name: rollout-guard-cluster-secrets' <<<"$all" && [ "$(grep -c '^kind: Cluster\(Role\|RoleBinding\)$' <<<"$all")" = 4 ] \
    || { echo "secretNamespace=all: expected a ClusterRole and ClusterRoleBinding for Secrets"; return 1; }
  [ "$(render self --set multicluster.role=rollouts --set multicluster.remoteReader.create=false | grep -c remote-reader)" = 0 ] \
    || { echo "remoteReader.create=false still renders it"; return 1; }
}
check "(c) multicluster roles: rollouts renders the Rollouts and Services entries and --istio-primary-secrets, primary the VirtualService and DestinationRule entries, --rollouts-cluster-secrets and primaryWriter in the matchConditions; secretNamespace=all a ClusterRole" roles_ok
bad_role=$(helm template x "$CHART" --set multicluster.role=east 2>&1)
if [[ $bad_role == *'multicluster.role: expected none, rollouts or primary, found "east"'* ]]; then
  ok "(c) a bad multicluster.role is refused with what was expected"
else
  fail "(c) bad multicluster.role: $(echo "$bad_role" | tail -1)"
fi
bad_mode=$(helm template x "$CHART" --set certificates.mode=vault 2>&1)
bad_fp=$(helm template x "$CHART" --set webhooks.validating.failurePolicy.rollouts=null 2>&1)
if [[ $bad_mode == *'certificates.mode: expected cert-manager, self or provided, found "vault"'* ]] \
  && [[ $bad_fp == *'webhooks.validating.failurePolicy.rollouts'* ]]; then
  ok "(c) a bad certificates.mode or a missing failurePolicy is refused with what was expected"
else
  fail "(c) bad values: $(echo "$bad_mode" | tail -1) / $(echo "$bad_fp" | tail -1)"
fi
# The flags the chart passes are the binary's (self mode, and every serve value set).
args_of() { python3 -c '
import sys, yaml
for d in yaml.safe_load_all(sys.stdin):
    if d and d["kind"] == "Deployment":
        print("\n".join(d["spec"]["template"]["spec"]["containers"][0]["args"]))'; }
accepts() {  # accepts FILE: the binary parses the arguments in FILE (clap checks every flag and
  # value before it acts on --help, so an unknown flag or a bad value fails here)
  local args=()
  mapfile -t args <"$1"
  "$BIN" "${args[@]}" --help >/dev/null
}
render self --set logFormat=json --set mode=warn --set referenceSeverity=warn --set breaksSeverity=deny \
  --set argoRolloutsVersion=1.9 --set 'watchNamespaces={shop,pay}' --set 'exemptUsers={a,b}' \
  --set 'exemptGroups={g}' | args_of >"$W/rendered/args-self"
render provided | args_of >"$W/rendered/args-provided"
render provided --set multicluster.role=rollouts | args_of >"$W/rendered/args-rollouts"
render provided --set multicluster.role=primary --set multicluster.primaryWriter=system:serviceaccount:mesh:writer \
  | args_of >"$W/rendered/args-primary"
check "(c) the Deployment's arguments are accepted by the binary (self mode with every serve value; provided; both multicluster roles)" \
  bash -c "$(declare -f accepts); BIN='$BIN'; accepts '$W/rendered/args-self' && accepts '$W/rendered/args-provided' \
    && accepts '$W/rendered/args-rollouts' && accepts '$W/rendered/args-primary'"

# --- the control plane --------------------------------------------------------------------------
export ROLLOUT_GUARD_KUBE_RUN=$W/kube
KC=$(scripts/kube-up.sh --version 1.34 --fresh) || die "the control plane did not start (see $W/kube/*.log)"
export KUBECONFIG=$KC
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  scripts/kube-down.sh --run-dir "$W/kube" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Downloaded first: `go list -m -f '{{.Dir}}'` prints nothing for a module not in the module cache
# (nothing else downloads these two; a clean machine failed here).
(cd tests/e2e/tools/crds && GOFLAGS=-mod=mod GOTOOLCHAIN=local go mod download github.com/cert-manager/cert-manager \
  github.com/prometheus-operator/prometheus-operator) || die "cannot download the cert-manager and prometheus-operator modules"
CM=$(cd tests/e2e/tools/crds && GOFLAGS=-mod=mod GOTOOLCHAIN=local go list -m -f '{{.Dir}}' github.com/cert-manager/cert-manager) \
  && PO=$(cd tests/e2e/tools/crds && GOFLAGS=-mod=mod GOTOOLCHAIN=local go list -m -f '{{.Dir}}' github.com/prometheus-operator/prometheus-operator) \
  || die "cannot find the cert-manager and prometheus-operator modules (go list -m in tests/e2e/tools/crds)"
for f in "$CM"/deploy/crds/cert-manager.io_*.yaml "$PO"/example/prometheus-operator-crd/monitoring.coreos.com_{servicemonitors,prometheusrules}.yaml \
  tests/e2e/crds-upstream/istio-*.yaml; do
  kubectl apply --server-side -f "$f" >/dev/null || die "cannot install the CRD in $f"
done
crd_established() {
  [ "$(kubectl get crd "$1" -o jsonpath='{.status.conditions[?(@.type=="Established")].status}')" = True ]
}
for crd in certificates.cert-manager.io issuers.cert-manager.io servicemonitors.monitoring.coreos.com \
  prometheusrules.monitoring.coreos.com virtualservices.networking.istio.io; do
  poll "$T" crd_established "$crd" || die "CRD $crd not established after ${T}s"
done
kubectl create namespace "$NS" >/dev/null && kubectl create namespace shop >/dev/null \
  && kubectl create namespace argo-rollouts >/dev/null || die "cannot create the namespaces"

# --- (d) every mode validated by the API server -----------------------------------------------
for mode in "${MODES[@]}"; do
  render "$mode" --set certificates.caBundle="$(echo -n CA | base64)" >"$W/rendered/$mode.yaml"
  kinds=$(grep '^kind:' "$W/rendered/$mode.yaml" | sort | uniq -c | awk '{printf "%s%s %s", sep, $1, $3; sep=", "}')
  check "(d) certificates.mode=$mode: kubectl apply --dry-run=server accepts all of it ($kinds)" \
    kubectl apply --dry-run=server -f "$W/rendered/$mode.yaml"
done
for role in rollouts primary; do
  render self --set multicluster.role=$role >"$W/rendered/self-$role.yaml"
  kinds=$(grep '^kind:' "$W/rendered/self-$role.yaml" | sort | uniq -c | awk '{printf "%s%s %s", sep, $1, $3; sep=", "}')
  check "(d) multicluster.role=$role (self mode): kubectl apply --dry-run=server accepts all of it ($kinds)" \
    kubectl apply --dry-run=server -f "$W/rendered/self-$role.yaml"
done
render self --set hostNetwork=true --set replicas=3 --set podDisruptionBudget.enabled=false \
  --set 'webhooks.objectSelector.matchLabels.team=a' --set webhooks.validating.failurePolicy.services=Fail \
  >"$W/rendered/variant.yaml"
check "(d) hostNetwork, replicas, objectSelector, failurePolicy variant: accepted by the API server" \
  kubectl apply --dry-run=server -f "$W/rendered/variant.yaml"

# --- (e) helm install, self mode, webhooks by URL ---------------------------------------------
PORT=$(free_port)
VALUES=(--set certificates.mode=self --set webhooks.url="https://127.0.0.1:$PORT"
  --set metrics.serviceMonitor.enabled=true --set metrics.prometheusRule.enabled=true --set metrics.dashboard.enabled=true)
check "(e) helm install (self mode, ServiceMonitor, PrometheusRule, dashboard, webhooks by URL)" \
  helm install rollout-guard "$CHART" -n "$NS" "${VALUES[@]}"
can() { kubectl auth can-i "$@" --as="$SA" 2>/dev/null; }
# rbac_ok: each "ANSWER VERB RESOURCE [NAMESPACE]" holds; prints the ones that do not.
rbac_ok() {
  local answer verb resource ns got bad=0
  while read -r answer verb resource ns; do
    got=$(can "$verb" "$resource" ${ns:+-n "$ns"})
    [ "$got" = "$answer" ] || { echo "can-i $verb $resource ${ns:+-n $ns}: expected $answer, found '$got'"; bad=1; }
  done <<EXPECT
yes get secret/rollout-guard-certs $NS
yes update secret/rollout-guard-certs $NS
yes create secrets $NS
no get secret/other $NS
no update secret/other $NS
no delete secret/rollout-guard-certs $NS
no list secrets $NS
no get secret/rollout-guard-certs shop
yes get validatingwebhookconfiguration/rollout-guard
yes patch validatingwebhookconfiguration/rollout-guard
yes patch mutatingwebhookconfiguration/rollout-guard
no patch validatingwebhookconfiguration/other
no delete validatingwebhookconfiguration/rollout-guard
no update mutatingwebhookconfiguration/rollout-guard
yes create events.events.k8s.io shop
yes patch events.events.k8s.io shop
yes watch services shop
no create services shop
EXPECT
  return $bad
}
check "(e) the chart's RBAC: get/update only the certificate Secret, create Secrets, get/patch only its own two configurations, Events" rbac_ok

# --- (f) two replicas, first wins, the API server calls rollout-guard with the injected CA ------
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
ca=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.certificate-authority}')
cat >"$W/sa.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: e2e, cluster: {server: "$server", certificate-authority: "$ca"}}]
users: [{name: u, user: {token: admin-token, as: "$SA"}}]
contexts: [{name: e2e, context: {cluster: e2e, user: u}}]
current-context: e2e
KC
mkdir -p "$W/state"
PORT2=$(free_port)
start_replica() {  # start_replica N PORT: rollout-guard as the chart's ServiceAccount
  local admin
  admin=$(free_port)
  KUBECONFIG=$W/sa.kubeconfig POD_NAMESPACE=$NS RUST_LOG=info "$BIN" serve --source files --manifests "$W/state" \
    --listen "127.0.0.1:$2" --admin-listen "127.0.0.1:$admin" --certificates self --cert-san 127.0.0.1 \
    --cert-validity 30s --ca-validity 1h --cert-check-interval 1s >"$W/rg-$1.log" 2>&1 &
  PIDS+=($!)
  eval "ADMIN_$1=$admin"
}
start_replica 1 "$PORT"
start_replica 2 "$PORT2"
ready() { curl -sf "http://127.0.0.1:$1/readyz"; }
poll "$T" ready "$ADMIN_1" && poll "$T" ready "$ADMIN_2" || { tail -n 20 "$W"/rg-*.log >&2; die "rollout-guard did not become ready"; }
serial() { openssl s_client -connect "127.0.0.1:$1" -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -serial 2>/dev/null; }
created=$(grep -l 'how="\?created' "$W"/rg-*.log | wc -l)
adopted=$(grep -l 'how="\?adopted' "$W"/rg-*.log | wc -l)
s1=$(serial "$PORT"); s2=$(serial "$PORT2")
if [ "$created" = 1 ] && [ "$adopted" = 1 ] && [ -n "$s1" ] && [ "$s1" = "$s2" ]; then
  ok "(f) two replicas: one created the Secret, the other adopted it; both serve $s1"
else
  fail "(f) created by $created, adopted by $adopted; served serials '$s1' and '$s2'"
  grep -h 'self-managed' "$W"/rg-*.log | indent
fi
secret_ca() { kubectl get secret rollout-guard-certs -n "$NS" -o jsonpath='{.data.ca\.crt}'; }
bundles() { kubectl get "$1" rollout-guard -o jsonpath='{range .webhooks[*]}{.clientConfig.caBundle}{"\n"}{end}' | sort -u; }
injected() { local c; c=$(secret_ca); [ -n "$c" ] && [ "$(bundles validatingwebhookconfiguration)" = "$c" ] && [ "$(bundles mutatingwebhookconfiguration)" = "$c" ]; }
check "(f) every entry of both configurations carries the Secret's CA" poll "$T" injected
denied() {  # the API server called rollout-guard and relayed its denial
  local out
  out=$(kubectl apply --dry-run=server -f tests/e2e/manifests/seed-sni.yaml 2>&1)
  [[ $out == *'denied the request: rollout-guard denied VirtualService shop/rollouts-demo-vsvc1'* ]]
}
check "(f) the API server calls rollout-guard over TLS with the injected CA: a dry-run apply gets its denial" poll "$T" denied

# --- (g) helm upgrade keeps rollout-guard's caBundle --------------------------------------------
before=$(secret_ca)
check "(g) helm upgrade (replicas 3, mode warn, logFormat json)" \
  helm upgrade rollout-guard "$CHART" -n "$NS" "${VALUES[@]}" --set replicas=3 --set mode=warn --set logFormat=json
upgraded() {
  [ "$(kubectl get deploy rollout-guard -n $NS -o jsonpath='{.spec.replicas}')" = 3 ] \
    && kubectl get deploy rollout-guard -n $NS -o jsonpath='{.spec.template.spec.containers[0].args}' | grep -q '"--mode","warn"' \
    && [ "$(helm history rollout-guard -n $NS -o json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 2 ]
}
check "(g) ... the Deployment has the new values and the release is at revision 2" upgraded
if [ "$(bundles validatingwebhookconfiguration)" = "$before" ] && [ "$(bundles mutatingwebhookconfiguration)" = "$before" ]; then
  ok "(g) ... and the caBundle rollout-guard injected is untouched (the chart never renders it)"
else
  fail "(g) the upgrade changed the caBundle"
fi

# --- (h) a renewal under load -----------------------------------------------------------------
first=$(serial "$PORT")
requests=0 failures=0 renewed_at=
deadline=$((SECONDS + 90))
: >"$W/out/renewal-failures"
# Requests until the serial has changed and 20 more were answered after that.
while [ $SECONDS -lt $deadline ]; do
  requests=$((requests + 1))
  if ! denied; then
    failures=$((failures + 1))
    kubectl apply --dry-run=server -f tests/e2e/manifests/seed-sni.yaml >>"$W/out/renewal-failures" 2>&1
  fi
  if [ -z "$renewed_at" ] && [ "$(serial "$PORT")" != "$first" ]; then renewed_at=$requests; fi
  [ -n "$renewed_at" ] && [ $((requests - renewed_at)) -ge 20 ] && break
done
now=$(serial "$PORT"); other=$(serial "$PORT2")
if [ -n "$renewed_at" ] && [ "$failures" = 0 ] && [ "$now" = "$other" ]; then
  ok "(h) renewal ($first -> $now, both replicas) during $requests requests through the API server: 0 failed"
else
  fail "(h) renewal: serial $first -> $now / $other, renewed at request ${renewed_at:-never}, $failures of $requests failed"
  indent "$W/out/renewal-failures" | head -20
fi
expiry() { curl -s "http://127.0.0.1:$ADMIN_1/metrics" | awk '$1=="rollout_guard_tls_certificate_expiry_timestamp_seconds" {print $2}'; }
exp=$(expiry)
if [ -n "$exp" ] && [ "$exp" -gt "$(date +%s)" ] && [ "$exp" -le $(($(date +%s) + 40)) ]; then
  ok "(h) rollout_guard_tls_certificate_expiry_timestamp_seconds is the served certificate's expiry ($exp)"
else
  fail "(h) expiry metric '$exp' is not within the 30 s validity from now"
fi

# --- (h) break-glass: a configuration deleted, renewals go on, its bundle comes back ---------------
kubectl delete mutatingwebhookconfiguration rollout-guard >/dev/null || fail "(h) cannot delete the mutating configuration"
before=$(serial "$PORT")
serial_changed() { [ "$(serial "$PORT")" != "$before" ] && [ "$(serial "$PORT")" = "$(serial "$PORT2")" ]; }
if poll "$T" serial_changed && denied; then
  ok "(h) with the MutatingWebhookConfiguration deleted (break-glass) both replicas still renew ($before -> $(serial "$PORT")) and validate"
else
  fail "(h) with a configuration deleted: serial $before -> $(serial "$PORT") / $(serial "$PORT2")"; grep -h ERROR "$W"/rg-*.log | tail -5 | indent
fi
helm upgrade rollout-guard "$CHART" -n "$NS" "${VALUES[@]}" --set replicas=3 --set mode=warn --set logFormat=json >"$W/out/last" 2>&1 \
  || { fail "(h) helm upgrade to recreate the configuration failed"; indent "$W/out/last"; }
check "(h) ... helm upgrade recreates it without a caBundle, and rollout-guard injects the CA again" poll "$T" injected

# --- (j) Argo CD syncing the chart's webhook configurations keeps the caBundle ---------------
kubectl create namespace argocd >/dev/null && kubectl create serviceaccount argocd-application-controller -n argocd >/dev/null \
  && kubectl create clusterrolebinding e2e-argocd --clusterrole=cluster-admin --serviceaccount=argocd:argocd-application-controller >/dev/null \
  || die "cannot create the Argo CD identity"
sed "s|as: \"$SA\"|as: \"system:serviceaccount:argocd:argocd-application-controller\"|" "$W/sa.kubeconfig" >"$W/argocd.kubeconfig"
mkdir -p "$W/argocd-git"
helm template rollout-guard "$CHART" -n "$NS" "${VALUES[@]}" | python3 -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d and d["kind"].endswith("WebhookConfiguration")]
for d in docs:
    ann = d["metadata"].setdefault("annotations", {})
    # The mark gitops-sync puts on what it applies, so the diff compares like with like.
    ann["gitops-sync.rollout-guard.io/managed"] = "true"
    # The tracking annotation Argo CD (annotation tracking, its default) puts on each manifest,
    # for an Application rollout-guard with destination namespace rollout-guard. Its diff needs
    # it: the objects carry the app.kubernetes.io/instance label of the chart, and with that label
    # on the live object the tracking normalization of Argo CD copies the annotation in Git to it.
    ann["argocd.argoproj.io/tracking-id"] = "rollout-guard:admissionregistration.k8s.io/%s:rollout-guard/%s" % (
        d["kind"], d["metadata"]["name"])
print(yaml.safe_dump_all(docs))' >"$W/argocd-git/webhooks.yaml"
bundle_kept() { [ "$(bundles validatingwebhookconfiguration)" = "$(secret_ca)" ] && [ "$(bundles mutatingwebhookconfiguration)" = "$(secret_ca)" ]; }
for how in client-side server-side; do
  flag=
  [ $how = server-side ] && flag=--server-side
  if "$TB/gitops-sync" --kubeconfig "$W/argocd.kubeconfig" --namespace "$NS" --cluster-wide $flag "$W/argocd-git" >"$W/out/last" 2>&1; then
    if bundle_kept; then ok "(j) a gitops-engine sync ($how apply) of the chart's webhook configurations keeps rollout-guard's caBundle"
    else fail "(j) the gitops-engine sync ($how apply) changed the caBundle"; fi
  else
    fail "(j) the gitops-engine sync ($how apply) failed"; indent "$W/out/last"
  fi
done
check "(j) kubectl diff --server-side --field-manager argocd-controller of them (Argo CD's ServerSideDiff) shows no difference" \
  kubectl --kubeconfig "$W/argocd.kubeconfig" diff --server-side --field-manager argocd-controller --force-conflicts -f "$W/argocd-git/webhooks.yaml"
# Argo CD's own diff code (argocd-diff: Argo CD v3.2.0's util/argo/diff), as the Argo CD identity.
# The ignoreDifferences entry is README.md's, taken from its "With Argo CD" section as written.
python3 - README.md >"$W/argocd-ignore.yaml" <<'PY' || die "cannot find the ignoreDifferences entry in README.md"
import re, sys
text = open(sys.argv[1]).read()
at = text.index("rollout-guard's own webhook configurations in `self` mode")
print(re.search(r"```yaml\n(.*?)```", text[at:], re.S).group(1).replace("\n  ", "\n").lstrip())
PY
argocd_diff() { "$TB/argocd-diff" --kubeconfig "$W/argocd.kubeconfig" "$@" "$W/argocd-git"; }
in_sync="MutatingWebhookConfiguration /rollout-guard modified=false
ValidatingWebhookConfiguration /rollout-guard modified=false"
diff_is() {  # diff_is WANT FLAGS...: argocd-diff's object lines, sorted, are WANT (else its output)
  argocd_diff --show-diff "${@:2}" >"$W/out/argocd-diff" 2>&1
  [ "$(grep -v '^[-+@ ]' "$W/out/argocd-diff" | sort)" = "$1" ] || { cat "$W/out/argocd-diff"; false; }
}
# Without an ignoreDifferences entry: whatever Argo CD's Legacy diff makes of the caBundle it does
# not have in Git, recorded (README.md states what this shows).
for how in three-way smd; do
  flags=()
  [ $how = smd ] && flags=(--server-side-apply)
  what="three-way diff, the default"
  [ $how = smd ] && what="structured merge diff, for a ServerSideApply=true application"
  argocd_diff --diff legacy "${flags[@]}" --show-diff >"$W/out/argocd-diff" 2>&1
  rc=$?
  if [ $rc -eq 0 ] && diff_is "$in_sync" --diff legacy "${flags[@]}"; then
    ok "(j) Argo CD's Legacy diff ($what) of them without ignoreDifferences: in sync, the injected caBundle is not a difference"
  elif [ $rc -eq 1 ] && grep -q '^-.*caBundle: ' "$W/out/argocd-diff"; then
    ok "(j) Argo CD's Legacy diff ($what) of them without ignoreDifferences: modified, the injected caBundle shown as a difference ($(grep -c ' modified=true$' "$W/out/argocd-diff") objects)"
  else
    fail "(j) Argo CD's Legacy diff ($what) of them without ignoreDifferences: exit $rc, neither in sync nor the caBundle as the difference"; indent "$W/out/argocd-diff"
  fi
  check "(j) ... with README.md's ignoreDifferences entry ($what): in sync" \
    diff_is "$in_sync" --diff legacy "${flags[@]}" --ignore-differences "$W/argocd-ignore.yaml"
done
# Control: the entry does match these objects and that field. A Git version with another caBundle
# (never synced) is modified for the Legacy diff, and in sync with the entry.
mkdir -p "$W/argocd-git-ca"
python3 -c '
import sys, yaml
docs = list(yaml.safe_load_all(open(sys.argv[1])))
for d in docs:
    if d:
        for w in d["webhooks"]:
            w["clientConfig"]["caBundle"] = "T1RIRVIgQ0E="  # base64 of "OTHER CA"
print(yaml.safe_dump_all([d for d in docs if d]))' "$W/argocd-git/webhooks.yaml" >"$W/argocd-git-ca/webhooks.yaml"
modified="MutatingWebhookConfiguration /rollout-guard modified=true
ValidatingWebhookConfiguration /rollout-guard modified=true"
ca_shown() {  # ca_shown FLAGS...: both modified, and the caBundle lines are the difference
  "$TB/argocd-diff" --kubeconfig "$W/argocd.kubeconfig" --show-diff "$@" "$W/argocd-git-ca" >"$W/out/argocd-diff" 2>&1
  [ "$(grep -v '^[-+@ ]' "$W/out/argocd-diff" | sort)" = "$modified" ] \
    && [ "$(grep '^[-+] ' "$W/out/argocd-diff" | grep -vc 'caBundle: ')" = 0 ] \
    && [ "$(grep -c '^+ .*caBundle: T1RIRVIgQ0E=$' "$W/out/argocd-diff")" -gt 0 ] || { cat "$W/out/argocd-diff"; false; }
}
ca_ignored() {
  "$TB/argocd-diff" --kubeconfig "$W/argocd.kubeconfig" --show-diff "$@" "$W/argocd-git-ca" >"$W/out/argocd-diff" 2>&1
  [ "$(grep -v '^[-+@ ]' "$W/out/argocd-diff" | sort)" = "$in_sync" ] || { cat "$W/out/argocd-diff"; false; }
}
for how in three-way smd; do
  flags=()
  what="three-way diff"
  [ $how = smd ] && flags=(--server-side-apply) && what="structured merge diff"
  check "(j) control: a Git version with another caBundle: Argo CD's Legacy diff ($what) shows the caBundle, and nothing else, as the difference" \
    ca_shown --diff legacy "${flags[@]}"
  check "(j) ... with README.md's ignoreDifferences entry: in sync (the entry matches both configurations and the field)" \
    ca_ignored --diff legacy "${flags[@]}" --ignore-differences "$W/argocd-ignore.yaml"
done
check "(j) Argo CD's ServerSideDiff of them (dry-run apply as argocd-controller): in sync" \
  diff_is "$in_sync" --diff server-side
check "(j) ... and with README.md's ignoreDifferences entry: in sync" \
  diff_is "$in_sync" --diff server-side --ignore-differences "$W/argocd-ignore.yaml"

# --- (i) uninstall in the documented order ------------------------------------------------------
for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
PIDS=()
uninstalled() {
  kubectl delete validatingwebhookconfiguration,mutatingwebhookconfiguration -l app.kubernetes.io/instance=rollout-guard \
    && helm uninstall rollout-guard -n "$NS" \
    && [ -z "$(kubectl get all,sa,role,rolebinding,configmap,servicemonitor,prometheusrule,pdb -n $NS -l app.kubernetes.io/instance=rollout-guard -o name)" ] \
    && [ -z "$(kubectl get clusterrole,clusterrolebinding,validatingwebhookconfiguration,mutatingwebhookconfiguration -l app.kubernetes.io/instance=rollout-guard -o name)" ] \
    && kubectl delete secret rollout-guard-certs -n "$NS"
}
check "(i) webhook configurations deleted first, then helm uninstall: no object of the release is left (then the Secret rollout-guard made)" uninstalled

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
