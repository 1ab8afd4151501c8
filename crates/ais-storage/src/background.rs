//! The low-priority pool: blocking file work of background jobs (rebalance
//! moves) runs on threads at a higher nice value than the rest of the node,
//! so that on a busy node the scheduler gives client requests the CPU first
//! and the background work the rest; an idle node runs it at full speed
//! (nice only matters when threads compete).

use crate::{Result, StorageError};
use std::sync::OnceLock;

/// Nice value of the pool's threads (`AIS_BACKGROUND_NICE`, 0..=19;
/// default 10: about a tenth of a core's share against a busy normal thread).
fn nice() -> i32 {
    std::env::var("AIS_BACKGROUND_NICE")
        .ok()
        .and_then(|v| v.trim().parse::<i32>().ok())
        .unwrap_or(10)
        .clamp(0, 19)
}

fn pool() -> Option<&'static tokio::runtime::Runtime> {
    static POOL: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    POOL.get_or_init(|| {
        let nice = nice();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(16)
            .thread_name("ais-background")
            .on_thread_start(move || {
                // Linux: `who` 0 with PRIO_PROCESS is the calling thread.
                // Never raises a node that already runs niced.
                // SAFETY: get/setpriority have no memory-safety preconditions.
                unsafe {
                    let cur = libc::getpriority(libc::PRIO_PROCESS, 0);
                    libc::setpriority(libc::PRIO_PROCESS, 0, cur.max(nice));
                }
            })
            .build()
            .map_err(|e| tracing::warn!(error = %e, "no background pool; background work runs at normal priority"))
            .ok()
    })
    .as_ref()
}

/// Runs `f` on the low-priority pool (on the normal blocking pool if that
/// pool could not be created).
pub fn spawn<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    match pool() {
        Some(p) => p.spawn_blocking(f),
        None => tokio::task::spawn_blocking(f),
    }
}

/// [`spawn`] and wait, with an error naming `what` if the task panicked.
pub async fn run<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    spawn(f).await.map_err(|e| StorageError::Io {
        context: what.into(),
        source: std::io::Error::other(e),
    })?
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn runs_at_a_lower_priority_than_the_caller() {
        // SAFETY: getpriority has no memory-safety preconditions.
        let here = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let there = super::spawn(|| unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) })
            .await
            .unwrap();
        assert_eq!(there, here.max(super::nice()));
        assert!(there > here || here >= super::nice(), "{here} -> {there}");
    }
}
