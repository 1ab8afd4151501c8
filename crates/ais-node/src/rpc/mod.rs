//! The one way nodes talk to each other: typed calls over a pooled HTTP
//! client ([`Rpc`]), errors that name the node ([`RpcError`]), and one
//! fan-out helper ([`fan_out`]) with a per-node timeout, bounded concurrency
//! and results kept per node.

pub mod routes;
pub mod s3;
pub mod types;

use crate::error::ApiError;
use ais_cluster::{PushFailure, Transport};
use ais_core::api::TargetPage;
use ais_core::error::ErrMsg;
use ais_core::meta::{JoinReq, Keepalive, KeepaliveResp, MetaSync, ObjAttrs, Snode};
use ais_etl::TargetEtlStats;
use axum::http::StatusCode;
use futures::future::BoxFuture;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
use types::{EtlInitReq, JobSpec, ListQuery, ObjErr, CUSTOM_MD_JSON};

pub use ais_core::paths::escape_path as enc;

/// Default per-node timeout of control calls.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(30);
/// Fan-outs talk to at most this many nodes at once.
pub const FAN_OUT_LIMIT: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("{node} unreachable: {source}")]
    Unreachable {
        node: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{node} did not answer within {after:?}")]
    Timeout { node: String, after: Duration },
    #[error("{message}")]
    Status {
        node: String,
        status: StatusCode,
        tcode: String,
        message: String,
    },
    #[error("{node}: malformed response: {why}")]
    Decode { node: String, why: String },
}

impl RpcError {
    pub fn node(&self) -> &str {
        match self {
            Self::Unreachable { node, .. }
            | Self::Timeout { node, .. }
            | Self::Status { node, .. }
            | Self::Decode { node, .. } => node,
        }
    }
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
    fn decode(to: &Dest, e: impl std::fmt::Display) -> Self {
        Self::Decode {
            node: to.name.clone(),
            why: e.to_string(),
        }
    }

    /// The node is gone or not answering (as opposed to answering "no").
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::Timeout { .. })
    }
}

impl From<RpcError> for ApiError {
    fn from(e: RpcError) -> Self {
        match e {
            e @ (RpcError::Unreachable { .. } | RpcError::Timeout { .. }) => {
                ApiError::Unavailable(e.to_string())
            }
            RpcError::Status {
                status,
                tcode,
                message,
                ..
            } => ApiError::Peer {
                status,
                tcode,
                message,
            },
            e @ RpcError::Decode { .. } => ApiError::Internal(e.to_string()),
        }
    }
}

/// Custom-metadata key a rebalance move carries the source's checksum in
/// (checked and removed by the receiving target).
pub const MOVE_CKSUM: &str = "ais-move-cksum";

/// Who a call goes to: a node's name (for errors) and base URL.
#[derive(Debug, Clone)]
pub struct Dest {
    pub name: String,
    pub url: String,
}

impl From<&Snode> for Dest {
    fn from(n: &Snode) -> Self {
        Dest {
            name: n.name(),
            url: n.url().to_string(),
        }
    }
}

impl Dest {
    pub fn primary(url: &str) -> Self {
        Dest {
            name: format!("primary proxy {url}"),
            url: url.to_string(),
        }
    }
}

/// Pooled intra-cluster client.
#[derive(Clone)]
pub struct Rpc {
    http: reqwest::Client,
}

impl Rpc {
    pub fn new() -> Result<Self, reqwest::Error> {
        Ok(Rpc {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .timeout(CONTROL_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .default_headers(crate::cred::rpc_headers())
                .build()?,
        })
    }

    /// Sends a request; a non-2xx answer becomes [`RpcError::Status`] with
    /// the message from the peer's AIStore-shaped error body.
    async fn send(
        &self,
        to: &Dest,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RpcError> {
        let resp = self.transport(to, req).await?;
        Self::check(to, resp).await
    }

    /// Sends a request; only a failure to get an answer is an error.
    async fn transport(
        &self,
        to: &Dest,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RpcError> {
        req.send().await.map_err(|source| {
            if source.is_timeout() {
                RpcError::Timeout {
                    node: to.name.clone(),
                    after: CONTROL_TIMEOUT,
                }
            } else {
                RpcError::Unreachable {
                    node: to.name.clone(),
                    source,
                }
            }
        })
    }

    /// A non-2xx answer as [`RpcError::Status`], with the message from the
    /// peer's AIStore-shaped error body.
    async fn check(to: &Dest, resp: reqwest::Response) -> Result<reqwest::Response, RpcError> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let (message, tcode) = match serde_json::from_str::<ErrMsg>(&text) {
            Ok(b) => (b.message, b.tcode),
            Err(_) if text.is_empty() => (format!("{}: {status}", to.name), String::new()),
            Err(_) => (text, String::new()),
        };
        Err(RpcError::Status {
            node: to.name.clone(),
            status,
            tcode,
            message,
        })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        to: &Dest,
        req: reqwest::RequestBuilder,
    ) -> Result<T, RpcError> {
        self.send(to, req)
            .await?
            .json()
            .await
            .map_err(|e| RpcError::decode(to, e))
    }

    fn get(&self, to: &Dest, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", to.url))
    }
    fn post(&self, to: &Dest, path: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}{path}", to.url))
    }

    // ---------------------------------------------------------- membership

    pub async fn metasync(&self, to: &Dest, sync: &MetaSync) -> Result<(), RpcError> {
        let req = self
            .http
            .put(format!("{}{}", to.url, routes::METASYNC))
            .timeout(Duration::from_secs(10))
            .json(sync);
        self.send(to, req).await.map(drop)
    }

    pub async fn join(&self, to: &Dest, req: &JoinReq) -> Result<MetaSync, RpcError> {
        // Long enough for a proxy to be added to the control plane; short
        // enough that a frozen primary does not hold a joiner for long.
        let req = self
            .post(to, routes::JOIN)
            .timeout(Duration::from_secs(15))
            .json(req);
        self.json(to, req).await
    }

    pub async fn keepalive(&self, to: &Dest, ka: &Keepalive) -> Result<KeepaliveResp, RpcError> {
        // A frozen primary must not hold the next keepalive (perhaps to its
        // successor) for long.
        let req = self
            .post(to, routes::KEEPALIVE)
            .timeout(Duration::from_millis(1500))
            .json(ka);
        self.json(to, req).await
    }

    // ------------------------------------------------------------- objects

    pub async fn list_page(
        &self,
        to: &Dest,
        bucket: &str,
        q: &ListQuery<'_>,
    ) -> Result<TargetPage, RpcError> {
        let limit = q.limit.to_string();
        let flags = q.flags.to_string();
        let smap = q.smap.to_string();
        let req = self
            .get(to, &format!("{}/{bucket}", routes::INT_LIST))
            .query(&[
                ("prefix", q.prefix),
                ("after", q.after),
                ("limit", limit.as_str()),
                ("props", q.props),
                ("flags", flags.as_str()),
                ("inv", q.inv),
                ("smap", smap.as_str()),
            ]);
        self.json(to, req).await
    }

    /// Forgets the finished job `id` on `to`.
    pub async fn remove_job(&self, to: &Dest, id: &str) -> Result<(), RpcError> {
        let req = self
            .http
            .delete(format!("{}{}/{}", to.url, routes::INT_JOBS, enc(id)));
        self.send(to, req).await.map(drop)
    }

    /// The native bucket inventories of `bucket` on `to` (`name`: that
    /// one only), by inventory object name.
    pub async fn nbi_show(
        &self,
        to: &Dest,
        bucket: &str,
        name: &str,
    ) -> Result<BTreeMap<String, ais_core::api::NbiInfo>, RpcError> {
        let req = self
            .get(to, &format!("{}/{bucket}", routes::INT_NBI))
            .query(&[("name", name)]);
        self.json(to, req).await
    }

    /// Removes `bucket`'s inventory `name` (empty: all of them) on `to`;
    /// answers how many it removed.
    pub async fn nbi_destroy(&self, to: &Dest, bucket: &str, name: &str) -> Result<u64, RpcError> {
        let req = self
            .http
            .delete(format!("{}{}/{bucket}", to.url, routes::INT_NBI))
            .query(&[("name", name)]);
        self.json(to, req).await
    }

    /// `GET /v1/daemon?{query}` at `to` (a node report), as it answered.
    pub async fn daemon_query(
        &self,
        to: &Dest,
        query: &str,
    ) -> Result<reqwest::Response, RpcError> {
        let req = self
            .http
            .get(format!("{}/v1/daemon?{query}", to.url))
            .timeout(Duration::from_secs(60));
        self.send(to, req).await
    }

    /// `PUT /v1/daemon{suffix}?{query}` at `to` with `body` (a node's
    /// configuration change asked of the proxy), as it answered.
    pub async fn daemon_put(
        &self,
        to: &Dest,
        suffix: &str,
        query: &str,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, RpcError> {
        let req = self
            .http
            .put(format!("{}{}{suffix}?{query}", to.url, routes::DAEMON))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .timeout(Duration::from_secs(60));
        self.transport(to, req).await
    }

    /// What `to` holds of `bucket` under `prefix` (bucket summary).
    pub async fn bucket_summary(
        &self,
        to: &Dest,
        bucket: &str,
        prefix: &str,
    ) -> Result<types::TargetSummary, RpcError> {
        let req = self
            .get(to, &format!("{}/{bucket}", routes::INT_LIST))
            .timeout(Duration::from_secs(3600))
            .query(&[("summary", "1"), ("prefix", prefix)]);
        self.json(to, req).await
    }

    /// Attributes of `bucket/obj` stored on `to` (`None`: not there).
    pub async fn obj_attrs(
        &self,
        to: &Dest,
        bucket: &str,
        obj: &str,
    ) -> Result<Option<ObjAttrs>, RpcError> {
        let path = format!("{}/{bucket}/{}", routes::INT_OBJATTRS, enc(obj));
        match self.json(to, self.get(to, &path)).await {
            Ok(a) => Ok(Some(a)),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces `to`'s revoked-token list (auth on).
    pub async fn auth_revoked(
        &self,
        to: &Dest,
        list: &[crate::cred::Revoked],
        version: u64,
    ) -> Result<(), RpcError> {
        let url = format!("{}{}", to.url, ais_core::paths::INT_AUTH_REVOKED);
        let req = self
            .http
            .put(url)
            .header(crate::cred::REVOKED_VERSION_HDR, version.to_string())
            .json(list);
        self.send(to, req).await.map(|_| ())
    }

    /// Deletes a local copy on `to`; `false` if it had none.
    pub async fn delete_local(&self, to: &Dest, bucket: &str, obj: &str) -> Result<bool, RpcError> {
        let path = format!("{}/{bucket}/{}", routes::INT_OBJECTS, enc(obj));
        match self
            .send(to, self.http.delete(format!("{}{path}", to.url)))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Stores `bucket/obj` on its owner `to` (`ais_hop=1`: no redirect).
    pub async fn put_object(
        &self,
        to: &Dest,
        bucket: &str,
        obj: &str,
        body: reqwest::Body,
        custom: &BTreeMap<String, String>,
    ) -> Result<(), RpcError> {
        self.put_to(to, bucket, obj, body, custom, None).await
    }

    /// Moves `bucket/obj` to its new owner `to` during a rebalance: stored
    /// with its version only if `to` does not have the object already (a
    /// newer PUT there wins).
    /// A rebalance move: the object keeps its version, and the owner checks
    /// the bytes it received against `cksum` (the stored xxhash) before it
    /// commits them, so a damaged source is never moved.
    #[allow(clippy::too_many_arguments)]
    pub async fn move_object(
        &self,
        to: &Dest,
        bucket: &str,
        obj: &str,
        body: reqwest::Body,
        custom: &BTreeMap<String, String>,
        version: u64,
        cksum: &str,
    ) -> Result<(), RpcError> {
        let mut custom = custom.clone();
        if !cksum.is_empty() {
            custom.insert(MOVE_CKSUM.into(), cksum.into());
        }
        self.put_to(to, bucket, obj, body, &custom, Some(version))
            .await
    }

    async fn put_to(
        &self,
        to: &Dest,
        bucket: &str,
        obj: &str,
        body: reqwest::Body,
        custom: &BTreeMap<String, String>,
        moved_version: Option<u64>,
    ) -> Result<(), RpcError> {
        let mut url = format!(
            "{}{}/{bucket}/{}?ais_hop=1",
            to.url,
            routes::OBJECTS,
            enc(obj)
        );
        let mut req = match moved_version {
            Some(v) => {
                url.push_str("&ais_rebalance=1");
                self.http.put(url).header("Ais-Version", v)
            }
            // A write sent on to its owner: never sent on again there.
            None => {
                url.push_str("&ais_fwd=1");
                self.http.put(url)
            }
        }
        .timeout(Duration::from_secs(600));
        // The whole map in one header, exactly (commas, '=' and non-ASCII
        // survive: `key=value` headers would split or drop them).
        if !custom.is_empty() {
            use base64::Engine as _;
            let raw = serde_json::to_vec(custom).map_err(|e| RpcError::Decode {
                node: to.name.clone(),
                why: e.to_string(),
            })?;
            req = req.header(
                CUSTOM_MD_JSON,
                base64::engine::general_purpose::STANDARD.encode(raw),
            );
        }
        self.send(to, req.body(body)).await.map(drop)
    }

    /// One Get-Batch item from the target that stores it: the object (or
    /// its `archpath` member, or its transform by `etl`), optionally a byte
    /// range. `Ok(None)`: it does not exist.
    pub async fn batch_item(
        &self,
        to: &Dest,
        bucket: &str,
        obj: &str,
        query: &[(&str, &str)],
        range: Option<String>,
    ) -> Result<Option<bytes::Bytes>, RpcError> {
        let url = format!("{}{}/{bucket}/{}", to.url, routes::OBJECTS, enc(obj));
        let mut req = self
            .http
            .get(url)
            .timeout(Duration::from_secs(600))
            .query(&[("ais_hop", "1"), ("ais_verify", "1")])
            .query(query);
        if let Some(r) = range {
            req = req.header(reqwest::header::RANGE, r);
        }
        match self.send(to, req).await {
            Ok(r) => r
                .bytes()
                .await
                .map(Some)
                .map_err(|e| RpcError::decode(to, e)),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    // ------------------------------------------------ erasure-coded parts

    /// Stores one part of `bucket/obj` on `to` (its meta in a header, the
    /// bytes as the body; the receiver checks both before committing).
    pub async fn ec_put_part(
        &self,
        to: &Dest,
        bucket: &str,
        obj: &str,
        meta: &ais_storage::EcMeta,
        body: reqwest::Body,
    ) -> Result<(), RpcError> {
        let url = format!("{}{}/{bucket}/{}", to.url, routes::INT_EC, enc(obj));
        let req = self
            .http
            .put(url)
            .timeout(Duration::from_secs(600))
            .header(EC_META_HEADER, encode_ec_meta(meta))
            .body(body);
        self.send(to, req).await.map(drop)
    }

    /// The meta of `to`'s part of `bucket/obj` (`None`: it holds none).
    pub async fn ec_part_meta(
        &self,
        to: &Dest,
        bucket: &str,
        obj: &str,
    ) -> Result<Option<ais_storage::EcMeta>, RpcError> {
        let url = format!("{}{}/{bucket}/{}", to.url, routes::INT_EC, enc(obj));
        match self.send(to, self.http.head(url)).await {
            Ok(r) => Ok(decode_ec_meta(r.headers())),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `to`'s part of `bucket/obj`, as a response to stream the bytes from.
    pub async fn ec_get_part(
        &self,
        to: &Dest,
        bucket: &str,
        obj: &str,
    ) -> Result<Option<(ais_storage::EcMeta, reqwest::Response)>, RpcError> {
        let url = format!("{}{}/{bucket}/{}", to.url, routes::INT_EC, enc(obj));
        let req = self.http.get(url).timeout(Duration::from_secs(600));
        match self.send(to, req).await {
            Ok(r) => Ok(decode_ec_meta(r.headers()).map(|m| (m, r))),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes `to`'s part of `bucket/obj` (true if it had one).
    pub async fn ec_delete_part(
        &self,
        to: &Dest,
        bucket: &str,
        obj: &str,
    ) -> Result<bool, RpcError> {
        let url = format!("{}{}/{bucket}/{}", to.url, routes::INT_EC, enc(obj));
        match self.send(to, self.http.delete(url)).await {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Up to `limit` of the parts of `bucket` held by `to`, after `after`.
    pub async fn ec_list(
        &self,
        to: &Dest,
        bucket: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, ais_storage::EcMeta)>, RpcError> {
        let limit = limit.to_string();
        let req = self
            .get(to, &format!("{}/{bucket}", routes::INT_EC))
            .timeout(Duration::from_secs(120))
            .query(&[("after", after), ("limit", limit.as_str())]);
        self.json(to, req).await
    }

    // ----------------------------------------------------------------- ETL

    pub async fn etl_init(
        &self,
        to: &Dest,
        req: &EtlInitReq,
        timeout: Duration,
    ) -> Result<(), RpcError> {
        let r = self
            .post(to, &format!("{}/init", routes::INT_ETL))
            .timeout(timeout)
            .json(req);
        self.send(to, r).await.map(drop)
    }

    pub async fn etl_stop(&self, to: &Dest, name: &str) -> Result<(), RpcError> {
        let r = self
            .http
            .delete(format!("{}{}/{name}", to.url, routes::INT_ETL));
        self.send(to, r).await.map(drop)
    }

    /// Every ETL running on `to`, by name.
    pub async fn etl_stats(&self, to: &Dest) -> Result<BTreeMap<String, TargetEtlStats>, RpcError> {
        self.json(to, self.get(to, routes::INT_ETL)).await
    }

    pub async fn etl_errors(&self, to: &Dest, name: &str) -> Result<Vec<ObjErr>, RpcError> {
        let path = format!("{}/{name}/errors", routes::INT_ETL);
        self.json(to, self.get(to, &path)).await
    }

    pub async fn etl_logs(&self, to: &Dest, name: &str) -> Result<String, RpcError> {
        let path = format!("{}/{name}/logs", routes::INT_ETL);
        self.send(to, self.get(to, &path))
            .await?
            .text()
            .await
            .map_err(|e| RpcError::decode(to, e))
    }

    // ---------------------------------------------------------------- jobs

    pub async fn job_start(&self, to: &Dest, spec: &JobSpec) -> Result<(), RpcError> {
        let r = self
            .post(to, &format!("{}/start", routes::INT_JOBS))
            .json(spec);
        self.send(to, r).await.map(drop)
    }

    /// Every job a target runs or ran (its snapshots).
    pub async fn job_list(&self, to: &Dest) -> Result<Vec<Value>, RpcError> {
        let r = self
            .get(to, routes::INT_JOBS)
            .timeout(Duration::from_secs(5));
        self.json(to, r).await
    }

    /// One target's view of a job (AIStore's per-target snapshot shape).
    pub async fn job_snap(&self, to: &Dest, id: &str) -> Result<Value, RpcError> {
        let r = self
            .get(to, &format!("{}/{id}", routes::INT_JOBS))
            .timeout(Duration::from_secs(5));
        self.json(to, r).await
    }

    pub async fn job_errors(&self, to: &Dest, id: &str) -> Result<Vec<ObjErr>, RpcError> {
        let path = format!("{}/{id}/errors", routes::INT_JOBS);
        self.json(to, self.get(to, &path)).await
    }

    /// Primary → node: `PUT /v1/daemon` with a lifecycle action
    /// (`shutdown-node`, `decommission-node`), as AIStore sends it.
    pub async fn node_action(
        &self,
        to: &Dest,
        msg: &ais_core::api::ActMsg,
    ) -> Result<(), RpcError> {
        let r = self
            .http
            .put(format!("{}{}", to.url, routes::DAEMON))
            .json(msg);
        self.send(to, r).await.map(drop)
    }

    // --------------------------------------------------------------- dsort

    /// Coordinator → target: a dSort phase (`init`, `create`, `abort`,
    /// `finish`) with its JSON body.
    pub async fn dsort_post<T: serde::Serialize + ?Sized>(
        &self,
        to: &Dest,
        id: &str,
        what: &str,
        body: &T,
    ) -> Result<(), RpcError> {
        let r = self
            .post(to, &format!("{}/{id}/{what}", routes::INT_SORT))
            .json(body);
        self.send(to, r).await.map(drop)
    }

    /// A target's view of a dSort job (`id`), or every job it knows (`""`).
    pub async fn dsort_get<T: DeserializeOwned>(
        &self,
        to: &Dest,
        id: &str,
        what: &str,
        timeout: Duration,
    ) -> Result<T, RpcError> {
        let path = match (id, what) {
            ("", _) => routes::INT_SORT.to_string(),
            (id, "") => format!("{}/{id}", routes::INT_SORT),
            (id, w) => format!("{}/{id}/{w}", routes::INT_SORT),
        };
        self.json(to, self.get(to, &path).timeout(timeout)).await
    }

    /// An object's bytes from the target holding it, at most `max` (small
    /// control files such as a dSort key map).
    pub async fn get_object_small(
        &self,
        to: &Dest,
        bucket: &str,
        obj: &str,
        max: usize,
    ) -> Result<bytes::Bytes, RpcError> {
        use futures::StreamExt;
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        let path = format!(
            "{}/{}/{}",
            routes::OBJECTS,
            enc(bucket),
            obj.split('/').map(enc).collect::<Vec<_>>().join("/")
        );
        let resp = self.send(to, self.get(to, &path)).await?;
        let mut out = bytes::BytesMut::new();
        let mut s = resp.bytes_stream();
        while let Some(c) = s.next().await {
            let c = c.map_err(|e| RpcError::decode(to, e))?;
            if out.len() + c.len() > max {
                return Err(RpcError::Status {
                    node: to.name.clone(),
                    status: reqwest::StatusCode::PAYLOAD_TOO_LARGE,
                    tcode: String::new(),
                    message: format!("{bucket}/{obj} is larger than {max} bytes"),
                });
            }
            out.extend_from_slice(&c);
        }
        Ok(out.freeze())
    }

    pub async fn dsort_remove(&self, to: &Dest, id: &str) -> Result<(), RpcError> {
        let r = self
            .http
            .delete(format!("{}{}/{id}", to.url, routes::INT_SORT));
        self.send(to, r).await.map(drop)
    }

    /// Target → target: dSort records, as a tar stream (no overall timeout:
    /// a batch of large records takes what it takes; reads stay bounded by
    /// the connection's idle limits).
    pub async fn dsort_fetch(
        &self,
        to: &Dest,
        id: &str,
        rids: &[u32],
    ) -> Result<reqwest::Response, RpcError> {
        let r = self
            .post(to, &format!("{}/{id}/fetch", routes::INT_SORT))
            .timeout(Duration::from_secs(3600))
            .json(rids);
        self.send(to, r).await
    }

    /// What a promote would take from a target: (files, hash of names).
    pub async fn promote_scan(&self, to: &Dest, args: &Value) -> Result<Value, RpcError> {
        let r = self
            .post(to, &format!("{}/promote-scan", routes::INT_JOBS))
            .timeout(Duration::from_secs(120))
            .json(args);
        self.json(to, r).await
    }

    pub async fn job_abort(&self, to: &Dest, id: &str) -> Result<(), RpcError> {
        let path = format!("{}/{id}/abort", routes::INT_JOBS);
        self.send(to, self.post(to, &path)).await.map(drop)
    }
}

/// The header carrying a part's [`ais_storage::EcMeta`] (base64 of its JSON).
pub const EC_META_HEADER: &str = "Ais-Ec-Meta";

pub fn encode_ec_meta(meta: &ais_storage::EcMeta) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(meta).unwrap_or_default())
}

pub fn decode_ec_meta(h: &axum::http::HeaderMap) -> Option<ais_storage::EcMeta> {
    use base64::Engine;
    let raw = h.get(EC_META_HEADER)?.to_str().ok()?;
    let json = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
    serde_json::from_slice(&json).ok()
}

/// Runs `call` against every node, at most [`FAN_OUT_LIMIT`] at once, each
/// bounded by `timeout`; results come back in `nodes` order, one per node.
pub async fn fan_out<T, F, Fut>(
    nodes: &[Snode],
    timeout: Duration,
    call: F,
) -> Vec<(Snode, Result<T, RpcError>)>
where
    F: Fn(Dest) -> Fut,
    Fut: Future<Output = Result<T, RpcError>>,
{
    let futs = nodes.iter().cloned().map(|n| {
        let dest = Dest::from(&n);
        let name = dest.name.clone();
        let fut = call(dest);
        async move {
            let res = match tokio::time::timeout(timeout, fut).await {
                Ok(r) => r,
                Err(_) => Err(RpcError::Timeout {
                    node: name,
                    after: timeout,
                }),
            };
            (n, res)
        }
    });
    futures::stream::iter(futs)
        .buffered(FAN_OUT_LIMIT)
        .collect()
        .await
}

/// Every node's answer, or one error that names each node that failed.
pub fn all_ok<T>(
    what: &str,
    results: Vec<(Snode, Result<T, RpcError>)>,
) -> Result<Vec<(Snode, T)>, ApiError> {
    let mut ok = Vec::with_capacity(results.len());
    let mut failed: Vec<RpcError> = Vec::new();
    for (n, r) in results {
        match r {
            Ok(v) => ok.push((n, v)),
            Err(e) => failed.push(e),
        }
    }
    let Some(first) = failed.first() else {
        return Ok(ok);
    };
    let msg = failed
        .iter()
        .map(|e| {
            let s = e.to_string();
            if s.contains(e.node()) {
                s
            } else {
                format!("{}: {s}", e.node())
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    let msg = format!("{what}: {msg}");
    Err(match first {
        RpcError::Status { status, tcode, .. } => ApiError::Peer {
            status: *status,
            tcode: tcode.clone(),
            message: msg,
        },
        RpcError::Decode { .. } => ApiError::Internal(msg),
        _ => ApiError::Unavailable(msg),
    })
}

impl ais_cluster::RaftTransport for Rpc {
    fn call<'a>(
        &'a self,
        url: &'a str,
        kind: &'static str,
        member: Option<ais_cluster::raft::NodeId>,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<u8>, ais_cluster::ClusterError>> {
        Box::pin(async move {
            let to = Dest {
                name: format!("proxy {url}"),
                url: url.to_string(),
            };
            let path = match member {
                Some(m) => format!("{}/raft/{kind}?to={m}", routes::METASYNC),
                None => format!("{}/raft/{kind}", routes::METASYNC),
            };
            let req = self
                .post(&to, &path)
                .timeout(timeout.clamp(Duration::from_millis(50), Duration::from_secs(30)))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
            let resp = self
                .send(&to, req)
                .await
                .map_err(|e| ais_cluster::ClusterError::Replication(e.to_string()))?;
            resp.bytes()
                .await
                .map(|b| b.to_vec())
                .map_err(|e| ais_cluster::ClusterError::Replication(format!("{}: {e}", to.name)))
        })
    }
}

impl Transport for Rpc {
    fn push<'a>(&'a self, to: Vec<Snode>, sync: &'a MetaSync) -> BoxFuture<'a, Vec<PushFailure>> {
        Box::pin(async move {
            fan_out(&to, Duration::from_secs(10), |d| async move {
                self.metasync(&d, sync).await
            })
            .await
            .into_iter()
            .filter_map(|(n, r)| {
                r.err().map(|e| PushFailure {
                    node: n.name(),
                    error: e.to_string(),
                })
            })
            .collect()
        })
    }
}
