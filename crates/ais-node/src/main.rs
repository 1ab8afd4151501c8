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

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Object bodies move in buffers of 128 KiB to a few MiB (chunks, ETL
/// outputs, Get-Batch items): past glibc's default mmap threshold (128 KiB)
/// each would be mapped and unmapped, a page fault and a zeroed page per
/// 4 KiB every time — profiled at a quarter of the node's CPU while serving
/// ready-to-train arrays. Keep them on the heap (up to 32 MiB) and keep up
/// to 128 MiB of freed memory for reuse. Skipped when the operator set
/// GLIBC_TUNABLES.
fn tune_malloc() {
    if std::env::var_os("GLIBC_TUNABLES").is_some() {
        return;
    }
    // SAFETY: mallopt only changes allocator parameters; called before any
    // thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
    }
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> anyhow::Result<()> {
    tune_malloc();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AIS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.cmd {
        Some(Cmd::Playground(a)) => Ok(playground::run(a)?),
        None => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if let Some(n) = cli.node.threads {
                b.worker_threads(n.max(1));
            }
            let rt = b.enable_all().build()?;
            rt.block_on(ais_node::run(cli.node))
        }
    }
}
