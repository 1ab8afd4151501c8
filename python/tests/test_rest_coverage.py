"""Every REST operation of AIStore's ``docs/http_api.md``, sent as its curl
example sends it (with aistore-rs's provider where the example names a
cloud it does not have), against real clusters.

``OPS`` is the checked-in list: each operation is either exercised here
(``test_op`` runs it and checks the answer) or listed as not supported,
with the status and message users get (checked too). ``test_op_count``
holds the line: at least 58 of the 63 work.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import pytest
import requests

from ais_cluster import Cluster
from test_remote import S3Server, fill, rcluster, remote, s3  # noqa: F401

T = 30


def call(
    url: str,
    method: str,
    path: str,
    body: Optional[dict] = None,
    headers: Optional[Dict[str, str]] = None,
    data: Optional[bytes] = None,
    follow: bool = True,
) -> requests.Response:
    """One request as curl -L sends it (the body re-sent after redirects)."""
    h = dict(headers or {})
    raw = data
    if body is not None:
        raw = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    target = url + path
    for _ in range(3):
        r = requests.request(method, target, data=raw, headers=h, allow_redirects=False, timeout=T)
        if follow and r.status_code in (301, 302, 307, 308):
            target = r.headers["Location"]
            continue
        return r
    return r


def ok(r: requests.Response) -> requests.Response:
    assert r.status_code == 200, (r.status_code, r.text[:500])
    return r


def wait_job(url: str, job: str) -> dict:
    deadline = time.monotonic() + 60
    while True:
        st = ok(call(url, "GET", f"/v1/cluster?what=status&id={job}")).json()
        if st["end_time"]:
            return st
        assert time.monotonic() < deadline, st
        time.sleep(0.1)


# ---------------------------------------------------------------- the ops
# name -> (test function) or ("unsupported", status, message fragment, request)

Op = Callable[[str, str], None]
OPS: Dict[str, object] = {}


def op(name: str) -> Callable[[Op], Op]:
    def reg(f: Op) -> Op:
        OPS[name] = f
        return f

    return reg


def elsewhere(name: str, test: str) -> None:
    """Exercised by another test (on a remote bucket, or destructive)."""
    OPS[name] = ("elsewhere", test)


def unsupported(name: str, status: int, msg: str, method: str, path: str, body=None) -> None:
    OPS[name] = ("unsupported", status, msg, method, path, body)


@op("GET object, easy URL (/ais/B/O; the example's gs://)")
def _easy_get(url: str, b: str) -> None:
    ok(call(url, "PUT", f"/v1/objects/{b}/easy", data=b"easy"))
    assert ok(call(url, "GET", f"/ais/{b}/easy")).content == b"easy"


@op("GET object with provider= (the example's provider=gs)")
def _get_provider(url: str, b: str) -> None:
    ok(call(url, "PUT", f"/v1/objects/{b}/p", data=b"P"))
    assert ok(call(url, "GET", f"/v1/objects/{b}/p?provider=ais")).content == b"P"


@op("PUT object, easy URL")
def _easy_put(url: str, b: str) -> None:
    ok(call(url, "PUT", f"/ais/{b}/easy-put", data=b"x"))
    assert ok(call(url, "GET", f"/v1/objects/{b}/easy-put")).content == b"x"


@op("PUT object with provider=")
def _put_provider(url: str, b: str) -> None:
    ok(call(url, "PUT", f"/v1/objects/{b}/pp?provider=ais", data=b"y"))


@op("list objects, easy URL (/ais/B)")
def _easy_list(url: str, b: str) -> None:
    ok(call(url, "PUT", f"/v1/objects/{b}/l1", data=b"1"))
    names = [e["name"] for e in ok(call(url, "GET", f"/ais/{b}", {"action": "list"})).json()["entries"]]
    assert "l1" in names


@op("GET /v1/health")
def _health(url: str, b: str) -> None:
    ok(call(url, "GET", "/v1/health"))


@op("GET /v1/health?prr=true")
def _health_prr(url: str, b: str) -> None:
    ok(call(url, "GET", "/v1/health?prr=true"))
    assert call(url, "GET", "/v1/health?nope=1").status_code == 400


elsewhere("GET object of an s3:// bucket (provider=aws)", "test_remote_ops")


@op("GET a shard member (archpath=)")
def _archpath(url: str, b: str) -> None:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("567.jpg")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"jpg"))
    ok(call(url, "PUT", f"/v1/objects/{b}/train.tar", data=buf.getvalue()))
    assert ok(call(url, "GET", f"/v1/objects/{b}/train.tar?archpath=567.jpg")).content == b"jpg"


@op("create bucket")
def _create(url: str, b: str) -> None:
    name = b + "-c"
    ok(call(url, "POST", f"/v1/buckets/{name}", {"action": "create-bck"}))
    ok(call(url, "DELETE", f"/v1/buckets/{name}", {"action": "destroy-bck"}))


@op("destroy bucket")
def _destroy(url: str, b: str) -> None:
    name = b + "-d"
    ok(call(url, "POST", f"/v1/buckets/{name}", {"action": "create-bck"}))
    ok(call(url, "DELETE", f"/v1/buckets/{name}", {"action": "destroy-bck"}))
    assert call(url, "HEAD", f"/v1/buckets/{name}").status_code == 404


@op("PUT object")
def _put(url: str, b: str) -> None:
    ok(call(url, "PUT", f"/v1/objects/{b}/myobject", data=b"content"))


@op("GET object")
def _get(url: str, b: str) -> None:
    ok(call(url, "PUT", f"/v1/objects/{b}/g", data=b"content"))
    assert ok(call(url, "GET", f"/v1/objects/{b}/g")).content == b"content"


@op("GET a range (Range: bytes=)")
def _range(url: str, b: str) -> None:
    ok(call(url, "PUT", f"/v1/objects/{b}/r", data=bytes(range(200))))
    r = call(url, "GET", f"/v1/objects/{b}/r", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == bytes(range(10, 20)), r.status_code


@op("DELETE object")
def _delete(url: str, b: str) -> None:
    ok(call(url, "PUT", f"/v1/objects/{b}/del", data=b"x"))
    ok(call(url, "DELETE", f"/v1/objects/{b}/del"))
    assert call(url, "GET", f"/v1/objects/{b}/del").status_code == 404


@op("HEAD object")
def _head(url: str, b: str) -> None:
    ok(call(url, "PUT", f"/v1/objects/{b}/h", data=b"12345"))
    assert ok(call(url, "HEAD", f"/v1/objects/{b}/h")).headers["Content-Length"] == "5"


@op("HEAD object ?check_cached=true")
def _check_cached(url: str, b: str) -> None:
    ok(call(url, "PUT", f"/v1/objects/{b}/cc", data=b"x"))
    ok(call(url, "HEAD", f"/v1/objects/{b}/cc?check_cached=true"))
    assert call(url, "HEAD", f"/v1/objects/{b}/none?check_cached=true").status_code == 404


@op("HEAD bucket")
def _head_bucket(url: str, b: str) -> None:
    r = ok(call(url, "HEAD", f"/v1/buckets/{b}"))
    assert json.loads(r.headers["Ais-Bucket-Props"])["provider"] == "ais"


@op("list buckets")
def _list_buckets(url: str, b: str) -> None:
    names = [x["name"] for x in ok(call(url, "GET", "/v1/buckets/", {"action": "list"})).json()]
    assert b in names


@op("list buckets ?presence=2")
def _list_present(url: str, b: str) -> None:
    names = [x["name"] for x in ok(call(url, "GET", "/v1/buckets?presence=2", {"action": "list"})).json()]
    assert b in names
    assert call(url, "GET", "/v1/buckets?presence=9", {"action": "list"}).status_code == 400


@op("list objects with props")
def _list_props(url: str, b: str) -> None:
    ok(call(url, "PUT", f"/v1/objects/{b}/lp", data=b"abc"))
    res = ok(call(url, "GET", f"/v1/buckets/{b}", {"action": "list", "value": {"props": "size"}})).json()
    assert ("lp", 3) in [(e["name"], int(e["size"])) for e in res["entries"]]


elsewhere("list only cached objects (flags=1; the example's gs://)", "test_remote_ops")


@op("GET cluster config")
def _cluster_config(url: str, b: str) -> None:
    assert "space" in ok(call(url, "GET", "/v1/cluster?what=config")).json()


@op("set cluster config (query)")
def _set_config(url: str, b: str) -> None:
    ok(call(url, "PUT", "/v1/cluster/set-config?lru.dont_evict_time=3h"))
    assert ok(call(url, "GET", "/v1/cluster?what=config")).json()["lru"]["dont_evict_time"] == "3h"
    # AIStore's example keys that aistore-rs does not have are named.
    r = call(url, "PUT", "/v1/cluster/set-config?stats_time=33s&log.loglevel=4")
    assert r.status_code == 400 and "stats_time" in r.text, r.text


@op("reset cluster config")
def _reset_config(url: str, b: str) -> None:
    ok(call(url, "PUT", "/v1/cluster", {"action": "reset-config"}))
    assert ok(call(url, "GET", "/v1/cluster?what=config")).json()["lru"]["dont_evict_time"] == "2h"


elsewhere("shut down the cluster", "test_cluster_shutdown")


unsupported(
    "decommission the cluster", 501, "decommission of the whole cluster is not supported",
    "PUT", "/v1/cluster", {"action": "decommission"},
)


elsewhere("shut down a node", "ais-testkit lifecycle.rs::shutdown_node_moves_objects_exits_and_rejoins_in_maintenance")


elsewhere(
    "set primary proxy (another proxy)",
    "ais-testkit proxies.rs::set_primary_hands_the_role_to_another_proxy",
)


@op("start a rebalance")
def _start_reb(url: str, b: str) -> None:
    job = ok(call(url, "PUT", "/v1/cluster", {"action": "start", "value": {"kind": "rebalance"}})).text
    assert job.startswith("rebalance-"), job
    assert not wait_job(url, job)["err"]


@op("stop a rebalance (by kind)")
def _stop_reb(url: str, b: str) -> None:
    ok(call(url, "PUT", "/v1/cluster", {"action": "stop", "value": {"kind": "rebalance"}}))


@op("start a resilver")
def _resilver(url: str, b: str) -> None:
    job = ok(call(url, "PUT", "/v1/cluster", {"action": "start", "value": {"kind": "resilver"}})).text
    assert not wait_job(url, job)["err"]


@op("start a resilver on one target")
def _resilver_one(url: str, b: str) -> None:
    tid = sorted(ok(call(url, "GET", "/v1/daemon?what=smap")).json()["tmap"])[0]
    job = ok(call(url, "PUT", "/v1/cluster", {"action": "start", "value": {"kind": "resilver", "node": tid}})).text
    assert not wait_job(url, job)["err"]


@op("GET node config")
def _node_config(url: str, b: str) -> None:
    assert "lru" in ok(call(url, "GET", "/v1/daemon?what=config")).json()


@op("set node config (query)")
def _set_node_config(url: str, b: str) -> None:
    ok(call(url, "PUT", "/v1/daemon/set-config?lru.enabled=false"))
    assert ok(call(url, "GET", "/v1/daemon?what=config")).json()["lru"]["enabled"] is False


@op("reset node config")
def _reset_node_config(url: str, b: str) -> None:
    ok(call(url, "PUT", "/v1/daemon", {"action": "reset-config"}))
    assert ok(call(url, "GET", "/v1/daemon?what=config")).json()["lru"]["enabled"] is True


@op("set bucket properties (checksum, mirror)")
def _set_bprops(url: str, b: str) -> None:
    ok(call(url, "PATCH", f"/v1/buckets/{b}", {"action": "set-bprops", "value": {"mirror": {"enabled": True}}}))
    props = json.loads(ok(call(url, "HEAD", f"/v1/buckets/{b}")).headers["Ais-Bucket-Props"])
    assert props["mirror"]["enabled"] is True


@op("reset bucket properties")
def _reset_bprops(url: str, b: str) -> None:
    ok(call(url, "PATCH", f"/v1/buckets/{b}", {"action": "reset-bprops"}))
    props = json.loads(ok(call(url, "HEAD", f"/v1/buckets/{b}")).headers["Ais-Bucket-Props"])
    assert props["mirror"]["enabled"] is False


elsewhere("tie an ais:// bucket to a remote backend (backend_bck)", "test_remote_ops")


elsewhere("prefetch a list of objects", "test_remote_ops")


elsewhere("prefetch a range of objects", "test_remote_ops")


@op("delete a list of objects")
def _delete_list(url: str, b: str) -> None:
    for n in ("o1", "o2", "o3"):
        ok(call(url, "PUT", f"/v1/objects/{b}/{n}", data=b"x"))
    job = ok(call(url, "DELETE", f"/v1/buckets/{b}", {"action": "delete-listrange", "value": {"objnames": ["o1", "o2", "o3"]}})).text
    assert not wait_job(url, job)["err"]
    assert call(url, "GET", f"/v1/objects/{b}/o2").status_code == 404


@op("delete a range of objects")
def _delete_range(url: str, b: str) -> None:
    for i in range(1000, 1005):
        ok(call(url, "PUT", f"/v1/objects/{b}/__tst/test-{i}", data=b"x"))
    job = ok(call(url, "DELETE", f"/v1/buckets/{b}", {"action": "delete-listrange", "value": {"template": "__tst/test-{1000..2000}"}})).text
    assert not wait_job(url, job)["err"]
    assert call(url, "GET", f"/v1/objects/{b}/__tst/test-1003").status_code == 404


elsewhere("evict a list of objects", "test_remote_ops")


elsewhere("evict a range of objects", "test_remote_ops")


elsewhere("evict a remote bucket", "test_remote_ops")


@op("make-n-copies (n-way mirror)")
def _make_n_copies(url: str, b: str) -> None:
    ok(call(url, "PUT", f"/v1/objects/{b}/m", data=b"mirror me"))
    job = ok(call(url, "POST", f"/v1/buckets/{b}", {"action": "make-n-copies", "value": 2})).text
    st = wait_job(url, job)
    # These targets have one mountpath each: the job says it could not
    # (ais-testkit jobs.rs::make_n_copies_makes_them_or_says_why_not has two).
    assert st["kind"] == "make-n-copies" and "need as many mountpaths" in st["err"], st
    props = json.loads(ok(call(url, "HEAD", f"/v1/buckets/{b}")).headers["Ais-Bucket-Props"])
    assert props["mirror"] == {**props["mirror"], "enabled": True, "copies": 2}
    assert call(url, "POST", f"/v1/buckets/{b}", {"action": "make-n-copies", "value": 0}).status_code == 400
    job = ok(call(url, "POST", f"/v1/buckets/{b}", {"action": "make-n-copies", "value": 1})).text
    assert not wait_job(url, job)["err"]


@op("erasure-code a bucket (ec-encode)")
def _ec_encode(url: str, b: str) -> None:
    ok(call(url, "PUT", f"/v1/objects/{b}/e", data=b"ec"))
    job = ok(call(url, "POST", f"/v1/buckets/{b}", {"action": "ec-encode", "value": {"data_slices": 1, "parity_slices": 1}})).text
    assert not wait_job(url, job)["err"]


@op("rename an object (rename-obj)")
def _rename(url: str, b: str) -> None:
    ok(call(url, "PUT", f"/v1/objects/{b}/dir1/CCCCCC", data=b"c"))
    ok(call(url, "POST", f"/v1/objects/{b}/dir1/CCCCCC", {"action": "rename-obj", "name": "dir2/DDDDDD"}))
    assert ok(call(url, "GET", f"/v1/objects/{b}/dir2/DDDDDD")).content == b"c"


@op("promote files from a target's filesystem")
def _promote(url: str, b: str) -> None:
    body = lambda src: {"action": "promote", "name": src, "value": {"src": src, "rcr": True}}  # noqa: E731
    # Outside the promote roots: refused, naming them (the targets share this host).
    r = call(url, "POST", f"/v1/objects/{b}", body("/etc"))
    assert r.status_code == 403, r.text
    root = r.json()["message"].split("promotes from (")[1].split(";")[0].split(",")[0].strip()
    src = Path(root) / f"rest-{b}"
    (src / "d").mkdir(parents=True, exist_ok=True)
    (src / "d" / "f.txt").write_bytes(b"promoted")
    job = ok(call(url, "POST", f"/v1/objects/{b}", body(str(src)))).text
    assert not wait_job(url, job)["err"]
    assert ok(call(url, "GET", f"/v1/objects/{b}/d/f.txt")).content == b"promoted"


def _what(url: str, path: str) -> requests.Response:
    return ok(call(url, "GET", path))


@op("cluster map (cluster)")
def _smap_c(url: str, b: str) -> None:
    assert "tmap" in _what(url, "/v1/cluster?what=smap").json()


@op("cluster map (node)")
def _smap_d(url: str, b: str) -> None:
    assert "tmap" in _what(url, "/v1/daemon?what=smap").json()


@op("node configuration (query table)")
def _config_d(url: str, b: str) -> None:
    assert "timeout" in _what(url, "/v1/daemon?what=config").json()


@op("remote clusters")
def _remote(url: str, b: str) -> None:
    assert _what(url, "/v1/cluster?what=remote").json()["a"] == []


@op("node information (snode)")
def _snode(url: str, b: str) -> None:
    assert "daemon_id" in _what(url, "/v1/daemon?what=snode").json()


@op("node status")
def _status(url: str, b: str) -> None:
    assert _what(url, "/v1/daemon?what=status").json()["status"] == "online"


@op("cluster statistics")
def _stats_c(url: str, b: str) -> None:
    s = _what(url, "/v1/cluster?what=stats").json()
    assert len(s["proxy"]) == 1 and len(s["target"]) >= 1, s.keys()


@op("node statistics")
def _stats_d(url: str, b: str) -> None:
    tid, t = next(iter(_what(url, "/v1/daemon?what=smap").json()["tmap"].items()))
    s = _what(t["public_net"]["direct_url"], "/v1/daemon?what=stats").json()
    assert s["snode"]["daemon_id"] == tid


@op("system info (all nodes)")
def _sysinfo_c(url: str, b: str) -> None:
    s = _what(url, "/v1/cluster?what=sysinfo").json()
    assert all(v["cpus"] >= 1 for v in s["target"].values()), s


@op("node system info")
def _sysinfo_d(url: str, b: str) -> None:
    assert _what(url, "/v1/daemon?what=sysinfo").json()["mem_total"] > 0


@op("node log")
def _log(url: str, b: str) -> None:
    assert _what(url, "/v1/daemon?what=log").text


@op("BMD (bucket metadata)")
def _bmd(url: str, b: str) -> None:
    tmap = _what(url, "/v1/daemon?what=smap").json()["tmap"]
    t = next(iter(tmap.values()))["public_net"]["direct_url"]
    assert b in _what(t, "/v1/daemon?what=bmd").json()["buckets"]


@op("target mountpaths")
def _mpaths_d(url: str, b: str) -> None:
    t = next(iter(_what(url, "/v1/daemon?what=smap").json()["tmap"].values()))["public_net"]["direct_url"]
    assert _what(t, "/v1/daemon?what=mountpaths").json()["available"]


@op("all mountpaths")
def _mpaths_c(url: str, b: str) -> None:
    m = _what(url, "/v1/cluster?what=mountpaths").json()["targets"]
    assert m and all(v["available"] for v in m.values()), m


@op("target IPs")
def _target_ips(url: str, b: str) -> None:
    assert "127.0.0.1" in _what(url, "/v1/cluster?what=target_ips").text


elsewhere("GET the bucket listing of an s3:// bucket with cached flags", "test_remote_ops")


# ------------------------------------------------------------------ tests


def test_op_count() -> None:
    supported = [k for k, v in OPS.items() if callable(v) or v[0] == "elsewhere"]
    assert len(OPS) >= 63, len(OPS)
    assert len(supported) >= 58, (len(supported), len(OPS))
    # Each one exercised elsewhere names a test that exists.
    for k, v in OPS.items():
        if not callable(v) and v[0] == "elsewhere" and not v[1].startswith("ais-testkit"):
            assert callable(globals().get(v[1])), (k, v)


@pytest.mark.parametrize("name", sorted(k for k, v in OPS.items() if callable(v) or v[0] == "unsupported"))
def test_op(name: str, cluster: Cluster) -> None:
    url = cluster.url
    b = f"rest-{abs(hash(name)) % 10**8}"
    ok(call(url, "POST", f"/v1/buckets/{b}", {"action": "create-bck"}))
    try:
        v = OPS[name]
        if callable(v):
            v(url, b)
            return
        _, status, msg, method, path, body = v
        r = call(url, method, path.format(b=b), body)
        assert r.status_code == status and msg in r.text, (r.status_code, r.text[:300])
    finally:
        call(url, "DELETE", f"/v1/buckets/{b}", {"action": "destroy-bck"})


def test_remote_ops(rcluster: Cluster, s3: S3Server, remote: str) -> None:  # noqa: F811
    """The operations on an s3:// bucket (the examples' gs:// and aws)."""
    url = rcluster.url
    # The easy URL names its provider: another one in the query is refused.
    r = call(url, "GET", f"/aws/{remote}/x?provider=ais")
    assert r.status_code == 400 and "contradicts" in r.text, r.text
    objs = fill(s3, remote, 6, prefix="__tst/test-")
    keys = sorted(objs)
    # GET with provider=aws, then list only what is cached (flags=1).
    assert ok(call(url, "GET", f"/v1/objects/{remote}/{keys[0]}?provider=aws")).content == objs[keys[0]]
    res = ok(call(url, "GET", f"/v1/buckets/{remote}?provider=aws", {"action": "list", "value": {"flags": "1"}})).json()
    assert [e["name"] for e in res["entries"]] == [keys[0]], res
    res = ok(call(url, "GET", f"/aws/{remote}", {"action": "list"})).json()
    assert sorted(e["name"] for e in res["entries"]) == keys
    # Prefetch by list and by range, evict by list and by range, evict the bucket.
    job = ok(call(url, "POST", f"/v1/buckets/{remote}?provider=aws", {"action": "prefetch-listrange", "value": {"objnames": keys[:2]}})).text
    assert not wait_job(url, job)["err"]
    job = ok(call(url, "POST", f"/v1/buckets/{remote}?provider=aws", {"action": "prefetch-listrange", "value": {"template": "__tst/test-{0000..0005}"}})).text
    assert not wait_job(url, job)["err"]
    job = ok(call(url, "DELETE", f"/v1/buckets/{remote}?provider=aws", {"action": "evict-listrange", "value": {"objnames": keys[:2]}})).text
    assert not wait_job(url, job)["err"]
    job = ok(call(url, "DELETE", f"/v1/buckets/{remote}?provider=aws", {"action": "evict-listrange", "value": {"template": "__tst/test-{0000..0005}"}})).text
    assert not wait_job(url, job)["err"]
    ok(call(url, "DELETE", f"/v1/buckets/{remote}?provider=aws", {"action": "evict-remote-bck"}))
    # backend_bck: an ais:// bucket whose objects are the s3:// bucket's.
    view = f"view-{remote}"
    ok(call(url, "POST", f"/v1/buckets/{view}", {"action": "create-bck"}))
    ok(call(url, "PATCH", f"/v1/buckets/{view}", {"action": "set-bprops", "value": {"backend_bck": {"name": remote, "provider": "aws"}}}))
    assert ok(call(url, "GET", f"/v1/objects/{view}/{keys[1]}")).content == objs[keys[1]]
    ok(call(url, "DELETE", f"/v1/buckets/{view}", {"action": "destroy-bck"}))


def test_cluster_shutdown(tmp_path) -> None:
    """Shut down the whole cluster: answered once every target took it,
    then every node exits."""
    c = Cluster(base_dir=tmp_path / "c", num_targets=2)
    c.start()
    try:
        url = c.url
        ok(call(url, "POST", "/v1/buckets/keep", {"action": "create-bck"}))
        ok(call(url, "PUT", "/v1/objects/keep/o", data=b"kept"))
        ok(call(url, "PUT", "/v1/cluster", {"action": "shutdown"}))
        deadline = time.monotonic() + 30
        while any(n.running for n in c.nodes):
            assert time.monotonic() < deadline, "not every node exited"
            time.sleep(0.1)
    finally:
        c.stop()
