//! One persistent Python worker process and the framed protocol to it (a Unix
//! socket on the worker's fd 3; stdout/stderr go to the ETL log). Each worker
//! runs in its own process group with a parent-death signal, and also exits by
//! itself when its parent changes, so no worker outlives its target.

use crate::logs::LogSink;
use crate::procs::{Proc, Tracker};
use ais_proc::ProcId;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::os::unix::io::AsRawFd;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// glibc malloc settings of ETL workers: allocations up to 32 MiB from the
/// heap, freed memory kept up to 128 MiB (see `Worker::spawn`).
pub const WORKER_MALLOC_TUNABLES: &str =
    "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=134217728";

/// How a worker is started.
#[derive(Debug, Clone)]
pub struct WorkerCfg {
    pub python: String,
    pub script: String,
    /// JSON for the worker's `AIS_ETL_WORKER_CONFIG`.
    pub config: String,
    pub env: Vec<(String, String)>,
    pub workdir: String,
    pub ready_timeout: Duration,
    /// Where workers are recorded while they live.
    pub tracker: Tracker,
    /// The OS sandbox workers run in (none in unit tests of the pool).
    pub sandbox: Option<std::sync::Arc<crate::sandbox::Sandbox>>,
    /// The most bytes one response may carry.
    pub max_output: Option<u64>,
    /// `device: cuda`: the GPUs workers are spread over (worker slot `i`
    /// sees only `gpus[i % len]` through `CUDA_VISIBLE_DEVICES`).
    pub gpus: Vec<String>,
}

#[derive(Serialize)]
struct Req<'a> {
    id: u64,
    path: &'a str,
    len: usize,
    args: &'a str,
}

#[derive(Deserialize, Debug, Default)]
struct Resp {
    #[serde(default)]
    id: u64,
    ok: bool,
    #[serde(default)]
    len: usize,
    #[serde(default)]
    etype: String,
    #[serde(default)]
    emsg: String,
    #[serde(default)]
    trace: String,
    #[serde(default)]
    pid: u32,
    /// Ready message: whether the code has `transform_batch`; batch
    /// response: one entry per item.
    #[serde(default)]
    batch: serde_json::Value,
}

#[derive(Serialize)]
struct BatchReq<'a> {
    id: u64,
    batch: Vec<Req<'a>>,
}

/// One item of a batch call: its output, or the error its transform raised.
pub type ItemResult = Result<Bytes, (String, String, String)>;

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// The transform raised; the worker is fine.
    User {
        etype: String,
        emsg: String,
        trace: String,
    },
    Timeout,
    /// The worker died or the protocol broke; it must be replaced.
    Died(String),
    /// The worker went over one of its limits (killed for memory, CPU time,
    /// or answered more than the output limit); it must be replaced.
    Limit(String),
}

/// Why a worker did not start. The text is what users see (in the init
/// error and the ETL log), e.g. the user code's traceback.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("socketpair: {0}")]
    Socketpair(std::io::Error),
    #[error("cannot start {python}: {err}")]
    Exec { python: String, err: std::io::Error },
    #[error("{0}")]
    Socket(std::io::Error),
    /// Importing/initialising the user code raised.
    #[error("{etype}: {emsg}\n{trace}")]
    Raised {
        etype: String,
        emsg: String,
        trace: String,
    },
    /// `tail`: the last lines the worker printed.
    #[error("worker exited during start-up ({status}):\n{tail}")]
    Exited { status: String, tail: String },
    #[error("worker did not become ready within {0:?} (importing the code took too long?)")]
    NotReady(Duration),
}

impl From<SpawnError> for crate::EtlError {
    fn from(e: SpawnError) -> Self {
        crate::EtlError::Init(e.to_string())
    }
}

pub struct Worker {
    /// Killed (with its process group) and forgotten when dropped.
    proc: Proc,
    sock: UnixStream,
    /// The pid the worker reports (`os.getpid()`), as users see it.
    pub pid: u32,
    next_id: u64,
    max_output: Option<u64>,
    batch: bool,
    /// Which pool slot (and so which GPU) the worker fills.
    pub slot: usize,
}

/// Frame headers are small JSON; a longer one means a broken stream.
const MAX_HEADER: usize = 16 << 20;
/// The most a payload's buffer is sized for before its bytes arrive.
const MAX_PREALLOC: usize = 64 << 20;

/// A response whose payload is over the output limit.
#[derive(Debug)]
struct OutputTooLarge(usize, u64);

impl std::fmt::Display for OutputTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "worker exceeded its output limit ({}): it returned {} bytes",
            crate::sandbox::fmt_size(self.1),
            self.0
        )
    }
}

impl std::error::Error for OutputTooLarge {}

async fn read_frame(
    sock: &mut UnixStream,
    max_output: Option<u64>,
) -> std::io::Result<(Resp, Bytes)> {
    let hlen = sock.read_u32().await? as usize;
    if hlen > MAX_HEADER {
        return Err(std::io::Error::other("oversized frame header"));
    }
    let mut h = vec![0u8; hlen];
    sock.read_exact(&mut h).await?;
    let resp: Resp = serde_json::from_slice(&h).map_err(std::io::Error::other)?;
    if let Some(max) = max_output.filter(|m| resp.len as u64 > *m) {
        return Err(std::io::Error::other(OutputTooLarge(resp.len, max)));
    }
    // The length comes from the worker: allocate as the bytes arrive, not up
    // front, so a bogus length cannot make us allocate a huge buffer.
    let mut payload = Vec::with_capacity(resp.len.min(MAX_PREALLOC));
    if resp.len > 0 {
        let got = (&mut *sock)
            .take(resp.len as u64)
            .read_to_end(&mut payload)
            .await?;
        if got != resp.len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "failed to fill whole buffer",
            ));
        }
    }
    Ok((resp, Bytes::from(payload)))
}

impl Worker {
    /// Starts a worker and waits for it to import the user code.
    pub async fn spawn(cfg: &WorkerCfg, log: &LogSink, slot: usize) -> Result<Worker, SpawnError> {
        let (ours, theirs) =
            std::os::unix::net::UnixStream::pair().map_err(SpawnError::Socketpair)?;
        // A clean environment: nothing of the target's reaches user code.
        let mut cmd = crate::procs::clean_command(&cfg.python, &[]);
        cmd.arg("-u")
            .arg(&cfg.script)
            .current_dir(&cfg.workdir)
            .env("AIS_ETL_WORKER_CONFIG", &cfg.config)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            // A pool already runs one process per core: keep each worker's
            // math libraries single-threaded (as PyTorch's DataLoader does for
            // its workers); spinning OpenMP threads would otherwise fight over
            // the cores. A spec's own env overrides these.
            .env("OMP_NUM_THREADS", "1")
            .env("MKL_NUM_THREADS", "1")
            .env("OPENBLAS_NUM_THREADS", "1");
        // Transform outputs of a few hundred KiB each: glibc would map and
        // unmap every one of them (its mmap threshold is 128 KiB), paying
        // page faults and zeroing per item; keep them on the heap. An
        // operator's own GLIBC_TUNABLES is left alone.
        match std::env::var_os("GLIBC_TUNABLES") {
            Some(own) => cmd.env("GLIBC_TUNABLES", own),
            None => cmd.env("GLIBC_TUNABLES", WORKER_MALLOC_TUNABLES),
        };
        cmd.env("AIS_ETL_WORKER_SLOT", slot.to_string());
        if !cfg.gpus.is_empty() {
            cmd.env("CUDA_VISIBLE_DEVICES", &cfg.gpus[slot % cfg.gpus.len()]);
        }
        for (k, v) in &cfg.env {
            cmd.env(k, v);
        }
        let spawned = crate::procs::spawn_isolated(
            &mut cmd,
            Some(theirs.as_raw_fd()),
            &cfg.tracker,
            log,
            cfg.sandbox.as_deref(),
        );
        // Our copy of the child's end (the child has its own after fork).
        drop(theirs);
        let mut proc = spawned.map_err(|err| SpawnError::Exec {
            python: cfg.python.clone(),
            err,
        })?;
        let pid = proc.id.pid;
        crate::logs::capture_output(&mut proc.child, log);
        ours.set_nonblocking(true).map_err(SpawnError::Socket)?;
        let mut sock = UnixStream::from_std(ours).map_err(SpawnError::Socket)?;
        let ready = tokio::time::timeout(cfg.ready_timeout, read_frame(&mut sock, None)).await;
        match ready {
            Ok(Ok((r, _))) if r.ok => Ok(Worker {
                proc,
                sock,
                pid: if r.pid != 0 { r.pid } else { pid },
                next_id: 1,
                max_output: cfg.max_output,
                batch: r.batch.as_bool().unwrap_or(false),
                slot,
            }),
            Ok(Ok((r, _))) => {
                proc.kill();
                Err(SpawnError::Raised {
                    etype: r.etype,
                    emsg: r.emsg,
                    trace: r.trace,
                })
            }
            Ok(Err(_)) => {
                // Give stderr a moment to reach the log, then report what the worker printed.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let status = proc.child.try_wait().ok().flatten();
                let limit = proc.jail.limit_death(status);
                proc.kill();
                let tail: Vec<String> = log
                    .text()
                    .lines()
                    .rev()
                    .take(8)
                    .map(str::to_string)
                    .collect();
                let tail: Vec<String> = tail.into_iter().rev().collect();
                let status = status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "running".into());
                Err(SpawnError::Exited {
                    status: match limit {
                        Some(why) => format!("{status}: {why}"),
                        None => status,
                    },
                    tail: tail.join("\n"),
                })
            }
            Err(_) => {
                proc.kill();
                Err(SpawnError::NotReady(cfg.ready_timeout))
            }
        }
    }

    /// Transforms one object (by path, or by bytes when `data` is given).
    pub async fn call(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        args: &str,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        let id = self.next_id;
        self.next_id += 1;
        let hdr = serde_json::to_vec(&Req {
            id,
            path,
            len: data.map(<[u8]>::len).unwrap_or(0),
            args,
        })
        .map_err(|e| CallError::Died(e.to_string()))?;
        let (r, payload) = self
            .exchange(id, &hdr, data.into_iter(), self.max_output, timeout)
            .await?;
        if r.ok {
            Ok(payload)
        } else {
            Err(CallError::User {
                etype: r.etype,
                emsg: r.emsg,
                trace: r.trace,
            })
        }
    }

    /// Sends one framed request (header, then `payloads`) and reads the
    /// answer to request `id`, within `timeout`. A broken stream is the
    /// worker's death, reported with why it died (a limit, a signal).
    async fn exchange<'a>(
        &mut self,
        id: u64,
        hdr: &[u8],
        payloads: impl Iterator<Item = &'a [u8]>,
        max_output: Option<u64>,
        timeout: Duration,
    ) -> Result<(Resp, Bytes), CallError> {
        let io = async {
            let mut frame = Vec::with_capacity(4 + hdr.len());
            frame.extend_from_slice(&(hdr.len() as u32).to_be_bytes());
            frame.extend_from_slice(hdr);
            self.sock.write_all(&frame).await?;
            for d in payloads {
                self.sock.write_all(d).await?;
            }
            read_frame(&mut self.sock, max_output).await
        };
        match tokio::time::timeout(timeout, io).await {
            Err(_) => Err(CallError::Timeout),
            Ok(Err(e)) => {
                if let Some(big) = e.get_ref().and_then(|i| i.downcast_ref::<OutputTooLarge>()) {
                    return Err(CallError::Limit(big.to_string()));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                let mut st = self.proc.child.try_wait().ok().flatten();
                if st.is_none() {
                    // The OOM killer may have taken a child first: give the worker a moment.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    st = self.proc.child.try_wait().ok().flatten();
                }
                if let Some(why) = self.proc.jail.limit_death(st) {
                    return Err(CallError::Limit(why));
                }
                Err(CallError::Died(match st {
                    Some(s) => describe_exit(s),
                    None => format!("connection to worker lost: {e}"),
                }))
            }
            Ok(Ok((r, _))) if r.id != id => Err(CallError::Died(format!(
                "protocol error: response {} for request {id}",
                r.id
            ))),
            Ok(Ok(x)) => Ok(x),
        }
    }

    /// Whether the worker's code defines `transform_batch`.
    pub fn batches(&self) -> bool {
        self.batch
    }

    /// Transforms several objects in one exchange (see the worker's batch
    /// protocol); per-item user errors come back per item.
    pub async fn call_batch(
        &mut self,
        items: &[(&str, &[u8], &str)],
        timeout: Duration,
    ) -> Result<Vec<ItemResult>, CallError> {
        let id = self.next_id;
        self.next_id += 1;
        let max_output = self
            .max_output
            .map(|m| m.saturating_mul(items.len().max(1) as u64));
        let hdr = serde_json::to_vec(&BatchReq {
            id,
            batch: items
                .iter()
                .map(|(path, data, args)| Req {
                    id,
                    path,
                    len: data.len(),
                    args,
                })
                .collect(),
        })
        .map_err(|e| CallError::Died(e.to_string()))?;
        let (r, payload) = self
            .exchange(
                id,
                &hdr,
                items.iter().map(|(_, d, _)| *d),
                max_output,
                timeout,
            )
            .await?;
        let metas: Vec<Resp> = serde_json::from_value(r.batch)
            .map_err(|e| CallError::Died(format!("protocol error: batch response: {e}")))?;
        if metas.len() != items.len() {
            return Err(CallError::Died(format!(
                "protocol error: {} results for {} items",
                metas.len(),
                items.len()
            )));
        }
        let mut off = 0usize;
        let mut out = Vec::with_capacity(metas.len());
        for m in metas {
            if m.ok {
                if off + m.len > payload.len() {
                    return Err(CallError::Died(
                        "protocol error: batch payload too short".into(),
                    ));
                }
                out.push(Ok(payload.slice(off..off + m.len)));
                off += m.len;
            } else {
                out.push(Err((m.etype, m.emsg, m.trace)));
            }
        }
        Ok(out)
    }

    /// SIGKILL to the worker's process group now; forgets it in the registry.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// The identity of the process the worker was started as.
    pub fn id(&self) -> &ProcId {
        &self.proc.id
    }
}

fn describe_exit(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (_, Some(sig)) => {
            let name = match sig {
                libc::SIGSEGV => "SIGSEGV (segmentation fault)",
                libc::SIGKILL => "SIGKILL (killed, possibly out of memory)",
                libc::SIGABRT => "SIGABRT (aborted)",
                libc::SIGBUS => "SIGBUS",
                _ => "a signal",
            };
            format!("worker process died from {name} [{sig}]")
        }
        (Some(c), _) => format!("worker process exited with status {c}"),
        _ => "worker process died".into(),
    }
}
