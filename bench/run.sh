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

if ! command -v nginx >/dev/null; then
  echo "installing nginx (Debian package)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
fi
build_release
WORK=$(mktemp -d /tmp/ais-bench.XXXXXX)
cleanup() {
  stop_cluster
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
start_cluster 3
NPORT=$(free_port)

if [ -n "$QUICK" ]; then N1M=200; N16K=2000; G1M=400; G16K=4000; else N1M=500; N16K=4000; G1M=3000; G16K=30000; fi

# nginx serving files of the same names and sizes.
mkdir -p "$WORK/www/b1m" "$WORK/www/b16k"
python3 - "$WORK/www" "$N1M" "$N16K" <<'PY'
import os, sys
root, n1, n16 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
blob = os.urandom(1 << 20)
for i in range(n1):
    open(f"{root}/b1m/obj-{i}", "wb").write(blob)
for i in range(n16):
    open(f"{root}/b16k/obj-{i}", "wb").write(blob[: 16 << 10])
PY
cat >"$WORK/nginx.conf" <<NG
user root;
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err;
events { worker_connections 4096; }
http {
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  server { listen 127.0.0.1:$NPORT; root $WORK/www; }
}
NG
nginx -c "$WORK/nginx.conf"
sleep 0.5

L="$BIN/aisloader --endpoint $EP --json"
run() { echo "+ aisloader $*" >&2; $L "$@"; }
{
  run --bucket b1m --mode put --num "$N1M" --size 1MiB --conc 16 | sed 's/^{/{"case":"put_1m",/'
  run --bucket b1m --mode get --num "$G1M" --distinct "$N1M" --size 1MiB --conc 16 | sed 's/^{/{"case":"get_1m",/'
  run --mode get --urls "http://127.0.0.1:$NPORT/b1m" --num "$G1M" --distinct "$N1M" --conc 16 | sed 's/^{/{"case":"nginx_1m",/'
  run --bucket b16k --mode put --num "$N16K" --size 16KiB --conc 32 | sed 's/^{/{"case":"put_16k",/'
  run --bucket b16k --mode get --num "$G16K" --distinct "$N16K" --size 16KiB --conc 32 | sed 's/^{/{"case":"get_16k",/'
  run --mode get --urls "http://127.0.0.1:$NPORT/b16k" --num "$G16K" --distinct "$N16K" --conc 32 | sed 's/^{/{"case":"nginx_16k",/'
} >"$OUT/core.jsonl"

# Peak RSS of the targets while a command runs (sampled every 100 ms).
rss_during() {
  local log=$WORK/rss.$$; : >"$log"
  ( while :; do for p in $TPIDS; do awk '/VmRSS/{print $2}' /proc/$p/status 2>/dev/null; done >>"$log"; sleep 0.1; done ) &
  local sampler=$!
  "$@" >/dev/null
  kill $sampler; wait $sampler 2>/dev/null || true
  sort -n "$log" | tail -1
}
BIGN=32; BIG=1GiB; HUGE=5GiB
[ -n "$QUICK" ] && { BIGN=8; BIG=256MiB; HUGE=1GiB; }
$L --bucket big --mode put --num 1 --size $BIG --prefix big- >/dev/null
RSS_GET=$(rss_during $L --bucket big --mode get --num $BIGN --distinct 1 --conc $BIGN --prefix big-)
RSS_HUGE=$(rss_during $L --bucket huge --mode putget --num 1 --size $HUGE --prefix huge- --conc 1)
echo "{\"case\":\"rss\",\"concurrent_get_kib\":$RSS_GET,\"huge_putget_kib\":$RSS_HUGE,\"big\":\"$BIG\",\"bign\":$BIGN,\"huge\":\"$HUGE\"}" >>"$OUT/core.jsonl"

python3 - "$OUT/core.jsonl" >"$OUT/core.md" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    rows[d["case"]] = d
def r(c, k): return rows[c][k]
out = []
out.append("| case | obj/s | MiB/s | p50 ms | p99 ms | errors |")
out.append("|---|---|---|---|---|---|")
for c in ["put_1m", "get_1m", "nginx_1m", "put_16k", "get_16k", "nginx_16k"]:
    d = rows[c]
    out.append(f"| {c} | {d['obj_per_s']:.0f} | {d['mib_per_s']:.1f} | {d['p50_ms']:.2f} | {d['p99_ms']:.2f} | {d['errors']} |")
out.append("")
out.append(f"- GET 1 MiB through the proxy vs nginx (MiB/s): **{r('get_1m','mib_per_s')/r('nginx_1m','mib_per_s'):.2f}x** (goal >= 0.8)")
out.append(f"- GET 16 KiB vs nginx (requests/s): **{r('get_16k','obj_per_s')/r('nginx_16k','obj_per_s'):.2f}x** (goal >= 0.5)")
out.append(f"- PUT 1 MiB vs GET 1 MiB (obj/s): **{r('put_1m','obj_per_s')/r('get_1m','obj_per_s'):.2f}x** (goal >= 0.5)")
m = rows["rss"]
out.append(f"- Peak target RSS during {m['bign']} concurrent GETs of a {m['big']} object: **{m['concurrent_get_kib']/1024:.0f} MiB** (goal < 256 MiB)")
out.append(f"- Peak target RSS during PUT + GET of a {m['huge']} object: **{m['huge_putget_kib']/1024:.0f} MiB** (flat: independent of object size)")
print("\n".join(out))
PY
cat "$OUT/core.md"
