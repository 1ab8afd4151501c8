//! Proxy (gateway) handlers: cluster membership endpoints (primary only),
//! bucket operations backed by the BMD, list-objects fan-out/merge across
//! targets, and object redirects to the HRW owner without touching the body.

use crate::http::{
    bck_from, bck_obj, bytes_response, empty, expect_method, json_ok, read_body, redirect,
    split_first, unknown_path, Ctx, Res,
};
use crate::node::Node;
use ais_cluster::Primary;
use ais_core::api::{
    act, ActMsg, LsoEntry, LsoMsg, LsoResJson, LsoResMsgpack, PropSet, TargetPage, MAX_PAGE_SIZE,
};
use ais_core::meta::{BucketProps, JoinReq, Keepalive};
use ais_core::{AisError, Bck};
use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode};
use std::sync::Arc;

const CONTROL_BODY_LIMIT: usize = 16 << 20;

fn primary(node: &Node) -> Result<&Arc<Primary>, AisError> {
    node.primary.as_ref().ok_or_else(|| {
        AisError::new(
            503,
            format!(
                "{} is not the primary proxy; send this request to the primary",
                node.name
            ),
        )
    })
}

pub async fn cluster(node: &Arc<Node>, ctx: &Ctx, rest: &str, body: Body) -> Res {
    match rest {
        "" => match ctx.method {
            Method::GET => crate::jobs::cluster_query(node, ctx, body).await,
            Method::PUT => crate::jobs::cluster_action(node, body).await,
            _ => Err(AisError::new(
                405,
                format!("method {} is not allowed on {}", ctx.method, ctx.path),
            )),
        },
        "join" => {
            expect_method(ctx, &[Method::POST])?;
            let req: JoinReq = serde_json::from_slice(&read_body(body, CONTROL_BODY_LIMIT).await?)
                .map_err(|e| AisError::bad_request(format!("malformed join request: {e}")))?;
            json_ok(&primary(node)?.join(req).await?)
        }
        "keepalive" => {
            expect_method(ctx, &[Method::POST])?;
            let ka: Keepalive = serde_json::from_slice(&read_body(body, CONTROL_BODY_LIMIT).await?)
                .map_err(|e| AisError::bad_request(format!("malformed keepalive: {e}")))?;
            json_ok(&primary(node)?.keepalive(ka).await)
        }
        _ => Err(unknown_path(ctx)),
    }
}

/// Parses an optional ActMsg body (GET/DELETE may carry none when sent by curl).
async fn opt_actmsg(body: Body) -> Result<Option<ActMsg>, AisError> {
    let raw = read_body(body, CONTROL_BODY_LIMIT).await?;
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    ActMsg::parse(&raw).map(Some)
}

fn bucket_exists(node: &Node, bck: &Bck) -> Result<BucketProps, AisError> {
    node.meta
        .with_bmd(|b| b.buckets.get(&bck.name).cloned())
        .ok_or_else(|| AisError::bucket_not_found(bck))
}

pub async fn buckets(node: &Arc<Node>, ctx: &Ctx, rest: &str, body: Body) -> Res {
    let (name, tail) = split_first(rest);
    if !tail.is_empty() {
        return Err(unknown_path(ctx));
    }
    if name.is_empty() {
        expect_method(ctx, &[Method::GET])?;
        if let Some(p) = ctx.query.get("provider") {
            ais_core::names::normalize_provider(p)?;
        }
        let list: Vec<Bck> = node
            .meta
            .with_bmd(|b| b.buckets.keys().map(|n| Bck::ais(n.clone())).collect());
        return json_ok(&list);
    }
    let bck = bck_from(ctx, name)?;
    match ctx.method {
        Method::HEAD => {
            let props = bucket_exists(node, &bck)?;
            let mut r = empty(StatusCode::OK);
            let raw =
                serde_json::to_string(&props).map_err(|e| AisError::internal(e.to_string()))?;
            if let Ok(v) = HeaderValue::from_str(&raw) {
                r.headers_mut().insert("Ais-Bucket-Props", v);
            }
            Ok(r)
        }
        Method::GET => {
            let msg = opt_actmsg(body)
                .await?
                .unwrap_or_else(|| ActMsg::new(act::LIST));
            match msg.action.as_str() {
                act::LIST => {
                    let lso: LsoMsg = if msg.value.is_null() {
                        LsoMsg::default()
                    } else {
                        serde_json::from_value(msg.value).map_err(|e| {
                            AisError::bad_request(format!("malformed list-objects request: {e}"))
                        })?
                    };
                    list_objects(node, ctx, &bck, lso).await
                }
                other => Err(unknown_action(other, &bck)),
            }
        }
        Method::POST => {
            let msg = opt_actmsg(body)
                .await?
                .ok_or_else(|| AisError::bad_request("missing action message in request body"))?;
            match msg.action.as_str() {
                act::CREATE_BCK => {
                    let p = primary(node)?;
                    let mut props = BucketProps {
                        bid: ais_core::gen_id(10),
                        created: ais_core::now_ns().to_string(),
                        ..Default::default()
                    };
                    props.apply_patch(&msg.value)?;
                    p.update_bmd(|bmd| {
                        if bmd.buckets.contains_key(&bck.name) {
                            return Err(AisError::bucket_exists(&bck));
                        }
                        bmd.buckets.insert(bck.name.clone(), props);
                        Ok(())
                    })
                    .await?;
                    tracing::info!(bucket = %bck.cname(), "bucket created");
                    Ok(empty(StatusCode::OK))
                }
                "etl-bck" | "copy-bck" | "etl-listrange" | "copy-listrange" => {
                    crate::jobs::start(node, ctx, &bck, msg).await
                }
                other => Err(unknown_action(other, &bck)),
            }
        }
        Method::DELETE => {
            let msg = opt_actmsg(body)
                .await?
                .unwrap_or_else(|| ActMsg::new(act::DESTROY_BCK));
            match msg.action.as_str() {
                act::DESTROY_BCK => {
                    primary(node)?
                        .update_bmd(|bmd| {
                            bmd.buckets
                                .remove(&bck.name)
                                .map(|_| ())
                                .ok_or_else(|| AisError::bucket_not_found(&bck))
                        })
                        .await?;
                    tracing::info!(bucket = %bck.cname(), "bucket destroyed");
                    Ok(empty(StatusCode::OK))
                }
                other => Err(unknown_action(other, &bck)),
            }
        }
        Method::PATCH => {
            let msg = opt_actmsg(body)
                .await?
                .ok_or_else(|| AisError::bad_request("missing action message in request body"))?;
            let reset = match msg.action.as_str() {
                act::SET_BPROPS => false,
                act::RESET_BPROPS => true,
                other => return Err(unknown_action(other, &bck)),
            };
            primary(node)?
                .update_bmd(|bmd| {
                    let props = bmd
                        .buckets
                        .get_mut(&bck.name)
                        .ok_or_else(|| AisError::bucket_not_found(&bck))?;
                    if reset {
                        let keep = (props.bid.clone(), props.created.clone());
                        *props = BucketProps {
                            bid: keep.0,
                            created: keep.1,
                            ..Default::default()
                        };
                        Ok(())
                    } else {
                        props.apply_patch(&msg.value)
                    }
                })
                .await?;
            Ok(empty(StatusCode::OK))
        }
        _ => Err(AisError::new(
            405,
            format!("method {} is not allowed on {}", ctx.method, ctx.path),
        )),
    }
}

fn unknown_action(action: &str, bck: &Bck) -> AisError {
    AisError::bad_request(format!(
        "invalid action \"{action}\" for bucket {} (e.g. create-bck, destroy-bck, list, set-bprops)",
        bck.cname()
    ))
}

async fn list_objects(node: &Arc<Node>, ctx: &Ctx, bck: &Bck, msg: LsoMsg) -> Res {
    bucket_exists(node, bck)?;
    let props = PropSet::parse(&msg.props)?;
    let page_size = if msg.pagesize == 0 || msg.pagesize > MAX_PAGE_SIZE {
        MAX_PAGE_SIZE
    } else {
        msg.pagesize
    } as usize;
    let after = if msg.continuation_token.is_empty() {
        msg.start_after.clone()
    } else {
        msg.continuation_token.clone()
    };
    let smap = node
        .meta
        .smap()
        .ok_or_else(|| AisError::new(503, "no cluster map yet"))?;
    let targets: Vec<_> = smap
        .active_targets()
        .filter(|t| msg.target.is_empty() || t.daemon_id == msg.target)
        .cloned()
        .collect();
    let limit = page_size.to_string();
    let props_q = props.to_query();
    let futs = targets.iter().map(|t| {
        let url = format!("{}/v1/internal/list/{}", t.url(), bck.name);
        let req = node.http.get(url).query(&[
            ("prefix", msg.prefix.as_str()),
            ("after", after.as_str()),
            ("limit", limit.as_str()),
            ("props", props_q.as_str()),
        ]);
        async move {
            let resp = req.send().await.map_err(|e| {
                AisError::new(
                    503,
                    format!(
                        "listing {}: target {} unreachable: {e}",
                        bck.cname(),
                        t.name()
                    ),
                )
            })?;
            if !resp.status().is_success() {
                let st = resp.status().as_u16();
                let txt = resp.text().await.unwrap_or_default();
                return Err(AisError::new(
                    st,
                    format!("listing {} on {}: {txt}", bck.cname(), t.name()),
                ));
            }
            resp.json::<TargetPage>()
                .await
                .map(|p| (t.daemon_id.clone(), p))
                .map_err(|e| AisError::internal(format!("bad listing page from {}: {e}", t.name())))
        }
    });
    let pages = futures::future::try_join_all(futs).await?;
    let mut all_done = true;
    let mut merged: Vec<(LsoEntry, bool)> = Vec::new();
    for (tid, page) in pages {
        all_done &= page.done;
        for e in page.entries {
            let owner = smap
                .owner(&bck.obj_uname(&e.name))
                .is_some_and(|o| o.daemon_id == tid);
            merged.push((e, owner));
        }
    }
    // Name order; for a name held by two targets (placement changed) keep the owner's copy.
    merged.sort_by(|a, b| a.0.name.cmp(&b.0.name).then(b.1.cmp(&a.1)));
    merged.dedup_by(|a, b| a.0.name == b.0.name);
    let more = !all_done || merged.len() > page_size;
    merged.truncate(page_size);
    let token = if more {
        merged.last().map(|e| e.0.name.clone()).unwrap_or_default()
    } else {
        String::new()
    };
    let uuid = if msg.uuid.is_empty() {
        ais_core::gen_id(10)
    } else {
        msg.uuid
    };
    let wants_msgpack = ctx
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/msgpack"));
    if wants_msgpack {
        let res = LsoResMsgpack {
            uuid,
            continuation_token: token,
            entries: merged.iter().map(|(e, _)| e.to_msgpack(&props)).collect(),
            flags: 0,
        };
        let raw = rmp_serde::to_vec_named(&res).map_err(|e| AisError::internal(e.to_string()))?;
        Ok(bytes_response(StatusCode::OK, "application/msgpack", raw))
    } else {
        json_ok(&LsoResJson {
            uuid,
            continuation_token: token,
            entries: merged.iter().map(|(e, _)| e.to_json(&props)).collect(),
            flags: 0,
        })
    }
}

/// Bodies up to this size that follow a redirected request are drained, so
/// the client's keep-alive connection stays usable (as Go's server does).
const DRAIN_LIMIT: u64 = 256 * 1024;

/// Object verbs at the proxy: validate, then redirect to the owner target
/// (301 for GET as AIStore does, 307 otherwise). The decision never waits for
/// the body; afterwards a small body is drained and a large one left unread
/// with `Connection: close`, so no client reuses a connection the server is
/// about to drop.
pub async fn objects(node: &Arc<Node>, ctx: &Ctx, rest: &str, body: Body) -> Res {
    let mut r = redirect_object(node, ctx, rest).await?;
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
            if tokio::time::timeout(std::time::Duration::from_secs(2), drain)
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

async fn redirect_object(node: &Arc<Node>, ctx: &Ctx, rest: &str) -> Res {
    expect_method(
        ctx,
        &[
            Method::GET,
            Method::PUT,
            Method::HEAD,
            Method::DELETE,
            Method::PATCH,
            Method::POST,
        ],
    )?;
    let (bck, obj) = bck_obj(ctx, rest)?;
    bucket_exists(node, &bck)?;
    if ctx.method == Method::GET {
        if let Some(etl) = crate::etl::etl_param(node, ctx) {
            crate::etl::check_etl_usable(node, &etl)?;
        }
    }
    let owner = node
        .meta
        .with_smap(|s| s.and_then(|s| s.owner(&bck.obj_uname(&obj)).map(|t| t.url().to_string())))
        .ok_or_else(|| {
            AisError::new(
                503,
                "the cluster has no storage targets yet; start a target",
            )
        })?;
    let status = if ctx.method == Method::GET {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::TEMPORARY_REDIRECT
    };
    Ok(redirect(ctx, &owner, status, &node.id, ""))
}
