//! `runtime.command` ETLs: the user's own transformer HTTP server, run as a
//! local process per target and driven with AIStore's transformer contract
//! (`GET /health` readiness; hpush = `PUT /<bucket>/<object>` with the object
//! as body, hpull = `GET /<escaped uname>`, the server reading the object
//! back from `AIS_TARGET_URL` — `etl_fqn` only ever names a private copy in
//! the server's work dir (the SDK's `direct_file_access`): a sandboxed
//! server cannot read the store; `etl_args` in the query; `ws://` = the
//! SDK FastAPIServer's `/ws` protocol over persistent websockets). The server learns its port from `PORT` / `AIS_ETL_PORT`
//! (containers used a fixed 8000; several targets share this host) and the
//! target's object endpoint from `AIS_TARGET_URL`.

use crate::logs::LogSink;
use crate::procs::{Proc, Tracker};
use crate::spec::Comm;
use crate::EtlError;
use ais_core::paths::{escape_path, escape_segment};
use bytes::Bytes;
use std::time::{Duration, Instant};

pub struct ServerCfg {
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub workdir: String,
    pub comm: Comm,
    pub ready_timeout: Duration,
    /// `<target url>/v1/etl/_object/<etl>`: the server reads an object back
    /// at this URL + the path of the request it got (`/<token>/<uname>`);
    /// the token is good for that object, during that request only.
    pub target_url: String,
    /// Where the server process is recorded while it lives.
    pub tracker: Tracker,
    /// The OS sandbox the server runs in (host network).
    pub sandbox: Option<std::sync::Arc<crate::sandbox::Sandbox>>,
    /// The largest answer taken from the server (`ws://` messages).
    pub max_output: Option<u64>,
}

type WsConn =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Idle websockets kept open to one server (more are opened while more
/// exchanges run at once, and closed after).
const MAX_IDLE_WS: usize = 32;

/// An idle websocket older than this is not reused (servers ping idle
/// ones and close those that do not answer; nothing reads them while idle).
const WS_IDLE_MAX: Duration = Duration::from_secs(10);

pub struct CommandServer {
    /// Killed (with its process group) and forgotten on stop or drop.
    proc: std::sync::Mutex<Proc>,
    pid: u32,
    base: String,
    /// The SDK's `direct_file_access` (`ETL_DIRECT_FQN=true` in the spec's
    /// env): the server is given a file to read (`etl_fqn`), a private copy
    /// the node writes into the server's work dir, never a store path.
    direct_fqn: Option<std::path::PathBuf>,
    http: reqwest::Client,
    comm: Comm,
    /// Read-back tokens of the hpull requests in flight: token -> uname.
    tokens: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// `ws://`: open websockets not in use (each carries one exchange at a
    /// time, as the server's protocol is request, then answer).
    ws_idle: std::sync::Mutex<Vec<(Instant, WsConn)>>,
    max_output: Option<u64>,
}

/// A private copy of an object in the server's work dir (`direct_fqn`),
/// removed when the exchange ends. Written beneath the directory the node
/// made, never through anything the server planted there.
struct PrivateCopy(
    std::path::PathBuf,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
);

impl PrivateCopy {
    async fn new(workdir: &std::path::Path, data: Vec<u8>) -> Result<Self, EtlError> {
        use std::sync::atomic::Ordering;
        let name = format!(".ais-obj-{}", ais_core::gen_id(16));
        // The guard first: a write that fails half-way (the work dir is
        // size-capped) is removed, and so is one that finishes after its
        // request was cancelled (the writer sees the guard gone).
        let gone = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let copy = Self(workdir.join(&name), gone.clone());
        let (dir, rel, path) = (
            workdir.to_path_buf(),
            std::path::PathBuf::from(&name),
            copy.0.clone(),
        );
        let written = tokio::task::spawn_blocking(move || {
            let r = crate::untrusted::write_beneath(&dir, &rel, &data);
            if gone.load(Ordering::SeqCst) {
                let _ = std::fs::remove_file(&path);
            }
            r
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(copy),
            Ok(Err(e)) => Err(EtlError::Internal(format!(
                "private copy for the transformer: {e}"
            ))),
            Err(e) => Err(EtlError::Internal(e.to_string())),
        }
    }
}

impl Drop for PrivateCopy {
    fn drop(&mut self) {
        self.1.store(true, std::sync::atomic::Ordering::SeqCst);
        // unlink never follows a link the server may have put in its place.
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Removes a read-back token when its request ends (also on a timeout or
/// an error).
struct TokenGuard<'a>(&'a CommandServer, String);

impl Drop for TokenGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.0.tokens.lock() {
            m.remove(&self.1);
        }
    }
}

fn free_port() -> Result<u16, EtlError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| EtlError::Init(format!("no free port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| EtlError::Init(e.to_string()))
}

impl CommandServer {
    pub async fn start(cfg: &ServerCfg, log: &LogSink) -> Result<CommandServer, EtlError> {
        let port = free_port()?;
        let command = substitute_port(&cfg.command, port);
        let Some((exe, args)) = command.split_first() else {
            return Err(EtlError::Invalid("runtime.command is empty".into()));
        };
        // A clean environment: nothing of the target's reaches user code.
        let mut cmd = crate::procs::clean_command(exe, &[]);
        cmd.args(args)
            .current_dir(&cfg.workdir)
            .env("PORT", port.to_string())
            .env("AIS_ETL_PORT", port.to_string())
            .env("AIS_TARGET_URL", &cfg.target_url)
            .env("DIRECT_PUT", "false");
        for (k, v) in &cfg.env {
            cmd.env(k, v);
        }
        let mut proc =
            crate::procs::spawn_isolated(&mut cmd, None, &cfg.tracker, log, cfg.sandbox.as_deref())
                .map_err(|e| {
                    EtlError::Init(format!("cannot start runtime.command {command:?}: {e}"))
                })?;
        let pid = proc.id.pid;
        crate::logs::capture_output(&mut proc.child, log);
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| EtlError::Internal(e.to_string()))?;
        let server = CommandServer {
            proc: std::sync::Mutex::new(proc),
            pid,
            base,
            direct_fqn: cfg
                .env
                .iter()
                .any(|(k, v)| k == "ETL_DIRECT_FQN" && parse_bool(v))
                .then(|| std::path::PathBuf::from(&cfg.workdir)),
            http,
            comm: cfg.comm,
            tokens: Default::default(),
            ws_idle: Default::default(),
            max_output: cfg.max_output,
        };
        let deadline = Instant::now() + cfg.ready_timeout;
        loop {
            if let Ok(r) = server
                .http
                .get(format!("{}/health", server.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                if r.status().is_success() {
                    return Ok(server);
                }
            }
            if let Some(st) = server.exited() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let tail: Vec<String> = log
                    .text()
                    .lines()
                    .rev()
                    .take(10)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                return Err(EtlError::Init(format!(
                    "transformer command exited before it was ready ({st}):\n{}",
                    tail.join("\n")
                )));
            }
            if Instant::now() > deadline {
                server.stop();
                return Err(EtlError::Init(format!(
                    "transformer command did not answer GET /health on $PORT ({port}) within {:?}",
                    cfg.ready_timeout
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Transforms `bucket/obj` stored at `path`.
    pub async fn call(
        &self,
        bucket: &str,
        obj: &str,
        path: &str,
        args: &str,
        timeout: Duration,
    ) -> Result<Bytes, EtlError> {
        if self.comm != Comm::Hpull {
            let data = tokio::fs::read(path)
                .await
                .map_err(|e| EtlError::Internal(format!("read {path}: {e}")))?;
            return self.call_bytes(bucket, obj, data, args, timeout).await;
        }
        self.send(bucket, obj, None, args, timeout).await
    }

    /// Whether the server takes an object's bytes from the target
    /// (`hpull` servers read it back by name instead).
    pub fn takes_bytes(&self) -> bool {
        self.comm != Comm::Hpull
    }

    /// Transforms `data` (the bytes of `bucket/obj`): hpush, io or ws.
    pub async fn call_bytes(
        &self,
        bucket: &str,
        obj: &str,
        data: Vec<u8>,
        args: &str,
        timeout: Duration,
    ) -> Result<Bytes, EtlError> {
        match self.comm {
            Comm::Ws => self.call_ws(bucket, obj, data, args, timeout).await,
            Comm::Hpull => Err(EtlError::Internal(
                "an hpull transformer reads objects back by name, not bytes".into(),
            )),
            Comm::Hpush | Comm::Io => self.send(bucket, obj, Some(data), args, timeout).await,
        }
    }

    /// One HTTP exchange: hpush (`data`: PUT it) or hpull (`None`: the
    /// server GETs the object back with a token for this request).
    async fn send(
        &self,
        bucket: &str,
        obj: &str,
        data: Option<Vec<u8>>,
        args: &str,
        timeout: Duration,
    ) -> Result<Bytes, EtlError> {
        let mut _token = None;
        let mut _copy = None;
        let req = match data {
            None => {
                let uname = format!("ais/@#/{bucket}/{obj}");
                // A token for this object and this request: the server (host
                // network, readable environment) holds no standing credential.
                let token = ais_core::gen_id(32);
                if let Ok(mut m) = self.tokens.lock() {
                    m.insert(token.clone(), uname.clone());
                }
                let url = format!("{}/{token}/{}", self.base, escape_segment(&uname));
                _token = Some(TokenGuard(self, token));
                self.http.get(url).query(&[("etl_args", args)])
            }
            Some(data) => {
                let url = format!("{}/{bucket}/{}", self.base, escape_path(obj));
                match &self.direct_fqn {
                    Some(dir) => {
                        let copy = PrivateCopy::new(dir, data).await?;
                        let fqn = copy.0.to_string_lossy().to_string();
                        _copy = Some(copy);
                        self.http
                            .put(url)
                            .query(&[("etl_args", args), ("etl_fqn", &fqn)])
                            .body(Vec::new())
                    }
                    None => self.http.put(url).query(&[("etl_args", args)]).body(data),
                }
            }
        };
        let resp = match tokio::time::timeout(timeout, req.send()).await {
            Err(_) => return Err(EtlError::Timeout(timeout)),
            Ok(Err(e)) => {
                return Err(EtlError::WorkerDied(match self.exited() {
                    Some(st) => format!("transformer server exited ({st})"),
                    None => format!("transformer server unreachable: {e}"),
                }));
            }
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        // Read by chunks up to the output cap: the server is user code.
        let max = self.max_output.unwrap_or(u64::MAX);
        let read = async {
            use futures::StreamExt;
            let mut body = bytes::BytesMut::new();
            let mut stream = resp.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| {
                    EtlError::WorkerDied(format!("reading transformer response: {e}"))
                })?;
                if body.len() as u64 + chunk.len() as u64 > max {
                    return Err(EtlError::Limit(format!(
                        "the transformer answered more than {max} bytes (AIS_ETL_MAX_OUTPUT)"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body.freeze())
        };
        let body = tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| EtlError::Timeout(timeout))??;
        if status.is_success() {
            Ok(body)
        } else {
            Err(EtlError::Transform {
                etype: format!("transformer HTTP {}", status.as_str()),
                emsg: String::from_utf8_lossy(&body).trim().to_string(),
                trace: String::new(),
            })
        }
    }

    /// One `ws://` exchange (the SDK's FastAPIServer `/ws` protocol): a
    /// binary JSON control message (`path`, `etl_args`; `fqn` only of a
    /// private copy: the server cannot read the store), the object as one
    /// binary message (none with `fqn`);
    /// the answer is the output (binary) or an error (text). A websocket
    /// that failed or timed out is closed, never reused.
    async fn call_ws(
        &self,
        bucket: &str,
        obj: &str,
        data: Vec<u8>,
        args: &str,
        timeout: Duration,
    ) -> Result<Bytes, EtlError> {
        let mut ctrl = serde_json::json!({"path": format!("{bucket}/{obj}"), "etl_args": args});
        let (_copy, data) = match &self.direct_fqn {
            Some(dir) => {
                let copy = PrivateCopy::new(dir, data).await?;
                ctrl["fqn"] = copy.0.to_string_lossy().into();
                (Some(copy), None)
            }
            None => (None, Some(Bytes::from(data))),
        };
        let ctrl = Bytes::from(ctrl.to_string().into_bytes());
        // An idle socket the server may have closed meanwhile: if it fails,
        // once more on a fresh one.
        let idle = self.take_idle_ws();
        let reused = idle.is_some();
        let mut ws = match idle {
            Some(ws) => ws,
            None => self.connect_ws(timeout).await?,
        };
        let mut answer = tokio::time::timeout(timeout, ws_exchange(&mut ws, &ctrl, &data)).await;
        if reused && matches!(answer, Ok(Err(_))) {
            ws = self.connect_ws(timeout).await?;
            answer = tokio::time::timeout(timeout, ws_exchange(&mut ws, &ctrl, &data)).await;
        }
        let answer = match answer {
            Err(_) => return Err(EtlError::Timeout(timeout)),
            Ok(Err(e)) => return Err(self.died(format!("transformer websocket: {e}"))),
            Ok(Ok(a)) => a,
        };
        if let Ok(mut v) = self.ws_idle.lock() {
            if v.len() < MAX_IDLE_WS {
                v.push((Instant::now(), ws));
            }
        }
        answer
    }

    /// An idle websocket used recently enough to be still open (servers
    /// close idle ones, e.g. uvicorn after a missed ping); older ones are
    /// dropped.
    fn take_idle_ws(&self) -> Option<WsConn> {
        let mut v = self.ws_idle.lock().ok()?;
        while let Some((at, ws)) = v.pop() {
            if at.elapsed() < WS_IDLE_MAX {
                return Some(ws);
            }
        }
        None
    }

    async fn connect_ws(&self, timeout: Duration) -> Result<WsConn, EtlError> {
        let mut cfg = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
        let max = self.max_output.map(|m| m as usize);
        cfg.max_message_size = max.or(cfg.max_message_size);
        cfg.max_frame_size = max.or(cfg.max_frame_size);
        let url = format!("{}/ws", self.base.replacen("http://", "ws://", 1));
        match tokio::time::timeout(
            timeout,
            tokio_tungstenite::connect_async_with_config(url, Some(cfg), true),
        )
        .await
        {
            Err(_) => Err(EtlError::Timeout(timeout)),
            Ok(Err(e)) => Err(self.died(format!("transformer websocket: {e}"))),
            Ok(Ok((ws, _))) => Ok(ws),
        }
    }

    fn died(&self, what: String) -> EtlError {
        EtlError::WorkerDied(match self.exited() {
            Some(st) => format!("transformer server exited ({st})"),
            None => what,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether `token` is a read-back token of a request in flight for `uname`.
    pub fn token_ok(&self, token: &str, uname: &str) -> bool {
        self.tokens
            .lock()
            .is_ok_and(|m| m.get(token).is_some_and(|u| u == uname))
    }

    /// The server's exit status, once it exited (reaps it).
    fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut p = self.proc.lock().unwrap_or_else(|e| e.into_inner());
        p.child.try_wait().ok().flatten()
    }

    /// SIGKILL to the server's process group now; forgets it in the registry.
    pub fn stop(&self) {
        self.proc.lock().unwrap_or_else(|e| e.into_inner()).kill();
    }
}

/// The SDK's `parse_bool` (Go's `cos.ParseBool`): what its servers take
/// for true, the node must too.
fn parse_bool(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "t" | "true" | "y" | "yes" | "on"
    )
}

/// One request, one answer on `ws`: the control message, the object's
/// bytes (none when the server reads a private copy); the output (binary)
/// or the server's error (text).
async fn ws_exchange(
    ws: &mut WsConn,
    ctrl: &Bytes,
    data: &Option<Bytes>,
) -> Result<Result<Bytes, EtlError>, tokio_tungstenite::tungstenite::Error> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::Binary(ctrl.clone())).await?;
    if let Some(data) = data {
        ws.send(Message::Binary(data.clone())).await?;
    }
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => return Ok(Ok(b)),
            Some(Ok(Message::Text(t))) => {
                return Ok(Err(EtlError::Transform {
                    etype: "transformer".into(),
                    emsg: t.trim().to_string(),
                    trace: String::new(),
                }))
            }
            Some(Ok(Message::Close(_))) | None => {
                return Err(tokio_tungstenite::tungstenite::Error::ConnectionClosed)
            }
            Some(Ok(_)) => continue, // ping, pong
            Some(Err(e)) => return Err(e),
        }
    }
}

/// Containers listened on a fixed 8000; here each target's server gets its
/// own port: `$PORT`/`${PORT}` arguments and `--port 8000` become that port.
fn substitute_port(cmd: &[String], port: u16) -> Vec<String> {
    let p = port.to_string();
    let mut out: Vec<String> = Vec::with_capacity(cmd.len());
    for a in cmd {
        let a = a.replace("${PORT}", &p).replace("$PORT", &p);
        if a == "8000" && out.last().is_some_and(|prev| prev == "--port") {
            out.push(p.clone());
        } else if a == "--port=8000" {
            out.push(format!("--port={p}"));
        } else {
            out.push(a);
        }
    }
    out
}

impl Drop for CommandServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_are_substituted() {
        let c: Vec<String> = [
            "uvicorn",
            "app:a",
            "--port",
            "8000",
            "--x=$PORT",
            "--port=8000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            super::substitute_port(&c, 1234),
            vec![
                "uvicorn",
                "app:a",
                "--port",
                "1234",
                "--x=1234",
                "--port=1234"
            ]
        );
    }
}
