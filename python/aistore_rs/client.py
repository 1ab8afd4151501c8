"""HTTP client for aistore-rs (and AIStore's REST API): buckets, objects, ETL."""

from __future__ import annotations

import base64
import inspect
import json
import sys
import textwrap
from typing import Any, Callable, Iterator, Optional
from urllib.parse import quote

import requests

from .errors import from_response


def _check(resp: requests.Response) -> requests.Response:
    if resp.status_code >= 400:
        raise from_response(resp.status_code, resp.text, resp.headers.get("Hdr-Error"))
    return resp


def parse_bucket(b: str) -> str:
    """`imagenet`, `ais://imagenet` -> `imagenet`."""
    if "://" in b:
        prov, name = b.split("://", 1)
        if prov != "ais":
            raise ValueError(f"only ais:// buckets are supported, got {b!r}")
        return name.strip("/")
    return b


class Client:
    """Entry point: ``Client("http://localhost:8080")``."""

    def __init__(self, endpoint: str, timeout: float = 300.0, session: Optional[requests.Session] = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=16, pool_maxsize=64)
        self.session.mount("http://", adapter)

    # -- plumbing
    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", self.timeout)
        return _check(self.session.request(method, f"{self.endpoint}{path}", **kw))

    def action(self, method: str, path: str, action: str, value: Any = None, **kw: Any) -> requests.Response:
        return self.request(method, path, json={"action": action, "name": "", "value": value}, **kw)

    # -- cluster
    def smap(self) -> dict:
        return self.request("GET", "/v1/daemon", params={"what": "smap"}).json()

    def list_buckets(self) -> list[str]:
        return [b["name"] for b in self.action("GET", "/v1/buckets", "list").json()]

    def bucket(self, name: str) -> "Bucket":
        return Bucket(self, parse_bucket(name))

    def etl(self, name: str) -> "Etl":
        return Etl(self, name)

    def list_etls(self) -> list[dict]:
        return self.request("GET", "/v1/etl").json()


class Bucket:
    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = name

    def create(self, exist_ok: bool = False) -> "Bucket":
        from .errors import BucketExists

        try:
            self.client.action("POST", f"/v1/buckets/{self.name}", "create-bck")
        except BucketExists:
            if not exist_ok:
                raise
        return self

    def delete(self, missing_ok: bool = False) -> None:
        from .errors import BucketNotFound

        try:
            self.client.action("DELETE", f"/v1/buckets/{self.name}", "destroy-bck")
        except BucketNotFound:
            if not missing_ok:
                raise

    def head(self) -> dict:
        r = self.client.request("HEAD", f"/v1/buckets/{self.name}")
        return json.loads(r.headers.get("Ais-Bucket-Props", "{}"))

    def list_page(self, prefix: str = "", page_size: int = 0, token: str = "", uuid: str = "", props: str = "name,size") -> dict:
        value = {"prefix": prefix, "pagesize": page_size, "continuation_token": token, "uuid": uuid, "props": props}
        return self.client.action("GET", f"/v1/buckets/{self.name}", "list", value).json()

    def list_objects_iter(self, prefix: str = "", page_size: int = 0, props: str = "name,size") -> Iterator[dict]:
        """Yields `{"name", "size", ...}` entries page by page (never the whole listing at once)."""
        token, uuid = "", ""
        while True:
            page = self.list_page(prefix, page_size, token, uuid, props)
            for e in page.get("entries") or []:
                if "size" in e:
                    e["size"] = int(e["size"])
                yield e
            token, uuid = page.get("continuation_token", ""), page.get("uuid", "")
            if not token:
                return

    def list_names(self, prefix: str = "") -> list[str]:
        return [e["name"] for e in self.list_objects_iter(prefix, props="name")]

    def get_batch(
        self,
        names: list[str],
        etl_name: Optional[str] = None,
        etl_args: Optional[str] = None,
        archpaths: Optional[dict[str, str]] = None,
        cont_on_err: bool = False,
    ) -> Iterator[tuple[str, bytes]]:
        """Get-Batch: ``(name, bytes)`` for every name, in the order given,
        streamed as the cluster assembles them (one request; items come
        from every target in parallel). With ``etl_name`` each item is
        transformed on the target that stores it. ``archpaths`` maps a shard
        name to the member to read from it. A missing item raises (or, with
        ``cont_on_err``, comes back as ``b""``)."""
        import tarfile

        params = {}
        if etl_name:
            params["etl_name"] = etl_name
            if etl_args is not None:
                params["etl_args"] = etl_args
        items = []
        for n in names:
            it: dict[str, Any] = {"objname": n}
            if archpaths and n in archpaths:
                it["archpath"] = archpaths[n]
            items.append(it)
        req = {"in": items, "coer": cont_on_err}
        r = self.client.request("GET", f"/v1/ml/moss/{self.name}", params=params, json=req, stream=True)
        try:
            with tarfile.open(fileobj=r.raw, mode="r|") as tf:
                i = 0
                for m in tf:
                    f = tf.extractfile(m)
                    data = f.read() if f else b""
                    yield names[i], data
                    i += 1
            if i != len(names):
                raise RuntimeError(f"Get-Batch returned {i} of {len(names)} items")
        finally:
            r.close()

    def object(self, name: str) -> "Object":
        return Object(self, name)


class Object:
    def __init__(self, bucket: Bucket, name: str) -> None:
        self.bucket = bucket
        self.name = name

    @property
    def path(self) -> str:
        return f"/v1/objects/{self.bucket.name}/{quote(self.name, safe='/')}"

    def put(self, data: bytes) -> dict:
        """Stores the object; returns its `Ais-*` attributes (case-insensitive keys)."""
        r = self.bucket.client.request("PUT", self.path, data=data)
        return requests.structures.CaseInsensitiveDict(
            {k: v for k, v in r.headers.items() if k.lower().startswith("ais-")}
        )

    def put_file(self, path: str) -> dict:
        with open(path, "rb") as f:
            return self.put(f.read())

    def get(self, etl_name: Optional[str] = None, etl_args: Any = None, byte_range: Optional[str] = None) -> bytes:
        params = {}
        if etl_name:
            params["etl_name"] = etl_name
        if etl_args is not None:
            params["etl_args"] = etl_args if isinstance(etl_args, str) else json.dumps(etl_args, separators=(",", ":"))
        headers = {"Range": byte_range} if byte_range else {}
        return self.bucket.client.request("GET", self.path, params=params, headers=headers).content

    def head(self) -> dict:
        r = self.bucket.client.request("HEAD", self.path, params={"props": "size,checksum,atime,version,custom"})
        return {
            "size": int(r.headers.get("Content-Length", "0")),
            "checksum_type": r.headers.get("Ais-Checksum-Type", ""),
            "checksum": r.headers.get("Ais-Checksum-Value", ""),
            "version": r.headers.get("Ais-Version", ""),
            "atime": r.headers.get("Ais-Atime", ""),
        }

    def delete(self) -> None:
        self.bucket.client.request("DELETE", self.path)


def client_python() -> str:
    """This interpreter as an ETL runtime name (`python3.N`): a pickled callable
    must run under the same Python minor version it was serialised with."""
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


class Etl:
    """An ETL: init from code or from a Python callable; show, logs, stop/start/delete."""

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = name

    def init_code(
        self,
        code: str,
        dependencies: str | list[str] = "",
        runtime: str = "python3",
        comm_type: str = "hpush://",
        init_timeout: str = "5m",
        obj_timeout: str = "45s",
        pool_size: int = 0,
        fresh_process: bool = False,
        transform: str = "transform",
    ) -> str:
        if isinstance(dependencies, (list, tuple)):
            dependencies = "\n".join(dependencies)
        body = {
            "name": self.name,
            "runtime": runtime,
            "communication": comm_type,
            "init_timeout": init_timeout,
            "obj_timeout": obj_timeout,
            "funcs": {"transform": transform},
            "code": base64.b64encode(code.encode()).decode(),
            "dependencies": base64.b64encode(dependencies.encode()).decode(),
            "pool_size": pool_size,
            "fresh_process": fresh_process,
        }
        return self.client.request("PUT", "/v1/etl", json=body).text

    def init(self, fn: Callable[..., bytes], dependencies: list[str] | None = None, **kw: Any) -> str:
        """Initialises from a callable `fn(data[, path, etl_args]) -> bytes`.

        The callable is serialised with cloudpickle; the cluster runs it with the
        same Python minor version as this client (`python3.N`), and init fails
        with a clear error listing what the cluster has if that version is absent.
        """
        try:
            import cloudpickle
        except ImportError as e:  # pragma: no cover - optional dependency
            raise ImportError("Etl.init(callable) needs cloudpickle: pip install 'aistore-rs[etl]'") from e
        payload = base64.b64encode(cloudpickle.dumps(fn)).decode()
        nparams = len(inspect.signature(fn).parameters)
        call = "_fn(data, path, args)" if nparams >= 3 else "_fn(data)"
        code = textwrap.dedent(
            f"""\
            import base64, cloudpickle
            _fn = cloudpickle.loads(base64.b64decode({payload!r}))

            def transform(data, path, args):
                return {call}
            """
        )
        deps = list(dependencies or []) + ["cloudpickle"]
        return self.init_code(code, deps, runtime=client_python(), **kw)

    def view(self) -> dict:
        return self.client.request("GET", f"/v1/etl/{self.name}").json()

    def logs(self) -> dict[str, str]:
        out = self.client.request("GET", f"/v1/etl/{self.name}/logs").json()
        return {t["target_id"]: base64.b64decode(t["logs"]).decode(errors="replace") for t in out}

    def stop(self) -> None:
        self.client.request("POST", f"/v1/etl/{self.name}/stop")

    def start(self) -> None:
        self.client.request("POST", f"/v1/etl/{self.name}/start")

    def delete(self) -> None:
        self.client.request("DELETE", f"/v1/etl/{self.name}")
