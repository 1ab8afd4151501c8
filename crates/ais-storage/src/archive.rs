//! Members of archive objects ("shards": `.tar`, `.tar.gz`/`.tgz`,
//! `.zip`), read in place: AIStore's `archpath` / `archregx` + `archmode`.
//!
//! A shard's member index (name, data offset, size) is built on first use
//! and cached by the file's identity (inode, size, mtime), so an overwrite
//! (a new file renamed into place) invalidates it. For an uncompressed tar
//! or a zip member stored without compression, reading a member is one seek
//! plus its bytes, whatever the shard's size; compressed members are
//! inflated on their own (zip) or the stream is decompressed up to the
//! member (tar.gz: gzip cannot seek).

use crate::{io_at, io_err, Result, StorageError};
use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Archive formats we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchKind {
    Tar,
    TarGz,
    /// A tar in an LZ4 frame (`.tar.lz4`, as AIStore writes them).
    TarLz4,
    Zip,
}

impl ArchKind {
    /// The format to write a shard of this kind in.
    pub fn out_fmt(self) -> OutFmt {
        match self {
            ArchKind::Tar => OutFmt::Tar,
            ArchKind::TarGz => OutFmt::TarGz,
            ArchKind::TarLz4 => OutFmt::TarLz4,
            ArchKind::Zip => OutFmt::Zip,
        }
    }

    /// By the object's name, as AIStore decides.
    pub fn of(name: &str) -> Option<ArchKind> {
        let n = name.to_ascii_lowercase();
        if n.ends_with(".tar") {
            Some(ArchKind::Tar)
        } else if n.ends_with(".tar.gz") || n.ends_with(".tgz") {
            Some(ArchKind::TarGz)
        } else if n.ends_with(".tar.lz4") {
            Some(ArchKind::TarLz4)
        } else if n.ends_with(".zip") {
            Some(ArchKind::Zip)
        } else {
            None
        }
    }
}

/// One member of a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub size: u64,
    /// Where its bytes start in the shard file, when they are stored as is
    /// (tar; zip "stored"); `None` when they must be decompressed.
    pub data_offset: Option<u64>,
    /// Its index among the archive's entries (zip).
    pub index: usize,
}

/// How a member match is made (`archmode`).
#[derive(Debug, Clone)]
pub enum Matcher {
    Exact(String),
    Regexp(regex::Regex),
    Prefix(String),
    Suffix(String),
    Substr(String),
    /// WebDataset key: the member's name without its extension(s).
    WdsKey(String),
}

impl Matcher {
    /// From `archregx` and `archmode` (regexp, prefix, suffix, substr, wdskey).
    pub fn from_query(regx: &str, mode: &str) -> Result<Matcher> {
        Ok(match mode {
            "" | "regexp" => {
                Matcher::Regexp(regex::Regex::new(regx).map_err(|e| {
                    StorageError::Archive(format!("invalid archregx \"{regx}\": {e}"))
                })?)
            }
            "prefix" => Matcher::Prefix(regx.to_string()),
            "suffix" => Matcher::Suffix(regx.to_string()),
            "substr" => Matcher::Substr(regx.to_string()),
            "wdskey" => Matcher::WdsKey(regx.to_string()),
            other => {
                return Err(StorageError::Archive(format!(
                "invalid archmode \"{other}\" (expected regexp, prefix, suffix, substr or wdskey)"
            )))
            }
        })
    }

    pub fn matches(&self, name: &str) -> bool {
        let name = name.trim_start_matches("./");
        match self {
            Matcher::Exact(p) => name == p.trim_start_matches('/').trim_start_matches("./"),
            Matcher::Regexp(r) => r.is_match(name),
            Matcher::Prefix(p) => name.starts_with(p.as_str()),
            Matcher::Suffix(p) => name.ends_with(p.as_str()),
            Matcher::Substr(p) => name.contains(p.as_str()),
            Matcher::WdsKey(k) => {
                let base = match name.rfind('/') {
                    Some(i) => i + 1,
                    None => 0,
                };
                let key = match name[base..].find('.') {
                    Some(i) => &name[..base + i],
                    None => name,
                };
                key == k.as_str()
            }
        }
    }
}

type Key = (PathBuf, u64, u64, i64, i64);

/// Cached indexes: at most this many shards (then the cache starts over).
const MAX_CACHED: usize = 4096;

static INDEX: Mutex<Option<HashMap<Key, Arc<Vec<Member>>>>> = Mutex::new(None);

fn key_of(path: &Path) -> Result<Key> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            StorageError::NotFound
        } else {
            io_at("stat", path)(e)
        }
    })?;
    Ok((
        path.to_path_buf(),
        md.ino(),
        md.len(),
        md.mtime(),
        md.mtime_nsec(),
    ))
}

fn bad(path: &Path, kind: ArchKind, e: impl std::fmt::Display) -> StorageError {
    StorageError::Archive(format!(
        "{} is not a readable {kind:?} archive: {e}",
        path.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    ))
}

/// The members of the shard at `path` (files only, in archive order).
pub fn members(path: &Path, kind: ArchKind) -> Result<Arc<Vec<Member>>> {
    let key = key_of(path)?;
    if let Ok(g) = INDEX.lock() {
        if let Some(m) = g.as_ref().and_then(|m| m.get(&key)) {
            return Ok(m.clone());
        }
    }
    let list = Arc::new(build_index(path, kind)?);
    if let Ok(mut g) = INDEX.lock() {
        let m = g.get_or_insert_with(HashMap::new);
        if m.len() >= MAX_CACHED {
            m.clear();
        }
        m.insert(key, list.clone());
    }
    Ok(list)
}

fn build_index(path: &Path, kind: ArchKind) -> Result<Vec<Member>> {
    let f = std::fs::File::open(path).map_err(io_at("open", path))?;
    index_of(f, path, kind)
}

/// The member index of an open shard (`path` names it in errors): what
/// [`members`] caches, for a caller that must read the very file it
/// indexed (it keeps the descriptor; a later overwrite renames a new file
/// into place and leaves this one as it was).
pub fn index_of(f: std::fs::File, path: &Path, kind: ArchKind) -> Result<Vec<Member>> {
    let file_len = f.metadata().map_err(io_at("stat", path))?.len();
    let mut out = Vec::new();
    match kind {
        ArchKind::Tar => {
            let mut a = tar::Archive::new(f);
            // Seeks over member data: only headers are read.
            let entries = a.entries_with_seek().map_err(|e| bad(path, kind, e))?;
            tar_members(entries, path, kind, true, &mut out)?;
            // A header may claim more than the file holds (a damaged or
            // hostile shard): refused here, before anyone promises a length.
            for m in &out {
                beyond_end(path, kind, &m.name, m.data_offset, m.size, file_len)?;
            }
        }
        ArchKind::TarGz | ArchKind::TarLz4 => {
            let mut a = tar::Archive::new(decompressed(f, kind));
            let entries = a.entries().map_err(|e| bad(path, kind, e))?;
            tar_members(entries, path, kind, false, &mut out)?;
        }
        ArchKind::Zip => {
            let mut z =
                zip::ZipArchive::new(io::BufReader::new(f)).map_err(|e| bad(path, kind, e))?;
            for i in 0..z.len() {
                let e = z.by_index_raw(i).map_err(|e| bad(path, kind, e))?;
                if !e.is_file() {
                    continue;
                }
                let stored = e.compression() == zip::CompressionMethod::Stored && !e.encrypted();
                if stored {
                    beyond_end(
                        path,
                        kind,
                        e.name(),
                        Some(e.data_start()),
                        e.size(),
                        file_len,
                    )?;
                }
                out.push(Member {
                    name: e.name().to_string(),
                    size: e.size(),
                    data_offset: if stored { Some(e.data_start()) } else { None },
                    index: i,
                });
            }
        }
    }
    Ok(out)
}

/// An error when a member stored at `offset` claims more bytes than the
/// `file_len`-byte archive holds (a damaged or hostile shard): refused when
/// the index is built, before anyone promises that length.
fn beyond_end(
    path: &Path,
    kind: ArchKind,
    name: &str,
    offset: Option<u64>,
    size: u64,
    file_len: u64,
) -> Result<()> {
    match offset {
        Some(o) if o.checked_add(size).is_some_and(|end| end <= file_len) => Ok(()),
        None => Ok(()),
        Some(_) => Err(bad(
            path,
            kind,
            format!(
                "member {name} claims {size} bytes, more than the {file_len}-byte archive holds"
            ),
        )),
    }
}

/// The file members of a tar; their data offsets when the tar is not
/// compressed (`seekable`).
fn tar_members<R: Read>(
    entries: tar::Entries<'_, R>,
    path: &Path,
    kind: ArchKind,
    seekable: bool,
    out: &mut Vec<Member>,
) -> Result<()> {
    for (i, e) in entries.enumerate() {
        let mut e = e.map_err(|e| bad(path, kind, e))?;
        let Some(name) = file_entry_name(&e, path, kind)? else {
            continue;
        };
        let size = e.size();
        let data_offset = seekable.then(|| e.raw_file_position());
        if !seekable {
            // The stream is read through anyway: check that the member's
            // bytes are really there (a header may claim 10 GiB of a tiny
            // compressed stream), in bounded pieces.
            let got = io::copy(&mut (&mut e).take(size), &mut io::sink())
                .map_err(|err| bad(path, kind, format!("member {name}: {err}")))?;
            if got != size {
                return Err(bad(
                    path,
                    kind,
                    format!("member {name} claims {size} bytes, the archive holds {got}"),
                ));
            }
        }
        out.push(Member {
            name,
            size,
            data_offset,
            index: i,
        });
    }
    Ok(())
}

/// A tar entry's name when it is a file (directories, links and the like
/// are not members).
fn file_entry_name<R: Read>(
    e: &tar::Entry<'_, R>,
    path: &Path,
    kind: ArchKind,
) -> Result<Option<String>> {
    if !e.header().entry_type().is_file() {
        return Ok(None);
    }
    Ok(Some(
        e.path()
            .map_err(|e| bad(path, kind, e))?
            .to_string_lossy()
            .to_string(),
    ))
}

/// The tar stream of a (possibly compressed) tar shard.
fn decompressed(f: std::fs::File, kind: ArchKind) -> Box<dyn Read> {
    let r = io::BufReader::new(f);
    match kind {
        ArchKind::TarGz => Box::new(flate2::read::GzDecoder::new(r)),
        ArchKind::TarLz4 => Box::new(lz4_flex::frame::FrameDecoder::new(r)),
        _ => Box::new(r),
    }
}

/// Where a member's bytes are: a range of the shard file (read with one
/// seek), or to be inflated ([`stream_member`]).
pub enum MemberData {
    Range { offset: u64, len: u64 },
    Inflate { len: u64 },
}

/// The most bytes of one member read into memory at once (Get-Batch items,
/// ETL input, `archregx` results, archive appends): `AIS_MAX_MEMBER_INMEM`,
/// default 64 MiB. A larger member is an error naming the limit; an
/// `archpath` GET streams members of any size.
pub fn max_member_inmem() -> u64 {
    static MAX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        std::env::var("AIS_MAX_MEMBER_INMEM")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(64 << 20)
    })
}

fn too_big(path: &Path, kind: ArchKind, name: &str, size: u64) -> StorageError {
    bad(
        path,
        kind,
        format!(
            "member {name} is {size} bytes, more than the {} this request reads into memory \
             (AIS_MAX_MEMBER_INMEM); GET it alone with ?archpath= (streamed)",
            max_member_inmem()
        ),
    )
}

/// Inflates `member` of the shard at `path`, handing its bytes to `sink` in
/// pieces of at most 256 KiB (memory: that buffer, whatever the member's
/// size); an error if the archive holds fewer bytes than the member claims.
pub fn stream_member(
    path: &Path,
    kind: ArchKind,
    member: &Member,
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> Result<()> {
    let f = std::fs::File::open(path).map_err(io_at("open", path))?;
    let mut got = 0u64;
    let mut pump = |r: &mut dyn Read| -> Result<()> {
        let mut buf = vec![0u8; 256 << 10];
        let mut r = r.take(member.size);
        loop {
            let n = r.read(&mut buf).map_err(|e| bad(path, kind, e))?;
            if n == 0 {
                return Ok(());
            }
            got += n as u64;
            sink(&buf[..n]).map_err(io_err("send member"))?;
        }
    };
    match kind {
        ArchKind::Zip => {
            let mut z =
                zip::ZipArchive::new(io::BufReader::new(f)).map_err(|e| bad(path, kind, e))?;
            let mut e = z.by_index(member.index).map_err(|e| bad(path, kind, e))?;
            pump(&mut e)?;
        }
        ArchKind::TarGz | ArchKind::TarLz4 | ArchKind::Tar => {
            let mut a = tar::Archive::new(decompressed(f, kind));
            let entries = a.entries().map_err(|e| bad(path, kind, e))?;
            for (i, e) in entries.enumerate() {
                let mut e = e.map_err(|e| bad(path, kind, e))?;
                if i == member.index {
                    pump(&mut e)?;
                    break;
                }
            }
        }
    }
    if got != member.size {
        return Err(bad(
            path,
            kind,
            format!(
                "member {} is truncated ({got} of {} bytes)",
                member.name, member.size
            ),
        ));
    }
    Ok(())
}

/// Reads every file member of the shard at `path` once, in archive order,
/// handing each (name, claimed size, its bytes as a reader) to `f`: one pass
/// over the file whatever the format (a compressed tar is inflated once),
/// memory bounded by `f`. An error if a member holds fewer bytes than it
/// claims (checked after `f` has read what it wanted).
pub fn for_each_member(
    path: &Path,
    kind: ArchKind,
    mut f: impl FnMut(&str, u64, &mut dyn Read) -> io::Result<()>,
) -> Result<()> {
    let file = std::fs::File::open(path).map_err(io_at("open", path))?;
    let mut one = |name: &str, size: u64, r: &mut dyn Read| -> Result<()> {
        let mut counted = Counted {
            inner: r.take(size),
            n: 0,
        };
        f(name, size, &mut counted).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
                bad(path, kind, format!("member {name}: {e}"))
            }
            _ => StorageError::Io {
                context: format!("extract {name} from {}", path.display()),
                source: e,
            },
        })?;
        // What `f` left unread still has to be there.
        io::copy(&mut counted, &mut io::sink()).map_err(|e| bad(path, kind, e))?;
        if counted.n != size {
            return Err(bad(
                path,
                kind,
                format!(
                    "member {name} claims {size} bytes, the archive holds {}",
                    counted.n
                ),
            ));
        }
        // One read past the end: a zip member's CRC is checked there.
        let mut past = [0u8; 1];
        match counted.inner.into_inner().read(&mut past) {
            Ok(0) => Ok(()),
            Ok(_) => Err(bad(
                path,
                kind,
                format!("member {name} holds more than the {size} bytes it claims"),
            )),
            Err(e) => Err(bad(path, kind, format!("member {name}: {e}"))),
        }
    };
    match kind {
        ArchKind::Zip => {
            let mut z =
                zip::ZipArchive::new(io::BufReader::new(file)).map_err(|e| bad(path, kind, e))?;
            for i in 0..z.len() {
                let mut e = z.by_index(i).map_err(|e| bad(path, kind, e))?;
                if !e.is_file() {
                    continue;
                }
                let (name, size) = (e.name().to_string(), e.size());
                one(&name, size, &mut e)?;
            }
        }
        ArchKind::Tar | ArchKind::TarGz | ArchKind::TarLz4 => {
            let mut a = tar::Archive::new(decompressed(file, kind));
            for e in a.entries().map_err(|e| bad(path, kind, e))? {
                let mut e = e.map_err(|e| bad(path, kind, e))?;
                let Some(name) = file_entry_name(&e, path, kind)? else {
                    continue;
                };
                let size = e.size();
                one(&name, size, &mut e)?;
            }
            // The compressed stream's own trailer (its checksum) past the
            // tar's end, within a bound (padding could inflate forever).
            let mut rest = a.into_inner().take(1 << 20);
            io::copy(&mut rest, &mut io::sink()).map_err(|e| bad(path, kind, e))?;
        }
    }
    Ok(())
}

struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// Finds the first member `m` matches.
pub fn find<'a>(list: &'a [Member], m: &Matcher) -> Option<&'a Member> {
    list.iter().find(|x| m.matches(&x.name))
}

/// Where one member of the shard at `path` is.
pub fn read(_path: &Path, _kind: ArchKind, member: &Member) -> Result<MemberData> {
    Ok(match member.data_offset {
        Some(offset) => MemberData::Range {
            offset,
            len: member.size,
        },
        None => MemberData::Inflate { len: member.size },
    })
}

/// Reads a member fully into memory (Get-Batch items, ETL input, tests):
/// at most [`max_member_inmem`] bytes.
pub fn read_bytes(path: &Path, kind: ArchKind, member: &Member) -> Result<Vec<u8>> {
    if member.size > max_member_inmem() {
        return Err(too_big(path, kind, &member.name, member.size));
    }
    match read(path, kind, member)? {
        MemberData::Inflate { len } => {
            let mut buf = Vec::with_capacity(len as usize);
            stream_member(path, kind, member, |b| {
                buf.extend_from_slice(b);
                Ok(())
            })?;
            Ok(buf)
        }
        MemberData::Range { offset, len } => {
            let mut f = std::fs::File::open(path).map_err(io_at("open", path))?;
            f.seek(SeekFrom::Start(offset))
                .map_err(io_at("seek", path))?;
            let mut buf = vec![0u8; len as usize];
            f.read_exact(&mut buf)
                .map_err(|e| bad(path, kind, format!("member {}: {e}", member.name)))?;
            Ok(buf)
        }
    }
}

/// All members `m` matches, as a tar stream built in memory (what AIStore
/// returns for `archregx`).
pub fn read_matching_as_tar(path: &Path, kind: ArchKind, m: &Matcher) -> Result<Vec<u8>> {
    let list = members(path, kind)?;
    let total: u64 = list
        .iter()
        .filter(|x| m.matches(&x.name))
        .map(|x| x.size)
        .sum();
    if total > max_member_inmem() {
        return Err(too_big(path, kind, "matches (together)", total));
    }
    let mut b = tar::Builder::new(Vec::new());
    for x in list.iter().filter(|x| m.matches(&x.name)) {
        let data = read_bytes(path, kind, x)?;
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, &x.name, data.as_slice())
            .map_err(io_err("build tar"))?;
    }
    b.into_inner().map_err(io_err("build tar"))
}

/// Output formats of archives we write (Get-Batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutFmt {
    Tar,
    TarGz,
    TarLz4,
    Zip,
}

impl OutFmt {
    pub fn mime(self) -> &'static str {
        match self {
            OutFmt::Tar => "application/x-tar",
            OutFmt::TarGz => "application/gzip",
            OutFmt::TarLz4 => "application/x-lz4",
            OutFmt::Zip => "application/zip",
        }
    }
}

/// An archive being written: entries appended in order; [`Writer::take`]
/// hands out the bytes produced so far (tar/tgz, to stream them); zip is
/// written to a file (it needs to seek).
pub enum Writer {
    Tar(tar::Builder<Vec<u8>>),
    TarGz(tar::Builder<flate2::write::GzEncoder<Vec<u8>>>),
    TarLz4(tar::Builder<lz4_flex::frame::FrameEncoder<Vec<u8>>>),
    Zip(zip::ZipWriter<std::fs::File>),
}

impl Writer {
    pub fn new(fmt: OutFmt, spool: Option<std::fs::File>) -> io::Result<Writer> {
        Ok(match fmt {
            OutFmt::Tar => Writer::Tar(tar::Builder::new(Vec::new())),
            OutFmt::TarGz => Writer::TarGz(tar::Builder::new(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::fast(),
            ))),
            OutFmt::TarLz4 => Writer::TarLz4(tar::Builder::new(
                lz4_flex::frame::FrameEncoder::new(Vec::new()),
            )),
            OutFmt::Zip => Writer::Zip(zip::ZipWriter::new(
                spool.ok_or_else(|| io::Error::other("zip output needs a spool file"))?,
            )),
        })
    }

    pub fn add(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        use std::io::Write;
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        match self {
            Writer::Tar(b) => b.append_data(&mut h, name, data),
            Writer::TarGz(b) => b.append_data(&mut h, name, data),
            Writer::TarLz4(b) => b.append_data(&mut h, name, data),
            Writer::Zip(z) => {
                let o = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored)
                    .large_file(data.len() as u64 >= u32::MAX as u64);
                z.start_file(name, o).map_err(io::Error::other)?;
                z.write_all(data)
            }
        }
    }

    /// Bytes ready to send (tar/tgz; nothing for zip).
    pub fn take(&mut self) -> Vec<u8> {
        match self {
            Writer::Tar(b) => std::mem::take(b.get_mut()),
            Writer::TarGz(b) => std::mem::take(b.get_mut().get_mut()),
            Writer::TarLz4(b) => std::mem::take(b.get_mut().get_mut()),
            Writer::Zip(_) => Vec::new(),
        }
    }

    /// Ends the archive; returns its last bytes (tar/tgz).
    pub fn finish(self) -> io::Result<Vec<u8>> {
        match self {
            Writer::Tar(b) => b.into_inner(),
            Writer::TarGz(b) => b.into_inner()?.finish(),
            Writer::TarLz4(b) => b.into_inner()?.finish().map_err(io::Error::other),
            Writer::Zip(z) => {
                let f = z.finish().map_err(io::Error::other)?;
                f.sync_all()?;
                Ok(Vec::new())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (n, d) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(d.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, n, d.as_slice()).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn tar_tgz_zip_members_by_name_and_pattern() {
        let dir = tempfile::tempdir().unwrap();
        let ms: Vec<(&str, Vec<u8>)> = vec![
            ("a/0001.jpg", vec![1u8; 5000]),
            ("a/0001.cls", b"7".to_vec()),
            ("a/0002.jpg", vec![2u8; 700]),
            ("a/0002.cls", b"3".to_vec()),
        ];
        let tar = tar_of(&ms);
        let p_tar = dir.path().join("s.tar");
        std::fs::write(&p_tar, &tar).unwrap();
        let p_tgz = dir.path().join("s.tgz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        std::fs::write(&p_tgz, gz.finish().unwrap()).unwrap();
        let p_lz4 = dir.path().join("s.tar.lz4");
        let mut lz = lz4_flex::frame::FrameEncoder::new(Vec::new());
        std::io::Write::write_all(&mut lz, &tar).unwrap();
        std::fs::write(&p_lz4, lz.finish().unwrap()).unwrap();
        let p_zip = dir.path().join("s.zip");
        {
            let mut z = zip::ZipWriter::new(std::fs::File::create(&p_zip).unwrap());
            for (i, (n, d)) in ms.iter().enumerate() {
                let method = if i % 2 == 0 {
                    zip::CompressionMethod::Deflated
                } else {
                    zip::CompressionMethod::Stored
                };
                let o = zip::write::SimpleFileOptions::default().compression_method(method);
                z.start_file(*n, o).unwrap();
                std::io::Write::write_all(&mut z, d).unwrap();
            }
            z.finish().unwrap();
        }
        for p in [&p_tar, &p_tgz, &p_lz4, &p_zip] {
            let kind = ArchKind::of(&p.to_string_lossy()).unwrap();
            let list = members(p, kind).unwrap();
            assert_eq!(list.len(), 4, "{p:?}");
            for (n, d) in &ms {
                let m = find(&list, &Matcher::Exact(n.to_string())).unwrap();
                assert_eq!(&read_bytes(p, kind, m).unwrap(), d, "{p:?} {n}");
            }
            assert!(find(&list, &Matcher::Exact("nope".into())).is_none());
            let t = read_matching_as_tar(p, kind, &Matcher::WdsKey("a/0002".into())).unwrap();
            let mut a = tar::Archive::new(t.as_slice());
            let names: Vec<String> = a
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().to_string_lossy().to_string())
                .collect();
            assert_eq!(names, ["a/0002.jpg", "a/0002.cls"], "{p:?}");
        }
        // Uncompressed tar members are a range of the file: one seek.
        let list = members(&p_tar, ArchKind::Tar).unwrap();
        assert!(list.iter().all(|m| m.data_offset.is_some()));
        // A damaged shard is a clear error.
        std::fs::write(&p_zip, b"not a zip").unwrap();
        let e = members(&p_zip, ArchKind::Zip).unwrap_err();
        assert!(e.to_string().contains("not a readable Zip archive"), "{e}");
    }
}
