"""ETL dependency environments on a host without a package registry: what
the base interpreter already provides is not fetched (the registry is pointed
at a closed local port), and a requirement nobody provides fails with pip's
own message, quickly."""

from __future__ import annotations

import base64
import socket
import time
import uuid
from pathlib import Path

import requests

from ais_cluster import Cluster

CODE = "import numpy as np\n\ndef transform(data):\n    return bytes(np.frombuffer(data, dtype=np.uint8)[::-1])\n"


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused
    return port


def init(url: str, name: str, deps: str) -> requests.Response:
    body = {
        "name": name,
        "runtime": "python3",
        "communication": "hpush://",
        "code": base64.b64encode(CODE.encode()).decode(),
        "dependencies": base64.b64encode(deps.encode()).decode(),
        "init_timeout": "3m",
    }
    return requests.put(f"{url}/v1/etl", json=body, timeout=300)


def test_env_builds_offline_from_the_base_interpreter(tmp_path: Path) -> None:
    index = f"http://127.0.0.1:{closed_port()}/simple/"
    env = {
        "AIS_ETL_ENV_CACHE": str(tmp_path / "envs"),
        "PIP_INDEX_URL": index,
        "PIP_EXTRA_INDEX_URL": "",
        "PIP_FIND_LINKS": "",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "3",
        "UV_INDEX_URL": index,
        "UV_DEFAULT_INDEX": index,
    }
    c = Cluster(base_dir=tmp_path / "offline", num_targets=1, env=env)
    c.allow_log("etl")  # the failing init below is logged as an error
    c.start()
    try:
        name = f"off-{uuid.uuid4().hex[:8]}"
        r = init(c.url, name, "numpy\nPillow>=5\n# a comment\n")
        assert r.status_code == 200, r.text
        b = f"off-{uuid.uuid4().hex[:8]}"
        assert requests.post(f"{c.url}/v1/buckets/{b}", json={"action": "create-bck"}, timeout=30).status_code == 200
        assert requests.put(f"{c.url}/v1/objects/{b}/o", data=b"abc", timeout=30).status_code == 200
        got = requests.get(f"{c.url}/v1/objects/{b}/o", params={"etl_name": name}, timeout=60)
        assert got.status_code == 200 and got.content == b"cba", got.text
        logs = requests.get(f"{c.url}/v1/etl/{name}/logs", timeout=30).json()
        log = "".join(base64.b64decode(x["logs"]).decode() for x in logs)
        assert "nothing to install" in log, log[-2000:]

        t = time.monotonic()
        r = init(c.url, f"off-{uuid.uuid4().hex[:8]}", "numpy\naisrs-no-such-package-xyz==1.0\n")
        assert r.status_code != 200
        assert "aisrs-no-such-package-xyz" in r.text, r.text
        assert time.monotonic() - t < 120, "an unreachable registry must fail the init quickly"
    finally:
        c.stop()
