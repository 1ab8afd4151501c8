//! REST paths and their escaping, in one place for every side: the node's
//! endpoint parser, its intra-cluster RPC client, and `ais-client`.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

pub const BUCKETS: &str = "/v1/buckets";
pub const OBJECTS: &str = "/v1/objects";
pub const ETL: &str = "/v1/etl";
pub const CLUSTER: &str = "/v1/cluster";
pub const DAEMON: &str = "/v1/daemon";
/// A target's mountpaths: attach (PUT), detach (DELETE), enable/disable (POST).
pub const DAEMON_MOUNTPATHS: &str = "/v1/daemon/mountpaths";
pub const HEALTH: &str = "/v1/health";
/// Get-Batch (AIStore's "MOSS"): `GET /v1/ml/moss[/BUCKET]` with a JSON body.
pub const MOSS: &str = "/v1/ml/moss";
/// Prometheus text exposition, on every node (as AIStore's).
pub const METRICS: &str = "/metrics";

// Node-to-node.
pub const METASYNC: &str = "/v1/metasync";
pub const JOIN: &str = "/v1/cluster/join";
pub const KEEPALIVE: &str = "/v1/cluster/keepalive";
/// `INT_LIST/B`: one target's next listing page.
pub const INT_LIST: &str = "/v1/internal/list";
/// `INT_OBJATTRS/B/O`: attributes of a locally stored object.
pub const INT_OBJATTRS: &str = "/v1/internal/objattrs";
/// `INT_OBJECTS/B/O`: delete a local copy.
pub const INT_OBJECTS: &str = "/v1/internal/objects";
/// Erasure-coded parts on a target: `INT_EC/B/O` (PUT, GET, HEAD, DELETE
/// one part), `INT_EC/B?after=&limit=` (GET: list the parts held).
pub const INT_EC: &str = "/v1/internal/ec";
/// ETL runtimes on a target: `/init`, `/NAME`, `/NAME/stats|errors|logs`.
pub const INT_ETL: &str = "/v1/internal/etl";
/// Native bucket inventories on a target: `INT_NBI/B?name=` (GET: what
/// it holds; DELETE: remove).
pub const INT_NBI: &str = "/v1/internal/nbi";
/// Offline jobs on a target: `/start`, `/ID`, `/ID/errors|abort`.
pub const INT_JOBS: &str = "/v1/internal/jobs";
/// dSort (AIStore's `/v1/sort`): start, status, list, abort, remove.
pub const SORT: &str = "/v1/sort";
/// dSort on a target: `/ID/init|records|create|fetch|abort|finish`.
pub const INT_SORT: &str = "/v1/internal/sort";
/// The revoked-token list, pushed by the primary to every node (auth on).
pub const INT_AUTH_REVOKED: &str = "/v1/internal/auth/revoked";

// AuthN (served by the primary proxy when auth is on), as the SDK's AuthNClient calls them.
pub const AUTHN_USERS: &str = "/v1/users";
pub const AUTHN_ROLES: &str = "/v1/roles";
pub const AUTHN_TOKENS: &str = "/v1/tokens";

/// Escapes everything but alphanumerics and `/ - _ . ~` (object names in paths).
const PATH_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Like [`PATH_SET`], and `/` too (one path segment or a query value).
const SEGMENT_SET: &AsciiSet = &PATH_SET.add(b'/');

/// An object name for a URL path (keeps `/`).
pub fn escape_path(s: &str) -> String {
    utf8_percent_encode(s, PATH_SET).to_string()
}

/// One path segment or query value (escapes `/` too).
pub fn escape_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT_SET).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape_path("a b/c&d#e~f.g"), "a%20b/c%26d%23e~f.g");
        assert_eq!(escape_segment("ais://b/o"), "ais%3A%2F%2Fb%2Fo");
    }
}
