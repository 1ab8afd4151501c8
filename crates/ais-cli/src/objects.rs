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

#[derive(Args, Debug, Default)]
pub struct LsArgs {
    /// Bucket (ais://BUCKET[/PREFIX]); omit (or give a provider: ais) to list buckets.
    bucket: Option<String>,
    /// Only objects whose names start with this prefix.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Comma-separated properties: name,size,checksum,version,atime,location,copies,custom (or all).
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
    /// One level below the prefix: its objects and its "directories" (NAME/)
    /// (AIStore's --non-recursive, --nr).
    #[arg(long, visible_alias = "non-recursive", alias = "nr")]
    no_recursion: bool,
    /// With --no-recursion: objects only, no directories.
    #[arg(long)]
    no_dirs: bool,
    /// Objects, sizes and disk use instead of the names (as 'ais bucket summary').
    #[arg(long)]
    summary: bool,
    /// Print only the number of objects listed (and the time it took).
    #[arg(long)]
    count_only: bool,
    /// Names only (faster: --props is ignored).
    #[arg(long)]
    name_only: bool,
    /// List at most this many objects (0: all).
    #[arg(long, default_value_t = 0)]
    limit: u64,
    /// Only names (of objects, or of buckets) matching this regular expression.
    #[arg(long)]
    regex: Option<String>,
    /// Only names matching this template, e.g. "shard-{000..099}.tar" (a plain prefix works too).
    #[arg(long)]
    template: Option<String>,
    /// Start listing after this name.
    #[arg(long)]
    start_after: Option<String>,
    /// Tables without the header line.
    #[arg(long, short = 'H')]
    no_headers: bool,
    /// Accepted for AIStore compatibility: every bucket and object is listed anyway.
    #[arg(long)]
    all: bool,
    /// Remote buckets: list from the bucket's native inventory (a snapshot
    /// made by 'ais nbi create') instead of its backend.
    #[arg(long)]
    inventory: bool,
    /// With --inventory: the inventory to read (default: the bucket's only one).
    #[arg(long)]
    inv_name: Option<String>,
}

impl LsArgs {
    /// `ais archive ls ais://B[/SHARD]`: objects with their archived members.
    pub fn for_archive(uri: String) -> Self {
        LsArgs {
            bucket: Some(uri),
            props: "name,size".into(),
            archive: true,
            ..Default::default()
        }
    }
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
            "{} is not a remote bucket (expected s3://, gs:// or az://BUCKET)",
            bck.cname()
        );
    }
    let mut names = split_list(&a.list);
    if !obj.is_empty() {
        names.push(obj);
    }
    if evict && names.is_empty() && a.prefix.is_empty() && a.template.is_empty() {
        client.evict_bucket(&bck.name, &bck.provider).await?;
        println!("evicted {}", bck.cname());
        return Ok(());
    }
    let id = client
        .prefetch_or_evict(
            &bck.name,
            &bck.provider,
            evict,
            &names,
            &a.template,
            &a.prefix,
        )
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

/// `ais ls ais` / `ais ls ais://` / `ais ls`: the buckets (of a provider).
fn is_provider_only(b: &str) -> bool {
    matches!(
        b.trim_end_matches('/').trim_end_matches(':'),
        "ais" | "s3" | "aws" | "gs" | "gcp" | "az" | "azure"
    )
}

pub async fn ls(client: &Client, a: LsArgs) -> anyhow::Result<()> {
    let regex = a
        .regex
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .context("--regex")?;
    let bucket = a.bucket.clone().filter(|b| !is_provider_only(b));
    let Some(b) = bucket else {
        if a.summary {
            return summary(
                client,
                SummaryArgs {
                    bucket: None,
                    prefix: a.prefix.clone(),
                    cached: a.cached,
                    json: a.json,
                },
            )
            .await;
        }
        let mut list = client.list_buckets().await?;
        if let Some(r) = &regex {
            list.retain(|b| r.is_match(&b.name));
        }
        if a.json {
            println!("{}", serde_json::to_string_pretty(&list)?);
            return Ok(());
        }
        let rows: Vec<Vec<String>> = list.iter().map(|b| vec![b.cname()]).collect();
        if a.no_headers {
            rows.iter().for_each(|r| println!("{}", r[0]));
        } else {
            table(&["NAME"], &rows);
        }
        return Ok(());
    };
    let (bck, obj_prefix) = Bck::parse_uri(&b).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut prefix = if a.prefix.is_empty() {
        obj_prefix
    } else {
        a.prefix.clone()
    };
    // A template narrows the listing to its names; its literal head is a prefix.
    let wanted: Option<std::collections::HashSet<String>> = match a.template.as_deref() {
        Some(t) if crate::template::is_template(t) => {
            let head = &t[..t.find('{').unwrap_or(t.len())];
            if prefix.is_empty() || head.starts_with(prefix.as_str()) {
                prefix = head.to_string();
            }
            Some(crate::template::expand(t)?.into_iter().collect())
        }
        Some(t) if !t.is_empty() && t != "*" => {
            prefix = t.to_string();
            None
        }
        _ => None,
    };
    if a.summary {
        return summary(
            client,
            SummaryArgs {
                bucket: Some(bck.cname()),
                prefix,
                cached: a.cached,
                json: a.json,
            },
        )
        .await;
    }
    let props_s = if a.name_only {
        "name".to_string()
    } else if a.props.trim() == "all" {
        "name,size,checksum,version,atime,copies,location,custom".to_string()
    } else {
        a.props.clone()
    };
    let props: Vec<String> = props_s.split(',').map(|s| s.trim().to_string()).collect();
    let mut msg = LsoMsg {
        prefix,
        props: props_s.clone(),
        pagesize: a.page_size,
        start_after: a.start_after.clone().unwrap_or_default(),
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
            }
            | if a.inventory || a.inv_name.is_some() {
                ais_core::api::LSO_NBI
            } else {
                0
            },
        ..Default::default()
    };
    let inv = a.inv_name.clone().unwrap_or_default();
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut all = Vec::new();
    let mut count = 0u64;
    'pages: loop {
        let page = client.list_page_inv(&bck.name, &msg, &inv).await?;
        for e in page.entries {
            if a.limit > 0 && count >= a.limit {
                break 'pages;
            }
            if regex.as_ref().is_some_and(|r| !r.is_match(&e.name))
                || wanted.as_ref().is_some_and(|w| !w.contains(&e.name))
            {
                continue;
            }
            count += 1;
            if a.count_only {
                continue;
            }
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
                    "copies" => e.copies.to_string(),
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
    if a.count_only {
        println!(
            "Listed {count} names in {:.3}s",
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    if a.no_headers {
        for r in rows {
            println!("{}", r.join("  "));
        }
        return Ok(());
    }
    let header: Vec<String> = props.iter().map(|p| p.to_uppercase()).collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    table(&header, &rows);
    Ok(())
}

#[derive(Args, Debug)]
pub struct PutArgs {
    /// [SRC] DST: SRC is a file, a directory (-r), - (stdin), a name
    /// template ("f-{0..9}.txt"), a shell pattern ("docs/*.md") or "a,b";
    /// DST is ais://BUCKET[/NAME or /PREFIX]. With --list or --template,
    /// DST alone.
    #[arg(num_args = 1..=2, required = true)]
    args: Vec<String>,
    /// Upload a directory recursively.
    #[arg(short, long)]
    recursive: bool,
    /// Parallel uploads (many files).
    #[arg(long, visible_alias = "num-workers", default_value_t = 16)]
    conc: usize,
    /// Append the file(s) to the object (created if absent) instead of
    /// replacing it; the object changes at once, when all of it is in.
    #[arg(long)]
    append: bool,
    /// Comma-separated files to upload.
    #[arg(long)]
    list: Option<String>,
    /// Files named by a template, e.g. "/data/shard-{000..099}.tar".
    #[arg(long)]
    template: Option<String>,
    /// Prefix object names with the source directory's name.
    #[arg(long)]
    include_src_dir: bool,
    /// Show what would be uploaded; upload nothing.
    #[arg(long)]
    dry_run: bool,
    /// Assume yes (there are no questions here).
    #[arg(short = 'y', long)]
    yes: bool,
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
    let (src, dst) = match a.args.as_slice() {
        [dst] if a.list.is_some() || a.template.is_some() => (None, dst.clone()),
        [src, dst] => (Some(src.clone()), dst.clone()),
        _ => bail!("usage: ais put FILE|DIRECTORY|- ais://BUCKET[/NAME] (or ais put ais://BUCKET[/PREFIX] --list|--template ...)"),
    };
    let (bck, name) = Bck::parse_uri(&dst).map_err(|e| anyhow::anyhow!("{e}"))?;
    let many = a.list.is_some()
        || a.template.is_some()
        || src.as_deref().is_some_and(|s| {
            crate::template::is_template(s) || s.contains(',') || s.contains('*') || s.contains('?')
        });
    if a.append {
        if name.is_empty() || name.ends_with('/') {
            bail!("--append appends to one object: ais put --append FILE... ais://BUCKET/NAME");
        }
        if src.as_deref() == Some("-") {
            bail!("--append needs a file (standard input cannot be re-sent on a redirect)");
        }
        let files: Vec<PathBuf> = crate::archive::collect_sources(
            src.as_deref(),
            a.list.as_deref(),
            a.template.as_deref(),
            true,
            false,
        )?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
        return append(client, &bck, &name, &files, a.dry_run).await;
    }
    if many {
        let files = crate::archive::collect_sources(
            src.as_deref(),
            a.list.as_deref(),
            a.template.as_deref(),
            a.recursive,
            a.include_src_dir,
        )?;
        let named: Vec<(String, PathBuf)> = files
            .into_iter()
            .map(|(n, p)| (format!("{name}{n}"), p))
            .collect();
        return put_many(client, &bck, named, a.conc.max(1), a.dry_run).await;
    }
    let src = src.unwrap_or_default();
    if src == "-" {
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
    let path = PathBuf::from(&src);
    let md = std::fs::metadata(&path).with_context(|| format!("cannot read \"{src}\""))?;
    if md.is_dir() {
        if !a.recursive {
            bail!("\"{src}\" is a directory: use -r to upload it recursively");
        }
        let mut files = Vec::new();
        collect_files(&path, &mut files)?;
        let mut prefix = if name.is_empty() || name.ends_with('/') {
            name.clone()
        } else {
            format!("{name}/")
        };
        if a.include_src_dir {
            if let Some(d) = path.file_name() {
                prefix.push_str(&format!("{}/", d.to_string_lossy()));
            }
        }
        let named: Vec<(String, PathBuf)> = files
            .into_iter()
            .map(|f| {
                let rel = f
                    .strip_prefix(&path)
                    .unwrap_or(&f)
                    .to_string_lossy()
                    .to_string();
                (format!("{prefix}{rel}"), f)
            })
            .collect();
        return put_many(client, &bck, named, a.conc.max(1), a.dry_run).await;
    }
    let obj = if name.is_empty() || name.ends_with('/') {
        let base = path
            .file_name()
            .and_then(|f| f.to_str())
            .context("source file has no usable name")?;
        format!("{name}{base}")
    } else {
        name
    };
    if a.dry_run {
        println!("[dry-run] PUT \"{src}\" => {}/{obj}", bck.cname());
        return Ok(());
    }
    client.put_file(&bck.name, &obj, &path).await?;
    println!(
        "PUT \"{src}\" => {}/{obj} ({})",
        bck.cname(),
        size_iec(md.len())
    );
    Ok(())
}

/// Appends `files` to one object (`ais put --append`, `ais object concat`).
pub async fn append(
    client: &Client,
    bck: &Bck,
    name: &str,
    files: &[PathBuf],
    dry_run: bool,
) -> anyhow::Result<()> {
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    if dry_run {
        for f in files {
            println!(
                "[dry-run] APPEND \"{}\" => {}/{name}",
                f.display(),
                bck.cname()
            );
        }
        return Ok(());
    }
    client.append_files(&bck.name, name, files).await?;
    println!(
        "APPEND {} file(s) ({}) => {}/{name}",
        files.len(),
        size_iec(total),
        bck.cname()
    );
    Ok(())
}

/// `ais object concat FILE|DIR... ais://B/OBJ`.
pub async fn concat(client: &Client, args: &[String], recursive: bool) -> anyhow::Result<()> {
    let [srcs @ .., dst] = args else {
        bail!("usage: ais object concat FILE|DIRECTORY [...] ais://BUCKET/OBJECT");
    };
    if srcs.is_empty() {
        bail!("usage: ais object concat FILE|DIRECTORY [...] ais://BUCKET/OBJECT");
    }
    let (bck, name) = parse_object(dst)?;
    let mut files = Vec::new();
    for s in srcs {
        files.extend(
            crate::archive::collect_sources(Some(s), None, None, recursive, false)?
                .into_iter()
                .map(|(_, p)| p),
        );
    }
    append(client, &bck, &name, &files, false).await
}

/// Uploads (object name, file) pairs in parallel with a progress bar.
async fn put_many(
    client: &Client,
    bck: &Bck,
    files: Vec<(String, PathBuf)>,
    conc: usize,
    dry_run: bool,
) -> anyhow::Result<()> {
    if dry_run {
        for (n, f) in &files {
            println!("[dry-run] PUT \"{}\" => {}/{n}", f.display(), bck.cname());
        }
        println!("[dry-run] {} file(s) => {}", files.len(), bck.cname());
        return Ok(());
    }
    let total: u64 = files
        .iter()
        .map(|(_, f)| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
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
    let mut stream = futures::stream::iter(files.into_iter().map(|(name, f)| {
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
    /// Read this many bytes from --offset (a range read).
    #[arg(long)]
    length: Option<u64>,
    /// Start reading at this byte (a range read).
    #[arg(long)]
    offset: Option<u64>,
    /// The object is a shard: get this member of it.
    #[arg(long)]
    archpath: Option<String>,
    /// The object is a shard: get every member matching this, as a tar (see --archmode).
    #[arg(long)]
    archregx: Option<String>,
    /// How --archregx matches: regexp, prefix, suffix, substr, wdskey.
    #[arg(long)]
    archmode: Option<String>,
}

/// `Range` header for --offset/--length.
fn range_header(offset: Option<u64>, length: Option<u64>) -> anyhow::Result<Option<String>> {
    Ok(match (offset, length) {
        (None, None) => None,
        (_, Some(0)) => bail!("--length must be positive"),
        (off, Some(len)) => {
            let o = off.unwrap_or(0);
            Some(format!("bytes={o}-{}", o + len - 1))
        }
        (Some(o), None) => Some(format!("bytes={o}-")),
    })
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
    if a.archpath.is_some() || a.archregx.is_some() {
        if a.offset.is_some() || a.length.is_some() {
            bail!("--offset/--length read a range of an object, not of a shard's member");
        }
        return crate::archive::get(
            client,
            crate::archive::GetArgs::new(a.object, a.out, a.archpath, a.archregx, a.archmode),
        )
        .await;
    }
    let (bck, name) = parse_object(&a.object)?;
    let out = a
        .out
        .unwrap_or_else(|| name.rsplit('/').next().unwrap_or(&name).to_string());
    let range = range_header(a.offset, a.length)?;
    let resp = client
        .get_stream(&bck.name, &name, &[], range.as_deref())
        .await?;
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

/// `ais cp` / `ais bucket cp` / `ais object cp`: a bucket, a selection
/// (`SRC/PREFIX`, `SRC/TEMPLATE`, --list, --template, --prefix) as a job,
/// or one object to a new name (`ais cp ais://A/O ais://B/NEW`).
pub async fn cp(client: &Client, mut a: crate::jobs::SelectArgs) -> anyhow::Result<()> {
    let (sbck, sobj) = Bck::parse_uri(&a.src).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (dbck, dobj) = Bck::parse_uri(&a.dst).map_err(|e| anyhow::anyhow!("{e}"))?;
    if !dobj.is_empty() {
        if sobj.is_empty() {
            bail!(
                "missing source object name: cannot copy from bucket ({}) to object ({}/{dobj})",
                sbck.cname(),
                dbck.cname()
            );
        }
        let tmp = std::env::temp_dir().join(format!(
            ".ais-cp-{}-{}",
            std::process::id(),
            sobj.replace('/', "_")
        ));
        let tmp_s = tmp.to_string_lossy().to_string();
        let resp = client.get_stream(&sbck.name, &sobj, &[], None).await?;
        let res = async {
            let n = save(resp, &tmp_s).await?;
            client.put_file(&dbck.name, &dobj, &tmp).await?;
            anyhow::Ok(n)
        }
        .await;
        let _ = std::fs::remove_file(&tmp);
        let n = res?;
        println!(
            "copied {}/{sobj} => {}/{dobj} ({})",
            sbck.cname(),
            dbck.cname(),
            size_iec(n)
        );
        return Ok(());
    }
    if !sobj.is_empty() {
        if crate::template::is_template(&sobj) {
            a.template = sobj;
        } else if client.head_object(&sbck.name, &sobj).await.is_ok() {
            a.list = sobj;
        } else {
            a.prefix = sobj;
        }
        a.src = sbck.cname();
    }
    crate::jobs::start(client, None, a).await
}

pub async fn cat(client: &Client, object: &str, query: &[(&str, &str)]) -> anyhow::Result<()> {
    let (bck, name) = parse_object(object)?;
    let resp = client.get_stream(&bck.name, &name, query, None).await?;
    save(resp, "-").await?;
    Ok(())
}

/// `ais object promote FILE|DIRECTORY BUCKET[/OBJECT_NAME_or_PREFIX]`.
#[derive(Args, Debug)]
pub struct PromoteArgs {
    /// A file or directory below a target's promote root (absolute path).
    pub src: String,
    /// ais://BUCKET[/OBJECT_NAME or PREFIX/]
    pub dst: String,
    /// Promote subdirectories too.
    #[arg(long, short = 'r')]
    pub recursive: bool,
    /// Overwrite objects that exist (skipped otherwise).
    #[arg(long, short = 'o')]
    pub overwrite_dst: bool,
    /// Delete each source file once it is stored.
    #[arg(long)]
    pub delete_src: bool,
    /// Each target promotes the whole source as it sees it (no file-share
    /// detection).
    #[arg(long)]
    pub not_file_share: bool,
    /// The one target to carry out the whole operation.
    #[arg(long)]
    pub target_id: Option<String>,
    /// Wait for the job.
    #[arg(long)]
    pub wait: bool,
}

pub async fn promote(client: &Client, a: PromoteArgs) -> anyhow::Result<()> {
    let (bck, obj) = Bck::parse_uri(&a.dst).map_err(|e| anyhow::anyhow!("{e}"))?;
    // `ais://b/prefix/` keeps its slash (the prefix of a directory's objects).
    let obj = if a.dst.ends_with('/') && !obj.is_empty() && !obj.ends_with('/') {
        format!("{obj}/")
    } else {
        obj
    };
    let id = client
        .promote(
            &bck.name,
            &a.src,
            &obj,
            a.target_id.as_deref().unwrap_or(""),
            a.recursive,
            a.overwrite_dst,
            a.delete_src,
            a.not_file_share,
        )
        .await?;
    println!("PROMOTE {} => {}[{id}]", a.src, a.dst);
    if a.wait {
        crate::jobs::wait(client, &id, None).await
    } else {
        println!("To monitor the progress, run 'ais show job {id}' or 'ais wait {id}'");
        Ok(())
    }
}
