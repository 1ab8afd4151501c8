//! dSort from the command line, as AIStore's CLI: `ais dsort [SRC] [DST]
//! -f SPEC` (also `ais start dsort`, `ais job start dsort`), with the spec
//! as a JSON or YAML file, `-` for stdin, or inline; `ais show job dsort
//! [ID]`, `ais wait ID`, `ais stop ID`, `ais job rm dsort ID` for its jobs
//! (ids `srt-...`).

use crate::fmt::{size_iec, table};
use ais_client::Client;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::time::{Duration, Instant};

/// `ais dsort [SRC_BUCKET] [DST_BUCKET] -f SPEC`.
#[derive(clap::Args, Debug)]
pub struct DsortArgs {
    /// SRC_BUCKET and DST_BUCKET (they override the spec's input_bck and
    /// output_bck), or the spec inline (JSON or YAML).
    pub args: Vec<String>,
    /// The JSON or YAML spec file (`-`: stdin).
    #[arg(long, short = 'f')]
    pub spec: Option<String>,
    /// Wait for the job.
    #[arg(long)]
    pub wait: bool,
}

/// Whether `id` names a dSort job.
pub fn is_dsort_id(id: &str) -> bool {
    id.starts_with("srt-")
}

/// Reads the spec: `-f FILE` (or `-` for stdin), or the first positional
/// argument when it is an inline JSON/YAML mapping; answers it and the
/// positional arguments left (SRC, DST).
fn read_spec(spec: Option<&str>, mut pos: Vec<String>) -> Result<(Value, Vec<String>)> {
    let text = match spec {
        Some("-") => std::io::read_to_string(std::io::stdin()).context("read the spec from stdin")?,
        Some(f) => std::fs::read_to_string(f).with_context(|| format!("read the spec {f}"))?,
        None => match pos.first() {
            Some(p) if !p.contains("://") && (p.contains('{') || p.contains(':')) => {
                pos.remove(0)
            }
            _ => bail!(
                "dsort needs a spec: ais dsort [SRC_BUCKET] [DST_BUCKET] -f SPEC.json|SPEC.yaml|- (or the spec inline)"
            ),
        },
    };
    let v: Value = serde_yaml_ng::from_str(&text).context("the spec is neither JSON nor YAML")?;
    if !v.is_object() {
        bail!("the spec must be a JSON object or YAML mapping of dSort fields");
    }
    Ok((v, pos))
}

/// `ais dsort [SRC] [DST] -f SPEC`: starts the job and prints its id.
pub async fn start(
    client: &Client,
    spec: Option<&str>,
    pos: Vec<String>,
    wait_for: bool,
) -> Result<()> {
    let (mut v, pos) = read_spec(spec, pos)?;
    if pos.len() > 2 {
        bail!("too many arguments: ais dsort [SRC_BUCKET] [DST_BUCKET] -f SPEC");
    }
    for (arg, field) in pos.iter().zip(["input_bck", "output_bck"]) {
        let b = crate::objects::parse_bucket(arg)?;
        v[field] = serde_json::json!({"name": b.name, "provider": b.provider});
    }
    let id = client.dsort_start(&v).await?;
    println!("{id}");
    if wait_for {
        wait(client, &id, None).await?;
    }
    Ok(())
}

fn num(v: &Value) -> u64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_u64())
        .unwrap_or(0)
}

/// The job's state over its targets: (finished, aborted, errors, created,
/// to create, bytes).
fn summarize(infos: &[&Value]) -> (bool, bool, Vec<String>, u64, u64, u64) {
    let finished = infos
        .iter()
        .all(|i| i["Metrics"]["shard_creation"]["finished"].as_bool() == Some(true));
    let aborted = infos.iter().any(|i| i["aborted"].as_bool() == Some(true));
    let mut errors: Vec<String> = Vec::new();
    for i in infos {
        for e in i["Metrics"]["errors"].as_array().into_iter().flatten() {
            if let Some(s) = e.as_str() {
                if !errors.iter().any(|x| x == s) {
                    errors.push(s.to_string());
                }
            }
        }
    }
    let sum = |f: &dyn Fn(&Value) -> u64| infos.iter().map(|i| f(i)).sum::<u64>();
    (
        finished,
        aborted,
        errors,
        sum(&|i| num(&i["Metrics"]["shard_creation"]["created_count"])),
        sum(&|i| num(&i["Metrics"]["shard_creation"]["to_create"])),
        sum(&|i| num(&i["loc-bytes"])),
    )
}

/// `ais wait srt-...`: until every target finished, or the job aborted (an
/// error with the job's reason).
pub async fn wait(client: &Client, id: &str, timeout: Option<Duration>) -> Result<()> {
    let t0 = Instant::now();
    loop {
        let infos = client.dsort_info(id).await?;
        let all: Vec<&Value> = infos.values().collect();
        let (finished, aborted, errors, created, _, bytes) = summarize(&all);
        if aborted {
            bail!(
                "dsort {id} aborted: {}",
                if errors.is_empty() {
                    "by request".to_string()
                } else {
                    errors.join("; ")
                }
            );
        }
        if finished {
            println!(
                "dsort {id}: {created} shards ({}) in {:.1}s",
                size_iec(bytes),
                t0.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if timeout.is_some_and(|t| t0.elapsed() > t) {
            bail!("timed out waiting for dsort {id} (it keeps running; 'ais stop {id}' aborts it)");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `ais show job dsort [ID]`.
pub async fn show(client: &Client, id: Option<&str>, json_out: bool) -> Result<()> {
    let jobs: Vec<Value> = match id {
        Some(id) => {
            let infos = client.dsort_info(id).await?;
            if json_out {
                println!("{}", serde_json::to_string_pretty(&infos)?);
                return Ok(());
            }
            let all: Vec<&Value> = infos.values().collect();
            let mut first = all.first().map(|v| (*v).clone()).unwrap_or_default();
            let (finished, aborted, errors, created, to_create, bytes) = summarize(&all);
            first["_summary"] =
                serde_json::json!([finished, aborted, errors, created, to_create, bytes]);
            vec![first]
        }
        None => {
            let list = client.dsort_list().await?;
            if json_out {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            list.into_iter()
                .map(|mut v| {
                    let (finished, aborted, errors, created, to_create, bytes) = summarize(&[&v]);
                    v["_summary"] =
                        serde_json::json!([finished, aborted, errors, created, to_create, bytes]);
                    v
                })
                .collect()
        }
    };
    if jobs.is_empty() {
        println!("No dsort jobs");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            let s = &j["_summary"];
            let state = if s[1].as_bool() == Some(true) {
                "Aborted"
            } else if s[0].as_bool() == Some(true) {
                "Finished"
            } else {
                "Running"
            };
            let errs: Vec<String> = s[2]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect();
            vec![
                j["id"].as_str().unwrap_or("").to_string(),
                format!(
                    "{} => {}",
                    j["src-bck"]["name"].as_str().unwrap_or(""),
                    j["dst-bck"]["name"].as_str().unwrap_or("")
                ),
                format!("{}/{}", s[3], s[4]),
                size_iec(s[5].as_u64().unwrap_or(0)),
                state.to_string(),
                j["Metrics"]["description"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                errs.first().cloned().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "JOB",
            "BUCKETS",
            "SHARDS",
            "BYTES",
            "STATE",
            "DESCRIPTION",
            "ERROR",
        ],
        &rows,
    );
    Ok(())
}

/// `ais stop srt-...`.
pub async fn abort(client: &Client, id: &str) -> Result<()> {
    client.dsort_abort(id).await?;
    println!("dsort {id} aborted");
    Ok(())
}

/// `ais job rm dsort srt-...`.
pub async fn remove(client: &Client, id: &str) -> Result<()> {
    client.dsort_remove(id).await?;
    println!("Removed finished job {id}");
    Ok(())
}
