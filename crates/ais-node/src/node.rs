//! A running node: identity, role, metadata, (for targets) storage, and the
//! background loops that keep it in the cluster (join, keepalive).

use crate::NodeArgs;
use ais_cluster::{MetaStore, Primary, PrimaryConfig};
use ais_core::meta::{JoinReq, Keepalive, KeepaliveResp, MetaSync, NodeType, Snode};
use ais_core::AisError;
use ais_storage::Store;
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Node {
    pub id: String,
    pub kind: NodeType,
    pub snode: Snode,
    pub name: String,
    pub meta: MetaStore,
    pub primary: Option<Arc<Primary>>,
    pub join_url: Option<String>,
    pub store: Option<Store>,
    /// Pooled client for intra-cluster requests.
    pub http: reqwest::Client,
    pub joined: AtomicBool,
    /// ETL runtimes (targets only).
    pub etl: Option<Arc<ais_etl::EtlManager>>,
    /// Offline copy/transform jobs (target: running; proxy: where they run).
    pub jobs: crate::jobs::Jobs,
}

#[derive(Serialize, Deserialize)]
struct Identity {
    id: String,
    role: String,
}

fn load_identity(data: &std::path::Path, role: &str) -> anyhow::Result<String> {
    let path = data.join("node.json");
    if let Ok(raw) = std::fs::read(&path) {
        let ident: Identity = serde_json::from_slice(&raw)
            .with_context(|| format!("corrupted {}", path.display()))?;
        if ident.role != role {
            bail!(
                "data directory {} belongs to a {} node; refusing to start it as a {role}",
                data.display(),
                ident.role
            );
        }
        return Ok(ident.id);
    }
    let id = ais_core::gen_id(8);
    let raw = serde_json::to_vec(&Identity {
        id: id.clone(),
        role: role.into(),
    })?;
    std::fs::write(&path, raw).with_context(|| format!("write {}", path.display()))?;
    Ok(id)
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

pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    die_with_parent();
    let role = args
        .role
        .clone()
        .context("--role proxy|target is required (or use `aisnode playground`)")?;
    let data = args.data.clone().context("--data DIR is required")?;
    std::fs::create_dir_all(&data).with_context(|| format!("create {}", data.display()))?;
    let kind = if role == "proxy" {
        NodeType::Proxy
    } else {
        NodeType::Target
    };
    let id = load_identity(&data, &role)?;
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("listen on {}:{}", args.host, args.port))?;
    let port = listener.local_addr()?.port();
    let snode = Snode::new(&id, kind, &args.host, port);
    let meta = MetaStore::open(&data.join("meta"))?;
    let primary = if kind == NodeType::Proxy && args.join.is_none() {
        let cfg = PrimaryConfig {
            keepalive_timeout: Duration::from_secs_f64(args.keepalive_timeout),
        };
        Some(Primary::new(meta.clone(), snode.clone(), cfg)?)
    } else {
        None
    };
    if kind == NodeType::Target && args.join.is_none() {
        bail!("a target needs --join http://PRIMARY_PROXY");
    }
    let store = if kind == NodeType::Target {
        let mpaths = if args.mpaths.is_empty() {
            vec![data.join("mp1")]
        } else {
            args.mpaths.clone()
        };
        Some(Store::open(&mpaths)?)
    } else {
        None
    };
    let etl = if kind == NodeType::Target {
        let cache = std::env::var_os("AIS_ETL_ENV_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
                    .join(".cache/aistore-rs/etl-envs")
            });
        Some(Arc::new(ais_etl::EtlManager::new(
            data.join("etl"),
            cache,
            args.python.clone(),
            snode.url().to_string(),
        )?))
    } else {
        None
    };
    let node = Arc::new(Node {
        name: snode.name(),
        id,
        kind,
        snode,
        meta,
        primary: primary.clone(),
        join_url: args
            .join
            .clone()
            .map(|u| u.trim_end_matches('/').to_string()),
        store,
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
        joined: AtomicBool::new(primary.is_some()),
        etl,
        jobs: Default::default(),
    });
    if let Some(p) = primary {
        tokio::spawn(p.run_failure_detector());
    } else {
        tokio::spawn(membership_loop(node.clone()));
    }
    tracing::info!(node = %node.name, url = %node.snode.url(), "listening");
    // Harnesses read this line to learn the port.
    println!("AISNODE_READY {role} {} {}", node.id, node.snode.url());
    let app = crate::http::router(node.clone());
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal(node.clone()))
    .await?;
    if let Some(etl) = &node.etl {
        etl.stop_all();
    }
    tracing::info!(node = %node.name, "stopped");
    Ok(())
}

async fn shutdown_signal(node: Arc<Node>) {
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
        if let Some(etl) = &node.etl {
            etl.stop_all();
        }
        tracing::info!(node = %node.name, "stopped");
        std::process::exit(0);
    });
}

impl Node {
    pub fn store(&self) -> Result<&Store, AisError> {
        self.store
            .as_ref()
            .ok_or_else(|| AisError::bad_request(format!("{} is not a target", self.name)))
    }

    /// Applies pushed metadata and reacts to what changed.
    pub fn apply_sync(self: &Arc<Self>, sync: &MetaSync) -> Result<(), AisError> {
        let applied = self
            .meta
            .apply(sync)
            .map_err(|e| AisError::new(409, format!("{}: {e}", self.name)))?;
        if applied.etlmd.is_some() {
            crate::etl::reconcile(self, self.meta.etlmd());
        }
        if let (Some(old), Some(store)) = (applied.bmd, &self.store) {
            let new = self.meta.bmd();
            for name in old.buckets.keys().filter(|b| !new.buckets.contains_key(*b)) {
                let bck = ais_core::Bck::ais(name.clone());
                if let Err(e) = store.destroy_bucket(&bck) {
                    tracing::error!(bucket = %bck.cname(), error = %e, "failed to remove destroyed bucket");
                }
            }
        }
        Ok(())
    }

    async fn join(self: &Arc<Self>, url: &str) -> Result<(), String> {
        let req = JoinReq {
            node: self.snode.clone(),
            cluster_uuid: self.meta.cluster_uuid(),
        };
        let resp = self
            .http
            .post(format!("{url}/v1/cluster/join"))
            .json(&req)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            let st = resp.status();
            return Err(format!("{st}: {}", resp.text().await.unwrap_or_default()));
        }
        let sync: MetaSync = resp.json().await.map_err(|e| e.to_string())?;
        self.apply_sync(&sync).map_err(|e| e.message)?;
        // (Re)start the ETLs this node should run, e.g. after a restart.
        crate::etl::reconcile(self, self.meta.etlmd());
        Ok(())
    }

    async fn keepalive(self: &Arc<Self>, url: &str) -> Result<bool, String> {
        let (s, b, e) = self.meta.versions();
        let ka = Keepalive {
            daemon_id: self.id.clone(),
            smap_version: s,
            bmd_version: b,
            etlmd_version: e,
        };
        let resp = self
            .http
            .post(format!("{url}/v1/cluster/keepalive"))
            .json(&ka)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let kr: KeepaliveResp = resp.json().await.map_err(|e| e.to_string())?;
        if kr.known {
            self.apply_sync(&kr.sync).map_err(|e| e.message)?;
        }
        Ok(kr.known)
    }
}

/// Joins the primary (retrying until it answers), then sends keepalives;
/// rejoins whenever the primary no longer knows this node.
async fn membership_loop(node: Arc<Node>) {
    let Some(url) = node.join_url.clone() else {
        return;
    };
    let mut attempts = 0u32;
    loop {
        if !node.joined.load(Ordering::Relaxed) {
            match node.join(&url).await {
                Ok(()) => {
                    tracing::info!(node = %node.name, primary = %url, "joined cluster");
                    node.joined.store(true, Ordering::Relaxed);
                    attempts = 0;
                }
                Err(e) => {
                    attempts += 1;
                    if attempts % 25 == 1 {
                        tracing::warn!(primary = %url, error = %e, "cannot join yet; retrying");
                    }
                    if e.contains("belongs to cluster") {
                        tracing::error!("{e}");
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        match node.keepalive(&url).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("primary does not know this node: rejoining");
                node.joined.store(false, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!(error = %e, "keepalive failed"),
        }
    }
}
