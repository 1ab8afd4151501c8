//! Object storage on one target. Owns the mountpaths and everything below
//! them: where an object lives (HRW over mountpaths), how it is written
//! (temp file → fsync → xattr metadata → rename → fsync dir, so a reader sees
//! the old object or the new one and never a partial one), how it is read,
//! deleted and listed in name order without loading a bucket into memory.
//!
//! Layout: `<mountpath>/@ais/<bucket>/<object name>` (or
//! `…/<object name>/.ais~self` when other objects are named `<object
//! name>/…`: [`layout`]); object attributes
//! ([`ais_core::meta::ObjAttrs`]) live in the `user.ais.meta` xattr of the
//! file itself, so data and metadata become visible in one atomic rename.
//! Temp files live in `<mountpath>/.ais-work/` and are removed at start-up.

pub mod archive;
pub mod background;
pub mod cksum;
mod ec;
pub mod flush;
pub mod layout;
mod list;
mod mpaths;
mod timefmt;
mod verified;
pub mod zerocopy;

pub use ec::{decode_file, encode_file, encode_stream, stripes, EcMeta, PartWriter, SHARD};
pub use list::{list_objects, summarize, Summary};
pub use timefmt::{go_rfc822, rfc3339};

use ais_core::meta::{ObjAttrs, CKSUM_XXHASH};
use ais_core::{hrw, Bck};
use std::io;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use xxhash_rust::xxh64::Xxh64;

const XATTR_META: &str = "user.ais.meta";
const BUCKETS_DIR: &str = "@ais";
const WORK_DIR: &str = ".ais-work";
/// Extra copies of mirrored buckets (`mirror.copies`), outside `@ais` so
/// listings never see them twice.
const MIRROR_DIR: &str = "@mirror";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object not found")]
    NotFound,
    #[error("checksum mismatch: stored {stored}, computed {computed}")]
    Corrupt { stored: String, computed: String },
    #[error("size mismatch: {stored} bytes were stored, the file has {actual}")]
    SizeMismatch { stored: u64, actual: u64 },
    /// A shard that cannot be read as the archive its name says.
    #[error("{0}")]
    Archive(String),
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

/// [`io_err`] naming `what` was done to `path`, formatted only on an error
/// (these run on every GET).
fn io_at<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StorageError + 'a {
    move |source| StorageError::Io {
        context: format!("{what} {}", path.display()),
        source,
    }
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
    fn mirror_dir(&self, bck: &Bck) -> PathBuf {
        self.path.join(MIRROR_DIR).join(&bck.name)
    }
}

/// All mountpaths of one target. Clones share them: attaching, detaching,
/// enabling or disabling a mountpath (`mpaths.rs`) is seen by every clone.
#[derive(Debug, Clone)]
pub struct Store {
    set: std::sync::Arc<std::sync::RwLock<mpaths::MpSet>>,
    /// The set changed and a resilver has not finished: objects may sit on
    /// another mountpath than their HRW one (reads look there too).
    resilvering: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Writes in flight per mountpath-set generation (a resilver waits for
    /// the ones that chose their mountpath before the change).
    writers: mpaths::Writers,
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
            mpaths.push(prepare_mountpath(p)?);
        }
        Ok(Self {
            set: std::sync::Arc::new(std::sync::RwLock::new(mpaths::MpSet::new(mpaths))),
            resilvering: Default::default(),
            writers: Default::default(),
        })
    }

    /// The mountpaths in use (attached and enabled).
    pub fn mountpaths(&self) -> Vec<Mountpath> {
        self.mps().to_vec()
    }

    fn mps(&self) -> std::sync::Arc<Vec<Mountpath>> {
        match self.set.read() {
            Ok(s) => s.active.clone(),
            Err(p) => p.into_inner().active.clone(),
        }
    }

    fn mpath_for(&self, bck: &Bck, obj: &str) -> Mountpath {
        let mps = self.mps();
        let i = hrw::select(&bck.obj_uname(obj), mps.iter().map(|m| m.digest)).unwrap_or(0);
        mps[i].clone()
    }

    /// Where the extra copies of an object go: the mountpaths after its main
    /// one in HRW order.
    fn mirror_mpaths(&self, bck: &Bck, obj: &str, copies: usize) -> Vec<Mountpath> {
        let mps = self.mps();
        hrw::order(&bck.obj_uname(obj), mps.iter().map(|m| m.digest))
            .into_iter()
            .skip(1)
            .take(copies.saturating_sub(1))
            .map(|i| mps[i].clone())
            .collect()
    }

    /// Every mirror copy of an object present on any mountpath.
    fn mirror_copies(&self, bck: &Bck, obj: &str) -> Vec<PathBuf> {
        self.mps()
            .iter()
            .map(|m| layout::file_at(&m.mirror_dir(bck).join(obj)))
            .filter(|p| p.is_file())
            .collect()
    }

    /// Space cleanup: removes files in the mountpaths' work directories not
    /// modified for `older_than` (temp files of writes that died: a live
    /// write touches its file with every chunk). Answers (files, bytes).
    pub async fn cleanup_work(&self, older_than: std::time::Duration) -> (u64, u64) {
        let dirs: Vec<PathBuf> = self.mps().iter().map(|m| m.work_dir()).collect();
        tokio::task::spawn_blocking(move || {
            let (mut n, mut bytes) = (0u64, 0u64);
            for d in dirs {
                let Ok(rd) = std::fs::read_dir(&d) else {
                    continue;
                };
                for e in rd.flatten() {
                    let Ok(md) = e.metadata() else { continue };
                    let old = md
                        .modified()
                        .ok()
                        .and_then(|m| m.elapsed().ok())
                        .is_some_and(|age| age > older_than);
                    if md.is_file() && old && std::fs::remove_file(e.path()).is_ok() {
                        n += 1;
                        bytes += md.len();
                    }
                }
            }
            (n, bytes)
        })
        .await
        .unwrap_or((0, 0))
    }

    /// Restores a missing or damaged main copy from a healthy mirror copy
    /// (right size, and with `verify` the right checksum). `Ok(false)`: no
    /// healthy copy exists.
    pub async fn heal(&self, bck: &Bck, obj: &str, verify: bool) -> Result<bool> {
        let copies = self.mirror_copies(bck, obj);
        if copies.is_empty() {
            return Ok(false);
        }
        let mp = self.mpath_for(bck, obj).clone();
        let dst = mp.bucket_dir(bck).join(obj);
        let work = mp.work_dir();
        tokio::task::spawn_blocking(move || -> Result<bool> {
            for src in copies {
                let Ok(md) = std::fs::metadata(&src) else {
                    continue;
                };
                let Ok(info) = ObjInfo::read(&src, &md) else {
                    continue;
                };
                if verify && check_file(&src, &info.attrs.cksum_value).is_err() {
                    continue;
                }
                layout::prepare_parents(&dst, &work).map_err(io_at("create the parents of", &dst))?;
                let _serial = commit_lock(&dst);
                let tmp = work.join(format!("heal-{}", ais_core::gen_id(16)));
                let res = copy_durably(&src, &tmp, &dst);
                if res.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                res?;
                tracing::warn!(object = %dst.display(), from = %src.display(), "restored a missing or damaged copy from its mirror");
                return Ok(true);
            }
            Ok(false)
        })
        .await
        .map_err(|e| StorageError::Io {
            context: "heal".into(),
            source: io::Error::other(e),
        })?
    }

    /// Checks one object completely: the main copy's size and checksum
    /// (restored from a healthy mirror if damaged or missing), then each of
    /// the `copies - 1` mirror copies the bucket asks for (rebuilt from the
    /// main copy if missing or damaged; copies no longer asked for removed).
    pub async fn scrub(&self, bck: &Bck, obj: &str, copies: usize) -> Result<Scrubbed> {
        let mut out = Scrubbed::default();
        let home = self.mpath_for(bck, obj).bucket_dir(bck).join(obj);
        let main = self.obj_path(bck, obj);
        let main_ok = match self.head_main(bck, obj) {
            Ok(info) => {
                let (p, c) = (main.clone(), info.attrs.cksum_value.clone());
                blocking("scrub", move || check_file(&p, &c)).await.is_ok()
            }
            Err(_) => false,
        };
        if !main_ok {
            if !self.heal(bck, obj, true).await? {
                // Nothing healthy to restore from: report what is wrong.
                let info = self.head_main(bck, obj)?;
                let (p, c) = (main.clone(), info.attrs.cksum_value.clone());
                blocking("scrub", move || check_file(&p, &c)).await?;
            }
            out.main_restored = true;
        }
        let want: Vec<(PathBuf, PathBuf)> = self
            .mirror_mpaths(bck, obj, copies)
            .into_iter()
            .map(|m| (m.work_dir(), m.mirror_dir(bck).join(obj)))
            .collect();
        let stale: Vec<PathBuf> = self
            .mps()
            .iter()
            .map(|m| m.mirror_dir(bck).join(obj))
            .filter(|p| layout::is_obj(p) && !want.iter().any(|(_, d)| d == p))
            .collect();
        out.mirrors_rebuilt = blocking("scrub", move || -> Result<usize> {
            for (work, mdst) in &want {
                layout::prepare_parents(mdst, work)
                    .map_err(io_at("create the parents of", mdst))?;
            }
            let _serial = commit_lock(&home);
            for p in stale {
                let _ = layout::remove(&p);
            }
            let dst = layout::file_at(&home);
            let md = std::fs::metadata(&dst).map_err(io_at("stat", &dst))?;
            let cksum = ObjInfo::read(&dst, &md)?.attrs.cksum_value;
            let mut rebuilt = 0;
            for (work, mdst) in want {
                let mfile = layout::file_at(&mdst);
                let healthy = std::fs::metadata(&mfile)
                    .ok()
                    .and_then(|md| ObjInfo::read(&mfile, &md).ok())
                    .is_some_and(|i| {
                        i.attrs.cksum_value == cksum && check_file(&mfile, &cksum).is_ok()
                    });
                if healthy {
                    continue;
                }
                let tmp = work.join(format!("scrub-{}", ais_core::gen_id(16)));
                let res = copy_durably(&dst, &tmp, &mdst);
                if res.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                res?;
                rebuilt += 1;
            }
            Ok(rebuilt)
        })
        .await?;
        Ok(out)
    }

    /// Absolute path of an object's file (the name must already be
    /// validated): on its HRW mountpath, or — while a resilver has not yet
    /// moved it there — wherever it is.
    pub fn obj_path(&self, bck: &Bck, obj: &str) -> PathBuf {
        layout::file_at(&self.logical_path(bck, obj))
    }

    /// [`Store::obj_path`] before the [`layout`] rule: the file, or the
    /// directory holding it as `.ais~self`.
    pub(crate) fn logical_path(&self, bck: &Bck, obj: &str) -> PathBuf {
        let home = self.mpath_for(bck, obj).bucket_dir(bck).join(obj);
        if self.resilvering.load(std::sync::atomic::Ordering::Relaxed) && !layout::is_obj(&home) {
            if let Some(p) = self.misplaced_copies(bck, obj).into_iter().next() {
                return p;
            }
        }
        home
    }

    /// Starts a streaming write; nothing is visible until [`PutWriter::commit`].
    pub async fn begin_put(&self, bck: &Bck, obj: &str) -> Result<PutWriter> {
        self.begin_put_copies(bck, obj, 1).await
    }

    /// Like [`Store::begin_put`], keeping `copies` copies in all on distinct
    /// mountpaths (as many as there are): the commit makes every copy
    /// durable before the object is acknowledged.
    pub async fn begin_put_copies(&self, bck: &Bck, obj: &str, copies: usize) -> Result<PutWriter> {
        let chosen = self.mirror_mpaths(bck, obj, copies);
        let mirrors: Vec<(PathBuf, PathBuf)> = chosen
            .iter()
            .map(|m| (m.work_dir(), m.mirror_dir(bck).join(obj)))
            .collect();
        let stale = self
            .mps()
            .iter()
            .map(|m| m.mirror_dir(bck).join(obj))
            .filter(|p| !mirrors.iter().any(|(_, d)| d == p))
            .collect();
        let mp = self.mpath_for(bck, obj);
        let tmp = mp.work_dir().join(format!("put-{}", ais_core::gen_id(16)));
        Ok(PutWriter {
            file: None,
            done: false,
            sync: true,
            flush: flush::Flusher::of(&mp.path),
            buf: Vec::new(),
            tmp: Some(tmp),
            dst: mp.bucket_dir(bck).join(obj),
            mirrors,
            stale,
            hasher: Xxh64::new(0),
            extra: None,
            size: 0,
            background: false,
            _gen: self.write_guard(),
        })
    }

    /// Opens an object for reading. Metadata syscalls (open, fstat, getxattr)
    /// and reads of objects up to [`INLINE_READ`] run on the calling task:
    /// on a page-cached file they take microseconds, less than a hop to the
    /// blocking pool (profiling showed those hops dominating small GETs).
    /// Objects up to [`SMALL_OBJECT`] are mapped whole (not pre-faulted);
    /// larger ones are returned open, to stream from. From
    /// [`ZEROCOPY_READ`] on, the bytes are registered with the file for the
    /// socket layer's sendfile ([`zerocopy`]).
    pub async fn open_obj(&self, bck: &Bck, obj: &str) -> Result<ObjReader> {
        match self.open_main(bck, obj).await {
            Err(StorageError::NotFound | StorageError::SizeMismatch { .. })
                if self.heal(bck, obj, false).await? =>
            {
                self.open_main(bck, obj).await
            }
            r => r,
        }
    }

    async fn open_main(&self, bck: &Bck, obj: &str) -> Result<ObjReader> {
        use std::io::Read;
        // One open in the common case, a second one beneath it for an
        // object stored as `<name>/.ais~self` ([`layout`]).
        let logical = self.logical_path(bck, obj);
        let (mut file, md, path) = match layout::open(&logical) {
            Ok(f) => f,
            Err(e) if is_not_found(&e) => return Err(StorageError::NotFound),
            Err(e) => return Err(io_at("open", &logical)(e)),
        };
        // Metadata through the open descriptor: no second path walk.
        let info = ObjInfo::from_open(&file, &md)?;
        let size = md.len();
        // Exactly `size` bytes in one read() (std's read_to_end would stat
        // and seek again to size its buffer, then read in 8 KiB steps): a
        // file that ends early is damage.
        let read_all = move |mut file: &std::fs::File, path: &Path| -> Result<Vec<u8>> {
            let mut buf = vec![0u8; size as usize];
            file.read_exact(&mut buf).map_err(|e| StorageError::Io {
                context: format!("read {}", path.display()),
                source: if e.kind() == io::ErrorKind::UnexpectedEof {
                    io::Error::other("object changed size while being read")
                } else {
                    e
                },
            })?;
            Ok(buf)
        };
        let body = if size < ZEROCOPY_READ {
            ObjBody::Small(read_all(&file, &path)?)
        } else if size <= INLINE_READ {
            // Read here (the bytes are in memory for anyone who wants them),
            // and registered with the file: the GET's socket layer sends the
            // file's pages with sendfile instead of copying the buffer into
            // the socket (profiled as the largest single cost of a 16 KiB GET).
            let buf = read_all(&file, &path)?;
            ObjBody::Mapped(zerocopy::file_bytes(buf, std::sync::Arc::new(file), 0))
        } else if size <= SMALL_OBJECT {
            // Mapped, not pre-faulted: a GET's socket layer sends these pages
            // with sendfile (`zerocopy`), never touching them here. Safe with
            // our writes: objects are replaced by rename (a new inode) and never
            // truncated in place, so a mapping stays valid and complete.
            // SAFETY: see above; the map is read-only.
            match unsafe { memmap2::MmapOptions::new().map(&file) } {
                Ok(m) if m.len() as u64 == size => {
                    ObjBody::Mapped(zerocopy::file_bytes(m, std::sync::Arc::new(file), 0))
                }
                _ => {
                    let p = path.clone();
                    let buf = tokio::task::spawn_blocking(move || read_all(&file, &p))
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
        match self.head_main(bck, obj) {
            Err(StorageError::NotFound | StorageError::SizeMismatch { .. })
                if self.heal(bck, obj, false).await? =>
            {
                self.head_main(bck, obj)
            }
            r => r,
        }
    }

    fn head_main(&self, bck: &Bck, obj: &str) -> Result<ObjInfo> {
        // Through one descriptor: a nest between a stat and a getxattr by
        // path would read the directory's (version 0, no checksum).
        let path = self.logical_path(bck, obj);
        match layout::open(&path) {
            Ok((f, md, _)) => ObjInfo::from_open(&f, &md),
            Err(e) if is_not_found(&e) => Err(StorageError::NotFound),
            Err(e) => Err(io_at("open", &path)(e)),
        }
    }

    /// Recomputes the checksum of an object's file and compares it with the
    /// stored one. A damaged main copy of a mirrored object is replaced from
    /// a healthy mirror: `Ok(Verified::Healed)` (reopen before reading).
    pub async fn verify(&self, bck: &Bck, obj: &str, attrs: &ObjAttrs) -> Result<Verified> {
        if attrs.cksum_type != CKSUM_XXHASH || attrs.cksum_value.is_empty() {
            return Ok(Verified::Ok);
        }
        // The common case, on the calling task (one stat, no pool hop): this
        // file was hashed before and has not changed since. (The logical
        // path first: a second stat only for a `.ais~self` object.)
        let mut path = self.logical_path(bck, obj);
        let mut md = std::fs::metadata(&path);
        if md.as_ref().is_ok_and(|m| m.is_dir()) {
            path = path.join(layout::SELF);
            md = std::fs::metadata(&path);
        }
        if md.is_ok_and(|md| verified::known_good(&md, &attrs.cksum_value)) {
            return Ok(Verified::Ok);
        }
        let stored = attrs.cksum_value.clone();
        let res = tokio::task::spawn_blocking(move || check_file_with(&path, &stored, true))
            .await
            .map_err(|e| StorageError::Io {
                context: "verify".into(),
                source: io::Error::other(e),
            })?;
        match res {
            Err(e @ StorageError::Corrupt { .. }) => {
                if self.heal(bck, obj, true).await? {
                    Ok(Verified::Healed)
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
            Ok(()) => Ok(Verified::Ok),
        }
    }

    /// Checks the bytes an open reader holds (in memory, or its own open
    /// file read by offset) against its stored checksum: for when the
    /// object's path changed after it was opened (a rebalance moved it, a
    /// PUT replaced it), so [`Store::verify`] cannot find the file the
    /// reader will send.
    pub async fn verify_reader(&self, r: &ObjReader) -> Result<()> {
        let a = &r.info.attrs;
        if a.cksum_type != CKSUM_XXHASH || a.cksum_value.is_empty() {
            return Ok(());
        }
        let computed = match &r.body {
            ObjBody::Small(b) => format!("{:016x}", xxhash_rust::xxh64::xxh64(b, 0)),
            ObjBody::Mapped(b) => format!("{:016x}", xxhash_rust::xxh64::xxh64(b, 0)),
            ObjBody::File(f) => {
                let f = f.try_clone().map_err(io_err("dup object file"))?;
                let size = a.size;
                blocking("verify", move || {
                    use std::os::unix::fs::FileExt;
                    let mut h = Xxh64::new(0);
                    let mut buf = vec![0u8; 1 << 20];
                    let mut off = 0u64;
                    while off < size {
                        let n = f
                            .read_at(&mut buf, off)
                            .map_err(io_err("read object file"))?;
                        if n == 0 {
                            break;
                        }
                        h.update(&buf[..n]);
                        off += n as u64;
                    }
                    Ok(format!("{:016x}", h.digest()))
                })
                .await?
            }
        };
        if computed != a.cksum_value {
            return Err(StorageError::Corrupt {
                stored: a.cksum_value.clone(),
                computed,
            });
        }
        Ok(())
    }

    /// Sets an object's custom metadata (added to what it has, or with
    /// `replace` instead of it but for the `keep` keys), on its main copy
    /// and every mirror copy; data and version unchanged. Answers the new
    /// attributes.
    pub async fn set_custom(
        &self,
        bck: &Bck,
        obj: &str,
        custom: std::collections::BTreeMap<String, String>,
        replace: bool,
        keep: &'static [&'static str],
    ) -> Result<ObjAttrs> {
        let home = self.logical_path(bck, obj);
        let mirrors = self.mirror_copies(bck, obj);
        blocking("set custom metadata", move || {
            use xattr::FileExt;
            // Under the commit lock: no PUT of the name replaces the file
            // between the read and the write of its metadata.
            let _serial = commit_lock(&home);
            let (f, md, path) = match layout::open(&home) {
                Ok(x) => x,
                Err(e) if is_not_found(&e) => return Err(StorageError::NotFound),
                Err(e) => return Err(io_at("open", &home)(e)),
            };
            let mut attrs = ObjInfo::from_raw(f.get_xattr(XATTR_META), &md)?.attrs;
            if replace {
                let kept: Vec<(String, String)> = attrs
                    .custom
                    .iter()
                    .filter(|(k, _)| keep.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                attrs.custom = custom;
                attrs.custom.extend(kept);
            } else {
                attrs.custom.extend(custom);
            }
            let raw = serde_json::to_vec(&attrs).map_err(|e| StorageError::Io {
                context: "encode metadata".into(),
                source: io::Error::other(e),
            })?;
            f.set_xattr(XATTR_META, &raw)
                .map_err(io_at("set metadata of", &path))?;
            f.sync_all().map_err(io_at("fsync", &path))?;
            for m in mirrors {
                // A copy must never be healed from with the old metadata.
                if let Ok(mf) = std::fs::OpenOptions::new().write(true).open(&m) {
                    if mf.set_xattr(XATTR_META, &raw).is_err() {
                        let _ = std::fs::remove_file(&m);
                    }
                }
            }
            Ok(attrs)
        })
        .await
    }

    /// [`Store::delete`] if the object here is still `version` (a rename
    /// copied that one: a newer PUT of the name must not go with it).
    /// `Ok(false)`: it changed, nothing was removed.
    pub async fn delete_version(&self, bck: &Bck, obj: &str, version: u64) -> Result<bool> {
        let home = self.logical_path(bck, obj);
        let same = blocking("check version", move || {
            let _serial = commit_lock(&home);
            match layout::open(&home) {
                Ok((f, md, _)) => Ok(ObjInfo::from_open(&f, &md)?.attrs.version == version),
                Err(e) if is_not_found(&e) => Ok(true),
                Err(e) => Err(io_at("open", &home)(e)),
            }
        })
        .await?;
        if !same {
            return Ok(false);
        }
        match self.delete(bck, obj).await {
            Ok(()) | Err(StorageError::NotFound) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Removes an object, its mirror copies and any erasure-coded part held
    /// here, and any directories their removal left empty.
    pub async fn delete(&self, bck: &Bck, obj: &str) -> Result<()> {
        let had_part = self.delete_part(bck, obj);
        match self.delete_copies(bck, obj).await {
            Err(StorageError::NotFound) if had_part => Ok(()),
            r => r,
        }
    }

    /// Removes an object's main copy and mirror copies, keeping any
    /// erasure-coded part of it held here (an object moving away).
    pub async fn delete_copies(&self, bck: &Bck, obj: &str) -> Result<()> {
        let mut had_copy = false;
        for m in self.mps().iter() {
            if let Ok(p) = layout::remove(&m.mirror_dir(bck).join(obj)) {
                had_copy = true;
                prune_empty_dirs(p.parent(), &m.mirror_dir(bck));
            }
        }
        match self.delete_main(bck, obj).await {
            Err(StorageError::NotFound) if had_copy => Ok(()),
            r => r,
        }
    }

    async fn delete_main(&self, bck: &Bck, obj: &str) -> Result<()> {
        // Copies a resilver has not moved yet go too (else they would
        // reappear).
        let mut stray = false;
        if self.resilvering.load(std::sync::atomic::Ordering::Relaxed) {
            for p in self.misplaced_copies(bck, obj) {
                stray |= layout::remove(&p).is_ok();
            }
        }
        let mp = self.mpath_for(bck, obj);
        let path = mp.bucket_dir(bck).join(obj);
        let stop = mp.bucket_dir(bck);
        tokio::task::spawn_blocking(move || {
            let removed = match layout::remove(&path) {
                Ok(p) => p,
                Err(_) if stray => return Ok(()),
                Err(e) if is_not_found(&e) => return Err(StorageError::NotFound),
                Err(e) => return Err(io_at("remove", &path)(e)),
            };
            prune_empty_dirs(removed.parent(), &stop);
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
        let mps = self.readable_mps();
        let dirs = mps.iter().flat_map(|mp| {
            [
                (mp, mp.bucket_dir(bck)),
                (mp, mp.mirror_dir(bck)),
                (mp, mp.path.join(ec::EC_DIR).join(&bck.name)),
            ]
        });
        for (mp, dir) in dirs {
            if !dir.exists() {
                continue;
            }
            let trash = mp
                .work_dir()
                .join(format!("trash-{}", ais_core::gen_id(12)));
            std::fs::rename(&dir, &trash).map_err(io_at("remove bucket dir", &dir))?;
            std::thread::spawn(move || {
                let _ = std::fs::remove_dir_all(trash);
            });
        }
        Ok(())
    }

    /// Names of the bucket directories present on disk.
    pub fn bucket_dirs(&self) -> Vec<String> {
        let mut out = Vec::new();
        for mp in self.mps().iter() {
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

    pub(crate) fn bucket_dirs_for(&self, bck: &Bck) -> Vec<(PathBuf, Mountpath)> {
        self.readable_mps()
            .into_iter()
            .map(|m| (m.bucket_dir(bck), m))
            .collect()
    }
}

/// Creates (if needed) and checks one mountpath: owner-only access, an
/// empty work dir (temp files a crash left behind are removed), the buckets
/// dir, and user xattr support.
fn prepare_mountpath(p: &Path) -> Result<Mountpath> {
    std::fs::create_dir_all(p).map_err(io_at("create mountpath", p))?;
    let path = p.canonicalize().map_err(io_at("resolve mountpath", p))?;
    // Only the node's user may enter a mountpath (ETL code runs as
    // another uid and must not read objects by path).
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
            .map_err(io_at("chmod 0700", &path))?;
    }
    let work = path.join(WORK_DIR);
    if work.exists() {
        let n = std::fs::read_dir(&work).map(|d| d.count()).unwrap_or(0);
        if n > 0 {
            tracing::info!(mountpath = %path.display(), leftovers = n, "removing orphaned temp files");
        }
        std::fs::remove_dir_all(&work).map_err(io_at("clean", &work))?;
    }
    std::fs::create_dir_all(&work).map_err(io_at("create", &work))?;
    std::fs::create_dir_all(path.join(BUCKETS_DIR)).map_err(io_at("create", &path))?;
    let probe = work.join("xattr-probe");
    std::fs::write(&probe, b"").map_err(io_err("write xattr probe"))?;
    if let Err(e) = xattr::set(&probe, XATTR_META, b"{}") {
        return Err(StorageError::Mountpath {
            path: path.display().to_string(),
            msg: format!("filesystem does not support user xattrs ({e}); choose another --mpath"),
        });
    }
    let _ = std::fs::remove_file(&probe);
    let digest = hrw::digest(&path.to_string_lossy());
    Ok(Mountpath { path, digest })
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
/// Objects read into memory from this size on are also registered for
/// sendfile ([`zerocopy`]); below it one more syscall costs more than the
/// copy it saves.
pub const ZEROCOPY_READ: u64 = 8 * 1024;

pub enum ObjBody {
    Small(Vec<u8>),
    /// The object's bytes registered with its open file ([`zerocopy`]): a
    /// buffer read from it (8–256 KiB) or its mapping (up to 1 MiB).
    Mapped(bytes::Bytes),
    File(std::fs::File),
}

/// Bytes of a large object's file mapped per window: a GET's body goes
/// from the page cache to the socket with sendfile ([`zerocopy`]); the
/// pre-fault on the blocking pool reads a cold file off the request's task.
const MAP_WINDOW: u64 = 1 << 20;

/// Reads `len` bytes of `file` from `start` as a sequence of read-only
/// mappings of at most [`MAP_WINDOW`] each, each mapped (and pre-faulted,
/// which may read the disk) on the blocking pool. Memory stays flat: a
/// window is unmapped once its bytes are written. Safe with our writes for
/// the reason given in [`Store::open_obj`]: objects are replaced by rename,
/// never truncated in place.
pub struct MappedChunks {
    file: std::sync::Arc<std::fs::File>,
    pos: u64,
    end: u64,
}

impl MappedChunks {
    pub fn new(file: std::fs::File, start: u64, len: u64) -> Self {
        Self {
            file: std::sync::Arc::new(file),
            pos: start,
            end: start.saturating_add(len),
        }
    }

    /// The next window's bytes; `None` at the end.
    pub async fn next_chunk(&mut self) -> Option<io::Result<bytes::Bytes>> {
        if self.pos >= self.end {
            return None;
        }
        let page = 4096u64;
        let at = self.pos - self.pos % page;
        let skip = (self.pos - at) as usize;
        let want = (self.end - self.pos).min(MAP_WINDOW);
        let (file, map_len) = (self.file.clone(), skip as u64 + want);
        let res = tokio::task::spawn_blocking(move || {
            // SAFETY: see the type's docs; the map is read-only.
            unsafe {
                memmap2::MmapOptions::new()
                    .offset(at)
                    .len(map_len as usize)
                    .populate()
                    .map(&*file)
            }
        })
        .await
        .map_err(io::Error::other)
        .and_then(|r| r);
        Some(match res {
            Ok(m) if m.len() as u64 == map_len => {
                self.pos += want;
                Ok(zerocopy::file_bytes(m, self.file.clone(), at).slice(skip..))
            }
            Ok(_) => Err(io::Error::other("object changed size while being read")),
            Err(e) => Err(e),
        })
    }
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
        Self::from_raw(xattr::get(path, XATTR_META), md)
    }

    /// Like [`ObjInfo::read`], from an open file: the metadata of a file
    /// seen before comes from [`MetaCache`] (no getxattr, no JSON parse).
    fn from_open(file: &std::fs::File, md: &std::fs::Metadata) -> Result<Self> {
        use std::os::unix::fs::MetadataExt;
        use xattr::FileExt;
        let key = (md.dev(), md.ino(), md.ctime(), md.ctime_nsec());
        if let Some(attrs) = META_CACHE.get(&key) {
            if attrs.size != md.len() {
                return Err(StorageError::SizeMismatch {
                    stored: attrs.size,
                    actual: md.len(),
                });
            }
            let atime_ns = md.atime() * 1_000_000_000 + md.atime_nsec();
            return Ok(Self { attrs, atime_ns });
        }
        let info = Self::from_raw(file.get_xattr(XATTR_META), md)?;
        if !info.attrs.cksum_value.is_empty() {
            META_CACHE.put(key, &info.attrs);
        }
        Ok(info)
    }

    fn from_raw(raw: io::Result<Option<Vec<u8>>>, md: &std::fs::Metadata) -> Result<Self> {
        use std::os::unix::fs::MetadataExt;
        // A directory (a name nested meanwhile, `layout`) is not the object.
        if !md.is_file() {
            return Err(StorageError::NotFound);
        }
        let attrs = match raw {
            Ok(Some(raw)) => {
                let attrs = serde_json::from_slice::<ObjAttrs>(&raw).unwrap_or_default();
                // A file shorter or longer than what was committed is damage
                // (truncation, an outside write): never serve it as the object.
                if attrs.size != md.len() {
                    return Err(StorageError::SizeMismatch {
                        stored: attrs.size,
                        actual: md.len(),
                    });
                }
                attrs
            }
            _ => ObjAttrs {
                size: md.len(),
                ..Default::default()
            },
        };
        let atime_ns = md.atime() * 1_000_000_000 + md.atime_nsec();
        Ok(Self { attrs, atime_ns })
    }
}

/// Object metadata by file identity: (device, inode, ctime). A write
/// replaces an object by rename (a new inode) and any xattr or content
/// change moves the ctime, so an entry can only describe the file it was
/// read from; small GETs of hot objects skip the getxattr and its JSON.
/// Bounded: a shard that fills up is cleared.
struct MetaCache {
    shards: [std::sync::Mutex<std::collections::BTreeMap<MetaKey, ObjAttrs>>; 16],
}

type MetaKey = (u64, u64, i64, i64);

/// Entries per shard before it is cleared.
const META_CACHE_SHARD: usize = 4096;

static META_CACHE: MetaCache = MetaCache {
    shards: [const { std::sync::Mutex::new(std::collections::BTreeMap::new()) }; 16],
};

impl MetaCache {
    fn shard(
        &self,
        k: &MetaKey,
    ) -> &std::sync::Mutex<std::collections::BTreeMap<MetaKey, ObjAttrs>> {
        &self.shards[(k.1 % self.shards.len() as u64) as usize]
    }

    fn get(&self, k: &MetaKey) -> Option<ObjAttrs> {
        self.shard(k).lock().ok()?.get(k).cloned()
    }

    fn put(&self, k: MetaKey, a: &ObjAttrs) {
        if let Ok(mut m) = self.shard(&k).lock() {
            if m.len() >= META_CACHE_SHARD {
                m.clear();
            }
            m.insert(k, a.clone());
        }
    }
}

/// Bytes gathered before each write: one blocking-pool hop per MiB instead
/// of one per network frame.
const WRITE_BUF: usize = 1 << 20;

/// An in-progress PUT. Dropping it without `commit` removes the temp file.
///
/// The temp file is created by the first flush (or by the commit), and the
/// commit's steps run in one blocking-pool call: an object up to
/// [`WRITE_BUF`] costs one hop to the blocking pool in all, not one per
/// syscall (the hops' context switches dominated small PUTs and rebalance
/// moves in profiles).
pub struct PutWriter {
    file: Option<std::fs::File>,
    done: bool,
    /// Flush before acknowledging (off for `write_policy.data=never`).
    sync: bool,
    /// The mountpath's durability mode and group flush ([`flush`]).
    flush: std::sync::Arc<flush::Flusher>,
    buf: Vec<u8>,
    tmp: Option<PathBuf>,
    dst: PathBuf,
    /// Extra copies: (work dir of their mountpath, final path).
    mirrors: Vec<(PathBuf, PathBuf)>,
    /// Mirror copies elsewhere that this write makes stale (removed).
    stale: Vec<PathBuf>,
    hasher: Xxh64,
    /// The bucket's checksum type when it is not xxhash ([`cksum`]).
    extra: Option<cksum::Hasher>,
    size: u64,
    /// Runs its file work on the low-priority pool ([`background`]).
    background: bool,
    _gen: mpaths::WriteGuard,
}

impl PutWriter {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.hasher.update(chunk);
        if let Some(h) = &mut self.extra {
            h.update(chunk);
        }
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
        if self.done {
            return Err(StorageError::Io {
                context: "write".into(),
                source: io::Error::other("writer already finished"),
            });
        }
        let (file, buf, tmp) = (
            self.file.take(),
            std::mem::take(&mut self.buf),
            self.tmp.clone().unwrap_or_default(),
        );
        let write = move || {
            let mut file = open_temp(file, &tmp)?;
            file.write_all(&buf).map_err(io_err("write temp file"))?;
            Ok((file, buf))
        };
        let (file, mut buf) = blocking_on(self.background, "write temp file", write).await?;
        buf.clear();
        self.file = Some(file);
        self.buf = buf;
        Ok(())
    }

    pub fn written(&self) -> u64 {
        self.size
    }

    /// Writes what is buffered to the temp file and lets the buffer go: a
    /// writer kept open between requests (an append handle) holds no memory.
    pub async fn park(&mut self) -> Result<()> {
        self.flush_buf().await?;
        self.buf = Vec::new();
        Ok(())
    }

    /// The temp file holding what was written so far, once [`Self::park`]
    /// (or a full buffer) wrote it: read it to send the bytes elsewhere
    /// (it is removed with the writer).
    pub fn spilled(&self) -> Option<&Path> {
        self.file.as_ref().and(self.tmp.as_deref())
    }

    /// Acknowledge without flushing (scratch buckets, `write_policy.data`
    /// `never`): the same temp → rename steps, no fsync or syncfs.
    pub fn without_sync(&mut self) {
        self.sync = false;
    }

    /// Background work (a rebalance move): the file writes, fsyncs and
    /// rename run on the low-priority pool, so client requests on this node
    /// get the CPU first ([`background`]).
    pub fn in_background(&mut self) {
        self.background = true;
    }

    /// Also computes the bucket's checksum type `kind` (md5, sha256,
    /// sha512, crc32c; anything else: only xxhash). Before the first write.
    pub fn also_hash(&mut self, kind: &str) {
        if self.size == 0 {
            self.extra = cksum::Hasher::new(kind);
        }
    }

    /// The bucket's checksum of the bytes written so far: (type, hex).
    pub fn extra_so_far(&self) -> Option<(&'static str, String)> {
        self.extra.as_ref().map(|h| (h.kind(), h.hex()))
    }

    /// The xxhash64 of the bytes written so far, as stored (16 hex digits).
    pub fn cksum_so_far(&self) -> String {
        format!("{:016x}", self.hasher.digest())
    }

    /// Makes the object visible: fsync, metadata, rename, fsync of the directory.
    pub async fn commit(
        self,
        custom: std::collections::BTreeMap<String, String>,
    ) -> Result<ObjAttrs> {
        self.commit_as(custom, None).await
    }

    /// Like [`PutWriter::commit`], keeping a given version instead of the
    /// next one (an object moved between targets keeps its version).
    pub async fn commit_as(
        self,
        custom: std::collections::BTreeMap<String, String>,
        version: Option<u64>,
    ) -> Result<ObjAttrs> {
        self.commit_inner(custom, version, false)
            .await?
            .ok_or_else(|| StorageError::Io {
                context: "commit".into(),
                source: io::Error::other("commit skipped"),
            })
    }

    /// Commits an object moved here by a rebalance with its `version`, only
    /// if no copy of the name exists here by then: `Ok(None)` when one does
    /// (a client's PUT that landed meanwhile is newer and wins; decided
    /// under the same per-name lock as the commits).
    pub async fn commit_moved(
        self,
        custom: std::collections::BTreeMap<String, String>,
        version: u64,
    ) -> Result<Option<ObjAttrs>> {
        self.commit_inner(custom, Some(version), true).await
    }

    async fn commit_inner(
        mut self,
        custom: std::collections::BTreeMap<String, String>,
        version: Option<u64>,
        if_absent: bool,
    ) -> Result<Option<ObjAttrs>> {
        if self.done {
            return Err(StorageError::Io {
                context: "commit".into(),
                source: io::Error::other("writer already finished"),
            });
        }
        self.done = true;
        let file = self.file.take();
        let buf = std::mem::take(&mut self.buf);
        let tmp = self.tmp.clone().unwrap_or_default();
        let flusher = self.flush.clone();
        let sync = self.sync;
        let dst = self.dst.clone();
        let mirrors = std::mem::take(&mut self.mirrors);
        let stale = std::mem::take(&mut self.stale);
        let size = self.size;
        let cksum = format!("{:016x}", self.hasher.digest());
        let (user_type, user_value) = self
            .extra
            .as_ref()
            .map(|h| (h.kind().to_string(), h.hex()))
            .unwrap_or_default();
        let background = self.background;
        let job = move || -> Result<Option<ObjAttrs>> {
            if if_absent && layout::is_obj(&dst) {
                return Ok(None);
            }
            let group = flusher.mode == flush::SyncMode::Group;
            let mut file = open_temp(file, &tmp)?;
            file.write_all(&buf).map_err(io_err("write temp file"))?;
            if !sync {
                drop(file);
            } else if group {
                drop(file);
                // The data durable before the name can point at it; shared
                // with the other PUTs on this mountpath.
                flusher
                    .sync()
                    .map_err(io_err("flush the mountpath (syncfs)"))?;
            } else {
                file.sync_all().map_err(io_err("fsync temp file"))?;
                drop(file);
            }
            // Directories above the name (and mirror copies' names) first,
            // holding no lock: a nest takes the nested name's commit lock.
            let scratch = tmp.parent().unwrap_or(Path::new("/")).to_path_buf();
            for (work, mdst) in &mirrors {
                layout::prepare_parents(mdst, work)
                    .map_err(io_at("create the parents of", mdst))?;
            }
            let mut attempts = 0;
            let (placed, attrs) = loop {
                attempts += 1;
                layout::prepare_parents(&dst, &scratch)
                    .map_err(io_at("create the parents of", &dst))?;
                // Reading the previous version and renaming over it is one step
                // per name, so concurrent PUTs of one object get distinct,
                // increasing versions.
                let serial = commit_lock(&dst);
                if if_absent && layout::is_obj(&dst) {
                    return Ok(None);
                }
                let prev_version = xattr::get(layout::file_at(&dst), XATTR_META)
                    .ok()
                    .flatten()
                    .and_then(|raw| serde_json::from_slice::<ObjAttrs>(&raw).ok())
                    .map(|a| a.version)
                    .unwrap_or(0);
                let attrs = ObjAttrs {
                    size,
                    cksum_type: CKSUM_XXHASH.into(),
                    cksum_value: cksum.clone(),
                    version: version.unwrap_or(prev_version + 1),
                    mtime_ns: ais_core::now_ns(),
                    custom: custom.clone(),
                    user_cksum_type: user_type.clone(),
                    user_cksum_value: user_value.clone(),
                };
                let raw = serde_json::to_vec(&attrs).map_err(|e| StorageError::Io {
                    context: "encode metadata".into(),
                    source: io::Error::other(e),
                })?;
                xattr::set(&tmp, XATTR_META, &raw).map_err(io_err("set object metadata"))?;
                // Every copy durable before the object is acknowledged; stale
                // copies (fewer copies asked for now) must never be healed from.
                for p in &stale {
                    let _ = layout::remove(p);
                }
                for (work, mdst) in &mirrors {
                    let mtmp = work.join(format!("put-{}", ais_core::gen_id(16)));
                    let res = copy_durably(&tmp, &mtmp, mdst);
                    if res.is_err() {
                        let _ = std::fs::remove_file(&mtmp);
                    }
                    res?;
                }
                match layout::place(&tmp, &dst) {
                    Ok(p) => {
                        drop(serial);
                        break (p, attrs);
                    }
                    // A parent became a file again since it was prepared.
                    Err(e) if layout::needs_parents(&e) && attempts < 8 => drop(serial),
                    Err(e) => return Err(io_at("rename into", &dst)(e)),
                }
            };
            let parent = placed.parent().unwrap_or(Path::new("/"));
            if !sync {
                // Scratch data: durability left to the kernel's writeback.
            } else if group {
                // The metadata and the rename, in the next shared round.
                flusher
                    .sync()
                    .map_err(io_err("flush the mountpath (syncfs)"))?;
            } else if let Ok(d) = std::fs::File::open(parent) {
                let _ = d.sync_all();
            }
            Ok(Some(attrs))
        };
        let res = blocking_on(background, "commit", job).await;
        if matches!(res, Ok(Some(_))) {
            self.tmp = None;
        }
        res
    }
}

/// Commits of the same name are serialised by one of these (by path hash).
static COMMIT_LOCKS: [std::sync::Mutex<()>; 64] = [const { std::sync::Mutex::new(()) }; 64];

fn commit_lock(dst: &Path) -> std::sync::MutexGuard<'static, ()> {
    let h = xxhash_rust::xxh64::xxh64(dst.as_os_str().as_encoded_bytes(), 0);
    let m = &COMMIT_LOCKS[(h % COMMIT_LOCKS.len() as u64) as usize];
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What [`Store::scrub`] repaired on one object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scrubbed {
    /// The main copy was missing or damaged and was restored from a mirror.
    pub main_restored: bool,
    /// Mirror copies written again (missing or damaged).
    pub mirrors_rebuilt: usize,
}

impl Scrubbed {
    pub fn repaired(&self) -> bool {
        self.main_restored || self.mirrors_rebuilt > 0
    }
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Io {
            context: what.into(),
            source: io::Error::other(e),
        })?
}

/// [`blocking`], or on the low-priority pool for background work.
async fn blocking_on<T: Send + 'static>(
    background: bool,
    what: &'static str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    if background {
        background::run(what, f).await
    } else {
        blocking(what, f).await
    }
}

/// What [`Store::verify`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    Ok,
    /// The main copy was damaged and has been replaced from a mirror.
    Healed,
}

/// Opens an object file for reading without updating its access time. A
/// file's first read after it was written would otherwise (relatime)
/// dirty its inode, and that update waits for the journal: behind every
/// fsync of concurrent PUTs and rebalance moves on the filesystem.
pub fn open_noatime(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path)
    {
        // O_NOATIME needs the file's owner (or CAP_FOWNER).
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => std::fs::File::open(path),
        r => r,
    }
}

/// Recomputes a file's xxhash and compares it with `stored`.
/// Hashes the file (always: scrubs, repairs) and compares.
fn check_file(path: &Path, stored: &str) -> Result<()> {
    check_file_with(path, stored, false)
}

/// Like [`check_file`]; with `cached`, a file hashed before and unchanged
/// since is taken as good without reading it (reads: see `verified`).
fn check_file_with(path: &Path, stored: &str, cached: bool) -> Result<()> {
    use std::io::Read;
    let (mut f, md, _) = layout::open(path).map_err(io_at("open", path))?;
    if cached && verified::known_good(&md, stored) {
        return Ok(());
    }
    let mut h = Xxh64::new(0);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_at("read", path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let computed = format!("{:016x}", h.digest());
    if computed != stored {
        // Damage that left the identity as it was (bit rot): not good any more.
        verified::forget(&md);
        return Err(StorageError::Corrupt {
            stored: stored.to_string(),
            computed,
        });
    }
    verified::remember(&md, stored);
    Ok(())
}

/// Copies `src` (data and metadata) to `tmp`, makes it durable, and renames
/// it over `dst` (creating its directory); the caller removes `tmp` on error.
fn copy_durably(src: &Path, tmp: &Path, dst: &Path) -> Result<()> {
    std::fs::copy(src, tmp).map_err(io_at("copy", src))?;
    if let Ok(Some(meta)) = xattr::get(src, XATTR_META) {
        xattr::set(tmp, XATTR_META, &meta).map_err(io_err("set object metadata"))?;
    }
    std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(io_at("fsync", tmp))?;
    rename_durably(tmp, dst)
}

/// Renames the fsynced `tmp` over `dst` (creating its directory) and fsyncs
/// the directory, so the new name survives a power loss.
/// The caller holds `dst`'s commit lock and prepared its parents
/// ([`layout::prepare_parents`]).
pub(crate) fn rename_durably(tmp: &Path, dst: &Path) -> Result<()> {
    let placed = layout::place(tmp, dst).map_err(io_at("rename into", dst))?;
    let parent = placed.parent().unwrap_or(Path::new("/"));
    if let Ok(d) = std::fs::File::open(parent) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The PUT's temp file: the one already open, else created now.
fn open_temp(file: Option<std::fs::File>, tmp: &Path) -> Result<std::fs::File> {
    match file {
        Some(f) => Ok(f),
        None => std::fs::File::create(tmp).map_err(io_at("create temp file", tmp)),
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
