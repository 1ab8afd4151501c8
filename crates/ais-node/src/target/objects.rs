//! Object verbs on a target: GET (plain, range, or through an ETL), HEAD,
//! PUT (streamed to a temp file, then atomically renamed), DELETE, and the
//! single-object copy/transform into another bucket (`object_to`).

use super::Target;
use crate::error::{self, ApiError, ApiResult};
use crate::http::{empty, Ctx, Res};
use ais_core::api::PropSet;
use ais_core::meta::{BucketProps, ObjAttrs};
use ais_core::Bck;
use ais_storage::{ObjBody, ObjInfo, StorageError};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use std::sync::Arc;

pub async fn object(t: &Arc<Target>, ctx: &Ctx, bucket: &str, obj: &str, body: Body) -> Res {
    let (bck, obj) = ctx.bck_obj(bucket, obj)?;
    let props = match t.core.bucket_props(&bck) {
        Ok(p) => p,
        // Redirected here by a proxy, or sent by another target (a
        // rebalance move), that may know more (a bucket created, or this
        // target just joined): catch up once before saying 404.
        Err(e) if ctx.query.get("pid").is_some() || ctx.query.get("ais_hop").is_some() => {
            match crate::state::sync_now(t).await {
                Ok(true) => t.core.bucket_props(&bck)?,
                _ => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    if matches!(ctx.method, Method::GET | Method::HEAD) {
        super::lifecycle::note_read(&bck.name);
    }
    match ctx.method {
        Method::GET => get(t, ctx, &bck, &obj, &props).await,
        Method::HEAD => head(t, ctx, &bck, &obj).await,
        Method::PUT => put(t, ctx, &bck, &obj, body).await,
        Method::DELETE => delete(t, ctx, &bck, &obj, body).await,
        Method::PATCH => set_custom(t, ctx, &bck, &obj, body).await,
        Method::POST => post(t, ctx, &bck, &obj, body).await,
        _ => {
            let what = format!("{} of an object", ctx.method);
            ctx.query.reject_unknown(&what, &[])?;
            Err(ctx.not_allowed())
        }
    }
}

fn storage_err(t: &Target, bck: &Bck, obj: &str, e: StorageError) -> ApiError {
    error::storage(&t.core.name, bck, obj, e)
}

async fn get(t: &Arc<Target>, ctx: &Ctx, bck: &Bck, obj: &str, props: &BucketProps) -> Res {
    ctx.query
        .reject_unknown("GET of an object", crate::http::GET_OBJECT_PARAMS)?;
    let stages = ctx.etl_pipeline()?;
    if let Some(spec) = super::archive::ArchSpec::from_query(ctx)? {
        if super::etl::etl_param(t, ctx).is_some() {
            return Err(ApiError::bad_request(
                "etl_name with archpath/archregx is not supported on a GET (use a Get-Batch item)",
            ));
        }
        return super::archive::get(t, ctx, bck, obj, spec).await;
    }
    let store = &t.store;
    let foreign = t.foreign_owner(ctx, bck, obj);
    if let Some(etl) = super::etl::etl_param(t, ctx) {
        // Transform where the object lives: find it first, as for a plain GET.
        let found = match store.head(bck, obj).await {
            Err(e) if super::ec::recover(t, bck, obj, &e).await? => store.head(bck, obj).await,
            r => r,
        };
        match found {
            Ok(_) => {
                let args = ctx.query.get("etl_args").unwrap_or("");
                return match super::etl::transform_local(t, &etl, &stages, bck, obj, args).await {
                    // Moved away between the lookup and the worker's read (a
                    // rebalance committed it on its new owner): go where it is.
                    Err(ApiError::ObjectNotFound { .. }) if store.head(bck, obj).await.is_err() => {
                        t.not_here(ctx, bck, obj, t.foreign_owner(ctx, bck, obj))
                            .await
                    }
                    r => r,
                };
            }
            Err(StorageError::NotFound) => {
                return t.not_here(ctx, bck, obj, foreign).await;
            }
            Err(e) => return Err(storage_err(t, bck, obj, e)),
        }
    }
    // A remote bucket on the object's owner: a miss streams from the
    // backend (ranges fetch it whole first, below); a warm copy is checked
    // against the backend when the bucket asks for it.
    let ranged = ctx.headers.contains_key(header::RANGE);
    if foreign.is_none() && props.is_remote_backed() {
        if let Some(remote) = super::remote::backend_of(t, bck)? {
            match store.head(bck, obj).await {
                Err(StorageError::NotFound) if !ranged => {
                    super::lru::check(t);
                    return super::remote::cold_get(t, remote, bck, obj).await;
                }
                // `latest-ver=true` (the SDK's `latest=True`): this GET
                // checks the backend's version as validate_warm_get does.
                Ok(info)
                    if props.checksum.validate_warm_get
                        || ctx.query.get("latest-ver").is_some_and(|v| v == "true") =>
                {
                    use super::remote::Warm;
                    match super::remote::validate(t, &remote, bck, obj, &info.attrs.custom).await? {
                        Warm::Current => {}
                        Warm::Changed if !ranged => {
                            return super::remote::cold_get(t, remote, bck, obj).await;
                        }
                        Warm::Changed => {}
                        Warm::Gone => {
                            return Err(ApiError::object_not_found(&t.core.name, bck, obj))
                        }
                    }
                }
                _ => {}
            }
            super::lru::touch(t, bck, obj);
        }
    }
    let opened = match store.open_obj(bck, obj).await {
        // Missing or damaged here: rebuilt from erasure-coded parts if the
        // bucket has them.
        Err(e) if super::ec::recover(t, bck, obj, &e).await? => store.open_obj(bck, obj).await,
        r => r,
    };
    let mut reader = match opened {
        Ok(r) => r,
        Err(StorageError::NotFound) => {
            return t.not_here(ctx, bck, obj, foreign).await;
        }
        Err(e) => return Err(storage_err(t, bck, obj, e)),
    };
    // Checked against the stored checksum before a byte leaves (by default:
    // a damaged object is never served as good; see `verify_reads`), and
    // always for bytes leaving for another place (a Get-Batch item
    // assembled on another target: `ais_verify`).
    if super::verify_reads(props) || ctx.query.get("ais_verify").is_some() {
        let v = match store.verify(bck, obj, &reader.info.attrs).await {
            // The object's path no longer holds the file this reader opened
            // (a rebalance moved it, or it was replaced, meanwhile): check
            // the bytes this reader will send instead.
            Err(StorageError::Io { ref source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                store
                    .verify_reader(&reader)
                    .await
                    .map_err(|e| storage_err(t, bck, obj, e))?;
                ais_storage::Verified::Ok
            }
            Err(e) if super::ec::recover(t, bck, obj, &e).await? => ais_storage::Verified::Healed,
            r => r.map_err(|e| storage_err(t, bck, obj, e))?,
        };
        if v == ais_storage::Verified::Healed {
            // The damaged copy was replaced from a mirror: read the new one.
            reader = store
                .open_obj(bck, obj)
                .await
                .map_err(|e| storage_err(t, bck, obj, e))?;
        }
    }
    let size = reader.info.attrs.size;
    let range = match ctx.headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) => Some(parse_range(r, size).ok_or_else(|| {
            ApiError::RangeNotSatisfiable(format!(
                "invalid range \"{r}\" for {}/{obj} of size {size}",
                bck.cname()
            ))
        })?),
        None => None,
    };
    let (start, len) = range.unwrap_or((0, size));
    let body = match reader.body {
        ObjBody::Mapped(b) => Body::from(b.slice(start as usize..(start + len) as usize)),
        ObjBody::Small(buf) => {
            let s = start as usize;
            let e = (start + len) as usize;
            Body::from(if range.is_some() {
                buf[s..e].to_vec()
            } else {
                buf
            })
        }
        ObjBody::File(file) => {
            // Mapped per window: no read() copy between the page cache
            // and the socket.
            let chunks = ais_storage::MappedChunks::new(file, start, len);
            Body::from_stream(futures::stream::unfold(chunks, |mut c| async move {
                c.next_chunk().await.map(|r| (r, c))
            }))
        }
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    obj_headers(h, &reader.info, &GET_PROPS);
    if range.is_some() {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{size}", start, start + len - 1))
        {
            r.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(r)
}

/// Parses a single `bytes=` range into (start, length).
pub fn parse_range(spec: &str, size: u64) -> Option<(u64, u64)> {
    let spec = spec.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || size == 0 {
            return None;
        }
        let n = n.min(size);
        return Some((size - n, n));
    }
    let start: u64 = a.parse().ok()?;
    if start >= size {
        return None;
    }
    let end = if b.is_empty() {
        size - 1
    } else {
        b.parse::<u64>().ok()?.min(size - 1)
    };
    if end < start {
        return None;
    }
    Some((start, end - start + 1))
}

/// What a GET reports about the object (checksum, atime, version, custom).
const GET_PROPS: PropSet = PropSet {
    size: false,
    version: true,
    checksum: true,
    atime: true,
    cached: false,
    custom: true,
    location: false,
    copies: false,
};

fn obj_headers(h: &mut HeaderMap, info: &ObjInfo, props: &PropSet) {
    let a = &info.attrs;
    // Values go straight into header values (no String per header: this
    // runs on every GET).
    fn put(h: &mut HeaderMap, k: &'static str, v: &str) {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.append(k, v);
        }
    }
    let (ty, value) = a.shown_cksum();
    if props.checksum && !ty.is_empty() {
        put(h, "Ais-Checksum-Type", ty);
        put(h, "Ais-Checksum-Value", value);
    }
    if props.atime {
        h.append("Ais-Atime", HeaderValue::from(info.atime_ns));
    }
    if props.version {
        h.append("Ais-Version", HeaderValue::from(a.version));
    }
    if props.custom {
        for (k, v) in &a.custom {
            put(h, "Ais-Custom-Md", &format!("{k}={v}"));
        }
    }
}

async fn head(t: &Arc<Target>, ctx: &Ctx, bck: &Bck, obj: &str) -> Res {
    ctx.query
        .reject_unknown("HEAD of an object", crate::http::HEAD_OBJECT_PARAMS)?;
    let store = &t.store;
    let v1 = ctx.query.get("props").is_none();
    let props = if v1 {
        PropSet::parse("size,checksum,atime,version,custom,location,copies")?
    } else {
        PropSet::parse(ctx.query.get("props").unwrap_or(""))?
    };
    let remote_bucket = super::remote::is_remote_bucket(t, bck);
    let found = match store.head(bck, obj).await {
        Err(e) if !remote_bucket && super::ec::recover(t, bck, obj, &e).await? => {
            store.head(bck, obj).await
        }
        r => r,
    };
    let info = match found {
        Ok(i) => i,
        Err(StorageError::NotFound) => {
            let foreign = t.foreign_owner(ctx, bck, obj);
            // `check_cached=true`: is it in the cluster (not at the backend)?
            let cached_only = ctx.query.get("check_cached") == Some("true");
            if foreign.is_none() && !cached_only {
                if let Some(remote) = super::remote::backend_of(t, bck)? {
                    return super::remote::head(t, &remote, bck, obj).await;
                }
            }
            return t.not_here(ctx, bck, obj, foreign).await;
        }
        Err(e) => return Err(storage_err(t, bck, obj, e)),
    };
    let mut r = empty(StatusCode::OK);
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(info.attrs.size));
    h.insert("Ais-Present", HeaderValue::from_static("true"));
    obj_headers(h, &info, &props);
    if props.location || v1 {
        if let Ok(v) = HeaderValue::from_str(&format!("{}:mp[{}]", t.core.name, "local")) {
            h.insert("Ais-Location", v);
        }
    }
    if props.copies || v1 {
        h.insert("Ais-Mirror-Copies", HeaderValue::from(1));
    }
    if v1 {
        for (k, v) in [
            ("Ais-Name", obj),
            ("Ais-Bucket-Name", &bck.name),
            ("Ais-Bucket-Provider", &bck.provider),
        ] {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.insert(k, v);
            }
        }
        h.insert("Ais-Size", HeaderValue::from(info.attrs.size));
    }
    Ok(r)
}

/// Custom metadata as `Ais-Custom-Md: key=value` headers (one per pair,
/// or comma-separated), kept with the object.
pub(super) fn custom_md(ctx: &Ctx) -> std::collections::BTreeMap<String, String> {
    use base64::Engine as _;
    // From another node: the whole map, exactly.
    if let Some(m) = ctx
        .headers
        .get(crate::rpc::types::CUSTOM_MD_JSON)
        .and_then(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.as_bytes())
                .ok()
        })
        .and_then(|raw| serde_json::from_slice(&raw).ok())
    {
        return m;
    }
    ctx.headers
        .get_all("ais-custom-md")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

pub(super) fn put_headers(r: &mut Response, a: &ObjAttrs) {
    let h = r.headers_mut();
    let (ty, value) = a.shown_cksum();
    for (k, v) in [
        ("Ais-Checksum-Type", ty.to_string()),
        ("Ais-Checksum-Value", value.to_string()),
        ("Ais-Version", a.version.to_string()),
        ("Ais-Atime", a.mtime_ns.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
}

async fn put(t: &Arc<Target>, ctx: &Ctx, bck: &Bck, obj: &str, body: Body) -> Res {
    let store = &t.store;
    crate::http::check_object_put(&ctx.query)?;
    // A multipart part goes to the target holding its upload (the proxy
    // sent it there), whoever owns the name now.
    if ctx.query.get("uploadId").is_some() {
        return super::s3::native(t, ctx, bck, obj, None, body).await;
    }
    if let Some(owner) = t.foreign_owner(ctx, bck, obj) {
        return Ok(t.hop_redirect(ctx, &owner));
    }
    if super::append::is_append(ctx) {
        return super::append::put(t, ctx, bck, obj, body).await;
    }
    if let Some(to) = ctx.query.get("object_to") {
        return copy_object(t, ctx, bck, obj, to).await;
    }
    // A rebalance moving an object here: the copy already here (a newer PUT
    // since the map changed, or a previous move) wins; else keep its version.
    let _incoming = ctx
        .query
        .get("ais_rebalance")
        .map(|_| t.jobs.incoming(&bck.name));
    let moved_version: Option<u64> = if ctx.query.get("ais_rebalance").is_some() {
        if t.jobs.reading(&bck.name) {
            return Err(ApiError::unavailable(format!(
                "{}: a job is reading {} here; move {obj} after it",
                t.core.name,
                bck.cname()
            )));
        }
        if store.head(bck, obj).await.is_ok() {
            return Ok(empty(StatusCode::OK));
        }
        ctx.headers
            .get("ais-version")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    } else {
        None
    };
    let expected: Option<u64> = ctx
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if moved_version.is_none() {
        if let Some(remote) = super::remote::backend_of(t, bck)? {
            let len = expected.ok_or_else(|| {
                ApiError::bad_request(format!(
                    "PUT {}/{obj}: a PUT into a remote bucket needs a Content-Length",
                    bck.cname()
                ))
            })?;
            super::lru::check(t);
            let attrs =
                super::remote::put_through(t, remote, bck, obj, len, body, custom_md(ctx)).await?;
            t.mark_deleted(&bck.obj_uname(obj), false);
            let mut r = empty(StatusCode::OK);
            put_headers(&mut r, &attrs);
            return Ok(r);
        }
    }
    let _write = match moved_version {
        None => Some(t.check_writable(bck)?),
        Some(_) => None,
    };
    let mut w = writer(t, bck, obj).await?;
    if moved_version.is_some() {
        w.in_background();
    }
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(format!(
                "PUT {}/{obj}: failed to receive the body after {} bytes ({e}); nothing was stored",
                bck.cname(),
                w.written()
            ))
        })?;
        w.write(&chunk)
            .await
            .map_err(|e| storage_err(t, bck, obj, e))?;
    }
    if let Some(n) = expected {
        if n != w.written() {
            return Err(ApiError::bad_request(format!(
                "PUT {}/{obj}: received {} of {n} bytes; nothing was stored",
                bck.cname(),
                w.written()
            )));
        }
    }
    // Custom metadata as `Ais-Custom-Md: key=value` headers (one per pair,
    // or comma-separated), kept with the object.
    let mut custom = custom_md(ctx);
    // A rebalance move: the bytes must match the source's stored checksum.
    if let Some(want) = custom.remove(crate::rpc::MOVE_CKSUM) {
        if moved_version.is_some() && want != w.cksum_so_far() {
            return Err(ApiError::bad_request(format!(
                "{}: {}/{obj}: checksum mismatch: the moved bytes hash to {}, the source stored {want}; nothing was stored",
                t.core.name,
                bck.cname(),
                w.cksum_so_far()
            )));
        }
    }
    if moved_version.is_none() {
        check_client_cksum(ctx, &w, bck, obj)?;
    }
    let attrs = match moved_version {
        Some(v) => {
            // A move judged by a map this target does not share (yet, or
            // any more): the sender retries once the maps agree.
            let _commit = match t.admit_commit(bck, obj) {
                super::placement::Admit::Here(g) => g,
                super::placement::Admit::Owner(o, ver) => {
                    return Err(t.not_owner(bck, obj, &o, ver))
                }
            };
            let committed = w
                .commit_moved(custom, v)
                .await
                .map_err(|e| storage_err(t, bck, obj, e))?;
            let Some(attrs) = committed else {
                // Moved here while a client's PUT of the name landed: that
                // is newer.
                return Ok(empty(StatusCode::OK));
            };
            t.mark_deleted(&bck.obj_uname(obj), false);
            attrs
        }
        None => {
            // The map may have given the name to another target while the
            // body was uploading (or the target that redirected the client
            // here judged by another map): it goes there, and nothing stays
            // here. A write another target already sent on (`ais_fwd`) is
            // not sent on again.
            let forward = ctx.query.get("ais_fwd").is_none();
            match t.commit_or_forward(bck, obj, w, custom, forward).await? {
                Ok(attrs) => {
                    // Acknowledged only once the redundancy the bucket asks
                    // for is durable (a moved object keeps its parts; the
                    // rebalance re-places them).
                    super::ec::protect(t, bck, obj).await?;
                    attrs
                }
                Err(Some(attrs)) => attrs,
                Err(None) => return Ok(empty(StatusCode::OK)),
            }
        }
    };
    let mut r = empty(StatusCode::OK);
    put_headers(&mut r, &attrs);
    Ok(r)
}

/// A writer for `bck/obj` here, as its bucket asks: its mirror copies, and
/// no flushes for a scratch bucket (`write_policy.data=never`). Every PUT
/// path (native, S3, remote-bucket caching) starts here.
pub(super) async fn writer(t: &Target, bck: &Bck, obj: &str) -> ApiResult<ais_storage::PutWriter> {
    let props = t.core.bucket_props(bck).ok();
    let copies = props.as_ref().map(|p| p.mirror.effective()).unwrap_or(1);
    let mut w = t
        .store
        .begin_put_copies(bck, obj, copies)
        .await
        .map_err(|e| storage_err(t, bck, obj, e))?;
    if let Some(p) = &props {
        w.also_hash(&p.checksum.kind);
        if p.write_policy.never_sync() {
            w.without_sync();
        }
    }
    Ok(w)
}

/// A checksum the client sent with its bytes (`Ais-Checksum-Type` and
/// `-Value`) must match what was received: xxhash (always computed) or the
/// bucket's type; nothing is stored otherwise.
pub(super) fn check_client_cksum(
    ctx: &Ctx,
    w: &ais_storage::PutWriter,
    bck: &Bck,
    obj: &str,
) -> ApiResult<()> {
    let header = |k: &str| {
        ctx.headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or("")
    };
    let (ty, want) = (header("ais-checksum-type"), header("ais-checksum-value"));
    if want.is_empty() || ty.eq_ignore_ascii_case("none") {
        return Ok(());
    }
    let got = if ty.is_empty() || ty.eq_ignore_ascii_case(ais_core::meta::CKSUM_XXHASH) {
        ("xxhash", w.cksum_so_far())
    } else {
        match w.extra_so_far() {
            Some((kind, hex)) if kind.eq_ignore_ascii_case(ty) => (kind, hex),
            other => {
                return Err(ApiError::bad_request(format!(
                    "PUT {}/{obj}: checksum type \"{ty}\" is not computed for this bucket (it computes xxhash{}); set checksum.type={ty} on the bucket, or send one of those",
                    bck.cname(),
                    other.map(|(k, _)| format!(" and {k}")).unwrap_or_default()
                )))
            }
        }
    };
    if !want.eq_ignore_ascii_case(&got.1) {
        return Err(ApiError::bad_request(format!(
            "PUT {}/{obj}: checksum mismatch: the bytes received hash to {} {}, the client sent {want}; nothing was stored",
            bck.cname(),
            got.0,
            got.1
        )));
    }
    Ok(())
}

/// `PUT /v1/objects/SRC/O?object_to=ais/@#/DST/O2[&etl_name=E]`: copy (or
/// transform) one object stored here into another bucket, no job needed.
async fn copy_object(t: &Arc<Target>, ctx: &Ctx, bck: &Bck, obj: &str, to: &str) -> Res {
    // The SDK always sends these: for a bucket of ours the copy is of the
    // latest version by definition; for a remote bucket we cannot honour them.
    let asked = |k: &str| ctx.query.get(k) == Some("true");
    if (asked("latest-ver") || asked("synchronize")) && super::remote::backend_of(t, bck)?.is_some()
    {
        return Err(ApiError::NotImplemented(format!(
            "copy of {}/{obj} with latest-ver/synchronize: checking the remote version on a copy is not supported",
            bck.cname()
        )));
    }
    let (dbck, dobj) = Bck::parse_uname(to)?;
    ais_core::names::validate_object_name(&dobj)?;
    t.core.bucket_props(&dbck)?;
    let path = t.store.obj_path(bck, obj);
    let data = match super::etl::etl_param(t, ctx) {
        Some(etl) => {
            let rt = t
                .etl
                .get(&etl)
                .ok_or_else(|| ApiError::etl_not_found(&t.core.name, &etl))?;
            let cname = format!("{}/{obj}", bck.cname());
            let args = ctx.query.get("etl_args").unwrap_or("");
            Some(
                t.transform_verified(&rt, bck, obj, args)
                    .await?
                    .map_err(|e| {
                        let msg = format!(
                            "{}: etl job {etl} failed to transform {cname}: {e}",
                            t.core.name
                        );
                        error::etl_kind(&e, msg)
                    })?,
            )
        }
        None => {
            // Streamed from the file below: verified first.
            t.verified_source(bck, obj).await?;
            None
        }
    };
    super::jobs::put_to_owner(t, &dbck.name, &dobj, data, &path, Default::default())
        .await
        .map_err(|e| {
            e.context(format!(
                "copy {}/{obj} to {}/{dobj}",
                bck.cname(),
                dbck.cname()
            ))
        })?;
    Ok(empty(StatusCode::OK))
}

/// `POST /v1/objects/B/O` with an action: `rename-obj` (`name`: the new
/// name in the same bucket; `ais object mv`).
async fn post(t: &Arc<Target>, ctx: &Ctx, bck: &Bck, obj: &str, body: Body) -> Res {
    ctx.query
        .reject_unknown("POST of an object", crate::http::POST_OBJECT_PARAMS)?;
    // Completing an upload happens where it is held (the proxy sent it there).
    let held = ctx.query.get("uploadId").is_some();
    if !held {
        if let Some(owner) = t.foreign_owner(ctx, bck, obj) {
            return Ok(t.hop_redirect(ctx, &owner));
        }
    }
    // A completion lists up to 10,000 parts.
    let msg: ais_core::api::ActMsg = crate::http::read_json(body, 2 << 20, "object action").await?;
    if held && msg.action != "mpt-complete" {
        return Err(ApiError::bad_request(format!(
            "uploadId applies to mpt-complete only, not \"{}\"",
            msg.action
        )));
    }
    match msg.action.as_str() {
        "mpt-upload" | "mpt-complete" => {
            super::s3::native(t, ctx, bck, obj, Some(&msg), Body::empty()).await
        }
        "rename-obj" => rename(t, bck, obj, &msg.name).await,
        "promote" => Err(ApiError::NotImplemented(
            "promote (a file on a target's host into a bucket) is not supported by aistore-rs"
                .into(),
        )),
        other => Err(ApiError::bad_request(format!(
            "unsupported action \"{other}\" for POST of an object (supported: rename-obj, mpt-upload, mpt-complete)"
        ))),
    }
}

/// Renames `obj` to `new` in `bck`: the verified bytes (and custom
/// properties) go to the new name's owner, then the old name goes
/// everywhere, unless a newer PUT of it landed meanwhile (then both stay).
async fn rename(t: &Arc<Target>, bck: &Bck, obj: &str, new: &str) -> Res {
    ais_core::names::validate_object_name(new)?;
    if new == obj {
        return Err(ApiError::bad_request(format!(
            "rename-obj: {}/{obj} already has that name",
            bck.cname()
        )));
    }
    if super::remote::backend_of(t, bck)?.is_some() {
        return Err(ApiError::bad_request(format!(
            "rename-obj: {} is a remote bucket; rename its objects at the backend",
            bck.cname()
        )));
    }
    let _write = t.check_writable(bck)?;
    let info = t.verified_source(bck, obj).await?;
    let path = t.store.obj_path(bck, obj);
    super::jobs::put_to_owner(t, &bck.name, new, None, &path, info.attrs.custom.clone()).await?;
    let gone = t
        .store
        .delete_version(bck, obj, info.attrs.version)
        .await
        .map_err(|e| storage_err(t, bck, obj, e))?;
    if gone {
        t.mark_deleted(&bck.obj_uname(obj), true);
    } else {
        return Err(ApiError::Conflict(format!(
            "{}/{obj} was written while it was being renamed: {new} has the old content, \
             {obj} the new one",
            bck.cname()
        )));
    }
    if let Err(away) = super::delete_elsewhere(t, bck, obj).await {
        return Err(ApiError::unavailable(format!(
            "{}: {}/{obj} was renamed to {new} but copies on {} could not be removed; delete it \
             again",
            t.core.name,
            bck.cname(),
            away.join(", ")
        )));
    }
    Ok(empty(StatusCode::OK))
}

/// `PATCH /v1/objects/B/O`, `{"action": "", "value": {KEY: VALUE, ...}}`
/// (the SDK's `set_custom_props`; `set-new-custom=true` replaces what the
/// object has instead of adding to it).
async fn set_custom(t: &Arc<Target>, ctx: &Ctx, bck: &Bck, obj: &str, body: Body) -> Res {
    ctx.query
        .reject_unknown("PATCH of an object", crate::http::PATCH_OBJECT_PARAMS)?;
    if let Some(owner) = t.foreign_owner(ctx, bck, obj) {
        return Ok(t.hop_redirect(ctx, &owner));
    }
    let _write = t.check_writable(bck)?;
    let msg: ais_core::api::ActMsg =
        crate::http::read_json(body, 1 << 20, "set custom properties").await?;
    if !msg.action.is_empty() && msg.action != "set-custom" {
        return Err(ApiError::bad_request(format!(
            "unsupported action \"{}\" for PATCH of an object (supported: custom properties, \
             {{\"value\": {{KEY: VALUE}}}})",
            msg.action
        )));
    }
    let custom = custom_props(&msg.value)?;
    if let Some(k) = custom
        .keys()
        .find(|k| INTERNAL_CUSTOM.contains(&k.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "custom property \"{k}\" is the cluster's own (kept for S3 ETags, remote versions \
             and copies); choose another name"
        )));
    }
    let replace = matches!(ctx.query.get("set-new-custom"), Some("true" | "True" | "1"));
    t.store
        .set_custom(bck, obj, custom, replace, INTERNAL_CUSTOM)
        .await
        .map_err(|e| storage_err(t, bck, obj, e))?;
    Ok(empty(StatusCode::OK))
}

type CustomProps = std::collections::BTreeMap<String, String>;

/// Custom-metadata keys the cluster itself keeps with an object (an S3
/// ETag, a remote object's version, what a copy was made from): users may
/// not set them, and replacing the custom properties keeps them.
const INTERNAL_CUSTOM: &[&str] = &[
    crate::rpc::s3::ETAG_KEY,
    crate::backend::MD_ETAG,
    crate::backend::MD_LAST_MODIFIED,
    super::jobs::MD_SRC,
    super::jobs::MD_BY,
];

/// Custom properties as the SDK sends them: a JSON object of strings
/// (numbers and booleans are taken as their text), at most 64 KiB.
fn custom_props(v: &serde_json::Value) -> ApiResult<CustomProps> {
    let Some(m) = v.as_object() else {
        return Err(ApiError::bad_request(
            "custom properties: expected a JSON object {KEY: VALUE, ...}",
        ));
    };
    let mut out = std::collections::BTreeMap::new();
    let mut total = 0;
    for (k, v) in m {
        let v = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => {
                return Err(ApiError::bad_request(format!(
                    "custom property \"{k}\": expected a string, got {other}"
                )))
            }
        };
        if k.is_empty() || k.contains(['=', ',']) {
            return Err(ApiError::bad_request(format!(
                "custom property name \"{k}\": must be non-empty, without '=' or ','"
            )));
        }
        total += k.len() + v.len();
        out.insert(k.clone(), v);
    }
    if total > 64 << 10 {
        return Err(ApiError::bad_request(
            "custom properties: more than 64 KiB in all",
        ));
    }
    Ok(out)
}

async fn delete(t: &Arc<Target>, ctx: &Ctx, bck: &Bck, obj: &str, body: Body) -> Res {
    ctx.query
        .reject_unknown("DELETE of an object", crate::http::DELETE_OBJECT_PARAMS)?;
    if ctx.query.get("uploadId").is_some() {
        // `mpt-abort` (the SDK sends the action; none is the same).
        let raw = crate::http::read_body(body, 64 << 10).await?;
        let msg = if raw.iter().all(|b| b.is_ascii_whitespace()) {
            None
        } else {
            Some(ais_core::api::ActMsg::parse(&raw)?)
        };
        return super::s3::native(t, ctx, bck, obj, msg.as_ref(), Body::empty()).await;
    }
    if let Some(owner) = t.foreign_owner(ctx, bck, obj) {
        return Ok(t.hop_redirect(ctx, &owner));
    }
    let _write = t.check_writable(bck)?;
    // A remote bucket's object goes at its backend first (a failure there
    // leaves the cached copy as it was).
    let mut at_backend = false;
    if let Some(remote) = super::remote::backend_of(t, bck)? {
        at_backend = remote
            .head_object(crate::backend::http(), obj)
            .await?
            .is_some();
        remote.delete_object(crate::backend::http(), obj).await?;
    }
    t.mark_deleted(&bck.obj_uname(obj), true);
    let local = match t.store.delete(bck, obj).await {
        Ok(()) => true,
        Err(StorageError::NotFound) => false,
        Err(e) => return Err(storage_err(t, bck, obj, e)),
    };
    // Stale copies on former owners would resurface through get-from-neighbor
    // (and erasure-coded parts through a rebuild): all of them must go.
    let remote = match super::delete_elsewhere(t, bck, obj).await {
        Ok(r) => r,
        Err(away) => {
            return Err(ApiError::unavailable(format!(
                "{}: {}/{obj} was deleted here but copies or parts on {} could not be removed; \
                 retry the delete",
                t.core.name,
                bck.cname(),
                away.join(", ")
            )))
        }
    };
    if local || remote || at_backend {
        Ok(empty(StatusCode::OK))
    } else {
        Err(ApiError::object_not_found(&t.core.name, bck, obj))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 10)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 10)));
        assert_eq!(parse_range("bytes=-5", 100), Some((95, 5)));
        assert_eq!(parse_range("bytes=95-200", 100), Some((95, 5)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-2", 100), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
