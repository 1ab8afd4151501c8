"""No silent wrong answers: an object whose bytes no longer match its stored
checksum is never served as good on a default bucket — native GET, a range,
the S3 API, an archive member, a Get-Batch item, ETL input — even when it
was read (and found good) just before the damage."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import List

import pytest
import requests
from aistore.sdk.bucket import Bucket
from botocore.exceptions import ClientError

from ais_cluster import Cluster
from test_etl import etl_get, etls, must_init, unique_etl  # noqa: F401 - etls is a fixture
from test_s3 import s3_client

HTTP_TIMEOUT = 30


def object_file(cluster: Cluster, bucket: str, obj: str) -> Path:
    found = [p for t in cluster.targets for mp in t.mpaths for p in [mp / "@ais" / bucket / obj] if p.is_file()]
    assert len(found) == 1, found
    return found[0]


def flip(path: Path, at: int) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0xFF]))


def tar_of(members: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_a_flipped_byte_is_never_served(cluster: Cluster, bucket: Bucket, etls: List[str]) -> None:
    url, b = cluster.url, bucket.name
    big = os.urandom(1 << 20)
    small = os.urandom(16 << 10)
    shard = tar_of({"m/a.bin": os.urandom(50_000), "m/b.bin": os.urandom(50_000)})
    for name, data in (("big", big), ("small", small), ("s.tar", shard)):
        bucket.object(name).get_writer().put_content(data)
        # Read (and found good) once before the damage: a cached verdict
        # must not outlive the change.
        assert bucket.object(name).get_reader().read_all() == data
    name = unique_etl("integ")
    etls.append(name)
    must_init(url, name, "def transform(data):\n    return data\n", pool_size=1)
    flip(object_file(cluster, b, "big"), 700_000)
    flip(object_file(cluster, b, "small"), 5)
    flip(object_file(cluster, b, "s.tar"), 512 + 10)  # inside m/a.bin's data

    for obj in ("big", "small"):
        # (Raw requests: the SDK retries a 500 — AIStore's status for a bad
        # checksum — for about 90 s before it gives up.)
        r = requests.get(f"{url}/v1/objects/{b}/{obj}", timeout=HTTP_TIMEOUT)
        assert r.status_code == 500 and r.json()["tcode"] == "ErrBadCksum", (r.status_code, r.text[:200])
        r = requests.get(f"{url}/v1/objects/{b}/{obj}", headers={"Range": "bytes=0-99"}, timeout=HTTP_TIMEOUT)
        assert r.status_code == 500 and "corrupted" in r.text, (r.status_code, r.text[:200])
        with pytest.raises(ClientError):
            s3_client(url).get_object(Bucket=b, Key=obj)["Body"].read()
        r = etl_get(url, b, obj, name)
        assert r.status_code >= 400, r.status_code
    r = requests.get(f"{url}/v1/objects/{b}/s.tar", params={"archpath": "m/a.bin"}, timeout=HTTP_TIMEOUT)
    assert r.status_code >= 400, (r.status_code, r.content[:100])
    r = requests.get(f"{url}/v1/ml/moss/{b}", json={"in": [{"objname": "small"}], "mime": ".tar"}, timeout=HTTP_TIMEOUT)
    damaged = small[:5] + bytes([small[5] ^ 0xFF]) + small[6:]
    assert r.status_code >= 400 or damaged not in r.content, r.status_code
    # The undamaged are still served.
    bucket.object("fine").get_writer().put_content(b"fine")
    assert bucket.object("fine").get_reader().read_all() == b"fine"
