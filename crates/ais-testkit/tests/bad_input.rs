//! Bad input: every case gets AIStore's JSON error shape with the right status
//! and a message a human understands; nothing is written; no node panics.

use ais_testkit::{raw_http, raw_http_full, Cluster};
use serde_json::Value;

fn err(url: &str, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let (st, body) = raw_http(
        url,
        method,
        path,
        &[("Content-Type", "application/json")],
        body,
    )
    .unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
        panic!(
            "{method} {path}: not JSON: {}",
            String::from_utf8_lossy(&body)
        )
    });
    assert_eq!(v["status"].as_u64(), Some(st as u64), "{v}");
    assert_eq!(v["method"], method);
    assert!(v["node"].as_str().unwrap().starts_with(['p', 't']), "{v}");
    (st, v)
}

fn msg(v: &Value) -> &str {
    v["message"].as_str().unwrap()
}

#[test]
fn bad_input_gets_clear_errors_and_writes_nothing() {
    let c = Cluster::start(3).unwrap();
    let url = c.url().to_string();
    let create = br#"{"action":"create-bck"}"#;

    // Invalid bucket names.
    for (name, why) in [
        ("bad%20name", "may contain only"),
        (".hidden", "must not start with '.'"),
        ("a..b", "\"..\""),
        (&"x".repeat(65), "at most 64"),
    ] {
        let (st, v) = err(&url, "POST", &format!("/v1/buckets/{name}"), create);
        assert_eq!(st, 400, "{name}");
        assert!(
            msg(&v).contains("bucket name") && msg(&v).contains(why),
            "{name}: {v}"
        );
    }
    assert_eq!(
        raw_http(&url, "POST", "/v1/buckets/good", &[], create)
            .unwrap()
            .0,
        200
    );

    // Path traversal and malformed object names, sent byte-exact.
    for path in [
        "/v1/objects/good/../../etc/passwd",
        "/v1/objects/good/a/../../x",
        "/v1/objects/good/%2e%2e/x",
        "/v1/objects/good/a/./b",
        "/v1/objects/good/a//b",
        "/v1/objects/good/dir/",
        "/v1/objects/good/a%00b",
    ] {
        for m in ["PUT", "GET"] {
            let (st, v) = err(&url, m, path, b"payload");
            assert_eq!(st, 400, "{m} {path}: {v}");
            assert!(msg(&v).contains("object name"), "{v}");
        }
        // Straight to a target as well: the target validates on its own.
        let (st, _) = err(&c.targets[0].url, "PUT", path, b"payload");
        assert_eq!(st, 400, "{path}");
    }
    let long = format!("/v1/objects/good/{}", "n".repeat(300));
    assert_eq!(err(&url, "PUT", &long, b"x").0, 400);
    let (st, v) = err(&url, "GET", "/v1/objects/good", b"");
    assert_eq!(st, 400);
    assert!(msg(&v).contains("missing object name"), "{v}");

    // Missing bucket / object: 404 with the names the SDK's regexes look for.
    let (st, v) = err(&url, "GET", "/v1/objects/nobucket/obj", b"");
    assert_eq!(st, 404);
    assert_eq!(msg(&v), "bucket \"ais://nobucket\" does not exist");
    assert_eq!(v["tcode"], "ErrBckNotFound");
    let (st, v) = err(&url, "GET", "/v1/buckets/nobucket", b"");
    assert_eq!(st, 404);
    assert!(msg(&v).contains("ais://nobucket"));
    let (st, h, body) =
        raw_http_full(&url, "GET", "/v1/objects/good/missing.bin", &[], b"").unwrap();
    assert_eq!(st, 301);
    let loc = h.iter().find(|(k, _)| k == "location").unwrap().1.clone();
    let t = c.targets.iter().find(|t| loc.starts_with(&t.url)).unwrap();
    assert!(body.is_empty());
    let (st, v) = err(&t.url, "GET", &loc[t.url.len()..], b"");
    assert_eq!(st, 404);
    assert!(
        msg(&v).ends_with("ais://good/missing.bin does not exist"),
        "{v}"
    );
    assert_eq!(v["tcode"], "ErrNotFound");
    // HEAD errors go into Hdr-Error, with an empty body.
    let (st, h, body) = raw_http_full(&url, "HEAD", "/v1/buckets/nobucket", &[], b"").unwrap();
    assert_eq!(st, 404);
    assert!(body.is_empty());
    let hdr = &h
        .iter()
        .find(|(k, _)| k == "hdr-error")
        .expect("Hdr-Error")
        .1;
    let v: Value = serde_json::from_str(hdr).unwrap();
    assert!(msg(&v).contains("ais://nobucket"));

    // Malformed ActMsg JSON and unknown actions.
    for body in [&b"{not json"[..], b"[1,2]", b"{\"name\":\"x\"}"] {
        let (st, v) = err(&url, "POST", "/v1/buckets/good2", body);
        assert_eq!(st, 400, "{v}");
        assert!(msg(&v).contains("malformed JSON"), "{v}");
    }
    let (st, v) = err(
        &url,
        "POST",
        "/v1/buckets/good",
        br#"{"action":"explode-bck"}"#,
    );
    assert_eq!(st, 400);
    assert!(msg(&v).contains("invalid action \"explode-bck\""), "{v}");
    let (st, v) = err(
        &url,
        "GET",
        "/v1/buckets/good",
        br#"{"action":"list","value":{"pagesize":"many"}}"#,
    );
    assert_eq!(st, 400);
    assert!(msg(&v).contains("list-objects"), "{v}");
    let (st, v) = err(
        &url,
        "GET",
        "/v1/buckets/good",
        br#"{"action":"list","value":{"props":"name,colour"}}"#,
    );
    assert_eq!(st, 400);
    assert!(msg(&v).contains("invalid property \"colour\""), "{v}");
    assert_eq!(
        err(
            &url,
            "PATCH",
            "/v1/buckets/good",
            br#"{"action":"set-bprops","value":{"checksum":{"type":"crc99"}}}"#
        )
        .0,
        400
    );
    assert_eq!(err(&url, "GET", "/v1/nonsense", b"").0, 404);
    // gs:// and az:// with no store configured on the node: 501, saying what to set.
    let (st, v) = err(&url, "POST", "/v1/buckets/nocloud?provider=gcp", create);
    assert_eq!(st, 501, "{v}");
    assert!(msg(&v).contains("GOOGLE_APPLICATION_CREDENTIALS"), "{v}");
    let (st, v) = err(&url, "POST", "/v1/buckets/nocloud?provider=az", create);
    assert_eq!(st, 501, "{v}");
    assert!(msg(&v).contains("AZURE_STORAGE_ACCOUNT"), "{v}");
    assert_eq!(
        err(&url, "POST", "/v1/buckets/good?provider=ht", create).0,
        501
    );
    // s3:// buckets: a name taken by an ais:// bucket, and no backend configured.
    let (st, v) = err(&url, "POST", "/v1/buckets/good?provider=s3", create);
    assert_eq!(st, 409, "{v}");
    assert!(msg(&v).contains("unique across providers"), "{v}");
    let (st, v) = err(&url, "POST", "/v1/buckets/fresh?provider=aws", create);
    assert_eq!(st, 400, "{v}");
    assert!(msg(&v).contains("no S3 endpoint configured"), "{v}");

    // PUT with a body to a missing bucket: 404 at the proxy and at a target, nothing written.
    let (st, v) = err(&url, "PUT", "/v1/objects/ghost/obj", b"some bytes");
    assert_eq!(st, 404);
    assert!(msg(&v).contains("ais://ghost"));
    for t in &c.targets {
        let (st, _) = err(&t.url, "PUT", "/v1/objects/ghost/obj", b"some bytes");
        assert_eq!(st, 404);
    }
    // A PUT whose body is shorter than its Content-Length stores nothing.
    let (st, h, _) = raw_http_full(&url, "PUT", "/v1/objects/good/short", &[], b"").unwrap();
    assert_eq!(st, 307);
    let loc = h.iter().find(|(k, _)| k == "location").unwrap().1.clone();
    let owner = c.targets.iter().find(|t| loc.starts_with(&t.url)).unwrap();
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(owner.url.trim_start_matches("http://")).unwrap();
        write!(
            s,
            "PUT {} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly-a-few-bytes",
            &loc[owner.url.len()..]
        )
        .unwrap();
        drop(s); // client goes away mid-body
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (st, body) = raw_http(&url, "GET", "/v1/buckets/good", &[], b"").unwrap();
    assert_eq!(st, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["entries"].as_array().map(|a| a.len()),
        Some(0),
        "nothing listed: {v}"
    );
    for t in &c.targets {
        let files = walk_files(&t.data);
        assert!(
            !files.iter().any(|f| f.contains("/@ais/ghost")
                || f.contains("/@ais/good/")
                || f.contains(".ais-work/put-")),
            "unexpected files on {}: {files:?}",
            t.url
        );
    }
    for n in std::iter::once(&c.proxy).chain(c.targets.iter()) {
        assert!(!n.log().contains("panicked"), "{}", n.log());
    }
}

fn walk_files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk_files(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}
