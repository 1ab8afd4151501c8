//! The `s3://` backend: an S3 (or S3-compatible) endpoint that holds the
//! bucket's objects; the cluster caches them. Requests are
//! presigned with SigV4 by `rusty-s3` (sans-IO) and sent with the node's
//! `reqwest` client, bodies streamed both ways.
//!
//! Where a bucket lives: its `extra.aws.endpoint` / `extra.aws.cloud_region`
//! props, else the node's `AIS_S3_ENDPOINT` (or `AWS_ENDPOINT_URL`) and
//! `AWS_REGION` (default `us-east-1`). Credentials: `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY` (unsigned requests without them).

use super::{BackendError, RemoteAttrs, RemoteEntry, Result};
use ais_core::meta::BucketProps;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::time::Duration;

/// Presigned URLs are used at once; this only bounds clock skew.
const SIGN_FOR: Duration = Duration::from_secs(600);

/// One remote bucket.
pub struct S3Bucket {
    bucket: Bucket,
    creds: Option<Credentials>,
    endpoint: String,
}

impl S3Bucket {
    /// The remote of bucket `name` with `props`.
    pub fn new(name: &str, props: &BucketProps) -> Result<Self> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let endpoint = Some(props.extra.aws.endpoint.clone())
            .filter(|e| !e.is_empty())
            .or_else(|| env("AIS_S3_ENDPOINT"))
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .ok_or_else(|| BackendError::NoEndpoint(name.to_string()))?;
        let region = Some(props.extra.aws.cloud_region.clone())
            .filter(|r| !r.is_empty())
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        let url = endpoint.parse().map_err(|e: url::ParseError| {
            BackendError::BadEndpoint(endpoint.clone(), e.to_string())
        })?;
        let bucket = Bucket::new(url, UrlStyle::Path, name.to_string(), region)
            .map_err(|e| BackendError::BadEndpoint(endpoint.clone(), e.to_string()))?;
        let secret = crate::secrets::get("AWS_SECRET_ACCESS_KEY").filter(|v| !v.trim().is_empty());
        let creds = match (env("AWS_ACCESS_KEY_ID"), secret) {
            (Some(k), Some(s)) => Some(Credentials::new(k, s)),
            _ => None,
        };
        Ok(Self {
            bucket,
            creds,
            endpoint,
        })
    }

    fn unreachable(&self, e: reqwest::Error) -> BackendError {
        BackendError::Unreachable(self.endpoint.clone(), e.to_string())
    }

    /// Sends a presigned request; `None`: the backend answered 404.
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Option<reqwest::Response>> {
        let r = req.send().await.map_err(|e| self.unreachable(e))?;
        if r.status().as_u16() == 404 {
            return Ok(None);
        }
        self.check(r).await.map(Some)
    }

    async fn check(&self, r: reqwest::Response) -> Result<reqwest::Response> {
        if r.status().is_success() {
            return Ok(r);
        }
        let status = r.status().as_u16();
        let url = r.url().path().to_string();
        let body = r.text().await.unwrap_or_default();
        Err(BackendError::Status {
            url,
            status,
            body: s3_message(&body),
        })
    }

    /// Whether the bucket exists there.
    pub async fn head_bucket(&self, http: &reqwest::Client) -> Result<bool> {
        let url = self.bucket.head_bucket(self.creds.as_ref()).sign(SIGN_FOR);
        Ok(self.send(http.head(url)).await?.is_some())
    }

    /// The object's attributes there; `None`: it does not exist.
    pub async fn head_object(
        &self,
        http: &reqwest::Client,
        key: &str,
    ) -> Result<Option<RemoteAttrs>> {
        let url = self
            .bucket
            .head_object(self.creds.as_ref(), key)
            .sign(SIGN_FOR);
        Ok(self
            .send(http.head(url))
            .await?
            .map(|r| attrs_of(r.headers())))
    }

    /// Starts a GET of the object (the body streams from the response);
    /// `None`: it does not exist.
    pub async fn get_object(
        &self,
        http: &reqwest::Client,
        key: &str,
    ) -> Result<Option<(RemoteAttrs, super::ByteStream)>> {
        use futures::{StreamExt, TryStreamExt};
        let url = self
            .bucket
            .get_object(self.creds.as_ref(), key)
            .sign(SIGN_FOR);
        let endpoint = self.endpoint.clone();
        Ok(self.send(http.get(url)).await?.map(|r| {
            let mut a = attrs_of(r.headers());
            if let Some(n) = r.content_length() {
                a.size = n;
            }
            let body = r
                .bytes_stream()
                .map_err(move |e| BackendError::Unreachable(endpoint.clone(), e.to_string()))
                .boxed();
            (a, body)
        }))
    }

    /// Bytes `start..=end` of `key` (of `total`), only from the version
    /// whose ETag is `etag`: the backend must answer 206 with exactly that
    /// range of that total and that ETag (a backend that ignores `Range` or
    /// `If-Match` is caught, never mixed in); at most `end - start + 1`
    /// bytes are read. `None`: the object is gone.
    pub async fn get_range(
        &self,
        http: &reqwest::Client,
        key: &str,
        (start, end, total): (u64, u64, u64),
        etag: &str,
    ) -> Result<Option<bytes::Bytes>> {
        let url = self
            .bucket
            .get_object(self.creds.as_ref(), key)
            .sign(SIGN_FOR);
        let req = http
            .get(url)
            .header(reqwest::header::RANGE, format!("bytes={start}-{end}"))
            .header(reqwest::header::IF_MATCH, format!("\"{etag}\""));
        let Some(r) = self.send(req).await? else {
            return Ok(None);
        };
        let bad = |why: String| BackendError::Status {
            url: key.to_string(),
            status: 502,
            body: format!("range {start}-{end} of {key}: {why}"),
        };
        if r.status().as_u16() != 206 {
            return Err(bad(format!(
                "expected 206 Partial Content, got {}",
                r.status()
            )));
        }
        let h = r.headers();
        let want = format!("bytes {start}-{end}/{total}");
        let got = h
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if got != want {
            return Err(bad(format!("Content-Range \"{got}\", expected \"{want}\"")));
        }
        let tag = attrs_of(h).etag;
        if !tag.is_empty() && tag != etag {
            return Err(bad(format!(
                "the object changed (ETag {tag}, started with {etag})"
            )));
        }
        let len = end - start + 1;
        match super::read_at_most(r.bytes_stream(), len, |e| self.unreachable(e)).await? {
            Some(b) => Ok(Some(b)),
            None => Err(bad(format!("more than the {len} bytes asked for"))),
        }
    }

    /// Uploads `len` bytes of `body` as `key`; the new ETag.
    pub async fn put_object(
        &self,
        http: &reqwest::Client,
        key: &str,
        body: super::BodyStream,
        len: u64,
    ) -> Result<RemoteAttrs> {
        let body = reqwest::Body::wrap_stream(body);
        let url = self
            .bucket
            .put_object(self.creds.as_ref(), key)
            .sign(SIGN_FOR);
        let r = http
            .put(url)
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let r = self.check(r).await?;
        let mut a = attrs_of(r.headers());
        a.size = len;
        Ok(a)
    }

    /// Removes `key` there (absent is not an error, as in S3).
    pub async fn delete_object(&self, http: &reqwest::Client, key: &str) -> Result<()> {
        let url = self
            .bucket
            .delete_object(self.creds.as_ref(), key)
            .sign(SIGN_FOR);
        self.send(http.delete(url)).await.map(drop)
    }

    /// One page of the remote listing (keys in order), and the token of
    /// the next one.
    pub async fn list_page(
        &self,
        http: &reqwest::Client,
        prefix: &str,
        start_after: &str,
        token: Option<&str>,
        max: usize,
    ) -> Result<(Vec<RemoteEntry>, Option<String>)> {
        let mut a = self.bucket.list_objects_v2(self.creds.as_ref());
        if !prefix.is_empty() {
            a.with_prefix(prefix);
        }
        if !start_after.is_empty() {
            a.with_start_after(start_after);
        }
        if let Some(t) = token {
            a.with_continuation_token(t);
        }
        a.with_max_keys(max.clamp(1, 1000));
        let url = a.sign(SIGN_FOR);
        let r = http
            .get(url)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let text = self
            .check(r)
            .await?
            .text()
            .await
            .map_err(|e| self.unreachable(e))?;
        let page = rusty_s3::actions::ListObjectsV2::parse_response(&text)
            .map_err(|e| BackendError::Listing(e.to_string()))?;
        let entries = page
            .contents
            .into_iter()
            .map(|c| RemoteEntry {
                name: c.key,
                size: c.size.unwrap_or(0),
                etag: c.etag.unwrap_or_default().trim_matches('"').to_string(),
            })
            .collect();
        Ok((entries, page.next_continuation_token))
    }
}

fn attrs_of(h: &reqwest::header::HeaderMap) -> RemoteAttrs {
    let s = |k: reqwest::header::HeaderName| {
        h.get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    RemoteAttrs {
        size: s(reqwest::header::CONTENT_LENGTH).parse().unwrap_or(0),
        etag: s(reqwest::header::ETAG).trim_matches('"').to_string(),
        last_modified: s(reqwest::header::LAST_MODIFIED),
    }
}

/// S3's `<Message>` from an XML error body (else the body, shortened).
fn s3_message(body: &str) -> String {
    let pick = |tag: &str| {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let i = body.find(&open)? + open.len();
        let j = body[i..].find(&close)? + i;
        Some(body[i..j].to_string())
    };
    match (pick("Code"), pick("Message")) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        _ => body.chars().take(200).collect(),
    }
}
