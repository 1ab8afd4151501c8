//! The `gs://` and `az://` backends, through Apache Arrow's `object_store`
//! (one well-kept client per store instead of hand-written ones).
//!
//! Where a bucket lives and with which credentials, from the node's
//! environment (AIStore's and the clouds' own names):
//! - `gs://`: `GOOGLE_APPLICATION_CREDENTIALS` (a service account or
//!   authorized-user file), or the VM's metadata server when
//!   `AIS_GCP_INSTANCE_CREDENTIALS=true`;
//!   `STORAGE_EMULATOR_HOST` (Google's convention) points every `gs://`
//!   bucket at an emulator, unauthenticated.
//! - `az://`: `AZURE_STORAGE_ACCOUNT` and `AZURE_STORAGE_KEY`, `AIS_AZURE_URL`
//!   for another endpoint than `https://ACCOUNT.blob.core.windows.net`;
//!   `AZURITE_BLOB_STORAGE_URL` points every `az://` bucket at Azurite
//!   (its well-known account unless one is set).
//!
//! One client per bucket, kept for the node's life (connections reused).
//! Requests are retried twice on transient failures; none has an overall
//! time limit (a 5 GiB body takes what it takes), connects time out after
//! 10 s.

use super::{BackendError, BodyStream, ByteStream, RemoteAttrs, RemoteEntry, Result};
use ais_core::names::{PROVIDER_AZURE, PROVIDER_GCP};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore, PutPayload, WriteMultipart};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Bodies up to this size go in one request (held in memory once);
/// larger ones as a multipart upload of parts this size.
const PART: u64 = 8 << 20;

/// Parts of one upload in flight at once (memory: `PART` x this).
const PARTS_IN_FLIGHT: usize = 4;

/// Bytes all uploads of this node may hold in memory at once, in MiB
/// (a single PUT holds its body, a multipart one its parts in flight);
/// uploads past it wait for room.
const UPLOAD_BUDGET_MIB: u32 = 512;

fn upload_budget() -> &'static tokio::sync::Semaphore {
    static S: tokio::sync::Semaphore =
        tokio::sync::Semaphore::const_new(UPLOAD_BUDGET_MIB as usize);
    &S
}

/// Clients kept at most (one per bucket); past it the cache starts over.
const MAX_CLIENTS: usize = 4096;

/// A bucket's client: objects, and listing by pages with the store's own
/// tokens (the same instance behind both).
#[derive(Clone)]
struct Store {
    objects: Arc<dyn ObjectStore>,
    pages: Arc<dyn PaginatedListStore>,
    /// Azure lists from a marker only; GCS from a name too.
    is_azure: bool,
}

/// One `gs://` or `az://` bucket.
pub struct CloudBucket {
    store: Arc<dyn ObjectStore>,
    pages: Arc<dyn PaginatedListStore>,
    is_azure: bool,
    /// `gs://name` / `az://name`, for messages.
    cname: String,
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.trim().is_empty())
}

fn client_options() -> object_store::ClientOptions {
    object_store::ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout_disabled()
        .with_allow_http(true)
}

/// Every bucket's client sends through the one HTTP client of the remote
/// backends (`super::http()`: shared connections, a connect timeout and a
/// read timeout, so a stalled store fails a request instead of holding it).
#[derive(Debug)]
struct SharedHttp;

impl object_store::client::HttpConnector for SharedHttp {
    fn connect(
        &self,
        _: &object_store::ClientOptions,
    ) -> object_store::Result<object_store::client::HttpClient> {
        Ok(object_store::client::HttpClient::new(super::http().clone()))
    }
}

fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 2,
        retry_timeout: Duration::from_secs(30),
        ..Default::default()
    }
}

fn build(provider: &str, bucket: &str, cname: &str) -> Result<Store> {
    let bad = |e: object_store::Error| BackendError::NoConfig(format!("{cname}: {e}"));
    if provider == PROVIDER_GCP {
        let mut b = object_store::gcp::GoogleCloudStorageBuilder::new()
            .with_bucket_name(bucket)
            .with_client_options(client_options())
            .with_http_connector(SharedHttp)
            .with_retry(retry());
        if let Some(host) = env("STORAGE_EMULATOR_HOST") {
            let base = if host.contains("://") {
                host
            } else {
                format!("http://{host}")
            };
            let key = serde_json::json!({
                "private_key": "", "private_key_id": "", "client_email": "",
                "gcs_base_url": base.trim_end_matches('/'), "disable_oauth": true,
            });
            b = b.with_service_account_key(key.to_string());
        } else if let Some(path) = env("GOOGLE_APPLICATION_CREDENTIALS") {
            b = b.with_application_credentials(path);
        } else if env("AIS_GCP_INSTANCE_CREDENTIALS").as_deref() != Some("true") {
            // Without this the client would ask a metadata server that,
            // off Google's cloud, is not there (a wait, then a vague error).
            return Err(BackendError::NoConfig(format!(
                "no Google Cloud credentials configured for {cname} (set the node's \
                 GOOGLE_APPLICATION_CREDENTIALS, or AIS_GCP_INSTANCE_CREDENTIALS=true on a \
                 Google Cloud VM, or STORAGE_EMULATOR_HOST for an emulator)"
            )));
        }
        let s = Arc::new(b.build().map_err(bad)?);
        return Ok(Store {
            objects: s.clone(),
            pages: s,
            is_azure: false,
        });
    }
    let mut b = object_store::azure::MicrosoftAzureBuilder::new()
        .with_container_name(bucket)
        .with_client_options(client_options())
        .with_http_connector(SharedHttp)
        .with_retry(retry());
    let key = crate::secrets::get("AZURE_STORAGE_KEY").filter(|k| !k.trim().is_empty());
    let has_key = key.is_some();
    if let Some(key) = key {
        b = b.with_access_key(key);
    }
    let account = env("AZURE_STORAGE_ACCOUNT");
    if env("AZURITE_BLOB_STORAGE_URL").is_some() {
        // object_store reads the emulator's URL itself.
        b = b.with_use_emulator(true);
        if let Some(a) = account {
            b = b.with_account(a);
        }
    } else {
        let a = account.filter(|_| has_key).ok_or_else(|| {
            BackendError::NoConfig(format!(
                "no Azure storage account configured for {cname} (set the node's \
                 AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY, or AZURITE_BLOB_STORAGE_URL \
                 for an emulator)"
            ))
        })?;
        b = b.with_account(a);
        if let Some(url) = env("AIS_AZURE_URL") {
            b = b.with_endpoint(url);
        }
    }
    let s = Arc::new(b.build().map_err(bad)?);
    Ok(Store {
        objects: s.clone(),
        pages: s,
        is_azure: true,
    })
}

/// The status an `object_store` error stands for (a remote that answered),
/// if any.
fn status_of(e: &object_store::Error) -> Option<u16> {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => Some(404),
        E::PermissionDenied { .. } => Some(403),
        E::Unauthenticated { .. } => Some(401),
        E::Precondition { .. } => Some(412),
        E::NotModified { .. } => Some(304),
        E::AlreadyExists { .. } => Some(409),
        _ => {
            // Listing errors arrive wrapped as generic ones: the status is
            // only in the text.
            // Only the store's answer counts, never a name quoted in the
            // text (a key may contain anything).
            let text = e.to_string();
            if text.contains("invalid path") || text.contains("InvalidPath") {
                return None;
            }
            [404u16, 403, 401]
                .into_iter()
                .find(|s| text.contains(&format!("Server returned non-2xx status code: {s} ")))
        }
    }
}

/// An ETag without its quotes (as the cluster keeps it).
fn unquoted(tag: Option<&str>) -> String {
    tag.unwrap_or("").trim_matches('"').to_string()
}

impl CloudBucket {
    pub fn new(provider: &str, bucket: &str) -> Result<Self> {
        let scheme = if provider == PROVIDER_AZURE {
            "az"
        } else {
            "gs"
        };
        let cname = format!("{scheme}://{bucket}");
        static CLIENTS: OnceLock<Mutex<HashMap<String, Store>>> = OnceLock::new();
        let clients = CLIENTS.get_or_init(Default::default);
        let cached = clients
            .lock()
            .map_err(|_| BackendError::NoConfig("backend client cache poisoned".into()))?
            .get(&cname)
            .cloned();
        let store = match cached {
            Some(s) => s,
            None => {
                let s = build(provider, bucket, &cname)?;
                let mut m = clients
                    .lock()
                    .map_err(|_| BackendError::NoConfig("backend client cache poisoned".into()))?;
                if m.len() >= MAX_CLIENTS {
                    m.clear();
                }
                m.insert(cname.clone(), s.clone());
                s
            }
        };
        Ok(Self {
            store: store.objects,
            pages: store.pages,
            is_azure: store.is_azure,
            cname,
        })
    }

    fn err(&self, what: &str, e: object_store::Error) -> BackendError {
        match status_of(&e) {
            Some(status) => BackendError::Status {
                url: format!("{} {what}", self.cname),
                status,
                body: e.to_string(),
            },
            None => BackendError::Unreachable(self.cname.clone(), format!("{what}: {e}")),
        }
    }

    /// The store's path for `key`, which must be exactly `key` (the store
    /// would otherwise read or write another name).
    fn path(&self, key: &str) -> Result<Path> {
        match Path::parse(key) {
            Ok(p) if p.as_ref() == key => Ok(p),
            _ => Err(BackendError::BadName(key.to_string(), self.cname.clone())),
        }
    }

    fn attrs(m: &ObjectMeta) -> RemoteAttrs {
        RemoteAttrs {
            size: m.size,
            etag: unquoted(m.e_tag.as_deref()),
            last_modified: httpdate::fmt_http_date(std::time::SystemTime::from(m.last_modified)),
        }
    }

    /// Whether the bucket exists there: its first listing page answers.
    pub async fn head_bucket(&self) -> Result<bool> {
        match self.store.list(None).next().await {
            None | Some(Ok(_)) => Ok(true),
            Some(Err(e)) if status_of(&e) == Some(404) => Ok(false),
            Some(Err(e)) => Err(self.err("list", e)),
        }
    }

    pub async fn head_object(&self, key: &str) -> Result<Option<RemoteAttrs>> {
        let p = self.path(key)?;
        match self.store.head(&p).await {
            Ok(m) => Ok(Some(Self::attrs(&m))),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.err(&format!("HEAD {key}"), e)),
        }
    }

    pub async fn get_object(&self, key: &str) -> Result<Option<(RemoteAttrs, ByteStream)>> {
        let p = self.path(key)?;
        let r = match self.store.get_opts(&p, GetOptions::default()).await {
            Ok(r) => r,
            Err(e) if status_of(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(self.err(&format!("GET {key}"), e)),
        };
        let attrs = Self::attrs(&r.meta);
        let cname = self.cname.clone();
        let body = r
            .into_stream()
            .map_err(move |e| BackendError::Unreachable(cname.clone(), e.to_string()))
            .boxed();
        Ok(Some((attrs, body)))
    }

    pub async fn get_range(
        &self,
        key: &str,
        (start, end, total): (u64, u64, u64),
        etag: &str,
    ) -> Result<Option<Bytes>> {
        let p = self.path(key)?;
        let opts = GetOptions {
            range: Some(GetRange::Bounded(start..end + 1)),
            if_match: Some(format!("\"{etag}\"")),
            ..Default::default()
        };
        let bad = |why: String| BackendError::Status {
            url: format!("{}/{key}", self.cname),
            status: 502,
            body: format!("range {start}-{end} of {key}: {why}"),
        };
        let r = match self.store.get_opts(&p, opts).await {
            Ok(r) => r,
            Err(e) if status_of(&e) == Some(404) => return Ok(None),
            Err(e) if status_of(&e) == Some(412) => {
                return Err(bad(format!(
                    "the object changed (not ETag {etag} any more)"
                )))
            }
            Err(e) => return Err(self.err(&format!("GET {key} range {start}-{end}"), e)),
        };
        // Checked here too: an emulator (or a store) may ignore If-Match.
        let tag = Self::attrs(&r.meta).etag;
        if !tag.is_empty() && tag != etag {
            return Err(bad(format!(
                "the object changed (ETag {tag}, started with {etag})"
            )));
        }
        if r.range != (start..end + 1) || r.meta.size != total {
            return Err(bad(format!(
                "answered bytes {}-{} of {}",
                r.range.start,
                r.range.end.saturating_sub(1),
                r.meta.size
            )));
        }
        let len = end - start + 1;
        let body = r.into_stream();
        match super::read_at_most(body, len, |e| self.err(&format!("GET {key}"), e)).await? {
            Some(b) => Ok(Some(b)),
            None => Err(bad(format!("more than the {len} bytes asked for"))),
        }
    }

    /// Exactly `len` bytes of `body` as `key`: up to [`PART`] in one
    /// request, larger as a multipart upload (aborted, so nothing is
    /// left there, if the body fails or does not hold `len` bytes).
    pub async fn put_object(
        &self,
        key: &str,
        mut body: BodyStream,
        len: u64,
    ) -> Result<RemoteAttrs> {
        let p = self.path(key)?;
        let short = |got: u64| {
            BackendError::Unreachable(
                self.cname.clone(),
                format!("PUT {key}: the body held {got} bytes, not {len}; nothing was stored"),
            )
        };
        let failed = |e: std::io::Error| {
            BackendError::Unreachable(
                self.cname.clone(),
                format!("PUT {key}: the body failed ({e}); nothing was stored"),
            )
        };
        let mib = if len <= PART {
            len.div_ceil(1 << 20).max(1)
        } else {
            (PART >> 20) * (PARTS_IN_FLIGHT as u64 + 1)
        };
        let _room = upload_budget()
            .acquire_many(mib.min(UPLOAD_BUDGET_MIB as u64) as u32)
            .await
            .map_err(|_| BackendError::NoConfig("upload budget closed".into()))?;
        let result = if len <= PART {
            let buf = super::read_at_most(&mut body, len, failed)
                .await?
                .ok_or_else(|| short(len + 1))?;
            if buf.len() as u64 != len {
                return Err(short(buf.len() as u64));
            }
            self.store
                .put(&p, PutPayload::from(buf))
                .await
                .map_err(|e| self.err(&format!("PUT {key}"), e))?
        } else {
            let upload = self
                .store
                .put_multipart(&p)
                .await
                .map_err(|e| self.err(&format!("PUT {key}"), e))?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, PART as usize);
            let mut got = 0u64;
            let mut why = None;
            while let Some(chunk) = body.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        why = Some(failed(e));
                        break;
                    }
                };
                got += chunk.len() as u64;
                if got > len {
                    why = Some(short(got));
                    break;
                }
                if let Err(e) = w.wait_for_capacity(PARTS_IN_FLIGHT).await {
                    why = Some(self.err(&format!("PUT {key}"), e));
                    break;
                }
                w.write(&chunk);
            }
            if why.is_none() && got != len {
                why = Some(short(got));
            }
            if let Some(e) = why {
                if let Err(a) = w.abort().await {
                    tracing::warn!(object = %format!("{}/{key}", self.cname), error = %a, "aborting a multipart upload failed");
                }
                return Err(e);
            }
            w.finish()
                .await
                .map_err(|e| self.err(&format!("PUT {key}"), e))?
        };
        Ok(RemoteAttrs {
            size: len,
            etag: unquoted(result.e_tag.as_deref()),
            last_modified: String::new(),
        })
    }

    pub async fn delete_object(&self, key: &str) -> Result<()> {
        let p = self.path(key)?;
        match self.store.delete(&p).await {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) => Err(self.err(&format!("DELETE {key}"), e)),
        }
    }

    /// Up to `max` names starting with `prefix` after `start_after`, in
    /// order; `Some` (the last name) when there may be more. The store is
    /// asked by pages with the raw prefix: GCS starts after the name itself;
    /// Azure only from its own marker, which is remembered here for the
    /// name a page ended on, so a listing paged in order costs one store
    /// page per page. Without a marker (another node served the last page,
    /// or it was forgotten) Azure is read from the start of the prefix, at
    /// most `MAX_SCAN_PAGES` store pages per call: past that the call ends
    /// with the last name seen (a short page; the next call resumes there).
    pub async fn list_page(
        &self,
        prefix: &str,
        start_after: &str,
        max: usize,
    ) -> Result<(Vec<RemoteEntry>, Option<String>)> {
        let max = max.clamp(1, 1000);
        let mut token = if self.is_azure && !start_after.is_empty() {
            markers::take(&self.cname, prefix, start_after)
        } else {
            None
        };
        let mut out: Vec<RemoteEntry> = Vec::new();
        let mut last_seen = String::new();
        for _ in 0..MAX_SCAN_PAGES {
            let opts = PaginatedListOptions {
                offset: (!self.is_azure && !start_after.is_empty())
                    .then(|| start_after.to_string()),
                max_keys: Some(max - out.len()),
                page_token: token.take(),
                ..Default::default()
            };
            let page = self
                .pages
                .list_paginated((!prefix.is_empty()).then_some(prefix), opts)
                .await
                .map_err(|e| self.err("list", e))?;
            for m in page.result.objects {
                let name = m.location.as_ref();
                last_seen = name.to_string();
                if name <= start_after || !name.starts_with(prefix) {
                    continue;
                }
                out.push(RemoteEntry {
                    name: name.to_string(),
                    size: m.size,
                    etag: unquoted(m.e_tag.as_deref()),
                });
            }
            match page.page_token {
                None => return Ok((out, None)),
                Some(next) if out.len() >= max || out.len() > max / 2 => {
                    // Ends on a whole store page: its marker continues it.
                    if self.is_azure {
                        markers::put(&self.cname, prefix, &last_seen, next);
                    }
                    return Ok((out, Some(last_seen)));
                }
                Some(next) => token = Some(next),
            }
        }
        // Scanned enough for one call: a short page, resumable where it stopped.
        if self.is_azure {
            if let Some(next) = token {
                markers::put(&self.cname, prefix, &last_seen, next);
            }
        }
        Ok((out, (!last_seen.is_empty()).then_some(last_seen)))
    }
}

/// Store pages one listing call reads at most (each up to 1000 names).
const MAX_SCAN_PAGES: usize = 64;

/// Azure's listing markers, by (bucket, prefix, the last name of the page
/// they continue); bounded, forgotten when full.
mod markers {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};

    const MAX: usize = 10_000;
    type Key = (String, String, String);

    fn map() -> &'static Mutex<HashMap<Key, String>> {
        static M: OnceLock<Mutex<HashMap<Key, String>>> = OnceLock::new();
        M.get_or_init(Default::default)
    }

    pub fn take(bucket: &str, prefix: &str, after: &str) -> Option<String> {
        let key = (bucket.to_string(), prefix.to_string(), after.to_string());
        map().lock().ok()?.remove(&key)
    }

    pub fn put(bucket: &str, prefix: &str, after: &str, marker: String) {
        if let Ok(mut m) = map().lock() {
            if m.len() >= MAX {
                m.clear();
            }
            m.insert(
                (bucket.to_string(), prefix.to_string(), after.to_string()),
                marker,
            );
        }
    }
}
