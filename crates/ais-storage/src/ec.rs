//! Erasure-coded parts of objects kept on this target for other targets'
//! objects (AIStore's `ec` bucket property), and the Reed-Solomon coding
//! itself.
//!
//! A part is either a full replica of a small object or one slice of a large
//! one, stored at `<mountpath>/@ec/<bucket>/<object name>` (outside `@ais`,
//! so listings never see it) with its [`EcMeta`] in the `user.ais.ec` xattr.
//! A target holds at most one part per object: the slices of an object go to
//! distinct targets.
//!
//! Coding is done in stripes of `data × shard` bytes, so neither side ever
//! holds more than one stripe per slice in memory: slice `i` is the
//! concatenation of shard `i` of every stripe, the last stripe zero-padded;
//! parity slices follow the data slices.

use crate::list::walk;
use crate::{commit_lock, io_at, io_err, is_not_found, Result, StorageError, Store};
use ais_core::meta::{ObjAttrs, CKSUM_XXHASH};
use ais_core::Bck;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;
use xxhash_rust::xxh64::Xxh64;

pub(crate) const EC_DIR: &str = "@ec";
const XATTR_EC: &str = "user.ais.ec";
/// Bytes of one slice per stripe.
pub const SHARD: u64 = 256 * 1024;

/// What a part is and which object version it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcMeta {
    /// 0: a full replica; 1..=data+parity: that slice (data slices first).
    pub idx: u32,
    pub data: u32,
    pub parity: u32,
    pub shard: u64,
    pub obj_size: u64,
    pub obj_cksum: String,
    pub version: u64,
    #[serde(default)]
    pub custom: BTreeMap<String, String>,
    /// xxhash64 of this part's bytes.
    pub part_cksum: String,
    /// The object's checksum of the bucket's type, if not xxhash
    /// (`ObjAttrs::user_cksum_*`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_cksum_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_cksum_value: String,
}

impl EcMeta {
    pub fn is_replica(&self) -> bool {
        self.idx == 0
    }

    /// The size a healthy part has.
    pub fn part_size(&self) -> u64 {
        if self.is_replica() {
            self.obj_size
        } else {
            stripes(self.obj_size, self.data as u64, self.shard) * self.shard
        }
    }

    /// The object's attributes as they were when the part was cut.
    pub fn obj_attrs(&self) -> ObjAttrs {
        ObjAttrs {
            size: self.obj_size,
            cksum_type: CKSUM_XXHASH.into(),
            cksum_value: self.obj_cksum.clone(),
            version: self.version,
            mtime_ns: ais_core::now_ns(),
            custom: self.custom.clone(),
            user_cksum_type: self.user_cksum_type.clone(),
            user_cksum_value: self.user_cksum_value.clone(),
        }
    }
}

/// Stripes an object of `size` bytes is cut into.
pub fn stripes(size: u64, data: u64, shard: u64) -> u64 {
    let per = (data * shard).max(1);
    size.div_ceil(per)
}

fn rs_err(e: reed_solomon_simd::Error) -> StorageError {
    StorageError::Io {
        context: "erasure coding".into(),
        source: io::Error::other(e.to_string()),
    }
}

/// Reads up to `buf.len()` bytes, zero-filling what the file no longer has.
fn fill(f: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf[n..].fill(0);
    Ok(n)
}

/// Cuts the object file `src` (`size` bytes, checksum `cksum`) into `data`
/// data and `parity` parity slices, handing each stripe's shards to `sink`
/// as (slice index 0-based, bytes) in order, so slices can stream to their
/// holders as they are cut. The source is hashed as it is read and checked
/// before the last stripe is handed out: a damaged source fails the call
/// before any slice is complete, so no part of it can be committed.
pub fn encode_stream(
    src: &Path,
    size: u64,
    cksum: &str,
    data: usize,
    parity: usize,
    mut sink: impl FnMut(usize, Vec<u8>) -> io::Result<()>,
) -> Result<()> {
    let shard = SHARD as usize;
    let mut f = std::fs::File::open(src).map_err(io_at("open", src))?;
    let mut src_hash = Xxh64::new(0);
    let mut bufs = vec![vec![0u8; shard]; data];
    let mut enc =
        reed_solomon_simd::ReedSolomonEncoder::new(data, parity, shard).map_err(rs_err)?;
    let mut read = 0u64;
    let n = stripes(size, data as u64, SHARD);
    let check = |read: u64, h: &Xxh64| -> Result<()> {
        if read != size {
            return Err(StorageError::SizeMismatch {
                stored: size,
                actual: read,
            });
        }
        let computed = format!("{:016x}", h.digest());
        if !cksum.is_empty() && computed != cksum {
            return Err(StorageError::Corrupt {
                stored: cksum.to_string(),
                computed,
            });
        }
        Ok(())
    };
    for stripe in 0..n {
        for b in bufs.iter_mut() {
            let k = fill(&mut f, b).map_err(io_at("read", src))?;
            src_hash.update(&b[..k]);
            read += k as u64;
            enc.add_original_shard(&*b).map_err(rs_err)?;
        }
        let res = enc.encode().map_err(rs_err)?;
        let recovery: Vec<Vec<u8>> = res.recovery_iter().map(|r| r.to_vec()).collect();
        drop(res);
        if stripe + 1 == n {
            // Anything left in the file beyond `size` is damage too.
            let mut extra = [0u8; 1];
            if fill(&mut f, &mut extra).map_err(io_at("read", src))? > 0 {
                read += 1;
            }
            check(read, &src_hash)?;
        }
        for (i, b) in bufs.iter().cloned().chain(recovery).enumerate() {
            sink(i, b).map_err(io_err("send slice"))?;
        }
    }
    if n == 0 {
        check(read, &src_hash)?;
    }
    Ok(())
}

/// [`encode_stream`] into files (`outs`, in slice order); returns each
/// slice's checksum.
pub fn encode_file(
    src: &Path,
    size: u64,
    cksum: &str,
    data: usize,
    parity: usize,
    outs: &[PathBuf],
) -> Result<Vec<String>> {
    let mut files = Vec::with_capacity(outs.len());
    for p in outs {
        let file = std::fs::File::create(p).map_err(io_at("create", p))?;
        files.push(io::BufWriter::with_capacity(1 << 20, file));
    }
    let mut hashers: Vec<Xxh64> = (0..data + parity).map(|_| Xxh64::new(0)).collect();
    encode_stream(src, size, cksum, data, parity, |i, b| {
        hashers[i].update(&b);
        files[i].write_all(&b)
    })?;
    for (i, w) in files.into_iter().enumerate() {
        w.into_inner()
            .map_err(|e| io_at("write", &outs[i])(e.into_error()))?;
    }
    Ok(hashers
        .into_iter()
        .map(|h| format!("{:016x}", h.digest()))
        .collect())
}

/// Rebuilds an object from at least `meta.data` of its slices: `parts` are
/// (slice index 1-based, file) pairs. The result is written to `out`
/// (truncated to the object's size) and must hash to `meta.obj_cksum`.
pub fn decode_file(meta: &EcMeta, parts: &[(u32, PathBuf)], out: &Path) -> Result<()> {
    let (data, parity, shard) = (
        meta.data as usize,
        meta.parity as usize,
        meta.shard as usize,
    );
    if parts.len() < data {
        return Err(StorageError::Io {
            context: "erasure decoding".into(),
            source: io::Error::other(format!(
                "{} of the {data} slices needed are available",
                parts.len()
            )),
        });
    }
    let mut readers = Vec::new();
    for (idx, p) in parts {
        let f = std::fs::File::open(p).map_err(io_at("open", p))?;
        readers.push((*idx as usize - 1, io::BufReader::with_capacity(1 << 20, f)));
    }
    let file = std::fs::File::create(out).map_err(io_at("create", out))?;
    let mut w = io::BufWriter::with_capacity(1 << 20, file);
    let mut dec =
        reed_solomon_simd::ReedSolomonDecoder::new(data, parity, shard).map_err(rs_err)?;
    let mut bufs: Vec<Vec<u8>> = vec![vec![0u8; shard]; readers.len()];
    let mut left = meta.obj_size;
    let mut hash = Xxh64::new(0);
    for _ in 0..stripes(meta.obj_size, data as u64, meta.shard) {
        let mut have: Vec<Option<usize>> = vec![None; data];
        for (k, (i, r)) in readers.iter_mut().enumerate() {
            let n = fill(r, &mut bufs[k]).map_err(io_err("read slice"))?;
            if n != shard {
                return Err(StorageError::SizeMismatch {
                    stored: meta.part_size(),
                    actual: n as u64,
                });
            }
            if *i < data {
                have[*i] = Some(k);
            }
        }
        let mut restored: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
        if have.iter().any(|h| h.is_none()) {
            for (k, (i, _)) in readers.iter().enumerate() {
                if *i < data {
                    dec.add_original_shard(*i, &bufs[k]).map_err(rs_err)?;
                } else {
                    dec.add_recovery_shard(*i - data, &bufs[k])
                        .map_err(rs_err)?;
                }
            }
            let res = dec.decode().map_err(rs_err)?;
            for (i, b) in res.restored_original_iter() {
                restored.insert(i, b.to_vec());
            }
        }
        for (i, h) in have.iter().enumerate() {
            let b: &[u8] = match h {
                Some(k) => &bufs[*k],
                None => restored.get(&i).map(|v| v.as_slice()).ok_or_else(|| {
                    rs_err(reed_solomon_simd::Error::NotEnoughShards {
                        original_count: data,
                        original_received_count: 0,
                        recovery_received_count: 0,
                    })
                })?,
            };
            let take = (b.len() as u64).min(left) as usize;
            w.write_all(&b[..take]).map_err(io_at("write", out))?;
            hash.update(&b[..take]);
            left -= take as u64;
        }
    }
    let file = w
        .into_inner()
        .map_err(|e| io_at("write", out)(e.into_error()))?;
    file.sync_all().map_err(io_at("fsync", out))?;
    let computed = format!("{:016x}", hash.digest());
    if computed != meta.obj_cksum {
        return Err(StorageError::Corrupt {
            stored: meta.obj_cksum.clone(),
            computed,
        });
    }
    Ok(())
}

impl Store {
    fn part_path(&self, bck: &Bck, obj: &str) -> PathBuf {
        self.mpath_for(bck, obj)
            .path
            .join(EC_DIR)
            .join(&bck.name)
            .join(obj)
    }

    /// A fresh temp file name on the object's mountpath (for slices being
    /// cut or fetched); the caller removes it.
    pub fn work_file(&self, bck: &Bck, obj: &str, tag: &str) -> PathBuf {
        self.mpath_for(bck, obj)
            .work_dir()
            .join(format!("{tag}-{}", ais_core::gen_id(16)))
    }

    /// The part of an object held here, if any, checked against its size
    /// (a short or long part is damage: `SizeMismatch`).
    pub fn part_meta(&self, bck: &Bck, obj: &str) -> Result<Option<EcMeta>> {
        let p = self.part_path(bck, obj);
        read_part_meta(&p)
    }

    /// The part held here, open for reading.
    pub fn open_part(&self, bck: &Bck, obj: &str) -> Result<Option<(EcMeta, std::fs::File)>> {
        let p = crate::layout::file_at(&self.part_path(bck, obj));
        let Some(meta) = read_part_meta(&p)? else {
            return Ok(None);
        };
        match std::fs::File::open(&p) {
            Ok(f) => Ok(Some((meta, f))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(io_at("open", &p)(e)),
        }
    }

    /// Starts receiving a part; nothing is visible until [`PartWriter::commit`].
    pub async fn begin_part(&self, bck: &Bck, obj: &str) -> Result<PartWriter> {
        let tmp = self.work_file(bck, obj, "ec");
        let file = tokio::fs::File::create(&tmp)
            .await
            .map_err(io_at("create", &tmp))?;
        Ok(PartWriter {
            file: Some(tokio::io::BufWriter::with_capacity(1 << 20, file)),
            tmp: Some(tmp),
            dst: self.part_path(bck, obj),
            hasher: Xxh64::new(0),
            size: 0,
        })
    }

    /// Removes the part held here; true if there was one.
    pub fn delete_part(&self, bck: &Bck, obj: &str) -> bool {
        let mp = self.mpath_for(bck, obj);
        let p = self.part_path(bck, obj);
        let _serial = commit_lock(&p);
        match crate::layout::remove(&p) {
            Ok(removed) => {
                crate::prune_empty_dirs(removed.parent(), &mp.path.join(EC_DIR).join(&bck.name));
                true
            }
            Err(_) => false,
        }
    }

    /// Up to `limit` parts of `bck` held here, in name order after `after`.
    /// A part whose metadata cannot be read is skipped (scrub reports it).
    pub fn list_parts(
        &self,
        bck: &Bck,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, EcMeta)>> {
        let limit = limit.max(1);
        let mut all: Vec<(String, PathBuf)> = Vec::new();
        for mp in self.mountpaths() {
            let dir = mp.path.join(EC_DIR).join(&bck.name);
            if !dir.is_dir() {
                continue;
            }
            let mut out = Vec::new();
            walk(&dir, "", "", after, limit, &mut out)?;
            all.extend(out);
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.truncate(limit);
        Ok(all
            .into_iter()
            .filter_map(|(n, p)| read_part_meta(&p).ok().flatten().map(|m| (n, m)))
            .collect())
    }

    /// Makes `tmp` (a complete copy of the object, e.g. rebuilt from its
    /// parts) the object's main copy with `attrs` (version kept), unless a
    /// healthy copy of that version or a newer one is already there.
    /// `Ok(false)`: the existing copy was kept and `tmp` removed.
    pub async fn restore_from(
        &self,
        bck: &Bck,
        obj: &str,
        tmp: PathBuf,
        attrs: ObjAttrs,
    ) -> Result<bool> {
        let dst = self.logical_path(bck, obj);
        crate::blocking("restore", move || {
            let res = (|| -> Result<bool> {
                let md = std::fs::metadata(&tmp).map_err(io_at("stat", &tmp))?;
                if md.len() != attrs.size {
                    return Err(StorageError::SizeMismatch {
                        stored: attrs.size,
                        actual: md.len(),
                    });
                }
                crate::check_file(&tmp, &attrs.cksum_value)?;
                let scratch = tmp.parent().unwrap_or(Path::new("/"));
                crate::layout::prepare_parents(&dst, scratch)
                    .map_err(io_at("create the parents of", &dst))?;
                let _serial = commit_lock(&dst);
                let file = crate::layout::file_at(&dst);
                if let Ok(md) = std::fs::metadata(&file) {
                    if let Ok(cur) = crate::ObjInfo::read(&file, &md) {
                        if cur.attrs.version > attrs.version
                            || (cur.attrs.version == attrs.version
                                && crate::check_file(&file, &cur.attrs.cksum_value).is_ok())
                        {
                            return Ok(false);
                        }
                    }
                }
                let raw = serde_json::to_vec(&attrs).map_err(|e| StorageError::Io {
                    context: "encode metadata".into(),
                    source: io::Error::other(e),
                })?;
                publish(&tmp, &dst, crate::XATTR_META, &raw)?;
                Ok(true)
            })();
            let _ = std::fs::remove_file(&tmp);
            res
        })
        .await
    }
}

/// Makes the fsynced file `tmp` visible as `dst` with its metadata in the
/// xattr `key`: set the xattr, rename into place, fsync the directory.
fn publish(tmp: &Path, dst: &Path, key: &str, raw: &[u8]) -> Result<()> {
    xattr::set(tmp, key, raw).map_err(io_err("set metadata"))?;
    crate::rename_durably(tmp, dst)
}

/// The metadata of the part whose logical path is `p` ([`crate::layout`]).
fn read_part_meta(p: &Path) -> Result<Option<EcMeta>> {
    let p = &crate::layout::file_at(p);
    let md = match std::fs::metadata(p) {
        Ok(m) if m.is_file() => m,
        Ok(_) => return Ok(None),
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(io_at("stat", p)(e)),
    };
    let raw = match xattr::get(p, XATTR_EC) {
        Ok(Some(raw)) => raw,
        _ => return Ok(None),
    };
    let meta: EcMeta = serde_json::from_slice(&raw).map_err(|e| StorageError::Io {
        context: format!("decode {}", p.display()),
        source: io::Error::other(e),
    })?;
    if meta.part_size() != md.len() {
        return Err(StorageError::SizeMismatch {
            stored: meta.part_size(),
            actual: md.len(),
        });
    }
    Ok(Some(meta))
}

/// A part being received. Dropping it without `commit` removes the temp file.
pub struct PartWriter {
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    tmp: Option<PathBuf>,
    dst: PathBuf,
    hasher: Xxh64,
    size: u64,
}

impl PartWriter {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        let f = self.file.as_mut().ok_or_else(|| StorageError::Io {
            context: "write part".into(),
            source: io::Error::other("writer already finished"),
        })?;
        f.write_all(chunk).await.map_err(io_err("write part"))
    }

    /// Checks what arrived against `meta` (size and checksum), makes it
    /// durable and visible. A part of a newer version already here wins:
    /// `Ok(false)`.
    pub async fn commit(mut self, meta: EcMeta) -> Result<bool> {
        let mut f = self.file.take().ok_or_else(|| StorageError::Io {
            context: "commit part".into(),
            source: io::Error::other("writer already finished"),
        })?;
        f.flush().await.map_err(io_err("flush part"))?;
        f.get_mut().sync_all().await.map_err(io_err("fsync part"))?;
        drop(f);
        if self.size != meta.part_size() {
            return Err(StorageError::SizeMismatch {
                stored: meta.part_size(),
                actual: self.size,
            });
        }
        let computed = format!("{:016x}", self.hasher.digest());
        // Slices stream while they are cut: their checksum is what arrived
        // (the object's own checksum verifies any rebuild end to end).
        let mut meta = meta;
        if meta.part_cksum.is_empty() {
            meta.part_cksum = computed.clone();
        }
        if computed != meta.part_cksum {
            return Err(StorageError::Corrupt {
                stored: meta.part_cksum.clone(),
                computed,
            });
        }
        let tmp = self.tmp.take().unwrap_or_default();
        let dst = self.dst.clone();
        crate::blocking("commit part", move || {
            let res = (|| -> Result<bool> {
                let scratch = tmp.parent().unwrap_or(Path::new("/"));
                crate::layout::prepare_parents(&dst, scratch)
                    .map_err(io_at("create the parents of", &dst))?;
                let _serial = commit_lock(&dst);
                if let Ok(Some(cur)) = read_part_meta(&dst) {
                    if cur.version > meta.version {
                        return Ok(false);
                    }
                }
                let raw = serde_json::to_vec(&meta).map_err(|e| StorageError::Io {
                    context: "encode part metadata".into(),
                    source: io::Error::other(e),
                })?;
                publish(&tmp, &dst, XATTR_EC, &raw)?;
                Ok(true)
            })();
            let _ = std::fs::remove_file(&tmp);
            res
        })
        .await
    }
}

impl Drop for PartWriter {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(size: usize, data: usize, parity: usize, lose: &[usize]) {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("obj");
        let bytes: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        std::fs::write(&src, &bytes).unwrap();
        let cksum = format!("{:016x}", xxhash_rust::xxh64::xxh64(&bytes, 0));
        let outs: Vec<PathBuf> = (0..data + parity)
            .map(|i| dir.path().join(format!("s{i}")))
            .collect();
        let sums = encode_file(&src, size as u64, &cksum, data, parity, &outs).unwrap();
        assert_eq!(sums.len(), data + parity);
        let meta = EcMeta {
            idx: 1,
            data: data as u32,
            parity: parity as u32,
            shard: SHARD,
            obj_size: size as u64,
            obj_cksum: cksum.clone(),
            version: 1,
            custom: Default::default(),
            part_cksum: String::new(),
            user_cksum_type: String::new(),
            user_cksum_value: String::new(),
        };
        for p in &outs {
            assert_eq!(std::fs::metadata(p).unwrap().len(), meta.part_size());
        }
        let parts: Vec<(u32, PathBuf)> = outs
            .iter()
            .enumerate()
            .filter(|(i, _)| !lose.contains(i))
            .map(|(i, p)| (i as u32 + 1, p.clone()))
            .collect();
        let out = dir.path().join("restored");
        decode_file(&meta, &parts, &out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), bytes);
    }

    #[test]
    fn any_data_slices_rebuild_the_object() {
        roundtrip(1_000_000, 2, 1, &[0]);
        roundtrip(1_000_000, 2, 1, &[1]);
        roundtrip(1_000_000, 2, 1, &[2]);
        roundtrip(3 * SHARD as usize, 3, 2, &[0, 2]);
        roundtrip(10, 2, 2, &[0, 1]);
    }

    #[test]
    fn damaged_source_is_not_encoded_and_too_few_slices_fail() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("obj");
        std::fs::write(&src, vec![7u8; 600_000]).unwrap();
        let outs: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("s{i}"))).collect();
        let e = encode_file(&src, 600_000, "0000000000000000", 2, 1, &outs).unwrap_err();
        assert!(matches!(e, StorageError::Corrupt { .. }), "{e}");
        let e = encode_file(&src, 700_000, "", 2, 1, &outs).unwrap_err();
        assert!(matches!(e, StorageError::SizeMismatch { .. }), "{e}");
        let meta = EcMeta {
            idx: 1,
            data: 2,
            parity: 1,
            shard: SHARD,
            obj_size: 600_000,
            obj_cksum: String::new(),
            version: 1,
            custom: Default::default(),
            part_cksum: String::new(),
            user_cksum_type: String::new(),
            user_cksum_value: String::new(),
        };
        let e = decode_file(&meta, &[(1, outs[0].clone())], &dir.path().join("o")).unwrap_err();
        assert!(e.to_string().contains("1 of the 2 slices"), "{e}");
    }
}
