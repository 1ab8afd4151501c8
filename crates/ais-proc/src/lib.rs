//! The one process supervisor of aistore-rs: used by the playground, the Rust
//! test harness (`ais-testkit`) and — by the same rules — the Python fixture
//! and the bench scripts; and by ais-etl for its workers and transformer
//! servers.
//!
//! Rules it implements:
//!
//! * **Spawn** ([`spawn`], [`spawn_tokio`]): optionally in an own session and
//!   process group (`setsid`, so a terminal's Ctrl-C reaches only the
//!   supervisor and a group signal also takes grandchildren), optionally with a
//!   parent-death signal (race-free: the child checks that its parent is still
//!   the one that forked it), optionally with a file descriptor as fd 3. Every
//!   child gets a random `AIS_PROC_TOKEN` in its environment; together with
//!   its start time (field 22 of `/proc/<pid>/stat`) it forms a [`ProcId`]
//!   that proves, later and from another process, that a pid is still *that*
//!   process.
//! * **Readiness** ([`wait_ready_line`]): read the child's stdout until a line
//!   starts with a marker (nodes print `AISNODE_READY <role> <id> <url>`), then
//!   keep draining it in a background thread.
//! * **Stop** ([`stop`], [`stop_all`], [`stop_tokio`]): SIGTERM to the process
//!   group (or the process when it leads none), wait up to a grace period for
//!   the leader and its group, SIGKILL what is left, reap. The group is only
//!   signalled while its leader is unreaped, so the group id cannot have been
//!   reused.
//! * **Registry** ([`PidRegistry`]): a JSON file of [`ProcId`]s that survives
//!   restarts of whoever keeps it; [`PidRegistry::kill_stale`] signals only
//!   entries whose start time (and token, when `/proc/<pid>/environ` is
//!   readable) still match — a reused pid is never signalled.
//!
//! Linux only (it reads `/proc`).

mod procfs;
mod ready;
mod registry;
mod spawn;
mod stop;

pub use procfs::{boot_id, is_group_leader, start_time};
pub use ready::{wait_ready_line, wait_ready_line_with};
pub use registry::{write_file_atomic, PidEntry, PidRegistry};
pub use spawn::{spawn, spawn_tokio, ProcId, SpawnOpts, TOKEN_ENV};
pub use stop::{kill_now, signal, signal_group, stop, stop_all, stop_tokio};

use std::path::PathBuf;
use std::time::Duration;

/// Re-exported signal numbers, so users need no `libc` of their own.
pub use libc::{SIGINT, SIGKILL, SIGTERM};

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot spawn {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("process {pid}: {what}: {source}")]
    Proc {
        pid: u32,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("process {0} has no readable /proc/<pid>/stat (gone?)")]
    NoStat(u32),
    #[error("refusing to signal pid {0}: not a process this supervisor may address")]
    BadPid(u32),
    #[error("signal {sig} to {target}: {source}")]
    Signal {
        target: String,
        sig: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("no line starting with {marker:?} within {timeout:?}; output so far:\n{output}")]
    ReadyTimeout {
        marker: String,
        timeout: Duration,
        output: String,
    },
    #[error(
        "output ended before a line starting with {marker:?} (process exited?); output:\n{output}"
    )]
    ReadyEof { marker: String, output: String },
    #[error("the child has no piped stdout")]
    NoStdout,
    #[error("pid registry {path}: {source}")]
    RegistryIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pid registry {path}: {source}")]
    RegistryFormat {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}
