"""Checks that `helm template` of charts/rollout-guard (stdin) holds the objects of manifests/.

  helm template ... | python3 compare-manifests.py ROOT [--cert-manager | --expected FILE]

Objects are compared as data (comments and key order do not count), after dropping the labels
only Helm releases carry (instance, version, managed-by, helm.sh/chart). With --cert-manager the
expected set is manifests/ plus the kustomize Component manifests/cert-manager (its objects and
its inject-ca-from annotations). With --expected FILE it is the objects in FILE (the output of
`kubectl kustomize` of an overlay, e.g. manifests/ with a manifests/multicluster Component).
Prints each difference and exits 1 on any."""
import json, os, sys

import yaml

HELM_LABELS = {"app.kubernetes.io/instance", "app.kubernetes.io/version",
               "app.kubernetes.io/managed-by", "helm.sh/chart"}


def strip(node):
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            # labels, label selectors and a Service's selector (a flat map of labels).
            if k in ("labels", "matchLabels", "selector") and isinstance(v, dict) \
                    and all(isinstance(x, str) for x in v.values()):
                v = {lk: lv for lk, lv in v.items() if lk not in HELM_LABELS}
            out[k] = strip(v)
        return out
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def diff(a, b, path=""):
    """The paths at which a and b differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += diff(a.get(k), b.get(k), f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += diff(x, y, f"{path}[{i}]")
        return out
    return [] if a == b else [f"  {path or '.'}: manifests/ {json.dumps(a)}, chart {json.dumps(b)}"]


def key(obj):
    meta = obj.get("metadata", {})
    return (obj.get("kind"), meta.get("namespace", ""), meta.get("name"))


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def main():
    root, args = sys.argv[1], sys.argv[2:]
    with_cm = "--cert-manager" in args
    mdir = os.path.join(root, "manifests")
    expected = {}
    if "--expected" in args:
        for obj in load(args[args.index("--expected") + 1]):
            expected[key(obj)] = obj
    else:
        for name in load(os.path.join(mdir, "kustomization.yaml"))[0]["resources"]:
            for obj in load(os.path.join(mdir, name)):
                expected[key(obj)] = obj
    if with_cm:
        comp = load(os.path.join(mdir, "cert-manager", "kustomization.yaml"))[0]
        for name in comp["resources"]:
            for obj in load(os.path.join(mdir, "cert-manager", name)):
                expected[key(obj)] = obj
        for p in comp["patches"]:
            patch = yaml.safe_load(p["patch"])
            target = expected[key(patch)]
            target["metadata"].setdefault("annotations", {}).update(patch["metadata"]["annotations"])
    rendered = {key(o): o for o in yaml.safe_load_all(sys.stdin) if o}
    source = args[args.index("--expected") + 1] if "--expected" in args else "manifests/"

    problems = []
    for k in sorted(set(expected) | set(rendered), key=str):
        if k not in rendered:
            problems.append(f"{k}: in {source}, not rendered by the chart")
        elif k not in expected:
            problems.append(f"{k}: rendered by the chart, not in {source}")
        else:
            a, b = strip(expected[k]), strip(rendered[k])
            if a != b:
                problems.append(f"{k}: differs\n" + "\n".join(diff(a, b)))
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print(f"{len(rendered)} objects equal")


main()
