//! The checksum types a bucket may ask for besides xxhash (AIStore's
//! `checksum.type`: md5, sha256, sha512, crc32c), computed as an object is
//! written. xxhash stays every object's integrity checksum (verified on
//! every read); the bucket's type is what clients are shown and what a
//! client's `Ais-Checksum-*` headers are checked against.

use md5::Digest;

/// Types computed besides xxhash.
pub const EXTRA_TYPES: &[&str] = &["md5", "sha256", "sha512", "crc32c"];

/// A running hash of one of [`EXTRA_TYPES`].
#[derive(Clone)]
pub enum Hasher {
    Md5(md5::Md5),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
    Crc32c(u32),
}

impl Hasher {
    /// A hasher for `kind`; `None` for xxhash, none, or an unknown type.
    pub fn new(kind: &str) -> Option<Self> {
        match kind {
            "md5" => Some(Self::Md5(md5::Md5::new())),
            "sha256" => Some(Self::Sha256(sha2::Sha256::new())),
            "sha512" => Some(Self::Sha512(sha2::Sha512::new())),
            "crc32c" => Some(Self::Crc32c(0)),
            _ => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Md5(_) => "md5",
            Self::Sha256(_) => "sha256",
            Self::Sha512(_) => "sha512",
            Self::Crc32c(_) => "crc32c",
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Md5(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
            Self::Sha512(h) => h.update(data),
            Self::Crc32c(c) => *c = crc32c::crc32c_append(*c, data),
        }
    }

    /// The digest so far, in hex (the hasher goes on).
    pub fn hex(&self) -> String {
        fn hex(b: &[u8]) -> String {
            b.iter().map(|x| format!("{x:02x}")).collect()
        }
        match self {
            Self::Md5(h) => hex(&h.clone().finalize()),
            Self::Sha256(h) => hex(&h.clone().finalize()),
            Self::Sha512(h) => hex(&h.clone().finalize()),
            Self::Crc32c(c) => format!("{c:08x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        let want = [
            ("md5", "900150983cd24fb0d6963f7d28e17f72"),
            (
                "sha256",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            ("crc32c", "364b3fb7"),
        ];
        for (kind, hex) in want {
            let mut h = Hasher::new(kind).unwrap();
            h.update(b"a");
            h.update(b"bc");
            assert_eq!(h.hex(), hex, "{kind}");
            assert_eq!(h.kind(), kind);
        }
        assert!(Hasher::new("sha512").unwrap().hex().len() == 128);
        assert!(Hasher::new("xxhash").is_none());
    }
}
