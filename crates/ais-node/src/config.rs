//! A node's configuration: its effective values (defaults, the flags it
//! was started with, the cluster's overrides, its own), where its own
//! overrides are kept (`meta/config.local.json`), and the node-level calls
//! `GET /v1/daemon?what=config`, `PUT /v1/daemon/set-config?k=v` and
//! `PUT /v1/daemon {"action": "reset-config"}`. The cluster-wide calls are
//! the primary's (`proxy::config`).
//!
//! Consumers read [`NodeConfig::current`] when they act (no restart
//! needed) or [`NodeConfig::subscribe`] to react to a change.

use crate::error::{ApiError, ApiResult};
use crate::http::{empty, json_ok, Ctx, Res};
use ais_cluster::MetaStore;
use ais_core::api::ActMsg;
use ais_core::config::{ClusterConfig, Config, Updates};
use axum::http::{Method, StatusCode};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub struct NodeConfig {
    /// Values from the node's flags (e.g. `--keepalive-timeout`), under
    /// the cluster's and the node's overrides.
    base: Updates,
    /// This node's own overrides.
    local: Mutex<Updates>,
    /// Where `local` is kept.
    path: PathBuf,
    tx: tokio::sync::watch::Sender<Arc<Config>>,
}

impl NodeConfig {
    /// Loads the node's overrides from `meta_dir`; `cluster` is the
    /// persisted cluster configuration.
    pub fn open(meta_dir: PathBuf, base: Updates, cluster: &ClusterConfig) -> Self {
        let path = meta_dir.join("config.local.json");
        let local: Updates = std::fs::read(&path)
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok())
            .unwrap_or_default();
        let cfg = compose(&base, cluster, &local);
        let (tx, _) = tokio::sync::watch::channel(Arc::new(cfg));
        Self {
            base,
            local: Mutex::new(local),
            path,
            tx,
        }
    }

    /// The node's effective configuration now.
    pub fn current(&self) -> Arc<Config> {
        self.tx.borrow().clone()
    }

    /// Sees every change from now on.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<Config>> {
        self.tx.subscribe()
    }

    fn local(&self) -> Updates {
        self.local.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The cluster's configuration changed (a push, a join, this primary's
    /// own change): recompute.
    pub fn cluster_changed(&self, cluster: &ClusterConfig) {
        self.tx
            .send_replace(Arc::new(compose(&self.base, cluster, &self.local())));
    }

    /// The cluster-wide values with `updates` on top, for validating a
    /// cluster change before it is committed.
    pub fn preview_cluster(&self, cluster: &ClusterConfig) -> Config {
        compose(&self.base, cluster, &Updates::new())
    }

    /// Sets (or, with `None`, clears) this node's own overrides.
    fn set_local(
        &self,
        cluster: &ClusterConfig,
        updates: Option<Updates>,
        persist: bool,
    ) -> ApiResult<()> {
        let mut local = self
            .local
            .lock()
            .map_err(|_| ApiError::internal("configuration lock poisoned"))?;
        let mut next = match &updates {
            Some(_) => local.clone(),
            None => Updates::new(),
        };
        next.extend(updates.unwrap_or_default());
        let cfg = compose(&self.base, cluster, &next);
        cfg.validate()?;
        if persist {
            ais_cluster::save_json(&self.path, &next)
                .map_err(|e| ApiError::internal(format!("saving the node's configuration: {e}")))?;
        }
        *local = next;
        drop(local);
        self.tx.send_replace(Arc::new(cfg));
        Ok(())
    }
}

fn compose(base: &Updates, cluster: &ClusterConfig, local: &Updates) -> Config {
    let mut lower = base.clone();
    lower.extend(cluster.overrides.clone());
    Config::compose(&lower, local, cluster.version)
}

/// The `key=value` pairs of a set-config query (all but `transient`).
pub fn query_updates(ctx: &Ctx, node_level: bool) -> ApiResult<(Updates, bool)> {
    let transient = match ctx.query.get("transient") {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "transient=\"{v}\": expected true or false"
            )))
        }
    };
    let pairs = ctx
        .query
        .0
        .iter()
        .filter(|(k, _)| k != "transient")
        .map(|(k, v)| (k.as_str(), v.as_str()));
    Ok((
        ais_core::config::parse_updates(pairs, node_level)?,
        transient,
    ))
}

/// The updates in a `set-config` action's value (AIStore's `ConfigToSet`).
pub fn msg_updates(msg: &ActMsg, node_level: bool) -> ApiResult<Updates> {
    let pairs = ais_core::config::flatten(&msg.value)?;
    Ok(ais_core::config::parse_updates(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        node_level,
    )?)
}

impl NodeConfig {
    /// `GET /v1/daemon?what=config`: this node's effective configuration.
    pub fn show(&self, meta: &MetaStore) -> Res {
        json_ok(&self.current().to_json(&meta.cluster_uuid()))
    }

    /// `PUT /v1/daemon/set-config?k=v[&transient=true]`: this node only.
    pub fn set_node(&self, meta: &MetaStore, ctx: &Ctx) -> Res {
        ctx.expect_method(&[Method::PUT])?;
        let (updates, transient) = query_updates(ctx, true)?;
        self.set_local(&meta.config(), Some(updates.clone()), !transient)?;
        tracing::info!(?updates, transient, "node configuration changed");
        Ok(empty(StatusCode::OK))
    }

    /// `PUT /v1/daemon` with a `set-config` or `reset-config` action; `None`
    /// when the action is another one.
    pub fn node_action(&self, meta: &MetaStore, ctx: &Ctx, msg: &ActMsg) -> Option<Res> {
        let res = match msg.action.as_str() {
            "set-config" => (|| {
                ctx.query.reject_unknown("set-config", &["transient"])?;
                let updates = msg_updates(msg, true)?;
                let transient = ctx.query.get("transient") == Some("true");
                self.set_local(&meta.config(), Some(updates), !transient)?;
                Ok(empty(StatusCode::OK))
            })(),
            "reset-config" => (|| {
                ctx.query.reject_unknown("reset-config", &[])?;
                self.set_local(&meta.config(), None, true)?;
                tracing::info!("node configuration reset to the cluster's");
                Ok(empty(StatusCode::OK))
            })(),
            _ => return None,
        };
        Some(res)
    }
}
