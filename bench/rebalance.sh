#!/usr/bin/env bash
# Global rebalance, in one run (issue: grow and shrink a cluster online):
#   1. throughput: a target is put in maintenance (`start-maintenance`), so a
#      rebalance moves its share (~1/3) of N objects of SIZE to the other two
#      targets, no client load; bytes moved / job duration, vs `cp -r` of the
#      same directory on the same disk followed by `sync` (the rebalance
#      fsyncs every object);
#   2. GET latency: `stop-maintenance` moves that share back while 16 KiB
#      GETs (8 clients) run in batches of GETN; p99 of each batch, median
#      over batches, vs the same batches on the idle cluster before.
# One release cluster: 1 proxy + 3 targets, 1 mountpath each, all on one machine.
#   N=2000 SIZE=256KiB GETN=2000 ./bench/rebalance.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
build_release
N=${N:-2000}
SIZE=${SIZE:-256KiB}
GETN=${GETN:-2000}
start_cluster 3
trap 'stop_cluster; rm -rf "$WORK"' EXIT
RES=$WORK/rows.jsonl
: >"$RES"
echo "load before: $(uptime)" >&2
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

get_batch() { # phase
  "$BIN/aisloader" --endpoint "$EP" --bucket hot --mode get --num "$GETN" --size 16KiB --conc 8 --distinct 1000 --json |
    python3 -c 'import sys,json; r=[json.loads(l) for l in sys.stdin if l.startswith("{")][-1]; r["phase"]=sys.argv[1]; print(json.dumps(r))' "$1" >>"$RES"
}
jobs_json() { curl -sf "$EP/v1/cluster?what=jobs"; }

# Data: the objects the rebalance moves, and the hot set the GETs read.
"$BIN/aisloader" --endpoint "$EP" --bucket data --mode put --num "$N" --size "$SIZE" --conc 16 --json >/dev/null
"$BIN/aisloader" --endpoint "$EP" --bucket hot --mode put --num 1000 --size 16KiB --conc 16 --json >/dev/null
sleep 6 # any rebalance from the initial joins is over (AIS_REBALANCE_SETTLE 5 s)
for _ in 1 2 3; do get_batch idle; done

# The target whose objects move, and its mountpath (for the cp baseline).
TID=$(curl -sf "$EP/v1/daemon?what=smap" | python3 -c 'import sys,json; print(sorted(json.load(sys.stdin)["tmap"])[0])')
TURL=$(curl -sf "$EP/v1/daemon?what=smap" | python3 -c 'import sys,json; print(json.load(sys.stdin)["tmap"][sys.argv[1]]["public_net"]["direct_url"])' "$TID")
MP=$(curl -sf "$TURL/v1/daemon?what=mountpaths" | python3 -c 'import sys,json; print(json.load(sys.stdin)["available"][0])')
MOVE_BYTES=$(du -sb "$MP/@ais" | cut -f1)
# cp baseline first (same bytes, same disk), page cache dropped when allowed.
sync; (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null || true
T0=$(date +%s.%N)
cp -r "$MP/@ais" "$WORK/cp-copy"
sync
T1=$(date +%s.%N)
rm -rf "$WORK/cp-copy"
sync; (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null || true

node_action() { # action -> rebalance id
  curl -sf -X PUT "$EP/v1/cluster" -H 'Content-Type: application/json' \
    -d "{\"action\":\"$1\",\"value\":{\"sid\":\"$TID\"}}"
}
finished() { jobs_json | python3 -c 'import sys,json; print(any(j["uuid"]==sys.argv[1] and j["end_time"]!=0 for j in json.load(sys.stdin)))' "$1"; }
record() { jobs_json | python3 -c 'import sys,json; [print(json.dumps({"phase":sys.argv[2], **j})) for j in json.load(sys.stdin) if j["uuid"]==sys.argv[1]]' "$1" "$2" >>"$RES"; }
# 1. Throughput, no client load.
REB=$(node_action start-maintenance)
until [ "$(finished "$REB")" = True ]; do sleep 0.1; done
record "$REB" job
# 2. The share moves back under GET load.
sync; (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null || true
REB2=$(node_action stop-maintenance)
while :; do
  get_batch rebalance
  [ "$(finished "$REB2")" = True ] && break
done
record "$REB2" job2
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$RES" "$N" "$SIZE" "$MOVE_BYTES" "$T0" "$T1" "$LOAD_BEFORE" "$LOAD_AFTER" "$(nproc)" <<'PY' | tee "$OUT/rebalance.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
n, size, move_bytes, t0, t1, lb, la, ncpu = sys.argv[2:]
job = [r for r in rows if r["phase"] == "job"][-1]
dur = (job["end_time"] - job["start_time"]) / 1e9
reb_mibs = job["bytes"] / dur / 2**20
cp_s = float(t1) - float(t0)
cp_mibs = int(move_bytes) / cp_s / 2**20
print(f"{n} objects of {size} (+1000 x 16 KiB), 1 proxy + 3 targets x 1 mountpath on one machine ({ncpu} CPUs); "
      f"load average before {lb}, after {la}.\n")
print(f"- rebalance ({job['uuid']}, start-maintenance of one target, no client load): {job['objs']} objects, "
      f"{job['bytes']/2**20:.1f} MiB in {dur:.2f} s = **{reb_mibs:.1f} MiB/s**, {job['err_count']} errors")
print(f"- `cp -r` + `sync` of that target's {int(move_bytes)/2**20:.1f} MiB on the same disk: {cp_s:.2f} s = {cp_mibs:.1f} MiB/s")
print(f"- rebalance / cp: **{reb_mibs / cp_mibs:.2f}x** (goal >= 0.5x)")
job2 = [r for r in rows if r["phase"] == "job2"][-1]
dur2 = (job2["end_time"] - job2["start_time"]) / 1e9
print(f"- the way back ({job2['uuid']}, stop-maintenance) under the GET load below: {job2['objs']} objects, "
      f"{job2['bytes']/2**20:.1f} MiB in {dur2:.2f} s = {job2['bytes'] / dur2 / 2**20:.1f} MiB/s, {job2['err_count']} errors")
print()
print("| phase | batch | GET obj/s | p50 ms | p99 ms | errors |")
print("|---|---|---|---|---|---|")
gets = [r for r in rows if r["phase"] in ("idle", "rebalance")]
for i, r in enumerate(gets):
    print(f"| {r['phase']} | {i} | {r['obj_per_s']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |")
p99 = {p: statistics.median(r["p99_ms"] for r in gets if r["phase"] == p) for p in ("idle", "rebalance")}
print()
print(f"- GET p99 during rebalance vs idle (median of batch p99s): **{p99['rebalance'] / p99['idle']:.2f}x** "
      f"({p99['rebalance']:.2f} vs {p99['idle']:.2f} ms; goal <= 3x)")
PY
