//! Bucket operations: ListBuckets, Create/Head/DeleteBucket, location and
//! versioning queries, and ListObjects (v1 and v2) on top of the native,
//! stateless listing (pages merged from every target by a proxy): prefix,
//! delimiter (common prefixes are folded here and their subtrees skipped),
//! continuation token or marker, start-after, max-keys, `encoding-type=url`.

use super::error::{S3Error, S3Result};
use super::xml::Xml;
use super::{empty, existing_bucket, from_rfc822, iso8601, primary, valid_bucket, xml_ok, Req};
use ais_core::api::{act, ActMsg, LsoEntryJson, LsoMsg};
use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `encoding-type=url`: what S3 leaves unencoded in keys.
const URL_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Sorts after every name that starts with the string it follows.
const AFTER_ALL: char = '\u{10FFFF}';

pub fn list_buckets(r: &Req<'_>) -> S3Result<Response> {
    let buckets: Vec<(String, i64)> = r.core.meta.with_bmd(|b| {
        b.buckets
            .iter()
            .map(|(n, p)| (n.clone(), p.created.parse().unwrap_or(0)))
            .collect()
    });
    let mut x = Xml::doc();
    x.root("ListAllMyBucketsResult")
        .open("Owner")
        .leaf("ID", "ais")
        .leaf("DisplayName", "ais")
        .close("Owner")
        .open("Buckets");
    for (name, created) in &buckets {
        x.open("Bucket")
            .leaf("Name", name)
            .leaf("CreationDate", &iso8601(*created))
            .close("Bucket");
    }
    x.close("Buckets").close("ListAllMyBucketsResult");
    Ok(xml_ok(x))
}

pub fn head_bucket(r: &Req<'_>) -> S3Result<Response> {
    r.bck()?;
    let mut out = empty(StatusCode::OK);
    out.headers_mut()
        .insert("x-amz-bucket-region", HeaderValue::from_static("us-east-1"));
    Ok(out)
}

pub fn location(r: &Req<'_>) -> S3Result<Response> {
    r.bck()?;
    let mut x = Xml::doc();
    x.root("LocationConstraint").close("LocationConstraint");
    Ok(xml_ok(x))
}

pub fn versioning(r: &Req<'_>) -> S3Result<Response> {
    r.bck()?;
    let mut x = Xml::doc();
    x.root("VersioningConfiguration")
        .close("VersioningConfiguration");
    Ok(xml_ok(x))
}

pub async fn create_bucket(r: &Req<'_>, body: Body) -> S3Result<Response> {
    let bck = valid_bucket(&r.bucket)?;
    // A CreateBucketConfiguration (region) is accepted and ignored.
    crate::http::read_body(body, 1 << 20)
        .await
        .map_err(|e| S3Error::malformed_xml(e.to_string()))?;
    let p = primary(r.core)?;
    r.core
        .rpc
        .s3_bucket_action(&p, Method::POST, &bck.name, &ActMsg::new(act::CREATE_BCK))
        .await
        .map_err(|e| r.api(e))?;
    let mut out = empty(StatusCode::OK);
    if let Ok(v) = HeaderValue::from_str(&format!("/{}", bck.name)) {
        out.headers_mut().insert(header::LOCATION, v);
    }
    Ok(out)
}

pub async fn delete_bucket(r: &Req<'_>) -> S3Result<Response> {
    let bck = r.bck()?;
    let p = primary(r.core)?;
    let page = r
        .core
        .rpc
        .s3_list(
            &p,
            &bck.name,
            &LsoMsg {
                pagesize: 1,
                props: "name".into(),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| r.api(e))?;
    if !page.entries.is_empty() {
        return Err(S3Error::new(
            StatusCode::CONFLICT,
            "BucketNotEmpty",
            format!("the bucket {} you tried to delete is not empty", bck.name),
        ));
    }
    r.core
        .rpc
        .s3_bucket_action(
            &p,
            Method::DELETE,
            &bck.name,
            &ActMsg::new(act::DESTROY_BCK),
        )
        .await
        .map_err(|e| r.api(e))?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// One listed object.
struct Entry {
    key: String,
    size: u64,
    etag: String,
    mtime_ns: i64,
}

impl Entry {
    fn from_native(e: LsoEntryJson) -> Self {
        let etag = e
            .custom
            .split(',')
            .find_map(|kv| kv.strip_prefix("ETag="))
            .map(str::to_string)
            .unwrap_or(e.checksum);
        Self {
            size: e.size.unwrap_or(0),
            mtime_ns: from_rfc822(&e.atime).unwrap_or(0),
            etag,
            key: e.name,
        }
    }
}

/// A listing page as S3 sees it.
struct Page {
    contents: Vec<Entry>,
    prefixes: Vec<String>,
    truncated: bool,
    /// Where the next page starts (exclusive).
    next: String,
}

/// Names after `after` under `prefix`, `delimiter` folding, up to `max`.
async fn collect(
    r: &Req<'_>,
    bucket: &str,
    prefix: &str,
    delimiter: &str,
    after: String,
    max: usize,
) -> S3Result<Page> {
    let p = primary(r.core)?;
    let mut page = Page {
        contents: Vec::new(),
        prefixes: Vec::new(),
        truncated: false,
        next: String::new(),
    };
    let mut after = after;
    // Resuming after a common prefix: skip its whole subtree.
    if !delimiter.is_empty() && after.starts_with(prefix) && after.ends_with(delimiter) {
        after.push(AFTER_ALL);
    }
    if max == 0 {
        return Ok(page);
    }
    loop {
        let want = max - (page.contents.len() + page.prefixes.len()) + 1;
        let msg = LsoMsg {
            prefix: prefix.to_string(),
            pagesize: if delimiter.is_empty() { want } else { 1000 }.clamp(1, 1000) as u64,
            continuation_token: after.clone(),
            props: "name,size,atime,checksum,custom".into(),
            ..Default::default()
        };
        let res = r
            .core
            .rpc
            .s3_list(&p, bucket, &msg)
            .await
            .map_err(|e| r.api(e))?;
        let done = res.continuation_token.is_empty();
        for e in res.entries {
            if e.name <= after || !e.name.starts_with(prefix) {
                continue;
            }
            let rest = &e.name[prefix.len()..];
            let cp = (!delimiter.is_empty())
                .then(|| rest.find(delimiter))
                .flatten()
                .map(|i| e.name[..prefix.len() + i + delimiter.len()].to_string());
            if let Some(cp) = &cp {
                if page.prefixes.last() == Some(cp) {
                    continue;
                }
            }
            if page.contents.len() + page.prefixes.len() >= max {
                page.truncated = true;
                return Ok(page);
            }
            match cp {
                Some(cp) => {
                    page.next = cp.clone();
                    after = format!("{cp}{AFTER_ALL}");
                    page.prefixes.push(cp);
                }
                None => {
                    page.next = e.name.clone();
                    after = e.name.clone();
                    page.contents.push(Entry::from_native(e));
                }
            }
        }
        if done {
            return Ok(page);
        }
        if let Some(last) = page.prefixes.last() {
            let skip = format!("{last}{AFTER_ALL}");
            if skip > after {
                after = skip;
            }
        }
        if res.continuation_token > after {
            after = res.continuation_token;
        }
    }
}

/// ListObjectsV2 (`list-type=2`) and ListObjects (v1).
pub async fn list_objects(r: &Req<'_>) -> S3Result<Response> {
    let bck = existing_bucket(r.core, &r.bucket)?;
    let v2 = r.q("list-type") == Some("2");
    let prefix = r.q("prefix").unwrap_or("");
    let delimiter = r.q("delimiter").unwrap_or("");
    let url = match r.q("encoding-type") {
        None | Some("") => false,
        Some("url") => true,
        Some(o) => {
            return Err(S3Error::invalid_argument(format!(
                "invalid encoding-type \"{o}\" (only \"url\")"
            )))
        }
    };
    let max = match r.q("max-keys") {
        None => 1000,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| S3Error::invalid_argument("max-keys must be a non-negative integer"))?
            .min(1000),
    };
    let token = r.q("continuation-token").unwrap_or("");
    let start_after = r.q("start-after").unwrap_or("");
    let marker = r.q("marker").unwrap_or("");
    let after = if v2 {
        if token.is_empty() {
            start_after.to_string()
        } else {
            let raw = B64
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| S3Error::invalid_argument("the continuation token is not valid"))?;
            raw.max(start_after.to_string())
        }
    } else {
        marker.to_string()
    };
    let page = collect(r, &bck.name, prefix, delimiter, after, max).await?;
    let enc = |s: &str| {
        if url {
            utf8_percent_encode(s, URL_KEEP).to_string()
        } else {
            s.to_string()
        }
    };
    let mut x = Xml::doc();
    x.root("ListBucketResult")
        .leaf("Name", &bck.name)
        .leaf("Prefix", &enc(prefix))
        .leaf("MaxKeys", &max.to_string())
        .opt("Delimiter", &enc(delimiter))
        .leaf("IsTruncated", if page.truncated { "true" } else { "false" });
    if url {
        x.leaf("EncodingType", "url");
    }
    if v2 {
        x.leaf(
            "KeyCount",
            &(page.contents.len() + page.prefixes.len()).to_string(),
        )
        .opt("ContinuationToken", token)
        .opt("StartAfter", &enc(start_after));
        if page.truncated {
            x.leaf("NextContinuationToken", &B64.encode(page.next.as_bytes()));
        }
    } else {
        x.leaf("Marker", &enc(marker));
        if page.truncated {
            x.leaf("NextMarker", &enc(&page.next));
        }
    }
    for e in &page.contents {
        x.open("Contents")
            .leaf("Key", &enc(&e.key))
            .leaf("LastModified", &iso8601(e.mtime_ns))
            .leaf("ETag", &format!("\"{}\"", e.etag))
            .leaf("Size", &e.size.to_string())
            .leaf("StorageClass", "STANDARD")
            .close("Contents");
    }
    for p in &page.prefixes {
        x.open("CommonPrefixes")
            .leaf("Prefix", &enc(p))
            .close("CommonPrefixes");
    }
    x.close("ListBucketResult");
    Ok(xml_ok(x))
}
