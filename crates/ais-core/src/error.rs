//! Errors of the bottom layer (invalid names, properties, templates) and the
//! part of AIStore's JSON error body that clients act on. Which HTTP status a failure gets
//! is decided by the node's `ApiError`, not here.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The caller sent something malformed or out of range.
    #[error("{0}")]
    Invalid(String),
    /// Well-formed but not something aistore-rs does (e.g. a cloud provider).
    #[error("{0}")]
    Unsupported(String),
    /// A bug or an impossible state; never the caller's fault.
    #[error("{0}")]
    Internal(String),
}

impl CoreError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
}

/// What a client reads from an AIStore JSON error body (the node renders
/// the full body, status included, in `ais-node`).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ErrMsg {
    #[serde(default)]
    pub tcode: String,
    pub message: String,
}
