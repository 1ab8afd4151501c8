//! `PUT /v1/buckets/SRC` with action `archive` (the SDK's
//! `bucket.objects(...).archive(...)`, `ais archive bucket`): packs the
//! listed (or templated) objects of SRC into one shard in the destination
//! bucket, as a tracked job. The shard's owner target does the work.

use super::Proxy;
use crate::error::ApiError;
use crate::http::Res;
use crate::rpc::types::{ArchiveSpec, JobSpec, JOB_ARCHIVE};
use ais_core::api::{ActMsg, TcbMsg};
use ais_core::Bck;
use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
struct ArchiveMsg {
    #[serde(default)]
    archname: String,
    #[serde(default)]
    objnames: Option<Vec<String>>,
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    tobck: Option<ToBck>,
    /// Include the source bucket name in member names.
    #[serde(default)]
    isbn: bool,
    /// Append to an existing shard.
    #[serde(default)]
    aate: bool,
    #[serde(default)]
    coer: bool,
    #[serde(default)]
    mime: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
struct ToBck {
    #[serde(default)]
    name: String,
}

pub async fn start(p: &Proxy, src: &Bck, msg: ActMsg) -> Res {
    p.core.bucket_props(src)?;
    let m: ArchiveMsg = serde_json::from_value(msg.value)
        .map_err(|e| ApiError::bad_request(format!("malformed archive message: {e}")))?;
    if m.archname.is_empty() {
        return Err(ApiError::bad_request(
            "archive: missing the shard's name (\"archname\")",
        ));
    }
    ais_core::names::validate_object_name(&m.archname)?;
    if ais_storage::archive::ArchKind::of(&m.archname).is_none() {
        return Err(ApiError::bad_request(format!(
            "archive: \"{}\" must end in .tar, .tgz, .tar.gz, .tar.lz4 or .zip",
            m.archname
        )));
    }
    if let Some(mime) = m.mime.as_deref().filter(|s| !s.is_empty()) {
        let want = mime.trim_start_matches('.');
        if !m.archname.to_ascii_lowercase().ends_with(want) {
            return Err(ApiError::bad_request(format!(
                "archive: mime \"{mime}\" does not match the shard name \"{}\"",
                m.archname
            )));
        }
    }
    let names = m.objnames.unwrap_or_default();
    let template = m.template.unwrap_or_default();
    if names.is_empty() && template.is_empty() {
        return Err(ApiError::bad_request(
            "archive: name the objects to pack (\"objnames\" or \"template\")",
        ));
    }
    if !template.is_empty() {
        ais_core::api::expand_template(&template, ais_core::api::MAX_TEMPLATE)?;
    }
    let dst = match m.tobck.map(|t| t.name).filter(|n| !n.is_empty()) {
        Some(n) => Bck::validated(&n, None)?,
        None => src.clone(),
    };
    p.core.bucket_props(&dst)?;
    let spec = JobSpec {
        id: format!("archive-{}", ais_core::gen_id(10)),
        kind: JOB_ARCHIVE.into(),
        src: src.name.clone(),
        dst: dst.name.clone(),
        msg: TcbMsg {
            objnames: names,
            template,
            coer: m.coer,
            ..Default::default()
        },
        skip_unchanged: false,
        archive: Some(ArchiveSpec {
            name: m.archname,
            include_src: m.isbn,
            append: m.aate,
        }),
        smap: None,
    };
    super::jobs::launch(p, spec).await
}
