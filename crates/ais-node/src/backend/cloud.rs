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

/// Clients kept at most (one per bucket); past it the cache starts over.
const MAX_CLIENTS: usize = 4096;

/// One `gs://` or `az://` bucket.
pub struct CloudBucket {
    store: Arc<dyn ObjectStore>,
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

fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 2,
        retry_timeout: Duration::from_secs(30),
        ..Default::default()
    }
}

fn build(provider: &str, bucket: &str, cname: &str) -> Result<Arc<dyn ObjectStore>> {
    let bad = |e: object_store::Error| BackendError::NoConfig(format!("{cname}: {e}"));
    if provider == PROVIDER_GCP {
        let mut b = object_store::gcp::GoogleCloudStorageBuilder::new()
            .with_bucket_name(bucket)
            .with_client_options(client_options())
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
        return Ok(Arc::new(b.build().map_err(bad)?));
    }
    let mut b = object_store::azure::MicrosoftAzureBuilder::new()
        .with_container_name(bucket)
        .with_client_options(client_options())
        .with_retry(retry());
    if let Some(key) = crate::secrets::get("AZURE_STORAGE_KEY").filter(|k| !k.trim().is_empty()) {
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
        let a = account.ok_or_else(|| {
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
    Ok(Arc::new(b.build().map_err(bad)?))
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
            let text = e.to_string();
            [404u16, 403, 401].into_iter().find(|s| {
                text.contains(&format!("status code: {s} "))
                    || text.contains(&format!("status {s} "))
            })
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
        static CLIENTS: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
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
        Ok(Self { store, cname })
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
    /// order; `Some` token when there may be more. The stores list by
    /// whole path segments, so the listing starts at the prefix's
    /// directory and names are matched here.
    pub async fn list_page(
        &self,
        prefix: &str,
        start_after: &str,
        max: usize,
    ) -> Result<(Vec<RemoteEntry>, Option<String>)> {
        let max = max.clamp(1, 1000);
        let dir = prefix.rfind('/').map(|i| &prefix[..i]).unwrap_or("");
        let dir = if dir.is_empty() {
            None
        } else {
            match Path::parse(dir) {
                Ok(p) if p.as_ref() == dir => Some(p),
                // No stored name can start with it.
                _ => return Ok((Vec::new(), None)),
            }
        };
        // Names before the prefix are skipped by the store where it can.
        let from = if start_after > prefix {
            start_after
        } else {
            ""
        };
        let offset = Path::parse(from)
            .ok()
            .filter(|p| !from.is_empty() && p.as_ref() == from);
        let mut stream = match &offset {
            Some(o) => self.store.list_with_offset(dir.as_ref(), o),
            None => self.store.list(dir.as_ref()),
        };
        let mut out = Vec::new();
        while let Some(m) = stream.next().await {
            let m = m.map_err(|e| self.err("list", e))?;
            let name = m.location.as_ref();
            if name <= start_after || !name.starts_with(prefix) {
                if name > prefix && !name.starts_with(prefix) {
                    break; // In order: nothing later matches.
                }
                continue;
            }
            if out.len() == max {
                return Ok((out, Some(name.to_string())));
            }
            out.push(RemoteEntry {
                name: name.to_string(),
                size: m.size,
                etag: unquoted(m.e_tag.as_deref()),
            });
        }
        Ok((out, None))
    }
}
