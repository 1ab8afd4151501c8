//! `aisnode`: one binary for every server role. `aisnode --role proxy|target`
//! runs a node; `aisnode playground` runs a whole local cluster (1 proxy + N
//! targets as child processes) in the foreground.

use ais_playground as playground;

use ais_node::NodeArgs;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "aisnode",
    version,
    about = "aistore-rs server: proxy (gateway) or storage target"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    node: NodeArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a local cluster (1 proxy + N targets) in the foreground; Ctrl-C stops it.
    Playground(playground::PlaygroundArgs),
}

/// mimalloc, not glibc's malloc. Object bodies move in buffers of 16 KiB
/// to a few MiB (reads, chunks, ETL outputs, Get-Batch items): glibc maps
/// and unmaps each one past its mmap threshold (profiled at a quarter of
/// the node's CPU serving ready-to-train arrays) and, with that threshold
/// raised, spends 18% of a target serving 16 KiB GETs searching its bins
/// (`_int_malloc`). mimalloc keeps per-thread pages of each size class.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    if let Err(e) = real_main() {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let spec = std::env::var("AIS_LOG").unwrap_or_else(|_| "info".into());
    // The consensus library narrates every vote and heartbeat at info:
    // warnings and errors only, unless AIS_LOG names it.
    let spec = if spec.contains("openraft") {
        spec
    } else {
        format!("{spec},openraft=warn")
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&spec)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_writer(ais_node::logring::Tee)
        .init();
    match cli.cmd {
        Some(Cmd::Playground(a)) => Ok(playground::run(a)?),
        None => {
            // Before any thread exists: the node's credentials leave its
            // environment block (see `secrets`).
            ais_node::secrets::take_and_wipe();
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = cli.node.threads {
                b.worker_threads(n.max(1));
            }
            let rt = b.enable_all().build()?;
            rt.block_on(ais_node::run(cli.node))
        }
    }
}
