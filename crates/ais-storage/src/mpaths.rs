//! Mountpaths at run time, as AIStore's `attach-mp`, `detach-mp`,
//! `enable-mp` and `disable-mp`, and what a resilver needs: finding objects
//! that are not on their HRW mountpath and moving them there.
//!
//! - attach: a new (or re-attached) mountpath joins the set; objects whose
//!   HRW mountpath it now is move to it.
//! - detach: the mountpath leaves the set for writes at once but stays
//!   readable until a resilver has moved its objects off
//!   ([`Store::finish_resilver`]).
//! - disable: the mountpath is neither read nor written (its objects are
//!   unreadable unless mirrored elsewhere) but nothing is deleted;
//!   enable brings it back as it was.
//!
//! After any change, until the resilver is done, a read that misses an
//! object on its HRW mountpath also looks on the other readable ones, and a
//! delete removes every copy.

use crate::{
    commit_lock, copy_durably, io_at, is_not_found, layout, list, prepare_mountpath,
    prune_empty_dirs, Mountpath, ObjInfo, Result, StorageError, Store,
};
use ais_core::Bck;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub(crate) struct MpSet {
    pub(crate) active: Arc<Vec<Mountpath>>,
    /// Detached, objects still to move off (readable until then).
    leaving: Vec<Mountpath>,
    /// Disabled: kept as they are, neither read nor written.
    disabled: Vec<Mountpath>,
    /// Bumped by every change (a resilver finishes only the change it saw).
    gen: u64,
}

impl std::fmt::Debug for MpSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpSet")
            .field("active", &self.active)
            .field("leaving", &self.leaving)
            .field("disabled", &self.disabled)
            .finish()
    }
}

impl MpSet {
    pub(crate) fn new(active: Vec<Mountpath>) -> Self {
        MpSet {
            active: Arc::new(active),
            leaving: Vec::new(),
            disabled: Vec::new(),
            gen: 0,
        }
    }
}

/// Writes in flight by the mountpath-set generation they started under.
pub(crate) type Writers = Arc<std::sync::Mutex<std::collections::BTreeMap<u64, usize>>>;

/// Counts one write in flight (until dropped).
pub(crate) struct WriteGuard {
    writers: Writers,
    gen: u64,
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        let mut m = self.writers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.gen) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.gen);
            }
        }
    }
}

impl MpSet {
    /// Removes `path` from the mountpaths in use (never the last one).
    fn take_active(&mut self, path: &Path) -> Result<Mountpath> {
        let Some(m) = self.active.iter().find(|m| m.path == path).cloned() else {
            return Err(not_attached(path, "attached"));
        };
        if self.active.len() == 1 {
            return Err(StorageError::Mountpath {
                path: path.display().to_string(),
                msg: "is the last mountpath in use; attach or enable another first".into(),
            });
        }
        self.active = Arc::new(
            self.active
                .iter()
                .filter(|x| x.path != path)
                .cloned()
                .collect(),
        );
        Ok(m)
    }
}

fn not_attached(p: &Path, what: &str) -> StorageError {
    StorageError::Mountpath {
        path: p.display().to_string(),
        msg: format!("is not {what}"),
    }
}

/// The path as the store keeps it (canonical when it exists).
fn resolve(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

impl Store {
    fn change<T>(&self, f: impl FnOnce(&mut MpSet) -> Result<T>) -> Result<T> {
        let mut set = self.set.write().unwrap_or_else(|p| p.into_inner());
        let out = f(&mut set)?;
        set.gen += 1;
        self.resilvering.store(true, Ordering::Relaxed);
        Ok(out)
    }

    /// Disabled mountpaths.
    pub fn disabled_mountpaths(&self) -> Vec<Mountpath> {
        self.set
            .read()
            .map(|s| s.disabled.clone())
            .unwrap_or_default()
    }

    /// Mountpaths that may hold objects to read: in use, and detached ones
    /// whose objects have not all moved off yet.
    pub(crate) fn readable_mps(&self) -> Vec<Mountpath> {
        let set = self.set.read().unwrap_or_else(|p| p.into_inner());
        set.active.iter().chain(&set.leaving).cloned().collect()
    }

    /// Adds a mountpath (created and checked like the ones given at
    /// start-up). `Ok(false)`: it was attached already.
    pub fn attach(&self, p: &Path) -> Result<bool> {
        let path = resolve(p);
        {
            let set = self.set.read().unwrap_or_else(|p| p.into_inner());
            if set.active.iter().any(|m| m.path == path) {
                return Ok(false);
            }
            if set.disabled.iter().any(|m| m.path == path) {
                return Err(StorageError::Mountpath {
                    path: path.display().to_string(),
                    msg: "is disabled: enable it instead".into(),
                });
            }
        }
        let mp = match self
            .set
            .read()
            .map(|s| s.leaving.iter().find(|m| m.path == path).cloned())
        {
            Ok(Some(m)) => m,
            _ => prepare_mountpath(p)?,
        };
        self.change(|set| {
            set.leaving.retain(|m| m.path != mp.path);
            if !set.active.iter().any(|m| m.path == mp.path) {
                let mut v = set.active.to_vec();
                v.push(mp);
                set.active = Arc::new(v);
            }
            Ok(true)
        })
    }

    /// Stops writing to a mountpath; it stays readable until a resilver
    /// has moved its objects off. The last one cannot go.
    pub fn detach(&self, p: &Path) -> Result<()> {
        let path = resolve(p);
        self.change(|set| {
            if let Some(i) = set.disabled.iter().position(|m| m.path == path) {
                set.disabled.remove(i);
                return Ok(());
            }
            let m = set.take_active(&path)?;
            set.leaving.push(m);
            Ok(())
        })
    }

    /// Stops using a mountpath without moving anything. `Ok(false)`: it was
    /// disabled already.
    pub fn disable(&self, p: &Path) -> Result<bool> {
        let path = resolve(p);
        if self.disabled_mountpaths().iter().any(|m| m.path == path) {
            return Ok(false);
        }
        self.change(|set| {
            let m = set.take_active(&path)?;
            set.disabled.push(m);
            Ok(true)
        })
    }

    /// Uses a disabled mountpath again. `Ok(false)`: it was enabled already.
    pub fn enable(&self, p: &Path) -> Result<bool> {
        let path = resolve(p);
        if self.mps().iter().any(|m| m.path == path) {
            return Ok(false);
        }
        self.change(|set| {
            let Some(i) = set.disabled.iter().position(|m| m.path == path) else {
                return Err(not_attached(&path, "attached (attach it)"));
            };
            let m = set.disabled.remove(i);
            let mut v = set.active.to_vec();
            v.push(m);
            set.active = Arc::new(v);
            Ok(true)
        })
    }

    pub(crate) fn write_guard(&self) -> WriteGuard {
        let gen = self.mpath_gen();
        let mut m = self.writers.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(gen).or_default() += 1;
        WriteGuard {
            writers: self.writers.clone(),
            gen,
        }
    }

    /// Writes still in flight that chose their mountpath before generation
    /// `gen` (they may land on a mountpath that is no longer their HRW one).
    pub fn writers_before(&self, gen: u64) -> usize {
        let m = self.writers.lock().unwrap_or_else(|p| p.into_inner());
        m.range(..gen).map(|(_, n)| n).sum()
    }

    /// The mountpath-set generation (for [`Store::finish_resilver`]).
    pub fn mpath_gen(&self) -> u64 {
        self.set.read().map(|s| s.gen).unwrap_or(0)
    }

    /// A resilver of generation `gen` moved everything: detached mountpaths
    /// are let go and reads stop looking beyond an object's HRW mountpath
    /// (unless the set changed again meanwhile).
    pub fn finish_resilver(&self, gen: u64) -> bool {
        let mut set = self.set.write().unwrap_or_else(|p| p.into_inner());
        if set.gen != gen {
            return false;
        }
        set.leaving.clear();
        self.resilvering.store(false, Ordering::Relaxed);
        true
    }

    /// Copies of `obj` on readable mountpaths other than its HRW one (their
    /// logical paths: see [`crate::layout`]).
    pub(crate) fn misplaced_copies(&self, bck: &Bck, obj: &str) -> Vec<PathBuf> {
        let home = self.mpath_for(bck, obj);
        self.readable_mps()
            .into_iter()
            .filter(|m| m.path != home.path)
            .map(|m| m.bucket_dir(bck).join(obj))
            .filter(|p| layout::is_obj(p))
            .collect()
    }

    /// Names of `bck`'s objects stored on a mountpath that is not their HRW
    /// one (blocking: walks every readable mountpath).
    pub fn misplaced(&self, bck: &Bck) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for m in self.readable_mps() {
            let mut names = Vec::new();
            list::walk(&m.bucket_dir(bck), "", "", "", usize::MAX, &mut names)?;
            out.extend(
                names
                    .into_iter()
                    .map(|(n, _)| n)
                    .filter(|n| self.mpath_for(bck, n).path != m.path),
            );
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Moves `obj` to its HRW mountpath from wherever else it is: a copy
    /// already there wins unless the stray one is a newer version. Answers
    /// the bytes moved (0: the stray copies were older, or none was left).
    pub async fn resilver_one(&self, bck: &Bck, obj: &str) -> Result<u64> {
        let strays = self.misplaced_copies(bck, obj);
        if strays.is_empty() {
            return Ok(0);
        }
        let home = self.mpath_for(bck, obj);
        let dst = home.bucket_dir(bck).join(obj);
        let work = home.work_dir();
        let stops: Vec<PathBuf> = self
            .readable_mps()
            .into_iter()
            .map(|m| m.bucket_dir(bck))
            .collect();
        tokio::task::spawn_blocking(move || -> Result<u64> {
            layout::prepare_parents(&dst, &work).map_err(io_at("create the parents of", &dst))?;
            let _serial = commit_lock(&dst);
            let version = |p: &Path| -> Option<u64> {
                let (f, md, _) = layout::open(p).ok()?;
                ObjInfo::from_open(&f, &md).ok().map(|i| i.attrs.version)
            };
            let mut moved = 0;
            for src in strays {
                let newer = match (version(&src), version(&dst)) {
                    (Some(s), Some(d)) => s > d,
                    (Some(_), None) => true,
                    (None, _) => false,
                };
                if newer {
                    let tmp = work.join(format!("resilver-{}", ais_core::gen_id(16)));
                    let res = copy_durably(&layout::file_at(&src), &tmp, &dst);
                    if res.is_err() {
                        let _ = std::fs::remove_file(&tmp);
                    }
                    res?;
                    moved += std::fs::metadata(layout::file_at(&dst))
                        .map(|m| m.len())
                        .unwrap_or(0);
                }
                match layout::remove(&src) {
                    Ok(removed) => {
                        if let Some(stop) = stops.iter().find(|s| src.starts_with(s)) {
                            prune_empty_dirs(removed.parent(), stop);
                        }
                    }
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(io_at("remove", &src)(e)),
                }
            }
            Ok(moved)
        })
        .await
        .map_err(|e| StorageError::Io {
            context: "resilver".into(),
            source: std::io::Error::other(e),
        })?
    }
}
