//! A target's S3 side, called only by the S3 front door (`crate::s3`) of
//! whichever node received the request (`/v1/internal/s3/...`):
//!
//! * `PUT obj/B/O`: store a streamed body like a native PUT (temp file,
//!   atomic commit, mirrors, erasure coding), hashing it with MD5 as it
//!   goes: the MD5 is the object's S3 `ETag` (kept in its custom metadata as
//!   `ETag`), a `Content-MD5` that does not match stores nothing
//!   (`BadDigest`), nor does a body shorter than announced.
//! * `mpu/B/O`: multipart uploads. An upload lives on the target that
//!   created it (its id names it) in `<mountpath>/.ais-s3-mpu/<upload id>/`:
//!   `upload.json` (bucket, key, metadata) and, per part, a data file plus
//!   `part-NNNNN.json` (size, MD5), each written to a temp name, fsynced and
//!   renamed, so a restart leaves only whole parts. Complete streams the
//!   listed parts, in order, into the object on its owner (here, or one
//!   streamed PUT to it) with S3's multipart ETag (`md5(part md5s)-N`), then
//!   removes the upload; Abort removes it.

use super::Target;
use crate::error::{self, ApiError, ApiResult};
use crate::http::{json_ok, read_json, Ctx, Res};
use crate::rpc::s3::{hex, CompleteReq, Part, Stored, Upload, ETAG_KEY, META_HEADER, SIZE_HEADER};
use ais_core::Bck;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Directory of multipart uploads on each mountpath.
const MPU_DIR: &str = ".ais-s3-mpu";
/// S3's smallest part (all but the last).
pub const MIN_PART: u64 = 5 << 20;

/// The smallest part (all but the last) this cluster accepts:
/// `AIS_S3_MIN_PART_SIZE` (bytes, 0 = any), default S3's [`MIN_PART`].
fn min_part() -> u64 {
    static MIN: OnceLock<u64> = OnceLock::new();
    *MIN.get_or_init(|| {
        std::env::var("AIS_S3_MIN_PART_SIZE")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(MIN_PART)
    })
}
/// S3's part numbers: 1..=10000.
pub const MAX_PART: u32 = 10_000;

fn s3err(status: StatusCode, code: &str, msg: impl Into<String>) -> ApiError {
    ApiError::Peer {
        status,
        tcode: code.to_string(),
        message: msg.into(),
    }
}

/// `/v1/internal/s3/WHAT/B[/O]`.
pub async fn internal(
    t: &Arc<Target>,
    ctx: &Ctx,
    what: &str,
    bucket: &str,
    obj: &str,
    body: Body,
) -> Res {
    let bck = ctx.bck(bucket)?;
    if let Err(e) = t.core.bucket_props(&bck) {
        // Created a moment ago: catch up once before saying 404.
        match crate::state::sync_now(t).await {
            Ok(true) => {
                t.core.bucket_props(&bck)?;
            }
            _ => return Err(e),
        }
    }
    let obj = crate::http::pct_decode(obj)?;
    let upload = ctx.query.get("uploadId").unwrap_or("");
    match (&ctx.method, what, obj.is_empty(), upload.is_empty()) {
        (&Method::PUT, "obj", false, _) => {
            ais_core::names::validate_object_name(&obj)?;
            put(t, ctx, &bck, &obj, body).await
        }
        (&Method::POST, "mpu", false, true) => {
            ais_core::names::validate_object_name(&obj)?;
            create(t, ctx, &bck, &obj).await
        }
        (&Method::PUT, "mpu", false, false) => {
            let n: u32 = ctx
                .query
                .get("partNumber")
                .and_then(|n| n.parse().ok())
                .filter(|n| (1..=MAX_PART).contains(n))
                .ok_or_else(|| {
                    s3err(
                        StatusCode::BAD_REQUEST,
                        "InvalidArgument",
                        format!("partNumber must be an integer from 1 to {MAX_PART}"),
                    )
                })?;
            put_part(t, ctx, upload, &bck, &obj, n, body).await
        }
        (&Method::POST, "mpu", false, false) => {
            let req: CompleteReq = read_json(body, 16 << 20, "complete request").await?;
            complete(t, upload, &bck, &obj, req, false).await
        }
        (&Method::DELETE, "mpu", false, false) => {
            let dir = upload_dir(t, upload, &bck, &obj).await?;
            let _busy = Busy::take(upload)?;
            remove_dir(&dir).await;
            json_ok(&true)
        }
        (&Method::GET, "mpu", false, false) => {
            let dir = upload_dir(t, upload, &bck, &obj).await?;
            let meta = read_upload(&dir).await?;
            json_ok(&(meta, parts(&dir).await?))
        }
        (&Method::GET, "mpu", true, _) => json_ok(&uploads(t, &bck).await),
        _ => Err(ctx.unknown_path()),
    }
}

fn header<'a>(ctx: &'a Ctx, name: &str) -> Option<&'a str> {
    ctx.headers.get(name).and_then(|v| v.to_str().ok())
}

/// S3 metadata by name.
type Meta = BTreeMap<String, String>;

/// The metadata the front door sent along (`Content-Type`, `x-amz-meta-*`).
fn meta_of(ctx: &Ctx) -> ApiResult<Meta> {
    use base64::Engine;
    let Some(raw) = header(ctx, META_HEADER) else {
        return Ok(BTreeMap::new());
    };
    base64::engine::general_purpose::STANDARD
        .decode(raw)
        .ok()
        .and_then(|j| serde_json::from_slice(&j).ok())
        .ok_or_else(|| ApiError::bad_request(format!("malformed {META_HEADER} header")))
}

/// The `Content-MD5` the client sent (16 bytes), if any.
fn content_md5(ctx: &Ctx) -> ApiResult<Option<Vec<u8>>> {
    use base64::Engine;
    match header(ctx, "content-md5") {
        None => Ok(None),
        Some(v) => base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .ok()
            .filter(|d| d.len() == 16)
            .map(Some)
            .ok_or_else(|| {
                s3err(
                    StatusCode::BAD_REQUEST,
                    "InvalidDigest",
                    "the Content-MD5 you specified is not valid",
                )
            }),
    }
}

/// After the whole body: the announced size and `Content-MD5` hold.
fn check_body(ctx: &Ctx, what: &str, size: u64, md5: &[u8]) -> ApiResult<()> {
    if let Some(n) = header(ctx, SIZE_HEADER).and_then(|v| v.parse::<u64>().ok()) {
        if n != size {
            return Err(s3err(
                StatusCode::BAD_REQUEST,
                "IncompleteBody",
                format!("{what}: received {size} of {n} bytes; nothing was stored"),
            ));
        }
    }
    if let Some(want) = content_md5(ctx)? {
        if want != md5 {
            return Err(s3err(
                StatusCode::BAD_REQUEST,
                "BadDigest",
                format!(
                    "{what}: the Content-MD5 you specified did not match what we received; nothing was stored"
                ),
            ));
        }
    }
    Ok(())
}

fn recv_err(what: &str, n: u64, e: impl std::fmt::Display) -> ApiError {
    s3err(
        StatusCode::BAD_REQUEST,
        "IncompleteBody",
        format!("{what}: failed to receive the body after {n} bytes ({e}); nothing was stored"),
    )
}

async fn put(t: &Arc<Target>, ctx: &Ctx, bck: &Bck, obj: &str, body: Body) -> Res {
    content_md5(ctx)?;
    let mut custom = meta_of(ctx)?;
    let what = format!("PUT {}/{obj}", bck.cname());
    let serr = |e| error::storage(&t.core.name, bck, obj, e);
    let _write = t.check_writable(bck)?;
    let mut w = super::objects::writer(t, bck, obj).await?;
    let mut md5 = Md5::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| recv_err(&what, w.written(), e))?;
        md5.update(&chunk);
        w.write(&chunk).await.map_err(serr)?;
    }
    let digest = md5.finalize();
    check_body(ctx, &what, w.written(), &digest)?;
    let etag = hex(&digest);
    custom.insert(ETAG_KEY.into(), etag.clone());
    let attrs = commit(t, bck, obj, w, custom).await?;
    json_ok(&Stored {
        etag,
        size: attrs.size,
        mtime_ns: attrs.mtime_ns,
    })
}

/// Commits (atomically), clears a recent delete, and makes the bucket's
/// erasure coding durable before the write is acknowledged.
async fn commit(
    t: &Arc<Target>,
    bck: &Bck,
    obj: &str,
    w: ais_storage::PutWriter,
    custom: Meta,
) -> ApiResult<ais_core::meta::ObjAttrs> {
    if super::remote::backend_of(t, bck)?.is_some() {
        // An s3:// bucket's object goes through to its backend (the copy
        // here is a cache: the backend is where it lives).
        let attrs = w
            .commit(custom)
            .await
            .map_err(|e| error::storage(&t.core.name, bck, obj, e))?;
        t.mark_deleted(&bck.obj_uname(obj), false);
        super::remote::push(t, bck, obj).await?;
        super::ec::protect(t, bck, obj).await?;
        return Ok(attrs);
    }
    let size = w.written();
    // The map may have given the name to another target while the body
    // arrived: it goes there ([`super::placement`]).
    match t.commit_or_forward(bck, obj, w, custom, true).await? {
        Ok(attrs) => {
            super::ec::protect(t, bck, obj).await?;
            Ok(attrs)
        }
        Err(Some(attrs)) => Ok(attrs),
        Err(None) => Ok(ais_core::meta::ObjAttrs {
            size,
            mtime_ns: ais_core::now_ns(),
            ..Default::default()
        }),
    }
}

// ------------------------------------------------------------ multipart

/// AIStore's native multipart upload on `/v1/objects/B/O` (the SDK's
/// `MultipartUpload`): `POST {action: mpt-upload}` answers an upload id,
/// `PUT ?uploadId=&partNumber=` stores a part, `POST ?uploadId=
/// {action: mpt-complete, value: [{part_number, etag}]}` assembles the
/// object, `DELETE ?uploadId= {action: mpt-abort}` drops it. The uploads are
/// the S3 front door's (same directory, same durability, same limits).
pub async fn native(
    t: &Arc<Target>,
    ctx: &Ctx,
    bck: &Bck,
    obj: &str,
    msg: Option<&ais_core::api::ActMsg>,
    body: Body,
) -> Res {
    let id = ctx.query.get("uploadId").unwrap_or("");
    match (&ctx.method, msg.map(|m| m.action.as_str())) {
        (&Method::POST, Some("mpt-upload")) => {
            ais_core::names::validate_object_name(obj)?;
            let up = create_upload(t, bck, obj, BTreeMap::new()).await?;
            Ok(crate::http::text_ok(&up.upload_id))
        }
        (&Method::PUT, None) => {
            let n: u32 = ctx
                .query
                .get("partNumber")
                .and_then(|n| n.parse().ok())
                .filter(|n| (1..=MAX_PART).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "partNumber must be an integer from 1 to {MAX_PART}"
                    ))
                })?;
            put_part(t, ctx, id, bck, obj, n, body).await
        }
        (&Method::POST, Some("mpt-complete")) => {
            #[derive(serde::Deserialize)]
            struct Done {
                // AIStore's `part-number` (the SDK's wire form).
                #[serde(rename = "part-number", alias = "part_number")]
                part_number: u32,
                #[serde(default)]
                etag: String,
            }
            let value = msg.map(|m| m.value.clone()).unwrap_or_default();
            let mut done: Vec<Done> = serde_json::from_value(value).map_err(|e| {
                ApiError::bad_request(format!(
                    "mpt-complete: expected a list of {{\"part-number\", \"etag\"}}: {e}"
                ))
            })?;
            if done.is_empty() {
                return Err(ApiError::bad_request("mpt-complete: no parts listed"));
            }
            if done.len() > MAX_PART as usize {
                return Err(ApiError::bad_request(format!(
                    "mpt-complete: at most {MAX_PART} parts"
                )));
            }
            done.sort_by_key(|d| d.part_number);
            if done.windows(2).any(|w| w[0].part_number == w[1].part_number) {
                return Err(ApiError::bad_request("mpt-complete: a part is listed twice"));
            }
            let req = CompleteReq {
                parts: done.into_iter().map(|d| (d.part_number, d.etag)).collect(),
            };
            complete(t, id, bck, obj, req, true).await
        }
        (&Method::DELETE, Some("mpt-abort") | None) => {
            let dir = upload_dir(t, id, bck, obj).await?;
            let _busy = Busy::take(id)?;
            remove_dir(&dir).await;
            Ok(crate::http::empty(StatusCode::OK))
        }
        (m, a) => Err(ApiError::bad_request(format!(
            "{m} with uploadId: unsupported action {} (multipart: POST mpt-upload, PUT a part, POST mpt-complete, DELETE mpt-abort)",
            a.map(|a| format!("\"{a}\"")).unwrap_or_else(|| "(none)".into())
        ))),
    }
}

/// Upload ids: `<random>_<target id>`, so any node can find the target.
pub fn upload_target(upload_id: &str) -> Option<&str> {
    upload_id.split_once('_').map(|(_, t)| t)
}

fn valid_upload_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Uploads being completed or aborted (the second caller gets a 409).
struct Busy(String);

impl Busy {
    fn set() -> &'static Mutex<HashSet<String>> {
        static BUSY: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
        BUSY.get_or_init(Default::default)
    }
    fn take(id: &str) -> ApiResult<Busy> {
        let mut s = Self::set()
            .lock()
            .map_err(|_| ApiError::internal("multipart upload registry poisoned"))?;
        if !s.insert(id.to_string()) {
            return Err(ApiError::Conflict(format!(
                "multipart upload {id} is being completed or aborted"
            )));
        }
        Ok(Busy(id.to_string()))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Ok(mut s) = Self::set().lock() {
            s.remove(&self.0);
        }
    }
}

fn io_err<'a>(t: &'a Target, what: &str) -> impl Fn(std::io::Error) -> ApiError + 'a {
    let what = what.to_string();
    move |e| {
        if error::is_no_space(&e) {
            ApiError::InsufficientStorage(format!("{}: {what}: {e}", t.core.name))
        } else {
            ApiError::internal(format!("{}: {what}: {e}", t.core.name))
        }
    }
}

/// Writes `data` to `dir/name` durably (temp, fsync, rename, fsync dir).
async fn write_durably(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".tmp-{}", ais_core::gen_id(12)));
    let res = async {
        use tokio::io::AsyncWriteExt;
        let mut f = tokio::fs::File::create(&tmp).await?;
        f.write_all(data).await?;
        f.sync_all().await?;
        tokio::fs::rename(&tmp, dir.join(name)).await?;
        tokio::fs::File::open(dir).await?.sync_all().await
    }
    .await;
    if res.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    res
}

async fn create(t: &Arc<Target>, ctx: &Ctx, bck: &Bck, obj: &str) -> Res {
    json_ok(&create_upload(t, bck, obj, meta_of(ctx)?).await?)
}

/// `meta`: the object's custom metadata; only the S3 front door (a node)
/// sets it: a client's header could name the cluster's own keys.
async fn create_upload(
    t: &Arc<Target>,
    bck: &Bck,
    obj: &str,
    meta: BTreeMap<String, String>,
) -> ApiResult<Upload> {
    let id = format!("{}_{}", ais_core::gen_id(24), t.core.id);
    if !valid_upload_id(&id) {
        return Err(ApiError::internal(format!(
            "{}: target id unusable in an upload id",
            t.core.name
        )));
    }
    let mps = t.store.mountpaths();
    let i = ais_core::hrw::select(&id, mps.iter().map(|m| m.digest)).unwrap_or(0);
    let mp = mps
        .get(i)
        .ok_or_else(|| ApiError::unavailable(format!("{}: no mountpaths", t.core.name)))?;
    let dir = mp.path.join(MPU_DIR).join(&id);
    let io = io_err(t, "create multipart upload");
    tokio::fs::create_dir_all(&dir).await.map_err(&io)?;
    let up = Upload {
        upload_id: id.clone(),
        bucket: bck.name.clone(),
        key: obj.to_string(),
        initiated_ns: ais_core::now_ns(),
        meta,
    };
    let raw = serde_json::to_vec(&up).map_err(|e| ApiError::internal(e.to_string()))?;
    if let Err(e) = write_durably(&dir, "upload.json", &raw).await {
        remove_dir(&dir).await;
        return Err(io(e));
    }
    Ok(up)
}

/// The directory of an upload of `bck/obj` held here.
async fn upload_dir(t: &Target, id: &str, bck: &Bck, obj: &str) -> ApiResult<PathBuf> {
    let none = || {
        s3err(
            StatusCode::NOT_FOUND,
            "NoSuchUpload",
            format!("the multipart upload {id} does not exist (or was completed or aborted)"),
        )
    };
    if !valid_upload_id(id) || upload_target(id) != Some(t.core.id.as_str()) {
        return Err(none());
    }
    for mp in t.store.mountpaths() {
        let dir = mp.path.join(MPU_DIR).join(id);
        if let Ok(up) = read_upload(&dir).await {
            if up.bucket == bck.name && up.key == obj {
                return Ok(dir);
            }
        }
    }
    Err(none())
}

async fn read_upload(dir: &Path) -> ApiResult<Upload> {
    let raw = tokio::fs::read(dir.join("upload.json"))
        .await
        .map_err(|e| ApiError::NotFound(format!("{}: {e}", dir.display())))?;
    serde_json::from_slice(&raw)
        .map_err(|e| ApiError::internal(format!("{}: malformed upload.json: {e}", dir.display())))
}

async fn remove_dir(dir: &Path) {
    if let Err(e) = tokio::fs::remove_dir_all(dir).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %dir.display(), error = %e, "failed to remove a multipart upload");
        }
    }
}

/// Part `n`'s record, if it was stored.
async fn part(dir: &Path, n: u32) -> Option<Part> {
    let raw = tokio::fs::read(dir.join(format!("part-{n:05}.json")))
        .await
        .ok()?;
    serde_json::from_slice(&raw).ok()
}

/// Every whole part of an upload, by number.
async fn parts(dir: &Path) -> ApiResult<Vec<Part>> {
    let mut out = Vec::new();
    let mut rd = tokio::fs::read_dir(dir)
        .await
        .map_err(|e| ApiError::internal(format!("{}: {e}", dir.display())))?;
    while let Ok(Some(e)) = rd.next_entry().await {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("part-") && name.ends_with(".json")) {
            continue;
        }
        if let Ok(raw) = tokio::fs::read(e.path()).await {
            if let Ok(p) = serde_json::from_slice::<Part>(&raw) {
                out.push(p);
            }
        }
    }
    out.sort_by_key(|p| p.number);
    Ok(out)
}

async fn put_part(
    t: &Arc<Target>,
    ctx: &Ctx,
    id: &str,
    bck: &Bck,
    obj: &str,
    n: u32,
    body: Body,
) -> Res {
    content_md5(ctx)?;
    let dir = upload_dir(t, id, bck, obj).await?;
    let what = format!("part {n} of upload {id} ({}/{obj})", bck.cname());
    let io = io_err(t, &what);
    let file = format!("data-{n:05}-{}", ais_core::gen_id(8));
    let path = dir.join(&file);
    // Removes the data file unless the part is recorded.
    struct Cleanup(Option<PathBuf>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            if let Some(p) = self.0.take() {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    let mut cleanup = Cleanup(Some(path.clone()));
    let mut f = tokio::fs::File::create(&path).await.map_err(&io)?;
    let mut md5 = Md5::new();
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    {
        use tokio::io::AsyncWriteExt;
        let mut buf = Vec::with_capacity(1 << 20);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| recv_err(&what, size, e))?;
            md5.update(&chunk);
            size += chunk.len() as u64;
            buf.extend_from_slice(&chunk);
            if buf.len() >= 1 << 20 {
                f.write_all(&buf).await.map_err(&io)?;
                buf.clear();
            }
        }
        f.write_all(&buf).await.map_err(&io)?;
        f.sync_all().await.map_err(&io)?;
    }
    let digest = md5.finalize();
    check_body(ctx, &what, size, &digest)?;
    let etag = hex(&digest);
    // The part this one replaces, if any: its own record only (reading
    // every part's made each UploadPart O(parts), the whole upload O(n²)).
    let old = part(&dir, n).await;
    let part = Part {
        number: n,
        size,
        etag: etag.clone(),
        mtime_ns: ais_core::now_ns(),
        file,
    };
    let raw = serde_json::to_vec(&part).map_err(|e| ApiError::internal(e.to_string()))?;
    if tokio::fs::metadata(dir.join("upload.json")).await.is_err() {
        // Aborted or completed meanwhile.
        return Err(s3err(
            StatusCode::NOT_FOUND,
            "NoSuchUpload",
            format!("the multipart upload {id} was completed or aborted"),
        ));
    }
    write_durably(&dir, &format!("part-{n:05}.json"), &raw)
        .await
        .map_err(&io)?;
    cleanup.0 = None;
    if let Some(old) = old.filter(|o| o.file != part.file) {
        let _ = tokio::fs::remove_file(dir.join(old.file)).await;
    }
    json_ok(&Stored {
        etag,
        size,
        mtime_ns: part.mtime_ns,
    })
}

/// The parts' bytes, in order, as one stream.
/// Each part's bytes are checked against what was recorded when it was
/// stored (size and MD5): a part damaged on disk since ends the stream
/// with an error, so the object is never assembled from it.
fn concat(
    parts: Vec<(PathBuf, Part)>,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures::stream::iter(parts)
        .then(|(path, part)| async move { (tokio::fs::File::open(path).await, part) })
        .map(|(r, part)| match r {
            Ok(f) => {
                let seen = Arc::new(Mutex::new((Md5::new(), 0u64)));
                let s2 = seen.clone();
                let data = tokio_util::io::ReaderStream::with_capacity(f, 1 << 20).inspect(
                    move |c| {
                        if let (Ok(c), Ok(mut s)) = (c, s2.lock()) {
                            s.0.update(c);
                            s.1 += c.len() as u64;
                        }
                    },
                );
                let check = futures::stream::once(async move {
                    let (md5, n) = match seen.lock() {
                        Ok(mut s) => (std::mem::take(&mut s.0).finalize(), s.1),
                        Err(_) => return Some(Err(std::io::Error::other("part check poisoned"))),
                    };
                    if n != part.size || hex(&md5) != part.etag {
                        return Some(Err(std::io::Error::other(format!(
                            "part {} is damaged on disk ({n} bytes with MD5 {}; stored: {} bytes, {})",
                            part.number,
                            hex(&md5),
                            part.size,
                            part.etag
                        ))));
                    }
                    None
                })
                .filter_map(|r| async move { r });
                data.chain(check).left_stream()
            }
            Err(e) => futures::stream::once(async move { Err(e) }).right_stream(),
        })
        .flatten()
}

/// Completes an upload with the listed parts. `native` (AIStore's
/// `mpt-complete`): parts named by number alone (an empty ETag is any) and
/// of any size; S3's rules otherwise.
async fn complete(
    t: &Arc<Target>,
    id: &str,
    bck: &Bck,
    obj: &str,
    req: CompleteReq,
    native: bool,
) -> Res {
    let dir = upload_dir(t, id, bck, obj).await?;
    let _busy = Busy::take(id)?;
    let up = read_upload(&dir).await?;
    // By number: the request's list is checked in one pass (O(parts)).
    let have: std::collections::HashMap<u32, Part> = parts(&dir)
        .await?
        .into_iter()
        .map(|p| (p.number, p))
        .collect();
    if req.parts.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(s3err(
            StatusCode::BAD_REQUEST,
            "InvalidPartOrder",
            "the list of parts was not in ascending order",
        ));
    }
    let mut chosen = Vec::with_capacity(req.parts.len());
    for (i, (n, etag)) in req.parts.iter().enumerate() {
        let p = have
            .get(n)
            .filter(|p| p.etag == etag.trim_matches('"') || (native && etag.is_empty()))
            .ok_or_else(|| {
                s3err(
                    StatusCode::BAD_REQUEST,
                    "InvalidPart",
                    format!("part {n} (ETag {etag}) was not uploaded to {id}"),
                )
            })?;
        let min = if native { 0 } else { min_part() };
        if p.size < min && i + 1 < req.parts.len() {
            return Err(s3err(
                StatusCode::BAD_REQUEST,
                "EntityTooSmall",
                format!(
                    "part {n} is {} bytes; every part but the last must be at least {min}",
                    p.size
                ),
            ));
        }
        chosen.push(p.clone());
    }
    let mut md5 = Md5::new();
    for p in &chosen {
        let raw: Vec<u8> = (0..p.etag.len() / 2)
            .filter_map(|i| u8::from_str_radix(&p.etag[2 * i..2 * i + 2], 16).ok())
            .collect();
        md5.update(&raw);
    }
    let etag = format!("{}-{}", hex(&md5.finalize()), chosen.len());
    let size: u64 = chosen.iter().map(|p| p.size).sum();
    let mut custom = up.meta.clone();
    custom.insert(ETAG_KEY.into(), etag.clone());
    let paths: Vec<(PathBuf, Part)> = chosen
        .iter()
        .map(|p| (dir.join(&p.file), p.clone()))
        .collect();
    let _write = t.check_writable(bck)?;
    // Assembled here; committed here if this target owns the name, else
    // sent to its owner (the map changed since the upload began), with
    // retries while the maps settle ([`super::placement`]).
    let mtime_ns = {
        let serr = |e| error::storage(&t.core.name, bck, obj, e);
        let mut w = super::objects::writer(t, bck, obj).await?;
        let mut s = std::pin::pin!(concat(paths));
        let io = |e: std::io::Error| {
            ApiError::internal(format!(
                "{}: completing upload {id} of {}/{obj}: {e}; nothing was stored",
                t.core.name,
                bck.cname()
            ))
        };
        while let Some(chunk) = s.next().await {
            w.write(&chunk.map_err(&io)?).await.map_err(serr)?;
        }
        commit(t, bck, obj, w, custom).await?.mtime_ns
    };
    remove_dir(&dir).await;
    json_ok(&Stored {
        etag,
        size,
        mtime_ns,
    })
}

/// Every upload of `bck` held here.
async fn uploads(t: &Target, bck: &Bck) -> Vec<Upload> {
    let mut out = Vec::new();
    for mp in t.store.mountpaths() {
        let Ok(mut rd) = tokio::fs::read_dir(mp.path.join(MPU_DIR)).await else {
            continue;
        };
        while let Ok(Some(e)) = rd.next_entry().await {
            if let Ok(up) = read_upload(&e.path()).await {
                if up.bucket == bck.name {
                    out.push(up);
                }
            }
        }
    }
    out
}

/// Pending multipart uploads are removed after this many hours
/// (`AIS_S3_MPU_TTL_HOURS`, default 168 = 7 days), as S3 lifecycle rules
/// abort incomplete uploads.
fn upload_ttl() -> std::time::Duration {
    static H: OnceLock<u64> = OnceLock::new();
    let h = *H.get_or_init(|| {
        std::env::var("AIS_S3_MPU_TTL_HOURS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(168)
    });
    std::time::Duration::from_secs(h * 3600)
}

/// Removes the pending uploads held here whose bucket is gone or that are
/// older than [`upload_ttl`], and the directories of creates that died
/// before writing their `upload.json` (after an hour); skips uploads being
/// completed or aborted. Returns how many were removed.
pub async fn sweep_uploads(t: &Target) -> usize {
    let bmd = t.core.meta.bmd();
    let now = ais_core::now_ns();
    let ttl = upload_ttl().as_nanos() as i64;
    let mut removed = 0;
    for mp in t.store.mountpaths() {
        let Ok(mut rd) = tokio::fs::read_dir(mp.path.join(MPU_DIR)).await else {
            continue;
        };
        while let Ok(Some(e)) = rd.next_entry().await {
            let dir = e.path();
            let id = e.file_name().to_string_lossy().into_owned();
            let stale = match read_upload(&dir).await {
                Ok(up) => !bmd.buckets.contains_key(&up.bucket) || now - up.initiated_ns > ttl,
                Err(_) => e
                    .metadata()
                    .await
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age > std::time::Duration::from_secs(3600)),
            };
            if !stale {
                continue;
            }
            let Ok(_busy) = Busy::take(&id) else {
                continue;
            };
            remove_dir(&dir).await;
            removed += 1;
            tracing::info!(upload = %id, "removed a stale multipart upload");
        }
    }
    removed
}

/// Sweeps stale uploads now and every 10 minutes (once per process).
pub fn start_sweeper(t: &Arc<Target>) {
    static STARTED: OnceLock<()> = OnceLock::new();
    if STARTED.set(()).is_err() {
        return;
    }
    let t = Arc::downgrade(t);
    tokio::spawn(async move {
        loop {
            let Some(t) = t.upgrade() else { return };
            sweep_uploads(&t).await;
            drop(t);
            tokio::time::sleep(std::time::Duration::from_secs(600)).await;
        }
    });
}
