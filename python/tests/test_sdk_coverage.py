"""SDK coverage suite: every public method of the official ``aistore`` SDK
(2.0.0), called as a user would, against a real aistore-rs cluster.

What counts as a "public method" (checked by ``test_coverage_table_is_complete``
against the installed SDK, so the table stays complete when the SDK changes):

* every ``def`` whose name has no leading underscore (functions, static and
  class methods) on the user-facing classes in ``CLASSES`` -- the classes a
  user gets from ``Client`` (directly or as a return value): Client, Cluster,
  Bucket, Object, ObjectReader, ObjectFileReader, ObjectWriter,
  ObjectFileWriter, MultipartUpload, ObjectGroup, Job, Etl, Dsort, Batch,
  AuthNClient and its UserManager, RoleManager, ClusterManager and
  TokenManager -- including methods inherited from other SDK classes, but not
  those inherited from the standard library (``io.BufferedIOBase`` & co.);
  dunder methods are not counted;
* plus the properties that send a request (``REQUEST_PROPERTIES``:
  ``Object.props`` and ``ObjectReader.attributes`` issue a HEAD); every other
  public property must be listed in ``LOCAL_PROPERTIES`` (no request).

Classes exported by ``aistore.sdk`` that are not in ``CLASSES`` must be listed
in ``EXCLUDED_CLASSES`` with the reason (configuration/data types, abstract
bases).

``COVERAGE`` maps each method (``Class.method``) to the test that calls it
(``covered``), or marks it ``n/a`` with the reason and the error a user gets
(its test asserts that error). A test that fails against the current server is
marked ``xfail(strict=True)`` with what the server answered: remove the mark
once the server does it (strict: an unexpected pass fails the run).

Clusters: the session ``cluster`` (1 proxy, 3 targets) for almost everything;
``rcluster`` + ``s3`` (moto S3 server, from ``test_remote``) for the methods
that only apply to remote buckets (evict, prefetch, blob download, inventory);
``acluster`` (``AIS_AUTH=1``, from ``test_auth``) for AuthN.
"""

from __future__ import annotations

import inspect
import io
import sys
import tarfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Dict, Iterator, Tuple

import pytest
import requests
from aistore.sdk import AuthNClient, Client
from aistore.sdk.authn.access_attr import AccessAttr
from aistore.sdk.authn.cluster_manager import ClusterManager
from aistore.sdk.authn.errors import AuthNError
from aistore.sdk.authn.role_manager import RoleManager
from aistore.sdk.authn.token_manager import TokenManager
from aistore.sdk.authn.user_manager import UserManager
from aistore.sdk.batch.batch import Batch
from aistore.sdk.bucket import Bucket
from aistore.sdk.cluster import Cluster as SdkCluster
from aistore.sdk.dataset.data_attribute import DataAttribute
from aistore.sdk.dataset.dataset_config import DatasetConfig
from aistore.sdk.dataset.label_attribute import LabelAttribute
from aistore.sdk.dsort import Dsort, DsortFramework, DsortShardsGroup
from aistore.sdk.enums import LogSeverity, NodeFilter
from aistore.sdk.errors import (
    AISError,
    ErrBckNotFound,
    ErrETLNotFound,
    ErrObjNotFound,
    InvalidBckProvider,
)
from aistore.sdk.etl import ETLConfig
from aistore.sdk.etl.etl import Etl
from aistore.sdk.etl.webserver.http_multi_threaded_server import HTTPMultiThreadedServer
from aistore.sdk.job import Job
from aistore.sdk.multiobj import ObjectRange
from aistore.sdk.multiobj.object_group import ObjectGroup
from aistore.sdk.obj.multipart_upload import MultipartUpload
from aistore.sdk.obj.obj_file.object_file import ObjectFileReader, ObjectFileWriter
from aistore.sdk.obj.object import Object
from aistore.sdk.obj.object_reader import ObjectReader
from aistore.sdk.obj.object_writer import ObjectWriter
from aistore.sdk.types import BucketModel

from ais_cluster import Cluster, unique_bucket_name

# Fixtures of other modules (each module gets its own instance).
from test_auth import ADMIN_PW, acluster, admin_token  # noqa: F401
from test_etl import TRANSFORMER_SERVER
from test_remote import S3Server, rcluster, remote, s3  # noqa: F401

HTTP_TIMEOUT = 30
JOB_TIMEOUT = 60

# ------------------------------------------------------------------- the table

CLASSES = (
    Client,
    SdkCluster,
    Bucket,
    Object,
    ObjectReader,
    ObjectFileReader,
    ObjectWriter,
    ObjectFileWriter,
    MultipartUpload,
    ObjectGroup,
    Job,
    Etl,
    Dsort,
    Batch,
    AuthNClient,
    UserManager,
    RoleManager,
    ClusterManager,
    TokenManager,
)

# Exported by `aistore.sdk` but not user-facing request classes.
EXCLUDED_CLASSES = {
    "AISSource": "abstract base of Bucket and ObjectGroup (its methods are counted there)",
    "Namespace": "data model (bucket namespace), no requests",
    "ArchiveConfig": "configuration value for Object.get_reader",
    "BlobDownloadConfig": "configuration value for Object.get_reader",
    "DataShard": "configuration value (dataset shards), no requests",
    "ListObjectFlag": "enum",
    "ColdGetConf": "configuration value (retries)",
    "RetryConfig": "configuration value (retries)",
    "WaitResult": "result type",
}

# Properties that send a request: counted as public methods.
REQUEST_PROPERTIES = {"Object.props", "ObjectReader.attributes"}

# Properties that only read local state: not counted.
LOCAL_PROPERTIES = {
    "Cluster.client",
    "Bucket.client",
    "Bucket.qparam",
    "Bucket.provider",
    "Bucket.name",
    "Bucket.namespace",
    "Object.bucket_name",
    "Object.bucket_provider",
    "Object.query_params",
    "Object.name",
    "Object.uname",
    "Object.props_cached",
    "ObjectGroup.client",
    "Job.job_id",
    "Job.job_kind",
    "Etl.name",
    "Etl.pipeline",
    "Dsort.dsort_id",
    "Batch.requests_list",
    "AuthNClient.client",
    "UserManager.client",
    "RoleManager.client",
    "ClusterManager.client",
    "TokenManager.client",
}

COVERED = "covered"
NA = "n/a"


# "Class.method" -> (COVERED, test) or (NA, test that asserts the user's error, reason)
COVERAGE: Dict[str, Tuple[str, ...]] = {
    # Client
    "Client.bucket": (COVERED, "test_client_factories"),
    "Client.cluster": (COVERED, "test_client_factories"),
    "Client.job": (COVERED, "test_client_factories"),
    "Client.etl": (COVERED, "test_client_factories"),
    "Client.dsort": (COVERED, "test_client_factories"),
    "Client.get_object_from_url": (COVERED, "test_client_get_object_from_url"),
    "Client.batch": (COVERED, "test_client_batch"),
    # Cluster
    "Cluster.get_info": (COVERED, "test_cluster_map"),
    "Cluster.get_primary_url": (COVERED, "test_cluster_map"),
    "Cluster.get_uuid": (COVERED, "test_cluster_map"),
    "Cluster.is_ready": (COVERED, "test_cluster_map"),
    "Cluster.list_buckets": (COVERED, "test_cluster_list_buckets"),
    "Cluster.list_jobs_status": (COVERED, "test_cluster_list_jobs"),
    "Cluster.list_running_jobs": (COVERED, "test_cluster_list_jobs"),
    "Cluster.list_etls": (COVERED, "test_cluster_list_etls"),
    "Cluster.get_performance": (COVERED, "test_cluster_get_performance"),
    "Cluster.get_node_log": (COVERED, "test_cluster_logs"),
    "Cluster.get_node_log_archive": (COVERED, "test_cluster_logs"),
    "Cluster.get_cluster_logs": (COVERED, "test_cluster_logs"),
    # Bucket
    "Bucket.create": (COVERED, "test_bucket_create_head_delete"),
    "Bucket.head": (COVERED, "test_bucket_create_head_delete"),
    "Bucket.delete": (COVERED, "test_bucket_create_head_delete"),
    "Bucket.rename": (COVERED, "test_bucket_rename"),
    "Bucket.evict": (COVERED, "test_remote_bucket_evict"),
    "Bucket.summary": (COVERED, "test_bucket_summary"),
    "Bucket.info": (COVERED, "test_bucket_info"),
    "Bucket.copy": (COVERED, "test_bucket_copy"),
    "Bucket.list_objects": (COVERED, "test_bucket_listing"),
    "Bucket.list_objects_iter": (COVERED, "test_bucket_listing"),
    "Bucket.list_all_objects": (COVERED, "test_bucket_listing"),
    "Bucket.list_all_objects_iter": (COVERED, "test_bucket_listing"),
    "Bucket.list_urls": (COVERED, "test_bucket_listing"),
    "Bucket.create_inventory": (COVERED, "test_remote_bucket_inventory"),
    "Bucket.show_inventory": (COVERED, "test_remote_bucket_inventory"),
    "Bucket.destroy_inventory": (COVERED, "test_remote_bucket_inventory"),
    "Bucket.list_archive": (COVERED, "test_bucket_list_archive"),
    "Bucket.transform": (COVERED, "test_bucket_transform"),
    "Bucket.inspect": (COVERED, "test_bucket_inspect"),
    "Bucket.put_files": (COVERED, "test_bucket_put_files"),
    "Bucket.object": (COVERED, "test_bucket_object_and_objects"),
    "Bucket.objects": (COVERED, "test_bucket_object_and_objects"),
    "Bucket.make_request": (COVERED, "test_bucket_make_request"),
    "Bucket.verify_cloud_bucket": (COVERED, "test_bucket_verify_cloud_bucket"),
    "Bucket.get_path": (COVERED, "test_bucket_path_and_model"),
    "Bucket.as_model": (COVERED, "test_bucket_path_and_model"),
    "Bucket.write_dataset": (COVERED, "test_bucket_write_dataset"),
    # Object
    "Object.head": (COVERED, "test_object_head_and_props"),
    "Object.props": (COVERED, "test_object_head_and_props"),
    "Object.get_reader": (COVERED, "test_object_get_reader"),
    "Object.get_semantic_url": (COVERED, "test_object_urls"),
    "Object.get_url": (COVERED, "test_object_urls"),
    "Object.get_writer": (COVERED, "test_writer_put_content"),
    "Object.multipart_upload": (COVERED, "test_multipart_upload_complete"),
    "Object.promote": (COVERED, "test_object_promote"),
    "Object.delete": (COVERED, "test_object_delete"),
    "Object.copy": (COVERED, "test_object_copy"),
    "Object.blob_download": (COVERED, "test_remote_object_blob_download"),
    # ObjectReader / ObjectFileReader
    "ObjectReader.read_all": (COVERED, "test_reader_read_all"),
    "ObjectReader.raw": (COVERED, "test_reader_raw"),
    "ObjectReader.head": (COVERED, "test_reader_head_and_attributes"),
    "ObjectReader.attributes": (COVERED, "test_reader_head_and_attributes"),
    "ObjectReader.as_file": (COVERED, "test_reader_as_file"),
    "ObjectFileReader.read": (COVERED, "test_reader_as_file"),
    "ObjectFileReader.readable": (COVERED, "test_reader_as_file"),
    "ObjectFileReader.close": (COVERED, "test_reader_as_file"),
    # ObjectWriter / ObjectFileWriter
    "ObjectWriter.put_content": (COVERED, "test_writer_put_content"),
    "ObjectWriter.put_file": (COVERED, "test_writer_put_file"),
    "ObjectWriter.append_content": (COVERED, "test_writer_append_content"),
    "ObjectWriter.set_custom_props": (COVERED, "test_writer_set_custom_props"),
    "ObjectWriter.as_file": (COVERED, "test_writer_as_file"),
    "ObjectFileWriter.write": (COVERED, "test_writer_as_file"),
    "ObjectFileWriter.flush": (COVERED, "test_writer_as_file"),
    "ObjectFileWriter.close": (COVERED, "test_writer_as_file"),
    # MultipartUpload
    "MultipartUpload.create": (COVERED, "test_multipart_upload_complete"),
    "MultipartUpload.add_part": (COVERED, "test_multipart_upload_complete"),
    "MultipartUpload.complete": (COVERED, "test_multipart_upload_complete"),
    "MultipartUpload.abort": (COVERED, "test_multipart_upload_abort"),
    # ObjectGroup
    "ObjectGroup.list_names": (COVERED, "test_object_group_listing"),
    "ObjectGroup.list_urls": (COVERED, "test_object_group_listing"),
    "ObjectGroup.list_all_objects_iter": (COVERED, "test_object_group_listing"),
    "ObjectGroup.delete": (COVERED, "test_object_group_delete"),
    "ObjectGroup.evict": (COVERED, "test_remote_object_group_evict"),
    "ObjectGroup.prefetch": (COVERED, "test_remote_object_group_prefetch"),
    "ObjectGroup.copy": (COVERED, "test_object_group_copy"),
    "ObjectGroup.transform": (COVERED, "test_object_group_transform"),
    "ObjectGroup.inspect": (COVERED, "test_object_group_inspect"),
    "ObjectGroup.archive": (COVERED, "test_object_group_archive"),
    # Job
    "Job.status": (COVERED, "test_job_wait_and_status"),
    "Job.wait": (COVERED, "test_job_wait_and_status"),
    "Job.wait_for_idle": (COVERED, "test_job_wait_for_idle"),
    "Job.wait_single_node": (COVERED, "test_job_wait_single_node"),
    "Job.start": (COVERED, "test_job_start"),
    "Job.abort": (COVERED, "test_job_abort"),
    "Job.get_details": (COVERED, "test_job_details"),
    "Job.get_within_timeframe": (COVERED, "test_job_details"),
    "Job.get_total_time": (COVERED, "test_job_details"),
    # Etl
    "Etl.init": (COVERED, "test_etl_init_stop_start_delete"),
    "Etl.stop": (COVERED, "test_etl_init_stop_start_delete"),
    "Etl.start": (COVERED, "test_etl_init_stop_start_delete"),
    "Etl.delete": (COVERED, "test_etl_init_stop_start_delete"),
    "Etl.init_class": (COVERED, "test_etl_init_class"),
    "Etl.view": (COVERED, "test_etl_view_and_logs"),
    "Etl.logs": (COVERED, "test_etl_view_and_logs"),
    "Etl.validate_etl_name": (COVERED, "test_etl_validate_etl_name"),
    # Dsort
    "Dsort.start": (COVERED, "test_dsort_run"),
    "Dsort.get_job_info": (COVERED, "test_dsort_run"),
    "Dsort.wait": (COVERED, "test_dsort_run"),
    "Dsort.abort": (COVERED, "test_dsort_abort"),
    # Batch (Get-Batch)
    "Batch.add": (COVERED, "test_batch_add_clear_get"),
    "Batch.clear": (COVERED, "test_batch_add_clear_get"),
    "Batch.get": (COVERED, "test_batch_add_clear_get"),
    # AuthN
    "AuthNClient.login": (COVERED, "test_authn_login_logout"),
    "AuthNClient.logout": (COVERED, "test_authn_login_logout"),
    "AuthNClient.cluster_manager": (COVERED, "test_authn_cluster_list"),
    "AuthNClient.role_manager": (COVERED, "test_authn_roles"),
    "AuthNClient.user_manager": (COVERED, "test_authn_users"),
    "AuthNClient.token_manager": (COVERED, "test_authn_token_revoke"),
    "ClusterManager.list": (COVERED, "test_authn_cluster_list"),
    "ClusterManager.get": (COVERED, "test_authn_cluster_get"),
    "ClusterManager.register": (COVERED, "test_authn_cluster_register_update_delete"),
    "ClusterManager.update": (COVERED, "test_authn_cluster_register_update_delete"),
    "ClusterManager.delete": (COVERED, "test_authn_cluster_register_update_delete"),
    "RoleManager.list": (COVERED, "test_authn_roles"),
    "RoleManager.get": (COVERED, "test_authn_roles"),
    "RoleManager.create": (COVERED, "test_authn_roles"),
    "RoleManager.update": (COVERED, "test_authn_roles"),
    "RoleManager.delete": (COVERED, "test_authn_roles"),
    "UserManager.list": (COVERED, "test_authn_users"),
    "UserManager.get": (COVERED, "test_authn_users"),
    "UserManager.create": (COVERED, "test_authn_users"),
    "UserManager.update": (COVERED, "test_authn_users"),
    "UserManager.delete": (COVERED, "test_authn_users"),
    "TokenManager.revoke": (COVERED, "test_authn_token_revoke"),
}


def xfail(reason: str):
    """Fails against the current server (`reason`: what it answered)."""
    return pytest.mark.xfail(strict=True, reason=reason)


def public_methods() -> Dict[str, str]:
    """`Class.name` -> "method" | "property" for the installed SDK, by the
    rule in the module docstring (properties: all public ones)."""
    found = {}
    for cls in CLASSES:
        for name in dir(cls):
            if name.startswith("_"):
                continue
            owner = next(k for k in cls.__mro__ if name in k.__dict__)
            if not owner.__module__.startswith("aistore."):
                continue  # inherited from the standard library
            attr = inspect.getattr_static(cls, name)
            if isinstance(attr, property):
                found[f"{cls.__name__}.{name}"] = "property"
            elif callable(getattr(cls, name)):
                found[f"{cls.__name__}.{name}"] = "method"
    return found


def test_coverage_table_is_complete() -> None:
    """Every public SDK method is in COVERAGE (and nothing else is); every
    public property is classified; every exported class is either covered or
    excluded with a reason; every test named in the table exists."""
    import aistore.sdk as sdk

    names = {c.__name__ for c in CLASSES}
    exported = {
        n
        for n, v in vars(sdk).items()
        if inspect.isclass(v) and v.__module__.startswith("aistore.")
    }
    unknown = exported - names - set(EXCLUDED_CLASSES)
    assert not unknown, f"exported by aistore.sdk, not in CLASSES/EXCLUDED_CLASSES: {unknown}"

    found = public_methods()
    props = {k for k, v in found.items() if v == "property"}
    unclassified = props - REQUEST_PROPERTIES - LOCAL_PROPERTIES
    assert not unclassified, f"add to REQUEST_/LOCAL_PROPERTIES: {sorted(unclassified)}"
    public = {k for k, v in found.items() if v == "method"} | (props & REQUEST_PROPERTIES)
    missing = public - set(COVERAGE)
    assert not missing, f"public SDK methods missing from COVERAGE: {sorted(missing)}"
    stale = set(COVERAGE) - public
    assert not stale, f"COVERAGE names methods the SDK does not have: {sorted(stale)}"

    module = sys.modules[__name__]
    for method, entry in COVERAGE.items():
        assert entry[0] in (COVERED, NA), (method, entry)
        assert callable(getattr(module, entry[1], None)), f"{method}: no test {entry[1]}"
        if entry[0] == NA:
            assert len(entry) == 3 and entry[2], f"{method}: n/a needs a reason"


# ------------------------------------------------------------------- helpers


def make_tar(members: Dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def put(bck: Bucket, name: str, data: bytes) -> None:
    resp = bck.object(name).get_writer().put_content(data)
    assert resp.status_code == 200, resp.text


def get(bck: Bucket, name: str) -> bytes:
    return bck.object(name).get_reader().read_all()


def fill(bck: Bucket, n: int = 5, prefix: str = "o") -> Dict[str, bytes]:
    objs = {f"{prefix}{i}.txt": f"data {prefix}{i}".encode() for i in range(n)}
    for name, data in objs.items():
        put(bck, name, data)
    return objs


def names(bck: Bucket, **kw) -> list:
    return [e.name for e in bck.list_all_objects(**kw)]


def wait_job(client: Client, job_id: str, timeout: float = JOB_TIMEOUT) -> None:
    """Polls the job's status (quicker than Job.wait) until it ends; a job
    that fails or is aborted fails the test."""
    assert job_id, "no job id"
    deadline = time.monotonic() + timeout
    while True:
        st = client.job(job_id).status()
        if st.end_time:
            assert not st.err and not st.aborted, st
            return
        assert time.monotonic() < deadline, f"job {job_id} did not finish in {timeout} s"
        time.sleep(0.05)


def status_of(fn) -> Tuple[int, str]:
    with pytest.raises((AISError, AuthNError)) as ei:
        fn()
    return ei.value.status_code, str(ei.value)


def unique_etl(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def other(client: Client) -> Iterator[Bucket]:
    """A second bucket name (not created); destroyed after the test."""
    bck = client.bucket(unique_bucket_name("cov-dst"))
    try:
        yield bck
    finally:
        bck.delete(missing_ok=True)


@pytest.fixture(scope="module")
def upper_etl(cluster: Cluster, client: Client) -> Iterator[str]:
    """An ETL initialized with Etl.init_class: upper-cases the object."""
    name = unique_etl("cov-upper")
    etl = client.etl(name)

    @etl.init_class()
    class Upper(HTTPMultiThreadedServer):
        def transform(self, data, path, etl_args):
            return data.upper()

    try:
        yield name
    finally:
        requests.post(f"{cluster.url}/v1/etl/{name}/stop", timeout=HTTP_TIMEOUT)
        requests.delete(f"{cluster.url}/v1/etl/{name}", timeout=HTTP_TIMEOUT)


@pytest.fixture
def server_script() -> Iterator[Path]:
    """test_etl's transformer server, in a directory any uid can read."""
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="ais-cov-srv-", dir="/tmp"))
    d.chmod(0o755)
    script = d / "server.py"
    script.write_text(TRANSFORMER_SERVER)
    script.chmod(0o644)
    yield script
    shutil.rmtree(d, ignore_errors=True)


# -------------------------------------------------------------------- Client


def test_client_factories(client: Client, bucket: Bucket, upper_etl: str) -> None:
    assert client.bucket(bucket.name).head()["Ais-Bucket-Props"]
    assert client.cluster().get_uuid()
    job_id = bucket.copy(client.bucket(bucket.name + "-cp"))
    try:
        assert client.job(job_id).wait(timeout=JOB_TIMEOUT, verbose=False).success
    finally:
        client.bucket(bucket.name + "-cp").delete(missing_ok=True)
    assert client.etl(upper_etl).view().init_msg.name == upper_etl
    assert client.dsort("some-id").dsort_id == "some-id"


def test_client_get_object_from_url(client: Client, bucket: Bucket) -> None:
    put(bucket, "dir/from-url", b"via url")
    obj = client.get_object_from_url(f"ais://{bucket.name}/dir/from-url")
    assert obj.get_reader().read_all() == b"via url"


def test_client_batch(client: Client, bucket: Bucket) -> None:
    objs = fill(bucket, 3)
    got = [(out.obj_name, data) for out, data in client.batch(list(objs), bucket=bucket).get()]
    assert got == list(objs.items())


# ------------------------------------------------------------------- Cluster


def test_cluster_map(cluster: Cluster, client: Client) -> None:
    c = client.cluster()
    smap = c.get_info()
    assert set(smap.tmap) == {t.node_id for t in cluster.targets}
    assert c.get_primary_url() == cluster.url
    assert c.get_uuid() == smap.uuid and smap.uuid
    assert c.is_ready() is True


def test_cluster_list_buckets(client: Client, bucket: Bucket) -> None:
    assert bucket.name in {b.name for b in client.cluster().list_buckets()}
    assert bucket.name in {b.name for b in client.cluster().list_buckets(provider="")}


def test_cluster_list_jobs(client: Client, bucket: Bucket, other: Bucket) -> None:
    fill(bucket, 3)
    job_id = bucket.copy(other)
    wait_job(client, job_id)
    statuses = client.cluster().list_jobs_status(job_kind="copy-bck")
    assert job_id in {s.uuid for s in statuses}
    running = client.cluster().list_running_jobs()
    assert isinstance(running, list) and not any(job_id in r for r in running), running


def test_cluster_list_etls(client: Client, upper_etl: str) -> None:
    infos = {i.id: i for i in client.cluster().list_etls()}
    assert infos[upper_etl].stage == "Running"


def test_cluster_get_performance(cluster: Cluster, client: Client) -> None:
    perf = client.cluster().get_performance()
    assert set(perf) == {t.node_id for t in cluster.targets}


def test_cluster_logs(cluster: Cluster, client: Client) -> None:
    c = client.cluster()
    tid = cluster.targets[0].node_id
    assert "listening" in c.get_node_log(tid)
    with tarfile.open(fileobj=io.BytesIO(c.get_node_log_archive(tid)), mode="r:gz") as tar:
        assert tar.getnames()
    logs = c.get_cluster_logs(severity=LogSeverity.INFO, role=NodeFilter.TARGET)
    assert set(logs) == {t.node_id for t in cluster.targets}


# -------------------------------------------------------------------- Bucket


def test_bucket_create_head_delete(client: Client) -> None:
    bck = client.bucket(unique_bucket_name("cov-life"))
    assert bck.create() is bck
    try:
        assert bck.head()["Ais-Bucket-Props"]
    finally:
        bck.delete()
    with pytest.raises(ErrBckNotFound):
        bck.delete()


def test_bucket_rename(client: Client, bucket: Bucket, other: Bucket) -> None:
    objs = fill(bucket, 3)
    old = bucket.name
    job_id = bucket.rename(other.name)
    assert bucket.name == other.name  # the handle follows the rename
    assert client.job(job_id).wait(timeout=JOB_TIMEOUT, verbose=False).success
    assert names(other) == sorted(objs)
    deadline = time.monotonic() + 30
    while old in {b.name for b in client.cluster().list_buckets()}:
        assert time.monotonic() < deadline, "the old bucket is still listed"
        time.sleep(0.05)


def test_bucket_summary(bucket: Bucket) -> None:
    objs = fill(bucket, 4)
    summ = bucket.summary()
    assert int(summ["ObjCount"]["obj_count_present"]) == len(objs)


def test_bucket_info(bucket: Bucket) -> None:
    objs = fill(bucket, 2)
    props, summ = bucket.info()
    assert '"provider":"ais"' in props.replace(" ", "")
    assert int(summ["ObjCount"]["obj_count_present"]) == len(objs)


def test_bucket_copy(client: Client, bucket: Bucket, other: Bucket) -> None:
    objs = fill(bucket, 4)
    job_id = bucket.copy(other, prefix_filter="o1", prepend="c/")
    wait_job(client, job_id)
    assert names(other) == ["c/o1.txt"]
    assert get(other, "c/o1.txt") == objs["o1.txt"]


def test_bucket_listing(bucket: Bucket) -> None:
    objs = fill(bucket, 7)
    want = sorted(objs)
    page = bucket.list_objects(page_size=3)
    assert [e.name for e in page.entries] == want[:3] and page.continuation_token
    assert [e.name for e in bucket.list_objects_iter(page_size=3)] == want
    assert [e.name for e in bucket.list_all_objects(page_size=3)] == want
    got = {o.name: o.props_cached.size for o in bucket.list_all_objects_iter()}
    assert got == {k: len(v) for k, v in objs.items()}
    urls = list(bucket.list_urls(prefix="o2"))
    assert len(urls) == 1 and requests.get(urls[0], timeout=HTTP_TIMEOUT).content == objs["o2.txt"]


def test_bucket_list_archive(bucket: Bucket) -> None:
    put(bucket, "shard.tar", make_tar({"a.txt": b"a", "d/b.txt": b"bb"}))
    got = [e.name for e in bucket.list_archive("shard.tar")]
    assert got == ["shard.tar/a.txt", "shard.tar/d/b.txt"]
    with_shard = bucket.list_archive("shard.tar", include_archive_obj=True)
    assert "shard.tar" in [e.name for e in with_shard]


def test_bucket_transform(client: Client, bucket: Bucket, other: Bucket, upper_etl: str) -> None:
    objs = fill(bucket, 3)
    job_id = bucket.transform(upper_etl, other, ext={"txt": "up"})
    wait_job(client, job_id)
    assert {n: get(other, n) for n in names(other)} == {
        k[:-3] + "up": v.upper() for k, v in objs.items()
    }


def test_bucket_inspect(client: Client, bucket: Bucket, upper_etl: str) -> None:
    objs = fill(bucket, 3)
    job_id = bucket.inspect(upper_etl)
    assert client.job(job_id).wait(timeout=JOB_TIMEOUT, verbose=False).success
    assert names(bucket) == sorted(objs)  # dry run: nothing written
    assert get(bucket, "o0.txt") == objs["o0.txt"]


def test_bucket_put_files(bucket: Bucket, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_bytes(b"file a")
    (tmp_path / "sub" / "b.txt").write_bytes(b"file b")
    put_names = bucket.put_files(tmp_path, recursive=True, prepend="pf/", verbose=False)
    assert sorted(put_names) == ["pf/a.txt", "pf/sub/b.txt"]
    assert names(bucket) == ["pf/a.txt", "pf/sub/b.txt"]
    assert get(bucket, "pf/sub/b.txt") == b"file b"


def test_bucket_object_and_objects(bucket: Bucket) -> None:
    fill(bucket, 3)
    assert bucket.object("o1.txt").get_reader().read_all() == b"data o1"
    assert bucket.objects(obj_names=["o0.txt", "o2.txt"]).list_names() == ["o0.txt", "o2.txt"]


def test_bucket_make_request(bucket: Bucket) -> None:
    fill(bucket, 2)
    resp = bucket.make_request("GET", "list", value={"props": "name"})
    assert resp.status_code == 200
    assert [e["name"] for e in resp.json()["entries"]] == ["o0.txt", "o1.txt"]


def test_bucket_verify_cloud_bucket(client: Client, bucket: Bucket) -> None:
    with pytest.raises(InvalidBckProvider):
        bucket.verify_cloud_bucket()
    assert client.bucket("remote-one", provider="aws").verify_cloud_bucket() is None


def test_bucket_path_and_model(client: Client) -> None:
    bck = client.bucket("some-bucket")
    assert bck.get_path() == "ais/@#/some-bucket/"
    assert bck.as_model() == BucketModel(name="some-bucket", provider="ais")


def test_bucket_write_dataset(bucket: Bucket, tmp_path: Path, monkeypatch) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        (images / f"img{i}.jpg").write_bytes(b"jpeg-%d" % i)
    config = DatasetConfig(
        primary_attribute=DataAttribute(path=images, name="image", file_type="jpg"),
        secondary_attributes=[LabelAttribute(name="cls", label_identifier=lambda f: f"label-{f}")],
    )
    monkeypatch.chdir(tmp_path)
    bucket.write_dataset(config, pattern="ds", maxcount=10)
    shards = names(bucket)
    assert shards == ["ds-00.tar"], shards
    members = [e.name for e in bucket.list_archive("ds-00.tar")]
    assert len([m for m in members if m.endswith(".image.jpg")]) == 3, members


# -------------------------------------------------------------------- Object


def test_object_head_and_props(bucket: Bucket) -> None:
    put(bucket, "h", b"12345")
    obj = bucket.object("h")
    attrs = obj.head("size,checksum")
    assert attrs.size == 5 and attrs.checksum_type == "xxhash"
    props = obj.props
    assert props.size == 5 and props.name == "h" and props.obj_version


def test_object_get_reader(bucket: Bucket) -> None:
    put(bucket, "r", b"0123456789")
    assert bucket.object("r").get_reader(byte_range="bytes=2-4").read_all() == b"234"
    assert bucket.object("r").get_reader(direct=True).read_all() == b"0123456789"


def test_object_urls(bucket: Bucket, endpoint: str) -> None:
    put(bucket, "u/shard.tar", make_tar({"x/member.txt": b"member"}))
    obj = bucket.object("u/shard.tar")
    assert obj.get_semantic_url() == f"ais://{bucket.name}/u/shard.tar"
    url = obj.get_url(archpath="x/member.txt")
    assert url.startswith(f"{endpoint}/v1/objects/{bucket.name}/u/shard.tar?")
    assert requests.get(url, timeout=HTTP_TIMEOUT).content == b"member"


def test_object_delete(bucket: Bucket) -> None:
    put(bucket, "d", b"x")
    assert bucket.object("d").delete().status_code == 200
    with pytest.raises(ErrObjNotFound):
        get(bucket, "d")


def test_object_copy(bucket: Bucket, other: Bucket) -> None:
    other.create()
    put(bucket, "src", b"copy me")
    resp = bucket.object("src").copy(other.object("dst"))
    assert resp.status_code == 200
    assert get(other, "dst") == b"copy me"


def test_object_promote(client: Client, bucket: Bucket, promote_root: str, tmp_path: Path) -> None:
    src = Path(promote_root) / f"cov-{bucket.name}.txt"
    src.write_bytes(b"host file")
    job = bucket.object("promoted").promote(str(src))
    assert job
    wait_job(client, job)
    assert get(bucket, "promoted") == b"host file"
    # Outside the operator's roots: refused.
    (tmp_path / "f.txt").write_bytes(b"x")
    st, msg = status_of(lambda: bucket.object("no").promote(str(tmp_path / "f.txt")))
    assert st == 403 and "AIS_PROMOTE_ROOTS" in msg, (st, msg)


# --------------------------------------------- ObjectReader / ObjectFileReader


def test_reader_read_all(bucket: Bucket) -> None:
    data = bytes(range(256)) * 1000
    put(bucket, "big", data)
    assert bucket.object("big").get_reader().read_all() == data
    buf = bucket.object("big").get_reader(num_workers=2, chunk_size=64 * 1024).read_all()
    try:
        assert buf.tobytes() == data
    finally:
        buf.close()


def test_reader_raw(bucket: Bucket) -> None:
    put(bucket, "raw", b"raw bytes")
    assert bucket.object("raw").get_reader().raw().read() == b"raw bytes"


def test_reader_head_and_attributes(bucket: Bucket) -> None:
    put(bucket, "attrs", b"abc")
    reader = bucket.object("attrs").get_reader()
    assert reader.attributes.size == 3  # no GET yet: a HEAD
    assert reader.head().checksum_type == "xxhash"


def test_reader_as_file(bucket: Bucket) -> None:
    put(bucket, "file", b"line one\nline two\n")
    f = bucket.object("file").get_reader().as_file()
    assert f.readable()
    assert f.read(5) == b"line " and f.read() == b"one\nline two\n"
    f.close()
    assert not f.readable()  # (the SDK's reader keeps its own closed flag)
    with pytest.raises(ValueError):
        f.read()


# --------------------------------------------- ObjectWriter / ObjectFileWriter


def test_writer_put_content(bucket: Bucket) -> None:
    writer = bucket.object("pc").get_writer()
    assert writer.put_content(b"content").status_code == 200
    assert get(bucket, "pc") == b"content"


def test_writer_put_file(bucket: Bucket, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"from a file")
    assert bucket.object("pf").get_writer().put_file(tmp_path / "f").status_code == 200
    assert get(bucket, "pf") == b"from a file"


def test_writer_append_content(bucket: Bucket) -> None:
    writer = bucket.object("app").get_writer()
    handle = writer.append_content(b"one,")
    handle = writer.append_content(b"two", handle=handle)
    writer.append_content(b"", handle=handle, flush=True)
    assert get(bucket, "app") == b"one,two"


def test_writer_set_custom_props(bucket: Bucket) -> None:
    put(bucket, "cp", b"x")
    bucket.object("cp").get_writer().set_custom_props({"k": "v"})
    assert bucket.object("cp").head("custom").custom_metadata == {"k": "v"}


def test_writer_as_file(bucket: Bucket) -> None:
    with bucket.object("fw").get_writer().as_file(mode="w") as f:
        assert f.write(b"hello ") == 6
        f.flush()
        f.write(b"world")
    assert get(bucket, "fw") == b"hello world"
    f = bucket.object("fw").get_writer().as_file(mode="a")
    f.write(b"!")
    f.close()
    assert get(bucket, "fw") == b"hello world!"


# ------------------------------------------------------------ MultipartUpload

def test_multipart_upload_complete(bucket: Bucket) -> None:
    mpu = bucket.object("mpu").multipart_upload().create()
    assert mpu.upload_id
    # Parts of any size, added in any order, assembled by number.
    part1, part2, part3 = b"a" * 1000, b"b" * (1 << 20), b"c" * 10
    assert mpu.add_part(2).put_content(part2).status_code == 200
    assert mpu.add_part(1).put_content(part1).status_code == 200
    assert mpu.add_part(3).put_content(part3).status_code == 200
    # Not visible before it is complete.
    assert names(bucket) == []
    assert mpu.complete().status_code == 200
    assert get(bucket, "mpu") == part1 + part2 + part3
    # The upload is gone: completing it again is an error.
    st, _ = status_of(mpu.complete)
    assert st in (400, 404), st


def test_multipart_upload_abort(bucket: Bucket) -> None:
    mpu = bucket.object("mpu-abort").multipart_upload().create()
    mpu.add_part(1).put_content(b"part")
    assert mpu.abort().status_code == 200
    assert names(bucket) == []
    # A part for an aborted upload is refused.
    st, _ = status_of(lambda: mpu.add_part(2).put_content(b"late"))
    assert st == 404, st


# --------------------------------------------------------------- ObjectGroup


def test_object_group_listing(bucket: Bucket) -> None:
    objs = fill(bucket, 4)
    group = bucket.objects(
        obj_range=ObjectRange(prefix="o", min_index=1, max_index=2, suffix=".txt")
    )
    assert group.list_names() == ["o1.txt", "o2.txt"]
    urls = list(group.list_urls())
    got = [requests.get(u, timeout=HTTP_TIMEOUT).content for u in urls]
    assert got == [objs["o1.txt"], objs["o2.txt"]]
    sizes = [o.props_cached.size for o in group.list_all_objects_iter()]
    assert sizes == [len(objs["o1.txt"]), len(objs["o2.txt"])]


def test_object_group_delete(client: Client, bucket: Bucket) -> None:
    fill(bucket, 4)
    wait_job(client, bucket.objects(obj_template="o{0..2}.txt").delete())
    assert names(bucket) == ["o3.txt"]


def test_object_group_copy(client: Client, bucket: Bucket, other: Bucket) -> None:
    objs = fill(bucket, 3)
    job_ids = bucket.objects(obj_names=["o0.txt", "o2.txt"]).copy(other, prepend="g/")
    assert job_ids
    for job_id in job_ids:
        wait_job(client, job_id)
    assert names(other) == ["g/o0.txt", "g/o2.txt"]
    assert get(other, "g/o2.txt") == objs["o2.txt"]


def test_object_group_transform(
    client: Client, bucket: Bucket, other: Bucket, upper_etl: str
) -> None:
    objs = fill(bucket, 3)
    wait_job(client, bucket.objects(obj_names=["o1.txt"]).transform(other, upper_etl))
    assert names(other) == ["o1.txt"]
    assert get(other, "o1.txt") == objs["o1.txt"].upper()


def test_object_group_inspect(client: Client, bucket: Bucket, upper_etl: str) -> None:
    objs = fill(bucket, 2)
    wait_job(client, bucket.objects(obj_names=["o0.txt", "o1.txt"]).inspect(upper_etl))
    assert {n: get(bucket, n) for n in names(bucket)} == objs  # dry run: unchanged


def test_object_group_archive(client: Client, bucket: Bucket) -> None:
    objs = fill(bucket, 3)
    job_ids = bucket.objects(obj_template="o{0..1}.txt").archive("arch.tar")
    assert job_ids
    for job_id in job_ids:
        wait_job(client, job_id)
    with tarfile.open(fileobj=io.BytesIO(get(bucket, "arch.tar"))) as tar:
        assert {m.name: tar.extractfile(m).read() for m in tar.getmembers()} == {
            "o0.txt": objs["o0.txt"],
            "o1.txt": objs["o1.txt"],
        }


# ----------------------------------------------------------------------- Job


@pytest.fixture
def copy_job(client: Client, bucket: Bucket, other: Bucket) -> str:
    """A bucket copy job (its id)."""
    fill(bucket, 3)
    return bucket.copy(other)


def test_job_wait_and_status(client: Client, copy_job: str) -> None:
    res = client.job(copy_job).wait(timeout=JOB_TIMEOUT, verbose=False)
    assert res.success and res.job_id == copy_job
    st = client.job(copy_job).status()
    assert st.uuid == copy_job and st.end_time > 0 and not st.aborted


def test_job_wait_for_idle(client: Client, copy_job: str) -> None:
    assert client.job(copy_job).wait_for_idle(timeout=JOB_TIMEOUT, verbose=False).success


def test_job_wait_single_node(client: Client, copy_job: str) -> None:
    assert client.job(copy_job).wait_single_node(timeout=JOB_TIMEOUT, verbose=False).success


def test_job_details(client: Client, copy_job: str) -> None:
    start = datetime.now(timezone.utc) - timedelta(minutes=5)
    wait_job(client, copy_job)
    job = client.job(copy_job)
    snaps = job.get_details().list_snapshots()
    assert snaps and {s.id for s in snaps} == {copy_job} and {s.kind for s in snaps} == {"copy-bck"}
    assert sum(s.stats.objects for s in snaps) == 3
    assert [s.id for s in job.get_within_timeframe(start)] == [s.id for s in snaps]
    total = job.get_total_time()
    assert total is not None and timedelta(0) <= total < timedelta(minutes=1)


def test_job_start(client: Client) -> None:
    job_id = client.job(job_kind="rebalance").start()
    assert job_id.startswith("rebalance-"), job_id
    assert client.job(job_id, job_kind="rebalance").wait(timeout=JOB_TIMEOUT, verbose=False).success
    # Jobs a target runs: on every target, or on the one named.
    tid = client.cluster().get_info().tmap
    one = sorted(tid)[0]
    for kind, node in (("resilver", ""), ("lru", ""), ("resilver", one)):
        job_id = client.job(job_kind=kind).start(daemon_id=node)
        assert job_id.startswith(f"{kind}-"), job_id
        deadline = time.monotonic() + 60
        while not (st := client.job(job_id).status()).end_time:
            assert time.monotonic() < deadline, f"{kind} job {job_id} still running"
            time.sleep(0.1)
        assert not st.aborted, st
        # LRU has nothing to do below the high watermark; on a host whose
        # disk is fuller than that it says why it could not get lower.
        assert not st.err or (kind == "lru" and "space.lowwm" in st.err), st
    # A kind that does not start this way says which do.
    st, msg = status_of(lambda: client.job(job_kind="copy-bck").start())
    assert st == 400 and "rebalance, resilver" in msg, (st, msg)


def test_job_abort(client: Client, bucket: Bucket, other: Bucket) -> None:
    fill(bucket, 60)
    job_id = bucket.copy(other, num_workers=-1)
    client.job(job_id).abort()
    deadline = time.monotonic() + 30
    while not (st := client.job(job_id).status()).end_time:
        assert time.monotonic() < deadline, "the aborted job is still running"
        time.sleep(0.05)
    # Aborted, unless it had already finished when the abort came.
    assert st.aborted or (st.err == "" and len(names(other)) == 60), st


# ----------------------------------------------------------------------- Etl


def test_etl_init_class(client: Client, bucket: Bucket, upper_etl: str) -> None:
    put(bucket, "e", b"abc")
    assert bucket.object("e").get_reader(etl=ETLConfig(upper_etl)).read_all() == b"ABC"


def test_etl_view_and_logs(cluster: Cluster, client: Client, upper_etl: str) -> None:
    etl = client.etl(upper_etl)
    view = etl.view()
    assert view.init_msg.name == upper_etl and view.init_msg.communication == "hpush://"
    tid = cluster.targets[0].node_id
    logs = etl.logs(target_id=tid)
    assert [l.target_id for l in logs] == [tid] and logs[0].logs
    assert {l.target_id for l in etl.logs()} == {t.node_id for t in cluster.targets}


def test_etl_init_stop_start_delete(client: Client, bucket: Bucket, server_script: Path) -> None:
    """Etl.init with a runtime.command (a local transformer server; images
    without a command are refused: there are no containers)."""
    put(bucket, "e", b"abc")
    etl = client.etl(unique_etl("cov-cmd"))
    obj = bucket.object("e")
    try:
        job_id = etl.init(
            image="example/transformer:latest", command=[sys.executable, str(server_script)]
        )
        assert job_id.startswith("etl-"), job_id
        assert obj.get_reader(etl=ETLConfig(etl.name)).read_all() == b"PUSH:ABC"
        etl.stop()
        st, msg = status_of(lambda: obj.get_reader(etl=ETLConfig(etl.name)).read_all())
        assert st == 400 and "stopped" in msg
        etl.start()
        assert obj.get_reader(etl=ETLConfig(etl.name)).read_all() == b"PUSH:ABC"
        etl.stop()
        etl.delete()
        with pytest.raises(ErrETLNotFound):
            etl.view()
    finally:
        url = client.cluster().get_primary_url()
        requests.delete(f"{url}/v1/etl/{etl.name}", timeout=HTTP_TIMEOUT)


def test_etl_validate_etl_name() -> None:
    Etl.validate_etl_name("good-name-1")
    for bad in ("abc", "Upper-Case", "x" * 40, "-leading"):
        with pytest.raises(ValueError):
            Etl.validate_etl_name(bad)


def test_etl_pipeline(
    cluster: Cluster, client: Client, bucket: Bucket, other: Bucket, upper_etl: str
) -> None:
    """Not a method of its own (Etl.__rshift__ / etl_pipeline=): both stages apply."""
    name = unique_etl("cov-rev")
    rev = client.etl(name)

    @rev.init_class()
    class Reverse(HTTPMultiThreadedServer):
        def transform(self, data, path, etl_args):
            return data[::-1]

    try:
        put(bucket, "p", b"abc")
        wait_job(client, bucket.transform(upper_etl, other, etl_pipeline=[name]))
        assert get(other, "p") == b"CBA"
        pipeline = client.etl(upper_etl) >> rev
        assert bucket.object("p").get_reader(etl=ETLConfig(pipeline)).read_all() == b"CBA"
    finally:
        requests.post(f"{cluster.url}/v1/etl/{name}/stop", timeout=HTTP_TIMEOUT)
        requests.delete(f"{cluster.url}/v1/etl/{name}", timeout=HTTP_TIMEOUT)


# --------------------------------------------------------------------- Dsort

def dsort_spec(src: Bucket, dst: Bucket, shards: int) -> DsortFramework:
    return DsortFramework(
        input_shards=DsortShardsGroup(
            bck=src.as_model(),
            role="input",
            format=ObjectRange(prefix="in-", min_index=0, max_index=shards - 1),
            extension=".tar",
        ),
        output_shards=DsortShardsGroup(
            bck=dst.as_model(),
            role="output",
            format=ObjectRange(prefix="out-", min_index=0, max_index=99),
            extension=".tar",
        ),
        output_shard_size="10KiB",
    )


def dsort_input(bck: Bucket) -> Dict[str, bytes]:
    """Two input shards `in-0.tar`, `in-1.tar` with 20 records between them."""
    records = {}
    for s in range(2):
        members = {f"rec-{i:03d}.txt": b"r%d" % i for i in range(s, 20, 2)}
        records.update(members)
        put(bck, f"in-{s}.tar", make_tar(members))
    return records


def test_dsort_run(client: Client, bucket: Bucket, other: Bucket) -> None:
    records = dsort_input(bucket)
    other.create()
    dsort = client.dsort()
    job_id = dsort.start(dsort_spec(bucket, other, 2))
    assert job_id and dsort.dsort_id == job_id
    assert dsort.wait(timeout=JOB_TIMEOUT, verbose=False).success
    info = dsort.get_job_info()
    assert info and all(i.metrics.shard_creation.finished for i in info.values())
    out = {}
    for shard in names(other):
        with tarfile.open(fileobj=io.BytesIO(get(other, shard))) as tar:
            out.update({m.name: tar.extractfile(m).read() for m in tar.getmembers()})
    assert out == records


def test_dsort_abort(client: Client, bucket: Bucket, other: Bucket) -> None:
    dsort_input(bucket)
    other.create()
    dsort = client.dsort()
    dsort.start(dsort_spec(bucket, other, 2))
    dsort.abort()
    res = dsort.wait(timeout=JOB_TIMEOUT, verbose=False)
    infos = list(dsort.get_job_info().values())
    # Aborted, unless it had already finished when the abort came.
    assert infos and (res.success or all(i.metrics.aborted for i in infos)), (res, infos)


# --------------------------------------------------------------------- Batch


def test_batch_add_clear_get(client: Client, bucket: Bucket) -> None:
    objs = fill(bucket, 2)
    put(bucket, "shard.tar", make_tar({"in/x.txt": b"archived"}))
    batch = client.batch(bucket=bucket)
    batch.add("o0.txt").add("shard.tar", archpath="in/x.txt").add("o1.txt", start=1, length=3)
    got = [(out.obj_name, data) for out, data in batch.get()]
    assert got == [
        ("o0.txt", objs["o0.txt"]),
        ("shard.tar", b"archived"),
        ("o1.txt", objs["o1.txt"][1:4]),
    ]
    assert batch.clear().requests_list == []
    batch.add("o1.txt", opaque=b"id-7")
    (out, data), = list(batch.get())
    assert out.obj_name == "o1.txt" and data == objs["o1.txt"]


# -------------------------------------------------- remote buckets (s3 via moto)


@pytest.fixture
def rbucket(
    rcluster: Cluster, s3: S3Server, remote: str  # noqa: F811
) -> Tuple[Client, Bucket, Dict[str, bytes]]:
    """A remote s3:// bucket with 4 objects at the backend, none cached."""
    objs = {f"d/{i}": b"remote %d" % i for i in range(4)}
    for k, v in objs.items():
        s3.s3.put_object(Bucket=remote, Key=k, Body=v)
    rclient = Client(rcluster.url)
    return rclient, rclient.bucket(remote, provider="aws"), objs


def cached(bck: Bucket) -> Dict[str, bool]:
    return {e.name: e.is_cached() for e in bck.list_all_objects(props="name,cached")}


def test_remote_bucket_evict(rbucket) -> None:
    rclient, bck, objs = rbucket
    assert get(bck, "d/0") == objs["d/0"]
    assert cached(bck)["d/0"]
    bck.evict(keep_md=True)
    assert not any(cached(bck).values())
    assert bck.name in {b.name for b in rclient.cluster().list_buckets(provider="aws")}
    bck.evict()
    assert bck.name not in {b.name for b in rclient.cluster().list_buckets(provider="aws")}


def test_remote_object_group_prefetch(rbucket) -> None:
    rclient, bck, _ = rbucket
    wait_job(rclient, bck.objects(obj_names=["d/1", "d/2"]).prefetch())
    assert cached(bck) == {"d/0": False, "d/1": True, "d/2": True, "d/3": False}


def test_remote_object_group_evict(rbucket) -> None:
    rclient, bck, objs = rbucket
    for name in objs:
        get(bck, name)
    wait_job(rclient, bck.objects(obj_template="d/{1..2}").evict())
    assert cached(bck) == {"d/0": True, "d/1": False, "d/2": False, "d/3": True}


def test_remote_object_blob_download(rbucket, s3: S3Server, remote: str) -> None:  # noqa: F811
    rclient, bck, objs = rbucket
    big = bytes(range(256)) * 1200 + b"tail"  # 307,204 bytes: 5 ranges of 64 KiB
    s3.s3.put_object(Bucket=remote, Key="big", Body=big)
    job_id = bck.object("big").blob_download(chunk_size=64 << 10, num_workers=3)
    assert job_id.startswith("blob-download-"), job_id
    assert rclient.job(job_id).wait(timeout=JOB_TIMEOUT, verbose=False).success
    assert cached(bck)["big"] and get(bck, "big") == big
    # Defaults, on a small object.
    job_id = bck.object("d/3").blob_download()
    assert rclient.job(job_id).wait(timeout=JOB_TIMEOUT, verbose=False).success
    assert cached(bck)["d/3"] and get(bck, "d/3") == objs["d/3"]
    # What it refuses.
    st, msg = status_of(lambda: bck.object("d/2").blob_download(chunk_size=10))
    assert st == 400 and "chunk-size" in msg, (st, msg)
    st, msg = status_of(lambda: bck.object("d/2").blob_download(chunk_size=256 << 20, num_workers=2))
    assert st == 400 and "in flight" in msg, (st, msg)
    st, msg = status_of(lambda: rclient.bucket("no-such-bucket-here", provider="aws").object("x").blob_download())
    assert st in (400, 404), (st, msg)


def test_remote_bucket_inventory(rbucket) -> None:
    rclient, bck, objs = rbucket
    job_id = bck.create_inventory(name="inv1")
    assert rclient.job(job_id).wait(timeout=JOB_TIMEOUT, verbose=False).success
    shown = bck.show_inventory()
    assert [(i.name, i.ntotal) for i in shown.values()] == [("inv1", len(objs))]
    assert names(bck, inventory_name="inv1") == sorted(objs)
    bck.destroy_inventory("inv1")
    assert bck.show_inventory() == {}


# ------------------------------------------------------------------- AuthN


@pytest.fixture
def authn(acluster: Cluster, admin_token: str) -> AuthNClient:  # noqa: F811
    return AuthNClient(acluster.url, token=admin_token)


def test_authn_login_logout(acluster: Cluster) -> None:  # noqa: F811
    token = AuthNClient(acluster.url).login("admin", ADMIN_PW, expires_in=600)
    c = Client(acluster.url, token=token)
    assert isinstance(c.cluster().list_buckets(), list)
    AuthNClient(acluster.url, token=token).logout()
    st, msg = status_of(lambda: c.cluster().list_buckets())
    assert st == 401 and "revoked" in msg


def test_authn_cluster_list(
    acluster: Cluster, admin_token: str, authn: AuthNClient  # noqa: F811
) -> None:
    clusters = authn.cluster_manager().list().clusters
    uid = Client(acluster.url, token=admin_token).cluster().get_uuid()
    assert list(clusters) == [uid] and clusters[uid].alias == "local"
    assert clusters[uid].urls == [acluster.url]


def test_authn_cluster_get(acluster: Cluster, authn: AuthNClient) -> None:  # noqa: F811
    cm = authn.cluster_manager()
    by_alias = cm.get(cluster_alias="local")
    assert by_alias.alias == "local" and by_alias.urls == [acluster.url]
    by_id = cm.get(cluster_id=by_alias.id)
    assert by_id == by_alias
    st, msg = status_of(lambda: cm.get(cluster_alias="elsewhere"))
    assert st == 404 and "not registered" in msg, (st, msg)


def test_authn_cluster_register_update_delete(
    acluster: Cluster, authn: AuthNClient, tmp_path: Path  # noqa: F811
) -> None:
    """Another cluster registered here (the SDK reads its UUID from its
    map), renamed, given another URL, removed; this cluster's own
    registration ("local") cannot be changed or removed."""
    other = Cluster(base_dir=tmp_path / "other", num_targets=1)
    other.start()
    try:
        cm = authn.cluster_manager()
        info = cm.register("other", [other.url])
        assert info.alias == "other" and info.urls == [other.url], info
        assert set(cm.list().clusters) == {info.id, cm.get(cluster_alias="local").id}
        assert cm.get(cluster_alias="other").id == info.id
        st, msg = status_of(lambda: cm.register("again", [other.url]))
        assert st == 409 and "registered already" in msg, (st, msg)
        upd = cm.update(info.id, cluster_alias="renamed", urls=[other.url, "http://127.0.0.1:1"])
        assert upd.alias == "renamed" and len(upd.urls) == 2, upd
        st, msg = status_of(lambda: cm.update(info.id, cluster_alias="local"))
        assert st == 409, (st, msg)
        uid = cm.get(cluster_alias="local").id
        for call in (lambda: cm.update(uid, cluster_alias="x"), lambda: cm.delete(cluster_alias="local")):
            st, msg = status_of(call)
            assert st == 400 and "built in" in msg, (st, msg)
        cm.delete(cluster_alias="renamed")
        st, _ = status_of(lambda: cm.get(cluster_id=info.id))
        assert st == 404
        assert list(cm.list().clusters) == [uid]
        # Only admins register clusters.
        st, _ = status_of(lambda: AuthNClient(acluster.url).cluster_manager().register("x", [other.url]))
        assert st == 401
    finally:
        other.stop()


def test_authn_roles(authn: AuthNClient) -> None:
    rm = authn.role_manager()
    assert {"Admin", "ClusterOwner", "BucketOwner", "Guest"} <= {r.name for r in rm.list().root}
    name = f"cov-role-{uuid.uuid4().hex[:6]}"
    perms = [AccessAttr.GET, AccessAttr.OBJ_HEAD]
    role = rm.create(name, "coverage", cluster_alias="local", perms=perms)
    try:
        assert role.name == name and role.desc == "coverage"
        rm.update(name, desc="updated")
        assert rm.get(name).desc == "updated"
    finally:
        rm.delete(name)
    assert name not in {r.name for r in rm.list().root}
    rm.delete(name, missing_ok=True)


def test_authn_users(acluster: Cluster, authn: AuthNClient) -> None:  # noqa: F811
    um = authn.user_manager()
    user = f"cov-user-{uuid.uuid4().hex[:6]}"
    info = um.create(user, ["Guest"], "pw-one-123")
    try:
        assert info.id == user and [r.name for r in info.roles.root] == ["Guest"]
        assert user in um.list().root
        um.update(user, password="pw-two-456", roles=["ClusterOwner"])
        assert [r.name for r in um.get(user).roles.root] == ["ClusterOwner"]
        assert AuthNClient(acluster.url).login(user, "pw-two-456")
    finally:
        um.delete(user)
    assert user not in um.list().root
    um.delete(user, missing_ok=True)


def test_authn_token_revoke(acluster: Cluster, authn: AuthNClient) -> None:  # noqa: F811
    token = AuthNClient(acluster.url).login("admin", ADMIN_PW)
    c = Client(acluster.url, token=token)
    assert isinstance(c.cluster().list_buckets(), list)
    authn.token_manager().revoke(token)
    st, msg = status_of(lambda: c.cluster().list_buckets())
    assert st == 401 and "revoked" in msg
