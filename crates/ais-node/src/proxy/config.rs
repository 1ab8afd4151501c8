//! Cluster configuration at the proxy: `GET /v1/cluster?what=config`,
//! `PUT /v1/cluster/set-config?k=v`, `PUT /v1/cluster` with `set-config`
//! (a `ConfigToSet` value) or `reset-config`, and a node's configuration
//! changed through the proxy (`PUT /v1/reverse/daemon[/set-config]` with
//! `Ais-Node-Id`). The primary commits a cluster change like any metadata:
//! versioned, persisted, pushed to every node, and only then answered.

use super::Proxy;
use crate::error::{ApiError, ApiResult};
use crate::http::{empty, json_ok, read_body, Ctx, Res};
use ais_core::api::ActMsg;
use ais_core::config::Updates;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use std::sync::Arc;

/// `GET /v1/cluster?what=config`: the cluster-wide values (no node's own).
pub fn show(p: &Proxy) -> Res {
    let cluster = p.core.meta.config();
    json_ok(
        &p.core
            .config
            .preview_cluster(&cluster)
            .to_json(&p.core.meta.cluster_uuid()),
    )
}

/// Commits `updates` cluster-wide (`None`: back to the defaults).
async fn commit(p: &Proxy, updates: Option<Updates>) -> ApiResult<()> {
    let primary = p.primary()?;
    let preview = |c: &ais_core::config::ClusterConfig| p.core.config.preview_cluster(c);
    let cfg = primary
        .update_config(|c| -> ApiResult<()> {
            match &updates {
                Some(u) => c.overrides.extend(u.clone()),
                None => c.overrides.clear(),
            }
            preview(c).validate()?;
            Ok(())
        })
        .await?;
    p.core.config.cluster_changed(&cfg);
    tracing::info!(version = cfg.version, overrides = ?cfg.overrides, "cluster configuration changed");
    Ok(())
}

/// `PUT /v1/cluster/set-config?k=v`.
pub async fn set_cluster(p: &Arc<Proxy>, ctx: &Ctx) -> Res {
    ctx.expect_method(&[Method::PUT])?;
    let (updates, transient) = crate::config::query_updates(ctx, false)?;
    if transient {
        return Err(ApiError::bad_request(
            "transient=true applies to one node's configuration only (`ais config node`); a cluster change is always persisted",
        ));
    }
    commit(p, Some(updates)).await?;
    Ok(empty(StatusCode::OK))
}

/// `PUT /v1/cluster` with `set-config` or `reset-config`.
pub async fn cluster_action(p: &Proxy, ctx: &Ctx, msg: &ActMsg) -> Res {
    match msg.action.as_str() {
        "set-config" => {
            ctx.query.reject_unknown("set-config", &[])?;
            commit(p, Some(crate::config::msg_updates(msg, false)?)).await?
        }
        _ => {
            ctx.query.reject_unknown("reset-config", &[])?;
            commit(p, None).await?
        }
    }
    Ok(empty(StatusCode::OK))
}

/// `PUT /v1/reverse/daemon[/set-config]` with `Ais-Node-Id: ID`: the node's
/// own `PUT /v1/daemon[/set-config]`, forwarded.
pub async fn reverse_put(p: &Proxy, ctx: &Ctx, suffix: &str, body: Body) -> Res {
    let node = super::cluster::named_node(p, ctx)?;
    let raw = read_body(body, 1 << 20).await?;
    if suffix.is_empty() {
        // Only configuration goes this way: lifecycle actions are the
        // cluster's (`PUT /v1/cluster`), so they reach the map's owner.
        let msg = ActMsg::parse(&raw)?;
        if !matches!(
            msg.action.as_str(),
            "set-config" | "reset-config" | "reset-stats"
        ) {
            return Err(ApiError::bad_request(format!(
                "invalid node action \"{}\" (supported: set-config, reset-config, reset-stats)",
                msg.action
            )));
        }
    }
    if node.daemon_id == p.core.id {
        return match suffix {
            "" => {
                let msg = ActMsg::parse(&raw)?;
                if msg.action == "reset-stats" {
                    p.core
                        .metrics
                        .reset(crate::http::reset_errors_only(&msg.value)?);
                    return Ok(empty(StatusCode::OK));
                }
                p.core
                    .config
                    .node_action(ctx, &msg)
                    .unwrap_or_else(|| Err(ApiError::bad_request("invalid node action")))
            }
            _ => p.core.config.set_node(ctx),
        };
    }
    let resp = p
        .core
        .rpc
        .daemon_put(&(&node).into(), suffix, &ctx.raw_query, raw.to_vec())
        .await?;
    super::cluster::relay(&node, resp).await
}
