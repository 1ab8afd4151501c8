//! Wire types of AIStore's REST API: the action envelope, list-objects request
//! and response (JSON and msgpack spellings), and the internal page format
//! targets return to the proxy.

use crate::meta::strnum;
use crate::CoreError;
use serde::{Deserialize, Deserializer, Serialize};

/// `{"action": ..., "name": ..., "value": ...}`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ActMsg {
    pub action: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: serde_json::Value,
}

/// The value of the node lifecycle actions on `PUT /v1/cluster`
/// (`start-maintenance`, `stop-maintenance`, `decommission-node`,
/// `shutdown-node`), AIStore's `ActValRmNode`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RmNodeMsg {
    /// The node's id.
    #[serde(default, alias = "daemon_id")]
    pub sid: String,
    /// Decommission: also remove the node's objects from its disks.
    #[serde(default)]
    pub rm_user_data: bool,
    /// Change the map without moving objects (they stay where they are).
    #[serde(default)]
    pub skip_rebalance: bool,
    #[serde(default)]
    pub keep_initial_config: bool,
    /// Decommission: remove the node from the map but leave it running.
    #[serde(default)]
    pub no_shutdown: bool,
}

impl ActMsg {
    pub fn new(action: &str) -> Self {
        Self {
            action: action.into(),
            ..Default::default()
        }
    }

    pub fn parse(body: &[u8]) -> Result<Self, CoreError> {
        serde_json::from_slice(body).map_err(|e| {
            CoreError::invalid(format!(
                "malformed JSON in request body (expected {{\"action\": ..., \"name\": ..., \"value\": ...}}): {e}"
            ))
        })
    }
}

pub mod act {
    pub const CREATE_BCK: &str = "create-bck";
    pub const DESTROY_BCK: &str = "destroy-bck";
    pub const LIST: &str = "list";
    pub const SET_BPROPS: &str = "set-bprops";
    pub const RESET_BPROPS: &str = "reset-bprops";
    pub const SUMMARY_BCK: &str = "summary-bck";
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    strnum::deserialize(d)
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// List-objects request (`LsoMsg`).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct LsoMsg {
    #[serde(default, deserialize_with = "null_as_default")]
    pub prefix: String,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub pagesize: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub uuid: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub continuation_token: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub props: String,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub flags: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub target: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub start_after: String,
}

/// Largest page we return (AIStore's limit too).
pub const MAX_PAGE_SIZE: u64 = 10_000;

/// Properties a listing or HEAD may ask for.
pub const KNOWN_PROPS: &[&str] = &[
    "name",
    "size",
    "version",
    "checksum",
    "atime",
    "cached",
    "status",
    "copies",
    "ec",
    "custom",
    "location",
    "chunked",
    "last-modified",
    "etag",
    "target_url",
];

/// Parsed `props=` selection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PropSet {
    pub size: bool,
    pub version: bool,
    pub checksum: bool,
    pub atime: bool,
    pub cached: bool,
    pub custom: bool,
    pub location: bool,
    pub copies: bool,
}

impl PropSet {
    pub fn parse(props: &str) -> Result<Self, CoreError> {
        let props = props.trim();
        if props.is_empty() {
            return Ok(Self {
                size: true,
                cached: true,
                ..Default::default()
            });
        }
        let mut p = Self::default();
        for name in props.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "size" => p.size = true,
                "version" => p.version = true,
                "checksum" => p.checksum = true,
                "atime" => p.atime = true,
                "cached" | "status" => p.cached = true,
                "custom" => p.custom = true,
                "location" => p.location = true,
                "copies" => p.copies = true,
                n if KNOWN_PROPS.contains(&n) => {}
                other => {
                    return Err(CoreError::invalid(format!(
                        "invalid property \"{other}\" (valid: {})",
                        KNOWN_PROPS.join(", ")
                    )))
                }
            }
        }
        Ok(p)
    }

    pub fn needs_attrs(&self) -> bool {
        self.version || self.checksum || self.custom
    }

    pub fn to_query(self) -> String {
        let mut v = vec!["name"];
        for (on, n) in [
            (self.size, "size"),
            (self.version, "version"),
            (self.checksum, "checksum"),
            (self.atime, "atime"),
            (self.cached, "cached"),
            (self.custom, "custom"),
            (self.location, "location"),
            (self.copies, "copies"),
        ] {
            if on {
                v.push(n);
            }
        }
        v.join(",")
    }
}

pub const ENTRY_FLAG_CACHED: u16 = 1 << 6;
/// A member of an archive object, listed as `SHARD/MEMBER` (`LSO_ARCH_DIR`).
pub const ENTRY_FLAG_IN_ARCH: u16 = 1 << 7;
/// A "directory" (names below it exist), listed with `LSO_NO_RECURSION`.
pub const ENTRY_FLAG_DIR: u16 = 1 << 8;
/// List-objects flag: list archives' members after each archive.
pub const LSO_ARCH_DIR: u64 = 1 << 3;
/// List-objects flag: one level below the prefix: its objects and its
/// "directories" (`name/`, flagged [`ENTRY_FLAG_DIR`]).
pub const LSO_NO_RECURSION: u64 = 1 << 11;
/// List-objects flag (with `LSO_NO_RECURSION`): no directory entries.
pub const LSO_NO_DIRS: u64 = 1 << 13;
/// List-objects flag: list a remote bucket from its native bucket
/// inventory (a snapshot; [`NbiInfo`]) instead of its backend.
pub const LSO_NBI: u64 = 1 << 15;
/// List-objects flags a listing from an inventory refuses: missing,
/// deleted, archive members, not-cached, only-remote-props, diff.
pub const LSO_NBI_REFUSED: u64 = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 9) | (1 << 10) | (1 << 12);
/// The header naming the inventory a listing reads (`LSO_NBI`).
pub const HDR_INV_NAME: &str = "ais-inv-name";

/// `create-inventory`'s value (AIStore's `CreateNBIMsg`: its own fields and
/// the list-objects message it embeds).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateNbiMsg {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub names_per_chunk: i64,
    #[serde(default)]
    pub force: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub prefix: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub props: String,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub flags: u64,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub pagesize: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub uuid: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub continuation_token: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub start_after: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub target: String,
}

/// Whether `name` may name an inventory: letters, digits, `-`, `_`, `.`,
/// at most 64, not starting with `.` (it names a directory on targets).
pub fn valid_nbi_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Names per inventory chunk: the default, and the bounds a request may ask
/// (AIStore's minimum is 2; here 100: a listing page reads the chunk index,
/// which smaller chunks would make as long as the inventory).
pub const NBI_NAMES_PER_CHUNK: (i64, i64, i64) = (20_000, 100, 640_000);

/// One native bucket inventory (AIStore's `NBIInfo`): on one target, or
/// merged over the cluster (sizes, counts and chunks summed; the earliest
/// start, the latest finish).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct NbiInfo {
    pub bucket: String,
    pub name: String,
    pub obj_name: String,
    /// Bytes the inventory takes on disk.
    pub size: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    #[serde(default)]
    pub started: i64,
    #[serde(default)]
    pub finished: i64,
    /// Names in it.
    #[serde(default)]
    pub ntotal: u64,
    /// The cluster map it was made by.
    #[serde(default)]
    pub smap_ver: u64,
    #[serde(default)]
    pub chunks: u64,
    /// Active targets when it was made (each holds its share).
    #[serde(default)]
    pub nat: u32,
}

/// One listed object, as targets send it to the proxy.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct LsoEntry {
    pub name: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub checksum: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub atime: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub location: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub custom: String,
    #[serde(default)]
    pub copies: u16,
    #[serde(default)]
    pub flags: u16,
}

/// A page of entries from one target (internal API).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct TargetPage {
    pub entries: Vec<LsoEntry>,
    /// True when the target has no more names after the last entry.
    pub done: bool,
    /// A page of an inventory (`LSO_NBI`): which creation its share is of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbi: Option<NbiShare>,
}

/// What a target's share of an inventory was made by: the job, its map
/// version, and the active targets of that map (each holds a share).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct NbiShare {
    pub job: String,
    pub smap_ver: u64,
    pub nat: u32,
}

/// JSON spelling of a list-objects page.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct LsoResJson {
    pub uuid: String,
    pub continuation_token: String,
    pub entries: Vec<LsoEntryJson>,
    #[serde(default)]
    pub flags: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct LsoEntryJson {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub checksum: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub atime: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub location: String,
    #[serde(
        rename = "custom-md",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub custom: String,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_strnum")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "is_zero16")]
    pub copies: u16,
    #[serde(default, skip_serializing_if = "is_zero16")]
    pub flags: u16,
}

mod opt_strnum {
    use serde::{Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&v.to_string()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        super::strnum::deserialize(d).map(Some)
    }
}

fn is_zero16(v: &u16) -> bool {
    *v == 0
}

/// msgpack spelling (`Accept: application/msgpack`), as the official SDK decodes it.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct LsoResMsgpack {
    #[serde(rename = "UUID")]
    pub uuid: String,
    #[serde(rename = "ContinuationToken")]
    pub continuation_token: String,
    #[serde(rename = "Entries")]
    pub entries: Vec<LsoEntryMsgpack>,
    #[serde(rename = "Flags")]
    pub flags: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct LsoEntryMsgpack {
    pub n: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub cs: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub a: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub v: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub t: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub m: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub s: Option<u64>,
    #[serde(skip_serializing_if = "is_zero16", default)]
    pub c: u16,
    #[serde(skip_serializing_if = "is_zero16", default)]
    pub f: u16,
}

impl LsoEntry {
    pub fn to_json(&self, props: &PropSet) -> LsoEntryJson {
        LsoEntryJson {
            name: self.name.clone(),
            checksum: self.checksum.clone(),
            atime: self.atime.clone(),
            version: self.version.clone(),
            location: self.location.clone(),
            custom: self.custom.clone(),
            size: props.size.then_some(self.size),
            copies: self.copies,
            flags: self.flags,
        }
    }
    pub fn to_msgpack(&self, props: &PropSet) -> LsoEntryMsgpack {
        LsoEntryMsgpack {
            n: self.name.clone(),
            cs: self.checksum.clone(),
            a: self.atime.clone(),
            v: self.version.clone(),
            t: self.location.clone(),
            m: self.custom.clone(),
            s: props.size.then_some(self.size),
            c: self.copies,
            f: self.flags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lso_msg_is_lenient() {
        let m: LsoMsg = serde_json::from_str(
            r#"{"prefix":"train/","props":"name,size","pagesize":0,"uuid":"","continuation_token":"","flags":"0","target":""}"#,
        )
        .unwrap();
        assert_eq!(m.prefix, "train/");
        let m: LsoMsg =
            serde_json::from_str(r#"{"pagesize":"7","flags":8,"prefix":null}"#).unwrap();
        assert_eq!((m.pagesize, m.flags, m.prefix.as_str()), (7, 8, ""));
    }

    #[test]
    fn props() {
        assert!(PropSet::parse("name,size").unwrap().size);
        assert!(PropSet::parse("").unwrap().cached);
        assert!(matches!(
            PropSet::parse("name,bogus").unwrap_err(),
            CoreError::Invalid(_)
        ));
    }

    #[test]
    fn list_page_wire_keys() {
        // The SDK's msgspec decoder requires exactly these top-level keys.
        let page = LsoResMsgpack {
            uuid: "u".into(),
            continuation_token: String::new(),
            entries: vec![LsoEntryMsgpack {
                n: "a".into(),
                s: Some(5),
                ..Default::default()
            }],
            flags: 0,
        };
        let v = serde_json::to_value(&page).unwrap();
        let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["ContinuationToken", "Entries", "Flags", "UUID"]);
        assert_eq!(v["Entries"][0], serde_json::json!({"n": "a", "s": 5}));
    }
}

/// Bucket-to-bucket copy/transform request (`TCBMsg`, plus the multi-object
/// selection of `copy-listrange`/`etl-listrange`).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct TcbMsg {
    /// ETL name (etl-bck only).
    #[serde(default, deserialize_with = "null_as_default")]
    pub id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub prefix: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub prepend: String,
    /// `{"jpg": "png"}`; legacy clients send a plain string (ignored if not a map).
    #[serde(default, deserialize_with = "ext_map")]
    pub ext: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub force: bool,
    #[serde(default, rename = "num-workers")]
    pub num_workers: i64,
    /// Continue on error.
    #[serde(default)]
    pub coer: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub request_timeout: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub objnames: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub template: String,
    /// Passed to the transform as `etl_args`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub etl_args: String,
    /// ETLs applied after `id`, in order (etl-bck only; the SDK's
    /// `etl_pipeline=[...]`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub pipeline: Vec<String>,
    /// Copy only: afterwards, delete the destination's copies of objects
    /// that no longer exist at the source (AIStore's `synchronize`).
    #[serde(
        default,
        rename = "synchronize",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub sync: bool,
}

fn ext_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, String>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::Object(m)) => m
            .into_iter()
            .filter_map(|(k, v)| {
                v.as_str().map(|s| {
                    (
                        k.trim_start_matches('.').to_string(),
                        s.trim_start_matches('.').to_string(),
                    )
                })
            })
            .collect(),
        _ => Default::default(),
    })
}

impl TcbMsg {
    /// Destination name: extension mapped, then prefixed.
    pub fn dst_name(&self, src: &str) -> String {
        let mut name = src.to_string();
        if let Some((stem, ext)) = src.rsplit_once('.') {
            if !stem.is_empty() && !ext.contains('/') {
                if let Some(to) = self.ext.get(ext) {
                    name = format!("{stem}.{to}");
                }
            }
        }
        format!("{}{name}", self.prepend)
    }
}

/// Expands a bash-style brace template: `shard-{0000..0999}.tar`,
/// `a{1..10..2}b`, several ranges multiply. Errors on malformed templates or
/// more than `limit` names.
/// One target's counters for one ETL (`GET /v1/etl/NAME` lists one per target).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct EtlTargetStats {
    pub target_id: String,
    pub stage: String,
    pub obj_count: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub err_count: u64,
    pub mean_latency_ms: f64,
    pub workers: u64,
    pub worker_pids: Vec<u32>,
    pub python: String,
    /// Why the ETL failed on this target (stage "Failed").
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// The OS protections its processes run under, as detected at run time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<serde_json::Value>,
}

/// Most names a list/range template may expand to.
pub const MAX_TEMPLATE: usize = 10_000_000;
/// Most bytes a template's expansion may take (names and their overhead).
pub const MAX_TEMPLATE_BYTES: usize = 256 << 20;

pub fn expand_template(t: &str, limit: usize) -> Result<Vec<String>, CoreError> {
    let bad = |why: &str| CoreError::invalid(format!("invalid template \"{t}\": {why}"));
    let mut out = vec![String::new()];
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').ok_or_else(|| bad("unclosed '{'"))? + open;
        let lit = &rest[..open];
        let body = &rest[open + 1..close];
        let parts: Vec<&str> = body.split("..").collect();
        if parts.len() < 2 || parts.len() > 3 {
            return Err(bad("expected {START..END} or {START..END..STEP}"));
        }
        let width = parts[0].len();
        let a: u64 = parts[0]
            .parse()
            .map_err(|_| bad("range start is not a number"))?;
        let b: u64 = parts[1]
            .parse()
            .map_err(|_| bad("range end is not a number"))?;
        let step: u64 = match parts.get(2) {
            Some(s) => s.parse().map_err(|_| bad("step is not a number"))?,
            None => 1,
        };
        if step == 0 || b < a {
            return Err(bad("empty range"));
        }
        let count = ((b - a) / step + 1) as usize;
        if out.len().saturating_mul(count) > limit {
            return Err(bad(&format!("expands to more than {limit} names")));
        }
        // Memory too, not only the count: long literals or wide padding
        // make few names large (each also costs a String's 24 bytes).
        // (Bounded from above by the whole template's length: its literals,
        // the trailing one included, and 20 digits a range.)
        let longest = t.len() + 20 * t.matches('{').count() + 24;
        if out.len().saturating_mul(count).saturating_mul(longest) > MAX_TEMPLATE_BYTES {
            return Err(bad(&format!(
                "its names would take more than {} MiB",
                MAX_TEMPLATE_BYTES >> 20
            )));
        }
        let mut next = Vec::with_capacity(out.len() * count);
        for p in &out {
            // By index: `a + k * step` never passes `b` (no wrap-around).
            for k in 0..count as u64 {
                let i = a + k * step;
                next.push(format!("{p}{lit}{i:0width$}"));
            }
        }
        out = next;
        rest = &rest[close + 1..];
    }
    Ok(out.into_iter().map(|p| format!("{p}{rest}")).collect())
}

#[cfg(test)]
mod tcb_tests {
    use super::*;

    #[test]
    fn templates_at_the_top_of_u64_end() {
        let v = expand_template("x{18446744073709551614..18446744073709551615}", 10).unwrap();
        assert_eq!(v, ["x18446744073709551614", "x18446744073709551615"]);
        let v = expand_template("x{0..18446744073709551615..9223372036854775808}", 10).unwrap();
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn templates_are_bounded_in_bytes_too() {
        for t in [
            format!("{}{{0..99999}}", "p".repeat(4096)),
            // The trailing literal counts too.
            format!("x-{{0..9999}}-{}", "y".repeat(1 << 20)),
        ] {
            let e = expand_template(&t, MAX_TEMPLATE).unwrap_err();
            assert!(e.to_string().contains("MiB"), "{e}");
        }
        assert_eq!(
            expand_template("o-{000000..099999}", MAX_TEMPLATE)
                .unwrap()
                .len(),
            100_000
        );
    }

    #[test]
    fn templates() {
        assert_eq!(
            expand_template("s-{00..02}.tar", 100).unwrap(),
            vec!["s-00.tar", "s-01.tar", "s-02.tar"]
        );
        assert_eq!(
            expand_template("a{1..5..2}", 100).unwrap(),
            vec!["a1", "a3", "a5"]
        );
        assert_eq!(expand_template("x{0..1}y{0..1}", 100).unwrap().len(), 4);
        assert_eq!(expand_template("plain", 100).unwrap(), vec!["plain"]);
        assert!(expand_template("a{1..}", 100).is_err());
        assert!(expand_template("a{0..1000}", 100).is_err());
    }

    #[test]
    fn dst_names() {
        let m: TcbMsg = serde_json::from_str(r#"{"ext":{".jpg":"png"},"prepend":"out/"}"#).unwrap();
        assert_eq!(m.dst_name("train/a.jpg"), "out/train/a.png");
        assert_eq!(m.dst_name("train/a.cls"), "out/train/a.cls");
        let legacy: TcbMsg =
            serde_json::from_str(r#"{"ext":"jpg","num-workers":4,"coer":true}"#).unwrap();
        assert!(legacy.ext.is_empty() && legacy.coer && legacy.num_workers == 4);
    }
}
