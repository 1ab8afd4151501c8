"""A bucket's checksum type (AIStore's ``checksum.type``: md5, sha256,
sha512, crc32c besides xxhash): computed as objects are written, shown by
HEAD, GET and listings, checked against what a client sends; xxhash stays
the integrity checksum every read verifies."""

from __future__ import annotations

import hashlib
import json

import pytest
import requests
from aistore.sdk import Client
from aistore.sdk.bucket import Bucket

# crc32c("abc") (Castagnoli), a standard test vector.
CRC32C_ABC = "364b3fb7"


def set_type(endpoint: str, bucket: Bucket, kind: str) -> None:
    r = requests.patch(
        f"{endpoint}/v1/buckets/{bucket.name}",
        json={"action": "set-bprops", "value": {"checksum": {"type": kind}}},
        timeout=30,
    )
    assert r.status_code == 200, r.text


def put(endpoint: str, bucket: Bucket, name: str, data: bytes, headers=None) -> requests.Response:
    return requests.put(
        f"{endpoint}/v1/objects/{bucket.name}/{name}", data=data, headers=headers or {}, timeout=30
    )


@pytest.mark.parametrize(
    "kind, digest",
    [
        ("md5", hashlib.md5(b"abc").hexdigest()),
        ("sha256", hashlib.sha256(b"abc").hexdigest()),
        ("sha512", hashlib.sha512(b"abc").hexdigest()),
        ("crc32c", CRC32C_ABC),
    ],
)
def test_bucket_checksum_types(endpoint: str, client: Client, bucket: Bucket, kind: str, digest: str) -> None:
    set_type(endpoint, bucket, kind)
    r = put(endpoint, bucket, "abc", b"abc")
    assert r.status_code == 200, r.text
    assert (r.headers["Ais-Checksum-Type"], r.headers["Ais-Checksum-Value"]) == (kind, digest)
    props = bucket.object("abc").head("checksum")
    assert (props.checksum_type, props.checksum_value) == (kind, digest), props
    g = requests.get(f"{endpoint}/v1/objects/{bucket.name}/abc", timeout=30)
    assert g.content == b"abc" and g.headers["Ais-Checksum-Value"] == digest
    listed = {e.name: e.checksum for e in bucket.list_all_objects(props="checksum")}
    assert listed == {"abc": digest}
    # A client's checksum of the bucket's type, or xxhash, is checked.
    ok = put(endpoint, bucket, "ok", b"abc", {"Ais-Checksum-Type": kind, "Ais-Checksum-Value": digest})
    assert ok.status_code == 200, ok.text
    bad = put(endpoint, bucket, "bad", b"abd", {"Ais-Checksum-Type": kind, "Ais-Checksum-Value": digest})
    assert bad.status_code == 400 and "checksum mismatch" in bad.text, bad.text
    other = "sha256" if kind != "sha256" else "md5"
    bad = put(endpoint, bucket, "bad", b"abc", {"Ais-Checksum-Type": other, "Ais-Checksum-Value": "00"})
    assert bad.status_code == 400 and "not computed for this bucket" in bad.text, bad.text
    assert sorted(e.name for e in bucket.list_all_objects()) == ["abc", "ok"]


def test_type_change_keeps_what_objects_were_written_with(endpoint: str, bucket: Bucket) -> None:
    set_type(endpoint, bucket, "sha256")
    assert put(endpoint, bucket, "old", b"abc").status_code == 200
    set_type(endpoint, bucket, "xxhash")
    assert put(endpoint, bucket, "new", b"abc").status_code == 200
    old = bucket.object("old").head("checksum")
    new = bucket.object("new").head("checksum")
    assert old.checksum_type == "sha256" and new.checksum_type == "xxhash", (old, new)
    # The xxhash a client sends is checked in any bucket.
    bad = put(endpoint, bucket, "x", b"abc", {"Ais-Checksum-Type": "xxhash", "Ais-Checksum-Value": "0" * 16})
    assert bad.status_code == 400 and "checksum mismatch" in bad.text, bad.text
    # An unknown type is refused by name.
    r = requests.patch(
        f"{endpoint}/v1/buckets/{bucket.name}",
        json={"action": "set-bprops", "value": {"checksum": {"type": "md4"}}},
        timeout=30,
    )
    assert r.status_code == 400 and "md4" in r.text, r.text
    assert json.loads(
        requests.head(f"{endpoint}/v1/buckets/{bucket.name}", timeout=30).headers["Ais-Bucket-Props"]
    )["checksum"]["type"] == "xxhash"
