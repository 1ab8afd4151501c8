//! Native bucket inventories (AIStore's NBI) on a target: a snapshot of a
//! remote bucket's names, made once by a `create-inventory` job and then
//! listed instead of the backend (`LSO_NBI`).
//!
//! Each target lists the backend and keeps the names it owns under the map
//! of the moment, in name order, as chunk files of `names_per_chunk` JSON
//! lines (`{"n","s","v"}`) with an index of each chunk's first name, under
//! `MOUNTPATH/.ais-nbi/BUCKET/NAME/`. The job writes into a hidden
//! `.tmp-JOB` directory and renames it into place when whole, so a listing
//! never reads half an inventory. Memory stays bounded by a backend page
//! (creation) and a listing page (reads): chunks are streamed, never
//! loaded.

use super::jobs::TargetJob;
use super::Target;
use crate::error::{ApiError, ApiResult};
use crate::http::{json_ok, Ctx, Res};
use ais_core::api::{LsoEntry, NbiInfo, NbiShare, TargetPage, ENTRY_FLAG_CACHED, ENTRY_FLAG_DIR};
use ais_core::Bck;
use axum::http::Method;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Below each mountpath's root (beside the buckets, never in a listing).
const DIR: &str = ".ais-nbi";
const META: &str = "meta.json";
const INDEX: &str = "index";
const TMP: &str = ".tmp-";

/// What an inventory directory keeps besides its chunks.
#[derive(Serialize, Deserialize)]
struct Meta {
    info: NbiInfo,
    props: String,
    /// The job that made it (every target's share of one inventory has
    /// the same).
    #[serde(default)]
    job: String,
}

/// One name of an inventory chunk.
#[derive(Serialize, Deserialize)]
struct Line {
    n: String,
    s: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    v: String,
}

fn io_err(t: &Target, what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("{}: inventory: {what}: {e}", t.core.name))
}

/// Every mountpath's directory of `bucket`'s inventories.
fn bucket_dirs(t: &Target, bucket: &str) -> Vec<PathBuf> {
    t.store
        .mountpaths()
        .into_iter()
        .map(|m| m.path.join(DIR).join(bucket))
        .collect()
}

/// `bucket`'s finished inventories here: (directory, meta), by name.
fn find(t: &Target, bucket: &str) -> Vec<(PathBuf, Meta)> {
    let mut out = Vec::new();
    for d in bucket_dirs(t, bucket) {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            let dir = e.path();
            let meta = std::fs::read(dir.join(META))
                .ok()
                .and_then(|raw| serde_json::from_slice::<Meta>(&raw).ok());
            if let Some(m) = meta {
                out.push((dir, m));
            }
        }
    }
    out.sort_by(|a, b| a.1.info.name.cmp(&b.1.info.name));
    out
}

/// The bucket's inventory `name`, or its only one when `name` is empty.
fn select(t: &Target, bck: &Bck, name: &str) -> ApiResult<(PathBuf, Meta)> {
    let mut all = find(t, &bck.name);
    if !name.is_empty() {
        return all
            .into_iter()
            .find(|(_, m)| m.info.name == name)
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "{}: {} has no inventory \"{name}\" here",
                    t.core.name,
                    bck.cname()
                ))
            });
    }
    match all.len() {
        0 => Err(ApiError::NotFound(format!(
            "{}: {} has no inventory here (create one: ais nbi create {})",
            t.core.name,
            bck.cname(),
            bck.cname()
        ))),
        1 => Ok(all.remove(0)),
        _ => Err(ApiError::bad_request(format!(
            "{} has several inventories ({}): name one (Ais-Inv-Name, --inv-name)",
            bck.cname(),
            all.iter()
                .map(|(_, m)| m.info.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Removes `bucket`'s inventory `name` (empty: all, unfinished ones
/// included); answers how many finished ones went.
fn destroy(t: &Target, bucket: &str, name: &str) -> u64 {
    let mut n = 0;
    for d in bucket_dirs(t, bucket) {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let f = e.file_name().to_string_lossy().to_string();
            let hit = if name.is_empty() { true } else { f == name };
            if hit && std::fs::remove_dir_all(e.path()).is_ok() && !f.starts_with(TMP) {
                n += 1;
            }
        }
        let _ = std::fs::remove_dir(&d);
    }
    n
}

/// A bucket left the cluster: its inventories go with it.
pub fn bucket_destroyed(t: &Target, bucket: &str) {
    destroy(t, bucket, "");
}

/// `INT_NBI/B?name=`: GET this target's inventories of B (by inventory
/// object name, as AIStore's `NBIInfoMap`); DELETE removes them.
pub async fn internal(t: &Arc<Target>, ctx: &Ctx, bucket: &str) -> Res {
    ctx.expect_method(&[Method::GET, Method::DELETE])?;
    // A bucket of the map, by a valid name: it names a directory here.
    let bck = ctx.bck(bucket)?;
    t.core.bucket_props(&bck)?;
    let name = ctx.query.get("name").unwrap_or("").to_string();
    if !name.is_empty() && !ais_core::api::valid_nbi_name(&name) {
        return Err(ApiError::bad_request(format!(
            "invalid inventory name \"{name}\""
        )));
    }
    let (t2, b) = (t.clone(), bck.name.clone());
    if ctx.method == Method::DELETE {
        let n = tokio::task::spawn_blocking(move || destroy(&t2, &b, &name))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        return json_ok(&n);
    }
    let found = tokio::task::spawn_blocking(move || find(&t2, &b))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let map: BTreeMap<String, NbiInfo> = found
        .into_iter()
        .filter(|(_, m)| name.is_empty() || m.info.name == name)
        .map(|(_, m)| (m.info.obj_name.clone(), m.info))
        .collect();
    json_ok(&map)
}

/// Writes an inventory's chunks and index, in name order.
struct Writer {
    dir: PathBuf,
    per_chunk: u64,
    in_chunk: u64,
    chunks: u64,
    ntotal: u64,
    cur: Option<BufWriter<std::fs::File>>,
    index: BufWriter<std::fs::File>,
    last: Option<String>,
}

impl Writer {
    fn new(dir: PathBuf, per_chunk: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let index = BufWriter::new(std::fs::File::create(dir.join(INDEX))?);
        Ok(Writer {
            dir,
            per_chunk,
            in_chunk: 0,
            chunks: 0,
            ntotal: 0,
            cur: None,
            index,
            last: None,
        })
    }

    fn chunk_path(dir: &Path, i: u64) -> PathBuf {
        dir.join(format!("c{i:08}.jsonl"))
    }

    fn add(&mut self, l: &Line) -> std::io::Result<()> {
        if self.cur.is_none() || self.in_chunk >= self.per_chunk {
            if let Some(mut w) = self.cur.take() {
                w.flush()?;
                w.get_ref().sync_data()?;
            }
            let f = std::fs::File::create(Self::chunk_path(&self.dir, self.chunks))?;
            self.cur = Some(BufWriter::new(f));
            serde_json::to_writer(&mut self.index, &l.n)?;
            self.index.write_all(b"\n")?;
            self.chunks += 1;
            self.in_chunk = 0;
        }
        if let Some(w) = self.cur.as_mut() {
            serde_json::to_writer(&mut *w, l)?;
            w.write_all(b"\n")?;
        }
        self.in_chunk += 1;
        self.ntotal += 1;
        Ok(())
    }

    /// Flushes everything durably; answers (names, chunks, bytes on disk).
    fn finish(mut self, meta: &mut Meta) -> std::io::Result<PathBuf> {
        if let Some(mut w) = self.cur.take() {
            w.flush()?;
            w.get_ref().sync_data()?;
        }
        self.index.flush()?;
        self.index.get_ref().sync_data()?;
        meta.info.ntotal = self.ntotal;
        meta.info.chunks = self.chunks;
        let mut size = 0;
        for e in std::fs::read_dir(&self.dir)?.flatten() {
            size += e.metadata().map(|m| m.len()).unwrap_or(0);
        }
        let raw = serde_json::to_vec(meta).map_err(std::io::Error::other)?;
        meta.info.size = size + raw.len() as u64;
        let raw = serde_json::to_vec(meta).map_err(std::io::Error::other)?;
        let mut f = std::fs::File::create(self.dir.join(META))?;
        f.write_all(&raw)?;
        f.sync_all()?;
        Ok(self.dir)
    }
}

/// The `create-inventory` job here: the backend's names this target owns
/// (under `prefix`), in order, into a new inventory.
pub async fn create(t: &Arc<Target>, job: &Arc<TargetJob>) -> ApiResult<()> {
    let spec = &job.spec;
    let bck = t.core.bck(spec.src.clone());
    let props = t.core.bucket_props(&bck)?;
    let remote = super::remote::backend_of(t, &bck)?.ok_or_else(|| {
        ApiError::bad_request(format!(
            "{}: an inventory is of a remote bucket's names",
            bck.cname()
        ))
    })?;
    // The job's id names a directory here.
    if spec.id.is_empty()
        || !spec
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
    {
        return Err(ApiError::bad_request(format!(
            "create-inventory: invalid job id \"{}\"",
            spec.id
        )));
    }
    let others: Vec<String> = t
        .jobs
        .running(crate::rpc::types::JOB_CREATE_NBI)
        .iter()
        .filter(|j| j.spec.src == spec.src && j.id() != spec.id)
        .map(|j| j.id().to_string())
        .collect();
    if !others.is_empty() {
        return Err(ApiError::Conflict(format!(
            "{}: another create-inventory of {} is running ({}); one at a time",
            t.core.name,
            bck.cname(),
            others.join(", ")
        )));
    }
    // Every target judges ownership by the map the job was started with:
    // the shares partition the names whatever the map does meanwhile.
    let smap = match &spec.smap {
        Some(m) => m.clone(),
        None => t
            .core
            .meta
            .smap()
            .ok_or_else(|| ApiError::unavailable("no cluster map yet"))?,
    };
    let ext = |k: &str| spec.msg.ext.get(k).cloned().unwrap_or_default();
    let name = ext("name");
    if !ais_core::api::valid_nbi_name(&name) {
        return Err(ApiError::bad_request(format!(
            "create-inventory: invalid inventory name \"{name}\""
        )));
    }
    let per_chunk: u64 = ext("names_per_chunk").parse().unwrap_or(20_000);
    let (t2, b2) = (t.clone(), bck.name.clone());
    let existing = tokio::task::spawn_blocking(move || find(&t2, &b2))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if existing.iter().any(|(_, m)| m.info.name == name) {
        return Err(ApiError::Conflict(format!(
            "{}: {} already has an inventory \"{name}\"",
            t.core.name,
            bck.cname()
        )));
    }
    let mut mps = t.store.mountpaths();
    mps.sort_by(|a, b| a.path.cmp(&b.path));
    let root = mps
        .first()
        .map(|m| m.path.join(DIR).join(&bck.name))
        .ok_or_else(|| io_err(t, "create", "no mountpaths"))?;
    let tmp = root.join(format!("{TMP}{}", spec.id));
    let (smap_ver, nat) = (smap.version, smap.active_targets().count() as u32);
    let mut meta = Meta {
        info: NbiInfo {
            bucket: bck.name.clone(),
            name: name.clone(),
            obj_name: format!("{}/@#/{}/{name}", props.provider, bck.name),
            prefix: spec.msg.prefix.clone(),
            started: ais_core::now_ns() as i64,
            smap_ver,
            nat,
            ..Default::default()
        },
        props: ext("props"),
        job: spec.id.clone(),
    };
    let dir = tmp.clone();
    let mut w = tokio::task::spawn_blocking(move || Writer::new(dir, per_chunk.max(1)))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| io_err(t, "create", e))?;
    let res = async {
        let mut after = String::new();
        loop {
            if job.aborted.load(Ordering::Relaxed) {
                return Err(ApiError::internal("aborted"));
            }
            let (entries, next) = remote
                .list_page(crate::backend::http(), &spec.msg.prefix, &after, None, 1000)
                .await?;
            let more = next.is_some() && !entries.is_empty();
            if let Some(l) = entries.last() {
                after = l.name.clone();
            }
            let mut mine = Vec::new();
            for e in entries {
                if w.last.as_ref().is_some_and(|l| e.name <= *l) {
                    return Err(ApiError::Peer {
                        status: axum::http::StatusCode::BAD_GATEWAY,
                        tcode: "ErrNBI".into(),
                        message: format!(
                            "{}: the backend of {} listed \"{}\" after \"{}\" (not in name order); no inventory was made",
                            t.core.name,
                            bck.cname(),
                            e.name,
                            w.last.clone().unwrap_or_default()
                        ),
                    });
                }
                w.last = Some(e.name.clone());
                let owned = smap
                    .owner(&bck.obj_uname(&e.name))
                    .is_some_and(|o| o.daemon_id == t.core.id);
                if owned {
                    job.done_one(0);
                    mine.push(Line {
                        n: e.name,
                        s: e.size,
                        v: e.etag,
                    });
                }
            }
            w = tokio::task::spawn_blocking(move || {
                for l in &mine {
                    w.add(l)?;
                }
                Ok::<_, std::io::Error>(w)
            })
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| io_err(t, "write", e))?;
            if !more {
                break;
            }
        }
        meta.info.finished = ais_core::now_ns() as i64;
        let final_dir = root.join(&name);
        tokio::task::spawn_blocking(move || {
            let dir = w.finish(&mut meta)?;
            if final_dir.exists() {
                return Err(std::io::Error::other(format!(
                    "an inventory \"{}\" appeared meanwhile",
                    meta.info.name
                )));
            }
            std::fs::rename(&dir, &final_dir)?;
            if let Some(p) = final_dir.parent() {
                std::fs::File::open(p)?.sync_all()?;
            }
            Ok::<_, std::io::Error>(meta.info.ntotal)
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| io_err(t, "finish", e))
    }
    .await;
    match res {
        Ok(n) => {
            tracing::info!(bucket = %bck.cname(), inventory = %name, names = n, "inventory created");
            Ok(())
        }
        Err(e) => {
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&tmp)).await;
            if job.aborted.load(Ordering::Relaxed) {
                return Ok(());
            }
            Err(e)
        }
    }
}

/// What a listing page from an inventory asks.
pub struct PageQuery {
    pub inv: String,
    pub prefix: String,
    pub after: String,
    pub limit: usize,
    /// `LSO_NO_RECURSION`: one level below the prefix; `Some(false)`: and
    /// no directory entries.
    pub shallow: Option<bool>,
}

/// The next names of `bck`'s inventory after `q.after`: what this target
/// holds of it, each flagged cached when a copy is here.
pub async fn list_page(t: &Arc<Target>, bck: &Bck, q: PageQuery) -> ApiResult<TargetPage> {
    let (t2, b2, inv) = (t.clone(), bck.clone(), q.inv.clone());
    let (dir, meta) = tokio::task::spawn_blocking(move || select(&t2, &b2, &inv))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    // What it holds is the names under its prefix: a listing of another
    // part of the bucket would be silently empty.
    let ip = &meta.info.prefix;
    if !q.prefix.starts_with(ip.as_str()) && !ip.starts_with(q.prefix.as_str()) {
        return Err(ApiError::bad_request(format!(
            "inventory \"{}\" of {} holds the names under \"{ip}\" only; list a prefix \
             within it (or without one)",
            meta.info.name,
            bck.cname()
        )));
    }
    let share = NbiShare {
        job: meta.job.clone(),
        smap_ver: meta.info.smap_ver,
        nat: meta.info.nat,
    };
    let tname = t.core.name.clone();
    let mut page = tokio::task::spawn_blocking(move || read_page(&dir, &q))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(format!("{tname}: reading an inventory: {e}")))?;
    for e in page.entries.iter_mut() {
        if e.flags & ENTRY_FLAG_DIR == 0 && t.store.head(bck, &e.name).await.is_ok() {
            e.flags |= ENTRY_FLAG_CACHED;
        }
    }
    page.nbi = Some(share);
    Ok(page)
}

/// Each chunk's first name (the index): one line per chunk, at least 100
/// names each, so a tenth of a percent of the inventory at most.
fn read_index(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut firsts = Vec::new();
    for l in std::io::BufReader::new(std::fs::File::open(dir.join(INDEX))?).lines() {
        firsts.push(serde_json::from_str(&l?).map_err(std::io::Error::other)?);
    }
    Ok(firsts)
}

/// The chunk where names not before `key` start: the last whose first
/// name is not past it.
fn chunk_for(firsts: &[String], key: &str) -> usize {
    firsts
        .partition_point(|f| f.as_str() <= key)
        .saturating_sub(1)
}

fn read_page(dir: &Path, q: &PageQuery) -> std::io::Result<TargetPage> {
    let firsts = read_index(dir)?;
    let start = if q.prefix > q.after {
        q.prefix.as_str()
    } else {
        q.after.as_str()
    };
    let mut c = chunk_for(&firsts, start);
    let mut entries: Vec<LsoEntry> = Vec::new();
    let mut last_dir: Option<String> = None;
    'chunks: while c < firsts.len() {
        let f = std::fs::File::open(Writer::chunk_path(dir, c as u64))?;
        let current = c;
        c += 1;
        for l in std::io::BufReader::new(f).lines() {
            let l: Line = serde_json::from_str(&l?).map_err(std::io::Error::other)?;
            if l.n.as_str() <= q.after.as_str() {
                continue;
            }
            if !l.n.starts_with(&q.prefix) {
                if l.n > q.prefix {
                    return Ok(page(entries, true));
                }
                continue;
            }
            if let Some(dirs) = q.shallow {
                let rel = &l.n[q.prefix.len()..];
                if let Some(i) = rel.find('/') {
                    let d = format!("{}{}", q.prefix, &rel[..=i]);
                    if last_dir.as_deref() != Some(d.as_str()) {
                        last_dir = Some(d.clone());
                        // Listed once, on the page that reaches it first.
                        if dirs && d.as_str() > q.after.as_str() {
                            entries.push(LsoEntry {
                                name: d.clone(),
                                flags: ENTRY_FLAG_DIR,
                                ..Default::default()
                            });
                            if entries.len() >= q.limit {
                                return Ok(page(entries, false));
                            }
                        }
                        // Past the directory's names at once when they
                        // run on into later chunks ('0' follows '/').
                        let past = format!("{}0", &d[..d.len() - 1]);
                        let pc = chunk_for(&firsts, &past);
                        if pc > current {
                            c = pc;
                            continue 'chunks;
                        }
                    }
                    continue;
                }
            }
            entries.push(LsoEntry {
                name: l.n,
                size: l.s,
                version: l.v,
                ..Default::default()
            });
            if entries.len() >= q.limit {
                return Ok(page(entries, false));
            }
        }
    }
    Ok(page(entries, true))
}

fn page(entries: Vec<LsoEntry>, done: bool) -> TargetPage {
    TargetPage {
        entries,
        done,
        nbi: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Names as a bucket might hold them: files at the top, directories of
    /// every size (one spans many chunks), nested ones.
    fn names() -> Vec<String> {
        let mut v: Vec<String> = (0..450).map(|i| format!("big/{i:04}")).collect();
        v.extend((0..30).map(|i| format!("small{}/x/{i}", i % 3)));
        v.extend((0..40).map(|i| format!("top{i:03}")));
        v.extend(["a", "a/", "a/b", "a0", "big", "big0/z"].map(String::from));
        v.sort();
        v.dedup();
        v
    }

    fn write(dir: &Path, names: &[String], per_chunk: u64) {
        let mut w = Writer::new(dir.to_path_buf(), per_chunk).unwrap();
        for n in names {
            w.add(&Line {
                n: n.clone(),
                s: n.len() as u64,
                v: String::new(),
            })
            .unwrap();
        }
        let mut meta = Meta {
            info: NbiInfo::default(),
            props: String::new(),
            job: "j".into(),
        };
        w.finish(&mut meta).unwrap();
        assert_eq!(meta.info.ntotal, names.len() as u64);
        assert_eq!(meta.info.chunks, (names.len() as u64).div_ceil(per_chunk));
    }

    /// What a listing must answer: every name under `prefix`, or one level
    /// of it (files, and directories unless `dirs` is false).
    fn model(names: &[String], prefix: &str, shallow: Option<bool>) -> Vec<String> {
        let mut out = BTreeSet::new();
        for n in names.iter().filter(|n| n.starts_with(prefix)) {
            let rel = &n[prefix.len()..];
            match (shallow, rel.find('/')) {
                (Some(dirs), Some(i)) => {
                    if dirs {
                        out.insert(format!("{prefix}{}", &rel[..=i]));
                    }
                }
                _ => {
                    out.insert(n.clone());
                }
            }
        }
        out.into_iter().collect()
    }

    /// Pages of `limit` until done, each starting after the last name.
    fn list_all(dir: &Path, prefix: &str, shallow: Option<bool>, limit: usize) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut after = String::new();
        for _ in 0..10_000 {
            let q = PageQuery {
                inv: String::new(),
                prefix: prefix.into(),
                after: after.clone(),
                limit,
                shallow,
            };
            let p = read_page(dir, &q).unwrap();
            assert!(p.entries.len() <= limit);
            out.extend(p.entries.iter().map(|e| e.name.clone()));
            if p.done {
                return out;
            }
            after = out.last().cloned().unwrap_or_default();
        }
        panic!("listing did not end");
    }

    #[test]
    fn pages_prefixes_and_one_level_views_match_the_names() {
        let names = names();
        for per_chunk in [2, 7, 100, 10_000] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("inv");
            write(&dir, &names, per_chunk);
            for prefix in ["", "a", "a/", "big/", "big", "small1/", "top0", "zzz"] {
                for shallow in [None, Some(true), Some(false)] {
                    let want = model(&names, prefix, shallow);
                    for limit in [1, 3, 50, 10_000] {
                        let got = list_all(&dir, prefix, shallow, limit);
                        assert_eq!(
                            got, want,
                            "per_chunk {per_chunk}, prefix {prefix:?}, shallow {shallow:?}, limit {limit}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_chunk_for_a_key_is_the_last_starting_at_or_before_it() {
        let f: Vec<String> = ["b", "d", "f"].map(String::from).to_vec();
        assert_eq!(chunk_for(&f, ""), 0);
        assert_eq!(chunk_for(&f, "a"), 0);
        assert_eq!(chunk_for(&f, "b"), 0);
        assert_eq!(chunk_for(&f, "c"), 0);
        assert_eq!(chunk_for(&f, "d"), 1);
        assert_eq!(chunk_for(&f, "zz"), 2);
    }
}
