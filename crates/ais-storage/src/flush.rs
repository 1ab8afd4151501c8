//! Group commit: concurrent PUTs on one mountpath share their flushes.
//!
//! In `group` mode a commit does not fsync its own file and directory; it
//! asks its mountpath's [`Flusher`] for a flush that *starts after* its
//! writes, and the flusher covers everyone waiting with one `syncfs(2)` of
//! the mountpath's filesystem. Twice per PUT (data and metadata before the
//! rename, the rename after it), so the temp → rename → directory-durable
//! order holds and an acknowledged object survives a power loss; but N
//! concurrent PUTs cost two flushes between them, not 2N barriers.
//!
//! No flusher thread: the first waiter of a round runs the `syncfs` (the
//! leader); those who arrive while it runs wait for the next round, which
//! one of them leads.
//!
//! `syncfs` flushes the whole filesystem, so it only pays when the
//! mountpath has a filesystem of its own (a data disk). Mode
//! `AIS_SYNC_MODE`: `group`, `fsync` (one fsync of the file and one of its
//! directory per PUT), or `auto` (default): `group` when the mountpath is a
//! mount point, else `fsync` — a mountpath sharing the root filesystem with
//! builds and logs would make every PUT wait for their dirty pages too.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// How a commit makes its object durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// fsync of the file, then of its directory after the rename.
    Fsync,
    /// Shared `syncfs` rounds ([`Flusher`]).
    Group,
}

/// The mode for a mountpath at `root` (see the module docs).
fn mode_for(root: &Path) -> SyncMode {
    match std::env::var("AIS_SYNC_MODE").as_deref().map(str::trim) {
        Ok("group") => SyncMode::Group,
        Ok("fsync") => SyncMode::Fsync,
        _ if is_mount_point(root) => SyncMode::Group,
        _ => SyncMode::Fsync,
    }
}

fn is_mount_point(p: &Path) -> bool {
    let (Ok(me), Some(Ok(up))) = (std::fs::metadata(p), p.parent().map(std::fs::metadata)) else {
        return false;
    };
    me.dev() != up.dev()
}

/// Results of recent rounds: (first ticket, last ticket, error).
type Rounds = VecDeque<(u64, u64, Option<String>)>;

#[derive(Default)]
struct State {
    /// Tickets handed out (one per waiter).
    requested: u64,
    /// Every ticket up to this one is covered by a finished round.
    done: u64,
    /// A round is running.
    running: bool,
    recent: Rounds,
}

/// One mountpath's group flush.
pub struct Flusher {
    root: PathBuf,
    /// How commits on this mountpath become durable.
    pub mode: SyncMode,
    state: Mutex<State>,
    cv: Condvar,
    /// Test hook (`AIS_TEST_FLUSH_DELAY_MS`): the leader waits this long
    /// before its `syncfs`, so a test can kill the node between a PUT's
    /// writes and their flush.
    delay: std::time::Duration,
}

/// Rounds remembered for waiters that wake late.
const KEEP_ROUNDS: usize = 256;

impl Flusher {
    fn new(root: PathBuf) -> Self {
        let delay = std::env::var("AIS_TEST_FLUSH_DELAY_MS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(std::time::Duration::from_millis)
            .unwrap_or_default();
        Self {
            mode: mode_for(&root),
            root,
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
            delay,
        }
    }

    /// The flusher of the mountpath at `root` (one per path, process-wide).
    pub fn of(root: &Path) -> Arc<Flusher> {
        static ALL: OnceLock<Mutex<HashMap<PathBuf, Arc<Flusher>>>> = OnceLock::new();
        let all = ALL.get_or_init(Default::default);
        let mut m = all.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(root.to_path_buf())
            .or_insert_with(|| Arc::new(Flusher::new(root.to_path_buf())))
            .clone()
    }

    /// Blocks until a flush that started after this call has completed:
    /// everything this thread wrote to the filesystem before calling is
    /// durable when it returns `Ok`.
    pub fn sync(&self) -> io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.requested += 1;
        let ticket = st.requested;
        loop {
            if st.done >= ticket {
                return match st.recent.iter().find(|r| r.0 <= ticket && ticket <= r.1) {
                    Some((_, _, Some(e))) => Err(io::Error::other(e.clone())),
                    _ => Ok(()),
                };
            }
            if !st.running {
                // Lead a round covering every ticket handed out so far.
                st.running = true;
                let (first, last) = (st.done + 1, st.requested);
                drop(st);
                if !self.delay.is_zero() {
                    std::thread::sleep(self.delay);
                }
                let res = syncfs(&self.root);
                st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                st.running = false;
                st.done = last;
                st.recent
                    .push_back((first, last, res.err().map(|e| e.to_string())));
                while st.recent.len() > KEEP_ROUNDS {
                    st.recent.pop_front();
                }
                self.cv.notify_all();
                continue;
            }
            st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}

fn syncfs(root: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let dir = std::fs::File::open(root)?;
    // SAFETY: a valid open file descriptor; syncfs only reads it.
    let rc = unsafe { libc::syncfs(dir.as_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_waiters_share_rounds_and_all_return() {
        let d = tempfile::tempdir().unwrap();
        // The leader waits a little before flushing, so the others arrive
        // during its round and share the next one.
        let f = Arc::new(Flusher {
            delay: std::time::Duration::from_millis(30),
            ..Flusher::new(d.path().to_path_buf())
        });
        let threads: Vec<_> = (0..32)
            .map(|i| {
                let f = f.clone();
                let p = d.path().join(format!("f{i}"));
                std::thread::spawn(move || {
                    std::fs::write(&p, b"x").unwrap();
                    f.sync().unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let st = f.state.lock().unwrap();
        assert_eq!(st.done, 32);
        // Fewer rounds than waiters: they shared flushes.
        assert!(st.recent.len() < 32, "{} rounds", st.recent.len());
    }
}
