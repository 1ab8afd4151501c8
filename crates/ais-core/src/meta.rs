//! Cluster metadata: the cluster map (Smap) of proxies and targets, the bucket
//! metadata (BMD), bucket properties and per-object attributes. The primary
//! proxy owns Smap/BMD and versions them; every node keeps the newest copy.

use crate::{hrw, CoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// (De)serialises integers as JSON strings (Go's `,string`), accepting both forms.
pub mod strnum {
    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum N {
            S(String),
            U(u64),
            I(i64),
        }
        match N::deserialize(d)? {
            N::S(s) if s.is_empty() => Ok(0),
            N::S(s) => s.parse().map_err(de::Error::custom),
            N::U(u) => Ok(u),
            N::I(i) => u64::try_from(i).map_err(de::Error::custom),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NetInfo {
    pub node_ip_addr: String,
    pub daemon_port: String,
    pub direct_url: String,
}

impl NetInfo {
    pub fn new(host: &str, port: u16) -> Self {
        Self {
            node_ip_addr: host.to_string(),
            daemon_port: port.to_string(),
            direct_url: format!("http://{host}:{port}"),
        }
    }
}

pub const NODE_FLAG_MAINTENANCE: u64 = 1 << 2;
pub const NODE_FLAG_DECOMMISSION: u64 = 1 << 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeType {
    Proxy,
    Target,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snode {
    pub daemon_id: String,
    pub daemon_type: NodeType,
    pub public_net: NetInfo,
    pub intra_control_net: NetInfo,
    pub intra_data_net: NetInfo,
    #[serde(default)]
    pub flags: u64,
    #[serde(default)]
    pub id_digest: u64,
}

impl Snode {
    pub fn new(id: &str, kind: NodeType, host: &str, port: u16) -> Self {
        let net = NetInfo::new(host, port);
        Self {
            daemon_id: id.to_string(),
            daemon_type: kind,
            public_net: net.clone(),
            intra_control_net: net.clone(),
            intra_data_net: net,
            flags: 0,
            id_digest: hrw::digest(id),
        }
    }
    pub fn url(&self) -> &str {
        &self.public_net.direct_url
    }
    /// `t[id]` / `p[id]`, as in AIStore's messages.
    pub fn name(&self) -> String {
        node_name(self.daemon_type, &self.daemon_id)
    }
}

pub fn node_name(kind: NodeType, id: &str) -> String {
    match kind {
        NodeType::Proxy => format!("p[{id}]"),
        NodeType::Target => format!("t[{id}]"),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Smap {
    #[serde(with = "strnum")]
    pub version: u64,
    pub uuid: String,
    #[serde(default)]
    pub creation_time: String,
    pub tmap: BTreeMap<String, Snode>,
    pub pmap: BTreeMap<String, Snode>,
    pub proxy_si: Snode,
}

impl Smap {
    /// The target that owns `uname`; `None` when there are no targets.
    pub fn owner(&self, uname: &str) -> Option<&Snode> {
        // Walked twice rather than collected: this runs on every redirect.
        let i = hrw::select(uname, self.active_targets().map(|t| t.id_digest))?;
        self.active_targets().nth(i)
    }

    /// Every active target in `uname`'s HRW order: the owner first, then
    /// where its redundancy (erasure-coded parts) goes.
    pub fn placement(&self, uname: &str) -> Vec<&Snode> {
        let active: Vec<&Snode> = self.active_targets().collect();
        hrw::order(uname, active.iter().map(|t| t.id_digest))
            .into_iter()
            .map(|i| active[i])
            .collect()
    }

    pub fn active_targets(&self) -> impl Iterator<Item = &Snode> {
        self.tmap
            .values()
            .filter(|t| t.flags & (NODE_FLAG_MAINTENANCE | NODE_FLAG_DECOMMISSION) == 0)
    }

    pub fn get_node(&self, id: &str) -> Option<&Snode> {
        self.tmap.get(id).or_else(|| self.pmap.get(id))
    }
}

/// N-way copies of every object across a target's mountpaths (AIStore's
/// `mirror` bucket property).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorConf {
    #[serde(default)]
    pub enabled: bool,
    /// Copies in all, the main one included.
    #[serde(default = "one")]
    pub copies: u32,
    #[serde(default)]
    pub burst_buffer: u32,
}

fn one() -> u32 {
    1
}

impl Default for MirrorConf {
    fn default() -> Self {
        Self {
            enabled: false,
            copies: 1,
            burst_buffer: 512,
        }
    }
}

impl MirrorConf {
    /// Copies to keep (1 when mirroring is off).
    pub fn effective(&self) -> usize {
        if self.enabled {
            self.copies.max(1) as usize
        } else {
            1
        }
    }
}

/// Erasure coding across targets (AIStore's `ec` bucket property): objects
/// above `objsize_limit` are cut into `data_slices` slices plus
/// `parity_slices` Reed-Solomon parity slices, each on a distinct target
/// other than the owner; smaller objects get `parity_slices` full replicas
/// on other targets. Either way the object survives the loss of
/// `parity_slices` targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcConf {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default = "two")]
    pub data_slices: u32,
    #[serde(default = "two")]
    pub parity_slices: u32,
    /// Objects up to this size are replicated instead of sliced.
    #[serde(default = "ec_objsize_limit")]
    pub objsize_limit: i64,
    #[serde(default = "never")]
    pub compression: String,
    #[serde(default = "two")]
    pub bundle_multiplier: u32,
    #[serde(default)]
    pub disk_only: bool,
}

fn two() -> u32 {
    2
}

fn ec_objsize_limit() -> i64 {
    256 * 1024
}

fn never() -> String {
    "never".into()
}

impl Default for EcConf {
    fn default() -> Self {
        Self {
            enabled: false,
            data_slices: 2,
            parity_slices: 2,
            objsize_limit: ec_objsize_limit(),
            compression: never(),
            bundle_multiplier: 2,
            disk_only: false,
        }
    }
}

impl EcConf {
    /// Targets an EC bucket needs: the owner plus one per slice.
    pub fn targets_needed(&self) -> usize {
        (self.data_slices + self.parity_slices) as usize + 1
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksumConf {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub validate_cold_get: bool,
    #[serde(default)]
    pub validate_warm_get: bool,
    #[serde(default)]
    pub validate_obj_move: bool,
    #[serde(default)]
    pub enable_read_range: bool,
}

impl Default for ChecksumConf {
    fn default() -> Self {
        Self {
            kind: CKSUM_XXHASH.into(),
            validate_cold_get: false,
            validate_warm_get: false,
            validate_obj_move: false,
            enable_read_range: false,
        }
    }
}

/// Checksum type we compute: xxhash64 (seed 0), named as AIStore names it.
pub const CKSUM_XXHASH: &str = "xxhash";

/// A bucket's `checksum.type`: xxhash is always computed (and verified on
/// reads); md5, sha256, sha512 or crc32c also, and shown to clients.
pub const CKSUM_TYPES: &[&str] = &["xxhash", "md5", "sha256", "sha512", "crc32c", "none"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VersioningConf {
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketProps {
    pub provider: String,
    #[serde(default)]
    pub checksum: ChecksumConf,
    #[serde(default)]
    pub versioning: VersioningConf,
    #[serde(default)]
    pub mirror: MirrorConf,
    #[serde(default)]
    pub ec: EcConf,
    #[serde(default)]
    pub access: String,
    #[serde(default)]
    pub features: String,
    #[serde(default)]
    pub bid: String,
    #[serde(default)]
    pub created: String,
    /// Remote-backend settings (`extra.aws.endpoint`, ...), AIStore's names.
    #[serde(default)]
    pub extra: ExtraConf,
    /// When a PUT's bytes must be on disk (`write_policy.data`).
    #[serde(default)]
    pub write_policy: WritePolicyConf,
    /// Set while the bucket is being renamed (`move-bck`) to this name:
    /// it takes no writes until the move is over. Only the rename sets it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub renaming: String,
    /// An `ais://` bucket's remote backend (AIStore's `backend_bck`): its
    /// objects are the remote bucket's, cached here as a remote bucket's
    /// are. Empty name: none.
    #[serde(default)]
    pub backend_bck: BackendBck,
}

/// AIStore's `backend_bck`: the remote bucket behind an `ais://` one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BackendBck {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub provider: String,
    /// Remote AIS clusters are not supported: only the empty namespace.
    #[serde(default)]
    pub namespace: crate::names::Namespace,
}

/// `write_policy`: `data` is `immediate` (default; `""` means the same: a
/// PUT is acknowledged once its data and name are durable) or `never`
/// (scratch data: acknowledged once written, left to the kernel's
/// writeback — survives a crash of the node, not of the machine).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct WritePolicyConf {
    #[serde(default)]
    pub data: String,
    #[serde(default)]
    pub md: String,
}

impl WritePolicyConf {
    /// Whether PUTs skip the flushes.
    pub fn never_sync(&self) -> bool {
        self.data == "never"
    }
}

/// `extra`: per-provider settings of a remote bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ExtraConf {
    #[serde(default)]
    pub aws: AwsConf,
}

/// `extra.aws`: where an `s3://` bucket lives. Empty: the node's defaults
/// (`AIS_S3_ENDPOINT` / `AWS_ENDPOINT_URL`, `AWS_REGION`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AwsConf {
    #[serde(default)]
    pub endpoint: String,
    #[serde(default)]
    pub cloud_region: String,
}

impl Default for BucketProps {
    fn default() -> Self {
        Self {
            provider: "ais".into(),
            checksum: ChecksumConf::default(),
            versioning: VersioningConf { enabled: true },
            mirror: MirrorConf::default(),
            ec: EcConf::default(),
            access: "0".into(),
            features: "0".into(),
            bid: String::new(),
            created: String::new(),
            extra: ExtraConf::default(),
            write_policy: WritePolicyConf::default(),
            renaming: String::new(),
            backend_bck: BackendBck::default(),
        }
    }
}

impl BucketProps {
    /// Applies a JSON patch of props (as in `set-bprops` or `create-bck`'s value).
    pub fn apply_patch(&mut self, patch: &serde_json::Value) -> Result<(), CoreError> {
        if patch.is_null() {
            return Ok(());
        }
        let mut cur =
            serde_json::to_value(&*self).map_err(|e| CoreError::Internal(e.to_string()))?;
        // `force` (AIStore's override flag rides in the value): nothing here
        // needs overriding, so only `false` is understood.
        let mut patch = patch.clone();
        if let Some(m) = patch.as_object_mut() {
            match m.remove("force") {
                None | Some(serde_json::Value::Bool(false)) => {}
                Some(v) => {
                    return Err(CoreError::invalid(format!(
                    "\"force\": {v} is not supported (aistore-rs has no restriction to override)"
                )))
                }
            }
        }
        let patch = &patch;
        // A property we do not have is refused by name, never dropped.
        let mut unknown = Vec::new();
        unknown_keys(&cur, patch, "", &mut unknown);
        unknown.retain(|k| k != "\"renaming\"");
        // Set by the cluster: the provider places every object (HRW), the
        // id and creation time identify the bucket.
        if let Some(k) = ["provider", "bid", "created"]
            .into_iter()
            .find(|k| patch.get(*k).is_some())
        {
            return Err(CoreError::invalid(format!(
                "bucket property \"{k}\" is set by the cluster and cannot be changed"
            )));
        }
        if !unknown.is_empty() {
            return Err(CoreError::invalid(format!(
                "unknown bucket propert{} {} (aistore-rs does not support {})",
                if unknown.len() > 1 { "ies" } else { "y" },
                unknown.join(", "),
                if unknown.len() > 1 { "them" } else { "it" }
            )));
        }
        merge_json(&mut cur, patch);
        if patch.get("renaming").is_some() {
            return Err(CoreError::invalid(
                "\"renaming\" is set by a bucket rename (move-bck) only",
            ));
        }
        let mut next: BucketProps = serde_json::from_value(cur)
            .map_err(|e| CoreError::invalid(format!("invalid bucket properties: {e}")))?;
        next.renaming = self.renaming.clone();
        next.check_backend_bck()?;
        if !CKSUM_TYPES.contains(&next.checksum.kind.as_str()) {
            return Err(CoreError::invalid(format!(
                "checksum type \"{}\" is not supported (supported: {})",
                next.checksum.kind,
                CKSUM_TYPES.join(", ")
            )));
        }
        for (k, v) in [
            ("data", &next.write_policy.data),
            ("md", &next.write_policy.md),
        ] {
            if !matches!(v.as_str(), "" | "immediate" | "never") {
                return Err(CoreError::invalid(format!(
                    "write_policy.{k} must be \"immediate\" or \"never\", not \"{v}\""
                )));
            }
        }
        if !(1..=16).contains(&next.mirror.copies) {
            return Err(CoreError::invalid(format!(
                "mirror.copies must be between 1 and 16, not {}",
                next.mirror.copies
            )));
        }
        if !(1..=32).contains(&next.ec.data_slices) || !(1..=32).contains(&next.ec.parity_slices) {
            return Err(CoreError::invalid(format!(
                "ec.data_slices and ec.parity_slices must be between 1 and 32, not {} and {}",
                next.ec.data_slices, next.ec.parity_slices
            )));
        }
        if next.ec.objsize_limit < 0 {
            return Err(CoreError::invalid(format!(
                "ec.objsize_limit must not be negative, not {}",
                next.ec.objsize_limit
            )));
        }
        if self.ec.enabled
            && next.ec.enabled
            && (
                self.ec.data_slices,
                self.ec.parity_slices,
                self.ec.objsize_limit,
            ) != (
                next.ec.data_slices,
                next.ec.parity_slices,
                next.ec.objsize_limit,
            )
        {
            return Err(CoreError::invalid(
                "ec.data_slices, ec.parity_slices and ec.objsize_limit cannot change while \
                 erasure coding is enabled (existing slices were cut with them)",
            ));
        }
        *self = next;
        Ok(())
    }
}

/// Keys of `patch` (dotted) that `cur` does not have.
impl BucketProps {
    /// Whether the bucket's objects live at a remote backend: a cloud
    /// bucket, or an `ais://` bucket with a `backend_bck`.
    pub fn is_remote_backed(&self) -> bool {
        crate::names::is_cloud_provider(&self.provider) || !self.backend_bck.name.is_empty()
    }

    /// `backend_bck` as set: empty, or a valid cloud bucket (its provider
    /// normalized) behind an `ais://` bucket.
    fn check_backend_bck(&mut self) -> Result<(), CoreError> {
        let b = &mut self.backend_bck;
        if b.name.is_empty() {
            if !b.provider.is_empty() && b.provider != "ais" {
                return Err(CoreError::invalid(
                    "backend_bck: a provider without a bucket name (clear both to remove the backend)",
                ));
            }
            *b = BackendBck::default();
            return Ok(());
        }
        if !b.namespace.uuid.is_empty() || !b.namespace.name.is_empty() {
            return Err(CoreError::Unsupported(
                "backend_bck: remote AIS clusters (a namespace) are not supported".into(),
            ));
        }
        crate::names::validate_bucket_name(&b.name)?;
        b.provider = crate::names::normalize_provider(&b.provider)?;
        if !crate::names::is_cloud_provider(&b.provider) {
            return Err(CoreError::invalid(format!(
                "backend_bck must be a cloud bucket (s3://, gs://, az://), not provider \"{}\"",
                b.provider
            )));
        }
        if self.provider != "ais" {
            return Err(CoreError::invalid(
                "backend_bck is for ais:// buckets (a remote bucket is its own backend)",
            ));
        }
        Ok(())
    }
}

fn unknown_keys(
    cur: &serde_json::Value,
    patch: &serde_json::Value,
    prefix: &str,
    out: &mut Vec<String>,
) {
    let serde_json::Value::Object(p) = patch else {
        return;
    };
    for (k, v) in p {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match cur.get(k) {
            None => out.push(format!("\"{path}\"")),
            Some(c) if c.is_object() => unknown_keys(c, v, &path, out),
            Some(_) => {}
        }
    }
}

fn merge_json(dst: &mut serde_json::Value, src: &serde_json::Value) {
    match (dst, src) {
        (serde_json::Value::Object(d), serde_json::Value::Object(s)) => {
            for (k, v) in s {
                merge_json(d.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
        (d, s) => *d = s.clone(),
    }
}

/// Bucket metadata: every `ais://` bucket and its props.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Bmd {
    pub version: u64,
    pub uuid: String,
    pub buckets: BTreeMap<String, BucketProps>,
}

/// Attributes stored with every object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ObjAttrs {
    pub size: u64,
    #[serde(default)]
    pub cksum_type: String,
    #[serde(default)]
    pub cksum_value: String,
    #[serde(default)]
    pub version: u64,
    /// Unix nanoseconds of the last write (AIStore reports access time; we
    /// keep write time here and read access time from the filesystem).
    #[serde(default)]
    pub mtime_ns: i64,
    #[serde(default)]
    pub custom: BTreeMap<String, String>,
    /// The bucket's checksum type at write time when not xxhash (md5,
    /// sha256, sha512, crc32c) and its value: what clients are shown.
    /// `cksum_*` (xxhash) stays the integrity checksum reads verify.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_cksum_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_cksum_value: String,
}

impl ObjAttrs {
    /// The checksum clients are shown: the bucket's type if one was
    /// computed, else xxhash.
    pub fn shown_cksum(&self) -> (&str, &str) {
        if self.user_cksum_type.is_empty() {
            (&self.cksum_type, &self.cksum_value)
        } else {
            (&self.user_cksum_type, &self.user_cksum_value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smap_version_is_string_on_wire() {
        let p = Snode::new("p1", NodeType::Proxy, "127.0.0.1", 8080);
        let smap = Smap {
            version: 3,
            uuid: "u".into(),
            creation_time: String::new(),
            tmap: BTreeMap::new(),
            pmap: BTreeMap::from([("p1".into(), p.clone())]),
            proxy_si: p,
        };
        let v = serde_json::to_value(&smap).unwrap();
        assert_eq!(v["version"], "3");
        let back: Smap = serde_json::from_value(v).unwrap();
        assert_eq!(back, smap);
    }

    #[test]
    fn props_patch() {
        let mut p = BucketProps::default();
        p.apply_patch(&serde_json::json!({"checksum": {"validate_warm_get": true}}))
            .unwrap();
        assert!(p.checksum.validate_warm_get);
        assert_eq!(p.checksum.kind, CKSUM_XXHASH);
        assert!(p
            .apply_patch(&serde_json::json!({"checksum": {"type": "md4"}}))
            .is_err());
        p.apply_patch(&serde_json::json!({"checksum": {"type": "sha256"}}))
            .unwrap();
        for k in ["provider", "bid", "created"] {
            assert!(
                p.apply_patch(&serde_json::json!({ k: "aws" })).is_err(),
                "{k}"
            );
        }
        let e = p
            .apply_patch(&serde_json::json!({"backend_bck": {"name": "x"}}))
            .unwrap_err();
        assert!(e.to_string().contains("backend_bck"), "{e}");
    }
}

/// One ETL as the cluster knows it: the init message it was created with and
/// whether it is stopped. Targets start/stop their local runtimes from this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EtlMdEntry {
    pub name: String,
    pub init_msg: serde_json::Value,
    #[serde(default)]
    pub stopped: bool,
    #[serde(default)]
    pub xaction_id: String,
    /// Bumped on every (re)start so targets can tell a restart from a no-op.
    #[serde(default)]
    pub generation: u64,
}

/// ETL metadata: every initialised ETL, replicated like the BMD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct EtlMd {
    pub version: u64,
    pub uuid: String,
    pub etls: BTreeMap<String, EtlMdEntry>,
}

/// What the primary pushes to every node (each part optional).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct MetaSync {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smap: Option<Smap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmd: Option<Bmd>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etlmd: Option<EtlMd>,
    /// The cluster's configuration overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<crate::config::ClusterConfig>,
}

/// A node asking the primary to (re)join.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinReq {
    pub node: Snode,
    /// Cluster UUID the node belonged to before ("" for a brand-new node).
    #[serde(default)]
    pub cluster_uuid: String,
}

/// Periodic heartbeat from a node to the primary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Keepalive {
    pub daemon_id: String,
    pub smap_version: u64,
    pub bmd_version: u64,
    pub etlmd_version: u64,
    #[serde(default)]
    pub config_version: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct KeepaliveResp {
    /// False when the primary does not have the node in its map: it must rejoin.
    pub known: bool,
    /// Newer metadata the node is missing, if any.
    #[serde(default)]
    pub sync: MetaSync,
}
