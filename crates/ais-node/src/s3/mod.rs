//! The S3 front door: AWS S3's REST API at `/s3` (path style:
//! `/s3/BUCKET/KEY`; virtual-host style `BUCKET.<AIS_S3_DOMAIN>/KEY` when a
//! domain is configured), served by whichever node receives the request —
//! proxy or target — with **no redirects**: object bodies stream from the
//! owner target through this node to the client, and from the client
//! through this node to the owner (`rpc::s3`). S3 buckets are `ais://`
//! buckets and S3 objects are the native objects (the S3 `ETag` is the MD5
//! kept in an object's custom metadata, or its xxhash for objects written
//! natively).
//!
//! Owns: routing of S3 operations ([`serve`]), SigV4 (`sigv4`), request
//! bodies (`body`: aws-chunked, payload checks), S3's XML (`xml`) and
//! errors (`error`); the operations live in `objects`, `buckets`
//! (incl. listings) and `multipart`. The owner target's part is
//! `target::s3`. This module uses only `http`, `rpc`, `state` and the
//! library crates, so it runs the same on both roles.

pub mod body;
mod buckets;
pub mod error;
mod multipart;
mod objects;
pub mod sigv4;
pub mod xml;

use crate::http::Ctx;
use crate::rpc::Dest;
use crate::state::NodeCore;
use ais_core::Bck;
use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use error::{S3Error, S3Result};

pub use sigv4::hex;

/// Subresources S3 clients may ask for that are not implemented (a clear
/// `NotImplemented` instead of a wrong answer).
const UNSUPPORTED: &[&str] = &[
    "acl",
    "policy",
    "policyStatus",
    "tagging",
    "cors",
    "lifecycle",
    "encryption",
    "replication",
    "website",
    "logging",
    "notification",
    "object-lock",
    "retention",
    "legal-hold",
    "versions",
    "torrent",
    "restore",
    "select",
    "accelerate",
    "requestPayment",
    "ownershipControls",
    "publicAccessBlock",
    "analytics",
    "inventory",
    "metrics",
    "intelligent-tiering",
    "attributes",
];

/// One S3 request, decoded.
pub(crate) struct Req<'a> {
    pub core: &'a NodeCore,
    pub ctx: &'a Ctx,
    pub bucket: String,
    pub key: String,
}

impl Req<'_> {
    fn q(&self, k: &str) -> Option<&str> {
        self.ctx.query.get(k)
    }
    fn has(&self, k: &str) -> bool {
        self.ctx.query.get(k).is_some()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.ctx.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The request's bucket, which must exist.
    fn bck(&self) -> S3Result<Bck> {
        existing_bucket(self.core, &self.bucket)
    }

    /// The key, valid as an object name.
    fn key(&self) -> S3Result<&str> {
        ais_core::names::validate_object_name(&self.key)
            .map_err(|e| S3Error::new(StatusCode::BAD_REQUEST, "InvalidArgument", e.to_string()))?;
        Ok(&self.key)
    }

    fn api(&self, e: impl Into<crate::error::ApiError>) -> S3Error {
        S3Error::from_api(e.into(), &self.key)
    }
}

fn valid_bucket(name: &str) -> S3Result<Bck> {
    Bck::validated(name, None).map_err(|e| {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidBucketName",
            format!("the specified bucket is not valid: {e}"),
        )
    })
}

fn existing_bucket(core: &NodeCore, name: &str) -> S3Result<Bck> {
    let bck = valid_bucket(name)?;
    core.bucket_props(&bck)
        .map_err(|_| S3Error::no_such_bucket(name))?;
    Ok(bck)
}

/// The target that owns `bck/key`.
fn owner(core: &NodeCore, bck: &Bck, key: &str) -> S3Result<Dest> {
    core.owner(&bck.obj_uname(key))
        .map(|t| Dest::from(&t))
        .ok_or_else(|| S3Error::unavailable("the cluster has no storage targets yet"))
}

/// The primary proxy (bucket changes, listings).
fn primary(core: &NodeCore) -> S3Result<Dest> {
    core.meta
        .with_smap(|s| s.map(|s| Dest::from(&s.proxy_si)))
        .ok_or_else(|| S3Error::unavailable("no cluster map yet"))
}

/// The bucket named by a virtual-host style request (`Host:
/// BUCKET.<AIS_S3_DOMAIN>`), when a domain is configured.
pub fn vhost_bucket(ctx: &Ctx) -> Option<String> {
    static DOMAIN: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let domain = DOMAIN
        .get_or_init(|| {
            std::env::var("AIS_S3_DOMAIN")
                .ok()
                .map(|d| d.trim().trim_matches('.').to_ascii_lowercase())
                .filter(|d| !d.is_empty())
        })
        .as_ref()?;
    let host = ctx.headers.get(header::HOST)?.to_str().ok()?;
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let b = host
        .to_ascii_lowercase()
        .strip_suffix(domain.as_str())?
        .strip_suffix('.')?
        .to_string();
    (!b.is_empty()).then_some(b)
}

/// Serves one S3 request (`bucket`, `key`: still percent-encoded path
/// segments). Every error is S3's XML error.
pub async fn serve(core: &NodeCore, ctx: &Ctx, bucket: &str, key: &str, body: Body) -> Response {
    let dec = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
    };
    let (bucket, key) = match (dec(bucket), dec(key)) {
        (Ok(b), Ok(k)) => (b, k),
        _ => {
            return S3Error::invalid_argument("the path is not valid UTF-8 once decoded")
                .render(&ctx.method, &ctx.path)
        }
    };
    let resource = if key.is_empty() {
        format!("/{bucket}")
    } else {
        format!("/{bucket}/{key}")
    };
    let r = Req {
        core,
        ctx,
        bucket,
        key,
    };
    match route(&r, body).await {
        Ok(mut resp) => {
            if let Ok(v) = HeaderValue::from_str(&core.id) {
                resp.headers_mut().insert("x-amz-request-id", v);
            }
            resp
        }
        Err(e) => {
            if e.status.is_server_error() {
                tracing::warn!(method = %ctx.method, path = %ctx.path, code = e.code, error = %e.message, "S3 request failed");
            }
            e.render(&ctx.method, &resource)
        }
    }
}

async fn route(r: &Req<'_>, body: Body) -> S3Result<Response> {
    let mut signed = sigv4::verify(r.ctx)?;
    if crate::cred::get().is_some() && !sigv4::enforced() {
        return Err(S3Error::access_denied(
            "authentication is on (AIS_AUTH): configure S3 keys (AIS_S3_KEYS) to use the S3 API",
        ));
    }
    if let Some(sub) = UNSUPPORTED.iter().find(|s| r.has(s)) {
        return Err(S3Error::not_implemented(format!(
            "the ?{sub} subresource is not implemented by aistore-rs"
        )));
    }
    let m = &r.ctx.method;
    if r.bucket.is_empty() {
        return match *m {
            Method::GET => buckets::list_buckets(r),
            _ => Err(method_not_allowed(r)),
        };
    }
    if r.key.is_empty() {
        return match *m {
            Method::GET if r.has("uploads") => multipart::list_uploads(r).await,
            Method::GET if r.has("location") => buckets::location(r),
            Method::GET if r.has("versioning") => buckets::versioning(r),
            Method::GET => buckets::list_objects(r).await,
            Method::HEAD => buckets::head_bucket(r),
            Method::PUT => buckets::create_bucket(r, body).await,
            Method::DELETE => buckets::delete_bucket(r).await,
            Method::POST if r.has("delete") => objects::delete_objects(r, body).await,
            _ => Err(method_not_allowed(r)),
        };
    }
    let copy = r.header("x-amz-copy-source").is_some();
    match *m {
        Method::GET if r.has("uploadId") => multipart::list_parts(r).await,
        Method::GET | Method::HEAD => objects::get_object(r).await,
        Method::PUT if r.has("uploadId") => multipart::upload_part(r, &mut signed, body).await,
        Method::PUT if copy => objects::copy_object(r).await,
        Method::PUT => objects::put_object(r, &mut signed, body).await,
        Method::POST if r.has("uploads") => multipart::create(r).await,
        Method::POST if r.has("uploadId") => multipart::complete(r, body).await,
        Method::DELETE if r.has("uploadId") => multipart::abort(r).await,
        Method::DELETE => objects::delete_object(r).await,
        _ => Err(method_not_allowed(r)),
    }
}

fn method_not_allowed(r: &Req<'_>) -> S3Error {
    S3Error::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!(
            "the specified method {} is not allowed against this resource",
            r.ctx.method
        ),
    )
}

/// A 200 with an XML body.
fn xml_ok(x: xml::Xml) -> Response {
    xml_response(StatusCode::OK, x)
}

fn xml_response(status: StatusCode, x: xml::Xml) -> Response {
    let raw = x.finish();
    let len = raw.len();
    let mut r = Response::new(Body::from(raw));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    *r.status_mut() = status;
    r
}

fn empty(status: StatusCode) -> Response {
    crate::http::empty(status)
}

// ------------------------------------------------------------------ time

/// Days since the Unix epoch of a civil date (the inverse of the
/// days-to-civil step in `ais_storage`'s time formats).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2006-01-02T15:04:05.000Z` (S3's timestamps in XML).
pub fn iso8601(ns: i64) -> String {
    // `ais_storage`'s RFC 3339 has nanoseconds: S3 shows milliseconds.
    let s = ais_storage::rfc3339(ns.max(1));
    match s.split_once('.') {
        Some((secs, frac)) => format!("{secs}.{}Z", frac.get(..3).unwrap_or("000")),
        None => s,
    }
}

/// An HTTP date (`Last-Modified`).
fn http_date(ns: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64);
    httpdate::fmt_http_date(t)
}

/// Listing times (`02 Jan 06 15:04 UTC`, `ais_storage`'s format) back to ns.
fn from_rfc822(s: &str) -> Option<i64> {
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut it = s.split_whitespace();
    let d: u32 = it.next()?.parse().ok()?;
    let mon = it.next()?;
    let m = MON.iter().position(|x| *x == mon)? as u32 + 1;
    let y: i64 = 2000 + it.next()?.parse::<i64>().ok()?;
    let (hh, mm) = it.next()?.split_once(':')?;
    let (hh, mm): (i64, i64) = (hh.parse().ok()?, mm.parse().ok()?);
    let secs = days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60;
    Some(secs * 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            iso8601(1_700_000_000_123_000_000),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            from_rfc822("14 Nov 23 22:13 UTC"),
            Some(1_699_999_980_000_000_000)
        );
        assert_eq!(from_rfc822("garbage"), None);
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
