//! The aisnode server as a library, organised by role:
//!
//! - [`http`]: request context, typed [`http::Endpoint`], response rendering;
//! - [`rpc`]: typed intra-cluster calls, route constants, `fan_out`;
//! - [`state`]: what every node has (identity, metadata, membership);
//! - [`proxy`] and [`target`]: the two roles' handlers and state — they never
//!   import each other;
//! - [`router`]: the only module that sees both roles;
//! - [`error`]: the one error type, [`ApiError`].
//!
//! [`run`] starts a node; `main.rs` only parses flags.

pub mod error;
pub mod http;
pub mod proxy;
pub mod router;
pub mod rpc;
pub mod state;
pub mod target;

pub use error::{ApiError, ApiResult};

use ais_cluster::{MetaStore, Primary, PrimaryConfig};
use ais_core::meta::{NodeType, Snode};
use ais_storage::Store;
use anyhow::{bail, Context};
use clap::Args;
use router::App;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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

/// Asks the kernel to SIGTERM us when the parent (a playground or test
/// harness) dies, so no node outlives whoever started it.
fn die_with_parent() {
    if std::env::var_os("AIS_DIE_WITH_PARENT").is_some() {
        // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag on this process.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
        }
    }
}

/// Builds a node's state from its flags (no socket yet).
fn build(args: &NodeArgs, port: u16) -> anyhow::Result<App> {
    let role = args
        .role
        .clone()
        .context("--role proxy|target is required (or use `aisnode playground`)")?;
    let data = args.data.clone().context("--data DIR is required")?;
    std::fs::create_dir_all(&data).with_context(|| format!("create {}", data.display()))?;
    // The data root and the metadata dir are the node's alone: ETL code runs
    // under another uid and must not read objects or metadata by path.
    for d in [data.clone(), data.join("meta")] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("chmod 0700 {}", d.display()))?;
    }
    let kind = if role == "proxy" {
        NodeType::Proxy
    } else {
        NodeType::Target
    };
    let id = state::load_identity(&data, &role)?;
    let snode = Snode::new(&id, kind, &args.host, port);
    let meta = MetaStore::open(&data.join("meta"))?;
    let core = state::NodeCore::new(id, snode.clone(), meta.clone(), args.join.clone())?;
    match kind {
        NodeType::Proxy => {
            let primary = match args.join {
                Some(_) => None,
                None => {
                    let cfg = PrimaryConfig {
                        keepalive_timeout: Duration::from_secs_f64(args.keepalive_timeout),
                    };
                    Some(Primary::new(meta, snode, cfg, Arc::new(core.rpc.clone()))?)
                }
            };
            Ok(App::Proxy(Arc::new(proxy::Proxy::new(core, primary))))
        }
        NodeType::Target => {
            if args.join.is_none() {
                bail!("a target needs --join http://PRIMARY_PROXY");
            }
            let mpaths = if args.mpaths.is_empty() {
                vec![data.join("mp1")]
            } else {
                args.mpaths.clone()
            };
            let store = Store::open(&mpaths)?;
            let cache = std::env::var_os("AIS_ETL_ENV_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
                        .join(".cache/aistore-rs/etl-envs")
                });
            let etl = Arc::new(ais_etl::EtlManager::new(
                data.join("etl"),
                cache,
                args.python.clone(),
                core.snode.url().to_string(),
            )?);
            Ok(App::Target(Arc::new(target::Target::new(core, store, etl))))
        }
    }
}

/// Runs one node until SIGTERM/SIGINT.
pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    die_with_parent();
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("listen on {}:{}", args.host, args.port))?;
    let port = listener.local_addr()?.port();
    let app = build(&args, port)?;
    match &app {
        App::Proxy(p) => match &p.primary {
            Some(pr) => {
                tokio::spawn(pr.clone().run_failure_detector());
            }
            None => {
                tokio::spawn(state::membership_loop(p.clone()));
            }
        },
        App::Target(t) => {
            tokio::spawn(state::membership_loop(t.clone()));
        }
    }
    let core = app.core();
    tracing::info!(node = %core.name, url = %core.snode.url(), "listening");
    // Harnesses read this line to learn the port.
    println!(
        "AISNODE_READY {} {} {}",
        args.role.as_deref().unwrap_or(""),
        core.id,
        core.snode.url()
    );
    let name = core.name.clone();
    axum::serve(
        listener,
        router::router(app.clone()).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal(app.clone()))
    .await?;
    stop(&app);
    tracing::info!(node = %name, "stopped");
    Ok(())
}

fn stop(app: &App) {
    if let App::Target(t) = app {
        t.etl.stop_all();
    }
}

async fn shutdown_signal(app: App) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    // Give in-flight requests a moment, then exit regardless (idle
    // intra-cluster keep-alive connections would otherwise hold us up).
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop(&app);
        tracing::info!(node = %app.core().name, "stopped");
        std::process::exit(0);
    });
}
