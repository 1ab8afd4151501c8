//! Which role a proxy plays. The primary is the leader of the replicated
//! control plane (`ais_cluster::ControlPlane`, a Raft group of every
//! proxy): [`run_control_plane`] watches the leadership and switches roles.
//!
//! The primary runs the failure detector, the rebalance watcher and the
//! keepalive-timeout watcher; every other proxy runs the membership loop
//! (keepalives to whichever proxy the cluster map names primary). A change
//! of role aborts the one set of tasks and starts the other.
//!
//! A primary that lost its majority (frozen, partitioned away) cannot
//! commit a change: its writes fail in the Raft log before anything is
//! pushed, and it steps down as soon as it hears the newer term. Handing
//! the role over on purpose (`ais cluster set-primary`, AIStore's
//! `PUT /v1/cluster/proxy/ID`) is an election the chosen proxy is set up
//! to win ([`set_primary`]).

use super::Proxy;
use crate::error::ApiError;
use crate::http::{empty, Ctx, Res};
use ais_cluster::{ControlPlane, Primary, PrimaryConfig};
use ais_core::meta::MetaSync;
use axum::http::{Method, StatusCode};
use std::sync::Arc;

fn abort_tasks(p: &Proxy) {
    if let Ok(mut t) = p.role_tasks.lock() {
        for h in t.drain(..) {
            h.abort();
        }
    }
}

fn keep(p: &Proxy, h: tokio::task::AbortHandle) {
    if let Ok(mut t) = p.role_tasks.lock() {
        t.push(h);
    }
}

/// This proxy is the primary from now on (`pr` built from its metadata).
pub fn become_primary(p: &Arc<Proxy>, pr: Arc<Primary>) {
    abort_tasks(p);
    p.set_primary(Some(pr.clone()));
    keep(
        p,
        tokio::spawn(pr.clone().run_failure_detector()).abort_handle(),
    );
    // `timeout.max_keepalive`, applied live.
    let mut cfg = p.core.config.subscribe();
    let pr2 = pr.clone();
    keep(
        p,
        tokio::spawn(async move {
            loop {
                let d = cfg.borrow_and_update().duration("timeout.max_keepalive");
                pr2.set_keepalive_timeout(d);
                if cfg.changed().await.is_err() {
                    return;
                }
            }
        })
        .abort_handle(),
    );
    keep(
        p,
        tokio::spawn(super::jobs::rebalance_on_membership_change(
            p.clone(),
            p.rebalance_settle,
        ))
        .abort_handle(),
    );
    tracing::info!(node = %p.core.name, "this proxy is the primary");
}

/// This proxy is not (or no longer) the primary: keepalives to the one the
/// cluster map names.
pub fn become_follower(p: &Arc<Proxy>) {
    let was = p.is_primary();
    abort_tasks(p);
    p.set_primary(None);
    // Following starts now: the primary's silence counts from here.
    if let Ok(mut seen) = p.core.primary_seen.lock() {
        *seen = Some(std::time::Instant::now());
    }
    keep(
        p,
        tokio::spawn(crate::state::membership_loop(p.clone())).abort_handle(),
    );
    if was {
        tracing::info!(node = %p.core.name, "this proxy is no longer the primary");
    }
}

/// `PUT /v1/cluster/proxy/ID` (`ais cluster set-primary`): naming the
/// current primary is a no-op; another proxy of the map takes the role
/// through a Raft election it is set up to win ([`ControlPlane::hand_over`]),
/// with no metadata change in flight. Answers once it leads; if it does
/// not, this proxy stays primary and says so (503).
pub async fn set_primary(p: &Arc<Proxy>, ctx: &Ctx, id: &str) -> Res {
    ctx.expect_method(&[Method::PUT])?;
    ctx.query.reject_unknown("set-primary", &[])?;
    let me = p.core.id.clone();
    let to = p
        .core
        .meta
        .with_smap(|s| s.and_then(|s| s.pmap.get(id).cloned()));
    if id == me && p.is_primary() {
        return Ok(empty(StatusCode::OK));
    }
    let Some(to) = to else {
        return Err(ApiError::NotFound(format!(
            "set-primary: \"{id}\" is not a proxy in the cluster map"
        )));
    };
    let pr = p.primary()?;
    let cp = p
        .control
        .get()
        .cloned()
        .ok_or_else(|| ApiError::unavailable("control plane not started yet"))?;
    // In a task of its own: a client that disconnects must not cut the
    // handover short (holds and paused heartbeats are undone at its end).
    let name = to.name();
    tokio::spawn(async move { pr.exclusive(cp.hand_over(&to)).await })
        .await
        .map_err(|e| ApiError::Internal(format!("set-primary to {name}: {e}")))??;
    tracing::info!(to = %name, "set-primary: handed the primary's role over");
    Ok(empty(StatusCode::OK))
}

/// `PUT /v1/daemon` on a proxy with `shutdown-node` or
/// `decommission-node`, sent by the primary (AIStore's shape; with AuthN
/// on, only with the intra-cluster credential): the proxy stops its
/// keepalives and exits. Its control-plane log is kept: wiping it while
/// it may still count as a voter could undo a committed change; a
/// decommissioned proxy started again with `--join` joins as a new member
/// and its log is brought in line by the primary.
pub async fn daemon_action(p: &Arc<Proxy>, ctx: &Ctx, msg: ais_core::api::ActMsg) -> Res {
    ctx.expect_method(&[Method::PUT])?;
    let v: ais_core::api::RmNodeMsg = if msg.value.is_null() {
        Default::default()
    } else {
        serde_json::from_value(msg.value.clone())
            .map_err(|e| ApiError::bad_request(format!("malformed {} request: {e}", msg.action)))?
    };
    match msg.action.as_str() {
        "shutdown-node" | "decommission-node" => {
            if let Some(c) = crate::cred::get() {
                let intra = ctx
                    .headers
                    .get(crate::cred::CLUSTER_HDR)
                    .and_then(|h| h.to_str().ok())
                    .is_some_and(|h| c.check_cluster(h));
                if !intra {
                    return Err(ApiError::Forbidden(format!(
                        "{}: a proxy leaves when the primary says so: PUT /v1/cluster with the \
                         action (ais cluster add-remove-nodes)",
                        msg.action
                    )));
                }
            }
            if p.is_primary() {
                return Err(ApiError::bad_request(format!(
                    "{}: this proxy is the primary; hand its role over first (ais cluster set-primary)",
                    msg.action
                )));
            }
            if msg.action == "decommission-node" && v.no_shutdown {
                p.core.leaving.store(true, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(node = %p.core.name, "decommissioned: left the cluster, still running");
            } else {
                tracing::warn!(node = %p.core.name, action = %msg.action, "leaving the cluster and exiting");
                p.core.leave();
            }
            Ok(empty(StatusCode::OK))
        }
        other => Err(ApiError::bad_request(format!(
            "invalid node action \"{other}\" (supported: set-config, reset-config, shutdown-node, decommission-node)"
        ))),
    }
}

/// Applies committed changes of the control plane's log to this proxy.
struct ProxyApplier(std::sync::Weak<Proxy>);

impl ais_cluster::Applier for ProxyApplier {
    fn apply(&self, sync: &MetaSync) -> Result<(), ais_cluster::ClusterError> {
        match self.0.upgrade() {
            Some(p) => {
                let applied = p.core.meta.apply(sync)?;
                if applied.config.is_some() {
                    p.core.config.cluster_changed(&p.core.meta.config());
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn docs_changed(&self, names: &[&str]) {
        if names.contains(&crate::auth::authn::DOC) {
            if let Some(p) = self.0.upgrade() {
                crate::auth::authn::refresh_revoked(&p.core.meta);
            }
        }
    }
}

/// Starts this proxy's member of the control plane (its log under
/// `<data>/meta/raft`); `alone`: a proxy started without `--join` whose log
/// is empty founds the group. Then follows the leadership for good.
pub async fn start_control_plane(
    p: &Arc<Proxy>,
    dir: &std::path::Path,
    alone: bool,
    timing: ais_cluster::RaftTiming,
) -> Result<(), ais_cluster::ClusterError> {
    let cp = ControlPlane::start(
        dir,
        &p.core.snode,
        p.core.meta.clone(),
        Arc::new(ProxyApplier(Arc::downgrade(p))),
        Arc::new(p.core.rpc.clone()),
        timing,
    )
    .await?;
    if alone {
        cp.initialize_alone().await?;
    }
    let _ = p.control.set(cp.clone());
    become_follower(p);
    tokio::spawn(follow_leadership(p.clone(), cp));
    Ok(())
}

/// Leader of the control plane → primary (once it has taken office: caught
/// up and committed the map naming it); not the leader → follower.
async fn follow_leadership(p: Arc<Proxy>, cp: Arc<ControlPlane>) {
    let mut rx = cp.leadership();
    // The term this proxy took office in: leading again in a later term
    // (it lost and regained leadership between two looks) means taking
    // office again, on the metadata of that term.
    let mut office_term = None;
    loop {
        let l = *rx.borrow_and_update();
        if l.leading && (!p.is_primary() || office_term != Some(l.term)) {
            cp.resume_heartbeats();
            let cfg = PrimaryConfig {
                keepalive_timeout: p.core.config.current().duration("timeout.max_keepalive"),
            };
            let pr = Primary::new(
                p.core.meta.clone(),
                p.core.snode.clone(),
                cfg,
                Arc::new(p.core.rpc.clone()),
                cp.clone(),
            );
            let seed = |meta: &ais_cluster::MetaStore| {
                let mut docs = crate::auth::authn::seed(meta);
                docs.extend(p.jobs.seed(meta));
                docs
            };
            match pr.take_office(seed).await {
                Ok(()) => {
                    crate::auth::authn::seeded();
                    // The previous primary may have died between a commit
                    // and its push.
                    crate::auth::authn::push_revoked_soon(&p.core);
                    p.jobs.legacy_done();
                    tracing::info!(term = l.term, "elected: taking the primary's role");
                    office_term = Some(l.term);
                    become_primary(&p, pr);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "elected, but could not take office yet; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    continue;
                }
            }
        } else if !l.leading && p.is_primary() {
            tracing::warn!(term = l.term, leader = ?l.leader, "lost the control plane's leadership");
            become_follower(&p);
        }
        if rx.changed().await.is_err() {
            // The control plane stopped: on the way out, or a storage
            // failure. Never act as the primary without it.
            if p.core.exiting.load(std::sync::atomic::Ordering::Relaxed) {
                tracing::info!("control plane stopped: the proxy is exiting");
            } else {
                tracing::error!("control plane stopped: this proxy cannot be the primary");
            }
            become_follower(&p);
            return;
        }
    }
}

/// `POST /v1/metasync/raft/KIND`: a Raft message from another proxy.
pub async fn raft_message(p: &Arc<Proxy>, ctx: &Ctx, kind: &str, body: axum::body::Body) -> Res {
    ctx.expect_method(&[Method::POST])?;
    ctx.query.reject_unknown("raft message", &["to"])?;
    let to = match ctx.query.get("to") {
        None => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!("raft {kind}: invalid member id \"{v}\""))
        })?),
    };
    let cp = p
        .control
        .get()
        .ok_or_else(|| ApiError::unavailable("control plane not started yet"))?;
    let raw = axum::body::to_bytes(body, 64 << 20)
        .await
        .map_err(|e| ApiError::bad_request(format!("raft {kind}: {e}")))?;
    let out = cp.handle(kind, to, &raw).await?;
    axum::response::Response::builder()
        .status(StatusCode::OK)
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(out))
        .map_err(|e| ApiError::Internal(e.to_string()))
}
