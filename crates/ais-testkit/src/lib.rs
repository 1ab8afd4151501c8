//! Real clusters for tests and benchmarks: starts `aisnode` processes (one
//! primary proxy + N targets) on loopback ephemeral ports with their own temp
//! data dirs, and can kill, restart and add nodes. Every process is killed
//! when the [`Cluster`] is dropped (and gets a parent-death signal besides).

use anyhow::{bail, Context};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Standard base64 (for ETL code in init messages; keeps tests dependency-free).
pub fn b64(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in s.as_bytes().chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            out.push(if i <= c.len() {
                T[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// Directory holding the `aisnode` and `ais` binaries.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("AIS_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// One HTTP/1.0 request over a plain socket, byte-exact (no URL
/// normalisation: `..` and `%2e%2e` reach the server as written). Returns
/// status and body. Usable from sync and async code alike.
pub fn raw_http(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<(u16, Vec<u8>)> {
    let (status, _, body) = raw_http_full(base, method, path, headers, body)?;
    Ok((status, body))
}

/// Status, headers (lower-cased names) and body.
pub type RawResponse = (u16, Vec<(String, String)>, Vec<u8>);

/// Like [`raw_http`], also returning the response headers (lower-cased names).
pub fn raw_http_full(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<RawResponse> {
    use std::io::{Read, Write};
    let hostport = base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(hostport)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {hostport}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("malformed HTTP response")?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .context("no status line")?;
    let hdrs = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, hdrs, buf[split + 4..].to_vec()))
}

pub struct NodeProc {
    pub child: Option<Child>,
    pub url: String,
    pub id: String,
    pub data: PathBuf,
    args: Vec<String>,
}

impl NodeProc {
    fn spawn(args: Vec<String>, data: PathBuf, env: &[(String, String)]) -> anyhow::Result<Self> {
        let exe = bin("aisnode");
        if !exe.exists() {
            bail!(
                "{} not found: run `cargo build --bins` first (or set AIS_BIN_DIR)",
                exe.display()
            );
        }
        std::fs::create_dir_all(&data)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data.join("node.log"))?;
        let mut cmd = Command::new(&exe);
        cmd.args(&args)
            .env("AIS_DIE_WITH_PARENT", "1")
            .env(
                "AIS_LOG",
                std::env::var("AIS_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawn {}", exe.display()))?;
        let out = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            for l in lines.by_ref().map_while(Result::ok) {
                if l.starts_with("AISNODE_READY") {
                    let _ = tx.send(l);
                    break;
                }
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(data.join("node.log")).unwrap_or_default();
                bail!("aisnode {args:?} did not start:\n{log}");
            }
        };
        let parts: Vec<&str> = line.split_whitespace().collect();
        Ok(Self {
            child: Some(child),
            id: parts.get(2).unwrap_or(&"").to_string(),
            url: parts.get(3).unwrap_or(&"").to_string(),
            data,
            args,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn signal(&mut self, sig: i32) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGKILL, as in a crash.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
    }

    /// SIGTERM, an orderly stop.
    pub fn stop(&mut self) {
        self.signal(libc::SIGTERM);
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.join("node.log")).unwrap_or_default()
    }

    fn port(&self) -> String {
        self.url.rsplit(':').next().unwrap_or("0").to_string()
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Cluster {
    pub proxy: NodeProc,
    pub targets: Vec<NodeProc>,
    pub env: Vec<(String, String)>,
    // Dropped last: the data must outlive the processes.
    pub dir: tempfile::TempDir,
}

#[derive(Clone, Debug)]
pub struct Opts {
    pub targets: usize,
    pub mpaths: usize,
    pub env: Vec<(String, String)>,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            targets: 3,
            mpaths: 1,
            env: Vec::new(),
        }
    }
}

impl Cluster {
    pub fn start(targets: usize) -> anyhow::Result<Self> {
        Self::start_with(Opts {
            targets,
            ..Default::default()
        })
    }

    pub fn start_with(opts: Opts) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("ais-test-").tempdir()?;
        let pdata = dir.path().join("proxy");
        let proxy = NodeProc::spawn(
            vec![
                "--role".into(),
                "proxy".into(),
                "--port".into(),
                "0".into(),
                "--data".into(),
                pdata.display().to_string(),
                "--keepalive-timeout".into(),
                "2".into(),
            ],
            pdata,
            &opts.env,
        )?;
        let mut c = Self {
            proxy,
            targets: Vec::new(),
            env: opts.env.clone(),
            dir,
        };
        for _ in 0..opts.targets {
            c.spawn_target(opts.mpaths)?;
        }
        c.wait_targets(opts.targets)?;
        Ok(c)
    }

    fn spawn_target(&mut self, mpaths: usize) -> anyhow::Result<usize> {
        let i = self.targets.len();
        let tdata = self.dir.path().join(format!("target{}", i + 1));
        let mut args: Vec<String> = vec![
            "--role".into(),
            "target".into(),
            "--port".into(),
            "0".into(),
            "--data".into(),
            tdata.display().to_string(),
            "--join".into(),
            self.proxy.url.clone(),
        ];
        for m in 0..mpaths {
            args.push("--mpath".into());
            args.push(tdata.join(format!("mp{}", m + 1)).display().to_string());
        }
        let t = NodeProc::spawn(args, tdata, &self.env)?;
        self.targets.push(t);
        Ok(i)
    }

    /// Starts one more target and waits until the proxy has it in the map.
    pub fn add_target(&mut self) -> anyhow::Result<usize> {
        let i = self.spawn_target(1)?;
        self.wait_targets(self.targets.len())?;
        Ok(i)
    }

    pub fn url(&self) -> &str {
        &self.proxy.url
    }

    pub fn client(&self) -> ais_client::Client {
        ais_client::Client::new(&self.proxy.url)
    }

    /// Smap as JSON, straight from the proxy.
    pub fn smap(&self) -> anyhow::Result<serde_json::Value> {
        let (status, body) = raw_http(&self.proxy.url, "GET", "/v1/daemon?what=smap", &[], b"")?;
        if status != 200 {
            bail!("smap: HTTP {status}");
        }
        Ok(serde_json::from_slice(&body)?)
    }

    pub fn target_count(&self) -> usize {
        self.smap()
            .ok()
            .and_then(|s| s["tmap"].as_object().map(|m| m.len()))
            .unwrap_or(0)
    }

    /// Waits until the proxy's map has exactly `n` targets and all of them answer health.
    pub fn wait_targets(&self, n: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let healthy = || {
                self.targets.iter().filter(|t| t.child.is_some()).all(|t| {
                    matches!(
                        raw_http(&t.url, "GET", "/v1/health", &[], b""),
                        Ok((200, _))
                    )
                })
            };
            if self.target_count() == n && healthy() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "cluster did not reach {n} targets (has {}); proxy log:\n{}",
            self.target_count(),
            self.proxy.log()
        )
    }

    /// Restarts target `i` with the same data dir and port.
    pub fn restart_target(&mut self, i: usize) -> anyhow::Result<()> {
        let old = &mut self.targets[i];
        old.kill();
        let mut args = old.args.clone();
        let port = old.port();
        if let Some(p) = args.iter().position(|a| a == "--port") {
            args[p + 1] = port;
        }
        let data = old.data.clone();
        let fresh = NodeProc::spawn(args, data, &self.env)?;
        self.targets[i] = fresh;
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for t in &mut self.targets {
            t.kill();
        }
        self.proxy.kill();
    }
}
