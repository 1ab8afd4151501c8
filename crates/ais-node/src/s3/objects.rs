//! Object operations: Get/Head (ranges, conditions, inline ETL), Put
//! (plain or aws-chunked, Content-MD5), Copy, Delete, DeleteObjects. Reads
//! go to the owner through the native API and stream back; writes stream to
//! the owner's S3 side (`target::s3`), which hashes and commits.

use super::body::{self, Failure};
use super::error::{S3Error, S3Result};
use super::sigv4::Signed;
use super::xml::{self, Xml};
use super::{empty, http_date, iso8601, owner, xml_ok, Req};
use crate::rpc::s3::{Stored, ETAG_KEY, META_HEADER, SIZE_HEADER};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use std::collections::BTreeMap;

/// Query parameter and header that select an inline ETL on GET.
pub const ETL_PARAM: &str = "etl_name";
pub const ETL_HEADER: &str = "x-ais-etl-name";
pub const ETL_ARGS_PARAM: &str = "etl_args";
pub const ETL_ARGS_HEADER: &str = "x-ais-etl-args";
/// The ETLs applied after the first, comma-separated (`etl_a >> etl_b`).
pub const ETL_PIPELINE_PARAM: &str = "etl_pipeline";
pub const ETL_PIPELINE_HEADER: &str = "x-ais-etl-pipeline";

/// What a native GET/HEAD told us about an object.
pub(crate) struct ObjHead {
    pub etag: String,
    pub mtime_ns: i64,
    pub custom: Vec<(String, String)>,
}

impl ObjHead {
    pub fn from_native(h: &HeaderMap) -> Self {
        let custom: Vec<(String, String)> = h
            .get_all("ais-custom-md")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let etag = custom
            .iter()
            .find(|(k, _)| k == ETAG_KEY)
            .map(|(_, v)| v.clone())
            .or_else(|| {
                h.get("ais-checksum-value")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let mtime_ns = h
            .get("ais-atime")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Self {
            etag,
            mtime_ns,
            custom,
        }
    }

    /// The S3 metadata kept with the object (`Content-Type`, `x-amz-meta-*`).
    pub fn meta(&self) -> BTreeMap<String, String> {
        self.custom
            .iter()
            .filter(|(k, _)| is_s3_meta(k))
            .cloned()
            .collect()
    }

    fn put_headers(&self, h: &mut HeaderMap) {
        let mut set = |k: &str, v: &str| {
            if let (Ok(k), Ok(v)) = (
                header::HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                h.insert(k, v);
            }
        };
        if !self.etag.is_empty() {
            set("etag", &format!("\"{}\"", self.etag));
        }
        if self.mtime_ns > 0 {
            set("last-modified", &http_date(self.mtime_ns));
        }
        set("content-type", "application/octet-stream");
        for (k, v) in &self.custom {
            if is_s3_meta(k) {
                set(k, v);
            }
        }
    }
}

fn is_s3_meta(k: &str) -> bool {
    k.eq_ignore_ascii_case("content-type") || k.to_ascii_lowercase().starts_with("x-amz-meta-")
}

/// The metadata a PUT (or Create) carries, for `target::s3`.
pub(crate) fn request_meta(r: &Req<'_>) -> BTreeMap<String, String> {
    r.ctx
        .headers
        .iter()
        .filter(|(k, _)| is_s3_meta(k.as_str()))
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (canonical_meta_name(k.as_str()), v.to_string()))
        })
        .collect()
}

fn canonical_meta_name(k: &str) -> String {
    if k.eq_ignore_ascii_case("content-type") {
        "Content-Type".into()
    } else {
        k.to_ascii_lowercase()
    }
}

pub(crate) fn meta_header(meta: &BTreeMap<String, String>) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(meta).unwrap_or_default())
}

/// The conditional headers: `Some(304)`, `Err(412)`, or go on.
fn conditions(r: &Req<'_>, oh: &ObjHead) -> S3Result<Option<StatusCode>> {
    let matches = |list: &str| {
        list.split(',')
            .map(|e| e.trim().trim_start_matches("W/").trim_matches('"'))
            .any(|e| e == "*" || e == oh.etag)
    };
    let secs = oh.mtime_ns.div_euclid(1_000_000_000);
    let date = |v: &str| {
        httpdate::parse_http_date(v).ok().and_then(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs() as i64)
        })
    };
    if let Some(v) = r.header("if-match") {
        if !matches(v) {
            return Err(S3Error::precondition_failed());
        }
    } else if let Some(t) = r.header("if-unmodified-since").and_then(date) {
        if secs > t {
            return Err(S3Error::precondition_failed());
        }
    }
    if let Some(v) = r.header("if-none-match") {
        if matches(v) {
            return Ok(Some(StatusCode::NOT_MODIFIED));
        }
    } else if let Some(t) = r.header("if-modified-since").and_then(date) {
        if secs <= t {
            return Ok(Some(StatusCode::NOT_MODIFIED));
        }
    }
    Ok(None)
}

fn has_conditions(r: &Req<'_>) -> bool {
    [
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
    ]
    .iter()
    .any(|h| r.header(h).is_some())
}

/// GetObject / HeadObject.
pub async fn get_object(r: &Req<'_>) -> S3Result<Response> {
    let bck = r.bck()?;
    let key = r.key()?;
    let to = owner(r.core, &bck, key)?;
    let rpc = &r.core.rpc;
    let is_head = r.ctx.method == Method::HEAD;
    let etl = r
        .q(ETL_PARAM)
        .or_else(|| r.header(ETL_HEADER))
        .filter(|e| !e.is_empty());
    let range = r.header("range");
    if etl.is_none()
        && (r.q(ETL_PIPELINE_PARAM).is_some() || r.header(ETL_PIPELINE_HEADER).is_some())
    {
        return Err(S3Error::invalid_request(
            "etl_pipeline names the stages after the first ETL: it needs etl_name",
        ));
    }
    if let Some(etl) = etl {
        if is_head || range.is_some() || has_conditions(r) {
            return Err(S3Error::invalid_request(
                "an ETL GET takes no Range or conditional headers (and there is no ETL HEAD)",
            ));
        }
        let args = r
            .q(ETL_ARGS_PARAM)
            .or_else(|| r.header(ETL_ARGS_HEADER))
            .unwrap_or("");
        let mut query = vec![("etl_name", etl)];
        if !args.is_empty() {
            query.push(("etl_args", args));
        }
        // Checked by the target like a native GET's (stages that exist, a
        // bounded count): never dropped.
        if let Some(p) = r
            .q(ETL_PIPELINE_PARAM)
            .or_else(|| r.header(ETL_PIPELINE_HEADER))
            .filter(|p| !p.is_empty())
        {
            query.push(("etl_pipeline", p));
        }
        let resp = rpc
            .s3_read(&to, Method::GET, &bck.name, key, &query, None)
            .await
            .map_err(|e| r.api(e))?;
        let mut out = Response::new(Body::default());
        copy_header(resp.headers(), out.headers_mut(), header::CONTENT_LENGTH);
        out.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        *out.body_mut() = Body::from_stream(resp.bytes_stream());
        return Ok(out);
    }
    if is_head || has_conditions(r) {
        let resp = rpc
            .s3_read(&to, Method::HEAD, &bck.name, key, &[], None)
            .await
            .map_err(|e| r.api(e))?;
        let oh = ObjHead::from_native(resp.headers());
        if let Some(st) = conditions(r, &oh)? {
            let mut out = empty(st);
            oh.put_headers(out.headers_mut());
            out.headers_mut().remove(header::CONTENT_TYPE);
            return Ok(out);
        }
        if is_head {
            let mut out = empty(StatusCode::OK);
            oh.put_headers(out.headers_mut());
            copy_header(resp.headers(), out.headers_mut(), header::CONTENT_LENGTH);
            out.headers_mut()
                .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            return Ok(out);
        }
    }
    let resp = rpc
        .s3_read(&to, Method::GET, &bck.name, key, &[], range)
        .await
        .map_err(|e| r.api(e))?;
    let oh = ObjHead::from_native(resp.headers());
    let mut out = Response::new(Body::default());
    *out.status_mut() = resp.status();
    oh.put_headers(out.headers_mut());
    for h in [
        header::CONTENT_LENGTH,
        header::CONTENT_RANGE,
        header::ACCEPT_RANGES,
    ] {
        copy_header(resp.headers(), out.headers_mut(), h);
    }
    *out.body_mut() = Body::from_stream(resp.bytes_stream());
    Ok(out)
}

fn copy_header(from: &HeaderMap, to: &mut HeaderMap, name: header::HeaderName) {
    if let Some(v) = from.get(&name) {
        to.insert(name, v.clone());
    }
}

/// The request body, decoded and checked as it streams, plus the length
/// the client announced.
pub(crate) fn request_body(
    r: &Req<'_>,
    signed: &mut Signed,
    body: Body,
) -> S3Result<(reqwest::Body, Failure, Option<u64>)> {
    let sha = r.header("x-amz-content-sha256").unwrap_or("");
    let chunked = sha.starts_with("STREAMING-")
        || r.header("content-encoding")
            .is_some_and(|v| v.split(',').any(|e| e.trim() == "aws-chunked"));
    let num = |h: &str| -> S3Result<Option<u64>> {
        match r.header(h) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| S3Error::invalid_argument(format!("malformed {h} header"))),
        }
    };
    let expected = if chunked {
        num("x-amz-decoded-content-length")?
    } else {
        num("content-length")?
    };
    let fail = Failure::default();
    let spec = body::Spec {
        chunked,
        chunks: signed.chunks.take(),
        payload_sha256: signed.payload_sha256.take(),
        expected,
    };
    let stream = body::decode(body, spec, fail.clone());
    Ok((reqwest::Body::wrap_stream(stream), fail, expected))
}

/// Headers for `target::s3`'s PUT of an object or a part.
pub(crate) fn put_headers(
    r: &Req<'_>,
    size: Option<u64>,
    meta: Option<&BTreeMap<String, String>>,
) -> Vec<(&'static str, String)> {
    let mut h = Vec::new();
    if let Some(n) = size {
        h.push((SIZE_HEADER, n.to_string()));
    }
    if let Some(md5) = r.header("content-md5") {
        h.push(("Content-MD5", md5.to_string()));
    }
    if let Some(m) = meta {
        h.push((META_HEADER, meta_header(m)));
    }
    h
}

/// PutObject.
pub async fn put_object(r: &Req<'_>, signed: &mut Signed, body: Body) -> S3Result<Response> {
    let bck = r.bck()?;
    let key = r.key()?;
    let to = owner(r.core, &bck, key)?;
    let (stream, fail, size) = request_body(r, signed, body)?;
    let meta = request_meta(r);
    let hdrs = put_headers(r, size, Some(&meta));
    let stored = store(r, &to, "obj", &bck.name, key, &[], &hdrs, stream, &fail).await?;
    let mut out = empty(StatusCode::OK);
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", stored.etag)) {
        out.headers_mut().insert(header::ETAG, v);
    }
    Ok(out)
}

/// One call to a target's S3 side (`target::s3`) and its JSON answer.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn call<T: serde::de::DeserializeOwned>(
    r: &Req<'_>,
    to: &crate::rpc::Dest,
    method: Method,
    what: &str,
    bucket: &str,
    key: &str,
    query: &[(&str, &str)],
    hdrs: &[(&'static str, String)],
    body: Option<reqwest::Body>,
    fail: &Failure,
) -> S3Result<T> {
    let res = r
        .core
        .rpc
        .s3_internal(to, method, what, bucket, key, query, hdrs, body)
        .await;
    // A body that failed its checks on the way reports its own error.
    if let Some(e) = fail.take() {
        return Err(e);
    }
    res.map_err(|e| r.api(e))?
        .json::<T>()
        .await
        .map_err(|e| S3Error::internal(format!("{}: malformed answer: {e}", to.name)))
}

/// One streamed write (an object or a part) to a target's S3 side.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn store(
    r: &Req<'_>,
    to: &crate::rpc::Dest,
    what: &str,
    bucket: &str,
    key: &str,
    query: &[(&str, &str)],
    hdrs: &[(&'static str, String)],
    body: reqwest::Body,
    fail: &Failure,
) -> S3Result<Stored> {
    call(
        r,
        to,
        Method::PUT,
        what,
        bucket,
        key,
        query,
        hdrs,
        Some(body),
        fail,
    )
    .await
}

/// `x-amz-copy-source`: (bucket, key) of the source.
pub(crate) fn copy_source(r: &Req<'_>) -> S3Result<(ais_core::Bck, String)> {
    let raw = r.header("x-amz-copy-source").unwrap_or("");
    let raw = raw.split_once("?versionId=").map_or(raw, |(s, _)| s);
    let src = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| S3Error::invalid_argument("x-amz-copy-source is not valid UTF-8"))?;
    let src = src.trim_start_matches('/');
    let (b, k) = src
        .split_once('/')
        .ok_or_else(|| S3Error::invalid_argument("x-amz-copy-source must be BUCKET/KEY"))?;
    let bck = super::existing_bucket(r.core, b)?;
    ais_core::names::validate_object_name(k)
        .map_err(|e| S3Error::invalid_argument(e.to_string()))?;
    Ok((bck, k.to_string()))
}

/// The source of a copy as a stream, with its size and metadata.
pub(crate) async fn read_source(
    r: &Req<'_>,
    range: Option<&str>,
) -> S3Result<(reqwest::Body, Option<u64>, ObjHead)> {
    let (sbck, skey) = copy_source(r)?;
    let from = owner(r.core, &sbck, &skey)?;
    let resp = r
        .core
        .rpc
        .s3_read(&from, Method::GET, &sbck.name, &skey, &[], range)
        .await
        .map_err(|e| S3Error::from_api(e.into(), &skey))?;
    let size = resp.content_length();
    let oh = ObjHead::from_native(resp.headers());
    Ok((reqwest::Body::wrap_stream(resp.bytes_stream()), size, oh))
}

/// CopyObject: the source streams from its owner to the destination's.
pub async fn copy_object(r: &Req<'_>) -> S3Result<Response> {
    let bck = r.bck()?;
    let key = r.key()?;
    let to = owner(r.core, &bck, key)?;
    let (stream, size, src) = read_source(r, None).await?;
    let meta = match r.header("x-amz-metadata-directive") {
        Some(d) if d.eq_ignore_ascii_case("REPLACE") => request_meta(r),
        _ => src.meta(),
    };
    let mut hdrs = vec![(META_HEADER, meta_header(&meta))];
    if let Some(n) = size {
        hdrs.push((SIZE_HEADER, n.to_string()));
    }
    let stored = store(
        r,
        &to,
        "obj",
        &bck.name,
        key,
        &[],
        &hdrs,
        stream,
        &Failure::default(),
    )
    .await?;
    let mut x = Xml::doc();
    x.root("CopyObjectResult")
        .leaf("LastModified", &iso8601(stored.mtime_ns))
        .leaf("ETag", &format!("\"{}\"", stored.etag))
        .close("CopyObjectResult");
    Ok(xml_ok(x))
}

/// DeleteObject: 204 whether or not it existed, as S3.
pub async fn delete_object(r: &Req<'_>) -> S3Result<Response> {
    let bck = r.bck()?;
    let key = r.key()?;
    let to = owner(r.core, &bck, key)?;
    r.core
        .rpc
        .s3_delete(&to, &bck.name, key)
        .await
        .map_err(|e| r.api(e))?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// DeleteObjects (`POST /B?delete`), 16 deletes at a time.
pub async fn delete_objects(r: &Req<'_>, body: Body) -> S3Result<Response> {
    let bck = r.bck()?;
    let raw = crate::http::read_body(body, 4 << 20)
        .await
        .map_err(|e| S3Error::malformed_xml(e.to_string()))?;
    let doc = std::str::from_utf8(&raw).map_err(|_| S3Error::malformed_xml("not UTF-8"))?;
    let (keys, quiet) = xml::parse_delete(doc)?;
    let results: Vec<(String, S3Result<()>)> = futures::stream::iter(keys)
        .map(|k| {
            let bck = &bck;
            async move {
                let res = async {
                    ais_core::names::validate_object_name(&k)
                        .map_err(|e| S3Error::invalid_argument(e.to_string()))?;
                    let to = owner(r.core, bck, &k)?;
                    r.core
                        .rpc
                        .s3_delete(&to, &bck.name, &k)
                        .await
                        .map(drop)
                        .map_err(|e| S3Error::from_api(e.into(), &k))
                }
                .await;
                (k, res)
            }
        })
        .buffered(16)
        .collect()
        .await;
    let mut x = Xml::doc();
    x.root("DeleteResult");
    for (k, res) in &results {
        match res {
            Ok(()) if quiet => {}
            Ok(()) => {
                x.open("Deleted").leaf("Key", k).close("Deleted");
            }
            Err(e) => {
                x.open("Error")
                    .leaf("Key", k)
                    .leaf("Code", e.code)
                    .leaf("Message", &e.message)
                    .close("Error");
            }
        }
    }
    x.close("DeleteResult");
    Ok(xml_ok(x))
}
