//! Errors a client can act on when things break underneath it: a dead owner
//! target is "retry later" (503), never "does not exist" (404); a full disk
//! is 507 and leaves nothing half-written behind.

use ais_core::meta::Smap;
use ais_core::Bck;
use ais_testkit::Cluster;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// What a client saw for one GET: a status, or `None` for no HTTP answer.
type Seen = Option<u16>;

#[test]
fn dead_owner_is_503_never_404() {
    let mut c = Cluster::start(3).unwrap();
    let rt = rt();
    let cl = c.client();
    let names: Vec<String> = (0..60).map(|i| format!("k/{i:02}")).collect();
    rt.block_on(async {
        cl.create_bucket("kill").await.unwrap();
        for n in &names {
            cl.put_bytes("kill", n, n.as_bytes().to_vec())
                .await
                .unwrap();
        }
    });
    let smap: Smap = serde_json::from_value(c.smap().unwrap()).unwrap();
    let victim = c.targets[0].id.clone();
    let bck = Bck::ais("kill");
    let on_victim: Vec<String> = names
        .iter()
        .filter(|n| smap.owner(&bck.obj_uname(n)).unwrap().daemon_id == victim)
        .cloned()
        .collect();
    assert!(!on_victim.is_empty() && on_victim.len() < names.len());

    // Readers GET every object in a loop while the owner of some is killed.
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<BTreeMap<String, Vec<Seen>>>> = Default::default();
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (stop, seen, names, url) = (
                stop.clone(),
                seen.clone(),
                names.clone(),
                c.url().to_string(),
            );
            rt.spawn(async move {
                let cl = ais_client::Client::new(&url);
                let mut i = r;
                while !stop.load(Ordering::Relaxed) {
                    let n = &names[i % names.len()];
                    let got = match cl.get("kill", n).await {
                        Ok(b) => {
                            assert_eq!(b.as_ref(), n.as_bytes(), "{n}: wrong bytes");
                            Some(200)
                        }
                        Err(e) => e.status(),
                    };
                    seen.lock().unwrap().entry(n.clone()).or_default().push(got);
                    i += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    c.targets[0].kill();
    // Until the map drops it, and a while after.
    let t0 = Instant::now();
    c.wait_targets(2).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for r in readers {
            r.await.unwrap();
        }
    });
    let seen = seen.lock().unwrap().clone();
    let mut n503 = 0;
    for (name, got) in &seen {
        assert!(
            !got.contains(&Some(404)),
            "{name}: a client was told it does not exist: {got:?}"
        );
        if on_victim.contains(name) {
            n503 += got.iter().filter(|g| **g == Some(503)).count();
            assert!(
                got.iter()
                    .all(|g| matches!(g, Some(200) | Some(503) | None)),
                "{name}: {got:?}"
            );
        } else {
            // Objects on living targets are served throughout.
            assert!(got.iter().all(|g| *g == Some(200)), "{name}: {got:?}");
        }
    }
    assert!(
        n503 > 0,
        "no 503 seen for the dead target's objects in {:?}",
        t0.elapsed()
    );

    // The message says what to do.
    rt.block_on(async {
        let cl = c.client();
        let e = cl.get("kill", &on_victim[0]).await.unwrap_err();
        assert_eq!(e.status(), Some(503), "{e}");
        assert!(e.to_string().contains("retry"), "{e}");
    });

    // It comes back with its data: every object readable again.
    c.restart_target(0).unwrap();
    c.wait_targets(3).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    rt.block_on(async {
        let cl = c.client();
        for n in &names {
            assert_eq!(cl.get("kill", n).await.unwrap().as_ref(), n.as_bytes());
        }
        // And a name that never existed is a plain 404 again.
        let e = cl.get("kill", "never/was").await.unwrap_err();
        assert_eq!(e.status(), Some(404), "{e}");
    });
}

/// Files a failed write may leave behind: PUT temp files, metadata `.tmp`.
fn leftovers(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() {
                stack.push(p);
            } else if name.ends_with(".tmp") || name.starts_with("put-") {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[test]
fn full_disk_is_507_and_leaves_nothing_behind() {
    let Some(opts) = ais_testkit::Opts::on_tmpfs(1, 6 << 20) else {
        panic!("this test needs to mount a tmpfs (run as root, as CI does)");
    };
    let c = Cluster::start_with(opts).unwrap();
    let rt = rt();
    let cl = c.client();
    let tdir = c.targets[0].data.clone();
    let chunk = vec![7u8; 512 * 1024];
    let (stored, err) = rt.block_on(async {
        cl.create_bucket("full").await.unwrap();
        let mut stored = Vec::new();
        for i in 0..64 {
            let name = format!("o{i:02}");
            match cl.put_bytes("full", &name, chunk.clone()).await {
                Ok(_) => stored.push(name),
                Err(e) => return (stored, e),
            }
        }
        panic!("64 x 512 KiB fit on a 6 MiB tmpfs?");
    });
    assert_eq!(err.status(), Some(507), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("no space") && msg.contains("full/o"), "{msg}");
    assert!(!stored.is_empty());
    // Nothing half-written: every acknowledged object is whole, the failed
    // one does not exist, and no temp file is left.
    rt.block_on(async {
        for n in &stored {
            assert_eq!(cl.get("full", n).await.unwrap().len(), chunk.len(), "{n}");
        }
        let failed = format!("o{:02}", stored.len());
        assert_eq!(
            cl.get("full", &failed).await.unwrap_err().status(),
            Some(404)
        );
        assert_eq!(
            cl.list_all("full", "", "").await.unwrap().len(),
            stored.len()
        );
    });
    assert!(leftovers(&tdir).is_empty(), "{:?}", leftovers(&tdir));
    // Metadata writes on the full disk fail too (a new bucket's BMD): no
    // `.tmp` left behind either.
    rt.block_on(async {
        let _ = cl.create_bucket("another").await;
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(leftovers(&tdir).is_empty(), "{:?}", leftovers(&tdir));
    // Space freed: PUTs work again.
    rt.block_on(async {
        for n in stored.iter().take(3) {
            cl.delete_object("full", n).await.unwrap();
        }
        cl.put_bytes("full", "again", chunk.clone()).await.unwrap();
        assert_eq!(cl.get("full", "again").await.unwrap().len(), chunk.len());
    });
}
