use super::*;
use ais_core::api::PropSet;
use std::collections::BTreeMap;

async fn put(store: &Store, bck: &Bck, name: &str, data: &[u8]) -> Result<ObjAttrs> {
    let mut w = store.begin_put(bck, name).await?;
    w.write(data).await?;
    w.commit(BTreeMap::new()).await
}

fn names(store: &Store, bck: &Bck, prefix: &str, after: &str, limit: usize) -> (Vec<String>, bool) {
    let p = list_objects(
        store,
        bck,
        prefix,
        after,
        limit,
        &PropSet::default(),
        "t[x]",
        None,
    )
    .unwrap();
    (p.entries.into_iter().map(|e| e.name).collect(), p.done)
}

#[tokio::test]
async fn put_get_version_delete() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(&[d.path().join("m1"), d.path().join("m2")]).unwrap();
    let bck = Bck::ais("b");
    let a1 = put(&store, &bck, "x/y.bin", b"hello").await.unwrap();
    assert_eq!((a1.size, a1.version), (5, 1));
    let a2 = put(&store, &bck, "x/y.bin", b"hello!").await.unwrap();
    assert_eq!(a2.version, 2);
    let info = store.head(&bck, "x/y.bin").await.unwrap();
    assert_eq!(info.attrs.cksum_value, a2.cksum_value);
    store.verify(&bck, "x/y.bin", &info.attrs).await.unwrap();
    store.delete(&bck, "x/y.bin").await.unwrap();
    assert!(matches!(
        store.head(&bck, "x/y.bin").await,
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        store.delete(&bck, "x/y.bin").await,
        Err(StorageError::NotFound)
    ));
}

#[tokio::test]
async fn aborted_put_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(&[d.path().to_path_buf()]).unwrap();
    let bck = Bck::ais("b");
    let mut w = store.begin_put(&bck, "o").await.unwrap();
    w.write(b"partial").await.unwrap();
    drop(w);
    assert!(matches!(
        store.head(&bck, "o").await,
        Err(StorageError::NotFound)
    ));
    assert_eq!(
        std::fs::read_dir(d.path().join(WORK_DIR)).unwrap().count(),
        0
    );
}

#[tokio::test]
async fn corrupt_is_detected() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(&[d.path().to_path_buf()]).unwrap();
    let bck = Bck::ais("b");
    put(&store, &bck, "o", b"good data").await.unwrap();
    let path = store.obj_path(&bck, "o");
    // Flip bytes in place, keeping the xattr.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, b"BAD", 0).unwrap();
    let info = store.head(&bck, "o").await.unwrap();
    assert!(matches!(
        store.verify(&bck, "o", &info.attrs).await,
        Err(StorageError::Corrupt { .. })
    ));
}

async fn get(store: &Store, bck: &Bck, name: &str) -> Vec<u8> {
    let r = store.open_obj(bck, name).await.unwrap();
    match r.body {
        ObjBody::Small(b) => b,
        ObjBody::Mapped(b) => b.to_vec(),
        ObjBody::File(mut f) => {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut v).unwrap();
            v
        }
    }
}

/// Objects `p` and `p/child` live side by side whichever comes first
/// (`layout`): reads, versions, listing order, paging, deletes, mirrors.
#[tokio::test]
async fn names_that_are_also_directories() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(&[d.path().join("m1"), d.path().join("m2")]).unwrap();
    let bck = Bck::ais("b");
    // The file first, then a name below it (the file is nested).
    put(&store, &bck, "a", b"A1").await.unwrap();
    put(&store, &bck, "a/b", b"AB").await.unwrap();
    put(&store, &bck, "a/b/c", b"ABC").await.unwrap();
    // The directory first, then its own name.
    put(&store, &bck, "c/d", b"CD").await.unwrap();
    put(&store, &bck, "c", b"C1").await.unwrap();
    for n in ["a.x", "a0", "c.x"] {
        put(&store, &bck, n, n.as_bytes()).await.unwrap();
    }
    assert_eq!(get(&store, &bck, "a").await, b"A1");
    assert_eq!(get(&store, &bck, "a/b").await, b"AB");
    assert_eq!(get(&store, &bck, "a/b/c").await, b"ABC");
    assert_eq!(get(&store, &bck, "c").await, b"C1");
    assert_eq!(get(&store, &bck, "c/d").await, b"CD");
    // Versions continue through the nest.
    let a2 = put(&store, &bck, "a", b"A2").await.unwrap();
    assert_eq!(a2.version, 2);
    assert_eq!(put(&store, &bck, "c", b"C2").await.unwrap().version, 2);
    assert_eq!(get(&store, &bck, "a").await, b"A2");
    let info = store.head(&bck, "a").await.unwrap();
    assert_eq!(info.attrs.cksum_value, a2.cksum_value);
    store.verify(&bck, "a", &info.attrs).await.unwrap();
    let want = ["a", "a.x", "a/b", "a/b/c", "a0", "c", "c.x", "c/d"];
    assert_eq!(names(&store, &bck, "", "", 100).0, want);
    // Page by page, one name at a time: the held names come in order.
    let mut after = String::new();
    let mut paged = Vec::new();
    loop {
        let (page, done) = names(&store, &bck, "", &after, 1);
        paged.extend(page.clone());
        if done {
            break;
        }
        after = page.last().unwrap().clone();
    }
    assert_eq!(paged, want);
    assert_eq!(names(&store, &bck, "a/b", "", 100).0, ["a/b", "a/b/c"]);
    assert_eq!(names(&store, &bck, "c", "c", 100).0, ["c.x", "c/d"]);
    // Deleting one leaves the other.
    store.delete(&bck, "a").await.unwrap();
    assert!(matches!(
        store.head(&bck, "a").await,
        Err(StorageError::NotFound)
    ));
    assert_eq!(get(&store, &bck, "a/b").await, b"AB");
    store.delete(&bck, "c/d").await.unwrap();
    assert_eq!(get(&store, &bck, "c").await, b"C2");
    store.delete(&bck, "a/b").await.unwrap();
    assert_eq!(get(&store, &bck, "a/b/c").await, b"ABC");
    assert_eq!(
        names(&store, &bck, "", "", 100).0,
        ["a.x", "a/b/c", "a0", "c", "c.x"]
    );
    // Mirrored: every copy follows the layout, and heals from it.
    let mut w = store.begin_put_copies(&bck, "m", 2).await.unwrap();
    w.write(b"M").await.unwrap();
    w.commit(BTreeMap::new()).await.unwrap();
    let mut w = store.begin_put_copies(&bck, "m/n", 2).await.unwrap();
    w.write(b"MN").await.unwrap();
    w.commit(BTreeMap::new()).await.unwrap();
    std::fs::remove_file(store.obj_path(&bck, "m")).unwrap();
    assert_eq!(get(&store, &bck, "m").await, b"M");
    assert_eq!(get(&store, &bck, "m/n").await, b"MN");
    // The reserved component never reaches a listing as a name.
    assert!(!names(&store, &bck, "", "", 100)
        .0
        .iter()
        .any(|n| n.contains(layout::SELF)));
}

/// A reader of `p` sees it (old or new bytes) at every instant while
/// names below it are stored and `p` itself is rewritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nesting_is_atomic_for_readers() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(&[d.path().to_path_buf()]).unwrap();
    let bck = Bck::ais("b");
    for round in 0..20 {
        let p = format!("p{round}");
        put(&store, &bck, &p, b"old").await.unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (store, bck, p, stop) = (store.clone(), bck.clone(), p.clone(), stop.clone());
            tokio::spawn(async move {
                let mut reads = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || reads == 0 {
                    let body = get(&store, &bck, &p).await;
                    assert!(body == b"old" || body == b"new", "{body:?}");
                    reads += 1;
                    tokio::task::yield_now().await;
                }
            })
        };
        let writers: Vec<_> = (0..4)
            .map(|i| {
                let (store, bck, p) = (store.clone(), bck.clone(), p.clone());
                tokio::spawn(async move {
                    put(&store, &bck, &format!("{p}/c{i}"), b"child")
                        .await
                        .unwrap();
                    if i == 0 {
                        put(&store, &bck, &p, b"new").await.unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.await.unwrap();
        assert_eq!(get(&store, &bck, &p).await, b"new");
        let (listed, _) = names(&store, &bck, &p, "", 100);
        let mut want = vec![p.clone()];
        want.extend((0..4).map(|i| format!("{p}/c{i}")));
        assert_eq!(listed, want);
    }
    assert_eq!(
        std::fs::read_dir(d.path().join(WORK_DIR)).unwrap().count(),
        0,
        "nesting leaves nothing in the work area"
    );
}

#[tokio::test]
async fn listing_order_paging_prefix() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(&[d.path().join("m1"), d.path().join("m2")]).unwrap();
    let bck = Bck::ais("b");
    let mut all = vec![
        "a.c",
        "a/b",
        "a/c/d",
        "a0",
        "b",
        "train/0001.jpg",
        "train/0001.cls",
        "train/0002.jpg",
        "val/9.jpg",
        "z/z/z/z",
    ];
    for n in &all {
        put(&store, &bck, n, n.as_bytes()).await.unwrap();
    }
    all.sort();
    let (got, done) = names(&store, &bck, "", "", 100);
    assert_eq!(got, all);
    assert!(done);
    // Page through in steps of 3.
    let mut paged = Vec::new();
    let mut after = String::new();
    loop {
        let (page, done) = names(&store, &bck, "", &after, 3);
        assert!(page.len() <= 3);
        paged.extend(page.iter().cloned());
        if done {
            break;
        }
        after = page.last().unwrap().clone();
    }
    assert_eq!(paged, all);
    let (t, _) = names(&store, &bck, "train/", "", 100);
    assert_eq!(
        t,
        vec!["train/0001.cls", "train/0001.jpg", "train/0002.jpg"]
    );
    let (t, _) = names(&store, &bck, "train/0001", "train/0001.cls", 100);
    assert_eq!(t, vec!["train/0001.jpg"]);
    let (t, _) = names(&store, &bck, "a", "", 100);
    assert_eq!(t, vec!["a.c", "a/b", "a/c/d", "a0"]);
}

#[tokio::test]
async fn listing_skips_empty_dirs_beyond_limit() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(&[d.path().to_path_buf()]).unwrap();
    let bck = Bck::ais("b");
    for i in 0..20 {
        std::fs::create_dir_all(store.obj_path(&bck, &format!("e{i:02}/x"))).unwrap();
    }
    put(&store, &bck, "zz", b"1").await.unwrap();
    let (got, _) = names(&store, &bck, "", "", 2);
    assert_eq!(got, vec!["zz"]);
}

#[test]
fn orphaned_temp_files_are_removed_at_open() {
    let d = tempfile::tempdir().unwrap();
    Store::open(&[d.path().to_path_buf()]).unwrap();
    std::fs::write(d.path().join(WORK_DIR).join("put-orphan"), b"x").unwrap();
    Store::open(&[d.path().to_path_buf()]).unwrap();
    assert_eq!(
        std::fs::read_dir(d.path().join(WORK_DIR)).unwrap().count(),
        0
    );
}

#[tokio::test]
async fn a_full_page_is_not_the_end() {
    // One mountpath holding exactly a page and more: `done` must stay false
    // until the last name (a listing used to stop after the first full page).
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(&[d.path().to_path_buf()]).unwrap();
    let bck = Bck::ais("b");
    for i in 0..10 {
        put(&store, &bck, &format!("n{i}"), b"x").await.unwrap();
    }
    let (p1, done1) = names(&store, &bck, "", "", 5);
    assert_eq!((p1.len(), done1), (5, false));
    let (p2, done2) = names(&store, &bck, "", &p1[4], 5);
    assert_eq!((p2.len(), done2), (5, true));
    let (p3, done3) = names(&store, &bck, "", "", 10);
    assert_eq!((p3.len(), done3), (10, true));
}

#[tokio::test]
async fn a_moved_object_never_replaces_one_written_meanwhile() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(&[d.path().join("m1")]).unwrap();
    let bck = Bck::ais("b");
    // The move starts while the name is absent ...
    let mut moved = store.begin_put(&bck, "o").await.unwrap();
    moved.write(b"old bytes, version 7").await.unwrap();
    // ... a client's PUT lands first ...
    let newer = put(&store, &bck, "o", b"newer").await.unwrap();
    // ... so the move is dropped, its temp file with it.
    assert!(moved
        .commit_moved(BTreeMap::new(), 7)
        .await
        .unwrap()
        .is_none());
    let info = store.head(&bck, "o").await.unwrap();
    assert_eq!(info.attrs.cksum_value, newer.cksum_value);
    assert_eq!(info.attrs.version, newer.version);
    let work = d.path().join("m1").join(".ais-work");
    let temps = std::fs::read_dir(&work)
        .map(|r| r.filter_map(|e| e.ok()).count())
        .unwrap_or(0);
    assert_eq!(temps, 0, "temp files left in {}", work.display());
    // With the name absent, the move keeps its version.
    let mut moved = store.begin_put(&bck, "p").await.unwrap();
    moved.write(b"moved").await.unwrap();
    let a = moved
        .commit_moved(BTreeMap::new(), 7)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.version, 7);
}

#[tokio::test]
async fn a_put_larger_than_the_write_buffer_is_whole() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(&[d.path().join("m1")]).unwrap();
    let bck = Bck::ais("b");
    let data: Vec<u8> = (0..(5u32 << 19)).map(|i| (i % 251) as u8).collect();
    let mut w = store.begin_put(&bck, "big").await.unwrap();
    for c in data.chunks(65_536 + 17) {
        w.write(c).await.unwrap();
    }
    let a = w.commit(BTreeMap::new()).await.unwrap();
    assert_eq!(a.size, data.len() as u64);
    let got = std::fs::read(store.obj_path(&bck, "big")).unwrap();
    assert!(got == data, "stored bytes differ");
}

#[tokio::test]
async fn cached_metadata_never_hides_a_changed_file() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(&[d.path().join("m1")]).unwrap();
    let bck = Bck::ais("b");
    let a1 = put(&store, &bck, "o", &[7u8; 5000]).await.unwrap();
    // Twice: the second open is served from the metadata cache.
    for _ in 0..2 {
        let r = store.open_obj(&bck, "o").await.unwrap();
        assert_eq!(r.info.attrs, a1);
    }
    // A new version is a new file: its own metadata.
    let a2 = put(&store, &bck, "o", &[8u8; 6000]).await.unwrap();
    let r = store.open_obj(&bck, "o").await.unwrap();
    assert_eq!(
        (r.info.attrs.version, r.info.attrs.size),
        (a2.version, 6000)
    );
    // Truncated in place behind our back: a size error, cached or not.
    let path = store.obj_path(&bck, "o");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(100)
        .unwrap();
    assert!(matches!(
        store.open_obj(&bck, "o").await.map(|r| r.info.attrs.size),
        Err(StorageError::SizeMismatch { .. })
    ));
}

/// Verification keyed by file identity: a file found good is not re-read,
/// a write to it (any byte) makes it checked again; a reader whose file
/// moved away after it was opened is checked on its own bytes.
#[tokio::test]
async fn verified_reads_follow_the_file_and_the_open_reader() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(&[d.path().join("m1")]).unwrap();
    let bck = Bck::ais("b");
    let big = vec![5u8; 3 << 20];
    for (name, data) in [("small", b"abc".to_vec()), ("big", big.clone())] {
        let a = put(&store, &bck, name, &data).await.unwrap();
        assert_eq!(store.verify(&bck, name, &a).await.unwrap(), Verified::Ok);
        let path = store.obj_path(&bck, name);
        // Moved away after the reader opened it: the path is gone, the
        // reader's own bytes are checked.
        let r = store.open_obj(&bck, name).await.unwrap();
        let moved = d.path().join(format!("moved-{name}"));
        std::fs::rename(&path, &moved).unwrap();
        assert!(store.verify(&bck, name, &a).await.is_err());
        store.verify_reader(&r).await.unwrap();
        std::fs::rename(&moved, &path).unwrap();
        // A byte changed in place after a good read: caught.
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::os::unix::fs::FileExt::write_at(&f, b"Z", 1).unwrap();
        drop(f);
        assert!(matches!(
            store.verify(&bck, name, &a).await,
            Err(StorageError::Corrupt { .. })
        ));
    }
    // A reader of a damaged file fails its own check too.
    let a = put(&store, &bck, "f", &big).await.unwrap();
    let path = store.obj_path(&bck, "f");
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, b"Z", 2 << 20).unwrap();
    drop(f);
    let r = store.open_obj(&bck, "f").await.unwrap();
    assert_eq!(r.info.attrs.cksum_value, a.cksum_value);
    assert!(matches!(
        store.verify_reader(&r).await,
        Err(StorageError::Corrupt { .. })
    ));
}

/// While names below `p` nest it, PUTs of `p` keep their order (versions
/// 1, 2, 3, ... with the last PUT's bytes) and a reader of `p`'s attributes
/// never sees it missing nor its version go back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn versions_survive_nesting() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(&[d.path().to_path_buf()]).unwrap();
    let bck = Bck::ais("b");
    for round in 0..10 {
        let p = format!("v{round}");
        put(&store, &bck, &p, b"n-first").await.unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (store, bck, p, stop) = (store.clone(), bck.clone(), p.clone(), stop.clone());
            tokio::spawn(async move {
                let mut last = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let v = store.head(&bck, &p).await.unwrap().attrs.version;
                    assert!(v >= last, "version went from {last} to {v}");
                    last = v;
                    tokio::task::yield_now().await;
                }
            })
        };
        let mut tasks = Vec::new();
        {
            let (store, bck, p) = (store.clone(), bck.clone(), p.clone());
            tasks.push(tokio::spawn(async move {
                for k in 0..5 {
                    put(&store, &bck, &p, format!("n{k}").as_bytes())
                        .await
                        .unwrap();
                }
            }));
        }
        for i in 0..4 {
            let (store, bck, p) = (store.clone(), bck.clone(), p.clone());
            tasks.push(tokio::spawn(async move {
                put(&store, &bck, &format!("{p}/c{i}"), b"child")
                    .await
                    .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.await.unwrap();
        assert_eq!(store.head(&bck, &p).await.unwrap().attrs.version, 6);
        assert_eq!(get(&store, &bck, &p).await, b"n4");
    }
}

/// One level below the prefix: its objects and its directories, each once,
/// page after page (the continuation token may be a directory).
#[tokio::test]
async fn shallow_listing_names_directories_once() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::open(&[d.path().join("m1"), d.path().join("m2")]).unwrap();
    let bck = Bck::ais("b");
    for n in [
        "a/1",
        "a/2",
        "a/sub/x",
        "a/sub/y/z",
        "a/sub",
        "a/t/q",
        "b",
        "c/d",
    ] {
        put(&store, &bck, n, n.as_bytes()).await.unwrap();
    }
    let shallow = |prefix: &str, after: &str, limit: usize, dirs: bool| {
        let mut p = list_objects(
            &store,
            &bck,
            prefix,
            after,
            limit,
            &PropSet::default(),
            "t[x]",
            Some(dirs),
        )
        .unwrap();
        p.entries.sort_by(|a, b| a.name.cmp(&b.name));
        (
            p.entries
                .iter()
                .map(|e| (e.name.clone(), e.flags & ais_core::api::ENTRY_FLAG_DIR != 0))
                .collect::<Vec<_>>(),
            p.done,
        )
    };
    let (top, _) = shallow("", "", 100, true);
    assert_eq!(
        top,
        [
            ("a/".into(), true),
            ("b".into(), false),
            ("c/".into(), true)
        ]
    );
    let (a, _) = shallow("a/", "", 100, true);
    let names: Vec<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a/1", "a/2", "a/sub", "a/sub/", "a/t/"]);
    let (a, _) = shallow("a/", "", 100, false);
    let names: Vec<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a/1", "a/2", "a/sub"]);
    // A page at a time: every entry once.
    let mut after = String::new();
    let mut paged = Vec::new();
    loop {
        let (page, done) = shallow("a/", &after, 1, true);
        paged.extend(page.iter().map(|(n, _)| n.clone()));
        if done || page.is_empty() {
            break;
        }
        after = page.last().unwrap().0.clone();
    }
    assert_eq!(paged, ["a/1", "a/2", "a/sub", "a/sub/", "a/t/"]);
    // A prefix inside a level: the names that start with it.
    let (s, _) = shallow("a/s", "", 100, true);
    let names: Vec<&str> = s.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a/sub", "a/sub/"]);
}
