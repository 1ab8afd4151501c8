//! Bucket verbs at the proxy: list buckets, HEAD props, create/destroy and
//! property changes through the primary (BMD), list-objects and offline jobs
//! started by action messages.

use super::{Proxy, CONTROL_BODY_LIMIT};
use crate::error::{ApiError, ApiResult};
use crate::http::{empty, json_ok, read_body, Ctx, Res};
use ais_core::api::{act, ActMsg, LsoMsg};
use ais_core::meta::BucketProps;
use ais_core::Bck;
use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode};
use std::sync::Arc;

/// Parses an optional ActMsg body (GET/DELETE may carry none when sent by curl).
async fn opt_actmsg(body: Body) -> ApiResult<Option<ActMsg>> {
    let raw = read_body(body, CONTROL_BODY_LIMIT).await?;
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    Ok(Some(ActMsg::parse(&raw)?))
}

fn unknown_action(action: &str, bck: &Bck) -> ApiError {
    ApiError::bad_request(format!(
        "invalid action \"{action}\" for bucket {} (e.g. create-bck, destroy-bck, list, set-bprops)",
        bck.cname()
    ))
}

/// `/v1/buckets`: every bucket.
pub fn list_buckets(p: &Proxy, ctx: &Ctx) -> Res {
    ctx.expect_method(&[Method::GET])?;
    // `presence`: every bucket here is in the cluster (a remote bucket is
    // added on first use), so each value lists the same ones.
    ctx.query
        .reject_unknown("a bucket listing", &["presence"])?;
    let provider = match ctx.query.get("provider").filter(|p| !p.is_empty()) {
        Some(prov) => Some(ais_core::names::normalize_provider(prov)?),
        None => None,
    };
    if let Some(v) = ctx.query.get("presence") {
        if !matches!(v, "0" | "1" | "2" | "3") {
            return Err(ApiError::bad_request(format!(
                "presence=\"{v}\": expected 0 (any), 1 (in the cluster or its backend), 2 (in the cluster), 3 (at the backend only)"
            )));
        }
    }
    let list: Vec<Bck> = p.core.meta.with_bmd(|b| {
        b.buckets
            .iter()
            .filter(|(_, props)| provider.as_deref().is_none_or(|pv| props.provider == pv))
            // presence=3: buckets only at a backend, never added here (none known).
            .filter(|_| ctx.query.get("presence") != Some("3"))
            .map(|(n, props)| Bck {
                name: n.clone(),
                provider: props.provider.clone(),
                namespace: Default::default(),
            })
            .collect()
    });
    json_ok(&list)
}

/// `/v1/buckets/B`.
pub async fn bucket(p: &Arc<Proxy>, ctx: &Ctx, name: &str, body: Body) -> Res {
    let bck = ctx.bck(name)?;
    match ctx.method {
        Method::HEAD if ctx.query.get("presence").is_some() || ctx.query.get("uuid").is_some() => {
            info(p, ctx, &bck).await
        }
        Method::HEAD => {
            let props = super::remote::props(p, &bck).await?;
            let mut r = empty(StatusCode::OK);
            let raw =
                serde_json::to_string(&props).map_err(|e| ApiError::internal(e.to_string()))?;
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
                            ApiError::bad_request(format!("malformed list-objects request: {e}"))
                        })?
                    };
                    super::listing::list_objects(p, ctx, &bck, lso).await
                }
                "summary-bck" => summary(p, &bck, &msg.value).await,
                "show-inventory" => super::nbi::show(p, &bck, &msg).await,
                other => Err(unknown_action(other, &bck)),
            }
        }
        Method::POST => {
            let msg = opt_actmsg(body)
                .await?
                .ok_or_else(|| ApiError::bad_request("missing action message in request body"))?;
            match msg.action.as_str() {
                act::CREATE_BCK => create(p, &bck, &msg).await,
                "etl-bck" | "copy-bck" | "etl-listrange" | "copy-listrange" => {
                    super::jobs::start(p, ctx, &bck, msg).await
                }
                "scrub-bck" => super::jobs::start_scrub(p, &bck, msg).await,
                "create-inventory" => super::nbi::create(p, &bck, &msg).await,
                "make-n-copies" => {
                    // AIStore's n-way mirror: the value is the number of
                    // copies (1 turns mirroring off); then every object
                    // gets that many (extra copies are removed).
                    let n = msg
                        .value
                        .as_u64()
                        .or_else(|| msg.value.as_str().and_then(|s| s.parse().ok()))
                        .filter(|n| (1..=16).contains(n))
                        .ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "make-n-copies: the value must be a number of copies from 1 to 16, not {}",
                                msg.value
                            ))
                        })?;
                    let patch = serde_json::json!({"mirror": {"enabled": n > 1, "copies": n}});
                    set_props(p, &bck, &patch, false).await?;
                    super::jobs::start_make_n_copies(p, &bck).await
                }
                "move-bck" => super::jobs::start_move(p, ctx, &bck).await,
                "prefetch-listrange" => {
                    super::jobs::start_remote(p, &bck, msg, crate::rpc::types::JOB_PREFETCH).await
                }
                "ec-encode" => {
                    // The value: EC props to set first (`{"data_slices": 2, ...}`
                    // or `{"ec": {...}}`); erasure coding is switched on.
                    let ec = match msg.value.get("ec") {
                        Some(v) => v.clone(),
                        None if msg.value.is_object() => msg.value.clone(),
                        None => serde_json::json!({}),
                    };
                    let mut patch = serde_json::json!({ "ec": ec });
                    patch["ec"]["enabled"] = serde_json::Value::Bool(true);
                    set_props(p, &bck, &patch, false).await?;
                    super::jobs::start_ec_encode(p, &bck).await
                }
                other => Err(unknown_action(other, &bck)),
            }
        }
        Method::PUT => {
            let msg = opt_actmsg(body)
                .await?
                .ok_or_else(|| ApiError::bad_request("missing action message in request body"))?;
            match msg.action.as_str() {
                "archive" => super::archive::start(p, &bck, msg).await,
                other => Err(unknown_action(other, &bck)),
            }
        }
        Method::DELETE => {
            let msg = opt_actmsg(body)
                .await?
                .unwrap_or_else(|| ActMsg::new(act::DESTROY_BCK));
            match msg.action.as_str() {
                "evict-listrange" => {
                    super::jobs::start_remote(p, &bck, msg, crate::rpc::types::JOB_EVICT).await
                }
                crate::rpc::types::JOB_DELETE => super::jobs::start_delete(p, &bck, msg).await,
                "destroy-inventory" => super::nbi::destroy(p, &bck, &msg).await,
                // A remote bucket leaves the cluster with its cached copies;
                // the backend keeps it.
                act::DESTROY_BCK | "evict-remote-bck" => {
                    if msg.action != act::DESTROY_BCK
                        && !p.core.bucket_props(&bck).is_ok_and(|b| b.provider != "ais")
                    {
                        return Err(ApiError::bad_request(format!(
                            "evict-remote-bck: {} is not a remote bucket",
                            bck.cname()
                        )));
                    }
                    p.primary()?
                        .update_bmd(|bmd| {
                            bmd.buckets
                                .remove(&bck.name)
                                .map(|_| ())
                                .ok_or_else(|| ApiError::bucket_not_found(&bck))
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
                .ok_or_else(|| ApiError::bad_request("missing action message in request body"))?;
            let reset = match msg.action.as_str() {
                act::SET_BPROPS => false,
                act::RESET_BPROPS => true,
                other => return Err(unknown_action(other, &bck)),
            };
            let turned_on = set_props(p, &bck, &msg.value, reset).await?;
            if turned_on {
                // Existing objects get their parts by a tracked job; new
                // writes are coded from now on.
                let r = super::jobs::start_ec_encode(p, &bck).await?;
                tracing::info!(bucket = %bck.cname(), "erasure coding enabled: ec-encode job started");
                return Ok(r);
            }
            Ok(empty(StatusCode::OK))
        }
        _ => Err(ctx.not_allowed()),
    }
}

/// `GET /v1/buckets/B` with `summary-bck`, value `{uuid, prefix, cached,
/// present}`: no uuid starts a summary (202, its id as text); a uuid polls
/// it (202 while it runs, 200 with `[summary]` when done).
async fn summary(p: &Arc<Proxy>, bck: &Bck, value: &serde_json::Value) -> Res {
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Msg {
        #[serde(default)]
        uuid: String,
        #[serde(default)]
        prefix: String,
        #[serde(default)]
        cached: bool,
        #[serde(default)]
        present: bool,
    }
    let m: Msg = if value.is_null() {
        Msg::default()
    } else {
        serde_json::from_value(value.clone())
            .map_err(|e| ApiError::bad_request(format!("malformed summary-bck request: {e}")))?
    };
    if m.uuid.is_empty() {
        let ask = super::summary::Ask {
            prefix: m.prefix,
            remote: !(m.cached || m.present),
        };
        let id = super::summary::start(p, bck, ask)?;
        return Ok(crate::http::bytes_response(
            StatusCode::ACCEPTED,
            "text/plain; charset=utf-8",
            id.into_bytes(),
        ));
    }
    match super::summary::poll(p, &m.uuid)? {
        None => Ok(empty(StatusCode::ACCEPTED)),
        Some(v) => json_ok(&[v]),
    }
}

/// `HEAD /v1/buckets/B?presence=N[&bsumm_remote=B][&uuid=ID]`: bucket info
/// (props and a summary) as AIStore's `Bucket.info()` asks for it: 202
/// with the summary's id in `Ais-Xaction-Id`, then, polled with `uuid`,
/// 202 until 200 with `Ais-Bucket-Summ`.
async fn info(p: &Arc<Proxy>, ctx: &Ctx, bck: &Bck) -> Res {
    ctx.query.reject_unknown(
        "HEAD of a bucket (info)",
        &["presence", "bsumm_remote", "uuid", "prefix"],
    )?;
    let presence = ctx.query.get("presence").unwrap_or("0");
    if !matches!(presence, "0" | "1" | "2" | "3" | "4" | "5") {
        return Err(ApiError::bad_request(format!(
            "presence={presence}: expected 0..5 (FLTPresence)"
        )));
    }
    let props = super::remote::props(p, bck).await?;
    let raw = serde_json::to_string(&props).map_err(|e| ApiError::internal(e.to_string()))?;
    let with_props = |mut r: axum::response::Response| {
        if let Ok(v) = HeaderValue::from_str(&raw) {
            r.headers_mut().insert("Ais-Bucket-Props", v);
        }
        r
    };
    match ctx.query.get("uuid").filter(|u| !u.is_empty()) {
        None => {
            let remote = ctx
                .query
                .get("bsumm_remote")
                .is_none_or(|v| v == "true" || v == "True");
            let ask = super::summary::Ask {
                prefix: ctx.query.get("prefix").unwrap_or("").to_string(),
                remote,
            };
            let id = super::summary::start(p, bck, ask)?;
            let mut r = with_props(empty(StatusCode::ACCEPTED));
            if let Ok(v) = HeaderValue::from_str(&id) {
                r.headers_mut().insert("Ais-Xaction-Id", v);
            }
            Ok(r)
        }
        Some(id) => match super::summary::poll(p, id)? {
            None => Ok(with_props(empty(StatusCode::ACCEPTED))),
            Some(v) => {
                let mut r = with_props(empty(StatusCode::OK));
                if let Ok(v) = HeaderValue::from_str(&v.to_string()) {
                    r.headers_mut().insert("Ais-Bucket-Summ", v);
                }
                Ok(r)
            }
        },
    }
}

async fn create(p: &Proxy, bck: &Bck, msg: &ActMsg) -> Res {
    if bck.is_remote() {
        // A remote bucket is added (its backend must have it), not created.
        if p.core.bucket_props(bck).is_ok() {
            return Err(ApiError::BucketExists(bck.cname()));
        }
        super::remote::add(p, bck, &msg.value).await?;
        return Ok(empty(StatusCode::OK));
    }
    let primary = p.primary()?;
    let mut props = BucketProps {
        bid: ais_core::gen_id(10),
        created: ais_core::now_ns().to_string(),
        ..p.core.config.current().bucket_defaults()
    };
    props.apply_patch(&msg.value)?;
    if !props.backend_bck.name.is_empty() {
        backend_exists(bck, &props).await?;
    }
    let targets = p.core.targets().len();
    if props.ec.enabled && props.ec.targets_needed() > targets {
        return Err(ApiError::bad_request(format!(
            "erasure coding {}+{} for {} needs at least {} targets (the owner and one per slice); the cluster has {targets}",
            props.ec.data_slices,
            props.ec.parity_slices,
            bck.cname(),
            props.ec.targets_needed()
        )));
    }
    primary
        .update_bmd(|bmd| {
            if bmd.buckets.contains_key(&bck.name) {
                return Err(ApiError::BucketExists(bck.cname()));
            }
            bmd.buckets.insert(bck.name.clone(), props);
            Ok(())
        })
        .await?;
    tracing::info!(bucket = %bck.cname(), "bucket created");
    Ok(empty(StatusCode::OK))
}

/// Applies a props patch (or a reset) to B; true if erasure coding was
/// switched on by it. Erasure coding needs `data + parity + 1` active
/// targets (the owner and one per slice): refused otherwise.
/// 404 unless the remote bucket `props.backend_bck` names exists there.
async fn backend_exists(bck: &Bck, props: &BucketProps) -> ApiResult<()> {
    let remote = crate::backend::Remote::for_bucket(&bck.name, props)?;
    if remote.head_bucket(crate::backend::http()).await? {
        return Ok(());
    }
    Err(ApiError::Peer {
        status: StatusCode::NOT_FOUND,
        tcode: "ErrRemoteBckNotFound".into(),
        message: format!(
            "backend_bck of {}: {} bucket \"{}\" does not exist",
            bck.cname(),
            props.backend_bck.provider,
            props.backend_bck.name
        ),
    })
}

async fn set_props(
    p: &Proxy,
    bck: &Bck,
    patch: &serde_json::Value,
    reset: bool,
) -> ApiResult<bool> {
    // A remote bucket not in use yet is added first (its backend has it).
    super::remote::props(p, bck).await?;
    let targets = p.core.targets().len();
    let defaults = p.core.config.current().bucket_defaults();
    let mut turned_on = false;
    if !reset && patch.get("backend_bck").is_some() {
        // A backend must exist there before objects are looked for in it.
        let now = p.core.bucket_props(bck)?;
        let mut probe = now.clone();
        probe.apply_patch(patch)?;
        let b = &probe.backend_bck;
        if !b.name.is_empty() && *b != now.backend_bck {
            // Cached copies are the backend's objects: a bucket switched
            // to another backend would serve the old one's as the new
            // one's, and local objects would be taken for cached ones.
            if !now.backend_bck.name.is_empty() {
                return Err(ApiError::Conflict(format!(
                    "{} fronts {}://{} already: clear backend_bck first (backend_bck=none), \
                     then set it on the empty bucket",
                    bck.cname(),
                    now.backend_bck.provider,
                    now.backend_bck.name
                )));
            }
            if super::listing::holds_objects(p, bck).await? {
                return Err(ApiError::Conflict(format!(
                    "backend_bck can be set on an empty bucket only: {} holds objects (they \
                     would be taken for the backend's)",
                    bck.cname()
                )));
            }
            backend_exists(bck, &probe).await?;
        }
    }
    p.primary()?
        .update_bmd(|bmd| {
            let props = bmd
                .buckets
                .get_mut(&bck.name)
                .ok_or_else(|| ApiError::bucket_not_found(bck))?;
            let was = props.ec.enabled;
            let mut next = props.clone();
            if reset {
                next = BucketProps {
                    provider: std::mem::take(&mut next.provider),
                    extra: std::mem::take(&mut next.extra),
                    bid: std::mem::take(&mut next.bid),
                    created: std::mem::take(&mut next.created),
                    renaming: std::mem::take(&mut next.renaming),
                    backend_bck: std::mem::take(&mut next.backend_bck),
                    ..defaults.clone()
                };
            } else {
                next.apply_patch(patch).map_err(ApiError::from)?;
            }
            if next.ec.enabled && next.ec.targets_needed() > targets {
                return Err(ApiError::bad_request(format!(
                    "erasure coding {}+{} for {} needs at least {} targets (the owner and one per slice); the cluster has {targets}",
                    next.ec.data_slices,
                    next.ec.parity_slices,
                    bck.cname(),
                    next.ec.targets_needed()
                )));
            }
            turned_on = next.ec.enabled && !was;
            *props = next;
            Ok(())
        })
        .await?;
    Ok(turned_on)
}
