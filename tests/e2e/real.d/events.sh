# Sourced by tests/e2e/real.sh (its helpers: ok, fail, poll, eventually, expect_ok, expect_fail,
# as_gitops, plugin, weights, metric, indent; W, M, T, BIN, KC). Kubernetes Events for restores and
# denials, and `explain` of a live canary, on its own Rollout `evt` in namespace `ev`.
EV=ev
ev_render() {  # ev_render FILE ROUTE [TIMEOUT]: tests/e2e/manifests/FILE as evt in namespace ev
  sed -e "s/ROUTE/$2/g" -e "s/TIMEOUT/${3:-10s}/g" -e "s/TRAFFIC_POLICY//" "$M/$1" \
    | sed -e "s/checkout/evt/g" -e "s/namespace: shop/namespace: $EV/"
}
# ev_events KIND NAME REASON: "uid|count|instance|note" of each Event rollout-guard wrote on KIND ev/NAME.
ev_events() {
  kubectl get events.events.k8s.io -n "$EV" -o json | python3 -c '
import json, sys
kind, name, reason = sys.argv[1:4]
for e in json.load(sys.stdin)["items"]:
    r = e.get("regarding") or {}
    if (r.get("kind"), r.get("name"), e.get("reason"), e.get("reportingController")) == (kind, name, reason, "rollout-guard"):
        print("%s|%s|%s|%s" % (r.get("uid", ""), (e.get("series") or {}).get("count", 1), e.get("reportingInstance", ""), e.get("note", "")))
' "$1" "$2" "$3"
}
ev_state() { echo "$(kubectl get rollout evt -n "$EV" -o jsonpath='{.status.phase} step={.status.currentStepIndex}') weights=$(weights evt "$EV")"; }
ev_count() { ev_events "$@" | wc -l; }
ev_has() { ev_events "$1" "$2" "$3" | grep -qF -- "$4"; }
# ev_series_at_least N PATTERN: the restore Event whose note has PATTERN has series.count >= N.
ev_series_at_least() {
  ev_events VirtualService evt FieldsRestored | grep -F -- "$2" | awk -F'|' -v n="$1" '$2 >= n { f = 1 } END { exit !f }'
}

if ! kubectl create namespace "$EV" >/dev/null || ! ev_render base.yaml primary | kubectl apply -f - >/dev/null \
  || ! ev_render rollout.yaml primary | kubectl apply -f - >/dev/null; then
  fail "(events) cannot create the objects of Rollout $EV/evt"
else
  eventually "(events) Rollout $EV/evt comes up: Healthy, all traffic to stable" "Healthy step=4 weights=100 0" ev_state
  plugin set image evt evt=nginx:1.26 -n "$EV" >/dev/null
  eventually "(events) ... and pauses at 80/20 after the new image" "Paused step=1 weights=80 20" ev_state

  # A GitOps re-apply of Git's 100/0 mid-canary: kept, and an Event says so on the VirtualService.
  mkdir -p "$W/ev"
  ev_render vs-git.yaml primary 31s >"$W/ev/vs.yaml"
  expect_ok "(events) a GitOps re-apply of Git's 100/0 mid-canary is allowed, 80/20 kept" "kept weights stable=80 canary=20" \
    as_gitops apply -f "$W/ev/vs.yaml"
  KEPT='kept weights stable=80 canary=20 on VirtualService ev/evt route "primary" (Rollout ev/evt, step 2/4); request had 100/0'
  if poll "$T" ev_has VirtualService evt FieldsRestored "$KEPT"; then
    line=$(ev_events VirtualService evt FieldsRestored | grep -F -- "$KEPT" | head -1)
    uid=$(kubectl get virtualservice evt -n "$EV" -o jsonpath='{.metadata.uid}')
    if [ "${line%%|*}" = "$uid" ] && echo "$line" | grep -qF "by $GITOPS: rollout-guard $KEPT" \
      && [ -n "$(echo "$line" | cut -d'|' -f3)" ]; then
      ok "(events) a FieldsRestored Event on VirtualService $EV/evt (its uid, reportingController rollout-guard) names the writer and the kept weights"
    else
      fail "(events) the FieldsRestored Event is not as expected (uid $uid): $line"
    fi
  else
    fail "(events) no FieldsRestored Event on VirtualService $EV/evt within ${T}s; found: $(ev_events VirtualService evt FieldsRestored)"
  fi
  # The same re-apply again: the same Event repeated (series.count 2), not a second Event.
  ev_render vs-git.yaml primary 32s >"$W/ev/vs.yaml"
  as_gitops apply -f "$W/ev/vs.yaml" >/dev/null 2>&1
  if poll "$T" ev_series_at_least 2 "$KEPT"; then
    n=$(ev_events VirtualService evt FieldsRestored | grep -cF -- "$KEPT")
    if [ "$n" = 1 ]; then ok "(events) ... a second identical re-apply continues that Event's series (count 2), no second Event"
    else fail "(events) ... expected one Event for the repeated restore, found $n"; fi
  else
    fail "(events) ... the repeated restore did not count in the Event's series within ${T}s: $(ev_events VirtualService evt FieldsRestored)"
  fi

  # explain on the live canary: the owned route, its live and desired weights, what a re-apply keeps.
  expect_ok "(explain) explain $EV/evt against the cluster shows the live 80/20 next to the status and the step" \
    'evt-canary: canary weight 20 (status 20, step 20)' "$BIN" explain "$EV/evt" --kubeconfig "$W/webhook.kubeconfig"
  if grep -qF "$KEPT" "$W/out/last" && grep -qF 'http route "primary" [0]' "$W/out/last"; then
    ok "(explain) ... and what the drift guard would keep on a re-apply from Git"
  else
    fail "(explain) ... the kept weights are missing"; indent "$W/out/last"
  fi

  # Denials: a dry run writes nothing (no Event); a real denied CREATE gets one on the object as named.
  # (A second Rollout on evt's VirtualService with a wrong route; it also shares evt's Services.)
  expect_fail "(events) a dry-run CREATE of a Rollout with a wrong route is refused" "http-route-not-found" \
    kubectl apply --dry-run=server -f <(ev_render rollout.yaml primry | sed '0,/name: evt$/s//name: evt-dry/')
  expect_fail "(events) a CREATE of a Rollout with a wrong route is refused" "http-route-not-found" \
    kubectl apply -f <(ev_render rollout.yaml primry | sed '0,/name: evt$/s//name: evt-bad/')
  if poll "$T" ev_has Rollout evt-bad Denied "http-route-not-found"; then
    line=$(ev_events Rollout evt-bad Denied | head -1)
    if [ -z "${line%%|*}" ] && echo "$line" | grep -qF "CREATE by "; then
      ok "(events) a Denied Event on Rollout $EV/evt-bad, which does not exist (no uid), names the rule and the writer"
    else
      fail "(events) the Denied Event is not as expected: $line"
    fi
    # Events are published in order, so the dry run's (earlier) would be there by now.
    if [ "$(ev_count Rollout evt-dry Denied)" = 0 ]; then ok "(events) ... and the dry-run denial wrote no Event"
    else fail "(events) ... the dry-run denial wrote an Event: $(ev_events Rollout evt-dry Denied)"; fi
  else
    fail "(events) no Denied Event on Rollout $EV/evt-bad within ${T}s"
  fi
  # An allowed write that breaks the live Rollout (its route renamed, the Rollout not): a warning
  # to the writer, and a BreaksRollout Warning Event for the Rollout's owners. Then Git's version again.
  ev_render vs-git.yaml renamed 31s >"$W/ev/vs-renamed.yaml"
  expect_ok "(events) a GitOps write renaming the Rollout's route is allowed, with a breaks-rollout warning" \
    "breaks-rollout" as_gitops apply -f "$W/ev/vs-renamed.yaml"
  if poll "$T" ev_has VirtualService evt BreaksRollout "breaks Rollout $EV/evt"; then
    ok "(events) ... and a BreaksRollout Event on VirtualService $EV/evt names the Rollout it breaks"
  else
    fail "(events) no BreaksRollout Event on VirtualService $EV/evt within ${T}s; found: $(ev_events VirtualService evt BreaksRollout)"
  fi
  as_gitops apply -f "$W/ev/vs.yaml" >/dev/null || fail "(events) cannot apply Git's VirtualService back"
  created=$(metric 'rollout_guard_events_total{reason="FieldsRestored",result="created"}')
  repeated=$(metric 'rollout_guard_events_total{reason="FieldsRestored",result="repeated"}')
  if [ "${created:-0}" -ge 1 ] && [ "${repeated:-0}" -ge 1 ]; then
    ok "(events) rollout_guard_events_total counts them (FieldsRestored: created $created, repeated $repeated)"
  else
    fail "(events) rollout_guard_events_total: expected created and repeated FieldsRestored Events, found created=${created:-none} repeated=${repeated:-none}"
  fi
fi
