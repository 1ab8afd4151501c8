//! Cluster membership and metadata. [`MetaStore`] keeps a node's copy of the
//! cluster map (Smap), bucket metadata (BMD) and ETL metadata (EtlMD): it
//! persists each new version atomically and refuses older versions or another
//! cluster's. [`Primary`] is the primary proxy's authority over them: joins,
//! keepalive-based failure detection, version bumps and pushes to every node.
//! [`ControlPlane`] replicates every change among the proxies (Raft), with
//! the proxies' own documents ([`Doc`]: AuthN database, job registry).

mod primary;
pub mod raft;
mod store;

pub use primary::{Primary, PrimaryConfig, PushFailure, Transport};
pub use raft::{Applier, ControlPlane, LocalLog, RaftTiming, RaftTransport, Replicator};
pub use store::{
    save_bytes, save_json, valid_doc_name, Applied, Change, Doc, DocChange, MetaStore,
};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// A metadata version older than ours, or another cluster's.
    #[error("{0}")]
    Refused(String),
    /// A node of another cluster asked to join this one.
    #[error("node {node} belongs to cluster {theirs}, this is cluster {ours}: refusing to join (its data would be at risk)")]
    ForeignNode {
        node: String,
        theirs: String,
        ours: String,
    },
    /// No cluster map yet (the primary has not started).
    #[error("no cluster map yet")]
    NoMap,
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// This proxy is not the control plane's leader (any more): the change
    /// was not made.
    #[error(
        "this proxy is not the primary (the control plane's leader is {0}): nothing was changed"
    )]
    NotLeader(String),
    /// The change could not be committed by a majority of proxies.
    #[error("control plane: {0}")]
    Replication(String),
    #[error("corrupted metadata file {path}: {msg}")]
    Corrupt { path: String, msg: String },
}
