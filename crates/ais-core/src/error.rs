//! Errors of the bottom layer (invalid names, properties, templates) and the
//! JSON error body that AIStore nodes send. Which HTTP status a failure gets
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

/// Full JSON error body as AIStore sends it (wire type).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ErrBody {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tcode: String,
    pub message: String,
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub url_path: String,
    #[serde(default)]
    pub remote_addr: String,
    #[serde(default)]
    pub caller: String,
    #[serde(default)]
    pub node: String,
    #[serde(default)]
    pub status: u16,
}
