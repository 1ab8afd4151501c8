//! Node lifecycle on the primary, AIStore's `PUT /v1/cluster` actions with
//! an `ActValRmNode` value (`{"sid": ID, "rm_user_data", "skip_rebalance"}`):
//!
//! - `start-maintenance`: the target stays in the map, flagged; HRW placement
//!   skips it and a rebalance moves its objects to their new owners (it keeps
//!   serving them until they have moved).
//! - `stop-maintenance`: the flag is cleared and a rebalance moves its share
//!   back to it.
//! - `decommission-node`: flagged, rebalanced away; when that rebalance has
//!   finished cleanly the node is told to leave (wiping its objects with
//!   `rm_user_data`) and is removed from the map.
//! - `shutdown-node`: in maintenance, rebalanced away (unless
//!   `skip_rebalance`), then the node exits; it stays in the map in
//!   maintenance (a restart rejoins in maintenance) until `stop-maintenance`.
//!
//! The answer is the rebalance job's id (empty with `skip_rebalance`).

use super::jobs::{current_rebalance, keep_final_snaps, mark_balanced, rebalance_now, status};
use super::Proxy;
use crate::error::{ApiError, ApiResult};
use crate::http::{text_ok, Res};
use crate::rpc::Dest;
use ais_core::api::{ActMsg, RmNodeMsg};
use ais_core::meta::{NodeType, Snode, NODE_FLAG_DECOMMISSION, NODE_FLAG_MAINTENANCE};
use std::sync::Arc;
use std::time::Duration;

pub const START_MAINTENANCE: &str = "start-maintenance";
pub const STOP_MAINTENANCE: &str = "stop-maintenance";
pub const DECOMMISSION: &str = "decommission-node";
pub const SHUTDOWN: &str = "shutdown-node";

const FLAGS: u64 = NODE_FLAG_MAINTENANCE | NODE_FLAG_DECOMMISSION;

/// `PUT /v1/cluster` with one of the lifecycle actions.
pub async fn node_action(p: &Arc<Proxy>, msg: ActMsg) -> Res {
    let primary = p.primary()?.clone();
    let action = msg.action.clone();
    let v: RmNodeMsg = if msg.value.is_null() {
        RmNodeMsg::default()
    } else {
        serde_json::from_value(msg.value)
            .map_err(|e| ApiError::bad_request(format!("malformed {action} request: {e}")))?
    };
    if v.sid.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{action}: missing node id (\"sid\")"
        )));
    }
    let smap = p
        .core
        .meta
        .smap()
        .ok_or_else(|| ApiError::unavailable("no cluster map yet"))?;
    let node = smap.get_node(&v.sid).cloned().ok_or_else(|| {
        ApiError::NotFound(format!(
            "{action}: node {} is not in the cluster map",
            v.sid
        ))
    })?;
    if node.daemon_type == NodeType::Proxy {
        return proxy_action(p, &primary, &action, node, v).await;
    }
    let name = node.name();
    if action == STOP_MAINTENANCE {
        if node.flags & FLAGS == 0 {
            return Err(ApiError::bad_request(format!(
                "{action}: {name} is not in maintenance"
            )));
        }
        set_flags(&primary, &v.sid, 0).await?;
        tracing::info!(node = %name, "maintenance stopped");
        return rebalance_or_skip(p, &v).await.map(|id| text_ok(&id));
    }
    if action == START_MAINTENANCE && node.flags & FLAGS != 0 {
        return Err(ApiError::bad_request(format!(
            "{action}: {name} is already in maintenance"
        )));
    }
    let others = smap
        .active_targets()
        .filter(|t| t.daemon_id != v.sid)
        .count();
    if others == 0 {
        return Err(ApiError::bad_request(format!(
            "{action}: {name} is the last active target; its objects would have nowhere to go"
        )));
    }
    // Erasure-coded buckets need `data + parity + 1` active targets: moving
    // this one's objects away must not leave them unprotectable (the
    // rebalance would move the objects, not their redundancy).
    if !v.skip_rebalance {
        let short: Vec<String> = p.core.meta.with_bmd(|b| {
            b.buckets
                .iter()
                .filter(|(_, pr)| pr.ec.enabled && pr.ec.targets_needed() > others)
                .map(|(n, pr)| {
                    format!(
                        "{n} (erasure coding {}+{} needs {} targets)",
                        pr.ec.data_slices,
                        pr.ec.parity_slices,
                        pr.ec.targets_needed()
                    )
                })
                .collect()
        });
        if !short.is_empty() {
            return Err(ApiError::bad_request(format!(
                "{action}: without {name} the cluster has {others} active target(s), too few for bucket(s) {}; \
                 add a target first (or disable erasure coding on them)",
                short.join(", ")
            )));
        }
    }
    let flag = if action == DECOMMISSION {
        NODE_FLAG_DECOMMISSION
    } else {
        NODE_FLAG_MAINTENANCE
    };
    set_flags(&primary, &v.sid, flag).await?;
    tracing::info!(node = %name, %action, "node flagged; its objects move to other targets");
    let reb = rebalance_or_skip(p, &v).await?;
    if action != START_MAINTENANCE {
        record(p, &node, &action, &reb, RUNNING, "");
        let (p, reb) = (p.clone(), (!reb.is_empty()).then(|| reb.clone()));
        tokio::spawn(async move {
            finish_recorded(&p, &action, node, v, reb).await;
        });
    }
    Ok(text_ok(&reb))
}

/// A proxy shut down (it stays a member of the control plane: it is
/// expected back) or decommissioned (out of the control plane's group, so
/// it no longer counts in a majority, and out of the map; it forgets its
/// control-plane state and exits). Maintenance is for targets.
async fn proxy_action(
    p: &Arc<Proxy>,
    primary: &ais_cluster::Primary,
    action: &str,
    node: Snode,
    v: RmNodeMsg,
) -> Res {
    let name = node.name();
    if action != DECOMMISSION && action != SHUTDOWN {
        return Err(ApiError::bad_request(format!(
            "{action}: {name} is a proxy; maintenance is for targets (a proxy can be shut down or decommissioned)"
        )));
    }
    if node.daemon_id == p.core.id {
        return Err(ApiError::bad_request(format!(
            "{action}: {name} is the primary proxy; hand its role over first (ais cluster set-primary)"
        )));
    }
    let msg = ActMsg {
        action: action.to_string(),
        name: String::new(),
        value: serde_json::to_value(&v).map_err(|e| ApiError::internal(e.to_string()))?,
    };
    if action == DECOMMISSION {
        primary.remove_proxy(&node.daemon_id).await?;
        tracing::info!(node = %name, "decommissioned: out of the control plane and the cluster map");
    }
    if let Err(e) = p.core.rpc.node_action(&Dest::from(&node), &msg).await {
        tracing::warn!(node = %name, error = %e, "could not tell the proxy to leave (down already?)");
    }
    Ok(text_ok(""))
}

/// States of a decommission or shutdown in [`Proxy::lifecycle`].
pub const RUNNING: &str = "running";
pub const FINISHED: &str = "finished";
pub const FAILED: &str = "failed";
pub const CANCELLED: &str = "cancelled";

/// Records where `node`'s decommission/shutdown stands, for the CLI (which
/// reports done only once it is `finished`) and operators.
fn record(p: &Proxy, node: &Snode, action: &str, reb: &str, state: &str, err: &str) {
    if let Ok(mut m) = p.lifecycle.lock() {
        m.insert(
            node.daemon_id.clone(),
            serde_json::json!({
                "node": node.name(),
                "action": action,
                "rebalance": reb,
                "state": state,
                "err": err,
                "time_ns": ais_core::now_ns(),
            }),
        );
    }
}

/// [`finish`], with its outcome recorded.
async fn finish_recorded(
    p: &Arc<Proxy>,
    action: &str,
    node: Snode,
    v: RmNodeMsg,
    reb: Option<String>,
) {
    let job = reb.clone().unwrap_or_default();
    let n = node.clone();
    match finish(p, action, node, v, reb).await {
        Ok(true) => record(p, &n, action, &job, FINISHED, ""),
        Ok(false) => record(
            p,
            &n,
            action,
            &job,
            CANCELLED,
            "the node was taken out of maintenance (or left the map) before it finished",
        ),
        Err(e) => {
            tracing::error!(%action, node = %n.name(), error = %e, "node lifecycle action did not complete");
            record(p, &n, action, &job, FAILED, &e.to_string());
        }
    }
}

/// After a primary restart, decommissions it was finishing resume: each
/// target flagged for decommission waits for the current rebalance, then
/// leaves and is removed (`rm_user_data` is not remembered: its data stays).
/// A shutdown cannot be told apart from plain maintenance in the map: run
/// `shutdown-node` again.
pub fn resume(p: &Arc<Proxy>) {
    let flagged: Vec<Snode> = p.core.meta.with_smap(|s| {
        s.map(|s| {
            s.tmap
                .values()
                .filter(|t| t.flags & NODE_FLAG_DECOMMISSION != 0)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
    });
    for node in flagged {
        let p = p.clone();
        tokio::spawn(async move {
            let v = RmNodeMsg {
                sid: node.daemon_id.clone(),
                ..Default::default()
            };
            tracing::info!(node = %node.name(), "resuming its decommission");
            let reb = super::jobs::current_rebalance(&p);
            record(
                &p,
                &node,
                DECOMMISSION,
                reb.as_deref().unwrap_or(""),
                RUNNING,
                "",
            );
            finish_recorded(&p, DECOMMISSION, node, v, reb).await;
        });
    }
}

async fn set_flags(primary: &ais_cluster::Primary, sid: &str, flag: u64) -> ApiResult<()> {
    primary
        .update_smap(|s| {
            match s.tmap.get_mut(sid) {
                Some(t) => t.flags = (t.flags & !FLAGS) | flag,
                None => {
                    return Err(ApiError::NotFound(format!(
                        "node {sid} left the cluster map"
                    )))
                }
            }
            Ok(())
        })
        .await
        .map(drop)
}

/// Starts the rebalance for the new map, or records that none is wanted.
async fn rebalance_or_skip(p: &Proxy, v: &RmNodeMsg) -> ApiResult<String> {
    if v.skip_rebalance {
        mark_balanced(
            p,
            p.core.targets().into_iter().map(|t| t.daemon_id).collect(),
        );
        return Ok(String::new());
    }
    rebalance_now(p).await
}

/// After the rebalance (if any): tell the node to leave, and for a
/// decommission remove it from the map. `Ok(false)`: called off meanwhile.
async fn finish(
    p: &Arc<Proxy>,
    action: &str,
    node: Snode,
    v: RmNodeMsg,
    reb: Option<String>,
) -> ApiResult<bool> {
    let name = node.name();
    if let Some(id) = reb {
        if wait_rebalanced(p, &node, id).await?.is_none() {
            return Ok(false);
        }
    }
    // Its part of every job (the rebalance that emptied it included) stays
    // reported after it is gone.
    keep_final_snaps(p, &node).await;
    let msg = ActMsg {
        action: action.to_string(),
        name: String::new(),
        value: serde_json::to_value(&v).map_err(|e| ApiError::internal(e.to_string()))?,
    };
    if let Err(e) = p.core.rpc.node_action(&Dest::from(&node), &msg).await {
        tracing::warn!(node = %name, error = %e, "could not tell the node to leave (down already?)");
    }
    if action == DECOMMISSION {
        p.primary()?
            .update_smap(|s| {
                s.tmap.remove(&v.sid);
                Ok::<_, ApiError>(())
            })
            .await?;
        tracing::info!(node = %name, "decommissioned: removed from the cluster map");
    } else {
        tracing::info!(node = %name, "shut down (stays in the map, in maintenance)");
    }
    Ok(true)
}

/// Waits for the rebalance that moves `node`'s objects away. A newer
/// rebalance (another membership change) takes over from an aborted one.
/// `Ok(Some(id))`: rebalance `id` finished cleanly; `Ok(None)`: the node is
/// no longer being removed (maintenance stopped, or it left the map); an
/// error: the rebalance failed and the node keeps its objects (run the
/// action again).
async fn wait_rebalanced(p: &Proxy, node: &Snode, mut id: String) -> ApiResult<Option<String>> {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let flagged = p.core.meta.with_smap(|s| {
            s.and_then(|s| s.tmap.get(&node.daemon_id))
                .is_some_and(|t| t.flags & FLAGS != 0)
        });
        if !flagged {
            return Ok(None);
        }
        let st = match status(p, &id).await {
            Ok(st) => st,
            Err(e) => {
                tracing::debug!(job = %id, error = %e, "rebalance status");
                continue;
            }
        };
        if st["end_time"].as_i64().unwrap_or(0) == 0 {
            continue;
        }
        if let Some(newer) = current_rebalance(p).filter(|c| *c != id) {
            id = newer;
            continue;
        }
        let errs = st["err_count"].as_u64().unwrap_or(0);
        let err = st["err"].as_str().unwrap_or("");
        if st["aborted"].as_bool().unwrap_or(false) || errs > 0 || !err.is_empty() {
            return Err(ApiError::Conflict(format!(
                "rebalance {id} did not move every object off {} ({errs} object errors{}); the node keeps them: run the action again",
                node.name(),
                if err.is_empty() { String::new() } else { format!(", {err}") }
            )));
        }
        return Ok(Some(id));
    }
}

/// `PUT /v1/cluster {"action": "shutdown"}`: every target leaves and exits
/// (its data and place in the map kept: a restart brings the cluster back
/// as it was), then this proxy. Answered once every target has taken it;
/// a target that cannot be reached fails the request, naming it, and
/// nothing else stops.
pub async fn shutdown_cluster(p: &Arc<Proxy>) -> Res {
    p.primary()?;
    // Every target in the map: one in maintenance may still be running.
    let all: Vec<Snode> = p.core.meta.with_smap(|s| {
        s.map(|s| s.tmap.values().cloned().collect())
            .unwrap_or_default()
    });
    let targets = p.core.targets();
    let flagged: Vec<Snode> = all
        .iter()
        .filter(|t| !targets.iter().any(|a| a.daemon_id == t.daemon_id))
        .cloned()
        .collect();
    // First make sure every active target is there to take it.
    crate::rpc::all_ok(
        "cluster shutdown (health of every target)",
        crate::rpc::fan_out(&targets, crate::rpc::CONTROL_TIMEOUT, |d| async move {
            p.core.rpc.daemon_query(&d, "what=snode").await.map(drop)
        })
        .await,
    )?;
    let results = crate::rpc::fan_out(&targets, crate::rpc::CONTROL_TIMEOUT, |d| async move {
        let msg = ActMsg {
            action: SHUTDOWN.into(),
            name: String::new(),
            value: serde_json::Value::Null,
        };
        p.core.rpc.node_action(&d, &msg).await
    })
    .await;
    // Those in maintenance that are running take it too; one that does not
    // answer is down already.
    let _ = crate::rpc::fan_out(&flagged, crate::rpc::CONTROL_TIMEOUT, |d| async move {
        let msg = ActMsg {
            action: SHUTDOWN.into(),
            name: String::new(),
            value: serde_json::Value::Null,
        };
        p.core.rpc.node_action(&d, &msg).await
    })
    .await;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{}: {e}", n.name())))
        .collect();
    if !failed.is_empty() {
        return Err(ApiError::unavailable(format!(
            "cluster shutdown: {} of {} targets did not take it ({}); the others are exiting; the proxy keeps running",
            failed.len(),
            targets.len(),
            failed.join("; ")
        )));
    }
    tracing::warn!(
        targets = targets.len(),
        "cluster shutdown: every target is leaving; this proxy exits next"
    );
    let core = p.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        core.core.leave();
    });
    Ok(crate::http::empty(axum::http::StatusCode::OK))
}
