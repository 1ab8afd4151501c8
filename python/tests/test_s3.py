"""The S3 API at ``/s3`` with unmodified S3 clients: boto3, s3fs, the Amazon
S3 Connector for PyTorch (``s3torchconnector``, AWS CRT) and the AWS CLI,
against a real cluster. No client is patched: every request is served by
the node it reaches (no redirects). Objects written through S3 and through
the native API (official ``aistore`` SDK) are the same objects."""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import boto3
import pytest
import requests
import xxhash
from botocore.config import Config
from botocore.exceptions import ClientError

from ais_cluster import unique_bucket_name

MiB = 1 << 20


def s3_client(endpoint: str, key: str = "any-key", secret: str = "any-secret"):
    return boto3.client(
        "s3",
        endpoint_url=f"{endpoint}/s3",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2, "mode": "standard"}),
    )


@pytest.fixture(scope="module")
def s3(endpoint):
    return s3_client(endpoint)


@pytest.fixture
def sbucket(s3, client):
    """A bucket created through S3 (and checked natively), destroyed after."""
    name = unique_bucket_name("s3")
    s3.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        client.bucket(name).delete(missing_ok=True)


def code_of(e: ClientError) -> str:
    return e.response["Error"]["Code"]


def test_boto3_objects_round_trip(s3, client, sbucket):
    assert sbucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=sbucket)
    data = os.urandom(3 * MiB + 17)
    put = s3.put_object(Bucket=sbucket, Key="d/obj.bin", Body=data, ContentType="application/x-test",
                        Metadata={"owner": "me"})
    md5 = hashlib.md5(data).hexdigest()
    assert put["ETag"] == f'"{md5}"'
    got = s3.get_object(Bucket=sbucket, Key="d/obj.bin")
    assert got["Body"].read() == data
    assert got["ETag"] == f'"{md5}"' and got["ContentLength"] == len(data)
    assert got["ContentType"] == "application/x-test" and got["Metadata"] == {"owner": "me"}
    # Ranges: first bytes, middle, suffix.
    for rng, want in [("bytes=0-9", data[:10]), ("bytes=1000-2999", data[1000:3000]), ("bytes=-5", data[-5:])]:
        r = s3.get_object(Bucket=sbucket, Key="d/obj.bin", Range=rng)
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert r["Body"].read() == want, rng
        assert r["ContentRange"].endswith(f"/{len(data)}")
    head = s3.head_object(Bucket=sbucket, Key="d/obj.bin")
    assert head["ContentLength"] == len(data) and head["ETag"] == f'"{md5}"'
    assert head["LastModified"].year >= 2024
    # Same object natively.
    assert client.bucket(sbucket).object("d/obj.bin").get_reader().read_all() == data
    # Copy (streams from the source's owner to the destination's).
    cp = s3.copy_object(Bucket=sbucket, Key="copy.bin", CopySource={"Bucket": sbucket, "Key": "d/obj.bin"})
    assert cp["CopyObjectResult"]["ETag"] == f'"{md5}"'
    assert s3.get_object(Bucket=sbucket, Key="copy.bin")["Body"].read() == data
    assert s3.head_object(Bucket=sbucket, Key="copy.bin")["Metadata"] == {"owner": "me"}
    # Delete is idempotent; a deleted key is NoSuchKey.
    s3.delete_object(Bucket=sbucket, Key="copy.bin")
    s3.delete_object(Bucket=sbucket, Key="copy.bin")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=sbucket, Key="copy.bin")
    assert code_of(e.value) == "NoSuchKey"
    # Empty object.
    s3.put_object(Bucket=sbucket, Key="empty", Body=b"")
    assert s3.get_object(Bucket=sbucket, Key="empty")["Body"].read() == b""


def test_native_objects_are_s3_objects(s3, client, sbucket):
    data = os.urandom(100_000)
    client.bucket(sbucket).object("native.bin").get_writer().put_content(data)
    got = s3.get_object(Bucket=sbucket, Key="native.bin")
    assert got["Body"].read() == data
    # Written natively: no MD5 was computed; the ETag is the stored xxhash.
    assert got["ETag"] == f'"{xxhash.xxh64(data).hexdigest()}"'
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=sbucket)["Contents"]]
    assert keys == ["native.bin"]
    s3.put_object(Bucket=sbucket, Key="native.bin", Body=b"v2")
    assert client.bucket(sbucket).object("native.bin").get_reader().read_all() == b"v2"


def test_conditional_requests_and_errors(s3, endpoint, sbucket):
    data = b"conditional" * 100
    etag = s3.put_object(Bucket=sbucket, Key="c", Body=data)["ETag"]
    assert s3.get_object(Bucket=sbucket, Key="c", IfMatch=etag)["Body"].read() == data
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=sbucket, Key="c", IfMatch='"nope"')
    assert code_of(e.value) == "PreconditionFailed"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=sbucket, Key="c", IfNoneMatch=etag)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    head = s3.head_object(Bucket=sbucket, Key="c")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=sbucket, Key="c", IfModifiedSince=head["LastModified"])
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=sbucket, Key="c", Range="bytes=5000-6000")
    assert code_of(e.value) == "InvalidRange"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="no-such-bucket-here", Key="c")
    assert code_of(e.value) == "NoSuchBucket"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=sbucket, Key="missing")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=sbucket)
    assert code_of(e.value) == "BucketNotEmpty"
    # A wrong Content-MD5 stores nothing.
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=sbucket, Key="bad-md5", Body=b"abc", ContentMD5="AAAAAAAAAAAAAAAAAAAAAA==")
    assert code_of(e.value) == "BadDigest"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=sbucket, Key="bad-md5")
    # S3's XML error shape, straight from the wire.
    r = requests.get(f"{endpoint}/s3/{sbucket}/missing", timeout=10)
    assert r.status_code == 404 and r.headers["Content-Type"] == "application/xml"
    root = ET.fromstring(r.content)
    assert root.tag == "Error" and root.find("Code").text == "NoSuchKey", r.text
    assert root.find("Resource").text == f"/{sbucket}/missing"
    # Unsupported subresources are a clear NotImplemented.
    r = requests.get(f"{endpoint}/s3/{sbucket}?acl", timeout=10)
    assert r.status_code == 501 and b"<Code>NotImplemented</Code>" in r.content


def test_no_redirects_any_node_serves(s3, cluster, sbucket):
    """Every node (proxy or any target) answers S3 itself: never a 3xx."""
    data = os.urandom(300_000)
    s3.put_object(Bucket=sbucket, Key="anywhere", Body=data)
    smap = cluster.smap()
    urls = [n["public_net"]["direct_url"] for n in list(smap["tmap"].values()) + list(smap["pmap"].values())]
    assert len(urls) == 4
    for u in urls:
        r = requests.get(f"{u}/s3/{sbucket}/anywhere", allow_redirects=False, timeout=30)
        assert r.status_code == 200 and r.content == data, u
        r = requests.put(f"{u}/s3/{sbucket}/from-{u[-5:]}", data=b"x" * 1000, allow_redirects=False, timeout=30)
        assert r.status_code == 200, (u, r.text)
    assert len(s3.list_objects_v2(Bucket=sbucket)["Contents"]) == 5


def test_listing_2500_keys_paging_delimiter_and_delete_objects(s3, sbucket):
    keys = [f"dir{i % 5}/sub{i % 3}/k{i:05d}" for i in range(2400)] + [f"top{i:03d}" for i in range(100)]
    with cf.ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda k: s3.put_object(Bucket=sbucket, Key=k, Body=k.encode()), keys))
    # v2, paged by 1000 through the paginator (continuation tokens).
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=sbucket, PaginationConfig={"PageSize": 1000}))
    listed = [o["Key"] for p in pages for o in p.get("Contents", [])]
    assert listed == sorted(keys) and len(pages) == 3
    assert all(o["Size"] == len(o["Key"]) for p in pages for o in p["Contents"])
    # Delimiter: the five dirs fold into common prefixes, then the top keys.
    top = s3.list_objects_v2(Bucket=sbucket, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == [f"dir{i}/" for i in range(5)]
    assert [o["Key"] for o in top["Contents"]] == [f"top{i:03d}" for i in range(100)]
    assert top["KeyCount"] == 105 and not top["IsTruncated"]
    # Delimiter + paging: small pages that end on a common prefix.
    seen_prefixes, seen_keys = [], []
    for p in s3.get_paginator("list_objects_v2").paginate(Bucket=sbucket, Delimiter="/",
                                                          PaginationConfig={"PageSize": 3}):
        seen_prefixes += [c["Prefix"] for c in p.get("CommonPrefixes", [])]
        seen_keys += [o["Key"] for o in p.get("Contents", [])]
    assert seen_prefixes == [f"dir{i}/" for i in range(5)] and len(seen_keys) == 100
    # Prefix + delimiter one level down.
    sub = s3.list_objects_v2(Bucket=sbucket, Prefix="dir2/", Delimiter="/")
    assert [p["Prefix"] for p in sub["CommonPrefixes"]] == ["dir2/sub0/", "dir2/sub1/", "dir2/sub2/"]
    # start-after and max-keys.
    r = s3.list_objects_v2(Bucket=sbucket, StartAfter="top097", MaxKeys=10)
    assert [o["Key"] for o in r["Contents"]] == ["top098", "top099"] and not r["IsTruncated"]
    r = s3.list_objects_v2(Bucket=sbucket, Prefix="dir1/", MaxKeys=7)
    assert r["IsTruncated"] and r["KeyCount"] == 7
    # v1 with markers.
    v1 = [o["Key"] for p in s3.get_paginator("list_objects").paginate(Bucket=sbucket, PaginationConfig={"PageSize": 700})
          for o in p.get("Contents", [])]
    assert v1 == sorted(keys)
    # Keys that need URL encoding survive boto3's encoding-type=url.
    odd = "odd key+with%chars&<>.txt"
    s3.put_object(Bucket=sbucket, Key=odd, Body=b"1")
    assert odd in [o["Key"] for o in s3.list_objects_v2(Bucket=sbucket, Prefix="odd")["Contents"]]
    s3.delete_object(Bucket=sbucket, Key=odd)
    # DeleteObjects, 1000 at a time; then the bucket is empty.
    for i in range(0, len(keys), 1000):
        res = s3.delete_objects(Bucket=sbucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})
        assert len(res["Deleted"]) == len(keys[i:i + 1000]) and not res.get("Errors")
    assert s3.list_objects_v2(Bucket=sbucket)["KeyCount"] == 0
    s3.delete_bucket(Bucket=sbucket)
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=sbucket)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_multipart_upload(s3, client, sbucket, tmp_path):
    parts = [os.urandom(5 * MiB) for _ in range(3)]
    up = s3.create_multipart_upload(Bucket=sbucket, Key="mp/big.bin", ContentType="video/x-test")
    uid = up["UploadId"]
    etags = []
    for i, p in enumerate(parts, 1):
        r = s3.upload_part(Bucket=sbucket, Key="mp/big.bin", UploadId=uid, PartNumber=i, Body=p)
        assert r["ETag"] == f'"{hashlib.md5(p).hexdigest()}"'
        etags.append(r["ETag"])
    listed = s3.list_parts(Bucket=sbucket, Key="mp/big.bin", UploadId=uid)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2, 3]
    assert [p["Size"] for p in listed["Parts"]] == [5 * MiB] * 3
    ups = s3.list_multipart_uploads(Bucket=sbucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in ups] == [("mp/big.bin", uid)]
    # Not visible before Complete.
    with pytest.raises(ClientError):
        s3.head_object(Bucket=sbucket, Key="mp/big.bin")
    done = s3.complete_multipart_upload(
        Bucket=sbucket, Key="mp/big.bin", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": i, "ETag": e} for i, e in enumerate(etags, 1)]})
    want = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-3"
    assert done["ETag"] == f'"{want}"'
    whole = b"".join(parts)
    got = s3.get_object(Bucket=sbucket, Key="mp/big.bin")
    assert got["ETag"] == f'"{want}"' and got["ContentType"] == "video/x-test"
    assert got["Body"].read() == whole
    assert client.bucket(sbucket).object("mp/big.bin").get_reader().read_all() == whole
    assert s3.list_multipart_uploads(Bucket=sbucket).get("Uploads", []) == []
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=sbucket, Key="mp/big.bin", UploadId=uid)
    assert code_of(e.value) == "NoSuchUpload"

    # UploadPartCopy (ranges of the object just written), bad part lists, abort.
    up2 = s3.create_multipart_upload(Bucket=sbucket, Key="mp/copy.bin")["UploadId"]
    c1 = s3.upload_part_copy(Bucket=sbucket, Key="mp/copy.bin", UploadId=up2, PartNumber=1,
                             CopySource={"Bucket": sbucket, "Key": "mp/big.bin"},
                             CopySourceRange=f"bytes=0-{5 * MiB - 1}")
    c2 = s3.upload_part(Bucket=sbucket, Key="mp/copy.bin", UploadId=up2, PartNumber=2, Body=b"tail")
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=sbucket, Key="mp/copy.bin", UploadId=up2, MultipartUpload={
            "Parts": [{"PartNumber": 2, "ETag": c2["ETag"]}, {"PartNumber": 1, "ETag": c1["CopyPartResult"]["ETag"]}]})
    assert code_of(e.value) == "InvalidPartOrder"
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=sbucket, Key="mp/copy.bin", UploadId=up2, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": '"0000"'}]})
    assert code_of(e.value) == "InvalidPart"
    s3.complete_multipart_upload(Bucket=sbucket, Key="mp/copy.bin", UploadId=up2, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": c1["CopyPartResult"]["ETag"]}, {"PartNumber": 2, "ETag": c2["ETag"]}]})
    assert s3.get_object(Bucket=sbucket, Key="mp/copy.bin")["Body"].read() == parts[0] + b"tail"
    up3 = s3.create_multipart_upload(Bucket=sbucket, Key="mp/aborted")["UploadId"]
    s3.upload_part(Bucket=sbucket, Key="mp/aborted", UploadId=up3, PartNumber=1, Body=b"x" * 1000)
    s3.abort_multipart_upload(Bucket=sbucket, Key="mp/aborted", UploadId=up3)
    with pytest.raises(ClientError) as e:
        s3.upload_part(Bucket=sbucket, Key="mp/aborted", UploadId=up3, PartNumber=2, Body=b"y")
    assert code_of(e.value) == "NoSuchUpload"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=sbucket, Key="mp/aborted")

    # boto3's managed transfer (multipart above the threshold, parallel parts).
    from boto3.s3.transfer import TransferConfig
    src = tmp_path / "up.bin"
    src.write_bytes(os.urandom(17 * MiB + 3))
    cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4)
    s3.upload_file(str(src), sbucket, "mp/managed.bin", Config=cfg)
    dst = tmp_path / "down.bin"
    s3.download_file(sbucket, "mp/managed.bin", str(dst), Config=cfg)
    assert dst.read_bytes() == src.read_bytes()
    assert s3.head_object(Bucket=sbucket, Key="mp/managed.bin")["ETag"].endswith('-4"')


ETL_CODE = """
def transform(data):
    return data.upper()
"""


def test_etl_through_s3(s3, endpoint, sbucket):
    name = "s3up" + unique_bucket_name("")[-6:].lower().replace("-", "")
    name2 = "s3rv" + unique_bucket_name("")[-6:].lower().replace("-", "")
    import base64
    msg = {"name": name, "runtime": "python3", "communication": "hpush://", "init_timeout": "2m",
           "obj_timeout": "30s", "funcs": {"transform": "transform"},
           "code": base64.b64encode(ETL_CODE.encode()).decode(), "dependencies": "", "argument": ""}
    r = requests.put(f"{endpoint}/v1/etl", json=msg, timeout=180)
    assert r.status_code == 200, r.text
    try:
        s3.put_object(Bucket=sbucket, Key="t.txt", Body=b"hello s3 etl")
        # Header, added by an unmodified boto3 through its event hooks.
        c = s3_client(endpoint)

        def add_etl(request, **_):
            request.headers["x-ais-etl-name"] = name

        c.meta.events.register("before-sign.s3.GetObject", add_etl)
        assert c.get_object(Bucket=sbucket, Key="t.txt")["Body"].read() == b"HELLO S3 ETL"
        # Query parameter (any HTTP client).
        r = requests.get(f"{endpoint}/s3/{sbucket}/t.txt?etl_name={name}", allow_redirects=False, timeout=30)
        assert r.status_code == 200 and r.content == b"HELLO S3 ETL", r.text
        # Plain GET is untouched; an unknown ETL is an S3 error.
        assert s3.get_object(Bucket=sbucket, Key="t.txt")["Body"].read() == b"hello s3 etl"
        r = requests.get(f"{endpoint}/s3/{sbucket}/t.txt?etl_name=nope", timeout=30)
        assert r.status_code == 404 and b"<Code>" in r.content, r.text
        # A pipeline: the second ETL after the first, on the target
        # (query parameter or header); never without a first one.
        msg2 = dict(msg, name=name2, code=base64.b64encode(b"def transform(data):\n    return data[::-1]\n").decode())
        r = requests.put(f"{endpoint}/v1/etl", json=msg2, timeout=180)
        assert r.status_code == 200, r.text
        r = requests.get(f"{endpoint}/s3/{sbucket}/t.txt?etl_name={name}&etl_pipeline={name2}", timeout=30)
        assert r.status_code == 200 and r.content == b"LTE 3S OLLEH", r.text

        def add_pipeline(request, **_):
            request.headers["x-ais-etl-pipeline"] = name2

        c.meta.events.register("before-sign.s3.GetObject", add_pipeline)
        assert c.get_object(Bucket=sbucket, Key="t.txt")["Body"].read() == b"LTE 3S OLLEH"
        r = requests.get(f"{endpoint}/s3/{sbucket}/t.txt?etl_pipeline={name2}", timeout=30)
        assert r.status_code == 400 and b"etl_pipeline" in r.content, r.text
    finally:
        requests.delete(f"{endpoint}/v1/etl/{name}", timeout=60)
        requests.delete(f"{endpoint}/v1/etl/{name2}", timeout=60)


def test_s3fs(endpoint, sbucket):
    import s3fs

    fs = s3fs.S3FileSystem(key="k", secret="s", client_kwargs={"endpoint_url": f"{endpoint}/s3", "region_name": "us-east-1"},
                           config_kwargs={"s3": {"addressing_style": "path"}}, use_listings_cache=False)
    blobs = {f"{sbucket}/fs/a/{i}.bin": os.urandom(1000 + i) for i in range(5)}
    for path, data in blobs.items():
        with fs.open(path, "wb") as f:
            f.write(data)
    big = os.urandom(12 * MiB)  # written by s3fs as a multipart upload
    with fs.open(f"{sbucket}/fs/big.bin", "wb", block_size=5 * MiB) as f:
        f.write(big)
    found = fs.find(f"{sbucket}/fs")
    assert sorted(found) == sorted(list(blobs) + [f"{sbucket}/fs/big.bin"])
    for path, data in blobs.items():
        with fs.open(path, "rb") as f:
            assert f.read() == data
    with fs.open(f"{sbucket}/fs/big.bin", "rb", block_size=MiB) as f:
        f.seek(7 * MiB)
        assert f.read(MiB) == big[7 * MiB:8 * MiB]
    assert fs.cat(f"{sbucket}/fs/big.bin") == big
    assert fs.ls(f"{sbucket}/fs", detail=False) == [f"{sbucket}/fs/a", f"{sbucket}/fs/big.bin"]
    assert fs.info(f"{sbucket}/fs/a/3.bin")["size"] == 1003
    fs.rm(f"{sbucket}/fs", recursive=True)
    assert fs.find(f"{sbucket}/fs") == []


def test_s3torchconnector_datasets(endpoint, sbucket, s3, monkeypatch):
    from s3torchconnector import S3ClientConfig, S3IterableDataset, S3MapDataset

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    objs = {f"ds/sample-{i:03d}.bin": os.urandom(i * 997 + (9 * MiB if i == 3 else 1)) for i in range(40)}
    with cf.ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda kv: s3.put_object(Bucket=sbucket, Key=kv[0], Body=kv[1]), objs.items()))
    cfg = S3ClientConfig(force_path_style=True)
    uri = f"s3://{sbucket}/ds/"
    mds = S3MapDataset.from_prefix(uri, region="us-east-1", endpoint=f"{endpoint}/s3", s3client_config=cfg)
    assert len(mds) == len(objs)
    got = {mds[i].key: mds[i].read() for i in range(len(mds))}
    assert got == objs
    ids = S3IterableDataset.from_prefix(uri, region="us-east-1", endpoint=f"{endpoint}/s3", s3client_config=cfg)
    got = {o.key: o.read() for o in ids}
    assert got == objs


def test_aws_cli_sync(endpoint, sbucket, tmp_path):
    aws = shutil.which("aws", path=os.path.dirname(sys.executable))
    assert aws, "awscli is in python/requirements-test.txt"
    src = tmp_path / "src"
    for i in range(12):
        p = src / f"d{i % 3}" / f"f{i}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(1000 * i + 1))
    (src / "large.bin").write_bytes(os.urandom(9 * MiB))  # a multipart upload
    env = dict(os.environ, AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s", AWS_DEFAULT_REGION="us-east-1",
               AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=str(tmp_path / "cfg"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "creds"))
    (tmp_path / "cfg").write_text("[default]\ns3 =\n    addressing_style = path\n    multipart_threshold = 8MB\n")
    base = [aws, "--endpoint-url", f"{endpoint}/s3", "s3"]

    def run(*args):
        p = subprocess.run(base + list(args), env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, f"{args}: {p.stdout}\n{p.stderr}"
        return p.stdout

    out = run("sync", str(src), f"s3://{sbucket}/sync")
    assert out.count("upload:") == 13, out
    dst = tmp_path / "dst"
    out = run("sync", f"s3://{sbucket}/sync", str(dst))
    assert out.count("download:") == 13, out
    for p in src.rglob("*"):
        if p.is_file():
            assert (dst / p.relative_to(src)).read_bytes() == p.read_bytes(), p
    listing = run("ls", f"s3://{sbucket}/sync/", "--recursive")
    assert len(listing.strip().splitlines()) == 13
    run("rm", f"s3://{sbucket}/sync", "--recursive")
    assert run("ls", f"s3://{sbucket}/", "--recursive").strip() == ""


def test_ten_thousand_parts_complete_and_small_parts_are_refused_by_default(s3, sbucket, tmp_path):
    """S3's limit of 10,000 parts, all stored and completed byte-exact (part
    sizes checked against AIS_S3_MIN_PART_SIZE, here 0); the default
    cluster keeps S3's 5 MiB minimum for every part but the last."""
    from concurrent.futures import ThreadPoolExecutor

    from ais_cluster import Cluster

    # Default minimum: a small first part is EntityTooSmall.
    uid = s3.create_multipart_upload(Bucket=sbucket, Key="small")["UploadId"]
    e1 = s3.upload_part(Bucket=sbucket, Key="small", UploadId=uid, PartNumber=1, Body=b"a")["ETag"]
    e2 = s3.upload_part(Bucket=sbucket, Key="small", UploadId=uid, PartNumber=2, Body=b"b")["ETag"]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=sbucket, Key="small", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert code_of(e.value) == "EntityTooSmall"
    s3.abort_multipart_upload(Bucket=sbucket, Key="small", UploadId=uid)

    c = Cluster(base_dir=tmp_path / "mpu", num_targets=1, env={"AIS_S3_MIN_PART_SIZE": "0"})
    c.start()
    try:
        cl = s3_client(c.url)
        cl.create_bucket(Bucket="many")
        uid = cl.create_multipart_upload(Bucket="many", Key="k")["UploadId"]
        n = 10_000
        body = {i: b"%05d|" % i for i in range(1, n + 1)}

        def put(i: int) -> str:
            return cl.upload_part(Bucket="many", Key="k", UploadId=uid, PartNumber=i, Body=body[i])["ETag"]

        with ThreadPoolExecutor(8) as ex:
            etags = list(ex.map(put, range(1, n + 1)))
        done = cl.complete_multipart_upload(Bucket="many", Key="k", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": i, "ETag": e} for i, e in enumerate(etags, 1)]})
        assert done["ETag"].endswith(f'-{n}"'), done["ETag"]
        got = cl.get_object(Bucket="many", Key="k")["Body"].read()
        assert got == b"".join(body[i] for i in range(1, n + 1))
        with pytest.raises(ClientError) as e:
            cl.upload_part(Bucket="many", Key="k2", UploadId=uid, PartNumber=n + 1, Body=b"x")
        assert code_of(e.value) in ("InvalidArgument", "NoSuchUpload")
    finally:
        c.stop()
