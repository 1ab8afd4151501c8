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
        .filter(|r| r.starts_with('/'))
        .map(|r| normalize(Path::new(r)).unwrap_or_else(|| PathBuf::from(r)))
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

/// One file found: its object name, size, and its path below the root as
/// components (opened again, beneath the root, when promoted: a walk holds
/// no descriptor per file or directory).
pub struct Found {
    pub obj: String,
    pub size: u64,
    pub path: Vec<Vec<u8>>,
}

/// What a walk met that it did not promote (symlinks, special files).
pub struct Walk {
    pub files: Vec<Found>,
    pub skipped: Vec<String>,
}

/// Walks `src` below its root: a file, or a directory (its files; with
/// `recursive`, those below too), never leaving the root.
pub fn walk(src: &str, obj: &str, recursive: bool) -> ApiResult<Walk> {
    let (root, rest) = split_root(src)?;
    let base: Vec<Vec<u8>> = rest.iter().map(|c| c.as_bytes().to_vec()).collect();
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
    // The root itself is the operator's (it may be a link they made).
    let rootfd: OwnedFd = std::fs::File::open(&root)
        .map_err(|e| io(&root.display().to_string(), e))?
        .into();
    let mut dir = rootfd;
    let comps: Vec<&std::ffi::OsStr> = rest.iter().collect();
    let mut out = Walk {
        files: Vec::new(),
        skipped: Vec::new(),
    };
    let Some((last, parents)) = comps.split_last() else {
        // The root itself.
        walk_dir(&dir, &base, "", obj, recursive, 0, &mut out)?;
        return Ok(out);
    };
    for c in parents {
        dir = openat(&dir, c.as_bytes(), libc::O_RDONLY | libc::O_DIRECTORY)
            .map_err(|e| io(src, e))?;
    }
    let fd =
        openat(&dir, last.as_bytes(), libc::O_RDONLY | libc::O_NONBLOCK).map_err(|e| io(src, e))?;
    let st = fstat(&fd).map_err(|e| io(src, e))?;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => {
            // A file: named OBJ, OBJ/BASENAME when OBJ ends with '/', or its own name.
            let fname = last.to_string_lossy().to_string();
            let name = if obj.is_empty() {
                fname
            } else if obj.ends_with('/') {
                format!("{obj}{fname}")
            } else {
                obj.to_string()
            };
            out.files.push(Found {
                obj: name,
                size: st.st_size as u64,
                path: base,
            });
        }
        libc::S_IFDIR => {
            let prefix = if obj.is_empty() || obj.ends_with('/') {
                obj.to_string()
            } else {
                format!("{obj}/")
            };
            walk_dir(&fd, &base, "", &prefix, recursive, 0, &mut out)?;
        }
        _ => {
            return Err(ApiError::bad_request(format!(
                "promote: {src} is neither a regular file nor a directory"
            )))
        }
    }
    Ok(out)
}

fn walk_dir(
    dir: &OwnedFd,
    at: &[Vec<u8>],
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
    // The entries of exactly this directory: through its descriptor.
    let listing = format!("/proc/self/fd/{}", dir.as_raw_fd());
    let mut names: Vec<Vec<u8>> = std::fs::read_dir(&listing)
        .map_err(|e| ApiError::bad_request(format!("promote: list {rel}: {e}")))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().as_bytes().to_vec())
        .collect();
    names.sort();
    for n in names {
        if out.files.len() >= MAX_FILES {
            return Err(ApiError::bad_request(format!(
                "promote: more than {MAX_FILES} files on one target (promote subdirectories one by one)"
            )));
        }
        let shown = format!("{rel}{}", String::from_utf8_lossy(&n));
        let fd = match openat(dir, &n, libc::O_RDONLY | libc::O_NONBLOCK) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                out.skipped
                    .push(format!("{shown}: a symbolic link (not promoted)"));
                continue;
            }
            Err(e) => {
                out.skipped.push(format!("{shown}: {e}"));
                continue;
            }
        };
        let st = fstat(&fd).map_err(|e| ApiError::bad_request(format!("promote: {shown}: {e}")))?;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => {
                let name = String::from_utf8(n.clone()).map_err(|_| {
                    ApiError::bad_request(format!("promote: {shown}: the name is not UTF-8"))
                })?;
                let mut path = at.to_vec();
                path.push(n);
                out.files.push(Found {
                    obj: format!("{prefix}{rel}{name}"),
                    size: st.st_size as u64,
                    path,
                });
            }
            libc::S_IFDIR if recursive => {
                let sub = format!("{shown}/");
                let mut below = at.to_vec();
                below.push(n);
                walk_dir(&fd, &below, &sub, prefix, recursive, depth + 1, out)?;
            }
            libc::S_IFDIR => {}
            _ => out
                .skipped
                .push(format!("{shown}: not a regular file (not promoted)")),
        }
    }
    Ok(())
}

/// Opens `path` (components below `root`) again the way the walk did:
/// every directory with `O_NOFOLLOW`, the file a regular one. Answers its
/// directory (to delete the file beneath it) and the file.
fn open_beneath(root: &Path, path: &[Vec<u8>]) -> std::io::Result<(OwnedFd, OwnedFd, u64)> {
    let mut dir: OwnedFd = std::fs::File::open(root)?.into();
    let Some((last, parents)) = path.split_last() else {
        return Err(std::io::Error::other("not a file"));
    };
    for c in parents {
        dir = openat(&dir, c, libc::O_RDONLY | libc::O_DIRECTORY)?;
    }
    let f = openat(&dir, last, libc::O_RDONLY | libc::O_NONBLOCK)?;
    let st = fstat(&f)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(std::io::Error::other("no longer a regular file"));
    }
    Ok((dir, f, st.st_size as u64))
}

/// `(count, hash of the object names and sizes)` of what this target would
/// promote: targets that agree see one file share.
pub fn scan(src: &str, obj: &str, recursive: bool) -> ApiResult<(u64, String)> {
    let w = walk(src, obj, recursive)?;
    let mut h = xxhash_rust::xxh64::Xxh64::new(0);
    for f in &w.files {
        h.update(f.obj.as_bytes());
        h.update(&f.size.to_le_bytes());
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
        job.record(&format!("{src}/{s}"), &ApiError::bad_request(s.clone()));
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
        // Opened again beneath the root (nothing followed), then read
        // through its descriptor's /proc name: the very file checked.
        let (r2, p2) = (root.clone(), f.path.clone());
        let opened = tokio::task::spawn_blocking(move || open_beneath(&r2, &p2))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let (dirfd, file, size) = match opened {
            Ok(x) => x,
            Err(e) => {
                job.record(&cname, &ApiError::bad_request(format!("promote: {e}")));
                continue;
            }
        };
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        match super::jobs::put_to_owner(t, &dst.name, &f.obj, None, &path, Default::default()).await
        {
            Ok(()) => {
                job.done_one(size);
                if delete_src {
                    let name = f.path.last().cloned().unwrap_or_default();
                    let c = CString::new(name).unwrap_or_default();
                    // SAFETY: the directory descriptor is open; the name is
                    // NUL-terminated. Removed beneath the walked directory,
                    // never by a path that could have been swapped.
                    if unsafe { libc::unlinkat(dirfd.as_raw_fd(), c.as_ptr(), 0) } < 0 {
                        let e = std::io::Error::last_os_error();
                        job.record(
                            &cname,
                            &ApiError::internal(format!(
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
