//! The replicated control plane: every proxy is a member of one Raft group
//! (the `openraft` crate), whose log carries the cluster's metadata
//! changes (cluster map, BMD, EtlMD, configuration, and the proxies' own
//! documents: AuthN database, job registry) and whose state machine is
//! each proxy's [`MetaStore`]. The leader is the primary.
//!
//! - A change is acknowledged only once a majority of proxies has it in
//!   their log ([`ControlPlane::write`], the [`Replicator`] a [`Primary`]
//!   commits through). A primary that lost its majority (frozen, cut off)
//!   cannot commit, whatever it believes: that is the fence.
//! - The log and the vote are kept in `<dir>`: an append-only JSON-lines
//!   file (rewritten whole only to drop a suffix or a prefix), and the
//!   state machine's position next to it. Entries carry whole metadata
//!   documents, so applying one twice changes nothing.
//! - Messages between proxies go through a [`RaftTransport`] (the node's
//!   intra-cluster client), as JSON.
//!
//! [`Primary`]: crate::Primary

use crate::{Change, ClusterError, Doc, MetaStore};
use ais_core::meta::{MetaSync, Snode};
use futures::future::BoxFuture;
use openraft::error::{
    ClientWriteError, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    ChangeMembers, Entry, EntryPayload, LogId, LogState, RaftLogReader, RaftSnapshotBuilder,
    ServerState, Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{BufRead, Cursor, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A proxy as a member of the Raft group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftNode {
    pub daemon_id: String,
    pub url: String,
}

impl fmt::Display for RaftNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p[{}]@{}", self.daemon_id, self.url)
    }
}

impl From<&Snode> for RaftNode {
    fn from(n: &Snode) -> Self {
        RaftNode {
            daemon_id: n.daemon_id.clone(),
            url: n.url().to_string(),
        }
    }
}

openraft::declare_raft_types!(
    /// The control plane's Raft types: entries are metadata changes.
    pub TypeConfig:
        D = Change,
        R = bool,
        NodeId = u64,
        Node = RaftNode,
        Entry = Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
);

type Raft = openraft::Raft<TypeConfig>;
pub type NodeId = u64;
type SErr = StorageError<NodeId>;

/// A proxy's Raft id: the digest of its daemon id (the same the cluster
/// map's `id_digest` holds).
pub fn node_id(daemon_id: &str) -> NodeId {
    ais_core::hrw::digest(daemon_id)
}

/// How a change reaches the cluster's record. The primary commits through
/// it; [`ControlPlane`] is the replicated one, [`LocalLog`] the single-node
/// one (unit tests).
pub trait Replicator: Send + Sync + 'static {
    /// Returns once `change` is committed (and applied here).
    fn write(&self, change: Change) -> BoxFuture<'_, Result<(), ClusterError>>;
    /// Makes `node` (a proxy that joined) a voting member.
    fn add_voter<'a>(&'a self, node: &'a Snode) -> BoxFuture<'a, Result<(), ClusterError>>;
    /// Takes proxy `daemon_id` out of the group for good (decommissioned):
    /// it no longer counts in any majority.
    fn remove_member<'a>(&'a self, daemon_id: &'a str) -> BoxFuture<'a, Result<(), ClusterError>>;
    /// The voting members, by daemon id (empty: not replicated).
    fn voters(&self) -> Vec<String> {
        Vec::new()
    }
    /// Waits until this node has applied everything committed before now;
    /// fails if it is not the leader.
    fn catch_up(&self) -> BoxFuture<'_, Result<(), ClusterError>>;
    /// Whether every proxy gets committed changes through this log (then
    /// the primary pushes to targets only: a frozen proxy must not hold a
    /// change up for a push timeout).
    fn reaches_proxies(&self) -> bool {
        false
    }
}

/// Applies metadata straight to a store: one node, no replication.
pub struct LocalLog(pub MetaStore);

impl Replicator for LocalLog {
    fn write(&self, change: Change) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(async move {
            if !self.0.docs_fit(&change.docs) {
                return Err(ClusterError::Replication(
                    "the change was built on documents that changed meanwhile; retry".into(),
                ));
            }
            self.0.apply(&change.sync)?;
            self.0.apply_docs(&change.docs)
        })
    }
    fn add_voter<'a>(&'a self, _: &'a Snode) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async { Ok(()) })
    }
    fn remove_member<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async { Ok(()) })
    }
    fn catch_up(&self) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(async { Ok(()) })
    }
}

/// What the state machine does with a committed change on this node
/// (apply it to the store and react: new config, step down, ...).
pub trait Applier: Send + Sync + 'static {
    /// An error stops this node's member of the control plane (it must
    /// not go on with a store that missed a change).
    fn apply(&self, sync: &MetaSync) -> Result<(), ClusterError>;
    /// The replicated documents named were changed (already in the store).
    fn docs_changed(&self, _names: &[&str]) {}
}

/// A snapshot of the state machine: every document.
#[derive(Serialize, Deserialize)]
struct SnapData {
    #[serde(flatten)]
    sync: MetaSync,
    #[serde(default)]
    docs: BTreeMap<String, Doc>,
}

/// Whether `sync` is the next version of every document it carries: the
/// primary builds each change on the current version, so one built on an
/// older state (its commit was still pending when the next was built, or
/// an old leader's) would give a second, different document the same
/// version. Such an entry is committed but not applied, on every proxy
/// alike (they apply the same log to the same state), and the primary
/// that wrote it answers the change as failed.
fn next_versions(meta: &MetaStore, sync: &MetaSync) -> bool {
    // The same document already here (a crash between writing the
    // documents of one entry and recording it applied) counts as next.
    fn fits<T: Serialize>(new: Option<&T>, new_v: u64, cur: &T, cur_v: u64) -> bool {
        match new {
            None => true,
            Some(_) if new_v == cur_v + 1 => true,
            Some(d) if new_v == cur_v => {
                serde_json::to_value(d).ok() == serde_json::to_value(cur).ok()
            }
            Some(_) => false,
        }
    }
    let smap = meta.smap();
    let (bmd, etlmd, config) = (meta.bmd(), meta.etlmd(), meta.config());
    let sv = smap.as_ref().map(|s| s.version).unwrap_or(0);
    let smap_ok = match (&sync.smap, &smap) {
        (None, _) => true,
        (Some(x), None) => x.version == 1,
        (Some(x), Some(cur)) => fits(Some(x), x.version, cur, sv),
    };
    smap_ok
        && fits(
            sync.bmd.as_ref(),
            sync.bmd.as_ref().map_or(0, |x| x.version),
            &bmd,
            bmd.version,
        )
        && fits(
            sync.etlmd.as_ref(),
            sync.etlmd.as_ref().map_or(0, |x| x.version),
            &etlmd,
            etlmd.version,
        )
        && fits(
            sync.config.as_ref(),
            sync.config.as_ref().map_or(0, |x| x.version),
            &config,
            config.version,
        )
}

/// How Raft messages reach another proxy: `kind` is `append`, `vote` or
/// `snapshot`, `body` and the answer are JSON.
pub trait RaftTransport: Send + Sync + 'static {
    /// `to`: the member the message is for (append, vote, snapshot): a
    /// process now at that address that is not it refuses the message
    /// (another cluster's node, or a restarted one, must not answer for
    /// it: its term would unseat the leader).
    fn call<'a>(
        &'a self,
        url: &'a str,
        kind: &'static str,
        to: Option<NodeId>,
        body: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<u8>, ClusterError>>;
}

/// Timing of the control plane.
#[derive(Debug, Clone)]
pub struct RaftTiming {
    /// A follower that hears nothing from the leader for this long (plus
    /// a random share of it) starts an election.
    pub election_timeout: Duration,
    /// How long a change may wait for a majority before it is answered as
    /// failed.
    pub write_timeout: Duration,
}

impl Default for RaftTiming {
    fn default() -> Self {
        Self {
            election_timeout: Duration::from_millis(1500),
            write_timeout: Duration::from_secs(8),
        }
    }
}

// ------------------------------------------------------------------ log

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

#[derive(Default)]
struct LogInner {
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    last_purged: Option<LogId<NodeId>>,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
}

/// The durable Raft log and vote of one proxy.
#[derive(Clone)]
pub struct LogStore {
    dir: PathBuf,
    inner: Arc<Mutex<LogInner>>,
}

#[derive(Serialize, Deserialize, Default)]
struct Purged {
    last_purged: Option<LogId<NodeId>>,
}

impl LogStore {
    fn log_path(&self) -> PathBuf {
        self.dir.join("raft-log.jsonl")
    }

    /// Loads what a previous run left: the vote, the purge mark and every
    /// whole line of the log (a line cut by a crash is the last and is
    /// dropped: it was never acknowledged).
    pub fn open(dir: &Path) -> Result<Self, ClusterError> {
        std::fs::create_dir_all(dir).map_err(|e| ClusterError::Io {
            context: format!("create {}", dir.display()),
            source: e,
        })?;
        let s = LogStore {
            dir: dir.to_path_buf(),
            inner: Default::default(),
        };
        let vote = crate::store::load::<Vote<NodeId>>(&dir.join("raft-vote.json"))?;
        let purged =
            crate::store::load::<Purged>(&dir.join("raft-purged.json"))?.unwrap_or_default();
        let mut entries = BTreeMap::new();
        match std::fs::File::open(s.log_path()) {
            Ok(f) => {
                let mut partial: Option<String> = None;
                for line in std::io::BufReader::new(f).split(b'\n') {
                    let line = line.map_err(|e| ClusterError::Io {
                        context: "read raft log".into(),
                        source: e,
                    })?;
                    if let Some(e) = partial.take() {
                        // An unreadable line before the last is damage,
                        // not a write cut short by a crash.
                        return Err(ClusterError::Corrupt {
                            path: s.log_path().display().to_string(),
                            msg: e,
                        });
                    }
                    match serde_json::from_slice::<Entry<TypeConfig>>(&line) {
                        Ok(e) => {
                            entries.insert(e.log_id.index, e);
                        }
                        Err(e) => partial = Some(e.to_string()),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ClusterError::Io {
                    context: "open raft log".into(),
                    source: e,
                })
            }
        }
        if let Some(p) = purged.last_purged {
            entries.retain(|i, _| *i > p.index);
        }
        if let Ok(mut i) = s.inner.lock() {
            i.vote = vote;
            i.last_purged = purged.last_purged;
            i.entries = entries;
        }
        // Rewrite without a dropped partial line, so appends stay whole.
        s.rewrite().map_err(|e| ClusterError::Io {
            context: "rewrite raft log".into(),
            source: e,
        })?;
        Ok(s)
    }

    /// A restart of a proxy that led before: forget that it led (its vote
    /// for itself in that term stays, so it still cannot vote twice). The
    /// library would otherwise resume leading at once, before hearing
    /// whether the others elected someone while it was down. Answers
    /// whether it led.
    fn forget_leading(&self, me: NodeId) -> Result<bool, ClusterError> {
        let mut i = self
            .inner
            .lock()
            .map_err(|_| ClusterError::Replication("raft log lock poisoned".into()))?;
        let Some(v) = i.vote.filter(|v| v.committed && v.leader_id.node_id == me) else {
            return Ok(false);
        };
        let v = Vote::new(v.leader_id.term, me);
        crate::save_json(&self.dir.join("raft-vote.json"), &v)?;
        i.vote = Some(v);
        Ok(true)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, LogInner>, std::io::Error> {
        self.inner
            .lock()
            .map_err(|_| io_err("raft log lock poisoned"))
    }

    /// Writes the whole log to a temp file and renames it into place.
    fn rewrite(&self) -> Result<(), std::io::Error> {
        let mut raw = Vec::new();
        {
            let i = self.lock()?;
            for e in i.entries.values() {
                serde_json::to_writer(&mut raw, e).map_err(io_err)?;
                raw.push(b'\n');
            }
        }
        crate::save_bytes(&self.log_path(), &raw).map_err(io_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + fmt::Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        let i = self.lock().map_err(|e| StorageIOError::read_logs(&e))?;
        Ok(i.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SErr> {
        let i = self.lock().map_err(|e| StorageIOError::read_logs(&e))?;
        let last = i
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(i.last_purged);
        Ok(LogState {
            last_purged_log_id: i.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), SErr> {
        crate::save_json(&self.dir.join("raft-vote.json"), vote)
            .map_err(|e| StorageIOError::write_vote(&io_err(e)))?;
        let mut i = self.lock().map_err(|e| StorageIOError::write_vote(&e))?;
        i.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, SErr> {
        let i = self.lock().map_err(|e| StorageIOError::read_vote(&e))?;
        Ok(i.vote)
    }

    async fn save_committed(&mut self, c: Option<LogId<NodeId>>) -> Result<(), SErr> {
        let mut i = self.lock().map_err(|e| StorageIOError::write(&e))?;
        i.committed = c;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, SErr> {
        let i = self.lock().map_err(|e| StorageIOError::read(&e))?;
        Ok(i.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let mut raw = Vec::new();
        for e in &entries {
            serde_json::to_writer(&mut raw, e).map_err(|e| StorageIOError::write_logs(&e))?;
            raw.push(b'\n');
        }
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_path())?;
            f.write_all(&raw)?;
            f.sync_data()
        })();
        if let Err(e) = written {
            let err = StorageIOError::write_logs(&e);
            callback.log_io_completed(Err(e));
            return Err(err.into());
        }
        {
            let mut i = self.lock().map_err(|e| StorageIOError::write_logs(&e))?;
            for e in entries {
                i.entries.insert(e.log_id.index, e);
            }
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        {
            let mut i = self.lock().map_err(|e| StorageIOError::write_logs(&e))?;
            i.entries.retain(|k, _| *k < log_id.index);
        }
        self.rewrite()
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        crate::save_json(
            &self.dir.join("raft-purged.json"),
            &Purged {
                last_purged: Some(log_id),
            },
        )
        .map_err(|e| StorageIOError::write_logs(&io_err(e)))?;
        {
            let mut i = self.lock().map_err(|e| StorageIOError::write_logs(&e))?;
            i.last_purged = Some(log_id);
            i.entries.retain(|k, _| *k > log_id.index);
        }
        self.rewrite()
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

// -------------------------------------------------------- state machine

#[derive(Serialize, Deserialize, Default, Clone)]
struct SmState {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, RaftNode>,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, RaftNode>,
    data: Vec<u8>,
}

/// The state machine: the proxy's [`MetaStore`] (through its [`Applier`]),
/// and where in the log it stands.
#[derive(Clone)]
pub struct StateMachine {
    dir: PathBuf,
    meta: MetaStore,
    applier: Arc<dyn Applier>,
    state: Arc<Mutex<SmState>>,
}

impl StateMachine {
    pub fn open(
        dir: &Path,
        meta: MetaStore,
        applier: Arc<dyn Applier>,
    ) -> Result<Self, ClusterError> {
        let state = crate::store::load::<SmState>(&dir.join("raft-sm.json"))?.unwrap_or_default();
        Ok(StateMachine {
            dir: dir.to_path_buf(),
            meta,
            applier,
            state: Arc::new(Mutex::new(state)),
        })
    }

    fn save(&self, st: &SmState) -> Result<(), std::io::Error> {
        crate::save_json(&self.dir.join("raft-sm.json"), st).map_err(io_err)
    }

    fn snapshot_now(&self) -> Result<Snapshot<TypeConfig>, std::io::Error> {
        let st = self
            .state
            .lock()
            .map_err(|_| io_err("raft state lock poisoned"))?
            .clone();
        let data = serde_json::to_vec(&SnapData {
            sync: self.meta.full(),
            docs: self.meta.docs(),
        })
        .map_err(io_err)?;
        let id = st
            .last_applied
            .map(|l| format!("{}-{}", l.leader_id, l.index))
            .unwrap_or_else(|| "0".into());
        let meta = SnapshotMeta {
            last_log_id: st.last_applied,
            last_membership: st.membership.clone(),
            snapshot_id: format!("{id}-{}", ais_core::now_ns()),
        };
        crate::save_json(
            &self.dir.join("raft-snapshot.json"),
            &StoredSnapshot {
                meta: meta.clone(),
                data: data.clone(),
            },
        )
        .map_err(io_err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SErr> {
        self.snapshot_now()
            .map_err(|e| StorageIOError::write_snapshot(None, &e).into())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, RaftNode>), SErr> {
        let st = self
            .state
            .lock()
            .map_err(|e| StorageIOError::read_state_machine(&io_err(e)))?;
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<bool>, SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        let mut st = self
            .state
            .lock()
            .map_err(|e| StorageIOError::write_state_machine(&io_err(e)))?
            .clone();
        for e in entries {
            let mut applied = true;
            match e.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(change) => {
                    applied =
                        next_versions(&self.meta, &change.sync) && self.meta.docs_fit(&change.docs);
                    if applied {
                        self.applier
                            .apply(&change.sync)
                            .map_err(|err| StorageIOError::apply(e.log_id, &io_err(err)))?;
                        if !change.docs.is_empty() {
                            self.meta
                                .apply_docs(&change.docs)
                                .map_err(|err| StorageIOError::apply(e.log_id, &io_err(err)))?;
                            let names: Vec<&str> =
                                change.docs.iter().map(|d| d.name.as_str()).collect();
                            self.applier.docs_changed(&names);
                        }
                    } else {
                        tracing::warn!(
                            log_index = e.log_id.index,
                            "control plane: a change built on an older state was committed \
                             but not applied (its primary answers it as failed)"
                        );
                    }
                }
                EntryPayload::Membership(m) => {
                    st.membership = StoredMembership::new(Some(e.log_id), m);
                }
            }
            st.last_applied = Some(e.log_id);
            out.push(applied);
        }
        self.save(&st)
            .map_err(|e| StorageIOError::write_state_machine(&e))?;
        if let Ok(mut g) = self.state.lock() {
            *g = st;
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SErr> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, RaftNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SErr> {
        let data = snapshot.into_inner();
        let snap: SnapData = serde_json::from_slice(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        self.applier
            .apply(&snap.sync)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &io_err(e)))?;
        self.meta
            .replace_docs(&snap.docs)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &io_err(e)))?;
        let names: Vec<&str> = snap.docs.keys().map(String::as_str).collect();
        self.applier.docs_changed(&names);
        let st = SmState {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        self.save(&st)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        crate::save_json(
            &self.dir.join("raft-snapshot.json"),
            &StoredSnapshot {
                meta: meta.clone(),
                data,
            },
        )
        .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &io_err(e)))?;
        if let Ok(mut g) = self.state.lock() {
            *g = st;
        }
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SErr> {
        let stored = crate::store::load::<StoredSnapshot>(&self.dir.join("raft-snapshot.json"))
            .map_err(|e| StorageIOError::read_snapshot(None, &io_err(e)))?;
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

// -------------------------------------------------------------- network

#[derive(Clone)]
struct Network {
    transport: Arc<dyn RaftTransport>,
}

struct Peer {
    transport: Arc<dyn RaftTransport>,
    target: NodeId,
    url: String,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;
    async fn new_client(&mut self, target: NodeId, node: &RaftNode) -> Peer {
        Peer {
            transport: self.transport.clone(),
            target,
            url: node.url.clone(),
        }
    }
}

impl Peer {
    async fn call<Req, Resp, E>(
        &self,
        kind: &'static str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, RaftNode, E>>
    where
        Req: Serialize,
        Resp: serde::de::DeserializeOwned,
        E: std::error::Error + serde::de::DeserializeOwned,
    {
        let body = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let raw = self
            .transport
            .call(&self.url, kind, Some(self.target), body, option.hard_ttl())
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let res: Result<Resp, E> =
            serde_json::from_slice(&raw).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        res.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, RaftNode, RaftError<NodeId>>> {
        self.call("append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, RaftNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call("snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, RaftNode, RaftError<NodeId>>> {
        self.call("vote", &rpc, &option).await
    }
}

// -------------------------------------------------------- control plane

/// Whether this proxy leads the group now, and in which term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Leadership {
    pub leading: bool,
    pub term: u64,
    /// Whether any leader is known (a follower that hears one).
    pub leader: Option<NodeId>,
}

/// This proxy's member of the Raft group.
pub struct ControlPlane {
    raft: Raft,
    me: NodeId,
    node: RaftNode,
    write_timeout: Duration,
    election_timeout: Duration,
    transport: Arc<dyn RaftTransport>,
    /// Bumped by each hold on elections: only the newest hold lifts it.
    holds: Arc<std::sync::atomic::AtomicU64>,
    /// Until when a hold asked by a leader runs (a newer one never
    /// extends it).
    held_until: Mutex<Option<tokio::time::Instant>>,
}

/// A leader's request to `hold` or `campaign` (`hand_over`): honoured only
/// from the node this one follows, in its current term.
#[derive(Serialize, Deserialize)]
struct FromLeader {
    leader: NodeId,
    term: u64,
    /// `hold`: milliseconds (0: lift the hold).
    ms: u64,
}

fn raft_err(e: impl fmt::Display) -> ClusterError {
    ClusterError::Replication(e.to_string())
}

impl ControlPlane {
    /// Opens the log in `dir` and starts the Raft member.
    pub async fn start(
        dir: &Path,
        me: &Snode,
        meta: MetaStore,
        applier: Arc<dyn Applier>,
        transport: Arc<dyn RaftTransport>,
        timing: RaftTiming,
    ) -> Result<Arc<Self>, ClusterError> {
        let log = LogStore::open(dir)?;
        let id = node_id(&me.daemon_id);
        let led = log.forget_leading(id)?;
        let sm = StateMachine::open(dir, meta, applier)?;
        // The latest membership this node knows (its state machine's, or
        // a newer one in the log), before the library has loaded it.
        let others = {
            let st = sm
                .state
                .lock()
                .map(|s| s.membership.clone())
                .unwrap_or_default();
            let mut latest = (*st.log_id(), st.membership().clone());
            if let Ok(i) = log.inner.lock() {
                for e in i.entries.values() {
                    if let EntryPayload::Membership(m) = &e.payload {
                        if Some(e.log_id) > latest.0 {
                            latest = (Some(e.log_id), m.clone());
                        }
                    }
                }
            }
            latest.1.voter_ids().any(|v| v != id)
        };
        let el = timing.election_timeout.as_millis().clamp(200, 600_000) as u64;
        let config = openraft::Config {
            cluster_name: "aistore-rs".into(),
            // Also the timeout of each append: room for an fsync on a
            // loaded host.
            heartbeat_interval: (el / 3).max(50),
            max_payload_entries: 32,
            election_timeout_min: el,
            election_timeout_max: el * 2,
            // Metadata changes are few and small: a snapshot (the whole
            // metadata) every few hundred keeps the log short.
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(200),
            max_in_snapshot_log_to_keep: 20,
            install_snapshot_timeout: 5_000,
            ..Default::default()
        };
        let config = Arc::new(config.validate().map_err(raft_err)?);
        let raft = Raft::new(
            id,
            config,
            Network {
                transport: transport.clone(),
            },
            log,
            sm,
        )
        .await
        .map_err(raft_err)?;
        let cp = Arc::new(ControlPlane {
            raft,
            me: id,
            node: RaftNode::from(me),
            write_timeout: timing.write_timeout,
            election_timeout: Duration::from_millis(el),
            transport,
            holds: Default::default(),
            held_until: Default::default(),
        });
        if led && others {
            // Back from a crash or restart as the former leader: stand
            // aside for four election timeouts, so the others (who stopped
            // hearing from it) elect among themselves and it rejoins as a
            // follower, rather than racing them with the same log.
            cp.hold_elections(Duration::from_millis(el * 4));
        }
        Ok(cp)
    }

    /// Starts a group of one (the first proxy of a new cluster); a proxy
    /// whose log already has a membership keeps it.
    pub async fn initialize_alone(&self) -> Result<(), ClusterError> {
        if self.raft.is_initialized().await.map_err(raft_err)? {
            return Ok(());
        }
        let members = BTreeMap::from([(self.me, self.node.clone())]);
        self.raft.initialize(members).await.map_err(raft_err)
    }

    /// Whether this node's log has any membership (it was started alone
    /// or was added by a leader).
    pub async fn is_initialized(&self) -> bool {
        self.raft.is_initialized().await.unwrap_or(false)
    }

    /// Changes of leadership, as they happen.
    pub fn leadership(&self) -> tokio::sync::watch::Receiver<Leadership> {
        let (tx, rx) = tokio::sync::watch::channel(Leadership::default());
        let mut m = self.raft.metrics();
        let me = self.me;
        tokio::spawn(async move {
            loop {
                let l = {
                    let m = m.borrow_and_update();
                    Leadership {
                        leading: m.state == ServerState::Leader && m.current_leader == Some(me),
                        term: m.current_term,
                        leader: m.current_leader,
                    }
                };
                tx.send_if_modified(|cur| {
                    let changed = *cur != l;
                    *cur = l;
                    changed
                });
                if m.changed().await.is_err() || tx.is_closed() {
                    return;
                }
            }
        });
        rx
    }

    /// The current voters and learners, by daemon id.
    pub fn members(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let m = self.raft.metrics();
        let m = m.borrow();
        let mem = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = mem.voter_ids().collect();
        let mut v = BTreeSet::new();
        let mut l = BTreeSet::new();
        for (id, n) in mem.nodes() {
            if voters.contains(id) {
                v.insert(n.daemon_id.clone());
            } else {
                l.insert(n.daemon_id.clone());
            }
        }
        (v, l)
    }

    /// The term and the leader's id, for `ais show cluster`-like reports.
    pub fn state(&self) -> (u64, Option<NodeId>, Option<u64>) {
        let m = self.raft.metrics();
        let m = m.borrow();
        (
            m.current_term,
            m.current_leader,
            m.last_applied.map(|l| l.index),
        )
    }

    /// Answers a Raft message from another proxy (`kind` as in
    /// [`RaftTransport::call`]); the answer is JSON of
    /// `Result<response, RaftError>`.
    pub async fn handle(
        &self,
        kind: &str,
        to: Option<NodeId>,
        body: &[u8],
    ) -> Result<Vec<u8>, ClusterError> {
        let bad = |e: serde_json::Error| ClusterError::Refused(format!("raft {kind}: {e}"));
        if matches!(kind, "append" | "vote" | "snapshot") && to != Some(self.me) {
            return Err(ClusterError::Refused(format!(
                "raft {kind} for member {to:?} reached proxy {} (member {}): not addressed to it",
                self.node.daemon_id, self.me
            )));
        }
        let out = match kind {
            "append" => {
                let req: AppendEntriesRequest<TypeConfig> =
                    serde_json::from_slice(body).map_err(bad)?;
                serde_json::to_vec(&self.raft.append_entries(req).await)
            }
            "vote" => {
                let req: VoteRequest<NodeId> = serde_json::from_slice(body).map_err(bad)?;
                serde_json::to_vec(&self.raft.vote(req).await)
            }
            "snapshot" => {
                let req: InstallSnapshotRequest<TypeConfig> =
                    serde_json::from_slice(body).map_err(bad)?;
                serde_json::to_vec(&self.raft.install_snapshot(req).await)
            }
            // The primary handing its role over (`hand_over`).
            "hold" | "campaign" => {
                let req: FromLeader = serde_json::from_slice(body).map_err(bad)?;
                let (leader, term) = {
                    let m = self.raft.metrics();
                    let m = m.borrow();
                    (m.current_leader, m.current_term)
                };
                if leader != Some(req.leader) || term != req.term || req.leader == self.me {
                    return Err(ClusterError::Refused(format!(
                        "raft {kind}: only the current leader may ask (this node follows {leader:?} \
                         in term {term})"
                    )));
                }
                if kind == "campaign" {
                    self.raft.trigger().elect().await.map_err(raft_err)?;
                } else if req.ms == 0 {
                    self.lift_hold();
                } else {
                    let mut until = self.held_until.lock().map_err(|_| raft_err("lock"))?;
                    let now = tokio::time::Instant::now();
                    // A hold runs out: a new one never extends it.
                    if until.is_none_or(|u| u <= now) {
                        let d = Duration::from_millis(
                            req.ms.min((self.election_timeout * 6).as_millis() as u64),
                        );
                        *until = Some(now + d);
                        drop(until);
                        self.hold_elections(d);
                    }
                }
                Ok(b"true".to_vec())
            }
            "whoami" => Ok(serde_json::to_vec(&self.node.daemon_id).unwrap_or_default()),
            other => {
                return Err(ClusterError::Refused(format!(
                    "unknown raft message \"{other}\" (expected append, vote, snapshot, hold or \
                     campaign)"
                )))
            }
        };
        out.map_err(|e| raft_err(format!("encode raft {kind} answer: {e}")))
    }

    /// No candidacy from this node for `d` (a handover is under way).
    pub fn hold_elections(&self, d: Duration) {
        use std::sync::atomic::Ordering;
        let gen = self.holds.fetch_add(1, Ordering::SeqCst) + 1;
        self.raft.runtime_config().elect(false);
        let (raft, holds) = (self.raft.clone(), self.holds.clone());
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            if holds.load(Ordering::SeqCst) == gen {
                raft.runtime_config().elect(true);
            }
        });
    }

    /// Heartbeats on (a leader taking office: a handover that was cut
    /// short must not leave them off).
    pub fn resume_heartbeats(&self) {
        self.raft.runtime_config().heartbeat(true);
    }

    /// Lifts any hold on this node's candidacy now.
    pub fn lift_hold(&self) {
        self.holds.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut u) = self.held_until.lock() {
            *u = None;
        }
        self.raft.runtime_config().elect(true);
    }

    /// Hands leadership to `to` (`ais cluster set-primary`), within the
    /// protocol's rules: every other voter holds its candidacy, this leader
    /// stops its heartbeats until the followers' leases lapse, then `to`
    /// (caught up with the log) calls an election, which it wins with a
    /// higher term; this leader steps down on seeing it. The caller holds
    /// the metadata lock, so no change is in flight. If `to` does not take
    /// over, heartbeats resume and nothing changed.
    pub async fn hand_over(&self, to: &Snode) -> Result<(), ClusterError> {
        let to_id = node_id(&to.daemon_id);
        let (caught_up, voters, nodes) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            let last = m.last_log_index;
            let caught = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&to_id).cloned().flatten())
                .map(|l| Some(l.index) >= last)
                .unwrap_or(false);
            let mem = m.membership_config.membership();
            let voters: BTreeSet<NodeId> = mem.voter_ids().collect();
            let nodes: BTreeMap<NodeId, RaftNode> =
                mem.nodes().map(|(k, v)| (*k, v.clone())).collect();
            (caught, voters, nodes)
        };
        if !voters.contains(&to_id) {
            return Err(ClusterError::Refused(format!(
                "p[{}] is not a voting member of the control plane",
                to.daemon_id
            )));
        }
        if !caught_up {
            return Err(ClusterError::Replication(format!(
                "p[{}] has not caught up with the control plane's log; retry shortly",
                to.daemon_id
            )));
        }
        let lease = self.election_timeout * 2;
        let hold = lease * 3;
        let term = self.raft.metrics().borrow().current_term;
        let ask = |ms: u64| {
            serde_json::to_vec(&FromLeader {
                leader: self.me,
                term,
                ms,
            })
            .unwrap_or_default()
        };
        let others: Vec<RaftNode> = nodes
            .iter()
            .filter(|(id, _)| **id != self.me && **id != to_id && voters.contains(id))
            .map(|(_, n)| n.clone())
            .collect();
        for n in &others {
            if let Err(e) = self
                .transport
                .call(
                    &n.url,
                    "hold",
                    None,
                    ask(hold.as_millis() as u64),
                    Duration::from_secs(2),
                )
                .await
            {
                tracing::warn!(proxy = %n, error = %e, "set-primary: could not pause its candidacy");
            }
        }
        self.hold_elections(hold);
        // Heartbeats come back however this ends (also if the caller's
        // future is dropped).
        struct Beat<'a>(&'a Raft);
        impl Drop for Beat<'_> {
            fn drop(&mut self) {
                self.0.runtime_config().heartbeat(true);
            }
        }
        let _beat = Beat(&self.raft);
        self.raft.runtime_config().heartbeat(false);
        let res = async {
            tokio::time::sleep(lease + Duration::from_millis(200)).await;
            let url = nodes
                .get(&to_id)
                .map(|n| n.url.clone())
                .unwrap_or_else(|| to.url().to_string());
            self.transport
                .call(&url, "campaign", None, ask(0), Duration::from_secs(5))
                .await?;
            let mut m = self.raft.metrics();
            let deadline = tokio::time::Instant::now() + lease * 2;
            loop {
                if m.borrow().current_leader == Some(to_id) {
                    return Ok(());
                }
                match tokio::time::timeout_at(deadline, m.changed()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Err(raft_err("the control plane stopped")),
                    Err(_) => {
                        return Err(ClusterError::Replication(format!(
                            "p[{}] did not take over within {:?}; the primary may or may not \
                             have changed (see `ais show cluster`)",
                            to.daemon_id,
                            lease * 2
                        )))
                    }
                }
            }
        }
        .await;
        if res.is_err() {
            // Nobody waits on a hold any more: let every voter campaign.
            self.lift_hold();
            for n in &others {
                let _ = self
                    .transport
                    .call(&n.url, "hold", None, ask(0), Duration::from_secs(2))
                    .await;
            }
        }
        res
    }

    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}

fn write_err(e: RaftError<NodeId, ClientWriteError<NodeId, RaftNode>>) -> ClusterError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ClusterError::NotLeader(
            f.leader_node
                .map(|n| n.to_string())
                .unwrap_or_else(|| "none known yet".into()),
        ),
        other => raft_err(other),
    }
}

impl Replicator for ControlPlane {
    fn write(&self, change: Change) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(async move {
            // A leader cut off from its majority waits forever: answer
            // within a bound instead (the change was not acknowledged; it
            // takes effect only if this proxy reaches a majority again
            // while still leading, otherwise a newer leader drops it).
            match tokio::time::timeout(self.write_timeout, self.raft.client_write(change)).await {
                Ok(Ok(r)) if r.data => Ok(()),
                Ok(Ok(_)) => Err(ClusterError::Replication(
                    "the change was built on metadata that changed meanwhile and was not \
                     applied; retry"
                        .into(),
                )),
                Ok(Err(e)) => Err(write_err(e)),
                Err(_) => Err(ClusterError::Replication(format!(
                    "the change was not confirmed by a majority of proxies within {:?} \
                     (this proxy may be cut off from them); retry through another proxy",
                    self.write_timeout
                ))),
            }
        })
    }

    fn add_voter<'a>(&'a self, node: &'a Snode) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async move {
            let id = node_id(&node.daemon_id);
            let rn = RaftNode::from(node);
            let (known, voter) = {
                let m = self.raft.metrics();
                let m = m.borrow();
                let mem = m.membership_config.membership();
                (mem.get_node(&id).cloned(), mem.voter_ids().any(|v| v == id))
            };
            if voter && known.as_ref() == Some(&rn) {
                return Ok(());
            }
            // A learner first: it catches up on the log before it counts
            // in any majority. Bounded: the caller holds the metadata lock.
            let bound = self.write_timeout * 2;
            let late = || {
                ClusterError::Replication(format!(
                    "proxy {} did not catch up with the control plane within {bound:?}",
                    node.daemon_id
                ))
            };
            if let Some(old) = known.as_ref().filter(|k| **k != rn) {
                // Only if the old address is not still this proxy (two
                // processes with one identity, e.g. a copied data dir,
                // must never share a seat).
                let still = self
                    .transport
                    .call(&old.url, "whoami", None, Vec::new(), Duration::from_secs(2))
                    .await
                    .ok()
                    .and_then(|raw| serde_json::from_slice::<String>(&raw).ok());
                if still.as_deref() == Some(node.daemon_id.as_str()) {
                    return Err(ClusterError::Refused(format!(
                        "proxy {} answers at {} already: refusing a second process with the \
                         same identity at {}",
                        node.daemon_id, old.url, rn.url
                    )));
                }
                // The same proxy (same id, its own log) back at another
                // address (a rescheduled pod): replicate to the new one.
                let set = ChangeMembers::SetNodes(BTreeMap::from([(id, rn.clone())]));
                tokio::time::timeout(bound, self.raft.change_membership(set, true))
                    .await
                    .map_err(|_| late())?
                    .map_err(write_err)?;
                tracing::info!(proxy = %rn, "control plane: proxy's address updated");
            }
            tokio::time::timeout(bound, self.raft.add_learner(id, rn, true))
                .await
                .map_err(|_| late())?
                .map_err(write_err)?;
            if !voter {
                let add = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
                tokio::time::timeout(bound, self.raft.change_membership(add, true))
                    .await
                    .map_err(|_| late())?
                    .map_err(write_err)?;
                tracing::info!(proxy = %node.daemon_id, "proxy is a voting member of the control plane");
            }
            Ok(())
        })
    }

    fn remove_member<'a>(&'a self, daemon_id: &'a str) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async move {
            let id = node_id(daemon_id);
            if id == self.me {
                return Err(ClusterError::Refused(
                    "the primary cannot leave the control plane: hand its role over first \
                     (ais cluster set-primary)"
                        .into(),
                ));
            }
            let (known, voter, voters) = {
                let m = self.raft.metrics();
                let m = m.borrow();
                let mem = m.membership_config.membership();
                (
                    mem.get_node(&id).is_some(),
                    mem.voter_ids().any(|v| v == id),
                    mem.voter_ids().count(),
                )
            };
            if voter && voters <= 1 {
                return Err(ClusterError::Refused(format!(
                    "proxy {daemon_id} is the control plane's only voter"
                )));
            }
            let bound = self.write_timeout * 2;
            let late = || {
                ClusterError::Replication(format!(
                    "removing proxy {daemon_id} was not committed within {bound:?}"
                ))
            };
            let change = if voter {
                // Not kept as a learner: gone from the group altogether.
                ChangeMembers::RemoveVoters(BTreeSet::from([id]))
            } else if known {
                ChangeMembers::RemoveNodes(BTreeSet::from([id]))
            } else {
                return Ok(());
            };
            tokio::time::timeout(bound, self.raft.change_membership(change, false))
                .await
                .map_err(|_| late())?
                .map_err(write_err)?;
            tracing::info!(proxy = %daemon_id, "control plane: proxy removed from the group");
            Ok(())
        })
    }

    fn reaches_proxies(&self) -> bool {
        true
    }

    fn voters(&self) -> Vec<String> {
        self.members().0.into_iter().collect()
    }

    fn catch_up(&self) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(async move {
            self.raft
                .ensure_linearizable()
                .await
                .map(drop)
                .map_err(raft_err)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ais_core::meta::Bmd;

    fn bmd(v: u64, uuid: &str, tag: &str) -> Bmd {
        let mut b = Bmd {
            version: v,
            uuid: uuid.into(),
            ..Default::default()
        };
        b.buckets.insert(tag.into(), Default::default());
        b
    }

    #[test]
    fn only_the_next_version_or_the_same_document_applies() {
        let d = tempfile::tempdir().unwrap();
        let m = MetaStore::open(d.path()).unwrap();
        let sync = |b: Bmd| MetaSync {
            bmd: Some(b),
            ..Default::default()
        };
        m.apply(&sync(bmd(5, "u", "x"))).unwrap();
        // The next version: applies.
        assert!(next_versions(&m, &sync(bmd(6, "u", "y"))));
        // The same document again (a replay after a crash): fits.
        assert!(next_versions(&m, &sync(bmd(5, "u", "x"))));
        // Another document with the current version (built on an older
        // state): refused, or two documents would share version 5.
        assert!(!next_versions(&m, &sync(bmd(5, "u", "z"))));
        // A gap, or an older one: refused.
        assert!(!next_versions(&m, &sync(bmd(7, "u", "y"))));
        assert!(!next_versions(&m, &sync(bmd(4, "u", "x"))));
    }
}
