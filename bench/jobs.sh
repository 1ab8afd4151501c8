#!/usr/bin/env bash
# Offline jobs benchmark (results in bench/out/jobs.md): 10,000 x 64 KiB
# objects, bucket-to-bucket with md5 and Pillow-resize transforms, and a plain
# bucket copy, each vs a client-side pipeline over the REST API doing the same
# work with the same concurrency; plus job start latency on an idle cluster.
#   QUICK=1 ./bench/jobs.sh   fewer objects
source "$(dirname "$0")/lib.sh"
bench_setup
export AIS_PYTHON=$ROOT/.venv/bin/python
start_cluster 3
.venv/bin/python bench/jobs_bench.py --endpoint "$EP" --bin "$BIN" ${QUICK:+--quick} | tee "$OUT/jobs.md"
