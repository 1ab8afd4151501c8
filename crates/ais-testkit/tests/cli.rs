//! The `ais` CLI and `aisnode playground` as a user runs them.

use ais_testkit::{
    bin, free_port, interrupt_and_reap, pids_mentioning, raw_http, target_count_at, Cluster,
};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn ais(endpoint: &str, args: &[&str]) -> (bool, String, String) {
    ais_testkit::run_ais(endpoint, args)
}

fn ok(endpoint: &str, args: &[&str]) -> String {
    let (ok, out, err) = ais(endpoint, args);
    assert!(ok, "ais {args:?} failed:\n{out}\n{err}");
    out
}

#[test]
fn cli_seed_workflow() {
    let c = Cluster::start(3).unwrap();
    let e = c.url();
    let tmp = tempfile::tempdir().unwrap();
    let out = ok(e, &["show", "cluster"]);
    assert!(out.contains("PROXY") && out.contains("TARGET"), "{out}");
    assert_eq!(out.matches("t[").count(), 3, "{out}");
    assert!(out.contains("Targets:       3"), "{out}");

    ok(e, &["bucket", "create", "ais://imagenet"]);
    let (okk, _, err) = ais(e, &["bucket", "create", "ais://imagenet"]);
    assert!(!okk && err.contains("already exists"), "{err}");
    assert!(ok(e, &["bucket", "ls"]).contains("ais://imagenet"));

    // A small ImageNet-like tree, uploaded recursively.
    let src = tmp.path().join("imagenet");
    for (dir, n) in [("train", 30), ("val", 5)] {
        std::fs::create_dir_all(src.join(dir)).unwrap();
        for i in 0..n {
            std::fs::write(src.join(dir).join(format!("{i:07}.jpg")), vec![b'j'; 18309]).unwrap();
            std::fs::write(
                src.join(dir).join(format!("{i:07}.cls")),
                format!("{}", i % 10),
            )
            .unwrap();
        }
    }
    let out = ok(e, &["put", src.to_str().unwrap(), "ais://imagenet", "-r"]);
    assert!(out.contains("PUT 70 objects"), "{out}");
    let ls = ok(e, &["ls", "ais://imagenet"]);
    let lines: Vec<&str> = ls.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("SIZE"),
        "{ls}"
    );
    assert_eq!(lines.len(), 71, "{ls}");
    assert!(
        ls.contains("train/0000003.cls") && ls.contains("17.88KiB") && ls.contains("1B"),
        "{ls}"
    );
    // Aligned columns: SIZE starts at the same offset on every line.
    let col = lines[0].find("SIZE").unwrap();
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.len() > col && l.as_bytes()[col - 1] == b' '),
        "{ls}"
    );
    let val = ok(e, &["ls", "ais://imagenet", "--prefix", "val/"]);
    assert_eq!(val.lines().count(), 11);
    let json = ok(e, &["ls", "ais://imagenet", "--prefix", "val/", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 10);

    // get to a named file, to the default name in cwd, and to stdout; object cat.
    let dst = tmp.path().join("out.jpg");
    ok(
        e,
        &[
            "get",
            "ais://imagenet/train/0000007.jpg",
            dst.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(&dst).unwrap().len(), 18309);
    let st = Command::new(bin("ais"))
        .args(["get", "ais://imagenet/train/0000008.jpg"])
        .env("AIS_ENDPOINT", e)
        .current_dir(tmp.path())
        .status()
        .unwrap();
    assert!(st.success());
    assert!(tmp.path().join("0000008.jpg").exists());
    assert_eq!(
        ok(e, &["object", "cat", "ais://imagenet/train/0000007.cls"]),
        "7"
    );
    assert_eq!(ok(e, &["get", "ais://imagenet/val/0000003.cls", "-"]), "3");

    // put a single file with and without a name; rm.
    let f = tmp.path().join("one.txt");
    std::fs::write(&f, "hello").unwrap();
    ok(e, &["put", f.to_str().unwrap(), "ais://imagenet"]);
    ok(
        e,
        &["put", f.to_str().unwrap(), "ais://imagenet/renamed.txt"],
    );
    assert_eq!(
        ok(e, &["object", "cat", "ais://imagenet/renamed.txt"]),
        "hello"
    );
    assert_eq!(ok(e, &["object", "cat", "ais://imagenet/one.txt"]), "hello");
    ok(e, &["rm", "ais://imagenet/one.txt"]);

    // Errors go to stderr with a non-zero exit code.
    for (args, needle) in [
        (
            vec!["get", "ais://imagenet/nope.jpg", "-"],
            "does not exist",
        ),
        (vec!["ls", "ais://missing"], "ais://missing"),
        (
            vec!["put", "/definitely/not/here", "ais://imagenet"],
            "cannot read",
        ),
        (vec!["put", src.to_str().unwrap(), "ais://imagenet"], "-r"),
        (vec!["bucket", "create", "ais://bad name"], "invalid"),
    ] {
        let (okk, out, err) = ais(e, &args);
        assert!(!okk, "{args:?} should fail: {out}");
        assert!(
            err.starts_with("Error:") && err.contains(needle),
            "{args:?}: {err}"
        );
    }
    let (okk, _, err) = ais("http://127.0.0.1:1", &["bucket", "ls"]);
    assert!(!okk && err.contains("cannot reach"), "{err}");
    // A failed download leaves no partial file behind.
    assert!(!tmp.path().join("nope.jpg").exists() && !tmp.path().join("nope.jpg.part").exists());

    ok(e, &["bucket", "rm", "ais://imagenet"]);
    assert!(!ok(e, &["bucket", "ls"]).contains("imagenet"));
}

#[test]
fn playground_runs_stops_cleanly_and_keeps_data() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let port = free_port().unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    for round in 0..2 {
        let mut child = Command::new(bin("aisnode"))
            .args([
                "playground",
                "--targets",
                "3",
                "--port",
                &port.to_string(),
                "--data",
                data.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let n = target_count_at(&endpoint);
            if n == 3 {
                break;
            }
            assert!(Instant::now() < deadline, "playground did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        // The map a restarted proxy loads may list the targets before they
        // are running again: wait for the processes too.
        while pids_mentioning(&data).len() != 5 {
            assert!(
                Instant::now() < deadline,
                "playground + proxy + 3 targets: {:?}",
                pids_mentioning(&data)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        if round == 0 {
            ok(&endpoint, &["bucket", "create", "ais://keep"]);
            let f = tmp.path().join("x");
            std::fs::write(&f, "persisted").unwrap();
            ok(&endpoint, &["put", f.to_str().unwrap(), "ais://keep/x"]);
        } else {
            assert!(ok(&endpoint, &["bucket", "ls"]).contains("ais://keep"));
            // Targets may take a moment to settle into the map after a restart.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let (okk, out, _) = ais(&endpoint, &["object", "cat", "ais://keep/x"]);
                if okk {
                    assert_eq!(out, "persisted");
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "object not readable after restart"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        // Ctrl-C: everything stops, nothing outlives the playground.
        interrupt_and_reap(&mut child, &data, Duration::from_secs(15)).unwrap();
    }
}

/// `aisnode playground --proxies 3`: three proxies (the primary and two on
/// the next ports), each serving clients, listed in playground.json; one
/// killed with SIGKILL is restarted and rejoins.
#[test]
fn playground_with_three_proxies_restarts_a_killed_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut child = Command::new(bin("aisnode"))
        .args([
            "playground",
            "--targets",
            "1",
            "--proxies",
            "3",
            "--port",
            "0",
            "--data",
            data.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state = |want_pid_not: Option<u64>| -> Option<serde_json::Value> {
        let raw = std::fs::read(data.join("playground.json")).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
        let proxies = v["nodes"]
            .as_array()?
            .iter()
            .filter(|n| n["role"] == "proxy" && n["running"] == true)
            .count();
        let p2_pid = v["nodes"]
            .as_array()?
            .iter()
            .find(|n| n["name"] == "proxy2")?["pid"]
            .as_u64();
        (proxies == 3 && p2_pid.is_some() && p2_pid != want_pid_not).then_some(v)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let st = loop {
        if let Some(v) = state(None) {
            let primary = v["proxy_url"].as_str().unwrap_or("").to_string();
            let (okk, out, _) = ais(&primary, &["show", "cluster"]);
            if okk && out.contains("Proxies:       3") && out.contains("Targets:       1") {
                break v;
            }
        }
        assert!(Instant::now() < deadline, "playground did not come up");
        std::thread::sleep(Duration::from_millis(200));
    };
    let node = |name: &str| -> serde_json::Value {
        st["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap()
            .clone()
    };
    let (p2, p3) = (node("proxy2"), node("proxy3"));
    let p3url = p3["url"].as_str().unwrap().to_string();
    let out = ok(&p3url, &["show", "cluster"]);
    assert!(
        out.contains("[P]") && out.contains("Proxies:       3"),
        "{out}"
    );
    // Through a non-primary proxy: a bucket, an object, a listing.
    ok(&p3url, &["bucket", "create", "ais://pp"]);
    let f = tmp.path().join("x");
    std::fs::write(&f, "through proxy3").unwrap();
    ok(&p3url, &["put", f.to_str().unwrap(), "ais://pp/x"]);
    assert!(ok(&p3url, &["ls", "ais://pp"]).contains('x'));

    // SIGKILL proxy2: the playground restarts it, and it serves again.
    let old = p2["pid"].as_u64().unwrap();
    // SAFETY: kill(2) on a pid the playground reports as its child.
    unsafe { libc::kill(old as i32, libc::SIGKILL) };
    let p2url = p2["url"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if state(Some(old)).is_some() {
            let (okk, out, _) = ais(&p2url, &["object", "cat", "ais://pp/x"]);
            if okk && out == "through proxy3" {
                break;
            }
        }
        assert!(Instant::now() < deadline, "proxy2 was not restarted");
        std::thread::sleep(Duration::from_millis(200));
    }

    // SIGKILL the primary (the first proxy): another proxy is elected, the
    // playground restarts it and it comes back as a follower.
    let p1 = node("proxy");
    let p1_id = p1["id"].as_str().unwrap_or_default().to_string();
    let old1 = p1["pid"].as_u64().unwrap();
    let smap_primary = |url: &str| -> Option<String> {
        let (st, body) = raw_http(url, "GET", "/v1/daemon?what=smap", &[], b"").ok()?;
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        (st == 200).then(|| v["proxy_si"]["daemon_id"].as_str().map(String::from))?
    };
    assert_eq!(smap_primary(&p3url).as_deref(), Some(p1_id.as_str()));
    // SAFETY: as above.
    unsafe { libc::kill(old1 as i32, libc::SIGKILL) };
    let p1url = p1["url"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let restarted = std::fs::read(data.join("playground.json"))
            .ok()
            .and_then(|raw| serde_json::from_slice::<serde_json::Value>(&raw).ok())
            .and_then(|v| {
                v["nodes"]
                    .as_array()?
                    .iter()
                    .find(|n| n["name"] == "proxy")
                    .map(|n| n["running"] == true && n["pid"].as_u64() != Some(old1))
            })
            .unwrap_or(false);
        let named = [&p1url, &p2url, &p3url].map(|u| smap_primary(u));
        let agreed = named.iter().all(|n| n.is_some() && *n == named[0])
            && named[0].as_deref() != Some(p1_id.as_str());
        if restarted && agreed {
            let (okk, out, _) = ais(&p1url, &["object", "cat", "ais://pp/x"]);
            let (okb, _, _) = ais(&p1url, &["bucket", "create", "ais://after-primary"]);
            if okk && out == "through proxy3" && okb {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no new primary with the old one back as a follower: {named:?}, restarted {restarted}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = ok(&p3url, &["show", "cluster"]);
    assert!(out.contains("Proxies:       3"), "{out}");
    assert!(!out.contains(&format!("p[{p1_id}][P]")), "{out}");
    interrupt_and_reap(&mut child, &data, Duration::from_secs(15)).unwrap();
}
