//! Test helpers: a tiny fake worker speaking the worker protocol on fd 3
//! (u32 big-endian header length, JSON header, payload), steered per request
//! by `args` and at start-up by `AIS_ETL_WORKER_CONFIG`'s `start`.

use crate::worker::WorkerCfg;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const FAKE_WORKER: &str = r#"
import json, os, socket, struct, sys, time

cfg = json.loads(os.environ.get("AIS_ETL_WORKER_CONFIG") or "{}")
sock = socket.socket(fileno=3)

def send(h, payload=b""):
    raw = json.dumps(h).encode()
    sock.sendall(struct.pack(">I", len(raw)) + raw + payload)

def recv(n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            sys.exit(0)
        buf += chunk
    return buf

start = cfg.get("start", "ok")
if start == "raise":
    send({"id": 0, "ok": False, "etype": "SyntaxError", "emsg": "invalid syntax (code.py, line 1)",
          "trace": "Traceback (most recent call last):\n  File \"code.py\", line 1\nSyntaxError: invalid syntax"})
    sys.exit(0)
if start == "exit":
    print("ModuleNotFoundError: No module named 'nope'", file=sys.stderr, flush=True)
    sys.exit(1)
if start == "hang":
    time.sleep(3600)
send({"id": 0, "ok": True, "ready": True, "pid": os.getpid()})

while True:
    (n,) = struct.unpack(">I", recv(4))
    req = json.loads(recv(n))
    data = recv(req["len"]) if req.get("len") else (req.get("path") or "").encode()
    a = req.get("args") or ""
    if a == "hang":
        time.sleep(3600)
    elif a == "exit":
        os._exit(3)
    elif a == "oversize":
        sock.sendall(struct.pack(">I", 0xFFFFFFF0))
        time.sleep(3600)
    elif a == "huge_payload":
        send({"id": req["id"], "ok": True, "len": 1 << 62}, b"only a few bytes")
        os._exit(0)
    elif a == "raise":
        send({"id": req["id"], "ok": False, "etype": "ValueError", "emsg": "bad input",
              "trace": "Traceback (most recent call last):\nValueError: bad input"})
    elif a == "pid":
        out = str(os.getpid()).encode()
        send({"id": req["id"], "ok": True, "len": len(out)}, out)
    else:
        send({"id": req["id"], "ok": True, "len": len(data)}, data)
"#;

/// A temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "ais-etl-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A config starting the fake worker (in `dir`) with start-up behaviour `start`.
pub fn fake_cfg(dir: &TempDir, start: &str) -> WorkerCfg {
    let script = dir.path().join("fake_worker.py");
    std::fs::write(&script, FAKE_WORKER).unwrap();
    WorkerCfg {
        python: "python3".into(),
        script: script.display().to_string(),
        config: serde_json::json!({ "start": start }).to_string(),
        env: Vec::new(),
        workdir: dir.path().display().to_string(),
        ready_timeout: Duration::from_secs(10),
        tracker: Default::default(),
        sandbox: None,
        max_output: None,
        gpus: Vec::new(),
    }
}

/// Whether a process runs (exists and is not a zombie).
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, r)| r.trim().chars().next());
    !matches!(state, Some('Z') | Some('X') | None)
}

/// Polls `cond` until it holds or `within` passes.
pub async fn wait_for(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
