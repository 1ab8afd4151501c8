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
//! Nesting `p` holds `p`'s commit lock (no commit of `p` runs meanwhile)
//! and its [`name_lock`] (nor a removal of `p`), so it runs only where no
//! commit lock is held: writers call [`prepare_parents`] before they take
//! theirs, and [`place`], under it, only renames (its `ENOTDIR` means "a
//! parent is a file again: release, prepare, retry"). A mirror copy or part
//! replaced meanwhile (other lock keys) is detected by its inode and wins.
//!
//! Readers open the name and, if it is a directory, `SELF` beneath that
//! descriptor ([`open`]): what they read is one file, whatever a nest does
//! between their steps.

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

/// Opens the object file of the logical path `p` for reading: `p`, or
/// `SELF` beneath it when it is a directory (through the directory's
/// descriptor, so a nest between the steps cannot make it read something
/// else). `NotFound` when neither is a regular file. Also answers the
/// file's path.
pub(crate) fn open(p: &Path) -> io::Result<(std::fs::File, std::fs::Metadata, PathBuf)> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let f = crate::open_noatime(p)?;
    let md = f.metadata()?;
    if md.is_file() {
        return Ok((f, md, p.to_path_buf()));
    }
    if !md.is_dir() {
        return Err(io::ErrorKind::NotFound.into());
    }
    let name = std::ffi::CString::new(SELF).map_err(io::Error::other)?;
    // SAFETY: openat beneath a descriptor we own; the result is owned by the File.
    let fd = unsafe {
        libc::openat(
            f.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    let f = unsafe { std::fs::File::from_raw_fd(fd) };
    let md = f.metadata()?;
    if !md.is_file() {
        return Err(io::ErrorKind::NotFound.into());
    }
    Ok((f, md, p.join(SELF)))
}

/// Makes the directories above the logical path `dst` exist, nesting
/// object files that stand where a directory is needed. Call it holding no
/// commit lock (a nest takes the nested name's); `scratch`: the mountpath's
/// work area.
pub(crate) fn prepare_parents(dst: &Path, scratch: &Path) -> io::Result<()> {
    let parent = dst.parent().unwrap_or(Path::new("/"));
    // Each round nests one ancestor (or saw a concurrent nest, prune or
    // removal); names are at most a few dozen levels deep.
    for _ in 0..64 {
        match std::fs::create_dir_all(parent) {
            Ok(()) => return Ok(()),
            Err(e)
                if e.raw_os_error() == Some(libc::ENOTDIR)
                    || e.kind() == io::ErrorKind::AlreadyExists =>
            {
                nest_blocking_ancestor(parent, scratch)?
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "the directories above {} kept changing while storing it",
        dst.display()
    )))
}

/// Whether an error from [`place`] asks its caller to release the commit
/// lock, call [`prepare_parents`] and retry.
pub(crate) fn needs_parents(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOTDIR)
}

/// Renames the complete file `tmp` into place as the object whose logical
/// path is `dst`, under the caller's commit lock of `dst` and after
/// [`prepare_parents`]. Answers the file's final path; an error for which
/// [`needs_parents`] holds when a parent is a file (again).
pub(crate) fn place(tmp: &Path, dst: &Path) -> io::Result<PathBuf> {
    let parent = dst.parent().unwrap_or(Path::new("/"));
    // Each round either succeeds or saw the tree change shape under it (a
    // concurrent prune or removal); a handful of rounds settles it.
    for _ in 0..16 {
        if let Err(e) = std::fs::create_dir_all(parent) {
            if e.raw_os_error() == Some(libc::ENOTDIR) || e.kind() == io::ErrorKind::AlreadyExists {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
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
/// [`SELF`], atomically for readers (see the module docs). Takes `a`'s
/// commit lock: never call it holding one.
fn nest(a: &Path, scratch: &Path) -> io::Result<()> {
    let _c = crate::commit_lock(a);
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
            // Only the file linked above (a mirror copy replaced meanwhile
            // is newer: then nothing is nested, the caller retries).
            if std::fs::symlink_metadata(a).map(|m| m.ino()).ok() != Some(linked) {
                undo(&w);
                return Ok(());
            }
            std::fs::remove_file(a)?;
            if std::fs::rename(&w, a).is_err() {
                // A writer of a name below `a` made it a directory meanwhile:
                // the object goes in, unless a newer one is there already;
                // if `a` went again, back where it was.
                match std::fs::hard_link(&inner, a.join(SELF)) {
                    Ok(()) => undo(&w),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => undo(&w),
                    Err(_) => {
                        std::fs::rename(&inner, a)?;
                        let _ = std::fs::remove_dir(&w);
                    }
                }
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
