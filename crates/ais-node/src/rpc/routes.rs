//! Paths of the intra-cluster calls, shared by the RPC client and the
//! router's endpoint parser (defined once, in `ais_core::paths`).

pub use ais_core::paths::{
    DAEMON, INT_EC, INT_ETL, INT_JOBS, INT_LIST, INT_OBJATTRS, INT_OBJECTS, JOIN, KEEPALIVE,
    METASYNC, OBJECTS,
};
