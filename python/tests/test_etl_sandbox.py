"""The ETL sandbox: user code runs next to the data, but cannot reach it.

Each test is an attack a transform could try, on the session's real cluster
with real transforms; each must fail safely, with a clear message, and leave
the cluster serving. Targets run as root here (as in CI), so workers run as
``nobody`` with their own mount and network namespaces and per-worker cgroups.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
import time
import uuid
from pathlib import Path
from typing import Dict, List
from urllib.parse import urlparse

import pytest
import requests

from ais_cluster import NUM_TARGETS, Cluster, unique_bucket_name
from test_etl import (  # noqa: F401 - fixtures are used by name
    HTTP_TIMEOUT,
    ais,
    details,
    err_message,
    etl_get,
    init_code,
    etl_procs,
    etls,
    must_init,
    no_workers_left_behind,
    owner_target,
    pid_alive,
    plain_get,
    put_obj,
    src,
    target_stats,
    unique_etl,
    wait_no_procs,
)

# A transform that tries what it is told (etl_args: JSON) and reports each outcome.
SPY = r'''
import json, os, socket


def _try(fn):
    try:
        r = fn()
        return "ok" if r is None else "ok:%s" % (r,)
    except BaseException as e:  # report anything
        return "%s: %s" % (type(e).__name__, e)


def _connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    s.close()
    return "connected"


def transform(data, path, etl_args):
    req = json.loads(etl_args or "{}")
    out = {"path_arg": path, "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
           "cwd": os.getcwd(), "tmpdir": os.environ.get("TMPDIR", ""), "len": len(data)}
    for p in req.get("read", []):
        out["read " + p] = _try(lambda: len(open(p, "rb").read()))
    for p in req.get("write", []):
        out["write " + p] = _try(lambda: open(p, "wb").write(b"pwned"))
    for p in req.get("list", []):
        out["list " + p] = _try(lambda: os.listdir(p))
    for port in req.get("connect", []):
        out["connect %d" % port] = _try(lambda: _connect(port))
    return json.dumps(out).encode()
'''


def spy(url: str, bck: str, obj: str, name: str, **req) -> Dict[str, object]:
    r = etl_get(url, bck, obj, name, args=json.dumps(req))
    assert r.status_code == 200, r.text
    return r.json()


def denied(outcome: object) -> bool:
    """An attempt that failed with a permission/visibility/read-only error."""
    return isinstance(outcome, str) and outcome.split(":")[0] in (
        "PermissionError",
        "FileNotFoundError",
        "OSError",
        "NotADirectoryError",
    )


def node_of(cluster: Cluster, tid: str):
    return next(t for t in cluster.targets if t.node_id == tid)


def test_workers_are_unprivileged_and_the_sandbox_is_reported(cluster: Cluster, src, etls: List[str]) -> None:
    url = cluster.url
    name = unique_etl("sbx-who")
    etls.append(name)
    must_init(url, name, SPY, pool_size=1)
    obj = next(iter(src))
    out = spy(url, src.bucket, obj, name)
    if os.geteuid() == 0:
        # Its own identity: from AIS_ETL_UID_RANGE (default below), gid = uid.
        assert 1_900_000_000 <= out["uid"] <= 1_900_065_535 and out["gid"] == out["uid"], out
    assert out["uid"] != 0 and out["groups"] in ([], [out["gid"]]), out
    assert Path(out["cwd"]).parent.name == "work" and Path(out["cwd"]).name.startswith(name + "."), out
    assert out["tmpdir"] == out["cwd"] + os.sep + "tmp", out
    # The worker got the object's bytes and its name, not its file.
    assert out["path_arg"] == f"ais://{src.bucket}/{obj}" and out["len"] == len(src[obj]), out
    d = details(url, name)
    assert len(d["targets"]) == NUM_TARGETS
    for t in d["targets"]:
        sb = t["sandbox"]
        assert sb["enabled"] and sb["uid"] == out["uid"] and sb["gid"] == out["gid"], sb
        assert sb["mountns"] and sb["netns"] and sb["kill"] == "cgroup", sb
        assert {"memory", "pids"} <= set(sb["cgroups"]), sb
        assert sb["limits"]["memory"] == 4 << 30 and sb["limits"]["nproc"] >= 256, sb
        assert sb["limits"]["memory_enforced_by"].startswith("cgroup"), sb
    show = ais(cluster, "etl", "show", name).stdout
    assert "SANDBOX" in show and f"uid={out['uid']}" in show, show


def test_no_access_to_the_store_or_metadata(cluster: Cluster, src, etls: List[str]) -> None:
    """Another bucket's object file: neither readable nor writable (not even
    visible) from a transform; nor the node's metadata; data dirs are 0700."""
    url = cluster.url
    victim = unique_bucket_name("victim")
    r = requests.post(f"{url}/v1/buckets/{victim}", params={"provider": "ais"}, json={"action": "create-bck"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    try:
        secret = b"top secret " + uuid.uuid4().hex.encode()
        put_obj(url, victim, "secret.txt", secret)
        holder = node_of(cluster, owner_target(cluster, victim, "secret.txt"))
        files = [mp / "@ais" / victim / "secret.txt" for mp in holder.mpaths]
        files = [f for f in files if f.exists()]
        assert files, f"object file not found under {holder.mpaths}"
        meta = holder.data_dir / "meta"
        meta_files = [str(p) for p in meta.iterdir() if p.is_file()]
        assert meta_files, meta
        for d in [holder.data_dir, meta, *holder.mpaths]:
            assert stat.S_IMODE(d.stat().st_mode) == 0o700, d

        name = unique_etl("sbx-store")
        etls.append(name)
        must_init(url, name, SPY)
        # Run it on the object's own target (same host, same mountpath).
        obj = next(o for o in src if owner_target(cluster, src.bucket, o) == holder.node_id)
        paths = [str(f) for f in files]
        out = spy(
            url, src.bucket, obj, name,
            read=paths + meta_files,
            write=paths,
            list=[str(meta), *map(str, holder.mpaths), str(holder.data_dir)],
        )
        attempts = {k: v for k, v in out.items() if k.split()[0] in ("read", "write", "list")}
        assert len(attempts) == 2 * len(paths) + len(meta_files) + 2 + len(holder.mpaths), out
        assert all(denied(v) for v in attempts.values()), attempts
        assert out["path_arg"] == f"ais://{src.bucket}/{obj}", out
        # The object is intact.
        assert plain_get(url, victim, "secret.txt") == secret
        assert files[0].read_bytes() == secret
    finally:
        requests.delete(f"{url}/v1/buckets/{victim}", params={"provider": "ais"}, json={"action": "destroy-bck"}, timeout=HTTP_TIMEOUT)


def test_no_writes_outside_the_work_dir(cluster: Cluster, src, etls: List[str]) -> None:
    url = cluster.url
    name = unique_etl("sbx-write")
    etls.append(name)
    must_init(url, name, SPY, pool_size=1)
    tag = uuid.uuid4().hex[:8]
    outside = [f"/tmp/ais-sbx-{tag}", f"/var/tmp/ais-sbx-{tag}", f"/etc/ais-sbx-{tag}", str(cluster.base_dir / f"ais-sbx-{tag}"), f"/ais-sbx-{tag}"]
    obj = next(iter(src))
    out = spy(url, src.bucket, obj, name, write=outside + [f"inside-{tag}", f"tmp/inside-{tag}"])
    for p in outside:
        assert denied(out["write " + p]), out
        assert not Path(p).exists(), p
    assert out[f"write inside-{tag}"] == "ok:5" and out[f"write tmp/inside-{tag}"] == "ok:5", out
    written = list(Path(cluster.base_dir).glob(f"*/etl/work/{name}.*/inside-{tag}"))
    assert len(written) == 1 and written[0].read_bytes() == b"pwned", written
    assert written[0].stat().st_uid == out["uid"]


MEMORY_HOG = """
def transform(data, path, etl_args):
    if etl_args == "hog":
        x = b"x" * (4 << 30)  # 4 GiB, touched
        return x[:10]
    return b"fine:" + data
"""


def test_memory_limit_fails_the_object_not_the_etl(cluster: Cluster, src, etls: List[str]) -> None:
    url = cluster.url
    name = unique_etl("sbx-mem")
    etls.append(name)
    must_init(url, name, MEMORY_HOG, pool_size=1, limits={"memory": "256MiB"})
    obj, data = next(iter(src.items()))
    tid = owner_target(cluster, src.bucket, obj)
    assert target_stats(url, name)[tid]["sandbox"]["limits"]["memory"] == 256 << 20
    r = etl_get(url, src.bucket, obj, name, args="hog")
    assert r.status_code == 422, r.text
    msg = err_message(r)
    assert f"etl job {name} failed to transform ais://{src.bucket}/{obj}: worker exceeded its memory limit (256 MiB)" in msg, msg
    for _ in range(2):
        r = etl_get(url, src.bucket, obj, name)
        assert r.status_code == 200 and r.content == b"fine:" + data, r.text
    assert target_stats(url, name)[tid]["stage"] == "Running"


def test_output_limit(cluster: Cluster, src, etls: List[str]) -> None:
    url = cluster.url
    name = unique_etl("sbx-out")
    etls.append(name)
    code = "def transform(data, path, etl_args):\n    return data * 1000 if etl_args == 'big' else data\n"
    must_init(url, name, code, pool_size=1, limits={"output": "1KiB"})
    obj, data = next(iter(src.items()))
    r = etl_get(url, src.bucket, obj, name, args="big")
    assert r.status_code == 422, r.text
    assert "worker exceeded its output limit (1024 bytes)" in err_message(r), err_message(r)
    r = etl_get(url, src.bucket, obj, name)
    assert r.status_code == 200 and r.content == data, r.text


FORKER = """
import os, time

def transform(data, path, etl_args):
    pids = []
    for i in range(int(etl_args or 0)):
        pid = os.fork()
        if pid == 0:
            try:
                if i == 0:  # escape the process group and the parent
                    os.setsid()
                    if os.fork() > 0:
                        os._exit(0)
                time.sleep(3600)
            finally:
                os._exit(0)
        pids.append(pid)
    return " ".join(map(str, pids)).encode()
"""


def test_forked_and_setsid_children_die_with_stop_and_rm(cluster: Cluster, src, etls: List[str]) -> None:
    url = cluster.url
    name = unique_etl("sbx-fork")
    etls.append(name)
    must_init(url, name, FORKER, pool_size=1)
    obj = next(iter(src))

    def fork(n: int) -> List[int]:
        r = etl_get(url, src.bucket, obj, name, args=str(n))
        assert r.status_code == 200, r.text
        pids = [int(p) for p in r.text.split()]
        assert len(pids) == n
        return pids

    pids = fork(200)
    deadline = time.monotonic() + 10
    while len(etl_procs(cluster, name)) < 200 + NUM_TARGETS and time.monotonic() < deadline:
        time.sleep(0.1)
    procs = etl_procs(cluster, name)
    assert len(procs) >= 200 + NUM_TARGETS, len(procs)  # the setsid grandchild included
    sessions = {int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[3]) for p in procs if pid_alive(p)}
    assert len(sessions) >= 2, sessions
    ais(cluster, "etl", "stop", name)
    wait_no_procs(cluster, name)
    assert not [p for p in pids if pid_alive(p)]

    ais(cluster, "etl", "start", name)
    pids = fork(50)
    assert all(pid_alive(p) for p in pids[1:])  # pids[0] exited after its setsid fork
    ais(cluster, "etl", "rm", name)
    wait_no_procs(cluster, name)
    assert not [p for p in pids if pid_alive(p)]


def test_no_network_unless_asked(cluster: Cluster, src, etls: List[str]) -> None:
    url = cluster.url
    port = urlparse(url).port
    tport = urlparse(cluster.targets[0].url).port
    obj = next(iter(src))
    closed = unique_etl("sbx-nonet")
    etls.append(closed)
    must_init(url, closed, SPY, pool_size=1)
    out = spy(url, src.bucket, obj, closed, connect=[port, tport])
    for p in (port, tport):
        v = out[f"connect {p}"]
        assert v.split(":")[0] in ("ConnectionRefusedError", "OSError", "TimeoutError"), out
    assert all(s["sandbox"]["netns"] for s in target_stats(url, closed).values())
    assert all(s["sandbox"]["network"].startswith("private") for s in target_stats(url, closed).values())
    assert "NETWORK:       private" in ais(cluster, "etl", "show", closed).stdout

    # (The session cluster runs with AIS_ETL_ALLOW_HOST_NETWORK=1; without
    # it, see test_host_network_needs_auth_or_the_operators_consent.)
    opened = unique_etl("sbx-net")
    etls.append(opened)
    must_init(url, opened, SPY, pool_size=1, network=True)
    out = spy(url, src.bucket, obj, opened, connect=[port])
    assert out[f"connect {port}"] == "ok:connected", out
    assert not any(s["sandbox"]["netns"] for s in target_stats(url, opened).values())
    assert "NETWORK:       host" in ais(cluster, "etl", "show", opened).stdout


def test_host_network_needs_auth_or_the_operators_consent(tmp_path: Path) -> None:
    """Without authentication a host-network ETL could call the admin API
    (delete buckets): "network": true and runtime.command servers are refused
    unless the operator set AIS_ETL_ALLOW_HOST_NETWORK=1."""
    c = Cluster(base_dir=tmp_path / "nonet", num_targets=1, env={"AIS_ETL_ENV_CACHE": str(tmp_path / "envs")})
    c.start()
    try:
        r = init_code(c.url, unique_etl("net-no"), SPY, network=True)
        assert r.status_code == 400 and "AIS_ETL_ALLOW_HOST_NETWORK" in err_message(r), r.text
        msg = {
            "name": unique_etl("cmd-no"),
            "communication": "hpush://",
            "runtime": {"image": "x", "command": ["/bin/true"]},
        }
        r = requests.put(f"{c.url}/v1/etl", json=msg, timeout=HTTP_TIMEOUT)
        assert r.status_code == 400 and "runtime.command" in err_message(r), r.text
        # Nothing registered; a private-network ETL still works.
        assert requests.get(f"{c.url}/v1/etl", timeout=HTTP_TIMEOUT).json() == []
        must_init(c.url, unique_etl("net-ok"), SPY, pool_size=1)
    finally:
        c.stop()


def test_pool_size_and_limits_cannot_exceed_the_operators(cluster: Cluster) -> None:
    """An init asking for more workers or larger limits than the operator
    allows (defaults: 2x cores workers; AIS_ETL_MEM_LIMIT etc.) is a 400
    naming the limit; lower limits are fine."""
    url = cluster.url
    for kw, want in (
        ({"pool_size": 100000}, "AIS_ETL_MAX_POOL_SIZE"),
        ({"limits": {"memory": "64GiB"}}, "limits.memory"),
        ({"limits": {"nproc": 1000000}}, "limits.nproc"),
        ({"limits": {"output": "1TiB"}}, "limits.output"),
        ({"limits": {"memory": 0}}, "limits.memory"),
    ):
        r = init_code(url, unique_etl("caps"), "def transform(data):\n    return data\n", **kw)
        assert r.status_code == 400 and want in err_message(r), (kw, r.text)
    assert not [e for e in requests.get(f"{url}/v1/etl", timeout=HTTP_TIMEOUT).json() if e["id"].startswith("caps-")]


KILLER = r'''
import json, os, signal

def transform(data, path, etl_args):
    out = {"ppid": os.getppid()}
    try:
        os.kill(os.getppid(), signal.SIGKILL)
        out["kill_parent"] = "killed"
    except BaseException as e:
        out["kill_parent"] = type(e).__name__
    nodes = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if b"aisnode" in cmd.split(b"\0")[0]:
            try:
                os.kill(int(pid), 0)  # permission check only
                nodes[pid] = "allowed"
            except BaseException as e:
                nodes[pid] = type(e).__name__
    out["nodes"] = nodes
    return json.dumps(out).encode()
'''


def test_transform_cannot_kill_its_target(cluster: Cluster, src, etls: List[str]) -> None:
    url = cluster.url
    other = unique_etl("sbx-other")
    etls.append(other)
    must_init(url, other, "def transform(data):\n    return data.upper()\n")
    name = unique_etl("sbx-kill")
    etls.append(name)
    must_init(url, name, KILLER)
    for obj, data in list(src.items())[:6]:
        r = etl_get(url, src.bucket, obj, name)
        assert r.status_code == 200, r.text
        out = r.json()
        tid = owner_target(cluster, src.bucket, obj)
        assert out["ppid"] == node_of(cluster, tid).proc.pid, out
        assert out["kill_parent"] == "PermissionError", out
        assert out["nodes"] and set(out["nodes"].values()) == {"PermissionError"}, out
        # The target, and the other ETL, keep serving.
        assert plain_get(url, src.bucket, obj) == data
        r = etl_get(url, src.bucket, obj, other)
        assert r.status_code == 200 and r.content == data.upper(), r.text
    assert all(n.proc.poll() is None for n in cluster.targets)


def wait_failed(url: str, name: str, tid: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = target_stats(url, name)[tid]
        if st["stage"] == "Failed" or time.monotonic() > deadline:
            return st
        time.sleep(0.2)


def test_crash_looping_etl_fails_and_the_cluster_stays_up(cluster: Cluster, src, etls: List[str]) -> None:
    url = cluster.url
    name = unique_etl("sbx-crash")
    etls.append(name)
    must_init(url, name, "import os\n\ndef transform(data):\n    os._exit(3)\n", pool_size=1)
    obj = next(iter(src))
    tid = owner_target(cluster, src.bucket, obj)
    msgs = []
    for _ in range(5):
        r = etl_get(url, src.bucket, obj, name)
        assert r.status_code == 422, r.text
        msgs.append(err_message(r))
    assert all("worker process exited with status 3" in m for m in msgs), msgs
    st = wait_failed(url, name, tid)
    assert st["stage"] == "Failed", st
    assert "crashed 5 times" in st["error"] and "exited with status 3" in st["error"], st
    # No more respawns: the next request fails at once with the reason.
    r = etl_get(url, src.bucket, obj, name)
    assert r.status_code == 422, r.text
    assert "the ETL failed: its workers crashed 5 times" in err_message(r), err_message(r)
    assert st["worker_pids"] == [] or not any(pid_alive(p) for p in st["worker_pids"]), st
    d = details(url, name)
    assert d["stage"] == "Failed" and "crashed 5 times" in d["error"], d
    show = ais(cluster, "etl", "show", name).stdout
    assert "Failed" in show and "crashed 5 times" in show, show
    # Other targets' pools of the same ETL, and the cluster, are fine.
    assert all(n.proc.poll() is None for n in cluster.targets)
    assert plain_get(url, src.bucket, obj) == src[obj]


def test_etl_that_dies_at_import_on_respawn_fails(cluster: Cluster, src, etls: List[str]) -> None:
    url = cluster.url
    name = unique_etl("sbx-imp")
    etls.append(name)
    code = """
import os
import signal
if os.path.exists("crashed"):
    os._exit(1)

def transform(data):
    open("crashed", "w").close()
    os._exit(2)
"""
    must_init(url, name, code, pool_size=1)
    obj = next(iter(src))
    tid = owner_target(cluster, src.bucket, obj)
    r = etl_get(url, src.bucket, obj, name)
    assert r.status_code == 422 and "exited with status 2" in err_message(r), r.text
    st = wait_failed(url, name, tid)
    assert st["stage"] == "Failed", st
    assert "failed to start a replacement worker" in st["error"], st
    r = etl_get(url, src.bucket, obj, name)
    assert r.status_code == 422 and "the ETL failed" in err_message(r), r.text
    assert all(n.proc.poll() is None for n in cluster.targets)


def kill_and_restart_first_target(c: Cluster):
    """SIGKILLs the cluster's first target and starts it again on the same
    data (its metadata, ETLs included, as it left them); returns the new node."""
    old = c.targets[0]
    old.proc.send_signal(signal.SIGKILL)
    old.proc.wait(timeout=10)
    c.targets.remove(old)
    mpath = old.mpaths[0]
    new = c._spawn("target", old.data_dir, ["--join", c.proxy.url, "--mpath", str(mpath)], mpaths=[mpath])
    c.targets.append(new)
    c._wait_for_targets()
    return new


def test_failing_etl_from_metadata_does_not_loop_at_start_up(tmp_path: Path) -> None:
    """A target restarting with an ETL in its metadata that can no longer start
    (here: it refuses a second import) marks it failed once and keeps serving."""
    c = Cluster(base_dir=tmp_path / "restart", num_targets=1, env={"AIS_ETL_ENV_CACHE": str(tmp_path / "envs")})
    c.start()
    try:
        bck = unique_bucket_name("boot")
        r = requests.post(f"{c.url}/v1/buckets/{bck}", params={"provider": "ais"}, json={"action": "create-bck"}, timeout=HTTP_TIMEOUT)
        assert r.status_code == 200, r.text
        put_obj(c.url, bck, "o1", b"payload")
        name = unique_etl("sbx-boot")
        # Work dirs are fresh per start (nothing the ETL wrote survives), so
        # the test marks the ETL's environment (read-only to the worker; a
        # requirement the host already meets gives the ETL its own venv).
        code = (
            "import os, sys\n"
            "if os.path.exists(os.path.join(sys.prefix, 'refuse-start')):\n"
            "    raise SystemExit('refusing to start twice')\n\n"
            "def transform(data):\n"
            "    return data\n"
        )
        must_init(c.url, name, code, pool_size=1, deps="requests\n")
        assert etl_get(c.url, bck, "o1", name).content == b"payload"
        venvs = [p.parent for p in (tmp_path / "envs").rglob("pyvenv.cfg")]
        assert len(venvs) == 1, venvs
        (venvs[0] / "refuse-start").write_text("x")

        new = kill_and_restart_first_target(c)

        deadline = time.monotonic() + 30
        st: dict = {}
        while time.monotonic() < deadline:
            st = target_stats(c.url, name).get(new.node_id, {})
            if st.get("stage") == "Failed":
                break
            time.sleep(0.2)
        assert st.get("stage") == "Failed" and "refusing to start twice" in st.get("error", ""), st
        r = etl_get(c.url, bck, "o1", name)
        assert r.status_code == 422 and "refusing to start twice" in err_message(r), r.text
        time.sleep(3)  # metadata keeps flowing; the start is not retried
        starts = new.log_path.read_text().count("failed to start ETL")
        assert starts == 1, starts
        assert new.running and plain_get(c.url, bck, "o1") == b"payload"
        assert not etl_procs(c, name)
    finally:
        c.stop()


def test_cpu_time_limit(cluster: Cluster, src, etls: List[str]) -> None:
    url = cluster.url
    name = unique_etl("sbx-cpu")
    etls.append(name)
    # Spins on CPU time (not wall time: the machine may be loaded).
    code = (
        "import time\n\n"
        "def transform(data, path, etl_args):\n"
        "    if etl_args == 'spin':\n"
        "        while time.process_time() < 60:\n"
        "            pass\n"
        "    return data\n"
    )
    must_init(url, name, code, pool_size=1, limits={"cpu_seconds": 1}, obj_timeout="5m")
    obj, data = next(iter(src.items()))
    r = requests.get(f"{url}/v1/objects/{src.bucket}/{obj}", params={"provider": "ais", "etl_name": name, "etl_args": "spin"}, timeout=600)
    assert r.status_code == 422, r.text
    assert "worker exceeded its CPU time limit (1 s)" in err_message(r), err_message(r)
    r = etl_get(url, src.bucket, obj, name)
    assert r.status_code == 200 and r.content == data, r.text


PLANTER = r'''
import os


def transform(data, path, etl_args):
    # etl_args: a directory of the host's that the node must never touch.
    victim = etl_args
    for name, to in (("code.py", os.path.join(victim, "pwned-code")), ("ais_etl_worker.py", os.path.join(victim, "pwned-worker"))):
        try:
            os.remove(name)
        except FileNotFoundError:
            pass
        os.symlink(to, name)
    if not os.path.islink("tmp"):
        os.rename("tmp", "tmp.orig")
        os.symlink(victim, "tmp")
    return b"planted in " + os.getcwd().encode()
'''


def test_links_planted_in_the_work_dir_are_never_followed(tmp_path: Path) -> None:
    """A transform replaces files of its work dir with links to a directory
    of the host (its code file, the worker script, tmp/). Stop + start,
    re-init under the same name and a kill -9 of the target each start the
    ETL again: the node writes, chowns and chmods nothing through them, and
    every start gets a fresh work dir."""
    c = Cluster(base_dir=tmp_path / "links", num_targets=1, env={"AIS_ETL_ENV_CACHE": str(tmp_path / "envs")})
    c.start()
    victim = tmp_path / "victim"
    victim.mkdir()
    os.chmod(victim, 0o755)
    (victim / "keep").write_bytes(b"keep")
    before = victim.stat()

    def plant() -> str:
        r = etl_get(c.url, bck, "o1", name, args=str(victim))
        assert r.status_code == 200, r.text
        return r.content.decode().removeprefix("planted in ")

    def untouched() -> None:
        st = victim.stat()
        assert (st.st_uid, st.st_gid, st.st_mode) == (before.st_uid, before.st_gid, before.st_mode)
        assert sorted(p.name for p in victim.iterdir()) == ["keep"]
        assert (victim / "keep").read_bytes() == b"keep"

    try:
        bck = unique_bucket_name("links")
        r = requests.post(f"{c.url}/v1/buckets/{bck}", params={"provider": "ais"}, json={"action": "create-bck"}, timeout=HTTP_TIMEOUT)
        assert r.status_code == 200, r.text
        put_obj(c.url, bck, "o1", b"payload")
        name = unique_etl("sbx-links")
        must_init(c.url, name, PLANTER, pool_size=1)
        dirs = [plant()]
        # 1. stop + start
        assert requests.post(f"{c.url}/v1/etl/{name}/stop", timeout=HTTP_TIMEOUT).status_code == 200
        r = requests.post(f"{c.url}/v1/etl/{name}/start", timeout=HTTP_TIMEOUT * 3)
        assert r.status_code == 200, r.text
        untouched()
        dirs.append(plant())
        # 2. re-init under the same name
        assert requests.delete(f"{c.url}/v1/etl/{name}", timeout=HTTP_TIMEOUT).status_code == 200
        untouched()
        must_init(c.url, name, PLANTER, pool_size=1)
        untouched()
        dirs.append(plant())
        # 3. the target killed and restarted with the ETL in its metadata
        kill_and_restart_first_target(c)
        deadline = time.monotonic() + 60
        while True:
            r = etl_get(c.url, bck, "o1", name, args=str(victim))
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert r.status_code == 200, r.text
        dirs.append(r.content.decode().removeprefix("planted in "))
        untouched()
        # Every start had its own work dir; only the running one is left.
        assert len(set(dirs)) == len(dirs), dirs
        assert [Path(d).exists() for d in dirs] == [False, False, False, True], dirs
        assert requests.delete(f"{c.url}/v1/etl/{name}", timeout=HTTP_TIMEOUT).status_code == 200
        deadline = time.monotonic() + 10
        while Path(dirs[-1]).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(dirs[-1]).exists(), "rm leaves the work dir behind"
        untouched()
    finally:
        c.stop()


NEIGHBOUR = r'''
import json, os, signal


def _try(fn):
    try:
        fn()
        return "ok"
    except BaseException as e:
        return type(e).__name__


def _read(p):
    with open(p, "rb") as f:
        return f.read(64)


def transform(data, path, etl_args):
    out = {"uid": os.getuid()}
    for pid in json.loads(etl_args):
        out["environ %d" % pid] = _try(lambda: _read("/proc/%d/environ" % pid))
        out["mem %d" % pid] = _try(lambda: _read("/proc/%d/mem" % pid))
        out["cwd %d" % pid] = _try(lambda: os.listdir("/proc/%d/cwd" % pid))
        out["kill %d" % pid] = _try(lambda: os.kill(pid, signal.SIGKILL))
    return json.dumps(out).encode()
'''


def test_one_etl_cannot_read_or_kill_another(cluster: Cluster, src, etls: List[str]) -> None:
    """Each ETL runs under its own uid: one ETL's transform can neither read
    another's worker memory, environment or files through /proc, nor kill
    its workers; the victim keeps serving and never fails."""
    if os.geteuid() != 0:
        pytest.skip("ETLs get their own uid only when the target is root (it can switch uids)")
    url = cluster.url
    victim = unique_etl("sbx-victim")
    etls.append(victim)
    must_init(url, victim, "def transform(data):\n    return data.upper()\n", pool_size=1)
    attacker = unique_etl("sbx-neigh")
    etls.append(attacker)
    must_init(url, attacker, NEIGHBOUR, pool_size=1)
    pids = sorted({p for s in target_stats(url, victim).values() for p in s["worker_pids"]})
    assert len(pids) == NUM_TARGETS, pids
    for obj in list(src)[:6]:
        r = etl_get(url, src.bucket, obj, attacker, args=json.dumps(pids))
        assert r.status_code == 200, r.text
        out = r.json()
        for pid in pids:
            for what in ("environ", "mem", "cwd", "kill"):
                assert out[f"{what} {pid}"] in ("PermissionError", "ProcessLookupError"), (what, pid, out)
        if os.geteuid() == 0:
            st = target_stats(url, victim)
            assert out["uid"] not in {s["sandbox"]["uid"] for s in st.values()}, (out, st)
    for obj, data in list(src.items())[:6]:
        r = etl_get(url, src.bucket, obj, victim)
        assert r.status_code == 200 and r.content == data.upper(), r.text
    st = target_stats(url, victim)
    assert all(s["stage"] == "Running" for s in st.values()), st
    assert sorted(p for s in st.values() for p in s["worker_pids"]) == pids, st


FILLER = r'''
import json, os


def transform(data, path, etl_args):
    out = {}
    try:
        with open("big.bin", "wb") as f:
            for _ in range(64):
                f.write(b"x" * (1 << 20))
        out["big"] = "ok"
    except OSError as e:
        out["big"] = "errno %d" % e.errno
    try:
        os.remove("big.bin")
    except OSError:
        pass
    try:
        for i in range(5000):
            open("f%05d" % i, "wb").close()
        out["files"] = "ok"
    except OSError as e:
        out["files"] = "errno %d" % e.errno
    return json.dumps(out).encode()
'''


def etl_mounts(base: Path) -> List[str]:
    """Mount points of ETL work dirs under ``base`` (this mount namespace)."""
    with open("/proc/self/mountinfo") as f:
        return [l.split()[4] for l in f if l.split()[4].startswith(str(base)) and "/etl/work/" in l.split()[4]]


def test_work_dir_quota_is_enforced_by_the_kernel(tmp_path: Path) -> None:
    """A work dir is a size-limited tmpfs (AIS_ETL_WORKDIR_LIMIT): a transform
    writing past it, or creating too many files, gets ENOSPC; rm leaves no
    mount and no file behind."""
    if os.geteuid() != 0:
        pytest.skip("work dir quotas need a target that may mount (root)")
    c = Cluster(
        base_dir=tmp_path / "quota",
        num_targets=1,
        env={"AIS_ETL_ENV_CACHE": str(tmp_path / "envs"), "AIS_ETL_WORKDIR_LIMIT": "16MiB"},
    )
    c.start()
    try:
        bck = unique_bucket_name("quota")
        r = requests.post(f"{c.url}/v1/buckets/{bck}", params={"provider": "ais"}, json={"action": "create-bck"}, timeout=HTTP_TIMEOUT)
        assert r.status_code == 200, r.text
        put_obj(c.url, bck, "o1", b"x")
        name = unique_etl("sbx-quota")
        must_init(c.url, name, FILLER, pool_size=1)
        assert len(etl_mounts(tmp_path)) == 1, etl_mounts(tmp_path)
        r = etl_get(c.url, bck, "o1", name)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out == {"big": "errno 28", "files": "errno 28"}, out
        assert requests.delete(f"{c.url}/v1/etl/{name}", timeout=HTTP_TIMEOUT).status_code == 200
        deadline = time.monotonic() + 10
        while etl_mounts(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert etl_mounts(tmp_path) == []
        assert not list((tmp_path / "quota").glob("*/etl/work/*"))
    finally:
        c.stop()


SYSCALLS = r'''
import ctypes, errno, json, os, platform, threading

libc = ctypes.CDLL(None, use_errno=True)
KEYCTL = {"x86_64": 250, "aarch64": 219}.get(platform.machine())


def _r(rc):
    return "ok" if rc >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))


def transform(data, path, etl_args):
    out = {}
    out["ptrace"] = _r(libc.ptrace(0, 0, None, None))  # PTRACE_TRACEME
    out["process_vm_readv"] = _r(libc.process_vm_readv(os.getpid(), None, 0, None, 0, 0))
    out["unshare_user"] = _r(libc.unshare(0x10000000))  # CLONE_NEWUSER
    if KEYCTL:
        out["keyctl"] = _r(libc.syscall(KEYCTL, 0, -3, 0))  # KEYCTL_GET_KEYRING_ID, session
    out["mount"] = _r(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
    seen = []
    t = threading.Thread(target=lambda: seen.append(1))
    t.start()
    t.join()
    out["thread"] = "ok" if seen else "failed"
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    out["fork"] = "ok" if os.waitpid(pid, 0)[1] >> 8 == 7 else "failed"
    return json.dumps(out).encode()
'''


def test_seccomp_denies_tracing_namespaces_and_keyrings(cluster: Cluster, src, etls: List[str]) -> None:
    """Tracing, reading a process's memory, new user namespaces, keyrings and
    mounts fail with EPERM in a transform; threads and fork still work."""
    url = cluster.url
    name = unique_etl("sbx-sys")
    etls.append(name)
    must_init(url, name, SYSCALLS, pool_size=1)
    obj = next(iter(src))
    r = etl_get(url, src.bucket, obj, name)
    assert r.status_code == 200, r.text
    out = r.json()
    for k in ("ptrace", "process_vm_readv", "unshare_user", "keyctl", "mount"):
        if k in out:
            assert out[k] == "EPERM", (k, out)
    assert out["thread"] == "ok" and out["fork"] == "ok", out
    assert all(s["sandbox"]["seccomp"] for s in target_stats(url, name).values())


def test_a_command_cannot_name_the_nodes_data(cluster: Cluster, src, etls: List[str]) -> None:
    """A runtime.command's executable and absolute arguments are bound into
    its sandbox (so a server's own files stay readable): one naming an
    object file, a mountpath or a data dir — of any target on the host —
    is refused, and nothing of it runs."""
    holder = node_of(cluster, owner_target(cluster, src.bucket, next(iter(src))))
    other = next(t for t in cluster.targets if t.node_id != holder.node_id)
    obj_files = [f for mp in holder.mpaths for f in (mp / "@ais" / src.bucket).rglob("*") if f.is_file()]
    assert obj_files
    attempts = [
        [sys.executable, "-c", "import sys; print(open(sys.argv[1]).read())", str(obj_files[0])],
        [sys.executable, "-c", "pass", str(other.mpaths[0])],
        [sys.executable, "-c", "pass", str(other.data_dir / "meta")],
        [str(holder.data_dir / "x" / "bin" / "python"), "-c", "pass"],
    ]
    # The last one's "executable" exists, so its prefix would be bound.
    exe = holder.data_dir / "x" / "bin" / "python"
    exe.parent.mkdir(parents=True, exist_ok=True)
    exe.write_text("")
    # A file the ETL's uid could not read by itself (0644 in a 0700 dir,
    # like a proxy's user store or ~/.pip/pip.conf), named as an argument.
    closed = holder.data_dir.parent / f"closed-{uuid.uuid4().hex[:8]}"
    closed.mkdir(mode=0o700)
    (closed / "secret.conf").write_text("index-password")
    (closed / "secret.conf").chmod(0o644)
    attempts.append([sys.executable, "-c", "pass", str(closed / "secret.conf")])
    try:
        for cmd in attempts:
            name = unique_etl("cmd-data")
            msg = {
                "name": name,
                "communication": "hpush://",
                "init_timeout": "30s",
                "runtime": {"image": "x", "command": cmd},
            }
            r = requests.put(f"{cluster.url}/v1/etl", json=msg, timeout=HTTP_TIMEOUT * 3)
            assert r.status_code == 400, (cmd, r.text)
            assert "inside a node's own data" in err_message(r) or "not readable by the ETL's uid" in err_message(r), r.text
            assert name not in [e["id"] for e in requests.get(f"{cluster.url}/v1/etl", timeout=HTTP_TIMEOUT).json()]
    finally:
        exe.unlink()
        exe.parent.rmdir()
        exe.parent.parent.rmdir()
        (closed / "secret.conf").unlink()
        closed.rmdir()


def local_package(name: str, backend: str, files: Dict[str, str]) -> Path:
    """A package dir any uid can read (`/tmp/ais-NAME-RAND/NAME`) whose
    in-tree build backend is `backend`: pip runs it at install time with no
    index; the caller removes the dir's parent."""
    pkg = Path(f"/tmp/ais-{name}-{uuid.uuid4().hex[:8]}") / name
    pkg.mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
        f'[project]\nname = "{name}"\nversion = "1.0"\n'
    )
    (pkg / "backend.py").write_text(backend)
    for f, text in files.items():
        (pkg / f).write_text(text)
    for p in [pkg.parent, pkg]:
        p.chmod(0o755)
    for f in pkg.iterdir():
        f.chmod(0o644)
    return pkg


# A package whose build backend (run by pip at install time, no index
# needed) tries what SPY tries, prints what it got on one line and fails.
EVIL_BACKEND = r'''
import json, os, sys
req = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "attempts.json")))
def _try(fn):
    try:
        r = fn()
        return "ok" if r is None else "ok:%s" % (r,)
    except BaseException as e:
        return "%s: %s" % (type(e).__name__, e)
out = {"uid": os.getuid(), "env": sorted(os.environ)}
for p in req["read"]:
    out["read " + p] = _try(lambda: len(open(p, "rb").read()))
for p in req["write"]:
    out["write " + p] = _try(lambda: open(p, "wb").write(b"pwned"))
print("EVIL-REPORT " + json.dumps(out), file=sys.stderr, flush=True)
raise SystemExit("evil backend done")
'''


def test_dependency_install_runs_sandboxed(cluster: Cluster, src, etls: List[str]) -> None:
    """pip runs packages' build code at install time: it runs in the ETL
    sandbox under an identity of its own (not root, not the ETL's), with
    the node's secrets, data and the rest of the host out of reach."""
    holder = node_of(cluster, owner_target(cluster, src.bucket, next(iter(src))))
    obj_files = [str(f) for mp in holder.mpaths for f in (mp / "@ais" / src.bucket).rglob("*") if f.is_file()]
    meta_files = [str(p) for p in (holder.data_dir / "meta").iterdir() if p.is_file()]
    victim = Path(f"/tmp/ais-written-by-the-install-{uuid.uuid4().hex[:8]}")
    attempts = {
        "read": obj_files[:1] + meta_files[:2] + ["/etc/shadow"],
        "write": [str(victim), "/etc/ais-evil", str(holder.data_dir / "evil"), obj_files[0]],
    }
    pkg = local_package("evilpkg", EVIL_BACKEND, {"attempts.json": json.dumps(attempts)})
    try:
        name = unique_etl("evil-deps")
        etls.append(name)
        r = init_code(cluster.url, name, "def transform(data):\n    return data\n", deps=f"evilpkg @ file://{pkg}\n")
        assert r.status_code == 400, r.text
        msg = err_message(r)
        line = next((l for l in msg.splitlines() if "EVIL-REPORT " in l), None)
        assert line, msg
        out = json.loads(line.split("EVIL-REPORT ", 1)[1])
        assert out["uid"] not in (0, os.getuid()), out
        # (AIS_PROC_TOKEN: the process's own identity token, ais-proc's.)
        leaked = [k for k in out["env"] if k.startswith(("AIS_", "AWS_", "AZURE_", "GOOGLE_")) and k != "AIS_PROC_TOKEN"]
        assert not leaked, out["env"]
        attempts_out = {k: v for k, v in out.items() if k.split()[0] in ("read", "write")}
        assert len(attempts_out) == 8, out
        assert all(denied(v) for v in attempts_out.values()), attempts_out
        assert not victim.exists() and not Path("/etc/ais-evil").exists()
        assert not (holder.data_dir / "evil").exists()
        # The object is intact and nothing of the install is left running.
        name_in_src = next(iter(src))
        assert plain_get(cluster.url, src.bucket, name_in_src) == src[name_in_src]
        left = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"requirements-missing.txt" in cmd or str(pkg.parent).encode() in cmd:
                left.append(cmd)
        assert not left, left
    finally:
        import shutil

        shutil.rmtree(pkg.parent, ignore_errors=True)


DAEMON_BACKEND = r'''
import os, sys
if os.fork() == 0:
    os.setsid()
    # Keeps the install's stdout and stderr open, detached from its group.
    os.execv("/bin/sleep", ["sleep", "987654"])
raise SystemExit("left a daemon behind")
'''


def test_dependency_install_leaves_nothing_running(cluster: Cluster, etls: List[str]) -> None:
    """An install whose build code leaves a detached process holding its
    output ends anyway (the node does not wait for that output), and the
    process is killed with everything else of the install's uid."""
    pkg = local_package("daemonpkg", DAEMON_BACKEND, {})
    try:
        name = unique_etl("daemon-deps")
        etls.append(name)
        t0 = time.monotonic()
        r = init_code(
            cluster.url, name, "def transform(data):\n    return data\n", deps=f"daemonpkg @ file://{pkg}\n", init_timeout="20s"
        )
        took = time.monotonic() - t0
        # pip itself waits for the daemon's end of its pipe: the init
        # timeout ends the install (all targets build at once).
        msg = err_message(r)
        assert r.status_code == 400 and ("left a daemon behind" in msg or "did not finish within" in msg), r.text
        assert took < 50, took
        left = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if b"987654" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    left.append(pid)
            except OSError:
                pass
        assert not left, left
        # The target starts other ETLs as before.
        ok = unique_etl("after-daemon")
        etls.append(ok)
        must_init(cluster.url, ok, "def transform(data):\n    return data\n", pool_size=1)
    finally:
        import shutil

        shutil.rmtree(pkg.parent, ignore_errors=True)
