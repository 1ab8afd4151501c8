//! `ais`: the command-line tool, with AIStore's verbs and output style.
//! Talks to the cluster at `AIS_ENDPOINT` (default http://localhost:8080).

mod auth;
mod cluster;
mod config;
mod etl;
mod fmt;
mod jobs;
mod mpu;
mod objects;
mod perf;
mod props;

use ais_client::Client;
use anyhow::Context as _;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "ais",
    version,
    about = "aistore-rs command-line tool (AIStore-compatible verbs)"
)]
struct Cli {
    /// Cluster endpoint (the proxy URL).
    #[arg(
        long,
        global = true,
        env = "AIS_ENDPOINT",
        default_value = "http://localhost:8080"
    )]
    endpoint: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Show cluster, buckets, ETLs or jobs.
    Show {
        #[command(subcommand)]
        what: ShowCmd,
    },
    /// Create, list and remove buckets.
    Bucket {
        #[command(subcommand)]
        cmd: BucketCmd,
    },
    /// List buckets, or objects in a bucket: `ais ls ais://B --prefix P`.
    Ls(objects::LsArgs),
    /// Upload a file, a directory (-r) or stdin (-) into a bucket.
    Put(objects::PutArgs),
    /// Download an object to a file (default: its base name) or stdout (-).
    Get(objects::GetArgs),
    /// Object commands (cat, ...).
    Object {
        #[command(subcommand)]
        cmd: ObjectCmd,
    },
    /// Multipart upload: `ais mpu create|put-part|complete|abort` (as `ais object mpu`).
    #[command(alias = "multipart-upload")]
    Mpu {
        #[command(subcommand)]
        cmd: mpu::MpuCmd,
    },
    /// Remove objects: `ais rm ais://B/O ...`, or many as one job:
    /// `ais rm ais://B --list a,b`, `--template "shard-{000..999}.tar"`, `--prefix P`.
    #[command(alias = "rmo")]
    Rm(objects::RmArgs),
    /// Initialise, list, run and manage ETL transforms.
    Etl {
        #[command(subcommand)]
        cmd: etl::EtlCmd,
    },
    /// Fetch a remote bucket's objects into the cluster, as a job: every
    /// object, those under --prefix, a --list, or a --template.
    Prefetch(objects::RemoteArgs),
    /// Remove cached copies of a remote bucket's objects (the backend keeps
    /// them): s3://BUCKET/OBJECT, --prefix, --list, --template, or the
    /// whole bucket (it leaves the cluster).
    Evict(objects::RemoteArgs),
    /// Verify every object of a bucket (size, checksum, mirror copies) and
    /// repair what its redundancy allows, as a job.
    Scrub {
        /// ais://BUCKET
        bucket: String,
        /// Wait for the job (progress bar).
        #[arg(long)]
        wait: bool,
    },
    /// Erasure-code a bucket: switch `ec` on with DATA+PARITY slices and code
    /// its existing objects, as a job (objects up to ec.objsize_limit are
    /// replicated to PARITY other targets instead).
    EcEncode {
        /// ais://BUCKET
        bucket: String,
        #[arg(long, short = 'd', default_value_t = 2)]
        data_slices: u32,
        #[arg(long, short = 'p', default_value_t = 2)]
        parity_slices: u32,
        /// Wait for the job (progress bar).
        #[arg(long)]
        wait: bool,
    },
    /// Create shards: `ais archive bucket ais://SRC ais://DST/shard.tar --template "o-{00..99}"`.
    Archive {
        #[command(subcommand)]
        cmd: ArchiveCmd,
    },
    /// Get many objects (or shard members) in one request, as one tar in the
    /// order given (AIStore's Get-Batch).
    Batch(objects::BatchArgs),
    /// Wait for a job to finish (progress bar).
    Wait {
        id: String,
        /// Give up waiting after this long (e.g. 10m).
        #[arg(long, default_value = "")]
        timeout: String,
    },
    /// Stop things: `ais stop job ID`.
    Stop {
        #[command(subcommand)]
        what: StopCmd,
    },
    /// Jobs: `ais job start rebalance|resilver|lru [NODE_ID]`,
    /// `ais job start ec-encode --bucket ais://B`, `ais job stop ID|KIND`,
    /// `ais job show [ID]`, `ais job wait ID`.
    Job {
        #[command(subcommand)]
        cmd: JobCmd,
    },
    /// A node's recent log: `ais log show NODE_ID [--severity warning]`,
    /// `ais log get NODE_ID [FILE]` (a .tar.gz).
    Log {
        #[command(subcommand)]
        cmd: LogCmd,
    },
    /// Cluster membership: maintenance, decommission, shutdown, rebalance.
    Cluster {
        #[command(subcommand)]
        cmd: cluster::ClusterCmd,
    },
    /// Storage: a target's mountpaths (attach, detach, enable, disable).
    Storage {
        #[command(subcommand)]
        cmd: cluster::StorageCmd,
    },
    /// Configure the cluster and its nodes: `ais config cluster|node|reset|show`.
    Config {
        #[command(subcommand)]
        cmd: config::ConfigCmd,
    },
    /// Authentication: login, logout, users, roles, tokens (cluster with AIS_AUTH=1).
    Auth {
        #[command(subcommand)]
        cmd: auth::AuthCmd,
    },
}

#[derive(Subcommand, Debug)]
enum JobCmd {
    /// Start a job by kind (rebalance, resilver, lru, ec-encode).
    Start {
        kind: String,
        /// Only on this target (resilver, lru).
        node_id: Option<String>,
        /// The bucket (ec-encode).
        #[arg(long)]
        bucket: Option<String>,
        /// Wait for the job (progress bar).
        #[arg(long)]
        wait: bool,
    },
    /// Stop a job by id, or every running job of a kind.
    Stop { what: String },
    /// Jobs (all, or one): progress, errors, state.
    Show {
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Wait for a job to finish.
    Wait { id: String },
}

#[derive(Subcommand, Debug)]
enum StopCmd {
    /// Stop a running job on every target.
    Job { id: String },
}

#[derive(Subcommand, Debug)]
enum ShowCmd {
    /// Proxies and targets in the cluster map.
    Cluster {
        #[arg(long)]
        json: bool,
    },
    /// GET/PUT counts and throughput per node (two scrapes of every
    /// node's /metrics, an interval apart).
    Performance {
        /// Seconds between the two scrapes.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        #[arg(long)]
        json: bool,
    },
    /// The newest global rebalance: objects and bytes moved, state, per target.
    Rebalance {
        #[arg(long)]
        json: bool,
    },
    /// A configuration: `ais show config cluster [SECTION]`, `ais show config NODE_ID [SECTION]`.
    Config {
        /// `cluster` or a node id.
        which: String,
        section: Option<String>,
        #[arg(long, short = 'j')]
        json: bool,
    },
    /// Jobs (all, or one): progress, errors, state.
    Job {
        id: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum BucketCmd {
    /// Create one or more buckets.
    Create {
        #[arg(required = true)]
        buckets: Vec<String>,
    },
    /// List buckets.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Destroy buckets and every object in them.
    Rm {
        #[arg(required = true)]
        buckets: Vec<String>,
    },
    /// Copy a bucket (or a selection of it) into another, as a job.
    Cp(jobs::SelectArgs),
    /// Objects, sizes and disk use of one bucket or of every bucket.
    Summary(objects::SummaryArgs),
    /// Rename a bucket: `ais bucket mv ais://OLD ais://NEW` (a job; the old
    /// name takes no writes until it is done).
    Mv {
        from: String,
        to: String,
        /// Wait until the rename is over.
        #[arg(long)]
        wait: bool,
    },
    /// Show or set bucket properties (mirror.*, ec.*, checksum.*, ...).
    Props {
        #[command(subcommand)]
        cmd: PropsCmd,
    },
}

#[derive(Subcommand, Debug)]
enum ArchiveCmd {
    /// Pack objects of a bucket into one shard (.tar, .tgz, .tar.gz, .zip), as a job.
    Bucket {
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
    },
}

#[derive(Subcommand, Debug)]
enum PropsCmd {
    /// Show a bucket's properties.
    Show {
        /// ais://BUCKET
        bucket: String,
        #[arg(long)]
        json: bool,
    },
    /// Set properties: `ais bucket props set ais://b mirror.enabled=true mirror.copies=2`,
    /// `... ec.enabled=true ec.data_slices=2 ec.parity_slices=1` (needs data+parity+1 targets).
    Set {
        /// ais://BUCKET
        bucket: String,
        /// KEY=VALUE pairs (dotted keys for nested properties).
        #[arg(required = true)]
        props: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum LogCmd {
    /// Print a node's recent log.
    Show {
        node_id: String,
        /// info (every line), warning (warnings and errors) or error.
        #[arg(long, default_value = "info")]
        severity: String,
    },
    /// Save a node's recent log as a .tar.gz (default: NODE_ID.log.tar.gz).
    Get {
        node_id: String,
        file: Option<String>,
        #[arg(long, default_value = "info")]
        severity: String,
    },
}

#[derive(Subcommand, Debug)]
enum ObjectCmd {
    /// Print an object's content to stdout.
    Cat { object: String },
    /// Remove objects (as `ais rm`).
    Rm(objects::RmArgs),
    /// Multipart upload: create, put-part, complete, abort.
    #[command(alias = "multipart-upload")]
    Mpu {
        #[command(subcommand)]
        cmd: mpu::MpuCmd,
    },
    /// Rename an object within its bucket: `ais object mv ais://B/OLD NEW`.
    Mv { object: String, new_name: String },
    /// Show an object's properties (size, checksum, version, atime, custom).
    Show {
        object: String,
        #[arg(long)]
        json: bool,
    },
    /// Set custom properties: `ais object set-custom ais://B/O key=value ...`
    /// (or one JSON object); `--overwrite` replaces the ones it has.
    SetCustom {
        object: String,
        #[arg(required = true)]
        props: Vec<String>,
        #[arg(long)]
        overwrite: bool,
    },
}

fn main() {
    // Like other Unix tools, die quietly when the reader goes away (`ais ls | head`).
    // SAFETY: resetting a signal disposition at start-up, before any threads exist.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(cli)) {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = Client::with_token(&cli.endpoint, ais_client::auth::saved_token().as_deref());
    // `s3://B` arguments: the cluster adds a remote bucket on first use (if
    // its backend has it); after that every command addresses it by name.
    if !matches!(
        cli.cmd,
        Cmd::Bucket {
            cmd: BucketCmd::Create { .. }
        }
    ) {
        for arg in std::env::args().skip(1) {
            if let Some(name) = arg
                .strip_prefix("s3://")
                .and_then(|r| r.split('/').next())
                .filter(|n| !n.is_empty())
            {
                client
                    .add_remote_bucket(name, "aws")
                    .await
                    .with_context(|| format!("s3://{name}"))?;
            }
        }
    }
    match cli.cmd {
        Cmd::Prefetch(a) => objects::prefetch_or_evict(&client, a, false).await,
        Cmd::Evict(a) => objects::prefetch_or_evict(&client, a, true).await,
        Cmd::Show { what } => match what {
            ShowCmd::Cluster { json } => fmt::show_cluster(&client, json).await,
            ShowCmd::Performance { interval, json } => {
                perf::show_performance(&client, interval, json).await
            }
            ShowCmd::Job { id, json } => jobs::show(&client, id.as_deref(), json).await,
            ShowCmd::Rebalance { json } => cluster::show_rebalance(&client, json).await,
            ShowCmd::Config {
                which,
                section,
                json,
            } => config::show(&client, &which, section.as_deref(), json).await,
        },
        Cmd::EcEncode {
            bucket,
            data_slices,
            parity_slices,
            wait,
        } => {
            let bck = objects::parse_bucket(&bucket)?;
            let id = client
                .ec_encode(&bck.name, data_slices, parity_slices)
                .await?;
            println!(
                "ec-encode {} ({data_slices} data + {parity_slices} parity slices): job {id}",
                bck.cname()
            );
            if wait {
                jobs::wait(&client, &id, None).await
            } else {
                println!("To monitor the progress, run 'ais show job {id}' or 'ais wait {id}'");
                Ok(())
            }
        }
        Cmd::Batch(a) => objects::batch(&client, a).await,
        Cmd::Archive {
            cmd:
                ArchiveCmd::Bucket {
                    src,
                    dst,
                    list,
                    template,
                    append,
                    include_src_bck,
                    cont_on_err,
                    wait,
                },
        } => {
            let src = objects::parse_bucket(&src)?;
            let (dbck, shard) =
                ais_core::Bck::parse_uri(&dst).map_err(|e| anyhow::anyhow!("{e}"))?;
            if shard.is_empty() {
                anyhow::bail!("{dst}: name the shard, e.g. ais://bucket/shard-000.tar");
            }
            let names: Vec<String> = list
                .map(|l| {
                    l.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            let template = template.unwrap_or_default();
            if names.is_empty() && template.is_empty() {
                anyhow::bail!("name the objects to pack: --list a,b,c or --template 'o-{{0..9}}'");
            }
            let id = client
                .archive(
                    &src.name,
                    &dbck.name,
                    &shard,
                    &names,
                    &template,
                    append,
                    include_src_bck,
                    cont_on_err,
                )
                .await?;
            println!(
                "archive {} -> {}/{shard}: job {id}",
                src.cname(),
                dbck.cname()
            );
            if wait {
                jobs::wait(&client, &id, None).await
            } else {
                println!("To monitor the progress, run 'ais show job {id}' or 'ais wait {id}'");
                Ok(())
            }
        }
        Cmd::Scrub { bucket, wait } => {
            let (bck, _) = ais_core::Bck::parse_uri(&bucket).map_err(|e| anyhow::anyhow!("{e}"))?;
            let id = client.scrub_bucket(&bck.name).await?;
            println!("scrub {}: job {id}", bck.cname());
            if wait {
                jobs::wait(&client, &id, None).await
            } else {
                println!("To monitor the progress, run 'ais show job {id}' or 'ais wait {id}'");
                Ok(())
            }
        }
        Cmd::Wait { id, timeout } => {
            let t = if timeout.is_empty() {
                None
            } else {
                Some(std::time::Duration::from_secs_f64(parse_secs(&timeout)?))
            };
            jobs::wait(&client, &id, t).await
        }
        Cmd::Job { cmd } => match cmd {
            JobCmd::Start {
                kind,
                node_id,
                bucket,
                wait,
            } => {
                jobs::start_kind(&client, &kind, node_id.as_deref(), bucket.as_deref(), wait).await
            }
            JobCmd::Stop { what } => jobs::stop(&client, &what).await,
            JobCmd::Show { id, json } => jobs::show(&client, id.as_deref(), json).await,
            JobCmd::Wait { id } => jobs::wait(&client, &id, None).await,
        },
        Cmd::Stop { what } => match what {
            StopCmd::Job { id } => jobs::stop(&client, &id).await,
        },
        Cmd::Bucket { cmd } => match cmd {
            BucketCmd::Create { buckets } => {
                for b in buckets {
                    let bck = objects::parse_bucket(&b)?;
                    client.create_bucket(&bck.name).await?;
                    println!("\"{}\" created", bck.cname());
                }
                Ok(())
            }
            BucketCmd::Ls { json } => objects::list_buckets(&client, json).await,
            BucketCmd::Cp(a) => jobs::start(&client, None, a).await,
            BucketCmd::Props { cmd } => match cmd {
                PropsCmd::Show { bucket, json } => {
                    props::show(&client, &objects::parse_bucket(&bucket)?.name, json).await
                }
                PropsCmd::Set { bucket, props } => {
                    props::set(&client, &objects::parse_bucket(&bucket)?.name, &props).await
                }
            },
            BucketCmd::Summary(a) => objects::summary(&client, a).await,
            BucketCmd::Mv { from, to, wait } => {
                let (from, to) = (objects::parse_bucket(&from)?, objects::parse_bucket(&to)?);
                let id = client.rename_bucket(&from.name, &to.name).await?;
                println!("renaming {} to {}: job {id}", from.cname(), to.cname());
                if !wait {
                    println!("To monitor the progress, run 'ais show job {id}' or 'ais wait {id}'");
                    return Ok(());
                }
                jobs::wait(&client, &id, None).await?;
                // The old name goes once the job is done.
                for _ in 0..100 {
                    if !client
                        .list_buckets()
                        .await?
                        .iter()
                        .any(|b| b.name == from.name)
                    {
                        println!("{} renamed to {}", from.cname(), to.cname());
                        return Ok(());
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                anyhow::bail!(
                    "job {id} is over but {} still exists: the rename did not complete (see 'ais show job {id}')",
                    from.cname()
                )
            }
            BucketCmd::Rm { buckets } => {
                for b in buckets {
                    let bck = objects::parse_bucket(&b)?;
                    client.destroy_bucket(&bck.name).await?;
                    println!("\"{}\" destroyed", bck.cname());
                }
                Ok(())
            }
        },
        Cmd::Ls(a) => objects::ls(&client, a).await,
        Cmd::Put(a) => objects::put(&client, a).await,
        Cmd::Get(a) => objects::get(&client, a).await,
        Cmd::Object { cmd } => match cmd {
            ObjectCmd::Cat { object } => objects::cat(&client, &object, &[]).await,
            ObjectCmd::Mpu { cmd } => mpu::run(&client, cmd).await,
            ObjectCmd::Rm(a) => objects::rm(&client, a).await,
            ObjectCmd::Show { object, json } => objects::show(&client, &object, json).await,
            ObjectCmd::Mv { object, new_name } => {
                let (bck, name) = objects::parse_object(&object)?;
                // AIStore's form, or a full ais://B/NEW in the same bucket.
                let new = match new_name.split_once("://") {
                    Some(_) => {
                        let (b2, n2) = objects::parse_object(&new_name)?;
                        if b2.name != bck.name {
                            anyhow::bail!("ais object mv renames within a bucket; use 'ais object cp' to copy to another");
                        }
                        n2
                    }
                    None => new_name,
                };
                client.rename_object(&bck.name, &name, &new).await?;
                println!("{}/{name} renamed to {new}", bck.cname());
                Ok(())
            }
            ObjectCmd::SetCustom {
                object,
                props,
                overwrite,
            } => objects::set_custom(&client, &object, &props, overwrite).await,
        },
        Cmd::Rm(a) => objects::rm(&client, a).await,
        Cmd::Mpu { cmd } => mpu::run(&client, cmd).await,
        Cmd::Log { cmd } => match cmd {
            LogCmd::Show { node_id, severity } => {
                let b = client.node_log(&node_id, &severity, false).await?;
                std::io::Write::write_all(&mut std::io::stdout(), &b)?;
                Ok(())
            }
            LogCmd::Get {
                node_id,
                file,
                severity,
            } => {
                let b = client.node_log(&node_id, &severity, true).await?;
                let file = file.unwrap_or_else(|| format!("{node_id}.log.tar.gz"));
                std::fs::write(&file, &b)?;
                println!("{}'s log saved to {file} ({} bytes)", node_id, b.len());
                Ok(())
            }
        },
        Cmd::Etl { cmd } => etl::run(&client, cmd).await,
        Cmd::Auth { cmd } => auth::run(&client, cmd).await,
        Cmd::Config { cmd } => config::run(&client, cmd).await,
        Cmd::Cluster { cmd } => cluster::run(&client, cmd).await,
        Cmd::Storage { cmd } => cluster::storage(&client, cmd).await,
    }
}

/// "90s", "10m", "1h" -> seconds.
fn parse_secs(s: &str) -> anyhow::Result<f64> {
    let (n, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let n: f64 = n
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid duration \"{s}\""))?;
    Ok(n * match unit {
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => anyhow::bail!("invalid duration \"{s}\" (e.g. 90s, 10m, 1h)"),
    })
}
