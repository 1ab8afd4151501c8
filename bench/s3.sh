#!/usr/bin/env bash
# boto3 1 MiB GETs through the S3 front door (/s3) vs the native API, same
# client process and concurrency, one release cluster (1 proxy + 3 targets on
# loopback); prints a Markdown table with the ratios (bench/out/s3.md). Then a
# 1 GiB object PUT and GET through the proxy's /s3 (curl), with every node's
# peak RSS: bodies stream, nothing holds an object in memory.
#   SECONDS_PER_RUN=8 ROUNDS=3 CONC=1,8 BIG_MIB=1024 ./bench/s3.sh
source "$(dirname "$0")/lib.sh"
bench_setup
start_cluster 3
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); cores: $(nproc)"
.venv/bin/python bench/s3_bench.py --endpoint "$EP" --seconds "${SECONDS_PER_RUN:-8}" \
  --rounds "${ROUNDS:-3}" --conc "${CONC:-1,8}" | tee "$OUT/s3.md"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
big=${BIG_MIB:-1024}
if [ "$big" -gt 0 ]; then
  head -c $((big << 20)) /dev/urandom >"$WORK/big"
  curl -sf -o /dev/null -X PUT "$EP/s3/s3big"
  curl -sf -o /dev/null -w "PUT ${big} MiB via /s3 at the proxy: %{time_total} s\n" -T "$WORK/big" "$EP/s3/s3big/big" | tee -a "$OUT/s3.md"
  curl -sf -o "$WORK/back" -w "GET ${big} MiB via /s3 at the proxy: %{time_total} s\n" "$EP/s3/s3big/big" | tee -a "$OUT/s3.md"
  cmp -s "$WORK/big" "$WORK/back" && echo "read back byte-exact" | tee -a "$OUT/s3.md"
  for pid in $(node_field all pid); do
    echo "peak RSS (VmHWM) pid $pid: $(awk '/VmHWM/ {print $2, $3}' /proc/$pid/status)" | tee -a "$OUT/s3.md"
  done
fi
