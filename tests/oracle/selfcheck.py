#!/usr/bin/env python3
"""The oracle's own test: on upstream's test objects it must give upstream's expected verdict.
Istio: each istio/*.yaml has a .expected (from Istio's passing tests); a mismatch is an error.
Argo lint testdata: expected.tsv holds kubectl argo rollouts lint's expected verdict per file;
the oracle models the controller (and lint's strict decoding), which differs from lint on
purpose in places (lint has no existence checks), so mismatches there are printed, not fatal."""
import argparse, glob, json, os, subprocess, sys

ap = argparse.ArgumentParser()
ap.add_argument("--istio", required=True)
ap.add_argument("--argo", required=True)
ap.add_argument("dir")
a = ap.parse_args()
files = sorted(glob.glob(os.path.join(a.dir, "istio", "*.yaml")))
bad = 0
if files:
    p = subprocess.run([a.istio] + files, capture_output=True, text=True, check=True)
    got = {json.loads(l)["case"]: json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")}
    for f in files:
        exp = open(f[:-5] + ".expected").read().split("\t")[0].strip()
        v = got.get(f)
        if v is None or v["verdict"] != exp:
            bad += 1
            print(f"selfcheck: {f}: Istio's tests expect {exp}, oracle-istio says {v and v['verdict']} {v and v['message']}")
# argo-rollouts' istio tests: the oracle runs more than reconcileVirtualService (ValidateRollout,
# the referenced-resource checks, UpdateHash), so a refusal the test did not see is printed as info;
# an acceptance of what the test's reconcile refused is an error.
afiles = sorted(glob.glob(os.path.join(a.dir, "argo-istio", "*.yaml")))
ainfo = 0
if afiles:
    p = subprocess.run([a.argo] + afiles, capture_output=True, text=True, check=True)
    got = {}
    for l in p.stdout.splitlines():
        v = json.loads(l)
        if v["kind"] == "Rollout" and v["source"] != "argo-lint":
            got[v["case"]] = v
    for f in afiles:
        exp, detail = (open(f[:-5] + ".expected").read().rstrip("\n").split("\t") + [""])[:2]
        v = got.get(f)
        if v is None:
            bad += 1
            print(f"selfcheck: {f}: no verdict")
        elif exp == "refuse" and v["verdict"] == "accept":
            bad += 1
            print(f"selfcheck: {f}: argo-rollouts' test saw {detail!r}; the oracle accepts")
        elif exp == "accept" and v["verdict"] == "refuse":
            ainfo += 1
            print(f"selfcheck (info): {f}: the test's reconcile passed; the oracle refuses at {v['function']}: {v['message'][:200]}")
lint = os.path.join(a.dir, "argo-lint", "expected.tsv")
mism = 0
if os.path.exists(lint):
    rows = [l.rstrip("\n").split("\t") for l in open(lint) if l.strip()]
    paths = [os.path.join(a.dir, "argo-lint", r[0]) for r in rows]
    p = subprocess.run([a.argo] + paths, capture_output=True, text=True, check=True)
    ref = {}
    for l in p.stdout.splitlines():
        v = json.loads(l)
        if v["verdict"] == "refuse":
            ref.setdefault(v["case"], v)
    for (name, exp, msg), path in zip(rows, paths):
        got = "refuse" if path in ref else "accept"
        if got != exp:
            mism += 1
            print(f"selfcheck (info): lint testdata {name}: kubectl argo rollouts lint expects {exp} ({msg}); "
                  f"the controller path says {got} ({ref[path]['function'] + ': ' + ref[path]['message'] if path in ref else ''})")
print(f"selfcheck: {len(files)} Istio test objects and {len(afiles)} argo-rollouts istio test reconciles, {bad} wrong ({ainfo} stricter, info); lint testdata: {mism} differ from lint (info)")
sys.exit(1 if bad else 0)
