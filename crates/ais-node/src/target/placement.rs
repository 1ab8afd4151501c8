//! Where a write may land: every local commit of an object first checks,
//! under the cluster map it will be judged by, that this target owns the
//! name — else the received bytes go on to the owner and nothing stays
//! here. A rebalance for map version N walks only after every commit that
//! checked an older map is done, so no object can be committed on a
//! non-owner behind a rebalance's walk (which would then report success
//! with the object misplaced).
//!
//! Why not hand the object over after committing it: deleting the local
//! copy afterwards raced the rebalance going the other way (stop of a
//! maintenance: the owner found our copy, deleted its own, then we deleted
//! ours). Deciding before the commit leaves nothing to delete.

use super::Target;
use crate::error::{ApiError, ApiResult};
use crate::rpc::Dest;
use ais_core::meta::{ObjAttrs, Snode};
use ais_core::Bck;
use axum::http::StatusCode;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Commits in progress here, by the map version their owner check used.
#[derive(Default)]
pub struct Placement {
    inflight: Arc<Mutex<BTreeMap<u64, usize>>>,
}

/// A commit admitted under map version `ver`; dropped once it is done.
pub struct CommitGuard {
    inflight: Arc<Mutex<BTreeMap<u64, usize>>>,
    ver: u64,
}

impl Drop for CommitGuard {
    fn drop(&mut self) {
        if let Ok(mut m) = self.inflight.lock() {
            if let Some(n) = m.get_mut(&self.ver) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.ver);
                }
            }
        }
    }
}

/// The answer of [`Target::admit_commit`].
pub enum Admit {
    /// This target owns the name: commit, holding the guard until done.
    Here(CommitGuard),
    /// Another target owns it under the current map.
    Owner(Box<Snode>, u64),
}

impl Placement {
    /// Waits until no commit admitted under a map older than `ver` is in
    /// progress (or `stop` says to give up).
    pub async fn settled(&self, ver: u64, stop: impl Fn() -> bool) {
        loop {
            let old = self
                .inflight
                .lock()
                .map(|m| m.range(..ver).next().is_some())
                .unwrap_or(false);
            if !old || stop() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Target {
    /// Whether `bck/obj` may be committed here now. The map is read and
    /// the commit registered in one step, so a rebalance that starts after
    /// a newer map was installed waits for exactly the commits that judged
    /// by an older one ([`Placement::settled`]).
    pub fn admit_commit(&self, bck: &Bck, obj: &str) -> Admit {
        let uname = bck.obj_uname(obj);
        let Ok(mut m) = self.placement.inflight.lock() else {
            // A poisoned lock: nothing to wait for; judge by the map.
            return match self.core.owner(&uname) {
                Some(o) if o.daemon_id != self.core.id => Admit::Owner(Box::new(o), 0),
                _ => Admit::Here(CommitGuard {
                    inflight: self.placement.inflight.clone(),
                    ver: u64::MAX,
                }),
            };
        };
        let (ver, owner) = self.core.meta.with_smap(|s| match s {
            Some(s) => (
                s.version,
                s.owner(&uname)
                    .filter(|o| o.daemon_id != self.core.id)
                    .cloned(),
            ),
            None => (0, None),
        });
        if let Some(o) = owner {
            return Admit::Owner(Box::new(o), ver);
        }
        *m.entry(ver).or_default() += 1;
        Admit::Here(CommitGuard {
            inflight: self.placement.inflight.clone(),
            ver,
        })
    }

    /// The error for a write that was sent here as its owner (a move, a
    /// forward, a redirect) while this target's map gives it to another:
    /// the maps are changing; the sender retries.
    pub fn not_owner(&self, bck: &Bck, obj: &str, owner: &Snode, ver: u64) -> ApiError {
        ApiError::unavailable(format!(
            "{}: {}/{obj} belongs to {} under this target's cluster map (v{ver}); \
             the map is changing, retry shortly",
            self.core.name,
            bck.cname(),
            owner.name()
        ))
    }

    /// Commits a cached copy of a remote bucket's object (the backend holds
    /// the object) if this target owns the name now; else nothing is kept
    /// here (`Ok(None)`): a copy on a non-owner would be left behind.
    pub async fn commit_cached(
        &self,
        bck: &Bck,
        obj: &str,
        w: ais_storage::PutWriter,
        custom: BTreeMap<String, String>,
    ) -> Result<Option<ObjAttrs>, ais_storage::StorageError> {
        match self.admit_commit(bck, obj) {
            Admit::Here(g) => {
                let attrs = w.commit(custom).await?;
                drop(g);
                Ok(Some(attrs))
            }
            Admit::Owner(o, _) => {
                tracing::debug!(obj = %format!("{}/{obj}", bck.cname()), owner = %o.name(),
                    "not cached here: the cluster map gave the name to another target");
                Ok(None)
            }
        }
    }

    /// Commits a client's write of `bck/obj` here if this target owns the
    /// name, else sends the received bytes to the owner (nothing stays
    /// here). `forward`: whether sending on is allowed (a write that was
    /// itself sent here as to the owner is refused instead: 503).
    /// `Ok(Err(attrs))`: forwarded, with the owner's attributes when it
    /// could tell them.
    pub async fn commit_or_forward(
        &self,
        bck: &Bck,
        obj: &str,
        mut w: ais_storage::PutWriter,
        custom: BTreeMap<String, String>,
        forward: bool,
    ) -> ApiResult<Result<ObjAttrs, Option<ObjAttrs>>> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let hop_deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            let (owner, ver) = match self.admit_commit(bck, obj) {
                Admit::Here(g) => {
                    let attrs = w
                        .commit(custom)
                        .await
                        .map_err(|e| crate::error::storage(&self.core.name, bck, obj, e))?;
                    drop(g);
                    self.mark_deleted(&bck.obj_uname(obj), false);
                    return Ok(Ok(attrs));
                }
                Admit::Owner(o, v) => (o, v),
            };
            if !forward {
                // Sent here as to the owner by a node whose map says so:
                // this one's may be a push behind (or ahead); a moment for
                // the maps to agree before the sender is told to retry.
                if std::time::Instant::now() < hop_deadline {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                return Err(self.not_owner(bck, obj, &owner, ver));
            }
            w.park()
                .await
                .map_err(|e| crate::error::storage(&self.core.name, bck, obj, e))?;
            let body = match w.spilled() {
                Some(p) if w.written() > 0 => {
                    let f = tokio::fs::File::open(p).await.map_err(|e| {
                        ApiError::internal(format!("{}: {}: {e}", self.core.name, p.display()))
                    })?;
                    reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
                        f,
                        1 << 20,
                    ))
                }
                _ => reqwest::Body::from(Vec::new()),
            };
            let to = Dest::from(&*owner);
            match self
                .core
                .rpc
                .put_object(&to, &bck.name, obj, body, &custom)
                .await
            {
                Ok(()) => {
                    tracing::info!(obj = %format!("{}/{obj}", bck.cname()), owner = %owner.name(),
                        "the cluster map gave the name to another target while its body arrived: sent there");
                    let attrs = self
                        .core
                        .rpc
                        .obj_attrs(&to, &bck.name, obj)
                        .await
                        .ok()
                        .flatten();
                    return Ok(Err(attrs));
                }
                Err(e)
                    if (e.is_unreachable()
                        || e.status() == Some(StatusCode::SERVICE_UNAVAILABLE))
                        && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => {
                    return Err(ApiError::unavailable(format!(
                        "{}: {}/{obj}: the cluster map gave the name to {} while its body \
                         arrived, and it could not be sent there ({e}); nothing was stored, \
                         retry the PUT",
                        self.core.name,
                        bck.cname(),
                        owner.name()
                    )))
                }
            }
        }
    }
}
