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
        decode: Optional[Callable[[str, bytes], Any]] = None,
        label_ext: str = ".cls",
        sample_exts: Sequence[str] = SAMPLE_EXTS,
        etl_args: Optional[str] = None,
        threads: int = 8,
        timeout: float = 120.0,
        labels: bool = True,
        direct: bool = True,
        prefetch_labels: Optional[bool] = None,
    ) -> None:
        self.fetcher = _Fetcher(client_url, _bucket_name(bck), timeout, direct)
        self.transform_id = transform_id
        self.transform_filter = transform_filter or (lambda name: True)
        self.decode = decode or default_decode
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
    prefetch_labels=None)`."""

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> Any:
        return self._load(i)

    def __getitems__(self, indices: list[int]) -> list[Any]:
        """A whole batch at once, requests overlapped (used by DataLoader)."""
        return list(self._executor().map(self._load, indices))


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
