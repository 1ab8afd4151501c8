//! Building blocks for loss and rebalance tests, the same on loopback and in
//! multi-host mode ([`crate::netns`]): deterministic object contents, PUT
//! and read-back of a set of names, waiting for a rebalance job, and where
//! objects are stored. Errors name the object and the node.

use crate::{raw_http, Cluster};
use ais_client::{Client, JobStatus};
use ais_core::meta::Smap;
use ais_core::Bck;
use anyhow::{bail, Context};
use std::time::{Duration, Instant};

/// A tokio runtime for a test's client calls (two worker threads).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Files of `bucket`'s objects under `dir` (a target's data dir or one of
/// its mountpaths): main copies (`@ais/<bucket>/...`) and mirrors
/// (`@mirror/<bucket>/...`).
pub fn object_files(dir: &std::path::Path, bucket: &str) -> Vec<std::path::PathBuf> {
    let needle = format!("/{bucket}/");
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().contains(&needle) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Deterministic content of object `name`, generation `gen` (1 to 9 KiB).
pub fn content(name: &str, gen: u32) -> Vec<u8> {
    let seed = xxhash_rust::xxh64::xxh64(name.as_bytes(), u64::from(gen));
    let len = 1024 + (seed % 8192) as usize;
    (0..len)
        .map(|i| (seed.wrapping_add(i as u64 * 31) >> 7) as u8)
        .collect()
}

/// `n` object names under `prefix`.
pub fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}/{i:04}")).collect()
}

/// Creates `ais://bucket` with `mirror.copies = copies` (every object on
/// that many of a target's mountpaths).
pub async fn create_mirrored(cl: &Client, bucket: &str, copies: u32) -> anyhow::Result<()> {
    cl.create_bucket(bucket).await?;
    let props = serde_json::json!({"mirror": {"enabled": true, "copies": copies}});
    cl.set_bucket_props(bucket, props)
        .await
        .with_context(|| format!("mirror {bucket}"))?;
    Ok(())
}

/// PUTs [`content`]`(name, gen)` for every name.
pub async fn put_all(cl: &Client, bucket: &str, names: &[String], gen: u32) -> anyhow::Result<()> {
    for n in names {
        cl.put_bytes(bucket, n, content(n, gen))
            .await
            .with_context(|| format!("PUT {bucket}/{n}"))?;
    }
    Ok(())
}

/// GETs every name and compares with [`content`]`(name, gen)`. An error is
/// retried until `within` has passed (a restarted target may still be
/// joining); wrong bytes fail at once.
pub async fn read_back(
    cl: &Client,
    bucket: &str,
    names: &[String],
    gen: u32,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    for n in names {
        loop {
            match cl.get(bucket, n).await {
                Ok(b) if b.as_ref() == content(n, gen).as_slice() => break,
                Ok(b) => bail!("GET {bucket}/{n}: wrong bytes ({} bytes)", b.len()),
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => bail!("GET {bucket}/{n}: {e}"),
            }
        }
    }
    Ok(())
}

/// Rebalance jobs the proxy knows of.
pub async fn rebalances(cl: &Client) -> anyhow::Result<Vec<JobStatus>> {
    Ok(cl
        .jobs()
        .await?
        .into_iter()
        .filter(|j| j.kind == "rebalance")
        .collect())
}

/// A job's start (Unix ns; 0 if not reported).
pub fn start_time(j: &JobStatus) -> i64 {
    j.extra
        .get("start_time")
        .and_then(|v| v.as_i64())
        .unwrap_or(0)
}

/// Waits until the rebalance a new cluster starts when its first targets
/// join (or its retry, when a target was down at the time) has finished
/// cleanly and none runs: a test that counts the rebalances of a later
/// join must not mistake that one for its own.
pub async fn settled(cl: &Client, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let jobs = rebalances(cl).await?;
        let newest = jobs.iter().max_by_key(|j| start_time(j));
        if jobs.iter().all(|j| j.end_time != 0) && newest.is_some_and(|j| !j.aborted) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("no clean rebalance, or one still running, after {within:?}: {jobs:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until more than `after` rebalance jobs exist, none is running and
/// the newest one ran on target `id` (a rebalance started just before that
/// target joined is not the one its join needs); returns the jobs after
/// the first `after`, oldest first.
pub async fn rebalanced_onto(
    cl: &Client,
    after: usize,
    id: &str,
    within: Duration,
) -> anyhow::Result<Vec<JobStatus>> {
    let deadline = Instant::now() + within;
    loop {
        let mut jobs = rebalances(cl).await?;
        jobs.sort_by_key(start_time);
        if jobs.len() > after && jobs.iter().all(|j| j.end_time != 0) {
            if let Some(newest) = jobs.last() {
                let snaps = cl.job_snaps(&newest.uuid).await.unwrap_or_default();
                if snaps.contains_key(id) {
                    return Ok(jobs.split_off(after));
                }
            }
        }
        if Instant::now() > deadline {
            bail!(
                "no finished rebalance on t[{id}] after {within:?} (had {after} before): {jobs:#?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until more than `after` rebalance jobs exist and none is running;
/// returns the one that ended last.
pub async fn finished_rebalance(
    cl: &Client,
    after: usize,
    within: Duration,
) -> anyhow::Result<JobStatus> {
    let deadline = Instant::now() + within;
    loop {
        let jobs = rebalances(cl).await?;
        if jobs.len() > after && jobs.iter().all(|j| j.end_time != 0) {
            if let Some(j) = jobs.into_iter().max_by_key(|j| j.end_time) {
                return Ok(j);
            }
        }
        if Instant::now() > deadline {
            bail!("no finished rebalance after {within:?} (had {after} before)");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Objects of `names` not stored on their HRW owner alone (per the proxy's
/// current map; targets in maintenance are asked too and must hold
/// nothing), each with where it was found.
pub fn misplaced(c: &Cluster, bucket: &str, names: &[String]) -> anyhow::Result<Vec<String>> {
    let smap: Smap = serde_json::from_value(c.smap()?)?;
    let bck = Bck::ais(bucket);
    let mut out = Vec::new();
    for n in names {
        let owner = smap
            .owner(&bck.obj_uname(n))
            .context("no targets in the map")?;
        let mut held_by = Vec::new();
        for t in smap.tmap.values() {
            let path = format!("/v1/internal/objattrs/{bucket}/{n}");
            let (st, _) = raw_http(t.url(), "GET", &path, &[], b"")?;
            match st {
                200 => held_by.push(t.name()),
                404 => {}
                other => bail!("{bucket}/{n} on {}: HTTP {other}", t.name()),
            }
        }
        if held_by != [owner.name()] {
            out.push(format!("{n}: owner {}, held by {held_by:?}", owner.name()));
        }
    }
    Ok(out)
}

/// Every node's URL in the proxy's map: `(daemon id, url)`, proxies first.
pub fn node_urls(c: &Cluster) -> anyhow::Result<Vec<(String, String)>> {
    let smap: Smap = serde_json::from_value(c.smap()?)?;
    Ok(smap
        .pmap
        .values()
        .chain(smap.tmap.values())
        .map(|n| (n.daemon_id.clone(), n.url().to_string()))
        .collect())
}
