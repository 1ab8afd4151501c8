#!/usr/bin/env bash
# Several proxies (results in bench/out/proxies.md): one cluster with 3
# proxies and 3 targets; small-object GET and PUT throughput with every
# client on the primary vs clients spread over the 3 proxies (alternating
# rounds, same run), and the latency of a committed metadata change (bucket
# create + destroy) through the primary and forwarded by another proxy.
#   QUICK=1 ./bench/proxies.sh   shorter rounds
source "$(dirname "$0")/lib.sh"
bench_setup
PROXIES=3 start_cluster 3
P=$(node_field proxy url | tr ' ' ',')
.venv/bin/python bench/proxies_bench.py --proxies "$P" ${QUICK:+--quick} | tee "$OUT/proxies.md"
