"""End-to-end tests of near-data ETL with real Python transforms.

Everything runs against a real 1-proxy/3-target cluster (``cluster`` fixture
from ``conftest.py``; one test starts its own dedicated cluster) whose targets
run user code in persistent Python worker pools. ETL workers use the
interpreter in ``$AIS_PYTHON`` (the harness passes the environment through and
defaults it to the interpreter running pytest), so transforms can use Pillow,
numpy and the ``aistore`` SDK from the test venv.

Covered: the 2021 seed flow (``ais`` CLI and raw HTTP), every comm type and
code form, legacy and current REST, the official SDK 2.0.0 (``init_class``),
and failures -- each asserting status codes, messages, and that no worker
process is left behind.
"""

from __future__ import annotations

import base64
import io
import tarfile
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest
import requests
from aistore.sdk import Client
from aistore.sdk.errors import AISError, ErrETLAlreadyExists, ErrETLNotFound, ErrObjNotFound
from aistore.sdk.etl import ETLConfig
from aistore.sdk.etl.webserver.http_multi_threaded_server import HTTPMultiThreadedServer
from PIL import Image

from ais_cluster import NUM_TARGETS, Cluster, default_bin_dir, unique_bucket_name

AIS_CLI = default_bin_dir() / "ais"
WORKER_SCRIPT = "ais_etl_worker.py"
HTTP_TIMEOUT = 60

# ---------------------------------------------------------------- transforms

UPPER_FUNC = """
def transform(data):
    return data.upper()
"""

# io:// script: object on stdin, result on stdout (with a main block).
UPPER_IO = """
import sys

if __name__ == "__main__":
    sys.stdout.buffer.write(sys.stdin.buffer.read().upper())
"""

# The seed post's io:// transform: a Pillow pipeline built at module top
# level, image bytes on stdin, a 224x224 JPEG on stdout.
SEED_CODE = """\
import io
import sys

from PIL import Image


class Resize:
    def __init__(self, size):
        self.size = size

    def __call__(self, img):
        return img.resize(self.size)


pipeline = Resize((224, 224))


def img_to_bytes(img):
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    return buf.getvalue()


input_bytes = sys.stdin.buffer.read()
image = Image.open(io.BytesIO(input_bytes)).convert("RGB")
processed = pipeline(image)
sys.stdout.buffer.write(img_to_bytes(processed))
"""

# One transform with every kind of misbehaviour, chosen by etl_args, so the
# "next request succeeds" checks hit the same object, target and pool.
# "hang:<file>" creates <file> (relative: in the worker's own work dir, the
# only place a sandboxed worker may write) once the transform is stuck.
MISBEHAVE_FUNC = """
import ctypes
import os
import time


class TransformBoom(ValueError):
    pass


def transform(data, path, etl_args):
    if etl_args == "raise":
        raise TransformBoom("cannot handle %d bytes" % len(data))
    if etl_args.startswith("hang"):
        open(etl_args[5:] or os.devnull, "w").close()
        time.sleep(120)
    if etl_args == "exit":
        os._exit(7)
    if etl_args == "segv":
        ctypes.string_at(0)
    return b"ok:" + data + b":" + str(os.getpid()).encode()
"""


# ------------------------------------------------------------------- helpers


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def unique_etl(prefix: str) -> str:
    """A valid, unique ETL name (6-32 chars of [a-z0-9-])."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    assert 6 <= len(name) <= 32, name
    return name


def err_message(resp: requests.Response) -> str:
    """The ``message`` of an AIStore JSON error body."""
    assert resp.headers.get("Content-Type", "").startswith("application/json"), (
        resp.status_code,
        resp.headers,
        resp.text,
    )
    body = resp.json()
    assert body["status"] == resp.status_code, body
    return body["message"]


def ais(cluster: Cluster, *args: str, cwd: Optional[Path] = None, ok: bool = True) -> subprocess.CompletedProcess:
    """Runs the ``ais`` CLI against the cluster."""
    env = dict(os.environ, AIS_ENDPOINT=cluster.url)
    p = subprocess.run(
        [str(AIS_CLI), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if ok:
        assert p.returncode == 0, f"ais {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    else:
        assert p.returncode != 0, f"ais {' '.join(args)} unexpectedly succeeded:\n{p.stdout}\n{p.stderr}"
    return p


def init_code(
    url: str,
    name: str,
    code: str,
    comm: str = "hpush://",
    deps: str = "",
    runtime: str = "python3",
    **extra,
) -> requests.Response:
    """``PUT /v1/etl`` with a (2023-25 style) code init message."""
    msg = {
        "name": name,
        "runtime": runtime,
        "communication": comm,
        "init_timeout": "2m",
        "obj_timeout": "30s",
        "funcs": {"transform": "transform"},
        "code": b64(code),
        "dependencies": b64(deps),
        "argument": "",
    }
    msg.update(extra)
    return requests.put(f"{url}/v1/etl", json=msg, timeout=HTTP_TIMEOUT * 3)


def must_init(url: str, name: str, code: str, **kw) -> str:
    resp = init_code(url, name, code, **kw)
    assert resp.status_code == 200, resp.text
    assert re.fullmatch(r"etl-[A-Za-z0-9_-]+", resp.text), resp.text
    return resp.text


def etl_get(url: str, bck: str, obj: str, etl: str, args: Optional[str] = None, param: str = "etl_name") -> requests.Response:
    """GET an object through the proxy (following its redirect) with an ETL."""
    params = {"provider": "ais", param: etl}
    if args is not None:
        params["etl_args"] = args
    return requests.get(f"{url}/v1/objects/{bck}/{obj}", params=params, timeout=HTTP_TIMEOUT)


def plain_get(url: str, bck: str, obj: str) -> bytes:
    resp = requests.get(f"{url}/v1/objects/{bck}/{obj}", params={"provider": "ais"}, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text
    return resp.content


def put_obj(url: str, bck: str, obj: str, data: bytes) -> None:
    """PUT through the proxy, following its 307 to the target."""
    resp = requests.put(f"{url}/v1/objects/{bck}/{obj}", params={"provider": "ais"}, data=data, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text


def owner_target(cluster: Cluster, bck: str, obj: str) -> str:
    """Daemon id of the target the proxy redirects ``bck/obj`` to."""
    resp = requests.get(
        f"{cluster.url}/v1/objects/{bck}/{obj}",
        params={"provider": "ais"},
        allow_redirects=False,
        timeout=HTTP_TIMEOUT,
    )
    assert resp.status_code == 301, resp.text
    loc = resp.headers["Location"]
    for t in cluster.targets:
        if loc.startswith(t.url + "/"):
            return t.node_id
    raise AssertionError(f"redirect {loc} to no known target")


def details(url: str, name: str) -> dict:
    resp = requests.get(f"{url}/v1/etl/{name}", timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text
    return resp.json()


def target_stats(url: str, name: str) -> Dict[str, dict]:
    """Per-target ETL stats by target id (from ``GET /v1/etl/NAME``)."""
    return {t["target_id"]: t for t in details(url, name)["targets"]}


def list_etls(url: str, legacy: bool = False) -> Dict[str, dict]:
    resp = requests.get(f"{url}/v1/etl/list" if legacy else f"{url}/v1/etl", timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert isinstance(body, list), body
    return {e["id"]: e for e in body}


def assert_not_registered(url: str, name: str) -> None:
    """The ETL is neither listed nor known to ``GET /v1/etl/NAME``."""
    assert name not in list_etls(url)
    resp = requests.get(f"{url}/v1/etl/{name}", timeout=HTTP_TIMEOUT)
    assert resp.status_code == 404, resp.text
    assert f"etl job {name} does not exist" in err_message(resp)


def etl_logs(url: str, name: str, target: str = "") -> Dict[str, str]:
    path = f"{url}/v1/etl/{name}/logs" + (f"/{target}" if target else "")
    resp = requests.get(path, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text
    return {e["target_id"]: base64.b64decode(e["logs"]).decode(errors="replace") for e in resp.json()}


# --------------------------------------------------- worker process tracking


def _proc_info(pid: str):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    if not cmd:  # zombie (already dead, not yet reaped) or kernel thread
        return None
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        cwd = ""
    return cmd, cwd.removesuffix(" (deleted)")


def etl_procs(cluster: Cluster, name: Optional[str] = None) -> Dict[int, str]:
    """Live ETL processes of ``cluster`` (optionally: of one ETL), pid -> cmdline.

    A process counts if its command line runs this cluster's worker script
    (``<data>/etl/ais_etl_worker.py``), or if it runs in one of this cluster's
    ETL work directories (``<data>/etl/work/<name>.<rand>``, e.g. --fresh-process children).
    """
    base = str(cluster.base_dir)
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        info = _proc_info(pid)
        if info is None:
            continue
        cmd, cwd = info
        is_worker = WORKER_SCRIPT in cmd and base in cmd
        in_etl_dir = cwd.startswith(base + os.sep) and f"{os.sep}etl{os.sep}" in cwd
        if not (is_worker or in_etl_dir):
            continue
        # Work dirs are <data>/etl/work/<name>.<rand> (fresh per start).
        if name is not None and not any(part.rsplit(".", 1)[0] == name for part in Path(cwd).parts):
            continue
        out[int(pid)] = f"{cmd} (cwd {cwd})"
    return out


def wait_no_procs(cluster: Cluster, name: Optional[str] = None, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    left = etl_procs(cluster, name)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = etl_procs(cluster, name)
    assert not left, f"ETL worker processes left running ({name or 'any ETL'}): {left}"


def pid_alive(pid: int) -> bool:
    return _proc_info(str(pid)) is not None


def wait_for_workdir_file(cluster: Cluster, name: str, fname: str, timeout: float = 15.0) -> None:
    """Waits until a worker of ETL ``name`` created ``fname`` in its work dir (on any target)."""
    deadline = time.monotonic() + timeout
    while not list(Path(cluster.base_dir).glob(f"*/etl/work/{name}.*/{fname}")):
        assert time.monotonic() < deadline, f"{fname} did not appear in a work dir of {name}"
        time.sleep(0.05)


def workdir_files(cluster: Cluster, name: str, fname: str) -> List[Path]:
    """``fname`` in ETL ``name``'s work dir on every target that has it."""
    return sorted(Path(cluster.base_dir).glob(f"*/etl/work/{name}.*/{fname}"))


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module", autouse=True)
def no_workers_left_behind(cluster: Cluster) -> Iterator[None]:
    """After this module, not one ETL worker of the session cluster may be running."""
    yield
    wait_no_procs(cluster)


@pytest.fixture
def etls(cluster: Cluster) -> Iterator[List[str]]:
    """Names appended here are removed after the test; their workers must be gone."""
    names: List[str] = []
    yield names
    for n in names:
        requests.delete(f"{cluster.url}/v1/etl/{n}", timeout=HTTP_TIMEOUT)
    for n in names:
        wait_no_procs(cluster, n)


@pytest.fixture(scope="module")
def src(cluster: Cluster) -> Iterator[Dict[str, bytes]]:
    """A bucket of small text objects spread over the targets: {name: data}; ``src.bucket``."""
    objs = {f"obj-{i:02d}.txt": f"hello etl object {i} {'x' * i}".encode() for i in range(12)}
    # Placement depends on the bucket name: pick one that spreads the 12
    # objects over every target (a random name misses one ~2% of the time).
    for _ in range(50):
        bck = unique_bucket_name("etl-src")
        resp = requests.post(f"{cluster.url}/v1/buckets/{bck}", params={"provider": "ais"}, json={"action": "create-bck"}, timeout=HTTP_TIMEOUT)
        assert resp.status_code == 200, resp.text
        owners = {owner_target(cluster, bck, o) for o in objs}
        if len(owners) == NUM_TARGETS:
            break
        requests.delete(f"{cluster.url}/v1/buckets/{bck}", params={"provider": "ais"}, timeout=HTTP_TIMEOUT)
    assert len(owners) == NUM_TARGETS, f"objects landed on {owners} only"
    for name, data in objs.items():
        put_obj(cluster.url, bck, name, data)

    class Src(dict):
        bucket = bck

    yield Src(objs)
    requests.delete(f"{cluster.url}/v1/buckets/{bck}", params={"provider": "ais"}, json={"action": "destroy-bck"}, timeout=HTTP_TIMEOUT)


def first_obj_per_target(cluster: Cluster, src) -> Dict[str, str]:
    """target id -> one object of ``src`` stored there."""
    out: Dict[str, str] = {}
    for o in src:
        out.setdefault(owner_target(cluster, src.bucket, o), o)
    assert len(out) == NUM_TARGETS
    return out


def make_jpegs(root: Path, n: int = 4) -> Dict[str, bytes]:
    """An ImageNet-like tree: train/000000K.jpg (real JPEGs) + train/000000K.cls."""
    rng = random.Random(42)
    files = {}
    (root / "train").mkdir(parents=True)
    for i in range(1, n + 1):
        w, h = 300 + 17 * i, 200 + 11 * i
        img = Image.new("RGB", (w, h))
        px = img.load()
        for x in range(0, w, 4):
            for y in range(0, h, 4):
                c = ((x * 3 + i * 40) % 256, (y * 5) % 256, rng.randrange(256))
                for dx in range(4):
                    for dy in range(4):
                        if x + dx < w and y + dy < h:
                            px[x + dx, y + dy] = c
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        jpg = f"train/{i:07d}.jpg"
        cls = f"train/{i:07d}.cls"
        files[jpg] = buf.getvalue()
        files[cls] = f"{rng.randrange(1000)}\n".encode()
    for rel, data in files.items():
        (root / rel).write_bytes(data)
    return files


def jpeg_size(data: bytes):
    img = Image.open(io.BytesIO(data))
    assert img.format == "JPEG", img.format
    img.load()
    return img.size


def parse_show_objects(out: str) -> int:
    """Total OBJECTS over the per-target rows of ``ais etl show NAME``."""
    total, rows = 0, 0
    for line in out.splitlines():
        if line.startswith("t["):
            total += int(line.split()[2])
            rows += 1
    assert rows == NUM_TARGETS, out
    return total


# ========================================================= 1. the seed flow


def test_seed_flow_cli(cluster: Cluster, tmp_path: Path) -> None:
    """The 2021 blog post, verbatim: bucket, upload, init code (io://, Pillow), get via ETL."""
    url = cluster.url
    name = "my-first-etl"
    files = make_jpegs(tmp_path / "imagenet")
    (tmp_path / "code.py").write_text(SEED_CODE)
    (tmp_path / "deps.txt").write_text("Pillow\n")
    try:
        out = ais(cluster, "bucket", "create", "ais://imagenet").stdout
        assert "ais://imagenet" in out and "created" in out, out
        out = ais(cluster, "put", str(tmp_path / "imagenet"), "ais://imagenet", "-r").stdout
        assert f"PUT {len(files)} objects" in out, out
        out = ais(cluster, "ls", "ais://imagenet").stdout
        for rel in files:
            assert rel in out, out

        p = ais(
            cluster,
            "etl", "init", "code",
            "--name", name,
            "--from-file", "code.py",
            "--deps-file", "deps.txt",
            "--runtime", "python3",
            "--comm-type", "io://",
            cwd=tmp_path,
        )
        assert f'ETL "{name}" initialized' in p.stdout, p.stdout

        # `ais etl list`: one row, Running, io://.
        rows = [l.split() for l in ais(cluster, "etl", "list").stdout.splitlines()]
        assert rows[0][:2] == ["NAME", "STAGE"], rows
        mine = [r for r in rows if r[0] == name]
        assert mine and mine[0][1] == "Running" and mine[0][2] == "io://", rows

        # Workers run the configured interpreter with Pillow, one pool per target.
        st = target_stats(url, name)
        assert set(st) == {t.node_id for t in cluster.targets}
        want_py = subprocess.run(
            [os.environ.get("AIS_PYTHON", sys.executable), "-c", "import platform; print(platform.python_version())"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        for s in st.values():
            assert s["stage"] == "Running" and s["workers"] >= 1 and len(s["worker_pids"]) == s["workers"], s
            assert s["python"] == want_py, s
        assert len(etl_procs(cluster, name)) == sum(s["workers"] for s in st.values())

        objects_before = parse_show_objects(ais(cluster, "etl", "show", name).stdout)
        assert objects_before == 0

        jpg = "train/0000001.jpg"
        ais(cluster, "get", f"ais://imagenet/{jpg}", "orig.jpg", cwd=tmp_path)
        orig = (tmp_path / "orig.jpg").read_bytes()
        assert orig == files[jpg]
        assert jpeg_size(orig) == (317, 211)

        p = ais(cluster, "etl", "object", name, f"ais://imagenet/{jpg}", "out.jpg", cwd=tmp_path)
        assert "transformed by" in p.stderr, p.stderr
        out_jpg = (tmp_path / "out.jpg").read_bytes()
        assert out_jpg != orig
        assert jpeg_size(out_jpg) == (224, 224)

        # Raw GETs: the seed's `?uuid=` and today's `?etl_name=` give the same bytes.
        r1 = etl_get(url, "imagenet", jpg, name, param="uuid")
        r2 = etl_get(url, "imagenet", jpg, name, param="etl_name")
        assert r1.status_code == 200 and r2.status_code == 200, (r1.text, r2.text)
        assert r1.content == r2.content == out_jpg
        # Every image in the tree transforms (objects live on different targets).
        for rel in files:
            if rel.endswith(".jpg"):
                r = etl_get(url, "imagenet", rel, name)
                assert r.status_code == 200, r.text
                assert jpeg_size(r.content) == (224, 224)
        n_jpg = sum(1 for f in files if f.endswith(".jpg"))

        show = ais(cluster, "etl", "show", name).stdout
        assert parse_show_objects(show) == objects_before + 3 + n_jpg, show
        assert "io://" in show and "Pillow" in show and "pipeline = Resize((224, 224))" in show, show
        rows = [l.split() for l in ais(cluster, "etl", "list").stdout.splitlines()]
        assert [r for r in rows if r[0] == name][0][3] == str(3 + n_jpg), rows

        logs = ais(cluster, "etl", "logs", name).stdout
        for t in cluster.targets:
            section = logs.split(f"=== t[{t.node_id}] ===", 1)
            assert len(section) == 2, logs
            body = section[1].split("=== t[", 1)[0]
            assert f"ETL {name} ready" in body, logs
            assert "environment" in body, logs  # the per-host Pillow environment
        one = ais(cluster, "etl", "logs", name, cluster.targets[0].node_id).stdout
        assert one.count("=== t[") == 1 and f"t[{cluster.targets[0].node_id}]" in one, one

        out = ais(cluster, "etl", "rm", name).stdout
        assert f'ETL "{name}" removed' in out
        wait_no_procs(cluster, name)
        assert_not_registered(url, name)
    finally:
        requests.delete(f"{url}/v1/etl/{name}", timeout=HTTP_TIMEOUT)
        requests.delete(f"{url}/v1/buckets/imagenet", params={"provider": "ais"}, json={"action": "destroy-bck"}, timeout=HTTP_TIMEOUT)
    wait_no_procs(cluster, name)


def test_seed_flow_raw_http(cluster: Cluster, tmp_path: Path, etls: List[str]) -> None:
    """The seed flow with curl-style requests and the 2021 REST API (POST /v1/etl/init_code)."""
    url = cluster.url
    bck = unique_bucket_name("imgnet")
    name = unique_etl("seed-http")
    etls.append(name)
    files = make_jpegs(tmp_path / "tree", n=3)
    resp = requests.post(f"{url}/v1/buckets/{bck}", params={"provider": "ais"}, json={"action": "create-bck"}, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text
    try:
        for rel, data in files.items():
            put_obj(url, bck, rel, data)
        msg = {
            "id": name,
            "code": b64(SEED_CODE),
            "dependencies": b64("Pillow\n"),
            "runtime": "python3",
            "communication_type": "io://",
            "wait_timeout": "2m",
        }
        resp = requests.post(f"{url}/v1/etl/init_code", json=msg, timeout=HTTP_TIMEOUT * 3)
        assert resp.status_code == 200, resp.text
        assert resp.text == name

        listed = list_etls(url, legacy=True)
        assert listed[name]["stage"] == "Running" and listed[name]["communication"] == "io://", listed

        for rel, data in files.items():
            if not rel.endswith(".jpg"):
                continue
            r = etl_get(url, bck, rel, name, param="uuid")
            assert r.status_code == 200, r.text
            assert r.headers["Content-Type"] == "application/octet-stream"
            assert jpeg_size(r.content) == (224, 224)
            assert etl_get(url, bck, rel, name).content == r.content
            assert plain_get(url, bck, rel) == data  # the stored object is untouched
        listed = list_etls(url, legacy=True)
        assert listed[name]["obj_count"] == 6 and listed[name]["err_count"] == 0, listed[name]
        assert listed[name]["in_bytes"] == 2 * sum(len(d) for r, d in files.items() if r.endswith(".jpg"))

        resp = requests.delete(f"{url}/v1/etl/stop/{name}", timeout=HTTP_TIMEOUT)
        assert resp.status_code == 200, resp.text
        wait_no_procs(cluster, name)
        assert name not in list_etls(url, legacy=True)
        r = etl_get(url, bck, "train/0000001.jpg", name)
        assert r.status_code == 404 and f"etl job {name} does not exist" in err_message(r)
    finally:
        requests.delete(f"{url}/v1/buckets/{bck}", params={"provider": "ais"}, json={"action": "destroy-bck"}, timeout=HTTP_TIMEOUT)


# =================================================== 2. comm types and forms


@pytest.mark.parametrize("comm", ["io://", "hpush://", "hpull://"])
def test_comm_types(cluster: Cluster, src, etls: List[str], comm: str) -> None:
    url = cluster.url
    name = unique_etl(comm.rstrip(":/"))
    etls.append(name)
    code = UPPER_IO if comm == "io://" else UPPER_FUNC
    xid = must_init(url, name, code, comm=comm)
    info = list_etls(url)[name]
    assert info["stage"] == "Running" and info["communication"] == comm and info["xaction_id"] == xid, info
    init_msg = details(url, name)["init_msg"]
    assert init_msg["name"] == name and init_msg["communication"] == comm, init_msg
    for obj, data in src.items():
        r = etl_get(url, src.bucket, obj, name)
        assert r.status_code == 200, r.text
        assert r.content == data.upper()
    assert list_etls(url)[name]["obj_count"] == len(src)


def test_transform_receives_path_and_etl_args(cluster: Cluster, client: Client, src, etls: List[str]) -> None:
    """``transform(data, path, etl_args)``: the object's name (not a path into the store) and the caller's etl_args."""
    url = cluster.url
    name = unique_etl("args")
    etls.append(name)
    code = """
import json, os

def transform(data, path, etl_args):
    return json.dumps({"data": data.decode(), "path": path, "exists": os.path.exists(path),
                       "args": etl_args}).encode()
"""
    must_init(url, name, code)
    obj, data = next(iter(src.items()))

    def check(raw: bytes, want_args: str) -> None:
        out = json.loads(raw)
        assert out["data"] == data.decode(), out
        assert out["args"] == want_args, out
        # `path` names the object; it is not a file the (sandboxed) worker could open.
        assert out["path"] == f"ais://{src.bucket}/{obj}" and out["exists"] is False, out

    r = etl_get(url, src.bucket, obj, name, args="k=v&x=1 y")
    assert r.status_code == 200, r.text
    check(r.content, "k=v&x=1 y")
    check(etl_get(url, src.bucket, obj, name).content, "")
    # SDK: dict args travel as compact JSON.
    raw = client.bucket(src.bucket).object(obj).get_reader(etl=ETLConfig(name, {"size": 224, "fmt": "jpeg"})).read_all()
    check(raw, '{"size":224,"fmt":"jpeg"}')
    # CLI: --args.
    p = ais(cluster, "etl", "object", name, f"ais://{src.bucket}/{obj}", "-", "--args", "from-cli")
    check(p.stdout.encode(), "from-cli")


def test_transform_two_arg_form_and_custom_func_name(cluster: Cluster, src, etls: List[str]) -> None:
    url = cluster.url
    name = unique_etl("twoarg")
    etls.append(name)
    code = """
def not_called(data):
    raise RuntimeError("wrong function")

def my_transform(data, path):
    return b"%d:%s" % (len(data), path.rsplit("/", 1)[-1].encode())
"""
    must_init(url, name, code, funcs={"transform": "my_transform"})
    for obj, data in list(src.items())[:4]:
        r = etl_get(url, src.bucket, obj, name, args="ignored")
        assert r.status_code == 200, r.text
        assert r.content == f"{len(data)}:{obj}".encode()


def test_workers_keep_large_buffers_on_the_heap(cluster: Cluster, src, etls: List[str]) -> None:
    """ETL workers run with glibc malloc settings that keep transform outputs
    of a few hundred KiB on the heap (no map/unmap and page faults per item)."""
    url = cluster.url
    name = unique_etl("malloc")
    etls.append(name)
    code = """
import os
def transform(data):
    return os.environ.get("GLIBC_TUNABLES", "").encode()
"""
    must_init(url, name, code)
    obj = next(iter(src))
    r = etl_get(url, src.bucket, obj, name)
    assert r.status_code == 200, r.text
    # An operator's own setting (inherited through the node) is left alone.
    want = os.environ.get("GLIBC_TUNABLES") or "glibc.malloc.mmap_threshold=33554432"
    assert want.encode() in r.content, r.content


def test_arg_type_fqn(cluster: Cluster, src, etls: List[str], tmp_path: Path) -> None:
    """``--arg-type fqn``: transform gets the object's local path instead of its bytes."""
    url = cluster.url
    name = unique_etl("fqn")
    etls.append(name)
    (tmp_path / "fqn.py").write_text(
        """
def transform(fqn):
    assert isinstance(fqn, str), type(fqn)
    with open(fqn, "rb") as f:
        return b"fqn=" + fqn.encode() + b"|" + f.read()[::-1]
"""
    )
    ais(cluster, "etl", "init", "code", "--name", name, "--from-file", "fqn.py", "--arg-type", "fqn", cwd=tmp_path)
    assert details(url, name)["init_msg"]["argument"] == "fqn"
    for obj, data in src.items():
        r = etl_get(url, src.bucket, obj, name)
        assert r.status_code == 200, r.text
        head, body = r.content.split(b"|", 1)
        assert body == data[::-1]
        path = head.removeprefix(b"fqn=").decode()
        # A private copy in the worker's temp dir, never the object's file in the store.
        assert path.endswith(obj), path
        assert not any(path.startswith(str(mp)) for t in cluster.targets for mp in t.mpaths), path
        assert re.search(rf"{os.sep}etl{os.sep}work{os.sep}{name}\.[^{os.sep}]+{os.sep}tmp{os.sep}", path), path


def test_io_import_time_work_runs_once_per_worker(cluster: Cluster, src, etls: List[str], tmp_path: Path) -> None:
    """io:// with a main block: top-level code runs once per worker, the main block per object."""
    url = cluster.url
    name = unique_etl("io-once")
    etls.append(name)
    code = f"""
import os
import sys

with open("imports.log", "a") as f:  # the worker's own work dir
    f.write("%d\\n" % os.getpid())
CALLS = 0

if __name__ == "__main__":
    CALLS += 1
    data = sys.stdin.buffer.read()
    sys.stdout.write("pid=%d calls=%d len=%d" % (os.getpid(), CALLS, len(data)))
"""
    must_init(url, name, code, comm="io://", pool_size=1)
    st = target_stats(url, name)
    worker_pids = {p for s in st.values() for p in s["worker_pids"]}
    assert len(worker_pids) == NUM_TARGETS and all(s["workers"] == 1 for s in st.values()), st

    per_target = first_obj_per_target(cluster, src)
    seen: Dict[int, List[int]] = {}
    for _ in range(3):
        for obj in per_target.values():
            r = etl_get(url, src.bucket, obj, name)
            assert r.status_code == 200, r.text
            m = re.fullmatch(r"pid=(\d+) calls=(\d+) len=(\d+)", r.text)
            assert m, r.text
            assert int(m.group(3)) == len(src[obj])
            seen.setdefault(int(m.group(1)), []).append(int(m.group(2)))
    # Each worker's module-level counter kept counting: state survives between objects.
    assert set(seen) == worker_pids, (seen, worker_pids)
    assert all(calls == [1, 2, 3] for calls in seen.values()), seen
    # ...and the top-level code ran exactly once per worker, not per object.
    lines = [l for p in workdir_files(cluster, name, "imports.log") for l in p.read_text().split()]
    assert sorted(map(int, lines)) == sorted(worker_pids), lines


def test_io_script_without_main_block_reruns_per_object(cluster: Cluster, src, etls: List[str], tmp_path: Path) -> None:
    """An io:// script without ``if __name__ == "__main__":`` is re-executed whole per object."""
    url = cluster.url
    name = unique_etl("io-whole")
    etls.append(name)
    code = f"""
import os, sys
with open("runs.log", "a") as f:  # the worker's own work dir
    f.write("%d\\n" % os.getpid())
try:
    N
except NameError:
    N = 0
N += 1
sys.stdout.buffer.write(b"n=%d:" % N + sys.stdin.buffer.read()[::-1])
"""
    must_init(url, name, code, comm="io://", pool_size=1)
    startup_runs = sum(len(p.read_text().split()) for p in workdir_files(cluster, name, "runs.log"))
    assert startup_runs == 0, "a script without a main block must not run at start-up"
    items = list(src.items())[:5]
    for obj, data in items:
        r = etl_get(url, src.bucket, obj, name)
        assert r.status_code == 200, r.text
        # Fresh globals per run: N is 1 every time.
        assert r.content == b"n=1:" + data[::-1]
    r = etl_get(url, src.bucket, items[0][0], name)
    assert r.content == b"n=1:" + items[0][1][::-1]
    pids = [int(x) for p in workdir_files(cluster, name, "runs.log") for x in p.read_text().split()]
    assert len(pids) == len(items) + 1
    worker_pids = {p for s in target_stats(url, name).values() for p in s["worker_pids"]}
    assert set(pids) <= worker_pids  # re-run inside the persistent workers


def test_io_fresh_process(cluster: Cluster, src, etls: List[str], tmp_path: Path) -> None:
    """``--fresh-process``: every object runs ``python code.py`` in a new process."""
    url = cluster.url
    name = unique_etl("io-fresh")
    etls.append(name)
    (tmp_path / "fresh.py").write_text(
        """
import os, sys
data = sys.stdin.buffer.read()
sys.stdout.buffer.write(b"%d|%d|" % (os.getpid(), os.getppid()) + data.upper())
"""
    )
    ais(cluster, "etl", "init", "code", "--name", name, "--from-file", "fresh.py", "--comm-type", "io://", "--fresh-process", "--pool-size", "1", cwd=tmp_path)
    assert details(url, name)["init_msg"]["fresh_process"] is True
    worker_pids = {p for s in target_stats(url, name).values() for p in s["worker_pids"]}
    obj, data = next(iter(src.items()))
    got = []
    for _ in range(3):
        r = etl_get(url, src.bucket, obj, name)
        assert r.status_code == 200, r.text
        pid, ppid, body = r.content.split(b"|", 2)
        assert body == data.upper()
        got.append((int(pid), int(ppid)))
    pids = {p for p, _ in got}
    assert len(pids) == 3, got  # a new process per object
    assert not pids & worker_pids
    assert {pp for _, pp in got} <= worker_pids  # started by the target's worker
    for p in pids:
        assert not pid_alive(p), f"fresh process {p} still running"


def test_return_types(cluster: Cluster, src, etls: List[str]) -> None:
    """str results are UTF-8 encoded, None is empty, anything else is a clear 422."""
    url = cluster.url
    name = unique_etl("rettype")
    etls.append(name)
    code = """
def transform(data, path, etl_args):
    if etl_args == "str":
        return "h\u00e9llo"
    if etl_args == "none":
        return None
    return {"not": "bytes"}
"""
    must_init(url, name, code)
    obj = next(iter(src))
    r = etl_get(url, src.bucket, obj, name, args="str")
    assert r.status_code == 200 and r.content == "h\u00e9llo".encode(), r.text
    r = etl_get(url, src.bucket, obj, name, args="none")
    assert r.status_code == 200 and r.content == b"", r.text
    r = etl_get(url, src.bucket, obj, name, args="dict")
    assert r.status_code == 422, r.text
    assert "TypeError: transform returned dict, expected bytes" in err_message(r)


def test_large_object(cluster: Cluster, etls: List[str]) -> None:
    """A 24 MiB object through hpush (by path) and io:// (stdin/stdout) -- big frames both ways."""
    url = cluster.url
    bck = unique_bucket_name("etl-big")
    resp = requests.post(f"{url}/v1/buckets/{bck}", params={"provider": "ais"}, json={"action": "create-bck"}, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text
    try:
        data = random.Random(7).randbytes(24 << 20)
        put_obj(url, bck, "big.bin", data)
        hp, io_ = unique_etl("big-hpush"), unique_etl("big-io")
        etls.extend([hp, io_])
        must_init(url, hp, "def transform(data):\n    return data[::-1] + data[:1000]\n")
        must_init(url, io_, "import sys\nif __name__ == '__main__':\n    d = sys.stdin.buffer.read()\n    sys.stdout.buffer.write(d[::-1])\n", comm="io://")
        r = etl_get(url, bck, "big.bin", hp)
        assert r.status_code == 200, r.text[:500]
        assert len(r.content) == len(data) + 1000 and r.content == data[::-1] + data[:1000]
        r = etl_get(url, bck, "big.bin", io_)
        assert r.status_code == 200, r.text[:500]
        assert r.content == data[::-1]
        assert list_etls(url)[hp]["in_bytes"] == len(data)
        assert list_etls(url)[hp]["out_bytes"] == len(data) + 1000
    finally:
        requests.delete(f"{url}/v1/buckets/{bck}", params={"provider": "ais"}, json={"action": "destroy-bck"}, timeout=HTTP_TIMEOUT)


def test_concurrent_requests(cluster: Cluster, src, etls: List[str]) -> None:
    """Many parallel GETs through single-worker pools: all served, none mixed up."""
    url = cluster.url
    name = unique_etl("conc")
    etls.append(name)
    code = "import time\ndef transform(data, path, etl_args):\n    time.sleep(0.01)\n    return etl_args.encode() + b'|' + data[::-1]\n"
    must_init(url, name, code, pool_size=1)
    jobs = [(obj, f"req-{i}") for i in range(4) for obj in src]

    def one(job):
        obj, tag = job
        r = etl_get(url, src.bucket, obj, name, args=tag)
        return r.status_code, r.content, obj, tag

    with ThreadPoolExecutor(16) as ex:
        results = list(ex.map(one, jobs))
    for status, content, obj, tag in results:
        assert status == 200, content
        assert content == tag.encode() + b"|" + src[obj][::-1]
    assert list_etls(url)[name]["obj_count"] == len(jobs)


# ================================================================ 3. REST API


def test_legacy_rest_init_code_list_stop(cluster: Cluster, src, etls: List[str]) -> None:
    """2021 API: POST /v1/etl/init_code (base64 code), GET /v1/etl/list, DELETE /v1/etl/stop/NAME."""
    url = cluster.url
    name = unique_etl("legacy")
    etls.append(name)
    msg = {
        "id": name,
        "code": b64("def transform(input_bytes):\n    return input_bytes[::-1]\n"),
        "dependencies": b64(""),
        "runtime": "python3",
        "communication_type": "hpush://",
        "wait_timeout": "2m",
    }
    resp = requests.post(f"{url}/v1/etl/init_code", json=msg, timeout=HTTP_TIMEOUT * 3)
    assert resp.status_code == 200, resp.text
    assert resp.text == name
    entry = list_etls(url, legacy=True)[name]
    assert entry["stage"] == "Running" and entry["obj_count"] == 0, entry
    assert details(url, name)["init_msg"]["init_timeout"] == "2m"

    obj, data = next(iter(src.items()))
    r = etl_get(url, src.bucket, obj, name, param="uuid")
    assert r.status_code == 200 and r.content == data[::-1], r.text
    assert list_etls(url, legacy=True)[name]["obj_count"] == 1

    # Same id again: 409 "etl job ... already exists".
    resp = requests.post(f"{url}/v1/etl/init_code", json=msg, timeout=HTTP_TIMEOUT)
    assert resp.status_code == 409
    assert f"etl job {name} already exists" in err_message(resp)

    assert etl_procs(cluster, name)
    resp = requests.delete(f"{url}/v1/etl/stop/{name}", timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text
    wait_no_procs(cluster, name)
    assert name not in list_etls(url, legacy=True)
    resp = requests.delete(f"{url}/v1/etl/stop/{name}", timeout=HTTP_TIMEOUT)
    assert resp.status_code == 404 and f"etl job {name} does not exist" in err_message(resp)


def test_legacy_init_code_generated_name(cluster: Cluster, src, etls: List[str]) -> None:
    """Legacy ``"id": ""``: the server generates a valid name and returns it."""
    url = cluster.url
    msg = {
        "id": "",
        "code": b64(UPPER_IO),
        "dependencies": "",
        "runtime": "python3",
        "communication_type": "io://",
        "wait_timeout": "1m",
    }
    resp = requests.post(f"{url}/v1/etl/init_code", json=msg, timeout=HTTP_TIMEOUT * 3)
    assert resp.status_code == 200, resp.text
    name = resp.text
    etls.append(name)
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{4,30}[a-z0-9]", name), name
    assert list_etls(url, legacy=True)[name]["stage"] == "Running"
    obj, data = next(iter(src.items()))
    r = etl_get(url, src.bucket, obj, name)
    assert r.status_code == 200 and r.content == data.upper(), r.text


def test_current_rest_lifecycle(cluster: Cluster, src, etls: List[str]) -> None:
    """PUT /v1/etl, GET /v1/etl[/NAME], logs, POST stop/start, DELETE."""
    url = cluster.url
    name = unique_etl("rest")
    etls.append(name)
    code = "import sys\nprint('hello from the worker log', flush=True)\n" + UPPER_FUNC
    xid = must_init(url, name, code, comm="hpull://")
    entry = list_etls(url)[name]
    assert entry == {**entry, "id": name, "stage": "Running", "xaction_id": xid, "communication": "hpull://"}

    d = details(url, name)
    assert d["init_msg"]["name"] == name and d["init_msg"]["communication"] == "hpull://"
    assert base64.b64decode(d["init_msg"]["code"]).decode() == code
    assert d["obj_errors"] == []
    assert {t["target_id"] for t in d["targets"]} == {t.node_id for t in cluster.targets}

    obj, data = next(iter(src.items()))
    r = etl_get(url, src.bucket, obj, name)
    assert r.status_code == 200 and r.content == data.upper(), r.text

    logs = etl_logs(url, name)
    assert set(logs) == {t.node_id for t in cluster.targets}
    for text in logs.values():
        assert "hello from the worker log" in text and f"ETL {name} ready" in text, text
    tid = cluster.targets[1].node_id
    assert set(etl_logs(url, name, tid)) == {tid}

    # Metrics / health.
    resp = requests.get(f"{url}/v1/etl/{name}/health", timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200
    assert {h["health_status"] for h in resp.json()} == {"Running"}

    # Start while running: 400.
    resp = requests.post(f"{url}/v1/etl/{name}/start", timeout=HTTP_TIMEOUT)
    assert resp.status_code == 400 and f"etl job {name} is already running" in err_message(resp)

    pids = etl_procs(cluster, name)
    assert len(pids) >= NUM_TARGETS
    resp = requests.post(f"{url}/v1/etl/{name}/stop", timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text
    wait_no_procs(cluster, name)
    assert list_etls(url)[name]["stage"] == "Aborted"
    assert details(url, name)["init_msg"]["name"] == name  # metadata kept
    r = etl_get(url, src.bucket, obj, name)
    assert 400 <= r.status_code < 500, r.text
    assert f"etl job {name} is stopped" in err_message(r)
    # Logs survive a stop.
    assert all("stopped" in t for t in etl_logs(url, name).values())

    resp = requests.post(f"{url}/v1/etl/{name}/start", timeout=HTTP_TIMEOUT * 3)
    assert resp.status_code == 200, resp.text
    assert list_etls(url)[name]["stage"] == "Running"
    new_pids = etl_procs(cluster, name)
    assert len(new_pids) >= NUM_TARGETS and not set(new_pids) & set(pids)
    r = etl_get(url, src.bucket, obj, name)
    assert r.status_code == 200 and r.content == data.upper(), r.text

    resp = requests.delete(f"{url}/v1/etl/{name}", timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text
    wait_no_procs(cluster, name)
    assert_not_registered(url, name)
    resp = requests.delete(f"{url}/v1/etl/{name}", timeout=HTTP_TIMEOUT)
    assert resp.status_code == 404 and f"etl job {name} does not exist" in err_message(resp)


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/v1/etl/{n}"),
        ("GET", "/v1/etl/{n}/logs"),
        ("GET", "/v1/etl/{n}/health"),
        ("POST", "/v1/etl/{n}/stop"),
        ("POST", "/v1/etl/{n}/start"),
        ("DELETE", "/v1/etl/{n}"),
        ("DELETE", "/v1/etl/stop/{n}"),
    ],
)
def test_rest_unknown_etl_is_404(cluster: Cluster, method: str, path: str) -> None:
    name = unique_etl("ghost")
    resp = requests.request(method, cluster.url + path.format(n=name), timeout=HTTP_TIMEOUT)
    assert resp.status_code == 404, resp.text
    assert f"etl job {name} does not exist" in err_message(resp)


def test_list_is_json_array(cluster: Cluster) -> None:
    resp = requests.get(f"{cluster.url}/v1/etl", timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200
    assert isinstance(resp.json(), list)


# ================================================================= 4. the SDK


def test_sdk_init_class_lifecycle(cluster: Cluster, client: Client, src) -> None:
    name = unique_etl("sdk-cls")
    etl = client.etl(name)
    try:
        # Defined inside the test so cloudpickle ships it by value.
        @etl.init_class(dependencies=["numpy"], obj_timeout="20s", GREETING="hi")
        class Reverse(HTTPMultiThreadedServer):
            def transform(self, data, path, etl_args):
                import os as _os

                import numpy as np

                arr = np.frombuffer(data, dtype=np.uint8)[::-1]
                return bytes(arr) + f"|{_os.environ['GREETING']}|{etl_args}".encode()

        assert Reverse.__name__ == "Reverse"
        infos = {i.id: i for i in client.cluster().list_etls()}
        assert infos[name].stage == "Running" and infos[name].xaction_id.startswith("etl-")

        view = etl.view()
        assert view.init_msg.name == name and view.init_msg.communication == "hpush://"
        assert view.init_msg.runtime.image.startswith("aistorage/runtime_python:3.")

        bck = client.bucket(src.bucket)
        for obj, data in list(src.items())[:6]:
            got = bck.object(obj).get_reader(etl=ETLConfig(name, {"k": 1})).read_all()
            assert got == data[::-1] + b'|hi|{"k":1}'
        got = bck.object(obj).get_reader(etl=ETLConfig(name, "plain")).read_all()
        assert got == data[::-1] + b"|hi|plain"
        assert {i.id: i for i in client.cluster().list_etls()}[name].obj_count == 7

        # Duplicate init_class: ErrETLAlreadyExists (409 "etl job").
        with pytest.raises(ErrETLAlreadyExists) as ei:
            etl.init_class()(Reverse)
        assert ei.value.status_code == 409 and "etl job" in ei.value.message

        logs = etl.logs()
        assert {l.target_id for l in logs} == {t.node_id for t in cluster.targets}
        assert all(f"ETL {name} ready" in l.logs for l in logs)

        etl.stop()
        wait_no_procs(cluster, name)
        assert name not in {i.id for i in client.cluster().list_etls()}
        assert name in {i.id for i in client.cluster().list_etls(stages=["Aborted"])}
        with pytest.raises(AISError) as ei:
            bck.object(obj).get_reader(etl=ETLConfig(name)).read_all()
        assert ei.value.status_code == 400 and f"etl job {name} is stopped" in ei.value.message

        etl.start()
        assert name in {i.id for i in client.cluster().list_etls()}
        assert bck.object(obj).get_reader(etl=ETLConfig(name, "again")).read_all() == data[::-1] + b"|hi|again"

        etl.stop()
        etl.delete()
        wait_no_procs(cluster, name)
        with pytest.raises(ErrETLNotFound):
            etl.view()
        assert name not in {i.id for i in client.cluster().list_etls(stages=["Running", "Aborted", "Initializing"])}
    finally:
        requests.delete(f"{cluster.url}/v1/etl/{name}", timeout=HTTP_TIMEOUT)
    wait_no_procs(cluster, name)


def test_sdk_errors(cluster: Cluster, client: Client, src, etls: List[str]) -> None:
    bck = client.bucket(src.bucket)
    obj, data = next(iter(src.items()))
    ghost = unique_etl("ghost")
    with pytest.raises(ErrETLNotFound) as ei:
        bck.object(obj).get_reader(etl=ETLConfig(ghost)).read_all()
    assert ei.value.status_code == 404 and f"etl job {ghost} does not exist" in ei.value.message
    with pytest.raises(ErrETLNotFound):
        client.etl(ghost).view()
    with pytest.raises(ValueError, match="too short"):
        client.etl("abc")

    # A transform error is a 4xx the SDK does not retry: it surfaces at once.
    name = unique_etl("sdk-err")
    etls.append(name)
    must_init(cluster.url, name, MISBEHAVE_FUNC)
    t0 = time.monotonic()
    with pytest.raises(AISError) as ei:
        bck.object(obj).get_reader(etl=ETLConfig(name, "raise")).read_all()
    assert time.monotonic() - t0 < 10
    assert ei.value.status_code == 422
    assert "TransformBoom: cannot handle" in ei.value.message and "Traceback" in ei.value.message
    got = bck.object(obj).get_reader(etl=ETLConfig(name)).read_all()
    assert got.startswith(b"ok:" + data + b":")


# ================================================================ 5. failures


def assert_init_failed_cleanly(cluster: Cluster, name: str) -> None:
    wait_no_procs(cluster, name)
    assert_not_registered(cluster.url, name)
    for t in cluster.targets:
        left = list((t.data_dir / "etl").glob(f"*/{name}.*"))
        assert not left, f"work/code dir of failed {name} left on {t.node_id}: {left}"


def test_init_syntax_error(cluster: Cluster, tmp_path: Path) -> None:
    name = unique_etl("syntax")
    code = "def transform(data):\n    return data[::-1\n"
    resp = init_code(cluster.url, name, code)
    assert resp.status_code == 400, resp.text
    msg = err_message(resp)
    assert f"ETL {name} failed to initialize" in msg
    assert "SyntaxError: '[' was never closed" in msg and "code.py, line 2" in msg, msg
    assert "ais_etl_worker" not in msg  # no worker internals in user-facing tracebacks
    assert_init_failed_cleanly(cluster, name)
    # The failure is in the targets' ETL logs.
    logs = etl_logs(cluster.url, name)
    assert logs and all("init failed" in l and "SyntaxError" in l for l in logs.values()), logs

    # Same via the CLI: non-zero exit, the error on stderr.
    (tmp_path / "bad.py").write_text(code)
    p = ais(cluster, "etl", "init", "code", "--name", name, "--from-file", "bad.py", cwd=tmp_path, ok=False)
    assert "SyntaxError" in p.stderr, p.stderr
    assert_init_failed_cleanly(cluster, name)


def test_init_import_error(cluster: Cluster) -> None:
    name = unique_etl("import")
    resp = init_code(cluster.url, name, "import no_such_module_zq7\n" + UPPER_FUNC)
    assert resp.status_code == 400, resp.text
    msg = err_message(resp)
    assert "ModuleNotFoundError: No module named 'no_such_module_zq7'" in msg, msg
    assert 'code.py", line 1, in <module>' in msg, msg
    assert_init_failed_cleanly(cluster, name)


def test_init_io_script_import_error(cluster: Cluster) -> None:
    """io:// scripts fail at init too (their top-level code runs at start-up)."""
    name = unique_etl("io-import")
    code = "import sys\nimport no_such_module_io9\n\nif __name__ == '__main__':\n    pass\n"
    resp = init_code(cluster.url, name, code, comm="io://")
    assert resp.status_code == 400, resp.text
    assert "No module named 'no_such_module_io9'" in err_message(resp)
    assert_init_failed_cleanly(cluster, name)


def test_init_missing_transform_function(cluster: Cluster) -> None:
    name = unique_etl("nofunc")
    resp = init_code(cluster.url, name, "def transfrom(data):\n    return data\n")
    assert resp.status_code == 400, resp.text
    msg = err_message(resp)
    assert "defines no function 'transform'" in msg, msg
    assert_init_failed_cleanly(cluster, name)


def test_init_failed_dependency_install(cluster: Cluster, tmp_path: Path) -> None:
    name = unique_etl("baddeps")
    pkg = "no-such-package-zz9q"
    (tmp_path / "code.py").write_text(UPPER_FUNC)
    (tmp_path / "deps.txt").write_text(f"{pkg}==1.0\n")
    p = ais(cluster, "etl", "init", "code", "--name", name, "--from-file", "code.py", "--deps-file", "deps.txt", cwd=tmp_path, ok=False)
    assert "pip install failed" in p.stderr, p.stderr
    assert f"No matching distribution found for {pkg}==1.0" in p.stderr, p.stderr
    assert_init_failed_cleanly(cluster, name)

    resp = init_code(cluster.url, name, UPPER_FUNC, deps=f"{pkg}==1.0\n")
    assert resp.status_code == 400, resp.text
    msg = err_message(resp)
    assert f"ETL {name} failed to initialize" in msg and pkg in msg and "pip install failed" in msg, msg
    assert_init_failed_cleanly(cluster, name)


@pytest.mark.parametrize("runtime", ["python2", "python3.99"])
def test_init_unknown_runtime(cluster: Cluster, runtime: str) -> None:
    name = unique_etl("runtime")
    resp = init_code(cluster.url, name, UPPER_FUNC, runtime=runtime)
    assert resp.status_code == 400, resp.text
    msg = err_message(resp)
    assert f'runtime "{runtime}"' in msg, msg
    assert "etl job :" not in msg, msg
    if runtime == "python2":
        # Rejected up front; the message says what the server accepts.
        assert "supported: python3, python3.N" in msg, msg
    else:
        # Checked on the targets: the message lists the interpreters there.
        minor = f"{sys.version_info.major}.{sys.version_info.minor}"
        assert "is not installed on this host; available:" in msg, msg
        assert f"python3 (= Python {minor})" in msg, msg
    assert_init_failed_cleanly(cluster, name)


@pytest.mark.parametrize(
    "comm,why",
    [("hrev://", 'communication type "hrev://" is not supported'), ("tcp://", 'invalid communication type "tcp://"')],
)
def test_init_bad_comm_type(cluster: Cluster, comm: str, why: str, tmp_path: Path) -> None:
    name = unique_etl("comm")
    resp = init_code(cluster.url, name, UPPER_FUNC, comm=comm)
    assert resp.status_code == 400, resp.text
    msg = err_message(resp)
    assert why in msg and "io://" in msg and "hpush://" in msg and "hpull://" in msg, msg
    assert "etl job :" not in msg, msg
    assert_init_failed_cleanly(cluster, name)
    (tmp_path / "code.py").write_text(UPPER_FUNC)
    p = ais(cluster, "etl", "init", "code", "--name", name, "--from-file", "code.py", "--comm-type", comm, cwd=tmp_path, ok=False)
    assert "communication type" in p.stderr or "--comm-type" in p.stderr, p.stderr


@pytest.mark.parametrize(
    "name,why",
    [
        ("abc", "must be 6 to 32 characters long"),
        ("a" * 33, "must be 6 to 32 characters long"),
        ("My_ETL_name", "may contain only lowercase letters, digits and '-'"),
        ("-leading-dash", "must start and end with a letter or digit"),
    ],
)
def test_init_invalid_name(cluster: Cluster, name: str, why: str) -> None:
    resp = init_code(cluster.url, name, UPPER_FUNC)
    assert resp.status_code == 400, resp.text
    msg = err_message(resp)
    assert f'invalid ETL name "{name}": {why}' in msg, msg
    assert "etl job :" not in msg, msg
    assert name not in list_etls(cluster.url)
    wait_no_procs(cluster, name)


def test_init_duplicate_name(cluster: Cluster, src, etls: List[str], tmp_path: Path) -> None:
    url = cluster.url
    name = unique_etl("dup")
    etls.append(name)
    must_init(url, name, UPPER_FUNC)
    pids = set(etl_procs(cluster, name))
    resp = init_code(url, name, "def transform(d):\n    return b'second'\n", comm="io://")
    assert resp.status_code == 409, resp.text
    assert f"etl job {name} already exists" in err_message(resp)
    (tmp_path / "code.py").write_text(UPPER_FUNC)
    p = ais(cluster, "etl", "init", "code", "--name", name, "--from-file", "code.py", cwd=tmp_path, ok=False)
    assert "already exists" in p.stderr, p.stderr
    # The original ETL is untouched.
    assert set(etl_procs(cluster, name)) == pids
    assert details(url, name)["init_msg"]["communication"] == "hpush://"
    obj, data = next(iter(src.items()))
    r = etl_get(url, src.bucket, obj, name)
    assert r.status_code == 200 and r.content == data.upper(), r.text


def test_init_timeout(cluster: Cluster) -> None:
    """Code whose import takes longer than init_timeout fails the init; the slow workers are killed."""
    name = unique_etl("slowinit")
    t0 = time.monotonic()
    resp = init_code(cluster.url, name, "import time\ntime.sleep(60)\n" + UPPER_FUNC, init_timeout="2s")
    assert time.monotonic() - t0 < 30
    assert resp.status_code == 400, resp.text
    assert "did not become ready within 2s" in err_message(resp)
    assert_init_failed_cleanly(cluster, name)


def test_transform_raises(cluster: Cluster, src, etls: List[str]) -> None:
    url = cluster.url
    name = unique_etl("raises")
    etls.append(name)
    must_init(url, name, MISBEHAVE_FUNC, pool_size=1)
    obj, data = next(iter(src.items()))
    tid = owner_target(cluster, src.bucket, obj)
    pids_before = target_stats(url, name)[tid]["worker_pids"]

    r = etl_get(url, src.bucket, obj, name, args="raise")
    assert r.status_code == 422, r.text
    assert r.json()["tcode"] == "ErrETL"
    msg = err_message(r)
    assert f"etl job {name} failed to transform ais://{src.bucket}/{obj}" in msg, msg
    assert f"TransformBoom: cannot handle {len(data)} bytes" in msg, msg
    assert "Traceback (most recent call last)" in msg and 'code.py", line 13, in transform' in msg, msg

    # The worker survived a user exception; the next request is fine.
    r = etl_get(url, src.bucket, obj, name)
    assert r.status_code == 200, r.text
    assert r.content == b"ok:" + data + b":" + str(pids_before[0]).encode()
    d = details(url, name)
    errs = d["obj_errors"]
    assert len(errs) == 1 and errs[0]["obj_name"] == f"ais://{src.bucket}/{obj}" and errs[0]["ecode"] == 422, errs
    assert "TransformBoom" in errs[0]["msg"]
    st = {t["target_id"]: t for t in d["targets"]}[tid]
    assert st["err_count"] == 1 and st["obj_count"] == 1 and st["worker_pids"] == pids_before, st
    assert "TransformBoom" in etl_logs(url, name, tid)[tid]


def test_transform_hang_times_out(cluster: Cluster, src, etls: List[str], tmp_path: Path) -> None:
    url = cluster.url
    name = unique_etl("hangs")
    etls.append(name)
    (tmp_path / "code.py").write_text(MISBEHAVE_FUNC)
    ais(cluster, "etl", "init", "code", "--name", name, "--from-file", "code.py", "--obj-timeout", "2s", "--pool-size", "1", cwd=tmp_path)
    obj, data = next(iter(src.items()))
    tid = owner_target(cluster, src.bucket, obj)
    [old_pid] = target_stats(url, name)[tid]["worker_pids"]
    assert pid_alive(old_pid)

    t0 = time.monotonic()
    r = etl_get(url, src.bucket, obj, name, args="hang")
    took = time.monotonic() - t0
    assert r.status_code == 422, r.text
    msg = err_message(r)
    assert f"failed to transform ais://{src.bucket}/{obj}: transform timed out after 2s (the worker was replaced)" in msg, msg
    assert 1.9 < took < 10, took

    # The hung worker is gone; a new one serves the next request.
    r = etl_get(url, src.bucket, obj, name)
    assert r.status_code == 200, r.text
    assert r.content.startswith(b"ok:" + data + b":")
    new_pid = int(r.content.rsplit(b":", 1)[1])
    assert new_pid != old_pid
    assert not pid_alive(old_pid), f"hung worker {old_pid} still running"
    assert target_stats(url, name)[tid]["worker_pids"] == [new_pid]
    assert set(etl_procs(cluster, name)) == {p for s in target_stats(url, name).values() for p in s["worker_pids"]}
    assert "worker replaced: transform timed out" in etl_logs(url, name, tid)[tid]


@pytest.mark.parametrize(
    "how,why",
    [
        ("exit", "worker process exited with status 7 (the worker was replaced)"),
        ("segv", "worker process died from SIGSEGV (segmentation fault) [11] (the worker was replaced)"),
    ],
)
def test_worker_dies(cluster: Cluster, src, etls: List[str], how: str, why: str) -> None:
    url = cluster.url
    name = unique_etl(f"dies-{how}")
    etls.append(name)
    must_init(url, name, MISBEHAVE_FUNC, pool_size=1)
    obj, data = list(src.items())[3]
    tid = owner_target(cluster, src.bucket, obj)
    [old_pid] = target_stats(url, name)[tid]["worker_pids"]

    r = etl_get(url, src.bucket, obj, name, args=how)
    assert r.status_code == 422, r.text
    msg = err_message(r)
    assert f"etl job {name} failed to transform ais://{src.bucket}/{obj}: {why}" in msg, msg

    for _ in range(2):
        r = etl_get(url, src.bucket, obj, name)
        assert r.status_code == 200, r.text
        assert r.content.startswith(b"ok:" + data + b":")
        assert int(r.content.rsplit(b":", 1)[1]) != old_pid
    assert not pid_alive(old_pid)
    errs = details(url, name)["obj_errors"]
    assert [e["ecode"] for e in errs] == [422] and why.split(" (")[0] in errs[0]["msg"], errs


def test_get_with_unknown_etl(cluster: Cluster, src) -> None:
    name = unique_etl("unknown")
    obj = next(iter(src))
    for param in ("etl_name",):
        r = etl_get(cluster.url, src.bucket, obj, name, param=param)
        assert r.status_code == 404, r.text
        assert f"etl job {name} does not exist" in err_message(r)
    # Also when asking a target directly (no proxy check in between).
    tid = owner_target(cluster, src.bucket, obj)
    t = cluster.target_by_id(tid)
    r = requests.get(f"{t.url}/v1/objects/{src.bucket}/{obj}", params={"provider": "ais", "etl_name": name}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 404, r.text
    assert f"etl job {name} does not exist" in err_message(r)


def test_get_missing_object_with_etl(cluster: Cluster, client: Client, src, etls: List[str]) -> None:
    """A missing object through a running ETL is an object 404 (ErrObjNotFound), not an ETL error."""
    name = unique_etl("missing")
    etls.append(name)
    must_init(cluster.url, name, UPPER_FUNC)
    r = etl_get(cluster.url, src.bucket, "no-such-object", name)
    assert r.status_code == 404, r.text
    msg = err_message(r)
    assert f"ais://{src.bucket}/no-such-object" in msg and "does not exist" in msg and "etl job" not in msg, msg
    with pytest.raises(ErrObjNotFound):
        client.bucket(src.bucket).object("no-such-object").get_reader(etl=ETLConfig(name)).read_all()
    assert details(cluster.url, name)["obj_errors"] == []


def test_get_with_stopped_etl(cluster: Cluster, src, etls: List[str]) -> None:
    url = cluster.url
    name = unique_etl("stopped")
    etls.append(name)
    must_init(url, name, UPPER_FUNC)
    obj = next(iter(src))
    resp = requests.post(f"{url}/v1/etl/{name}/stop", timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text
    wait_no_procs(cluster, name)
    r = etl_get(url, src.bucket, obj, name)
    assert r.status_code == 400, r.text
    msg = err_message(r)
    assert f"etl job {name} is stopped" in msg and f"ais etl start {name}" in msg, msg
    # Directly on the target as well.
    t = cluster.target_by_id(owner_target(cluster, src.bucket, obj))
    r = requests.get(f"{t.url}/v1/objects/{src.bucket}/{obj}", params={"provider": "ais", "etl_name": name}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 400 and f"etl job {name} is stopped" in err_message(r), r.text


def test_stop_and_rm_leave_no_workers(cluster: Cluster, src, etls: List[str], tmp_path: Path) -> None:
    """CLI stop/start/rm; stop also kills a worker that is busy with a hung transform."""
    url = cluster.url
    name = unique_etl("stoprm")
    etls.append(name)
    (tmp_path / "code.py").write_text(MISBEHAVE_FUNC)
    ais(cluster, "etl", "init", "code", "--name", name, "--from-file", "code.py", "--obj-timeout", "60s", cwd=tmp_path)
    obj = next(iter(src))
    assert len(etl_procs(cluster, name)) >= NUM_TARGETS

    # A request stuck in a hanging transform while the ETL is stopped.
    result: Dict[str, requests.Response] = {}
    th = threading.Thread(target=lambda: result.setdefault("r", etl_get(url, src.bucket, obj, name, args="hang:hanging")))
    th.start()
    wait_for_workdir_file(cluster, name, "hanging")
    t0 = time.monotonic()
    out = ais(cluster, "etl", "stop", name).stdout
    assert f'ETL "{name}" stopped' in out
    wait_no_procs(cluster, name)
    th.join(timeout=15)
    assert not th.is_alive(), "the in-flight request did not finish after stop"
    assert time.monotonic() - t0 < 15
    # The in-flight request fails with "stopped" (a 4xx), not as a crash or a retried 5xx.
    inflight = result["r"]
    assert inflight.status_code == 400, inflight.text
    msg = err_message(inflight)
    assert f"etl job {name} failed to transform ais://{src.bucket}/{obj}: ETL is stopped" in msg, msg
    assert "replaced" not in msg and "SIGKILL" not in msg, msg
    rows = [l.split() for l in ais(cluster, "etl", "list").stdout.splitlines()]
    assert [r for r in rows if r[0] == name][0][1] == "Aborted", rows

    out = ais(cluster, "etl", "start", name).stdout
    assert f'ETL "{name}" started' in out
    assert len(etl_procs(cluster, name)) >= NUM_TARGETS
    out = ais(cluster, "etl", "rm", name).stdout
    assert f'ETL "{name}" removed' in out
    wait_no_procs(cluster, name)
    assert_not_registered(url, name)
    p = ais(cluster, "etl", "rm", name, ok=False)
    assert f"etl job {name} does not exist" in p.stderr, p.stderr


def test_sigkill_target_leaves_no_workers(tmp_path: Path) -> None:
    """Workers watch their target: SIGKILL of a target takes down its workers -- also
    one that is busy in a hung transform (an idle worker would already exit on EOF
    of its socket) -- and a normal shutdown of the rest leaves none either."""
    c = Cluster(base_dir=tmp_path / "dedicated", num_targets=2, env={"AIS_ETL_ENV_CACHE": str(tmp_path / "envs")})
    c.start()
    try:
        bck = unique_bucket_name("sigkill")
        resp = requests.post(f"{c.url}/v1/buckets/{bck}", params={"provider": "ais"}, json={"action": "create-bck"}, timeout=HTTP_TIMEOUT)
        assert resp.status_code == 200, resp.text
        objs = [f"o{i}" for i in range(16)]
        for o in objs:
            put_obj(c.url, bck, o, o.encode())
        victim = c.targets[0]
        obj = next(o for o in objs if owner_target(c, bck, o) == victim.node_id)

        name = unique_etl("sigkill")
        must_init(c.url, name, MISBEHAVE_FUNC, pool_size=2, obj_timeout="2m")
        st = target_stats(c.url, name)
        assert len(st) == 2 and all(len(s["worker_pids"]) == 2 for s in st.values()), st
        assert len(etl_procs(c)) == 4
        victim_pids = st[victim.node_id]["worker_pids"]
        other_pids = st[c.targets[1].node_id]["worker_pids"]
        for p in victim_pids:
            cmd, _ = _proc_info(str(p))
            assert WORKER_SCRIPT in cmd and str(victim.data_dir) in cmd, cmd

        # Occupy one of the victim's workers with a transform that hangs.
        errors: List[BaseException] = []

        def hang() -> None:
            try:
                etl_get(c.url, bck, obj, name, args="hang:hanging")
            except requests.RequestException as e:  # the target dies under it
                errors.append(e)

        th = threading.Thread(target=hang, daemon=True)
        th.start()
        wait_for_workdir_file(c, name, "hanging")
        r = etl_get(c.url, bck, obj, name)  # the pool's other worker still serves
        assert r.status_code == 200 and r.content.startswith(b"ok:" + obj.encode()), r.text
        served = int(r.content.rsplit(b":", 1)[1])
        busy = [p for p in victim_pids if p != served]
        assert len(busy) == 1, (victim_pids, r.content)

        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while any(pid_alive(p) for p in victim_pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in victim_pids if pid_alive(p)], f"workers {victim_pids} (busy: {busy}) outlived their SIGKILLed target"
        th.join(timeout=10)
        assert errors, "the hanging request should have failed with the target"
        assert all(pid_alive(p) for p in other_pids)  # the other target's pool is unaffected
        assert set(etl_procs(c)) == set(other_pids)
    finally:
        c.stop()
    # SIGTERM of the remaining nodes: no workers left either.
    wait_no_procs(c, timeout=5)


# ------------------------------------------------- runtime.command transformer servers

TRANSFORMER_SERVER = '''\
import os, sys, urllib.parse, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def _reply(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # hpull: fetch the object back from the target
        u = urllib.parse.urlparse(self.path)
        if u.path == "/health":
            return self._reply(200, b"OK")
        q = urllib.parse.parse_qs(u.query)
        with open("read-back-urls", "a") as f:
            f.write(os.environ["AIS_TARGET_URL"] + u.path + "\\n")
        data = urllib.request.urlopen(os.environ["AIS_TARGET_URL"] + u.path).read()
        self._reply(200, b"PULL:" + data[::-1] + b"|" + q.get("etl_args", [""])[0].encode())

    def do_PUT(self):  # hpush: the object is the body
        data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if data.startswith(b"fail"):
            return self._reply(500, b"cannot handle this object")
        self._reply(200, b"PUSH:" + data.upper() + os.environ.get("GREETING", "").encode())

print("serving on", os.environ["PORT"], flush=True)
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
'''


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """A directory any uid can read: a transformer server's files are bound
    into its sandbox only where its uid could read them anyway (pytest's
    tmp_path sits below a 0700 directory)."""
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="ais-servers-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_runtime_command_spec_yaml_hpush_via_cli(cluster: Cluster, src, etls: List[str], tmp_path: Path, server_dir: Path) -> None:
    name = unique_etl("cmd-push")
    etls.append(name)
    server = server_dir / "server.py"
    server.write_text(TRANSFORMER_SERVER)
    server.chmod(0o644)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"name: {name}\n"
        "runtime:\n"
        "  image: example/transformer:latest\n"
        f'  command: ["{sys.executable}", "{server}"]\n'
        "  env:\n"
        "    - name: GREETING\n"
        "      value: '!'\n"
        "communication: hpush://\n"
        "init_timeout: 1m\n"
        "obj_timeout: 10s\n"
    )
    out = ais(cluster, "etl", "init", "spec", str(spec)).stdout
    assert name in out, out
    # One transformer server per target, each on its own port.
    assert len(etl_procs(cluster, name)) == NUM_TARGETS
    for obj, data in src.items():
        r = etl_get(cluster.url, src.bucket, obj, name)
        assert r.status_code == 200, r.text
        assert r.content == b"PUSH:" + data.upper() + b"!"
    bad = f"fail-{uuid.uuid4().hex[:6]}"
    put_obj(cluster.url, src.bucket, bad, b"fail me")
    r = etl_get(cluster.url, src.bucket, bad, name)
    assert r.status_code == 422, r.text
    assert "transformer HTTP 500: cannot handle this object" in err_message(r)
    logs = etl_logs(cluster.url, name)
    assert any("serving on" in t for t in logs.values()), logs
    ais(cluster, "etl", "stop", name)
    wait_no_procs(cluster, name)


def test_runtime_command_hpull_reads_back_through_target(cluster: Cluster, src, etls: List[str], server_dir: Path) -> None:
    name = unique_etl("cmd-pull")
    etls.append(name)
    server = server_dir / "server.py"
    server.write_text(TRANSFORMER_SERVER)
    server.chmod(0o644)
    msg = {
        "name": name,
        "communication": "hpull://",
        "init_timeout": "1m",
        "obj_timeout": "10s",
        "runtime": {"image": "example/transformer:latest", "command": [sys.executable, str(server)]},
    }
    r = requests.put(f"{cluster.url}/v1/etl", json=msg, timeout=HTTP_TIMEOUT * 3)
    assert r.status_code == 200, r.text
    for obj, data in src.items():
        r = etl_get(cluster.url, src.bucket, obj, name, args="k=v")
        assert r.status_code == 200, r.text
        assert r.content == b"PULL:" + data[::-1] + b"|k=v"
    # The object endpoint refuses a made-up token; the server's environment
    # holds no standing key, and the tokens it was given are void once their
    # request is over (for that object or any other).
    t = cluster.targets[0]
    r = requests.get(f"{t.url}/v1/etl/_object/{name}/wrong-secret/ais%2F%40%23%2F{src.bucket}%2Fobj-00.txt", timeout=HTTP_TIMEOUT)
    assert r.status_code == 401, r.text
    used = [u for f in Path(cluster.base_dir).glob(f"*/etl/work/{name}.*/read-back-urls") for u in f.read_text().split()]
    assert len(used) == len(src), used
    for u in used:
        base, token, uname = u.rsplit("/", 2)
        assert base.endswith(f"/v1/etl/_object/{name}"), u
        assert requests.get(u, timeout=HTTP_TIMEOUT).status_code == 401, u
        other = uname.replace("obj-", "zzz-")
        assert requests.get(f"{base}/{token}/{other}", timeout=HTTP_TIMEOUT).status_code == 401


WS_SERVER = '''\
import os
from aistore.sdk.etl.webserver.fastapi_server import FastAPIServer


class Upper(FastAPIServer):
    def transform(self, data, path, etl_args):
        if data.startswith(b"fail"):
            raise ValueError("cannot handle this object")
        return b"WS:" + data.upper() + b"|" + path.encode() + b"|" + etl_args.encode()


Upper(host="127.0.0.1", port=int(os.environ["PORT"])).start()
'''


def test_runtime_command_ws_with_the_sdk_fastapi_server(cluster: Cluster, client: Client, src, etls: List[str], server_dir: Path) -> None:
    """ws://: the SDK's own FastAPIServer as the transformer, driven over
    persistent websockets (its /ws protocol), inline, in Get-Batch and in an
    offline job; a transform error comes back per object."""
    name = unique_etl("cmd-ws")
    etls.append(name)
    server = server_dir / "server.py"
    server.write_text(WS_SERVER)
    server.chmod(0o644)
    msg = {
        "name": name,
        "communication": "ws://",
        "init_timeout": "2m",
        "obj_timeout": "20s",
        "runtime": {"image": "example/transformer:latest", "command": [sys.executable, str(server)]},
    }
    r = requests.put(f"{cluster.url}/v1/etl", json=msg, timeout=HTTP_TIMEOUT * 3)
    assert r.status_code == 200, r.text
    for _ in range(2):  # the second round reuses the open websockets
        for obj, data in src.items():
            r = etl_get(cluster.url, src.bucket, obj, name, args="k=v")
            assert r.status_code == 200, r.text
            assert r.content == b"WS:" + data.upper() + f"|{src.bucket}/{obj}|k=v".encode()
    bck = client.bucket(src.bucket)
    bck.object("fail-ws").get_writer().put_content(b"fail me")
    r = etl_get(cluster.url, src.bucket, "fail-ws", name)
    assert r.status_code >= 400 and "cannot handle this object" in r.text, r.text
    # Get-Batch, each item through the transformer.
    names = sorted(src)[:6]
    r = requests.get(
        f"{cluster.url}/v1/ml/moss/{src.bucket}",
        params={"etl_name": name},
        json={"in": [{"objname": n} for n in names], "onob": True},
        timeout=HTTP_TIMEOUT,
    )
    assert r.status_code == 200, r.text
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tf:
        got = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}
    assert got == {n: b"WS:" + src[n].upper() + f"|{src.bucket}/{n}|".encode() for n in names}
    # A later pipeline stage too (it takes the bytes the stage before gave).
    from aistore.sdk.etl import ETLConfig

    first = unique_etl("ws-first")
    etls.append(first)
    must_init(cluster.url, first, "def transform(data):\n    return data[::-1]\n")
    obj = sorted(src)[0]
    got = bck.object(obj).get_reader(etl=ETLConfig(client.etl(first) >> client.etl(name))).read_all()
    assert got == b"WS:" + src[obj][::-1].upper() + f"|{src.bucket}/{obj}|".encode()
    # The SDK's init_class(comm_type="ws") with its FastAPIServer: the
    # class's transform runs in the target's persistent workers.
    from aistore.sdk.etl.webserver.fastapi_server import FastAPIServer

    cls_name = unique_etl("cls-ws")
    etls.append(cls_name)

    @client.etl(cls_name).init_class(comm_type="ws")
    class Reverse(FastAPIServer):
        def transform(self, data, path, etl_args):
            return data[::-1]

    assert bck.object(obj).get_reader(etl=ETLConfig(cls_name)).read_all() == src[obj][::-1]

    dst = client.bucket(unique_bucket_name("ws-dst"))
    job = bck.transform(etl_name=name, to_bck=dst, prefix_filter="obj-")
    client.job(job_id=job).wait(timeout=120)
    out = {e.name: dst.object(e.name).get_reader().read_all() for e in dst.list_all_objects()}
    assert out == {k: b"WS:" + v.upper() + f"|{src.bucket}/{k}|".encode() for k, v in src.items()}
    dst.delete(missing_ok=True)

FQN_SERVER = '''\
import os
from aistore.sdk.etl.webserver.fastapi_server import FastAPIServer


class ByPath(FastAPIServer):
    def transform(self, data, path, etl_args):
        assert isinstance(data, str), type(data)
        with open(data, "rb") as f:
            return data.encode() + b"|" + f.read()[::-1]


ByPath(host="127.0.0.1", port=int(os.environ["PORT"])).start()
'''


@pytest.mark.parametrize("comm", ["hpush://", "ws://"])
def test_runtime_command_direct_file_access_names_a_private_copy(cluster: Cluster, src, etls: List[str], server_dir: Path, comm: str) -> None:
    """A transformer server with the SDK's direct_file_access
    (ETL_DIRECT_FQN=true) is handed a file path (etl_fqn / the ws message's
    fqn) to a private copy in its own work dir, removed after the
    exchange; never a path into the store."""
    name = unique_etl("cmd-fqn")
    etls.append(name)
    server = server_dir / "server.py"
    server.write_text(FQN_SERVER)
    server.chmod(0o644)
    msg = {
        "name": name,
        "communication": comm,
        "init_timeout": "2m",
        "obj_timeout": "20s",
        "runtime": {"image": "example/transformer:latest", "command": [sys.executable, str(server)],
                    "env": [{"name": "ETL_DIRECT_FQN", "value": "true"}]},
    }
    r = requests.put(f"{cluster.url}/v1/etl", json=msg, timeout=HTTP_TIMEOUT * 3)
    assert r.status_code == 200, r.text
    for obj in sorted(src)[:4]:
        r = etl_get(cluster.url, src.bucket, obj, name)
        assert r.status_code == 200, r.text
        where, body = r.content.split(b"|", 1)
        assert body == src[obj][::-1]
        copy = Path(where.decode())
        assert f"/etl/work/{name}." in str(copy) and not copy.exists(), copy
        for t in cluster.targets:
            for mp in t.mpaths:
                assert not str(copy).startswith(str(mp)), (copy, mp)


def test_init_class_direct_file_access_gets_a_private_copy(cluster: Cluster, client: Client, src, etls: List[str]) -> None:
    """The SDK's init_class(direct_file_access=True): the class's transform
    is given a file path, as in AIStore, but to a private copy in the
    worker's own space, never a path into the store (and gone after)."""
    from aistore.sdk.etl import ETLConfig
    from aistore.sdk.etl.webserver.fastapi_server import FastAPIServer

    name = unique_etl("cls-fqn")
    etls.append(name)

    @client.etl(name).init_class(direct_file_access=True)
    class ByPath(FastAPIServer):
        def transform(self, data, path, etl_args):
            assert isinstance(data, str), type(data)
            with open(data, "rb") as f:
                body = f.read()
            return data.encode() + b"|" + body[::-1]

    bck = client.bucket(src.bucket)
    for obj in sorted(src)[:4]:
        out = bck.object(obj).get_reader(etl=ETLConfig(name)).read_all()
        where, body = out.split(b"|", 1)
        assert body == src[obj][::-1]
        copy = Path(where.decode())
        assert not copy.exists(), copy  # removed once transformed
        for t in cluster.targets:
            for mp in t.mpaths:
                assert not str(copy).startswith(str(mp)), (copy, mp)


def test_runtime_command_failures(cluster: Cluster, etls: List[str], tmp_path: Path) -> None:
    # A command that exits at once: init fails with its output, nothing left behind.
    name = unique_etl("cmd-dies")
    msg = {
        "name": name,
        "communication": "hpush://",
        "init_timeout": "20s",
        "runtime": {"image": "x", "command": [sys.executable, "-c", "import sys; print('no port for me', file=sys.stderr); sys.exit(3)"]},
    }
    r = requests.put(f"{cluster.url}/v1/etl", json=msg, timeout=HTTP_TIMEOUT * 3)
    assert r.status_code == 400, r.text
    m = err_message(r)
    assert "exited before it was ready" in m and "no port for me" in m, m
    assert_not_registered(cluster.url, name)
    wait_no_procs(cluster, name)
    # An image without a command (and not an init_class runtime): clear refusal.
    msg = {"name": unique_etl("img-only"), "communication": "hpush://", "runtime": {"image": "nginx:latest"}}
    r = requests.put(f"{cluster.url}/v1/etl", json=msg, timeout=HTTP_TIMEOUT)
    assert r.status_code == 400, r.text
    assert "cannot run image \"nginx:latest\"" in err_message(r)


# ------------------------------------------------------ offline jobs via the official SDK


def test_sdk_bucket_transform_and_copy_jobs(cluster: Cluster, client: Client, src, etls: List[str]) -> None:
    name = unique_etl("sdk-job")
    etls.append(name)
    must_init(cluster.url, name, "def transform(data):\n    return data[::-1]\n")
    srcb = client.bucket(src.bucket)
    dst = client.bucket(unique_bucket_name("sdk-dst"))  # created by the job
    # Other tests add objects to `src`: select ours by prefix.
    job_id = srcb.transform(etl_name=name, to_bck=dst, prefix_filter="obj-", prepend="t/", ext={"txt": "rev"})
    assert job_id.startswith("etl-"), job_id
    res = client.job(job_id).wait(timeout=60, verbose=False)
    assert res.success, res
    got = {e.name: dst.object(e.name).get_reader().read_all() for e in dst.list_all_objects()}
    want = {f"t/{k[:-4]}.rev": v[::-1] for k, v in src.items()}
    assert got == want
    status = client.job(job_id).status()
    assert status.uuid == job_id and status.end_time > 0 and not status.aborted and status.err == ""
    # Plain copy with a prefix filter.
    cp = client.bucket(unique_bucket_name("sdk-cp"))
    job_id = srcb.copy(to_bck=cp, prefix_filter="obj-0")
    assert client.job(job_id).wait(timeout=60, verbose=False).success
    names = sorted(e.name for e in cp.list_all_objects())
    assert names == sorted(k for k in src if k.startswith("obj-0"))
    assert cp.object(names[0]).get_reader().read_all() == src[names[0]]
    for b in (dst, cp):
        b.delete(missing_ok=True)


# ------------------------------------------------------ ETL pipelines (etl_a >> etl_b)


def test_sdk_pipelines_inline_batch_and_offline(cluster: Cluster, client: Client, src, etls: List[str]) -> None:
    """`client.etl(a) >> client.etl(b)` gives b(a(x)) on an inline GET (the
    SDK sends etl_name=a&etl_pipeline=b), on Get-Batch items and in
    `bucket.transform(etl_pipeline=[...])`; the stages run on the target
    that holds the object, bytes handed from one to the next. A failing
    stage is named; an unknown stage is a 404; a pipeline without a first
    ETL, or longer than 8, is a 400 (never ignored)."""

    url = cluster.url
    a, b, bad = unique_etl("pipe-a"), unique_etl("pipe-b"), unique_etl("pipe-x")
    etls.extend([a, b, bad])
    must_init(url, a, "def transform(data):\n    return data.upper()\n")
    must_init(url, b, "def transform(data):\n    return data[::-1] + b'|b'\n")
    must_init(url, bad, "def transform(data):\n    raise ValueError('stage x refuses')\n")
    bck = client.bucket(src.bucket)
    ab = client.etl(a) >> client.etl(b)
    for obj, data in list(src.items())[:6]:
        assert bck.object(obj).get_reader(etl=ETLConfig(ab)).read_all() == data.upper()[::-1] + b"|b"
    obj, data = next(iter(src.items()))
    ba = client.etl(b) >> client.etl(a)
    assert bck.object(obj).get_reader(etl=ETLConfig(ba)).read_all() == (data[::-1] + b"|b").upper()
    aba = client.etl(a) >> client.etl(b) >> client.etl(a)
    assert bck.object(obj).get_reader(etl=ETLConfig(aba)).read_all() == (data.upper()[::-1] + b"|b").upper()

    # Get-Batch: every item through the pipeline on its owner.
    names = sorted(src)[:8]
    r = requests.get(
        f"{url}/v1/ml/moss/{src.bucket}",
        params={"etl_name": a, "etl_pipeline": b},
        json={"in": [{"objname": n} for n in names], "onob": True},
        timeout=HTTP_TIMEOUT,
    )
    assert r.status_code == 200, r.text
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tf:
        got = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}
    assert got == {n: src[n].upper()[::-1] + b"|b" for n in names}

    # Offline: bucket.transform(etl_pipeline=[...]).
    dst = client.bucket(unique_bucket_name("pipe-dst"))
    job_id = bck.transform(etl_name=a, etl_pipeline=[b], to_bck=dst, prefix_filter="obj-")
    assert client.job(job_id).wait(timeout=60, verbose=False).success
    got = {e.name: dst.object(e.name).get_reader().read_all() for e in dst.list_all_objects()}
    assert got == {k: v.upper()[::-1] + b"|b" for k, v in src.items()}
    dst.delete(missing_ok=True)

    # A failing stage is named (stage 2, its ETL), with its error.
    with pytest.raises(AISError) as ei:
        bck.object(obj).get_reader(etl=ETLConfig(client.etl(a) >> client.etl(bad))).read_all()
    assert f"etl pipeline stage 2 ({bad})" in ei.value.message and "stage x refuses" in ei.value.message
    # Unknown stage: 404 naming it, before any target works on it.
    ghost = unique_etl("pipe-ghost")
    r = requests.get(f"{url}/v1/objects/{src.bucket}/{obj}", params={"etl_name": a, "etl_pipeline": ghost}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 404 and ghost in r.text, r.text
    # No first ETL, an empty stage, too many stages: 400.
    for params in ({"etl_pipeline": b}, {"etl_name": a, "etl_pipeline": f"{b},,{a}"}, {"etl_name": a, "etl_pipeline": ",".join([b] * 8)}):
        r = requests.get(f"{url}/v1/objects/{src.bucket}/{obj}", params=params, timeout=HTTP_TIMEOUT)
        assert r.status_code == 400 and "etl_pipeline" in r.text, (params, r.text)
    # A repeated parameter is not half-understood (requests sends a list so).
    r = requests.get(f"{url}/v1/objects/{src.bucket}/{obj}", params={"etl_name": a, "etl_pipeline": [b, a]}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 400 and "more than once" in r.text, r.text
    r = requests.post(
        f"{url}/v1/buckets/{src.bucket}",
        json={"action": "copy-bck", "name": unique_bucket_name("pipe-cp"), "value": {"pipeline": [b]}},
        timeout=HTTP_TIMEOUT,
    )
    assert r.status_code == 400 and "pipeline" in r.text, r.text
    r = requests.post(
        f"{url}/v1/buckets/{src.bucket}",
        json={"action": "etl-bck", "name": unique_bucket_name("pipe-e"), "value": {"id": a, "pipeline": [b, ""]}},
        timeout=HTTP_TIMEOUT,
    )
    assert r.status_code == 400 and "stage" in r.text, r.text
    # Get-Batch: the request's own etl_name with the query's pipeline.
    r = requests.get(
        f"{url}/v1/ml/moss/{src.bucket}",
        params={"etl_pipeline": b},
        json={"in": [{"objname": obj}], "onob": True, "etl_name": a},
        timeout=HTTP_TIMEOUT,
    )
    assert r.status_code == 200, r.text
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tf:
        m = next(m for m in tf.getmembers() if m.isfile())
        assert tf.extractfile(m).read() == data.upper()[::-1] + b"|b"
