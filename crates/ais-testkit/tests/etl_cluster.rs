//! ETL as cluster metadata: a restarted target restarts its transformers, a
//! target that joins later starts them, and a SIGKILLed target leaves no
//! worker behind. Uses the host's python3 (no dependencies needed).

use ais_testkit::{create_bucket_at, raw_http, worker_pids, Cluster};
use std::time::{Duration, Instant};

const CODE: &str = "def transform(data, path, args):\n    return b'T:' + data[::-1]\n";

fn init(url: &str, name: &str) {
    ais_testkit::init_python_etl(url, name, CODE).unwrap();
}

fn put(url: &str, bucket: &str, name: &str, data: &[u8]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(ais_client::Client::new(url).put_bytes(bucket, name, data.to_vec()))
        .unwrap();
}

/// GET with ETL, following redirects, retrying while the target is still starting it.
fn etl_get(url: &str, bucket: &str, name: &str, etl: &str) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let res = rt.block_on(async {
            let r = ais_client::Client::new(url)
                .get_stream(bucket, name, &[("etl_name", etl)], None)
                .await?;
            r.bytes()
                .await
                .map_err(|e| ais_client::ClientError::Decode(e.to_string()))
        });
        match res {
            Ok(b) => return b.to_vec(),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("{name} via {etl}: {e}"),
        }
    }
}

#[test]
fn etl_follows_targets_through_restart_join_and_crash() {
    let mut c = Cluster::start(2).unwrap();
    let url = c.url().to_string();
    create_bucket_at(&url, "etlb").unwrap();
    let names: Vec<String> = (0..30).map(|i| format!("o{i}")).collect();
    for n in &names {
        put(&url, "etlb", n, n.as_bytes());
    }
    init(&url, "rev-etl");
    let expect = |n: &str| -> Vec<u8> {
        let mut v = b"T:".to_vec();
        v.extend(n.bytes().rev());
        v
    };
    for n in &names {
        assert_eq!(etl_get(&url, "etlb", n, "rev-etl"), expect(n));
    }
    // Restart a target: it restarts the ETL from its persisted/synced metadata.
    let before = worker_pids(&c.targets[0].data);
    assert!(!before.is_empty());
    c.restart_target(0).unwrap();
    c.wait_targets(2).unwrap();
    for n in &names {
        assert_eq!(etl_get(&url, "etlb", n, "rev-etl"), expect(n));
    }
    let after = worker_pids(&c.targets[0].data);
    assert!(
        !after.is_empty() && after.iter().all(|p| !before.contains(p)),
        "fresh workers: {before:?} -> {after:?}"
    );

    // A target that joins later starts the ETL too, and transforms objects that hash to it.
    let i = c.add_target().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while worker_pids(&c.targets[i].data).is_empty() {
        assert!(
            Instant::now() < deadline,
            "new target never started the ETL:\n{}",
            c.targets[i].log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for k in 0..30 {
        let n = format!("new{k}");
        put(&url, "etlb", &n, n.as_bytes());
        assert_eq!(etl_get(&url, "etlb", &n, "rev-etl"), expect(&n));
    }
    let (st, body) = raw_http(&url, "GET", "/v1/etl", &[], b"").unwrap();
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v[0]["id"], "rev-etl");
    assert_eq!(v[0]["stage"], "Running");
    // Counters are per runtime since its start: at least the 60 GETs after the restart.
    assert!(v[0]["obj_count"].as_u64().unwrap() >= 60, "{v}");

    // SIGKILL a target: its workers exit on their own (parent watch / death signal).
    let data = c.targets[1].data.clone();
    assert!(!worker_pids(&data).is_empty());
    c.targets[1].kill();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !worker_pids(&data).is_empty() {
        assert!(
            Instant::now() < deadline,
            "orphaned workers: {:?}",
            worker_pids(&data)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Orderly stop and delete leave nothing either.
    let (st, _) = raw_http(&url, "POST", "/v1/etl/rev-etl/stop", &[], b"").unwrap();
    assert_eq!(st, 200);
    for t in [&c.targets[0], &c.targets[2]] {
        assert!(worker_pids(&t.data).is_empty(), "stop left workers");
    }
    let (st, body) = raw_http(
        &url,
        "GET",
        "/v1/objects/etlb/o1?etl_name=rev-etl",
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(st, 400);
    assert!(String::from_utf8_lossy(&body).contains("is stopped"));
    let (st, _) = raw_http(&url, "DELETE", "/v1/etl/rev-etl", &[], b"").unwrap();
    assert_eq!(st, 200);
    let (st, body) = raw_http(
        &url,
        "GET",
        "/v1/objects/etlb/o1?etl_name=rev-etl",
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(st, 404);
    assert!(String::from_utf8_lossy(&body).contains("etl job rev-etl does not exist"));
}

/// A damaged object (flipped bytes, or a truncated file) never reaches a
/// transform, whatever `validate_warm_get` says: the ETL GET fails naming it.
#[test]
fn damaged_object_is_never_transformed() {
    let c = Cluster::start(1).unwrap();
    let url = c.url().to_string();
    create_bucket_at(&url, "dmg").unwrap();
    let data = vec![5u8; 40_000];
    for name in ["flipped", "cut", "fine"] {
        put(&url, "dmg", name, &data);
    }
    init(&url, "dmg-etl");
    assert!(etl_get(&url, "dmg", "fine", "dmg-etl").starts_with(b"T:"));
    let file = |name: &str| {
        let mut stack = vec![c.targets[0].data.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.ends_with(format!("dmg/{name}")) {
                    return p;
                }
            }
        }
        panic!("{name}: no file");
    };
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(file("flipped"))
        .unwrap();
    std::os::unix::fs::FileExt::write_at(&f, b"XX", 10).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(file("cut"))
        .unwrap()
        .set_len(100)
        .unwrap();
    for (name, why) in [("flipped", "corrupted"), ("cut", "damaged")] {
        let (st, body) = raw_http(
            &c.targets[0].url,
            "GET",
            &format!("/v1/objects/dmg/{name}?etl_name=dmg-etl"),
            &[],
            b"",
        )
        .unwrap();
        let body = String::from_utf8_lossy(&body);
        assert_eq!(st, 500, "{name}: {body}");
        assert!(body.contains(why) && body.contains(name), "{body}");
    }
}
