"""DataLoader images/s from the cluster with near-data ETL vs local ImageFolder
vs the official SDK; and DataLoader worker memory over a huge listing."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import time

import numpy as np
import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from etl_bench import bench_args  # noqa: E402
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "imagenet-etl")
NORM = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
TRAIN_TF = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), transforms.ToTensor(), NORM])


def run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def rate(loader: DataLoader, n: int) -> float:
    it = iter(loader)
    next(it)  # start-up (worker spawn, first batch) is not throughput
    t = time.perf_counter()
    seen = 0
    for images, _ in it:
        seen += len(images)
    return seen / (time.perf_counter() - t)


class SdkImages(torch.utils.data.Dataset):
    """AISMapDataset yields (name, bytes); decode like our Dataset does."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int):
        from aistore_rs.pytorch import default_decode

        name, data = self.inner[i]
        return default_decode(name, data), 0


def private_kib(pid: int) -> int:
    tot = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean", "Private_Dirty")):
                tot += int(line.split()[1])
    return tot


def main() -> None:
    a = bench_args()
    ep = a.endpoint
    env = dict(os.environ, AIS_ENDPOINT=ep)
    n = 300 if a.quick else 1500
    workers, batch = 2, 32
    data = os.path.join(a.work, "imagenet")
    run(sys.executable, os.path.join(EXAMPLE, "make_dataset.py"), data, "--train", str(n), "--val", "0")
    # ImageFolder layout of the same files for (b).
    folder = os.path.join(a.work, "folder")
    for f in sorted(os.listdir(os.path.join(data, "train"))):
        if f.endswith(".jpg"):
            cls = open(os.path.join(data, "train", f[:-4] + ".cls")).read().strip()
            os.makedirs(os.path.join(folder, cls), exist_ok=True)
            os.link(os.path.join(data, "train", f), os.path.join(folder, cls, f))
    subprocess.run([f"{a.bin}/ais", "bucket", "create", "ais://imagenet"], check=True, env=env, capture_output=True)
    subprocess.run([f"{a.bin}/ais", "put", data, "ais://imagenet", "-r"], check=True, env=env, capture_output=True)
    # jpg-only bucket for the SDK (it applies the ETL to every listed object).
    subprocess.run([f"{a.bin}/ais", "bucket", "create", "ais://imagenet-jpg"], check=True, env=env, capture_output=True)
    jpgdir = os.path.join(a.work, "jpgonly")
    os.makedirs(jpgdir)
    for f in os.listdir(os.path.join(data, "train")):
        if f.endswith(".jpg"):
            os.link(os.path.join(data, "train", f), os.path.join(jpgdir, f))
    subprocess.run([f"{a.bin}/ais", "put", jpgdir, "ais://imagenet-jpg/train/", "-r"], check=True, env=env, capture_output=True)
    code = open(os.path.join(EXAMPLE, "code.py")).read()
    r = requests.put(
        f"{ep}/v1/etl",
        json={
            "name": "my-first-etl",
            "runtime": "python3",
            "communication": "io://",
            "code": base64.b64encode(code.encode()).decode(),
            "dependencies": base64.b64encode(b"torch\ntorchvision\n").decode(),
            "init_timeout": "10m",
        },
        timeout=900,
    )
    assert r.status_code == 200, r.text
    etl_workers = sum(t["workers"] for t in requests.get(f"{ep}/v1/etl/my-first-etl").json()["targets"])

    from aistore.pytorch import AISMapDataset
    from aistore.sdk import Client as SdkClient

    from aistore_rs.pytorch import Dataset

    ours = Dataset(ep, "imagenet", prefix="train/", transform_id="my-first-etl", transform_filter=lambda x: x.endswith(".jpg"))
    res = {}
    for _ in range(2):  # best of two: shared machine
        res.setdefault("a", []).append(rate(DataLoader(ours, batch_size=batch, shuffle=True, num_workers=workers), n))
        local = datasets.ImageFolder(folder, TRAIN_TF)
        res.setdefault("b", []).append(rate(DataLoader(local, batch_size=batch, shuffle=True, num_workers=workers), n))
        bck = SdkClient(ep).bucket("imagenet-jpg")
        sdk = SdkImages(AISMapDataset(ais_source_list=[bck], prefix_map={bck: "train/"}, etl_name="my-first-etl"))
        res.setdefault("c", []).append(rate(DataLoader(sdk, batch_size=batch, shuffle=True, num_workers=workers), n))
    ra, rb, rc = (max(res[k]) for k in "abc")
    print(f"Machine: {os.cpu_count()} cores; {n} images (~{sum(os.path.getsize(os.path.join(jpgdir, f)) for f in os.listdir(jpgdir)) // n // 1024} KiB JPEGs); "
          f"DataLoader num_workers={workers}, batch {batch}; cluster ETL workers: {etl_workers}; transform: the seed's (RandomResizedCrop(224), flip, ToTensor, Normalize).\n")
    print("| loader | images/s | vs ImageFolder |")
    print("|---|---|---|")
    print(f"| (a) aistore_rs.pytorch.Dataset, transform on the targets (ETL) | {ra:.0f} | **{ra / rb:.2f}x** (goal >= 0.9) |")
    print(f"| (b) torchvision ImageFolder, local disk, transform in the DataLoader | {rb:.0f} | 1.00x |")
    print(f"| (c) official SDK AISMapDataset with the same ETL | {rc:.0f} | {rc / rb:.2f}x ((a)/(c) = **{ra / rc:.2f}x**, goal > 1) |")
    print()

    if a.quick:
        return
    # ---- worker memory over a 1,000,000-name listing: names created directly
    # in one target's mountpath (empty files; listing needs no metadata).
    big = 1_000_000
    subprocess.run([f"{a.bin}/ais", "bucket", "create", "ais://names"], check=True, env=env, capture_output=True)
    mp = os.path.join(a.work, "cluster", "target1", "mp1", "@ais", "names", "n")
    os.makedirs(mp, exist_ok=True)
    for i in range(big):
        open(os.path.join(mp, f"{i:07d}.jpg"), "wb").close()
    t = time.perf_counter()
    names_ds = Dataset(ep, "names", prefix="n/", labels=False)
    list_secs = time.perf_counter() - t
    assert len(names_ds) == big, len(names_ds)

    class Touch(torch.utils.data.Dataset):
        """Touches every name like __getitem__ does, without fetching (memory only)."""

        def __init__(self, names) -> None:
            self.names = names

        def __len__(self) -> int:
            return len(self.names)

        def __getitem__(self, i: int):
            return len(self.names[i])

    def worker_private_peak(names, nw: int) -> int:
        loader = DataLoader(Touch(names), batch_size=4096, num_workers=nw, shuffle=True)
        peak = 0
        it = iter(loader)
        for k, _ in enumerate(it):
            if k % 20 == 0:
                pids = [w.pid for w in it._workers]
                peak = max(peak, max(private_kib(p) for p in pids))
        return peak

    plain = [names_ds.names[i] for i in range(len(names_ds.names))]
    print(f"1,000,000-name listing: {list_secs:.1f} s through the proxy (page by page).\n")
    print("| DataLoader workers | per-worker private memory, compact NameArray | same, Python list of str (baseline) |")
    print("|---|---|---|")
    for nw in (1, 2, 4):
        print(f"| {nw} | {worker_private_peak(names_ds.names, nw) / 1024:.0f} MiB | {worker_private_peak(plain, nw) / 1024:.0f} MiB |")


if __name__ == "__main__":
    main()
