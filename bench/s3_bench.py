"""boto3 GETs of 1 MiB objects through the S3 front door (/s3) against the
native API, from the same process, with the same objects and concurrency,
modes interleaved round by round (median of the rounds is reported).

Modes:
  s3-proxy   boto3 get_object, endpoint = the proxy's /s3 (the proxy streams
             from the owner target: no redirect)
  s3-target  boto3 get_object, endpoint = one target's /s3 (it streams from
             the owner, or serves its own objects)
  native     official aistore SDK get_reader().read_all() at the proxy
             (301 to the owner target, followed by requests)
  native-raw a bare requests.Session GET /v1/objects/B/O at the proxy,
             following the 301 (the cheapest native client in Python)
The ratio column is against `native` (the SDK).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import statistics
import threading
import time

import boto3
import requests
from aistore.sdk import Client
from botocore.config import Config

MiB = 1 << 20


def s3(url: str, conc: int):
    return boto3.client(
        "s3", endpoint_url=f"{url}/s3", aws_access_key_id="k", aws_secret_access_key="s",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=max(conc, 10),
                      retries={"max_attempts": 1}))


def run(fn, names, conc: int, seconds: float) -> float:
    """GETs per second of `fn(name)` with `conc` threads for `seconds`."""
    stop = time.monotonic() + seconds
    counts = [0] * conc
    lock = threading.Lock()
    nxt = [0]

    def worker(i: int) -> None:
        while time.monotonic() < stop:
            with lock:
                n = names[nxt[0] % len(names)]
                nxt[0] += 1
            data = fn(n)
            assert len(data) == MiB
            counts[i] += 1

    t0 = time.monotonic()
    with cf.ThreadPoolExecutor(conc) as ex:
        list(ex.map(worker, range(conc)))
    return sum(counts) / (time.monotonic() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--objects", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conc", default="1,8")
    a = ap.parse_args()
    ep = a.endpoint
    client = Client(ep)
    bucket = "s3bench"
    client.bucket(bucket).create(exist_ok=True)
    smap = requests.get(f"{ep}/v1/daemon?what=smap", timeout=10).json()
    target_url = sorted(t["public_net"]["direct_url"] for t in smap["tmap"].values())[0]
    names = [f"obj-{i:05d}" for i in range(a.objects)]
    up = s3(ep, 8)
    payload = os.urandom(MiB)
    with cf.ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda n: up.put_object(Bucket=bucket, Key=n, Body=payload), names))
    print(f"# boto3 1 MiB GET: /s3 vs native API ({a.objects} objects, {a.seconds:.0f} s per run, "
          f"{a.rounds} rounds interleaved, median)\n")
    print("| concurrency | mode | GET/s | MiB/s | vs native |")
    print("|---|---|---|---|---|")
    for conc in [int(c) for c in a.conc.split(",")]:
        c_proxy, c_target = s3(ep, conc), s3(target_url, conc)
        sdk = Client(ep, max_pool_size=max(conc, 10))
        b = sdk.bucket(bucket)
        sess = requests.Session()
        sess.mount("http://", requests.adapters.HTTPAdapter(pool_connections=8, pool_maxsize=max(conc, 10)))
        modes = {
            "s3-proxy": lambda n: c_proxy.get_object(Bucket=bucket, Key=n)["Body"].read(),
            "s3-target": lambda n: c_target.get_object(Bucket=bucket, Key=n)["Body"].read(),
            "native": lambda n: b.object(n).get_reader().read_all(),
            "native-raw": lambda n: sess.get(f"{ep}/v1/objects/{bucket}/{n}", timeout=60).content,
        }
        for fn in modes.values():  # warm-up: connections, page cache
            run(fn, names, conc, 1.0)
        res = {m: [] for m in modes}
        for _ in range(a.rounds):
            for m, fn in modes.items():
                res[m].append(run(fn, names, conc, a.seconds))
        native = statistics.median(res["native"])
        for m in modes:
            v = statistics.median(res[m])
            print(f"| {conc} | {m} | {v:.0f} | {v:.0f} | {v / native:.2f}x |")
    client.bucket(bucket).delete(missing_ok=True)


if __name__ == "__main__":
    main()
