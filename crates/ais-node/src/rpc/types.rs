//! Request and response bodies of the intra-cluster calls.

use ais_core::api::TcbMsg;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Proxy → target: start an ETL runtime.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EtlInitReq {
    pub init_msg: Value,
    pub generation: u64,
}

/// Job kind of a global rebalance (every bucket, every target).
pub const JOB_REBALANCE: &str = "rebalance";

/// Job kind that erasure-codes a bucket's existing objects and brings
/// their parts in line with the current map (`ec-encode`).
pub const JOB_EC_ENCODE: &str = "ec-encode";

/// Job kind of a resilver (one target moves objects between its
/// mountpaths after a mountpath change; started by the target itself).
pub const JOB_RESILVER: &str = "resilver";

/// Job kind of an LRU eviction (one target evicts the least recently used
/// cached copies of remote objects down to `space.lowwm`).
pub const JOB_LRU: &str = "lru";

/// Job kind of a bucket scrub (`scrub-bck`).
pub const JOB_SCRUB: &str = "scrub";

/// Job kind of a space cleanup (AIStore's `cleanup`): each target removes
/// leftovers (old temp files, expired multipart uploads).
pub const JOB_CLEANUP: &str = "cleanup";

/// Job kind of a blob download (one large remote object fetched in
/// parallel ranges on its owner; `msg.objnames[0]`, `msg.num_workers`,
/// `msg.ext["chunk-size"]`, `msg.ext["latest-ver"]`).
pub const JOB_BLOB_DOWNLOAD: &str = "blob-download";
/// Objects fetched from HTTP(S) links into a bucket (`target::download`).
pub const JOB_DOWNLOAD: &str = "download";
/// Files on targets' filesystems into a bucket (`target::promote`).
pub const JOB_PROMOTE: &str = "promote";

/// Job kind of `make-n-copies`: a scrub after the bucket's mirror copies
/// were set (missing copies made, extra ones removed).
pub const JOB_MAKE_N_COPIES: &str = "make-n-copies";

/// Job kind that fetches a remote bucket's objects into the cluster
/// (`prefetch-listrange`): names, a template, or a prefix of the backend's
/// listing; each target fetches the ones it owns.
pub const JOB_PREFETCH: &str = "prefetch-listrange";

/// Job kind that removes cached copies of a remote bucket's objects
/// (`evict-listrange`); the backend keeps them.
pub const JOB_EVICT: &str = "evict-listrange";

/// Job kind of a bucket rename's copy (`move-bck`): objects keep their
/// custom properties and get no bookkeeping of their own.
pub const JOB_MOVE_BCK: &str = "move-bck";

/// Job kind that deletes a selection of a bucket's objects
/// (`delete-listrange`): names, a template or a prefix; each target deletes
/// the copies it holds (for a remote bucket the owner also deletes at the
/// backend).
pub const JOB_DELETE: &str = "delete-listrange";

/// Target → proxy: a bucket's summary on one target.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TargetSummary {
    pub held: ais_storage::Summary,
    /// Capacity of the target's mountpaths, in bytes.
    pub disks: u64,
}

/// Proxy → target: one offline job, as each target runs its share of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSpec {
    pub id: String,
    pub kind: String,
    pub src: String,
    pub dst: String,
    pub msg: TcbMsg,
    /// The destination existed before the job: outputs a previous run already
    /// wrote from the same source version with the same transform are skipped.
    #[serde(default)]
    pub skip_unchanged: bool,
    /// `archive` jobs: the shard to write.
    #[serde(default)]
    pub archive: Option<ArchiveSpec>,
    /// Rebalance: the cluster map it moves objects to. A target applies it
    /// before starting (a metadata push it missed would otherwise leave it
    /// moving by an older map: objects kept where they no longer belong and
    /// a job that says it finished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smap: Option<ais_core::meta::Smap>,
}

/// Job kind that packs objects into one shard (`archive`).
pub const JOB_ARCHIVE: &str = "archive";

/// What an `archive` job writes: `dst/name`, members named `obj` (or
/// `src/obj` with `include_src`), appended to an existing shard with
/// `append`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchiveSpec {
    pub name: String,
    #[serde(default)]
    pub include_src: bool,
    #[serde(default)]
    pub append: bool,
}

/// One per-object failure of a job or an ETL, as AIStore reports them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjErr {
    pub obj_name: String,
    pub msg: String,
    pub ecode: u16,
}

/// Query of one target's listing page.
pub struct ListQuery<'a> {
    pub prefix: &'a str,
    pub after: &'a str,
    pub limit: usize,
    pub props: &'a str,
    /// The list-objects flags (`LsoMsg::flags`), e.g. archive members.
    pub flags: u64,
    /// With `LSO_NBI`: the inventory to read (empty: the bucket's only one).
    pub inv: &'a str,
    /// The version of the cluster map the proxy lists by: a target behind
    /// it catches up first (it would not know who left yet).
    pub smap: u64,
}

/// Job kind: a native bucket inventory of a remote bucket, each target
/// writing the names it owns ([`crate::target::nbi`]).
pub const JOB_CREATE_NBI: &str = "create-inventory";

/// An object's custom metadata on intra-cluster PUTs (moves, forwards):
/// the map as base64 JSON, exactly.
pub const CUSTOM_MD_JSON: &str = "ais-custom-md-json";
