//! Bucket and object commands: ls, put (file, stdin, or a directory in
//! parallel with a progress bar), get, cat, rm.

use crate::fmt::{size_iec, table};
use ais_client::Client;
use ais_core::api::LsoMsg;
use ais_core::Bck;
use anyhow::{bail, Context};
use clap::Args;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tokio::io::AsyncWriteExt;

pub fn parse_bucket(s: &str) -> anyhow::Result<Bck> {
    let (bck, obj) = Bck::parse_uri(s).map_err(|e| anyhow::anyhow!("{e}"))?;
    if !obj.is_empty() {
        bail!("expected a bucket (ais://BUCKET), got an object name in \"{s}\"");
    }
    Ok(bck)
}

pub fn parse_object(s: &str) -> anyhow::Result<(Bck, String)> {
    let (bck, obj) = Bck::parse_uri(s).map_err(|e| anyhow::anyhow!("{e}"))?;
    if obj.is_empty() {
        bail!("expected an object (ais://BUCKET/OBJECT), got \"{s}\"");
    }
    Ok((bck, obj))
}

pub async fn list_buckets(client: &Client, json: bool) -> anyhow::Result<()> {
    let list = client.list_buckets().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list.iter().map(|b| vec![b.cname()]).collect();
    table(&["NAME"], &rows);
    Ok(())
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Bucket (ais://BUCKET); omit to list buckets.
    bucket: Option<String>,
    /// Only objects whose names start with this prefix.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Comma-separated properties: name,size,checksum,version,atime,location,custom.
    #[arg(long, default_value = "name,size")]
    props: String,
    /// Page size for each request (0 = server maximum).
    #[arg(long, default_value_t = 0)]
    page_size: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// List the members of archives (.tar, .tgz, .zip) too, as SHARD/MEMBER.
    #[arg(long)]
    archive: bool,
    /// Remote buckets: only the objects cached in the cluster.
    #[arg(long)]
    cached: bool,
    /// One level below the prefix: its objects and its "directories" (NAME/).
    #[arg(long)]
    no_recursion: bool,
    /// With --no-recursion: objects only, no directories.
    #[arg(long)]
    no_dirs: bool,
}

#[derive(Args, Debug)]
pub struct RemoteArgs {
    /// s3://BUCKET (or s3://BUCKET/OBJECT)
    bucket: String,
    /// Only objects whose names start with this prefix.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Comma-separated object names.
    #[arg(long, default_value = "")]
    list: String,
    /// A name template, e.g. "shard-{0000..0099}.tar".
    #[arg(long, default_value = "")]
    template: String,
    /// Wait for the job (progress bar).
    #[arg(long)]
    wait: bool,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// ais://BUCKET/OBJECT ... (one by one), or ais://BUCKET with --list,
    /// --template or --prefix (one job).
    #[arg(required = true)]
    objects: Vec<String>,
    /// Comma-separated object names.
    #[arg(long, default_value = "")]
    list: String,
    /// A name template, e.g. "shard-{0000..0999}.tar".
    #[arg(long, default_value = "")]
    template: String,
    /// Every object whose name starts with this prefix.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Wait for the job (progress bar).
    #[arg(long)]
    wait: bool,
}

#[derive(Args, Debug)]
pub struct SummaryArgs {
    /// ais://BUCKET (or s3://BUCKET); every bucket when left out.
    bucket: Option<String>,
    /// Only objects whose names start with this prefix.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Remote buckets: only the objects cached in the cluster.
    #[arg(long)]
    cached: bool,
    #[arg(long)]
    json: bool,
}

/// `ais bucket summary` / `ais storage summary`.
pub async fn summary(client: &Client, a: SummaryArgs) -> anyhow::Result<()> {
    let buckets = match &a.bucket {
        Some(b) => vec![parse_bucket(b)?],
        None => client.list_buckets().await?,
    };
    let mut all = Vec::new();
    for b in &buckets {
        all.push(
            client
                .bucket_summary(&b.name, &b.provider, &a.prefix, a.cached)
                .await?,
        );
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    let num = |v: &serde_json::Value| -> u64 {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0)
    };
    let rows: Vec<Vec<String>> = buckets
        .iter()
        .zip(&all)
        .map(|(b, s)| {
            let remote = num(&s["ObjCount"]["obj_count_remote"]);
            vec![
                b.cname(),
                if remote > 0 {
                    format!(
                        "{} (remote {remote})",
                        num(&s["ObjCount"]["obj_count_present"])
                    )
                } else {
                    num(&s["ObjCount"]["obj_count_present"]).to_string()
                },
                size_iec(num(&s["TotalSize"]["size_all_present_objs"])),
                size_iec(num(&s["TotalSize"]["size_on_disk"])),
                format!("{}%", num(&s["used_pct"])),
            ]
        })
        .collect();
    crate::fmt::table(
        &["NAME", "OBJECTS", "SIZE", "SIZE ON DISK", "USAGE(%)"],
        &rows,
    );
    Ok(())
}

/// `ais object show ais://B/O`.
pub async fn show(client: &Client, object: &str, json: bool) -> anyhow::Result<()> {
    let (bck, name) = parse_object(object)?;
    let p = client.head_object(&bck.name, &name).await?;
    let custom: Vec<String> = p.custom.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if json {
        let v = serde_json::json!({
            "name": name, "size": p.size, "checksum": {"type": p.cksum_type, "value": p.cksum_value},
            "version": p.version, "atime": p.atime,
            "custom": p.custom.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    table(
        &["PROPERTY", "VALUE"],
        &[
            vec!["name".into(), format!("{}/{name}", bck.cname())],
            vec!["size".into(), size_iec(p.size)],
            vec![
                "checksum".into(),
                format!("{} {}", p.cksum_type, p.cksum_value),
            ],
            vec!["version".into(), p.version],
            vec!["atime".into(), p.atime],
            vec![
                "custom".into(),
                if custom.is_empty() {
                    "-".into()
                } else {
                    custom.join(", ")
                },
            ],
        ],
    );
    Ok(())
}

/// `ais object set-custom ais://B/O k=v ...` (or one JSON object).
pub async fn set_custom(
    client: &Client,
    object: &str,
    props: &[String],
    overwrite: bool,
) -> anyhow::Result<()> {
    let (bck, name) = parse_object(object)?;
    let map: std::collections::BTreeMap<String, String> = match props {
        [one] if one.trim_start().starts_with('{') => {
            serde_json::from_str(one).with_context(|| {
                format!("custom properties: expected a JSON object of strings, got {one}")
            })?
        }
        _ => props
            .iter()
            .map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| anyhow::anyhow!("expected KEY=VALUE, got \"{kv}\""))
            })
            .collect::<anyhow::Result<_>>()?,
    };
    client.set_custom(&bck.name, &name, &map, overwrite).await?;
    println!("custom properties of {}/{name} set", bck.cname());
    Ok(())
}

/// A `--list` value: comma-separated names, blanks dropped.
fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `ais rm` / `ais rmo` / `ais object rm`.
pub async fn rm(client: &Client, a: RmArgs) -> anyhow::Result<()> {
    let names = split_list(&a.list);
    if names.is_empty() && a.template.is_empty() && a.prefix.is_empty() {
        for o in &a.objects {
            let (bck, name) = parse_object(o)?;
            client.delete_object(&bck.name, &name).await?;
            println!("deleted \"{name}\" from {}", bck.cname());
        }
        return Ok(());
    }
    let [b] = a.objects.as_slice() else {
        bail!("--list, --template and --prefix take one bucket (ais://BUCKET)");
    };
    let bck = parse_bucket(b)?;
    let id = client
        .delete_objects(&bck.name, &bck.provider, &names, &a.template, &a.prefix)
        .await?;
    println!("removing objects from {}: job {id}", bck.cname());
    if a.wait {
        crate::jobs::wait(client, &id, None).await
    } else {
        println!("To monitor the progress, run 'ais show job {id}' or 'ais wait {id}'");
        Ok(())
    }
}

/// `ais prefetch` / `ais evict`.
pub async fn prefetch_or_evict(client: &Client, a: RemoteArgs, evict: bool) -> anyhow::Result<()> {
    let (bck, obj) = Bck::parse_uri(&a.bucket).map_err(|e| anyhow::anyhow!("{e}"))?;
    if !bck.is_remote() {
        bail!(
            "{} is not a remote bucket (expected s3://BUCKET)",
            bck.cname()
        );
    }
    let mut names = split_list(&a.list);
    if !obj.is_empty() {
        names.push(obj);
    }
    if evict && names.is_empty() && a.prefix.is_empty() && a.template.is_empty() {
        client.evict_bucket(&bck.name).await?;
        println!("evicted {}", bck.cname());
        return Ok(());
    }
    let id = client
        .prefetch_or_evict(&bck.name, evict, &names, &a.template, &a.prefix)
        .await?;
    let what = if evict { "evict" } else { "prefetch" };
    println!("{what} {}: job {id}", bck.cname());
    if a.wait {
        crate::jobs::wait(client, &id, None).await
    } else {
        println!("To monitor the progress, run 'ais show job {id}' or 'ais wait {id}'");
        Ok(())
    }
}

pub async fn ls(client: &Client, a: LsArgs) -> anyhow::Result<()> {
    let Some(b) = a.bucket else {
        return list_buckets(client, a.json).await;
    };
    let (bck, obj_prefix) = Bck::parse_uri(&b).map_err(|e| anyhow::anyhow!("{e}"))?;
    let prefix = if a.prefix.is_empty() {
        obj_prefix
    } else {
        a.prefix.clone()
    };
    let props: Vec<String> = a.props.split(',').map(|s| s.trim().to_string()).collect();
    let mut msg = LsoMsg {
        prefix,
        props: a.props.clone(),
        pagesize: a.page_size,
        flags: if a.archive {
            ais_core::api::LSO_ARCH_DIR
        } else {
            0
        } | if a.cached { 1 } else { 0 }
            | if a.no_recursion {
                ais_core::api::LSO_NO_RECURSION
            } else {
                0
            }
            | if a.no_dirs {
                ais_core::api::LSO_NO_DIRS
            } else {
                0
            },
        ..Default::default()
    };
    let mut rows = Vec::new();
    let mut all = Vec::new();
    loop {
        let page = client.list_page(&bck.name, &msg).await?;
        for e in page.entries {
            if a.json {
                all.push(e);
                continue;
            }
            let mut row = vec![e.name.clone()];
            for p in props.iter().filter(|p| p.as_str() != "name") {
                row.push(match p.as_str() {
                    "size" => size_iec(e.size.unwrap_or(0)),
                    "checksum" => e.checksum.clone(),
                    "version" => e.version.clone(),
                    "atime" => e.atime.clone(),
                    "location" => e.location.clone(),
                    "custom" => e.custom.clone(),
                    _ => String::new(),
                });
            }
            rows.push(row);
        }
        if page.continuation_token.is_empty() {
            break;
        }
        msg.uuid = page.uuid;
        msg.continuation_token = page.continuation_token;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    let header: Vec<String> = props.iter().map(|p| p.to_uppercase()).collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    table(&header, &rows);
    Ok(())
}

#[derive(Args, Debug)]
pub struct PutArgs {
    /// File, directory (with -r) or - for stdin.
    src: String,
    /// Destination: ais://BUCKET[/NAME or /PREFIX/].
    dst: String,
    /// Upload a directory recursively.
    #[arg(short, long)]
    recursive: bool,
    /// Parallel uploads for -r.
    #[arg(long, default_value_t = 16)]
    conc: usize,
    /// Append the file to the object (created if absent) instead of
    /// replacing it; the object changes at once, when the whole file is in.
    #[arg(long)]
    append: bool,
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let ft = e.file_type()?;
        if ft.is_dir() {
            collect_files(&e.path(), out)?;
        } else if ft.is_file() {
            out.push(e.path());
        }
    }
    Ok(())
}

pub async fn put(client: &Client, a: PutArgs) -> anyhow::Result<()> {
    let (bck, name) = Bck::parse_uri(&a.dst).map_err(|e| anyhow::anyhow!("{e}"))?;
    if a.src == "-" {
        if a.append {
            bail!("--append needs a file (standard input cannot be re-sent on a redirect)");
        }
        if name.is_empty() {
            bail!("reading from stdin needs an object name: ais put - ais://BUCKET/NAME");
        }
        let mut buf = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut buf).await?;
        let n = buf.len() as u64;
        client.put_bytes(&bck.name, &name, buf).await?;
        println!("PUT \"{name}\" => {} ({})", bck.cname(), size_iec(n));
        return Ok(());
    }
    let src = PathBuf::from(&a.src);
    let md = std::fs::metadata(&src).with_context(|| format!("cannot read \"{}\"", a.src))?;
    if a.append {
        if md.is_dir() || a.recursive || name.is_empty() || name.ends_with('/') {
            bail!(
                "--append appends one file to one object: ais put --append FILE ais://BUCKET/NAME"
            );
        }
        client.append_file(&bck.name, &name, &src).await?;
        println!(
            "APPEND \"{}\" => {}/{name} ({})",
            a.src,
            bck.cname(),
            size_iec(md.len())
        );
        return Ok(());
    }
    if md.is_dir() {
        if !a.recursive {
            bail!(
                "\"{}\" is a directory: use -r to upload it recursively",
                a.src
            );
        }
        return put_dir(client, &bck, &name, &src, a.conc.max(1)).await;
    }
    let obj = if name.is_empty() || name.ends_with('/') {
        let base = src
            .file_name()
            .and_then(|f| f.to_str())
            .context("source file has no usable name")?;
        format!("{name}{base}")
    } else {
        name
    };
    client.put_file(&bck.name, &obj, &src).await?;
    println!(
        "PUT \"{}\" => {}/{obj} ({})",
        a.src,
        bck.cname(),
        size_iec(md.len())
    );
    Ok(())
}

async fn put_dir(
    client: &Client,
    bck: &Bck,
    prefix: &str,
    dir: &Path,
    conc: usize,
) -> anyhow::Result<()> {
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let prefix = if prefix.is_empty() || prefix.ends_with('/') {
        prefix.to_string()
    } else {
        format!("{prefix}/")
    };
    let pb = ProgressBar::new(total);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let count = files.len();
    let started = Instant::now();
    let mut done = 0usize;
    let mut errors = Vec::new();
    let mut stream = futures::stream::iter(files.into_iter().map(|f| {
        let rel = f
            .strip_prefix(dir)
            .unwrap_or(&f)
            .to_string_lossy()
            .to_string();
        let name = format!("{prefix}{rel}");
        let client = client.clone();
        let bucket = bck.name.clone();
        async move {
            let size = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
            (
                name.clone(),
                size,
                client.put_file(&bucket, &name, &f).await,
            )
        }
    }))
    .buffer_unordered(conc);
    while let Some((name, size, res)) = stream.next().await {
        done += 1;
        pb.inc(size);
        pb.set_message(format!("{done}/{count} objects"));
        if let Err(e) = res {
            errors.push(format!("{name}: {e}"));
        }
    }
    pb.finish_and_clear();
    let secs = started.elapsed().as_secs_f64().max(1e-6);
    println!(
        "PUT {} objects ({}) => {} in {:.1}s ({}/s)",
        count - errors.len(),
        size_iec(total),
        bck.cname(),
        secs,
        size_iec((total as f64 / secs) as u64)
    );
    if !errors.is_empty() {
        for e in errors.iter().take(10) {
            eprintln!("  failed: {e}");
        }
        bail!("{} of {count} uploads failed", errors.len());
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// Object: ais://BUCKET/OBJECT.
    object: String,
    /// Output file, or - for stdout (default: the object's base name).
    out: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct BatchArgs {
    /// ais://BUCKET
    bucket: String,
    /// Objects, in the order wanted; `SHARD.tar/MEMBER` style items are
    /// given as `SHARD.tar?archpath=MEMBER`.
    #[arg(required = true)]
    objects: Vec<String>,
    /// Output tar file, or - for stdout.
    #[arg(long, short = 'o', default_value = "-")]
    out: String,
    /// Transform every item with this ETL on the target that stores it.
    #[arg(long)]
    etl: Option<String>,
    /// Put missing items under __404__/ (empty) instead of failing.
    #[arg(long)]
    cont_on_err: bool,
}

/// `ais batch ais://b o1 o2 ... -o out.tar`: Get-Batch into one tar.
pub async fn batch(client: &Client, a: BatchArgs) -> anyhow::Result<()> {
    let bck = parse_bucket(&a.bucket)?;
    let items: Vec<(String, Option<String>)> = a
        .objects
        .iter()
        .map(|o| match o.split_once("?archpath=") {
            Some((n, m)) => (n.to_string(), Some(m.to_string())),
            None => (o.clone(), None),
        })
        .collect();
    let resp = client
        .get_batch(&bck.name, &items, a.etl.as_deref(), a.cont_on_err)
        .await?;
    let n = save(resp, &a.out).await?;
    if a.out != "-" {
        println!("{} items ({n} bytes) written to {}", items.len(), a.out);
    }
    Ok(())
}

/// Streams a GET response into a file or stdout; returns bytes written.
pub async fn save(resp: ais_client::Response, out: &str) -> anyhow::Result<u64> {
    let mut stream = resp.bytes_stream();
    let mut n = 0u64;
    if out == "-" {
        let mut stdout = tokio::io::stdout();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            n += chunk.len() as u64;
            stdout.write_all(&chunk).await?;
        }
        stdout.flush().await?;
        return Ok(n);
    }
    // Write beside the destination and rename, so a failed download leaves no partial file.
    let tmp = format!("{out}.part");
    let mut f = tokio::fs::File::create(&tmp)
        .await
        .with_context(|| format!("create {tmp}"))?;
    let res: anyhow::Result<()> = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            n += chunk.len() as u64;
            f.write_all(&chunk).await?;
        }
        f.flush().await?;
        Ok(())
    }
    .await;
    if let Err(e) = res {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    tokio::fs::rename(&tmp, out).await?;
    Ok(n)
}

pub async fn get(client: &Client, a: GetArgs) -> anyhow::Result<()> {
    let (bck, name) = parse_object(&a.object)?;
    let out = a
        .out
        .unwrap_or_else(|| name.rsplit('/').next().unwrap_or(&name).to_string());
    let resp = client.get_stream(&bck.name, &name, &[], None).await?;
    let n = save(resp, &out).await?;
    if out != "-" {
        println!(
            "GET \"{name}\" from {} as \"{out}\" ({})",
            bck.cname(),
            size_iec(n)
        );
    }
    Ok(())
}

pub async fn cat(client: &Client, object: &str, query: &[(&str, &str)]) -> anyhow::Result<()> {
    let (bck, name) = parse_object(object)?;
    let resp = client.get_stream(&bck.name, &name, query, None).await?;
    save(resp, "-").await?;
    Ok(())
}
