//! Signals and orderly stops: SIGTERM to the group, a grace period, SIGKILL,
//! reap.

use crate::{procfs, ProcError};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(20);

fn checked(pid: u32) -> Result<i32, ProcError> {
    // 0 and 1 (and their negatives) address our own group, init, or
    // everything; above i32::MAX the cast would turn negative.
    match i32::try_from(pid) {
        Ok(p) if p > 1 => Ok(p),
        _ => Err(ProcError::BadPid(pid)),
    }
}

fn kill(target: i32, sig: i32, what: String) -> Result<(), ProcError> {
    // SAFETY: kill(2) with a validated pid or negated pgid.
    if unsafe { libc::kill(target, sig) } < 0 {
        return Err(ProcError::Signal {
            target: what,
            sig,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Sends `sig` to process `pid`. Prefer [`stop`] or a verified
/// [`crate::ProcId`]: a bare pid may have been reused.
pub fn signal(pid: u32, sig: i32) -> Result<(), ProcError> {
    kill(checked(pid)?, sig, format!("pid {pid}"))
}

/// Sends `sig` to every process in group `pgid` (refuses 0 and 1).
pub fn signal_group(pgid: u32, sig: i32) -> Result<(), ProcError> {
    kill(-checked(pgid)?, sig, format!("process group {pgid}"))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Peek {
    Running,
    /// Exited, not yet reaped: its pid (and group id) cannot be reused yet.
    Exited,
    /// Not our child any more (already reaped).
    Gone,
}

/// Looks at a child's exit without reaping it (`waitid` with `WNOWAIT`).
fn peek(pid: u32) -> Peek {
    // SAFETY: waitid on our own child with a zeroed siginfo out-parameter.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
        );
        if r < 0 {
            Peek::Gone
        } else if info.si_pid() == 0 {
            Peek::Running
        } else {
            Peek::Exited
        }
    }
}

/// A child being stopped: pid and whether it leads its own group.
#[derive(Clone, Copy)]
struct Victim {
    pid: u32,
    group: bool,
}

impl Victim {
    fn new(pid: u32) -> Option<Self> {
        (peek(pid) != Peek::Gone).then(|| Self {
            pid,
            group: procfs::is_group_leader(pid),
        })
    }

    fn send(&self, sig: i32) {
        // Only while the leader is unreaped: then neither its pid nor its
        // group id can name anybody else. ESRCH (all gone) is fine.
        if peek(self.pid) == Peek::Gone {
            return;
        }
        let _ = if self.group {
            signal_group(self.pid, sig)
        } else {
            signal(self.pid, sig)
        };
    }

    fn done(&self) -> bool {
        match peek(self.pid) {
            Peek::Running => false,
            Peek::Gone => true,
            Peek::Exited => !self.group || procfs::group_members(self.pid).is_empty(),
        }
    }
}

/// Stops several children at once: SIGTERM to each one's group (or the
/// process when it leads none), wait up to `grace` for all of them (and
/// their groups) to exit, SIGKILL what is left, reap. Children that were
/// already reaped are left alone.
pub fn stop_all(children: &mut [&mut Child], grace: Duration) -> Vec<std::io::Result<ExitStatus>> {
    let victims: Vec<Option<Victim>> = children.iter().map(|c| Victim::new(c.id())).collect();
    for v in victims.iter().flatten() {
        v.send(libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while !victims.iter().flatten().all(Victim::done) && Instant::now() < deadline {
        std::thread::sleep(POLL);
    }
    for v in victims.iter().flatten() {
        if !v.done() {
            v.send(libc::SIGKILL);
        }
    }
    children.iter_mut().map(|c| c.wait()).collect()
}

/// SIGTERM (group), up to `grace`, SIGKILL (group), reap.
pub fn stop(child: &mut Child, grace: Duration) -> std::io::Result<ExitStatus> {
    stop_all(&mut [child], grace)
        .pop()
        .unwrap_or_else(|| Err(std::io::Error::other("no child")))
}

/// SIGKILL to the child's group (or the child) right away, then reap: a
/// crash, as far as the child can tell.
pub fn kill_now(child: &mut Child) -> std::io::Result<ExitStatus> {
    if let Some(v) = Victim::new(child.id()) {
        v.send(libc::SIGKILL);
    }
    child.wait()
}

/// [`stop`] for a tokio child (polls without blocking the runtime).
pub async fn stop_tokio(
    child: &mut tokio::process::Child,
    grace: Duration,
) -> std::io::Result<ExitStatus> {
    let Some(v) = child.id().and_then(Victim::new) else {
        return child.wait().await;
    };
    v.send(libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while !v.done() && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
    }
    if !v.done() {
        v.send(libc::SIGKILL);
    }
    child.wait().await
}
