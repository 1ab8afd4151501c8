"""aistore_rs.pytorch.BatchDataset against a real cluster: whole batches per
Get-Batch request, the same global order for any ranks x workers split, exact
resume, and ready-to-train `.npy` outputs equal to local decoding."""

from __future__ import annotations

import io
import uuid

import numpy as np
import pytest
import requests
import torch
from PIL import Image
from torch.utils.data import DataLoader

from ais_cluster import put_etl
from aistore_rs import Client
from aistore_rs.pytorch import BatchDataset, _tar_members, epoch_order, normalize_on_gpu, npy_to_tensor, to_npy

N = 42
BS = 4


@pytest.fixture(scope="module")
def arrays(endpoint: str):
    """Samples that are already ready arrays (.npy, uint8 CHW), labels = index."""
    rs = Client(endpoint)
    b = rs.bucket(f"bds-{uuid.uuid4().hex[:8]}").create()
    for i in range(N):
        arr = np.full((3, 4, 4), i, dtype=np.uint8)
        b.object(f"s/{i:05d}.npy").put(to_npy(arr))
        b.object(f"s/{i:05d}.cls").put(str(i).encode())
    yield b
    b.delete(missing_ok=True)


def run(endpoint: str, bucket: str, world: int, workers: int, **kw) -> list[list[str]]:
    """Every rank's batches (names), read through a DataLoader."""
    per_rank = []
    for rank in range(world):
        ds = BatchDataset(endpoint, bucket, prefix="s/", batch_size=BS, seed=7, rank=rank, world_size=world, with_names=True, **kw)
        dl = DataLoader(ds, batch_size=None, num_workers=workers)
        got = []
        for samples, labels, names in dl:
            assert samples.dtype == torch.uint8 and samples.shape[1:] == (3, 4, 4)
            idx = [int(n.rsplit("/", 1)[1].split(".")[0]) for n in names]
            assert labels.tolist() == idx
            assert [int(s[0, 0, 0]) for s in samples] == idx
            got.append(list(names))
        assert len(got) == len(ds)
        per_rank.append(got)
    return per_rank


def interleave(per_rank: list[list[list[str]]]) -> list[str]:
    """Global batch j is rank j % world's (j // world)-th batch."""
    world = len(per_rank)
    out, j = [], 0
    while True:
        r, m = j % world, j // world
        if m >= len(per_rank[r]):
            break
        out.extend(per_rank[r][m])
        j += 1
    assert sum(len(b) for p in per_rank for b in p) == len(out), "batches left over"
    return out


def test_same_global_order_for_any_split(endpoint: str, arrays) -> None:
    names = [f"s/{i:05d}.npy" for i in range(N)]
    ref = [names[i] for i in epoch_order(N, 7, 0)]
    assert sorted(ref) == names and ref != names  # shuffled, every sample once
    for world in (1, 2, 4):
        for workers in (1, 2, 4):
            got = interleave(run(endpoint, arrays.name, world, workers))
            assert got == ref, (world, workers)


def test_resume_yields_exactly_the_remainder(endpoint: str, arrays) -> None:
    names = [f"s/{i:05d}.npy" for i in range(N)]
    ref = [names[i] for i in epoch_order(N, 7, 3)]
    for k in (0, 1, 13, 40, N):
        for world, workers in ((1, 2), (2, 1)):
            per_rank = []
            for rank in range(world):
                ds = BatchDataset(endpoint, arrays.name, prefix="s/", batch_size=BS, seed=7, rank=rank, world_size=world, with_names=True)
                ds.load_state_dict({"seed": 7, "epoch": 3, "consumed": k})
                st = ds.state_dict()
                assert {k2: st[k2] for k2 in ("seed", "epoch", "consumed")} == {"seed": 7, "epoch": 3, "consumed": k}
                per_rank.append([list(n) for _, _, n in DataLoader(ds, batch_size=None, num_workers=workers)])
            assert interleave(per_rank) == ref[k:], (k, world, workers)
    ds = BatchDataset(endpoint, arrays.name, prefix="s/", batch_size=BS, seed=7)
    with pytest.raises(ValueError):
        ds.load_state_dict({"seed": 8, "epoch": 0, "consumed": 0})
    with pytest.raises(ValueError):
        ds.load_state_dict({"seed": 7, "epoch": 0, "consumed": N + 1})


@pytest.mark.parametrize("workers", [0, 2])
def test_torchdata_stateful_dataloader_resumes_exactly(endpoint: str, arrays, workers: int) -> None:
    """torchdata's StatefulDataLoader snapshots the dataset in each worker;
    a loader restored from its state_dict yields exactly the rest of the
    epoch, nothing replayed."""
    from torchdata.stateful_dataloader import StatefulDataLoader

    names = [f"s/{i:05d}.npy" for i in range(N)]
    ref = [names[i] for i in epoch_order(N, 7, 3)]

    def make() -> StatefulDataLoader:
        ds = BatchDataset(endpoint, arrays.name, prefix="s/", batch_size=BS, seed=7, with_names=True)
        ds.set_epoch(3)
        return StatefulDataLoader(ds, batch_size=None, num_workers=workers)

    for k in (1, 4, 7):
        dl = make()
        it = iter(dl)
        first = [list(next(it)[2]) for _ in range(k)]
        state = dl.state_dict()
        del it, dl
        dl2 = make()
        dl2.load_state_dict(state)
        rest = [list(b[2]) for b in dl2]
        assert sum(first + rest, []) == ref, (workers, k)


def test_npy_to_tensor_shares_memory() -> None:
    arr = np.arange(2 * 3 * 5, dtype=np.float16).reshape(2, 3, 5)
    buf = bytearray(to_npy(arr))
    t = npy_to_tensor(buf)
    assert t.dtype == torch.float16 and tuple(t.shape) == (2, 3, 5)
    assert torch.equal(t, torch.from_numpy(arr))
    t[0, 0, 0] = 42  # a view of the buffer, not a copy
    assert npy_to_tensor(buf)[0, 0, 0] == 42
    x = normalize_on_gpu(torch.full((2, 3, 4, 4), 255, dtype=torch.uint8), mean=(0, 0, 0), std=(1, 1, 1), device="cpu")
    assert x.dtype == torch.float32 and torch.all(x == 1.0)


def _tar(members: list[tuple[str, bytes]], fmt: int) -> io.BytesIO:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    buf.seek(0)
    return buf


class _Trickle(io.RawIOBase):
    """A stream that answers at most 7 bytes per read (as a socket may)."""

    def __init__(self, data: bytes) -> None:
        self.b = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self.b.read(min(n, 7) if n and n > 0 else 7)


@pytest.mark.parametrize("fmt", ["gnu", "pax", "ustar"])
def test_tar_reader_reads_what_tarfile_writes(fmt: str) -> None:
    import tarfile

    long = "d/" + "x" * 150 + "/sample.npy"  # past ustar's 100-byte name
    members = [("a.npy", to_npy(np.arange(6, dtype=np.uint8))), ("empty", b""), (long, b"y" * 1000), ("z.cls", b"3")]
    if fmt == "ustar":
        members[2] = ("p" * 90 + "/" + "q" * 90, b"y" * 1000)  # prefix + name
    f = {"gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT, "ustar": tarfile.USTAR_FORMAT}[fmt]
    raw = _Trickle(_tar(members, f).getvalue())
    assert list(_tar_members(raw)) == members
    cut = _tar(members, f).getvalue()[:1500]
    with pytest.raises(RuntimeError, match="ended in the middle"):
        list(_tar_members(io.BytesIO(cut)))
    # A damaged size field (8 GiB, then the stream ends): an error, read in
    # bounded pieces, not one 8 GiB buffer.
    big = bytearray(_tar([("x", b"abc")], tarfile.GNU_FORMAT).getvalue())
    big[124:136] = b"77777777777\0"
    asked = []

    class Recording(io.BytesIO):
        def read(self, n: int = -1) -> bytes:  # type: ignore[override]
            asked.append(n)
            return super().read(n)

    with pytest.raises(RuntimeError, match="ended in the middle"):
        list(_tar_members(Recording(bytes(big))))
    assert max(asked) <= 1 << 20, max(asked)


def test_batches_of_ready_arrays_and_of_anything_else() -> None:
    from aistore_rs.pytorch import decode_ready

    ds = BatchDataset.__new__(BatchDataset)  # only what _assemble reads
    ds.stack, ds.decode = True, decode_ready
    same = [to_npy(np.full((3, 2, 2), i, dtype=np.uint8)) for i in range(4)]
    out = ds._assemble(["a"] * 4, iter([(str(i), d) for i, d in enumerate(same)]))
    assert out.shape == (4, 3, 2, 2) and all(int(out[i].max()) == i for i in range(4))
    # A different shape part-way: the generic path, which torch.stack refuses.
    odd = same[:2] + [to_npy(np.zeros((3, 3, 3), dtype=np.uint8))] + same[3:]
    with pytest.raises(RuntimeError):
        ds._assemble(["a"] * 4, iter([(str(i), d) for i, d in enumerate(odd)]))
    # A different dtype part-way: the generic path (torch.stack promotes),
    # the rows already copied kept.
    mixed = same[:2] + [to_npy(np.full((3, 2, 2), 2, dtype=np.int16))] + same[3:]
    out = ds._assemble(["a"] * 4, iter([(str(i), d) for i, d in enumerate(mixed)]))
    assert out.dtype == torch.int16 and [int(out[i].max()) for i in range(4)] == [0, 1, 2, 3]
    # A damaged header that claims far more than it carries (a buggy or
    # hostile transform): an error naming the short buffer, and the batch is
    # never sized from it.
    hdr = io.BytesIO()
    np.lib.format.write_array_header_1_0(hdr, {"descr": "|u1", "fortran_order": False, "shape": (100000, 100000, 3)})
    lying = hdr.getvalue() + b"0123456789"
    for first in (lying, same[0]):
        with pytest.raises(ValueError, match="smaller than requested"):
            ds._assemble(["a"] * 2, iter([("0", first), ("1", lying)]))
    ds.stack = False
    lst = ds._assemble(["a"] * 4, iter([(str(i), d) for i, d in enumerate(same)]))
    assert [int(t.max()) for t in lst] == [0, 1, 2, 3]
    ds.stack = True
    with pytest.raises(RuntimeError, match="3 of 4"):
        ds._assemble(["a"] * 4, iter([(str(i), d) for i, d in enumerate(same[:3])]))


READY = '''
import io, zlib
import numpy as np
from PIL import Image

def transform(data, path, args):
    """JPEG -> a random 32x32 crop (seeded by etl_args and the object name),
    uint8 CHW, as .npy: what the trainer needs, with nothing left to decode."""
    img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    rng = np.random.default_rng([int(args or 0), zlib.crc32(path.encode())])
    y = int(rng.integers(0, img.shape[0] - 32))
    x = int(rng.integers(0, img.shape[1] - 32))
    out = np.ascontiguousarray(img[y:y + 32, x:x + 32].transpose(2, 0, 1))
    buf = io.BytesIO()
    np.save(buf, out, allow_pickle=False)
    return buf.getvalue()
'''


def test_ready_arrays_through_the_etl_equal_local_decoding(endpoint: str) -> None:
    rs = Client(endpoint)
    b = rs.bucket(f"ready-{uuid.uuid4().hex[:8]}").create()
    name = f"ready-{uuid.uuid4().hex[:8]}"
    try:
        jpegs = {}
        for i in range(12):
            rng = np.random.default_rng(i)
            img = Image.fromarray(rng.integers(0, 255, (60 + i, 70 + i, 3), dtype=np.uint8))
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=92)
            jpegs[f"r/{i:04d}.jpg"] = buf.getvalue()
            b.object(f"r/{i:04d}.jpg").put(buf.getvalue())
            b.object(f"r/{i:04d}.cls").put(str(i % 3).encode())
        put_etl(endpoint, name, READY)
        ds = BatchDataset(endpoint, b.name, prefix="r/", batch_size=5, seed=1, transform_id=name, etl_args="123", with_names=True)
        ns: dict = {}
        exec(READY, ns)  # the same transform, locally
        seen = 0
        for samples, labels, names in DataLoader(ds, batch_size=None, num_workers=2):
            assert samples.dtype == torch.uint8 and samples.shape[1:] == (3, 32, 32)
            for s, lbl, n in zip(samples, labels, names):
                # The worker gets the object as `path` (ais://BUCKET/NAME).
                local = np.load(io.BytesIO(ns["transform"](jpegs[n], f"ais://{b.name}/{n}", "123")))
                assert torch.equal(s, torch.from_numpy(local)), n
                assert int(lbl) == int(n[2:6]) % 3
                seen += 1
        assert seen == 12
    finally:
        requests.delete(f"{endpoint}/v1/etl/{name}", timeout=60)
        b.delete(missing_ok=True)


# -- decode="cpu": the GPU-decode code path on the CPU device ---------------


def _img(i: int, size: int = 32) -> np.ndarray:
    return np.random.default_rng(100 + i).integers(0, 255, (size, size, 3), dtype=np.uint8)


def _encode(arr: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, quality=90)
    return buf.getvalue()


def _pil(data: bytes) -> torch.Tensor:
    """The reference: PIL's decoding of the same bytes, uint8 CHW."""
    return torch.from_numpy(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).copy()).permute(2, 0, 1)


@pytest.fixture(scope="module")
def images(endpoint: str):
    """JPEG, PNG and ready .npy samples of one size, mixed in every batch;
    labels = index. Answers (bucket, {name: bytes})."""
    b = Client(endpoint).bucket(f"imgs-{uuid.uuid4().hex[:8]}").create()
    data = {}
    for i in range(N):
        fmt = ("JPEG", "PNG", "NPY")[i % 3]
        if fmt == "NPY":
            name, raw = f"s/{i:05d}.npy", to_npy(np.ascontiguousarray(_img(i).transpose(2, 0, 1)))
        else:
            name, raw = f"s/{i:05d}.{'jpg' if fmt == 'JPEG' else 'png'}", _encode(_img(i), fmt)
        b.object(name).put(raw)
        b.object(f"s/{i:05d}.cls").put(str(i).encode())
        data[name] = raw
    yield b, data
    b.delete(missing_ok=True)


def _reference(name: str, raw: bytes) -> torch.Tensor:
    return npy_to_tensor(bytearray(raw)) if name.endswith(".npy") else _pil(raw)


@pytest.mark.parametrize("workers", [0, 2])
def test_decode_cpu_equals_pil_for_mixed_formats(endpoint: str, images, workers: int) -> None:
    from aistore_rs.pytorch import Dataset

    b, data = images
    ds = BatchDataset(endpoint, b.name, prefix="s/", batch_size=5, seed=3, decode="cpu", with_names=True)
    seen = []
    for samples, labels, names in DataLoader(ds, batch_size=None, num_workers=workers):
        assert samples.dtype == torch.uint8 and samples.shape[1:] == (3, 32, 32) and samples.device.type == "cpu"
        for s, lbl, n in zip(samples, labels, names):
            assert torch.equal(s, _reference(n, data[n])), n
            assert int(lbl) == int(n[2:7])
            seen.append(n)
    assert sorted(seen) == sorted(data)
    # The seed's map-style Dataset, a DataLoader batch decoded together.
    ds2 = Dataset(endpoint, b.name, prefix="s/", decode="cpu")
    for samples, labels in DataLoader(ds2, batch_size=7, num_workers=workers):
        assert samples.dtype == torch.uint8 and samples.shape[1:] == (3, 32, 32)
        for s, lbl in zip(samples, labels):
            n = ds2.names[int(lbl)]
            assert torch.equal(s, _reference(n, data[n])), n
    with pytest.raises(ValueError, match="decode="):
        BatchDataset(endpoint, b.name, prefix="s/", decode="mps")


def test_decode_cpu_resume_and_order_hold(endpoint: str, images) -> None:
    b, data = images
    names = sorted(data)
    ref = [names[i] for i in epoch_order(N, 7, 2)]
    for k in (0, 9, N):
        ds = BatchDataset(endpoint, b.name, prefix="s/", batch_size=BS, seed=7, decode="cpu", with_names=True)
        ds.load_state_dict({"seed": 7, "epoch": 2, "consumed": k})
        got = [n for _, _, ns in DataLoader(ds, batch_size=None, num_workers=2) for n in ns]
        assert got == ref[k:], k


def test_a_corrupt_image_is_named_or_skipped(endpoint: str) -> None:
    from aistore_rs.pytorch import SampleError

    b = Client(endpoint).bucket(f"bad-{uuid.uuid4().hex[:8]}").create()
    try:
        for i in range(10):
            raw = _encode(_img(i), "JPEG")
            if i == 6:
                raw = raw[: len(raw) // 3]  # truncated
            if i == 8:
                raw = b"this is not an image"
            b.object(f"c/{i:03d}.jpg").put(raw)
            b.object(f"c/{i:03d}.cls").put(str(i).encode())
        ds = BatchDataset(endpoint, b.name, prefix="c/", batch_size=10, shuffle=False, decode="cpu")
        with pytest.raises(SampleError, match="c/006.jpg: cannot decode"):
            next(iter(ds))
        ds = BatchDataset(endpoint, b.name, prefix="c/", batch_size=4, shuffle=False, decode="cpu", on_error="skip", with_names=True)
        kept = []
        for samples, labels, names in DataLoader(ds, batch_size=None, num_workers=0):
            assert len(samples) == len(labels) == len(names)
            assert labels.tolist() == [int(n[2:5]) for n in names]
            kept += list(names)
        assert kept == [f"c/{i:03d}.jpg" for i in range(10) if i not in (6, 8)]
        with pytest.raises(ValueError, match="on_error"):
            BatchDataset(endpoint, b.name, prefix="c/", decode="cpu", on_error="ignore")
    finally:
        b.delete(missing_ok=True)


SEED_JPEG = '''
import io
from PIL import Image

def transform(data, path, args):
    """The seed's shape: decode, crop, return the image as JPEG bytes."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = img.size
    s = min(w, h, 48)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90)
    return out.getvalue()
'''


def test_seed_jpeg_etl_with_decode_cpu_equals_local(endpoint: str) -> None:
    """The seed's JPEG-returning ETL, decoded by the loader on the CPU
    device: equal to PIL decoding of the same transform run locally."""
    b = Client(endpoint).bucket(f"seedjpg-{uuid.uuid4().hex[:8]}").create()
    name = f"seedjpg-{uuid.uuid4().hex[:8]}"
    try:
        src = {}
        for i in range(9):
            raw = _encode(_img(i, 64 + i), "JPEG")
            src[f"j/{i:03d}.jpg"] = raw
            b.object(f"j/{i:03d}.jpg").put(raw)
            b.object(f"j/{i:03d}.cls").put(str(i).encode())
        put_etl(endpoint, name, SEED_JPEG)
        ns: dict = {}
        exec(SEED_JPEG, ns)
        ds = BatchDataset(endpoint, b.name, prefix="j/", batch_size=4, seed=5, transform_id=name, decode="cpu", with_names=True)
        seen = 0
        for samples, _labels, names in DataLoader(ds, batch_size=None, num_workers=2):
            assert samples.shape[1:] == (3, 48, 48)
            for s, n in zip(samples, names):
                assert torch.equal(s, _pil(ns["transform"](src[n], f"ais://{b.name}/{n}", ""))), n
                seen += 1
        assert seen == 9
    finally:
        requests.delete(f"{endpoint}/v1/etl/{name}", timeout=60)
        b.delete(missing_ok=True)
