//! Multipart uploads at the front door: Create goes to the key's owner
//! target, which names itself in the upload id; UploadPart (and
//! UploadPartCopy), Complete, Abort and ListParts go to that target
//! whatever the map says since; ListMultipartUploads asks every target.
//! Parts stream through, as PUT bodies do.

use super::error::{S3Error, S3Result};
use super::objects::{
    call, meta_header, put_headers, read_source, request_body, request_meta, store,
};
use super::sigv4::Signed;
use super::xml::{self, Xml};
use super::{empty, iso8601, owner, xml_ok, Req};
use crate::rpc::s3::{CompleteReq, Part, Stored, Upload, META_HEADER, SIZE_HEADER};
use crate::rpc::{fan_out, Dest, CONTROL_TIMEOUT};
use ais_core::Bck;
use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;

/// The target holding an upload (named in its id).
fn holder(r: &Req<'_>, upload: &str) -> S3Result<Dest> {
    // `<24 random alphanumerics>_<target id>` (`target::s3::create`).
    let tid =
        crate::rpc::s3::upload_holder(upload).ok_or_else(|| S3Error::no_such_upload(upload))?;
    r.core
        .meta
        .with_smap(|s| s.and_then(|s| s.tmap.get(tid).map(Dest::from)))
        .ok_or_else(|| {
            S3Error::unavailable(format!(
                "the target {tid} that holds upload {upload} is not in the cluster map"
            ))
        })
}

/// The upload a request names: bucket, key, id, and the target holding it.
struct Named<'a> {
    bck: Bck,
    key: &'a str,
    id: &'a str,
    to: Dest,
}

impl<'a> Named<'a> {
    fn of(r: &'a Req<'_>) -> S3Result<Self> {
        let id = r.q("uploadId").unwrap_or("");
        Ok(Self {
            bck: r.bck()?,
            key: r.key()?,
            id,
            to: holder(r, id)?,
        })
    }

    /// A call about this upload to its holder.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        r: &Req<'_>,
        method: Method,
        hdrs: &[(&'static str, String)],
        body: Option<reqwest::Body>,
    ) -> S3Result<T> {
        let q = [("uploadId", self.id)];
        let (b, k) = (&self.bck.name, self.key);
        call(
            r,
            &self.to,
            method,
            "mpu",
            b,
            k,
            &q,
            hdrs,
            body,
            &Default::default(),
        )
        .await
    }
}

pub async fn create(r: &Req<'_>) -> S3Result<Response> {
    let bck = r.bck()?;
    let key = r.key()?;
    let to = owner(r.core, &bck, key)?;
    let meta = request_meta(r);
    let up: Upload = call(
        r,
        &to,
        Method::POST,
        "mpu",
        &bck.name,
        key,
        &[("uploads", "")],
        &[(META_HEADER, meta_header(&meta))],
        None,
        &Default::default(),
    )
    .await?;
    let mut x = Xml::doc();
    x.root("InitiateMultipartUploadResult")
        .leaf("Bucket", &bck.name)
        .leaf("Key", key)
        .leaf("UploadId", &up.upload_id)
        .close("InitiateMultipartUploadResult");
    Ok(xml_ok(x))
}

/// UploadPart, or UploadPartCopy with `x-amz-copy-source`.
pub async fn upload_part(r: &Req<'_>, signed: &mut Signed, body: Body) -> S3Result<Response> {
    let u = Named::of(r)?;
    let (bck, key, id, to) = (&u.bck, u.key, u.id, &u.to);
    let n = r.q("partNumber").unwrap_or("");
    let query = [("uploadId", id), ("partNumber", n)];
    if r.header("x-amz-copy-source").is_some() {
        let range = r.header("x-amz-copy-source-range").map(str::to_string);
        let (stream, size, _) = read_source(r, range.as_deref()).await?;
        let mut hdrs = Vec::new();
        if let Some(n) = size {
            hdrs.push((SIZE_HEADER, n.to_string()));
        }
        let stored = store(
            r,
            to,
            "mpu",
            &bck.name,
            key,
            &query,
            &hdrs,
            stream,
            &Default::default(),
        )
        .await?;
        let mut x = Xml::doc();
        x.root("CopyPartResult")
            .leaf("LastModified", &iso8601(stored.mtime_ns))
            .leaf("ETag", &format!("\"{}\"", stored.etag))
            .close("CopyPartResult");
        return Ok(xml_ok(x));
    }
    let (stream, fail, size) = request_body(r, signed, body)?;
    let hdrs = put_headers(r, size, None);
    let stored = store(r, to, "mpu", &bck.name, key, &query, &hdrs, stream, &fail).await?;
    let mut out = empty(StatusCode::OK);
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", stored.etag)) {
        out.headers_mut().insert(header::ETAG, v);
    }
    Ok(out)
}

pub async fn complete(r: &Req<'_>, body: Body) -> S3Result<Response> {
    let raw = crate::http::read_body(body, 16 << 20)
        .await
        .map_err(|e| S3Error::malformed_xml(e.to_string()))?;
    let doc = std::str::from_utf8(&raw).map_err(|_| S3Error::malformed_xml("not UTF-8"))?;
    let parts = xml::parse_complete(doc)?;
    let u = Named::of(r)?;
    let (bck, key) = (&u.bck, u.key);
    let req =
        serde_json::to_vec(&CompleteReq { parts }).map_err(|e| S3Error::internal(e.to_string()))?;
    let hdrs = [("Content-Type", "application/json".to_string())];
    let stored: Stored = u.call(r, Method::POST, &hdrs, Some(req.into())).await?;
    let mut x = Xml::doc();
    x.root("CompleteMultipartUploadResult")
        .leaf("Location", &format!("/s3/{}/{key}", bck.name))
        .leaf("Bucket", &bck.name)
        .leaf("Key", key)
        .leaf("ETag", &format!("\"{}\"", stored.etag))
        .close("CompleteMultipartUploadResult");
    Ok(xml_ok(x))
}

pub async fn abort(r: &Req<'_>) -> S3Result<Response> {
    let u = Named::of(r)?;
    let _: bool = u.call(r, Method::DELETE, &[], None).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

pub async fn list_parts(r: &Req<'_>) -> S3Result<Response> {
    let u = Named::of(r)?;
    let (bck, id) = (&u.bck, u.id);
    let (up, parts): (Upload, Vec<Part>) = u.call(r, Method::GET, &[], None).await?;
    let marker: u32 = r
        .q("part-number-marker")
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let max: usize = r
        .q("max-parts")
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000)
        .min(1000);
    let after: Vec<&Part> = parts.iter().filter(|p| p.number > marker).collect();
    let truncated = after.len() > max;
    let shown = &after[..after.len().min(max)];
    let mut x = Xml::doc();
    x.root("ListPartsResult")
        .leaf("Bucket", &bck.name)
        .leaf("Key", &up.key)
        .leaf("UploadId", id)
        .leaf("PartNumberMarker", &marker.to_string())
        .leaf(
            "NextPartNumberMarker",
            &shown.last().map_or(0, |p| p.number).to_string(),
        )
        .leaf("MaxParts", &max.to_string())
        .leaf("IsTruncated", if truncated { "true" } else { "false" })
        .leaf("StorageClass", "STANDARD");
    for p in shown {
        x.open("Part")
            .leaf("PartNumber", &p.number.to_string())
            .leaf("LastModified", &iso8601(p.mtime_ns))
            .leaf("ETag", &format!("\"{}\"", p.etag))
            .leaf("Size", &p.size.to_string())
            .close("Part");
    }
    x.close("ListPartsResult");
    Ok(xml_ok(x))
}

/// ListMultipartUploads: every target's uploads of the bucket, by key.
pub async fn list_uploads(r: &Req<'_>) -> S3Result<Response> {
    let bck = r.bck()?;
    let prefix = r.q("prefix").unwrap_or("");
    let targets = r.core.targets();
    let results = fan_out(&targets, CONTROL_TIMEOUT, |t| {
        let name = bck.name.clone();
        async move {
            let resp = r
                .core
                .rpc
                .s3_internal(&t, Method::GET, "mpu", &name, "", &[], &[], None)
                .await?;
            resp.json::<Vec<Upload>>()
                .await
                .map_err(|e| crate::rpc::RpcError::Decode {
                    node: t.name.clone(),
                    why: e.to_string(),
                })
        }
    })
    .await;
    let mut all: Vec<Upload> = crate::rpc::all_ok("listing multipart uploads", results)
        .map_err(|e| r.api(e))?
        .into_iter()
        .flat_map(|(_, v)| v)
        .filter(|u| u.key.starts_with(prefix))
        .collect();
    all.sort_by(|a, b| (a.key.as_str(), a.initiated_ns).cmp(&(b.key.as_str(), b.initiated_ns)));
    let mut x = Xml::doc();
    x.root("ListMultipartUploadsResult")
        .leaf("Bucket", &bck.name)
        .leaf("KeyMarker", "")
        .leaf("UploadIdMarker", "")
        .leaf("Prefix", prefix)
        .leaf("MaxUploads", "1000")
        .leaf("IsTruncated", "false");
    for u in all.iter().take(1000) {
        x.open("Upload")
            .leaf("Key", &u.key)
            .leaf("UploadId", &u.upload_id)
            .leaf("Initiated", &iso8601(u.initiated_ns))
            .leaf("StorageClass", "STANDARD")
            .close("Upload");
    }
    x.close("ListMultipartUploadsResult");
    Ok(xml_ok(x))
}
