"""GET/PUT throughput through one proxy vs three, and the latency of a
committed metadata change (bucket create/destroy), primary vs forwarded."""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid
from typing import Callable, List

import requests

THREADS = 8
SIZE = 16 << 10


def rounds(fn: Callable[[str, str], None], eps: List[str], names: List[str], secs: float) -> float:
    """`THREADS` clients for `secs`, client i on eps[i % len(eps)]: ops/s."""
    stop = time.monotonic() + secs
    counts = [0] * THREADS

    def worker(i: int) -> None:
        s = requests.Session()
        ep = eps[i % len(eps)]
        k = i
        while time.monotonic() < stop:
            fn(ep, names[k % len(names)], s)
            k += THREADS
            counts[i] += 1

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.monotonic() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxies", required=True, help="comma-separated proxy URLs, the primary first")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    eps = a.proxies.split(",")
    primary = eps[0]
    secs = 3.0 if a.quick else 8.0
    bucket = f"px-{uuid.uuid4().hex[:6]}"
    requests.post(f"{primary}/v1/buckets/{bucket}", json={"action": "create-bck"}).raise_for_status()
    data = os.urandom(SIZE)
    names = [f"o/{i:05d}" for i in range(2000)]
    s = requests.Session()
    for n in names:
        s.put(f"{primary}/v1/objects/{bucket}/{n}", data=data).raise_for_status()

    def get(ep: str, n: str, s: requests.Session) -> None:
        r = s.get(f"{ep}/v1/objects/{bucket}/{n}")
        r.raise_for_status()
        assert len(r.content) == SIZE

    def put(ep: str, n: str, s: requests.Session) -> None:
        s.put(f"{ep}/v1/objects/{bucket}/{n}", data=data).raise_for_status()

    print("## Several proxies: GET/PUT through 1 proxy vs 3, metadata-change latency\n")
    print(f"3 targets, {len(eps)} proxies, {THREADS} client threads (requests, redirects followed), "
          f"{SIZE >> 10} KiB objects, {secs:.0f} s rounds alternating 1 and {len(eps)} proxies.\n")
    print("| op | round | 1 proxy (obj/s) | 3 proxies (obj/s) | ratio 3/1 |")
    print("|---|---|---|---|---|")
    for op, fn in (("GET", get), ("PUT", put)):
        for r in range(2):
            one = rounds(fn, [primary], names, secs)
            many = rounds(fn, eps, names, secs)
            print(f"| {op} | {r + 1} | {one:.0f} | {many:.0f} | {many / one:.2f} |")
    # A committed metadata change: create + destroy of a bucket.
    print("\n| bucket create (committed, pushed to every node) | p50 ms | p90 ms |")
    print("|---|---|---|")
    for label, ep in (("through the primary", primary), ("forwarded by another proxy", eps[1])):
        lat = []
        for i in range(20 if a.quick else 60):
            b = f"lat-{uuid.uuid4().hex[:8]}"
            t = time.perf_counter()
            requests.post(f"{ep}/v1/buckets/{b}", json={"action": "create-bck"}).raise_for_status()
            lat.append((time.perf_counter() - t) * 1000)
            requests.delete(f"{ep}/v1/buckets/{b}").raise_for_status()
        lat.sort()
        print(f"| {label} | {statistics.median(lat):.1f} | {lat[int(len(lat) * 0.9)]:.1f} |")


if __name__ == "__main__":
    main()
