//! Object bytes that are a file's pages: read-only mappings (or buffers
//! read from the file) handed out as [`Bytes`], each registered with the
//! file and offset it holds, so the socket layer (`ais-node`'s `serve.rs`)
//! can send them with `sendfile(2)` instead of copying them from user space
//! — the page cache goes to the socket without a copy here, and mapped
//! pages never touched are never faulted in. Anything else that reads such
//! `Bytes` simply reads the memory.
//!
//! The registry is keyed by mapping address: live mappings never overlap,
//! an entry is removed before its mapping is unmapped (and its file
//! closed), and whoever looks an address up holds `Bytes` that keep the
//! mapping alive, so a hit always names the file those bytes come from.
//! Objects are replaced by rename (a new inode) and never truncated in
//! place, so the open file keeps serving exactly the mapped version.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};

struct Region {
    end: usize,
    fd: RawFd,
    file_off: u64,
}

/// Shards by 2 MiB address chunk of a region's start, so GETs on many
/// cores do not queue on one lock. A region is never longer than a chunk
/// (mappings are at most 1 MiB + a page, buffers at most 256 KiB), so the
/// region holding an address starts in its chunk or the one before.
const CHUNK_SHIFT: u32 = 21;
const MAX_REGION: usize = 1 << CHUNK_SHIFT;
const SHARDS: usize = 16;

type Shard = Mutex<BTreeMap<usize, Region>>;

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Shard = Mutex::new(BTreeMap::new());
static REGIONS: [Shard; SHARDS] = [EMPTY; SHARDS];

fn shard(addr: usize) -> &'static Shard {
    &REGIONS[(addr >> CHUNK_SHIFT) % SHARDS]
}

/// Bytes equal to `file`'s from some offset (its mapping, or a buffer read
/// from it), registered while they live.
struct FileBacked<T: AsRef<[u8]>> {
    data: T,
    _file: Arc<File>,
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for FileBacked<T> {
    fn as_ref(&self) -> &[u8] {
        self.data.as_ref()
    }
}

impl<T: AsRef<[u8]>> Drop for FileBacked<T> {
    fn drop(&mut self) {
        // Before the fields drop: the entry goes before the memory and the
        // descriptor it names.
        let start = self.data.as_ref().as_ptr() as usize;
        if let Ok(mut g) = shard(start).lock() {
            g.remove(&start);
        }
    }
}

/// `data` — a mapping of `file` from byte `file_off`, or a buffer holding
/// exactly those bytes — as `Bytes` the socket layer may send straight from
/// the file. The caller guarantees the equality; our objects are never
/// modified in place, so an open file keeps matching what was read.
pub fn file_bytes<T>(data: T, file: Arc<File>, file_off: u64) -> Bytes
where
    T: AsRef<[u8]> + Send + 'static,
{
    let d = data.as_ref();
    let start = d.as_ptr() as usize;
    // Longer ones are simply not registered (sent from memory).
    if !d.is_empty() && d.len() <= MAX_REGION {
        if let Ok(mut g) = shard(start).lock() {
            g.insert(
                start,
                Region {
                    end: start + d.len(),
                    fd: file.as_raw_fd(),
                    file_off,
                },
            );
        }
    }
    Bytes::from_owner(FileBacked { data, _file: file })
}

/// The file and offset that `len` bytes at `ptr` map, when they all lie in
/// one registered mapping. The descriptor is valid for as long as the
/// caller holds the `Bytes` those bytes belong to.
pub fn file_range(ptr: *const u8, len: usize) -> Option<(RawFd, u64)> {
    let p = ptr as usize;
    let end = p.checked_add(len)?;
    let chunk = p >> CHUNK_SHIFT;
    [chunk, chunk.wrapping_sub(1)].into_iter().find_map(|c| {
        let g = REGIONS[c % SHARDS].lock().ok()?;
        let (start, r) = g.range(..=p).next_back()?;
        (start >> CHUNK_SHIFT == c && end <= r.end).then(|| (r.fd, r.file_off + (p - start) as u64))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn slices_of_a_mapping_name_their_file_offsets_until_dropped() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&vec![7u8; 3 * 4096]).unwrap();
        let f = Arc::new(f);
        // SAFETY: a private temp file nobody else writes.
        let m = unsafe {
            memmap2::MmapOptions::new()
                .offset(4096)
                .len(8192)
                .map(&*f)
                .unwrap()
        };
        let b = file_bytes(m, f.clone(), 4096);
        let s = b.slice(100..5000);
        assert_eq!(file_range(s.as_ptr(), s.len()), Some((f.as_raw_fd(), 4196)));
        // Past the end of the mapping: not this file's bytes.
        assert_eq!(file_range(s.as_ptr(), 9000), None);
        let other = [1u8; 64];
        assert_eq!(file_range(other.as_ptr(), 64), None);
        let (p, n) = (s.as_ptr(), s.len());
        drop((b, s));
        assert_eq!(file_range(p, n), None);
    }

    /// A window of a larger mapping (a region that may cross a chunk).
    struct Window(Arc<memmap2::Mmap>, std::ops::Range<usize>);

    impl AsRef<[u8]> for Window {
        fn as_ref(&self) -> &[u8] {
            &self.0[self.1.clone()]
        }
    }

    #[test]
    fn a_region_across_a_shard_boundary_is_found_from_both_sides() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(8 << 20).unwrap();
        let f = Arc::new(f);
        // SAFETY: a private temp file nobody else writes.
        let m = Arc::new(unsafe { memmap2::Mmap::map(&*f).unwrap() });
        let base = m.as_ptr() as usize;
        let chunk = 1usize << CHUNK_SHIFT;
        // A 1 MiB window starting 512 KiB before a chunk boundary.
        let mut boundary = (base + chunk) & !(chunk - 1);
        if boundary - base < (512 << 10) {
            boundary += chunk;
        }
        let o = boundary - base - (512 << 10);
        let b = file_bytes(Window(m.clone(), o..o + (1 << 20)), f.clone(), o as u64);
        for at in [0usize, 100, (512 << 10) - 1, 512 << 10, (768 << 10) + 7] {
            let s = b.slice(at..at + 4096);
            assert_eq!(
                file_range(s.as_ptr(), s.len()),
                Some((f.as_raw_fd(), (o + at) as u64)),
                "at {at}"
            );
        }
        // Longer than a chunk: not registered, sent from memory.
        let whole = file_bytes(Window(m.clone(), 0..(3 << 20)), f.clone(), 0);
        assert_eq!(file_range(whole.as_ptr(), 4096), None);
    }
}
