//! What `/proc` says about a process.

use crate::ProcError;

/// Fields of `/proc/<pid>/stat` after the command name: index 0 is field 3
/// (state), so field N is at index N - 3. The name is skipped by looking for
/// the *last* `)` (it may itself contain spaces and parentheses).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Start time of `pid` in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`). With the pid it identifies a process for the whole
/// uptime: a reused pid has a later start time.
pub fn start_time(pid: u32) -> Result<u64, ProcError> {
    stat_fields(pid)
        .and_then(|f| f.get(22 - 3).and_then(|v| v.parse().ok()))
        .ok_or(ProcError::NoStat(pid))
}

/// Process group id (field 5).
pub(crate) fn pgid(pid: u32) -> Option<u32> {
    stat_fields(pid).and_then(|f| f.get(5 - 3).and_then(|v| v.parse().ok()))
}

/// True when `pid` leads its own process group (it was started with
/// `setsid`/`setpgid`), so signalling `-pid` addresses exactly its group.
pub fn is_group_leader(pid: u32) -> bool {
    pgid(pid) == Some(pid)
}

/// `Some(true/false)` when `/proc/<pid>/environ` is readable and not empty
/// (zombies and other users' processes have none to show): whether it holds
/// exactly `key=value`. It also reads empty for a moment while the process
/// runs `execve`, hence a few tries.
pub(crate) fn environ_has(pid: u32, key: &str, value: &str) -> Option<bool> {
    let want = format!("{key}={value}");
    for _ in 0..5 {
        match std::fs::read(format!("/proc/{pid}/environ")) {
            Ok(env) if !env.is_empty() => {
                return Some(env.split(|b| *b == 0).any(|kv| kv == want.as_bytes()));
            }
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            Err(_) => return None,
        }
    }
    None
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`); start times only
/// compare within one boot.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

/// Pids of live (non-zombie) processes in process group `pgid`.
pub(crate) fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|pid| {
            stat_fields(*pid).is_some_and(|f| {
                f.get(2).and_then(|v| v.parse::<u32>().ok()) == Some(pgid)
                    && f.first().map(String::as_str) != Some("Z")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_stat() {
        let me = std::process::id();
        assert!(start_time(me).unwrap() > 0);
        assert!(pgid(me).is_some());
        assert!(boot_id().is_some_and(|b| !b.is_empty()));
        assert!(start_time(u32::MAX - 1).is_err());
    }
}
