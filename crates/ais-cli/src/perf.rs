//! `ais show performance`: GET/PUT counts and throughput per node, from two
//! scrapes of every node's `/metrics` an interval apart; and the capacity
//! columns of `ais show cluster`.

use crate::fmt::{size_iec, table};
use ais_client::metrics::Scrape;
use ais_client::Client;
use std::time::{Duration, Instant};

/// (display name, URL) of every node in the map, proxies first.
async fn nodes(client: &Client) -> anyhow::Result<Vec<(String, String)>> {
    let smap = client.smap().await?;
    let mut out: Vec<(String, String)> = smap
        .pmap
        .values()
        .map(|p| (format!("p[{}]", p.daemon_id), p.url().to_string()))
        .collect();
    out.extend(
        smap.tmap
            .values()
            .map(|t| (format!("t[{}]", t.daemon_id), t.url().to_string())),
    );
    Ok(out)
}

async fn scrape_all(client: &Client, nodes: &[(String, String)]) -> Vec<Option<Scrape>> {
    futures::future::join_all(
        nodes
            .iter()
            .map(|(_, url)| async move { client.node_metrics(url).await.ok() }),
    )
    .await
}

fn rate(n: f64, secs: f64) -> String {
    if secs <= 0.0 {
        return "-".into();
    }
    format!("{:.0}", n.max(0.0) / secs)
}

fn throughput(bytes: f64, secs: f64) -> String {
    if secs <= 0.0 {
        return "-".into();
    }
    format!("{}/s", size_iec((bytes.max(0.0) / secs) as u64))
}

/// One row per node: totals from the second scrape, rates over the interval.
pub fn perf_rows(
    nodes: &[(String, String)],
    a: &[Option<Scrape>],
    b: &[Option<Scrape>],
    secs: f64,
) -> Vec<Vec<String>> {
    nodes
        .iter()
        .zip(a.iter().zip(b))
        .map(|((name, _), pair)| match pair {
            (Some(a), Some(b)) => {
                let d = |m: &str| b.node(m) - a.node(m);
                let n = |m: &str| format!("{}", b.node(m).max(0.0) as u64);
                let errs: f64 = ["err_get_n", "err_put_n", "err_del_n", "err_head_n"]
                    .iter()
                    .map(|m| b.node(m))
                    .sum();
                vec![
                    name.clone(),
                    n("get_n"),
                    rate(d("get_n"), secs),
                    throughput(d("get_bytes"), secs),
                    n("put_n"),
                    rate(d("put_n"), secs),
                    throughput(d("put_bytes"), secs),
                    format!("{}", errs.max(0.0) as u64),
                    n("conns_open"),
                ]
            }
            _ => {
                let mut r = vec![name.clone()];
                r.extend(vec!["-".to_string(); 7]);
                r.push("unreachable".into());
                r
            }
        })
        .collect()
}

pub const PERF_HEADER: [&str; 9] = [
    "NODE",
    "GET",
    "GET/s",
    "GET-THRPUT",
    "PUT",
    "PUT/s",
    "PUT-THRPUT",
    "ERRORS",
    "CONNS",
];

pub async fn show_performance(client: &Client, interval: f64, json: bool) -> anyhow::Result<()> {
    let nodes = nodes(client).await?;
    let t0 = Instant::now();
    let a = scrape_all(client, &nodes).await;
    tokio::time::sleep(Duration::from_secs_f64(interval.max(0.1))).await;
    let b = scrape_all(client, &nodes).await;
    let secs = t0.elapsed().as_secs_f64();
    let rows = perf_rows(&nodes, &a, &b, secs);
    if json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::Value::Object(
                    PERF_HEADER
                        .iter()
                        .zip(r)
                        .map(|(k, v)| (k.to_lowercase(), serde_json::Value::String(v.clone())))
                        .collect(),
                )
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    table(&PERF_HEADER, &rows);
    println!();
    println!("(rates over {secs:.1}s)");
    Ok(())
}

/// Capacity columns of a target: used, total, used %, mountpaths.
pub async fn capacity(client: &Client, url: &str) -> [String; 4] {
    let Ok(s) = client.node_metrics(url).await else {
        return ["-".into(), "-".into(), "-".into(), "-".into()];
    };
    let used = s.sum("ais_target_capacity_used_bytes");
    let total = s.sum("ais_target_capacity_total_bytes");
    let mps = s.series("ais_target_capacity_total_bytes").count();
    let pct = if total > 0.0 {
        format!("{:.0}%", used * 100.0 / total)
    } else {
        "-".into()
    };
    [
        size_iec(used as u64),
        size_iec(total as u64),
        pct,
        mps.to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_from_two_scrapes() {
        let a = ais_client::metrics::parse(
            "ais_target_get_n{node_id=\"t\"} 10\nais_target_get_bytes{node_id=\"t\"} 1024\n",
        );
        let b = ais_client::metrics::parse(
            "ais_target_get_n{node_id=\"t\"} 30\nais_target_get_bytes{node_id=\"t\"} 3072\n\
             ais_target_err_get_n{node_id=\"t\",class=\"4xx\"} 2\nais_target_conns_open{node_id=\"t\"} 3\n",
        );
        let nodes = vec![
            ("t[t]".to_string(), "u".to_string()),
            ("t[x]".into(), "v".into()),
        ];
        let rows = perf_rows(&nodes, &[Some(a), None], &[Some(b), None], 2.0);
        assert_eq!(
            rows[0],
            ["t[t]", "30", "10", "1.00KiB/s", "0", "0", "0B/s", "2", "3"]
        );
        assert_eq!(rows[1].len(), PERF_HEADER.len());
        assert_eq!(rows[1][8], "unreachable");
    }
}
