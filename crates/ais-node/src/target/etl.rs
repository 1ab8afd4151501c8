//! ETL on a target: internal start/stop/stats/logs endpoints, keeping the
//! local runtimes in line with EtlMD, the inline transform of a locally
//! stored object on GET, and the object endpoint `runtime.command`
//! transformers read their input from.

use super::Target;
use crate::error::{self, ApiError};
use crate::http::{bytes_response, empty, json_ok, pct_decode, read_json, text_ok, Ctx, Res};
use crate::rpc::types::{EtlInitReq, ObjErr};
use ais_core::meta::EtlMd;
use ais_etl::{EtlError, EtlSpec, TargetEtlStats};
use axum::body::Body;
use axum::http::{Method, StatusCode};
use std::sync::Arc;

/// The ETL a GET names (`etl_name=`, or the seed era's `uuid=`).
pub fn etl_param(t: &Target, ctx: &Ctx) -> Option<String> {
    ctx.etl_param(|u| t.core.meta.etlmd().etls.contains_key(u))
}

/// Worker count per ETL on a target when the spec leaves it open: the host's
/// cores shared among the targets on this host.
pub fn default_pool(t: &Target) -> usize {
    if let Some(n) = std::env::var("AIS_ETL_POOL_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let me = &t.core.snode.public_net.node_ip_addr;
    let local = t.core.meta.with_smap(|s| {
        s.map(|s| {
            s.tmap
                .values()
                .filter(|n| &n.public_net.node_ip_addr == me)
                .count()
        })
        .unwrap_or(1)
    });
    (cores / local.max(1)).max(1)
}

/// How long an ETL started by an init may run here before the cluster's
/// EtlMD lists it: an init starts it on every target first and commits the
/// EtlMD entry after, so a reconcile in between (a rejoin, another ETL's
/// update) must not stop it. Stops and deletes stop targets directly too;
/// this only delays the cleanup of an init whose proxy died mid-way.
const PENDING_INIT_NS: u64 = 10 * 60 * 1_000_000_000;

/// Whether a runtime of `generation` must stop, given its EtlMD entry.
fn must_stop(entry: Option<&ais_core::meta::EtlMdEntry>, generation: u64, now_ns: u64) -> bool {
    match entry {
        Some(e) => e.stopped,
        // Not listed (yet): an init in progress, unless it is long past.
        None => now_ns.saturating_sub(generation) > PENDING_INIT_NS,
    }
}

/// Starts/stops local runtimes to match EtlMD (idempotent).
pub fn reconcile(t: &Arc<Target>, md: EtlMd) {
    let mgr = &t.etl;
    let now = ais_core::now_ns() as u64;
    let mut recheck = false;
    for name in mgr.names() {
        let generation = mgr.get(&name).map_or(0, |rt| rt.generation);
        let entry = md.etls.get(&name);
        if must_stop(entry, generation, now) {
            mgr.stop(&name);
        } else if entry.is_none() {
            recheck = true;
        }
    }
    if recheck {
        // An init kept running while unlisted: look again once its grace
        // is over, so one whose proxy never committed it does not linger.
        let t = t.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_nanos(
                PENDING_INIT_NS + 1_000_000_000,
            ))
            .await;
            reconcile(&t, t.core.meta.etlmd());
        });
    }
    for e in md.etls.into_values().filter(|e| !e.stopped) {
        let running = mgr
            .get(&e.name)
            .is_some_and(|rt| rt.generation == e.generation);
        if running {
            continue;
        }
        // A start that failed for this generation is not retried on every
        // metadata update (a failing ETL must not loop); a new init is.
        if mgr
            .start_failure(&e.name)
            .is_some_and(|(g, _)| g == e.generation)
        {
            continue;
        }
        let spec = match EtlSpec::from_json(&e.init_msg) {
            Ok(s) => s,
            Err(err) => {
                tracing::error!(etl = %e.name, error = %err, "invalid ETL in metadata");
                continue;
            }
        };
        let mgr = mgr.clone();
        let pool = default_pool(t);
        tokio::spawn(async move {
            tracing::info!(etl = %e.name, "starting ETL from cluster metadata");
            match mgr.start(spec, e.generation, pool).await {
                // Already failed for this generation (and logged then).
                Err(err) if err.kind() == ais_etl::EtlErrorKind::Failed => {}
                Err(err) => tracing::error!(etl = %e.name, error = %err, "failed to start ETL"),
                Ok(()) => {}
            }
        });
    }
}

/// `/v1/internal/etl[/NAME[/WHAT]]`.
pub async fn internal(t: &Arc<Target>, ctx: &Ctx, name: &str, what: &str, body: Body) -> Res {
    let mgr = &t.etl;
    let node = &t.core.name;
    match (ctx.method.clone(), name, what) {
        (Method::POST, "init", "") => {
            let req: EtlInitReq = read_json(body, 64 << 20, "ETL init request").await?;
            let spec = EtlSpec::from_json(&req.init_msg).map_err(|e| error::etl(node, "", e))?;
            let ename = spec.name.clone();
            mgr.start(spec, req.generation, default_pool(t))
                .await
                .map_err(|e| error::etl(node, &ename, e))?;
            json_ok(&mgr.get(&ename).map(|rt| rt.stats(&t.core.id)))
        }
        (Method::GET, "", "") => {
            let all: std::collections::BTreeMap<String, TargetEtlStats> = mgr.all_stats(&t.core.id);
            json_ok(&all)
        }
        (Method::DELETE, n, "") => {
            mgr.stop(n);
            Ok(empty(StatusCode::OK))
        }
        (Method::GET, n, "stats") => match mgr.stats_of(n, &t.core.id) {
            Some(s) => json_ok(&s),
            None => Err(ApiError::etl_not_found(node, n)),
        },
        (Method::GET, n, "errors") => {
            let errs: Vec<ObjErr> = mgr
                .get(n)
                .map(|rt| rt.obj_errors())
                .unwrap_or_default()
                .into_iter()
                .map(|e| ObjErr {
                    ecode: error::etl_kind_status(e.kind).as_u16(),
                    obj_name: e.obj_name,
                    msg: e.msg,
                })
                .collect();
            json_ok(&errs)
        }
        (Method::GET, n, "logs") => {
            let text = mgr
                .log_text(n)
                .ok_or_else(|| ApiError::etl_not_found(node, n))?;
            Ok(text_ok(&text))
        }
        _ => Err(ctx.unknown_path()),
    }
}

/// Inline transform of an object stored on this target.
/// How long an ETL GET waits for the ETL to finish starting on this target.
const ETL_START_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

pub async fn transform_local(
    t: &Arc<Target>,
    name: &str,
    stages: &[String],
    bck: &ais_core::Bck,
    obj: &str,
    args: &str,
) -> Res {
    let node = &t.core.name;
    let rt = runtime(t, name).await?;
    let cname = format!("{}/{obj}", bck.cname());
    let out = t
        .transform_verified(&rt, bck, obj, args)
        .await?
        .map_err(|e| stage_error(node, name, (!stages.is_empty()).then_some(1), &cname, e))?;
    let out = run_stages(t, stages, &cname, out, args).await?;
    Ok(bytes_response(
        StatusCode::OK,
        "application/octet-stream",
        out,
    ))
}

/// This target's runtime of ETL `name`; one still starting here (this
/// target just joined or restarted, and a rebalance brought it objects)
/// is waited for, not an error.
pub async fn runtime(t: &Target, name: &str) -> Result<Arc<ais_etl::EtlRuntime>, ApiError> {
    let node = &t.core.name;
    let deadline = std::time::Instant::now() + ETL_START_WAIT;
    loop {
        if let Some(rt) = t.etl.get(name) {
            return Ok(rt);
        }
        let err = match t.core.meta.etlmd().etls.get(name) {
            None => ApiError::etl_not_found(node, name),
            Some(e) if e.stopped => error::etl(node, name, EtlError::Stopped),
            Some(e)
                if t.etl
                    .start_failure(name)
                    .is_some_and(|(g, _)| g == e.generation) =>
            {
                let why = t.etl.start_failure(name).map(|f| f.1).unwrap_or_default();
                error::etl(
                    node,
                    name,
                    EtlError::Failed(format!("failed to start on this target: {why}")),
                )
            }
            Some(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
            Some(_) => ApiError::unavailable(format!(
                "{node}: etl job {name} is still starting on this target; retry shortly"
            )),
        };
        return Err(err);
    }
}

/// An ETL's failure on `cname`, naming the pipeline stage (1-based) when
/// the ETL is one of several.
pub fn stage_error(
    node: &str,
    name: &str,
    stage: Option<usize>,
    cname: &str,
    e: EtlError,
) -> ApiError {
    let which = match stage {
        Some(k) => format!("etl pipeline stage {k} ({name})"),
        None => format!("etl job {name}"),
    };
    let msg = match &e {
        EtlError::Transform { etype, emsg, trace } => {
            format!("{node}: {which} failed to transform {cname}: {etype}: {emsg}\n{trace}")
        }
        other => format!("{node}: {which} failed to transform {cname}: {other}"),
    };
    error::etl_kind(&e, msg)
}

/// The later stages of a pipeline, on this target: each gets the bytes the
/// one before produced (no round trip through a client), with the same
/// `etl_args`. A stage that fails is named.
pub async fn run_stages(
    t: &Target,
    stages: &[String],
    cname: &str,
    mut data: bytes::Bytes,
    args: &str,
) -> Result<bytes::Bytes, ApiError> {
    for (i, name) in stages.iter().enumerate() {
        let rt = runtime(t, name).await?;
        if !rt.takes_bytes() {
            return Err(ApiError::bad_request(format!(
                "etl pipeline stage {} ({name}) is an hpull:// runtime.command ETL: it reads its \
                 input back from the object itself, so it can only be a pipeline's first stage",
                i + 2
            )));
        }
        data = rt
            .transform_bytes(cname, &data, args)
            .await
            .map_err(|e| stage_error(&t.core.name, name, Some(i + 2), cname, e))?;
    }
    Ok(data)
}

/// `GET|HEAD /v1/etl/_object/<etl>/<token>/<escaped uname>`: how a
/// `runtime.command` transformer (hpull) reads the object it was asked to
/// transform, per AIStore's transformer contract.
pub async fn transformer_object(
    t: &Arc<Target>,
    ctx: &Ctx,
    etl: &str,
    secret: &str,
    uname: &str,
) -> Res {
    let rt = t
        .etl
        .get(etl)
        .ok_or_else(|| ApiError::etl_not_found(&t.core.name, etl))?;
    let uname = pct_decode(uname)?;
    // A token the target gave the server for this object, for the request
    // in flight: no standing key to any other object on this target.
    if !rt.object_token_ok(secret, &uname) {
        return Err(ApiError::Unauthorized(format!(
            "invalid ETL read-back token for {uname} (a token is good for the object of one \
             transform request, while it runs)"
        )));
    }
    let (bck, obj) = ais_core::Bck::parse_uname(&uname)?;
    ais_core::names::validate_object_name(&obj)?;
    let reader = t
        .store
        .open_obj(&bck, &obj)
        .await
        .map_err(|e| error::storage(&t.core.name, &bck, &obj, e))?;
    let size = reader.info.attrs.size;
    let body = match reader.body {
        ais_storage::ObjBody::Small(b) => Body::from(b),
        ais_storage::ObjBody::Mapped(b) => Body::from(b),
        ais_storage::ObjBody::File(f) => Body::from_stream(tokio_util::io::ReaderStream::new(
            tokio::fs::File::from_std(f),
        )),
    };
    let mut r = axum::response::Response::new(if ctx.method == Method::HEAD {
        Body::empty()
    } else {
        body
    });
    r.headers_mut()
        .insert(axum::http::header::CONTENT_LENGTH, size.into());
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ais_core::meta::EtlMdEntry;

    fn entry(stopped: bool) -> EtlMdEntry {
        EtlMdEntry {
            name: "e".into(),
            init_msg: serde_json::Value::Null,
            stopped,
            xaction_id: String::new(),
            generation: 5,
        }
    }

    #[test]
    fn an_init_not_yet_in_etlmd_keeps_running_until_long_past() {
        let now = 1_000 * PENDING_INIT_NS;
        // Listed: runs unless stopped.
        assert!(!must_stop(Some(&entry(false)), now - 1, now));
        assert!(must_stop(Some(&entry(true)), now - 1, now));
        // Not listed: an init between its start on the targets and its
        // EtlMD commit...
        assert!(!must_stop(None, now - 1_000_000_000, now));
        // ...or one whose proxy never committed it, long ago.
        assert!(must_stop(None, now - PENDING_INIT_NS - 1, now));
        // A runtime that vanished meanwhile (generation 0): stop.
        assert!(must_stop(None, 0, now));
    }
}
