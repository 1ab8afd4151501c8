//! `/v1/cluster...` at the proxy: joins and keepalives (primary only), job
//! queries and actions, and cluster metadata queries.

use super::{Proxy, CONTROL_BODY_LIMIT};
use crate::error::ApiError;
use crate::http::{json_ok, read_json, Ctx, Res};
use ais_core::meta::{JoinReq, Keepalive};
use axum::body::Body;
use axum::http::{Method, StatusCode};
use std::sync::Arc;

/// `GET /v1/reverse/daemon?what=...` with `Ais-Node-Id: ID`: the node's
/// `/v1/daemon` answer (its log, its status and counters), fetched by the
/// proxy (clients need not reach every node).
pub async fn reverse_daemon(p: &Arc<Proxy>, ctx: &Ctx, body: Body) -> Res {
    if ctx.method == Method::PUT {
        return super::config::reverse_put(p, ctx, "", body).await;
    }
    ctx.expect_method(&[Method::GET])?;
    let node = named_node(p, ctx)?;
    let resp = p
        .core
        .rpc
        .daemon_query(&(&node).into(), &ctx.raw_query)
        .await?;
    relay(&node, resp).await
}

/// The node an `Ais-Node-Id` header names.
pub fn named_node(p: &Proxy, ctx: &Ctx) -> crate::error::ApiResult<ais_core::meta::Snode> {
    let id = ctx
        .headers
        .get("ais-node-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing Ais-Node-Id header (the node to ask)"))?;
    let node = p
        .core
        .meta
        .with_smap(|s| s.and_then(|s| s.tmap.get(id).or_else(|| s.pmap.get(id)).cloned()))
        .ok_or_else(|| ApiError::NotFound(format!("node \"{id}\" is not in the cluster map")))?;
    Ok(node)
}

/// A node's answer, passed on as it came (status, type, body).
pub async fn relay(node: &ais_core::meta::Snode, resp: reqwest::Response) -> Res {
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::OK);
    let ctype = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let body = resp
        .bytes()
        .await
        .map_err(|e| ApiError::unavailable(format!("{}: reading its answer: {e}", node.name())))?;
    let mut r = crate::http::bytes_response(status, "application/octet-stream", body.to_vec());
    if let Ok(v) = axum::http::HeaderValue::from_str(&ctype) {
        r.headers_mut().insert(axum::http::header::CONTENT_TYPE, v);
    }
    Ok(r)
}

pub async fn join(p: &Arc<Proxy>, ctx: &Ctx, body: Body) -> Res {
    ctx.expect_method(&[Method::POST])?;
    let req: JoinReq = read_json(body, CONTROL_BODY_LIMIT, "join request").await?;
    json_ok(&p.primary()?.join(req).await?)
}

pub async fn keepalive(p: &Arc<Proxy>, ctx: &Ctx, body: Body) -> Res {
    ctx.expect_method(&[Method::POST])?;
    let ka: Keepalive = read_json(body, CONTROL_BODY_LIMIT, "keepalive").await?;
    json_ok(&p.primary()?.keepalive(ka).await)
}

/// `GET /v1/cluster?what=...` (jobs, else metadata) and `PUT` actions.
pub async fn cluster(p: &Arc<Proxy>, ctx: &Ctx, body: Body) -> Res {
    match ctx.method {
        Method::GET if ctx.query.get("what") == Some("config") => {
            ctx.query
                .reject_unknown("a configuration query", &["what"])?;
            super::config::show(p)
        }
        Method::GET
            if matches!(
                ctx.query.get("what"),
                Some("remote" | "stats" | "sysinfo" | "mountpaths" | "target_ips")
            ) =>
        {
            ctx.query.reject_unknown("a cluster query", &["what"])?;
            cluster_what(p, ctx.query.get("what").unwrap_or("")).await
        }
        Method::GET => super::jobs::cluster_query(p, ctx, body).await,
        Method::PUT => super::jobs::cluster_action(p, ctx, body).await,
        _ => Err(ctx.not_allowed()),
    }
}

/// `GET /v1/cluster?what=remote|stats|sysinfo|mountpaths|target_ips`:
/// the same question asked of every node, answered per node. A node that
/// does not answer fails the query, naming it (never a partial answer).
async fn cluster_what(p: &Proxy, what: &str) -> Res {
    use crate::rpc::{all_ok, fan_out};
    use serde_json::{json, Map, Value};
    let smap = p
        .core
        .meta
        .smap()
        .ok_or_else(|| ApiError::unavailable("no cluster map yet"))?;
    let targets: Vec<ais_core::meta::Snode> = smap.tmap.values().cloned().collect();
    match what {
        // No remote AIS clusters can be attached to aistore-rs.
        "remote" => json_ok(&json!({"a": [], "ver": "0"})),
        "target_ips" => {
            let mut ips: Vec<String> = targets
                .iter()
                .map(|t| t.public_net.node_ip_addr.clone())
                .collect();
            ips.sort();
            ips.dedup();
            Ok(crate::http::text_ok(&ips.join(",")))
        }
        _ => {
            let query = match what {
                "stats" => "what=node_status",
                "mountpaths" => "what=mountpaths",
                _ => "what=sysinfo",
            };
            // A target in maintenance (or shut down on purpose) is listed
            // as such rather than asked: it may not be running.
            let active: Vec<ais_core::meta::Snode> = smap.active_targets().cloned().collect();
            let nodes: Vec<ais_core::meta::Snode> = match what {
                "mountpaths" => active.clone(),
                _ => smap.pmap.values().cloned().chain(active.clone()).collect(),
            };
            let answers = all_ok(
                &format!("cluster {what}"),
                fan_out(&nodes, crate::rpc::CONTROL_TIMEOUT, |d| async move {
                    let resp = p.core.rpc.daemon_query(&d, query).await?;
                    resp.json::<Value>()
                        .await
                        .map_err(|e| crate::rpc::RpcError::Decode {
                            node: d.name.clone(),
                            why: e.to_string(),
                        })
                })
                .await,
            )?;
            let (mut proxies, mut tgts) = (Map::new(), Map::new());
            for t in targets
                .iter()
                .filter(|t| !active.iter().any(|a| a.daemon_id == t.daemon_id))
            {
                tgts.insert(t.daemon_id.clone(), json!({"status": "maintenance"}));
            }
            for (node, v) in answers {
                if smap.pmap.contains_key(&node.daemon_id) {
                    proxies.insert(node.daemon_id.clone(), v);
                } else {
                    tgts.insert(node.daemon_id.clone(), v);
                }
            }
            if what == "mountpaths" {
                return json_ok(&json!({ "targets": tgts }));
            }
            json_ok(&json!({ "proxy": proxies, "target": tgts }))
        }
    }
}
