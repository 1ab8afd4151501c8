//! The offline-job control plane (`etl-bck`, `copy-bck` and their list/range
//! forms): validate, create the destination, start the job on every target,
//! and answer status/abort queries by asking the targets. The targets do the
//! work (`target::jobs`).

use super::Proxy;
use crate::error::{ApiError, ApiResult};
use crate::http::{empty, json_ok, read_body, text_ok, Ctx, Res};
use crate::rpc::types::{JobSpec, ObjErr};
use crate::rpc::{all_ok, fan_out, RpcError, CONTROL_TIMEOUT};
use ais_cluster::Primary;
use ais_core::api::{expand_template, ActMsg, TcbMsg, MAX_TEMPLATE};
use ais_core::meta::Snode;
use ais_core::Bck;
use axum::body::Body;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// Jobs the proxy remembers (the newest; older ones are forgotten).
const MAX_KEPT_JOBS: usize = 1000;

/// Which targets run which job: one replicated document per job
/// (`jobs/ID`, through the control plane), so job status survives a
/// restart of the primary and a change of primary (the targets keep the
/// jobs' state). Written by the primary only, read from the local copy.
pub struct Registry {
    meta: ais_cluster::MetaStore,
    /// A job index an earlier version kept in the proxy's data dir: taken
    /// into the control plane once, by the first primary that finds it.
    legacy: Option<PathBuf>,
}

/// The documents' prefix.
const DOC_PREFIX: &str = "jobs/";

fn doc_name(id: &str) -> String {
    format!("{DOC_PREFIX}{id}")
}

#[derive(Clone, Serialize, Deserialize)]
pub struct ProxyJob {
    kind: String,
    targets: Vec<Snode>,
    /// Unix nanoseconds, for pruning the oldest.
    #[serde(default)]
    started_ns: i64,
    /// Final snapshots, by target name (`t[ID]`): of targets that left the
    /// cluster on purpose after finishing their part (decommissioned), and
    /// of every target once the job ended everywhere.
    #[serde(default)]
    left: HashMap<String, Value>,
}

fn encode(job: &ProxyJob) -> ApiResult<Value> {
    serde_json::to_value(job).map_err(|e| ApiError::internal(format!("encode job: {e}")))
}

impl Registry {
    pub fn new(meta: ais_cluster::MetaStore, legacy: Option<PathBuf>) -> Self {
        Registry { meta, legacy }
    }

    /// Every job this proxy's copy knows (unreadable documents skipped).
    fn all(&self) -> Vec<(String, ProxyJob)> {
        self.meta
            .docs_under(DOC_PREFIX)
            .into_iter()
            .filter_map(|(name, d)| {
                let id = name.strip_prefix(DOC_PREFIX)?.to_string();
                match serde_json::from_value(d.data) {
                    Ok(j) => Some((id, j)),
                    Err(e) => {
                        tracing::warn!(job = %id, error = %e, "ignoring an unreadable job record");
                        None
                    }
                }
            })
            .collect()
    }

    fn get(&self, node: &str, id: &str) -> ApiResult<ProxyJob> {
        self.meta
            .doc(&doc_name(id))
            .and_then(|d| serde_json::from_value(d.data).ok())
            .ok_or_else(|| ApiError::NotFound(format!("{node}: job {id} not found")))
    }

    /// The jobs a legacy index holds, as document changes (once: when the
    /// control plane has no job yet). See [`Registry::legacy_done`].
    pub fn seed(&self, meta: &ais_cluster::MetaStore) -> Vec<ais_cluster::DocChange> {
        let Some(file) = &self.legacy else {
            return Vec::new();
        };
        let Ok(raw) = std::fs::read(file) else {
            return Vec::new();
        };
        let jobs: HashMap<String, ProxyJob> = match serde_json::from_slice(&raw) {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "ignoring unreadable job index");
                return Vec::new();
            }
        };
        // Those the control plane does not have yet (another proxy may have
        // been primary first); the file is retired once they are committed.
        let mut by_age: Vec<(String, ProxyJob)> = jobs
            .into_iter()
            .filter(|(id, _)| ais_cluster::valid_doc_name(&doc_name(id)))
            .filter(|(id, _)| meta.doc(&doc_name(id)).is_none())
            .collect();
        by_age.sort_by_key(|(id, j)| (std::cmp::Reverse(j.started_ns), id.clone()));
        by_age
            .into_iter()
            .take(MAX_KEPT_JOBS)
            .filter_map(|(id, j)| {
                let v = serde_json::to_value(&j).ok()?;
                Some(meta.next_doc(&doc_name(&id), Some(v)))
            })
            .collect()
    }

    /// The change [`Registry::seed`] answered is committed: the legacy
    /// index is renamed so it is never taken again.
    pub fn legacy_done(&self) {
        if let Some(f) = &self.legacy {
            if f.exists() {
                let _ = std::fs::rename(f, f.with_extension("json.migrated"));
            }
        }
    }

    async fn insert(&self, pr: &Primary, id: &str, job: ProxyJob) -> ApiResult<()> {
        let name = doc_name(id);
        if !ais_cluster::valid_doc_name(&name) {
            return Err(ApiError::internal(format!(
                "job id {id} is not a valid record name"
            )));
        }
        let v = encode(&job)?;
        pr.update_docs(|meta| {
            let mut changes = Vec::new();
            if meta.doc(&name).is_none() {
                // The oldest go first (the same choice on every proxy).
                let mut by_age: Vec<(i64, String)> = self
                    .all()
                    .into_iter()
                    .map(|(k, j)| (j.started_ns, k))
                    .collect();
                if by_age.len() >= MAX_KEPT_JOBS {
                    by_age.sort();
                    for (_, old) in by_age.iter().take(by_age.len() + 1 - MAX_KEPT_JOBS) {
                        changes.push(meta.next_doc(&doc_name(old), None));
                    }
                }
            }
            changes.push(meta.next_doc(&name, Some(v)));
            Ok::<_, ApiError>((changes, ()))
        })
        .await
    }

    /// Changes job `id`'s record, if there is one.
    async fn modify(&self, pr: &Primary, id: &str, f: impl FnOnce(&mut ProxyJob)) -> ApiResult<()> {
        modify_job(pr, id, f).await
    }

    /// Keeps a departing target's final snapshot of job `id`.
    async fn set_left(&self, pr: &Primary, id: &str, target: &str, snap: Value) -> ApiResult<()> {
        self.modify(pr, id, |j| {
            j.left.insert(target.to_string(), snap);
        })
        .await
    }
    /// Keeps every target's final snapshot of a job that has ended
    /// everywhere (one write, in the background: a status query does not
    /// wait on a commit; one at a time per job): a target restarting later,
    /// which forgets its jobs, must not turn a finished job into a lost one.
    fn set_final_soon(pr: std::sync::Arc<Primary>, id: &str, snaps: Vec<(String, Value)>) {
        static BUSY: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        let id = id.to_string();
        match BUSY.lock() {
            Ok(mut b) if !b.contains(&id) => b.push(id.clone()),
            _ => return,
        }
        tokio::spawn(async move {
            if let Err(e) = modify_job(&pr, &id, |j| j.left.extend(snaps)).await {
                tracing::warn!(job = %id, error = %e, "could not keep the job's final snapshots");
            }
            if let Ok(mut b) = BUSY.lock() {
                b.retain(|x| *x != id);
            }
        });
    }
    /// The rebalance registered last, if any.
    fn newest_rebalance(&self) -> Option<String> {
        self.all()
            .into_iter()
            .filter(|(_, j)| j.kind == crate::rpc::types::JOB_REBALANCE)
            .max_by_key(|(id, j)| (j.started_ns, id.clone()))
            .map(|(id, _)| id)
    }
    async fn remove(&self, pr: &Primary, id: &str) -> ApiResult<()> {
        let name = doc_name(id);
        pr.update_docs(|meta| {
            let changes = match meta.doc(&name) {
                Some(_) => vec![meta.next_doc(&name, None)],
                None => Vec::new(),
            };
            Ok::<_, ApiError>((changes, ()))
        })
        .await
    }
    fn ids(&self) -> Vec<String> {
        self.meta
            .docs_under(DOC_PREFIX)
            .into_iter()
            .filter_map(|(k, _)| k.strip_prefix(DOC_PREFIX).map(str::to_string))
            .collect()
    }
}

/// Changes job `id`'s record, if there is one and `f` changes it.
async fn modify_job(pr: &Primary, id: &str, f: impl FnOnce(&mut ProxyJob)) -> ApiResult<()> {
    let name = doc_name(id);
    pr.update_docs(|meta| {
        let Some(d) = meta.doc(&name) else {
            return Ok((Vec::new(), ()));
        };
        let Ok(mut j) = serde_json::from_value::<ProxyJob>(d.data.clone()) else {
            return Ok((Vec::new(), ()));
        };
        f(&mut j);
        let new = encode(&j)?;
        if new == d.data {
            return Ok((Vec::new(), ()));
        }
        Ok::<_, ApiError>((vec![meta.next_doc(&name, Some(new))], ()))
    })
    .await
}

/// `POST /v1/buckets/SRC` with `etl-bck`, `copy-bck`, `etl-listrange`, `copy-listrange`.
pub async fn start(p: &Proxy, ctx: &Ctx, src: &Bck, msg: ActMsg) -> Res {
    let core = &p.core;
    let etl = msg.action.starts_with("etl");
    let kind = if etl { "etl-bck" } else { "copy-bck" };
    let mut tcb: TcbMsg = if msg.value.is_null() {
        TcbMsg::default()
    } else {
        serde_json::from_value(msg.value.clone())
            .map_err(|e| ApiError::bad_request(format!("malformed {} message: {e}", msg.action)))?
    };
    // Destination: `bck_to` uname, `tobck` in list/range messages, or the legacy ActMsg name.
    let dst = if let Some(u) = ctx.query.get("bck_to").filter(|u| !u.is_empty()) {
        Bck::parse_uname(u)?.0
    } else if let Some(n) = msg
        .value
        .get("tobck")
        .and_then(|t| t.get("name"))
        .and_then(Value::as_str)
    {
        Bck::validated(n, None)?
    } else if !msg.name.is_empty() {
        Bck::parse_uri(&msg.name)?.0
    } else {
        return Err(ApiError::bad_request(format!(
            "{}: missing destination bucket (bck_to)",
            msg.action
        )));
    };
    let src_props = super::remote::props(p, src).await?;
    if src.name == dst.name && !tcb.dry_run {
        return Err(ApiError::bad_request(format!(
            "cannot {} {} onto itself (only with dry_run)",
            msg.action,
            src.cname()
        )));
    }
    if etl {
        if tcb.id.is_empty() {
            return Err(ApiError::bad_request("etl-bck: missing ETL name (\"id\")"));
        }
        super::etl::check_usable(p, &tcb.id)?;
        // The same rules as a GET's `etl_pipeline`; every stage must exist.
        crate::http::check_etl_stages(&tcb.pipeline)?;
        for s in &tcb.pipeline {
            super::etl::check_usable(p, s)?;
        }
    }
    if tcb.sync && (etl || !tcb.ext.is_empty()) {
        return Err(ApiError::bad_request(format!(
            "{}: synchronize applies to a plain bucket copy (no transform, no ext renaming): \
             only then does each destination name tell its source",
            msg.action
        )));
    }
    if !etl && !tcb.pipeline.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{}: an ETL pipeline applies to a transform (etl-bck) only",
            msg.action
        )));
    }
    if !tcb.template.is_empty() {
        expand_template(&tcb.template, MAX_TEMPLATE)?; // validate early: a clear 400
    }
    if tcb.etl_args.is_empty() {
        if let Some(a) = ctx.query.get("etl_args") {
            tcb.etl_args = a.to_string();
        }
    }
    let primary = p.primary()?;
    let dst_existed = core.meta.with_bmd(|b| b.buckets.contains_key(&dst.name));
    let dst_backed = core
        .meta
        .with_bmd(|b| b.buckets.get(&dst.name).map(|p| p.is_remote_backed()))
        .unwrap_or(false);
    if dst.is_remote() || core.bck(dst.name.clone()).is_remote() || dst_backed {
        return Err(ApiError::bad_request(format!(
            "{}: the destination {} is a remote bucket (or fronts one: backend_bck); copy or \
             transform into an ais:// bucket of the cluster's own",
            msg.action,
            dst.cname()
        )));
    }
    if !tcb.dry_run && !dst_existed {
        let mut props = src_props.clone();
        // A copy of a remote bucket is a bucket of the cluster's own.
        props.provider = "ais".into();
        props.extra = Default::default();
        // Nor does it write through to the source's backend.
        props.backend_bck = Default::default();
        props.bid = ais_core::gen_id(10);
        props.created = ais_core::now_ns().to_string();
        primary
            .update_bmd(|bmd| {
                bmd.buckets.entry(dst.name.clone()).or_insert(props);
                Ok::<_, ApiError>(())
            })
            .await?;
    }
    let id = format!(
        "{}-{}",
        if etl { "etl" } else { "tcb" },
        ais_core::gen_id(10)
    );
    let spec = JobSpec {
        id: id.clone(),
        kind: kind.into(),
        src: src.name.clone(),
        dst: dst.name.clone(),
        msg: tcb,
        skip_unchanged: dst_existed,
        archive: None,
        smap: None,
    };
    launch(p, spec).await
}

/// `POST /v1/buckets/SRC?bck_to=ais/@#/DST/` with `move-bck` (the SDK's
/// `Bucket.rename`, `ais bucket mv`): DST is created with SRC's props, SRC
/// takes no writes while a copy job moves every object (placement follows
/// the new name), and SRC is destroyed when the job finished with no
/// error; if it did not, SRC takes writes again and both stay (the job's
/// status says why). Answers the job id.
pub async fn start_move(p: &std::sync::Arc<Proxy>, ctx: &Ctx, src: &Bck) -> Res {
    let to = ctx
        .query
        .get("bck_to")
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::bad_request("move-bck: missing the new name (bck_to)"))?;
    let dst = Bck::parse_uname(to)?.0;
    let props = p.core.bucket_props(src)?;
    if props.provider != "ais" || dst.is_remote() {
        return Err(ApiError::bad_request(format!(
            "move-bck: {} → {}: only ais:// buckets can be renamed",
            src.cname(),
            dst.cname()
        )));
    }
    if src.name == dst.name {
        return Err(ApiError::bad_request(format!(
            "move-bck: {} already has that name",
            src.cname()
        )));
    }
    let primary = p.primary()?;
    let mut new_props = props.clone();
    new_props.bid = ais_core::gen_id(10);
    new_props.created = ais_core::now_ns().to_string();
    new_props.renaming = String::new();
    primary
        .update_bmd(|bmd| {
            if bmd.buckets.contains_key(&dst.name) {
                return Err(ApiError::BucketExists(dst.cname()));
            }
            let s = bmd
                .buckets
                .get(&src.name)
                .ok_or_else(|| ApiError::bucket_not_found(src))?;
            if !s.renaming.is_empty() {
                return Err(ApiError::Conflict(format!(
                    "{} is already being renamed to ais://{}",
                    src.cname(),
                    s.renaming
                )));
            }
            // Nor the destination of one still running (its objects are
            // still arriving).
            if let Some((from, _)) = bmd.buckets.iter().find(|(_, b)| b.renaming == src.name) {
                return Err(ApiError::Conflict(format!(
                    "{} is being filled by the rename of ais://{from}: rename it when that is over",
                    src.cname()
                )));
            }
            let s = bmd
                .buckets
                .get_mut(&src.name)
                .ok_or_else(|| ApiError::bucket_not_found(src))?;
            s.renaming = dst.name.clone();
            bmd.buckets.insert(dst.name.clone(), new_props);
            Ok(())
        })
        .await?;
    let spec = JobSpec {
        id: format!("move-bck-{}", ais_core::gen_id(10)),
        kind: crate::rpc::types::JOB_MOVE_BCK.into(),
        src: src.name.clone(),
        dst: dst.name.clone(),
        msg: TcbMsg::default(),
        skip_unchanged: false,
        archive: None,
        smap: None,
    };
    // Every target in the map: one in maintenance may still hold objects.
    let id = match launch_on(p, spec, map_targets(p), |_| false).await {
        Ok(id) => id,
        Err(e) => {
            end_move(p, src, &dst, false).await;
            return Err(e);
        }
    };
    tracing::info!(job = %id, from = %src.cname(), to = %dst.cname(), "bucket rename started");
    let (p2, src2, id2) = (p.clone(), src.clone(), id.clone());
    tokio::spawn(async move {
        let ok = loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            match status(&p2, &id2).await {
                Ok(v) if v["end_time"].as_i64().unwrap_or(0) != 0 => {
                    break v["err"].as_str().unwrap_or("").is_empty()
                        && v["err_count"].as_u64().unwrap_or(0) == 0
                        && !v["aborted"].as_bool().unwrap_or(false);
                }
                Ok(_) => {}
                // The job is unknown here now (evicted, or this proxy lost
                // it): the move cannot be confirmed, so it did not happen.
                Err(ApiError::NotFound(_)) => break false,
                Err(e) => tracing::warn!(job = %id2, error = %e, "bucket rename: job status"),
            }
        };
        end_move(&p2, &src2, &dst, ok).await;
    });
    Ok(text_ok(&id))
}

/// Ends a rename: `done`, the old bucket goes; else it takes writes again.
async fn end_move(p: &Proxy, src: &Bck, dst: &Bck, done: bool) {
    let Ok(primary) = p.primary() else { return };
    let res = primary
        .update_bmd(|bmd| {
            if done {
                bmd.buckets.remove(&src.name);
            } else if let Some(s) = bmd.buckets.get_mut(&src.name) {
                s.renaming = String::new();
            }
            Ok::<_, ApiError>(())
        })
        .await;
    match (res, done) {
        (Err(e), _) => {
            tracing::error!(from = %src.cname(), to = %dst.cname(), error = %e, "bucket rename: could not update the bucket map")
        }
        (Ok(_), true) => {
            tracing::info!(from = %src.cname(), to = %dst.cname(), "bucket renamed")
        }
        (Ok(_), false) => {
            tracing::warn!(from = %src.cname(), to = %dst.cname(), "bucket rename failed: both buckets kept, the old one takes writes again")
        }
    }
}

/// `POST /v1/buckets/B` with `prefetch-listrange`, `DELETE` with
/// `evict-listrange`: a remote bucket's objects (names, a template, or a
/// prefix) fetched into the cluster, or their cached copies removed.
pub async fn start_remote(p: &Proxy, bck: &Bck, msg: ActMsg, kind: &str) -> Res {
    let props = super::remote::props(p, bck).await?;
    if !props.is_remote_backed() {
        return Err(ApiError::bad_request(format!(
            "{}: {} is an ais:// bucket without a backend_bck; this is for remote (s3://, gs://, az://) buckets",
            msg.action,
            bck.cname()
        )));
    }
    let tcb = tcb_of(&msg)?;
    if !tcb.template.is_empty() {
        expand_template(&tcb.template, MAX_TEMPLATE)?;
    }
    let prefix = kind.split('-').next().unwrap_or(kind);
    bucket_job(p, bck, kind, prefix, tcb).await
}

/// `POST /v1/objects/B {"action": "blob-download", "name": O, "value":
/// {"chunk-size", "num-workers", "latest-ver"}}`: one large object of a
/// remote bucket fetched into the cluster by its owner in parallel ranges,
/// as a job; answers its id.
pub async fn start_blob_download(p: &Proxy, bck: &Bck, msg: ActMsg) -> Res {
    let props = super::remote::props(p, bck).await?;
    if !props.is_remote_backed() {
        return Err(ApiError::bad_request(format!(
            "blob-download: {} is an ais:// bucket without a backend_bck; blob download fetches from a remote bucket's backend",
            bck.cname()
        )));
    }
    ais_core::names::validate_object_name(&msg.name)?;
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct BlobMsg {
        #[serde(default, rename = "chunk-size")]
        chunk_size: Option<u64>,
        #[serde(default, rename = "num-workers")]
        num_workers: Option<i64>,
        #[serde(default, rename = "latest-ver")]
        latest: bool,
    }
    let v: BlobMsg = if msg.value.is_null() {
        BlobMsg::default()
    } else {
        serde_json::from_value(msg.value.clone())
            .map_err(|e| ApiError::bad_request(format!("malformed blob-download message: {e}")))?
    };
    let chunk = v.chunk_size.unwrap_or(4 << 20);
    if !(64 << 10..=256 << 20).contains(&chunk) {
        return Err(ApiError::bad_request(format!(
            "blob-download: chunk-size {chunk} is outside 64KiB..=256MiB"
        )));
    }
    let workers = v.num_workers.unwrap_or(4);
    if !(1..=16).contains(&workers) {
        return Err(ApiError::bad_request(format!(
            "blob-download: num-workers {workers} is outside 1..=16"
        )));
    }
    if workers as u64 * chunk > 256 << 20 {
        return Err(ApiError::bad_request(format!(
            "blob-download: num-workers x chunk-size is {} bytes; at most 256MiB in flight",
            workers as u64 * chunk
        )));
    }
    let owner = p
        .core
        .owner(&bck.obj_uname(&msg.name))
        .ok_or_else(|| ApiError::unavailable("the cluster has no storage targets yet"))?;
    let tcb = TcbMsg {
        objnames: vec![msg.name.clone()],
        num_workers: workers,
        ext: [
            ("chunk-size".to_string(), chunk.to_string()),
            ("latest-ver".to_string(), v.latest.to_string()),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    let spec = JobSpec {
        id: format!("blob-download-{}", ais_core::gen_id(10)),
        kind: crate::rpc::types::JOB_BLOB_DOWNLOAD.into(),
        src: bck.name.clone(),
        dst: bck.name.clone(),
        msg: tcb,
        skip_unchanged: false,
        archive: None,
        smap: None,
    };
    Ok(text_ok(&launch_on(p, spec, vec![owner], |_| false).await?))
}

/// `POST /v1/objects/B` with `promote` (AIStore's `PromoteArgs`: `src`,
/// `obj`, `tid`, `rcr`, `ovw`, `dls`, `notshr`): files under an operator's
/// promote root on the targets become objects of B (`target::promote`).
/// With `tid` one target does it all; otherwise, when every target sees the
/// same files (a file share), each takes the ones it owns; else each takes
/// what it sees. Answers the job id.
pub async fn start_promote(p: &Proxy, bck: &Bck, msg: ActMsg) -> Res {
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct PromoteArgs {
        #[serde(default)]
        tid: String,
        #[serde(default)]
        src: String,
        #[serde(default)]
        obj: String,
        #[serde(default)]
        rcr: bool,
        #[serde(default)]
        ovw: bool,
        #[serde(default)]
        dls: bool,
        #[serde(default)]
        notshr: bool,
    }
    let a: PromoteArgs = serde_json::from_value(msg.value.clone())
        .map_err(|e| ApiError::bad_request(format!("malformed promote message: {e}")))?;
    let src = if a.src.is_empty() {
        msg.name.clone()
    } else {
        a.src.clone()
    };
    if src.is_empty() || (!msg.name.is_empty() && msg.name != src) {
        return Err(ApiError::bad_request(
            "promote: the source path (\"src\", and the message's name) is required and must agree",
        ));
    }
    // (Each target checks it against its promote roots too.)
    if !src.starts_with('/')
        || std::path::Path::new(&src)
            .components()
            .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(ApiError::bad_request(format!(
            "promote: source \"{src}\" must be an absolute path without \"..\""
        )));
    }
    if !a.obj.is_empty() {
        ais_core::names::validate_object_name(a.obj.trim_end_matches('/'))?;
    }
    let props = p.core.bucket_props(bck)?;
    if props.provider != "ais" {
        return Err(ApiError::bad_request(format!(
            "promote: {} is a remote bucket; promote into an ais:// bucket",
            bck.cname()
        )));
    }
    let all = p.core.targets();
    let targets = if a.tid.is_empty() {
        all
    } else {
        vec![all
            .into_iter()
            .find(|t| t.daemon_id == a.tid)
            .ok_or_else(|| {
                ApiError::NotFound(format!("promote: no target {} in the cluster", a.tid))
            })?]
    };
    if targets.is_empty() {
        return Err(ApiError::unavailable(
            "the cluster has no storage targets yet",
        ));
    }
    // File-share detection, as AIStore's: every target lists the source;
    // the same names and sizes everywhere → split by ownership.
    let share = if a.notshr || targets.len() < 2 {
        false
    } else {
        let args = serde_json::json!({"src": src, "obj": a.obj, "rcr": a.rcr});
        let res = crate::rpc::fan_out(&targets, Duration::from_secs(120), |d| {
            let (rpc, args) = (p.core.rpc.clone(), args.clone());
            async move { rpc.promote_scan(&d, &args).await }
        })
        .await;
        let mut views = Vec::new();
        for (n, r) in res {
            match r {
                Ok(v) => views.push((
                    v["n"].as_u64().unwrap_or(0),
                    v["hash"].as_str().unwrap_or("").to_string(),
                )),
                // Not there at all on a target: not a share.
                Err(crate::rpc::RpcError::Status { status, .. })
                    if status == StatusCode::NOT_FOUND =>
                {
                    views.push((0, n.daemon_id.clone()))
                }
                Err(e) => return Err(ApiError::from(e).context("promote")),
            }
        }
        views.iter().all(|v| *v == views[0] && v.0 > 0)
    };
    let ext = [
        ("src", src.clone()),
        ("obj", a.obj.clone()),
        ("rcr", a.rcr.to_string()),
        ("ovw", a.ovw.to_string()),
        ("dls", a.dls.to_string()),
        ("share", share.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let tcb = TcbMsg {
        ext,
        ..Default::default()
    };
    let kind = crate::rpc::types::JOB_PROMOTE;
    bucket_job_on(p, bck, kind, kind, tcb, targets).await
}

/// `DELETE /v1/buckets/B` with `delete-listrange`: the objects named, those
/// a template expands to, or those under a prefix, deleted by one job (each
/// target deletes what it holds, in parallel); answers the job id. An empty
/// selection is refused rather than taken as "every object".
pub async fn start_delete(p: &Proxy, bck: &Bck, msg: ActMsg) -> Res {
    super::remote::props(p, bck).await?;
    let tcb = tcb_of(&msg)?;
    if tcb.objnames.is_empty() && tcb.template.is_empty() && tcb.prefix.is_empty() {
        return Err(ApiError::bad_request(format!(
            "delete-listrange of {}: name the objects (objnames), a template or a prefix \
             (to remove every object, destroy the bucket)",
            bck.cname()
        )));
    }
    if !tcb.template.is_empty() {
        expand_template(&tcb.template, MAX_TEMPLATE)?;
    }
    for n in &tcb.objnames {
        ais_core::names::validate_object_name(n)?;
    }
    // Every target in the map: a copy left on one in maintenance would
    // come back.
    bucket_job_on(
        p,
        bck,
        crate::rpc::types::JOB_DELETE,
        "delete",
        tcb,
        map_targets(p),
    )
    .await
}

/// A `create-inventory` job on every active target (each writes the
/// names it owns); answers its id.
pub async fn start_create_nbi(p: &Proxy, bck: &Bck, mut tcb: TcbMsg) -> Res {
    // One map for every target: each keeps the names that map gives it, so
    // the shares partition the bucket's names whatever joins or leaves
    // meanwhile (a target judging by a newer map would skip names the
    // others leave to it).
    let smap = p
        .core
        .meta
        .smap()
        .ok_or_else(|| ApiError::unavailable("no cluster map yet"))?;
    let targets: Vec<Snode> = smap.active_targets().cloned().collect();
    tcb.coer = true;
    let spec = JobSpec {
        id: format!(
            "{}-{}",
            crate::rpc::types::JOB_CREATE_NBI,
            ais_core::gen_id(10)
        ),
        kind: crate::rpc::types::JOB_CREATE_NBI.into(),
        src: bck.name.clone(),
        dst: bck.name.clone(),
        msg: tcb,
        skip_unchanged: false,
        archive: None,
        smap: Some(smap),
    };
    Ok(text_ok(&launch_on(p, spec, targets, |_| false).await?))
}

/// Every target in the current map, in maintenance or being decommissioned
/// included (they hold objects until a rebalance moved them).
fn map_targets(p: &Proxy) -> Vec<Snode> {
    p.core
        .meta
        .with_smap(|s| s.map(|s| s.tmap.values().cloned().collect()))
        .unwrap_or_default()
}

/// `POST /v1/buckets/B` with `scrub-bck`: every target verifies its objects
/// of B (size, checksum, mirror copies) and repairs what redundancy allows.
pub async fn start_scrub(p: &Proxy, bck: &Bck, msg: ActMsg) -> Res {
    p.core.bucket_props(bck)?;
    let tcb = tcb_of(&msg)?;
    bucket_job(p, bck, crate::rpc::types::JOB_SCRUB, "scrub", tcb).await
}

/// `make-n-copies` (after the bucket's mirror props were set): every
/// target brings its objects to that many copies.
pub async fn start_make_n_copies(p: &Proxy, bck: &Bck) -> Res {
    bucket_job(
        p,
        bck,
        crate::rpc::types::JOB_MAKE_N_COPIES,
        "make-n-copies",
        TcbMsg::default(),
    )
    .await
}

/// The selection of a bucket job's message (`null`: everything).
fn tcb_of(msg: &ActMsg) -> ApiResult<TcbMsg> {
    if msg.value.is_null() {
        return Ok(TcbMsg::default());
    }
    serde_json::from_value(msg.value.clone())
        .map_err(|e| ApiError::bad_request(format!("malformed {} message: {e}", msg.action)))
}

/// Starts a job of `kind` over one bucket's objects on every target. It
/// reports every object's error rather than stopping at the first.
async fn bucket_job(p: &Proxy, bck: &Bck, kind: &str, id_prefix: &str, tcb: TcbMsg) -> Res {
    bucket_job_on(p, bck, kind, id_prefix, tcb, p.core.targets()).await
}

/// [`bucket_job`] on `targets`.
async fn bucket_job_on(
    p: &Proxy,
    bck: &Bck,
    kind: &str,
    id_prefix: &str,
    mut tcb: TcbMsg,
    targets: Vec<Snode>,
) -> Res {
    tcb.coer = true;
    let spec = JobSpec {
        id: format!("{id_prefix}-{}", ais_core::gen_id(10)),
        kind: kind.into(),
        src: bck.name.clone(),
        dst: bck.name.clone(),
        msg: tcb,
        skip_unchanged: false,
        archive: None,
        smap: None,
    };
    Ok(text_ok(&launch_on(p, spec, targets, |_| false).await?))
}

/// Starts an `ec-encode` job on B: every target erasure-codes the objects
/// it owns (parts cut and placed, lost ones rebuilt); answers its id.
pub async fn start_ec_encode(p: &Proxy, bck: &Bck) -> Res {
    p.core.bucket_props(bck)?;
    let spec = JobSpec {
        id: format!("ec-encode-{}", ais_core::gen_id(10)),
        kind: crate::rpc::types::JOB_EC_ENCODE.into(),
        src: bck.name.clone(),
        dst: bck.name.clone(),
        msg: TcbMsg {
            coer: true,
            ..Default::default()
        },
        skip_unchanged: false,
        archive: None,
        smap: None,
    };
    launch(p, spec).await
}

/// Starts a global rebalance (every target moves what it no longer owns to
/// the owner), aborting the one still running; answers its id.
pub async fn start_rebalance(p: &Proxy) -> Res {
    Ok(text_ok(&rebalance_now(p).await?))
}

/// [`start_rebalance`], answering the job id. Runs on every target in the
/// map, those in maintenance or being decommissioned included (they hold
/// objects that must move away); one of those that cannot be reached is
/// left out (it may be shut down on purpose).
pub async fn rebalance_now(p: &Proxy) -> ApiResult<String> {
    let id = format!("rebalance-{}", ais_core::gen_id(10));
    let smap = p
        .core
        .meta
        .smap()
        .ok_or_else(|| ApiError::unavailable("no cluster map yet"))?;
    let active: Vec<String> = smap.active_targets().map(|t| t.daemon_id.clone()).collect();
    let all: Vec<Snode> = smap.tmap.values().cloned().collect();
    let previous = p
        .rebalance
        .lock()
        .ok()
        .and_then(|mut cur| cur.replace(id.clone()));
    if let Some(old) = previous {
        abort_everywhere(p, &old).await;
    }
    let spec = JobSpec {
        id: id.clone(),
        kind: crate::rpc::types::JOB_REBALANCE.into(),
        src: String::new(),
        dst: String::new(),
        msg: TcbMsg::default(),
        skip_unchanged: false,
        archive: None,
        smap: Some(smap),
    };
    launch_on(p, spec, all, |t| t.flags & FLAGGED != 0).await?;
    mark_balanced(p, active);
    Ok(id)
}

const FLAGGED: u64 = ais_core::meta::NODE_FLAG_MAINTENANCE | ais_core::meta::NODE_FLAG_DECOMMISSION;

/// Tells the membership watcher that the current set of active targets is
/// taken care of (a rebalance for it started, or it was skipped on purpose).
pub fn mark_balanced(p: &Proxy, mut active: Vec<String>) {
    active.sort();
    if let Ok(mut b) = p.balanced.lock() {
        *b = Some(active);
    }
}

/// Records `node`'s final snapshot of every job it took part in before it
/// leaves the cluster, so those jobs' status stays complete without it.
pub async fn keep_final_snaps(p: &Proxy, node: &Snode) {
    let ids: Vec<String> = p
        .jobs
        .all()
        .into_iter()
        .filter(|(_, j)| j.targets.iter().any(|t| t.daemon_id == node.daemon_id))
        .map(|(id, _)| id)
        .collect();
    let Ok(pr) = p.primary() else { return };
    for id in ids {
        match p.core.rpc.job_snap(&node.into(), &id).await {
            Ok(v) => {
                if let Err(e) = p.jobs.set_left(&pr, &id, &node.name(), v).await {
                    tracing::warn!(job = %id, error = %e, "could not keep a final job snapshot");
                }
            }
            Err(e) => {
                tracing::debug!(job = %id, node = %node.name(), error = %e, "no final job snapshot")
            }
        }
    }
}

/// The rebalance started last, if any.
pub fn current_rebalance(p: &Proxy) -> Option<String> {
    p.rebalance.lock().ok().and_then(|r| r.clone())
}

/// Primary only: starts a rebalance whenever the set of targets changes and
/// then stays the same for `settle` (joins and leaves often come in bursts),
/// and restarts one that was interrupted (a target crashed or restarted
/// mid-way and lost its part) once the map has been stable for `settle`.
pub async fn rebalance_on_membership_change(p: std::sync::Arc<Proxy>, settle: Duration) {
    let targets = |p: &Proxy| -> Vec<String> {
        let mut ids: Vec<String> = p.core.targets().into_iter().map(|t| t.daemon_id).collect();
        ids.sort();
        ids
    };
    // A restarted primary picks up where it was: the last rebalance (an
    // interrupted one is restarted) and unfinished decommissions/shutdowns.
    if let Ok(mut cur) = p.rebalance.lock() {
        if cur.is_none() {
            *cur = p.jobs.newest_rebalance();
        }
    }
    super::lifecycle::resume(&p);
    let mut balanced = targets(&p);
    let mut seen = balanced.clone();
    let mut since = std::time::Instant::now();
    let mut tick = 0u64;
    // Interrupted rebalances restarted in a row (bounded: a rebalance that
    // keeps failing is reported, not retried forever).
    let mut restarts = 0u32;
    // The last rebalance seen finished cleanly (not asked about again).
    let mut clean: Option<String> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        tick += 1;
        if let Some(b) = p.balanced.lock().ok().and_then(|mut b| b.take()) {
            balanced = b;
        }
        let now = targets(&p);
        if now != seen {
            seen = now;
            since = std::time::Instant::now();
            continue;
        }
        if seen.is_empty() || since.elapsed() < settle {
            continue;
        }
        let why = if seen != balanced {
            if !p.core.config.current().bool("rebalance.enabled") {
                // `rebalance.enabled=false`: the operator rebalances by
                // hand (`ais job start rebalance`); turned back on, the
                // pending change is rebalanced then.
                continue;
            }
            restarts = 0;
            "membership changed"
        } else if tick.is_multiple_of(4)
            && current_rebalance(&p).is_some_and(|id| clean.as_ref() != Some(&id))
            && interrupted(&p, &mut clean).await
            && restarts < MAX_RESTARTS
        {
            restarts += 1;
            "the last rebalance was interrupted"
        } else {
            continue;
        };
        match rebalance_now(&p).await {
            Ok(id) => {
                tracing::info!(targets = seen.len(), job = %id, "{why}: rebalance started");
            }
            Err(e) => tracing::warn!(error = %e, "could not start rebalance; will retry"),
        }
    }
}

const MAX_RESTARTS: u32 = 10;

/// The current rebalance ended aborted without a user asking (a target it
/// ran on crashed, restarted or failed). One that finished cleanly is
/// remembered in `clean`.
async fn interrupted(p: &Proxy, clean: &mut Option<String>) -> bool {
    let Some(id) = current_rebalance(p) else {
        return false;
    };
    match status(p, &id).await {
        Ok(st) => {
            let ended = st["end_time"].as_i64().unwrap_or(0) != 0;
            let aborted = ended && st["aborted"].as_bool().unwrap_or(false);
            if aborted {
                tracing::warn!(job = %id, err = %st["err"].as_str().unwrap_or(""), "rebalance interrupted");
            } else if ended {
                *clean = Some(id);
            }
            aborted
        }
        Err(_) => false,
    }
}

/// [`launch`], answering the id itself.
pub(super) async fn launch_all(p: &Proxy, spec: JobSpec) -> ApiResult<String> {
    launch_on(p, spec, p.core.targets(), |_| false).await
}

/// Stops job `id` everywhere (an error names the targets it may still run on).
pub(super) async fn stop_one(p: &Proxy, id: &str) -> ApiResult<()> {
    stop_outcome(id, stop_job(p, id).await)
}

/// Forgets finished job `id` (as `remove-job`).
pub(super) async fn remove_one(p: &Proxy, id: &str) -> ApiResult<()> {
    remove_jobs(p, json!({ "id": id })).await.map(drop)
}

/// The ids of the registered jobs whose ids start with `kind-`.
pub(super) async fn ids_of_kind(p: &Proxy, kind: &str) -> Vec<String> {
    let mut ids: Vec<String> = p
        .jobs
        .ids()
        .into_iter()
        .filter(|i| i.starts_with(&format!("{kind}-")))
        .collect();
    ids.sort();
    ids
}

/// Registers a job and starts it on every target; answers its id.
pub(super) async fn launch(p: &Proxy, spec: JobSpec) -> Res {
    let targets = p.core.targets();
    let id = launch_on(p, spec, targets, |_| false).await?;
    Ok(text_ok(&id))
}

/// Registers a job and starts it on `targets`. A target for which
/// `optional` holds may fail to start it (it is then left out of the job);
/// any other failure aborts the job everywhere.
async fn launch_on(
    p: &Proxy,
    spec: JobSpec,
    targets: Vec<Snode>,
    optional: impl Fn(&Snode) -> bool,
) -> ApiResult<String> {
    let core = &p.core;
    let (id, kind) = (spec.id.clone(), spec.kind.clone());
    if targets.is_empty() {
        return Err(ApiError::unavailable("the cluster has no targets"));
    }
    let job = |targets: Vec<Snode>| ProxyJob {
        kind: kind.clone(),
        targets,
        started_ns: ais_core::now_ns(),
        left: HashMap::new(),
    };
    let pr = p.primary()?;
    p.jobs.insert(&pr, &id, job(targets.clone())).await?;
    let results = fan_out(&targets, CONTROL_TIMEOUT, |t| {
        let spec = &spec;
        async move { core.rpc.job_start(&t, spec).await }
    })
    .await;
    let (skipped, results): (Vec<_>, Vec<_>) = results
        .into_iter()
        .partition(|(t, r)| r.is_err() && optional(t));
    for (t, r) in &skipped {
        if let Err(e) = r {
            tracing::warn!(job = %id, target = %t.name(), error = %e, "target left out of the job");
        }
    }
    if let Err(e) = all_ok(&format!("failed to start job {id}"), results) {
        abort_everywhere(p, &id).await;
        return Err(ApiError::Unavailable(e.to_string()));
    }
    if !skipped.is_empty() {
        let started = targets
            .into_iter()
            .filter(|t| !skipped.iter().any(|(s, _)| s.daemon_id == t.daemon_id))
            .collect();
        p.jobs.insert(&pr, &id, job(started)).await?;
    }
    tracing::info!(job = %id, %kind, src = %spec.src, dst = %spec.dst, "job started");
    Ok(id)
}

/// Aborts job `id` on every target running it; answers the targets that
/// could not be told ("NAME: error"), so a stop can say so.
async fn abort_everywhere(p: &Proxy, id: &str) -> Vec<String> {
    let job = match p.jobs.get(&p.core.name, id) {
        Ok(j) => j,
        // One a target started by itself (resilver, LRU).
        Err(_) => match local_job(p, id).await {
            Some(j) => j,
            None => return Vec::new(),
        },
    };
    let mut failed = Vec::new();
    for (t, r) in fan_out(&job.targets, CONTROL_TIMEOUT, |t| async move {
        p.core.rpc.job_abort(&t, id).await
    })
    .await
    {
        match r {
            // Not there (restarted since, or long done): nothing runs.
            Err(RpcError::Status { status, .. }) if status == StatusCode::NOT_FOUND => {}
            Err(e) => {
                tracing::warn!(job = %id, target = %t.name(), error = %e, "could not abort job on target");
                failed.push(format!("{}: {e}", t.name()));
            }
            Ok(()) => {}
        }
    }
    failed
}

/// Stops job `id` on purpose (a rebalance stopped so is not restarted as
/// "interrupted"); answers the targets that could not be told.
async fn stop_job(p: &Proxy, id: &str) -> Vec<String> {
    if let Ok(mut cur) = p.rebalance.lock() {
        if cur.as_deref() == Some(id) {
            *cur = None;
        }
    }
    abort_everywhere(p, id).await
}

/// A stop that did not reach every target running the job: 503 naming them.
fn stop_outcome(what: &str, failed: Vec<String>) -> ApiResult<()> {
    if failed.is_empty() {
        return Ok(());
    }
    Err(ApiError::unavailable(format!(
        "{what}: could not be stopped on {} (it may still run there): {}",
        if failed.len() == 1 {
            "one target"
        } else {
            "some targets"
        },
        failed.join("; ")
    )))
}

/// Job query body: Go-style capitalised keys or lower-case.
#[derive(Deserialize, Default)]
struct JobQuery {
    #[serde(default, alias = "ID", alias = "Id", alias = "uuid")]
    id: String,
    #[serde(default, alias = "Kind")]
    kind: String,
}

type Snaps = Vec<(Snode, Result<Value, RpcError>)>;

async fn snaps(p: &Proxy, id: &str) -> ApiResult<(ProxyJob, Snaps)> {
    let job = match p.jobs.get(&p.core.name, id) {
        Ok(j) => j,
        Err(e) => local_job(p, id).await.ok_or(e)?,
    };
    let left = &job.left;
    let s = fan_out(&job.targets, Duration::from_secs(5), |t| async move {
        match left.get(&t.name) {
            Some(v) => Ok(v.clone()),
            None => p.core.rpc.job_snap(&t, id).await,
        }
    })
    .await;
    Ok((job, s))
}

fn num(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

/// A job one target started by itself (a resilver after a mountpath
/// change): the targets that know it.
async fn local_job(p: &Proxy, id: &str) -> Option<ProxyJob> {
    let kind = LOCAL_KINDS
        .iter()
        .find(|k| id.starts_with(&format!("{k}-")))?;
    let all = p.core.targets();
    let found = fan_out(&all, Duration::from_secs(5), |t| async move {
        p.core.rpc.job_snap(&t, id).await
    })
    .await;
    let mut started_ns = 0;
    let targets: Vec<Snode> = all
        .into_iter()
        .zip(found)
        .filter_map(|(t, (_, r))| {
            let v = r.ok()?;
            started_ns = v["start_ns"].as_i64().unwrap_or(0);
            Some(t)
        })
        .collect();
    (!targets.is_empty()).then(|| ProxyJob {
        kind: kind.to_string(),
        targets,
        started_ns,
        left: HashMap::new(),
    })
}

/// Kinds of jobs a target starts by itself (after a mountpath change; past
/// its high watermark): their ids are `KIND-...`.
const LOCAL_KINDS: &[&str] = &[crate::rpc::types::JOB_RESILVER, crate::rpc::types::JOB_LRU];

/// Ids of the jobs targets started by themselves (resilvers, LRU evictions).
async fn local_job_ids(p: &Proxy) -> Vec<String> {
    let all = p.core.targets();
    let mut ids: Vec<String> = fan_out(&all, Duration::from_secs(5), |t| async move {
        p.core.rpc.job_list(&t).await
    })
    .await
    .into_iter()
    .filter_map(|(_, r)| r.ok())
    .flatten()
    .filter(|v| LOCAL_KINDS.iter().any(|k| v["kind"] == *k))
    .filter_map(|v| v["id"].as_str().map(str::to_string))
    .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Aggregated status as the SDK's `Job.status()` reads it.
pub async fn status(p: &Proxy, id: &str) -> ApiResult<Value> {
    let (job, snaps) = snaps(p, id).await?;
    let mut end = 0i64;
    let mut all_done = true;
    let mut aborted = false;
    let mut errs = Vec::new();
    let (mut objs, mut bytes, mut total, mut total_bytes, mut nerr, mut skipped) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut repaired = 0u64;
    for (t, s) in &snaps {
        match s {
            Ok(v) => {
                let e = v["end_ns"].as_i64().unwrap_or(0);
                if e == 0 {
                    all_done = false;
                }
                end = end.max(e);
                aborted |= v["aborted"].as_bool().unwrap_or(false);
                if let Some(er) = v["err"].as_str().filter(|s| !s.is_empty()) {
                    errs.push(format!("{}: {er}", t.name()));
                }
                objs += num(&v["stats"]["out-objs"]);
                bytes += num(&v["stats"]["out-bytes"]);
                total += num(&v["total_objs"]);
                total_bytes += num(&v["total_bytes"]);
                nerr += num(&v["err_count"]);
                skipped += num(&v["skipped"]);
                repaired += num(&v["repaired"]);
            }
            Err(e) => {
                // A target that left can't finish its share: the job fails, clearly.
                aborted = true;
                let why = if e.status() == Some(StatusCode::NOT_FOUND) {
                    "restarted and lost the job".to_string()
                } else if e.is_unreachable() {
                    format!("unreachable ({e})")
                } else {
                    e.to_string()
                };
                errs.push(format!(
                    "target {} {why}; rerun the job to complete it",
                    t.name()
                ));
            }
        }
    }
    let finished = all_done
        || (aborted
            && snaps.iter().all(|(_, s)| {
                s.as_ref()
                    .map(|v| v["end_ns"].as_i64().unwrap_or(0) != 0)
                    .unwrap_or(true)
            }));
    // Ended on every target, each answering: that is the job's outcome for
    // good (kept by the proxy; a target restarting later forgets it).
    if all_done && snaps.iter().all(|(_, s)| s.is_ok()) {
        let fresh: Vec<(String, Value)> = snaps
            .iter()
            .filter(|(t, _)| !job.left.contains_key(&t.name()))
            .filter_map(|(t, s)| s.as_ref().ok().map(|v| (t.name(), v.clone())))
            .collect();
        if !fresh.is_empty() {
            if let Ok(pr) = p.primary() {
                Registry::set_final_soon(pr, id, fresh);
            }
        }
    }
    Ok(json!({
        "uuid": id,
        "kind": job.kind,
        "err": errs.join("; "),
        "end_time": if finished { end.max(1) } else { 0 },
        "aborted": aborted,
        "is_idle": finished,
        "objs": objs,
        "bytes": bytes,
        "total_objs": total,
        "total_bytes": total_bytes,
        "err_count": nerr,
        "skipped": skipped,
        "repaired": repaired,
        "start_time": job.started_ns,
    }))
}

/// `/v1/cluster?what=status|qryxstats|running_all|status_all|node_lifecycle`
/// (else metadata).
pub async fn cluster_query(p: &Proxy, ctx: &Ctx, body: Body) -> Res {
    let raw = read_body(body, 1 << 20).await?;
    let q: JobQuery = if raw.iter().all(|b| b.is_ascii_whitespace()) {
        JobQuery::default()
    } else {
        serde_json::from_slice(&raw)
            .map_err(|e| ApiError::bad_request(format!("malformed job query: {e}")))?
    };
    let id = ctx.query.get("id").map(str::to_string).unwrap_or(q.id);
    match ctx.query.get("what").unwrap_or("") {
        "node_lifecycle" => {
            let m = p.lifecycle.lock().map(|m| m.clone()).unwrap_or_default();
            json_ok(&m)
        }
        "status" => {
            if id.is_empty() {
                return Err(ApiError::bad_request("job status: missing job ID"));
            }
            json_ok(&status(p, &id).await?)
        }
        "job_errors" => {
            if id.is_empty() {
                return Err(ApiError::bad_request("job errors: missing job ID"));
            }
            json_ok(&job_errors(p, &id).await?)
        }
        "qryxstats" => {
            if id.is_empty() {
                return Err(ApiError::bad_request("job query: missing job ID"));
            }
            let (_, snaps) = snaps(p, &id).await?;
            let out: serde_json::Map<String, Value> = snaps
                .into_iter()
                .filter_map(|(t, s)| s.ok().map(|v| (t.daemon_id, Value::Array(vec![v]))))
                .collect();
            if out.is_empty() {
                return Err(ApiError::NotFound(format!("job {id} not found")));
            }
            json_ok(&out)
        }
        "running_all" | "status_all" | "jobs" => {
            let mut out = Vec::new();
            let mut ids = p.jobs.ids();
            ids.extend(local_job_ids(p).await);
            // A job the proxy started on targets is also in their lists.
            ids.sort();
            ids.dedup();
            for id in ids {
                if let Ok(s) = status(p, &id).await {
                    if q.kind.is_empty() || s["kind"] == q.kind.as_str() {
                        out.push(s);
                    }
                }
            }
            out.sort_by(|a, b| a["uuid"].as_str().cmp(&b["uuid"].as_str()));
            if ctx.query.get("what") == Some("running_all") {
                let names: Vec<String> = out
                    .iter()
                    .filter(|s| s["end_time"] == 0)
                    .map(|s| {
                        format!(
                            "{}[{}]",
                            s["kind"].as_str().unwrap_or(""),
                            s["uuid"].as_str().unwrap_or("")
                        )
                    })
                    .collect();
                return json_ok(&names);
            }
            json_ok(&out)
        }
        _ => p.core.daemon_info(ctx),
    }
}

/// `PUT /v1/cluster` with `{"action": "stop", "value": {"ID": ...}}`.
pub async fn cluster_action(p: &std::sync::Arc<Proxy>, ctx: &Ctx, body: Body) -> Res {
    let msg = ActMsg::parse(&read_body(body, 1 << 20).await?)?;
    match msg.action.as_str() {
        "set-config" | "reset-config" => super::config::cluster_action(p, ctx, &msg).await,
        "start" => start_by_kind(p, ctx, msg.value).await,
        "shutdown" => super::lifecycle::shutdown_cluster(p).await,
        "reset-stats" => {
            // Every node's counters (this proxy's too); a node that does
            // not take it fails the request, naming it.
            crate::http::reset_errors_only(&msg.value)?;
            let nodes: Vec<Snode> = p.core.meta.with_smap(|s| {
                s.map(|s| s.pmap.values().chain(s.tmap.values()).cloned().collect())
                    .unwrap_or_default()
            });
            let msg = &msg;
            all_ok(
                "reset-stats",
                fan_out(&nodes, CONTROL_TIMEOUT, |d| async move {
                    p.core.rpc.node_action(&d, msg).await
                })
                .await,
            )?;
            Ok(empty(StatusCode::OK))
        }
        "decommission" => Err(ApiError::NotImplemented(
            "decommission of the whole cluster is not supported by aistore-rs: decommission its targets one by one (decommission-node), then stop the proxy".into(),
        )),
        "rebalance" | "start-rebalance" => {
            p.primary()?;
            start_rebalance(p).await
        }
        super::lifecycle::START_MAINTENANCE
        | super::lifecycle::STOP_MAINTENANCE
        | super::lifecycle::DECOMMISSION
        | super::lifecycle::SHUTDOWN => super::lifecycle::node_action(p, msg).await,
        "remove-job" => remove_jobs(p, msg.value).await,
        "stop" => {
            let q: JobQuery = if msg.value.is_null() {
                JobQuery::default()
            } else {
                serde_json::from_value(msg.value)
                    .map_err(|e| ApiError::bad_request(format!("malformed stop request: {e}")))?
            };
            if q.id.is_empty() && !q.kind.is_empty() {
                return stop_by_kind(p, &q.kind).await;
            }
            if q.id.is_empty() {
                return Err(ApiError::bad_request("stop: missing job ID (or kind)"));
            }
            if let Err(e) = p.jobs.get(&p.core.name, &q.id) {
                local_job(p, &q.id).await.ok_or(e)?;
            }
            stop_outcome(&format!("job {}", q.id), stop_job(p, &q.id).await)?;
            Ok(empty(StatusCode::OK))
        }
        other => Err(ApiError::bad_request(format!(
            "invalid cluster action \"{other}\" (supported: set-config, reset-config, reset-stats, start, stop, remove-job, shutdown, rebalance, start-maintenance, stop-maintenance, decommission-node, shutdown-node)"
        ))),
    }
}

/// `{"action": "remove-job", "value": {"id": ID}}` (one finished job) or
/// `{"kind": K, "all": true}` (every finished job, of kind K when given):
/// forgets them (AIStore's `ais job rm`), here and on the targets; answers
/// the ids removed. A running job is refused: stop it first.
async fn remove_jobs(p: &Proxy, value: Value) -> Res {
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct RmMsg {
        #[serde(default, alias = "ID")]
        id: String,
        #[serde(default, alias = "Kind")]
        kind: String,
        #[serde(default)]
        all: bool,
    }
    let m: RmMsg = if value.is_null() {
        RmMsg::default()
    } else {
        serde_json::from_value(value)
            .map_err(|e| ApiError::bad_request(format!("malformed remove-job request: {e}")))?
    };
    let ids =
        match (m.id.is_empty(), m.all) {
            (false, false) => vec![m.id.clone()],
            (true, true) => {
                let mut ids = p.jobs.ids();
                ids.extend(local_job_ids(p).await);
                ids.sort();
                ids.dedup();
                ids
            }
            _ => return Err(ApiError::bad_request(
                "remove-job: name one job (id), or every finished job (all, with a kind or not)",
            )),
        };
    let mut removed = Vec::new();
    for id in ids {
        let st = status(p, &id).await?;
        if !m.kind.is_empty() && st["kind"] != m.kind.as_str() {
            if m.all {
                continue;
            }
            return Err(ApiError::NotFound(format!(
                "job {id} is a {} job, not {}",
                st["kind"].as_str().unwrap_or("?"),
                m.kind
            )));
        }
        if st["end_time"].as_i64().unwrap_or(0) == 0 {
            if m.all {
                continue;
            }
            return Err(ApiError::Conflict(format!(
                "job {id} is still running: stop it first (ais job stop {id})"
            )));
        }
        // Targets first: a job they still report would come back.
        let targets = p
            .jobs
            .get(&p.core.name, &id)
            .map(|j| j.targets)
            .unwrap_or_else(|_| {
                p.core.meta.with_smap(|s| {
                    s.map(|s| s.tmap.values().cloned().collect())
                        .unwrap_or_default()
                })
            });
        let core = &p.core;
        let id_ref = &id;
        for (t, r) in fan_out(&targets, CONTROL_TIMEOUT, |t| async move {
            core.rpc.remove_job(&t, id_ref).await
        })
        .await
        {
            if let Err(e) = r {
                tracing::warn!(job = %id, target = %t.name(), error = %e, "could not remove the job's record");
            }
        }
        let pr = p.primary()?;
        p.jobs.remove(&pr, &id).await?;
        removed.push(id);
    }
    json_ok(&removed)
}

/// `{"action": "start", "value": {"kind": K, "node": ID}}` (the SDK sends
/// `Kind`, `DaemonID`, `Bck`): starts a job by kind; answers its id.
async fn start_by_kind(p: &std::sync::Arc<Proxy>, ctx: &Ctx, value: Value) -> Res {
    ctx.query.reject_unknown("start", &[])?;
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct StartMsg {
        #[serde(default, alias = "Kind")]
        kind: String,
        #[serde(default, alias = "DaemonID", alias = "daemon_id")]
        node: String,
        #[serde(default, alias = "Bck")]
        bck: Option<Value>,
        #[serde(default, alias = "Buckets")]
        buckets: Option<Value>,
        /// The SDK sends an empty one.
        #[serde(default, alias = "ID")]
        id: String,
    }
    let m: StartMsg = if value.is_null() {
        StartMsg::default()
    } else {
        serde_json::from_value(value)
            .map_err(|e| ApiError::bad_request(format!("malformed start request: {e}")))?
    };
    if !m.id.is_empty() {
        return Err(ApiError::bad_request(
            "start: a new job gets its id from the cluster (\"ID\" must be empty)",
        ));
    }
    let bucket = m
        .bck
        .as_ref()
        .filter(|b| !b.is_null())
        .and_then(|b| b.get("name").and_then(Value::as_str))
        .map(str::to_string);
    if m.buckets.as_ref().is_some_and(|b| !b.is_null()) {
        return Err(ApiError::bad_request(
            "start: one bucket at a time (\"Bck\"), not a list",
        ));
    }
    let targets = match m.node.as_str() {
        "" => p.core.targets(),
        id => vec![p
            .core
            .targets()
            .into_iter()
            .find(|t| t.daemon_id == id)
            .ok_or_else(|| {
                ApiError::NotFound(format!("target \"{id}\" is not in the cluster map"))
            })?],
    };
    let local = |kind: &str| JobSpec {
        id: format!("{kind}-{}", ais_core::gen_id(10)),
        kind: kind.into(),
        src: String::new(),
        dst: String::new(),
        msg: TcbMsg::default(),
        skip_unchanged: false,
        archive: None,
        smap: None,
    };
    match (m.kind.as_str(), bucket) {
        (crate::rpc::types::JOB_REBALANCE, None) if m.node.is_empty() => {
            p.primary()?;
            start_rebalance(p).await
        }
        (
            k @ (crate::rpc::types::JOB_RESILVER
            | crate::rpc::types::JOB_LRU
            | crate::rpc::types::JOB_CLEANUP),
            None,
        ) => {
            Ok(text_ok(&launch_on(p, local(k), targets, |_| false).await?))
        }
        (crate::rpc::types::JOB_EC_ENCODE, Some(b)) if m.node.is_empty() => {
            start_ec_encode(p, &p.core.bck(b)).await
        }
        ("", _) => Err(ApiError::bad_request("start: missing job kind")),
        (k, _) => Err(ApiError::bad_request(format!(
            "start: cannot start \"{k}\" this way (supported: rebalance, resilver [node], lru [node], cleanup [node], ec-encode with a bucket); other jobs start with their own request (e.g. copy-bck, etl-bck, prefetch-listrange)"
        ))),
    }
}

/// Job kinds the cluster runs (what `stop` by kind accepts).
const STOPPABLE_KINDS: &[&str] = &[
    crate::rpc::types::JOB_REBALANCE,
    crate::rpc::types::JOB_RESILVER,
    crate::rpc::types::JOB_LRU,
    crate::rpc::types::JOB_EC_ENCODE,
    crate::rpc::types::JOB_SCRUB,
    crate::rpc::types::JOB_MAKE_N_COPIES,
    crate::rpc::types::JOB_BLOB_DOWNLOAD,
    crate::rpc::types::JOB_CLEANUP,
    crate::rpc::types::JOB_PREFETCH,
    crate::rpc::types::JOB_EVICT,
    crate::rpc::types::JOB_MOVE_BCK,
    crate::rpc::types::JOB_DELETE,
    crate::rpc::types::JOB_ARCHIVE,
    "copy-bck",
    "etl-bck",
];

/// `{"action": "stop", "value": {"kind": K}}`: stops every running job of
/// that kind; answers their ids (one per line).
async fn stop_by_kind(p: &Proxy, kind: &str) -> Res {
    if !STOPPABLE_KINDS.contains(&kind) {
        return Err(ApiError::bad_request(format!(
            "stop: unknown job kind \"{kind}\" (kinds: {})",
            STOPPABLE_KINDS.join(", ")
        )));
    }
    let mut ids = p.jobs.ids();
    ids.extend(local_job_ids(p).await);
    // A job the proxy started on targets is also in their lists.
    ids.sort();
    ids.dedup();
    let mut stopped = Vec::new();
    let mut failed = Vec::new();
    for id in ids {
        if let Ok(s) = status(p, &id).await {
            if s["kind"] == kind && s["end_time"] == 0 {
                failed.extend(
                    stop_job(p, &id)
                        .await
                        .into_iter()
                        .map(|f| format!("{id} on {f}")),
                );
                stopped.push(id);
            }
        }
    }
    tracing::info!(kind, ?stopped, "jobs stopped by kind");
    stop_outcome(&format!("{kind} jobs"), failed)?;
    Ok(text_ok(&stopped.join("\n")))
}

/// Per-object errors of a job, from every target (for `GET /v1/etl/NAME?uuid=JOB`).
pub async fn job_errors(p: &Proxy, id: &str) -> ApiResult<Vec<ObjErr>> {
    let job = p.jobs.get(&p.core.name, id)?;
    let all = all_ok(
        &format!("errors of job {id}"),
        fan_out(&job.targets, CONTROL_TIMEOUT, |t| async move {
            p.core.rpc.job_errors(&t, id).await
        })
        .await,
    )?;
    Ok(all.into_iter().flat_map(|(_, v)| v).collect())
}
