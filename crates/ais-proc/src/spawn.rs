//! Spawning with an own process group, a parent-death signal, fd 3, and an
//! identity ([`ProcId`]) that can be verified later.

use crate::{procfs, ProcError};
use serde::{Deserialize, Serialize};
use std::os::fd::RawFd;

/// Environment variable carrying a child's random identity token.
pub const TOKEN_ENV: &str = "AIS_PROC_TOKEN";

/// How to start a child.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpawnOpts {
    /// `setsid()`: the child leads a new session and process group. Terminal
    /// signals (Ctrl-C) no longer reach it directly, and [`crate::stop`]
    /// signals the whole group (grandchildren included).
    pub own_group: bool,
    /// `PR_SET_PDEATHSIG`: signal the child gets when the *thread* that
    /// spawned it exits — spawn long-lived children from a long-lived thread.
    /// Set before `exec`; if the parent already died by then, the child
    /// signals itself at once.
    pub parent_death_signal: Option<i32>,
    /// Make this descriptor the child's fd 3 (inherited across `exec`).
    pub fd3: Option<RawFd>,
}

impl SpawnOpts {
    /// Own process group and SIGKILL on parent death: what workers and
    /// servers started by a long-lived process want.
    pub fn isolated() -> Self {
        Self {
            own_group: true,
            parent_death_signal: Some(libc::SIGKILL),
            fd3: None,
        }
    }
}

/// A started process's identity: pid, start time and token. Valid for the
/// boot it was taken in (see [`crate::PidRegistry`], which records the boot).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcId {
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks since boot).
    pub start_time: u64,
    /// Value of [`TOKEN_ENV`] in the child's environment.
    pub token: String,
    /// The child leads its own process group (pgid == pid).
    pub group: bool,
}

impl ProcId {
    /// This process's own identity (its token is the one it was started
    /// with, if any; an empty token is not checked).
    pub fn current() -> Result<Self, ProcError> {
        let pid = std::process::id();
        Ok(Self {
            pid,
            start_time: procfs::start_time(pid)?,
            token: std::env::var(TOKEN_ENV).unwrap_or_default(),
            group: false,
        })
    }

    /// True when `pid` is still this very process: same start time, and the
    /// token (unless empty) is in its environment when that is readable. A zombie (exited,
    /// not yet reaped) still counts; a reused pid never does.
    pub fn is_alive(&self) -> bool {
        match procfs::start_time(self.pid) {
            Ok(st) if st == self.start_time => {
                self.token.is_empty()
                    || procfs::environ_has(self.pid, TOKEN_ENV, &self.token) != Some(false)
            }
            _ => false,
        }
    }
}

impl ProcId {
    /// Sends `sig` only if this is provably still the process recorded
    /// ([`ProcId::is_alive`]): to its group when it was started as a group
    /// leader and still leads it, else to the process. `Ok(false)`: not
    /// alive, nothing signalled. For holders of an id without a `Child`
    /// (e.g. ETL workers' pid files).
    pub fn signal(&self, sig: i32) -> Result<bool, ProcError> {
        if !self.is_alive() {
            return Ok(false);
        }
        if self.group && procfs::is_group_leader(self.pid) {
            crate::stop::signal_group(self.pid, sig)?;
        } else {
            crate::stop::signal(self.pid, sig)?;
        }
        Ok(true)
    }

    /// Sends `sig` to everything of this process that can be proven ours:
    /// like [`ProcId::signal`] while it is alive; once it is gone (reaped),
    /// and it led a group, to the members of that group that carry its
    /// token (children it left behind). The group id stays allocated while
    /// members exist, and a live process with this pid but another start
    /// time means the old group is empty. Returns the pids signalled.
    pub fn signal_all(&self, sig: i32) -> Result<Vec<u32>, ProcError> {
        if self.signal(sig)? {
            return Ok(vec![self.pid]);
        }
        Ok(self.signal_orphans(sig))
    }

    /// The members of this (gone) leader's group that carry its token.
    pub(crate) fn signal_orphans(&self, sig: i32) -> Vec<u32> {
        if !self.group || self.token.is_empty() || procfs::start_time(self.pid).is_ok() {
            return Vec::new();
        }
        procfs::group_members(self.pid)
            .into_iter()
            .filter(|m| {
                procfs::environ_has(*m, TOKEN_ENV, &self.token) == Some(true)
                    && crate::stop::signal(*m, sig).is_ok()
            })
            .collect()
    }
}

fn new_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The closure run in the child between `fork` and `exec`: empty signal
/// mask, then `opts`. Only async-signal-safe calls.
fn pre_exec(opts: SpawnOpts, parent: u32) -> impl FnMut() -> std::io::Result<()> + Send + Sync {
    move || {
        // SAFETY: sigemptyset/pthread_sigmask/setsid/getpgrp/getpid/prctl/
        // getppid/kill/dup2/fcntl are
        // async-signal-safe and touch only this (child) process.
        unsafe {
            // A clean signal mask: a supervisor that takes SIGINT/SIGTERM
            // with sigwait has them blocked, and the mask survives exec — a
            // child would never see SIGTERM (nor a SIGTERM parent-death
            // signal).
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            if libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::other("pthread_sigmask"));
            }
            // A second registered hook (same Command spawned twice) finds the
            // child already leading its group: that is fine.
            if opts.own_group && libc::setsid() < 0 && libc::getpgrp() != libc::getpid() {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(sig) = opts.parent_death_signal {
                if libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl.
                if libc::getppid() as u32 != parent {
                    libc::kill(libc::getpid(), sig);
                }
            }
            if let Some(fd) = opts.fd3 {
                if fd == 3 {
                    // dup2(3, 3) is a no-op that would leave FD_CLOEXEC set.
                    let fl = libc::fcntl(3, libc::F_GETFD);
                    if fl < 0 || libc::fcntl(3, libc::F_SETFD, fl & !libc::FD_CLOEXEC) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                } else if libc::dup2(fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // Nothing else crosses the exec: a descriptor the parent
            // inherited without FD_CLOEXEC (a pipe of the shell that started
            // the node, a socket a library opened) must not reach a child
            // that runs untrusted code. Marked close-on-exec, not closed, so
            // the spawner's exec-status pipe still reports a failed exec.
            let first: libc::c_uint = if opts.fd3.is_some() { 4 } else { 3 };
            cloexec_from(first)?;
        }
        Ok(())
    }
}

/// Marks every descriptor from `first` up close-on-exec: one
/// `close_range(CLOSE_RANGE_CLOEXEC)` (Linux 5.11+), else `fcntl` over the
/// descriptor table's size. Async-signal-safe (runs between fork and exec).
fn cloexec_from(first: libc::c_uint) -> std::io::Result<()> {
    // SAFETY: raw syscalls on this (child) process's descriptor table.
    unsafe {
        let r = libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        if r == 0 {
            return Ok(());
        }
        let mut lim: libc::rlimit = std::mem::zeroed();
        let top = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur.min(1 << 20) as libc::c_int
        } else {
            1 << 16
        };
        for fd in first as libc::c_int..top {
            let fl = libc::fcntl(fd, libc::F_GETFD);
            if fl >= 0 && fl & libc::FD_CLOEXEC == 0 {
                libc::fcntl(fd, libc::F_SETFD, fl | libc::FD_CLOEXEC);
            }
        }
    }
    Ok(())
}

fn identify(pid: u32, token: String, opts: &SpawnOpts) -> Result<ProcId, ProcError> {
    // The child has exec'd (spawn waits for that) and is at worst a zombie:
    // its stat is readable until we reap it.
    Ok(ProcId {
        pid,
        start_time: procfs::start_time(pid)?,
        token,
        group: opts.own_group,
    })
}

/// Spawns `cmd` (use a fresh `Command` per spawn) with `opts` and a new
/// [`TOKEN_ENV`]; returns the child and its identity.
pub fn spawn(
    cmd: &mut std::process::Command,
    opts: &SpawnOpts,
) -> Result<(std::process::Child, ProcId), ProcError> {
    use std::os::unix::process::CommandExt;
    let token = new_token();
    cmd.env(TOKEN_ENV, &token);
    // SAFETY: the hook only makes async-signal-safe calls (see `pre_exec`).
    unsafe {
        cmd.pre_exec(pre_exec(*opts, std::process::id()));
    }
    let mut child = cmd.spawn().map_err(|source| ProcError::Spawn {
        program: cmd.get_program().to_string_lossy().into_owned(),
        source,
    })?;
    match identify(child.id(), token, opts) {
        Ok(id) => Ok((child, id)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// [`spawn`] for `tokio::process::Command`.
pub fn spawn_tokio(
    cmd: &mut tokio::process::Command,
    opts: &SpawnOpts,
) -> Result<(tokio::process::Child, ProcId), ProcError> {
    let token = new_token();
    cmd.env(TOKEN_ENV, &token);
    // SAFETY: the hook only makes async-signal-safe calls (see `pre_exec`).
    unsafe {
        cmd.pre_exec(pre_exec(*opts, std::process::id()));
    }
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let mut child = cmd.spawn().map_err(|source| ProcError::Spawn {
        program: program.clone(),
        source,
    })?;
    let pid = child.id().ok_or_else(|| ProcError::Spawn {
        program,
        source: std::io::Error::other("child exited and was reaped at once"),
    })?;
    match identify(pid, token, opts) {
        Ok(id) => Ok((child, id)),
        Err(e) => {
            let _ = child.start_kill();
            Err(e)
        }
    }
}
