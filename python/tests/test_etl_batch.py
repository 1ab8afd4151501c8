"""Batch-aware transforms: code that defines ``transform_batch(items)`` gets
concurrent calls (Get-Batch items, offline jobs, concurrent GETs) in
batches; results equal the per-item ``transform``; errors stay per item."""

from __future__ import annotations

import base64
import io
import tarfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from ais_cluster import Cluster, put_etl

CODE = '''
import sys

def _one(data, path, args):
    if data.startswith(b"bad"):
        raise ValueError(f"refusing {path}")
    return data[::-1] + b"|" + args.encode()

def transform(data, path, args):
    return _one(data, path, args)

def transform_batch(items):
    print(f"BATCH {len(items)}", flush=True)
    if any(d.startswith(b"die") for _, d, _ in items):
        import os
        os._exit(3)  # a hostile batch: the worker dies mid-call
    if any(d.startswith(b"explode") for _, d, _ in items):
        raise RuntimeError("the whole batch failed")
    out = []
    for path, data, args in items:
        try:
            out.append(_one(data, path, args))
        except Exception as e:
            out.append(e)  # fails this item only
    return out
'''


def _init(url: str, name: str, **extra) -> None:
    fields = {"init_timeout": "2m", "pool_size": 1, "batch_size": 8, "batch_ms": 20, **extra}
    put_etl(url, name, CODE, timeout=180, **fields)


def test_transform_batch_equals_per_item_and_keeps_errors_per_item(cluster: Cluster) -> None:
    url = cluster.url
    b = f"tb-{uuid.uuid4().hex[:8]}"
    name = f"tb-{uuid.uuid4().hex[:8]}"
    assert requests.post(f"{url}/v1/buckets/{b}", json={"action": "create-bck"}, timeout=30).status_code == 200
    blobs = {f"o{i:03d}": (b"bad-%d" % i if i % 7 == 3 else b"good-%d" % i) for i in range(60)}
    blobs["x-explode"] = b"explode!"
    for n, d in blobs.items():
        assert requests.put(f"{url}/v1/objects/{b}/{n}", data=d, timeout=30).status_code == 200
    _init(url, name)
    try:
        # Get-Batch with the ETL: every item transformed, failures per item.
        names = [n for n in blobs if n != "x-explode"]
        req = {"in": [{"objname": n} for n in names], "coer": True}
        r = requests.get(f"{url}/v1/ml/moss/{b}", params={"etl_name": name, "etl_args": "A"}, json=req, timeout=120)
        assert r.status_code == 200, r.text
        with tarfile.open(fileobj=io.BytesIO(r.content)) as t:
            got = [(m.name, t.extractfile(m).read()) for m in t.getmembers()]
        for (mname, data), n in zip(got, names):
            if blobs[n].startswith(b"bad"):
                assert mname == f"__404__/{b}/{n}" and data == b"", mname
            else:
                assert mname == f"{b}/{n}" and data == blobs[n][::-1] + b"|A"
        # The same objects one by one (concurrently: they are batched too).
        def one(n: str) -> tuple[str, int, bytes]:
            resp = requests.get(f"{url}/v1/objects/{b}/{n}", params={"etl_name": name, "etl_args": "A"}, timeout=60)
            return n, resp.status_code, resp.content

        with ThreadPoolExecutor(16) as ex:
            for n, status, data in ex.map(one, names):
                if blobs[n].startswith(b"bad"):
                    assert status == 422 and b"refusing" in data, (n, data)
                else:
                    assert status == 200 and data == blobs[n][::-1] + b"|A"
        # A batch that raises as a whole falls back to transform() per item.
        n, status, data = one("x-explode")
        assert status == 200 and data == b"!edolpxe|A", data
        logs = requests.get(f"{url}/v1/etl/{name}/logs", timeout=30).json()
        text = "".join(base64.b64decode(x["logs"]).decode() for x in logs)
        sizes = [int(line.split()[-1]) for line in text.splitlines() if line.strip().startswith("BATCH ")]
        assert sizes and max(sizes) > 1, f"no call was batched: {sizes}"
        assert max(sizes) <= 8
        assert "transform_batch found" in text
    finally:
        requests.delete(f"{url}/v1/etl/{name}", timeout=60)
        requests.delete(f"{url}/v1/buckets/{b}", timeout=60)


GPU_CODE = "import os\n\ndef transform(data):\n    return os.environ.get('CUDA_VISIBLE_DEVICES', '-').encode() + b'/' + os.environ['AIS_ETL_WORKER_SLOT'].encode()\n"


def _init_device(url: str, name: str) -> requests.Response:
    body = {
        "name": name,
        "runtime": "python3",
        "communication": "hpush://",
        "code": base64.b64encode(GPU_CODE.encode()).decode(),
        "dependencies": "",
        "init_timeout": "2m",
        "device": "cuda",
    }
    return requests.put(f"{url}/v1/etl", json=body, timeout=180)


def test_device_cuda_without_a_gpu_is_a_clear_error(cluster: Cluster) -> None:
    import shutil

    if shutil.which("nvidia-smi"):
        pytest.skip("this host has GPUs (the next test covers device: cuda)")
    r = _init_device(cluster.url, f"gpu-{uuid.uuid4().hex[:8]}")
    assert 400 <= r.status_code < 500, r.text
    assert "no GPU" in r.text and "device" in r.text, r.text


def test_device_cuda_spreads_workers_over_the_gpus(tmp_path) -> None:
    """With two GPUs named (AIS_ETL_GPUS), a `device: cuda` ETL gets one
    worker per GPU, each seeing only its own GPU."""
    c = Cluster(base_dir=tmp_path / "gpus", num_targets=1, env={"AIS_ETL_GPUS": "0,1", "AIS_ETL_ENV_CACHE": str(tmp_path / "envs")})
    c.start()
    try:
        name = f"gpu-{uuid.uuid4().hex[:8]}"
        r = _init_device(c.url, name)
        assert r.status_code == 200, r.text
        b = f"g-{uuid.uuid4().hex[:8]}"
        assert requests.post(f"{c.url}/v1/buckets/{b}", json={"action": "create-bck"}, timeout=30).status_code == 200
        for i in range(20):
            assert requests.put(f"{c.url}/v1/objects/{b}/o{i}", data=b"x", timeout=30).status_code == 200

        def one(i: int) -> bytes:
            return requests.get(f"{c.url}/v1/objects/{b}/o{i}", params={"etl_name": name}, timeout=60).content

        with ThreadPoolExecutor(8) as ex:
            seen = set(ex.map(one, range(20)))
        assert seen <= {b"0/0", b"1/1"} and len(seen) == 2, seen
    finally:
        c.stop()


def test_worker_dying_in_transform_batch_fails_that_batch_only(cluster: Cluster) -> None:
    """A worker that exits inside transform_batch fails the items of that
    batch with 422 (worker died); it is replaced and later calls succeed."""
    url = cluster.url
    b = f"tbd-{uuid.uuid4().hex[:8]}"
    name = f"tbd-{uuid.uuid4().hex[:8]}"
    assert requests.post(f"{url}/v1/buckets/{b}", json={"action": "create-bck"}, timeout=30).status_code == 200
    assert requests.put(f"{url}/v1/objects/{b}/die", data=b"die!", timeout=30).status_code == 200
    assert requests.put(f"{url}/v1/objects/{b}/ok", data=b"fine", timeout=30).status_code == 200
    _init(url, name, batch_ms=1)
    try:
        r = requests.get(f"{url}/v1/objects/{b}/die", params={"etl_name": name}, timeout=60)
        assert r.status_code == 422 and "worker" in r.text.lower(), r.text
        deadline = time.monotonic() + 30
        while True:
            r = requests.get(f"{url}/v1/objects/{b}/ok", params={"etl_name": name, "etl_args": "A"}, timeout=60)
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r.status_code == 200 and r.content == b"enif|A", r.text
    finally:
        requests.delete(f"{url}/v1/etl/{name}", timeout=60)
        requests.delete(f"{url}/v1/buckets/{b}", timeout=60)
