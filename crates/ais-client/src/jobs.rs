//! Offline jobs: bucket-to-bucket copy (`copy-bck`) and transform (`etl-bck`),
//! status, listing and stopping.

use crate::{paths, Client, ClientError, Result};
use ais_core::api::ActMsg;
use bytes::Bytes;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn is_false(b: &bool) -> bool {
    !*b
}

/// The `value` of a `copy-bck`/`etl-bck` request (a subset of AIStore's
/// `TCBMsg` plus the list/range selection). Empty optional fields are left
/// out; fields are declared in the order they go on the wire.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct BucketJobMsg {
    /// Continue on per-object errors.
    pub coer: bool,
    pub dry_run: bool,
    /// Extension changes, `{"jpg": "png"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<BTreeMap<String, String>>,
    /// Redo outputs a previous run already wrote.
    #[serde(skip_serializing_if = "is_false")]
    pub force: bool,
    /// The ETL (set by [`Client::transform_bucket`]).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// ETLs applied after `id`, in order (a pipeline).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pipeline: Vec<String>,
    /// Concurrent objects per target (0 = default, -1 = serial).
    #[serde(rename = "num-workers")]
    pub num_workers: i64,
    /// Only these objects.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objnames: Vec<String>,
    pub prefix: String,
    /// Added to every destination name.
    pub prepend: String,
    /// Only objects named by this template, e.g. `shard-{0000..0999}.tar`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub template: String,
    /// Copy only: also delete from the destination what the source lost.
    #[serde(rename = "synchronize", skip_serializing_if = "is_false")]
    pub sync: bool,
}

/// A job's cluster-wide status (`GET /v1/cluster?what=status`). Fields are
/// declared in alphabetical order; anything else the server sends is kept in
/// `extra`, so serialising gives back what the server said.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct JobStatus {
    pub aborted: bool,
    /// Bytes written.
    pub bytes: u64,
    /// Unix nanoseconds; 0 while running.
    pub end_time: i64,
    /// Why the job failed (errors of several targets joined with `; `).
    pub err: String,
    /// Per-object errors.
    pub err_count: u64,
    pub is_idle: bool,
    pub kind: String,
    /// Objects written.
    pub objs: u64,
    /// Scrub: objects whose copies were restored or rebuilt.
    #[serde(default)]
    pub repaired: u64,
    /// Outputs left as they were (same source, same transform).
    pub skipped: u64,
    pub total_bytes: u64,
    pub total_objs: u64,
    pub uuid: String,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

impl JobStatus {
    pub fn finished(&self) -> bool {
        self.end_time != 0
    }
}

impl Client {
    /// `POST /v1/buckets/SRC?provider=ais&bck_to=ais/@%23/DST/`: starts a
    /// bucket-to-bucket job and returns its id.
    async fn bucket_to_bucket(
        &self,
        src: &str,
        dst: &str,
        action: &str,
        msg: &BucketJobMsg,
    ) -> Result<String> {
        let act = ActMsg {
            action: action.into(),
            name: String::new(),
            value: serde_json::to_value(msg).map_err(|e| ClientError::Decode(e.to_string()))?,
        };
        let resp = self
            .action(Method::POST, &paths::bucket_to_bucket(src, dst), &act)
            .await?;
        crate::text(resp).await
    }

    /// Every per-object error of a job, from every target.
    pub async fn job_errors(&self, id: &str) -> Result<Vec<crate::EtlObjError>> {
        self.job_query("job_errors", json!({"ID": id})).await
    }

    /// Scrubs a bucket (`scrub-bck`): every target verifies the
    /// sizes, checksums and mirror copies of its objects and repairs what
    /// redundancy allows. Returns the job id.
    pub async fn scrub_bucket(&self, bucket: &str) -> Result<String> {
        let act = ActMsg {
            action: "scrub-bck".into(),
            name: String::new(),
            value: Value::Null,
        };
        let path = format!("{}?provider=ais", paths::bucket(bucket));
        let resp = self.action(Method::POST, &path, &act).await?;
        crate::text(resp).await
    }

    /// Starts a `prefetch-listrange` (or, `evict`, an `evict-listrange`)
    /// job on the remote bucket `bucket`: `names`, or a `template`, or
    /// (neither) every object under `prefix`; returns the job id.
    pub async fn prefetch_or_evict(
        &self,
        bucket: &str,
        provider: &str,
        evict: bool,
        names: &[String],
        template: &str,
        prefix: &str,
    ) -> Result<String> {
        let act = ActMsg {
            action: if evict {
                "evict-listrange"
            } else {
                "prefetch-listrange"
            }
            .into(),
            name: String::new(),
            value: serde_json::json!({"objnames": names, "template": template, "prefix": prefix}),
        };
        let path = format!("{}?provider={provider}", paths::bucket(bucket));
        let method = if evict { Method::DELETE } else { Method::POST };
        let resp = self.action(method, &path, &act).await?;
        crate::text(resp).await
    }

    /// A bucket's summary (`summary-bck`: started, then polled until done):
    /// AIStore's summary element (`ObjCount`, `ObjSize`, `TotalSize`, ...).
    /// `cached`: only the objects the cluster holds.
    pub async fn bucket_summary(
        &self,
        bucket: &str,
        provider: &str,
        prefix: &str,
        cached: bool,
    ) -> Result<Value> {
        let path = format!("{}?provider={provider}", paths::bucket(bucket));
        let msg = |uuid: &str| ActMsg {
            action: "summary-bck".into(),
            name: String::new(),
            value: serde_json::json!({"uuid": uuid, "prefix": prefix, "cached": cached, "present": cached}),
        };
        let id = crate::text(self.action(Method::GET, &path, &msg("")).await?).await?;
        let id = id.trim().trim_matches('"').to_string();
        let mut pause = std::time::Duration::from_millis(20);
        loop {
            let r = self.action(Method::GET, &path, &msg(&id)).await?;
            if r.status() == reqwest::StatusCode::OK {
                let all: Vec<Value> = crate::json(r).await?;
                return all
                    .into_iter()
                    .next()
                    .ok_or_else(|| ClientError::Decode("empty bucket summary".into()));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(1));
        }
    }

    /// Renames the ais:// bucket `from` to `to` (`move-bck`, as the SDK's
    /// `Bucket.rename`): a job that moves every object; `from` takes no
    /// writes meanwhile and goes when the job is done. Returns the job id.
    pub async fn rename_bucket(&self, from: &str, to: &str) -> Result<String> {
        let path = format!("{}?provider=ais&bck_to=ais/@%23/{to}/", paths::bucket(from));
        let resp = self
            .action(Method::POST, &path, &ActMsg::new("move-bck"))
            .await?;
        crate::text(resp).await
    }

    /// Deletes a selection of a bucket's objects as one job
    /// (`delete-listrange`): `names`, or a `template`, or every object under
    /// `prefix` (for a remote bucket, at its backend too); returns the job
    /// id. `provider`: `ais`, `aws`, ...
    pub async fn delete_objects(
        &self,
        bucket: &str,
        provider: &str,
        names: &[String],
        template: &str,
        prefix: &str,
    ) -> Result<String> {
        let act = ActMsg {
            action: "delete-listrange".into(),
            name: String::new(),
            value: serde_json::json!({"objnames": names, "template": template, "prefix": prefix}),
        };
        let path = format!("{}?provider={provider}", paths::bucket(bucket));
        let resp = self.action(Method::DELETE, &path, &act).await?;
        crate::text(resp).await
    }

    /// Removes the remote bucket `bucket` and every cached copy of its
    /// objects from the cluster (`evict-remote-bck`); the backend keeps it.
    pub async fn evict_bucket(&self, bucket: &str, provider: &str) -> Result<()> {
        let path = format!("{}?provider={provider}", paths::bucket(bucket));
        self.action(Method::DELETE, &path, &ActMsg::new("evict-remote-bck"))
            .await
            .map(drop)
    }

    /// Makes the remote bucket known to the cluster (added on first use if
    /// its backend has it).
    pub async fn add_remote_bucket(&self, bucket: &str, provider: &str) -> Result<()> {
        let url = self.url(&format!("{}?provider={provider}", paths::bucket(bucket)));
        self.request(Method::HEAD, url, None, &[]).await.map(drop)
    }

    /// Switches erasure coding on for `bucket` (`data`+`parity` slices) and
    /// starts the `ec-encode` job that codes its existing objects; returns
    /// the job id.
    /// AIStore's blob download: one remote object fetched into the cluster
    /// in parallel ranges by its owner, as a job; answers its id.
    pub async fn blob_download(
        &self,
        bucket: &str,
        provider: &str,
        obj: &str,
        chunk_size: Option<u64>,
        num_workers: Option<i64>,
        latest: bool,
    ) -> Result<String> {
        let mut value = serde_json::json!({ "latest-ver": latest });
        if let Some(c) = chunk_size {
            value["chunk-size"] = c.into();
        }
        if let Some(n) = num_workers {
            value["num-workers"] = n.into();
        }
        let act = ActMsg {
            action: "blob-download".into(),
            name: obj.into(),
            value,
        };
        let path = format!("/v1/objects/{bucket}?provider={provider}");
        let resp = self.action(Method::POST, &path, &act).await?;
        crate::text(resp).await
    }

    /// AIStore's n-way mirror (`make-n-copies`): every object of `bucket`
    /// gets `copies` copies (1: mirroring off); answers the job id.
    pub async fn make_n_copies(&self, bucket: &str, copies: u32) -> Result<String> {
        let act = ActMsg {
            action: "make-n-copies".into(),
            name: String::new(),
            value: serde_json::json!(copies),
        };
        let path = format!("{}?provider=ais", paths::bucket(bucket));
        let resp = self.action(Method::POST, &path, &act).await?;
        crate::text(resp).await
    }

    pub async fn ec_encode(&self, bucket: &str, data: u32, parity: u32) -> Result<String> {
        let act = ActMsg {
            action: "ec-encode".into(),
            name: String::new(),
            value: serde_json::json!({"data_slices": data, "parity_slices": parity}),
        };
        let path = format!("{}?provider=ais", paths::bucket(bucket));
        let resp = self.action(Method::POST, &path, &act).await?;
        crate::text(resp).await
    }

    /// Packs objects of `src` (`names`, or a `template` like
    /// `o-{000..099}`) into the shard `dst/shard` (.tar, .tgz, .tar.gz,
    /// .zip) as a job (`archive`); returns the job id.
    #[allow(clippy::too_many_arguments)]
    pub async fn archive(
        &self,
        src: &str,
        dst: &str,
        shard: &str,
        names: &[String],
        template: &str,
        append: bool,
        include_src: bool,
        cont_on_err: bool,
    ) -> Result<String> {
        let mut v = serde_json::json!({
            "archname": shard,
            "tobck": {"name": dst, "provider": "ais"},
            "aate": append,
            "isbn": include_src,
            "coer": cont_on_err,
        });
        if template.is_empty() {
            v["objnames"] = serde_json::json!(names);
        } else {
            v["template"] = serde_json::json!(template);
        }
        let act = ActMsg {
            action: "archive".into(),
            name: String::new(),
            value: v,
        };
        let path = format!("{}?provider=ais", paths::bucket(src));
        let resp = self.action(Method::PUT, &path, &act).await?;
        crate::text(resp).await
    }

    /// Copies bucket `src` (or the selection in `msg`) into `dst` (created if
    /// missing), as a job (`copy-bck`). Returns the job id.
    pub async fn copy_bucket(&self, src: &str, dst: &str, msg: &BucketJobMsg) -> Result<String> {
        self.bucket_to_bucket(src, dst, "copy-bck", msg).await
    }

    /// Transforms bucket `src` (or the selection in `msg`) with ETL `etl`
    /// into `dst`, as a job (`etl-bck`). Returns the job id.
    pub async fn transform_bucket(
        &self,
        src: &str,
        dst: &str,
        etl: &str,
        msg: &BucketJobMsg,
    ) -> Result<String> {
        let msg = BucketJobMsg {
            id: etl.into(),
            ..msg.clone()
        };
        self.bucket_to_bucket(src, dst, "etl-bck", &msg).await
    }

    /// `GET /v1/cluster?what=WHAT` with a JSON job query as the body.
    async fn job_query<T: serde::de::DeserializeOwned>(&self, what: &str, q: Value) -> Result<T> {
        let body = serde_json::to_vec(&q).map_err(|e| ClientError::Decode(e.to_string()))?;
        let resp = self
            .request(
                Method::GET,
                self.url(&paths::cluster_what(what)),
                Some(Bytes::from(body)),
                &[("content-type", "application/json".into())],
            )
            .await?;
        crate::json(resp).await
    }

    /// How the last decommission/shutdown of each node went, by node id
    /// (`state`: running, finished, failed, cancelled; `err`).
    pub async fn node_lifecycle_states(&self) -> Result<BTreeMap<String, Value>> {
        self.job_query("node_lifecycle", json!({})).await
    }

    /// One job's status, summed over the targets.
    pub async fn job_status(&self, id: &str) -> Result<JobStatus> {
        self.job_query("status", json!({ "ID": id })).await
    }

    /// Every job the cluster knows (running and finished), by id.
    pub async fn jobs(&self) -> Result<Vec<JobStatus>> {
        self.job_query("jobs", json!({})).await
    }

    /// Running jobs as AIStore names them: `KIND[ID]`.
    pub async fn running_jobs(&self) -> Result<Vec<String>> {
        self.job_query("running_all", json!({})).await
    }

    /// Per-target snapshots of a job (AIStore's free-form xaction snaps),
    /// keyed by target id.
    pub async fn job_snaps(&self, id: &str) -> Result<BTreeMap<String, Vec<Value>>> {
        self.job_query("qryxstats", json!({ "ID": id })).await
    }

    /// Starts a job by kind (`rebalance`, `resilver`, `lru`, `ec-encode`
    /// with a bucket), on every target or on `node`; answers its id.
    pub async fn start_job(&self, kind: &str, node: &str, bucket: Option<&str>) -> Result<String> {
        let act = ActMsg {
            action: "start".into(),
            name: String::new(),
            value: json!({
                "kind": kind,
                "node": node,
                "Bck": bucket.map(|b| json!({"name": b, "provider": "ais"})),
            }),
        };
        crate::text(self.action(Method::PUT, paths::CLUSTER, &act).await?).await
    }

    /// Stops every running job of `kind`.
    pub async fn stop_jobs_of_kind(&self, kind: &str) -> Result<()> {
        let act = ActMsg {
            action: "stop".into(),
            name: String::new(),
            value: json!({ "kind": kind }),
        };
        self.action(Method::PUT, paths::CLUSTER, &act)
            .await
            .map(|_| ())
    }

    /// Forgets finished jobs (`PUT /v1/cluster`, action `remove-job`): job
    /// `id`, or with `all` every finished one (of `kind` when not empty);
    /// answers the ids removed.
    pub async fn remove_jobs(&self, id: &str, kind: &str, all: bool) -> Result<Vec<String>> {
        let act = ActMsg {
            action: "remove-job".into(),
            name: String::new(),
            value: json!({ "id": id, "kind": kind, "all": all }),
        };
        let resp = self.action(Method::PUT, paths::CLUSTER, &act).await?;
        resp.json()
            .await
            .map_err(|e| crate::ClientError::Decode(e.to_string()))
    }

    /// AIStore's `promote`: files below a target's promote root into
    /// `bucket` (object `obj`, or the prefix `obj/` for a directory);
    /// answers the job id.
    #[allow(clippy::too_many_arguments)]
    pub async fn promote(
        &self,
        bucket: &str,
        src: &str,
        obj: &str,
        target_id: &str,
        recursive: bool,
        overwrite: bool,
        delete_src: bool,
        not_file_share: bool,
    ) -> Result<String> {
        let act = ActMsg {
            action: "promote".into(),
            name: src.into(),
            value: json!({
                "tid": target_id, "src": src, "obj": obj, "rcr": recursive,
                "ovw": overwrite, "dls": delete_src, "notshr": not_file_share,
            }),
        };
        let resp = self
            .action(Method::POST, &paths::bucket_objects(bucket), &act)
            .await?;
        crate::text(resp).await
    }

    /// Starts a download (`POST /v1/download`, AIStore's `DlBody`); answers
    /// its job id.
    pub async fn download_start(&self, body: &serde_json::Value) -> Result<String> {
        let raw =
            serde_json::to_vec(body).map_err(|e| crate::ClientError::Decode(e.to_string()))?;
        let resp = self
            .request(
                Method::POST,
                self.url("/v1/download"),
                Some(raw.into()),
                &[("content-type", "application/json".into())],
            )
            .await?;
        let v: serde_json::Value = crate::json(resp).await?;
        v["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| crate::ClientError::Decode(format!("no job id in {v}")))
    }

    /// Starts a dSort job (`POST /v1/sort`) from a spec (AIStore's fields);
    /// answers its id.
    pub async fn dsort_start(&self, spec: &serde_json::Value) -> Result<String> {
        let body =
            serde_json::to_vec(spec).map_err(|e| crate::ClientError::Decode(e.to_string()))?;
        let resp = self
            .request(
                Method::POST,
                self.url(paths::SORT),
                Some(body.into()),
                &[("content-type", "application/json".into())],
            )
            .await?;
        crate::text(resp).await
    }

    /// A dSort job's per-target `JobInfo` (target id → info).
    pub async fn dsort_info(
        &self,
        id: &str,
    ) -> Result<std::collections::BTreeMap<String, serde_json::Value>> {
        self.get_json(&paths::dsort("", id)).await
    }

    /// Every dSort job the cluster knows (one `JobInfo` per job).
    pub async fn dsort_list(&self) -> Result<Vec<serde_json::Value>> {
        self.get_json(paths::SORT).await
    }

    pub async fn dsort_abort(&self, id: &str) -> Result<()> {
        self.bodiless(Method::DELETE, &paths::dsort("abort", id))
            .await
    }

    pub async fn dsort_remove(&self, id: &str) -> Result<()> {
        self.bodiless(Method::DELETE, &paths::dsort("", id)).await
    }

    /// Stops a job on every target (`PUT /v1/cluster`, action `stop`).
    pub async fn stop_job(&self, id: &str) -> Result<()> {
        let act = ActMsg {
            action: "stop".into(),
            name: String::new(),
            value: json!({ "ID": id }),
        };
        self.action(Method::PUT, paths::CLUSTER, &act)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_job_wire_form() {
        let m = BucketJobMsg {
            prefix: "d/".into(),
            num_workers: -1,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"coer":false,"dry_run":false,"num-workers":-1,"prefix":"d/","prepend":""}"#
        );
        let m = BucketJobMsg {
            ext: Some([("jpg".to_string(), "png".to_string())].into()),
            id: "e".into(),
            objnames: vec!["a".into()],
            template: "t{0..1}".into(),
            coer: true,
            ..Default::default()
        };
        // The same as a `json!` object (keys sorted), as the CLI used to send.
        let v = json!({"prefix": "", "prepend": "", "dry_run": false, "coer": true,
            "num-workers": 0, "ext": {"jpg": "png"}, "template": "t{0..1}",
            "objnames": ["a"], "id": "e"});
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            serde_json::to_string(&v).unwrap()
        );
        let act = ActMsg {
            action: "etl-bck".into(),
            name: String::new(),
            value: serde_json::to_value(&m).unwrap(),
        };
        let v = json!({"action": "etl-bck", "name": "", "value": v});
        assert_eq!(
            serde_json::to_string(&act).unwrap(),
            serde_json::to_string(&v).unwrap()
        );
    }

    #[test]
    fn job_status_round_trip() {
        let raw = json!({"uuid": "j1", "kind": "copy-bck", "err": "", "end_time": 5,
            "aborted": false, "is_idle": true, "objs": 2, "bytes": 10, "total_objs": 2,
            "total_bytes": 10, "err_count": 0, "repaired": 0, "skipped": 0, "xid": [1]});
        let s: JobStatus = serde_json::from_value(raw.clone()).unwrap();
        assert!(s.finished());
        assert_eq!(s.total_objs, 2);
        assert_eq!(
            serde_json::to_string_pretty(&s).unwrap(),
            serde_json::to_string_pretty(&raw).unwrap()
        );
    }
}
