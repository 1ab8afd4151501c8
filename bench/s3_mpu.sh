#!/usr/bin/env bash
# S3 multipart: is UploadPart's cost independent of how many parts the upload
# already has? One boto3 client uploads PARTS tiny parts to one upload, one at
# a time (so the latency is the server's per-part work), on a release cluster
# (1 proxy + 1 target, loopback); prints the median UploadPart latency of
# parts 1-200 and of the last 200, their ratio, and the Complete time
# (bench/out/s3_mpu.md). Goal: ratio <= 1.5.
#   PARTS=1200 ./bench/s3_mpu.sh
source "$(dirname "$0")/lib.sh"
bench_setup
AIS_S3_MIN_PART_SIZE=0 start_cluster 1
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); cores: $(nproc)"
.venv/bin/python - "$EP" "${PARTS:-1200}" <<'PY' | tee "$OUT/s3_mpu.md"
import statistics, sys, time
import boto3
from botocore.config import Config

ep, n = sys.argv[1], int(sys.argv[2])
s3 = boto3.client("s3", endpoint_url=f"{ep}/s3", aws_access_key_id="k", aws_secret_access_key="s",
                  region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))
s3.create_bucket(Bucket="mpu")
uid = s3.create_multipart_upload(Bucket="mpu", Key="k")["UploadId"]
lat, etags = [], []
for i in range(1, n + 1):
    t0 = time.perf_counter()
    etags.append(s3.upload_part(Bucket="mpu", Key="k", UploadId=uid, PartNumber=i, Body=b"%06d" % i)["ETag"])
    lat.append(time.perf_counter() - t0)
t0 = time.perf_counter()
s3.complete_multipart_upload(Bucket="mpu", Key="k", UploadId=uid, MultipartUpload={
    "Parts": [{"PartNumber": i, "ETag": e} for i, e in enumerate(etags, 1)]})
complete = time.perf_counter() - t0
body = s3.get_object(Bucket="mpu", Key="k")["Body"].read()
assert body == b"".join(b"%06d" % i for i in range(1, n + 1)), "read back differs"
first, last = statistics.median(lat[:200]), statistics.median(lat[-200:])
print(f"| parts | median UploadPart, parts 1-200 | median UploadPart, parts {n - 199}-{n} | ratio | Complete |")
print("|---|---|---|---|---|")
print(f"| {n} | {first * 1e3:.2f} ms | {last * 1e3:.2f} ms | {last / first:.2f}x | {complete * 1e3:.0f} ms |")
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
