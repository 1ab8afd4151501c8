//! Cluster and node configuration (`GET ?what=config`, `set-config`,
//! `reset-config`), as AIStore's API names them.

use crate::{Client, ClientError, Result};
use ais_core::api::ActMsg;
use reqwest::Method;
use serde_json::Value;

/// `KEY=VALUE` pairs as a query string (values percent-encoded).
fn query(pairs: &[(String, String)]) -> Result<String> {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    Ok(pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&"))
}

impl Client {
    /// The cluster-wide configuration (AIStore's nested JSON).
    pub async fn cluster_config(&self) -> Result<Value> {
        self.get_json("/v1/cluster?what=config").await
    }

    /// One node's effective configuration (the cluster's with its own on top).
    pub async fn node_config(&self, node_id: &str) -> Result<Value> {
        let resp = self
            .request(
                Method::GET,
                self.url("/v1/reverse/daemon?what=config"),
                None,
                &[("ais-node-id", node_id.to_string())],
            )
            .await?;
        crate::json(resp).await
    }

    /// Sets `pairs` cluster-wide (validated, persisted, pushed to every node).
    pub async fn set_cluster_config(&self, pairs: &[(String, String)]) -> Result<()> {
        let q = query(pairs)?;
        self.bodiless(Method::PUT, &format!("/v1/cluster/set-config?{q}"))
            .await
    }

    /// Sets `pairs` for one node only (`transient`: not kept across a restart).
    pub async fn set_node_config(
        &self,
        node_id: &str,
        pairs: &[(String, String)],
        transient: bool,
    ) -> Result<()> {
        let mut q = query(pairs)?;
        if transient {
            q.push_str("&transient=true");
        }
        self.request(
            Method::PUT,
            self.url(&format!("/v1/reverse/daemon/set-config?{q}")),
            None,
            &[("ais-node-id", node_id.to_string())],
        )
        .await
        .map(drop)
    }

    /// `PUT /v1/reverse/daemon` with an action body, for one node.
    pub async fn node_put(&self, node_id: &str, body: bytes::Bytes) -> Result<()> {
        self.request(
            Method::PUT,
            self.url("/v1/reverse/daemon"),
            Some(body),
            &[
                ("ais-node-id", node_id.to_string()),
                ("content-type", "application/json".into()),
            ],
        )
        .await
        .map(drop)
    }

    /// Back to the defaults (cluster), or to the cluster's values (a node).
    pub async fn reset_config(&self, node_id: Option<&str>) -> Result<()> {
        let msg = ActMsg::new("reset-config");
        match node_id {
            None => self
                .action(Method::PUT, crate::paths::CLUSTER, &msg)
                .await
                .map(drop),
            Some(id) => {
                let body =
                    serde_json::to_vec(&msg).map_err(|e| ClientError::Decode(e.to_string()))?;
                self.request(
                    Method::PUT,
                    self.url("/v1/reverse/daemon"),
                    Some(body.into()),
                    &[
                        ("ais-node-id", id.to_string()),
                        ("content-type", "application/json".into()),
                    ],
                )
                .await
                .map(drop)
            }
        }
    }
}
