//! What a target adds to `/metrics` at scrape time: capacity per mountpath
//! (`statvfs`) and the counters `ais-etl` already keeps per ETL.

use super::Target;
use crate::metrics::{statvfs, EtlSample, MpathCap};
use std::sync::Arc;

/// Capacity of every mountpath, now.
pub fn mountpaths(t: &Target) -> Vec<MpathCap> {
    t.store
        .mountpaths()
        .iter()
        .filter_map(|m| {
            let (total, used, avail) = statvfs(&m.path)?;
            Some(MpathCap {
                path: m.path.display().to_string(),
                total,
                used,
                avail,
            })
        })
        .collect()
}

/// The running ETLs' counters.
pub fn etls(t: &Target) -> Vec<EtlSample> {
    let mut names = t.etl.names();
    names.sort();
    names
        .into_iter()
        .filter_map(|name| {
            let s = t.etl.get(&name)?.stats(&t.core.id);
            let calls = (s.obj_count + s.err_count).max(1);
            Some(EtlSample {
                name,
                objs: s.obj_count,
                errors: s.err_count,
                in_bytes: s.in_bytes,
                out_bytes: s.out_bytes,
                ns_total: (s.mean_latency_ms * 1e6 * calls as f64) as u64,
                workers: s.workers,
                pids: s.worker_pids,
            })
        })
        .collect()
}

/// The whole exposition (statvfs runs on the blocking pool).
pub async fn render_metrics(t: &Arc<Target>) -> String {
    let t2 = t.clone();
    let mpaths = tokio::task::spawn_blocking(move || mountpaths(&t2))
        .await
        .unwrap_or_default();
    t.core.metrics.render(&mpaths, &etls(t))
}
