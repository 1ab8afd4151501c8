//! The primary proxy's authority over cluster metadata. Every change goes
//! through one async lock: bump version → commit through the control
//! plane's log (a majority of proxies has it) → push to every target and
//! wait for their answers (so a reply to the client means the whole cluster
//! knows, e.g. a new bucket accepts PUTs on every target).

use crate::{Change, ClusterError, DocChange, MetaStore, Replicator};
use ais_core::config::ClusterConfig;
use ais_core::meta::{
    Bmd, EtlMd, JoinReq, Keepalive, KeepaliveResp, MetaSync, NodeType, Smap, Snode,
};
use futures::future::BoxFuture;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct PrimaryConfig {
    /// A node silent for this long is removed from the cluster map.
    pub keepalive_timeout: Duration,
}

impl Default for PrimaryConfig {
    fn default() -> Self {
        Self {
            keepalive_timeout: Duration::from_secs(4),
        }
    }
}

/// A node that did not take a metadata push, and why.
#[derive(Debug, Clone)]
pub struct PushFailure {
    pub node: String,
    pub error: String,
}

/// How the primary reaches the other nodes. The node crate implements it
/// with its intra-cluster RPC layer, so this crate holds no HTTP client.
pub trait Transport: Send + Sync + 'static {
    /// Sends `sync` to every node in `to`, in parallel; returns the failures.
    fn push<'a>(&'a self, to: Vec<Snode>, sync: &'a MetaSync) -> BoxFuture<'a, Vec<PushFailure>>;
}

pub struct Primary {
    meta: MetaStore,
    me: Snode,
    /// `timeout.max_keepalive` in milliseconds (changed live).
    keepalive_ms: std::sync::atomic::AtomicU64,
    last_seen: Mutex<HashMap<String, Instant>>,
    change: tokio::sync::Mutex<()>,
    transport: Arc<dyn Transport>,
    log: Arc<dyn Replicator>,
}

impl Primary {
    /// The primary's authority over `meta`, committing through `log`
    /// (the replicated control plane, or [`crate::LocalLog`]). Nothing is
    /// written until [`Primary::take_office`].
    pub fn new(
        meta: MetaStore,
        me: Snode,
        cfg: PrimaryConfig,
        transport: Arc<dyn Transport>,
        log: Arc<dyn Replicator>,
    ) -> Arc<Self> {
        // Nodes already in the map get a full timeout to check in after a
        // restart or a change of primary.
        let now = Instant::now();
        let last_seen = meta.with_smap(|s| {
            s.map(|s| {
                s.tmap
                    .keys()
                    .chain(s.pmap.keys())
                    .map(|k| (k.clone(), now))
                    .collect()
            })
            .unwrap_or_default()
        });
        Arc::new(Self {
            meta,
            me,
            keepalive_ms: std::sync::atomic::AtomicU64::new(
                cfg.keepalive_timeout.as_millis().clamp(1, u64::MAX as u128) as u64,
            ),
            last_seen: Mutex::new(last_seen),
            change: tokio::sync::Mutex::new(()),
            transport,
            log,
        })
    }

    /// Becomes the primary of record: waits until this node has applied
    /// every change committed before (it may have been a follower a moment
    /// ago), then commits the cluster map naming it primary (creating the
    /// map, BMD and EtlMD on a new cluster's first start) and pushes it.
    ///
    /// `seed` may add documents right after (from the caught-up store:
    /// e.g. the first AuthN admin of a new cluster).
    pub async fn take_office(
        &self,
        seed: impl FnOnce(&MetaStore) -> Vec<DocChange>,
    ) -> Result<(), ClusterError> {
        let _g = self.change.lock().await;
        self.log.catch_up().await?;
        let docs = seed(&self.meta);
        let mut smap = self.meta.smap().unwrap_or_else(|| Smap {
            version: 0,
            uuid: ais_core::gen_id(12),
            creation_time: format!("{}", ais_core::now_ns()),
            tmap: BTreeMap::new(),
            pmap: BTreeMap::new(),
            proxy_si: self.me.clone(),
        });
        smap.pmap.insert(self.me.daemon_id.clone(), self.me.clone());
        smap.proxy_si = self.me.clone();
        smap.version += 1;
        let mut bmd = self.meta.bmd();
        let mut etlmd = self.meta.etlmd();
        let mut sync = MetaSync {
            smap: Some(smap.clone()),
            ..Default::default()
        };
        if bmd.uuid.is_empty() {
            bmd.uuid = smap.uuid.clone();
            bmd.version += 1;
            sync.bmd = Some(bmd);
        }
        if etlmd.uuid.is_empty() {
            etlmd.uuid = smap.uuid.clone();
            etlmd.version += 1;
            sync.etlmd = Some(etlmd);
        }
        self.log.write(sync.clone().into()).await?;
        self.write_docs(docs).await?;
        // Office does not wait on a node that cannot be reached (it may be
        // why there is a new primary): the rest catch up through their
        // keepalives, which any proxy forwards here.
        match tokio::time::timeout(Duration::from_secs(2), self.push(&sync)).await {
            Ok(failed) => {
                for f in failed {
                    tracing::warn!(node = %f.node, error = %f.error, "metadata push failed");
                }
            }
            Err(_) => tracing::warn!("new primary's map: some nodes did not answer within 2 s"),
        }
        // Every node's silence counts from the moment this primary is in
        // office, not from when it was elected (catching up and the first
        // commit may take a while).
        // Nodes learn of the new primary from the push just made and may
        // still be waiting on a keepalive to the old one: one more timeout.
        if let Ok(mut m) = self.last_seen.lock() {
            let now = Instant::now() + self.keepalive_timeout();
            for id in smap.tmap.keys().chain(smap.pmap.keys()) {
                m.insert(id.clone(), now);
            }
        }
        Ok(())
    }

    /// Runs `f` with the metadata lock held: no change is made meanwhile
    /// (a handover of the primary's role).
    pub async fn exclusive<R>(&self, f: impl std::future::Future<Output = R>) -> R {
        let _g = self.change.lock().await;
        f.await
    }

    pub fn meta(&self) -> &MetaStore {
        &self.meta
    }

    fn touch(&self, id: &str) {
        if let Ok(mut m) = self.last_seen.lock() {
            m.insert(id.to_string(), Instant::now());
        }
    }

    /// Adds (or updates) a node and returns all metadata for it.
    pub async fn join(&self, req: JoinReq) -> Result<MetaSync, ClusterError> {
        let _g = self.change.lock().await;
        let uuid = self.meta.cluster_uuid();
        if !req.cluster_uuid.is_empty() && req.cluster_uuid != uuid {
            return Err(ClusterError::ForeignNode {
                node: req.node.name(),
                theirs: req.cluster_uuid,
                ours: uuid,
            });
        }
        let mut node = req.node;
        node.id_digest = ais_core::hrw::digest(&node.daemon_id);
        self.touch(&node.daemon_id);
        let mut smap = self.meta.smap().ok_or(ClusterError::NoMap)?;
        let map = match node.daemon_type {
            NodeType::Target => &mut smap.tmap,
            NodeType::Proxy => &mut smap.pmap,
        };
        // Maintenance and decommission survive a restart: only the
        // lifecycle commands set or clear them.
        if let Some(old) = map.get(&node.daemon_id) {
            node.flags = old.flags;
        }
        if node.daemon_type == NodeType::Proxy {
            // A voting member of the control plane before it is in the map.
            self.log.add_voter(&node).await?;
        }
        if map.get(&node.daemon_id) != Some(&node) {
            tracing::info!(node = %node.name(), url = %node.url(), "node joined");
            map.insert(node.daemon_id.clone(), node);
            smap.version += 1;
            self.commit(MetaSync {
                smap: Some(smap),
                ..Default::default()
            })
            .await?;
        }
        Ok(self.meta.full())
    }

    pub async fn keepalive(&self, ka: Keepalive) -> KeepaliveResp {
        let known = self
            .meta
            .with_smap(|s| s.and_then(|s| s.get_node(&ka.daemon_id)).is_some());
        if !known {
            return KeepaliveResp::default();
        }
        self.touch(&ka.daemon_id);
        KeepaliveResp {
            known: true,
            sync: self.meta.newer_than(
                ka.smap_version,
                ka.bmd_version,
                ka.etlmd_version,
                ka.config_version,
            ),
        }
    }

    pub async fn update_bmd<F, E>(&self, f: F) -> Result<Bmd, E>
    where
        F: FnOnce(&mut Bmd) -> Result<(), E>,
        E: From<ClusterError>,
    {
        let _g = self.change.lock().await;
        let mut bmd = self.meta.bmd();
        f(&mut bmd)?;
        bmd.version += 1;
        self.commit(MetaSync {
            bmd: Some(bmd.clone()),
            ..Default::default()
        })
        .await?;
        Ok(bmd)
    }

    /// Changes the cluster map (node flags, removals) under the metadata
    /// lock and pushes it to every node in it. Answers the new map.
    pub async fn update_smap<F, E>(&self, f: F) -> Result<Smap, E>
    where
        F: FnOnce(&mut Smap) -> Result<(), E>,
        E: From<ClusterError>,
    {
        let _g = self.change.lock().await;
        let mut smap = self.meta.smap().ok_or(ClusterError::NoMap)?;
        f(&mut smap)?;
        smap.version += 1;
        let sync = MetaSync {
            smap: Some(smap.clone()),
            ..Default::default()
        };
        self.commit(sync).await?;
        Ok(smap)
    }

    /// Changes the cluster configuration under the metadata lock and pushes
    /// it to every node. Answers the new configuration.
    pub async fn update_config<F, E>(&self, f: F) -> Result<ClusterConfig, E>
    where
        F: FnOnce(&mut ClusterConfig) -> Result<(), E>,
        E: From<ClusterError>,
    {
        let _g = self.change.lock().await;
        let mut cfg = self.meta.config();
        f(&mut cfg)?;
        cfg.uuid = self.meta.cluster_uuid();
        cfg.version += 1;
        self.commit(MetaSync {
            config: Some(cfg.clone()),
            ..Default::default()
        })
        .await?;
        Ok(cfg)
    }

    /// Sets how long a node may stay silent before it leaves the map
    /// (`timeout.max_keepalive`, applied live).
    pub fn set_keepalive_timeout(&self, d: Duration) {
        let ms = d.as_millis().clamp(1, u64::MAX as u128) as u64;
        self.keepalive_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    fn keepalive_timeout(&self) -> Duration {
        Duration::from_millis(self.keepalive_ms.load(std::sync::atomic::Ordering::Relaxed))
    }

    pub async fn update_etlmd<F, E>(&self, f: F) -> Result<EtlMd, E>
    where
        F: FnOnce(&mut EtlMd) -> Result<(), E>,
        E: From<ClusterError>,
    {
        let _g = self.change.lock().await;
        let mut md = self.meta.etlmd();
        f(&mut md)?;
        md.version += 1;
        self.commit(MetaSync {
            etlmd: Some(md.clone()),
            ..Default::default()
        })
        .await?;
        Ok(md)
    }

    /// Decommissions proxy `id`: out of the control plane's group (it no
    /// longer counts in a majority), then out of the cluster map.
    pub async fn remove_proxy(&self, id: &str) -> Result<Smap, ClusterError> {
        let _g = self.change.lock().await;
        if id == self.me.daemon_id {
            return Err(ClusterError::Refused(
                "the primary cannot be decommissioned: hand its role over first \
                 (ais cluster set-primary)"
                    .into(),
            ));
        }
        // The change goes through a joint configuration that needs a
        // majority of the voters that stay as well: with one of them down
        // it would never commit, and every later change would wait on it.
        let limit = self.keepalive_timeout();
        let down: Vec<String> = self
            .log
            .voters()
            .into_iter()
            .filter(|v| *v != id && *v != self.me.daemon_id)
            .filter(|v| self.silent_for(v).is_none_or(|d| d > limit))
            .collect();
        if !down.is_empty() {
            return Err(ClusterError::Refused(format!(
                "proxy {} is a voter of the control plane and is not answering; removing {id} \
                 now would need it: bring it back (or decommission it first)",
                down.join(", ")
            )));
        }
        self.log.remove_member(id).await?;
        let mut smap = self.meta.smap().ok_or(ClusterError::NoMap)?;
        if smap.pmap.remove(id).is_none() {
            return Ok(smap);
        }
        smap.version += 1;
        self.commit(MetaSync {
            smap: Some(smap.clone()),
            ..Default::default()
        })
        .await?;
        if let Ok(mut m) = self.last_seen.lock() {
            m.remove(id);
        }
        Ok(smap)
    }

    /// Runs `f` on the store once every change committed before is applied
    /// here and no change is in flight (the metadata lock held), and only
    /// while this proxy still leads: a read no later change can precede.
    pub async fn read_barrier<T>(
        &self,
        f: impl FnOnce(&MetaStore) -> T,
    ) -> Result<T, ClusterError> {
        let _g = self.change.lock().await;
        self.log.catch_up().await?;
        Ok(f(&self.meta))
    }

    /// Changes the proxies' replicated documents under the metadata lock:
    /// `f` answers the changes (built with [`MetaStore::next_doc`] on the
    /// store as it is now) and a value; returns once a majority has them.
    /// Nothing is pushed (targets never get these documents).
    pub async fn update_docs<T, E>(
        &self,
        f: impl FnOnce(&MetaStore) -> Result<(Vec<DocChange>, T), E>,
    ) -> Result<T, E>
    where
        E: From<ClusterError>,
    {
        let _g = self.change.lock().await;
        let (docs, out) = f(&self.meta)?;
        self.write_docs(docs).await?;
        Ok(out)
    }

    /// Commits document changes (the caller holds the metadata lock) in an
    /// entry of their own: a proxy whose store got a newer map out of band
    /// (a joining proxy's first map) skips older metadata entries, and must
    /// not skip documents with them.
    async fn write_docs(&self, docs: Vec<DocChange>) -> Result<(), ClusterError> {
        if docs.is_empty() {
            return Ok(());
        }
        self.log
            .write(Change {
                sync: MetaSync::default(),
                docs,
            })
            .await
    }

    /// Commits `sync` (a majority of proxies has it), then pushes it to
    /// every node; a primary that lost its majority fails here.
    async fn commit(&self, sync: MetaSync) -> Result<(), ClusterError> {
        self.log.write(sync.clone().into()).await?;
        for f in self.push(&sync).await {
            tracing::warn!(node = %f.node, error = %f.error, "metadata push failed");
        }
        Ok(())
    }

    /// Sends `sync` to every node but this one, in parallel.
    pub async fn push(&self, sync: &MetaSync) -> Vec<PushFailure> {
        let proxies = !self.log.reaches_proxies();
        let nodes: Vec<Snode> = self.meta.with_smap(|s| {
            s.map(|s| {
                s.tmap
                    .values()
                    .chain(s.pmap.values().filter(|_| proxies))
                    .filter(|n| n.daemon_id != self.me.daemon_id)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
        });
        self.transport.push(nodes, sync).await
    }

    /// How long ago a node last checked in (None: never, or not in the map).
    pub fn silent_for(&self, id: &str) -> Option<Duration> {
        self.last_seen
            .lock()
            .ok()
            .and_then(|m| m.get(id).map(Instant::elapsed))
    }

    /// Nodes in the map that have been silent past the keepalive timeout.
    fn silent_nodes(&self) -> Vec<String> {
        let Ok(seen) = self.last_seen.lock() else {
            return Vec::new();
        };
        self.meta.with_smap(|s| {
            s.map(|s| {
                s.tmap
                    .keys()
                    .chain(s.pmap.keys())
                    .filter(|id| **id != self.me.daemon_id)
                    // A node in maintenance may be shut down on purpose: it
                    // stays in the map until stop-maintenance or decommission.
                    .filter(|id| {
                        s.tmap
                            .get(*id)
                            .is_none_or(|t| t.flags & ais_core::meta::NODE_FLAG_MAINTENANCE == 0)
                    })
                    .filter(|id| {
                        seen.get(*id)
                            .is_none_or(|t| t.elapsed() > self.keepalive_timeout())
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
        })
    }

    /// Removes nodes that stopped sending keepalives. Runs forever.
    pub async fn run_failure_detector(self: Arc<Self>) {
        const TICK: Duration = Duration::from_millis(500);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = Instant::now();
        loop {
            tick.tick().await;
            // This process did not run for a while (frozen, SIGSTOPped,
            // starved): the keepalives sent meanwhile are still queued, so
            // silence measured across the pause says nothing about the
            // nodes. Everyone gets a fresh timeout from now.
            let gap = last.elapsed();
            last = Instant::now();
            if gap > TICK * 3 {
                tracing::warn!(
                    paused_ms = gap.as_millis() as u64,
                    "the failure detector did not run for a while (this process was paused): \
                     restarting every node's keepalive timeout"
                );
                if let Ok(mut m) = self.last_seen.lock() {
                    let now = Instant::now();
                    for t in m.values_mut() {
                        *t = now;
                    }
                }
                continue;
            }
            if self.silent_nodes().is_empty() {
                continue;
            }
            let _g = self.change.lock().await;
            // Decide under the lock: a metadata change may have held it for
            // a while, and keepalives that arrived meanwhile count.
            let dead = self.silent_nodes();
            if dead.is_empty() {
                continue;
            }
            let Some(mut smap) = self.meta.smap() else {
                continue;
            };
            for id in &dead {
                tracing::warn!(node = %id, "no keepalive: removing from cluster map");
                smap.tmap.remove(id);
                smap.pmap.remove(id);
            }
            smap.version += 1;
            if let Err(e) = self
                .commit(MetaSync {
                    smap: Some(smap),
                    ..Default::default()
                })
                .await
            {
                tracing::error!(error = %e, "failed to commit cluster map");
            }
        }
    }
}
