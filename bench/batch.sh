#!/usr/bin/env bash
# Get-Batch and shard benchmarks (results in bench/out/batch.md), each a
# ratio measured in one run from one client:
#  1. 10,000 x 16 KiB objects: Get-Batch in batches of 256 vs per-object GETs
#  2. the same with an identity ETL: Get-Batch with etl_name vs per-object ETL GETs
#  3. reading the last member of a 1 GiB tar with archpath: p50 latency
#  4. peak target RSS while a 10,000-item batch streams
#   QUICK=1 ./bench/batch.sh   smaller counts
source "$(dirname "$0")/lib.sh"
bench_setup
export AIS_PYTHON=$ROOT/.venv/bin/python
export AIS_ETL_ENV_CACHE=$WORK/envs
start_cluster 3
.venv/bin/python bench/batch_bench.py --endpoint "$EP" --bin "$BIN" --work "$WORK" --tpids "$TPIDS" ${QUICK:+--quick} | tee "$OUT/batch.md"
