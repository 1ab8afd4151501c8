//! Object bytes that are a file's pages: read-only mappings handed out as
//! [`Bytes`], each registered with the file and offset it maps, so the
//! socket layer (`ais-node`'s `serve.rs`) can send them with `sendfile(2)`
//! instead of copying them from user space — the page cache goes to the
//! socket without a copy here, and pages never touched are never faulted
//! in. Anything else that reads such `Bytes` simply reads the mapping.
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

static REGIONS: Mutex<BTreeMap<usize, Region>> = Mutex::new(BTreeMap::new());

/// A mapping of `file` from `file_off`, registered while it lives.
struct FileMap {
    map: memmap2::Mmap,
    _file: Arc<File>,
}

impl AsRef<[u8]> for FileMap {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        // Before the fields drop: the entry goes before the mapping and the
        // descriptor it names.
        if let Ok(mut g) = REGIONS.lock() {
            g.remove(&(self.map.as_ptr() as usize));
        }
    }
}

/// `map` (of `file`, starting at byte `file_off`) as `Bytes` whose pages
/// the socket layer may send straight from the file.
pub fn file_bytes(map: memmap2::Mmap, file: Arc<File>, file_off: u64) -> Bytes {
    let start = map.as_ptr() as usize;
    if !map.is_empty() {
        if let Ok(mut g) = REGIONS.lock() {
            g.insert(
                start,
                Region {
                    end: start + map.len(),
                    fd: file.as_raw_fd(),
                    file_off,
                },
            );
        }
    }
    Bytes::from_owner(FileMap { map, _file: file })
}

/// The file and offset that `len` bytes at `ptr` map, when they all lie in
/// one registered mapping. The descriptor is valid for as long as the
/// caller holds the `Bytes` those bytes belong to.
pub fn file_range(ptr: *const u8, len: usize) -> Option<(RawFd, u64)> {
    let p = ptr as usize;
    let g = REGIONS.lock().ok()?;
    let (start, r) = g.range(..=p).next_back()?;
    (p.checked_add(len)? <= r.end).then(|| (r.fd, r.file_off + (p - start) as u64))
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
}
