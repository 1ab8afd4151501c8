"""LRU eviction of a remote bucket's cache by capacity watermarks.

One target whose mountpath is a small tmpfs (so "percent used" is real and
small), a remote ``s3://`` bucket at a moto S3 server holding more than the
tmpfs can, and a GET/PUT load over all of it: every request succeeds (the
cache never fills the disk), the cache ends under ``space.highwm``, the
evicted objects come back byte-exact on their next GET, and ``ais://``
objects are never evicted.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Dict, Iterator

import pytest
from aistore.sdk import Client

from ais_cluster import Cluster
from test_remote import S3Server, s3  # noqa: F401

MIB = 1 << 20
TMPFS = 32 * MIB


def used_pct(path: Path) -> float:
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    return 100.0 * (total - st.f_bfree * st.f_frsize) / total


def jobs(url: str, kind: str) -> list:
    req = urllib.request.Request(
        f"{url}/v1/cluster?what=status_all",
        data=json.dumps({"kind": kind}).encode(),
        method="GET",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def ais(c: Cluster, *args: str) -> str:
    env = {**os.environ, "AIS_ENDPOINT": c.url}
    p = subprocess.run(
        [str(c.bin_dir / "ais"), *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


@pytest.fixture(scope="module")
def lcluster(tmp_path_factory: pytest.TempPathFactory, s3: S3Server) -> Iterator[Cluster]:  # noqa: F811
    if os.geteuid() != 0:
        pytest.fail("the LRU test mounts a tmpfs: run it as root (as CI does)")
    base = tmp_path_factory.mktemp("lru-cluster")
    mp = base / "c" / "target1" / "mp1"
    mp.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS}", "tmpfs", str(mp)], check=True)
    env = {
        "AIS_S3_ENDPOINT": s3.url,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
    }
    c = Cluster(base_dir=base / "c", num_targets=1, env=env)
    try:
        c.start()
        yield c
    finally:
        try:
            c.stop()
        finally:
            subprocess.run(["umount", "-l", str(mp)], check=False)


def test_lru_keeps_the_cache_under_the_high_watermark(
    lcluster: Cluster, s3: S3Server  # noqa: F811
) -> None:
    c = lcluster
    mp = c.targets[0].mpaths[0]
    client = Client(c.url)
    # Data of our own that LRU must never touch.
    own = client.bucket("own").create(exist_ok=True)
    own_data = {f"keep-{i}": os.urandom(MIB) for i in range(3)}
    for k, v in own_data.items():
        own.object(k).get_writer().put_content(v)
    # Watermarks for a 32 MiB disk; checked every second, and before every
    # cold GET and remote PUT.
    ais(
        c,
        "config",
        "cluster",
        "space.cleanupwm=20",
        "space.lowwm=35",
        "space.highwm=55",
        "space.out_of_space=90",
        "lru.dont_evict_time=0s",
        "lru.capacity_upd_time=1s",
    )
    name = f"lru-{os.urandom(4).hex()}"
    s3.s3.create_bucket(Bucket=name)
    data: Dict[str, bytes] = {}
    for i in range(40):  # 40 MiB: more than the disk holds
        key = f"d/{i:03d}"
        data[key] = os.urandom(MIB)
        s3.s3.put_object(Bucket=name, Key=key, Body=data[key])
    rb = client.bucket(name, provider="aws")
    peak = 0.0
    # A GET/PUT load: every object read (cold: cached), and new objects
    # written through the cache.
    for i, (key, want) in enumerate(list(data.items())):
        assert rb.object(key).get_reader().read_all() == want, key
        if i % 4 == 0:
            new = f"w/{i:03d}"
            data[new] = os.urandom(MIB)
            rb.object(new).get_writer().put_content(data[new])
        peak = max(peak, used_pct(mp))
    # The last writes may have come after the last check: the periodic one
    # (every second) brings the cache under the high watermark.
    deadline = time.monotonic() + 60
    while used_pct(mp) > 55 or any(j["end_time"] == 0 for j in jobs(c.url, "lru")):
        assert (
            time.monotonic() < deadline
        ), f"{used_pct(mp):.1f}% used, LRU not done: {jobs(c.url, 'lru')}"
        time.sleep(0.2)
    done = jobs(c.url, "lru")
    assert done, "no LRU job ran"
    assert all(not j["err"] for j in done), done
    evicted = sum(int(j["objs"]) for j in done)
    assert evicted > 0, done
    assert used_pct(mp) <= 55, f"{used_pct(mp):.1f}% used after LRU (peak {peak:.1f}%)"
    # Between two checks the cache grows by what is in flight (here one
    # object): it never came near the out-of-space mark.
    assert peak < 90, f"peak {peak:.1f}%"
    # Nothing was lost: evicted objects come back from the backend.
    for key, want in list(data.items())[:10]:
        assert rb.object(key).get_reader().read_all() == want, key
    for k, v in own_data.items():
        assert own.object(k).get_reader().read_all() == v, k
    out = ais(c, "show", "job", "--json")
    assert "lru-" in out


def test_lru_disabled_and_started_by_hand(lcluster: Cluster) -> None:
    c = lcluster
    client = Client(c.url)
    ais(c, "config", "cluster", "lru.enabled=false")
    try:
        # By hand, on a target below its high watermark: done, nothing evicted.
        ais(c, "config", "cluster", "space.highwm=89")
        before = {j["uuid"] for j in jobs(c.url, "lru")}
        out = ais(c, "job", "start", "lru", "--wait")
        assert "Started lru[lru-" in out, out
        new = [j for j in jobs(c.url, "lru") if j["uuid"] not in before]
        assert len(new) == 1 and new[0]["end_time"] != 0, new
        assert not new[0]["err"] and int(new[0]["objs"]) == 0, new
        # Stopping a kind with nothing running is fine.
        ais(c, "job", "stop", "lru")
        st = client.job(new[0]["uuid"]).status()
        assert not st.aborted, st
    finally:
        ais(c, "config", "reset")


def test_lru_says_when_it_cannot_reach_the_low_watermark(lcluster: Cluster) -> None:
    """Past the cached remote objects there is only ``ais://`` data: the
    job evicts every cached copy, then ends with an error saying why usage
    is still above the low watermark (never a silent success); the
    ``ais://`` objects are all still there."""
    c = lcluster
    client = Client(c.url)
    mp = c.targets[0].mpaths[0]
    ais(c, "config", "cluster", "lru.enabled=false")
    try:
        ais(
            c, "config", "cluster",
            "space.cleanupwm=0", "space.lowwm=1", "space.highwm=2", "lru.dont_evict_time=0s",
        )
        assert used_pct(mp) > 2
        job_id = client.job(job_kind="lru").start()
        deadline = time.monotonic() + 60
        while not (st := client.job(job_id).status()).end_time:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert "space.lowwm" in st.err and "ais://" in st.err, st
        # The ais:// data stayed, whole.
        own = client.bucket("own")
        assert sorted(e.name for e in own.list_all_objects()) == ["keep-0", "keep-1", "keep-2"]
        for e in own.list_all_objects():
            assert len(own.object(e.name).get_reader().read_all()) == MIB
    finally:
        ais(c, "config", "reset")
