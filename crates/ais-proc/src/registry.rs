//! A pid file that can be trusted after a restart: it records identities
//! ([`ProcId`]), not bare pids, and signals only processes it can prove are
//! the ones it recorded.

use crate::spawn::ProcId;
use crate::{procfs, ProcError};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One recorded process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidEntry {
    #[serde(flatten)]
    pub id: ProcId,
    /// Free text for people reading the file (`proxy`, `target2`, ...).
    #[serde(default)]
    pub label: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    /// Boot the start times belong to; entries from another boot are void.
    #[serde(default)]
    boot_id: String,
    #[serde(default)]
    entries: Vec<PidEntry>,
}

/// A JSON file of recorded processes (`{"boot_id": .., "entries": [..]}`),
/// rewritten atomically (temp file + rename) on every change. Safe to share
/// between threads of one process; one process should own a file.
#[derive(Debug)]
pub struct PidRegistry {
    path: PathBuf,
    lock: Mutex<()>,
}

impl PidRegistry {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> ProcError {
        ProcError::RegistryIo {
            path: self.path.clone(),
            source,
        }
    }

    /// The file's content; a missing or empty file is an empty registry, an
    /// unparsable one (e.g. a bare list of pids from an older format) too —
    /// nothing in it can be proven, so nothing in it will be signalled.
    fn load(&self) -> Result<File, ProcError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(File::default()),
            Err(e) => return Err(self.io(e)),
        };
        Ok(serde_json::from_slice::<File>(&bytes).unwrap_or_default())
    }

    fn save(&self, f: &File) -> Result<(), ProcError> {
        let body = serde_json::to_vec_pretty(f).map_err(|source| ProcError::RegistryFormat {
            path: self.path.clone(),
            source,
        })?;
        write_atomic(&self.path, &body).map_err(|e| self.io(e))
    }

    fn update<T>(&self, change: impl FnOnce(&mut File) -> T) -> Result<T, ProcError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut f = self.load()?;
        let current = procfs::boot_id().unwrap_or_default();
        if f.boot_id != current {
            // Another boot: its start times mean nothing now.
            f.entries.clear();
            f.boot_id = current;
        }
        let out = change(&mut f);
        self.save(&f)?;
        Ok(out)
    }

    /// Records a started process (replacing an entry with the same pid).
    pub fn record(&self, id: &ProcId, label: &str) -> Result<(), ProcError> {
        self.update(|f| {
            f.entries.retain(|e| e.id.pid != id.pid);
            f.entries.push(PidEntry {
                id: id.clone(),
                label: label.to_string(),
            });
        })
    }

    /// Forgets `pid` (after it was stopped and reaped).
    pub fn remove(&self, pid: u32) -> Result<(), ProcError> {
        self.update(|f| f.entries.retain(|e| e.id.pid != pid))
    }

    /// Forgets the entry of exactly this process (pid, start time and
    /// token), leaving a later process that got the same pid recorded.
    pub fn remove_id(&self, id: &ProcId) -> Result<(), ProcError> {
        self.update(|f| f.entries.retain(|e| &e.id != id))
    }

    /// All entries of this boot, as recorded (alive or not).
    pub fn entries(&self) -> Result<Vec<PidEntry>, ProcError> {
        self.update(|f| f.entries.clone())
    }

    /// Entries whose process provably still runs (see [`ProcId::is_alive`]).
    pub fn live(&self) -> Result<Vec<PidEntry>, ProcError> {
        Ok(self
            .entries()?
            .into_iter()
            .filter(|e| e.id.is_alive())
            .collect())
    }

    /// Signals every recorded process that provably is still the one
    /// recorded (same start time; same token when its environment is
    /// readable) — its whole group when it was started as a group leader and
    /// still leads it — and, for a group whose leader is gone, the members
    /// that carry the leader's token. Entries that do not match are dropped
    /// without any signal; signalled ones stay until a later call finds them
    /// gone. Returns the pids signalled.
    pub fn kill_stale(&self, sig: i32) -> Result<Vec<u32>, ProcError> {
        self.update(|f| {
            let mut hit = Vec::new();
            f.entries.retain(|e| {
                let id = &e.id;
                if id.is_alive() {
                    if matches!(id.signal(sig), Ok(true)) {
                        hit.push(id.pid);
                    }
                    return true;
                }
                // The leader is gone. Its group id stays allocated while
                // members exist (a pid in use as a group id is not handed
                // out again), and only the members that inherited the
                // leader's token are ours.
                hit.extend(id.signal_orphans(sig));
                false
            });
            hit
        })
    }
}

/// Writes `path` atomically: a temp file next to it, fsync, rename. The temp
/// file is removed on error.
pub(crate) fn write_atomic(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(d) = dir {
        std::fs::create_dir_all(d)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(
        ".{name}.tmp.{}.{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Public for other crates' state files: [`write_atomic`].
pub fn write_file_atomic(path: &Path, body: &[u8]) -> Result<(), ProcError> {
    write_atomic(path, body).map_err(|source| ProcError::RegistryIo {
        path: path.to_path_buf(),
        source,
    })
}
