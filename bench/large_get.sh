#!/usr/bin/env bash
# Large plain GETs (issue: hot paths): 32 GETs of 256 MiB objects, 16 at a
# time, straight to the owners, three times; every 4th body verified byte
# for byte; MiB/s per round and the targets' peak RSS.
#   ./bench/large_get.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
build_release
start_cluster 3
trap 'stop_cluster; rm -rf "$WORK"' EXIT
L="$BIN/aisloader --endpoint $EP --json"
$L --bucket big --mode put --num 4 --size 256MiB --prefix big- >/dev/null
log=$WORK/rss; : > $log
( while :; do for p in $TPIDS; do awk '/VmRSS/{print $2}' /proc/$p/status 2>/dev/null; done >>"$log"; sleep 0.1; done ) &
S=$!
for r in 1 2 3; do $L --bucket big --mode get --size 256MiB --num 32 --distinct 4 --conc 16 --prefix big- --direct --verify 4 | python3 -c 'import sys,json; d=json.loads(sys.stdin.readline()); print("GET 256MiB x32 conc16: %.0f MiB/s p50 %.0f ms" % (d["mib_per_s"], d["p50_ms"]))'; done
kill $S; echo "peak target RSS $(( $(sort -n $log | tail -1) / 1024 )) MiB"
