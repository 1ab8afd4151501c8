//! The S3 front door against a real cluster, at the socket: clients that
//! hang up mid-PUT (plain, aws-chunked, a multipart part) leave no object
//! and no temp file on any target, whichever node they reached; a multipart
//! upload survives a restart of the target that holds it; bad input gets
//! S3's XML errors and no node panics (the harness scans the logs).

use ais_testkit::{raw_http, Cluster, Opts};
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

fn hostport(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

/// Files under every target's mountpath `dir` whose name starts with `pfx`
/// (one level of subdirectories included).
fn files(c: &Cluster, dir: &str, pfx: &str) -> usize {
    let mut n = 0;
    for t in &c.targets {
        let root = t.data.join("mp1").join(dir);
        let Ok(rd) = std::fs::read_dir(&root) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with(pfx) {
                n += 1;
            }
            if e.path().is_dir() {
                if let Ok(sub) = std::fs::read_dir(e.path()) {
                    n += sub
                        .flatten()
                        .filter(|f| f.file_name().to_string_lossy().starts_with(pfx))
                        .count();
                }
            }
        }
    }
    n
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(secs) {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out waiting for {what}");
}

/// Sends `head` and the first `sent` body bytes, waits until the upload
/// reached a target (a temp file of kind `dir`/`pfx` exists), then hangs up.
fn hang_up(c: &Cluster, url: &str, head: &str, sent: usize, dir: &str, pfx: &str) {
    let before = files(c, dir, pfx);
    let mut s = TcpStream::connect(hostport(url)).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&vec![b'z'; sent]).unwrap();
    wait_for("the upload to reach its target", 10, || {
        files(c, dir, pfx) > before
    });
    drop(s);
    wait_for("the temp file to go", 10, || files(c, dir, pfx) == before);
}

/// Restarts the target that holds upload `id` (its id names it).
fn restart_holder(c: &mut Cluster, id: &str) {
    let holder = c
        .targets
        .iter()
        .position(|t| id.ends_with(&format!("_{}", t.id)))
        .expect("the upload id names a target");
    c.restart_target(holder).unwrap();
}

fn upload_id(xml: &[u8]) -> String {
    let s = String::from_utf8_lossy(xml);
    let a = s.find("<UploadId>").unwrap() + "<UploadId>".len();
    let b = s.find("</UploadId>").unwrap();
    s[a..b].to_string()
}

fn code(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    match (s.find("<Code>"), s.find("</Code>")) {
        (Some(a), Some(b)) => s[a + 6..b].to_string(),
        _ => panic!("not an S3 error: {s}"),
    }
}

#[test]
fn clients_hanging_up_mid_put_leave_nothing() {
    let c = Cluster::start(3).unwrap();
    let url = c.url().to_string();
    assert_eq!(raw_http(&url, "PUT", "/s3/hang", &[], b"").unwrap().0, 200);
    // Through the proxy and through each target (owner or not).
    let mut fronts = vec![url.clone()];
    fronts.extend(c.targets.iter().map(|t| t.url.clone()));
    for (i, front) in fronts.iter().enumerate() {
        let key = format!("plain-{i}");
        let head = format!(
            "PUT /s3/hang/{key} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            64 * MIB
        );
        hang_up(&c, front, &head, 2 * MIB, ".ais-work", "put-");
        let (st, _) = raw_http(front, "HEAD", &format!("/s3/hang/{key}"), &[], b"").unwrap();
        assert_eq!(st, 404, "{key} must not exist");
        // aws-chunked (as botocore frames it, by Content-Length): one whole
        // 1 MiB chunk, then part of the next.
        let key = format!("chunked-{i}");
        let head = format!(
            "PUT /s3/hang/{key} HTTP/1.1\r\nHost: x\r\nContent-Encoding: aws-chunked\r\n\
             x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\n\
             x-amz-decoded-content-length: {}\r\nContent-Length: {}\r\n\r\n",
            16 * MIB,
            16 * (MIB + 12) + 5
        );
        let mut s = TcpStream::connect(hostport(front)).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        let mut body = b"100000\r\n".to_vec();
        body.extend(vec![b'q'; MIB]);
        body.extend(b"\r\n100000\r\n");
        body.extend(vec![b'q'; 4096]);
        s.write_all(&body).unwrap();
        wait_for("the chunked upload to reach its target", 10, || {
            files(&c, ".ais-work", "put-") > 0
        });
        drop(s);
        wait_for("the temp file to go", 10, || {
            files(&c, ".ais-work", "put-") == 0
        });
        let (st, _) = raw_http(front, "HEAD", &format!("/s3/hang/{key}"), &[], b"").unwrap();
        assert_eq!(st, 404, "{key} must not exist");
    }
    // A multipart part cut short: no part, no data file; Abort removes the upload.
    let (st, body) = raw_http(&url, "POST", "/s3/hang/mp?uploads", &[], b"").unwrap();
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let id = upload_id(&body);
    let head = format!(
        "PUT /s3/hang/mp?partNumber=1&uploadId={id} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        32 * MIB
    );
    hang_up(&c, &url, &head, 2 * MIB, ".ais-s3-mpu", "data-");
    let (st, body) =
        raw_http(&url, "GET", &format!("/s3/hang/mp?uploadId={id}"), &[], b"").unwrap();
    assert_eq!(st, 200);
    assert!(!String::from_utf8_lossy(&body).contains("<Part>"));
    assert_eq!(files(&c, ".ais-s3-mpu", "upload.json"), 1);
    let (st, _) = raw_http(
        &url,
        "DELETE",
        &format!("/s3/hang/mp?uploadId={id}"),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(st, 204);
    assert_eq!(files(&c, ".ais-s3-mpu", "upload.json"), 0);
    let (st, body) = raw_http(&url, "GET", "/s3/hang?list-type=2", &[], b"").unwrap();
    assert_eq!(st, 200);
    assert!(String::from_utf8_lossy(&body).contains("<KeyCount>0</KeyCount>"));
}

#[test]
fn multipart_upload_survives_a_restart_of_its_target() {
    let mut c = Cluster::start(3).unwrap();
    let url = c.url().to_string();
    assert_eq!(raw_http(&url, "PUT", "/s3/dur", &[], b"").unwrap().0, 200);
    let (st, body) = raw_http(&url, "POST", "/s3/dur/big?uploads", &[], b"").unwrap();
    assert_eq!(st, 200);
    let id = upload_id(&body);
    let p1: Vec<u8> = (0..5 * MIB).map(|i| (i % 251) as u8).collect();
    let (st, _) = raw_http(
        &url,
        "PUT",
        &format!("/s3/dur/big?partNumber=1&uploadId={id}"),
        &[],
        &p1,
    )
    .unwrap();
    assert_eq!(st, 200);
    restart_holder(&mut c, &id);
    c.wait_targets(3).unwrap();
    let (st, res) = raw_http(
        &url,
        "PUT",
        &format!("/s3/dur/big?partNumber=2&uploadId={id}"),
        &[],
        b"the end",
    )
    .unwrap();
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&res));
    let (_, parts) =
        raw_http(&url, "GET", &format!("/s3/dur/big?uploadId={id}"), &[], b"").unwrap();
    let parts = String::from_utf8_lossy(&parts).to_string();
    let etags: Vec<&str> = parts
        .split("<ETag>")
        .skip(1)
        .map(|s| s.split("</ETag>").next().unwrap())
        .collect();
    assert_eq!(etags.len(), 2, "{parts}");
    let xml = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{}</ETag></Part>\
         <Part><PartNumber>2</PartNumber><ETag>{}</ETag></Part></CompleteMultipartUpload>",
        etags[0], etags[1]
    );
    let (st, res) = raw_http(
        &url,
        "POST",
        &format!("/s3/dur/big?uploadId={id}"),
        &[],
        xml.as_bytes(),
    )
    .unwrap();
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&res));
    assert!(String::from_utf8_lossy(&res).contains("-2&quot;</ETag>"));
    let (st, got) = raw_http(&url, "GET", "/s3/dur/big", &[], b"").unwrap();
    assert_eq!(st, 200);
    let mut want = p1;
    want.extend_from_slice(b"the end");
    assert!(
        got == want,
        "content differs ({} vs {} bytes)",
        got.len(),
        want.len()
    );
    // Natively too: the same object.
    let native: Vec<Vec<u8>> = c
        .targets
        .iter()
        .map(|t| raw_http(&t.url, "GET", "/v1/objects/dur/big", &[], b"").unwrap())
        .filter(|(st, _)| *st == 200)
        .map(|(_, b)| b)
        .collect();
    assert!(
        native.len() == 1 && native[0] == want,
        "the owner serves it natively"
    );
    assert_eq!(files(&c, ".ais-s3-mpu", "upload.json"), 0);
}

/// One HTTP/1.0 request with a given `Host` header: (status, body).
fn with_host(url: &str, method: &str, host: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    use std::io::Read;
    let mut s = TcpStream::connect(hostport(url)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = String::from_utf8_lossy(&buf[..split])
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap();
    (status, buf[split + 4..].to_vec())
}

#[test]
fn bad_s3_input_gets_s3_errors() {
    let c = Cluster::start_with(Opts {
        targets: 1,
        env: vec![("AIS_S3_DOMAIN".into(), "s3.test".into())],
        ..Default::default()
    })
    .unwrap();
    let url = c.url().to_string();
    let req = |m: &str, p: &str, body: &[u8]| raw_http(&url, m, p, &[], body).unwrap();
    assert_eq!(req("PUT", "/s3/bad", b"").0, 200);
    assert_eq!(req("PUT", "/s3/bad/o", b"x").0, 200);
    for (m, p, body, st, want) in [
        ("PUT", "/s3/Bad..Name", &b""[..], 400, "InvalidBucketName"),
        ("PUT", "/s3/bad", b"", 409, "BucketAlreadyOwnedByYou"),
        ("GET", "/s3/nob?list-type=2", b"", 404, "NoSuchBucket"),
        ("GET", "/s3/bad/missing", b"", 404, "NoSuchKey"),
        (
            "POST",
            "/s3/bad?delete",
            b"<Delete><Object><Key>x</Delete>",
            400,
            "MalformedXML",
        ),
        ("POST", "/s3/bad?delete", b"not xml", 400, "MalformedXML"),
        (
            "POST",
            "/s3/bad/o?uploadId=zz_none",
            b"<CompleteMultipartUpload/>",
            400,
            "MalformedXML",
        ),
        (
            "PUT",
            "/s3/bad/o?partNumber=1&uploadId=nope",
            b"x",
            404,
            "NoSuchUpload",
        ),
        (
            "GET",
            "/s3/bad/o?uploadId=abc_def",
            b"",
            404,
            "NoSuchUpload",
        ),
        // Well-formed, but its target is not in the map (away?): retry later.
        (
            "GET",
            "/s3/bad/o?uploadId=aaaaaaaaaaaaaaaaaaaaaaaa_t999",
            b"",
            503,
            "ServiceUnavailable",
        ),
        (
            "GET",
            "/s3/bad?list-type=2&max-keys=-1",
            b"",
            400,
            "InvalidArgument",
        ),
        (
            "GET",
            "/s3/bad?list-type=2&continuation-token=%%%",
            b"",
            400,
            "InvalidArgument",
        ),
        (
            "GET",
            "/s3/bad?list-type=2&encoding-type=xml",
            b"",
            400,
            "InvalidArgument",
        ),
        ("PUT", "/s3/bad/a/../b", b"x", 400, "InvalidArgument"),
        ("DELETE", "/s3/bad", b"", 409, "BucketNotEmpty"),
        ("GET", "/s3/bad/o?tagging", b"", 501, "NotImplemented"),
        ("PATCH", "/s3/bad/o", b"", 405, "MethodNotAllowed"),
    ] {
        let (got, body) = req(m, p, body);
        assert_eq!(
            (got, code(&body).as_str()),
            (st, want),
            "{m} {p}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    // A part number out of range, and an upload of another object.
    let (_, body) = req("POST", "/s3/bad/mp?uploads", b"");
    let id = upload_id(&body);
    let (st, body) = req(
        "PUT",
        &format!("/s3/bad/mp?partNumber=10001&uploadId={id}"),
        b"x",
    );
    assert_eq!((st, code(&body).as_str()), (400, "InvalidArgument"));
    let (st, body) = req(
        "PUT",
        &format!("/s3/bad/other?partNumber=1&uploadId={id}"),
        b"x",
    );
    assert_eq!((st, code(&body).as_str()), (404, "NoSuchUpload"));
    // The object is untouched by all of it.
    let (st, body) = req("GET", "/s3/bad/o", b"");
    assert_eq!((st, body.as_slice()), (200, &b"x"[..]));

    // Virtual-host style (AIS_S3_DOMAIN): the bucket is in the Host header.
    let (st, body) = with_host(&url, "GET", "bad.s3.test:80", "/o", b"");
    assert_eq!((st, body.as_slice()), (200, &b"x"[..]));
    let (st, _) = with_host(&url, "PUT", "bad.s3.test", "/v/h", b"vhost");
    assert_eq!(st, 200);
    let (st, body) = req("GET", "/s3/bad/v/h", b"");
    assert_eq!((st, body.as_slice()), (200, &b"vhost"[..]));
    // A key that starts like AIStore's `/aws/` easy URL stays a key.
    let (st, _) = with_host(&url, "PUT", "bad.s3.test", "/aws/a/b", b"not an easy URL");
    assert_eq!(st, 200);
    let (st, body) = req("GET", "/s3/bad/aws/a/b", b"");
    assert_eq!((st, body.as_slice()), (200, &b"not an easy URL"[..]));
    let (st, body) = with_host(&url, "GET", "bad.s3.test", "/?list-type=2&prefix=v/", b"");
    assert!(st == 200 && String::from_utf8_lossy(&body).contains("<Key>v/h</Key>"));
    let (st, body) = with_host(&url, "GET", "nob.s3.test", "/o", b"");
    assert_eq!((st, code(&body).as_str()), (404, "NoSuchBucket"));
    // Other hosts still get the native API.
    let (st, _) = with_host(&url, "GET", "elsewhere", "/v1/health", b"");
    assert_eq!(st, 200);
}

/// Pending multipart uploads do not outlive their bucket, nor their time to
/// live (`AIS_S3_MPU_TTL_HOURS`; 0 here, so the sweep a restarted target
/// runs when it joins removes every pending upload it holds).
#[test]
fn pending_uploads_go_with_their_bucket_and_their_ttl() {
    let mut c = Cluster::start_with(Opts {
        targets: 2,
        env: vec![("AIS_S3_MPU_TTL_HOURS".into(), "0".into())],
        ..Default::default()
    })
    .unwrap();
    let url = c.url().to_string();
    let start = |bucket: &str| {
        let (st, body) =
            raw_http(&url, "POST", &format!("/s3/{bucket}/obj?uploads"), &[], b"").unwrap();
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
        let id = upload_id(&body);
        let (st, _) = raw_http(
            &url,
            "PUT",
            &format!("/s3/{bucket}/obj?partNumber=1&uploadId={id}"),
            &[],
            b"part one",
        )
        .unwrap();
        assert_eq!(st, 200);
        id
    };
    // The bucket goes (no objects, one pending upload): the upload goes too.
    assert_eq!(raw_http(&url, "PUT", "/s3/gone", &[], b"").unwrap().0, 200);
    start("gone");
    assert_eq!(files(&c, ".ais-s3-mpu", "upload.json"), 1);
    let (st, body) = raw_http(&url, "DELETE", "/s3/gone", &[], b"").unwrap();
    assert!(
        st == 204 || st == 200,
        "{st}: {}",
        String::from_utf8_lossy(&body)
    );
    wait_for("the upload of the deleted bucket to go", 10, || {
        files(&c, ".ais-s3-mpu", "upload.json") == 0
    });
    // Past its time to live: removed by the sweep its target runs on joining.
    assert_eq!(raw_http(&url, "PUT", "/s3/kept", &[], b"").unwrap().0, 200);
    let id = start("kept");
    assert_eq!(files(&c, ".ais-s3-mpu", "upload.json"), 1);
    restart_holder(&mut c, &id);
    c.wait_targets(2).unwrap();
    wait_for("the expired upload to go", 15, || {
        files(&c, ".ais-s3-mpu", "upload.json") == 0
    });
    let (st, body) = raw_http(
        &url,
        "PUT",
        &format!("/s3/kept/obj?partNumber=2&uploadId={id}"),
        &[],
        b"late",
    )
    .unwrap();
    assert_eq!(st, 404, "{}", String::from_utf8_lossy(&body));
    assert_eq!(code(&body), "NoSuchUpload");
}
