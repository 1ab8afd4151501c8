"""ETL benchmarks against a running cluster (started by bench/etl.sh).

Every figure is a ratio of two things measured in this same run on this same
machine, so a noisy shared host moves both sides alike.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from PIL import Image

SEED_STYLE = """\
import io, sys
import numpy as np
from PIL import Image

def to_bytes(img):
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    return buf.getvalue()

if __name__ == "__main__":
    data = sys.stdin.buffer.read()
    img = Image.open(io.BytesIO(data)).convert("RGB").resize((224, 224))
    arr = np.asarray(img, dtype=np.float32) / 255.0
    img = Image.fromarray((arr * 255).astype("uint8"))
    sys.stdout.buffer.write(to_bytes(img))
"""

# The seed post's torchvision script, exactly as the example ships it.
TORCH_SEED = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "imagenet-etl", "code.py")).read()

RESIZE_FN = """\
import io
from PIL import Image

def transform(data):
    img = Image.open(io.BytesIO(data)).convert("RGB").resize((224, 224))
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    return buf.getvalue()
"""

IDENTITY = "def transform(data):\n    return data\n"


def local_resize(data: bytes) -> bytes:
    img = Image.open(io.BytesIO(data)).convert("RGB").resize((224, 224))
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    return buf.getvalue()


def local_resize_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return local_resize(f.read())


def make_jpeg(target_kib: int, seed: int) -> bytes:
    """A noisy photo-like JPEG of roughly target_kib KiB."""
    import numpy as np

    rng = np.random.default_rng(seed)
    side = 64
    while True:
        base = rng.integers(0, 255, (side // 8, side // 8, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((side, side), Image.BILINEAR)
        noise = rng.integers(0, 40, (side, side, 3), dtype=np.uint8)
        arr = np.clip(np.asarray(img, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=90)
        if buf.tell() >= target_kib * 1024:
            return buf.getvalue()
        side += 32


class Cluster:
    def __init__(self, ep: str) -> None:
        self.ep = ep.rstrip("/")
        self.s = requests.Session()

    def bucket(self, name: str) -> None:
        r = self.s.post(f"{self.ep}/v1/buckets/{name}", json={"action": "create-bck"})
        assert r.status_code in (200, 409), r.text

    def put(self, bucket: str, name: str, data: bytes) -> None:
        r = self.s.put(f"{self.ep}/v1/objects/{bucket}/{name}", data=data)
        r.raise_for_status()

    def init(self, name: str, code: str, comm: str, deps: str = "", pool: int = 0) -> float:
        body = {
            "name": name,
            "runtime": "python3",
            "communication": comm,
            "code": base64.b64encode(code.encode()).decode(),
            "dependencies": base64.b64encode(deps.encode()).decode(),
            "init_timeout": "10m",
            "obj_timeout": "2m",
        }
        if pool:
            body["pool_size"] = pool
        t = time.perf_counter()
        r = self.s.put(f"{self.ep}/v1/etl", json=body)
        assert r.status_code == 200, r.text
        return time.perf_counter() - t

    def delete_etl(self, name: str) -> None:
        self.s.delete(f"{self.ep}/v1/etl/{name}")

    def workers(self) -> int:
        etls = self.s.get(f"{self.ep}/v1/etl").json()
        name = etls[0]["id"]
        d = self.s.get(f"{self.ep}/v1/etl/{name}").json()
        return sum(t["workers"] for t in d["targets"])


def aisloader(bin_dir: str, ep: str, *args: str) -> dict:
    out = subprocess.run(
        [f"{bin_dir}/aisloader", "--endpoint", ep, "--json", *args], check=True, capture_output=True, text=True
    ).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return rows[-1]


def fresh_process_rate(code_path: str, blobs: list[bytes], par: int) -> float:
    def one(b: bytes) -> None:
        p = subprocess.run([sys.executable, code_path], input=b, capture_output=True)
        assert p.returncode == 0 and p.stdout, p.stderr[-500:]

    t = time.perf_counter()
    with ThreadPoolExecutor(par) as ex:
        list(ex.map(one, blobs))
    return len(blobs) / (time.perf_counter() - t)


def bench_args() -> argparse.Namespace:
    """The arguments every bench/*.sh passes to its Python half."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--quick", action="store_true")
    return ap.parse_args()


def main() -> None:
    a = bench_args()
    c = Cluster(a.endpoint)
    q = a.quick
    lines: list[str] = []
    emit = lines.append

    # ---- 4. init time, cold then warm (environment cache starts empty in this run)
    deps = "numpy\nPillow\n"
    cold = c.init("init-cold", IDENTITY, "hpush://", deps)
    c.delete_etl("init-cold")
    warm = [c.init(f"init-warm{i}", IDENTITY, "hpush://", deps) for i in range(3)]
    for i in range(3):
        c.delete_etl(f"init-warm{i}")

    # ---- 1. io:// vs a new process per object (AIStore's io:// model)
    c.bucket("img64")
    n1 = 60 if q else 300
    blobs = [make_jpeg(64, i) for i in range(min(n1, 40))]
    for i in range(n1):
        c.put("img64", f"obj-{i}", blobs[i % len(blobs)])
    c.init("seed-io", SEED_STYLE, "io://", deps)
    workers = c.workers()
    par = workers
    ours = aisloader(a.bin, a.endpoint, "--bucket", "img64", "--mode", "get", "--num", str(n1), "--conc", str(par * 2), "--query", "etl_name=seed-io")
    assert ours["errors"] == 0, ours
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False, dir=a.work) as f:
        f.write(SEED_STYLE)
    nfresh = 30 if q else 90
    theirs = fresh_process_rate(f.name, [blobs[i % len(blobs)] for i in range(nfresh)], par)
    c.delete_etl("seed-io")

    # ---- torchvision seed script, when torch is installed
    torch_line = None
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401

        c.init("seed-torch", TORCH_SEED, "io://", "")
        nt = 60 if q else 200
        t_ours = aisloader(a.bin, a.endpoint, "--bucket", "img64", "--mode", "get", "--num", str(nt), "--distinct", str(n1), "--conc", str(par * 2), "--query", "etl_name=seed-torch")
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False, dir=a.work) as f:
            f.write(TORCH_SEED)
        t_theirs = fresh_process_rate(f.name, blobs[: max(par, 4)], par)
        c.delete_etl("seed-torch")
        torch_line = (t_ours, t_theirs)
    except ImportError:
        pass

    # ---- 2. overhead: identity ETL vs plain GET, 16 KiB
    c.bucket("b16k")
    n2 = 2000 if q else 20000
    aisloader(a.bin, a.endpoint, "--bucket", "b16k", "--mode", "put", "--num", "2000", "--size", "16KiB", "--conc", "32")
    c.init("identity", IDENTITY, "hpush://")
    lat_plain = aisloader(a.bin, a.endpoint, "--bucket", "b16k", "--mode", "get", "--num", "2000", "--distinct", "2000", "--conc", "1")
    lat_etl = aisloader(a.bin, a.endpoint, "--bucket", "b16k", "--mode", "get", "--num", "2000", "--distinct", "2000", "--conc", "1", "--query", "etl_name=identity")
    thr_plain = aisloader(a.bin, a.endpoint, "--bucket", "b16k", "--mode", "get", "--num", str(n2), "--distinct", "2000", "--conc", "32")
    thr_etl = aisloader(a.bin, a.endpoint, "--bucket", "b16k", "--mode", "get", "--num", str(n2), "--distinct", "2000", "--conc", "32", "--query", "etl_name=identity")
    assert thr_etl["errors"] == 0, thr_etl
    c.delete_etl("identity")

    # ---- 3. efficiency: ETL resize vs local multiprocessing pool, same process count
    c.bucket("img100")
    n3 = 150 if q else 900
    blobs100 = [make_jpeg(100, 1000 + i) for i in range(40)]
    for i in range(n3):
        c.put("img100", f"obj-{i}", blobs100[i % len(blobs100)])
    c.init("resize", RESIZE_FN, "hpush://", deps, pool=int(os.environ.get("RESIZE_POOL", "2")))
    w = c.workers()
    etl = aisloader(a.bin, a.endpoint, "--bucket", "img100", "--mode", "get", "--num", str(n3), "--conc", str(w * 2), "--query", "etl_name=resize")
    assert etl["errors"] == 0, etl
    etl_direct = aisloader(a.bin, a.endpoint, "--bucket", "img100", "--mode", "get", "--num", str(n3), "--conc", str(w * 2), "--query", "etl_name=resize", "--direct")
    assert etl_direct["errors"] == 0, etl_direct
    # The same files on local disk, read by the pool's processes.
    local_dir = os.path.join(a.work, "local-img100")
    os.makedirs(local_dir, exist_ok=True)
    local_in = []
    for i in range(n3):
        path = os.path.join(local_dir, f"obj-{i}")
        with open(path, "wb") as f:
            f.write(blobs100[i % len(blobs100)])
        local_in.append(path)
    with multiprocessing.Pool(w) as pool:
        pool.map(local_resize_file, local_in[: w * 2])  # warm the pool
        t = time.perf_counter()
        pool.map(local_resize_file, local_in, chunksize=4)
        local_rate = n3 / (time.perf_counter() - t)
    c.delete_etl("resize")

    cores = os.cpu_count()
    emit(f"Machine: {cores} cores; cluster: 1 proxy + 3 targets; {workers} ETL workers in total.\n")
    emit("| benchmark | ours | baseline | ratio | goal |")
    emit("|---|---|---|---|---|")
    emit(
        f"| seed-style io:// script (numpy+Pillow, 64 KiB JPEG), parallelism {par} | {ours['obj_per_s']:.0f} obj/s (warm io:// workers) "
        f"| {theirs:.1f} obj/s (`python3 code.py` per object) | **{ours['obj_per_s'] / theirs:.0f}x** | >= 20x |"
    )
    if torch_line:
        emit(
            f"| seed torchvision script | {torch_line[0]['obj_per_s']:.0f} obj/s | {torch_line[1]:.2f} obj/s | **{torch_line[0]['obj_per_s'] / torch_line[1]:.0f}x** | >= 500x |"
        )
    else:
        emit("| seed torchvision script | not measured: torch not installed in .venv | | | >= 500x |")
    emit(
        f"| identity ETL vs plain GET, 16 KiB, 1 client: p50 | {lat_etl['p50_ms']:.3f} ms | {lat_plain['p50_ms']:.3f} ms "
        f"| **+{lat_etl['p50_ms'] - lat_plain['p50_ms']:.3f} ms** | <= +0.5 ms |"
    )
    emit(
        f"| same, p99 | {lat_etl['p99_ms']:.3f} ms | {lat_plain['p99_ms']:.3f} ms | +{lat_etl['p99_ms'] - lat_plain['p99_ms']:.3f} ms | |"
    )
    emit(
        f"| identity ETL throughput, 16 KiB, 32 clients | {thr_etl['obj_per_s']:.0f} obj/s | {thr_plain['obj_per_s']:.0f} obj/s (plain GET) "
        f"| {thr_etl['obj_per_s'] / thr_plain['obj_per_s']:.2f}x | >= 2000 obj/s |"
    )
    emit(
        f"| Pillow resize-to-224 + JPEG, 100 KiB JPEGs, {w} processes | {etl['obj_per_s']:.0f} img/s (ETL GETs) "
        f"| {local_rate:.0f} img/s (local multiprocessing.Pool({w})) | **{etl['obj_per_s'] / local_rate:.2f}x** | >= 0.85 |"
    )
    emit(
        f"| same, GETs sent straight to the owner target (client-side HRW, SDK `direct=True`) | {etl_direct['obj_per_s']:.0f} img/s "
        f"| {local_rate:.0f} img/s | **{etl_direct['obj_per_s'] / local_rate:.2f}x** | >= 0.85 |"
    )
    emit(
        f"| ETL init, 3 targets, deps numpy+Pillow | warm cache: {min(warm):.2f} s (best of 3; max {max(warm):.2f} s) | cold cache: {cold:.2f} s | | warm <= 2 s |"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
