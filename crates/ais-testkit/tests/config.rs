//! Cluster and node configuration over the REST API (AIStore's calls):
//! changes are validated, pushed to every node, persisted across restarts,
//! and take effect live.

use ais_testkit::{raw_http, Cluster};
use serde_json::Value;
use std::time::{Duration, Instant};

fn get_json(base: &str, path: &str, headers: &[(&str, &str)]) -> Value {
    let (st, body) = raw_http(base, "GET", path, headers, b"").unwrap();
    assert_eq!(st, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

fn put(base: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let (st, body) = raw_http(base, "PUT", path, headers, body.as_bytes()).unwrap();
    // The message of AIStore's JSON error body, else the body.
    let text = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    (st, text)
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn rebalances(url: &str) -> usize {
    let (st, body) = raw_http(
        url,
        "GET",
        "/v1/cluster?what=status_all",
        &[("Content-Type", "application/json")],
        br#"{"kind": "rebalance"}"#,
    )
    .unwrap();
    assert_eq!(st, 200);
    serde_json::from_slice::<Vec<Value>>(&body).unwrap().len()
}

/// Bad requests change nothing and say what was wrong.
#[test]
fn invalid_changes_are_refused_whole() {
    let c = Cluster::start(1).unwrap();
    let url = c.url().to_string();
    let before = get_json(&url, "/v1/cluster?what=config", &[]);
    for (path, body, want) in [
        (
            "/v1/cluster/set-config?space.highwm=80&no.such_key=1",
            "",
            "\"no.such_key\"",
        ),
        (
            "/v1/cluster/set-config?timeout.max_keepalive=soon",
            "",
            "timeout.max_keepalive",
        ),
        ("/v1/cluster/set-config?space.lowwm=95", "", "watermarks"),
        ("/v1/cluster/set-config", "", "nothing to set"),
        (
            "/v1/cluster",
            r#"{"action": "set-config", "value": {"lru": {"bogus": true}}}"#,
            "\"lru.bogus\"",
        ),
        (
            "/v1/cluster/set-config?space.highwm=80&transient=true",
            "",
            "transient",
        ),
        (
            "/v1/cluster/set-config?space.highwm=80&space.highwm=81",
            "",
            "given more than once",
        ),
        // Jobs by kind: a misspelt field or an unknown kind is refused, not
        // taken for "every target" or "nothing to stop".
        (
            "/v1/cluster",
            r#"{"action": "start", "value": {"kind": "resilver", "DaemonId": "t1"}}"#,
            "DaemonId",
        ),
        (
            "/v1/cluster",
            r#"{"action": "stop", "value": {"kind": "lr"}}"#,
            "unknown job kind",
        ),
    ] {
        let (st, msg) = put(&url, path, &[], body);
        assert_eq!(st, 400, "{path}: {msg}");
        assert!(msg.contains(want), "{path}: {msg}");
    }
    // Cluster-only keys cannot be set for one node (the keepalive timeout
    // is the primary's, for every node).
    let tid = c.targets[0].id.clone();
    for key in ["mirror.copies=3", "timeout.max_keepalive=9s"] {
        let (st, msg) = put(
            &url,
            &format!("/v1/reverse/daemon/set-config?{key}"),
            &[("Ais-Node-Id", &tid)],
            "",
        );
        assert_eq!(st, 400, "{key}: {msg}");
        assert!(msg.contains("cluster-wide only"), "{msg}");
    }
    assert_eq!(get_json(&url, "/v1/cluster?what=config", &[]), before);
}

/// `timeout.max_keepalive` and `rebalance.enabled` change what the
/// cluster does without a restart; cluster and node values survive one.
#[test]
fn config_changes_apply_live_and_survive_restarts() {
    let mut c = Cluster::start(2).unwrap();
    let url = c.url().to_string();
    // The testkit starts the proxy with --keepalive-timeout 2.
    let cfg = get_json(&url, "/v1/cluster?what=config", &[]);
    assert_eq!(cfg["timeout"]["max_keepalive"], "2s", "{cfg}");
    let v0: u64 = cfg["config_version"].as_str().unwrap().parse().unwrap();

    // Raised cluster-wide: a target frozen for longer than the old value
    // stays in the map.
    let (st, msg) = put(
        &url,
        "/v1/cluster/set-config?timeout.max_keepalive=2m",
        &[],
        "",
    );
    assert_eq!(st, 200, "{msg}");
    let cfg = get_json(&url, "/v1/cluster?what=config", &[]);
    assert_eq!(cfg["timeout"]["max_keepalive"], "2m");
    assert_eq!(cfg["config_version"], (v0 + 1).to_string());
    // Every node has it (pushed before the answer).
    for t in &c.targets {
        let tc = get_json(&t.url, "/v1/daemon?what=config", &[]);
        assert_eq!(tc["timeout"]["max_keepalive"], "2m", "{}: {tc}", t.id);
    }
    let frozen = c.targets[1].id.clone();
    let pid = c.targets[1].pid().unwrap() as i32;
    // SAFETY: signals to our own child process.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_secs(6));
    let still = c.smap().unwrap()["tmap"].get(&frozen).is_some();
    // Lowered live (the JSON form): the silent target is dropped.
    let (st, msg) = put(
        &url,
        "/v1/cluster",
        &[("Content-Type", "application/json")],
        r#"{"action": "set-config", "value": {"timeout": {"max_keepalive": "3s"}}}"#,
    );
    let dropped = st == 200 && {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if c.smap().unwrap()["tmap"].get(&frozen).is_none() {
                break true;
            }
            if Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(
        still,
        "a target silent for 6 s left the map with max_keepalive=2m"
    );
    assert_eq!(st, 200, "{msg}");
    assert!(
        dropped,
        "the frozen target stayed in the map with max_keepalive=3s"
    );
    c.wait_targets(2).unwrap();
    c.wait_settled().unwrap();

    // Automatic rebalance turned off: a new target joins, no rebalance
    // starts; turned back on, the pending change is rebalanced.
    let (st, msg) = put(
        &url,
        "/v1/cluster/set-config?rebalance.enabled=false",
        &[],
        "",
    );
    assert_eq!(st, 200, "{msg}");
    let before = rebalances(&url);
    c.add_target().unwrap();
    c.wait_targets(3).unwrap();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        rebalances(&url),
        before,
        "a rebalance started while disabled"
    );
    let (st, msg) = put(
        &url,
        "/v1/cluster/set-config?rebalance.enabled=true",
        &[],
        "",
    );
    assert_eq!(st, 200, "{msg}");
    wait_for("the pending rebalance", Duration::from_secs(60), || {
        rebalances(&url) > before
    });
    c.wait_settled().unwrap();

    // One node's own value, through the proxy (`ais config node`); one of
    // them transient (gone after a restart, even when a later change is
    // saved).
    let tid = c.targets[0].id.clone();
    let (st, msg) = put(
        &url,
        "/v1/reverse/daemon/set-config?lru.enabled=false&transient=true",
        &[("Ais-Node-Id", &tid)],
        "",
    );
    assert_eq!(st, 200, "{msg}");
    let (st, msg) = put(
        &url,
        "/v1/reverse/daemon/set-config?space.highwm=85",
        &[("Ais-Node-Id", &tid)],
        "",
    );
    assert_eq!(st, 200, "{msg}");
    let node_cfg =
        |c: &Cluster, i: usize| get_json(&c.targets[i].url, "/v1/daemon?what=config", &[]);
    assert_eq!(node_cfg(&c, 0)["space"]["highwm"], 85);
    assert_eq!(node_cfg(&c, 0)["lru"]["enabled"], false);
    assert_eq!(node_cfg(&c, 1)["space"]["highwm"], 90);
    assert_eq!(
        get_json(&url, "/v1/cluster?what=config", &[])["space"]["highwm"],
        90
    );
    // Through the proxy, as the SDK and CLI ask a node.
    let via = get_json(
        &url,
        "/v1/reverse/daemon?what=config",
        &[("Ais-Node-Id", &tid)],
    );
    assert_eq!(via["space"]["highwm"], 85);

    // Everything survives a restart of every node.
    c.restart_all().unwrap();
    c.wait_targets(3).unwrap();
    let cfg = get_json(&url, "/v1/cluster?what=config", &[]);
    assert_eq!(cfg["timeout"]["max_keepalive"], "3s", "{cfg}");
    assert_eq!(cfg["rebalance"]["enabled"], true);
    let i0 = c.targets.iter().position(|t| t.id == tid).unwrap();
    assert_eq!(node_cfg(&c, i0)["space"]["highwm"], 85);
    assert_eq!(
        node_cfg(&c, i0)["lru"]["enabled"],
        true,
        "a transient value outlived a restart"
    );

    // A cluster change that the node's own watermarks no longer fit: the
    // node drops its own (it never runs lowwm >= highwm).
    let (st, msg) = put(
        &url,
        "/v1/reverse/daemon",
        &[("Ais-Node-Id", &tid), ("Content-Type", "application/json")],
        r#"{"action": "reset-config"}"#,
    );
    assert_eq!(st, 200, "{msg}");
    let (st, msg) = put(
        &url,
        "/v1/reverse/daemon/set-config?space.lowwm=84",
        &[("Ais-Node-Id", &tid)],
        "",
    );
    assert_eq!(st, 200, "{msg}");
    let (st, msg) = put(&url, "/v1/cluster/set-config?space.highwm=80", &[], "");
    assert_eq!(st, 200, "{msg}");
    let nc = node_cfg(&c, i0);
    assert_eq!(nc["space"]["highwm"], 80, "{nc}");
    assert_eq!(nc["space"]["lowwm"], 75, "{nc}");
    // And the node takes changes again.
    let (st, msg) = put(
        &url,
        "/v1/reverse/daemon/set-config?lru.enabled=false",
        &[("Ais-Node-Id", &tid)],
        "",
    );
    assert_eq!(st, 200, "{msg}");

    // Node reset: back to the cluster's values; cluster reset: defaults.
    let (st, msg) = put(
        &url,
        "/v1/reverse/daemon",
        &[("Ais-Node-Id", &tid), ("Content-Type", "application/json")],
        r#"{"action": "reset-config"}"#,
    );
    assert_eq!(st, 200, "{msg}");
    assert_eq!(node_cfg(&c, i0)["space"]["highwm"], 80);
    assert_eq!(node_cfg(&c, i0)["lru"]["enabled"], true);
    let (st, msg) = put(
        &url,
        "/v1/cluster",
        &[("Content-Type", "application/json")],
        r#"{"action": "reset-config"}"#,
    );
    assert_eq!(st, 200, "{msg}");
    let cfg = get_json(&url, "/v1/cluster?what=config", &[]);
    assert_eq!(
        cfg["timeout"]["max_keepalive"], "2s",
        "back to the flag: {cfg}"
    );
}

/// The `mirror`, `ec`, `checksum` and `versioning` sections are what a new
/// bucket starts with; a reset bucket goes back to them.
#[test]
fn new_buckets_take_the_cluster_defaults() {
    let c = Cluster::start(2).unwrap();
    let url = c.url().to_string();
    let cl = c.client();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (st, msg) = put(
        &url,
        "/v1/cluster/set-config?mirror.enabled=true&mirror.copies=2&versioning.enabled=false",
        &[],
        "",
    );
    assert_eq!(st, 200, "{msg}");
    // Erasure coding by default needs the targets for it at create time.
    let (st, msg) = put(&url, "/v1/cluster/set-config?ec.enabled=true", &[], "");
    assert_eq!(st, 200, "{msg}");
    rt.block_on(async {
        let e = cl.create_bucket("ecdefault").await.unwrap_err();
        assert_eq!(e.status(), Some(400), "{e}");
    });
    let (st, msg) = put(&url, "/v1/cluster/set-config?ec.enabled=false", &[], "");
    assert_eq!(st, 200, "{msg}");
    rt.block_on(async {
        cl.create_bucket("mirrored").await.unwrap();
        let p = cl.head_bucket("mirrored").await.unwrap();
        assert!(p.mirror.enabled && p.mirror.copies == 2, "{p:?}");
        assert!(!p.versioning.enabled, "{p:?}");
        cl.set_bucket_props(
            "mirrored",
            serde_json::json!({"mirror": {"enabled": false}}),
        )
        .await
        .unwrap();
        let (st, body) = raw_http(
            &url,
            "PATCH",
            "/v1/buckets/mirrored",
            &[("Content-Type", "application/json")],
            br#"{"action": "reset-bprops"}"#,
        )
        .unwrap();
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
        let p = cl.head_bucket("mirrored").await.unwrap();
        assert!(p.mirror.enabled && p.mirror.copies == 2, "reset: {p:?}");
    });
}

/// `ais config cluster|node|reset` and `ais show config`, AIStore's forms.
#[test]
fn cli_config_verbs() {
    use ais_testkit::run_ais;
    let c = Cluster::start(1).unwrap();
    let url = c.url().to_string();
    let tid = c.targets[0].id.clone();
    let ok = |args: &[&str]| {
        let (ok, out, err) = run_ais(&url, args);
        assert!(ok, "ais {}: {out}{err}", args.join(" "));
        out
    };
    let out = ok(&[
        "config",
        "cluster",
        "timeout.max_keepalive=7s",
        "space.highwm=88",
    ]);
    assert!(out.contains("Cluster config updated"), "{out}");
    ok(&["config", "cluster", "lru.enabled", "false"]);
    let out = ok(&["config", "cluster", "space"]);
    assert!(out.contains("space.highwm") && out.contains("88"), "{out}");
    assert!(
        !out.contains("timeout"),
        "a section shows that section: {out}"
    );
    let out = ok(&["show", "config", "cluster", "timeout", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["max_keepalive"], "7s", "{out}");
    ok(&["config", "node", &tid, "space.highwm=92"]);
    let out = ok(&["config", "node", &tid, "local"]);
    assert!(out.contains("space.highwm") && out.contains("92"), "{out}");
    assert!(
        !out.contains("max_keepalive"),
        "local shows the node's own: {out}"
    );
    let out = ok(&["config", "node", &tid, "inherited", "space"]);
    assert!(out.contains("88"), "{out}");
    let out = ok(&["show", "config", &tid, "lru.enabled"]);
    assert!(out.contains("false"), "{out}");
    ok(&["config", "reset", &tid]);
    let out = ok(&["show", "config", &tid, "space.highwm"]);
    assert!(out.contains("88"), "{out}");
    ok(&["config", "reset"]);
    let out = ok(&["config", "cluster", "space.highwm"]);
    assert!(out.contains("90"), "{out}");
    // Errors name what was wrong.
    let (okk, out, err) = run_ais(&url, &["config", "cluster", "nope.key=1"]);
    assert!(!okk, "{out}");
    assert!(err.contains("nope.key"), "{err}");
}
