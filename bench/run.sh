#!/usr/bin/env bash
# Cluster benchmark: aistore-rs vs nginx on the same machine, same run.
#   ./bench/run.sh            full run (results in bench/out/core.md)
#   QUICK=1 ./bench/run.sh    smaller counts (smoke)
# Starts a release-build cluster (1 proxy + 3 targets) and nginx (Debian
# package, installed if missing) on loopback; runs aisloader PUT/GET phases;
# reports ratios, and target RSS during 32 concurrent 1 GiB GETs and a 5 GiB
# object PUT+GET.
source "$(dirname "$0")/lib.sh"
QUICK=${QUICK:-}

need_pkg nginx
build_release
WORK=$(mktemp -d /tmp/ais-bench.XXXXXX)
cleanup() {
  stop_cluster
  stop_nginx
  rm -rf "$WORK"
}
trap cleanup EXIT
start_cluster 3
NPORT=$(free_port)

if [ -n "$QUICK" ]; then N1M=200; N16K=2000; G1M=400; G16K=4000; NPUT=200; else N1M=500; N16K=4000; G1M=3000; G16K=30000; NPUT=1000; fi

# nginx serving files of the same names, sizes and bytes (aisloader's
# pattern: byte i = (i mod 1 MiB) * 2654435761, low byte), so both sides'
# GET bodies are checked against the same expected content.
mkdir -p "$WORK/www/b1m" "$WORK/www/b16k"
python3 - "$WORK/www" "$N1M" "$N16K" <<'PY'
import sys
root, n1, n16 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
blob = bytes((i * 177) & 0xFF for i in range(1 << 20))  # 2654435761 mod 256 = 177
for i in range(n1):
    open(f"{root}/b1m/obj-{i}", "wb").write(blob)
for i in range(n16):
    open(f"{root}/b16k/obj-{i}", "wb").write(blob[: 16 << 10])
PY
start_nginx "$NPORT" 2

# Every 10th GET body is compared byte for byte with what was written (ours
# and nginx's); any failed request or mismatch fails the run.
L="$BIN/aisloader --endpoint $EP --json --verify 10"
ROUNDS=${ROUNDS:-3}
run() { echo "+ aisloader $*" >&2; $L "$@"; }
tag() { sed "s/^{/{\"case\":\"$1\",\"round\":$2,/"; }
{
  # The objects the GET phases read.
  run --bucket b1m --mode put --num "$N1M" --size 1MiB --conc 16 | tag put_1m_seed 0
  # PUT rounds, each beside the file system's own ceiling on the same
  # filesystem: the same number of 1 MiB files written by 16 threads (temp
  # file, write, rename) with no flush at all, an upper bound for any store
  # that keeps objects as files here, durable or not.
  # Each starts with nothing dirty in the page cache (the previous phase's
  # writeback would otherwise slow whichever runs next).
  for R in $(seq "$ROUNDS"); do
    sync
    run --bucket b1mp --prefix "r$R-" --mode put --num "$NPUT" --size 1MiB --conc 16 | tag put_1m "$R"
    sync
    run --fs-dir "$WORK/fs" --prefix "r$R-" --num "$NPUT" --size 1MiB --conc 16 | tag fs_1m "$R"
    rm -rf "$WORK/fs"
  done
  # The same into a scratch bucket (write_policy.data=never: no flushes).
  curl -sf -X POST "$EP/v1/buckets/b1ms" -H 'Content-Type: application/json' \
    -d '{"action":"create-bck","value":{"write_policy":{"data":"never"}}}' >/dev/null
  sync
  run --bucket b1ms --mode put --num "$N1M" --size 1MiB --conc 16 | tag put_1m_scratch 0
  run --bucket b16k --mode put --num "$N16K" --size 16KiB --conc 32 | tag put_16k 0
  # The same objects in buckets that store no checksum (checksum.type=none):
  # GETs there verify nothing, the baseline for the cost of verified reads
  # (every GET of a default bucket checks the object against its checksum).
  for b in b1mu b16ku; do
    curl -sf -X POST "$EP/v1/buckets/$b" -H 'Content-Type: application/json' \
      -d '{"action":"create-bck","value":{"checksum":{"type":"none"}}}' >/dev/null
  done
  run --bucket b1mu --mode put --num "$N1M" --size 1MiB --conc 16 | tag put_1m_unverified 0
  run --bucket b16ku --mode put --num "$N16K" --size 16KiB --conc 32 | tag put_16k_unverified 0
  # GETs: ROUNDS rounds, each with the cluster through the proxy, straight
  # to the owner (--direct, the SDK's direct=True) and nginx back to back.
  for R in $(seq "$ROUNDS"); do
    run --bucket b1m --mode get --num "$G1M" --distinct "$N1M" --size 1MiB --conc 16 | tag get_1m "$R"
    run --bucket b1m --mode get --num "$G1M" --distinct "$N1M" --size 1MiB --conc 16 --direct | tag get_1m_direct "$R"
    run --mode get --urls "http://127.0.0.1:$NPORT/b1m" --num "$G1M" --distinct "$N1M" --size 1MiB --conc 16 | tag nginx_1m "$R"
    run --bucket b16k --mode get --num "$G16K" --distinct "$N16K" --size 16KiB --conc 32 | tag get_16k "$R"
    run --bucket b16k --mode get --num "$G16K" --distinct "$N16K" --size 16KiB --conc 32 --direct | tag get_16k_direct "$R"
    run --mode get --urls "http://127.0.0.1:$NPORT/b16k" --num "$G16K" --distinct "$N16K" --size 16KiB --conc 32 | tag nginx_16k "$R"
    run --bucket b1mu --mode get --num "$G1M" --distinct "$N1M" --size 1MiB --conc 16 | tag get_1m_unverified "$R"
    run --bucket b16ku --mode get --num "$G16K" --distinct "$N16K" --size 16KiB --conc 32 | tag get_16k_unverified "$R"
  done
} >"$OUT/core.jsonl"

# Peak RSS of the targets while a command runs (sampled every 100 ms).
rss_during() {
  local log=$WORK/rss.$$; : >"$log"
  ( while :; do for p in $TPIDS; do awk '/VmRSS/{print $2}' /proc/$p/status 2>/dev/null; done >>"$log"; sleep 0.1; done ) &
  local sampler=$!
  local rc=0
  "$@" >/dev/null || rc=$?
  kill $sampler; wait $sampler 2>/dev/null || true
  # A failed transfer (an error or a mismatched body) fails the run.
  [ "$rc" = 0 ] || { echo "rss_during: '$*' failed ($rc)" >&2; return "$rc"; }
  sort -n "$log" | tail -1
}
BIGN=32; BIG=1GiB; HUGE=5GiB
[ -n "$QUICK" ] && { BIGN=8; BIG=256MiB; HUGE=1GiB; }
$L --bucket big --mode put --num 1 --size $BIG --prefix big- >/dev/null
RSS_GET=$(rss_during $L --bucket big --mode get --num $BIGN --distinct 1 --conc $BIGN --size $BIG --prefix big-)
RSS_HUGE=$(rss_during $L --bucket huge --mode putget --num 1 --size $HUGE --prefix huge- --conc 1)
echo "{\"case\":\"rss\",\"round\":0,\"concurrent_get_kib\":$RSS_GET,\"huge_putget_kib\":$RSS_HUGE,\"big\":\"$BIG\",\"bign\":$BIGN,\"huge\":\"$HUGE\"}" >>"$OUT/core.jsonl"

python3 - "$OUT/core.jsonl" "$(cut -d' ' -f1-3 /proc/loadavg)" >"$OUT/core.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def get(case, rnd=None):
    return [d for d in rows if d["case"] == case and (rnd is None or d["round"] == rnd)]
rounds = sorted({d["round"] for d in rows if d.get("round")})
out = [f"Load average at the end: {sys.argv[2]}.", ""]
out.append("| case | round | obj/s | MiB/s | p50 ms | p99 ms | errors |")
out.append("|---|---|---|---|---|---|---|")
order = ["put_1m_seed", "put_1m", "fs_1m", "put_1m_scratch", "put_16k", "get_1m", "get_1m_direct", "nginx_1m", "get_16k", "get_16k_direct", "nginx_16k", "get_1m_unverified", "get_16k_unverified"]
for c in order:
    for d in get(c):
        out.append(f"| {c} | {d['round'] or '-'} | {d['obj_per_s']:.0f} | {d['mib_per_s']:.1f} | {d['p50_ms']:.2f} | {d['p99_ms']:.2f} | {d['errors']} |")
out.append("")
def ratio(a, b, k):
    per = [get(a, r)[0][k] / get(b, r)[0][k] for r in rounds]
    return statistics.median(per), per
def line(label, a, b, k, goal):
    m, per = ratio(a, b, k)
    out.append(f"- {label}: **{m:.2f}x** median of {len(per)} rounds ({', '.join(f'{x:.2f}' for x in per)}; goal {goal})")
line("GET 1 MiB through the proxy vs nginx (MiB/s)", "get_1m", "nginx_1m", "mib_per_s", ">= 1.0")
line("GET 1 MiB direct to the owner vs nginx (MiB/s)", "get_1m_direct", "nginx_1m", "mib_per_s", "-")
line("GET 16 KiB through the proxy vs nginx (requests/s)", "get_16k", "nginx_16k", "obj_per_s", ">= 0.5")
line("GET 16 KiB direct to the owner vs nginx (requests/s)", "get_16k_direct", "nginx_16k", "obj_per_s", ">= 0.9")
line("GET 1 MiB verified (default bucket) vs unverified (checksum.type=none), through the proxy (MiB/s)", "get_1m", "get_1m_unverified", "mib_per_s", ">= 0.9")
line("GET 16 KiB verified vs unverified, through the proxy (requests/s)", "get_16k", "get_16k_unverified", "obj_per_s", "-")
put = statistics.median(d["obj_per_s"] for d in get("put_1m"))
g1 = statistics.median(d["obj_per_s"] for d in get("get_1m"))
out.append(f"- PUT 1 MiB vs GET 1 MiB through the proxy (obj/s, medians of {len(get('put_1m'))} and {len(get('get_1m'))} rounds): **{put / g1:.2f}x** (goal >= 0.5; durable: every PUT acknowledged after its data and name are on disk)")
line("Durable PUT 1 MiB vs the file system's ceiling (the same files written locally by 16 threads, temp + write + rename, no flush at all; obj/s)", "put_1m", "fs_1m", "obj_per_s", "-")
fs = statistics.median(d["obj_per_s"] for d in get("fs_1m"))
out.append(f"- That ceiling vs GET 1 MiB through the proxy: {fs / g1:.2f}x (the most any store keeping objects as files on this filesystem could reach against the PUT goal)")
scratch = get("put_1m_scratch")[0]["obj_per_s"]
out.append(f"- PUT 1 MiB into a scratch bucket (write_policy.data=never, no flushes) vs GET 1 MiB: {scratch / g1:.2f}x")
for c in ["get_1m", "get_16k", "get_16k_direct"]:
    ng = "nginx_1m" if "1m" in c else "nginx_16k"
    p99 = statistics.median(d["p99_ms"] for d in get(c))
    n99 = statistics.median(d["p99_ms"] for d in get(ng))
    out.append(f"- p99 {c}: {p99:.2f} ms (nginx {n99:.2f} ms)")
m = [d for d in rows if d["case"] == "rss"][0]
out.append(f"- Peak target RSS during {m['bign']} concurrent GETs of a {m['big']} object: **{m['concurrent_get_kib']/1024:.0f} MiB** (goal < 256 MiB)")
out.append(f"- Peak target RSS during PUT + GET of a {m['huge']} object: **{m['huge_putget_kib']/1024:.0f} MiB** (flat: independent of object size)")
out.append("- Every 10th GET body (ours and nginx's) was compared byte for byte with the written content; the run fails on any error or mismatch.")
print("\n".join(out))
PY
cat "$OUT/core.md"
