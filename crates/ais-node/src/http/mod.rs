//! The HTTP layer every handler shares, with no handler in it: the request
//! context, the typed [`Endpoint`] parsed once from method + path, request
//! parsing helpers, and response rendering (AIStore's JSON error shape,
//! redirects). The router that maps endpoints to proxy/target handlers is
//! `crate::router`.

mod endpoint;
mod render;

pub use endpoint::{Endpoint, EtlPath};
pub use render::{
    bytes_response, empty, error_response, json_ok, redirect, redirect_bound, text_ok,
};

use crate::error::{ApiError, ApiResult};
use ais_core::Bck;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use std::net::SocketAddr;

pub type Res = ApiResult<Response>;

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

impl Ctx {
    pub fn expect_method(&self, allowed: &[Method]) -> ApiResult<()> {
        if allowed.contains(&self.method) {
            Ok(())
        } else {
            Err(self.not_allowed())
        }
    }
    pub fn not_allowed(&self) -> ApiError {
        ApiError::MethodNotAllowed {
            method: self.method.to_string(),
            path: self.path.clone(),
        }
    }
    pub fn unknown_path(&self) -> ApiError {
        ApiError::NotFound(format!(
            "invalid URL path \"{}\" (method {})",
            self.path, self.method
        ))
    }
    /// Bucket from a path segment and the `provider` query parameter.
    pub fn bck(&self, raw_name: &str) -> ApiResult<Bck> {
        let name = pct_decode(raw_name)?;
        Ok(Bck::validated(&name, self.query.get("provider"))?)
    }
    /// Bucket and object from raw path segments, validated.
    pub fn bck_obj(&self, bucket: &str, obj: &str) -> ApiResult<(Bck, String)> {
        if bucket.is_empty() {
            return Err(ApiError::bad_request("missing bucket name in URL path"));
        }
        let bck = self.bck(bucket)?;
        let obj = pct_decode(obj)?;
        if obj.is_empty() {
            return Err(ApiError::bad_request(format!(
                "missing object name in URL path (expected /v1/objects/{}/OBJECT)",
                bck.name
            )));
        }
        ais_core::names::validate_object_name(&obj)?;
        Ok((bck, obj))
    }
    /// The later stages of an ETL pipeline: `etl_pipeline=b,c` after
    /// `etl_name=a` (AIStore's comma-separated list, as the SDK's
    /// `etl_a >> etl_b` sends it) — checked, never ignored.
    pub fn etl_pipeline(&self) -> ApiResult<Vec<String>> {
        for k in ["etl_name", "etl_pipeline"] {
            if self.query.0.iter().filter(|(q, _)| q == k).count() > 1 {
                return Err(ApiError::bad_request(format!(
                    "query parameter \"{k}\" given more than once (a pipeline is one comma-separated etl_pipeline)"
                )));
            }
        }
        let stages = parse_etl_pipeline(self.query.get("etl_pipeline"))?;
        if !stages.is_empty() && self.query.get("etl_name").is_none_or(|n| n.is_empty()) {
            return Err(ApiError::bad_request(
                "etl_pipeline names the stages after the first ETL: it needs etl_name",
            ));
        }
        Ok(stages)
    }
    /// The ETL named by `etl_name=` (or the seed era's `uuid=`, when
    /// `is_etl` says it names one).
    pub fn etl_param(&self, is_etl: impl FnOnce(&str) -> bool) -> Option<String> {
        if let Some(n) = self.query.get("etl_name").filter(|n| !n.is_empty()) {
            return Some(n.to_string());
        }
        let u = self.query.get("uuid").filter(|n| !n.is_empty())?;
        is_etl(u).then(|| u.to_string())
    }
}

/// Most ETLs one pipeline chains (the first one included).
pub const MAX_ETL_PIPELINE: usize = 8;

/// A pipeline's later stages (a job's or a Get-Batch request's list, or
/// the query's, split): no empty or over-long name, at most
/// [`MAX_ETL_PIPELINE`] ETLs in all.
pub fn check_etl_stages(stages: &[String]) -> ApiResult<()> {
    if let Some(bad) = stages
        .iter()
        .find(|s| s.trim().is_empty() || s.len() > 64 || s.contains(','))
    {
        return Err(ApiError::bad_request(format!(
            "etl_pipeline: invalid stage name \"{bad}\" (comma-separated ETL names)"
        )));
    }
    if stages.len() + 1 > MAX_ETL_PIPELINE {
        return Err(ApiError::bad_request(format!(
            "etl_pipeline: at most {MAX_ETL_PIPELINE} ETLs in one pipeline ({} given)",
            stages.len() + 1
        )));
    }
    Ok(())
}

/// `b,c` → `[b, c]`, checked by [`check_etl_stages`].
pub fn parse_etl_pipeline(raw: Option<&str>) -> ApiResult<Vec<String>> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(Vec::new());
    };
    let stages: Vec<String> = raw.split(',').map(|s| s.trim().to_string()).collect();
    check_etl_stages(&stages)?;
    Ok(stages)
}

#[derive(Default, Debug)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(raw: &str) -> ApiResult<Self> {
        serde_urlencoded::from_str(raw)
            .map(Query)
            .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    /// A 400 naming the first parameter not in `allowed` (nor one every
    /// request may carry): a parameter we would ignore must not silently
    /// change what the client gets.
    pub fn reject_unknown(&self, what: &str, allowed: &[&str]) -> ApiResult<()> {
        // (The nodes' own, `INTERNAL_PARAMS`, reach a target only from a
        // node: the proxy and the auth gate refuse them from clients.)
        const ALWAYS: &[&str] = &["provider", "namespace", "pid", "utm"];
        match self.0.iter().find(|(k, _)| {
            let k = k.as_str();
            !ALWAYS.contains(&k) && !INTERNAL_PARAMS.contains(&k) && !allowed.contains(&k)
        }) {
            Some((k, _)) => Err(ApiError::bad_request(format!(
                "unsupported query parameter \"{k}\" for {what} (supported: {})",
                allowed.join(", ")
            ))),
            None => Ok(()),
        }
    }
}

/// Query parameters only nodes put on their own requests (a rebalance move,
/// a hop between targets, a Get-Batch item, a redirect's credential). A
/// client sending one would change what a target does (a PUT taken as a
/// rebalance move is skipped when the object exists): 400 at the proxy
/// ([`RPC_ONLY_PARAMS`] at a target too).
pub const INTERNAL_PARAMS: &[&str] = &[
    "ais_rebalance",
    "ais_hop",
    "ais_hop2",
    "ais_fwd",
    "ais_verify",
    crate::cred::BODY_PARAM,
    crate::cred::REDIRECT_PARAM,
    crate::cred::TOKEN_PARAM,
];

/// The ones only node-to-node calls carry (never a redirect a client
/// follows): refused at a target on any request not from a node.
pub const RPC_ONLY_PARAMS: &[&str] = &["ais_rebalance", "ais_verify", "ais_fwd"];

/// A 400 naming the first of `names` the request carries.
pub fn reject_params_of(ctx: &Ctx, names: &[&str]) -> ApiResult<()> {
    match ctx
        .query
        .0
        .iter()
        .find(|(k, _)| names.contains(&k.as_str()))
    {
        Some((k, _)) => Err(ApiError::bad_request(format!(
            "query parameter \"{k}\" is internal to the cluster (its nodes set it on their own \
             requests); a client may not send it"
        ))),
        None => Ok(()),
    }
}

pub fn reject_internal_params(ctx: &Ctx) -> ApiResult<()> {
    reject_params_of(ctx, INTERNAL_PARAMS)
}

/// Query parameters an object PATCH (custom properties) understands.
pub const PATCH_OBJECT_PARAMS: &[&str] = &["set-new-custom"];

/// Query parameters an object GET understands.
pub const GET_OBJECT_PARAMS: &[&str] = &[
    "etl_name",
    "etl_args",
    "etl_pipeline",
    "uuid",
    "archpath",
    "archregx",
    "archmode",
    "latest-ver",
];

/// Query parameters an object PUT understands: a plain PUT, an append or
/// flush (`target::append`), a one-object copy/transform (`object_to`), a
/// rebalance move.
pub const PUT_OBJECT_PARAMS: &[&str] = &[
    "uploadId",
    "partNumber",
    "append_type",
    "append_handle",
    "appendty",
    "handle",
    "object_to",
    "etl_name",
    "etl_args",
    "uuid",
    "latest-ver",
    "synchronize",
    "ais_rebalance",
];

/// An object PUT's parameters: known ones only, and each with the request
/// it belongs to (a copy's `etl_name` on a plain PUT, or a handle without
/// `append_type`, would otherwise be ignored and the PUT mean another thing).
pub fn check_object_put(q: &Query) -> ApiResult<()> {
    q.reject_unknown("PUT of an object", PUT_OBJECT_PARAMS)?;
    let has = |k: &str| q.get(k).is_some();
    let copy = has("object_to");
    let append = has("append_type") || has("appendty");
    let misplaced = |k: &str, needs: &str| {
        ApiError::bad_request(format!(
            "query parameter \"{k}\" applies to {needs} only; this PUT has none"
        ))
    };
    if !copy {
        if let Some(k) = ["etl_name", "etl_args", "uuid", "latest-ver", "synchronize"]
            .into_iter()
            .find(|k| has(k))
        {
            return Err(misplaced(k, "a copy (object_to)"));
        }
    }
    if !append {
        if let Some(k) = ["append_handle", "handle"].into_iter().find(|k| has(k)) {
            return Err(misplaced(k, "an append (append_type)"));
        }
    }
    if has("uploadId") != has("partNumber") {
        return Err(ApiError::bad_request(
            "a multipart part needs both uploadId and partNumber",
        ));
    }
    if has("uploadId") && (copy || append) {
        return Err(ApiError::bad_request(
            "a multipart part is neither a copy (object_to) nor an append (append_type)",
        ));
    }
    if copy && append {
        return Err(ApiError::bad_request(
            "a PUT is either a copy (object_to) or an append (append_type), not both",
        ));
    }
    Ok(())
}

/// Query parameters an object DELETE understands.
pub const DELETE_OBJECT_PARAMS: &[&str] = &["uploadId"];

/// Query parameters an object POST understands (`mpt-complete`'s upload).
pub const POST_OBJECT_PARAMS: &[&str] = &["uploadId"];

/// Query parameters an object HEAD understands.
pub const HEAD_OBJECT_PARAMS: &[&str] = &["props", "silent", "latest-ver", "check_cached"];

pub fn split_first(s: &str) -> (&str, &str) {
    match s.split_once('/') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    }
}

pub fn pct_decode(s: &str) -> ApiResult<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| ApiError::bad_request(format!("\"{s}\" is not valid UTF-8 once decoded")))
}

pub async fn read_body(body: Body, limit: usize) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| ApiError::bad_request(format!("failed to read request body: {e}")))
}

/// A JSON request body, with a message naming what was malformed.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    body: Body,
    limit: usize,
    what: &str,
) -> ApiResult<T> {
    serde_json::from_slice(&read_body(body, limit).await?)
        .map_err(|e| ApiError::bad_request(format!("malformed {what}: {e}")))
}

/// `reset-stats`'s value: `true` resets only the error counts.
pub fn reset_errors_only(v: &serde_json::Value) -> ApiResult<bool> {
    match v {
        serde_json::Value::Null => Ok(false),
        serde_json::Value::Bool(b) => Ok(*b),
        other => Err(ApiError::bad_request(format!(
            "reset-stats: the value is true (errors only) or false, not {other}"
        ))),
    }
}
