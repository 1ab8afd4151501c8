"""Remote s3:// buckets: cold vs warm GET latency with injected backend
latency, and prefetch throughput vs a client-side download of the same
objects. Run by bench/remote.sh (moto's S3 server behind a delaying proxy)."""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import http.server
import os
import socketserver
import statistics
import threading
import time

import boto3
import requests


class DelayProxy(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def make_handler(upstream: str, delay: float):
    session = requests.Session()

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):  # quiet
            pass

        def _go(self):
            time.sleep(delay)  # the backend's latency, per request
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else None
            hdrs = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            hdrs["Host"] = upstream.split("//", 1)[1]
            r = session.request(self.command, upstream + self.path, headers=hdrs, data=body, stream=True)
            self.send_response(r.status_code)
            for k, v in r.headers.items():
                if k.lower() not in ("transfer-encoding", "connection", "content-encoding"):
                    self.send_header(k, v)
            if "Content-Length" not in r.headers:
                data = r.content
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.end_headers()
            if self.command != "HEAD":
                for chunk in r.raw.stream(1 << 16, decode_content=False):
                    self.wfile.write(chunk)

        do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _go

    return H


def p50(xs):
    return statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--moto", required=True)
    ap.add_argument("--proxy-port", type=int, required=True)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--size", type=int, default=256 << 10)
    ap.add_argument("--delay-ms", type=float, default=20)
    ap.add_argument("--conc", type=int, default=16)
    a = ap.parse_args()

    srv = DelayProxy(("127.0.0.1", a.proxy_port), make_handler(a.moto, a.delay_ms / 1000))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    delayed = f"http://127.0.0.1:{a.proxy_port}"
    s3 = boto3.client("s3", endpoint_url=a.moto, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    s3d = boto3.client("s3", endpoint_url=delayed, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test",
                       config=boto3.session.Config(max_pool_connections=a.conc))
    bucket = "bench"
    s3.create_bucket(Bucket=bucket)
    names = [f"o/{i:05d}" for i in range(a.n)]
    data = {n: os.urandom(a.size) for n in names}
    for n in names:
        s3.put_object(Bucket=bucket, Key=n, Body=data[n])
    ep = a.endpoint
    http = requests.Session()

    def get(n):
        t = time.perf_counter()
        r = http.get(f"{ep}/v1/objects/{bucket}/{n}", params={"provider": "aws"}, timeout=60)
        dt = time.perf_counter() - t
        assert r.status_code == 200 and r.content == data[n], (n, r.status_code)
        return dt

    # 1. Cold then warm, one client, sequential.
    cold = [get(n) for n in names[: a.n // 2]]
    warm = [get(n) for n in names[: a.n // 2]]
    # 2. Prefetch of the other half vs a client-side download of it (same objects, same delayed endpoint).
    rest = names[a.n // 2:]
    t = time.perf_counter()
    with cf.ThreadPoolExecutor(a.conc) as ex:
        got = list(ex.map(lambda n: s3d.get_object(Bucket=bucket, Key=n)["Body"].read(), rest))
    client_s = time.perf_counter() - t
    assert all(g == data[n] for g, n in zip(got, rest))
    r = http.post(f"{ep}/v1/buckets/{bucket}", params={"provider": "aws"},
                  json={"action": "prefetch-listrange", "value": {"objnames": rest}}, timeout=60)
    assert r.status_code == 200, r.text
    job = r.text.strip()
    while True:
        st = http.get(f"{ep}/v1/cluster", params={"what": "jobs"}, timeout=60).json()
        j = [x for x in st if x["uuid"] == job]
        if j and j[0]["end_time"]:
            j = j[0]
            break
        time.sleep(0.05)
    assert j["err_count"] == 0 and j["objs"] == len(rest), j
    pre_s = (j["end_time"] - j["start_time"]) / 1e9
    warm2 = [get(n) for n in rest[:20]]
    mib = len(rest) * a.size / 2**20
    print(f"{a.n} objects of {a.size >> 10} KiB in an S3 server (moto) behind a proxy adding {a.delay_ms:.0f} ms per request; "
          f"cluster: 1 proxy + 3 targets on this machine.\n")
    print("| measure | value |")
    print("|---|---|")
    print(f"| cold GET p50 (first read, streamed from the backend), {len(cold)} objects | {p50(cold)*1e3:.2f} ms |")
    print(f"| warm GET p50 (second read, local), same objects | {p50(warm)*1e3:.2f} ms |")
    print(f"| **cold / warm p50** (goal >= 10x) | **{p50(cold)/p50(warm):.1f}x** |")
    print(f"| prefetch job, {len(rest)} objects ({mib:.1f} MiB) | {pre_s:.2f} s = {mib/pre_s:.1f} MiB/s |")
    print(f"| client-side download of the same objects (boto3, {a.conc} threads, same delayed endpoint) | {client_s:.2f} s = {mib/client_s:.1f} MiB/s |")
    print(f"| **prefetch / client download throughput** | **{client_s/pre_s:.2f}x** |")
    print(f"| GET p50 after prefetch, 20 objects | {p50(warm2)*1e3:.2f} ms |")
    srv.shutdown()


if __name__ == "__main__":
    main()
