"""`promote`: files below the targets' promote root become objects, through
the official SDK (``Object.promote``) and the CLI, against a real cluster
whose targets share one host (so the source is one "file share": each file
is promoted once, by its owner). Symbolic links and special files are never
followed or read; nothing outside the root is reachable."""

from __future__ import annotations

import os
import stat
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
from aistore.sdk import Client
from aistore.sdk.bucket import Bucket

from ais_cluster import default_bin_dir

AIS = str(default_bin_dir() / "ais")


ENDPOINT = {}


def wait_job(client: Client, job_id: str) -> dict:
    """Until the job ends; its status."""
    deadline = time.monotonic() + 60
    while True:
        s = requests.get(f"{ENDPOINT['url']}/v1/cluster",
                         params={"what": "status"}, json={"ID": job_id}, timeout=30).json()
        if s.get("end_time"):
            return s
        assert time.monotonic() < deadline, s
        time.sleep(0.1)


def objects(bck: Bucket) -> dict:
    return {e.name: bck.object(e.name).get_reader().read_all() for e in bck.list_all_objects()}


@pytest.fixture
def tree(promote_root: str, endpoint: str) -> Path:
    ENDPOINT["url"] = endpoint
    d = Path(promote_root) / f"ds-{uuid.uuid4().hex[:8]}"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_bytes(b"alpha")
    (d / "b.bin").write_bytes(os.urandom(300_000))
    (d / "sub" / "c.txt").write_bytes(b"gamma")
    os.symlink("/etc/passwd", d / "link.txt")
    os.symlink("/etc", d / "linkdir")
    os.mkfifo(d / "pipe")
    return d


def test_sdk_promote_directory_recursive_once_each(client: Client, bucket: Bucket, tree: Path) -> None:
    jid = bucket.object("pre/").promote(str(tree), recursive=True)
    status = wait_job(client, jid)
    got = objects(bucket)
    # Each file once, by its owner; links and the FIFO are not promoted.
    assert got == {
        "pre/a.txt": b"alpha",
        "pre/b.bin": (tree / "b.bin").read_bytes(),
        "pre/sub/c.txt": b"gamma",
    }, (sorted(got), status)
    # Not recursive: the top level only; a file under its own name.
    other = client.bucket(bucket.name + "-2").create()
    try:
        wait_job(client, other.object("").promote(str(tree)))
        assert sorted(objects(other)) == ["a.txt", "b.bin"]
        wait_job(client, other.object("renamed").promote(str(tree / "sub" / "c.txt")))
        assert other.object("renamed").get_reader().read_all() == b"gamma"
    finally:
        other.delete(missing_ok=True)


def test_overwrite_delete_src_and_one_target(client: Client, bucket: Bucket, tree: Path) -> None:
    wait_job(client, bucket.object("").promote(str(tree / "a.txt")))
    (tree / "a.txt").write_bytes(b"changed")
    wait_job(client, bucket.object("").promote(str(tree / "a.txt")))
    assert bucket.object("a.txt").get_reader().read_all() == b"alpha", "kept without overwrite"
    wait_job(client, bucket.object("").promote(str(tree / "a.txt"), overwrite_dest=True))
    assert bucket.object("a.txt").get_reader().read_all() == b"changed"
    tid = next(iter(client.cluster().get_info().tmap))
    wait_job(client, bucket.object("one/").promote(str(tree / "sub"), target_id=tid, delete_source=True))
    assert bucket.object("one/c.txt").get_reader().read_all() == b"gamma"
    assert not (tree / "sub" / "c.txt").exists(), "deleted after it was stored"
    assert (tree / "sub").is_dir()


def test_nothing_outside_the_root_and_no_links(client: Client, endpoint: str, bucket: Bucket,
                                               tree: Path, promote_root: str) -> None:
    def post(src: str, **value) -> requests.Response:
        body = {"action": "promote", "name": src, "value": {"src": src, **value}}
        return requests.post(f"{endpoint}/v1/objects/{bucket.name}", json=body, timeout=30)

    r = post("/etc/passwd")
    assert r.status_code == 403 and "AIS_PROMOTE_ROOTS" in r.text, r.text
    r = post(f"{promote_root}/../../etc")
    assert r.status_code == 400 and ".." in r.text, r.text
    r = post("relative/dir")
    assert r.status_code == 400, r.text
    r = post(str(tree), bogus=1)
    assert r.status_code == 400 and "bogus" in r.text, r.text
    # A link as the source, or on its way: refused, never followed.
    for src in (tree / "link.txt", tree / "linkdir", tree / "linkdir" / "passwd"):
        r = post(str(src))
        assert r.status_code in (400, 404) and "passwd" not in objects(bucket), (src, r.text)
    r = post(str(tree / "pipe"))
    assert r.status_code == 400 and "regular file" in r.text, r.text
    assert objects(bucket) == {}
    # A hard link to a file outside the root, and a device node: skipped,
    # never read (the device's driver is never even opened).
    secret = tree.parent.parent / f"outside-{uuid.uuid4().hex[:6]}.txt"
    secret.write_bytes(b"secret")
    os.link(secret, tree / "hard.txt")
    os.mknod(tree / "dev", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    r = post(str(tree), rcr=True)
    assert r.status_code == 200, r.text
    status = wait_job(client, r.text)
    got = objects(bucket)
    assert sorted(got) == ["a.txt", "b.bin", "sub/c.txt"] and b"secret" not in got.values(), (got.keys(), status)


def test_cli_promote(endpoint: str, client: Client, bucket: Bucket, tree: Path) -> None:
    env = dict(os.environ, AIS_ENDPOINT=endpoint)
    env.pop("AIS_AUTHN_TOKEN", None)
    p = subprocess.run([AIS, "object", "promote", str(tree), f"ais://{bucket.name}/cli/", "-r", "--wait"],
                       env=env, capture_output=True, timeout=120)
    out = p.stdout.decode() + p.stderr.decode()
    assert p.returncode == 0, out
    assert sorted(objects(bucket)) == ["cli/a.txt", "cli/b.bin", "cli/sub/c.txt"], out
