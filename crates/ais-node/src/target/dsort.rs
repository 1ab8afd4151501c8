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
use std::io::{Read, Seek, SeekFrom, Write};
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

pub struct Job {
    plan: Plan,
    started_ns: i64,
    aborted: AtomicBool,
    state: Mutex<State>,
    /// Record number → where its members are.
    records: Mutex<Vec<Local>>,
    spills: Mutex<Vec<PathBuf>>,
}

/// A member in a spill file: (name, offset, length).
type Spilled = (String, u64, u64);

/// A record's members in a spill file.
struct Local {
    spill: usize,
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

    fn aborted(&self) -> bool {
        self.aborted.load(Ordering::Relaxed)
    }

    fn remove_spills(&self) {
        if let Ok(mut s) = self.spills.lock() {
            for p in s.drain(..) {
                let _ = std::fs::remove_file(p);
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
                j.remove_spills();
                if let Ok(mut s) = j.state.lock() {
                    s.archived = true;
                    if s.finish_ns == 0 {
                        s.finish_ns = ais_core::now_ns();
                    }
                }
            }
            Ok(crate::http::empty(StatusCode::OK))
        }
        ("finish", &Method::POST) => {
            let j = t.dsorts.get(id).ok_or_else(|| not_found(t, id))?;
            j.remove_spills();
            if let Ok(mut s) = j.state.lock() {
                s.archived = true;
                if s.finish_ns == 0 {
                    s.finish_ns = ais_core::now_ns();
                }
            }
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
        spills: Mutex::new(Vec::new()),
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
            Ok(_) => {}
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
    let mine: Vec<String> = plan
        .inputs
        .iter()
        .filter(|n| {
            t.core
                .owner_with(&bck.obj_uname(n), |o| o.daemon_id == t.core.id)
                .unwrap_or(false)
        })
        .cloned()
        .collect();
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

/// One input shard into a spill file; `None` when it is missing and the
/// spec says to go on.
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
    if t.store.head(bck, name).await.is_err() {
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
    let src = t.store.obj_path(bck, name);
    let spill = t.store.work_file(bck, name, &format!("dsort-{}", plan.id));
    let spill_idx = {
        let mut s = job
            .spills
            .lock()
            .map_err(|_| ApiError::internal("poisoned"))?;
        s.push(spill.clone());
        s.len() - 1
    };
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
    type Extracted = (Vec<Local>, Vec<(String, u64, Option<ContentKey>)>, u64);
    let (locals, keys, bytes) = tokio::task::spawn_blocking(move || -> ApiResult<Extracted> {
        let io = |e: std::io::Error| ApiError::internal(format!("{node}: spill {cname}: {e}"));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&spill)
            .map_err(io)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        let mut off = 0u64;
        let mut by_key: HashMap<String, usize> = HashMap::new();
        let mut locals: Vec<Local> = Vec::new();
        let mut keys: Vec<(String, u64, Option<ContentKey>)> = Vec::new();
        let mut bad_key: Option<String> = None;
        archive::for_each_member(&src, kind, |mname, _size, r| {
            if job2.aborted() {
                return Err(std::io::Error::other("aborted"));
            }
            let key = ais_core::dsort::record_key(mname).to_string();
            let i = *by_key.entry(key.clone()).or_insert_with(|| {
                locals.push(Local {
                    spill: spill_idx,
                    members: Vec::new(),
                });
                keys.push((key, 0, None));
                locals.len() - 1
            });
            let mut ck: Option<Vec<u8>> = None;
            let n = match &content {
                Some((ext, _)) if mname.ends_with(ext.as_str()) => {
                    let mut buf = Vec::new();
                    let n = r.take(MAX_CONTENT_KEY + 1).read_to_end(&mut buf)? as u64;
                    w.write_all(&buf)?;
                    let rest = std::io::copy(r, &mut w)?;
                    ck = Some(buf);
                    n + rest
                }
                _ => std::io::copy(r, &mut w)?,
            };
            locals[i].members.push((mname.to_string(), off, n));
            keys[i].1 += n;
            if let (Some(raw), Some((_, ty))) = (ck, &content) {
                if raw.len() as u64 > MAX_CONTENT_KEY {
                    bad_key.get_or_insert(format!(
                        "{mname}: content key longer than {MAX_CONTENT_KEY} bytes"
                    ));
                } else {
                    match ContentKey::parse(&raw, *ty) {
                        Ok(k) => keys[i].2 = Some(k),
                        Err(e) => {
                            bad_key.get_or_insert(format!("{mname}: {e}"));
                        }
                    }
                }
            }
            off += n;
            Ok(())
        })
        .map_err(|e| ApiError::bad_request(format!("{cname}: {e}")))?;
        w.flush().map_err(io)?;
        w.get_ref().sync_data().map_err(io)?;
        if let Some(e) = bad_key {
            return Err(ApiError::bad_request(format!("{cname}: {e}")));
        }
        Ok((locals, keys, off))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    if let Algorithm::Content { extension, .. } = &plan.algorithm {
        if let Some((k, _, _)) = keys.iter().find(|k| k.2.is_none()) {
            return Err(ApiError::bad_request(format!(
                "{}/{name}: record \"{k}\" has no {extension} member to sort by (algorithm kind content)",
                bck.cname()
            )));
        }
    }
    let mut recs = job
        .records
        .lock()
        .map_err(|_| ApiError::internal("poisoned"))?;
    let first = recs.len();
    if first + locals.len() > u32::MAX as usize {
        return Err(ApiError::bad_request(
            "dsort: too many records on one target",
        ));
    }
    recs.extend(locals);
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

/// Where record `rid`'s members are: (spill path, members).
fn locate(job: &Job, rid: u32) -> ApiResult<(PathBuf, Vec<Spilled>)> {
    let recs = job
        .records
        .lock()
        .map_err(|_| ApiError::internal("poisoned"))?;
    let r = recs
        .get(rid as usize)
        .ok_or_else(|| ApiError::NotFound(format!("dsort job {}: no record {rid}", job.plan.id)))?;
    let spills = job
        .spills
        .lock()
        .map_err(|_| ApiError::internal("poisoned"))?;
    let p = spills
        .get(r.spill)
        .cloned()
        .ok_or_else(|| ApiError::Conflict(format!("dsort job {}: spills removed", job.plan.id)))?;
    Ok((p, r.members.clone()))
}

/// Reads one member from a spill file (at most the in-memory member limit).
fn read_member(f: &mut std::fs::File, off: u64, len: u64, name: &str) -> std::io::Result<Vec<u8>> {
    if len > archive::max_member_inmem() {
        return Err(std::io::Error::other(format!(
            "member {name} is {len} bytes, more than dSort holds in memory at once (AIS_MAX_MEMBER_INMEM)"
        )));
    }
    f.seek(SeekFrom::Start(off))?;
    let mut buf = vec![0u8; len as usize];
    f.read_exact(&mut buf)?;
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
            let mut files: HashMap<PathBuf, std::fs::File> = HashMap::new();
            for (rid, (path, members)) in located {
                if !files.contains_key(&path) {
                    files.insert(path.clone(), std::fs::File::open(&path)?);
                }
                let f = files
                    .get_mut(&path)
                    .ok_or_else(|| std::io::Error::other("spill"))?;
                for (name, off, len) in members {
                    let data = read_member(f, off, len, &name)?;
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

/// A shard being built: the archive writer and its spool file.
struct Building {
    w: archive::Writer,
    out: std::io::BufWriter<std::fs::File>,
    bytes: u64,
}

impl Building {
    fn add(&mut self, name: &str, data: &[u8]) -> std::io::Result<()> {
        self.w.add(name, data)?;
        let chunk = self.w.take();
        self.out.write_all(&chunk)?;
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

async fn create_one(t: &Arc<Target>, job: &Arc<Job>, shard: OutShard) -> ApiResult<()> {
    let plan = &job.plan;
    let dst = t.core.bck(plan.output_bck.clone());
    let kind = ArchKind::of(&format!("x{}", plan.output_ext))
        .ok_or_else(|| ApiError::bad_request(format!("output extension {}", plan.output_ext)))?;
    let spool = t
        .store
        .work_file(&dst, &shard.name, &format!("dsort-{}-out", plan.id));
    let _guard = Spool(spool.clone());
    let io = |e: std::io::Error| {
        ApiError::internal(format!("{}: build {}: {e}", t.core.name, shard.name))
    };
    let file = std::fs::File::create(&spool).map_err(io)?;
    let out = std::io::BufWriter::with_capacity(1 << 20, file.try_clone().map_err(io)?);
    let w = archive::Writer::new(kind.out_fmt(), Some(file)).map_err(io)?;
    let mut b = Building { w, out, bytes: 0 };
    // Runs of consecutive records from one holder, fetched together.
    let mut i = 0;
    let recs = &shard.records;
    while i < recs.len() {
        if job.aborted() {
            return Ok(());
        }
        let holder = recs[i].0.clone();
        let mut j = i;
        while j < recs.len() && recs[j].0 == holder && j - i < FETCH_BATCH {
            j += 1;
        }
        let rids: Vec<u32> = recs[i..j].iter().map(|r| r.1).collect();
        b = if holder == t.core.id {
            let mut located = Vec::with_capacity(rids.len());
            for rid in &rids {
                located.push(locate(job, *rid)?);
            }
            tokio::task::spawn_blocking(move || -> std::io::Result<Building> {
                let mut files: HashMap<PathBuf, std::fs::File> = HashMap::new();
                for (path, members) in located {
                    if !files.contains_key(&path) {
                        files.insert(path.clone(), std::fs::File::open(&path)?);
                    }
                    let f = files
                        .get_mut(&path)
                        .ok_or_else(|| std::io::Error::other("spill"))?;
                    for (name, off, len) in members {
                        let data = read_member(f, off, len, &name)?;
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
        i = j;
    }
    let b = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
        let Building { w, mut out, bytes } = b;
        let last = w.finish()?;
        out.write_all(&last)?;
        out.flush()?;
        Ok(bytes)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(io)?;
    if job.aborted() {
        return Ok(());
    }
    super::jobs::put_to_owner(t, &dst.name, &shard.name, None, &spool, Default::default())
        .await
        .map_err(|e| e.context(format!("store {}/{}", dst.cname(), shard.name)))?;
    if let Ok(mut s) = job.state.lock() {
        s.created += 1;
        s.created_bytes += b;
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
        let mut want = rids.iter().peekable();
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
