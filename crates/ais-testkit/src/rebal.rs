//! Helpers for rebalance and lifecycle tests on top of [`crate::checks`]:
//! object contents checked by a GET+PUT client load that counts every
//! error, waiting for rebalance jobs, placement, what one target holds.

use crate::{checks, raw_http, Cluster};
use ais_client::{Client, JobStatus};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The content of object `name` (2-5 KiB, starts with the name).
pub fn content(name: &str) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.resize(2048 + name.len() * 13 % 3000, b'.');
    v
}

/// Rebalance jobs so far (one may run when the first targets join).
pub async fn rebalances(cl: &Client) -> usize {
    checks::rebalances(cl).await.map(|j| j.len()).unwrap_or(0)
}

/// Waits for more than `after` rebalance jobs to exist and none of them to
/// be running; returns the one that ended last (panics with every
/// rebalance's status after `timeout`).
pub async fn finished_rebalance(cl: &Client, after: usize, timeout: Duration) -> JobStatus {
    match checks::finished_rebalance(cl, after, timeout).await {
        Ok(j) => j,
        Err(e) => panic!("{e:#}: {:#?}", checks::rebalances(cl).await),
    }
}

/// Waits (up to a minute) for the new cluster's first rebalance to end
/// cleanly, so that a test's own join or leave is the next one.
pub fn settle(rt: &tokio::runtime::Runtime, url: &str) {
    if let Err(e) = rt.block_on(checks::settled(&Client::new(url), Duration::from_secs(60))) {
        panic!("{e:#}");
    }
}

/// The newest rebalance job (by start), if any.
pub async fn newest_rebalance(cl: &Client) -> Option<JobStatus> {
    checks::rebalances(cl)
        .await
        .ok()?
        .into_iter()
        .max_by_key(checks::start_time)
}

/// Every object is stored on its HRW owner, and only there (targets in
/// maintenance included: they must hold nothing).
pub fn assert_placed(c: &Cluster, bucket: &str, names: &[String]) {
    match checks::misplaced(c, bucket, names) {
        Ok(wrong) => assert!(wrong.is_empty(), "misplaced: {wrong:#?}"),
        Err(e) => panic!("placement check: {e:#}"),
    }
}

/// Names of `bucket`'s objects stored on the target at `url` (its own listing).
pub fn names_on(url: &str, bucket: &str) -> anyhow::Result<Vec<String>> {
    let (st, body) = raw_http(
        url,
        "GET",
        &format!("/v1/internal/list/{bucket}?limit=100000"),
        &[],
        b"",
    )?;
    anyhow::ensure!(st == 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(v["entries"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default())
}

/// How many objects of `bucket` the target at `url` stores.
pub fn count_on(url: &str, bucket: &str) -> anyhow::Result<usize> {
    Ok(names_on(url, bucket)?.len())
}

/// `clients` concurrent clients, each GETting the preloaded `names` (checking
/// the bytes) and PUTting a new object every fifth step, until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    pub errors: Arc<AtomicU64>,
    pub ops: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Load {
    pub fn start(
        rt: &tokio::runtime::Runtime,
        url: &str,
        bucket: &str,
        names: &[String],
        clients: usize,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (errors, ops) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let names = Arc::new(names.to_vec());
        let tasks = (0..clients)
            .map(|w| {
                let (stop, errors, ops, names) =
                    (stop.clone(), errors.clone(), ops.clone(), names.clone());
                let (url, bucket) = (url.to_string(), bucket.to_string());
                rt.spawn(async move {
                    let cl = Client::new(&url);
                    let mut i = w * 37;
                    let mut written = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let n = &names[i % names.len()];
                        match cl.get(&bucket, n).await {
                            Ok(b) if b.as_ref() == content(n).as_slice() => {}
                            Ok(_) => {
                                eprintln!("{n}: wrong bytes");
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                eprintln!("GET {n}: {e}");
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        if i % 5 == 0 {
                            let name = format!("new/{w}-{i}");
                            match cl.put_bytes(&bucket, &name, content(&name)).await {
                                Ok(_) => written.push(name),
                                Err(e) => {
                                    eprintln!("PUT {name}: {e}");
                                    errors.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                        ops.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                    written
                })
            })
            .collect();
        Load {
            stop,
            errors,
            ops,
            tasks,
        }
    }

    /// Stops the clients; returns the names they wrote, the error count and
    /// the number of operations.
    pub fn stop(self, rt: &tokio::runtime::Runtime) -> (Vec<String>, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in self.tasks {
            all.extend(rt.block_on(t).unwrap_or_default());
        }
        (
            all,
            self.errors.load(Ordering::Relaxed),
            self.ops.load(Ordering::Relaxed),
        )
    }
}
