//! Native bucket inventories (AIStore's NBI) on the proxy: `create-`,
//! `show-` and `destroy-inventory` on `/v1/buckets/B`, and the checks of a
//! listing from one (`LSO_NBI`; the pages are merged by `listing.rs`). The
//! inventories themselves live on the targets (`target::nbi`).

use super::Proxy;
use crate::error::{ApiError, ApiResult};
use crate::http::{empty, json_ok, Res};
use crate::rpc::{all_ok, fan_out, RpcError, CONTROL_TIMEOUT};
use ais_core::api::{
    ActMsg, CreateNbiMsg, NbiInfo, TargetPage, TcbMsg, LSO_NBI_REFUSED, NBI_NAMES_PER_CHUNK,
};
use ais_core::meta::Snode;
use ais_core::Bck;

/// List flag: only what the cluster holds.
const LSO_CACHED: u64 = 1;
use axum::http::StatusCode;
use std::collections::BTreeMap;

/// List flags a `create-inventory` refuses (AIStore's list): cached,
/// missing, deleted, archive members, bucket-present, don't-HEAD-remote,
/// don't-add-remote, not-cached, only-remote-props, no-recursion, diff,
/// S3.
const CREATE_REFUSED: u64 = (1 << 0)
    | (1 << 1)
    | (1 << 2)
    | (1 << 3)
    | (1 << 6)
    | (1 << 7)
    | (1 << 8)
    | (1 << 9)
    | (1 << 10)
    | (1 << 11)
    | (1 << 12)
    | (1 << 14);

/// The flag bits set in `flags & mask`, named by bit number.
fn bits(flags: u64) -> String {
    (0..64)
        .filter(|b| flags & (1 << b) != 0)
        .map(|b| format!("1<<{b}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A remote bucket's props, or why an inventory does not apply.
async fn remote(p: &Proxy, bck: &Bck, action: &str) -> ApiResult<()> {
    let props = super::remote::props(p, bck).await?;
    if props.provider == "ais" {
        return Err(ApiError::bad_request(format!(
            "{action}: {} is an ais:// bucket; a native bucket inventory is of a remote \
             bucket's names (an ais:// bucket lists at local speed)",
            bck.cname()
        )));
    }
    Ok(())
}

fn targets(p: &Proxy) -> Vec<Snode> {
    p.core
        .meta
        .with_smap(|s| s.map(|s| s.tmap.values().cloned().collect()))
        .unwrap_or_default()
}

/// Every target's inventories of `bck` (`name`: that one), merged as
/// AIStore merges them: sizes, names and chunks summed, the earliest
/// start and the latest finish.
async fn show_all(p: &Proxy, bck: &Bck, name: &str) -> ApiResult<BTreeMap<String, NbiInfo>> {
    let core = &p.core;
    let res = all_ok(
        &format!("inventories of {}", bck.cname()),
        fan_out(&targets(p), CONTROL_TIMEOUT, |t| async move {
            core.rpc.nbi_show(&t, &bck.name, name).await
        })
        .await,
    )?;
    let mut merged: BTreeMap<String, NbiInfo> = BTreeMap::new();
    for (_, infos) in res {
        for (k, i) in infos {
            match merged.get_mut(&k) {
                None => {
                    merged.insert(k, i);
                }
                Some(m) => {
                    m.size += i.size;
                    m.ntotal += i.ntotal;
                    m.chunks += i.chunks;
                    if i.started != 0 && (m.started == 0 || i.started < m.started) {
                        m.started = i.started;
                    }
                    m.finished = m.finished.max(i.finished);
                    m.nat = m.nat.max(i.nat);
                    m.smap_ver = m.smap_ver.max(i.smap_ver);
                }
            }
        }
    }
    Ok(merged)
}

/// `POST /v1/buckets/B {"action": "create-inventory", "value":
/// CreateNBIMsg}`: answers the job's id.
pub async fn create(p: &Proxy, bck: &Bck, msg: &ActMsg) -> Res {
    remote(p, bck, &msg.action).await?;
    let m: CreateNbiMsg = if msg.value.is_null() {
        CreateNbiMsg::default()
    } else {
        serde_json::from_value(msg.value.clone()).map_err(|e| {
            ApiError::bad_request(format!("malformed create-inventory message: {e}"))
        })?
    };
    if !m.continuation_token.is_empty() || !m.start_after.is_empty() {
        return Err(ApiError::bad_request(
            "create-inventory: an inventory starts at the beginning of the bucket's names \
             (no continuation_token, no start_after)",
        ));
    }
    if m.flags & CREATE_REFUSED != 0 {
        return Err(ApiError::bad_request(format!(
            "create-inventory: list flags {} do not apply to making an inventory (a flat \
             snapshot of the remote bucket's names)",
            bits(m.flags & CREATE_REFUSED)
        )));
    }
    let (default_n, min_n, max_n) = NBI_NAMES_PER_CHUNK;
    let per_chunk = match m.names_per_chunk {
        0 => default_n,
        n if (min_n..=max_n).contains(&n) => n,
        n => {
            return Err(ApiError::bad_request(format!(
                "create-inventory: names_per_chunk {n} is outside {min_n}..={max_n}"
            )))
        }
    };
    let name = if m.name.is_empty() {
        format!("inv-{}", ais_core::gen_id(9))
    } else {
        m.name.clone()
    };
    if !ais_core::api::valid_nbi_name(&name) {
        return Err(ApiError::bad_request(format!(
            "create-inventory: invalid inventory name \"{name}\" (letters, digits, '-', '_', \
             '.', at most 64, not starting with '.')"
        )));
    }
    let mut props = ais_core::api::PropSet::parse(if m.props.is_empty() {
        "name,size,cached"
    } else {
        &m.props
    })?
    .to_query();
    if !props.split(',').any(|p| p == "cached") {
        props.push_str(",cached");
    }
    let existing = show_all(p, bck, "").await?;
    if existing.values().any(|i| i.name == name) {
        return Err(ApiError::Conflict(format!(
            "{} already has an inventory \"{name}\"",
            bck.cname()
        )));
    }
    if !existing.is_empty() {
        if !m.force {
            return Err(ApiError::Conflict(format!(
                "{} already has an inventory ({}): one per bucket; remove it first \
                 (ais nbi rm) or create with force",
                bck.cname(),
                existing
                    .values()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        destroy_all(p, bck, "").await?;
    }
    let tcb = TcbMsg {
        prefix: m.prefix.clone(),
        ext: [
            ("name".to_string(), name.clone()),
            ("names_per_chunk".to_string(), per_chunk.to_string()),
            ("props".to_string(), props),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    tracing::info!(bucket = %bck.cname(), inventory = %name, "create-inventory");
    super::jobs::start_create_nbi(p, bck, tcb).await
}

/// `GET /v1/buckets/B {"action": "show-inventory", "name": N}`.
pub async fn show(p: &Proxy, bck: &Bck, msg: &ActMsg) -> Res {
    remote(p, bck, &msg.action).await?;
    json_ok(&show_all(p, bck, &msg.name).await?)
}

/// Removes `bck`'s inventory `name` (empty: all) on every target; answers
/// how many targets' shares went.
async fn destroy_all(p: &Proxy, bck: &Bck, name: &str) -> ApiResult<u64> {
    let core = &p.core;
    let res = all_ok(
        &format!("removing inventories of {}", bck.cname()),
        fan_out(&targets(p), CONTROL_TIMEOUT, |t| async move {
            core.rpc.nbi_destroy(&t, &bck.name, name).await
        })
        .await,
    )?;
    Ok(res.into_iter().map(|(_, n)| n).sum())
}

/// `DELETE /v1/buckets/B {"action": "destroy-inventory", "name": N}` (no
/// name: every inventory of B).
pub async fn destroy(p: &Proxy, bck: &Bck, msg: &ActMsg) -> Res {
    remote(p, bck, &msg.action).await?;
    if destroy_all(p, bck, &msg.name).await? == 0 {
        return Err(ApiError::NotFound(if msg.name.is_empty() {
            format!("{} has no inventory", bck.cname())
        } else {
            format!("{} has no inventory \"{}\"", bck.cname(), msg.name)
        }));
    }
    tracing::info!(bucket = %bck.cname(), inventory = %msg.name, "destroy-inventory");
    Ok(empty(StatusCode::OK))
}

/// What a listing from an inventory refuses (AIStore's rules).
pub fn check_listing(bck: &Bck, provider: &str, msg: &ais_core::api::LsoMsg) -> ApiResult<()> {
    let (flags, start_after) = (msg.flags, msg.start_after.as_str());
    if provider == "ais" {
        return Err(ApiError::bad_request(format!(
            "{} is an ais:// bucket: it has no inventory to list from",
            bck.cname()
        )));
    }
    if !start_after.is_empty() {
        return Err(ApiError::bad_request(
            "invalid list via native bucket inventory: start_after is not supported",
        ));
    }
    // Read whole from every target's share: one target's part, or the
    // cached ones only, would be answered as if it were the inventory.
    if !msg.target.is_empty() {
        return Err(ApiError::bad_request(
            "invalid list via native bucket inventory: a listing of one target (target) does \
             not apply; an inventory is listed whole",
        ));
    }
    if flags & LSO_CACHED != 0 {
        return Err(ApiError::bad_request(
            "invalid list via native bucket inventory: the cached-only flag does not apply \
             (each entry carries its cached flag: ask for the 'cached' property)",
        ));
    }
    if flags & LSO_NBI_REFUSED != 0 {
        return Err(ApiError::bad_request(format!(
            "invalid list via native bucket inventory: flags {} do not apply",
            bits(flags & LSO_NBI_REFUSED)
        )));
    }
    Ok(())
}

/// The targets' pages of an inventory listing. A target with no share
/// (404: it joined later, or the inventory is not there) adds nothing,
/// but fewer holders than the targets that made it means shares are
/// missing: an error, never a partial listing.
pub fn pages(
    bck: &Bck,
    results: Vec<(Snode, Result<TargetPage, RpcError>)>,
) -> ApiResult<Vec<(Snode, TargetPage)>> {
    let mut ok = Vec::new();
    let mut missing: Option<RpcError> = None;
    let mut failed = Vec::new();
    for (t, r) in results {
        match r {
            Ok(page) => ok.push((t, page)),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => missing = Some(e),
            Err(e) => failed.push((t, Err(e))),
        }
    }
    if !failed.is_empty() {
        all_ok::<TargetPage>(
            &format!("listing {} from its inventory", bck.cname()),
            failed,
        )?;
    }
    if ok.is_empty() {
        return Err(match missing {
            Some(e) => ApiError::from(e),
            None => ApiError::unavailable("no targets in the cluster map"),
        });
    }
    // One creation's shares, all of them: shares of different creations
    // (a target back with an old one, creations racing) never mix.
    let shares: Vec<_> = ok.iter().filter_map(|(_, p)| p.nbi.clone()).collect();
    let first = shares.first().cloned().unwrap_or_default();
    if shares.len() != ok.len() || shares.iter().any(|s| s.job != first.job) {
        let mut jobs: Vec<&str> = shares.iter().map(|s| s.job.as_str()).collect();
        jobs.sort();
        jobs.dedup();
        return Err(ApiError::Conflict(format!(
            "the targets hold parts of different inventories of {} (made by {}); recreate it \
             (ais nbi create --force)",
            bck.cname(),
            jobs.join(", ")
        )));
    }
    if ok.len() != first.nat as usize {
        return Err(ApiError::unavailable(format!(
            "the inventory of {} is incomplete: {} of the {} targets that made it hold \
             their share (targets left or lost it); recreate it (ais nbi create --force)",
            bck.cname(),
            ok.len(),
            first.nat
        )));
    }
    Ok(ok)
}
