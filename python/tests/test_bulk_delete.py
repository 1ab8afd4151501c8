"""Multi-object delete (AIStore's `delete-listrange`): a list, a template
or a prefix of a bucket's objects removed by one job, through the official
SDK (`bucket.objects(...).delete()`), the CLI (`ais rmo`, `ais rm`,
`ais object rm`) and REST; what is not selected stays, nothing deleted
comes back (erasure-coded parts included)."""

from __future__ import annotations

import requests
from aistore.sdk import Client
from aistore.sdk.bucket import Bucket

from ais_cluster import Cluster
from test_etl import ais

HTTP_TIMEOUT = 30


def _fill(bucket: Bucket, names: list[str]) -> None:
    for n in names:
        bucket.object(n).get_writer().put_content(n.encode())


def _names(bucket: Bucket) -> list[str]:
    return sorted(e.name for e in bucket.list_all_objects())


def test_sdk_deletes_a_list_and_a_template_as_jobs(client: Client, cluster: Cluster, bucket: Bucket) -> None:
    names = [f"o-{i:03}" for i in range(120)] + ["keep/a", "keep/b"]
    _fill(bucket, names)
    job = bucket.objects(obj_names=["o-000", "o-001", "o-119", "no-such-object"]).delete()
    assert job.startswith("delete-"), job
    client.job(job_id=job).wait(timeout=60)
    left = _names(bucket)
    assert "o-000" not in left and "o-001" not in left and "o-119" not in left
    assert len(left) == len(names) - 3
    job = bucket.objects(obj_template="o-{002..118}").delete()
    client.job(job_id=job).wait(timeout=60)
    assert _names(bucket) == ["keep/a", "keep/b"]
    for n in ("o-050", "o-118"):
        r = requests.get(f"{cluster.url}/v1/objects/{bucket.name}/{n}", timeout=HTTP_TIMEOUT)
        assert r.status_code == 404, (n, r.status_code)
    assert bucket.object("keep/a").get_reader().read_all() == b"keep/a"


def test_cli_rmo_by_template_prefix_and_list(cluster: Cluster, bucket: Bucket) -> None:
    names = [f"shard-{i:02}.tar" for i in range(30)] + [f"logs/{i}" for i in range(10)] + ["x", "y", "z"]
    _fill(bucket, names)
    b = f"ais://{bucket.name}"
    p = ais(cluster, "rmo", b, "--template", "shard-{00..29}.tar", "--wait")
    assert "job delete-" in p.stdout, p.stdout
    assert _names(bucket) == sorted([f"logs/{i}" for i in range(10)] + ["x", "y", "z"])
    ais(cluster, "rm", b, "--prefix", "logs/", "--wait")
    assert _names(bucket) == ["x", "y", "z"]
    ais(cluster, "object", "rm", b, "--list", "x,z", "--wait")
    assert _names(bucket) == ["y"]
    # One by one still works; a selection takes exactly one bucket.
    ais(cluster, "rm", f"{b}/y")
    assert _names(bucket) == []
    p = ais(cluster, "rm", b, b, "--list", "a", ok=False)
    assert "one bucket" in p.stderr, p.stderr


def test_rest_refuses_an_empty_or_bad_selection(cluster: Cluster, bucket: Bucket) -> None:
    _fill(bucket, ["a", "b"])
    url = f"{cluster.url}/v1/buckets/{bucket.name}"
    for value, needle in [
        ({}, "name the objects"),
        (None, "name the objects"),
        ({"template": "o-{5..1}"}, "template"),
        ({"objnames": ["../etc/passwd"]}, "invalid"),
    ]:
        r = requests.delete(url, json={"action": "delete-listrange", "value": value}, timeout=HTTP_TIMEOUT)
        assert r.status_code == 400 and needle in r.text, (value, r.text)
    assert _names(bucket) == ["a", "b"]


def test_erasure_coded_objects_stay_deleted(client: Client, cluster: Cluster) -> None:
    """Each target deletes what it holds; parts held by targets that hold
    no full copy go too, so no rebuild brings an object back."""
    bck = client.bucket("ec-bulk-del").create(exist_ok=True)
    try:
        r = requests.patch(
            f"{cluster.url}/v1/buckets/{bck.name}",
            json={"action": "set-bprops", "value": {"ec": {"enabled": True, "data_slices": 1, "parity_slices": 1, "objsize_limit": 1}}},
            timeout=HTTP_TIMEOUT,
        )
        assert r.status_code == 200, r.text
        names = [f"e-{i}" for i in range(12)]
        for n in names:
            bck.object(n).get_writer().put_content((n * 100).encode())
        # One object has lost its main copy: only its parts are left (a
        # GET would rebuild it); the delete must take the parts too.
        mains = [mp / "@ais" / bck.name / "e-3" for t in cluster.targets for mp in t.mpaths]
        mains = [m for m in mains if m.exists()]
        assert len(mains) == 1, mains
        mains[0].unlink()
        job = bck.objects(obj_template="e-{0..11}").delete()
        client.job(job_id=job).wait(timeout=60)
        assert _names(bck) == []
        for n in names:
            r = requests.get(f"{cluster.url}/v1/objects/{bck.name}/{n}", timeout=HTTP_TIMEOUT)
            assert r.status_code == 404, (n, r.status_code, r.text)
        for t in cluster.targets:
            parts = [p for mp in t.mpaths for p in (mp / "@ec" / bck.name).rglob("*") if p.is_file()]
            assert not parts, (t.node_id, parts)
    finally:
        bck.delete(missing_ok=True)
