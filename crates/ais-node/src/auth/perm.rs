//! AIStore's access bits (`apc.AccessAttrs`, the SDK's `AccessAttr`), the
//! built-in roles, and what each request needs.

use crate::cred::Claims;
use crate::error::{ApiError, ApiResult};
use crate::http::{pct_decode, read_body, Ctx, Endpoint};
use axum::body::Body;
use axum::http::Method;

pub const GET: u64 = 1 << 0;
pub const OBJ_HEAD: u64 = 1 << 1;
pub const PUT: u64 = 1 << 2;
pub const APPEND: u64 = 1 << 3;
pub const OBJ_DELETE: u64 = 1 << 4;
pub const OBJ_MOVE: u64 = 1 << 5;
pub const PROMOTE: u64 = 1 << 6;
pub const OBJ_UPDATE: u64 = 1 << 7;
pub const BCK_HEAD: u64 = 1 << 8;
pub const OBJ_LIST: u64 = 1 << 9;
pub const PATCH: u64 = 1 << 10;
pub const BCK_SET_ACL: u64 = 1 << 11;
pub const LIST_BUCKETS: u64 = 1 << 12;
pub const SHOW_CLUSTER: u64 = 1 << 13;
pub const CREATE_BUCKET: u64 = 1 << 14;
pub const DESTROY_BUCKET: u64 = 1 << 15;
pub const MOVE_BUCKET: u64 = 1 << 16;
pub const ADMIN: u64 = 1 << 17;

pub const ACCESS_RO: u64 = GET | OBJ_HEAD | BCK_HEAD | OBJ_LIST;
pub const ACCESS_RW: u64 = ACCESS_RO | PUT | APPEND | OBJ_DELETE | OBJ_MOVE;
pub const CLUSTER_RO: u64 = LIST_BUCKETS | SHOW_CLUSTER;
pub const CLUSTER_RW: u64 = CLUSTER_RO | CREATE_BUCKET | DESTROY_BUCKET | MOVE_BUCKET;
pub const BUCKET_ADMIN: u64 = PATCH | BCK_SET_ACL | OBJ_UPDATE;
pub const ACCESS_SU: u64 = ACCESS_RW | PROMOTE | BUCKET_ADMIN | CLUSTER_RW | ADMIN;

/// The built-in roles (AIStore's names), with their cluster-wide bits.
pub const BUILTIN_ROLES: &[(&str, &str, u64, bool)] = &[
    ("Admin", "AuthN administrator: everything", ACCESS_SU, true),
    (
        "ClusterOwner",
        "Full access to the cluster and its buckets",
        ACCESS_RW | PROMOTE | BUCKET_ADMIN | CLUSTER_RW,
        false,
    ),
    (
        "BucketOwner",
        "Read-write: read, write and delete objects",
        ACCESS_RW | CLUSTER_RO,
        false,
    ),
    (
        "Guest",
        "Read-only: read and list objects and buckets",
        ACCESS_RO | CLUSTER_RO,
        false,
    ),
];

/// Short aliases accepted wherever a role is named.
pub fn canonical_role(name: &str) -> &str {
    match name.to_ascii_lowercase().as_str() {
        "admin" => "Admin",
        "read-write" | "readwrite" | "rw" | "bucketowner" => "BucketOwner",
        "read-only" | "readonly" | "ro" | "guest" => "Guest",
        "clusterowner" => "ClusterOwner",
        _ => name,
    }
}

/// One thing a request needs: `bits` on `bucket` (or on the cluster), and
/// the verb to name in a refusal.
#[derive(Debug, PartialEq, Eq)]
pub struct Need {
    pub bits: u64,
    pub bucket: Option<String>,
    pub what: String,
}

fn need(bits: u64, bucket: Option<&str>, what: impl Into<String>) -> Need {
    Need {
        bits,
        bucket: bucket.map(str::to_string),
        what: what.into(),
    }
}

/// Naming a backend (`backend_bck`) hands the bucket's users that remote
/// bucket's objects (read, write, delete, list): only for a caller who
/// holds those rights on it.
fn backend_needs(msg: &serde_json::Value) -> Option<Need> {
    let name = msg
        .get("value")?
        .get("backend_bck")?
        .get("name")?
        .as_str()?
        .trim();
    (!name.is_empty()).then(|| {
        need(
            ACCESS_RW,
            Some(name),
            "use the bucket as another's backend (backend_bck)",
        )
    })
}

/// What `ctx` needs. Bucket control messages (small JSON) are read to learn
/// the action; the body is handed back re-wrapped.
pub async fn required(ctx: &Ctx, ep: &Endpoint<'_>, body: Body) -> ApiResult<(Vec<Need>, Body)> {
    let m = &ctx.method;
    let show = |what: &str| {
        if m == Method::GET || m == Method::HEAD {
            need(SHOW_CLUSTER, None, format!("show {what}"))
        } else {
            need(ADMIN, None, format!("{m} {what} (admin only)"))
        }
    };
    let needs = match ep {
        Endpoint::Object { bucket, .. } if *m == Method::POST => {
            // The action decides: a multipart create or completion writes
            // the object (PUT); a rename moves it.
            let b = bucket_name(bucket)?;
            let raw = read_body(body, 2 << 20).await?;
            let msg: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
            let action = msg.get("action").and_then(|a| a.as_str()).unwrap_or("");
            let n = if ctx.query.get("uploadId").is_some()
                || matches!(action, "mpt-upload" | "mpt-complete")
            {
                need(PUT, Some(&b), "PUT objects (multipart upload)")
            } else if action == "promote" {
                // Reads the targets' own filesystems: as AIStore's
                // admin-level permission.
                need(
                    ADMIN,
                    None,
                    "promote files from targets' filesystems (admin only)",
                )
            } else if action == "blob-download" {
                // Into the cache, as a cold GET would.
                need(GET, Some(&b), "GET objects (blob download)")
            } else {
                need(OBJ_MOVE, Some(&b), "move/rename objects")
            };
            return Ok((vec![n], Body::from(raw)));
        }
        Endpoint::Object { bucket, .. } => {
            let b = bucket_name(bucket)?;
            let (bits, verb) = match *m {
                Method::GET => (GET, "GET"),
                Method::HEAD => (OBJ_HEAD, "HEAD"),
                Method::PUT => (PUT, "PUT"),
                // Aborting a multipart upload drops what was written.
                Method::DELETE if ctx.query.get("uploadId").is_some() => {
                    (PUT, "abort multipart uploads of")
                }
                Method::DELETE => (OBJ_DELETE, "DELETE"),
                _ => (OBJ_UPDATE, "update"),
            };
            vec![need(bits, Some(&b), format!("{verb} objects"))]
        }
        Endpoint::Bucket(bucket) => {
            let b = bucket_name(bucket)?;
            match *m {
                Method::GET => vec![need(OBJ_LIST, Some(&b), "list objects")],
                Method::HEAD => vec![need(BCK_HEAD, Some(&b), "HEAD bucket")],
                Method::DELETE => {
                    // Deleting objects by list, template or prefix needs
                    // object deletes; anything else (destroy, evict) the
                    // bucket's.
                    let raw = read_body(body, 16 << 20).await?;
                    let msg: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
                    let needs = match msg.get("action").and_then(|a| a.as_str()) {
                        Some("delete-listrange") => {
                            vec![need(OBJ_DELETE, Some(&b), "DELETE objects")]
                        }
                        _ => vec![need(DESTROY_BUCKET, Some(&b), "destroy bucket")],
                    };
                    return Ok((needs, Body::from(raw)));
                }
                Method::POST => {
                    let raw = read_body(body, 16 << 20).await?;
                    let msg: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
                    let action = msg.get("action").and_then(|a| a.as_str()).unwrap_or("");
                    let needs = match action {
                        "create-bck" => {
                            let mut v = vec![need(CREATE_BUCKET, Some(&b), "create bucket")];
                            v.extend(backend_needs(&msg));
                            v
                        }
                        "move-bck" => vec![need(MOVE_BUCKET, Some(&b), "move bucket")],
                        a if a.starts_with("copy-") || a.starts_with("etl-") => {
                            let mut v =
                                vec![need(GET | OBJ_LIST, Some(&b), "read (copy/transform)")];
                            if let Some(d) = destination(ctx, &msg) {
                                v.push(need(PUT, Some(&d), "PUT objects (copy/transform)"));
                            }
                            v
                        }
                        // They change the bucket's properties (mirror, ec)
                        // first: what a PATCH of them needs, and PUT.
                        "make-n-copies" | "ec-encode" => vec![need(
                            PATCH | PUT,
                            Some(&b),
                            format!("change the bucket's redundancy (\"{action}\")"),
                        )],
                        _ => vec![need(
                            PUT,
                            Some(&b),
                            format!("run \"{action}\" on the bucket"),
                        )],
                    };
                    return Ok((needs, Body::from(raw)));
                }
                Method::PUT => {
                    // `archive`: read the source, write the shard's bucket.
                    let raw = read_body(body, 16 << 20).await?;
                    let msg: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
                    let mut v = vec![need(GET | OBJ_LIST, Some(&b), "read (archive)")];
                    let dst = msg
                        .get("value")
                        .and_then(|v| v.get("tobck"))
                        .and_then(|t| t.get("name"))
                        .and_then(|n| n.as_str())
                        .filter(|n| !n.is_empty())
                        .map(str::to_string)
                        .unwrap_or_else(|| b.clone());
                    v.push(need(PUT, Some(&dst), "PUT objects (archive)"));
                    return Ok((v, Body::from(raw)));
                }
                _ => {
                    let raw = read_body(body, 16 << 20).await?;
                    let msg: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
                    let mut v = vec![need(PATCH, Some(&b), "set bucket properties")];
                    v.extend(backend_needs(&msg));
                    return Ok((v, Body::from(raw)));
                }
            }
        }
        Endpoint::Moss(bucket) => {
            // Get-Batch reads every item's bucket.
            let raw = read_body(body, 64 << 20).await?;
            let msg: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
            let default = bucket_name(bucket)?;
            let mut buckets: Vec<String> = msg
                .get("in")
                .and_then(|i| i.as_array())
                .map(|items| {
                    items
                        .iter()
                        .map(|it| {
                            let by_uname = it
                                .get("uname")
                                .and_then(|u| u.as_str())
                                .filter(|u| !u.is_empty())
                                .and_then(|u| ais_core::Bck::parse_uname(u).ok())
                                .map(|(b, _)| b.name);
                            by_uname.unwrap_or_else(|| {
                                it.get("bucket")
                                    .and_then(|b| b.as_str())
                                    .filter(|b| !b.is_empty())
                                    .map(str::to_string)
                                    .unwrap_or_else(|| default.clone())
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            buckets.sort();
            buckets.dedup();
            if buckets.is_empty() {
                buckets.push(default);
            }
            let v = buckets
                .iter()
                .map(|b| need(GET, Some(b), "GET objects (Get-Batch)"))
                .collect();
            return Ok((v, Body::from(raw)));
        }
        Endpoint::Buckets => {
            if m == Method::GET || m == Method::HEAD {
                vec![need(LIST_BUCKETS, None, "list buckets")]
            } else {
                vec![need(ADMIN, None, format!("{m} buckets (admin only)"))]
            }
        }
        // Logs name every bucket's objects and may quote a backend's
        // (presigned) URLs: admins only.
        Endpoint::Daemon | Endpoint::ReverseDaemon if ctx.query.get("what") == Some("log") => {
            vec![need(ADMIN, None, "read a node's log (admin only)")]
        }
        Endpoint::SetPrimary(_) => vec![need(ADMIN, None, "set the primary proxy (admin only)")],
        // As AIStore: dSort reads and writes whole buckets.
        Endpoint::Sort(_) => vec![need(ADMIN, None, "dsort (admin only)")],
        // The nodes connect where a download names: admins only.
        Endpoint::Download(_) => vec![need(ADMIN, None, "download (admin only)")],
        Endpoint::ClusterSetConfig
        | Endpoint::DaemonSetConfig
        | Endpoint::ReverseDaemonSetConfig => {
            vec![need(ADMIN, None, "change the configuration (admin only)")]
        }
        Endpoint::Cluster
        | Endpoint::Daemon
        | Endpoint::DaemonMountpaths
        | Endpoint::ReverseDaemon => {
            vec![show("cluster")]
        }
        Endpoint::Etl(_) => vec![show("ETL")],
        _ => vec![],
    };
    Ok((needs, body))
}

fn bucket_name(raw: &str) -> ApiResult<String> {
    pct_decode(raw)
}

/// The destination of a copy/transform job: `bck_to`, `tobck`, or the name.
fn destination(ctx: &Ctx, msg: &serde_json::Value) -> Option<String> {
    let strip = |s: &str| {
        s.rsplit("://")
            .next()
            .unwrap_or(s)
            .trim_end_matches('/')
            .to_string()
    };
    if let Some(u) = ctx.query.get("bck_to").filter(|u| !u.is_empty()) {
        // uname: `ais/@#/NAME/` or `ais://NAME`
        let u = u.trim_end_matches('/');
        return Some(u.rsplit('/').next().map(strip).unwrap_or_else(|| strip(u)));
    }
    if let Some(n) = msg
        .get("value")
        .and_then(|v| v.get("tobck"))
        .and_then(|t| t.get("name"))
        .and_then(|n| n.as_str())
    {
        return Some(n.to_string());
    }
    msg.get("name")
        .and_then(|n| n.as_str())
        .filter(|n| !n.is_empty())
        .map(strip)
}

/// The bits `claims` grant on `bucket` (cluster-wide bits apply to every bucket).
pub fn granted(claims: &Claims, bucket: Option<&str>) -> u64 {
    let mut bits = claims.cluster_perm;
    if let Some(b) = bucket {
        for bp in &claims.buckets {
            if bp.bucket == b {
                bits |= bp.perm;
            }
        }
    }
    bits
}

/// 403 unless `claims` grant every bit of `n`.
pub fn check(claims: &Claims, n: &Need) -> ApiResult<()> {
    let have = granted(claims, n.bucket.as_deref());
    if have & n.bits == n.bits {
        return Ok(());
    }
    let who = format!("user \"{}\"", claims.username);
    let role = if claims.roles.is_empty() {
        String::new()
    } else {
        format!(" (role {})", claims.roles.join(", "))
    };
    let msg = match &n.bucket {
        Some(b) if have & ACCESS_RO == 0 => {
            format!("{who}{role} has no access to bucket \"ais://{b}\"")
        }
        Some(b) if have & (ACCESS_RW & !ACCESS_RO) == 0 => {
            format!(
                "read-only role cannot {} in bucket \"ais://{b}\" ({who}{role})",
                n.what
            )
        }
        Some(b) => format!(
            "{who}{role} is not allowed to {} in bucket \"ais://{b}\"",
            n.what
        ),
        None => format!("{who}{role} is not allowed to {}", n.what),
    };
    Err(ApiError::Forbidden(msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cred::BucketPerm;

    #[test]
    fn read_only_and_bucket_limits() {
        let ro = Claims {
            username: "r".into(),
            roles: vec!["Guest".into()],
            cluster_perm: ACCESS_RO | CLUSTER_RO,
            ..Default::default()
        };
        assert!(check(&ro, &need(GET, Some("b"), "GET objects")).is_ok());
        let e = check(&ro, &need(PUT, Some("b"), "PUT objects")).unwrap_err();
        assert!(e.to_string().contains("read-only role"), "{e}");
        let limited = Claims {
            username: "l".into(),
            cluster_perm: CLUSTER_RO,
            buckets: vec![BucketPerm {
                bucket: "mine".into(),
                perm: ACCESS_RW,
            }],
            ..Default::default()
        };
        assert!(check(&limited, &need(PUT, Some("mine"), "PUT objects")).is_ok());
        let e = check(&limited, &need(GET, Some("other"), "GET objects")).unwrap_err();
        assert!(
            e.to_string()
                .contains("no access to bucket \"ais://other\""),
            "{e}"
        );
        assert_eq!(canonical_role("read-only"), "Guest");
    }
}
