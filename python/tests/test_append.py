"""Object append with the official SDK (``append_content``, ``as_file()``),
and no request half-understood: an object request carrying a query
parameter the node does not implement is refused with 400 naming it, on
every method, instead of being served as another request (an append that
silently overwrote the object with 0 bytes).
"""

from __future__ import annotations

import os
import time

import pytest
import requests
from aistore.sdk.bucket import Bucket
from aistore.sdk.errors import AISError

from ais_cluster import Cluster

HTTP_TIMEOUT = 30


def test_a_thousand_appends_then_flush_is_the_concatenation(bucket: Bucket) -> None:
    w = bucket.object("log/appended").get_writer()
    parts = [os.urandom(1 + (i * 37) % 700) for i in range(1000)]
    handle = ""
    for p in parts:
        handle = w.append_content(p, handle=handle)
        assert handle
    # Nothing is visible before the flush.
    with pytest.raises(AISError) as ei:
        bucket.object("log/appended").head()
    assert ei.value.status_code == 404
    w.append_content(b"", handle=handle, flush=True)
    got = bucket.object("log/appended").get_reader().read_all()
    assert got == b"".join(parts)
    # The stored checksum is the whole object's (a plain GET with
    # validation on would refuse a mismatch).
    props = bucket.object("log/appended").head()
    assert props.size == len(got)


def test_file_like_writer_writes_and_appends(bucket: Bucket) -> None:
    obj = bucket.object("as-file")
    with obj.get_writer().as_file(mode="w") as f:
        for i in range(50):
            f.write(b"line %d\n" % i)
    first = b"".join(b"line %d\n" % i for i in range(50))
    assert obj.get_reader().read_all() == first
    # 'a' keeps what is there and adds to it.
    with obj.get_writer().as_file(mode="a") as f:
        f.write(b"more\n")
        f.flush()
        f.write(b"and more\n")
    assert obj.get_reader().read_all() == first + b"more\nand more\n"
    # 'w' starts over.
    with obj.get_writer().as_file(mode="w") as f:
        f.write(b"fresh")
    assert obj.get_reader().read_all() == b"fresh"


def _put(url: str, bck: str, obj: str, data: bytes, **params: str) -> requests.Response:
    return requests.put(f"{url}/v1/objects/{bck}/{obj}", params=params, data=data, timeout=HTTP_TIMEOUT)


def test_append_handles_are_bound_to_their_object_and_expire_on_failure(cluster: Cluster, bucket: Bucket) -> None:
    url, b = cluster.url, bucket.name
    r = _put(url, b, "a", b"one", append_type="append", append_handle="")
    assert r.status_code == 200, r.text
    h = r.headers["Ais-Append-Handle"]
    # The handle writes only the object it was issued for.
    r = _put(url, b, "b", b"x", append_type="append", append_handle=h)
    assert r.status_code in (400, 404), r.text
    assert "another object" in r.text or "unknown" in r.text
    # A made-up handle (or one that looks like a path) is unknown: nothing stored.
    for fake in ("deadbeef", "/etc/passwd", "../../x"):
        r = _put(url, b, "a", b"x", append_type="append", append_handle=fake)
        assert r.status_code == 404 and "nothing of that append is stored" in r.text, r.text
    r = _put(url, b, "a", b"", append_type="flush", append_handle="")
    assert r.status_code == 400 and "append_handle" in r.text, r.text
    r = _put(url, b, "a", b"", append_type="bogus", append_handle=h)
    assert r.status_code == 400 and "bogus" in r.text, r.text
    r = _put(url, b, "a", b"", append_type="flush", append_handle=h)
    assert r.status_code == 200, r.text
    assert bucket.object("a").get_reader().read_all() == b"one"
    # A flushed handle is gone.
    r = _put(url, b, "a", b"", append_type="flush", append_handle=h)
    assert r.status_code == 404, r.text
    r = requests.put(
        f"{url}/v1/objects/{b}/c",
        params={"append_type": "append", "append_handle": ""},
        data=b"abc",
        timeout=HTTP_TIMEOUT,
    )
    h2 = r.headers["Ais-Append-Handle"]
    # A flush whose checksum does not match the bytes stores nothing.
    r = requests.put(
        f"{url}/v1/objects/{b}/c",
        params={"append_type": "flush", "append_handle": h2},
        headers={"Ais-Checksum-Type": "xxhash", "Ais-Checksum-Value": "0123456789abcdef"},
        timeout=HTTP_TIMEOUT,
    )
    assert r.status_code == 400 and "checksum mismatch" in r.text, r.text
    with pytest.raises(AISError) as ei:
        bucket.object("c").head()
    assert ei.value.status_code == 404


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "POST", "PATCH"])
def test_unknown_query_parameters_are_refused_on_every_method(cluster: Cluster, bucket: Bucket, method: str) -> None:
    obj = bucket.object("keep")
    obj.get_writer().put_content(b"precious")
    # Through the proxy, and straight at every target (owner or not).
    for base in [cluster.url] + [t.url for t in cluster.targets]:
        r = requests.request(
            method,
            f"{base}/v1/objects/{bucket.name}/keep",
            params={"appendty_typo": "append", "provider": "ais"},
            data=b"" if method in ("GET", "HEAD", "DELETE") else b"overwrite?",
            timeout=HTTP_TIMEOUT,
            allow_redirects=True,
        )
        assert r.status_code == 400, (base, method, r.status_code, r.text)
        if method != "HEAD":
            assert "appendty_typo" in r.text, r.text
    assert obj.get_reader().read_all() == b"precious"


@pytest.mark.parametrize("param", ["ais_rebalance", "ais_hop", "ais_hop2", "ais_verify", "ais_body", "ais_auth"])
def test_parameters_internal_to_the_cluster_are_refused_from_clients(cluster: Cluster, bucket: Bucket, param: str) -> None:
    """A client's PUT carrying `ais_rebalance` was taken for a rebalance
    move: answered 200 and not stored when the object existed (and stored
    with a version the client chose when it did not)."""
    obj = bucket.object("keep-internal")
    obj.get_writer().put_content(b"precious")
    r = requests.put(
        f"{cluster.url}/v1/objects/{bucket.name}/keep-internal",
        params={param: "1"},
        headers={"Ais-Version": "999"},
        data=b"replaced?",
        timeout=HTTP_TIMEOUT,
    )
    assert r.status_code == 400 and param in r.text and "internal to the cluster" in r.text, r.text
    r = requests.get(f"{cluster.url}/v1/objects/{bucket.name}/keep-internal", params={param: "1"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 400 and param in r.text, r.text
    assert obj.get_reader().read_all() == b"precious"
    # A plain PUT still works, and versions go on from the stored one.
    def version() -> int:
        r = requests.head(f"{cluster.url}/v1/objects/{bucket.name}/keep-internal", timeout=HTTP_TIMEOUT, allow_redirects=True)
        return int(r.headers["Ais-Version"])

    before = version()
    assert _put(cluster.url, bucket.name, "keep-internal", b"new").status_code == 200
    assert version() == before + 1


def test_sdk_object_copy_with_its_parameters(client, bucket: Bucket) -> None:
    """The SDK's Object.copy sends latest-ver and synchronize with object_to:
    accepted (a bucket of ours always holds the latest version); a copy's
    parameters on a plain PUT, or a handle without append_type, are 400."""
    src = bucket.object("src")
    src.get_writer().put_content(b"copy me")
    dst = client.bucket(bucket.name).object("dst")
    r = src.copy(dst)
    assert r.status_code == 200, r.text
    assert dst.get_reader().read_all() == b"copy me"
    url = client.bucket(bucket.name).object("x").get_url()
    base = url.split("/v1/")[0]
    for params in ({"etl_name": "x"}, {"latest-ver": "true"}, {"append_handle": "h"}):
        r = requests.put(f"{base}/v1/objects/{bucket.name}/x", params=params, data=b"x", timeout=HTTP_TIMEOUT)
        assert r.status_code == 400 and list(params)[0] in r.text, r.text
    with pytest.raises(AISError) as ei:
        bucket.object("x").head()
    assert ei.value.status_code == 404


def test_a_client_hanging_up_mid_append_ends_its_handle(cluster: Cluster, bucket: Bucket) -> None:
    """An append whose body stops half-way (the client hangs up) stores
    nothing of it and ends the handle: a later flush of that handle is 404,
    never an object with a torn chunk."""
    import socket
    from urllib.parse import urlparse

    url, b = cluster.url, bucket.name
    r = _put(url, b, "torn", b"first", append_type="append", append_handle="")
    assert r.status_code == 200, r.text
    h = r.headers["Ais-Append-Handle"]
    # The owner target, straight (no redirect to follow on a raw socket).
    r = requests.put(f"{url}/v1/objects/{b}/torn", params={"append_type": "append", "append_handle": h},
                     data=b"", allow_redirects=False, timeout=HTTP_TIMEOUT)
    assert r.status_code == 307, r.status_code
    loc = urlparse(r.headers["Location"])
    with socket.create_connection((loc.hostname, loc.port), timeout=10) as s:
        s.sendall(f"PUT {loc.path}?{loc.query} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n".encode() + b"x" * 1000)
    # The node notices the hang-up and ends the handle (empty appends change
    # nothing while it has not yet).
    deadline = time.monotonic() + 30
    while True:
        r = _put(url, b, "torn", b"", append_type="append", append_handle=h)
        if r.status_code != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert r.status_code == 404 and "nothing of that append is stored" in r.text, (r.status_code, r.text)
    r = _put(url, b, "torn", b"", append_type="flush", append_handle=h)
    assert r.status_code == 404, (r.status_code, r.text)
    with pytest.raises(AISError) as ei:
        bucket.object("torn").head()
    assert ei.value.status_code == 404
