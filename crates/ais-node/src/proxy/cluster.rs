//! `/v1/cluster...` at the proxy: joins and keepalives (primary only), job
//! queries and actions, and cluster metadata queries.

use super::{Proxy, CONTROL_BODY_LIMIT};
use crate::http::{json_ok, read_json, Ctx, Res};
use ais_core::meta::{JoinReq, Keepalive};
use axum::body::Body;
use axum::http::Method;
use std::sync::Arc;

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
        Method::GET => super::jobs::cluster_query(p, ctx, body).await,
        Method::PUT => super::jobs::cluster_action(p, body).await,
        _ => Err(ctx.not_allowed()),
    }
}
