#!/usr/bin/env bash
# Builds the real peers of the end-to-end tests on a current Kubernetes (tests/e2e/real.sh) from
# the Go modules pinned in tests/e2e/tools/, once, into a cache: each binary is kept under a hash
# of what it is built from (its module's go.mod and go.sum, our own sources, version stamps), so
# later runs reuse it and a bump of a pin rebuilds only what it touches:
#
#   kube-apiserver         k8s.io/kubernetes v1.34.1 (tests/e2e/tools/go.mod)
#   etcd                   go.etcd.io/etcd/server/v3 v3.6.4 (tests/e2e/tools/etcd/go.mod)
#   rollouts-controller    github.com/argoproj/argo-rollouts v1.9.1 cmd/rollouts-controller
#   kubectl-argo-rollouts  the same module, cmd/kubectl-argo-rollouts (the kubectl plugin)
#   rs-ready               tests/e2e/tools/cmd/rs-ready (stands in for kubelets: ReplicaSets ready)
#   vs-watch               tests/e2e/tools/cmd/vs-watch (records every stored version of a VirtualService)
#   gitops-sync            tests/e2e/tools/gitops: Argo CD's sync engine (gitops-engine, the version
#                          Argo CD v3.2.0 uses) applying a folder once, as Argo CD does
#   argocd-diff            tests/e2e/tools/argocd: Argo CD v3.2.0's own diff (util/argo/diff,
#                          legacy and ServerSideDiff) of a folder against the live objects, for
#                          real.sh (g) and chart.sh (j) (its go.mod says go 1.25.0)
#   helm                   helm.sh/helm/v3 v3.22.0 cmd/helm (tests/e2e/tools/helm/go.mod, needs
#                          Go >= 1.26), for tests/e2e/chart.sh
#
# and, for `make bench` only (built when named, not by default):
#
#   kube-load              tests/e2e/tools/cmd/kube-load (creates a state fast; a paced update storm)
#   opa                    github.com/open-policy-agent/opa (tests/bench/opa/go.mod), the peer
#
#   scripts/build-e2e-tools.sh [--print-dir] [NAME...]    builds NAME... (default: the e2e tools)
#
#   --print-dir   only print the bin folder the pins map to (nothing is built)
#   ROLLOUT_GUARD_KUBE_CACHE   cache root (default ~/.cache/rollout-guard-kube), shared with
#                              scripts/kube-up.sh; builds in $CACHE/tools/NAME-HASH, linked into
#                              the bin folder $CACHE/tools/bin-HASH (HASH of all of them)
#
# Prints the bin folder on stdout; progress goes to stderr, build logs to $CACHE/tools/.
# Needs Go >= 1.24 (the modules' go lines) and the Go module proxy; the first build downloads about
# 2 GB of modules into the Go module cache (plus 3.5 GB of build cache) and took 22 minutes on 2
# busy cores here (tests/e2e/README.md, "Times"); builds run with nice.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HOME=${HOME:-/root}
CACHE=${ROLLOUT_GUARD_KUBE_CACHE:-$HOME/.cache/rollout-guard-kube}
TOOLS=$ROOT/tests/e2e/tools
E2E=(kube-apiserver etcd rollouts-controller kubectl-argo-rollouts rs-ready vs-watch gitops-sync argocd-diff helm)
ALL=("${E2E[@]}" kube-load opa)
PRINT_DIR=0
WANT=()

log() { echo "build-e2e-tools: $*" >&2; }
die() { echo "build-e2e-tools: error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case $1 in
    --print-dir) PRINT_DIR=1 ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    -*) die "unknown argument '$1' (see --help)" ;;
    *) WANT+=("$1") ;;
  esac
  shift
done
[ ${#WANT[@]} -gt 0 ] || WANT=("${E2E[@]}")


# NAME -> module folder, package, ldflags (version stamps as the upstream release builds set them).
K8S_LD="-X k8s.io/component-base/version.gitVersion=v1.34.1 -X k8s.io/component-base/version.gitMajor=1"
K8S_LD+=" -X k8s.io/component-base/version.gitMinor=34 -X k8s.io/component-base/version.gitTreeState=clean"
AR_LD="-X github.com/argoproj/argo-rollouts/utils/version.version=1.9.1"
AR_LD+=" -X github.com/argoproj/argo-rollouts/utils/version.gitTag=v1.9.1"
AR_LD+=" -X github.com/argoproj/argo-rollouts/utils/version.gitCommit=b6bd3bcf8f60d717a98763d26acc983db7f97cb0"
AR_LD+=" -X github.com/argoproj/argo-rollouts/utils/version.gitTreeState=clean"
HELM_LD="-X helm.sh/helm/v3/internal/version.version=v3.22.0"
HELM_LD+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
# The Kubernetes version helm assumes without a cluster (helm template, helm lint): its client-go's.
for p in chartutil lint/rules; do
  HELM_LD+=" -X helm.sh/helm/v3/pkg/$p.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/$p.k8sVersionMinor=37"
done
spec() {
  case $1 in
    kube-apiserver) echo "$TOOLS|k8s.io/kubernetes/cmd/kube-apiserver|$K8S_LD" ;;
    etcd) echo "$TOOLS/etcd|go.etcd.io/etcd/server/v3|" ;;
    rollouts-controller) echo "$TOOLS|github.com/argoproj/argo-rollouts/cmd/rollouts-controller|$AR_LD" ;;
    kubectl-argo-rollouts) echo "$TOOLS|github.com/argoproj/argo-rollouts/cmd/kubectl-argo-rollouts|$AR_LD" ;;
    rs-ready) echo "$TOOLS|./cmd/rs-ready|" ;;
    vs-watch) echo "$TOOLS|./cmd/vs-watch|" ;;
    gitops-sync) echo "$TOOLS/gitops|.|" ;;
    argocd-diff) echo "$TOOLS/argocd|.|" ;;
    helm) echo "$TOOLS/helm|helm.sh/helm/v3/cmd/helm|$HELM_LD" ;;
    kube-load) echo "$TOOLS|./cmd/kube-load|" ;;
    opa) echo "$ROOT/tests/bench/opa|github.com/open-policy-agent/opa|" ;;
    *) die "unknown tool '$1' (one of: ${ALL[*]})" ;;
  esac
}
# tool_hash NAME: what the binary is built from: its module's pins, the package's own files when
# they are ours (a relative package), the flags.
tool_hash() {
  local dir pkg ldflags
  IFS='|' read -r dir pkg ldflags <<<"$(spec "$1")"
  (cat "$dir/go.mod" "$dir/go.sum"
    case $pkg in ./* | .) cat "$dir/$pkg"/*.go ;; esac
    echo "$1 $pkg $ldflags") | sha256sum | cut -c1-12
}
OUT=$CACHE/tools
BIN=$OUT/bin-$(for t in "${ALL[@]}"; do tool_hash "$t"; done | sha256sum | cut -c1-12)
if [ $PRINT_DIR -eq 1 ]; then echo "$BIN"; exit 0; fi

command -v go >/dev/null || die "Go is not installed (need Go >= 1.24; Debian bookworm's golang-go is too old)"
gover=$(go env GOVERSION)
[[ $gover =~ ^go1\.([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -ge 24 ] \
  || die "Go >= 1.24 is needed for tests/e2e/tools (go.mod says go 1.24.9), found $gover"
mkdir -p "$BIN"

# One build at a time per cache; a second caller waits and then finds the binaries built.
exec 9>"$CACHE/.tools-build.lock"
flock -n 9 || { log "waiting for another build-e2e-tools.sh to finish"; flock 9; }
for name in "${WANT[@]}"; do
  IFS='|' read -r dir pkg ldflags <<<"$(spec "$name")"
  [ -x "$BIN/$name" ] && continue
  built=$OUT/$name-$(tool_hash "$name")
  if [ -x "$built" ]; then ln -f "$built" "$BIN/$name"; continue; fi
  log "building $name from $pkg (once; log: $OUT/$name.build.log)"
  start=$SECONDS
  # -mod=mod: go.sum is complete, so nothing changes; it only spares an error on a Go whose
  # module graph pruning wants one more line. GOTOOLCHAIN=local: never fetch another Go.
  if ! (cd "$dir" && nice -n 15 env GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 \
    go build -trimpath -ldflags "-s -w $ldflags" -o "$built.tmp" "$pkg") >"$OUT/$name.build.log" 2>&1; then
    tail -n 20 "$OUT/$name.build.log" >&2
    die "building $name failed; full log: $OUT/$name.build.log"
  fi
  mv "$built.tmp" "$built"
  ln -f "$built" "$BIN/$name"
  log "built $name in $((SECONDS - start)) s"
done
flock -u 9
echo "$BIN"
