"""AIStore calls users rely on, as the official SDK and the CLI make them:
bucket summary (`Bucket.summary`, `ais bucket summary`, `ais storage
summary`) and bucket info (`Bucket.info`): asynchronous (202, then polled),
exact counts and sizes, a prefix honoured, a target that cannot be asked
named rather than left out."""

from __future__ import annotations

import json

import requests
from aistore.sdk import Client
from aistore.sdk.bucket import Bucket

from ais_cluster import Cluster
from test_etl import ais

HTTP_TIMEOUT = 30


def _fill(bucket: Bucket) -> dict[str, int]:
    sizes = {}
    for i in range(40):
        name = f"{'img' if i % 2 else 'txt'}/{i:03}"
        data = b"x" * (100 + 37 * i)
        bucket.object(name).get_writer().put_content(data)
        sizes[name] = len(data)
    return sizes


def test_sdk_summary_counts_every_object_and_honours_the_prefix(client: Client, bucket: Bucket) -> None:
    sizes = _fill(bucket)
    s = bucket.summary()
    assert s["name"] == bucket.name and s["provider"] == "ais", s
    assert int(s["ObjCount"]["obj_count_present"]) == len(sizes)
    assert int(s["TotalSize"]["size_all_present_objs"]) == sum(sizes.values())
    assert int(s["TotalSize"]["size_on_disk"]) >= sum(sizes.values())
    assert int(s["TotalSize"]["total_disks_size"]) > 0
    assert s["ObjSize"]["obj_min_size"] == min(sizes.values())
    assert s["ObjSize"]["obj_max_size"] == max(sizes.values())
    img = {k: v for k, v in sizes.items() if k.startswith("img/")}
    s = bucket.summary(prefix="img/")
    assert int(s["ObjCount"]["obj_count_present"]) == len(img)
    assert int(s["TotalSize"]["size_all_present_objs"]) == sum(img.values())
    # An empty bucket is a summary of zeros, not an error.
    empty = client.bucket(bucket.name + "-empty").create(exist_ok=True)
    try:
        s = empty.summary()
        assert s["ObjCount"]["obj_count_present"] == "0" and s["ObjSize"]["obj_min_size"] == 0, s
    finally:
        empty.delete(missing_ok=True)


def test_sdk_info_answers_props_and_summary(bucket: Bucket) -> None:
    sizes = _fill(bucket)
    props, summ = bucket.info()
    assert json.loads(props)["provider"] == "ais", props
    assert int(summ["ObjCount"]["obj_count_present"]) == len(sizes), summ


def test_rest_shapes_and_refusals(cluster: Cluster, bucket: Bucket) -> None:
    _fill(bucket)
    url = f"{cluster.url}/v1/buckets/{bucket.name}"
    r = requests.get(url, json={"action": "summary-bck", "value": {"uuid": "", "prefix": "", "cached": False, "present": False}}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 202 and r.text.startswith("summary-"), (r.status_code, r.text)
    r = requests.get(url, json={"action": "summary-bck", "value": {"uuid": "summary-nosuch", "prefix": "", "cached": False, "present": False}}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 404, r.text
    r = requests.get(url, json={"action": "summary-bck", "value": {"uuid": "", "bogus": 1}}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 400 and "bogus" in r.text, r.text
    r = requests.head(url, params={"presence": "9"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 400, r.status_code
    r = requests.head(url, params={"presence": "0", "typo": "1"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 400, r.status_code
    r = requests.head(url, params={"presence": "0"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 202 and r.headers["Ais-Xaction-Id"].startswith("summary-"), r.headers
    # A plain HEAD is still the props, at once.
    r = requests.head(url, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200 and "Ais-Bucket-Props" in r.headers


def test_cli_bucket_and_storage_summary(cluster: Cluster, bucket: Bucket) -> None:
    sizes = _fill(bucket)
    out = ais(cluster, "bucket", "summary", f"ais://{bucket.name}").stdout
    line = next(l for l in out.splitlines() if bucket.name in l)
    assert f" {len(sizes)} " in f" {line} ", out
    out = ais(cluster, "storage", "summary", "--json").stdout
    mine = [s for s in json.loads(out) if s["name"] == bucket.name]
    assert len(mine) == 1 and int(mine[0]["ObjCount"]["obj_count_present"]) == len(sizes), out


def test_sdk_set_custom_props_adds_replaces_and_survives_reads(cluster: Cluster, bucket: Bucket) -> None:
    obj = bucket.object("with/custom")
    obj.get_writer().put_content(b"payload")
    version = obj.head("version,custom").obj_version
    obj.get_writer().set_custom_props({"team": "vision", "epoch": "3"})
    obj.get_writer().set_custom_props({"epoch": "4"})
    props = obj.head("version,custom")
    assert props.custom_metadata == {"team": "vision", "epoch": "4"}, props.custom_metadata
    assert props.obj_version == version, "metadata changes keep the version"
    obj.get_writer().set_custom_props({"only": "this"}, replace_existing=True)
    assert obj.head("version,custom").custom_metadata == {"only": "this"}
    # The bytes are untouched and still verify (the checksum is kept).
    assert obj.get_reader().read_all() == b"payload"
    url = f"{cluster.url}/v1/objects/{bucket.name}/with/custom"
    for body, params in [
        ({"action": "", "value": ["not", "a", "map"]}, {}),
        ({"action": "", "value": {"k": {"nested": 1}}}, {}),
        ({"action": "", "value": {"a=b": "x"}}, {}),
        ({"action": "", "value": {"k": "v"}}, {"typo": "1"}),
        ({"action": "bogus", "value": {"k": "v"}}, {}),
        # The cluster's own keys (an S3 ETag, a remote version, copy bookkeeping).
        ({"action": "", "value": {"ETag": "forged"}}, {}),
        ({"action": "", "value": {"remote.etag": "forged"}}, {}),
        ({"action": "", "value": {"src-cksum": "forged"}}, {}),
    ]:
        r = requests.patch(url, json=body, params=params, timeout=HTTP_TIMEOUT)
        assert r.status_code == 400, (body, params, r.status_code, r.text)
    assert obj.head("version,custom").custom_metadata == {"only": "this"}
    r = requests.patch(f"{cluster.url}/v1/objects/{bucket.name}/no-such", json={"action": "", "value": {"k": "v"}}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 404, r.text


def test_cli_object_set_custom_and_show(cluster: Cluster, bucket: Bucket) -> None:
    bucket.object("o").get_writer().put_content(b"abc")
    o = f"ais://{bucket.name}/o"
    ais(cluster, "object", "set-custom", o, "a=1", "b=two")
    ais(cluster, "object", "set-custom", o, '{"c": "3"}')
    shown = json.loads(ais(cluster, "object", "show", o, "--json").stdout)
    assert shown["custom"] == {"a": "1", "b": "two", "c": "3"} and shown["size"] == 3, shown
    ais(cluster, "object", "set-custom", o, "z=9", "--overwrite")
    out = ais(cluster, "object", "show", o).stdout
    assert "z=9" in out and "a=1" not in out, out
    p = ais(cluster, "object", "set-custom", o, "novalue", ok=False)
    assert "KEY=VALUE" in p.stderr, p.stderr


def test_listing_one_level_with_and_without_directories(cluster: Cluster, bucket: Bucket) -> None:
    """AIStore's NO_RECURSION (and NO_DIRS) list flags: directory-style
    browsing; every entry once across targets and pages."""
    from aistore.sdk.list_object_flag import ListObjectFlag

    names = ["a/1", "a/2", "a/sub/x", "a/sub/y/z", "a/t/q", "b", "c/d"] + [f"a/many/{i}" for i in range(30)]
    for n in names:
        bucket.object(n).get_writer().put_content(n.encode())

    def level(prefix: str, *flags: ListObjectFlag, page_size: int = 0) -> list[tuple[str, bool]]:
        got = bucket.list_all_objects(prefix=prefix, flags=list(flags), page_size=page_size)
        return [(e.name, bool(e.flags & (1 << 8))) for e in got]

    assert level("", ListObjectFlag.NO_RECURSION) == [("a/", True), ("b", False), ("c/", True)]
    want = [("a/1", False), ("a/2", False), ("a/many/", True), ("a/sub/", True), ("a/t/", True)]
    assert level("a/", ListObjectFlag.NO_RECURSION) == want
    assert level("a/", ListObjectFlag.NO_RECURSION, page_size=1) == want
    assert level("a/", ListObjectFlag.NO_RECURSION, ListObjectFlag.NO_DIRS) == [("a/1", False), ("a/2", False)]
    # Without the flag, everything below the prefix, as before.
    assert len(level("a/")) == len([n for n in names if n.startswith("a/")])
    out = ais(cluster, "ls", f"ais://{bucket.name}", "--prefix", "a/", "--no-recursion").stdout
    assert "a/sub/" in out and "a/sub/x" not in out, out


def test_node_status_and_logs_through_the_proxy(client: Client, cluster: Cluster, tmp_path) -> None:
    """The SDK's get_performance, get_node_log(_archive) and
    get_cluster_logs: `/v1/reverse/daemon` with `Ais-Node-Id`, answered by
    the node the header names; and `ais log show|get`."""
    import io
    import tarfile

    from aistore.sdk.enums import LogSeverity, NodeFilter

    perf = client.cluster().get_performance()
    tids = {t.node_id for t in cluster.targets}
    assert set(perf) == tids, perf.keys()
    for tid, p in perf.items():
        assert p["snode"]["daemon_id"] == tid and p["status"] == "online", p
        assert p["capacity"] and p["tracker"], p
    smap = client.cluster().get_info()
    pid = next(iter(smap.pmap))
    tid = next(iter(smap.tmap))
    for node in (pid, tid):
        log = client.cluster().get_node_log(node)
        assert "listening" in log, log[-500:]
    assert "INFO" not in client.cluster().get_node_log(tid, severity=LogSeverity.ERROR)
    logs = client.cluster().get_cluster_logs(role=NodeFilter.ALL)
    assert set(logs) == set(smap.tmap) | set(smap.pmap)
    tgz = client.cluster().get_node_log_archive(tid)
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        assert tar.getnames() == [f"{tid}.log"]
    url = f"{cluster.url}/v1/reverse/daemon"
    r = requests.get(url, params={"what": "log"}, headers={"Ais-Node-Id": "nosuch"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 404, r.text
    r = requests.get(url, params={"what": "log"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 400 and "Ais-Node-Id" in r.text, r.text
    r = requests.get(url, params={"what": "log", "severity": "loud"}, headers={"Ais-Node-Id": tid}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 400 and "severity" in r.text, r.text
    out = ais(cluster, "log", "show", tid).stdout
    assert "listening" in out
    ais(cluster, "log", "get", tid, str(tmp_path / "t.tar.gz"))
    with tarfile.open(tmp_path / "t.tar.gz", mode="r:gz") as tar:
        assert tar.getnames() == [f"{tid}.log"]


def test_bucket_rename_moves_every_object_and_the_old_name_goes(client: Client, cluster: Cluster) -> None:
    """The SDK's Bucket.rename (move-bck) and `ais bucket mv`: every object
    (bytes, custom properties) under the new name, the old one gone; a
    rename that cannot finish keeps the old bucket whole and writable."""
    import time as _time

    src = client.bucket("rename-src").create(exist_ok=True)
    names = [f"r/{i:03}" for i in range(60)]
    for n in names:
        src.object(n).get_writer().put_content(n.encode() * 10)
    src.object(names[0]).get_writer().set_custom_props({"k": "v"})
    job = src.rename("rename-dst")
    assert job.startswith("move-bck-"), job
    client.job(job_id=job).wait(timeout=120)
    deadline = _time.monotonic() + 30
    while any(b.name == "rename-src" for b in client.cluster().list_buckets()):
        assert _time.monotonic() < deadline, "the old bucket is still there"
        _time.sleep(0.1)
    dst = client.bucket("rename-dst")
    assert sorted(e.name for e in dst.list_all_objects()) == names
    for n in names:
        assert dst.object(n).get_reader().read_all() == n.encode() * 10
    assert dst.object(names[0]).head("custom").custom_metadata == {"k": "v"}
    r = requests.head(f"{cluster.url}/v1/buckets/rename-src", timeout=HTTP_TIMEOUT)
    assert r.status_code == 404
    # Refusals: onto an existing bucket, from a missing one, without a name.
    other = client.bucket("rename-other").create(exist_ok=True)
    r = requests.post(f"{cluster.url}/v1/buckets/rename-dst", params={"bck_to": "ais/@#/rename-other/"}, json={"action": "move-bck"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 409, r.text
    r = requests.post(f"{cluster.url}/v1/buckets/rename-dst", json={"action": "move-bck"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 400 and "bck_to" in r.text, r.text
    # The CLI, waiting.
    out = ais(cluster, "bucket", "mv", "ais://rename-dst", "ais://rename-cli", "--wait").stdout
    assert "renamed" in out, out
    assert len(client.bucket("rename-cli").list_all_objects()) == len(names)
    # A damaged object cannot be copied: the rename fails, the old bucket
    # keeps everything and takes writes again.
    holder = next(t for t in cluster.targets for mp in t.mpaths if (mp / "@ais" / "rename-cli" / names[5]).exists())
    f = next(mp / "@ais" / "rename-cli" / names[5] for mp in holder.mpaths if (mp / "@ais" / "rename-cli" / names[5]).exists())
    raw = bytearray(f.read_bytes())
    raw[0] ^= 0xFF
    f.write_bytes(bytes(raw))
    job = client.bucket("rename-cli").rename("rename-fail")
    client.job(job_id=job).wait(timeout=120)
    deadline = _time.monotonic() + 30
    while True:
        r = requests.put(f"{cluster.url}/v1/objects/rename-cli/after-failure", data=b"ok", timeout=HTTP_TIMEOUT)
        if r.status_code == 200:
            break
        assert r.status_code == 503 and "being renamed" in r.text, r.text
        assert _time.monotonic() < deadline, "the old bucket never took writes again"
        _time.sleep(0.1)
    left = {e.name for e in client.bucket("rename-cli").list_all_objects()}
    assert set(names) | {"after-failure"} == left
    for b in ("rename-cli", "rename-fail", "rename-other"):
        client.bucket(b).delete(missing_ok=True)
    del other


def test_object_rename_over_rest_and_cli(cluster: Cluster, bucket: Bucket) -> None:
    """`rename-obj` (POST /v1/objects/B/O, `ais object mv`): the bytes and
    custom properties under the new name (any owner), the old name 404."""
    obj = bucket.object("old/name")
    obj.get_writer().put_content(b"content")
    obj.get_writer().set_custom_props({"k": "v"})
    url = f"{cluster.url}/v1/objects/{bucket.name}"
    r = requests.post(f"{url}/old/name", json={"action": "rename-obj", "name": "new/name"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    assert bucket.object("new/name").get_reader().read_all() == b"content"
    assert bucket.object("new/name").head("custom").custom_metadata == {"k": "v"}
    assert requests.head(f"{url}/old/name", timeout=HTTP_TIMEOUT, allow_redirects=True).status_code == 404
    assert [e.name for e in bucket.list_all_objects()] == ["new/name"]
    for body, code in [
        ({"action": "rename-obj", "name": "new/name"}, 400),  # same name
        ({"action": "rename-obj", "name": "../x"}, 400),
        ({"action": "bogus", "name": "x"}, 400),
        ({"action": "promote", "name": "x"}, 501),
    ]:
        r = requests.post(f"{url}/new/name", json=body, timeout=HTTP_TIMEOUT)
        assert r.status_code == code, (body, r.status_code, r.text)
    r = requests.post(f"{url}/no-such", json={"action": "rename-obj", "name": "y"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 404, r.text
    ais(cluster, "object", "mv", f"ais://{bucket.name}/new/name", "third")
    assert [e.name for e in bucket.list_all_objects()] == ["third"]
    assert bucket.object("third").get_reader().read_all() == b"content"


def test_replacing_custom_props_keeps_the_s3_etag(cluster: Cluster, bucket: Bucket) -> None:
    import boto3
    from botocore.config import Config

    s3 = boto3.client(
        "s3",
        endpoint_url=f"{cluster.url}/s3",
        aws_access_key_id="k",
        aws_secret_access_key="s",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )
    etag = s3.put_object(Bucket=bucket.name, Key="s3obj", Body=b"hello")["ETag"]
    bucket.object("s3obj").get_writer().set_custom_props({"mine": "1"}, replace_existing=True)
    assert s3.head_object(Bucket=bucket.name, Key="s3obj")["ETag"] == etag
    assert bucket.object("s3obj").head("custom").custom_metadata.get("mine") == "1"
