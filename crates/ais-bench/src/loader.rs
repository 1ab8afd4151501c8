//! `aisloader`: a load generator in the spirit of AIStore's. PUTs then GETs N
//! objects of size S with C concurrent workers and reports objects/s, MiB/s
//! and p50/p99 latency. `--urls BASE` GETs `BASE/<name>` from any HTTP server
//! (e.g. nginx serving the same files) for a same-run baseline.
//!
//! Cluster requests go through `ais-client`; only the `--urls` baseline (any
//! HTTP server, not an AIStore API) uses a plain HTTP client. `--verify K`
//! checks every Kth GET body against the bytes PUT wrote; any failed
//! request makes the run exit non-zero.

use ais_client::{Client, ClientError};
use clap::Parser;
use futures::StreamExt;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "aisloader",
    about = "PUT/GET load generator for aistore-rs (and any HTTP server for baselines)"
)]
struct Args {
    /// Cluster endpoint (proxy URL).
    #[arg(long, env = "AIS_ENDPOINT", default_value = "http://localhost:8080")]
    endpoint: String,
    /// Bucket (created if missing).
    #[arg(long, default_value = "bench")]
    bucket: String,
    /// Number of objects.
    #[arg(long, default_value_t = 1000)]
    num: usize,
    /// Object size, e.g. 16KiB, 1MiB, 1GiB.
    #[arg(long, default_value = "1MiB")]
    size: String,
    /// Concurrent workers.
    #[arg(long, default_value_t = 16)]
    conc: usize,
    /// put, get or putget.
    #[arg(long, default_value = "putget")]
    mode: String,
    /// Object name prefix.
    #[arg(long, default_value = "obj-")]
    prefix: String,
    /// Use only this many distinct names (GET the same objects repeatedly).
    #[arg(long)]
    distinct: Option<usize>,
    /// GET <URLS>/<prefix><i> from a plain HTTP server instead of the cluster.
    #[arg(long)]
    urls: Option<String>,
    /// Query string added to cluster GETs (e.g. "etl_name=x").
    #[arg(long, default_value = "")]
    query: String,
    /// GET straight from the owner target, chosen client-side from the cluster
    /// map (the SDK's `direct=True`), instead of following the proxy's redirect.
    #[arg(long)]
    direct: bool,
    /// Check every Kth GET body byte for byte against the content PUT
    /// writes (the pattern below; 0 = never). A mismatch counts as an error.
    #[arg(long, default_value_t = 0)]
    verify: usize,
    /// Print one JSON object per phase.
    #[arg(long)]
    json: bool,
    /// Append every successful request's start (Unix ns) and duration (ns)
    /// to this file, one "START DURATION" line each: for latency over a
    /// time window (e.g. while a rebalance runs) rather than per phase.
    #[arg(long)]
    latencies: Option<std::path::PathBuf>,
    /// Instead of PUTting to the cluster, write the objects as files into
    /// this directory (temp file, write, rename): the file system's own
    /// ceiling for the same sizes and concurrency, as a same-run baseline.
    #[arg(long)]
    fs_dir: Option<std::path::PathBuf>,
}

/// One baseline file: `size` bytes of the pattern into a temp file in
/// `dir`, renamed to `name`; no flush (an upper bound for a store).
fn write_file(dir: &std::path::Path, name: &str, size: u64, chunk: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!(".tmp-{name}"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    drop(f);
    std::fs::rename(&tmp, dir.join(name))
}

/// Byte `i` of every object body aisloader writes (and of the files a
/// baseline server is given): `(i mod 1 MiB) * 2654435761`, low byte.
fn pattern() -> bytes::Bytes {
    bytes::Bytes::from(
        (0..(1usize << 20))
            .map(|i| (i as u64).wrapping_mul(2654435761) as u8)
            .collect::<Vec<u8>>(),
    )
}

pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let idx = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (n, unit) = s.split_at(idx);
    let n: f64 = n.parse()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1u64,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        u => anyhow::bail!("unknown size unit {u}"),
    };
    Ok((n * mult as f64) as u64)
}

struct Stats {
    lat: Vec<Duration>,
    /// Start of each request in `lat` (Unix ns).
    starts: Vec<u128>,
    bytes: u64,
    errors: usize,
    first_error: Option<String>,
    elapsed: Duration,
}

impl Stats {
    /// A phase with any error fails the run (after its report): a
    /// benchmark that counted failures as speed would be fooled.
    fn outcome(&self) -> anyhow::Result<()> {
        if self.errors > 0 {
            anyhow::bail!(
                "{} requests failed; first: {}",
                self.errors,
                self.first_error.as_deref().unwrap_or("?")
            );
        }
        Ok(())
    }

    /// Appends the requests' start and duration to `path` (`--latencies`).
    fn save_latencies(&self, path: Option<&std::path::Path>) -> anyhow::Result<()> {
        use std::io::Write;
        let Some(path) = path else {
            return Ok(());
        };
        let mut out = std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        );
        for (at, lat) in self.starts.iter().zip(&self.lat) {
            writeln!(out, "{at} {}", lat.as_nanos())?;
        }
        out.flush()?;
        Ok(())
    }

    fn report(&self, phase: &str, json: bool) {
        let n = self.lat.len();
        let mut l = self.lat.clone();
        l.sort();
        let pct = |p: f64| -> f64 {
            if l.is_empty() {
                return 0.0;
            }
            l[((l.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
        };
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let ops = n as f64 / secs;
        let mib = self.bytes as f64 / (1 << 20) as f64 / secs;
        if json {
            println!(
                "{}",
                serde_json::json!({"phase": phase, "ops": n, "errors": self.errors, "secs": secs, "obj_per_s": ops, "mib_per_s": mib, "p50_ms": pct(0.5), "p99_ms": pct(0.99), "first_error": self.first_error})
            );
        } else {
            println!(
                "{phase:>4}: {n} ok, {} errors in {secs:.2}s: {ops:.0} obj/s, {mib:.1} MiB/s, p50 {:.2} ms, p99 {:.2} ms",
                self.errors,
                pct(0.5),
                pct(0.99)
            );
            if let Some(e) = &self.first_error {
                println!("      first error: {e}");
            }
        }
    }
}

/// A body of `size` bytes produced in 1 MiB chunks: PUTs of any size stream
/// in flat memory. The chunk is made once (the generator shares the CPU with
/// the cluster, so it must cost nothing per object).
fn body(size: u64, chunk: &bytes::Bytes) -> reqwest::Body {
    let chunk = chunk.clone();
    let mut left = size;
    let stream = futures::stream::iter(std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let n = left.min(chunk.len() as u64) as usize;
        left -= n as u64;
        Some(Ok::<_, std::io::Error>(chunk.slice(..n)))
    }));
    reqwest::Body::wrap_stream(stream)
}

/// Counts the bytes of a response body as they arrive; with `expect`
/// (size, pattern) also checks them against what was written.
async fn drain(
    resp: reqwest::Response,
    expect: Option<(u64, &bytes::Bytes)>,
) -> Result<u64, String> {
    let mut n = 0u64;
    let mut s = resp.bytes_stream();
    while let Some(c) = s.next().await {
        let c = c.map_err(|e| e.to_string())?;
        if let Some((_, pat)) = expect {
            let plen = pat.len() as u64;
            let mut off = 0usize;
            while off < c.len() {
                let at = ((n + off as u64) % plen) as usize;
                let k = (c.len() - off).min(pat.len() - at);
                if c[off..off + k] != pat[at..at + k] {
                    return Err(format!(
                        "body differs from what was written near byte {}",
                        n + off as u64
                    ));
                }
                off += k;
            }
        }
        n += c.len() as u64;
    }
    if let Some((size, _)) = expect {
        if n != size {
            return Err(format!("body has {n} bytes, expected {size}"));
        }
    }
    Ok(n)
}

/// A cluster error as one line: `STATUS: message`.
fn client_err(e: ClientError) -> String {
    match e.status() {
        Some(s) => format!("{s}: {e}"),
        None => e.to_string(),
    }
}

/// Plain HTTP GET (the `--urls` baseline), following redirects.
async fn get_follow(
    http: &reqwest::Client,
    mut url: String,
    expect: Option<(u64, &bytes::Bytes)>,
) -> Result<u64, String> {
    for _ in 0..4 {
        let resp = http.get(&url).send().await.map_err(|e| e.to_string())?;
        if resp.status().is_redirection() {
            url = resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .ok_or("redirect without location")?
                .to_string();
            continue;
        }
        if !resp.status().is_success() {
            return Err(format!(
                "{}: {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            ));
        }
        return drain(resp, expect).await;
    }
    Err("too many redirects".into())
}

async fn run_phase<F, Fut>(num: usize, conc: usize, f: F) -> Stats
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<u64, String>>,
{
    let t0 = Instant::now();
    let mut st = Stats {
        lat: Vec::with_capacity(num),
        starts: Vec::with_capacity(num),
        bytes: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
    };
    let mut s = futures::stream::iter((0..num).map(|i| {
        let fut = f(i);
        async move {
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let t = Instant::now();
            (fut.await, t.elapsed(), at)
        }
    }))
    .buffer_unordered(conc);
    while let Some((r, lat, at)) = s.next().await {
        match r {
            Ok(b) => {
                st.bytes += b;
                st.lat.push(lat);
                st.starts.push(at);
            }
            Err(e) => {
                st.errors += 1;
                st.first_error.get_or_insert(e);
            }
        }
    }
    st.elapsed = t0.elapsed();
    st
}

pub async fn main_async() -> anyhow::Result<()> {
    let a = Args::parse();
    let size = parse_size(&a.size)?;
    let distinct = a.distinct.unwrap_or(a.num).max(1);
    if let Some(base) = &a.urls {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(a.conc * 2)
            .build()?;
        let base = base.trim_end_matches('/').to_string();
        let pat = pattern();
        let st = run_phase(a.num, a.conc, |i| {
            let expect = (a.verify > 0 && i % a.verify == 0).then_some((size, &pat));
            get_follow(
                &http,
                format!("{base}/{}{}", a.prefix, i % distinct),
                expect,
            )
        })
        .await;
        st.report("GET", a.json);
        st.save_latencies(a.latencies.as_deref())?;
        return st.outcome();
    }
    if let Some(dir) = &a.fs_dir {
        std::fs::create_dir_all(dir)?;
        let chunk = pattern();
        let st = run_phase(a.num, a.conc, |i| {
            let (dir, chunk) = (dir.clone(), chunk.clone());
            let name = format!("{}{i}", a.prefix);
            async move {
                tokio::task::spawn_blocking(move || write_file(&dir, &name, size, &chunk))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                Ok(size)
            }
        })
        .await;
        st.report("FSWRITE", a.json);
        return st.outcome();
    }
    let client = Client::new(&a.endpoint);
    if a.mode.contains("put") {
        match client.create_bucket(&a.bucket).await {
            Ok(()) => {}
            Err(e) if e.status() == Some(409) => {}
            Err(e) => return Err(e.into()),
        }
        // Fetch (and cache) the cluster map up front: PUTs go straight to
        // the owner target (as the SDK's direct mode).
        client.smap().await?;
        let chunk = pattern();
        let st = run_phase(a.num, a.conc, |i| {
            let name = format!("{}{i}", a.prefix);
            let (client, bucket, chunk) = (&client, &a.bucket, &chunk);
            async move {
                client
                    .put_body(bucket, &name, size, || async move { Ok(body(size, chunk)) })
                    .await
                    .map_err(client_err)?;
                Ok(size)
            }
        })
        .await;
        st.report("PUT", a.json);
        st.save_latencies(a.latencies.as_deref())?;
        st.outcome()?;
    }
    if a.mode.contains("get") {
        if a.direct {
            // Owners come from the cached map: fetch it once, not per worker.
            client.smap().await?;
        }
        let pat = pattern();
        let st = run_phase(a.num, a.conc, |i| {
            let name = format!("{}{}", a.prefix, i % distinct);
            let (client, a) = (&client, &a);
            let expect = (a.verify > 0 && i % a.verify == 0).then_some((size, &pat));
            async move {
                let resp = client
                    .get_raw_query(&a.bucket, &name, &a.query, a.direct)
                    .await
                    .map_err(client_err)?;
                drain(resp, expect).await
            }
        })
        .await;
        st.report("GET", a.json);
        st.save_latencies(a.latencies.as_deref())?;
        st.outcome()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_files_hold_the_pattern_and_no_temp_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let pat = pattern();
        for (name, size) in [("a", 1u64 << 20), ("b", (3 << 20) + 5)] {
            write_file(dir.path(), name, size, &pat).unwrap();
            let got = std::fs::read(dir.path().join(name)).unwrap();
            assert_eq!(got.len() as u64, size);
            assert!(got.chunks(pat.len()).all(|c| c == &pat[..c.len()]));
        }
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // An existing temp name is an error, never a silent overwrite.
        std::fs::write(dir.path().join(".tmp-c"), b"x").unwrap();
        assert!(write_file(dir.path(), "c", 10, &pat).is_err());
    }
}
