//! Cluster and node configuration: the keys aistore-rs honours (AIStore's
//! names and JSON shape), their defaults, how a value is parsed and
//! validated, and how overrides combine.
//!
//! A configuration is a set of *overrides* on top of [`KEYS`]' defaults:
//! the cluster's (versioned metadata the primary owns and pushes to every
//! node) and one node's own (kept by that node). Only keys the node acts on
//! are listed: an AIStore key aistore-rs does not implement is refused with
//! 400 rather than stored and ignored.

use crate::CoreError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// A key's value type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Go-style duration ("500ms", "10s", "2m", "1h30m"), at least `min_ms`.
    Duration {
        min_ms: u64,
    },
    /// Integer in `min..=max`.
    Int {
        min: i64,
        max: i64,
    },
    Bool,
    /// One of the listed words.
    Choice(&'static [&'static str]),
}

/// Where a key may be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Cluster-wide only (AIStore's `allow:"cluster"`).
    Cluster,
    /// Cluster-wide, or for one node (`ais config node NODE ...`).
    Any,
}

/// One configuration key.
#[derive(Debug)]
pub struct Key {
    /// Dotted JSON path, AIStore's name.
    pub path: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    pub scope: Scope,
    /// What the node does with it (shown by `ais config show --help`-style listings).
    pub help: &'static str,
}

const fn key(
    path: &'static str,
    kind: Kind,
    default: &'static str,
    scope: Scope,
    help: &'static str,
) -> Key {
    Key {
        path,
        kind,
        default,
        scope,
        help,
    }
}

const CKSUMS: &[&str] = crate::meta::CKSUM_TYPES;

/// Every key aistore-rs honours. Changes apply live unless `help` says otherwise.
pub static KEYS: &[Key] = &[
    key(
        "timeout.max_keepalive",
        Kind::Duration { min_ms: 1000 },
        "4s",
        Scope::Cluster,
        "the primary removes a node silent for this long from the cluster map",
    ),
    key(
        "rebalance.enabled",
        Kind::Bool,
        "true",
        Scope::Cluster,
        "a change of membership starts a global rebalance",
    ),
    key(
        "lru.enabled",
        Kind::Bool,
        "true",
        Scope::Any,
        "evict cached copies of remote objects when a mountpath passes space.highwm",
    ),
    key(
        "lru.dont_evict_time",
        Kind::Duration { min_ms: 0 },
        "2h",
        Scope::Any,
        "an object read or written this recently is not evicted",
    ),
    key(
        "lru.capacity_upd_time",
        Kind::Duration { min_ms: 100 },
        "10m",
        Scope::Any,
        "how often a target checks its capacity against the watermarks",
    ),
    key(
        "space.cleanupwm",
        Kind::Int { min: 0, max: 100 },
        "65",
        Scope::Any,
        "kept in order with the other watermarks (AIStore's space-cleanup threshold)",
    ),
    key(
        "space.dont_cleanup_time",
        Kind::Duration { min_ms: 60_000 },
        "2h",
        Scope::Any,
        "space cleanup removes leftover temp files not touched for this long",
    ),
    key(
        "space.lowwm",
        Kind::Int { min: 0, max: 100 },
        "75",
        Scope::Any,
        "LRU eviction stops at this percent used",
    ),
    key(
        "space.highwm",
        Kind::Int { min: 0, max: 100 },
        "90",
        Scope::Any,
        "LRU eviction starts above this percent used",
    ),
    key(
        "space.out_of_space",
        Kind::Int { min: 0, max: 100 },
        "95",
        Scope::Any,
        "kept above space.highwm (AIStore's out-of-space threshold)",
    ),
    key(
        "mirror.enabled",
        Kind::Bool,
        "false",
        Scope::Cluster,
        "default for buckets created from now on",
    ),
    key(
        "mirror.copies",
        Kind::Int { min: 1, max: 16 },
        "1",
        Scope::Cluster,
        "default for buckets created from now on",
    ),
    key(
        "ec.enabled",
        Kind::Bool,
        "false",
        Scope::Cluster,
        "default for buckets created from now on",
    ),
    key(
        "ec.data_slices",
        Kind::Int { min: 1, max: 32 },
        "2",
        Scope::Cluster,
        "default for buckets created from now on",
    ),
    key(
        "ec.parity_slices",
        Kind::Int { min: 1, max: 32 },
        "2",
        Scope::Cluster,
        "default for buckets created from now on",
    ),
    key(
        "checksum.type",
        Kind::Choice(CKSUMS),
        "xxhash",
        Scope::Cluster,
        "default for buckets created from now on",
    ),
    key(
        "versioning.enabled",
        Kind::Bool,
        "true",
        Scope::Cluster,
        "default for buckets created from now on",
    ),
];

/// The key named `path`.
pub fn find(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.path == path)
}

/// Parses a Go-style duration: "500ms", "10s", "2m", "1h30m", "1.5h".
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * mult;
    }
    if !total.is_finite() || total > 100.0 * 365.0 * 86400.0 {
        return None;
    }
    Some(Duration::from_secs_f64(total))
}

/// Renders a duration the way AIStore prints them ("4s", "2m", "1h30m", "500ms").
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let mut s = (ms / 1000) as u64;
    let mut out = String::new();
    if s >= 3600 {
        out.push_str(&format!("{}h", s / 3600));
        s %= 3600;
    }
    if s >= 60 {
        out.push_str(&format!("{}m", s / 60));
        s %= 60;
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Checks `raw` against `k`'s type; returns the normalised text.
fn normalise(k: &Key, raw: &str) -> Result<String, CoreError> {
    let raw = raw.trim();
    let bad = |m: String| CoreError::invalid(m);
    match k.kind {
        Kind::Duration { min_ms } => {
            let d = parse_duration(raw).ok_or_else(|| {
                bad(format!(
                    "\"{raw}\" is not a duration (examples: \"500ms\", \"10s\", \"2m\", \"1h\")"
                ))
            })?;
            if (d.as_millis() as u64) < min_ms {
                return Err(bad(format!(
                    "{} is below the minimum of {}",
                    fmt_duration(d),
                    fmt_duration(Duration::from_millis(min_ms))
                )));
            }
            Ok(fmt_duration(d))
        }
        Kind::Int { min, max } => {
            let n: i64 = raw
                .parse()
                .map_err(|_| bad(format!("\"{raw}\" is not an integer")))?;
            if !(min..=max).contains(&n) {
                return Err(bad(format!("{n} is outside {min}..={max}")));
            }
            Ok(n.to_string())
        }
        Kind::Bool => match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok("true".into()),
            "false" | "0" | "no" | "off" => Ok("false".into()),
            _ => Err(bad(format!("\"{raw}\" is not true or false"))),
        },
        Kind::Choice(words) => {
            if words.contains(&raw) {
                Ok(raw.to_string())
            } else {
                Err(bad(format!("\"{raw}\" is not one of {}", words.join(", "))))
            }
        }
    }
}

/// Validated updates: `(key, normalised value)`.
pub type Updates = BTreeMap<String, String>;

/// Parses `key=value` pairs (as in `PUT /v1/cluster/set-config?k=v`).
/// Every problem is reported at once: unknown keys by name, then bad values.
pub fn parse_updates<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    node_level: bool,
) -> Result<Updates, CoreError> {
    let mut out = Updates::new();
    let mut unknown = Vec::new();
    let mut bad = Vec::new();
    let mut given = std::collections::BTreeSet::new();
    for (k, v) in pairs {
        if !given.insert(k) {
            bad.push(format!("{k}: given more than once"));
            continue;
        }
        match find(k) {
            None => unknown.push(k.to_string()),
            Some(key) if node_level && key.scope == Scope::Cluster => bad.push(format!(
                "{k}: cluster-wide only (set it with `ais config cluster`)"
            )),
            Some(key) => match normalise(key, v) {
                Ok(n) => {
                    out.insert(k.to_string(), n);
                }
                Err(e) => bad.push(format!("{k}: {e}")),
            },
        }
    }
    if !unknown.is_empty() {
        return Err(CoreError::invalid(format!(
            "unknown configuration key{} {} (aistore-rs supports: {})",
            if unknown.len() > 1 { "s" } else { "" },
            unknown
                .iter()
                .map(|k| format!("\"{k}\""))
                .collect::<Vec<_>>()
                .join(", "),
            KEYS.iter().map(|k| k.path).collect::<Vec<_>>().join(", ")
        )));
    }
    if !bad.is_empty() {
        return Err(CoreError::invalid(format!(
            "invalid configuration: {}",
            bad.join("; ")
        )));
    }
    if out.is_empty() {
        return Err(CoreError::invalid(
            "set-config: nothing to set (give key=value pairs, e.g. timeout.max_keepalive=8s)",
        ));
    }
    Ok(out)
}

/// Flattens a nested JSON object (AIStore's `ConfigToSet`, the `value` of a
/// `set-config` action) into `key=value` text pairs.
pub fn flatten(v: &Value) -> Result<Vec<(String, String)>, CoreError> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) -> Result<(), CoreError> {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, v, out)?;
                }
                Ok(())
            }
            Value::String(s) => {
                out.push((prefix.to_string(), s.clone()));
                Ok(())
            }
            Value::Bool(b) => {
                out.push((prefix.to_string(), b.to_string()));
                Ok(())
            }
            Value::Number(n) => {
                out.push((prefix.to_string(), n.to_string()));
                Ok(())
            }
            _ => Err(CoreError::invalid(format!(
                "set-config: \"{prefix}\" must be a string, number or boolean"
            ))),
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out)?;
    Ok(out)
}

/// The cluster's configuration overrides: versioned metadata the primary
/// changes and every node keeps (`config.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterConfig {
    #[serde(with = "crate::meta::strnum")]
    pub version: u64,
    #[serde(default)]
    pub uuid: String,
    /// Normalised values of the keys set cluster-wide.
    #[serde(default)]
    pub overrides: Updates,
}

/// A node's effective configuration: defaults, then the cluster's overrides,
/// then the node's own.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    values: BTreeMap<&'static str, String>,
    pub version: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self::compose(&Updates::new(), &Updates::new(), 0)
    }
}

impl Config {
    /// Combines the layers; values that no longer parse (a key's rules got
    /// stricter since they were stored) fall back to the lower layer.
    pub fn compose(cluster: &Updates, local: &Updates, version: u64) -> Self {
        let mut values = BTreeMap::new();
        for k in KEYS {
            let mut v = k.default.to_string();
            for layer in [cluster, local] {
                if let Some(n) = layer.get(k.path).and_then(|raw| normalise(k, raw).ok()) {
                    v = n;
                }
            }
            values.insert(k.path, v);
        }
        Self { values, version }
    }

    fn raw(&self, path: &str) -> &str {
        self.values.get(path).map(String::as_str).unwrap_or("")
    }

    pub fn duration(&self, path: &str) -> Duration {
        parse_duration(self.raw(path)).unwrap_or_default()
    }
    pub fn int(&self, path: &str) -> i64 {
        self.raw(path).parse().unwrap_or_default()
    }
    pub fn bool(&self, path: &str) -> bool {
        self.raw(path) == "true"
    }
    pub fn text(&self, path: &str) -> &str {
        self.raw(path)
    }

    /// Checks rules that span keys (watermarks in order).
    pub fn validate(&self) -> Result<(), CoreError> {
        let (c, l, h, o) = (
            self.int("space.cleanupwm"),
            self.int("space.lowwm"),
            self.int("space.highwm"),
            self.int("space.out_of_space"),
        );
        if !(c <= l && l < h && h < o) {
            return Err(CoreError::invalid(format!(
                "space watermarks must satisfy cleanupwm <= lowwm < highwm < out_of_space, not {c}, {l}, {h}, {o}"
            )));
        }
        Ok(())
    }

    /// The properties a new bucket starts with (`mirror`, `ec`,
    /// `checksum`, `versioning` sections).
    pub fn bucket_defaults(&self) -> crate::meta::BucketProps {
        let mut p = crate::meta::BucketProps::default();
        p.mirror.enabled = self.bool("mirror.enabled");
        p.mirror.copies = self.int("mirror.copies").clamp(1, 16) as u32;
        p.ec.enabled = self.bool("ec.enabled");
        p.ec.data_slices = self.int("ec.data_slices").clamp(1, 32) as u32;
        p.ec.parity_slices = self.int("ec.parity_slices").clamp(1, 32) as u32;
        p.checksum.kind = self.text("checksum.type").to_string();
        p.versioning.enabled = self.bool("versioning.enabled");
        p
    }

    /// AIStore's nested JSON shape (`GET /v1/cluster?what=config`).
    pub fn to_json(&self, uuid: &str) -> Value {
        let mut root = Map::new();
        for k in KEYS {
            let raw = self.raw(k.path);
            let v = match k.kind {
                Kind::Int { .. } => raw.parse::<i64>().map(Value::from).unwrap_or(Value::Null),
                Kind::Bool => Value::Bool(raw == "true"),
                _ => Value::String(raw.to_string()),
            };
            let mut node = &mut root;
            let mut parts = k.path.split('.').peekable();
            while let Some(p) = parts.next() {
                if parts.peek().is_none() {
                    node.insert(p.to_string(), v.clone());
                } else {
                    let next = node
                        .entry(p.to_string())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !next.is_object() {
                        *next = Value::Object(Map::new());
                    }
                    match next {
                        Value::Object(m) => node = m,
                        _ => break,
                    }
                }
            }
        }
        root.insert(
            "config_version".into(),
            Value::String(self.version.to_string()),
        );
        root.insert("uuid".into(), Value::String(uuid.to_string()));
        Value::Object(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for (s, ms) in [
            ("500ms", 500),
            ("10s", 10_000),
            ("2m", 120_000),
            ("1h30m", 5_400_000),
            ("1.5s", 1500),
            ("0", 0),
        ] {
            assert_eq!(parse_duration(s), Some(Duration::from_millis(ms)), "{s}");
        }
        assert_eq!(fmt_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1500ms");
        for bad in ["", "s", "10", "10x", "-1s", "1e400s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = parse_updates([("nope.x", "1"), ("timeout.max_keepalive", "3s")], false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"nope.x\""), "{e}");
        let e = parse_updates(
            [("timeout.max_keepalive", "soon"), ("space.lowwm", "101")],
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("timeout.max_keepalive") && e.contains("space.lowwm"),
            "{e}"
        );
        let e = parse_updates([("mirror.copies", "3")], true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cluster-wide only"), "{e}");
        let u = parse_updates([("timeout.max_keepalive", "90s")], false).unwrap();
        assert_eq!(u["timeout.max_keepalive"], "1m30s");
    }

    #[test]
    fn layers_and_shape() {
        let cluster = Updates::from([("space.highwm".to_string(), "80".to_string())]);
        let local = Updates::from([("space.highwm".to_string(), "85".to_string())]);
        let c = Config::compose(&cluster, &local, 7);
        assert_eq!(c.int("space.highwm"), 85);
        assert_eq!(c.duration("timeout.max_keepalive"), Duration::from_secs(4));
        let j = c.to_json("u1");
        assert_eq!(j["space"]["highwm"], 85);
        assert_eq!(j["timeout"]["max_keepalive"], "4s");
        assert_eq!(j["config_version"], "7");
        assert_eq!(j["rebalance"]["enabled"], true);
        let bad = Updates::from([("space.lowwm".to_string(), "95".to_string())]);
        assert!(Config::compose(&bad, &Updates::new(), 1)
            .validate()
            .is_err());
    }

    #[test]
    fn nested_json_flattens() {
        let v = serde_json::json!({"timeout": {"max_keepalive": "5s"}, "space": {"highwm": 80}, "lru": {"enabled": false}});
        let pairs = flatten(&v).unwrap();
        let u = parse_updates(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), false).unwrap();
        assert_eq!(u.len(), 3);
        assert!(flatten(&serde_json::json!({"a": [1]})).is_err());
    }
}
