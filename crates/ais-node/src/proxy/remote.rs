//! Remote (`s3://`, `gs://`, `az://`) buckets on the proxy: added to the BMD on first use once the
//! backend confirms the bucket exists (as AIStore adds cloud buckets), and
//! listed from the backend with each entry's cached state in the cluster.

use super::Proxy;
use crate::backend::{self, Remote};
use crate::error::{ApiError, ApiResult};
use ais_core::api::{LsoEntry, ENTRY_FLAG_CACHED};
use ais_core::meta::BucketProps;
use ais_core::Bck;

/// A bucket's props; a remote bucket not in the BMD yet is added if its
/// backend has it (`extra`: props to add it with, e.g. its endpoint).
pub async fn props(p: &Proxy, bck: &Bck) -> ApiResult<BucketProps> {
    add(p, bck, &serde_json::Value::Null).await
}

/// [`props`] with a patch for a bucket being added (`ais bucket create s3://B`
/// with props): the backend is asked with those props.
pub async fn add(p: &Proxy, bck: &Bck, patch: &serde_json::Value) -> ApiResult<BucketProps> {
    if !bck.is_remote() {
        return p.core.bucket_props(bck);
    }
    let existing = p.core.meta.with_bmd(|b| b.buckets.get(&bck.name).cloned());
    if let Some(props) = existing {
        if props.provider != bck.provider {
            return Err(ApiError::Conflict(format!(
                "bucket name \"{}\" is taken by ais://{}: bucket names are unique across providers here",
                bck.name, bck.name
            )));
        }
        return Ok(props);
    }
    let mut props = BucketProps {
        provider: bck.provider.clone(),
        bid: ais_core::gen_id(10),
        created: ais_core::now_ns().to_string(),
        ..remote_defaults(p)
    };
    props.apply_patch(patch)?;
    let remote = Remote::new(&bck.name, &props)?;
    if !remote.head_bucket(backend::http()).await? {
        return Err(ApiError::Peer {
            status: axum::http::StatusCode::NOT_FOUND,
            tcode: "ErrRemoteBckNotFound".into(),
            message: format!("{} bucket \"{}\" does not exist", bck.provider, bck.cname()),
        });
    }
    let added = props.clone();
    p.primary()?
        .update_bmd(|bmd| {
            bmd.buckets.entry(bck.name.clone()).or_insert(added);
            Ok::<(), ApiError>(())
        })
        .await?;
    tracing::info!(bucket = %bck.cname(), "remote bucket added");
    p.core.bucket_props(bck)
}

/// One page of a remote bucket's listing: the backend's names after
/// `after`, each flagged cached (with its local props) when the cluster
/// holds a copy. `local`: the cluster's own entries from `after` on, in
/// name order. The token: the last name, if the backend has more.
pub async fn list_page(
    props: &BucketProps,
    bck: &Bck,
    prefix: &str,
    after: &str,
    page_size: usize,
    local: Vec<LsoEntry>,
) -> ApiResult<(Vec<LsoEntry>, String)> {
    let remote = Remote::for_bucket(&bck.name, props)?;
    let (entries, next) = remote
        .list_page(backend::http(), prefix, after, None, page_size.min(1000))
        .await?;
    let mut local: std::collections::HashMap<String, LsoEntry> =
        local.into_iter().map(|e| (e.name.clone(), e)).collect();
    let out: Vec<LsoEntry> = entries
        .into_iter()
        .map(|r| match local.remove(&r.name) {
            Some(mut e) => {
                e.flags |= ENTRY_FLAG_CACHED;
                e
            }
            None => LsoEntry {
                name: r.name,
                size: r.size,
                version: r.etag,
                ..Default::default()
            },
        })
        .collect();
    let token = match (&next, out.last()) {
        (Some(_), Some(last)) => last.name.clone(),
        _ => String::new(),
    };
    Ok((out, token))
}

/// What a remote bucket starts with: the cluster's bucket defaults, but
/// never erasure coding (asked for by name only: LRU evicts cached copies,
/// not parts, and the target count is not checked on first use).
fn remote_defaults(p: &Proxy) -> BucketProps {
    let mut d = p.core.config.current().bucket_defaults();
    d.ec.enabled = false;
    d
}
