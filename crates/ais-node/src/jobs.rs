//! Offline bucket-to-bucket jobs (`etl-bck`, `copy-bck` and their list/range
//! forms). The proxy validates, creates the destination, starts the job on
//! every target and answers status/abort queries by asking the targets. Each
//! target walks only the source objects stored on it, transforms them with its
//! local ETL runtime (or copies them), and writes each output straight to the
//! destination's owner target (locally, or one PUT to that target). Per-object
//! failures are all kept; without `coer` the first one stops the job.

use crate::http::{json_ok, read_body, split_first, text_ok, unknown_path, Ctx, Res};
use crate::node::Node;
use crate::target::enc;
use ais_core::api::{expand_template, ActMsg, PropSet, TcbMsg};
use ais_core::meta::Snode;
use ais_core::{AisError, Bck};
use axum::body::Body;
use axum::http::{Method, StatusCode};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

const MAX_TEMPLATE: usize = 10_000_000;
/// Finished jobs a target remembers (oldest forgotten first).
const MAX_KEPT_JOBS: usize = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSpec {
    pub id: String,
    pub kind: String,
    pub src: String,
    pub dst: String,
    pub msg: TcbMsg,
    /// The destination existed before the job: outputs a previous run already
    /// wrote from the same source version with the same transform are skipped.
    #[serde(default)]
    pub skip_unchanged: bool,
}

/// Custom metadata a job leaves on every output: where it came from.
const MD_SRC: &str = "src-cksum";
const MD_BY: &str = "made-by";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobObjError {
    pub obj_name: String,
    pub msg: String,
    pub ecode: u16,
}

/// One job's state on one target.
pub struct TargetJob {
    pub spec: JobSpec,
    started_ns: i64,
    ended_ns: AtomicI64,
    aborted: AtomicBool,
    err: Mutex<String>,
    objs: AtomicU64,
    bytes: AtomicU64,
    in_bytes: AtomicU64,
    skipped: AtomicU64,
    total_objs: AtomicU64,
    total_bytes: AtomicU64,
    counted: AtomicBool,
    errors: Mutex<Vec<JobObjError>>,
}

#[derive(Default)]
pub struct Jobs {
    map: RwLock<HashMap<String, Arc<TargetJob>>>,
    /// Proxy side: which targets run which job.
    proxy_jobs: RwLock<HashMap<String, ProxyJob>>,
}

#[derive(Clone)]
struct ProxyJob {
    kind: String,
    targets: Vec<Snode>,
}

impl TargetJob {
    fn snap(&self, node_id: &str) -> Value {
        let end = self.ended_ns.load(Ordering::Relaxed);
        let err = self.err.lock().map(|e| e.clone()).unwrap_or_default();
        let bck = |name: &str| json!({"name": name, "provider": "ais", "namespace": {"uuid": "", "name": ""}});
        let errors = self.errors.lock().map(|e| e.len()).unwrap_or(0);
        json!({
            "id": self.spec.id,
            "kind": self.spec.kind,
            "node": node_id,
            "start-time": ais_storage::rfc3339(self.started_ns),
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
            "err_count": errors,
            "aborted": self.aborted.load(Ordering::Relaxed),
            "is_idle": end != 0,
            "abort-err": if self.aborted.load(Ordering::Relaxed) { err.clone() } else { String::new() },
            "err": err,
            "glob.id": "0",
        })
    }

    fn fail(&self, msg: String) {
        if let Ok(mut e) = self.err.lock() {
            if e.is_empty() {
                *e = msg;
            }
        }
        self.aborted.store(true, Ordering::Relaxed);
    }

    fn record(&self, obj: &str, msg: String, ecode: u16) {
        if let Ok(mut e) = self.errors.lock() {
            e.push(JobObjError {
                obj_name: obj.to_string(),
                msg,
                ecode,
            });
        }
    }
}

// ------------------------------------------------------------------ target

pub async fn target_internal(node: &Arc<Node>, ctx: &Ctx, rest: &str, body: Body) -> Res {
    let (id, what) = split_first(rest);
    match (ctx.method.clone(), id, what) {
        (Method::POST, "start", "") => {
            let spec: JobSpec = serde_json::from_slice(&read_body(body, 64 << 20).await?)
                .map_err(|e| AisError::bad_request(format!("malformed job: {e}")))?;
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
                total_objs: AtomicU64::new(0),
                total_bytes: AtomicU64::new(0),
                counted: AtomicBool::new(false),
                errors: Mutex::new(Vec::new()),
            });
            if let Ok(mut m) = node.jobs.map.write() {
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
                m.insert(job.spec.id.clone(), job.clone());
            }
            let n = node.clone();
            tokio::spawn(async move {
                let res = run(&n, &job).await;
                if let Err(e) = res {
                    job.fail(e);
                }
                job.ended_ns.store(ais_core::now_ns(), Ordering::Relaxed);
            });
            Ok(crate::http::empty(StatusCode::OK))
        }
        (Method::GET, "", "") => {
            let all: Vec<Value> = node
                .jobs
                .map
                .read()
                .map(|m| m.values().map(|j| j.snap(&node.id)).collect())
                .unwrap_or_default();
            json_ok(&all)
        }
        (Method::GET, id, "") => json_ok(&job(node, id)?.snap(&node.id)),
        (Method::GET, id, "errors") => json_ok(
            &job(node, id)?
                .errors
                .lock()
                .map(|e| e.clone())
                .unwrap_or_default(),
        ),
        (Method::POST, id, "abort") => {
            job(node, id)?.fail("aborted by user".into());
            Ok(crate::http::empty(StatusCode::OK))
        }
        _ => Err(unknown_path(ctx)),
    }
}

fn job(node: &Node, id: &str) -> Result<Arc<TargetJob>, AisError> {
    node.jobs
        .map
        .read()
        .ok()
        .and_then(|m| m.get(id).cloned())
        .ok_or_else(|| AisError::new(404, format!("{}: job {id} not found", node.name)))
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
    fn new(spec: &JobSpec) -> Result<Self, String> {
        let msg = &spec.msg;
        let names = if !msg.objnames.is_empty() {
            Some(msg.objnames.clone())
        } else if !msg.template.is_empty() {
            Some(expand_template(&msg.template, MAX_TEMPLATE).map_err(|e| e.message)?)
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

    async fn next(
        &mut self,
        node: &Arc<Node>,
        spec: &JobSpec,
    ) -> Result<Option<Vec<(String, u64)>>, String> {
        if self.done {
            return Ok(None);
        }
        let store = node.store().map_err(|e| e.message)?.clone();
        let src = Bck::ais(spec.src.clone());
        if let Some(names) = &self.names {
            let end = (self.pos + 1000).min(names.len());
            let mut page = Vec::new();
            for n in &names[self.pos..end] {
                if ais_core::names::validate_object_name(n).is_err() {
                    continue;
                }
                if let Ok(info) = store.head(&src, n).await {
                    page.push((n.clone(), info.attrs.size));
                }
            }
            self.pos = end;
            self.done = end >= names.len();
            return Ok(Some(page));
        }
        let (p, a, name) = (
            spec.msg.prefix.clone(),
            self.after.clone(),
            node.name.clone(),
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
            )
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        self.done = page.done || page.entries.is_empty();
        if let Some(l) = page.entries.last() {
            self.after = l.name.clone();
        }
        Ok(Some(
            page.entries.into_iter().map(|e| (e.name, e.size)).collect(),
        ))
    }
}

async fn run(node: &Arc<Node>, job: &Arc<TargetJob>) -> Result<(), String> {
    let spec = job.spec.clone();
    // Totals first, for progress and ETA (a listing pass, no data read).
    let mut c = Cursor::new(&spec)?;
    let (mut n, mut b) = (0u64, 0u64);
    while let Some(page) = c.next(node, &spec).await? {
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
    while let Some(page) = c.next(node, &spec).await? {
        if job.aborted.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut s = futures::stream::iter(page.into_iter().map(|(name, size)| {
            let job = job.clone();
            let node = node.clone();
            async move {
                if job.aborted.load(Ordering::Relaxed) {
                    return;
                }
                if let Err((msg, code)) = one(&node, &job, &name, size).await {
                    let cname = format!("ais://{}/{name}", job.spec.src);
                    job.record(&cname, msg.clone(), code);
                    if !job.spec.msg.coer {
                        job.fail(format!("{cname}: {msg}"));
                    }
                }
            }
        }))
        .buffer_unordered(workers);
        while s.next().await.is_some() {}
    }
    Ok(())
}

/// Transforms (or copies) one local object and writes it to the destination owner.
async fn one(
    node: &Arc<Node>,
    job: &TargetJob,
    name: &str,
    size: u64,
) -> Result<(), (String, u16)> {
    let spec = &job.spec;
    let dst_name = spec.msg.dst_name(name);
    if let Err(e) = ais_core::names::validate_object_name(&dst_name) {
        return Err((e.message, 400));
    }
    job.in_bytes.fetch_add(size, Ordering::Relaxed);
    if spec.msg.dry_run {
        job.objs.fetch_add(1, Ordering::Relaxed);
        job.bytes.fetch_add(size, Ordering::Relaxed);
        return Ok(());
    }
    let src = Bck::ais(spec.src.clone());
    let store = node.store().map_err(|e| (e.message, 500))?;
    let path = store.obj_path(&src, name);
    let src_cksum = store
        .head(&src, name)
        .await
        .map(|i| i.attrs.cksum_value)
        .unwrap_or_default();
    let rt = if spec.kind.starts_with("etl") {
        let mgr = node
            .etl
            .clone()
            .ok_or(("ETL is not available".to_string(), 500))?;
        Some(mgr.get(&spec.msg.id).ok_or((
            format!("etl job {} is not running on {}", spec.msg.id, node.name),
            404,
        ))?)
    } else {
        None
    };
    // Identifies the transform (ETL name + its init generation, or a copy).
    let made_by = match &rt {
        Some(rt) => format!(
            "etl:{}:{}:{:x}",
            spec.msg.id,
            rt.generation,
            xxhash_rust::xxh64::xxh64(spec.msg.etl_args.as_bytes(), 0)
        ),
        None => "copy".to_string(),
    };
    let custom = std::collections::BTreeMap::from([
        (MD_SRC.to_string(), src_cksum.clone()),
        (MD_BY.to_string(), made_by.clone()),
    ]);
    if spec.skip_unchanged && !spec.msg.force && !src_cksum.is_empty() {
        if let Some(attrs) = dst_attrs(node, &spec.dst, &dst_name).await {
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
        let cname = format!("ais://{}/{name}", spec.src);
        let fqn = path.to_string_lossy();
        let mut r = rt.transform(&cname, &fqn, size, &spec.msg.etl_args).await;
        // A worker that died (e.g. killed for memory) may be a passing
        // failure: one more try on its replacement before recording an error.
        if matches!(r, Err(ais_etl::EtlError::WorkerDied(_))) {
            r = rt.transform(&cname, &fqn, size, &spec.msg.etl_args).await;
        }
        Some(r.map_err(|e| (e.to_string(), ais_etl::status_of(&e)))?)
    } else {
        None
    };
    let len = out.as_ref().map(|b| b.len() as u64).unwrap_or(size);
    put_to_owner(node, &spec.dst, &dst_name, out, &path, custom).await?;
    job.objs.fetch_add(1, Ordering::Relaxed);
    job.bytes.fetch_add(len, Ordering::Relaxed);
    Ok(())
}

/// Attributes of a destination object on its owner target, if it exists.
async fn dst_attrs(node: &Arc<Node>, dst: &str, name: &str) -> Option<ais_core::meta::ObjAttrs> {
    let dbck = Bck::ais(dst.to_string());
    let owner = node
        .meta
        .with_smap(|s| s.and_then(|s| s.owner(&dbck.obj_uname(name)).cloned()))?;
    if owner.daemon_id == node.id {
        return node
            .store()
            .ok()?
            .head(&dbck, name)
            .await
            .ok()
            .map(|i| i.attrs);
    }
    let url = format!("{}/v1/internal/objattrs/{dst}/{}", owner.url(), enc(name));
    let resp = node.http.get(url).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// Writes `data` (or the file at `path`, streamed) as `dst/name` on its owner,
/// retrying transient failures a bounded number of times.
pub async fn put_to_owner(
    node: &Arc<Node>,
    dst: &str,
    name: &str,
    data: Option<bytes::Bytes>,
    path: &std::path::Path,
    custom: std::collections::BTreeMap<String, String>,
) -> Result<(), (String, u16)> {
    let dbck = Bck::ais(dst.to_string());
    let owner = node
        .meta
        .with_smap(|s| s.and_then(|s| s.owner(&dbck.obj_uname(name)).cloned()))
        .ok_or(("no targets in the cluster map".to_string(), 503))?;
    let store = node.store().map_err(|e| (e.message, 500))?;
    if owner.daemon_id == node.id {
        let mut w = store
            .begin_put(&dbck, name)
            .await
            .map_err(|e| (e.to_string(), 500))?;
        match &data {
            Some(b) => w.write(b).await.map_err(|e| (e.to_string(), 500))?,
            None => {
                use tokio::io::AsyncReadExt;
                let mut f = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| (e.to_string(), 500))?;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = f.read(&mut buf).await.map_err(|e| (e.to_string(), 500))?;
                    if n == 0 {
                        break;
                    }
                    w.write(&buf[..n]).await.map_err(|e| (e.to_string(), 500))?;
                }
            }
        }
        w.commit(custom).await.map_err(|e| (e.to_string(), 500))?;
        return Ok(());
    }
    let url = format!("{}/v1/objects/{dst}/{}?ais_hop=1", owner.url(), enc(name));
    let mut last = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
        }
        let body = match &data {
            Some(b) => reqwest::Body::from(b.clone()),
            None => {
                let f = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| (e.to_string(), 500))?;
                reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(f, 1 << 20))
            }
        };
        let mut req = node.http.put(&url).timeout(Duration::from_secs(600));
        for (k, v) in &custom {
            req = req.header("Ais-Custom-Md", format!("{k}={v}"));
        }
        match req.body(body).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) if r.status().is_server_error() => {
                last = format!("{}: {}", r.status(), r.text().await.unwrap_or_default())
            }
            Ok(r) => {
                let st = r.status().as_u16();
                return Err((
                    format!(
                        "PUT to {}: {}",
                        owner.name(),
                        r.text().await.unwrap_or_default()
                    ),
                    st,
                ));
            }
            Err(e) => last = format!("PUT to {}: {e}", owner.name()),
        }
    }
    Err((last, 503))
}

// ------------------------------------------------------------------- proxy

/// `POST /v1/buckets/SRC` with `etl-bck`, `copy-bck`, `etl-listrange`, `copy-listrange`.
pub async fn start(node: &Arc<Node>, ctx: &Ctx, src: &Bck, msg: ActMsg) -> Res {
    let etl = msg.action.starts_with("etl");
    let kind = if etl { "etl-bck" } else { "copy-bck" };
    let mut tcb: TcbMsg = if msg.value.is_null() {
        TcbMsg::default()
    } else {
        serde_json::from_value(msg.value.clone())
            .map_err(|e| AisError::bad_request(format!("malformed {} message: {e}", msg.action)))?
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
        return Err(AisError::bad_request(format!(
            "{}: missing destination bucket (bck_to)",
            msg.action
        )));
    };
    let src_props = node
        .meta
        .with_bmd(|b| b.buckets.get(&src.name).cloned())
        .ok_or_else(|| AisError::bucket_not_found(src))?;
    if src.name == dst.name && !tcb.dry_run {
        return Err(AisError::bad_request(format!(
            "cannot {} {} onto itself (only with dry_run)",
            msg.action,
            src.cname()
        )));
    }
    if etl {
        if tcb.id.is_empty() {
            return Err(AisError::bad_request("etl-bck: missing ETL name (\"id\")"));
        }
        crate::etl::check_etl_usable(node, &tcb.id)?;
    }
    if !tcb.template.is_empty() {
        expand_template(&tcb.template, MAX_TEMPLATE)?; // validate early: a clear 400
    }
    if tcb.etl_args.is_empty() {
        if let Some(a) = ctx.query.get("etl_args") {
            tcb.etl_args = a.to_string();
        }
    }
    let p = node
        .primary
        .as_ref()
        .ok_or_else(|| AisError::new(503, format!("{} is not the primary proxy", node.name)))?;
    let dst_existed = node.meta.with_bmd(|b| b.buckets.contains_key(&dst.name));
    if !tcb.dry_run && !dst_existed {
        let mut props = src_props.clone();
        props.bid = ais_core::gen_id(10);
        props.created = ais_core::now_ns().to_string();
        let res = p
            .update_bmd(|bmd| {
                bmd.buckets.entry(dst.name.clone()).or_insert(props);
                Ok(())
            })
            .await;
        res?;
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
    };
    let targets: Vec<Snode> = node.meta.with_smap(|s| {
        s.map(|s| s.active_targets().cloned().collect())
            .unwrap_or_default()
    });
    if targets.is_empty() {
        return Err(AisError::new(503, "the cluster has no targets"));
    }
    if let Ok(mut m) = node.jobs.proxy_jobs.write() {
        m.insert(
            id.clone(),
            ProxyJob {
                kind: kind.into(),
                targets: targets.clone(),
            },
        );
    }
    let futs = targets.iter().map(|t| {
        let r = node
            .http
            .post(format!("{}/v1/internal/jobs/start", t.url()))
            .json(&spec);
        async move { (t.name(), r.send().await) }
    });
    for (tname, r) in futures::future::join_all(futs).await {
        match r {
            Ok(r) if r.status().is_success() => {}
            other => {
                abort_everywhere(node, &id).await;
                let why = match other {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(e) => e.to_string(),
                };
                return Err(AisError::new(
                    503,
                    format!("failed to start job {id} on {tname}: {why}"),
                ));
            }
        }
    }
    tracing::info!(job = %id, kind, src = %src.cname(), dst = %dst.cname(), "job started");
    Ok(text_ok(&id))
}

async fn abort_everywhere(node: &Node, id: &str) {
    let targets = node
        .jobs
        .proxy_jobs
        .read()
        .ok()
        .and_then(|m| m.get(id).map(|j| j.targets.clone()))
        .unwrap_or_default();
    let futs = targets.iter().map(|t| {
        let r = node
            .http
            .post(format!("{}/v1/internal/jobs/{id}/abort", t.url()));
        async move {
            let _ = r.send().await;
        }
    });
    futures::future::join_all(futs).await;
}

fn proxy_job(node: &Node, id: &str) -> Result<ProxyJob, AisError> {
    node.jobs
        .proxy_jobs
        .read()
        .ok()
        .and_then(|m| m.get(id).cloned())
        .ok_or_else(|| AisError::new(404, format!("{}: job {id} not found", node.name)))
}

/// Job query body: Go-style capitalised keys or lower-case.
#[derive(Deserialize, Default)]
struct JobQuery {
    #[serde(default, alias = "ID", alias = "Id", alias = "uuid")]
    id: String,
    #[serde(default, alias = "Kind")]
    kind: String,
}

async fn snaps(
    node: &Node,
    id: &str,
) -> Result<(ProxyJob, Vec<(Snode, Result<Value, String>)>), AisError> {
    let job = proxy_job(node, id)?;
    let futs = job.targets.iter().map(|t| {
        let r = node
            .http
            .get(format!("{}/v1/internal/jobs/{id}", t.url()))
            .timeout(Duration::from_secs(5));
        async move {
            let res = match r.send().await {
                Ok(resp) if resp.status().is_success() => {
                    resp.json::<Value>().await.map_err(|e| e.to_string())
                }
                Ok(resp) if resp.status() == StatusCode::NOT_FOUND => {
                    Err("restarted and lost the job".to_string())
                }
                Ok(resp) => Err(resp.status().to_string()),
                Err(e) => Err(format!("unreachable ({e})")),
            };
            (t.clone(), res)
        }
    });
    Ok((job.clone(), futures::future::join_all(futs).await))
}

/// Aggregated status as the SDK's `Job.status()` reads it.
async fn status(node: &Node, id: &str) -> Result<Value, AisError> {
    let (job, snaps) = snaps(node, id).await?;
    let mut end = 0i64;
    let mut all_done = true;
    let mut aborted = false;
    let mut errs = Vec::new();
    let (mut objs, mut bytes, mut total, mut total_bytes, mut nerr, mut skipped) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
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
                objs += v["stats"]["out-objs"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                bytes += v["stats"]["out-bytes"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                total += v["total_objs"].as_u64().unwrap_or(0);
                total_bytes += v["total_bytes"].as_u64().unwrap_or(0);
                nerr += v["err_count"].as_u64().unwrap_or(0);
                skipped += v["skipped"].as_u64().unwrap_or(0);
            }
            Err(why) => {
                // A target that left can't finish its share: the job fails, clearly.
                aborted = true;
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
    }))
}

/// `/v1/cluster?what=status|qryxstats|running_all|status_all` and `PUT /v1/cluster` stop.
pub async fn cluster_query(node: &Arc<Node>, ctx: &Ctx, body: Body) -> Res {
    let raw = read_body(body, 1 << 20).await?;
    let q: JobQuery = if raw.iter().all(|b| b.is_ascii_whitespace()) {
        JobQuery::default()
    } else {
        serde_json::from_slice(&raw)
            .map_err(|e| AisError::bad_request(format!("malformed job query: {e}")))?
    };
    let id = ctx.query.get("id").map(str::to_string).unwrap_or(q.id);
    match ctx.query.get("what").unwrap_or("") {
        "status" => {
            if id.is_empty() {
                return Err(AisError::bad_request("job status: missing job ID"));
            }
            json_ok(&status(node, &id).await?)
        }
        "qryxstats" => {
            if id.is_empty() {
                return Err(AisError::bad_request("job query: missing job ID"));
            }
            let (_, snaps) = snaps(node, &id).await?;
            let out: serde_json::Map<String, Value> = snaps
                .into_iter()
                .filter_map(|(t, s)| s.ok().map(|v| (t.daemon_id, Value::Array(vec![v]))))
                .collect();
            if out.is_empty() {
                return Err(AisError::new(404, format!("job {id} not found")));
            }
            json_ok(&out)
        }
        "running_all" | "status_all" | "jobs" => {
            let ids: Vec<String> = node
                .jobs
                .proxy_jobs
                .read()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            let mut out = Vec::new();
            for id in ids {
                if let Ok(s) = status(node, &id).await {
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
        _ => crate::http::daemon_info(node, ctx),
    }
}

pub async fn cluster_action(node: &Arc<Node>, body: Body) -> Res {
    let msg = ActMsg::parse(&read_body(body, 1 << 20).await?)?;
    match msg.action.as_str() {
        "stop" => {
            let q: JobQuery = serde_json::from_value(msg.value).unwrap_or_default();
            if q.id.is_empty() {
                return Err(AisError::bad_request("stop: missing job ID"));
            }
            snaps(node, &q.id).await?;
            abort_everywhere(node, &q.id).await;
            Ok(crate::http::empty(StatusCode::OK))
        }
        other => Err(AisError::bad_request(format!(
            "invalid cluster action \"{other}\" (supported: stop)"
        ))),
    }
}

/// Per-object errors of a job, from every target (for `GET /v1/etl/NAME?uuid=JOB`).
pub async fn job_errors(node: &Node, id: &str) -> Result<Vec<Value>, AisError> {
    let job = proxy_job(node, id)?;
    let futs = job.targets.iter().map(|t| {
        let r = node
            .http
            .get(format!("{}/v1/internal/jobs/{id}/errors", t.url()));
        async move {
            match r.send().await {
                Ok(resp) => resp.json::<Vec<Value>>().await.unwrap_or_default(),
                Err(_) => vec![],
            }
        }
    });
    Ok(futures::future::join_all(futs)
        .await
        .into_iter()
        .flatten()
        .collect())
}
