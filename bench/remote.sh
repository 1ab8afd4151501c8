#!/usr/bin/env bash
# Remote s3:// buckets (issue: speak S3, front cloud buckets), one run, one client:
#  1. cold vs warm GET p50 with DELAY_MS (default 20) injected per backend request;
#  2. a prefetch job vs a client-side boto3 download of the same objects
#     through the same delayed endpoint.
# The backend: moto's S3 server on loopback behind a delaying HTTP proxy.
#   N=200 SIZE=131072 DELAY_MS=20 ./bench/remote.sh
source "$(dirname "$0")/lib.sh"
bench_setup
MOTO_PORT=$(free_port)
PROXY_PORT=$(free_port)
.venv/bin/moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
MOTO=$!
trap 'stop_cluster; kill $MOTO 2>/dev/null; wait $MOTO 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do curl -s "http://127.0.0.1:$MOTO_PORT" >/dev/null && break; sleep 0.2; done
export AIS_S3_ENDPOINT=http://127.0.0.1:$PROXY_PORT AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
start_cluster 3
echo "load before: $(uptime)" >&2
.venv/bin/python bench/remote_bench.py --endpoint "$EP" --moto "http://127.0.0.1:$MOTO_PORT" --proxy-port "$PROXY_PORT" \
  --n "${N:-200}" --size "${SIZE:-131072}" --delay-ms "${DELAY_MS:-20}" | tee "$OUT/remote.md"
echo "load after: $(uptime)" >&2
