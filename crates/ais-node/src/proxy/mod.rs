//! The proxy (gateway) role: owns no data. Buckets and membership through
//! the primary, object requests redirected to their owner target, listings
//! merged from every target, and the control planes of ETLs and offline jobs.

pub mod archive;
pub mod buckets;
pub mod cluster;
pub mod config;
pub mod download;
pub mod dsort;
pub mod etl;
pub mod forward;
pub mod jobs;
pub mod lifecycle;
pub mod listing;
pub mod nbi;
pub mod objects;
pub mod remote;
pub mod role;
pub mod summary;

use crate::error::{ApiError, ApiResult};
use crate::state::{Member, NodeCore};
use ais_cluster::Primary;
use ais_core::meta::MetaSync;
use std::sync::Arc;

/// Largest control message a proxy reads (action messages, join requests).
pub const CONTROL_BODY_LIMIT: usize = 16 << 20;

pub struct Proxy {
    pub core: NodeCore,
    /// Set while this proxy is the primary ([`role`]).
    primary: std::sync::RwLock<Option<Arc<Primary>>>,
    /// The background work of this proxy's current role, aborted when the
    /// role changes ([`role`]).
    pub(crate) role_tasks: std::sync::Mutex<Vec<tokio::task::AbortHandle>>,
    /// Seconds the set of targets must stay unchanged before a rebalance
    /// (for the primary's rebalance watcher, whenever this proxy is it).
    pub rebalance_settle: std::time::Duration,
    /// Where each offline job runs.
    pub jobs: jobs::Registry,
    /// The rebalance started last (aborted when another starts).
    pub rebalance: std::sync::Mutex<Option<String>>,
    /// Set when a rebalance for the current active targets was started (or
    /// skipped on purpose) outside the membership watcher, which takes it.
    pub balanced: std::sync::Mutex<Option<Vec<String>>>,
    /// The last decommission/shutdown per node id and how it ended
    /// (`GET /v1/cluster?what=node_lifecycle`, `lifecycle::record`).
    pub lifecycle: std::sync::Mutex<std::collections::BTreeMap<String, serde_json::Value>>,
    /// Bucket summaries started here, and their results (`summary`).
    pub summaries: summary::Summaries,
    /// This proxy's member of the replicated control plane ([`role`]).
    pub control: std::sync::OnceLock<Arc<ais_cluster::ControlPlane>>,
}

impl Proxy {
    pub fn new(core: NodeCore, primary: Option<Arc<Primary>>, jobs: jobs::Registry) -> Self {
        Proxy {
            core,
            primary: std::sync::RwLock::new(primary),
            role_tasks: Default::default(),
            rebalance_settle: std::time::Duration::from_secs(5),
            jobs,
            rebalance: std::sync::Mutex::new(None),
            balanced: std::sync::Mutex::new(None),
            lifecycle: Default::default(),
            summaries: Default::default(),
            control: Default::default(),
        }
    }

    /// The primary's authority, while this proxy is the primary.
    pub fn primary(&self) -> ApiResult<Arc<Primary>> {
        self.primary_opt().ok_or_else(|| {
            ApiError::unavailable(format!(
                "{} is not the primary proxy; send this request to the primary",
                self.core.name
            ))
        })
    }

    /// Seconds the set of targets must stay unchanged before a rebalance.
    pub fn with_rebalance_settle(mut self, d: std::time::Duration) -> Self {
        self.rebalance_settle = d;
        self
    }

    pub fn primary_opt(&self) -> Option<Arc<Primary>> {
        self.primary.read().ok().and_then(|g| g.clone())
    }

    pub fn is_primary(&self) -> bool {
        self.primary.read().is_ok_and(|g| g.is_some())
    }

    pub(crate) fn set_primary(&self, pr: Option<Arc<Primary>>) {
        if let Ok(mut g) = self.primary.write() {
            *g = pr;
        }
    }
}

impl Member for Proxy {
    fn core(&self) -> &NodeCore {
        &self.core
    }
    /// Pushes, join and keepalive answers: a proxy in the control plane
    /// takes metadata from its log (in log order, the same on every
    /// proxy), so these are ignored once it runs, except the first map a
    /// joining proxy gets (committed metadata: the log's entries up to it
    /// are then skipped as not newer, and it serves at once).
    fn apply_sync(self: &Arc<Self>, sync: &MetaSync) -> ApiResult<()> {
        if self.control.get().is_some() && self.core.meta.smap().is_some() {
            return Ok(());
        }
        self.core.apply_meta(sync)?;
        Ok(())
    }
}
