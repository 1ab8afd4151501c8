//! A target's share of an offline job (`etl-bck`, `copy-bck` and their
//! list/range forms): walk only the source objects stored here, transform
//! each with the local ETL runtime (or copy it), and write each output
//! straight to the destination's owner target (locally, or one PUT to that
//! target). Per-object failures are all kept; without `coer` the first one
//! stops the job.

use super::Target;
use crate::error::{self, ApiError, ApiResult};
use crate::http::{empty, json_ok, read_json, Ctx, Res};
use crate::rpc::types::{JobSpec, ObjErr};
use crate::rpc::Dest;
use ais_core::api::{expand_template, PropSet, TcbMsg, MAX_TEMPLATE};
use ais_core::meta::ObjAttrs;
use ais_core::Bck;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Finished jobs a target remembers (oldest forgotten first).
const MAX_KEPT_JOBS: usize = 1000;

/// Custom metadata a job leaves on every output: where it came from.
pub(super) const MD_SRC: &str = "src-cksum";
pub(super) const MD_BY: &str = "made-by";

/// One job's state on one target.
pub struct TargetJob {
    pub spec: JobSpec,
    started_ns: i64,
    ended_ns: AtomicI64,
    pub(super) aborted: AtomicBool,
    err: Mutex<String>,
    pub(super) objs: AtomicU64,
    pub(super) bytes: AtomicU64,
    in_bytes: AtomicU64,
    pub(super) skipped: AtomicU64,
    /// Scrub: objects with a copy restored or rebuilt.
    pub(super) repaired: AtomicU64,
    pub(super) total_objs: AtomicU64,
    pub(super) total_bytes: AtomicU64,
    pub(super) counted: AtomicBool,
    errors: Mutex<Vec<ObjErr>>,
    /// Objects that failed (all of them; `errors` keeps the first ones).
    failed: AtomicU64,
}

/// The jobs this target runs or ran (the last [`MAX_KEPT_JOBS`] finished),
/// and the rebalance moves in flight per bucket.
#[derive(Default)]
pub struct Registry(
    RwLock<HashMap<String, Arc<TargetJob>>>,
    Mutex<HashMap<String, usize>>,
);

/// One rebalance move of a bucket's object in flight, out of or into this
/// target (counted while alive).
struct Moving<'a>(&'a Registry, String);

impl<'a> Moving<'a> {
    fn new(r: &'a Registry, bucket: &str) -> Self {
        if let Ok(mut m) = r.1.lock() {
            *m.entry(bucket.to_string()).or_default() += 1;
        }
        Moving(r, bucket.to_string())
    }
}

impl Drop for Moving<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.0 .1.lock() {
            if let Some(n) = m.get_mut(&self.1) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    m.remove(&self.1);
                }
            }
        }
    }
}

impl Registry {
    fn get(&self, node: &str, id: &str) -> ApiResult<Arc<TargetJob>> {
        self.0
            .read()
            .ok()
            .and_then(|m| m.get(id).cloned())
            .ok_or_else(|| ApiError::NotFound(format!("{node}: job {id} not found")))
    }

    fn insert(&self, job: Arc<TargetJob>) {
        let Ok(mut m) = self.0.write() else { return };
        // Keep finished jobs for status queries, but not forever.
        if m.len() >= MAX_KEPT_JOBS {
            let mut done: Vec<(i64, String)> = m
                .values()
                .filter(|j| j.ended_ns.load(Ordering::Relaxed) != 0)
                .map(|j| (j.started_ns, j.spec.id.clone()))
                .collect();
            done.sort();
            for (_, id) in done.iter().take(m.len() + 1 - MAX_KEPT_JOBS) {
                m.remove(id);
            }
        }
        m.insert(job.spec.id.clone(), job);
    }

    /// An offline job (not a rebalance) reading `bucket` runs here: a
    /// rebalance must not move that bucket's objects meanwhile.
    pub fn reading(&self, bucket: &str) -> bool {
        self.0.read().is_ok_and(|m| {
            m.values().any(|j| {
                j.spec.src == bucket
                    && j.spec.kind != REBALANCE
                    && j.ended_ns.load(Ordering::Relaxed) == 0
            })
        })
    }

    /// Counts a rebalance move into this target while the guard lives (a
    /// job starting here waits for it, then checks [`Registry::reading`]).
    pub fn incoming(&self, bucket: &str) -> impl Drop + '_ {
        Moving::new(self, bucket)
    }

    fn moving(&self, bucket: &str) -> bool {
        self.1
            .lock()
            .map(|m| m.contains_key(bucket))
            .unwrap_or(false)
    }

    fn all(&self) -> Vec<Arc<TargetJob>> {
        self.0
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}

impl TargetJob {
    fn snap(&self, node_id: &str) -> Value {
        let end = self.ended_ns.load(Ordering::Relaxed);
        let err = self.err.lock().map(|e| e.clone()).unwrap_or_default();
        let bck = |name: &str| json!({"name": name, "provider": "ais", "namespace": {"uuid": "", "name": ""}});
        let errors = self.failed.load(Ordering::Relaxed);
        json!({
            "id": self.spec.id,
            "kind": self.spec.kind,
            "node": node_id,
            "start-time": ais_storage::rfc3339(self.started_ns),
            "start_ns": self.started_ns,
            "end-time": ais_storage::rfc3339(end),
            "end_ns": end,
            "bck": bck(&self.spec.src),
            "src-bck": bck(&self.spec.src),
            "dst-bck": bck(&self.spec.dst),
            "stats": {
                "loc-objs": self.objs.load(Ordering::Relaxed).to_string(),
                "loc-bytes": self.bytes.load(Ordering::Relaxed).to_string(),
                "out-objs": self.objs.load(Ordering::Relaxed).to_string(),
                "out-bytes": self.bytes.load(Ordering::Relaxed).to_string(),
                "in-objs": "0",
                "in-bytes": self.in_bytes.load(Ordering::Relaxed).to_string(),
            },
            "total_objs": self.total_objs.load(Ordering::Relaxed),
            "total_bytes": self.total_bytes.load(Ordering::Relaxed),
            "counted": self.counted.load(Ordering::Relaxed),
            "skipped": self.skipped.load(Ordering::Relaxed),
            "repaired": self.repaired.load(Ordering::Relaxed),
            "err_count": errors,
            "aborted": self.aborted.load(Ordering::Relaxed),
            "is_idle": end != 0,
            "abort-err": if self.aborted.load(Ordering::Relaxed) { err.clone() } else { String::new() },
            "err": err,
            "glob.id": "0",
        })
    }

    pub(super) fn fail(&self, msg: String) {
        if let Ok(mut e) = self.err.lock() {
            if e.is_empty() {
                *e = msg;
            }
        }
        self.aborted.store(true, Ordering::Relaxed);
    }

    pub(super) fn record(&self, obj: &str, e: &ApiError) {
        let n = self.failed.fetch_add(1, Ordering::Relaxed);
        // The first MAX_JOB_ERRORS are kept (and logged); the rest counted.
        if n >= MAX_JOB_ERRORS {
            return;
        }
        tracing::warn!(job = %self.spec.id, object = %obj, error = %e, "job: object failed");
        if let Ok(mut errs) = self.errors.lock() {
            errs.push(ObjErr {
                obj_name: obj.to_string(),
                msg: e.to_string(),
                ecode: e.status().as_u16(),
            });
        }
    }
}

/// Failed objects a job keeps by name (the rest are counted).
const MAX_JOB_ERRORS: u64 = 1000;

/// `/v1/internal/jobs[/ID[/WHAT]]`.
pub async fn internal(t: &Arc<Target>, ctx: &Ctx, id: &str, what: &str, body: Body) -> Res {
    let node = &t.core.name;
    match (ctx.method.clone(), id, what) {
        (Method::POST, "start", "") => {
            let spec: JobSpec = read_json(body, 64 << 20, "job").await?;
            if let Some(smap) = &spec.smap {
                use crate::state::Member;
                t.apply_sync(&ais_core::meta::MetaSync {
                    smap: Some(smap.clone()),
                    ..Default::default()
                })?;
            }
            // One resilver and one LRU at a time here: a newer resilver
            // supersedes the running one; a second LRU is refused.
            match spec.kind.as_str() {
                super::resilver::RESILVER => {
                    super::resilver::start_with(t, spec);
                }
                crate::rpc::types::JOB_LRU => {
                    super::lru::start_with(t, spec)?;
                }
                crate::rpc::types::JOB_BLOB_DOWNLOAD => {
                    let running = t.jobs.running(crate::rpc::types::JOB_BLOB_DOWNLOAD).len();
                    if running >= super::remote::MAX_BLOB_JOBS {
                        return Err(ApiError::unavailable(format!(
                            "{node}: {running} blob downloads are running (at most {}); retry when one is done",
                            super::remote::MAX_BLOB_JOBS
                        )));
                    }
                    start_local(t, spec);
                }
                _ => {
                    start_local(t, spec);
                }
            }
            Ok(empty(StatusCode::OK))
        }
        (Method::POST, "promote-scan", "") => {
            // What a promote would take from here (file-share detection).
            let v: Value = read_json(body, 1 << 20, "promote scan").await?;
            let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
            let (src, obj, rcr) = (s("src"), s("obj"), v["rcr"].as_bool().unwrap_or(false));
            let (n, hash) =
                tokio::task::spawn_blocking(move || super::promote::scan(&src, &obj, rcr))
                    .await
                    .map_err(|e| ApiError::internal(e.to_string()))??;
            json_ok(&serde_json::json!({"n": n, "hash": hash}))
        }
        (Method::GET, "", "") => {
            let all: Vec<Value> = t.jobs.all().iter().map(|j| j.snap(&t.core.id)).collect();
            json_ok(&all)
        }
        (Method::GET, id, "") => json_ok(&t.jobs.get(node, id)?.snap(&t.core.id)),
        (Method::GET, id, "errors") => json_ok(
            &t.jobs
                .get(node, id)?
                .errors
                .lock()
                .map(|e| e.clone())
                .unwrap_or_default(),
        ),
        (Method::DELETE, id, "") => {
            // A finished job's record goes (`ais job rm`); a running one stays.
            let Ok(mut m) = t.jobs.0.write() else {
                return Err(ApiError::internal("job registry lock poisoned"));
            };
            match m.get(id) {
                Some(j) if j.ended_ns.load(Ordering::Relaxed) == 0 => {
                    return Err(ApiError::Conflict(format!(
                        "{node}: job {id} is still running"
                    )))
                }
                Some(_) => {
                    m.remove(id);
                }
                None => {}
            }
            Ok(empty(StatusCode::OK))
        }
        (Method::POST, id, "abort") => {
            t.jobs.get(node, id)?.fail("aborted by user".into());
            Ok(empty(StatusCode::OK))
        }
        _ => Err(ctx.unknown_path()),
    }
}

/// Registers a job and runs it here in the background.
pub fn start_local(t: &Arc<Target>, spec: JobSpec) -> Arc<TargetJob> {
    let job = Arc::new(TargetJob {
        spec,
        started_ns: ais_core::now_ns(),
        ended_ns: AtomicI64::new(0),
        aborted: AtomicBool::new(false),
        err: Mutex::new(String::new()),
        objs: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        in_bytes: AtomicU64::new(0),
        skipped: AtomicU64::new(0),
        repaired: AtomicU64::new(0),
        total_objs: AtomicU64::new(0),
        total_bytes: AtomicU64::new(0),
        counted: AtomicBool::new(false),
        errors: Mutex::new(Vec::new()),
        failed: AtomicU64::new(0),
    });
    t.jobs.insert(job.clone());
    let (t, j) = (t.clone(), job.clone());
    tokio::spawn(async move {
        let res = match j.spec.kind.as_str() {
            REBALANCE => rebalance(&t, &j).await,
            super::resilver::RESILVER => super::resilver::run(&t, &j).await,
            crate::rpc::types::JOB_LRU => super::lru::run(&t, &j).await,
            crate::rpc::types::JOB_BLOB_DOWNLOAD => super::remote::blob_download(&t, &j).await,
            crate::rpc::types::JOB_CREATE_NBI => super::nbi::create(&t, &j).await,
            crate::rpc::types::JOB_CLEANUP => {
                let age = t.core.config.current().duration("space.dont_cleanup_time");
                let (n, bytes) = t.store.cleanup_work(age).await;
                for i in 0..n {
                    j.done_one(if i == 0 { bytes } else { 0 });
                }
                let uploads = super::s3::sweep_uploads(&t).await;
                tracing::info!(node = %t.core.name, files = n, bytes, uploads, "space cleanup");
                Ok(())
            }
            ARCHIVE => super::archive::run_job(&t, &j).await,
            crate::rpc::types::JOB_PROMOTE => super::promote::run(&t, &j).await,
            crate::rpc::types::JOB_DOWNLOAD => super::download::run(&t, &j).await,
            EC_ENCODE => super::ec::repair_bucket(&t, &t.core.bck(j.spec.src.clone()), &j).await,
            SCRUB | crate::rpc::types::JOB_MAKE_N_COPIES => match run(&t, &j).await {
                // Then the bucket's erasure-coded parts.
                Ok(()) => super::ec::repair_bucket(&t, &t.core.bck(j.spec.src.clone()), &j).await,
                e => e,
            },
            "copy-bck" if j.spec.msg.sync => match run(&t, &j).await {
                Ok(()) if !j.aborted.load(Ordering::Relaxed) => sync_deletions(&t, &j).await,
                e => e,
            },
            _ => run(&t, &j).await,
        };
        // make-n-copies made what fits; fewer mountpaths than copies is
        // said, never reported as done.
        let res = match res {
            Ok(()) if j.spec.kind == crate::rpc::types::JOB_MAKE_N_COPIES
                && !enough_mountpaths(&t, &j) =>
            {
                Err(ApiError::Conflict(format!(
                    "{}: make-n-copies: {} copies of every object need as many mountpaths; this target has {} (it keeps one copy per mountpath)",
                    t.core.name,
                    copies_of(&t, &j),
                    t.store.mountpaths().len()
                )))
            }
            r => r,
        };
        if let Err(e) = res {
            j.fail(e.to_string());
        }
        j.ended_ns.store(ais_core::now_ns(), Ordering::Relaxed);
    });
    job
}

impl TargetJob {
    pub fn id(&self) -> &str {
        &self.spec.id
    }
    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Relaxed)
    }
    pub fn is_running(&self) -> bool {
        self.ended_ns.load(Ordering::Relaxed) == 0
    }
    /// Stops the job (it ends at its next check) with `why` as its error.
    pub fn abort(&self, why: &str) {
        self.fail(why.to_string());
    }
    /// One object done: `bytes` moved or written.
    pub fn done_one(&self, bytes: u64) {
        self.objs.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    /// Objects (and their bytes) the job will look at.
    pub fn set_total(&self, objs: u64, bytes: u64) {
        self.total_objs.store(objs, Ordering::Relaxed);
        self.total_bytes.store(bytes, Ordering::Relaxed);
        self.counted.store(true, Ordering::Relaxed);
    }
    pub fn object_error(&self, obj: &str, e: &ApiError) {
        self.record(obj, e);
    }
    pub fn error_count(&self) -> usize {
        self.failed.load(Ordering::Relaxed) as usize
    }
}

impl Registry {
    /// Jobs of `kind` still running here.
    pub fn running(&self, kind: &str) -> Vec<Arc<TargetJob>> {
        self.all()
            .into_iter()
            .filter(|j| j.spec.kind == kind && j.is_running())
            .collect()
    }
}

/// Walks the source objects stored on this target, 1000 at a time: the
/// listing (prefix) or the given names/template (kept if present locally).
struct Cursor {
    names: Option<Vec<String>>,
    pos: usize,
    after: String,
    done: bool,
}

impl Cursor {
    fn new(spec: &JobSpec) -> ApiResult<Self> {
        let msg = &spec.msg;
        let names = if !msg.objnames.is_empty() {
            Some(msg.objnames.clone())
        } else if !msg.template.is_empty() {
            Some(expand_template(&msg.template, MAX_TEMPLATE)?)
        } else {
            None
        };
        Ok(Self {
            names,
            pos: 0,
            after: String::new(),
            done: false,
        })
    }

    async fn next(&mut self, t: &Target, spec: &JobSpec) -> ApiResult<Option<Vec<(String, u64)>>> {
        if self.done {
            return Ok(None);
        }
        let src = t.core.bck(spec.src.clone());
        // Jobs that read a remote bucket's objects walk the backend's names
        // (each target the ones it owns); the others walk what is here.
        let remote = if walks_backend(&spec.kind) {
            super::remote::backend_of(t, &src)?
        } else {
            None
        };
        let owned = |n: &str| {
            t.core
                .owner(&src.obj_uname(n))
                .is_some_and(|o| o.daemon_id == t.core.id)
        };
        if let Some(names) = &self.names {
            let end = (self.pos + 1000).min(names.len());
            let mut page = Vec::new();
            for n in &names[self.pos..end] {
                if ais_core::names::validate_object_name(n).is_err() {
                    continue;
                }
                if remote.is_some() {
                    if owned(n) {
                        page.push((n.clone(), 0));
                    }
                } else if let Ok(info) = t.store.head(&src, n).await {
                    page.push((n.clone(), info.attrs.size));
                } else if spec.kind == crate::rpc::types::JOB_DELETE
                    && t.store.part_meta(&src, n).is_ok_and(|m| m.is_some())
                {
                    // Only an erasure-coded part of it here (no main copy
                    // anywhere, maybe): deleted too, or a rebuild would bring
                    // the object back.
                    page.push((n.clone(), 0));
                }
            }
            self.pos = end;
            self.done = end >= names.len();
            return Ok(Some(page));
        }
        if let Some(remote) = remote {
            let (entries, next) = remote
                .list_page(
                    crate::backend::http(),
                    &spec.msg.prefix,
                    &self.after,
                    None,
                    1000,
                )
                .await?;
            self.done = next.is_none() || entries.is_empty();
            if let Some(l) = entries.last() {
                self.after = l.name.clone();
            }
            return Ok(Some(
                entries
                    .into_iter()
                    .filter(|e| owned(&e.name))
                    .map(|e| (e.name, e.size))
                    .collect(),
            ));
        }
        let (store, p, a, name) = (
            t.store.clone(),
            spec.msg.prefix.clone(),
            self.after.clone(),
            t.core.name.clone(),
        );
        let page = tokio::task::spawn_blocking(move || {
            ais_storage::list_objects(
                &store,
                &src,
                &p,
                &a,
                1000,
                &PropSet::parse("size").unwrap_or_default(),
                &name,
                None,
            )
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(format!("{}: listing failed: {e}", t.core.name)))?;
        self.done = page.done || page.entries.is_empty();
        if let Some(l) = page.entries.last() {
            self.after = l.name.clone();
        }
        Ok(Some(
            page.entries.into_iter().map(|e| (e.name, e.size)).collect(),
        ))
    }
}

async fn run(t: &Arc<Target>, job: &Arc<TargetJob>) -> ApiResult<()> {
    let spec = job.spec.clone();
    if spec.kind == crate::rpc::types::JOB_MOVE_BCK {
        settle_writes_before_move(t, &spec.src).await?;
    }
    // Rebalance moves of the source bucket pause while this job runs; the
    // ones already in flight finish first, so the walk below sees every
    // object this target holds, once.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while t.jobs.moving(&spec.src) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Totals first, for progress and ETA (a listing pass, no data read).
    let mut c = Cursor::new(&spec)?;
    let (mut n, mut b) = (0u64, 0u64);
    while let Some(page) = c.next(t, &spec).await? {
        n += page.len() as u64;
        b += page.iter().map(|p| p.1).sum::<u64>();
    }
    job.total_objs.store(n, Ordering::Relaxed);
    job.total_bytes.store(b, Ordering::Relaxed);
    job.counted.store(true, Ordering::Relaxed);
    let workers = match spec.msg.num_workers {
        w if w > 0 => w as usize,
        -1 => 1,
        _ => 8,
    };
    let mut c = Cursor::new(&spec)?;
    while let Some(page) = c.next(t, &spec).await? {
        if job.aborted.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut s = futures::stream::iter(page.into_iter().map(|(name, size)| {
            let job = job.clone();
            let t = t.clone();
            async move {
                if job.aborted.load(Ordering::Relaxed) {
                    return;
                }
                if let Err(e) = one(&t, &job, &name, size).await {
                    let cname = format!("ais://{}/{name}", job.spec.src);
                    job.record(&cname, &e);
                    if !job.spec.msg.coer {
                        job.fail(format!("{cname}: {e}"));
                    }
                }
            }
        }))
        .buffer_unordered(workers);
        while s.next().await.is_some() {}
    }
    Ok(())
}

/// `copy-bck` with `synchronize`: the destination's objects this target
/// owns that a copy made (`made-by: copy`) and whose source no longer
/// exists (a definite "not found" at the source's owner, or at the
/// backend for a remote source; any doubt keeps the object) are deleted.
async fn sync_deletions(t: &Arc<Target>, job: &Arc<TargetJob>) -> ApiResult<()> {
    let spec = &job.spec;
    let (src, dst) = (t.core.bck(spec.src.clone()), t.core.bck(spec.dst.clone()));
    let remote = super::remote::backend_of(t, &src)?;
    let walk = JobSpec {
        id: spec.id.clone(),
        kind: "sync-walk".into(),
        src: spec.dst.clone(),
        dst: spec.dst.clone(),
        msg: TcbMsg {
            prefix: format!("{}{}", spec.msg.prepend, spec.msg.prefix),
            ..Default::default()
        },
        skip_unchanged: false,
        archive: None,
        smap: None,
    };
    let mut c = Cursor::new(&walk)?;
    let mut deleted = 0u64;
    while let Some(page) = c.next(t, &walk).await? {
        for (name, _) in page {
            if job.aborted.load(Ordering::Relaxed) {
                return Ok(());
            }
            let owned = t
                .core
                .owner(&dst.obj_uname(&name))
                .is_some_and(|o| o.daemon_id == t.core.id);
            let Some(src_name) = name.strip_prefix(spec.msg.prepend.as_str()) else {
                continue;
            };
            if !owned || !src_name.starts_with(spec.msg.prefix.as_str()) {
                continue;
            }
            let made_by_copy = t
                .store
                .head(&dst, &name)
                .await
                .is_ok_and(|i| i.attrs.custom.get(MD_BY).map(String::as_str) == Some("copy"));
            if !made_by_copy {
                continue;
            }
            // A definite answer or none: (Ok(gone), Err(why not known)).
            let gone: ApiResult<bool> = match &remote {
                Some(r) => r
                    .head_object(crate::backend::http(), src_name)
                    .await
                    .map(|a| a.is_none())
                    .map_err(|e| ApiError::unavailable(e.to_string())),
                None => match t.core.owner(&src.obj_uname(src_name)) {
                    None => Ok(false),
                    Some(o) if o.daemon_id == t.core.id => Ok(matches!(
                        t.store.head(&src, src_name).await,
                        Err(ais_storage::StorageError::NotFound)
                    )),
                    Some(o) => t
                        .core
                        .rpc
                        .obj_attrs(&Dest::from(&o), &spec.src, src_name)
                        .await
                        .map(|a| a.is_none())
                        .map_err(ApiError::from),
                },
            };
            let cname = format!("{}/{name}", dst.cname());
            match gone {
                Ok(true) => {
                    t.mark_deleted(&dst.obj_uname(&name), true);
                    match t.store.delete(&dst, &name).await {
                        Ok(()) | Err(ais_storage::StorageError::NotFound) => deleted += 1,
                        Err(e) => job.record(&cname, &error::storage(&t.core.name, &dst, &name, e)),
                    }
                    if t.core.bucket_props(&dst).is_ok_and(|p| p.ec.enabled) {
                        let _ = super::delete_elsewhere(t, &dst, &name).await;
                    }
                }
                Ok(false) => {}
                Err(e) => job.record(
                    &cname,
                    &ApiError::unavailable(format!(
                        "synchronize: source of {name} not checked (kept): {e}"
                    )),
                ),
            }
        }
    }
    tracing::info!(job = %spec.id, deleted, "synchronize: removed what the source no longer has");
    Ok(())
}

/// A bucket rename's move on this target starts once the bucket takes no
/// more writes here (the rename's mark is in this target's bucket map,
/// fetched from the primary if a push of it was missed) and the writes
/// that began before the mark are over: none of them can land after the
/// walk passed their name.
async fn settle_writes_before_move(t: &Arc<Target>, src: &str) -> ApiResult<()> {
    let bck = t.core.bck(src.to_string());
    let marked = |t: &Target| {
        t.core
            .bucket_props(&bck)
            .is_ok_and(|p| !p.renaming.is_empty())
    };
    if !marked(t) {
        let _ = crate::state::sync_now(t).await;
        if !marked(t) {
            return Err(ApiError::unavailable(format!(
                "{}: {} is not marked as being renamed in this target's bucket map; the rename \
                 cannot be made safe here",
                t.core.name,
                bck.cname()
            )));
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    while t.writes_in(src) > 0 {
        if std::time::Instant::now() > deadline {
            return Err(ApiError::unavailable(format!(
                "{}: writes into {} did not end within 10 minutes",
                t.core.name,
                bck.cname()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Transforms (or copies) one local object and writes it to the destination owner.
async fn one(t: &Arc<Target>, job: &TargetJob, name: &str, size: u64) -> ApiResult<()> {
    let spec = &job.spec;
    if spec.kind == SCRUB || spec.kind == crate::rpc::types::JOB_MAKE_N_COPIES {
        return scrub_one(t, job, name, size).await;
    }
    if spec.kind == crate::rpc::types::JOB_PREFETCH || spec.kind == crate::rpc::types::JOB_EVICT {
        return remote_one(t, job, name, size).await;
    }
    if spec.kind == crate::rpc::types::JOB_DELETE {
        return delete_one(t, job, name, size).await;
    }
    let dst_name = spec.msg.dst_name(name);
    ais_core::names::validate_object_name(&dst_name)?;
    job.in_bytes.fetch_add(size, Ordering::Relaxed);
    let etl = spec.kind.starts_with("etl");
    if spec.msg.dry_run && !etl {
        job.objs.fetch_add(1, Ordering::Relaxed);
        job.bytes.fetch_add(size, Ordering::Relaxed);
        return Ok(());
    }
    let src = t.core.bck(spec.src.clone());
    let path = t.store.obj_path(&src, name);
    let rt = if etl {
        Some(running_etl(t, &spec.msg.id).await?)
    } else {
        None
    };
    // A pipeline's later stages: each waited for like the first, and its
    // generation part of what made the output (re-init'ed code reruns).
    let mut stage_gens = String::new();
    for s in &spec.msg.pipeline {
        let g = running_etl(t, s).await?.generation;
        stage_gens.push_str(&format!(">{s}:{g}"));
    }
    if let (true, Some(rt)) = (spec.msg.dry_run, &rt) {
        // An ETL's dry run (`ais etl inspect`, AIStore's semantics): every
        // object through the transform (and pipeline), nothing written; an
        // object it fails on is the job's error.
        let args = &spec.msg.etl_args;
        let cname = format!("{}/{name}", src.cname());
        let stages = &spec.msg.pipeline;
        let out = t
            .transform_verified(rt, &src, name, args)
            .await?
            .map_err(|e| first_stage_error(t, spec, &cname, e))?;
        let out = super::etl::run_stages(t, stages, &cname, out, args).await?;
        job.objs.fetch_add(1, Ordering::Relaxed);
        job.bytes.fetch_add(out.len() as u64, Ordering::Relaxed);
        return Ok(());
    }
    // A copy streams the file: verify it now. A transform verifies the
    // bytes it reads (below), so here only the stored checksum is needed.
    let (src_cksum, src_custom) = match &rt {
        None => {
            let a = t.verified_source(&src, name).await?.attrs;
            (a.cksum_value, a.custom)
        }
        Some(_) => {
            // Not here yet (a remote bucket's object never read, or one to
            // rebuild from erasure-coded parts): fetched or rebuilt first.
            let info = match t.store.head(&src, name).await {
                Ok(i) => i,
                Err(e) => {
                    if !super::ec::recover(t, &src, name, &e).await? {
                        return Err(error::storage(&t.core.name, &src, name, e));
                    }
                    t.store
                        .head(&src, name)
                        .await
                        .map_err(|e| error::storage(&t.core.name, &src, name, e))?
                }
            };
            (info.attrs.cksum_value, BTreeMap::new())
        }
    };
    // Identifies the transform (ETL name + its init generation, or a copy).
    let made_by = match &rt {
        Some(rt) => format!(
            "etl:{}:{}:{:x}{}",
            spec.msg.id,
            rt.generation,
            xxhash_rust::xxh64::xxh64(spec.msg.etl_args.as_bytes(), 0),
            stage_gens
        ),
        None => "copy".to_string(),
    };
    // A copy keeps the object's custom properties (a rename nothing else);
    // a copy or transform also records what it was made from, for reruns
    // that skip what is unchanged.
    let mut custom = src_custom;
    if spec.kind != crate::rpc::types::JOB_MOVE_BCK {
        custom.insert(MD_SRC.to_string(), src_cksum.clone());
        custom.insert(MD_BY.to_string(), made_by.clone());
    }
    if spec.skip_unchanged && !spec.msg.force && !src_cksum.is_empty() {
        if let Some(attrs) = dst_attrs(t, &spec.dst, &dst_name).await {
            if attrs.custom.get(MD_SRC) == Some(&src_cksum)
                && attrs.custom.get(MD_BY) == Some(&made_by)
            {
                job.skipped.fetch_add(1, Ordering::Relaxed);
                job.objs.fetch_add(1, Ordering::Relaxed);
                job.bytes.fetch_add(attrs.size, Ordering::Relaxed);
                return Ok(());
            }
        }
    }
    let out: Option<bytes::Bytes> = if let Some(rt) = &rt {
        let args = &spec.msg.etl_args;
        let mut r = t.transform_verified(rt, &src, name, args).await?;
        // A worker that died (e.g. killed for memory) may be a passing
        // failure: one more try on its replacement before recording an error.
        if matches!(r, Err(ais_etl::EtlError::WorkerDied(_))) {
            r = t.transform_verified(rt, &src, name, args).await?;
        }
        let stages = &spec.msg.pipeline;
        let cname = format!("{}/{name}", src.cname());
        let out = r.map_err(|e| first_stage_error(t, spec, &cname, e))?;
        Some(super::etl::run_stages(t, stages, &cname, out, args).await?)
    } else {
        None
    };
    let len = out.as_ref().map(|b| b.len() as u64).unwrap_or(size);
    put_to_owner(t, &spec.dst, &dst_name, out, &path, custom).await?;
    job.objs.fetch_add(1, Ordering::Relaxed);
    job.bytes.fetch_add(len, Ordering::Relaxed);
    Ok(())
}

/// A job's ETL failed on `cname`: the transform's own error, or with a
/// pipeline, naming stage 1.
fn first_stage_error(t: &Target, spec: &JobSpec, cname: &str, e: ais_etl::EtlError) -> ApiError {
    if spec.msg.pipeline.is_empty() {
        error::etl_kind(&e, e.to_string())
    } else {
        super::etl::stage_error(&t.core.name, &spec.msg.id, Some(1), cname, e)
    }
}

/// The local runtime of ETL `name` for a job: one the cluster lists but this
/// target is still starting (from metadata: it was away or busy at the
/// init, or restarted) is waited for, up to its init timeout, rather than
/// failing the job's objects.
async fn running_etl(t: &Target, name: &str) -> ApiResult<Arc<ais_etl::EtlRuntime>> {
    let not_running =
        || ApiError::NotFound(format!("etl job {name} is not running on {}", t.core.name));
    if let Some(rt) = t.etl.get(name) {
        return Ok(rt);
    }
    let Some(entry) = t.core.meta.etlmd().etls.get(name).cloned() else {
        return Err(not_running());
    };
    let wait = ais_etl::spec::EtlSpec::from_json(&entry.init_msg)
        .map(|s| s.init_timeout)
        .unwrap_or(Duration::from_secs(60))
        .min(Duration::from_secs(300));
    let deadline = std::time::Instant::now() + wait;
    while !entry.stopped && std::time::Instant::now() < deadline {
        if let Some(rt) = t.etl.get(name) {
            return Ok(rt);
        }
        // Its start here failed: no point waiting.
        if t.etl
            .start_failure(name)
            .is_some_and(|(g, _)| g == entry.generation)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.etl.get(name).ok_or_else(not_running)
}

/// Whether a job of `kind` reads a remote bucket's objects from its
/// backend (copies, transforms, prefetch) rather than only the cached ones.
fn walks_backend(kind: &str) -> bool {
    kind.starts_with("etl")
        || kind == "copy-bck"
        || kind == crate::rpc::types::JOB_PREFETCH
        || kind == crate::rpc::types::JOB_DELETE
}

/// Deletes one object of a `delete-listrange` job: the copy here (with its
/// mirrors and any erasure-coded part), at the backend too when this target
/// owns a remote bucket's object, and — for an erasure-coded bucket — the
/// parts other targets hold (else a rebuild would bring it back).
async fn delete_one(t: &Arc<Target>, job: &TargetJob, name: &str, size: u64) -> ApiResult<()> {
    let bck = t.core.bck(job.spec.src.clone());
    let _write = t.check_writable(&bck)?;
    if let Some(remote) = super::remote::backend_of(t, &bck)? {
        let owned = t
            .core
            .owner(&bck.obj_uname(name))
            .is_some_and(|o| o.daemon_id == t.core.id);
        if owned {
            remote.delete_object(crate::backend::http(), name).await?;
        }
    }
    t.mark_deleted(&bck.obj_uname(name), true);
    match t.store.delete(&bck, name).await {
        Ok(()) | Err(ais_storage::StorageError::NotFound) => {}
        Err(e) => return Err(error::storage(&t.core.name, &bck, name, e)),
    }
    if t.core.bucket_props(&bck).is_ok_and(|p| p.ec.enabled) {
        if let Err(away) = super::delete_elsewhere(t, &bck, name).await {
            return Err(ApiError::unavailable(format!(
                "{}: erasure-coded parts of {}/{name} on {} could not be removed",
                t.core.name,
                bck.cname(),
                away.join(", ")
            )));
        }
    }
    job.done_one(size);
    Ok(())
}

/// Prefetch (fetch into the cache unless cached) or evict (remove the
/// cached copy) one object of a remote bucket.
async fn remote_one(t: &Arc<Target>, job: &TargetJob, name: &str, size: u64) -> ApiResult<()> {
    let bck = t.core.bck(job.spec.src.clone());
    let serr = |e| error::storage(&t.core.name, &bck, name, e);
    if job.spec.kind == crate::rpc::types::JOB_EVICT {
        match t.store.delete_copies(&bck, name).await {
            Ok(()) => {}
            Err(ais_storage::StorageError::NotFound) => return Ok(()),
            Err(e) => return Err(serr(e)),
        }
        job.done_one(size);
        return Ok(());
    }
    if let Ok(info) = t.store.head(&bck, name).await {
        job.skipped.fetch_add(1, Ordering::Relaxed);
        job.done_one(info.attrs.size);
        return Ok(());
    }
    let remote = super::remote::backend_of(t, &bck)?
        .ok_or_else(|| ApiError::bad_request(format!("{} is not a remote bucket", bck.cname())))?;
    if !super::remote::fetch(t, &remote, &bck, name).await? {
        return Err(ApiError::object_not_found(&t.core.name, &bck, name));
    }
    let got = t.store.head(&bck, name).await.map_err(serr)?;
    job.done_one(got.attrs.size);
    Ok(())
}

/// Job kind: move every local object whose HRW owner is now another
/// target to that owner.
pub const REBALANCE: &str = crate::rpc::types::JOB_REBALANCE;

/// A target's share of a rebalance: every bucket's local objects that
/// belong elsewhere under the current map are moved (checksum-verified,
/// version kept) and then removed here. Counts are of objects moved.
async fn rebalance(t: &Arc<Target>, job: &Arc<TargetJob>) -> ApiResult<()> {
    let buckets: Vec<String> = t
        .core
        .meta
        .with_bmd(|b| b.buckets.keys().cloned().collect());
    let workers = match job.spec.msg.num_workers {
        w if w > 0 => w as usize,
        _ => super::lifecycle::rebalance_workers(),
    };
    // A newer rebalance supersedes older ones here; their moves in flight
    // finish first, so no object is moved by both.
    for old in t.jobs.running(REBALANCE) {
        if old.id() != job.id() && old.started_ns <= job.started_ns {
            old.abort(&format!("superseded by {}", job.id()));
        }
    }
    tracing::info!(
        job = %job.id(),
        smap = t.core.meta.smap().map_or(0, |s| s.version),
        spec_smap = job.spec.smap.as_ref().map_or(0, |s| s.version),
        "rebalance starting"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while t
        .jobs
        .running(REBALANCE)
        .iter()
        .any(|j| j.id() != job.id() && j.started_ns <= job.started_ns)
        && std::time::Instant::now() < deadline
    {
        if job.aborted.load(Ordering::Relaxed) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Commits judged by an older map (that this target owned the name)
    // land before the walk, so it sees them; later ones judge by this map
    // and go to the owner ([`super::placement`]).
    let ver = t.core.meta.smap().map_or(0, |s| s.version);
    t.placement
        .settled(ver, || job.aborted.load(Ordering::Relaxed))
        .await;
    // A bucket that an offline job on this target is reading waits until
    // that job is done (its walk must see every object it holds exactly
    // once); the other buckets go first.
    let mut pending = buckets;
    super::lifecycle::hot_first(&mut pending);
    while !pending.is_empty() {
        if job.aborted.load(Ordering::Relaxed) {
            return Ok(());
        }
        let Some(i) = pending.iter().position(|b| !t.jobs.reading(b)) else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let b = pending.remove(i);
        let spec = JobSpec {
            src: b.clone(),
            dst: b.clone(),
            ..job.spec.clone()
        };
        // One stream over the bucket's pages, so the moves never drain
        // at a page boundary; admission (below) sets how many run.
        let c = Cursor::new(&spec)?;
        let listed: Arc<Mutex<Option<ApiError>>> = Arc::default();
        let names = futures::stream::unfold(Some(c), |c| {
            let (t, spec, listed) = (t.clone(), spec.clone(), listed.clone());
            async move {
                let mut c = c?;
                match c.next(&t, &spec).await {
                    Ok(Some(page)) => Some((futures::stream::iter(page), Some(c))),
                    Ok(None) => None,
                    Err(e) => {
                        if let Ok(mut l) = listed.lock() {
                            *l = Some(e);
                        }
                        None
                    }
                }
            }
        })
        .flatten()
        .boxed();
        let mut s = names
            .map(|(name, size)| {
                let (job, t, b) = (job.clone(), t.clone(), b.clone());
                async move {
                    let bck = t.core.bck(b.clone());
                    loop {
                        if job.aborted.load(Ordering::Relaxed) {
                            return;
                        }
                        // A job that started reading this bucket here
                        // pauses the moves until it is done.
                        while t.jobs.reading(&b) {
                            if job.aborted.load(Ordering::Relaxed) {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        let _slot = super::lifecycle::admit_move(&t).await;
                        let _moving = Moving::new(&t.jobs, &b);
                        match move_one(&t, &job, &bck, &name, size).await {
                            Ok(true) => return,
                            Ok(false) => continue,
                            Err(e) => {
                                job.record(&format!("{}/{name}", bck.cname()), &e);
                                return;
                            }
                        }
                    }
                }
            })
            .buffer_unordered(workers);
        while s.next().await.is_some() {}
        drop(s);
        let failed = listed.lock().ok().and_then(|mut l| l.take());
        if let Some(e) = failed {
            return Err(e);
        }
    }
    // Parts follow their objects' new placement; objects lost with a
    // departed target are rebuilt by their new owners.
    super::ec::repair_all(t, job).await;
    let n = job.objs.load(Ordering::Relaxed);
    job.total_objs.store(n, Ordering::Relaxed);
    job.total_bytes
        .store(job.bytes.load(Ordering::Relaxed), Ordering::Relaxed);
    job.counted.store(true, Ordering::Relaxed);
    Ok(())
}

/// Objects up to this size move as one buffer (read in one blocking call).
const SMALL_MOVE: u64 = 1 << 20;

/// Moves one object to its owner. `Ok(false)`: not now — a job started
/// reading the bucket here meanwhile (try again after it).
async fn move_one(
    t: &Target,
    job: &TargetJob,
    bck: &Bck,
    name: &str,
    size: u64,
) -> ApiResult<bool> {
    let Some(owner) = t.core.owner(&bck.obj_uname(name)) else {
        return Ok(true);
    };
    if owner.daemon_id == t.core.id {
        return Ok(true);
    }
    // The owner checks the bytes it receives against the stored checksum
    // (one read here, not a verify pass and a send); a mismatch is a
    // damaged source: verify it here (healing it from a mirror when one is
    // healthy, else the damage is the object's error) and send it again.
    let info = match t.store.head(bck, name).await {
        Ok(i) => i,
        // Deleted by a client since the listing: nothing to move.
        Err(ais_storage::StorageError::NotFound) => return Ok(true),
        Err(e) => return Err(error::storage(&t.core.name, bck, name, e)),
    };
    let mut verified = false;
    if let Some(limit) = super::lifecycle::Throttle::get() {
        limit.take(size).await;
        if job.aborted.load(Ordering::Relaxed) {
            return Ok(true);
        }
    }
    let path = t.store.obj_path(bck, name);
    let to = Dest::from(&owner);
    let open_err = |e: std::io::Error| {
        ApiError::internal(format!("{}: open {}: {e}", t.core.name, path.display()))
    };
    // Small objects are read whole in one blocking call (and sent again as
    // is on a retry); larger ones stream.
    let read_whole = || {
        let p = path.clone();
        async move {
            // Read on the low-priority pool: client requests first.
            ais_storage::background::spawn(move || {
                use std::io::Read;
                let mut buf = Vec::with_capacity(size as usize);
                ais_storage::open_noatime(&p)?.read_to_end(&mut buf)?;
                Ok::<_, std::io::Error>(buf)
            })
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map(bytes::Bytes::from)
            .map_err(open_err)
        }
    };
    let mut whole: Option<bytes::Bytes> = None;
    if size <= SMALL_MOVE {
        match read_whole().await {
            Ok(b) => whole = Some(b),
            // Gone since the head (a client's DELETE, or a PUT's hand-over
            // to the owner moved it): nothing left to move.
            Err(_) if t.store.head(bck, name).await.is_err() => return Ok(true),
            Err(e) => return Err(e),
        }
    }
    // The owner may be busy (a job reading the bucket there: 503) or
    // restarting: wait and retry rather than fail the object.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut attempt = 0u64;
    loop {
        if t.jobs.reading(&bck.name) {
            return Ok(false);
        }
        let body = match &whole {
            Some(b) => reqwest::Body::from(b.clone()),
            None => {
                let file = match tokio::fs::File::open(&path).await {
                    Ok(f) => f,
                    // Gone since the head (see above).
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
                    Err(e) => return Err(open_err(e)),
                };
                reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
                    file,
                    1 << 20,
                ))
            }
        };
        let res = t
            .core
            .rpc
            .move_object(
                &to,
                &bck.name,
                name,
                body,
                &info.attrs.custom,
                info.attrs.version,
                if info.attrs.cksum_type == ais_core::meta::CKSUM_XXHASH {
                    &info.attrs.cksum_value
                } else {
                    ""
                },
            )
            .await;
        match res {
            Ok(()) => break,
            Err(e)
                if !verified
                    && e.status() == Some(StatusCode::BAD_REQUEST)
                    && e.to_string().contains("checksum mismatch") =>
            {
                t.verified_source(bck, name).await?;
                verified = true;
                // Healed from a mirror: send the repaired file.
                if whole.is_some() {
                    whole = Some(read_whole().await?);
                }
            }
            Err(e)
                if (e.is_unreachable() || e.status() == Some(StatusCode::SERVICE_UNAVAILABLE))
                    && std::time::Instant::now() < deadline =>
            {
                if job.aborted.load(Ordering::Relaxed) {
                    return Ok(true);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            // Other server errors: a few tries.
            Err(e) if attempt < 3 && e.status().is_some_and(|s| s.is_server_error()) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(300 * attempt)).await;
            }
            Err(e) => {
                return Err(ApiError::from(e).context(format!(
                    "move {}/{name} to {}",
                    bck.cname(),
                    owner.name()
                )))
            }
        }
    }
    match t.store.delete_copies(bck, name).await {
        Ok(()) => {}
        // Deleted by a client while it moved: the moved copy must not
        // resurrect it (unless a newer PUT replaced it there).
        Err(ais_storage::StorageError::NotFound) => {
            let there = t
                .core
                .rpc
                .obj_attrs(&to, &bck.name, name)
                .await
                .ok()
                .flatten();
            if there.is_some_and(|a| {
                a.version == info.attrs.version && a.cksum_value == info.attrs.cksum_value
            }) {
                let _ = t.core.rpc.delete_local(&to, &bck.name, name).await;
            }
            return Ok(true);
        }
        Err(e) => return Err(error::storage(&t.core.name, bck, name, e)),
    }
    job.objs.fetch_add(1, Ordering::Relaxed);
    job.bytes.fetch_add(size, Ordering::Relaxed);
    Ok(true)
}

/// Job kind: verify every local object of a bucket and its mirror copies,
/// repairing what redundancy allows.
pub const SCRUB: &str = crate::rpc::types::JOB_SCRUB;

/// Job kind: pack objects into one shard (see [`super::archive::run_job`]).
pub const ARCHIVE: &str = crate::rpc::types::JOB_ARCHIVE;

/// Job kind: erasure-code a bucket's objects (see [`super::ec::repair_bucket`]).
pub const EC_ENCODE: &str = crate::rpc::types::JOB_EC_ENCODE;

/// The copies a bucket job's bucket asks for (1 when mirroring is off).
fn copies_of(t: &Target, job: &TargetJob) -> usize {
    t.core
        .bucket_props(&t.core.bck(job.spec.src.clone()))
        .map(|p| p.mirror.effective())
        .unwrap_or(1)
}

/// Whether this target has a mountpath for every copy the bucket asks for
/// (a copy lives on a mountpath of its own): make-n-copies must not report
/// success with fewer.
fn enough_mountpaths(t: &Target, job: &TargetJob) -> bool {
    copies_of(t, job) <= t.store.mountpaths().len()
}

async fn scrub_one(t: &Target, job: &TargetJob, name: &str, size: u64) -> ApiResult<()> {
    let bck = t.core.bck(job.spec.src.clone());
    let copies = t
        .core
        .bucket_props(&bck)
        .map(|p| p.mirror.effective())
        .unwrap_or(1);
    job.in_bytes.fetch_add(size, Ordering::Relaxed);
    let done = match t.store.scrub(&bck, name, copies).await {
        Ok(d) => d,
        // No healthy mirror: rebuild from erasure-coded parts if the bucket has them.
        Err(e) if super::ec::recover(t, &bck, name, &e).await? => ais_storage::Scrubbed {
            main_restored: true,
            mirrors_rebuilt: 0,
        },
        Err(e) => return Err(error::storage(&t.core.name, &bck, name, e)),
    };
    if done.repaired() {
        tracing::warn!(object = %format!("{}/{name}", bck.cname()), ?done, "scrub repaired");
        job.repaired.fetch_add(1, Ordering::Relaxed);
    }
    job.objs.fetch_add(1, Ordering::Relaxed);
    job.bytes.fetch_add(size, Ordering::Relaxed);
    Ok(())
}

/// Attributes of a destination object on its owner target, if it exists.
pub(super) async fn dst_attrs(t: &Target, dst: &str, name: &str) -> Option<ObjAttrs> {
    let dbck = t.core.bck(dst);
    let owner = t.core.owner(&dbck.obj_uname(name))?;
    if owner.daemon_id == t.core.id {
        return t.store.head(&dbck, name).await.ok().map(|i| i.attrs);
    }
    t.core
        .rpc
        .obj_attrs(&Dest::from(&owner), dst, name)
        .await
        .ok()
        .flatten()
}

/// Writes `data` (or the file at `path`, streamed) as `dst/name` on its owner,
/// retrying transient failures a bounded number of times.
pub async fn put_to_owner(
    t: &Target,
    dst: &str,
    name: &str,
    data: Option<bytes::Bytes>,
    path: &std::path::Path,
    custom: BTreeMap<String, String>,
) -> ApiResult<()> {
    let dbck = t.core.bck(dst);
    // Nothing written into a bucket being renamed (it goes when done).
    let _write = t.check_writable(&dbck)?;
    let io =
        |e: std::io::Error| ApiError::internal(format!("{}: {}: {e}", t.core.name, path.display()));
    // Busy or restarting owners, and maps that disagree for a moment (the
    // owner answers 503 until it has this target's map), are retried for a
    // while, asking the map for the owner again each time; other server
    // errors a few times.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (mut attempt, mut last) = (0u64, None);
    loop {
        if last.is_some() {
            tokio::time::sleep(Duration::from_millis(200 * attempt.max(1))).await;
        }
        let owner = t
            .core
            .owner(&dbck.obj_uname(name))
            .ok_or_else(|| ApiError::unavailable("no targets in the cluster map"))?;
        if owner.daemon_id == t.core.id {
            let serr = |e| error::storage(&t.core.name, &dbck, name, e);
            // As every write: the bucket's copies, checksum type, write policy.
            let mut w = super::objects::writer(t, &dbck, name).await?;
            match &data {
                Some(b) => w.write(b).await.map_err(serr)?,
                None => {
                    use tokio::io::AsyncReadExt;
                    let mut f = tokio::fs::File::open(path).await.map_err(io)?;
                    let mut buf = vec![0u8; 1 << 20];
                    loop {
                        let n = f.read(&mut buf).await.map_err(io)?;
                        if n == 0 {
                            break;
                        }
                        w.write(&buf[..n]).await.map_err(serr)?;
                    }
                }
            }
            // The map may have changed since the owner was looked up.
            if t.commit_or_forward(&dbck, name, w, custom, true)
                .await?
                .is_ok()
            {
                super::ec::protect(t, &dbck, name).await?;
            }
            return Ok(());
        }
        let body = match &data {
            Some(b) => reqwest::Body::from(b.clone()),
            None => {
                let f = tokio::fs::File::open(path).await.map_err(io)?;
                reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(f, 1 << 20))
            }
        };
        let e = match t
            .core
            .rpc
            .put_object(&Dest::from(&owner), dst, name, body, &custom)
            .await
        {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let transient = e.is_unreachable() || e.status() == Some(StatusCode::SERVICE_UNAVAILABLE);
        if transient && std::time::Instant::now() < deadline {
            last = Some(e);
        } else if e.status().is_some_and(|s| s.is_server_error()) && attempt < 2 {
            attempt += 1;
            last = Some(e);
        } else if transient || e.status().is_some_and(|s| s.is_server_error()) {
            return Err(ApiError::unavailable(format!(
                "PUT to {}: {e}",
                owner.name()
            )));
        } else {
            return Err(ApiError::from(e).context(format!("PUT to {}", owner.name())));
        }
    }
}
