"""aistore_rs (our Python package) against a real cluster: buckets, objects,
listing, ETL from code and from a callable, typed errors."""

from __future__ import annotations

import sys
import uuid

import pytest

import aistore_rs
from aistore_rs import Client
from aistore_rs.errors import BucketExists, BucketNotFound, ETLError, ETLExists, ETLNotFound, ObjectNotFound


@pytest.fixture
def rs(endpoint: str) -> Client:
    return Client(endpoint)


@pytest.fixture
def bck(rs: Client):
    b = rs.bucket(f"ais://rs-{uuid.uuid4().hex[:10]}").create()
    yield b
    b.delete(missing_ok=True)


def test_buckets_and_objects(rs: Client, bck) -> None:
    assert bck.name in rs.list_buckets()
    with pytest.raises(BucketExists) as e:
        bck.create()
    assert f"ais://{bck.name}" in e.value.message and e.value.status == 409
    bck.create(exist_ok=True)
    assert bck.head()["provider"] == "ais"
    data = bytes(range(256)) * 100
    attrs = bck.object("d/x.bin").put(data)
    assert attrs["Ais-Checksum-Type"] == "xxhash"
    assert bck.object("d/x.bin").get() == data
    assert bck.object("d/x.bin").get(byte_range="bytes=10-19") == data[10:20]
    h = bck.object("d/x.bin").head()
    assert h["size"] == len(data) and h["version"] == "1" and h["checksum"]
    bck.object("d/x.bin").delete()
    with pytest.raises(ObjectNotFound) as e:
        bck.object("d/x.bin").get()
    assert e.value.status == 404 and f"ais://{bck.name}/d/x.bin" in e.value.message
    with pytest.raises(BucketNotFound):
        rs.bucket("no-such-bucket-here").object("x").put(b"1")


def test_listing_pages(rs: Client, bck) -> None:
    names = {f"p/{i:04d}" for i in range(230)} | {"q/1"}
    for n in names:
        bck.object(n).put(n.encode())
    got = [e["name"] for e in bck.list_objects_iter(prefix="p/", page_size=50)]
    assert got == sorted(n for n in names if n.startswith("p/"))
    sizes = {e["name"]: e["size"] for e in bck.list_objects_iter(page_size=100)}
    assert sizes == {n: len(n) for n in names}
    assert bck.list_names("q/") == ["q/1"]


def test_etl_from_code_and_callable(rs: Client, bck) -> None:
    bck.object("a.txt").put(b"hello")
    name = f"rs-code-{uuid.uuid4().hex[:6]}"
    etl = rs.etl(name)
    etl.init_code("def transform(data, path, args):\n    return data.upper() + args.encode()\n")
    try:
        assert bck.object("a.txt").get(etl_name=name, etl_args="!") == b"HELLO!"
        assert bck.object("a.txt").get(etl_name=name, etl_args={"k": 1}) == b'HELLO{"k":1}'
        assert any(e["id"] == name and e["stage"] == "Running" for e in rs.list_etls())
        assert etl.view()["init_msg"]["name"] == name
        assert len(etl.logs()) == 3
        with pytest.raises(ETLExists):
            etl.init_code("def transform(d): return d\n")
        etl.stop()
        with pytest.raises(aistore_rs.AISError) as e:
            bck.object("a.txt").get(etl_name=name)
        assert "stopped" in e.value.message
        etl.start()
        assert bck.object("a.txt").get(etl_name=name) == b"HELLO"
    finally:
        etl.delete()
    with pytest.raises(ETLNotFound) as e:
        bck.object("a.txt").get(etl_name=name)
    assert "etl job" in e.value.message

    # From a Python callable (closure included), serialised with cloudpickle.
    suffix = b"-cb"
    fname = f"rs-fn-{uuid.uuid4().hex[:6]}"

    def fn(data: bytes) -> bytes:
        return data[::-1] + suffix

    rs.etl(fname).init(fn)
    try:
        assert bck.object("a.txt").get(etl_name=fname) == b"olleh-cb"
    finally:
        rs.etl(fname).delete()


def test_etl_error_carries_traceback(rs: Client, bck) -> None:
    bck.object("a.txt").put(b"x")
    name = f"rs-err-{uuid.uuid4().hex[:6]}"
    rs.etl(name).init_code("def transform(data):\n    raise KeyError('missing-label')\n")
    try:
        with pytest.raises(ETLError) as e:
            bck.object("a.txt").get(etl_name=name)
        assert e.value.status == 422
        assert "KeyError" in e.value.message and "missing-label" in e.value.message
        assert "line 2, in transform" in e.value.traceback
    finally:
        rs.etl(name).delete()


def test_callable_with_other_python_is_a_clear_error(rs: Client, bck, monkeypatch) -> None:
    import aistore_rs.client as c

    monkeypatch.setattr(c, "client_python", lambda: "python3.99")
    name = f"rs-ver-{uuid.uuid4().hex[:6]}"
    with pytest.raises(aistore_rs.AISError) as e:
        rs.etl(name).init(lambda d: d)
    assert e.value.status == 400
    assert "python3.99" in e.value.message and "available" in e.value.message, e.value.message
    assert sys.version_info.minor != 99


def test_keepalive_puts_through_the_proxy(endpoint: str, bck) -> None:
    """Many PUTs with bodies on one keep-alive session through the proxy's 307:
    the proxy drains small bodies (or says Connection: close), so no request
    lands on a connection the server dropped (regression: RemoteDisconnected)."""
    import requests

    s = requests.Session()
    body = bytes(range(256)) * 256  # 64 KiB
    for i in range(300):
        r = s.put(f"{endpoint}/v1/objects/{bck.name}/ka/{i:04d}", data=body, timeout=30)
        assert r.status_code == 200, r.text
    big = body * 8  # 512 KiB: not drained, the connection is closed instead
    for i in range(20):
        r = s.put(f"{endpoint}/v1/objects/{bck.name}/big/{i:02d}", data=big, timeout=30)
        assert r.status_code == 200, r.text
    assert len(bck.list_names("ka/")) == 300 and len(bck.list_names("big/")) == 20
    raw = requests.put(f"{endpoint}/v1/objects/{bck.name}/x", data=big, allow_redirects=False, timeout=30)
    assert raw.status_code == 307 and raw.headers.get("Connection", "").lower() == "close"
