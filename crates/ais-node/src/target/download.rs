//! The downloader (AIStore's `/v1/download`) on a target: objects fetched
//! from HTTP(S) URLs into a bucket, each by the target that owns its name,
//! streamed into the object's writer (stored whole or not at all: a body
//! shorter or longer than its `Content-Length` is refused), with retries.
//!
//! Users name the URLs, so the nodes guard where they connect
//! (`crate::links`): the name is resolved once, checked, and the connection
//! pinned to that address (no second lookup to rebind); redirects are not
//! followed; the cluster's credentials are never sent.

use super::jobs::TargetJob;
use super::Target;
use crate::error::{self, ApiError, ApiResult};
use crate::links::{base_name, check_url, resolve, MAX_LINKS};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Attempts per object (transient failures: connection, 5xx, 429).
const ATTEMPTS: u32 = 3;
/// A server silent this long mid-body is given up on (and retried).
const IDLE: Duration = Duration::from_secs(60);

/// The largest object a download stores (`AIS_DOWNLOAD_MAX_SIZE`, bytes;
/// default 1 TiB): a server claiming or sending more is refused.
fn max_object_size() -> u64 {
    std::env::var("AIS_DOWNLOAD_MAX_SIZE")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1 << 40)
}

/// The (object name, URL) pairs of a download job: `ext["template"]` (a
/// range; names: `subdir` + the URL's last path element) or `ext["u:NAME"]`.
fn pairs(job: &TargetJob) -> ApiResult<Vec<(String, String)>> {
    let ext = &job.spec.msg.ext;
    if let Some(t) = ext.get("template") {
        let subdir = ext.get("subdir").cloned().unwrap_or_default();
        let urls = ais_core::api::expand_template(t, MAX_LINKS)?;
        return urls
            .into_iter()
            .map(|u| Ok((format!("{subdir}{}", base_name(&u)?), u)))
            .collect();
    }
    Ok(ext
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("u:").map(|n| (n.to_string(), v.clone())))
        .collect())
}

/// The `download` job here: the pairs whose objects this target owns.
pub async fn run(t: &Arc<Target>, job: &Arc<TargetJob>) -> ApiResult<()> {
    use futures::StreamExt;
    let spec = &job.spec;
    let bck = t.core.bck(spec.dst.clone());
    // Per link, the whole transfer (a silent server is dropped sooner: IDLE).
    let timeout = spec
        .msg
        .ext
        .get("timeout")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(24 * 3600);
    let conns = spec
        .msg
        .ext
        .get("connections")
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|n| (1..=64).contains(n))
        .unwrap_or(8);
    let mine: Vec<(String, String)> = pairs(job)?
        .into_iter()
        .filter(|(n, _)| {
            t.core
                .owner_with(&bck.obj_uname(n), |o| o.daemon_id == t.core.id)
                .unwrap_or(false)
        })
        .collect();
    job.set_total(mine.len() as u64, 0);
    let mut work = futures::stream::iter(mine.into_iter().map(|(name, url)| {
        let (t, job, bck) = (t.clone(), job.clone(), bck.clone());
        async move {
            if job.aborted.load(Ordering::Relaxed) {
                return;
            }
            let cname = format!("{}/{name}", bck.cname());
            match one(&t, &job, &bck, &name, &url, Duration::from_secs(timeout)).await {
                Ok(n) => job.done_one(n),
                Err(e) => job.record(&format!("{cname} ({url})"), &e),
            }
        }
    }))
    .buffer_unordered(conns);
    while work.next().await.is_some() {}
    Ok(())
}

/// One object, with retries of transient failures.
async fn one(
    t: &Arc<Target>,
    job: &Arc<TargetJob>,
    bck: &ais_core::Bck,
    name: &str,
    url: &str,
    timeout: Duration,
) -> ApiResult<u64> {
    ais_core::names::validate_object_name(name)?;
    let parsed = check_url(url)?;
    let mut last = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(300 << attempt)).await;
        }
        if job.aborted.load(Ordering::Relaxed) {
            return Err(ApiError::Conflict("aborted".into()));
        }
        match fetch(t, job, bck, name, &parsed, timeout).await {
            Ok(n) => return Ok(n),
            Err((e, retry)) => {
                if !retry {
                    return Err(e);
                }
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| ApiError::internal("download: no attempt made")))
}

/// The operator's extra certificate authorities for https links
/// (`AIS_DOWNLOAD_CA`: a PEM file of one or more certificates, read once),
/// trusted on top of the system's roots; none when unset.
fn operator_cas() -> ApiResult<&'static [reqwest::Certificate]> {
    static CAS: std::sync::OnceLock<Option<Vec<reqwest::Certificate>>> = std::sync::OnceLock::new();
    let loaded = CAS.get_or_init(|| {
        let Some(path) = std::env::var_os("AIS_DOWNLOAD_CA").filter(|p| !p.is_empty()) else {
            return Some(Vec::new());
        };
        let read = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|pem| reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string()));
        match read {
            Ok(v) if !v.is_empty() => Some(v),
            Ok(_) => {
                tracing::error!(path = ?path, "AIS_DOWNLOAD_CA holds no certificate");
                None
            }
            Err(e) => {
                tracing::error!(path = ?path, error = %e, "AIS_DOWNLOAD_CA could not be read");
                None
            }
        }
    });
    loaded.as_deref().ok_or_else(|| {
        ApiError::internal(
            "https downloads are off on this node: its AIS_DOWNLOAD_CA could not be read (see its log)",
        )
    })
}

/// One attempt: `Err((error, retryable))`.
async fn fetch(
    t: &Arc<Target>,
    job: &Arc<TargetJob>,
    bck: &ais_core::Bck,
    name: &str,
    url: &reqwest::Url,
    timeout: Duration,
) -> Result<u64, (ApiError, bool)> {
    let addr = resolve(url).await.map_err(|e| (e, false))?;
    let host = url
        .host_str()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']');
    // Pinned to the address checked; no redirects (a hop could lead
    // anywhere); the cluster's own credentials are never sent.
    let mut builder = reqwest::Client::builder();
    if url.scheme() == "https" {
        for c in operator_cas().map_err(|e| (e, false))? {
            builder = builder.add_root_certificate(c.clone());
        }
    }
    let client = builder
        .redirect(reqwest::redirect::Policy::none())
        // Never through a proxy from the environment: it would resolve the
        // name again, past the check.
        .no_proxy()
        .resolve(host, addr)
        .connect_timeout(Duration::from_secs(10))
        .timeout(timeout)
        .build()
        .map_err(|e| (ApiError::internal(e.to_string()), false))?;
    let resp = client.get(url.clone()).send().await.map_err(|e| {
        // reqwest's own text is "error sending request"; the cause
        // (refused, a certificate not trusted, ...) is in its sources.
        let mut why = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            why.push_str(": ");
            why.push_str(&s.to_string());
            src = s.source();
        }
        (
            ApiError::unavailable(format!("download {url}: {why}")),
            true,
        )
    })?;
    let status = resp.status();
    if !status.is_success() {
        let retry = status.is_server_error() || status.as_u16() == 429;
        return Err((
            ApiError::bad_request(format!("download {url}: the server answered {status}")),
            retry,
        ));
    }
    let expect = resp.content_length();
    let cap = max_object_size();
    if expect.is_some_and(|n| n > cap) {
        return Err((
            ApiError::bad_request(format!(
                "download {url}: {} bytes, more than the {cap} this cluster downloads into one object (AIS_DOWNLOAD_MAX_SIZE)",
                expect.unwrap_or(0)
            )),
            false,
        ));
    }
    let serr = |e| (error::storage(&t.core.name, bck, name, e), false);
    let _write = t.check_writable(bck).map_err(|e| (e, false))?;
    let mut w = super::objects::writer(t, bck, name)
        .await
        .map_err(|e| (e, false))?;
    let mut got = 0u64;
    let mut body = resp.bytes_stream();
    use futures::StreamExt;
    // Read in waits of at most a second: an abort is seen within one, and a
    // server silent for IDLE is dropped (whatever the whole-request timeout).
    let mut idle = Duration::ZERO;
    loop {
        if job.aborted.load(Ordering::Relaxed) {
            return Err((ApiError::Conflict("aborted".into()), false));
        }
        let chunk = match tokio::time::timeout(Duration::from_secs(1), body.next()).await {
            Err(_) => {
                idle += Duration::from_secs(1);
                if idle >= IDLE {
                    return Err((
                        ApiError::unavailable(format!(
                            "download {url}: no data for {}s",
                            IDLE.as_secs()
                        )),
                        true,
                    ));
                }
                continue;
            }
            Ok(None) => break,
            Ok(Some(c)) => {
                idle = Duration::ZERO;
                c
            }
        };
        let chunk = chunk.map_err(|e| {
            (
                ApiError::unavailable(format!("download {url}: cut short: {e}")),
                true,
            )
        })?;
        got += chunk.len() as u64;
        if got > cap {
            return Err((
                ApiError::bad_request(format!(
                    "download {url}: more than the {cap} bytes this cluster downloads into one object (AIS_DOWNLOAD_MAX_SIZE)"
                )),
                false,
            ));
        }
        if expect.is_some_and(|n| got > n) {
            return Err((
                ApiError::bad_request(format!(
                    "download {url}: more bytes than its Content-Length"
                )),
                false,
            ));
        }
        w.write(&chunk).await.map_err(serr)?;
    }
    if expect.is_some_and(|n| got != n) {
        return Err((
            ApiError::unavailable(format!(
                "download {url}: {got} of {} bytes arrived",
                expect.unwrap_or(0)
            )),
            true,
        ));
    }
    let mut custom = std::collections::BTreeMap::new();
    custom.insert("source".to_string(), url.to_string());
    if t.commit_or_forward(bck, name, w, custom, true)
        .await
        .map_err(|e| (e, false))?
        .is_ok()
    {
        super::ec::protect(t, bck, name)
            .await
            .map_err(|e| (e, false))?;
    }
    Ok(got)
}
