# Shared by the benchmark scripts: build, start a release cluster on loopback, clean up.
# Usage: source bench/lib.sh; start_cluster [TARGETS]   (sets EP, WORK, BIN, TPIDS, PG, STATE)
# CLUSTER_PREFIX (e.g. "taskset -c 1") runs the cluster under a command (CPU pinning).
# Node pids and URLs come from the playground's state file ($STATE, see
# `aisnode playground --state`), not from the process table.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/bench/out
BIN=${AIS_BENCH_BIN:-$ROOT/target/release}
mkdir -p "$OUT"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

build_release() { (cd "$ROOT" && cargo build --release --bins -q); }

# The Python benchmarks' set-up: the venv with the test packages, release
# binaries, a scratch dir ($WORK) removed with the cluster on exit.
bench_setup() {
  cd "$ROOT"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/python -m pip install -q -r python/requirements-test.txt
  build_release
  WORK=$(mktemp -d /tmp/ais-bench.XXXXXX)
  trap 'stop_cluster; rm -rf "$WORK"' EXIT
}

# node_field ROLE FIELD: FIELD (pid, url, id, log, restarts) of every node with ROLE (proxy|target|all), space-separated.
node_field() {
  python3 - "$STATE" "$1" "$2" <<'PY'
import json, sys
state, role, field = sys.argv[1:]
nodes = json.load(open(state))["nodes"]
print(" ".join(str(n[field]) for n in nodes if role in ("all", n["role"])))
PY
}

start_cluster() {
  local targets=${1:-3}
  WORK=${WORK:-$(mktemp -d /tmp/ais-bench.XXXXXX)}
  PORT=$(free_port)
  EP=http://127.0.0.1:$PORT
  STATE=$WORK/cluster.json
  ${CLUSTER_PREFIX:-} "$BIN/aisnode" playground --targets "$targets" --proxies "${PROXIES:-1}" --mpaths "${MPATHS:-1}" --port "$PORT" --data "$WORK/cluster" --state "$STATE" >"$WORK/cluster.log" 2>&1 &
  PG=$!
  local n=0
  for _ in $(seq 150); do
    if ! kill -0 "$PG" 2>/dev/null; then
      echo "playground exited during start-up; see $WORK/cluster.log" >&2
      tail -20 "$WORK/cluster.log" >&2
      return 1
    fi
    if [ -s "$STATE" ]; then
      n=$(curl -s "$EP/v1/daemon?what=smap" | python3 -c 'import sys,json; print(len(json.load(sys.stdin)["tmap"]))' 2>/dev/null || echo 0)
      [ "$n" = "$targets" ] && break
    fi
    sleep 0.2
  done
  if [ "$n" != "$targets" ]; then
    echo "cluster did not come up with $targets targets; see $WORK/cluster.log" >&2
    return 1
  fi
  TPIDS=$(node_field target pid)
  export EP WORK TPIDS STATE
}

stop_cluster() {
  if [ -n "${PG:-}" ]; then
    # A node that crashed and was restarted by the playground makes the numbers suspect.
    if [ -s "${STATE:-}" ] && [ "$(node_field all restarts | tr -d ' 0')" != "" ]; then
      echo "WARNING: a node was restarted during the run (restarts: $(node_field all restarts)); see $WORK/cluster.log" >&2
    fi
    # The playground stops every node (SIGTERM, SIGKILL after a grace) on SIGINT.
    kill -INT "$PG" 2>/dev/null || true
    wait "$PG" 2>/dev/null || true
    PG=
  fi
}

# need_pkg CMD...: installs each missing command's Debian package (same name).
need_pkg() {
  local c
  for c in "$@"; do
    if ! command -v "$c" >/dev/null; then
      echo "installing $c (Debian package)"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$c" >/dev/null
    fi
  done
}

# start_nginx PORT WORKERS: nginx serving $WORK/www on 127.0.0.1:PORT the way
# the comparisons need it (sendfile, no access log, keep-alive without limit);
# sets NGINX_PIDS (its workers). Stop it with stop_nginx.
start_nginx() {
  cat >"$WORK/nginx.conf" <<NG
user root;
worker_processes $2;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err;
events { worker_connections 4096; }
http {
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  server { listen 127.0.0.1:$1; root $WORK/www; }
}
NG
  nginx -c "$WORK/nginx.conf"
  sleep 0.5
  NGINX_PIDS=$(pgrep -P "$(cat "$WORK/nginx.pid")" | tr '\n' ' ')
}

stop_nginx() {
  if [ -f "${WORK:-}/nginx.pid" ]; then kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true; fi
}
