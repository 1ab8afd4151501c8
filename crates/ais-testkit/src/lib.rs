//! Real clusters for tests and benchmarks: starts `aisnode` processes (one
//! primary proxy + N targets) on loopback ephemeral ports with their own temp
//! data dirs, and can kill, restart and add nodes. Processes are handled by
//! [`ais_proc`] (own process group, parent-death signal, SIGTERM then
//! SIGKILL); every one is killed when the [`Cluster`] is dropped.
//!
//! Each node's stderr (its log) goes to `<node dir>/node.log`. On drop (and
//! on [`Cluster::stop`]) every node log is scanned for `panicked at` and for
//! ` ERROR ` lines not matched by [`DEFAULT_LOG_ALLOW`] or
//! [`Cluster::allow_log`]; a finding fails the test.
//!
//! Scenario tests run one check over several cluster layouts ([`Shape`]:
//! one target, three, three with two mountpaths each, three restarted as a
//! whole between setup and checks); [`scenarios!`] makes one `#[test]` per
//! (shape, scenario) and [`run_scenario`] runs one.
//!
//! Multi-host mode ([`Opts::netns`], default `AIS_TEST_NETNS=1`): every
//! node in its own network namespace on its own address ([`netns`]).
//!
//! Binaries: `$AIS_BIN_DIR`, else the directory of the running test
//! executable (`target/<profile>`); in the latter case a binary older than
//! any source file it was built from (per cargo's `<bin>.d`) is refused —
//! run `cargo build --bins`.

pub mod rebal;

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

pub mod checks;
pub mod netns;

/// Substrings of ERROR log lines that are expected in some tests and never
/// fail one: an ETL from the cluster metadata that cannot start on a
/// (re)joining target. (Calibrated on every integration test in
/// `crates/ais-testkit/tests`: none needed more.)
pub const DEFAULT_LOG_ALLOW: &[&str] = &["failed to start ETL"];

/// Grace between SIGTERM and SIGKILL for an orderly stop.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A free loopback port, for processes that need a fixed one (a playground).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Processes whose command line mentions `path` (e.g. a cluster's data dir):
/// what a test checks is gone after a stop. Zombies do not count.
pub fn pids_mentioning(path: &Path) -> Vec<u32> {
    pids_where(|cmd| cmd.contains(path.to_string_lossy().as_ref()))
}

/// ETL worker processes of the target whose data dir is `data_dir`.
pub fn worker_pids(data_dir: &Path) -> Vec<u32> {
    let needle = data_dir.to_string_lossy().to_string();
    pids_where(|cmd| cmd.contains("ais_etl_worker.py") && cmd.contains(&needle))
}

/// Live (not zombie) processes whose command line satisfies `want`.
fn pids_where(want: impl Fn(&str) -> bool) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = state.split_whitespace().nth(2) == Some("Z");
            !zombie && want(&String::from_utf8_lossy(&cmd))
        })
        .collect()
}

/// Ctrl-C for a playground (or any supervisor started by a test): SIGINT,
/// wait up to `within` for a successful exit, then check that no process
/// mentioning `data` is left. Returns how long the stop took.
pub fn interrupt_and_reap(
    child: &mut Child,
    data: &Path,
    within: Duration,
) -> anyhow::Result<Duration> {
    let t = Instant::now();
    ais_proc::signal(child.id(), libc::SIGINT)?;
    loop {
        if let Some(st) = child.try_wait()? {
            if !st.success() {
                bail!("exit after SIGINT: {st}");
            }
            break;
        }
        if t.elapsed() > within {
            bail!("still running {within:?} after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = pids_mentioning(data);
    if !left.is_empty() {
        bail!("processes outlived it: {left:?}");
    }
    Ok(t.elapsed())
}

/// Creates an `ais://` bucket through the proxy at `url` (no async runtime needed).
pub fn create_bucket_at(url: &str, name: &str) -> anyhow::Result<()> {
    let (st, body) = raw_http(
        url,
        "POST",
        &format!("/v1/buckets/{name}?provider=ais"),
        &[],
        br#"{"action":"create-bck"}"#,
    )?;
    if st != 200 {
        bail!(
            "create bucket {name}: HTTP {st}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

/// Targets in the cluster map of the proxy at `url` (0 when it does not answer).
pub fn target_count_at(url: &str) -> usize {
    raw_http(url, "GET", "/v1/daemon?what=smap", &[], b"")
        .ok()
        .filter(|(st, _)| *st == 200)
        .and_then(|(_, b)| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["tmap"].as_object().map(|m| m.len()))
        .unwrap_or(0)
}

/// Standard base64 (for ETL code in init messages; keeps tests dependency-free).
/// Initialises ETL `name`: a `python3` hpush runtime running `code` (no
/// dependencies), through the proxy at `url`; fails with the proxy's answer.
pub fn init_python_etl(url: &str, name: &str, code: &str) -> anyhow::Result<()> {
    let body = format!(
        r#"{{"name":"{name}","runtime":"python3","communication":"hpush://","code":"{}","dependencies":"","init_timeout":"1m","obj_timeout":"10s"}}"#,
        b64(code)
    );
    let (st, out) = raw_http(
        url,
        "PUT",
        "/v1/etl",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )?;
    if st != 200 {
        bail!(
            "ETL init {name}: HTTP {st}: {}",
            String::from_utf8_lossy(&out)
        );
    }
    Ok(())
}

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

/// Runs the `ais` CLI against `endpoint`: (success, stdout, stderr).
pub fn run_ais(endpoint: &str, args: &[&str]) -> (bool, String, String) {
    match std::process::Command::new(bin("ais"))
        .args(args)
        .env("AIS_ENDPOINT", endpoint)
        .output()
    {
        Ok(out) => (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        ),
        Err(e) => (false, String::new(), format!("cannot run ais: {e}")),
    }
}

/// Path of binary `name` (`aisnode`, `ais`, ...). Panics with a clear
/// message when it is missing or older than its sources (see
/// [`fresh_bin`]).
pub fn bin(name: &str) -> PathBuf {
    match fresh_bin(name) {
        Ok(p) => p,
        Err(e) => panic!("{e:#}"),
    }
}

/// Path of binary `name`; an error when it does not exist or — unless
/// `AIS_BIN_DIR` is set — is older than a source file it was built from.
pub fn fresh_bin(name: &str) -> anyhow::Result<PathBuf> {
    let p = bin_dir().join(name);
    if !p.is_file() {
        bail!(
            "{} not found: run `cargo build --bins` first (or set AIS_BIN_DIR)",
            p.display()
        );
    }
    if std::env::var_os("AIS_BIN_DIR").is_none() {
        let newer = newer_sources(&p);
        if !newer.is_empty() {
            bail!(
                "{} is older than its sources ({}{}): the tests would run a stale binary; \
                 run `cargo build --bins` first",
                p.display(),
                newer
                    .iter()
                    .take(3)
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                if newer.len() > 3 { ", ..." } else { "" }
            );
        }
    }
    Ok(p)
}

/// Workspace source files that `bin` was built from (cargo's `<bin>.d`, else
/// every `crates/*/src` file) and that are newer than it.
fn newer_sources(bin: &Path) -> Vec<PathBuf> {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let ws = ws.canonicalize().unwrap_or(ws);
    let Some(built) = mtime(bin) else {
        return Vec::new();
    };
    let mut dep_file = bin.as_os_str().to_owned();
    dep_file.push(".d");
    let sources = match std::fs::read_to_string(&dep_file) {
        Ok(d) => dep_info_sources(&d, &ws),
        Err(_) => {
            let mut all = Vec::new();
            if let Ok(crates) = std::fs::read_dir(ws.join("crates")) {
                for c in crates.flatten() {
                    walk(&c.path().join("src"), &mut all);
                }
            }
            all
        }
    };
    sources
        .into_iter()
        .filter(|f| mtime(f).is_some_and(|t| t > built))
        .collect()
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The workspace files in a cargo dep-info file (`out: dep dep ...`, spaces
/// in names escaped). Paths of another checkout (a copied target dir) are
/// mapped onto this workspace by their `crates/...` part.
fn dep_info_sources(d: &str, ws: &Path) -> Vec<PathBuf> {
    let Some((_, deps)) = d.lines().next().and_then(|l| l.split_once(": ")) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    let mut cur = String::new();
    let mut chars = deps.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                cur.push(' ');
                chars.next();
            }
            ' ' => files.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    files.push(cur);
    files
        .into_iter()
        .filter(|f| !f.is_empty())
        .filter_map(|f| {
            let p = PathBuf::from(&f);
            if p.starts_with(ws) {
                Some(p)
            } else {
                f.find("/crates/").map(|i| ws.join(&f[i + 1..]))
            }
        })
        .collect()
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
    /// Its network namespace and address in multi-host mode.
    pub host: Option<netns::Host>,
    args: Vec<String>,
}

impl NodeProc {
    /// Starts `aisnode ARGS` (inside `host`'s namespace, listening on its
    /// address, when given) and waits for its ready line.
    fn spawn(
        mut args: Vec<String>,
        data: PathBuf,
        env: &[(String, String)],
        host: Option<netns::Host>,
    ) -> anyhow::Result<Self> {
        let exe = fresh_bin("aisnode")?;
        if let Some(h) = &host {
            if !args.iter().any(|a| a == "--host") {
                args.extend(["--host".to_string(), h.addr.clone()]);
            }
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
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let _ns = host
            .as_ref()
            .map(|h| h.enter_on_spawn(&mut cmd))
            .transpose()?;
        let opts = ais_proc::SpawnOpts {
            own_group: true,
            parent_death_signal: Some(ais_proc::SIGTERM),
            fd3: None,
        };
        let (mut child, _) = ais_proc::spawn(&mut cmd, &opts)?;
        let out = child.stdout.take().context("no stdout")?;
        let line = match ais_proc::wait_ready_line(out, "AISNODE_READY", Duration::from_secs(20)) {
            Ok(l) => l,
            Err(e) => {
                let _ = ais_proc::kill_now(&mut child);
                let log = std::fs::read_to_string(data.join("node.log")).unwrap_or_default();
                bail!("aisnode {args:?} did not start ({e}):\n{log}");
            }
        };
        let parts: Vec<&str> = line.split_whitespace().collect();
        Ok(Self {
            child: Some(child),
            id: parts.get(2).unwrap_or(&"").to_string(),
            url: parts.get(3).unwrap_or(&"").to_string(),
            data,
            host,
            args,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Sends `sig` to the node's process alone (SIGSTOP/SIGCONT: freeze and
    /// thaw it).
    pub fn signal(&self, sig: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on a child this harness started.
            unsafe {
                libc::kill(pid as i32, sig);
            }
        }
    }

    /// SIGKILL (to the node's process group), as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = ais_proc::kill_now(&mut c);
        }
    }

    /// SIGTERM, an orderly stop (SIGKILL after 10 s).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = ais_proc::stop(&mut c, STOP_GRACE);
        }
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

    /// A new process with this one's arguments, data dir and port (it got
    /// the port from `--port 0` the first time). This one must be stopped.
    /// Starts a second process with this node's flags and a copy of its
    /// data dir (`data`), on another (free) port: one identity, twice.
    pub fn spawn_copy(&self, env: &[(String, String)], data: PathBuf) -> anyhow::Result<Self> {
        let mut args = self.args.clone();
        if let Some(p) = args.iter().position(|a| a == "--port") {
            args[p + 1] = "0".into();
        }
        if let Some(p) = args.iter().position(|a| a == "--data") {
            args[p + 1] = data.display().to_string();
        }
        Self::spawn(args, data, env, self.host.clone())
    }

    /// Starts the node again (stopped or killed) with its flags and data
    /// dir on another (free) port: the same node at a new address.
    pub fn respawn_elsewhere(&self, env: &[(String, String)]) -> anyhow::Result<Self> {
        let mut args = self.args.clone();
        if let Some(p) = args.iter().position(|a| a == "--port") {
            args[p + 1] = "0".into();
        }
        Self::spawn(args, self.data.clone(), env, self.host.clone())
    }

    /// Starts the node again (stopped or killed) with its flags, port and
    /// data dir.
    pub fn respawn(&self, env: &[(String, String)]) -> anyhow::Result<Self> {
        let mut args = self.args.clone();
        if let Some(p) = args.iter().position(|a| a == "--port") {
            args[p + 1] = self.port();
        }
        Self::spawn(args, self.data.clone(), env, self.host.clone())
    }

    /// Lines of this node's log that fail a test: `panicked at`, and
    /// ERROR-level lines that contain none of `allow`.
    pub fn log_findings(&self, allow: &[String]) -> Vec<String> {
        scan_log(&self.log(), allow)
    }
}

/// See [`NodeProc::log_findings`]. Colour codes are ignored.
pub fn scan_log(log: &str, allow: &[String]) -> Vec<String> {
    log.lines()
        .map(strip_ansi)
        .filter(|l| {
            l.contains("panicked at")
                || (is_error_line(l) && !allow.iter().any(|a| l.contains(a.as_str())))
        })
        .collect()
}

/// tracing's format: `<timestamp> ERROR <target>: <message>` (the level is
/// the first or — after the timestamp — second word).
fn is_error_line(l: &str) -> bool {
    l.split_whitespace().take(2).any(|w| w == "ERROR")
}

fn strip_ansi(l: &str) -> String {
    let mut out = String::with_capacity(l.len());
    let mut chars = l.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Cluster {
    /// The primary proxy.
    pub proxy: NodeProc,
    /// More proxies, joined to the primary ([`Cluster::add_proxy`]).
    pub proxies: Vec<NodeProc>,
    pub targets: Vec<NodeProc>,
    pub env: Vec<(String, String)>,
    /// Extra allowed ` ERROR ` log substrings ([`Cluster::allow_log`]).
    allow: Mutex<Vec<String>>,
    /// Logs were scanned already (by [`Cluster::stop`]).
    scanned: bool,
    /// Size of the tmpfs mounted at each target's data dir ([`Opts::on_tmpfs`]).
    tmpfs: Option<u64>,
    mounts: Vec<PathBuf>,
    /// Multi-host mode: the bridge and namespaces (removed after the nodes).
    net: Option<netns::Net>,
    // Dropped last: the data must outlive the processes.
    pub dir: tempfile::TempDir,
}

#[derive(Clone, Debug)]
pub struct Opts {
    pub targets: usize,
    pub mpaths: usize,
    pub env: Vec<(String, String)>,
    /// Put each target's whole data dir (metadata and mountpaths) on a tmpfs
    /// of this many bytes: a small disk that fills up for real.
    pub target_tmpfs: Option<u64>,
    /// Multi-host mode: every node in its own network namespace with its
    /// own address on a bridge ([`netns`]; needs root and `ip`). Default:
    /// `AIS_TEST_NETNS=1`, so any test run with it set runs multi-host.
    pub netns: bool,
}

impl Opts {
    /// `targets` targets on tmpfs data dirs of `bytes` each; `None` when
    /// this process may not mount (not root).
    pub fn on_tmpfs(targets: usize, bytes: u64) -> Option<Self> {
        // SAFETY: geteuid has no preconditions.
        (unsafe { libc::geteuid() } == 0).then(|| Opts {
            targets,
            target_tmpfs: Some(bytes),
            ..Default::default()
        })
    }
}

fn mount_tmpfs(dir: &Path, bytes: u64) -> anyhow::Result<()> {
    use std::ffi::CString;
    std::fs::create_dir_all(dir)?;
    let target = CString::new(dir.as_os_str().as_encoded_bytes())?;
    let fstype = CString::new("tmpfs")?;
    let data = CString::new(format!("size={bytes},mode=0755"))?;
    // SAFETY: valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        bail!(
            "mount tmpfs at {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Mount points below `root` in this process's mount table, deepest first.
pub fn mounts_below(root: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(root) && p != root)
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out
}

fn unmount(dir: &Path) {
    if let Ok(target) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) {
        // SAFETY: a valid path; MNT_DETACH never blocks.
        unsafe {
            libc::umount2(target.as_ptr(), libc::MNT_DETACH);
        }
    }
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            targets: 3,
            mpaths: 1,
            env: Vec::new(),
            target_tmpfs: None,
            netns: netns::from_env(),
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
        let mut net = if opts.netns {
            Some(netns::Net::new().context("multi-host mode (Opts::netns / AIS_TEST_NETNS)")?)
        } else {
            None
        };
        if let Some(n) = &net {
            eprintln!(
                "ais-testkit: multi-host mode: nodes in network namespaces behind {}",
                n.gateway()
            );
        }
        let phost = net.as_mut().map(netns::Net::add_host).transpose()?;
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
            phost,
        )?;
        let mut c = Self {
            proxy,
            proxies: Vec::new(),
            targets: Vec::new(),
            env: opts.env.clone(),
            allow: Mutex::new(Vec::new()),
            scanned: false,
            tmpfs: opts.target_tmpfs,
            mounts: Vec::new(),
            net,
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
        // A fresh data dir even when a departed target was taken out of
        // `targets` (its dir stays behind).
        let mut k = i + 1;
        while self.dir.path().join(format!("target{k}")).exists() {
            k += 1;
        }
        let tdata = self.dir.path().join(format!("target{k}"));
        if let Some(bytes) = self.tmpfs {
            mount_tmpfs(&tdata, bytes)?;
            self.mounts.push(tdata.clone());
        }
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
        let host = self.net.as_mut().map(netns::Net::add_host).transpose()?;
        let t = NodeProc::spawn(args, tdata, &self.env, host)?;
        self.targets.push(t);
        Ok(i)
    }

    /// Starts one more (non-primary) proxy joined to the primary and waits
    /// until the map lists it; answers its index in `proxies`.
    pub fn add_proxy(&mut self) -> anyhow::Result<usize> {
        let i = self.proxies.len();
        let pdata = self.dir.path().join(format!("proxy{}", i + 2));
        let args: Vec<String> = vec![
            "--role".into(),
            "proxy".into(),
            "--port".into(),
            "0".into(),
            "--data".into(),
            pdata.display().to_string(),
            "--keepalive-timeout".into(),
            "2".into(),
            "--join".into(),
            self.proxy.url.clone(),
        ];
        let host = self.net.as_mut().map(netns::Net::add_host).transpose()?;
        let p = NodeProc::spawn(args, pdata, &self.env, host)?;
        let id = p.id.clone();
        self.proxies.push(p);
        // With several proxies, a stopped or killed one is a peer the
        // control plane cannot reach: the consensus library logs each
        // failed heartbeat and vote request at ERROR.
        for pattern in [
            "openraft::replication",
            "while requesting vote",
            "when Vote ",
            "when AppendEntries ",
            "when InstallSnapshot ",
            "timeout while confirming leadership",
        ] {
            self.allow_log(pattern);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let listed = self
                .smap()
                .ok()
                .is_some_and(|m| m["pmap"].get(&id).is_some());
            let ready = raw_http(&self.proxies[i].url, "GET", "/v1/health", &[], b"")
                .is_ok_and(|(st, _)| st == 200);
            if listed && ready {
                return Ok(i);
            }
            if std::time::Instant::now() > deadline {
                bail!("proxy {id} did not join within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts one more target and waits until the proxy has it in the map.
    pub fn add_target(&mut self) -> anyhow::Result<usize> {
        self.add_target_with(1)
    }

    /// [`Cluster::add_target`] with `mpaths` mountpaths.
    pub fn add_target_with(&mut self, mpaths: usize) -> anyhow::Result<usize> {
        let i = self.spawn_target(mpaths)?;
        self.wait_targets(self.targets.len())?;
        Ok(i)
    }

    /// The multi-host network, when the cluster runs in that mode.
    pub fn net(&self) -> Option<&netns::Net> {
        self.net.as_ref()
    }

    pub fn url(&self) -> &str {
        &self.proxy.url
    }

    /// Every proxy: the first started, then those of [`Cluster::add_proxy`].
    pub fn all_proxies(&self) -> Vec<&NodeProc> {
        std::iter::once(&self.proxy)
            .chain(self.proxies.iter())
            .collect()
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
        target_count_at(&self.proxy.url)
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
        let fresh = old.respawn(&self.env)?;
        self.targets[i] = fresh;
        Ok(())
    }

    /// Starts the cluster of `shape` (see [`Shape::opts`]).
    pub fn start_shape(shape: Shape) -> anyhow::Result<Self> {
        Self::start_with(shape.opts()).with_context(|| format!("start a {shape} cluster"))
    }

    /// Full restart: an orderly stop of every node, the primary proxy
    /// included, then each is started again with its own data dir and port
    /// (the proxy first, so the persisted cluster map and the targets'
    /// `--join` URL stay valid). Returns once the proxy's map has the
    /// targets that were running, every one of them answers health, and
    /// each has the proxy's cluster map version ([`Cluster::wait_settled`]).
    /// Node identities are kept; logs are appended to, so the log scan
    /// covers both runs.
    pub fn restart_all(&mut self) -> anyhow::Result<()> {
        let running: Vec<bool> = self.targets.iter().map(|t| t.child.is_some()).collect();
        self.stop_nodes();
        self.respawn_proxy()?;
        for (i, was) in running.iter().enumerate() {
            if *was {
                let fresh = self.targets[i]
                    .respawn(&self.env)
                    .with_context(|| format!("restart target {i}"))?;
                self.targets[i] = fresh;
            }
        }
        self.wait_targets(running.iter().filter(|r| **r).count())?;
        self.wait_settled()
    }

    /// Starts the (stopped) proxy again on its port and data dir.
    fn respawn_proxy(&mut self) -> anyhow::Result<()> {
        let proxy = self.proxy.respawn(&self.env).context("restart the proxy")?;
        if proxy.url != self.proxy.url {
            bail!(
                "restarted proxy answers at {} instead of {}",
                proxy.url,
                self.proxy.url
            );
        }
        self.proxy = proxy;
        Ok(())
    }

    /// Restarts the proxy alone (SIGTERM, same port and data), the targets
    /// keep running; waits until it has them all in its map again.
    pub fn restart_proxy(&mut self) -> anyhow::Result<()> {
        self.proxy.stop();
        self.respawn_proxy()?;
        let n = self.targets.iter().filter(|t| t.child.is_some()).count();
        self.wait_targets(n)
    }

    /// Waits until every running target holds the proxy's cluster map
    /// version (it has (re)joined and received the current map).
    pub fn wait_settled(&self) -> anyhow::Result<()> {
        let version = |url: &str| -> Option<u64> {
            let (st, body) = raw_http(url, "GET", "/v1/daemon?what=smap", &[], b"").ok()?;
            let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
            let v = &v["version"];
            (st == 200)
                .then(|| {
                    v.as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                })
                .flatten()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let want = version(&self.proxy.url);
            let behind: Vec<&str> = self
                .targets
                .iter()
                .filter(|t| t.child.is_some())
                .filter(|t| want.is_none() || version(&t.url) != want)
                .map(|t| t.url.as_str())
                .collect();
            if behind.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("targets {behind:?} do not have the proxy's cluster map version {want:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A cluster layout that scenario tests run over (see [`scenarios!`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One proxy, one target: every object on one node.
    OneTarget,
    /// One proxy, three targets: objects spread by HRW.
    ThreeTargets,
    /// Three targets with two mountpaths each.
    TwoMountpaths,
    /// Three targets; the scenario's setup runs, then every node (proxy
    /// included) is stopped and restarted ([`Cluster::restart_all`]) before
    /// its checks.
    AfterFullRestart,
}

impl Shape {
    pub const ALL: [Shape; 4] = [
        Shape::OneTarget,
        Shape::ThreeTargets,
        Shape::TwoMountpaths,
        Shape::AfterFullRestart,
    ];

    /// The snake_case name (also the module name [`scenarios!`] generates).
    pub fn name(self) -> &'static str {
        match self {
            Shape::OneTarget => "one_target",
            Shape::ThreeTargets => "three_targets",
            Shape::TwoMountpaths => "two_mountpaths",
            Shape::AfterFullRestart => "after_full_restart",
        }
    }

    pub fn opts(self) -> Opts {
        let (targets, mpaths) = match self {
            Shape::OneTarget => (1, 1),
            Shape::ThreeTargets | Shape::AfterFullRestart => (3, 1),
            Shape::TwoMountpaths => (3, 2),
        };
        Opts {
            targets,
            mpaths,
            ..Default::default()
        }
    }

    /// Whether the cluster is fully restarted between setup and checks.
    pub fn restarts(self) -> bool {
        self == Shape::AfterFullRestart
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Runs one scenario over one shape on a fresh cluster: `setup` (writes the
/// data; its result is handed on), a full restart where the shape asks for
/// one, then `verify`. Panics (failing the test) when the cluster cannot be
/// started or restarted; the log scan runs when the cluster is dropped.
pub fn run_scenario<S>(
    shape: Shape,
    setup: impl FnOnce(&Cluster) -> S,
    verify: impl FnOnce(&Cluster, S),
) {
    let mut c = match Cluster::start_shape(shape) {
        Ok(c) => c,
        Err(e) => panic!("{e:#}"),
    };
    let state = setup(&c);
    if shape.restarts() {
        if let Err(e) = c.restart_all() {
            panic!("{shape}: full restart: {e:#}");
        }
    }
    verify(&c, state);
}

/// Generates one `#[test]` per (scenario, shape): for scenario modules
/// `a` and `b` (each with `pub fn setup(&Cluster) -> S` and
/// `pub fn verify(&Cluster, S)`), `scenarios! { a, b }` makes
/// `one_target::a`, `one_target::b`, `three_targets::a`, ... — a failure
/// names both, and the tests run in parallel. Invoke it at the top level of
/// the test file (the generated modules refer to the scenarios as
/// `super::<name>`).
#[macro_export]
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $crate::scenarios!(@shape one_target OneTarget [$($name)*]);
        $crate::scenarios!(@shape three_targets ThreeTargets [$($name)*]);
        $crate::scenarios!(@shape two_mountpaths TwoMountpaths [$($name)*]);
        $crate::scenarios!(@shape after_full_restart AfterFullRestart [$($name)*]);
    };
    (@shape $module:ident $shape:ident [$($name:ident)*]) => {
        mod $module {
            $(
                #[test]
                fn $name() {
                    $crate::run_scenario(
                        $crate::Shape::$shape,
                        super::$name::setup,
                        super::$name::verify,
                    );
                }
            )*
        }
    };
}

impl Cluster {
    /// Allows ` ERROR ` log lines containing `pattern` (for a test that
    /// provokes them on purpose). `panicked at` is never allowed.
    pub fn allow_log(&self, pattern: &str) {
        if let Ok(mut a) = self.allow.lock() {
            a.push(pattern.to_string());
        }
    }

    /// Offending log lines of every node, each prefixed with the node's dir.
    pub fn log_findings(&self) -> Vec<String> {
        let mut allow: Vec<String> = DEFAULT_LOG_ALLOW.iter().map(|s| s.to_string()).collect();
        if let Ok(a) = self.allow.lock() {
            allow.extend(a.iter().cloned());
        }
        std::iter::once(&self.proxy)
            .chain(self.proxies.iter())
            .chain(self.targets.iter())
            .flat_map(|n| {
                let name = n
                    .data
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                n.log_findings(&allow)
                    .into_iter()
                    .map(move |l| format!("{name}: {l}"))
            })
            .collect()
    }

    /// SIGTERM to every running node at once, SIGKILL after the grace.
    fn stop_nodes(&mut self) {
        let mut kids: Vec<&mut Child> = std::iter::once(&mut self.proxy)
            .chain(self.proxies.iter_mut())
            .chain(self.targets.iter_mut())
            .filter_map(|n| n.child.as_mut())
            .collect();
        ais_proc::stop_all(&mut kids, STOP_GRACE);
        for n in std::iter::once(&mut self.proxy)
            .chain(self.proxies.iter_mut())
            .chain(self.targets.iter_mut())
        {
            n.child = None;
        }
    }

    /// Orderly stop of every node (SIGTERM to all, SIGKILL after 10 s),
    /// then the log scan: an error listing the offending lines, if any.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.stop_nodes();
        self.scanned = true;
        let bad = self.log_findings();
        if !bad.is_empty() {
            bail!(
                "node logs have panics or unexpected ERROR lines (allow expected ones with \
                 Cluster::allow_log):\n{}",
                bad.join("\n")
            );
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for t in &mut self.targets {
            t.kill();
        }
        for p in &mut self.proxies {
            p.kill();
        }
        self.proxy.kill();
        // A failed test's node logs, kept where AIS_TEST_KEEP_LOGS says
        // (the data directories go with the cluster).
        if std::thread::panicking() {
            if let Some(dir) = std::env::var_os("AIS_TEST_KEEP_LOGS") {
                let dir = std::path::PathBuf::from(dir);
                let _ = std::fs::create_dir_all(&dir);
                for (i, n) in std::iter::once(&self.proxy)
                    .chain(self.proxies.iter())
                    .chain(self.targets.iter())
                    .enumerate()
                {
                    let _ =
                        std::fs::copy(n.data.join("node.log"), dir.join(format!("node{i}.log")));
                }
                eprintln!("ais-testkit: node logs kept in {}", dir.display());
            }
        }
        let bad = if self.scanned || std::thread::panicking() {
            Vec::new()
        } else {
            self.log_findings()
        };
        for m in &self.mounts {
            unmount(m);
        }
        // What killed nodes left mounted under the cluster's dir (ETL work
        // dirs are tmpfs mounts a SIGKILLed target cannot take down).
        for m in mounts_below(self.dir.path()) {
            unmount(&m);
        }
        if !bad.is_empty() {
            panic!(
                "node logs have panics or unexpected ERROR lines (allow expected ones with \
                 Cluster::allow_log):\n{}",
                bad.join("\n")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_scan_finds_panics_and_unexpected_errors_only() {
        let log = "2026-01-01T00:00:00Z  INFO ais_node::node: listening\n\
                   2026-01-01T00:00:00Z \u{1b}[31mERROR\u{1b}[0m ais_node::etl: failed to start ETL etl=x\n\
                   2026-01-01T00:00:00Z ERROR ais_cluster::primary: failed to commit cluster map\n\
                   2026-01-01T00:00:00Z  WARN ais_node::node: an ERROR in a warning is fine\n\
                   thread 'tokio-runtime-worker' panicked at crates/x.rs:1:2:\n";
        let allow: Vec<String> = DEFAULT_LOG_ALLOW.iter().map(|s| s.to_string()).collect();
        let bad = scan_log(log, &allow);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[0].contains("failed to commit cluster map"));
        assert!(bad[1].contains("panicked at"));
        let mut allow = allow;
        allow.push("cluster map".into());
        allow.push("panicked".into()); // never allowed
        assert_eq!(scan_log(log, &allow).len(), 1);
    }

    #[test]
    fn dep_info_paths_are_mapped_onto_this_workspace() {
        let ws = Path::new("/w/here");
        let d = "/other/target/debug/aisnode: /other/crates/ais-core/src/lib.rs \
                 /w/here/crates/a\\ b/src/x.rs /root/.cargo/registry/src/i/tokio/src/lib.rs\n\n\
                 /other/crates/ais-core/src/lib.rs:\n";
        assert_eq!(
            dep_info_sources(d, ws),
            vec![
                PathBuf::from("/w/here/crates/ais-core/src/lib.rs"),
                PathBuf::from("/w/here/crates/a b/src/x.rs"),
            ]
        );
    }
}
