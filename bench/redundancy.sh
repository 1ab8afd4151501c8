#!/usr/bin/env bash
# PUT throughput with redundancy vs without, measured in the same run (issue:
# never lose an object). One release cluster: 1 proxy + 4 targets with 2
# mountpaths each. Cases, interleaved round by round (fresh buckets each round):
#   none       plain bucket
#   mirror2    mirror.enabled=true, mirror.copies=2 (second copy on the other mountpath)
#   ec21       ec 2+1: 1 MiB objects cut into 2 data + 1 parity slices on 3 other targets
#   ec21small  ec 2+1, 64 KiB objects (<= ec.objsize_limit): 1 full replica on another target
# Each PUT is acknowledged only when its redundancy is durable (fsynced).
#   N=1500 ROUNDS=3 ./bench/redundancy.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
build_release
N=${N:-1500}
ROUNDS=${ROUNDS:-3}
MPATHS=2 start_cluster 4
trap 'stop_cluster; rm -rf "$WORK"' EXIT
RES=$WORK/rows.jsonl
: >"$RES"
mk() { # bucket props-json
  curl -sf -X POST "$EP/v1/buckets/$1" -H 'Content-Type: application/json' -d '{"action":"create-bck"}' >/dev/null
  if [ -n "$2" ]; then
    curl -sf -X PATCH "$EP/v1/buckets/$1" -H 'Content-Type: application/json' \
      -d "{\"action\":\"set-bprops\",\"value\":$2}" >/dev/null
  fi
}
run() { # case round size props
  local b="$1-r$2"
  mk "$b" "$4"
  "$BIN/aisloader" --endpoint "$EP" --bucket "$b" --mode put --num "$N" --size "$3" --conc 16 --json |
    python3 -c 'import sys,json; r=[json.loads(l) for l in sys.stdin if l.startswith("{")][-1]; r["case"]=sys.argv[1]; r["round"]=int(sys.argv[2]); print(json.dumps(r))' "$1" "$2" >>"$RES"
}
for r in $(seq "$ROUNDS"); do
  run none "$r" 1MiB ""
  run mirror2 "$r" 1MiB '{"mirror":{"enabled":true,"copies":2}}'
  run ec21 "$r" 1MiB '{"ec":{"enabled":true,"data_slices":2,"parity_slices":1}}'
  run none64k "$r" 64KiB ""
  run ec21small "$r" 64KiB '{"ec":{"enabled":true,"data_slices":2,"parity_slices":1}}'
done
python3 - "$RES" "$N" "$ROUNDS" <<'PY' | tee "$OUT/redundancy.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
n, rounds = sys.argv[2], sys.argv[3]
print(f"{n} objects per case per round, {rounds} rounds, 16 clients; cluster: 1 proxy + 4 targets x 2 mountpaths on one machine.\n")
print("| case | round | obj/s | MiB/s | p50 ms | p99 ms | errors |")
print("|---|---|---|---|---|---|---|")
for r in sorted(rows, key=lambda r: (r["case"], r["round"])):
    print(f"| {r['case']} | {r['round']} | {r['obj_per_s']:.0f} | {r['mib_per_s']:.1f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |")
med = {c: statistics.median(r["obj_per_s"] for r in rows if r["case"] == c) for c in {r["case"] for r in rows}}
print()
print(f"- 1 MiB PUT, mirror.copies=2 vs no redundancy (median obj/s): **{med['mirror2'] / med['none']:.2f}x** ({med['mirror2']:.0f} vs {med['none']:.0f})")
print(f"- 1 MiB PUT, ec 2+1 (sliced) vs no redundancy: **{med['ec21'] / med['none']:.2f}x** ({med['ec21']:.0f} vs {med['none']:.0f})")
print(f"- 64 KiB PUT, ec 2+1 (replicated) vs no redundancy: **{med['ec21small'] / med['none64k']:.2f}x** ({med['ec21small']:.0f} vs {med['none64k']:.0f})")
PY
