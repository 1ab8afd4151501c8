//! `promote` (AIStore's): files already on a target's filesystem (local
//! disks, NFS/SMB shares mounted there) become objects without passing
//! through a client.
//!
//! Only operator-allowed roots are read: `AIS_PROMOTE_ROOTS` (absolute
//! directories, `:`-separated; default `/var/lib/ais/promote`, AIStore's).
//! Whoever can write below a root is not trusted: the walk holds directory
//! descriptors and opens each name beneath them with `O_NOFOLLOW`, so a
//! symbolic link (or one swapped in mid-walk) is skipped, never followed
//! out of the root; only regular files are read (a FIFO or device is never
//! opened for reading: `O_NONBLOCK` first, then `fstat`); depth and count
//! are bounded.
//!
//! A source every target sees the same (a file share, or one host's
//! directory seen by every target of a playground) is split by ownership:
//! each target promotes the files whose objects it owns. Otherwise each
//! target promotes what it sees, each file stored on its owner.

use super::jobs::TargetJob;
use super::Target;
use crate::error::{ApiError, ApiResult};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Most files one promote visits on one target.
pub const MAX_FILES: usize = 1_000_000;
/// Deepest directory nesting walked.
const MAX_DEPTH: usize = 64;

/// The roots promote may read (absolute, normalized).
pub fn roots() -> Vec<PathBuf> {
    let raw = std::env::var("AIS_PROMOTE_ROOTS").unwrap_or_else(|_| "/var/lib/ais/promote".into());
    raw.split(':')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .filter_map(|r| {
            // Absolute, without "..", and never the whole filesystem.
            let ok = r.starts_with('/').then(|| normalize(Path::new(r))).flatten();
            match ok {
                Some(p) if p != Path::new("/") => Some(p),
                _ => {
                    tracing::warn!(root = %r, "AIS_PROMOTE_ROOTS: ignored (absolute, no \"..\", not \"/\")");
                    None
                }
            }
        })
        .collect()
}

/// `p` without `.` components and trailing slashes; `None` with a `..`.
pub fn normalize(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// The root `src` lies under and the path below it.
pub fn split_root(src: &str) -> ApiResult<(PathBuf, PathBuf)> {
    let bad = |why: String| ApiError::bad_request(format!("promote: source \"{src}\": {why}"));
    if !src.starts_with('/') {
        return Err(bad("must be an absolute path".into()));
    }
    let p = normalize(Path::new(src)).ok_or_else(|| bad("must not contain \"..\"".into()))?;
    let roots = roots();
    for r in &roots {
        if let Ok(rest) = p.strip_prefix(r) {
            return Ok((r.clone(), rest.to_path_buf()));
        }
    }
    Err(ApiError::Forbidden(format!(
        "promote: source \"{src}\" is outside the directories this cluster promotes from ({}; set by the operator with AIS_PROMOTE_ROOTS)",
        roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

fn openat(dir: &OwnedFd, name: &[u8], flags: libc::c_int) -> std::io::Result<OwnedFd> {
    let c = CString::new(name).map_err(|_| std::io::Error::other("NUL in a file name"))?;
    // SAFETY: a valid directory descriptor and a NUL-terminated name.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor we just opened and own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fstat(fd: &OwnedFd) -> std::io::Result<libc::stat> {
    // SAFETY: zeroed is a valid `stat`; the descriptor is open.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st)
}

/// One file found: its object name, its identity when walked, and its
/// path below the root (`/`-separated; opened again, beneath the root, when
/// promoted: a walk holds no descriptor per file or directory).
pub struct Found {
    pub obj: String,
    pub size: u64,
    pub path: String,
}

/// What a walk met that it did not promote (symlinks, special files, hard
/// links, other filesystems, names that are not UTF-8), the first
/// [`MAX_SKIPPED`] named.
pub struct Walk {
    pub files: Vec<Found>,
    pub skipped: Vec<String>,
    pub skipped_count: usize,
    entries: usize,
    dev: u64,
}

/// Most skipped entries named (the rest counted).
const MAX_SKIPPED: usize = 100;
/// Most directory entries one walk visits, whatever they are.
const MAX_ENTRIES: usize = 2_000_000;

impl Walk {
    fn skip(&mut self, why: String) {
        self.skipped_count += 1;
        if self.skipped.len() < MAX_SKIPPED {
            self.skipped.push(why);
        }
    }
}

/// `O_PATH` descriptors: nothing of the file's is run to get one (a device
/// node's driver is never opened), only `fstat` and `openat` beneath it.
const PATH: libc::c_int = libc::O_PATH;

fn open_root(root: &Path) -> std::io::Result<OwnedFd> {
    let c = CString::new(root.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("NUL in the root"))?;
    // SAFETY: a NUL-terminated path; the root's last component is not
    // followed either (a link planted in its place is refused).
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor we just opened and own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether a walked entry may be promoted: a regular file with one link,
/// on the root's filesystem (no hard link to a file elsewhere, no mount of
/// another filesystem below the root).
fn promotable(st: &libc::stat, dev: u64) -> Result<(), &'static str> {
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err("not a regular file");
    }
    if st.st_nlink > 1 {
        return Err("a file with several hard links (not promoted)");
    }
    if st.st_dev != dev {
        return Err("on another filesystem than the promote root (not promoted)");
    }
    Ok(())
}

/// Walks `src` below its root: a file, or a directory (its files; with
/// `recursive`, those below too), never leaving the root.
pub fn walk(src: &str, obj: &str, recursive: bool) -> ApiResult<Walk> {
    let (root, rest) = split_root(src)?;
    let io = |what: &str, e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ApiError::NotFound(format!("promote: {src} does not exist on this target"))
        } else if e.raw_os_error() == Some(libc::ELOOP) {
            ApiError::bad_request(format!(
                "promote: {what}: a symbolic link; links are not promoted (nor followed)"
            ))
        } else {
            ApiError::bad_request(format!("promote: {what}: {e}"))
        }
    };
    let mut dir = open_root(&root).map_err(|e| io(&root.display().to_string(), e))?;
    let dev = fstat(&dir).map_err(|e| io(src, e))?.st_dev;
    let mut comps: Vec<&str> = Vec::new();
    for c in rest.iter() {
        comps.push(c.to_str().ok_or_else(|| {
            ApiError::bad_request(format!("promote: {src}: the path is not UTF-8"))
        })?);
    }
    let mut out = Walk {
        files: Vec::new(),
        skipped: Vec::new(),
        skipped_count: 0,
        entries: 0,
        dev,
    };
    let prefix_of = |obj: &str| {
        if obj.is_empty() || obj.ends_with('/') {
            obj.to_string()
        } else {
            format!("{obj}/")
        }
    };
    let Some((last, parents)) = comps.split_last() else {
        // The root itself.
        walk_dir(&dir, "", &prefix_of(obj), recursive, 0, &mut out)?;
        return Ok(out);
    };
    for c in parents {
        dir = openat(&dir, c.as_bytes(), PATH | libc::O_DIRECTORY).map_err(|e| io(src, e))?;
    }
    let fd = openat(&dir, last.as_bytes(), PATH).map_err(|e| io(src, e))?;
    let st = fstat(&fd).map_err(|e| io(src, e))?;
    let rel = comps.join("/");
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => {
            promotable(&st, dev)
                .map_err(|why| ApiError::bad_request(format!("promote: {src}: {why}")))?;
            // A file: named OBJ, OBJ/BASENAME when OBJ ends with '/', or its own name.
            let name = if obj.is_empty() {
                last.to_string()
            } else if obj.ends_with('/') {
                format!("{obj}{last}")
            } else {
                obj.to_string()
            };
            out.files.push(Found {
                obj: name,
                size: st.st_size as u64,
                path: rel,
            });
        }
        libc::S_IFDIR => {
            if st.st_dev != dev {
                return Err(ApiError::bad_request(format!(
                    "promote: {src} is on another filesystem than the promote root"
                )));
            }
            walk_dir(
                &fd,
                &format!("{rel}/"),
                &prefix_of(obj),
                recursive,
                0,
                &mut out,
            )?;
        }
        _ => {
            return Err(ApiError::bad_request(format!(
                "promote: {src} is neither a regular file nor a directory"
            )))
        }
    }
    Ok(out)
}

/// The files of one directory (`at`: its path below the root, with `/`;
/// object names are `prefix` + the path below the walked source, `rel`).
fn walk_dir(
    dir: &OwnedFd,
    at: &str,
    prefix: &str,
    recursive: bool,
    depth: usize,
    out: &mut Walk,
) -> ApiResult<()> {
    walk_below(dir, at, "", prefix, recursive, depth, out)
}

fn walk_below(
    dir: &OwnedFd,
    at: &str,
    rel: &str,
    prefix: &str,
    recursive: bool,
    depth: usize,
    out: &mut Walk,
) -> ApiResult<()> {
    if depth > MAX_DEPTH {
        return Err(ApiError::bad_request(format!(
            "promote: directories nested deeper than {MAX_DEPTH}"
        )));
    }
    // The entries of exactly this directory: through its descriptor, read
    // as a stream (counted as they come).
    let listing = format!("/proc/self/fd/{}", dir.as_raw_fd());
    let mut names: Vec<Vec<u8>> = Vec::new();
    for e in std::fs::read_dir(&listing)
        .map_err(|e| ApiError::bad_request(format!("promote: list {at}: {e}")))?
    {
        out.entries += 1;
        if out.entries > MAX_ENTRIES {
            return Err(ApiError::bad_request(format!(
                "promote: more than {MAX_ENTRIES} entries below the source (promote subdirectories one by one)"
            )));
        }
        if let Ok(e) = e {
            names.push(e.file_name().as_bytes().to_vec());
        }
    }
    names.sort();
    for n in names {
        if out.files.len() >= MAX_FILES {
            return Err(ApiError::bad_request(format!(
                "promote: more than {MAX_FILES} files on one target (promote subdirectories one by one)"
            )));
        }
        let Ok(name) = String::from_utf8(n.clone()) else {
            out.skip(format!(
                "{rel}{}: the name is not UTF-8 (not promoted)",
                String::from_utf8_lossy(&n)
            ));
            continue;
        };
        let shown = format!("{rel}{name}");
        let fd = match openat(dir, &n, PATH) {
            Ok(fd) => fd,
            Err(e) => {
                out.skip(format!("{shown}: {e}"));
                continue;
            }
        };
        let st = fstat(&fd).map_err(|e| ApiError::bad_request(format!("promote: {shown}: {e}")))?;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFLNK => out.skip(format!("{shown}: a symbolic link (not promoted)")),
            libc::S_IFDIR if recursive => {
                if st.st_dev != out.dev {
                    out.skip(format!("{shown}: another filesystem (not walked)"));
                    continue;
                }
                let (at2, rel2) = (format!("{at}{name}/"), format!("{shown}/"));
                walk_below(&fd, &at2, &rel2, prefix, recursive, depth + 1, out)?;
            }
            libc::S_IFDIR => {}
            _ => match promotable(&st, out.dev) {
                Ok(()) => out.files.push(Found {
                    obj: format!("{prefix}{shown}"),
                    size: st.st_size as u64,
                    path: format!("{at}{name}"),
                }),
                Err(why) => out.skip(format!("{shown}: {why}")),
            },
        }
    }
    Ok(())
}

/// Opens `path` (below `root`) again the way the walk did, checks it is
/// still a promotable file, and opens it for reading through its `O_PATH`
/// descriptor. Answers its directory (to delete it beneath), the file, and
/// its `stat`.
fn open_beneath(root: &Path, path: &str) -> std::io::Result<(OwnedFd, std::fs::File, libc::stat)> {
    let mut dir = open_root(root)?;
    let dev = fstat(&dir)?.st_dev;
    let comps: Vec<&str> = path.split('/').collect();
    let Some((last, parents)) = comps.split_last() else {
        return Err(std::io::Error::other("not a file"));
    };
    for c in parents {
        dir = openat(&dir, c.as_bytes(), PATH | libc::O_DIRECTORY)?;
    }
    let f = openat(&dir, last.as_bytes(), PATH)?;
    let st = fstat(&f)?;
    promotable(&st, dev).map_err(std::io::Error::other)?;
    // Reading it: through the descriptor just checked (a regular file, so
    // opening it runs no driver), never by its path again.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOCTTY)
        .open(format!("/proc/self/fd/{}", f.as_raw_fd()))?;
    Ok((dir, file, st))
}

struct SpoolGuard(PathBuf);

impl Drop for SpoolGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn fstat_file(f: &std::fs::File) -> std::io::Result<libc::stat> {
    // SAFETY: zeroed is a valid `stat`; the file is open.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(f.as_raw_fd(), &mut st) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st)
}

/// The same file, unchanged: device, inode, size, modification and change
/// times.
fn same_file(a: &libc::stat, b: &libc::stat) -> bool {
    a.st_dev == b.st_dev
        && a.st_ino == b.st_ino
        && a.st_size == b.st_size
        && (a.st_mtime, a.st_mtime_nsec) == (b.st_mtime, b.st_mtime_nsec)
        && (a.st_ctime, a.st_ctime_nsec) == (b.st_ctime, b.st_ctime_nsec)
}

/// Deletes the promoted file beneath its directory, only if the name still
/// holds the very file that was stored (a newer version renamed over it is
/// kept).
fn delete_if_same(dir: &OwnedFd, path: &str, stored: &libc::stat) -> std::io::Result<()> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let c = CString::new(name).map_err(|_| std::io::Error::other("NUL in a name"))?;
    // SAFETY: zeroed is a valid `stat`; the directory is open; the name is
    // NUL-terminated.
    let mut now: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut now,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } < 0
    {
        return Err(std::io::Error::last_os_error());
    }
    if !same_file(stored, &now) {
        return Err(std::io::Error::other(
            "the source changed after it was read (kept)",
        ));
    }
    // SAFETY: as above.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `(count, hash)` of what this target would promote (names length-prefixed,
/// sizes, mtimes): targets that agree see one file share.
pub fn scan(src: &str, obj: &str, recursive: bool) -> ApiResult<(u64, String)> {
    let w = walk(src, obj, recursive)?;
    let (root, _) = split_root(src)?;
    let mut h = xxhash_rust::xxh64::Xxh64::new(0);
    for f in &w.files {
        h.update(&(f.obj.len() as u64).to_le_bytes());
        h.update(f.obj.as_bytes());
        h.update(&f.size.to_le_bytes());
        // The modification time too: same-sized files of different hosts
        // are not one share.
        let p = root.join(&f.path);
        if let Ok(md) = std::fs::symlink_metadata(&p) {
            use std::os::unix::fs::MetadataExt;
            h.update(&md.mtime().to_le_bytes());
            h.update(&md.mtime_nsec().to_le_bytes());
        }
    }
    Ok((w.files.len() as u64, format!("{:016x}", h.digest())))
}

/// The `promote` job on this target (`TcbMsg.ext`: src, obj, rcr, ovw,
/// dls, share).
pub async fn run(t: &Arc<Target>, job: &Arc<TargetJob>) -> ApiResult<()> {
    let spec = &job.spec;
    let arg = |k: &str| spec.msg.ext.get(k).cloned().unwrap_or_default();
    let (src, obj) = (arg("src"), arg("obj"));
    let flag = |k: &str| arg(k) == "true";
    let (recursive, overwrite, delete_src, share) =
        (flag("rcr"), flag("ovw"), flag("dls"), flag("share"));
    let (root, _) = split_root(&src)?;
    let (s2, o2) = (src.clone(), obj.clone());
    let w = tokio::task::spawn_blocking(move || walk(&s2, &o2, recursive))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let dst = t.core.bck(spec.dst.clone());
    for s in &w.skipped {
        job.record(&format!("{src}: {s}"), &ApiError::bad_request(s.clone()));
    }
    if w.skipped_count > w.skipped.len() {
        let more = w.skipped_count - w.skipped.len();
        job.record(
            &src,
            &ApiError::bad_request(format!("{more} more entries skipped (not named)")),
        );
    }
    // Split by ownership when every target sees the same files.
    let mine: Vec<Found> = w
        .files
        .into_iter()
        .filter(|f| {
            !share
                || t.core
                    .owner_with(&dst.obj_uname(&f.obj), |o| o.daemon_id == t.core.id)
                    .unwrap_or(false)
        })
        .collect();
    job.set_total(mine.len() as u64, mine.iter().map(|f| f.size).sum());
    for f in mine {
        if job.aborted.load(Ordering::Relaxed) {
            return Ok(());
        }
        let cname = format!("{}/{}", dst.cname(), f.obj);
        if let Err(e) = ais_core::names::validate_object_name(&f.obj) {
            job.record(&cname, &e.into());
            continue;
        }
        if !overwrite && super::jobs::dst_attrs(t, &dst.name, &f.obj).await.is_some() {
            job.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        // Opened again beneath the root (nothing followed), then copied
        // into a spool: exactly the size it has, checked unchanged after
        // (a file written meanwhile is not stored as if whole).
        let (r2, p2) = (root.clone(), f.path.clone());
        let spool = t.store.work_file(&dst, &f.obj, "promote");
        let (sp2, j2) = (spool.clone(), job.clone());
        let copied =
            tokio::task::spawn_blocking(move || -> std::io::Result<(OwnedFd, libc::stat)> {
                let (dirfd, mut file, st) = open_beneath(&r2, &p2)?;
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&sp2)?;
                let mut left = st.st_size as u64;
                let mut buf = vec![0u8; 1 << 20];
                while left > 0 {
                    if j2.aborted.load(Ordering::Relaxed) {
                        return Err(std::io::Error::other("aborted"));
                    }
                    let want = buf.len().min(left as usize);
                    let n = std::io::Read::read(&mut file, &mut buf[..want])?;
                    if n == 0 {
                        return Err(std::io::Error::other("the file shrank while it was read"));
                    }
                    std::io::Write::write_all(&mut out, &buf[..n])?;
                    left -= n as u64;
                }
                let after = fstat_file(&file)?;
                if !same_file(&st, &after) {
                    return Err(std::io::Error::other("the file changed while it was read"));
                }
                Ok((dirfd, st))
            })
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let _guard = SpoolGuard(spool.clone());
        let (dirfd, st) = match copied {
            Ok(x) => x,
            Err(e) => {
                job.record(&cname, &ApiError::bad_request(format!("promote: {e}")));
                continue;
            }
        };
        let size = st.st_size as u64;
        match super::jobs::put_to_owner(t, &dst.name, &f.obj, None, &spool, Default::default())
            .await
        {
            Ok(()) => {
                job.done_one(size);
                if delete_src {
                    if let Err(e) = delete_if_same(&dirfd, &f.path, &st) {
                        job.record(
                            &cname,
                            &ApiError::bad_request(format!(
                                "promoted, but the source was not deleted: {e}"
                            )),
                        );
                    }
                }
            }
            Err(e) => {
                job.record(&cname, &e);
                if !spec.msg.coer {
                    job.fail(format!("{cname}: {e}"));
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}
