//! dSort (AIStore's distributed shuffle / re-shard): the request spec with
//! AIStore's field names, its validation into a [`Plan`] the nodes share,
//! and the pure parts of a job — record keys, the global order of records
//! (alphanumeric, seeded shuffle, by content), the external key map, and
//! cutting the ordered records into output shards of a size. The phases
//! that move bytes live in `ais-node` (`proxy::dsort` coordinates,
//! `target::dsort` extracts and builds).

use crate::api::{expand_template, MAX_TEMPLATE};
use crate::error::CoreError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1/sort`'s body: AIStore's `RequestSpec` (JSON; the CLI turns a
/// YAML file into the same). Unknown fields are refused by name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    #[serde(default)]
    pub input_bck: BckSpec,
    #[serde(default)]
    pub input_format: InputFormat,
    #[serde(default)]
    pub output_format: String,
    #[serde(default)]
    pub output_shard_size: Value,
    #[serde(default)]
    pub input_extension: String,
    /// The older single field for both extensions (AIStore's CLI docs).
    #[serde(default)]
    pub extension: String,
    #[serde(default)]
    pub output_extension: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub output_bck: BckSpec,
    #[serde(default)]
    pub algorithm: AlgorithmSpec,
    #[serde(default)]
    pub ekm_file: String,
    #[serde(default)]
    pub ekm_file_sep: String,
    #[serde(default)]
    pub max_mem_usage: String,
    #[serde(default)]
    pub extract_concurrency_max_limit: i64,
    #[serde(default)]
    pub create_concurrency_max_limit: i64,
    #[serde(default)]
    pub dsorter_type: String,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub duplicated_records: String,
    #[serde(default)]
    pub missing_shards: String,
    #[serde(default)]
    pub ekm_malformed_line: String,
    #[serde(default)]
    pub ekm_missing_key: String,
    #[serde(default)]
    pub dsorter_mem_threshold: String,
    /// AIStore's per-job override of its `distributed_sort` config.
    #[serde(default, rename = "Config")]
    pub config: Option<ConfigSpec>,
}

/// The per-job override of the `distributed_sort` config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSpec {
    #[serde(default)]
    pub duplicated_records: String,
    #[serde(default)]
    pub missing_shards: String,
    #[serde(default)]
    pub ekm_malformed_line: String,
    #[serde(default)]
    pub ekm_missing_key: String,
    #[serde(default)]
    pub dsorter_mem_threshold: String,
    #[serde(default)]
    pub call_timeout: Value,
    #[serde(default)]
    pub compression: Value,
    #[serde(default)]
    pub default_max_mem_usage: Value,
    #[serde(default)]
    pub sbundle_mult: Value,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BckSpec {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub provider: String,
    #[serde(default)]
    pub namespace: Option<Value>,
}

/// AIStore's `ListRange`: a template or a list of names.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputFormat {
    #[serde(default)]
    pub template: String,
    #[serde(default)]
    pub objnames: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlgorithmSpec {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub decreasing: bool,
    #[serde(default)]
    pub seed: String,
    #[serde(default)]
    pub extension: Option<String>,
    #[serde(default)]
    pub content_key_type: Option<String>,
}

/// How records are ordered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Algorithm {
    Alphanumeric {
        decreasing: bool,
    },
    Shuffle {
        seed: u64,
    },
    Content {
        decreasing: bool,
        extension: String,
        key_type: KeyType,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Int,
    Float,
    String,
}

/// What to do about a condition AIStore lets the user choose for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reaction {
    Ignore,
    Warn,
    Abort,
}

/// A validated spec, as the coordinator sends it to every target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub id: String,
    pub description: String,
    pub input_bck: String,
    pub output_bck: String,
    /// The input shards' object names (extension included).
    pub inputs: Vec<String>,
    pub input_ext: String,
    pub output_ext: String,
    /// The output names' template (empty with an external key map).
    pub output_format: String,
    pub shard_size: u64,
    pub algorithm: Algorithm,
    pub ekm_file: String,
    pub ekm_sep: String,
    pub max_mem_usage: String,
    pub dry_run: bool,
    pub missing_shards: Reaction,
    pub duplicated_records: Reaction,
    pub ekm_missing_key: Reaction,
    pub ekm_malformed_line: Reaction,
    /// The targets taking part (ids), set by the coordinator.
    #[serde(default)]
    pub targets: Vec<String>,
}

/// Input and output shard formats we read and write.
pub const EXTENSIONS: &[&str] = &[".tar", ".tgz", ".tar.gz", ".zip", ".tar.lz4"];

fn norm_ext(e: &str) -> Result<String, CoreError> {
    let e = e.trim();
    let e = if e.starts_with('.') {
        e.to_string()
    } else {
        format!(".{e}")
    };
    if EXTENSIONS.contains(&e.as_str()) {
        Ok(e)
    } else {
        Err(CoreError::invalid(format!(
            "dsort: unsupported shard extension \"{e}\" (supported: {})",
            EXTENSIONS.join(", ")
        )))
    }
}

/// The extension a name ends with, if it is a shard format.
fn ext_of(name: &str) -> Option<&'static str> {
    // Longest first: ".tar.gz" before ".gz"-less ".tar" would not match anyway.
    [".tar.gz", ".tar.lz4", ".tgz", ".tar", ".zip"]
        .into_iter()
        .find(|e| name.ends_with(e))
}

/// Sizes as AIStore writes them: `10240`, `10KB`/`10KiB` (1024-based),
/// `1.5MB`, `2G`.
pub fn parse_size(v: &Value) -> Result<u64, CoreError> {
    let bad = || CoreError::invalid(format!("dsort: invalid output_shard_size {v}"));
    match v {
        Value::Null => Ok(0),
        Value::Number(n) => n.as_u64().ok_or_else(bad),
        Value::String(s) => {
            let t = s.trim().to_ascii_uppercase();
            if t.is_empty() {
                return Ok(0);
            }
            let split = t
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(t.len());
            let (num, unit) = t.split_at(split);
            let num: f64 = num.parse().map_err(|_| bad())?;
            let mult: u64 = match unit.trim().trim_end_matches("IB").trim_end_matches('B') {
                "" => 1,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1 << 40,
                _ => return Err(bad()),
            };
            let x = num * mult as f64;
            if !x.is_finite() || x < 0.0 || x > u64::MAX as f64 {
                return Err(bad());
            }
            Ok(x as u64)
        }
        _ => Err(bad()),
    }
}

fn reaction(field: &str, v: &str, default: Reaction) -> Result<Reaction, CoreError> {
    Ok(match v {
        "" => default,
        "ignore" => Reaction::Ignore,
        "warn" => Reaction::Warn,
        "abort" => Reaction::Abort,
        o => {
            return Err(CoreError::invalid(format!(
                "dsort: invalid {field} \"{o}\" (expected ignore, warn or abort)"
            )))
        }
    })
}

fn bck_name(field: &str, b: &BckSpec) -> Result<String, CoreError> {
    match b.provider.as_str() {
        "" | "ais" => {}
        p => {
            return Err(CoreError::Unsupported(format!(
                "dsort: {field} must be an ais:// bucket (got provider \"{p}\")"
            )))
        }
    }
    if let Some(ns) = &b.namespace {
        let empty = match ns {
            Value::Null => true,
            Value::Object(m) => m.values().all(|v| v.as_str().is_some_and(str::is_empty)),
            _ => false,
        };
        if !empty {
            return Err(CoreError::Unsupported(format!(
                "dsort: {field}: namespaces are not supported"
            )));
        }
    }
    crate::names::Bck::validated(&b.name, None).map(|b| b.name)
}

/// A dSort job id as the nodes issue them (`srt-` and letters, digits,
/// `-`, `_`): anything else never reaches a URL.
pub fn check_id(id: &str) -> Result<(), CoreError> {
    let ok = id.len() <= 64
        && id.strip_prefix("srt-").is_some_and(|r| {
            !r.is_empty()
                && r.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid(format!(
            "invalid dsort job id \"{id}\" (expected srt-...)"
        )))
    }
}

/// Most input shards one job takes.
pub const MAX_INPUTS: usize = 1_000_000;

impl RequestSpec {
    /// Validates the spec into the plan every node follows. `seed_now`
    /// seeds a shuffle that names no seed (AIStore: the current time).
    pub fn plan(&self, id: &str, seed_now: u64) -> Result<Plan, CoreError> {
        if self.input_bck.name.is_empty() {
            return Err(CoreError::invalid("dsort: missing input_bck"));
        }
        let input_bck = bck_name("input_bck", &self.input_bck)?;
        let output_bck = if self.output_bck.name.is_empty() {
            input_bck.clone()
        } else {
            bck_name("output_bck", &self.output_bck)?
        };
        let f = &self.input_format;
        if !f.template.is_empty() && !f.objnames.is_empty() {
            return Err(CoreError::invalid(
                "dsort: input_format takes a template or objnames, not both",
            ));
        }
        let declared = if !self.input_extension.is_empty() {
            Some(norm_ext(&self.input_extension)?)
        } else if !self.extension.is_empty() {
            Some(norm_ext(&self.extension)?)
        } else {
            None
        };
        let from_template = ext_of(&f.template).map(str::to_string);
        if let (Some(d), Some(t)) = (&declared, &from_template) {
            if d != t {
                return Err(CoreError::invalid(format!(
                    "dsort: input_extension \"{d}\" but input_format ends with \"{t}\""
                )));
            }
        }
        let input_ext = declared
            .or(from_template)
            .or_else(|| {
                f.objnames
                    .first()
                    .and_then(|n| ext_of(n))
                    .map(str::to_string)
            })
            .ok_or_else(|| {
                CoreError::invalid(format!(
                    "dsort: missing input_extension (one of {})",
                    EXTENSIONS.join(", ")
                ))
            })?;
        let names = if !f.objnames.is_empty() {
            if f.objnames.len() > MAX_INPUTS {
                return Err(CoreError::invalid(format!(
                    "dsort: more than {MAX_INPUTS} input shards"
                )));
            }
            f.objnames.clone()
        } else if f.template.contains('{') {
            expand_template(&f.template, MAX_INPUTS)?
        } else if f.template.is_empty() {
            return Err(CoreError::invalid(
                "dsort: missing input_format (a template such as \"shard-{0..9}\" or objnames)",
            ));
        } else {
            // AIStore reads a template without a range as a prefix.
            return Err(CoreError::Unsupported(format!(
                "dsort: input_format template \"{}\" has no range: a prefix of input shards is not supported by aistore-rs; name them with a range (\"{}{{0..9}}\") or objnames",
                f.template, f.template
            )));
        };
        let inputs: Vec<String> = names
            .into_iter()
            .map(|n| {
                if ext_of(&n).is_some() {
                    n
                } else {
                    format!("{n}{input_ext}")
                }
            })
            .collect();
        for n in &inputs {
            crate::names::validate_object_name(n)?;
        }
        let output_ext = if self.output_extension.is_empty() {
            ext_of(&self.output_format)
                .map(str::to_string)
                .unwrap_or_else(|| input_ext.clone())
        } else {
            norm_ext(&self.output_extension)?
        };
        let shard_size = parse_size(&self.output_shard_size)?;
        let ekm = !self.ekm_file.is_empty();
        if ekm && !self.output_format.is_empty() {
            return Err(CoreError::invalid(
                "dsort: output_format and ekm_file exclude each other (the external key map names the output shards)",
            ));
        }
        if !ekm {
            if self.output_format.is_empty() {
                return Err(CoreError::invalid(
                    "dsort: missing output_format (e.g. \"out-{0000..9999}\") or ekm_file",
                ));
            }
            if !self.output_format.contains('{') {
                return Err(CoreError::invalid(format!(
                    "dsort: output_format \"{}\" must be a range template (e.g. \"out-{{0000..9999}}\")",
                    self.output_format
                )));
            }
            // Validate it now (a clear 400), without expanding it all.
            expand_template(&self.output_format, MAX_TEMPLATE)
                .and_then(|_| check_format(self.output_format.trim(), &output_ext))
                .map_err(|e| CoreError::invalid(format!("dsort: output_format: {e}")))?;
        }
        if shard_size == 0 {
            return Err(CoreError::invalid(
                "dsort: missing output_shard_size (bytes, or with a unit: \"10KB\", \"1MiB\")",
            ));
        }
        let a = &self.algorithm;
        let algorithm = match a.kind.as_str() {
            "" | "alphanumeric" | "shuffle" if a.extension.as_deref().is_some_and(|e| !e.is_empty()) || a.content_key_type.as_deref().is_some_and(|e| !e.is_empty()) => {
                return Err(CoreError::invalid(
                    "dsort: algorithm.extension and content_key_type apply to kind \"content\" only",
                ))
            }
            "" | "alphanumeric" => Algorithm::Alphanumeric {
                decreasing: a.decreasing,
            },
            "shuffle" => Algorithm::Shuffle {
                seed: if a.seed.is_empty() {
                    seed_now
                } else {
                    a.seed.trim().parse().map_err(|_| {
                        CoreError::invalid(format!(
                            "dsort: algorithm.seed \"{}\" is not a non-negative integer",
                            a.seed
                        ))
                    })?
                },
            },
            "content" => {
                let ext = a.extension.clone().unwrap_or_default().trim().to_string();
                if !ext.starts_with('.') || ext.len() < 2 {
                    return Err(CoreError::invalid(format!(
                        "dsort: algorithm.extension \"{ext}\" must name the member holding the key (e.g. \".cls\")"
                    )));
                }
                let key_type = match a.content_key_type.as_deref().unwrap_or("") {
                    "int" => KeyType::Int,
                    "float" => KeyType::Float,
                    "string" => KeyType::String,
                    o => {
                        return Err(CoreError::invalid(format!(
                            "dsort: algorithm.content_key_type \"{o}\" (expected int, float or string)"
                        )))
                    }
                };
                Algorithm::Content {
                    decreasing: a.decreasing,
                    extension: ext,
                    key_type,
                }
            }
            o => {
                return Err(CoreError::invalid(format!(
                    "dsort: invalid algorithm.kind \"{o}\" (expected alphanumeric, shuffle or content)"
                )))
            }
        };
        if self.extract_concurrency_max_limit < 0 || self.create_concurrency_max_limit < 0 {
            return Err(CoreError::invalid("dsort: negative concurrency limit"));
        }
        match self.dsorter_type.as_str() {
            "" | "dsort_general" | "dsort_mem" => {}
            o => {
                return Err(CoreError::invalid(format!(
                    "dsort: invalid dsorter_type \"{o}\" (expected dsort_general or dsort_mem)"
                )))
            }
        }
        if !self.max_mem_usage.is_empty() {
            let m = self.max_mem_usage.trim();
            let ok = match m.strip_suffix('%') {
                Some(p) => p.trim().parse::<f64>().is_ok_and(|p| p > 0.0 && p <= 100.0),
                None => parse_size(&Value::String(m.to_string())).is_ok_and(|n| n > 0),
            };
            if !ok {
                return Err(CoreError::invalid(format!(
                    "dsort: invalid max_mem_usage \"{m}\" (a percentage such as \"60%\" or a size such as \"10GB\")"
                )));
            }
        }
        let c = self.config.clone().unwrap_or_default();
        let pick = |a: &str, b: &str| -> String {
            if a.is_empty() {
                b.to_string()
            } else {
                a.to_string()
            }
        };
        Ok(Plan {
            id: id.to_string(),
            description: self.description.clone(),
            input_bck,
            output_bck,
            inputs,
            input_ext,
            output_ext,
            output_format: self.output_format.trim().to_string(),
            shard_size,
            algorithm,
            ekm_file: self.ekm_file.clone(),
            ekm_sep: if self.ekm_file_sep.is_empty() {
                "\t".into()
            } else {
                self.ekm_file_sep.clone()
            },
            max_mem_usage: self.max_mem_usage.clone(),
            dry_run: self.dry_run,
            missing_shards: reaction(
                "missing_shards",
                &pick(&self.missing_shards, &c.missing_shards),
                // Said in the job's warnings by default: a job that skipped
                // an input never looks like one that read them all
                // ("ignore" stays available, as AIStore's default).
                Reaction::Warn,
            )?,
            duplicated_records: reaction(
                "duplicated_records",
                &pick(&self.duplicated_records, &c.duplicated_records),
                Reaction::Ignore,
            )?,
            ekm_missing_key: reaction(
                "ekm_missing_key",
                &pick(&self.ekm_missing_key, &c.ekm_missing_key),
                Reaction::Abort,
            )?,
            ekm_malformed_line: reaction(
                "ekm_malformed_line",
                &pick(&self.ekm_malformed_line, &c.ekm_malformed_line),
                Reaction::Abort,
            )?,
            targets: Vec::new(),
        })
    }
}

/// A record's key: the member's name without its extension(s), up to the
/// first dot of its base name (WebDataset's rule, and AIStore's).
pub fn record_key(member: &str) -> &str {
    let base = member.rfind('/').map(|i| i + 1).unwrap_or(0);
    match member[base..].find('.') {
        Some(i) => &member[..base + i],
        None => member,
    }
}

/// A content key read from a record's member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ContentKey {
    Int(i64),
    Float(f64),
    Str(String),
}

impl ContentKey {
    pub fn parse(raw: &[u8], ty: KeyType) -> Result<ContentKey, CoreError> {
        let s = std::str::from_utf8(raw)
            .map_err(|_| CoreError::invalid("content key is not UTF-8"))?
            .trim();
        Ok(match ty {
            KeyType::Int => {
                ContentKey::Int(s.parse().map_err(|_| {
                    CoreError::invalid(format!("content key \"{s}\" is not an int"))
                })?)
            }
            KeyType::Float => {
                let f: f64 = s.parse().map_err(|_| {
                    CoreError::invalid(format!("content key \"{s}\" is not a float"))
                })?;
                if !f.is_finite() {
                    return Err(CoreError::invalid(format!(
                        "content key \"{s}\" is not a finite number"
                    )));
                }
                ContentKey::Float(f)
            }
            KeyType::String => ContentKey::Str(s.to_string()),
        })
    }

    /// A total order (a sort needs one): by kind first (keys of one job
    /// are of one kind anyway), floats by `total_cmp`.
    fn cmp(&self, o: &ContentKey) -> std::cmp::Ordering {
        let rank = |k: &ContentKey| match k {
            ContentKey::Int(_) => 0,
            ContentKey::Float(_) => 1,
            ContentKey::Str(_) => 2,
        };
        match (self, o) {
            (ContentKey::Int(a), ContentKey::Int(b)) => a.cmp(b),
            (ContentKey::Float(a), ContentKey::Float(b)) => a.total_cmp(b),
            (ContentKey::Str(a), ContentKey::Str(b)) => a.cmp(b),
            _ => rank(self).cmp(&rank(o)),
        }
    }
}

/// One record as the coordinator sees it: where it is, not what it holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordMeta {
    /// The record's key (shared by all its members).
    #[serde(rename = "k")]
    pub key: String,
    /// Its members' bytes together.
    #[serde(rename = "s")]
    pub size: u64,
    /// The record's number on the target that extracted it.
    #[serde(rename = "r")]
    pub rid: u32,
    /// The input shard it came from.
    #[serde(rename = "i")]
    pub shard: String,
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub ckey: Option<ContentKey>,
    /// The target holding it (set by the coordinator).
    #[serde(rename = "t", default)]
    pub holder: String,
}

/// Orders records for output, in place. Ties (and a shuffle's starting
/// point) are broken by key, shard and number, so the order depends only on
/// the records and the seed, never on which target answered first.
pub fn order(records: &mut [RecordMeta], alg: &Algorithm) {
    let base = |a: &RecordMeta, b: &RecordMeta| {
        a.key
            .cmp(&b.key)
            .then_with(|| a.shard.cmp(&b.shard))
            .then_with(|| a.rid.cmp(&b.rid))
    };
    match alg {
        Algorithm::Alphanumeric { decreasing } => {
            records.sort_by(base);
            if *decreasing {
                records.reverse();
            }
        }
        Algorithm::Shuffle { seed } => {
            use rand::{seq::SliceRandom, SeedableRng};
            records.sort_by(base);
            let mut rng = rand::rngs::StdRng::seed_from_u64(*seed);
            records.shuffle(&mut rng);
        }
        Algorithm::Content { decreasing, .. } => {
            records.sort_by(|a, b| {
                let k = match (&a.ckey, &b.ckey) {
                    (Some(x), Some(y)) => x.cmp(y),
                    (None, None) => std::cmp::Ordering::Equal,
                    (None, Some(_)) => std::cmp::Ordering::Less,
                    (Some(_), None) => std::cmp::Ordering::Greater,
                };
                let k = if *decreasing { k.reverse() } else { k };
                k.then_with(|| base(a, b))
            });
        }
    }
}

/// Cuts ordered records into consecutive shards: a shard closes once its
/// records reach `size` bytes (the last may be smaller); a record is never
/// split. Returns each shard's record range.
pub fn cut(records: &[RecordMeta], size: u64) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut acc) = (0usize, 0u64);
    for (i, r) in records.iter().enumerate() {
        acc = acc.saturating_add(r.size);
        if acc >= size {
            out.push(start..i + 1);
            start = i + 1;
            acc = 0;
        }
    }
    if start < records.len() {
        out.push(start..records.len());
    }
    out
}

/// The `n`th name of an output format: a range template (`out-{0000..9999}`,
/// with a step), or printf-style `%d` / `%0Nd` counted from 0. An error once
/// the template has no `n`th name.
pub fn nth_name(format: &str, n: usize) -> Result<String, CoreError> {
    if let Some(pos) = format.find('%') {
        let rest = &format[pos + 1..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if rest[digits.len()..].starts_with('d') {
            let width: usize = digits.trim_start_matches('0').parse().unwrap_or(usize::MAX);
            let width = if digits.trim_start_matches('0').is_empty() {
                0
            } else {
                width
            };
            if width > MAX_WIDTH {
                return Err(CoreError::invalid(format!(
                    "output format \"{format}\": a width of at most {MAX_WIDTH} digits"
                )));
            }
            let tail = &rest[digits.len() + 1..];
            return Ok(format!("{}{n:0width$}{tail}", &format[..pos]));
        }
    }
    let Some(open) = format.find('{') else {
        return if n == 0 {
            Ok(format.to_string())
        } else {
            Err(CoreError::invalid(format!(
                "output format \"{format}\" names one shard, and more are needed"
            )))
        };
    };
    let close = format[open..]
        .find('}')
        .map(|c| c + open)
        .ok_or_else(|| CoreError::invalid(format!("invalid template \"{format}\"")))?;
    if format[close + 1..].contains('{') {
        return Err(CoreError::Unsupported(format!(
            "output format \"{format}\": one range only"
        )));
    }
    let parts: Vec<&str> = format[open + 1..close].split("..").collect();
    let bad = || CoreError::invalid(format!("invalid template \"{format}\""));
    if parts.len() < 2 || parts.len() > 3 {
        return Err(bad());
    }
    let width = parts[0].len();
    if width > MAX_WIDTH {
        return Err(bad());
    }
    let a: u64 = parts[0].parse().map_err(|_| bad())?;
    let b: u64 = parts[1].parse().map_err(|_| bad())?;
    let step: u64 = match parts.get(2) {
        Some(s) => s.parse().map_err(|_| bad())?,
        None => 1,
    };
    if step == 0 {
        return Err(bad());
    }
    let i = a.saturating_add((n as u64).saturating_mul(step));
    if i > b {
        return Err(CoreError::invalid(format!(
            "output format \"{format}\" has fewer names than the {} output shards needed: widen its range",
            n + 1
        )));
    }
    Ok(format!(
        "{}{i:0width$}{}",
        &format[..open],
        &format[close + 1..]
    ))
}

/// Widest zero-padding of a name's number (u64 has 20 digits).
const MAX_WIDTH: usize = 20;

/// An output format that names valid objects (its first name checked:
/// the rest differ only in the number).
pub fn check_format(format: &str, ext: &str) -> Result<(), CoreError> {
    crate::names::validate_object_name(&with_ext(&nth_name(format, 0)?, ext))
        .map_err(|e| CoreError::invalid(format!("output format \"{format}\": {e}")))
}

/// An output name with the shard extension (unless it has it already).
pub fn with_ext(name: &str, ext: &str) -> String {
    if name.ends_with(ext) {
        name.to_string()
    } else {
        format!("{name}{ext}")
    }
}

/// One output shard: its name and its records in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutShard {
    pub name: String,
    /// (holder target id, record number, size) in output order.
    pub records: Vec<(String, u32, u64)>,
    pub size: u64,
}

/// Lays ordered records out as named output shards.
pub fn layout(
    records: &[RecordMeta],
    size: u64,
    format: &str,
    ext: &str,
    first: usize,
) -> Result<Vec<OutShard>, CoreError> {
    cut(records, size)
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let rs = &records[r];
            Ok(OutShard {
                name: with_ext(&nth_name(format, first + i)?, ext),
                records: rs
                    .iter()
                    .map(|x| (x.holder.clone(), x.rid, x.size))
                    .collect(),
                size: rs.iter().map(|x| x.size).sum(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(key: &str, size: u64, c: Option<ContentKey>) -> RecordMeta {
        RecordMeta {
            key: key.into(),
            size,
            rid: 0,
            shard: "s".into(),
            ckey: c,
            holder: "t".into(),
        }
    }

    #[test]
    fn spec_is_validated_with_aistore_names() {
        let s: RequestSpec = serde_json::from_value(json!({
            "input_bck": {"name": "src", "provider": "ais"},
            "input_format": {"template": "shard-{0..2}"},
            "input_extension": ".tar",
            "output_format": "out-{00..99}",
            "output_shard_size": "10KB",
            "algorithm": {"kind": "shuffle", "seed": "42"},
        }))
        .unwrap();
        let p = s.plan("srt-1", 0).unwrap();
        assert_eq!(p.inputs, ["shard-0.tar", "shard-1.tar", "shard-2.tar"]);
        assert_eq!(p.output_bck, "src");
        assert_eq!(p.output_ext, ".tar");
        assert_eq!(p.shard_size, 10 << 10);
        assert_eq!(p.algorithm, Algorithm::Shuffle { seed: 42 });
        let e =
            serde_json::from_value::<RequestSpec>(json!({"input_bck": {"name": "a"}, "nope": 1}))
                .unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        for (bad, why) in [
            (
                json!({"input_bck": {"name": "a"}, "input_format": {"template": "s-{0..1}"}, "input_extension": ".rar", "output_format": "o-{0..9}", "output_shard_size": 1}),
                "unsupported shard extension",
            ),
            (
                json!({"input_bck": {"name": "a"}, "input_format": {"template": "s-{0..1}.tar"}, "output_shard_size": 1}),
                "output_format",
            ),
            (
                json!({"input_bck": {"name": "a"}, "input_format": {"template": "s-{0..1}.tar"}, "output_format": "o-{0..9}"}),
                "output_shard_size",
            ),
            (
                json!({"input_bck": {"name": "a"}, "input_format": {"template": "s-{0..1}.tar"}, "output_format": "o-{0..9}", "output_shard_size": 1, "algorithm": {"kind": "content"}}),
                "algorithm.extension",
            ),
            (
                json!({"input_bck": {"name": "a"}, "input_format": {"template": "s-{0..1}.tar"}, "output_format": "o-{0..9}", "output_shard_size": 1, "algorithm": {"kind": "shuffle", "seed": "-1"}}),
                "seed",
            ),
            (
                json!({"input_bck": {"name": "a"}, "input_format": {"template": "s-{0..1}.tar"}, "output_format": "o-{0..9}", "output_shard_size": "1XB"}),
                "output_shard_size",
            ),
            (
                json!({"input_bck": {"name": "a", "provider": "gcp"}, "input_format": {"template": "s-{0..1}.tar"}, "output_format": "o-{0..9}", "output_shard_size": 1}),
                "ais://",
            ),
            (
                json!({"input_bck": {"name": "a"}, "input_format": {"template": "s-"}, "input_extension": ".tar", "output_format": "o-{0..9}", "output_shard_size": 1}),
                "prefix",
            ),
            (
                json!({"input_bck": {"name": "a"}, "input_format": {"template": "s-{0..1}.tar"}, "output_format": "o-{0..9}", "output_shard_size": 1, "ekm_file": "ais://a/e.json"}),
                "exclude",
            ),
        ] {
            let s: RequestSpec = serde_json::from_value(bad.clone()).unwrap();
            let e = s.plan("x", 0).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn keys_order_and_cuts() {
        assert_eq!(record_key("a/b/0001.jpg"), "a/b/0001");
        assert_eq!(record_key("x.y/0001.seg.cls"), "x.y/0001");
        assert_eq!(record_key("plain"), "plain");
        let mut rs = vec![rec("c", 5, None), rec("a", 5, None), rec("b", 5, None)];
        order(&mut rs, &Algorithm::Alphanumeric { decreasing: false });
        assert_eq!(rs.iter().map(|r| r.key.as_str()).collect::<String>(), "abc");
        order(&mut rs, &Algorithm::Alphanumeric { decreasing: true });
        assert_eq!(rs.iter().map(|r| r.key.as_str()).collect::<String>(), "cba");
        let many: Vec<RecordMeta> = (0..50).map(|i| rec(&format!("k{i:02}"), 1, None)).collect();
        let shuffled = |seed| {
            let mut v = many.clone();
            v.reverse();
            order(&mut v, &Algorithm::Shuffle { seed });
            v.iter().map(|r| r.key.clone()).collect::<Vec<_>>()
        };
        assert_eq!(
            shuffled(7),
            shuffled(7),
            "reproducible by seed, whatever the input order"
        );
        assert_ne!(shuffled(7), shuffled(8));
        let mut rs = vec![
            rec("a", 1, Some(ContentKey::Int(10))),
            rec("b", 1, Some(ContentKey::Int(-2))),
            rec("c", 1, Some(ContentKey::Int(3))),
        ];
        order(
            &mut rs,
            &Algorithm::Content {
                decreasing: false,
                extension: ".cls".into(),
                key_type: KeyType::Int,
            },
        );
        assert_eq!(rs.iter().map(|r| r.key.as_str()).collect::<String>(), "bca");
        // Shards close once they reach the size; records never split.
        let rs: Vec<RecordMeta> = [4, 4, 4, 10, 1]
            .iter()
            .map(|s| rec("k", *s, None))
            .collect();
        assert_eq!(cut(&rs, 8), vec![0..2, 2..4, 4..5]);
        assert_eq!(nth_name("out-{0000..9999}", 12).unwrap(), "out-0012");
        assert_eq!(nth_name("s-{0..100..3}-cats", 2).unwrap(), "s-6-cats");
        assert_eq!(nth_name("cats-%d", 3).unwrap(), "cats-3");
        assert_eq!(nth_name("cars-%06d-x", 3).unwrap(), "cars-000003-x");
        assert!(nth_name("o-{0..1}", 2)
            .unwrap_err()
            .to_string()
            .contains("widen"));
        assert!(nth_name("o-%0999999999999d", 0).is_err());
        assert!(nth_name("o-{000000000000000000000000..1}", 0).is_err());
        assert!(ContentKey::parse(b"inf", KeyType::Float).is_err());
        assert!(ContentKey::parse(b"1e999", KeyType::Float).is_err());
        assert_eq!(with_ext("o-1", ".tar"), "o-1.tar");
        assert_eq!(with_ext("o-1.tar", ".tar"), "o-1.tar");
        assert_eq!(parse_size(&json!("1.5KiB")).unwrap(), 1536);
        assert_eq!(parse_size(&json!(77)).unwrap(), 77);
        assert_eq!(
            ContentKey::parse(b" 12\n", KeyType::Int).unwrap(),
            ContentKey::Int(12)
        );
        assert!(ContentKey::parse(b"x", KeyType::Int).is_err());
    }
}
