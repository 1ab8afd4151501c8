//! `ais archive bucket|put|get|ls|gen-shards`: shards (.tar, .tgz,
//! .tar.gz) from objects (a cluster job), from local files (built here and
//! uploaded), their members read back (`archpath`, `archregx`), listed, or
//! generated at random for tests.

use crate::fmt::size_iec;
use crate::objects::{parse_bucket, parse_object};
use crate::template;
use ais_client::Client;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct BucketArgs {
    /// ais://SRC
    src: String,
    /// ais://DST/SHARD.tar
    dst: String,
    /// Comma-separated object names.
    #[arg(long, conflicts_with = "template")]
    list: Option<String>,
    /// Name template, e.g. "o-{000..099}.jpg".
    #[arg(long)]
    template: Option<String>,
    /// Add to an existing shard instead of replacing it.
    #[arg(long)]
    append: bool,
    /// Name members SRC/OBJECT instead of OBJECT.
    #[arg(long)]
    include_src_bck: bool,
    /// Skip missing objects instead of failing.
    #[arg(long)]
    cont_on_err: bool,
    /// Wait for the job (progress bar).
    #[arg(long)]
    wait: bool,
}

/// `ais archive bucket ais://SRC ais://DST/SHARD.tar --list|--template`.
pub async fn bucket(client: &Client, a: BucketArgs) -> Result<()> {
    let src = parse_bucket(&a.src)?;
    let (dbck, shard) = ais_core::Bck::parse_uri(&a.dst).map_err(|e| anyhow::anyhow!("{e}"))?;
    if shard.is_empty() {
        bail!("{}: name the shard, e.g. ais://bucket/shard-000.tar", a.dst);
    }
    let names: Vec<String> = a
        .list
        .map(|l| {
            l.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let tmpl = a.template.unwrap_or_default();
    if names.is_empty() && tmpl.is_empty() {
        bail!("name the objects to pack: --list a,b,c or --template 'o-{{0..9}}'");
    }
    let id = client
        .archive(
            &src.name,
            &dbck.name,
            &shard,
            &names,
            &tmpl,
            a.append,
            a.include_src_bck,
            a.cont_on_err,
        )
        .await?;
    println!(
        "archive {} -> {}/{shard}: job {id}",
        src.cname(),
        dbck.cname()
    );
    if a.wait {
        crate::jobs::wait(client, &id, None).await
    } else {
        println!("To monitor the progress, run 'ais show job {id}' or 'ais wait {id}'");
        Ok(())
    }
}

/// The formats this tool writes and reads locally.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Fmt {
    Tar,
    Tgz,
}

fn format_of(name: &str) -> Result<Fmt> {
    if name.ends_with(".tar") {
        Ok(Fmt::Tar)
    } else if name.ends_with(".tgz") || name.ends_with(".tar.gz") {
        Ok(Fmt::Tgz)
    } else {
        bail!("\"{name}\": this CLI writes and extracts .tar, .tgz and .tar.gz shards (the cluster reads .zip and .tar.lz4 members too: 'ais archive get --archpath')")
    }
}

/// Extensions that end a shard's name inside an object path.
const SHARD_EXTS: &[&str] = &[".tar.gz", ".tar.lz4", ".tgz", ".tar", ".zip"];

/// `SHARD.tar/member` -> (`SHARD.tar`, `member`).
fn split_implied_archpath(obj: &str) -> (String, Option<String>) {
    for (i, _) in obj.match_indices('/') {
        let head = &obj[..i];
        if SHARD_EXTS.iter().any(|e| head.ends_with(e)) && i + 1 < obj.len() {
            return (head.to_string(), Some(obj[i + 1..].to_string()));
        }
    }
    (obj.to_string(), None)
}

struct Member {
    name: String,
    data: Vec<u8>,
}

fn read_members(bytes: &[u8], fmt: Fmt) -> Result<Vec<Member>> {
    let raw: Vec<u8> = match fmt {
        Fmt::Tar => bytes.to_vec(),
        Fmt::Tgz => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .context("not a gzip stream")?;
            out
        }
    };
    let mut ar = tar::Archive::new(raw.as_slice());
    let mut out = Vec::new();
    for e in ar.entries().context("not a tar archive")? {
        let mut e = e?;
        if !e.header().entry_type().is_file() {
            continue;
        }
        let name = e.path()?.to_string_lossy().to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data)?;
        out.push(Member { name, data });
    }
    Ok(out)
}

fn write_members(members: &[Member], fmt: Fmt) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for m in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(m.data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, &m.name, m.data.as_slice())
            .with_context(|| format!("cannot archive \"{}\"", m.name))?;
    }
    let tar = b.into_inner()?;
    Ok(match fmt {
        Fmt::Tar => tar,
        Fmt::Tgz => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut gz, &tar)?;
            gz.finish()?
        }
    })
}

#[derive(Args, Debug)]
pub struct PutArgs {
    /// FILE, DIRECTORY (with -r for subdirectories), a name template
    /// ("f-{0..9}.txt"), a shell pattern ("docs/*.md"), or "a,b,c"; leave
    /// out with --list/--template.
    #[arg(num_args = 1..=2, required = true)]
    args: Vec<String>,
    /// Name of the (single) file inside the shard, or a prefix for many (ending in '/').
    #[arg(long)]
    archpath: Option<String>,
    /// Add to the shard, which must exist.
    #[arg(long, conflicts_with = "append_or_put")]
    append: bool,
    /// Add to the shard if it exists, create it otherwise.
    #[arg(long)]
    append_or_put: bool,
    /// Recurse into subdirectories.
    #[arg(short, long)]
    recursive: bool,
    /// Prefix member names with the source directory's name.
    #[arg(long)]
    include_src_dir: bool,
    /// Comma-separated files.
    #[arg(long)]
    list: Option<String>,
    /// A template of file names, e.g. "/data/f-{000..099}.bin".
    #[arg(long)]
    template: Option<String>,
    /// Show what would be archived; upload nothing.
    #[arg(long)]
    dry_run: bool,
    /// Assume yes (there are no questions here).
    #[arg(short = 'y', long)]
    yes: bool,
}

/// (member name, local file) pairs a source selection stands for.
pub fn collect_sources(
    src: Option<&str>,
    list: Option<&str>,
    tmpl: Option<&str>,
    recursive: bool,
    include_src_dir: bool,
) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let add_path = |p: &Path, out: &mut Vec<(String, PathBuf)>| -> Result<()> {
        let md =
            std::fs::metadata(p).with_context(|| format!("cannot read \"{}\"", p.display()))?;
        if md.is_dir() {
            let root = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let mut files = Vec::new();
            walk(p, recursive, &mut files)?;
            for f in files {
                let rel = f
                    .strip_prefix(p)
                    .unwrap_or(&f)
                    .to_string_lossy()
                    .to_string();
                let name = if include_src_dir && !root.is_empty() {
                    format!("{root}/{rel}")
                } else {
                    rel
                };
                out.push((name, f));
            }
        } else {
            let base = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .context("a source file has no name")?;
            out.push((base, p.to_path_buf()));
        }
        Ok(())
    };
    let tilde = |s: &str| -> PathBuf {
        match s.strip_prefix("~/") {
            Some(rest) => PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(rest),
            None => PathBuf::from(s),
        }
    };
    let mut sources: Vec<String> = Vec::new();
    if let Some(l) = list {
        sources.extend(
            l.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
    }
    if let Some(t) = tmpl {
        sources.extend(template::expand(t)?);
    }
    if let Some(s) = src {
        if template::is_template(s) {
            sources.extend(template::expand(s)?);
        } else if s.contains(',') {
            sources.extend(
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
        } else if s.contains('*') || s.contains('?') {
            let p = tilde(s);
            let dir = p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let pat = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let mut hits: Vec<PathBuf> = std::fs::read_dir(dir)
                .with_context(|| format!("read {}", dir.display()))?
                .filter_map(|e| e.ok())
                .filter(|e| template::glob_match(&pat, &e.file_name().to_string_lossy()))
                .map(|e| e.path())
                .collect();
            hits.sort();
            if hits.is_empty() {
                bail!("no files match \"{s}\"");
            }
            sources.extend(hits.iter().map(|h| h.to_string_lossy().to_string()));
        } else {
            sources.push(s.to_string());
        }
    }
    for s in &sources {
        add_path(&tilde(s), &mut out)?;
    }
    if out.is_empty() {
        bail!("no files to upload");
    }
    Ok(out)
}

fn walk(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .collect::<std::result::Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let ft = e.file_type()?;
        if ft.is_dir() {
            if recursive {
                walk(&e.path(), recursive, out)?;
            }
        } else if ft.is_file() {
            out.push(e.path());
        }
    }
    Ok(())
}

/// `ais archive put SRC ais://B/SHARD.tar [--append] [--archpath NAME]`.
pub async fn put(client: &Client, a: PutArgs) -> Result<()> {
    let (src, dst) = match a.args.as_slice() {
        [dst] if a.list.is_some() || a.template.is_some() => (None, dst.clone()),
        [src, dst] => (Some(src.clone()), dst.clone()),
        _ => bail!("usage: ais archive put FILE|DIRECTORY ais://BUCKET/SHARD.tar (or --list/--template with the shard only)"),
    };
    let (bck, shard) = parse_object(&dst)?;
    let fmt = format_of(&shard)?;
    let mut files = collect_sources(
        src.as_deref(),
        a.list.as_deref(),
        a.template.as_deref(),
        a.recursive,
        a.include_src_dir,
    )?;
    if let Some(ap) = &a.archpath {
        if files.len() == 1 && !ap.ends_with('/') {
            files[0].0 = ap.clone();
        } else {
            let prefix = if ap.ends_with('/') {
                ap.clone()
            } else {
                format!("{ap}/")
            };
            for f in &mut files {
                f.0 = format!("{prefix}{}", f.0);
            }
        }
    }
    if a.dry_run {
        for (name, f) in &files {
            println!(
                "[dry-run] \"{}\" => {}/{shard}/{name}",
                f.display(),
                bck.cname()
            );
        }
        return Ok(());
    }
    let mut members = Vec::new();
    let mut appended = false;
    if a.append || a.append_or_put {
        match client.get(&bck.name, &shard).await {
            Ok(bytes) => {
                members = read_members(&bytes, fmt)
                    .with_context(|| format!("{}/{shard}", bck.cname()))?;
                appended = true;
            }
            Err(e) if e.status() == Some(404) && a.append_or_put => {}
            Err(e) if e.status() == Some(404) => {
                bail!("{}/{shard} does not exist: --append needs an existing shard (or use --append-or-put)", bck.cname())
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut total = 0u64;
    for (name, f) in &files {
        let data = std::fs::read(f).with_context(|| format!("read {}", f.display()))?;
        total += data.len() as u64;
        // A member given again replaces the old one (as a new version would).
        members.retain(|m| &m.name != name);
        members.push(Member {
            name: name.clone(),
            data,
        });
    }
    let body = write_members(&members, fmt)?;
    client.put_bytes(&bck.name, &shard, body).await?;
    println!(
        "{} {} file(s) ({}) => {}/{shard}",
        if appended { "APPEND" } else { "ARCHIVE" },
        files.len(),
        size_iec(total),
        bck.cname()
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// ais://BUCKET/SHARD (or ais://BUCKET/SHARD.tar/MEMBER: --archpath implied).
    shard: String,
    /// Output file (one member), directory (the whole shard, extracted), or - for stdout.
    out: Option<String>,
    /// The member to get.
    #[arg(long)]
    archpath: Option<String>,
    /// Every member matching this (see --archmode), as one tar.
    #[arg(long)]
    archregx: Option<String>,
    /// How --archregx matches: regexp, prefix, suffix, substr, wdskey.
    #[arg(long)]
    archmode: Option<String>,
}

impl GetArgs {
    pub fn new(
        shard: String,
        out: Option<String>,
        archpath: Option<String>,
        archregx: Option<String>,
        archmode: Option<String>,
    ) -> Self {
        GetArgs {
            shard,
            out,
            archpath,
            archregx,
            archmode,
        }
    }
}

/// `ais archive get` (and `ais get --archpath`).
pub async fn get(client: &Client, a: GetArgs) -> Result<()> {
    let (bck, obj) = parse_object(&a.shard)?;
    let (shard, implied) = split_implied_archpath(&obj);
    let archpath = a.archpath.or(implied);
    if let Some(m) = &archpath {
        let out = a
            .out
            .unwrap_or_else(|| m.rsplit('/').next().unwrap_or(m).to_string());
        let resp = client
            .get_stream(&bck.name, &shard, &[("archpath", m.as_str())], None)
            .await?;
        let n = crate::objects::save(resp, &out).await?;
        if out != "-" {
            println!(
                "GET {m} from {}/{shard} as \"{out}\" ({})",
                bck.cname(),
                size_iec(n)
            );
        }
        return Ok(());
    }
    if let Some(rx) = &a.archregx {
        let out = a.out.context("name the output tar (or -) for --archregx")?;
        let mode = a.archmode.clone().unwrap_or_else(|| "regexp".into());
        let resp = client
            .get_stream(
                &bck.name,
                &shard,
                &[("archregx", rx.as_str()), ("archmode", mode.as_str())],
                None,
            )
            .await?;
        let n = crate::objects::save(resp, &out).await?;
        if out != "-" {
            println!(
                "GET members matching \"{rx}\" ({mode}) from {}/{shard} as \"{out}\" ({})",
                bck.cname(),
                size_iec(n)
            );
        }
        return Ok(());
    }
    // The whole shard, extracted into a directory.
    let fmt = format_of(&shard)?;
    let dir = a.out.unwrap_or_else(|| {
        let base = shard.rsplit('/').next().unwrap_or(&shard);
        SHARD_EXTS
            .iter()
            .find_map(|e| base.strip_suffix(e))
            .unwrap_or(base)
            .to_string()
    });
    let bytes = client.get(&bck.name, &shard).await?;
    let members = read_members(&bytes, fmt).with_context(|| format!("{}/{shard}", bck.cname()))?;
    let root = PathBuf::from(&dir);
    for m in &members {
        let rel = Path::new(&m.name);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            bail!("shard member \"{}\" escapes the output directory", m.name);
        }
        let p = root.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, &m.data).with_context(|| format!("write {}", p.display()))?;
    }
    println!(
        "GET {}/{shard}: {} file(s) extracted to \"{dir}\"",
        bck.cname(),
        members.len()
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct GenShardsArgs {
    /// "ais://BUCKET/shard-{000..099}.tar" (.tar, .tgz or .tar.gz).
    template: String,
    /// Files per shard.
    #[arg(long, default_value_t = 5)]
    fcount: usize,
    /// Size of each file (e.g. 1024, 4k, 1MiB).
    #[arg(long, default_value = "1024")]
    fsize: String,
    /// Comma-separated extensions: each file is written once per extension.
    #[arg(long, default_value = ".test")]
    fext: String,
    /// Shards written at once.
    #[arg(long, default_value_t = 10)]
    num_workers: usize,
    /// Destroy and re-create the bucket first.
    #[arg(long)]
    cleanup: bool,
}

/// `1024`, `4k`, `4KiB`, `1mb`, `1MiB` -> bytes.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim().to_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size \"{s}\""))?;
    let mult: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => bail!("invalid size \"{s}\" (e.g. 1024, 4k, 1MiB)"),
    };
    Ok(n * mult)
}

/// A small non-cryptographic generator: test content only.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// `ais archive gen-shards "ais://B/shard-{0..9}.tar" --fcount N --fsize S`.
pub async fn gen_shards(client: &Client, a: GenShardsArgs) -> Result<()> {
    use futures::StreamExt;
    let (bck, tmpl) = ais_core::Bck::parse_uri(&a.template).map_err(|e| anyhow::anyhow!("{e}"))?;
    if tmpl.is_empty() {
        bail!("expected \"BUCKET/TEMPLATE.EXT\", e.g. \"ais://b/shard-{{000..099}}.tar\"");
    }
    let names = template::expand(&tmpl)?;
    let fmt = format_of(&tmpl)?;
    let fsize = parse_size(&a.fsize)? as usize;
    let exts: Vec<String> = a
        .fext
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            if e.starts_with('.') {
                e.to_string()
            } else {
                format!(".{e}")
            }
        })
        .collect();
    if exts.is_empty() || a.fcount == 0 {
        bail!("--fcount and --fext must name at least one file");
    }
    if a.cleanup {
        let _ = client.destroy_bucket(&bck.name).await;
    }
    if client.head_bucket(&bck.name).await.is_err() {
        client.create_bucket(&bck.name).await?;
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    let count = names.len();
    let fcount = a.fcount;
    let mut done = futures::stream::iter(names.into_iter().enumerate().map(|(i, name)| {
        let client = client.clone();
        let bucket = bck.name.clone();
        let exts = exts.clone();
        async move {
            let mut rng =
                Rng(seed.wrapping_add((i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
            let mut members = Vec::new();
            for _ in 0..fcount {
                let base = format!("{:016x}", rng.next());
                for e in &exts {
                    let mut data = vec![0u8; fsize];
                    rng.fill(&mut data);
                    members.push(Member {
                        name: format!("{base}{e}"),
                        data,
                    });
                }
            }
            let body = write_members(&members, fmt)?;
            client.put_bytes(&bucket, &name, body).await?;
            anyhow::Ok(())
        }
    }))
    .buffer_unordered(a.num_workers.max(1));
    let mut errors = 0;
    while let Some(r) = done.next().await {
        if let Err(e) = r {
            errors += 1;
            eprintln!("{e:#}");
        }
    }
    if errors > 0 {
        bail!("{errors} of {count} shards failed");
    }
    println!(
        "Shards created: {count} in {} ({} file(s) of {} each)",
        bck.cname(),
        a.fcount * exts.len(),
        size_iec(fsize as u64)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archpath_implied_by_a_path_inside_a_shard() {
        assert_eq!(
            split_implied_archpath("d/s-1.tar/a/b.jpg"),
            ("d/s-1.tar".into(), Some("a/b.jpg".into()))
        );
        assert_eq!(
            split_implied_archpath("s.tar.gz/x"),
            ("s.tar.gz".into(), Some("x".into()))
        );
        assert_eq!(
            split_implied_archpath("plain/obj"),
            ("plain/obj".into(), None)
        );
    }

    #[test]
    fn members_round_trip() {
        for fmt in [Fmt::Tar, Fmt::Tgz] {
            let m = vec![Member {
                name: "a/b.txt".into(),
                data: b"hello".to_vec(),
            }];
            let back = read_members(&write_members(&m, fmt).unwrap(), fmt).unwrap();
            assert_eq!(back.len(), 1);
            assert_eq!(back[0].name, "a/b.txt");
            assert_eq!(back[0].data, b"hello");
        }
        assert_eq!(parse_size("4k").unwrap(), 4096);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert!(parse_size("x").is_err());
    }
}
