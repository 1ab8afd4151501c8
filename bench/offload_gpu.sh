#!/usr/bin/env bash
# The offload benchmark on a GPU host, whole, in one go (issue: GPU decode):
# no network, no build, bounded (~8 minutes on 16 cores + one GPU). For each
# trainer/cluster core split in SPLITS (default "4/12 8/8") it runs
# bench/offload.sh: local ImageFolder (trainer cores), local all cores, the
# seed's ETL with CPU decode and with GPU decode (decode="cuda"), ready arrays,
# training img/s (resnet50, bf16) for each, and the GPU's synthetic ceiling.
# Results: bench/out/offload-gpu-T-C.md.
#
# Prepare here (a machine with network), then carry to the GPU host:
#   cargo build --release --bins
#   python3 -m pip download --no-deps -q -d bench/cache scikit-image==0.26.0
# and carry target/release (aisnode, ais) and bench/cache; the host needs
# python3 with torch, torchvision and Pillow (PY=... to name another).
#   ./bench/offload_gpu.sh                      (SPLITS="4/12 8/8" N=1024 TARGETS=1)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export OFFLINE=1 SKIP_BUILD=1
export PY=${PY:-python3} TARGETS=${TARGETS:-1} N=${N:-1024} PHOTOS=${PHOTOS:-$ROOT/bench/cache}
[ -x target/release/aisnode ] || { echo "target/release/aisnode is missing: build it where cargo is and carry it" >&2; exit 1; }
ls "$PHOTOS"/scikit_image-*.whl >/dev/null 2>&1 || { echo "no photographs wheel in $PHOTOS (see the header)" >&2; exit 1; }
"$PY" -c 'import torch, torchvision, PIL' || { echo "$PY lacks torch/torchvision/Pillow" >&2; exit 1; }
"$PY" -c 'import torch, sys; print("GPU:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")'
DATA=$(mktemp -d /tmp/ais-offload-data.XXXXXX)
trap 'rm -rf "$DATA"' EXIT
"$PY" examples/imagenet-etl/make_dataset.py "$DATA" --train "$N" --val 0 --cache "$PHOTOS"
CPUS=$(nproc)
for split in ${SPLITS:-4/12 8/8}; do
  t=${split%/*}
  c=${split#*/}
  if (( t + c > CPUS )); then
    echo "split $split needs $(( t + c )) cores; this host has $CPUS: skipped" >&2
    continue
  fi
  echo "== trainer on $t cores, cluster on $c"
  DATASET=$DATA TRAINER_CPUS=0-$(( t - 1 )) CLUSTER_CPUS=$t-$(( t + c - 1 )) \
    OUT_NAME=offload-gpu-$t-$c "$ROOT/bench/offload.sh"
done
