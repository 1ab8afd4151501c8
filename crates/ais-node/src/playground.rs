//! `aisnode playground`: a whole local cluster from one command. Spawns this
//! same binary as 1 proxy + N targets (each with its own data dir under
//! `--data`), forwards Ctrl-C/SIGTERM to them, and never leaves one behind
//! (children also get a parent-death signal).

use clap::Args;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct PlaygroundArgs {
    /// Number of storage targets.
    #[arg(long, default_value_t = 3)]
    pub targets: usize,
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
}

struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &self.0 {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(8);
        for c in &mut self.0 {
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
    }
}

fn spawn(exe: &PathBuf, args: &[String]) -> anyhow::Result<(Child, String)> {
    let mut child = Command::new(exe)
        .args(args)
        .env("AIS_DIE_WITH_PARENT", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let out = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(out).lines();
    let url = loop {
        match lines.next() {
            Some(Ok(l)) if l.starts_with("AISNODE_READY") => {
                break l.rsplit(' ').next().unwrap_or_default().to_string();
            }
            Some(Ok(_)) => continue,
            _ => {
                let status = child.wait()?;
                anyhow::bail!("node exited before it was ready ({status}); see its log above");
            }
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Ok((child, url))
}

pub fn run(a: PlaygroundArgs) -> anyhow::Result<()> {
    if a.targets == 0 {
        anyhow::bail!("--targets must be at least 1");
    }
    let exe = std::env::current_exe()?;
    std::fs::create_dir_all(&a.data)?;
    let data = a.data.canonicalize()?;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let tx2 = tx.clone();
    // SIGINT/SIGTERM → orderly stop; installed before spawning children.
    let mut signals = signal_hook_like()?;
    std::thread::spawn(move || {
        signals.wait();
        let _ = tx2.send(());
    });
    let mut kids = Children(Vec::new());
    // Nodes share this host: each gets its share of the cores (at least one).
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let threads = (cores / (a.targets + 1)).max(1).to_string();
    let proxy_args: Vec<String> = vec![
        "--role".into(),
        "proxy".into(),
        "--host".into(),
        a.host.clone(),
        "--port".into(),
        a.port.to_string(),
        "--data".into(),
        data.join("proxy").display().to_string(),
        "--threads".into(),
        threads.clone(),
    ];
    let (p, purl) = spawn(&exe, &proxy_args)?;
    kids.0.push(p);
    for i in 0..a.targets {
        let tdir = data.join(format!("target{}", i + 1));
        let port = if a.target_port == 0 {
            0
        } else {
            a.target_port + i as u16
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
        let (t, _) = spawn(&exe, &args)?;
        kids.0.push(t);
    }
    wait_ready(&purl, a.targets)?;
    println!();
    println!(
        "aistore-rs cluster is up: 1 proxy + {} targets, data in {}",
        a.targets,
        data.display()
    );
    println!("  export AIS_ENDPOINT={purl}");
    println!("  ais show cluster");
    println!("Press Ctrl-C to stop.");
    drop(tx);
    // Wait for a signal or for any child to die.
    loop {
        if rx.recv_timeout(Duration::from_millis(300)).is_ok() {
            println!("stopping cluster...");
            break;
        }
        for c in &mut kids.0 {
            if let Ok(Some(st)) = c.try_wait() {
                eprintln!("a node exited unexpectedly ({st}); stopping the cluster");
                return Err(anyhow::anyhow!("node exited: {st}"));
            }
        }
    }
    drop(kids);
    Ok(())
}

fn wait_ready(purl: &str, targets: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(n) = count_targets(purl) {
            if n >= targets {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("cluster did not become ready within 30 s")
}

/// Number of targets in the proxy's cluster map (plain HTTP/1.0, no runtime needed).
fn count_targets(purl: &str) -> anyhow::Result<usize> {
    use std::io::{Read, Write};
    let hostport = purl.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(hostport)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        s,
        "GET /v1/daemon?what=smap HTTP/1.0\r\nHost: {hostport}\r\n\r\n"
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let body = buf.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(body)?;
    Ok(v["tmap"].as_object().map(|m| m.len()).unwrap_or(0))
}

/// Blocks the calling thread until SIGINT or SIGTERM.
struct SigWait(libc::sigset_t);

impl SigWait {
    fn wait(&mut self) {
        let mut sig: libc::c_int = 0;
        // SAFETY: sigwait on a set we initialised and blocked.
        unsafe {
            libc::sigwait(&self.0, &mut sig);
        }
    }
}

fn signal_hook_like() -> anyhow::Result<SigWait> {
    // SAFETY: plain libc signal-mask calls on a zeroed sigset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        // Block in this (main) thread before other threads exist so every
        // thread inherits the mask and only sigwait sees the signals.
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            anyhow::bail!("pthread_sigmask failed");
        }
        Ok(SigWait(set))
    }
}
