//! Object storage on one target. Owns the mountpaths and everything below
//! them: where an object lives (HRW over mountpaths), how it is written
//! (temp file → fsync → xattr metadata → rename → fsync dir, so a reader sees
//! the old object or the new one and never a partial one), how it is read,
//! deleted and listed in name order without loading a bucket into memory.
//!
//! Layout: `<mountpath>/@ais/<bucket>/<object name>`; object attributes
//! ([`ais_core::meta::ObjAttrs`]) live in the `user.ais.meta` xattr of the
//! file itself, so data and metadata become visible in one atomic rename.
//! Temp files live in `<mountpath>/.ais-work/` and are removed at start-up.

mod list;
mod timefmt;

pub use list::list_objects;
pub use timefmt::{go_rfc822, rfc3339};

use ais_core::meta::{ObjAttrs, CKSUM_XXHASH};
use ais_core::{hrw, Bck};
use std::io;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;
use xxhash_rust::xxh64::Xxh64;

const XATTR_META: &str = "user.ais.meta";
const BUCKETS_DIR: &str = "@ais";
const WORK_DIR: &str = ".ais-work";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("checksum mismatch: stored {stored}, computed {computed}")]
    Corrupt { stored: String, computed: String },
    #[error("mountpath {path}: {msg}")]
    Mountpath { path: String, msg: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

pub type Result<T> = std::result::Result<T, StorageError>;

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> StorageError {
    let context = context.into();
    move |source| StorageError::Io { context, source }
}

#[derive(Debug, Clone)]
pub struct Mountpath {
    pub path: PathBuf,
    pub digest: u64,
}

impl Mountpath {
    fn bucket_dir(&self, bck: &Bck) -> PathBuf {
        self.path.join(BUCKETS_DIR).join(&bck.name)
    }
    fn work_dir(&self) -> PathBuf {
        self.path.join(WORK_DIR)
    }
}

/// All mountpaths of one target.
#[derive(Debug, Clone)]
pub struct Store {
    mpaths: Vec<Mountpath>,
}

impl Store {
    /// Opens (creating if needed) every mountpath, checks that it supports
    /// user xattrs, and removes temp files a crash may have left behind.
    pub fn open(paths: &[PathBuf]) -> Result<Self> {
        if paths.is_empty() {
            return Err(StorageError::Mountpath {
                path: String::new(),
                msg: "at least one mountpath is required".into(),
            });
        }
        let mut mpaths = Vec::new();
        for p in paths {
            std::fs::create_dir_all(p)
                .map_err(io_err(format!("create mountpath {}", p.display())))?;
            let path = p
                .canonicalize()
                .map_err(io_err(format!("resolve mountpath {}", p.display())))?;
            // Only the node's user may enter a mountpath (ETL code runs as
            // another uid and must not read objects by path).
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
                    .map_err(io_err(format!("chmod 0700 {}", path.display())))?;
            }
            let work = path.join(WORK_DIR);
            if work.exists() {
                let n = std::fs::read_dir(&work).map(|d| d.count()).unwrap_or(0);
                if n > 0 {
                    tracing::info!(mountpath = %path.display(), leftovers = n, "removing orphaned temp files");
                }
                std::fs::remove_dir_all(&work)
                    .map_err(io_err(format!("clean {}", work.display())))?;
            }
            std::fs::create_dir_all(&work).map_err(io_err(format!("create {}", work.display())))?;
            std::fs::create_dir_all(path.join(BUCKETS_DIR))
                .map_err(io_err(format!("create {}", path.display())))?;
            let probe = work.join("xattr-probe");
            std::fs::write(&probe, b"").map_err(io_err("write xattr probe"))?;
            if let Err(e) = xattr::set(&probe, XATTR_META, b"{}") {
                return Err(StorageError::Mountpath {
                    path: path.display().to_string(),
                    msg: format!(
                        "filesystem does not support user xattrs ({e}); choose another --mpath"
                    ),
                });
            }
            let _ = std::fs::remove_file(&probe);
            let digest = hrw::digest(&path.to_string_lossy());
            mpaths.push(Mountpath { path, digest });
        }
        Ok(Self { mpaths })
    }

    pub fn mountpaths(&self) -> &[Mountpath] {
        &self.mpaths
    }

    fn mpath_for(&self, bck: &Bck, obj: &str) -> &Mountpath {
        let i = hrw::select(&bck.obj_uname(obj), self.mpaths.iter().map(|m| m.digest)).unwrap_or(0);
        &self.mpaths[i]
    }

    /// Absolute path of an object's file (the name must already be validated).
    pub fn obj_path(&self, bck: &Bck, obj: &str) -> PathBuf {
        self.mpath_for(bck, obj).bucket_dir(bck).join(obj)
    }

    /// Starts a streaming write; nothing is visible until [`PutWriter::commit`].
    pub async fn begin_put(&self, bck: &Bck, obj: &str) -> Result<PutWriter> {
        let mp = self.mpath_for(bck, obj);
        let tmp = mp.work_dir().join(format!("put-{}", ais_core::gen_id(16)));
        let file = tokio::fs::File::create(&tmp)
            .await
            .map_err(io_err(format!("create temp file on {}", mp.path.display())))?;
        Ok(PutWriter {
            file: Some(file),
            buf: Vec::new(),
            tmp: Some(tmp),
            dst: mp.bucket_dir(bck).join(obj),
            hasher: Xxh64::new(0),
            size: 0,
        })
    }

    /// Opens an object for reading. Metadata syscalls (open, fstat, getxattr)
    /// and reads of objects up to [`INLINE_READ`] run on the calling task:
    /// on a page-cached file they take microseconds, less than a hop to the
    /// blocking pool (profiling showed those hops dominating small GETs).
    /// Objects up to [`SMALL_OBJECT`] are read whole in one blocking call;
    /// larger ones are returned open, to stream from.
    pub async fn open_obj(&self, bck: &Bck, obj: &str) -> Result<ObjReader> {
        use std::io::Read;
        let path = self.obj_path(bck, obj);
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if is_not_found(&e) => return Err(StorageError::NotFound),
            Err(e) => return Err(io_err(format!("open {}", path.display()))(e)),
        };
        let md = file
            .metadata()
            .map_err(io_err(format!("stat {}", path.display())))?;
        if md.is_dir() {
            return Err(StorageError::NotFound);
        }
        let info = ObjInfo::read(&path, &md)?;
        let size = md.len();
        let read_all = move |mut file: std::fs::File, path: &Path| -> Result<Vec<u8>> {
            let mut buf = Vec::with_capacity(size as usize);
            file.read_to_end(&mut buf)
                .map_err(io_err(format!("read {}", path.display())))?;
            if buf.len() as u64 != size {
                return Err(StorageError::Io {
                    context: format!("read {}", path.display()),
                    source: io::Error::other("object changed size while being read"),
                });
            }
            Ok(buf)
        };
        let body = if size <= INLINE_READ {
            ObjBody::Small(read_all(file, &path)?)
        } else if size <= SMALL_OBJECT {
            // Mapped, pre-faulted in one syscall: the socket write copies from
            // the page cache directly, saving a read() copy per GET. Safe with
            // our writes: objects are replaced by rename (a new inode) and never
            // truncated in place, so a mapping stays valid and complete.
            // SAFETY: see above; the map is read-only.
            match unsafe { memmap2::MmapOptions::new().populate().map(&file) } {
                Ok(m) if m.len() as u64 == size => ObjBody::Mapped(m),
                _ => {
                    let p = path.clone();
                    let buf = tokio::task::spawn_blocking(move || read_all(file, &p))
                        .await
                        .map_err(|e| StorageError::Io {
                            context: "read".into(),
                            source: io::Error::other(e),
                        })??;
                    ObjBody::Small(buf)
                }
            }
        } else {
            let _ = &mut file;
            ObjBody::File(file)
        };
        Ok(ObjReader { info, body, path })
    }

    /// Attributes of an object (stat + getxattr, inline like `open_obj`).
    pub async fn head(&self, bck: &Bck, obj: &str) -> Result<ObjInfo> {
        let path = self.obj_path(bck, obj);
        let md = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Err(StorageError::NotFound),
            Err(e) if is_not_found(&e) => return Err(StorageError::NotFound),
            Err(e) => return Err(io_err(format!("stat {}", path.display()))(e)),
        };
        ObjInfo::read(&path, &md)
    }

    /// Recomputes the checksum of an object's file and compares it with the stored one.
    pub async fn verify(&self, bck: &Bck, obj: &str, attrs: &ObjAttrs) -> Result<()> {
        if attrs.cksum_type != CKSUM_XXHASH || attrs.cksum_value.is_empty() {
            return Ok(());
        }
        let path = self.obj_path(bck, obj);
        let stored = attrs.cksum_value.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut f =
                std::fs::File::open(&path).map_err(io_err(format!("open {}", path.display())))?;
            let mut h = Xxh64::new(0);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f
                    .read(&mut buf)
                    .map_err(io_err(format!("read {}", path.display())))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            let computed = format!("{:016x}", h.digest());
            if computed != stored {
                return Err(StorageError::Corrupt { stored, computed });
            }
            Ok(())
        })
        .await
        .map_err(|e| StorageError::Io {
            context: "verify".into(),
            source: io::Error::other(e),
        })?
    }

    /// Removes an object and any directories its removal left empty.
    pub async fn delete(&self, bck: &Bck, obj: &str) -> Result<()> {
        let mp = self.mpath_for(bck, obj).clone();
        let path = mp.bucket_dir(bck).join(obj);
        let stop = mp.bucket_dir(bck);
        tokio::task::spawn_blocking(move || {
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_file() => {}
                Ok(_) => return Err(StorageError::NotFound),
                Err(e) if is_not_found(&e) => return Err(StorageError::NotFound),
                Err(e) => return Err(io_err(format!("stat {}", path.display()))(e)),
            }
            std::fs::remove_file(&path).map_err(io_err(format!("remove {}", path.display())))?;
            prune_empty_dirs(path.parent(), &stop);
            Ok(())
        })
        .await
        .map_err(|e| StorageError::Io {
            context: "delete".into(),
            source: io::Error::other(e),
        })?
    }

    /// Removes every object of a bucket: the bucket directory is renamed into
    /// the work area at once (so the bucket is gone immediately) and deleted
    /// in the background.
    pub fn destroy_bucket(&self, bck: &Bck) -> Result<()> {
        for mp in &self.mpaths {
            let dir = mp.bucket_dir(bck);
            if !dir.exists() {
                continue;
            }
            let trash = mp
                .work_dir()
                .join(format!("trash-{}", ais_core::gen_id(12)));
            std::fs::rename(&dir, &trash)
                .map_err(io_err(format!("remove bucket dir {}", dir.display())))?;
            std::thread::spawn(move || {
                let _ = std::fs::remove_dir_all(trash);
            });
        }
        Ok(())
    }

    /// Names of the bucket directories present on disk.
    pub fn bucket_dirs(&self) -> Vec<String> {
        let mut out = Vec::new();
        for mp in &self.mpaths {
            if let Ok(rd) = std::fs::read_dir(mp.path.join(BUCKETS_DIR)) {
                for e in rd.flatten() {
                    if let Some(n) = e.file_name().to_str() {
                        if !out.iter().any(|x| x == n) {
                            out.push(n.to_string());
                        }
                    }
                }
            }
        }
        out
    }

    pub(crate) fn bucket_dirs_for(&self, bck: &Bck) -> Vec<(PathBuf, &Mountpath)> {
        self.mpaths.iter().map(|m| (m.bucket_dir(bck), m)).collect()
    }
}

fn is_not_found(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound) || e.raw_os_error() == Some(libc::ENOTDIR)
}

fn prune_empty_dirs(mut dir: Option<&Path>, stop: &Path) {
    while let Some(d) = dir {
        if d == stop || !d.starts_with(stop) {
            break;
        }
        if std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

/// Objects up to this size are read into memory in one go on GET.
pub const SMALL_OBJECT: u64 = 1024 * 1024;
/// Objects up to this size are read on the request's task (no thread hop).
pub const INLINE_READ: u64 = 256 * 1024;

pub enum ObjBody {
    Small(Vec<u8>),
    Mapped(memmap2::Mmap),
    File(std::fs::File),
}

/// An object opened for reading.
pub struct ObjReader {
    pub info: ObjInfo,
    pub body: ObjBody,
    /// The object's file (ETL workers may read it directly).
    pub path: PathBuf,
}

/// Object attributes plus what the filesystem knows (access time).
#[derive(Debug, Clone)]
pub struct ObjInfo {
    pub attrs: ObjAttrs,
    pub atime_ns: i64,
}

impl ObjInfo {
    fn read(path: &Path, md: &std::fs::Metadata) -> Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let mut attrs = match xattr::get(path, XATTR_META) {
            Ok(Some(raw)) => serde_json::from_slice::<ObjAttrs>(&raw).unwrap_or_default(),
            _ => ObjAttrs::default(),
        };
        attrs.size = md.len();
        let atime_ns = md.atime() * 1_000_000_000 + md.atime_nsec();
        Ok(Self { attrs, atime_ns })
    }
}

/// Bytes gathered before each write: one blocking-pool hop per MiB instead
/// of one per network frame.
const WRITE_BUF: usize = 1 << 20;

/// An in-progress PUT. Dropping it without `commit` removes the temp file.
pub struct PutWriter {
    file: Option<tokio::fs::File>,
    buf: Vec<u8>,
    tmp: Option<PathBuf>,
    dst: PathBuf,
    hasher: Xxh64,
    size: u64,
}

impl PutWriter {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(WRITE_BUF);
        }
        self.buf.extend_from_slice(chunk);
        if self.buf.len() >= WRITE_BUF {
            self.flush_buf().await?;
        }
        Ok(())
    }

    async fn flush_buf(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let file = self.file.as_mut().ok_or_else(|| StorageError::Io {
            context: "write".into(),
            source: io::Error::other("writer already finished"),
        })?;
        file.write_all(&self.buf)
            .await
            .map_err(io_err("write temp file"))?;
        self.buf.clear();
        Ok(())
    }

    pub fn written(&self) -> u64 {
        self.size
    }

    /// Makes the object visible: fsync, metadata, rename, fsync of the directory.
    pub async fn commit(
        mut self,
        custom: std::collections::BTreeMap<String, String>,
    ) -> Result<ObjAttrs> {
        self.flush_buf().await?;
        let mut file = self.file.take().ok_or_else(|| StorageError::Io {
            context: "commit".into(),
            source: io::Error::other("writer already finished"),
        })?;
        file.flush().await.map_err(io_err("flush temp file"))?;
        file.sync_all().await.map_err(io_err("fsync temp file"))?;
        drop(file);
        let tmp = self.tmp.clone().unwrap_or_default();
        let dst = self.dst.clone();
        let size = self.size;
        let cksum = format!("{:016x}", self.hasher.digest());
        let res = tokio::task::spawn_blocking(move || -> Result<ObjAttrs> {
            let prev_version = xattr::get(&dst, XATTR_META)
                .ok()
                .flatten()
                .and_then(|raw| serde_json::from_slice::<ObjAttrs>(&raw).ok())
                .map(|a| a.version)
                .unwrap_or(0);
            let attrs = ObjAttrs {
                size,
                cksum_type: CKSUM_XXHASH.into(),
                cksum_value: cksum,
                version: prev_version + 1,
                mtime_ns: ais_core::now_ns(),
                custom,
            };
            let raw = serde_json::to_vec(&attrs).map_err(|e| StorageError::Io {
                context: "encode metadata".into(),
                source: io::Error::other(e),
            })?;
            xattr::set(&tmp, XATTR_META, &raw).map_err(io_err("set object metadata"))?;
            let parent = dst.parent().unwrap_or(Path::new("/"));
            if let Err(e) = std::fs::create_dir_all(parent) {
                if e.kind() == io::ErrorKind::AlreadyExists
                    || e.raw_os_error() == Some(libc::ENOTDIR)
                {
                    return Err(StorageError::Conflict(
                        "a parent of this name is an existing object".into(),
                    ));
                }
                return Err(io_err(format!("create {}", parent.display()))(e));
            }
            if let Err(e) = std::fs::rename(&tmp, &dst) {
                if dst.is_dir() {
                    return Err(StorageError::Conflict(
                        "the name is a virtual directory holding other objects".into(),
                    ));
                }
                return Err(io_err(format!("rename into {}", dst.display()))(e));
            }
            if let Ok(d) = std::fs::File::open(parent) {
                let _ = d.sync_all();
            }
            Ok(attrs)
        })
        .await
        .map_err(|e| StorageError::Io {
            context: "commit".into(),
            source: io::Error::other(e),
        })?;
        if res.is_ok() {
            self.tmp = None;
        }
        res
    }
}

impl Drop for PutWriter {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests;
