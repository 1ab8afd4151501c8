//! `aisnode playground`: a whole local cluster from one command, supervised.
//!
//! Spawns the `aisnode` binary as 1 proxy + N targets (each with its own data
//! dir under `--data`), each in its own process group with a parent-death
//! signal (through [`ais_proc`]). A node that exits unexpectedly is restarted
//! with the same arguments, data dir and port (a port picked by the OS the
//! first time is kept), with backoff (0.2 s doubling to 5 s, reset once it
//! has stayed up for 10 s). Only Ctrl-C/SIGTERM stops the cluster: SIGTERM to
//! every node, SIGKILL after a grace period.
//!
//! Each node's stderr goes both to the playground's stderr and to
//! `<node dir>/node.log`. The state file (`--state`, default
//! `<data>/playground.json`) lists every node's role, id, url, pid and log,
//! rewritten atomically on every change and removed on a clean stop. A pid
//! registry (`<data>/.playground-pids.json`) lets the next playground on the
//! same data dir refuse to run beside a live one and kill nodes a SIGKILLed
//! one left behind — only those it can prove it started.

use ais_proc::{PidRegistry, ProcId, SpawnOpts};
use clap::Args;
use serde::Serialize;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Line a node prints on stdout once it listens: `AISNODE_READY <role> <id> <url>`.
pub const READY_MARKER: &str = "AISNODE_READY";
/// Name of the default state file inside `--data`.
pub const STATE_FILE: &str = "playground.json";
/// Exit status of a node that left the cluster on purpose (`shutdown-node`,
/// `decommission-node`): the playground does not restart it.
pub const EXIT_LEFT_CLUSTER: i32 = 75;
const REGISTRY_FILE: &str = ".playground-pids.json";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_GRACE: Duration = Duration::from_secs(8);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A node that stays up this long has its backoff reset.
const STABLE_AFTER: Duration = Duration::from_secs(10);
const TICK: Duration = Duration::from_millis(100);

#[derive(Args, Debug, Clone)]
pub struct PlaygroundArgs {
    /// Number of storage targets.
    #[arg(long, default_value_t = 3)]
    pub targets: usize,
    /// Number of proxies (gateways): the primary on --port, the others on
    /// the ports after it, each serving clients (data requests themselves,
    /// metadata changes through the primary).
    #[arg(long, default_value_t = 1)]
    pub proxies: usize,
    /// Proxy (gateway) port; clients use http://HOST:PORT.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// First target port (targets use consecutive ports); 0 = pick free ports.
    #[arg(long, default_value_t = 0)]
    pub target_port: u16,
    /// Data directory (kept across runs: buckets and objects persist).
    #[arg(long, default_value = "./data")]
    pub data: PathBuf,
    /// Mountpaths per target.
    #[arg(long, default_value_t = 1)]
    pub mpaths: usize,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// JSON file listing the nodes (role, id, url, pid, log) while the
    /// playground runs [default: DATA/playground.json].
    #[arg(long)]
    pub state: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlaygroundError {
    #[error("{0}")]
    Usage(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Proc(#[from] ais_proc::ProcError),
    #[error("{name} did not start: {source}")]
    NodeStart {
        name: String,
        #[source]
        source: ais_proc::ProcError,
    },
    #[error("another playground (pid {pid}) is running on {data}")]
    AlreadyRunning { pid: u32, data: PathBuf },
    #[error("cluster did not become ready within 30 s")]
    NotReady,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PlaygroundError {
    let what = what.into();
    move |source| PlaygroundError::Io { what, source }
}

/// One supervised node.
struct Node {
    /// `proxy`, `target1`, ...
    name: String,
    role: &'static str,
    args: Vec<String>,
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    proc_id: Option<ProcId>,
    node_id: String,
    url: String,
    restarts: u32,
    backoff: Duration,
    next_start: Option<Instant>,
    up_since: Instant,
}

#[derive(Serialize)]
struct NodeState<'a> {
    name: &'a str,
    role: &'a str,
    id: &'a str,
    url: &'a str,
    pid: Option<u32>,
    running: bool,
    restarts: u32,
    data: &'a Path,
    log: &'a Path,
}

#[derive(Serialize)]
struct State<'a> {
    pid: u32,
    proxy_url: &'a str,
    data: &'a Path,
    nodes: Vec<NodeState<'a>>,
}

impl Node {
    fn new(name: String, role: &'static str, args: Vec<String>, dir: PathBuf) -> Self {
        Self {
            log: dir.join("node.log"),
            name,
            role,
            args,
            dir,
            child: None,
            proc_id: None,
            node_id: String::new(),
            url: String::new(),
            restarts: 0,
            backoff: BACKOFF_MIN,
            next_start: None,
            up_since: Instant::now(),
        }
    }

    /// Spawns the node and waits for its ready line.
    fn start(&mut self, exe: &Path, reg: &PidRegistry) -> Result<(), PlaygroundError> {
        std::fs::create_dir_all(&self.dir).map_err(io(format!("create {}", self.dir.display())))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(io(format!("open {}", self.log.display())))?;
        let mut cmd = Command::new(exe);
        cmd.args(&self.args)
            .env("AIS_DIE_WITH_PARENT", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let opts = SpawnOpts {
            own_group: true,
            parent_death_signal: Some(ais_proc::SIGTERM),
            fd3: None,
        };
        let (mut child, id) = ais_proc::spawn(&mut cmd, &opts)?;
        // Recorded before anything can fail, so a crash of ours leaves
        // nothing the next playground cannot find.
        let _ = reg.record(&id, &self.name);
        if let Some(err) = child.stderr.take() {
            tee(err, log);
        }
        let Some(out) = child.stdout.take() else {
            let _ = ais_proc::kill_now(&mut child);
            let _ = reg.remove(id.pid);
            return Err(ais_proc::ProcError::NoStdout.into());
        };
        let line = match ais_proc::wait_ready_line(out, READY_MARKER, READY_TIMEOUT) {
            Ok(l) => l,
            Err(source) => {
                let _ = ais_proc::kill_now(&mut child);
                let _ = reg.remove(id.pid);
                return Err(PlaygroundError::NodeStart {
                    name: self.name.clone(),
                    source,
                });
            }
        };
        let parts: Vec<&str> = line.split_whitespace().collect();
        self.node_id = parts.get(2).unwrap_or(&"").to_string();
        self.url = parts.get(3).unwrap_or(&"").to_string();
        // Restarts keep the port this node got (clients and the cluster map
        // know it by its URL).
        if let Some(port) = self.url.rsplit(':').next().filter(|p| !p.is_empty()) {
            if let Some(i) = self.args.iter().position(|a| a == "--port") {
                if let Some(v) = self.args.get_mut(i + 1) {
                    *v = port.to_string();
                }
            }
        }
        self.child = Some(child);
        self.proc_id = Some(id);
        self.up_since = Instant::now();
        self.next_start = None;
        Ok(())
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn state(&self) -> NodeState<'_> {
        NodeState {
            name: &self.name,
            role: self.role,
            id: &self.node_id,
            url: &self.url,
            pid: self.pid(),
            running: self.child.is_some(),
            restarts: self.restarts,
            data: &self.dir,
            log: &self.log,
        }
    }
}

/// Copies a node's stderr to ours and to its log file, line by line.
fn tee(from: std::process::ChildStderr, mut log: std::fs::File) {
    let _ = std::thread::Builder::new()
        .name("playground-log".into())
        .spawn(move || {
            let mut r = BufReader::new(from);
            let mut line = Vec::new();
            while matches!(r.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                let _ = log.write_all(&line);
                let _ = std::io::stderr().write_all(&line);
                line.clear();
            }
        });
}

struct Cluster {
    exe: PathBuf,
    data: PathBuf,
    state_path: PathBuf,
    reg: PidRegistry,
    nodes: Vec<Node>,
}

impl Cluster {
    fn proxy_url(&self) -> &str {
        self.nodes.first().map(|n| n.url.as_str()).unwrap_or("")
    }

    fn write_state(&self) {
        let st = State {
            pid: std::process::id(),
            proxy_url: self.proxy_url(),
            data: &self.data,
            nodes: self.nodes.iter().map(Node::state).collect(),
        };
        if let Ok(body) = serde_json::to_vec_pretty(&st) {
            if let Err(e) = ais_proc::write_file_atomic(&self.state_path, &body) {
                eprintln!("playground: cannot write the state file: {e}");
            }
        }
    }

    /// One pass of supervision: notices exits, restarts nodes whose backoff
    /// has passed.
    fn supervise(&mut self) {
        let mut changed = false;
        let exe = self.exe.clone();
        for n in &mut self.nodes {
            if let Some(c) = n.child.as_mut() {
                match c.try_wait() {
                    Ok(Some(st)) => {
                        if let Some(id) = n.proc_id.take() {
                            let _ = self.reg.remove(id.pid);
                        }
                        n.child = None;
                        if st.code() == Some(EXIT_LEFT_CLUSTER) {
                            println!(
                                "{} ({} {}) left the cluster (shutdown or decommission); not restarting it",
                                n.name, n.role, n.node_id
                            );
                            n.next_start = None;
                            changed = true;
                            continue;
                        }
                        if n.up_since.elapsed() >= STABLE_AFTER {
                            n.backoff = BACKOFF_MIN;
                        }
                        println!(
                            "{} ({} {}) exited unexpectedly ({st}); restarting it in {:.1} s",
                            n.name,
                            n.role,
                            n.node_id,
                            n.backoff.as_secs_f64()
                        );
                        n.next_start = Some(Instant::now() + n.backoff);
                        n.backoff = (n.backoff * 2).min(BACKOFF_MAX);
                        changed = true;
                    }
                    Ok(None) => {
                        if n.up_since.elapsed() >= STABLE_AFTER {
                            n.backoff = BACKOFF_MIN;
                        }
                    }
                    Err(_) => {}
                }
            }
            if n.child.is_none() && n.next_start.is_some_and(|t| Instant::now() >= t) {
                n.restarts += 1;
                match n.start(&exe, &self.reg) {
                    Ok(()) => println!(
                        "{} ({} {}) is back at {} (pid {})",
                        n.name,
                        n.role,
                        n.node_id,
                        n.url,
                        n.pid().unwrap_or(0)
                    ),
                    Err(e) => {
                        println!(
                            "{} restart failed: {e}; next try in {:.1} s",
                            n.name,
                            n.backoff.as_secs_f64()
                        );
                        n.next_start = Some(Instant::now() + n.backoff);
                        n.backoff = (n.backoff * 2).min(BACKOFF_MAX);
                    }
                }
                changed = true;
            }
        }
        if changed {
            let _ = std::io::stdout().flush();
            self.write_state();
        }
    }

    /// SIGTERM to every node, SIGKILL after the grace, reap; forget them.
    fn stop(&mut self) {
        let mut kids: Vec<&mut Child> = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.child.as_mut())
            .collect();
        ais_proc::stop_all(&mut kids, STOP_GRACE);
        for n in &mut self.nodes {
            n.child = None;
            if let Some(id) = n.proc_id.take() {
                let _ = self.reg.remove(id.pid);
            }
        }
        let _ = std::fs::remove_file(&self.state_path);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.nodes.iter().any(|n| n.child.is_some()) {
            self.stop();
        }
        let _ = self.reg.remove(std::process::id());
    }
}

/// Runs the playground with this very executable as `aisnode`.
pub fn run(a: PlaygroundArgs) -> Result<(), PlaygroundError> {
    let exe = std::env::current_exe().map_err(io("current executable"))?;
    run_with(a, &exe)
}

/// Runs the playground with `exe` as the `aisnode` binary, until SIGINT or
/// SIGTERM.
pub fn run_with(a: PlaygroundArgs, exe: &Path) -> Result<(), PlaygroundError> {
    if a.targets == 0 {
        return Err(PlaygroundError::Usage(
            "--targets must be at least 1".into(),
        ));
    }
    if a.proxies == 0 || a.proxies > 16 {
        return Err(PlaygroundError::Usage(
            "--proxies must be from 1 to 16".into(),
        ));
    }
    std::fs::create_dir_all(&a.data).map_err(io(format!("create {}", a.data.display())))?;
    let data = a
        .data
        .canonicalize()
        .map_err(io(format!("resolve {}", a.data.display())))?;
    // SIGINT/SIGTERM → orderly stop; blocked before any thread exists.
    let mut signals = SigWait::block()?;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        signals.wait();
        let _ = tx.send(());
    });

    let reg = PidRegistry::new(data.join(REGISTRY_FILE));
    if let Some(other) = reg
        .live()?
        .into_iter()
        .find(|e| e.label == "playground" && e.id.pid != std::process::id())
    {
        return Err(PlaygroundError::AlreadyRunning {
            pid: other.id.pid,
            data,
        });
    }
    let leftovers = reg.kill_stale(ais_proc::SIGKILL)?;
    if !leftovers.is_empty() {
        eprintln!(
            "playground: killed {} node process(es) an earlier playground left behind: {leftovers:?}",
            leftovers.len()
        );
        // Let them go before their ports and data dirs are reused.
        std::thread::sleep(Duration::from_millis(300));
    }
    for e in reg.entries()? {
        let _ = reg.remove(e.id.pid);
    }
    reg.record(&ProcId::current()?, "playground")?;

    let mut c = Cluster {
        exe: exe.to_path_buf(),
        state_path: a.state.clone().unwrap_or_else(|| data.join(STATE_FILE)),
        data: data.clone(),
        reg,
        nodes: Vec::new(),
    };
    // Nodes share this host: each gets its share of the cores (at least one).
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let threads = (cores / (a.targets + a.proxies)).max(1).to_string();
    let pdir = data.join("proxy");
    let proxy_args: Vec<String> = vec![
        "--role".into(),
        "proxy".into(),
        "--host".into(),
        a.host.clone(),
        "--port".into(),
        a.port.to_string(),
        "--data".into(),
        pdir.display().to_string(),
        "--threads".into(),
        threads.clone(),
    ];
    let mut proxy = Node::new("proxy".into(), "proxy", proxy_args, pdir);
    proxy.start(exe, &c.reg)?;
    let purl = proxy.url.clone();
    c.nodes.push(proxy);
    for i in 1..a.proxies {
        let name = format!("proxy{}", i + 1);
        let dir = data.join(&name);
        let port = if a.port == 0 {
            0
        } else {
            a.port.saturating_add(i as u16)
        };
        let args: Vec<String> = vec![
            "--role".into(),
            "proxy".into(),
            "--host".into(),
            a.host.clone(),
            "--port".into(),
            port.to_string(),
            "--data".into(),
            dir.display().to_string(),
            "--join".into(),
            purl.clone(),
            "--threads".into(),
            threads.clone(),
        ];
        let mut p = Node::new(name, "proxy", args, dir);
        p.start(exe, &c.reg)?;
        c.nodes.push(p);
    }
    for i in 0..a.targets {
        let name = format!("target{}", i + 1);
        let tdir = data.join(&name);
        let port = if a.target_port == 0 {
            0
        } else {
            a.target_port.saturating_add(i as u16)
        };
        let mut args: Vec<String> = vec![
            "--role".into(),
            "target".into(),
            "--host".into(),
            a.host.clone(),
            "--port".into(),
            port.to_string(),
            "--data".into(),
            tdir.display().to_string(),
            "--join".into(),
            purl.clone(),
            "--threads".into(),
            threads.clone(),
        ];
        for m in 0..a.mpaths {
            args.push("--mpath".into());
            args.push(tdir.join(format!("mp{}", m + 1)).display().to_string());
        }
        let mut t = Node::new(name, "target", args, tdir);
        t.start(exe, &c.reg)?;
        c.nodes.push(t);
    }
    c.write_state();
    wait_ready(&purl, a.proxies, a.targets)?;
    println!();
    println!(
        "aistore-rs cluster is up: {} prox{} + {} targets, data in {}",
        a.proxies,
        if a.proxies == 1 { "y" } else { "ies" },
        a.targets,
        data.display()
    );
    println!("  export AIS_ENDPOINT={purl}");
    println!("  ais show cluster");
    println!("Press Ctrl-C to stop.");
    let _ = std::io::stdout().flush();
    // Supervise until a signal.
    loop {
        if rx.recv_timeout(TICK).is_ok() {
            println!("stopping cluster...");
            let _ = std::io::stdout().flush();
            break;
        }
        c.supervise();
    }
    c.stop();
    Ok(())
}

fn wait_ready(purl: &str, proxies: usize, targets: usize) -> Result<(), PlaygroundError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if count_nodes(purl).is_some_and(|(p, t)| p >= proxies && t >= targets) {
            return Ok(());
        }
        std::thread::sleep(TICK);
    }
    Err(PlaygroundError::NotReady)
}

/// Proxies and targets in the proxy's cluster map (plain HTTP/1.0, no runtime needed).
fn count_nodes(purl: &str) -> Option<(usize, usize)> {
    use std::io::Read;
    let hostport = purl.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(hostport).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET /v1/daemon?what=smap HTTP/1.0\r\nHost: {hostport}\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let body = buf.split_once("\r\n\r\n").map(|x| x.1)?;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let n = |k: &str| v[k].as_object().map(|m| m.len()).unwrap_or(0);
    Some((n("pmap"), n("tmap")))
}

/// SIGINT and SIGTERM, blocked in every thread and taken by `sigwait`.
struct SigWait(libc::sigset_t);

impl SigWait {
    /// Blocks the signals in the calling thread (call it before other
    /// threads exist: they inherit the mask). Children get a clean mask
    /// (std resets it between fork and exec).
    fn block() -> Result<Self, PlaygroundError> {
        // SAFETY: plain libc signal-mask calls on a zeroed sigset.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            let r = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            if r != 0 {
                return Err(PlaygroundError::Io {
                    what: "pthread_sigmask".into(),
                    source: std::io::Error::from_raw_os_error(r),
                });
            }
            Ok(Self(set))
        }
    }

    fn wait(&mut self) {
        let mut sig: libc::c_int = 0;
        // SAFETY: sigwait on a set we initialised and blocked.
        unsafe {
            libc::sigwait(&self.0, &mut sig);
        }
    }
}
