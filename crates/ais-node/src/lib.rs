//! The aisnode server as a library, organised by role:
//!
//! - [`http`]: request context, typed [`http::Endpoint`], response rendering;
//! - [`rpc`]: typed intra-cluster calls, route constants, `fan_out`;
//! - [`state`]: what every node has (identity, metadata, membership);
//! - [`proxy`] and [`target`]: the two roles' handlers and state — they never
//!   import each other;
//! - [`router`]: the only module that sees both roles;
//! - [`error`]: the one error type, [`ApiError`];
//! - [`serve`]: the accept loop and connection hygiene (timeouts, cap);
//! - [`metrics`]: lock-free counters and the Prometheus text at `/metrics`.
//!
//! [`run`] starts a node; `main.rs` only parses flags.

pub mod auth;
pub mod backend;
pub mod config;
pub mod cred;
pub mod error;
pub mod http;
pub mod links;
pub mod logring;
pub mod metrics;
pub mod proxy;
pub mod router;
pub mod rpc;
pub mod s3;
pub mod secrets;
pub mod serve;
pub mod state;
pub mod target;

pub use error::{ApiError, ApiResult};

use ais_cluster::MetaStore;
use ais_core::meta::{NodeType, Snode};
use ais_storage::Store;
use anyhow::{bail, Context};
use clap::Args;
use router::App;
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
    /// Seconds a proxy hears nothing from the primary before it calls an
    /// election among the proxies (the actual wait is randomised between
    /// this and twice this; the primary's heartbeat is a sixth of it).
    #[arg(long, env = "AIS_ELECTION_TIMEOUT", default_value_t = 1.5)]
    pub election_timeout: f64,
    /// Seconds the set of targets must stay unchanged after a join or leave
    /// before the primary starts a rebalance.
    #[arg(long, env = "AIS_REBALANCE_SETTLE", default_value_t = 5.0)]
    pub rebalance_settle: f64,
    /// Bytes per second each target's rebalance may send (e.g. 50MiB, 20MB,
    /// 1000000; 0 or unset: unlimited), so that client I/O keeps priority.
    #[arg(long, env = "AIS_REBALANCE_BPS")]
    pub rebalance_bps: Option<String>,
    /// Async worker threads (default: one per core). A playground gives each
    /// node its share of the host's cores.
    #[arg(long, env = "AIS_THREADS")]
    pub threads: Option<usize>,
    /// Python interpreter used for ETL runtimes (default: python3 on PATH).
    #[arg(long, env = "AIS_PYTHON")]
    pub python: Option<String>,
    /// Seconds a client has to send a complete request head, from its first
    /// byte (or from connecting); then the connection is closed. 0 = no limit.
    #[arg(long, env = "AIS_HEADER_TIMEOUT", default_value_t = 10.0)]
    pub header_timeout: f64,
    /// Seconds a keep-alive connection may sit with no request before it is
    /// closed. 0 = no limit.
    #[arg(long, env = "AIS_IDLE_TIMEOUT", default_value_t = 60.0)]
    pub idle_timeout: f64,
    /// Seconds a request body (a PUT) may deliver no byte before the request
    /// is aborted and nothing is stored. 0 = no limit.
    #[arg(long, env = "AIS_BODY_TIMEOUT", default_value_t = 30.0)]
    pub body_timeout: f64,
    /// Concurrent client connections; past it new ones get 503. Clamped
    /// below the open-file limit (whose soft value is raised to the hard one).
    #[arg(long, env = "AIS_MAX_CONNS", default_value_t = 8192)]
    pub max_conns: usize,
    /// Concurrent connections from one source address; past it its new
    /// ones get 503 (others are still served). 0 = a quarter of the cap.
    #[arg(long, env = "AIS_MAX_CONNS_PER_CLIENT", default_value_t = 0)]
    pub max_conns_per_client: usize,
    /// Largest request head in bytes (larger: 431). Also caps hyper's read
    /// buffer, so one body chunk is at most this big (minimum 8192).
    #[arg(long, env = "AIS_MAX_HEADER_SIZE", default_value_t = 64 << 10)]
    pub max_header_size: usize,
}

fn secs(s: f64) -> Duration {
    if s.is_finite() && s > 0.0 {
        Duration::from_secs_f64(s)
    } else {
        Duration::ZERO
    }
}

impl NodeArgs {
    /// Connection limits from the flags, the cap clamped below the open-file
    /// limit (raising its soft value first).
    pub fn limits(&self) -> serve::Limits {
        let nofile = serve::raise_nofile_limit();
        let max_conns = serve::clamp_conns(self.max_conns, nofile);
        if max_conns < self.max_conns {
            tracing::warn!(
                requested = self.max_conns,
                max_conns,
                nofile,
                "connection cap lowered to fit the open-file limit"
            );
        }
        serve::Limits {
            header_timeout: secs(self.header_timeout),
            idle_timeout: secs(self.idle_timeout),
            body_timeout: secs(self.body_timeout),
            max_conns,
            max_conns_per_client: self.max_conns_per_client,
            max_header_size: self.max_header_size,
        }
    }
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
    auth::init(&data, role == "proxy")?;
    let kind = if role == "proxy" {
        NodeType::Proxy
    } else {
        NodeType::Target
    };
    let id = state::load_identity(&data, &role)?;
    let snode = Snode::new(&id, kind, &args.host, port);
    let meta = MetaStore::open(&data.join("meta"))?;
    if role == "proxy" {
        // Tokens revoked before a restart stay revoked (the list is part of
        // the replicated AuthN database).
        auth::authn::refresh_revoked(&meta);
    }
    let base = ais_core::config::Updates::from([(
        "timeout.max_keepalive".to_string(),
        ais_core::config::fmt_duration(Duration::from_secs_f64(
            args.keepalive_timeout.clamp(1.0, 86400.0),
        )),
    )]);
    let config = config::NodeConfig::open(data.join("meta"), base, &meta.config());
    let core = state::NodeCore::new(id, snode.clone(), meta.clone(), args.join.clone(), config)?;
    match kind {
        NodeType::Proxy => {
            // The primary is whoever leads the control plane (`run`).
            let jobs = proxy::jobs::Registry::new(meta.clone(), Some(data.join("jobs.json")));
            Ok(App::Proxy(Arc::new(
                proxy::Proxy::new(core, None, jobs)
                    .with_rebalance_settle(Duration::from_secs_f64(args.rebalance_settle)),
            )))
        }
        NodeType::Target => {
            target::lifecycle::Throttle::init(args.rebalance_bps.as_deref())?;
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
            let etl = Arc::new(
                ais_etl::EtlManager::new(
                    data.join("etl"),
                    cache,
                    args.python.clone(),
                    core.snode.url().to_string(),
                )?
                .protect(std::iter::once(data.clone()).chain(mpaths.iter().cloned()))
                .deps_network(
                    crate::cred::get().is_some() || ais_etl::spec::host_network_allowed(),
                ),
            );
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
    let core = app.core();
    let limits = args.limits();
    tracing::info!(?limits, "connection limits");
    // Serving starts before the control plane: proxies elect over it.
    let server = tokio::spawn(serve::serve(
        listener,
        app.clone(),
        limits,
        shutdown_signal(app.clone()),
    ));
    match &app {
        App::Proxy(p) => {
            let data = args.data.clone().context("--data DIR is required")?;
            let timing = ais_cluster::RaftTiming {
                election_timeout: Duration::from_secs_f64(args.election_timeout.clamp(0.2, 600.0)),
                ..Default::default()
            };
            proxy::role::start_control_plane(
                p,
                &data.join("meta/raft"),
                args.join.is_none(),
                timing,
            )
            .await?;
            if args.join.is_none() {
                // The founding proxy (or a whole cluster restarting): ready
                // once a primary is in office, or after a bound.
                let until = std::time::Instant::now() + Duration::from_secs(15);
                while std::time::Instant::now() < until
                    && !p.is_primary()
                    && core.primary_url().is_none()
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        App::Target(t) => {
            tokio::spawn(state::membership_loop(t.clone()));
            tokio::spawn(target::lru::run_periodic(t.clone()));
        }
    }
    tracing::info!(node = %core.name, url = %core.snode.url(), "listening");
    // Harnesses read this line to learn the port.
    println!(
        "AISNODE_READY {} {} {}",
        args.role.as_deref().unwrap_or(""),
        core.id,
        core.snode.url()
    );
    let name = core.name.clone();
    server.await.context("server task")??;
    stop(&app).await;
    tracing::info!(node = %name, "stopped");
    exit_if_left(&app);
    Ok(())
}

/// A node that left the cluster on purpose exits with
/// [`ais_playground::EXIT_LEFT_CLUSTER`], so a supervisor does not bring it back.
fn exit_if_left(app: &App) {
    if app
        .core()
        .leaving
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        std::process::exit(ais_playground::EXIT_LEFT_CLUSTER);
    }
}

/// Stops what outlives the request tasks: a target's ETL workers; a
/// proxy's Raft core (shut down before the handle goes, so the core never
/// runs on without its listeners and logs spurious errors on the way out).
async fn stop(app: &App) {
    app.core()
        .exiting
        .store(true, std::sync::atomic::Ordering::Relaxed);
    match app {
        App::Target(t) => t.etl.stop_all(),
        App::Proxy(p) => {
            if let Some(cp) = p.control.get() {
                let _ = tokio::time::timeout(Duration::from_secs(2), cp.shutdown()).await;
            }
        }
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
        // `shutdown-node` / `decommission-node` from the primary.
        _ = app.core().shutdown.notified() => {},
    }
    // Give in-flight requests a moment, then exit regardless (idle
    // intra-cluster keep-alive connections would otherwise hold us up).
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop(&app).await;
        tracing::info!(node = %app.core().name, "stopped");
        exit_if_left(&app);
        std::process::exit(0);
    });
}
