//! The files an ETL runtime runs with: a fresh work dir per start (the
//! worker's `HOME`/`TMPDIR`, the only place it may write) and its code,
//! kept apart in a node-owned, read-only place.
//!
//! Everything in a work dir is written by user code, so the node treats it
//! as hostile: it never writes, chowns or chmods anything in it by path.
//! Each start gets a new, random name the node creates itself (no earlier
//! runtime — or earlier run of the target — can have planted links in it);
//! its owner and mode are set through the descriptor of the directory just
//! made (`O_NOFOLLOW`), and it is removed with `remove_dir_all`, which on
//! Linux walks with `openat`/`unlinkat` and never follows a link. The code
//! goes to `<etl>/code/<name>.<rand>/code.py` (owned by the node, 0644),
//! bound read-only into the sandbox. Both go when the runtime does (stop,
//! `rm`, a replaced generation, a failed start); whatever a killed target
//! left is wiped at its next start ([`reset`]).
//!
//! Where the target may mount (root), the work dir is a size-limited tmpfs
//! (`AIS_ETL_WORKDIR_LIMIT`, default 1 GiB, and one inode per 16 KiB of it):
//! the kernel ends a transform that fills it with `ENOSPC`, and nothing it
//! wrote outlives the runtime.

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Per-runtime work dirs: `<etl>/work/<name>.<rand>`.
pub const WORK: &str = "work";
/// Per-runtime code: `<etl>/code/<name>.<rand>/`.
pub const CODE: &str = "code";

/// A runtime's work dir and code dir; both removed on drop.
#[derive(Debug)]
pub struct RuntimeDirs {
    pub work: PathBuf,
    pub code_dir: PathBuf,
    /// The work dir's size limit, when it is a tmpfs of its own.
    pub quota: Option<u64>,
}

/// `AIS_ETL_WORKDIR_LIMIT`: bytes (or `512MiB`, ...) an ETL runtime's work
/// dir may hold; default 1 GiB; `0`: no limit.
pub fn workdir_limit() -> Option<u64> {
    match std::env::var("AIS_ETL_WORKDIR_LIMIT") {
        Ok(v) => match crate::spec::parse_size(v.trim()) {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(_) => {
                tracing::warn!("etl: ignoring AIS_ETL_WORKDIR_LIMIT={v:?} (not a size)");
                Some(1 << 30)
            }
        },
        Err(_) => Some(1 << 30),
    }
}

impl RuntimeDirs {
    /// Makes fresh dirs for ETL `name` under `etl_dir`; the work dir (and
    /// its `tmp/`) owned by `owner` (the sandbox's uid/gid) when given,
    /// mode 0700, and with `quota` a tmpfs of that size (where mounting is
    /// allowed: else a plain directory, `quota` reads `None`).
    pub fn create(
        etl_dir: &Path,
        name: &str,
        owner: Option<(u32, u32)>,
        quota: Option<u64>,
    ) -> io::Result<Self> {
        let tag = format!("{name}.{}", ais_core::gen_id(12));
        let work_root = etl_dir.join(WORK);
        let code_root = etl_dir.join(CODE);
        for d in [&work_root, &code_root] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o711)
                .create(d)?;
        }
        let mut dirs = RuntimeDirs {
            work: work_root.join(&tag),
            code_dir: code_root.join(&tag),
            quota: None,
        };
        // New names: `create` fails rather than reuse anything that exists.
        let mut work = new_dir(&dirs.work, 0o700, owner)?;
        if let Some(q) = quota {
            if mount_tmpfs(&dirs.work, q, owner).is_ok() {
                dirs.quota = Some(q);
                // The tmpfs's root, opened beneath nothing a worker wrote.
                work = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
                    .open(&dirs.work)?;
                fix(&work, 0o700, owner)?;
            }
        }
        new_dir_at(&work, "tmp", 0o700, owner)?;
        new_dir(&dirs.code_dir, 0o755, None)?;
        Ok(dirs)
    }

    /// `code` into a new file in the code dir (never through a link).
    pub fn write_code(&self, file: &str, code: &[u8]) -> io::Result<PathBuf> {
        let p = self.code_dir.join(file);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&p)?;
        f.write_all(code)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        Ok(p)
    }

    /// The work dir's `tmp/`.
    pub fn tmp(&self) -> PathBuf {
        self.work.join("tmp")
    }
}

impl RuntimeDirs {
    /// Unmounts and removes both dirs (idempotent): when the runtime stops
    /// — the node may exit right after, without dropping it — and on drop.
    pub fn remove(&self) {
        if self.quota.is_some() {
            // Lazily: a worker still dying may hold it open.
            unmount(&self.work);
        }
        for d in [&self.work, &self.code_dir] {
            if let Err(e) = std::fs::remove_dir_all(d) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!("etl: remove {}: {e}", d.display());
                }
            }
        }
    }
}

impl Drop for RuntimeDirs {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Creates `path` (which must not exist) and returns it open; owner and
/// mode are set through that descriptor.
pub(crate) fn new_dir(
    path: &Path,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<std::fs::File> {
    std::fs::DirBuilder::new().mode(mode).create(path)?;
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)?;
    fix(&dir, mode, owner)?;
    Ok(dir)
}

/// `name` made inside the open directory `parent` (`mkdirat`), then opened
/// beneath it without following links.
fn new_dir_at(
    parent: &std::fs::File,
    name: &str,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<std::fs::File> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let c = std::ffi::CString::new(name).map_err(io::Error::other)?;
    // SAFETY: plain *at syscalls on a descriptor we own; the returned
    // descriptor is owned by the File made from it.
    unsafe {
        if libc::mkdirat(parent.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) != 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = libc::openat(
            parent.as_raw_fd(),
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let dir = std::fs::File::from_raw_fd(fd);
        fix(&dir, mode, owner)?;
        Ok(dir)
    }
}

fn fix(dir: &std::fs::File, mode: u32, owner: Option<(u32, u32)>) -> io::Result<()> {
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(dir, Some(uid), Some(gid))?;
    }
    dir.set_permissions(std::fs::Permissions::from_mode(mode))
}

/// A tmpfs of `size` bytes (and one inode per 16 KiB, at least 1,024) at
/// `dir`, owned by `owner`, mode 0700.
fn mount_tmpfs(dir: &Path, size: u64, owner: Option<(u32, u32)>) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let mut opts = format!(
        "size={size},nr_inodes={},mode=0700",
        (size / (16 << 10)).max(1024)
    );
    if let Some((u, g)) = owner {
        opts.push_str(&format!(",uid={u},gid={g}"));
    }
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let o = std::ffi::CString::new(opts).map_err(io::Error::other)?;
    // SAFETY: mount(2) with NUL-terminated strings we own.
    let r = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            c.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            o.as_ptr().cast(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Detaches whatever is mounted at `dir` (lazily; best effort).
fn unmount(dir: &Path) {
    use std::os::unix::ffi::OsStrExt;
    if let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) {
        // SAFETY: umount2(2) with a NUL-terminated string we own.
        unsafe {
            libc::umount2(c.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW);
        }
    }
}

/// Mount points at or below `root` (this process's mount table).
fn mounts_below(root: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ").replace("\\011", "\t")))
        .filter(|p| p.starts_with(root))
        .collect()
}

/// At a target's start: removes every work and code dir an earlier run left
/// (no runtime is running yet; their tmpfs mounts are detached first), and
/// the work dirs of the layout before this one (`<etl>/<name>/` holding
/// `tmp/` or `code.py`), without following any link in them.
pub fn reset(etl_dir: &Path) {
    for m in mounts_below(&etl_dir.join(WORK)) {
        unmount(&m);
    }
    for d in [WORK, CODE] {
        let p = etl_dir.join(d);
        if let Err(e) = std::fs::remove_dir_all(&p) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!("etl: remove {}: {e}", p.display());
            }
        }
    }
    let Ok(rd) = std::fs::read_dir(etl_dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        let legacy = ["tmp", "code.py"]
            .iter()
            .any(|f| std::fs::symlink_metadata(p.join(f)).is_ok());
        if is_dir && legacy {
            let _ = std::fs::remove_dir_all(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_dirs_never_follow_planted_links() {
        let root = tempfile::tempdir().unwrap();
        let etl = root.path().join("etl");
        let victim = root.path().join("victim");
        std::fs::create_dir(&victim).unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o755)).unwrap();
        let a = RuntimeDirs::create(&etl, "x", None, None).unwrap();
        a.write_code("code.py", b"print(1)").unwrap();
        // User code plants links in its work dir.
        std::fs::remove_dir(a.tmp()).unwrap();
        std::os::unix::fs::symlink(&victim, a.tmp()).unwrap();
        std::os::unix::fs::symlink(victim.join("pwned"), a.work.join("code.py")).unwrap();
        // The next start gets new dirs; the old ones go without following.
        let b = RuntimeDirs::create(&etl, "x", None, None).unwrap();
        assert_ne!(a.work, b.work);
        let code = b.write_code("code.py", b"print(2)").unwrap();
        assert!(code.starts_with(etl.join(CODE)));
        let old = a.work.clone();
        drop(a);
        assert!(std::fs::symlink_metadata(&old).is_err());
        assert!(victim.is_dir() && !victim.join("pwned").exists());
        assert_eq!(
            std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777,
            0o755
        );
        // A link planted where the code file goes is refused, not followed.
        std::os::unix::fs::symlink(victim.join("pwned2"), b.code_dir.join("c2.py")).unwrap();
        assert!(b.write_code("c2.py", b"x").is_err());
        assert!(!victim.join("pwned2").exists());
        // A restart wipes what a killed target left, links included.
        std::mem::forget(b);
        let legacy = etl.join("old-etl");
        std::fs::create_dir_all(&legacy).unwrap();
        std::os::unix::fs::symlink(&victim, legacy.join("tmp")).unwrap();
        reset(&etl);
        assert!(!etl.join(WORK).exists() && !etl.join(CODE).exists() && !legacy.exists());
        assert!(victim.is_dir());
    }
}
