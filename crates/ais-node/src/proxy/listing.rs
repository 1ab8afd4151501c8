//! List objects: ask every target for its next page after the continuation
//! token, merge in name order (the owner's copy wins a duplicate), answer in
//! JSON or msgpack. Stateless: the token is the last name returned.
//! `s3://` buckets list the backend's names, flagged cached where the
//! cluster holds them (`remote.rs`).

use super::Proxy;
use crate::error::ApiError;
use crate::http::{bytes_response, json_ok, Ctx, Res};
use crate::rpc::{all_ok, fan_out, types::ListQuery, CONTROL_TIMEOUT};
use ais_core::api::{LsoEntry, LsoMsg, LsoResJson, LsoResMsgpack, PropSet, MAX_PAGE_SIZE};
use ais_core::meta::{NODE_FLAG_DECOMMISSION, NODE_FLAG_MAINTENANCE};
use ais_core::Bck;
use axum::http::{header, StatusCode};

/// List flag: only objects present in the cluster (remote buckets).
const LSO_CACHED: u64 = 1;
/// List flag: only objects at the backend the cluster does not hold (the
/// strict opposite of [`LSO_CACHED`]).
const LSO_NOT_CACHED: u64 = 1 << 9;

/// Whether any target holds an object of `bck` (a target that does not
/// answer is an error: the answer must be sure).
pub async fn holds_objects(p: &Proxy, bck: &Bck) -> crate::error::ApiResult<bool> {
    let core = &p.core;
    let smap = core
        .meta
        .smap()
        .ok_or_else(|| ApiError::unavailable("no cluster map yet"))?;
    let targets: Vec<_> = smap.tmap.values().cloned().collect();
    let props_q = PropSet::parse("name")?.to_query();
    let q = ListQuery {
        prefix: "",
        after: "",
        limit: 1,
        props: &props_q,
        flags: 0,
        inv: "",
        smap: smap.version,
    };
    let results = fan_out(&targets, CONTROL_TIMEOUT, |t| {
        let q = &q;
        async move { core.rpc.list_page(&t, &bck.name, q).await }
    })
    .await;
    let pages = all_ok(&format!("listing {}", bck.cname()), results)?;
    Ok(pages.iter().any(|(_, page)| !page.entries.is_empty()))
}

pub async fn list_objects(p: &Proxy, ctx: &Ctx, bck: &Bck, msg: LsoMsg) -> Res {
    let core = &p.core;
    let bprops = super::remote::props(p, bck).await?;
    let nbi = msg.flags & ais_core::api::LSO_NBI != 0;
    if nbi {
        super::nbi::check_listing(bck, &bprops.provider, &msg)?;
    }
    let inv = ctx
        .headers
        .get(ais_core::api::HDR_INV_NAME)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if bprops.is_remote_backed()
        && !nbi
        && msg.flags & ais_core::api::LSO_NO_RECURSION != 0
        && msg.flags & LSO_CACHED == 0
    {
        return Err(ApiError::NotImplemented(format!(
            "listing {} one level deep (no-recursion) is supported for the objects the \
             cluster holds only: add the cached flag",
            bck.cname()
        )));
    }
    if msg.flags & LSO_CACHED != 0 && msg.flags & LSO_NOT_CACHED != 0 {
        return Err(ApiError::bad_request(
            "list flags cached and not-cached exclude each other",
        ));
    }
    let props = PropSet::parse(&msg.props)?;
    let page_size = if msg.pagesize == 0 || msg.pagesize > MAX_PAGE_SIZE {
        MAX_PAGE_SIZE
    } else {
        msg.pagesize
    } as usize;
    let after = if msg.continuation_token.is_empty() {
        msg.start_after.clone()
    } else {
        msg.continuation_token.clone()
    };
    let smap = core
        .meta
        .smap()
        .ok_or_else(|| ApiError::unavailable("no cluster map yet"))?;
    // Targets in maintenance too: they hold objects until a rebalance has
    // moved them (one that is down, e.g. shut down, is left out).
    let targets: Vec<_> = smap
        .tmap
        .values()
        .filter(|t| msg.target.is_empty() || t.daemon_id == msg.target)
        .cloned()
        .collect();
    let props_q = props.to_query();
    let q = ListQuery {
        prefix: &msg.prefix,
        after: &after,
        limit: page_size,
        props: &props_q,
        flags: msg.flags,
        inv: &inv,
        smap: smap.version,
    };
    let flagged = NODE_FLAG_MAINTENANCE | NODE_FLAG_DECOMMISSION;
    let results = fan_out(&targets, CONTROL_TIMEOUT, |t| {
        let q = &q;
        async move { core.rpc.list_page(&t, &bck.name, q).await }
    })
    .await;
    let pages = if nbi {
        super::nbi::pages(bck, results)?
    } else {
        all_ok(
            &format!("listing {}", bck.cname()),
            results
                .into_iter()
                .filter(|(t, r)| r.is_ok() || t.flags & flagged == 0)
                .collect(),
        )?
    };
    let mut all_done = true;
    let mut merged: Vec<(LsoEntry, bool)> = Vec::new();
    for (t, page) in pages {
        all_done &= page.done;
        for e in page.entries {
            let owner = smap
                .owner(&bck.obj_uname(&e.name))
                .is_some_and(|o| o.daemon_id == t.daemon_id);
            merged.push((e, owner));
        }
    }
    // Name order; for a name held by two targets (placement changed) keep the owner's copy.
    merged.sort_by(|a, b| a.0.name.cmp(&b.0.name).then(b.1.cmp(&a.1)));
    merged.dedup_by(|a, b| a.0.name == b.0.name);
    // A page holds `page_size` objects; archive members (listed with
    // LSO_ARCH_DIR) follow their archive and do not count.
    let is_member = |e: &LsoEntry| e.flags & ais_core::api::ENTRY_FLAG_IN_ARCH != 0;
    let objects = merged.iter().filter(|e| !is_member(&e.0)).count();
    let more = !all_done || objects > page_size;
    let mut kept = 0;
    merged.retain(|e| {
        if is_member(&e.0) {
            return kept <= page_size && kept > 0;
        }
        kept += 1;
        kept <= page_size
    });
    let mut token = if more {
        merged
            .iter()
            .rev()
            .find(|e| !is_member(&e.0))
            .map(|e| e.0.name.clone())
            .unwrap_or_default()
    } else {
        String::new()
    };
    if bprops.is_remote_backed() && !nbi {
        let bck = &Bck {
            provider: bprops.provider.clone(),
            ..bck.clone()
        };
        if msg.flags & LSO_CACHED != 0 {
            // Only what the cluster holds: the local listing, flagged.
            for (e, _) in merged.iter_mut() {
                e.flags |= ais_core::api::ENTRY_FLAG_CACHED;
            }
        } else {
            let local = merged.into_iter().map(|(e, _)| e).collect();
            let (entries, t) =
                super::remote::list_page(&bprops, bck, &msg.prefix, &after, page_size, local)
                    .await?;
            merged = entries
                .into_iter()
                // Not cached: what the backend has and the cluster does not
                // (a page may come out shorter, or empty, with a token).
                .filter(|e| {
                    msg.flags & LSO_NOT_CACHED == 0
                        || e.flags & ais_core::api::ENTRY_FLAG_CACHED == 0
                })
                .map(|e| (e, true))
                .collect();
            token = t;
        }
    }
    if (!bprops.is_remote_backed() || nbi) && msg.flags & LSO_NOT_CACHED != 0 {
        // An ais:// bucket holds every object it has: none is "not cached".
        merged.clear();
        token.clear();
    }
    let uuid = if msg.uuid.is_empty() {
        ais_core::gen_id(10)
    } else {
        msg.uuid
    };
    let wants_msgpack = ctx
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/msgpack"));
    if wants_msgpack {
        let res = LsoResMsgpack {
            uuid,
            continuation_token: token,
            entries: merged.iter().map(|(e, _)| e.to_msgpack(&props)).collect(),
            flags: 0,
        };
        let raw = rmp_serde::to_vec_named(&res).map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(bytes_response(StatusCode::OK, "application/msgpack", raw))
    } else {
        json_ok(&LsoResJson {
            uuid,
            continuation_token: token,
            entries: merged.iter().map(|(e, _)| e.to_json(&props)).collect(),
            flags: 0,
        })
    }
}
