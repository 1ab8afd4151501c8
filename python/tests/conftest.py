"""Pytest fixtures: a real local aistore-rs cluster and SDK handles to it.

* ``cluster`` (session): 1 proxy + 3 targets spawned from ``aisnode``
  (``$AIS_BIN_DIR`` or ``<repo>/target/debug``); torn down with SIGTERM, then
  SIGKILL after 5 s, and the teardown asserts that no node is left running.
* ``endpoint`` (session): the primary proxy URL.
* ``client`` (session): ``aistore.sdk.Client(endpoint)``.
* ``bucket`` (function): a freshly created, uniquely named ais:// bucket that
  is destroyed after the test.
"""

from __future__ import annotations

import os
import sys
from typing import Iterator

import pytest
from aistore.sdk import Client
from aistore.sdk.bucket import Bucket

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=wrong-import-position
from ais_cluster import NUM_TARGETS, Cluster, unique_bucket_name  # noqa: E402


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A running 1-proxy/3-target cluster for the whole session."""
    base = tmp_path_factory.mktemp("ais-cluster")
    # ETL dependency environments: built per test session, not taken from a
    # previous run's cache in $HOME (so dependency installs are exercised).
    env = {
        "AIS_ETL_ENV_CACHE": str(tmp_path_factory.mktemp("etl-envs")),
        # No auth here: host-network ETLs (network: true, runtime.command
        # servers) need the operator's consent.
        "AIS_ETL_ALLOW_HOST_NETWORK": "1",
        # The downloader may fetch from the tests' loopback HTTP servers
        # (test_download.py); other private addresses stay refused.
        "AIS_DOWNLOAD_ALLOW": "127.0.0.1",
        # What `promote` may read (test_promote.py).
        "AIS_PROMOTE_ROOTS": str(tmp_path_factory.getbasetemp() / "promote-root"),
    }
    (tmp_path_factory.getbasetemp() / "promote-root").mkdir(exist_ok=True)
    # A generous keepalive timeout: on a loaded 2-core machine a 2 s one
    # dropped healthy targets from the map (no test here needs fast detection).
    c = Cluster(base_dir=base, num_targets=NUM_TARGETS, keepalive_timeout=6.0, env=env)
    c.start()
    try:
        yield c
    finally:
        nodes = c.nodes
        c.stop()  # raises if something survived SIGKILL
        left = [n for n in nodes if n.proc.poll() is None]
        assert not left, f"nodes left running: {[n.proc.pid for n in left]}"


@pytest.fixture(scope="session")
def promote_root(cluster: Cluster) -> str:
    """The directory the session cluster's targets promote from."""
    return cluster.env["AIS_PROMOTE_ROOTS"]


@pytest.fixture(scope="session")
def endpoint(cluster: Cluster) -> str:
    """Primary proxy URL."""
    return cluster.url


@pytest.fixture(scope="session")
def client(endpoint: str) -> Client:
    """Official SDK client bound to the primary proxy."""
    return Client(endpoint)


@pytest.fixture
def bucket(client: Client) -> Iterator[Bucket]:
    """A new, uniquely named ais:// bucket, destroyed after the test."""
    bck = client.bucket(unique_bucket_name()).create()
    try:
        yield bck
    finally:
        bck.delete(missing_ok=True)
