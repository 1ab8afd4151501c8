//! A non-primary proxy: serves the data path itself (object redirects,
//! listings, Get-Batch, bucket HEAD and summaries, node reports) from its
//! copy of the cluster's metadata, and forwards everything that changes
//! metadata or lives on the primary (bucket and ETL control, jobs, cluster
//! actions, AuthN, joins) to the primary, streaming the request and the
//! answer through unchanged.
//!
//! A forwarded request carries [`FORWARDED`]: one that reaches a proxy
//! that is not the primary either (the maps disagree for a moment) is
//! refused with 503 rather than sent on again.

use super::Proxy;
use crate::error::ApiError;
use crate::http::{Ctx, Endpoint, Res};
use axum::body::Body;
use axum::http::{header, HeaderName, Method};
use futures::TryStreamExt;
use std::time::Duration;

/// The header a forwarded request carries (the forwarding proxy's id).
pub const FORWARDED: &str = "ais-forwarded-by";

/// Whether this (non-primary) proxy sends `ctx` to the primary.
pub fn needed(p: &Proxy, ctx: &Ctx, ep: &Endpoint<'_>) -> bool {
    if p.is_primary() {
        return false;
    }
    if crate::auth::authn::is_authn_path(&ctx.path) {
        return true;
    }
    let known = |b: &str| {
        ctx.bck(b)
            .ok()
            .is_some_and(|bck| p.core.meta.with_bmd(|m| m.buckets.contains_key(&bck.name)))
    };
    match ep {
        Endpoint::Health
        | Endpoint::Metrics
        | Endpoint::Daemon
        | Endpoint::DaemonSetConfig
        | Endpoint::Metasync
        | Endpoint::Raft(_)
        | Endpoint::Buckets
        | Endpoint::Moss(_)
        | Endpoint::S3 { .. }
        | Endpoint::Provider(_)
        | Endpoint::Unknown => false,
        // Reads of a bucket this proxy knows: listings, summaries, props.
        Endpoint::Bucket(b) => !(matches!(ctx.method, Method::GET | Method::HEAD) && known(b)),
        // Object requests are redirected to their target from here.
        Endpoint::Object { bucket, .. } => {
            !(matches!(
                ctx.method,
                Method::GET | Method::HEAD | Method::PUT | Method::DELETE
            ) && known(bucket))
        }
        // The control planes (ETL, jobs, cluster actions, membership) are
        // the primary's.
        _ => true,
    }
}

fn client() -> &'static reqwest::Client {
    static C: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        reqwest::Client::builder()
            // The primary's redirects go back to the client as they are.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            // An ETL's init may install its dependencies first.
            .timeout(Duration::from_secs(1800))
            .build()
            .unwrap_or_default()
    })
}

/// Hop-by-hop headers, never forwarded.
fn hop_by_hop(h: &HeaderName) -> bool {
    matches!(
        h.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "host"
    )
}

/// Sends the request to the primary and answers what it answered.
pub async fn to_primary(p: &Proxy, ctx: &Ctx, body: Body) -> Res {
    if ctx.headers.contains_key(FORWARDED) {
        return Err(ApiError::unavailable(format!(
            "{} is not the primary proxy either (the cluster map is changing); retry shortly",
            p.core.name
        )));
    }
    // A dot segment would be collapsed on the way (`b/d/../x` reaching the
    // primary as `b/x`): the request would act on another resource.
    let dot = ctx.path.split('/').any(|seg| {
        let seg = seg.to_ascii_lowercase().replace("%2e", ".");
        seg == "." || seg == ".."
    });
    if dot {
        return Err(ApiError::bad_request(format!(
            "{}: a \".\" or \"..\" path segment is not a valid name",
            ctx.path
        )));
    }
    let primary = p
        .core
        .meta
        .with_smap(|s| s.map(|s| s.proxy_si.url().to_string()))
        .or_else(|| p.core.join_url.clone())
        .ok_or_else(|| ApiError::unavailable("no cluster map yet"))?;
    if let Some(silent) = p.core.primary_silent_for() {
        let limit = p.core.config.current().duration("timeout.max_keepalive");
        if silent > limit {
            return Err(ApiError::unavailable(format!(
                "{}: the primary proxy ({primary}) has not answered for {:.1}s; this request \
                 needs it (data requests are served by any proxy); retry shortly",
                p.core.name,
                silent.as_secs_f64()
            )));
        }
    }
    let mut url = format!("{}{}", primary.trim_end_matches('/'), ctx.path);
    if !ctx.raw_query.is_empty() {
        url.push('?');
        url.push_str(&ctx.raw_query);
    }
    let method = reqwest::Method::from_bytes(ctx.method.as_str().as_bytes())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut req = client().request(method, url);
    for (k, v) in ctx.headers.iter() {
        if !hop_by_hop(k) {
            req = req.header(k.as_str(), v.as_bytes());
        }
    }
    req = req.header(FORWARDED, p.core.id.as_str());
    let stream = body
        .into_data_stream()
        .map_err(|e| std::io::Error::other(e.to_string()));
    let send = req.body(reqwest::Body::wrap_stream(stream)).send();
    // A frozen primary accepts connections and never answers: give up as
    // soon as it has been silent past the keepalive timeout or the map
    // names another primary (a new one was elected), so the client retries.
    let gone = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let named = p
                .core
                .meta
                .with_smap(|s| s.map(|s| s.proxy_si.url().to_string()));
            let limit = p.core.config.current().duration("timeout.max_keepalive");
            if named.as_deref().is_some_and(|n| n != primary)
                || p.core.primary_silent_for().is_some_and(|s| s > limit)
            {
                return named;
            }
        }
    };
    let resp = tokio::select! {
        r = send => r.map_err(|e| {
            ApiError::unavailable(format!(
                "{}: forwarding to the primary proxy ({primary}) failed: {e}; retry shortly",
                p.core.name
            ))
        })?,
        named = gone => {
            return Err(ApiError::unavailable(format!(
                "{}: the primary proxy ({primary}) stopped answering while this request was \
                 forwarded to it (the cluster map now names {}); the request may or may not \
                 have taken effect: check, then retry",
                p.core.name,
                named.unwrap_or_default()
            )))
        }
    };
    let mut out = axum::response::Response::builder().status(resp.status().as_u16());
    for (k, v) in resp.headers() {
        if hop_by_hop(k) || k == header::CONTENT_LENGTH {
            continue;
        }
        out = out.header(k.as_str(), v.as_bytes());
    }
    if let Some(len) = resp.content_length() {
        out = out.header(header::CONTENT_LENGTH, len);
    }
    let body = Body::from_stream(resp.bytes_stream());
    out.body(body)
        .map_err(|e| ApiError::internal(format!("forwarded response: {e}")))
}
