"""PyTorch connector: datasets that read from an aistore-rs cluster, with the
transform applied next to the data by an ETL (`transform_id`).

`Dataset` is the seed post's map-style dataset:

    Dataset("http://localhost:8080", "imagenet", prefix="train/",
            transform_id="my-first-etl",
            transform_filter=lambda name: name.endswith(".jpg"))

Each item is `(sample, label)`: `NNNN.jpg` (fetched through the ETL when the
filter says so, decoded to a float CHW tensor) paired with `NNNN.cls` (its
class number). The listing happens once, in the constructor; object names are
kept in one bytes blob plus an offsets array, so DataLoader workers share them
without PyTorch's copy-on-access growth. Batches are fetched concurrently
(`__getitems__`), so two workers keep the cluster busy.
"""

from __future__ import annotations

import io
import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import requests
import torch
from torch.utils.data import Dataset as _TorchDataset
from torch.utils.data import IterableDataset as _TorchIterable
from torch.utils.data import get_worker_info

from .client import parse_bucket
from .errors import from_response

SAMPLE_EXTS = (".jpg", ".jpeg", ".png", ".npy")

_JPEG = b"\xff\xd8\xff"
_PNG = b"\x89PNG\r\n\x1a\n"


class SampleError(RuntimeError):
    """A sample that could not be decoded (named in the message)."""


def _image_device(decode: Any) -> Optional[torch.device]:
    """The device of `decode="cpu"|"cuda"|"cuda:N"` (or a torch.device);
    None for a callable or None."""
    if isinstance(decode, (str, torch.device)):
        dev = torch.device(decode)
        if dev.type not in ("cpu", "cuda"):
            raise ValueError(f"decode={decode!r}: use 'cpu', 'cuda', 'cuda:N', a callable or None")
        return dev
    return None


def decode_images(
    names: Sequence[str],
    datas: Sequence[bytes | bytearray],
    device: Any = "cpu",
    on_error: str = "raise",
) -> tuple[list[torch.Tensor], list[int]]:
    """Encoded samples -> uint8 CHW tensors on `device`, and the indices kept.

    JPEGs go through one batched `torchvision.io.decode_jpeg` call (nvJPEG on
    CUDA, libjpeg-turbo on CPU: the same code path either way), PNGs through
    `decode_png`, ready `.npy` arrays as they are; all RGB. A sample that
    cannot be decoded raises `SampleError` naming it (`on_error="raise"`) or
    is left out (`"skip"`: the indices say which remain)."""
    from torchvision.io import ImageReadMode, decode_jpeg, decode_png

    dev = torch.device(device)
    n = len(datas)
    out: list[Optional[torch.Tensor]] = [None] * n
    bad: dict[int, str] = {}
    jpeg: list[int] = []
    enc: list[torch.Tensor] = []
    for k, d in enumerate(datas):
        head = bytes(d[:8])
        if head.startswith(_JPEG):
            t = torch.frombuffer(bytearray(d), dtype=torch.uint8)
            # nvJPEG reads the bytes from pinned host memory without a staging copy.
            enc.append(t.pin_memory() if dev.type == "cuda" else t)
            jpeg.append(k)
        elif head.startswith(_PNG):
            try:
                out[k] = decode_png(torch.frombuffer(bytearray(d), dtype=torch.uint8), mode=ImageReadMode.RGB).to(dev)
            except RuntimeError as e:
                bad[k] = str(e)
        elif head.startswith(b"\x93NUMPY"):
            row = _ready_row(bytes(d))
            if row is None:
                bad[k] = "malformed .npy"
            else:
                out[k] = torch.from_numpy(row.copy()).to(dev)
        else:
            bad[k] = "not a JPEG, PNG or .npy"
    if jpeg:
        try:
            for k, t in zip(jpeg, decode_jpeg(enc, mode=ImageReadMode.RGB, device=dev)):
                out[k] = t
        except RuntimeError:
            # One bad image fails the whole batched call: find which.
            for k, e in zip(jpeg, enc):
                try:
                    out[k] = decode_jpeg(e, mode=ImageReadMode.RGB, device=dev)
                except RuntimeError as err:
                    bad[k] = str(err).strip() or "corrupt JPEG"
    if bad and on_error != "skip":
        k = min(bad)
        more = f" (and {len(bad) - 1} more in this batch)" if len(bad) > 1 else ""
        raise SampleError(f"{names[k]}: cannot decode: {bad[k]}{more}")
    kept = [k for k in range(n) if k not in bad]
    return [out[k] for k in kept], kept  # type: ignore[misc]


def _stack_images(names: Sequence[str], tensors: list[torch.Tensor]) -> torch.Tensor:
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise SampleError(
            f"images of different sizes in one batch ({sorted(shapes)[:3]}, first {names[0]}): "
            "have the ETL return one size, or use stack=False"
        )
    return torch.stack(tensors)


class NameArray:
    """Immutable array of strings in two objects (a bytes blob and int64 offsets)."""

    def __init__(self, names: Sequence[str] = ()) -> None:
        enc = [n.encode() for n in names]
        self.offsets = np.zeros(len(enc) + 1, dtype=np.int64)
        if enc:
            np.cumsum([len(e) for e in enc], out=self.offsets[1:])
        self.blob = b"".join(enc)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        return self.blob[self.offsets[i] : self.offsets[i + 1]].decode()


def default_decode(name: str, data: bytes) -> torch.Tensor:
    """JPEG/PNG -> float32 CHW in [0, 1]; .npy -> tensor."""
    if name.endswith(".npy"):
        return torch.from_numpy(np.load(io.BytesIO(data), allow_pickle=False))
    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("RGB")
    arr = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def _xoshiro(seed: int) -> int:
    m = 0xFFFFFFFFFFFFFFFF
    z = (seed + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    z = ((z ^ (z >> 31)) + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    z = ((z ^ (z >> 31)) * 5) & m
    return ((((z << 7) | (z >> 57)) & m) * 9) & m


class _Fetcher:
    """Per-process HTTP session (DataLoader workers are separate processes).

    With `direct`, GETs go straight to the object's owner target, chosen from
    the cluster map with the same highest-random-weight hash the cluster uses
    (the official SDK's `direct=True`): one request per object instead of a
    proxy redirect plus the target. Any failure falls back to the proxy.
    """

    def __init__(self, endpoint: str, bucket: str, timeout: float, direct: bool = True) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.bucket = bucket
        self.timeout = timeout
        self._pid = -1
        self._local = threading.local()
        self.targets: list[tuple[int, str]] = []
        if direct:
            try:
                import xxhash  # noqa: F401 - dependency of the direct path

                smap = requests.get(f"{self.endpoint}/v1/daemon", params={"what": "smap"}, timeout=timeout).json()
                self.targets = [
                    (int(t["id_digest"]), t["public_net"]["direct_url"])
                    for t in smap.get("tmap", {}).values()
                    if not int(t.get("flags", 0)) & 0b1100
                ]
            except Exception:  # noqa: BLE001 - direct routing is an optimisation only
                self.targets = []

    def _owner(self, name: str) -> str:
        if not self.targets:
            return self.endpoint
        import xxhash

        d = xxhash.xxh64(f"ais/@#/{self.bucket}/{name}".encode(), seed=1103515245).intdigest()
        return max(self.targets, key=lambda t: _xoshiro(t[0] ^ d))[1]

    def _session(self) -> requests.Session:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._local = threading.local()
        s = getattr(self._local, "s", None)
        if s is None:
            s = requests.Session()
            s.mount("http://", requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32))
            self._local.s = s
        return s

    def get(self, name: str, etl: Optional[str] = None, etl_args: Optional[str] = None) -> bytes:
        from urllib.parse import quote

        params = {}
        if etl:
            params["etl_name"] = etl
            if etl_args:
                params["etl_args"] = etl_args
        path = f"/v1/objects/{self.bucket}/{quote(name, safe='/')}"
        base = self._owner(name)
        try:
            r = self._session().get(base + path, params=params, timeout=self.timeout)
        except requests.ConnectionError:
            if base == self.endpoint:
                raise
            self.targets = []  # the map changed under us: use the proxy from now on
            r = self._session().get(self.endpoint + path, params=params, timeout=self.timeout)
        if r.status_code >= 400:
            raise from_response(r.status_code, r.text, r.headers.get("Hdr-Error"))
        return r.content

    def list(self, prefix: str) -> Iterator[str]:
        token, uuid = "", ""
        while True:
            body = {
                "action": "list",
                "name": "",
                "value": {"prefix": prefix, "props": "name", "pagesize": 0, "continuation_token": token, "uuid": uuid},
            }
            r = self._session().get(f"{self.endpoint}/v1/buckets/{self.bucket}", json=body, timeout=self.timeout)
            if r.status_code >= 400:
                raise from_response(r.status_code, r.text)
            page = r.json()
            for e in page.get("entries") or []:
                yield e["name"]
            token, uuid = page.get("continuation_token", ""), page.get("uuid", "")
            if not token:
                return


def _bucket_name(bck: Any) -> str:
    if isinstance(bck, str):
        return parse_bucket(bck)
    name = getattr(bck, "name", None)  # aistore.client.Bck / aistore.sdk Bucket
    if isinstance(name, str):
        return name
    raise TypeError(f"bucket must be a name, an ais:// URL or an object with .name, got {bck!r}")


def _pairs(names: Iterator[str], label_ext: str, sample_exts: Sequence[str]) -> list[str]:
    """Sample names that have a matching label object (ImageNet layout)."""
    samples, labels = [], set()
    for n in names:
        stem, dot, ext = n.rpartition(".")
        if not dot:
            continue
        if "." + ext == label_ext:
            labels.add(stem)
        elif ("." + ext).lower() in sample_exts:
            samples.append(n)
    return [s for s in samples if s.rpartition(".")[0] in labels]


class _Base:
    def __init__(
        self,
        client_url: str,
        bck: Any,
        prefix: str = "",
        transform_id: Optional[str] = None,
        transform_filter: Optional[Callable[[str], bool]] = None,
        decode: Optional[Callable[[str, bytes], Any] | str] = None,
        label_ext: str = ".cls",
        sample_exts: Sequence[str] = SAMPLE_EXTS,
        etl_args: Optional[str] = None,
        threads: int = 8,
        timeout: float = 120.0,
        labels: bool = True,
        direct: bool = True,
        prefetch_labels: Optional[bool] = None,
        on_error: str = "raise",
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error={on_error!r}: 'raise' or 'skip'")
        self.fetcher = _Fetcher(client_url, _bucket_name(bck), timeout, direct)
        self.transform_id = transform_id
        self.transform_filter = transform_filter or (lambda name: True)
        # decode="cpu"/"cuda": images to uint8 CHW tensors on that device,
        # JPEGs decoded a batch at a time (`decode_images`).
        self.image_device = _image_device(decode)
        self.on_error = on_error
        if self.image_device is not None:
            dev = self.image_device
            self.decode = lambda name, data: decode_images([name], [data], dev)[0][0]
        else:
            self.decode = decode or default_decode  # type: ignore[assignment]
        self.label_ext = label_ext
        self.etl_args = etl_args
        self.threads = threads
        self.with_labels = labels
        listing = self.fetcher.list(prefix)
        if labels:
            names = _pairs(listing, label_ext, sample_exts)
        else:
            names = [n for n in listing if not n.endswith(label_ext)]
        names.sort()
        self.names = NameArray(names)
        self._pool: Optional[ThreadPoolExecutor] = None
        self._pool_pid = -1
        # Labels are tiny objects: fetch them once, concurrently, into a compact
        # array (saves a request per item per epoch); very large sets fetch lazily.
        self.labels: Optional[np.ndarray] = None
        if labels and (prefetch_labels if prefetch_labels is not None else len(names) <= 200_000):
            with ThreadPoolExecutor(32) as ex:
                vals = ex.map(lambda n: int(self.fetcher.get(n.rpartition(".")[0] + label_ext).decode().strip()), names)
                self.labels = np.fromiter(vals, dtype=np.int64, count=len(names))

    def _load(self, i: int) -> Any:
        name = self.names[i]
        etl = self.transform_id if (self.transform_id and self.transform_filter(name)) else None
        sample = self.decode(name, self.fetcher.get(name, etl, self.etl_args))
        if not self.with_labels:
            return sample, name
        if self.labels is not None:
            return sample, int(self.labels[i])
        label_name = name.rpartition(".")[0] + self.label_ext
        return sample, int(self.fetcher.get(label_name).decode().strip())

    def _load_raw(self, i: int) -> tuple[bytes, Optional[int]]:
        """Sample `i`'s bytes (through the ETL where the filter says) and label."""
        name = self.names[i]
        etl = self.transform_id if (self.transform_id and self.transform_filter(name)) else None
        data = self.fetcher.get(name, etl, self.etl_args)
        if not self.with_labels:
            return data, None
        if self.labels is not None:
            return data, int(self.labels[i])
        return data, int(self.fetcher.get(name.rpartition(".")[0] + self.label_ext).decode().strip())

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None or self._pool_pid != os.getpid():
            self._pool = ThreadPoolExecutor(self.threads)
            self._pool_pid = os.getpid()
        return self._pool

    def __getstate__(self) -> dict:
        d = self.__dict__.copy()
        d["_pool"] = None
        return d


class Dataset(_Base, _TorchDataset):
    """Map-style dataset of `(sample, label)` over a bucket prefix (see module
    doc). Arguments: `Dataset(client_url, bck, prefix="", transform_id=None,
    transform_filter=None, decode=None, label_ext=".cls", sample_exts=...,
    etl_args=None, threads=8, timeout=120.0, labels=True, direct=True,
    prefetch_labels=None, on_error="raise")`.

    `decode`: a callable `(name, bytes) -> sample`, None (the seed's default:
    float CHW in [0, 1]), or `"cpu"` / `"cuda"` / `"cuda:N"`: images become
    uint8 CHW tensors on that device, a DataLoader batch decoded together
    (nvJPEG on CUDA, libjpeg-turbo on CPU). With CUDA, decode in the
    trainer's process (`num_workers=0`) or start workers with
    `multiprocessing_context="spawn"`: CUDA does not survive a fork."""

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> Any:
        return self._load(i)

    def __getitems__(self, indices: list[int]) -> list[Any]:
        """A whole batch at once, requests overlapped (used by DataLoader);
        with `decode="cpu"|"cuda"` the batch's images are decoded together."""
        if self.image_device is None:
            return list(self._executor().map(self._load, indices))
        if self.on_error == "skip":
            raise ValueError("on_error='skip' needs BatchDataset (a map-style dataset must return every index)")
        raws = list(self._executor().map(self._load_raw, indices))
        names = [self.names[i] for i in indices]
        tensors, _ = decode_images(names, [r[0] for r in raws], self.image_device)
        if not self.with_labels:
            return [(t, n) for t, n in zip(tensors, names)]
        return [(t, r[1]) for t, r in zip(tensors, raws)]


def _dist_info(rank: Optional[int], world_size: Optional[int]) -> tuple[int, int]:
    if rank is not None and world_size is not None:
        return rank, world_size
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


class IterDataset(_Base, _TorchIterable):
    """Streaming dataset: objects split evenly over DataLoader workers and
    distributed ranks (every rank gets the same number of items; the list is
    padded by wrapping, as DistributedSampler does), shuffled per epoch with a
    shared seed (`set_epoch`)."""

    def __init__(
        self,
        *args: Any,
        shuffle: bool = False,
        seed: int = 0,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
        prefetch: int = 16,
        **kwargs: Any,
    ) -> None:
        """Takes `Dataset`'s arguments plus the ones above."""
        super().__init__(*args, **kwargs)
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.rank, self.world_size = _dist_info(rank, world_size)
        self.prefetch = max(1, prefetch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def shard_indices(self, worker_id: int = 0, num_workers: int = 1) -> list[int]:
        """Indices this (rank, worker) reads in the current epoch."""
        n = len(self.names)
        order = list(range(n))
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(order)
        parts = self.world_size * num_workers
        if n == 0:
            return []
        per = -(-n // parts)  # ceil
        order = (order * (-(-per * parts // n)))[: per * parts]
        me = self.rank * num_workers + worker_id
        return order[me::parts]

    def __len__(self) -> int:
        parts = self.world_size
        return -(-len(self.names) // parts) if len(self.names) else 0

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        idx = self.shard_indices(wid, nw)
        ex = self._executor()
        futs = []
        for i in idx:
            futs.append(ex.submit(self._load, i))
            if len(futs) >= self.prefetch:
                yield futs.pop(0).result()
        for f in futs:
            yield f.result()


# ----------------------------------------------------------------- batches


def npy_header(data: bytes | bytearray | memoryview) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    """(dtype, shape, fortran_order, payload offset) of a `.npy` buffer."""
    mv = memoryview(data)
    if bytes(mv[:6]) != b"\x93NUMPY":
        raise ValueError("not a .npy buffer")
    major = mv[6]
    if major == 1:
        hlen = int.from_bytes(mv[8:10], "little")
        start = 10
    else:
        hlen = int.from_bytes(mv[8:12], "little")
        start = 12
    import ast

    hdr = ast.literal_eval(bytes(mv[start : start + hlen]).decode("latin1"))
    return np.dtype(hdr["descr"]), tuple(hdr["shape"]), bool(hdr["fortran_order"]), start + hlen


def npy_to_tensor(data: bytes | bytearray) -> torch.Tensor:
    """A `.npy` buffer as a tensor that shares the buffer's memory (no copy):
    `np.frombuffer` on the payload, then `torch.from_numpy`. Pass a
    `bytearray` for a writable tensor."""
    dtype, shape, fortran, off = npy_header(data)
    arr = np.frombuffer(data, dtype=dtype, offset=off, count=int(np.prod(shape)) if shape else 1)
    arr = arr.reshape(shape, order="F" if fortran else "C")
    if not arr.flags.writeable:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(arr)
    return torch.from_numpy(arr)


def to_npy(arr: np.ndarray) -> bytes:
    """The ready-to-train output convention for ETLs: a `.npy` buffer (uint8
    HWC or CHW, or float16), e.g. `return to_npy(np.asarray(img))`."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def _read_exact(raw: Any, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        # Bounded reads: a damaged size field must not ask for one huge buffer.
        b = raw.read(min(n - got, 1 << 20))
        if not b:
            raise RuntimeError("Get-Batch response ended in the middle of the archive")
        chunks.append(b)
        got += len(b)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _tar_size(field: bytes) -> int:
    if field[0] & 0x80:  # GNU base-256
        return int.from_bytes(field[1:], "big")
    return int(field.split(b"\0", 1)[0].strip() or b"0", 8)


def _tar_members(raw: Any) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each regular file of a TAR stream (ustar, GNU long
    names, PAX paths), read straight from `raw`: one read per member, none
    of `tarfile`'s buffering and per-member objects."""
    long_name: Optional[str] = None
    while True:
        h = _read_exact(raw, 512)
        if h.count(0) == 512:
            return
        size = _tar_size(h[124:136])
        kind = h[156:157]
        pad = -size % 512
        if kind in (b"L", b"x", b"g", b"K"):
            meta = _read_exact(raw, size + pad)[:size]
            if kind == b"L":
                long_name = meta.rstrip(b"\0").decode("utf-8", "surrogateescape")
            elif kind == b"x":
                for rec in meta.decode("utf-8", "surrogateescape").splitlines():
                    key, _, val = rec.partition(" ")[2].partition("=")
                    if key == "path":
                        long_name = val
            continue
        data = _read_exact(raw, size) if size else b""
        if pad:
            _read_exact(raw, pad)
        if kind not in (b"0", b"\0", b"7"):
            long_name = None
            continue
        if long_name is not None:
            name, long_name = long_name, None
        else:
            name = h[:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            prefix = h[345:500].split(b"\0", 1)[0] if h[257:262] == b"ustar" else b""
            if prefix:
                name = prefix.decode("utf-8", "surrogateescape") + "/" + name
        yield name, data


def _ready_row(data: bytes) -> Optional[np.ndarray]:
    """`data` as an array if it is a well-formed C-order `.npy` whose payload
    is exactly as long as its header says (a damaged or lying header, e.g.
    from a buggy transform, must not size the batch), else None."""
    if data[:6] != b"\x93NUMPY":
        return None
    try:
        dtype, shape, fortran, off = npy_header(data)
    except (ValueError, SyntaxError, KeyError, TypeError):
        return None
    count = int(np.prod(shape)) if shape else 1
    if fortran or dtype.kind not in "biuf" or not dtype.isnative or len(data) - off != count * dtype.itemsize:
        return None
    return np.frombuffer(data, dtype=dtype, offset=off, count=count).reshape(shape)


def _batch_tensor(n: int, shape: tuple[int, ...], dtype: np.dtype) -> torch.Tensor:
    """An empty (n, *shape) tensor; in shared memory inside a DataLoader
    worker (as `default_collate` does), so sending it to the trainer
    process moves no bytes."""
    t = torch.from_numpy(np.empty(0, dtype=dtype))
    if get_worker_info() is not None:
        try:
            numel = n * int(np.prod(shape))
            storage = t._typed_storage()._new_shared(numel, device=t.device)
            return t.new(storage).resize_(n, *shape)
        except (AttributeError, RuntimeError):
            pass
    return torch.from_numpy(np.empty((n, *shape), dtype=dtype))


def normalize_on_gpu(
    batch: torch.Tensor,
    mean: Sequence[float] = (0.485, 0.456, 0.406),
    std: Sequence[float] = (0.229, 0.224, 0.225),
    device: Any = "cuda",
    channels_last_input: bool = False,
) -> torch.Tensor:
    """uint8 batch (N,C,H,W, or N,H,W,C with `channels_last_input`) -> float
    normalised on `device`: the copy to the device moves bytes, the GPU does
    the arithmetic."""
    x = batch.to(device, non_blocking=True)
    if channels_last_input:
        x = x.permute(0, 3, 1, 2)
    x = x.float().div_(255.0)
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return x.sub_(m).div_(s)


def decode_ready(name: str, data: bytearray) -> torch.Tensor:
    """Default decode of `BatchDataset`: `.npy` outputs without a copy,
    anything else through `default_decode`."""
    if bytes(data[:6]) == b"\x93NUMPY":
        return npy_to_tensor(data)
    return default_decode(name, bytes(data))


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The global sample order of an epoch: the same for any split over
    ranks and workers."""
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    rng = np.random.Generator(np.random.PCG64([seed, epoch]))
    return rng.permutation(n).astype(np.int64)


class BatchDataset(_Base, _TorchIterable):
    """Whole batches per request: each DataLoader worker fetches a batch with
    one Get-Batch request (the ETL `transform_id` applied to every item on the
    target that stores it) and turns the TAR stream into a batch tensor —
    no per-sample HTTP request or Python round trip. Use with
    `DataLoader(ds, batch_size=None, num_workers=...)`; yields
    `(samples, labels)` (or `(samples, labels, names)` with `with_names`).

    Order: an epoch's global sample order is `epoch_order(n, seed, epoch)`,
    cut into global batches of `batch_size`; global batch `j` goes to rank
    `j % world_size`, and within a rank to DataLoader worker
    `(j // world_size) % num_workers` — so the order is the same for any
    (world size x workers) split, and reading the ranks' batches round-robin
    gives exactly that order.

    Resume: `state_dict()` / `load_state_dict()` carry `{seed, epoch,
    consumed}`; `consumed` is the number of samples of the epoch already
    trained on (across all ranks, e.g. `steps * batch_size * world_size`).
    After `load_state_dict`, the epoch yields exactly the samples from that
    point on, re-batched the same way, without fetching the first ones.

    GPU decode: with `decode="cuda"` (or `"cpu"`), a batch of image outputs
    (JPEG/PNG, e.g. the seed's `img_to_bytes` ETL) is decoded in one
    batched call into a uint8 (N, C, H, W) tensor on that device; finish the
    transform there (`normalize_on_gpu`). The next batches are fetched by
    the dataset's threads while one is decoded. A sample that cannot be
    decoded raises `SampleError` naming it, or with `on_error="skip"` is
    left out of its batch (labels and names stay aligned). With CUDA use
    `num_workers=0`, or workers started with `multiprocessing_context="spawn"`.
    """

    def __init__(
        self,
        *args: Any,
        batch_size: int = 128,
        shuffle: bool = True,
        seed: int = 0,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
        with_names: bool = False,
        stack: bool = True,
        **kwargs: Any,
    ) -> None:
        """Takes `Dataset`'s arguments plus the ones above."""
        if kwargs.get("decode") is None:
            kwargs["decode"] = decode_ready
        super().__init__(*args, **kwargs)
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.consumed = 0
        # Batches of this worker's share to skip (a torchdata
        # StatefulDataLoader resume) and yielded so far.
        self._skip = self._done = 0
        self.rank, self.world_size = _dist_info(rank, world_size)
        self.with_names = with_names
        self.stack = stack

    # -- state
    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.consumed = 0
        self._skip = self._done = 0

    def state_dict(self) -> dict:
        """Where the epoch stands: `consumed` samples of the global order
        (set by the caller, e.g. from a checkpoint, for any split), and —
        as torchdata's `StatefulDataLoader` snapshots it inside each
        DataLoader worker — how many of this worker's batches it has
        yielded (`batches_done`, for the same ranks x workers split)."""
        info = get_worker_info()
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "consumed": self.consumed,
            "batches_done": self._skip + self._done,
            "split": [self.rank, self.world_size, info.num_workers if info else 0],
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(f"state is for seed {state['seed']}, this dataset has seed {self.seed}")
        self.epoch = int(state.get("epoch", 0))
        self.consumed = int(state.get("consumed", 0))
        if not 0 <= self.consumed <= len(self.names):
            raise ValueError(f"consumed={self.consumed} is outside the epoch (0..{len(self.names)})")
        self._skip, self._done = int(state.get("batches_done", 0)), 0
        split = state.get("split")
        if self._skip and split is not None:
            info = get_worker_info()
            here = [self.rank, self.world_size, info.num_workers if info else 0]
            if list(split) != here:
                raise ValueError(
                    f"batches_done is for rank/world size/workers {split}, this loader is {here}; "
                    "resume with the same split, or by `consumed` samples"
                )

    # -- order
    def global_batches(self) -> list[np.ndarray]:
        """The epoch's remaining global batches (index arrays)."""
        order = epoch_order(len(self.names), self.seed, self.epoch, self.shuffle)[self.consumed :]
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def batches_for(self, worker_id: int = 0, num_workers: int = 1) -> list[np.ndarray]:
        """The global batches this (rank, worker) reads, in order."""
        mine = self.global_batches()[self.rank :: self.world_size]
        return mine[worker_id::num_workers]

    def __len__(self) -> int:
        """Batches this rank yields in the (remaining) epoch."""
        total = len(self.global_batches())
        return len(range(self.rank, total, self.world_size))

    # -- fetching
    def _fetch_batch(self, idx: np.ndarray) -> Any:
        names = [self.names[int(i)] for i in idx]
        params = {}
        if self.transform_id:
            params["etl_name"] = self.transform_id
            if self.etl_args:
                params["etl_args"] = self.etl_args
        items = [{"objname": n} for n in names]
        url = f"{self.fetcher.endpoint}/v1/ml/moss/{self.fetcher.bucket}"
        s = self.fetcher._session()
        r = s.get(url, params=params, json={"in": items, "onob": True}, stream=True, timeout=self.fetcher.timeout)
        if r.status_code != 200:
            raise from_response(r)
        try:
            if self.image_device is not None:
                out, kept = self._assemble_images(names, _tar_members(r.raw))
                if len(kept) != len(names):
                    idx = idx[kept]
                    names = [names[k] for k in kept]
            else:
                out = self._assemble(names, _tar_members(r.raw))
        finally:
            r.close()
        if not self.with_labels:
            return (out, names) if self.with_names else out
        if self.labels is not None:
            labels = torch.from_numpy(self.labels[idx])
        else:
            labels = torch.tensor([int(self.fetcher.get(n.rpartition(".")[0] + self.label_ext).decode()) for n in names])
        return (out, labels, names) if self.with_names else (out, labels)

    def _assemble_images(self, names: list[str], members: Iterator[tuple[str, bytes]]) -> tuple[Any, list[int]]:
        """The batch's members decoded together on `image_device`; the
        indices of the samples kept (all, unless `on_error="skip"`)."""
        n = len(names)
        datas: list[bytes] = []
        for k, (_name, data) in enumerate(members):
            if k >= n:
                raise RuntimeError(f"Get-Batch returned more than the {n} samples asked for")
            datas.append(data)
        if len(datas) != n:
            raise RuntimeError(f"Get-Batch returned {len(datas)} of {n} samples")
        tensors, kept = decode_images(names, datas, self.image_device, self.on_error)
        kept_names = [names[k] for k in kept]
        if not tensors:
            empty = torch.empty((0, 3, 0, 0), dtype=torch.uint8, device=self.image_device)
            return (empty if self.stack else []), kept
        return (_stack_images(kept_names, tensors) if self.stack else tensors), kept

    def _assemble(self, names: list[str], members: Iterator[tuple[str, bytes]]) -> Any:
        """The batch from the archive's members, in order. Ready arrays
        (`.npy` of one shape, the default decode, stacked) are copied once,
        straight into the batch tensor — allocated in shared memory inside a
        DataLoader worker, so handing it to the trainer process is not
        another copy; anything else goes through `decode` and `torch.stack`."""
        n = len(names)
        # While every member so far is a ready array of one kind: the batch
        # and its rows (numpy view).
        fast = self.stack and self.decode is decode_ready
        batch: Optional[torch.Tensor] = None
        out: Optional[np.ndarray] = None
        samples: list[Any] = []
        got = 0
        for k, (_name, data) in enumerate(members):
            got = k + 1
            if k >= n:
                raise RuntimeError(f"Get-Batch returned more than the {n} samples asked for")
            if fast:
                row = _ready_row(data)
                if row is not None and out is None:
                    batch = _batch_tensor(n, row.shape, row.dtype)
                    out = batch.numpy()
                if row is not None and out is not None and row.dtype == out.dtype and row.shape == out.shape[1:]:
                    out[k] = row
                    continue
                # Not one more array of the same kind: the rows so far join
                # the generic path.
                fast = False
                if out is not None:
                    samples = [torch.from_numpy(out[i].copy()) for i in range(k)]
            samples.append(self.decode(names[k], bytearray(data)))
        if got != n:
            raise RuntimeError(f"Get-Batch returned {got} of {n} samples")
        if fast and batch is not None:
            return batch
        return torch.stack(samples) if self.stack else samples

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        batches = self.batches_for(wid, nw)[self._skip :]
        self._done = 0
        if not batches:
            return
        ex = self._executor()
        futs = [ex.submit(self._fetch_batch, b) for b in batches[:2]]
        nxt = 2
        while futs:
            out = futs.pop(0).result()
            if nxt < len(batches):
                futs.append(ex.submit(self._fetch_batch, batches[nxt]))
                nxt += 1
            self._done += 1
            yield out
