//! Cluster membership and metadata. [`MetaStore`] keeps a node's copy of the
//! cluster map (Smap), bucket metadata (BMD) and ETL metadata (EtlMD): it
//! persists each new version atomically and refuses older versions or another
//! cluster's. [`Primary`] is the primary proxy's authority over them: joins,
//! keepalive-based failure detection, version bumps and pushes to every node.

mod primary;
mod store;

pub use primary::{Primary, PrimaryConfig};
pub use store::{Applied, MetaStore};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{0}")]
    Refused(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupted metadata file {path}: {msg}")]
    Corrupt { path: String, msg: String },
}
