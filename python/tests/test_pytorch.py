"""aistore_rs.pytorch against a real cluster with real torchvision ETLs; the
official SDK's PyTorch datasets over the same bucket."""

from __future__ import annotations

import base64
import io
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms

from aistore_rs import Client
from aistore_rs.pytorch import Dataset, IterDataset, NameArray

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "imagenet-etl"
N_TRAIN = 24


def jpeg(i: int) -> bytes:
    rng = np.random.default_rng(i)
    w, h = 200 + (i % 5) * 37, 180 + (i % 3) * 41
    base = rng.integers(0, 255, (h // 10 + 1, w // 10 + 1, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((w, h), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def imagenet(endpoint: str):
    """A small ImageNet-layout bucket; each .cls holds the item's index (a unique label)."""
    rs = Client(endpoint)
    b = rs.bucket(f"imnet-{uuid.uuid4().hex[:8]}").create()
    for i in range(N_TRAIN):
        b.object(f"train/{i:07d}.jpg").put(jpeg(i))
        b.object(f"train/{i:07d}.cls").put(str(i).encode())
    b.object("train/README.txt").put(b"not a sample")
    b.object("train/9999999.jpg").put(jpeg(99))  # no label: skipped
    b.object("val/0000100.jpg").put(jpeg(100))
    b.object("val/0000100.cls").put(b"3")
    yield b
    b.delete(missing_ok=True)


@pytest.fixture(scope="module")
def val_etl(endpoint: str):
    """The example's deterministic validation transform (Resize + CenterCrop), io:// form."""
    name = f"val-{uuid.uuid4().hex[:8]}"
    code = (EXAMPLE / "code_val.py").read_text()
    body = {
        "name": name,
        "runtime": "python3",
        "communication": "io://",
        "code": base64.b64encode(code.encode()).decode(),
        "dependencies": base64.b64encode(b"torchvision\n").decode(),
        "init_timeout": "5m",
    }
    r = requests.put(f"{endpoint}/v1/etl", json=body, timeout=600)
    assert r.status_code == 200, r.text
    yield name
    requests.delete(f"{endpoint}/v1/etl/{name}", timeout=60)


def local_val_transform(data: bytes) -> bytes:
    t = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])
    buf = io.BytesIO()
    t(Image.open(io.BytesIO(data)).convert("RGB")).save(buf, format="JPEG")
    return buf.getvalue()


def test_server_side_etl_equals_local_torchvision(imagenet, val_etl) -> None:
    # Same transform, same Pillow/torchvision (the ETL runs in this venv's
    # interpreter): the server's output must equal local output byte for byte.
    for i in range(0, N_TRAIN, 5):
        name = f"train/{i:07d}.jpg"
        server = imagenet.object(name).get(etl_name=val_etl)
        assert server == local_val_transform(jpeg(i)), name
        assert Image.open(io.BytesIO(server)).size == (224, 224)


def test_map_dataset_dataloader_two_workers_shuffle(endpoint, imagenet, val_etl) -> None:
    ds = Dataset(
        endpoint,
        f"ais://{imagenet.name}",
        prefix="train/",
        transform_id=val_etl,
        transform_filter=lambda name: name.endswith(".jpg"),
    )
    assert len(ds) == N_TRAIN  # unlabeled sample and README skipped
    loader = DataLoader(ds, batch_size=5, shuffle=True, num_workers=2, pin_memory=True)
    for epoch in range(2):
        seen = []
        for images, target in loader:
            assert images.dtype == torch.float32 and images.shape[1:] == (3, 224, 224)
            assert target.dtype == torch.int64
            assert 0.0 <= images.min() and images.max() <= 1.0
            seen.extend(target.tolist())
        assert sorted(seen) == list(range(N_TRAIN)), f"epoch {epoch}: every item exactly once"
    # Item content is the transformed object, decoded.
    img, label = ds[3]
    want = torch.from_numpy(np.asarray(Image.open(io.BytesIO(local_val_transform(jpeg(3)))), dtype=np.uint8).copy())
    assert label == 3
    assert torch.equal((img * 255).round().to(torch.uint8), want.permute(2, 0, 1))


def test_seed_signature_and_custom_decode(endpoint, imagenet) -> None:
    class Bck:  # the seed post's aistore.client.Bck
        def __init__(self, name: str) -> None:
            self.name = name

    ds = Dataset(endpoint, Bck(imagenet.name), prefix="val/", decode=lambda name, b: len(b))
    assert len(ds) == 1
    n, label = ds[0]
    assert n == len(jpeg(100)) and label == 3


def test_iterable_dataset_splits_ranks_and_workers(endpoint, imagenet) -> None:
    common = dict(prefix="train/", decode=lambda name, b: 0, shuffle=True, seed=7)
    world = 2
    per_rank = []
    for rank in range(world):
        ds = IterDataset(endpoint, imagenet.name, rank=rank, world_size=world, **common)
        # Exact split over 2 ranks x 2 workers.
        parts = [ds.shard_indices(w, 2) for w in range(2)]
        assert len(parts[0]) == len(parts[1]) > 0
        labels = []
        for _, target in DataLoader(ds, batch_size=4, num_workers=2):
            labels.extend(target.tolist())
        per_rank.append(labels)
    assert len(per_rank[0]) == len(per_rank[1]) == N_TRAIN // world, "equal item counts per rank"
    assert sorted(per_rank[0] + per_rank[1]) == list(range(N_TRAIN)), "ranks cover the data once"
    # Seeded shuffle changes with the epoch and is identical across ranks.
    a = IterDataset(endpoint, imagenet.name, rank=0, world_size=1, **common)
    first = a.shard_indices()
    a.set_epoch(1)
    assert a.shard_indices() != first and sorted(a.shard_indices()) == sorted(first)
    # Uneven sizes: every rank still gets the same count (padding by wrapping).
    b = IterDataset(endpoint, imagenet.name, rank=0, world_size=5, **common)
    counts = {len(IterDataset(endpoint, imagenet.name, rank=r, world_size=5, **common).shard_indices(0, 1)) for r in range(5)}
    assert counts == {-(-N_TRAIN // 5)} and len(b) == -(-N_TRAIN // 5)


def test_name_array_is_compact() -> None:
    names = [f"train/{i:07d}.jpg" for i in range(100_000)]
    arr = NameArray(names)
    assert len(arr) == 100_000 and arr[12345] == names[12345] and arr[99_999] == names[-1]
    # Two objects, ~bytes of the names: nothing per name for workers to copy-on-access.
    assert len(arr.blob) == sum(len(n) for n in names)


def test_official_sdk_pytorch_datasets_with_etl(endpoint, val_etl) -> None:
    from aistore.pytorch import AISIterDataset, AISMapDataset
    from aistore.sdk import Client as SdkClient

    # The SDK applies the ETL to every listed object: use a bucket of images only.
    rs = Client(endpoint)
    b = rs.bucket(f"sdkpt-{uuid.uuid4().hex[:8]}").create()
    try:
        for i in range(10):
            b.object(f"img/{i:03d}.jpg").put(jpeg(i))
        bck = SdkClient(endpoint).bucket(b.name)
        ds = AISMapDataset(ais_source_list=[bck], prefix_map={bck: "img/"}, etl_name=val_etl)
        assert len(ds) == 10
        for i in range(10):
            name, data = ds[i]
            assert name == f"img/{i:03d}.jpg"
            assert data == local_val_transform(jpeg(i))
        it = AISIterDataset(ais_source_list=[bck], prefix_map={bck: "img/"}, etl_name=val_etl)
        got = dict(it)
        assert len(got) == 10 and got["img/004.jpg"] == local_val_transform(jpeg(4))
        loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=lambda b: b)
        assert sum(len(batch) for batch in loader) == 10
    finally:
        b.delete(missing_ok=True)


def test_direct_routing_matches_the_cluster(endpoint, imagenet) -> None:
    """The connector's client-side owner choice equals the proxy's redirect."""
    from aistore_rs.pytorch import _Fetcher

    f = _Fetcher(endpoint, imagenet.name, 30.0, direct=True)
    assert len(f.targets) == 3
    owners = set()
    for i in range(30):
        name = f"train/{i:07d}.jpg"
        r = requests.get(f"{endpoint}/v1/objects/{imagenet.name}/{name}", allow_redirects=False, timeout=30)
        assert r.status_code == 301
        assert r.headers["Location"].startswith(f._owner(name) + "/"), name
        owners.add(f._owner(name))
    assert len(owners) == 3
