//! What every node has, whatever its role: identity, the persisted cluster
//! metadata, the RPC client, and membership (join the primary, keepalives,
//! rejoin). Role-specific state lives in `proxy::Proxy` and `target::Target`;
//! both implement [`Member`] so the membership loop can hand them new
//! metadata.

use crate::error::{ApiError, ApiResult};
use crate::http::{empty, json_ok, Ctx, Res};
use crate::rpc::{Dest, Rpc};
use ais_cluster::MetaStore;
use ais_core::meta::{JoinReq, Keepalive, MetaSync, NodeType, Snode};
use anyhow::{bail, Context};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct NodeCore {
    pub id: String,
    pub kind: NodeType,
    pub snode: Snode,
    /// `p[ID]` / `t[ID]`, used in every message a node writes.
    pub name: String,
    pub meta: MetaStore,
    pub rpc: Rpc,
    /// Primary URL (every node but the primary).
    pub join_url: Option<String>,
    pub joined: AtomicBool,
    /// Request/connection counters, rendered at `GET /metrics`.
    pub metrics: crate::metrics::Metrics,
    /// Set by `shutdown-node`/`decommission-node`: no more keepalives or
    /// rejoins, the process is about to exit.
    pub leaving: AtomicBool,
    /// Set once the process is on its way out (SIGTERM, shutdown): what
    /// stops from here on stops on purpose.
    pub exiting: AtomicBool,
    /// Notified to make the node exit cleanly (as on SIGTERM).
    pub shutdown: tokio::sync::Notify,
    /// On-demand catch-ups with the primary ([`sync_now`]).
    pub sync_gate: SyncGate,
    /// The node's effective configuration (cluster's and its own overrides).
    pub config: crate::config::NodeConfig,
    /// When the primary last answered a keepalive (every node but the
    /// primary): a non-primary proxy does not forward to a silent one.
    pub primary_seen: std::sync::Mutex<Option<std::time::Instant>>,
}

/// Catching up with the primary on demand (a request named a bucket this
/// node does not know yet) one at a time: callers that arrive while one
/// runs share the next one, which starts after they came. A flood of such
/// requests (a client naming missing buckets, with `pid` or `ais_hop` in
/// the query) costs the primary one keepalive at a time, not one each.
#[derive(Default)]
pub struct SyncGate {
    /// Catch-ups started so far.
    started: std::sync::atomic::AtomicU64,
    /// The number of the last one finished, and whether it brought news.
    last: tokio::sync::Mutex<(u64, bool)>,
}

impl SyncGate {
    /// Runs `sync`, or answers with the outcome of one that started after
    /// this call did.
    pub async fn run<F, Fut>(&self, sync: F) -> ApiResult<bool>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = ApiResult<bool>>,
    {
        let arrived = self.started.load(Ordering::SeqCst);
        let mut last = self.last.lock().await;
        if last.0 > arrived {
            return Ok(last.1);
        }
        let n = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let res = sync().await;
        *last = (n, matches!(res, Ok(true)));
        res
    }
}

impl NodeCore {
    pub fn new(
        id: String,
        snode: Snode,
        meta: MetaStore,
        join_url: Option<String>,
        config: crate::config::NodeConfig,
    ) -> anyhow::Result<Self> {
        let metrics = crate::metrics::Metrics::new(snode.daemon_type == NodeType::Proxy, &id);
        Ok(NodeCore {
            name: snode.name(),
            kind: snode.daemon_type,
            id,
            snode,
            meta,
            rpc: Rpc::new()?,
            metrics,
            leaving: AtomicBool::new(false),
            exiting: AtomicBool::new(false),
            shutdown: tokio::sync::Notify::new(),
            sync_gate: SyncGate::default(),
            primary_seen: std::sync::Mutex::new(None),
            config,
            joined: AtomicBool::new(join_url.is_none()),
            join_url: join_url.map(|u| u.trim_end_matches('/').to_string()),
        })
    }

    /// Leaves the cluster: stops keepalives and rejoins, then exits the
    /// process cleanly (in-flight requests get the usual grace period).
    pub fn leave(&self) {
        self.leaving.store(true, Ordering::Relaxed);
        self.shutdown.notify_one();
    }

    pub fn is_joined(&self) -> bool {
        self.joined.load(Ordering::Relaxed)
    }

    /// The primary's URL: the one the cluster map names, unless that is this
    /// node; else the one it was started with (`--join`). `None` on a
    /// primary with no map naming another.
    pub fn primary_url(&self) -> Option<String> {
        self.meta
            .with_smap(|s| {
                s.filter(|s| s.proxy_si.daemon_id != self.id)
                    .map(|s| s.proxy_si.url().to_string())
            })
            .or_else(|| self.join_url.clone())
    }

    /// How long since the primary last answered a keepalive (`None`: never
    /// yet, or this node is the primary).
    pub fn primary_silent_for(&self) -> Option<std::time::Duration> {
        self.primary_seen
            .lock()
            .ok()
            .and_then(|s| s.map(|t| t.elapsed()))
    }

    /// Active targets in the current cluster map.
    pub fn targets(&self) -> Vec<Snode> {
        self.meta.with_smap(|s| {
            s.map(|s| s.active_targets().cloned().collect())
                .unwrap_or_default()
        })
    }

    /// The HRW owner of `uname` (`bucket`'s object) in the current map.
    pub fn owner(&self, uname: &str) -> Option<Snode> {
        self.owner_with(uname, Snode::clone)
    }

    /// What `f` takes from the owner of `uname`, without copying the node
    /// (every GET and redirect asks).
    pub fn owner_with<R>(&self, uname: &str, f: impl FnOnce(&Snode) -> R) -> Option<R> {
        self.meta
            .with_smap(|s| s.and_then(|s| s.owner(uname)).map(f))
    }

    /// `/v1/health`: 200 once this node is in the cluster.
    pub fn health(&self, ctx: &Ctx) -> Res {
        // `prr`: "primary ready for rebalance" (the SDK's is_ready): this
        // node answers once it is part of the cluster, as for a plain probe.
        ctx.query
            .reject_unknown("a health probe", &["prr", "cii"])?;
        if self.is_joined() {
            Ok(empty(StatusCode::OK))
        } else {
            Err(ApiError::unavailable(format!(
                "{} is starting: not joined the cluster yet",
                self.name
            )))
        }
    }

    /// `/v1/daemon?what=smap|bmd|etlmd|snode`.
    pub fn daemon_info(&self, ctx: &Ctx) -> Res {
        match ctx.query.get("what").unwrap_or("") {
            "smap" => json_ok(
                &self
                    .meta
                    .smap()
                    .ok_or_else(|| ApiError::unavailable("no cluster map yet"))?,
            ),
            "bmd" => json_ok(&self.meta.bmd()),
            "etlmd" => json_ok(&self.meta.etlmd()),
            "snode" => json_ok(&self.snode),
            "config" => self.config.show(&self.meta),
            other => Err(ApiError::bad_request(format!(
                "unsupported what=\"{other}\" (supported: smap, bmd, etlmd, snode, config)"
            ))),
        }
    }

    /// Bucket properties from the BMD, or 404.
    /// A bucket's props. Bucket names are unique across providers here, so
    /// a name finds its bucket; a request that names a remote provider
    /// (`s3://b`) does not find an `ais://` bucket of that name.
    pub fn bucket_props(&self, bck: &ais_core::Bck) -> ApiResult<ais_core::meta::BucketProps> {
        self.meta
            .with_bmd(|b| b.buckets.get(&bck.name).cloned())
            .filter(|p| bck.provider == "ais" || p.provider == bck.provider)
            .ok_or_else(|| ApiError::bucket_not_found(bck))
    }

    /// The bucket `name` with its provider from the BMD (`ais` if unknown):
    /// placement hashes the provider, so internal walks must use the same
    /// one as clients' requests.
    pub fn bck(&self, name: impl Into<String>) -> ais_core::Bck {
        let name = name.into();
        let provider = self
            .meta
            .with_bmd(|b| b.buckets.get(&name).map(|p| p.provider.clone()))
            .unwrap_or_else(|| "ais".into());
        ais_core::Bck {
            name,
            provider,
            namespace: Default::default(),
        }
    }

    pub fn apply_meta(&self, sync: &MetaSync) -> ApiResult<ais_cluster::Applied> {
        let applied = self
            .meta
            .apply(sync)
            .map_err(|e| ApiError::Conflict(format!("{}: {e}", self.name)))?;
        if applied.config.is_some() {
            self.config.cluster_changed(&self.meta.config());
        }
        Ok(applied)
    }
}

/// `what=sysinfo`: the host's CPUs, memory and load, and this process's
/// memory (AIStore's `sysinfo` fields where they match).
pub fn sysinfo() -> serde_json::Value {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = |key: &str| -> u64 {
        meminfo
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let load: Vec<f64> = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect();
    let rss = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024;
    serde_json::json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "mem_total": kib("MemTotal:"),
        "mem_free": kib("MemFree:"),
        "mem_available": kib("MemAvailable:"),
        "proc_mem_rss": rss,
        "load_avg": {
            "one": load.first().copied().unwrap_or(0.0),
            "five": load.get(1).copied().unwrap_or(0.0),
            "fifteen": load.get(2).copied().unwrap_or(0.0),
        },
    })
}

/// A node's role-specific half: reacts to metadata it is sent.
pub trait Member: Send + Sync + 'static {
    fn core(&self) -> &NodeCore;
    /// Applies pushed (or join/keepalive-returned) metadata.
    fn apply_sync(self: &Arc<Self>, sync: &MetaSync) -> ApiResult<()>;
    /// Called after every (re)join.
    fn joined(self: &Arc<Self>) {}
}

#[derive(Serialize, Deserialize)]
struct Identity {
    id: String,
    role: String,
}

/// The node id kept in `<data>/node.json` (created on first start); a data
/// directory never changes role.
pub fn load_identity(data: &Path, role: &str) -> anyhow::Result<String> {
    let path = data.join("node.json");
    if let Ok(raw) = std::fs::read(&path) {
        let ident: Identity = serde_json::from_slice(&raw)
            .with_context(|| format!("corrupted {}", path.display()))?;
        if ident.role != role {
            bail!(
                "data directory {} belongs to a {} node; refusing to start it as a {role}",
                data.display(),
                ident.role
            );
        }
        return Ok(ident.id);
    }
    let id = ais_core::gen_id(8);
    let raw = serde_json::to_vec(&Identity {
        id: id.clone(),
        role: role.into(),
    })?;
    std::fs::write(&path, raw).with_context(|| format!("write {}", path.display()))?;
    Ok(id)
}

async fn join<M: Member>(m: &Arc<M>, url: &str) -> ApiResult<()> {
    let core = m.core();
    let req = JoinReq {
        node: core.snode.clone(),
        cluster_uuid: core.meta.cluster_uuid(),
    };
    let sync = core.rpc.join(&Dest::primary(url), &req).await?;
    m.apply_sync(&sync)?;
    m.joined();
    Ok(())
}

async fn keepalive<M: Member>(m: &Arc<M>, url: &str) -> ApiResult<bool> {
    let core = m.core();
    let (s, b, e) = core.meta.versions();
    let ka = Keepalive {
        daemon_id: core.id.clone(),
        smap_version: s,
        bmd_version: b,
        etlmd_version: e,
        config_version: core.meta.config_version(),
    };
    let kr = core.rpc.keepalive(&Dest::primary(url), &ka).await?;
    if let Ok(mut seen) = core.primary_seen.lock() {
        *seen = Some(std::time::Instant::now());
    }
    if kr.known {
        m.apply_sync(&kr.sync)?;
    }
    Ok(kr.known)
}

/// Asks the primary for metadata newer than ours right now (a request named
/// a bucket we do not know yet: the proxy may be a push ahead of us).
/// `Ok(false)`: nothing to ask (this node is the primary).
pub async fn sync_now<M: Member>(m: &Arc<M>) -> ApiResult<bool> {
    let core = m.core();
    match core.primary_url() {
        Some(url) => core.sync_gate.run(|| keepalive(m, &url)).await,
        None => Ok(false),
    }
}

/// Joins the primary (retrying until it answers), then sends keepalives;
/// rejoins whenever the primary no longer knows this node.
pub async fn membership_loop<M: Member>(m: Arc<M>) {
    let core = m.core();
    let mut attempts = 0u32;
    // Consecutive failures to reach the primary: every other try goes to
    // the other address we know (the map's may be stale after a primary
    // restarted elsewhere; `--join`'s after a handover).
    let mut fails = 0u32;
    loop {
        if core.leaving.load(Ordering::Relaxed) {
            return;
        }
        // Joined: the primary the cluster map names (it may have been
        // handed over since); not yet: the one it was started with.
        let named = core.primary_url();
        let (first, other) = if core.is_joined() {
            (named, core.join_url.clone())
        } else {
            (core.join_url.clone().or(named.clone()), named)
        };
        // After that, every other proxy in the map: any of them forwards
        // to the primary it knows (after a failover, the map here may name
        // one that is gone).
        let mut candidates: Vec<String> = first.iter().chain(other.iter()).cloned().collect();
        core.meta.with_smap(|s| {
            for p in s.map(|s| s.pmap.values()).into_iter().flatten() {
                let u = p.url().to_string();
                if p.daemon_id != core.id && !candidates.contains(&u) {
                    candidates.push(u);
                }
            }
        });
        let Some(url) = candidates
            .get(fails as usize % candidates.len().max(1))
            .cloned()
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        if !core.is_joined() {
            match join(&m, &url).await {
                Ok(()) => {
                    tracing::info!(node = %core.name, primary = %url, "joined cluster");
                    if let Ok(mut seen) = core.primary_seen.lock() {
                        *seen = Some(std::time::Instant::now());
                    }
                    core.joined.store(true, Ordering::Relaxed);
                    attempts = 0;
                    fails = 0;
                }
                Err(e) => {
                    attempts += 1;
                    fails += 1;
                    let refused = e.status() == axum::http::StatusCode::CONFLICT;
                    if attempts % 25 == 1 {
                        if refused {
                            tracing::error!("cannot join: {e}");
                        } else {
                            tracing::warn!(primary = %url, error = %e, "cannot join yet; retrying");
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        match keepalive(&m, &url).await {
            Ok(true) => fails = 0,
            Ok(false) => {
                tracing::warn!("primary does not know this node: rejoining");
                core.joined.store(false, Ordering::Relaxed);
            }
            Err(e) => {
                fails += 1;
                tracing::debug!(error = %e, "keepalive failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn callers_during_a_catch_up_share_the_next_one() {
        let gate = Arc::new(SyncGate::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Notify::new());
        let sync = |calls: Arc<AtomicUsize>, release: Arc<tokio::sync::Notify>| async move {
            calls.fetch_add(1, Ordering::SeqCst);
            release.notified().await;
            Ok(true)
        };
        // The first caller's catch-up is held open while 99 more arrive.
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let (g, c, r) = (gate.clone(), calls.clone(), release.clone());
            tasks.push(tokio::spawn(async move { g.run(|| sync(c, r)).await }));
            tokio::task::yield_now().await;
        }
        while calls.load(Ordering::SeqCst) < 1 {
            tokio::task::yield_now().await;
        }
        release.notify_one();
        // The next one (for all 99 who came during the first) runs once.
        while calls.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        release.notify_one();
        // Each caller running its own would leave the rest waiting here.
        let all = futures::future::join_all(tasks);
        let done = tokio::time::timeout(Duration::from_secs(5), all).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        for r in done.expect("every caller answered") {
            assert!(r.unwrap().unwrap());
        }
        // A caller after they all finished gets a catch-up of its own (an
        // error goes to it as is).
        let failed = gate
            .run(|| async { Err(ApiError::unavailable("primary down")) })
            .await;
        assert!(failed.is_err());
        let (g, c, r) = (gate.clone(), calls.clone(), release.clone());
        let later = tokio::spawn(async move { g.run(|| sync(c, r)).await });
        while calls.load(Ordering::SeqCst) < 3 {
            tokio::task::yield_now().await;
        }
        release.notify_one();
        assert!(later.await.unwrap().unwrap());
    }

    #[tokio::test]
    async fn a_caller_that_hangs_up_leaves_the_gate_usable() {
        let gate = SyncGate::default();
        let hung = tokio::time::timeout(
            Duration::from_millis(20),
            gate.run(std::future::pending::<ApiResult<bool>>),
        )
        .await;
        assert!(hung.is_err());
        assert!(gate.run(|| async { Ok(true) }).await.unwrap());
    }
}
