#!/usr/bin/env bash
# Stops the kube-apiserver and etcd that scripts/kube-up.sh started, by the pids in its run dir.
# Leaves the etcd data, certificates and logs in place (kube-up.sh --fresh starts on empty data).
#
#   scripts/kube-down.sh [--run-dir DIR]    (same ROLLOUT_GUARD_KUBE_CACHE / _RUN as kube-up.sh)
set -euo pipefail

HOME=${HOME:-/root}
CACHE=${ROLLOUT_GUARD_KUBE_CACHE:-$HOME/.cache/rollout-guard-kube}
RUN=${ROLLOUT_GUARD_KUBE_RUN:-$CACHE/run}

log() { echo "kube-down: $*" >&2; }

while [ $# -gt 0 ]; do
  case $1 in
    --run-dir) [ $# -ge 2 ] || { log "error: --run-dir needs a value"; exit 1; }; RUN=$2; shift ;;
    --run-dir=*) RUN=${1#*=} ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) log "error: unknown argument '$1'"; exit 1 ;;
  esac
  shift
done

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
