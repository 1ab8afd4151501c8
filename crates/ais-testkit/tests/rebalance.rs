//! Global rebalance: when the set of targets changes, objects move to their
//! HRW owners as a tracked job while clients keep reading and writing.

use ais_client::Client;
use ais_core::meta::Smap;
use ais_core::Bck;
use ais_testkit::{raw_http, Cluster, Opts};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn content(name: &str) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.resize(2048 + name.len() * 13 % 3000, b'.');
    v
}

/// Rebalance jobs so far (one may run when the first targets join).
async fn rebalances(cl: &Client) -> usize {
    let jobs = cl.jobs().await.unwrap();
    jobs.iter().filter(|j| j.kind == "rebalance").count()
}

/// Waits for more than `after` rebalance jobs to exist and none of them to
/// be running; returns the newest.
async fn finished_rebalance(cl: &Client, after: usize) -> ais_client::JobStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let jobs: Vec<_> = cl
            .jobs()
            .await
            .unwrap()
            .into_iter()
            .filter(|j| j.kind == "rebalance")
            .collect();
        if jobs.len() > after && jobs.iter().all(|j| j.end_time != 0) {
            if let Some(j) = jobs.into_iter().max_by_key(|j| j.end_time) {
                return j;
            }
        }
        assert!(Instant::now() < deadline, "no finished rebalance");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every object is stored on its HRW owner, and only there.
fn assert_placed(c: &Cluster, bucket: &str, names: &[String]) {
    let smap: Smap = serde_json::from_value(c.smap().unwrap()).unwrap();
    let bck = Bck::ais(bucket);
    for n in names {
        let owner = smap.owner(&bck.obj_uname(n)).unwrap();
        for t in smap.active_targets() {
            let (st, _) = raw_http(
                t.url(),
                "GET",
                &format!("/v1/internal/objattrs/{bucket}/{n}"),
                &[],
                b"",
            )
            .unwrap();
            let want = if t.daemon_id == owner.daemon_id {
                200
            } else {
                404
            };
            assert_eq!(st, want, "{n} on {}", t.name());
        }
    }
}

#[test]
fn join_and_leave_under_load_move_objects_to_their_owners() {
    let opts = Opts {
        targets: 2,
        env: vec![("AIS_REBALANCE_SETTLE".into(), "1".into())],
        ..Default::default()
    };
    let mut c = Cluster::start_with(opts).unwrap();
    let rt = rt();
    let url = c.url().to_string();
    let names: Vec<String> = (0..300).map(|i| format!("r/{i:03}")).collect();
    rt.block_on(async {
        let cl = Client::new(&url);
        cl.create_bucket("rb").await.unwrap();
        for n in &names {
            cl.put_bytes("rb", n, content(n)).await.unwrap();
        }
    });
    // Readers and writers keep going across the join and the rebalance.
    let stop = Arc::new(AtomicBool::new(false));
    let (errors, ops) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load: Vec<_> = (0..8)
        .map(|w| {
            let (stop, errors, ops, names, url) = (
                stop.clone(),
                errors.clone(),
                ops.clone(),
                names.clone(),
                url.clone(),
            );
            rt.spawn(async move {
                let cl = Client::new(&url);
                let mut i = w * 37;
                let mut written = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let n = &names[i % names.len()];
                    match cl.get("rb", n).await {
                        Ok(b) if b.as_ref() == content(n).as_slice() => {}
                        Ok(_) => {
                            eprintln!("{n}: wrong bytes");
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            eprintln!("GET {n}: {e}");
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if i % 5 == 0 {
                        let name = format!("new/{w}-{i}");
                        match cl.put_bytes("rb", &name, content(&name)).await {
                            Ok(_) => written.push(name),
                            Err(e) => {
                                eprintln!("PUT {name}: {e}");
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    ops.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
                written
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // Let a rebalance from the initial joins finish first, then count.
    std::thread::sleep(Duration::from_millis(1500));
    let before = rt.block_on(async { rebalances(&Client::new(&url)).await });
    c.add_target().unwrap();
    let moved = rt.block_on(async {
        let cl = Client::new(&url);
        let j = finished_rebalance(&cl, before).await;
        assert_eq!((j.err_count, j.err.as_str()), (0, ""), "{j:?}");
        j.objs
    });
    stop.store(true, Ordering::Relaxed);
    let written: Vec<String> = rt.block_on(async {
        let mut all = Vec::new();
        for l in load {
            all.extend(l.await.unwrap());
        }
        all
    });
    assert_eq!(
        errors.load(Ordering::Relaxed),
        0,
        "client errors during the join and rebalance ({} ops)",
        ops.load(Ordering::Relaxed)
    );
    // About 1/3 of the objects (those written before the join and some
    // written during it) belong to the new target.
    let mut all = names.clone();
    all.extend(written);
    let total = all.len() as u64;
    assert!(
        moved >= names.len() as u64 / 6 && moved <= total * 2 / 3,
        "moved {moved} of {total} objects"
    );
    assert_placed(&c, "rb", &all);
    // Every object reads back, versions kept.
    rt.block_on(async {
        let cl = Client::new(&url);
        for n in &all {
            assert_eq!(
                cl.get("rb", n).await.unwrap().as_ref(),
                content(n).as_slice(),
                "{n}"
            );
        }
        assert_eq!(cl.head_object("rb", &names[0]).await.unwrap().version, "1");
        assert_eq!(cl.list_all("rb", "", "").await.unwrap().len(), all.len());
    });
    // A target leaves: the map drops it and another rebalance runs (what
    // was only on the stopped target cannot move; nothing else fails).
    let before = rt.block_on(async { rebalances(&Client::new(&url)).await });
    c.targets[2].stop();
    c.wait_targets(2).unwrap();
    rt.block_on(async {
        let cl = Client::new(&url);
        let j = finished_rebalance(&cl, before).await;
        assert_eq!(j.err_count, 0, "{j:?}");
    });
}
