#!/usr/bin/env bash
# JPEG quality for the seed's ETL output (issue: GPU decode): PSNR, bytes and
# the trainer's decode cost per quality, beside raw uint8. Results in
# bench/out/jpeg_quality.md.   N=256 ./bench/jpeg_quality.sh
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
[ -x .venv/bin/python ] || python3 -m venv .venv
if [ -z "${OFFLINE:-}" ]; then
  .venv/bin/python -m pip install -q -r python/requirements-test.txt -r python/requirements-torch.txt
fi
WORK=$(mktemp -d /tmp/ais-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
DATA=${DATASET:-$WORK/data}
[ -d "$DATA/train" ] || .venv/bin/python examples/imagenet-etl/make_dataset.py "$DATA" --train "${N:-256}" --val 0
.venv/bin/python bench/jpeg_quality.py "$DATA" --n "${N:-256}" | tee "$OUT/jpeg_quality.md"
