//! Remote (`s3://`, `gs://`, `az://`) buckets on a target: the cluster caches the backend's objects.
//! A cold GET on the owner streams the object from the backend to the
//! client and into the cache at once (committed only when whole); later
//! GETs are local. With `validate_warm_get`, a warm GET first asks the
//! backend for the object's ETag: changed behind our back → refetched;
//! gone → evicted here and 404. PUT writes through (backend first, then
//! the cache, one pass over the body); DELETE removes both. Other readers
//! (ETL, Get-Batch, jobs, HEAD) get missing objects through [`recover`].

use super::Target;
use crate::backend::{self, Remote, RemoteAttrs, MD_ETAG, MD_LAST_MODIFIED};
use crate::error::{self, ApiError, ApiResult};
use crate::http::Res;
use ais_core::Bck;
use ais_storage::StorageError;
use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Whether `bck` is a remote bucket (one BMD lookup, no copy).
pub fn is_remote_bucket(t: &Target, bck: &Bck) -> bool {
    t.core.meta.with_bmd(|b| {
        b.buckets
            .get(&bck.name)
            .is_some_and(|p| p.is_remote_backed())
    })
}

/// The bucket's backend if it is a remote bucket; `None` for an `ais://` one.
pub fn backend_of(t: &Target, bck: &Bck) -> ApiResult<Option<Remote>> {
    if !is_remote_bucket(t, bck) {
        return Ok(None);
    }
    let props = t.core.bucket_props(bck)?;
    Ok(Some(Remote::for_bucket(&bck.name, &props)?))
}

fn custom_of(a: &RemoteAttrs) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if !a.etag.is_empty() {
        m.insert(MD_ETAG.into(), a.etag.clone());
    }
    if !a.last_modified.is_empty() {
        m.insert(MD_LAST_MODIFIED.into(), a.last_modified.clone());
    }
    m
}

fn owned_here(t: &Target, bck: &Bck, obj: &str) -> bool {
    t.core
        .owner(&bck.obj_uname(obj))
        .is_some_and(|o| o.daemon_id == t.core.id)
}

/// A local read of `obj` failed with `e`: on the owner of a remote
/// bucket's object that is missing here, fetch it into the cache.
/// `Ok(true)`: fetched (read again). `Ok(false)`: not a remote miss.
pub async fn recover(t: &Target, bck: &Bck, obj: &str, e: &StorageError) -> ApiResult<bool> {
    if !matches!(e, StorageError::NotFound) || !owned_here(t, bck, obj) {
        return Ok(false);
    }
    let Some(remote) = backend_of(t, bck)? else {
        return Ok(false);
    };
    fetch(t, &remote, bck, obj).await
}

/// Copies the object from the backend into the cache (whole, then
/// committed). `Ok(false)`: the backend does not have it.
pub async fn fetch(t: &Target, remote: &Remote, bck: &Bck, obj: &str) -> ApiResult<bool> {
    let Some((attrs, resp)) = remote.get_object(backend::http(), obj).await? else {
        return Ok(false);
    };
    let serr = |e| error::storage(&t.core.name, bck, obj, e);
    let mut w = super::objects::writer(t, bck, obj).await?;
    let mut body = resp;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::unavailable(format!(
                "{}: fetching {}/{obj} from its backend failed after {} bytes: {e}",
                t.core.name,
                bck.cname(),
                w.written()
            ))
        })?;
        w.write(&chunk).await.map_err(serr)?;
    }
    if w.written() != attrs.size {
        return Err(ApiError::unavailable(format!(
            "{}: the backend sent {} of {} bytes of {}/{obj}; nothing was cached",
            t.core.name,
            w.written(),
            attrs.size,
            bck.cname()
        )));
    }
    if t.commit_cached(bck, obj, w, custom_of(&attrs))
        .await
        .map_err(serr)?
        .is_none()
    {
        return Err(ApiError::unavailable(format!(
            "{}: {}/{obj}: the cluster map gave the object to another target while it was \
             fetched; retry (it is read there)",
            t.core.name,
            bck.cname()
        )));
    }
    tracing::debug!(object = %format!("{}/{obj}", bck.cname()), size = attrs.size, "cached from backend");
    Ok(true)
}

/// Cold GET on the owner: the backend's bytes go to the client and into
/// the cache at once; the last chunk goes after the commit, so a client
/// that has read the object finds it cached. A backend failure mid-way ends the client's body
/// early (its Content-Length is never met: no partial object is served as
/// whole) and caches nothing; a client that hangs up does not stop the
/// caching.
pub async fn cold_get(t: &Arc<Target>, remote: Remote, bck: &Bck, obj: &str) -> Res {
    let Some((attrs, resp)) = remote.get_object(backend::http(), obj).await? else {
        return Err(ApiError::object_not_found(&t.core.name, bck, obj));
    };
    let serr = {
        let (name, bck, obj) = (t.core.name.clone(), bck.clone(), obj.to_string());
        move |e| error::storage(&name, &bck, &obj, e)
    };
    let mut w = super::objects::writer(t, bck, obj).await?;
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(8);
    let (size, cname) = (attrs.size, format!("{}/{obj}", bck.cname()));
    let (t2, bck2, obj2) = (t.clone(), bck.clone(), obj.to_string());
    let custom = custom_of(&attrs);
    tokio::spawn(async move {
        let mut body = resp;
        let mut client = true;
        // The last chunk is held back until the copy is committed: when a
        // client has the whole object, the cluster has it too.
        let mut held: Option<bytes::Bytes> = None;
        let failed = loop {
            match body.next().await {
                Some(Ok(chunk)) => {
                    if let Err(e) = w.write(&chunk).await {
                        break Some(serr(e).to_string());
                    }
                    if let Some(prev) = held.replace(chunk) {
                        if client && tx.send(Ok(prev)).await.is_err() {
                            client = false;
                        }
                    }
                }
                Some(Err(e)) => break Some(format!("the backend stream failed: {e}")),
                None => break None,
            }
        };
        let failed = failed.or_else(|| {
            (w.written() != size)
                .then(|| format!("the backend sent {} of {size} bytes", w.written()))
        });
        if let Some(why) = failed {
            tracing::warn!(object = %cname, error = %why, "cold GET failed; nothing cached");
            let _ = tx.send(Err(std::io::Error::other(why))).await;
            return;
        }
        if let Err(e) = t2.commit_cached(&bck2, &obj2, w, custom).await {
            let e = error::storage(&t2.core.name, &bck2, &obj2, e);
            tracing::warn!(object = %cname, error = %e, "cold GET served but not cached");
        }
        if let (Some(last), true) = (held, client) {
            let _ = tx.send(Ok(last)).await;
        }
    });
    let mut r = Response::new(Body::from_stream(rx));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    Ok(r)
}

/// What a warm GET with `validate_warm_get` found at the backend.
pub enum Warm {
    /// The cached copy is the backend's current object.
    Current,
    /// The backend has another version: the cached copy was evicted.
    Changed,
    /// The backend no longer has it: the cached copy was evicted.
    Gone,
}

/// Compares the cached copy's ETag with the backend's (one HEAD there).
pub async fn validate(
    t: &Target,
    remote: &Remote,
    bck: &Bck,
    obj: &str,
    custom: &BTreeMap<String, String>,
) -> ApiResult<Warm> {
    let there = remote.head_object(backend::http(), obj).await?;
    let verdict = match there {
        None => Warm::Gone,
        Some(a) if Some(&a.etag) == custom.get(MD_ETAG) => return Ok(Warm::Current),
        Some(_) => Warm::Changed,
    };
    match t.store.delete(bck, obj).await {
        Ok(()) | Err(StorageError::NotFound) => {}
        Err(e) => return Err(error::storage(&t.core.name, bck, obj, e)),
    }
    tracing::info!(object = %format!("{}/{obj}", bck.cname()), gone = matches!(verdict, Warm::Gone), "cached copy is stale: evicted");
    Ok(verdict)
}

/// HEAD of an object the cluster does not hold: the backend's attributes.
pub async fn head(t: &Target, remote: &Remote, bck: &Bck, obj: &str) -> Res {
    let Some(a) = remote.head_object(backend::http(), obj).await? else {
        return Err(ApiError::object_not_found(&t.core.name, bck, obj));
    };
    let mut r = crate::http::empty(StatusCode::OK);
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(a.size));
    h.insert("Ais-Size", HeaderValue::from(a.size));
    h.insert("Ais-Present", HeaderValue::from_static("false"));
    for (k, v) in [
        ("Ais-Name", obj),
        ("Ais-Bucket-Name", &bck.name),
        ("Ais-Bucket-Provider", &bck.provider),
        ("Ais-Version", &a.etag),
    ] {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    }
    Ok(r)
}

/// PUT through to the backend: the body goes to the backend and into the
/// cache in one pass; the cached copy is committed (with the backend's
/// ETag) only after the backend acknowledged the object.
pub async fn put_through(
    t: &Target,
    remote: Remote,
    bck: &Bck,
    obj: &str,
    len: u64,
    body: Body,
    mut custom: BTreeMap<String, String>,
) -> ApiResult<ais_core::meta::ObjAttrs> {
    let serr = |e| error::storage(&t.core.name, bck, obj, e);
    let mut w = super::objects::writer(t, bck, obj).await?;
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(8);
    let key = obj.to_string();
    let mut up = tokio::spawn(async move {
        remote
            .put_object(backend::http(), &key, rx.boxed(), len)
            .await
    });
    let mut stream = body.into_data_stream();
    let mut received = Ok(());
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                received = Err(ApiError::bad_request(format!(
                    "PUT {}/{obj}: failed to receive the body after {} bytes ({e}); nothing was stored",
                    bck.cname(),
                    w.written()
                )));
                break;
            }
        };
        w.write(&chunk).await.map_err(serr)?;
        if tx.send(Ok(chunk)).await.is_err() {
            // The backend ended the upload early: its answer says why.
            if let Ok(Err(e)) = (&mut up).await {
                return Err(e.into());
            }
            break;
        }
    }
    if received.is_ok() && w.written() != len {
        received = Err(ApiError::bad_request(format!(
            "PUT {}/{obj}: received {} of {len} bytes; nothing was stored",
            bck.cname(),
            w.written()
        )));
    }
    if let Err(e) = received {
        // The backend must not keep a short object: fail its upload too,
        // and let it clean up (a multipart upload is aborted there) rather
        // than killing it mid-way.
        let _ = tx
            .send(Err(std::io::Error::other("client body failed")))
            .await;
        drop(tx);
        if tokio::time::timeout(std::time::Duration::from_secs(30), &mut up)
            .await
            .is_err()
        {
            up.abort();
        }
        return Err(e);
    }
    drop(tx);
    let attrs = up
        .await
        .map_err(|e| ApiError::internal(format!("backend upload: {e}")))??;
    custom.extend(custom_of(&attrs));
    let size = w.written();
    // Stored at the backend; a copy here only if this target owns it now.
    Ok(t.commit_cached(bck, obj, w, custom.clone())
        .await
        .map_err(serr)?
        .unwrap_or(ais_core::meta::ObjAttrs {
            size,
            mtime_ns: ais_core::now_ns(),
            custom,
            ..Default::default()
        }))
}

/// Writes an object just committed here through to its remote bucket's
/// backend (S3 front door PUTs and multipart uploads, whose bodies arrive
/// in forms `put_through` does not take). If the backend refuses it, the
/// cached copy goes too: the cluster never holds what the backend lacks.
pub async fn push(t: &Target, bck: &Bck, obj: &str) -> ApiResult<()> {
    let Some(remote) = backend_of(t, bck)? else {
        return Ok(());
    };
    let path = t.store.obj_path(bck, obj);
    let io =
        |e: std::io::Error| ApiError::internal(format!("{}: {}: {e}", t.core.name, path.display()));
    let file = tokio::fs::File::open(&path).await.map_err(io)?;
    let len = file.metadata().await.map_err(io)?.len();
    let body = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20).boxed();
    if let Err(e) = remote.put_object(backend::http(), obj, body, len).await {
        let _ = t.store.delete(bck, obj).await;
        return Err(e.into());
    }
    Ok(())
}

/// The most bytes one blob download holds in flight (workers x chunk).
pub const MAX_BLOB_INFLIGHT: u64 = 256 << 20;

/// Blob downloads a target runs at once (more: 503, retry later).
pub const MAX_BLOB_JOBS: usize = 4;

/// A blob download (AIStore's `blob-download`): one large object of a
/// remote bucket fetched in `num_workers` parallel ranges of `chunk-size`
/// bytes, written in order into the cache (memory: workers x chunk), all
/// ranges from the one version the backend had at the start (ETag), and
/// committed with that version's attributes. A cached copy is kept unless
/// `latest-ver` asks to check the backend's.
pub async fn blob_download(t: &Arc<Target>, job: &super::jobs::TargetJob) -> ApiResult<()> {
    let spec = &job.spec;
    let bck = t.core.bck(spec.src.clone());
    let obj = spec
        .msg
        .objnames
        .first()
        .cloned()
        .ok_or_else(|| ApiError::bad_request("blob-download: no object named"))?;
    let remote = backend_of(t, &bck)?.ok_or_else(|| {
        ApiError::bad_request(format!(
            "blob-download: {} is not a remote bucket",
            bck.cname()
        ))
    })?;
    let latest = spec.msg.ext.get("latest-ver").map(String::as_str) == Some("true");
    let http = backend::http();
    let attrs = remote
        .head_object(http, &obj)
        .await?
        .ok_or_else(|| ApiError::object_not_found(&t.core.name, &bck, &obj))?;
    if let Ok(info) = t.store.head(&bck, &obj).await {
        let same = info.attrs.custom.get(MD_ETAG) == Some(&attrs.etag);
        if !latest || same {
            job.skipped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            job.done_one(info.attrs.size);
            return Ok(());
        }
    }
    if attrs.size == 0 || attrs.etag.is_empty() {
        // No size or no version to pin the ranges to: one plain GET, its
        // length checked.
        if !fetch(t, &remote, &bck, &obj).await? {
            return Err(ApiError::object_not_found(&t.core.name, &bck, &obj));
        }
        job.done_one(attrs.size);
        return Ok(());
    }
    let chunk: u64 = spec
        .msg
        .ext
        .get("chunk-size")
        .and_then(|c| c.parse().ok())
        .unwrap_or(4 << 20)
        .clamp(64 << 10, 256 << 20);
    // In flight at most MAX_BLOB_INFLIGHT bytes, whatever was asked.
    let workers =
        (spec.msg.num_workers.clamp(1, 16) as u64).min((MAX_BLOB_INFLIGHT / chunk).max(1)) as usize;
    let size = attrs.size;
    let ranges =
        (0..size.div_ceil(chunk)).map(move |i| (i * chunk, ((i + 1) * chunk).min(size) - 1));
    let serr = |e| error::storage(&t.core.name, &bck, &obj, e);
    let mut w = super::objects::writer(t, &bck, &obj).await?;
    let etag = attrs.etag.clone();
    let mut parts = futures::stream::iter(ranges)
        .map(|(a, b)| {
            let (remote, obj, etag) = (&remote, &obj, &etag);
            async move { (a, b, remote.get_range(http, obj, (a, b, size), etag).await) }
        })
        .buffered(workers);
    while let Some((a, b, got)) = parts.next().await {
        if job.is_aborted() {
            return Ok(());
        }
        let bytes = got?.ok_or_else(|| ApiError::object_not_found(&t.core.name, &bck, &obj))?;
        if bytes.len() as u64 != b - a + 1 {
            return Err(ApiError::unavailable(format!(
                "blob-download of {}/{obj}: the backend sent {} bytes for range {a}-{b}; nothing was cached",
                bck.cname(),
                bytes.len()
            )));
        }
        w.write(&bytes).await.map_err(serr)?;
    }
    if t.commit_cached(&bck, &obj, w, custom_of(&attrs))
        .await
        .map_err(serr)?
        .is_none()
    {
        return Err(ApiError::unavailable(format!(
            "{}: blob-download of {}/{obj}: the cluster map gave the object to another \
             target meanwhile; nothing was kept, run it again",
            t.core.name,
            bck.cname()
        )));
    }
    job.done_one(size);
    tracing::info!(object = %format!("{}/{obj}", bck.cname()), size, workers, chunk, "blob downloaded");
    Ok(())
}
