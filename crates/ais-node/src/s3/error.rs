//! S3 errors: an [`S3Error`] carries S3's status, `Code` and message and is
//! rendered as S3's XML error body (no body for HEAD). Node errors
//! ([`ApiError`], including errors relayed from other nodes) map onto S3
//! codes here, once.

use crate::error::ApiError;
use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;

/// One S3 error response.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct S3Error {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

pub type S3Result<T> = Result<T, S3Error>;

impl S3Error {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn invalid_argument(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidArgument", m)
    }
    pub fn invalid_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidRequest", m)
    }
    pub fn malformed_xml(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MalformedXML", m)
    }
    pub fn access_denied(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "AccessDenied", m)
    }
    pub fn signature_mismatch(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "SignatureDoesNotMatch", m)
    }
    pub fn no_such_bucket(b: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NoSuchBucket",
            format!("The specified bucket does not exist: {b}"),
        )
    }
    pub fn no_such_key(b: &str, k: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            format!("The specified key does not exist: {b}/{k}"),
        )
    }
    pub fn no_such_upload(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NoSuchUpload",
            format!("The specified multipart upload does not exist: {id}"),
        )
    }
    pub fn not_implemented(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, "NotImplemented", m)
    }
    pub fn unavailable(m: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", m)
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", m)
    }
    pub fn precondition_failed() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
        )
    }

    /// A node error about an object (`key` non-empty) or a bucket.
    pub fn from_api(e: ApiError, key: &str) -> Self {
        let status = e.status();
        let tcode = e.tcode().to_string();
        let message = e.to_string();
        if let Some(code) = s3_code(&tcode) {
            return Self::new(status, code, message);
        }
        let code = match (status, tcode.as_str()) {
            (_, "ErrBckNotFound") => return Self::new(status, "NoSuchBucket", message),
            (_, "ErrBucketAlreadyExists") => {
                return Self::new(StatusCode::CONFLICT, "BucketAlreadyOwnedByYou", message)
            }
            (StatusCode::NOT_FOUND, _) if matches!(e, ApiError::BucketNotFound(_)) => {
                "NoSuchBucket"
            }
            (StatusCode::NOT_FOUND, "ErrETLNotFound") => "NoSuchETL",
            (StatusCode::NOT_FOUND, _) if !key.is_empty() => {
                return Self::new(status, "NoSuchKey", message)
            }
            (StatusCode::NOT_FOUND, _) => "NoSuchBucket",
            (StatusCode::RANGE_NOT_SATISFIABLE, _) => "InvalidRange",
            (StatusCode::BAD_REQUEST, _) => "InvalidArgument",
            (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, _) => {
                return Self::new(StatusCode::FORBIDDEN, "AccessDenied", message)
            }
            (StatusCode::METHOD_NOT_ALLOWED, _) => "MethodNotAllowed",
            (StatusCode::CONFLICT, _) => "OperationAborted",
            (StatusCode::UNPROCESSABLE_ENTITY, _) => "ETLError",
            (StatusCode::NOT_IMPLEMENTED, _) => "NotImplemented",
            (StatusCode::SERVICE_UNAVAILABLE, _) => "ServiceUnavailable",
            (StatusCode::INSUFFICIENT_STORAGE, _) => "InsufficientStorage",
            _ => "InternalError",
        };
        Self::new(status, code, message)
    }

    /// S3's XML error body (headers only for HEAD, as S3 answers).
    pub fn render(&self, method: &Method, resource: &str) -> Response {
        let mut r = if *method == Method::HEAD {
            Response::new(Body::empty())
        } else {
            let mut x = super::xml::Xml::doc();
            x.open("Error")
                .leaf("Code", self.code)
                .leaf("Message", &self.message)
                .leaf("Resource", resource)
                .leaf("RequestId", &ais_core::gen_id(16))
                .close("Error");
            super::xml_response(self.status, x)
        };
        *r.status_mut() = self.status;
        if let Ok(v) = HeaderValue::from_str(self.code) {
            r.headers_mut().insert("x-amz-error-code", v);
        }
        r
    }
}

/// S3 codes a target's S3 side answers with (carried as the error's tcode).
const TARGET_CODES: &[&str] = &[
    "BadDigest",
    "IncompleteBody",
    "InvalidArgument",
    "InvalidDigest",
    "InvalidPart",
    "InvalidPartOrder",
    "EntityTooSmall",
    "NoSuchUpload",
    "NoSuchKey",
    "NoSuchBucket",
    "InvalidRequest",
];

fn s3_code(tcode: &str) -> Option<&'static str> {
    TARGET_CODES.iter().find(|c| **c == tcode).copied()
}

impl From<ApiError> for S3Error {
    fn from(e: ApiError) -> Self {
        Self::from_api(e, "")
    }
}

impl From<crate::rpc::RpcError> for S3Error {
    fn from(e: crate::rpc::RpcError) -> Self {
        Self::from(ApiError::from(e))
    }
}
