#!/usr/bin/env bash
# Bulk delete: one `delete-listrange` job by template vs per-object DELETEs
# from one client (the SDK's `obj.delete()` in a loop), same cluster, same
# run. Loads N objects (default 100,000, 64 B each: the cost under test is
# the delete), deletes a SAMPLE of them one by one (default
# 10,000) and the rest (N - SAMPLE) with one job; prints both rates and their
# ratio (bench/out/bulk_delete.md). Goal: the job >= 10x the per-object rate.
#   N=100000 SAMPLE=10000 TARGETS=3 ./bench/bulk_delete.sh
source "$(dirname "$0")/lib.sh"
bench_setup
start_cluster "${TARGETS:-3}"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); cores: $(nproc)"
.venv/bin/python - "$EP" "${N:-100000}" "${SAMPLE:-10000}" <<'PY' | tee "$OUT/bulk_delete.md"
import sys, time
from concurrent.futures import ThreadPoolExecutor
import requests
from aistore.sdk import Client

ep, n, sample = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = Client(ep)
bck = client.bucket("bulkdel").create(exist_ok=True)
names = [f"o-{i:06}" for i in range(n)]

def put(chunk):
    s = requests.Session()
    for nm in chunk:
        r = s.put(f"{ep}/v1/objects/bulkdel/{nm}", data=b"x" * 64, timeout=60)
        r.raise_for_status()

t0 = time.perf_counter()
with ThreadPoolExecutor(16) as ex:
    list(ex.map(put, [names[i::16] for i in range(16)]))
load = time.perf_counter() - t0

# Per-object: one client, one DELETE after another (as `obj.delete()` in a loop).
t0 = time.perf_counter()
for nm in names[:sample]:
    bck.object(nm).delete()
one_by_one = time.perf_counter() - t0

# One job for the rest, by template.
t0 = time.perf_counter()
job = bck.objects(obj_template=f"o-{{{sample:06}..{n - 1:06}}}").delete()
# (Job.wait polls every timeout/64 s: poll finely here, as the CLI's `ais wait` does.)
while client.job(job_id=job).status().end_time == 0:
    time.sleep(0.05)
job_s = time.perf_counter() - t0
left = len(bck.list_all_objects())
assert left == 0, f"{left} objects left"
per_obj = sample / one_by_one
per_job = (n - sample) / job_s
print(f"| objects | load (16 clients) | per-object DELETEs, 1 client | delete-listrange job | ratio |")
print("|---|---|---|---|---|")
print(f"| {n} | {n / load:.0f}/s | {sample} in {one_by_one:.1f} s = {per_obj:.0f}/s | {n - sample} in {job_s:.1f} s = {per_job:.0f}/s | {per_job / per_obj:.1f}x |")
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
