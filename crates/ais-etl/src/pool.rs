//! A target's pool of persistent workers for one ETL. A request takes an idle
//! worker, and gives it back when done; a worker that hangs past the object
//! timeout or dies is killed and replaced in the background while the pool
//! keeps serving with the rest.
//!
//! Invariants (between the pool's short critical sections):
//! - every live worker is either in `idle` or held by exactly one [`Lease`]
//!   (a call in flight), and its pid and identity are in `pids` (and, with
//!   a registry, recorded there from spawn until it is killed);
//! - the semaphore's free permits equal `idle.len()`; a lease holds one
//!   permit; a worker that is killed takes its permit with it (forgotten)
//!   until its replacement is in `idle`, when `respawn` adds it back.
//!
//! A call's worker is only ever reused after a complete response frame was
//! read; whatever else ends a call (timeout, death, the caller dropping the
//! future mid-frame, a panic) kills and replaces it, through the lease's drop.

use crate::logs::LogSink;
use crate::worker::{CallError, SpawnError, Worker, WorkerCfg};
use crate::EtlError;
use ais_proc::ProcId;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};

pub struct Pool {
    /// The code defines `transform_batch` (workers take batches).
    batches: bool,
    cfg: WorkerCfg,
    log: LogSink,
    idle: Mutex<Vec<Worker>>,
    sem: Semaphore,
    /// Live workers: reported pid -> the identity they were started with.
    pids: Mutex<HashMap<u32, ProcId>>,
    /// Set under the `idle` lock, so no worker is added to `idle` after `stop`.
    stopped: AtomicBool,
    /// Where replacements start (a lease may be dropped outside any task).
    rt: tokio::runtime::Handle,
    pub size: usize,
    /// Crashes since the last served call, most recent last: when, and on
    /// what (the object's name; "" for a replacement that failed to start).
    crashes: Mutex<VecDeque<(Instant, String)>>,
    /// Set once the pool gave up (too many crashes): why. Calls fail with it.
    failed: Mutex<Option<String>>,
    crash_limit: CrashLimit,
}

/// A pool fails when its workers crash `count` times in a row (no call
/// served in between) within `window`.
#[derive(Clone, Copy, Debug)]
pub struct CrashLimit {
    pub count: usize,
    pub window: Duration,
}

impl CrashLimit {
    /// `AIS_ETL_CRASH_LIMIT` crashes (default 5) within
    /// `AIS_ETL_CRASH_WINDOW` seconds (default 60).
    pub fn from_env() -> Self {
        let n = |k: &str, d: u64| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(d)
        };
        Self {
            count: n("AIS_ETL_CRASH_LIMIT", 5).max(1) as usize,
            window: Duration::from_secs(n("AIS_ETL_CRASH_WINDOW", 60)),
        }
    }
}

/// Locks ignoring poison: nothing panics while holding these locks, and the
/// data (a list of workers, a set of pids) stays consistent regardless.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A call's hold on one worker and on its pool slot.
struct Lease<'a> {
    pool: &'a Arc<Pool>,
    /// `None` once the lease was settled.
    worker: Option<Worker>,
    permit: Option<SemaphorePermit<'a>>,
}

impl Lease<'_> {
    /// The worker's stream is in sync (a whole response was read): back to idle.
    fn release(mut self) {
        if let Some(w) = self.worker.take() {
            self.pool.give_back(w);
        }
        drop(self.permit.take());
    }

    /// The worker cannot be trusted (hung, dead, or abandoned mid-frame): kill
    /// it and start a replacement, which brings the slot back.
    fn replace(&mut self) {
        let Some(mut w) = self.worker.take() else {
            return;
        };
        w.kill();
        self.pool.forget_pid(w.pid);
        let slot = w.slot;
        drop(w);
        if self.pool.stopped.load(Ordering::SeqCst) {
            return; // nothing to replace; the permit goes back to a closed semaphore
        }
        if let Some(p) = self.permit.take() {
            p.forget();
        }
        self.pool.respawn(slot);
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if self.worker.is_some() {
            // The call's future was dropped (the client went away) or panicked
            // mid-transform: the worker may be mid-frame and is not reusable.
            if !self.pool.stopped.load(Ordering::SeqCst) {
                self.pool
                    .log
                    .line("worker replaced: the call was abandoned mid-transform");
            }
            self.replace();
        }
    }
}

impl Pool {
    /// Starts `size` workers in parallel; fails (leaving nothing running) if any fails.
    pub async fn start(cfg: WorkerCfg, size: usize, log: LogSink) -> Result<Arc<Pool>, EtlError> {
        Self::start_with(cfg, size, log, CrashLimit::from_env()).await
    }

    pub async fn start_with(
        cfg: WorkerCfg,
        size: usize,
        log: LogSink,
        crash_limit: CrashLimit,
    ) -> Result<Arc<Pool>, EtlError> {
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|e| EtlError::Internal(format!("worker pool: {e}")))?;
        let futs = (0..size).map(|slot| Worker::spawn(&cfg, &log, slot));
        let results = futures::future::join_all(futs).await;
        let mut workers = Vec::new();
        let mut first_err: Option<SpawnError> = None;
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
        let pids = workers.iter().map(|w| (w.pid, w.id().clone())).collect();
        let batches = workers.first().is_some_and(Worker::batches);
        Ok(Arc::new(Pool {
            batches,
            cfg,
            log,
            idle: Mutex::new(workers),
            sem: Semaphore::new(size),
            pids: Mutex::new(pids),
            stopped: AtomicBool::new(false),
            rt,
            size,
            crashes: Mutex::new(VecDeque::new()),
            failed: Mutex::new(None),
            crash_limit,
        }))
    }

    pub async fn call(
        self: &Arc<Self>,
        path: &str,
        data: Option<&[u8]>,
        args: &str,
        timeout: Duration,
    ) -> Result<Bytes, EtlError> {
        let mut lease = self.lease().await?;
        let res = match lease.worker.as_mut() {
            Some(w) => w.call(path, data, args, timeout).await,
            None => return Err(EtlError::Internal("worker lease is empty".into())),
        };
        self.settle(lease, res, path, timeout)
    }

    /// Waits for an idle worker (the pool's semaphore bounds the calls).
    async fn lease(self: &Arc<Self>) -> Result<Lease<'_>, EtlError> {
        if let Some(why) = self.failed() {
            return Err(EtlError::Failed(why));
        }
        let permit = match self.sem.acquire().await {
            Ok(p) => p,
            Err(_) => {
                return Err(match self.failed() {
                    Some(why) => EtlError::Failed(why),
                    None => EtlError::Stopped,
                })
            }
        };
        // No await between taking the permit and arming the lease.
        let Some(worker) = lock(&self.idle).pop() else {
            return Err(EtlError::Internal(
                "no idle worker despite a free slot".into(),
            ));
        };
        Ok(Lease {
            pool: self,
            worker: Some(worker),
            permit: Some(permit),
        })
    }

    /// Ends a call: the worker goes back to the pool after an answer (a
    /// raising transform included), or is replaced after a timeout, a
    /// crash or a limit (a crash counts towards the crash-loop limit).
    fn settle<T>(
        &self,
        mut lease: Lease<'_>,
        res: Result<T, CallError>,
        what: &str,
        timeout: Duration,
    ) -> Result<T, EtlError> {
        let err = match res {
            Ok(out) => {
                lease.release();
                self.served();
                return Ok(out);
            }
            Err(CallError::User { etype, emsg, trace }) => {
                lease.release();
                self.served();
                return Err(EtlError::Transform { etype, emsg, trace });
            }
            Err(CallError::Timeout) => EtlError::Timeout(timeout),
            Err(CallError::Died(why)) => EtlError::WorkerDied(why),
            Err(CallError::Limit(why)) => EtlError::Limit(why),
        };
        if self.stopped.load(Ordering::SeqCst) {
            // Killed by stop() (or the pool failing) mid-call: not a crash of
            // its own, and nothing to replace.
            lease.replace();
            return Err(match self.failed() {
                Some(why) => EtlError::Failed(why),
                None => EtlError::Stopped,
            });
        }
        if !matches!(err, EtlError::Timeout(_)) {
            self.crashed(what, &err.to_string());
        }
        if !self.stopped.load(Ordering::SeqCst) {
            self.log.line(&format!("worker replaced: {err}"));
        }
        lease.replace();
        Err(err)
    }

    /// Whether the ETL's code defines `transform_batch`.
    pub fn batches(&self) -> bool {
        self.batches
    }

    /// Transforms several objects with one worker in one exchange; user
    /// errors are per item, a dead or hung worker fails the whole batch
    /// (and is replaced, as in [`Pool::call`]).
    pub async fn call_batch(
        self: &Arc<Self>,
        items: &[(&str, &[u8], &str)],
        timeout: Duration,
    ) -> Result<Vec<Result<Bytes, EtlError>>, EtlError> {
        let mut lease = self.lease().await?;
        let res = match lease.worker.as_mut() {
            Some(w) => w.call_batch(items, timeout).await,
            None => return Err(EtlError::Internal("worker lease is empty".into())),
        };
        let what = items.first().map(|i| i.0).unwrap_or("");
        let outs = self.settle(lease, res, what, timeout)?;
        Ok(outs
            .into_iter()
            .map(|r| r.map_err(|(etype, emsg, trace)| EtlError::Transform { etype, emsg, trace }))
            .collect())
    }

    /// Why the pool gave up, once it did.
    pub fn failed(&self) -> Option<String> {
        lock(&self.failed).clone()
    }

    /// A worker answered: whatever crashed before was not a loop.
    fn served(&self) {
        let mut c = lock(&self.crashes);
        if !c.is_empty() {
            c.clear();
        }
    }

    /// Records a crash on `what` (an object; "" for a start-up failure).
    /// `count` crashes in a row (no call served in between) within the
    /// window, one of them a repeat (the same object again, or start-ups
    /// failing again), fail the pool: its workers are killed and calls fail
    /// with the reason. Distinct objects each killing a worker once (and
    /// served on a retry) are not a loop. True if the pool failed.
    fn crashed(&self, what: &str, why: &str) -> bool {
        let now = Instant::now();
        let n = {
            let mut c = lock(&self.crashes);
            c.push_back((now, what.to_string()));
            while c
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > self.crash_limit.window)
            {
                c.pop_front();
            }
            let mut seen = std::collections::HashSet::new();
            let repeat = c.iter().any(|(_, w)| !seen.insert(w.as_str()));
            if repeat {
                c.len()
            } else {
                0
            }
        };
        if n < self.crash_limit.count {
            return false;
        }
        let msg = format!(
            "the ETL failed: its workers crashed {n} times in a row within {:?}; last error: {why}",
            self.crash_limit.window
        );
        {
            let mut f = lock(&self.failed);
            if f.is_some() {
                return true;
            }
            *f = Some(msg.clone());
        }
        self.log.line(&msg);
        tracing::warn!("etl: {msg}");
        self.stop();
        true
    }

    fn give_back(&self, w: Worker) {
        let mut idle = lock(&self.idle);
        if self.stopped.load(Ordering::SeqCst) {
            drop(idle);
            self.forget_pid(w.pid);
            drop(w); // dropped => killed
            return;
        }
        idle.push(w);
    }

    fn forget_pid(&self, pid: u32) {
        lock(&self.pids).remove(&pid);
    }

    /// Starts a replacement in the background (retrying with backoff); when it
    /// is ready it joins `idle` and its slot's permit comes back.
    fn respawn(self: &Arc<Self>, slot: usize) {
        let pool = self.clone();
        self.rt.spawn(async move {
            let mut backoff = Duration::from_millis(100);
            while !pool.stopped.load(Ordering::SeqCst) {
                match Worker::spawn(&pool.cfg, &pool.log, slot).await {
                    Ok(w) => {
                        let mut idle = lock(&pool.idle);
                        if pool.stopped.load(Ordering::SeqCst) {
                            drop(idle);
                            drop(w); // killed
                            return;
                        }
                        lock(&pool.pids).insert(w.pid, w.id().clone());
                        idle.push(w);
                        drop(idle);
                        pool.sem.add_permits(1);
                        return;
                    }
                    Err(e) => {
                        pool.log
                            .line(&format!("failed to start a replacement worker: {e}"));
                        if pool.crashed("", &format!("failed to start a replacement worker: {e}")) {
                            return;
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
    }

    /// Kills every worker now, busy or idle; pending and later calls fail with `Stopped`.
    pub fn stop(&self) {
        let idle = {
            let mut v = lock(&self.idle);
            self.stopped.store(true, Ordering::SeqCst);
            std::mem::take(&mut *v)
        };
        self.sem.close();
        drop(idle); // dropped => killed (and forgotten in the registry)
                    // Busy workers: killed here, forgotten when their lease lets go of
                    // them (the call fails at once: its socket closes).
        let pids = std::mem::take(&mut *lock(&self.pids));
        for id in pids.values() {
            if let Err(e) = id.signal_all(ais_proc::SIGKILL) {
                tracing::debug!("etl: kill worker {}: {e}", id.pid);
            }
        }
    }

    /// Pids of the live workers, idle or busy (replacements join when ready).
    pub fn pids(&self) -> Vec<u32> {
        lock(&self.pids).keys().copied().collect()
    }

    /// Identities of the live workers (as recorded in the registry).
    #[cfg(test)]
    fn ids(&self) -> Vec<ProcId> {
        lock(&self.pids).values().cloned().collect()
    }

    #[cfg(test)]
    fn idle_count(&self) -> usize {
        lock(&self.idle).len()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{alive, fake_cfg, wait_for, TempDir};
    use std::collections::HashSet;

    const T: Duration = Duration::from_secs(5);

    async fn pool(dir: &TempDir, size: usize) -> Arc<Pool> {
        Pool::start(fake_cfg(dir, "ok"), size, LogSink::default())
            .await
            .unwrap()
    }

    async fn echo(p: &Arc<Pool>, s: &str) -> Result<Bytes, EtlError> {
        p.call("", Some(s.as_bytes()), "echo", T).await
    }

    /// Waits until all `size` workers are idle, live and accounted for in `pids()`.
    async fn assert_full(p: &Arc<Pool>) {
        let full = wait_for(Duration::from_secs(10), || {
            p.idle_count() == p.size && p.pids().len() == p.size
        })
        .await;
        assert!(
            full,
            "pool did not get back to {} workers: {} idle, pids {:?}",
            p.size,
            p.idle_count(),
            p.pids()
        );
        let idle: HashSet<u32> = lock(&p.idle).iter().map(|w| w.pid).collect();
        let pids: HashSet<u32> = p.pids().into_iter().collect();
        assert_eq!(idle, pids, "pids() must list exactly the live workers");
        for pid in pids {
            assert!(alive(pid), "worker {pid} in pids() is not running");
        }
        assert_eq!(p.sem.available_permits(), p.size);
    }

    async fn assert_dead(pid: u32) {
        assert!(
            wait_for(Duration::from_secs(5), || !alive(pid)).await,
            "worker {pid} still runs"
        );
    }

    #[tokio::test]
    async fn echo_and_bytes_by_path() {
        let dir = TempDir::new();
        let p = pool(&dir, 2).await;
        assert_eq!(&echo(&p, "hello").await.unwrap()[..], b"hello");
        // No data: the fake echoes the path back.
        assert_eq!(&p.call("/x/y", None, "", T).await.unwrap()[..], b"/x/y");
        assert_full(&p).await;
    }

    #[tokio::test]
    async fn timeout_replaces_the_worker() {
        let dir = TempDir::new();
        let p = pool(&dir, 2).await;
        let before: HashSet<u32> = p.pids().into_iter().collect();
        let e = p
            .call("", None, "hang", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(e, EtlError::Timeout(_)), "{e:?}");
        assert!(e.to_string().contains("timed out"), "{e}");
        assert_eq!(e.kind(), crate::EtlErrorKind::Timeout);
        assert_full(&p).await;
        let after: HashSet<u32> = p.pids().into_iter().collect();
        let gone: Vec<u32> = before.difference(&after).copied().collect();
        assert_eq!(gone.len(), 1, "exactly the hung worker is replaced");
        assert_dead(gone[0]).await;
        for i in 0..10 {
            assert_eq!(
                &echo(&p, &i.to_string()).await.unwrap()[..],
                i.to_string().as_bytes()
            );
        }
    }

    #[tokio::test]
    async fn death_replaces_the_worker() {
        let dir = TempDir::new();
        let p = pool(&dir, 2).await;
        let before: HashSet<u32> = p.pids().into_iter().collect();
        let e = p.call("", None, "exit", T).await.unwrap_err();
        match &e {
            EtlError::WorkerDied(why) => assert!(why.contains("exited with status 3"), "{why}"),
            e => panic!("expected WorkerDied, got {e:?}"),
        }
        assert_eq!(e.kind(), crate::EtlErrorKind::WorkerDied);
        assert_full(&p).await;
        let after: HashSet<u32> = p.pids().into_iter().collect();
        assert_eq!(before.difference(&after).count(), 1);
        for i in 0..10 {
            assert!(echo(&p, &i.to_string()).await.is_ok());
        }
    }

    #[tokio::test]
    async fn user_error_keeps_the_worker() {
        let dir = TempDir::new();
        let p = pool(&dir, 1).await;
        let pid = p.pids()[0];
        let e = p.call("", None, "raise", T).await.unwrap_err();
        match &e {
            EtlError::Transform { etype, emsg, trace } => {
                assert_eq!((etype.as_str(), emsg.as_str()), ("ValueError", "bad input"));
                assert!(trace.contains("Traceback"), "{trace}");
            }
            e => panic!("expected Transform, got {e:?}"),
        }
        assert_eq!(e.kind(), crate::EtlErrorKind::Transform);
        let served_by = p.call("", None, "pid", T).await.unwrap();
        assert_eq!(&served_by[..], pid.to_string().as_bytes());
        assert_eq!(p.pids(), vec![pid]);
        assert_full(&p).await;
    }

    #[tokio::test]
    async fn oversized_frame_header_replaces_the_worker() {
        let dir = TempDir::new();
        let p = pool(&dir, 1).await;
        let pid = p.pids()[0];
        let e = p.call("", None, "oversize", T).await.unwrap_err();
        match &e {
            EtlError::WorkerDied(why) => assert!(why.contains("oversized frame header"), "{why}"),
            e => panic!("expected WorkerDied, got {e:?}"),
        }
        assert_full(&p).await;
        assert_ne!(p.pids(), vec![pid]);
        assert_dead(pid).await;
        assert!(echo(&p, "after").await.is_ok());
    }

    #[tokio::test]
    async fn bogus_payload_length_is_an_error_not_an_allocation() {
        let dir = TempDir::new();
        let p = pool(&dir, 1).await;
        // The header claims 2^62 payload bytes, then the worker exits.
        let e = p.call("", None, "huge_payload", T).await.unwrap_err();
        assert!(matches!(e, EtlError::WorkerDied(_)), "{e:?}");
        assert_full(&p).await;
        assert!(echo(&p, "after").await.is_ok());
    }

    /// The key property: callers that go away mid-call (an HTTP client
    /// disconnecting drops the handler's future) must not shrink the pool.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelled_calls_do_not_shrink_the_pool() {
        let dir = TempDir::new();
        let p = pool(&dir, 3).await;
        let first: HashSet<u32> = p.pids().into_iter().collect();
        let mut tasks = Vec::new();
        for i in 0..50u64 {
            let p = p.clone();
            tasks.push(tokio::spawn(async move {
                // Stagger the starts so that cancellations hit calls holding a
                // worker as well as calls still waiting for one.
                tokio::time::sleep(Duration::from_millis(i * 5)).await;
                // Ok(_): the call returned instead of hanging until dropped.
                tokio::time::timeout(
                    Duration::from_millis(50),
                    p.call("", None, "hang", Duration::from_secs(60)),
                )
                .await
                .ok()
            }));
        }
        let mut returned = Vec::new();
        for t in tasks {
            returned.extend(t.await.unwrap());
        }
        assert_full(&p).await;
        assert!(
            returned.is_empty(),
            "{} hanging call(s) returned: {:?}",
            returned.len(),
            returned.first()
        );
        let now: HashSet<u32> = p.pids().into_iter().collect();
        for pid in first.difference(&now) {
            assert_dead(*pid).await;
        }
        assert!(
            first.difference(&now).count() > 0,
            "no call was cancelled mid-transform"
        );
        let mut calls = Vec::new();
        for i in 0..100 {
            let p = p.clone();
            calls.push(tokio::spawn(async move {
                let s = format!("obj-{i}");
                let out = echo(&p, &s).await;
                (s, out)
            }));
        }
        for c in calls {
            let (s, out) = c.await.unwrap();
            match out {
                Ok(b) => assert_eq!(&b[..], s.as_bytes()),
                Err(e) => panic!("call after cancellations failed: {e}"),
            }
        }
        assert_full(&p).await;
    }

    /// Identities in the registry, by pid.
    fn registered(reg: &ais_proc::PidRegistry) -> Vec<ProcId> {
        let mut v: Vec<ProcId> = reg.entries().unwrap().into_iter().map(|e| e.id).collect();
        v.sort_by_key(|id| id.pid);
        v
    }

    fn live_ids(p: &Pool) -> Vec<ProcId> {
        let mut v = p.ids();
        v.sort_by_key(|id| id.pid);
        v
    }

    /// Every worker is recorded from spawn until it is killed: after
    /// replacements (timeout, death) the registry lists exactly the live
    /// workers, with the identities they were started with; after a stop,
    /// nothing.
    #[tokio::test]
    async fn the_registry_follows_replacements_and_stop() {
        let dir = TempDir::new();
        let reg = Arc::new(ais_proc::PidRegistry::new(dir.path().join("pids.json")));
        let mut cfg = fake_cfg(&dir, "ok");
        cfg.tracker = crate::procs::Tracker::new(reg.clone(), "etl fake-etl worker");
        let p = Pool::start(cfg, 2, LogSink::default()).await.unwrap();
        assert_eq!(registered(&reg), live_ids(&p));
        assert!(reg
            .entries()
            .unwrap()
            .iter()
            .all(|e| e.label == "etl fake-etl worker" && e.id.group && e.id.is_alive()));
        let first = live_ids(&p);

        let e = p.call("", None, "hang", Duration::from_millis(300)).await;
        assert!(matches!(e, Err(EtlError::Timeout(_))), "{e:?}");
        assert_full(&p).await;
        assert_eq!(
            registered(&reg),
            live_ids(&p),
            "the replacement is recorded"
        );
        let e = p.call("", None, "exit", T).await;
        assert!(matches!(e, Err(EtlError::WorkerDied(_))), "{e:?}");
        assert_full(&p).await;
        let now = registered(&reg);
        assert_eq!(now, live_ids(&p));
        assert_eq!(now.len(), 2);
        assert!(now.iter().all(ProcId::is_alive));
        let replaced = first.iter().filter(|id| !now.contains(id)).count();
        assert!(
            replaced >= 1,
            "no worker was replaced: {first:?} -> {now:?}"
        );

        // One busy, one idle: both die, both are forgotten.
        let busy = {
            let p = p.clone();
            tokio::spawn(async move { p.call("", None, "hang", Duration::from_secs(60)).await })
        };
        assert!(wait_for(Duration::from_secs(5), || p.idle_count() == 1).await);
        p.stop();
        assert!(matches!(busy.await.unwrap(), Err(EtlError::Stopped)));
        for id in &now {
            assert_dead(id.pid).await;
        }
        assert!(
            wait_for(Duration::from_secs(5), || registered(&reg).is_empty()).await,
            "stopped workers are still recorded: {:?}",
            registered(&reg)
        );
    }

    /// Crashes in a row fail the pool (no respawn loop); a served call in
    /// between resets the count (a worker dying once per object is not a loop).
    #[tokio::test]
    async fn crash_loop_fails_the_pool() {
        let dir = TempDir::new();
        let limit = CrashLimit {
            count: 3,
            window: Duration::from_secs(60),
        };
        let p = Pool::start_with(fake_cfg(&dir, "ok"), 1, LogSink::default(), limit)
            .await
            .unwrap();
        for _ in 0..4 {
            let e = p.call("", None, "exit", T).await.unwrap_err();
            assert!(matches!(e, EtlError::WorkerDied(_)), "{e:?}");
            assert_eq!(&echo(&p, "ok").await.unwrap()[..], b"ok");
        }
        assert!(p.failed().is_none());
        // Distinct objects each crashing once are not a loop...
        for i in 0..4 {
            let e = p
                .call(&format!("o{i}"), Some(b"x"), "exit", T)
                .await
                .unwrap_err();
            assert!(matches!(e, EtlError::WorkerDied(_)), "{e:?}");
        }
        assert!(p.failed().is_none());
        assert_eq!(&echo(&p, "ok").await.unwrap()[..], b"ok");
        // ... the same one again and again is.
        for _ in 0..3 {
            let e = p.call("o", Some(b"x"), "exit", T).await.unwrap_err();
            assert!(matches!(e, EtlError::WorkerDied(_)), "{e:?}");
        }
        let why = p.failed().expect("the pool failed");
        assert!(why.contains("crashed 3 times in a row"), "{why}");
        assert!(why.contains("exited with status 3"), "{why}");
        match echo(&p, "x").await {
            Err(EtlError::Failed(m)) => assert_eq!(m, why),
            r => panic!("expected Failed, got {r:?}"),
        }
        assert_eq!(EtlError::Failed(why).kind(), crate::EtlErrorKind::Failed);
        assert!(wait_for(Duration::from_secs(5), || p.pids().is_empty()).await);
    }

    #[tokio::test]
    async fn stop_kills_busy_and_idle_workers() {
        let dir = TempDir::new();
        let p = pool(&dir, 2).await;
        let pids = p.pids();
        let busy = {
            let p = p.clone();
            tokio::spawn(async move { p.call("", None, "hang", Duration::from_secs(60)).await })
        };
        assert!(wait_for(Duration::from_secs(5), || p.idle_count() == 1).await);
        p.stop();
        let r = busy.await.unwrap();
        assert!(matches!(r, Err(EtlError::Stopped)), "{r:?}");
        for pid in pids {
            assert_dead(pid).await;
        }
        assert!(matches!(echo(&p, "x").await, Err(EtlError::Stopped)));
        assert_eq!(p.idle_count(), 0);
        assert!(p.pids().is_empty(), "{:?}", p.pids());
    }

    #[tokio::test]
    async fn start_failures_keep_their_messages() {
        let dir = TempDir::new();
        let log = LogSink::default();
        let e = Pool::start(fake_cfg(&dir, "raise"), 2, log.clone())
            .await
            .err()
            .unwrap();
        assert!(matches!(e, EtlError::Init(_)), "{e:?}");
        let m = e.to_string();
        assert!(m.starts_with("SyntaxError: invalid syntax"), "{m}");
        assert!(m.contains("Traceback (most recent call last)"), "{m}");

        let e = Pool::start(fake_cfg(&dir, "exit"), 1, log.clone())
            .await
            .err()
            .unwrap();
        let m = e.to_string();
        assert!(
            m.starts_with("worker exited during start-up (exit status: 1)"),
            "{m}"
        );
        assert!(
            m.contains("ModuleNotFoundError: No module named 'nope'"),
            "{m}"
        );

        let mut cfg = fake_cfg(&dir, "hang");
        cfg.ready_timeout = Duration::from_millis(300);
        let e = Pool::start(cfg, 1, log.clone()).await.err().unwrap();
        assert_eq!(
            e.to_string(),
            "worker did not become ready within 300ms (importing the code took too long?)"
        );

        let mut cfg = fake_cfg(&dir, "ok");
        cfg.python = "/nonexistent/python3".into();
        let e = Pool::start(cfg, 1, log).await.err().unwrap();
        assert!(
            e.to_string()
                .starts_with("cannot start /nonexistent/python3: "),
            "{e}"
        );
    }
}
