"""Builds an ImageNet-style data set from real photographs.

ImageNet cannot be downloaded here, so the photographs come from a PyPI
package that ships them: scikit-image's sample data (astronaut, cat, coffee,
rocket, ...). The wheel is fetched with `pip download` (no install needed) and
each photograph becomes one class; samples are random crops, rescales and
flips, saved as JPEG:

    OUT/train/0000001.jpg  OUT/train/0000001.cls  (class number as text)
    OUT/val/0001001.jpg    OUT/val/0001001.cls

Usage: python make_dataset.py OUT [--train 2000] [--val 400] [--seed 0]
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import random
import subprocess
import sys
import tempfile
import zipfile

from PIL import Image

PACKAGE = "scikit-image==0.26.0"
CLASSES = [
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "grass.png",
    "gravel.png",
    "brick.png",
]


def photographs(cache: str) -> list[Image.Image]:
    os.makedirs(cache, exist_ok=True)
    wheels = glob.glob(os.path.join(cache, "scikit_image-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", cache, PACKAGE],
            check=True,
        )
        wheels = glob.glob(os.path.join(cache, "scikit_image-*.whl"))
    with zipfile.ZipFile(wheels[0]) as z:
        return [Image.open(io.BytesIO(z.read(f"skimage/data/{name}"))).convert("RGB") for name in CLASSES]


def sample(photo: Image.Image, rng: random.Random) -> Image.Image:
    w, h = photo.size
    scale = rng.uniform(0.35, 1.0)
    cw, ch = int(w * scale), int(h * scale * rng.uniform(0.8, 1.25))
    cw, ch = max(32, min(cw, w)), max(32, min(ch, h))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    img = photo.crop((x, y, x + cw, y + ch))
    side = rng.randint(160, 320)
    img = img.resize((side, max(32, int(side * ch / cw))), Image.BILINEAR)
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--val", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "aistore-rs-photos"))
    a = ap.parse_args()
    photos = photographs(a.cache)
    rng = random.Random(a.seed)
    idx = 1
    for split, n in (("train", a.train), ("val", a.val)):
        d = os.path.join(a.out, split)
        os.makedirs(d, exist_ok=True)
        for _ in range(n):
            cls = rng.randrange(len(photos))
            img = sample(photos[cls], rng)
            img.save(os.path.join(d, f"{idx:07d}.jpg"), format="JPEG", quality=85)
            with open(os.path.join(d, f"{idx:07d}.cls"), "w") as f:
                f.write(str(cls))
            idx += 1
    print(f"{a.train} train + {a.val} val images of {len(photos)} classes in {a.out}")


if __name__ == "__main__":
    main()
