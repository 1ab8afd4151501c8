"""Offline ETL / copy jobs vs client-side pipelines over the REST API."""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import multiprocessing
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import requests

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from etl_bench import RESIZE_FN as RESIZE, make_jpeg  # noqa: E402

MD5 = "import hashlib\ndef transform(data):\n    return hashlib.md5(data).hexdigest().encode()\n"


def local_md5(data: bytes) -> bytes:
    return hashlib.md5(data).hexdigest().encode()


def local_resize(data: bytes) -> bytes:
    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("RGB").resize((224, 224))
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    return buf.getvalue()


_S = None


def _session() -> requests.Session:
    global _S
    if _S is None:
        _S = requests.Session()
    return _S


def client_one(args) -> int:
    """GET (through the proxy), transform locally, PUT: one object."""
    ep, src, dst, name, fn = args
    s = _session()
    data = s.get(f"{ep}/v1/objects/{src}/{name}").content
    out = {"md5": local_md5, "resize": local_resize, "copy": lambda d: d}[fn](data)
    r = s.put(f"{ep}/v1/objects/{dst}/{name}", data=out)
    r.raise_for_status()
    return len(out)


def client_pipeline(ep: str, src: str, dst: str, fn: str, procs: int) -> float:
    requests.post(f"{ep}/v1/buckets/{dst}", json={"action": "create-bck"})
    t = time.perf_counter()
    names, token, uuid = [], "", ""
    while True:
        page = requests.get(f"{ep}/v1/buckets/{src}", json={"action": "list", "value": {"props": "name", "continuation_token": token, "uuid": uuid}}).json()
        names += [e["name"] for e in page["entries"]]
        token, uuid = page["continuation_token"], page["uuid"]
        if not token:
            break
    with multiprocessing.Pool(procs) as pool:
        pool.map(client_one, [(ep, src, dst, n, fn) for n in names], chunksize=16)
    return time.perf_counter() - t


def job(ep: str, src: str, dst: str, action: str, value: dict) -> tuple[float, float]:
    t = time.perf_counter()
    r = requests.post(f"{ep}/v1/buckets/{src}", params={"bck_to": f"ais/@#/{dst}/"}, json={"action": action, "name": "", "value": value})
    assert r.status_code == 200, r.text
    started = time.perf_counter() - t
    jid = r.text
    while True:
        s = requests.get(f"{ep}/v1/cluster", params={"what": "status"}, json={"ID": jid}).json()
        if s["end_time"]:
            assert not s["err"], s
            return time.perf_counter() - t, started
        time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    ep = a.endpoint
    n = 1000 if a.quick else 10000
    pool = 2
    requests.post(f"{ep}/v1/buckets/src", json={"action": "create-bck"})
    blobs = [make_jpeg(64, i) for i in range(50)]
    s = requests.Session()
    with ThreadPoolExecutor(16) as ex:
        list(ex.map(lambda i: s.put(f"{ep}/v1/objects/src/img-{i:05d}.jpg", data=blobs[i % len(blobs)]).raise_for_status(), range(n)))
    for name, code in (("md5-etl", MD5), ("resize-etl", RESIZE)):
        body = {"name": name, "runtime": "python3", "communication": "hpush://", "code": base64.b64encode(code.encode()).decode(), "pool_size": pool, "init_timeout": "5m"}
        r = requests.put(f"{ep}/v1/etl", json=body)
        assert r.status_code == 200, r.text
    workers = 3 * pool
    # Idle-cluster job start latency: a dry run on a small prefix.
    lat = []
    for i in range(5):
        _, started = job(ep, "src", "src", "copy-bck", {"prefix": "img-0000", "dry_run": True})
        lat.append(started)
    rows = []
    for fn, etl in (("md5", "md5-etl"), ("resize", "resize-etl")):
        off, _ = job(ep, "src", f"off-{fn}", "etl-bck", {"id": etl, "num-workers": workers})
        cli = client_pipeline(ep, "src", f"cli-{fn}", fn, workers)
        rows.append((f"{fn} transform, bucket to bucket", off, cli))
    off, _ = job(ep, "src", "off-copy", "copy-bck", {"num-workers": 16})
    cli = client_pipeline(ep, "src", "cli-copy", "copy", 16)
    rows.append(("bucket copy (no transform)", off, cli))
    print(f"{n} x 64 KiB JPEG objects; cluster 1 proxy + 3 targets on {multiprocessing.cpu_count()} cores; "
          f"ETL pool {pool} workers per target; client pipelines: list + GET + transform + PUT in {workers} processes (16 for copy).\n")
    print("| job | offline job | client-side pipeline | speed-up | goal |")
    print("|---|---|---|---|---|")
    for what, off, cli in rows:
        print(f"| {what} | {n / off:.0f} obj/s ({off:.1f} s) | {n / cli:.0f} obj/s ({cli:.1f} s) | **{cli / off:.1f}x** | >= 3x |")
    print(f"\nJob start latency on an idle cluster (POST until job id returned): median {sorted(lat)[2] * 1e3:.1f} ms, max {max(lat) * 1e3:.1f} ms (goal < 1 s).")


if __name__ == "__main__":
    main()
