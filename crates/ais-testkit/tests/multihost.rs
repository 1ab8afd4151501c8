//! Multi-host: every node in its own network namespace on its own address
//! (`Opts::netns`), so nothing can lean on loopback or a shared host: the
//! cluster map carries the nodes' own addresses, clients follow redirects to
//! them, targets call each other there. Loss and rebalance run across those
//! hosts. (Any other cluster test runs this way with `AIS_TEST_NETNS=1`.)
//!
//! Needs root and iproute2 (as CI has); elsewhere the test says so and
//! returns.

use ais_testkit::checks::{
    create_mirrored, misplaced, names, node_urls, object_files, put_all, read_back,
    rebalanced_onto, rebalances, runtime, settled,
};
use ais_testkit::netns::Net;
use ais_testkit::{raw_http, Cluster, Opts};
use std::collections::BTreeSet;
use std::time::Duration;

fn netns_or_skip() -> bool {
    match Net::check() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("SKIPPED: {e:#}");
            false
        }
    }
}

/// Held while a test starts a cluster (whose network set-up sweeps what
/// dead test processes left) and by the test that plants such leftovers:
/// a sweep from a test beside it would remove them while they are made.
static SWEEPS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn sweeps() -> std::sync::MutexGuard<'static, ()> {
    SWEEPS.lock().unwrap_or_else(|e| e.into_inner())
}

/// `host` of `http://host:port`.
fn host_of(url: &str) -> &str {
    let hp = url.trim_start_matches("http://");
    hp.rsplit_once(':').map_or(hp, |(h, _)| h)
}

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn nodes_on_distinct_hosts_survive_loss_and_rebalance() {
    if !netns_or_skip() {
        return;
    }
    let sweeping = sweeps();
    let mut c = Cluster::start_with(Opts {
        targets: 3,
        mpaths: 2,
        netns: true,
        env: vec![("AIS_REBALANCE_SETTLE".into(), "1".into())],
        ..Default::default()
    })
    .unwrap();
    drop(sweeping);
    let net = c.net().expect("multi-host mode");
    let gateway = net.gateway();
    let addrs: Vec<String> = net.hosts().iter().map(|h| h.addr.clone()).collect();

    // 1. The map has every node at its own namespace's address, none on
    //    loopback, and nothing answers on loopback in the test's namespace.
    let urls = node_urls(&c).unwrap();
    assert_eq!(urls.len(), 4, "{urls:?}");
    let hosts: BTreeSet<&str> = urls.iter().map(|(_, u)| host_of(u)).collect();
    assert_eq!(hosts.len(), 4, "nodes share an address: {urls:?}");
    for (id, u) in &urls {
        let h = host_of(u);
        assert!(
            addrs.iter().any(|a| a == h),
            "{id} at {u}, not one of {addrs:?}"
        );
        assert!(!h.starts_with("127.") && h != gateway, "{id} at {u}");
    }
    let node = |u: &str| {
        std::iter::once(&c.proxy)
            .chain(c.targets.iter())
            .find(|n| n.url == u)
            .map(|n| n.host.clone())
    };
    for (id, u) in &urls {
        let host = node(u).flatten().expect("a node of this cluster");
        assert_eq!(host.addr, host_of(u));
        // Not reachable on the test's loopback (whatever else may listen
        // on that port there is not this node).
        let port = u.rsplit(':').next().unwrap();
        let there = raw_http(
            &format!("http://127.0.0.1:{port}"),
            "GET",
            "/v1/daemon?what=snode",
            &[],
            b"",
        )
        .ok()
        .and_then(|(_, b)| serde_json::from_slice::<serde_json::Value>(&b).ok());
        assert!(
            there.is_none_or(|v| v["daemon_id"] != id.as_str()),
            "{u} also answers on this namespace's loopback"
        );
    }

    // 2. Data: a plain bucket and a mirrored one (2 copies on 2 mountpaths).
    let rt = runtime().unwrap();
    let cl = c.client();
    let plain = names("p", 240);
    let mirrored = names("m", 160);
    rt.block_on(async {
        cl.create_bucket("plain").await.unwrap();
        create_mirrored(&cl, "mir", 2).await.unwrap();
        put_all(&cl, "plain", &plain, 0).await.unwrap();
        put_all(&cl, "mir", &mirrored, 0).await.unwrap();
    });
    for t in &c.targets {
        let held = object_files(&t.data, "plain").len();
        assert!(
            held > 0,
            "{} holds no objects: placement is not spread",
            t.url
        );
    }

    // 3. SIGKILL a target: the others' objects stay readable while it is
    //    down; its own come back when it restarts (same host, same data).
    c.targets[1].kill();
    let on_down = object_files(&c.targets[1].data, "plain");
    let elsewhere: Vec<String> = plain
        .iter()
        .filter(|n| !on_down.iter().any(|f| f.ends_with(n.as_str())))
        .cloned()
        .collect();
    assert!(elsewhere.len() < plain.len());
    rt.block_on(read_back(&cl, "plain", &elsewhere, 0, WAIT))
        .expect("objects of the running targets, one target down");
    c.restart_target(1).unwrap();
    c.wait_targets(3).unwrap();
    rt.block_on(async {
        read_back(&cl, "plain", &plain, 0, WAIT).await.unwrap();
        read_back(&cl, "mir", &mirrored, 0, WAIT).await.unwrap();
    });

    // 4. A fourth target (two mountpaths) joins: a rebalance moves about a
    //    quarter of the objects to it, with no error and nothing lost.
    //    (The new cluster's own first rebalance, or its retry after the
    //    kill above, finishes first: it would otherwise count as this one.)
    rt.block_on(settled(&cl, Duration::from_secs(60))).unwrap();
    let before = rt.block_on(rebalances(&cl)).unwrap().len();
    let new = c.add_target_with(2).unwrap();
    let jobs = rt
        .block_on(rebalanced_onto(
            &cl,
            before,
            &c.targets[new].id,
            Duration::from_secs(90),
        ))
        .unwrap();
    // One rebalance, or (when the map changed under a starting one) an
    // older one superseded by the one that ran on the new target.
    let job = jobs.last().expect("a rebalance");
    assert_eq!(
        (job.err_count, job.err.as_str(), job.aborted),
        (0, "", false),
        "{jobs:#?}"
    );
    assert!(jobs.iter().all(|j| j.err_count == 0), "{jobs:#?}");
    let moved: u64 = jobs.iter().map(|j| j.objs).sum();
    let total = (plain.len() + mirrored.len()) as u64;
    assert!(
        moved >= total / 8 && moved <= total / 2,
        "rebalance moved {moved} of {total} objects: {jobs:#?}"
    );
    assert_eq!(node_urls(&c).unwrap().len(), 5);
    for (bucket, list) in [("plain", &plain), ("mir", &mirrored)] {
        let wrong = misplaced(&c, bucket, list).unwrap();
        assert!(wrong.is_empty(), "{bucket}: {wrong:#?}");
    }
    rt.block_on(async {
        read_back(&cl, "plain", &plain, 0, WAIT).await.unwrap();
        read_back(&cl, "mir", &mirrored, 0, WAIT).await.unwrap();
        assert_eq!(
            cl.list_all("plain", "", "").await.unwrap().len(),
            plain.len()
        );
        assert_eq!(
            cl.list_all("mir", "", "").await.unwrap().len(),
            mirrored.len()
        );
    });

    // 5. A lost disk: SIGKILL a target, delete everything on one of its
    //    mountpaths, restart it. Every mirrored object reads back intact
    //    (from the copy on the other mountpath); an unmirrored object that
    //    was on the lost disk fails, and is never served with wrong bytes.
    let t0 = c.targets[0].data.clone();
    let lost_plain: BTreeSet<String> = object_files(&t0.join("mp1"), "plain")
        .iter()
        .filter_map(|f| plain.iter().find(|n| f.ends_with(n.as_str())).cloned())
        .collect();
    let lost_mirrored = object_files(&t0.join("mp1"), "mir").len();
    assert!(lost_mirrored > 0, "no mirrored copy on the disk to lose");
    c.targets[0].kill();
    for sub in ["@ais", "@mirror"] {
        let d = t0.join("mp1").join(sub);
        if d.exists() {
            std::fs::remove_dir_all(&d).unwrap();
        }
    }
    c.restart_target(0).unwrap();
    c.wait_targets(4).unwrap();
    rt.block_on(async {
        read_back(&cl, "mir", &mirrored, 0, WAIT).await.unwrap();
        let kept: Vec<String> = plain
            .iter()
            .filter(|n| !lost_plain.contains(*n))
            .cloned()
            .collect();
        read_back(&cl, "plain", &kept, 0, WAIT).await.unwrap();
        for n in &lost_plain {
            let e = cl.get("plain", n).await.expect_err(n);
            assert!(e.status().is_some_and(|s| s >= 400), "{n}: {e}");
        }
    });
}

fn netns_names() -> BTreeSet<String> {
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

#[test]
fn a_panicking_test_leaves_no_namespace_or_bridge() {
    if !netns_or_skip() {
        return;
    }
    let made = std::sync::Mutex::new((Vec::new(), String::new()));
    let r = std::panic::catch_unwind(|| {
        let sweeping = sweeps();
        let c = Cluster::start_with(Opts {
            targets: 1,
            netns: true,
            ..Default::default()
        })
        .unwrap();
        drop(sweeping);
        let net = c.net().unwrap();
        let mut m = made.lock().unwrap();
        m.0 = net.hosts().iter().map(|h| h.netns.clone()).collect();
        m.1 = format!("aisb{}", net.gateway().split('.').nth(2).unwrap());
        assert!(netns_names().is_superset(&m.0.iter().cloned().collect()));
        assert!(link_exists(&m.1), "{} missing", m.1);
        drop(m);
        panic!("boom");
    });
    assert!(r.is_err());
    let (spaces, bridge) = made.into_inner().unwrap();
    assert_eq!(spaces.len(), 2, "{spaces:?}");
    let left = netns_names();
    assert!(spaces.iter().all(|s| !left.contains(s)), "left: {left:?}");
    assert!(!link_exists(&bridge), "{bridge} left");
}

#[test]
fn leftovers_of_a_killed_test_process_are_swept() {
    if !netns_or_skip() {
        return;
    }
    let _sweeping = sweeps();
    // A pid that no longer runs.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let ip = |args: &[&str]| {
        let st = std::process::Command::new("ip")
            .args(args)
            .status()
            .unwrap();
        assert!(st.success(), "ip {args:?}");
    };
    let ns = format!("aist-{dead}-0-0");
    ip(&["netns", "add", &ns]);
    // A free bridge name (another test may hold some).
    let bridge = (0..250)
        .map(|n| format!("aisb{n}"))
        .find(|b| !link_exists(b))
        .unwrap();
    ip(&["link", "add", &bridge, "type", "bridge"]);
    let alias = format!("aistore-rs-test pid={dead}");
    ip(&["link", "set", &bridge, "alias", &alias]);
    let net = Net::new().unwrap();
    assert!(!netns_names().contains(&ns), "{ns} not swept");
    // A test running beside this one may have made a bridge of the same
    // name since the sweep: only the dead process's one must be gone.
    let ifalias = std::path::Path::new("/sys/class/net")
        .join(&bridge)
        .join("ifalias");
    let now = std::fs::read_to_string(ifalias).unwrap_or_default();
    assert_ne!(now.trim(), alias, "{bridge} not swept");
    drop(net);
}
