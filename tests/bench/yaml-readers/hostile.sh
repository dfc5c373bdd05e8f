#!/bin/bash
# Each case in its own process: 20 s timeout, 3 GiB address space; exit 134/139 = abort/stack overflow.
cd "$(dirname "$0")"
[ -x ./target/release/yaml-readers ] || { echo "build it first: cargo build --release" >&2; exit 1; }
readers=("serde_yaml_ng" "serde-saphyr(compat)" "saphyr-parser+builder" "granit-parser+builder" "yaml-rust2+builder")
cases="flow-deep flow-map-deep flow-key-deep block-seq-deep block-map-deep block-seq-deep-1m laughs alias-many many-anchors huge-scalar huge-quoted huge-key long-simple-key many-keys many-docs flow-wide invalid-utf8 unterminated-quote unterminated-flow unterminated-block-scalar tabs-indent nul-bytes"
for c in $cases; do for r in "${readers[@]}"; do for g in noguard guard; do
  if [ $g = guard ] && ! [[ $c =~ flow ]]; then continue; fi
  out=$( (ulimit -v 3145728; ulimit -s 8192; /usr/bin/time -f "maxrss=%MKB" timeout 20 nice -n 5 ./target/release/yaml-readers hostile "$r" $c $g) 2>&1 | tr '\n' ' ' | cut -c1-300)
  rc=${PIPESTATUS[0]}
  echo "$r | $c | $g | $out"
done; done; done
