//! ETL child processes (pool workers, `runtime.command` transformer servers)
//! through `ais-proc`: started in an own process group with a parent-death
//! SIGKILL and a verifiable identity, recorded in the target's
//! [`PidRegistry`] while they live, and killed with their whole group (user
//! code may fork) — only while the identity still proves they are ours.

use crate::logs::LogSink;
use crate::sandbox::{Jail, Sandbox};
use ais_proc::{PidRegistry, ProcId, SpawnOpts};
use std::sync::Arc;

/// What a process running ETL code (a pool worker, a `runtime.command`
/// server, a dependency install that runs packages' build scripts) gets of
/// the target's environment: the locale, the search path and Python's own
/// switches. Nothing else: the target's environment holds secrets (the auth
/// secret, S3 keys, cloud credentials) that user code must never see. The
/// caller adds what the child needs (`HOME`, `TMPDIR`, the spec's `env`).
pub const ENV_ALLOW: &[&str] = &[
    "PATH",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TERM",
    "LD_LIBRARY_PATH",
    "PYTHONPATH",
    "PYTHONHASHSEED",
    "PYTHONUNBUFFERED",
    "PYTHONIOENCODING",
    "PYTHONUTF8",
    "PYTHONWARNINGS",
    "PYTHONFAULTHANDLER",
    "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES",
];

/// Prefixes of [`ENV_ALLOW`]'s kind: locale categories and the CUDA
/// runtime's settings (`CUDA_VISIBLE_DEVICES`, ...). Names, not prefixes,
/// wherever a prefix could also match a credential (`NVIDIA_API_KEY`).
pub const ENV_ALLOW_PREFIX: &[&str] = &["LC_", "CUDA_"];

/// A command for ETL code with an empty environment but [`ENV_ALLOW`]'s
/// variables taken from this process ([`ENV_ALLOW_PREFIX`] too, `extra`
/// names as well: pip's proxy and index settings for an install).
pub fn clean_command(
    program: impl AsRef<std::ffi::OsStr>,
    extra: &[&str],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.env_clear();
    for (k, v) in std::env::vars_os() {
        let Some(name) = k.to_str() else { continue };
        if allowed_env(name, extra) {
            cmd.env(&k, v);
        }
    }
    cmd
}

/// Whether [`clean_command`] passes `name` on.
pub fn allowed_env(name: &str, extra: &[&str]) -> bool {
    ENV_ALLOW.contains(&name)
        || extra.contains(&name)
        || ENV_ALLOW_PREFIX.iter().any(|p| name.starts_with(p))
}

/// Variables a dependency install may need to reach a package index (on
/// top of [`ENV_ALLOW`]); none of them is the node's.
pub const PIP_ENV: &[&str] = &[
    "HOME",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "PIP_NO_INDEX",
    "PIP_FIND_LINKS",
    "PIP_CACHE_DIR",
    "PIP_CERT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
];

/// SIGKILLs every process running as `uid` (real or effective), until none
/// is left (a few rounds: one may fork while it is being killed); answers
/// how many were killed. Only for a uid no one else runs as (a dependency
/// install's own).
pub fn kill_uid(uid: u32) -> usize {
    let mut killed = 0;
    for _ in 0..50 {
        let mut found = 0;
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
                continue;
            };
            let runs_as = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .is_some_and(|ids| {
                    ids.split_whitespace()
                        .take(2)
                        .any(|u| u.parse::<u32>() == Ok(uid))
                });
            let zombie = status
                .lines()
                .find_map(|l| l.strip_prefix("State:"))
                .is_some_and(|s| s.trim_start().starts_with('Z'));
            if runs_as && !zombie {
                found += 1;
                // SAFETY: a signal to a process of the install's own uid.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        if found == 0 {
            break;
        }
        killed += found;
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    killed
}

/// Where a spawned process is recorded: the target's registry (if any) and
/// a label for people reading the file (`etl <name> worker`).
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    reg: Option<Arc<PidRegistry>>,
    label: String,
}

impl Tracker {
    pub fn new(reg: Arc<PidRegistry>, label: impl Into<String>) -> Self {
        Self {
            reg: Some(reg),
            label: label.into(),
        }
    }

    /// Records `id`. A registry that cannot be written does not stop the
    /// ETL: the process still dies with the target (parent-death signal),
    /// only a restart could not clean up after it.
    fn record(&self, id: &ProcId, log: &LogSink) {
        if let Some(reg) = &self.reg {
            if let Err(e) = reg.record(id, &self.label) {
                tracing::warn!("etl: {e}");
                log.line(&format!("warning: {e}"));
            }
        }
    }

    fn forget(&self, id: &ProcId) {
        if let Some(reg) = &self.reg {
            if let Err(e) = reg.remove_id(id) {
                tracing::warn!("etl: {e}");
            }
        }
    }
}

/// A started child: the tokio handle, its identity, and where it is recorded.
/// Killed (with its group) and forgotten on [`Proc::kill`] or drop.
pub struct Proc {
    pub child: tokio::process::Child,
    pub id: ProcId,
    tracker: Tracker,
    killed: bool,
    /// The process's cgroups (empty without a sandbox): every descendant,
    /// `setsid()` ones included, dies with it.
    pub jail: Jail,
}

impl Proc {
    /// SIGKILL to the process's group now (or, when the leader already
    /// exited and was reaped, to the members it left that carry its token),
    /// then forget it in the registry. Idempotent.
    pub fn kill(&mut self) {
        if self.killed {
            return;
        }
        self.killed = true;
        if let Err(e) = self.id.signal_all(ais_proc::SIGKILL) {
            // ESRCH: it died between the identity check and the signal.
            tracing::debug!("etl: kill {}: {e}", self.id.pid);
        }
        let _ = self.child.start_kill();
        self.jail.destroy();
        self.tracker.forget(&self.id);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `cmd` in its own process group, killed with its parent (the
/// target), optionally with `fd3` as its file descriptor 3; stdin is null,
/// stdout/stderr are piped (see [`crate::logs::capture_output`]). The child
/// is recorded with `tracker` before this returns. With a `sandbox`, the
/// child enters it (uid, namespaces, cgroups, limits) before anything else.
pub fn spawn_isolated(
    cmd: &mut tokio::process::Command,
    fd3: Option<i32>,
    tracker: &Tracker,
    log: &LogSink,
    sandbox: Option<&Sandbox>,
) -> std::io::Result<Proc> {
    let jail = match sandbox {
        Some(sb) => {
            let (jail, hook) = sb.prepare()?;
            // SAFETY: the hook makes only async-signal-safe calls; it is
            // registered before ais-proc's (the uid change must precede the
            // parent-death signal, which a credential change clears).
            unsafe {
                cmd.pre_exec(hook);
            }
            jail
        }
        None => Jail::default(),
    };
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let opts = SpawnOpts {
        fd3,
        ..SpawnOpts::isolated()
    };
    let (child, id) = ais_proc::spawn_tokio(cmd, &opts).map_err(|e| match e {
        ais_proc::ProcError::Spawn { source, .. } => source,
        e => std::io::Error::other(e),
    })?;
    tracker.record(&id, log);
    Ok(Proc {
        child,
        id,
        tracker: tracker.clone(),
        killed: false,
        jail,
    })
}
