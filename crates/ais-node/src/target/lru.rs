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
use crate::error::ApiResult;
use crate::rpc::types::{JobSpec, JOB_LRU};
use ais_core::api::{PropSet, TcbMsg};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Recorded accesses kept at most (a cache with more cached objects falls
/// back to the files' times for the rest).
const MAX_TRACKED: usize = 1 << 20;
/// Candidates considered per pass (the oldest ones; memory stays bounded
/// whatever the number of cached objects).
const PASS: usize = 50_000;

/// Recent GETs of cached remote objects: uname → unix ns.
#[derive(Default)]
pub struct Access(Mutex<HashMap<String, i64>>);

/// Records a GET of `bck/obj` (a remote bucket's cached object).
pub fn touch(t: &Target, bck: &ais_core::Bck, obj: &str) {
    if let Ok(mut m) = t.lru.0.lock() {
        if m.len() < MAX_TRACKED || m.contains_key(&bck.obj_uname(obj)) {
            m.insert(bck.obj_uname(obj), ais_core::now_ns());
        }
    }
}

fn last_access(t: &Target, uname: &str) -> i64 {
    t.lru
        .0
        .lock()
        .ok()
        .and_then(|m| m.get(uname).copied())
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
/// enabled, and none runs yet.
pub fn check(t: &Arc<Target>) {
    let cfg = t.core.config.current();
    if !cfg.bool("lru.enabled") || !t.jobs.running(JOB_LRU).is_empty() {
        return;
    }
    let (used, total) = usage(t);
    if pct(used, total) > cfg.int("space.highwm") {
        let id = start(t, format!("lru-{}", ais_core::gen_id(10)));
        tracing::info!(node = %t.core.name, job = %id, used, total, "above the high watermark: LRU eviction started");
    }
}

/// Starts an LRU job here with id `id`; answers it.
pub fn start(t: &Arc<Target>, id: String) -> String {
    let spec = JobSpec {
        id,
        kind: JOB_LRU.into(),
        src: String::new(),
        dst: String::new(),
        msg: TcbMsg::default(),
        skip_unchanged: false,
        archive: None,
        smap: None,
    };
    start_local(t, spec).id().to_string()
}

/// Checks capacity every `lru.capacity_upd_time` (re-read each time).
pub async fn run_periodic(t: Arc<Target>) {
    loop {
        let every = t
            .core
            .config
            .current()
            .duration("lru.capacity_upd_time")
            .max(Duration::from_millis(100));
        tokio::time::sleep(every).await;
        if t.core.leaving.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        check(&t);
    }
}

/// The job: evict the least recently used cached remote objects until
/// usage is at or below `space.lowwm`. Nothing to do below `space.highwm`.
pub async fn run(t: &Arc<Target>, job: &Arc<TargetJob>) -> ApiResult<()> {
    let cfg = t.core.config.current();
    let (used, total) = usage(t);
    if pct(used, total) <= cfg.int("space.highwm") {
        return Ok(());
    }
    let low = (total as u128 * cfg.int("space.lowwm").max(0) as u128 / 100) as u64;
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
                .map_err(|e| crate::error::ApiError::internal(e.to_string()))?
                .map_err(|e| crate::error::storage(&t.core.name, bck, "", e))?;
                for e in &page.entries {
                    if e.flags & ais_core::api::ENTRY_FLAG_DIR != 0 {
                        continue;
                    }
                    let Ok(info) = t.store.head(bck, &e.name).await else {
                        continue;
                    };
                    let used_at = info.atime_ns.max(last_access(t, &bck.obj_uname(&e.name)));
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
        let mut victims = heap.into_sorted_vec();
        let evicted_any = !victims.is_empty();
        for (_, bi, name, size) in victims.drain(..) {
            if usage(t).0 <= low || job.is_aborted() {
                return Ok(());
            }
            let bck = &buckets[bi];
            match t.store.delete_copies(bck, &name).await {
                Ok(()) | Err(ais_storage::StorageError::NotFound) => {
                    if let Ok(mut m) = t.lru.0.lock() {
                        m.remove(&bck.obj_uname(&name));
                    }
                    job.done_one(size);
                }
                Err(e) => return Err(crate::error::storage(&t.core.name, bck, &name, e)),
            }
        }
        if !more || !evicted_any || usage(t).0 <= low {
            if usage(t).0 > low {
                tracing::warn!(node = %t.core.name, "LRU: nothing more to evict (remaining data is ais:// or used within lru.dont_evict_time)");
            }
            return Ok(());
        }
    }
}
