//! The proxy (gateway) role: owns no data. Buckets and membership through
//! the primary, object requests redirected to their owner target, listings
//! merged from every target, and the control planes of ETLs and offline jobs.

pub mod archive;
pub mod buckets;
pub mod cluster;
pub mod config;
pub mod etl;
pub mod forward;
pub mod jobs;
pub mod lifecycle;
pub mod listing;
pub mod nbi;
pub mod objects;
pub mod remote;
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
    /// Set on the primary proxy only.
    pub primary: Option<Arc<Primary>>,
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
}

impl Proxy {
    pub fn new(core: NodeCore, primary: Option<Arc<Primary>>, jobs: jobs::Registry) -> Self {
        Proxy {
            core,
            primary,
            jobs,
            rebalance: std::sync::Mutex::new(None),
            balanced: std::sync::Mutex::new(None),
            lifecycle: Default::default(),
            summaries: Default::default(),
        }
    }

    pub fn primary(&self) -> ApiResult<&Arc<Primary>> {
        self.primary.as_ref().ok_or_else(|| {
            ApiError::unavailable(format!(
                "{} is not the primary proxy; send this request to the primary",
                self.core.name
            ))
        })
    }
}

impl Member for Proxy {
    fn core(&self) -> &NodeCore {
        &self.core
    }
    fn apply_sync(self: &Arc<Self>, sync: &MetaSync) -> ApiResult<()> {
        self.core.apply_meta(sync).map(drop)
    }
}
