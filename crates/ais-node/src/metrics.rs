//! Node metrics: counters bumped on the request path without locks, rendered
//! in Prometheus text format (0.0.4) at `GET /metrics`.
//!
//! Names follow AIStore where it has one (`ais_target_get_n`,
//! `ais_target_get_bytes`, `ais_target_get_ns_total`, `ais_target_err_get_n`,
//! ...; the prefix is the role, `ais_proxy_` on a gateway); every series
//! carries the static `node_id` label, as AIStore's do.
//!
//! Cost on the hot path: one `Instant` pair and four or five relaxed
//! `fetch_add`s on a cache line owned by the calling thread (the counters
//! are sharded per thread and summed at scrape time), so cores never fight
//! over a line. Scrape-time-only data (mountpath capacity, ETL counters)
//! is gathered by the caller and passed to [`Metrics::render`].
//! `AIS_METRICS=0` turns counting off (for the on/off benchmark only).

use axum::http::Method;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Object verbs counted separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Get = 0,
    Put = 1,
    Delete = 2,
    Head = 3,
}

impl Op {
    pub const ALL: [Op; 4] = [Op::Get, Op::Put, Op::Delete, Op::Head];

    /// AIStore's short names (`get.n`, `put.n`, `del.n`, `head.n`).
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Put => "put",
            Op::Delete => "del",
            Op::Head => "head",
        }
    }

    /// The object verb of a request, if it addresses an object
    /// (`/v1/objects/B/O` or the easy URL `/ais/B/O`). A prefix test: no
    /// parsing, no allocation.
    pub fn of(method: &Method, path: &str) -> Option<Op> {
        let obj = match path.strip_prefix("/v1/objects/") {
            Some(_) => true,
            None => path
                .strip_prefix("/ais/")
                .is_some_and(|r| r.find('/').is_some_and(|i| i + 1 < r.len())),
        };
        if !obj {
            return None;
        }
        match *method {
            Method::GET => Some(Op::Get),
            Method::PUT => Some(Op::Put),
            Method::DELETE => Some(Op::Delete),
            Method::HEAD => Some(Op::Head),
            _ => None,
        }
    }
}

/// Latency histogram bucket bounds, in seconds (and nanoseconds below).
const LAT_BOUNDS_S: [&str; 16] = [
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25", "0.5", "1", "2.5", "5", "10",
];
const LAT_BOUNDS_NS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];
/// Bounded buckets plus `+Inf`.
const NB: usize = LAT_BOUNDS_NS.len() + 1;

#[derive(Default)]
struct OpStats {
    /// Successful (2xx) requests, their bytes and total latency.
    n: AtomicU64,
    bytes: AtomicU64,
    ns_total: AtomicU64,
    /// Latency histogram of the successful ones (not cumulative here).
    hist: [AtomicU64; NB],
    /// 3xx (the proxy's redirects to targets, a target's hop).
    redirects: AtomicU64,
    err4: AtomicU64,
    err5: AtomicU64,
}

/// One thread's counters, on their own cache lines.
#[derive(Default)]
#[repr(align(128))]
struct Shard {
    ops: [OpStats; 4],
    /// Every response by status class (1xx..5xx).
    classes: [AtomicU64; 5],
}

const SHARDS: usize = 16;

fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static IDX: usize = NEXT.fetch_add(1, Relaxed) % SHARDS;
    }
    IDX.with(|i| *i)
}

/// Requests whose body stopped arriving for longer than the body timeout
/// (counted by the connection layer's body wrapper; one node per process).
pub static BODY_TIMEOUTS: AtomicU64 = AtomicU64::new(0);

/// Per-connection events (not on the per-request path).
#[derive(Default)]
pub struct ConnStats {
    /// Open connections (also the connection cap's counter).
    pub open: AtomicI64,
    pub accepted: AtomicU64,
    /// Refused with 503 past `--max-conns`.
    pub rejected: AtomicU64,
    pub header_timeouts: AtomicU64,
    pub idle_closed: AtomicU64,
}

/// A mountpath's capacity, from `statvfs` at scrape time.
#[derive(serde::Serialize)]
pub struct MpathCap {
    pub path: String,
    pub total: u64,
    pub used: u64,
    pub avail: u64,
}

/// What `ais-etl` counts for one ETL, read at scrape time.
pub struct EtlSample {
    pub name: String,
    pub objs: u64,
    pub errors: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    /// Mean latency × count: the total time spent transforming.
    pub ns_total: u64,
    pub workers: u64,
    pub pids: Vec<u32>,
}

/// Worker pids seen at the previous scrape, per ETL, and restarts counted.
#[derive(Default)]
struct EtlSeen {
    pids: BTreeSet<u32>,
    restarts: u64,
}

pub struct Metrics {
    pub enabled: bool,
    prefix: &'static str,
    node_id: String,
    started: Instant,
    shards: Box<[Shard]>,
    pub conns: ConnStats,
    etl_seen: Mutex<BTreeMap<String, EtlSeen>>,
}

impl Metrics {
    /// `proxy` selects the `ais_proxy_` prefix (else `ais_target_`).
    /// Counting is on unless `AIS_METRICS=0`.
    pub fn new(proxy: bool, node_id: &str) -> Self {
        let enabled = std::env::var("AIS_METRICS").map_or(true, |v| v != "0");
        Self::with(proxy, node_id, enabled)
    }

    pub fn with(proxy: bool, node_id: &str, enabled: bool) -> Self {
        Metrics {
            enabled,
            prefix: if proxy { "ais_proxy" } else { "ais_target" },
            node_id: node_id.to_string(),
            started: Instant::now(),
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            conns: ConnStats::default(),
            etl_seen: Mutex::new(BTreeMap::new()),
        }
    }

    /// Counts one finished request (its response head is ready): `bytes`
    /// is the object's size for a GET/PUT that succeeded.
    #[inline]
    pub fn record(&self, op: Option<Op>, status: u16, bytes: u64, elapsed: Duration) {
        if !self.enabled {
            return;
        }
        let sh = &self.shards[shard_index()];
        let class = (status / 100).clamp(1, 5) as usize - 1;
        sh.classes[class].fetch_add(1, Relaxed);
        let Some(op) = op else { return };
        let s = &sh.ops[op as usize];
        match class {
            1 => {
                let ns = elapsed.as_nanos().min(u64::MAX as u128) as u64;
                s.n.fetch_add(1, Relaxed);
                if bytes > 0 {
                    s.bytes.fetch_add(bytes, Relaxed);
                }
                s.ns_total.fetch_add(ns, Relaxed);
                let b = LAT_BOUNDS_NS.partition_point(|&b| b < ns);
                s.hist[b].fetch_add(1, Relaxed);
            }
            2 => {
                s.redirects.fetch_add(1, Relaxed);
            }
            3 => {
                s.err4.fetch_add(1, Relaxed);
            }
            4 => {
                s.err5.fetch_add(1, Relaxed);
            }
            _ => {}
        }
    }

    /// AIStore's `reset-stats`: request counters back to zero (or only the
    /// error counts). Open connections are a state, not a count: kept.
    pub fn reset(&self, errors_only: bool) {
        for sh in self.shards.iter() {
            for c in &sh.classes[3..] {
                c.store(0, Relaxed);
            }
            for o in &sh.ops {
                o.err4.store(0, Relaxed);
                o.err5.store(0, Relaxed);
                if errors_only {
                    continue;
                }
                for a in [&o.n, &o.bytes, &o.ns_total, &o.redirects] {
                    a.store(0, Relaxed);
                }
                for h in &o.hist {
                    h.store(0, Relaxed);
                }
            }
            if !errors_only {
                for c in &sh.classes[..3] {
                    c.store(0, Relaxed);
                }
            }
        }
        self.conns.rejected.store(0, Relaxed);
        self.conns.header_timeouts.store(0, Relaxed);
        BODY_TIMEOUTS.store(0, Relaxed);
        if !errors_only {
            self.conns.accepted.store(0, Relaxed);
            self.conns.idle_closed.store(0, Relaxed);
        }
    }

    /// Client object reads answered so far (GET and HEAD, any status): a
    /// cheap signal of foreground activity.
    pub fn reads(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| {
                [Op::Get, Op::Head]
                    .iter()
                    .map(|op| {
                        let o = &s.ops[*op as usize];
                        o.n.load(Relaxed)
                            + o.redirects.load(Relaxed)
                            + o.err4.load(Relaxed)
                            + o.err5.load(Relaxed)
                    })
                    .sum::<u64>()
            })
            .sum()
    }

    fn sum(&self, f: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards.iter().map(|s| f(s).load(Relaxed)).sum()
    }

    /// The whole exposition: request counters, connections, then what the
    /// caller gathered (mountpaths, ETLs; targets only).
    pub fn render(&self, mpaths: &[MpathCap], etls: &[EtlSample]) -> String {
        let mut w = Writer {
            out: String::with_capacity(16 << 10),
            prefix: self.prefix,
            node: esc(&self.node_id),
        };
        for op in Op::ALL {
            let i = op as usize;
            let o = op.name();
            w.head(
                &format!("{o}_n"),
                "counter",
                &format!("successful {o}(object) requests"),
            );
            w.val(&format!("{o}_n"), "", self.sum(|s| &s.ops[i].n));
            if matches!(op, Op::Get | Op::Put) {
                w.head(
                    &format!("{o}_bytes"),
                    "counter",
                    &format!("object bytes of successful {o} requests"),
                );
                w.val(&format!("{o}_bytes"), "", self.sum(|s| &s.ops[i].bytes));
            }
            w.head(
                &format!("{o}_ns_total"),
                "counter",
                &format!("total latency of successful {o} requests (to the response head), ns"),
            );
            w.val(
                &format!("{o}_ns_total"),
                "",
                self.sum(|s| &s.ops[i].ns_total),
            );
            let h = format!("{o}_latency_seconds");
            w.head(
                &h,
                "histogram",
                &format!("latency of successful {o} requests (to the response head)"),
            );
            let mut cum = 0;
            for (b, le) in LAT_BOUNDS_S.iter().enumerate() {
                cum += self.sum(|s| &s.ops[i].hist[b]);
                w.val(&format!("{h}_bucket"), &format!("le=\"{le}\""), cum);
            }
            cum += self.sum(|s| &s.ops[i].hist[NB - 1]);
            w.val(&format!("{h}_bucket"), "le=\"+Inf\"", cum);
            let ns = self.sum(|s| &s.ops[i].ns_total);
            w.line(&format!("{h}_sum"), "", &format!("{}", ns as f64 / 1e9));
            w.val(&format!("{h}_count"), "", cum);
            let e = format!("err_{o}_n");
            w.head(
                &e,
                "counter",
                &format!("failed {o}(object) requests by status class"),
            );
            w.val(&e, "class=\"4xx\"", self.sum(|s| &s.ops[i].err4));
            w.val(&e, "class=\"5xx\"", self.sum(|s| &s.ops[i].err5));
        }
        w.head(
            "redirect_n",
            "counter",
            "object requests answered with a redirect (3xx), by verb",
        );
        for op in Op::ALL {
            let v = self.sum(|s| &s.ops[op as usize].redirects);
            w.val("redirect_n", &format!("op=\"{}\"", op.name()), v);
        }
        w.head(
            "http_responses_total",
            "counter",
            "all responses by status class",
        );
        for (c, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
            let v = self.sum(|s| &s.classes[c]);
            w.val("http_responses_total", &format!("class=\"{class}\""), v);
        }
        let c = &self.conns;
        w.head("conns_open", "gauge", "open client connections");
        w.line("conns_open", "", &c.open.load(Relaxed).max(0).to_string());
        w.head("conns_accepted_total", "counter", "accepted connections");
        w.val("conns_accepted_total", "", c.accepted.load(Relaxed));
        w.head(
            "conns_rejected_total",
            "counter",
            "connections refused with 503 past the connection cap",
        );
        w.val("conns_rejected_total", "", c.rejected.load(Relaxed));
        w.head(
            "conns_timeouts_total",
            "counter",
            "connections closed (or requests aborted) by a timeout, by kind",
        );
        w.val(
            "conns_timeouts_total",
            "kind=\"header\"",
            c.header_timeouts.load(Relaxed),
        );
        w.val(
            "conns_timeouts_total",
            "kind=\"idle\"",
            c.idle_closed.load(Relaxed),
        );
        w.val(
            "conns_timeouts_total",
            "kind=\"body\"",
            BODY_TIMEOUTS.load(Relaxed),
        );
        w.head("uptime_seconds", "gauge", "seconds since the node started");
        w.line(
            "uptime_seconds",
            "",
            &format!("{:.3}", self.started.elapsed().as_secs_f64()),
        );
        w.head(
            "metrics_enabled",
            "gauge",
            "1 unless counting is off (AIS_METRICS=0)",
        );
        w.val("metrics_enabled", "", self.enabled as u64);
        if !mpaths.is_empty() {
            for (m, what) in [
                ("capacity_total_bytes", "mountpath filesystem size"),
                ("capacity_used_bytes", "mountpath filesystem bytes used"),
                (
                    "capacity_avail_bytes",
                    "mountpath filesystem bytes available to the node",
                ),
            ] {
                w.head(m, "gauge", what);
                for mp in mpaths {
                    let v = match m {
                        "capacity_total_bytes" => mp.total,
                        "capacity_used_bytes" => mp.used,
                        _ => mp.avail,
                    };
                    w.val(m, &format!("mountpath=\"{}\"", esc(&mp.path)), v);
                }
            }
        }
        self.render_etls(&mut w, etls);
        w.out
    }

    fn render_etls(&self, w: &mut Writer, etls: &[EtlSample]) {
        if etls.is_empty() {
            return;
        }
        let restarts: Vec<u64> = {
            let mut seen = self.etl_seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.retain(|k, _| etls.iter().any(|e| &e.name == k));
            etls.iter()
                .map(|e| {
                    let s = seen.entry(e.name.clone()).or_default();
                    let now: BTreeSet<u32> = e.pids.iter().copied().collect();
                    if !s.pids.is_empty() {
                        s.restarts += s.pids.difference(&now).count() as u64;
                    }
                    s.pids = now;
                    s.restarts
                })
                .collect()
        };
        type Get = fn(&EtlSample) -> u64;
        let series: [(&str, &str, &str, Get); 6] = [
            ("etl_obj_n", "counter", "objects transformed", |e| e.objs),
            ("etl_err_n", "counter", "failed transforms", |e| e.errors),
            ("etl_in_bytes", "counter", "bytes into transforms", |e| {
                e.in_bytes
            }),
            ("etl_out_bytes", "counter", "bytes out of transforms", |e| {
                e.out_bytes
            }),
            ("etl_ns_total", "counter", "total transform time, ns", |e| {
                e.ns_total
            }),
            ("etl_workers", "gauge", "worker processes", |e| e.workers),
        ];
        for (name, kind, help, get) in series {
            w.head(name, kind, help);
            for e in etls {
                w.val(name, &format!("etl=\"{}\"", esc(&e.name)), get(e));
            }
        }
        w.head(
            "etl_worker_restarts_n",
            "counter",
            "worker processes replaced (pids gone between scrapes)",
        );
        for (e, r) in etls.iter().zip(restarts) {
            w.val(
                "etl_worker_restarts_n",
                &format!("etl=\"{}\"", esc(&e.name)),
                r,
            );
        }
    }
}

struct Writer {
    out: String,
    prefix: &'static str,
    node: String,
}

impl Writer {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {}_{name} {help}", self.prefix);
        let _ = writeln!(self.out, "# TYPE {}_{name} {kind}", self.prefix);
    }
    fn line(&mut self, name: &str, labels: &str, v: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let _ = writeln!(
            self.out,
            "{}_{name}{{node_id=\"{}\"{sep}{labels}}} {v}",
            self.prefix, self.node
        );
    }
    fn val(&mut self, name: &str, labels: &str, v: u64) {
        self.line(name, labels, &v.to_string());
    }
}

/// Label value escaping (backslash, quote, newline).
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Size, used and available bytes of the filesystem holding `path`.
pub fn statvfs(path: &std::path::Path) -> Option<(u64, u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: a zeroed statvfs is a valid out-parameter; `c` is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers for the duration of the call.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    let total = st.f_blocks as u64 * frsize;
    let free = st.f_bfree as u64 * frsize;
    let avail = st.f_bavail as u64 * frsize;
    Some((total, total.saturating_sub(free), avail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_by_path() {
        assert_eq!(Op::of(&Method::GET, "/v1/objects/b/o"), Some(Op::Get));
        assert_eq!(Op::of(&Method::PUT, "/ais/b/o"), Some(Op::Put));
        assert_eq!(Op::of(&Method::GET, "/ais/b"), None);
        assert_eq!(Op::of(&Method::GET, "/ais/b/"), None);
        assert_eq!(Op::of(&Method::GET, "/v1/buckets/b"), None);
        assert_eq!(Op::of(&Method::POST, "/v1/objects/b/o"), None);
    }

    #[test]
    fn counts_and_renders() {
        let m = Metrics::with(false, "t1", true);
        m.record(Some(Op::Get), 200, 100, Duration::from_micros(300));
        m.record(Some(Op::Get), 206, 10, Duration::from_secs(20));
        m.record(Some(Op::Get), 404, 0, Duration::from_micros(1));
        m.record(Some(Op::Put), 503, 0, Duration::from_micros(1));
        m.record(None, 200, 0, Duration::from_micros(1));
        let t = m.render(
            &[MpathCap {
                path: "/mp\"1".into(),
                total: 10,
                used: 4,
                avail: 6,
            }],
            &[],
        );
        assert!(t.contains("ais_target_get_n{node_id=\"t1\"} 2\n"), "{t}");
        assert!(
            t.contains("ais_target_get_bytes{node_id=\"t1\"} 110\n"),
            "{t}"
        );
        assert!(
            t.contains("ais_target_get_latency_seconds_bucket{node_id=\"t1\",le=\"0.0005\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("ais_target_get_latency_seconds_bucket{node_id=\"t1\",le=\"10\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("ais_target_get_latency_seconds_bucket{node_id=\"t1\",le=\"+Inf\"} 2\n"),
            "{t}"
        );
        assert!(
            t.contains("ais_target_err_get_n{node_id=\"t1\",class=\"4xx\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("ais_target_err_put_n{node_id=\"t1\",class=\"5xx\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("ais_target_http_responses_total{node_id=\"t1\",class=\"2xx\"} 3\n"),
            "{t}"
        );
        assert!(t.contains("mountpath=\"/mp\\\"1\"} 4\n"), "{t}");
        let off = Metrics::with(true, "p1", false);
        off.record(Some(Op::Get), 200, 100, Duration::from_micros(300));
        assert!(off
            .render(&[], &[])
            .contains("ais_proxy_get_n{node_id=\"p1\"} 0\n"));
    }

    #[test]
    fn etl_restarts_from_pid_churn() {
        let m = Metrics::with(false, "t1", true);
        let s = |pids: Vec<u32>| EtlSample {
            name: "e".into(),
            objs: 1,
            errors: 0,
            in_bytes: 0,
            out_bytes: 0,
            ns_total: 0,
            workers: 2,
            pids,
        };
        m.render(&[], &[s(vec![1, 2])]);
        let t = m.render(&[], &[s(vec![1, 3])]);
        assert!(
            t.contains("ais_target_etl_worker_restarts_n{node_id=\"t1\",etl=\"e\"} 1\n"),
            "{t}"
        );
    }
}
