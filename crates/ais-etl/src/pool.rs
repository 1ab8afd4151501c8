//! A target's pool of persistent workers for one ETL. A request takes an idle
//! worker, and gives it back when done; a worker that hangs past the object
//! timeout or dies is killed and replaced in the background while the pool
//! keeps serving with the rest.

use crate::logs::LogSink;
use crate::worker::{CallError, Worker, WorkerCfg};
use crate::EtlError;
use bytes::Bytes;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

pub struct Pool {
    cfg: WorkerCfg,
    log: LogSink,
    idle: Mutex<Vec<Worker>>,
    sem: Semaphore,
    pids: Mutex<HashSet<u32>>,
    stopped: AtomicBool,
    pub size: usize,
}

impl Pool {
    /// Starts `size` workers in parallel; fails (leaving nothing running) if any fails.
    pub async fn start(cfg: WorkerCfg, size: usize, log: LogSink) -> Result<Arc<Pool>, EtlError> {
        let futs = (0..size).map(|_| Worker::spawn(&cfg, &log));
        let results = futures::future::join_all(futs).await;
        let mut workers = Vec::new();
        let mut first_err = None;
        for r in results {
            match r {
                Ok(w) => workers.push(w),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            drop(workers); // kills them
            return Err(e.into());
        }
        let pids = workers.iter().map(|w| w.pid).collect();
        Ok(Arc::new(Pool {
            cfg,
            log,
            idle: Mutex::new(workers),
            sem: Semaphore::new(size),
            pids: Mutex::new(pids),
            stopped: AtomicBool::new(false),
            size,
        }))
    }

    pub async fn call(
        self: &Arc<Self>,
        path: &str,
        data: Option<&[u8]>,
        args: &str,
        timeout: Duration,
    ) -> Result<Bytes, EtlError> {
        let permit = self.sem.acquire().await.map_err(|_| EtlError::Stopped)?;
        let worker = self.idle.lock().ok().and_then(|mut v| v.pop());
        let Some(mut w) = worker else {
            return Err(EtlError::Internal(
                "no idle worker despite a free slot".into(),
            ));
        };
        match w.call(path, data, args, timeout).await {
            Ok(out) => {
                self.give_back(w);
                drop(permit);
                Ok(out)
            }
            Err(CallError::User { etype, emsg, trace }) => {
                self.give_back(w);
                drop(permit);
                Err(EtlError::Transform { etype, emsg, trace })
            }
            Err(_) if self.stopped.load(Ordering::Relaxed) => {
                // Killed by stop() mid-call: not a crash, and nothing to replace.
                drop(w);
                drop(permit);
                Err(EtlError::Stopped)
            }
            Err(e) => {
                // The slot stays taken until a replacement is ready.
                permit.forget();
                w.kill();
                self.forget_pid(w.pid);
                drop(w);
                let err = match e {
                    CallError::Timeout => EtlError::Timeout(timeout),
                    CallError::Died(why) => EtlError::WorkerDied(why),
                    CallError::User { .. } => EtlError::Internal("unreachable".into()),
                };
                self.log.line(&format!("worker replaced: {err}"));
                self.respawn();
                Err(err)
            }
        }
    }

    fn give_back(&self, w: Worker) {
        if self.stopped.load(Ordering::Relaxed) {
            return; // dropped => killed
        }
        if let Ok(mut v) = self.idle.lock() {
            v.push(w);
        }
    }

    fn forget_pid(&self, pid: u32) {
        if let Ok(mut p) = self.pids.lock() {
            p.remove(&pid);
        }
    }

    fn respawn(self: &Arc<Self>) {
        let pool = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            while !pool.stopped.load(Ordering::Relaxed) {
                match Worker::spawn(&pool.cfg, &pool.log).await {
                    Ok(w) => {
                        if pool.stopped.load(Ordering::Relaxed) {
                            return;
                        }
                        if let Ok(mut p) = pool.pids.lock() {
                            p.insert(w.pid);
                        }
                        if let Ok(mut v) = pool.idle.lock() {
                            v.push(w);
                        }
                        pool.sem.add_permits(1);
                        return;
                    }
                    Err(e) => {
                        pool.log
                            .line(&format!("failed to start a replacement worker: {e}"));
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
    }

    /// Kills every worker now, busy or idle; pending and later calls fail with `Stopped`.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.sem.close();
        if let Ok(mut v) = self.idle.lock() {
            v.clear();
        }
        if let Ok(p) = self.pids.lock() {
            for pid in p.iter() {
                // SAFETY: signalling worker process groups we created.
                unsafe {
                    libc::kill(-(*pid as i32), libc::SIGKILL);
                }
            }
        }
    }

    pub fn pids(&self) -> Vec<u32> {
        self.pids
            .lock()
            .map(|p| p.iter().copied().collect())
            .unwrap_or_default()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop();
    }
}
