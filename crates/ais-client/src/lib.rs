//! Rust client for the AIStore REST API as served by aistore-rs (and, for the
//! calls it uses, by AIStore itself). Used by the `ais` CLI, the integration
//! tests and the benchmarks.
//!
//! Redirects are followed by hand: GETs go through the proxy (301 → target);
//! PUTs go straight to the owner target computed from the cluster map (the
//! SDK's `direct` mode), so a body is sent once, and a 307 from a target with
//! a newer map is followed with a freshly opened body.

use ais_core::api::{ActMsg, LsoEntryJson, LsoMsg, LsoResJson};
use ais_core::error::ErrMsg;
use ais_core::meta::{BucketProps, Smap};
use ais_core::Bck;
use bytes::Bytes;
use percent_encoding::NON_ALPHANUMERIC;
use reqwest::Method;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub mod auth;
mod cluster;
mod concat;
mod config;
mod etl;
mod jobs;
pub mod metrics;
mod mpu;
pub mod paths;

pub use cluster::{Mountpaths, RebalanceInfo, TargetRebalance};
pub use etl::{EtlDetails, EtlFuncs, EtlInfo, EtlLogs, EtlObjError, EtlTargetStats, InitCodeMsg};
pub use jobs::{BucketJobMsg, JobStatus};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status.
    #[error("{message}")]
    Http {
        status: u16,
        message: String,
        tcode: String,
    },
    #[error("cannot reach {url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("unexpected response: {0}")]
    Decode(String),
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// Attributes returned by HEAD/PUT.
#[derive(Debug, Clone, Default)]
pub struct ObjProps {
    pub size: u64,
    pub cksum_type: String,
    pub cksum_value: String,
    pub version: String,
    pub atime: String,
    pub custom: Vec<(String, String)>,
}

impl ObjProps {
    fn from_headers(h: &reqwest::header::HeaderMap) -> Self {
        let s = |k: &str| {
            h.get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        Self {
            size: s("content-length").parse().unwrap_or(0),
            cksum_type: s("ais-checksum-type"),
            cksum_value: s("ais-checksum-value"),
            version: s("ais-version"),
            atime: s("ais-atime"),
            custom: h
                .get_all("ais-custom-md")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(|v| v.split_once('='))
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }
}

#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    smap: Arc<RwLock<Option<Smap>>>,
}

pub use ais_core::paths::escape_path as enc;

/// The body as text (e.g. a job id).
pub(crate) async fn text(resp: reqwest::Response) -> Result<String> {
    let url = resp.url().to_string();
    resp.text()
        .await
        .map_err(|e| ClientError::Transport { url, source: e })
}

/// The body as JSON of type `T`.
pub(crate) async fn json<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> Result<T> {
    resp.json()
        .await
        .map_err(|e| ClientError::Decode(e.to_string()))
}

async fn check(resp: reqwest::Response) -> Result<reqwest::Response> {
    let status = resp.status();
    if status.is_success() || status.is_redirection() {
        return Ok(resp);
    }
    let hdr_err = resp
        .headers()
        .get("hdr-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = match hdr_err {
        Some(h) => h,
        None => resp.text().await.unwrap_or_default(),
    };
    let (message, tcode) = match serde_json::from_str::<ErrMsg>(&text) {
        Ok(b) => (b.message, b.tcode),
        Err(_) if text.is_empty() => (format!("{status}"), String::new()),
        Err(_) => (text, String::new()),
    };
    Err(ClientError::Http {
        status: status.as_u16(),
        message,
        tcode,
    })
}

impl Client {
    pub fn new(endpoint: &str) -> Self {
        Self::with_token(endpoint, None)
    }

    /// A client that sends `Authorization: Bearer TOKEN` on every request,
    /// redirected ones included (see [`auth`]).
    pub fn with_token(endpoint: &str, token: Option<&str>) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(v) = token
            .filter(|t| !t.is_empty())
            .and_then(|t| reqwest::header::HeaderValue::from_str(&format!("Bearer {t}")).ok())
        {
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(256)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            base: endpoint.trim_end_matches('/').to_string(),
            http,
            smap: Arc::new(RwLock::new(None)),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.base
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, rb: reqwest::RequestBuilder, url: &str) -> Result<reqwest::Response> {
        let resp = rb.send().await.map_err(|e| ClientError::Transport {
            url: url.to_string(),
            source: e,
        })?;
        check(resp).await
    }

    /// Sends a bodiless or small-bodied request, following redirects.
    pub(crate) async fn request(
        &self,
        method: Method,
        url: String,
        body: Option<Bytes>,
        headers: &[(&str, String)],
    ) -> Result<reqwest::Response> {
        let mut url = url;
        for _ in 0..5 {
            let mut rb = self.http.request(method.clone(), &url);
            for (k, v) in headers {
                rb = rb.header(*k, v);
            }
            if let Some(b) = &body {
                rb = rb.body(b.clone());
            }
            let resp = self.send(rb, &url).await?;
            if resp.status().is_redirection() {
                url = location(&resp)?;
                continue;
            }
            return Ok(resp);
        }
        Err(ClientError::Decode(format!("too many redirects for {url}")))
    }

    pub(crate) async fn action(
        &self,
        method: Method,
        path: &str,
        msg: &ActMsg,
    ) -> Result<reqwest::Response> {
        let body = serde_json::to_vec(msg).map_err(|e| ClientError::Decode(e.to_string()))?;
        self.request(
            method,
            self.url(path),
            Some(body.into()),
            &[("content-type", "application/json".into())],
        )
        .await
    }

    /// `GET` of a path (no body), decoded from JSON.
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        json(self.request(Method::GET, self.url(path), None, &[]).await?).await
    }

    /// A request without a body whose answer carries nothing.
    pub(crate) async fn bodiless(&self, method: Method, path: &str) -> Result<()> {
        self.request(method, self.url(path), None, &[])
            .await
            .map(|_| ())
    }

    pub async fn smap(&self) -> Result<Smap> {
        let resp = self
            .request(
                Method::GET,
                self.url(&paths::daemon_what("smap")),
                None,
                &[],
            )
            .await?;
        let smap: Smap = resp
            .json()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        if let Ok(mut g) = self.smap.write() {
            *g = Some(smap.clone());
        }
        Ok(smap)
    }

    /// Whether the node at `node_url` answers its health check now (2 s).
    pub async fn node_alive(&self, node_url: &str) -> bool {
        let url = format!("{}{}", node_url.trim_end_matches('/'), paths::HEALTH);
        self.http
            .get(url)
            .timeout(std::time::Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    pub async fn health(&self) -> Result<()> {
        self.request(Method::GET, self.url(paths::HEALTH), None, &[])
            .await
            .map(|_| ())
    }

    pub async fn create_bucket(&self, name: &str) -> Result<()> {
        self.action(
            Method::POST,
            &paths::bucket(name),
            &ActMsg::new("create-bck"),
        )
        .await
        .map(|_| ())
    }

    pub async fn destroy_bucket(&self, name: &str) -> Result<()> {
        self.action(
            Method::DELETE,
            &paths::bucket(name),
            &ActMsg::new("destroy-bck"),
        )
        .await
        .map(|_| ())
    }

    /// Sets bucket properties; returns the id of the job that applies them
    /// to existing objects (e.g. enabling erasure coding), or "".
    pub async fn set_bucket_props(&self, name: &str, props: serde_json::Value) -> Result<String> {
        let msg = ActMsg {
            action: "set-bprops".into(),
            name: String::new(),
            value: props,
        };
        let resp = self
            .action(Method::PATCH, &paths::bucket(name), &msg)
            .await?;
        text(resp).await
    }

    /// Back to the cluster's bucket defaults (`reset-bprops`).
    pub async fn reset_bucket_props(&self, name: &str) -> Result<()> {
        self.action(
            Method::PATCH,
            &paths::bucket(name),
            &ActMsg::new("reset-bprops"),
        )
        .await
        .map(drop)
    }

    pub async fn list_buckets(&self) -> Result<Vec<Bck>> {
        self.list_buckets_of("ais").await
    }

    /// The buckets of one provider (`ais`, `aws`) in the cluster.
    pub async fn list_buckets_of(&self, provider: &str) -> Result<Vec<Bck>> {
        let q = format!("provider={}", ais_core::paths::escape_segment(provider));
        let resp = self
            .action(Method::GET, &paths::buckets_query(&q), &ActMsg::new("list"))
            .await?;
        resp.json()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    pub async fn head_bucket(&self, name: &str) -> Result<BucketProps> {
        let resp = self
            .request(Method::HEAD, self.url(&paths::bucket(name)), None, &[])
            .await?;
        let raw = resp
            .headers()
            .get("ais-bucket-props")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("{}")
            .to_string();
        serde_json::from_str(&raw).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// One page of a listing.
    pub async fn list_page(&self, bucket: &str, msg: &LsoMsg) -> Result<LsoResJson> {
        self.list_page_inv(bucket, msg, "").await
    }

    /// One page of a listing; `inv`: the native bucket inventory to read
    /// (with the `LSO_NBI` flag; empty: the bucket's only one).
    pub async fn list_page_inv(&self, bucket: &str, msg: &LsoMsg, inv: &str) -> Result<LsoResJson> {
        let act = ActMsg {
            action: "list".into(),
            name: String::new(),
            value: serde_json::to_value(msg).map_err(|e| ClientError::Decode(e.to_string()))?,
        };
        let body = serde_json::to_vec(&act).map_err(|e| ClientError::Decode(e.to_string()))?;
        let mut headers = vec![("content-type", "application/json".to_string())];
        if !inv.is_empty() {
            headers.push((ais_core::api::HDR_INV_NAME, inv.to_string()));
        }
        let resp = self
            .request(
                Method::GET,
                self.url(&paths::bucket(bucket)),
                Some(body.into()),
                &headers,
            )
            .await?;
        resp.json()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `create-inventory` of a remote bucket; answers the job id.
    pub async fn create_inventory(
        &self,
        bucket: &str,
        msg: &ais_core::api::CreateNbiMsg,
    ) -> Result<String> {
        let act = ActMsg {
            action: "create-inventory".into(),
            name: String::new(),
            value: serde_json::to_value(msg).map_err(|e| ClientError::Decode(e.to_string()))?,
        };
        let resp = self
            .action(Method::POST, &paths::bucket(bucket), &act)
            .await?;
        resp.text()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// A bucket's native inventories (`name`: that one), by inventory
    /// object name.
    pub async fn show_inventory(
        &self,
        bucket: &str,
        name: &str,
    ) -> Result<std::collections::BTreeMap<String, ais_core::api::NbiInfo>> {
        let act = ActMsg {
            action: "show-inventory".into(),
            name: name.into(),
            value: serde_json::Value::Null,
        };
        let resp = self
            .action(Method::GET, &paths::bucket(bucket), &act)
            .await?;
        resp.json()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Removes a bucket's inventory `name` (empty: all of them).
    pub async fn destroy_inventory(&self, bucket: &str, name: &str) -> Result<()> {
        let act = ActMsg {
            action: "destroy-inventory".into(),
            name: name.into(),
            value: serde_json::Value::Null,
        };
        self.action(Method::DELETE, &paths::bucket(bucket), &act)
            .await
            .map(|_| ())
    }

    /// Every object under `prefix`, page by page.
    pub async fn list_all(
        &self,
        bucket: &str,
        prefix: &str,
        props: &str,
    ) -> Result<Vec<LsoEntryJson>> {
        let mut msg = LsoMsg {
            prefix: prefix.into(),
            props: props.into(),
            ..Default::default()
        };
        let mut out = Vec::new();
        loop {
            let page = self.list_page(bucket, &msg).await?;
            out.extend(page.entries);
            if page.continuation_token.is_empty() {
                return Ok(out);
            }
            msg.uuid = page.uuid;
            msg.continuation_token = page.continuation_token;
        }
    }

    fn obj_path(bucket: &str, obj: &str) -> String {
        paths::object(bucket, obj)
    }

    /// Base URL of the object's owner target per the cached cluster map
    /// (fetched once if there is none; the proxy's URL if still unknown).
    async fn owner_base(&self, bucket: &str, obj: &str) -> String {
        // Placement under the read lock: a GET must not copy the whole map.
        let uname = Bck::ais(bucket).obj_uname(obj);
        let owner = |s: &Smap| s.owner(&uname).map(|t| t.url().to_string());
        let cached = match self.smap.read() {
            Ok(g) => g.as_ref().map(owner),
            Err(_) => None,
        };
        let found = match cached {
            Some(o) => o,
            None => self.smap().await.ok().and_then(|s| owner(&s)),
        };
        found.unwrap_or_else(|| self.base.clone())
    }

    /// URL of the object on its owner target (see [`Client::owner_base`]).
    async fn put_url(&self, bucket: &str, obj: &str) -> String {
        let base = self.owner_base(bucket, obj).await;
        format!("{base}{}", Self::obj_path(bucket, obj))
    }

    pub async fn put_bytes(
        &self,
        bucket: &str,
        obj: &str,
        data: impl Into<Bytes>,
    ) -> Result<ObjProps> {
        let data: Bytes = data.into();
        let url = self.put_url(bucket, obj).await;
        let resp = self
            .request(Method::PUT, url, Some(data.clone()), &[])
            .await;
        let resp = match resp {
            // The cached owner may be gone: refresh the map and retry once.
            Err(ClientError::Transport { .. }) => {
                self.smap().await?;
                let url = self.put_url(bucket, obj).await;
                self.request(Method::PUT, url, Some(data), &[]).await?
            }
            r => r?,
        };
        Ok(ObjProps::from_headers(resp.headers()))
    }

    /// Streams a file (never loaded into memory).
    pub async fn put_file(&self, bucket: &str, obj: &str, path: &Path) -> Result<ObjProps> {
        let len = tokio::fs::metadata(path).await?.len();
        self.put_body(bucket, obj, len, || async {
            let file = tokio::fs::File::open(path).await?;
            let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
            Ok(reqwest::Body::wrap_stream(stream))
        })
        .await
    }

    /// Streams a body made by `body` (called again for every redirect, so
    /// each try sends a fresh body) of exactly `len` bytes to the owner target.
    pub async fn put_body<F, Fut>(
        &self,
        bucket: &str,
        obj: &str,
        len: u64,
        body: F,
    ) -> Result<ObjProps>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<reqwest::Body>>,
    {
        let h = self.put_body_with(bucket, obj, "", len, body).await?;
        Ok(ObjProps::from_headers(&h))
    }

    /// Appends a file to an object (created if absent; AIStore's append:
    /// one append, then the flush that makes the whole object visible).
    pub async fn append_file(&self, bucket: &str, obj: &str, path: &Path) -> Result<ObjProps> {
        let len = tokio::fs::metadata(path).await?.len();
        let h = self
            .put_body_with(
                bucket,
                obj,
                "append_type=append&append_handle=",
                len,
                || async {
                    let file = tokio::fs::File::open(path).await?;
                    let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
                    Ok(reqwest::Body::wrap_stream(stream))
                },
            )
            .await?;
        let handle = h
            .get("ais-append-handle")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ClientError::Decode("append: no Ais-Append-Handle in the answer".into())
            })?;
        let q = format!(
            "append_type=flush&append_handle={}",
            percent_encoding::utf8_percent_encode(handle, percent_encoding::NON_ALPHANUMERIC)
        );
        let h = self
            .put_body_with(bucket, obj, &q, 0, || async { Ok(reqwest::Body::from("")) })
            .await?;
        Ok(ObjProps::from_headers(&h))
    }

    /// A PUT of `bck/obj` with a query string (already escaped; empty for
    /// none), following redirects; returns the answer's headers.
    async fn put_body_with<F, Fut>(
        &self,
        bucket: &str,
        obj: &str,
        query: &str,
        len: u64,
        body: F,
    ) -> Result<reqwest::header::HeaderMap>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<reqwest::Body>>,
    {
        let mut url = self.put_url(bucket, obj).await;
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        for _ in 0..5 {
            let rb = self
                .http
                .put(&url)
                .header("content-length", len)
                .body(body().await?);
            let resp = self.send(rb, &url).await?;
            if resp.status().is_redirection() {
                url = location(&resp)?;
                continue;
            }
            return Ok(resp.headers().clone());
        }
        Err(ClientError::Decode(format!("too many redirects for {url}")))
    }

    /// GET with a query string that is sent verbatim (already escaped, e.g.
    /// `etl_name=x&etl_args=a%26b`; empty for none), through the proxy or,
    /// with `direct`, straight from the owner target chosen from the cluster
    /// map (the SDK's `direct` mode). Returns the response to stream from.
    pub async fn get_raw_query(
        &self,
        bucket: &str,
        obj: &str,
        raw_query: &str,
        direct: bool,
    ) -> Result<reqwest::Response> {
        let base = if direct {
            self.owner_base(bucket, obj).await
        } else {
            self.base.clone()
        };
        let mut url = format!("{base}{}", Self::obj_path(bucket, obj));
        if !raw_query.is_empty() {
            url.push('?');
            url.push_str(raw_query);
        }
        self.request(Method::GET, url, None, &[]).await
    }

    /// GET through the proxy; returns the response to stream from.
    pub async fn get_stream(
        &self,
        bucket: &str,
        obj: &str,
        query: &[(&str, &str)],
        range: Option<&str>,
    ) -> Result<reqwest::Response> {
        let mut url = self.url(&Self::obj_path(bucket, obj));
        if !query.is_empty() {
            let q: Vec<String> = query
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        percent_encoding::utf8_percent_encode(v, NON_ALPHANUMERIC)
                    )
                })
                .collect();
            url.push('?');
            url.push_str(&q.join("&"));
        }
        let headers: Vec<(&str, String)> = range
            .map(|r| vec![("range", r.to_string())])
            .unwrap_or_default();
        self.request(Method::GET, url, None, &headers).await
    }

    /// Get-Batch (`/v1/ml/moss/BUCKET`): one request for many objects (or
    /// `name?archpath=member` shard members), answered as one tar in
    /// request order; returns the response to stream from.
    pub async fn get_batch(
        &self,
        bucket: &str,
        items: &[(String, Option<String>)],
        etl: Option<&str>,
        cont_on_err: bool,
    ) -> Result<reqwest::Response> {
        let ins: Vec<serde_json::Value> = items
            .iter()
            .map(|(n, a)| match a {
                Some(a) => serde_json::json!({"objname": n, "archpath": a}),
                None => serde_json::json!({"objname": n}),
            })
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({"in": ins, "coer": cont_on_err}))
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        let mut url = self.url(&format!("{}/{bucket}", ais_core::paths::MOSS));
        if let Some(e) = etl {
            url.push_str("?etl_name=");
            url.push_str(&percent_encoding::utf8_percent_encode(e, NON_ALPHANUMERIC).to_string());
        }
        let headers = [("content-type", "application/json".to_string())];
        self.request(Method::GET, url, Some(Bytes::from(body)), &headers)
            .await
    }

    pub async fn get(&self, bucket: &str, obj: &str) -> Result<Bytes> {
        let resp = self.get_stream(bucket, obj, &[], None).await?;
        resp.bytes().await.map_err(|e| ClientError::Transport {
            url: obj.to_string(),
            source: e,
        })
    }

    pub async fn head_object(&self, bucket: &str, obj: &str) -> Result<ObjProps> {
        let url = self.url(&format!(
            "{}?props=size,checksum,atime,version,custom",
            Self::obj_path(bucket, obj)
        ));
        let resp = self.request(Method::HEAD, url, None, &[]).await?;
        Ok(ObjProps::from_headers(resp.headers()))
    }

    /// A node's recent log through the proxy (`/v1/reverse/daemon`,
    /// `Ais-Node-Id`): `severity` info|warning|error; `all`: as a tar.gz.
    pub async fn node_log(&self, node_id: &str, severity: &str, all: bool) -> Result<Bytes> {
        let mut url = self.url(&format!("/v1/reverse/daemon?what=log&severity={severity}"));
        if all {
            url.push_str("&all=true");
        }
        let resp = self
            .request(
                Method::GET,
                url,
                None,
                &[("ais-node-id", node_id.to_string())],
            )
            .await?;
        resp.bytes().await.map_err(|e| ClientError::Transport {
            url: format!("log of {node_id}"),
            source: e,
        })
    }

    /// Renames an object within its bucket (`rename-obj`).
    pub async fn rename_object(&self, bucket: &str, obj: &str, new: &str) -> Result<()> {
        let msg = ActMsg {
            action: "rename-obj".into(),
            name: new.to_string(),
            value: serde_json::Value::Null,
        };
        self.action(Method::POST, &Self::obj_path(bucket, obj), &msg)
            .await
            .map(drop)
    }

    /// Sets custom properties of an object (added to what it has, or with
    /// `replace` instead of it), as the SDK's `set_custom_props`.
    pub async fn set_custom(
        &self,
        bucket: &str,
        obj: &str,
        props: &std::collections::BTreeMap<String, String>,
        replace: bool,
    ) -> Result<()> {
        let mut path = Self::obj_path(bucket, obj);
        if replace {
            path.push_str("?set-new-custom=true");
        }
        let msg = ActMsg {
            action: String::new(),
            name: String::new(),
            value: serde_json::to_value(props).map_err(|e| ClientError::Decode(e.to_string()))?,
        };
        self.action(Method::PATCH, &path, &msg).await.map(drop)
    }

    pub async fn delete_object(&self, bucket: &str, obj: &str) -> Result<()> {
        self.request(
            Method::DELETE,
            self.url(&Self::obj_path(bucket, obj)),
            None,
            &[],
        )
        .await
        .map(|_| ())
    }

    /// Raw access for calls without a typed wrapper (ETL, jobs).
    pub async fn raw(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
    ) -> Result<reqwest::Response> {
        let headers = if body.is_some() {
            vec![("content-type", "application/json".to_string())]
        } else {
            vec![]
        };
        self.request(method, self.url(path_and_query), body, &headers)
            .await
    }
}

fn location(resp: &reqwest::Response) -> Result<String> {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| ClientError::Decode("redirect without Location".into()))
}

pub use reqwest::Method as HttpMethod;
pub use reqwest::Response;
