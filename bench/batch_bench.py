"""Get-Batch vs per-object GETs, same run, same client (see bench/batch.sh)."""

from __future__ import annotations

import argparse
import base64
import io
import os
import statistics
import subprocess
import tarfile
import threading
import time

import requests


def args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--tpids", required=True)
    ap.add_argument("--quick", action="store_true")
    return ap.parse_args()


def per_object(s: requests.Session, ep: str, bucket: str, names: list[str], params: dict) -> float:
    t = time.perf_counter()
    for n in names:
        r = s.get(f"{ep}/v1/objects/{bucket}/{n}", params=params)
        assert r.status_code == 200 and len(r.content) > 0, r.text
    return len(names) / (time.perf_counter() - t)


def batched(s: requests.Session, ep: str, bucket: str, names: list[str], size: int, params: dict) -> float:
    t = time.perf_counter()
    got = 0
    for i in range(0, len(names), size):
        chunk = names[i : i + size]
        r = s.get(f"{ep}/v1/ml/moss/{bucket}", params=params, json={"in": [{"objname": n} for n in chunk]}, stream=True)
        assert r.status_code == 200, r.text
        with tarfile.open(fileobj=r.raw, mode="r|*") as tf:
            for m in tf:
                data = tf.extractfile(m).read()
                assert data
                got += 1
    assert got == len(names), (got, len(names))
    return len(names) / (time.perf_counter() - t)


def rss_kib(pid: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    a = args()
    ep = a.endpoint.rstrip("/")
    n = 2000 if a.quick else 10_000
    nper = 1000 if a.quick else 3000
    s = requests.Session()
    r = s.post(f"{ep}/v1/buckets/b16k", json={"action": "create-bck"})
    assert r.status_code == 200, r.text
    subprocess.run(
        [f"{a.bin}/aisloader", "--endpoint", ep, "--bucket", "b16k", "--mode", "put", "--num", str(n), "--size", "16KiB", "--conc", "32", "--prefix", "obj-"],
        check=True,
        capture_output=True,
    )
    names = [f"obj-{i}" for i in range(n)]
    # Warm both paths (connections, page cache).
    per_object(s, ep, "b16k", names[:200], {})
    batched(s, ep, "b16k", names[:512], 256, {})
    plain_rate = per_object(s, ep, "b16k", names[:nper], {})
    # Peak RSS of the targets while the whole set streams in batches.
    pids = a.tpids.split()
    peak = {p: rss_kib(p) for p in pids}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for p in pids:
                peak[p] = max(peak[p], rss_kib(p))
            time.sleep(0.02)

    th = threading.Thread(target=sample)
    th.start()
    batch_rate = batched(s, ep, "b16k", names, 256, {})
    # One 10,000-item batch, for the RSS figure.
    t = time.perf_counter()
    one_batch = batched(s, ep, "b16k", names, len(names), {})
    stop.set()
    th.join()

    # Identity ETL.
    code = "def transform(data):\n    return data\n"
    msg = {
        "name": "identity",
        "runtime": "python3",
        "communication": "hpush://",
        "code": base64.b64encode(code.encode()).decode(),
        "dependencies": "",
        "init_timeout": "5m",
        "obj_timeout": "1m",
    }
    r = s.put(f"{ep}/v1/etl", json=msg)
    assert r.status_code == 200, r.text
    etl = {"etl_name": "identity"}
    per_object(s, ep, "b16k", names[:200], etl)
    etl_plain = per_object(s, ep, "b16k", names[:nper], etl)
    etl_batch = batched(s, ep, "b16k", names, 256, etl)
    s.delete(f"{ep}/v1/etl/identity")

    # Last member of a 1 GiB tar (1024 x 1 MiB members).
    members = 256 if a.quick else 1024
    tar_path = os.path.join(a.work, "big.tar")
    block = os.urandom(1 << 20)
    sample = os.urandom(16 << 10)
    with tarfile.open(tar_path, "w") as tf:
        for i in range(members):
            # 1 MiB members, the last one a 16 KiB sample.
            data = sample if i == members - 1 else block
            info = tarfile.TarInfo(f"m/{i:05d}.bin")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    r = s.post(f"{ep}/v1/buckets/shards", json={"action": "create-bck"})
    with open(tar_path, "rb") as f:
        r = s.put(f"{ep}/v1/objects/shards/big.tar", data=f)
    assert r.status_code == 200, r.text
    os.remove(tar_path)
    last = f"m/{members - 1:05d}.bin"
    lat = []
    for i in range(51):
        t = time.perf_counter()
        r = s.get(f"{ep}/v1/objects/shards/big.tar", params={"archpath": last})
        dt = time.perf_counter() - t
        assert r.status_code == 200 and r.content == sample, r.text[:200]
        if i > 0:  # the first read builds the member index
            lat.append(dt * 1000)
    first_ms = None
    p50 = statistics.median(lat)

    print(f"{n} x 16 KiB objects; cluster: 1 proxy + 3 targets; one Python client (requests, keep-alive).\n")
    print("| benchmark | Get-Batch | baseline | ratio | goal |")
    print("|---|---|---|---|---|")
    print(f"| 16 KiB objects, batches of 256 vs per-object GETs | {batch_rate:.0f} obj/s | {plain_rate:.0f} obj/s | **{batch_rate / plain_rate:.1f}x** | >= 5x |")
    print(f"| same with an identity ETL per item vs per-object ETL GETs | {etl_batch:.0f} obj/s | {etl_plain:.0f} obj/s | **{etl_batch / etl_plain:.1f}x** | >= 3x |")
    print(f"| one batch of {n} items | {one_batch:.0f} obj/s | | | |")
    size_gib = members / 1024
    print(f"| last member (16 KiB) of a {size_gib:g} GiB tar ({members} members), archpath GET through the proxy, p50 | {p50:.2f} ms | | | < 5 ms |")
    print(f"| peak target RSS while {n} items stream in batches (max over targets) | {max(peak.values()) / 1024:.0f} MiB | | | < 128 MiB |")
    _ = first_ms


if __name__ == "__main__":
    main()
