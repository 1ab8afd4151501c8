"""S3 with keys configured (``AIS_S3_KEYS``): every request must carry a
valid AWS Signature V4 — header-signed (boto3, s3fs, the CRT behind
``s3torchconnector``), presigned URLs, and ``aws-chunked`` streaming bodies
whose every chunk is signed. A bad signature is a 403 with S3's XML error
and stores nothing."""

from __future__ import annotations

import hashlib
import hmac
import os
import time
import xml.etree.ElementTree as ET
from typing import Iterator

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from ais_cluster import Cluster, unique_bucket_name
from test_s3 import s3_client

AK, SK = "AKIDAISTESTKEY", "secret/with+chars=="


@pytest.fixture(scope="module")
def keyed(tmp_path_factory) -> Iterator[str]:
    c = Cluster(base_dir=tmp_path_factory.mktemp("s3-keyed"), num_targets=2,
                env={"AIS_S3_KEYS": f"other:key,{AK}:{SK}"})
    c.start()
    try:
        yield c.url
    finally:
        c.stop()


@pytest.fixture(scope="module")
def s3(keyed):
    return s3_client(keyed, AK, SK)


@pytest.fixture(scope="module")
def bucket(s3) -> str:
    name = unique_bucket_name("s3auth")
    s3.create_bucket(Bucket=name)
    return name


def xml_code(r: requests.Response) -> str:
    return ET.fromstring(r.content).find("Code").text


def test_signed_requests_work(s3, bucket):
    data = os.urandom(2 << 20)
    s3.put_object(Bucket=bucket, Key="dir/a b+c.bin", Body=data, Metadata={"k": "v"})
    assert s3.get_object(Bucket=bucket, Key="dir/a b+c.bin", Range="bytes=10-19")["Body"].read() == data[10:20]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="dir/", Delimiter="/")["Contents"]]
    assert keys == ["dir/a b+c.bin"]
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=1, Body=data * 3)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=2, Body=b"end")["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == data * 3 + b"end"


def test_bad_signatures_are_403_with_s3_xml(keyed, bucket):
    bad = s3_client(keyed, AK, "wrong-secret")
    with pytest.raises(ClientError) as e:
        bad.put_object(Bucket=bucket, Key="nope", Body=b"x")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    with pytest.raises(ClientError) as e:
        s3_client(keyed, "unknown", SK).list_buckets()
    assert e.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    # Anonymous and on the wire: S3's XML error.
    r = requests.get(f"{keyed}/s3/{bucket}/dir", timeout=10)
    assert r.status_code == 403 and r.headers["Content-Type"] == "application/xml"
    assert xml_code(r) == "AccessDenied"
    now = time.gmtime()
    r = requests.get(f"{keyed}/s3/{bucket}", timeout=10,
                     headers={"Authorization": "AWS4-HMAC-SHA256 Credential=" + AK + time.strftime("/%Y%m%d", now) +
                              "/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
                              "x-amz-date": time.strftime("%Y%m%dT%H%M%SZ", now)})
    assert r.status_code == 403 and xml_code(r) == "SignatureDoesNotMatch"
    r = requests.get(f"{keyed}/s3/{bucket}", timeout=10,
                     headers={"Authorization": "AWS4-HMAC-SHA256 Credential=" + AK +
                              "/20200101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
                              "x-amz-date": "20200101T000000Z"})
    assert r.status_code == 403 and xml_code(r) == "RequestTimeTooSkewed"
    with pytest.raises(ClientError):
        s3_client(keyed, AK, SK).head_object(Bucket=bucket, Key="nope")


def test_presigned_urls(keyed, s3, bucket):
    s3.put_object(Bucket=bucket, Key="p", Body=b"presigned")
    # boto3 presigns with Signature Version 2 unless told otherwise: refused, clearly.
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=300)
    r = requests.get(url, timeout=10)
    assert r.status_code == 403 and xml_code(r) == "AccessDenied" and "Version 2" in r.text, r.text
    v4 = boto3.client("s3", endpoint_url=f"{keyed}/s3", aws_access_key_id=AK, aws_secret_access_key=SK,
                      region_name="us-east-1", config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    url = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=300)
    assert "X-Amz-Signature=" in url
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.content == b"presigned", r.text
    r = requests.get(url.replace("X-Amz-Signature=", "X-Amz-Signature=0"), timeout=10)
    assert r.status_code == 403 and xml_code(r) == "SignatureDoesNotMatch"
    # A presigned plain GET cannot be turned into an ETL run: our headers
    # must be signed like x-amz-* ones.
    for h in ("x-ais-etl-name", "x-ais-etl-pipeline", "x-ais-etl-args"):
        r = requests.get(url, headers={h: "some-etl"}, timeout=10)
        assert r.status_code == 403 and xml_code(r) == "AccessDenied" and h in r.text, (h, r.text)
    # Expired: valid for one second.
    short = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=1)
    time.sleep(2.5)
    r = requests.get(short, timeout=10)
    assert r.status_code == 403 and "expired" in r.text, r.text


def _streaming_put(url: str, chunks, tamper: bool = False) -> requests.Response:
    """A ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` PUT, signed chunk by chunk as AWS documents."""
    total = sum(len(c) for c in chunks)
    req = AWSRequest(method="PUT", url=url, data=b"", headers={
        "X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "x-amz-decoded-content-length": str(total),
        "Content-Encoding": "aws-chunked",
    })
    SigV4Auth(Credentials(AK, SK), "s3", "us-east-1").add_auth(req)
    prev = req.headers["Authorization"].rsplit("Signature=", 1)[1]
    amz_date = req.headers["X-Amz-Date"]
    day = amz_date[:8]
    scope = f"{day}/us-east-1/s3/aws4_request"
    key = f"AWS4{SK}".encode()
    for part in (day, "us-east-1", "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    empty = hashlib.sha256(b"").hexdigest()
    body = b""
    for data in list(chunks) + [b""]:
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, empty, hashlib.sha256(data).hexdigest()])
        sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        sent = data[:-1] + bytes([data[-1] ^ 1]) if tamper and data and data is chunks[-1] else data
        body += f"{len(data):x};chunk-signature={sig}\r\n".encode() + sent + b"\r\n"
        prev = sig
    return requests.put(url, data=body, headers=dict(req.headers.items()), timeout=30)


def test_streaming_signed_body(keyed, s3, bucket):
    chunks = [os.urandom(65536), os.urandom(65536), os.urandom(1234)]
    r = _streaming_put(f"{keyed}/s3/{bucket}/streamed", chunks)
    assert r.status_code == 200, r.text
    assert s3.get_object(Bucket=bucket, Key="streamed")["Body"].read() == b"".join(chunks)
    # One flipped byte in the last chunk: its signature fails, nothing is stored.
    r = _streaming_put(f"{keyed}/s3/{bucket}/tampered", chunks, tamper=True)
    assert r.status_code == 403 and xml_code(r) == "SignatureDoesNotMatch", r.text
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="tampered")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_signed_s3fs_and_crt_clients(keyed, s3, bucket, monkeypatch):
    import s3fs
    from s3torchconnector import S3ClientConfig, S3MapDataset

    fs = s3fs.S3FileSystem(key=AK, secret=SK, client_kwargs={"endpoint_url": f"{keyed}/s3", "region_name": "us-east-1"},
                           config_kwargs={"s3": {"addressing_style": "path"}})
    data = {f"{bucket}/crt/{i}": os.urandom(5000 + i) for i in range(6)}
    for p, d in data.items():
        fs.pipe(p, d)
    assert sorted(fs.find(f"{bucket}/crt")) == sorted(data)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AK)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SK)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    ds = S3MapDataset.from_prefix(f"s3://{bucket}/crt/", region="us-east-1", endpoint=f"{keyed}/s3",
                                  s3client_config=S3ClientConfig(force_path_style=True))
    assert {f"{bucket}/{ds[i].key}": ds[i].read() for i in range(len(ds))} == data
