#!/usr/bin/env bash
# ETL benchmarks (results in bench/out/etl.md), each a ratio measured in one run:
#  1. io:// script per object: AIStore's model (new `python3 code.py` process per
#     object) vs our warm io:// workers, same parallelism.
#  2. Overhead: identity-transform GETs vs plain GETs of 16 KiB objects.
#  3. Efficiency: Pillow resize+JPEG via ETL GETs vs a local multiprocessing pool.
#  4. ETL init time, warm and cold environment cache.
#  (+ the seed's torchvision script, fresh process vs warm, when torch is installed)
#   QUICK=1 ./bench/etl.sh   smaller counts
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
[ -x .venv/bin/python ] || { python3 -m venv .venv; }
.venv/bin/python -m pip install -q -r python/requirements-test.txt
build_release
WORK=$(mktemp -d /tmp/ais-bench.XXXXXX)
trap 'stop_cluster; rm -rf "$WORK"' EXIT
export AIS_PYTHON=$ROOT/.venv/bin/python
export AIS_ETL_ENV_CACHE=$WORK/envs
start_cluster 3
.venv/bin/python bench/etl_bench.py --endpoint "$EP" --bin "$BIN" --work "$WORK" ${QUICK:+--quick} | tee "$OUT/etl.md"
