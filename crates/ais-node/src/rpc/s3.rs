//! The calls the S3 front door (`crate::s3`) makes to other nodes: object
//! reads through the native API (following a target's stale-map and
//! get-from-neighbor redirects itself, so the S3 client never sees one),
//! streamed writes and multipart uploads on a target's S3 side
//! (`/v1/internal/s3/...`, `target::s3`), and bucket calls to the primary.
//! Object bodies stream; no call here buffers one.

use super::{enc, routes, Dest, Rpc, RpcError};
use ais_core::api::{ActMsg, LsoMsg, LsoResJson};
use axum::http::{header, Method, StatusCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

// ------------------------------------------- wire types of INT_S3 calls

/// Header with the object's S3 metadata (base64 of a JSON map).
pub const META_HEADER: &str = "Ais-S3-Meta";
/// Header with the body length the client announced.
pub const SIZE_HEADER: &str = "Ais-S3-Size";
/// Custom-metadata key of the S3 ETag.
pub const ETAG_KEY: &str = "ETag";

/// What a PUT, a part or a Complete answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct Stored {
    pub etag: String,
    pub size: u64,
    pub mtime_ns: i64,
}

/// One upload (`upload.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Upload {
    pub upload_id: String,
    pub bucket: String,
    pub key: String,
    pub initiated_ns: i64,
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
}

/// One stored part (`part-NNNNN.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Part {
    pub number: u32,
    pub size: u64,
    pub etag: String,
    pub mtime_ns: i64,
    /// The data file's name in the upload directory.
    pub file: String,
}

/// Complete's request: part numbers and ETags as the client listed them.
#[derive(Debug, Serialize, Deserialize)]
pub struct CompleteReq {
    pub parts: Vec<(u32, String)>,
}

/// Lower-case hex of bytes (MD5 ETags, SigV4).
/// The target id in an upload id (`<24 alphanumerics>_<target id>`).
pub fn upload_holder(upload: &str) -> Option<&str> {
    upload
        .split_once('_')
        .filter(|(r, t)| {
            r.len() == 24 && r.bytes().all(|b| b.is_ascii_alphanumeric()) && !t.is_empty()
        })
        .map(|(_, t)| t)
}

pub fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

/// Bound on one streamed object transfer (a stalled peer is also caught by
/// the connection watchdogs).
pub const STREAM_TIMEOUT: Duration = Duration::from_secs(3600);

/// How many redirects a read follows (owner → holder → owner).
const MAX_HOPS: usize = 4;

impl Rpc {
    /// `GET`/`HEAD` of `bucket/obj` through the native API of `to` (its
    /// owner), following the target's redirects. The response is 2xx; its
    /// body is left to stream.
    pub async fn s3_read(
        &self,
        to: &Dest,
        method: Method,
        bucket: &str,
        obj: &str,
        query: &[(&str, &str)],
        range: Option<&str>,
    ) -> Result<reqwest::Response, RpcError> {
        let mut url = reqwest::Url::parse(&format!(
            "{}{}/{bucket}/{}",
            to.url,
            routes::OBJECTS,
            enc(obj)
        ))
        .map_err(|e| RpcError::decode(to, e))?;
        url.query_pairs_mut().extend_pairs(query);
        let mut dest = to.clone();
        for _ in 0..MAX_HOPS {
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .timeout(STREAM_TIMEOUT);
            if let Some(r) = range {
                req = req.header(header::RANGE, r);
            }
            let resp = self.transport(&dest, req).await?;
            if resp.status().is_redirection() {
                if let Some(loc) = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| url.join(l).ok())
                {
                    dest = Dest {
                        name: format!("{} (redirected by {})", loc.authority(), dest.name),
                        url: loc.origin().ascii_serialization(),
                    };
                    url = loc;
                    continue;
                }
            }
            return Self::check(&dest, resp).await;
        }
        Err(RpcError::Decode {
            node: dest.name,
            why: format!("more than {MAX_HOPS} redirects for {bucket}/{obj}"),
        })
    }

    /// Deletes `bucket/obj` through the native API of its owner `to`
    /// (following redirects); `false`: it did not exist.
    pub async fn s3_delete(&self, to: &Dest, bucket: &str, obj: &str) -> Result<bool, RpcError> {
        match self
            .s3_read(to, Method::DELETE, bucket, obj, &[], None)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// One call to a target's S3 side: `INT_S3/WHAT/BUCKET[/OBJ]`.
    #[allow(clippy::too_many_arguments)]
    pub async fn s3_internal(
        &self,
        to: &Dest,
        method: Method,
        what: &str,
        bucket: &str,
        obj: &str,
        query: &[(&str, &str)],
        headers: &[(&'static str, String)],
        body: Option<reqwest::Body>,
    ) -> Result<reqwest::Response, RpcError> {
        let mut url = format!("{}{}/{what}/{bucket}", to.url, routes::INT_S3);
        if !obj.is_empty() {
            url.push('/');
            url.push_str(&enc(obj));
        }
        let mut req = self
            .http
            .request(method, url)
            .query(query)
            .timeout(STREAM_TIMEOUT);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        self.send(to, req).await
    }

    /// A bucket action (`create-bck`, `destroy-bck`) sent to the primary.
    pub async fn s3_bucket_action(
        &self,
        primary: &Dest,
        method: Method,
        bucket: &str,
        msg: &ActMsg,
    ) -> Result<(), RpcError> {
        let req = self
            .http
            .request(
                method,
                format!("{}{}/{bucket}", primary.url, ais_core::paths::BUCKETS),
            )
            .json(msg);
        self.send(primary, req).await.map(drop)
    }

    /// One list-objects page from a proxy (merged from every target).
    pub async fn s3_list(
        &self,
        proxy: &Dest,
        bucket: &str,
        msg: &LsoMsg,
    ) -> Result<LsoResJson, RpcError> {
        let mut act = ActMsg::new(ais_core::api::act::LIST);
        act.value = serde_json::to_value(msg).map_err(|e| RpcError::decode(proxy, e))?;
        let req = self
            .http
            .get(format!(
                "{}{}/{bucket}",
                proxy.url,
                ais_core::paths::BUCKETS
            ))
            .json(&act);
        self.json(proxy, req).await
    }
}
