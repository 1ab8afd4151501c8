//! A target's side of the node lifecycle: `PUT /v1/daemon` with
//! `shutdown-node` or `decommission-node`, sent by the primary once the
//! rebalance has moved this target's objects away. The node stops its
//! keepalives (so it does not rejoin), optionally wipes its objects
//! (`rm_user_data`), and exits cleanly. Also the rebalance bandwidth limit
//! (`--rebalance-bps`, `AIS_REBALANCE_BPS`).

use super::Target;
use crate::error::ApiError;
use crate::http::{empty, Ctx, Res};
use ais_core::api::{ActMsg, RmNodeMsg};
use axum::http::{Method, StatusCode};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// `PUT /v1/daemon` on a target.
pub async fn daemon_action(t: &Arc<Target>, ctx: &Ctx, msg: ActMsg) -> Res {
    ctx.expect_method(&[Method::PUT])?;
    let v: RmNodeMsg = if msg.value.is_null() {
        RmNodeMsg::default()
    } else {
        serde_json::from_value(msg.value.clone())
            .map_err(|e| ApiError::bad_request(format!("malformed {} request: {e}", msg.action)))?
    };
    match msg.action.as_str() {
        "shutdown-node" | "decommission-node" => {
            let decommission = msg.action == "decommission-node";
            if decommission && v.rm_user_data {
                let roots: Vec<std::path::PathBuf> = t
                    .store
                    .mountpaths()
                    .iter()
                    .flat_map(|m| [m.path.join("@ais"), m.path.join("@mirror")])
                    .collect();
                tokio::task::spawn_blocking(move || {
                    for r in roots {
                        if let Err(e) = std::fs::remove_dir_all(&r) {
                            if e.kind() != std::io::ErrorKind::NotFound {
                                tracing::error!(dir = %r.display(), error = %e, "could not remove user data");
                            }
                        }
                    }
                })
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?;
                tracing::warn!(node = %t.core.name, "decommissioned: user data removed");
            }
            if decommission && v.no_shutdown {
                t.core.leaving.store(true, Ordering::Relaxed);
                tracing::warn!(node = %t.core.name, "decommissioned: left the cluster, still running");
            } else {
                tracing::warn!(node = %t.core.name, action = %msg.action, "leaving the cluster and exiting");
                t.core.leave();
            }
            Ok(empty(StatusCode::OK))
        }
        other => Err(ApiError::bad_request(format!(
            "invalid node action \"{other}\" (supported: set-config, reset-config, shutdown-node, decommission-node)"
        ))),
    }
}

/// Bytes per second a target's rebalance may send (`AIS_REBALANCE_BPS`,
/// e.g. `50MiB`; unset or 0: unlimited), shared by all its rebalance
/// workers so client I/O keeps most of the disk and network.
pub struct Throttle {
    bps: u64,
    next: tokio::sync::Mutex<Instant>,
}

static THROTTLE: OnceLock<Option<Throttle>> = OnceLock::new();

impl Throttle {
    /// Sets this node's limit (`--rebalance-bps` / `AIS_REBALANCE_BPS`) at
    /// start-up; an invalid value is an error naming it.
    pub fn init(raw: Option<&str>) -> anyhow::Result<()> {
        let bps = match raw.map(str::trim).filter(|r| !r.is_empty()) {
            None => 0,
            Some(r) => parse_bytes(r).ok_or_else(|| {
                anyhow::anyhow!("invalid rebalance bandwidth \"{r}\" (e.g. 50MiB, 20MB, 1000000; 0 = unlimited)")
            })?,
        };
        if bps > 0 {
            tracing::info!(bytes_per_sec = bps, "rebalance bandwidth limited");
        }
        let _ = THROTTLE.set((bps > 0).then(|| Throttle {
            bps,
            next: tokio::sync::Mutex::new(Instant::now()),
        }));
        Ok(())
    }

    /// The node's limit, if any.
    pub fn get() -> Option<&'static Throttle> {
        THROTTLE.get().and_then(Option::as_ref)
    }

    /// Waits until `n` more bytes fit in the budget.
    pub async fn take(&self, n: u64) {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let start = (*next).max(now);
            *next = start + Duration::from_secs_f64(n as f64 / self.bps as f64);
            start
        };
        tokio::time::sleep_until(at.into()).await;
    }
}

/// Foreground first. A rebalance move is admitted by [`admit_move`]: while
/// this target's clients are quiet (its GET/HEAD counters have not moved
/// for [`BUSY_WINDOW`]) up to [`rebalance_workers`] moves run at once;
/// while clients are reading, each move first pauses `AIS_REBALANCE_YIELD_MS`
/// (default 5; 0 = never yield) and at most [`busy_rebalance_workers`] run
/// at once. Idle clusters move at full speed; busy ones keep their latency.
/// (Moving a bucket the clients read at full speed, to shorten the time
/// their GETs take the long way, was tried: the burst cost the tail more.)
pub async fn admit_move(t: &Target) -> MoveSlot {
    let pause = Duration::from_millis(env_num("AIS_REBALANCE_YIELD_MS", &YIELD_MS, 5) as u64);
    let busy_limit = busy_rebalance_workers();
    let mut yielded = false;
    loop {
        let busy = !pause.is_zero() && clients_active(t);
        if busy && !yielded {
            tokio::time::sleep(pause).await;
            yielded = true;
            continue;
        }
        let n = IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
        if !busy || n < busy_limit {
            return MoveSlot(());
        }
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
        tokio::time::sleep(pause).await;
    }
}

/// One admitted move; dropping it frees its place.
pub struct MoveSlot(());

impl Drop for MoveSlot {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
    }
}

static IN_FLIGHT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static YIELD_MS: OnceLock<usize> = OnceLock::new();

/// Clients count as active for this long after their last read.
pub const BUSY_WINDOW: Duration = Duration::from_millis(50);

/// Whether this target served a GET or HEAD within [`BUSY_WINDOW`].
fn clients_active(t: &Target) -> bool {
    use std::sync::atomic::AtomicU64;
    static LAST_READS: AtomicU64 = AtomicU64::new(0);
    static LAST_ACTIVE: OnceLock<std::sync::Mutex<Instant>> = OnceLock::new();
    let last = LAST_ACTIVE.get_or_init(|| std::sync::Mutex::new(Instant::now() - BUSY_WINDOW));
    let now = t.core.metrics.reads();
    let Ok(mut at) = last.lock() else {
        return true;
    };
    if LAST_READS.swap(now, Ordering::Relaxed) != now {
        *at = Instant::now();
    }
    at.elapsed() < BUSY_WINDOW
}

fn env_num(var: &str, cell: &OnceLock<usize>, default: usize) -> usize {
    *cell.get_or_init(|| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    })
}

/// When clients last read each bucket here (milliseconds since start, plus
/// one; 0: never), by a hash of the bucket's name: one relaxed store per
/// GET, no lock. A collision only misorders two buckets.
static LAST_READ: [std::sync::atomic::AtomicU64; 64] =
    [const { std::sync::atomic::AtomicU64::new(0) }; 64];

fn since_start_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

fn read_slot(bucket: &str) -> &'static std::sync::atomic::AtomicU64 {
    &LAST_READ[(xxhash_rust::xxh64::xxh64(bucket.as_bytes(), 0) % 64) as usize]
}

/// A client read `bucket` here (GET or HEAD).
pub fn note_read(bucket: &str) {
    read_slot(bucket).store(since_start_ms(), Ordering::Relaxed);
}

/// Buckets in the order a rebalance moves them: those clients read in the
/// last minute first, most recent first (their objects, read before they
/// move, each cost the new owner a lookup on its neighbours), then the
/// rest by name.
pub fn hot_first(buckets: &mut [String]) {
    buckets.sort_by(|a, b| heat(b).cmp(&heat(a)).then_with(|| a.cmp(b)));
}

/// When clients last read `bucket` here, if within the last minute.
fn heat(bucket: &str) -> u64 {
    let at = read_slot(bucket).load(Ordering::Relaxed);
    if at == 0 || since_start_ms().saturating_sub(at) > HOT_MS {
        0
    } else {
        at
    }
}

const HOT_MS: u64 = 60_000;

/// Moves a target's rebalance runs at once while its clients are quiet
/// (`AIS_REBALANCE_WORKERS`, default 16): a move is mostly waiting (on the
/// owner's fsyncs and the network), so more of them keep the disks busy.
pub fn rebalance_workers() -> usize {
    static W: OnceLock<usize> = OnceLock::new();
    env_num("AIS_REBALANCE_WORKERS", &W, 16).max(1)
}

/// Moves at once while clients are reading from this target
/// (`AIS_REBALANCE_BUSY_WORKERS`, default 4, at most [`rebalance_workers`]).
pub fn busy_rebalance_workers() -> usize {
    static W: OnceLock<usize> = OnceLock::new();
    env_num("AIS_REBALANCE_BUSY_WORKERS", &W, 4)
        .max(1)
        .min(rebalance_workers())
}

/// "1000", "64KiB", "50MiB", "1GiB", "10MB" → bytes.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let i = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..i].parse().ok()?;
    let mul: u64 = match s[i..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mul)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_byte_rates() {
        assert_eq!(parse_bytes("1000"), Some(1000));
        assert_eq!(parse_bytes("64KiB"), Some(65536));
        assert_eq!(parse_bytes("2 MB"), Some(2_000_000));
        assert_eq!(parse_bytes("1GiB"), Some(1 << 30));
        assert_eq!(parse_bytes("fast"), None);
        assert_eq!(parse_bytes("5x"), None);
    }

    #[test]
    fn buckets_clients_read_move_first() {
        // Names no other test reads (the read marks are process-wide).
        let mut b: Vec<String> = ["zz-cold-a", "zz-read-old", "zz-cold-b", "zz-read-new"]
            .map(String::from)
            .to_vec();
        note_read("zz-read-old");
        std::thread::sleep(Duration::from_millis(5));
        note_read("zz-read-new");
        hot_first(&mut b);
        assert_eq!(b, ["zz-read-new", "zz-read-old", "zz-cold-a", "zz-cold-b"]);
    }

    #[tokio::test]
    async fn throttle_paces_bytes() {
        let t = Throttle {
            bps: 1_000_000,
            next: tokio::sync::Mutex::new(Instant::now()),
        };
        let start = Instant::now();
        for _ in 0..5 {
            t.take(100_000).await;
        }
        // The fifth 100 kB chunk may start 0.4 s in at 1 MB/s.
        assert!(
            start.elapsed() >= Duration::from_millis(380),
            "{:?}",
            start.elapsed()
        );
    }
}
