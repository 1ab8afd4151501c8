//! Several proxies: any of them serves clients. A non-primary proxy
//! redirects object requests and answers listings itself, from its copy of
//! the metadata, and forwards metadata changes, jobs and the rest to the
//! primary; `ais show cluster` lists every proxy and marks the primary.
//! With the primary frozen, the data path through the other proxies keeps
//! working, and what needs the primary fails fast, saying so.

use ais_client::Client;
use ais_testkit::{raw_http, raw_http_full, run_ais, Cluster};
use serde_json::json;
use std::time::{Duration, Instant};

fn header<'a>(h: &'a [(String, String)], k: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn rt() -> tokio::runtime::Runtime {
    ais_testkit::checks::runtime().unwrap()
}

#[test]
fn any_proxy_serves_clients_and_forwards_what_the_primary_owns() {
    let mut c = Cluster::start(3).unwrap();
    c.add_proxy().unwrap();
    c.add_proxy().unwrap();
    let (p2, p3) = (c.proxies[0].url.clone(), c.proxies[1].url.clone());
    let smap = c.smap().unwrap();
    assert_eq!(smap["pmap"].as_object().map(|m| m.len()), Some(3), "{smap}");

    // A bucket created through one non-primary proxy is known to all.
    let (st, body) = raw_http(
        &p2,
        "POST",
        "/v1/buckets/mb",
        &[("content-type", "application/json")],
        json!({"action": "create-bck"}).to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let rt = rt();
    // Objects through the other one: redirected to their targets from there.
    let targets: Vec<String> = c.targets.iter().map(|t| t.url.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let loc = loop {
        let (st, h, body) = raw_http_full(&p3, "PUT", "/v1/objects/mb/o1", &[], b"").unwrap();
        if st == 307 {
            break header(&h, "location").unwrap_or("").to_string();
        }
        // (The bucket may reach this proxy a push later.)
        assert!(
            Instant::now() < deadline,
            "{st}: {}",
            String::from_utf8_lossy(&body)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(targets.iter().any(|t| loc.starts_with(t.as_str())), "{loc}");
    let cl3 = Client::new(&p3);
    for i in 0..20 {
        rt.block_on(cl3.put_bytes("mb", &format!("o/{i}"), format!("v{i}").into_bytes()))
            .unwrap();
    }
    let (st, h, _) = raw_http_full(&p2, "GET", "/v1/objects/mb/o/7", &[], b"").unwrap();
    assert!(st == 301 || st == 307, "{st}");
    assert!(
        header(&h, "location").is_some_and(|l| targets.iter().any(|t| l.starts_with(t.as_str())))
    );
    // Listings are answered by any proxy.
    let cl2 = Client::new(&p2);
    assert_eq!(rt.block_on(cl2.list_all("mb", "o/", "")).unwrap().len(), 20);
    // Jobs start and are followed through any proxy (the primary keeps them).
    let (ok, out, err) = run_ais(&p2, &["bucket", "cp", "ais://mb", "ais://mb2", "--wait"]);
    assert!(ok, "{out}\n{err}");
    let (ok, out, err) = run_ais(&p3, &["show", "job", "--json"]);
    assert!(ok && out.contains("copy-bck"), "{out}\n{err}");
    assert_eq!(
        rt.block_on(cl3.list_all("mb2", "o/", "")).unwrap().len(),
        20
    );
    // `ais show cluster` through a non-primary proxy: three proxies, the
    // primary marked.
    let (ok, out, err) = run_ais(&p2, &["show", "cluster"]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("p[{}][P]", c.proxy.id)), "{out}");
    for p in &c.proxies {
        assert!(out.contains(&format!("p[{}]", p.id)), "{out}");
    }
    assert!(out.contains("Proxies:       3"), "{out}");
    // A forwarded request that reaches a proxy that is not the primary is
    // refused, never sent on again.
    let (st, body) = raw_http(
        &p2,
        "POST",
        "/v1/buckets/loop",
        &[
            ("content-type", "application/json"),
            ("ais-forwarded-by", "someone"),
        ],
        json!({"action": "create-bck"}).to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(st, 503, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("not the primary"));
    // A dot segment is refused, never collapsed into another resource on
    // the way to the primary.
    for path in [
        "/v1/objects/nobkt/%2e%2e/%2E%2E/cluster/proxy/x",
        "/v1/objects/mb/d/../o1",
    ] {
        let (st, body) = raw_http(&p2, "PATCH", path, &[], b"{}").unwrap();
        assert_eq!(st, 400, "{path}: {}", String::from_utf8_lossy(&body));
    }

    // The primary frozen: the data path through the others keeps working;
    // a change that needs the primary fails fast, naming why.
    let pid = c.proxy.pid().unwrap() as i32;
    // SAFETY: kill(2) on a child this test started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let frozen = Instant::now();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for i in 0..20 {
            let got = rt.block_on(cl2.get("mb", &format!("o/{i}"))).unwrap();
            assert_eq!(got.as_ref(), format!("v{i}").as_bytes());
        }
        rt.block_on(cl3.put_bytes("mb", "during", b"frozen".to_vec()))
            .unwrap();
        assert_eq!(rt.block_on(cl2.list_all("mb", "", "")).unwrap().len(), 21);
        // Past the keepalive timeout (2 s here), no waiting on the primary.
        std::thread::sleep(Duration::from_secs(3).saturating_sub(frozen.elapsed()));
        let t0 = Instant::now();
        let (st, body) = raw_http(
            &p2,
            "POST",
            "/v1/buckets/during",
            &[("content-type", "application/json")],
            json!({"action": "create-bck"}).to_string().as_bytes(),
        )
        .unwrap();
        let body = String::from_utf8_lossy(&body).to_string();
        // Fast either way: refused while no primary answers, or done by a
        // newly elected one (failover.rs covers the election).
        assert!(
            (st == 503 && body.contains("has not answered")) || st == 200,
            "{st}: {body}"
        );
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    }));
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    if let Err(e) = res {
        std::panic::resume_unwind(e);
    }
    // Back: the primary does not take its own pause for the nodes'
    // silence (their keepalives were queued meanwhile): nobody is dropped.
    c.wait_targets(3).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let log = c.proxy.log();
    assert!(
        !log.contains("no keepalive: removing"),
        "nodes dropped after the primary's own pause:\n{log}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (st, body) = raw_http(
            &p2,
            "POST",
            "/v1/buckets/after",
            &[("content-type", "application/json")],
            json!({"action": "create-bck"}).to_string().as_bytes(),
        )
        .unwrap();
        if st == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{st}: {}",
            String::from_utf8_lossy(&body)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        rt.block_on(cl3.get("mb", "during")).unwrap().as_ref(),
        b"frozen"
    );
    c.stop().unwrap();
}

/// `PUT /v1/cluster/proxy/ID` (AIStore's set-primary): naming the primary
/// is a no-op; an unknown one is 404; another proxy takes the role
/// (through any proxy, and with the CLI), every proxy and target follows,
/// and changes go on through the new primary and the old one alike.
#[test]
fn set_primary_hands_the_role_to_another_proxy() {
    let mut c = Cluster::start(2).unwrap();
    c.add_proxy().unwrap();
    c.add_proxy().unwrap();
    let urls: Vec<String> = c.all_proxies().iter().map(|p| p.url.clone()).collect();
    let ids: Vec<String> = c.all_proxies().iter().map(|p| p.id.clone()).collect();
    let primary_at = |u: &str| -> String {
        let (_, body) = raw_http(u, "GET", "/v1/daemon?what=smap", &[], b"").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["proxy_si"]["daemon_id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let everyone_names = |id: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        let nodes: Vec<String> = urls
            .iter()
            .cloned()
            .chain(c.targets.iter().map(|t| t.url.clone()))
            .collect();
        loop {
            let named: Vec<String> = nodes.iter().map(|u| primary_at(u)).collect();
            if named.iter().all(|n| n == id) {
                return;
            }
            assert!(Instant::now() < deadline, "not all follow {id}: {named:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let (st, _) = raw_http(
        &urls[1],
        "PUT",
        &format!("/v1/cluster/proxy/{}", ids[0]),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(st, 200);
    let (st, _) = raw_http(&urls[0], "PUT", "/v1/cluster/proxy/nosuch", &[], b"").unwrap();
    assert_eq!(st, 404);
    // Through a non-primary proxy (forwarded to the primary).
    let (st, body) = raw_http(
        &urls[2],
        "PUT",
        &format!("/v1/cluster/proxy/{}", ids[1]),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    everyone_names(&ids[1]);
    let rt = rt();
    for (i, u) in urls.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (st, body) = raw_http(
                u,
                "POST",
                &format!("/v1/buckets/after{i}"),
                &[("content-type", "application/json")],
                json!({"action": "create-bck"}).to_string().as_bytes(),
            )
            .unwrap();
            if st == 200 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{st}: {}",
                String::from_utf8_lossy(&body)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        rt.block_on(Client::new(u).put_bytes(&format!("after{i}"), "o", b"x".to_vec()))
            .unwrap();
    }
    // With the CLI, back to the first proxy.
    let (ok, out, err) = run_ais(&urls[2], &["cluster", "set-primary", &ids[0]]);
    assert!(ok, "{out}\n{err}");
    everyone_names(&ids[0]);
    let (ok, out, err) = run_ais(&urls[1], &["show", "cluster"]);
    assert!(
        ok && out.contains(&format!("p[{}][P]", ids[0])),
        "{out}\n{err}"
    );
    c.stop().unwrap();
}

/// A proxy restarted at another address (a rescheduled pod) keeps its
/// identity and its place in the control plane: the primary replicates to
/// the new address, and it follows later changes.
#[test]
fn a_proxy_back_at_another_address_follows_the_control_plane() {
    let mut c = Cluster::start(1).unwrap();
    c.add_proxy().unwrap();
    c.add_proxy().unwrap();
    let old_url = c.proxies[0].url.clone();
    c.proxies[0].stop();
    let env = c.env.clone();
    let moved = c.proxies[0].respawn_elsewhere(&env).unwrap();
    assert_ne!(moved.url, old_url);
    c.proxies[0] = moved;
    let url = c.proxies[0].url.clone();
    let create = |name: &str| {
        raw_http(
            c.url(),
            "POST",
            &format!("/v1/buckets/{name}"),
            &[("content-type", "application/json")],
            json!({"action": "create-bck"}).to_string().as_bytes(),
        )
        .unwrap()
        .0
    };
    // The map lists it at its new address; a change made afterwards
    // reaches it (through the control plane's log, at that address).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    loop {
        n += 1;
        let name = format!("moved{n}");
        assert_eq!(create(&name), 200);
        std::thread::sleep(Duration::from_millis(500));
        let known = raw_http(&url, "HEAD", &format!("/v1/buckets/{name}"), &[], b"")
            .is_ok_and(|(st, _)| st == 200);
        let listed = c.smap().ok().is_some_and(|m| {
            m["pmap"][&c.proxies[0].id]["public_net"]["direct_url"].as_str() == Some(url.as_str())
                || m.to_string().contains(url.trim_start_matches("http://"))
        });
        if known && listed {
            break;
        }
        assert!(Instant::now() < deadline, "the moved proxy does not follow");
    }
    c.stop().unwrap();
}

/// The handover's messages and a copied identity: `hold` and `campaign`
/// from anyone but the current leader are refused and change nothing; a
/// second process with a proxy's identity (a copied data dir) is refused
/// its seat while the first still answers.
#[test]
fn forged_handover_messages_and_a_copied_identity_are_refused() {
    let mut c = Cluster::start(1).unwrap();
    c.add_proxy().unwrap();
    c.add_proxy().unwrap();
    let primary = c.proxy.id.clone();
    let follower = c.proxies[0].url.clone();
    for kind in ["hold", "campaign"] {
        for body in [
            json!({"leader": 1, "term": 1, "ms": 60000}),
            json!({"leader": 1, "term": 999, "ms": 60000}),
        ] {
            let (st, out) = raw_http(
                &follower,
                "POST",
                &format!("/v1/metasync/raft/{kind}"),
                &[("content-type", "application/json")],
                body.to_string().as_bytes(),
            )
            .unwrap();
            assert_eq!(st, 409, "{kind}: {}", String::from_utf8_lossy(&out));
        }
    }
    // Consensus messages not addressed to this member (its address now
    // held by another process, e.g. another cluster's node) are refused,
    // never answered with this member's term.
    for q in ["", "?to=1"] {
        let (st, out) = raw_http(
            &follower,
            "POST",
            &format!("/v1/metasync/raft/vote{q}"),
            &[("content-type", "application/json")],
            b"{}",
        )
        .unwrap();
        assert_eq!(st, 409, "vote{q}: {}", String::from_utf8_lossy(&out));
        assert!(
            String::from_utf8_lossy(&out).contains("not addressed to it"),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    let m = c.smap().unwrap();
    assert_eq!(m["proxy_si"]["daemon_id"], primary.as_str(), "{m}");

    // A copy of proxy2's data dir, started beside it.
    let copy = c.dir.path().join("proxy2-copy");
    let status = std::process::Command::new("cp")
        .args([
            "-a",
            &c.proxies[0].data.display().to_string(),
            &copy.display().to_string(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let env = c.env.clone();
    let mut twin = c.proxies[0].spawn_copy(&env, copy).unwrap();
    c.allow_log("refusing a second process with the same identity");
    c.allow_log("cannot join");
    std::thread::sleep(Duration::from_secs(4));
    let m = c.smap().unwrap();
    let url = m["pmap"][&c.proxies[0].id]["public_net"]["direct_url"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| m["pmap"][&c.proxies[0].id].to_string());
    assert!(
        url.contains(c.proxies[0].url.trim_start_matches("http://")),
        "the twin took the seat: {url}"
    );
    assert!(
        !url.contains(twin.url.trim_start_matches("http://")),
        "{url}"
    );
    twin.kill();
    // The original still follows the control plane.
    let (st, _) = raw_http(
        c.url(),
        "POST",
        "/v1/buckets/after-twin",
        &[("content-type", "application/json")],
        json!({"action": "create-bck"}).to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(st, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !raw_http(
        &c.proxies[0].url,
        "HEAD",
        "/v1/buckets/after-twin",
        &[],
        b"",
    )
    .is_ok_and(|(st, _)| st == 200)
    {
        assert!(Instant::now() < deadline, "the original stopped following");
        std::thread::sleep(Duration::from_millis(200));
    }
    c.stop().unwrap();
}

/// A decommissioned proxy leaves the control plane for good: it no longer
/// counts in a majority. Three proxies, one decommissioned (with the CLI),
/// a new one added, then one of the two old followers killed: the primary
/// and the new proxy are two of three voters and changes still commit (had
/// the decommissioned proxy stayed a voter, two of four would not be a
/// majority). The primary itself, and maintenance of a proxy, are refused.
#[test]
fn a_decommissioned_proxy_no_longer_counts_in_the_majority() {
    let mut c = Cluster::start(1).unwrap();
    c.add_proxy().unwrap();
    c.add_proxy().unwrap();
    c.allow_log("control plane");
    c.allow_log("keepalive");
    let primary = c.proxy.id.clone();
    let gone = c.proxies[1].id.clone();
    let put = |url: &str, body: serde_json::Value| {
        let (st, b) = raw_http(
            url,
            "PUT",
            "/v1/cluster",
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        )
        .unwrap();
        (st, String::from_utf8_lossy(&b).into_owned())
    };
    let (st, msg) = put(
        c.url(),
        json!({"action": "decommission-node", "value": {"sid": primary}}),
    );
    assert_eq!(st, 400, "{msg}");
    assert!(msg.contains("set-primary"), "{msg}");
    let (st, msg) = put(
        c.url(),
        json!({"action": "start-maintenance", "value": {"sid": gone}}),
    );
    assert_eq!(st, 400, "{msg}");

    // With another voter down, the removal could never commit (and would
    // hold up every later change): refused, nothing changed.
    c.proxies[0].signal(libc::SIGSTOP);
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let (st, msg) = put(
            c.url(),
            json!({"action": "decommission-node", "value": {"sid": gone}}),
        );
        if st != 200 && msg.contains("not answering") {
            break msg;
        }
        assert!(st != 200, "removed a voter while another was down: {msg}");
        assert!(Instant::now() < deadline, "{st} {msg}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(refused.contains(&c.proxies[0].id), "{refused}");
    c.proxies[0].signal(libc::SIGCONT);
    // The control plane goes on (the thawed proxy may call an election
    // first, and catch up with the primary: retried), through either.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (u, b) in [
        (c.url().to_string(), "while"),
        (c.proxies[0].url.clone(), "while2"),
    ] {
        let (st, body) = loop {
            let (st, body) = raw_http(
                &u,
                "POST",
                &format!("/v1/buckets/{b}"),
                &[("content-type", "application/json")],
                json!({"action": "create-bck"}).to_string().as_bytes(),
            )
            .unwrap();
            if st == 200 || st == 409 || Instant::now() > deadline {
                break (st, body);
            }
            std::thread::sleep(Duration::from_millis(300));
        };
        assert!(
            st == 200 || st == 409,
            "{st}: {}",
            String::from_utf8_lossy(&body)
        );
    }

    // Through a non-primary proxy (forwarded), with the CLI.
    let via = c.proxies[0].url.clone();
    let (ok, out, err) = run_ais(
        &via,
        &["cluster", "add-remove-nodes", "decommission", &gone],
    );
    assert!(ok && out.contains("done"), "{out}\n{err}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.proxies[1].is_running() {
        assert!(
            Instant::now() < deadline,
            "the decommissioned proxy still runs"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The map read from the first proxy, which may be a follower by now
    // (the thawed proxy may have won an election): it converges.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let smap = c.smap().unwrap();
        if smap["pmap"].get(&gone).is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "{smap}");
        std::thread::sleep(Duration::from_millis(200));
    }

    c.add_proxy().unwrap();
    c.proxies[0].kill();
    // The remaining two of three voters elect a leader (if the killed one
    // led) and commit: bounded, with room for a loaded host.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (st, body) = raw_http(
            c.url(),
            "POST",
            "/v1/buckets/after",
            &[("content-type", "application/json")],
            json!({"action": "create-bck"}).to_string().as_bytes(),
        )
        .unwrap();
        if st == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no majority without the decommissioned proxy: {st} {}",
            String::from_utf8_lossy(&body)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    c.stop().unwrap();
}
