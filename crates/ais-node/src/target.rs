//! Target handlers: object GET/HEAD/PUT/DELETE against local storage, the
//! internal endpoints the proxy and other targets use (listing pages, local
//! attribute lookups, local deletes), and the "stale map" rules: a request for
//! an object this target does not own is re-redirected to the owner once, and
//! a GET that misses locally looks on the other targets before answering 404.

use crate::http::{
    bck_obj, empty, expect_method, json_ok, redirect, split_first, unknown_path, Ctx, Res,
};
use crate::node::Node;
use ais_core::api::PropSet;
use ais_core::meta::{BucketProps, ObjAttrs, Snode};
use ais_core::{AisError, Bck};
use ais_storage::{ObjBody, ObjInfo, StorageError};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use std::sync::Arc;

/// Percent-encoding for object names in URL paths (keeps `/`).
pub const PATH_ENC: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn enc(obj: &str) -> String {
    percent_encoding::utf8_percent_encode(obj, PATH_ENC).to_string()
}

pub fn storage_err(node: &Node, bck: &Bck, obj: &str, e: StorageError) -> AisError {
    match e {
        StorageError::NotFound => AisError::object_not_found(&node.name, bck, obj),
        StorageError::Conflict(why) => {
            AisError::new(409, format!("cannot store {}/{obj}: {why}", bck.cname()))
        }
        StorageError::Corrupt { stored, computed } => AisError::new(
            500,
            format!(
                "{}: {}/{obj} is corrupted: stored xxhash {stored}, computed {computed}",
                node.name,
                bck.cname()
            ),
        )
        .with_tcode("ErrBadCksum"),
        e => AisError::internal(format!("{}: {}/{obj}: {e}", node.name, bck.cname())),
    }
}

fn bucket_props(node: &Node, bck: &Bck) -> Result<BucketProps, AisError> {
    node.meta
        .with_bmd(|b| b.buckets.get(&bck.name).cloned())
        .ok_or_else(|| AisError::bucket_not_found(bck))
}

/// The owner of an object if it is not this target (`None`: we own it, or
/// the request already hopped once and must be served here).
fn foreign_owner(node: &Node, ctx: &Ctx, bck: &Bck, obj: &str) -> Option<String> {
    if ctx.query.get("ais_hop").is_some() {
        return None;
    }
    node.meta.with_smap(|s| {
        s.and_then(|s| s.owner(&bck.obj_uname(obj)))
            .filter(|o| o.daemon_id != node.id)
            .map(|o| o.url().to_string())
    })
}

fn other_targets(node: &Node) -> Vec<Snode> {
    node.meta.with_smap(|s| {
        s.map(|s| {
            s.active_targets()
                .filter(|t| t.daemon_id != node.id)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
    })
}

/// Asks the other targets whether they hold the object (placement changed
/// since it was written); returns the first that does.
async fn find_on_neighbors(node: &Node, bck: &Bck, obj: &str) -> Option<Snode> {
    let others = other_targets(node);
    let futs = others.into_iter().map(|t| {
        let url = format!("{}/v1/internal/objattrs/{}/{}", t.url(), bck.name, enc(obj));
        let req = node.http.get(url);
        Box::pin(async move {
            match req.send().await {
                Ok(r) if r.status().is_success() => Some(t),
                _ => None,
            }
        })
    });
    let mut pending: Vec<_> = futs.collect();
    while !pending.is_empty() {
        let (res, _, rest) = futures::future::select_all(pending).await;
        if res.is_some() {
            return res;
        }
        pending = rest;
    }
    None
}

pub async fn objects(node: &Arc<Node>, ctx: &Ctx, rest: &str, body: Body) -> Res {
    let (bck, obj) = bck_obj(ctx, rest)?;
    let props = bucket_props(node, &bck)?;
    match ctx.method {
        Method::GET => get(node, ctx, &bck, &obj, &props).await,
        Method::HEAD => head(node, ctx, &bck, &obj).await,
        Method::PUT => put(node, ctx, &bck, &obj, body).await,
        Method::DELETE => delete(node, ctx, &bck, &obj).await,
        _ => Err(AisError::new(
            405,
            format!("method {} is not allowed on {}", ctx.method, ctx.path),
        )),
    }
}

/// The object is not on this target: send the client to its owner (stale
/// map), else to a target that still holds it (placement changed since it was
/// written), else 404. A request that already hopped is answered here.
async fn not_here(node: &Node, ctx: &Ctx, bck: &Bck, obj: &str, foreign: Option<String>) -> Res {
    if let Some(owner) = foreign {
        return Ok(hop_redirect(node, ctx, &owner));
    }
    if ctx.query.get("ais_hop").is_none() {
        if let Some(t) = find_on_neighbors(node, bck, obj).await {
            return Ok(hop_redirect(node, ctx, t.url()));
        }
    }
    Err(AisError::object_not_found(&node.name, bck, obj))
}

fn hop_redirect(node: &Node, ctx: &Ctx, url: &str) -> Response {
    redirect(
        ctx,
        url,
        StatusCode::TEMPORARY_REDIRECT,
        &node.id,
        "&ais_hop=1",
    )
}

async fn get(node: &Arc<Node>, ctx: &Ctx, bck: &Bck, obj: &str, props: &BucketProps) -> Res {
    let store = node.store()?;
    let foreign = foreign_owner(node, ctx, bck, obj);
    if let Some(etl) = crate::etl::etl_param(node, ctx) {
        // Transform where the object lives: find it first, as for a plain GET.
        match store.head(bck, obj).await {
            Ok(_) => {
                let args = ctx.query.get("etl_args").unwrap_or("");
                return crate::etl::transform_local(node, &etl, bck, obj, args).await;
            }
            Err(StorageError::NotFound) => {
                return not_here(node, ctx, bck, obj, foreign).await;
            }
            Err(e) => return Err(storage_err(node, bck, obj, e)),
        }
    }
    let reader = match store.open_obj(bck, obj).await {
        Ok(r) => r,
        Err(StorageError::NotFound) => {
            return not_here(node, ctx, bck, obj, foreign).await;
        }
        Err(e) => return Err(storage_err(node, bck, obj, e)),
    };
    if props.checksum.validate_warm_get {
        store
            .verify(bck, obj, &reader.info.attrs)
            .await
            .map_err(|e| storage_err(node, bck, obj, e))?;
    }
    let size = reader.info.attrs.size;
    let range = match ctx.headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) => Some(parse_range(r, size).ok_or_else(|| {
            AisError::new(
                416,
                format!(
                    "invalid range \"{r}\" for {}/{obj} of size {size}",
                    bck.cname()
                ),
            )
        })?),
        None => None,
    };
    let (start, len) = range.unwrap_or((0, size));
    let body = match reader.body {
        ObjBody::Mapped(m) => {
            let b = bytes::Bytes::from_owner(m);
            Body::from(b.slice(start as usize..(start + len) as usize))
        }
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
            use std::io::Seek;
            let mut file = file;
            if start > 0 {
                file.seek(std::io::SeekFrom::Start(start))
                    .map_err(|e| AisError::internal(format!("seek {}/{obj}: {e}", bck.cname())))?;
            }
            let file = tokio::fs::File::from_std(file);
            use tokio::io::AsyncReadExt;
            let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), 1024 * 1024);
            Body::from_stream(stream)
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
    obj_headers(
        h,
        &reader.info,
        &PropSet::parse("checksum,atime,version,custom")?,
    );
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

fn obj_headers(h: &mut HeaderMap, info: &ObjInfo, props: &PropSet) {
    let a = &info.attrs;
    let mut put = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.append(k, v);
        }
    };
    if props.checksum && !a.cksum_type.is_empty() {
        put("Ais-Checksum-Type", a.cksum_type.clone());
        put("Ais-Checksum-Value", a.cksum_value.clone());
    }
    if props.atime {
        put("Ais-Atime", info.atime_ns.to_string());
    }
    if props.version {
        put("Ais-Version", a.version.to_string());
    }
    if props.custom {
        for (k, v) in &a.custom {
            put("Ais-Custom-Md", format!("{k}={v}"));
        }
    }
}

async fn head(node: &Arc<Node>, ctx: &Ctx, bck: &Bck, obj: &str) -> Res {
    let store = node.store()?;
    let v1 = ctx.query.get("props").is_none();
    let props = if v1 {
        PropSet::parse("size,checksum,atime,version,custom,location,copies")?
    } else {
        PropSet::parse(ctx.query.get("props").unwrap_or(""))?
    };
    let info = match store.head(bck, obj).await {
        Ok(i) => i,
        Err(StorageError::NotFound) => {
            let foreign = foreign_owner(node, ctx, bck, obj);
            return not_here(node, ctx, bck, obj, foreign).await;
        }
        Err(e) => return Err(storage_err(node, bck, obj, e)),
    };
    let mut r = empty(StatusCode::OK);
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(info.attrs.size));
    h.insert("Ais-Present", HeaderValue::from_static("true"));
    obj_headers(h, &info, &props);
    if props.location || v1 {
        if let Ok(v) = HeaderValue::from_str(&format!("{}:mp[{}]", node.name, "local")) {
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

fn put_headers(r: &mut Response, a: &ObjAttrs) {
    let h = r.headers_mut();
    for (k, v) in [
        ("Ais-Checksum-Type", a.cksum_type.clone()),
        ("Ais-Checksum-Value", a.cksum_value.clone()),
        ("Ais-Version", a.version.to_string()),
        ("Ais-Atime", a.mtime_ns.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
}

async fn put(node: &Arc<Node>, ctx: &Ctx, bck: &Bck, obj: &str, body: Body) -> Res {
    let store = node.store()?;
    if let Some(owner) = foreign_owner(node, ctx, bck, obj) {
        return Ok(hop_redirect(node, ctx, &owner));
    }
    if let Some(to) = ctx.query.get("object_to") {
        return copy_object(node, ctx, bck, obj, to).await;
    }
    let expected: Option<u64> = ctx
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let mut w = store
        .begin_put(bck, obj)
        .await
        .map_err(|e| storage_err(node, bck, obj, e))?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            AisError::bad_request(format!(
                "PUT {}/{obj}: failed to receive the body after {} bytes ({e}); nothing was stored",
                bck.cname(),
                w.written()
            ))
        })?;
        w.write(&chunk)
            .await
            .map_err(|e| storage_err(node, bck, obj, e))?;
    }
    if let Some(n) = expected {
        if n != w.written() {
            return Err(AisError::bad_request(format!(
                "PUT {}/{obj}: received {} of {n} bytes; nothing was stored",
                bck.cname(),
                w.written()
            )));
        }
    }
    // Custom metadata as `Ais-Custom-Md: key=value` headers (one per pair,
    // or comma-separated), kept with the object.
    let custom: std::collections::BTreeMap<String, String> = ctx
        .headers
        .get_all("ais-custom-md")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let attrs = w
        .commit(custom)
        .await
        .map_err(|e| storage_err(node, bck, obj, e))?;
    let mut r = empty(StatusCode::OK);
    put_headers(&mut r, &attrs);
    Ok(r)
}

/// `PUT /v1/objects/SRC/O?object_to=ais/@#/DST/O2[&etl_name=E]`: copy (or
/// transform) one object stored here into another bucket, no job needed.
async fn copy_object(node: &Arc<Node>, ctx: &Ctx, bck: &Bck, obj: &str, to: &str) -> Res {
    let (dbck, dobj) = Bck::parse_uname(to)?;
    ais_core::names::validate_object_name(&dobj)?;
    bucket_props(node, &dbck)?;
    let store = node.store()?;
    let info = store
        .head(bck, obj)
        .await
        .map_err(|e| storage_err(node, bck, obj, e))?;
    let path = store.obj_path(bck, obj);
    let data = match crate::etl::etl_param(node, ctx) {
        Some(etl) => {
            let mgr = node
                .etl
                .clone()
                .ok_or_else(|| AisError::internal("ETL is not available"))?;
            let rt = mgr
                .get(&etl)
                .ok_or_else(|| AisError::etl_not_found(&node.name, &etl))?;
            let cname = format!("{}/{obj}", bck.cname());
            let args = ctx.query.get("etl_args").unwrap_or("");
            Some(
                rt.transform(&cname, &path.to_string_lossy(), info.attrs.size, args)
                    .await
                    .map_err(|e| {
                        AisError::new(
                            ais_etl::status_of(&e),
                            format!(
                                "{}: etl job {etl} failed to transform {cname}: {e}",
                                node.name
                            ),
                        )
                    })?,
            )
        }
        None => None,
    };
    crate::jobs::put_to_owner(node, &dbck.name, &dobj, data, &path, Default::default())
        .await
        .map_err(|(msg, code)| {
            AisError::new(
                code,
                format!(
                    "copy {}/{obj} to {}/{dobj}: {msg}",
                    bck.cname(),
                    dbck.cname()
                ),
            )
        })?;
    Ok(empty(StatusCode::OK))
}

async fn delete(node: &Arc<Node>, ctx: &Ctx, bck: &Bck, obj: &str) -> Res {
    let store = node.store()?;
    if let Some(owner) = foreign_owner(node, ctx, bck, obj) {
        return Ok(hop_redirect(node, ctx, &owner));
    }
    let local = match store.delete(bck, obj).await {
        Ok(()) => true,
        Err(StorageError::NotFound) => false,
        Err(e) => return Err(storage_err(node, bck, obj, e)),
    };
    // Stale copies on former owners would resurface through get-from-neighbor.
    let futs = other_targets(node).into_iter().map(|t| {
        let url = format!("{}/v1/internal/objects/{}/{}", t.url(), bck.name, enc(obj));
        let req = node.http.delete(url);
        async move { matches!(req.send().await, Ok(r) if r.status().is_success()) }
    });
    let remote = futures::future::join_all(futs).await.into_iter().any(|x| x);
    if local || remote {
        Ok(empty(StatusCode::OK))
    } else {
        Err(AisError::object_not_found(&node.name, bck, obj))
    }
}

/// `/v1/internal/...`: node-to-node calls, never redirected.
pub async fn internal(node: &Arc<Node>, ctx: &Ctx, rest: &str, _body: Body) -> Res {
    let store = node.store()?;
    let (what, rest) = split_first(rest);
    match what {
        "list" => {
            expect_method(ctx, &[Method::GET])?;
            let bck = Bck::ais(rest);
            bucket_props(node, &bck)?;
            let prefix = ctx.query.get("prefix").unwrap_or("").to_string();
            let after = ctx.query.get("after").unwrap_or("").to_string();
            let limit: usize = ctx
                .query
                .get("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(1000);
            let props = PropSet::parse(ctx.query.get("props").unwrap_or(""))?;
            let store = store.clone();
            let name = node.name.clone();
            let page = tokio::task::spawn_blocking(move || {
                ais_storage::list_objects(&store, &bck, &prefix, &after, limit, &props, &name)
            })
            .await
            .map_err(|e| AisError::internal(e.to_string()))?
            .map_err(|e| AisError::internal(format!("{}: listing failed: {e}", node.name)))?;
            json_ok(&page)
        }
        "objattrs" => {
            let (bck, obj) = bck_obj(ctx, rest)?;
            match store.head(&bck, &obj).await {
                Ok(i) => json_ok(&i.attrs),
                Err(e) => Err(storage_err(node, &bck, &obj, e)),
            }
        }
        "objects" => {
            expect_method(ctx, &[Method::DELETE])?;
            let (bck, obj) = bck_obj(ctx, rest)?;
            store
                .delete(&bck, &obj)
                .await
                .map_err(|e| storage_err(node, &bck, &obj, e))?;
            Ok(empty(StatusCode::OK))
        }
        _ => Err(unknown_path(ctx)),
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
