# Sourced by tests/e2e/real.sh before its summary (its functions, identities and running
# controller, rollout-guard and webhooks). Backs README.md "With Argo CD":
#
#   (g) an application synced as Argo CD does with ServerSideApply=true (gitops-engine,
#       server-side apply as field manager argocd-controller); Git changes the image, the real
#       controller starts a canary and pauses at 80/20; a re-sync from Git mid-canary keeps
#       80/20; `kubectl diff --server-side` of the Git version (what Argo CD's ServerSideDiff
#       does: a server-side dry-run apply, so the webhooks run) shows no difference, so the
#       application is in sync. Control: without rollout-guard the same diff shows Git's 100/0.

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

  unregister || die "cannot delete the webhook configurations"
  diff_shows_git_weights() { ! git_diff >"$W/out/diff" 2>&1 && grep -q '^+ *weight: 100' "$W/out/diff"; }
  if poll "$T" diff_shows_git_weights; then
    ok "(g) control: without rollout-guard the same diff shows Git's weight 100 against the live 80 (Argo CD: OutOfSync)"
  else
    fail "(g) control: without rollout-guard, expected the diff to show Git's 100/0"; indent "$W/out/diff"
  fi
  register || die "cannot register the webhooks again"
  poll "$T" git_diff || fail "(g) control: with rollout-guard registered again the diff did not become empty"
}
argocd_case
