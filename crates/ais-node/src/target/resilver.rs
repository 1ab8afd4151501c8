//! A target's mountpaths at run time (AIStore's `/v1/daemon/mountpaths`:
//! `attach-mp` PUT, `detach-mp` DELETE, `enable-mp` / `disable-mp` POST,
//! the mountpath as the action's value) and the resilver job each change
//! starts: every object not on its HRW mountpath is moved there (a detached
//! mountpath is emptied before it is let go), and mirrored buckets get
//! their copies re-created on the new set of mountpaths.

use super::jobs::{start_local, TargetJob};
use super::Target;
use crate::error::{ApiError, ApiResult};
use crate::http::{json_ok, read_body, text_ok, Ctx, Res};
use crate::rpc::types::JobSpec;
use ais_core::api::{ActMsg, PropSet, TcbMsg};
use ais_core::Bck;
use ais_storage::StorageError;
use axum::body::Body;
use axum::http::Method;
use futures::StreamExt;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

/// Job kind of a resilver (one target, every bucket).
pub const RESILVER: &str = crate::rpc::types::JOB_RESILVER;

/// `GET /v1/daemon?what=mountpaths` on a target.
pub fn show(t: &Target) -> Res {
    let paths = |v: Vec<ais_storage::Mountpath>| -> Vec<String> {
        v.into_iter()
            .map(|m| m.path.display().to_string())
            .collect()
    };
    json_ok(&json!({
        "available": paths(t.store.mountpaths()),
        "disabled": paths(t.store.disabled_mountpaths()),
    }))
}

/// `/v1/daemon/mountpaths`: answers the resilver job's id (empty when
/// nothing changed or `dont-resilver` was asked for).
pub async fn action(t: &Arc<Target>, ctx: &Ctx, body: Body) -> Res {
    if ctx.method == Method::GET {
        return show(t);
    }
    ctx.expect_method(&[Method::PUT, Method::POST, Method::DELETE])?;
    let msg = ActMsg::parse(&read_body(body, 1 << 20).await?)?;
    let Some(path) = msg.value.as_str() else {
        return Err(ApiError::bad_request(format!(
            "{}: invalid mountpath value in request (expected a string)",
            msg.action
        )));
    };
    if path.is_empty() || !Path::new(path).is_absolute() {
        return Err(ApiError::bad_request(format!(
            "{}: mountpath must be an absolute path (got \"{path}\")",
            msg.action
        )));
    }
    let node = &t.core.name;
    let err = |e: StorageError| match &e {
        StorageError::Mountpath { msg, .. } if msg.starts_with("is not") => {
            ApiError::NotFound(format!("{node}: {e}"))
        }
        _ => ApiError::bad_request(format!("{node}: {e}")),
    };
    let p = Path::new(path);
    let changed = match msg.action.as_str() {
        "attach-mp" => t.store.attach(p).map_err(err)?,
        "detach-mp" => {
            t.store.detach(p).map_err(err)?;
            true
        }
        "enable-mp" => t.store.enable(p).map_err(err)?,
        "disable-mp" => t.store.disable(p).map_err(err)?,
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid mountpath action \"{other}\" (supported: attach-mp, detach-mp, enable-mp, disable-mp)"
            )))
        }
    };
    tracing::info!(node = %node, action = %msg.action, mountpath = %path, changed, "mountpath change");
    let dont = ctx.query.get("dont-resilver").is_some_and(|v| v != "false");
    // A detached mountpath is always emptied (else its objects would be lost).
    if !changed || (dont && msg.action != "detach-mp") {
        return Ok(text_ok(""));
    }
    Ok(text_ok(&start(t)))
}

/// Starts a resilver here (a running one is superseded); answers its id.
pub fn start(t: &Arc<Target>) -> String {
    let spec = JobSpec {
        id: format!("resilver-{}", ais_core::gen_id(10)),
        kind: RESILVER.into(),
        src: String::new(),
        dst: String::new(),
        msg: TcbMsg::default(),
        skip_unchanged: false,
        archive: None,
        smap: None,
    };
    start_with(t, spec)
}

/// Starts the resilver `spec` here, superseding a running one.
pub fn start_with(t: &Arc<Target>, spec: JobSpec) -> String {
    for j in t.jobs.running(RESILVER) {
        j.abort("superseded by a newer resilver");
    }
    start_local(t, spec).id().to_string()
}

/// The resilver: misplaced objects to their HRW mountpath, then mirror
/// copies re-created for mirrored buckets; when all went well, detached
/// mountpaths are let go and reads stop looking beyond the HRW one.
pub async fn run(t: &Arc<Target>, job: &Arc<TargetJob>) -> ApiResult<()> {
    let gen = t.store.mpath_gen();
    let buckets: Vec<String> = t
        .core
        .meta
        .with_bmd(|b| b.buckets.keys().cloned().collect());
    // Writes that chose a mountpath before the change may land after the
    // first pass: wait for them, then one more pass picks them up.
    for pass in 0..2 {
        if pass == 1 {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while t.store.writers_before(gen) > 0 && std::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        resilver_pass(t, job, &buckets, pass == 0).await?;
    }
    for b in &buckets {
        let bck = t.core.bck(b.clone());
        let copies = t
            .core
            .bucket_props(&bck)
            .map(|p| p.mirror.effective())
            .unwrap_or(1);
        if copies > 1 {
            remirror(t, job, &bck, copies).await?;
        }
    }
    if !job.is_aborted() && job.error_count() == 0 && t.store.finish_resilver(gen) {
        tracing::info!(node = %t.core.name, job = %job.id(), "resilver done");
    }
    Ok(())
}

/// Moves every misplaced object of `buckets` to its HRW mountpath.
async fn resilver_pass(
    t: &Arc<Target>,
    job: &Arc<TargetJob>,
    buckets: &[String],
    count: bool,
) -> ApiResult<()> {
    let mut work = Vec::new();
    for b in buckets {
        let (store, bck) = (t.store.clone(), t.core.bck(b.clone()));
        let names = tokio::task::spawn_blocking(move || store.misplaced(&bck))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| ApiError::internal(format!("{}: resilver: {e}", t.core.name)))?;
        work.push((t.core.bck(b.clone()), names));
    }
    if count {
        job.set_total(work.iter().map(|(_, n)| n.len() as u64).sum(), 0);
    }
    for (bck, names) in work {
        let mut s = futures::stream::iter(names.into_iter().map(|name| {
            let (t, job, bck) = (t.clone(), job.clone(), bck.clone());
            async move {
                if job.is_aborted() {
                    return;
                }
                match t.store.resilver_one(&bck, &name).await {
                    Ok(bytes) => job.done_one(bytes),
                    Err(e) => job.object_error(
                        &format!("{}/{name}", bck.cname()),
                        &crate::error::storage(&t.core.name, &bck, &name, e),
                    ),
                }
            }
        }))
        .buffer_unordered(4);
        while s.next().await.is_some() {}
    }
    Ok(())
}

/// Re-creates (or removes) mirror copies of every object of `bck` for the
/// current mountpaths.
async fn remirror(t: &Target, job: &TargetJob, bck: &Bck, copies: usize) -> ApiResult<()> {
    let mut after = String::new();
    loop {
        if job.is_aborted() {
            return Ok(());
        }
        let (store, b, a, name) = (
            t.store.clone(),
            bck.clone(),
            after.clone(),
            t.core.name.clone(),
        );
        let page = tokio::task::spawn_blocking(move || {
            ais_storage::list_objects(&store, &b, "", &a, 1000, &PropSet::default(), &name, None)
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(format!("{}: listing failed: {e}", t.core.name)))?;
        for e in &page.entries {
            if let Err(err) = t.store.scrub(bck, &e.name, copies).await {
                job.object_error(
                    &format!("{}/{}", bck.cname(), e.name),
                    &crate::error::storage(&t.core.name, bck, &e.name, err),
                );
            }
        }
        match page.entries.last() {
            Some(l) if !page.done => after = l.name.clone(),
            _ => return Ok(()),
        }
    }
}
