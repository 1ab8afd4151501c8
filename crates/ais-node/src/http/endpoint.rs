//! [`Endpoint`]: what a request addresses, parsed once from its path (the
//! router then picks the handler by endpoint, role and method). Internal
//! routes use the same constants as the RPC client (`rpc::routes`), so the
//! two cannot drift apart.

use super::split_first;
use crate::rpc::routes;

/// A request's target, path segments still percent-encoded.
#[derive(Debug, PartialEq, Eq)]
pub enum Endpoint<'a> {
    Health,
    Daemon,
    /// `/v1/daemon/mountpaths`: a target's mountpaths.
    DaemonMountpaths,
    /// `/v1/reverse/daemon` (proxy): a `/v1/daemon` query for the node the
    /// `Ais-Node-Id` header names, forwarded to it.
    ReverseDaemon,
    /// `/v1/reverse/daemon/set-config` (proxy): a node's set-config, forwarded.
    ReverseDaemonSetConfig,
    /// `/v1/daemon/set-config?k=v`: this node's own configuration.
    DaemonSetConfig,
    /// `/v1/cluster/set-config?k=v`: the cluster's configuration.
    ClusterSetConfig,
    /// `/v1/cluster/proxy/ID`: make proxy ID the primary.
    SetPrimary(&'a str),
    Metasync,
    /// `/v1/metasync/raft/KIND`: the control plane's messages between proxies.
    Raft(&'a str),
    /// `/v1/cluster`: membership/job queries and actions.
    Cluster,
    Join,
    Keepalive,
    /// `/v1/buckets` (all buckets).
    Buckets,
    /// `/v1/buckets/B`.
    Bucket(&'a str),
    /// `/v1/objects/B/O...` (and the easy URL `/ais/B/O...`).
    Object {
        bucket: &'a str,
        obj: &'a str,
    },
    /// `/v1/etl[/...]`: the ETL control plane (proxy).
    Etl(EtlPath<'a>),
    /// `/v1/etl/_object/ETL/SECRET/UNAME`: a transformer reading its input (target).
    EtlObject {
        etl: &'a str,
        secret: &'a str,
        uname: &'a str,
    },
    /// Node-to-node calls (targets): `/v1/internal/...`.
    IntList(&'a str),
    /// `/v1/internal/nbi/B`: a target's native bucket inventories of B.
    IntNbi(&'a str),
    IntObjAttrs {
        bucket: &'a str,
        obj: &'a str,
    },
    IntObject {
        bucket: &'a str,
        obj: &'a str,
    },
    /// `/v1/internal/ec/B[/O]`: erasure-coded parts held by a target.
    IntEc {
        bucket: &'a str,
        obj: &'a str,
    },
    /// `/v1/internal/etl[/NAME[/WHAT]]`.
    IntEtl {
        name: &'a str,
        what: &'a str,
    },
    /// `/v1/internal/jobs[/ID[/WHAT]]`.
    IntJobs {
        id: &'a str,
        what: &'a str,
    },
    /// `/v1/internal/sort[/ID[/WHAT]]`: dSort's phases on a target.
    IntSort {
        id: &'a str,
        what: &'a str,
    },
    /// `/v1/sort[/abort]`: dSort (proxy).
    Sort(&'a str),
    /// `/v1/download[/abort|/remove]`: the downloader (proxy).
    Download(&'a str),
    /// `/v1/ml/moss[/BUCKET]`: Get-Batch.
    Moss(&'a str),
    /// `/metrics`: Prometheus text exposition (every node).
    Metrics,
    /// The S3 API: `/s3[/BUCKET[/KEY]]` (segments still percent-encoded).
    S3 {
        bucket: &'a str,
        key: &'a str,
    },
    /// `/v1/internal/s3/WHAT/B[/O]`: a target's S3 side (`target::s3`).
    IntS3 {
        what: &'a str,
        bucket: &'a str,
        obj: &'a str,
    },
    /// A cloud provider's easy URL (`/gs/...`, ...): not supported.
    Provider(&'a str),
    Unknown,
}

/// The first three segments after `/v1/etl/`.
#[derive(Debug, PartialEq, Eq)]
pub struct EtlPath<'a> {
    pub a: &'a str,
    pub b: &'a str,
    pub tail: &'a str,
}

impl<'a> Endpoint<'a> {
    pub fn parse(path: &'a str) -> Self {
        if let Some(r) = sub(path, routes::INT_LIST) {
            return Self::IntList(r);
        }
        if let Some(r) = sub(path, routes::INT_NBI) {
            return Self::IntNbi(r);
        }
        if let Some(r) = sub(path, routes::INT_OBJATTRS) {
            let (bucket, obj) = split_first(r);
            return Self::IntObjAttrs { bucket, obj };
        }
        if let Some(r) = sub(path, routes::INT_OBJECTS) {
            let (bucket, obj) = split_first(r);
            return Self::IntObject { bucket, obj };
        }
        if let Some(r) = sub(path, routes::INT_EC) {
            let (bucket, obj) = split_first(r);
            return Self::IntEc { bucket, obj };
        }
        if let Some(r) = sub(path, routes::INT_ETL) {
            let (name, what) = split_first(r);
            return Self::IntEtl { name, what };
        }
        if let Some(r) = sub(path, routes::INT_S3) {
            let (what, r) = split_first(r);
            let (bucket, obj) = split_first(r);
            return Self::IntS3 { what, bucket, obj };
        }
        if let Some(r) = sub(path, routes::INT_SORT) {
            let (id, what) = split_first(r);
            return Self::IntSort { id, what };
        }
        if let Some(r) = sub(path, routes::SORT) {
            return Self::Sort(r);
        }
        if let Some(r) = sub(path, routes::INT_JOBS) {
            let (id, what) = split_first(r);
            return Self::IntJobs { id, what };
        }
        if path == "/metrics" {
            return Self::Metrics;
        }
        let (head, rest) = split_first(path.trim_start_matches('/'));
        match head {
            "v1" => {}
            "ais" => {
                let (bucket, obj) = split_first(rest);
                return match (bucket, obj) {
                    ("", _) => Self::Buckets,
                    (b, "") => Self::Bucket(b),
                    (bucket, obj) => Self::Object { bucket, obj },
                };
            }
            "s3" => {
                let (bucket, key) = split_first(rest);
                return Self::S3 { bucket, key };
            }
            "gs" | "gcp" | "aws" | "az" | "azure" => return Self::Provider(head),
            _ => return Self::Unknown,
        }
        let (res, rest) = split_first(rest);
        match (res, rest) {
            ("health", _) => Self::Health,
            ("daemon", "mountpaths") => Self::DaemonMountpaths,
            ("reverse", "daemon") => Self::ReverseDaemon,
            ("reverse", "daemon/set-config") => Self::ReverseDaemonSetConfig,
            ("daemon", "set-config") => Self::DaemonSetConfig,
            ("daemon", _) => Self::Daemon,
            ("metasync", r) if r.starts_with("raft/") => Self::Raft(&r[5..]),
            ("metasync", _) => Self::Metasync,
            ("download", r) => Self::Download(r),
            ("ml", r) => match split_first(r) {
                ("moss", b) if !b.contains('/') => Self::Moss(b),
                _ => Self::Unknown,
            },
            ("cluster", "") => Self::Cluster,
            ("cluster", "join") => Self::Join,
            ("cluster", "keepalive") => Self::Keepalive,
            ("cluster", "set-config") => Self::ClusterSetConfig,
            ("cluster", r) if r.starts_with("proxy/") && r.len() > 6 && !r[6..].contains('/') => {
                Self::SetPrimary(&r[6..])
            }
            ("buckets", "") => Self::Buckets,
            ("buckets", r) => match split_first(r) {
                (b, "") => Self::Bucket(b),
                _ => Self::Unknown,
            },
            ("objects", r) => {
                let (bucket, obj) = split_first(r);
                Self::Object { bucket, obj }
            }
            ("etl", r) => match r.strip_prefix("_object/") {
                Some(r) => {
                    let (etl, r) = split_first(r);
                    let (secret, uname) = split_first(r);
                    Self::EtlObject { etl, secret, uname }
                }
                None => {
                    let (a, r) = split_first(r);
                    let (b, tail) = split_first(r);
                    Self::Etl(EtlPath { a, b, tail })
                }
            },
            _ => Self::Unknown,
        }
    }
}

/// `path` below `prefix` (`prefix` itself or `prefix/...`), without the slash.
fn sub<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let r = path.strip_prefix(prefix)?;
    if r.is_empty() {
        Some(r)
    } else {
        r.strip_prefix('/')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_route() {
        use Endpoint::*;
        assert_eq!(Endpoint::parse("/v1/health"), Health);
        assert_eq!(Endpoint::parse("/metrics"), Metrics);
        assert_eq!(Endpoint::parse("/v1/daemon"), Daemon);
        assert_eq!(Endpoint::parse("/v1/reverse/daemon"), ReverseDaemon);
        assert_eq!(
            Endpoint::parse("/v1/reverse/daemon/set-config"),
            ReverseDaemonSetConfig
        );
        assert_eq!(Endpoint::parse("/v1/daemon/set-config"), DaemonSetConfig);
        assert_eq!(Endpoint::parse("/v1/cluster/set-config"), ClusterSetConfig);
        assert_eq!(Endpoint::parse("/v1/cluster/proxy/p1"), SetPrimary("p1"));
        assert_eq!(Endpoint::parse("/v1/cluster/proxy/"), Unknown);
        assert_eq!(Endpoint::parse("/v1/daemon/mountpaths"), DaemonMountpaths);
        assert_eq!(Endpoint::parse("/metrics/x"), Unknown);
        assert_eq!(Endpoint::parse("/v1/cluster"), Cluster);
        assert_eq!(Endpoint::parse("/v1/cluster/join"), Join);
        assert_eq!(Endpoint::parse("/v1/cluster/x"), Unknown);
        assert_eq!(Endpoint::parse("/v1/buckets"), Buckets);
        assert_eq!(Endpoint::parse("/v1/buckets/b"), Bucket("b"));
        assert_eq!(Endpoint::parse("/v1/buckets/b/x"), Unknown);
        assert_eq!(
            Endpoint::parse("/v1/objects/b/a/b%20c"),
            Object {
                bucket: "b",
                obj: "a/b%20c"
            }
        );
        assert_eq!(Endpoint::parse("/ais/b"), Bucket("b"));
        assert_eq!(
            Endpoint::parse("/ais/b/o"),
            Object {
                bucket: "b",
                obj: "o"
            }
        );
        assert_eq!(
            Endpoint::parse("/s3/b/d/o%20x"),
            S3 {
                bucket: "b",
                key: "d/o%20x"
            }
        );
        assert_eq!(
            Endpoint::parse("/s3"),
            S3 {
                bucket: "",
                key: ""
            }
        );
        assert_eq!(Endpoint::parse("/gs/b/o"), Provider("gs"));
        assert_eq!(
            Endpoint::parse("/v1/internal/s3/mpu/b/d/o"),
            IntS3 {
                what: "mpu",
                bucket: "b",
                obj: "d/o"
            }
        );
        assert_eq!(Endpoint::parse("/v1/internal/list/b"), IntList("b"));
        assert_eq!(Endpoint::parse("/v1/ml/moss"), Moss(""));
        assert_eq!(Endpoint::parse("/v1/ml/moss/b"), Moss("b"));
        assert_eq!(
            Endpoint::parse("/v1/internal/ec/b/d/o"),
            IntEc {
                bucket: "b",
                obj: "d/o"
            }
        );
        assert_eq!(
            Endpoint::parse("/v1/internal/etl"),
            IntEtl { name: "", what: "" }
        );
        assert_eq!(
            Endpoint::parse("/v1/internal/jobs/j1/errors"),
            IntJobs {
                id: "j1",
                what: "errors"
            }
        );
        assert_eq!(Endpoint::parse("/v1/internal/etlx"), Unknown);
        assert_eq!(
            Endpoint::parse("/v1/etl/_object/e/s/ais%2Fb%2Fo"),
            EtlObject {
                etl: "e",
                secret: "s",
                uname: "ais%2Fb%2Fo"
            }
        );
        assert_eq!(
            Endpoint::parse("/v1/etl/n/logs/t1"),
            Etl(EtlPath {
                a: "n",
                b: "logs",
                tail: "t1"
            })
        );
        assert_eq!(Endpoint::parse("/x"), Unknown);
    }
}
