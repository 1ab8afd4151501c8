//! Growing and shrinking a cluster online: a target joins and another is
//! decommissioned under a 32-client load, maintenance mode moves a target's
//! objects away and back, a node SIGKILLed mid-rebalance converges, and
//! inline ETL GETs and an offline copy keep working through a rebalance.

use ais_client::Client;
use ais_core::api::RmNodeMsg;
use ais_core::meta::{Smap, NODE_FLAG_MAINTENANCE};
use ais_testkit::rebal::{
    assert_placed, content, count_on, finished_rebalance, names_on, newest_rebalance, rebalances,
    settle, Load,
};
use ais_testkit::{Cluster, Opts};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// These tests start loaded clusters: one at a time on a small machine.
static HEAVY: Mutex<()> = Mutex::new(());

fn rt() -> tokio::runtime::Runtime {
    ais_testkit::checks::runtime().unwrap()
}

fn opts(targets: usize, env: &[(&str, &str)]) -> Opts {
    let mut e = vec![("AIS_REBALANCE_SETTLE".to_string(), "1".to_string())];
    e.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Opts {
        targets,
        env: e,
        ..Default::default()
    }
}

/// `PUT /v1/cluster` with a lifecycle action for node `sid`.
async fn node_action(
    cl: &Client,
    action: &str,
    sid: &str,
) -> Result<String, ais_client::ClientError> {
    let v = RmNodeMsg {
        sid: sid.to_string(),
        ..Default::default()
    };
    cl.node_lifecycle(action, &v).await
}

/// A cluster of `targets` (with `env`) and `n` objects of `bucket` in
/// it, settled (a rebalance from the first joins is over).
fn loaded(
    targets: usize,
    env: &[(&str, &str)],
    bucket: &str,
    n: usize,
) -> (Cluster, tokio::runtime::Runtime, String, Vec<String>) {
    let c = Cluster::start_with(opts(targets, env)).unwrap();
    let rt = rt();
    let url = c.url().to_string();
    let names = preload(&rt, &url, bucket, n);
    settle(&rt, &url);
    (c, rt, url, names)
}

fn preload(rt: &tokio::runtime::Runtime, url: &str, bucket: &str, n: usize) -> Vec<String> {
    let names: Vec<String> = (0..n).map(|i| format!("o/{i:05}")).collect();
    rt.block_on(async {
        let cl = Client::new(url);
        cl.create_bucket(bucket).await.unwrap();
        let chunks: Vec<_> = names
            .chunks(names.len().div_ceil(8))
            .map(|c| {
                let (cl, c, b) = (cl.clone(), c.to_vec(), bucket.to_string());
                tokio::spawn(async move {
                    for n in c {
                        cl.put_bytes(&b, &n, content(&n)).await.unwrap();
                    }
                })
            })
            .collect();
        for c in chunks {
            c.await.unwrap();
        }
    });
    names
}

fn smap(c: &Cluster) -> Smap {
    serde_json::from_value(c.smap().unwrap()).unwrap()
}

fn ais(endpoint: &str, args: &[&str]) -> String {
    let (ok, o, e) = ais_status(endpoint, args);
    assert!(ok, "ais {args:?} failed:\n{o}\n{e}");
    o
}

/// `ais` with `args`: (success, stdout, stderr).
fn ais_status(endpoint: &str, args: &[&str]) -> (bool, String, String) {
    ais_testkit::run_ais(endpoint, args)
}

/// Flips a byte of one object target `i` holds in `bucket` (same size,
/// metadata kept) and answers its name.
fn damage_one(c: &Cluster, i: usize, bucket: &str) -> String {
    let t = &c.targets[i];
    let victim = ais_testkit::rebal::names_on(&t.url, bucket).unwrap()[0].clone();
    let file = ais_testkit::checks::object_files(&t.data, bucket)
        .into_iter()
        .find(|p| p.ends_with(&victim) && p.to_string_lossy().contains("/@ais/"))
        .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[7] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    victim
}

/// Waits for a node that was told to leave to exit, with the status that
/// tells a supervisor (the playground) not to restart it.
fn assert_left(t: &mut ais_testkit::NodeProc, within: Duration) {
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(st) = t.child.as_mut().unwrap().try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "t[{}] still running", t.id);
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(ais_playground::EXIT_LEFT_CLUSTER));
    t.child = None;
}

/// `ais cluster add-remove-nodes stop-maintenance SID`; answers the
/// rebalance it started, finished cleanly.
fn stop_maintenance(rt: &tokio::runtime::Runtime, url: &str, sid: &str) -> ais_client::JobStatus {
    let cl = Client::new(url);
    let before = rt.block_on(rebalances(&cl));
    ais(
        url,
        &["cluster", "add-remove-nodes", "stop-maintenance", sid],
    );
    let j = rt.block_on(finished_rebalance(&cl, before, Duration::from_secs(60)));
    assert_eq!((j.err_count, j.aborted), (0, false), "{j:?}");
    j
}

/// Every name reads back with its content. Only the 503s for a target that
/// missed keepalives on a starved host (the proxy's "not responding", a
/// target's "left the cluster; retry when they are back") are retried, for
/// a while, as a client should; any other error or wrong bytes fail.
fn assert_readable(rt: &tokio::runtime::Runtime, url: &str, bucket: &str, names: &[String]) {
    rt.block_on(async {
        let cl = Client::new(url);
        for n in names {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            let got = loop {
                match cl.get(bucket, n).await {
                    Ok(b) => break b,
                    // The same seen from a target: the holder was dropped
                    // from the map for missed keepalives and rejoins.
                    Err(e)
                        if (e.to_string().contains("is not responding (no keepalive")
                            || e.to_string()
                                .contains("that left the cluster; retry when they are back"))
                            && std::time::Instant::now() < deadline =>
                    {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    Err(e) => panic!("{n}: {e}"),
                }
            };
            assert_eq!(got.as_ref(), content(n).as_slice(), "{n}");
        }
    });
}

#[test]
fn join_then_decommission_under_32_clients() {
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let (mut c, rt, url, names) = loaded(3, &[], "lb", 1200);
    let load = Load::start(&rt, &url, "lb", &names, 32);
    std::thread::sleep(Duration::from_millis(500));

    // Join: about 1/4 of the objects belong to the new target.
    let cl = Client::new(&url);
    let before = rt.block_on(rebalances(&cl));
    let new = c.add_target().unwrap();
    let j = rt.block_on(finished_rebalance(&cl, before, Duration::from_secs(90)));
    assert_eq!(
        (j.err_count, j.err.as_str(), j.aborted),
        (0, "", false),
        "{j:?}"
    );
    let n = names.len() as u64;
    assert!(
        j.objs >= n / 6 && j.objs <= n * 2 / 5 + 200,
        "join moved {} objects of ~{n} (expected about 1/4)",
        j.objs
    );
    assert!(j.bytes > j.objs * 2000, "{j:?}");
    let on_new = count_on(&c.targets[new].url, "lb").unwrap();
    assert!(on_new as u64 >= j.objs, "{on_new} on the new target, {j:?}");

    // Decommission an original target under the same load.
    let gone = c.targets[0].id.clone();
    let held = count_on(&c.targets[0].url, "lb").unwrap() as u64;
    let before = rt.block_on(rebalances(&cl));
    let id = rt
        .block_on(node_action(&cl, "decommission-node", &gone))
        .unwrap();
    assert!(id.starts_with("rebalance-"), "{id}");
    let deadline = Instant::now() + Duration::from_secs(90);
    while smap(&c).tmap.contains_key(&gone) {
        assert!(Instant::now() < deadline, "t[{gone}] still in the map");
        std::thread::sleep(Duration::from_millis(200));
    }
    let j = rt.block_on(finished_rebalance(&cl, before, Duration::from_secs(30)));
    assert_eq!(j.uuid, id);
    assert_eq!(
        (j.err_count, j.err.as_str(), j.aborted),
        (0, "", false),
        "{j:?}"
    );
    assert!(
        j.objs >= held && j.objs <= held + 300,
        "decommission moved {} objects; the target held {held}",
        j.objs
    );
    let (written, errors, ops) = load.stop(&rt);
    assert_eq!(
        errors, 0,
        "client errors during join and decommission ({ops} ops)"
    );
    // The decommissioned node exits by itself.
    assert_left(&mut c.targets[0], Duration::from_secs(15));
    let mut all = names;
    all.extend(written);
    assert_placed(&c, "lb", &all);
    assert_readable(&rt, &url, "lb", &all);
}

#[test]
fn maintenance_moves_objects_away_and_back() {
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let (c, rt, url, names) = loaded(3, &[], "mb", 500);
    let cl = Client::new(&url);
    let load = Load::start(&rt, &url, "mb", &names, 8);
    let t1 = c.targets[1].id.clone();
    assert!(count_on(&c.targets[1].url, "mb").unwrap() > 50);

    let before = rt.block_on(rebalances(&cl));
    let out = ais(
        &url,
        &["cluster", "add-remove-nodes", "start-maintenance", &t1],
    );
    assert!(out.contains("rebalance-"), "{out}");
    let j = rt.block_on(finished_rebalance(&cl, before, Duration::from_secs(60)));
    assert_eq!((j.err_count, j.aborted), (0, false), "{j:?}");
    // Still in the map, flagged, holding nothing; everything readable meanwhile.
    let m = smap(&c);
    assert_ne!(m.tmap[&t1].flags & NODE_FLAG_MAINTENANCE, 0);
    assert_eq!(count_on(&c.targets[1].url, "mb").unwrap(), 0);
    assert_eq!(
        rt.block_on(cl.list_all("mb", "o/", "")).unwrap().len(),
        names.len()
    );
    // A second start is refused; a proxy or unknown node is a clear error.
    let e = rt
        .block_on(node_action(&cl, "start-maintenance", &t1))
        .unwrap_err();
    assert!(e.to_string().contains("already in maintenance"), "{e}");
    let e = rt
        .block_on(node_action(&cl, "decommission-node", "nosuch"))
        .unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");

    let show = ais(&url, &["show", "rebalance"]);
    assert!(
        show.contains("Finished") && show.contains(&j.uuid),
        "{show}"
    );
    let jobs = ais(&url, &["show", "job"]);
    assert!(jobs.contains("rebalance"), "{jobs}");

    let j = stop_maintenance(&rt, &url, &t1);
    assert!(j.objs > 50, "{j:?}");
    let (written, errors, ops) = load.stop(&rt);
    assert_eq!(errors, 0, "client errors during maintenance ({ops} ops)");
    assert_eq!(smap(&c).tmap[&t1].flags, 0);
    let mut all = names;
    all.extend(written);
    assert_placed(&c, "mb", &all);
    assert!(count_on(&c.targets[1].url, "mb").unwrap() > 50);
    let show = ais(&url, &["show", "rebalance", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(v["targets"].as_array().map(|a| a.len()), Some(3), "{show}");
}

/// A PUT sent to its owner whose body is still arriving when the target
/// goes into maintenance: the rebalance walks and finishes meanwhile, so
/// the object committed afterwards would be left behind on a target that
/// must hold nothing (seen as 1 object left on the target in maintenance,
/// 1 CI run in several). It goes to the new owner instead, and back when
/// the maintenance ends.
#[test]
fn a_put_whose_body_spans_a_map_change_lands_on_the_new_owner() {
    use std::io::{Read, Write};
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let (c, rt, url, names) = loaded(3, &[], "pb", 60);
    let cl = Client::new(&url);
    let t1 = c.targets[1].id.clone();
    let m = smap(&c);
    let bck = ais_core::Bck::ais("pb");
    let name = (0..)
        .map(|i| format!("slow/{i}"))
        .find(|n| m.owner(&bck.obj_uname(n)).map(|o| o.daemon_id.as_str()) == Some(t1.as_str()))
        .unwrap();
    // An object on t1 with custom properties that a `key=value` header
    // would split or drop: they move with it, exactly.
    let tagged = names
        .iter()
        .find(|n| m.owner(&bck.obj_uname(n)).map(|o| o.daemon_id.as_str()) == Some(t1.as_str()))
        .unwrap()
        .clone();
    let props: std::collections::BTreeMap<String, String> =
        [("note".to_string(), "a, b=c é".to_string())].into();
    rt.block_on(cl.set_custom("pb", &tagged, &props, false))
        .unwrap();
    let body: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 251) as u8).collect();
    let addr = c.targets[1]
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "PUT /v1/objects/pb/{name} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let half = body.len() / 2;
    s.write_all(&body[..half]).unwrap();

    let before = rt.block_on(rebalances(&cl));
    ais(
        &url,
        &["cluster", "add-remove-nodes", "start-maintenance", &t1],
    );
    let j = rt.block_on(finished_rebalance(&cl, before, Duration::from_secs(60)));
    assert_eq!((j.err_count, j.aborted), (0, false), "{j:?}");
    assert_eq!(count_on(&c.targets[1].url, "pb").unwrap(), 0);

    // The rest of the body, after the rebalance reported success.
    s.write_all(&body[half..]).unwrap();
    let mut resp = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&resp).contains("\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&resp)
        );
        resp.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&resp).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Nothing stays on the target in maintenance; the object is on its
    // owner, whole.
    assert_eq!(count_on(&c.targets[1].url, "pb").unwrap(), 0);
    let mut all = names.clone();
    all.push(name.clone());
    assert_placed(&c, "pb", &all);
    assert_eq!(
        rt.block_on(cl.get("pb", &name)).unwrap().as_ref(),
        &body[..]
    );
    // (Read where it is stored: a HEAD's header cannot carry the 'é'.)
    let owner = smap(&c).owner(&bck.obj_uname(&tagged)).unwrap().clone();
    assert_ne!(owner.daemon_id, t1);
    let (st, raw) = ais_testkit::raw_http(
        owner.url(),
        "GET",
        &format!("/v1/internal/objattrs/pb/{tagged}"),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(st, 200);
    let attrs: ais_core::meta::ObjAttrs = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        attrs.custom.get("note").map(String::as_str),
        Some("a, b=c é"),
        "{:?}",
        attrs.custom
    );

    // And back to it when the maintenance ends.
    stop_maintenance(&rt, &url, &t1);
    assert_placed(&c, "pb", &all);
    assert!(names_on(&c.targets[1].url, "pb").unwrap().contains(&name));
    assert_eq!(
        rt.block_on(cl.get("pb", &name)).unwrap().as_ref(),
        &body[..]
    );
    assert_readable(&rt, &url, "pb", &names);
}

/// Waits until a rebalance newer than the first `before` runs and has moved
/// some objects (it must not have finished yet).
fn wait_midway(rt: &tokio::runtime::Runtime, cl: &Client, before: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if rt.block_on(rebalances(cl)) > before {
            if let Some(j) = rt.block_on(newest_rebalance(cl)) {
                assert_eq!(j.end_time, 0, "rebalance finished before the kill: {j:?}");
                if j.objs >= 10 {
                    return;
                }
            }
        }
        assert!(Instant::now() < deadline, "rebalance did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for a clean rebalance newer than the first `before`, then checks
/// that every object is on its owner and reads back right.
fn converged(c: &Cluster, rt: &tokio::runtime::Runtime, before: usize, names: &[String]) {
    let cl = c.client();
    let j = rt.block_on(finished_rebalance(&cl, before, Duration::from_secs(120)));
    assert_eq!(
        (j.err_count, j.err.as_str(), j.aborted),
        (0, "", false),
        "{j:?}"
    );
    assert_placed(c, "kb", names);
    assert_readable(rt, c.url(), "kb", names);
}

#[test]
fn sigkill_mid_rebalance_converges_with_nothing_lost() {
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    // Slow rebalance (64 KiB/s per target) so the kills land mid-way.
    let (mut c, rt, url, names) = loaded(3, &[("AIS_REBALANCE_BPS", "64KiB")], "kb", 800);
    c.allow_log("could not abort job");
    let cl = Client::new(&url);

    // 1. A sender is SIGKILLed and back at once: it never leaves the map,
    //    its part is lost, and the interrupted rebalance is restarted.
    let before = rt.block_on(rebalances(&cl));
    c.add_target().unwrap();
    wait_midway(&rt, &cl, before);
    let before = rt.block_on(rebalances(&cl));
    c.restart_target(1).unwrap();
    c.wait_targets(4).unwrap();
    converged(&c, &rt, before, &names);

    // 2. Another join; a sender is SIGKILLed and stays down long enough to
    //    leave the map (a second membership change mid-rebalance), then
    //    comes back.
    let before = rt.block_on(rebalances(&cl));
    c.add_target().unwrap();
    wait_midway(&rt, &cl, before);
    c.targets[2].kill();
    std::thread::sleep(Duration::from_secs(3));
    let before = rt.block_on(rebalances(&cl));
    c.restart_target(2).unwrap();
    c.wait_targets(5).unwrap();
    // The rebalance for the map without it (it left, its objects out of
    // reach) may end before the one for its return starts (a settle time
    // later): the one to wait for is the one that starts after the return.
    let back = now_ns();
    wait_rebalance_started_after(&rt, &cl, back);
    converged(&c, &rt, before, &names);
}

/// Waits (up to 2 minutes) until the newest rebalance started after
/// `since_ns` (wall clock, as the jobs' start times).
fn wait_rebalance_started_after(rt: &tokio::runtime::Runtime, cl: &Client, since_ns: i64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let newest = rt.block_on(newest_rebalance(cl));
        if newest
            .as_ref()
            .is_some_and(|j| ais_testkit::checks::start_time(j) > since_ns)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no rebalance started after {since_ns}: {newest:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

const ETL_CODE: &str = "def transform(data, path, args):\n    return b'T:' + data[::-1]\n";

#[test]
fn etl_gets_and_copy_job_keep_working_during_rebalance() {
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let mut c = Cluster::start_with(opts(2, &[("AIS_REBALANCE_BPS", "64KiB")])).unwrap();
    let rt = rt();
    let url = c.url().to_string();
    let names = preload(&rt, &url, "eb", 300);
    ais_testkit::init_python_etl(&url, "rev-etl", ETL_CODE).unwrap();
    let expect = |n: &str| {
        let mut v = b"T:".to_vec();
        v.extend(content(n).iter().rev());
        v
    };
    settle(&rt, &url);
    let cl = Client::new(&url);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let etl_clients: Vec<_> = (0..4)
        .map(|w| {
            let (cl, names, stop) = (cl.clone(), names.clone(), stop.clone());
            rt.spawn(async move {
                let (mut ok, mut errs) = (0u64, Vec::new());
                let mut i = w * 71;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let n = &names[i % names.len()];
                    let r = match cl
                        .get_stream("eb", n, &[("etl_name", "rev-etl")], None)
                        .await
                    {
                        Ok(r) => r.bytes().await.map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    match r {
                        Ok(b) if b.as_ref() == expect(n).as_slice() => ok += 1,
                        Ok(_) => errs.push(format!("{n}: wrong transform output")),
                        Err(e) => errs.push(format!("{n}: {e}")),
                    }
                    i += 1;
                }
                (ok, errs)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let before = rt.block_on(rebalances(&cl));
    c.add_target().unwrap();
    // An offline copy started while the rebalance runs.
    std::thread::sleep(Duration::from_millis(1500));
    let copy = rt
        .block_on(cl.copy_bucket("eb", "eb-copy", &Default::default()))
        .unwrap();
    let j = rt.block_on(finished_rebalance(&cl, before, Duration::from_secs(90)));
    assert_eq!((j.err_count, j.aborted), (0, false), "{j:?}");
    assert!(j.objs > 20, "{j:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let cj = loop {
        let s = rt.block_on(cl.job_status(&copy)).unwrap();
        if s.finished() {
            break s;
        }
        assert!(Instant::now() < deadline, "copy job did not finish: {s:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut errs) = (0, Vec::new());
    for t in etl_clients {
        let (o, e) = rt.block_on(t).unwrap();
        ok += o;
        errs.extend(e);
    }
    assert!(
        errs.is_empty(),
        "{} ETL GET errors ({ok} ok): {:?}",
        errs.len(),
        &errs[..errs.len().min(5)]
    );
    assert!(ok > 100, "{ok} ETL GETs");
    assert_eq!(
        (cj.err_count, cj.err.as_str(), cj.objs),
        (0, "", names.len() as u64),
        "{cj:?}"
    );
    // The copy really ran while objects were moving.
    let copy_started = cj.extra["start_time"].as_i64().unwrap();
    assert!(
        j.end_time > copy_started,
        "rebalance {j:?} ended before the copy {cj:?}"
    );
    assert_readable(&rt, &url, "eb-copy", &names);
}

/// Which of `mpaths` an object's main copy belongs on (the store's HRW).
fn home_mpath<'a>(
    mpaths: &'a [std::path::PathBuf],
    bucket: &str,
    name: &str,
) -> &'a std::path::Path {
    let uname = ais_core::Bck::ais(bucket).obj_uname(name);
    let digests = mpaths
        .iter()
        .map(|p| ais_core::hrw::digest(&p.to_string_lossy()));
    &mpaths[ais_core::hrw::select(&uname, digests).unwrap()]
}

/// Every object of `bucket` held by the target is on its HRW mountpath
/// among `mpaths` and on no other (`gone` must hold none).
fn assert_resilvered(
    url: &str,
    bucket: &str,
    mpaths: &[std::path::PathBuf],
    gone: &[std::path::PathBuf],
) -> usize {
    let names = ais_testkit::rebal::names_on(url, bucket).unwrap();
    for n in &names {
        let home = home_mpath(mpaths, bucket, n);
        for m in mpaths.iter().chain(gone) {
            let f = m.join("@ais").join(bucket).join(n);
            assert_eq!(f.is_file(), m == home, "{n} on {}", m.display());
        }
    }
    names.len()
}

fn wait_job(rt: &tokio::runtime::Runtime, cl: &Client, id: &str) -> ais_client::JobStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = rt.block_on(cl.job_status(id)).unwrap();
        if s.finished() {
            return s;
        }
        assert!(Instant::now() < deadline, "job {id} did not finish: {s:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn resilver_after_mountpath_attach_detach_disable_enable() {
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let c = Cluster::start_with(Opts {
        targets: 2,
        mpaths: 2,
        ..Default::default()
    })
    .unwrap();
    let rt = rt();
    let url = c.url().to_string();
    let names = preload(&rt, &url, "rs", 600);
    let cl = Client::new(&url);
    // A mirrored bucket: its copies must follow the mountpaths too.
    rt.block_on(async {
        cl.create_bucket("rm").await.unwrap();
        cl.set_bucket_props(
            "rm",
            serde_json::json!({"mirror": {"enabled": true, "copies": 2}}),
        )
        .await
        .unwrap();
        for n in names.iter().take(100) {
            cl.put_bytes("rm", n, content(n)).await.unwrap();
        }
    });
    let t = &c.targets[0];
    let mp = |i: usize| t.data.join(format!("mp{i}")).canonicalize().unwrap();
    let (mp1, mp2) = (mp(1), mp(2));
    let mp3 = t.data.join("mp3");
    let before = assert_resilvered(&t.url, "rs", &[mp1.clone(), mp2.clone()], &[]);
    let load = Load::start(&rt, &url, "rs", &names, 8);

    // Attach: about a third of this target's objects move to the new one.
    let out = ais(
        &url,
        &[
            "storage",
            "mountpath",
            "attach",
            &t.id,
            &mp3.display().to_string(),
        ],
    );
    let id = out
        .split_whitespace()
        .find(|w| w.starts_with("resilver-"))
        .unwrap_or_else(|| panic!("no resilver job: {out}"))
        .trim_end_matches('.')
        .to_string();
    let j = wait_job(&rt, &cl, &id);
    assert_eq!(
        (j.kind.as_str(), j.err_count, j.aborted),
        ("resilver", 0, false),
        "{j:?}"
    );
    let mp3 = mp3.canonicalize().unwrap();
    let three = [mp1.clone(), mp2.clone(), mp3.clone()];
    let n = assert_resilvered(&t.url, "rs", &three, &[]);
    assert!(n >= before);
    assert!(
        j.objs as usize >= before / 6 && j.objs as usize <= before * 2 / 3,
        "attach moved {} of {before}",
        j.objs
    );
    assert!(ais(&url, &["show", "job"]).contains(&id));
    let shown = ais(&url, &["storage", "mountpath", "show"]);
    assert!(shown.contains(&mp3.display().to_string()), "{shown}");

    // Detach: mp1 is emptied first, its objects stay readable throughout.
    let id = rt
        .block_on(cl.mountpath_action(&t.url, "detach-mp", &mp1.display().to_string()))
        .unwrap();
    let j = wait_job(&rt, &cl, &id);
    assert_eq!((j.err_count, j.aborted), (0, false), "{j:?}");
    assert!(j.objs > 0, "{j:?}");
    let two = [mp2.clone(), mp3.clone()];
    assert_resilvered(&t.url, "rs", &two, std::slice::from_ref(&mp1));
    assert_resilvered(&t.url, "rm", &two, std::slice::from_ref(&mp1));
    let (written, errors, ops) = load.stop(&rt);
    assert_eq!(errors, 0, "client errors during attach/detach ({ops} ops)");
    let mut all = names.clone();
    all.extend(written);
    assert_readable(&rt, &url, "rs", &all);
    // Mirrored objects have their copy on the other remaining mountpath.
    for n in names.iter().take(100) {
        if !mp2.join("@ais/rm").join(n).is_file() && !mp3.join("@ais/rm").join(n).is_file() {
            continue; // on the other target
        }
        let copies = two
            .iter()
            .filter(|m| m.join("@mirror/rm").join(n).is_file())
            .count();
        assert_eq!(copies, 1, "{n}: mirror copies");
    }

    // Disable mp2: its objects are unreadable (nothing deleted) until enabled.
    let on_mp2: Vec<&String> = names
        .iter()
        .filter(|n| mp2.join("@ais/rs").join(n).is_file())
        .collect();
    assert!(!on_mp2.is_empty());
    rt.block_on(cl.mountpath_action(&t.url, "disable-mp", &mp2.display().to_string()))
        .unwrap();
    let e = rt.block_on(cl.get("rs", on_mp2[0])).unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
    assert!(mp2.join("@ais/rs").join(on_mp2[0]).is_file());
    let m: serde_json::Value =
        serde_json::to_value(rt.block_on(cl.mountpaths(&t.url)).unwrap()).unwrap();
    assert!(m["disabled"].to_string().contains("mp2"), "{m}");
    let id = rt
        .block_on(cl.mountpath_action(&t.url, "enable-mp", &mp2.display().to_string()))
        .unwrap();
    if !id.is_empty() {
        wait_job(&rt, &cl, &id);
    }
    assert_resilvered(&t.url, "rs", &two, std::slice::from_ref(&mp1));
    assert_readable(&rt, &url, "rs", &names);
    // Bad input is a clear error.
    let e = rt
        .block_on(cl.mountpath_action(&t.url, "detach-mp", "/no/such/mpath"))
        .unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
    let e = rt
        .block_on(cl.mountpath_action(&t.url, "detach-mp", "relative"))
        .unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
}

#[test]
fn damaged_object_is_never_moved_by_a_rebalance() {
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let (c, rt, url, names) = loaded(3, &[], "cb", 90);
    let t1 = &c.targets[1];
    let held = ais_testkit::rebal::names_on(&t1.url, "cb").unwrap();
    let victim = damage_one(&c, 1, "cb");
    let cl = Client::new(&url);
    let before = rt.block_on(rebalances(&cl));
    rt.block_on(node_action(&cl, "start-maintenance", &t1.id))
        .unwrap();
    let j = rt.block_on(finished_rebalance(&cl, before, Duration::from_secs(60)));
    assert_eq!(j.err_count, 1, "{j:?}");
    assert_eq!(j.objs as usize, held.len() - 1, "{j:?}");
    let errs = rt.block_on(cl.job_errors(&j.uuid)).unwrap();
    let e = format!("{errs:?}");
    assert!(e.contains(&victim) && e.contains("corrupted"), "{e}");
    // The damaged copy stays where it was; no other target got it.
    assert_eq!(
        ais_testkit::rebal::names_on(&t1.url, "cb").unwrap(),
        vec![victim.clone()]
    );
    for t in [&c.targets[0], &c.targets[2]] {
        let (st, _) = ais_testkit::raw_http(
            &t.url,
            "GET",
            &format!("/v1/internal/objattrs/cb/{victim}"),
            &[],
            b"",
        )
        .unwrap();
        assert_eq!(st, 404, "{victim} on {}", t.id);
    }
    let moved: Vec<String> = names.into_iter().filter(|n| *n != victim).collect();
    assert_readable(&rt, &url, "cb", &moved);
}

#[test]
fn shutdown_node_moves_objects_exits_and_rejoins_in_maintenance() {
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let (mut c, rt, url, names) = loaded(3, &[], "sb", 300);
    c.allow_log("could not tell the node");
    let cl = Client::new(&url);
    let t2 = c.targets[2].id.clone();
    let out = ais(&url, &["cluster", "add-remove-nodes", "shutdown", &t2]);
    assert!(out.contains("rebalance-"), "{out}");
    assert_left(&mut c.targets[2], Duration::from_secs(60));
    // Still in the map, in maintenance (not dropped for silence); nothing lost.
    std::thread::sleep(Duration::from_secs(3));
    assert_ne!(smap(&c).tmap[&t2].flags & NODE_FLAG_MAINTENANCE, 0);
    assert_readable(&rt, &url, "sb", &names);
    assert_eq!(
        rt.block_on(cl.list_all("sb", "", "")).unwrap().len(),
        names.len()
    );
    // A missing object is still a 404 (the node that is down held nothing).
    let e = rt.block_on(cl.get("sb", "no-such-object")).unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
    // Back up: it rejoins still in maintenance, and holds nothing.
    c.restart_target(2).unwrap();
    c.wait_targets(3).unwrap();
    assert_ne!(smap(&c).tmap[&t2].flags & NODE_FLAG_MAINTENANCE, 0);
    assert_eq!(count_on(&c.targets[2].url, "sb").unwrap(), 0);
    let j = stop_maintenance(&rt, &url, &t2);
    assert!(j.objs > 30, "{j:?}");
    assert_placed(&c, "sb", &names);
}

#[test]
fn decommission_completes_across_a_primary_restart() {
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    // Slow rebalance so the primary restarts while it runs.
    let (mut c, rt, url, names) = loaded(3, &[("AIS_REBALANCE_BPS", "128KiB")], "pb", 400);
    c.allow_log("could not tell the node");
    let cl = Client::new(&url);
    let gone = c.targets[1].id.clone();
    let id = rt
        .block_on(node_action(&cl, "decommission-node", &gone))
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let st = rt.block_on(cl.job_status(&id)).unwrap();
    assert_eq!(st.end_time, 0, "rebalance already over: {st:?}");
    c.restart_proxy().unwrap();
    // The restarted primary finishes it: the node leaves and the map drops it.
    assert_left(&mut c.targets[1], Duration::from_secs(90));
    let deadline = Instant::now() + Duration::from_secs(30);
    while smap(&c).tmap.contains_key(&gone) {
        assert!(Instant::now() < deadline, "t[{gone}] still in the map");
        std::thread::sleep(Duration::from_millis(200));
    }
    let st = rt.block_on(cl.job_status(&id)).unwrap();
    assert_eq!((st.err_count, st.aborted), (0, false), "{st:?}");
    assert_placed(&c, "pb", &names);
    assert_readable(&rt, &url, "pb", &names);
}

/// A decommission that cannot finish is reported as failed — the CLI exits
/// non-zero and says why, the primary records it — and the node stays in
/// the map with what it could not move; one that cannot even start (an
/// erasure-coded bucket would be left with too few targets) is refused
/// before anything moves.
#[test]
fn a_decommission_that_cannot_finish_is_reported_as_failed() {
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let (c, rt, url, names) = loaded(3, &[], "df", 60);
    c.allow_log("did not complete");
    let cl = Client::new(&url);
    // 1. EC 1+1 needs three targets: decommissioning one of three is refused.
    rt.block_on(async {
        cl.create_bucket("ec11").await.unwrap();
        cl.set_bucket_props(
            "ec11",
            serde_json::json!({"ec": {"enabled": true, "data_slices": 1, "parity_slices": 1}}),
        )
        .await
        .unwrap();
    });
    let t1 = c.targets[1].id.clone();
    let (ok, out, err) = ais_status(&url, &["cluster", "add-remove-nodes", "decommission", &t1]);
    assert!(!ok, "decommission accepted:\n{out}\n{err}");
    assert!(err.contains("ec11") && err.contains("too few"), "{err}");
    assert_eq!(smap(&c).tmap[&t1].flags, 0, "flagged although refused");
    rt.block_on(cl.destroy_bucket("ec11")).unwrap();
    // 2. A damaged object on the node cannot be moved: the rebalance reports
    //    it, so the decommission fails and the node keeps it.
    let victim = damage_one(&c, 1, "df");
    let (ok, out, err) = ais_status(&url, &["cluster", "add-remove-nodes", "decommission", &t1]);
    assert!(!ok, "decommission reported success:\n{out}\n{err}");
    assert!(
        err.contains("failed") && err.contains("run the action again"),
        "{err}"
    );
    assert!(!out.contains(": done"), "{out}");
    let states = rt.block_on(cl.node_lifecycle_states()).unwrap();
    assert_eq!(states[&t1]["state"], "failed", "{states:?}");
    assert!(
        smap(&c).tmap.contains_key(&t1),
        "removed although it holds {victim}"
    );
    let moved: Vec<String> = names.into_iter().filter(|n| *n != victim).collect();
    assert_readable(&rt, &url, "df", &moved);
}

/// A target that was shut down shows as offline (and in maintenance) in
/// `ais show cluster`; once it is decommissioned too, a missing object is a
/// plain 404 at once (not a 503 "may be on a target that left", which the
/// SDK would retry for 90 s).
#[test]
fn shut_down_then_decommissioned_target_shows_truthfully_and_misses_are_404() {
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let (mut c, rt, url, names) = loaded(3, &[], "sd", 100);
    c.allow_log("could not tell the node");
    let cl = Client::new(&url);
    let t2 = c.targets[2].id.clone();
    let (ok, out, err) = ais_status(&url, &["cluster", "add-remove-nodes", "shutdown", &t2]);
    assert!(ok && out.contains(": done"), "{out}\n{err}");
    assert_left(&mut c.targets[2], Duration::from_secs(60));
    let (ok, show, _) = ais_status(&url, &["show", "cluster"]);
    assert!(ok);
    let row = show
        .lines()
        .find(|l| l.starts_with(&format!("t[{t2}]")))
        .unwrap_or_else(|| panic!("no row for t[{t2}]:\n{show}"));
    assert!(row.contains("maintenance, offline"), "{row}");
    for t in &c.targets[..2] {
        let row = show
            .lines()
            .find(|l| l.starts_with(&format!("t[{}]", t.id)))
            .unwrap();
        assert!(row.contains("online"), "{row}");
    }
    let (ok, out, err) = ais_status(&url, &["cluster", "add-remove-nodes", "decommission", &t2]);
    assert!(ok && out.contains(": done"), "{out}\n{err}");
    assert!(!smap(&c).tmap.contains_key(&t2));
    let t0 = Instant::now();
    let e = rt.block_on(cl.get("sd", "no-such-object")).unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert_readable(&rt, &url, "sd", &names);
}

/// Object `p` on one target and `p/child` on another (AIStore allows both
/// names): a decommission and a join bring such names onto one target, and
/// both finish with every object readable, in place and listed in order.
#[test]
fn names_that_are_also_directories_survive_decommission_and_join() {
    let _g = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let mut c = Cluster::start_with(opts(3, &[])).unwrap();
    let rt = rt();
    let url = c.url().to_string();
    let cl = Client::new(&url);
    rt.block_on(cl.create_bucket("pc")).unwrap();
    let mut names = Vec::new();
    for i in 0..40 {
        // Half with the short name first, half with the long ones first.
        let group = [
            format!("d{i:02}"),
            format!("d{i:02}/x"),
            format!("d{i:02}/x/y"),
        ];
        if i % 2 == 0 {
            names.extend(group);
        } else {
            names.extend(group.into_iter().rev());
        }
    }
    rt.block_on(async {
        for n in &names {
            cl.put_bytes("pc", n, content(n)).await.unwrap();
        }
    });
    // Some pairs are split across targets (else the test proves nothing).
    let held: Vec<Vec<String>> = c
        .targets
        .iter()
        .map(|t| ais_testkit::rebal::names_on(&t.url, "pc").unwrap())
        .collect();
    let where_is = |n: &str| held.iter().position(|h| h.iter().any(|x| x == n));
    let split = (0..40)
        .filter(|i| where_is(&format!("d{i:02}")) != where_is(&format!("d{i:02}/x")))
        .count();
    assert!(
        split >= 10,
        "only {split} of 40 pairs are split across targets"
    );

    let gone = c.targets[1].id.clone();
    let (ok, out, err) = ais_status(
        &url,
        &["cluster", "add-remove-nodes", "decommission", &gone],
    );
    assert!(ok, "decommission failed:\n{out}\n{err}");
    assert_left(&mut c.targets[1], Duration::from_secs(60));
    c.targets.remove(1);
    let j = rt.block_on(newest_rebalance(&cl)).unwrap();
    assert_eq!(
        (j.err_count, j.err.as_str(), j.aborted),
        (0, "", false),
        "{j:?}"
    );
    assert_placed(&c, "pc", &names);
    assert_readable(&rt, &url, "pc", &names);

    let before = rt.block_on(rebalances(&cl));
    let joining = now_ns();
    c.add_target().unwrap();
    // The join's rebalance (not one that may still be counted from the
    // decommission): one that started after the join.
    wait_rebalance_started_after(&rt, &cl, joining);
    let j = rt.block_on(finished_rebalance(&cl, before, Duration::from_secs(60)));
    assert_eq!(
        (j.err_count, j.err.as_str(), j.aborted),
        (0, "", false),
        "{j:?}"
    );
    assert!(j.objs > 0, "{j:?}");
    assert_placed(&c, "pc", &names);
    assert_readable(&rt, &url, "pc", &names);
    let mut sorted = names.clone();
    sorted.sort();
    let listed: Vec<String> = rt
        .block_on(cl.list_all("pc", "", ""))
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(listed, sorted);
    // Deleting the short names leaves the long ones, and the other way.
    rt.block_on(async {
        for i in 0..40 {
            let n = if i % 2 == 0 {
                format!("d{i:02}")
            } else {
                format!("d{i:02}/x/y")
            };
            cl.delete_object("pc", &n).await.unwrap();
            assert_eq!(cl.get("pc", &n).await.unwrap_err().status(), Some(404));
        }
    });
    let left: Vec<String> = names
        .iter()
        .filter(|n| !(n.len() == 3 && n[1..].parse::<u32>().is_ok_and(|i| i % 2 == 0)))
        .filter(|n| !(n.ends_with("/x/y") && n[1..3].parse::<u32>().is_ok_and(|i| i % 2 == 1)))
        .cloned()
        .collect();
    assert_eq!(left.len(), 80);
    assert_readable(&rt, &url, "pc", &left);
}
