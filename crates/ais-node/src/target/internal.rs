//! Internal endpoints other nodes call on a target (never redirected): a
//! listing page of local objects, attributes of a local object, and the
//! delete of a local copy.

use super::Target;
use crate::error::{self, ApiError};
use crate::http::{empty, json_ok, Ctx, Res};
use ais_core::api::PropSet;
use ais_core::Bck;
use axum::http::{Method, StatusCode};

/// The most entries one internal listing page holds (the proxy asks for at
/// most `MAX_PAGE_SIZE`; tests count a target's objects in one page).
const MAX_INTERNAL_PAGE: usize = 100_000;

/// `GET /v1/internal/list/B?prefix=&after=&limit=&props=`.
pub async fn list(t: &std::sync::Arc<Target>, ctx: &Ctx, bucket: &str) -> Res {
    ctx.expect_method(&[Method::GET])?;
    let bck = t.core.bck(bucket);
    t.core.bucket_props(&bck)?;
    // The proxy lists by its map: one that dropped a silent target may be
    // newer than this target's, which would not know yet that the target
    // left (and answer as if its share were all there was).
    if let Some(want) = ctx.query.get("smap").and_then(|v| v.parse::<u64>().ok()) {
        let mine = || t.core.meta.with_smap(|s| s.map(|s| s.version).unwrap_or(0));
        if mine() < want {
            let _ = crate::state::sync_now(t).await;
            if mine() < want {
                return Err(ApiError::unavailable(format!(
                    "{}: its cluster map (v{}) is behind the proxy's (v{want}); retry",
                    t.core.name,
                    mine()
                )));
            }
        }
    }
    // A target that left the map without being decommissioned may hold
    // objects of this bucket: a listing without them would be a silent
    // partial answer (a GET of one is a 503 for the same reason).
    let away = t.departed();
    if !away.is_empty() {
        return Err(ApiError::unavailable(format!(
            "{}: listing {} may be incomplete: target(s) {} left the cluster and may hold its \
             objects; retry when they are back (or decommission them)",
            t.core.name,
            bck.cname(),
            away.join(", ")
        )));
    }
    let prefix = ctx.query.get("prefix").unwrap_or("").to_string();
    if ctx.query.get("summary").is_some() {
        return summary(t, bck, prefix).await;
    }
    let after = ctx.query.get("after").unwrap_or("").to_string();
    // Bounded whatever the caller asks: a page is held whole in memory.
    let limit: usize = ctx
        .query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(1000)
        .clamp(1, MAX_INTERNAL_PAGE);
    let props = PropSet::parse(ctx.query.get("props").unwrap_or(""))?;
    let flags: u64 = ctx
        .query
        .get("flags")
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    let shallow = (flags & ais_core::api::LSO_NO_RECURSION != 0)
        .then_some(flags & ais_core::api::LSO_NO_DIRS == 0);
    if flags & ais_core::api::LSO_NBI != 0 {
        let q = super::nbi::PageQuery {
            inv: ctx.query.get("inv").unwrap_or("").to_string(),
            prefix,
            after,
            limit,
            shallow,
        };
        return json_ok(&super::nbi::list_page(t, &bck, q).await?);
    }
    let store = t.store.clone();
    let name = t.core.name.clone();
    let page = tokio::task::spawn_blocking(move || {
        let mut page = ais_storage::list_objects(
            &store, &bck, &prefix, &after, limit, &props, &name, shallow,
        )?;
        if flags & ais_core::api::LSO_ARCH_DIR != 0 {
            expand_archives(&store, &bck, &mut page);
        }
        Ok::<_, ais_storage::StorageError>(page)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(format!("{}: listing failed: {e}", t.core.name)))?;
    json_ok(&page)
}

/// `INT_LIST/B?summary=1`: what this target holds of B (counts, sizes)
/// and the capacity of its mountpaths.
async fn summary(t: &Target, bck: ais_core::Bck, prefix: String) -> Res {
    let store = t.store.clone();
    let s = tokio::task::spawn_blocking(move || ais_storage::summarize(&store, &bck, &prefix))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(format!("{}: summary failed: {e}", t.core.name)))?;
    let disks: u64 = super::stats::mountpaths(t).iter().map(|m| m.total).sum();
    json_ok(&crate::rpc::types::TargetSummary { held: s, disks })
}

/// `GET /v1/internal/objattrs/B/O`.
pub async fn obj_attrs(t: &Target, ctx: &Ctx, bucket: &str, obj: &str) -> Res {
    let (bck, obj) = ctx.bck_obj(bucket, obj)?;
    match t.store.head(&bck, &obj).await {
        Ok(i) => json_ok(&i.attrs),
        Err(e) => Err(error::storage(&t.core.name, &bck, &obj, e)),
    }
}

/// `DELETE /v1/internal/objects/B/O`.
pub async fn delete_local(t: &Target, ctx: &Ctx, bucket: &str, obj: &str) -> Res {
    ctx.expect_method(&[Method::DELETE])?;
    let (bck, obj) = ctx.bck_obj(bucket, obj)?;
    t.store
        .delete(&bck, &obj)
        .await
        .map_err(|e| error::storage(&t.core.name, &bck, &obj, e))?;
    Ok(empty(StatusCode::OK))
}

/// Lists each archive's members right after it, as `SHARD/MEMBER` entries
/// (a shard that cannot be read is listed alone).
fn expand_archives(store: &ais_storage::Store, bck: &Bck, page: &mut ais_core::api::TargetPage) {
    use ais_core::api::{LsoEntry, ENTRY_FLAG_CACHED, ENTRY_FLAG_IN_ARCH};
    use ais_storage::archive::{self, ArchKind};
    let mut out = Vec::with_capacity(page.entries.len());
    for e in std::mem::take(&mut page.entries) {
        let kind = ArchKind::of(&e.name);
        let shard = e.name.clone();
        out.push(e);
        let Some(kind) = kind else {
            continue;
        };
        if let Ok(list) = archive::members(&store.obj_path(bck, &shard), kind) {
            out.extend(list.iter().map(|m| LsoEntry {
                name: format!("{shard}/{}", m.name.trim_start_matches("./")),
                size: m.size,
                flags: ENTRY_FLAG_CACHED | ENTRY_FLAG_IN_ARCH,
                ..Default::default()
            }));
        }
    }
    page.entries = out;
}
