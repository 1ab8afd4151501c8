//! Cluster membership and storage: node lifecycle (`start-maintenance`,
//! `stop-maintenance`, `decommission-node`, `shutdown-node`), rebalance
//! progress, and a target's mountpaths (attach, detach, enable, disable).

use crate::{paths, Client, ClientError, Result};
use ais_core::api::{ActMsg, RmNodeMsg};
use bytes::Bytes;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One target's share of a rebalance.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct TargetRebalance {
    pub target: String,
    /// Objects (and bytes) this target moved to their new owners.
    pub objs: u64,
    pub bytes: u64,
    /// `running`, `finished` or `aborted`.
    pub state: String,
    pub err: String,
    pub err_count: u64,
}

/// The newest rebalance: its cluster-wide status and each target's part.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct RebalanceInfo {
    pub status: crate::JobStatus,
    pub targets: Vec<TargetRebalance>,
}

/// A target's mountpaths (`GET /v1/daemon?what=mountpaths`, AIStore's shape).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct Mountpaths {
    pub available: Vec<String>,
    pub disabled: Vec<String>,
}

fn num(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

impl Client {
    /// `PUT /v1/cluster` with a lifecycle action; answers the rebalance
    /// job's id (empty when none was started).
    pub async fn node_lifecycle(&self, action: &str, v: &RmNodeMsg) -> Result<String> {
        let act = ActMsg {
            action: action.into(),
            name: String::new(),
            value: serde_json::to_value(v).map_err(|e| ClientError::Decode(e.to_string()))?,
        };
        let resp = self.action(Method::PUT, paths::CLUSTER, &act).await?;
        crate::text(resp).await
    }

    /// Starts a global rebalance now (`PUT /v1/cluster`, `rebalance`).
    pub async fn start_rebalance(&self) -> Result<String> {
        let resp = self
            .action(Method::PUT, paths::CLUSTER, &ActMsg::new("rebalance"))
            .await?;
        crate::text(resp).await
    }

    /// The newest rebalance job, with each target's progress; `None` if
    /// none has run.
    pub async fn rebalance_info(&self) -> Result<Option<RebalanceInfo>> {
        let newest = self
            .jobs()
            .await?
            .into_iter()
            .filter(|j| j.kind == "rebalance")
            .max_by_key(|j| j.extra.get("start_time").map(num).unwrap_or(0));
        let Some(status) = newest else {
            return Ok(None);
        };
        let snaps = self.job_snaps(&status.uuid).await.unwrap_or_default();
        let targets = snaps
            .into_iter()
            .filter_map(|(target, v)| {
                let s = v.into_iter().next()?;
                let state = if s["aborted"].as_bool().unwrap_or(false) {
                    "aborted"
                } else if s["end_ns"].as_i64().unwrap_or(0) != 0 {
                    "finished"
                } else {
                    "running"
                };
                Some(TargetRebalance {
                    target,
                    objs: num(&s["stats"]["out-objs"]),
                    bytes: num(&s["stats"]["out-bytes"]),
                    state: state.into(),
                    err: s["err"].as_str().unwrap_or("").to_string(),
                    err_count: num(&s["err_count"]),
                })
            })
            .collect();
        Ok(Some(RebalanceInfo { status, targets }))
    }

    /// A target's mountpaths (`target_url` from the cluster map).
    pub async fn mountpaths(&self, target_url: &str) -> Result<Mountpaths> {
        let url = format!(
            "{}{}",
            target_url.trim_end_matches('/'),
            paths::daemon_what("mountpaths")
        );
        let resp = self.request(Method::GET, url, None, &[]).await?;
        crate::json(resp).await
    }

    /// `attach-mp` (PUT), `detach-mp` (DELETE), `enable-mp` / `disable-mp`
    /// (POST) on `/v1/daemon/mountpaths` of a target, as AIStore's API.
    /// Answers the resilver job's id (empty if none was needed).
    pub async fn mountpath_action(
        &self,
        target_url: &str,
        action: &str,
        mpath: &str,
    ) -> Result<String> {
        let method = match action {
            "attach-mp" => Method::PUT,
            "detach-mp" => Method::DELETE,
            _ => Method::POST,
        };
        let act = ActMsg {
            action: action.into(),
            name: String::new(),
            value: Value::String(mpath.into()),
        };
        let body = serde_json::to_vec(&act).map_err(|e| ClientError::Decode(e.to_string()))?;
        let url = format!(
            "{}{}",
            target_url.trim_end_matches('/'),
            paths::DAEMON_MOUNTPATHS
        );
        let resp = self
            .request(
                method,
                url,
                Some(Bytes::from(body)),
                &[("content-type", "application/json".into())],
            )
            .await?;
        crate::text(resp).await
    }
}
