//! AIStore's object append: `PUT /v1/objects/B/O?append_type=append` with an
//! empty `append_handle` starts one (the object's current bytes, if it
//! exists, come first), each later append names the handle the previous
//! answer returned (`Ais-Append-Handle`), and `append_type=flush` with the
//! handle makes the whole object visible at once. The SDK's
//! `ObjectWriter.append_content()` and its file-like writer (`as_file()`)
//! speak this.
//!
//! A handle is an opaque random name for a writer this target keeps open
//! (its temp file in the mountpath's work dir, node-owned): a client never
//! names a path, and a handle is only good for the object it was issued
//! for. Nothing is visible before the flush; an append that fails half-way
//! ends its handle (no object with a hole or a torn chunk can be flushed).
//! Open handles are bounded ([`MAX_OPEN`]) and expire when idle ([`IDLE`]).

use super::Target;
use crate::error::{ApiError, ApiResult};
use crate::http::{empty, Ctx, Res};
use ais_core::Bck;
use ais_storage::{ObjBody, PutWriter};
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The query parameters (the SDK's names, then the AIStore CLI's older ones).
pub const TYPE_PARAMS: &[&str] = &["append_type", "appendty"];
pub const HANDLE_PARAMS: &[&str] = &["append_handle", "handle"];
/// The response header carrying the handle for the next append.
pub const HANDLE_HEADER: &str = "Ais-Append-Handle";

/// Open append handles per target: each holds a temp file and a descriptor.
pub const MAX_OPEN: usize = 1024;
/// An append handle unused this long is dropped with its temp file.
pub const IDLE: Duration = Duration::from_secs(30 * 60);

struct Open {
    /// `bck.obj_uname(obj)`: the only object this handle writes.
    uname: String,
    /// `None` once flushed or failed (the entry is being removed).
    writer: Option<PutWriter>,
    last: Instant,
    /// The mountpath set the writer chose its place in: a change (attach,
    /// detach, a resilver) ends the handle rather than commit to a place
    /// reads no longer look.
    mpath_gen: u64,
}

/// A target's open append handles.
#[derive(Default)]
pub struct Appends {
    open: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Open>>>>,
}

impl Appends {
    fn get(&self, handle: &str) -> Option<Arc<tokio::sync::Mutex<Open>>> {
        let mut m = self.open.lock().ok()?;
        sweep(&mut m);
        m.get(handle).cloned()
    }

    fn remove(&self, handle: &str) {
        if let Ok(mut m) = self.open.lock() {
            m.remove(handle);
        }
    }

    /// Registers a new handle, dropping idle ones first; `None` when
    /// [`MAX_OPEN`] are in use.
    fn insert(&self, open: Open) -> Option<(String, Arc<tokio::sync::Mutex<Open>>)> {
        let mut m = self.open.lock().ok()?;
        sweep(&mut m);
        if m.len() >= MAX_OPEN {
            return None;
        }
        let handle = ais_core::gen_id(32);
        let entry = Arc::new(tokio::sync::Mutex::new(open));
        m.insert(handle.clone(), entry.clone());
        Some((handle, entry))
    }
}

/// Drops handles unused for [`IDLE`] (with their temp files); an entry
/// locked right now is in use, never idle.
fn sweep(m: &mut HashMap<String, Arc<tokio::sync::Mutex<Open>>>) {
    m.retain(|_, o| o.try_lock().map_or(true, |o| o.last.elapsed() < IDLE));
}

/// Whether this PUT is an append or a flush (`append_type` present).
pub fn is_append(ctx: &Ctx) -> bool {
    TYPE_PARAMS.iter().any(|k| ctx.query.get(k).is_some())
}

fn param<'a>(ctx: &'a Ctx, names: &[&str]) -> &'a str {
    names.iter().find_map(|k| ctx.query.get(k)).unwrap_or("")
}

/// `PUT ...?append_type=append|flush[&append_handle=H]` on the owner target.
pub async fn put(t: &Arc<Target>, ctx: &Ctx, bck: &Bck, obj: &str, body: Body) -> Res {
    let _write = t.check_writable(bck)?;
    let op = param(ctx, TYPE_PARAMS);
    let handle = param(ctx, HANDLE_PARAMS);
    let cname = format!("{}/{obj}", bck.cname());
    if super::remote::backend_of(t, bck)?.is_some() {
        return Err(ApiError::NotImplemented(format!(
            "append to {cname}: appending to an object of a remote bucket is not supported (PUT it whole)"
        )));
    }
    match op {
        "append" => append(t, ctx, bck, obj, handle, body).await,
        "flush" => flush(t, ctx, bck, obj, handle, body).await,
        _ => Err(ApiError::bad_request(format!(
            "invalid append_type \"{op}\" for {cname} (expected \"append\" or \"flush\")"
        ))),
    }
}

/// The handle's entry, checked to belong to `bck/obj`.
fn lookup(
    t: &Target,
    bck: &Bck,
    obj: &str,
    handle: &str,
) -> ApiResult<Arc<tokio::sync::Mutex<Open>>> {
    t.appends.get(handle).ok_or_else(|| {
        ApiError::NotFound(format!(
            "{}: append handle \"{handle}\" for {}/{obj} is unknown: it was flushed, failed, \
             expired after {} min unused, or this target restarted; nothing of that append is \
             stored - start again with an empty handle",
            t.core.name,
            bck.cname(),
            IDLE.as_secs() / 60
        ))
    })
}

fn mpaths_changed(t: &Target, bck: &Bck, obj: &str, handle: &str) -> ApiError {
    ApiError::Conflict(format!(
        "{}: the mountpaths changed since append handle \"{handle}\" for {}/{obj} was \
         opened; nothing of that append is stored - start again with an empty handle",
        t.core.name,
        bck.cname()
    ))
}

fn wrong_object(t: &Target, bck: &Bck, obj: &str, handle: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{}: append handle \"{handle}\" was issued for another object, not {}/{obj}",
        t.core.name,
        bck.cname()
    ))
}

async fn append(t: &Arc<Target>, ctx: &Ctx, bck: &Bck, obj: &str, handle: &str, body: Body) -> Res {
    let uname = bck.obj_uname(obj);
    let (handle, entry) = if handle.is_empty() {
        let mut w = super::objects::writer(t, bck, obj).await?;
        // Appending to an object that exists: its (verified) bytes first.
        if t.store.head(bck, obj).await.is_ok() {
            t.verified_source(bck, obj).await?;
            copy_existing(t, bck, obj, &mut w).await?;
        }
        let open = Open {
            uname: uname.clone(),
            writer: Some(w),
            last: Instant::now(),
            mpath_gen: t.store.mpath_gen(),
        };
        t.appends.insert(open).ok_or_else(|| {
            ApiError::unavailable(format!(
                "{}: {MAX_OPEN} appends are open on this target; flush some (or wait {} min \
                 for unused ones to expire) and retry",
                t.core.name,
                IDLE.as_secs() / 60
            ))
        })?
    } else {
        (handle.to_string(), lookup(t, bck, obj, handle)?)
    };
    let mut open = entry.lock().await;
    if open.uname != uname {
        return Err(wrong_object(t, bck, obj, &handle));
    }
    if open.mpath_gen != t.store.mpath_gen() {
        open.writer = None;
        drop(open);
        t.appends.remove(&handle);
        return Err(mpaths_changed(t, bck, obj, &handle));
    }
    let Some(w) = open.writer.as_mut() else {
        return Err(ApiError::NotFound(format!(
            "append handle \"{handle}\" for {}/{obj} was flushed or failed meanwhile",
            bck.cname()
        )));
    };
    if let Err(e) = write_body(t, ctx, bck, obj, w, body).await {
        // Half an append is not an object anyone asked for: end the handle.
        open.writer = None;
        drop(open);
        t.appends.remove(&handle);
        return Err(e.context(format!(
            "append handle \"{handle}\" is closed and nothing of this append will be stored"
        )));
    }
    open.last = Instant::now();
    let mut r = empty(StatusCode::OK);
    if let Ok(v) = HeaderValue::from_str(&handle) {
        r.headers_mut().insert(HANDLE_HEADER, v);
    }
    Ok(r)
}

async fn flush(t: &Arc<Target>, ctx: &Ctx, bck: &Bck, obj: &str, handle: &str, body: Body) -> Res {
    if handle.is_empty() {
        return Err(ApiError::bad_request(format!(
            "flush of {}/{obj} needs the append_handle returned by its appends",
            bck.cname()
        )));
    }
    let entry = lookup(t, bck, obj, handle)?;
    let mut open = entry.lock().await;
    if open.uname != bck.obj_uname(obj) {
        return Err(wrong_object(t, bck, obj, handle));
    }
    if open.mpath_gen != t.store.mpath_gen() {
        open.writer = None;
        drop(open);
        t.appends.remove(handle);
        return Err(mpaths_changed(t, bck, obj, handle));
    }
    let Some(mut w) = open.writer.take() else {
        return Err(ApiError::NotFound(format!(
            "append handle \"{handle}\" for {}/{obj} was flushed or failed meanwhile",
            bck.cname()
        )));
    };
    drop(open);
    t.appends.remove(handle);
    // A flush may carry the last bytes too.
    write_body(t, ctx, bck, obj, &mut w, body).await?;
    // A checksum the client computed over the whole object must match.
    super::objects::check_client_cksum(ctx, &w, bck, obj)?;
    // The map may have given the name to another target since the
    // appends began: the object goes there ([`super::placement`]).
    let attrs = match t
        .commit_or_forward(bck, obj, w, super::objects::custom_md(ctx), true)
        .await?
    {
        Ok(attrs) => {
            super::ec::protect(t, bck, obj).await?;
            attrs
        }
        Err(Some(attrs)) => attrs,
        Err(None) => return Ok(empty(StatusCode::OK)),
    };
    let mut r = empty(StatusCode::OK);
    super::objects::put_headers(&mut r, &attrs);
    Ok(r)
}

/// The request body onto `w`, then parked (buffer written, memory freed);
/// a body shorter than its Content-Length is an error.
async fn write_body(
    t: &Target,
    ctx: &Ctx,
    bck: &Bck,
    obj: &str,
    w: &mut PutWriter,
    body: Body,
) -> ApiResult<()> {
    let serr = |e| crate::error::storage(&t.core.name, bck, obj, e);
    let expected: Option<u64> = ctx
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let start = w.written();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request(format!(
                "append to {}/{obj}: failed to receive the body after {} bytes ({e})",
                bck.cname(),
                w.written() - start
            ))
        })?;
        w.write(&chunk).await.map_err(serr)?;
    }
    let got = w.written() - start;
    if let Some(n) = expected.filter(|n| *n != got) {
        return Err(ApiError::bad_request(format!(
            "append to {}/{obj}: received {got} of {n} bytes",
            bck.cname()
        )));
    }
    w.park().await.map_err(serr)
}

/// The object's current bytes onto `w` (it was just verified), streamed.
async fn copy_existing(t: &Target, bck: &Bck, obj: &str, w: &mut PutWriter) -> ApiResult<()> {
    let serr = |e| crate::error::storage(&t.core.name, bck, obj, e);
    let reader = t.store.open_obj(bck, obj).await.map_err(serr)?;
    match reader.body {
        ObjBody::Small(b) => w.write(&b).await.map_err(serr)?,
        ObjBody::Mapped(b) => w.write(&b).await.map_err(serr)?,
        ObjBody::File(f) => {
            let mut chunks = ais_storage::MappedChunks::new(f, 0, reader.info.attrs.size);
            while let Some(c) = chunks.next_chunk().await {
                let c = c.map_err(|source| {
                    serr(ais_storage::StorageError::Io {
                        context: "read the object to append to".into(),
                        source,
                    })
                })?;
                w.write(&c).await.map_err(serr)?;
            }
        }
    }
    w.park().await.map_err(serr)
}
