//! Erasure coding on a target (bucket property `ec`). The owner of an object
//! is its main copy's home; its parts go to the next targets in the object's
//! HRW order ([`ais_core::meta::Smap::placement`]): `parity_slices` full
//! replicas of a small object (≤ `objsize_limit`), or `data_slices` +
//! `parity_slices` Reed-Solomon slices of a larger one, one per target.
//!
//! - [`protect`]: after a PUT commits on the owner, cut and send the parts;
//!   the PUT is acknowledged only once every part is durable.
//! - [`recover`]: a main copy missing, short or failing its checksum is
//!   rebuilt from a replica or from any `data_slices` slices (wherever they
//!   are: every target is asked), then served.
//! - [`repair_bucket`]: the `ec-encode` job (also run after a rebalance and
//!   by scrub): every object this target owns gets complete, current parts
//!   on its current holders; objects it owns but lacks are rebuilt; stale
//!   parts on other targets are removed.
//! - [`internal`]: the part store other targets call (`/v1/internal/ec`).

use super::jobs::TargetJob;
use super::Target;
use crate::error::{self, ApiError, ApiResult};
use crate::http::{empty, json_ok, Ctx, Res};
use crate::rpc::{decode_ec_meta, encode_ec_meta, fan_out, Dest, EC_META_HEADER};
use ais_core::meta::{EcConf, Snode};
use ais_core::Bck;
use ais_storage::{EcMeta, StorageError};
use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// The bucket's EC settings when erasure coding is on.
pub fn conf(t: &Target, bck: &Bck) -> Option<EcConf> {
    t.core
        .bucket_props(bck)
        .ok()
        .map(|p| p.ec)
        .filter(|c| c.enabled)
}

/// Temp files removed when dropped (slices being cut or fetched).
struct TempFiles(Vec<PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// What an object's parts are under `c`, and where they go now:
/// (holder, meta without checksum) per part.
fn plan(
    t: &Target,
    bck: &Bck,
    obj: &str,
    c: &EcConf,
    attrs: &ais_core::meta::ObjAttrs,
) -> ApiResult<Vec<(Snode, EcMeta)>> {
    let replicate = attrs.size as i64 <= c.objsize_limit;
    let n = if replicate {
        c.parity_slices
    } else {
        c.data_slices + c.parity_slices
    } as usize;
    let order: Vec<Snode> = t.core.meta.with_smap(|s| {
        s.map(|s| {
            s.placement(&bck.obj_uname(obj))
                .into_iter()
                .cloned()
                .collect()
        })
        .unwrap_or_default()
    });
    let holders: Vec<Snode> = order
        .into_iter()
        .filter(|n| n.daemon_id != t.core.id)
        .take(n)
        .collect();
    if holders.len() < n {
        return Err(ApiError::unavailable(format!(
            "{}/{obj}: erasure coding {}+{} needs {} targets besides the owner, the cluster has {}; \
             the object is stored but not yet protected",
            bck.cname(),
            c.data_slices,
            c.parity_slices,
            n,
            holders.len()
        )));
    }
    Ok(holders
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            let meta = EcMeta {
                idx: if replicate { 0 } else { i as u32 + 1 },
                data: c.data_slices,
                parity: c.parity_slices,
                shard: ais_storage::SHARD,
                obj_size: attrs.size,
                obj_cksum: attrs.cksum_value.clone(),
                version: attrs.version,
                custom: attrs.custom.clone(),
                part_cksum: if replicate {
                    attrs.cksum_value.clone()
                } else {
                    String::new()
                },
                user_cksum_type: attrs.user_cksum_type.clone(),
                user_cksum_value: attrs.user_cksum_value.clone(),
            };
            (h, meta)
        })
        .collect())
}

async fn send_file(
    t: &Target,
    to: &Snode,
    bck: &Bck,
    obj: &str,
    meta: &EcMeta,
    path: &std::path::Path,
) -> ApiResult<()> {
    let f = tokio::fs::File::open(path).await.map_err(|e| {
        ApiError::internal(format!("{}: open {}: {e}", t.core.name, path.display()))
    })?;
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(f, 1 << 20));
    send_part(t, to, bck, obj, meta, body).await
}

/// Stores one part (its bytes in `body`) on its holder `to`.
async fn send_part(
    t: &Target,
    to: &Snode,
    bck: &Bck,
    obj: &str,
    meta: &EcMeta,
    body: reqwest::Body,
) -> ApiResult<()> {
    t.core
        .rpc
        .ec_put_part(&Dest::from(to), &bck.name, obj, meta, body)
        .await
        .map_err(|e| {
            ApiError::from(e).context(format!(
                "store erasure-coded part {} of {}/{obj} on {}",
                meta.idx,
                bck.cname(),
                to.name()
            ))
        })
}

/// Cuts the parts of a locally stored object and stores each on its holder
/// (all at once); returns when every part is durable. The source is
/// checked against its checksum as it is read: damage is never coded.
pub async fn protect(t: &Target, bck: &Bck, obj: &str) -> ApiResult<()> {
    let Some(c) = conf(t, bck) else {
        return Ok(());
    };
    let err = |e| error::storage(&t.core.name, bck, obj, e);
    let info = t.store.head(bck, obj).await.map_err(err)?;
    let plan = plan(t, bck, obj, &c, &info.attrs)?;
    let path = t.store.obj_path(bck, obj);
    if plan.first().is_some_and(|(_, m)| m.is_replica()) {
        // A replica is the object itself: verify it once, send the file.
        t.verified_source(bck, obj).await?;
        let sends = plan
            .iter()
            .map(|(h, m)| send_file(t, h, bck, obj, m, &path));
        for r in futures::future::join_all(sends).await {
            r?;
        }
        return Ok(());
    }
    if plan.is_empty() {
        return Ok(());
    }
    // Slices stream to their holders as they are cut (a few stripes in
    // flight per holder): no temp files, memory bounded by the channels.
    type Chunk = Result<bytes::Bytes, std::io::Error>;
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..plan.len())
        .map(|_| tokio::sync::mpsc::channel::<Chunk>(4))
        .unzip();
    let a = info.attrs.clone();
    let (d, p) = (c.data_slices as usize, c.parity_slices as usize);
    let encoder = tokio::task::spawn_blocking(move || {
        let res = ais_storage::encode_stream(&path, a.size, &a.cksum_value, d, p, |i, b| {
            txs[i]
                .blocking_send(Ok(bytes::Bytes::from(b)))
                .map_err(|_| std::io::Error::other("holder went away"))
        });
        if let Err(e) = &res {
            // Abort every upload: a holder commits only a complete body.
            for tx in &txs {
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        }
        res
    });
    let sends = plan.iter().zip(rxs).map(|((h, m), rx)| {
        let stream =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
        let body = reqwest::Body::wrap_stream(stream);
        send_part(t, h, bck, obj, m, body)
    });
    let sent = futures::future::join_all(sends).await;
    // The source's own failure (damage) explains the aborted uploads best.
    encoder
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(err)?;
    for r in sent {
        r?;
    }
    Ok(())
}

/// Every part of `bucket/obj` that exists now: this target's and the other
/// targets' (all are asked: placement may have changed since the parts
/// were cut). `None` as the holder is this target.
async fn find_parts(t: &Target, bck: &Bck, obj: &str) -> Vec<(Option<Snode>, EcMeta)> {
    let mut found = Vec::new();
    if let Ok(Some(m)) = t.store.part_meta(bck, obj) {
        found.push((None, m));
    }
    let others = t.other_targets();
    let res = fan_out(&others, Duration::from_secs(10), |d| async move {
        t.core.rpc.ec_part_meta(&d, &bck.name, obj).await
    })
    .await;
    for (n, r) in res {
        if let Ok(Some(m)) = r {
            found.push((Some(n), m));
        }
    }
    found
}

/// Copies one part to a local temp file, checking its size and checksum.
async fn fetch_part(
    t: &Target,
    bck: &Bck,
    obj: &str,
    from: &Option<Snode>,
    want: &EcMeta,
    tmp: &std::path::Path,
) -> ApiResult<()> {
    use tokio::io::AsyncWriteExt;
    let io =
        |e: std::io::Error| ApiError::internal(format!("{}: {}: {e}", t.core.name, tmp.display()));
    let mut f = tokio::fs::File::create(tmp).await.map_err(io)?;
    let mut h = xxhash_rust::xxh64::Xxh64::new(0);
    let mut n = 0u64;
    match from {
        None => {
            let Some((meta, file)) = t
                .store
                .open_part(bck, obj)
                .map_err(|e| error::storage(&t.core.name, bck, obj, e))?
            else {
                return Err(ApiError::internal("local part vanished"));
            };
            if meta != *want {
                return Err(ApiError::internal("local part changed"));
            }
            let mut s = tokio_util::io::ReaderStream::with_capacity(
                tokio::fs::File::from_std(file),
                1 << 20,
            );
            while let Some(c) = s.next().await {
                let c = c.map_err(io)?;
                h.update(&c);
                n += c.len() as u64;
                f.write_all(&c).await.map_err(io)?;
            }
        }
        Some(node) => {
            let Some((meta, resp)) = t
                .core
                .rpc
                .ec_get_part(&Dest::from(node), &bck.name, obj)
                .await?
            else {
                return Err(ApiError::internal(format!(
                    "{} no longer holds the part",
                    node.name()
                )));
            };
            if meta != *want {
                return Err(ApiError::internal(format!(
                    "{}'s part changed",
                    node.name()
                )));
            }
            let mut s = resp.bytes_stream();
            while let Some(c) = s.next().await {
                let c = c.map_err(|e| ApiError::internal(format!("{}: {e}", node.name())))?;
                h.update(&c);
                n += c.len() as u64;
                f.write_all(&c).await.map_err(io)?;
            }
        }
    }
    f.flush().await.map_err(io)?;
    let sum = format!("{:016x}", h.digest());
    if n != want.part_size() || sum != want.part_cksum {
        return Err(ApiError::internal(format!(
            "part {} of {}/{obj} is damaged ({n} bytes, checksum {sum})",
            want.idx,
            bck.cname()
        )));
    }
    Ok(())
}

/// Rebuilds this target's main copy of `bucket/obj` from its parts: the
/// newest version that a healthy replica or enough healthy slices still
/// describe. `Ok(false)`: no part of the object exists anywhere.
pub async fn restore(t: &Target, bck: &Bck, obj: &str) -> ApiResult<bool> {
    if t.recently_deleted(&bck.obj_uname(obj)) {
        // Deleted here while its parts were being removed: not lost.
        return Ok(false);
    }
    // Parts can change under a restore (an owner re-placing them after a
    // map change): one more look before giving up.
    match restore_once(t, bck, obj).await {
        Err(_) => restore_once(t, bck, obj).await,
        r => r,
    }
}

async fn restore_once(t: &Target, bck: &Bck, obj: &str) -> ApiResult<bool> {
    let parts = find_parts(t, bck, obj).await;
    if parts.is_empty() {
        return Ok(false);
    }
    // Newest version first; within it, replicas first, then data slices.
    let mut versions: Vec<(u64, String)> = parts
        .iter()
        .map(|(_, m)| (m.version, m.obj_cksum.clone()))
        .collect();
    versions.sort();
    versions.dedup();
    let mut why = Vec::new();
    for (version, cksum) in versions.into_iter().rev() {
        let mut these: Vec<&(Option<Snode>, EcMeta)> = parts
            .iter()
            .filter(|(_, m)| m.version == version && m.obj_cksum == cksum)
            .collect();
        these.sort_by_key(|(_, m)| if m.is_replica() { 0 } else { m.idx });
        for (from, m) in these.iter().filter(|(_, m)| m.is_replica()) {
            let tmp = t.store.work_file(bck, obj, "restore");
            let guard = TempFiles(vec![tmp.clone()]);
            match fetch_part(t, bck, obj, from, m, &tmp).await {
                Ok(()) => {
                    t.store
                        .restore_from(bck, obj, tmp, m.obj_attrs())
                        .await
                        .map_err(|e| error::storage(&t.core.name, bck, obj, e))?;
                    drop(guard);
                    tracing::warn!(object = %format!("{}/{obj}", bck.cname()), version, "restored from an erasure-coded replica");
                    return Ok(true);
                }
                Err(e) => why.push(e.to_string()),
            }
        }
        let slices: Vec<&&(Option<Snode>, EcMeta)> =
            these.iter().filter(|(_, m)| !m.is_replica()).collect();
        let Some(first) = slices.first().map(|(_, m)| m.clone()) else {
            continue;
        };
        let need = first.data as usize;
        let mut got: Vec<(u32, PathBuf)> = Vec::new();
        let mut temps = TempFiles(Vec::new());
        let mut seen = std::collections::BTreeSet::new();
        for (from, m) in slices {
            if got.len() >= need {
                break;
            }
            if !seen.insert(m.idx) {
                continue;
            }
            let tmp = t.store.work_file(bck, obj, "slice");
            temps.0.push(tmp.clone());
            match fetch_part(t, bck, obj, from, m, &tmp).await {
                Ok(()) => got.push((m.idx, tmp)),
                Err(e) => why.push(e.to_string()),
            }
        }
        if got.len() < need {
            why.push(format!(
                "version {version}: {} of the {need} slices needed are healthy",
                got.len()
            ));
            continue;
        }
        let out = t.store.work_file(bck, obj, "restore");
        temps.0.push(out.clone());
        let (meta, o) = (first.clone(), out.clone());
        tokio::task::spawn_blocking(move || ais_storage::decode_file(&meta, &got, &o))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| error::storage(&t.core.name, bck, obj, e))?;
        t.store
            .restore_from(bck, obj, out, first.obj_attrs())
            .await
            .map_err(|e| error::storage(&t.core.name, bck, obj, e))?;
        tracing::warn!(object = %format!("{}/{obj}", bck.cname()), version, "rebuilt from erasure-coded slices");
        return Ok(true);
    }
    Err(ApiError::internal(format!(
        "{}: {}/{obj} is lost or damaged and cannot be rebuilt from its erasure-coded parts: {}",
        t.core.name,
        bck.cname(),
        why.join("; ")
    )))
}

/// After a read failed with `e`: if the bucket is erasure-coded, this
/// target owns the object and the failure means a missing or damaged main
/// copy, rebuild it. `Ok(true)`: rebuilt (read again); `Ok(false)`: not
/// applicable or nothing to rebuild from.
pub async fn recover(t: &Target, bck: &Bck, obj: &str, e: &StorageError) -> ApiResult<bool> {
    // A remote bucket's object missing here comes from its backend.
    if super::remote::is_remote_bucket(t, bck) {
        return super::remote::recover(t, bck, obj, e).await;
    }
    if !matches!(
        e,
        StorageError::NotFound | StorageError::SizeMismatch { .. } | StorageError::Corrupt { .. }
    ) || conf(t, bck).is_none()
    {
        return Ok(false);
    }
    let owner = t.core.owner(&bck.obj_uname(obj));
    if owner.is_none_or(|o| o.daemon_id != t.core.id) {
        return Ok(false);
    }
    restore(t, bck, obj).await
}

/// The `ec-encode` job's work on one bucket (also run after a rebalance and
/// by scrub): every object owned here gets complete parts of its current
/// version on its current holders (stale parts elsewhere removed); every
/// object owned here that only exists as parts is rebuilt. Counts: objects
/// checked; `repaired`: objects whose parts were (re)written or that were
/// rebuilt.
pub async fn repair_bucket(t: &Arc<Target>, bck: &Bck, job: &TargetJob) -> ApiResult<()> {
    let Some(_) = conf(t, bck) else {
        return Ok(());
    };
    // Every part held anywhere of an object owned here. Memory: one entry
    // per part of this target's objects.
    let mut parts: HashMap<String, Vec<(Option<Snode>, EcMeta)>> = HashMap::new();
    let owned = |name: &str| {
        t.core
            .owner(&bck.obj_uname(name))
            .is_some_and(|o| o.daemon_id == t.core.id)
    };
    let mut after = String::new();
    loop {
        let page = t
            .store
            .list_parts(bck, &after, 10_000)
            .map_err(|e| ApiError::internal(format!("{}: list parts: {e}", t.core.name)))?;
        let Some(last) = page.last().map(|p| p.0.clone()) else {
            break;
        };
        for (n, m) in page {
            if owned(&n) {
                parts.entry(n).or_default().push((None, m));
            }
        }
        after = last;
    }
    for other in t.other_targets() {
        let to = Dest::from(&other);
        let mut after = String::new();
        loop {
            let page = t.core.rpc.ec_list(&to, &bck.name, &after, 10_000).await?;
            let Some(last) = page.last().map(|p| p.0.clone()) else {
                break;
            };
            for (n, m) in page {
                if owned(&n) {
                    parts.entry(n).or_default().push((Some(other.clone()), m));
                }
            }
            after = last;
        }
    }
    // Objects stored here.
    let mut after = String::new();
    loop {
        if job.aborted.load(Ordering::Relaxed) {
            return Ok(());
        }
        let (store, a, name, b) = (
            t.store.clone(),
            after.clone(),
            t.core.name.clone(),
            bck.clone(),
        );
        let page = tokio::task::spawn_blocking(move || {
            ais_storage::list_objects(&store, &b, "", &a, 1000, &Default::default(), &name, None)
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(format!("{}: listing failed: {e}", t.core.name)))?;
        let names: Vec<String> = page.entries.into_iter().map(|e| e.name).collect();
        let Some(last) = names.last().cloned() else {
            break;
        };
        let work = names.into_iter().filter(|n| owned(n)).map(|n| {
            let held = parts.remove(&n).unwrap_or_default();
            async move {
                let r = check_one(t, bck, &n, held).await;
                (n, r)
            }
        });
        let mut s = futures::stream::iter(work).buffer_unordered(4);
        while let Some((n, r)) = s.next().await {
            job.objs.fetch_add(1, Ordering::Relaxed);
            match r {
                Ok(true) => {
                    job.repaired.fetch_add(1, Ordering::Relaxed);
                }
                Ok(false) => {}
                Err(e) => job.record(&format!("{}/{n}", bck.cname()), &e),
            }
        }
        if page.done {
            break;
        }
        after = last;
    }
    // Objects owned here that exist only as parts (this target lost them,
    // or they were written while it was away).
    let missing: Vec<String> = parts.into_keys().collect();
    let mut s = futures::stream::iter(missing.into_iter().map(|n| async move {
        let r = match restore(t, bck, &n).await {
            Ok(true) => check_one(t, bck, &n, find_parts(t, bck, &n).await)
                .await
                .map(|_| true),
            Ok(false) => Ok(false),
            Err(e) => Err(e),
        };
        (n, r)
    }))
    .buffer_unordered(4);
    while let Some((n, r)) = s.next().await {
        job.objs.fetch_add(1, Ordering::Relaxed);
        match r {
            Ok(true) => {
                job.repaired.fetch_add(1, Ordering::Relaxed);
            }
            Ok(false) => {}
            Err(e) => job.record(&format!("{}/{n}", bck.cname()), &e),
        }
    }
    Ok(())
}

/// One object owned here with the parts `held` of it: re-protects it if a
/// current holder lacks its current part, then removes parts that are
/// stale (another version) or on targets that are no longer holders.
/// `Ok(true)`: parts were written.
async fn check_one(
    t: &Target,
    bck: &Bck,
    obj: &str,
    held: Vec<(Option<Snode>, EcMeta)>,
) -> ApiResult<bool> {
    let Some(c) = conf(t, bck) else {
        return Ok(false);
    };
    let info = t
        .store
        .head(bck, obj)
        .await
        .map_err(|e| error::storage(&t.core.name, bck, obj, e))?;
    let want = plan(t, bck, obj, &c, &info.attrs)?;
    let complete = want.iter().all(|(h, w)| {
        held.iter().any(|(hh, m)| {
            hh.as_ref().is_some_and(|x| x.daemon_id == h.daemon_id)
                && m.idx == w.idx
                && m.version == w.version
                && m.obj_cksum == w.obj_cksum
                && (m.data, m.parity) == (w.data, w.parity)
        })
    });
    if !complete {
        protect(t, bck, obj).await?;
    }
    // A current holder's part is current now (`protect` just replaced it
    // if it was not); parts anywhere else are stale.
    for (h, _) in &held {
        let holder = h
            .as_ref()
            .is_some_and(|h| want.iter().any(|(w, _)| w.daemon_id == h.daemon_id));
        if holder {
            continue;
        }
        match h {
            None => {
                t.store.delete_part(bck, obj);
            }
            Some(n) => {
                let _ = t
                    .core
                    .rpc
                    .ec_delete_part(&Dest::from(n), &bck.name, obj)
                    .await;
            }
        }
    }
    Ok(!complete)
}

/// Every erasure-coded bucket (after a rebalance).
pub async fn repair_all(t: &Arc<Target>, job: &TargetJob) {
    let buckets: Vec<String> = t.core.meta.with_bmd(|b| {
        b.buckets
            .iter()
            .filter(|(_, p)| p.ec.enabled)
            .map(|(n, _)| n.clone())
            .collect()
    });
    for b in buckets {
        let bck = t.core.bck(b);
        if let Err(e) = repair_bucket(t, &bck, job).await {
            job.record(&format!("{} (erasure-coded parts)", bck.cname()), &e);
        }
    }
}

/// `/v1/internal/ec/B/O` (PUT, GET, HEAD, DELETE one part) and
/// `/v1/internal/ec/B?after=&limit=` (GET: list parts held here).
pub async fn internal(t: &Target, ctx: &Ctx, bucket: &str, obj: &str, body: Body) -> Res {
    if obj.is_empty() {
        ctx.expect_method(&[Method::GET])?;
        let bck = ctx.bck(bucket)?;
        let after = ctx.query.get("after").unwrap_or("").to_string();
        let limit: usize = ctx
            .query
            .get("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(1000);
        let (store, b) = (t.store.clone(), bck.clone());
        let page = tokio::task::spawn_blocking(move || store.list_parts(&b, &after, limit))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| ApiError::internal(format!("{}: list parts: {e}", t.core.name)))?;
        return json_ok(&page);
    }
    let (bck, obj) = ctx.bck_obj(bucket, obj)?;
    let serr = |e| error::storage(&t.core.name, &bck, &obj, e);
    let with_meta = |mut r: Response, m: &EcMeta| {
        if let Ok(v) = HeaderValue::from_str(&encode_ec_meta(m)) {
            r.headers_mut().insert(EC_META_HEADER, v);
        }
        r
    };
    let gone = || {
        ApiError::NotFound(format!(
            "{}: no erasure-coded part of {}/{obj}",
            t.core.name,
            bck.cname()
        ))
    };
    match ctx.method {
        Method::PUT => {
            let meta = decode_ec_meta(&ctx.headers).ok_or_else(|| {
                ApiError::bad_request(format!("missing or malformed {EC_META_HEADER} header"))
            })?;
            let mut w = t.store.begin_part(&bck, &obj).await.map_err(serr)?;
            let mut s = body.into_data_stream();
            while let Some(c) = s.next().await {
                let c = c.map_err(|e| {
                    ApiError::bad_request(format!("part of {}/{obj}: body: {e}", bck.cname()))
                })?;
                w.write(&c).await.map_err(serr)?;
            }
            w.commit(meta).await.map_err(serr)?;
            Ok(empty(StatusCode::OK))
        }
        Method::HEAD => match t.store.part_meta(&bck, &obj).map_err(serr)? {
            Some(m) => Ok(with_meta(empty(StatusCode::OK), &m)),
            None => Err(gone()),
        },
        Method::GET => match t.store.open_part(&bck, &obj).map_err(serr)? {
            Some((m, f)) => {
                let s = tokio_util::io::ReaderStream::with_capacity(
                    tokio::fs::File::from_std(f),
                    1 << 20,
                );
                let mut r = Response::new(Body::from_stream(s));
                if let Ok(v) = HeaderValue::from_str(&m.part_size().to_string()) {
                    r.headers_mut()
                        .insert(axum::http::header::CONTENT_LENGTH, v);
                }
                Ok(with_meta(r, &m))
            }
            None => Err(gone()),
        },
        Method::DELETE => {
            if t.store.delete_part(&bck, &obj) {
                Ok(empty(StatusCode::OK))
            } else {
                Err(gone())
            }
        }
        _ => Err(ctx.not_allowed()),
    }
}
