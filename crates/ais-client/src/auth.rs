//! AuthN calls (served by the primary proxy when the cluster runs with
//! `AIS_AUTH=1`), shaped like AIStore's AuthN API, and where the CLI keeps
//! its token.

use crate::{json, Client, Result};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;

impl Client {
    /// `POST /v1/users/NAME` → a token (`expires_in`: seconds, `None` = server default).
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        expires_in: Option<f64>,
    ) -> Result<String> {
        let mut msg = json!({ "password": password });
        if let Some(s) = expires_in {
            msg["expires_in"] = json!((s * 1e9) as u64);
        }
        let v: Value = json(
            self.authn(
                Method::POST,
                &format!("/v1/users/{}", crate::enc(user)),
                Some(msg),
            )
            .await?,
        )
        .await?;
        Ok(v.get("token")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string())
    }

    /// `DELETE /v1/tokens {token}`: revokes `token` on every node.
    pub async fn revoke_token(&self, token: &str) -> Result<()> {
        self.authn(
            Method::DELETE,
            "/v1/tokens",
            Some(json!({ "token": token })),
        )
        .await
        .map(|_| ())
    }

    /// Adds a user with the named roles (`Admin`, `ClusterOwner`,
    /// `BucketOwner`/`read-write`, `Guest`/`read-only`, or a custom role).
    pub async fn add_user(&self, name: &str, password: &str, roles: &[String]) -> Result<()> {
        let roles: Vec<Value> = roles
            .iter()
            .map(|r| json!({ "name": r, "desc": "" }))
            .collect();
        let msg = json!({ "id": name, "pass": password, "roles": roles });
        self.authn(Method::POST, "/v1/users", Some(msg))
            .await
            .map(|_| ())
    }

    pub async fn remove_user(&self, name: &str) -> Result<()> {
        self.authn(
            Method::DELETE,
            &format!("/v1/users/{}", crate::enc(name)),
            None,
        )
        .await
        .map(|_| ())
    }

    /// All users: `{name: {id, roles: [RoleInfo]}}`.
    pub async fn users(&self) -> Result<Value> {
        json(self.authn(Method::GET, "/v1/users", None).await?).await
    }

    /// All roles: `[RoleInfo]`.
    pub async fn roles(&self) -> Result<Value> {
        json(self.authn(Method::GET, "/v1/roles", None).await?).await
    }

    /// Adds a role with `perm` access bits, on the whole cluster or on one bucket.
    pub async fn add_role(
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
        self.authn(Method::POST, "/v1/roles", Some(msg))
            .await
            .map(|_| ())
    }

    async fn authn(
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

/// Where the token is kept: `AIS_AUTHN_TOKEN_FILE`, else
/// `$XDG_CONFIG_HOME` (or `~/.config`) `/ais/cli/auth.token` (AIStore's CLI path).
pub fn token_file() -> PathBuf {
    if let Some(p) = std::env::var_os("AIS_AUTHN_TOKEN_FILE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".config")
        });
    base.join("ais").join("cli").join("auth.token")
}

/// The token to send: `AIS_AUTHN_TOKEN`, else the token file (`{"token": ...}` or the bare token).
pub fn saved_token() -> Option<String> {
    if let Ok(t) = std::env::var("AIS_AUTHN_TOKEN") {
        if !t.trim().is_empty() {
            return Some(t.trim().to_string());
        }
    }
    let raw = std::fs::read_to_string(token_file()).ok()?;
    let t = match serde_json::from_str::<Value>(&raw) {
        Ok(v) => v
            .get("token")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        Err(_) => raw.trim().to_string(),
    };
    (!t.is_empty()).then_some(t)
}
