#!/usr/bin/env bash
# dSort benchmark (results in bench/out/dsort.md): re-shard >= 1 GiB of tar
# shards (.jpg + .cls records) into shards of another size, in alphanumeric
# order, with a dSort job vs a single-client Python re-shard over the REST
# API (download every shard, index and sort the records, build and upload
# the new shards), same cluster, same run; outputs of both checked equal.
#   SIZE_MIB=1024 SHARDS=64 TARGETS=3 ./bench/dsort.sh
source "$(dirname "$0")/lib.sh"
bench_setup
start_cluster "${TARGETS:-3}"
.venv/bin/python bench/dsort_bench.py --endpoint "$EP" --size-mib "${SIZE_MIB:-1024}" \
  --shards "${SHARDS:-64}" --targets "${TARGETS:-3}" | tee "$OUT/dsort.md"
