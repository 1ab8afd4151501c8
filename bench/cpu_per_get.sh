#!/usr/bin/env bash
# CPU per GET (issue: hot paths): what one GET costs the servers and the
# client, in microseconds of CPU (utime + stime from /proc, all threads),
# beside nginx serving the same files in the same run. Less sensitive to a
# noisy shared host than throughput: a busy neighbour slows a run down but
# barely changes the CPU each request needs.
#   ./bench/cpu_per_get.sh [16KiB|1MiB]        aisloader (as bench/run.sh): direct to the owner,
#                                              through the proxy, nginx (2 workers)
#   WRK=1 ./bench/cpu_per_get.sh [16KiB|1MiB]  wrk (a lean C client, 16 connections, one object):
#                                              one target's object GET and health, the proxy's
#                                              redirect and health, nginx with 1 worker
# ROUNDS (default 2), AIS_BENCH_BIN (binaries to measure, default target/release).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
SIZE=${1:-16KiB}
case "$SIZE" in
  16KiB) BYTES=$((16 << 10)); NOBJ=4000; N=${N:-30000}; CONC=32 ;;
  1MiB) BYTES=$((1 << 20)); NOBJ=500; N=${N:-6000}; CONC=16 ;;
  *) echo "size: 16KiB or 1MiB" >&2; exit 2 ;;
esac
need_pkg nginx ${WRK:+wrk}
[ -n "${AIS_BENCH_BIN:-}" ] || build_release
NPORT=$(free_port)
trap 'stop_cluster; stop_nginx; rm -rf "$WORK"' EXIT
start_cluster "$([ -n "${WRK:-}" ] && echo 1 || echo 3)"
PROXY_PID=$(node_field proxy pid)
B=b$SIZE
mkdir -p "$WORK/www/$B"
# The same bytes aisloader writes (see bench/run.sh).
python3 - "$WORK/www/$B" "$BYTES" "$NOBJ" <<'PY'
import sys
root, size, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
blob = bytes((i * 177) & 0xFF for i in range(size))
for i in range(n):
    open(f"{root}/obj-{i}", "wb").write(blob)
PY
start_nginx "$NPORT" "$([ -n "${WRK:-}" ] && echo 1 || echo 2)"
L="$BIN/aisloader --endpoint $EP --json"
$L --bucket "$B" --mode put --num "$NOBJ" --size "$SIZE" --conc 16 >/dev/null

ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$t"; }
switches() { cat $(for p in "$@"; do echo /proc/"$p"/task/*/status; done) | awk '/ctxt_switches/ {t+=$2} END {print t}'; }
HZ=$(getconf CLK_TCK)

# aisloader LABEL PIDS... -- ARGS: server and client CPU per GET.
aisl() {
  local label=$1 pids=() a b ca cb tm
  shift
  while [ "$1" != "--" ]; do pids+=("$1"); shift; done
  shift
  a=$(ticks "${pids[@]}"); ca=$(switches "${pids[@]}")
  tm=$({ /usr/bin/time -f "%U %S" $L "$@" >"$WORK/last.json"; } 2>&1 | tail -1)
  b=$(ticks "${pids[@]}"); cb=$(switches "${pids[@]}")
  python3 - "$label" "$a" "$b" "$ca" "$cb" "$tm" "$N" "$HZ" "$WORK/last.json" <<'PY'
import json, sys
label, a, b, ca, cb, tm, n, hz, out = sys.argv[1:]
a, b, ca, cb, n, hz = int(a), int(b), int(ca), int(cb), int(n), int(hz)
u, s = map(float, tm.split())
d = json.load(open(out))
assert d["errors"] == 0, d
# A thread that exited meanwhile takes its switches along: no figure then.
sw = f"{(cb - ca) / n:.2f}" if cb >= ca else "n/a"
print(f"| {label} | {(b - a) * 1e6 / hz / n:.1f} | {(u + s) * 1e6 / n:.1f} | {sw} | {d['obj_per_s']:.0f} |")
PY
}

# wrk LABEL PID URL: that one process's CPU per request.
wrkm() {
  local a b out
  a=$(ticks "$2")
  out=$(wrk -t1 -c16 -d4s "$3" | awk '/requests in/ {print $1} /Requests\/sec/ {print $2}' | tr '\n' ' ')
  b=$(ticks "$2")
  set -- "$1" "$a" "$b" $out
  python3 -c "import sys; l,a,b,n,r=sys.argv[1:]; print(f'| {l} | {(int(b)-int(a))*1e6/$HZ/int(n):.1f} | {float(r):.0f} |')" "$@"
}

echo "CPU per GET of $SIZE objects ($(date -u +%FT%TZ); load $(cut -d' ' -f1-3 /proc/loadavg))"
if [ -z "${WRK:-}" ]; then
  $L --bucket "$B" --mode get --num $((N / 4)) --distinct "$NOBJ" --size "$SIZE" --conc "$CONC" --direct >/dev/null
  echo "| client -> server | server us/GET | client us/GET | server context switches/GET | GET/s |"
  echo "|---|---|---|---|---|"
  for r in $(seq "${ROUNDS:-2}"); do
    aisl "direct to the owner (targets)" $TPIDS -- --bucket "$B" --mode get --num "$N" --distinct "$NOBJ" --size "$SIZE" --conc "$CONC" --direct
    aisl "through the proxy (proxy + targets)" $TPIDS "$PROXY_PID" -- --bucket "$B" --mode get --num "$N" --distinct "$NOBJ" --size "$SIZE" --conc "$CONC"
    aisl "nginx (2 workers)" $NGINX_PIDS -- --mode get --urls "http://127.0.0.1:$NPORT/$B" --num "$N" --distinct "$NOBJ" --size "$SIZE" --conc "$CONC"
  done
else
  T=$(node_field target url)
  wrk -t1 -c16 -d2s "$T/v1/objects/$B/obj-1" >/dev/null
  echo "| wrk -> server | server us/request | requests/s |"
  echo "|---|---|---|"
  for r in $(seq "${ROUNDS:-2}"); do
    wrkm "target: object GET" "$TPIDS" "$T/v1/objects/$B/obj-1"
    wrkm "target: health" "$TPIDS" "$T/v1/health"
    wrkm "proxy: object GET (the 301)" "$PROXY_PID" "$EP/v1/objects/$B/obj-1"
    wrkm "proxy: health" "$PROXY_PID" "$EP/v1/health"
    wrkm "nginx (1 worker): GET" $NGINX_PIDS "http://127.0.0.1:$NPORT/$B/obj-1"
  done
fi
