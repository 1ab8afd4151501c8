//! dSort's control plane (`/v1/sort`, AIStore's API): start a job from a
//! spec, answer its per-target status (`GET ?uuid=`), list, abort, remove.
//!
//! The primary coordinates each job it started: every target extracts its
//! input shards (`target::dsort`), the primary gathers the records'
//! metadata (keys and sizes, never contents), orders it once
//! (`ais_core::dsort`), cuts it into output shards, and hands each shard to
//! its owner target, which streams the records from their holders. A target
//! that stops answering, or any error, aborts the job everywhere: a failed
//! job reports its error and leaves no partial shard (shards are stored
//! atomically). Status lives on the targets, so any proxy answers it.

use super::Proxy;
use crate::error::{ApiError, ApiResult};
use crate::http::{Ctx, Res};
use crate::rpc::{fan_out, Dest, RpcError};
use ais_core::dsort::{self as ds, OutShard, Plan, Reaction, RecordMeta, RequestSpec};
use ais_core::meta::Snode;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// How often the coordinator asks the targets where they stand.
const POLL: Duration = Duration::from_millis(250);
/// Consecutive failed polls of one target before the job is aborted.
const MAX_MISSED: u32 = 8;
/// Largest spec and external key map read.
const MAX_SPEC: usize = 16 << 20;

pub async fn handle(p: &Arc<Proxy>, ctx: &Ctx, what: &str, body: Body) -> Res {
    match (&ctx.method, what) {
        (&Method::POST, "") => {
            ctx.query.reject_unknown("dsort start", &[])?;
            start(p, body).await
        }
        (&Method::GET, "") => {
            ctx.query
                .reject_unknown("dsort query", &["uuid", "regex", "onlyActive"])?;
            match ctx.query.get("uuid").filter(|u| !u.is_empty()) {
                Some(_) => status(p, uuid(ctx)?).await,
                None => list(p, ctx).await,
            }
        }
        (&Method::DELETE, "abort") => {
            ctx.query.reject_unknown("dsort abort", &["uuid"])?;
            abort(p, uuid(ctx)?).await
        }
        (&Method::DELETE, "") => {
            ctx.query.reject_unknown("dsort remove", &["uuid"])?;
            remove(p, uuid(ctx)?).await
        }
        (_, "" | "abort") => Err(ApiError::MethodNotAllowed {
            method: ctx.method.to_string(),
            path: ctx.path.clone(),
        }),
        _ => Err(ctx.unknown_path()),
    }
}

fn uuid(ctx: &Ctx) -> ApiResult<&str> {
    let id = ctx
        .query
        .get("uuid")
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::bad_request("dsort: missing job id (?uuid=)"))?;
    ds::check_id(id)?;
    Ok(id)
}

fn targets(p: &Proxy) -> Vec<Snode> {
    p.core
        .meta
        .with_smap(|s| s.map(|s| s.tmap.values().cloned().collect()))
        .unwrap_or_default()
}

/// `POST /v1/sort`: validates the spec, creates the output bucket if need
/// be, starts extraction everywhere, and answers the job id.
async fn start(p: &Arc<Proxy>, body: Body) -> Res {
    let raw = crate::http::read_body(body, MAX_SPEC).await?;
    let spec: RequestSpec = serde_json::from_slice(&raw)
        .map_err(|e| ApiError::bad_request(format!("dsort: malformed spec: {e}")))?;
    let id = format!("srt-{}", ais_core::gen_id(10));
    let plan = spec.plan(&id, ais_core::now_ns() as u64)?;
    let core = &p.core;
    let in_props = core
        .meta
        .with_bmd(|b| b.buckets.get(&plan.input_bck).cloned())
        .ok_or_else(|| ApiError::BucketNotFound(plan.input_bck.clone()))?;
    for b in [&plan.input_bck, &plan.output_bck] {
        if core.bck(b.clone()).is_remote() {
            return Err(ApiError::bad_request(format!(
                "dsort: ais://{b} is backed by a remote bucket; dSort reads and writes ais:// buckets"
            )));
        }
    }
    let ekm = if plan.ekm_file.is_empty() {
        None
    } else {
        Some(load_ekm(p, &plan).await?)
    };
    let nodes = targets(p);
    if nodes.is_empty() {
        return Err(ApiError::unavailable("dsort: no targets in the cluster"));
    }
    if !plan.dry_run
        && !core
            .meta
            .with_bmd(|b| b.buckets.contains_key(&plan.output_bck))
    {
        // As AIStore: the output bucket takes the input's properties.
        let mut props = in_props;
        props.extra = Default::default();
        props.bid = ais_core::gen_id(10);
        props.created = ais_core::now_ns().to_string();
        let name = plan.output_bck.clone();
        p.primary()?
            .update_bmd(|bmd| {
                bmd.buckets.entry(name).or_insert(props);
                Ok::<_, ApiError>(())
            })
            .await?;
    }
    // Each target extracts the input shards this map says it owns (one
    // decision, here: targets whose maps differ for a moment would extract
    // a shard twice or not at all).
    let mut plan = plan;
    plan.targets = nodes.iter().map(|n| n.daemon_id.clone()).collect();
    let src = core.bck(plan.input_bck.clone());
    let mut assigned: HashMap<String, Vec<String>> = HashMap::new();
    for n in &plan.inputs {
        let owner = core
            .owner_with(&src.obj_uname(n), |o| o.daemon_id.clone())
            .ok_or_else(|| ApiError::unavailable("dsort: no targets in the cluster map"))?;
        assigned.entry(owner).or_default().push(n.clone());
    }
    let res = fan_out(&nodes, Duration::from_secs(30), |d| {
        let mut mine = plan.clone();
        mine.inputs = assigned
            .get(&id_of(&nodes, &d))
            .cloned()
            .unwrap_or_default();
        let rpc = p.core.rpc.clone();
        async move { rpc.dsort_post(&d, &mine.id, "init", &mine).await }
    })
    .await;
    if let Some(e) = res.iter().find_map(|(_, r)| r.as_ref().err()) {
        let msg = format!("dsort: could not start on every target: {e}");
        abort_all(p, &id, &nodes, &msg).await;
        return Err(ApiError::unavailable(msg));
    }
    tracing::info!(job = %id, inputs = plan.inputs.len(), "dsort: started");
    let p2 = p.clone();
    tokio::spawn(async move {
        let id = plan.id.clone();
        // Driven in its own task: a panic there is an error here, and the
        // job is aborted everywhere rather than left hanging.
        let (p3, nodes2) = (p2.clone(), nodes.clone());
        let res = tokio::spawn(async move { drive(&p3, &plan, &nodes2, ekm).await })
            .await
            .unwrap_or_else(|e| Err(ApiError::internal(format!("dsort coordinator: {e}"))));
        match res {
            Ok(n) => tracing::info!(job = %id, shards = n, "dsort: finished"),
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "dsort: failed");
                abort_all(&p2, &id, &nodes, &e.to_string()).await;
            }
        }
    });
    Ok(crate::http::text_ok(&id))
}

/// Runs a started job to its end; answers the number of output shards.
async fn drive(p: &Arc<Proxy>, plan: &Plan, nodes: &[Snode], ekm: Option<Ekm>) -> ApiResult<usize> {
    let id = &plan.id;
    wait_for(p, id, nodes, "extraction", |m| {
        phase_done(m, "local_extraction")
    })
    .await?;
    let mut all: Vec<RecordMeta> = Vec::new();
    for n in nodes {
        let d = Dest::from(n);
        let mut metas: Vec<RecordMeta> = p
            .core
            .rpc
            .dsort_get(&d, id, "records", Duration::from_secs(300))
            .await
            .map_err(|e| {
                ApiError::unavailable(format!("dsort {id}: records of {}: {e}", d.name))
            })?;
        for m in &mut metas {
            m.holder = n.daemon_id.clone();
        }
        all.extend(metas);
    }
    let plan2 = plan.clone();
    let shards = tokio::task::spawn_blocking(move || -> ApiResult<Vec<OutShard>> {
        check_duplicates(&plan2, &all)?;
        let shards = match &ekm {
            Some(ekm) => ekm.layout(&plan2, all)?,
            None => {
                ds::order(&mut all, &plan2.algorithm);
                ds::layout(
                    &all,
                    plan2.shard_size,
                    &plan2.output_format,
                    &plan2.output_ext,
                    0,
                )?
            }
        };
        check_names(&plan2, &shards)?;
        Ok(shards)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    let count = shards.len();
    let dst = p.core.bck(plan.output_bck.clone());
    let mut per: BTreeMap<String, Vec<OutShard>> = nodes
        .iter()
        .map(|n| (n.daemon_id.clone(), Vec::new()))
        .collect();
    if !plan.dry_run {
        for s in shards {
            let owner = p
                .core
                .owner_with(&dst.obj_uname(&s.name), |o| o.daemon_id.clone())
                .ok_or_else(|| ApiError::unavailable("dsort: no targets in the cluster map"))?;
            per.get_mut(&owner)
                .ok_or_else(|| {
                    ApiError::unavailable(format!(
                        "dsort {id}: the cluster map changed during the job (target {owner} joined); run it again"
                    ))
                })?
                .push(s);
        }
    }
    let res = fan_out(nodes, Duration::from_secs(60), |d| {
        let list = per.get(&id_of(nodes, &d)).cloned().unwrap_or_default();
        let rpc = p.core.rpc.clone();
        let id = id.clone();
        async move { rpc.dsort_post(&d, &id, "create", &list).await }
    })
    .await;
    if let Some(e) = res.iter().find_map(|(_, r)| r.as_ref().err()) {
        return Err(ApiError::unavailable(format!("dsort {id}: creation: {e}")));
    }
    wait_for(p, id, nodes, "creation", |m| {
        phase_done(m, "shard_creation")
    })
    .await?;
    let _ = fan_out(nodes, Duration::from_secs(30), |d| {
        let rpc = p.core.rpc.clone();
        let id = id.clone();
        async move { rpc.dsort_post(&d, &id, "finish", &json!({})).await }
    })
    .await;
    Ok(count)
}

/// Records sharing a key in different shards (AIStore's
/// `duplicated_records`; "ignore" keeps both).
fn check_duplicates(plan: &Plan, all: &[RecordMeta]) -> ApiResult<()> {
    if plan.duplicated_records == Reaction::Ignore {
        return Ok(());
    }
    let mut seen: HashMap<&str, &str> = HashMap::with_capacity(all.len());
    for r in all.iter() {
        if let Some(other) = seen.insert(&r.key, &r.shard) {
            let msg = format!(
                "dsort: duplicated record \"{}\" in {other} and {}",
                r.key, r.shard
            );
            if plan.duplicated_records == Reaction::Abort {
                return Err(ApiError::bad_request(msg));
            }
            tracing::warn!(job = %plan.id, "{msg}");
        }
    }
    Ok(())
}

/// Every output name valid and distinct, and (into the input bucket) none
/// of them an input: a job that fails midway never leaves an input shard
/// overwritten with its records not yet elsewhere.
fn check_names(plan: &Plan, shards: &[OutShard]) -> ApiResult<()> {
    let mut names = std::collections::HashSet::with_capacity(shards.len());
    let inputs: std::collections::HashSet<&str> = if plan.input_bck == plan.output_bck {
        plan.inputs.iter().map(String::as_str).collect()
    } else {
        Default::default()
    };
    for s in shards {
        ais_core::names::validate_object_name(&s.name)
            .map_err(|e| ApiError::bad_request(format!("dsort: output shard name: {e}")))?;
        if !names.insert(s.name.as_str()) {
            return Err(ApiError::bad_request(format!(
                "dsort: two output shards would be named {} (output formats overlap)",
                s.name
            )));
        }
        if inputs.contains(s.name.as_str()) {
            return Err(ApiError::bad_request(format!(
                "dsort: output shard {} would overwrite an input shard of the same bucket; write into another bucket or use other names",
                s.name
            )));
        }
    }
    Ok(())
}

fn id_of(nodes: &[Snode], d: &Dest) -> String {
    nodes
        .iter()
        .find(|n| n.name() == d.name)
        .map(|n| n.daemon_id.clone())
        .unwrap_or_default()
}

fn phase_done(info: &Value, phase: &str) -> bool {
    info["Metrics"][phase]["finished"].as_bool() == Some(true)
}

/// Polls every target until `done` holds for all; an error as soon as one
/// aborted (its error), left the map, or stopped answering.
async fn wait_for(
    p: &Proxy,
    id: &str,
    nodes: &[Snode],
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> ApiResult<()> {
    let mut missed: HashMap<String, u32> = HashMap::new();
    // Short jobs end soon after they can; long ones cost a poll per POLL.
    let mut pause = Duration::from_millis(10);
    loop {
        let in_map = targets(p);
        for n in nodes {
            if !in_map.iter().any(|m| m.daemon_id == n.daemon_id) {
                return Err(ApiError::unavailable(format!(
                    "dsort {id}: target {} left the cluster during {what}",
                    n.name()
                )));
            }
        }
        let res = fan_out(nodes, Duration::from_secs(5), |d| {
            let rpc = p.core.rpc.clone();
            let id = id.to_string();
            async move {
                rpc.dsort_get::<Value>(&d, &id, "", Duration::from_secs(5))
                    .await
            }
        })
        .await;
        let mut all = true;
        for (n, r) in res {
            match r {
                Ok(info) => {
                    missed.remove(&n.daemon_id);
                    if info["aborted"].as_bool() == Some(true) {
                        let errs = info["Metrics"]["errors"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(Value::as_str)
                                    .collect::<Vec<_>>()
                                    .join("; ")
                            })
                            .unwrap_or_default();
                        return Err(ApiError::Conflict(if errs.is_empty() {
                            format!("dsort {id}: aborted")
                        } else {
                            errs
                        }));
                    }
                    all &= done(&info);
                }
                Err(e) => {
                    all = false;
                    let k = missed.entry(n.daemon_id.clone()).or_default();
                    *k += 1;
                    if *k >= MAX_MISSED
                        || matches!(e, RpcError::Status { status, .. } if status == StatusCode::NOT_FOUND)
                    {
                        return Err(ApiError::unavailable(format!(
                            "dsort {id}: target {} stopped answering during {what}: {e}",
                            n.name()
                        )));
                    }
                }
            }
        }
        if all {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(POLL);
    }
}

async fn abort_all(p: &Proxy, id: &str, nodes: &[Snode], why: &str) {
    let _ = fan_out(nodes, Duration::from_secs(10), |d| {
        let rpc = p.core.rpc.clone();
        let (id, why) = (id.to_string(), why.to_string());
        async move {
            rpc.dsort_post(&d, &id, "abort", &json!({"error": why}))
                .await
        }
    })
    .await;
}

/// Every target's answer about job `id` that it knows (404s dropped).
async fn per_target(p: &Proxy, id: &str) -> ApiResult<BTreeMap<String, Value>> {
    let nodes = targets(p);
    let res = fan_out(&nodes, Duration::from_secs(10), |d| {
        let rpc = p.core.rpc.clone();
        let id = id.to_string();
        async move {
            rpc.dsort_get::<Value>(&d, &id, "", Duration::from_secs(10))
                .await
        }
    })
    .await;
    let mut out = BTreeMap::new();
    let mut unreachable = Vec::new();
    for (n, r) in res {
        match r {
            Ok(v) => {
                out.insert(n.daemon_id.clone(), v);
            }
            Err(RpcError::Status { status, .. }) if status == StatusCode::NOT_FOUND => {}
            Err(e) => unreachable.push(e.to_string()),
        }
    }
    if out.is_empty() {
        if !unreachable.is_empty() {
            return Err(ApiError::unavailable(format!(
                "dsort job {id}: no target answered: {}",
                unreachable.join("; ")
            )));
        }
        return Err(ApiError::NotFound(format!("dsort job {id} does not exist")));
    }
    Ok(out)
}

/// `GET /v1/sort?uuid=ID`: AIStore's map of target id → `JobInfo`. A
/// target of the job that does not answer (gone, restarted) is an error
/// unless the job is over (aborted): its part is unknown, never "done".
async fn status(p: &Proxy, id: &str) -> Res {
    let all = per_target(p, id).await?;
    let aborted = all.values().any(|v| v["aborted"].as_bool() == Some(true));
    if !aborted {
        let missing: Vec<String> = all
            .values()
            .filter_map(|v| v["targets"].as_array())
            .flatten()
            .filter_map(Value::as_str)
            .filter(|t| !all.contains_key(*t))
            .map(str::to_string)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::unavailable(format!(
                "dsort job {id}: target(s) {} of the job do not answer (or lost the job); its state is unknown",
                missing.join(", ")
            )));
        }
    }
    crate::http::json_ok(&all)
}

/// `GET /v1/sort[?regex=][&onlyActive=true]`: one `JobInfo` per job.
async fn list(p: &Proxy, ctx: &Ctx) -> Res {
    let re = match ctx.query.get("regex").filter(|r| !r.is_empty()) {
        Some(r) => Some(
            regex::RegexBuilder::new(r)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| ApiError::bad_request(format!("invalid regex \"{r}\": {e}")))?,
        ),
        None => None,
    };
    let only_active = ctx.query.get("onlyActive") == Some("true");
    let nodes = targets(p);
    let res = fan_out(&nodes, Duration::from_secs(10), |d| {
        let rpc = p.core.rpc.clone();
        async move {
            rpc.dsort_get::<Vec<Value>>(&d, "", "", Duration::from_secs(10))
                .await
        }
    })
    .await;
    let ok = crate::rpc::all_ok("dsort list", res)?;
    let mut jobs: BTreeMap<String, Value> = BTreeMap::new();
    for (_, infos) in ok {
        for info in infos {
            let Some(id) = info["id"].as_str().map(str::to_string) else {
                continue;
            };
            match jobs.get_mut(&id) {
                None => {
                    jobs.insert(id, info);
                }
                Some(acc) => merge(acc, &info),
            }
        }
    }
    let out: Vec<Value> = jobs
        .into_values()
        .filter(|j| !only_active || j["archived"].as_bool() != Some(true))
        .filter(|j| {
            re.as_ref().is_none_or(|re| {
                re.is_match(j["id"].as_str().unwrap_or(""))
                    || re.is_match(j["Metrics"]["description"].as_str().unwrap_or(""))
            })
        })
        .collect();
    crate::http::json_ok(&out)
}

/// Folds one target's view into the job's: counts add up, aborted if any,
/// archived if all.
fn merge(acc: &mut Value, o: &Value) {
    let add = |a: &Value, b: &Value| {
        let n = a.as_str().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
            + b.as_str().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        json!(n.to_string())
    };
    for k in ["loc-objs", "loc-bytes"] {
        acc[k] = add(&acc[k], &o[k]);
    }
    for (ph, ks) in [
        (
            "local_extraction",
            &[
                "total_count",
                "extracted_count",
                "extracted_size",
                "extracted_record_count",
            ][..],
        ),
        ("shard_creation", &["to_create", "created_count"][..]),
    ] {
        for k in ks {
            acc["Metrics"][ph][k] = add(&acc["Metrics"][ph][k], &o["Metrics"][ph][k]);
        }
        let fin = acc["Metrics"][ph]["finished"].as_bool() == Some(true)
            && o["Metrics"][ph]["finished"].as_bool() == Some(true);
        acc["Metrics"][ph]["finished"] = json!(fin);
    }
    let aborted = acc["aborted"].as_bool() == Some(true) || o["aborted"].as_bool() == Some(true);
    let archived = acc["archived"].as_bool() == Some(true) && o["archived"].as_bool() == Some(true);
    acc["aborted"] = json!(aborted);
    acc["Metrics"]["aborted"] = json!(aborted);
    acc["archived"] = json!(archived);
    acc["Metrics"]["archived"] = json!(archived);
    if let (Some(a), Some(b)) = (
        acc["Metrics"]["errors"].as_array().cloned(),
        o["Metrics"]["errors"].as_array(),
    ) {
        let mut a = a;
        a.extend(b.iter().cloned());
        acc["Metrics"]["errors"] = Value::Array(a);
    }
    if acc["finish_time"].is_null() || o["finish_time"].is_null() {
        acc["finish_time"] = Value::Null;
    } else if o["finish_time"].as_str() > acc["finish_time"].as_str() {
        acc["finish_time"] = o["finish_time"].clone();
    }
}

/// `DELETE /v1/sort/abort?uuid=ID`.
async fn abort(p: &Proxy, id: &str) -> Res {
    let known = per_target(p, id).await?;
    let nodes: Vec<Snode> = targets(p)
        .into_iter()
        .filter(|n| known.contains_key(&n.daemon_id))
        .collect();
    abort_all(p, id, &nodes, "aborted by user").await;
    Ok(crate::http::empty(StatusCode::OK))
}

/// `DELETE /v1/sort?uuid=ID`: forgets a finished or aborted job.
async fn remove(p: &Proxy, id: &str) -> Res {
    let known = per_target(p, id).await?;
    let nodes: Vec<Snode> = targets(p)
        .into_iter()
        .filter(|n| known.contains_key(&n.daemon_id))
        .collect();
    if known
        .values()
        .any(|v| v["archived"].as_bool() != Some(true))
    {
        // Aborted somewhere is over everywhere (the rest may not have heard
        // yet): finish the abort, then remove.
        if !known.values().any(|v| v["aborted"].as_bool() == Some(true)) {
            return Err(ApiError::bad_request(format!(
                "dsort job {id} is still in progress and cannot be removed (abort it first)"
            )));
        }
        abort_all(p, id, &nodes, "aborted").await;
    }
    let res = fan_out(&nodes, Duration::from_secs(10), |d| {
        let rpc = p.core.rpc.clone();
        let id = id.to_string();
        async move { rpc.dsort_remove(&d, &id).await }
    })
    .await;
    crate::rpc::all_ok("dsort remove", res)?;
    Ok(crate::http::empty(StatusCode::OK))
}

// ------------------------------------------------------ external key map

/// AIStore's external key map: which output format each record goes to.
pub struct Ekm {
    /// Output formats, in the order the map names them.
    formats: Vec<String>,
    exact: HashMap<String, usize>,
    patterns: Vec<(regex::Regex, usize)>,
}

/// Most entries a key map may hold.
const MAX_EKM_ENTRIES: usize = 1_000_000;
/// Most output formats a key map may name.
const MAX_EKM_FORMATS: usize = 100_000;
/// Most patterns (each checked against every record not named exactly).
const MAX_EKM_PATTERNS: usize = 256;

/// Reads `ekm_file` from this cluster: `ais://BUCKET/OBJ`, or this
/// cluster's object URL (`http://PROXY/v1/objects/BUCKET/OBJ`, as the SDK's
/// `get_url` writes it). Other URLs are refused: a proxy fetching what a
/// user names would reach any host its network does.
async fn load_ekm(p: &Proxy, plan: &Plan) -> ApiResult<Ekm> {
    let u = plan.ekm_file.trim();
    let bad = || {
        ApiError::bad_request(format!(
            "dsort: ekm_file \"{u}\" must be an object of this cluster (ais://BUCKET/OBJECT, or this cluster's /v1/objects/BUCKET/OBJECT URL); other URLs are not fetched"
        ))
    };
    let path = if let Some(r) = u.strip_prefix("ais://") {
        r.to_string()
    } else if u.starts_with("http://") || u.starts_with("https://") {
        let rest = u.split_once("://").map(|x| x.1).unwrap_or("");
        let path = rest.split_once('/').map(|x| x.1).ok_or_else(bad)?;
        let path = path.split(['?', '#']).next().unwrap_or("");
        let path = path.strip_prefix("v1/objects/").ok_or_else(bad)?;
        crate::http::pct_decode(path)?
    } else {
        return Err(bad());
    };
    let (bucket, obj) = path.split_once('/').ok_or_else(bad)?;
    if bucket.is_empty() || obj.is_empty() {
        return Err(bad());
    }
    let bck = p.core.bck(bucket.to_string());
    if !p.core.meta.with_bmd(|b| b.buckets.contains_key(bucket)) {
        return Err(ApiError::BucketNotFound(bucket.to_string()));
    }
    let owner = p
        .core
        .owner(&bck.obj_uname(obj))
        .ok_or_else(|| ApiError::unavailable("dsort: no targets in the cluster map"))?;
    let raw = p
        .core
        .rpc
        .get_object_small(&Dest::from(&owner), bucket, obj, MAX_SPEC)
        .await
        .map_err(|e| ApiError::from(e).context(format!("dsort: read ekm_file {u}")))?;
    let (sep, malformed, ext) = (
        plan.ekm_sep.clone(),
        plan.ekm_malformed_line,
        plan.output_ext.clone(),
    );
    tokio::task::spawn_blocking(move || parse_ekm(&raw, &sep, malformed, &ext))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
}

fn parse_ekm(raw: &[u8], sep: &str, malformed: Reaction, ext: &str) -> ApiResult<Ekm> {
    let mut formats: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut pairs: Vec<(String, usize)> = Vec::new();
    let mut format_of = |f: String, formats: &mut Vec<String>| -> ApiResult<usize> {
        if let Some(i) = index.get(&f) {
            return Ok(*i);
        }
        if formats.len() >= MAX_EKM_FORMATS {
            return Err(ApiError::bad_request(format!(
                "dsort: ekm_file names more than {MAX_EKM_FORMATS} output formats"
            )));
        }
        index.insert(f.clone(), formats.len());
        formats.push(f);
        Ok(formats.len() - 1)
    };
    let text = std::str::from_utf8(raw)
        .map_err(|_| ApiError::bad_request("dsort: ekm_file is not UTF-8"))?;
    if text.trim_start().starts_with('{') {
        let m: serde_json::Map<String, Value> = serde_json::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("dsort: ekm_file: {e}")))?;
        for (fmt, keys) in m {
            let fi = format_of(fmt.clone(), &mut formats)?;
            let keys = keys.as_array().ok_or_else(|| {
                ApiError::bad_request(format!(
                    "dsort: ekm_file: \"{fmt}\" must map to a list of record names"
                ))
            })?;
            for k in keys {
                let k = k.as_str().ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "dsort: ekm_file: \"{fmt}\": record names are strings"
                    ))
                })?;
                pairs.push((k.to_string(), fi));
                if pairs.len() > MAX_EKM_ENTRIES {
                    return Err(ApiError::bad_request(format!(
                        "dsort: ekm_file has more than {MAX_EKM_ENTRIES} entries"
                    )));
                }
            }
        }
    } else {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match line.split_once(sep) {
                Some((k, f)) if !k.trim().is_empty() && !f.trim().is_empty() => {
                    let fi = format_of(f.trim().to_string(), &mut formats)?;
                    pairs.push((k.trim().to_string(), fi));
                    if pairs.len() > MAX_EKM_ENTRIES {
                        return Err(ApiError::bad_request(format!(
                            "dsort: ekm_file has more than {MAX_EKM_ENTRIES} entries"
                        )));
                    }
                }
                _ => {
                    let msg = format!(
                        "dsort: ekm_file line {}: malformed (want KEY{sep:?}FORMAT)",
                        i + 1
                    );
                    if malformed == Reaction::Abort {
                        return Err(ApiError::bad_request(msg));
                    }
                }
            }
        }
    }
    for f in &formats {
        // Each format must name valid objects.
        ds::check_format(f, ext)?;
    }
    let mut exact = HashMap::new();
    let mut patterns = Vec::new();
    for (k, fi) in pairs {
        let literal = !k.chars().any(|c| "[]()*+?^$|\\{}".contains(c));
        if literal {
            exact.insert(ds::record_key(&k).to_string(), fi);
            exact.insert(k, fi);
        } else {
            let re = regex::RegexBuilder::new(&format!("^(?:{k})$"))
                .size_limit(64 << 10)
                .build()
                .map_err(|e| {
                    ApiError::bad_request(format!("dsort: ekm_file pattern \"{k}\": {e}"))
                })?;
            if patterns.len() >= MAX_EKM_PATTERNS {
                return Err(ApiError::bad_request(format!(
                    "dsort: ekm_file has more than {MAX_EKM_PATTERNS} patterns (name records, or use fewer, broader patterns)"
                )));
            }
            patterns.push((re, fi));
        }
    }
    Ok(Ekm {
        formats,
        exact,
        patterns,
    })
}

impl Ekm {
    fn format_of(&self, key: &str) -> Option<usize> {
        self.exact.get(key).copied().or_else(|| {
            self.patterns
                .iter()
                .find(|(re, _)| re.is_match(key))
                .map(|(_, i)| *i)
        })
    }

    /// Records grouped by their format (in the map's order), each group
    /// ordered by the algorithm and cut by size.
    fn layout(&self, plan: &Plan, all: Vec<RecordMeta>) -> ApiResult<Vec<OutShard>> {
        let mut groups: Vec<Vec<RecordMeta>> = vec![Vec::new(); self.formats.len()];
        for r in all {
            match self.format_of(&r.key) {
                Some(i) => groups[i].push(r),
                None => {
                    if plan.ekm_missing_key == Reaction::Abort {
                        return Err(ApiError::bad_request(format!(
                            "dsort: record \"{}\" (from {}) is not in the ekm_file",
                            r.key, r.shard
                        )));
                    }
                }
            }
        }
        let mut out = Vec::new();
        for (fi, mut g) in groups.into_iter().enumerate() {
            ds::order(&mut g, &plan.algorithm);
            out.extend(ds::layout(
                &g,
                plan.shard_size,
                &self.formats[fi],
                &plan.output_ext,
                0,
            )?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_maps_in_json_text_and_patterns() {
        let e = parse_ekm(
            br#"{"cats-%d": ["cat_0.txt", "cat_1"], "dogs-{0..9}": ["dog_[0-9]+"]}"#,
            "\t",
            Reaction::Abort,
            ".tar",
        )
        .unwrap();
        assert_eq!(e.format_of("cat_0"), Some(0));
        assert_eq!(e.format_of("cat_1"), Some(0));
        assert_eq!(e.format_of("dog_17"), Some(1));
        assert_eq!(e.format_of("dog_x"), None);
        let e = parse_ekm(b"a.jpg x-%d\nb y-%d\n", " ", Reaction::Abort, ".tar").unwrap();
        assert_eq!(e.format_of("a"), Some(0));
        assert_eq!(e.format_of("b"), Some(1));
        assert!(parse_ekm(b"no-separator-here\n", " ", Reaction::Abort, ".tar").is_err());
        assert!(parse_ekm(b"no-separator-here\n", " ", Reaction::Ignore, ".tar").is_ok());
        let e = parse_ekm(
            br#"{"../../etc/x-%d": ["a"]}"#,
            "\t",
            Reaction::Abort,
            ".tar",
        );
        assert!(e.is_err());
        let e = parse_ekm(
            br#"{"x-%0999999999999d": ["a"]}"#,
            "\t",
            Reaction::Abort,
            ".tar",
        );
        assert!(e.is_err());
    }
}
