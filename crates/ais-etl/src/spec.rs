//! What an ETL is: parsed and validated from any of the init messages
//! AIStore clients send (2021 `init_code`, 2022-25 `PUT /v1/etl` code
//! messages, SDK 2.0.0 `ETLSpecMsg` incl. `init_class`, runtime-spec YAML
//! converted to JSON by the CLI).

use crate::EtlError;
use base64::Engine;
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comm {
    Io,
    Hpush,
    Hpull,
    /// AIStore's `ws://`: one persistent websocket per exchange in flight
    /// to a `runtime.command` server's `/ws` (the SDK's FastAPIServer
    /// protocol); for Python code and `init_class` ETLs, whose workers
    /// already hold a persistent channel to the target, the same as hpush.
    Ws,
}

impl Comm {
    pub fn as_str(self) -> &'static str {
        match self {
            Comm::Io => "io://",
            Comm::Hpush => "hpush://",
            Comm::Hpull => "hpull://",
            Comm::Ws => "ws://",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// User Python code: a transform function (hpush/hpull) or an io:// script.
    Code {
        code: Vec<u8>,
        func: String,
        arg_type: String,
        fresh_process: bool,
    },
    /// SDK `init_class`: a cloudpickled class in `ETL_CLASS_PAYLOAD`.
    Class { python_minor: String },
    /// `runtime.command`: a local transformer HTTP server per target.
    Command { command: Vec<String> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct EtlSpec {
    pub name: String,
    pub comm: Comm,
    /// `python3` (default interpreter) or `python3.N`.
    pub runtime: String,
    pub kind: Kind,
    /// requirements.txt content.
    pub deps: String,
    pub env: Vec<(String, String)>,
    pub init_timeout: Duration,
    pub obj_timeout: Duration,
    /// Workers per target (0 = automatic).
    pub pool_size: usize,
    /// Per-process limits the spec sets (`"limits": {...}`); unset ones take
    /// the target's defaults.
    pub limits: Limits,
    /// Keep the host network (`"network": true`); by default workers get a
    /// network namespace of their own with only a loopback.
    pub network: bool,
    /// Code with `transform_batch`: concurrent calls are handed to a worker
    /// in batches of up to this many (`"batch_size"`, default 16) ...
    pub batch_size: usize,
    /// ... gathered for at most this long after the first (`"batch_ms"`,
    /// default 2 ms).
    pub batch_wait: Duration,
    /// `"device": "cuda"`: one worker per GPU of the target's host.
    pub cuda: bool,
}

/// Resource limits of one ETL process (`None`: no limit / not set).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Limits {
    /// Bytes of memory.
    pub memory: Option<u64>,
    /// Processes (threads included, with a pids cgroup).
    pub nproc: Option<u64>,
    /// Open files.
    pub nofile: Option<u64>,
    /// CPU seconds over the process's life.
    pub cpu_seconds: Option<u64>,
    /// Bytes of one transform's output.
    pub output: Option<u64>,
}

impl Limits {
    /// `self`'s values where set, else `defaults`'.
    pub fn or(&self, defaults: &Limits) -> Limits {
        Limits {
            memory: self.memory.or(defaults.memory),
            nproc: self.nproc.or(defaults.nproc),
            nofile: self.nofile.or(defaults.nofile),
            cpu_seconds: self.cpu_seconds.or(defaults.cpu_seconds),
            output: self.output.or(defaults.output),
        }
    }

    fn from_json(v: &Value) -> Result<Limits, EtlError> {
        let num =
            |k: &str, size: bool| -> Result<Option<u64>, EtlError> {
                match v.get(k) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
                        EtlError::Invalid(format!("limits.{k} must be a non-negative integer"))
                    }),
                    Some(Value::String(s)) if size => parse_size(s).map(Some),
                    Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| {
                        EtlError::Invalid(format!("limits.{k}: invalid number \"{s}\""))
                    }),
                    Some(_) => Err(EtlError::Invalid(format!("limits.{k} must be a number"))),
                }
            };
        if let Some(obj) = v.as_object() {
            for k in obj.keys() {
                if !["memory", "nproc", "nofile", "cpu_seconds", "output"].contains(&k.as_str()) {
                    return Err(EtlError::Invalid(format!(
                        "unknown limit \"{k}\" (supported: memory, nproc, nofile, cpu_seconds, output)"
                    )));
                }
            }
        } else if !v.is_null() {
            return Err(EtlError::Invalid("\"limits\" must be an object".into()));
        }
        Ok(Limits {
            memory: num("memory", true)?,
            nproc: num("nproc", false)?,
            nofile: num("nofile", false)?,
            cpu_seconds: num("cpu_seconds", false)?,
            output: num("output", true)?,
        })
    }
}

/// A size: bytes, or with a unit (`512MiB`, `4GiB`, `512M`, `1g`, `100KB`).
pub fn parse_size(s: &str) -> Result<u64, EtlError> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| EtlError::Invalid(format!("invalid size \"{s}\"")))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(EtlError::Invalid(format!("invalid size \"{s}\" (unit)"))),
    };
    Ok((n * mult as f64) as u64)
}

pub fn validate_name(name: &str) -> Result<(), EtlError> {
    let bad = |why: &str| {
        Err(EtlError::Invalid(format!(
            "invalid ETL name \"{name}\": {why}"
        )))
    };
    if name.len() < 6 || name.len() > 32 {
        return bad("must be 6 to 32 characters long");
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        return bad("may contain only lowercase letters, digits and '-'");
    }
    let (f, l) = (name.as_bytes()[0], name.as_bytes()[name.len() - 1]);
    if !f.is_ascii_alphanumeric() || !l.is_ascii_alphanumeric() {
        return bad("must start and end with a letter or digit");
    }
    Ok(())
}

/// Go-style duration: "45s", "5m", "1h30m", "500ms", "2m0s"; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, EtlError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(EtlError::Invalid("empty duration".into()));
    }
    if let Ok(n) = s.parse::<f64>() {
        return Ok(Duration::from_secs_f64(n.max(0.0)));
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphabetic() || n == 'µ' {
                unit.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let v: f64 = num
            .parse()
            .map_err(|_| EtlError::Invalid(format!("invalid duration \"{s}\"")))?;
        num.clear();
        total += v * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => {
                return Err(EtlError::Invalid(format!(
                    "invalid duration \"{s}\" (unit \"{unit}\")"
                )))
            }
        };
    }
    if !num.is_empty() {
        return Err(EtlError::Invalid(format!(
            "invalid duration \"{s}\" (missing unit)"
        )));
    }
    Ok(Duration::from_secs_f64(total))
}

pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_millis() != 0 || s == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 {
        out.push_str(&format!("{sec}s"));
    }
    out
}

fn s<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a str> {
    let obj = v.as_object()?;
    for k in keys {
        // Go decodes JSON keys case-insensitively; so do we.
        if let Some((_, val)) = obj.iter().find(|(kk, _)| kk.eq_ignore_ascii_case(k)) {
            if let Some(s) = val.as_str() {
                return Some(s);
            }
        }
    }
    None
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn b64(field: &str, raw: &str) -> Result<Vec<u8>, EtlError> {
    base64::engine::general_purpose::STANDARD
        .decode(raw.trim())
        .map_err(|e| EtlError::Invalid(format!("\"{field}\" must be base64-encoded: {e}")))
}

pub fn parse_comm(raw: &str) -> Result<Comm, EtlError> {
    let c = raw.trim().trim_end_matches("://");
    match c {
        "" | "hpush" => Ok(Comm::Hpush),
        "hpull" => Ok(Comm::Hpull),
        "io" => Ok(Comm::Io),
        "ws" => Ok(Comm::Ws),
        "hrev" => Err(EtlError::Invalid(format!(
            "communication type \"{raw}\" is not supported (supported: io://, hpush://, hpull://, ws://)"
        ))),
        _ => Err(EtlError::Invalid(format!(
            "invalid communication type \"{raw}\" (expected io://, hpush://, hpull:// or ws://)"
        ))),
    }
}

/// Python minor from `aistorage/runtime_python:3.11` (None for other images).
fn runtime_python_minor(image: &str) -> Option<String> {
    let (repo, tag) = image.rsplit_once(':')?;
    if !repo.ends_with("runtime_python") {
        return None;
    }
    let minor: String = tag
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    (minor.matches('.').count() == 1).then_some(minor)
}

/// The most workers one ETL may ask for per target (`pool_size`):
/// `AIS_ETL_MAX_POOL_SIZE`, default twice the host's cores (at least 4).
pub fn max_pool_size() -> usize {
    std::env::var("AIS_ETL_MAX_POOL_SIZE")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|n: &usize| *n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() * 2)
                .unwrap_or(4)
                .max(4)
        })
}

/// Whether ETLs may keep the host's network (`"network": true`, and every
/// `runtime.command` server) on a cluster without authentication:
/// `AIS_ETL_ALLOW_HOST_NETWORK=1`. Without auth, anything on the host
/// network can call the cluster's admin API.
pub fn host_network_allowed() -> bool {
    std::env::var("AIS_ETL_ALLOW_HOST_NETWORK").is_ok_and(|v| v == "1" || v == "true")
}

impl EtlSpec {
    /// The operator's bounds: `pool_size` at most [`max_pool_size`], and no
    /// limit above (or switched off where there is) the operator's default
    /// (`AIS_ETL_MEM_LIMIT`, ...): an ETL may lower its limits, never raise
    /// them. An error names the first one exceeded.
    pub fn check_caps(&self, defaults: &Limits) -> Result<(), EtlError> {
        let max = max_pool_size();
        if self.pool_size > max {
            return Err(EtlError::Invalid(format!(
                "pool_size {} exceeds this cluster's maximum of {max} workers per target \
                 (AIS_ETL_MAX_POOL_SIZE)",
                self.pool_size
            )));
        }
        let fmt = |size: bool, n: u64| {
            if size {
                crate::sandbox::fmt_size(n)
            } else {
                n.to_string()
            }
        };
        for (name, var, size, asked, cap) in [
            (
                "memory",
                "AIS_ETL_MEM_LIMIT",
                true,
                self.limits.memory,
                defaults.memory,
            ),
            (
                "nproc",
                "AIS_ETL_NPROC",
                false,
                self.limits.nproc,
                defaults.nproc,
            ),
            (
                "nofile",
                "AIS_ETL_NOFILE",
                false,
                self.limits.nofile,
                defaults.nofile,
            ),
            (
                "cpu_seconds",
                "AIS_ETL_CPU_SECONDS",
                false,
                self.limits.cpu_seconds,
                defaults.cpu_seconds,
            ),
            (
                "output",
                "AIS_ETL_MAX_OUTPUT",
                true,
                self.limits.output,
                defaults.output,
            ),
        ] {
            let (Some(asked), Some(cap)) = (asked, cap) else {
                continue;
            };
            if asked == 0 || asked > cap {
                let what = if asked == 0 {
                    "0 (no limit)".to_string()
                } else {
                    fmt(size, asked)
                };
                return Err(EtlError::Invalid(format!(
                    "limits.{name} {what} exceeds this cluster's maximum of {} ({var})",
                    fmt(size, cap)
                )));
            }
        }
        Ok(())
    }

    /// Whether this ETL keeps the host's network: asked for, or a
    /// `runtime.command` server (the target must reach it).
    pub fn host_network(&self) -> bool {
        self.network || matches!(self.kind, Kind::Command { .. })
    }

    /// Parses any supported init message; `fallback_name` is used when the
    /// message carries none (legacy `id: ""` ⇒ a generated name).
    pub fn from_json(v: &Value) -> Result<Self, EtlError> {
        if !v.is_object() {
            return Err(EtlError::Invalid(
                "ETL init message must be a JSON object".into(),
            ));
        }
        let mut name = s(v, &["name", "id"]).unwrap_or("").to_string();
        if name.is_empty() {
            name = format!("etl-{}", ais_core::gen_id(8).to_lowercase());
        }
        validate_name(&name)?;
        let comm =
            parse_comm(s(v, &["communication", "communication_type", "comm_type"]).unwrap_or(""))?;
        let timeout = |keys: &[&str], default: u64| -> Result<Duration, EtlError> {
            match s(v, keys) {
                Some(t) if !t.is_empty() => parse_duration(t),
                _ => match keys.iter().find_map(|k| get(v, k).and_then(Value::as_f64)) {
                    Some(n) => Ok(Duration::from_secs_f64(n / 1e9)), // Go marshals Duration as ns
                    None => Ok(Duration::from_secs(default)),
                },
            }
        };
        let init_timeout = timeout(&["init_timeout", "wait_timeout", "timeout"], 300)?;
        let obj_timeout = timeout(&["obj_timeout"], 45)?;
        let pool_size = get(v, "pool_size").and_then(Value::as_u64).unwrap_or(0) as usize;
        let cuda = match get(v, "device").and_then(Value::as_str).unwrap_or("") {
            "" | "cpu" => false,
            "cuda" | "gpu" => true,
            other => {
                return Err(EtlError::Invalid(format!(
                    "unsupported device \"{other}\" (expected \"cpu\" or \"cuda\")"
                )))
            }
        };
        let batch_size = get(v, "batch_size")
            .and_then(Value::as_u64)
            .unwrap_or(16)
            .clamp(1, 1024) as usize;
        let batch_wait = Duration::from_millis(
            get(v, "batch_ms")
                .and_then(Value::as_u64)
                .unwrap_or(2)
                .min(1000),
        );
        let limits = Limits::from_json(get(v, "limits").unwrap_or(&Value::Null))?;
        let network = ["network", "allow_network"]
            .iter()
            .any(|k| get(v, k).and_then(Value::as_bool).unwrap_or(false));
        let deps_raw = s(v, &["dependencies"]).unwrap_or("");
        let mut deps = String::from_utf8(b64("dependencies", deps_raw)?)
            .map_err(|_| EtlError::Invalid("dependencies are not UTF-8 text".into()))?;
        let mut env = Vec::new();
        let mut runtime = s(v, &["runtime"]).unwrap_or("python3").to_string();
        let kind = if let Some(rt) = get(v, "runtime").filter(|r| r.is_object()) {
            // ETLSpecMsg (SDK 2.0.0 init / init_class, runtime spec).
            if let Some(list) = get(rt, "env").and_then(Value::as_array) {
                for e in list {
                    if let (Some(n), Some(val)) = (s(e, &["name"]), s(e, &["value"])) {
                        env.push((n.to_string(), val.to_string()));
                    }
                }
            }
            let command: Vec<String> = get(rt, "command")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let image = s(rt, &["image"]).unwrap_or("");
            let envget = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            if !command.is_empty() {
                runtime = "python3".into();
                Kind::Command { command }
            } else if let (Some(minor), Some(_)) =
                (runtime_python_minor(image), envget("ETL_CLASS_PAYLOAD"))
            {
                runtime = format!("python{minor}");
                if let Some(p) = envget("PACKAGES") {
                    deps = p
                        .split(',')
                        .map(str::trim)
                        .filter(|x| !x.is_empty())
                        .collect::<Vec<_>>()
                        .join("\n");
                }
                Kind::Class {
                    python_minor: minor,
                }
            } else {
                return Err(EtlError::Invalid(format!(
                    "cannot run image \"{image}\": aistore-rs runs ETLs next to the data without containers. \
                     Use `init_class` (runtime image aistorage/runtime_python:3.x), Python code (`ais etl init code`), \
                     or give runtime.command to run a local transformer server"
                )));
            }
        } else {
            let code = b64("code", s(v, &["code"]).unwrap_or(""))?;
            if code.is_empty() {
                return Err(EtlError::Invalid(
                    "ETL init message has no code (expected base64 \"code\", or a \"runtime\" spec)".into(),
                ));
            }
            let func = get(v, "funcs")
                .and_then(|f| s(f, &["transform"]))
                .unwrap_or("transform")
                .to_string();
            let arg_type = s(v, &["argument", "arg_type"]).unwrap_or("").to_string();
            if !["", "fqn", "bytes"].contains(&arg_type.as_str()) {
                return Err(EtlError::Invalid(format!(
                    "invalid argument type \"{arg_type}\" (expected \"\" or \"fqn\")"
                )));
            }
            let fresh_process = get(v, "fresh_process")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Kind::Code {
                code,
                func,
                arg_type,
                fresh_process,
            }
        };
        Ok(Self {
            name,
            comm,
            runtime: normalize_runtime(&runtime)?,
            kind,
            deps,
            env,
            init_timeout,
            obj_timeout,
            pool_size,
            limits,
            network,
            batch_size,
            batch_wait,
            cuda,
        })
    }
}

/// `python3`, `python3.11`, `python3.11v2` (AIStore's later names) → `python3[.N]`.
pub fn normalize_runtime(rt: &str) -> Result<String, EtlError> {
    let r = rt.trim().trim_end_matches("v2");
    if r.is_empty() || r == "python3" || r == "python" {
        return Ok("python3".into());
    }
    if let Some(minor) = r.strip_prefix("python3.") {
        if !minor.is_empty() && minor.chars().all(|c| c.is_ascii_digit()) {
            return Ok(format!("python3.{minor}"));
        }
    }
    Err(EtlError::Invalid(format!(
        "unknown runtime \"{rt}\" (supported: python3, python3.N for an installed interpreter)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn legacy_init_code() {
        let v = json!({"id":"my-first-etl","code":b("print(1)"),"dependencies":b("torch\n"),"runtime":"python3","communication_type":"io://","wait_timeout":"2m"});
        let s = EtlSpec::from_json(&v).unwrap();
        assert_eq!(
            (s.name.as_str(), s.comm, s.deps.as_str()),
            ("my-first-etl", Comm::Io, "torch\n")
        );
        assert_eq!(s.init_timeout, Duration::from_secs(120));
    }

    #[test]
    fn current_code_and_class_and_errors() {
        let v = json!({"name":"md5-etl","runtime":"python3.11v2","communication":"hpush://","init_timeout":"5m","obj_timeout":"45s","funcs":{"transform":"tr"},"code":b("def tr(b): return b"),"dependencies":"","argument":""});
        let s = EtlSpec::from_json(&v).unwrap();
        assert_eq!(s.runtime, "python3.11");
        assert!(matches!(s.kind, Kind::Code { ref func, .. } if func == "tr"));
        let v = json!({"name":"cls-etl","communication":"hpush://","init_timeout":"5m","obj_timeout":"45s","support_direct_put":true,
            "runtime":{"image":"aistorage/runtime_python:3.11","env":[{"name":"ETL_CLASS_PAYLOAD","value":"abc"},{"name":"PACKAGES","value":"numpy,pillow"}]}});
        let s = EtlSpec::from_json(&v).unwrap();
        assert_eq!(s.runtime, "python3.11");
        assert_eq!(s.deps, "numpy\npillow");
        assert!(matches!(s.kind, Kind::Class { .. }));
        let bad = json!({"name":"img-etl","runtime":{"image":"nginx:latest"}});
        assert!(EtlSpec::from_json(&bad)
            .unwrap_err()
            .to_string()
            .contains("cannot run image"));
        assert!(EtlSpec::from_json(&json!({"name":"Bad_Name","code":b("x")})).is_err());
        assert!(matches!(
            EtlSpec::from_json(&json!({"name":"good-name","code":b("x"),"communication":"ws://"}))
                .unwrap()
                .comm,
            Comm::Ws
        ));
        assert!(EtlSpec::from_json(
            &json!({"name":"good-name","code":b("x"),"communication":"hrev://"})
        )
        .is_err());
        assert!(
            EtlSpec::from_json(&json!({"name":"good-name","code":b("x"),"runtime":"python2"}))
                .is_err()
        );
        assert!(EtlSpec::from_json(&json!({"name":"good-name","code":"%%%"})).is_err());
        assert!(EtlSpec::from_json(&json!({"name":"good-name"})).is_err());
    }

    #[test]
    fn limits_and_network() {
        let v = json!({"name":"lim-etl","code":b("x"),"limits":{"memory":"512MiB","nproc":64,"output":"1k"},"network":true});
        let s = EtlSpec::from_json(&v).unwrap();
        assert_eq!(s.limits.memory, Some(512 << 20));
        assert_eq!(s.limits.nproc, Some(64));
        assert_eq!(s.limits.output, Some(1024));
        assert_eq!(s.limits.nofile, None);
        assert!(s.network);
        let d = Limits {
            nofile: Some(10),
            memory: Some(1),
            ..Default::default()
        };
        assert_eq!(s.limits.or(&d).nofile, Some(10));
        assert_eq!(s.limits.or(&d).memory, Some(512 << 20));
        assert!(
            !EtlSpec::from_json(&json!({"name":"lim-etl","code":b("x")}))
                .unwrap()
                .network
        );
        for bad in [json!({"mem": 1}), json!({"memory": "lots"}), json!(5)] {
            assert!(
                EtlSpec::from_json(&json!({"name":"lim-etl","code":b("x"),"limits":bad})).is_err()
            );
        }
        assert_eq!(parse_size("4GiB").unwrap(), 4 << 30);
        assert_eq!(parse_size("100").unwrap(), 100);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m0s").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert!(parse_duration("5x").is_err());
        assert_eq!(fmt_duration(Duration::from_secs(300)), "5m");
        assert_eq!(fmt_duration(Duration::from_secs(45)), "45s");
    }
}
