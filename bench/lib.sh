# Shared by the benchmark scripts: build, start a release cluster on loopback, clean up.
# Usage: source bench/lib.sh; start_cluster [TARGETS]   (sets EP, WORK, BIN, TPIDS, PG)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/bench/out
BIN=$ROOT/target/release
mkdir -p "$OUT"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

build_release() { (cd "$ROOT" && cargo build --release --bins -q); }

start_cluster() {
  local targets=${1:-3}
  WORK=${WORK:-$(mktemp -d /tmp/ais-bench.XXXXXX)}
  PORT=$(free_port)
  EP=http://127.0.0.1:$PORT
  "$BIN/aisnode" playground --targets "$targets" --port "$PORT" --data "$WORK/cluster" >"$WORK/cluster.log" 2>&1 &
  PG=$!
  for _ in $(seq 150); do
    n=$(curl -s "$EP/v1/daemon?what=smap" | python3 -c 'import sys,json; print(len(json.load(sys.stdin)["tmap"]))' 2>/dev/null || echo 0)
    [ "$n" = "$targets" ] && break
    sleep 0.2
  done
  TPIDS=$(pgrep -f -- "--data $WORK/cluster/target" | tr '\n' ' ')
  export EP WORK TPIDS
}

stop_cluster() {
  if [ -n "${PG:-}" ]; then kill -INT "$PG" 2>/dev/null || true; wait "$PG" 2>/dev/null || true; PG=; fi
}
