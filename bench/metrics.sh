#!/usr/bin/env bash
# The cost of metrics on the hot path: 16 KiB GETs with counting on vs off
# (AIS_METRICS=0), in the same run, alternating clusters to spread drift.
#   ./bench/metrics.sh            full run (results in bench/out/metrics.md)
#   QUICK=1 ./bench/metrics.sh    smaller counts (smoke)
#   ROUNDS=3 ./bench/metrics.sh   rounds of (on, off); default 2
# Each round starts a fresh release cluster (1 proxy + 3 targets) per mode,
# PUTs the 16 KiB objects, then GETs them with aisloader (same flags as
# run.sh's get_16k case), and stops it.
source "$(dirname "$0")/lib.sh"
QUICK=${QUICK:-}
ROUNDS=${ROUNDS:-2}
if [ -n "$QUICK" ]; then N16K=2000; G16K=4000; else N16K=4000; G16K=30000; fi
build_release
cleanup() { stop_cluster; }
trap cleanup EXIT
: >"$OUT/metrics.jsonl"
for round in $(seq "$ROUNDS"); do
  for mode in on off; do
    WORK=$(mktemp -d /tmp/ais-bench.XXXXXX)
    if [ "$mode" = off ]; then export AIS_METRICS=0; else unset AIS_METRICS; fi
    start_cluster 3
    unset AIS_METRICS
    # Check that the switch took: the proxy reports ais_proxy_metrics_enabled.
    enabled=$(curl -s "$EP/metrics" | awk '/^ais_proxy_metrics_enabled/{print $2}')
    echo "+ round $round, metrics $mode (enabled=$enabled)" >&2
    L="$BIN/aisloader --endpoint $EP --json"
    $L --bucket b16k --mode put --num "$N16K" --size 16KiB --conc 32 >/dev/null
    $L --bucket b16k --mode get --num "$G16K" --distinct "$N16K" --size 16KiB --conc 32 \
      | sed "s/^{/{\"case\":\"get_16k_metrics_$mode\",\"round\":$round,/" >>"$OUT/metrics.jsonl"
    stop_cluster
    rm -rf "$WORK"
  done
done
python3 - "$OUT/metrics.jsonl" >"$OUT/metrics.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {"on": [], "off": []}
out = ["| case | round | obj/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|"]
for d in rows:
    by[d["case"].rsplit("_", 1)[1]].append(d)
    out.append(f"| {d['case']} | {d['round']} | {d['obj_per_s']:.0f} | {d['p50_ms']:.2f} | {d['p99_ms']:.2f} | {d['errors']} |")
on = statistics.median(d["obj_per_s"] for d in by["on"])
off = statistics.median(d["obj_per_s"] for d in by["off"])
out.append("")
out.append(f"- 16 KiB GET obj/s, metrics on vs off (medians): **{on/off:.3f}x** ({on:.0f} vs {off:.0f})")
print("\n".join(out))
PY
cat "$OUT/metrics.md"
