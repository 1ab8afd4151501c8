#!/usr/bin/env bash
# boto3 1 MiB GETs through the S3 front door (/s3) vs the native API, same
# client process and concurrency, one release cluster (1 proxy + 3 targets on
# loopback); prints a Markdown table with the ratios (bench/out/s3.md).
#   SECONDS_PER_RUN=8 ROUNDS=3 CONC=1,8 ./bench/s3.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -r python/requirements-test.txt
build_release
WORK=$(mktemp -d /tmp/ais-bench.XXXXXX)
trap 'stop_cluster; rm -rf "$WORK"' EXIT
start_cluster 3
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); cores: $(nproc)"
.venv/bin/python bench/s3_bench.py --endpoint "$EP" --seconds "${SECONDS_PER_RUN:-8}" \
  --rounds "${ROUNDS:-3}" --conc "${CONC:-1,8}" | tee "$OUT/s3.md"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
