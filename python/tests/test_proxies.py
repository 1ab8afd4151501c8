"""Several proxies: the official SDK pointed at a non-primary proxy does
what it does against the primary (buckets, objects, listings, an ETL's init
and inline GETs, an offline transform as a job, Get-Batch), the data from
the proxy itself and the control planes through the primary."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator

import pytest
import requests
from aistore.sdk import Client

from ais_cluster import Cluster, put_etl

CODE = "def transform(data):\n    return data.upper()\n"


@pytest.fixture(scope="module")
def pcluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base: Path = tmp_path_factory.mktemp("proxies")
    c = Cluster(base_dir=base / "c", num_targets=2, env={"AIS_ETL_ENV_CACHE": str(base / "envs")})
    c.start()
    try:
        c.add_proxy()
        yield c
    finally:
        c.stop()


def test_the_sdk_through_a_non_primary_proxy(pcluster: Cluster) -> None:
    p2 = pcluster.proxies[0].url
    client = Client(p2)
    smap = client.cluster().get_info()
    primary = pcluster.smap()["proxy_si"]["daemon_id"]
    assert len(smap.pmap) == 2 and smap.proxy_si.daemon_id == primary == pcluster.proxy.node_id
    assert pcluster.proxies[0].node_id in smap.pmap and pcluster.proxies[0].node_id != primary
    b = client.bucket(f"px-{uuid.uuid4().hex[:8]}")
    b.create()
    assert b.name in [x.name for x in Client(pcluster.url).cluster().list_buckets()]
    objs = {f"o/{i}": b"v%d " % i * (i + 1) for i in range(10)}
    for k, v in objs.items():
        b.object(k).get_writer().put_content(v)
    assert {e.name: b.object(e.name).get_reader().read_all() for e in b.list_all_objects()} == objs
    got = {o.obj_name: d for o, d in client.batch(list(objs), bucket=b).get()}
    assert got == objs

    # An ETL initialised through the non-primary proxy; inline GETs there.
    etl = f"up-{uuid.uuid4().hex[:6]}"
    put_etl(p2, etl, CODE)
    r = requests.get(f"{p2}/v1/objects/{b.name}/o/3", params={"etl_name": etl}, timeout=60)
    assert r.status_code == 200 and r.content == objs["o/3"].upper(), r.text
    # An offline transform started and waited for through it.
    dst = client.bucket(f"px-dst-{uuid.uuid4().hex[:6]}")
    job = b.transform(to_bck=dst, etl_name=etl)
    client.job(job_id=job).wait(timeout=120)
    st = requests.get(f"{p2}/v1/cluster", params={"what": "status"}, json={"ID": job}, timeout=30).json()
    assert (st["err"], st["objs"]) == ("", len(objs)), st
    assert {e.name: dst.object(e.name).get_reader().read_all() for e in dst.list_all_objects()} == {
        k: v.upper() for k, v in objs.items()
    }
    client.etl(etl).delete()
    dst.delete()
    b.delete()
    assert b.name not in [x.name for x in client.cluster().list_buckets()]
