//! Paths of the intra-cluster calls, shared by the RPC client and the
//! router's endpoint parser.

pub const METASYNC: &str = "/v1/metasync";
pub const JOIN: &str = "/v1/cluster/join";
pub const KEEPALIVE: &str = "/v1/cluster/keepalive";
/// `INT_LIST` + bucket: one target's next listing page.
pub const INT_LIST: &str = "/v1/internal/list/";
/// `INT_OBJATTRS` + bucket/object: attributes of a locally stored object.
pub const INT_OBJATTRS: &str = "/v1/internal/objattrs/";
/// `INT_OBJECTS` + bucket/object: delete a local copy.
pub const INT_OBJECTS: &str = "/v1/internal/objects/";
/// ETL runtimes on a target: `/init`, `/NAME`, `/NAME/stats|errors|logs`.
pub const INT_ETL: &str = "/v1/internal/etl";
/// Offline jobs on a target: `/start`, `/ID`, `/ID/errors|abort`.
pub const INT_JOBS: &str = "/v1/internal/jobs";
pub const OBJECTS: &str = "/v1/objects/";
