"""`copy(sync=True)` (AIStore's `synchronize`): a copy that also deletes the
destination's copies of objects the source no longer has, and nothing else."""

from __future__ import annotations

import os
import subprocess
import time

import requests
from aistore.sdk import Client
from aistore.sdk.bucket import Bucket

from ais_cluster import default_bin_dir, unique_bucket_name


def wait(endpoint: str, job: str) -> dict:
    deadline = time.monotonic() + 60
    while True:
        s = requests.get(f"{endpoint}/v1/cluster", params={"what": "status"}, json={"ID": job}, timeout=30).json()
        if s.get("end_time"):
            return s
        assert time.monotonic() < deadline, s
        time.sleep(0.1)


def names(b: Bucket) -> list:
    return sorted(e.name for e in b.list_all_objects())


def test_copy_with_sync_deletes_what_the_source_lost(client: Client, endpoint: str, bucket: Bucket) -> None:
    for i in range(12):
        bucket.object(f"d/{i:02d}").get_writer().put_content(b"v%d" % i)
    dst = client.bucket(unique_bucket_name("sync"))
    try:
        wait(endpoint, bucket.copy(dst))
        assert names(dst) == [f"d/{i:02d}" for i in range(12)]
        # Gone at the source; one object the destination has of its own.
        for i in (1, 5, 7):
            bucket.object(f"d/{i:02d}").delete()
        dst.object("mine").get_writer().put_content(b"not a copy")
        # A copy without sync keeps them.
        wait(endpoint, bucket.copy(dst))
        assert "d/05" in names(dst)
        s = wait(endpoint, bucket.copy(dst, sync=True))
        assert not s.get("err"), s
        assert names(dst) == sorted([f"d/{i:02d}" for i in range(12) if i not in (1, 5, 7)] + ["mine"])
        # With a prefix: only names under it are synchronized.
        bucket.object("d/00").delete()
        bucket.object("e/x").get_writer().put_content(b"e")
        wait(endpoint, bucket.copy(dst, prefix_filter="e/", sync=True))
        assert "d/00" in names(dst) and "e/x" in names(dst)
        # Sync with renaming is refused (names no longer tell the source).
        r = requests.post(f"{endpoint}/v1/buckets/{bucket.name}", params={"bck_to": f"ais/@#/{dst.name}/"},
                          json={"action": "copy-bck", "value": {"ext": {"txt": "bin"}, "synchronize": True}},
                          timeout=30)
        assert r.status_code == 400 and "synchronize" in r.text, r.text
        # The CLI's `ais bucket cp --sync`.
        bucket.object("e/x").delete()
        env = dict(os.environ, AIS_ENDPOINT=endpoint)
        env.pop("AIS_AUTHN_TOKEN", None)
        p = subprocess.run([str(default_bin_dir() / "ais"), "bucket", "cp", f"ais://{bucket.name}",
                            f"ais://{dst.name}", "--sync", "--wait"], env=env, capture_output=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert "e/x" not in names(dst) and "d/00" not in names(dst) and "mine" in names(dst)
    finally:
        dst.delete(missing_ok=True)
