"""Shards and batches against a real cluster with the official SDK 2.0.0:
archive members read in place (``archpath``, ``archregx`` + ``archmode``),
Get-Batch (``client.batch()``: order, ``__404__/`` with ``cont_on_err``,
ranges, archpath items, multipart ``MossOut``, formats), ETL per item, and
rejection of query parameters an object GET does not support."""

from __future__ import annotations

import base64
import io
import os
import random
import tarfile
import uuid
import zipfile
from typing import Dict, List, Tuple

import pytest
import requests
from aistore.sdk import Client
from aistore.sdk.archive_config import ArchiveConfig, ArchiveMode
from aistore.sdk.bucket import Bucket
from aistore.sdk.errors import AISError

from ais_cluster import Cluster

HTTP_TIMEOUT = 60


def members() -> List[Tuple[str, bytes]]:
    rnd = random.Random(7)
    out = []
    for i in range(12):
        out.append((f"sample/{i:04d}.jpg", rnd.randbytes(500 + 97 * i)))
        out.append((f"sample/{i:04d}.cls", str(i % 5).encode()))
    return out


def make_tar(ms: List[Tuple[str, bytes]], gz: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as t:
        for n, d in ms:
            info = tarfile.TarInfo(n)
            info.size = len(d)
            t.addfile(info, io.BytesIO(d))
    return buf.getvalue()


def make_zip(ms: List[Tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i, (n, d) in enumerate(ms):
            z.writestr(n, d, compress_type=zipfile.ZIP_DEFLATED if i % 2 else zipfile.ZIP_STORED)
    return buf.getvalue()


def put(bck: Bucket, name: str, data: bytes) -> None:
    resp = bck.object(name).get_writer().put_content(data)
    assert resp.status_code == 200, resp.text


@pytest.fixture
def shards(bucket: Bucket) -> Dict[str, bytes]:
    ms = members()
    blobs = {"s.tar": make_tar(ms), "s.tgz": make_tar(ms, gz=True), "s.zip": make_zip(ms)}
    for n, b in blobs.items():
        put(bucket, n, b)
    return blobs


def test_archpath_reads_members_byte_equal(bucket: Bucket, shards: Dict[str, bytes]) -> None:
    for shard, blob in shards.items():
        # What Python's own readers say is in the shard.
        if shard.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(blob)) as z:
                want = {n: z.read(n) for n in z.namelist()}
        else:
            with tarfile.open(fileobj=io.BytesIO(blob)) as t:
                want = {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}
        for name in ["sample/0000.jpg", "sample/0011.cls", "sample/0007.jpg"]:
            got = bucket.object(shard).get_reader(archive_config=ArchiveConfig(archpath=name)).read_all()
            assert got == want[name], (shard, name)
        # Every member matching a WebDataset key, as a tar.
        cfg = ArchiveConfig(regex="sample/0003", mode=ArchiveMode.WDSKEY)
        got = bucket.object(shard).get_reader(archive_config=cfg).read_all()
        with tarfile.open(fileobj=io.BytesIO(got)) as t:
            names = [m.name for m in t.getmembers()]
            assert names == ["sample/0003.jpg", "sample/0003.cls"], (shard, names)
            assert t.extractfile("sample/0003.jpg").read() == want["sample/0003.jpg"]
        cfg = ArchiveConfig(regex=r"0001\.(jpg|cls)$", mode=ArchiveMode.REGEXP)
        got = bucket.object(shard).get_reader(archive_config=cfg).read_all()
        with tarfile.open(fileobj=io.BytesIO(got)) as t:
            assert sorted(m.name for m in t.getmembers()) == ["sample/0001.cls", "sample/0001.jpg"]
        # A member that is not there: 404 naming it, never the whole shard.
        with pytest.raises(AISError) as e:
            bucket.object(shard).get_reader(archive_config=ArchiveConfig(archpath="nope.txt")).read_all()
        assert e.value.status_code == 404 and "nope.txt" in str(e.value)


def test_archpath_on_a_plain_object_is_a_clear_400(bucket: Bucket) -> None:
    put(bucket, "plain.bin", b"x" * 100)
    with pytest.raises(AISError) as e:
        bucket.object("plain.bin").get_reader(archive_config=ArchiveConfig(archpath="a")).read_all()
    assert e.value.status_code == 400 and "not an archive" in str(e.value)
    put(bucket, "broken.tar", b"this is not a tar" * 100)
    with pytest.raises(AISError) as e:
        bucket.object("broken.tar").get_reader(archive_config=ArchiveConfig(archpath="a")).read_all()
    assert e.value.status_code == 400 and "not a readable" in str(e.value)


@pytest.mark.parametrize("param", ["mpt", "synchronize", "bogus"])
def test_unsupported_query_parameters_are_rejected(cluster: Cluster, bucket: Bucket, param: str) -> None:
    put(bucket, "q.bin", b"payload")
    r = requests.get(f"{cluster.url}/v1/objects/{bucket.name}/q.bin", params={param: "1"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 400, r.text
    assert f'unsupported query parameter "{param}"' in r.json()["message"]
    # Straight to a target too (clients with the cluster map do that).
    smap = requests.get(f"{cluster.url}/v1/daemon", params={"what": "smap"}, timeout=HTTP_TIMEOUT).json()
    t = next(iter(smap["tmap"].values()))["public_net"]["direct_url"]
    r = requests.get(f"{t}/v1/objects/{bucket.name}/q.bin", params={param: "1"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 400 and param in r.json()["message"], r.text


def test_batch_of_1000_objects_in_request_order(client: Client, bucket: Bucket) -> None:
    blobs = {f"b/{i:05d}": uuid.uuid4().bytes * (1 + i % 40) for i in range(1000)}
    for n, d in blobs.items():
        put(bucket, n, d)
    names = list(blobs)
    random.Random(3).shuffle(names)
    batch = client.batch(names, bucket=bucket)
    got = [(o.obj_name, d) for o, d in batch.get()]
    assert [n for n, _ in got] == names
    assert all(blobs[n] == d for n, d in got)


def test_batch_missing_items_ranges_archpath_and_multipart(client: Client, bucket: Bucket, shards: Dict[str, bytes]) -> None:
    put(bucket, "r.bin", bytes(range(256)) * 40)
    ms = dict(members())
    # cont_on_err: the missing item comes back empty under __404__/.
    b = client.batch(bucket=bucket, cont_on_err=True)
    b.add("r.bin", start=10, length=20)
    b.add("nope")
    b.add("s.tar", archpath="sample/0005.jpg")
    b.add("s.zip", archpath="sample/0002.cls")
    b.add("r.bin", start=10230, length=-1)
    out = list(b.get())
    assert [o.obj_name for o, _ in out] == ["r.bin", "nope", "s.tar", "s.zip", "r.bin"]
    assert out[0][1] == (bytes(range(256)) * 40)[10:30]
    assert out[1][1] == b"" and out[1][0].err_msg
    assert out[2][1] == ms["sample/0005.jpg"]
    assert out[3][1] == ms["sample/0002.cls"]
    assert out[4][1] == (bytes(range(256)) * 40)[10230:]
    # The raw archive names missing items under __404__/.
    raw = client.batch(["r.bin", "nope"], bucket=bucket, cont_on_err=True).get(raw=True)
    with tarfile.open(fileobj=io.BytesIO(raw.read()), mode="r|*") as t:
        names = [m.name for m in t]
    assert names == [f"{bucket.name}/r.bin", f"__404__/{bucket.name}/nope"]
    # Without cont_on_err: a clear error naming the item when it comes
    # first; later, the stream breaks (never a short archive that reads as
    # complete).
    with pytest.raises(AISError) as e:
        list(client.batch(["nope", "r.bin"], bucket=bucket, cont_on_err=False).get())
    assert e.value.status_code == 404 and "nope" in str(e.value)
    with pytest.raises(Exception) as e:
        list(client.batch(["r.bin", "nope"], bucket=bucket, cont_on_err=False).get())
    assert "IncompleteRead" in repr(e.value) or "broken" in str(e.value).lower(), repr(e.value)
    # Multipart mode: MossOut from the server, with sizes and errors.
    b = client.batch(bucket=bucket, cont_on_err=True, streaming_get=False)
    b.add("r.bin", opaque=b"id-1")
    b.add("gone")
    out = list(b.get())
    assert out[0][0].size == 10240 and out[0][0].opaque == b"id-1" and out[0][1] == bytes(range(256)) * 40
    assert out[1][0].obj_name == "gone" and out[1][0].err_msg and out[1][1] == b""


@pytest.mark.parametrize("fmt", [".tar.gz", ".tgz", ".zip"])
def test_batch_output_formats(client: Client, bucket: Bucket, fmt: str) -> None:
    blobs = {f"f/{i}": bytes([i]) * (100 + i) for i in range(20)}
    for n, d in blobs.items():
        put(bucket, n, d)
    names = list(blobs)[::-1]
    got = [(o.obj_name, d) for o, d in client.batch(names, bucket=bucket, output_format=fmt).get()]
    assert [n for n, _ in got] == names and all(blobs[n] == d for n, d in got)


def test_batch_items_from_several_buckets_only_obj_name(client: Client, bucket: Bucket) -> None:
    other = client.bucket(f"other-{uuid.uuid4().hex[:8]}").create()
    try:
        put(bucket, "x", b"from-first")
        put(other, "y", b"from-other")
        b = client.batch(bucket=bucket, only_obj_name=True)
        b.add("x")
        b.add(other.object("y"))
        raw = b.get(raw=True)
        with tarfile.open(fileobj=io.BytesIO(raw.read()), mode="r|*") as t:
            got = [(m.name, t.extractfile(m).read()) for m in t]
        assert got == [("x", b"from-first"), ("y", b"from-other")]
    finally:
        other.delete(missing_ok=True)


def test_batch_rejects_bad_requests(cluster: Cluster, bucket: Bucket) -> None:
    url = f"{cluster.url}/v1/ml/moss/{bucket.name}"
    r = requests.get(url, data=b"{not json", headers={"Content-Type": "application/json"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 400, r.text
    r = requests.get(url, json={"in": []}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 400 and "no items" in r.json()["message"]
    r = requests.get(url, json={"in": [{"objname": "a"}], "mime": ".rar"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 400, r.text
    assert "rar" in r.json()["message"] and "supported" in r.json()["message"], r.text


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_batch_with_etl_per_item_equals_per_object_etl(cluster: Cluster, client: Client, bucket: Bucket) -> None:
    name = f"moss-{uuid.uuid4().hex[:8]}"
    code = "def transform(data):\n    return data[::-1] + b'!'\n"
    msg = {
        "name": name,
        "runtime": "python3",
        "communication": "hpush://",
        "init_timeout": "2m",
        "obj_timeout": "30s",
        "code": _b64(code),
        "dependencies": _b64(""),
    }
    r = requests.put(f"{cluster.url}/v1/etl", json=msg, timeout=180)
    assert r.status_code == 200, r.text
    try:
        blobs = {f"e/{i:03d}": uuid.uuid4().bytes * (i + 1) for i in range(60)}
        for n, d in blobs.items():
            put(bucket, n, d)
        names = list(blobs)
        random.Random(5).shuffle(names)
        req = {"in": [{"objname": n, "bucket": bucket.name, "provider": "ais"} for n in names]}
        r = requests.get(
            f"{cluster.url}/v1/ml/moss/{bucket.name}",
            params={"etl_name": name},
            json=req,
            timeout=HTTP_TIMEOUT,
        )
        assert r.status_code == 200, r.text
        with tarfile.open(fileobj=io.BytesIO(r.content), mode="r|*") as t:
            got = [(m.name, t.extractfile(m).read()) for m in t]
        assert [n for n, _ in got] == [f"{bucket.name}/{n}" for n in names]
        for n, d in got:
            obj = n.split("/", 1)[1]
            per_object = requests.get(
                f"{cluster.url}/v1/objects/{bucket.name}/{obj}", params={"etl_name": name}, timeout=HTTP_TIMEOUT
            )
            assert per_object.status_code == 200
            assert d == per_object.content == blobs[obj][::-1] + b"!"
    finally:
        requests.delete(f"{cluster.url}/v1/etl/{name}", timeout=HTTP_TIMEOUT)


def test_webdataset_writes_and_reads_shards_through_the_cli(cluster: Cluster, client: Client, bucket: Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    """``webdataset`` runs ``ais put - URL`` and ``ais get URL -``: shards it
    writes are read back sample by sample; members are then fetched with
    Get-Batch (aistore_rs) and archpath."""
    import webdataset as wds

    import aistore_rs

    monkeypatch.setenv("PATH", f"{cluster.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("AIS_ENDPOINT", cluster.url)
    want = {}
    for s in range(3):
        with wds.TarWriter(f"ais://{bucket.name}/shard-{s:03d}.tar") as w:
            for i in range(10):
                key = f"s{s}-{i:03d}"
                sample = {"__key__": key, "cls": str(i % 3).encode(), "bin": bytes([s, i]) * (50 + i)}
                want[key] = sample
                w.write(sample)
    ds = wds.WebDataset(f"ais://{bucket.name}/shard-{{000..002}}.tar", shardshuffle=False, empty_check=False)
    got = list(ds)
    assert [g["__key__"] for g in got] == list(want)
    for g in got:
        assert g["bin"] == want[g["__key__"]]["bin"] and g["cls"] == want[g["__key__"]]["cls"]
    # The same members through Get-Batch, in a chosen order.
    rs = aistore_rs.Client(cluster.url).bucket(f"ais://{bucket.name}")
    names = ["shard-002.tar", "shard-000.tar", "shard-001.tar"]
    archpaths = {"shard-002.tar": "s2-004.bin", "shard-000.tar": "s0-009.cls", "shard-001.tar": "s1-000.bin"}
    out = list(rs.get_batch(names, archpaths=archpaths))
    assert out == [
        ("shard-002.tar", want["s2-004"]["bin"]),
        ("shard-000.tar", want["s0-009"]["cls"]),
        ("shard-001.tar", want["s1-000"]["bin"]),
    ]


def test_ais_batch_cli_and_client_get_batch(cluster: Cluster, bucket: Bucket, tmp_path) -> None:
    import subprocess

    import aistore_rs

    blobs = {f"c/{i}": bytes([i]) * (10 + i) for i in range(30)}
    for n, d in blobs.items():
        put(bucket, n, d)
    names = list(blobs)[::-1]
    rs = aistore_rs.Client(cluster.url).bucket(f"ais://{bucket.name}")
    assert list(rs.get_batch(names)) == [(n, blobs[n]) for n in names]
    with pytest.raises(Exception) as e:
        list(rs.get_batch(["nope"] + names))
    assert "nope" in str(e.value)
    assert list(rs.get_batch(["nope", names[0]], cont_on_err=True)) == [("nope", b""), (names[0], blobs[names[0]])]
    out = tmp_path / "b.tar"
    p = subprocess.run(
        [str(cluster.bin_dir / "ais"), "batch", f"ais://{bucket.name}", *names[:5], "-o", str(out)],
        env={**os.environ, "AIS_ENDPOINT": cluster.url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    with tarfile.open(out) as t:
        assert [(m.name, t.extractfile(m).read()) for m in t.getmembers()] == [
            (f"{bucket.name}/{n}", blobs[n]) for n in names[:5]
        ]


def test_target_killed_mid_batch_is_an_error_not_a_short_archive(tmp_path) -> None:
    """A dedicated cluster: while the SDK reads a batch, a target holding
    later items is SIGKILLed; the SDK's iteration fails instead of ending
    early with fewer items."""
    import signal

    from aistore.sdk import Client as SdkClient

    c = Cluster(base_dir=tmp_path / "moss-kill", num_targets=3)
    c.allow_log("")  # a killed target makes its peers log errors
    c.start()
    try:
        client = SdkClient(c.url)
        bck = client.bucket(f"kill-{uuid.uuid4().hex[:8]}").create()
        blob = os.urandom(256 * 1024)
        names = [f"o{i:04d}" for i in range(500)]
        for n in names:
            put(bck, n, blob)
        # The proxy sends the batch to the owner of the first item; kill another target.
        owners = {}
        for n in names[:1]:
            r = requests.get(f"{c.url}/v1/objects/{bck.name}/{n}", allow_redirects=False, timeout=HTTP_TIMEOUT)
            owners[n] = r.headers["Location"].split("/v1/")[0]
        victim = next(t for t in c.targets if t.url != owners[names[0]])
        got = 0
        with pytest.raises(Exception) as e:
            for _, data in client.batch(names, bucket=bck, cont_on_err=False).get():
                assert data == blob
                got += 1
                if got == 20:
                    victim.proc.send_signal(signal.SIGKILL)
        assert got < len(names), "the batch ended cleanly without the dead target's items"
        assert not isinstance(e.value, AssertionError), e.value
    finally:
        c.stop()


@pytest.mark.parametrize("shard", ["packed.tar", "packed.tgz", "packed.tar.lz4", "packed.zip"])
def test_archive_objects_into_a_shard_with_the_sdk(client: Client, bucket: Bucket, shard: str) -> None:
    """The SDK's ``objects(...).archive(...)`` packs objects into a shard as a
    job; members read back with archpath; ``allow_append`` adds to a tar."""
    blobs = {f"p/{i:03d}.bin": os.urandom(100 + i) for i in range(40)}
    for n, d in blobs.items():
        put(bucket, n, d)
    names = list(blobs)[:30]
    job_ids = bucket.objects(obj_names=names).archive(archive_name=shard)
    for j in job_ids:
        assert client.job(j).wait(timeout=60, verbose=False).success
    for n in names[:5] + names[-3:]:
        got = bucket.object(shard).get_reader(archive_config=ArchiveConfig(archpath=n)).read_all()
        assert got == blobs[n], (shard, n)
    if shard.endswith(".tar"):
        more = list(blobs)[30:]
        job_ids = bucket.objects(obj_range=None, obj_names=more).archive(archive_name=shard, allow_append=True)
        for j in job_ids:
            assert client.job(j).wait(timeout=60, verbose=False).success
        with tarfile.open(fileobj=io.BytesIO(bucket.object(shard).get_reader().read_all())) as t:
            assert [m.name for m in t.getmembers()] == list(blobs)
    # A missing object fails the job (no shard is written) unless continue_on_err.
    job_ids = bucket.objects(obj_names=["p/000.bin", "missing"]).archive(archive_name="bad-" + shard)
    outcomes = []
    for j in job_ids:
        try:
            outcomes.append(client.job(j).wait(timeout=60, verbose=False).success)
        except Exception as exc:  # the SDK raises for an aborted/failed job
            outcomes.append(str(exc))
    assert True not in outcomes, outcomes
    with pytest.raises(AISError) as e:
        bucket.object("bad-" + shard).head()
    assert e.value.status_code == 404


def test_ais_archive_bucket_cli(cluster: Cluster, bucket: Bucket) -> None:
    import subprocess

    blobs = {f"t-{i:02d}.bin": bytes([i]) * (30 + i) for i in range(12)}
    for n, d in blobs.items():
        put(bucket, n, d)
    env = {**os.environ, "AIS_ENDPOINT": cluster.url}
    p = subprocess.run(
        [str(cluster.bin_dir / "ais"), "archive", "bucket", f"ais://{bucket.name}", f"ais://{bucket.name}/shards/s-0.tar", "--template", "t-{00..11}.bin", "--wait"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    raw = bucket.object("shards/s-0.tar").get_reader().read_all()
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        assert [(m.name, t.extractfile(m).read()) for m in t.getmembers()] == list(blobs.items())
    p = subprocess.run(
        [str(cluster.bin_dir / "ais"), "archive", "bucket", f"ais://{bucket.name}", f"ais://{bucket.name}/x.tar"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode != 0 and "--template" in p.stderr, p.stderr


def test_list_archive_members(bucket: Bucket, shards: Dict[str, bytes]) -> None:
    """The SDK's ``list_archive`` (list flag ARCH_DIR): every member of the
    shard as ``SHARD/MEMBER`` with its size; plain listings are unchanged."""
    want = sorted((f"s.tar/{n}", len(d)) for n, d in members())  # listings are in name order
    got = [(e.name, e.size) for e in bucket.list_archive("s.tar")]
    assert got == want
    got = [(e.name, e.size) for e in bucket.list_archive("s.zip")]
    assert got == [(f"s.zip/{n}", s) for n, s in [(w[0][6:], w[1]) for w in want]]
    with_shard = [e.name for e in bucket.list_archive("s.tgz", include_archive_obj=True)]
    assert with_shard[0] == "s.tgz" and len(with_shard) == 1 + len(want)
    assert sorted(e.name for e in bucket.list_all_objects()) == ["s.tar", "s.tgz", "s.zip"]
    # Pages count objects, not members: a page of 1 still carries its shard's members.
    page = bucket.list_objects(page_size=1, flags=[__import__("aistore.sdk.list_object_flag", fromlist=["x"]).ListObjectFlag.ARCH_DIR])
    names = [e.name for e in page.entries]
    assert names[0] == "s.tar" and len(names) == 1 + len(want) and page.continuation_token == "s.tar"


def test_ais_ls_archive_cli(cluster: Cluster, bucket: Bucket, shards: Dict[str, bytes]) -> None:
    import subprocess

    p = subprocess.run(
        [str(cluster.bin_dir / "ais"), "ls", f"ais://{bucket.name}/s.tar", "--archive"],
        env={**os.environ, "AIS_ENDPOINT": cluster.url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    listed = [line.split()[0] for line in p.stdout.splitlines()[1:] if line.strip()]
    assert "s.tar" in listed and "s.tar/sample/0011.cls" in listed, p.stdout
    assert len([n for n in listed if n.startswith("s.tar/")]) == len(members())


def test_sdk_batch_iter_dataset(client: Client, bucket: Bucket) -> None:
    """The SDK's ``AISBatchIterDataset`` (PyTorch, Get-Batch underneath)
    yields every object of a bucket with its bytes, also target-aware."""
    from aistore.pytorch.batch_iter_dataset import AISBatchIterDataset
    from aistore.sdk.enums import Colocation

    blobs = {f"ds/{i:03d}": os.urandom(64 + i) for i in range(70)}
    for n, d in blobs.items():
        put(bucket, n, d)
    for coloc in (Colocation.NONE, Colocation.TARGET_AWARE):
        ds = AISBatchIterDataset(bucket, client, max_batch_size=16, colocation=coloc)
        got = dict(iter(ds))
        assert got == blobs
