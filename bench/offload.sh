#!/usr/bin/env bash
# Offload benchmark (issue: feed the GPU), results in bench/out/offload.md:
# the cluster pinned to one CPU set, the trainer to another (taskset), a data
# set built from real photographs (examples/imagenet-etl/make_dataset.py);
# images/s of
#   local ImageFolder-style loading with the seed's transform (trainer cores),
#   our BatchDataset with the seed's ETL (JPEG out, decoded by the trainer),
#   the same with decode="cpu" (batched libjpeg-turbo into uint8) and, with a
#   GPU, decode="cuda" (batched nvJPEG in the trainer's process),
#   our BatchDataset with ready uint8 arrays (.npy) + transform_batch,
#   local loading with all cores;
# data-only on any host; with a GPU also training img/s (resnet50, bf16) and
# the GPU's synthetic ceiling.
#   TRAINER_CPUS=0 CLUSTER_CPUS=1 N=1024 ./bench/offload.sh   (defaults: split the cores in half)
# OFFLINE=1: no pip; PY=python3: an interpreter that has torch/torchvision/Pillow
# (else .venv); SKIP_BUILD=1: use the release binaries as they are; PHOTOS=DIR:
# where the photographs' wheel is (make_dataset.py --cache); DATASET=DIR: reuse a
# data set; OUT_NAME: the result file's name (bench/out/OUT_NAME.md).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
PY=${PY:-$ROOT/.venv/bin/python}
if [ "$PY" = "$ROOT/.venv/bin/python" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  if [ -z "${OFFLINE:-}" ]; then
    .venv/bin/python -m pip install -q -r python/requirements-test.txt -r python/requirements-torch.txt
    .venv/bin/python -m pip install -q -e ./python
  fi
fi
# The package from the tree, whatever the interpreter.
export PYTHONPATH=$ROOT/python${PYTHONPATH:+:$PYTHONPATH}
[ -n "${SKIP_BUILD:-}" ] || build_release
command -v taskset >/dev/null || { echo "taskset (util-linux) is needed" >&2; exit 1; }
CPUS=$(nproc)
HALF=$(( CPUS / 2 > 0 ? CPUS / 2 : 1 ))
TRAINER_CPUS=${TRAINER_CPUS:-0-$(( HALF - 1 ))}
CLUSTER_CPUS=${CLUSTER_CPUS:-$(( HALF < CPUS ? HALF : 0 ))-$(( CPUS - 1 ))}
ALL_CPUS=0-$(( CPUS - 1 ))
N=${N:-1024}
WORK=$(mktemp -d /tmp/ais-bench.XXXXXX)
trap 'stop_cluster; rm -rf "$WORK"' EXIT
export AIS_PYTHON=$PY
export AIS_ETL_ENV_CACHE=$WORK/envs
DATA=${DATASET:-$WORK/data}
[ -d "$DATA/train" ] || "$PY" examples/imagenet-etl/make_dataset.py "$DATA" --train "$N" --val 0 ${PHOTOS:+--cache "$PHOTOS"}
CLUSTER_PREFIX="taskset -c $CLUSTER_CPUS" start_cluster "${TARGETS:-2}"
"$PY" bench/offload_bench.py setup --endpoint "$EP" --data "$DATA"
run() { taskset -c "$1" "$PY" bench/offload_bench.py "$2" --endpoint "$EP" --data "$DATA" --cpus "$1" --out "$WORK/rows.jsonl"; }
run "$TRAINER_CPUS" local
run "$TRAINER_CPUS" seed
run "$TRAINER_CPUS" seed-cpu
if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  run "$TRAINER_CPUS" seed-gpu
fi
run "$TRAINER_CPUS" ready
run "$ALL_CPUS" local-all
# The local loader again with the malloc settings aisnode and its ETL workers
# use (crates/ais-etl WORKER_MALLOC_TUNABLES), so the comparison shows what
# they alone are worth to a trainer.
GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=134217728 run "$TRAINER_CPUS" local-tuned
"$PY" bench/offload_bench.py report --out "$WORK/rows.jsonl" --trainer-cpus "$TRAINER_CPUS" --cluster-cpus "$CLUSTER_CPUS" | tee "$OUT/${OUT_NAME:-offload}.md"
