//! The node's one error type. Every failure a handler returns is an
//! [`ApiError`]: it knows its HTTP status and AIStore `tcode`, and is rendered
//! in AIStore's JSON shape by `http::render`. Library crates keep their own
//! `thiserror` enums; they are converted here, once.

use ais_cluster::ClusterError;
use ais_core::{Bck, CoreError};
use ais_etl::EtlError;
use ais_storage::StorageError;
use axum::http::StatusCode;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("bucket \"{0}\" does not exist")]
    BucketNotFound(String),
    #[error("{node}: {cname} does not exist")]
    ObjectNotFound { node: String, cname: String },
    #[error("{node}: etl job {name} does not exist")]
    EtlNotFound { node: String, name: String },
    #[error("{0}")]
    NotFound(String),
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("bucket \"{0}\" already exists")]
    BucketExists(String),
    #[error("{node}: etl job {name} already exists")]
    EtlExists { node: String, name: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    RangeNotSatisfiable(String),
    /// The user's transform failed (4xx on purpose: the SDK retries 5xx for
    /// ~90 s, which would only repeat the error).
    #[error("{0}")]
    Transform(String),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    Corrupt(String),
    #[error("{0}")]
    NotImplemented(String),
    /// Retryable: a node is starting, down, or not reachable right now.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    InsufficientStorage(String),
    /// 429 with `Retry-After` (throttled logins, too many connections).
    #[error("{msg}")]
    TooManyRequests { msg: String, retry_after_s: u64 },
    /// An error another node answered with, relayed as is.
    #[error("{message}")]
    Peer {
        status: StatusCode,
        tcode: String,
        message: String,
    },
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::BadRequest(m.into())
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::Internal(m.into())
    }
    pub fn unavailable(m: impl Into<String>) -> Self {
        Self::Unavailable(m.into())
    }
    pub fn bucket_not_found(bck: &Bck) -> Self {
        Self::BucketNotFound(bck.cname())
    }
    pub fn object_not_found(node: &str, bck: &Bck, obj: &str) -> Self {
        Self::ObjectNotFound {
            node: node.into(),
            cname: format!("{}/{obj}", bck.cname()),
        }
    }
    pub fn etl_not_found(node: &str, name: &str) -> Self {
        Self::EtlNotFound {
            node: node.into(),
            name: name.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            BadRequest(_) => StatusCode::BAD_REQUEST,
            Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Forbidden(_) => StatusCode::FORBIDDEN,
            BucketNotFound(_) | ObjectNotFound { .. } | EtlNotFound { .. } | NotFound(_) => {
                StatusCode::NOT_FOUND
            }
            MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            BucketExists(_) | EtlExists { .. } | Conflict(_) => StatusCode::CONFLICT,
            RangeNotSatisfiable(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            Transform(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Internal(_) | Corrupt(_) => StatusCode::INTERNAL_SERVER_ERROR,
            NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Peer { status, .. } => *status,
        }
    }

    /// AIStore's type code, which the SDK maps to its exception classes.
    pub fn tcode(&self) -> &str {
        use ApiError::*;
        match self {
            BucketNotFound(_) => "ErrBckNotFound",
            ObjectNotFound { .. } => "ErrNotFound",
            EtlNotFound { .. } => "ErrETLNotFound",
            BucketExists(_) => "ErrBucketAlreadyExists",
            Transform(_) => "ErrETL",
            Corrupt(_) => "ErrBadCksum",
            Peer { tcode, .. } => tcode,
            _ => "",
        }
    }

    /// Same error, message prefixed with what was being done.
    pub fn context(self, what: impl std::fmt::Display) -> Self {
        let status = self.status();
        let tcode = self.tcode().to_string();
        ApiError::Peer {
            status,
            tcode,
            message: format!("{what}: {self}"),
        }
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Invalid(m) => Self::BadRequest(m),
            CoreError::Unsupported(m) => Self::NotImplemented(m),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> Self {
        match e {
            e @ ClusterError::ForeignNode { .. } => Self::Conflict(e.to_string()),
            e @ ClusterError::Refused(_) => Self::Conflict(e.to_string()),
            e @ ClusterError::NoMap => Self::Unavailable(e.to_string()),
            e @ (ClusterError::NotLeader(_) | ClusterError::Replication(_)) => {
                Self::Unavailable(e.to_string())
            }
            ClusterError::Io { context, source } if is_no_space(&source) => {
                Self::InsufficientStorage(format!(
                    "cluster metadata: {context}: {source}; free some space and retry"
                ))
            }
            e => Self::Internal(format!("cluster metadata: {e}")),
        }
    }
}

/// A full disk (or quota): 507, so clients know retrying won't help until
/// space is freed.
pub fn is_no_space(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
        || e.raw_os_error() == Some(libc::ENOSPC)
        || e.raw_os_error() == Some(libc::EDQUOT)
}

/// Storage failures on one object, with the node and object named.
pub fn storage(node: &str, bck: &Bck, obj: &str, e: StorageError) -> ApiError {
    match e {
        StorageError::NotFound => ApiError::object_not_found(node, bck, obj),
        StorageError::Corrupt { stored, computed } => ApiError::Corrupt(format!(
            "{node}: {}/{obj} is corrupted: stored xxhash {stored}, computed {computed}",
            bck.cname()
        )),
        StorageError::SizeMismatch { stored, actual } => ApiError::Corrupt(format!(
            "{node}: {}/{obj} is damaged: {stored} bytes were stored, the file has {actual}",
            bck.cname()
        )),
        StorageError::Archive(why) => {
            ApiError::BadRequest(format!("{node}: {}/{obj}: {why}", bck.cname()))
        }
        StorageError::Io { context, source } if is_no_space(&source) => {
            ApiError::InsufficientStorage(format!(
                "{node}: no space left to store {}/{obj} ({context}: {source}); free some space or add a mountpath",
                bck.cname()
            ))
        }
        e => ApiError::Internal(format!("{node}: {}/{obj}: {e}", bck.cname())),
    }
}

/// ETL failures: `name` is empty for parse-time errors (no ETL yet).
pub fn etl(node: &str, name: &str, e: EtlError) -> ApiError {
    match e {
        EtlError::NotFound(_) => ApiError::etl_not_found(node, name),
        EtlError::Stopped => ApiError::BadRequest(format!(
            "{node}: etl job {name} is stopped (start it with `ais etl start {name}`)"
        )),
        e => {
            let msg = if name.is_empty() {
                format!("{node}: {e}")
            } else {
                format!("{node}: etl job {name}: {e}")
            };
            etl_kind(&e, msg)
        }
    }
}

/// The status of an ETL failure of this kind (per-object error records).
pub fn etl_kind_status(kind: ais_etl::EtlErrorKind) -> StatusCode {
    use ais_etl::EtlErrorKind as K;
    match kind {
        K::Invalid | K::Init | K::Stopped => StatusCode::BAD_REQUEST,
        K::NotFound => StatusCode::NOT_FOUND,
        K::Transform | K::Timeout | K::WorkerDied | K::Limit | K::Failed => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The status an ETL failure gets, with a given message.
pub fn etl_kind(e: &EtlError, msg: String) -> ApiError {
    match etl_kind_status(e.kind()) {
        StatusCode::BAD_REQUEST => ApiError::BadRequest(msg),
        StatusCode::NOT_FOUND => ApiError::NotFound(msg),
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::Transform(msg),
        _ => ApiError::Internal(msg),
    }
}

impl From<crate::backend::BackendError> for ApiError {
    fn from(e: crate::backend::BackendError) -> Self {
        use crate::backend::BackendError::*;
        match &e {
            NoEndpoint(_) | BadEndpoint(..) | BadName(..) => ApiError::BadRequest(e.to_string()),
            // The node has no such store configured.
            NoConfig(_) => ApiError::NotImplemented(e.to_string()),
            Unreachable(..) => ApiError::Unavailable(e.to_string()),
            Status { status: 403, .. } => ApiError::Forbidden(e.to_string()),
            Status { status: 404, .. } => ApiError::NotFound(e.to_string()),
            // The remote failed: a bad gateway, not our internal error.
            _ => ApiError::Peer {
                status: StatusCode::BAD_GATEWAY,
                tcode: String::new(),
                message: e.to_string(),
            },
        }
    }
}
