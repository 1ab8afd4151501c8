"""What the seed's JPEG-returning ETL should send: for the imagenet
example's 224x224 crops, each JPEG quality's fidelity (PSNR of the decoded
pixels against the raw crop), size, and the trainer's decode cost, beside
raw uint8 (see bench/jpeg_quality.sh, BENCHMARKS.md "JPEG quality").

    python bench/jpeg_quality.py DATASET_DIR [--n 256]

Crops are the seed's RandomResizedCrop(224) + flip, seeded; decoding is
torchvision's batched decode_jpeg on one CPU thread (the loader's
decode="cpu" path), timed per sample.
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import time

import numpy as np
import torch
from PIL import Image
from torchvision import transforms
from torchvision.io import ImageReadMode, decode_jpeg


def crops(root: str, n: int) -> list[np.ndarray]:
    torch.manual_seed(0)
    tf = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip()])
    files = sorted(glob.glob(os.path.join(root, "train", "*.jpg")))[:n]
    return [np.asarray(tf(Image.open(f).convert("RGB"))) for f in files]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--n", type=int, default=256)
    a = ap.parse_args()
    torch.set_num_threads(1)
    raw = crops(a.data, a.n)
    print(f"{len(raw)} crops of 224x224 from {a.data}; decode: torchvision decode_jpeg, batch of 64, 1 thread\n")
    print("| output | bytes/sample | PSNR vs raw crop (mean / worst) | trainer decode, ms/sample |")
    print("|---|---|---|---|")
    for q in (75, 85, 90, 95):
        enc = []
        for r in raw:
            buf = io.BytesIO()
            Image.fromarray(r).save(buf, format="JPEG", quality=q)
            enc.append(buf.getvalue())
        tens = [torch.frombuffer(bytearray(e), dtype=torch.uint8) for e in enc]
        dec = decode_jpeg(tens, mode=ImageReadMode.RGB)
        ps = [psnr(d.permute(1, 2, 0).numpy(), r) for d, r in zip(dec, raw)]
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            for i in range(0, len(tens), 64):
                decode_jpeg(tens[i : i + 64], mode=ImageReadMode.RGB)
            best = min(best, time.perf_counter() - t0)
        size = sum(len(e) for e in enc) / len(enc)
        print(f"| JPEG quality {q} | {size:,.0f} | {np.mean(ps):.1f} / {min(ps):.1f} dB | {1000 * best / len(tens):.2f} |")
    print(f"| raw uint8 (.npy) | {224 * 224 * 3 + 128:,} | exact | 0 (a copy) |")


if __name__ == "__main__":
    main()
