//! The storage-target role: objects on local mountpaths, the internal
//! endpoints other nodes call, ETL runtimes next to the data, and the
//! target's share of offline jobs. Also the "stale map" rules: a request for
//! an object this target does not own is re-redirected to the owner once,
//! and a GET that misses locally looks on the other targets before
//! answering 404 — or 503 while a target that may hold it is away.

pub mod append;
pub mod archive;
pub mod batch;
pub mod download;
pub mod dsort;
pub mod ec;
pub mod etl;
pub mod internal;
pub mod jobs;
pub mod lifecycle;
pub mod lru;
pub mod nbi;
pub mod objects;
pub mod placement;
pub mod promote;
pub mod remote;
pub mod resilver;
pub mod s3;
pub mod stats;

use crate::error::{ApiError, ApiResult};
use crate::http::{redirect, Ctx, Res};
use crate::rpc::{fan_out, CONTROL_TIMEOUT};
use crate::state::{Member, NodeCore};
use ais_core::meta::{MetaSync, Snode};
use ais_core::Bck;
use ais_etl::EtlManager;
use ais_storage::Store;
use axum::http::StatusCode;
use axum::response::Response;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A read's failure before it becomes an API error (so a missing or
/// damaged copy can still be rebuilt).
enum RawErr {
    Storage(ais_storage::StorageError),
    Api(ApiError),
}

impl RawErr {
    fn api(self, t: &Target, bck: &Bck, obj: &str) -> ApiError {
        match self {
            RawErr::Storage(e) => crate::error::storage(&t.core.name, bck, obj, e),
            RawErr::Api(e) => e,
        }
    }
}

/// How long a delete keeps an object from being rebuilt from its parts.
const DELETED_TTL: Duration = Duration::from_secs(600);

/// Whether reads of a bucket check each object against its stored checksum
/// before serving it: yes by default (a cached verification keyed by file
/// identity makes repeated reads cost a `stat`: `ais_storage::Store::verify`);
/// `AIS_VERIFY_ON_READ=0` turns it off node-wide (`validate_warm_get` keeps
/// it on for its bucket), and a bucket with `checksum.type` `none` opts out.
pub fn verify_reads(props: &ais_core::meta::BucketProps) -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    props.checksum.kind != "none"
        && (props.checksum.validate_warm_get
            || *ON.get_or_init(|| {
                !std::env::var("AIS_VERIFY_ON_READ").is_ok_and(|v| v == "0" || v == "false")
            }))
}

pub struct Target {
    pub core: NodeCore,
    pub store: Store,
    pub etl: Arc<EtlManager>,
    pub jobs: jobs::Registry,
    /// dSort jobs ([`dsort`]).
    pub dsorts: dsort::Dsorts,
    /// Targets that left the cluster map and have not come back (id → name):
    /// an object missing here may be on one of them, so a miss is "retry
    /// later" (503), not "does not exist" (404).
    departed: Mutex<BTreeMap<String, String>>,
    /// Objects deleted here lately (uname → when): a rebuild from
    /// erasure-coded parts racing with the delete must not bring them back.
    deleted: Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// The map before the last change of active targets: an object this
    /// target owns but lacks is most likely on its owner under that map
    /// (not moved yet), asked first.
    prev_smap: Mutex<Option<Arc<ais_core::meta::Smap>>>,
    /// Open object appends ([`append`]).
    pub appends: append::Appends,
    /// Clients' writes in progress per bucket ([`Target::check_writable`]):
    /// a bucket rename's move waits for them before it walks the bucket.
    writes: Arc<Mutex<std::collections::HashMap<String, usize>>>,
    /// Recent GETs of cached remote objects, for LRU eviction ([`lru`]).
    pub lru: lru::Access,
    /// Commits in progress by the map they were judged by ([`placement`]).
    pub placement: placement::Placement,
}

/// A client's write into a bucket, counted while it runs.
pub struct WriteGuard {
    writes: Arc<Mutex<std::collections::HashMap<String, usize>>>,
    bucket: String,
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        if let Ok(mut m) = self.writes.lock() {
            if let Some(n) = m.get_mut(&self.bucket) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.bucket);
                }
            }
        }
    }
}

impl Target {
    pub fn new(core: NodeCore, store: Store, etl: Arc<EtlManager>) -> Self {
        Target {
            core,
            store,
            etl,
            jobs: Default::default(),
            dsorts: Default::default(),
            departed: Mutex::new(BTreeMap::new()),
            deleted: Mutex::new(std::collections::HashMap::new()),
            prev_smap: Mutex::new(None),
            appends: Default::default(),
            writes: Default::default(),
            lru: Default::default(),
            placement: Default::default(),
        }
    }

    /// Clients' writes into `bucket` in progress here.
    pub fn writes_in(&self, bucket: &str) -> usize {
        self.writes
            .lock()
            .map(|m| m.get(bucket).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Marks `uname` deleted (a later PUT of it clears the mark).
    pub fn mark_deleted(&self, uname: &str, deleted: bool) {
        if let Ok(mut m) = self.deleted.lock() {
            if deleted {
                if m.len() > 100_000 {
                    m.retain(|_, t| t.elapsed() < DELETED_TTL);
                }
                m.insert(uname.to_string(), std::time::Instant::now());
            } else {
                m.remove(uname);
            }
        }
    }

    /// Whether `uname` was deleted here within [`DELETED_TTL`].
    pub fn recently_deleted(&self, uname: &str) -> bool {
        self.deleted
            .lock()
            .ok()
            .and_then(|m| m.get(uname).map(|t| t.elapsed() < DELETED_TTL))
            .unwrap_or(false)
    }

    pub(crate) fn departed(&self) -> Vec<String> {
        self.departed
            .lock()
            .map(|d| d.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The owner of an object if it is not this target (`None`: we own it,
    /// or the request already hopped once and must be served here).
    /// A client's write (PUT, append, delete, custom properties) into
    /// `bck`: refused while the bucket is being renamed (its objects are
    /// being copied to the new name; a write now would be lost with it).
    /// Hold the guard until the write is done (committed or failed).
    pub fn check_writable(&self, bck: &Bck) -> ApiResult<WriteGuard> {
        // Counted first, then checked: a rename that marks the bucket after
        // this check waits for this write (`writes_in`).
        let guard = {
            let mut m = self
                .writes
                .lock()
                .map_err(|_| ApiError::internal("write registry poisoned"))?;
            *m.entry(bck.name.clone()).or_insert(0) += 1;
            WriteGuard {
                writes: self.writes.clone(),
                bucket: bck.name.clone(),
            }
        };
        match self.core.bucket_props(bck) {
            Ok(p) if !p.renaming.is_empty() => Err(ApiError::unavailable(format!(
                "{} is being renamed to ais://{}: it takes no writes until the rename is \
                 over (then write to the new name)",
                bck.cname(),
                p.renaming
            ))),
            _ => Ok(guard),
        }
    }

    pub fn foreign_owner(&self, ctx: &Ctx, bck: &Bck, obj: &str) -> Option<String> {
        if ctx.query.get("ais_hop").is_some() {
            return None;
        }
        self.core
            .owner_with(&bck.obj_uname(obj), |o| {
                (o.daemon_id != self.core.id).then(|| o.url().to_string())
            })
            .flatten()
    }

    pub fn other_targets(&self) -> Vec<Snode> {
        self.core
            .targets()
            .into_iter()
            .filter(|t| t.daemon_id != self.core.id)
            .collect()
    }

    /// Every other target in the map that may hold objects: the active ones
    /// and those in maintenance (until a rebalance has moved their objects).
    pub fn holders(&self) -> Vec<Snode> {
        self.core.meta.with_smap(|s| {
            s.map(|s| {
                s.tmap
                    .values()
                    .filter(|t| t.daemon_id != self.core.id)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
        })
    }

    pub fn hop_redirect(&self, ctx: &Ctx, url: &str) -> Response {
        redirect(
            ctx,
            url,
            StatusCode::TEMPORARY_REDIRECT,
            &self.core.id,
            "&ais_hop=1",
        )
    }

    /// Asks the other targets whether they hold the object (placement
    /// changed since it was written). `Ok(Some)`: one does; `Ok(None)`: all
    /// answered no; `Err`: none has it but some could not be asked.
    async fn find_on_neighbors(&self, bck: &Bck, obj: &str) -> ApiResult<Option<Snode>> {
        let others = self.holders();
        // Its owner under the previous map first: one question, not all.
        let likely = self
            .prev_smap
            .lock()
            .ok()
            .and_then(|m| {
                m.as_ref()
                    .and_then(|m| m.owner(&bck.obj_uname(obj)).map(|o| o.daemon_id.clone()))
            })
            .and_then(|id| others.iter().find(|t| t.daemon_id == id).cloned());
        if let Some(t) = likely {
            // Briefly: a hung target must not hold the GET up before the
            // fan-out below (which has its own limit) asks everyone.
            let dest = (&t).into();
            let ask = self.core.rpc.obj_attrs(&dest, &bck.name, obj);
            if let Ok(Ok(Some(_))) = tokio::time::timeout(Duration::from_secs(1), ask).await {
                return Ok(Some(t));
            }
        }
        let res = fan_out(&others, Duration::from_secs(5), |t| async move {
            self.core.rpc.obj_attrs(&t, &bck.name, obj).await
        })
        .await;
        let mut unreachable = Vec::new();
        for (t, r) in res {
            match r {
                Ok(Some(_)) => return Ok(Some(t)),
                Ok(None) => {}
                // One in maintenance that cannot be asked (shut down) is no
                // answer either way: its objects were moved before it went.
                Err(_)
                    if t.flags
                        & (ais_core::meta::NODE_FLAG_MAINTENANCE
                            | ais_core::meta::NODE_FLAG_DECOMMISSION)
                        != 0 => {}
                Err(e) => unreachable.push(e.to_string()),
            }
        }
        if unreachable.is_empty() {
            Ok(None)
        } else {
            Err(ApiError::unavailable(format!(
                "{}/{obj} is not on {} and some targets could not be asked ({}); retry shortly",
                bck.cname(),
                self.core.name,
                unreachable.join("; ")
            )))
        }
    }

    /// The object is not on this target: send the client to its owner (stale
    /// map), else to a target that still holds it (placement changed since it
    /// was written), else 404 — or 503 while a target that may hold it is
    /// away. A request that already hopped is answered here.
    pub async fn not_here(&self, ctx: &Ctx, bck: &Bck, obj: &str, foreign: Option<String>) -> Res {
        if let Some(owner) = foreign {
            return Ok(self.hop_redirect(ctx, &owner));
        }
        if ctx.query.get("ais_hop").is_some() && ctx.query.get("ais_hop2").is_none() {
            // Sent here as a holder, but it moved on (a rebalance): one last
            // hop to the owner.
            if let Some(o) = self
                .core
                .owner(&bck.obj_uname(obj))
                .filter(|o| o.daemon_id != self.core.id)
            {
                return Ok(redirect(
                    ctx,
                    o.url(),
                    StatusCode::TEMPORARY_REDIRECT,
                    &self.core.id,
                    "&ais_hop2=1",
                ));
            }
        }
        if ctx.query.get("ais_hop").is_none() {
            if let Some(t) = self.find_on_neighbors(bck, obj).await? {
                return Ok(self.hop_redirect(ctx, t.url()));
            }
            // It may have arrived meanwhile (a rebalance moved it here
            // while the neighbours were asked).
            if self.store.head(bck, obj).await.is_ok() {
                return Ok(self.hop_redirect(ctx, self.core.snode.url()));
            }
            let away = self.departed();
            if !away.is_empty() {
                return Err(ApiError::unavailable(format!(
                    "{}: {}/{obj} is not here and may be on target(s) {} that left the cluster; retry when they are back",
                    self.core.name,
                    bck.cname(),
                    away.join(", ")
                )));
            }
        }
        Err(ApiError::object_not_found(&self.core.name, bck, obj))
    }

    /// An object about to be moved elsewhere (ETL input, copy, transform):
    /// its size and checksum are verified whatever the bucket's
    /// `validate_warm_get` says, so damage is reported, never copied under
    /// a fresh checksum.
    pub async fn verified_source(&self, bck: &Bck, obj: &str) -> ApiResult<ais_storage::ObjInfo> {
        let err = |e| crate::error::storage(&self.core.name, bck, obj, e);
        let mut rebuilt = false;
        loop {
            let res = match self.store.head(bck, obj).await {
                Ok(info) => self.store.verify(bck, obj, &info.attrs).await.map(|_| info),
                Err(e) => Err(e),
            };
            match res {
                // Missing or damaged: rebuilt once from erasure-coded parts
                // if the bucket has them, then checked again.
                Err(e) if !rebuilt && ec::recover(self, bck, obj, &e).await? => rebuilt = true,
                r => return r.map_err(err),
            }
        }
    }

    /// A local object's bytes, read once and checked against the stored
    /// size and checksum (a damaged copy is restored from a mirror when one
    /// is healthy, else the damage is the error).
    pub async fn verified_bytes(&self, bck: &Bck, obj: &str) -> ApiResult<bytes::Bytes> {
        let err = |e| crate::error::storage(&self.core.name, bck, obj, e);
        let (attrs, data) = match self.read_whole(bck, obj).await {
            Err(RawErr::Storage(e)) if ec::recover(self, bck, obj, &e).await? => self
                .read_whole(bck, obj)
                .await
                .map_err(|e| e.api(self, bck, obj))?,
            r => r.map_err(|e| e.api(self, bck, obj))?,
        };
        let stored = &attrs.cksum_value;
        if attrs.cksum_type != ais_core::meta::CKSUM_XXHASH
            || stored.is_empty()
            || *stored == format!("{:016x}", xxhash_rust::xxh64::xxh64(&data, 0))
        {
            return Ok(data);
        }
        // Damaged (or replaced while read): `verify` re-checks the file and
        // heals it from a mirror if it can, else rebuild from erasure-coded
        // parts if the bucket has them, else report the damage.
        match self.store.verify(bck, obj, &attrs).await {
            Err(e) if ec::recover(self, bck, obj, &e).await? => {}
            r => {
                r.map_err(err)?;
            }
        }
        let (attrs, data) = self
            .read_whole(bck, obj)
            .await
            .map_err(|e| e.api(self, bck, obj))?;
        if attrs.cksum_type == ais_core::meta::CKSUM_XXHASH
            && !attrs.cksum_value.is_empty()
            && attrs.cksum_value != format!("{:016x}", xxhash_rust::xxh64::xxh64(&data, 0))
        {
            return Err(err(ais_storage::StorageError::Corrupt {
                stored: attrs.cksum_value.clone(),
                computed: format!("{:016x}", xxhash_rust::xxh64::xxh64(&data, 0)),
            }));
        }
        Ok(data)
    }

    async fn read_whole(
        &self,
        bck: &Bck,
        obj: &str,
    ) -> Result<(ais_core::meta::ObjAttrs, bytes::Bytes), RawErr> {
        let r = self
            .store
            .open_obj(bck, obj)
            .await
            .map_err(RawErr::Storage)?;
        let data = match r.body {
            ais_storage::ObjBody::Small(b) => bytes::Bytes::from(b),
            ais_storage::ObjBody::Mapped(b) => b,
            ais_storage::ObjBody::File(_) => {
                let path = r.path.clone();
                bytes::Bytes::from(tokio::fs::read(&path).await.map_err(|e| {
                    RawErr::Api(ApiError::internal(format!(
                        "{}: read {}: {e}",
                        self.core.name,
                        path.display()
                    )))
                })?)
            }
        };
        if data.len() as u64 != r.info.attrs.size {
            return Err(RawErr::Storage(ais_storage::StorageError::SizeMismatch {
                stored: r.info.attrs.size,
                actual: data.len() as u64,
            }));
        }
        Ok((r.info.attrs, data))
    }

    /// Transforms one local object with `rt`, its input verified first and
    /// read once: a worker pool (or an hpush/ws server) gets the verified
    /// bytes; an hpull server, which reads its input itself, a verified
    /// object.
    /// Outer error: the object; inner: the transform.
    pub async fn transform_verified(
        &self,
        rt: &ais_etl::EtlRuntime,
        bck: &Bck,
        obj: &str,
        args: &str,
    ) -> ApiResult<Result<bytes::Bytes, ais_etl::EtlError>> {
        let cname = format!("{}/{obj}", bck.cname());
        if rt.takes_bytes() {
            let data = self.verified_bytes(bck, obj).await?;
            return Ok(rt.transform_bytes(&cname, &data, args).await);
        }
        let info = self.verified_source(bck, obj).await?;
        let path = self.store.obj_path(bck, obj);
        Ok(rt
            .transform(&cname, &path.to_string_lossy(), info.attrs.size, args)
            .await)
    }

    fn destroy_buckets(&self, old: &ais_core::meta::Bmd) {
        let new = self.core.meta.bmd();
        for name in old.buckets.keys().filter(|b| !new.buckets.contains_key(*b)) {
            let bck = self.core.bck(name.clone());
            nbi::bucket_destroyed(self, name);
            if let Err(e) = self.store.destroy_bucket(&bck) {
                tracing::error!(bucket = %bck.cname(), error = %e, "failed to remove destroyed bucket");
            }
        }
    }

    /// Remembers `old` when the active targets changed (a new version with
    /// the same targets, e.g. a changed address, keeps the earlier one).
    fn keep_prev_smap(&self, old: Option<&ais_core::meta::Smap>) {
        let Some(old) = old else {
            return;
        };
        let ids = |s: &ais_core::meta::Smap| {
            s.active_targets()
                .map(|t| t.daemon_id.clone())
                .collect::<std::collections::BTreeSet<_>>()
        };
        let changed = self
            .core
            .meta
            .with_smap(|new| new.is_some_and(|new| ids(new) != ids(old)));
        if changed {
            if let Ok(mut p) = self.prev_smap.lock() {
                *p = Some(Arc::new(old.clone()));
            }
        }
    }

    fn track_departed(&self, old: Option<&ais_core::meta::Smap>) {
        let Some(new) = self.core.meta.smap() else {
            return;
        };
        let Ok(mut d) = self.departed.lock() else {
            return;
        };
        if let Some(old) = old {
            for (id, t) in &old.tmap {
                if new.tmap.contains_key(id) {
                    continue;
                }
                // Decommissioned: removed only after the rebalance moved all
                // it held (or on purpose without one): it holds nothing the
                // cluster is still waiting for, and a miss is a 404.
                if t.flags & ais_core::meta::NODE_FLAG_DECOMMISSION != 0 {
                    tracing::info!(target = %t.name(), "decommissioned target left the cluster map");
                    continue;
                }
                tracing::warn!(target = %t.name(), "target left the cluster map");
                d.insert(id.clone(), t.name());
            }
        }
        d.retain(|id, _| !new.tmap.contains_key(id));
    }
}

impl Member for Target {
    fn core(&self) -> &NodeCore {
        &self.core
    }

    fn apply_sync(self: &Arc<Self>, sync: &MetaSync) -> ApiResult<()> {
        let applied = self.core.apply_meta(sync)?;
        if let Some(old) = &applied.smap {
            self.track_departed(old.as_ref());
            self.keep_prev_smap(old.as_ref());
        }
        if applied.etlmd.is_some() {
            etl::reconcile(self, self.core.meta.etlmd());
        }
        if let Some(old) = &applied.bmd {
            self.destroy_buckets(old);
            // Pending S3 multipart uploads of a destroyed bucket go too.
            let new = self.core.meta.bmd();
            if old.buckets.keys().any(|b| !new.buckets.contains_key(b)) {
                let t = self.clone();
                tokio::spawn(async move {
                    s3::sweep_uploads(&t).await;
                });
            }
        }
        Ok(())
    }

    fn joined(self: &Arc<Self>) {
        // (Re)start the ETLs this node should run, e.g. after a restart.
        etl::reconcile(self, self.core.meta.etlmd());
        s3::start_sweeper(self);
    }
}

/// Fans a local-copy delete out to the other targets; true if any had one.
/// Targets that could not be asked are asked again (a few times): a copy or
/// an erasure-coded part left behind would bring the object back. `Err`
/// names the targets still unreachable.
pub async fn delete_elsewhere(t: &Target, bck: &Bck, obj: &str) -> Result<bool, Vec<String>> {
    let mut todo = t.holders();
    let mut any = false;
    for attempt in 0..3u64 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
        }
        let res = fan_out(&todo, CONTROL_TIMEOUT, |d| async move {
            t.core.rpc.delete_local(&d, &bck.name, obj).await
        })
        .await;
        todo = Vec::new();
        for (n, r) in res {
            match r {
                Ok(had) => any |= had,
                Err(e) => {
                    tracing::warn!(target = %n.name(), error = %e, "delete of a copy elsewhere failed");
                    todo.push(n);
                }
            }
        }
        if todo.is_empty() {
            return Ok(any);
        }
    }
    Err(todo.iter().map(|n| n.name()).collect())
}
