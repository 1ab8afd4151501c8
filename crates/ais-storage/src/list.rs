//! Ordered, resumable listing of a bucket on one target.
//!
//! Object names are listed in byte order of their full names. Directories are
//! walked with the key `name + "/"`, which makes a depth-first walk produce
//! exactly that order ("a.c" < "a/b" because '.' < '/'). Each directory read
//! keeps only the `limit` smallest candidate keys in a bounded heap, so memory
//! per page is O(limit) whatever the bucket size; the cost of a page is one
//! pass over the directories on the path to the next names.
//!
//! A directory `p/` may also hold object `p` itself, as `p/.ais~self`
//! ([`crate::layout`]): the walk offers key `p` for it next to `p/`, so it
//! sorts where the name `p` belongs (before "p.x", which sorts before "p/").

use crate::{io_at, layout, timefmt, ObjInfo, Result, Store};
use ais_core::api::{LsoEntry, PropSet, TargetPage, ENTRY_FLAG_CACHED, ENTRY_FLAG_DIR};
use ais_core::Bck;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};

#[allow(clippy::too_many_arguments)]
pub fn list_objects(
    store: &Store,
    bck: &Bck,
    prefix: &str,
    after: &str,
    limit: usize,
    props: &PropSet,
    node_name: &str,
    shallow: Option<bool>,
) -> Result<TargetPage> {
    let limit = limit.max(1);
    let mut all: Vec<(String, PathBuf, String)> = Vec::new();
    for (dir, mp) in store.bucket_dirs_for(bck) {
        if !dir.is_dir() {
            continue;
        }
        let mut out = Vec::new();
        // One more than asked: only then do we know whether more names follow.
        walk_in(&dir, "", prefix, after, limit + 1, shallow, &mut out)?;
        let loc = format!("{node_name}:mp[{}]", mp.path.display());
        all.extend(out.into_iter().map(|(n, p)| (n, p, loc.clone())));
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    // A directory is on every mountpath (and an object found twice while a
    // resilver runs is one object).
    all.dedup_by(|a, b| a.0 == b.0);
    let done = all.len() <= limit;
    all.truncate(limit);
    let mut entries = Vec::with_capacity(all.len());
    for (name, path, loc) in all {
        if name.ends_with('/') {
            entries.push(LsoEntry {
                name,
                flags: ENTRY_FLAG_DIR,
                ..Default::default()
            });
            continue;
        }
        let (path, md) = match std::fs::metadata(&path) {
            // Nested since the walk saw it (`layout`): the object is beneath.
            Ok(m) if m.is_dir() => {
                let p = path.join(layout::SELF);
                match std::fs::metadata(&p) {
                    Ok(m) => (p, m),
                    Err(_) => continue,
                }
            }
            Ok(m) => (path, m),
            Err(_) => continue, // deleted while listing
        };
        let mut e = LsoEntry {
            name,
            size: md.len(),
            flags: ENTRY_FLAG_CACHED,
            ..Default::default()
        };
        if props.needs_attrs() || props.atime {
            let info = ObjInfo::read(&path, &md)?;
            if props.checksum {
                e.checksum = info.attrs.shown_cksum().1.to_string();
            }
            if props.version {
                e.version = info.attrs.version.to_string();
            }
            if props.atime {
                e.atime = timefmt::go_rfc822(info.atime_ns);
            }
            if props.custom && !info.attrs.custom.is_empty() {
                e.custom = info
                    .attrs
                    .custom
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",");
            }
        }
        if props.location {
            e.location = loc;
        }
        if props.copies {
            e.copies = 1;
        }
        entries.push(e);
    }
    Ok(TargetPage {
        entries,
        done,
        nbi: None,
    })
}

/// What one target holds of a bucket (main copies; names under `prefix`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub objs: u64,
    /// Their sizes.
    pub bytes: u64,
    /// Their allocated blocks.
    pub disk: u64,
    pub min: u64,
    pub max: u64,
}

/// Counts `bck`'s objects here a page at a time (memory O(page) whatever
/// the bucket's size).
pub fn summarize(store: &Store, bck: &Bck, prefix: &str) -> Result<Summary> {
    use std::os::unix::fs::MetadataExt;
    const PAGE: usize = 10_000;
    let mut s = Summary {
        min: u64::MAX,
        ..Summary::default()
    };
    for (dir, _) in store.bucket_dirs_for(bck) {
        let mut after = String::new();
        loop {
            let mut out = Vec::new();
            walk(&dir, "", prefix, &after, PAGE, &mut out)?;
            for (_, path) in &out {
                let Ok(md) = std::fs::metadata(path) else {
                    continue; // deleted meanwhile
                };
                s.objs += 1;
                s.bytes += md.len();
                s.disk += md.blocks() * 512;
                s.min = s.min.min(md.len());
                s.max = s.max.max(md.len());
            }
            match out.last() {
                Some((name, _)) if out.len() == PAGE => after = name.clone(),
                _ => break,
            }
        }
    }
    if s.objs == 0 {
        s.min = 0;
    }
    Ok(s)
}

/// Is a walk key (file name or `dir/`) worth visiting for this prefix/after?
fn wanted(key: &str, is_dir: bool, prefix: &str, after: &str) -> bool {
    let prefix_ok = key.starts_with(prefix) || (is_dir && prefix.starts_with(key));
    if !prefix_ok {
        return false;
    }
    if after.is_empty() {
        return true;
    }
    if is_dir {
        key > after || after.starts_with(key)
    } else {
        key > after
    }
}

pub(crate) fn walk(
    dir: &Path,
    rel: &str,
    prefix: &str,
    after: &str,
    limit: usize,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<()> {
    walk_in(dir, rel, prefix, after, limit, None, out)
}

/// [`walk`]; `shallow` as in [`list_objects`] (a directory entry's name
/// ends in '/').
fn walk_in(
    dir: &Path,
    rel: &str,
    prefix: &str,
    after: &str,
    limit: usize,
    shallow: Option<bool>,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<()> {
    // Keys strictly greater than `bound` are still to be visited in this dir.
    let mut bound: Option<String> = None;
    loop {
        let need = limit - out.len();
        if need == 0 {
            return Ok(());
        }
        // A file's key is its name, a directory's ends in '/'; a directory
        // also offers its own name (`Kind::Held`), for an object it may hold.
        let mut heap: BinaryHeap<(String, Kind)> = BinaryHeap::new();
        let mut truncated = false;
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_at("read dir", dir)(e)),
        };
        for ent in rd {
            let ent = ent.map_err(io_at("read dir", dir))?;
            let Some(name) = ent.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name == layout::SELF {
                // Listed by the parent's walk, under the directory's name.
                continue;
            }
            let is_dir = ent.file_type().map(|t| t.is_dir()).unwrap_or(false);
            let mut key = String::with_capacity(rel.len() + name.len() + 1);
            key.push_str(rel);
            key.push_str(&name);
            let mut keys = [None, None];
            if is_dir {
                // Offered only where it is (a heap slot each would cost
                // directories of directories extra passes).
                if dir.join(&name).join(layout::SELF).is_file() {
                    keys[0] = Some((key.clone(), Kind::Held));
                }
                key.push('/');
                keys[1] = Some((key, Kind::Dir));
            } else {
                keys[1] = Some((key, Kind::File));
            }
            for (key, kind) in keys.into_iter().flatten() {
                if !wanted(&key, kind == Kind::Dir, prefix, after) {
                    continue;
                }
                if bound.as_ref().is_some_and(|b| key.as_str() <= b.as_str()) {
                    continue;
                }
                if heap.len() == need {
                    if let Some(top) = heap.peek() {
                        if key >= top.0 {
                            truncated = true;
                            continue;
                        }
                    }
                    heap.pop();
                    truncated = true;
                }
                heap.push((key, kind));
            }
        }
        let cands = heap.into_sorted_vec();
        let last = cands.last().map(|c| c.0.clone());
        for (key, kind) in cands {
            if out.len() >= limit {
                return Ok(());
            }
            let name = &key[rel.len()..];
            if kind == Kind::Dir {
                // Below the prefix's level, a shallow listing names the
                // directory (once: strictly after the continuation token)
                // instead of walking into it.
                if let Some(with_dirs) = shallow.filter(|_| key.len() > prefix.len()) {
                    if with_dirs && key.as_str() > after {
                        out.push((key.clone(), dir.join(name.trim_end_matches('/'))));
                    }
                    continue;
                }
                walk_in(
                    &dir.join(name.trim_end_matches('/')),
                    &key,
                    prefix,
                    after,
                    limit,
                    shallow,
                    out,
                )?;
            } else if kind == Kind::File {
                out.push((key.clone(), dir.join(name)));
            } else {
                // A directory's own name: an object only if it holds one.
                let file = dir.join(name).join(layout::SELF);
                if file.is_file() {
                    out.push((key.clone(), file));
                }
            }
        }
        if !truncated || out.len() >= limit {
            return Ok(());
        }
        bound = last;
    }
}

/// What a walk key stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    File,
    Dir,
    /// The object a directory may hold as [`layout::SELF`].
    Held,
}
