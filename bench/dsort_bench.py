"""dSort vs a single-client Python re-shard (download, sort, upload)."""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor

import requests

S = requests.Session()


def make_shard(seed: int, keys: list[int], rec: int) -> bytes:
    rnd = random.Random(seed)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for k in keys:
            for ext, data in ((".jpg", rnd.randbytes(rnd.randint(rec // 2, rec * 3 // 2))),
                              (".cls", str(rnd.randint(0, 999)).encode())):
                info = tarfile.TarInfo(f"img-{k:07d}{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def put(ep: str, bck: str, name: str, data: bytes) -> None:
    r = S.put(f"{ep}/v1/objects/{bck}/{name}", data=data)
    r.raise_for_status()


def create(ep: str, bck: str) -> None:
    r = S.post(f"{ep}/v1/buckets/{bck}", json={"action": "create-bck"})
    assert r.status_code in (200, 409), r.text


def names(ep: str, bck: str) -> list[str]:
    out, token = [], ""
    while True:
        page = S.get(f"{ep}/v1/buckets/{bck}", json={"action": "list", "value": {"props": "name", "continuation_token": token}}).json()
        out += [e["name"] for e in page["entries"] or []]
        token = page.get("continuation_token", "")
        if not token:
            return sorted(out)


def run_dsort(ep: str, src: str, dst: str, shards: int, size: int) -> float:
    spec = {
        "input_bck": {"name": src}, "input_format": {"template": f"in-{{0000..{shards - 1:04d}}}"},
        "input_extension": ".tar", "output_bck": {"name": dst},
        "output_format": "out-{00000..99999}", "output_shard_size": str(size),
    }
    t = time.perf_counter()
    r = S.post(f"{ep}/v1/sort", json=spec)
    assert r.status_code == 200, r.text
    jid = r.text
    while True:
        infos = S.get(f"{ep}/v1/sort", params={"uuid": jid}).json()
        if any(i["aborted"] for i in infos.values()):
            raise SystemExit(f"dsort aborted: {infos}")
        if all(i["Metrics"]["shard_creation"]["finished"] for i in infos.values()):
            return time.perf_counter() - t
        time.sleep(0.05)


def run_python(ep: str, src: str, dst: str, shards: int, size: int, threads: int) -> float:
    """One client: downloads every shard (threads for I/O), indexes the
    records, sorts the keys, builds shards of `size` and uploads them."""
    t = time.perf_counter()
    create(ep, dst)
    inputs = [f"in-{i:04d}.tar" for i in range(shards)]

    def fetch(n: str) -> bytes:
        r = S.get(f"{ep}/v1/objects/{src}/{n}")
        r.raise_for_status()
        return r.content

    with ThreadPoolExecutor(threads) as ex:
        blobs = list(ex.map(fetch, inputs))
    records: dict[str, list[tuple[str, bytes]]] = {}
    for b in blobs:
        with tarfile.open(fileobj=io.BytesIO(b)) as tar:
            for m in tar.getmembers():
                key = m.name.split(".")[0]
                records.setdefault(key, []).append((m.name, tar.extractfile(m).read()))
    del blobs

    def build():
        cur, acc, i = [], 0, 0
        for key in sorted(records):
            rec = records[key]
            cur.append(rec)
            acc += sum(len(d) for _, d in rec)
            if acc >= size:
                yield i, cur
                cur, acc, i = [], 0, i + 1
        if cur:
            yield i, cur

    def upload(item) -> None:
        i, recs = item
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for rec in recs:
                for name, data in rec:
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        put(ep, dst, f"py-{i:05d}.tar", buf.getvalue())

    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(upload, build()))
    return time.perf_counter() - t


def digest(ep: str, bck: str) -> tuple[int, str]:
    """Members in order over all shards, and their bytes, hashed."""
    h, n = hashlib.sha256(), 0
    for name in names(ep, bck):
        data = S.get(f"{ep}/v1/objects/{bck}/{name}").content
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for m in tar.getmembers():
                h.update(m.name.encode())
                h.update(tar.extractfile(m).read())
                n += 1
    return n, h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--shards", type=int, default=64)
    ap.add_argument("--targets", type=int, default=3)
    ap.add_argument("--record-kib", type=int, default=100)
    ap.add_argument("--out-mib", type=int, default=16)
    ap.add_argument("--threads", type=int, default=8)
    a = ap.parse_args()
    ep = a.endpoint
    rec = a.record_kib << 10
    total_records = (a.size_mib << 20) // rec
    per = total_records // a.shards
    keys = list(range(per * a.shards))
    random.Random(0).shuffle(keys)
    create(ep, "src")
    t = time.perf_counter()
    def gen_one(s: int) -> int:
        data = make_shard(s, sorted(keys[s * per:(s + 1) * per]), rec)
        put(ep, "src", f"in-{s:04d}.tar", data)
        return len(data)

    with ThreadPoolExecutor(4) as ex:
        src_bytes = sum(ex.map(gen_one, range(a.shards)))
    gen = time.perf_counter() - t
    size = a.out_mib << 20
    # Alternate the order so neither side always runs on a warmer cache.
    times: dict[str, list[float]] = {"dsort": [], "python": []}
    for r in range(2):
        order = ("dsort", "python") if r == 0 else ("python", "dsort")
        for side in order:
            dst = f"{side}-{r}"
            if side == "dsort":
                times[side].append(run_dsort(ep, "src", dst, a.shards, size))
            else:
                times[side].append(run_python(ep, "src", dst, a.shards, size, a.threads))
    d_n, d_h = digest(ep, "dsort-0")
    p_n, p_h = digest(ep, "python-0")
    assert (d_n, d_h) == (p_n, p_h), "dSort and the Python re-shard disagree"
    best = {k: min(v) for k, v in times.items()}
    print(f"## dSort vs single-client Python re-shard ({a.targets} targets, {os.cpu_count()} cores)\n")
    print(f"- input: {a.shards} shards, {len(keys)} records (.jpg ~{a.record_kib} KiB + .cls), "
          f"{src_bytes / 2**30:.2f} GiB; output shards of {a.out_mib} MiB, alphanumeric; outputs equal "
          f"({d_n} members, sha256 {d_h[:12]})\n- generating the input took {gen:.1f} s\n")
    print("| run | dSort (s) | Python re-shard (s) |\n|---|---|---|")
    for r in range(2):
        print(f"| {r + 1} | {times['dsort'][r]:.2f} | {times['python'][r]:.2f} |")
    print(f"\n**Best of two: dSort {best['dsort']:.2f} s, Python {best['python']:.2f} s: "
          f"{best['python'] / best['dsort']:.2f}x** ({src_bytes / 2**20 / best['dsort']:.0f} MiB/s vs "
          f"{src_bytes / 2**20 / best['python']:.0f} MiB/s)")


if __name__ == "__main__":
    main()
