//! The downloader's control plane (AIStore's `/v1/download`): start a job
//! from a `single`, `multi` or `range` request (the objects are fetched by
//! their owner targets: `target::download`), its status in AIStore's shape,
//! the list of downloads, abort and remove. A download is a job like the
//! others: `ais show job`, `ais wait` and `ais stop` follow it too.

use super::Proxy;
use crate::error::{ApiError, ApiResult};
use crate::http::{json_ok, Ctx, Res};
use crate::rpc::types::JobSpec;
use ais_core::api::TcbMsg;
use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Most links a `multi` request lists (each travels in the job's spec).
const MAX_MULTI: usize = 100_000;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BckRef {
    #[serde(default)]
    name: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    namespace: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Limits {
    #[serde(default)]
    connections: i64,
    #[serde(default)]
    bytes_per_hour: i64,
}

/// AIStore's `DlBody` (all types' fields).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DlBody {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    bucket: BckRef,
    #[serde(default)]
    description: String,
    #[serde(default)]
    timeout: String,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    link: String,
    #[serde(default)]
    object_name: String,
    #[serde(default)]
    objects: Value,
    #[serde(default)]
    template: String,
    #[serde(default)]
    subdir: String,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    suffix: String,
    #[serde(default)]
    sync: bool,
}

pub async fn handle(p: &Proxy, ctx: &Ctx, what: &str, body: Body) -> Res {
    match (&ctx.method, what) {
        (&Method::POST, "") => {
            ctx.query.reject_unknown("download", &[])?;
            start(p, body).await
        }
        (&Method::GET, "") => {
            ctx.query
                .reject_unknown("download query", &["id", "regex", "onlyActive"])?;
            let arg = id_arg(ctx, body).await?;
            match arg.0 {
                Some(id) => status(p, &id).await,
                None => list(p, arg.1.as_deref()).await,
            }
        }
        (&Method::DELETE, "abort" | "remove") => {
            ctx.query.reject_unknown("download", &["id"])?;
            let id = id_arg(ctx, body)
                .await?
                .0
                .ok_or_else(|| ApiError::bad_request("download: missing job id (\"id\")"))?;
            let st = status_value(p, &id).await?;
            if what == "abort" {
                if st["finished"].as_bool() != Some(true) {
                    super::jobs::stop_one(p, &id).await?;
                }
            } else {
                if st["finished"].as_bool() != Some(true) {
                    return Err(ApiError::bad_request(format!(
                        "download {id} is still running: abort it first"
                    )));
                }
                super::jobs::remove_one(p, &id).await?;
            }
            Ok(crate::http::empty(StatusCode::OK))
        }
        (_, "" | "abort" | "remove") => Err(ApiError::MethodNotAllowed {
            method: ctx.method.to_string(),
            path: ctx.path.clone(),
        }),
        _ => Err(ctx.unknown_path()),
    }
}

/// The job id (`?id=` or AIStore's JSON body `{"id": ...}`) and a regex.
async fn id_arg(ctx: &Ctx, body: Body) -> ApiResult<(Option<String>, Option<String>)> {
    let raw = crate::http::read_body(body, 64 << 10).await?;
    let v: Value = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&raw)
            .map_err(|e| ApiError::bad_request(format!("download: malformed body: {e}")))?
    };
    let id = ctx
        .query
        .get("id")
        .map(str::to_string)
        .or_else(|| v["id"].as_str().map(str::to_string))
        .filter(|s| !s.is_empty());
    if let Some(id) = &id {
        if !id.starts_with("download-") {
            return Err(ApiError::NotFound(format!(
                "download job {id} does not exist"
            )));
        }
    }
    let regex = ctx
        .query
        .get("regex")
        .map(str::to_string)
        .or_else(|| v["regex"].as_str().map(str::to_string))
        .filter(|s| !s.is_empty());
    Ok((id, regex))
}

/// `POST /v1/download`: answers `{"id": ...}`.
async fn start(p: &Proxy, body: Body) -> Res {
    use crate::links::{base_name, check_url, MAX_LINKS};
    let raw = crate::http::read_body(body, 64 << 20).await?;
    let b: DlBody = serde_json::from_slice(&raw)
        .map_err(|e| ApiError::bad_request(format!("download: malformed request: {e}")))?;
    if b.bucket.name.is_empty() {
        return Err(ApiError::bad_request("download: missing bucket.name"));
    }
    if b.bucket.namespace.as_ref().is_some_and(|n| {
        !n.is_null()
            && n.as_object()
                .is_none_or(|m| !m.values().all(|v| v.as_str().is_some_and(str::is_empty)))
    }) {
        return Err(ApiError::NotImplemented(
            "download: namespaces are not supported".into(),
        ));
    }
    let bck = ais_core::Bck::validated(&b.bucket.name, None)?;
    let props = p.core.bucket_props(&bck)?;
    if !matches!(b.bucket.provider.as_str(), "" | "ais") || props.provider != "ais" {
        return Err(ApiError::NotImplemented(format!(
            "download into {} (provider {}): downloads write into ais:// buckets; to fetch a remote bucket's objects use prefetch ('ais prefetch s3://B --prefix P')",
            bck.cname(),
            if b.bucket.provider.is_empty() { &props.provider } else { &b.bucket.provider }
        )));
    }
    if b.limits.bytes_per_hour != 0 {
        return Err(ApiError::NotImplemented(
            "download: limits.bytes_per_hour is not supported by aistore-rs".into(),
        ));
    }
    if b.limits.connections < 0 || b.limits.connections > 64 {
        return Err(ApiError::bad_request(
            "download: limits.connections is 0..=64",
        ));
    }
    let timeout_s = if b.timeout.is_empty() {
        0
    } else {
        ais_core::config::parse_duration(&b.timeout)
            .map(|d| d.as_secs().max(1))
            .filter(|s| *s <= 7 * 24 * 3600)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "download: invalid timeout \"{}\" (e.g. 30s, 5m; at most a week)",
                    b.timeout
                ))
            })?
    };
    let mut ext: BTreeMap<String, String> = BTreeMap::new();
    let count: usize;
    let add = |name: String, url: String, ext: &mut BTreeMap<String, String>| -> ApiResult<()> {
        ais_core::names::validate_object_name(&name)?;
        check_url(&url)?;
        if ext.insert(format!("u:{name}"), url).is_some() {
            return Err(ApiError::bad_request(format!(
                "download: two links would be stored as {name}"
            )));
        }
        Ok(())
    };
    match b.kind.as_str() {
        "single" => {
            if b.link.is_empty() {
                return Err(ApiError::bad_request("download: a single download needs \"link\""));
            }
            let name = if b.object_name.is_empty() { base_name(&b.link)? } else { b.object_name.clone() };
            add(name, b.link.clone(), &mut ext)?;
            count = 1;
        }
        "multi" => match &b.objects {
            Value::Array(a) => {
                if a.len() > MAX_MULTI {
                    return Err(ApiError::bad_request(format!("download: more than {MAX_MULTI} links")));
                }
                for u in a {
                    let u = u.as_str().ok_or_else(|| ApiError::bad_request("download: objects: links are strings"))?;
                    add(base_name(u)?, u.to_string(), &mut ext)?;
                }
                count = a.len();
            }
            Value::Object(m) => {
                if m.len() > MAX_MULTI {
                    return Err(ApiError::bad_request(format!("download: more than {MAX_MULTI} links")));
                }
                for (name, u) in m {
                    let u = u.as_str().ok_or_else(|| ApiError::bad_request("download: objects: links are strings"))?;
                    add(name.clone(), u.to_string(), &mut ext)?;
                }
                count = m.len();
            }
            _ => {
                return Err(ApiError::bad_request(
                    "download: a multi download needs \"objects\": a list of links or a map of object name to link",
                ))
            }
        },
        "range" => {
            if b.template.is_empty() {
                return Err(ApiError::bad_request("download: a range download needs \"template\""));
            }
            // AIStore's examples omit the scheme.
            let t = if b.template.contains("://") { b.template.clone() } else { format!("http://{}", b.template) };
            let urls = ais_core::api::expand_template(&t, MAX_LINKS)?;
            let mut names = std::collections::HashSet::new();
            for u in &urls {
                let n = format!("{}{}", b.subdir, base_name(u)?);
                ais_core::names::validate_object_name(&n)?;
                if !names.insert(n.clone()) {
                    return Err(ApiError::bad_request(format!("download: two links would be stored as {n}")));
                }
            }
            count = urls.len();
            ext.insert("template".into(), t);
            ext.insert("subdir".into(), b.subdir.clone());
        }
        "backend" => {
            return Err(ApiError::NotImplemented(
                "download type \"backend\" is not supported by aistore-rs: prefetch the remote bucket instead ('ais prefetch s3://B --prefix P', the SDK's ObjectGroup.prefetch)".into(),
            ))
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "download: invalid type \"{other}\" (expected single, multi, range or backend)"
            )))
        }
    }
    if !b.prefix.is_empty() || !b.suffix.is_empty() || b.sync {
        return Err(ApiError::bad_request(
            "download: prefix, suffix and sync apply to the backend type",
        ));
    }
    if timeout_s > 0 {
        ext.insert("timeout".into(), timeout_s.to_string());
    }
    if b.limits.connections > 0 {
        ext.insert("connections".into(), b.limits.connections.to_string());
    }
    ext.insert("description".into(), b.description.clone());
    let id = format!("download-{}", ais_core::gen_id(10));
    let spec = JobSpec {
        id: id.clone(),
        kind: crate::rpc::types::JOB_DOWNLOAD.into(),
        src: bck.name.clone(),
        dst: bck.name.clone(),
        msg: TcbMsg {
            ext,
            coer: true,
            ..Default::default()
        },
        skip_unchanged: false,
        archive: None,
        smap: None,
    };
    super::jobs::launch_all(p, spec).await?;
    tracing::info!(job = %id, links = count, bucket = %bck.cname(), "download started");
    json_ok(&json!({ "id": id }))
}

async fn status_value(p: &Proxy, id: &str) -> ApiResult<Value> {
    let s = super::jobs::status(p, id).await?;
    if s["kind"].as_str() != Some(crate::rpc::types::JOB_DOWNLOAD) {
        return Err(ApiError::NotFound(format!(
            "download job {id} does not exist"
        )));
    }
    let errors = super::jobs::job_errors(p, id).await.unwrap_or_default();
    let finished = s["end_time"].as_i64().unwrap_or(0) != 0;
    Ok(json!({
        "id": id,
        "finished": finished,
        "aborted": s["aborted"],
        "total": s["total_objs"],
        "finished_cnt": s["objs"],
        "errors_cnt": s["err_count"],
        "scheduled_cnt": s["total_objs"],
        "all_dispatched": true,
        "bytes": s["bytes"],
        "err": s["err"],
        "errors": errors.iter().map(|e| json!({"name": e.obj_name, "error": e.msg})).collect::<Vec<_>>(),
        "start_time": s["start_time"],
        "end_time": s["end_time"],
    }))
}

/// `GET /v1/download?id=`: how far the download is, and each failed link.
async fn status(p: &Proxy, id: &str) -> Res {
    json_ok(&status_value(p, id).await?)
}

/// `GET /v1/download[?regex=]`: every download job (its id and state).
async fn list(p: &Proxy, regex: Option<&str>) -> Res {
    let re = match regex {
        Some(r) => Some(
            regex::RegexBuilder::new(r)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| ApiError::bad_request(format!("invalid regex \"{r}\": {e}")))?,
        ),
        None => None,
    };
    let mut out = Vec::new();
    for id in super::jobs::ids_of_kind(p, crate::rpc::types::JOB_DOWNLOAD).await {
        if re.as_ref().is_some_and(|re| !re.is_match(&id)) {
            continue;
        }
        if let Ok(v) = status_value(p, &id).await {
            out.push(v);
        }
    }
    json_ok(&out)
}
