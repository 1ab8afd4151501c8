"""Runs every command of examples/imagenet-etl/README.md against a real
cluster (dedicated to this test): data set from real photographs, upload, the
seed's torchvision ETLs via `ais etl init code ... --comm-type io://`, single
objects via `ais` and `curl` (incl. `?uuid=`), and a few training steps.

Only the counts shrink (documented substitutions below); `./scripts/playground`
is replaced by the test's own cluster, and the release binaries by the ones
under test.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from ais_cluster import Cluster, default_bin_dir

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "imagenet-etl"

SUBSTITUTIONS = [
    ("--train 2000 --val 400", "--train 48 --val 8"),
    ("val/0002001.jpg", "val/0000049.jpg"),
    ("--steps 200", "--steps 3 --val-steps 1 --batch-size 8"),
    ("$PWD/../../target/release", str(default_bin_dir())),
    ("pip install", f"{sys.executable} -m pip install -q"),
    ("../../python", str(EXAMPLE.parents[1] / "python")),
]


def readme_commands() -> list[str]:
    text = (EXAMPLE / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    lines = [line for b in blocks for line in b.strip().splitlines()]
    assert lines[0] == "./scripts/playground", lines[0]
    return lines[1:]


def test_readme_walkthrough(tmp_path: Path) -> None:
    cluster = Cluster(base_dir=tmp_path / "cluster").start()
    try:
        work = tmp_path / "example"
        shutil.copytree(EXAMPLE, work)
        script = ["set -euo pipefail", f"export PATH={Path(sys.executable).parent}:$PATH"]
        for line in readme_commands():
            for a, b in SUBSTITUTIONS:
                line = line.replace(a, b)
            line = line.replace("http://localhost:8080", cluster.url)
            script.append(f"echo '+ {line}'")
            script.append(line)
        p = subprocess.run(
            ["bash", "-c", "\n".join(script)],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=900,
            env=dict(os.environ, AIS_PYTHON=sys.executable),
        )
        out = p.stdout + p.stderr
        assert p.returncode == 0, out[-6000:]
        # What the walkthrough promises, checked on its outputs.
        assert "48 train + 8 val images of 10 classes" in out
        assert re.search(r"my-first-etl\s+Running\s+io://", out), out
        assert re.search(r"my-second-etl\s+Running\s+io://", out), out
        assert "train/0000001.cls" in out and "train/0000001.jpg" in out
        orig = Image.open(work / "original.jpg")
        assert orig.size != (224, 224)
        for f in ("transformed.jpg", "transformed-curl.jpg", "transformed-val.jpg"):
            assert Image.open(io.BytesIO((work / f).read_bytes())).size == (224, 224), f
        assert re.search(r"Epoch \[0\]\[0/\d+\] .*Loss \d", out), out[-3000:]
        assert "epoch 0: 3 steps" in out
        assert " * Val Loss" in out
        assert '"ais://imagenet" destroyed' in out
    finally:
        cluster.stop()
