//! Read-only views with AIStore's names: `ais show cluster smap|bmd|stats|
//! memory`, `ais show storage`, `ais performance counters|throughput|
//! latency|capacity`, `ais show dashboard`, `ais show remote-cluster`,
//! `ais cluster download-logs`, `ais auth whoami`, and AIStore's read-only
//! `ais scrub` (`ais storage validate`) report.

use crate::fmt::{size_iec, table};
use crate::objects::parse_bucket;
use ais_client::metrics::Scrape;
use ais_client::{Client, HttpMethod};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

async fn get_json(client: &Client, path: &str) -> Result<Value> {
    let resp = client.raw(HttpMethod::GET, path, None).await?;
    resp.json().await.context("unexpected answer")
}

fn pretty(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// `ais show cluster smap`: the cluster map.
pub async fn smap(client: &Client, json: bool) -> Result<()> {
    let smap = client.smap().await?;
    if json {
        return pretty(&smap);
    }
    let mut rows = Vec::new();
    for p in smap.pmap.values() {
        let primary = if p.daemon_id == smap.proxy_si.daemon_id {
            " (primary)"
        } else {
            ""
        };
        rows.push(vec![
            format!("p[{}]{primary}", p.daemon_id),
            "proxy".into(),
            p.url().to_string(),
            p.flags.to_string(),
        ]);
    }
    for t in smap.tmap.values() {
        rows.push(vec![
            format!("t[{}]", t.daemon_id),
            "target".into(),
            t.url().to_string(),
            t.flags.to_string(),
        ]);
    }
    table(&["NODE", "TYPE", "PUBLIC URL", "FLAGS"], &rows);
    println!();
    println!("Version: {}, UUID: {}", smap.version, smap.uuid);
    Ok(())
}

/// `ais show cluster bmd`: the bucket metadata.
pub async fn bmd(client: &Client, json: bool) -> Result<()> {
    let bmd = get_json(client, "/v1/daemon?what=bmd").await?;
    if json {
        return pretty(&bmd);
    }
    let rows: Vec<Vec<String>> = bmd["buckets"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, p)| {
            let copies = if p["mirror"]["enabled"].as_bool() == Some(true) {
                p["mirror"]["copies"].to_string()
            } else {
                "-".into()
            };
            let ec = if p["ec"]["enabled"].as_bool() == Some(true) {
                format!("{}/{}", p["ec"]["data_slices"], p["ec"]["parity_slices"])
            } else {
                "-".into()
            };
            vec![
                p["provider"].as_str().unwrap_or("ais").to_string(),
                name.clone(),
                copies,
                ec,
                match p["created"].as_str().and_then(|c| c.parse::<u64>().ok()) {
                    Some(ns) => rfc3339(ns / 1_000_000_000),
                    None => p["created"].as_str().unwrap_or("-").to_string(),
                },
            ]
        })
        .collect();
    table(&["PROVIDER", "NAME", "COPIES", "EC(D/P)", "CREATED"], &rows);
    println!();
    println!(
        "Version: {}, UUID: {}",
        bmd["version"],
        bmd["uuid"].as_str().unwrap_or("")
    );
    Ok(())
}

/// `ais show cluster memory` / `cpu`: per-node host figures.
pub async fn sysinfo(client: &Client, cpu: bool, json: bool) -> Result<()> {
    let v = get_json(client, "/v1/cluster?what=sysinfo").await?;
    if json {
        return pretty(&v);
    }
    let mut rows = Vec::new();
    for (kind, prefix) in [("proxy", "p"), ("target", "t")] {
        for (id, s) in v[kind].as_object().into_iter().flatten() {
            let n = |k: &str| s[k].as_u64().unwrap_or(0);
            rows.push(if cpu {
                vec![
                    format!("{prefix}[{id}]"),
                    n("cpus").to_string(),
                    format!(
                        "{} {} {}",
                        s["load_avg"]["one"], s["load_avg"]["five"], s["load_avg"]["fifteen"]
                    ),
                ]
            } else {
                vec![
                    format!("{prefix}[{id}]"),
                    size_iec(n("proc_mem_rss")),
                    size_iec(n("mem_total")),
                    size_iec(n("mem_available")),
                    size_iec(n("mem_free")),
                ]
            });
        }
    }
    if cpu {
        table(&["NODE", "CPUS", "LOAD AVERAGE (1m 5m 15m)"], &rows);
    } else {
        table(
            &["NODE", "PROC RSS", "MEM TOTAL", "MEM AVAIL", "MEM FREE"],
            &rows,
        );
    }
    Ok(())
}

/// Every node's /metrics, in map order (proxies first).
async fn scrape_nodes(client: &Client) -> Result<Vec<(String, Option<Scrape>)>> {
    let smap = client.smap().await?;
    let mut nodes: Vec<(String, String)> = smap
        .pmap
        .values()
        .map(|p| (format!("p[{}]", p.daemon_id), p.url().to_string()))
        .collect();
    nodes.extend(
        smap.tmap
            .values()
            .map(|t| (format!("t[{}]", t.daemon_id), t.url().to_string())),
    );
    let scrapes = futures::future::join_all(
        nodes
            .iter()
            .map(|(_, url)| async move { client.node_metrics(url).await.ok() }),
    )
    .await;
    Ok(nodes.into_iter().map(|(n, _)| n).zip(scrapes).collect())
}

fn keep(node: &str, only: Option<&str>) -> bool {
    only.is_none_or(|o| node.contains(o.trim_start_matches("t[").trim_end_matches(']')))
}

#[derive(Subcommand, Debug)]
pub enum PerfView {
    /// GET, PUT, DELETE, HEAD counts and errors per node (totals).
    Counters(PerfArgs),
    /// GET and PUT counts, rates and throughput over an interval.
    Throughput(PerfArgs),
    /// Average GET, PUT, DELETE, HEAD latency per node (since start).
    Latency(PerfArgs),
    /// Used, available and total capacity per target.
    Capacity(PerfArgs),
}

#[derive(Args, Debug, Default)]
pub struct PerfArgs {
    /// Only this node.
    pub node_id: Option<String>,
    /// Seconds between the two scrapes (throughput).
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    #[arg(long)]
    pub json: bool,
}

pub async fn performance(client: &Client, view: PerfView) -> Result<()> {
    let (header, rows, json): (Vec<&str>, Vec<Vec<String>>, bool) = match view {
        PerfView::Throughput(a) => {
            return crate::perf::show_performance(client, a.interval, a.json).await;
        }
        PerfView::Counters(a) => {
            let rows = scrape_nodes(client)
                .await?
                .into_iter()
                .filter(|(n, _)| keep(n, a.node_id.as_deref()))
                .map(|(n, s)| match s {
                    Some(s) => {
                        let c = |m: &str| format!("{}", s.node(m).max(0.0) as u64);
                        let errs: f64 = ["err_get_n", "err_put_n", "err_del_n", "err_head_n"]
                            .iter()
                            .map(|m| s.node(m))
                            .sum();
                        vec![
                            n,
                            c("get_n"),
                            c("put_n"),
                            c("del_n"),
                            c("head_n"),
                            size_iec(s.node("get_bytes") as u64),
                            size_iec(s.node("put_bytes") as u64),
                            format!("{}", errs.max(0.0) as u64),
                        ]
                    }
                    None => {
                        let mut r = vec![n];
                        r.extend(vec!["-".to_string(); 6]);
                        r.push("unreachable".into());
                        r
                    }
                })
                .collect();
            (
                vec![
                    "NODE",
                    "GET",
                    "PUT",
                    "DELETE",
                    "HEAD",
                    "GET-BYTES",
                    "PUT-BYTES",
                    "ERRORS",
                ],
                rows,
                a.json,
            )
        }
        PerfView::Latency(a) => {
            let rows = scrape_nodes(client)
                .await?
                .into_iter()
                .filter(|(n, _)| keep(n, a.node_id.as_deref()))
                .map(|(n, s)| {
                    let avg = |s: &Scrape, op: &str| {
                        let cnt = s.node(&format!("{op}_latency_seconds_count"));
                        if cnt <= 0.0 {
                            return "-".to_string();
                        }
                        let secs = s.node(&format!("{op}_latency_seconds_sum")) / cnt;
                        format!("{:.3}ms", secs * 1000.0)
                    };
                    match s {
                        Some(s) => vec![
                            n,
                            avg(&s, "get"),
                            avg(&s, "put"),
                            avg(&s, "del"),
                            avg(&s, "head"),
                        ],
                        None => vec![n, "-".into(), "-".into(), "-".into(), "unreachable".into()],
                    }
                })
                .collect();
            (vec!["NODE", "GET", "PUT", "DELETE", "HEAD"], rows, a.json)
        }
        PerfView::Capacity(a) => {
            let rows = capacity_rows(client, a.node_id.as_deref()).await?;
            (
                vec!["TARGET", "MOUNTPATH", "USED", "AVAIL", "TOTAL", "USED%"],
                rows,
                a.json,
            )
        }
    };
    if json {
        let v: Vec<Value> = rows
            .iter()
            .map(|r| {
                Value::Object(
                    header
                        .iter()
                        .zip(r)
                        .map(|(k, v)| (k.to_lowercase(), Value::String(v.clone())))
                        .collect(),
                )
            })
            .collect();
        return pretty(&v);
    }
    table(&header, &rows);
    Ok(())
}

/// Per target and mountpath: used, available, total, used %.
async fn capacity_rows(client: &Client, only: Option<&str>) -> Result<Vec<Vec<String>>> {
    let mut rows = Vec::new();
    for (n, s) in scrape_nodes(client).await? {
        if !n.starts_with("t[") || !keep(&n, only) {
            continue;
        }
        let Some(s) = s else {
            rows.push(vec![
                n,
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "unreachable".into(),
            ]);
            continue;
        };
        let by_mp = |metric: &str| -> Vec<(String, f64)> {
            s.series(metric)
                .map(|x| (x.label("mountpath").unwrap_or("").to_string(), x.value))
                .collect()
        };
        let (used, avail) = (
            by_mp("ais_target_capacity_used_bytes"),
            by_mp("ais_target_capacity_avail_bytes"),
        );
        for (mp, total) in by_mp("ais_target_capacity_total_bytes") {
            let u = used
                .iter()
                .find(|(m, _)| *m == mp)
                .map(|x| x.1)
                .unwrap_or(0.0);
            let a = avail
                .iter()
                .find(|(m, _)| *m == mp)
                .map(|x| x.1)
                .unwrap_or(0.0);
            let pct = if total > 0.0 {
                format!("{:.0}%", u * 100.0 / total)
            } else {
                "-".into()
            };
            rows.push(vec![
                n.clone(),
                if mp.is_empty() { "-".into() } else { mp },
                size_iec(u as u64),
                size_iec(a as u64),
                size_iec(total as u64),
                pct,
            ]);
        }
    }
    Ok(rows)
}

/// `ais show storage [TARGET_ID]`: capacity per target and mountpath.
pub async fn storage(client: &Client, target: Option<&str>, json: bool) -> Result<()> {
    performance(
        client,
        PerfView::Capacity(PerfArgs {
            node_id: target.map(str::to_string),
            json,
            ..Default::default()
        }),
    )
    .await
}

/// `ais show dashboard`: the cluster, its throughput and its jobs at a glance.
pub async fn dashboard(client: &Client) -> Result<()> {
    crate::fmt::show_cluster(client, false).await?;
    println!();
    crate::perf::show_performance(client, 1.0, false).await?;
    let jobs = client.jobs().await?;
    let running = jobs.iter().filter(|j| !j.finished()).count();
    println!();
    println!("Jobs: {} running, {} known", running, jobs.len());
    Ok(())
}

/// `ais show remote-cluster`.
pub async fn remote_clusters(client: &Client, json: bool) -> Result<()> {
    let v = get_json(client, "/v1/cluster?what=remote").await?;
    if json {
        return pretty(&v);
    }
    let list = v["a"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("No remote clusters attached.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list.iter().map(|r| vec![r.to_string()]).collect();
    table(&["REMOTE CLUSTER"], &rows);
    Ok(())
}

/// `ais cluster download-logs [OUT_DIR]`: one .tar.gz per node.
pub async fn download_logs(client: &Client, dir: Option<&str>, severity: &str) -> Result<()> {
    let smap = client.smap().await?;
    let dir = dir
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let ids: Vec<String> = smap.pmap.keys().chain(smap.tmap.keys()).cloned().collect();
    for id in ids {
        let b = client.node_log(&id, severity, true).await?;
        let f = dir.join(format!("ais-log-{id}.tar.gz"));
        std::fs::write(&f, &b).with_context(|| format!("write {}", f.display()))?;
        println!("{id}: {} ({})", f.display(), size_iec(b.len() as u64));
    }
    Ok(())
}

/// AIStore's access bits, in order.
const PERMS: &[&str] = &[
    "GET",
    "HEAD-OBJECT",
    "PUT",
    "APPEND",
    "DELETE-OBJECT",
    "MOVE-OBJECT",
    "PROMOTE",
    "UPDATE-OBJECT",
    "HEAD-BUCKET",
    "LIST-OBJECTS",
    "PATCH",
    "SET-BUCKET-ACL",
    "LIST-BUCKETS",
    "SHOW-CLUSTER",
    "CREATE-BUCKET",
    "DESTROY-BUCKET",
    "MOVE-BUCKET",
    "ADMIN",
];

pub fn perm_names(bits: u64) -> String {
    let names: Vec<&str> = PERMS
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "-".into()
    } else {
        names.join(", ")
    }
}

/// The claims of a JWT (unverified: this shows what the token says).
fn claims(token: &str) -> Result<Value> {
    use base64::Engine as _;
    let payload = token
        .split('.')
        .nth(1)
        .context("the saved token is not a JWT")?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .context("the saved token is not a JWT")?;
    serde_json::from_slice(&raw).context("the saved token is not a JWT")
}

/// `ais auth whoami`: who the saved token says you are.
pub async fn whoami(client: &Client) -> Result<()> {
    let Some(token) = ais_client::auth::saved_token() else {
        bail!("not logged in (run 'ais auth login USER')");
    };
    let c = claims(&token)?;
    let exp = c["exp"].as_u64().unwrap_or(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let left = if exp > now {
        let s = exp - now;
        format!("{}h{}m left", s / 3600, (s % 3600) / 60)
    } else {
        "expired".into()
    };
    println!("Identity");
    println!("  User     {}", c["username"].as_str().unwrap_or(""));
    println!(
        "  Admin    {}",
        if c["admin"].as_bool() == Some(true) {
            "yes"
        } else {
            "no"
        }
    );
    println!("  Expires  {} ({left})", crate::views::rfc3339(exp));
    println!();
    println!("Roles");
    let descs = client.roles().await.ok();
    let rows: Vec<Vec<String>> = c["roles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|r| {
            let desc = descs
                .as_ref()
                .and_then(|d| d.as_array())
                .and_then(|d| d.iter().find(|x| x["name"] == r))
                .and_then(|x| x["desc"].as_str())
                .unwrap_or("");
            vec![r.to_string(), desc.to_string()]
        })
        .collect();
    table(
        &["  ROLE", "DESCRIPTION"],
        &rows
            .into_iter()
            .map(|mut r| {
                r[0] = format!("  {}", r[0]);
                r
            })
            .collect::<Vec<_>>(),
    );
    println!();
    println!("Access");
    let mut rows = vec![vec![
        "  cluster".to_string(),
        perm_names(c["cluster_perm"].as_u64().unwrap_or(0)),
    ]];
    for b in c["buckets"].as_array().into_iter().flatten() {
        rows.push(vec![
            format!("  ais://{}", b["bucket"].as_str().unwrap_or("")),
            perm_names(b["perm"].as_u64().unwrap_or(0)),
        ]);
    }
    table(&["  SCOPE", "PERMISSIONS"], &rows);
    if descs.is_none() {
        eprintln!("Warning: AuthN did not answer; role descriptions are unavailable");
    }
    Ok(())
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[derive(Args, Debug)]
pub struct ScrubArgs {
    /// BUCKET[/PREFIX] (or a provider: ais, s3); every bucket when left out.
    pub bucket: Option<String>,
    /// Only objects whose names start with this prefix.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Count objects this size or smaller as "small" (e.g. 4k; default: empty objects).
    #[arg(long)]
    pub small_size: Option<String>,
    /// Count objects this size or larger as "large" (default 5GiB).
    #[arg(long, default_value = "5GiB")]
    pub large_size: String,
    /// Show columns that are all zero too.
    #[arg(long)]
    pub all_columns: bool,
    /// Stop after this many objects per bucket (0: all).
    #[arg(long, default_value_t = 0)]
    pub limit: u64,
    /// aistore-rs's own scrub instead: verify every object (size,
    /// checksum, mirror copies) and repair what redundancy allows, as a job.
    #[arg(long)]
    pub repair: bool,
    /// With --repair (implied): wait for the job (progress bar).
    #[arg(long)]
    pub wait: bool,
    #[arg(long)]
    pub json: bool,
}

/// `ais scrub` / `ais storage validate` / `ais bucket validate`: AIStore's
/// read-only report; `--repair` (or `--wait`) runs aistore-rs's scrub job.
pub async fn scrub(client: &Client, a: ScrubArgs) -> Result<()> {
    if a.repair || a.wait {
        let Some(b) = &a.bucket else {
            bail!("--repair takes a bucket: ais scrub ais://BUCKET --repair");
        };
        let bck = parse_bucket(b)?;
        let id = client.scrub_bucket(&bck.name).await?;
        println!("scrub {}: job {id}", bck.cname());
        return if a.wait {
            crate::jobs::wait(client, &id, None).await
        } else {
            println!("To monitor the progress, run 'ais show job {id}' or 'ais wait {id}'");
            Ok(())
        };
    }
    let small = a
        .small_size
        .as_deref()
        .map(crate::archive::parse_size)
        .transpose()?;
    let large = crate::archive::parse_size(&a.large_size)?;
    let (buckets, mut prefix) = match a.bucket.as_deref() {
        None | Some("ais") | Some("ais://") => (client.list_buckets().await?, String::new()),
        Some(b) => {
            let (bck, p) = ais_core::Bck::parse_uri(b).map_err(|e| anyhow::anyhow!("{e}"))?;
            (vec![bck], p)
        }
    };
    if !a.prefix.is_empty() {
        prefix = a.prefix.clone();
    }
    let mut rows = Vec::new();
    let mut out = Vec::new();
    for b in &buckets {
        let props = client.head_bucket(&b.name).await?;
        let want_copies = if props.mirror.enabled {
            props.mirror.copies.max(1)
        } else {
            1
        };
        let mut msg = ais_core::api::LsoMsg {
            prefix: prefix.clone(),
            props: "name,size,copies".into(),
            ..Default::default()
        };
        let (mut n, mut bytes) = (0u64, 0u64);
        let (mut missing, mut missing_b) = (0u64, 0u64);
        let (mut nsmall, mut small_b, mut nlarge, mut large_b) = (0u64, 0u64, 0u64, 0u64);
        'pages: loop {
            let page = client.list_page(&b.name, &msg).await?;
            for e in page.entries {
                if a.limit > 0 && n >= a.limit {
                    break 'pages;
                }
                let size = e.size.unwrap_or(0);
                n += 1;
                bytes += size;
                if e.copies > 0 && u64::from(e.copies) < want_copies as u64 {
                    missing += 1;
                    missing_b += size;
                }
                if small.map_or(size == 0, |s| size <= s) {
                    nsmall += 1;
                    small_b += size;
                }
                if size >= large {
                    nlarge += 1;
                    large_b += size;
                }
            }
            if page.continuation_token.is_empty() {
                break;
            }
            msg.uuid = page.uuid;
            msg.continuation_token = page.continuation_token;
        }
        let cell = |c: u64, sz: u64| {
            if c == 0 {
                "-".to_string()
            } else {
                format!("{c} ({})", size_iec(sz))
            }
        };
        let name = if prefix.is_empty() {
            b.cname()
        } else {
            format!("{}/{prefix}", b.cname())
        };
        out.push(serde_json::json!({
            "bucket": name, "objects": n, "size": bytes, "missing_copies": missing,
            "small": nsmall, "large": nlarge,
        }));
        rows.push(vec![
            name,
            format!("{n} ({})", size_iec(bytes)),
            cell(missing, missing_b),
            cell(nsmall, small_b),
            cell(nlarge, large_b),
        ]);
    }
    if a.json {
        return pretty(&out);
    }
    let header = [
        "BUCKET/PREFIX",
        "OBJECTS",
        "MISSING-COPIES",
        "SMALL",
        "LARGE",
    ];
    // Columns with nothing to report are left out unless asked for.
    let show: Vec<bool> = (0..header.len())
        .map(|i| i < 2 || a.all_columns || rows.iter().any(|r| r[i] != "-"))
        .collect();
    let h: Vec<&str> = header
        .iter()
        .zip(&show)
        .filter(|(_, s)| **s)
        .map(|(h, _)| *h)
        .collect();
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| {
            r.into_iter()
                .zip(&show)
                .filter(|(_, s)| **s)
                .map(|(c, _)| c)
                .collect()
        })
        .collect();
    table(&h, &rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_and_perms() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::perm_names(1 | 4), "GET, PUT");
        assert_eq!(super::perm_names(0), "-");
    }
}
