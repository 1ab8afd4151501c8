//! The one error type that crosses the HTTP boundary: a status code, AIStore's
//! `tcode` and a human-readable message. Handlers convert every failure into
//! this so the wire shape (see `aistore-api.md` §11) is produced in one place.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{message}")]
pub struct AisError {
    pub status: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tcode: String,
    pub message: String,
}

impl AisError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            tcode: String::new(),
            message: message.into(),
        }
    }
    pub fn with_tcode(mut self, tcode: &str) -> Self {
        self.tcode = tcode.to_string();
        self
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, message)
    }
    pub fn bucket_not_found(bck: &crate::Bck) -> Self {
        Self::new(404, format!("bucket \"{}\" does not exist", bck.cname()))
            .with_tcode("ErrBckNotFound")
    }
    pub fn bucket_exists(bck: &crate::Bck) -> Self {
        Self::new(409, format!("bucket \"{}\" already exists", bck.cname()))
            .with_tcode("ErrBucketAlreadyExists")
    }
    pub fn object_not_found(node: &str, bck: &crate::Bck, obj: &str) -> Self {
        Self::new(404, format!("{node}: {}/{obj} does not exist", bck.cname()))
            .with_tcode("ErrNotFound")
    }
    pub fn etl_not_found(node: &str, name: &str) -> Self {
        Self::new(404, format!("{node}: etl job {name} does not exist"))
            .with_tcode("ErrETLNotFound")
    }
    pub fn etl_exists(node: &str, name: &str) -> Self {
        Self::new(409, format!("{node}: etl job {name} already exists"))
    }
}

/// Full JSON error body as AIStore sends it.
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
