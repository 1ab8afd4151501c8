"""dSort (distributed shuffle / re-shard) through the official SDK and the CLI,
against a real cluster: 10 input shards of ``.jpg`` + ``.cls`` records re-cut
into shards of a size, every record once and whole, in alphanumeric order,
shuffled reproducibly by seed, sorted by a ``.cls`` integer, mapped by an
external key map; spec files (JSON and YAML); refused specs; and a target
killed mid-job failing the job with no partial shard visible.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
import requests
from aistore.sdk import Client
from aistore.sdk.bucket import Bucket
from aistore.sdk.dsort import DsortAlgorithm, DsortFramework, DsortShardsGroup
from aistore.sdk.dsort.ekm import ExternalKeyMap
from aistore.sdk.multiobj import ObjectNames, ObjectRange

from ais_cluster import Cluster, default_bin_dir, unique_bucket_name

AIS = str(default_bin_dir() / "ais")
TIMEOUT = 120
SHARDS = 10
PER_SHARD = 12

Record = Dict[str, bytes]  # member name -> bytes


def make_tar(members: List[Tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def read_tar(data: bytes) -> List[Tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def make_input(bck: Bucket, shards: int = SHARDS, per: int = PER_SHARD, jpg: int = 900,
               seed: int = 1) -> Dict[str, Record]:
    """``in-00.tar``..: records ``img-NNNN`` (interleaved across shards) with
    a ``.jpg`` of random bytes and a ``.cls`` label."""
    rnd = random.Random(seed)
    records: Dict[str, Record] = {}
    for s in range(shards):
        members = []
        for i in range(per):
            key = f"img-{i * shards + s:04d}"
            rec = {
                f"{key}.jpg": rnd.randbytes(rnd.randint(jpg // 2, jpg * 2)),
                f"{key}.cls": str(rnd.randint(0, 999)).encode(),
            }
            records[key] = rec
            members.extend(rec.items())
        bck.object(f"in-{s:02d}.tar").get_writer().put_content(make_tar(members))
    return records


def outputs(bck: Bucket) -> List[Tuple[str, List[Tuple[str, bytes]]]]:
    names = sorted(e.name for e in bck.list_all_objects())
    return [(n, read_tar(bck.object(n).get_reader().read_all())) for n in names]


def keys_in_order(shards: List[Tuple[str, List[Tuple[str, bytes]]]]) -> List[str]:
    out: List[str] = []
    for _, members in shards:
        for name, _ in members:
            key = name.split(".")[0]
            if not out or out[-1] != key:
                out.append(key)
    return out


def check_whole(shards, records: Dict[str, Record]) -> None:
    """Every record exactly once, all its members, exact bytes, together."""
    got: Dict[str, Record] = {}
    for shard, members in shards:
        for name, data in members:
            key = name.split(".")[0]
            assert name not in got.get(key, {}), f"{name} twice"
            got.setdefault(key, {})[name] = data
    assert got.keys() == records.keys()
    for k, rec in records.items():
        assert got[k] == rec, k
    keys = keys_in_order(shards)
    assert len(keys) == len(records), "a record's members were split up"


def framework(src: Bucket, dst: Bucket, size: str, algorithm=None, out=None) -> DsortFramework:
    return DsortFramework(
        input_shards=DsortShardsGroup(
            bck=src.as_model(), role="input",
            format=ObjectRange(prefix="in-", min_index=0, max_index=SHARDS - 1, pad_width=2),
            extension=".tar",
        ),
        output_shards=DsortShardsGroup(
            bck=dst.as_model(), role="output",
            format=out or ObjectRange(prefix="out-", min_index=0, max_index=999, pad_width=3),
            extension=".tar",
        ),
        algorithm=algorithm,
        output_shard_size=size,
        description="test",
    )


@pytest.fixture
def dst(client: Client) -> Iterator[Bucket]:
    b = client.bucket(unique_bucket_name("dsort-out"))
    try:
        yield b
    finally:
        b.delete(missing_ok=True)


def run_dsort(client: Client, spec) -> str:
    d = client.dsort()
    job = d.start(spec)
    res = d.wait(timeout=TIMEOUT, verbose=False)
    assert res.success, (res, d.get_job_info())
    return job


def test_alphanumeric_reshard_keeps_every_record_whole(client: Client, bucket: Bucket, dst: Bucket) -> None:
    records = make_input(bucket)
    size = 8 << 10
    job = run_dsort(client, framework(bucket, dst, "8KiB"))
    info = client.dsort(job).get_job_info()
    assert len(info) == 3 and all(i.metrics.shard_creation.finished for i in info.values())
    assert not any(i.metrics.aborted for i in info.values())
    shards = outputs(dst)
    # The output bucket was created; names run from out-000.tar with no gap.
    assert [n for n, _ in shards] == [f"out-{i:03d}.tar" for i in range(len(shards))]
    check_whole(shards, records)
    keys = keys_in_order(shards)
    assert keys == sorted(records), "alphanumeric across and within shards"
    # Each shard closes once its records reach the size (the last may be smaller).
    for i, (_, members) in enumerate(shards):
        total = sum(len(d) for _, d in members)
        last_key = members[-1][0].split(".")[0]
        last = sum(len(d) for n, d in members if n.split(".")[0] == last_key)
        if i < len(shards) - 1:
            assert total >= size and total - last < size, (i, total, last)
    assert sum(int(i.metrics.shard_creation.created_count) for i in info.values()) == len(shards)
    # Decreasing order, through a JSON spec file.
    dst2 = client.bucket(unique_bucket_name("dsort-out")).create()
    try:
        spec = framework(bucket, dst2, "8KiB", DsortAlgorithm(kind="alphanumeric", decreasing=True)).to_spec()
        path = Path(os.environ.get("PYTEST_TMP", "/tmp")) / f"spec-{dst2.name}.json"
        path.write_text(json.dumps(spec))
        run_dsort(client, str(path))
        assert keys_in_order(outputs(dst2)) == sorted(records, reverse=True)
    finally:
        dst2.delete(missing_ok=True)


def test_shuffle_is_reproducible_by_seed(client: Client, bucket: Bucket, tmp_path: Path) -> None:
    records = make_input(bucket)
    orders = []
    outs = [client.bucket(unique_bucket_name("dsort-sh")) for _ in range(3)]
    try:
        for seed, out in zip(("7", "7", "8"), outs):
            # A YAML spec file, as AIStore's docs write them.
            spec = tmp_path / f"{out.name}.yaml"
            spec.write_text(
                f"input_bck:\n  name: {bucket.name}\ninput_format:\n  template: in-{{00..09}}\n"
                f"input_extension: .tar\noutput_bck:\n  name: {out.name}\n"
                f"output_format: sh-{{000..999}}\noutput_shard_size: 6KB\n"
                f"algorithm:\n  kind: shuffle\n  seed: \"{seed}\"\n"
            )
            run_dsort(client, str(spec))
            shards = outputs(out)
            check_whole(shards, records)
            orders.append(keys_in_order(shards))
        assert orders[0] == orders[1], "same seed, same order"
        assert orders[0] != orders[2], "another seed, another order"
        assert orders[0] != sorted(records)
    finally:
        for o in outs:
            o.delete(missing_ok=True)


def test_content_sort_by_cls_integer(client: Client, bucket: Bucket, dst: Bucket) -> None:
    records = make_input(bucket)
    alg = DsortAlgorithm(kind="content", extension=".cls", content_key_type="int")
    run_dsort(client, framework(bucket, dst, "10KiB", alg))
    shards = outputs(dst)
    check_whole(shards, records)
    labels = [(int(records[k][f"{k}.cls"]), k) for k in keys_in_order(shards)]
    assert labels == sorted(labels), "by label, ties by key"


def test_ekm_file_maps_records_to_named_shards(client: Client, bucket: Bucket, dst: Bucket) -> None:
    records = make_input(bucket)
    ekm = ExternalKeyMap()
    keys = sorted(records)
    ekm["even-%d"] = ObjectNames([k for k in keys if int(k[4:]) % 2 == 0])
    # Patterns too (as AIStore's docs): every odd key by one regex.
    ekm["odd-{00..99}"] = ObjectNames([r"img-[0-9]{3}[13579]"])
    run_dsort(client, framework(bucket, dst, "12KiB", out=ekm))
    shards = outputs(dst)
    check_whole(shards, records)
    for name, members in shards:
        parity = {int(n.split(".")[0][4:]) % 2 for n, _ in members}
        assert parity == ({0} if name.startswith("even-") else {1}), name
    evens = sorted(n for n, _ in shards if n.startswith("even-"))
    assert evens[0] == "even-0.tar" and any(n.startswith("odd-00") for n, _ in shards)


def post(url: str, spec: dict) -> requests.Response:
    return requests.post(f"{url}/v1/sort", json=spec, timeout=30)


def test_bad_specs_and_damaged_shards_are_refused(client: Client, endpoint: str, bucket: Bucket, dst: Bucket) -> None:
    base = {
        "input_bck": {"name": bucket.name}, "input_format": {"template": "in-{00..01}"},
        "input_extension": ".tar", "output_bck": {"name": dst.name},
        "output_format": "o-{0..99}", "output_shard_size": "1KiB",
    }
    r = post(endpoint, {**base, "no_such_field": 1})
    assert r.status_code == 400 and "no_such_field" in r.text, r.text
    r = post(endpoint, {**base, "algorithm": {"kind": "bogus"}})
    assert r.status_code == 400 and "algorithm.kind" in r.text, r.text
    r = post(endpoint, {**base, "input_bck": {"name": "no-such-bucket-x"}})
    assert r.status_code == 404, r.text
    # The proxy never fetches a URL a user names (only this cluster's objects).
    del base["output_format"]
    r = post(endpoint, {**base, "ekm_file": "http://169.254.169.254/latest/meta-data"})
    assert r.status_code == 400 and "ekm_file" in r.text, r.text
    base["output_format"] = "o-{0..99}"
    r = requests.get(f"{endpoint}/v1/sort", params={"uuid": "srt-nope"}, timeout=30)
    assert r.status_code == 404, r.text
    r = requests.get(f"{endpoint}/v1/sort", params={"bogus": "1"}, timeout=30)
    assert r.status_code == 400 and "bogus" in r.text, r.text
    # A damaged input shard fails the job with its name; nothing is written.
    bucket.object("in-00.tar").get_writer().put_content(make_tar([("a.jpg", b"x" * 3000)]))
    bucket.object("in-01.tar").get_writer().put_content(make_tar([("b.jpg", b"y" * 3000)])[:1500])
    d = client.dsort()
    d.start(framework(bucket, dst, "1KiB"))
    res = d.wait(timeout=TIMEOUT, verbose=False)
    assert not res.success and "in-01.tar" in str(res.error), res
    assert not list(dst.list_all_objects())
    # A job that is over can be removed; then it is gone.
    r = requests.delete(f"{endpoint}/v1/sort", params={"uuid": d.dsort_id}, timeout=30)
    assert r.status_code == 200, r.text
    r = requests.get(f"{endpoint}/v1/sort", params={"uuid": d.dsort_id}, timeout=30)
    assert r.status_code == 404, r.text


def cli(url: str, *args: str, ok: bool = True, stdin: bytes = b"") -> str:
    env = dict(os.environ, AIS_ENDPOINT=url)
    env.pop("AIS_AUTHN_TOKEN", None)
    p = subprocess.run([AIS, *args], env=env, capture_output=True, timeout=TIMEOUT, input=stdin)
    out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
    assert (p.returncode == 0) == ok, f"ais {' '.join(args)} ({p.returncode}):\n{out}"
    return out


def test_cli_dsort_show_wait_rm(client: Client, endpoint: str, bucket: Bucket, dst: Bucket,
                                tmp_path: Path) -> None:
    records = make_input(bucket)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "input_format:\n  template: in-{00..09}\nextension: .tar\n"
        "output_format: cli-{0000..9999}\noutput_shard_size: 10KiB\n"
        "description: from the cli\n"
    )
    out = cli(endpoint, "dsort", f"ais://{bucket.name}", f"ais://{dst.name}", "-f", str(spec))
    job = out.strip().splitlines()[-1]
    assert job.startswith("srt-"), out
    out = cli(endpoint, "wait", job)
    assert "shards" in out, out
    check_whole(outputs(dst), records)
    out = cli(endpoint, "show", "job", "dsort")
    assert job in out and "Finished" in out and "from the cli" in out, out
    out = cli(endpoint, "show", "job", "dsort", job, "--json")
    assert len(json.loads(out)) == 3, out
    # The spec from stdin, as `ais start dsort -f -`, inline JSON too.
    dst2 = client.bucket(unique_bucket_name("dsort-cli"))
    try:
        inline = json.dumps({"input_bck": {"name": bucket.name}, "output_bck": {"name": dst2.name},
                             "input_format": {"template": "in-{00..09}"}, "input_extension": ".tar",
                             "output_format": "x-{00..99}", "output_shard_size": "64KiB"})
        job2 = cli(endpoint, "start", "dsort", "-f", "-", stdin=inline.encode()).strip().splitlines()[-1]
        cli(endpoint, "wait", job2)
        check_whole(outputs(dst2), records)
        out = cli(endpoint, "job", "start", "dsort", inline, "--wait")
        assert "shards" in out, out
    finally:
        dst2.delete(missing_ok=True)
    out = cli(endpoint, "job", "rm", "dsort", job)
    assert f"Removed finished job {job}" in out, out
    assert job not in cli(endpoint, "show", "job", "dsort")
    out = cli(endpoint, "dsort", f"ais://{bucket.name}", ok=False)
    assert "needs a spec" in out, out


def test_a_target_killed_mid_job_fails_it_cleanly(tmp_path: Path) -> None:
    """A target SIGKILLed while shards are being created: the job aborts with
    an error naming it, and every shard that is visible is whole."""
    allow = ["dsort", "keepalive", "unreachable", "left the cluster"]
    with Cluster(base_dir=tmp_path / "c", num_targets=3, keepalive_timeout=6.0, allow_log=allow) as c:
        client = Client(c.url)
        src = client.bucket("src").create()
        records = make_input(src, shards=SHARDS, per=40, jpg=40_000, seed=5)
        for attempt in range(3):
            out = client.bucket(f"out{attempt}")
            d = client.dsort()
            d.start(framework(src, out, "256KiB"))
            victim = None
            deadline = time.monotonic() + TIMEOUT
            while victim is None and time.monotonic() < deadline:
                info = d.get_job_info()
                if all(i.metrics.shard_creation.finished for i in info.values()):
                    break
                created = sum(int(i.metrics.shard_creation.created_count) for i in info.values())
                for tid, i in info.items():
                    sc = i.metrics.shard_creation
                    # Some shards stored already, this target still building.
                    if created >= 3 and sc.running and not sc.finished:
                        victim = tid
                        break
                time.sleep(0.01)
            if victim is None:
                continue  # finished before we saw it create: try again
            node = c.target_by_id(victim)
            os.killpg(node.proc.pid, signal.SIGKILL)
            res = d.wait(timeout=TIMEOUT, verbose=False)
            assert not res.success, res
            assert victim in str(res.error) or "stopped answering" in str(res.error) or "left the cluster" in str(res.error), res
            # Whatever is visible is whole: every record in it, every member.
            # (A listing is refused while the victim may hold objects, so
            # each possible name is asked for; its own shards went with it.)
            seen = 0
            for i in range(200):
                try:
                    r = requests.get(f"{c.url}/v1/objects/{out.name}/out-{i:03d}.tar", timeout=30)
                except requests.ConnectionError:  # redirected to the victim
                    continue
                if r.status_code != 200:
                    continue
                seen += 1
                members = read_tar(r.content)
                for m, data in members:
                    assert records[m.split(".")[0]][m] == data, (i, m)
                for k in {m.split(".")[0] for m, _ in members}:
                    assert {m for m, _ in members if m.split(".")[0] == k} == set(records[k]), (i, k)
            assert seen < 200
            print("visible whole shards after the kill:", seen)
            return
        pytest.fail("the job finished before a target could be killed mid-creation, three times")


def wait_fail(client: Client, job: str) -> str:
    res = client.dsort(job).wait(timeout=TIMEOUT, verbose=False)
    assert not res.success, res
    return str(res.error)


def test_hostile_specs_names_and_archives(client: Client, endpoint: str, bucket: Bucket, dst: Bucket) -> None:
    """One step past the spec checks: names that would leave the bucket,
    ids that would reach other URLs, huge paddings, non-finite keys,
    colliding or input-overwriting outputs, cross-target duplicates, and
    damaged or oversized archive members."""
    records = make_input(bucket, shards=4, per=6)
    base = {
        "input_bck": {"name": bucket.name}, "input_format": {"template": "in-{00..03}"},
        "input_extension": ".tar", "output_bck": {"name": dst.name},
        "output_format": "o-{000..999}", "output_shard_size": "4KiB",
    }
    for fmt in ("../../../../tmp/x-{0..9}", "/abs/x-{0..9}", "o-%0999999999999d-{0..1}",
                "o-{0000000000000000000000000..1}"):
        r = post(endpoint, {**base, "output_format": fmt})
        assert r.status_code == 400 and "output" in r.text, (fmt, r.text)
    for bad_id in ("../../objects/x", "srt-a/../../b", "srt-a?x=1", "x" * 10):
        r = requests.get(f"{endpoint}/v1/sort", params={"uuid": bad_id}, timeout=30)
        assert r.status_code == 400 and "invalid dsort job id" in r.text, (bad_id, r.text)
        r = requests.delete(f"{endpoint}/v1/sort/abort", params={"uuid": bad_id}, timeout=30)
        assert r.status_code == 400, r.text
    # A key map naming outside the bucket is refused at the start.
    ekm = bucket.object("ekm.json")
    ekm.get_writer().put_content(json.dumps({"../../x-%d": ["img-0000"]}).encode())
    spec = {k: v for k, v in base.items() if k != "output_format"}
    r = post(endpoint, {**spec, "ekm_file": f"ais://{bucket.name}/ekm.json"})
    assert r.status_code == 400, r.text
    # Two formats of one key map that name the same shards: the job fails
    # (never one shard overwriting another).
    ekm.get_writer().put_content(json.dumps({"a-%d": ["img-0000"], "a-{0..9}": ["img-0001"]}).encode())
    r = post(endpoint, {**spec, "ekm_file": f"ais://{bucket.name}/ekm.json", "ekm_missing_key": "ignore"})
    assert r.status_code == 200, r.text
    assert "would be named" in wait_fail(client, r.text)
    # Into the input bucket over an input's name: refused before any write.
    r = post(endpoint, {**base, "output_bck": {"name": bucket.name}, "output_format": "in-{00..99}"})
    assert r.status_code == 200, r.text
    assert "overwrite an input" in wait_fail(client, r.text)
    assert sorted(e.name for e in bucket.list_all_objects() if e.name.startswith("in-")) == [
        f"in-{i:02d}.tar" for i in range(4)]
    # Non-finite content keys.
    bucket.object("in-00.tar").get_writer().put_content(
        make_tar([("k1.jpg", b"x"), ("k1.cls", b"inf"), ("k2.jpg", b"y"), ("k2.cls", b"2.5")]))
    r = post(endpoint, {**base, "algorithm": {"kind": "content", "extension": ".cls", "content_key_type": "float"}})
    assert "finite" in wait_fail(client, r.text)
    # The same record in two shards (on whichever targets), when told to abort.
    bucket.object("in-00.tar").get_writer().put_content(make_tar(list(records["img-0001"].items())))
    r = post(endpoint, {**base, "duplicated_records": "abort"})
    assert "duplicated record" in wait_fail(client, r.text)
    # A zip member whose bytes do not match its CRC; a name too long; a
    # member claiming more than the archive holds.
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("a.jpg", b"A" * 4000)
    data = bytearray(zbuf.getvalue())
    data[data.index(b"A" * 100) + 50] ^= 0xFF
    bucket.object("z-0.zip").get_writer().put_content(bytes(data))
    zspec = {**base, "input_format": {"template": "z-{0..0}"}, "input_extension": ".zip",
             "output_extension": ".tar"}
    assert "z-0.zip" in wait_fail(client, post(endpoint, zspec).text)
    bucket.object("in-00.tar").get_writer().put_content(make_tar([("n" * 1100 + ".jpg", b"x")]))
    assert "longer than" in wait_fail(client, post(endpoint, base).text)
    assert not list(dst.list_all_objects()), "nothing written by a failed job"


def test_a_missing_input_shard_is_said(client: Client, endpoint: str, bucket: Bucket, dst: Bucket) -> None:
    """A missing input shard is a warning in the job by default (never a
    silent 'done'), and fails the job with missing_shards: abort."""
    records = make_input(bucket, shards=3, per=4)
    spec = {
        "input_bck": {"name": bucket.name}, "input_format": {"template": "in-{00..03}"},
        "input_extension": ".tar", "output_bck": {"name": dst.name},
        "output_format": "o-{000..999}", "output_shard_size": "4KiB",
    }
    job = post(endpoint, spec).text
    res = client.dsort(job).wait(timeout=TIMEOUT, verbose=False)
    assert res.success, res
    warnings = [w for i in client.dsort(job).get_job_info().values() for w in (i.metrics.warnings or [])]
    assert any("in-03.tar" in w and "does not exist" in w for w in warnings), warnings
    check_whole(outputs(dst), records)
    job = post(endpoint, {**spec, "missing_shards": "abort"}).text
    assert "in-03.tar" in wait_fail(client, job)
