#!/usr/bin/env bash
# Stops the kube-apiserver and etcd that scripts/kube-up.sh started, by the pids in its run dir.
# Leaves the etcd data, certificates and logs in place (kube-up.sh --fresh starts on empty data).
#
#   scripts/kube-down.sh [--version 1.20|1.34] [--run-dir DIR]
#
# Same ROLLOUT_GUARD_KUBE_CACHE / _RUN and KUBE_VERSION as kube-up.sh: the version only picks the
# default run dir ($CACHE/run for 1.20, $CACHE/run-1.34 for 1.34).
set -euo pipefail

HOME=${HOME:-/root}
CACHE=${ROLLOUT_GUARD_KUBE_CACHE:-$HOME/.cache/rollout-guard-kube}
RUN=${ROLLOUT_GUARD_KUBE_RUN:-}
VERSION=${KUBE_VERSION:-1.20}

log() { echo "kube-down: $*" >&2; }

while [ $# -gt 0 ]; do
  case $1 in
    --run-dir) [ $# -ge 2 ] || { log "error: --run-dir needs a value"; exit 1; }; RUN=$2; shift ;;
    --run-dir=*) RUN=${1#*=} ;;
    --version) [ $# -ge 2 ] || { log "error: --version needs a value"; exit 1; }; VERSION=$2; shift ;;
    --version=*) VERSION=${1#*=} ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) log "error: unknown argument '$1'"; exit 1 ;;
  esac
  shift
done

case $VERSION in
  1.20 | 1.20.2) RUN=${RUN:-$CACHE/run} ;;
  1.34 | 1.34.1) RUN=${RUN:-$CACHE/run-1.34} ;;
  *) log "error: unsupported --version '$VERSION' (1.20 or 1.34)"; exit 1 ;;
esac

# stop NAME PATTERN: TERM the pid from NAME.pid if its command line contains PATTERN (a pid file
# left behind may name a recycled pid), wait up to 15 s, then KILL.
stop() {
  local name=$1 pattern=$2 pidfile=$RUN/$1.pid pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
    && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pattern"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) ignored TERM; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
}

# The API server first: it must not outlive its storage.
stop apiserver kube-apiserver
stop etcd etcd
