//! Reading a tree another uid wrote (a dependency install's output) without
//! ever following what it planted: every step is `openat`/`fstatat` beneath
//! a descriptor the node opened with `O_NOFOLLOW`; links are copied as
//! links, never resolved; only regular files and directories owned by the
//! writer's uid are taken (a hard link it made to a file of someone else's,
//! a device node or a fifo is skipped). The copy is the node's: owned by it,
//! no set-id bits, nothing writable by anyone else.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Deepest directory nesting copied (a venv is ~10 deep).
const MAX_DEPTH: usize = 64;
/// Most entries copied from one tree (a venv with torch has ~50,000).
const MAX_ENTRIES: u64 = 500_000;

/// `AIS_ETL_ENV_MAX_BYTES`: the most bytes one environment may hold
/// (default 16 GiB; sizes as `16GiB`). Counted by the files' sizes, so a
/// sparse file cannot turn into a disk full of zeros.
pub fn max_bytes() -> u64 {
    std::env::var("AIS_ETL_ENV_MAX_BYTES")
        .ok()
        .and_then(|v| crate::spec::parse_size(v.trim()).ok())
        .filter(|n| *n > 0)
        .unwrap_or(16 << 30)
}

/// What [`copy_tree`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub files: u64,
    pub dirs: u64,
    pub links: u64,
    /// Entries left out: not the writer's, or not a file, dir or link.
    pub skipped: u64,
    pub bytes: u64,
    /// At most this many bytes are copied ([`max_bytes`]).
    pub limit: u64,
}

/// Copies the tree at `src` (written by `writer_uid`) to `dst`, which must
/// not exist; see the module docs.
pub fn copy_tree(src: &Path, dst: &Path, writer_uid: u32) -> io::Result<Copied> {
    copy_tree_upto(src, dst, writer_uid, max_bytes())
}

/// [`copy_tree`] of at most `limit` bytes.
pub fn copy_tree_upto(src: &Path, dst: &Path, writer_uid: u32, limit: u64) -> io::Result<Copied> {
    let s = open_dir(libc::AT_FDCWD, &cpath(src)?)?;
    std::fs::DirBuilder::new().create(dst)?;
    let d = open_dir(libc::AT_FDCWD, &cpath(dst)?)?;
    fix_dir(&d)?;
    let mut out = Copied {
        limit,
        ..Copied::default()
    };
    copy_dir(&s, &d, writer_uid, 0, &mut out)?;
    Ok(out)
}

/// Writes `data` as a new file `rel` beneath `root` (a tree copied by
/// [`copy_tree`]: its names came from another uid), never through a link.
pub fn write_beneath(root: &Path, rel: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut dir = open_dir(libc::AT_FDCWD, &cpath(root)?)?;
    let comps: Vec<_> = rel.iter().collect();
    let Some((file, parents)) = comps.split_last() else {
        return Err(io::Error::other("empty path"));
    };
    for c in parents {
        dir = open_dir(dir.as_raw_fd(), &cname(c.as_bytes())?)?;
    }
    let name = cname(file.as_bytes())?;
    // SAFETY: openat on a descriptor we own; the result is owned by the File.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o644 as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    f.write_all(data)
}

fn copy_dir(
    src: &std::fs::File,
    dst: &std::fs::File,
    uid: u32,
    depth: usize,
    out: &mut Copied,
) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::other(format!(
            "directories nested deeper than {MAX_DEPTH}"
        )));
    }
    for name in list(src)? {
        if out.files + out.dirs + out.links + out.skipped >= MAX_ENTRIES {
            return Err(io::Error::other(format!("more than {MAX_ENTRIES} entries")));
        }
        let st = stat_at(src, &name)?;
        let kind = st.st_mode & libc::S_IFMT;
        if st.st_uid != uid && kind != libc::S_IFLNK {
            out.skipped += 1;
            continue;
        }
        match kind {
            libc::S_IFDIR => {
                let s = open_dir(src.as_raw_fd(), &name)?;
                same_entry(&s, &st)?;
                // SAFETY: mkdirat on a descriptor we own.
                if unsafe { libc::mkdirat(dst.as_raw_fd(), name.as_ptr(), 0o755) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                let d = open_dir(dst.as_raw_fd(), &name)?;
                fix_dir(&d)?;
                out.dirs += 1;
                copy_dir(&s, &d, uid, depth + 1, out)?;
            }
            libc::S_IFREG => {
                out.bytes = out.bytes.saturating_add(st.st_size as u64);
                if out.bytes > out.limit {
                    return Err(io::Error::other(format!(
                        "the environment holds more than {} bytes (AIS_ETL_ENV_MAX_BYTES)",
                        out.limit
                    )));
                }
                // Non-blocking: a fifo swapped in after the stat must not
                // hang the node; the opened file must be the one checked.
                let mut s = open_at(src, &name, libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
                same_entry(&s, &st)?;
                // Executable bits kept, nothing else: no set-id, no group or
                // other write.
                let mode = if st.st_mode & 0o111 != 0 {
                    0o755
                } else {
                    0o644
                };
                let mut d = open_at(
                    dst,
                    &name,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
                    mode,
                )?;
                io::copy(&mut s, &mut d)?;
                out.files += 1;
            }
            libc::S_IFLNK => {
                let target = read_link_at(src, &name)?;
                // SAFETY: symlinkat with a NUL-terminated target and name.
                if unsafe { libc::symlinkat(target.as_ptr(), dst.as_raw_fd(), name.as_ptr()) } != 0
                {
                    return Err(io::Error::last_os_error());
                }
                out.links += 1;
            }
            _ => out.skipped += 1,
        }
    }
    Ok(())
}

/// The opened descriptor is the entry `st` described (same kind, device,
/// inode and owner): nothing was swapped in between.
fn same_entry(f: &std::fs::File, st: &libc::stat) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata()?;
    let kind = m.mode() & libc::S_IFMT;
    if kind != st.st_mode & libc::S_IFMT
        || m.dev() != st.st_dev
        || m.ino() != st.st_ino
        || m.uid() != st.st_uid
    {
        return Err(io::Error::other(
            "an entry changed while it was being copied",
        ));
    }
    Ok(())
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other)
}

fn cname(b: &[u8]) -> io::Result<CString> {
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        return Err(io::Error::other("not a plain file name"));
    }
    CString::new(b).map_err(io::Error::other)
}

fn open_dir(at: libc::c_int, name: &CStr) -> io::Result<std::fs::File> {
    // SAFETY: openat with a valid descriptor (or AT_FDCWD) and name.
    let fd = unsafe {
        libc::openat(
            at,
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

fn open_at(
    dir: &std::fs::File,
    name: &CStr,
    flags: libc::c_int,
    mode: libc::c_uint,
) -> io::Result<std::fs::File> {
    // SAFETY: openat beneath a descriptor we own, never through a link.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

fn stat_at(dir: &std::fs::File, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: fstatat into a zeroed struct, without following a link.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(st)
    }
}

fn read_link_at(dir: &std::fs::File, name: &CStr) -> io::Result<CString> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: readlinkat into a buffer of the length given.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    CString::new(buf).map_err(io::Error::other)
}

/// The names in an open directory (not `.`, `..`), read through a
/// duplicate of its descriptor.
fn list(dir: &std::fs::File) -> io::Result<Vec<CString>> {
    let dup = dir.try_clone()?;
    // SAFETY: fdopendir takes ownership of the duplicate; closedir frees it.
    unsafe {
        use std::os::fd::IntoRawFd;
        let dp = libc::fdopendir(dup.into_raw_fd());
        if dp.is_null() {
            return Err(io::Error::last_os_error());
        }
        let mut out = Vec::new();
        loop {
            *libc::__errno_location() = 0;
            let ent = libc::readdir(dp);
            if ent.is_null() {
                let err = *libc::__errno_location();
                libc::closedir(dp);
                if err != 0 {
                    return Err(io::Error::from_raw_os_error(err));
                }
                return Ok(out);
            }
            let name = CStr::from_ptr((*ent).d_name.as_ptr());
            let b = name.to_bytes();
            if b != b"." && b != b".." {
                out.push(name.to_owned());
            }
        }
    }
}

/// A copied directory: the node's, 0755.
fn fix_dir(d: &std::fs::File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    d.set_permissions(std::fs::Permissions::from_mode(0o755))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn links_are_copied_as_links_and_never_followed() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"secret").unwrap();
        let src = t.path().join("src");
        std::fs::create_dir_all(src.join("lib/site")).unwrap();
        std::fs::write(src.join("lib/site/mod.py"), b"x = 1").unwrap();
        std::fs::write(src.join("run"), b"#!/bin/sh").unwrap();
        std::fs::set_permissions(src.join("run"), std::fs::Permissions::from_mode(0o4777)).unwrap();
        std::os::unix::fs::symlink(&outside, src.join("escape")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), src.join("lib/s")).unwrap();
        let me = std::fs::metadata(&src).unwrap().uid();
        let dst = t.path().join("dst");
        let c = copy_tree(&src, &dst, me).unwrap();
        assert_eq!((c.files, c.dirs, c.links), (2, 2, 2), "{c:?}");
        assert_eq!(
            std::fs::read(dst.join("lib/site/mod.py")).unwrap(),
            b"x = 1"
        );
        let mode = std::fs::metadata(dst.join("run")).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o755);
        // Links stay links (pointing where they pointed); nothing behind
        // them was copied.
        assert!(std::fs::symlink_metadata(dst.join("escape"))
            .unwrap()
            .is_symlink());
        assert_eq!(
            std::fs::read_link(dst.join("lib/s")).unwrap(),
            outside.join("secret")
        );
        // Writing beneath the copy never goes through a link.
        let e = write_beneath(&dst, Path::new("escape/planted"), b"x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR), "{e}");
        let e = write_beneath(&dst, Path::new("lib/s"), b"x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST), "{e}");
        assert!(!outside.join("planted").exists());
        assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"secret");
        write_beneath(&dst, Path::new("lib/site/base.pth"), b"/usr/lib").unwrap();
        // Entries of another uid are left out.
        let c = copy_tree(&src, &t.path().join("dst2"), me + 1).unwrap();
        assert_eq!((c.files, c.dirs), (0, 0), "{c:?}");
    }

    #[test]
    fn sizes_are_capped_and_fifos_skipped() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        std::fs::create_dir(&src).unwrap();
        // A sparse file: nothing on disk, a terabyte if copied.
        let f = std::fs::File::create(src.join("sparse")).unwrap();
        f.set_len(1 << 40).unwrap();
        let me = std::fs::metadata(&src).unwrap().uid();
        let e = copy_tree_upto(&src, &t.path().join("d1"), me, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("AIS_ETL_ENV_MAX_BYTES"), "{e}");
        std::fs::remove_file(src.join("sparse")).unwrap();
        let fifo = std::ffi::CString::new(src.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo with a valid path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let c = copy_tree_upto(&src, &t.path().join("d2"), me, 1 << 20).unwrap();
        assert_eq!((c.files, c.skipped), (0, 1), "{c:?}");
    }
}
