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
    /// This node's own overrides and the cluster version composed last;
    /// held while composing and publishing, so concurrent changes publish
    /// in order and none is lost.
    state: Mutex<Local>,
    /// Where the saved overrides are kept.
    path: PathBuf,
    tx: tokio::sync::watch::Sender<Arc<Config>>,
}

#[derive(Default)]
struct Local {
    /// Kept in `config.local.json`.
    saved: Updates,
    /// `transient=true`: in memory only, over `saved`.
    transient: Updates,
    /// The cluster configuration composed last (older ones are ignored).
    cluster: ClusterConfig,
}

impl Local {
    fn own(&self) -> Updates {
        let mut all = self.saved.clone();
        all.extend(self.transient.clone());
        all
    }
}

impl NodeConfig {
    /// Loads the node's overrides from `meta_dir`; `cluster` is the
    /// persisted cluster configuration.
    pub fn open(meta_dir: PathBuf, base: Updates, cluster: &ClusterConfig) -> Self {
        let path = meta_dir.join("config.local.json");
        let saved: Updates = std::fs::read(&path)
            .ok()
            .and_then(|raw| serde_json::from_slice(&raw).ok())
            .unwrap_or_default();
        let local = Local {
            saved,
            transient: Updates::new(),
            cluster: cluster.clone(),
        };
        let cfg = compose(&base, cluster, &local.own());
        let (tx, _) = tokio::sync::watch::channel(Arc::new(cfg));
        Self {
            base,
            state: Mutex::new(local),
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

    /// The cluster's configuration changed (a push, a join, this primary's
    /// own change): recompute. An older version than the one composed last
    /// is ignored. Node watermarks that no longer fit the cluster's are
    /// dropped (with a warning), so the node never runs an invalid set.
    pub fn cluster_changed(&self, cluster: &ClusterConfig) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if cluster.version < st.cluster.version {
            return;
        }
        st.cluster = cluster.clone();
        let mut cfg = compose(&self.base, cluster, &st.own());
        if cfg.validate().is_err() {
            let dropped: Vec<String> = st
                .own()
                .keys()
                .filter(|k| k.starts_with("space."))
                .cloned()
                .collect();
            st.saved.retain(|k, _| !k.starts_with("space."));
            st.transient.retain(|k, _| !k.starts_with("space."));
            if let Err(e) = ais_cluster::save_json(&self.path, &st.saved) {
                tracing::error!(error = %e, "saving the node's configuration");
            }
            tracing::warn!(
                ?dropped,
                "the cluster's watermarks conflict with this node's own: the node's dropped"
            );
            cfg = compose(&self.base, cluster, &st.own());
        }
        self.tx.send_replace(Arc::new(cfg));
    }

    /// The cluster-wide values (no node's own), for showing and for
    /// validating a cluster change before it is committed.
    pub fn preview_cluster(&self, cluster: &ClusterConfig) -> Config {
        compose(&self.base, cluster, &Updates::new())
    }

    /// Sets (or, with `None`, clears) this node's own overrides.
    fn set_local(&self, updates: Option<Updates>, transient: bool) -> ApiResult<()> {
        let mut st = self
            .state
            .lock()
            .map_err(|_| ApiError::internal("configuration lock poisoned"))?;
        let (mut saved, mut trans) = match &updates {
            Some(_) => (st.saved.clone(), st.transient.clone()),
            None => (Updates::new(), Updates::new()),
        };
        for (k, v) in updates.unwrap_or_default() {
            if transient {
                trans.insert(k, v);
            } else {
                trans.remove(&k);
                saved.insert(k, v);
            }
        }
        let mut own = saved.clone();
        own.extend(trans.clone());
        let cfg = compose(&self.base, &st.cluster, &own);
        cfg.validate()?;
        if saved != st.saved {
            ais_cluster::save_json(&self.path, &saved)
                .map_err(|e| ApiError::internal(format!("saving the node's configuration: {e}")))?;
        }
        st.saved = saved;
        st.transient = trans;
        self.tx.send_replace(Arc::new(cfg));
        Ok(())
    }
}

fn compose(base: &Updates, cluster: &ClusterConfig, local: &Updates) -> Config {
    let mut lower = base.clone();
    lower.extend(cluster.overrides.clone());
    Config::compose(&lower, local, cluster.version)
}

fn transient(ctx: &Ctx) -> ApiResult<bool> {
    match ctx.query.get("transient") {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(v) => Err(ApiError::bad_request(format!(
            "transient=\"{v}\": expected true or false"
        ))),
    }
}

/// The `key=value` pairs of a set-config query (all but `transient`).
pub fn query_updates(ctx: &Ctx, node_level: bool) -> ApiResult<(Updates, bool)> {
    let transient = transient(ctx)?;
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
    pub fn set_node(&self, ctx: &Ctx) -> Res {
        ctx.expect_method(&[Method::PUT])?;
        let (updates, transient) = query_updates(ctx, true)?;
        self.set_local(Some(updates.clone()), transient)?;
        tracing::info!(?updates, transient, "node configuration changed");
        Ok(empty(StatusCode::OK))
    }

    /// `PUT /v1/daemon` with a `set-config` or `reset-config` action; `None`
    /// when the action is another one.
    pub fn node_action(&self, ctx: &Ctx, msg: &ActMsg) -> Option<Res> {
        let res = match msg.action.as_str() {
            "set-config" => (|| {
                ctx.query.reject_unknown("set-config", &["transient"])?;
                let updates = msg_updates(msg, true)?;
                self.set_local(Some(updates), transient(ctx)?)?;
                Ok(empty(StatusCode::OK))
            })(),
            "reset-config" => (|| {
                ctx.query.reject_unknown("reset-config", &[])?;
                self.set_local(None, false)?;
                tracing::info!("node configuration reset to the cluster's");
                Ok(empty(StatusCode::OK))
            })(),
            _ => return None,
        };
        Some(res)
    }
}
