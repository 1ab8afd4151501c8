//! Bucket summaries: AIStore's `summary-bck` (`GET /v1/buckets/B`) and
//! bucket info (`HEAD /v1/buckets/B?presence=N`). Each request starts an
//! asynchronous summary (202 with its id); polls with that id answer 202
//! while it runs and 200 with the result once it is done. Every target
//! counts what it holds a page at a time; a remote bucket's backend is
//! listed for what it has beyond the cache (unless only cached objects were
//! asked for). A target that cannot be asked fails the summary, naming it:
//! never a partial count as a whole one.

use super::Proxy;
use crate::error::{ApiError, ApiResult};
use crate::rpc::{fan_out, types::TargetSummary};
use ais_core::Bck;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Finished summaries kept for their polls (the oldest go first).
const KEPT: usize = 256;
/// Summaries running at once.
const RUNNING: usize = 8;

#[derive(Default)]
pub struct Summaries(Mutex<BTreeMap<String, State>>);

enum State {
    Running,
    Done(Value),
    /// Why it failed.
    Failed(String),
}

/// What a summary covers.
pub struct Ask {
    pub prefix: String,
    /// A remote bucket's objects the cluster does not hold count too.
    pub remote: bool,
}

/// Starts a summary of `bck`; answers its id.
pub fn start(p: &Arc<Proxy>, bck: &Bck, ask: Ask) -> ApiResult<String> {
    p.core.bucket_props(bck)?;
    let id = format!("summary-{}", ais_core::gen_id(10));
    {
        let mut m = p
            .summaries
            .0
            .lock()
            .map_err(|_| ApiError::internal("summary registry poisoned"))?;
        // Each walks whole buckets on every target: a few at a time.
        let running = m.values().filter(|s| matches!(s, State::Running)).count();
        if running >= RUNNING {
            return Err(ApiError::unavailable(format!(
                "{RUNNING} bucket summaries are running: retry when one is done"
            )));
        }
        while m.len() >= KEPT {
            let done = m
                .iter()
                .find(|(_, s)| !matches!(s, State::Running))
                .map(|(k, _)| k.clone());
            match done {
                Some(k) => m.remove(&k),
                None => {
                    return Err(ApiError::unavailable(format!(
                        "{KEPT} bucket summaries are running: retry when some are done"
                    )))
                }
            };
        }
        m.insert(id.clone(), State::Running);
    }
    let (p, bck, key) = (p.clone(), bck.clone(), id.clone());
    tokio::spawn(async move {
        let state = match compute(&p, &bck, &ask).await {
            Ok(v) => State::Done(v),
            Err(e) => State::Failed(e.to_string()),
        };
        if let Ok(mut m) = p.summaries.0.lock() {
            m.insert(key, state);
        }
    });
    Ok(id)
}

/// The result of summary `id`: `None` while it runs.
pub fn poll(p: &Proxy, id: &str) -> ApiResult<Option<Value>> {
    let m = p
        .summaries
        .0
        .lock()
        .map_err(|_| ApiError::internal("summary registry poisoned"))?;
    match m.get(id) {
        None => Err(ApiError::NotFound(format!(
            "bucket summary \"{id}\" not found (unknown, or long finished)"
        ))),
        Some(State::Running) => Ok(None),
        Some(State::Done(v)) => Ok(Some(v.clone())),
        Some(State::Failed(e)) => Err(ApiError::unavailable(format!(
            "bucket summary {id} failed: {e}"
        ))),
    }
}

async fn compute(p: &Proxy, bck: &Bck, ask: &Ask) -> ApiResult<Value> {
    let props = p.core.bucket_props(bck)?;
    let targets = p.core.targets();
    if targets.is_empty() {
        return Err(ApiError::unavailable("the cluster has no targets"));
    }
    let per_target = fan_out(&targets, std::time::Duration::from_secs(3600), |t| {
        let (name, prefix) = (&bck.name, &ask.prefix);
        async move { p.core.rpc.bucket_summary(&t, name, prefix).await }
    })
    .await;
    let mut all = TargetSummary::default();
    all.held.min = u64::MAX;
    for (t, r) in per_target {
        let s = r.map_err(|e| {
            ApiError::unavailable(format!("{} could not be summarized: {e}", t.name()))
        })?;
        all.held.objs += s.held.objs;
        all.held.bytes += s.held.bytes;
        all.held.disk += s.held.disk;
        if s.held.objs > 0 {
            all.held.min = all.held.min.min(s.held.min);
        }
        all.held.max = all.held.max.max(s.held.max);
        all.disks += s.disks;
    }
    if all.held.objs == 0 {
        all.held.min = 0;
    }
    let (mut remote_objs, mut remote_bytes) = (0u64, 0u64);
    if ask.remote && props.is_remote_backed() {
        let b = crate::backend::Remote::for_bucket(&bck.name, &props)?;
        let mut after = String::new();
        loop {
            let (page, next) = b
                .list_page(crate::backend::http(), &ask.prefix, &after, None, 1000)
                .await?;
            remote_objs += page.len() as u64;
            remote_bytes += page.iter().map(|e| e.size).sum::<u64>();
            match (next, page.last()) {
                (Some(_), Some(last)) => after = last.name.clone(),
                _ => break,
            }
        }
    }
    let h = &all.held;
    Ok(json!({
        "name": bck.name,
        "provider": props.provider,
        "namespace": {"uuid": "", "name": ""},
        "ObjCount": {
            "obj_count_present": h.objs.to_string(),
            "obj_count_remote": remote_objs.to_string(),
        },
        "ObjSize": {
            "obj_min_size": h.min,
            "obj_avg_size": h.bytes.checked_div(h.objs).unwrap_or(0),
            "obj_max_size": h.max,
        },
        "TotalSize": {
            "size_on_disk": h.disk.to_string(),
            "size_all_present_objs": h.bytes.to_string(),
            "size_all_remote_objs": remote_bytes.to_string(),
            "total_disks_size": all.disks.to_string(),
        },
        "used_pct": (h.disk * 100).checked_div(all.disks).unwrap_or(0),
        "is_present": true,
    }))
}
