"""CLI parity with AIStore's `ais`, kept honest.

``data/aistore_cli_tree.tsv`` lists AIStore's CLI tree (commands, and the
flags users rely on as ``COMMAND --flag``) with what our ``ais`` does with
each: ``same``, ``alias:<ours>``, ``differs:<how>`` or ``unsupported:<why>``
plus the error text users get. This file

1. runs ``ais PATH --help`` for every supported row (the command exists;
   a listed flag is in its help),
2. runs every unsupported row and checks it fails with the listed error,
   and that the CLI's own list of unsupported commands is the TSV's,
3. runs the commands added for parity for real, against the session
   cluster (and a small AuthN-enabled one for ``ais auth``).
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import re
import subprocess
import tarfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest
from aistore.sdk import Client
from aistore.sdk.bucket import Bucket

from ais_cluster import Cluster, default_bin_dir, unique_bucket_name

AIS = str(default_bin_dir() / "ais")
TREE = Path(__file__).parent / "data" / "aistore_cli_tree.tsv"
NOT_SUPPORTED = "is not supported by aistore-rs"


def load_tree() -> List[Tuple[str, str, str]]:
    rows = []
    for line in TREE.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        path, status, err = (line.split("\t") + ["", ""])[:3]
        assert status.split(":")[0] in ("same", "alias", "differs", "unsupported"), line
        assert not status.startswith("unsupported") or err, f"no error text for {path}"
        rows.append((path, status, err))
    return rows


ROWS = load_tree()


def run(args: List[str], env: Optional[Dict[str, str]] = None, stdin: Optional[bytes] = None,
        cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    return subprocess.run([AIS, *args], env=env, cwd=cwd, capture_output=True, timeout=120, input=stdin)


def cli(cluster: Cluster, *args: str, ok: bool = True, env: Optional[Dict[str, str]] = None,
        cwd: Optional[Path] = None) -> Tuple[str, str]:
    e = dict(os.environ, AIS_ENDPOINT=cluster.url, **(env or {}))
    e.pop("AIS_AUTHN_TOKEN", None)
    p = run(list(args), env=e, cwd=cwd)
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    if ok:
        assert p.returncode == 0, f"ais {' '.join(args)} failed ({p.returncode}):\n{out}\n{err}"
    else:
        assert p.returncode != 0, f"ais {' '.join(args)} unexpectedly succeeded:\n{out}\n{err}"
    return out, err


# --- 1 and 2: the tree ------------------------------------------------------


def _words_flags(path: str) -> Tuple[List[str], List[str]]:
    parts = path.split()
    return [p for p in parts if not p.startswith("--")], [p for p in parts if p.startswith("--")]


def _check_exists(row: Tuple[str, str, str]) -> Optional[str]:
    path, status, _ = row
    words, flags = _words_flags(path)
    args = words + ["--help"] if words != ["help"] else ["help"]
    p = run(args, env=dict(os.environ, AIS_ENDPOINT="http://127.0.0.1:9"))
    text = (p.stdout + p.stderr).decode(errors="replace")
    if p.returncode != 0:
        return f"ais {' '.join(args)}: exit {p.returncode}: {text[-300:]}"
    for f in flags:
        if f not in text:
            return f"ais {' '.join(args)}: no {f} in the help"
    usage = f"Usage: ais {' '.join(words)}"
    if words != ["help"] and usage not in text and words[-1] not in text:
        # Neither this command's usage nor (a positional value like
        # `job start rebalance`) its last word in the parent's help.
        return f"ais {' '.join(args)}: help is not about {path}: {text[:200]}"
    if status.startswith("alias:"):
        target = status.split(":", 1)[1].split()
        q = run(target + ["--help"])
        if q.returncode != 0:
            return f"alias target ais {' '.join(target)}: exit {q.returncode}"
    return None


def test_every_supported_command_exists() -> None:
    rows = [r for r in ROWS if not r[1].startswith("unsupported")]
    assert len(rows) > 150
    with ThreadPoolExecutor(8) as ex:
        problems = [p for p in ex.map(_check_exists, rows) if p]
    assert not problems, "\n".join(problems)


def _check_unsupported(row: Tuple[str, str, str]) -> Optional[str]:
    path, _, err = row
    words, flags = _words_flags(path)
    p = run(words + flags, env=dict(os.environ, AIS_ENDPOINT="http://127.0.0.1:9"))
    text = p.stderr.decode(errors="replace")
    if p.returncode == 0 or NOT_SUPPORTED not in text or err not in text:
        return f"ais {path}: exit {p.returncode}, stderr: {text.strip()!r}, want {err!r}"
    return None


def test_every_unsupported_command_fails_with_its_error() -> None:
    rows = [r for r in ROWS if r[1].startswith("unsupported")]
    assert len(rows) > 40
    with ThreadPoolExecutor(8) as ex:
        problems = [p for p in ex.map(_check_unsupported, rows) if p]
    assert not problems, "\n".join(problems)
    # `--help` does not hide it either.
    p = run(["cluster", "remote-attach", "--help"])
    assert p.returncode != 0 and NOT_SUPPORTED in p.stderr.decode()


def test_the_cli_and_the_tree_agree_on_what_is_unsupported() -> None:
    p = run(["search", "not", "supported"])
    assert p.returncode == 0, p.stderr
    ours = {
        line.split("  ")[0][len("ais "):]
        for line in p.stdout.decode().splitlines()
        if "(not supported:" in line
    }
    tree = {path for path, status, _ in ROWS if status.startswith("unsupported")}
    assert ours and ours <= tree, ours - tree
    tree_paths = {r[0] for r in ROWS}
    assert len(tree_paths) == len(ROWS), "duplicate rows"


# --- 3: real invocations ----------------------------------------------------


def _names(bucket: Bucket) -> List[str]:
    return sorted(e.name for e in bucket.list_all_objects())


def test_put_get_ls_flags(cluster: Cluster, bucket: Bucket, tmp_path: Path) -> None:
    b = f"ais://{bucket.name}"
    for i in range(4):
        (tmp_path / f"f-{i}.txt").write_text(f"file {i}\n")
    (tmp_path / "ten").write_bytes(b"abcdefghij")
    cli(cluster, "put", f"{b}/t/", "--template", f"{tmp_path}/f-{{0..2}}.txt")
    cli(cluster, "put", f"{tmp_path}/f-*.txt", f"{b}/g/")
    cli(cluster, "put", f"{b}/l-", "--list", f"{tmp_path}/f-0.txt,{tmp_path}/f-3.txt")
    cli(cluster, "object", "put", str(tmp_path / "ten"), f"{b}/ten")
    assert _names(bucket) == sorted(
        [f"t/f-{i}.txt" for i in range(3)] + [f"g/f-{i}.txt" for i in range(4)] + ["l-f-0.txt", "l-f-3.txt", "ten"]
    )
    # ls: --nr (and --non-recursive), --count-only, --regex, --template, --name-only, --limit, --summary
    out, _ = cli(cluster, "ls", b, "--nr")
    names = [line.split()[0] for line in out.splitlines()[1:]]
    assert names == ["g/", "l-f-0.txt", "l-f-3.txt", "t/", "ten"], out
    out2, _ = cli(cluster, "ls", b, "--non-recursive")
    assert out2 == out
    out, _ = cli(cluster, "ls", b, "--count-only")
    assert "Listed 10 names" in out, out
    out, _ = cli(cluster, "ls", b, "--regex", "f-[12]", "--name-only", "-H")
    assert out.split() == ["g/f-1.txt", "g/f-2.txt", "t/f-1.txt", "t/f-2.txt"], out
    out, _ = cli(cluster, "ls", b, "--template", "t/f-{0..1}.txt", "-H", "--name-only")
    assert out.split() == ["t/f-0.txt", "t/f-1.txt"], out
    out, _ = cli(cluster, "bucket", "ls", b, "--limit", "2", "-H", "--name-only")
    assert len(out.split()) == 2, out
    out, _ = cli(cluster, "ls", f"{b}/t/", "--summary", "--json")
    s = json.loads(out)[0]
    assert int(s["ObjCount"]["obj_count_present"]) == 3, s
    out, _ = cli(cluster, "ls", "ais", "--regex", f"^{bucket.name}$")
    assert f"ais://{bucket.name}" in out, out
    # get: a range, to stdout and to a file
    out, _ = cli(cluster, "get", f"{b}/ten", "-", "--offset", "2", "--length", "3")
    assert out == "cde"
    out, _ = cli(cluster, "object", "get", f"{b}/ten", "-", "--offset", "7")
    assert out == "hij"
    cli(cluster, "get", f"{b}/ten", str(tmp_path / "got"), "--length", "4")
    assert (tmp_path / "got").read_bytes() == b"abcd"
    cli(cluster, "put", "--dry-run", str(tmp_path / "ten"), f"{b}/never")
    assert "never" not in _names(bucket)


def test_append_concat_and_copies(cluster: Cluster, client: Client, bucket: Bucket, tmp_path: Path) -> None:
    b = f"ais://{bucket.name}"
    (tmp_path / "a").write_bytes(b"AAA")
    (tmp_path / "b").write_bytes(b"BB")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "1").write_bytes(b"1")
    (tmp_path / "dir" / "2").write_bytes(b"22")
    out, _ = cli(cluster, "object", "concat", str(tmp_path / "a"), str(tmp_path / "dir"), f"{b}/cat")
    assert "APPEND 3 file(s)" in out, out
    assert bucket.object("cat").get_reader().read_all() == b"AAA122"
    # --append of several files goes after what the object has.
    cli(cluster, "put", "--append", f"{tmp_path}/a,{tmp_path}/b", f"{b}/cat")
    assert bucket.object("cat").get_reader().read_all() == b"AAA122AAABB"
    # One object to a new name in another bucket; a prefix as a job.
    dst = client.bucket(unique_bucket_name("clicp")).create()
    try:
        d = f"ais://{dst.name}"
        out, _ = cli(cluster, "object", "cp", f"{b}/cat", f"{d}/copied")
        assert "copied" in out
        assert dst.object("copied").get_reader().read_all() == b"AAA122AAABB"
        bucket.object("p/x").get_writer().put_content(b"x")
        bucket.object("p/y").get_writer().put_content(b"y")
        cli(cluster, "cp", f"{b}/p/", d, "--wait")
        assert _names(dst) == ["copied", "p/x", "p/y"]
        # A source that names an existing object copies just it.
        cli(cluster, "bucket", "cp", f"{b}/cat", d, "--wait")
        assert _names(dst) == ["cat", "copied", "p/x", "p/y"]
        _, err = cli(cluster, "cp", b, f"{d}/obj", ok=False)
        assert "missing source object name" in err, err
    finally:
        dst.delete(missing_ok=True)


def test_archive_commands(cluster: Cluster, bucket: Bucket, tmp_path: Path) -> None:
    b = f"ais://{bucket.name}"
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.txt").write_text("BB")
    (tmp_path / "c.bin").write_bytes(b"CCC")
    cli(cluster, "archive", "put", str(src), f"{b}/s.tar", "-r")
    cli(cluster, "archive", "put", str(tmp_path / "c.bin"), f"{b}/s.tar", "--append", "--archpath", "x/c.bin")
    _, err = cli(cluster, "archive", "put", str(tmp_path / "c.bin"), f"{b}/none.tar", "--append", ok=False)
    assert "does not exist" in err
    cli(cluster, "archive", "put", str(tmp_path / "c.bin"), f"{b}/new.tgz", "--append-or-put")
    with tarfile.open(fileobj=io.BytesIO(bucket.object("s.tar").get_reader().read_all())) as t:
        assert sorted(t.getnames()) == ["a.txt", "sub/b.txt", "x/c.bin"]
    with tarfile.open(fileobj=io.BytesIO(bucket.object("new.tgz").get_reader().read_all()), mode="r:gz") as t:
        assert t.getnames() == ["c.bin"]
    out, _ = cli(cluster, "archive", "ls", f"{b}/s.tar")
    assert "s.tar/sub/b.txt" in out and "s.tar/x/c.bin" in out, out
    out, _ = cli(cluster, "archive", "get", f"{b}/s.tar/sub/b.txt", "-")
    assert out == "BB"
    out, _ = cli(cluster, "get", f"{b}/s.tar", "-", "--archpath", "x/c.bin")
    assert out == "CCC"
    m_tar = str(tmp_path / "m.tar")
    cli(cluster, "archive", "get", f"{b}/s.tar", m_tar, "--archregx", ".txt", "--archmode", "suffix")
    with tarfile.open(tmp_path / "m.tar") as t:
        assert sorted(t.getnames()) == ["a.txt", "sub/b.txt"]
    cli(cluster, "archive", "get", f"{b}/s.tar", str(tmp_path / "out"))
    assert (tmp_path / "out" / "sub" / "b.txt").read_text() == "BB"
    gen = ["--fcount", "2", "--fsize", "1k", "--fext", ".jpg,.cls"]
    out, _ = cli(cluster, "archive", "gen-shards", f"{b}/gen-{{0..2}}.tgz", *gen)
    assert "Shards created: 3" in out, out
    with tarfile.open(fileobj=io.BytesIO(bucket.object("gen-1.tgz").get_reader().read_all()), mode="r:gz") as t:
        members = t.getmembers()
        assert len(members) == 4 and all(m.size == 1024 for m in members)
        assert sorted(m.name.rsplit(".", 1)[1] for m in members) == ["cls", "cls", "jpg", "jpg"]
    # ml get-batch (Get-Batch) of a member and an object.
    cli(cluster, "ml", "get-batch", b, "s.tar?archpath=a.txt", "new.tgz", "-o", str(tmp_path / "batch.tar"))
    with tarfile.open(tmp_path / "batch.tar") as t:
        assert len(t.getnames()) == 2


def test_bucket_verbs_props_and_scrub(cluster: Cluster, client: Client, tmp_path: Path) -> None:
    name = unique_bucket_name("clib")
    b = f"ais://{name}"
    out, _ = cli(cluster, "create", b)
    assert "created" in out
    try:
        bck = client.bucket(name)
        for i in range(3):
            bck.object(f"o{i}").get_writer().put_content(b"x" * (i * 1000))
        cli(cluster, "bucket", "props", "set", b, '{"versioning": {"enabled": false}}')
        out, _ = cli(cluster, "show", "bucket", b, "--json")
        assert json.loads(out)["versioning"]["enabled"] is False
        out, _ = cli(cluster, "bucket", "show", b)
        assert "versioning.enabled" in out
        cli(cluster, "bucket", "props", "set", b, "versioning.enabled", "true")
        assert json.loads(cli(cluster, "show", "bucket", b, "--json")[0])["versioning"]["enabled"] is True
        _, err = cli(cluster, "bucket", "props", "set", b, "[1]", ok=False)
        assert "KEY=VALUE" in err or "JSON" in err
        # AIStore's read-only scrub: counts, empty objects as "small".
        out, _ = cli(cluster, "scrub", b, "--json")
        r = json.loads(out)[0]
        assert r["objects"] == 3 and r["size"] == 3000 and r["small"] == 1 and r["large"] == 0, r
        out, _ = cli(cluster, "storage", "validate", b, "--large-size", "2000", "--small-size", "1000")
        assert "LARGE" in out and "1 (1.95KiB)" in out and "SMALL" in out, out
        out, _ = cli(cluster, "bucket", "validate", b)
        assert "3 (2.93KiB)" in out, out
    finally:
        out, _ = cli(cluster, "rmb", b)
        assert "destroyed" in out


def test_operator_views(cluster: Cluster, tmp_path: Path) -> None:
    smap = cluster.smap()
    tid = next(iter(smap["tmap"]))
    out, _ = cli(cluster, "show", "cluster", "smap")
    assert f"t[{tid}]" in out and "primary" in out
    out, _ = cli(cluster, "show", "cluster", "bmd", "--json")
    assert "buckets" in json.loads(out)
    for view in ("memory", "cpu"):
        out, _ = cli(cluster, "show", "cluster", view)
        assert f"t[{tid}]" in out, out
    out, _ = cli(cluster, "show", "cluster", "stats", "--json")
    assert {r["node"] for r in json.loads(out)} >= {f"t[{t}]" for t in smap["tmap"]}
    out, _ = cli(cluster, "performance", "latency")
    assert "GET" in out and f"t[{tid}]" in out
    out, _ = cli(cluster, "show", "performance", "counters", tid)
    assert f"t[{tid}]" in out and len(out.splitlines()) == 2, out
    out, _ = cli(cluster, "show", "storage", "--json")
    caps = json.loads(out)
    assert {r["target"] for r in caps} == {f"t[{t}]" for t in smap["tmap"]}
    assert all(r["total"] != "-" for r in caps)
    out, _ = cli(cluster, "storage", "show", tid)
    assert f"t[{tid}]" in out and "MOUNTPATH" in out
    out, _ = cli(cluster, "show", "storage", "mountpath")
    assert f"t[{tid}]" in out
    out, _ = cli(cluster, "show", "remote-cluster")
    assert "No remote clusters" in out
    out, _ = cli(cluster, "cluster", "dashboard")
    assert "Jobs:" in out and "Summary:" in out
    out, _ = cli(cluster, "show", "log", tid)
    assert "INFO" in out
    out, _ = cli(cluster, "cluster", "download-logs", str(tmp_path / "logs"), "--severity", "error")
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files == sorted(f"ais-log-{n}.tar.gz" for n in list(smap["pmap"]) + list(smap["tmap"])), files
    for f in (tmp_path / "logs").iterdir():
        gzip.decompress(f.read_bytes())
    out, _ = cli(cluster, "cluster", "rebalance", "show")
    assert "Rebalance" in out or "No rebalance" in out


def test_jobs_start_show_stop(cluster: Cluster, bucket: Bucket) -> None:
    bucket.object("m").get_writer().put_content(b"mirrored")
    # One mountpath per target here: the job says it could not make 2 copies.
    out, err = cli(cluster, "start", "mirror", f"ais://{bucket.name}", "--copies", "2", "--wait", ok=False)
    assert "Started make-n-copies[" in out and "need as many mountpaths" in out + err, out + err
    out, _ = cli(cluster, "bucket", "props", "show", f"ais://{bucket.name}", "--json")
    assert json.loads(out)["mirror"]["copies"] == 2, out
    out, _ = cli(cluster, "show", "job", "make-n-copies", "--json")
    assert out and all(j["kind"] == "make-n-copies" for j in json.loads(out))
    cli(cluster, "job", "start", "mirror", f"ais://{bucket.name}", "--copies", "1", "--wait")
    out, _ = cli(cluster, "bucket", "props", "show", f"ais://{bucket.name}", "--json")
    assert json.loads(out)["mirror"]["enabled"] is False, out
    out, _ = cli(cluster, "storage", "resilver", "--wait")
    assert "Started resilver[" in out
    out, _ = cli(cluster, "job", "wait", "--timeout", "30s", out.split("[")[1].split("]")[0])
    out, _ = cli(cluster, "stop", "--all")
    assert "No running jobs" in out or "stopped" in out
    _, err = cli(cluster, "stop", "job", "no-such-job", ok=False)
    assert "not found" in err
    _, err = cli(cluster, "job", "stop", "xaction", "no-such-job", ok=False)
    assert "not found" in err


def test_job_rm_forgets_finished_jobs_only(cluster: Cluster, bucket: Bucket) -> None:
    """`ais job rm [KIND] JOB_ID`, `--all [KIND]`, `--regex`: finished jobs
    leave `ais show job`; a running one, an unknown one, or one of another
    kind is refused, naming why."""
    bucket.object("x").get_writer().put_content(b"x")

    def copy_job() -> str:
        dst = f"ais://{bucket.name}-cp-{uuid.uuid4().hex[:6]}"
        out, _ = cli(cluster, "bucket", "cp", f"ais://{bucket.name}", dst, "--wait")
        ids = re.findall(r"job (\S+)", out)
        assert ids, out
        return ids[0]

    def shown() -> str:
        out, _ = cli(cluster, "show", "job", "--json")
        return out

    a, b, c = copy_job(), copy_job(), copy_job()
    assert a in shown() and b in shown() and c in shown()
    out, _ = cli(cluster, "job", "rm", "copy-bck", a)
    assert f"Removed finished job {a}" in out, out
    assert a not in shown() and b in shown()
    _, err = cli(cluster, "job", "rm", "download", b, ok=False)
    assert "not download" in err, err
    _, err = cli(cluster, "job", "rm", "no-such-job", ok=False)
    assert "not found" in err, err
    out, _ = cli(cluster, "job", "rm", "--regex", "^" + re.escape(b) + "$")
    assert f"Removed finished job {b}" in out and b not in shown() and c in shown(), out
    # (Other tests' finished dsort jobs go first, if any ran before.)
    out, _ = cli(cluster, "job", "rm", "--all", "dsort")
    assert "No finished dsort jobs" in out or "Removed finished job srt-" in out, out
    out, _ = cli(cluster, "job", "rm", "--all", "dsort")
    assert "No finished dsort jobs" in out, out
    out, _ = cli(cluster, "job", "rm", "--all", "copy-bck")
    assert f"Removed finished job {c}" in out and c not in shown(), out
    # (A running job is refused: ais-testkit jobs.rs::stop_job_and_lose_a_target_mid_job.)
    _, err = cli(cluster, "job", "rm", "x", "y", "z", ok=False)
    assert "usage" in err, err


def test_alias_search_completion_version(cluster: Cluster, bucket: Bucket, tmp_path: Path) -> None:
    env = {"AIS_CLI_CONFIG_DIR": str(tmp_path / "cfg")}
    bucket.object("aliased").get_writer().put_content(b"a")
    out, _ = cli(cluster, "alias", env=env)
    assert "rmo" in out and "object rm" in out and "built-in" in out
    cli(cluster, "alias", "set", "lsn", "ls --name-only -H", env=env)
    out, _ = cli(cluster, "lsn", f"ais://{bucket.name}", env=env)
    assert out.split() == ["aliased"], out
    out, _ = cli(cluster, "alias", "show", env=env)
    assert "lsn" in out and "user" in out
    _, err = cli(cluster, "alias", "set", "ls", "bucket ls", env=env, ok=False)
    assert "is a command" in err
    cli(cluster, "alias", "rm", "lsn", env=env)
    cli(cluster, "lsn", env=env, ok=False)
    cli(cluster, "alias", "set", "x1", "show cluster", env=env)
    cli(cluster, "alias", "reset", env=env)
    assert "x1" not in cli(cluster, "alias", env=env)[0]
    out, _ = cli(cluster, "search", "multipart")
    assert "ais object multipart-upload complete" in out and "ais mpu abort" in out, out
    out, _ = cli(cluster, "search", "remote-attach")
    assert "ais cluster remote-attach" in out and "not supported" in out, out
    out, _ = cli(cluster, "search", "dsort")
    assert "ais start dsort" in out and "not supported" not in out, out
    for shell, marker in (("bash", "complete -F"), ("zsh", "#compdef ais")):
        out, _ = cli(cluster, "completion", shell)
        assert marker in out and "rmb" in out and "gen-shards" in out, shell
    out, _ = cli(cluster, "version")
    assert out.startswith("ais (aistore-rs)")


# --- ais auth, on a small AuthN-enabled cluster -------------------------------

ADMIN_PW = "cli-admin-pw"


@pytest.fixture(scope="module")
def acluster(tmp_path_factory: pytest.TempPathFactory):
    c = Cluster(
        base_dir=tmp_path_factory.mktemp("ais-cli-auth"),
        num_targets=1,
        env={"AIS_AUTH": "1", "AIS_AUTH_SECRET": "cli-coverage-secret", "AIS_AUTH_ADMIN_PASSWORD": ADMIN_PW},
    )
    c.start()
    try:
        yield c
    finally:
        c.stop()


def test_auth_whoami_roles_users_tokens(acluster: Cluster, tmp_path: Path) -> None:
    env = {"AIS_AUTHN_TOKEN_FILE": str(tmp_path / "tok")}
    _, err = cli(acluster, "auth", "whoami", env=env, ok=False)
    assert "not logged in" in err
    cli(acluster, "auth", "login", "admin", "-p", ADMIN_PW, env=env)
    out, _ = cli(acluster, "auth", "whoami", env=env)
    assert "User     admin" in out and "Admin    yes" in out and "ADMIN" in out, out
    out, _ = cli(acluster, "auth", "show", "cluster", env=env)
    assert "local" in out, out
    # A role: added, changed, refused while held, removed.
    cli(acluster, "auth", "add", "role", "cli-readers", "ro", "--desc", "readers", env=env)
    cli(acluster, "auth", "set", "role", "cli-readers", "rw", "--desc", "writers", env=env)
    out, _ = cli(acluster, "auth", "show", "role", env=env)
    assert "cli-readers" in out and "writers" in out, out
    cli(acluster, "auth", "add", "user", "cli-bob", "bob-pw-1", "--role", "cli-readers", env=env)
    _, err = cli(acluster, "auth", "rm", "role", "cli-readers", env=env, ok=False)
    assert "assigned" in err, err
    # The user's roles and password change; the new password logs in.
    cli(acluster, "auth", "set", "user", "cli-bob", "bob-pw-2", "--role", "Guest", env=env)
    out, _ = cli(acluster, "auth", "show", "user", env=env)
    assert "cli-bob" in out and "Guest" in out and "cli-readers" not in out.split("cli-bob", 1)[1].split("\n")[0]
    bob = {"AIS_AUTHN_TOKEN_FILE": str(tmp_path / "bob")}
    cli(acluster, "auth", "login", "cli-bob", "-p", "bob-pw-1", env=bob, ok=False)
    cli(acluster, "auth", "login", "cli-bob", "-p", "bob-pw-2", env=bob)
    out, _ = cli(acluster, "auth", "whoami", env=bob)
    assert "User     cli-bob" in out and "Admin    no" in out and "Guest" in out, out
    cli(acluster, "auth", "rm", "role", "cli-readers", env=env)
    assert "cli-readers" not in cli(acluster, "auth", "show", "role", env=env)[0]
    # Revoking bob's token (`auth rm token`) locks it out.
    tok = json.loads((tmp_path / "bob").read_text())["token"]
    cli(acluster, "ls", env=bob)
    cli(acluster, "auth", "rm", "token", tok, env=env)
    cli(acluster, "ls", env=bob, ok=False)
    cli(acluster, "auth", "rm", "user", "cli-bob", env=env)


def test_auth_cluster_registration(acluster: Cluster, cluster: Cluster, tmp_path: Path) -> None:
    """Another cluster (here: the session one) registered with the
    auth cluster's AuthN, renamed, removed; "local" is built in."""
    env = {"AIS_AUTHN_TOKEN_FILE": str(tmp_path / "tok")}
    cli(acluster, "auth", "login", "admin", "-p", ADMIN_PW, env=env)
    out, _ = cli(acluster, "auth", "add", "cluster", "second", cluster.url, env=env)
    assert "registered as \"second\"" in out, out
    out, _ = cli(acluster, "auth", "show", "cluster", env=env)
    assert "second" in out and cluster.url in out and "local" in out, out
    _, err = cli(acluster, "auth", "add", "cluster", "again", cluster.url, env=env, ok=False)
    assert "registered already" in err, err
    cli(acluster, "auth", "update", "cluster", "second", "renamed", env=env)
    out, _ = cli(acluster, "auth", "show", "cluster", env=env)
    assert "renamed" in out and "second" not in out, out
    _, err = cli(acluster, "auth", "rm", "cluster", "local", env=env, ok=False)
    assert "built in" in err, err
    cli(acluster, "auth", "rm", "cluster", "renamed", env=env)
    out, _ = cli(acluster, "auth", "show", "cluster", env=env)
    assert "renamed" not in out and cluster.url not in out, out


def test_whoami_reads_the_token_it_is_given(cluster: Cluster, tmp_path: Path) -> None:
    def b64(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

    exp = int(time.time()) + 5400
    claims = {
        "username": "alice",
        "exp": exp,
        "roles": ["Guest"],
        "cluster_perm": 1 | 2 | 4096,
        "buckets": [{"bucket": "b1", "perm": 4}],
    }
    tok = ".".join([b64({"alg": "HS256"}), b64(claims), "sig"])
    (tmp_path / "tok").write_text(json.dumps({"token": tok}))
    out, _ = cli(cluster, "auth", "whoami", env={"AIS_AUTHN_TOKEN_FILE": str(tmp_path / "tok")})
    assert "User     alice" in out and "Admin    no" in out and "1h" in out, out
    assert "GET, HEAD-OBJECT, LIST-BUCKETS" in out and "ais://b1" in out and "PUT" in out, out


def test_reset_stats_and_space_cleanup(cluster: Cluster, bucket: Bucket) -> None:
    """`ais cluster reset-stats` zeroes every node's request counters (or
    one node's, or only the errors); `ais storage cleanup` removes leftover
    temp files no write has touched for space.dont_cleanup_time, and
    nothing else."""

    def counter(url: str, name: str) -> float:
        text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
        return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name))

    bucket.object("s").get_writer().put_content(b"stats")
    for _ in range(3):
        bucket.object("s").get_reader().read_all()
    t = cluster.targets[0]
    assert counter(cluster.url, "ais_proxy_redirect_n") > 0
    cli(cluster, "cluster", "reset-stats", "--errors-only")
    assert counter(cluster.url, "ais_proxy_redirect_n") > 0
    cli(cluster, "cluster", "reset-stats", t.node_id)
    assert counter(t.url, "ais_target_get_n") == 0
    cli(cluster, "cluster", "reset-stats")
    assert counter(cluster.url, "ais_proxy_redirect_n") == 0
    # A leftover temp file, made old; a fresh one; then the cleanup.
    work = t.mpaths[0] / ".ais-work"
    old, fresh = work / "put-leftover-old", work / "put-leftover-new"
    old.write_bytes(b"x" * 1000)
    fresh.write_bytes(b"y")
    os.utime(old, (time.time() - 3 * 3600, time.time() - 3 * 3600))
    out, _ = cli(cluster, "storage", "cleanup", "--wait")
    assert "Started cleanup[" in out, out
    assert not old.exists() and fresh.exists()
    fresh.unlink()
    assert bucket.object("s").get_reader().read_all() == b"stats"
    out, _ = cli(cluster, "space-cleanup", t.node_id, "--wait")
    assert "Started cleanup[" in out, out


def test_bucket_props_reset(cluster: Cluster, bucket: Bucket) -> None:
    cli(cluster, "bucket", "props", "set", f"ais://{bucket.name}", "mirror.enabled=true", "mirror.copies=2")
    out, _ = cli(cluster, "bucket", "props", "show", f"ais://{bucket.name}", "--json")
    assert json.loads(out)["mirror"]["copies"] == 2, out
    out, _ = cli(cluster, "bucket", "props", "reset", f"ais://{bucket.name}")
    assert "reset" in out, out
    out, _ = cli(cluster, "bucket", "props", "show", f"ais://{bucket.name}", "--json")
    props = json.loads(out)
    assert props["mirror"]["enabled"] is False and props["mirror"]["copies"] == 1, props
    _, err = cli(cluster, "bucket", "props", "reset", "ais://no-such-bucket-here", ok=False)
    assert "does not exist" in err or "not found" in err.lower(), err
