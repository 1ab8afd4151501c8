//! Which role a proxy plays, and handing the primary's over
//! (`ais cluster set-primary`, AIStore's `PUT /v1/cluster/proxy/ID`).
//!
//! The primary runs the failure detector, the rebalance watcher and the
//! keepalive-timeout watcher; every other proxy runs the membership loop
//! (keepalives to whichever proxy the cluster map names primary). A change
//! of role aborts the one set of tasks and starts the other.
//!
//! Handing the role over on purpose (`ais cluster set-primary`, AIStore's
//! `PUT /v1/cluster/proxy/ID`) is refused for now: a safe handover needs a
//! fence (an epoch in the cluster map, so a retired or restarted primary
//! can never commit again), the whole metadata carried to the new primary
//! (its copy may be a push behind), and a restart that follows the map
//! rather than `--join`. An adversarial review of a first version found
//! each of these missing; they come with the replicated control plane.

use super::Proxy;
use crate::error::{ApiError, ApiResult};
use crate::http::{empty, Ctx, Res};
use ais_cluster::Primary;
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

/// `PUT /v1/cluster/proxy/ID`: naming the current primary is a no-op;
/// another proxy is refused (501) until a handover can be fenced.
pub async fn set_primary(p: &Arc<Proxy>, ctx: &Ctx, id: &str) -> Res {
    ctx.expect_method(&[Method::PUT])?;
    ctx.query.reject_unknown("set-primary", &[])?;
    let me = p.core.id.clone();
    let is_proxy = p
        .core
        .meta
        .with_smap(|s| s.is_some_and(|s| s.pmap.contains_key(id)));
    if id == me && p.is_primary() {
        return Ok(empty(StatusCode::OK));
    }
    if !is_proxy {
        return Err(ApiError::NotFound(format!(
            "set-primary: \"{id}\" is not a proxy in the cluster map"
        )));
    }
    Err(ApiError::NotImplemented(format!(
        "set-primary: handing the primary role to p[{id}] is not supported yet (a handover \
         needs fencing so that two proxies can never both commit); p[{me}] stays primary"
    )))
}

/// A cluster map that names another primary while this proxy still acts
/// as one (it was handed over, or a newer map says so): step down.
pub fn follow_map(p: &Arc<Proxy>) -> ApiResult<()> {
    let other = p
        .core
        .meta
        .with_smap(|s| s.is_some_and(|s| s.proxy_si.daemon_id != p.core.id));
    if other && p.is_primary() {
        become_follower(p);
    }
    Ok(())
}
