#!/usr/bin/env bash
# The "profile" step of `make bench`: where the CPU goes behind the targets that are missed, with
# `perf record` (sampling, no call graphs), written to $OUT/profile.json for examples/bench_report.rs.
#
#   decisions  the decision bench at 10,000 apps (all 9 request kinds; the state's set-up is a few
#              per cent of the samples)
#   lint       `rollout-guard lint` over the Git form of 10,000 apps (the YAML reader behind the
#              lint and ready targets)
#
# Needs `perf` (Debian's linux-perf, installed here when missing and root) and
# kernel.perf_event_paranoid <= 2; otherwise the section is left out and bench.sh lists it under
# "Not measured". Usage: scripts/bench-profile.sh OUT_DIR DECISION_BENCH_BINARY
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bench-profile.sh OUT_DIR DECISION_BENCH_BINARY}
DECISION_BIN=${2:?usage: bench-profile.sh OUT_DIR DECISION_BENCH_BINARY}
APPS=${RG_PROFILE_APPS:-10000}
WORK=$OUT/profile
mkdir -p "$WORK"

if ! command -v perf >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "bench-profile: installing linux-perf" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >"$WORK/apt.log" 2>&1 \
            || { echo "bench-profile: apt-get install linux-perf failed (see $WORK/apt.log)" >&2; exit 1; }
    else
        echo "bench-profile: perf is not installed (Debian: linux-perf)" >&2
        exit 1
    fi
fi

# A flat profile of one command: the symbols with at least 0.5 % of the samples.
profile() {
    local name=$1
    shift
    perf record -q -F 499 -o "$WORK/$name.data" -- "$@" >"$WORK/$name.out" 2>&1 || {
        echo "bench-profile: '$*' failed under perf (see $WORK/$name.out)" >&2
        return 1
    }
    perf report -i "$WORK/$name.data" --stdio --no-children --sort symbol --percent-limit 0.5 \
        2>/dev/null >"$WORK/$name.txt"
}

# Its results and criterion's go to $WORK: the decision step's own figures stay as measured.
profile decisions env CARGO_TARGET_DIR="$WORK/target" RG_BENCH_SIZES="$APPS" "$DECISION_BIN" --bench
rm -rf "$WORK/state"
${CARGO:-cargo} run -q --release --example gen_state -- "$WORK/state" "$APPS" manifest >/dev/null
profile lint target/release/rollout-guard lint "$WORK/state"
rm -rf "$WORK/state"

python3 - "$WORK" "$OUT/profile.json" "$APPS" <<'EOF'
import json, re, sys
work, out, apps = sys.argv[1], sys.argv[2], sys.argv[3]
# What a symbol is part of, first match wins; names as perf prints Rust's demangled symbols.
GROUPS = [
    ("JSON reading (serde_json::de)", r"serde_json::de|serde_json::read|serde::de::|from_str|RawValue"),
    ("JSON writing (serde_json::ser)", r"serde_json::ser|serde::ser"),
    ("YAML reading (serde_yaml_ng, unsafe-libyaml)", r"serde_yaml|unsafe_libyaml|yaml"),
    ("allocator (malloc/free)", r"malloc|free|realloc|calloc|_int_|tcache|alloc::alloc|__rust_(de)?alloc"),
    ("memory copies and compares", r"memcpy|memmove|memset|memcmp|bcmp|strlen"),
    ("string formatting (core::fmt)", r"core::fmt|alloc::fmt|fmt::write|Formatter"),
    ("index lookups (imbl)", r"imbl"),
    ("hashing", r"hash|Hash|sip|fx"),
    ("reference counts and drops", r"drop_in_place|Arc<|Rc<|atomic"),
    ("rules (rollout_guard::rules)", r"rollout_guard::rules"),
    ("views (rollout_guard::model)", r"rollout_guard::model"),
    ("drift guard (rollout_guard::drift)", r"rollout_guard::drift"),
    ("admission (rollout_guard::admission)", r"rollout_guard::admission"),
    ("JSON Patch (json_patch, jsonptr)", r"json_patch|jsonptr"),
    ("bench harness (criterion, the state's generation)", r"criterion|gen::|rand|plotters"),
]
# "  15.95%  [.] symbol   -   -" (perf pads the column and marks unknown source lines with "-").
row = re.compile(r"^\s*([0-9.]+)%\s+\[[^\]]+\]\s+(.*?)(?:\s+-)*\s*$")
sections, figures = [], {}
titles = {
    "decisions": f"decision bench at {apps} apps (all 9 request kinds, `admission::handle` one thread)",
    "lint": f"`rollout-guard lint` over the Git form of {apps} apps",
}
for name in ("decisions", "lint"):
    try:
        lines = open(f"{work}/{name}.txt").read().splitlines()
    except OSError:
        continue
    samples = next((m.group(1) for l in lines for m in [re.search(r"^# Samples: (\S+)", l)] if m), None)
    symbols = [(float(m.group(1)), m.group(2)) for l in lines for m in [row.match(l)] if m]
    if not symbols:
        continue
    groups = {}
    for pct, sym in symbols:
        group = next((g for g, pat in GROUPS if re.search(pat, sym)), "other")
        groups[group] = groups.get(group, 0.0) + pct
    listed = sum(p for p, _ in symbols)
    md = [f"**{titles[name]}**: {samples or '?'} samples at 499 Hz; symbols with at least 0.5 % of them "
          f"cover {listed:.0f} %.", "", "| part | share of samples |", "|---|---:|"]
    for g, p in sorted(groups.items(), key=lambda kv: -kv[1]):
        md.append(f"| {g} | {p:.1f} % |")
        figures[f"{name}.{g}"] = round(p, 2)
    md += ["", "Top symbols:", "", "| share | symbol |", "|---:|---|"]
    for pct, sym in symbols[:12]:
        short = sym if len(sym) <= 110 else sym[:107] + "..."
        md.append(f"| {pct:.1f} % | `{short.replace('|', '/')}` |")
    sections.append("\n".join(md))
if not sections:
    sys.exit("bench-profile: no profile could be read")
markdown = ("## Profile (perf, this run)\n\nFlat CPU profiles (`perf record -F 499`, no call graphs: "
            "each sample is charged to the function it was in), grouped by what the symbol belongs to; "
            "`scripts/bench-profile.sh`.\n\n" + "\n\n".join(sections) + "\n")
json.dump({"section": "profile", "markdown": markdown, "figures": figures}, open(out, "w"), indent=1)
EOF
rm -rf "$WORK"/*.data "$WORK/target"
echo "bench-profile: wrote $OUT/profile.json"
