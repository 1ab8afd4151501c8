//! Authentication and authorization (on with `AIS_AUTH=1`; off, [`gate`]
//! passes every request through untouched).
//!
//! Every request goes through [`gate`] first (one call at the top of
//! `router::handle`). A request is let in when it carries:
//! 1. the intra-cluster credential (`Ais-Cluster-Auth`, sent by `rpc::Rpc`) —
//!    the only way into internal endpoints (metasync, join, keepalive,
//!    `/v1/internal/...`);
//! 2. a redirect credential (`ais_auth=EXP.SIG` in the query) that a node put
//!    into the `Location` of a redirect after it had authorized the request
//!    (bound to method + path, valid 60 s): clients that drop
//!    `Authorization` on a redirect to another host:port still get through;
//! 3. a user token (`Authorization: Bearer JWT`) that is valid, not expired,
//!    not revoked, and grants the AIStore access bits the request needs.
//!
//! The AuthN API (`/v1/users`, `/v1/roles`, `/v1/tokens`) is served by the
//! primary proxy (others forward it there), its database replicated among
//! the proxies: [`authn`].

pub mod authn;
pub mod perm;

use crate::cred::{self, Claims, Cred};
use crate::error::{ApiError, ApiResult};
use crate::http::{empty, read_body, Ctx, Endpoint};
use crate::state::NodeCore;
use ais_core::paths;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::Response;

/// What the gate decided: go on to the handler (with the body, possibly
/// re-wrapped after the gate read a small control message), or answer now.
pub enum Gate {
    Pass(Body),
    Done(Response),
}

/// Sets up credentials from the environment and, on a proxy, where its
/// AuthN files go (`<data>/auth`). Called once while the node is built.
pub fn init(data: &std::path::Path, proxy: bool) -> anyhow::Result<()> {
    cred::init_from_env()?;
    if cred::get().is_some() && proxy {
        authn::init(&data.join("auth"))?;
    }
    Ok(())
}

pub async fn gate(
    core: &NodeCore,
    is_proxy: bool,
    primary: Option<std::sync::Arc<ais_cluster::Primary>>,
    ctx: &Ctx,
    ep: &Endpoint<'_>,
    body: Body,
) -> ApiResult<Gate> {
    let Some(cred) = cred::get() else {
        return Ok(Gate::Pass(body));
    };
    let intra = ctx
        .headers
        .get(cred::CLUSTER_HDR)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| cred.check_cluster(v));
    if ctx.path == paths::INT_AUTH_REVOKED {
        if !intra {
            return Err(no_cluster_cred());
        }
        let raw = read_body(body, 64 << 20).await?;
        let list: Vec<cred::Revoked> = serde_json::from_slice(&raw)
            .map_err(|e| ApiError::bad_request(format!("malformed revoked-token list: {e}")))?;
        let version = ctx
            .headers
            .get(cred::REVOKED_VERSION_HDR)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        cred.set_revoked_at(&list, version);
        return Ok(Gate::Done(empty(StatusCode::OK)));
    }
    if is_proxy && authn::is_authn_path(&ctx.path) {
        return authn::serve(core, primary.as_deref(), cred, ctx, body)
            .await
            .map(Gate::Done);
    }
    if intra && is_proxy && *ep == Endpoint::Join {
        // A (re)joining node starts with an empty revoked list: send it the
        // list once it is in the map.
        authn::push_revoked_soon(core);
    }
    if intra || public(ctx, ep) {
        return Ok(Gate::Pass(body));
    }
    if is_internal(ep) {
        return Err(no_cluster_cred());
    }
    if let Some((query, v)) = cred::split_redirect(&ctx.raw_query) {
        if cred.check_redirect(ctx.method.as_str(), &ctx.path, query, v) {
            // Good for as long as the token it was issued for (the proxy
            // appends the token's reference after whatever the client sent).
            if let Some((_, r)) = ctx
                .query
                .0
                .iter()
                .rev()
                .find(|(k, _)| k == cred::TOKEN_PARAM)
            {
                if !cred.token_ref_live(r) {
                    return Err(ApiError::Unauthorized(
                        "token revoked: the token this redirect was issued for, or its user, \
                         was revoked"
                            .into(),
                    ));
                }
            }
            let bound = matches!(ep, Endpoint::Moss(_))
                || (matches!(ep, Endpoint::Object { .. })
                    && ctx.method == axum::http::Method::POST);
            if !bound {
                return Ok(Gate::Pass(body));
            }
            // A Get-Batch's body names the objects it reads, an object
            // action's says what it does: the signed query carries its digest. Read (bounded) only now that the
            // credential is known good, and compared.
            // The last one: the proxy appends its own after whatever the
            // client sent (a client's own `ais_body` must not count).
            let want = ctx
                .query
                .0
                .iter()
                .rev()
                .find(|(k, _)| k == cred::BODY_PARAM)
                .map_or("", |(_, v)| v.as_str());
            let raw = read_body(body, 64 << 20).await?;
            if !want.is_empty() && cred::body_digest(&raw) == want {
                return Ok(Gate::Pass(Body::from(raw)));
            }
            return gate_user(cred, ctx, ep, Body::from(raw)).await;
        }
        // Not this request's credential (an edited query, or expired): it is
        // judged by its token like any other.
    }
    gate_user(cred, ctx, ep, body).await
}

/// A request without a valid redirect credential: its token decides.
async fn gate_user(cred: &Cred, ctx: &Ctx, ep: &Endpoint<'_>, body: Body) -> ApiResult<Gate> {
    // Straight from a client (a target reached directly with a token): no
    // parameter only nodes may set.
    crate::http::reject_params_of(ctx, crate::http::RPC_ONLY_PARAMS)?;
    let claims = user(cred, ctx)?;
    if claims.admin {
        return Ok(Gate::Pass(body));
    }
    let (needs, body) = perm::required(ctx, ep, body).await?;
    for n in &needs {
        perm::check(&claims, n)?;
    }
    Ok(Gate::Pass(body))
}

/// The caller's verified token claims (401 when missing or not valid).
pub fn user(cred: &Cred, ctx: &Ctx) -> ApiResult<Claims> {
    let tok = bearer(ctx).ok_or_else(|| {
        ApiError::Unauthorized(
            "missing token: this cluster requires authentication (Authorization: Bearer TOKEN; \
             log in with `ais auth login USER` or AuthNClient.login)"
                .into(),
        )
    })?;
    cred.verify_jwt(tok)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))
}

pub fn bearer(ctx: &Ctx) -> Option<&str> {
    cred::bearer(&ctx.headers)
}

fn no_cluster_cred() -> ApiError {
    ApiError::Unauthorized("intra-cluster endpoint: missing or invalid cluster credential".into())
}

/// Open without credentials: health, metrics (counters only, for
/// Prometheus scrapes), the cluster map (node addresses, as test harnesses
/// and `direct` clients need them before logging in), and
/// paths that answer 404/501 or check their own secret (a transformer's
/// input URL).
fn public(ctx: &Ctx, ep: &Endpoint<'_>) -> bool {
    match ep {
        Endpoint::Health
        | Endpoint::Metrics
        | Endpoint::Provider(_)
        | Endpoint::EtlObject { .. } => true,
        Endpoint::Daemon => ctx.method == Method::GET && ctx.query.get("what") == Some("smap"),
        _ => false,
    }
}

fn is_internal(ep: &Endpoint<'_>) -> bool {
    matches!(
        ep,
        Endpoint::Metasync
            | Endpoint::Raft(_)
            | Endpoint::Join
            | Endpoint::Keepalive
            | Endpoint::IntList(_)
            | Endpoint::IntNbi(_)
            | Endpoint::IntObjAttrs { .. }
            | Endpoint::IntObject { .. }
            | Endpoint::IntEc { .. }
            | Endpoint::IntEtl { .. }
            | Endpoint::IntJobs { .. }
            | Endpoint::IntSort { .. }
            | Endpoint::IntS3 { .. }
    )
}
