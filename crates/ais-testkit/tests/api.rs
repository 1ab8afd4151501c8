//! REST API conformance against a real 1-proxy/3-target cluster, through the
//! Rust client and through raw HTTP (curl-style, redirects checked by hand).

use ais_client::{Client, ClientError};
use ais_core::api::LsoMsg;
use ais_testkit::{raw_http, raw_http_full, Cluster};
use std::collections::BTreeSet;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn status(e: ClientError) -> u16 {
    e.status()
        .unwrap_or_else(|| panic!("expected HTTP error, got {e}"))
}

fn header<'a>(h: &'a [(String, String)], k: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

#[test]
fn cluster_buckets_objects_listing() {
    let c = Cluster::start(3).unwrap();
    let url = c.url().to_string();
    let rt = rt();
    // --- cluster info
    let smap = c.smap().unwrap();
    assert_eq!(smap["tmap"].as_object().unwrap().len(), 3);
    assert_eq!(
        smap["version"].as_str().map(|v| v.parse::<u64>().is_ok()),
        Some(true)
    );
    assert!(smap["proxy_si"]["public_net"]["direct_url"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));
    let (st, body) = raw_http(&url, "GET", "/v1/cluster?what=smap", &[], b"").unwrap();
    assert_eq!(st, 200);
    assert!(String::from_utf8_lossy(&body).contains("tmap"));
    assert_eq!(
        raw_http(&url, "GET", "/v1/health", &[], b"").unwrap().0,
        200
    );
    for t in &c.targets {
        assert_eq!(
            raw_http(&t.url, "GET", "/v1/health", &[], b"").unwrap().0,
            200
        );
    }

    rt.block_on(async {
        let cl = Client::new(&url);
        // --- buckets
        assert!(cl.list_buckets().await.unwrap().is_empty());
        let (st, body) = raw_http(&url, "GET", "/v1/buckets?provider=ais", &[], b"").unwrap();
        assert_eq!((st, body.as_slice()), (200, b"[]".as_slice()));
        cl.create_bucket("bck1").await.unwrap();
        assert_eq!(status(cl.create_bucket("bck1").await.unwrap_err()), 409);
        let names: Vec<String> = cl
            .list_buckets()
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert_eq!(names, vec!["bck1"]);
        let props = cl.head_bucket("bck1").await.unwrap();
        assert_eq!(props.provider, "ais");
        assert_eq!(props.checksum.kind, "xxhash");
        let e = cl.head_bucket("nope").await.unwrap_err();
        assert_eq!(status(e), 404);

        // --- objects via client
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let p = cl
            .put_bytes("bck1", "dir/sub/obj.bin", data.clone())
            .await
            .unwrap();
        assert_eq!(p.cksum_type, "xxhash");
        assert_eq!(
            p.cksum_value,
            format!("{:016x}", xxhash_rust::xxh64::xxh64(&data, 0))
        );
        assert_eq!(
            cl.get("bck1", "dir/sub/obj.bin").await.unwrap().as_ref(),
            data.as_slice()
        );
        let h = cl.head_object("bck1", "dir/sub/obj.bin").await.unwrap();
        assert_eq!(h.size, data.len() as u64);
        assert_eq!(h.version, "1");
        assert!(h.atime.parse::<i64>().unwrap() > 1_600_000_000_000_000_000);
        cl.put_bytes("bck1", "dir/sub/obj.bin", data.clone())
            .await
            .unwrap();
        assert_eq!(
            cl.head_object("bck1", "dir/sub/obj.bin")
                .await
                .unwrap()
                .version,
            "2"
        );
        // Names with spaces and unicode survive encoding.
        cl.put_bytes("bck1", "a b/ü %x.txt", "x").await.unwrap();
        assert_eq!(cl.get("bck1", "a b/ü %x.txt").await.unwrap().as_ref(), b"x");
        // Range reads.
        let r = cl
            .get_stream("bck1", "dir/sub/obj.bin", &[], Some("bytes=10-19"))
            .await
            .unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes 10-19/{}", data.len())
        );
        assert_eq!(r.bytes().await.unwrap().as_ref(), &data[10..20]);
        let r = cl
            .get_stream("bck1", "dir/sub/obj.bin", &[], Some("bytes=-5"))
            .await
            .unwrap();
        assert_eq!(r.bytes().await.unwrap().as_ref(), &data[data.len() - 5..]);
        let e = cl
            .get_stream("bck1", "dir/sub/obj.bin", &[], Some("bytes=999999999-"))
            .await
            .unwrap_err();
        assert_eq!(status(e), 416);
        // Delete.
        cl.delete_object("bck1", "a b/ü %x.txt").await.unwrap();
        assert_eq!(
            status(cl.get("bck1", "a b/ü %x.txt").await.unwrap_err()),
            404
        );
        assert_eq!(
            status(cl.delete_object("bck1", "a b/ü %x.txt").await.unwrap_err()),
            404
        );

        // --- listing: 500 objects, paging, prefix, props
        let mut want = BTreeSet::new();
        let futs = (0..500).map(|i| {
            let cl = cl.clone();
            let name = format!("{}/{i:05}.dat", if i % 2 == 0 { "even" } else { "odd" });
            async move {
                cl.put_bytes("bck2", &name, vec![b'x'; i % 7])
                    .await
                    .map(|_| name)
            }
        });
        cl.create_bucket("bck2").await.unwrap();
        for n in futures::future::join_all(futs).await {
            want.insert(n.unwrap());
        }
        let mut msg = LsoMsg {
            pagesize: 37,
            props: "name,size".into(),
            ..Default::default()
        };
        let mut got = Vec::new();
        let mut uuid = String::new();
        loop {
            let page = cl.list_page("bck2", &msg).await.unwrap();
            assert!(page.entries.len() <= 37);
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
        let names: Vec<String> = got.iter().map(|g| g.0.clone()).collect();
        assert_eq!(
            names,
            want.iter().cloned().collect::<Vec<_>>(),
            "sorted, complete, no duplicates"
        );
        for (n, s) in &got {
            let i: usize = n[n.len() - 9..n.len() - 4].parse().unwrap();
            assert_eq!(*s, Some((i % 7) as u64), "{n}");
        }
        let odd = cl.list_all("bck2", "odd/", "name").await.unwrap();
        assert_eq!(odd.len(), 250);
        assert!(odd
            .iter()
            .all(|e| e.name.starts_with("odd/") && e.size.is_none()));
        let detailed = cl
            .list_all(
                "bck2",
                "even/00000",
                "name,size,checksum,version,atime,location",
            )
            .await
            .unwrap();
        assert_eq!(detailed.len(), 1);
        assert_eq!(detailed[0].version, "1");
        assert!(!detailed[0].checksum.is_empty() && !detailed[0].atime.is_empty());
        assert!(detailed[0].location.starts_with("t["));
        // Objects from bck1 never leak into bck2.
        assert!(cl.list_all("bck2", "dir", "").await.unwrap().is_empty());
    });

    // --- raw HTTP: redirects as the contract says
    let (st, h, _) = raw_http_full(
        &url,
        "GET",
        "/v1/objects/bck1/dir/sub/obj.bin?provider=ais",
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(st, 301);
    let loc = header(&h, "location").unwrap();
    let owner = c
        .targets
        .iter()
        .find(|t| loc.starts_with(&t.url))
        .expect("redirect to a target");
    assert!(
        loc.contains("/v1/objects/bck1/dir/sub/obj.bin?provider=ais&pid="),
        "{loc}"
    );
    assert!(loc.contains("&utm="), "{loc}");
    for m in ["PUT", "HEAD", "DELETE"] {
        let (st, h, _) = raw_http_full(&url, m, "/v1/objects/bck1/x", &[], b"").unwrap();
        assert_eq!(st, 307, "{m}");
        assert!(header(&h, "location").is_some());
    }
    // Follow the redirect like `curl -L`.
    let path = &loc[owner.url.len()..];
    let (st, h, body) = raw_http_full(&owner.url, "GET", path, &[], b"").unwrap();
    assert_eq!(st, 200);
    assert_eq!(body.len(), 300_000);
    assert_eq!(header(&h, "content-type"), Some("application/octet-stream"));
    assert!(header(&h, "ais-checksum-value").is_some());
    // PUT straight to a non-owner target is forwarded to the owner, never stored in the wrong place.
    let other = c.targets.iter().find(|t| t.url != owner.url).unwrap();
    let (st, h, _) = raw_http_full(
        &other.url,
        "PUT",
        "/v1/objects/bck1/dir/sub/obj.bin",
        &[],
        b"new",
    )
    .unwrap();
    assert_eq!(st, 307);
    assert!(header(&h, "location").unwrap().starts_with(&owner.url));
    // HEAD via V1 (no props) reports size even without a body.
    let (st, h, body) = raw_http_full(
        &owner.url,
        "HEAD",
        "/v1/objects/bck1/dir/sub/obj.bin",
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(st, 200);
    assert!(body.is_empty());
    assert_eq!(header(&h, "content-length"), Some("300000"));
    assert_eq!(header(&h, "ais-present"), Some("true"));
    assert_eq!(header(&h, "ais-name"), Some("dir/sub/obj.bin"));

    // Easy URLs.
    let (st, h, _) = raw_http_full(&url, "GET", "/ais/bck1/dir/sub/obj.bin", &[], b"").unwrap();
    assert_eq!(st, 301);
    let loc = header(&h, "location").unwrap().to_string();
    let t = c.targets.iter().find(|t| loc.starts_with(&t.url)).unwrap();
    let (st, body) = raw_http(&t.url, "GET", &loc[t.url.len()..], &[], b"").unwrap();
    assert_eq!((st, body.len()), (200, 300_000));
    let (st, body) = raw_http(&url, "GET", "/ais/bck2", &[], b"").unwrap();
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["entries"].as_array().unwrap().len(), 500);
    assert!(
        v["entries"][0]["size"].is_string(),
        "JSON sizes are strings: {}",
        v["entries"][0]
    );
    let (st, body) = raw_http(&url, "GET", "/ais/", &[], b"").unwrap();
    assert_eq!(st, 200);
    assert!(String::from_utf8_lossy(&body).contains("bck2"));

    // msgpack listing for the SDK: exact content type and keys.
    let lso = br#"{"action":"list","name":"","value":{"prefix":"odd/","props":"name,size","pagesize":0,"uuid":"","continuation_token":"","flags":"0","target":""}}"#;
    let (st, h, body) = raw_http_full(
        &url,
        "GET",
        "/v1/buckets/bck2?provider=ais",
        &[
            ("Accept", "application/msgpack"),
            ("Content-Type", "application/json"),
        ],
        lso,
    )
    .unwrap();
    assert_eq!(st, 200);
    assert_eq!(header(&h, "content-type"), Some("application/msgpack"));
    #[derive(serde::Deserialize)]
    struct Page {
        #[serde(rename = "UUID")]
        uuid: String,
        #[serde(rename = "ContinuationToken")]
        token: String,
        #[serde(rename = "Entries")]
        entries: Vec<Ent>,
        #[serde(rename = "Flags")]
        _flags: u32,
    }
    #[derive(serde::Deserialize)]
    struct Ent {
        n: String,
        s: u64,
    }
    let page: Page = rmp_serde_decode(&body);
    assert!(!page.uuid.is_empty());
    assert_eq!(page.token, "");
    assert_eq!(page.entries.len(), 250);
    assert_eq!(page.entries[0].n, "odd/00001.dat");
    assert_eq!(page.entries[0].s, 1);

    // Destroy: gone from listings and from disk.
    rt.block_on(async {
        let cl = Client::new(&url);
        cl.destroy_bucket("bck2").await.unwrap();
        assert_eq!(status(cl.destroy_bucket("bck2").await.unwrap_err()), 404);
        assert_eq!(status(cl.list_all("bck2", "", "").await.unwrap_err()), 404);
        cl.create_bucket("bck2").await.unwrap();
        assert!(
            cl.list_all("bck2", "", "").await.unwrap().is_empty(),
            "a re-created bucket starts empty"
        );
    });
    for t in &c.targets {
        assert!(!t.log().contains("panicked"), "{}", t.log());
    }
}

fn rmp_serde_decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> T {
    rmp_serde::from_slice(b).unwrap()
}

#[test]
fn listing_pages_when_one_target_holds_everything() {
    // A single target returns exactly `pagesize` names per page: the proxy must
    // not mistake a full page for the end (regression: listings stopped early).
    let c = Cluster::start(1).unwrap();
    let rt = rt();
    rt.block_on(async {
        let cl = Client::new(c.url());
        cl.create_bucket("one").await.unwrap();
        for i in 0..120 {
            cl.put_bytes("one", &format!("o{i:03}"), "x").await.unwrap();
        }
        let mut msg = LsoMsg {
            pagesize: 40,
            ..Default::default()
        };
        let mut n = 0;
        let mut pages = 0;
        loop {
            let page = cl.list_page("one", &msg).await.unwrap();
            n += page.entries.len();
            pages += 1;
            if page.continuation_token.is_empty() {
                break;
            }
            msg.uuid = page.uuid;
            msg.continuation_token = page.continuation_token;
        }
        assert_eq!(n, 120);
        assert!((3..=4).contains(&pages), "{pages} pages");
    });
}
