//! LRU eviction of cached remote objects by capacity watermarks (AIStore's
//! `lru` job): when a target's mountpaths are more than `space.highwm`
//! percent used, the cached copies of remote buckets' objects that were
//! used least recently (and not within `lru.dont_evict_time`) are removed
//! until usage is down to `space.lowwm`. The backend keeps every object: an
//! evicted one is fetched again on its next GET. `ais://` objects are never
//! evicted.
//!
//! Reads open object files with `O_NOATIME` (see `ais_storage::open_noatime`),
//! so the file's access time is when it was cached; GETs of cached remote
//! objects are recorded here ([`touch`]), in memory and bounded, and the
//! later of the two counts.
//!
//! A target checks its capacity every `lru.capacity_upd_time`, and before
//! each cold GET or PUT into a remote bucket, and starts the job itself when
//! `lru.enabled`; `{action: start, value: {kind: lru}}` starts it on every
//! target (it does nothing on one below its high watermark).

use super::jobs::{start_local, TargetJob};
use super::Target;
use crate::error::{ApiError, ApiResult};
use crate::rpc::types::{JobSpec, JOB_LRU};
use ais_core::api::{PropSet, TcbMsg};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Recorded accesses kept at most (8 bytes of key and 8 of time each: a
/// few tens of MiB at most). Past it the oldest half is dropped.
const MAX_TRACKED: usize = 1 << 20;
/// Candidates considered per pass (the oldest ones; memory stays bounded
/// whatever the number of cached objects).
const PASS: usize = 50_000;

/// A target's LRU state: recent GETs of cached remote objects (by a hash
/// of the uname → unix ns), the start gate, and the last run that could
/// not get down to the low watermark.
#[derive(Default)]
pub struct Access {
    seen: Mutex<HashMap<u64, i64>>,
    /// Held from "is one running?" to "started": one LRU job at a time.
    gate: Mutex<()>,
    /// When a run ended above `space.lowwm`, and the bytes used then: no
    /// automatic restart before `lru.capacity_upd_time` has passed and
    /// usage has grown.
    stuck: Mutex<Option<(Instant, u64)>>,
}

fn key(bck: &ais_core::Bck, obj: &str) -> u64 {
    xxhash_rust::xxh64::xxh64(bck.obj_uname(obj).as_bytes(), 0)
}

/// Records a GET of `bck/obj` (a remote bucket's cached object).
pub fn touch(t: &Target, bck: &ais_core::Bck, obj: &str) {
    if let Ok(mut m) = t.lru.seen.lock() {
        if m.len() >= MAX_TRACKED {
            // Keep the newer half: the older entries are the eviction
            // candidates anyway, and their files' times still order them.
            let mut times: Vec<i64> = m.values().copied().collect();
            let mid = times.len() / 2;
            let (_, cut, _) = times.select_nth_unstable(mid);
            let cut = *cut;
            m.retain(|_, v| *v > cut);
        }
        m.insert(key(bck, obj), ais_core::now_ns());
    }
}

/// Forgets `bck/obj` (deleted or evicted).
pub fn forget(t: &Target, bck: &ais_core::Bck, obj: &str) {
    if let Ok(mut m) = t.lru.seen.lock() {
        if !m.is_empty() {
            m.remove(&key(bck, obj));
        }
    }
}

fn last_access(t: &Target, bck: &ais_core::Bck, obj: &str) -> i64 {
    t.lru
        .seen
        .lock()
        .ok()
        .and_then(|m| m.get(&key(bck, obj)).copied())
        .unwrap_or(0)
}

/// Used and total bytes of this target's mountpaths (each filesystem once).
pub fn usage(t: &Target) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let (mut used, mut total) = (0u64, 0u64);
    for m in t.store.mountpaths() {
        let Ok(md) = std::fs::metadata(&m.path) else {
            continue;
        };
        if !seen.insert(md.dev()) {
            continue;
        }
        if let Some((tot, u, _)) = crate::metrics::statvfs(&m.path) {
            total += tot;
            used += u;
        }
    }
    (used, total)
}

fn pct(used: u64, total: u64) -> i64 {
    if total == 0 {
        0
    } else {
        (used as u128 * 100 / total as u128) as i64
    }
}

/// Starts an LRU job here when usage is above the high watermark, LRU is
/// enabled, none runs, and the last run that could not reach the low
/// watermark is not still the latest news.
pub fn check(t: &Arc<Target>) {
    let cfg = t.core.config.current();
    if !cfg.bool("lru.enabled") {
        return;
    }
    let (used, total) = usage(t);
    if pct(used, total) <= cfg.int("space.highwm") {
        return;
    }
    if let Ok(stuck) = t.lru.stuck.lock() {
        if let Some((when, at)) = *stuck {
            if when.elapsed() < cfg.duration("lru.capacity_upd_time") || used <= at {
                return;
            }
        }
    }
    let spec = spec(format!("lru-{}", ais_core::gen_id(10)));
    if let Ok(id) = start_with(t, spec) {
        tracing::info!(node = %t.core.name, job = %id, used, total, "above the high watermark: LRU eviction started");
    }
}

fn spec(id: String) -> JobSpec {
    JobSpec {
        id,
        kind: JOB_LRU.into(),
        src: String::new(),
        dst: String::new(),
        msg: TcbMsg::default(),
        skip_unchanged: false,
        archive: None,
        smap: None,
    }
}

/// Starts LRU job `spec` here unless one runs (409 naming it).
pub fn start_with(t: &Arc<Target>, spec: JobSpec) -> ApiResult<String> {
    let _gate = t
        .lru
        .gate
        .lock()
        .map_err(|_| ApiError::internal("LRU gate poisoned"))?;
    if let Some(j) = t.jobs.running(JOB_LRU).first() {
        return Err(ApiError::Conflict(format!(
            "{}: LRU job {} is already running",
            t.core.name,
            j.id()
        )));
    }
    Ok(start_local(t, spec).id().to_string())
}

/// Checks capacity every `lru.capacity_upd_time` (re-read each time).
pub async fn run_periodic(t: Arc<Target>) {
    let mut cfg = t.core.config.subscribe();
    loop {
        let every = cfg
            .borrow_and_update()
            .duration("lru.capacity_upd_time")
            .max(Duration::from_millis(100));
        // A new period applies at once, not after the old one has run out
        // (the default is minutes long).
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            changed = cfg.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        }
        if t.core.leaving.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        check(&t);
    }
}

/// The job: evict the least recently used cached remote objects until
/// usage is at or below `space.lowwm`. Nothing to do at or below
/// `space.highwm`; an error when what is left cannot be evicted.
pub async fn run(t: &Arc<Target>, job: &Arc<TargetJob>) -> ApiResult<()> {
    let cfg = t.core.config.current();
    let (used, total) = usage(t);
    if pct(used, total) <= cfg.int("space.highwm") {
        return Ok(());
    }
    let lowwm = cfg.int("space.lowwm").max(0);
    let low = (total as u128 * lowwm as u128 / 100) as u64;
    let recent = ais_core::now_ns() - cfg.duration("lru.dont_evict_time").as_nanos() as i64;
    let buckets: Vec<ais_core::Bck> = t.core.meta.with_bmd(|b| {
        b.buckets
            .iter()
            .filter(|(_, p)| p.provider != "ais")
            .map(|(n, p)| ais_core::Bck {
                name: n.clone(),
                provider: p.provider.clone(),
                namespace: Default::default(),
            })
            .collect()
    });
    loop {
        // The oldest PASS candidates: (last use, bucket index, name, size).
        let mut heap: std::collections::BinaryHeap<(i64, usize, String, u64)> = Default::default();
        let mut more = false;
        for (bi, bck) in buckets.iter().enumerate() {
            let mut after = String::new();
            loop {
                if job.is_aborted() {
                    return Ok(());
                }
                let (store, b, a) = (t.store.clone(), bck.clone(), after.clone());
                let page = tokio::task::spawn_blocking(move || {
                    ais_storage::list_objects(
                        &store,
                        &b,
                        "",
                        &a,
                        1000,
                        &PropSet::default(),
                        "",
                        None,
                    )
                })
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
                .map_err(|e| crate::error::storage(&t.core.name, bck, "", e))?;
                for e in &page.entries {
                    if e.flags & ais_core::api::ENTRY_FLAG_DIR != 0 {
                        continue;
                    }
                    let Ok(info) = t.store.head(bck, &e.name).await else {
                        continue;
                    };
                    let used_at = info.atime_ns.max(last_access(t, bck, &e.name));
                    if used_at > recent {
                        continue;
                    }
                    heap.push((used_at, bi, e.name.clone(), info.attrs.size));
                    if heap.len() > PASS {
                        heap.pop();
                        more = true;
                    }
                }
                match page.entries.last() {
                    Some(last) if !page.done => after = last.name.clone(),
                    _ => break,
                }
            }
        }
        let victims = heap.into_sorted_vec();
        // Only what this pass actually deleted counts as progress: a pass
        // whose victims were all gone already (listed, then removed by
        // someone else) must not start another identical pass forever.
        let mut evicted_any = false;
        for (_, bi, name, size) in victims {
            if usage(t).0 <= low || job.is_aborted() {
                return done(t);
            }
            let bck = &buckets[bi];
            match t.store.delete_copies(bck, &name).await {
                Ok(()) => {
                    forget(t, bck, &name);
                    job.done_one(size);
                    evicted_any = true;
                }
                // Deleted by someone else meanwhile: not our eviction.
                Err(ais_storage::StorageError::NotFound) => forget(t, bck, &name),
                Err(e) => return Err(crate::error::storage(&t.core.name, bck, &name, e)),
            }
        }
        let now = usage(t).0;
        if now <= low {
            return done(t);
        }
        if !more || !evicted_any {
            if let Ok(mut stuck) = t.lru.stuck.lock() {
                *stuck = Some((Instant::now(), now));
            }
            return Err(ApiError::Conflict(format!(
                "{}: {}% used after evicting what could be: the rest is ais:// data, in use within lru.dont_evict_time, or not a cached remote object (space.lowwm is {lowwm}%)",
                t.core.name,
                pct(now, total)
            )));
        }
    }
}

/// A run that reached the low watermark clears the "stuck" mark.
fn done(t: &Target) -> ApiResult<()> {
    if let Ok(mut stuck) = t.lru.stuck.lock() {
        *stuck = None;
    }
    Ok(())
}
