//! Where an object's file is when its name is also a "directory" of other
//! names: objects `p` and `p/child` both exist, on one target or across
//! several (a rebalance then brings them together), and neither blocks the
//! other.
//!
//! The rule, for every tree of object-named files (main copies, mirror
//! copies, erasure-coded parts): the file of object `n` is `<root>/<n>`,
//! unless `<root>/<n>` is a directory (other objects are named `n/…`); then
//! it is `<root>/<n>/`[`SELF`]. `SELF` is a path component no object name
//! may have (`ais_core::names`), so it never collides with another object.
//!
//! A file that must become a directory (storing `p/child` while `p` is a
//! file) is *nested* in one atomic step: the file is hard-linked as `SELF`
//! into a fresh directory in the mountpath's work area, which is then
//! exchanged with the file's name (`renameat2(RENAME_EXCHANGE)`), so a
//! reader of `p` finds the file or the directory holding it, never neither.
//! Nesting and removing a name are serialised per name ([`name_lock`]); a
//! commit replacing the file meanwhile is detected by its inode and wins.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The file name, inside the directory `n/`, of object `n`.
pub const SELF: &str = ais_core::names::RESERVED_COMPONENT;

/// The file of the object whose logical path is `p` (see the module docs).
pub(crate) fn file_at(p: &Path) -> PathBuf {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => p.join(SELF),
        _ => p.to_path_buf(),
    }
}

/// Is there an object file for the logical path `p`?
pub(crate) fn is_obj(p: &Path) -> bool {
    std::fs::symlink_metadata(file_at(p)).is_ok_and(|m| m.is_file())
}

/// Nests and removals of one name are serialised by one of these (by path
/// hash). Taken alone, or after the commit lock (never the other way).
static NAME_LOCKS: [std::sync::Mutex<()>; 64] = [const { std::sync::Mutex::new(()) }; 64];

fn name_lock(p: &Path) -> std::sync::MutexGuard<'static, ()> {
    let h = xxhash_rust::xxh64::xxh64(p.as_os_str().as_encoded_bytes(), 1);
    let m = &NAME_LOCKS[(h % NAME_LOCKS.len() as u64) as usize];
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Renames the complete file `tmp` into place as the object whose logical
/// path is `dst`, creating directories and nesting object files that stand
/// where a directory is needed. Answers the file's final path. `tmp` must
/// sit in the mountpath's work area (nesting uses it as scratch space).
pub(crate) fn place(tmp: &Path, dst: &Path) -> io::Result<PathBuf> {
    let scratch = tmp.parent().unwrap_or(Path::new("/"));
    let parent = dst.parent().unwrap_or(Path::new("/"));
    // Each round either succeeds or saw the tree change shape under it (a
    // concurrent nest, prune or removal); a handful of rounds settles it.
    for _ in 0..16 {
        if let Err(e) = std::fs::create_dir_all(parent) {
            if e.raw_os_error() == Some(libc::ENOTDIR) || e.kind() == io::ErrorKind::AlreadyExists {
                nest_blocking_ancestor(parent, scratch)?;
                continue;
            }
            return Err(e);
        }
        let target = file_at(dst);
        match std::fs::rename(tmp, &target) {
            Ok(()) => return Ok(target),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(
                        libc::EISDIR
                            | libc::ENOTDIR
                            | libc::ENOENT
                            | libc::ENOTEMPTY
                            | libc::EEXIST
                    )
                ) && tmp.exists() =>
            {
                continue
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "the directories above {} kept changing while storing it",
        dst.display()
    )))
}

/// Removes the object file of the logical path `p`; answers the path
/// removed (`NotFound`: there was none).
pub(crate) fn remove(p: &Path) -> io::Result<PathBuf> {
    let _g = name_lock(p);
    let f = file_at(p);
    let md = std::fs::symlink_metadata(&f)?;
    if !md.is_file() {
        return Err(io::ErrorKind::NotFound.into());
    }
    std::fs::remove_file(&f)?;
    Ok(f)
}

/// `dir` could not be created: the nearest existing ancestor is a file (an
/// object whose name is a prefix of the new one). Nests it.
fn nest_blocking_ancestor(dir: &Path, scratch: &Path) -> io::Result<()> {
    let mut p = dir;
    loop {
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_file() => return nest(p, scratch),
            // A directory by now (another writer nested it): retry.
            Ok(_) => return Ok(()),
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                match p.parent() {
                    Some(up) => p = up,
                    None => return Ok(()),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Turns the object file `a` into the directory `a/` holding it as
/// [`SELF`], atomically for readers (see the module docs).
fn nest(a: &Path, scratch: &Path) -> io::Result<()> {
    let _g = name_lock(a);
    match std::fs::symlink_metadata(a) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    let w = scratch.join(format!("nest-{}", ais_core::gen_id(16)));
    std::fs::create_dir(&w)?;
    let inner = w.join(SELF);
    let undo = |w: &Path| {
        let _ = std::fs::remove_file(w.join(SELF));
        let _ = std::fs::remove_dir(w);
    };
    if let Err(e) = std::fs::hard_link(a, &inner) {
        undo(&w);
        return if e.kind() == io::ErrorKind::NotFound {
            Ok(())
        } else {
            Err(e)
        };
    }
    let linked = std::fs::symlink_metadata(&inner)?.ino();
    match exchange(&w, a) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // A filesystem without RENAME_EXCHANGE: the same in two steps (a
            // reader may see neither name for an instant).
            std::fs::remove_file(a)?;
            if std::fs::rename(&w, a).is_err() {
                // A writer of a name below `a` made it a directory meanwhile:
                // the object goes in, unless a newer one is there already.
                match std::fs::hard_link(&inner, a.join(SELF)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
                undo(&w);
            }
            sync_dir(a);
            return Ok(());
        }
        Err(e) => {
            undo(&w);
            return if e.kind() == io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(e)
            };
        }
    }
    // `w` now names what `a` named a moment ago.
    match std::fs::symlink_metadata(&w) {
        Ok(m) if m.is_file() && m.ino() == linked => std::fs::remove_file(&w)?,
        // A commit replaced the file between the link and the exchange: that
        // newer file is the object.
        Ok(m) if m.is_file() => std::fs::rename(&w, a.join(SELF))?,
        Ok(_) => {
            return Err(io::Error::other(format!(
                "{} turned into a directory while being nested",
                a.display()
            )))
        }
        Err(e) => return Err(e),
    }
    sync_dir(a);
    Ok(())
}

/// `renameat2(a, b, RENAME_EXCHANGE)`.
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let ca = std::ffi::CString::new(a.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let cb = std::ffi::CString::new(b.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: two valid NUL-terminated paths relative to the cwd.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes a nest durable: `a` is a directory now, in its parent.
fn sync_dir(a: &Path) {
    for d in [Some(a), a.parent()].into_iter().flatten() {
        if let Ok(f) = std::fs::File::open(d) {
            let _ = f.sync_all();
        }
    }
}
