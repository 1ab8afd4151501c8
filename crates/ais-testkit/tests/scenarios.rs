//! The object-store contract as reusable scenarios, each run over every
//! cluster shape ([`Shape`]): one target, three targets, three targets with
//! two mountpaths each, and three targets fully restarted (proxy included)
//! between the scenario's setup and its checks. `scenarios!` makes one test
//! per (shape, scenario), e.g. `after_full_restart::listing`.
//!
//! Every scenario is a module with `setup` (writes the data, returns what
//! the checks need) and `verify` (checks, and may go on mutating). Exact
//! wire formats (headers, redirects, msgpack, JSON spellings) are tested in
//! `api.rs`, not here.

use ais_client::{Client, ClientError};
use ais_testkit::{Cluster, Shape};
use futures::StreamExt;
use std::future::Future;

ais_testkit::scenarios! {
    buckets,
    put_get_roundtrip,
    range_reads,
    listing,
    overwrite,
    delete_stays_deleted,
    awkward_names,
    empty_and_large,
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn status(e: ClientError) -> u16 {
    e.status()
        .unwrap_or_else(|| panic!("expected an HTTP error, got {e}"))
}

fn xxh(data: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh64::xxh64(data, 0))
}

/// Deterministic content of `len` bytes for (name, generation).
fn content(name: &str, gen: u64, len: usize) -> Vec<u8> {
    let seed = xxhash_rust::xxh64::xxh64(name.as_bytes(), gen);
    (0..len)
        .map(|i| (seed.wrapping_add(i as u64 * 31) >> 7) as u8)
        .collect()
}

/// Every name in the bucket under `prefix`.
async fn bucket_names(cl: &Client) -> Vec<String> {
    let list = cl.list_buckets().await.unwrap();
    list.into_iter().map(|b| b.name).collect()
}

async fn names(cl: &Client, bucket: &str, prefix: &str) -> Vec<String> {
    cl.list_all(bucket, prefix, "name")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect()
}

/// The shapes have the layouts their names promise.
#[test]
fn shapes_are_what_they_say() {
    assert_eq!(Shape::ALL.len(), 4);
    for s in Shape::ALL {
        let o = s.opts();
        let want = match s {
            Shape::OneTarget => (1, 1, false),
            Shape::ThreeTargets => (3, 1, false),
            Shape::TwoMountpaths => (3, 2, false),
            Shape::AfterFullRestart => (3, 1, true),
        };
        assert_eq!((o.targets, o.mpaths, s.restarts()), want, "{s}");
    }
}

/// `restart_all` replaces every process, proxy included, and keeps the
/// cluster: same proxy URL, same node identities and ports, same cluster
/// UUID, the data still there.
#[test]
fn full_restart_replaces_every_process_and_keeps_the_cluster() {
    let mut c = Cluster::start_shape(Shape::AfterFullRestart).unwrap();
    block_on(async {
        let cl = c.client();
        cl.create_bucket("r").await.unwrap();
        cl.put_bytes("r", "o", "kept").await.unwrap();
    });
    let before = c.smap().unwrap();
    let nodes = |c: &Cluster| -> Vec<(Option<u32>, String, String)> {
        std::iter::once(&c.proxy)
            .chain(c.targets.iter())
            .map(|n| (n.pid(), n.id.clone(), n.url.clone()))
            .collect()
    };
    let old = nodes(&c);
    c.restart_all().unwrap();
    let new = nodes(&c);
    for (o, n) in old.iter().zip(&new) {
        assert_ne!(o.0, n.0, "{}: a new process", o.1);
        assert_eq!((&o.1, &o.2), (&n.1, &n.2), "same identity and URL");
    }
    let after = c.smap().unwrap();
    assert_eq!(after["uuid"], before["uuid"]);
    assert_eq!(after["tmap"].as_object().unwrap().len(), 3);
    block_on(async {
        let cl = c.client();
        assert_eq!(cl.get("r", "o").await.unwrap().as_ref(), b"kept");
    });
}

/// Objects of the two-mountpath shape land on both mountpaths.
#[test]
fn two_mountpaths_are_both_used() {
    let c = Cluster::start_shape(Shape::TwoMountpaths).unwrap();
    block_on(async {
        let cl = c.client();
        cl.create_bucket("mp").await.unwrap();
        for i in 0..40 {
            cl.put_bytes("mp", &format!("o{i}"), "x").await.unwrap();
        }
    });
    fn count(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() {
                    count(&p)
                } else {
                    usize::from(p.to_string_lossy().contains("@ais"))
                }
            })
            .sum()
    }
    let per_mp: Vec<usize> = ["mp1", "mp2"]
        .iter()
        .map(|m| c.targets.iter().map(|t| count(&t.data.join(m))).sum())
        .collect();
    assert_eq!(per_mp.iter().sum::<usize>(), 40, "{per_mp:?}");
    assert!(per_mp.iter().all(|n| *n > 0), "{per_mp:?}");
}

/// Create, list, HEAD, destroy; duplicates and missing buckets are errors;
/// a re-created bucket starts empty.
mod buckets {
    use super::*;

    pub fn setup(c: &Cluster) {
        let cl = c.client();
        block_on(async {
            assert!(cl.list_buckets().await.unwrap().is_empty());
            for b in ["b1", "b2", "gone"] {
                cl.create_bucket(b).await.unwrap();
            }
            assert_eq!(status(cl.create_bucket("b1").await.unwrap_err()), 409);
            cl.put_bytes("b2", "x", "data").await.unwrap();
            cl.destroy_bucket("gone").await.unwrap();
            assert_eq!(status(cl.destroy_bucket("gone").await.unwrap_err()), 404);
        });
    }

    pub fn verify(c: &Cluster, (): ()) {
        let cl = c.client();
        block_on(async {
            assert_eq!(bucket_names(&cl).await, ["b1", "b2"]);
            let props = cl.head_bucket("b1").await.unwrap();
            assert_eq!(props.provider, "ais");
            assert_eq!(props.checksum.kind, "xxhash");
            for missing in ["gone", "nope"] {
                assert_eq!(status(cl.head_bucket(missing).await.unwrap_err()), 404);
                assert_eq!(status(cl.list_all(missing, "", "").await.unwrap_err()), 404);
                assert_eq!(status(cl.get(missing, "x").await.unwrap_err()), 404);
            }
            assert_eq!(status(cl.create_bucket("b2").await.unwrap_err()), 409);
            assert_eq!(names(&cl, "b2", "").await, ["x"]);
            // Destroy: gone from listings, objects with it.
            cl.destroy_bucket("b2").await.unwrap();
            assert_eq!(status(cl.destroy_bucket("b2").await.unwrap_err()), 404);
            assert_eq!(status(cl.list_all("b2", "", "").await.unwrap_err()), 404);
            assert_eq!(status(cl.get("b2", "x").await.unwrap_err()), 404);
            assert_eq!(bucket_names(&cl).await, ["b1"]);
            cl.create_bucket("b2").await.unwrap();
            assert!(
                names(&cl, "b2", "").await.is_empty(),
                "a re-created bucket starts empty"
            );
            assert_eq!(status(cl.get("b2", "x").await.unwrap_err()), 404);
        });
    }
}

/// PUT returns the xxhash checksum; GET returns the bytes; HEAD reports
/// size, checksum, version 1 and an access time.
mod put_get_roundtrip {
    use super::*;

    pub fn objects() -> Vec<(String, Vec<u8>)> {
        (0..24)
            .map(|i| {
                let name = format!("dir{}/obj{i:02}.bin", i % 3);
                let len = 1 + i * 7919 % 150_000;
                let data = content(&name, 0, len);
                (name, data)
            })
            .collect()
    }

    pub fn setup(c: &Cluster) {
        let cl = c.client();
        block_on(async {
            cl.create_bucket("rt").await.unwrap();
            for (name, data) in objects() {
                let p = cl.put_bytes("rt", &name, data.clone()).await.unwrap();
                assert_eq!(p.cksum_type, "xxhash", "{name}");
                assert_eq!(p.cksum_value, xxh(&data), "{name}");
            }
        });
    }

    pub fn verify(c: &Cluster, (): ()) {
        let cl = c.client();
        block_on(async {
            for (name, data) in objects() {
                let got = cl.get("rt", &name).await.unwrap();
                assert!(got.as_ref() == data.as_slice(), "{name}: content");
                let h = cl.head_object("rt", &name).await.unwrap();
                assert_eq!(h.size, data.len() as u64, "{name}");
                assert_eq!(h.cksum_type, "xxhash", "{name}");
                assert_eq!(h.cksum_value, xxh(&data), "{name}");
                assert_eq!(h.version, "1", "{name}");
                assert!(
                    h.atime.parse::<i64>().unwrap() > 1_600_000_000_000_000_000,
                    "{name}: atime {}",
                    h.atime
                );
            }
            assert_eq!(status(cl.get("rt", "dir0/missing").await.unwrap_err()), 404);
            assert_eq!(
                status(cl.head_object("rt", "dir0/missing").await.unwrap_err()),
                404
            );
        });
    }
}

/// Range GETs: a middle slice (206 with Content-Range), a suffix, an open
/// end, the whole object, and 416 past the end.
mod range_reads {
    use super::*;

    const LEN: usize = 300_000;

    pub fn setup(c: &Cluster) {
        let cl = c.client();
        block_on(async {
            cl.create_bucket("rg").await.unwrap();
            cl.put_bytes("rg", "big", content("big", 0, LEN))
                .await
                .unwrap();
        });
    }

    pub fn verify(c: &Cluster, (): ()) {
        let cl = c.client();
        let data = content("big", 0, LEN);
        block_on(async {
            let cases = [
                ("bytes=10-19", 10..20),
                ("bytes=-5", LEN - 5..LEN),
                ("bytes=299990-", LEN - 10..LEN),
                ("bytes=0-0", 0..1),
                ("bytes=100000-199999", 100_000..200_000),
                ("bytes=0-", 0..LEN),
            ];
            for (range, want) in cases {
                let r = cl.get_stream("rg", "big", &[], Some(range)).await.unwrap();
                assert_eq!(r.status(), 206, "{range}");
                assert_eq!(
                    r.headers()["content-range"],
                    format!("bytes {}-{}/{LEN}", want.start, want.end - 1),
                    "{range}"
                );
                let got = r.bytes().await.unwrap();
                assert!(got.as_ref() == &data[want.clone()], "{range}: content");
            }
            for bad in ["bytes=300000-", "bytes=999999999-"] {
                let e = cl
                    .get_stream("rg", "big", &[], Some(bad))
                    .await
                    .unwrap_err();
                assert_eq!(status(e), 416, "{bad}");
            }
        });
    }
}

/// Listing: with a small page size every object comes exactly once, in
/// name order, under one listing UUID; prefixes select; sizes and
/// requested props are reported; other buckets never leak in.
mod listing {
    use super::*;

    const N: usize = 90;

    fn name(i: usize) -> String {
        format!(
            "{}/{i:05}.dat",
            if i.is_multiple_of(2) { "even" } else { "odd" }
        )
    }

    pub fn setup(c: &Cluster) {
        let cl = c.client();
        block_on(async {
            cl.create_bucket("ls").await.unwrap();
            cl.create_bucket("other").await.unwrap();
            let puts = (0..N).map(|i| {
                let cl = cl.clone();
                async move { cl.put_bytes("ls", &name(i), vec![b'x'; i % 7]).await }
            });
            for r in futures::future::join_all(puts).await {
                r.unwrap();
            }
            cl.put_bytes("other", "even/other", "o").await.unwrap();
        });
    }

    pub fn verify(c: &Cluster, (): ()) {
        let cl = c.client();
        let mut want: Vec<String> = (0..N).map(name).collect();
        want.sort();
        block_on(async {
            for pagesize in [7, 45, 90, 1000] {
                let mut msg = ais_core::api::LsoMsg {
                    pagesize,
                    props: "name,size".into(),
                    ..Default::default()
                };
                let mut got = Vec::new();
                let mut uuid = String::new();
                let mut pages = 0;
                loop {
                    let page = cl.list_page("ls", &msg).await.unwrap();
                    pages += 1;
                    assert!(page.entries.len() as u64 <= pagesize);
                    assert!(!page.uuid.is_empty());
                    if !uuid.is_empty() {
                        assert_eq!(page.uuid, uuid, "listing UUID must be echoed");
                    }
                    uuid = page.uuid.clone();
                    got.extend(page.entries.into_iter().map(|e| (e.name, e.size)));
                    if page.continuation_token.is_empty() {
                        break;
                    }
                    msg.uuid = page.uuid;
                    msg.continuation_token = page.continuation_token;
                }
                // Full pages are not the end (a single target fills every
                // page: listings once stopped early), nor is there more than
                // one empty page after the last.
                let full = (N as u64).div_ceil(pagesize);
                assert!(
                    (full..=full + 1).contains(&pages),
                    "pagesize {pagesize}: {pages} pages"
                );
                let listed: Vec<&String> = got.iter().map(|g| &g.0).collect();
                assert_eq!(
                    listed,
                    want.iter().collect::<Vec<_>>(),
                    "pagesize {pagesize}: sorted, complete, no duplicates"
                );
                for (n, s) in &got {
                    let i: usize = n[n.len() - 9..n.len() - 4].parse().unwrap();
                    assert_eq!(*s, Some((i % 7) as u64), "{n}");
                }
            }
            // Prefixes: a directory, a partial name, nothing.
            let odd = cl.list_all("ls", "odd/", "name").await.unwrap();
            assert_eq!(odd.len(), N / 2);
            assert!(odd
                .iter()
                .all(|e| e.name.starts_with("odd/") && e.size.is_none()));
            assert_eq!(
                names(&cl, "ls", "even/0001").await,
                [
                    "even/00010.dat",
                    "even/00012.dat",
                    "even/00014.dat",
                    "even/00016.dat",
                    "even/00018.dat"
                ]
            );
            assert!(names(&cl, "ls", "none/").await.is_empty());
            // Requested props.
            let detailed = cl
                .list_all(
                    "ls",
                    "even/00004",
                    "name,size,checksum,version,atime,location",
                )
                .await
                .unwrap();
            assert_eq!(detailed.len(), 1);
            assert_eq!(detailed[0].size, Some(4));
            assert_eq!(detailed[0].version, "1");
            assert_eq!(detailed[0].checksum, xxh(b"xxxx"));
            assert!(!detailed[0].atime.is_empty());
            assert!(
                detailed[0].location.starts_with("t["),
                "{}",
                detailed[0].location
            );
            // Buckets are separate namespaces.
            assert_eq!(names(&cl, "other", "").await, ["even/other"]);
            assert!(!names(&cl, "ls", "even/o")
                .await
                .contains(&"even/other".to_string()));
        });
    }
}

/// Overwrites: the last PUT wins (content, size, checksum), the version
/// counts up, and the listing holds the object once with its new size.
mod overwrite {
    use super::*;

    fn obj(i: usize) -> String {
        format!("ow/{i}")
    }

    pub fn setup(c: &Cluster) {
        let cl = c.client();
        block_on(async {
            cl.create_bucket("ow").await.unwrap();
            for i in 0..10 {
                let n = obj(i);
                cl.put_bytes("ow", &n, content(&n, 0, 50_000))
                    .await
                    .unwrap();
                let p = cl
                    .put_bytes("ow", &n, content(&n, 1, 1000 + i))
                    .await
                    .unwrap();
                assert_eq!(p.cksum_value, xxh(&content(&n, 1, 1000 + i)));
            }
        });
    }

    pub fn verify(c: &Cluster, (): ()) {
        let cl = c.client();
        block_on(async {
            for i in 0..10 {
                let n = obj(i);
                let want = content(&n, 1, 1000 + i);
                assert!(
                    cl.get("ow", &n).await.unwrap().as_ref() == want.as_slice(),
                    "{n}"
                );
                let h = cl.head_object("ow", &n).await.unwrap();
                assert_eq!(
                    (h.size, h.version.as_str()),
                    (want.len() as u64, "2"),
                    "{n}"
                );
                assert_eq!(h.cksum_value, xxh(&want), "{n}");
            }
            let listed = cl.list_all("ow", "", "name,size,version").await.unwrap();
            assert_eq!(listed.len(), 10, "each object listed once");
            for e in &listed {
                let i: usize = e.name[3..].parse().unwrap();
                assert_eq!((e.size, e.version.as_str()), (Some(1000 + i as u64), "2"));
            }
            // Once more, now: smaller to larger, and the version goes on.
            let n = obj(0);
            let want = content(&n, 2, 123_456);
            cl.put_bytes("ow", &n, want.clone()).await.unwrap();
            assert!(cl.get("ow", &n).await.unwrap().as_ref() == want.as_slice());
            assert_eq!(cl.head_object("ow", &n).await.unwrap().version, "3");
        });
    }
}

/// Deleted objects stay deleted (GET, HEAD, listing, a second DELETE);
/// the others are untouched; a deleted name can be written again.
mod delete_stays_deleted {
    use super::*;

    fn obj(i: usize) -> String {
        format!("d/{i:02}")
    }

    fn deleted(i: usize) -> bool {
        i.is_multiple_of(3)
    }

    pub fn setup(c: &Cluster) {
        let cl = c.client();
        block_on(async {
            cl.create_bucket("del").await.unwrap();
            for i in 0..30 {
                let n = obj(i);
                cl.put_bytes("del", &n, content(&n, 0, 2000)).await.unwrap();
            }
            for i in (0..30).filter(|i| deleted(*i)) {
                cl.delete_object("del", &obj(i)).await.unwrap();
                assert_eq!(status(cl.get("del", &obj(i)).await.unwrap_err()), 404);
            }
        });
    }

    pub fn verify(c: &Cluster, (): ()) {
        let cl = c.client();
        block_on(async {
            for i in 0..30 {
                let n = obj(i);
                if deleted(i) {
                    assert_eq!(status(cl.get("del", &n).await.unwrap_err()), 404, "{n}");
                    assert_eq!(
                        status(cl.head_object("del", &n).await.unwrap_err()),
                        404,
                        "{n}"
                    );
                    assert_eq!(
                        status(cl.delete_object("del", &n).await.unwrap_err()),
                        404,
                        "{n}"
                    );
                } else {
                    assert!(
                        cl.get("del", &n).await.unwrap().as_ref()
                            == content(&n, 0, 2000).as_slice(),
                        "{n}"
                    );
                }
            }
            let want: Vec<String> = (0..30).filter(|i| !deleted(*i)).map(obj).collect();
            assert_eq!(names(&cl, "del", "").await, want);
            // Deleting more, and writing a deleted name again.
            cl.delete_object("del", &obj(1)).await.unwrap();
            assert_eq!(status(cl.get("del", &obj(1)).await.unwrap_err()), 404);
            cl.put_bytes("del", &obj(0), "back").await.unwrap();
            assert_eq!(cl.get("del", &obj(0)).await.unwrap().as_ref(), b"back");
            let listed = names(&cl, "del", "").await;
            assert_eq!(listed.len(), want.len());
            assert!(listed.contains(&obj(0)) && !listed.contains(&obj(1)));
        });
    }
}

/// Object names that need escaping survive every call and come back from
/// the listing exactly as written.
mod awkward_names {
    use super::*;

    pub const NAMES: &[&str] = &[
        "a b/ü %x.txt",
        "100%",
        "%41",
        "pct%2Fslash",
        "plus+and&amp=eq",
        "hash#frag",
        "question?mark",
        "semi;colon,comma",
        "quote'double\"",
        "tilde~bang!star*(paren)",
        "日本語/ファイル名",
        "emoji 🎉/ok",
        "deep/nested/dirs/a/b/c/d/leaf",
        "trailing space ",
        " leading space",
        "dots..in..name",
        "back\\slash",
    ];

    pub fn setup(c: &Cluster) {
        let cl = c.client();
        block_on(async {
            cl.create_bucket("aw").await.unwrap();
            for n in NAMES {
                let p = cl.put_bytes("aw", n, content(n, 0, 777)).await.unwrap();
                assert_eq!(p.cksum_value, xxh(&content(n, 0, 777)), "{n:?}");
            }
        });
    }

    pub fn verify(c: &Cluster, (): ()) {
        let cl = c.client();
        block_on(async {
            for n in NAMES {
                let got = cl
                    .get("aw", n)
                    .await
                    .unwrap_or_else(|e| panic!("GET {n:?}: {e}"));
                assert!(got.as_ref() == content(n, 0, 777).as_slice(), "{n:?}");
                assert_eq!(cl.head_object("aw", n).await.unwrap().size, 777, "{n:?}");
            }
            let mut want: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
            want.sort();
            assert_eq!(names(&cl, "aw", "").await, want);
            assert_eq!(names(&cl, "aw", "日本語/").await, ["日本語/ファイル名"]);
            assert_eq!(names(&cl, "aw", "a b/ü").await, ["a b/ü %x.txt"]);
            assert_eq!(names(&cl, "aw", "100").await, ["100%"]);
            // A name that percent-decodes to another is its own object.
            assert_eq!(status(cl.get("aw", "pct/slash").await.unwrap_err()), 404);
            assert_eq!(status(cl.get("aw", "A").await.unwrap_err()), 404);
            cl.delete_object("aw", "a b/ü %x.txt").await.unwrap();
            assert_eq!(status(cl.get("aw", "a b/ü %x.txt").await.unwrap_err()), 404);
            assert_eq!(names(&cl, "aw", "").await.len(), NAMES.len() - 1);
        });
    }
}

/// A 0-byte object and a multi-MiB object streamed both ways (the client
/// never holds the whole large object).
mod empty_and_large {
    use super::*;

    const BIG: u64 = 12 * 1024 * 1024 + 12_345;
    const CHUNK: usize = 256 * 1024;

    /// The large object's bytes from `offset`, at most `len` of them.
    fn big_chunk(offset: u64, len: usize) -> Vec<u8> {
        (offset..(offset + len as u64).min(BIG))
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect()
    }

    fn big_hash() -> String {
        let mut h = xxhash_rust::xxh64::Xxh64::new(0);
        let mut off = 0;
        while off < BIG {
            let c = big_chunk(off, CHUNK);
            h.update(&c);
            off += c.len() as u64;
        }
        format!("{:016x}", h.digest())
    }

    pub fn setup(c: &Cluster) -> String {
        let cl = c.client();
        let hash = big_hash();
        block_on(async {
            cl.create_bucket("sz").await.unwrap();
            let p = cl.put_bytes("sz", "empty", Vec::new()).await.unwrap();
            assert_eq!(p.cksum_value, xxh(b""));
            let p = cl
                .put_body("sz", "big", BIG, || async {
                    let chunks = futures::stream::iter((0..BIG).step_by(CHUNK).map(|off| {
                        Ok::<_, std::io::Error>(bytes::Bytes::from(big_chunk(off, CHUNK)))
                    }));
                    Ok(reqwest::Body::wrap_stream(chunks))
                })
                .await
                .unwrap();
            assert_eq!(p.cksum_value, hash);
        });
        hash
    }

    pub fn verify(c: &Cluster, hash: String) {
        let cl = c.client();
        block_on(async {
            assert!(cl.get("sz", "empty").await.unwrap().is_empty());
            let h = cl.head_object("sz", "empty").await.unwrap();
            assert_eq!((h.size, h.cksum_value.as_str()), (0, xxh(b"").as_str()));
            let r = cl.get_stream("sz", "big", &[], None).await.unwrap();
            assert_eq!(r.status(), 200);
            let mut body = r.bytes_stream();
            let mut h = xxhash_rust::xxh64::Xxh64::new(0);
            let mut n = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.unwrap();
                assert!(
                    chunk.as_ref() == big_chunk(n, chunk.len()).as_slice(),
                    "content at {n}"
                );
                h.update(&chunk);
                n += chunk.len() as u64;
            }
            assert_eq!(n, BIG);
            assert_eq!(format!("{:016x}", h.digest()), hash);
            let head = cl.head_object("sz", "big").await.unwrap();
            assert_eq!((head.size, head.cksum_value), (BIG, hash));
            // Both in the listing with their sizes; a range near the end of the big one.
            let listed = cl.list_all("sz", "", "name,size").await.unwrap();
            let sizes: Vec<(&str, Option<u64>)> =
                listed.iter().map(|e| (e.name.as_str(), e.size)).collect();
            assert_eq!(sizes, [("big", Some(BIG)), ("empty", Some(0))]);
            let tail = cl
                .get_stream("sz", "big", &[], Some("bytes=-1000"))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assert!(tail.as_ref() == big_chunk(BIG - 1000, 1000).as_slice());
        });
    }
}
