//! `ais`: the command-line tool, with AIStore's verbs and output style.
//! Talks to the cluster at `AIS_ENDPOINT` (default http://localhost:8080).

mod archive;
mod auth;
mod cluster;
mod config;
mod download;
mod dsort;
mod etl;
mod fmt;
mod jobs;
mod mpu;
mod nbi;
mod objects;
mod parity;
mod perf;
mod props;
mod template;
mod views;

use ais_client::Client;
use anyhow::Context as _;
use clap::{CommandFactory, Parser, Subcommand};

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
    /// Show cluster, buckets, objects, storage, performance, configuration, jobs, logs.
    Show {
        #[command(subcommand)]
        what: ShowCmd,
    },
    /// Create, list and remove buckets.
    Bucket {
        #[command(subcommand)]
        cmd: BucketCmd,
    },
    /// List buckets, or objects in a bucket: `ais ls ais://B --prefix P` (as `ais bucket ls`).
    Ls(objects::LsArgs),
    /// Upload a file, a directory (-r), a template or list of files, or stdin (-) (as `ais object put`).
    Put(objects::PutArgs),
    /// Download an object (or a range, or a shard's member) to a file or stdout (-) (as `ais object get`).
    Get(objects::GetArgs),
    /// Object commands: get, put, cp, mv, rm, cat, show, concat, set-custom, mpu, ...
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
    /// Native bucket inventories of remote buckets: create (a snapshot of
    /// the names, for fast listing with `ais ls s3://B --inventory`), show, rm.
    Nbi {
        #[command(subcommand)]
        cmd: nbi::NbiCmd,
    },
    /// Remove objects: `ais rm ais://B/O ...`, or many as one job:
    /// `ais rm ais://B --list a,b`, `--template "shard-{000..999}.tar"`, `--prefix P`
    /// (AIStore's `ais rmo`, as `ais object rm`).
    #[command(visible_alias = "rmo")]
    Rm(objects::RmArgs),
    /// Create buckets (as `ais bucket create`).
    Create {
        #[arg(required = true)]
        buckets: Vec<String>,
    },
    /// Copy a bucket, a selection of it, or one object (as `ais bucket cp`).
    Cp(jobs::SelectArgs),
    /// Destroy buckets and every object in them (as `ais bucket rm`).
    Rmb {
        #[arg(required = true)]
        buckets: Vec<String>,
    },
    /// Start a job: `ais start rebalance|resilver|lru [NODE_ID]`,
    /// `ais start ec-encode ais://B -d 2 -p 2` (as `ais job start`).
    Start(jobs::StartArgs),
    /// Fetch one large object of a remote bucket into the cluster in
    /// parallel ranges: `ais blob-download s3://B/O [--chunk-size N]
    /// [--num-workers N] [--latest] [--wait]`.
    BlobDownload(jobs::BlobArgs),
    /// Distributed shuffle / re-shard of shards: `ais dsort [SRC_BUCKET]
    /// [DST_BUCKET] -f SPEC.json|SPEC.yaml|-` (as `ais start dsort`).
    Dsort(dsort::DsortArgs),
    /// Download HTTP(S) links into a bucket: `ais download URL ais://B[/NAME]`,
    /// a range `ais download "http://h/d/shard-{000..099}.tar" ais://B/SUBDIR/`,
    /// or a list `--object-list FILE` (as `ais start download`).
    Download(download::DownloadArgs),
    /// Remove leftovers on every target, or one (as `ais storage cleanup`).
    SpaceCleanup {
        target_id: Option<String>,
        #[arg(long)]
        wait: bool,
    },
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
    /// Check buckets (read-only): objects, sizes, missing copies, small and
    /// large objects (as `ais storage validate`); `--repair`: aistore-rs's
    /// scrub job, which verifies every object and repairs what redundancy allows.
    Scrub(views::ScrubArgs),
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
    /// Shards: `ais archive bucket|put|get|ls|gen-shards`.
    Archive {
        #[command(subcommand)]
        cmd: ArchiveCmd,
    },
    /// Get many objects (or shard members) in one request, as one tar in the
    /// order given (AIStore's Get-Batch; as `ais ml get-batch`).
    Batch(objects::BatchArgs),
    /// Machine-learning operations: `ais ml get-batch` (Get-Batch).
    Ml {
        #[command(subcommand)]
        cmd: MlCmd,
    },
    /// Wait for a job to finish (progress bar) (as `ais job wait`).
    Wait {
        id: String,
        /// Give up waiting after this long (e.g. 10m).
        #[arg(long, default_value = "")]
        timeout: String,
    },
    /// Stop jobs: `ais stop JOB_ID`, `ais stop KIND`, `ais stop job JOB_ID`,
    /// `ais stop --all` (as `ais job stop`).
    Stop(jobs::StopArgs),
    /// Jobs: `ais job start rebalance|resilver|lru [NODE_ID]`,
    /// `ais job start ec-encode ais://B`, `ais job stop ID|KIND`,
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
    /// Cluster membership: maintenance, decommission, shutdown, rebalance, logs.
    Cluster {
        #[command(subcommand)]
        cmd: cluster::ClusterCmd,
    },
    /// Storage: capacity, bucket summaries, validation, mountpaths, resilver.
    Storage {
        #[command(subcommand)]
        cmd: cluster::StorageCmd,
    },
    /// Performance: counters, throughput, latency, capacity (as `ais show performance`).
    Performance {
        #[command(subcommand)]
        view: Option<views::PerfView>,
    },
    /// Configure the cluster and its nodes: `ais config cluster|node|reset|show`.
    Config {
        #[command(subcommand)]
        cmd: config::ConfigCmd,
    },
    /// Authentication: login, logout, whoami, users, roles, tokens (cluster with AIS_AUTH=1).
    Auth {
        #[command(subcommand)]
        cmd: auth::AuthCmd,
    },
    /// Top-level aliases: show (built-in and yours), set, rm, reset.
    Alias {
        #[command(subcommand)]
        cmd: Option<parity::AliasCmd>,
    },
    /// Search the commands: `ais search bucket copy` (every word must match).
    Search {
        #[arg(required = true)]
        keywords: Vec<String>,
    },
    /// Shell completion script: `source <(ais completion bash)`.
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand, Debug)]
enum MlCmd {
    /// Get many objects (or shard members) in one request, as one tar.
    GetBatch(objects::BatchArgs),
}

#[derive(Subcommand, Debug)]
enum JobCmd {
    /// Start a job by kind (rebalance, resilver, lru, ec-encode).
    Start(jobs::StartArgs),
    /// Stop a job by id, every running job of a kind, or --all.
    Stop(jobs::StopArgs),
    /// Remove finished jobs from the cluster's records: `ais job rm [KIND] JOB_ID`,
    /// `--all [KIND]`, `--regex REGEX`.
    Rm(jobs::RmArgs),
    /// Jobs (all, or one): progress, errors, state.
    Show {
        id: Option<String>,
        /// With a kind first (`ais job show dsort ID`): the job id.
        id2: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Wait for a job to finish.
    Wait {
        id: String,
        /// Give up waiting after this long (e.g. 10m).
        #[arg(long, default_value = "")]
        timeout: String,
    },
}

#[derive(Subcommand, Debug)]
enum ShowCmd {
    /// Proxies and targets in the cluster map; `smap`, `bmd`, `config`,
    /// `stats`, `cpu`, `memory` for parts of it.
    Cluster {
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        view: Option<ShowClusterCmd>,
    },
    /// GET/PUT counts and throughput per node (two scrapes of every
    /// node's /metrics, an interval apart); or one view: counters,
    /// throughput, latency, capacity.
    Performance {
        /// Seconds between the two scrapes.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        view: Option<views::PerfView>,
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
    /// Jobs (all, or one): progress, errors, state; `dsort [ID]` for dSort.
    Job {
        id: Option<String>,
        /// With a kind first (`ais show job dsort ID`): the job id.
        id2: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Users, roles, clusters (as `ais auth show`).
    Auth {
        #[command(subcommand)]
        what: auth::ShowCmd,
    },
    /// An object's properties (as `ais object show`).
    Object {
        object: String,
        #[arg(long)]
        json: bool,
    },
    /// A bucket's properties (as `ais bucket props show`).
    Bucket {
        bucket: String,
        #[arg(long)]
        json: bool,
    },
    /// Storage: capacity per target and mountpath; `mountpath`, `capacity`, `summary`.
    Storage {
        target_id: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        view: Option<ShowStorageCmd>,
    },
    /// The cluster, its throughput and its jobs at a glance.
    Dashboard,
    /// Native bucket inventories (as `ais nbi show`).
    Nbi(nbi::ShowArgs),
    /// Attached remote AIS clusters (none can be attached to aistore-rs).
    RemoteCluster {
        #[arg(long)]
        json: bool,
    },
    /// A node's recent log (as `ais log show`).
    Log {
        node_id: String,
        #[arg(long, default_value = "info")]
        severity: String,
    },
    /// ETLs (as `ais etl show`).
    Etl {
        name: Option<String>,
        job: Option<String>,
        job2: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum ShowClusterCmd {
    /// The cluster map (Smap).
    Smap {
        #[arg(long)]
        json: bool,
    },
    /// The bucket metadata (BMD).
    Bmd {
        #[arg(long)]
        json: bool,
    },
    /// The cluster's configuration (as `ais show config cluster`).
    Config {
        section: Option<String>,
        #[arg(long, short = 'j')]
        json: bool,
    },
    /// Per-node counters (as `ais performance counters`).
    Stats(views::PerfArgs),
    /// Per-node CPUs and load.
    Cpu {
        #[arg(long)]
        json: bool,
    },
    /// Per-node memory.
    Memory {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum ShowStorageCmd {
    /// Every target's mountpaths.
    Mountpath {
        #[arg(long)]
        json: bool,
    },
    /// Capacity per target and mountpath.
    Capacity(views::PerfArgs),
    /// Objects, sizes and disk use per bucket (as `ais bucket summary`).
    Summary(objects::SummaryArgs),
}

#[derive(Subcommand, Debug)]
enum BucketCmd {
    /// Create one or more buckets.
    Create {
        #[arg(required = true)]
        buckets: Vec<String>,
    },
    /// List buckets, or a bucket's objects (as `ais ls`).
    Ls(objects::LsArgs),
    /// Destroy buckets and every object in them.
    Rm {
        #[arg(required = true)]
        buckets: Vec<String>,
    },
    /// Copy a bucket, a selection of it, or one object into another, as a job.
    Cp(jobs::SelectArgs),
    /// Objects, sizes and disk use of one bucket or of every bucket.
    Summary(objects::SummaryArgs),
    /// Read-only check of a bucket's objects (as `ais scrub`).
    Validate(views::ScrubArgs),
    /// Remove cached copies of a remote bucket's objects (as `ais evict`).
    Evict(objects::RemoteArgs),
    /// Fetch a remote bucket's objects (as `ais prefetch`).
    Prefetch(objects::RemoteArgs),
    /// A bucket's properties (as `ais bucket props show`).
    Show {
        bucket: String,
        #[arg(long)]
        json: bool,
    },
    /// Pack objects into a shard (as `ais archive bucket`).
    Archive(archive::BucketArgs),
    /// Transform a bucket into another with an ETL (as `ais etl bucket`).
    Etl {
        /// ETL name.
        name: String,
        #[command(flatten)]
        sel: jobs::SelectArgs,
    },
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
    Bucket(archive::BucketArgs),
    /// Pack local files into a shard (.tar, .tgz, .tar.gz) and upload it;
    /// --append adds to an existing one.
    Put(archive::PutArgs),
    /// A shard's member (--archpath, or SHARD.tar/MEMBER), its members
    /// matching --archregx (as a tar), or the whole shard extracted.
    Get(archive::GetArgs),
    /// Objects with their archived members (as `ais ls --archive`).
    Ls {
        /// ais://BUCKET[/SHARD]
        uri: String,
    },
    /// Generate shards of random files: `ais archive gen-shards "ais://B/s-{0..9}.tar"`.
    GenShards(archive::GenShardsArgs),
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
    /// `... ec.enabled=true ec.data_slices=2 ec.parity_slices=1` (needs data+parity+1 targets),
    /// `KEY VALUE` pairs, or one JSON object: `ais bucket props set ais://b '{"mirror": {"enabled": true}}'`.
    Set {
        /// ais://BUCKET
        bucket: String,
        /// KEY=VALUE (or KEY VALUE) pairs, dotted keys for nested properties; or one JSON object.
        #[arg(required = true)]
        props: Vec<String>,
    },
    /// Reset a bucket's properties to the cluster's defaults (`ais config
    /// cluster mirror|ec|checksum|versioning`).
    Reset {
        /// ais://BUCKET
        bucket: String,
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
    /// PROMOTE files and directories under the targets' promote roots
    /// (AIS_PROMOTE_ROOTS, default /var/lib/ais/promote) into a bucket:
    /// `ais object promote /var/lib/ais/promote/dir ais://b/prefix/ -r`.
    /// Symbolic links are not promoted.
    Promote(objects::PromoteArgs),
    /// Download an object (as `ais get`).
    Get(objects::GetArgs),
    /// List objects (as `ais ls`).
    Ls(objects::LsArgs),
    /// Upload files or stdin (as `ais put`).
    Put(objects::PutArgs),
    /// Copy one object (`ais object cp ais://A/O ais://B/NEW`), or objects
    /// by name or prefix into another bucket (as `ais cp`).
    Cp(jobs::SelectArgs),
    /// Pack objects into a shard (as `ais archive bucket`).
    Archive(archive::BucketArgs),
    /// Transform one object with an ETL (as `ais etl object`).
    Etl(etl::ObjectArgs),
    /// Append files, in order, to one object (created if absent):
    /// `ais object concat a.txt dir/ ais://B/ALL`.
    Concat {
        /// FILE|DIRECTORY ... then ais://BUCKET/OBJECT.
        #[arg(num_args = 2.., required = true)]
        args: Vec<String>,
        /// Recurse into directories.
        #[arg(short, long)]
        recursive: bool,
    },
    /// Fetch remote objects into the cluster (as `ais prefetch`).
    Prefetch(objects::RemoteArgs),
    /// Remove cached copies of remote objects (as `ais evict`).
    Evict(objects::RemoteArgs),
    /// Print an object's content to stdout.
    Cat { object: String },
    /// Remove objects (as `ais rm`).
    Rm(objects::RmArgs),
    /// Multipart upload: create, put-part, complete, abort.
    #[command(name = "multipart-upload", alias = "mpu")]
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
        #[arg(long, visible_alias = "set-new-custom")]
        overwrite: bool,
    },
}

fn main() {
    // Like other Unix tools, die quietly when the reader goes away (`ais ls | head`).
    // SAFETY: resetting a signal disposition at start-up, before any threads exist.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = parity::expand_alias(std::env::args().collect());
    if let Some((path, why)) = parity::unsupported(&args[1..]) {
        eprintln!("Error: \"ais {path}\" is not supported by aistore-rs: {why}");
        std::process::exit(1);
    }
    let cli = Cli::parse_from(args);
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
    // `s3://B` (`gs://B`, `az://B`) arguments: the cluster adds a remote bucket on first use (if
    // its backend has it); after that every command addresses it by name.
    if !matches!(
        cli.cmd,
        Cmd::Bucket {
            cmd: BucketCmd::Create { .. }
        }
    ) {
        for arg in std::env::args().skip(1) {
            for (scheme, provider) in [("s3://", "aws"), ("gs://", "gcp"), ("az://", "azure")] {
                if let Some(name) = arg
                    .strip_prefix(scheme)
                    .and_then(|r| r.split('/').next())
                    .filter(|n| !n.is_empty())
                {
                    client
                        .add_remote_bucket(name, provider)
                        .await
                        .with_context(|| format!("{scheme}{name}"))?;
                }
            }
        }
    }
    match cli.cmd {
        Cmd::Prefetch(a) => objects::prefetch_or_evict(&client, a, false).await,
        Cmd::Evict(a) => objects::prefetch_or_evict(&client, a, true).await,
        Cmd::Show { what } => show(&client, what).await,
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
        Cmd::Batch(a)
        | Cmd::Ml {
            cmd: MlCmd::GetBatch(a),
        } => objects::batch(&client, a).await,
        Cmd::Archive { cmd } => match cmd {
            ArchiveCmd::Bucket(a) => archive::bucket(&client, a).await,
            ArchiveCmd::Put(a) => archive::put(&client, a).await,
            ArchiveCmd::Get(a) => archive::get(&client, a).await,
            ArchiveCmd::Ls { uri } => objects::ls(&client, objects::LsArgs::for_archive(uri)).await,
            ArchiveCmd::GenShards(a) => archive::gen_shards(&client, a).await,
        },
        Cmd::Scrub(a) => views::scrub(&client, a).await,
        Cmd::Wait { id, timeout } => wait(&client, &id, &timeout).await,
        Cmd::Job { cmd } => match cmd {
            JobCmd::Start(a) => jobs::start_cmd(&client, a).await,
            JobCmd::Stop(a) => jobs::stop_cmd(&client, a).await,
            JobCmd::Rm(a) => jobs::rm_cmd(&client, a).await,
            JobCmd::Show { id, id2, json } => {
                jobs::show(&client, id.as_deref(), id2.as_deref(), json).await
            }
            JobCmd::Wait { id, timeout } => wait(&client, &id, &timeout).await,
        },
        Cmd::Start(a) => jobs::start_cmd(&client, a).await,
        Cmd::BlobDownload(a) => jobs::blob_cmd(&client, a).await,
        Cmd::Download(a) => download::start(&client, a).await,
        Cmd::Dsort(a) => dsort::start(&client, a.spec.as_deref(), a.args, a.wait).await,
        Cmd::SpaceCleanup { target_id, wait } => {
            cluster::storage(&client, cluster::StorageCmd::Cleanup { target_id, wait }).await
        }
        Cmd::Stop(a) => jobs::stop_cmd(&client, a).await,
        Cmd::Create { buckets } => create_buckets(&client, &buckets).await,
        Cmd::Rmb { buckets } => destroy_buckets(&client, &buckets).await,
        Cmd::Cp(a) => objects::cp(&client, a).await,
        Cmd::Bucket { cmd } => match cmd {
            BucketCmd::Create { buckets } => create_buckets(&client, &buckets).await,
            BucketCmd::Ls(a) => objects::ls(&client, a).await,
            BucketCmd::Cp(a) => objects::cp(&client, a).await,
            BucketCmd::Props { cmd } => match cmd {
                PropsCmd::Show { bucket, json } => {
                    props::show(&client, &objects::parse_bucket(&bucket)?.name, json).await
                }
                PropsCmd::Set { bucket, props } => {
                    props::set(&client, &objects::parse_bucket(&bucket)?.name, &props).await
                }
                PropsCmd::Reset { bucket } => {
                    let bck = objects::parse_bucket(&bucket)?;
                    client.reset_bucket_props(&bck.name).await?;
                    println!(
                        "Bucket {} properties reset to the cluster's defaults",
                        bck.cname()
                    );
                    Ok(())
                }
            },
            BucketCmd::Show { bucket, json } => {
                props::show(&client, &objects::parse_bucket(&bucket)?.name, json).await
            }
            BucketCmd::Summary(a) => objects::summary(&client, a).await,
            BucketCmd::Validate(a) => views::scrub(&client, a).await,
            BucketCmd::Evict(a) => objects::prefetch_or_evict(&client, a, true).await,
            BucketCmd::Prefetch(a) => objects::prefetch_or_evict(&client, a, false).await,
            BucketCmd::Archive(a) => archive::bucket(&client, a).await,
            BucketCmd::Etl { name, sel } => {
                etl::run(&client, etl::EtlCmd::Bucket { name, sel }).await
            }
            BucketCmd::Mv { from, to, wait } => rename_bucket(&client, &from, &to, wait).await,
            BucketCmd::Rm { buckets } => destroy_buckets(&client, &buckets).await,
        },
        Cmd::Ls(a) => objects::ls(&client, a).await,
        Cmd::Put(a) => objects::put(&client, a).await,
        Cmd::Get(a) => objects::get(&client, a).await,
        Cmd::Object { cmd } => match cmd {
            ObjectCmd::Promote(a) => objects::promote(&client, a).await,
            ObjectCmd::Get(a) => objects::get(&client, a).await,
            ObjectCmd::Ls(a) => objects::ls(&client, a).await,
            ObjectCmd::Put(a) => objects::put(&client, a).await,
            ObjectCmd::Cp(a) => objects::cp(&client, a).await,
            ObjectCmd::Archive(a) => archive::bucket(&client, a).await,
            ObjectCmd::Etl(a) => etl::run(&client, etl::EtlCmd::Object(a)).await,
            ObjectCmd::Concat { args, recursive } => {
                objects::concat(&client, &args, recursive).await
            }
            ObjectCmd::Prefetch(a) => objects::prefetch_or_evict(&client, a, false).await,
            ObjectCmd::Evict(a) => objects::prefetch_or_evict(&client, a, true).await,
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
        Cmd::Nbi { cmd } => nbi::run(&client, cmd).await,
        Cmd::Log { cmd } => match cmd {
            LogCmd::Show { node_id, severity } => log_show(&client, &node_id, &severity).await,
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
        Cmd::Performance { view } => match view {
            Some(v) => views::performance(&client, v).await,
            None => perf::show_performance(&client, 1.0, false).await,
        },
        Cmd::Alias { cmd } => {
            let top: Vec<String> = Cli::command()
                .get_subcommands()
                .flat_map(|c| {
                    std::iter::once(c.get_name().to_string())
                        .chain(c.get_all_aliases().map(str::to_string))
                })
                .collect();
            parity::alias(cmd, &top)
        }
        Cmd::Search { keywords } => parity::search(&Cli::command(), &keywords),
        Cmd::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ais", &mut std::io::stdout());
            Ok(())
        }
        Cmd::Version => {
            println!("ais (aistore-rs) {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}

async fn show(client: &Client, what: ShowCmd) -> anyhow::Result<()> {
    match what {
        ShowCmd::Cluster { json, view } => match view {
            None => fmt::show_cluster(client, json).await,
            Some(ShowClusterCmd::Smap { json: j }) => views::smap(client, json || j).await,
            Some(ShowClusterCmd::Bmd { json: j }) => views::bmd(client, json || j).await,
            Some(ShowClusterCmd::Config { section, json: j }) => {
                config::show(client, "cluster", section.as_deref(), json || j).await
            }
            Some(ShowClusterCmd::Stats(a)) => {
                views::performance(client, views::PerfView::Counters(a)).await
            }
            Some(ShowClusterCmd::Cpu { json: j }) => views::sysinfo(client, true, json || j).await,
            Some(ShowClusterCmd::Memory { json: j }) => {
                views::sysinfo(client, false, json || j).await
            }
        },
        ShowCmd::Performance {
            interval,
            json,
            view,
        } => match view {
            Some(v) => views::performance(client, v).await,
            None => perf::show_performance(client, interval, json).await,
        },
        ShowCmd::Job { id, id2, json } => {
            jobs::show(client, id.as_deref(), id2.as_deref(), json).await
        }
        ShowCmd::Rebalance { json } => cluster::show_rebalance(client, json).await,
        ShowCmd::Config {
            which,
            section,
            json,
        } => config::show(client, &which, section.as_deref(), json).await,
        ShowCmd::Auth { what } => auth::run(client, auth::AuthCmd::Show { what }).await,
        ShowCmd::Object { object, json } => objects::show(client, &object, json).await,
        ShowCmd::Bucket { bucket, json } => {
            props::show(client, &objects::parse_bucket(&bucket)?.name, json).await
        }
        ShowCmd::Storage {
            target_id,
            json,
            view,
        } => match view {
            None => views::storage(client, target_id.as_deref(), json).await,
            Some(ShowStorageCmd::Mountpath { json: j }) => {
                cluster::storage(
                    client,
                    cluster::StorageCmd::Mountpath {
                        cmd: cluster::MpathCmd::Show { json: json || j },
                    },
                )
                .await
            }
            Some(ShowStorageCmd::Capacity(a)) => {
                views::performance(client, views::PerfView::Capacity(a)).await
            }
            Some(ShowStorageCmd::Summary(a)) => objects::summary(client, a).await,
        },
        ShowCmd::Dashboard => views::dashboard(client).await,
        ShowCmd::Nbi(a) => nbi::run(client, nbi::NbiCmd::Show(a)).await,
        ShowCmd::RemoteCluster { json } => views::remote_clusters(client, json).await,
        ShowCmd::Log { node_id, severity } => log_show(client, &node_id, &severity).await,
        ShowCmd::Etl { name, job, job2 } => {
            etl::run(client, etl::EtlCmd::Show { name, job, job2 }).await
        }
    }
}

async fn log_show(client: &Client, node_id: &str, severity: &str) -> anyhow::Result<()> {
    let b = client.node_log(node_id, severity, false).await?;
    std::io::Write::write_all(&mut std::io::stdout(), &b)?;
    Ok(())
}

async fn wait(client: &Client, id: &str, timeout: &str) -> anyhow::Result<()> {
    let t = if timeout.is_empty() {
        None
    } else {
        Some(std::time::Duration::from_secs_f64(parse_secs(timeout)?))
    };
    jobs::wait(client, id, t).await
}

async fn create_buckets(client: &Client, buckets: &[String]) -> anyhow::Result<()> {
    for b in buckets {
        let bck = objects::parse_bucket(b)?;
        client.create_bucket(&bck.name).await?;
        println!("\"{}\" created", bck.cname());
    }
    Ok(())
}

async fn destroy_buckets(client: &Client, buckets: &[String]) -> anyhow::Result<()> {
    for b in buckets {
        let bck = objects::parse_bucket(b)?;
        client.destroy_bucket(&bck.name).await?;
        println!("\"{}\" destroyed", bck.cname());
    }
    Ok(())
}

async fn rename_bucket(client: &Client, from: &str, to: &str, wait: bool) -> anyhow::Result<()> {
    let (from, to) = (objects::parse_bucket(from)?, objects::parse_bucket(to)?);
    let id = client.rename_bucket(&from.name, &to.name).await?;
    println!("renaming {} to {}: job {id}", from.cname(), to.cname());
    if !wait {
        println!("To monitor the progress, run 'ais show job {id}' or 'ais wait {id}'");
        return Ok(());
    }
    jobs::wait(client, &id, None).await?;
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
