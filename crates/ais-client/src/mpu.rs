//! AIStore's native multipart upload (`mpt-upload`, a part per PUT with
//! `uploadId` and `partNumber`, `mpt-complete`, `mpt-abort`).

use crate::{paths, Client, ClientError, Result};
use ais_core::api::ActMsg;
use reqwest::Method;
use serde_json::json;
use std::path::Path;

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl Client {
    /// Starts an upload of `bucket/obj`; answers its id.
    pub async fn mpu_create(&self, bucket: &str, obj: &str) -> Result<String> {
        let resp = self
            .action(
                Method::POST,
                &paths::object(bucket, obj),
                &ActMsg::new("mpt-upload"),
            )
            .await?;
        crate::text(resp).await
    }

    /// Streams `file` as part `n` of upload `id`.
    pub async fn mpu_put_part(
        &self,
        bucket: &str,
        obj: &str,
        id: &str,
        n: u32,
        file: &Path,
    ) -> Result<()> {
        let len = tokio::fs::metadata(file).await?.len();
        let q = format!("uploadId={}&partNumber={n}", enc(id));
        self.put_body_with(bucket, obj, &q, len, || async {
            let f = tokio::fs::File::open(file).await?;
            let stream = tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024);
            Ok(reqwest::Body::wrap_stream(stream))
        })
        .await
        .map(drop)
    }

    /// Assembles the object from `parts` (by number, in order).
    pub async fn mpu_complete(
        &self,
        bucket: &str,
        obj: &str,
        id: &str,
        parts: &[u32],
    ) -> Result<()> {
        let msg = ActMsg {
            action: "mpt-complete".into(),
            name: String::new(),
            value: json!(parts
                .iter()
                .map(|n| json!({"part-number": n, "etag": ""}))
                .collect::<Vec<_>>()),
        };
        let path = format!("{}?uploadId={}", paths::object(bucket, obj), enc(id));
        self.action(Method::POST, &path, &msg).await.map(drop)
    }

    /// Drops upload `id` and its parts.
    pub async fn mpu_abort(&self, bucket: &str, obj: &str, id: &str) -> Result<()> {
        let path = format!("{}?uploadId={}", paths::object(bucket, obj), enc(id));
        let body = serde_json::to_vec(&ActMsg::new("mpt-abort"))
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        self.request(
            Method::DELETE,
            self.url(&path),
            Some(body.into()),
            &[("content-type", "application/json".into())],
        )
        .await
        .map(drop)
    }
}
