//! The OS-level sandbox ETL processes (pool workers, `runtime.command`
//! servers) run in, set up between `fork` and `exec` by [`Sandbox::prepare`]'s
//! hook, with what the kernel allows (detected once per target, [`Host`]):
//!
//! * **an unprivileged uid/gid** (`AIS_ETL_UID`/`AIS_ETL_GID`, default
//!   `nobody`/`nogroup` when the target runs as root; else the target's own),
//!   supplementary groups cleared, `PR_SET_NO_NEW_PRIVS`;
//! * **a mount namespace**: the host's file system read-only, every directory
//!   other users cannot traverse (the node's 0700 data root, `/root`, ...)
//!   covered by an empty tmpfs, with only what the process needs bound back:
//!   its work dir (read-write), the worker script, the Python installation
//!   and environment (read-only); a private `/dev/shm`;
//! * **a network namespace** (loopback only) unless the ETL asks for the
//!   network (`"network": true`) or is a `runtime.command` server;
//! * **cgroups** (v1 `memory`, `pids`, `freezer`; one per process, under the
//!   target's own): memory and process-count limits, and a kill that reaches
//!   every descendant, `setsid()` ones included (freeze, SIGKILL all, thaw);
//! * **rlimits**: open files, CPU seconds; memory (`RLIMIT_AS`) and
//!   `RLIMIT_NPROC` only where no cgroup can enforce them and a limit was set
//!   explicitly (a virtual-address limit breaks e.g. `import torch`).
//!
//! A kill reaches the process group (ais-proc) and then the whole cgroup.

use crate::spec::Limits;
use crate::EtlError;
use serde::Serialize;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// Cluster-wide defaults (target environment), overridden per ETL by its spec.
pub fn default_limits() -> Limits {
    fn env(k: &str, default: Option<u64>, size: bool) -> Option<u64> {
        match std::env::var(k) {
            Ok(v) => {
                let v = v.trim();
                if v.is_empty() {
                    return default;
                }
                let parsed = if size {
                    crate::spec::parse_size(v).ok()
                } else {
                    v.parse::<u64>().ok()
                };
                match parsed {
                    Some(0) => None,
                    Some(n) => Some(n),
                    None => {
                        tracing::warn!("etl: ignoring {k}={v:?} (not a number)");
                        default
                    }
                }
            }
            Err(_) => default,
        }
    }
    Limits {
        memory: env("AIS_ETL_MEM_LIMIT", Some(4 << 30), true),
        nproc: env("AIS_ETL_NPROC", Some(1024), false),
        nofile: env("AIS_ETL_NOFILE", Some(4096), false),
        cpu_seconds: env("AIS_ETL_CPU_SECONDS", None, false),
        output: env("AIS_ETL_MAX_OUTPUT", Some(2 << 30), true),
    }
}

pub fn fmt_size(n: u64) -> String {
    if n >= 1 << 30 && n.is_multiple_of(1 << 30) {
        format!("{} GiB", n >> 30)
    } else if n >= MIB {
        format!("{} MiB", n / MIB)
    } else {
        format!("{n} bytes")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ctrl {
    Memory,
    Pids,
    Freezer,
}

impl Ctrl {
    fn name(self) -> &'static str {
        match self {
            Ctrl::Memory => "memory",
            Ctrl::Pids => "pids",
            Ctrl::Freezer => "freezer",
        }
    }
}

/// What this target can do, detected once at start-up.
#[derive(Debug)]
pub struct Host {
    /// False with `AIS_ETL_SANDBOX=off` (then processes run as before).
    pub enabled: bool,
    /// Ids to switch to (None: the target is not root, keep its own).
    pub ids: Option<(u32, u32)>,
    /// Each ETL's own uid (= gid) comes from this range (`AIS_ETL_UID_RANGE`,
    /// `FIRST-LAST`; `off`: every ETL runs as [`Host::ids`]).
    pub uid_range: Option<(u32, u32)>,
    pub uid: u32,
    pub gid: u32,
    /// Per-controller base directory of this target's ETL cgroups.
    cgroups: Vec<(Ctrl, PathBuf)>,
    pub mountns: bool,
    pub netns: bool,
    /// Processes get the seccomp filter (`crate::seccomp`; probed).
    pub seccomp: bool,
    pub notes: Vec<String>,
}

fn lookup_id(file: &str, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.next()?;
        f.next()?.parse().ok()
    })
}

fn id_from_env(var: &str, file: &str, default: &[&str]) -> u32 {
    if let Ok(v) = std::env::var(var) {
        if let Ok(n) = v.trim().parse() {
            return n;
        }
        if let Some(n) = lookup_id(file, v.trim()) {
            return n;
        }
        tracing::warn!("etl: {var}={v:?} is neither a number nor known in {file}");
    }
    default
        .iter()
        .find_map(|n| lookup_id(file, n))
        .unwrap_or(65534)
}

/// `/sys/fs/cgroup/<ctrl>/<our own cgroup>/<tag>-<pid>` for each v1
/// controller we can write. Bases of targets that are gone (their pid is
/// dead: a crash, or a SIGKILL) are emptied — every process in them killed —
/// and removed.
fn cgroup_bases(tag: &str, notes: &mut Vec<String>) -> Vec<(Ctrl, PathBuf)> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let me = std::process::id();
    let mut out = Vec::new();
    for c in [Ctrl::Memory, Ctrl::Pids, Ctrl::Freezer] {
        let rel = own.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            f.next()?;
            let ctrls = f.next()?;
            ctrls.split(',').any(|x| x == c.name()).then(|| f.next())?
        });
        let Some(rel) = rel else {
            notes.push(format!("no cgroup v1 {} controller", c.name()));
            continue;
        };
        let parent = Path::new("/sys/fs/cgroup")
            .join(c.name())
            .join(rel.trim_start_matches('/'));
        sweep_dead(&parent, c);
        let base = parent.join(format!("{tag}-{me}"));
        match std::fs::create_dir_all(&base) {
            Ok(()) if base.join("cgroup.procs").exists() => out.push((c, base)),
            Ok(()) => notes.push(format!("{} is not a cgroup", base.display())),
            Err(e) => notes.push(format!("cgroup {}: {e}", base.display())),
        }
    }
    out
}

/// Kills and removes `aistore-rs-etl-*-<pid>` cgroups under `parent` whose
/// target (`pid`) no longer runs.
fn sweep_dead(parent: &Path, c: Ctrl) {
    for e in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        if !n.starts_with("aistore-rs-etl-") {
            continue;
        }
        let Some(pid) = n.rsplit('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: signal 0 only checks for existence.
        let alive = pid > 0 && unsafe { libc::kill(pid, 0) } == 0;
        if alive {
            continue;
        }
        for d in std::fs::read_dir(e.path()).into_iter().flatten().flatten() {
            if d.path().is_dir() {
                let j = Jail::single(c, d.path());
                j.kill_all();
                j.remove(Duration::from_secs(2));
            }
        }
        let _ = std::fs::remove_dir(e.path());
    }
}

/// Where ETLs' own uids come from by default: far above any account's uid
/// (and below the 32-bit "no id"), unnamed in `/etc/passwd`.
pub const DEFAULT_UID_RANGE: (u32, u32) = (1_900_000_000, 1_900_065_535);

/// `FIRST-LAST` (both above 0, FIRST <= LAST).
fn parse_range(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.trim().split_once('-')?;
    let (a, b): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a > 0 && a <= b && b < u32::MAX).then_some((a, b))
}

impl Host {
    /// Detects what is allowed; `tag` names this target's cgroups.
    pub fn detect(tag: &str) -> Host {
        let mut notes = Vec::new();
        let off = std::env::var("AIS_ETL_SANDBOX").is_ok_and(|v| v == "off" || v == "0");
        // SAFETY: plain getters.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        if off {
            return Host {
                enabled: false,
                ids: None,
                uid_range: None,
                uid: euid,
                gid: egid,
                cgroups: Vec::new(),
                mountns: false,
                netns: false,
                seccomp: false,
                notes: vec!["sandbox disabled (AIS_ETL_SANDBOX=off)".into()],
            };
        }
        let ids = if euid == 0 {
            let uid = id_from_env("AIS_ETL_UID", "/etc/passwd", &["nobody"]);
            let gid = id_from_env("AIS_ETL_GID", "/etc/group", &["nogroup", "nobody"]);
            if uid == 0 {
                notes.push("AIS_ETL_UID=0 refused: using 65534".into());
                Some((65534, if gid == 0 { 65534 } else { gid }))
            } else {
                Some((uid, gid))
            }
        } else {
            notes.push("the target is not root: processes keep its uid".into());
            None
        };
        let (uid, gid) = ids.unwrap_or((euid, egid));
        let cgroups = if euid == 0 {
            cgroup_bases(tag, &mut notes)
        } else {
            Vec::new()
        };
        let uid_range = match std::env::var("AIS_ETL_UID_RANGE") {
            Ok(v) if v == "off" || v == "0" => None,
            Ok(v) => match parse_range(&v) {
                Some(r) => Some(r),
                None => {
                    notes.push(format!(
                        "AIS_ETL_UID_RANGE={v:?} is not FIRST-LAST (uids above 0): using {}-{}",
                        DEFAULT_UID_RANGE.0, DEFAULT_UID_RANGE.1
                    ));
                    Some(DEFAULT_UID_RANGE)
                }
            },
            Err(_) => Some(DEFAULT_UID_RANGE),
        }
        .filter(|_| ids.is_some());
        let mut host = Host {
            enabled: true,
            ids,
            uid_range,
            uid,
            gid,
            cgroups,
            mountns: euid == 0,
            netns: euid == 0,
            seccomp: false,
            notes,
        };
        // Probe the namespaces with a real spawn (as the sandboxed uid).
        let (can_mount, can_net) = (host.mountns, host.netns);
        for (mountns, netns) in [(true, true), (false, true), (true, false), (false, false)] {
            if (mountns && !can_mount) || (netns && !can_net) {
                continue;
            }
            host.mountns = mountns;
            host.netns = netns;
            match host.probe() {
                Ok(()) => break,
                Err(e) => host.notes.push(format!(
                    "probe (mount namespace {mountns}, network namespace {netns}) failed: {e}"
                )),
            }
        }
        // The seccomp filter on top of what worked (a kernel without it, or
        // an architecture seccompiler does not know, runs without).
        if crate::seccomp::filters().is_some() {
            host.seccomp = true;
            if let Err(e) = host.probe() {
                host.seccomp = false;
                host.notes
                    .push(format!("seccomp filter could not be installed: {e}"));
            }
        } else {
            host.notes
                .push("no seccomp filter for this architecture".into());
        }
        host
    }

    fn probe(&self) -> std::io::Result<()> {
        let plan = Plan {
            cgroup_procs: Vec::new(),
            rlimits: Vec::new(),
            mount: self.mountns.then(MountPlan::default),
            netns: self.netns,
            chdir: None,
            ids: self.ids,
            seccomp: self.seccomp.then(crate::seccomp::filters).flatten(),
        };
        let mut cmd = std::process::Command::new("/bin/true");
        cmd.current_dir("/");
        // SAFETY: the hook makes only async-signal-safe calls (see `Plan::run`).
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, plan.hook());
        }
        let st = cmd.status()?;
        if st.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("probe exited with {st}")))
        }
    }

    /// Removes this target's (empty) cgroups, waiting up to `within` for
    /// the processes of the last killed ones to go.
    pub fn cleanup(&self, within: Duration) {
        let t0 = Instant::now();
        for (_, base) in &self.cgroups {
            loop {
                for c in std::fs::read_dir(base).into_iter().flatten().flatten() {
                    if c.path().is_dir() {
                        let _ = std::fs::remove_dir(c.path());
                    }
                }
                if std::fs::remove_dir(base).is_ok() || !base.exists() || t0.elapsed() > within {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn cgroup(&self, c: Ctrl) -> Option<&PathBuf> {
        self.cgroups.iter().find(|(x, _)| *x == c).map(|(_, p)| p)
    }
}

/// The sandbox of one ETL's processes.
#[derive(Debug)]
pub struct Sandbox {
    pub host: Arc<Host>,
    pub limits: Limits,
    pub network: bool,
    /// `<etl name>` (cgroup names are `<label>-<n>`).
    label: String,
    mount: Option<MountPlan>,
    workdir: CString,
    /// The uid/gid its processes run as (`None`: the target's own).
    ids: Option<(u32, u32)>,
}

/// Sandbox protections as `GET /v1/etl/NAME` reports them.
#[derive(Debug, Clone, Serialize)]
pub struct SandboxInfo {
    pub enabled: bool,
    pub uid: u32,
    pub gid: u32,
    /// Kill scope: "cgroup" (every descendant) or "process group".
    pub kill: String,
    pub pidns: bool,
    pub mountns: bool,
    pub netns: bool,
    /// "private (loopback only)" or "host" (and why).
    pub network: String,
    /// A seccomp filter denies tracing, other processes' memory, new user
    /// namespaces, mounts, keyrings and kernel loading.
    pub seccomp: bool,
    pub cgroups: Vec<Ctrl>,
    pub limits: serde_json::Value,
    pub notes: Vec<String>,
}

impl Sandbox {
    /// `rw`: the work dir; `ro`: what else the process must read (script,
    /// interpreter, environment, the command's files); `ids`: the ETL's own
    /// uid/gid ([`Host::identity`]), `None` for the host's default.
    pub fn new(
        host: Arc<Host>,
        label: &str,
        limits: Limits,
        network: bool,
        workdir: &Path,
        ro: &[PathBuf],
        ids: Option<(u32, u32)>,
    ) -> Result<Sandbox, EtlError> {
        let ids = ids.or(host.ids).filter(|_| host.ids.is_some());
        let (uid, gid) = ids.unwrap_or((host.uid, host.gid));
        let cs = |p: &Path| {
            CString::new(p.as_os_str().as_bytes())
                .map_err(|_| EtlError::Invalid(format!("path {} has a NUL byte", p.display())))
        };
        let mount = if host.enabled && host.mountns {
            let mut exp = vec![(workdir.to_path_buf(), true)];
            exp.extend(ro.iter().map(|p| (p.clone(), false)));
            Some(MountPlan::build(&exp, uid, gid)?)
        } else {
            None
        };
        Ok(Sandbox {
            host,
            limits,
            network,
            label: label.to_string(),
            mount,
            // The path as bound in the mount namespace (symlinks resolved).
            workdir: cs(&std::fs::canonicalize(workdir).unwrap_or_else(|_| workdir.to_path_buf()))?,
            ids,
        })
    }

    pub fn info(&self) -> SandboxInfo {
        let h = &self.host;
        let cg: Vec<Ctrl> = h.cgroups.iter().map(|(c, _)| *c).collect();
        let l = &self.limits;
        let mem_how = if h.cgroup(Ctrl::Memory).is_some() {
            "cgroup memory.limit_in_bytes"
        } else if l.memory.is_some() {
            "RLIMIT_AS"
        } else {
            "none"
        };
        let nproc_how = if h.cgroup(Ctrl::Pids).is_some() {
            "cgroup pids.max"
        } else {
            "RLIMIT_NPROC (per uid)"
        };
        let (uid, gid) = self.ids.unwrap_or((h.uid, h.gid));
        SandboxInfo {
            enabled: h.enabled,
            uid,
            gid,
            kill: if h.cgroup(Ctrl::Freezer).is_some() || h.cgroup(Ctrl::Pids).is_some() {
                "cgroup".into()
            } else {
                "process group".into()
            },
            pidns: false,
            mountns: h.enabled && h.mountns,
            netns: h.enabled && h.netns && !self.network,
            network: if self.network {
                "host (asked for, or a transformer server)".into()
            } else if h.enabled && h.netns {
                "private (loopback only)".into()
            } else {
                "host (this target cannot make network namespaces)".into()
            },
            seccomp: h.enabled && h.seccomp,
            cgroups: cg,
            limits: serde_json::json!({
                "memory": l.memory, "memory_enforced_by": mem_how,
                "nproc": l.nproc, "nproc_enforced_by": nproc_how,
                "nofile": l.nofile, "cpu_seconds": l.cpu_seconds, "output": l.output,
            }),
            notes: h.notes.clone(),
        }
    }

    /// Creates this process's cgroups and returns them with the hook that
    /// puts the child into the sandbox (register it before any other hook:
    /// a parent-death signal set before the uid change would be cleared).
    pub fn prepare(
        &self,
    ) -> std::io::Result<(Jail, impl FnMut() -> std::io::Result<()> + Send + Sync)> {
        let h = &self.host;
        let mut jail = Jail {
            dirs: Vec::new(),
            memory: self.limits.memory,
            cpu_seconds: self.limits.cpu_seconds,
        };
        if !h.enabled {
            return Ok((jail, Plan::default().hook()));
        }
        // Unique per target process: a cgroup of a stopped run of the same ETL
        // may still be being removed in the background.
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}-{n}", self.label);
        for (c, base) in &h.cgroups {
            let dir = base.join(&name);
            // (Re)created: another target's start-up sweep removes empty bases.
            let _ = std::fs::create_dir(base);
            let _ = std::fs::remove_dir(&dir);
            std::fs::create_dir(&dir)?;
            jail.dirs.push((*c, dir.clone()));
            match c {
                Ctrl::Memory => {
                    if let Some(m) = self.limits.memory {
                        std::fs::write(dir.join("memory.limit_in_bytes"), m.to_string())?;
                        // Without swap accounting this file is absent: fine.
                        let _ =
                            std::fs::write(dir.join("memory.memsw.limit_in_bytes"), m.to_string());
                    }
                }
                Ctrl::Pids => {
                    if let Some(p) = self.limits.nproc {
                        std::fs::write(dir.join("pids.max"), p.to_string())?;
                    }
                }
                Ctrl::Freezer => {}
            }
        }
        // No core files (a CPU-limit SIGXCPU would write one into the work dir).
        let mut rlimits = vec![(Rl::Core, 0, 0)];
        if let Some(n) = self.limits.nofile {
            rlimits.push((Rl::Nofile, n, n));
        }
        if let Some(s) = self.limits.cpu_seconds {
            // SIGXCPU at the soft limit, SIGKILL a little later.
            rlimits.push((Rl::Cpu, s, s + 2));
        }
        if h.cgroup(Ctrl::Memory).is_none() {
            if let Some(m) = self.limits.memory {
                rlimits.push((Rl::As, m, m));
            }
        }
        if h.cgroup(Ctrl::Pids).is_none() && self.ids.is_some() {
            if let Some(p) = self.limits.nproc {
                rlimits.push((Rl::Nproc, p, p));
            }
        }
        let cgroup_procs = jail
            .dirs
            .iter()
            .filter_map(|(_, d)| CString::new(d.join("cgroup.procs").as_os_str().as_bytes()).ok())
            .collect();
        let plan = Plan {
            cgroup_procs,
            rlimits,
            mount: self.mount.clone(),
            netns: h.netns && !self.network,
            chdir: self.mount.as_ref().map(|_| self.workdir.clone()),
            ids: self.ids,
            seccomp: h.seccomp.then(crate::seccomp::filters).flatten(),
        };
        Ok((jail, plan.hook()))
    }
}

#[derive(Debug, Clone, Copy)]
enum Rl {
    Core,
    Nofile,
    Cpu,
    As,
    Nproc,
}

/// What the child does between fork and exec (all strings prepared before).
#[derive(Debug, Default)]
struct Plan {
    cgroup_procs: Vec<CString>,
    rlimits: Vec<(Rl, u64, u64)>,
    mount: Option<MountPlan>,
    netns: bool,
    chdir: Option<CString>,
    ids: Option<(u32, u32)>,
    /// The seccomp filters to install last (`crate::seccomp`).
    seccomp: Option<&'static [seccompiler::BpfProgram]>,
}

#[derive(Debug, Default, Clone)]
struct MountPlan {
    /// Paths to bind back (must exist), read-write or not.
    exposures: Vec<(CString, bool)>,
    /// Directories others cannot traverse, covered by an empty tmpfs.
    masks: Vec<CString>,
    /// Mount points to create inside the masks, parents first.
    mkdirs: Vec<CString>,
    /// File mount points to create inside the masks.
    mkfiles: Vec<CString>,
}

/// Whether `uid`/`gid` may traverse a directory with these metadata.
/// Whether `uid`/`gid` can reach `p` by itself (every directory above it
/// traversable, `p` readable): what a bind into the sandbox may expose
/// without granting anything the permissions do not.
pub(crate) fn reachable(p: &Path, uid: u32, gid: u32) -> bool {
    let Ok(p) = std::fs::canonicalize(p) else {
        return false;
    };
    let ancestors_ok = p
        .ancestors()
        .skip(1)
        .all(|a| std::fs::metadata(a).is_ok_and(|m| traversable(&m, uid, gid)));
    let readable = std::fs::metadata(&p).is_ok_and(|m| {
        let mode = m.mode();
        let bit = if m.uid() == uid {
            0o400
        } else if m.gid() == gid {
            0o040
        } else {
            0o004
        };
        mode & bit != 0
    });
    ancestors_ok && readable
}

fn traversable(m: &std::fs::Metadata, uid: u32, gid: u32) -> bool {
    let mode = m.mode();
    if m.uid() == uid {
        return mode & 0o100 != 0;
    }
    if m.gid() == gid {
        return mode & 0o010 != 0;
    }
    mode & 0o001 != 0
}

impl MountPlan {
    fn build(exp: &[(PathBuf, bool)], uid: u32, gid: u32) -> Result<MountPlan, EtlError> {
        let cs = |p: &Path| CString::new(p.as_os_str().as_bytes()).ok();
        let mut plan = MountPlan::default();
        let mut seen = std::collections::HashSet::new();
        for (p, rw) in exp {
            let Ok(p) = std::fs::canonicalize(p) else {
                continue;
            };
            if !seen.insert(p.clone()) {
                continue;
            }
            // The topmost ancestor that uid/gid cannot traverse.
            let mut blocked: Option<PathBuf> = None;
            let mut cur = PathBuf::from("/");
            for comp in p
                .parent()
                .map(Path::components)
                .into_iter()
                .flatten()
                .skip(1)
            {
                cur.push(comp);
                match std::fs::metadata(&cur) {
                    Ok(m) if !traversable(&m, uid, gid) => {
                        blocked = Some(cur.clone());
                        break;
                    }
                    _ => {}
                }
            }
            let Some(mask) = blocked else {
                // Reachable as it is; a writable one is bound onto itself so
                // that it stays writable when everything else turns read-only.
                if *rw {
                    if let Some(c) = cs(&p) {
                        plan.exposures.push((c, true));
                    }
                }
                continue;
            };
            let is_dir = std::fs::metadata(&p).map(|m| m.is_dir()).unwrap_or(false);
            if let Some(c) = cs(&mask) {
                if !plan.masks.contains(&c) {
                    plan.masks.push(c);
                }
            }
            let Ok(rel) = p.strip_prefix(&mask) else {
                continue;
            };
            let mut d = mask.clone();
            let comps: Vec<_> = rel.components().collect();
            for (i, comp) in comps.iter().enumerate() {
                d.push(comp);
                let last = i + 1 == comps.len();
                if let Some(c) = cs(&d) {
                    if last && !is_dir {
                        plan.mkfiles.push(c);
                    } else if !plan.mkdirs.contains(&c) {
                        plan.mkdirs.push(c);
                    }
                }
            }
            if let Some(c) = cs(&p) {
                plan.exposures.push((c, *rw));
            }
        }
        // A mask inside another one is created as a directory of the outer tmpfs.
        let all = plan.masks.clone();
        plan.masks.retain(|m| {
            !all.iter().any(|o| {
                o != m
                    && m.as_bytes().starts_with(o.as_bytes())
                    && m.as_bytes()[o.as_bytes().len()] == b'/'
            })
        });
        Ok(plan)
    }
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn err() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// SAFETY (all of these): raw syscalls on NUL-terminated strings we own.
unsafe fn setattr(
    dfd: i32,
    path: *const libc::c_char,
    flags: libc::c_uint,
    set: u64,
    clr: u64,
) -> i64 {
    let a = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    libc::syscall(
        libc::SYS_mount_setattr,
        dfd,
        path,
        flags,
        &a as *const MountAttr,
        std::mem::size_of::<MountAttr>(),
    )
}

impl MountPlan {
    /// In the child, as root, before the uid change. Async-signal-safe.
    fn run(&self, fds: &mut [i32]) -> std::io::Result<()> {
        let empty = c"".as_ptr();
        // SAFETY: syscalls on prepared strings and our own descriptors.
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS) < 0 {
                return Err(err());
            }
            if libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) < 0
            {
                return Err(err());
            }
            for (i, (p, rw)) in self.exposures.iter().enumerate() {
                let fd = libc::syscall(
                    libc::SYS_open_tree,
                    libc::AT_FDCWD,
                    p.as_ptr(),
                    OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | AT_RECURSIVE,
                ) as i32;
                if fd < 0 {
                    return Err(err());
                }
                fds[i] = fd;
                let set =
                    MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | if *rw { 0 } else { MOUNT_ATTR_RDONLY };
                if setattr(
                    fd,
                    empty,
                    libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
                    set,
                    0,
                ) < 0
                {
                    return Err(err());
                }
            }
            for m in &self.masks {
                if libc::mount(
                    c"tmpfs".as_ptr(),
                    m.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    c"mode=0711,size=1m".as_ptr().cast(),
                ) < 0
                {
                    return Err(err());
                }
            }
            for d in &self.mkdirs {
                // Traversable, not listable: the skeleton reveals no names.
                if libc::mkdir(d.as_ptr(), 0o711) < 0 && *libc::__errno_location() != libc::EEXIST {
                    return Err(err());
                }
            }
            for f in &self.mkfiles {
                let fd = libc::open(
                    f.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o644,
                );
                if fd < 0 {
                    return Err(err());
                }
                libc::close(fd);
            }
            // Everything read-only, ...
            if setattr(
                libc::AT_FDCWD,
                c"/".as_ptr(),
                AT_RECURSIVE,
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID,
                0,
            ) < 0
            {
                return Err(err());
            }
            // ... except devices (best effort: /dev may not be a mount) and a private /dev/shm.
            let _ = setattr(libc::AT_FDCWD, c"/dev".as_ptr(), 0, 0, MOUNT_ATTR_RDONLY);
            let _ = libc::mount(
                c"tmpfs".as_ptr(),
                c"/dev/shm".as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                c"mode=1777,size=64m".as_ptr().cast(),
            );
            for (i, (p, _)) in self.exposures.iter().enumerate() {
                if libc::syscall(
                    libc::SYS_move_mount,
                    fds[i],
                    empty,
                    libc::AT_FDCWD,
                    p.as_ptr(),
                    MOVE_MOUNT_F_EMPTY_PATH,
                ) < 0
                {
                    return Err(err());
                }
                libc::close(fds[i]);
                fds[i] = -1;
            }
        }
        Ok(())
    }
}

/// Loopback up in a fresh network namespace (best effort).
fn loopback_up() {
    // SAFETY: a socket and two ioctls on a zeroed ifreq we own.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return;
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(s, libc::SIOCGIFFLAGS as _, &mut ifr) == 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(s, libc::SIOCSIFFLAGS as _, &mut ifr);
        }
        libc::close(s);
    }
}

impl Plan {
    fn hook(self) -> impl FnMut() -> std::io::Result<()> + Send + Sync {
        let mut fds = vec![-1i32; self.mount.as_ref().map_or(0, |m| m.exposures.len())];
        move || self.run(&mut fds)
    }

    /// In the child between fork and exec: only async-signal-safe calls.
    fn run(&self, fds: &mut [i32]) -> std::io::Result<()> {
        // SAFETY: raw syscalls on prepared strings; this is the forked child.
        unsafe {
            for p in &self.cgroup_procs {
                let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(err());
                }
                // "0": the writing process itself.
                let r = libc::write(fd, c"0".as_ptr().cast(), 1);
                libc::close(fd);
                if r < 0 {
                    return Err(err());
                }
            }
            for (which, soft, hard) in &self.rlimits {
                let r = libc::rlimit {
                    rlim_cur: *soft,
                    rlim_max: *hard,
                };
                let res = match which {
                    Rl::Core => libc::setrlimit(libc::RLIMIT_CORE, &r),
                    Rl::Nofile => libc::setrlimit(libc::RLIMIT_NOFILE, &r),
                    Rl::Cpu => libc::setrlimit(libc::RLIMIT_CPU, &r),
                    Rl::As => libc::setrlimit(libc::RLIMIT_AS, &r),
                    Rl::Nproc => libc::setrlimit(libc::RLIMIT_NPROC, &r),
                };
                if res < 0 {
                    return Err(err());
                }
            }
            if let Some(m) = &self.mount {
                m.run(fds)?;
            }
            if self.netns {
                if libc::unshare(libc::CLONE_NEWNET) < 0 {
                    return Err(err());
                }
                loopback_up();
            }
            if let Some(d) = &self.chdir {
                if libc::chdir(d.as_ptr()) < 0 {
                    return Err(err());
                }
            }
            if let Some((uid, gid)) = self.ids {
                if libc::setgroups(0, std::ptr::null()) < 0
                    || libc::setgid(gid) < 0
                    || libc::setuid(uid) < 0
                {
                    return Err(err());
                }
                if libc::getuid() != uid || libc::geteuid() != uid {
                    return Err(std::io::Error::other("setuid did not take"));
                }
            }
            if self.ids.is_some() || self.mount.is_some() {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            }
        }
        if let Some(f) = self.seccomp {
            crate::seccomp::install(f)?;
        }
        Ok(())
    }
}

/// The first cgroup of every jail handed to a reaper thread (tests only).
#[cfg(test)]
static REAPERS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// One sandboxed process's cgroups: killing it kills every descendant.
#[derive(Debug, Default)]
pub struct Jail {
    dirs: Vec<(Ctrl, PathBuf)>,
    memory: Option<u64>,
    cpu_seconds: Option<u64>,
}

fn read_pids(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|p: &i32| *p > 1)
        .collect()
}

impl Jail {
    fn single(c: Ctrl, dir: PathBuf) -> Jail {
        Jail {
            dirs: vec![(c, dir)],
            ..Default::default()
        }
    }

    fn dir(&self, c: Ctrl) -> Option<&PathBuf> {
        self.dirs.iter().find(|(x, _)| *x == c).map(|(_, d)| d)
    }

    /// SIGKILL to every process in the cgroup (frozen first, so none can fork
    /// meanwhile, where the freezer is available). Returns how many were signalled.
    pub fn kill_all(&self) -> usize {
        let Some((_, dir)) = self.dirs.first() else {
            return 0;
        };
        let freezer = self.dir(Ctrl::Freezer);
        if let Some(f) = freezer {
            let _ = std::fs::write(f.join("freezer.state"), "FROZEN");
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_millis(500) {
                match std::fs::read_to_string(f.join("freezer.state")) {
                    Ok(s) if s.trim() == "FREEZING" => std::thread::sleep(Duration::from_millis(2)),
                    _ => break,
                }
            }
        }
        let mut n = 0;
        for _ in 0..100 {
            let pids = read_pids(dir);
            if pids.is_empty() {
                break;
            }
            for p in &pids {
                // SAFETY: a pid read from our own cgroup.
                unsafe {
                    libc::kill(*p, libc::SIGKILL);
                }
            }
            n += pids.len();
            if let Some(f) = freezer {
                let _ = std::fs::write(f.join("freezer.state"), "THAWED");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if let Some(f) = freezer {
            let _ = std::fs::write(f.join("freezer.state"), "THAWED");
        }
        n
    }

    /// Removes the cgroups once empty (waits up to `within`).
    fn remove(&self, within: Duration) {
        let t0 = Instant::now();
        for (_, d) in &self.dirs {
            while std::fs::remove_dir(d).is_err() && d.exists() && t0.elapsed() < within {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Kills everything now and removes the cgroups in the background.
    pub fn destroy(&mut self) {
        if self.dirs.is_empty() {
            return;
        }
        self.kill_all();
        let mut j = Jail {
            dirs: std::mem::take(&mut self.dirs),
            ..Default::default()
        };
        #[cfg(test)]
        if let (Ok(mut r), Some((_, d))) = (REAPERS.lock(), j.dirs.first()) {
            r.push(d.clone());
        }
        std::thread::spawn(move || {
            j.kill_all();
            j.remove(Duration::from_secs(10));
            // Emptied before `j` drops: its `Drop` would otherwise destroy
            // the same cgroups again, in a new thread, forever.
            j.dirs.clear();
        });
    }

    /// Why the process died, if a limit killed it.
    pub fn limit_death(&self, status: Option<std::process::ExitStatus>) -> Option<String> {
        use std::os::unix::process::ExitStatusExt;
        if let (Some(d), Some(m)) = (self.dir(Ctrl::Memory), self.memory) {
            let oc = std::fs::read_to_string(d.join("memory.oom_control")).unwrap_or_default();
            let kills: u64 = oc
                .lines()
                .find_map(|l| l.strip_prefix("oom_kill "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if kills > 0 {
                return Some(format!(
                    "worker exceeded its memory limit ({})",
                    fmt_size(m)
                ));
            }
        }
        if let (Some(s), Some(st)) = (self.cpu_seconds, status) {
            if st.signal() == Some(libc::SIGXCPU) || st.signal() == Some(libc::SIGKILL) {
                // SIGKILL at the hard limit, SIGXCPU at the soft one.
                return Some(format!("worker exceeded its CPU time limit ({s} s)"));
            }
        }
        None
    }
}

impl Drop for Jail {
    fn drop(&mut self) {
        self.destroy();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A destroyed jail is reaped by exactly one background thread: the
    /// reaper's own copy must not destroy the cgroups again when it drops
    /// (that respawned reapers in a loop and kept a target's CPU busy
    /// after every ETL stop).
    #[test]
    fn a_destroyed_jail_is_reaped_once() {
        let t = crate::testutil::TempDir::new();
        let dir = t.path().join("cg-unit-0");
        std::fs::create_dir_all(&dir).unwrap();
        let mut j = Jail::single(Ctrl::Memory, dir.clone());
        j.destroy();
        j.destroy();
        drop(j);
        let deadline = Instant::now() + Duration::from_secs(5);
        while dir.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            !dir.exists(),
            "the reaper did not remove the empty cgroup dir"
        );
        std::thread::sleep(Duration::from_millis(300));
        let n = REAPERS
            .lock()
            .unwrap()
            .iter()
            .filter(|d| **d == dir)
            .count();
        assert_eq!(n, 1, "reaper threads started for one jail: {n}");
    }

    /// As root: a sandboxed child runs as nobody, cannot write outside its
    /// work dir, has no network, and dies with its cgroup — a `setsid()`
    /// grandchild included.
    #[test]
    fn sandboxed_child_is_confined_and_killed_whole() {
        // SAFETY: a getter.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        let host = Arc::new(Host::detect(&format!(
            "aistore-rs-etl-test-{}",
            std::process::id()
        )));
        let t = crate::testutil::TempDir::new();
        let work = t.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        std::os::unix::fs::chown(&work, Some(host.uid), Some(host.gid)).unwrap();
        let limits = Limits {
            nproc: Some(64),
            memory: Some(64 << 20),
            nofile: Some(64),
            ..Default::default()
        };
        let sb = Sandbox::new(host.clone(), "unit", limits, false, &work, &[], None).unwrap();
        let info = sb.info();
        assert!(info.enabled && info.uid != 0, "{info:?}");
        let outside = format!("/tmp/ais-sbx-unit-{}", std::process::id());
        let script = format!(
            "id -u; ulimit -n; (touch {outside} 2>/dev/null && echo wrote) || echo denied; \
             touch ok && echo inside; setsid sleep 300 & sleep 300"
        );
        let (jail, hook) = sb.prepare().unwrap();
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.args(["-c", &script])
            .current_dir(&work)
            .stdout(std::process::Stdio::piped());
        // SAFETY: the hook only makes async-signal-safe calls.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, hook);
        }
        let mut child = cmd.spawn().unwrap();
        let mut out = String::new();
        let mut stdout = child.stdout.take().unwrap();
        let t0 = Instant::now();
        let mut buf = [0u8; 256];
        while !out.contains("inside") && t0.elapsed() < Duration::from_secs(10) {
            use std::io::Read;
            let n = stdout.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            vec![host.uid.to_string().as_str(), "64", "denied", "inside"],
            "{out}"
        );
        assert!(!Path::new(&outside).exists());
        assert!(work.join("ok").exists());
        std::thread::sleep(Duration::from_millis(200));
        let procs = jail
            .dirs
            .first()
            .map(|(_, d)| read_pids(d))
            .unwrap_or_default();
        assert!(
            procs.len() >= 3,
            "sh, sleep and the setsid sleep: {procs:?}"
        );
        assert!(jail.kill_all() >= 3);
        child.wait().unwrap();
        for p in procs {
            assert!(!crate::testutil::alive(p as u32), "{p} survived");
        }
        jail.remove(Duration::from_secs(5));
        drop(jail);
        for (_, base) in &host.cgroups {
            let _ = std::fs::remove_dir(base);
        }
    }

    #[test]
    fn ids_from_files() {
        assert_eq!(lookup_id("/etc/passwd", "root"), Some(0));
        assert_eq!(lookup_id("/etc/passwd", "no-such-user-xyz"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(fmt_size(512 << 20), "512 MiB");
        assert_eq!(fmt_size(4 << 30), "4 GiB");
        assert_eq!(fmt_size(100), "100 bytes");
    }

    /// Paths under a directory others cannot traverse get that directory
    /// masked and themselves (with their parents) recreated inside it.
    #[test]
    fn mount_plan_masks_blocked_ancestors() {
        use std::os::unix::fs::PermissionsExt;
        let t = crate::testutil::TempDir::new();
        let root = t.path().join("data");
        let work = root.join("etl").join("my-etl");
        std::fs::create_dir_all(&work).unwrap();
        let script = root.join("etl").join("w.py");
        std::fs::write(&script, "").unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        let open = t.path().join("open");
        std::fs::create_dir_all(&open).unwrap();
        let plan = MountPlan::build(
            &[
                (work.clone(), true),
                (script.clone(), false),
                (open.clone(), false),
            ],
            65534,
            65534,
        )
        .unwrap();
        let s = |p: &Path| CString::new(p.as_os_str().as_bytes()).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        // The temp dir itself may sit under a blocked directory (e.g. /root).
        let first_mask = plan.masks[0].to_str().unwrap().to_string();
        assert!(root.starts_with(&first_mask), "{plan:?}");
        assert!(
            plan.mkdirs.contains(&s(&root.join("etl").join("my-etl"))),
            "{plan:?}"
        );
        assert!(
            plan.mkfiles.contains(&s(&root.join("etl").join("w.py"))),
            "{plan:?}"
        );
        assert_eq!(
            plan.exposures.len(),
            2 + usize::from(first_mask != root.to_str().unwrap()),
            "{plan:?}"
        );
        assert!(plan
            .exposures
            .contains(&(s(&root.join("etl").join("my-etl")), true)));
    }
}
