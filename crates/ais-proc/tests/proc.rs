//! Real processes (`sh`, `sleep`): spawn + ready line, stop with grace,
//! group kill, and the registry's refusal to signal a reused pid.

use ais_proc::{
    spawn, spawn_tokio, stop, stop_tokio, wait_ready_line, PidRegistry, ProcId, SpawnOpts,
    TOKEN_ENV,
};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn alive(pid: u32) -> bool {
    // A zombie is not alive for these tests' purposes.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let rest = &s[s.rfind(')').unwrap() + 1..];
            rest.split_whitespace().next() != Some("Z")
        })
        .unwrap_or(false)
}

fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script);
    c
}

/// Spawns a shell script that prints `READY [<pid>]` (of a background
/// child) and returns the child, its identity and that pid (0 if none).
fn spawn_ready(script: &str, opts: &SpawnOpts) -> (std::process::Child, ais_proc::ProcId, u32) {
    let mut cmd = sh(script);
    cmd.stdout(Stdio::piped());
    let (mut child, id) = spawn(&mut cmd, opts).unwrap();
    let line = wait_ready_line(
        child.stdout.take().unwrap(),
        "READY",
        Duration::from_secs(10),
    )
    .unwrap();
    let pid = line
        .split_whitespace()
        .nth(1)
        .map_or(0, |p| p.parse().unwrap());
    (child, id, pid)
}

fn group() -> SpawnOpts {
    SpawnOpts {
        own_group: true,
        ..Default::default()
    }
}

#[test]
fn spawn_ready_line_token_and_group() {
    let mut cmd = sh("echo starting; echo \"READY 1 $AIS_PROC_TOKEN\"; echo after; exec sleep 30");
    cmd.stdout(Stdio::piped());
    let (mut child, id) = spawn(&mut cmd, &group()).unwrap();
    let out = child.stdout.take().unwrap();
    let line = wait_ready_line(out, "READY", Duration::from_secs(10)).unwrap();
    assert_eq!(line, format!("READY 1 {}", id.token));
    assert_eq!(id.pid, child.id());
    assert!(id.group && ais_proc::is_group_leader(id.pid));
    assert!(id.is_alive());
    // (The environment reads empty for a moment while `sh` execs `sleep`.)
    let want = format!("{TOKEN_ENV}={}", id.token);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let env = std::fs::read(format!("/proc/{}/environ", id.pid)).unwrap();
        if env.split(|b| *b == 0).any(|kv| kv == want.as_bytes()) {
            break;
        }
        assert!(Instant::now() < deadline, "no {want} in the environment");
        std::thread::sleep(Duration::from_millis(10));
    }
    let st = stop(&mut child, Duration::from_secs(5)).unwrap();
    assert!(!st.success());
    assert!(!id.is_alive(), "reaped: not alive any more");
}

#[test]
fn ready_line_fails_on_exit_and_timeout() {
    let mut cmd = sh("echo hello; echo world");
    cmd.stdout(Stdio::piped());
    let (mut child, _) = spawn(&mut cmd, &SpawnOpts::default()).unwrap();
    let err = wait_ready_line(
        child.stdout.take().unwrap(),
        "READY",
        Duration::from_secs(10),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("output ended") && err.contains("hello\nworld"),
        "{err}"
    );
    child.wait().unwrap();

    let mut cmd = sh("echo waiting; exec sleep 30");
    cmd.stdout(Stdio::piped());
    let (mut child, _) = spawn(&mut cmd, &group()).unwrap();
    let t = Instant::now();
    let err = wait_ready_line(
        child.stdout.take().unwrap(),
        "READY",
        Duration::from_millis(300),
    )
    .unwrap_err()
    .to_string();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(err.contains("within") && err.contains("waiting"), "{err}");
    stop(&mut child, Duration::from_secs(5)).unwrap();
}

#[test]
fn stop_kills_a_child_that_ignores_term_after_the_grace() {
    // The shell ignores TERM and so does its `sleep` (ignored dispositions
    // survive exec).
    let (mut child, _, _) = spawn_ready("trap '' TERM; echo READY; sleep 60; sleep 60", &group());
    let t = Instant::now();
    let st = stop(&mut child, Duration::from_millis(500)).unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(450),
        "waited the grace: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "then killed: {took:?}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc_sigkill()));

    // One that honours TERM is not made to wait the grace.
    let (mut child, _, _) = spawn_ready("echo READY; exec sleep 60", &group());
    let t = Instant::now();
    let st = stop(&mut child, Duration::from_secs(20)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(15));
}

fn libc_sigkill() -> i32 {
    ais_proc::SIGKILL
}

#[test]
fn group_stop_takes_grandchildren() {
    // A grandchild in the background that ignores TERM: only the group KILL
    // after the grace gets it.
    let (mut child, _, grandchild) = spawn_ready(
        "(trap '' TERM; exec sleep 60) & echo \"READY $!\"; wait",
        &group(),
    );
    assert!(alive(grandchild));
    stop(&mut child, Duration::from_millis(300)).unwrap();
    assert!(
        wait_gone(grandchild, Duration::from_secs(5)),
        "grandchild {grandchild} survived the group stop"
    );

    // Without an own group, stop addresses only the child.
    let mut cmd = sh("sleep 60 & echo \"READY $!\"; wait");
    cmd.stdout(Stdio::piped());
    let (mut child, id) = spawn(&mut cmd, &SpawnOpts::default()).unwrap();
    assert!(!id.group && !ais_proc::is_group_leader(id.pid));
    let line = wait_ready_line(
        child.stdout.take().unwrap(),
        "READY",
        Duration::from_secs(10),
    )
    .unwrap();
    let grandchild: u32 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    stop(&mut child, Duration::from_secs(5)).unwrap();
    assert!(alive(grandchild));
    ais_proc::signal(grandchild, ais_proc::SIGKILL).unwrap();
    assert!(wait_gone(grandchild, Duration::from_secs(5)));
}

#[test]
fn signal_refuses_dangerous_pids() {
    for p in [0, 1, u32::MAX, i32::MAX as u32 + 1] {
        assert!(ais_proc::signal(p, 0).is_err(), "{p}");
        assert!(ais_proc::signal_group(p, 0).is_err(), "{p}");
    }
}

#[test]
fn registry_kills_a_recorded_live_process_and_survives_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pids.json");
    let mut cmd = sh("exec sleep 60");
    let (mut child, id) = spawn(&mut cmd, &group()).unwrap();
    PidRegistry::new(&path).record(&id, "sleeper").unwrap();
    // A new registry on the same file (as after a restart of its owner).
    let reg = PidRegistry::new(&path);
    assert_eq!(reg.entries().unwrap()[0].label, "sleeper");
    assert_eq!(reg.live().unwrap().len(), 1);
    assert_eq!(reg.kill_stale(ais_proc::SIGKILL).unwrap(), vec![id.pid]);
    let st = child.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));
    // Gone now: the next call drops it without signalling anything.
    assert!(reg.kill_stale(ais_proc::SIGKILL).unwrap().is_empty());
    assert!(reg.entries().unwrap().is_empty());
    // No temp files left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("pids.json")]);
}

#[test]
fn registry_never_signals_a_pid_whose_start_time_or_token_differs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pids.json");
    let reg = PidRegistry::new(&path);
    let (mut a, ida) = spawn(&mut sh("exec sleep 60"), &group()).unwrap();
    let (mut b, idb) = spawn(&mut sh("exec sleep 60"), &group()).unwrap();
    // As if the pids had been reused: a's start time, b's token are wrong.
    reg.record(
        &ProcId {
            start_time: ida.start_time + 1,
            ..ida.clone()
        },
        "reused-start-time",
    )
    .unwrap();
    reg.record(
        &ProcId {
            token: "not-its-token".into(),
            ..idb.clone()
        },
        "reused-token",
    )
    .unwrap();
    assert!(reg.kill_stale(ais_proc::SIGKILL).unwrap().is_empty());
    assert!(reg.entries().unwrap().is_empty(), "mismatches are dropped");
    std::thread::sleep(Duration::from_millis(200));
    assert!(alive(ida.pid) && alive(idb.pid), "neither was signalled");
    // A bare pid file of an older format proves nothing either.
    std::fs::write(&path, format!("[{}, {}]", ida.pid, idb.pid)).unwrap();
    assert!(reg.kill_stale(ais_proc::SIGKILL).unwrap().is_empty());
    assert!(alive(ida.pid) && alive(idb.pid));
    // The same rule for a lone id.
    let forged = ProcId {
        start_time: ida.start_time + 1,
        ..ida.clone()
    };
    assert!(!forged.signal(ais_proc::SIGKILL).unwrap());
    assert!(alive(ida.pid));
    assert!(ida.signal(ais_proc::SIGKILL).unwrap());
    assert!(wait_gone(ida.pid, Duration::from_secs(5)));
    a.wait().unwrap();
    stop(&mut b, Duration::from_secs(5)).unwrap();
}

#[test]
fn registry_kills_orphaned_group_members_by_token() {
    // The leader exits; its background child (same group, inherited token)
    // stays. kill_stale finds it through the group and the token.
    let dir = tempfile::tempdir().unwrap();
    let reg = PidRegistry::new(dir.path().join("pids.json"));
    let mut cmd = sh("sleep 60 & echo \"READY $!\"");
    cmd.stdout(Stdio::piped());
    let (mut child, id) = spawn(&mut cmd, &group()).unwrap();
    reg.record(&id, "leader").unwrap();
    let line = wait_ready_line(
        child.stdout.take().unwrap(),
        "READY",
        Duration::from_secs(10),
    )
    .unwrap();
    let orphan: u32 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    child.wait().unwrap(); // leader reaped
    assert!(alive(orphan));
    assert_eq!(reg.kill_stale(ais_proc::SIGKILL).unwrap(), vec![orphan]);
    assert!(wait_gone(orphan, Duration::from_secs(5)));
}

#[test]
fn signal_all_reaches_the_group_before_and_after_the_leader_is_reaped() {
    // Alive: the whole group (leader and its background child).
    let (mut child, id, bg) = spawn_ready("sleep 60 & echo \"READY $!\"; exec sleep 60", &group());
    assert_eq!(id.signal_all(ais_proc::SIGKILL).unwrap(), vec![id.pid]);
    child.wait().unwrap();
    assert!(wait_gone(bg, Duration::from_secs(5)));
    assert!(id.signal_all(ais_proc::SIGKILL).unwrap().is_empty());

    // Reaped leader: the members carrying its token.
    let (mut child, id, orphan) = spawn_ready("sleep 60 & echo \"READY $!\"", &group());
    child.wait().unwrap();
    assert!(alive(orphan));
    // Another token proves nothing.
    let forged = ProcId {
        token: "not-its-token".into(),
        ..id.clone()
    };
    assert!(forged.signal_all(ais_proc::SIGKILL).unwrap().is_empty());
    assert!(alive(orphan));
    assert_eq!(id.signal_all(ais_proc::SIGKILL).unwrap(), vec![orphan]);
    assert!(wait_gone(orphan, Duration::from_secs(5)));
}

#[test]
fn registry_remove_id_leaves_another_process_with_the_same_pid() {
    let dir = tempfile::tempdir().unwrap();
    let reg = PidRegistry::new(dir.path().join("pids.json"));
    let (mut child, id) = spawn(&mut sh("exec sleep 60"), &group()).unwrap();
    reg.record(&id, "sleeper").unwrap();
    let older = ProcId {
        start_time: id.start_time.saturating_sub(1),
        ..id.clone()
    };
    reg.remove_id(&older).unwrap();
    assert_eq!(reg.entries().unwrap().len(), 1);
    reg.remove_id(&id).unwrap();
    assert!(reg.entries().unwrap().is_empty());
    stop(&mut child, Duration::from_secs(5)).unwrap();
}

#[test]
fn fd3_reaches_the_child() {
    // fd 3 is a pipe's write end; the child writes through it.
    let mut fds = [0i32; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (r, w) = (fds[0], fds[1]);
    let opts = SpawnOpts {
        fd3: Some(w),
        ..SpawnOpts::isolated()
    };
    let (mut child, _) = spawn(&mut sh("echo via-fd3 >&3"), &opts).unwrap();
    child.wait().unwrap();
    unsafe { libc::close(w) };
    let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(r) };
    let mut s = String::new();
    std::io::Read::read_to_string(&mut f, &mut s).unwrap();
    assert_eq!(s, "via-fd3\n");
}

#[test]
fn parent_death_signal_fires_when_the_spawning_thread_exits() {
    let h = std::thread::spawn(|| {
        let (child, id) = spawn(&mut sh("exec sleep 60"), &SpawnOpts::isolated()).unwrap();
        std::mem::forget(child);
        id
    });
    let id = h.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    // Killed (a zombie until reaped, so watch the state).
    while alive(id.pid) {
        assert!(
            Instant::now() < deadline,
            "child outlived its spawning thread"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::waitpid(id.pid as i32, std::ptr::null_mut(), 0) };
}

#[tokio::test]
async fn tokio_spawn_and_stop() {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg("trap '' TERM; (exec sleep 60) & echo \"READY $!\"; wait");
    cmd.stdout(Stdio::piped());
    let (mut child, id) = spawn_tokio(&mut cmd, &SpawnOpts::isolated()).unwrap();
    assert!(id.is_alive());
    let out = child.stdout.take().unwrap().into_owned_fd().unwrap();
    let line = wait_ready_line(std::fs::File::from(out), "READY", Duration::from_secs(10)).unwrap();
    let grandchild: u32 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let t = Instant::now();
    stop_tokio(&mut child, Duration::from_millis(300))
        .await
        .unwrap();
    assert!(t.elapsed() >= Duration::from_millis(250));
    assert!(wait_gone(grandchild, Duration::from_secs(5)));
    assert!(!id.is_alive());
}

#[test]
fn child_starts_with_an_empty_signal_mask() {
    // A supervisor thread that blocks SIGTERM/SIGINT (to sigwait for them)
    // must not pass the mask on: the child would never see SIGTERM.
    let h = std::thread::spawn(|| {
        // SAFETY: signal-mask calls on this thread only.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
        let mut cmd = sh("echo READY; exec sleep 60");
        cmd.stdout(Stdio::piped());
        let (mut child, id) = spawn(&mut cmd, &group()).unwrap();
        wait_ready_line(
            child.stdout.take().unwrap(),
            "READY",
            Duration::from_secs(10),
        )
        .unwrap();
        let status = std::fs::read_to_string(format!("/proc/{}/status", id.pid)).unwrap();
        let blk = status
            .lines()
            .find_map(|l| l.strip_prefix("SigBlk:"))
            .unwrap()
            .trim()
            .to_string();
        let t = Instant::now();
        stop(&mut child, Duration::from_secs(20)).unwrap();
        (blk, t.elapsed())
    });
    let (blk, took) = h.join().unwrap();
    assert_eq!(u64::from_str_radix(&blk, 16).unwrap(), 0, "SigBlk {blk}");
    assert!(took < Duration::from_secs(5), "TERM was honoured: {took:?}");
}

/// A descriptor the parent holds without close-on-exec (as one inherited
/// from the shell that started the node) never reaches a child: only stdio
/// and the child's own fd 3 cross the exec.
#[test]
fn children_get_stdio_and_fd3_only() {
    use std::os::fd::AsRawFd;
    let (keep, leak) = std::os::unix::net::UnixStream::pair().unwrap();
    // Clear FD_CLOEXEC on `leak`, as a launching shell's pipe would be.
    let fd = leak.as_raw_fd();
    // SAFETY: plain fcntl on a descriptor this test owns.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFD);
        assert!(fl >= 0 && libc::fcntl(fd, libc::F_SETFD, fl & !libc::FD_CLOEXEC) == 0);
    }
    let (mine, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let leaked = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
    let ours = std::fs::read_link(format!("/proc/self/fd/{}", theirs.as_raw_fd())).unwrap();
    let mut cmd = sh("for f in /proc/self/fd/*; do echo \"${f##*/} $(readlink $f)\"; done");
    cmd.stdout(Stdio::piped());
    let opts = SpawnOpts {
        fd3: Some(theirs.as_raw_fd()),
        ..SpawnOpts::isolated()
    };
    let (child, _) = spawn(&mut cmd, &opts).unwrap();
    let out = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let targets: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_once(' ').map(|x| x.1))
        .collect();
    assert!(
        out.lines().any(|l| l == format!("3 {}", ours.display())),
        "the child's fd 3 is its socket: {out}"
    );
    assert!(
        !targets.contains(&leaked.to_str().unwrap()),
        "{} leaked into the child: {out}",
        leaked.display()
    );
    drop((keep, leak, mine));
}
