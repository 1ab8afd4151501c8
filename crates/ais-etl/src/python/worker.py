"""aistore-rs ETL worker: one persistent Python process of a target's pool.

Imports the user's code once, then serves transform requests framed over
file descriptor 3 (a Unix socket to the target):

    request:  u32 header length (big-endian) + JSON header + payload bytes
    response: u32 header length (big-endian) + JSON header + payload bytes

Request header: {"id", "path", "len", "args"} — the object's "len" bytes
follow the header: the target reads the object, the worker (sandboxed: its own
uid, no view of the store) never opens store files. "path" is informational
only (the object's name, e.g. "ais://bucket/obj"). Functions declared with
``arg_type: fqn`` get the path of a private temporary copy instead of bytes.
Response header: {"id", "ok", "len"} or {"id", "ok": false, "etype", "emsg",
"trace"}.

Batches: {"id", "batch": [{"path", "len", "args"}, ...]} followed by every
item's bytes; answered with {"id", "ok": true, "batch": [{"ok", "len"} or
{"ok": false, "etype", "emsg", "trace"}, ...]} followed by the outputs of the
items that succeeded. A module that defines ``transform_batch(items)`` (items:
a list of ``(path, data, etl_args)``; returns a list of bytes, where an
Exception instance in place of bytes fails that item alone) gets the whole
batch in one call; otherwise ``transform`` runs per item. The ready message
says ``"batch": true`` when ``transform_batch`` exists.

Code forms:
  func    a module with transform(data) or transform(data, path, etl_args)
  io      a stdin->stdout script (AIStore's io://): top-level code (imports,
          pipeline construction) runs once; each object runs the script's
          `if __name__ == "__main__":` block with sys.stdin/sys.stdout bound
          to the object and the result. A script without such a block is
          re-executed whole per object (imports stay cached).
  fresh   io scripts that must run in a fresh process per object.
  class   an SDK init_class() payload (cloudpickled ETLServer subclass).
"""

import ast
import base64
import inspect
import io
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import traceback
import types

PROTO_FD = 3


def _watch_parent(ppid: int) -> None:
    """Exit as soon as the target that started us is gone (no orphans)."""
    import time

    while True:
        time.sleep(0.5)
        if os.getppid() != ppid:
            os._exit(70)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise EOFError
        got += k
    return bytes(buf)


def _send(sock: socket.socket, header: dict, payload: bytes = b"") -> None:
    raw = json.dumps(header).encode()
    sock.sendall(struct.pack(">I", len(raw)) + raw)
    if payload:
        sock.sendall(payload)


def _trace_tail(limit: int = 12) -> str:
    """The traceback of the current exception without this worker's own frames."""
    et, ev, tb = sys.exc_info()
    te = traceback.TracebackException(et, ev, tb)
    te.stack = traceback.StackSummary.from_list([f for f in te.stack if f.filename != __file__])
    lines = "".join(te.format()).rstrip().splitlines()
    return "\n".join(lines[-limit:])


class _Exit(Exception):
    pass


class IoScript:
    """Runs an io:// script's main block per object inside this process."""

    def __init__(self, path: str) -> None:
        with open(path, "rb") as f:
            src = f.read()
        tree = ast.parse(src, filename=path)
        body, main = [], []
        for node in tree.body:
            if _is_main_guard(node):
                main.extend(node.body)
            else:
                body.append(node)
        self.module = types.ModuleType("ais_etl_script")
        self.module.__file__ = path
        sys.modules["ais_etl_script"] = self.module
        self.globals = self.module.__dict__
        if main:
            # Import-time work happens once, here.
            setup = ast.Module(body=body, type_ignores=[])
            exec(compile(setup, path, "exec"), self.globals)
            self.per_object = compile(ast.Module(body=main, type_ignores=[]), path, "exec")
            self.fresh_globals = False
        else:
            self.per_object = compile(tree, path, "exec")
            self.fresh_globals = True
        self.globals["__name__"] = "__main__"

    def run(self, data: bytes) -> bytes:
        out = io.BytesIO()
        stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="surrogateescape")
        stdout = io.TextIOWrapper(out, encoding="utf-8", errors="surrogateescape", write_through=True)
        saved = sys.stdin, sys.stdout
        sys.stdin, sys.stdout = stdin, stdout
        g = dict(self.globals) if self.fresh_globals else self.globals
        try:
            try:
                exec(self.per_object, g)
            except SystemExit as e:
                if e.code not in (None, 0):
                    raise RuntimeError(f"script exited with status {e.code}") from None
            stdout.flush()
        finally:
            sys.stdin, sys.stdout = saved
        return out.getvalue()


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If):
        return False
    t = node.test
    if not isinstance(t, ast.Compare) or len(t.ops) != 1 or not isinstance(t.ops[0], ast.Eq):
        return False
    sides = [t.left, t.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(consts) == 1


class FreshProcess:
    """AIStore's model: `python code.py` per object, stdin -> stdout."""

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout

    def run(self, data: bytes) -> bytes:
        p = subprocess.run(
            [sys.executable, self.path],
            input=data,
            capture_output=True,
            timeout=self.timeout or None,
        )
        if p.stderr:
            sys.stderr.write(p.stderr.decode(errors="replace"))
        if p.returncode != 0:
            tail = p.stderr.decode(errors="replace").strip().splitlines()[-12:]
            raise RuntimeError(f"script exited with status {p.returncode}:\n" + "\n".join(tail))
        return p.stdout


def _load_func(path: str, func: str):
    with open(path, "rb") as f:
        src = f.read()
    mod = types.ModuleType("code")
    mod.__file__ = path
    sys.modules["code_etl"] = mod
    exec(compile(src, path, "exec"), mod.__dict__)
    fn = getattr(mod, func, None)
    if fn is None or not callable(fn):
        raise AttributeError(
            f"the code defines no function {func!r} (define `def {func}(data): ...` "
            "returning bytes, or use --comm-type io:// for a stdin->stdout script)"
        )
    return fn


def _arity(fn) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return 3
    return len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])


def _load_class(payload: str):
    try:
        import cloudpickle
    except ImportError as e:
        raise ImportError(
            "init_class ETLs need 'cloudpickle' (and the 'aistore' SDK) in the runtime environment: " + str(e)
        ) from None
    cls = cloudpickle.loads(base64.b64decode(payload))
    inst = cls.__new__(cls)
    try:
        inst.__init__()
    except Exception:  # ETLServer.__init__ may expect server settings; transform does not need them
        pass
    return inst


def _as_bytes(out) -> bytes:
    if out is None:
        return b""
    if isinstance(out, str):
        return out.encode()
    if not isinstance(out, (bytes, bytearray, memoryview)):
        raise TypeError(f"transform returned {type(out).__name__}, expected bytes")
    return bytes(out)


def _err(e: BaseException, trace: str = "") -> dict:
    return {"ok": False, "etype": type(e).__name__, "emsg": str(e), "trace": trace}


def _serve_batch(sock: socket.socket, req: dict, call, batch_fn, by_path: bool) -> None:
    """One batch request: every item's bytes follow the header, in order."""
    items = []
    for it in req["batch"]:
        data = _recv_exact(sock, it["len"]) if it.get("len") else b""
        items.append((it.get("path") or "", data, it.get("args") or ""))
    results: list = [None] * len(items)
    if batch_fn is not None and not by_path:
        try:
            outs = batch_fn(items)
            if not isinstance(outs, (list, tuple)) or len(outs) != len(items):
                raise TypeError(
                    f"transform_batch returned {type(outs).__name__} of {len(outs) if hasattr(outs, '__len__') else '?'} "
                    f"results for {len(items)} items, expected a list of the same length"
                )
            for k, out in enumerate(outs):
                if isinstance(out, BaseException):
                    results[k] = (_err(out), b"")
                else:
                    try:
                        results[k] = ({"ok": True}, _as_bytes(out))
                    except TypeError as e:
                        results[k] = (_err(e), b"")
        except BaseException as e:  # noqa: BLE001 - then per item, to find who failed
            if isinstance(e, KeyboardInterrupt):
                raise
            trace = _trace_tail()
            results = [None] * len(items) if call is not None else [(_err(e, trace), b"")] * len(items)
    for k, (path, data, args) in enumerate(items):
        if results[k] is not None:
            continue
        try:
            results[k] = ({"ok": True}, _as_bytes(call(data, path, args)))
        except BaseException as e:  # noqa: BLE001 - user code may raise anything
            if isinstance(e, KeyboardInterrupt):
                raise
            results[k] = (_err(e, _trace_tail()), b"")
    metas, payload = [], []
    for meta, out in results:
        meta = dict(meta)
        if meta["ok"]:
            meta["len"] = len(out)
            payload.append(out)
        metas.append(meta)
    body = b"".join(payload)
    _send(sock, {"id": req["id"], "ok": True, "len": len(body), "batch": metas}, body)
    sys.stdout.flush()
    sys.stderr.flush()


def main() -> None:
    cfg = json.loads(os.environ["AIS_ETL_WORKER_CONFIG"])
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    sock = socket.socket(fileno=PROTO_FD)
    mode = cfg["mode"]
    arg_fqn = cfg.get("arg_type") == "fqn"
    os.chdir(cfg.get("workdir") or os.getcwd())
    sys.path.insert(0, cfg.get("workdir") or os.getcwd())
    call = None
    batch_fn = None
    try:
        if mode == "io":
            runner = IoScript(cfg["code_path"])
            call = lambda data, path, args: runner.run(data)  # noqa: E731
        elif mode == "fresh":
            runner = FreshProcess(cfg["code_path"], cfg.get("obj_timeout", 0))
            call = lambda data, path, args: runner.run(data)  # noqa: E731
        elif mode == "class":
            inst = _load_class(os.environ.get("ETL_CLASS_PAYLOAD", ""))
            call = lambda data, path, args: inst.transform(data, path, args)  # noqa: E731
        else:
            fn = _load_func(cfg["code_path"], cfg.get("func") or "transform")
            batch_fn = getattr(sys.modules.get("code_etl"), "transform_batch", None)
            if not callable(batch_fn):
                batch_fn = None
            n = _arity(fn)
            if n >= 3:
                call = lambda data, path, args: fn(data, path, args)  # noqa: E731
            elif n == 2:
                call = lambda data, path, args: fn(data, path)  # noqa: E731
            else:
                call = lambda data, path, args: fn(data)  # noqa: E731
    except BaseException as e:  # noqa: BLE001 - report any import-time failure to the target
        _send(sock, {"id": 0, "ok": False, "etype": type(e).__name__, "emsg": str(e), "trace": _trace_tail(20)})
        return
    if mode == "class" and callable(getattr(inst, "transform_batch", None)):
        batch_fn = inst.transform_batch
    # The SDK's direct_file_access (ETL_DIRECT_FQN): the class's transform
    # takes a file path. It gets a private copy, never a path into the store.
    if mode == "class":
        direct = getattr(inst, "direct_fqn", None)
        if direct is None:
            direct = os.environ.get("ETL_DIRECT_FQN", "").strip().lower() in ("1", "true", "yes")
        arg_fqn = arg_fqn or bool(direct)
    by_path = arg_fqn and mode in ("func", "class")
    _send(
        sock,
        {
            "id": 0,
            "ok": True,
            "ready": True,
            "pid": os.getpid(),
            "python": sys.version.split()[0],
            "batch": batch_fn is not None and not by_path,
        },
    )
    while True:
        try:
            (hlen,) = struct.unpack(">I", _recv_exact(sock, 4))
            req = json.loads(_recv_exact(sock, hlen))
            data = _recv_exact(sock, req["len"]) if req.get("len") else b""
        except EOFError:
            return
        if "batch" in req:
            _serve_batch(sock, req, call, batch_fn, by_path)
            continue
        path = req.get("path") or ""
        tmp = None
        try:
            if by_path:
                # A private copy in the worker's own temp dir: the store is out of reach.
                import tempfile

                # The name's tail keeps its extension; bounded (a long name
                # must not make the file name too long).
                fd, tmp = tempfile.mkstemp(prefix="obj-", suffix="-" + os.path.basename(path)[-64:])
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                data = tmp
            out = call(data, path, req.get("args") or "")
            if out is None:
                out = b""
            elif isinstance(out, str):
                out = out.encode()
            elif not isinstance(out, (bytes, bytearray, memoryview)):
                raise TypeError(f"transform returned {type(out).__name__}, expected bytes")
            _send(sock, {"id": req["id"], "ok": True, "len": len(out)}, bytes(out))
        except BaseException as e:  # noqa: BLE001 - user code may raise anything; keep serving
            if isinstance(e, KeyboardInterrupt):
                raise
            _send(
                sock,
                {"id": req["id"], "ok": False, "etype": type(e).__name__, "emsg": str(e), "trace": _trace_tail()},
            )
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            sys.stdout.flush()
            sys.stderr.flush()


if __name__ == "__main__":
    main()
