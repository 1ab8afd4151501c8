//! The replicated control plane under failures: three proxies, the primary
//! frozen (SIGSTOP), killed (SIGKILL) or cut off (its link down, in
//! multi-host mode); another proxy is elected, clients retrying through
//! any other proxy succeed, nothing acknowledged is lost, and the old
//! primary comes back as a follower. A seeded history of bucket and ETL
//! changes through random proxies under such faults is checked for
//! linearizability.
//!
//! The failover times are printed (`failover: ...`); BENCHMARKS.md has the
//! figures.

use ais_client::Client;
use ais_testkit::{init_python_etl, raw_http, Cluster, NodeProc, Opts};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const UPPER: &str = "def transform(b):\n    return b.upper()\n";

fn post_json(url: &str, method: &str, path: &str, body: &Value) -> (u16, String) {
    match raw_http(
        url,
        method,
        path,
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    ) {
        Ok((st, b)) => (st, String::from_utf8_lossy(&b).into_owned()),
        Err(e) => (0, e.to_string()),
    }
}

fn create_bucket(url: &str, name: &str) -> (u16, String) {
    post_json(
        url,
        "POST",
        &format!("/v1/buckets/{name}"),
        &json!({"action": "create-bck"}),
    )
}

fn destroy_bucket(url: &str, name: &str) -> (u16, String) {
    post_json(
        url,
        "DELETE",
        &format!("/v1/buckets/{name}"),
        &json!({"action": "destroy-bck"}),
    )
}

/// Retries `f` until it answers 200 or `within` passes; answers how long
/// it took. After a failed try, 409 (create) or 404 (destroy) also count:
/// a 503 may say the change may or may not have been made.
fn until_ok(within: Duration, mut f: impl FnMut() -> (u16, String)) -> Duration {
    let t0 = Instant::now();
    let mut retried = false;
    loop {
        let (st, body) = f();
        if st == 200 || (retried && (st == 409 || st == 404)) {
            return t0.elapsed();
        }
        retried = true;
        assert!(t0.elapsed() < within, "still {st} after {within:?}: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn smap_at(url: &str) -> Option<Value> {
    let (st, body) = raw_http(url, "GET", "/v1/daemon?what=smap", &[], b"").ok()?;
    (st == 200).then(|| serde_json::from_slice(&body).ok())?
}

/// Waits until every proxy in `urls` names the same primary, which is not
/// `not`; answers its id.
fn agreed_primary(urls: &[String], not: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let named: Vec<Option<String>> = urls
            .iter()
            .map(|u| smap_at(u).and_then(|m| m["proxy_si"]["daemon_id"].as_str().map(String::from)))
            .collect();
        if let Some(Some(first)) = named.first() {
            if first != not && named.iter().all(|n| n.as_deref() == Some(first)) {
                return first.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no agreement on a primary: {named:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn bucket_known_at(url: &str, name: &str) -> bool {
    raw_http(url, "HEAD", &format!("/v1/buckets/{name}"), &[], b"").is_ok_and(|(st, _)| st == 200)
}

fn etls_at(url: &str) -> Vec<String> {
    let Ok((200, body)) = raw_http(url, "GET", "/v1/etl", &[], b"") else {
        return Vec::new();
    };
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["id"].as_str().or(e["name"].as_str()).map(String::from))
        .collect()
}

/// Client load through the given proxies until stopped: PUT, GET back and
/// (with `etl`) a transformed GET; each operation is retried for a few
/// seconds (a map change in flight answers 503 for a moment). Answers the
/// acknowledged names and the operations that failed for good.
struct Load {
    stop: Arc<AtomicBool>,
    handles: Vec<std::thread::JoinHandle<(Vec<String>, Vec<String>)>>,
}

impl Load {
    fn start(proxies: &[String], bucket: &str, etl: Option<&str>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for (k, url) in proxies.iter().enumerate() {
            let (url, bucket, etl, stop) = (
                url.clone(),
                bucket.to_string(),
                etl.map(String::from),
                stop.clone(),
            );
            handles.push(std::thread::spawn(move || {
                let rt = ais_testkit::checks::runtime().unwrap();
                let cl = Client::new(&url);
                let (mut acked, mut failed) = (Vec::new(), Vec::new());
                let mut i = 0;
                let retry = |what: &str, f: &mut dyn FnMut() -> Result<(), String>| {
                    let t0 = Instant::now();
                    loop {
                        match f() {
                            Ok(()) => return Ok(()),
                            Err(e) if t0.elapsed() > Duration::from_secs(8) => {
                                return Err(format!("{what}: {e}"))
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(100)),
                        }
                    }
                };
                while !stop.load(Ordering::Relaxed) {
                    let name = format!("load{k}/{i}");
                    let body = format!("body of {name}").into_bytes();
                    let put = retry(&format!("PUT {name} via {url}"), &mut || {
                        rt.block_on(cl.put_bytes(&bucket, &name, body.clone()))
                            .map(drop)
                            .map_err(|e| e.to_string())
                    });
                    match put {
                        Ok(()) => acked.push(name.clone()),
                        Err(e) => {
                            failed.push(e);
                            i += 1;
                            continue;
                        }
                    }
                    let get = retry(&format!("GET {name} via {url}"), &mut || {
                        let got = rt
                            .block_on(cl.get(&bucket, &name))
                            .map_err(|e| e.to_string())?;
                        (got.as_ref() == body.as_slice())
                            .then_some(())
                            .ok_or_else(|| "wrong content".to_string())
                    });
                    if let Err(e) = get {
                        failed.push(e);
                    }
                    if let Some(etl) = &etl {
                        let path = format!("/v1/objects/{bucket}/{name}?etl_name={etl}");
                        let want = String::from_utf8_lossy(&body).to_uppercase();
                        let got = retry(&format!("ETL GET {name} via {url}"), &mut || {
                            let (st, h, b) =
                                ais_testkit::raw_http_full(&url, "GET", &path, &[], b"")
                                    .map_err(|e| e.to_string())?;
                            let b = if st == 307 || st == 301 {
                                let loc = h
                                    .iter()
                                    .find(|(k, _)| k == "location")
                                    .map(|(_, v)| v.clone())
                                    .unwrap_or_default();
                                let (host, p) = split_url(&loc);
                                let (st2, b2) = raw_http(&host, "GET", &p, &[], b"")
                                    .map_err(|e| e.to_string())?;
                                if st2 != 200 {
                                    return Err(format!("{st2}"));
                                }
                                b2
                            } else if st == 200 {
                                b
                            } else {
                                return Err(format!("{st}: {}", String::from_utf8_lossy(&b)));
                            };
                            (b == want.as_bytes())
                                .then_some(())
                                .ok_or_else(|| "wrong transformed content".to_string())
                        });
                        if let Err(e) = got {
                            failed.push(e);
                        }
                    }
                    i += 1;
                }
                (acked, failed)
            }));
        }
        Load { stop, handles }
    }

    fn finish(self) -> (Vec<String>, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut acked, mut failed) = (Vec::new(), Vec::new());
        for h in self.handles {
            let (a, f) = h.join().unwrap();
            acked.extend(a);
            failed.extend(f);
        }
        (acked, failed)
    }
}

/// `http://host:port/path?q` → (`http://host:port`, `/path?q`).
fn split_url(u: &str) -> (String, String) {
    let rest = u.trim_start_matches("http://");
    match rest.find('/') {
        Some(i) => (format!("http://{}", &rest[..i]), rest[i..].to_string()),
        None => (u.to_string(), "/".into()),
    }
}

fn read_back(url: &str, bucket: &str, names: &[String]) {
    let rt = ais_testkit::checks::runtime().unwrap();
    let cl = Client::new(url);
    for n in names {
        let got = rt
            .block_on(cl.get(bucket, n))
            .unwrap_or_else(|e| panic!("acknowledged {bucket}/{n} lost (via {url}): {e}"));
        assert_eq!(got.as_ref(), format!("body of {n}").as_bytes(), "{n}");
    }
}

fn three_proxies(opts: Opts) -> Cluster {
    let mut c = Cluster::start_with(opts).unwrap();
    c.add_proxy().unwrap();
    c.add_proxy().unwrap();
    c.allow_log("control plane");
    c.allow_log("metadata push failed");
    c.allow_log("keepalive");
    c
}

fn opts(targets: usize) -> Opts {
    Opts {
        targets,
        ..Default::default()
    }
}

fn others(c: &Cluster) -> Vec<String> {
    c.proxies.iter().map(|p| p.url.clone()).collect()
}

fn all_urls(c: &Cluster) -> Vec<String> {
    c.all_proxies().iter().map(|p| p.url.clone()).collect()
}

#[test]
fn a_frozen_primary_is_replaced_and_no_change_is_lost() {
    let mut c = three_proxies(opts(3));
    let old = c.proxy.id.clone();
    let others = others(&c);
    assert_eq!(create_bucket(c.url(), "b").0, 200);
    until_ok(Duration::from_secs(10), || {
        if bucket_known_at(&others[0], "b") && bucket_known_at(&others[1], "b") {
            (200, String::new())
        } else {
            (0, "b not on every proxy yet".into())
        }
    });
    let load = Load::start(&others, "b", None);
    std::thread::sleep(Duration::from_secs(1));

    c.proxy.signal(libc::SIGSTOP);
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // A bucket create through another proxy succeeds once one is elected.
        let took = until_ok(Duration::from_secs(30), || {
            create_bucket(&others[0], "during")
        });
        eprintln!("failover: bucket create through another proxy succeeded {took:.1?} after SIGSTOP of the primary");
        // The other proxy may still be a heartbeat away from knowing the
        // new primary: 503 (nothing done) until then.
        let soon = Duration::from_secs(10);
        until_ok(soon, || create_bucket(&others[1], "during2"));
        until_ok(soon, || destroy_bucket(&others[1], "during2"));
        until_ok(soon, || create_bucket(&others[1], "during3"));
        std::thread::sleep(Duration::from_secs(2));
    }));
    c.proxy.signal(libc::SIGCONT);
    if let Err(e) = res {
        std::panic::resume_unwind(e);
    }
    // Every proxy agrees on one primary, and it is not the old one.
    let urls = all_urls(&c);
    let new = agreed_primary(&urls, &old);
    assert_ne!(new, old);
    // Nothing made during the freeze is lost, on any proxy, the old one
    // included.
    for u in &urls {
        until_ok(Duration::from_secs(20), || {
            let ok = bucket_known_at(u, "during")
                && bucket_known_at(u, "during3")
                && !bucket_known_at(u, "during2");
            (if ok { 200 } else { 0 }, format!("buckets at {u}"))
        });
    }
    // The old primary, a follower now, forwards changes to the new one.
    until_ok(Duration::from_secs(20), || create_bucket(c.url(), "after"));
    let (acked, failed) = load.finish();
    assert!(
        failed.is_empty(),
        "data path failed during the freeze: {failed:?}"
    );
    assert!(!acked.is_empty());
    read_back(c.url(), "b", &acked);
    c.stop().unwrap();
}

#[test]
fn killing_the_primary_under_load_loses_nothing_acknowledged() {
    let mut c = three_proxies(opts(3));
    let old = c.proxy.id.clone();
    let others = others(&c);
    assert_eq!(create_bucket(c.url(), "b").0, 200);
    init_python_etl(c.url(), "upper1", UPPER).unwrap();
    until_ok(Duration::from_secs(10), || {
        let ok = others
            .iter()
            .all(|u| bucket_known_at(u, "b") && etls_at(u).contains(&"upper1".to_string()));
        (if ok { 200 } else { 0 }, "b and up on every proxy".into())
    });
    let load = Load::start(&others, "b", Some("upper1"));
    std::thread::sleep(Duration::from_secs(1));

    c.proxy.kill();
    let took = until_ok(Duration::from_secs(30), || {
        create_bucket(&others[1], "after-kill")
    });
    eprintln!("failover: bucket create through another proxy succeeded {took:.1?} after SIGKILL of the primary");
    until_ok(Duration::from_secs(30), || {
        match init_python_etl(&others[0], "upper2", UPPER) {
            Ok(()) => (200, String::new()),
            Err(e) => (0, e.to_string()),
        }
    });
    // A job starts through any proxy.
    until_ok(Duration::from_secs(20), || {
        post_json(
            &others[1],
            "POST",
            "/v1/buckets/b",
            &json!({"action": "copy-bck", "name": "b2", "value": {}}),
        )
    });
    std::thread::sleep(Duration::from_secs(1));
    let (acked, failed) = load.finish();
    assert!(
        failed.is_empty(),
        "data path failed around the kill: {failed:?}"
    );

    // The old primary restarts (same flags: no --join) as a follower.
    let fresh: NodeProc = c.proxy.respawn(&c.env).unwrap();
    c.proxy = fresh;
    let urls = all_urls(&c);
    let new = agreed_primary(&urls, &old);
    assert_ne!(new, old);
    for u in &urls {
        until_ok(Duration::from_secs(20), || {
            let etls = etls_at(u);
            let ok = bucket_known_at(u, "b")
                && bucket_known_at(u, "after-kill")
                && etls.contains(&"upper1".to_string())
                && etls.contains(&"upper2".to_string());
            (if ok { 200 } else { 0 }, format!("at {u}: etls {etls:?}"))
        });
    }
    read_back(&others[0], "b", &acked);
    c.stop().unwrap();
}

/// Multi-host only (a partition needs links to cut): the primary and one
/// target lose their links; the majority elects another primary and takes
/// changes; the isolated primary refuses them; healed, every node follows
/// one history.
#[test]
fn a_partitioned_primary_refuses_changes_and_heals_into_one_history() {
    if let Err(e) = ais_testkit::netns::Net::check() {
        eprintln!("SKIPPED (needs network namespaces): {e:#}");
        return;
    }
    let mut c = three_proxies(Opts {
        targets: 3,
        netns: true,
        ..Default::default()
    });
    let old = c.proxy.id.clone();
    let others = others(&c);
    assert_eq!(create_bucket(c.url(), "b").0, 200);
    let (ph, th) = (
        c.proxy.host.clone().unwrap(),
        c.targets[0].host.clone().unwrap(),
    );
    let net = c.net().unwrap();
    net.set_link(&ph, false).unwrap();
    net.set_link(&th, false).unwrap();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let took = until_ok(Duration::from_secs(30), || {
            create_bucket(&others[0], "majority")
        });
        eprintln!(
            "failover: bucket create on the majority side succeeded {took:.1?} after the partition"
        );
        // The isolated primary, asked from inside its own namespace.
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &ph.netns,
                "curl",
                "-s",
                "-m",
                "30",
                "-o",
                "/dev/null",
            ])
            .args([
                "-w",
                "%{http_code}",
                "-X",
                "POST",
                "-H",
                "content-type: application/json",
            ])
            .args(["-d", r#"{"action":"create-bck"}"#])
            .arg(format!("{}/v1/buckets/minority", c.url()))
            .output()
            .unwrap();
        let code = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(code, "503", "the isolated side took a change: {code}");
    }));
    let net = c.net().unwrap();
    net.set_link(&ph, true).unwrap();
    net.set_link(&th, true).unwrap();
    if let Err(e) = res {
        std::panic::resume_unwind(e);
    }
    let urls = all_urls(&c);
    let new = agreed_primary(&urls, &old);
    assert_ne!(new, old);
    for u in &urls {
        until_ok(Duration::from_secs(20), || {
            let ok = bucket_known_at(u, "majority") && !bucket_known_at(u, "minority");
            (if ok { 200 } else { 0 }, format!("buckets at {u}"))
        });
    }
    // The cut-off target follows the new primary too.
    let t0 = c.targets[0].url.clone();
    until_ok(Duration::from_secs(30), || {
        let named =
            smap_at(&t0).and_then(|m| m["proxy_si"]["daemon_id"].as_str().map(String::from));
        (
            if named.as_deref() == Some(new.as_str()) {
                200
            } else {
                0
            },
            format!("{named:?}"),
        )
    });
    c.stop().unwrap();
}

// ------------------------------------------------------------- history

fn proxy_mut(c: &mut Cluster, i: usize) -> &mut NodeProc {
    if i == 0 {
        &mut c.proxy
    } else {
        &mut c.proxies[i - 1]
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Create,
    Remove,
    /// The state read at the end (`Done`: present, `Absent`: not).
    Read,
}

/// What an answer says happened: `Done` (200), `Already` (create: it
/// existed, 409), `Absent` (remove: it did not exist, 404), `Unknown`
/// (anything else: it may or may not have taken effect).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Done,
    Already,
    Absent,
    Unknown,
}

#[derive(Debug, Clone)]
struct Op {
    key: String,
    kind: Kind,
    start: u128,
    /// `None`: unknown outcome, may take effect any time after `start`.
    end: Option<u128>,
    outcome: Outcome,
    /// The proxy it went through (printed when a history fails).
    #[allow(dead_code)]
    via: String,
}

/// Whether the operations on one key (a set member: absent at first) have
/// a linearization: an order consistent with real time in which every
/// known answer is right. Unknown ones may land anywhere after their start,
/// or not at all. Depth-first search over (ops done, state), memoised.
fn linearizable(ops: &[Op]) -> bool {
    assert!(ops.len() <= 64, "history too long for the checker");
    fn go(ops: &[Op], done: u64, present: bool, seen: &mut HashSet<(u64, bool)>) -> bool {
        let known_left = ops
            .iter()
            .enumerate()
            .any(|(i, o)| done & (1 << i) == 0 && o.outcome != Outcome::Unknown);
        if !known_left {
            return true;
        }
        if !seen.insert((done, present)) {
            return false;
        }
        // An op can go next only if no op still to place ended before it began.
        let min_end = ops
            .iter()
            .enumerate()
            .filter(|(i, _)| done & (1 << i) == 0)
            .filter_map(|(_, o)| o.end)
            .min()
            .unwrap_or(u128::MAX);
        for (i, o) in ops.iter().enumerate() {
            if done & (1 << i) != 0 || o.start > min_end {
                continue;
            }
            let d = done | (1 << i);
            let next: Vec<bool> = match (o.kind, o.outcome) {
                (Kind::Create, Outcome::Done) if !present => vec![true],
                (Kind::Create, Outcome::Already) if present => vec![true],
                (Kind::Remove, Outcome::Done) if present => vec![false],
                (Kind::Remove, Outcome::Absent) if !present => vec![false],
                (Kind::Create, Outcome::Unknown) => vec![true, present],
                (Kind::Remove, Outcome::Unknown) => vec![false, present],
                (Kind::Read, Outcome::Done) if present => vec![true],
                (Kind::Read, Outcome::Absent) if !present => vec![false],
                _ => vec![],
            };
            for p in next {
                if go(ops, d, p, seen) {
                    return true;
                }
            }
        }
        false
    }
    go(ops, 0, false, &mut HashSet::new())
}

#[test]
fn the_checker_finds_a_lost_create_and_accepts_a_good_history() {
    let op = |kind, start, end, outcome| Op {
        key: "k".into(),
        kind,
        start,
        end,
        outcome,
        via: String::new(),
    };
    // create ok, then (after it ended) another create says "absent, done":
    // the first one was lost.
    let lost = [
        op(Kind::Create, 0, Some(10), Outcome::Done),
        op(Kind::Create, 20, Some(30), Outcome::Done),
    ];
    assert!(!linearizable(&lost));
    // Overlapping: either order is fine.
    let overlap = [
        op(Kind::Create, 0, Some(30), Outcome::Done),
        op(Kind::Remove, 5, Some(25), Outcome::Absent),
    ];
    assert!(linearizable(&overlap));
    // An unknown create may have taken effect later.
    let unknown = [
        op(Kind::Create, 0, None, Outcome::Unknown),
        op(Kind::Remove, 20, Some(30), Outcome::Done),
        op(Kind::Create, 40, Some(50), Outcome::Done),
    ];
    assert!(linearizable(&unknown));
    // ... but a remove that found nothing, then a create that found it,
    // with nothing unknown in between, is not.
    let bad = [
        op(Kind::Remove, 0, Some(10), Outcome::Absent),
        op(Kind::Create, 20, Some(30), Outcome::Already),
    ];
    assert!(!linearizable(&bad));
    // A create acknowledged, then read as absent at the end: lost.
    let lost_at_end = [
        op(Kind::Create, 0, Some(10), Outcome::Done),
        op(Kind::Read, 20, Some(20), Outcome::Absent),
    ];
    assert!(!linearizable(&lost_at_end));
}

/// Seeded (`AIS_TEST_SEED`, printed): clients create and destroy buckets
/// and init and remove ETLs through random proxies while the primary is
/// frozen, killed and restarted; every key's history must linearize.
#[test]
fn bucket_and_etl_history_through_random_proxies_under_faults_is_linearizable() {
    let seed: u64 = std::env::var("AIS_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261207);
    eprintln!("history seed: {seed} (AIS_TEST_SEED to replay)");
    let mut c = three_proxies(opts(1));
    c.allow_log("etl");
    let urls = all_urls(&c);
    let t0 = Instant::now();
    let history: Arc<Mutex<Vec<Op>>> = Default::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for k in 0..3u64 {
        let (urls, history, stop) = (urls.clone(), history.clone(), stop.clone());
        clients.push(std::thread::spawn(move || {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(k));
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 40 {
                n += 1;
                let via = urls[rng.gen_range(0..urls.len())].clone();
                let etl = rng.gen_bool(0.25);
                let key = if etl {
                    format!("hist-etl{}", rng.gen_range(0..2))
                } else {
                    format!("hist-bck{}", rng.gen_range(0..3))
                };
                let kind = if rng.gen_bool(0.5) {
                    Kind::Create
                } else {
                    Kind::Remove
                };
                let start = t0.elapsed().as_nanos();
                let (st, _) = match (etl, kind) {
                    (false, Kind::Create) => create_bucket(&via, &key),
                    (true, Kind::Create) => match init_python_etl(&via, &key, UPPER) {
                        Ok(()) => (200, String::new()),
                        Err(e) => {
                            let s = e.to_string();
                            let code = s
                                .split("HTTP ")
                                .nth(1)
                                .and_then(|r| r.get(..3))
                                .and_then(|c| c.parse().ok())
                                .unwrap_or(0);
                            (code, s)
                        }
                    },
                    (true, _) => {
                        match raw_http(&via, "DELETE", &format!("/v1/etl/{key}"), &[], b"") {
                            Ok((st, b)) => (st, String::from_utf8_lossy(&b).into_owned()),
                            Err(e) => (0, e.to_string()),
                        }
                    }
                    (false, _) => destroy_bucket(&via, &key),
                };
                let outcome = match (kind, st) {
                    (_, 200) => Outcome::Done,
                    (Kind::Create, 409) => Outcome::Already,
                    (Kind::Remove, 404) => Outcome::Absent,
                    _ => Outcome::Unknown,
                };
                let end = (outcome != Outcome::Unknown).then(|| t0.elapsed().as_nanos());
                history.lock().unwrap().push(Op {
                    key,
                    kind,
                    start,
                    end,
                    outcome,
                    via,
                });
                std::thread::sleep(Duration::from_millis(rng.gen_range(50..300)));
            }
        }));
    }
    // The nemesis: freeze the primary, then kill it and bring it back.
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
    std::thread::sleep(Duration::from_millis(rng.gen_range(1000..3000)));
    // The proxy most of the others name primary.
    let pick = |c: &Cluster| -> usize {
        let mut votes: BTreeMap<String, usize> = BTreeMap::new();
        for p in c.all_proxies() {
            if let Some(id) =
                smap_at(&p.url).and_then(|m| m["proxy_si"]["daemon_id"].as_str().map(String::from))
            {
                *votes.entry(id).or_default() += 1;
            }
        }
        let primary = votes
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(id, _)| id)
            .unwrap_or_default();
        c.all_proxies()
            .iter()
            .position(|p| p.id == primary)
            .expect("the proxies name a primary")
    };
    let i = pick(&c);
    proxy_mut(&mut c, i).signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(rng.gen_range(4000..7000)));
    proxy_mut(&mut c, i).signal(libc::SIGCONT);
    std::thread::sleep(Duration::from_millis(rng.gen_range(2000..4000)));
    let i = pick(&c);
    proxy_mut(&mut c, i).kill();
    std::thread::sleep(Duration::from_millis(rng.gen_range(3000..6000)));
    let env = c.env.clone();
    let fresh = proxy_mut(&mut c, i).respawn(&env).unwrap();
    *proxy_mut(&mut c, i) = fresh;
    // Multi-host: cut the primary off for a while too.
    if c.net().is_some() {
        std::thread::sleep(Duration::from_millis(rng.gen_range(2000..4000)));
        let i = pick(&c);
        let host = proxy_mut(&mut c, i).host.clone().unwrap();
        c.net().unwrap().set_link(&host, false).unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(4000..7000)));
        c.net().unwrap().set_link(&host, true).unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    for h in clients {
        h.join().unwrap();
    }
    // The end state, read from the primary every proxy agrees on: each
    // key's history must also explain it.
    let primary = agreed_primary(&urls, "");
    let purl = c
        .all_proxies()
        .iter()
        .find(|p| p.id == primary)
        .map(|p| p.url.clone())
        .unwrap();
    let etls = etls_at(&purl);
    let keys: Vec<String> = history
        .lock()
        .unwrap()
        .iter()
        .map(|o| o.key.clone())
        .collect();
    for key in keys.into_iter().collect::<std::collections::BTreeSet<_>>() {
        let present = if key.starts_with("hist-etl") {
            etls.contains(&key)
        } else {
            bucket_known_at(&purl, &key)
        };
        let at = t0.elapsed().as_nanos();
        history.lock().unwrap().push(Op {
            key,
            kind: Kind::Read,
            start: at,
            end: Some(at),
            outcome: if present {
                Outcome::Done
            } else {
                Outcome::Absent
            },
            via: purl.clone(),
        });
    }
    let history = history.lock().unwrap().clone();
    let mut by_key: BTreeMap<String, Vec<Op>> = BTreeMap::new();
    for o in history {
        by_key.entry(o.key.clone()).or_default().push(o);
    }
    let mut known = 0;
    for (key, ops) in &by_key {
        known += ops
            .iter()
            .filter(|o| o.outcome != Outcome::Unknown && o.kind != Kind::Read)
            .count();
        assert!(
            linearizable(ops),
            "seed {seed}: the history of {key} does not linearize:\n{ops:#?}"
        );
    }
    eprintln!(
        "history: {} keys, {} operations with a known answer",
        by_key.len(),
        known
    );
    assert!(
        known >= 20,
        "too few answered operations to say anything: {known}"
    );
    c.stop().unwrap();
}

/// The AuthN database and the job registry are replicated with the rest of
/// the control plane: after the primary is killed, users, roles and
/// revocations made through it hold on the new primary and on every node,
/// a job started before is still known, and changes go on; the old primary
/// comes back with everything made meanwhile.
#[test]
fn users_revocations_and_jobs_survive_the_primary() {
    const PW: &str = "ha-admin-pw";
    let mut o = opts(1);
    o.env = vec![
        ("AIS_AUTH".into(), "1".into()),
        ("AIS_AUTH_SECRET".into(), "ha-test-secret".into()),
        ("AIS_AUTH_ADMIN_PASSWORD".into(), PW.into()),
    ];
    let mut c = three_proxies(o);
    let old = c.proxy.id.clone();
    let others = others(&c);
    let turl = c.targets[0].url.clone();
    let rt = ais_testkit::checks::runtime().unwrap();
    let login =
        |url: &str, user: &str, pw: &str| rt.block_on(Client::new(url).login(user, pw, None));
    let status_with = |url: &str, tok: &str, path: &str| -> u16 {
        let bearer = format!("Bearer {tok}");
        raw_http(url, "GET", path, &[("Authorization", &bearer)], b"")
            .map(|(st, _)| st)
            .unwrap_or(0)
    };

    let tok = login(c.url(), "admin", PW).unwrap();
    let admin = Client::with_token(c.url(), Some(&tok));
    let (t1, t2, job) = rt.block_on(async {
        admin
            .add_user("alice", "alice-pw", &["read-only".into()])
            .await
            .unwrap();
        admin.create_bucket("b").await.unwrap();
        admin.put_bytes("b", "o", b"x".to_vec()).await.unwrap();
        let job = admin
            .copy_bucket("b", "b2", &Default::default())
            .await
            .unwrap();
        let t1 = Client::new(c.url())
            .login("alice", "alice-pw", None)
            .await
            .unwrap();
        let t2 = Client::new(c.url())
            .login("alice", "alice-pw", None)
            .await
            .unwrap();
        admin.revoke_token(&t1).await.unwrap();
        (t1, t2, job)
    });
    assert_eq!(status_with(&turl, &t1, "/v1/objects/b/o"), 401);
    // Every proxy has the database (a file only the node reads).
    for p in &c.proxies {
        let file = p.data.join("meta/docs/authn.json");
        until_ok(Duration::from_secs(10), || {
            let s = std::fs::read_to_string(&file).unwrap_or_default();
            let ok =
                s.contains("\"alice\"") && s.contains("pbkdf2-sha256") && !s.contains("alice-pw");
            (if ok { 200 } else { 0 }, format!("{}: {s}", file.display()))
        });
    }

    c.proxy.kill();
    // Logins through another proxy, as soon as a new primary is in office.
    // Until it answers a token (any error, 404 included, is a retry).
    let login_within = |url: &str, user: &str, pw: &str, within: Duration| {
        let t0 = Instant::now();
        loop {
            match login(url, user, pw) {
                Ok(t) => return (t, t0.elapsed()),
                Err(e) => assert!(t0.elapsed() < within, "login {user} at {url}: {e}"),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let (tok2, took) = login_within(&others[0], "admin", PW, Duration::from_secs(30));
    eprintln!(
        "failover: admin login through another proxy {took:.1?} after SIGKILL of the primary"
    );
    // Both remaining proxies follow the new primary (one may still be a
    // heartbeat away from knowing it).
    agreed_primary(&others, &old);
    login_within(&others[1], "alice", "alice-pw", Duration::from_secs(10));
    assert_eq!(
        login(&others[1], "alice", "wrong").unwrap_err().status(),
        Some(401)
    );
    // The revoked token stays revoked everywhere; the other one works.
    for u in [&others[0], &others[1], &turl] {
        assert_eq!(status_with(u, &t1, "/v1/buckets?provider=ais"), 401, "{u}");
    }
    assert_eq!(
        status_with(&others[1], &t2, "/v1/buckets?provider=ais"),
        200
    );
    let admin2 = Client::with_token(&others[1], Some(&tok2));
    rt.block_on(async {
        // The job started through the old primary is known to the new one.
        let st = admin2.job_status(&job).await.unwrap();
        assert_eq!(st.kind, "copy-bck", "{st:?}");
        // Changes go on: a user, a revocation.
        admin2.add_user("bob", "bob-pw", &[]).await.unwrap();
        admin2.revoke_token(&t2).await.unwrap();
    });
    assert_eq!(
        status_with(&others[0], &t2, "/v1/buckets?provider=ais"),
        401
    );

    // The old primary comes back a follower, with everything made meanwhile.
    let fresh: NodeProc = c.proxy.respawn(&c.env).unwrap();
    c.proxy = fresh;
    let new = agreed_primary(&all_urls(&c), &old);
    assert_ne!(new, old);
    until_ok(Duration::from_secs(20), || {
        let s =
            std::fs::read_to_string(c.proxy.data.join("meta/docs/authn.json")).unwrap_or_default();
        (if s.contains("\"bob\"") { 200 } else { 0 }, s)
    });
    // The revocation made while it was down reaches it with the log (and
    // the primary's push when it rejoins).
    let t0 = Instant::now();
    while status_with(c.url(), &t2, "/v1/buckets?provider=ais") != 401 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the restarted proxy still accepts a token revoked while it was down"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let admin_old = Client::with_token(c.url(), Some(&tok2));
    let users = rt.block_on(admin_old.users()).unwrap();
    assert!(
        users.get("alice").is_some() && users.get("bob").is_some(),
        "{users}"
    );
    c.stop().unwrap();
}
