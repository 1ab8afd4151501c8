//! `aisnode`: one binary for every server role. `aisnode --role proxy|target`
//! runs a node; `aisnode playground` runs a whole local cluster (1 proxy + N
//! targets as child processes) in the foreground.

mod etl;
mod http;
mod jobs;
mod node;
use ais_playground as playground;
mod proxy;
mod target;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

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

#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// Node role.
    #[arg(long, value_parser = ["proxy", "target"])]
    pub role: Option<String>,
    /// Address to listen on and to advertise.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 = pick a free one; the chosen port is printed).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Directory for this node's identity and cluster metadata.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Target mountpath (repeatable); defaults to <data>/mp1.
    #[arg(long = "mpath")]
    pub mpaths: Vec<PathBuf>,
    /// URL of the primary proxy to join; a proxy without it becomes the primary.
    #[arg(long, env = "AIS_PRIMARY_URL")]
    pub join: Option<String>,
    /// Seconds without keepalive after which the primary drops a node from the map.
    #[arg(long, default_value_t = 4.0)]
    pub keepalive_timeout: f64,
    /// Async worker threads (default: one per core). A playground gives each
    /// node its share of the host's cores.
    #[arg(long, env = "AIS_THREADS")]
    pub threads: Option<usize>,
    /// Python interpreter used for ETL runtimes (default: python3 on PATH).
    #[arg(long, env = "AIS_PYTHON")]
    pub python: Option<String>,
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> anyhow::Result<()> {
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
            rt.block_on(node::run(cli.node))
        }
    }
}
