//! Remote backends of cloud buckets: the store that holds a remote
//! bucket's objects, which the cluster caches. `s3://` buckets speak S3
//! (`s3`, presigned requests); `gs://` and `az://` buckets go through
//! Apache Arrow's `object_store` crate (`cloud`). Everything above this
//! module sees one [`Remote`] with the same calls and the same guarantees:
//! bodies streamed both ways, ranges pinned to one version, a listing in
//! key order by pages.

mod cloud;
mod s3;

pub use s3::S3Bucket;

use ais_core::meta::BucketProps;
use std::time::Duration;

/// What a remote call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("no S3 endpoint configured for s3://{0} (set the bucket's extra.aws.endpoint or the node's AIS_S3_ENDPOINT)")]
    NoEndpoint(String),
    #[error("invalid S3 endpoint \"{0}\": {1}")]
    BadEndpoint(String, String),
    #[error("backend {0} unreachable: {1}")]
    Unreachable(String, String),
    #[error("remote backend {url}: {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("S3 backend: malformed listing: {0}")]
    Listing(String),
    /// A `gs://` or `az://` bucket whose store is not configured.
    #[error("{0}")]
    NoConfig(String),
    /// A name the store cannot hold as given (it would be stored under
    /// another name).
    #[error("object name \"{0}\" cannot be stored at {1} as it is (empty, \".\" or \"..\" path segments)")]
    BadName(String, String),
}

impl BackendError {
    /// The remote's HTTP status, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            BackendError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, BackendError>;

/// A remote object's identity as the backend reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteAttrs {
    pub size: u64,
    /// Without quotes.
    pub etag: String,
    pub last_modified: String,
}

/// One listed remote object.
#[derive(Debug, Clone)]
pub struct RemoteEntry {
    pub name: String,
    pub size: u64,
    pub etag: String,
}

/// Custom-metadata keys a cached copy keeps of its remote original.
pub const MD_ETAG: &str = "remote.etag";
pub const MD_LAST_MODIFIED: &str = "remote.last_modified";

/// A remote object's bytes as they arrive.
pub type ByteStream = futures::stream::BoxStream<'static, Result<bytes::Bytes>>;

/// Bytes going to a remote object.
pub type BodyStream =
    futures::stream::BoxStream<'static, std::result::Result<bytes::Bytes, std::io::Error>>;

/// At most `len` bytes of `body`, read into memory (`len` is bounded by the
/// caller); `None`: the body holds more.
async fn read_at_most<E>(
    mut body: impl futures::Stream<Item = std::result::Result<bytes::Bytes, E>> + Unpin,
    len: u64,
    err: impl Fn(E) -> BackendError,
) -> Result<Option<bytes::Bytes>> {
    use futures::StreamExt;
    let mut out = bytes::BytesMut::with_capacity(len as usize);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(&err)?;
        if out.len() as u64 + chunk.len() as u64 > len {
            return Ok(None);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out.freeze()))
}

/// One remote bucket, whichever store holds it.
pub enum Remote {
    S3(S3Bucket),
    Cloud(cloud::CloudBucket),
}

impl Remote {
    /// The remote of bucket `name` with `props` (its provider picks the
    /// store).
    pub fn new(name: &str, props: &BucketProps) -> Result<Self> {
        match props.provider.as_str() {
            ais_core::names::PROVIDER_GCP | ais_core::names::PROVIDER_AZURE => Ok(Remote::Cloud(
                cloud::CloudBucket::new(&props.provider, name)?,
            )),
            _ => Ok(Remote::S3(S3Bucket::new(name, props)?)),
        }
    }

    /// The remote behind bucket `name` with `props`: the bucket itself at
    /// its provider's store, or an `ais://` bucket's `backend_bck`.
    pub fn for_bucket(name: &str, props: &BucketProps) -> Result<Self> {
        let b = &props.backend_bck;
        if b.name.is_empty() {
            return Self::new(name, props);
        }
        // The backend's store from the node's configuration only: never
        // an endpoint from the ais:// bucket's own props (its owner could
        // point the cluster anywhere).
        let behind = BucketProps {
            provider: b.provider.clone(),
            ..BucketProps::default()
        };
        Self::new(&b.name, &behind)
    }

    /// Whether the bucket exists there.
    pub async fn head_bucket(&self, http: &reqwest::Client) -> Result<bool> {
        match self {
            Remote::S3(b) => b.head_bucket(http).await,
            Remote::Cloud(b) => b.head_bucket().await,
        }
    }

    /// The object's attributes there; `None`: it does not exist.
    pub async fn head_object(
        &self,
        http: &reqwest::Client,
        key: &str,
    ) -> Result<Option<RemoteAttrs>> {
        match self {
            Remote::S3(b) => b.head_object(http, key).await,
            Remote::Cloud(b) => b.head_object(key).await,
        }
    }

    /// Starts a GET of the object; `None`: it does not exist.
    pub async fn get_object(
        &self,
        http: &reqwest::Client,
        key: &str,
    ) -> Result<Option<(RemoteAttrs, ByteStream)>> {
        match self {
            Remote::S3(b) => b.get_object(http, key).await,
            Remote::Cloud(b) => b.get_object(key).await,
        }
    }

    /// Bytes `start..=end` of `key` (of `total`), only from the version
    /// whose ETag is `etag` (anything else is an error, never mixed in);
    /// `None`: the object is gone.
    pub async fn get_range(
        &self,
        http: &reqwest::Client,
        key: &str,
        range: (u64, u64, u64),
        etag: &str,
    ) -> Result<Option<bytes::Bytes>> {
        match self {
            Remote::S3(b) => b.get_range(http, key, range, etag).await,
            Remote::Cloud(b) => b.get_range(key, range, etag).await,
        }
    }

    /// Uploads exactly `len` bytes of `body` as `key` (a body that fails or
    /// ends early leaves nothing there); the new attributes.
    pub async fn put_object(
        &self,
        http: &reqwest::Client,
        key: &str,
        body: BodyStream,
        len: u64,
    ) -> Result<RemoteAttrs> {
        let _ = http;
        match self {
            // A streamed upload: no read timeout (the answer comes only
            // after the whole body, however long that takes to send).
            Remote::S3(b) => b.put_object(upload_http(), key, body, len).await,
            Remote::Cloud(b) => b.put_object(key, body, len).await,
        }
    }

    /// Removes `key` there (absent is not an error).
    pub async fn delete_object(&self, http: &reqwest::Client, key: &str) -> Result<()> {
        match self {
            Remote::S3(b) => b.delete_object(http, key).await,
            Remote::Cloud(b) => b.delete_object(key).await,
        }
    }

    /// One page of the remote listing (keys in order, each starting with
    /// `prefix`, after `start_after`), and whether there is more.
    pub async fn list_page(
        &self,
        http: &reqwest::Client,
        prefix: &str,
        start_after: &str,
        token: Option<&str>,
        max: usize,
    ) -> Result<(Vec<RemoteEntry>, Option<String>)> {
        match self {
            Remote::S3(b) => b.list_page(http, prefix, start_after, token, max).await,
            Remote::Cloud(b) => b.list_page(prefix, start_after, max).await,
        }
    }
}

/// The HTTP client for remote backends (no cluster credentials on it).
pub fn http() -> &'static reqwest::Client {
    static C: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // A store that does not answer within 2 min, or goes silent
            // that long mid-body, fails the request (retried where safe)
            // instead of holding it forever. Streamed uploads use
            // `upload_http` (their answer comes after the whole body).
            .read_timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default()
    })
}

/// [`http`] without the read timeout, for streamed uploads (S3 answers
/// only once the whole body has arrived).
fn upload_http() -> &'static reqwest::Client {
    static C: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default()
    })
}
