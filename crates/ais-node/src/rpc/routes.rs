//! Paths of the intra-cluster calls, shared by the RPC client and the
//! router's endpoint parser (defined once, in `ais_core::paths`).

pub use ais_core::paths::{
    DAEMON, INT_EC, INT_ETL, INT_JOBS, INT_LIST, INT_NBI, INT_OBJATTRS, INT_OBJECTS, INT_SORT,
    JOIN, KEEPALIVE, METASYNC, OBJECTS, SORT,
};

/// A target's S3 side (`target::s3`): `INT_S3/obj/B/O` (PUT: store with an
/// MD5 ETag), `INT_S3/mpu/B[/O]` (multipart uploads).
pub const INT_S3: &str = "/v1/internal/s3";
