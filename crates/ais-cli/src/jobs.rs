//! Offline jobs from the CLI: `ais etl bucket`, `ais bucket cp`, `ais show job`,
//! `ais wait`, `ais stop job`, with a progress bar while waiting.

use crate::fmt::{size_iec, table};
use crate::objects::parse_bucket;
use ais_client::{BucketJobMsg, Client, JobStatus};
use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct SelectArgs {
    /// Source bucket ais://SRC.
    pub src: String,
    /// Destination bucket ais://DST (created if missing).
    pub dst: String,
    /// Only objects whose names start with this prefix.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Only objects named by this template, e.g. "shard-{0000..0999}.tar".
    #[arg(long, default_value = "")]
    pub template: String,
    /// Only these objects (comma-separated).
    #[arg(long, default_value = "")]
    pub list: String,
    /// Change extensions: "{jpg:png}" or "{jpg:png, txt:md}".
    #[arg(long, default_value = "")]
    pub ext: String,
    /// (bucket cp) Also delete from the destination the objects the source
    /// no longer has.
    #[arg(long)]
    pub sync: bool,
    /// Prefix added to every destination name.
    #[arg(long, default_value = "")]
    pub prepend: String,
    /// Count what would be written; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Continue on per-object errors (all of them are recorded).
    #[arg(long = "cont-on-err")]
    pub cont_on_err: bool,
    /// Concurrent objects per target (0 = default, -1 = serial).
    #[arg(long = "num-workers", default_value_t = 0)]
    pub num_workers: i64,
    /// Wait for the job, with a progress bar.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up waiting after this long (e.g. 10m).
    #[arg(long, default_value = "")]
    pub timeout: String,
}

fn parse_ext(s: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let s = s.trim().trim_start_matches('{').trim_end_matches('}');
    let mut m = BTreeMap::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = pair
            .split_once(':')
            .with_context(|| format!("invalid --ext pair \"{pair}\" (expected from:to)"))?;
        m.insert(
            a.trim().trim_start_matches('.').into(),
            b.trim().trim_start_matches('.').into(),
        );
    }
    Ok(m)
}

fn parse_timeout(s: &str) -> anyhow::Result<Option<Duration>> {
    if s.is_empty() {
        return Ok(None);
    }
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n
        .parse()
        .with_context(|| format!("invalid --timeout {s}"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => bail!("invalid --timeout {s} (e.g. 90s, 10m, 1h)"),
    };
    Ok(Some(Duration::from_secs(secs)))
}

/// Starts `etl-bck` (with `etl`) or `copy-bck`; prints the job id; optionally waits.
pub async fn start(client: &Client, etl: Option<&str>, a: SelectArgs) -> anyhow::Result<()> {
    let src = parse_bucket(&a.src)?;
    let dst = parse_bucket(&a.dst)?;
    let msg = BucketJobMsg {
        sync: a.sync,
        coer: a.cont_on_err,
        dry_run: a.dry_run,
        ext: if a.ext.is_empty() {
            None
        } else {
            Some(parse_ext(&a.ext)?)
        },
        num_workers: a.num_workers,
        objnames: if a.list.is_empty() {
            Vec::new()
        } else {
            a.list.split(',').map(|s| s.trim().to_string()).collect()
        },
        prefix: a.prefix,
        prepend: a.prepend,
        template: a.template,
        ..Default::default()
    };
    let (action, id) = match etl {
        Some(name) => {
            // "a>>b>>c": the first ETL, then the others in order.
            let mut names = name.split(">>").map(str::trim);
            let first = names.next().unwrap_or_default();
            if name.split(">>").any(|n| n.trim().is_empty()) {
                anyhow::bail!(
                    "\"{name}\": an ETL name in the pipeline is empty (expected \"a>>b>>c\")"
                );
            }
            let msg = BucketJobMsg {
                pipeline: names.map(str::to_string).collect(),
                ..msg
            };
            (
                "etl-bck",
                client
                    .transform_bucket(&src.name, &dst.name, first, &msg)
                    .await?,
            )
        }
        None => (
            "copy-bck",
            client.copy_bucket(&src.name, &dst.name, &msg).await?,
        ),
    };
    let what = match (a.dry_run, etl.is_some()) {
        (true, true) => " (inspect: every object through the ETL, nothing written)",
        (true, false) => " (dry run)",
        _ => "",
    };
    println!(
        "{action} {} => {}{what}: job {id}",
        src.cname(),
        dst.cname()
    );
    if a.wait {
        wait(client, &id, parse_timeout(&a.timeout)?).await?;
    } else {
        println!("To monitor the progress, run 'ais show job {id}' or 'ais wait {id}'");
    }
    Ok(())
}

/// Waits for a job with a progress bar: objects and bytes done / total, errors, rate, ETA.
pub async fn wait(client: &Client, id: &str, timeout: Option<Duration>) -> anyhow::Result<()> {
    if crate::dsort::is_dsort_id(id) {
        return crate::dsort::wait(client, id, timeout).await;
    }
    let t0 = Instant::now();
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} {pos}/{len} objects [{bar:30}] {msg} {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    loop {
        let s = client.job_status(id).await?;
        let objs = s.objs;
        let errs = s.err_count;
        pb.set_length(s.total_objs);
        pb.set_position(objs + errs);
        pb.set_message(format!(
            "{}/{} errors: {errs}",
            size_iec(s.bytes),
            size_iec(s.total_bytes),
        ));
        if s.finished() {
            pb.finish_and_clear();
            println!(
                "job {id}: {objs} objects ({}) in {:.1}s, {errs} errors{}{}{}",
                size_iec(s.bytes),
                t0.elapsed().as_secs_f64(),
                match s.skipped {
                    0 => String::new(),
                    n => format!(", {n} unchanged (skipped)"),
                },
                match s.repaired {
                    0 => String::new(),
                    n => format!(", {n} repaired"),
                },
                if s.aborted { ", aborted" } else { "" }
            );
            if !s.err.is_empty() {
                bail!("job {id} failed: {}", s.err);
            }
            return Ok(());
        }
        if timeout.is_some_and(|t| t0.elapsed() > t) {
            pb.abandon();
            bail!(
                "timed out waiting for job {id} (it keeps running; 'ais stop job {id}' stops it)"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub async fn show(
    client: &Client,
    id: Option<&str>,
    id2: Option<&str>,
    json_out: bool,
) -> anyhow::Result<()> {
    match (id, id2) {
        (Some("dsort"), one) => return crate::dsort::show(client, one, json_out).await,
        (Some(i), None) if crate::dsort::is_dsort_id(i) => {
            return crate::dsort::show(client, Some(i), json_out).await
        }
        _ => {}
    }
    // `KIND ID`: the id says it all.
    let id = id2.or(id);
    let list: Vec<JobStatus> = match id {
        // A job id, or (as AIStore's `ais show job KIND`) every job of a kind.
        Some(id) => match client.job_status(id).await {
            Ok(s) => vec![s],
            Err(e) => {
                let of_kind: Vec<JobStatus> = client
                    .jobs()
                    .await?
                    .into_iter()
                    .filter(|j| j.kind == id)
                    .collect();
                if of_kind.is_empty() {
                    return Err(e.into());
                }
                of_kind
            }
        },
        None => client.jobs().await?,
    };
    if json_out {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            let state = if !s.finished() {
                "Running"
            } else if s.aborted {
                "Aborted"
            } else if !s.err.is_empty() {
                "Failed"
            } else {
                "Finished"
            };
            vec![
                s.uuid.clone(),
                s.kind.clone(),
                format!("{}/{}", s.objs, s.total_objs),
                size_iec(s.bytes),
                s.err_count.to_string(),
                state.to_string(),
                first_line(&s.err),
            ]
        })
        .collect();
    table(
        &[
            "JOB", "KIND", "OBJECTS", "BYTES", "ERRORS", "STATE", "ERROR",
        ],
        &rows,
    );
    Ok(())
}

/// Job kinds started or stopped by name (`ais job start KIND`).
pub const KINDS: &[&str] = &["rebalance", "resilver", "lru", "ec-encode"];

/// `ais job stop` / `ais stop`: `[job|xaction] ID`, `KIND`, `KIND ID`, or `--all [KIND]`.
#[derive(Args, Debug)]
pub struct StopArgs {
    /// A job id, a kind (rebalance, resilver, lru, ec-encode, ...), or KIND ID.
    pub args: Vec<String>,
    /// Every running job (of the kind, when one is given).
    #[arg(long)]
    pub all: bool,
}

pub async fn stop_cmd(client: &Client, a: StopArgs) -> anyhow::Result<()> {
    let words: Vec<&str> = a
        .args
        .iter()
        .map(String::as_str)
        .skip_while(|w| matches!(*w, "job" | "xaction"))
        .collect();
    if a.all {
        let kind = words.first().copied();
        let mut n = 0;
        for r in client.running_jobs().await? {
            // `KIND[ID]`
            let (k, id) = match r.split_once('[') {
                Some((k, rest)) => (k, rest.trim_end_matches(']')),
                None => ("", r.as_str()),
            };
            if kind.is_some_and(|want| want != k) {
                continue;
            }
            client.stop_job(id).await?;
            println!("job {id} ({k}) stopped");
            n += 1;
        }
        if n == 0 {
            println!("No running jobs");
        }
        return Ok(());
    }
    match words.as_slice() {
        [what] => stop(client, what).await,
        [_kind, id] => stop(client, id).await,
        _ => bail!("usage: ais stop JOB_ID | KIND | KIND JOB_ID | --all [KIND]"),
    }
}

/// `ais job rm`: `KIND [JOB_ID]`, `JOB_ID`, or `--all [KIND]` / `--regex R`
/// (AIStore's, for download and dsort jobs; here for every kind).
#[derive(Args, Debug)]
pub struct RmArgs {
    /// A job kind (download, dsort, copy-bck, ...) and/or a job id.
    pub args: Vec<String>,
    /// Every finished job (of the kind, when one is given).
    #[arg(long)]
    pub all: bool,
    /// Every finished job whose id matches this regular expression.
    #[arg(long)]
    pub regex: Option<String>,
}

pub async fn rm_cmd(client: &Client, a: RmArgs) -> anyhow::Result<()> {
    let words: Vec<&str> = a.args.iter().map(String::as_str).collect();
    if a.all || a.regex.is_some() {
        let kind = match words.as_slice() {
            [] => "",
            [k] => k,
            _ => bail!("usage: ais job rm --all [KIND] | --regex REGEX [KIND]"),
        };
        let removed = match &a.regex {
            None if kind == "dsort" => {
                let mut out = Vec::new();
                for j in client.dsort_list().await? {
                    if j["archived"].as_bool() == Some(true) {
                        if let Some(id) = j["id"].as_str() {
                            client.dsort_remove(id).await?;
                            out.push(id.to_string());
                        }
                    }
                }
                out
            }
            None => client.remove_jobs("", kind, true).await?,
            Some(r) => {
                let re = regex::Regex::new(r).map_err(|e| anyhow::anyhow!("--regex: {e}"))?;
                let mut out = Vec::new();
                for j in client.jobs().await? {
                    let finished = j.end_time != 0;
                    if finished && re.is_match(&j.uuid) && (kind.is_empty() || j.kind == kind) {
                        out.extend(client.remove_jobs(&j.uuid, kind, false).await?);
                    }
                }
                out
            }
        };
        if removed.is_empty() {
            let of = if kind.is_empty() {
                String::new()
            } else {
                format!(" {kind}")
            };
            println!("No finished{of} jobs to remove");
        }
        for id in removed {
            println!("Removed finished job {id}");
        }
        return Ok(());
    }
    let (kind, id) = match words.as_slice() {
        [id] => ("", *id),
        [kind, id] => (*kind, *id),
        _ => bail!("usage: ais job rm [KIND] JOB_ID | --all [KIND] | --regex REGEX [KIND]"),
    };
    if crate::dsort::is_dsort_id(id) && matches!(kind, "" | "dsort") {
        return crate::dsort::remove(client, id).await;
    }
    for id in client.remove_jobs(id, kind, false).await? {
        println!("Removed finished job {id}");
    }
    Ok(())
}

/// `ais job stop ID|KIND`.
pub async fn stop(client: &Client, what: &str) -> anyhow::Result<()> {
    if crate::dsort::is_dsort_id(what) {
        return crate::dsort::abort(client, what).await;
    }
    if KINDS.contains(&what) {
        client.stop_jobs_of_kind(what).await?;
        println!("{what} jobs stopped");
        return Ok(());
    }
    client.stop_job(what).await?;
    println!("job {what} stopped");
    Ok(())
}

/// `ais job start KIND [NODE_ID] [--bucket B] [--wait]`.
pub async fn start_kind(
    client: &Client,
    kind: &str,
    node: Option<&str>,
    bucket: Option<&str>,
    wait_for: bool,
) -> anyhow::Result<()> {
    let bucket = bucket
        .map(|b| b.rsplit("://").next().unwrap_or(b).trim_end_matches('/'))
        .filter(|b| !b.is_empty());
    let id = client.start_job(kind, node.unwrap_or(""), bucket).await?;
    println!("Started {kind}[{id}]");
    follow(client, &id, wait_for).await
}

/// After a job started: wait for it (progress bar), or say how to follow it.
pub async fn follow(client: &Client, id: &str, wait_for: bool) -> anyhow::Result<()> {
    if wait_for {
        wait(client, id, None).await
    } else {
        println!("To monitor the progress, run 'ais show job {id}' or 'ais wait {id}'");
        Ok(())
    }
}

/// `ais job start` / `ais start`: `KIND [NODE_ID | BUCKET]`.
#[derive(Args, Debug)]
pub struct StartArgs {
    /// rebalance, resilver, lru, cleanup, ec-encode, mirror (make-n-copies)
    /// or blob-download.
    pub kind: String,
    /// NODE_ID (resilver, lru: one target), BUCKET (ec-encode), or for
    /// dsort SRC_BUCKET (or the spec inline).
    pub target: Option<String>,
    /// dsort: DST_BUCKET.
    pub dst: Option<String>,
    /// dsort: the JSON or YAML spec file (`-`: stdin).
    #[arg(long, short = 'f')]
    pub spec: Option<String>,
    /// The bucket (ec-encode).
    #[arg(long)]
    pub bucket: Option<String>,
    /// ec-encode: data slices (switches erasure coding on with these).
    #[arg(long, short = 'd')]
    pub data_slices: Option<u32>,
    /// ec-encode: parity slices.
    #[arg(long, short = 'p')]
    pub parity_slices: Option<u32>,
    /// mirror: the number of copies of every object (1 turns mirroring off).
    #[arg(long)]
    pub copies: Option<u32>,
    /// blob-download: bytes per range (64KiB..256MiB; default 4MiB).
    #[arg(long)]
    pub chunk_size: Option<u64>,
    /// blob-download: ranges fetched at once (1..16; default 4).
    #[arg(long)]
    pub num_workers: Option<i64>,
    /// blob-download: fetch again when the backend has a newer version.
    #[arg(long)]
    pub latest: bool,
    /// Wait for the job (progress bar).
    #[arg(long)]
    pub wait: bool,
}

pub async fn start_cmd(client: &Client, a: StartArgs) -> anyhow::Result<()> {
    let (mut node, mut bucket) = (None, a.bucket.clone());
    if let Some(t) = &a.target {
        if t.contains("://") {
            bucket = Some(t.clone());
        } else {
            node = Some(t.clone());
        }
    }
    if a.kind == "download" {
        let (Some(src), Some(dst)) = (a.target.clone(), a.dst.clone()) else {
            bail!("usage: ais start download SRC_URL ais://BUCKET[/OBJECT_NAME|/SUBDIR/]");
        };
        return crate::download::start(
            client,
            crate::download::DownloadArgs {
                src,
                dst,
                description: String::new(),
                timeout: String::new(),
                limit_connections: 0,
                object_list: None,
                wait: a.wait,
            },
        )
        .await;
    }
    if a.kind == "dsort" {
        let pos: Vec<String> = a.target.iter().chain(a.dst.iter()).cloned().collect();
        return crate::dsort::start(client, a.spec.as_deref(), pos, a.wait).await;
    }
    if a.dst.is_some() || a.spec.is_some() {
        bail!(
            "{}: a second argument and --spec apply to dsort only",
            a.kind
        );
    }
    if a.kind == "blob-download" {
        let Some(t) = &a.target else {
            bail!("blob-download takes an object: ais blob-download s3://BUCKET/OBJECT");
        };
        let (bck, obj) = crate::objects::parse_object(t)?;
        let id = client
            .blob_download(
                &bck.name,
                &bck.provider,
                &obj,
                a.chunk_size,
                a.num_workers,
                a.latest,
            )
            .await?;
        println!("Started blob-download[{id}] of {}/{obj}", bck.cname());
        return follow(client, &id, a.wait).await;
    }
    if a.kind == "mirror" || a.kind == "make-n-copies" {
        let Some(b) = &bucket else {
            bail!("mirror takes a bucket: ais start mirror ais://BUCKET --copies 2");
        };
        let bck = parse_bucket(b)?;
        let n = a.copies.unwrap_or(2);
        let id = client.make_n_copies(&bck.name, n).await?;
        println!(
            "Started make-n-copies[{id}] ({n} copies of every object of {})",
            bck.cname()
        );
        return follow(client, &id, a.wait).await;
    }
    if a.kind == "ec-encode" && (a.data_slices.is_some() || a.parity_slices.is_some()) {
        let Some(b) = &bucket else {
            bail!("ec-encode takes a bucket: ais start ec-encode ais://BUCKET -d 2 -p 2");
        };
        let bck = parse_bucket(b)?;
        let (d, p) = (a.data_slices.unwrap_or(2), a.parity_slices.unwrap_or(2));
        let id = client.ec_encode(&bck.name, d, p).await?;
        println!("Started ec-encode[{id}] ({d} data + {p} parity slices)");
        return follow(client, &id, a.wait).await;
    }
    start_kind(client, &a.kind, node.as_deref(), bucket.as_deref(), a.wait).await
}

/// `ais etl show errors NAME JOB`: every per-object failure of a job.
pub async fn errors(client: &Client, etl: &str, job: &str) -> anyhow::Result<()> {
    let rows: Vec<Vec<String>> = client
        .etl_job_errors(etl, job)
        .await?
        .iter()
        .map(|e| vec![e.obj_name.clone(), e.code(), first_line(&e.msg)])
        .collect();
    table(&["OBJECT", "CODE", "ERROR"], &rows);
    Ok(())
}

/// Tables show the first line of an error (messages may carry a traceback).
fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

/// `ais blob-download s3://BUCKET/OBJECT`: one large remote object into the
/// cluster in parallel ranges (as `ais start blob-download`).
#[derive(Args, Debug)]
pub struct BlobArgs {
    /// s3://BUCKET/OBJECT
    pub object: String,
    /// Bytes per range (64KiB..256MiB; default 4MiB).
    #[arg(long)]
    pub chunk_size: Option<u64>,
    /// Ranges fetched at once (1..16; default 4).
    #[arg(long)]
    pub num_workers: Option<i64>,
    /// Fetch again when the backend has a newer version.
    #[arg(long)]
    pub latest: bool,
    /// Wait for the job (progress bar).
    #[arg(long)]
    pub wait: bool,
}

pub async fn blob_cmd(client: &Client, a: BlobArgs) -> anyhow::Result<()> {
    start_cmd(
        client,
        StartArgs {
            kind: "blob-download".into(),
            target: Some(a.object),
            dst: None,
            spec: None,
            bucket: None,
            data_slices: None,
            parity_slices: None,
            copies: None,
            chunk_size: a.chunk_size,
            num_workers: a.num_workers,
            latest: a.latest,
            wait: a.wait,
        },
    )
    .await
}
