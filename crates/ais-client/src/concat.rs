//! Calls for the CLI's AIStore-parity commands: several files appended to
//! one object under one append handle and made visible by one flush
//! (`ais object concat`, `ais put --append` of many files), and an AuthN
//! role's removal and update, a user's update.

use crate::{enc, Client, ClientError, ObjProps, Result};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;

impl Client {
    /// Appends `files`, in order, to `obj` (created if absent; its current
    /// bytes, if any, come first); nothing is visible before the final flush.
    pub async fn append_files(
        &self,
        bucket: &str,
        obj: &str,
        files: &[PathBuf],
    ) -> Result<ObjProps> {
        if files.is_empty() {
            return Err(ClientError::Decode("append: no files to append".into()));
        }
        let mut handle = String::new();
        for path in files {
            let len = tokio::fs::metadata(path).await?.len();
            let q = format!("append_type=append&append_handle={}", query_enc(&handle));
            let h = self
                .put_body_with(bucket, obj, &q, len, || async {
                    let file = tokio::fs::File::open(path).await?;
                    let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
                    Ok(reqwest::Body::wrap_stream(stream))
                })
                .await?;
            handle = h
                .get("ais-append-handle")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    ClientError::Decode("append: no Ais-Append-Handle in the answer".into())
                })?
                .to_string();
        }
        let q = format!("append_type=flush&append_handle={}", query_enc(&handle));
        let h = self
            .put_body_with(bucket, obj, &q, 0, || async { Ok(reqwest::Body::from("")) })
            .await?;
        Ok(ObjProps::from_headers(&h))
    }

    /// Removes an AuthN role (refused while users hold it).
    pub async fn remove_role(&self, name: &str) -> Result<()> {
        self.request(
            Method::DELETE,
            self.url(&format!("/v1/roles/{}", enc(name))),
            None,
            &[],
        )
        .await
        .map(drop)
    }

    /// Replaces an AuthN role's description and permissions.
    pub async fn update_role(
        &self,
        name: &str,
        desc: &str,
        perm: u64,
        bucket: Option<&str>,
    ) -> Result<()> {
        let mut msg = json!({ "name": name, "desc": desc });
        match bucket {
            Some(b) => {
                msg["buckets"] =
                    json!([{ "bck": { "name": b, "provider": "ais" }, "perm": perm.to_string() }])
            }
            None => msg["clusters"] = json!([{ "id": "*", "perm": perm.to_string() }]),
        }
        self.authn_json(Method::PUT, &format!("/v1/roles/{}", enc(name)), Some(msg))
            .await
            .map(drop)
    }

    /// Changes a user's password (when given) and roles (when any).
    pub async fn update_user(&self, name: &str, password: &str, roles: &[String]) -> Result<()> {
        let mut msg = json!({ "id": name });
        if !password.is_empty() {
            msg["pass"] = Value::String(password.to_string());
        }
        if !roles.is_empty() {
            msg["roles"] = roles.iter().map(|r| json!({ "name": r })).collect();
        }
        self.authn_json(Method::PUT, &format!("/v1/users/{}", enc(name)), Some(msg))
            .await
            .map(drop)
    }

    /// The clusters AuthN serves (`/v1/clusters`).
    /// Registers another cluster (its UUID read from its map at `urls[0]`).
    pub async fn auth_add_cluster(&self, alias: &str, urls: &[String]) -> Result<String> {
        let first = urls
            .first()
            .ok_or_else(|| crate::ClientError::Decode("no cluster URL given".into()))?;
        let smap: Value = crate::json(
            self.request(
                Method::GET,
                format!("{}/v1/daemon?what=smap", first.trim_end_matches('/')),
                None,
                &[],
            )
            .await?,
        )
        .await?;
        let id = smap["uuid"].as_str().unwrap_or("").to_string();
        if id.is_empty() {
            return Err(crate::ClientError::Decode(format!(
                "{first} answered no cluster UUID"
            )));
        }
        let body = serde_json::json!({"id": id, "alias": alias, "urls": urls});
        self.authn_json(Method::POST, "/v1/clusters", Some(body))
            .await?;
        Ok(id)
    }

    /// Changes a registered cluster's alias and/or URLs.
    pub async fn auth_update_cluster(&self, id: &str, alias: &str, urls: &[String]) -> Result<()> {
        let mut body = serde_json::json!({"id": id});
        if !alias.is_empty() {
            body["alias"] = Value::String(alias.into());
        }
        if !urls.is_empty() {
            body["urls"] = serde_json::json!(urls);
        }
        self.authn_json(Method::PUT, &format!("/v1/clusters/{id}"), Some(body))
            .await
            .map(drop)
    }

    /// Removes a registered cluster (by id or alias).
    pub async fn auth_rm_cluster(&self, id: &str) -> Result<()> {
        self.authn_json(Method::DELETE, &format!("/v1/clusters/{id}"), None)
            .await
            .map(drop)
    }

    pub async fn auth_clusters(&self) -> Result<Value> {
        crate::json(self.authn_json(Method::GET, "/v1/clusters", None).await?).await
    }

    async fn authn_json(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<reqwest::Response> {
        let body = body.map(|b| bytes::Bytes::from(b.to_string()));
        let hdr = [("content-type", "application/json".to_string())];
        self.request(method, self.url(path), body, &hdr).await
    }
}

fn query_enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
