//! The ETL control plane (`/v1/etl...`, current and legacy paths): init fans
//! out to every target and waits until all are ready (or cleans up
//! everywhere and reports the first error), then records the ETL in the
//! replicated EtlMD so restarted and joining targets start it too.

use super::Proxy;
use crate::error::{ApiError, ApiResult};
use crate::http::{empty, json_ok, read_body, text_ok, Ctx, EtlPath, Res};
use crate::rpc::types::{EtlInitReq, ObjErr};
use crate::rpc::{all_ok, fan_out, RpcError, CONTROL_TIMEOUT};
use ais_core::meta::{EtlMdEntry, Snode};
use ais_etl::{EtlError, EtlSpec, TargetEtlStats};
use axum::body::Body;
use axum::http::{Method, StatusCode};
use base64::Engine;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Largest init message (code and dependencies are inline, base64).
const INIT_BODY_LIMIT: usize = 256 << 20;

/// Proxy-side check before redirecting an ETL GET or starting a job.
pub fn check_usable(p: &Proxy, name: &str) -> ApiResult<()> {
    match p.core.meta.etlmd().etls.get(name) {
        None => Err(ApiError::etl_not_found(&p.core.name, name)),
        Some(e) if e.stopped => Err(crate::error::etl(&p.core.name, name, EtlError::Stopped)),
        Some(_) => Ok(()),
    }
}

/// `/v1/etl[/...]`.
pub async fn control(p: &Arc<Proxy>, ctx: &Ctx, path: EtlPath<'_>, body: Body) -> Res {
    let EtlPath { a, b, tail } = path;
    match (ctx.method.clone(), a, b) {
        (Method::PUT, "", "") => init(p, body, false).await,
        (Method::POST, "init_code" | "init_spec" | "build" | "init", "") => {
            init(p, body, true).await
        }
        (Method::GET, "" | "list", "") => list(p).await,
        (Method::DELETE, "stop", n) if !n.is_empty() => delete(p, n).await,
        (Method::GET, "logs", n) if !n.is_empty() => logs(p, n, tail).await,
        (Method::GET, "health", n)
            if !n.is_empty() && !["logs", "health", "metrics", "details", "stats"].contains(&n) =>
        {
            health(p, n).await
        }
        (Method::GET, n, "") => details(p, n, ctx.query.get("uuid").unwrap_or("")).await,
        (Method::GET, n, "logs") => logs(p, n, tail).await,
        (Method::GET, n, "health") => health(p, n).await,
        (Method::GET, n, "metrics" | "stats") => stats_json(p, n).await,
        (Method::POST, n, "stop") => stop(p, n).await,
        (Method::POST, n, "start") => start(p, n).await,
        (Method::DELETE, n, "") => delete(p, n).await,
        _ => Err(ctx.unknown_path()),
    }
}

fn entry(p: &Proxy, name: &str) -> ApiResult<EtlMdEntry> {
    p.core
        .meta
        .etlmd()
        .etls
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::etl_not_found(&p.core.name, name))
}

/// Starts the ETL on every target and waits for all; on any failure stops it everywhere.
async fn start_everywhere(
    p: &Proxy,
    name: &str,
    init_msg: &Value,
    generation: u64,
    timeout: Duration,
) -> ApiResult<()> {
    let ts = p.core.targets();
    if ts.is_empty() {
        return Err(ApiError::unavailable(
            "the cluster has no targets to run the ETL on",
        ));
    }
    let req = EtlInitReq {
        init_msg: init_msg.clone(),
        generation,
    };
    let limit = timeout + Duration::from_secs(30);
    let results = fan_out(&ts, limit, |t| {
        let req = &req;
        async move { p.core.rpc.etl_init(&t, req, limit).await }
    })
    .await;
    if let Some(e) = results.into_iter().find_map(|(_, r)| r.err()) {
        cleanup_everywhere(p, name).await;
        return Err(ApiError::from(e).context(format!("ETL {name} failed to initialize")));
    }
    Ok(())
}

/// Stops the ETL on every target (best effort: a target that is down stops
/// it when it comes back and reconciles with EtlMD).
async fn cleanup_everywhere(p: &Proxy, name: &str) {
    let ts = p.core.targets();
    for (t, r) in fan_out(&ts, CONTROL_TIMEOUT, |t| async move {
        p.core.rpc.etl_stop(&t, name).await
    })
    .await
    {
        if let Err(e) = r {
            tracing::warn!(etl = %name, target = %t.name(), error = %e, "could not stop ETL on target");
        }
    }
}

async fn init(p: &Proxy, body: Body, legacy: bool) -> Res {
    let primary = p.primary()?;
    let node = &p.core.name;
    let raw = read_body(body, INIT_BODY_LIMIT).await?;
    let mut msg: Value = serde_json::from_slice(&raw).map_err(|e| {
        ApiError::bad_request(format!("malformed ETL init message (expected JSON): {e}"))
    })?;
    let spec = EtlSpec::from_json(&msg).map_err(|e| crate::error::etl(node, "", e))?;
    spec.check_caps(&ais_etl::sandbox::default_limits())
        .map_err(|e| crate::error::etl(node, "", e))?;
    // On the host network a process reaches every node's API: without
    // authentication that is the whole cluster, so the operator must say so.
    if spec.host_network() && crate::cred::get().is_none() && !ais_etl::spec::host_network_allowed()
    {
        return Err(ApiError::bad_request(format!(
            "etl {}: {} would run on the host network, which on a cluster without \
             authentication (AIS_AUTH) reaches the admin API; refused unless every node runs \
             with AIS_ETL_ALLOW_HOST_NETWORK=1",
            spec.name,
            if spec.network {
                "\"network\": true"
            } else {
                "a runtime.command transformer server"
            }
        )));
    }
    let name = spec.name.clone();
    if p.core.meta.etlmd().etls.contains_key(&name) {
        return Err(ApiError::EtlExists {
            node: node.clone(),
            name,
        });
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
    start_everywhere(p, &name, &msg, generation, spec.init_timeout).await?;
    let xid = format!("etl-{}", ais_core::gen_id(10));
    let entry = EtlMdEntry {
        name: name.clone(),
        init_msg: msg,
        stopped: false,
        xaction_id: xid.clone(),
        generation,
    };
    let res = primary
        .update_etlmd(|md| {
            if md.etls.contains_key(&name) {
                return Err(ApiError::EtlExists {
                    node: node.clone(),
                    name: name.clone(),
                });
            }
            md.etls.insert(name.clone(), entry);
            Ok(())
        })
        .await;
    if let Err(e) = res {
        if !matches!(e, ApiError::EtlExists { .. }) {
            cleanup_everywhere(p, &name).await;
        }
        return Err(e);
    }
    tracing::info!(etl = %name, "ETL initialized on all targets");
    Ok(text_ok(if legacy { &name } else { &xid }))
}

type TargetStats = (Snode, Result<BTreeMap<String, TargetEtlStats>, RpcError>);

async fn all_target_stats(p: &Proxy) -> Vec<TargetStats> {
    let ts = p.core.targets();
    fan_out(&ts, CONTROL_TIMEOUT, |t| async move {
        p.core.rpc.etl_stats(&t).await
    })
    .await
}

/// A target's stage for one ETL: unreachable targets say so.
fn stage_on(
    stopped: bool,
    r: &Result<BTreeMap<String, TargetEtlStats>, RpcError>,
    name: &str,
) -> String {
    match r {
        _ if stopped => "Aborted".into(),
        Ok(m) if m.contains_key(name) => "Running".into(),
        Ok(_) => "Initializing".into(),
        Err(e) => format!("Unreachable ({e})"),
    }
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

async fn list(p: &Proxy) -> Res {
    let md = p.core.meta.etlmd();
    let stats = all_target_stats(p).await;
    let out: Vec<EtlListEntry> = md
        .etls
        .values()
        .map(|e| {
            let per: Vec<&TargetEtlStats> = stats
                .iter()
                .filter_map(|(_, r)| r.as_ref().ok().and_then(|m| m.get(&e.name)))
                .collect();
            let unreachable: Vec<String> = stats
                .iter()
                .filter(|(_, r)| r.is_err())
                .map(|(t, _)| t.name())
                .collect();
            let failed = per.iter().any(|s| s.stage == "Failed");
            let stage = if e.stopped {
                "Aborted".to_string()
            } else if failed {
                "Failed".to_string()
            } else if !unreachable.is_empty() {
                format!("Unreachable ({})", unreachable.join(", "))
            } else if per.len() == stats.len() {
                "Running".to_string()
            } else {
                "Initializing".to_string()
            };
            EtlListEntry {
                id: e.name.clone(),
                stage,
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

async fn details(p: &Proxy, name: &str, job: &str) -> Res {
    let e = entry(p, name)?;
    if !job.is_empty() {
        // Per-object errors of an offline job (every one of them).
        let errors = super::jobs::job_errors(p, job).await?;
        return json_ok(&serde_json::json!({"init_msg": e.init_msg, "obj_errors": errors}));
    }
    let stats = all_target_stats(p).await;
    let per: Vec<TargetEtlStats> = stats
        .iter()
        .map(|(t, r)| {
            r.as_ref()
                .ok()
                .and_then(|m| m.get(name).cloned())
                .unwrap_or_else(|| TargetEtlStats {
                    target_id: t.daemon_id.clone(),
                    stage: stage_on(e.stopped, r, name),
                    ..Default::default()
                })
        })
        .collect();
    let ts = p.core.targets();
    let errors = all_ok(
        &format!("errors of etl job {name}"),
        fan_out(&ts, CONTROL_TIMEOUT, |t| async move {
            p.core.rpc.etl_errors(&t, name).await
        })
        .await,
    )?;
    let errors: Vec<ObjErr> = errors.into_iter().flat_map(|(_, v)| v).collect();
    let failed: Vec<String> = per
        .iter()
        .filter(|s| s.stage == "Failed")
        .map(|s| format!("{}: {}", s.target_id, s.error))
        .collect();
    json_ok(&serde_json::json!({
        "init_msg": e.init_msg,
        "obj_errors": errors,
        "stage": if e.stopped { "Aborted" } else if !failed.is_empty() { "Failed" } else { "Running" },
        "error": failed.join("; "),
        "xaction_id": e.xaction_id,
        "targets": per,
    }))
}

async fn stats_json(p: &Proxy, name: &str) -> Res {
    entry(p, name)?;
    let stats = all_target_stats(p).await;
    let per: Vec<Value> = stats
        .iter()
        .filter_map(|(t, r)| {
            r.as_ref().ok().and_then(|m| m.get(name)).map(
                |s| serde_json::json!({"target_id": t.daemon_id, "cpu": 0.0, "mem": 0, "stats": s}),
            )
        })
        .collect();
    json_ok(&per)
}

async fn health(p: &Proxy, name: &str) -> Res {
    let e = entry(p, name)?;
    let stats = all_target_stats(p).await;
    let per: Vec<Value> = stats
        .iter()
        .map(|(t, r)| {
            serde_json::json!({"target_id": t.daemon_id, "health_status": stage_on(e.stopped, r, name)})
        })
        .collect();
    json_ok(&per)
}

async fn logs(p: &Proxy, name: &str, only: &str) -> Res {
    // Logs of a failed or removed ETL may still be on the targets.
    match entry(p, name) {
        Ok(_) | Err(ApiError::EtlNotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    let ts: Vec<Snode> = p
        .core
        .targets()
        .into_iter()
        .filter(|t| only.is_empty() || t.daemon_id == only)
        .collect();
    let results = fan_out(&ts, CONTROL_TIMEOUT, |t| async move {
        p.core.rpc.etl_logs(&t, name).await
    })
    .await;
    let mut out = Vec::new();
    for (t, r) in results {
        match r {
            Ok(txt) => out.push(serde_json::json!({
                "target_id": t.daemon_id,
                "logs": base64::engine::general_purpose::STANDARD.encode(txt),
            })),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => {}
            Err(e) => return Err(ApiError::from(e).context(format!("logs of etl job {name}"))),
        }
    }
    if out.is_empty() {
        return Err(ApiError::etl_not_found(&p.core.name, name));
    }
    json_ok(&out)
}

async fn stop(p: &Proxy, name: &str) -> Res {
    p.primary()?
        .update_etlmd(|md| {
            let e = md
                .etls
                .get_mut(name)
                .ok_or_else(|| ApiError::etl_not_found(&p.core.name, name))?;
            e.stopped = true;
            Ok::<_, ApiError>(())
        })
        .await?;
    // Metadata push is synchronous, but make sure even a lagging target stops now.
    cleanup_everywhere(p, name).await;
    Ok(empty(StatusCode::OK))
}

async fn start(p: &Proxy, name: &str) -> Res {
    let primary = p.primary()?;
    let e = entry(p, name)?;
    if !e.stopped {
        return Err(ApiError::bad_request(format!(
            "etl job {name} is already running"
        )));
    }
    let spec =
        EtlSpec::from_json(&e.init_msg).map_err(|er| crate::error::etl(&p.core.name, name, er))?;
    let generation = ais_core::now_ns() as u64;
    start_everywhere(p, name, &e.init_msg, generation, spec.init_timeout).await?;
    primary
        .update_etlmd(|md| {
            let e = md
                .etls
                .get_mut(name)
                .ok_or_else(|| ApiError::etl_not_found(&p.core.name, name))?;
            e.stopped = false;
            e.generation = generation;
            Ok::<_, ApiError>(())
        })
        .await?;
    Ok(empty(StatusCode::OK))
}

async fn delete(p: &Proxy, name: &str) -> Res {
    p.primary()?
        .update_etlmd(|md| {
            md.etls
                .remove(name)
                .map(|_| ())
                .ok_or_else(|| ApiError::etl_not_found(&p.core.name, name))
        })
        .await?;
    cleanup_everywhere(p, name).await;
    Ok(empty(StatusCode::OK))
}
