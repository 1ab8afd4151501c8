//! The playground's supervisor with the real `aisnode`: a SIGKILLed target
//! comes back on its port with its data; Ctrl-C stops everything.

use ais_testkit::{
    bin, create_bucket_at, free_port, interrupt_and_reap, pids_mentioning, raw_http, raw_http_full,
};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn state(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn node<'a>(st: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap()
}

/// Follows one redirect (the proxy's 307/301 to the owner target).
fn request(base: &str, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>, String) {
    let (st, hdrs, b) = raw_http_full(base, method, path, &[], body).unwrap();
    if st == 307 || st == 301 {
        let loc = hdrs
            .iter()
            .find(|(k, _)| k == "location")
            .map(|(_, v)| v.clone())
            .unwrap();
        let rest = loc.trim_start_matches("http://");
        let (hostport, p) = rest.split_at(rest.find('/').unwrap());
        let (st, b) = raw_http(&format!("http://{hostport}"), method, p, &[], body).unwrap();
        return (st, b, format!("http://{hostport}"));
    }
    (st, b, base.to_string())
}

#[test]
fn killed_target_is_restarted_with_its_port_and_data_and_ctrl_c_stops_all() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let state_path = tmp.path().join("state.json");
    let port = free_port().unwrap();
    let ep = format!("http://127.0.0.1:{port}");
    let mut pg = Command::new(bin("aisnode"))
        .args(["playground", "--targets", "2", "--port", &port.to_string()])
        .arg("--data")
        .arg(&data)
        .arg("--state")
        .arg(&state_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = pg.stdout.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let l2 = lines.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            l2.lock().unwrap().push(l);
        }
    });
    let printed = |s: &str| lines.lock().unwrap().iter().any(|l| l.contains(s));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !printed("Press Ctrl-C to stop.") {
        assert!(Instant::now() < deadline, "playground did not come up");
        assert!(pg.try_wait().unwrap().is_none(), "playground exited");
        std::thread::sleep(Duration::from_millis(100));
    }
    let st = state(&state_path).expect("state file");
    assert_eq!(st["proxy_url"], ep.as_str());
    assert_eq!(st["nodes"].as_array().unwrap().len(), 3);
    for n in st["nodes"].as_array().unwrap() {
        assert!(
            n["pid"].as_u64().unwrap() > 0 && n["running"] == true,
            "{n}"
        );
        assert!(Path::new(n["log"].as_str().unwrap()).exists(), "{n}");
    }

    create_bucket_at(&ep, "bkt").unwrap();
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (s, _, owner_url) = request(&ep, "PUT", "/v1/objects/bkt/obj", &payload);
    assert_eq!(s, 200);
    let victim = st["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["url"] == owner_url.as_str())
        .unwrap_or_else(|| panic!("no node at {owner_url}: {st}"));
    let name = victim["name"].as_str().unwrap().to_string();
    let old_pid = victim["pid"].as_u64().unwrap() as u32;

    // SAFETY: kill(2) on a node pid the playground reported.
    assert_eq!(unsafe { libc_kill(old_pid as i32, 9) }, 0);
    let t = Instant::now();
    let deadline = t + Duration::from_secs(15);
    loop {
        let back = state(&state_path).is_some_and(|st| {
            let n = node(&st, &name);
            n["running"] == true
                && n["pid"].as_u64().is_some_and(|p| p as u32 != old_pid)
                && n["url"] == owner_url.as_str()
                && n["restarts"] == 1
        });
        if back {
            let (s, body, _) = request(&ep, "GET", "/v1/objects/bkt/obj", b"");
            if s == 200 && body == payload {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{name} not back with the object within 15 s; state: {:?}; output: {:?}",
            state(&state_path),
            lines.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("{name} back in {:?}", t.elapsed());
    assert!(printed(&format!("{name} (target")) && printed("exited unexpectedly"));
    assert!(printed("is back at"));
    assert!(pg.try_wait().unwrap().is_none(), "the cluster kept running");

    // Ctrl-C: every node stops, the state file goes. Nodes honour SIGTERM
    // (they must not inherit the playground's blocked signals), so this is
    // well within the 8 s grace before SIGKILL.
    let took = interrupt_and_reap(&mut pg, &data, Duration::from_secs(20)).unwrap();
    assert!(took < Duration::from_secs(6), "stop took {took:?}");
    assert!(!state_path.exists(), "state file removed on stop");
}

#[test]
fn second_playground_on_the_same_data_refuses_to_start() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let port = free_port().unwrap();
    let mut pg = Command::new(bin("aisnode"))
        .args(["playground", "--targets", "1", "--port", &port.to_string()])
        .arg("--data")
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state_path = data.join("playground.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !state_path.exists() {
        assert!(Instant::now() < deadline, "no state file");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = Command::new(bin("aisnode"))
        .args([
            "playground",
            "--targets",
            "1",
            "--port",
            &free_port().unwrap().to_string(),
        ])
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("another playground (pid {})", pg.id())),
        "{err}"
    );
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc_kill(pg.id() as i32, 15);
    }
    assert!(pg.wait().unwrap().success());
    assert!(pids_mentioning(&data).is_empty());
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
