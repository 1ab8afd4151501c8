//! Get-Batch (`GET /v1/ml/moss[/BUCKET]`, AIStore's "MOSS" API) on the
//! designated target the proxy redirected the request to: items (objects,
//! shard members, byte ranges — optionally transformed by an ETL on the
//! target that stores them) are fetched from their owners in parallel
//! within a bounded window and written to one archive in request order.
//!
//! Two delivery modes, as the SDK expects: streaming (`strm`, the
//! default: the archive itself, sent as it is built; a failure after the
//! first byte aborts the response, so a client never takes a short archive
//! for a complete one), and multipart (a JSON `MossResp` part with every
//! item's outcome, then the archive, spooled to a temp file first).

use super::archive::ArchSpec;
use super::Target;
use crate::error::{ApiError, ApiResult};
use crate::http::{read_json, Ctx, Res};
use crate::rpc::Dest;
use ais_core::Bck;
use ais_storage::archive::{OutFmt as Fmt, Writer};
use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::sync::Arc;

/// Items fetched ahead of the one being written.
const WINDOW: usize = 32;
/// Items per request at most.
const MAX_ITEMS: usize = 100_000;
/// Name prefix of items that failed under `coer` (as the SDK expects).
const MISSING_DIR: &str = "__404__";

#[derive(Debug, Clone, Deserialize)]
pub struct MossIn {
    #[serde(rename = "objname")]
    pub obj_name: String,
    #[serde(default)]
    pub bucket: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub uname: Option<String>,
    #[serde(default)]
    pub opaque: Option<String>,
    #[serde(default)]
    pub archpath: Option<String>,
    #[serde(default)]
    pub start: Option<i64>,
    #[serde(default)]
    pub length: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct MossReq {
    #[serde(rename = "in", default)]
    pub items: Vec<MossIn>,
    #[serde(default)]
    pub mime: Option<String>,
    #[serde(default)]
    pub coer: Option<bool>,
    #[serde(default)]
    pub onob: Option<bool>,
    #[serde(default)]
    pub strm: Option<bool>,
    #[serde(default)]
    pub coloc: Option<i64>,
    /// Beyond AIStore: transform every item with this ETL on its owner.
    #[serde(default)]
    pub etl_name: Option<String>,
    #[serde(default)]
    pub etl_args: Option<String>,
    /// ETLs applied after `etl_name`, in order (also `etl_pipeline=b,c`).
    #[serde(default)]
    pub etl_pipeline: Option<Vec<String>>,
}

/// The transform every item of a Get-Batch goes through.
struct EtlReq {
    name: String,
    args: String,
    stages: Vec<String>,
    /// `stages` as the query parameter carries them.
    joined: String,
}

#[derive(Debug, Clone, Serialize)]
struct MossOut {
    #[serde(rename = "objname")]
    obj_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    archpath: String,
    bucket: String,
    provider: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    opaque: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    err_msg: String,
    size: u64,
}

fn parse_fmt(m: Option<&str>) -> ApiResult<Fmt> {
    match m.unwrap_or("").trim_start_matches('.') {
        "" | "tar" => Ok(Fmt::Tar),
        "tgz" | "tar.gz" => Ok(Fmt::TarGz),
        "tar.lz4" => Ok(Fmt::TarLz4),
        "zip" => Ok(Fmt::Zip),
        other => Err(ApiError::bad_request(format!(
            "unsupported Get-Batch output format \"{other}\" (supported: .tar, .tgz, .tar.gz, .tar.lz4, .zip)"
        ))),
    }
}

fn writer(fmt: Fmt, spool: Option<std::fs::File>) -> ApiResult<Writer> {
    Writer::new(fmt, spool).map_err(|e| ApiError::internal(format!("archive: {e}")))
}

fn add(w: &mut Writer, name: &str, data: &[u8]) -> ApiResult<()> {
    w.add(name, data)
        .map_err(|e| ApiError::internal(format!("archive {name}: {e}")))
}

fn finish(w: Writer) -> ApiResult<Vec<u8>> {
    w.finish()
        .map_err(|e| ApiError::internal(format!("finish archive: {e}")))
}

/// An item resolved against the request's defaults.
struct Item {
    bck: Bck,
    obj: String,
    arch: Option<String>,
    range: Option<(u64, Option<u64>)>,
    /// Returned unchanged in the item's `MossOut`.
    opaque: Option<String>,
}

fn resolve(t: &Target, req: &MossReq, default_bck: &str) -> ApiResult<Vec<Item>> {
    if req.items.is_empty() {
        return Err(ApiError::bad_request(
            "Get-Batch request has no items (\"in\" is empty)",
        ));
    }
    if req.items.len() > MAX_ITEMS {
        return Err(ApiError::bad_request(format!(
            "Get-Batch request has {} items; at most {MAX_ITEMS} per request",
            req.items.len()
        )));
    }
    let mut out = Vec::with_capacity(req.items.len());
    for (i, m) in req.items.iter().enumerate() {
        let (bucket, obj) = match &m.uname {
            Some(u) if !u.is_empty() => {
                let (b, o) = Bck::parse_uname(u)?;
                (b.name, o)
            }
            _ => (
                m.bucket
                    .clone()
                    .filter(|b| !b.is_empty())
                    .unwrap_or_else(|| default_bck.to_string()),
                m.obj_name.clone(),
            ),
        };
        if bucket.is_empty() {
            return Err(ApiError::bad_request(format!(
                "Get-Batch item {i} ({}) names no bucket and the request has none",
                m.obj_name
            )));
        }
        let named = Bck::validated(&bucket, m.provider.as_deref().filter(|p| !p.is_empty()))
            .map_err(|e| ApiError::bad_request(format!("Get-Batch item {i}: {e}")))?;
        ais_core::names::validate_object_name(&obj)?;
        let bck = t.core.bck(bucket);
        if named.is_remote() && bck.provider != named.provider {
            return Err(ApiError::bucket_not_found(&named));
        }
        let start = m.start.unwrap_or(0);
        let range = match (start, m.length) {
            (s, _) if s < 0 => {
                return Err(ApiError::bad_request(format!("Get-Batch item {i}: negative start {s}")))
            }
            (0, None) | (0, Some(0)) => None,
            (s, Some(-1)) => Some((s as u64, None)),
            (s, Some(l)) if l > 0 => Some((s as u64, Some(l as u64))),
            (s, l) => {
                return Err(ApiError::bad_request(format!(
                    "Get-Batch item {i}: invalid byte range start={s} length={l:?} (length must be > 0, or -1 to read to the end)"
                )))
            }
        };
        out.push(Item {
            bck,
            obj,
            arch: m.archpath.clone().filter(|a| !a.is_empty()),
            range,
            opaque: m.opaque.clone(),
        });
    }
    Ok(out)
}

/// The name an item gets in the archive.
fn member_name(it: &Item, onob: bool) -> String {
    let mut n = if onob {
        it.obj.clone()
    } else {
        format!("{}/{}", it.bck.name, it.obj)
    };
    if let Some(a) = &it.arch {
        n.push('/');
        n.push_str(a.trim_start_matches('/'));
    }
    n
}

fn slice(data: bytes::Bytes, r: Option<(u64, Option<u64>)>) -> ApiResult<bytes::Bytes> {
    let Some((s, l)) = r else {
        return Ok(data);
    };
    let len = data.len() as u64;
    if s > len {
        return Err(ApiError::RangeNotSatisfiable(format!(
            "range start {s} is past the end ({len} bytes)"
        )));
    }
    let e = l.map(|l| (s + l).min(len)).unwrap_or(len);
    Ok(data.slice(s as usize..e as usize))
}

/// One whole object's bytes, fetched where it lives (archive jobs).
pub(super) async fn fetch_object(
    t: &Arc<Target>,
    bck: &Bck,
    obj: &str,
) -> ApiResult<Option<bytes::Bytes>> {
    let it = Item {
        bck: bck.clone(),
        obj: obj.to_string(),
        arch: None,
        range: None,
        opaque: None,
    };
    fetch(t, &it, None).await
}

/// One item's bytes, fetched where it lives. `Ok(None)`: it does not exist.
async fn fetch(
    t: &Arc<Target>,
    it: &Item,
    etl: Option<&EtlReq>,
) -> ApiResult<Option<bytes::Bytes>> {
    t.core.bucket_props(&it.bck)?;
    let owner = t
        .core
        .owner(&it.bck.obj_uname(&it.obj))
        .ok_or_else(|| ApiError::unavailable("no targets in the cluster map"))?;
    if owner.daemon_id == t.core.id {
        return fetch_local(t, it, etl).await;
    }
    let mut q: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = &it.arch {
        q.push(("archpath", a));
    }
    if let Some(e) = etl {
        q.push(("etl_name", &e.name));
        if !e.args.is_empty() {
            q.push(("etl_args", &e.args));
        }
        if !e.joined.is_empty() {
            q.push(("etl_pipeline", &e.joined));
        }
    }
    // A plain object's range is cut by its owner; a member's here.
    let (range, cut_here) = match it.range {
        Some((s, l)) if it.arch.is_none() && etl.is_none() => (
            Some(match l {
                Some(l) => format!("bytes={s}-{}", s + l - 1),
                None => format!("bytes={s}-"),
            }),
            false,
        ),
        _ => (None, true),
    };
    let got = t
        .core
        .rpc
        .batch_item(&Dest::from(&owner), &it.bck.name, &it.obj, &q, range)
        .await
        .map_err(|e| ApiError::from(e).context(format!("{}/{}", it.bck.cname(), it.obj)))?;
    match got {
        Some(b) if cut_here => slice(b, it.range).map(Some),
        other => Ok(other),
    }
}

async fn fetch_local(
    t: &Arc<Target>,
    it: &Item,
    etl: Option<&EtlReq>,
) -> ApiResult<Option<bytes::Bytes>> {
    let missing = |e: &ApiError| e.status() == StatusCode::NOT_FOUND;
    let data = match &it.arch {
        Some(a) => {
            match super::archive::member_bytes(t, &it.bck, &it.obj, &ArchSpec::Path(a.clone()))
                .await
            {
                Ok((_, b)) => bytes::Bytes::from(b),
                Err(e) if missing(&e) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        None => match t.verified_bytes(&it.bck, &it.obj).await {
            Ok(b) => b,
            Err(e) if missing(&e) => return Ok(None),
            Err(e) => return Err(e),
        },
    };
    let data = match etl {
        Some(e) => {
            let rt = t
                .etl
                .get(&e.name)
                .ok_or_else(|| ApiError::etl_not_found(&t.core.name, &e.name))?;
            let cname = format!("{}/{}", it.bck.cname(), it.obj);
            let first = (!e.stages.is_empty()).then_some(1);
            let out = rt
                .transform_bytes(&cname, &data, &e.args)
                .await
                .map_err(|err| {
                    super::etl::stage_error(&t.core.name, &e.name, first, &cname, err)
                })?;
            super::etl::run_stages(t, &e.stages, &cname, out, &e.args).await?
        }
        None => data,
    };
    slice(data, it.range).map(Some)
}

/// `GET /v1/ml/moss[/BUCKET]` on the designated target.
pub async fn serve(t: &Arc<Target>, ctx: &Ctx, bucket: &str, body: Body) -> Res {
    let mut req: MossReq = read_json(body, 64 << 20, "Get-Batch request").await?;
    if let Some(n) = ctx.query.get("etl_name").filter(|n| !n.is_empty()) {
        req.etl_name = Some(n.to_string());
    }
    if let Some(a) = ctx.query.get("etl_args") {
        req.etl_args = Some(a.to_string());
    }
    // The query's pipeline (checked like a GET's; the body's etl_name may
    // be its first ETL), or the request's own list; not both.
    if ctx
        .query
        .0
        .iter()
        .filter(|(k, _)| k == "etl_pipeline")
        .count()
        > 1
    {
        return Err(ApiError::bad_request(
            "query parameter \"etl_pipeline\" given more than once",
        ));
    }
    let from_query = crate::http::parse_etl_pipeline(ctx.query.get("etl_pipeline"))?;
    if !from_query.is_empty() {
        if req.etl_pipeline.as_ref().is_some_and(|p| !p.is_empty()) {
            return Err(ApiError::bad_request(
                "etl_pipeline given both in the query and in the request: give one",
            ));
        }
        req.etl_pipeline = Some(from_query);
    }
    let fmt = parse_fmt(req.mime.as_deref())?;
    let items = resolve(t, &req, bucket)?;
    if let Some(e) = &req.etl_name {
        if !t.core.meta.etlmd().etls.contains_key(e) {
            return Err(ApiError::etl_not_found(&t.core.name, e));
        }
    }
    let coer = req.coer.unwrap_or(false);
    let onob = req.onob.unwrap_or(false);
    let want_stream = req.strm.unwrap_or(true);
    // Zip needs a seekable file: spooled even when streaming was asked.
    let streaming = want_stream && fmt != Fmt::Zip;
    let stages = req.etl_pipeline.clone().unwrap_or_default();
    if !stages.is_empty() {
        if req.etl_name.is_none() {
            return Err(ApiError::bad_request(
                "etl_pipeline names the stages after the first ETL: it needs etl_name",
            ));
        }
        crate::http::check_etl_stages(&stages)?;
        for s in &stages {
            if !t.core.meta.etlmd().etls.contains_key(s) {
                return Err(ApiError::etl_not_found(&t.core.name, s));
            }
        }
    }
    let etl = req.etl_name.clone().map(|name| {
        Arc::new(EtlReq {
            name,
            args: req.etl_args.clone().unwrap_or_default(),
            joined: stages.join(","),
            stages,
        })
    });
    let t2 = t.clone();
    let items = Arc::new(items);
    let results = {
        let items = items.clone();
        futures::stream::iter(0..items.len())
            .map(move |i| {
                let (t, items, etl) = (t2.clone(), items.clone(), etl.clone());
                async move { fetch(&t, &items[i], etl.as_deref()).await }
            })
            .buffered(WINDOW)
    };
    let node = t.core.name.clone();
    if streaming {
        return stream_archive(node, fmt, items, results, coer, onob).await;
    }
    spooled(t, fmt, items, results, coer, onob, !want_stream).await
}

fn outcome(
    it: &Item,
    r: ApiResult<Option<bytes::Bytes>>,
    coer: bool,
    onob: bool,
) -> ApiResult<(String, bytes::Bytes, String)> {
    let name = member_name(it, onob);
    let err = match r {
        Ok(Some(b)) => return Ok((name, b, String::new())),
        Ok(None) => ApiError::NotFound(format!(
            "{}/{}{} does not exist",
            it.bck.cname(),
            it.obj,
            it.arch
                .as_ref()
                .map(|a| format!(" (archpath {a})"))
                .unwrap_or_default()
        )),
        Err(e) => e,
    };
    if coer {
        Ok((
            format!("{MISSING_DIR}/{name}"),
            bytes::Bytes::new(),
            err.to_string(),
        ))
    } else {
        Err(err.context(format!("Get-Batch item {}", member_name(it, false))))
    }
}

async fn stream_archive(
    node: String,
    fmt: Fmt,
    items: Arc<Vec<Item>>,
    results: impl futures::Stream<Item = ApiResult<Option<bytes::Bytes>>> + Send + 'static,
    coer: bool,
    onob: bool,
) -> Res {
    let mut results = Box::pin(results);
    let mut w = writer(fmt, None)?;
    // The first item decides the status: an error before any byte is sent
    // is an ordinary error response.
    let first = results.next().await.unwrap_or(Ok(None));
    let (name, data, _) = outcome(&items[0], first, coer, onob)?;
    add(&mut w, &name, &data)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(8);
    let head = w.take();
    tokio::spawn(async move {
        let _ = tx.send(Ok(bytes::Bytes::from(head))).await;
        let mut i = 1;
        while let Some(r) = results.next().await {
            let res = outcome(&items[i], r, coer, onob).and_then(|(n, d, _)| add(&mut w, &n, &d));
            if let Err(e) = res {
                tracing::warn!(%node, error = %e, "Get-Batch aborted mid-stream");
                // Aborts the response: the client sees a broken stream,
                // never a short archive that looks complete.
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                return;
            }
            i += 1;
            let chunk = w.take();
            if !chunk.is_empty() && tx.send(Ok(bytes::Bytes::from(chunk))).await.is_err() {
                return; // client went away
            }
        }
        match finish(w) {
            Ok(last) => {
                let _ = tx.send(Ok(bytes::Bytes::from(last))).await;
            }
            Err(e) => {
                let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
            }
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(fmt.mime()));
    Ok(r)
}

/// Multipart mode (or zip): the archive is spooled to a temp file on this
/// target, then sent after the JSON `MossResp` describing every item.
async fn spooled(
    t: &Arc<Target>,
    fmt: Fmt,
    items: Arc<Vec<Item>>,
    results: impl futures::Stream<Item = ApiResult<Option<bytes::Bytes>>> + Send + 'static,
    coer: bool,
    onob: bool,
    multipart: bool,
) -> Res {
    let mut results = Box::pin(results);
    let path = t.store.work_file(&Bck::ais("moss"), "batch", "moss");
    let guard = SpoolFile(path.clone());
    let io = |e: std::io::Error| ApiError::internal(format!("spool Get-Batch archive: {e}"));
    let file = std::fs::File::create(&path).map_err(io)?;
    let mut w = writer(fmt, Some(file.try_clone().map_err(io)?))?;
    let mut spool = std::io::BufWriter::new(file);
    let mut outs = Vec::with_capacity(items.len());
    let mut i = 0;
    while let Some(r) = results.next().await {
        let it = &items[i];
        let (name, data, err) = outcome(it, r, coer, onob)?;
        add(&mut w, &name, &data)?;
        if fmt != Fmt::Zip {
            spool.write_all(&w.take()).map_err(io)?;
        }
        outs.push(MossOut {
            obj_name: it.obj.clone(),
            archpath: it.arch.clone().unwrap_or_default(),
            bucket: it.bck.name.clone(),
            provider: "ais".into(),
            opaque: it.opaque.clone(),
            err_msg: err,
            size: data.len() as u64,
        });
        i += 1;
    }
    let last = finish(w)?;
    if fmt != Fmt::Zip {
        spool.write_all(&last).map_err(io)?;
    }
    spool.flush().map_err(io)?;
    drop(spool);
    if !multipart {
        let f = tokio::fs::File::open(&path).await.map_err(io)?;
        drop(guard);
        let mut r = Response::new(Body::from_stream(
            tokio_util::io::ReaderStream::with_capacity(f, 1 << 20),
        ));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(fmt.mime()));
        return Ok(r);
    }
    let meta = serde_json::json!({ "out": outs, "uuid": ais_core::gen_id(10) });
    let boundary = format!("ais-moss-{}", ais_core::gen_id(16));
    let head = format!(
        "--{boundary}\r\nContent-Type: application/json\r\n\r\n{meta}\r\n--{boundary}\r\nContent-Type: {}\r\n\r\n",
        fmt.mime()
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let f = tokio::fs::File::open(&path).await.map_err(io)?;
    // The spool file is unlinked now; the open handle keeps it readable.
    drop(guard);
    let file_stream = tokio_util::io::ReaderStream::with_capacity(f, 1 << 20);
    let stream =
        futures::stream::once(async move { Ok::<_, std::io::Error>(bytes::Bytes::from(head)) })
            .chain(file_stream)
            .chain(futures::stream::once(async move {
                Ok(bytes::Bytes::from(tail))
            }));
    let mut r = Response::new(Body::from_stream(stream));
    if let Ok(v) = HeaderValue::from_str(&format!("multipart/mixed; boundary={boundary}")) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(r)
}

struct SpoolFile(std::path::PathBuf);

impl Drop for SpoolFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
