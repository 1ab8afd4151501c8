//! AIStore's native multipart upload (`mpt-*` on `/v1/objects`) through the
//! CLI and raw requests: parts in any order, durable across a restart of
//! the target holding them, and every malformed or misdirected request
//! refused without touching the upload.

use ais_testkit::{raw_http, run_ais, Cluster};
use std::time::Duration;

fn ok(url: &str, args: &[&str]) -> String {
    let (ok, out, err) = run_ais(url, args);
    assert!(ok, "ais {}: {out}{err}", args.join(" "));
    out
}

fn upload_id(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("Upload ID: "))
        .unwrap_or_else(|| panic!("no upload id in {out:?}"))
        .trim()
        .to_string()
}

#[test]
fn multipart_upload_through_the_cli_survives_a_restart() {
    let mut c = Cluster::start(2).unwrap();
    let url = c.url().to_string();
    let dir = tempfile::tempdir().unwrap();
    let parts: Vec<Vec<u8>> = (0..3u8)
        .map(|i| {
            (0..(300_000 + i as usize * 1000))
                .map(|j| (j as u8) ^ i)
                .collect()
        })
        .collect();
    for (i, p) in parts.iter().enumerate() {
        std::fs::write(dir.path().join(format!("p{}", i + 1)), p).unwrap();
    }
    let part = |i: usize| dir.path().join(format!("p{i}")).display().to_string();
    ok(&url, &["bucket", "create", "ais://mpu"]);
    let id = upload_id(&ok(&url, &["mpu", "create", "ais://mpu/big.bin"]));
    ok(
        &url,
        &["mpu", "put-part", "ais://mpu/big.bin", &id, "3", &part(3)],
    );
    ok(
        &url,
        &[
            "object",
            "mpu",
            "put-part",
            "ais://mpu/big.bin",
            "--upload-id",
            &id,
            "--part-number",
            "1",
            &part(1),
        ],
    );
    // The target holding the upload restarts: the parts it stored are kept.
    let holder = id.rsplit('_').next().unwrap().to_string();
    let i = c.targets.iter().position(|t| t.id == holder).unwrap();
    c.restart_target(i).unwrap();
    c.wait_targets(2).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    ok(
        &url,
        &["mpu", "put-part", "ais://mpu/big.bin", &id, "2", &part(2)],
    );
    // Nothing to see before completion.
    let out = ok(&url, &["ls", "ais://mpu"]);
    assert!(!out.contains("big.bin"), "{out}");
    ok(
        &url,
        &["mpu", "complete", "ais://mpu/big.bin", &id, "1,2,3"],
    );
    let got = dir.path().join("got");
    ok(
        &url,
        &["get", "ais://mpu/big.bin", &got.display().to_string()],
    );
    assert_eq!(std::fs::read(&got).unwrap(), parts.concat());
    // Gone once completed.
    let (okk, _, err) = run_ais(&url, &["mpu", "complete", "ais://mpu/big.bin", &id, "1"]);
    assert!(!okk, "completing a completed upload: {err}");

    // Abort drops the parts; a later part is refused.
    let id2 = upload_id(&ok(&url, &["mpu", "create", "ais://mpu/dropped"]));
    ok(
        &url,
        &["mpu", "put-part", "ais://mpu/dropped", &id2, "1", &part(1)],
    );
    ok(&url, &["mpu", "abort", "ais://mpu/dropped", &id2]);
    let (okk, _, _) = run_ais(
        &url,
        &["mpu", "put-part", "ais://mpu/dropped", &id2, "2", &part(2)],
    );
    assert!(!okk);
    let out = ok(&url, &["ls", "ais://mpu"]);
    assert!(!out.contains("dropped"), "{out}");
}

#[test]
fn malformed_multipart_requests_are_refused() {
    let c = Cluster::start(2).unwrap();
    let url = c.url().to_string();
    ok(&url, &["bucket", "create", "ais://m2"]);
    ok(&url, &["bucket", "create", "ais://other"]);
    let id = upload_id(&ok(&url, &["mpu", "create", "ais://m2/o"]));
    let put = |path: &str, body: &[u8]| raw_http(&url, "PUT", path, &[], body).unwrap();
    let follow = |method: &str, path: &str, body: &[u8]| -> (u16, String) {
        // Follow one redirect by hand (the proxy sends requests to the holder).
        let (st, h, b) = ais_testkit::raw_http_full(
            &url,
            method,
            path,
            &[("Content-Type", "application/json")],
            body,
        )
        .unwrap();
        if st != 307 {
            return (st, String::from_utf8_lossy(&b).into_owned());
        }
        let loc = h.iter().find(|(k, _)| k == "location").unwrap().1.clone();
        let (base, rest) = loc.split_at(loc[8..].find('/').unwrap() + 8);
        let (st, b) = raw_http(
            base,
            method,
            rest,
            &[("Content-Type", "application/json")],
            body,
        )
        .unwrap();
        (st, String::from_utf8_lossy(&b).into_owned())
    };
    // A part without its number, or a number out of range.
    assert_eq!(put(&format!("/v1/objects/m2/o?uploadId={id}"), b"x").0, 400);
    let (st, msg) = follow(
        "PUT",
        &format!("/v1/objects/m2/o?uploadId={id}&partNumber=0"),
        b"x",
    );
    assert_eq!(st, 400, "{msg}");
    let (st, msg) = follow(
        "PUT",
        &format!("/v1/objects/m2/o?uploadId={id}&partNumber=10001"),
        b"x",
    );
    assert_eq!(st, 400, "{msg}");
    // The upload of another object, or another bucket: no such upload.
    let (st, msg) = follow(
        "PUT",
        &format!("/v1/objects/m2/p?uploadId={id}&partNumber=1"),
        b"x",
    );
    assert_eq!(st, 404, "{msg}");
    let (st, msg) = follow(
        "PUT",
        &format!("/v1/objects/other/o?uploadId={id}&partNumber=1"),
        b"x",
    );
    assert_eq!(st, 404, "{msg}");
    // An id naming a target that does not hold it; an id naming no target.
    let tids: Vec<String> = c.targets.iter().map(|t| t.id.clone()).collect();
    let holder = id.rsplit('_').next().unwrap();
    let other = tids.iter().find(|t| *t != holder).unwrap();
    let forged = format!("{}_{other}", &id[..24]);
    let (st, msg) = follow(
        "PUT",
        &format!("/v1/objects/m2/o?uploadId={forged}&partNumber=1"),
        b"x",
    );
    assert_eq!(st, 404, "{msg}");
    let (st, msg) = follow(
        "PUT",
        "/v1/objects/m2/o?uploadId=nonsense&partNumber=1",
        b"x",
    );
    assert_eq!(st, 404, "{msg}");
    // A copy or an append is not a part.
    let (st, msg) = follow(
        "PUT",
        &format!("/v1/objects/m2/o?uploadId={id}&partNumber=1&appendty=append"),
        b"x",
    );
    assert_eq!(st, 400, "{msg}");
    // Completion: a part never uploaded, a part listed twice, no parts, too many.
    let (st, msg) = follow(
        "PUT",
        &format!("/v1/objects/m2/o?uploadId={id}&partNumber=1"),
        b"one",
    );
    assert_eq!(st, 200, "{msg}");
    let complete = |parts: &str| {
        follow(
            "POST",
            &format!("/v1/objects/m2/o?uploadId={id}"),
            format!(r#"{{"action": "mpt-complete", "value": {parts}}}"#).as_bytes(),
        )
    };
    for bad in [
        r#"[{"part-number": 1}, {"part-number": 2}]"#,
        r#"[{"part-number": 1}, {"part-number": 1}]"#,
        r#"[]"#,
        r#"{"part-number": 1}"#,
    ] {
        let (st, msg) = complete(bad);
        assert!(st == 400, "{bad}: {st} {msg}");
    }
    let many: Vec<String> = (1..=10_001)
        .map(|n| format!(r#"{{"part-number": {n}}}"#))
        .collect();
    let (st, msg) = complete(&format!("[{}]", many.join(",")));
    assert_eq!(st, 400, "{msg}");
    // Nothing above broke the upload.
    let (st, msg) = complete(r#"[{"part-number": 1, "etag": ""}]"#);
    assert_eq!(st, 200, "{msg}");
    let out = ok(&url, &["object", "cat", "ais://m2/o"]);
    assert_eq!(out, "one");
}

/// A part damaged on disk after it was stored is found at completion: the
/// object is not assembled from it (an error, nothing stored) and the
/// upload is left as it was, to re-send the part or abort.
#[test]
fn a_part_damaged_on_disk_is_never_assembled() {
    let c = Cluster::start(1).unwrap();
    let url = c.url().to_string();
    let (st, _) = raw_http(
        &url,
        "POST",
        "/v1/buckets/dmg",
        &[("Content-Type", "application/json")],
        br#"{"action": "create-bck"}"#,
    )
    .unwrap();
    assert_eq!(st, 200);
    let t = &c.targets[0].url;
    let json = [("Content-Type", "application/json")];
    let (st, id) = raw_http(
        t,
        "POST",
        "/v1/objects/dmg/o",
        &json,
        br#"{"action": "mpt-upload"}"#,
    )
    .unwrap();
    assert_eq!(st, 200);
    let id = String::from_utf8(id).unwrap();
    for (n, body) in [(1, vec![b'a'; 4096]), (2, vec![b'b'; 10])] {
        let (st, msg) = raw_http(
            t,
            "PUT",
            &format!("/v1/objects/dmg/o?uploadId={id}&partNumber={n}"),
            &[],
            &body,
        )
        .unwrap();
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&msg));
    }
    // Flip one byte of part 1's data file.
    let dir = c.targets[0].data.join("mp1").join(".ais-s3-mpu").join(&id);
    let data = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("data-00001-")
        })
        .unwrap_or_else(|| panic!("no part 1 in {}", dir.display()));
    let mut raw = std::fs::read(&data).unwrap();
    raw[100] ^= 0xff;
    std::fs::write(&data, raw).unwrap();
    let complete =
        br#"{"action": "mpt-complete", "value": [{"part-number": 1}, {"part-number": 2}]}"#;
    let path = format!("/v1/objects/dmg/o?uploadId={id}");
    let (st, msg) = raw_http(t, "POST", &path, &json, complete).unwrap();
    let msg = String::from_utf8_lossy(&msg);
    assert!(st >= 500, "{st}: {msg}");
    assert!(msg.contains("part 1 is damaged"), "{msg}");
    let (st, _) = raw_http(&url, "HEAD", "/v1/objects/dmg/o", &[], b"").unwrap();
    assert!(st == 404 || st == 307, "{st}");
    let (st, _) = raw_http(t, "HEAD", "/v1/objects/dmg/o", &[], b"").unwrap();
    assert_eq!(st, 404, "a damaged assembly was stored");
    // The part sent again, completion works.
    let (st, _) = raw_http(
        t,
        "PUT",
        &format!("/v1/objects/dmg/o?uploadId={id}&partNumber=1"),
        &[],
        &[b'a'; 4096],
    )
    .unwrap();
    assert_eq!(st, 200);
    let (st, msg) = raw_http(t, "POST", &path, &json, complete).unwrap();
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&msg));
    let (st, body) = raw_http(t, "GET", "/v1/objects/dmg/o", &[], b"").unwrap();
    assert_eq!(st, 200);
    assert_eq!(body.len(), 4106);
    assert!(body[..4096].iter().all(|b| *b == b'a'));
}
