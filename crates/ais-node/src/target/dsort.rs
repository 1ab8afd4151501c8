//! dSort on a target: the phases that move bytes (`proxy::dsort` drives
//! them; `ais_core::dsort` holds the spec and the ordering rules).
//!
//! 1. **Extraction** (`init`): the target reads each input shard it owns
//!    once, streaming every member into a spill file in its mountpath's work
//!    directory, and indexes records (members sharing a key) by number.
//!    Memory holds the index only, whatever the shards' size; the spill is
//!    also what keeps a job whose output overwrites its input correct.
//! 2. The coordinator fetches the records' metadata (`records`), orders and
//!    cuts them, and sends each target the output shards it owns (`create`).
//! 3. **Creation**: the owner builds each shard in a spool file, reading its
//!    records from its own spills or streaming them from their holders
//!    (`fetch`, a tar of `RID/MEMBER` entries), then stores it like a PUT:
//!    atomically, so an aborted job leaves no half shard visible.
//!
//! Every job keeps AIStore's per-target `JobInfo` (`GET`); `abort` and
//! `finish` remove the spills.

use super::Target;
use crate::error::{ApiError, ApiResult};
use crate::http::{Ctx, Res};
use ais_core::dsort::{Algorithm, ContentKey, OutShard, Plan, Reaction, RecordMeta};
use ais_storage::archive::{self, ArchKind};
use axum::body::Body;
use axum::http::{Method, StatusCode};
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The dSort jobs this target knows (running and archived).
#[derive(Default)]
pub struct Dsorts(Mutex<HashMap<String, Arc<Job>>>);

/// Most archived jobs kept (then the oldest go).
const MAX_KEPT: usize = 256;
/// Most records one `fetch` asks for.
pub const FETCH_BATCH: usize = 512;
/// Largest content-key member read (`algorithm.extension`).
const MAX_CONTENT_KEY: u64 = 4096;
/// Most records one target extracts for one job (their index is in memory
/// here and, as metadata, on the coordinator).
const MAX_RECORDS: usize = 2_000_000;
/// Longest member name.
const MAX_NAME: usize = 1024;
/// Most members of one record (files sharing a key).
const MAX_MEMBERS: usize = 1024;
/// Most bytes of records built into a shard between two writes of it.
const BATCH_BYTES: u64 = 16 << 20;
/// A job the coordinator stopped driving for this long is aborted.
const IDLE_NS: i64 = 600 * 1_000_000_000;

pub struct Job {
    plan: Plan,
    started_ns: i64,
    aborted: AtomicBool,
    state: Mutex<State>,
    /// Record number → where its members are.
    records: Mutex<Vec<Local>>,
    /// Where records are read from: the input shards themselves (an
    /// uncompressed tar, kept open: an overwrite of the object leaves this
    /// file as it was) or spill files (compressed inputs, inflated once).
    sources: Mutex<Vec<Source>>,
    /// When the coordinator last spoke (ns): a job it stopped driving is
    /// aborted by its watchdog.
    touched: std::sync::atomic::AtomicI64,
}

struct Source {
    file: Arc<std::fs::File>,
    /// A spill file to remove with the job.
    spill: Option<PathBuf>,
}

/// A member in a source: (name, offset, length).
type Spilled = (String, u64, u64);

/// A record's members in one of the job's sources.
struct Local {
    src: usize,
    members: Vec<Spilled>,
}

#[derive(Default, Clone)]
struct Phase {
    start_ns: i64,
    end_ns: i64,
    running: bool,
    finished: bool,
}

impl Phase {
    fn begin(&mut self) {
        self.start_ns = ais_core::now_ns();
        self.running = true;
    }
    fn end(&mut self) {
        self.end_ns = ais_core::now_ns();
        self.running = false;
        self.finished = true;
    }
    fn json(&self) -> serde_json::Map<String, Value> {
        let t = |ns: i64| {
            if ns == 0 {
                String::new()
            } else {
                ais_storage::rfc3339(ns)
            }
        };
        let elapsed = if self.start_ns == 0 {
            0
        } else if self.end_ns == 0 {
            ais_core::now_ns() - self.start_ns
        } else {
            self.end_ns - self.start_ns
        };
        let mut m = serde_json::Map::new();
        m.insert("started_time".into(), json!(t(self.start_ns)));
        m.insert("end_time".into(), json!(t(self.end_ns)));
        m.insert("elapsed".into(), json!(elapsed.max(0)));
        m.insert("running".into(), json!(self.running));
        m.insert("finished".into(), json!(self.finished));
        m
    }
}

#[derive(Default)]
struct State {
    extraction: Phase,
    sorting: Phase,
    creation: Phase,
    shards_total: u64,
    shards_extracted: u64,
    extracted_bytes: u64,
    record_count: u64,
    to_create: u64,
    created: u64,
    created_bytes: u64,
    /// The records' metadata, from extraction until the coordinator took it.
    metas: Option<Vec<RecordMeta>>,
    errors: Vec<String>,
    warnings: Vec<String>,
    archived: bool,
    finish_ns: i64,
}

impl Job {
    fn fail(&self, msg: String) {
        tracing::warn!(job = %self.plan.id, error = %msg, "dsort: aborted");
        if let Ok(mut g) = self.state.lock() {
            let s = &mut *g;
            if !s.errors.contains(&msg) && s.errors.len() < 64 {
                s.errors.push(msg);
            }
            for p in [&mut s.extraction, &mut s.sorting, &mut s.creation] {
                p.running = false;
            }
            s.metas = None;
        }
        self.aborted.store(true, Ordering::Relaxed);
    }

    fn warn(&self, msg: String) {
        if let Ok(mut s) = self.state.lock() {
            if s.warnings.len() < 64 {
                s.warnings.push(msg);
            }
        }
    }

    /// The job is over here: its spills go, its state stays for queries.
    fn archive(&self) {
        self.remove_spills();
        if let Ok(mut s) = self.state.lock() {
            s.archived = true;
            if s.finish_ns == 0 {
                s.finish_ns = ais_core::now_ns();
            }
        }
    }

    fn aborted(&self) -> bool {
        self.aborted.load(Ordering::Relaxed)
    }

    fn remove_spills(&self) {
        if let Ok(mut s) = self.sources.lock() {
            for src in s.drain(..) {
                if let Some(p) = src.spill {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
        if let Ok(mut r) = self.records.lock() {
            r.clear();
        }
    }

    /// AIStore's per-target `JobInfo` (the SDK's `dsort.types.JobInfo`).
    pub fn info(&self) -> Value {
        let p = &self.plan;
        let s = match self.state.lock() {
            Ok(s) => s,
            Err(e) => e.into_inner(),
        };
        let bck =
            |n: &str| json!({"name": n, "provider": "ais", "namespace": {"uuid": "", "name": ""}});
        let mut le = s.extraction.json();
        for (k, v) in [
            ("total_count", s.shards_total),
            ("extracted_count", s.shards_extracted),
            ("extracted_size", s.extracted_bytes),
            ("extracted_record_count", s.record_count),
            ("extracted_to_disk_count", s.record_count),
            ("extracted_to_disk_size", s.extracted_bytes),
        ] {
            le.insert(k.into(), json!(v.to_string()));
        }
        let mut sc = s.creation.json();
        sc.insert("to_create".into(), json!(s.to_create.to_string()));
        sc.insert("created_count".into(), json!(s.created.to_string()));
        sc.insert("moved_shard_count".into(), json!("0"));
        let aborted = self.aborted();
        let t = |ns: i64| {
            if ns == 0 {
                Value::Null
            } else {
                json!(ais_storage::rfc3339(ns))
            }
        };
        json!({
            "id": p.id,
            "kind": "dsort",
            "src-bck": bck(&p.input_bck),
            "dst-bck": bck(&p.output_bck),
            "started_time": t(self.started_ns),
            "finish_time": t(s.finish_ns),
            "started_meta_sorting": s.sorting.start_ns.max(0),
            "started_shard_creation": s.creation.start_ns.max(0),
            "finished_shard_creation": s.creation.end_ns.max(0),
            "loc-objs": s.created.to_string(),
            "loc-bytes": s.created_bytes.to_string(),
            "Metrics": {
                "local_extraction": le,
                "meta_sorting": s.sorting.json(),
                "shard_creation": sc,
                "aborted": aborted,
                "archived": s.archived,
                "description": p.description,
                "warnings": s.warnings,
                "errors": s.errors,
                "extended": false,
            },
            "aborted": aborted,
            "archived": s.archived,
            // The job's targets: a status missing one of them is unknown.
            "targets": p.targets,
        })
    }
}

impl Dsorts {
    fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.0.lock().ok()?.get(id).cloned()
    }

    fn all(&self) -> Vec<Arc<Job>> {
        self.0
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}

fn not_found(t: &Target, id: &str) -> ApiError {
    ApiError::NotFound(format!("{}: dsort job {id} does not exist", t.core.name))
}

/// `/v1/internal/sort[/ID[/WHAT]]`, from the coordinating proxy and from
/// the other targets (record fetches).
pub async fn internal(t: &Arc<Target>, ctx: &Ctx, id: &str, what: &str, body: Body) -> Res {
    ctx.query.reject_unknown("dsort", &[])?;
    if !id.is_empty() {
        ais_core::dsort::check_id(id)?;
        if let Some(j) = t.dsorts.get(id) {
            j.touched.store(ais_core::now_ns(), Ordering::Relaxed);
        }
    }
    let m = &ctx.method;
    match (what, m) {
        ("", &Method::GET) if id.is_empty() => {
            let v: Vec<Value> = t.dsorts.all().iter().map(|j| j.info()).collect();
            crate::http::json_ok(&v)
        }
        ("", &Method::GET) => {
            let j = t.dsorts.get(id).ok_or_else(|| not_found(t, id))?;
            crate::http::json_ok(&j.info())
        }
        ("", &Method::DELETE) => {
            let j = t.dsorts.get(id).ok_or_else(|| not_found(t, id))?;
            if !j.state.lock().map(|s| s.archived).unwrap_or(false) {
                return Err(ApiError::bad_request(format!(
                    "dsort job {id} is still in progress and cannot be removed (abort it first)"
                )));
            }
            if let Ok(mut m) = t.dsorts.0.lock() {
                m.remove(id);
            }
            Ok(crate::http::empty(StatusCode::OK))
        }
        ("init", &Method::POST) => {
            let raw = crate::http::read_body(body, 64 << 20).await?;
            let plan: Plan = serde_json::from_slice(&raw)
                .map_err(|e| ApiError::bad_request(format!("dsort init: {e}")))?;
            if plan.id != id {
                return Err(ApiError::bad_request("dsort init: job id mismatch"));
            }
            init(t, plan)?;
            Ok(crate::http::empty(StatusCode::OK))
        }
        ("records", &Method::GET) => {
            let j = t.dsorts.get(id).ok_or_else(|| not_found(t, id))?;
            let mut s = j.state.lock().map_err(|_| ApiError::internal("poisoned"))?;
            if j.aborted() {
                return Err(ApiError::Conflict(format!(
                    "dsort job {id} aborted: {}",
                    s.errors.join("; ")
                )));
            }
            let metas = s.metas.take().ok_or_else(|| {
                ApiError::Conflict(format!(
                    "{}: dsort job {id}: records not extracted yet (or already taken)",
                    t.core.name
                ))
            })?;
            s.sorting.begin();
            drop(s);
            crate::http::json_ok(&metas)
        }
        ("create", &Method::POST) => {
            let j = t.dsorts.get(id).ok_or_else(|| not_found(t, id))?;
            let raw = crate::http::read_body(body, 256 << 20).await?;
            let shards: Vec<OutShard> = serde_json::from_slice(&raw)
                .map_err(|e| ApiError::bad_request(format!("dsort create: {e}")))?;
            {
                let mut s = j.state.lock().map_err(|_| ApiError::internal("poisoned"))?;
                if s.creation.running || s.creation.finished {
                    return Err(ApiError::Conflict(format!(
                        "dsort job {id}: creation already started"
                    )));
                }
                s.sorting.end();
                s.to_create = shards.len() as u64;
                s.creation.begin();
            }
            let (t, j) = (t.clone(), j.clone());
            tokio::spawn(async move {
                match create_all(&t, &j, shards).await {
                    Ok(()) if !j.aborted() => {
                        if let Ok(mut s) = j.state.lock() {
                            s.creation.end();
                            s.finish_ns = ais_core::now_ns();
                        }
                    }
                    Ok(()) => {}
                    Err(e) => j.fail(format!("{}: {e}", t.core.name)),
                }
            });
            Ok(crate::http::empty(StatusCode::OK))
        }
        ("fetch", &Method::POST) => {
            let j = t.dsorts.get(id).ok_or_else(|| not_found(t, id))?;
            let raw = crate::http::read_body(body, 1 << 20).await?;
            let rids: Vec<u32> = serde_json::from_slice(&raw)
                .map_err(|e| ApiError::bad_request(format!("dsort fetch: {e}")))?;
            if rids.len() > FETCH_BATCH {
                return Err(ApiError::bad_request(format!(
                    "dsort fetch: at most {FETCH_BATCH} records at once"
                )));
            }
            fetch(t, &j, rids)
        }
        ("abort", &Method::POST) => {
            let raw = crate::http::read_body(body, 64 << 10).await?;
            let why = serde_json::from_slice::<Value>(&raw)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| "aborted by user".into());
            let j = t.dsorts.get(id).ok_or_else(|| not_found(t, id))?;
            let done = j
                .state
                .lock()
                .map(|s| s.archived && !j.aborted())
                .unwrap_or(false);
            if !done {
                // The coordinator's reason is the job's: first, ahead of any
                // failure here that it caused (a peer already aborted).
                if let Ok(mut s) = j.state.lock() {
                    s.errors.retain(|e| *e != why);
                    s.errors.insert(0, why.clone());
                }
                j.fail(why);
                j.archive();
            }
            Ok(crate::http::empty(StatusCode::OK))
        }
        ("finish", &Method::POST) => {
            t.dsorts.get(id).ok_or_else(|| not_found(t, id))?.archive();
            Ok(crate::http::empty(StatusCode::OK))
        }
        _ => Err(ctx.unknown_path()),
    }
}

fn init(t: &Arc<Target>, plan: Plan) -> ApiResult<()> {
    let id = plan.id.clone();
    let job = Arc::new(Job {
        plan,
        started_ns: ais_core::now_ns(),
        aborted: AtomicBool::new(false),
        state: Mutex::new(State::default()),
        records: Mutex::new(Vec::new()),
        sources: Mutex::new(Vec::new()),
        touched: std::sync::atomic::AtomicI64::new(ais_core::now_ns()),
    });
    {
        let mut m = t
            .dsorts
            .0
            .lock()
            .map_err(|_| ApiError::internal("poisoned"))?;
        if m.contains_key(&id) {
            return Err(ApiError::Conflict(format!("dsort job {id} already exists")));
        }
        if m.len() >= MAX_KEPT {
            // The oldest archived job goes.
            let old = m
                .iter()
                .filter(|(_, j)| j.state.lock().map(|s| s.archived).unwrap_or(false))
                .min_by_key(|(_, j)| j.started_ns)
                .map(|(k, _)| k.clone());
            match old {
                Some(k) => {
                    m.remove(&k);
                }
                None => {
                    return Err(ApiError::TooManyRequests {
                        msg: format!("{}: too many dsort jobs running", t.core.name),
                        retry_after_s: 10,
                    })
                }
            }
        }
        m.insert(id, job.clone());
    }
    if let Ok(mut s) = job.state.lock() {
        s.extraction.begin();
    }
    // The watchdog: a coordinator that died (or lost this target) leaves
    // no job running here, nor its spills.
    let watched = Arc::downgrade(&job);
    let node = t.core.name.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(10)).await;
            let Some(j) = watched.upgrade() else { return };
            let archived = j.state.lock().map(|s| s.archived).unwrap_or(true);
            if archived {
                return;
            }
            if ais_core::now_ns() - j.touched.load(Ordering::Relaxed) > IDLE_NS {
                j.fail(format!(
                    "{node}: the coordinating proxy stopped driving the job"
                ));
                j.archive();
                return;
            }
        }
    });
    let t = t.clone();
    tokio::spawn(async move {
        match extract_all(&t, &job).await {
            Ok(metas) if !job.aborted() => {
                if let Ok(mut s) = job.state.lock() {
                    s.record_count = metas.len() as u64;
                    s.metas = Some(metas);
                    s.extraction.end();
                }
            }
            // Aborted meanwhile: what the extraction left goes too.
            Ok(_) => job.remove_spills(),
            Err(e) => {
                job.fail(format!("{}: {e}", t.core.name));
                job.remove_spills();
            }
        }
    });
    Ok(())
}

/// Extracts every input shard this target owns (two at a time).
async fn extract_all(t: &Arc<Target>, job: &Arc<Job>) -> ApiResult<Vec<RecordMeta>> {
    use futures::StreamExt;
    let plan = &job.plan;
    let bck = t.core.bck(plan.input_bck.clone());
    // The coordinator sent this target the input shards it owns.
    let mine: Vec<String> = plan.inputs.clone();
    if let Ok(mut s) = job.state.lock() {
        s.shards_total = mine.len() as u64;
    }
    let mut out = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut work = futures::stream::iter(mine.into_iter().map(|name| {
        let (t, job, bck) = (t.clone(), job.clone(), bck.clone());
        async move {
            let r = extract_one(&t, &job, &bck, &name).await;
            (name, r)
        }
    }))
    .buffered(2);
    while let Some((name, r)) = work.next().await {
        if job.aborted() {
            return Ok(Vec::new());
        }
        let Some(metas) = r? else {
            continue;
        };
        if out.len() + metas.len() > MAX_RECORDS {
            return Err(ApiError::bad_request(format!(
                "dsort: more than {MAX_RECORDS} records on {} (split the job)",
                t.core.name
            )));
        }
        for m in metas {
            if let Some(other) = seen.insert(m.key.clone(), name.clone()) {
                let msg = format!("duplicated record \"{}\" in {other} and {name}", m.key);
                match plan.duplicated_records {
                    Reaction::Abort => return Err(ApiError::bad_request(msg)),
                    Reaction::Warn => job.warn(msg),
                    Reaction::Ignore => {}
                }
            }
            out.push(m);
        }
        if let Ok(mut s) = job.state.lock() {
            s.shards_extracted += 1;
        }
    }
    Ok(out)
}

/// Indexes one input shard's records; `None` when it is missing and the
/// spec says to go on. The shard is read as a GET would (checksum
/// verified, healed from a mirror or rebuilt from erasure-coded parts): a
/// damaged input fails the job, never becomes a good-looking output. An
/// uncompressed tar is read in place; other formats are inflated once into
/// a spill file.
async fn extract_one(
    t: &Arc<Target>,
    job: &Arc<Job>,
    bck: &ais_core::Bck,
    name: &str,
) -> ApiResult<Option<Vec<RecordMeta>>> {
    let plan = &job.plan;
    let kind = ArchKind::of(name)
        .or_else(|| ArchKind::of(&plan.input_ext))
        .ok_or_else(|| {
            ApiError::bad_request(format!("{name}: not a shard ({})", plan.input_ext))
        })?;
    match t.verified_source(bck, name).await {
        Ok(_) => {}
        Err(ApiError::ObjectNotFound { .. }) | Err(ApiError::NotFound(_)) => {
            let msg = format!("input shard {}/{name} does not exist", bck.cname());
            return match plan.missing_shards {
                Reaction::Abort => Err(ApiError::NotFound(msg)),
                Reaction::Warn => {
                    job.warn(msg);
                    Ok(None)
                }
                Reaction::Ignore => Ok(None),
            };
        }
        Err(e) => return Err(e),
    }
    let src = t.store.obj_path(bck, name);
    let spill = (kind != ArchKind::Tar)
        .then(|| t.store.work_file(bck, name, &format!("dsort-{}", plan.id)));
    let content = match &plan.algorithm {
        Algorithm::Content {
            extension,
            key_type,
            ..
        } => Some((extension.clone(), *key_type)),
        _ => None,
    };
    let (node, cname) = (t.core.name.clone(), format!("{}/{name}", bck.cname()));
    let job2 = job.clone();
    type Extracted = (
        Source,
        Vec<Vec<Spilled>>,
        Vec<(String, u64, Option<ContentKey>)>,
        u64,
    );
    let (source, groups, keys, bytes) =
        tokio::task::spawn_blocking(move || -> ApiResult<Extracted> {
            let io =
                |e: std::io::Error| ApiError::internal(format!("{node}: extract {cname}: {e}"));
            let bad = |m: String| ApiError::bad_request(format!("{cname}: {m}"));
            let mut idx = Index::default();
            let source = match &spill {
                None => {
                    // In place: the index of the file we keep open.
                    let f = std::fs::File::open(&src).map_err(io)?;
                    let list = archive::index_of(f.try_clone().map_err(io)?, &src, kind)
                        .map_err(|e| bad(e.to_string()))?;
                    for m in list.iter() {
                        if job2.aborted() {
                            return Err(ApiError::Conflict("aborted".into()));
                        }
                        let off = m
                            .data_offset
                            .ok_or_else(|| bad(format!("member {} has no offset", m.name)))?;
                        idx.add(&m.name, off, m.size)
                            .map_err(|e| bad(e.to_string()))?;
                    }
                    Source {
                        file: Arc::new(f),
                        spill: None,
                    }
                }
                Some(path) => {
                    let f = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create_new(true)
                        .open(path)
                        .map_err(io)?;
                    // Registered before anything is written: an abort removes it.
                    let source = Source {
                        file: Arc::new(f.try_clone().map_err(io)?),
                        spill: Some(path.clone()),
                    };
                    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
                    let mut off = 0u64;
                    let mut bad_entry: Option<String> = None;
                    archive::for_each_member(&src, kind, |mname, size, r| {
                        if job2.aborted() {
                            return Err(std::io::Error::other("aborted"));
                        }
                        if let Err(e) = idx.add(mname, off, size) {
                            bad_entry.get_or_insert(e.to_string());
                            return Err(std::io::Error::other("refused"));
                        }
                        let n = std::io::copy(r, &mut w)?;
                        off += n;
                        Ok(())
                    })
                    .map_err(|e| bad(bad_entry.take().unwrap_or_else(|| e.to_string())))?;
                    // Temporary: never flushed to the disk on purpose.
                    w.flush().map_err(io)?;
                    source
                }
            };
            // Content keys: the (small) members named by the algorithm.
            if let Some((ext, ty)) = &content {
                for (i, members) in idx.groups.iter().enumerate() {
                    let Some((mname, off, len)) =
                        members.iter().find(|m| m.0.ends_with(ext.as_str()))
                    else {
                        return Err(bad(format!(
                            "record \"{}\" has no {ext} member to sort by (algorithm kind content)",
                            idx.keys[i].0
                        )));
                    };
                    if *len > MAX_CONTENT_KEY {
                        return Err(bad(format!(
                            "{mname}: content key longer than {MAX_CONTENT_KEY} bytes"
                        )));
                    }
                    let raw = read_member(&source.file, *off, *len, mname).map_err(io)?;
                    idx.keys[i].2 = Some(
                        ContentKey::parse(&raw, *ty).map_err(|e| bad(format!("{mname}: {e}")))?,
                    );
                }
            }
            let bytes = idx.bytes;
            Ok((source, idx.groups, idx.keys, bytes))
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    if job.aborted() {
        // The abort may have missed this source: it goes now.
        if let Some(p) = &source.spill {
            let _ = std::fs::remove_file(p);
        }
        return Ok(Some(Vec::new()));
    }
    let src_idx = {
        let mut s = job
            .sources
            .lock()
            .map_err(|_| ApiError::internal("poisoned"))?;
        s.push(source);
        s.len() - 1
    };
    let mut recs = job
        .records
        .lock()
        .map_err(|_| ApiError::internal("poisoned"))?;
    let first = recs.len();
    if first + groups.len() > MAX_RECORDS {
        return Err(ApiError::bad_request(format!(
            "dsort: more than {MAX_RECORDS} records on {} (split the job)",
            t.core.name
        )));
    }
    recs.extend(groups.into_iter().map(|members| Local {
        src: src_idx,
        members,
    }));
    drop(recs);
    if let Ok(mut s) = job.state.lock() {
        s.extracted_bytes += bytes;
    }
    Ok(Some(
        keys.into_iter()
            .enumerate()
            .map(|(i, (key, size, ckey))| RecordMeta {
                key,
                size,
                rid: (first + i) as u32,
                shard: name.to_string(),
                ckey,
                holder: String::new(),
            })
            .collect(),
    ))
}

/// One shard's records as they are indexed: members grouped by key, in
/// order of first appearance, with the limits every record obeys.
#[derive(Default)]
struct Index {
    by_key: HashMap<String, usize>,
    groups: Vec<Vec<Spilled>>,
    keys: Vec<(String, u64, Option<ContentKey>)>,
    bytes: u64,
}

impl Index {
    fn add(&mut self, name: &str, off: u64, size: u64) -> ApiResult<()> {
        let refuse = |m: String| Err(ApiError::bad_request(m));
        if name.len() > MAX_NAME {
            return refuse(format!("a member name longer than {MAX_NAME} bytes"));
        }
        if size > archive::max_member_inmem() {
            return refuse(format!(
                "member {name} is {size} bytes, more than dSort moves at once ({} bytes, AIS_MAX_MEMBER_INMEM)",
                archive::max_member_inmem()
            ));
        }
        if self.groups.len() >= MAX_RECORDS {
            return refuse(format!("more than {MAX_RECORDS} records in one shard"));
        }
        let key = ais_core::dsort::record_key(name).to_string();
        let i = match self.by_key.get(&key) {
            Some(i) => *i,
            None => {
                self.by_key.insert(key.clone(), self.groups.len());
                self.groups.push(Vec::new());
                self.keys.push((key, 0, None));
                self.groups.len() - 1
            }
        };
        if self.groups[i].len() >= MAX_MEMBERS {
            return refuse(format!(
                "record \"{}\" has more than {MAX_MEMBERS} members",
                self.keys[i].0
            ));
        }
        if self.groups[i].iter().any(|m| m.0 == name) {
            return refuse(format!("member {name} appears twice"));
        }
        self.groups[i].push((name.to_string(), off, size));
        self.keys[i].1 += size;
        self.bytes += size;
        Ok(())
    }
}

/// Where record `rid`'s members are: (its source, members).
fn locate(job: &Job, rid: u32) -> ApiResult<(Arc<std::fs::File>, Vec<Spilled>)> {
    let recs = job
        .records
        .lock()
        .map_err(|_| ApiError::internal("poisoned"))?;
    let r = recs
        .get(rid as usize)
        .ok_or_else(|| ApiError::NotFound(format!("dsort job {}: no record {rid}", job.plan.id)))?;
    let sources = job
        .sources
        .lock()
        .map_err(|_| ApiError::internal("poisoned"))?;
    let f = sources
        .get(r.src)
        .map(|s| s.file.clone())
        .ok_or_else(|| ApiError::Conflict(format!("dsort job {}: sources removed", job.plan.id)))?;
    Ok((f, r.members.clone()))
}

/// Reads one member from a source (positioned reads: a shared descriptor),
/// at most the in-memory member limit.
fn read_member(f: &std::fs::File, off: u64, len: u64, name: &str) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    if len > archive::max_member_inmem() {
        return Err(std::io::Error::other(format!(
            "member {name} is {len} bytes, more than dSort holds in memory at once (AIS_MAX_MEMBER_INMEM)"
        )));
    }
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, off)?;
    Ok(buf)
}

/// A `Write` that hands its bytes to a response body.
struct ChanWriter(tokio::sync::mpsc::Sender<std::io::Result<Bytes>>);

impl Write for ChanWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(b)))
            .map_err(|_| std::io::Error::other("receiver gone"))?;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `fetch`: the records asked for, as a tar of `RID/MEMBER` entries, one
/// member in memory at a time.
fn fetch(t: &Arc<Target>, job: &Arc<Job>, rids: Vec<u32>) -> Res {
    if job.aborted() {
        // With the reason: the asking target's error then names the cause.
        let why = job
            .state
            .lock()
            .map(|s| s.errors.join("; "))
            .unwrap_or_default();
        return Err(ApiError::Conflict(format!(
            "dsort job {} aborted on {}: {why}",
            job.plan.id, t.core.name
        )));
    }
    let mut located = Vec::with_capacity(rids.len());
    for rid in rids {
        located.push((rid, locate(job, rid)?));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    let node = t.core.name.clone();
    tokio::task::spawn_blocking(move || {
        let run = || -> std::io::Result<()> {
            let w = std::io::BufWriter::with_capacity(256 << 10, ChanWriter(tx.clone()));
            let mut b = tar::Builder::new(w);
            for (rid, (f, members)) in located {
                for (name, off, len) in members {
                    let data = read_member(&f, off, len, &name)?;
                    let mut h = tar::Header::new_gnu();
                    h.set_size(len);
                    h.set_mode(0o644);
                    h.set_mtime(0);
                    h.set_entry_type(tar::EntryType::Regular);
                    b.append_data(&mut h, format!("{rid}/{name}"), data.as_slice())?;
                }
            }
            b.into_inner()?.flush()
        };
        if let Err(e) = run() {
            tracing::warn!(node = %node, error = %e, "dsort: record fetch failed");
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    let mut r = axum::response::Response::new(Body::from_stream(stream));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/x-tar"),
    );
    Ok(r)
}

/// A shard being built: the archive writer and what it produced since the
/// last write of the shard (tar formats), or its spool file (zip).
struct Building {
    w: archive::Writer,
    pending: Vec<u8>,
    bytes: u64,
}

impl Building {
    fn add(&mut self, name: &str, data: &[u8]) -> std::io::Result<()> {
        self.w.add(name, data)?;
        let chunk = self.w.take();
        if self.pending.is_empty() {
            self.pending = chunk;
        } else {
            self.pending.extend_from_slice(&chunk);
        }
        self.bytes += data.len() as u64;
        Ok(())
    }
}

async fn create_all(t: &Arc<Target>, job: &Arc<Job>, shards: Vec<OutShard>) -> ApiResult<()> {
    use futures::StreamExt;
    let mut work = futures::stream::iter(shards.into_iter().map(|s| {
        let (t, job) = (t.clone(), job.clone());
        async move { create_one(&t, &job, s).await }
    }))
    .buffer_unordered(2);
    while let Some(r) = work.next().await {
        if job.aborted() {
            return Ok(());
        }
        r?;
    }
    Ok(())
}

struct Spool(PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Where a shard's bytes go: straight into the object's writer (tar
/// formats: stored like a PUT, visible only once whole), or a spool file
/// that is then stored (zip writes need to seek).
enum Sink {
    Object(Box<ais_storage::PutWriter>),
    Spool(PathBuf, Spool),
}

async fn create_one(t: &Arc<Target>, job: &Arc<Job>, shard: OutShard) -> ApiResult<()> {
    let plan = &job.plan;
    let dst = t.core.bck(plan.output_bck.clone());
    ais_core::names::validate_object_name(&shard.name)?;
    let kind = ArchKind::of(&format!("x{}", plan.output_ext))
        .ok_or_else(|| ApiError::bad_request(format!("output extension {}", plan.output_ext)))?;
    let io = |e: std::io::Error| {
        ApiError::internal(format!("{}: build {}: {e}", t.core.name, shard.name))
    };
    let serr = |e| crate::error::storage(&t.core.name, &dst, &shard.name, e);
    let _write = t.check_writable(&dst)?;
    let (w, mut sink) = if kind == ArchKind::Zip {
        let path = t
            .store
            .work_file(&dst, &shard.name, &format!("dsort-{}-out", plan.id));
        let file = std::fs::File::create(&path).map_err(io)?;
        let guard = Spool(path.clone());
        (
            archive::Writer::new(kind.out_fmt(), Some(file)).map_err(io)?,
            Sink::Spool(path, guard),
        )
    } else {
        (
            archive::Writer::new(kind.out_fmt(), None).map_err(io)?,
            Sink::Object(Box::new(
                super::objects::writer(t, &dst, &shard.name).await?,
            )),
        )
    };
    let mut b = Building {
        w,
        pending: Vec::new(),
        bytes: 0,
    };
    // Runs of consecutive records from one holder, fetched together, at
    // most BATCH_BYTES (or one record) in memory at a time.
    let mut i = 0;
    let recs = &shard.records;
    while i < recs.len() {
        if job.aborted() {
            return Ok(());
        }
        let holder = recs[i].0.clone();
        let (mut j, mut acc) = (i, 0u64);
        while j < recs.len()
            && recs[j].0 == holder
            && j - i < FETCH_BATCH
            && (j == i || acc + recs[j].2 <= BATCH_BYTES)
        {
            acc += recs[j].2;
            j += 1;
        }
        let rids: Vec<u32> = recs[i..j].iter().map(|r| r.1).collect();
        b = if holder == t.core.id {
            let mut located = Vec::with_capacity(rids.len());
            for rid in &rids {
                located.push(locate(job, *rid)?);
            }
            tokio::task::spawn_blocking(move || -> std::io::Result<Building> {
                for (f, members) in located {
                    for (name, off, len) in members {
                        let data = read_member(&f, off, len, &name)?;
                        b.add(&name, &data)?;
                    }
                }
                Ok(b)
            })
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(io)?
        } else {
            fetch_from(t, job, &holder, rids, b).await?
        };
        let chunk = std::mem::take(&mut b.pending);
        if let Sink::Object(w) = &mut sink {
            w.write(&chunk).await.map_err(serr)?;
        }
        i = j;
    }
    let (last, bytes) = tokio::task::spawn_blocking(move || -> std::io::Result<(Vec<u8>, u64)> {
        let Building { w, bytes, .. } = b;
        Ok((w.finish()?, bytes))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(io)?;
    // Nothing is stored for a job stopped meanwhile (the writer's temp file
    // goes with it).
    if job.aborted() {
        return Ok(());
    }
    match sink {
        Sink::Object(mut w) => {
            w.write(&last).await.map_err(serr)?;
            if t.commit_or_forward(&dst, &shard.name, *w, Default::default(), true)
                .await?
                .is_ok()
            {
                super::ec::protect(t, &dst, &shard.name).await?;
            }
        }
        Sink::Spool(path, _guard) => {
            super::jobs::put_to_owner(t, &dst.name, &shard.name, None, &path, Default::default())
                .await
                .map_err(|e| e.context(format!("store {}/{}", dst.cname(), shard.name)))?;
        }
    }
    if let Ok(mut s) = job.state.lock() {
        s.created += 1;
        s.created_bytes += bytes;
    }
    Ok(())
}

/// Streams records `rids` from `holder` into the shard being built,
/// checking that exactly those records came, in order.
async fn fetch_from(
    t: &Arc<Target>,
    job: &Arc<Job>,
    holder: &str,
    rids: Vec<u32>,
    mut b: Building,
) -> ApiResult<Building> {
    use futures::TryStreamExt;
    let node = t
        .core
        .meta
        .with_smap(|s| s.and_then(|s| s.tmap.get(holder).cloned()))
        .ok_or_else(|| {
            ApiError::unavailable(format!(
                "dsort job {}: target {holder} holding records is no longer in the cluster",
                job.plan.id
            ))
        })?;
    let resp = t
        .core
        .rpc
        .dsort_fetch(&crate::rpc::Dest::from(&node), &job.plan.id, &rids)
        .await
        .map_err(ApiError::from)?;
    let stream = resp.bytes_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let from = node.daemon_id.clone();
    tokio::task::spawn_blocking(move || -> ApiResult<Building> {
        let bad = |m: String| ApiError::internal(format!("dsort: records from {from}: {m}"));
        let mut a = tar::Archive::new(reader);
        let mut want = rids.iter();
        let mut current: Option<u32> = None;
        for e in a.entries().map_err(|e| bad(e.to_string()))? {
            let mut e = e.map_err(|e| bad(e.to_string()))?;
            let path = e
                .path()
                .map_err(|e| bad(e.to_string()))?
                .to_string_lossy()
                .to_string();
            let (rid, name) = path
                .split_once('/')
                .ok_or_else(|| bad(format!("unexpected entry {path}")))?;
            let rid: u32 = rid
                .parse()
                .map_err(|_| bad(format!("unexpected entry {path}")))?;
            if current != Some(rid) {
                if want.next() != Some(&rid) {
                    return Err(bad(format!("record {rid} out of order")));
                }
                current = Some(rid);
            }
            let size = e.size();
            if size > archive::max_member_inmem() {
                return Err(bad(format!("member {name} of {size} bytes is too large")));
            }
            let mut data = Vec::with_capacity(size as usize);
            (&mut e)
                .take(size)
                .read_to_end(&mut data)
                .map_err(|e| bad(e.to_string()))?;
            if data.len() as u64 != size {
                return Err(bad(format!("member {name} truncated")));
            }
            b.add(name, &data).map_err(|e| bad(e.to_string()))?;
        }
        if want.next().is_some() {
            return Err(bad("fewer records than asked for".into()));
        }
        Ok(b)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
}
