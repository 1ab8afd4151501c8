//! Bucket and object naming: validation rules, canonical names (`ais://b`) and
//! the "uname" that placement hashes (`ais/@#/bucket/object`).

use crate::CoreError;
use serde::{Deserialize, Serialize};

/// Longest single path component most Linux filesystems accept.
pub const MAX_COMPONENT_LEN: usize = 255;
/// The one path component no object name may have: the storage layout uses
/// it as the file name of object `p` inside the directory `p/` when other
/// objects are named `p/…` (`ais_storage::layout`).
pub const RESERVED_COMPONENT: &str = ".ais~self";
/// Upper bound on a whole object name; keeps `<mountpath>/<bucket>/<name>` under PATH_MAX.
pub const MAX_OBJ_NAME_LEN: usize = 3072;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Namespace {
    #[serde(default)]
    pub uuid: String,
    #[serde(default)]
    pub name: String,
}

/// A bucket: name plus provider. Only the `ais` provider stores data here.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Bck {
    pub name: String,
    pub provider: String,
    #[serde(default)]
    pub namespace: Namespace,
}

impl Bck {
    pub fn ais(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            provider: "ais".into(),
            namespace: Namespace::default(),
        }
    }

    /// Canonical name used in messages: `ais://name`.
    pub fn cname(&self) -> String {
        let scheme = match self.provider.as_str() {
            PROVIDER_AWS => "s3",
            PROVIDER_GCP => "gs",
            PROVIDER_AZURE => "az",
            p => p,
        };
        format!("{scheme}://{}", self.name)
    }

    /// A bucket backed by a remote store (`s3://`).
    pub fn is_remote(&self) -> bool {
        self.provider != "ais"
    }

    /// `provider/@uuid#ns/name/` — the prefix of an object's uname.
    pub fn uname_prefix(&self) -> String {
        format!(
            "{}/@{}#{}/{}/",
            self.provider, self.namespace.uuid, self.namespace.name, self.name
        )
    }

    pub fn obj_uname(&self, obj: &str) -> String {
        let mut s = self.uname_prefix();
        s.push_str(obj);
        s
    }

    /// Validates the name and normalises the provider (`""` → `ais`).
    pub fn validated(name: &str, provider: Option<&str>) -> Result<Self, CoreError> {
        let provider = normalize_provider(provider.unwrap_or(""))?;
        validate_bucket_name(name)?;
        Ok(Self {
            name: name.to_string(),
            provider,
            namespace: Namespace::default(),
        })
    }

    /// Parses `ais://bucket` (or a bare `bucket`).
    pub fn parse_uri(s: &str) -> Result<(Self, String), CoreError> {
        let (provider, rest) = match s.split_once("://") {
            Some((p, r)) => (p, r),
            None => ("ais", s),
        };
        let (bucket, obj) = match rest.split_once('/') {
            Some((b, o)) => (b, o.to_string()),
            None => (rest, String::new()),
        };
        Ok((Self::validated(bucket, Some(provider))?, obj))
    }

    /// Parses a bucket uname `provider/@uuid#ns/bucket/[object]` (as in `bck_to`).
    pub fn parse_uname(s: &str) -> Result<(Self, String), CoreError> {
        let mut parts = s.splitn(4, '/');
        let provider = parts.next().unwrap_or("");
        let ns = parts.next().unwrap_or("");
        let bucket = parts.next().unwrap_or("");
        let obj = parts.next().unwrap_or("").to_string();
        let mut bck = Self::validated(bucket, Some(provider))?;
        if let Some(ns) = ns.strip_prefix('@') {
            let (uuid, name) = ns.split_once('#').unwrap_or((ns, ""));
            bck.namespace = Namespace {
                uuid: uuid.into(),
                name: name.into(),
            };
        }
        Ok((bck, obj))
    }
}

/// Amazon S3 and S3-compatible backends (`s3://` buckets), AIStore's name.
pub const PROVIDER_AWS: &str = "aws";
/// Google Cloud Storage (`gs://` buckets), AIStore's name.
pub const PROVIDER_GCP: &str = "gcp";
/// Azure Blob Storage (`az://` buckets), AIStore's name.
pub const PROVIDER_AZURE: &str = "azure";

/// Whether `p` (normalized) is a cloud provider whose buckets the cluster
/// caches.
pub fn is_cloud_provider(p: &str) -> bool {
    matches!(p, PROVIDER_AWS | PROVIDER_GCP | PROVIDER_AZURE)
}

pub fn normalize_provider(p: &str) -> Result<String, CoreError> {
    match p {
        "" | "ais" => Ok("ais".into()),
        "aws" | "s3" => Ok(PROVIDER_AWS.into()),
        "gcp" | "gs" => Ok(PROVIDER_GCP.into()),
        "azure" | "az" => Ok(PROVIDER_AZURE.into()),
        "oci" | "ht" => Err(CoreError::Unsupported(format!(
            "provider \"{p}\" is not supported: aistore-rs stores ais:// buckets and fronts s3://, gs:// and az:// ones"
        ))),
        other => Err(CoreError::invalid(format!(
            "invalid provider \"{other}\" (expected \"ais\", \"aws\"/\"s3\", \"gcp\"/\"gs\" or \"azure\"/\"az\")"
        ))),
    }
}

pub fn validate_bucket_name(name: &str) -> Result<(), CoreError> {
    let bad = |why: &str| {
        Err(CoreError::invalid(format!(
            "bucket name \"{name}\" is invalid: {why}"
        )))
    };
    if name.is_empty() {
        return bad("must not be empty");
    }
    if name.len() > 64 {
        return bad("must be at most 64 characters");
    }
    if name.starts_with('.') {
        return bad("must not start with '.'");
    }
    if name.contains("..") {
        return bad("must not contain \"..\"");
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-')
    {
        return bad("may contain only letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

/// Object names map to relative file paths, so every rule here is also a
/// guard against escaping the mountpath.
pub fn validate_object_name(name: &str) -> Result<(), CoreError> {
    let bad = |why: &str| {
        Err(CoreError::invalid(format!(
            "object name \"{}\" is invalid: {why}",
            name.escape_debug()
        )))
    };
    if name.is_empty() {
        return bad("must not be empty");
    }
    if name.len() > MAX_OBJ_NAME_LEN {
        return bad(&format!("longer than {MAX_OBJ_NAME_LEN} bytes"));
    }
    if name.contains('\0') {
        return bad("contains a NUL byte");
    }
    if name.starts_with('/') {
        return bad("must not start with '/'");
    }
    if name.ends_with('/') {
        return bad("must not end with '/'");
    }
    if name.starts_with("~/") {
        return bad("must not start with \"~/\"");
    }
    for comp in name.split('/') {
        match comp {
            "" => return bad("contains an empty path component (\"//\")"),
            "." | ".." => return bad("contains a \".\" or \"..\" path component"),
            RESERVED_COMPONENT => {
                return bad(&format!(
                    "\"{RESERVED_COMPONENT}\" is a reserved path component"
                ))
            }
            c if c.len() > MAX_COMPONENT_LEN => {
                return bad(&format!(
                    "a path component is longer than {MAX_COMPONENT_LEN} bytes"
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        assert!(validate_bucket_name("imagenet").is_ok());
        assert!(validate_bucket_name("a-b_c.d").is_ok());
        for bad in ["", ".x", "a..b", "a/b", "a b", &"x".repeat(65), "ü"] {
            let e = validate_bucket_name(bad).unwrap_err();
            assert!(matches!(e, CoreError::Invalid(_)), "{bad}");
            assert!(e.to_string().contains("bucket name"), "{e}");
        }
    }

    #[test]
    fn object_names() {
        assert!(validate_object_name("train/0001.jpg").is_ok());
        assert!(validate_object_name(".hidden/x").is_ok());
        assert!(validate_object_name("p/.ais~selfie").is_ok());
        for bad in [
            "",
            "a/../b",
            "..",
            "./a",
            "a//b",
            "/abs",
            "dir/",
            "a\0b",
            "~/x",
            ".ais~self",
            "p/.ais~self",
            "p/.ais~self/q",
            &"x".repeat(256),
        ] {
            assert!(
                matches!(
                    validate_object_name(bad).unwrap_err(),
                    CoreError::Invalid(_)
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn unames() {
        let b = Bck::ais("dst");
        assert_eq!(b.uname_prefix(), "ais/@#/dst/");
        assert_eq!(b.obj_uname("a/b"), "ais/@#/dst/a/b");
        let (b2, o) = Bck::parse_uname("ais/@#/dst/x/y").unwrap();
        assert_eq!((b2.name.as_str(), o.as_str()), ("dst", "x/y"));
        let (b3, o3) = Bck::parse_uname("ais//dst/").unwrap();
        assert_eq!((b3.name.as_str(), o3.as_str()), ("dst", ""));
        let (b4, o4) = Bck::parse_uri("ais://imagenet/train/a.jpg").unwrap();
        assert_eq!((b4.name.as_str(), o4.as_str()), ("imagenet", "train/a.jpg"));
        assert!(matches!(
            Bck::parse_uri("ht://x").unwrap_err(),
            CoreError::Unsupported(_)
        ));
        for (uri, provider, cname) in [("gs://x/o", "gcp", "gs://x"), ("az://x", "azure", "az://x")]
        {
            let (b, _) = Bck::parse_uri(uri).unwrap();
            assert_eq!((b.provider.as_str(), b.cname().as_str()), (provider, cname));
            assert!(b.is_remote());
        }
        let (s3, _) = Bck::parse_uri("s3://x/o").unwrap();
        assert_eq!(
            (s3.provider.as_str(), s3.cname()),
            ("aws", "s3://x".to_string())
        );
        assert!(s3.is_remote());
        assert_eq!(s3.obj_uname("o"), "aws/@#/x/o");
    }
}
