//! Objects whose bytes were hashed and matched their stored checksum, by
//! file identity: device, inode, size, and modification and change times
//! (nanoseconds). Any write to a file — a flipped byte included — moves its
//! change time, which nobody can set back; a replaced object is a new inode.
//! So a file read once and found good is not hashed again while it stays
//! the same file, and verifying every read costs a `fstat` after the first.
//! (Damage that bypasses the file system — a failing disk — is what the
//! scrub job is for.)

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

/// Identities kept at most (then the cache starts over: a re-hash each).
const MAX_ENTRIES: usize = 1 << 20;

#[derive(PartialEq, Eq, Clone, Copy)]
struct Ident {
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    cksum: u64,
}

static GOOD: Mutex<Option<HashMap<(u64, u64), Ident>>> = Mutex::new(None);

fn ident(md: &std::fs::Metadata, cksum: &str) -> Option<((u64, u64), Ident)> {
    let cksum = u64::from_str_radix(cksum, 16).ok()?;
    Some((
        (md.dev(), md.ino()),
        Ident {
            size: md.size(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ctime: (md.ctime(), md.ctime_nsec()),
            cksum,
        },
    ))
}

/// Whether this very file was found to match `cksum` before.
pub(crate) fn known_good(md: &std::fs::Metadata, cksum: &str) -> bool {
    let Some((k, id)) = ident(md, cksum) else {
        return false;
    };
    GOOD.lock()
        .ok()
        .and_then(|g| g.as_ref().and_then(|m| m.get(&k).copied()))
        == Some(id)
}

/// Records that the file with metadata `md` (taken before it was hashed)
/// matched `cksum`.
pub(crate) fn remember(md: &std::fs::Metadata, cksum: &str) {
    let Some((k, id)) = ident(md, cksum) else {
        return;
    };
    if let Ok(mut g) = GOOD.lock() {
        let m = g.get_or_insert_with(HashMap::new);
        if m.len() >= MAX_ENTRIES {
            m.clear();
        }
        m.insert(k, id);
    }
}

/// Forgets the file with metadata `md` (found damaged).
pub(crate) fn forget(md: &std::fs::Metadata) {
    if let Ok(mut g) = GOOD.lock() {
        if let Some(m) = g.as_mut() {
            m.remove(&(md.dev(), md.ino()));
        }
    }
}
