#!/usr/bin/env bash
# Renders manifests/{validating,mutating}webhookconfiguration.yaml with the caBundle filled in.
# The tracked manifests are never changed; the copies go to an ignored folder.
#
#   scripts/render-webhooks.sh [--ca FILE] [--out DIR] [--url https://127.0.0.1:PORT]
#                              [--keep-namespace-names] [--match-conditions]
#                              [--exempt-user NAME]... [--exempt-group NAME]...
#
#   --ca FILE   PEM CA that signed the webhook's serving certificate (default certs/ca.crt)
#   --out DIR   where the files go (default certs/rendered); in-cluster mode also writes a
#               kustomization.yaml there: `kubectl apply -k DIR` installs all of manifests/
#   --url BASE  end-to-end mode, for an API server without a cluster network (kube-apiserver
#               1.20 from scripts/kube-up.sh): every clientConfig.service becomes
#               url: BASE/validate or BASE/mutate, and the kubernetes.io/metadata.name
#               namespace selectors are dropped (1.20 does not set that label), leaving the
#               rollout-guard.io/ignore one. failurePolicy and everything else stay as they are.
#   --keep-namespace-names   with --url: keep the kubernetes.io/metadata.name selectors (servers
#               1.21+ set that label; tests/e2e/real.sh on 1.34)
#   --match-conditions       add matchConditions (admissionregistration v1, Kubernetes 1.28+) to
#               every entry, so that the API server never calls the webhook for the exempt
#               identities: a rollout-guard outage then cannot block the Argo Rollouts controller.
#               Without this flag the output is exactly as before (servers older than 1.28 reject
#               the field).
#   --exempt-user NAME / --exempt-group NAME   the identities those conditions exclude (repeatable;
#               default user system:serviceaccount:argo-rollouts:argo-rollouts, as serve's
#               --exempt-user); pass the same ones as to `rollout-guard serve`.
#
# Prints the paths written. Needs python3 (standard library only).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CA=$ROOT/certs/ca.crt
OUT=$ROOT/certs/rendered
URL=
KEEP_NAMES=0
MATCH=0
EXEMPT_USERS=()
EXEMPT_GROUPS=()

die() { echo "render-webhooks: error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case $1 in
    --ca) [ $# -ge 2 ] || die "--ca needs a value"; CA=$2; shift ;;
    --out) [ $# -ge 2 ] || die "--out needs a value"; OUT=$2; shift ;;
    --url) [ $# -ge 2 ] || die "--url needs a value"; URL=$2; shift ;;
    --ca=*) CA=${1#*=} ;;
    --out=*) OUT=${1#*=} ;;
    --url=*) URL=${1#*=} ;;
    --keep-namespace-names) KEEP_NAMES=1 ;;
    --match-conditions) MATCH=1 ;;
    --exempt-user) [ $# -ge 2 ] || die "--exempt-user needs a value"; EXEMPT_USERS+=("$2"); shift ;;
    --exempt-user=*) EXEMPT_USERS+=("${1#*=}") ;;
    --exempt-group) [ $# -ge 2 ] || die "--exempt-group needs a value"; EXEMPT_GROUPS+=("$2"); shift ;;
    --exempt-group=*) EXEMPT_GROUPS+=("${1#*=}") ;;
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done

URL=${URL%/}
[ ${#EXEMPT_USERS[@]} -gt 0 ] || EXEMPT_USERS=(system:serviceaccount:argo-rollouts:argo-rollouts)
if [ $MATCH -eq 0 ] && [ ${#EXEMPT_GROUPS[@]} -gt 0 ]; then die "--exempt-group needs --match-conditions"; fi
# Passed to the renderer as one argument each: users and groups, newline-separated.
USERS_ARG=$(printf '%s\n' "${EXEMPT_USERS[@]}")
GROUPS_ARG=$( [ ${#EXEMPT_GROUPS[@]} -eq 0 ] || printf '%s\n' "${EXEMPT_GROUPS[@]}")
command -v python3 >/dev/null || die "python3 is required"
[ -f "$CA" ] || die "CA file '$CA' not found (run 'make certs', or pass --ca FILE)"
mkdir -p "$OUT"

python3 - "$CA" "$OUT" "$URL" "$ROOT" "$KEEP_NAMES" "$MATCH" "$USERS_ARG" "$GROUPS_ARG" \
  validatingwebhookconfiguration.yaml \
  mutatingwebhookconfiguration.yaml <<'PY'
"""Line-based rewrite of the two webhook manifests, whose layout this repository controls.

Each change is counted against the number of webhook entries, so a manifest edited into a shape
this script does not expect fails loudly instead of rendering something half-changed."""
import base64, os, re, sys

ca_path, out_dir, url, root, keep_names, match, users, groups, *sources = sys.argv[1:]
keep_names, match = keep_names == "1", match == "1"
users = [u for u in users.split("\n") if u]
groups = [g for g in groups.split("\n") if g]

def fail(msg):
    sys.exit(f"render-webhooks: error: {msg}")

pem = open(ca_path, "rb").read()
if b"-----BEGIN CERTIFICATE-----" not in pem:
    fail(f"{ca_path} holds no PEM certificate")
ca_bundle = base64.b64encode(pem).decode()
if url:
    if not re.fullmatch(r"https://[^/\s]+", url):
        fail(f"--url must look like https://HOST:PORT (no path, no trailing slash), got {url!r}")

def cel_list(names):
    # CEL string literals in single quotes; Kubernetes user and group names hold no quote.
    for n in names:
        if "'" in n or "\\" in n:
            fail(f"exempt identity {n!r} holds a quote or backslash")
    return "[" + ", ".join(f"'{n}'" for n in names) + "]"

def match_conditions(ind):
    """matchConditions excluding the exempt identities: the API server skips the webhook (no
    call at all) when any condition is false."""
    pad = " " * ind
    out = [pad + "# Added by render-webhooks.sh --match-conditions (Kubernetes 1.28+): the exempt",
           pad + "# identities never reach the webhook, so an outage cannot block the controller.",
           pad + "matchConditions:",
           pad + "  - name: not-an-exempt-user",
           pad + f"    expression: \"!(request.userInfo.username in {cel_list(users)})\""]
    if groups:
        out += [pad + "  - name: not-in-an-exempt-group",
                pad + f"    expression: \"!request.userInfo.groups.exists(g, g in {cel_list(groups)})\""]
    return out

def indent(line):
    return len(line) - len(line.lstrip(" "))

def render(name):
    src = f"manifests/{name}"
    lines = open(os.path.join(root, src)).read().splitlines()
    # The leading comment explains the tracked file; the header below points back to it.
    while lines and (lines[0].startswith("#") or not lines[0].strip()):
        lines.pop(0)
    entries = sum(1 for l in lines if re.match(r"\s*- name: \S+\.rollout-guard\.io$", l))
    out, counts, i = [], {"caBundle": 0, "url": 0, "selector": 0, "match": 0}, 0
    while i < len(lines):
        line = lines[i]
        ind = indent(line)
        stripped = line.strip()
        if stripped == "clientConfig:":
            out.append(line)
            out.append(" " * (ind + 2) + f"caBundle: {ca_bundle}")
            counts["caBundle"] += 1
            i += 1
            continue
        if url and stripped == "service:":
            # The block is every following line indented deeper; keep only its path.
            j, path = i + 1, None
            while j < len(lines) and lines[j].strip() and indent(lines[j]) > ind:
                m = re.fullmatch(r"\s*path:\s*(\S+)", lines[j])
                path = m.group(1) if m else path
                j += 1
            if path not in ("/validate", "/mutate"):
                fail(f"{src}: clientConfig.service at line {i + 1} has no /validate or /mutate path")
            out.append(" " * ind + f"url: {url}{path}")
            counts["url"] += 1
            i = j
            continue
        if match and stripped.startswith("timeoutSeconds:"):
            out.append(line)
            out.extend(match_conditions(ind))
            counts["match"] += 1
            i += 1
            continue
        if url and not keep_names and stripped == "- key: kubernetes.io/metadata.name":
            # Drop the list item: this line and the deeper-indented ones after it.
            j = i + 1
            while j < len(lines) and lines[j].strip() and indent(lines[j]) > ind:
                j += 1
            counts["selector"] += 1
            i = j
            continue
        out.append(line)
        i += 1
    expected = {"caBundle": entries, "url": entries if url else 0,
                "selector": entries if url and not keep_names else 0, "match": entries if match else 0}
    if entries == 0 or counts != expected:
        fail(f"{src}: unexpected layout ({entries} webhook entries, rewrote {counts})")
    mode = f"url {url}" if url else "in-cluster Service"
    if match:
        mode += "; matchConditions exclude " + ", ".join(users + [f"group {g}" for g in groups])
    header = [f"# Rendered from {src} by scripts/render-webhooks.sh; do not edit.",
              f"# Mode: {mode}; caBundle: {os.path.basename(ca_path)}. The source explains each field."]
    return "\n".join(header + out) + "\n"

def write(name, text):
    dest = os.path.join(out_dir, name)
    with open(dest + ".tmp", "w") as f:
        f.write(text)
    os.replace(dest + ".tmp", dest)
    print(dest)

for name in sources:
    write(name, render(name))

# In-cluster mode: a kustomization of the whole of manifests/ with these two as patches (merged
# by webhook name), so `kubectl apply -k OUT` installs everything with the caBundle in one go.
kustomization = os.path.join(out_dir, "kustomization.yaml")
if url:
    if os.path.exists(kustomization):
        os.remove(kustomization)
else:
    base = os.path.relpath(os.path.join(root, "manifests"), os.path.abspath(out_dir))
    write("kustomization.yaml", "\n".join([
        "# Rendered by scripts/render-webhooks.sh; do not edit. kubectl apply -k on this folder",
        "# installs manifests/ with the webhooks' caBundle filled in.",
        "apiVersion: kustomize.config.k8s.io/v1beta1",
        "kind: Kustomization",
        "resources:",
        f"  - {base}",
        "patches:",
        *[f"  - path: {name}" for name in sources],
    ]) + "\n")
PY
