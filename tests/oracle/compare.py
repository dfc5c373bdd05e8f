#!/usr/bin/env python3
"""Differential comparison: upstream's verdict (oracle-argo, oracle-istio) against
`rollout-guard lint --output json`, per object, over a set of cases (each argument a case:
a file, or a folder taken whole).

  upstream refuses  <=>  rollout-guard has at least one deny finding on that object
  (a Rollout is refused when argo-validation or argo-reconcile refuses it; a VirtualService or
  DestinationRule when Istio's webhook does; a Service has no upstream verdict: accept).
  kubectl argo rollouts lint's strict decoding (source argo-lint) is checked apart:
  upstream-lint refuses  =>  rollout-guard has a finding (warn or deny) on that object.

A disagreement is allowed only when a row of the deliberate-differences table matches it (the
table is read from the section "Where rollout-guard differs from Argo Rollouts and Istio, and why"
of the README files given with --table; format in tests/oracle/README.md). Exit 1 on any other
disagreement, 2 when something could not run.
"""
import argparse
import collections
import concurrent.futures
import fnmatch
import json
import os
import re
import subprocess
import sys

SECTION = "Where rollout-guard differs from Argo Rollouts and Istio, and why"


def read_table(paths):
    rows = []
    for p in paths:
        if not os.path.exists(p):
            continue
        text = open(p, encoding="utf-8").read()
        m = re.search(r"^(#+)\s*" + re.escape(SECTION) + r"\s*$", text, re.M)
        if not m:
            continue
        level = len(m.group(1))
        body = text[m.end():]
        end = re.search(r"^#{1,%d}\s" % level, body, re.M)
        if end:
            body = body[: end.start()]
        for line in body.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 3 or not cells[0].startswith("`"):
                continue
            k = cells[0].strip("`").strip()
            if "/" not in k:
                continue
            rule, fn = [x.strip() for x in k.split("/", 1)]
            msg = cells[1].strip("`").strip() if len(cells) > 1 else ""
            rows.append({"rule": rule, "function": fn, "message": msg, "reason": cells[-1], "key": k, "used": 0})
    return rows


def allowed(rows, rules, fn, msg, warns=()):
    """rules: rollout-guard deny rule ids on the object ('-' when none); warns: its warn rule
    ids (a row's RULE `warn:ID` matches those); fn: upstream function ('-' when upstream
    accepts)."""
    for row in rows:
        pat = row["rule"]
        if pat.startswith("warn:"):
            if rules != ["-"] or not any(fnmatch.fnmatchcase(w, pat[5:]) for w in warns):
                continue
        elif not any(fnmatch.fnmatchcase(r, pat) for r in rules):
            continue
        if not fnmatch.fnmatchcase(fn, row["function"]):
            continue
        if row["message"] and row["message"] not in msg:
            continue
        row["used"] += 1
        return row
    return None


def run_oracle(binary, cases, chunk=500):
    out = []
    for i in range(0, len(cases), chunk):
        p = subprocess.run([binary] + cases[i:i + chunk], capture_output=True, text=True)
        if p.returncode != 0:
            sys.stderr.write(f"compare: {binary} failed ({p.returncode}):\n{p.stderr[-4000:]}\n")
            sys.exit(2)
        for line in p.stdout.splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
    return out


def run_guard(binary, extra, case):
    p = subprocess.run([binary, "lint", "--output", "json"] + extra + [case], capture_output=True, text=True)
    if p.returncode not in (0, 1):
        return case, None, p.stderr.strip()[-500:]
    try:
        return case, json.loads(p.stdout), None
    except json.JSONDecodeError as e:
        return case, None, f"unreadable JSON: {e}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--guard", default="target/debug/rollout-guard")
    ap.add_argument("--argo", required=True, help="oracle-argo binary (the version compared)")
    ap.add_argument("--argo-other", help="the other version's oracle-argo, for a v1.9/v1.10 report")
    ap.add_argument("--argo-version", default="1.10", help="passed to rollout-guard as --argo-rollouts-version when it has the flag")
    ap.add_argument("--istio", required=True)
    ap.add_argument("--table", action="append", default=[])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--report", help="write every disagreement as JSON lines here")
    ap.add_argument("--max-lines", type=int, default=200, help="disagreement lines printed (all are in --report)")
    ap.add_argument("cases", nargs="+")
    a = ap.parse_args()

    cases = a.cases
    rows = read_table(a.table)
    helptext = subprocess.run([a.guard, "lint", "--help"], capture_output=True, text=True).stdout
    extra = ["--argo-rollouts-version", a.argo_version] if "--argo-rollouts-version" in helptext else []

    # The oracles and rollout-guard run side by side (each oracle is one process per chunk).
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=3)
    f_argo = pool.submit(run_oracle, a.argo, cases)
    f_istio = pool.submit(run_oracle, a.istio, cases)
    f_other = pool.submit(run_oracle, a.argo_other, cases) if a.argo_other else None

    guard = {}
    errors = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as ex:
        results = list(ex.map(lambda c: run_guard(a.guard, extra, c), cases))
    argo, istio = f_argo.result(), f_istio.result()
    other = f_other.result() if f_other else []
    pool.shutdown()
    if True:
        for case, rep, err in results:
            if err is not None:
                errors.append((case, err))
            else:
                guard[case] = rep
    if errors:
        for c, e in errors[:20]:
            sys.stderr.write(f"compare: rollout-guard lint failed on {c}: {e}\n")
        sys.exit(2)

    # rollout-guard findings per object
    findings = collections.defaultdict(list)
    for case, rep in guard.items():
        for f in rep.get("findings", []):
            findings[(case, f["kind"], f["namespace"], f["name"])].append(f)

    upstream = {}  # object -> verdict record (first refusal wins; reconcile after validation)
    lint = collections.defaultdict(list)
    for v in argo + istio:
        k = (v["case"], v["kind"], v["namespace"], v["name"])
        if v["source"] == "argo-lint":
            lint[k].append(v)
            continue
        upstream[k] = v
    objects = set(upstream) | {k for k, fs in findings.items() if k[1] in ("Rollout", "VirtualService", "DestinationRule", "Service")}

    agree = 0
    disagreements = []
    documented = 0
    for k in sorted(objects):
        u = upstream.get(k, {"verdict": "accept", "function": "-", "message": "", "source": "-"})
        fs = findings.get(k, [])
        denies = sorted({f["rule"] for f in fs if f["severity"] == "deny"})
        refuse = u["verdict"] == "refuse"
        if refuse == bool(denies):
            agree += 1
        else:
            fn = u["function"] if refuse else "-"
            rules = denies or ["-"]
            warns = sorted({f["rule"] for f in fs if f["severity"] == "warn"})
            row = allowed(rows, rules, fn, u.get("message", ""), warns)
            d = {"case": k[0], "kind": k[1], "namespace": k[2], "name": k[3], "upstream": u["verdict"],
                 "source": u.get("source", "-"), "function": fn, "message": u.get("message", ""),
                 "guard_deny": denies, "guard_warn": sorted({f["rule"] for f in fs if f["severity"] == "warn"}),
                 "documented": row["key"] if row else None, "check": "verdict"}
            if row:
                documented += 1
            disagreements.append(d)
        for lv in lint.get(k, []):
            if fs:
                agree += 1
                continue
            row = allowed(rows, ["-"], lv["function"], lv["message"], ())
            d = {"case": k[0], "kind": k[1], "namespace": k[2], "name": k[3], "upstream": "refuse",
                 "source": "argo-lint", "function": lv["function"], "message": lv["message"], "guard_deny": [],
                 "guard_warn": [], "documented": row["key"] if row else None, "check": "lint"}
            if row:
                documented += 1
            disagreements.append(d)

    undocumented = [d for d in disagreements if not d["documented"]]
    if a.report:
        with open(a.report, "w") as f:
            for d in disagreements:
                f.write(json.dumps(d) + "\n")
    for d in undocumented[: a.max_lines]:
        print(f"DISAGREE {d['case']} {d['kind']} {d['namespace']}/{d['name']}: upstream {d['upstream']}"
              + (f" ({d['source']} {d['function']}: {one_line(d['message'])})" if d["upstream"] == "refuse" else "")
              + f"; rollout-guard deny {d['guard_deny'] or '-'} warn {d['guard_warn'] or '-'}")
    if len(undocumented) > a.max_lines:
        print(f"... {len(undocumented) - a.max_lines} more (see --report)")

    # grouped summary
    groups = collections.Counter()
    for d in undocumented:
        groups[(d["check"], d["upstream"], d["function"], norm(d["message"]), ",".join(d["guard_deny"]) or "-")] += 1
    if groups:
        print("\nundocumented disagreements by kind:")
        for (check, up, fn, msg, rules), n in groups.most_common():
            print(f"  {n:5d}  upstream {up} [{fn}] {msg[:160]}  | rollout-guard deny: {rules}")
    if other:
        ov = {(v["case"], v["kind"], v["namespace"], v["name"]): v for v in other if v["source"] != "argo-lint"}
        diff = [k for k, v in ov.items() if k in upstream and upstream[k]["verdict"] != v["verdict"]]
        print(f"\nargo-rollouts {argo[0]['argo'] if argo else '?'} vs {other[0]['argo'] if other else '?'}: {len(diff)} Rollouts judged differently")
        for k in diff[:10]:
            print(f"  {k[0]} {k[2]}/{k[3]}: {upstream[k]['verdict']} vs {ov[k]['verdict']} ({one_line(ov[k].get('message') or upstream[k].get('message'))})")
    unused = [r["key"] for r in rows if not r["used"]]
    if unused:
        print("\ntable rows that matched nothing: " + "; ".join(unused))
    total = agree + len(disagreements)
    print(f"\noracle: {agree} agree, {len(disagreements)} disagree over {len(cases)} cases"
          f" ({total} verdicts; {documented} disagreements documented, {len(undocumented)} not)")
    return 1 if undocumented else 0


def one_line(s):
    return " ".join((s or "").split())[:300]


def norm(s):
    s = one_line(s)
    s = re.sub(r'"[^"]*"', '"…"', s)
    s = re.sub(r"'[^']*'", "'…'", s)
    s = re.sub(r"\[[^\]]*\]", "[…]", s)
    s = re.sub(r"\d+", "N", s)
    return s


if __name__ == "__main__":
    sys.exit(main())
