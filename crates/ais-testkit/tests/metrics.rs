//! `GET /metrics` on every node, parsed with a real Prometheus text parser:
//! counters move by exactly the load put on them.

use ais_testkit::{bin, raw_http, worker_pids, Cluster};
use prometheus_parse::{Scrape, Value};

fn scrape(url: &str) -> Scrape {
    let (st, body) = raw_http(url, "GET", "/metrics", &[], b"").unwrap();
    assert_eq!(st, 200);
    let text = String::from_utf8(body).unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// Sum of a counter/gauge over the samples matching `label` (if any).
fn val(s: &Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| match label {
            None => true,
            Some((k, v)) => x.labels.get(k) == Some(v),
        })
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            _ => 0.0,
        })
        .sum()
}

/// The `+Inf` bucket (the count) of a histogram.
fn hist_count(s: &Scrape, name: &str) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .map(|x| match &x.value {
            Value::Histogram(h) => h
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map_or(0.0, |b| b.count),
            _ => 0.0,
        })
        .sum()
}

fn targets_sum(c: &Cluster, name: &str, label: Option<(&str, &str)>) -> f64 {
    c.targets
        .iter()
        .map(|t| val(&scrape(&t.url), name, label))
        .sum()
}

fn targets_hist(c: &Cluster, name: &str) -> f64 {
    c.targets
        .iter()
        .map(|t| hist_count(&scrape(&t.url), name))
        .sum()
}

#[test]
fn counters_move_with_the_load() {
    let c = Cluster::start(2).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = c.client();
    rt.block_on(client.create_bucket("m")).unwrap();

    let put_n = targets_sum(&c, "ais_target_put_n", None);
    let put_b = targets_sum(&c, "ais_target_put_bytes", None);
    let get_n = targets_sum(&c, "ais_target_get_n", None);
    let get_b = targets_sum(&c, "ais_target_get_bytes", None);
    let get_h = targets_hist(&c, "ais_target_get_latency_seconds");
    let err4 = targets_sum(&c, "ais_target_err_get_n", Some(("class", "4xx")));
    let redir = val(
        &scrape(c.url()),
        "ais_proxy_redirect_n",
        Some(("op", "get")),
    );

    const N: usize = 20;
    const SIZE: usize = 1000;
    rt.block_on(async {
        for i in 0..N {
            client
                .put_bytes("m", &format!("o{i}"), vec![b'x'; SIZE])
                .await
                .unwrap();
        }
        for i in 0..N {
            let b = client.get("m", &format!("o{i}")).await.unwrap();
            assert_eq!(b.len(), SIZE);
        }
        assert!(client.get("m", "missing").await.is_err());
    });
    // One GET through the proxy: a redirect there.
    let (st, _) = raw_http(c.url(), "GET", "/v1/objects/m/o0", &[], b"").unwrap();
    assert_eq!(st, 301);

    let d = |name: &str, before: f64| targets_sum(&c, name, None) - before;
    assert_eq!(d("ais_target_put_n", put_n), N as f64);
    assert_eq!(d("ais_target_put_bytes", put_b), (N * SIZE) as f64);
    assert_eq!(d("ais_target_get_n", get_n), N as f64);
    assert_eq!(d("ais_target_get_bytes", get_b), (N * SIZE) as f64);
    assert_eq!(
        targets_hist(&c, "ais_target_get_latency_seconds") - get_h,
        N as f64
    );
    assert_eq!(
        targets_sum(&c, "ais_target_err_get_n", Some(("class", "4xx"))) - err4,
        1.0
    );
    let p = scrape(c.url());
    assert!(val(&p, "ais_proxy_redirect_n", Some(("op", "get"))) >= redir + 1.0);
    assert!(val(&p, "ais_proxy_http_responses_total", Some(("class", "2xx"))) > 0.0);
    assert!(val(&p, "ais_proxy_conns_open", None) >= 1.0);

    // Capacity per mountpath on every target, and the node label.
    for t in &c.targets {
        let s = scrape(&t.url);
        let caps: Vec<_> = s
            .samples
            .iter()
            .filter(|x| x.metric == "ais_target_capacity_total_bytes")
            .collect();
        assert_eq!(caps.len(), 1, "one mountpath");
        assert!(caps[0]
            .labels
            .get("mountpath")
            .is_some_and(|m| m.ends_with("mp1")));
        assert_eq!(caps[0].labels.get("node_id"), Some(t.id.as_str()));
        assert!(val(&s, "ais_target_capacity_total_bytes", None) > 0.0);
        assert!(val(&s, "ais_target_capacity_used_bytes", None) > 0.0);
    }
}

fn ais(endpoint: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(bin("ais"))
        .args(args)
        .env("AIS_ENDPOINT", endpoint)
        .output()
        .expect("run ais");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "ais {args:?} failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn ais_show_performance_and_cluster_capacity() {
    let c = Cluster::start(2).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = c.client();
    rt.block_on(async {
        client.create_bucket("perf").await.unwrap();
        for i in 0..5 {
            client
                .put_bytes("perf", &format!("o{i}"), vec![b'x'; 100])
                .await
                .unwrap();
            client.get("perf", &format!("o{i}")).await.unwrap();
        }
    });
    let out = ais(c.url(), &["show", "performance", "--interval", "0.3"]);
    let lines: Vec<&str> = out.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NODE",
            "GET",
            "GET/s",
            "GET-THRPUT",
            "PUT",
            "PUT/s",
            "PUT-THRPUT",
            "ERRORS",
            "CONNS"
        ],
        "{out}"
    );
    let rows: Vec<Vec<&str>> = lines[1..]
        .iter()
        .filter(|l| l.starts_with("p[") || l.starts_with("t["))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "one row per node:\n{out}");
    assert!(rows.iter().all(|r| r.len() == header.len()), "{out}");
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let total = |name: &str| -> u64 {
        rows.iter()
            .filter(|r| r[0].starts_with("t["))
            .map(|r| r[col(name)].parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(total("GET"), 5, "{out}");
    assert_eq!(total("PUT"), 5, "{out}");
    assert!(
        rows.iter().all(|r| r[col("GET-THRPUT")].ends_with("/s")),
        "{out}"
    );
    assert!(lines.iter().any(|l| l.starts_with("(rates over")), "{out}");

    let json: serde_json::Value = serde_json::from_str(&ais(
        c.url(),
        &["show", "performance", "--interval", "0.1", "--json"],
    ))
    .unwrap();
    let arr = json.as_array().unwrap();
    assert_eq!(arr.len(), 3);
    assert!(arr
        .iter()
        .all(|r| r["node"].is_string() && r["get/s"].is_string()));

    let out = ais(c.url(), &["show", "cluster"]);
    assert!(
        out.contains("CAP USED") && out.contains("MOUNTPATHS"),
        "{out}"
    );
    for l in out.lines().filter(|l| l.starts_with("t[")) {
        let cells: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(cells.last(), Some(&"1"), "{out}");
        assert!(cells.iter().any(|c| c.ends_with('%')), "{out}");
    }
}

const ETL_CODE: &str = "def transform(data, path, args):\n    if args == 'fail':\n        raise ValueError('asked to fail')\n    return data[::-1]\n";

#[test]
fn etl_counters_and_worker_restarts() {
    // One worker, so the killed one is the one the next call takes.
    let c = Cluster::start_with(ais_testkit::Opts {
        targets: 1,
        env: vec![("AIS_ETL_POOL_SIZE".into(), "1".into())],
        ..Default::default()
    })
    .unwrap();
    let t = &c.targets[0];
    ais_testkit::init_python_etl(c.url(), "rev-etl", ETL_CODE).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = c.client();
    rt.block_on(client.create_bucket("e")).unwrap();
    for i in 0..3 {
        rt.block_on(client.put_bytes("e", &format!("o{i}"), b"abc".to_vec()))
            .unwrap();
        let path = format!("/v1/objects/e/o{i}?etl_name=rev-etl");
        let (st, out) = raw_http(&t.url, "GET", &path, &[], b"").unwrap();
        assert_eq!((st, out.as_slice()), (200, &b"cba"[..]));
    }
    let (st, _) = raw_http(
        &t.url,
        "GET",
        "/v1/objects/e/o0?etl_name=rev-etl&etl_args=fail",
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(st, 422);
    let s = scrape(&t.url);
    let l = Some(("etl", "rev-etl"));
    assert_eq!(val(&s, "ais_target_etl_obj_n", l), 3.0);
    assert_eq!(val(&s, "ais_target_etl_err_n", l), 1.0);
    // Input bytes count the failed call's input too (as ais-etl counts them).
    assert_eq!(val(&s, "ais_target_etl_in_bytes", l), 12.0);
    assert_eq!(val(&s, "ais_target_etl_out_bytes", l), 9.0);
    assert!(val(&s, "ais_target_etl_ns_total", l) > 0.0);
    assert!(val(&s, "ais_target_etl_workers", l) >= 1.0);
    assert_eq!(val(&s, "ais_target_etl_worker_restarts_n", l), 0.0);

    // A worker killed behind the pool's back is replaced: a restart.
    let pids = worker_pids(&t.data);
    assert!(!pids.is_empty(), "no ETL worker found");
    // SAFETY: kill(2) on a worker pid of this test's own target.
    unsafe {
        libc::kill(pids[0] as i32, libc::SIGKILL);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        // Use the pool so a dead worker is noticed and replaced.
        let _ = raw_http(&t.url, "GET", "/v1/objects/e/o1?etl_name=rev-etl", &[], b"");
        if val(&scrape(&t.url), "ais_target_etl_worker_restarts_n", l) >= 1.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no worker restart counted"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
