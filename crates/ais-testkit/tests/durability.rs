//! Durability and membership: restarts, crashes during writes, targets
//! joining and leaving while data exists, and checksum validation.

use ais_client::Client;
use ais_testkit::{Cluster, Opts};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Deterministic content for (name, generation).
fn content(name: &str, gen: u32) -> Vec<u8> {
    let seed = xxhash_rust::xxh64::xxh64(name.as_bytes(), gen as u64);
    let len = 1000 + (seed % 200_000) as usize;
    (0..len)
        .map(|i| (seed.wrapping_add(i as u64 * 31) >> 7) as u8)
        .collect()
}

#[test]
fn restarted_target_serves_its_objects() {
    let mut c = Cluster::start(3).unwrap();
    let rt = rt();
    let cl = c.client();
    rt.block_on(async {
        cl.create_bucket("b").await.unwrap();
        for i in 0..60 {
            let n = format!("o{i}");
            cl.put_bytes("b", &n, content(&n, 0)).await.unwrap();
        }
    });
    let old_id = c.targets[1].id.clone();
    c.restart_target(1).unwrap();
    assert_eq!(
        c.targets[1].id, old_id,
        "a restarted node keeps its identity"
    );
    c.wait_targets(3).unwrap();
    rt.block_on(async {
        // Wait until the restarted target answers for its objects again.
        let deadline = Instant::now() + Duration::from_secs(15);
        for i in 0..60 {
            let n = format!("o{i}");
            loop {
                match cl.get("b", &n).await {
                    Ok(b) => {
                        assert_eq!(b.as_ref(), content(&n, 0).as_slice(), "{n}");
                        break;
                    }
                    Err(e) if Instant::now() < deadline => {
                        let _ = e;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("{n}: {e}"),
                }
            }
        }
        assert_eq!(cl.list_all("b", "", "").await.unwrap().len(), 60);
    });
}

#[test]
fn sigkill_during_concurrent_puts_loses_no_acknowledged_object() {
    sigkill_during_concurrent_puts(Cluster::start(3).unwrap());
}

/// The same with group commit (`AIS_SYNC_MODE=group`: PUTs on a mountpath
/// share `syncfs` rounds instead of fsyncing each file and directory).
#[test]
fn sigkill_during_concurrent_group_commits_loses_no_acknowledged_object() {
    sigkill_during_concurrent_puts(
        Cluster::start_with(Opts {
            targets: 3,
            env: vec![("AIS_SYNC_MODE".into(), "group".into())],
            ..Default::default()
        })
        .unwrap(),
    );
}

/// Group commit: a target killed after a PUT's bytes are written but
/// before the flush that would cover them never acknowledged that PUT, and
/// after its restart the object is absent (or whole), never partial.
#[test]
fn kill_between_a_puts_write_and_its_flush_acknowledges_nothing() {
    let mut c = Cluster::start_with(Opts {
        targets: 1,
        env: vec![
            ("AIS_SYNC_MODE".into(), "group".into()),
            // Every flush waits 3 s first: the window to kill in.
            ("AIS_TEST_FLUSH_DELAY_MS".into(), "3000".into()),
        ],
        ..Default::default()
    })
    .unwrap();
    let rt = rt();
    let url = c.url().to_string();
    rt.block_on(Client::new(&url).create_bucket("gc")).unwrap();
    let data = content("pending", 1);
    let target = c.targets[0].url.clone();
    let body = data.clone();
    let put = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            reqwest::Client::new()
                .put(format!("{target}/v1/objects/gc/pending"))
                .timeout(Duration::from_secs(30))
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    });
    // The body is written to the temp file; the flush is pending.
    let work = c.targets[0].data.join("mp1").join(".ais-work");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let full = std::fs::read_dir(&work).ok().is_some_and(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("put-"))
                .any(|e| e.metadata().is_ok_and(|m| m.len() == data.len() as u64))
        });
        if full {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the PUT's temp file never filled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    c.targets[0].kill();
    let answered = put.join().unwrap();
    assert!(
        answered.as_ref().map_or(true, |st| *st != 200),
        "a PUT was acknowledged before its flush: {answered:?}"
    );
    c.restart_target(0).unwrap();
    c.wait_targets(1).unwrap();
    rt.block_on(async {
        let cl = Client::new(&url);
        match cl.get("gc", "pending").await {
            Ok(b) => assert_eq!(b.as_ref(), data.as_slice(), "present but not whole"),
            Err(e) => assert!(
                e.to_string().contains("404") || e.to_string().contains("does not exist"),
                "{e}"
            ),
        }
    });
    // No temp file survives the restart.
    let left = std::fs::read_dir(&work)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("put-"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(left, 0, "temp files left in {}", work.display());
}

fn sigkill_during_concurrent_puts(mut c: Cluster) {
    let rt = rt();
    let url = c.url().to_string();
    rt.block_on(Client::new(&url).create_bucket("crash"))
        .unwrap();
    // name -> generation acknowledged last
    let acked: Arc<Mutex<BTreeMap<String, u32>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let acked = acked.clone();
            let stop = stop.clone();
            let url = url.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let cl = Client::new(&url);
                    let mut gen = 0u32;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        gen += 1;
                        for k in 0..10 {
                            let name = format!("w{w}/obj{k}");
                            if cl
                                .put_bytes("crash", &name, content(&name, gen))
                                .await
                                .is_ok()
                            {
                                acked.lock().unwrap().insert(name, gen);
                            }
                        }
                    }
                });
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    c.targets[0].kill();
    assert!(!c.targets[0].is_running());
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    c.restart_target(0).unwrap();
    c.wait_targets(3).unwrap();
    // Let the target settle into the map everywhere.
    std::thread::sleep(Duration::from_millis(1500));
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 40, "writers made progress: {}", acked.len());
    rt.block_on(async {
        let cl = Client::new(&url);
        for (name, gen) in &acked {
            let got = cl
                .get("crash", name)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            // A later generation may have landed without its ack reaching us (the crash cut it off).
            let ok = (*gen..*gen + 3).any(|g| got.as_ref() == content(name, g).as_slice());
            assert!(
                ok,
                "{name}: content is not a complete acknowledged (or later) version"
            );
            let h = cl.head_object("crash", name).await.unwrap();
            assert_eq!(
                h.cksum_value,
                format!("{:016x}", xxhash_rust::xxh64::xxh64(&got, 0)),
                "{name}: checksum"
            );
        }
        let listed = cl.list_all("crash", "", "name,size").await.unwrap();
        for e in &listed {
            assert!(
                acked.contains_key(&e.name) || e.name.starts_with('w'),
                "unexpected {}",
                e.name
            );
            let got = cl.get("crash", &e.name).await.unwrap();
            assert_eq!(
                Some(got.len() as u64),
                e.size,
                "listed size matches: {}",
                e.name
            );
            let last = acked.get(&e.name).copied().unwrap_or(0);
            let gen_ok = (1..=last + 2).any(|g| got.as_ref() == content(&e.name, g).as_slice());
            assert!(gen_ok, "listed object {} is partial", e.name);
        }
        assert_eq!(
            listed.len(),
            acked.len(),
            "every acknowledged object listed once"
        );
    });
    // No temp file of the crash is visible as an object, and start-up cleaned the work dir.
    let work = c.targets[0].data.join("mp1/.ais-work");
    let leftovers: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        leftovers
            .iter()
            .all(|f| !f.to_string_lossy().starts_with("put-")),
        "{leftovers:?}"
    );
}

#[test]
fn membership_changes_keep_every_object_readable() {
    let mut c = Cluster::start(2).unwrap();
    let rt = rt();
    let cl = c.client();
    let names: Vec<String> = (0..120).map(|i| format!("m/{i:03}")).collect();
    rt.block_on(async {
        cl.create_bucket("mem").await.unwrap();
        for n in &names {
            cl.put_bytes("mem", n, content(n, 0)).await.unwrap();
        }
    });
    // A new target joins: many objects now hash to it but live elsewhere.
    c.add_target().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    rt.block_on(async {
        let cl = Client::new(c.url());
        for n in &names {
            let got = cl
                .get("mem", n)
                .await
                .unwrap_or_else(|e| panic!("{n} after join: {e}"));
            assert_eq!(got.as_ref(), content(n, 0).as_slice());
            let h = cl.head_object("mem", n).await.unwrap();
            assert_eq!(h.size, content(n, 0).len() as u64);
        }
        let listed: Vec<String> = cl
            .list_all("mem", "", "")
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(listed, names, "listing complete after a join");
        // Overwrite and delete after the join: the owner's copy wins, deleted stays deleted.
        cl.put_bytes("mem", &names[0], content(&names[0], 1))
            .await
            .unwrap();
        assert_eq!(
            cl.get("mem", &names[0]).await.unwrap().as_ref(),
            content(&names[0], 1).as_slice()
        );
        assert_eq!(
            cl.list_all("mem", &names[0], "").await.unwrap().len(),
            1,
            "no duplicate in listing"
        );
        for n in &names[1..20] {
            cl.delete_object("mem", n).await.unwrap();
            assert_eq!(
                cl.get("mem", n).await.unwrap_err().status(),
                Some(404),
                "{n} resurrected"
            );
        }
        assert_eq!(cl.list_all("mem", "", "").await.unwrap().len(), 101);
    });
    // A target dies: it leaves the map within a few seconds.
    let t0 = Instant::now();
    let dead_id = c.targets[2].id.clone();
    c.targets[2].kill();
    c.wait_targets(2).unwrap();
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "dead target dropped in {took:?}"
    );
    assert!(c.smap().unwrap()["tmap"].get(&dead_id).is_none());
    // It comes back with its data.
    c.restart_target(2).unwrap();
    c.wait_targets(3).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    rt.block_on(async {
        let cl = Client::new(c.url());
        for n in names.iter().skip(20) {
            assert_eq!(
                cl.get("mem", n).await.unwrap().as_ref(),
                content(n, 0).as_slice(),
                "{n}"
            );
        }
        assert_eq!(cl.list_all("mem", "", "").await.unwrap().len(), 101);
    });
}

#[test]
fn corrupted_object_is_an_error_never_bad_bytes() {
    let c = Cluster::start(1).unwrap();
    let rt = rt();
    let cl = c.client();
    rt.block_on(async {
        cl.create_bucket("ck").await.unwrap();
        cl.put_bytes("ck", "f", vec![7u8; 50_000]).await.unwrap();
        cl.put_bytes("ck", "big", vec![9u8; 3_000_000])
            .await
            .unwrap();
    });
    // Flip bytes on disk behind the server's back.
    for name in ["f", "big"] {
        let path = find(&c.targets[0].data, name).expect("object file");
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::os::unix::fs::FileExt::write_at(&f, b"XX", 100).unwrap();
    }
    rt.block_on(async {
        // Every read checks the stored checksum: a plain GET is an error
        // (AIStore's 500 ErrBadCksum), and nothing copies the bytes elsewhere.
        for name in ["f", "big"] {
            let e = cl.get("ck", name).await.unwrap_err();
            assert_eq!(e.status(), Some(500), "{e}");
            assert!(e.to_string().contains("corrupted"), "{e}");
        }
        let st = copy_and_wait(&cl, "ck", "ck-copy").await;
        assert_eq!(st.err_count, 2, "{st:?}");
        for name in ["f", "big"] {
            let e = cl.get("ck-copy", name).await.unwrap_err();
            assert_eq!(e.status(), Some(404), "{name} was copied: {e}");
        }
        cl.set_bucket_props(
            "ck",
            serde_json::json!({"checksum": {"validate_warm_get": true}}),
        )
        .await
        .unwrap();
        for name in ["f", "big"] {
            let e = cl.get("ck", name).await.unwrap_err();
            assert_eq!(e.status(), Some(500), "{e}");
            assert!(e.to_string().contains("corrupted"), "{e}");
        }
    });
}

/// Copies `src` to `dst` (continuing on errors) and waits for the job.
async fn copy_and_wait(cl: &Client, src: &str, dst: &str) -> ais_client::JobStatus {
    let msg = ais_client::BucketJobMsg {
        coer: true,
        ..Default::default()
    };
    let job = cl.copy_bucket(src, dst, &msg).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = cl.job_status(&job).await.unwrap();
        if st.end_time != 0 {
            return st;
        }
        assert!(Instant::now() < deadline, "copy job did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn find(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = find(&p, name) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|f| f == name) && p.to_string_lossy().contains("@ais") {
            return Some(p);
        }
    }
    None
}

#[test]
fn truncated_or_grown_file_is_an_error_never_a_short_object() {
    let c = Cluster::start(1).unwrap();
    let rt = rt();
    let cl = c.client();
    let data: Vec<u8> = (0..65_536u32).map(|i| (i % 251) as u8).collect();
    rt.block_on(async {
        cl.create_bucket("sz").await.unwrap();
        for name in ["short", "long", "ok"] {
            cl.put_bytes("sz", name, data.clone()).await.unwrap();
        }
    });
    // Damage two files behind the server's back: one truncated, one grown.
    let short = find(&c.targets[0].data, "short").expect("object file");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&short)
        .unwrap()
        .set_len(1_000)
        .unwrap();
    let long = find(&c.targets[0].data, "long").expect("object file");
    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(&long)
        .unwrap();
    std::io::Write::write_all(&mut &f, b"extra").unwrap();
    rt.block_on(async {
        // Default bucket settings (no validate_warm_get): still never a 200.
        for name in ["short", "long"] {
            let e = cl.get("sz", name).await.unwrap_err();
            assert_eq!(e.status(), Some(500), "{name}: {e}");
            let msg = e.to_string();
            assert!(
                msg.contains("damaged") && msg.contains("65536") && msg.contains(name),
                "{msg}"
            );
            assert!(cl.head_object("sz", name).await.is_err(), "{name}: HEAD");
            let e = cl
                .get_stream("sz", name, &[], Some("bytes=0-9"))
                .await
                .unwrap_err();
            assert_eq!(e.status(), Some(500), "{name}: range GET: {e}");
        }
        assert_eq!(cl.get("sz", "ok").await.unwrap().as_ref(), data.as_slice());
        // A copy job does not spread the damage: the damaged ones fail, by name.
        let st = copy_and_wait(&cl, "sz", "sz-copy").await;
        assert_eq!(st.err_count, 2, "{st:?}");
        assert_eq!(
            cl.get("sz-copy", "ok").await.unwrap().as_ref(),
            data.as_slice()
        );
        for name in ["short", "long"] {
            assert_eq!(
                cl.get("sz-copy", name).await.unwrap_err().status(),
                Some(404),
                "{name} was copied"
            );
        }
    });
}

#[test]
fn concurrent_puts_of_one_name_get_distinct_increasing_versions() {
    let c = Cluster::start(1).unwrap();
    let rt = rt();
    let cl = c.client();
    rt.block_on(async {
        cl.create_bucket("ver").await.unwrap();
        let mut last = 0u64;
        for round in 0..50 {
            let puts = (0..16).map(|i| {
                let cl = cl.clone();
                async move {
                    let p = cl
                        .put_bytes("ver", "one", format!("{round}-{i}").into_bytes())
                        .await
                        .unwrap();
                    p.version.parse::<u64>().unwrap()
                }
            });
            let mut versions = futures::future::join_all(puts).await;
            versions.sort_unstable();
            let expect: Vec<u64> = (last + 1..=last + 16).collect();
            assert_eq!(versions, expect, "round {round}");
            last += 16;
        }
    });
}

/// Files of `name` under `dir` (main copies under `@ais`, mirrors under `@mirror`).
fn copies_of(dir: &std::path::Path, bucket: &str, name: &str) -> Vec<std::path::PathBuf> {
    ais_testkit::checks::object_files(dir, bucket)
        .into_iter()
        .filter(|p| p.ends_with(format!("{bucket}/{name}")))
        .collect()
}

#[test]
fn mirrored_bucket_survives_a_lost_mountpath_and_damaged_copies() {
    let mut c = Cluster::start_with(ais_testkit::Opts {
        targets: 1,
        mpaths: 2,
        ..Default::default()
    })
    .unwrap();
    let rt = rt();
    let cl = c.client();
    let names: Vec<String> = (0..60).map(|i| format!("m/{i:02}")).collect();
    rt.block_on(async {
        cl.create_bucket("mir").await.unwrap();
        cl.set_bucket_props(
            "mir",
            serde_json::json!({"mirror": {"enabled": true, "copies": 2}}),
        )
        .await
        .unwrap();
        for n in &names {
            cl.put_bytes("mir", n, content(n, 0)).await.unwrap();
        }
        // Two copies of each, on distinct mountpaths; listed once.
        assert_eq!(cl.list_all("mir", "", "").await.unwrap().len(), names.len());
    });
    let tdir = c.targets[0].data.clone();
    for n in &names {
        let files = copies_of(&tdir, "mir", n);
        assert_eq!(files.len(), 2, "{n}: {files:?}");
        assert_ne!(
            files[0].components().nth(tdir.components().count()),
            files[1].components().nth(tdir.components().count()),
            "{n}: both copies on one mountpath"
        );
    }
    // A lost disk: the target dies and one mountpath's objects are gone.
    c.targets[0].kill();
    std::fs::remove_dir_all(tdir.join("mp1/@ais")).unwrap();
    std::fs::create_dir_all(tdir.join("mp1/@ais")).unwrap();
    c.restart_target(0).unwrap();
    c.wait_targets(1).unwrap();
    rt.block_on(async {
        let cl = c.client();
        for n in &names {
            assert_eq!(
                cl.get("mir", n).await.unwrap().as_ref(),
                content(n, 0).as_slice(),
                "{n}"
            );
        }
        assert_eq!(cl.list_all("mir", "", "").await.unwrap().len(), names.len());
    });
    // Read paths restored the lost copies.
    for n in &names {
        assert_eq!(copies_of(&tdir, "mir", n).len(), 2, "{n} not repaired");
    }
    // Damaged main copies (flipped bytes, truncation) are served and copied
    // from the mirror, and repaired.
    let main_of = |n: &str| {
        copies_of(&tdir, "mir", n)
            .into_iter()
            .find(|p| p.to_string_lossy().contains("@ais"))
            .unwrap()
    };
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(main_of(&names[0]))
        .unwrap();
    std::os::unix::fs::FileExt::write_at(&f, b"XX", 3).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(main_of(&names[1]))
        .unwrap()
        .set_len(3)
        .unwrap();
    rt.block_on(async {
        let cl = c.client();
        cl.set_bucket_props(
            "mir",
            serde_json::json!({"checksum": {"validate_warm_get": true}}),
        )
        .await
        .unwrap();
        for n in &names[..2] {
            assert_eq!(
                cl.get("mir", n).await.unwrap().as_ref(),
                content(n, 0).as_slice(),
                "{n}"
            );
        }
        // Overwrite: every copy is the new version.
        cl.put_bytes("mir", &names[2], content(&names[2], 1))
            .await
            .unwrap();
        // Delete: every copy goes.
        cl.delete_object("mir", &names[3]).await.unwrap();
        assert_eq!(
            cl.get("mir", &names[3]).await.unwrap_err().status(),
            Some(404)
        );
    });
    std::fs::remove_file(main_of(&names[2])).unwrap();
    assert!(copies_of(&tdir, "mir", &names[3]).is_empty());
    rt.block_on(async {
        let cl = c.client();
        assert_eq!(
            cl.get("mir", &names[2]).await.unwrap().as_ref(),
            content(&names[2], 1).as_slice(),
            "the mirror holds the new version"
        );
    });
}

#[test]
fn scrub_repairs_what_redundancy_allows_and_reports_the_rest() {
    let c = Cluster::start_with(ais_testkit::Opts {
        targets: 1,
        mpaths: 2,
        ..Default::default()
    })
    .unwrap();
    let rt = rt();
    let cl = c.client();
    let names: Vec<String> = (0..20).map(|i| format!("s{i:02}")).collect();
    rt.block_on(async {
        for b in ["scr", "plain"] {
            cl.create_bucket(b).await.unwrap();
        }
        cl.set_bucket_props(
            "scr",
            serde_json::json!({"mirror": {"enabled": true, "copies": 2}}),
        )
        .await
        .unwrap();
        for n in &names {
            cl.put_bytes("scr", n, content(n, 0)).await.unwrap();
        }
        for n in &names[..5] {
            cl.put_bytes("plain", n, content(n, 0)).await.unwrap();
        }
    });
    let tdir = c.targets[0].data.clone();
    let copy = |b: &str, n: &str, kind: &str| {
        copies_of(&tdir, b, n)
            .into_iter()
            .find(|p| p.to_string_lossy().contains(kind))
            .unwrap()
    };
    let flip = |p: std::path::PathBuf| {
        let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
        std::os::unix::fs::FileExt::write_at(&f, b"XX", 1).unwrap();
    };
    // Damage: a main copy with flipped bytes, a lost mirror, a truncated
    // mirror; and an unmirrored object with flipped bytes.
    flip(copy("scr", &names[0], "@ais"));
    std::fs::remove_file(copy("scr", &names[1], "@mirror")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(copy("scr", &names[2], "@mirror"))
        .unwrap()
        .set_len(2)
        .unwrap();
    flip(copy("plain", &names[0], "@ais"));
    let out = std::process::Command::new(ais_testkit::bin("ais"))
        .args(["scrub", "ais://scr", "--wait"])
        .env("AIS_ENDPOINT", c.url())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("20 objects") && text.contains("3 repaired"),
        "{text}"
    );
    for n in &names[..3] {
        for kind in ["@ais", "@mirror"] {
            assert_eq!(
                std::fs::read(copy("scr", n, kind)).unwrap(),
                content(n, 0),
                "{n} {kind} not repaired"
            );
        }
    }
    // Without redundancy the damage is reported, by name, and left alone.
    rt.block_on(async {
        let job = cl.scrub_bucket("plain").await.unwrap();
        let st = loop {
            let st = cl.job_status(&job).await.unwrap();
            if st.end_time != 0 {
                break st;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!((st.err_count, st.objs, st.repaired), (1, 4, 0), "{st:?}");
        let errs = cl.job_errors(&job).await.unwrap();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].obj_name.contains(&names[0]) && errs[0].msg.contains("corrupted"),
            "{errs:?}"
        );
    });
}

/// A listing while a target is frozen (SIGSTOP) and then dropped from the
/// map for silence is a 503 naming it — never a silent partial list; once
/// it is back (SIGCONT, it rejoins), the listing is whole again.
#[test]
fn listing_with_a_frozen_target_is_503_never_a_partial_list() {
    let c = Cluster::start(3).unwrap();
    let rt = rt();
    let cl = c.client();
    let names: Vec<String> = (0..60).map(|i| format!("l/{i:03}")).collect();
    rt.block_on(async {
        cl.create_bucket("lz").await.unwrap();
        for n in &names {
            cl.put_bytes("lz", n, n.as_bytes().to_vec()).await.unwrap();
        }
        assert_eq!(cl.list_all("lz", "", "").await.unwrap().len(), 60);
    });
    let frozen = c.targets[1].id.clone();
    let pid = c.targets[1].pid().unwrap() as i32;
    // SAFETY: signals to our own child process.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.smap().unwrap()["tmap"].get(&frozen).is_some() {
        assert!(Instant::now() < deadline, "frozen target still in the map");
        std::thread::sleep(Duration::from_millis(200));
    }
    let res = rt.block_on(cl.list_all("lz", "", ""));
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let e = res.expect_err("a partial listing was answered as whole");
    assert_eq!(e.status(), Some(503), "{e}");
    assert!(e.to_string().contains(&frozen), "{e}");
    c.wait_targets(3).unwrap();
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match cl.list_all("lz", "", "").await {
                Ok(l) => {
                    assert_eq!(l.len(), 60);
                    break;
                }
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("listing after the target came back: {e}"),
            }
        }
    });
}
