"""Decompression bombs and lying archives: a small .tar.gz and a .zip that
inflate to 1 GiB each are read through archpath GETs (three at once:
streamed, each target's RSS grows by less than 256 MiB), Get-Batch and
archive append (refused past the in-memory limit, naming it); a tar member
that claims 10 GiB inside a tiny shard is an error before any 200."""

from __future__ import annotations

import io
import tarfile
import threading
import time
import zipfile
from typing import Dict, List

import requests
from aistore.sdk import Client
from aistore.sdk.bucket import Bucket

from ais_cluster import Cluster

HTTP_TIMEOUT = 300
BOMB = 1 << 30


class Zeros(io.RawIOBase):
    """``n`` zero bytes, read in pieces (never held whole)."""

    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        k = min(len(b), self.left)
        b[:k] = bytes(k)
        self.left -= k
        return k


def tgz_bomb() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=9) as t:
        info = tarfile.TarInfo("big.bin")
        info.size = BOMB
        t.addfile(info, io.BufferedReader(Zeros(BOMB), 1 << 20))
        small = tarfile.TarInfo("small.txt")
        small.size = 5
        t.addfile(small, io.BytesIO(b"hello"))
    return buf.getvalue()


def zip_bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open("big.bin", "w", force_zip64=True) as f:
            chunk = bytes(1 << 20)
            for _ in range(BOMB >> 20):
                f.write(chunk)
    return buf.getvalue()


def lying_tar() -> bytes:
    info = tarfile.TarInfo("huge.bin")
    info.size = 10 << 30
    return info.tobuf(format=tarfile.GNU_FORMAT) + b"x" * 1024 + bytes(1024)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_bombs_stream_or_are_refused_and_lies_are_errors(cluster: Cluster, client: Client, bucket: Bucket) -> None:
    url, b = cluster.url, bucket.name
    tgz, z = tgz_bomb(), zip_bomb()
    assert len(tgz) < 2 << 20 and len(z) < 2 << 20, (len(tgz), len(z))
    bucket.object("bomb.tar.gz").get_writer().put_content(tgz)
    bucket.object("bomb.zip").get_writer().put_content(z)
    bucket.object("liar.tar").get_writer().put_content(lying_tar())

    # 1. archpath GETs, three at once: streamed, byte counts right, RSS flat.
    pids = [t.proc.pid for t in cluster.targets]
    base = {p: rss_kib(p) for p in pids}
    peak: Dict[int, int] = dict(base)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for p in pids:
                peak[p] = max(peak[p], rss_kib(p))
            time.sleep(0.05)

    got: List[int] = []

    def fetch(obj: str) -> None:
        n = 0
        with requests.get(f"{url}/v1/objects/{b}/{obj}", params={"archpath": "big.bin"}, stream=True, timeout=HTTP_TIMEOUT) as r:
            assert r.status_code == 200, r.text
            assert int(r.headers["Content-Length"]) == BOMB
            for chunk in r.iter_content(1 << 20):
                assert not chunk.strip(b"\0"), "not the member's bytes"
                n += len(chunk)
        got.append(n)

    sampler = threading.Thread(target=sample)
    sampler.start()
    readers = [threading.Thread(target=fetch, args=(o,)) for o in ("bomb.tar.gz", "bomb.zip", "bomb.tar.gz")]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    done.set()
    sampler.join()
    assert got == [BOMB] * 3, got
    for p in pids:
        assert peak[p] - base[p] < 256 << 10, f"target {p}: RSS {base[p] >> 10} -> {peak[p] >> 10} MiB"

    # 2. Get-Batch and archregx read members into memory: refused past the limit.
    r = requests.get(f"{url}/v1/ml/moss/{b}", json={"in": [{"objname": "bomb.tar.gz", "archpath": "big.bin"}], "mime": ".tar"}, timeout=HTTP_TIMEOUT)
    assert r.status_code >= 400 and "AIS_MAX_MEMBER_INMEM" in r.text, (r.status_code, r.text[:300])
    r = requests.get(f"{url}/v1/objects/{b}/bomb.zip", params={"archregx": "big", "archmode": "prefix"}, timeout=HTTP_TIMEOUT)
    assert r.status_code >= 400 and "AIS_MAX_MEMBER_INMEM" in r.text, (r.status_code, r.text[:300])
    # The small member next to the bomb is fine.
    r = requests.get(f"{url}/v1/ml/moss/{b}", json={"in": [{"objname": "bomb.tar.gz", "archpath": "small.txt"}], "mime": ".tar"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200 and b"hello" in r.content, r.status_code

    # 3. Appending to the bomb: the job fails (naming the limit), nothing is half-written.
    bucket.object("add.txt").get_writer().put_content(b"more")
    jobs = bucket.objects(obj_names=["add.txt"]).archive(archive_name="bomb.tar.gz", allow_append=True)
    outcomes = []
    for j in jobs:
        try:
            outcomes.append(client.job(j).wait(timeout=120, verbose=False).success)
        except Exception as exc:  # the SDK raises for a failed job
            outcomes.append(str(exc))
    assert True not in outcomes, outcomes
    assert bucket.object("bomb.tar.gz").get_reader().read_all() == tgz

    # 4. A member claiming 10 GiB of a 2.5 KB tar: an error, never a 200
    #    promising 10 GiB.
    r = requests.get(f"{url}/v1/objects/{b}/liar.tar", params={"archpath": "huge.bin"}, stream=True, timeout=HTTP_TIMEOUT)
    assert r.status_code >= 400, (r.status_code, r.headers.get("Content-Length"))
    assert "huge.bin" in r.text and "claims" in r.text, r.text
    r = requests.get(f"{url}/v1/ml/moss/{b}", json={"in": [{"objname": "liar.tar", "archpath": "huge.bin"}], "mime": ".tar"}, timeout=HTTP_TIMEOUT)
    assert r.status_code >= 400, r.status_code
