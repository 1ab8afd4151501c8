//! REST API conformance against a real 1-proxy/3-target cluster, through
//! raw HTTP (curl-style, redirects checked by hand): exact status codes,
//! headers, redirect targets, wire keys, JSON and msgpack spellings. The
//! object-store behaviour itself (buckets, PUT/GET/HEAD/DELETE, ranges,
//! listing completeness and paging, overwrites, names, sizes) is covered
//! over several cluster shapes by `scenarios.rs`.

use ais_client::Client;
use ais_testkit::{raw_http, raw_http_full, Cluster};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn header<'a>(h: &'a [(String, String)], k: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

#[test]
fn cluster_info_redirects_easy_urls_msgpack() {
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
    // The address the proxy listens on (loopback, or its own in multi-host mode).
    assert_eq!(
        smap["proxy_si"]["public_net"]["direct_url"].as_str(),
        Some(url.as_str())
    );
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
    // No buckets: exactly an empty JSON array.
    let (st, body) = raw_http(&url, "GET", "/v1/buckets?provider=ais", &[], b"").unwrap();
    assert_eq!((st, body.as_slice()), (200, b"[]".as_slice()));

    // --- data: one 300 000-byte object, and 40 small ones under even/ and odd/
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    rt.block_on(async {
        let cl = Client::new(&url);
        cl.create_bucket("bck1").await.unwrap();
        cl.create_bucket("bck2").await.unwrap();
        cl.put_bytes("bck1", "dir/sub/obj.bin", data.clone())
            .await
            .unwrap();
        for i in 0..40 {
            let name = format!("{}/{i:05}.dat", if i % 2 == 0 { "even" } else { "odd" });
            cl.put_bytes("bck2", &name, vec![b'x'; i % 7])
                .await
                .unwrap();
        }
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
    assert_eq!(v["entries"].as_array().unwrap().len(), 40);
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
    assert_eq!(page.entries.len(), 20);
    assert_eq!(page.entries[0].n, "odd/00001.dat");
    assert_eq!(page.entries[0].s, 1);
}

fn rmp_serde_decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> T {
    rmp_serde::from_slice(b).unwrap()
}
