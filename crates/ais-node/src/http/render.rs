//! Responses: JSON/bytes/text bodies, redirects tagged with our id, and
//! errors in AIStore's JSON shape (in `Hdr-Error` for HEAD).

use super::{Ctx, Res};
use crate::error::ApiError;
use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;

pub fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

pub fn json_ok<T: serde::Serialize>(v: &T) -> Res {
    let raw = serde_json::to_vec(v).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(bytes_response(StatusCode::OK, "application/json", raw))
}

pub fn bytes_response(
    status: StatusCode,
    ctype: &'static str,
    raw: impl Into<bytes::Bytes>,
) -> Response {
    // A `Vec` or `Bytes` (a transform's output) goes out without a copy.
    let raw: bytes::Bytes = raw.into();
    let len = raw.len();
    let mut r = Response::new(Body::from(raw));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

/// Plain-text body (job ids, ETL names), as AIStore returns them.
pub fn text_ok(s: &str) -> Response {
    bytes_response(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        s.as_bytes().to_vec(),
    )
}

/// Full JSON error body as AIStore sends it.
#[derive(serde::Serialize)]
struct ErrBody {
    #[serde(skip_serializing_if = "String::is_empty")]
    tcode: String,
    message: String,
    method: String,
    url_path: String,
    remote_addr: String,
    caller: String,
    node: String,
    status: u16,
}

pub fn error_response(node_name: &str, ctx: &Ctx, e: ApiError) -> Response {
    let status = e.status();
    let retry_after = match &e {
        ApiError::TooManyRequests { retry_after_s, .. } => Some(*retry_after_s),
        _ => None,
    };
    let body = ErrBody {
        tcode: e.tcode().to_string(),
        message: e.to_string(),
        method: ctx.method.to_string(),
        url_path: ctx.path.clone(),
        remote_addr: ctx.remote.to_string(),
        caller: String::new(),
        node: node_name.to_string(),
        status: status.as_u16(),
    };
    let raw = serde_json::to_vec(&body).unwrap_or_default();
    if ctx.method == Method::HEAD {
        let mut r = empty(status);
        if let Ok(v) = HeaderValue::from_bytes(&raw) {
            r.headers_mut().insert("Hdr-Error", v);
        }
        return r;
    }
    let mut r = bytes_response(status, "application/json", raw);
    r.headers_mut().insert(
        "X-Content-Type-Options",
        HeaderValue::from_static("nosniff"),
    );
    if let Some(s) = retry_after {
        r.headers_mut()
            .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

/// 301/307 to `base` + the original path and query, tagged with our id.
pub fn redirect(ctx: &Ctx, base: &str, status: StatusCode, pid: &str, extra: &str) -> Response {
    redirect_bound(ctx, base, status, pid, extra, None)
}

/// [`redirect`] for a request whose body selects data (Get-Batch): with auth
/// on, its credential also binds `body`, so the same URL with another body
/// is not let in.
pub fn redirect_bound(
    ctx: &Ctx,
    base: &str,
    status: StatusCode,
    pid: &str,
    extra: &str,
    body: Option<&[u8]>,
) -> Response {
    let mut loc = String::with_capacity(base.len() + ctx.path.len() + ctx.raw_query.len() + 48);
    loc.push_str(base);
    loc.push_str(&ctx.path);
    loc.push('?');
    if !ctx.raw_query.is_empty() {
        loc.push_str(&ctx.raw_query);
        loc.push('&');
    }
    loc.push_str("pid=");
    loc.push_str(pid);
    loc.push_str("&utm=");
    loc.push_str(&base36(ais_core::now_ns() as u64));
    loc.push_str(extra);
    if let Some(c) = crate::cred::get() {
        // Auth on: this request was authorized; let the redirected one in
        // even when the client drops `Authorization` (another host:port).
        if let Some(r) = crate::cred::bearer(&ctx.headers).and_then(|t| c.token_ref(t)) {
            loc.push('&');
            if let Ok(pair) = serde_urlencoded::to_string([(crate::cred::TOKEN_PARAM, r)]) {
                loc.push_str(&pair);
            }
        }
        if let Some(b) = body {
            loc.push('&');
            loc.push_str(crate::cred::BODY_PARAM);
            loc.push('=');
            loc.push_str(&crate::cred::body_digest(b));
        }
        // It signs everything in the query so far: the credential must stay
        // the last parameter (`cred::split_redirect`).
        let q = loc.find('?').map_or("", |i| &loc[i + 1..]);
        let sig = c.sign_redirect(ctx.method.as_str(), &ctx.path, q);
        loc.push('&');
        loc.push_str(crate::cred::REDIRECT_PARAM);
        loc.push('=');
        loc.push_str(&sig);
    }
    let mut r = empty(status);
    if let Ok(v) = HeaderValue::from_str(&loc) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    r
}

fn base36(mut n: u64) -> String {
    const D: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = String::new();
    loop {
        out.insert(0, D[(n % 36) as usize] as char);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out
}
