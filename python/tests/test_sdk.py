"""End-to-end tests of aistore-rs with the official ``aistore==2.0.0`` SDK.

Everything here goes through a real 1-proxy/3-target cluster started by the
``cluster`` fixture (see ``conftest.py`` / ``ais_cluster.py``): cluster map,
bucket lifecycle, object PUT/GET/HEAD/DELETE (including ranged and direct
reads), and paged object listing.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import random
from typing import Dict, Iterator, List

import pytest
import requests
import xxhash
from aistore.sdk import Client
from aistore.sdk.bucket import Bucket
from aistore.sdk.errors import (
    AISError,
    ErrBckAlreadyExists,
    ErrBckNotFound,
    ErrObjNotFound,
)
from aistore.sdk.types import BucketEntry, BucketList, Smap
from aistore.sdk.utils import get_digest

from ais_cluster import NUM_TARGETS, Cluster
from ais_cluster import unique_bucket_name as unique_name

MiB = 1 << 20


def xxhash_hex(data: bytes) -> str:
    """AIStore's "xxhash" checksum value: xxh64, seed 0, hex (big-endian)."""
    return xxhash.xxh64(data, seed=0).hexdigest()


def put(bck: Bucket, name: str, data: bytes) -> None:
    """PUT ``data`` as ``name`` and check the response status."""
    resp = bck.object(name).get_writer().put_content(data)
    assert resp.status_code == 200, resp.text


def get(bck: Bucket, name: str) -> bytes:
    """Read a whole object through the proxy."""
    return bck.object(name).get_reader().read_all()


# --------------------------------------------------------------------- cluster


def test_client_and_cluster_map(cluster: Cluster, endpoint: str) -> None:
    client = Client(endpoint)
    smap = client.cluster().get_info()
    assert isinstance(smap, Smap)

    # Targets: exactly the three we started, with their URLs and HRW digests.
    assert len(smap.tmap) == NUM_TARGETS
    assert set(smap.tmap) == {t.node_id for t in cluster.targets}
    for tid, snode in smap.tmap.items():
        node = cluster.target_by_id(tid)
        assert snode.daemon_id == tid
        assert snode.daemon_type == "target"
        assert snode.public_net is not None
        assert snode.public_net.direct_url == node.url
        # AIStore: id_digest = xxhash64(daemon_id, seed MLCG32); the SDK's
        # direct reads depend on it.
        assert snode.id_digest == get_digest(tid)
        assert not snode.in_maint_or_decomm()

    # Primary proxy.
    assert cluster.proxy is not None
    assert smap.proxy_si is not None
    assert smap.proxy_si.daemon_id == cluster.proxy.node_id
    assert smap.proxy_si.daemon_type == "proxy"
    assert smap.proxy_si.public_net.direct_url == endpoint
    assert cluster.proxy.node_id in smap.pmap
    assert smap.version > 0
    assert smap.uuid

    assert client.cluster().get_primary_url() == endpoint


def test_list_buckets(client: Client, bucket: Bucket) -> None:
    buckets = client.cluster().list_buckets()
    assert isinstance(buckets, list)
    matching = [b for b in buckets if b.name == bucket.name]
    assert len(matching) == 1
    assert matching[0].provider == "ais"
    # Empty provider means "all providers": the ais bucket is there too.
    assert bucket.name in {b.name for b in client.cluster().list_buckets(provider="")}


# --------------------------------------------------------------------- buckets


def test_bucket_lifecycle(client: Client) -> None:
    name = unique_name("lifecycle")
    bck = client.bucket(name)
    assert name not in {b.name for b in client.cluster().list_buckets()}

    assert bck.create() is bck
    try:
        # Second create: fine with exist_ok, 409 ErrBckAlreadyExists without.
        bck.create(exist_ok=True)
        with pytest.raises(ErrBckAlreadyExists) as exc:
            bck.create()
        assert exc.value.status_code == 409

        assert name in {b.name for b in client.cluster().list_buckets()}

        headers = bck.head()
        props_raw = headers.get("Ais-Bucket-Props")
        assert props_raw, f"HEAD bucket returned no Ais-Bucket-Props: {dict(headers)}"
        assert isinstance(json.loads(props_raw), dict)

        # A fresh bucket lists empty.
        page = bck.list_objects()
        assert page.entries == []
        assert page.continuation_token == ""
        assert bck.list_all_objects() == []
    finally:
        bck.delete()

    assert name not in {b.name for b in client.cluster().list_buckets()}
    with pytest.raises(ErrBckNotFound) as exc:
        bck.delete()
    assert exc.value.status_code == 404
    bck.delete(missing_ok=True)  # no error


def test_missing_bucket(client: Client) -> None:
    bck = client.bucket(unique_name("missing"))
    # HEAD responses carry no body, so the SDK can only raise the generic
    # AISError for them; the status must still be 404.
    with pytest.raises(AISError) as exc:
        bck.head()
    assert exc.value.status_code == 404
    with pytest.raises(ErrBckNotFound):
        bck.list_objects()
    with pytest.raises(ErrBckNotFound):
        bck.list_all_objects()
    with pytest.raises(ErrBckNotFound):
        list(bck.list_objects_iter())


def test_bucket_recreate_is_empty(client: Client) -> None:
    bck = client.bucket(unique_name("recreate")).create()
    try:
        put(bck, "stale", b"old data")
        bck.delete()
        bck.create()
        assert bck.list_all_objects() == []
        with pytest.raises(ErrObjNotFound):
            get(bck, "stale")
    finally:
        bck.delete(missing_ok=True)


# --------------------------------------------------------------------- objects


def test_put_get_roundtrip(bucket: Bucket) -> None:
    data = b"hello, aistore-rs"
    put(bucket, "hello.txt", data)
    assert get(bucket, "hello.txt") == data
    # Streaming iteration and the file-like reader see the same bytes.
    assert b"".join(bucket.object("hello.txt").get_reader(chunk_size=4)) == data
    assert bucket.object("hello.txt").get_reader().as_file().read() == data


def test_empty_object(bucket: Bucket) -> None:
    put(bucket, "empty", b"")
    assert get(bucket, "empty") == b""
    assert bucket.object("empty").head("size").size == 0


def test_overwrite(bucket: Bucket) -> None:
    obj = bucket.object("over")
    put(bucket, "over", b"first version, longer")
    v1 = obj.head("version").obj_version
    put(bucket, "over", b"second")
    assert get(bucket, "over") == b"second"
    attrs = obj.head("size,version")
    assert attrs.size == len(b"second")
    assert v1 and attrs.obj_version
    assert int(attrs.obj_version) > int(v1)


NESTED_NAMES = [
    "dir1/file.txt",
    "dir1/dir2/dir3/deep.bin",
    "a/b/c/d/e/f/g",
    "with space/and+plus.txt",
    "percent/100%25literal",
    "query?and#hash/x",
    "unicode/ünïcødé-名前.txt",
]


def test_names_with_slashes(bucket: Bucket) -> None:
    contents = {name: f"content of {name}".encode() for name in NESTED_NAMES}
    for name, data in contents.items():
        put(bucket, name, data)
    for name, data in contents.items():
        assert get(bucket, name) == data, name
        props = bucket.object(name).head()
        assert props.size == len(data), name
        assert props.name == name
    listed = [e.name for e in bucket.list_all_objects()]
    assert listed == sorted(contents)
    assert [e.name for e in bucket.list_all_objects(prefix="dir1/")] == sorted(
        n for n in contents if n.startswith("dir1/")
    )


def test_large_random_object(bucket: Bucket) -> None:
    data = os.urandom(5 * MiB)
    put(bucket, "big/random.bin", data)
    obj = bucket.object("big/random.bin")
    got = obj.get_reader().read_all()
    assert len(got) == len(data)
    assert got == data
    # Chunked streaming of the same object.
    streamed = b"".join(obj.get_reader(chunk_size=MiB // 3))
    assert streamed == data
    attrs = obj.head("size,checksum")
    assert attrs.size == len(data)
    assert attrs.checksum_type == "xxhash"
    assert attrs.checksum_value == xxhash_hex(data)


@pytest.mark.parametrize(
    "byte_range, expect",
    [
        ("bytes=2-5", slice(2, 6)),
        ("bytes=0-0", slice(0, 1)),
        ("bytes=10-", slice(10, None)),
        ("bytes=-7", slice(-7, None)),
        ("bytes=20-1000", slice(20, None)),  # end past EOF is clamped
    ],
)
def test_ranged_read_small(bucket: Bucket, byte_range: str, expect: slice) -> None:
    data = bytes(range(32)) + b"abcdefghijklmnop"
    put(bucket, "ranged", data)
    got = bucket.object("ranged").get_reader(byte_range=byte_range).read_all()
    assert got == data[expect]


def test_ranged_read_large(bucket: Bucket) -> None:
    data = os.urandom(3 * MiB + 123)
    put(bucket, "ranged-large", data)
    obj = bucket.object("ranged-large")
    start, end = MiB - 5, 2 * MiB + 17  # crosses chunk/buffer boundaries
    got = obj.get_reader(byte_range=f"bytes={start}-{end}").read_all()
    assert got == data[start : end + 1]
    tail = obj.get_reader(byte_range="bytes=-1000").read_all()
    assert tail == data[-1000:]
    # Large bodies are sent from mapped windows: whole, and from offsets
    # that are not page- or window-aligned.
    assert obj.get_reader().read_all() == data
    for start, end in ((12_289, 3 * MiB), (2 * MiB + 1, 3 * MiB + 122), (MiB, MiB)):
        got = obj.get_reader(byte_range=f"bytes={start}-{end}").read_all()
        assert got == data[start : end + 1], (start, end)


def test_ranged_read_raw_http(bucket: Bucket, endpoint: str) -> None:
    """206 + Content-Range; unsatisfiable range is 416."""
    data = b"0123456789"
    put(bucket, "raw-range", data)
    url = f"{endpoint}/v1/objects/{bucket.name}/raw-range"
    r = requests.get(url, headers={"Range": "bytes=2-5"}, timeout=10)
    assert r.status_code == 206
    assert r.content == b"2345"
    assert r.headers["Content-Range"] == "bytes 2-5/10"
    r = requests.get(url, headers={"Range": "bytes=50-60"}, timeout=10)
    assert r.status_code == 416


def test_object_head_props(bucket: Bucket) -> None:
    data = os.urandom(12345)
    put(bucket, "props/obj.bin", data)
    obj = bucket.object("props/obj.bin")

    attrs = obj.head("name,size,checksum,version,atime")
    assert attrs.size == len(data)
    assert attrs.present
    assert attrs.checksum_type == "xxhash"
    assert attrs.checksum_value == xxhash_hex(data)
    assert attrs.obj_version != ""
    assert attrs.access_time != ""
    assert attrs.name == "props/obj.bin"
    assert attrs.bucket_name == bucket.name
    assert attrs.bucket_provider == "ais"

    # `props` issues HEAD with checksum,atime,version,copies,custom,location.
    props = obj.props
    assert props.size == len(data)
    assert props.checksum_type == "xxhash"
    assert props.checksum_value == xxhash_hex(data)
    assert props.mirror_copies == 1
    assert props.location != ""

    # The GET response carries the same checksum.
    reader = obj.get_reader()
    assert reader.read_all() == data
    assert reader.attributes.checksum_value == xxhash_hex(data)


def test_object_delete(bucket: Bucket) -> None:
    put(bucket, "gone/soon", b"bye")
    put(bucket, "gone/stays", b"hi")
    obj = bucket.object("gone/soon")
    resp = obj.delete()
    assert resp.status_code == 200

    with pytest.raises(ErrObjNotFound) as exc:
        obj.get_reader().read_all()
    assert exc.value.status_code == 404
    with pytest.raises(AISError) as exc:
        obj.head()
    assert exc.value.status_code == 404
    with pytest.raises(ErrObjNotFound):
        obj.delete()
    assert [e.name for e in bucket.list_all_objects()] == ["gone/stays"]
    assert get(bucket, "gone/stays") == b"hi"


def test_get_missing_object(bucket: Bucket) -> None:
    with pytest.raises(ErrObjNotFound) as exc:
        bucket.object("never/written").get_reader().read_all()
    assert exc.value.status_code == 404


def test_put_to_missing_bucket(client: Client) -> None:
    bck = client.bucket(unique_name("nobucket"))
    with pytest.raises(ErrBckNotFound) as exc:
        bck.object("x").get_writer().put_content(b"data")
    assert exc.value.status_code == 404
    with pytest.raises(ErrBckNotFound):
        bck.object("x").get_reader().read_all()


# ---------------------------------------------------------- direct (HRW) reads


def test_direct_read_matches_hrw(
    cluster: Cluster, client: Client, bucket: Bucket
) -> None:
    """The SDK's client-side HRW choice must be the server's placement."""
    smap = client.cluster().get_info()
    rng = random.Random(7)
    objects: Dict[str, bytes] = {
        f"direct/{i:03d}-{rng.randrange(1 << 30):x}": rng.randbytes(
            rng.randrange(1, 4096)
        )
        for i in range(60)
    }
    used_targets = set()
    for name, data in objects.items():
        put(bucket, name, data)
    for name, data in objects.items():
        obj = bucket.object(name)
        owner = smap.get_target_for_object(obj.uname)
        used_targets.add(owner.daemon_id)

        # 1. SDK direct read (goes straight to `owner`).
        assert obj.get_reader(direct=True).read_all() == data, name

        # 2. The owner serves it itself: no hop redirect to another target.
        assert owner.public_net.direct_url == cluster.target_by_id(owner.daemon_id).url
        quoted = requests.utils.quote(name)
        url = f"{owner.public_net.direct_url}/v1/objects/{bucket.name}/{quoted}"
        r = requests.get(url, allow_redirects=False, timeout=10)
        assert r.status_code == 200, (name, r.status_code, r.headers.get("Location"))
        assert r.content == data

        # 3. The proxy redirects to the same target.
        r = requests.get(
            f"{client.cluster().get_primary_url()}/v1/objects/{bucket.name}/{quoted}",
            allow_redirects=False,
            timeout=10,
        )
        assert r.is_redirect, r.status_code
        assert r.headers["Location"].startswith(owner.public_net.direct_url + "/"), (
            name,
            r.headers["Location"],
            owner.public_net.direct_url,
        )

        # 4. HEAD reports the owner as the location.
        assert f"t[{owner.daemon_id}]" in obj.head("location").location
    # 60 random names spread over all three targets.
    assert used_targets == set(smap.tmap)


def test_direct_read_ranged(client: Client, bucket: Bucket) -> None:
    data = os.urandom(200_000)
    put(bucket, "direct-range", data)
    got = (
        bucket.object("direct-range")
        .get_reader(direct=True, byte_range="bytes=100-199")
        .read_all()
    )
    assert got == data[100:200]


# --------------------------------------------------------------------- listing

LIST_PREFIX = "lst/"
NUM_LISTED = 250
PAGE = 37


def listed_name(i: int) -> str:
    return f"{LIST_PREFIX}dir{i % 5}/obj-{i:04d}"


def listed_size(i: int) -> int:
    return (i * 7) % 301


@pytest.fixture(scope="module")
def listing_bucket(client: Client) -> Iterator[Bucket]:
    """A bucket with NUM_LISTED objects under LIST_PREFIX plus decoys."""
    bck = client.bucket(unique_name("listing")).create()
    try:
        for i in range(NUM_LISTED):
            put(bck, listed_name(i), bytes([i % 256]) * listed_size(i))
        # Decoys that share leading characters with the prefix, but not the prefix.
        for name in ["lst.txt", "lsx/a", "ls/b", "lst-not/c", "zzz/last", "aaa/first"]:
            put(bck, name, b"decoy")
        yield bck
    finally:
        bck.delete(missing_ok=True)


def expected_names(prefix: str = LIST_PREFIX) -> List[str]:
    return sorted(
        n for n in (listed_name(i) for i in range(NUM_LISTED)) if n.startswith(prefix)
    )


def assert_clean(names: List[str], expected: List[str]) -> None:
    assert len(names) == len(set(names)), "duplicates in listing"
    assert names == sorted(names), "listing not in name order"
    assert set(names) == set(expected), (
        f"missing {sorted(set(expected) - set(names))[:5]}, "
        f"extra {sorted(set(names) - set(expected))[:5]}"
    )


def test_list_objects_manual_paging(listing_bucket: Bucket) -> None:
    pages: List[BucketList] = []
    uuid, token = "", ""
    for _ in range(NUM_LISTED // PAGE + 5):  # bounded
        page = listing_bucket.list_objects(
            prefix=LIST_PREFIX, page_size=PAGE, uuid=uuid, continuation_token=token
        )
        pages.append(page)
        assert page.uuid, "list-objects must return a non-empty UUID"
        if uuid:
            assert page.uuid == uuid
        uuid, token = page.uuid, page.continuation_token
        if token == "":
            break
    else:
        pytest.fail("listing did not terminate")

    expected = expected_names()
    want_pages = -(-len(expected) // PAGE)
    assert len(pages) == want_pages
    for p in pages[:-1]:
        assert len(p.entries) == PAGE
    assert 0 < len(pages[-1].entries) <= PAGE
    names = [e.name for p in pages for e in p.entries]
    assert_clean(names, expected)
    # Each page ends where the next begins.
    for a, b in zip(pages, pages[1:]):
        assert a.entries[-1].name < b.entries[0].name


def test_list_objects_single_page(listing_bucket: Bucket) -> None:
    page = listing_bucket.list_objects(prefix=LIST_PREFIX)
    assert page.continuation_token == ""
    assert_clean([e.name for e in page.entries], expected_names())
    # Entries come back bound to SDK Object handles.
    assert page.entries[0].object.name == page.entries[0].name


def test_list_all_objects(listing_bucket: Bucket) -> None:
    entries = listing_bucket.list_all_objects(prefix=LIST_PREFIX)
    assert all(isinstance(e, BucketEntry) for e in entries)
    assert_clean([e.name for e in entries], expected_names())

    paged = listing_bucket.list_all_objects(prefix=LIST_PREFIX, page_size=PAGE)
    assert [e.name for e in paged] == [e.name for e in entries]

    sub = listing_bucket.list_all_objects(prefix=f"{LIST_PREFIX}dir3/", page_size=PAGE)
    assert_clean([e.name for e in sub], expected_names(f"{LIST_PREFIX}dir3/"))
    assert len(sub) == NUM_LISTED // 5

    everything = [e.name for e in listing_bucket.list_all_objects(page_size=PAGE)]
    assert everything == sorted(
        expected_names()
        + ["lst.txt", "lsx/a", "ls/b", "lst-not/c", "zzz/last", "aaa/first"]
    )

    assert listing_bucket.list_all_objects(prefix="no-such-prefix/") == []


def test_list_objects_iter(listing_bucket: Bucket) -> None:
    expected = expected_names()
    it = listing_bucket.list_objects_iter(prefix=LIST_PREFIX, page_size=PAGE)
    # Bounded: a server that restarts the listing would loop forever.
    names = [e.name for e in itertools.islice(it, len(expected) + 100)]
    assert len(names) == len(expected)
    assert_clean(names, expected)
    assert next(it, None) is None


def test_list_objects_props_name_size(listing_bucket: Bucket) -> None:
    entries = listing_bucket.list_all_objects(
        prefix=LIST_PREFIX, props="name,size", page_size=PAGE
    )
    sizes = {e.name: e.size for e in entries}
    assert sizes == {listed_name(i): listed_size(i) for i in range(NUM_LISTED)}


def test_list_objects_checksum_prop(listing_bucket: Bucket) -> None:
    entries = listing_bucket.list_all_objects(
        prefix=f"{LIST_PREFIX}dir1/", props="name,checksum"
    )
    assert entries
    for e in entries:
        i = int(e.name.rsplit("-", 1)[1])
        assert e.checksum == xxhash_hex(bytes([i % 256]) * listed_size(i)), e.name


def test_list_objects_start_after(listing_bucket: Bucket) -> None:
    expected = expected_names()
    marker = expected[100]
    names = [
        e.name
        for e in listing_bucket.list_all_objects(
            prefix=LIST_PREFIX, page_size=PAGE, start_after=marker
        )
    ]
    assert names == expected[101:]


def test_erasure_coding_props_via_sdk(client: Client, bucket: Bucket, cluster: Cluster) -> None:
    """`ec.*` props set through the SDK's set-bprops action start a tracked
    `ec-encode` job that codes the existing objects; the props read back;
    a lost main copy is then rebuilt from its parts on GET."""
    blobs = {f"ec/{i}": os.urandom(300 + 37 * i) for i in range(10)}
    blobs["ec/large"] = os.urandom(700_000)  # above ec.objsize_limit: sliced
    for name, data in blobs.items():
        put(bucket, name, data)
    resp = bucket.make_request(
        "PATCH",
        "set-bprops",
        value={"ec": {"enabled": True, "data_slices": 1, "parity_slices": 1}},
    )
    job_id = resp.text.strip()
    assert job_id.startswith("ec-encode-"), job_id
    assert client.job(job_id).wait(timeout=60, verbose=False).success
    props = json.loads(bucket.head()["Ais-Bucket-Props"])
    assert props["ec"]["enabled"] is True
    assert (props["ec"]["data_slices"], props["ec"]["parity_slices"]) == (1, 1)
    # Each object has one part (replica or slice) on other targets: remove
    # the main copies from disk and read everything back.
    removed = 0
    for root, _dirs, files in os.walk(cluster.base_dir):
        if f"/@ais/{bucket.name}/ec" in root:
            for f in files:
                os.remove(os.path.join(root, f))
                removed += 1
    assert removed == len(blobs)
    for name, data in blobs.items():
        assert bucket.object(name).get_reader().read_all() == data, name
    # Too few targets for the slices asked: a clear 400.
    with pytest.raises(AISError) as e:
        bucket.make_request("PATCH", "set-bprops", value={"ec": {"enabled": False}})
        bucket.make_request(
            "PATCH",
            "set-bprops",
            value={"ec": {"enabled": True, "data_slices": 4, "parity_slices": 2}},
        )
    assert e.value.status_code == 400
    assert "needs at least 7 targets" in str(e.value)
    assert NUM_TARGETS < 7


def test_write_policy_never_for_scratch_buckets(bucket: Bucket, cluster: Cluster) -> None:
    """`write_policy.data=never` (scratch data: no flushes before the ack)
    through the SDK and the CLI; objects read back whole; other values are a
    clear 400."""
    bucket.make_request("PATCH", "set-bprops", value={"write_policy": {"data": "never"}})
    assert json.loads(bucket.head()["Ais-Bucket-Props"])["write_policy"]["data"] == "never"
    blobs = {f"scratch/{i}": os.urandom(1 + i * 50_000) for i in range(8)}
    for n, d in blobs.items():
        put(bucket, n, d)
    for n, d in blobs.items():
        assert bucket.object(n).get_reader().read_all() == d
    with pytest.raises(AISError) as e:
        bucket.make_request("PATCH", "set-bprops", value={"write_policy": {"data": "sometimes"}})
    assert e.value.status_code == 400
    assert "write_policy.data" in str(e.value)
    out = subprocess.run(
        [str(cluster.bin_dir / "ais"), "bucket", "props", "set", f"ais://{bucket.name}", "write_policy.data=immediate"],
        env={**os.environ, "AIS_ENDPOINT": cluster.url}, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(bucket.head()["Ais-Bucket-Props"])["write_policy"]["data"] == "immediate"
