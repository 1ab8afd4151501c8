"""The offload benchmark's Python half (see bench/offload.sh).

    offload_bench.py setup  --endpoint EP --data DIR     upload the data set, init the ETLs
    offload_bench.py MODE   --endpoint EP --data DIR --cpus LIST --out ROWS
                            MODE: local | local-all | seed | seed-cpu | seed-gpu | ready
    offload_bench.py report --out ROWS ...

Each MODE runs pinned by the caller (taskset) and appends one JSON row:
images/s of data only (three epochs through a DataLoader, after a warm-up one), and
with a GPU also training images/s (resnet50, bf16) on the same loader.
"""

from __future__ import annotations

import argparse
import base64
import glob
import io
import json
import os
import time

import numpy as np
import requests
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from torchvision import transforms

BUCKET = "offload"
BATCH = 64
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]

SEED_ETL = open(os.path.join(os.path.dirname(__file__), "..", "examples", "imagenet-etl", "code.py")).read()

# Ready-to-train output: the seed's random crop + flip (torchvision's
# RandomResizedCrop(224) and RandomHorizontalFlip, on a uint8 tensor: the
# JPEG decoded by torchvision.io and the antialiased bilinear resize of its
# tensor backend take ~0.4-0.6 ms per image here against ~0.8-1.1 ms for
# Pillow's), as a uint8 CHW .npy (the tensor's own bytes after a fixed
# header); the normalisation happens on the GPU. transform_batch amortises
# the call.
READY_ETL = '''
import io
import warnings
import numpy.lib.format as npf
import torch
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import v2

torch.set_num_threads(1)
# decode_image only reads the buffer.
warnings.filterwarnings("ignore", message="The given buffer is not writable")
# RandomResizedCrop(224) + RandomHorizontalFlip as their forward() does it
# (torchvision's own parameter draw and functional ops), without the v2
# dispatch machinery: ~10% of the per-image cost.
rrc = v2.RandomResizedCrop(224, antialias=True)
params = __import__("torchvision").transforms.RandomResizedCrop.get_params
_hdr = io.BytesIO()
npf.write_array_header_1_0(_hdr, {"descr": "|u1", "fortran_order": False, "shape": (3, 224, 224)})
HEADER = _hdr.getvalue()

def transform(data, path, args):
    img = decode_image(torch.frombuffer(data, dtype=torch.uint8), mode=ImageReadMode.RGB)
    i, j, h, w = params(img, list(rrc.scale), list(rrc.ratio))
    out = v2.functional.resized_crop(img, i, j, h, w, [224, 224], antialias=True)
    if torch.rand(1) < 0.5:
        out = v2.functional.horizontal_flip(out)
    return HEADER + out.contiguous().numpy().tobytes()

def transform_batch(items):
    return [transform(d, p, a) for p, d, a in items]
'''


def args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode")
    ap.add_argument("--endpoint", default="")
    ap.add_argument("--data", default="")
    ap.add_argument("--cpus", default="")
    ap.add_argument("--out", default="")
    ap.add_argument("--trainer-cpus", default="")
    ap.add_argument("--cluster-cpus", default="")
    return ap.parse_args()


def ncpus(spec: str) -> int:
    n = 0
    for part in spec.split(","):
        a, _, b = part.partition("-")
        n += (int(b) - int(a) + 1) if b else 1
    return n


def init_etl(ep: str, name: str, code: str, comm: str) -> None:
    requests.delete(f"{ep}/v1/etl/{name}", timeout=60)
    body = {
        "name": name,
        "runtime": "python3",
        "communication": comm,
        "code": base64.b64encode(code.encode()).decode(),
        "dependencies": base64.b64encode(b"torchvision\n").decode(),
        "init_timeout": "10m",
        "obj_timeout": "2m",
        "batch_size": 16,
        "batch_ms": 5,
    }
    r = requests.put(f"{ep}/v1/etl", json=body, timeout=900)
    assert r.status_code == 200, r.text


def setup(a: argparse.Namespace) -> None:
    ep = a.endpoint
    requests.post(f"{ep}/v1/buckets/{BUCKET}", json={"action": "create-bck"}, timeout=60)
    s = requests.Session()
    for p in sorted(glob.glob(os.path.join(a.data, "train", "*"))):
        with open(p, "rb") as f:
            r = s.put(f"{ep}/v1/objects/{BUCKET}/train/{os.path.basename(p)}", data=f.read(), timeout=60)
            assert r.status_code == 200, r.text
    init_etl(ep, "offload-seed", SEED_ETL, "io://")
    init_etl(ep, "offload-ready", READY_ETL, "hpush://")


class LocalFolder(TorchDataset):
    """ImageFolder-style: decode + the seed's transform on the trainer."""

    def __init__(self, root: str) -> None:
        self.files = sorted(glob.glob(os.path.join(root, "train", "*.jpg")))
        self.labels = [int(open(f[:-4] + ".cls").read()) for f in self.files]
        self.tf = transforms.Compose(
            [
                transforms.RandomResizedCrop(224),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                transforms.Normalize(mean=MEAN, std=STD),
            ]
        )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        return self.tf(Image.open(self.files[i]).convert("RGB")), self.labels[i]


def loader(mode: str, a: argparse.Namespace) -> tuple[DataLoader, bool]:
    """(the DataLoader, whether batches are uint8 to be normalised on the device)."""
    workers = max(1, ncpus(a.cpus))
    if mode.startswith("local"):
        ds = LocalFolder(a.data)
        return DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=workers, persistent_workers=True), False
    from aistore_rs.pytorch import BatchDataset

    etl = "offload-ready" if mode == "ready" else "offload-seed"
    # seed-cpu: the seed's JPEG outputs decoded a batch at a time into uint8
    # (libjpeg-turbo; decode="cuda" is the same path on the GPU), normalised
    # on the device like the ready arrays.
    decode = {"seed-cpu": "cpu", "seed-gpu": "cuda"}.get(mode)
    ds = BatchDataset(a.endpoint, BUCKET, prefix="train/", batch_size=BATCH, transform_id=etl, seed=1, threads=2, decode=decode)
    uint8 = mode in ("ready", "seed-cpu", "seed-gpu")
    if mode == "seed-gpu":
        # nvJPEG in the trainer's process (CUDA does not survive a fork); the
        # dataset's threads fetch the next batches meanwhile.
        return DataLoader(ds, batch_size=None, num_workers=0), uint8
    return DataLoader(ds, batch_size=None, num_workers=workers, persistent_workers=True), uint8


def cpu_times() -> dict[str, tuple[int, int]]:
    """Per CPU: (busy, total) jiffies."""
    out = {}
    for line in open("/proc/stat"):
        if line.startswith("cpu") and line[3].isdigit():
            f = line.split()
            v = [int(x) for x in f[1:]]
            idle = v[3] + v[4]
            out[f[0]] = (sum(v) - idle, sum(v))
    return out


def data_only(dl: DataLoader, ready: bool, epochs: int = 3) -> tuple[float, dict[str, float]]:
    """Images/s over `epochs` epochs after a warm-up one (workers, caches),
    and each CPU's busy share meanwhile."""
    n, t, util = 0, 0.0, {}
    c0 = None
    for epoch in range(epochs + 1):
        if hasattr(dl.dataset, "set_epoch"):
            dl.dataset.set_epoch(epoch)
        if epoch == 1:
            c0 = cpu_times()
            t0 = time.perf_counter()
        m = 0
        for x, _y in dl:
            m += len(x)
        if epoch >= 1:
            n += m
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # decode="cuda" work queued on the device
    t = time.perf_counter() - t0
    c1 = cpu_times()
    util = {k: round((c1[k][0] - c0[k][0]) / max(1, c1[k][1] - c0[k][1]), 2) for k in c1}
    return n / t, util


def train(dl: DataLoader, ready: bool, steps: int = 60) -> float:
    import torchvision

    from aistore_rs.pytorch import normalize_on_gpu

    model = torchvision.models.resnet50().cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    lossf = torch.nn.CrossEntropyLoss()
    done, t0, seen = 0, None, 0
    while done < steps:
        for x, y in dl:
            x = normalize_on_gpu(x, MEAN, STD) if ready else x.cuda(non_blocking=True)
            x = x.contiguous(memory_format=torch.channels_last)
            y = torch.as_tensor(y).cuda(non_blocking=True) % 1000
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = lossf(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done == 10:
                torch.cuda.synchronize()
                t0, seen = time.perf_counter(), 0
            elif t0 is not None:
                seen += len(x)
            if done >= steps:
                break
    torch.cuda.synchronize()
    return seen / (time.perf_counter() - t0)


def synthetic_ceiling(steps: int = 40) -> float:
    import torchvision

    model = torchvision.models.resnet50().cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(BATCH * 2, 3, 224, 224, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (BATCH * 2,), device="cuda")
    for i in range(steps):
        if i == 10:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    torch.cuda.synchronize()
    return (steps - 10) * len(x) / (time.perf_counter() - t0)


def run(a: argparse.Namespace) -> None:
    dl, ready = loader(a.mode, a)
    rate, util = data_only(dl, ready)
    row = {"mode": a.mode, "cpus": a.cpus, "data_img_s": rate, "cpu_busy": util}
    if torch.cuda.is_available():
        row["train_img_s"] = train(dl, ready)
        if a.mode == "local-all":
            row["gpu_ceiling_img_s"] = synthetic_ceiling()
    with open(a.out, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(row, flush=True)


def report(a: argparse.Namespace) -> None:
    rows = {r["mode"]: r for r in (json.loads(line) for line in open(a.out))}
    label = {
        "local": f"local ImageFolder-style, seed transform, trainer cores ({a.trainer_cpus})",
        "seed": "BatchDataset + the seed's ETL (JPEG out, decoded by the trainer)",
        "seed-cpu": 'BatchDataset + the seed\'s ETL, decode="cpu" (batched libjpeg-turbo to uint8)',
        "seed-gpu": 'BatchDataset + the seed\'s ETL, decode="cuda" (batched nvJPEG)',
        "ready": "BatchDataset + ready uint8 arrays (.npy) + transform_batch",
        "local-all": "local ImageFolder-style, all cores",
        "local-tuned": f"local ImageFolder-style, trainer cores ({a.trainer_cpus}), the node's malloc settings (GLIBC_TUNABLES)",
    }
    gpu = any("train_img_s" in r for r in rows.values())
    print(f"Trainer pinned to CPUs {a.trainer_cpus}, cluster to CPUs {a.cluster_cpus}; batch {BATCH}.\n")
    print("| loader | data-only img/s | vs local (trainer cores) |" + (" training img/s |" if gpu else ""))
    print("|---|---|---|" + ("---|" if gpu else ""))
    base = rows["local"]["data_img_s"]
    for m in [m for m in ("local", "seed", "seed-cpu", "seed-gpu", "ready", "local-all", "local-tuned") if m in rows]:
        r = rows[m]
        line = f"| {label[m]} | {r['data_img_s']:.0f} | {r['data_img_s'] / base:.2f}x |"
        if gpu:
            line += f" {r.get('train_img_s', 0):.0f} |"
        print(line)
    print("\nCPU busy share during the measured epoch: " + "; ".join(f"{m}: {rows[m].get('cpu_busy')}" for m in label if m in rows))
    if gpu:
        print(f"\nGPU synthetic ceiling (resnet50, bf16): {rows['local-all'].get('gpu_ceiling_img_s', 0):.0f} img/s")
    else:
        print("\nNo GPU on this host: training figures not measured.")


def main() -> None:
    a = args()
    if a.mode == "setup":
        setup(a)
    elif a.mode == "report":
        report(a)
    else:
        run(a)


if __name__ == "__main__":
    main()
