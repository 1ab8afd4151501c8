"""Remote ``s3://`` buckets against a real S3 server (moto in server mode,
started here on loopback): cold then warm reads, prefetch, out-of-band
overwrites with ``validate_warm_get``, write-through, listing with the cached
flag, inline ETL, Get-Batch and an offline transform from ``s3://`` into
``ais://`` — all through the official SDK, the CLI and plain HTTP."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Dict, Iterator

import boto3
import pytest
import requests
from aistore.sdk import Client

from ais_cluster import Cluster, put_etl

HTTP = 60


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class S3Server:
    """moto's S3 server on a loopback port, for the session of one module."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        moto = Path(sys.executable).with_name("moto_server")
        self.proc = subprocess.Popen(
            [str(moto), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=open(log, "wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(self.url, timeout=2)
                break
            except requests.RequestException:
                assert self.proc.poll() is None, f"moto_server exited; see {log}"
                assert time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.2)
        self.s3 = boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    srv = S3Server(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def rcluster(tmp_path_factory: pytest.TempPathFactory, s3: S3Server) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("remote-cluster")
    env = {
        "AIS_S3_ENDPOINT": s3.url,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "AIS_ETL_ENV_CACHE": str(base / "envs"),
    }
    c = Cluster(base_dir=base / "c", num_targets=3, env=env)
    c.start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def remote(s3: S3Server) -> Iterator[str]:
    """A new bucket at the S3 server, filled by each test."""
    name = f"rb-{uuid.uuid4().hex[:10]}"
    s3.s3.create_bucket(Bucket=name)
    yield name


def fill(s3: S3Server, bucket: str, n: int, prefix: str = "d/") -> Dict[str, bytes]:
    objs = {}
    for i in range(n):
        key = f"{prefix}{i:04d}"
        data = os.urandom(1 + (i * 7919) % 200_000)
        s3.s3.put_object(Bucket=bucket, Key=key, Body=data)
        objs[key] = data
    return objs


def ais(c: Cluster, *args: str) -> subprocess.CompletedProcess:
    """The `ais` CLI against cluster `c`."""
    env = {**os.environ, "AIS_ENDPOINT": c.url}
    return subprocess.run([str(c.bin_dir / "ais"), *args], env=env, capture_output=True, text=True, timeout=120)


def cached(url: str, bucket: str) -> set:
    """Names the cluster holds (listing flag ``cached``, bit 0)."""
    names, token = set(), ""
    while True:
        r = requests.get(
            f"{url}/v1/buckets/{bucket}",
            params={"provider": "aws"},
            json={"action": "list", "value": {"props": "name,cached", "flags": "1", "continuation_token": token}},
            timeout=HTTP,
        )
        assert r.status_code == 200, r.text
        page = r.json()
        names |= {e["name"] for e in page.get("entries") or []}
        token = page.get("continuation_token", "")
        if not token:
            return names


def test_cold_then_warm_reads_are_byte_exact(rcluster: Cluster, s3: S3Server, remote: str) -> None:
    objs = fill(s3, remote, 24)
    objs["big/3mib"] = os.urandom(3 << 20)
    s3.s3.put_object(Bucket=remote, Key="big/3mib", Body=objs["big/3mib"])
    bck = Client(rcluster.url).bucket(remote, provider="aws")
    assert cached(rcluster.url, remote) == set()
    for k, v in objs.items():  # cold: streamed from the backend
        assert bck.object(k).get_reader().read_all() == v, k
    assert cached(rcluster.url, remote) == set(objs)
    # Gone from the backend behind our back: warm reads are local.
    for k in objs:
        s3.s3.delete_object(Bucket=remote, Key=k)
    for k, v in objs.items():
        assert bck.object(k).get_reader().read_all() == v, k
    # A byte range of a cached object, and of a cold one (fetched whole first).
    r = requests.get(f"{rcluster.url}/v1/objects/{remote}/big/3mib", params={"provider": "aws"}, headers={"Range": "bytes=100-199"}, timeout=HTTP)
    assert r.status_code == 206 and r.content == objs["big/3mib"][100:200]
    s3.s3.put_object(Bucket=remote, Key="late", Body=b"0123456789")
    r = requests.get(f"{rcluster.url}/v1/objects/{remote}/late", params={"provider": "aws"}, headers={"Range": "bytes=2-4"}, timeout=HTTP)
    assert r.status_code == 206 and r.content == b"234", r.text


def test_listing_pages_over_the_backend_with_cached_flags(rcluster: Cluster, s3: S3Server, remote: str) -> None:
    objs = fill(s3, remote, 130, prefix="p/")
    bck = Client(rcluster.url).bucket(remote, provider="aws")
    for k in list(objs)[:10]:
        bck.object(k).get_reader().read_all()
    entries = list(bck.list_objects_iter(prefix="p/", props="name,size,cached", page_size=40))
    assert [e.name for e in entries] == sorted(objs)
    assert {e.name: e.size for e in entries} == {k: len(v) for k, v in objs.items()}
    flagged = {e.name for e in entries if e.is_ok() and e.flags & (1 << 6)}
    assert flagged == set(list(objs)[:10])
    out = ais(rcluster, "ls", f"s3://{remote}", "--cached")
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split()[2::2]) == sorted(list(objs)[:10])
    # NOT_CACHED, the strict opposite: what only the backend has (pages may
    # come out short, the SDK follows the token).
    from aistore.sdk.list_object_flag import ListObjectFlag

    rest = [e.name for e in bck.list_objects_iter(prefix="p/", page_size=40, flags=[ListObjectFlag.NOT_CACHED])]
    assert rest == sorted(list(objs)[10:])
    both = [ListObjectFlag.CACHED, ListObjectFlag.NOT_CACHED]
    r = requests.get(f"{rcluster.url}/v1/buckets/{remote}", params={"provider": "aws"},
                     json={"action": "list", "value": {"flags": str(ListObjectFlag.join_flags(both))}}, timeout=HTTP)
    assert r.status_code == 400 and "exclude" in r.text, r.text
    # An ais:// bucket holds all it has: nothing is "not cached".
    local = Client(rcluster.url).bucket(f"nc-{remote}").create()
    local.object("x").get_writer().put_content(b"x")
    assert list(local.list_objects_iter(flags=[ListObjectFlag.NOT_CACHED])) == []
    local.delete()


def test_prefetch_makes_every_later_read_warm(rcluster: Cluster, s3: S3Server, remote: str) -> None:
    objs = fill(s3, remote, 40)
    bck = Client(rcluster.url).bucket(remote, provider="aws")
    job = bck.objects(obj_template="d/{0000..0039}").prefetch()
    Client(rcluster.url).job(job_id=job).wait(timeout=120)
    assert cached(rcluster.url, remote) == set(objs)
    for k in objs:
        s3.s3.delete_object(Bucket=remote, Key=k)
    for k, v in objs.items():
        assert bck.object(k).get_reader().read_all() == v
    # Evict two: they are gone from the cluster (and the backend no longer has them).
    job = bck.objects(obj_names=["d/0000", "d/0001"]).evict()
    Client(rcluster.url).job(job_id=job).wait(timeout=60)
    assert cached(rcluster.url, remote) == set(objs) - {"d/0000", "d/0001"}
    r = requests.get(f"{rcluster.url}/v1/objects/{remote}/d/0000", params={"provider": "aws"}, timeout=HTTP)
    assert r.status_code == 404, r.text


def test_prefetch_by_prefix_through_the_cli(rcluster: Cluster, s3: S3Server, remote: str) -> None:
    objs = fill(s3, remote, 12, prefix="a/")
    objs.update(fill(s3, remote, 5, prefix="b/"))
    out = ais(rcluster, "prefetch", f"s3://{remote}", "--prefix", "a/", "--wait")
    assert out.returncode == 0, out.stderr
    assert cached(rcluster.url, remote) == {k for k in objs if k.startswith("a/")}


def test_validate_warm_get_detects_an_overwrite_behind_our_back(rcluster: Cluster, s3: S3Server, remote: str) -> None:
    s3.s3.put_object(Bucket=remote, Key="o", Body=b"version one")
    bck = Client(rcluster.url).bucket(remote, provider="aws")
    assert bck.object("o").get_reader().read_all() == b"version one"
    s3.s3.put_object(Bucket=remote, Key="o", Body=b"version two, longer")
    # Without validation the cached copy is served.
    assert bck.object("o").get_reader().read_all() == b"version one"
    # One GET may ask for the latest version (the SDK's `latest=True`).
    assert bck.object("o").get_reader(latest=True).read_all() == b"version two, longer"
    s3.s3.put_object(Bucket=remote, Key="o", Body=b"version three")
    assert bck.object("o").get_reader().read_all() == b"version two, longer"
    r = requests.patch(
        f"{rcluster.url}/v1/buckets/{remote}", params={"provider": "aws"},
        json={"action": "set-bprops", "value": {"checksum": {"validate_warm_get": True}}}, timeout=HTTP,
    )
    assert r.status_code == 200, r.text
    assert bck.object("o").get_reader().read_all() == b"version three"
    assert bck.object("o").get_reader().read_all() == b"version three"
    s3.s3.delete_object(Bucket=remote, Key="o")
    r = requests.get(f"{rcluster.url}/v1/objects/{remote}/o", params={"provider": "aws"}, timeout=HTTP)
    assert r.status_code == 404, r.text
    assert "o" not in cached(rcluster.url, remote)


def test_put_writes_through_and_delete_removes_both(rcluster: Cluster, s3: S3Server, remote: str) -> None:
    bck = Client(rcluster.url).bucket(remote, provider="aws")
    data = os.urandom(2 << 20)
    bck.object("w/new").get_writer().put_content(data)
    assert s3.s3.get_object(Bucket=remote, Key="w/new")["Body"].read() == data
    assert "w/new" in cached(rcluster.url, remote)
    assert bck.object("w/new").get_reader().read_all() == data
    bck.object("w/new").delete()
    with pytest.raises(s3.s3.exceptions.NoSuchKey):
        s3.s3.get_object(Bucket=remote, Key="w/new")
    assert "w/new" not in cached(rcluster.url, remote)


def test_missing_remote_bucket_and_unreachable_backend_are_clear_errors(rcluster: Cluster, s3: S3Server) -> None:
    r = requests.get(f"{rcluster.url}/v1/objects/no-such-{uuid.uuid4().hex[:6]}/x", params={"provider": "aws"}, timeout=HTTP)
    assert r.status_code == 404, r.text
    assert "does not exist" in r.json()["message"]
    dead = f"http://127.0.0.1:{free_port()}"
    r = requests.post(
        f"{rcluster.url}/v1/buckets/dead-{uuid.uuid4().hex[:6]}", params={"provider": "aws"},
        json={"action": "create-bck", "value": {"extra": {"aws": {"endpoint": dead}}}}, timeout=HTTP,
    )
    assert r.status_code == 503, r.text
    assert "unreachable" in r.json()["message"]


CODE = "def transform(data):\n    return data.upper()\n"


def test_etl_inline_batch_and_offline_on_remote_objects(rcluster: Cluster, s3: S3Server, remote: str) -> None:
    objs = {f"t/{i:03d}": (b"hello %d " % i) * (i + 1) for i in range(12)}
    for k, v in objs.items():
        s3.s3.put_object(Bucket=remote, Key=k, Body=v)
    etl = f"up-{uuid.uuid4().hex[:6]}"
    put_etl(rcluster.url, etl, CODE)
    client = Client(rcluster.url)
    bck = client.bucket(remote, provider="aws")
    # Inline, on a cold object: fetched next to its target, transformed there.
    r = requests.get(f"{rcluster.url}/v1/objects/{remote}/t/000", params={"provider": "aws", "etl_name": etl}, timeout=HTTP)
    assert r.status_code == 200 and r.content == objs["t/000"].upper(), r.text
    # Get-Batch over remote items (cold ones too).
    batch = client.batch(list(objs), bucket=bck)
    got = {o.obj_name: d for o, d in batch.get()}
    assert got == objs
    # Offline: s3://remote -> ais://dst through the transform.
    dst = client.bucket(f"dst-{uuid.uuid4().hex[:6]}")
    job = bck.transform(to_bck=dst, etl_name=etl)
    client.job(job_id=job).wait(timeout=180)
    out = {e.name: dst.object(e.name).get_reader().read_all() for e in dst.list_all_objects()}
    assert out == {k: v.upper() for k, v in objs.items()}
    dst.delete(missing_ok=True)


def test_an_offline_transform_of_objects_never_read_fetches_them(rcluster: Cluster, s3: S3Server, remote: str) -> None:
    """Every source object cold (never read through the cluster): each
    target fetches the ones it owns from the backend, transforms them, and
    the job reports success only with every output written."""
    objs = {f"c/{i:03d}": (b"cold %d " % i) * (i + 1) for i in range(12)}
    for k, v in objs.items():
        s3.s3.put_object(Bucket=remote, Key=k, Body=v)
    etl = f"up-{uuid.uuid4().hex[:6]}"
    put_etl(rcluster.url, etl, CODE)
    client = Client(rcluster.url)
    bck = client.bucket(remote, provider="aws")
    dst = client.bucket(f"dst-{uuid.uuid4().hex[:6]}")
    job = bck.transform(to_bck=dst, etl_name=etl)
    client.job(job_id=job).wait(timeout=180)
    st = requests.get(f"{rcluster.url}/v1/cluster", params={"what": "status"}, json={"ID": job}, timeout=HTTP).json()
    assert (st["err"], st["err_count"], st["objs"]) == ("", 0, len(objs)), st
    out = {e.name: dst.object(e.name).get_reader().read_all() for e in dst.list_all_objects()}
    assert out == {k: v.upper() for k, v in objs.items()}
    dst.delete(missing_ok=True)


def test_s3_clients_read_and_write_a_remote_bucket_through_the_s3_front_door(rcluster: Cluster, s3: S3Server, remote: str) -> None:
    """boto3 pointed at the cluster's /s3 reads an s3:// bucket through the
    cache and writes through to its backend (single PUT and multipart)."""
    from boto3.s3.transfer import TransferConfig

    objs = fill(s3, remote, 6)
    ours = boto3.client("s3", endpoint_url=f"{rcluster.url}/s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    requests.head(f"{rcluster.url}/v1/buckets/{remote}", params={"provider": "aws"}, timeout=HTTP)
    listed = [o["Key"] for o in ours.list_objects_v2(Bucket=remote)["Contents"]]
    assert listed == sorted(objs)
    for k, v in objs.items():
        assert ours.get_object(Bucket=remote, Key=k)["Body"].read() == v
    ours.put_object(Bucket=remote, Key="via-s3/one", Body=b"through the front door")
    assert s3.s3.get_object(Bucket=remote, Key="via-s3/one")["Body"].read() == b"through the front door"
    big = os.urandom(12 << 20)
    src = Path(os.environ.get("TMPDIR", "/tmp")) / f"mpu-{uuid.uuid4().hex}"
    src.write_bytes(big)
    try:
        ours.upload_file(str(src), remote, "via-s3/big", Config=TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20))
    finally:
        src.unlink()
    assert s3.s3.get_object(Bucket=remote, Key="via-s3/big")["Body"].read() == big
    ours.delete_object(Bucket=remote, Key="via-s3/one")
    with pytest.raises(s3.s3.exceptions.NoSuchKey):
        s3.s3.get_object(Bucket=remote, Key="via-s3/one")


class _Dying(http.server.BaseHTTPRequestHandler):
    """An S3 endpoint that promises an object and dies half-way through it."""

    protocol_version = "HTTP/1.1"
    size = 4 << 20

    def log_message(self, *a) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(self.size))
        self.send_header("ETag", '"feed"')
        self.end_headers()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(self.size))
        self.send_header("ETag", '"feed"')
        self.end_headers()
        self.wfile.write(b"x" * (self.size // 2))
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


def test_a_backend_dying_mid_object_serves_no_whole_object_and_caches_nothing(rcluster: Cluster) -> None:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Dying)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    name = f"dying-{uuid.uuid4().hex[:6]}"
    try:
        r = requests.post(
            f"{rcluster.url}/v1/buckets/{name}", params={"provider": "aws"},
            json={"action": "create-bck", "value": {"extra": {"aws": {"endpoint": f"http://127.0.0.1:{srv.server_port}"}}}},
            timeout=HTTP,
        )
        assert r.status_code == 200, r.text
        for _ in range(2):  # cold both times: nothing was cached by the first
            got = b""
            with pytest.raises(requests.exceptions.RequestException):
                with requests.get(f"{rcluster.url}/v1/objects/{name}/obj", params={"provider": "aws"}, stream=True, timeout=HTTP) as resp:
                    assert resp.status_code == 200
                    assert int(resp.headers["Content-Length"]) == _Dying.size
                    for chunk in resp.iter_content(1 << 16):
                        got += chunk
            assert len(got) < _Dying.size, "a short object was served as whole"
        # The same through the cached-copy path readers (ETL, jobs) use: a clear error, not bytes.
        r = requests.post(
            f"{rcluster.url}/v1/buckets/{name}", params={"provider": "aws"},
            json={"action": "prefetch-listrange", "value": {"objnames": ["obj"]}}, timeout=HTTP,
        )
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 60
        while True:
            jobs = requests.get(f"{rcluster.url}/v1/cluster", params={"what": "jobs"}, timeout=HTTP).json()
            j = [x for x in jobs if x["uuid"] == r.text.strip()]
            if j and j[0]["end_time"]:
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert j[0]["err_count"] == 1 and j[0]["objs"] == 0, j
        assert cached(rcluster.url, name) == set()
    finally:
        srv.shutdown()
        requests.delete(f"{rcluster.url}/v1/buckets/{name}", params={"provider": "aws"}, json={"action": "evict-remote-bck"}, timeout=HTTP)


def test_clients_hanging_up_mid_cold_get_or_mid_write_through(rcluster: Cluster, s3: S3Server, remote: str) -> None:
    """A client that hangs up during a cold GET does not stop the caching
    (the next read is warm and whole); one that hangs up during a PUT into
    an s3:// bucket leaves nothing at the backend and nothing cached."""
    big = os.urandom(8 << 20)
    s3.s3.put_object(Bucket=remote, Key="big", Body=big)
    bck = Client(rcluster.url).bucket(remote, provider="aws")
    with requests.get(f"{rcluster.url}/v1/objects/{remote}/big", params={"provider": "aws"}, stream=True, timeout=HTTP) as r:
        assert r.status_code == 200
        next(r.iter_content(1 << 16))
    # (closed after the first 64 KiB)
    deadline = time.monotonic() + 30
    while "big" not in cached(rcluster.url, remote):
        assert time.monotonic() < deadline, "the hung-up cold GET was not cached"
        time.sleep(0.1)
    s3.s3.delete_object(Bucket=remote, Key="big")  # proves the next read is local
    assert bck.object("big").get_reader().read_all() == big
    # A PUT that stops half-way: straight to a target, raw socket.
    tgt = rcluster.targets[0].url.split("//", 1)[1]
    host, port = tgt.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    s.sendall(
        f"PUT /v1/objects/{remote}/half?provider=aws&ais_hop=1 HTTP/1.1\r\nHost: x\r\nContent-Length: {4 << 20}\r\n\r\n".encode()
        + b"y" * (1 << 20)
    )
    time.sleep(0.5)
    s.close()
    time.sleep(1.0)
    with pytest.raises(s3.s3.exceptions.NoSuchKey):
        s3.s3.get_object(Bucket=remote, Key="half")
    assert "half" not in cached(rcluster.url, remote)


def test_blob_download_through_the_cli(rcluster: Cluster, s3: S3Server, remote: str) -> None:
    """`ais blob-download s3://B/O` (and `ais start blob-download`): the
    object cached whole, from ranges fetched in parallel."""
    big = os.urandom(200_000)
    s3.s3.put_object(Bucket=remote, Key="blob", Body=big)
    p = ais(rcluster, "blob-download", f"s3://{remote}/blob", "--chunk-size", "65536", "--num-workers", "4", "--wait")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Started blob-download[" in p.stdout, p.stdout
    assert "blob" in cached(rcluster.url, remote)
    got = urllib.request.urlopen(f"{rcluster.url}/v1/objects/{remote}/blob?provider=aws", timeout=30).read()
    assert got == big
    p = ais(rcluster, "start", "blob-download", f"s3://{remote}/nope", "--wait")
    assert p.returncode != 0


# ------------------------------------------------- native bucket inventories


def nbi_page(url: str, bucket: str, inv: str = "", **value) -> requests.Response:
    """One list-objects request with the NBI flag (bit 15) and ``value``'s
    other fields (``flags`` added to it)."""
    value["flags"] = str((1 << 15) | int(value.get("flags", 0)))
    headers = {"Ais-Inv-Name": inv} if inv else {}
    return requests.get(
        f"{url}/v1/buckets/{bucket}",
        params={"provider": "aws"},
        json={"action": "list", "value": value},
        headers=headers,
        timeout=HTTP,
    )


def test_inventory_is_a_snapshot_listed_instead_of_the_backend(rcluster: Cluster, s3: S3Server, remote: str) -> None:
    """`create-inventory` (SDK and `ais nbi create`): every target keeps the
    backend's names it owns, in small chunks; listings with the NBI flag
    read that snapshot (pages merged across targets, prefixes, one level
    deep, the cached flag live), while the backend changes underneath;
    show, force, remove, and every refusal."""
    # Enough names for several chunks of 100 per target; "d/" spans chunks.
    names = [f"d/{i:04d}" for i in range(420)] + [f"e/{s}/{i}" for s in "xyz" for i in range(10)] + ["e/top"]
    for n in names:
        s3.s3.put_object(Bucket=remote, Key=n, Body=n.encode())
    client = Client(rcluster.url)
    bck = client.bucket(remote, provider="aws")
    bck.object("d/0007").get_reader().read_all()  # cached in the cluster

    job = bck.create_inventory(name="inv1", names_per_chunk=100)
    assert client.job(job).wait(timeout=60, verbose=False).success
    shown = bck.show_inventory()
    assert list(shown) == [f"aws/@#/{remote}/inv1"], shown
    info = shown[f"aws/@#/{remote}/inv1"]
    assert (info.name, info.bucket, info.ntotal, info.nat) == ("inv1", remote, len(names), 3)
    assert info.chunks >= len(names) // 100 and info.size > 0 and info.finished >= info.started > 0

    # A snapshot: the backend changes, the inventory's listing does not.
    s3.s3.put_object(Bucket=remote, Key="d/new", Body=b"new")
    s3.s3.delete_object(Bucket=remote, Key="d/0000")
    want = sorted(names)
    got = [e.name for e in bck.list_all_objects(inventory_name="inv1", page_size=9)]
    assert got == want
    assert "d/new" in [e.name for e in bck.list_all_objects()]
    entries = {e.name: e for e in bck.list_all_objects(inventory_name="inv1", props="name,size,cached")}
    assert entries["d/0007"].is_cached() and not entries["d/0008"].is_cached()
    assert entries["d/0008"].size == len(b"d/0008")
    # Its only inventory when none is named; a prefix; one level deep.
    r = nbi_page(rcluster.url, remote, prefix="e/y/", props="name")
    assert r.status_code == 200, r.text
    assert [e["name"] for e in r.json()["entries"]] == [f"e/y/{i}" for i in range(10)]
    r = nbi_page(rcluster.url, remote, "inv1", prefix="e/", flags=1 << 11, props="name")
    assert r.status_code == 200, r.text
    assert [e["name"] for e in r.json()["entries"]] == ["e/top", "e/x/", "e/y/", "e/z/"]
    r = nbi_page(rcluster.url, remote, "inv1", prefix="e/", flags=(1 << 11) | (1 << 13), props="name")
    assert [e["name"] for e in r.json()["entries"]] == ["e/top"]
    r = nbi_page(rcluster.url, remote, "inv1", flags=1 << 11, props="name", pagesize=1)
    assert r.status_code == 200 and [e["name"] for e in r.json()["entries"]] == ["d/"], r.text
    r = nbi_page(rcluster.url, remote, "inv1", flags=1 << 11, props="name", continuation_token="d/")
    assert [e["name"] for e in r.json()["entries"]] == ["e/"], r.text

    # Refusals, each naming why.
    r = nbi_page(rcluster.url, remote, "nope")
    assert r.status_code == 404 and "nope" in r.text, r.text
    r = nbi_page(rcluster.url, remote, "inv1", start_after="d/0001")
    assert r.status_code == 400 and "start_after" in r.text, r.text
    r = nbi_page(rcluster.url, remote, "inv1", flags=1 << 9)
    assert r.status_code == 400 and "flags" in r.text, r.text

    def create(value: dict) -> requests.Response:
        return requests.post(
            f"{rcluster.url}/v1/buckets/{remote}",
            params={"provider": "aws"},
            json={"action": "create-inventory", "value": value},
            timeout=HTTP,
        )

    r = create({"name": "inv1"})
    assert r.status_code == 409 and "inv1" in r.text, r.text
    r = create({"name": "inv2"})
    assert r.status_code == 409 and "force" in r.text, r.text
    for bad, why in (
        ({"names_per_chunk": 1}, "names_per_chunk"),
        ({"name": "../x"}, "invalid inventory name"),
        ({"start_after": "a"}, "start_after"),
        ({"flags": "1"}, "flags"),
        ({"bogus": 1}, "bogus"),
    ):
        r = create(bad)
        assert r.status_code == 400 and why in r.text, (bad, r.text)
    ab = client.bucket(f"ais-{uuid.uuid4().hex[:8]}")
    ab.create()
    with pytest.raises(Exception, match="remote bucket"):
        ab.create_inventory()
    r = requests.get(
        f"{rcluster.url}/v1/buckets/{ab.name}",
        json={"action": "list", "value": {"flags": str(1 << 15)}},
        timeout=HTTP,
    )
    assert r.status_code == 400 and "ais://" in r.text, r.text
    ab.delete()

    # The CLI: force a new one, show it, list from it, remove it.
    p = ais(rcluster, "nbi", "create", f"s3://{remote}", "--inv-name", "inv2", "--prefix", "e/", "--force", "--wait")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "create-inventory[" in p.stdout, p.stdout
    assert [i.name for i in bck.show_inventory().values()] == ["inv2"]
    p = ais(rcluster, "show", "nbi", f"s3://{remote}", "-v")
    assert p.returncode == 0 and "inv2" in p.stdout and "e/" in p.stdout, p.stdout + p.stderr
    p = ais(rcluster, "nbi", "show")
    assert p.returncode == 0 and "inv2" in p.stdout, p.stdout + p.stderr
    r = nbi_page(rcluster.url, remote, "inv2", prefix="d/")
    assert r.status_code == 400 and "under" in r.text, r.text
    p = ais(rcluster, "ls", f"s3://{remote}", "--inventory", "--props", "name,size", "-H")
    assert p.returncode == 0, p.stdout + p.stderr
    listed = [l.split()[0] for l in p.stdout.splitlines() if l.strip() and not l.startswith("Listed")]
    assert listed == sorted(n for n in names if n.startswith("e/")), p.stdout
    p = ais(rcluster, "nbi", "rm", f"s3://{remote}", "--inv-name", "inv2")
    assert p.returncode == 0, p.stdout + p.stderr
    assert bck.show_inventory() == {}
    p = ais(rcluster, "ls", f"s3://{remote}", "--inventory")
    assert p.returncode != 0 and "no inventory" in (p.stdout + p.stderr), p.stdout + p.stderr
    p = ais(rcluster, "nbi", "rm", f"s3://{remote}")
    assert p.returncode != 0 and "no inventory" in (p.stdout + p.stderr), p.stdout + p.stderr


def test_an_inventory_missing_a_targets_share_is_never_listed_partially(rcluster: Cluster, s3: S3Server, remote: str) -> None:
    """A target's share lost (its directory removed): the listing says the
    inventory is incomplete instead of answering two thirds of it; a bucket
    evicted from the cluster takes its inventories along."""
    for i in range(30):
        s3.s3.put_object(Bucket=remote, Key=f"o/{i:03d}", Body=b"x")
    client = Client(rcluster.url)
    bck = client.bucket(remote, provider="aws")
    assert client.job(bck.create_inventory(name="snap")).wait(timeout=60, verbose=False).success
    r = nbi_page(rcluster.url, remote, "snap", props="name")
    assert r.status_code == 200 and len(r.json()["entries"]) == 30, r.text
    share = rcluster.targets[1].data_dir / "mp1" / ".ais-nbi" / remote / "snap"
    assert share.is_dir(), share
    # A target's inventory endpoint takes only a bucket of the map by a
    # valid name: its name becomes a directory there.
    turl = rcluster.targets[1].url
    for path in ("%2e%2e", "..%2F..", f"{remote}%2F..", "no-such-bucket"):
        r = requests.delete(f"{turl}/v1/internal/nbi/{path}", timeout=HTTP)
        assert r.status_code in (400, 404), (path, r.status_code, r.text)
    r = requests.delete(f"{turl}/v1/internal/nbi/{remote}", params={"name": "../snap"}, timeout=HTTP)
    assert r.status_code == 400, r.text
    assert share.is_dir() and (rcluster.targets[1].data_dir / "mp1").is_dir()
    # A share of another creation (a target back with an old one): never mixed in.
    meta = share / "meta.json"
    saved = meta.read_bytes()
    m = json.loads(saved)
    m["job"] = "create-inventory-older"
    meta.write_text(json.dumps(m))
    r = nbi_page(rcluster.url, remote, "snap", props="name")
    assert r.status_code == 409 and "different inventories" in r.text, r.text
    meta.write_bytes(saved)
    assert nbi_page(rcluster.url, remote, "snap", props="name").status_code == 200
    shutil.rmtree(share)
    r = nbi_page(rcluster.url, remote, "snap", props="name")
    assert r.status_code == 503 and "incomplete" in r.text, r.text
    # A target's internal listing page is bounded whatever it is asked:
    # a limit past the bound is clamped (not refused, not taken), 0 is one.
    t0url = rcluster.targets[0].url
    for limit, most in (("1000000000000", 30), ("0", 1)):
        r = requests.get(
            f"{t0url}/v1/internal/list/{remote}",
            params={"flags": str(1 << 15), "inv": "snap", "limit": limit},
            timeout=HTTP,
        )
        assert r.status_code == 200, r.text
        n = len(r.json()["entries"])
        assert 1 <= n <= most, (limit, n)
    # One target's part, or the cached ones only: refused, never answered as the inventory.
    r = nbi_page(rcluster.url, remote, "snap", target=rcluster.targets[0].node_id)
    assert r.status_code == 400 and "target" in r.text, r.text
    r = nbi_page(rcluster.url, remote, "snap", flags=1)
    assert r.status_code == 400 and "cached" in r.text, r.text
    # Evicting the bucket removes the rest.
    bck.evict(keep_md=False)
    left = [t.data_dir / "mp1" / ".ais-nbi" / remote for t in rcluster.targets]
    deadline = time.monotonic() + 20
    while any(p.exists() for p in left) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(p.exists() for p in left), left


def test_copy_with_sync_follows_deletions_at_the_backend(rcluster: Cluster, s3: S3Server, remote: str) -> None:
    """`copy(sync=True)` of an s3:// bucket: what was deleted in S3 goes from
    the destination too (and only that)."""
    objs = fill(s3, remote, 10, prefix="s/")
    client = Client(rcluster.url)
    src = client.bucket(remote, provider="aws")
    dst = client.bucket(f"sync-{remote}")

    def copy(**kw) -> None:
        job = src.copy(dst, **kw)
        deadline = time.monotonic() + 60
        while True:
            st = requests.get(f"{rcluster.url}/v1/cluster", params={"what": "status"}, json={"ID": job}, timeout=HTTP).json()
            if st.get("end_time"):
                assert not st.get("err"), st
                return
            assert time.monotonic() < deadline, st
            time.sleep(0.1)

    try:
        copy()
        assert sorted(e.name for e in dst.list_all_objects()) == sorted(objs)
        gone = sorted(objs)[:3]
        for k in gone:
            s3.s3.delete_object(Bucket=remote, Key=k)
        copy(sync=True)
        assert sorted(e.name for e in dst.list_all_objects()) == sorted(set(objs) - set(gone))
    finally:
        dst.delete(missing_ok=True)


def test_backend_bck_makes_an_ais_bucket_front_a_remote_one(rcluster: Cluster, s3: S3Server, remote: str) -> None:
    """AIStore's backend_bck: an ais:// bucket tied to an s3:// bucket
    lists, reads (cold, then cached), writes through to and deletes from
    the remote one; prefetch and evict work on it; bad backends are
    refused by name; clearing it leaves what the cluster holds."""
    objs = fill(s3, remote, 12, prefix="v/")
    client = Client(rcluster.url)
    name = f"view-{remote}"
    view = client.bucket(name).create()
    url = f"{rcluster.url}/v1/buckets/{name}"

    def set_backend(value: dict) -> requests.Response:
        return requests.patch(url, json={"action": "set-bprops", "value": {"backend_bck": value}}, timeout=HTTP)

    try:
        for bad, status, why in (
            ({"name": f"no-such-{remote}", "provider": "aws"}, 404, "does not exist"),
            ({"name": remote, "provider": "ais"}, 400, "cloud bucket"),
            ({"name": "", "provider": "aws"}, 400, "without a bucket name"),
            ({"name": remote, "provider": "aws", "namespace": {"uuid": "other", "name": ""}}, 501, "remote AIS"),
            ({"name": remote, "provider": "aws", "bogus": 1}, 400, "bogus"),
        ):
            r = set_backend(bad)
            assert r.status_code == status and why in r.text, (bad, r.text)
        r = requests.patch(f"{rcluster.url}/v1/buckets/{remote}", params={"provider": "aws"},
                           json={"action": "set-bprops", "value": {"backend_bck": {"name": remote, "provider": "aws"}}}, timeout=HTTP)
        assert r.status_code == 400 and "ais:// buckets" in r.text, r.text
        r = set_backend({"name": remote, "provider": "s3"})
        assert r.status_code == 200, r.text
        out = ais(rcluster, "bucket", "props", "set", f"ais://{name}", f"backend_bck=s3://{remote}")
        assert out.returncode == 0, out.stderr
        # Another backend is not switched to under the cached copies.
        other = f"other-{remote}"
        s3.s3.create_bucket(Bucket=other)
        r = set_backend({"name": other, "provider": "aws"})
        assert r.status_code == 409 and "clear backend_bck first" in r.text, r.text
        props = requests.head(url, timeout=HTTP).headers
        assert json.loads(props["Ais-Bucket-Props"])["backend_bck"] == {"name": remote, "provider": "aws", "namespace": {"uuid": "", "name": ""}}
        # Listing: the backend's names, cached flags as a remote bucket's.
        assert [e.name for e in view.list_all_objects()] == sorted(objs)
        for k, v in objs.items():
            assert view.object(k).get_reader().read_all() == v
        assert cached(rcluster.url, remote) == set()  # cached under the ais:// name, not the s3:// one
        held = [e.name for e in view.list_objects_iter(props="name,cached") if e.flags & (1 << 6)]
        assert held == sorted(objs)
        # Write-through and delete reach the remote bucket.
        view.object("v/new").get_writer().put_content(b"written through the view")
        assert s3.s3.get_object(Bucket=remote, Key="v/new")["Body"].read() == b"written through the view"
        view.object("v/0000").delete()
        with pytest.raises(s3.s3.exceptions.NoSuchKey):
            s3.s3.get_object(Bucket=remote, Key="v/0000")
        # A copy of it is a bucket of the cluster's own: nothing written
        # back to the backend, and a fronting bucket is no destination.
        dst = client.bucket(f"copy-{remote}")
        try:
            client.job(job_id=view.copy(dst, prefix_filter="v/00")).wait(timeout=60)
            props = json.loads(requests.head(f"{rcluster.url}/v1/buckets/{dst.name}", timeout=HTTP).headers["Ais-Bucket-Props"])
            assert props["backend_bck"]["name"] == "", props
            r = requests.post(f"{rcluster.url}/v1/buckets/{dst.name}", params={"bck_to": f"ais/@#/{name}/"},
                              json={"action": "copy-bck", "value": {}}, timeout=HTTP)
            assert r.status_code == 400 and "backend_bck" in r.text, r.text
            dst.object("v/0003").get_writer().put_content(b"only in the copy")
            assert s3.s3.get_object(Bucket=remote, Key="v/0003")["Body"].read() == objs["v/0003"]
        finally:
            dst.delete(missing_ok=True)
        # Evict, then prefetch, through the ais:// name (REST: the SDK
        # checks the provider on its side and refuses ais:// for these).
        def job(method: str, action: str, names: list) -> None:
            r = requests.request(method, url, json={"action": action, "value": {"objnames": names}}, timeout=HTTP)
            assert r.status_code == 200, r.text
            client.job(job_id=r.text).wait(timeout=60)

        job("DELETE", "evict-listrange", ["v/0001", "v/0002"])
        held = {e.name for e in view.list_objects_iter(props="name,cached") if e.flags & (1 << 6)}
        assert "v/0001" not in held and "v/0003" in held
        job("POST", "prefetch-listrange", ["v/0001"])
        # Cleared (the CLI's backend_bck=none): an ais:// bucket again,
        # holding what it cached.
        out = ais(rcluster, "bucket", "props", "set", f"ais://{name}", "backend_bck=none")
        assert out.returncode == 0, out.stderr
        local = {e.name for e in view.list_all_objects()}
        assert "v/0001" in local and "v/0002" not in local and "v/0000" not in local, local
        r = requests.post(url, json={"action": "prefetch-listrange", "value": {"objnames": ["v/0002"]}}, timeout=HTTP)
        assert r.status_code == 400 and "backend_bck" in r.text, r.text
        # What it holds now would be taken for a backend's objects: refused.
        r = set_backend({"name": remote, "provider": "aws"})
        assert r.status_code == 409 and "empty bucket" in r.text, r.text
    finally:
        view.delete(missing_ok=True)
