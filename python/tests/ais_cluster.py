"""Launch a real local aistore-rs cluster (1 proxy + N targets) for tests.

Each node is a separate ``aisnode`` process. A node prints
``AISNODE_READY <role> <id> <url>`` on stdout once it listens; we read its
stdout until that line appears (to learn the URL) and keep draining stdout in a
background thread afterwards. Each node's stderr (its log) goes to
``<node dir>/node.log``.

Process handling follows the Rust supervisor (``crates/ais-proc``): every node
runs in its own session and process group (``start_new_session=True``) with a
random ``AIS_PROC_TOKEN`` in its environment and ``AIS_DIE_WITH_PARENT=1``;
``stop()`` sends SIGTERM to each node's group, waits up to ``STOP_TIMEOUT_S``
for the node and its group, SIGKILLs what is left and reaps; a group is only
signalled while its leader is unreaped (so the group id cannot be reused).
Nodes are spawned one by one rather than through ``aisnode playground``: tests
kill single nodes and expect them to stay down, which the playground's
supervisor would undo.

``stop()`` also scans every node log for ``panicked at`` and for ERROR-level
lines not matched by ``DEFAULT_LOG_ALLOW`` or ``Cluster.allow_log(...)`` and
raises ``NodeLogError`` listing them (pytest reports it as an error of the
test, or of the teardown of the session fixture).

Usage::

    cluster = Cluster(base_dir="/tmp/x", num_targets=3)
    cluster.start()
    try:
        ...  # talk to cluster.url
    finally:
        cluster.stop()

The binary directory defaults to ``$AIS_BIN_DIR`` or ``<repo>/target/debug``.
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Dict, Iterable, List, Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_MARKER = "AISNODE_READY"
READY_TIMEOUT_S = 20.0
CLUSTER_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
NUM_TARGETS = 3
TOKEN_ENV = "AIS_PROC_TOKEN"

# Substrings of ERROR-level node log lines that tests provoke on purpose.
DEFAULT_LOG_ALLOW = (
    # An ETL from the cluster metadata that cannot start on a (re)joining target.
    "failed to start ETL",
)


def unique_bucket_name(prefix: str = "test") -> str:
    """A bucket name no other test uses (valid for AIStore: [A-Za-z0-9._-])."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def put_etl(url: str, name: str, code: str, comm: str = "hpush://", timeout: float = 600, **extra) -> None:
    """Initialises ETL `name` running Python `code` (`PUT /v1/etl`, a code
    init message; `extra` adds or overrides fields); a refusal fails the
    test with the cluster's message."""
    import base64

    import requests

    body = {
        "name": name,
        "runtime": "python3",
        "communication": comm,
        "code": base64.b64encode(code.encode()).decode(),
        "dependencies": "",
        "init_timeout": "5m",
        **extra,
    }
    r = requests.put(f"{url}/v1/etl", json=body, timeout=timeout)
    assert r.status_code == 200, r.text


def default_bin_dir() -> Path:
    """Directory holding the ``aisnode`` binary."""
    env = os.environ.get("AIS_BIN_DIR")
    return Path(env) if env else REPO_ROOT / "target" / "debug"


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v1/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def unmount_below(root: Path) -> None:
    """Detaches every mount below ``root`` (this process's mount table)."""
    try:
        with open("/proc/self/mountinfo") as f:
            points = [l.split()[4].replace("\\040", " ") for l in f]
    except OSError:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for p in sorted((p for p in points if p.startswith(str(root) + os.sep)), key=len, reverse=True):
        libc.umount2(p.encode(), 2)  # MNT_DETACH


class ClusterError(RuntimeError):
    """The cluster could not be started (the message carries log tails)."""


class NodeLogError(ClusterError):
    """A node log has a panic or an unexpected ERROR line (listed in the message)."""


def _stat_fields(pid: int) -> Optional[List[str]]:
    """Fields of /proc/<pid>/stat after the command name (index 0 = field 3)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    return data[data.rfind(")") + 1 :].split()


def _group_members(pgid: int) -> List[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        f = _stat_fields(int(name))
        if f and len(f) > 2 and f[2] == str(pgid) and f[0] != "Z":
            out.append(int(name))
    return out


def _peek(proc: subprocess.Popen) -> str:
    """``running``, ``exited`` (not yet reaped: pid and group id still ours) or ``gone``."""
    if proc.returncode is not None:
        return "gone"
    try:
        r = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
    except ChildProcessError:
        return "gone"
    return "running" if r is None else "exited"


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """``sig`` to the node's process group, only while its leader is unreaped."""
    if _peek(proc) == "gone":
        return
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stopped(proc: subprocess.Popen) -> bool:
    st = _peek(proc)
    if st == "running":
        return False
    return st == "gone" or not _group_members(proc.pid)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def scan_log(text: str, allow: Iterable[str]) -> List[str]:
    """Lines with ``panicked at``, and ERROR-level lines (tracing's
    ``<timestamp> ERROR <target>: <message>``) containing none of ``allow``."""
    allow = list(allow)
    bad = []
    for line in text.splitlines():
        line = _ANSI.sub("", line)
        if "panicked at" in line:
            bad.append(line)
        elif "ERROR" in line.split()[:2] and not any(a in line for a in allow):
            bad.append(line)
    return bad


@dataclass
class Node:
    """One running ``aisnode`` process."""

    role: str
    data_dir: Path
    proc: subprocess.Popen
    log_path: Path
    mpaths: List[Path] = field(default_factory=list)
    node_id: str = ""
    url: str = ""
    stdout_lines: List[str] = field(default_factory=list)
    _drain: Optional[threading.Thread] = None

    @property
    def running(self) -> bool:
        """True while the process has not exited."""
        return self.proc.poll() is None

    def log_tail(self, n: int = 40) -> str:
        """Last ``n`` lines of this node's stderr log."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "<no log>"
        return "\n".join(lines[-n:])


def _drain_stdout(stream: IO[str], node: Node, ready: "queue.Queue[str]") -> None:
    """Read a node's stdout until EOF; hand the READY line to ``ready``."""
    seen_ready = False
    for line in stream:
        line = line.rstrip("\n")
        node.stdout_lines.append(line)
        if not seen_ready and line.startswith(READY_MARKER):
            seen_ready = True
            ready.put(line)
    if not seen_ready:
        ready.put("")  # EOF before READY: wake the waiter


class Cluster:
    """A local cluster of one primary proxy and ``num_targets`` targets.

    Args:
        base_dir: directory for all node data; a temporary one (removed on
            ``stop()``) is created when omitted.
        num_targets: number of storage targets.
        bin_dir: directory with the ``aisnode`` binary.
        keepalive_timeout: seconds without keepalive before the primary drops
            a node from the cluster map.
        env: extra environment variables for every node (on top of this
            process's environment, which is passed through, e.g.
            ``AIS_PYTHON`` -- the interpreter ETL workers run with; it
            defaults to the interpreter running this harness).
        allow_log: substrings of ERROR log lines this cluster's tests provoke
            on purpose (on top of ``DEFAULT_LOG_ALLOW``).
    """

    def __init__(
        self,
        base_dir: Optional[os.PathLike] = None,
        num_targets: int = NUM_TARGETS,
        bin_dir: Optional[os.PathLike] = None,
        keepalive_timeout: float = 6.0,
        env: Optional[Dict[str, str]] = None,
        allow_log: Iterable[str] = (),
    ) -> None:
        self._own_dir = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="ais-cluster-"))
        self.num_targets = num_targets
        self.bin_dir = Path(bin_dir) if bin_dir else default_bin_dir()
        self.keepalive_timeout = keepalive_timeout
        self.env = dict(env or {})
        self.proxy: Optional[Node] = None
        self.proxies: List[Node] = []
        self.targets: List[Node] = []
        self.log_allow: List[str] = [*DEFAULT_LOG_ALLOW, *allow_log]

    # ------------------------------------------------------------------ api

    @property
    def url(self) -> str:
        """Primary proxy URL, e.g. ``http://127.0.0.1:40123``."""
        if self.proxy is None or not self.proxy.url:
            raise ClusterError("cluster is not started")
        return self.proxy.url

    @property
    def nodes(self) -> List[Node]:
        """All started nodes, the primary proxy first, then the other proxies."""
        return ([self.proxy] if self.proxy else []) + list(self.proxies) + list(self.targets)

    def add_proxy(self) -> Node:
        """Start one more (non-primary) proxy joined to the primary; wait
        until the cluster map lists it and it answers."""
        i = len(self.proxies) + 2
        node = self._spawn(
            "proxy",
            self.base_dir / f"proxy{i}",
            ["--join", self.url, "--keepalive-timeout", str(self.keepalive_timeout)],
        )
        self.proxies.append(node)
        assert self.proxy is not node
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                listed = node.node_id in (self.smap().get("pmap") or {})
                with urllib.request.urlopen(f"{node.url}/v1/health", timeout=5) as r:
                    if listed and r.status == 200:
                        return node
            except OSError:
                pass
            time.sleep(0.1)
        raise ClusterError(f"proxy {node.node_id} did not join within 30 s")

    def target_by_id(self, node_id: str) -> Node:
        """The target node with daemon id ``node_id``."""
        for t in self.targets:
            if t.node_id == node_id:
                return t
        raise KeyError(node_id)

    def start(self) -> "Cluster":
        """Start the proxy, then the targets; wait until all targets joined."""
        exe = self.bin_dir / "aisnode"
        if not exe.is_file():
            raise ClusterError(f"aisnode binary not found at {exe} (set AIS_BIN_DIR)")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.proxy = self._spawn(
                "proxy",
                self.base_dir / "proxy",
                ["--keepalive-timeout", str(self.keepalive_timeout)],
            )
            for i in range(1, self.num_targets + 1):
                tdir = self.base_dir / f"target{i}"
                mpath = tdir / "mp1"
                node = self._spawn(
                    "target",
                    tdir,
                    ["--join", self.proxy.url, "--mpath", str(mpath)],
                    mpaths=[mpath],
                )
                self.targets.append(node)
            self._wait_for_targets()
        except BaseException:
            try:
                self.stop(remove_data=False)
            except NodeLogError:
                pass  # the start failure (with its log tail) is the news
            raise
        return self

    def smap(self) -> dict:
        """The primary's cluster map (raw JSON)."""
        with urllib.request.urlopen(f"{self.url}/v1/daemon?what=smap", timeout=5) as r:
            return json.loads(r.read())

    def allow_log(self, pattern: str) -> None:
        """Allow ERROR log lines containing ``pattern`` (``panicked at`` never is)."""
        self.log_allow.append(pattern)

    def log_findings(self) -> List[str]:
        """Offending lines of every node log, prefixed with the node's dir name."""
        out = []
        for n in self.nodes:
            try:
                text = n.log_path.read_text(errors="replace")
            except OSError:
                continue
            out += [f"{n.data_dir.name}: {l}" for l in scan_log(text, self.log_allow)]
        return out

    def stop(self, remove_data: Optional[bool] = None) -> None:
        """SIGTERM every node's process group, wait up to 5 s, then SIGKILL
        what is left, reap; then scan the node logs.

        Raises:
            ClusterError: if a node is still running afterwards.
            NodeLogError: if a node log has a panic or an unexpected ERROR line.
        """
        nodes = self.nodes
        for n in nodes:
            _signal_group(n.proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while not all(_stopped(n.proc) for n in nodes) and time.monotonic() < deadline:
            time.sleep(0.02)
        for n in nodes:
            if not _stopped(n.proc):
                _signal_group(n.proc, signal.SIGKILL)
        for n in nodes:
            try:
                n.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for n in nodes:
            if n._drain is not None:
                n._drain.join(timeout=2)
            if n.proc.stdout is not None:
                n.proc.stdout.close()
        left = [f"{n.role} pid {n.proc.pid}" for n in nodes if n.running]
        if not left:
            # ETL work dirs are tmpfs mounts: a SIGKILLed target leaves its own.
            unmount_below(self.base_dir)
        findings = self.log_findings()
        if remove_data is None:
            remove_data = self._own_dir
        if remove_data and not left and not findings:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        if left:
            raise ClusterError(f"nodes still running after SIGKILL: {', '.join(left)}")
        if findings:
            raise NodeLogError(
                "node logs have panics or unexpected ERROR lines (allow expected ones "
                "with Cluster.allow_log):\n" + "\n".join(findings)
            )

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ internals

    def _spawn(
        self,
        role: str,
        data_dir: Path,
        extra: List[str],
        mpaths: Optional[List[Path]] = None,
    ) -> Node:
        data_dir.mkdir(parents=True, exist_ok=True)
        log_path = data_dir / "node.log"
        cmd = [
            str(self.bin_dir / "aisnode"),
            "--role",
            role,
            "--port",
            "0",
            "--data",
            str(data_dir),
            *extra,
        ]
        env = dict(os.environ)
        env.update(self.env)
        env["AIS_DIE_WITH_PARENT"] = "1"
        env[TOKEN_ENV] = uuid.uuid4().hex
        env.setdefault("AIS_PYTHON", sys.executable)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                text=True,
                bufsize=1,
                start_new_session=True,
            )
        node = Node(
            role=role,
            data_dir=data_dir,
            proc=proc,
            log_path=log_path,
            mpaths=list(mpaths or []),
        )
        ready: "queue.Queue[str]" = queue.Queue()
        assert proc.stdout is not None
        node._drain = threading.Thread(
            target=_drain_stdout,
            args=(proc.stdout, node, ready),
            name=f"aisnode-{role}-{proc.pid}-stdout",
            daemon=True,
        )
        node._drain.start()
        # The first proxy is the primary; later ones are kept by add_proxy.
        primary = role == "proxy" and self.proxy is None
        if primary:
            self.proxy = node
        try:
            line = ready.get(timeout=READY_TIMEOUT_S)
        except queue.Empty:
            line = None
        if not line:
            if role == "target":
                self.targets.append(node)  # so stop() reaps it
            elif not primary:
                self.proxies.append(node)
            why = "timed out" if line is None else f"exited ({proc.poll()})"
            raise ClusterError(
                f"{role} in {data_dir} did not print {READY_MARKER} ({why}); "
                f"log tail:\n{node.log_tail()}"
            )
        parts = line.split()
        if len(parts) != 4 or parts[1] != role:
            raise ClusterError(f"unexpected ready line from {role}: {line!r}")
        node.node_id, node.url = parts[2], parts[3]
        return node

    def _wait_for_targets(self) -> None:
        deadline = time.monotonic() + CLUSTER_TIMEOUT_S
        last: object = None
        while time.monotonic() < deadline:
            for n in self.nodes:
                if not n.running:
                    raise ClusterError(
                        f"{n.role} {n.node_id} exited ({n.proc.poll()}); "
                        f"log tail:\n{n.log_tail()}"
                    )
            try:
                smap = self.smap()
                tmap = smap.get("tmap") or {}
                last = sorted(tmap)
                if len(tmap) == self.num_targets:
                    want = {t.node_id for t in self.targets}
                    if set(tmap) != want:
                        raise ClusterError(
                            f"smap tmap {sorted(tmap)} != started {sorted(want)}"
                        )
                    # Each target answers health once it has applied the join reply.
                    if all(_healthy(t.url) for t in self.targets):
                        return
            except (OSError, ValueError) as e:
                last = e
            time.sleep(0.1)
        logs = "\n".join(
            f"--- {n.role} {n.node_id}:\n{n.log_tail(15)}" for n in self.nodes
        )
        raise ClusterError(
            f"only {last} of {self.num_targets} targets joined within "
            f"{CLUSTER_TIMEOUT_S:.0f} s\n{logs}"
        )
