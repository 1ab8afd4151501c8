//! HTTP front door of a node: one dispatcher maps AIStore's paths (`/v1/...`
//! and the easy URLs `/ais/...`) to proxy or target handlers, and every error
//! is rendered here in AIStore's JSON shape (in `Hdr-Error` for HEAD).

use crate::node::Node;
use crate::{proxy, target};
use ais_core::error::ErrBody;
use ais_core::meta::NodeType;
use ais_core::{AisError, Bck};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;

pub type Res = Result<Response, AisError>;

/// What handlers need to know about a request besides its body.
pub struct Ctx {
    pub method: Method,
    /// Raw (still percent-encoded) path.
    pub path: String,
    pub raw_query: String,
    pub query: Query,
    pub headers: HeaderMap,
    pub remote: SocketAddr,
}

#[derive(Default, Debug)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(raw: &str) -> Result<Self, AisError> {
        serde_urlencoded::from_str(raw)
            .map(Query)
            .map_err(|e| AisError::bad_request(format!("malformed query string: {e}")))
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
}

pub fn router(node: Arc<Node>) -> Router {
    Router::new().fallback(dispatch).with_state(node)
}

async fn dispatch(
    State(node): State<Arc<Node>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let query = match Query::parse(&raw_query) {
        Ok(q) => q,
        Err(e) => {
            let ctx = Ctx {
                method: parts.method,
                path: parts.uri.path().to_string(),
                raw_query,
                query: Query::default(),
                headers: parts.headers,
                remote,
            };
            return error_response(&node, &ctx, e);
        }
    };
    let ctx = Ctx {
        method: parts.method,
        path: parts.uri.path().to_string(),
        raw_query,
        query,
        headers: parts.headers,
        remote,
    };
    match route(&node, &ctx, body).await {
        Ok(r) => r,
        Err(e) => {
            if e.status >= 500 {
                tracing::warn!(method = %ctx.method, path = %ctx.path, status = e.status, error = %e.message, "request failed");
            }
            error_response(&node, &ctx, e)
        }
    }
}

async fn route(node: &Arc<Node>, ctx: &Ctx, body: Body) -> Res {
    let path = ctx.path.as_str();
    let (head, rest) = split_first(path.trim_start_matches('/'));
    match head {
        "v1" => {}
        "ais" => return easy_url(node, ctx, rest, body).await,
        "gs" | "gcp" | "s3" | "aws" | "az" | "azure" => {
            return Err(AisError::new(
                501,
                format!(
                    "provider \"{head}\" is not supported: aistore-rs stores ais:// buckets only"
                ),
            ))
        }
        _ => return Err(unknown_path(ctx)),
    }
    let (res, rest) = split_first(rest);
    match (res, node.kind) {
        ("health", _) => health(node),
        ("daemon", _) => daemon_info(node, ctx),
        ("metasync", _) => {
            expect_method(ctx, &[Method::PUT])?;
            let sync = serde_json::from_slice(&read_body(body, 64 << 20).await?)
                .map_err(|e| AisError::bad_request(format!("malformed metasync: {e}")))?;
            node.apply_sync(&sync)?;
            Ok(empty(StatusCode::OK))
        }
        ("cluster", NodeType::Proxy) => proxy::cluster(node, ctx, rest, body).await,
        ("cluster", NodeType::Target) if rest.is_empty() => daemon_info(node, ctx),
        ("buckets", NodeType::Proxy) => proxy::buckets(node, ctx, rest, body).await,
        ("objects", NodeType::Proxy) => proxy::objects(node, ctx, rest, body).await,
        ("objects", NodeType::Target) => target::objects(node, ctx, rest, body).await,
        ("internal", NodeType::Target) if rest.starts_with("jobs") => {
            crate::jobs::target_internal(
                node,
                ctx,
                rest.trim_start_matches("jobs").trim_start_matches('/'),
                body,
            )
            .await
        }
        ("internal", NodeType::Target) => match rest.strip_prefix("etl") {
            Some(r) if r.is_empty() || r.starts_with('/') => {
                crate::etl::target_internal(node, ctx, r.trim_start_matches('/'), body).await
            }
            _ => target::internal(node, ctx, rest, body).await,
        },
        ("etl", NodeType::Proxy) => crate::etl::proxy(node, ctx, rest, body).await,
        ("etl", NodeType::Target) => crate::etl::transformer_object(node, ctx, rest).await,
        _ => Err(unknown_path(ctx)),
    }
}

/// `/ais/<bucket>/<object>` and friends, as in AIStore's curl docs.
async fn easy_url(node: &Arc<Node>, ctx: &Ctx, rest: &str, body: Body) -> Res {
    let (bucket, obj) = split_first(rest);
    if node.kind == NodeType::Target {
        return target::objects(node, ctx, rest, body).await;
    }
    if bucket.is_empty() {
        return proxy::buckets(node, ctx, "", body).await;
    }
    if obj.is_empty() {
        return proxy::buckets(node, ctx, bucket, body).await;
    }
    proxy::objects(node, ctx, rest, body).await
}

fn health(node: &Node) -> Res {
    if node.joined.load(std::sync::atomic::Ordering::Relaxed) {
        Ok(empty(StatusCode::OK))
    } else {
        Err(AisError::new(
            503,
            format!("{} is starting: not joined the cluster yet", node.name),
        ))
    }
}

pub fn daemon_info(node: &Node, ctx: &Ctx) -> Res {
    match ctx.query.get("what").unwrap_or("") {
        "smap" => json_ok(
            &node
                .meta
                .smap()
                .ok_or_else(|| AisError::new(503, "no cluster map yet"))?,
        ),
        "bmd" => json_ok(&node.meta.bmd()),
        "etlmd" => json_ok(&node.meta.etlmd()),
        "snode" => json_ok(&node.snode),
        other => Err(AisError::bad_request(format!(
            "unsupported what=\"{other}\" (supported: smap, bmd, etlmd, snode)"
        ))),
    }
}

pub fn unknown_path(ctx: &Ctx) -> AisError {
    AisError::new(
        404,
        format!("invalid URL path \"{}\" (method {})", ctx.path, ctx.method),
    )
}

pub fn expect_method(ctx: &Ctx, allowed: &[Method]) -> Result<(), AisError> {
    if allowed.contains(&ctx.method) {
        Ok(())
    } else {
        Err(AisError::new(
            405,
            format!("method {} is not allowed on {}", ctx.method, ctx.path),
        ))
    }
}

pub fn split_first(s: &str) -> (&str, &str) {
    match s.split_once('/') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    }
}

/// Bucket from a path segment and the `provider` query parameter.
pub fn bck_from(ctx: &Ctx, raw_name: &str) -> Result<Bck, AisError> {
    let name = pct_decode(raw_name)?;
    Bck::validated(&name, ctx.query.get("provider"))
}

pub fn pct_decode(s: &str) -> Result<String, AisError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| AisError::bad_request(format!("\"{s}\" is not valid UTF-8 once decoded")))
}

/// `<bucket>/<object...>` from the rest of an objects path, validated.
pub fn bck_obj(ctx: &Ctx, rest: &str) -> Result<(Bck, String), AisError> {
    let (b, o) = split_first(rest);
    if b.is_empty() {
        return Err(AisError::bad_request("missing bucket name in URL path"));
    }
    let bck = bck_from(ctx, b)?;
    let obj = pct_decode(o)?;
    if obj.is_empty() {
        return Err(AisError::bad_request(format!(
            "missing object name in URL path (expected /v1/objects/{}/OBJECT)",
            bck.name
        )));
    }
    ais_core::names::validate_object_name(&obj)?;
    Ok((bck, obj))
}

pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, AisError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| AisError::bad_request(format!("failed to read request body: {e}")))
}

pub fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

pub fn json_ok<T: serde::Serialize>(v: &T) -> Res {
    let raw = serde_json::to_vec(v).map_err(|e| AisError::internal(e.to_string()))?;
    Ok(bytes_response(StatusCode::OK, "application/json", raw))
}

pub fn bytes_response(status: StatusCode, ctype: &'static str, raw: Vec<u8>) -> Response {
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

pub fn error_response(node: &Node, ctx: &Ctx, e: AisError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = ErrBody {
        tcode: e.tcode,
        message: e.message,
        method: ctx.method.to_string(),
        url_path: ctx.path.clone(),
        remote_addr: ctx.remote.to_string(),
        caller: String::new(),
        node: node.name.clone(),
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
    r
}

/// 301/307 to `base` + the original path and query, tagged with our id.
pub fn redirect(ctx: &Ctx, base: &str, status: StatusCode, pid: &str, extra: &str) -> Response {
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
    let mut out = Vec::new();
    loop {
        out.push(D[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}
