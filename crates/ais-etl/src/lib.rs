//! Near-data ETL on a target. [`EtlManager`] owns every ETL running on this
//! target: for each, an [`EtlRuntime`] with a pool of persistent Python
//! workers in a shared per-host environment, per-target counters, recent
//! per-object errors and a log. The HTTP layer calls [`EtlRuntime::transform`]
//! with the object's local path; the target reads it and sends the bytes:
//! workers run in an OS sandbox ([`sandbox`]) and never see the store.

mod env;
mod logs;
mod pool;
mod procs;
pub mod sandbox;
mod seccomp;
mod server;
pub mod spec;
pub mod untrusted;
pub mod workdir;
mod worker;

#[cfg(test)]
mod testutil;

pub use env::{EnvManager, Python};
pub use logs::LogSink;
pub use spec::{Comm, EtlSpec, Kind, Limits};

use bytes::Bytes;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

const WORKER_PY: &str = include_str!("python/worker.py");
/// The target's registry of ETL processes, in its ETL directory (ETL names
/// cannot contain a '.', so no ETL's work directory is called this).
const PID_REGISTRY: &str = "pids.json";
const MAX_OBJ_ERRORS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum EtlError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Init(String),
    #[error("etl job {0} does not exist")]
    NotFound(String),
    #[error("ETL is stopped")]
    Stopped,
    #[error("{etype}: {emsg}\n{trace}")]
    Transform {
        etype: String,
        emsg: String,
        trace: String,
    },
    #[error("transform timed out after {0:?} (the worker was replaced)")]
    Timeout(Duration),
    #[error("{0} (the worker was replaced)")]
    WorkerDied(String),
    /// A worker went over a limit of its sandbox (memory, CPU, output).
    #[error("{0} (the worker was replaced)")]
    Limit(String),
    /// The ETL gave up on this target (its workers kept crashing).
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Internal(String),
}

/// What kind of failure an [`EtlError`] is, without any transport's codes:
/// the HTTP layer maps kinds to statuses (user-code failures should not look
/// retryable to clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EtlErrorKind {
    /// A bad request or spec.
    Invalid,
    /// The ETL could not start (environment, interpreter, user code import).
    Init,
    /// No such ETL.
    NotFound,
    /// The ETL was stopped.
    Stopped,
    /// The user's transform raised (or the transformer server answered an error).
    Transform,
    /// The transform ran past its object timeout.
    Timeout,
    /// The worker (or transformer server) died mid-transform.
    WorkerDied,
    /// The worker exceeded a resource limit.
    Limit,
    /// The ETL failed on this target and no longer transforms.
    Failed,
    /// Anything else on our side.
    Internal,
}

impl EtlError {
    pub fn kind(&self) -> EtlErrorKind {
        match self {
            EtlError::Invalid(_) => EtlErrorKind::Invalid,
            EtlError::Init(_) => EtlErrorKind::Init,
            EtlError::NotFound(_) => EtlErrorKind::NotFound,
            EtlError::Stopped => EtlErrorKind::Stopped,
            EtlError::Transform { .. } => EtlErrorKind::Transform,
            EtlError::Timeout(_) => EtlErrorKind::Timeout,
            EtlError::WorkerDied(_) => EtlErrorKind::WorkerDied,
            EtlError::Limit(_) => EtlErrorKind::Limit,
            EtlError::Failed(_) => EtlErrorKind::Failed,
            EtlError::Internal(_) => EtlErrorKind::Internal,
        }
    }
}

/// One per-object failure, as `GET /v1/etl/NAME` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct ObjError {
    pub obj_name: String,
    pub msg: String,
    pub kind: EtlErrorKind,
}

#[derive(Default)]
pub struct Counters {
    pub objs: AtomicU64,
    pub in_bytes: AtomicU64,
    pub out_bytes: AtomicU64,
    pub errors: AtomicU64,
    pub latency_ns: AtomicU64,
}

/// Per-target status of one ETL (wire type).
pub use ais_core::api::EtlTargetStats as TargetEtlStats;

enum Backend {
    Pool(Arc<pool::Pool>),
    Server(Box<server::CommandServer>),
}

pub struct EtlRuntime {
    pub spec: EtlSpec,
    pub generation: u64,
    backend: Backend,
    pub log: LogSink,
    pub stats: Counters,
    errors: Mutex<VecDeque<ObjError>>,
    python: String,
    sandbox: Option<sandbox::SandboxInfo>,
    /// Gathers concurrent byte transforms into batches (code with
    /// `transform_batch` only).
    batcher: Option<tokio::sync::mpsc::Sender<BatchJob>>,
    /// Its work dir and code, removed with the runtime.
    _dirs: workdir::RuntimeDirs,
}

/// The host's GPUs for `device: cuda` ETLs: `AIS_ETL_GPUS` (comma-separated
/// ids), else the GPUs `nvidia-smi -L` lists (none when it is absent).
fn host_gpus() -> Vec<String> {
    if let Ok(v) = std::env::var("AIS_ETL_GPUS") {
        return v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
    }
    match std::process::Command::new("nvidia-smi").arg("-L").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("GPU "))
            .enumerate()
            .map(|(i, _)| i.to_string())
            .collect(),
        _ => Vec::new(),
    }
}

/// One call waiting to be batched.
struct BatchJob {
    name: String,
    data: Bytes,
    args: String,
    reply: tokio::sync::oneshot::Sender<Result<Bytes, EtlError>>,
}

/// Collects calls for up to `wait` after the first (or `max` of them) and
/// hands each batch to a pool worker; batches run concurrently, as many as
/// the pool has workers.
fn spawn_batcher(
    pool: Arc<pool::Pool>,
    max: usize,
    wait: std::time::Duration,
    timeout: std::time::Duration,
) -> tokio::sync::mpsc::Sender<BatchJob> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<BatchJob>(max * 4);
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut jobs = vec![first];
            let deadline = tokio::time::Instant::now() + wait;
            while jobs.len() < max {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(j)) => jobs.push(j),
                    Ok(None) | Err(_) => break,
                }
            }
            let pool = pool.clone();
            tokio::spawn(async move {
                let items: Vec<(&str, &[u8], &str)> = jobs
                    .iter()
                    .map(|j| (j.name.as_str(), j.data.as_ref(), j.args.as_str()))
                    .collect();
                match pool.call_batch(&items, timeout).await {
                    Ok(outs) => {
                        for (j, r) in jobs.into_iter().zip(outs) {
                            let _ = j.reply.send(r);
                        }
                    }
                    Err(e) => {
                        for j in jobs {
                            let _ = j.reply.send(Err(same_error(&e)));
                        }
                    }
                }
            });
        }
    });
    tx
}

/// The same failure for every item of a batch that failed as a whole.
fn same_error(e: &EtlError) -> EtlError {
    match e {
        EtlError::Transform { etype, emsg, trace } => EtlError::Transform {
            etype: etype.clone(),
            emsg: emsg.clone(),
            trace: trace.clone(),
        },
        EtlError::Timeout(d) => EtlError::Timeout(*d),
        EtlError::WorkerDied(w) => EtlError::WorkerDied(w.clone()),
        EtlError::Limit(w) => EtlError::Limit(w.clone()),
        EtlError::Failed(w) => EtlError::Failed(w.clone()),
        EtlError::Stopped => EtlError::Stopped,
        other => EtlError::Internal(other.to_string()),
    }
}

impl EtlRuntime {
    /// Runs the transform on an object stored at `path` (of `size` bytes):
    /// the target reads it and hands the bytes over; the worker is only told
    /// the object's name.
    pub async fn transform(
        &self,
        obj_name: &str,
        path: &str,
        size: u64,
        args: &str,
    ) -> Result<Bytes, EtlError> {
        let t0 = Instant::now();
        let res = match &self.backend {
            Backend::Pool(p) => match tokio::fs::read(path).await {
                Ok(data) => {
                    p.call(obj_name, Some(&data), args, self.spec.obj_timeout)
                        .await
                }
                Err(e) => Err(EtlError::Internal(format!("read {obj_name}: {e}"))),
            },
            Backend::Server(s) => {
                let (bucket, obj) = split_cname(obj_name);
                s.call(bucket, obj, path, args, self.spec.obj_timeout).await
            }
        };
        self.account(obj_name, size, t0, &res);
        res
    }

    /// Whether [`EtlRuntime::transform_bytes`] can be used (worker pools);
    /// a `runtime.command` server reads its input by path or URL itself.
    pub fn takes_bytes(&self) -> bool {
        match &self.backend {
            Backend::Pool(_) => true,
            Backend::Server(s) => s.takes_bytes(),
        }
    }

    /// Runs the transform on bytes (objects not on local disk).
    pub async fn transform_bytes(
        &self,
        obj_name: &str,
        data: &[u8],
        args: &str,
    ) -> Result<Bytes, EtlError> {
        let t0 = Instant::now();
        let pool = match &self.backend {
            Backend::Pool(pool) => pool,
            Backend::Server(s) => {
                let (bucket, obj) = split_cname(obj_name);
                let res = s
                    .call_bytes(bucket, obj, data.to_vec(), args, self.spec.obj_timeout)
                    .await;
                self.account(obj_name, data.len() as u64, t0, &res);
                return res;
            }
        };
        let res = match &self.batcher {
            Some(b) => {
                let (reply, rx) = tokio::sync::oneshot::channel();
                let job = BatchJob {
                    name: obj_name.to_string(),
                    data: Bytes::copy_from_slice(data),
                    args: args.to_string(),
                    reply,
                };
                match b.send(job).await {
                    Ok(()) => rx.await.unwrap_or_else(|_| Err(EtlError::Stopped)),
                    Err(_) => Err(EtlError::Stopped),
                }
            }
            None => {
                pool.call(obj_name, Some(data), args, self.spec.obj_timeout)
                    .await
            }
        };
        self.account(obj_name, data.len() as u64, t0, &res);
        res
    }

    /// Whether calls are gathered into `transform_batch` calls.
    pub fn batches(&self) -> bool {
        self.batcher.is_some()
    }

    fn account(&self, obj_name: &str, size: u64, t0: Instant, res: &Result<Bytes, EtlError>) {
        let s = &self.stats;
        s.latency_ns
            .fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        s.in_bytes.fetch_add(size, Ordering::Relaxed);
        match res {
            Ok(out) => {
                s.objs.fetch_add(1, Ordering::Relaxed);
                s.out_bytes.fetch_add(out.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                s.errors.fetch_add(1, Ordering::Relaxed);
                self.log.line(&format!("{obj_name}: {e}"));
                self.record_error(obj_name, &e.to_string(), e.kind());
            }
        }
    }

    pub fn record_error(&self, obj_name: &str, msg: &str, kind: EtlErrorKind) {
        if let Ok(mut q) = self.errors.lock() {
            q.push_back(ObjError {
                obj_name: obj_name.to_string(),
                msg: msg.to_string(),
                kind,
            });
            if q.len() > MAX_OBJ_ERRORS {
                q.pop_front();
            }
        }
    }

    pub fn obj_errors(&self) -> Vec<ObjError> {
        self.errors
            .lock()
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn stats(&self, target_id: &str) -> TargetEtlStats {
        let s = &self.stats;
        let objs = s.objs.load(Ordering::Relaxed);
        let errs = s.errors.load(Ordering::Relaxed);
        let total = (objs + errs).max(1);
        let failed = match &self.backend {
            Backend::Pool(p) => p.failed(),
            Backend::Server(_) => None,
        };
        TargetEtlStats {
            target_id: target_id.to_string(),
            stage: if failed.is_some() {
                "Failed"
            } else {
                "Running"
            }
            .into(),
            error: failed.unwrap_or_default(),
            sandbox: self
                .sandbox
                .as_ref()
                .and_then(|s| serde_json::to_value(s).ok()),
            obj_count: objs,
            in_bytes: s.in_bytes.load(Ordering::Relaxed),
            out_bytes: s.out_bytes.load(Ordering::Relaxed),
            err_count: errs,
            mean_latency_ms: s.latency_ns.load(Ordering::Relaxed) as f64 / total as f64 / 1e6,
            workers: match &self.backend {
                Backend::Pool(p) => p.size as u64,
                Backend::Server(_) => 1,
            },
            worker_pids: match &self.backend {
                Backend::Pool(p) => p.pids(),
                Backend::Server(s) => vec![s.pid()],
            },
            python: self.python.clone(),
        }
    }

    /// Why this ETL no longer transforms here, if it failed.
    pub fn failed(&self) -> Option<String> {
        match &self.backend {
            Backend::Pool(p) => p.failed(),
            Backend::Server(_) => None,
        }
    }

    pub fn stop(&self) {
        match &self.backend {
            Backend::Pool(p) => p.stop(),
            Backend::Server(s) => s.stop(),
        }
        // Its processes are dead: nothing it wrote outlives it.
        self._dirs.remove();
    }

    /// Whether a transformer server may read `uname` back with `token`:
    /// only while the request that gave it the token is in flight.
    pub fn object_token_ok(&self, token: &str, uname: &str) -> bool {
        match &self.backend {
            Backend::Server(s) => s.token_ok(token, uname),
            Backend::Pool(_) => false,
        }
    }
}

/// `ais://bucket/obj` -> (`bucket`, `obj`).
fn split_cname(cname: &str) -> (&str, &str) {
    let rest = cname.split_once("://").map(|x| x.1).unwrap_or(cname);
    rest.split_once('/').unwrap_or((rest, ""))
}

pub struct EtlManager {
    envs: EnvManager,
    dir: PathBuf,
    target_url: String,
    worker_script: PathBuf,
    /// Every worker and transformer server this target runs, recorded from
    /// spawn until killed, so that a restart after a crash (SIGKILL) can kill
    /// what the previous run left — and only that.
    procs: Arc<ais_proc::PidRegistry>,
    runtimes: RwLock<HashMap<String, Arc<EtlRuntime>>>,
    /// Serialises starts of the same ETL (init from the proxy vs. metadata sync).
    starting: tokio::sync::Mutex<()>,
    pub logs_of_failed: Mutex<HashMap<String, LogSink>>,
    /// ETLs whose start failed here: generation and error (not retried for
    /// that generation, so a failing ETL in the metadata cannot loop).
    start_failures: Mutex<HashMap<String, (u64, String)>>,
    /// What the kernel lets this target do to confine ETL processes.
    host: Arc<sandbox::Host>,
    default_limits: Limits,
    /// Each ETL's own uid (= gid) from the host's range: one ETL's
    /// processes cannot signal, trace or read another's.
    uids: Mutex<HashMap<String, u32>>,
    /// The node's own data (its data dir, mountpaths): no path a spec names
    /// may lie inside (the sandbox would bind it back for the ETL's uid).
    protected: Vec<PathBuf>,
    /// Dependency installs get the host network (to reach a package index).
    deps_network: bool,
}

impl EtlManager {
    /// Paths of the node's own (its data dir, mountpaths, secret files)
    /// that a `runtime.command` may not name ([`EtlManager::check_named_path`]).
    pub fn protect(mut self, paths: impl IntoIterator<Item = PathBuf>) -> Self {
        for p in paths {
            let canon = std::fs::canonicalize(&p).ok();
            self.protected.push(p);
            self.protected.extend(canon);
        }
        self
    }

    /// Whether dependency installs get the host network: where ETLs may
    /// have it (auth on, or the operator's `AIS_ETL_ALLOW_HOST_NETWORK=1`);
    /// else loopback only (requirements the host meets, local indexes).
    pub fn deps_network(mut self, allowed: bool) -> Self {
        self.deps_network = allowed;
        self
    }

    /// A path a spec names (a command's executable, its arguments) and the
    /// sandbox would make readable for the ETL: refused inside the node's
    /// own data, as written and with its links resolved.
    fn check_named_path(&self, what: &str, p: &std::path::Path) -> Result<(), EtlError> {
        let canon = std::fs::canonicalize(p).ok();
        for q in std::iter::once(p.to_path_buf()).chain(canon) {
            // This node's, and any other node's on the host (a playground's
            // nodes share one): a mountpath holds `.ais-work`, a node's data
            // dir its `node.json` (a proxy's too: its users' password hashes).
            let node_data = q.ancestors().find(|a| {
                a.join(".ais-work").is_dir()
                    || a.join("node.json").is_file()
                    || (a.join("meta").is_dir() && a.join("etl").is_dir())
            });
            let found = self
                .protected
                .iter()
                .find(|d| q.starts_with(d))
                .map(PathBuf::as_path)
                .or(node_data);
            if let Some(d) = found {
                return Err(EtlError::Invalid(format!(
                    "{what} {} is inside a node's own data ({}): an ETL may not read it",
                    p.display(),
                    d.display()
                )));
            }
        }
        Ok(())
    }

    /// `dir`: this target's ETL work area; `env_cache`: the host-wide environment cache.
    pub fn new(
        dir: PathBuf,
        env_cache: PathBuf,
        python: Option<String>,
        target_url: String,
    ) -> Result<Self, EtlError> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| EtlError::Internal(format!("create {}: {e}", dir.display())))?;
        let procs = Arc::new(ais_proc::PidRegistry::new(dir.join(PID_REGISTRY)));
        kill_stale(&dir, &procs);
        // Nothing runs yet: what runtimes of an earlier run left goes.
        workdir::reset(&dir);
        let worker_script = dir.join("ais_etl_worker.py");
        std::fs::write(&worker_script, WORKER_PY)
            .map_err(|e| EtlError::Internal(format!("write worker script: {e}")))?;
        let tag = format!(
            "aistore-rs-etl-{:016x}",
            xxhash_rust::xxh64::xxh64(dir.as_os_str().as_encoded_bytes(), 0)
        );
        let host = Arc::new(sandbox::Host::detect(&tag));
        tracing::info!("etl sandbox: {host:?}");
        Ok(Self {
            envs: EnvManager::new(env_cache, python),
            dir,
            target_url,
            worker_script,
            procs,
            runtimes: RwLock::new(HashMap::new()),
            starting: tokio::sync::Mutex::new(()),
            logs_of_failed: Mutex::new(HashMap::new()),
            start_failures: Mutex::new(HashMap::new()),
            host,
            default_limits: sandbox::default_limits(),
            uids: Mutex::new(HashMap::new()),
            protected: Vec::new(),
            deps_network: false,
        })
    }

    /// The uid/gid ETL `name` runs as: its own, from the host's range (kept
    /// for the name while this target runs), else the host's shared one
    /// (`None`: not root, processes keep the target's).
    fn identity(&self, name: &str) -> Option<(u32, u32)> {
        let shared = self.host.ids.filter(|_| self.host.enabled);
        let Some((first, last)) = self.host.uid_range.filter(|_| shared.is_some()) else {
            return shared;
        };
        let mut m = self.uids.lock().ok()?;
        if let Some(u) = m.get(name) {
            return Some((*u, *u));
        }
        let span = u64::from(last - first) + 1;
        let start = xxhash_rust::xxh64::xxh64(name.as_bytes(), 0) % span;
        let used: std::collections::HashSet<u32> = m.values().copied().collect();
        let free = (0..span.min(1 << 20))
            .map(|i| first + ((start + i) % span) as u32)
            .find(|u| !used.contains(u));
        match free {
            Some(u) => {
                m.insert(name.to_string(), u);
                Some((u, u))
            }
            None => {
                tracing::warn!(
                    "etl: uid range {first}-{last} exhausted: {name} shares the default uid"
                );
                shared
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<EtlRuntime>> {
        self.runtimes.read().ok()?.get(name).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.runtimes
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Starts an ETL (no-op if this generation already runs). `default_pool`
    /// is the worker count when the spec leaves it to us.
    pub async fn start(
        &self,
        spec: EtlSpec,
        generation: u64,
        default_pool: usize,
    ) -> Result<(), EtlError> {
        let _g = self.starting.lock().await;
        // A start of this generation already failed here: not again (two
        // metadata syncs racing at start-up, or a later one, must not loop).
        if let Some((g, why)) = self.start_failure(&spec.name) {
            if g == generation {
                return Err(EtlError::Failed(why));
            }
        }
        if let Some(rt) = self.get(&spec.name) {
            if rt.generation == generation && rt.spec == spec {
                return Ok(());
            }
            self.stop(&spec.name);
        }
        let log = LogSink::default();
        let res = self
            .start_inner(&spec, generation, default_pool.max(1), log.clone())
            .await;
        match res {
            Ok(rt) => {
                if let Ok(mut m) = self.runtimes.write() {
                    m.insert(spec.name.clone(), Arc::new(rt));
                }
                if let Ok(mut f) = self.logs_of_failed.lock() {
                    f.remove(&spec.name);
                }
                if let Ok(mut f) = self.start_failures.lock() {
                    f.remove(&spec.name);
                }
                Ok(())
            }
            Err(e) => {
                log.line(&format!("init failed: {e}"));
                if let Ok(mut f) = self.start_failures.lock() {
                    f.insert(spec.name.clone(), (generation, e.to_string()));
                }
                if let Ok(mut f) = self.logs_of_failed.lock() {
                    f.insert(spec.name.clone(), log);
                }
                Err(e)
            }
        }
    }

    async fn start_inner(
        &self,
        spec: &EtlSpec,
        generation: u64,
        default_pool: usize,
        log: LogSink,
    ) -> Result<EtlRuntime, EtlError> {
        let t0 = Instant::now();
        let py = self.envs.resolve(&spec.runtime).await?;
        if let Kind::Class { python_minor } = &spec.kind {
            if python_minor != &py.minor {
                return Err(EtlError::Init(format!(
                    "init_class payload was serialised by Python {python_minor} but this cluster's runtime is Python {}; \
                     use a Python {} client",
                    py.minor, py.minor
                )));
            }
        }
        let mut deps = spec.deps.clone();
        if matches!(spec.kind, Kind::Class { .. }) {
            // Unpickling needs the SDK (for the ETLServer base class) and cloudpickle.
            deps.push_str("\ncloudpickle\naistore\n");
        }
        let mut build_ro = python_dirs(&py.exe);
        build_ro.extend(self.envs.default_python_dirs().unwrap_or_default());
        // An identity of its own: the install's code cannot reach the ETL's
        // processes, nor any other ETL's.
        let deps_ids = self.identity(&format!("~deps:{}", spec.name));
        let builder = env::Builder {
            host: self.host.clone(),
            ids: deps_ids,
            tracker: procs::Tracker::new(
                self.procs.clone(),
                format!("etl {} dependency install", spec.name),
            ),
            ro: build_ro,
            network: self.deps_network,
            timeout: spec.init_timeout,
            own_uid: deps_ids.is_some() && deps_ids != self.host.ids,
        };
        // The whole of it within the init timeout: waiting for another
        // target's build of the same environment (host-wide lock) included.
        let python = tokio::time::timeout(
            spec.init_timeout,
            self.envs.ensure(&py, &deps, &log, &builder),
        )
        .await
        .map_err(|_| {
            EtlError::Init(format!(
                "dependency install did not finish within {:?} (the ETL's init_timeout)",
                spec.init_timeout
            ))
        })??;
        // The target's own bounds too (its environment may differ from the
        // proxy's, and a start from metadata skips the proxy).
        spec.check_caps(&self.default_limits)?;
        let owner = self.identity(&spec.name);
        // A size-limited tmpfs where the sandbox is on (the target is root).
        let quota =
            workdir::workdir_limit().filter(|_| self.host.enabled && self.host.ids.is_some());
        let dirs = workdir::RuntimeDirs::create(&self.dir, &spec.name, owner, quota)
            .map_err(|e| EtlError::Internal(format!("work dir for etl {}: {e}", spec.name)))?;
        let workdir = dirs.work.clone();
        let limits = spec.limits.or(&self.default_limits);
        let mut ro = vec![self.worker_script.clone(), dirs.code_dir.clone()];
        if python == py.exe {
            ro.extend(python_dirs(&python));
        } else if let Some(env_dir) = std::path::Path::new(&python)
            .parent()
            .and_then(|b| b.parent())
        {
            // The environment's own dir only, never where its `bin/python`
            // link points: the install wrote that link.
            ro.push(env_dir.to_path_buf());
        }
        ro.extend(python_dirs(&py.exe));
        if let Some(d) = self.envs.default_python_dirs() {
            ro.extend(d);
        }
        // Private home and temp dir, owned by the sandbox's uid.
        let mut env = vec![
            ("HOME".to_string(), workdir.display().to_string()),
            ("TMPDIR".to_string(), dirs.tmp().display().to_string()),
        ];
        env.extend(spec.env.iter().cloned());
        let (mode, code_path, func, arg_type) = match &spec.kind {
            Kind::Code {
                code,
                func,
                arg_type,
                fresh_process,
            } => {
                // Next to nothing the worker can write: the node's own copy.
                let p = dirs
                    .write_code("code.py", code)
                    .map_err(|e| EtlError::Internal(format!("write etl code: {e}")))?;
                let mode = match (spec.comm, fresh_process) {
                    (Comm::Io, true) => "fresh",
                    (Comm::Io, false) => "io",
                    _ => "func",
                };
                (
                    mode,
                    p.display().to_string(),
                    func.clone(),
                    arg_type.clone(),
                )
            }
            Kind::Class { .. } => ("class", String::new(), String::new(), String::new()),
            Kind::Command { command } => {
                // The command's own files (its executable, absolute paths in
                // its arguments) must stay readable in the sandbox.
                if let Some(exe) = command.first() {
                    self.check_named_path("runtime.command's executable", exe.as_ref())?;
                    for d in python_dirs(exe) {
                        self.check_named_path("runtime.command's executable's prefix", &d)?;
                        ro.push(d);
                    }
                }
                for p in command
                    .iter()
                    .skip(1)
                    .map(std::path::PathBuf::from)
                    .filter(|p| p.is_absolute() && p.exists())
                {
                    self.check_named_path("runtime.command's argument", &p)?;
                    // The bind makes a file visible, never readable beyond
                    // its permissions: the ETL's uid must reach it itself.
                    if let Some((uid, gid)) = owner.filter(|_| self.host.enabled) {
                        if !sandbox::reachable(&p, uid, gid) {
                            return Err(EtlError::Invalid(format!(
                                "runtime.command's argument {} is not readable by the ETL's \
                                 uid {uid} (a directory above it, or the file, is closed to \
                                 it): put the command's files where that uid can read them",
                                p.display()
                            )));
                        }
                    }
                    // Bound as checked, not wherever a link points later.
                    ro.push(std::fs::canonicalize(&p).unwrap_or(p));
                }
                // Transformer servers must listen where the target reaches
                // them: they keep the host network (uid, limits, kill apply).
                let sb = sandbox::Sandbox::new(
                    self.host.clone(),
                    &spec.name,
                    limits.clone(),
                    true,
                    &workdir,
                    &ro,
                    owner,
                )?;
                let info = sb.info();
                // The command finds the environment's interpreter first on PATH.
                if let Some(bin) = std::path::Path::new(&python)
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                {
                    let path = std::env::var("PATH").unwrap_or_default();
                    env.push(("PATH".into(), format!("{}:{path}", bin.display())));
                }
                let cfg = server::ServerCfg {
                    command: command.clone(),
                    env,
                    workdir: workdir.display().to_string(),
                    comm: spec.comm,
                    ready_timeout: spec.init_timeout,
                    target_url: format!("{}/v1/etl/_object/{}", self.target_url, spec.name),
                    tracker: procs::Tracker::new(
                        self.procs.clone(),
                        format!("etl {} server", spec.name),
                    ),
                    sandbox: Some(Arc::new(sb)),
                    max_output: limits.output,
                };
                let srv = server::CommandServer::start(&cfg, &log).await?;
                log.line(&format!(
                    "ETL {} ready: transformer server {:?} in {:?}",
                    spec.name,
                    command,
                    t0.elapsed()
                ));
                return Ok(EtlRuntime {
                    spec: spec.clone(),
                    generation,
                    backend: Backend::Server(Box::new(srv)),
                    log,
                    stats: Counters::default(),
                    errors: Mutex::new(VecDeque::new()),
                    python: String::new(),
                    sandbox: Some(info),
                    batcher: None,
                    _dirs: dirs,
                });
            }
        };
        let config = serde_json::json!({
            "mode": mode,
            "code_path": code_path,
            "func": func,
            "arg_type": arg_type,
            "workdir": workdir.display().to_string(),
            "obj_timeout": spec.obj_timeout.as_secs_f64(),
        });
        let sb = sandbox::Sandbox::new(
            self.host.clone(),
            &spec.name,
            limits.clone(),
            spec.network,
            &workdir,
            &ro,
            owner,
        )?;
        let info = sb.info();
        let gpus = if spec.cuda { host_gpus() } else { Vec::new() };
        if spec.cuda && gpus.is_empty() {
            return Err(EtlError::Init(format!(
                "etl {} asks for device \"cuda\", but this target's host has no GPU \
                 (nvidia-smi lists none; AIS_ETL_GPUS=0,1,... names them explicitly)",
                spec.name
            )));
        }
        let cfg = worker::WorkerCfg {
            python,
            script: self.worker_script.display().to_string(),
            config: config.to_string(),
            env,
            workdir: workdir.display().to_string(),
            ready_timeout: spec.init_timeout,
            tracker: procs::Tracker::new(self.procs.clone(), format!("etl {} worker", spec.name)),
            sandbox: Some(Arc::new(sb)),
            max_output: limits.output,
            gpus: gpus.clone(),
        };
        let size = if spec.pool_size > 0 {
            spec.pool_size
        } else if !gpus.is_empty() {
            gpus.len() // one worker per GPU
        } else {
            default_pool
        };
        let pool = pool::Pool::start(cfg, size, log.clone()).await?;
        log.line(&format!(
            "ETL {} ready: {size} worker(s), Python {}, {} in {:?}",
            spec.name,
            py.version,
            spec.comm.as_str(),
            t0.elapsed()
        ));
        let batcher = pool.batches().then(|| {
            log.line(&format!(
                "transform_batch found: calls are gathered in batches of up to {} ({:?})",
                spec.batch_size, spec.batch_wait
            ));
            spawn_batcher(
                pool.clone(),
                spec.batch_size,
                spec.batch_wait,
                spec.obj_timeout,
            )
        });
        Ok(EtlRuntime {
            batcher,
            spec: spec.clone(),
            generation,
            backend: Backend::Pool(pool),
            log,
            stats: Counters::default(),
            errors: Mutex::new(VecDeque::new()),
            python: py.version,
            sandbox: Some(info),
            _dirs: dirs,
        })
    }

    /// The generation and error of this ETL's failed start here, if any.
    pub fn start_failure(&self, name: &str) -> Option<(u64, String)> {
        self.start_failures.lock().ok()?.get(name).cloned()
    }

    /// Stats of every ETL this target knows: running and failed ones.
    pub fn all_stats(&self, target_id: &str) -> std::collections::BTreeMap<String, TargetEtlStats> {
        let mut all: std::collections::BTreeMap<String, TargetEtlStats> = self
            .names()
            .into_iter()
            .filter_map(|n| self.get(&n).map(|rt| (n, rt.stats(target_id))))
            .collect();
        if let Ok(f) = self.start_failures.lock() {
            for (n, (_, err)) in f.iter() {
                all.entry(n.clone())
                    .or_insert_with(|| self.failed_stats(target_id, err));
            }
        }
        all
    }

    /// Stats of one ETL: running, or failed to start here.
    pub fn stats_of(&self, name: &str, target_id: &str) -> Option<TargetEtlStats> {
        if let Some(rt) = self.get(name) {
            return Some(rt.stats(target_id));
        }
        self.start_failure(name)
            .map(|(_, err)| self.failed_stats(target_id, &err))
    }

    fn failed_stats(&self, target_id: &str, err: &str) -> TargetEtlStats {
        TargetEtlStats {
            target_id: target_id.to_string(),
            stage: "Failed".into(),
            error: err.to_string(),
            ..Default::default()
        }
    }

    /// Stops and forgets an ETL's runtime on this target; its workers die now.
    pub fn stop(&self, name: &str) -> bool {
        if let Ok(mut f) = self.start_failures.lock() {
            f.remove(name);
        }
        let rt = self.runtimes.write().ok().and_then(|mut m| m.remove(name));
        match rt {
            Some(rt) => {
                rt.stop();
                rt.log.line("stopped");
                if let Ok(mut f) = self.logs_of_failed.lock() {
                    f.insert(name.to_string(), rt.log.clone());
                }
                true
            }
            None => false,
        }
    }

    pub fn stop_all(&self) {
        for n in self.names() {
            self.stop(&n);
        }
    }

    pub fn log_text(&self, name: &str) -> Option<String> {
        if let Some(rt) = self.get(name) {
            return Some(rt.log.text());
        }
        self.logs_of_failed
            .lock()
            .ok()?
            .get(name)
            .map(LogSink::text)
    }
}

/// Directories an interpreter (or a command) needs readable: its
/// environment (`<prefix>/bin/python` -> `<prefix>`) and, through symlinks,
/// the installation it runs from. Bare names are looked up on PATH.
fn python_dirs(exe: &str) -> Vec<PathBuf> {
    let p = std::path::Path::new(exe);
    let p = if p.is_absolute() {
        p.to_path_buf()
    } else if let Some(found) = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(exe))
        .find(|c| c.is_file())
    {
        found
    } else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for q in [Some(p.clone()), std::fs::canonicalize(&p).ok()]
        .into_iter()
        .flatten()
    {
        if let Some(prefix) = q.parent().and_then(std::path::Path::parent) {
            if prefix.parent().is_some() && !out.contains(&prefix.to_path_buf()) {
                out.push(prefix.to_path_buf());
            }
        }
    }
    out
}

impl Drop for EtlManager {
    fn drop(&mut self) {
        self.stop_all();
        self.host.cleanup(Duration::from_secs(1));
    }
}

/// Kills what a previous run of this target left behind (after a SIGKILL:
/// children of user code that outlived their worker, a worker that missed
/// its parent-death signal) — only entries whose start time and token prove
/// they are the processes recorded; a reused pid is never signalled. Files of
/// the older format (a bare pid list per ETL directory) prove nothing: they
/// are removed unread. Errors are logged: they must not keep a target down.
fn kill_stale(dir: &std::path::Path, procs: &ais_proc::PidRegistry) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let old = e.path().join(PID_REGISTRY);
            if e.path().is_dir() && old.is_file() {
                let _ = std::fs::remove_file(old);
            }
        }
    }
    match procs.kill_stale(ais_proc::SIGKILL) {
        Ok(killed) => {
            if !killed.is_empty() {
                tracing::warn!("etl: killed processes left by a previous run: {killed:?}");
            }
            // SIGKILLed (group-wide): gone as far as this run is concerned.
            for pid in killed {
                if let Err(e) = procs.remove(pid) {
                    tracing::warn!("etl: {e}");
                }
            }
        }
        Err(e) => tracing::warn!("etl: cannot clean up after a previous run: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds() {
        let cases = [
            (
                EtlError::Invalid("x".into()),
                EtlErrorKind::Invalid,
                "invalid",
            ),
            (EtlError::Init("x".into()), EtlErrorKind::Init, "init"),
            (
                EtlError::NotFound("x".into()),
                EtlErrorKind::NotFound,
                "not_found",
            ),
            (EtlError::Stopped, EtlErrorKind::Stopped, "stopped"),
            (
                EtlError::Transform {
                    etype: "ValueError".into(),
                    emsg: "bad".into(),
                    trace: "Traceback".into(),
                },
                EtlErrorKind::Transform,
                "transform",
            ),
            (
                EtlError::Timeout(Duration::from_secs(1)),
                EtlErrorKind::Timeout,
                "timeout",
            ),
            (
                EtlError::WorkerDied("x".into()),
                EtlErrorKind::WorkerDied,
                "worker_died",
            ),
            (EtlError::Limit("x".into()), EtlErrorKind::Limit, "limit"),
            (EtlError::Failed("x".into()), EtlErrorKind::Failed, "failed"),
            (
                EtlError::Internal("x".into()),
                EtlErrorKind::Internal,
                "internal",
            ),
        ];
        for (e, kind, json) in cases {
            assert_eq!(e.kind(), kind, "{e:?}");
            assert_eq!(serde_json::to_value(kind).unwrap(), json);
            let back: EtlErrorKind = serde_json::from_value(json.into()).unwrap();
            assert_eq!(back, kind);
        }
    }

    #[test]
    fn messages_are_unchanged() {
        assert_eq!(
            EtlError::NotFound("md5-etl".into()).to_string(),
            "etl job md5-etl does not exist"
        );
        assert_eq!(EtlError::Stopped.to_string(), "ETL is stopped");
        assert_eq!(
            EtlError::Timeout(Duration::from_secs(45)).to_string(),
            "transform timed out after 45s (the worker was replaced)"
        );
        assert_eq!(
            EtlError::WorkerDied("worker process exited with status 3".into()).to_string(),
            "worker process exited with status 3 (the worker was replaced)"
        );
        let t = EtlError::Transform {
            etype: "ValueError".into(),
            emsg: "bad".into(),
            trace: "Traceback".into(),
        };
        assert_eq!(t.to_string(), "ValueError: bad\nTraceback");
    }

    fn sleeper() -> (std::process::Child, ais_proc::ProcId) {
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("60");
        let opts = ais_proc::SpawnOpts {
            own_group: true,
            ..Default::default()
        };
        ais_proc::spawn(&mut cmd, &opts).unwrap()
    }

    fn manager(etl: &std::path::Path) -> EtlManager {
        EtlManager::new(
            etl.to_path_buf(),
            etl.join("envs"),
            None,
            "http://127.0.0.1:1".into(),
        )
        .unwrap()
    }

    /// A restarted target kills what its registry proves it started, and
    /// nothing else: not an entry whose start time differs (a reused pid),
    /// not the pids of an older format's files.
    #[test]
    fn start_up_kills_only_provable_leftovers() {
        use crate::testutil::{alive, TempDir};
        let dir = TempDir::new();
        let etl = dir.path().join("etl");
        let (mut ours, ours_id) = sleeper();
        let (mut other, other_id) = sleeper();
        let reg = ais_proc::PidRegistry::new(etl.join(PID_REGISTRY));
        reg.record(&ours_id, "etl left-over worker").unwrap();
        let reused = ais_proc::ProcId {
            start_time: other_id.start_time + 1,
            ..other_id.clone()
        };
        reg.record(&reused, "etl reused worker").unwrap();
        // The older format: a bare pid list per ETL directory.
        let old = etl.join("old-etl").join(PID_REGISTRY);
        std::fs::create_dir_all(old.parent().unwrap()).unwrap();
        std::fs::write(&old, format!("[{}]", other_id.pid)).unwrap();

        let m = manager(&etl);
        let st = ours.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));
        std::thread::sleep(Duration::from_millis(200));
        assert!(alive(other_id.pid), "an unproven entry was signalled");
        assert!(!old.exists(), "the old-format file stays");
        assert!(reg.entries().unwrap().is_empty(), "{:?}", reg.entries());
        drop(m);

        // An old-format registry file in the new place does not stop a start.
        std::fs::write(etl.join(PID_REGISTRY), format!("[{}]", other_id.pid)).unwrap();
        drop(manager(&etl));
        std::thread::sleep(Duration::from_millis(200));
        assert!(alive(other_id.pid));
        ais_proc::stop(&mut other, Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn obj_error_json() {
        let e = ObjError {
            obj_name: "ais://b/o".into(),
            msg: "transform timed out".into(),
            kind: EtlError::Timeout(Duration::from_secs(1)).kind(),
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"obj_name": "ais://b/o", "msg": "transform timed out", "kind": "timeout"})
        );
    }
}
