#!/usr/bin/env bash
# Global rebalance, in one run (issue: grow and shrink a cluster online):
#   1. throughput: a target is put in maintenance (`start-maintenance`), so a
#      rebalance moves its share (~1/3) of N objects of SIZE to the other two
#      targets, no client load; bytes moved / job duration, vs `cp -r` of the
#      same directory on the same disk followed by `sync` (the rebalance
#      fsyncs every object);
#   2. GET latency: `stop-maintenance` moves that share back (read from
#      disk: caches dropped, the hot set read once again) while 16 KiB
#      GETs (8 clients) run in batches of GETN; p99 of every GET that
#      started while the rebalance ran (its job's start to end), vs p99 of
#      every GET of the same batches on the idle cluster before.
# Both, ROUNDS times (each round its own baseline); medians over rounds.
# One release cluster: 1 proxy + 3 targets, 1 mountpath each, all on one machine.
#   N=2000 SIZE=256KiB GETN=2000 ROUNDS=3 PAUSE=61 ./bench/rebalance.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
build_release
N=${N:-2000}
SIZE=${SIZE:-256KiB}
GETN=${GETN:-2000}
ROUNDS=${ROUNDS:-3}
PAUSE=${PAUSE:-61}
start_cluster 3
trap 'stop_cluster; rm -rf "$WORK"' EXIT
RES=$WORK/rows.jsonl
: >"$RES"
echo "load before: $(uptime)" >&2
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

get_batch() { # phase round
  "$BIN/aisloader" --endpoint "$EP" --bucket hot --mode get --num "$GETN" --size 16KiB --conc 8 --distinct 1000 --json \
    --latencies "$WORK/lat-$1-$2.txt" |
    python3 -c 'import sys,json; r=[json.loads(l) for l in sys.stdin if l.startswith("{")][-1]; r["phase"]=sys.argv[1]; r["round"]=int(sys.argv[2]); print(json.dumps(r))' "$1" "$2" >>"$RES"
}
jobs_json() { curl -sf "$EP/v1/cluster?what=jobs"; }

# Data: the objects the rebalance moves, and the hot set the GETs read.
"$BIN/aisloader" --endpoint "$EP" --bucket data --mode put --num "$N" --size "$SIZE" --conc 16 --json >/dev/null
"$BIN/aisloader" --endpoint "$EP" --bucket hot --mode put --num 1000 --size 16KiB --conc 16 --json >/dev/null
sleep 6 # any rebalance from the initial joins is over (AIS_REBALANCE_SETTLE 5 s)
# The target whose objects move, and its mountpath (for the cp baseline).
TID=$(curl -sf "$EP/v1/daemon?what=smap" | python3 -c 'import sys,json; print(sorted(json.load(sys.stdin)["tmap"])[0])')
TURL=$(curl -sf "$EP/v1/daemon?what=smap" | python3 -c 'import sys,json; print(json.load(sys.stdin)["tmap"][sys.argv[1]]["public_net"]["direct_url"])' "$TID")
MP=$(curl -sf "$TURL/v1/daemon?what=mountpaths" | python3 -c 'import sys,json; print(json.load(sys.stdin)["available"][0])')

node_action() { # action -> rebalance id
  curl -sf -X PUT "$EP/v1/cluster" -H 'Content-Type: application/json' \
    -d "{\"action\":\"$1\",\"value\":{\"sid\":\"$TID\"}}"
}
finished() { jobs_json | python3 -c 'import sys,json; print(any(j["uuid"]==sys.argv[1] and j["end_time"]!=0 for j in json.load(sys.stdin)))' "$1"; }
record() { jobs_json | python3 -c 'import sys,json; [print(json.dumps({"phase":sys.argv[2], "round":int(sys.argv[3]), **j})) for j in json.load(sys.stdin) if j["uuid"]==sys.argv[1]]' "$1" "$2" "$3" >>"$RES"; }

# ROUNDS rounds of: idle GET batches; the cp baseline; the share moves away
# with no client load; it moves back under GET load. The cp copies are kept
# until the end: removing them would leave thousands of just-freed inodes
# that the filesystem scans past when the rebalance creates its files.
for R in $(seq "$ROUNDS"); do
  for _ in 1 2; do get_batch idle "$R"; done
  MOVE_BYTES=$(du -sb "$MP/@ais" | cut -f1)
  sync; (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null || true
  T0=$(date +%s.%N)
  cp -r "$MP/@ais" "$WORK/cp-copy-$R"
  sync
  T1=$(date +%s.%N)
  echo "{\"phase\":\"cp\",\"round\":$R,\"bytes\":$MOVE_BYTES,\"secs\":$(python3 -c "print($T1-$T0)")}" >>"$RES"
  sync; (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null || true
  # 1. Throughput, no client load.
  REB=$(node_action start-maintenance)
  # One waiting process (polls 4 times a second): a Python poll every
  # 100 ms took a sizeable share of the 2 cores from the job it timed.
  "$BIN/ais" wait "$REB" --endpoint "$EP" >/dev/null
  record "$REB" job "$R"
  # 2. The share moves back under GET load. The moved objects are read
  #    from disk (caches dropped); the clients' hot set is read once first,
  #    as it was before the idle batches, so both phases compare warm GETs
  #    (a cold first read is the drop's cost, not the rebalance's).
  #    The target stays out for PAUSE seconds first (default 61), as a
  #    maintenance window would: ext4 scans past inodes freed in the last
  #    60 s (`recently_deleted`) each time it creates a file, so files
  #    coming back within seconds of leaving the same filesystem cost the
  #    receiver several times the CPU (a quarter of its profile).
  sleep "$PAUSE"
  sync; (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null || true
  "$BIN/aisloader" --endpoint "$EP" --bucket hot --mode get --num 1000 --size 16KiB --conc 8 --distinct 1000 --json >/dev/null
  REB2=$(node_action stop-maintenance)
  while :; do
    get_batch rebalance "$R"
    [ "$(finished "$REB2")" = True ] && break
  done
  record "$REB2" job2 "$R"
  sleep 1
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$RES" "$N" "$SIZE" "$LOAD_BEFORE" "$LOAD_AFTER" "$(nproc)" "$ROUNDS" "$WORK" <<'PY' | tee "$OUT/rebalance.md"
import json, os, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
n, size, lb, la, ncpu, rounds, work = sys.argv[2:]

def lats(phase, r, window=None):
    """Latencies (ms) of a round's GETs of `phase`, those started in `window` (ns)."""
    p = os.path.join(work, f"lat-{phase}-{r}.txt")
    out = []
    for line in open(p) if os.path.exists(p) else []:
        at, ns = map(int, line.split())
        if window is None or window[0] <= at <= window[1]:
            out.append(ns / 1e6)
    return out

def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))] if xs else float("nan")
print(f"{n} objects of {size} (+1000 x 16 KiB), 1 proxy + 3 targets x 1 mountpath on one machine ({ncpu} CPUs), "
      f"{rounds} rounds; load average before {lb}, after {la}.\n")
print("| round | moved (no load) | rebalance MiB/s | cp + sync MiB/s | ratio (goal >= 0.5) | way back under GETs MiB/s | idle GET p99 ms | GET p99 during rebalance ms | ratio (goal <= 3) | errors |")
print("|---|---|---|---|---|---|---|---|---|---|")
ratios, p99s, counts = [], [], []
for r in range(1, int(rounds) + 1):
    rr = [x for x in rows if x.get("round") == r]
    job = [x for x in rr if x["phase"] == "job"][-1]
    job2 = [x for x in rr if x["phase"] == "job2"][-1]
    cp = [x for x in rr if x["phase"] == "cp"][-1]
    dur = (job["end_time"] - job["start_time"]) / 1e9
    dur2 = (job2["end_time"] - job2["start_time"]) / 1e9
    reb = job["bytes"] / dur / 2**20
    cpm = cp["bytes"] / cp["secs"] / 2**20
    idle_l = lats("idle", r)
    busy_l = lats("rebalance", r, (job2["start_time"], job2["end_time"]))
    idle, busy = p99(idle_l), p99(busy_l)
    counts.append((len(idle_l), len(busy_l)))
    errs = job["err_count"] + job2["err_count"] + sum(x["errors"] for x in rr if x["phase"] in ("idle", "rebalance"))
    ratios.append(reb / cpm)
    p99s.append(busy / idle)
    print(f"| {r} | {job['objs']} obj, {job['bytes']/2**20:.1f} MiB in {dur:.2f} s | {reb:.1f} | {cpm:.1f} | **{reb/cpm:.2f}x** | "
          f"{job2['bytes'] / dur2 / 2**20:.1f} | {idle:.2f} | {busy:.2f} | **{busy/idle:.2f}x** | {errs} |")
print()
for r in range(1, int(rounds) + 1):
    rr = [x for x in rows if x.get("round") == r]
    fmt = lambda ph: ", ".join(f"{x['p99_ms']:.1f}" for x in rr if x["phase"] == ph)
    print(f"- round {r}: p99 over {counts[r-1][0]} idle GETs and {counts[r-1][1]} GETs started during the rebalance; "
          f"p99 ms of each whole batch: idle [{fmt('idle')}], during the rebalance [{fmt('rebalance')}]")
print()
print(f"- rebalance / cp, median of {rounds} rounds: **{statistics.median(ratios):.2f}x** (goal >= 0.5x; met in "
      f"{sum(r >= 0.5 for r in ratios)} of {rounds})")
print(f"- GET p99 during rebalance / idle (all GETs started while the job ran / all idle GETs), median of {rounds} rounds: **{statistics.median(p99s):.2f}x** (goal <= 3x; met in "
      f"{sum(r <= 3 for r in p99s)} of {rounds})")
PY
