//! ETL over HTTP. Proxy side: the control plane (`/v1/etl...`, current and
//! legacy paths): init fans out to every target and waits until all are ready
//! (or cleans up everywhere and reports the first error), then records the ETL
//! in the replicated EtlMD so restarted and joining targets start it too.
//! Target side: internal start/stop/stats/logs endpoints, reconciliation with
//! EtlMD, and the inline transform of a locally stored object on GET.

use crate::http::{json_ok, read_body, split_first, text_ok, unknown_path, Ctx, Res};
use crate::node::Node;
use ais_core::meta::{EtlMd, EtlMdEntry};
use ais_core::AisError;
use ais_etl::{status_of, EtlError, EtlSpec, TargetEtlStats};
use axum::body::Body;
use axum::http::Method;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

pub fn etl_err(node: &Node, name: &str, e: EtlError) -> AisError {
    match e {
        EtlError::NotFound(_) => AisError::etl_not_found(&node.name, name),
        EtlError::Stopped => AisError::new(
            400,
            format!(
                "{}: etl job {name} is stopped (start it with `ais etl start {name}`)",
                node.name
            ),
        ),
        // Parse-time errors (invalid name, runtime, comm type...) have no ETL name yet.
        e if name.is_empty() => AisError::new(status_of(&e), format!("{}: {e}", node.name)),
        e => AisError::new(status_of(&e), format!("{}: etl job {name}: {e}", node.name)),
    }
}

#[derive(Serialize, Deserialize)]
struct InitReq {
    init_msg: Value,
    generation: u64,
}

/// The ETL named by `etl_name=` (or the seed era's `uuid=`, when it names an ETL).
pub fn etl_param(node: &Node, ctx: &Ctx) -> Option<String> {
    if let Some(n) = ctx.query.get("etl_name").filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    let u = ctx.query.get("uuid").filter(|n| !n.is_empty())?;
    node.meta
        .etlmd()
        .etls
        .contains_key(u)
        .then(|| u.to_string())
}

/// Proxy-side check before redirecting an ETL GET.
pub fn check_etl_usable(node: &Node, name: &str) -> Result<(), AisError> {
    match node.meta.etlmd().etls.get(name) {
        None => Err(AisError::etl_not_found(&node.name, name)),
        Some(e) if e.stopped => Err(etl_err(node, name, EtlError::Stopped)),
        Some(_) => Ok(()),
    }
}

/// Worker count per ETL on a target when the spec leaves it open: the host's
/// cores shared among the targets on this host.
pub fn default_pool(node: &Node) -> usize {
    if let Some(n) = std::env::var("AIS_ETL_POOL_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let local = node.meta.with_smap(|s| {
        s.map(|s| {
            s.tmap
                .values()
                .filter(|t| t.public_net.node_ip_addr == node.snode.public_net.node_ip_addr)
                .count()
        })
        .unwrap_or(1)
    });
    (cores / local.max(1)).max(1)
}

// ---------------------------------------------------------------- target side

/// Starts/stops local runtimes to match EtlMD (idempotent).
pub fn reconcile(node: &Arc<Node>, md: EtlMd) {
    let Some(mgr) = node.etl.clone() else { return };
    for name in mgr.names() {
        match md.etls.get(&name) {
            None => {
                mgr.stop(&name);
            }
            Some(e) if e.stopped => {
                mgr.stop(&name);
            }
            _ => {}
        }
    }
    for e in md.etls.into_values().filter(|e| !e.stopped) {
        let running = mgr
            .get(&e.name)
            .is_some_and(|rt| rt.generation == e.generation);
        if running {
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
        let pool = default_pool(node);
        tokio::spawn(async move {
            tracing::info!(etl = %e.name, "starting ETL from cluster metadata");
            if let Err(err) = mgr.start(spec, e.generation, pool).await {
                tracing::error!(etl = %e.name, error = %err, "failed to start ETL");
            }
        });
    }
}

pub async fn target_internal(node: &Arc<Node>, ctx: &Ctx, rest: &str, body: Body) -> Res {
    let mgr = node
        .etl
        .clone()
        .ok_or_else(|| AisError::internal("ETL is not available on this node"))?;
    let (name, what) = split_first(rest);
    match (ctx.method.clone(), name, what) {
        (Method::POST, "init", "") => {
            let req: InitReq = serde_json::from_slice(&read_body(body, 64 << 20).await?)
                .map_err(|e| AisError::bad_request(format!("malformed ETL init request: {e}")))?;
            let spec = EtlSpec::from_json(&req.init_msg).map_err(|e| etl_err(node, "", e))?;
            let ename = spec.name.clone();
            mgr.start(spec, req.generation, default_pool(node))
                .await
                .map_err(|e| etl_err(node, &ename, e))?;
            json_ok(&mgr.get(&ename).map(|rt| rt.stats(&node.id)))
        }
        (Method::GET, "", "") => {
            let all: Vec<(String, TargetEtlStats)> = mgr
                .names()
                .into_iter()
                .filter_map(|n| mgr.get(&n).map(|rt| (n, rt.stats(&node.id))))
                .collect();
            json_ok(
                &all.into_iter()
                    .collect::<std::collections::BTreeMap<_, _>>(),
            )
        }
        (Method::DELETE, n, "") => {
            mgr.stop(n);
            Ok(crate::http::empty(axum::http::StatusCode::OK))
        }
        (Method::GET, n, "stats") => match mgr.get(n) {
            Some(rt) => json_ok(&rt.stats(&node.id)),
            None => Err(AisError::etl_not_found(&node.name, n)),
        },
        (Method::GET, n, "errors") => match mgr.get(n) {
            Some(rt) => json_ok(&rt.obj_errors()),
            None => json_ok(&Vec::<ais_etl::ObjError>::new()),
        },
        (Method::GET, n, "logs") => {
            let text = mgr
                .log_text(n)
                .ok_or_else(|| AisError::etl_not_found(&node.name, n))?;
            Ok(text_ok(&text))
        }
        _ => Err(unknown_path(ctx)),
    }
}

/// Inline transform of an object stored on this target.
pub async fn transform_local(
    node: &Arc<Node>,
    name: &str,
    bck: &ais_core::Bck,
    obj: &str,
    args: &str,
) -> Res {
    let mgr = node
        .etl
        .clone()
        .ok_or_else(|| AisError::internal("ETL is not available on this node"))?;
    let rt = match mgr.get(name) {
        Some(rt) => rt,
        None => {
            return Err(match node.meta.etlmd().etls.get(name) {
                None => AisError::etl_not_found(&node.name, name),
                Some(e) if e.stopped => etl_err(node, name, EtlError::Stopped),
                Some(_) => AisError::new(
                    503,
                    format!(
                        "{}: etl job {name} is still starting on this target; retry shortly",
                        node.name
                    ),
                ),
            })
        }
    };
    let store = node.store()?;
    let info = store
        .head(bck, obj)
        .await
        .map_err(|e| crate::target::storage_err(node, bck, obj, e))?;
    let path = store.obj_path(bck, obj);
    let cname = format!("{}/{obj}", bck.cname());
    let out = rt
        .transform(&cname, &path.to_string_lossy(), info.attrs.size, args)
        .await
        .map_err(|e| {
            let msg = match &e {
                EtlError::Transform { etype, emsg, trace } => {
                    format!(
                        "{}: etl job {name} failed to transform {cname}: {etype}: {emsg}\n{trace}",
                        node.name
                    )
                }
                other => format!(
                    "{}: etl job {name} failed to transform {cname}: {other}",
                    node.name
                ),
            };
            AisError::new(status_of(&e), msg).with_tcode("ErrETL")
        })?;
    Ok(crate::http::bytes_response(
        axum::http::StatusCode::OK,
        "application/octet-stream",
        out.to_vec(),
    ))
}

/// `GET|HEAD /v1/etl/_object/<etl>/<secret>/<escaped uname>`: how a
/// `runtime.command` transformer (hpull) reads the object it was asked to
/// transform, per AIStore's transformer contract.
pub async fn transformer_object(node: &Arc<Node>, ctx: &Ctx, rest: &str) -> Res {
    let rest = rest
        .strip_prefix("_object/")
        .ok_or_else(|| unknown_path(ctx))?;
    let (etl, rest) = split_first(rest);
    let (secret, uname) = split_first(rest);
    let mgr = node
        .etl
        .clone()
        .ok_or_else(|| AisError::internal("ETL is not available on this node"))?;
    let rt = mgr
        .get(etl)
        .ok_or_else(|| AisError::etl_not_found(&node.name, etl))?;
    if rt.secret != secret {
        return Err(AisError::new(401, "invalid ETL object secret"));
    }
    let uname = crate::http::pct_decode(uname)?;
    let (bck, obj) = ais_core::Bck::parse_uname(&uname)?;
    ais_core::names::validate_object_name(&obj)?;
    let store = node.store()?;
    let reader = store
        .open_obj(&bck, &obj)
        .await
        .map_err(|e| crate::target::storage_err(node, &bck, &obj, e))?;
    let size = reader.info.attrs.size;
    let body = match reader.body {
        ais_storage::ObjBody::Small(b) => Body::from(b),
        ais_storage::ObjBody::Mapped(m) => Body::from(bytes::Bytes::from_owner(m)),
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

// ----------------------------------------------------------------- proxy side

fn primary(node: &Node) -> Result<&Arc<ais_cluster::Primary>, AisError> {
    node.primary
        .as_ref()
        .ok_or_else(|| AisError::new(503, format!("{} is not the primary proxy", node.name)))
}

fn targets(node: &Node) -> Vec<ais_core::meta::Snode> {
    node.meta.with_smap(|s| {
        s.map(|s| s.active_targets().cloned().collect())
            .unwrap_or_default()
    })
}

/// Proxy `/v1/etl[/...]`.
pub async fn proxy(node: &Arc<Node>, ctx: &Ctx, rest: &str, body: Body) -> Res {
    let (a, tail) = split_first(rest);
    let (b, tail2) = split_first(tail);
    match (ctx.method.clone(), a, b) {
        (Method::PUT, "", "") => init(node, body, false).await,
        (Method::POST, "init_code" | "init_spec" | "build" | "init", "") => {
            init(node, body, true).await
        }
        (Method::GET, "" | "list", "") => list(node).await,
        (Method::DELETE, "stop", n) if !n.is_empty() => delete(node, n).await,
        (Method::GET, "logs", n) if !n.is_empty() => logs(node, n, tail2).await,
        (Method::GET, "health", n)
            if !n.is_empty() && !["logs", "health", "metrics", "details", "stats"].contains(&n) =>
        {
            health(node, n).await
        }
        (Method::GET, n, "") => details(node, n, ctx.query.get("uuid").unwrap_or("")).await,
        (Method::GET, n, "logs") => logs(node, n, tail2).await,
        (Method::GET, n, "health") => health(node, n).await,
        (Method::GET, n, "metrics" | "stats") => stats_json(node, n).await,
        (Method::POST, n, "stop") => stop(node, n).await,
        (Method::POST, n, "start") => start(node, n).await,
        (Method::DELETE, n, "") => delete(node, n).await,
        _ => Err(unknown_path(ctx)),
    }
}

fn entry(node: &Node, name: &str) -> Result<EtlMdEntry, AisError> {
    node.meta
        .etlmd()
        .etls
        .get(name)
        .cloned()
        .ok_or_else(|| AisError::etl_not_found(&node.name, name))
}

/// Starts the ETL on every target and waits for all; on any failure stops it everywhere.
async fn start_everywhere(
    node: &Arc<Node>,
    name: &str,
    init_msg: &Value,
    generation: u64,
    timeout: Duration,
) -> Result<(), AisError> {
    let ts = targets(node);
    if ts.is_empty() {
        return Err(AisError::new(
            503,
            "the cluster has no targets to run the ETL on",
        ));
    }
    let req = InitReq {
        init_msg: init_msg.clone(),
        generation,
    };
    let futs = ts.iter().map(|t| {
        let r = node
            .http
            .post(format!("{}/v1/internal/etl/init", t.url()))
            .timeout(timeout + Duration::from_secs(30))
            .json(&req);
        async move {
            match r.send().await {
                Ok(resp) if resp.status().is_success() => Ok(()),
                Ok(resp) => {
                    let st = resp.status().as_u16();
                    let txt = resp.text().await.unwrap_or_default();
                    let msg = serde_json::from_str::<ais_core::error::ErrBody>(&txt)
                        .map(|b| b.message)
                        .unwrap_or(txt);
                    Err(AisError::new(st, msg))
                }
                Err(e) => Err(AisError::new(503, format!("{} unreachable: {e}", t.name()))),
            }
        }
    });
    let results = futures::future::join_all(futs).await;
    if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
        cleanup_everywhere(node, name).await;
        return Err(AisError::new(
            e.status,
            format!("ETL {name} failed to initialize: {}", e.message),
        ));
    }
    Ok(())
}

async fn cleanup_everywhere(node: &Node, name: &str) {
    let futs = targets(node).into_iter().map(|t| {
        let r = node
            .http
            .delete(format!("{}/v1/internal/etl/{name}", t.url()));
        async move {
            let _ = r.send().await;
        }
    });
    futures::future::join_all(futs).await;
}

async fn init(node: &Arc<Node>, body: Body, legacy: bool) -> Res {
    let p = primary(node)?;
    let raw = read_body(body, 256 << 20).await?;
    let mut msg: Value = serde_json::from_slice(&raw).map_err(|e| {
        AisError::bad_request(format!("malformed ETL init message (expected JSON): {e}"))
    })?;
    let spec = EtlSpec::from_json(&msg).map_err(|e| etl_err(node, "", e))?;
    let name = spec.name.clone();
    if node.meta.etlmd().etls.contains_key(&name) {
        return Err(AisError::etl_exists(&node.name, &name));
    }
    // Normalise so `Etl.view()` finds "name" and "communication".
    if let Some(o) = msg.as_object_mut() {
        o.insert("name".into(), name.clone().into());
        o.insert("communication".into(), spec.comm.as_str().into());
        o.insert("runtime_resolved".into(), spec.runtime.clone().into());
        o.entry("obj_timeout")
            .or_insert_with(|| ais_etl::spec::fmt_duration(spec.obj_timeout).into());
        o.entry("init_timeout")
            .or_insert_with(|| ais_etl::spec::fmt_duration(spec.init_timeout).into());
    }
    let generation = ais_core::now_ns() as u64;
    start_everywhere(node, &name, &msg, generation, spec.init_timeout).await?;
    let xid = format!("etl-{}", ais_core::gen_id(10));
    let entry = EtlMdEntry {
        name: name.clone(),
        init_msg: msg,
        stopped: false,
        xaction_id: xid.clone(),
        generation,
    };
    let res = p
        .update_etlmd(|md| {
            if md.etls.contains_key(&name) {
                return Err(AisError::etl_exists(&node.name, &name));
            }
            md.etls.insert(name.clone(), entry);
            Ok(())
        })
        .await;
    if let Err(e) = res {
        if e.status != 409 {
            cleanup_everywhere(node, &name).await;
        }
        return Err(e);
    }
    tracing::info!(etl = %name, "ETL initialized on all targets");
    Ok(text_ok(if legacy { &name } else { &xid }))
}

async fn all_target_stats(
    node: &Node,
) -> Vec<(String, std::collections::BTreeMap<String, TargetEtlStats>)> {
    let futs = targets(node).into_iter().map(|t| {
        let r = node.http.get(format!("{}/v1/internal/etl", t.url()));
        async move {
            let m = match r.send().await {
                Ok(resp) => resp.json().await.unwrap_or_default(),
                Err(_) => Default::default(),
            };
            (t.daemon_id, m)
        }
    });
    futures::future::join_all(futs).await
}

#[derive(Serialize)]
struct EtlListEntry {
    id: String,
    stage: String,
    xaction_id: String,
    communication: String,
    obj_count: u64,
    in_bytes: u64,
    out_bytes: u64,
    err_count: u64,
}

async fn list(node: &Arc<Node>) -> Res {
    let md = node.meta.etlmd();
    let stats = all_target_stats(node).await;
    let out: Vec<EtlListEntry> = md
        .etls
        .values()
        .map(|e| {
            let per: Vec<&TargetEtlStats> =
                stats.iter().filter_map(|(_, m)| m.get(&e.name)).collect();
            let stage = if e.stopped {
                "Aborted"
            } else if per.len() == stats.len() {
                "Running"
            } else {
                "Initializing"
            };
            EtlListEntry {
                id: e.name.clone(),
                stage: stage.into(),
                xaction_id: e.xaction_id.clone(),
                communication: e.init_msg["communication"].as_str().unwrap_or("").into(),
                obj_count: per.iter().map(|s| s.obj_count).sum(),
                in_bytes: per.iter().map(|s| s.in_bytes).sum(),
                out_bytes: per.iter().map(|s| s.out_bytes).sum(),
                err_count: per.iter().map(|s| s.err_count).sum(),
            }
        })
        .collect();
    json_ok(&out)
}

async fn details(node: &Arc<Node>, name: &str, job: &str) -> Res {
    let e = entry(node, name)?;
    if !job.is_empty() {
        // Per-object errors of an offline job (every one of them).
        let errors = crate::jobs::job_errors(node, job).await?;
        return json_ok(&serde_json::json!({"init_msg": e.init_msg, "obj_errors": errors}));
    }
    let stats = all_target_stats(node).await;
    let per: Vec<TargetEtlStats> = stats
        .iter()
        .map(|(tid, m)| {
            m.get(name).cloned().unwrap_or_else(|| TargetEtlStats {
                target_id: tid.clone(),
                stage: if e.stopped {
                    "Aborted".into()
                } else {
                    "Initializing".into()
                },
                ..Default::default()
            })
        })
        .collect();
    let futs = targets(node).into_iter().map(|t| {
        let r = node
            .http
            .get(format!("{}/v1/internal/etl/{name}/errors", t.url()));
        async move {
            match r.send().await {
                Ok(resp) => resp.json::<Vec<Value>>().await.unwrap_or_default(),
                Err(_) => vec![],
            }
        }
    });
    let errors: Vec<Value> = futures::future::join_all(futs)
        .await
        .into_iter()
        .flatten()
        .collect();
    json_ok(&serde_json::json!({
        "init_msg": e.init_msg,
        "obj_errors": errors,
        "stage": if e.stopped { "Aborted" } else { "Running" },
        "xaction_id": e.xaction_id,
        "targets": per,
    }))
}

async fn stats_json(node: &Arc<Node>, name: &str) -> Res {
    entry(node, name)?;
    let stats = all_target_stats(node).await;
    let per: Vec<Value> = stats
        .iter()
        .filter_map(|(tid, m)| {
            m.get(name)
                .map(|s| serde_json::json!({"target_id": tid, "cpu": 0.0, "mem": 0, "stats": s}))
        })
        .collect();
    json_ok(&per)
}

async fn health(node: &Arc<Node>, name: &str) -> Res {
    let e = entry(node, name)?;
    let stats = all_target_stats(node).await;
    let per: Vec<Value> = stats
        .iter()
        .map(|(tid, m)| {
            let st = if e.stopped {
                "Aborted"
            } else if m.contains_key(name) {
                "Running"
            } else {
                "Initializing"
            };
            serde_json::json!({"target_id": tid, "health_status": st})
        })
        .collect();
    json_ok(&per)
}

async fn logs(node: &Arc<Node>, name: &str, only: &str) -> Res {
    entry(node, name).or_else(|e| {
        // Logs of a failed or removed ETL may still be on the targets.
        if e.status == 404 {
            Ok(EtlMdEntry {
                name: name.into(),
                init_msg: Value::Null,
                stopped: true,
                xaction_id: String::new(),
                generation: 0,
            })
        } else {
            Err(e)
        }
    })?;
    let futs = targets(node)
        .into_iter()
        .filter(|t| only.is_empty() || t.daemon_id == only)
        .map(|t| {
            let r = node
                .http
                .get(format!("{}/v1/internal/etl/{name}/logs", t.url()));
            async move {
                let text = match r.send().await {
                    Ok(resp) if resp.status().is_success() => resp.text().await.ok(),
                    _ => None,
                };
                text.map(|txt| {
                    serde_json::json!({
                        "target_id": t.daemon_id,
                        "logs": base64::engine::general_purpose::STANDARD.encode(txt),
                    })
                })
            }
        });
    let out: Vec<Value> = futures::future::join_all(futs)
        .await
        .into_iter()
        .flatten()
        .collect();
    if out.is_empty() {
        return Err(AisError::etl_not_found(&node.name, name));
    }
    json_ok(&out)
}

async fn stop(node: &Arc<Node>, name: &str) -> Res {
    let p = primary(node)?;
    p.update_etlmd(|md| {
        let e = md
            .etls
            .get_mut(name)
            .ok_or_else(|| AisError::etl_not_found(&node.name, name))?;
        e.stopped = true;
        Ok(())
    })
    .await?;
    // Metadata push is synchronous, but make sure even a lagging target stops now.
    cleanup_everywhere(node, name).await;
    Ok(crate::http::empty(axum::http::StatusCode::OK))
}

async fn start(node: &Arc<Node>, name: &str) -> Res {
    let p = primary(node)?;
    let e = entry(node, name)?;
    if !e.stopped {
        return Err(AisError::bad_request(format!(
            "etl job {name} is already running"
        )));
    }
    let spec = EtlSpec::from_json(&e.init_msg).map_err(|er| etl_err(node, name, er))?;
    let generation = ais_core::now_ns() as u64;
    start_everywhere(node, name, &e.init_msg, generation, spec.init_timeout).await?;
    p.update_etlmd(|md| {
        let e = md
            .etls
            .get_mut(name)
            .ok_or_else(|| AisError::etl_not_found(&node.name, name))?;
        e.stopped = false;
        e.generation = generation;
        Ok(())
    })
    .await?;
    Ok(crate::http::empty(axum::http::StatusCode::OK))
}

async fn delete(node: &Arc<Node>, name: &str) -> Res {
    let p = primary(node)?;
    p.update_etlmd(|md| {
        md.etls
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| AisError::etl_not_found(&node.name, name))
    })
    .await?;
    cleanup_everywhere(node, name).await;
    Ok(crate::http::empty(axum::http::StatusCode::OK))
}
