//! Who may call the S3 API. With no keys configured any request is served
//! (any or no credentials, as AIStore does). With keys (`AIS_S3_KEYS` =
//! `ACCESS:SECRET[,ACCESS:SECRET...]`, or `AIS_S3_ACCESS_KEY` +
//! `AIS_S3_SECRET_KEY`) every request must carry a valid AWS Signature V4:
//! in the `Authorization` header or as a presigned URL; for
//! `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` bodies each chunk's signature is
//! checked as the body streams (`s3::body`).

use super::error::{S3Error, S3Result};
use crate::http::Ctx;
pub use crate::rpc::s3::hex;
use axum::http::StatusCode;
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::OnceLock;

type HmacSha256 = Hmac<Sha256>;

/// RFC 3986 unreserved characters stay; everything else is %-encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub const STREAMING_SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Configured access key → secret key (empty: open).
fn keys() -> &'static HashMap<String, String> {
    static KEYS: OnceLock<HashMap<String, String>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut m = HashMap::new();
        if let Some(list) = crate::secrets::get("AIS_S3_KEYS") {
            for pair in list.split(',').filter(|p| !p.trim().is_empty()) {
                if let Some((a, s)) = pair.trim().split_once(':') {
                    m.insert(a.to_string(), s.to_string());
                }
            }
        }
        if let (Ok(a), Some(s)) = (
            std::env::var("AIS_S3_ACCESS_KEY"),
            crate::secrets::get("AIS_S3_SECRET_KEY"),
        ) {
            if !a.is_empty() {
                m.insert(a, s);
            }
        }
        m
    })
}

/// Whether SigV4 is enforced.
pub fn enforced() -> bool {
    !keys().is_empty()
}

/// What a verified request's body must still satisfy.
#[derive(Default)]
pub struct Signed {
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: the chunk-signature chain.
    pub chunks: Option<ChunkChain>,
    /// A signed payload hash the body must match.
    pub payload_sha256: Option<String>,
}

/// The state needed to check each aws-chunked chunk's signature.
#[derive(Clone)]
pub struct ChunkChain {
    key: Vec<u8>,
    amz_date: String,
    scope: String,
    prev: String,
}

impl ChunkChain {
    /// Checks one chunk's signature (the chain's next link).
    pub fn verify(&mut self, data: &[u8], sig: &str) -> S3Result<()> {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256}\n{}",
            self.amz_date,
            self.scope,
            self.prev,
            hex(&Sha256::digest(data))
        );
        let want = hex(&hmac(&self.key, sts.as_bytes()));
        if !ct_eq(want.as_bytes(), sig.as_bytes()) {
            return Err(S3Error::signature_mismatch(
                "a chunk signature of the streamed body does not match",
            ));
        }
        self.prev = want;
        Ok(())
    }
}

/// Verifies the request's signature when keys are configured.
pub fn verify(ctx: &Ctx) -> S3Result<Signed> {
    let keys = keys();
    if keys.is_empty() {
        return Ok(Signed::default());
    }
    let hdr = |n: &str| {
        ctx.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let auth = hdr("authorization");
    let (cred, signed_headers, signature, amz_date, payload, presigned) =
        if let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256") {
            let mut cred = "";
            let mut sh = "";
            let mut sig = "";
            for part in rest.split(',') {
                let part = part.trim();
                if let Some(v) = part.strip_prefix("Credential=") {
                    cred = v;
                } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
                    sh = v;
                } else if let Some(v) = part.strip_prefix("Signature=") {
                    sig = v;
                }
            }
            let date = match hdr("x-amz-date") {
                "" => hdr("date"),
                d => d,
            };
            let payload = match hdr("x-amz-content-sha256") {
                "" => "UNSIGNED-PAYLOAD",
                p => p,
            };
            (cred, sh, sig, date, payload, false)
        } else if ctx.query.get("X-Amz-Algorithm") == Some("AWS4-HMAC-SHA256") {
            let q = |k: &str| ctx.query.get(k).unwrap_or("");
            (
                q("X-Amz-Credential"),
                q("X-Amz-SignedHeaders"),
                q("X-Amz-Signature"),
                q("X-Amz-Date"),
                "UNSIGNED-PAYLOAD",
                true,
            )
        } else if auth.starts_with("AWS ") || ctx.query.get("AWSAccessKeyId").is_some() {
            return Err(S3Error::access_denied(
                "AWS Signature Version 2 is not supported: sign requests with Signature Version 4",
            ));
        } else {
            return Err(S3Error::access_denied(
                "anonymous S3 access is not allowed: this cluster has S3 keys configured",
            ));
        };
    let mut cparts = cred.splitn(5, '/');
    let (ak, date, region, service, term) = (
        cparts.next().unwrap_or(""),
        cparts.next().unwrap_or(""),
        cparts.next().unwrap_or(""),
        cparts.next().unwrap_or(""),
        cparts.next().unwrap_or(""),
    );
    if term != "aws4_request" || signature.is_empty() || amz_date.is_empty() {
        return Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "AuthorizationHeaderMalformed",
            "malformed AWS Signature V4 credential",
        ));
    }
    let secret = keys.get(ak).ok_or_else(|| {
        S3Error::new(
            StatusCode::FORBIDDEN,
            "InvalidAccessKeyId",
            format!("the access key id {ak} does not exist in our records"),
        )
    })?;
    let scope = format!("{date}/{region}/{service}/aws4_request");
    // Time: a presigned URL expires; a signed request may be 15 minutes off.
    let signed_at = amz_secs(amz_date).ok_or_else(|| {
        S3Error::new(
            StatusCode::BAD_REQUEST,
            "AuthorizationHeaderMalformed",
            format!("malformed X-Amz-Date \"{amz_date}\""),
        )
    })?;
    let now = ais_core::now_ns() / 1_000_000_000;
    if presigned {
        let expires: i64 = ctx
            .query
            .get("X-Amz-Expires")
            .and_then(|e| e.parse().ok())
            .unwrap_or(604_800);
        if now > signed_at + expires {
            return Err(S3Error::access_denied("Request has expired"));
        }
    } else if (now - signed_at).abs() > 15 * 60 {
        return Err(S3Error::new(
            StatusCode::FORBIDDEN,
            "RequestTimeTooSkewed",
            "the difference between the request time and the server's time is too large",
        ));
    }

    // Canonical request.
    let mut query: Vec<(String, String)> = ctx
        .raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (uri_encode(&pct(k)), uri_encode(&pct(v)))
        })
        .filter(|(k, _)| !(presigned && k == "X-Amz-Signature"))
        .collect();
    query.sort();
    let cquery = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    // Our own headers choose what a request does (`x-ais-etl-name`,
    // `x-ais-etl-pipeline`, ...): like AWS with `x-amz-*`, every one sent
    // must be signed, or a presigned URL for a plain GET could be made to
    // run any ETL over the object.
    let signed_set: Vec<&str> = signed_headers
        .split(';')
        .filter(|n| !n.is_empty())
        .collect();
    if let Some(h) = ctx
        .headers
        .keys()
        .map(|k| k.as_str())
        .find(|k| k.starts_with("x-ais-") && !signed_set.contains(k))
    {
        return Err(S3Error::access_denied(format!(
            "header {h} is not among the signed headers: sign it (or send it as a query parameter, which the signature covers)"
        )));
    }
    let mut cheaders = String::new();
    for name in signed_headers.split(';').filter(|n| !n.is_empty()) {
        let vals: Vec<String> = ctx
            .headers
            .get_all(name)
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        cheaders.push_str(name);
        cheaders.push(':');
        cheaders.push_str(&vals.join(","));
        cheaders.push('\n');
    }
    let creq = format!(
        "{}\n{}\n{cquery}\n{cheaders}\n{signed_headers}\n{payload}",
        ctx.method, ctx.path
    );
    let sts = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(creq.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let want = hex(&hmac(&key, sts.as_bytes()));
    if !ct_eq(want.as_bytes(), signature.as_bytes()) {
        return Err(S3Error::signature_mismatch(
            "The request signature we calculated does not match the signature you provided. \
             Check your key and signing method.",
        ));
    }
    let mut out = Signed::default();
    // `...-PAYLOAD-TRAILER` too: its chunks are signed the same way (the
    // trailer carries checksums, which are not used, and is not checked).
    if payload.starts_with(STREAMING_SIGNED) {
        out.chunks = Some(ChunkChain {
            key,
            amz_date: amz_date.to_string(),
            scope,
            prev: signature.to_string(),
        });
    } else if payload.len() == 64 && payload.bytes().all(|b| b.is_ascii_hexdigit()) {
        out.payload_sha256 = Some(payload.to_ascii_lowercase());
    }
    Ok(out)
}

/// `20130524T000000Z` as Unix seconds.
fn amz_secs(d: &str) -> Option<i64> {
    if d.len() != 16 || !d.ends_with('Z') || d.as_bytes()[8] != b'T' {
        return None;
    }
    let n = |a: usize, b: usize| d.get(a..b)?.parse::<i64>().ok();
    let days = super::days_from_civil(n(0, 4)?, n(4, 6)? as u32, n(6, 8)? as u32);
    Some(days * 86_400 + n(9, 11)? * 3600 + n(11, 13)? * 60 + n(13, 15)?)
}

fn pct(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn uri_encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    match HmacSha256::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length; unreachable in practice.
        Err(_) => Vec::new(),
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_example_chunk_signature() {
        // AWS's documented example (sigv4-streaming): the seed signature and
        // the first 64 KiB chunk of 'a's.
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let mut key = hmac(format!("AWS4{secret}").as_bytes(), b"20130524");
        for p in ["us-east-1", "s3", "aws4_request"] {
            key = hmac(&key, p.as_bytes());
        }
        let mut c = ChunkChain {
            key,
            amz_date: "20130524T000000Z".into(),
            scope: "20130524/us-east-1/s3/aws4_request".into(),
            prev: "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9".into(),
        };
        let data = vec![b'a'; 65536];
        c.verify(
            &data,
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        )
        .unwrap();
        assert!(c.verify(b"x", "00").is_err());
        assert_eq!(amz_secs("19700102T010203Z"), Some(86_400 + 3723));
        assert_eq!(amz_secs("1970-01-02"), None);
    }
}
