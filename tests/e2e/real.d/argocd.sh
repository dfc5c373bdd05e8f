# Sourced by tests/e2e/real.sh before its summary (its functions, identities and running
# controller, rollout-guard and webhooks). Backs README.md "With Argo CD":
#
#   (g) an application synced as Argo CD does with ServerSideApply=true (gitops-engine,
#       server-side apply as field manager argocd-controller); Git changes the image, the real
#       controller starts a canary and pauses at 80/20; a re-sync from Git mid-canary keeps
#       80/20; `kubectl diff --server-side` of the Git version (what Argo CD's ServerSideDiff
#       does: a server-side dry-run apply, so the webhooks run) shows no difference, so the
#       application is in sync. Control: without rollout-guard the same diff shows Git's 100/0.
#       Then Argo CD's own diff code (argocd-diff: util/argo/diff of Argo CD v3.2.0, as its
#       application controller runs it, as the GitOps identity): its ServerSideDiff (server-side
#       dry-run apply as argocd-controller, rollout-guard's mutating webhook in the request) finds
#       every object in sync; its Legacy diff, which never reaches the API server's admission,
#       finds the VirtualService modified (Git's weights against the controller's), both as the
#       structured merge diff Argo CD uses for a ServerSideApply=true application and as the
#       three-way diff of a client-side one. Control: without rollout-guard its ServerSideDiff
#       finds the VirtualService modified too.

argocd_case() {
  local d=$W/git/argocd ro=argo-web vs=argo-web app=argoweb
  route_app "$d" "$ro" "$vs" primary "$app"  # real.sh (7)
  sync() { "$TB/gitops-sync" --kubeconfig "$W/gitops.kubeconfig" --namespace shop --server-side "$d" >"$W/out/last" 2>"$W/out/last.err"; }
  # The diff compares what the sync applied: the files plus the mark gitops-sync adds.
  git_diff() {
    local f
    mkdir -p "$d.diff"
    for f in "$d"/*.yaml; do
      sed 's|^metadata: {name: \([^,]*\), namespace: shop}|metadata: {name: \1, namespace: shop, annotations: {gitops-sync.rollout-guard.io/managed: "true"}}|' \
        "$f" >"$d.diff/$(basename "$f")"
    done
    as_gitops diff --server-side --field-manager argocd-controller --force-conflicts -f "$d.diff"
  }
  sync || { fail "(g) the first server-side sync failed"; indent "$W/out/last" "$W/out/last.err"; return; }
  poll "$T" phase_is "$ro" Healthy || { fail "(g) the Rollout is not Healthy after the first sync: $(ro_state "$ro" "$vs")"; return; }
  poll "$T" index_caught_up || { fail "(g) rollout-guard's index does not hold the live objects"; return; }

  sed -i 's/image: nginx:1.25/image: nginx:1.26/' "$d/rollout.yaml"
  sync || { fail "(g) the sync of the new image failed"; indent "$W/out/last"; return; }
  eventually "(g) ServerSideApply sync of a new image from Git: the controller pauses the canary at 80/20" \
    "Paused step=1 weights=80 20" ro_state "$ro" "$vs"

  if sync; then
    if [ "$(ro_state "$ro" "$vs")" = "Paused step=1 weights=80 20" ]; then
      ok "(g) ... a re-sync from Git (server-side apply as argocd-controller, Git's 100/0) mid-canary keeps 80/20"
    else
      fail "(g) ... after the re-sync mid-canary: $(ro_state "$ro" "$vs")"
    fi
  else
    fail "(g) ... the re-sync mid-canary failed"; indent "$W/out/last"
  fi
  if git_diff >"$W/out/diff" 2>&1; then
    ok "(g) ... kubectl diff --server-side of the Git version (Argo CD's ServerSideDiff) shows no difference: in sync"
  else
    fail "(g) ... kubectl diff --server-side of the Git version shows a difference"; indent "$W/out/diff"
  fi

  # Argo CD's own diff (argocd-diff), as the GitOps identity, of the same Git version.
  local in_sync="Rollout shop/$ro modified=false
Service shop/$app-canary modified=false
Service shop/$app-stable modified=false
VirtualService shop/$vs modified=false"
  # The dry-run apply goes through rollout-guard: its warnings (on stderr) say what it kept.
  local out=$W/out/argocd-diff
  argocd_diff "$d" --diff server-side --show-diff >"$out" 2>"$out.err"
  if [ $? -eq 0 ] && [ "$(sort "$out")" = "$in_sync" ] \
    && grep -q "rollout-guard: kept weights stable=80 canary=20 on VirtualService shop/$vs" "$out.err"; then
    ok "(g) ... Argo CD's ServerSideDiff (argocd-diff, Argo CD v3.2.0's util/argo/diff; dry-run apply as argocd-controller) of the Git version: every object in sync, rollout-guard's webhook in the dry run ($(grep -c 'rollout-guard: kept' "$out.err") kept-field warnings)"
  else
    fail "(g) ... Argo CD's ServerSideDiff of the Git version: expected every object in sync, rollout-guard's warning in the dry run"; indent "$out" "$out.err"
  fi
  local how flags
  for how in ssa csa; do
    flags=
    [ $how = ssa ] && flags=--server-side-apply
    argocd_diff "$d" --diff legacy $flags --show-diff >"$out-$how" 2>"$out-$how.err"
    if [ $? -eq 1 ] && grep -qx "VirtualService shop/$vs modified=true" "$out-$how" \
      && [ "$(legacy_weights "$out-$how")" = "- 80 20 + 100 0" ]; then
      ok "(g) ... Argo CD's Legacy diff ($(legacy_what $how)) shows the VirtualService modified: the controller's 80/20 live against Git's 100/0; $(others "$out-$how")"
    else
      fail "(g) ... Argo CD's Legacy diff ($(legacy_what $how)): expected the VirtualService modified, 80/20 against Git's 100/0"; indent "$out-$how" "$out-$how.err"
    fi
  done

  unregister || die "cannot delete the webhook configurations"
  diff_shows_git_weights() { ! git_diff >"$W/out/diff" 2>&1 && grep -q '^+ *weight: 100' "$W/out/diff"; }
  if poll "$T" diff_shows_git_weights; then
    ok "(g) control: without rollout-guard the same diff shows Git's weight 100 against the live 80 (Argo CD: OutOfSync)"
  else
    fail "(g) control: without rollout-guard, expected the diff to show Git's 100/0"; indent "$W/out/diff"
  fi
  ssd_modified() {
    argocd_diff "$d" --diff server-side --show-diff >"$out" 2>"$out.err"
    [ $? -eq 1 ] && grep -qx "VirtualService shop/$vs modified=true" "$out"
  }
  if poll "$T" ssd_modified && [ "$(legacy_weights "$out")" = "- 80 20 + 100 0" ]; then
    ok "(g) control: without rollout-guard Argo CD's ServerSideDiff shows the VirtualService modified (Git's 100/0 against the live 80/20); $(others "$out")"
  else
    fail "(g) control: without rollout-guard, expected Argo CD's ServerSideDiff to show Git's 100/0"; indent "$out" "$out.err"
  fi
  register || die "cannot register the webhooks again"
  poll "$T" git_diff || fail "(g) control: with rollout-guard registered again the diff did not become empty"
  poll "$T" argocd_diff "$d" --diff server-side \
    || fail "(g) control: with rollout-guard registered again Argo CD's ServerSideDiff did not find the application in sync"
}
# argocd_diff DIR FLAGS...: Argo CD's diff of Git's DIR, as the GitOps identity; the Git objects
# carry the mark gitops-sync put on what it applied, so like is compared with like.
argocd_diff() {
  local dir=$1
  shift
  "$TB/argocd-diff" --kubeconfig "$W/gitops.kubeconfig" --namespace shop \
    --annotate gitops-sync.rollout-guard.io/managed=true "$@" "$dir"
}
# legacy_weights FILE: the weight lines of argocd-diff's unified diff, "- LIVE... + PREDICTED...".
legacy_weights() {
  awk '/^-[^-]* weight: / { l = l " " $NF } /^\+[^+]* weight: / { p = p " " $NF }
    END { print "-" l " +" p }' "$1"
}
legacy_what() {
  case $1 in
    ssa) echo "the structured merge diff Argo CD uses for a ServerSideApply=true application" ;;
    csa) echo "the three-way diff, for an application synced client-side" ;;
  esac
}
# others FILE: what argocd-diff said of the objects other than the VirtualService (and, for a
# modified Service, the selector keys its diff removes).
others() {
  local lines modified removed
  lines=$(grep -E '^[A-Za-z]+ [^ ]+ modified=' "$1" | grep -v '^VirtualService ')
  modified=$(grep ' modified=true$' <<<"$lines" | cut -d' ' -f1,2 | paste -sd, -)
  if [ -z "$modified" ]; then
    echo "the $(grep -c . <<<"$lines") other objects in sync"
    return
  fi
  removed=$(grep -E '^- +rollouts-pod-template-hash: ' "$1" | sort -u | wc -l)
  echo "also modified: $modified (lines removing the controller's rollouts-pod-template-hash selector: $removed)"
}
argocd_case
