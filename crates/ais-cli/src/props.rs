//! `ais bucket props show|set` and `ais ec-encode`: bucket properties as
//! AIStore's CLI names them (`mirror.copies=2`, `ec.enabled=true`, ...).

use ais_client::Client;
use anyhow::{bail, Result};
use serde_json::{Map, Value};

/// `KEY=VALUE` pairs (dotted keys for nested props) as a JSON patch:
/// `true`/`false` become booleans, integers numbers, the rest strings.
pub fn patch(kvs: &[String]) -> Result<Value> {
    let mut root = Map::new();
    for kv in kvs {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("invalid property \"{kv}\": expected KEY=VALUE, e.g. mirror.copies=2");
        };
        let keys: Vec<&str> = k.trim().split('.').collect();
        if keys.iter().any(|k| k.is_empty()) {
            bail!("invalid property name \"{k}\"");
        }
        let v = v.trim();
        if keys == ["backend_bck"] {
            // AIStore's `backend_bck=gs://b` (`none` clears it).
            let val = if v.is_empty() || v == "none" {
                serde_json::json!({"name": "", "provider": ""})
            } else {
                let (b, obj) =
                    ais_core::Bck::parse_uri(v).map_err(|e| anyhow::anyhow!("backend_bck: {e}"))?;
                if !obj.is_empty() || !v.contains("://") {
                    bail!(
                        "backend_bck: expected a bucket such as s3://BUCKET (or none), not \"{v}\""
                    );
                }
                serde_json::json!({"name": b.name, "provider": b.provider})
            };
            root.insert("backend_bck".into(), val);
            continue;
        }
        let val = match v {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => match v.parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => Value::String(v.to_string()),
            },
        };
        let mut cur = &mut root;
        for key in &keys[..keys.len() - 1] {
            let e = cur
                .entry(key.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !e.is_object() {
                bail!("property \"{k}\" conflicts with another one given");
            }
            cur = match e.as_object_mut() {
                Some(m) => m,
                None => bail!("property \"{k}\" conflicts with another one given"),
            };
        }
        cur.insert(keys[keys.len() - 1].to_string(), val);
    }
    Ok(Value::Object(root))
}

pub fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

pub async fn show(client: &Client, bucket: &str, json: bool) -> Result<()> {
    let props = client.head_bucket(bucket).await?;
    let v = serde_json::to_value(&props)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let mut rows = Vec::new();
    flatten("", &v, &mut rows);
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(8);
    println!("{:w$}  VALUE", "PROPERTY");
    for (k, v) in rows {
        println!("{k:w$}  {v}");
    }
    Ok(())
}

/// `KEY=VALUE` pairs, `KEY VALUE` pairs, or one JSON object
/// (`'{"mirror": {"enabled": true}}'`), as AIStore's `ais bucket props set`.
pub fn patch_or_json(kvs: &[String]) -> Result<Value> {
    match kvs {
        [one] if one.trim_start().starts_with('{') => {
            let v: Value = serde_json::from_str(one)
                .map_err(|e| anyhow::anyhow!("invalid JSON properties: {e}"))?;
            if !v.is_object() {
                bail!("invalid JSON properties: expected an object");
            }
            Ok(v)
        }
        _ if kvs.len().is_multiple_of(2) && kvs.iter().all(|a| !a.contains('=')) => {
            let pairs: Vec<String> = kvs
                .chunks(2)
                .map(|p| format!("{}={}", p[0], p[1]))
                .collect();
            patch(&pairs)
        }
        _ => patch(kvs),
    }
}

pub async fn set(client: &Client, bucket: &str, kvs: &[String]) -> Result<()> {
    let p = patch_or_json(kvs)?;
    let job = client.set_bucket_props(bucket, p).await?;
    println!("Bucket props successfully updated.");
    if !job.is_empty() {
        println!("Job {job} applies them to the existing objects ('ais show job {job}').");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_pairs_become_a_typed_patch() {
        let p = patch(&[
            "ec.enabled=true".into(),
            "ec.data_slices=2".into(),
            "mirror.copies=3".into(),
            "access=ro".into(),
        ])
        .unwrap();
        assert_eq!(
            p,
            serde_json::json!({"ec": {"enabled": true, "data_slices": 2}, "mirror": {"copies": 3}, "access": "ro"})
        );
        assert!(patch(&["noequals".into()]).is_err());
        assert!(patch(&["a..b=1".into()]).is_err());
        assert!(patch(&["a=1".into(), "a.b=2".into()]).is_err());
        assert_eq!(
            patch_or_json(&[r#"{"mirror": {"enabled": true}}"#.into()]).unwrap(),
            serde_json::json!({"mirror": {"enabled": true}})
        );
        assert!(patch_or_json(&["[1]".into()]).is_err());
        assert_eq!(
            patch(&["backend_bck=gs://b".into()]).unwrap(),
            serde_json::json!({"backend_bck": {"name": "b", "provider": "gcp"}})
        );
        assert_eq!(
            patch(&["backend_bck=none".into()]).unwrap(),
            serde_json::json!({"backend_bck": {"name": "", "provider": ""}})
        );
        assert!(patch(&["backend_bck=b".into()]).is_err());
        assert_eq!(
            patch_or_json(&["ec.enabled".into(), "true".into()]).unwrap(),
            serde_json::json!({"ec": {"enabled": true}})
        );
    }
}
