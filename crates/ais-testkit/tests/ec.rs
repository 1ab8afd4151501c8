//! Erasure coding (`ec` bucket props) on a real cluster: objects survive a
//! lost target and its disks, redundancy is rebuilt when it returns, damaged
//! copies are rebuilt from parts, and existing buckets are coded by a job.

use ais_client::Client;
use ais_testkit::{Cluster, Opts};
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Objects above 256 KiB (the default `ec.objsize_limit`) are sliced; the
/// rest replicated. Every 100th object is large.
fn content(i: usize) -> Vec<u8> {
    let len = if i % 100 == 7 {
        300_000 + (i * 7919) % 900_000
    } else {
        500 + (i * 131) % 6000
    };
    let seed = xxhash_rust::xxh64::xxh64(&i.to_le_bytes(), 1);
    (0..len)
        .map(|k| (seed.wrapping_add(k as u64 * 2_654_435_761) >> 13) as u8)
        .collect()
}

fn name(i: usize) -> String {
    format!("d{}/obj-{i:05}", i % 17)
}

fn opts(targets: usize) -> Opts {
    Opts {
        targets,
        env: vec![("AIS_REBALANCE_SETTLE".into(), "1".into())],
        ..Default::default()
    }
}

async fn put_all(cl: &Client, bucket: &str, n: usize) {
    let mut s = futures::stream::iter((0..n).map(|i| async move {
        cl.put_bytes(bucket, &name(i), content(i))
            .await
            .unwrap_or_else(|e| panic!("PUT {}: {e}", name(i)));
    }))
    .buffer_unordered(16);
    while s.next().await.is_some() {}
}

/// Every object reads back with its content (retrying briefly: a target
/// may have just left the map).
async fn read_all(cl: &Client, bucket: &str, n: usize) {
    let mut s = futures::stream::iter((0..n).map(|i| async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match cl.get(bucket, &name(i)).await {
                Ok(b) => {
                    assert!(
                        b.as_ref() == content(i).as_slice(),
                        "{}: wrong bytes",
                        name(i)
                    );
                    return;
                }
                Err(e) if Instant::now() < deadline && e.status().is_none_or(|s| s >= 500) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("GET {}: {e}", name(i)),
            }
        }
    }))
    .buffer_unordered(16);
    while s.next().await.is_some() {}
}

/// Part files of `bucket` under `dir` (a target's data dir).
fn parts_under(dir: &Path, bucket: &str) -> usize {
    fn walk(p: &Path) -> usize {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.flatten()
                    .map(|e| {
                        let p = e.path();
                        if p.is_dir() {
                            walk(&p)
                        } else {
                            1
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|mp| walk(&mp.path().join("@ec").join(bucket)))
                .sum()
        })
        .unwrap_or(0)
}

fn all_parts(c: &Cluster, bucket: &str) -> usize {
    (0..c.targets.len())
        .map(|i| parts_under(&c.dir.path().join(format!("target{}", i + 1)), bucket))
        .sum()
}

/// Parts a healthy 2+1 bucket of `n` objects has: one replica per small
/// object, three slices per large one.
fn expected_parts(n: usize) -> usize {
    (0..n).map(|i| if i % 100 == 7 { 3 } else { 1 }).sum()
}

/// Waits for a rebalance started after `after` jobs existed to finish.
async fn rebalance_done(cl: &Client, after: usize) -> ais_client::JobStatus {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let jobs: Vec<_> = cl
            .jobs()
            .await
            .unwrap()
            .into_iter()
            .filter(|j| j.kind == "rebalance")
            .collect();
        if jobs.len() > after && jobs.iter().all(|j| j.end_time != 0) {
            if let Some(j) = jobs
                .iter()
                .filter(|j| !j.aborted)
                .max_by_key(|j| j.end_time)
            {
                if j.err_count > 0 {
                    let errs = cl.job_errors(&j.uuid).await.unwrap_or_default();
                    eprintln!(
                        "{} errors, first: {:?}",
                        errs.len(),
                        errs.iter().take(5).collect::<Vec<_>>()
                    );
                }
                eprintln!(
                    "rebalances: {:?}",
                    jobs.iter()
                        .map(|j| (&j.uuid, j.aborted, j.objs, j.repaired, j.err_count))
                        .collect::<Vec<_>>()
                );
                return j.clone();
            }
        }
        assert!(Instant::now() < deadline, "no finished rebalance");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn rebalances(cl: &Client) -> usize {
    cl.jobs()
        .await
        .unwrap()
        .iter()
        .filter(|j| j.kind == "rebalance")
        .count()
}

async fn wait_job(cl: &Client, id: &str) -> ais_client::JobStatus {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let st = cl.job_status(id).await.unwrap();
        if st.end_time != 0 {
            return st;
        }
        assert!(Instant::now() < deadline, "job {id} did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn mpaths_of(c: &Cluster, i: usize) -> Vec<PathBuf> {
    let d = c.dir.path().join(format!("target{}", i + 1));
    std::fs::read_dir(&d)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("mp"))
        })
        .collect()
}

/// Acceptance (a), erasure-coded half: a 2+1 bucket of 5,000 objects
/// (small ones replicated, large ones sliced) on 5 targets loses a target
/// and all its disks; every object still reads back and redundancy is
/// rebuilt on the 4 left (2+1 needs 4: the owner and one per slice); the
/// target returns empty and parts are placed on it again; a second,
/// different target can then be lost.
#[test]
fn ec_bucket_survives_a_lost_target_and_rebuilds_redundancy() {
    let n: usize = std::env::var("AIS_TEST_EC_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let mut c = Cluster::start_with(opts(5)).unwrap();
    let rt = rt();
    let cl = c.client();
    rt.block_on(async {
        cl.create_bucket("ecb").await.unwrap();
        cl.set_bucket_props(
            "ecb",
            serde_json::json!({"ec": {"enabled": true, "data_slices": 2, "parity_slices": 1}}),
        )
        .await
        .unwrap();
        put_all(&cl, "ecb", n).await;
    });
    assert_eq!(
        all_parts(&c, "ecb"),
        expected_parts(n),
        "parts after the PUTs"
    );

    // Lose target 2 and its disks.
    let before = rt.block_on(rebalances(&cl));
    c.targets[1].kill();
    for mp in mpaths_of(&c, 1) {
        std::fs::remove_dir_all(mp).unwrap();
    }
    c.wait_targets(4).unwrap();
    rt.block_on(read_all(&cl, "ecb", n));
    let st = rt.block_on(rebalance_done(&cl, before));
    assert_eq!(st.err_count, 0, "rebalance after the loss: {st:?}");

    // It comes back empty: objects and parts are placed on it again.
    let before = rt.block_on(rebalances(&cl));
    c.restart_target(1).unwrap();
    c.wait_targets(5).unwrap();
    let st = rt.block_on(rebalance_done(&cl, before));
    assert_eq!(st.err_count, 0, "rebalance after the return: {st:?}");
    assert_eq!(
        all_parts(&c, "ecb"),
        expected_parts(n),
        "parts after the target returned (no stale or missing ones)"
    );
    assert!(
        parts_under(&c.dir.path().join("target2"), "ecb") > 0,
        "the returned target holds parts again"
    );

    // Redundancy is whole again: losing another target loses nothing.
    c.targets[2].kill();
    for mp in mpaths_of(&c, 2) {
        std::fs::remove_dir_all(mp).unwrap();
    }
    c.wait_targets(4).unwrap();
    rt.block_on(read_all(&cl, "ecb", n));
    c.stop().unwrap();
}

/// Owner's main copy of `name` in a cluster of `c` (under some target).
fn main_copy(c: &Cluster, bucket: &str, name: &str) -> PathBuf {
    for i in 0..c.targets.len() {
        for mp in mpaths_of(c, i) {
            let p = mp.join("@ais").join(bucket).join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("no main copy of {name}");
}

fn flip_byte(p: &Path, at: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(p)
        .unwrap();
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[b[0] ^ 0x5a]).unwrap();
}

/// Acceptance (e) with erasure coding: flipped bytes and truncation in main
/// copies are never served or copied; GET, copy and scrub rebuild the
/// right bytes from the parts (replica or slices).
#[test]
fn damaged_main_copies_are_rebuilt_from_parts() {
    let c = Cluster::start_with(opts(4)).unwrap();
    let rt = rt();
    let cl = c.client();
    // Objects 7 and 107 are sliced, the others replicated.
    let ids = [1usize, 2, 3, 7, 107, 8];
    rt.block_on(async {
        cl.create_bucket("dmg").await.unwrap();
        cl.set_bucket_props(
            "dmg",
            serde_json::json!({"ec": {"enabled": true, "data_slices": 2, "parity_slices": 1},
                               "checksum": {"validate_warm_get": true}}),
        )
        .await
        .unwrap();
        for i in ids {
            cl.put_bytes("dmg", &name(i), content(i)).await.unwrap();
        }
    });
    // GET: flipped byte (replicated and sliced), truncated, deleted.
    flip_byte(&main_copy(&c, "dmg", &name(1)), 100);
    flip_byte(&main_copy(&c, "dmg", &name(7)), 200_000);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(main_copy(&c, "dmg", &name(107)))
        .unwrap();
    f.set_len(1000).unwrap();
    drop(f);
    std::fs::remove_file(main_copy(&c, "dmg", &name(2))).unwrap();
    rt.block_on(async {
        for i in [1, 7, 107, 2] {
            let b = cl.get("dmg", &name(i)).await.unwrap();
            assert!(
                b.as_ref() == content(i).as_slice(),
                "{}: wrong bytes",
                name(i)
            );
        }
    });
    for i in [1, 7, 107, 2] {
        assert_eq!(
            std::fs::read(main_copy(&c, "dmg", &name(i))).unwrap(),
            content(i),
            "{}: main copy repaired on disk",
            name(i)
        );
    }
    // Copy: damaged sources are rebuilt, never copied as they are.
    flip_byte(&main_copy(&c, "dmg", &name(3)), 10);
    flip_byte(&main_copy(&c, "dmg", &name(7)), 5);
    rt.block_on(async {
        let msg = ais_client::BucketJobMsg {
            coer: true,
            ..Default::default()
        };
        let id = cl.copy_bucket("dmg", "dmg-copy", &msg).await.unwrap();
        let st = wait_job(&cl, &id).await;
        assert_eq!(st.err_count, 0, "{st:?}");
        for i in ids {
            let b = cl.get("dmg-copy", &name(i)).await.unwrap();
            assert!(b.as_ref() == content(i).as_slice(), "copy of {}", name(i));
        }
    });
    // Scrub: finds and repairs damage nobody read.
    flip_byte(&main_copy(&c, "dmg", &name(8)), 1);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(main_copy(&c, "dmg", &name(107)))
        .unwrap();
    f.set_len(77).unwrap();
    drop(f);
    rt.block_on(async {
        let id = cl.scrub_bucket("dmg").await.unwrap();
        let st = wait_job(&cl, &id).await;
        assert_eq!(st.err_count, 0, "{st:?}");
        assert!(st.repaired >= 2, "scrub repaired {}: {st:?}", st.repaired);
    });
    for i in [8, 107] {
        assert_eq!(
            std::fs::read(main_copy(&c, "dmg", &name(i))).unwrap(),
            content(i),
            "{}: repaired by scrub",
            name(i)
        );
    }
}

/// Enabling erasure coding on a bucket with objects codes them by a tracked
/// job (`ec-encode`, also started by `set-bprops`); too few targets for the
/// asked slices is a clear 400; a deleted object leaves no parts behind.
#[test]
fn ec_encode_job_codes_existing_objects() {
    let c = Cluster::start_with(opts(3)).unwrap();
    let rt = rt();
    let cl = c.client();
    rt.block_on(async {
        cl.create_bucket("old").await.unwrap();
        put_all(&cl, "old", 300).await;
        let e = cl
            .set_bucket_props(
                "old",
                serde_json::json!({"ec": {"enabled": true, "data_slices": 2, "parity_slices": 2}}),
            )
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(400), "{e}");
        assert!(e.to_string().contains("needs at least 5 targets"), "{e}");
        let id = cl.ec_encode("old", 1, 1).await.unwrap();
        assert!(id.starts_with("ec-encode-"), "{id}");
        let st = wait_job(&cl, &id).await;
        assert_eq!(st.err_count, 0, "{st:?}");
        assert_eq!(st.kind, "ec-encode");
        assert_eq!(st.objs, 300, "{st:?}");
        // Coded by this job; a repair that runs after a late rebalance of
        // the new cluster (every EC bucket) may code a few first: those the
        // job finds complete. Every object's parts are counted below.
        assert!(
            st.repaired >= 1 && st.repaired <= 300,
            "every object got its parts: {st:?}"
        );
        let props = cl.head_bucket("old").await.unwrap();
        assert!(props.ec.enabled && props.ec.data_slices == 1 && props.ec.parity_slices == 1);
        // 1+1: one replica for small objects, two slices for large ones.
    });
    let want: usize = (0..300).map(|i| if i % 100 == 7 { 2 } else { 1 }).sum();
    assert_eq!(all_parts(&c, "old"), want);
    rt.block_on(async {
        // Running it again finds nothing to do.
        let st = wait_job(&cl, &cl.ec_encode("old", 1, 1).await.unwrap()).await;
        assert_eq!((st.objs, st.repaired, st.err_count), (300, 0, 0), "{st:?}");
        for i in 0..300 {
            cl.delete_object("old", &name(i)).await.unwrap();
        }
    });
    assert_eq!(all_parts(&c, "old"), 0, "deletes remove every part");
}

/// Acceptance (a), mirrored half: a `mirror.copies=2` bucket of 5,000
/// objects on targets with two mountpaths. A target is SIGKILLed and one of
/// its mountpaths deleted (mirror copies live on a target's other
/// mountpaths, so one disk is what they protect against; losing every disk
/// of a target is what erasure coding is for, above). After the restart
/// every object reads back with its content, and a scrub rebuilds the lost
/// copies: two copies of every object again.
#[test]
fn mirrored_bucket_survives_a_lost_disk_and_rebuilds_copies() {
    let n: usize = std::env::var("AIS_TEST_EC_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let mut c = Cluster::start_with(Opts {
        mpaths: 2,
        ..opts(3)
    })
    .unwrap();
    let rt = rt();
    let cl = c.client();
    rt.block_on(async {
        cl.create_bucket("mir").await.unwrap();
        cl.set_bucket_props(
            "mir",
            serde_json::json!({"mirror": {"enabled": true, "copies": 2}}),
        )
        .await
        .unwrap();
        put_all(&cl, "mir", n).await;
    });
    let copies = |c: &Cluster| -> usize {
        (0..c.targets.len())
            .map(|i| {
                ais_testkit::checks::object_files(
                    &c.dir.path().join(format!("target{}", i + 1)),
                    "mir",
                )
                .len()
            })
            .sum()
    };
    assert_eq!(
        copies(&c),
        2 * n,
        "two copies of every object after the PUTs"
    );
    c.targets[0].kill();
    let lost = mpaths_of(&c, 0).into_iter().min().unwrap();
    std::fs::remove_dir_all(&lost).unwrap();
    c.restart_target(0).unwrap();
    c.wait_targets(3).unwrap();
    rt.block_on(read_all(&cl, "mir", n));
    let st = rt.block_on(async {
        let id = cl.scrub_bucket("mir").await.unwrap();
        wait_job(&cl, &id).await
    });
    assert_eq!(st.err_count, 0, "{st:?}");
    assert!(st.repaired > 0, "the scrub rebuilt nothing: {st:?}");
    assert_eq!(
        copies(&c),
        2 * n,
        "two copies of every object after the scrub"
    );
    c.stop().unwrap();
}
