//! Object verbs at the proxy: validate, then redirect to the owner target
//! (301 for GET as AIStore does, 307 otherwise) without touching the body.
//! An owner that has stopped answering keepalives gets no more clients: a
//! retryable 503 names it until the cluster map drops it.

use super::Proxy;
use crate::error::ApiError;
use crate::http::{redirect_bound, Ctx, Res};
use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode};
use std::time::Duration;

/// Bodies up to this size that follow a redirected request are drained, so
/// the client's keep-alive connection stays usable (as Go's server does).
const DRAIN_LIMIT: u64 = 256 * 1024;

/// A target silent for this long (keepalives come every 0.7 s) is taken as
/// down for redirects, before the failure detector removes it from the map.
const SILENT_OWNER: Duration = Duration::from_millis(2500);

/// The decision never waits for the body; afterwards a small body is drained
/// and a large one left unread with `Connection: close`, so no client reuses
/// a connection the server is about to drop.
pub async fn object(p: &Proxy, ctx: &Ctx, bucket: &str, obj: &str, body: Body) -> Res {
    if ctx.method == Method::POST {
        // An object action (rename, multipart create or complete): its
        // body says what it does, so the redirect's credential binds it.
        let raw = crate::http::read_body(body, POST_BODY_LIMIT).await?;
        if obj.is_empty() {
            // `POST /v1/objects/B` names its object in the body (the SDK's
            // blob download).
            ctx.query.reject_unknown("POST of an object", &[])?;
            let msg = ais_core::api::ActMsg::parse(&raw)?;
            let bck = ctx.bck(bucket)?;
            return match msg.action.as_str() {
                "blob-download" => super::jobs::start_blob_download(p, &bck, msg).await,
                "promote" => super::jobs::start_promote(p, &bck, msg).await,
                other => Err(ApiError::bad_request(format!(
                    "unsupported action \"{other}\" for POST of /v1/objects/{} (supported: blob-download, promote; other actions name the object in the path)",
                    bck.name
                ))),
            };
        }
        return redirect_object(p, ctx, bucket, obj, Some(&raw)).await;
    }
    let mut r = redirect_object(p, ctx, bucket, obj, None).await?;
    let len: Option<u64> = ctx
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let chunked = ctx.headers.contains_key(header::TRANSFER_ENCODING);
    // The SDK's HTTPS flow announces a length but sends no body, with
    // `Connection: close`: never wait for it.
    let closing = ctx
        .headers
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    match len {
        _ if closing => {}
        Some(0) | None if !chunked => {}
        Some(n) if n <= DRAIN_LIMIT && !chunked => {
            let drain = axum::body::to_bytes(body, DRAIN_LIMIT as usize);
            if tokio::time::timeout(Duration::from_secs(2), drain)
                .await
                .is_err()
            {
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
        }
        _ => {
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
    Ok(r)
}

/// The largest object action body (a multipart completion lists up to
/// 10,000 parts).
pub const POST_BODY_LIMIT: usize = 2 << 20;

async fn redirect_object(
    p: &Proxy,
    ctx: &Ctx,
    bucket: &str,
    obj: &str,
    body: Option<&[u8]>,
) -> Res {
    ctx.expect_method(&[
        Method::GET,
        Method::PUT,
        Method::HEAD,
        Method::DELETE,
        Method::PATCH,
        Method::POST,
    ])?;
    let core = &p.core;
    let (bck, obj) = ctx.bck_obj(bucket, obj)?;
    super::remote::props(p, &bck).await?;
    if ctx.method == Method::GET {
        ctx.query
            .reject_unknown("GET of an object", crate::http::GET_OBJECT_PARAMS)?;
    }
    if ctx.method == Method::HEAD {
        ctx.query
            .reject_unknown("HEAD of an object", crate::http::HEAD_OBJECT_PARAMS)?;
    }
    // A parameter the target would ignore must not turn a request into
    // another one (an append that overwrites): 400 here, before the hop.
    if ctx.method == Method::PUT {
        crate::http::check_object_put(&ctx.query)?;
    }
    if ctx.method == Method::DELETE {
        ctx.query
            .reject_unknown("DELETE of an object", crate::http::DELETE_OBJECT_PARAMS)?;
    }
    if ctx.method == Method::PATCH {
        ctx.query
            .reject_unknown("PATCH of an object", crate::http::PATCH_OBJECT_PARAMS)?;
    }
    if ctx.method == Method::POST {
        ctx.query
            .reject_unknown("POST of an object", crate::http::POST_OBJECT_PARAMS)?;
    }
    // A multipart upload's requests go to the target that holds it (its
    // id names it), whatever the map says since it was created.
    if let Some(id) = ctx.query.get("uploadId") {
        let status = StatusCode::TEMPORARY_REDIRECT;
        let tid = crate::rpc::s3::upload_holder(id).ok_or_else(|| {
            ApiError::NotFound(format!("multipart upload \"{id}\" does not exist"))
        })?;
        return core
            .meta
            .with_smap(|s| {
                s.and_then(|s| s.tmap.get(tid))
                    .map(|t| redirect_bound(ctx, t.url(), status, &core.id, "", body))
            })
            .ok_or_else(|| {
                ApiError::unavailable(format!(
                    "the target {tid} that holds upload {id} is not in the cluster map"
                ))
            });
    }
    if ctx.method == Method::GET {
        let stages = ctx.etl_pipeline()?;
        if let Some(etl) = ctx.etl_param(|u| core.meta.etlmd().etls.contains_key(u)) {
            super::etl::check_usable(p, &etl)?;
        }
        for s in &stages {
            super::etl::check_usable(p, s)?;
        }
    }
    let status = if ctx.method == Method::GET {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::TEMPORARY_REDIRECT
    };
    // The redirect is built under the map's read lock (no copy of the node);
    // the keepalive check runs after it, holding no other lock.
    let (id, r) = core
        .owner_with(&bck.obj_uname(&obj), |owner| {
            (
                owner.daemon_id.clone(),
                redirect_bound(ctx, owner.url(), status, &core.id, "", body),
            )
        })
        .ok_or_else(|| {
            ApiError::unavailable("the cluster has no storage targets yet; start a target")
        })?;
    if let Some(silent) = p
        .primary_opt()
        .and_then(|pr| pr.silent_for(&id))
        .filter(|s| *s > SILENT_OWNER)
    {
        return Err(ApiError::unavailable(format!(
            "target t[{id}] that stores {}/{obj} is not responding (no keepalive for {:.1}s); retry shortly",
            bck.cname(),
            silent.as_secs_f64()
        )));
    }
    Ok(r)
}

/// `GET /v1/ml/moss[/BUCKET]` (Get-Batch): the request is checked here (a
/// malformed one is a 400 before any target works on it), then sent to a
/// designated target — the owner of its first item — which assembles the
/// archive. The client re-sends the body with the 307.
pub async fn get_batch(p: &Proxy, ctx: &Ctx, bucket: &str, body: Body) -> Res {
    ctx.expect_method(&[Method::GET])?;
    #[derive(serde::Deserialize)]
    struct Req {
        #[serde(rename = "in", default)]
        items: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(rename = "objname", default)]
        obj_name: String,
        #[serde(default)]
        bucket: Option<String>,
    }
    let core = &p.core;
    if !bucket.is_empty() {
        core.bucket_props(&ctx.bck(bucket)?)?;
    }
    if let Some(e) = ctx.query.get("etl_name").filter(|e| !e.is_empty()) {
        super::etl::check_usable(p, e)?;
    }
    // (The request's own etl_name may be the first ETL: the target checks
    // that one is named.)
    for s in crate::http::parse_etl_pipeline(ctx.query.get("etl_pipeline"))? {
        super::etl::check_usable(p, &s)?;
    }
    let raw = crate::http::read_body(body, 64 << 20).await?;
    let req: Req = serde_json::from_slice(&raw)
        .map_err(|e| ApiError::bad_request(format!("malformed Get-Batch request: {e}")))?;
    let first = req
        .items
        .first()
        .ok_or_else(|| ApiError::bad_request("Get-Batch request has no items (\"in\" is empty)"))?;
    let b = first
        .bucket
        .clone()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| bucket.to_string());
    let bck = core.bck(b);
    let dt = core.owner(&bck.obj_uname(&first.obj_name)).ok_or_else(|| {
        ApiError::unavailable("the cluster has no storage targets yet; start a target")
    })?;
    // The body says which objects are read: the redirect's credential is
    // good for this body only (the target checks it again).
    Ok(crate::http::redirect_bound(
        ctx,
        dt.url(),
        StatusCode::TEMPORARY_REDIRECT,
        &core.id,
        "",
        Some(&raw),
    ))
}
