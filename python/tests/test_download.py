"""The downloader (AIStore's ``/v1/download``, ``ais download``): HTTP links
into a bucket as a job, fetched by the owner targets from a real HTTP server
on loopback (allowed by the session cluster's ``AIS_DOWNLOAD_ALLOW``); other
private addresses refused; short bodies never stored; status, list, abort,
remove; the CLI."""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
import time
from typing import Dict, Iterator

import pytest
import requests
from aistore.sdk import Client
from aistore.sdk.bucket import Bucket

from ais_cluster import Cluster, default_bin_dir

AIS = str(default_bin_dir() / "ais")
FILES: Dict[str, bytes] = {f"/d/r-{i}.bin": os.urandom(1000 + i * 5000) for i in range(6)}
FILES["/d/big.bin"] = os.urandom(3 << 20)
# 100 files for a template download.
for _i in range(100):
    FILES[f"/h/f-{_i:03d}.dat"] = os.urandom(100 + _i * 37)
# Paths that fail on their first request (then work), and always.
ATTEMPTS: Dict[str, int] = {}
LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/short":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 400)
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path.startswith(("/flaky/", "/always/")):
            with LOCK:
                ATTEMPTS[self.path] = ATTEMPTS.get(self.path, 0) + 1
                n = ATTEMPTS[self.path]
            if self.path.startswith("/always/") or n % 2 == 1:
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = self.path.encode() * 50
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = FILES.get(self.path)
        if data is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def start(endpoint: str, body: dict) -> str:
    r = requests.post(f"{endpoint}/v1/download", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def wait(endpoint: str, job: str) -> dict:
    deadline = time.monotonic() + 90
    while True:
        r = requests.get(f"{endpoint}/v1/download", params={"id": job}, timeout=30)
        assert r.status_code == 200, r.text
        st = r.json()
        if st["finished"]:
            return st
        assert time.monotonic() < deadline, st
        time.sleep(0.1)


def get(b: Bucket, name: str) -> bytes:
    return b.object(name).get_reader().read_all()


def test_single_multi_and_range_downloads(endpoint: str, bucket: Bucket, web: str) -> None:
    st = wait(endpoint, start(endpoint, {"type": "single", "bucket": {"name": bucket.name}, "link": f"{web}/d/big.bin"}))
    assert st["finished_cnt"] == 1 and st["errors_cnt"] == 0 and not st["aborted"], st
    assert get(bucket, "big.bin") == FILES["/d/big.bin"]
    wait(endpoint, start(endpoint, {"type": "single", "bucket": {"name": bucket.name},
                                    "link": f"{web}/d/r-0.bin", "object_name": "named/zero"}))
    assert get(bucket, "named/zero") == FILES["/d/r-0.bin"]
    # Multi: a list (names from the links) and a map (names given).
    wait(endpoint, start(endpoint, {"type": "multi", "bucket": {"name": bucket.name},
                                    "objects": [f"{web}/d/r-1.bin", f"{web}/d/r-2.bin"]}))
    wait(endpoint, start(endpoint, {"type": "multi", "bucket": {"name": bucket.name},
                                    "objects": {"m/three": f"{web}/d/r-3.bin"}}))
    assert get(bucket, "r-1.bin") == FILES["/d/r-1.bin"] and get(bucket, "m/three") == FILES["/d/r-3.bin"]
    # Range, into a subdirectory, spread over the owner targets.
    st = wait(endpoint, start(endpoint, {"type": "range", "bucket": {"name": bucket.name},
                                         "template": f"{web}/d/r-{{0..5}}.bin", "subdir": "rng/"}))
    assert st["finished_cnt"] == 6 and st["total"] == 6, st
    for i in range(6):
        assert get(bucket, f"rng/r-{i}.bin") == FILES[f"/d/r-{i}.bin"]
    # The list knows them; a finished one can be removed.
    ids = [j["id"] for j in requests.get(f"{endpoint}/v1/download", timeout=30).json()]
    assert st["id"] in ids
    r = requests.delete(f"{endpoint}/v1/download/remove", json={"id": st["id"]}, timeout=30)
    assert r.status_code == 200, r.text
    assert requests.get(f"{endpoint}/v1/download", params={"id": st["id"]}, timeout=30).status_code == 404


def test_a_hundred_files_by_template_and_a_flaky_server(endpoint: str, bucket: Bucket, web: str) -> None:
    job = start(endpoint, {"type": "range", "bucket": {"name": bucket.name},
                           "template": f"{web}/h/f-{{000..099}}.dat", "description": "hundred"})
    # A job with progress, as any job (`ais show job`).
    seen = requests.get(f"{endpoint}/v1/cluster", params={"what": "status"}, json={"ID": job}, timeout=30).json()
    assert seen["kind"] == "download", seen
    st = wait(endpoint, job)
    assert (st["total"], st["finished_cnt"], st["errors_cnt"]) == (100, 100, 0), st
    for i in range(100):
        assert get(bucket, f"f-{i:03d}.dat") == FILES[f"/h/f-{i:03d}.dat"], i
    # A server failing every other request: retried, all stored; one
    # failing always: its links reported, one error each.
    links = {f"fl-{i}": f"{web}/flaky/{i}" for i in range(10)}
    links.update({f"al-{i}": f"{web}/always/{i}" for i in range(3)})
    st = wait(endpoint, start(endpoint, {"type": "multi", "bucket": {"name": bucket.name}, "objects": links}))
    assert (st["finished_cnt"], st["errors_cnt"]) == (10, 3), st
    assert all("503" in e["error"] for e in st["errors"]), st["errors"]
    assert sorted(e["name"].split(" ")[0].split("/")[-1] for e in st["errors"]) == ["al-0", "al-1", "al-2"]
    for i in range(10):
        assert get(bucket, f"fl-{i}") == f"/flaky/{i}".encode() * 50
        assert ATTEMPTS[f"/flaky/{i}"] == 2
    assert all(ATTEMPTS[f"/always/{i}"] == 3 for i in range(3))


def test_failures_are_listed_and_nothing_partial_is_stored(endpoint: str, bucket: Bucket, web: str) -> None:
    st = wait(endpoint, start(endpoint, {"type": "multi", "bucket": {"name": bucket.name}, "objects": {
        "ok": f"{web}/d/r-4.bin",
        "missing": f"{web}/nope",
        "short": f"{web}/short",
        "redirected": f"{web}/redirect",
        "metadata": "http://169.254.169.254/latest/meta-data",
        "private": "http://10.255.255.1/x",
    }}))
    assert st["finished_cnt"] == 1 and st["errors_cnt"] == 5, st
    errs = {e["name"].split(" ")[0].split("/")[-1]: e["error"] for e in st["errors"]}
    assert "404" in errs["missing"], errs
    assert "of 1000 bytes" in errs["short"] or "cut short" in errs["short"], errs
    assert "302" in errs["redirected"], errs
    assert "does not download from" in errs["metadata"] and "does not download from" in errs["private"], errs
    names = {e.name for e in bucket.list_all_objects()}
    assert names == {"ok"}, names


def test_requests_are_checked(endpoint: str, bucket: Bucket, web: str) -> None:
    def post(body: dict) -> requests.Response:
        return requests.post(f"{endpoint}/v1/download", json={"bucket": {"name": bucket.name}, **body}, timeout=30)

    for body, why in (
        ({"type": "single", "link": "file:///etc/passwd"}, "http"),
        ({"type": "single", "link": f"{web}/d/"}, "no file name"),
        ({"type": "single", "link": "http://u:p@h/x"}, "credentials"),
        ({"type": "single", "link": f"{web}/x", "bogus": 1}, "bogus"),
        ({"type": "single", "link": f"{web}/x", "object_name": "../x"}, "invalid"),
        ({"type": "multi", "objects": {"a": f"{web}/1", "b": 3}}, "strings"),
        ({"type": "range", "template": f"{web}/a{{0..2}}/x.bin"}, "stored as"),
        ({"type": "nope"}, "invalid type"),
    ):
        r = post(body)
        assert r.status_code == 400 and why in r.text, (body, r.text)
    r = post({"type": "single", "link": "ftp://example.com/x.bin"})
    assert r.status_code == 400 and "https" in r.text, r.text
    r = post({"type": "single", "link": f"{web}/x", "timeout": "1000h"})
    assert r.status_code == 400 and "timeout" in r.text, r.text
    r = post({"type": "backend", "prefix": "x"})
    assert r.status_code == 501 and "prefetch" in r.text, r.text
    r = requests.post(f"{endpoint}/v1/download", json={"type": "single", "bucket": {"name": "no-such-b"},
                                                      "link": f"{web}/d/r-0.bin"}, timeout=30)
    assert r.status_code == 404, r.text
    assert requests.get(f"{endpoint}/v1/download", params={"id": "tcb-x"}, timeout=30).status_code == 404


def test_cli_download(endpoint: str, bucket: Bucket, web: str, tmp_path) -> None:
    env = dict(os.environ, AIS_ENDPOINT=endpoint)
    env.pop("AIS_AUTHN_TOKEN", None)

    def ais(*args: str) -> str:
        p = subprocess.run([AIS, *args], env=env, capture_output=True, timeout=120)
        out = p.stdout.decode() + p.stderr.decode()
        assert p.returncode == 0, out
        return out

    ais("download", f"{web}/d/r-5.bin", f"ais://{bucket.name}/cli/", "--wait")
    assert get(bucket, "cli/r-5.bin") == FILES["/d/r-5.bin"]
    ais("start", "download", f"{web}/d/r-{{1..2}}.bin", f"ais://{bucket.name}/cr/", "--wait")
    assert get(bucket, "cr/r-2.bin") == FILES["/d/r-2.bin"]
    lst = tmp_path / "links.txt"
    lst.write_text(f"{web}/d/r-3.bin\n{web}/d/r-4.bin\n")
    out = ais("download", "-", f"ais://{bucket.name}", "--object-list", str(lst))
    job = out.split()[0]
    assert job.startswith("download-"), out
    ais("wait", job)
    assert get(bucket, "r-4.bin") == FILES["/d/r-4.bin"]
    assert job in ais("show", "job", job)


def ca_and_server_cert(d, name: str):
    """A certificate authority and a server certificate it signed for
    localhost / 127.0.0.1 (openssl): (CA certificate, server certificate,
    server key)."""
    ca_key, ca, key, csr, cert, ext = (d / f"{name}-{x}" for x in ("ca.key", "ca.pem", "key", "csr", "pem", "ext"))

    def sh(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    sh("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
       "-subj", f"/CN={name} test CA")
    sh("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    ext.write_text("basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    sh("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
       "-days", "2", "-extfile", str(ext))
    return ca, cert, key


def https_server(cert, key) -> http.server.ThreadingHTTPServer:
    import ssl

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_https_links_are_verified_against_the_system_and_operator_cas(tmp_path) -> None:
    """https links: fetched when the server's certificate chains to a root
    the node trusts (the system's, plus the operator's AIS_DOWNLOAD_CA);
    a server with any other certificate is a per-link error, nothing stored."""
    trusted = ca_and_server_cert(tmp_path, "trusted")
    other = ca_and_server_cert(tmp_path, "other")
    good, bad = https_server(*trusted[1:]), https_server(*other[1:])
    c = Cluster(base_dir=tmp_path / "c", num_targets=2,
                env={"AIS_DOWNLOAD_ALLOW": "127.0.0.1", "AIS_DOWNLOAD_CA": str(trusted[0])})
    try:
        c.start()
        b = Client(c.url).bucket("tls").create()
        g, o = good.server_address[1], bad.server_address[1]
        st = wait(c.url, start(c.url, {"type": "multi", "bucket": {"name": "tls"}, "objects": {
            "by-name": f"https://localhost:{g}/d/r-1.bin",
            "by-ip": f"https://127.0.0.1:{g}/d/big.bin",
            "untrusted": f"https://localhost:{o}/d/r-2.bin",
            "plain-to-tls": f"http://localhost:{g}/d/r-3.bin",
        }}))
        assert (st["finished_cnt"], st["errors_cnt"]) == (2, 2), st["errors"]
        assert get(b, "by-name") == FILES["/d/r-1.bin"] and get(b, "by-ip") == FILES["/d/big.bin"]
        errs = {e["name"].split(" ")[0].split("/")[-1]: e["error"] for e in st["errors"]}
        assert set(errs) == {"untrusted", "plain-to-tls"}, errs
        assert "certificate" in errs["untrusted"].lower() or "unknownissuer" in errs["untrusted"].lower(), errs
        assert {e.name for e in b.list_all_objects()} == {"by-name", "by-ip"}
    finally:
        c.stop()
        good.shutdown()
        bad.shutdown()
