//! ETL calls: init (from code or a runtime spec), list, show, logs,
//! stop/start/remove, per-job errors and one-object transforms into a bucket.

use crate::{paths, Client, ClientError, Result};
use base64::Engine;
use bytes::Bytes;
use reqwest::Method;
use serde::{Deserialize, Serialize};

/// `{"transform": NAME}`: the functions an ETL's code provides.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct EtlFuncs {
    pub transform: String,
}

/// `PUT /v1/etl` body for an ETL from Python code (AIStore's `InitCodeMsg`).
/// `code` and `dependencies` are the raw bytes; they travel base64-encoded.
/// Fields are declared in the order they go on the wire.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct InitCodeMsg {
    /// `""` (bytes) or `"fqn"` (the transform reads the object's local path).
    pub argument: String,
    #[serde(serialize_with = "b64")]
    pub code: Vec<u8>,
    /// `io://`, `hpush://` or `hpull://`.
    pub communication: String,
    #[serde(serialize_with = "b64")]
    pub dependencies: Vec<u8>,
    pub fresh_process: bool,
    pub funcs: EtlFuncs,
    pub init_timeout: String,
    pub name: String,
    pub obj_timeout: String,
    pub pool_size: u32,
    pub runtime: String,
}

fn b64<S: serde::Serializer>(v: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
}

/// Base64 text from the server as a string (lossy; empty if not base64).
fn unb64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map(|b| String::from_utf8_lossy(&b).to_string())
        .unwrap_or_default()
}

/// One entry of `GET /v1/etl`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct EtlInfo {
    /// The ETL's name.
    pub id: String,
    pub stage: String,
    pub xaction_id: String,
    pub communication: String,
    pub obj_count: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub err_count: u64,
}

pub use ais_core::api::EtlTargetStats;

/// One per-object failure (of an ETL, or of an offline job). Job errors carry
/// an HTTP-style `ecode`; ETL runtime errors a `kind` (`transform`,
/// `timeout`, ...).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct EtlObjError {
    pub obj_name: String,
    pub msg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecode: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl EtlObjError {
    /// `ecode` if there is one, else `kind`, else `""`.
    pub fn code(&self) -> String {
        match (&self.ecode, &self.kind) {
            (Some(c), _) => c.to_string(),
            (None, Some(k)) => k.clone(),
            (None, None) => String::new(),
        }
    }
}

/// `GET /v1/etl/NAME` (and `?uuid=JOB`, which fills only `init_msg` and
/// `obj_errors`).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct EtlDetails {
    /// The init request as stored: an [`InitCodeMsg`] or a runtime spec
    /// (AIStore's free-form shape), with `code`/`dependencies` base64.
    pub init_msg: serde_json::Value,
    pub obj_errors: Vec<EtlObjError>,
    pub stage: String,
    pub xaction_id: String,
    pub targets: Vec<EtlTargetStats>,
}

impl EtlDetails {
    /// A string field of `init_msg` (`""` if absent).
    pub fn init_str(&self, key: &str) -> &str {
        self.init_msg[key].as_str().unwrap_or("")
    }

    /// The ETL's code, decoded (empty if none or not base64).
    pub fn code(&self) -> Option<String> {
        base64::engine::general_purpose::STANDARD
            .decode(self.init_str("code"))
            .ok()
            .map(|c| String::from_utf8_lossy(&c).to_string())
    }

    /// The ETL's dependencies (requirements.txt text), decoded.
    pub fn dependencies(&self) -> String {
        unb64(self.init_str("dependencies"))
    }
}

/// One target's log of an ETL (`GET /v1/etl/NAME/logs`).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct EtlLogs {
    pub target_id: String,
    /// Base64, as on the wire; see [`EtlLogs::text`].
    pub logs: String,
}

impl EtlLogs {
    /// The log text (lossy UTF-8; empty if not base64).
    pub fn text(&self) -> String {
        unb64(&self.logs)
    }
}

impl Client {
    /// `PUT /v1/etl` with a JSON body; the answer is the init job's id.
    async fn etl_put(&self, body: Vec<u8>) -> Result<String> {
        let resp = self
            .request(
                Method::PUT,
                self.url(paths::ETL),
                Some(Bytes::from(body)),
                &[("content-type", "application/json".into())],
            )
            .await?;
        crate::text(resp).await
    }

    /// Initialises an ETL from Python code; returns when every target runs it
    /// (or with the first error). Returns the init job's id.
    pub async fn etl_init_code(&self, msg: &InitCodeMsg) -> Result<String> {
        self.etl_put(serde_json::to_vec(msg).map_err(|e| ClientError::Decode(e.to_string()))?)
            .await
    }

    /// Initialises an ETL from a runtime spec (AIStore's free-form
    /// `ETLSpecMsg`: name, runtime, communication, ...). Returns the job id.
    pub async fn etl_init_spec(&self, spec: &serde_json::Value) -> Result<String> {
        self.etl_put(serde_json::to_vec(spec).map_err(|e| ClientError::Decode(e.to_string()))?)
            .await
    }

    /// Every ETL with its summed counters.
    pub async fn etl_list(&self) -> Result<Vec<EtlInfo>> {
        self.get_json(paths::ETL).await
    }

    /// One ETL: init message, stage and per-target counters.
    pub async fn etl_show(&self, name: &str) -> Result<EtlDetails> {
        self.get_json(&paths::etl(name)).await
    }

    /// Every per-object failure of the offline job `job` run by ETL `name`.
    pub async fn etl_job_errors(&self, name: &str, job: &str) -> Result<Vec<EtlObjError>> {
        let d: EtlDetails = self.get_json(&paths::etl_job(name, job)).await?;
        Ok(d.obj_errors)
    }

    /// Logs of an ETL from every target, or from one.
    pub async fn etl_logs(&self, name: &str, target: Option<&str>) -> Result<Vec<EtlLogs>> {
        self.get_json(&paths::etl_logs(name, target)).await
    }

    /// Stops an ETL on every target (it can be started again).
    pub async fn etl_stop(&self, name: &str) -> Result<()> {
        self.bodiless(Method::POST, &paths::etl_sub(name, "stop"))
            .await
    }

    /// Starts a stopped ETL.
    pub async fn etl_start(&self, name: &str) -> Result<()> {
        self.bodiless(Method::POST, &paths::etl_sub(name, "start"))
            .await
    }

    /// Stops and removes an ETL.
    pub async fn etl_remove(&self, name: &str) -> Result<()> {
        self.bodiless(Method::DELETE, &paths::etl(name)).await
    }

    /// Transforms `src_bck/src_obj` with ETL `etl` into `dst_bck/dst_obj`,
    /// without a job.
    pub async fn etl_object_to(
        &self,
        (src_bck, src_obj): (&str, &str),
        (dst_bck, dst_obj): (&str, &str),
        etl: &str,
        etl_args: Option<&str>,
    ) -> Result<()> {
        let p = paths::etl_object_to(src_bck, src_obj, dst_bck, dst_obj, etl, etl_args);
        self.bodiless(Method::PUT, &p).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_code_wire_form() {
        let m = InitCodeMsg {
            argument: String::new(),
            code: b"def transform(b): return b".to_vec(),
            communication: "hpush://".into(),
            dependencies: Vec::new(),
            fresh_process: false,
            funcs: EtlFuncs {
                transform: "transform".into(),
            },
            init_timeout: "5m".into(),
            name: "up".into(),
            obj_timeout: "45s".into(),
            pool_size: 0,
            runtime: "python3".into(),
        };
        // Same bytes as the CLI's former `json!` (keys sorted).
        let as_value = serde_json::json!({
            "name": "up",
            "runtime": "python3",
            "communication": "hpush://",
            "init_timeout": "5m",
            "obj_timeout": "45s",
            "funcs": {"transform": "transform"},
            "code": "ZGVmIHRyYW5zZm9ybShiKTogcmV0dXJuIGI=",
            "dependencies": "",
            "argument": "",
            "pool_size": 0,
            "fresh_process": false,
        });
        assert_eq!(
            serde_json::to_string(&m).ok(),
            serde_json::to_string(&as_value).ok()
        );
    }

    #[test]
    fn obj_error_code() {
        let job: EtlObjError =
            serde_json::from_str(r#"{"obj_name":"o","msg":"m","ecode":500}"#).unwrap();
        assert_eq!(job.code(), "500");
        let etl: EtlObjError =
            serde_json::from_str(r#"{"obj_name":"o","msg":"m","kind":"timeout"}"#).unwrap();
        assert_eq!(etl.code(), "timeout");
    }

    #[test]
    fn details_decode() {
        let d: EtlDetails = serde_json::from_value(serde_json::json!({
            "init_msg": {"code": "aGk=", "dependencies": "bnVtcHkKcGls"},
            "targets": [{"target_id": "t1", "obj_count": 3, "mean_latency_ms": 1.5}],
        }))
        .unwrap();
        assert_eq!(d.code().as_deref(), Some("hi"));
        assert_eq!(d.dependencies(), "numpy\npil");
        assert_eq!(d.targets[0].obj_count, 3);
        let l = EtlLogs {
            target_id: "t".into(),
            logs: "bG9n".into(),
        };
        assert_eq!(l.text(), "log");
    }
}
