#!/usr/bin/env bash
# Starts a throwaway control plane on 127.0.0.1 for the end-to-end tests, built once and cached,
# so later runs start in seconds. No kubelet, no controllers, no cluster network.
#
#   --version 1.20 (default): etcd from Debian's etcd-server (3.4) and kube-apiserver 1.20.2,
#     built from Debian's kubernetes source package (the oldest server rollout-guard supports).
#   --version 1.34: etcd 3.6.4 and kube-apiserver v1.34.1, built from the Go modules pinned in
#     tests/e2e/tools/ by scripts/build-e2e-tools.sh (the server argo-rollouts v1.9.1 is built for).
#
#   scripts/kube-up.sh [--version 1.20|1.34] [--fresh] [--run-dir DIR]   prints the kubeconfig path
#   scripts/kube-down.sh [--version 1.20|1.34] [--run-dir DIR]           stops both processes
#
#   --version V    also KUBE_VERSION=V
#   --fresh        stop what runs from the run dir and start on an empty etcd data dir
#   ROLLOUT_GUARD_KUBE_CACHE   build cache (default ~/.cache/rollout-guard-kube)
#   ROLLOUT_GUARD_KUBE_RUN     run dir: pids, logs, certs, kubeconfig (default $CACHE/run for 1.20,
#                              $CACHE/run-1.34 for 1.34)
#   ETCD_PORT, ETCD_PEER_PORT (ETCD_PORT+10), API_PORT, KUBE_UP_TIMEOUT (60 s). Ports default to
#     23790 and 16443 on 1.20; on 1.34 to free ones, chosen once per run dir and kept in
#     $RUN/ports.env, so that a second kube-up.sh (a restart) finds the same server again.
#
# The first run needs root (apt-get) and about 7 minutes on 2 cores for 1.20, or Go and the Go
# module proxy for 1.34 (see scripts/build-e2e-tools.sh); progress goes to stderr.
set -euo pipefail

HOME=${HOME:-/root}
CACHE=${ROLLOUT_GUARD_KUBE_CACHE:-$HOME/.cache/rollout-guard-kube}
RUN=${ROLLOUT_GUARD_KUBE_RUN:-}
ETCD_PORT=${ETCD_PORT:-}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-}
API_PORT=${API_PORT:-}
TIMEOUT=${KUBE_UP_TIMEOUT:-60}
FRESH=0
VERSION=${KUBE_VERSION:-1.20}

log() { echo "kube-up: $*" >&2; }
die() { echo "kube-up: error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case $1 in
    --fresh) FRESH=1 ;;
    --version) [ $# -ge 2 ] || die "--version needs a value"; VERSION=$2; shift ;;
    --version=*) VERSION=${1#*=} ;;
    --run-dir) [ $# -ge 2 ] || die "--run-dir needs a value"; RUN=$2; shift ;;
    --run-dir=*) RUN=${1#*=} ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
case $VERSION in
  1.20 | 1.20.2)
    K8S_VERSION=1.20.2
    RUN=${RUN:-$CACHE/run}
    ETCD_PORT=${ETCD_PORT:-23790}
    API_PORT=${API_PORT:-16443}
    SRC=$CACHE/kubernetes-$K8S_VERSION
    APISERVER=$SRC/_output/bin/kube-apiserver
    ETCD=etcd
    RUNTIME_PKGS=(etcd-server openssl curl)
    BUILD_PKGS=(golang-go rsync jq golang-github-modern-go-reflect2-dev make procps)
    ;;
  1.34 | 1.34.1)
    K8S_VERSION=1.34.1
    RUN=${RUN:-$CACHE/run-1.34}
    TOOLS_BIN=$("$(dirname "$0")/build-e2e-tools.sh" --print-dir)
    APISERVER=$TOOLS_BIN/kube-apiserver
    ETCD=$TOOLS_BIN/etcd
    RUNTIME_PKGS=(openssl curl)
    ;;
  *) die "unsupported --version '$VERSION' (1.20 or 1.34)" ;;
esac
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "KUBE_UP_TIMEOUT must be a number, got '$TIMEOUT'"
mkdir -p "$CACHE" "$RUN"
CACHE=$(cd "$CACHE" && pwd)
RUN=$(cd "$RUN" && pwd)
if [ "$K8S_VERSION" = 1.34.1 ]; then
  # Free ports, chosen once per run dir (kept across restarts); explicit ETCD_PORT/API_PORT win.
  # (--fresh stops this run dir's processes first, so it picks new ones.)
  if [ $FRESH -eq 0 ] && [ -f "$RUN/ports.env" ] && [ -z "$ETCD_PORT$API_PORT" ]; then
    # shellcheck disable=SC1091
    . "$RUN/ports.env"
  fi
  free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
  ETCD_PORT=${ETCD_PORT:-$(free_port)}
  ETCD_PEER_PORT=${ETCD_PEER_PORT:-$(free_port)}
  API_PORT=${API_PORT:-$(free_port)}
  printf 'ETCD_PORT=%s\nETCD_PEER_PORT=%s\nAPI_PORT=%s\n' "$ETCD_PORT" "$ETCD_PEER_PORT" "$API_PORT" >"$RUN/ports.env"
fi
for p in ETCD_PORT API_PORT; do
  [[ ${!p} =~ ^[0-9]+$ ]] || die "$p must be a number, got '${!p}'"
done
ETCD_PEER_PORT=${ETCD_PEER_PORT:-$((ETCD_PORT + 10))}
[[ $ETCD_PEER_PORT =~ ^[0-9]+$ ]] || die "ETCD_PEER_PORT must be a number, got '$ETCD_PEER_PORT'"

# --- packages -----------------------------------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

ensure_packages() {
  local missing=() p
  for p in "$@"; do installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] \
    || die "missing Debian packages: ${missing[*]}; as root: apt-get install ${missing[*]}"
  log "installing ${missing[*]}"
  apt-get update -qq >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2 \
    || die "apt-get install ${missing[*]} failed"
}

# --- kube-apiserver build (once; the binary is reused by every later run) ------------------------
apiserver_ok() { [ -x "$APISERVER" ] && "$APISERVER" --version 2>/dev/null | grep -q "v$K8S_VERSION"; }

# 1.34: kube-apiserver and etcd from the pinned Go modules (the script caches and locks itself).
build_from_modules() {
  apiserver_ok && [ -x "$ETCD" ] && return 0
  "$(dirname "$0")/build-e2e-tools.sh" kube-apiserver etcd >/dev/null
  apiserver_ok || die "build finished but $APISERVER does not report v$K8S_VERSION"
}

fetch_source() {
  # A private apt configuration with one deb-src entry: the machine's sources stay untouched.
  local apt=$CACHE/apt
  local opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt"
    -o "Dir::State::Lists=$apt/lists" -o "APT::Sandbox::User=root")
  mkdir -p "$apt/lists/partial"
  cat >"$apt/bookworm-src.sources" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  log "downloading Debian's kubernetes source package"
  apt-get "${opts[@]}" update -qq >&2 || die "apt-get update (deb-src bookworm) failed"
  (cd "$CACHE" && apt-get "${opts[@]}" source --download-only kubernetes >&2) \
    || die "apt-get source kubernetes failed"
}

# Debian ships 1.20.2 as version 1.20.5+really1.20.2.
orig_tarball() {
  local f
  for f in "$CACHE"/kubernetes_*really"$K8S_VERSION".orig.tar.gz; do
    [ -f "$f" ] && echo "$f" && return 0
  done
  return 1
}

prepare_source() {
  [ -f "$SRC/.rollout-guard-prepared" ] && return 0
  local orig
  if ! orig=$(orig_tarball); then
    fetch_source
    orig=$(orig_tarball) \
      || die "no kubernetes_*really$K8S_VERSION.orig.tar.gz in $CACHE (did Debian's version change?)"
  fi
  rm -rf "$SRC"
  tar -xzf "$orig" -C "$CACHE" || die "cannot unpack $orig"
  [ -d "$SRC/cmd/kube-apiserver" ] || die "$orig did not unpack to $SRC"
  # The vendored reflect2 1.0.1 crashes under Go >= 1.18; Debian's packaged copy works.
  local reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
  [ -d "$reflect2" ] || die "$reflect2 is missing (package golang-github-modern-go-reflect2-dev)"
  rm -rf "$SRC/vendor/github.com/modern-go/reflect2"
  cp -r "$reflect2" "$SRC/vendor/github.com/modern-go/reflect2"
  rm -f "$SRC/vendor/github.com/modern-go/reflect2/go.mod"
  touch "$SRC/.rollout-guard-prepared"
}

build_apiserver() {
  apiserver_ok && return 0
  ensure_packages "${BUILD_PKGS[@]}"
  # One build at a time: our own runs take the lock, anything else is waited for.
  exec 9>"$CACHE/.build.lock"
  flock -n 9 || { log "waiting for another kube-up.sh to finish building"; flock 9; }
  local waited=0
  while pgrep -f 'make WHAT=cmd/kube-apiserver' >/dev/null; do
    [ $waited -eq 0 ] && log "another kube-apiserver build is running; waiting for it"
    [ $waited -lt 1800 ] || die "the other build is still running after 30 minutes"
    sleep 10; waited=$((waited + 10))
  done
  if ! apiserver_ok; then
    prepare_source
    log "building kube-apiserver $K8S_VERSION (once, about 7 minutes on 2 cores); log: $CACHE/build.log"
    if ! (cd "$SRC" && env -u GOFLAGS CGO_ENABLED=0 make WHAT=cmd/kube-apiserver) \
      >"$CACHE/build.log" 2>&1; then
      tail -n 20 "$CACHE/build.log" >&2
      die "kube-apiserver build failed; full log: $CACHE/build.log"
    fi
    apiserver_ok || die "build finished but $APISERVER does not report v$K8S_VERSION"
  fi
  flock -u 9
}

# --- processes ----------------------------------------------------------------------------------
# alive NAME PATTERN: the pid in $RUN/NAME.pid runs and its command line contains PATTERN.
alive() {
  local pid
  pid=$(cat "$RUN/$1.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
    && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# On failure, stop what this run started (newest first), so that the next run starts clean.
STARTED=()
cleanup_on_failure() {
  local rc=$? i name pid
  [ $rc -eq 0 ] && return
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
    name=${STARTED[i]}
    pid=$(cat "$RUN/$name.pid" 2>/dev/null) || continue
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$RUN/$name.pid"
    log "stopped $name (pid $pid)"
  done
}
trap cleanup_on_failure EXIT

# wait_for NAME DESCRIPTION CHECK...: polls CHECK every 0.5 s until it succeeds or TIMEOUT passes.
wait_for() {
  local name=$1 what=$2 deadline=$((SECONDS + TIMEOUT))
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null; then
      tail -n 20 "$RUN/$name.log" >&2
      die "$name exited before $what; log: $RUN/$name.log"
    fi
    if [ $SECONDS -ge $deadline ]; then
      tail -n 20 "$RUN/$name.log" >&2
      die "$name: no $what after ${TIMEOUT}s; log: $RUN/$name.log"
    fi
    sleep 0.5
  done
}

make_certs() {
  local f complete=1
  for f in ca.crt apiserver.crt apiserver.key sa.key sa.pub tokens.csv; do
    [ -s "$RUN/$f" ] || complete=0
  done
  [ $complete -eq 1 ] && return 0
  log "creating certificates and keys in $RUN"
  (
    cd "$RUN"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=rollout-guard-e2e-ca" \
      -keyout ca.key -out ca.crt
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout apiserver.key -out apiserver.csr
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >apiserver.ext
    openssl x509 -req -days 3650 -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -extfile apiserver.ext -out apiserver.crt
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
    # token,user,uid,groups: full rights for the tests.
    echo 'admin-token,admin,admin,system:masters' >tokens.csv
  ) >"$RUN/certs.log" 2>&1 || die "openssl failed; log: $RUN/certs.log"
}

start_etcd() {
  if alive etcd etcd; then
    alive etcd "http://127.0.0.1:$ETCD_PORT" \
      || die "etcd from $RUN is not on ETCD_PORT=$ETCD_PORT; stop it first (scripts/kube-down.sh)"
    return 0
  fi
  port_busy "$ETCD_PORT" && die "port $ETCD_PORT is taken by another process; set ETCD_PORT"
  port_busy "$ETCD_PEER_PORT" && die "port $ETCD_PEER_PORT is taken by another process; set ETCD_PEER_PORT"
  log "starting etcd on 127.0.0.1:$ETCD_PORT"
  setsid "$ETCD" --data-dir "$RUN/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    </dev/null >"$RUN/etcd.log" 2>&1 &
  echo $! >"$RUN/etcd.pid"
  STARTED+=(etcd)
  wait_for etcd "healthy answer" etcd_healthy
}

etcd_healthy() { curl -sf "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }

api_get() {
  curl -sf --cacert "$RUN/ca.crt" -H "Authorization: Bearer admin-token" "https://127.0.0.1:$API_PORT$1"
}

api_ready() { [ "$(api_get /readyz)" = ok ]; }

start_apiserver() {
  if alive apiserver kube-apiserver; then
    alive apiserver "--secure-port=$API_PORT" \
      || die "kube-apiserver from $RUN is not on API_PORT=$API_PORT; stop it first (scripts/kube-down.sh)"
  else
    port_busy "$API_PORT" && die "port $API_PORT is taken by another process; set API_PORT"
    log "starting kube-apiserver $K8S_VERSION on 127.0.0.1:$API_PORT"
    # 1.24 removed --insecure-port (and with it the insecure port); 1.20 needs it set to 0.
    local insecure=(--insecure-port=0)
    [ "$K8S_VERSION" = 1.20.2 ] || insecure=()
    (
      cd "$RUN"
      exec setsid "$APISERVER" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
        --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" "${insecure[@]}" \
        --tls-cert-file="$RUN/apiserver.crt" --tls-private-key-file="$RUN/apiserver.key" \
        --client-ca-file="$RUN/ca.crt" --token-auth-file="$RUN/tokens.csv" --authorization-mode=RBAC \
        --service-account-key-file="$RUN/sa.pub" --service-account-signing-key-file="$RUN/sa.key" \
        --service-account-issuer=https://kubernetes.default.svc \
        --enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook \
        --service-cluster-ip-range=10.96.0.0/16 \
        --endpoint-reconciler-type=none  # 127.0.0.1 is no valid endpoint for the kubernetes Service
    ) </dev/null >"$RUN/apiserver.log" 2>&1 &
    echo $! >"$RUN/apiserver.pid"
    STARTED+=(apiserver)
  fi
  wait_for apiserver "/readyz ok" api_ready
  # The default namespace is created by a controller shortly after /readyz.
  wait_for apiserver "default namespace" api_get /api/v1/namespaces/default
}

write_kubeconfig() {
  cat >"$RUN/kubeconfig.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: rollout-guard-e2e
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $RUN/ca.crt
users:
- name: admin
  user:
    token: admin-token
contexts:
- name: rollout-guard-e2e
  context:
    cluster: rollout-guard-e2e
    user: admin
current-context: rollout-guard-e2e
EOF
  mv "$RUN/kubeconfig.tmp" "$RUN/kubeconfig"
}

# --- main ---------------------------------------------------------------------------------------
ensure_packages "${RUNTIME_PKGS[@]}"
if [ "$K8S_VERSION" = 1.20.2 ]; then build_apiserver; else build_from_modules; fi
if [ $FRESH -eq 1 ]; then
  "$(dirname "$0")/kube-down.sh" --run-dir "$RUN" >&2
  rm -rf "$RUN/etcd-data"
fi
make_certs
start_etcd
start_apiserver
write_kubeconfig
log "ready: kube-apiserver https://127.0.0.1:$API_PORT, etcd http://127.0.0.1:$ETCD_PORT, logs in $RUN"
echo "$RUN/kubeconfig"
