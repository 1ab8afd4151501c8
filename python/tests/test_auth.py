"""Authentication and authorization with the official SDK (cluster with AIS_AUTH=1).

A dedicated 1-proxy/2-target cluster: login through ``AuthNClient``, tokens on
``Client(endpoint, token=...)`` (requests drops ``Authorization`` on the
redirect to a target: the proxy's signed redirect credential carries it),
roles, bucket limits, revocation on proxy and target, expiry, direct target
access, and the CLI's ``ais auth login/logout``.
"""

import base64
import json
import os
import subprocess
import time

import pytest
import requests
from aistore.sdk import Client
from aistore.sdk.authn import AuthNClient
from aistore.sdk.authn.access_attr import AccessAttr
from aistore.sdk.errors import AISError
from aistore.sdk.authn.errors import AuthNError

from ais_cluster import Cluster, default_bin_dir, unique_bucket_name

ADMIN_PW = "admin-pw-123"


@pytest.fixture(scope="module")
def acluster(tmp_path_factory):
    envs = str(tmp_path_factory.mktemp("etl-envs"))
    c = Cluster(
        base_dir=tmp_path_factory.mktemp("ais-auth"),
        num_targets=2,
        env={
            "AIS_AUTH": "1",
            "AIS_AUTH_SECRET": "test-cluster-secret",
            "AIS_AUTH_ADMIN_PASSWORD": ADMIN_PW,
            "AIS_ETL_ENV_CACHE": envs,
            # Canaries: the node's credentials must never reach ETL code.
            "AWS_SECRET_ACCESS_KEY": "canary-aws-secret-0123",
            "AWS_ACCESS_KEY_ID": "canary-aws-id",
        },
    )
    c.start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def admin_token(acluster):
    return AuthNClient(acluster.url).login("admin", ADMIN_PW)


@pytest.fixture(scope="module")
def admin(acluster, admin_token):
    return Client(acluster.url, token=admin_token)


def status_of(fn):
    with pytest.raises((AISError, AuthNError)) as ei:
        fn()
    return ei.value.status_code, str(ei.value)


def target_url(acluster):
    smap = requests.get(f"{acluster.url}/v1/daemon?what=smap", timeout=5).json()
    t = next(iter(smap["tmap"].values()))
    return t["public_net"]["direct_url"]


def test_no_token_is_401(acluster):
    st, msg = status_of(lambda: Client(acluster.url).cluster().list_buckets())
    assert st == 401 and "missing token" in msg
    st, _ = status_of(lambda: Client(acluster.url, token="not.a.jwt").cluster().list_buckets())
    assert st == 401


def test_admin_does_everything(admin):
    b = admin.bucket(unique_bucket_name("adm")).create()
    try:
        # PUT and GET go proxy -> 307/301 -> target; requests drops the header there.
        b.object("o1").get_writer().put_content(b"hello")
        assert b.object("o1").get_reader().read_all() == b"hello"
        assert [e.name for e in b.list_all_objects()] == ["o1"]
        assert b.object("o1").head()
        b.object("o1").delete()
    finally:
        b.delete()


def test_read_only_and_bucket_permissions(acluster, admin):
    authn = AuthNClient(acluster.url, token=AuthNClient(acluster.url).login("admin", ADMIN_PW))
    b1 = admin.bucket(unique_bucket_name("b1")).create()
    b2 = admin.bucket(unique_bucket_name("b2")).create()
    try:
        b1.object("x").get_writer().put_content(b"1")
        b2.object("y").get_writer().put_content(b"2")
        authn.user_manager().create("reader", ["Guest"], "reader-pw")
        ro = Client(acluster.url, token=AuthNClient(acluster.url).login("reader", "reader-pw"))
        assert ro.bucket(b1.name).object("x").get_reader().read_all() == b"1"
        assert [e.name for e in ro.bucket(b1.name).list_all_objects()] == ["x"]
        st, msg = status_of(lambda: ro.bucket(b1.name).object("new").get_writer().put_content(b"z"))
        assert st == 403 and "read-only role" in msg and "PUT" in msg
        st, _ = status_of(lambda: ro.bucket(b1.name).object("x").delete())
        assert st == 403
        st, _ = status_of(lambda: ro.bucket(unique_bucket_name("nope")).create())
        assert st == 403

        # A role limited to b1 (read-write there, nothing elsewhere).
        authn.role_manager().create(
            "b1-rw", "rw on b1", cluster_alias="local",
            perms=[AccessAttr.GET, AccessAttr.OBJ_HEAD, AccessAttr.PUT, AccessAttr.OBJ_LIST,
                   AccessAttr.OBJ_DELETE, AccessAttr.BCK_HEAD],
            bucket_name=b1.name,
        )
        authn.user_manager().create("limited", ["b1-rw"], "limited-pw")
        lim = Client(acluster.url, token=AuthNClient(acluster.url).login("limited", "limited-pw"))
        lim.bucket(b1.name).object("mine").get_writer().put_content(b"m")
        assert lim.bucket(b1.name).object("mine").get_reader().read_all() == b"m"
        st, msg = status_of(lambda: lim.bucket(b2.name).object("y").get_reader().read_all())
        assert st == 403 and "no access to bucket" in msg and b2.name in msg
        users = authn.user_manager().list()
        assert {"admin", "reader", "limited"} <= set(users.root)
    finally:
        b1.delete()
        b2.delete()


def test_revoked_token_refused_on_proxy_and_target(acluster, admin):
    b = admin.bucket(unique_bucket_name("rev")).create()
    try:
        b.object("o").get_writer().put_content(b"data")
        tok = AuthNClient(acluster.url).login("admin", ADMIN_PW)
        c = Client(acluster.url, token=tok)
        assert c.bucket(b.name).object("o").get_reader().read_all() == b"data"
        turl = target_url(acluster)
        hdr = {"Authorization": f"Bearer {tok}"}
        r = requests.get(f"{turl}/v1/objects/{b.name}/o", headers=hdr, timeout=5, allow_redirects=False)
        assert r.status_code in (200, 301, 307), r.text
        # Logout = revoke own token.
        a = AuthNClient(acluster.url, token=tok)
        a.logout()
        st, msg = status_of(lambda: c.bucket(b.name).object("o").get_reader().read_all())
        assert st == 401 and "revoked" in msg
        r = requests.get(f"{turl}/v1/objects/{b.name}/o", headers=hdr, timeout=5, allow_redirects=False)
        assert r.status_code == 401 and "revoked" in r.text
    finally:
        b.delete()


def test_direct_target_access_refused(acluster, admin_token):
    turl = target_url(acluster)
    assert requests.get(f"{turl}/v1/buckets", timeout=5).status_code == 401
    r = requests.get(f"{turl}/v1/objects/b/o?ais_auth=9999999999.Zm9v", timeout=5)
    assert r.status_code == 401
    # Internal endpoints want the cluster credential, not a user token.
    hdr = {"Authorization": f"Bearer {admin_token}"}
    r = requests.get(f"{turl}/v1/internal/list/b", headers=hdr, timeout=5)
    assert r.status_code == 401 and "cluster credential" in r.text
    r = requests.put(f"{turl}/v1/metasync", data=b"{}", timeout=5)
    assert r.status_code == 401


def test_expired_token_refused(acluster):
    tok = AuthNClient(acluster.url).login("admin", ADMIN_PW, expires_in=1)
    time.sleep(2.1)
    st, msg = status_of(lambda: Client(acluster.url, token=tok).cluster().list_buckets())
    assert st == 401 and "token expired" in msg


def test_wrong_password(acluster):
    st, msg = status_of(lambda: AuthNClient(acluster.url).login("admin", "wrong"))
    assert st == 401 and "invalid credentials" in msg


def test_cli_login_logout(acluster, tmp_path):
    ais = str(default_bin_dir() / "ais")
    env = {**os.environ, "AIS_ENDPOINT": acluster.url, "AIS_AUTHN_TOKEN_FILE": str(tmp_path / "tok")}
    env.pop("AIS_AUTHN_TOKEN", None)

    def run(*args):
        return subprocess.run([ais, *args], env=env, capture_output=True, text=True, timeout=30)

    r = run("bucket", "ls")
    assert r.returncode != 0 and "missing token" in r.stderr
    r = run("auth", "login", "admin", "-p", ADMIN_PW)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "tok").exists()
    r = run("bucket", "ls")
    assert r.returncode == 0, r.stderr
    r = run("auth", "add", "user", "cliuser", "cli-pw", "--role", "read-only")
    assert r.returncode == 0, r.stderr
    r = run("auth", "show", "user")
    assert r.returncode == 0 and "cliuser" in r.stdout and "Guest" in r.stdout
    r = run("auth", "rm", "user", "cliuser")
    assert r.returncode == 0, r.stderr
    r = run("auth", "logout")
    assert r.returncode == 0, r.stderr
    r = run("bucket", "ls")
    assert r.returncode != 0 and "missing token" in r.stderr


def test_etl_and_copy_job_with_auth(acluster, admin, admin_token):
    """ETL init (proxy -> targets), an ETL GET through the redirect, and a
    bucket copy job (target -> target PUTs) all work with auth on."""
    url = acluster.url
    hdr = {"Authorization": f"Bearer {admin_token}"}
    b = admin.bucket(unique_bucket_name("src")).create()
    dst = admin.bucket(unique_bucket_name("dst"))
    name = "etl-auth-upper"
    for i in range(6):
        b.object(f"o{i}").get_writer().put_content(b"abc%d" % i)
    msg = {
        "name": name,
        "runtime": "python3",
        "communication": "hpush://",
        "init_timeout": "2m",
        "obj_timeout": "30s",
        "funcs": {"transform": "transform"},
        "code": base64.b64encode(b"def transform(data):\n    return data.upper()\n").decode(),
        "dependencies": "",
        "argument": "",
    }
    assert requests.put(f"{url}/v1/etl", json=msg, timeout=180).status_code == 401
    r = requests.put(f"{url}/v1/etl", json=msg, headers=hdr, timeout=180)
    assert r.status_code == 200, r.text
    try:
        r = requests.get(
            f"{url}/v1/objects/{b.name}/o1",
            params={"provider": "ais", "etl_name": name},
            headers=hdr,
            timeout=60,
        )
        assert r.status_code == 200 and r.content == b"ABC1", r.text
        job = b.copy(dst)
        admin.job(job_id=job).wait(timeout=60)
        assert sorted(e.name for e in dst.list_all_objects()) == [f"o{i}" for i in range(6)]
        assert dst.object("o3").get_reader().read_all() == b"abc3"
    finally:
        requests.delete(f"{url}/v1/etl/{name}", headers=hdr, timeout=30)
        b.delete()
        dst.delete(missing_ok=True)


def test_get_batch_and_archive_need_the_buckets_permissions(acluster, admin):
    """Get-Batch reads every item's bucket, an archive job reads the source
    and writes the destination: a role limited to one bucket cannot use
    either to reach another."""
    authn = AuthNClient(acluster.url, token=AuthNClient(acluster.url).login("admin", ADMIN_PW))
    mine = admin.bucket(unique_bucket_name("mine")).create()
    other = admin.bucket(unique_bucket_name("other")).create()
    try:
        mine.object("a").get_writer().put_content(b"A")
        other.object("s").get_writer().put_content(b"secret")
        authn.role_manager().create(
            "mine-rw", "rw on one bucket", cluster_alias="local",
            perms=[AccessAttr.GET, AccessAttr.OBJ_HEAD, AccessAttr.PUT, AccessAttr.OBJ_LIST, AccessAttr.BCK_HEAD],
            bucket_name=mine.name,
        )
        authn.user_manager().create("batcher", ["mine-rw"], "batcher-pw")
        lim = Client(acluster.url, token=AuthNClient(acluster.url).login("batcher", "batcher-pw"))
        got = [(o.obj_name, d) for o, d in lim.batch(["a"], bucket=lim.bucket(mine.name)).get()]
        assert got == [("a", b"A")]
        b = lim.batch(bucket=lim.bucket(mine.name))
        b.add("a")
        b.add("s", bck=other.name, provider="ais")
        st, msg = status_of(lambda: list(b.get()))
        assert st == 403 and other.name in msg, (st, msg)
        st, msg = status_of(lambda: lim.bucket(other.name).objects(obj_names=["s"]).archive(archive_name="x.tar", to_bck=lim.bucket(mine.name)))
        assert st == 403 and other.name in msg, (st, msg)
        st, msg = status_of(lambda: lim.bucket(mine.name).objects(obj_names=["a"]).archive(archive_name="x.tar", to_bck=lim.bucket(other.name)))
        assert st == 403 and other.name in msg, (st, msg)
    finally:
        mine.delete()
        other.delete()


def test_get_batch_redirect_is_good_for_its_own_body_only(acluster, admin):
    """The proxy authorizes the buckets a Get-Batch body names, then
    redirects: the redirect's credential binds that body, so the same URL
    with another body (no token, or a token limited to one bucket) reads
    nothing of another bucket."""
    url = acluster.url
    authn = AuthNClient(url, token=AuthNClient(url).login("admin", ADMIN_PW))
    mine = admin.bucket(unique_bucket_name("swap-mine")).create()
    other = admin.bucket(unique_bucket_name("swap-other")).create()
    try:
        mine.object("a").get_writer().put_content(b"A")
        other.object("s").get_writer().put_content(b"top-secret")
        authn.role_manager().create(
            "swap-ro", "read one bucket", cluster_alias="local",
            perms=[AccessAttr.GET, AccessAttr.OBJ_HEAD, AccessAttr.OBJ_LIST, AccessAttr.BCK_HEAD],
            bucket_name=mine.name,
        )
        authn.user_manager().create("swapper", ["swap-ro"], "swapper-pw")
        tok = AuthNClient(url).login("swapper", "swapper-pw")
        hdr = {"Authorization": f"Bearer {tok}"}
        good = {"in": [{"objname": "a"}], "mime": ".tar"}
        evil = {"in": [{"objname": "a"}, {"objname": "s", "bucket": other.name}], "mime": ".tar"}
        r = requests.get(f"{url}/v1/ml/moss/{mine.name}", json=good, headers=hdr, allow_redirects=False, timeout=30)
        assert r.status_code == 307, r.text
        loc = r.headers["Location"]
        # The redirect as issued works, without a token.
        r = requests.get(loc, json=good, timeout=30)
        assert r.status_code == 200, r.text
        # The same URL with a swapped body: refused, with and without the token.
        for h in ({}, hdr):
            r = requests.get(loc, json=evil, headers=h, timeout=30)
            assert r.status_code in (401, 403), (h, r.status_code)
            assert b"top-secret" not in r.content
        # A parameter added to the signed query: refused too.
        r = requests.get(loc.replace("?", "?etl_name=x&", 1), json=good, timeout=30)
        assert r.status_code == 401, r.text
        # Straight at the target with the limited token: the body is checked there.
        r = requests.get(loc.split("?")[0], json=evil, headers=hdr, timeout=30)
        assert r.status_code == 403 and other.name in r.text, r.text
    finally:
        mine.delete()
        other.delete()


SECRET_SPY = r'''
import json, os


def _read(p):
    try:
        with open(p, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except BaseException as e:
        return "%s" % type(e).__name__


def transform(data, path, etl_args):
    out = {"env": dict(os.environ), "fds": sorted(os.listdir("/proc/self/fd"))}
    procs = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            procs[pid] = {"environ": _read("/proc/%s/environ" % pid), "cmdline": _read("/proc/%s/cmdline" % pid)}
    out["procs"] = procs
    files = {}
    for root, _, names in os.walk("."):
        for n in names:
            files[os.path.join(root, n)] = _read(os.path.join(root, n))[:100000]
    out["files"] = files
    return json.dumps(out).encode()
'''


def test_etl_code_finds_no_secret_of_the_node(acluster, admin, admin_token):
    """A transform dumping its environment, every /proc/*/environ and
    cmdline it can read, and its work dir finds neither the cluster's auth
    secret, nor the admin password, nor the node's cloud credentials."""
    url = acluster.url
    hdr = {"Authorization": f"Bearer {admin_token}"}
    b = admin.bucket(unique_bucket_name("spy")).create()
    name = "etl-secret-spy"
    msg = {
        "name": name, "runtime": "python3", "communication": "hpush://",
        "init_timeout": "2m", "obj_timeout": "30s", "funcs": {"transform": "transform"},
        "code": base64.b64encode(SECRET_SPY.encode()).decode(), "dependencies": "", "argument": "",
    }
    try:
        b.object("o").get_writer().put_content(b"x")
        r = requests.put(f"{url}/v1/etl", json=msg, headers=hdr, timeout=180)
        assert r.status_code == 200, r.text
        r = requests.get(f"{url}/v1/objects/{b.name}/o", params={"etl_name": name}, headers=hdr, timeout=60)
        assert r.status_code == 200, r.text
        out = r.json()
        # (Without root the workers share the node's uid and can read its
        # /proc/PID/environ: the node wiped its secrets from it at start.)
        dump = json.dumps(out)
        for secret in ("test-cluster-secret", ADMIN_PW, "canary-aws-secret-0123"):
            assert secret not in dump, secret
        for k in out["env"]:
            assert not k.startswith(("AIS_AUTH", "AWS_", "AIS_S3")), k
        # stdio, the worker's socket, and what Python itself opened: no
        # descriptor of the node's.
        assert len(out["fds"]) <= 8, out["fds"]
    finally:
        requests.delete(f"{url}/v1/etl/{name}", headers=hdr, timeout=30)
        b.delete()


def _claims(tok: str) -> dict:
    body = tok.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def test_tokens_die_with_their_user_and_roles(acluster, admin):
    """Deleting a user, or changing its roles, voids the tokens it holds at
    once, on the proxy and on a target (no wait for expiry)."""
    url = acluster.url
    authn = AuthNClient(url, token=AuthNClient(url).login("admin", ADMIN_PW))
    b = admin.bucket(unique_bucket_name("gone")).create()
    turl = target_url(acluster)
    try:
        b.object("o").get_writer().put_content(b"data")
        authn.role_manager().create(
            "gone-ro", "read", cluster_alias="local",
            perms=[AccessAttr.GET, AccessAttr.OBJ_HEAD, AccessAttr.OBJ_LIST, AccessAttr.BCK_HEAD],
            bucket_name=b.name,
        )
        for user in ("leaver", "mover"):
            authn.user_manager().create(user, ["gone-ro"], f"{user}-pw")
        toks = {u: AuthNClient(url).login(u, f"{u}-pw") for u in ("leaver", "mover")}
        for tok in toks.values():
            assert Client(url, token=tok).bucket(b.name).object("o").get_reader().read_all() == b"data"
        # Redirects issued while the tokens were good (valid for 60 s, and
        # followed without the token, as clients do across host:port).
        locs = {}
        for u, tok in toks.items():
            r = requests.get(f"{url}/v1/objects/{b.name}/o", headers={"Authorization": f"Bearer {tok}"}, timeout=5, allow_redirects=False)
            assert r.status_code in (301, 302, 307), r.text
            locs[u] = r.headers["Location"]
        assert requests.get(locs["leaver"], timeout=5).content == b"data"
        authn.user_manager().delete("leaver")
        authn.user_manager().update("mover", roles=["ClusterOwner"])
        for u, loc in locs.items():
            r = requests.get(loc, timeout=5)
            assert r.status_code == 401 and "revoked" in r.text, (u, r.status_code, r.text)
        for u, tok in toks.items():
            st, msg = status_of(lambda: Client(url, token=tok).bucket(b.name).object("o").get_reader().read_all())
            assert st == 401, (u, st, msg)
            r = requests.get(f"{turl}/v1/objects/{b.name}/o", headers={"Authorization": f"Bearer {tok}"}, timeout=5, allow_redirects=False)
            assert r.status_code == 401, (u, r.text)
        # A new login of the changed user works at once, with its new roles.
        tok = AuthNClient(url).login("mover", "mover-pw")
        assert Client(url, token=tok).bucket(b.name).object("o").get_reader().read_all() == b"data"
        # A re-created user of the same name is a new user: old tokens stay void.
        authn.user_manager().create("leaver", ["gone-ro"], "leaver-pw")
        st, _ = status_of(lambda: Client(url, token=toks["leaver"]).bucket(b.name).object("o").get_reader().read_all())
        assert st == 401
        fresh = AuthNClient(url).login("leaver", "leaver-pw")
        assert Client(url, token=fresh).bucket(b.name).object("o").get_reader().read_all() == b"data"
    finally:
        for u in ("leaver", "mover"):
            try:
                authn.user_manager().delete(u)
            except (AISError, AuthNError):
                pass
        b.delete()


def test_bulk_delete_needs_object_deletes_not_bucket_destroy(acluster, admin):
    """`delete-listrange` is a delete of objects: a user allowed to delete
    objects (not to destroy the bucket) may run it; a read-only one may not."""
    url = acluster.url
    authn = AuthNClient(url, token=AuthNClient(url).login("admin", ADMIN_PW))
    b = admin.bucket(unique_bucket_name("bulkdel")).create()
    try:
        for i in range(5):
            b.object(f"o{i}").get_writer().put_content(b"x")
        authn.role_manager().create(
            "bulk-deleter", "delete objects", cluster_alias="local",
            perms=[AccessAttr.GET, AccessAttr.OBJ_HEAD, AccessAttr.OBJ_LIST, AccessAttr.BCK_HEAD, AccessAttr.OBJ_DELETE],
            bucket_name=b.name,
        )
        authn.role_manager().create(
            "bulk-reader", "read", cluster_alias="local",
            perms=[AccessAttr.GET, AccessAttr.OBJ_HEAD, AccessAttr.OBJ_LIST, AccessAttr.BCK_HEAD],
            bucket_name=b.name,
        )
        authn.user_manager().create("bulk-del-user", ["bulk-deleter"], "deleter-pw")
        authn.user_manager().create("bulk-read-user", ["bulk-reader"], "reader-pw")
        reader = Client(url, token=AuthNClient(url).login("bulk-read-user", "reader-pw"))
        st, msg = status_of(lambda: reader.bucket(b.name).objects(obj_names=["o0"]).delete())
        assert st == 403, (st, msg)
        deleter = Client(url, token=AuthNClient(url).login("bulk-del-user", "deleter-pw"))
        job = deleter.bucket(b.name).objects(obj_template="o{0..3}").delete()
        admin.job(job_id=job).wait(timeout=60)
        assert sorted(e.name for e in admin.bucket(b.name).list_all_objects()) == ["o4"]
        st, _ = status_of(lambda: deleter.bucket(b.name).delete())
        assert st == 403
    finally:
        for u in ("bulk-del-user", "bulk-read-user"):
            try:
                authn.user_manager().delete(u)
            except (AISError, AuthNError):
                pass
        b.delete()


def test_backend_bck_needs_the_rights_on_the_backend_bucket(acluster, admin):
    """Naming a backend (backend_bck) hands the bucket's users the remote
    bucket's objects: a user who may change only its own bucket's props is
    refused (403) for a bucket it has no rights on, before anything is looked
    up."""
    import requests

    url = acluster.url
    authn = AuthNClient(url, token=AuthNClient(url).login("admin", ADMIN_PW))
    mine = admin.bucket(unique_bucket_name("bb-mine")).create()
    try:
        authn.role_manager().create(
            "bb-owner", "own one bucket", cluster_alias="local",
            perms=[AccessAttr.GET, AccessAttr.OBJ_HEAD, AccessAttr.OBJ_LIST, AccessAttr.BCK_HEAD, AccessAttr.PUT,
                   AccessAttr.OBJ_DELETE, AccessAttr.PATCH],
            bucket_name=mine.name,
        )
        authn.user_manager().create("bb-user", ["bb-owner"], "bb-pw")
        tok = AuthNClient(url).login("bb-user", "bb-pw")
        h = {"Authorization": f"Bearer {tok}"}
        body = {"action": "set-bprops", "value": {"backend_bck": {"name": "someone-elses", "provider": "aws"}}}
        r = requests.patch(f"{url}/v1/buckets/{mine.name}", json=body, headers=h, timeout=30)
        assert r.status_code == 403 and "someone-elses" in r.text, r.text
        # Its own bucket's other props it may still change.
        r = requests.patch(f"{url}/v1/buckets/{mine.name}", json={"action": "set-bprops", "value": {"access": "0"}},
                           headers=h, timeout=30)
        assert r.status_code != 403, r.text
    finally:
        try:
            authn.user_manager().delete("bb-user")
        except (AISError, AuthNError):
            pass
        mine.delete()


def test_node_logs_are_for_admins_only(acluster, admin):
    """A node's log names every bucket's objects (and may quote a backend's
    URLs): a user who may see the cluster but is not an admin gets 403."""
    url = acluster.url
    authn = AuthNClient(url, token=AuthNClient(url).login("admin", ADMIN_PW))
    authn.user_manager().create("log-guest", ["Guest"], "guest-pw")
    try:
        tok = AuthNClient(url).login("log-guest", "guest-pw")
        tid = next(iter(requests.get(f"{url}/v1/daemon?what=smap", timeout=5).json()["tmap"]))
        r = requests.get(f"{url}/v1/reverse/daemon", params={"what": "log"}, headers={"Authorization": f"Bearer {tok}", "Ais-Node-Id": tid}, timeout=5)
        assert r.status_code == 403, (r.status_code, r.text)
        assert "listening" in admin.cluster().get_node_log(tid)
    finally:
        authn.user_manager().delete("log-guest")


def test_targets_refuse_parameters_only_nodes_send(acluster, admin):
    """A user with a token reaching a target directly cannot pass a PUT off
    as a rebalance move (stored at a version it chose, or skipped with 200
    when the object exists) nor ask for a node's Get-Batch item checks."""
    url = acluster.url
    tok = AuthNClient(url).login("admin", ADMIN_PW)
    b = admin.bucket(unique_bucket_name("internal")).create()
    try:
        b.object("o").get_writer().put_content(b"precious")
        for t in acluster.targets:
            for param in ("ais_rebalance", "ais_verify"):
                r = requests.put(
                    f"{t.url}/v1/objects/{b.name}/o",
                    params={param: "1", "ais_hop": "1"},
                    headers={"Authorization": f"Bearer {tok}", "Ais-Version": "999"},
                    data=b"replaced?",
                    timeout=5,
                    allow_redirects=False,
                )
                assert r.status_code == 400 and param in r.text, (t.url, param, r.status_code, r.text)
        assert b.object("o").get_reader().read_all() == b"precious"
    finally:
        b.delete()


def test_generated_admin_password_token_cap_and_login_throttling(tmp_path):
    """Without AIS_AUTH_ADMIN_PASSWORD the generated password goes to a 0600
    file, never to the log; a token asked for 100 years gets the operator's
    maximum; failed logins are throttled per user and per client (429 with
    Retry-After, before the password is even checked)."""
    c = Cluster(
        base_dir=tmp_path / "ais-auth-gen",
        num_targets=1,
        env={"AIS_AUTH": "1", "AIS_AUTH_SECRET": "another-cluster-secret", "AIS_AUTH_MAX_TOKEN_TTL": "1h"},
    )
    c.start()
    try:
        files = list((tmp_path / "ais-auth-gen").rglob("admin-password"))
        assert len(files) == 1, files
        f = files[0]
        assert f.stat().st_mode & 0o777 == 0o600
        pw = f.read_text().strip()
        assert len(pw) >= 16
        for n in c.nodes:
            assert pw not in n.log_path.read_text(errors="replace")
        for log in (tmp_path / "ais-auth-gen").rglob("*.log"):
            assert pw not in log.read_text(errors="replace"), log
        tok = AuthNClient(c.url).login("admin", pw, expires_in=100 * 365 * 24 * 3600)
        cl = _claims(tok)
        assert cl["exp"] - cl["iat"] <= 3600, cl
        # Throttling: 5 free failures, then 429 + Retry-After, even with the
        # right password.
        codes = []
        for _ in range(6):
            r = requests.post(f"{c.url}/v1/users/admin", json={"password": "nope"}, timeout=5)
            codes.append(r.status_code)
        assert codes[:5] == [401] * 5, codes
        r = requests.post(f"{c.url}/v1/users/admin", json={"password": pw}, timeout=5)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1, (r.status_code, r.text)
        assert "too many failed logins" in r.json()["message"]
        # Other users from the same client: guessing goes on until the
        # client's own limit (20 failures), then that client waits too.
        codes = []
        for i in range(16):
            r = requests.post(f"{c.url}/v1/users/guess-{i}", json={"password": "x"}, timeout=5)
            codes.append(r.status_code)
        assert codes[:14] == [401] * 14 and codes[-1] == 429, codes
        assert "client" in r.json()["message"], r.text
        # After the wait, the right password gets in (and clears the count).
        deadline = time.time() + 70
        while True:
            r = requests.post(f"{c.url}/v1/users/admin", json={"password": pw}, timeout=5)
            if r.status_code != 429 or time.time() > deadline:
                break
            time.sleep(min(int(r.headers.get("Retry-After", "1")), 5))
        assert r.status_code == 200, r.text
    finally:
        c.stop()


def test_nodes_wipe_their_secrets_from_their_environment_block(acluster, admin):
    """/proc/PID/environ of every node (readable by any process of the same
    uid) holds none of the node's secrets; the node still uses them."""
    assert [e.name for e in admin.cluster().list_buckets()] is not None
    for n in acluster.nodes:
        with open(f"/proc/{n.proc.pid}/environ", "rb") as f:
            env = f.read()
        for secret in (b"test-cluster-secret", ADMIN_PW.encode(), b"canary-aws-secret-0123"):
            assert secret not in env, (n.role, secret)
        assert b"AIS_AUTH_SECRET=" in env  # the entry is there, its value wiped



def test_multipart_needs_put_and_its_redirect_binds_the_action(acluster, admin):
    """A multipart upload writes the object: creating, completing and
    aborting one need PUT (a rename's OBJ_MOVE is not enough, and PUT
    alone is); an object action's redirect is good for its own body only
    (a redirect issued for one action cannot carry another)."""
    url = acluster.url
    authn = AuthNClient(url, token=AuthNClient(url).login("admin", ADMIN_PW))
    b = admin.bucket(unique_bucket_name("mpuauth")).create()
    try:
        authn.role_manager().create(
            "mpu-writer", "put only", cluster_alias="local",
            perms=[AccessAttr.GET, AccessAttr.OBJ_HEAD, AccessAttr.OBJ_LIST, AccessAttr.BCK_HEAD, AccessAttr.PUT],
            bucket_name=b.name,
        )
        authn.role_manager().create(
            "mpu-mover", "rename only", cluster_alias="local",
            perms=[AccessAttr.GET, AccessAttr.OBJ_HEAD, AccessAttr.OBJ_LIST, AccessAttr.BCK_HEAD, AccessAttr.OBJ_MOVE],
            bucket_name=b.name,
        )
        authn.user_manager().create("mpu-w", ["mpu-writer"], "w-pw")
        authn.user_manager().create("mpu-m", ["mpu-mover"], "m-pw")
        writer = Client(url, token=AuthNClient(url).login("mpu-w", "w-pw"))
        mover = Client(url, token=AuthNClient(url).login("mpu-m", "m-pw"))
        # The mover can neither start nor complete nor abort an upload.
        st, _ = status_of(lambda: mover.bucket(b.name).object("m").multipart_upload().create())
        assert st == 403, st
        mpu = writer.bucket(b.name).object("m").multipart_upload().create()
        mpu.add_part(1).put_content(b"one")
        foreign = mover.bucket(b.name).object("m").multipart_upload()
        foreign.upload_id, foreign.parts = mpu.upload_id, [1]
        assert status_of(foreign.complete)[0] == 403
        assert status_of(foreign.abort)[0] == 403
        # The writer can do it all (no OBJ_MOVE needed).
        assert mpu.complete().status_code == 200
        assert admin.bucket(b.name).object("m").get_reader().read_all() == b"one"
        # A redirect issued for a rename does not carry a multipart create.
        admin.bucket(b.name).object("r").get_writer().put_content(b"r")
        tok = AuthNClient(url).login("mpu-m", "m-pw")
        hdr = {"Authorization": f"Bearer {tok}"}
        rename = {"action": "rename-obj", "name": "r2"}
        r = requests.post(f"{url}/v1/objects/{b.name}/r", json=rename, headers=hdr,
                          allow_redirects=False, timeout=30)
        assert r.status_code == 307, r.text
        loc = r.headers["Location"]
        r = requests.post(loc, json={"action": "mpt-upload"}, timeout=30)
        assert r.status_code in (401, 403), (r.status_code, r.text)
        r = requests.post(loc, json=rename, timeout=30)
        assert r.status_code == 200, r.text
        names = sorted(e.name for e in admin.bucket(b.name).list_all_objects())
        assert names == ["m", "r2"], names
    finally:
        for u in ("mpu-w", "mpu-m"):
            try:
                authn.user_manager().delete(u)
            except (AISError, AuthNError):
                pass
        b.delete()


def test_roles_for_other_clusters_and_redundancy_changes_are_not_granted_here(acluster, admin, cluster):
    """A role's permissions for another registered cluster give nothing on
    this one; changing a bucket's redundancy (make-n-copies, ec-encode)
    needs the bucket-properties bit, not just PUT."""
    url = acluster.url
    authn = AuthNClient(url, token=AuthNClient(url).login("admin", ADMIN_PW))
    b = admin.bucket(unique_bucket_name("perm-scope")).create()
    cm = authn.cluster_manager()
    try:
        cm.register("elsewhere", [cluster.url])
        authn.role_manager().create(
            "su-elsewhere", "everything on another cluster", cluster_alias="elsewhere",
            perms=[AccessAttr.ACCESS_SU],
        )
        authn.role_manager().create(
            "writer-here", "put, no props", cluster_alias="local",
            perms=[AccessAttr.GET, AccessAttr.OBJ_HEAD, AccessAttr.PUT, AccessAttr.OBJ_LIST, AccessAttr.BCK_HEAD],
            bucket_name=b.name,
        )
        authn.user_manager().create("scoped", ["su-elsewhere", "writer-here"], "scoped-pw")
        lim = Client(url, token=AuthNClient(url).login("scoped", "scoped-pw"))
        st, _ = status_of(lambda: lim.bucket(b.name).delete())
        assert st == 403, st
        st, _ = status_of(lambda: lim.cluster().list_buckets())
        assert st == 403, st
        lim.bucket(b.name).object("o").get_writer().put_content(b"x")
        for body in ({"action": "make-n-copies", "value": 2}, {"action": "ec-encode"}):
            r = requests.post(f"{url}/v1/buckets/{b.name}", json=body, timeout=30,
                              headers={"Authorization": f"Bearer {AuthNClient(url).login('scoped', 'scoped-pw')}"})
            assert r.status_code == 403, (body, r.status_code, r.text)
    finally:
        for u in ("scoped",):
            try:
                authn.user_manager().delete(u)
            except (AISError, AuthNError):
                pass
        try:
            cm.delete(cluster_alias="elsewhere")
        except (AISError, AuthNError):
            pass
        b.delete()
