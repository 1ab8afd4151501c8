//! Which role a proxy plays, and handing the primary's over
//! (`ais cluster set-primary`, AIStore's `PUT /v1/cluster/proxy/ID`).
//!
//! The primary runs the failure detector, the rebalance watcher and the
//! keepalive-timeout watcher; every other proxy runs the membership loop
//! (keepalives to whichever proxy the cluster map names primary). A change
//! of role aborts the one set of tasks and starts the other.
//!
//! A handover, on the primary: its offline-job registry goes to the new
//! primary, which takes the role by committing a cluster map that names it
//! (pushed to every node: the targets and proxies follow it), then this one
//! steps down. Not yet: the AuthN database (it stays with the first
//! primary, so a handover is refused while authentication is on), and an
//! election when the primary dies (the role moves only on purpose).

use super::Proxy;
use crate::error::{ApiError, ApiResult};
use crate::http::{empty, read_json, Ctx, Res};
use crate::rpc::Dest;
use ais_cluster::{Primary, PrimaryConfig};
use axum::body::Body;
use axum::http::{Method, StatusCode};
use std::collections::HashMap;
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

/// `PUT /v1/cluster/proxy/ID` on the primary: hands the role to proxy ID.
pub async fn set_primary(p: &Arc<Proxy>, ctx: &Ctx, id: &str) -> Res {
    ctx.expect_method(&[Method::PUT])?;
    ctx.query.reject_unknown("set-primary", &[])?;
    let me = p.core.id.clone();
    let target = p
        .core
        .meta
        .with_smap(|s| s.and_then(|s| s.pmap.get(id).cloned()));
    if id == me && p.is_primary() {
        return Ok(empty(StatusCode::OK));
    }
    let Some(target) = target else {
        return Err(ApiError::NotFound(format!(
            "set-primary: \"{id}\" is not a proxy in the cluster map"
        )));
    };
    let pr = p.primary()?;
    if crate::cred::get().is_some() {
        return Err(ApiError::NotImplemented(
            "set-primary: the AuthN database stays with this primary; handing the role over \
             while authentication is on is not supported yet"
                .into(),
        ));
    }
    // No metadata change commits here from now on (the failure detector's
    // included): the new primary's map must be the newest.
    let _quiet = pr.quiesce().await;
    // Its jobs go along: their status is asked of the primary.
    let jobs = p.jobs.export();
    p.core
        .rpc
        .take_over(&Dest::from(&target), &jobs)
        .await
        .map_err(|e| {
            ApiError::from(e).context(format!(
                "set-primary: p[{id}] did not take the role over; p[{me}] stays primary"
            ))
        })?;
    pr.retire();
    become_follower(p);
    tracing::info!(new = %format!("p[{id}]"), "primary role handed over");
    Ok(empty(StatusCode::OK))
}

/// `PUT INT_TAKEOVER` on the proxy the primary hands its role to: the job
/// registry in the body; answers once this proxy is the primary and every
/// node was sent the map that says so.
pub async fn take_over(p: &Arc<Proxy>, ctx: &Ctx, body: Body) -> Res {
    ctx.expect_method(&[Method::PUT])?;
    if p.is_primary() {
        return Ok(empty(StatusCode::OK));
    }
    let jobs: HashMap<String, super::jobs::ProxyJob> =
        read_json(body, 64 << 20, "job registry").await?;
    p.jobs.import(jobs)?;
    let cfg = PrimaryConfig {
        keepalive_timeout: p.core.config.current().duration("timeout.max_keepalive"),
    };
    let pr = Primary::new(
        p.core.meta.clone(),
        p.core.snode.clone(),
        cfg,
        Arc::new(p.core.rpc.clone()),
    )?;
    for f in pr.push(&p.core.meta.full()).await {
        tracing::warn!(node = %f.node, error = %f.error, "taking over: metadata push failed");
    }
    become_primary(p, pr);
    Ok(empty(StatusCode::OK))
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
