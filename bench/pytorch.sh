#!/usr/bin/env bash
# PyTorch DataLoader benchmark (results in bench/out/pytorch.md):
#  (a) aistore_rs.pytorch.Dataset with the cluster-side ETL,
#  (b) torchvision ImageFolder on local disk with the transform in the DataLoader,
#  (c) the official SDK's AISMapDataset with the same ETL;
# plus private memory of DataLoader workers over a 1,000,000-name listing.
#   QUICK=1 ./bench/pytorch.sh   smaller counts (no 1M listing)
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -r python/requirements-test.txt -r python/requirements-torch.txt
.venv/bin/python -m pip install -q -e ./python
build_release
WORK=$(mktemp -d /tmp/ais-bench.XXXXXX)
trap 'stop_cluster; rm -rf "$WORK"' EXIT
export AIS_PYTHON=$ROOT/.venv/bin/python
start_cluster 3
.venv/bin/python bench/pytorch_bench.py --endpoint "$EP" --bin "$BIN" --work "$WORK" ${QUICK:+--quick} | tee "$OUT/pytorch.md"
