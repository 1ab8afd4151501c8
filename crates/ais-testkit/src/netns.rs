//! Multi-host mode: every node of a [`crate::Cluster`] in its own Linux
//! network namespace with its own address, so nothing can rely on loopback
//! (a node that advertised `127.0.0.1`, or called a peer there, fails).
//!
//! One [`Net`] per cluster: a bridge `aisb<N>` in the root namespace with
//! `10.213.<N>.1/24` (the test process reaches the nodes through it), and
//! per node a namespace `aist-<pid>-<N>-<k>` holding one end of a veth pair
//! (`eth0`, `10.213.<N>.<10+k>/24`, plus `lo`), the other end (`aisv<N>h<k>`)
//! on the bridge. `N` is the first free bridge number (the kernel refuses a
//! second bridge of the same name, so parallel tests and test binaries never
//! share a subnet). Everything is removed on drop, also when the test
//! panics; what a killed test process left behind is removed by the next
//! [`Net::new`] (bridges carry the owner's pid in their alias).
//!
//! Needs root and iproute2's `ip` ([`Net::check`]). Turned on by
//! [`crate::Opts::netns`], which defaults to `AIS_TEST_NETNS=1`.

use anyhow::{bail, Context};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// First two octets of every test subnet (`10.213.<N>.0/24`).
const PREFIX: &str = "10.213";
const ALIAS: &str = "aistore-rs-test pid=";

/// Whether `AIS_TEST_NETNS` asks for multi-host mode (`1`, `true`, `yes`).
pub fn from_env() -> bool {
    std::env::var("AIS_TEST_NETNS")
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// One node's place in a [`Net`]: its namespace and address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// Name under `/run/netns` (`ip netns exec NAME ...` works on it).
    pub netns: String,
    /// The node's IPv4 address (its `--host`).
    pub addr: String,
}

impl Host {
    /// Makes `cmd`'s child enter this namespace before exec (setns in a
    /// pre-exec hook). The returned file must live until the child is spawned.
    pub fn enter_on_spawn(&self, cmd: &mut Command) -> anyhow::Result<std::fs::File> {
        let path = format!("/run/netns/{}", self.netns);
        let f = std::fs::File::open(&path).with_context(|| format!("open {path}"))?;
        let fd = f.as_raw_fd();
        // SAFETY: setns is a plain syscall (async-signal-safe); `fd` stays
        // open in the child until exec (the caller keeps the file alive).
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(cmd, move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(f)
    }
}

/// A bridge and the namespaces on it (see the module docs).
#[derive(Debug)]
pub struct Net {
    n: u8,
    bridge: String,
    hosts: Vec<Host>,
    /// Root-namespace ends of the veth pairs.
    veths: Vec<String>,
}

/// Namespaces created by this process so far (part of their names).
static SEQ: AtomicU32 = AtomicU32::new(0);
/// Nets created by this process so far: consecutive ones start their search
/// for a free bridge number at different places.
static NETS: AtomicU32 = AtomicU32::new(0);

impl Net {
    /// `Ok` when this process can build a [`Net`]: root, and `ip` runs.
    pub fn check() -> anyhow::Result<()> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            bail!("multi-host mode (network namespaces) needs root");
        }
        let out = Command::new("ip")
            .arg("-V")
            .output()
            .context("multi-host mode needs iproute2's `ip` (apt-get install iproute2)")?;
        if !out.status.success() {
            bail!("`ip -V` failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// A new bridge on the first free `10.213.<N>.0/24` (after removing what
    /// dead test processes left behind).
    pub fn new() -> anyhow::Result<Net> {
        Self::check()?;
        sweep_dead();
        let taken =
            ip_output(&["-4", "-o", "addr", "show"])? + &ip_output(&["-4", "route", "show"])?;
        // Spread parallel callers over the range; the kernel settles races.
        let nets = NETS.fetch_add(1, Ordering::Relaxed) as usize;
        let start = (std::process::id() as usize)
            .wrapping_mul(7)
            .wrapping_add(nets * 31)
            % 250;
        for i in 0..250 {
            let n = ((start + i) % 250) as u8;
            if taken.contains(&format!("{PREFIX}.{n}.")) {
                continue;
            }
            let bridge = format!("aisb{n}");
            if ip(&["link", "add", &bridge, "type", "bridge"]).is_err() {
                continue; // another test owns it
            }
            let net = Net {
                n,
                bridge,
                hosts: Vec::new(),
                veths: Vec::new(),
            };
            let alias = format!("{ALIAS}{}", std::process::id());
            ip(&["link", "set", &net.bridge, "alias", &alias])?;
            ip(&[
                "addr",
                "add",
                &format!("{}/24", net.gateway()),
                "dev",
                &net.bridge,
            ])?;
            ip(&["link", "set", &net.bridge, "up"])?;
            return Ok(net);
        }
        bail!("no free {PREFIX}.N.0/24 test subnet (250 bridges aisb* exist?)")
    }

    /// The bridge's address in the root namespace (how the test process
    /// reaches the nodes).
    pub fn gateway(&self) -> String {
        format!("{PREFIX}.{}.1", self.n)
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Cuts (`up` false) or restores the link between `host` and the
    /// bridge: a partition with the host on one side.
    pub fn set_link(&self, host: &Host, up: bool) -> anyhow::Result<()> {
        let k = self
            .hosts
            .iter()
            .position(|h| h.netns == host.netns)
            .context("host not on this network")?;
        let veth = self.veths.get(k).context("host has no link")?;
        ip(&["link", "set", veth, if up { "up" } else { "down" }])
    }

    /// A new namespace on the bridge with the next address.
    pub fn add_host(&mut self) -> anyhow::Result<Host> {
        let k = self.hosts.len();
        if k >= 200 {
            bail!("at most 200 hosts per test network");
        }
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let host = Host {
            netns: format!("aist-{}-{}-{seq}", std::process::id(), self.n),
            addr: format!("{PREFIX}.{}.{}", self.n, 10 + k),
        };
        ip(&["netns", "add", &host.netns])?;
        // Recorded before it is complete, so drop removes a half-built one.
        self.hosts.push(host.clone());
        let veth = format!("aisv{}h{k}", self.n);
        ip(&[
            "link",
            "add",
            &veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &host.netns,
        ])?;
        self.veths.push(veth.clone());
        ip(&["link", "set", &veth, "master", &self.bridge, "up"])?;
        let ns = ["-n", host.netns.as_str()];
        ip(&[
            &ns[..],
            &["addr", "add", &format!("{}/24", host.addr), "dev", "eth0"],
        ]
        .concat())?;
        ip(&[&ns[..], &["link", "set", "eth0", "up"]].concat())?;
        ip(&[&ns[..], &["link", "set", "lo", "up"]].concat())?;
        Ok(host)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth pairs too, but later (the
        // kernel tears namespaces down asynchronously): delete them now, so
        // the names are free for the next test.
        for v in &self.veths {
            let _ = ip(&["link", "del", v]);
        }
        for h in &self.hosts {
            let _ = ip(&["netns", "del", &h.netns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .with_context(|| format!("run ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn ip_output(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .with_context(|| format!("run ip {}", args.join(" ")))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes namespaces (`aist-<pid>-...`) and bridges (alias with the pid)
/// whose creating process is gone (a test binary that was SIGKILLed).
fn sweep_dead() {
    for e in std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("aist-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !alive(pid) {
                let _ = ip(&["netns", "del", &name]);
            }
        }
    }
    for e in std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("aisb") {
            continue;
        }
        let alias = std::fs::read_to_string(e.path().join("ifalias")).unwrap_or_default();
        let pid = alias
            .trim()
            .strip_prefix(ALIAS)
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !alive(pid) {
                let _ = ip(&["link", "del", &name]);
            }
        }
    }
}
