//! Get-Batch under failure: a target killed while a batch streams makes the
//! response fail; the client never receives a short archive that reads as
//! complete.

use ais_testkit::Cluster;
use futures::StreamExt;
use std::time::Duration;

#[test]
fn target_killed_mid_batch_breaks_the_stream() {
    let mut c = Cluster::start(3).unwrap();
    c.allow_log("Get-Batch aborted mid-stream");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cl = c.client();
    let n = 600;
    let blob = vec![7u8; 256 * 1024];
    rt.block_on(async {
        cl.create_bucket("mb").await.unwrap();
        let mut s = futures::stream::iter((0..n).map(|i| {
            let (cl, blob) = (&cl, blob.clone());
            async move { cl.put_bytes("mb", &format!("o{i}"), blob).await.unwrap() }
        }))
        .buffer_unordered(16);
        while s.next().await.is_some() {}
    });
    let items: Vec<serde_json::Value> = (0..n)
        .map(|i| serde_json::json!({"objname": format!("o{i}")}))
        .collect();
    let url = format!("{}/v1/ml/moss/mb", c.url());
    // The designated target is the owner of the first item; kill another.
    let smap = c.smap().unwrap();
    let dt_url = {
        let s: ais_core::meta::Smap = serde_json::from_value(smap).unwrap();
        s.owner(&ais_core::Bck::ais("mb").obj_uname("o0"))
            .unwrap()
            .url()
            .to_string()
    };
    let victim = c.targets.iter().position(|t| t.url != dt_url).unwrap();
    let res: Result<u64, String> = rt.block_on(async {
        let http = reqwest::Client::new();
        let resp = http
            .get(&url)
            .json(&serde_json::json!({ "in": items }))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(resp.status(), 200);
        let mut body = resp.bytes_stream();
        let mut got = 0u64;
        let mut killed = false;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| format!("after {got} bytes: {e}"))?;
            got += chunk.len() as u64;
            if !killed && got > 4 << 20 {
                c.targets[victim].kill();
                killed = true;
            }
            // A slow reader: the batch cannot finish before the kill bites.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(got)
    });
    let complete = n as u64 * (256 * 1024 + 512) + 1024;
    match res {
        Err(e) => eprintln!("stream failed as it must: {e}"),
        Ok(got) => panic!(
            "a batch with a dead target's items ended cleanly: {got} of at least {complete} bytes"
        ),
    }
}

fn flip_first_byte(p: &std::path::Path) {
    let mut d = std::fs::read(p).unwrap();
    d[0] ^= 0xff;
    std::fs::write(p, d).unwrap();
}

/// Get-Batch never returns damaged bytes, whatever `validate_warm_get`
/// says and wherever an item is stored: a flipped byte fails the item
/// (under `__404__/` with `coer`, an error naming it without); on an
/// erasure-coded bucket the right bytes come back instead.
#[test]
fn get_batch_never_returns_damaged_bytes() {
    let c = Cluster::start(4).unwrap();
    c.allow_log("corrupt");
    let rt = ais_testkit::checks::runtime().unwrap();
    let cl = c.client();
    let names = ais_testkit::checks::names("g", 40);
    rt.block_on(async {
        for b in ["plain", "coded"] {
            cl.create_bucket(b).await.unwrap();
        }
        cl.set_bucket_props(
            "coded",
            serde_json::json!({"ec": {"enabled": true, "data_slices": 2, "parity_slices": 1}}),
        )
        .await
        .unwrap();
        for b in ["plain", "coded"] {
            ais_testkit::checks::put_all(&cl, b, &names, 0)
                .await
                .unwrap();
        }
    });
    // Damage every 5th object's main copy, on whichever target holds it.
    let damaged: Vec<&String> = names.iter().step_by(5).collect();
    for b in ["plain", "coded"] {
        let files: Vec<std::path::PathBuf> = (1..=4)
            .flat_map(|i| {
                ais_testkit::checks::object_files(&c.dir.path().join(format!("target{i}")), b)
            })
            .filter(|p| p.to_string_lossy().contains("/@ais/"))
            .collect();
        for n in &damaged {
            let f = files
                .iter()
                .find(|p| p.to_string_lossy().ends_with(&format!("/@ais/{b}/{n}")))
                .unwrap();
            flip_first_byte(f);
        }
    }
    let items: Vec<serde_json::Value> = names
        .iter()
        .map(|n| serde_json::json!({"objname": n}))
        .collect();
    let http = reqwest::Client::new();
    let get = |bucket: &str, coer: bool| {
        let url = format!("{}/v1/ml/moss/{bucket}", c.url());
        let body = serde_json::json!({"in": items, "coer": coer});
        let http = http.clone();
        async move {
            let r = http.get(url).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.bytes().await)
        }
    };
    let members = |tar: &[u8]| -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos + 512 <= tar.len() && tar[pos] != 0 {
            let h = &tar[pos..pos + 512];
            let name_end = h[..100].iter().position(|b| *b == 0).unwrap_or(100);
            let name = String::from_utf8_lossy(&h[..name_end]).to_string();
            let size_s = String::from_utf8_lossy(&h[124..136])
                .trim_matches(|c: char| c == '\0' || c == ' ')
                .to_string();
            let size = usize::from_str_radix(&size_s, 8).unwrap();
            out.push((name, tar[pos + 512..pos + 512 + size].to_vec()));
            pos += 512 + size.div_ceil(512) * 512;
        }
        out
    };
    rt.block_on(async {
        // No redundancy: the damaged items are reported, never returned.
        let (st, body) = get("plain", true).await;
        assert_eq!(st, 200);
        let got = members(&body.unwrap());
        assert_eq!(got.len(), names.len());
        for ((m, data), n) in got.iter().zip(&names) {
            if damaged.contains(&n) {
                assert_eq!(m, &format!("__404__/plain/{n}"), "{n}");
                assert!(data.is_empty());
            } else {
                assert_eq!(m, &format!("plain/{n}"));
                assert_eq!(data, &ais_testkit::checks::content(n, 0), "{n}");
            }
        }
        // Erasure-coded: the right bytes, rebuilt where the damage is.
        let (st, body) = get("coded", false).await;
        assert_eq!(st, 200);
        let got = members(&body.unwrap());
        assert_eq!(got.len(), names.len());
        for ((m, data), n) in got.iter().zip(&names) {
            assert_eq!(m, &format!("coded/{n}"));
            assert_eq!(data, &ais_testkit::checks::content(n, 0), "{n}");
        }
    });
    // Without coer, a damaged first item is an error naming it.
    let first = damaged[0].clone();
    let one = serde_json::json!({"in": [{"objname": first}]});
    let (st, text) = rt.block_on(async {
        let r = http
            .get(format!("{}/v1/ml/moss/plain", c.url()))
            .json(&one)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    assert!(st >= 500, "{st}: {text}");
    assert!(text.contains(&first) && text.contains("corrupt"), "{text}");
}

/// A client that hangs up after the first bytes of a large batch (or never
/// finishes sending its request) breaks nothing: the designated target
/// stops assembling, and the cluster serves the next batch whole.
#[test]
fn client_hanging_up_mid_batch_leaves_the_cluster_serving() {
    let c = Cluster::start(2).unwrap();
    let rt = ais_testkit::checks::runtime().unwrap();
    let cl = c.client();
    let names = ais_testkit::checks::names("h", 300);
    rt.block_on(async {
        cl.create_bucket("hb").await.unwrap();
        ais_testkit::checks::put_all(&cl, "hb", &names, 0)
            .await
            .unwrap();
    });
    let items: Vec<serde_json::Value> = names
        .iter()
        .map(|n| serde_json::json!({"objname": n}))
        .collect();
    let url = format!("{}/v1/ml/moss/hb", c.url());
    let body = serde_json::json!({ "in": items });
    rt.block_on(async {
        for _ in 0..5 {
            let r = reqwest::Client::new()
                .get(&url)
                .json(&body)
                .send()
                .await
                .unwrap();
            let mut s = r.bytes_stream();
            let first = s.next().await.unwrap().unwrap();
            assert!(!first.is_empty());
            drop(s); // hang up mid-stream
        }
    });
    // A request whose body never arrives in full.
    let (host, port) = {
        let u = c.url().trim_start_matches("http://").to_string();
        let (h, p) = u.rsplit_once(':').unwrap();
        (h.to_string(), p.parse::<u16>().unwrap())
    };
    let mut half = std::net::TcpStream::connect((host.as_str(), port)).unwrap();
    use std::io::Write;
    write!(
        half,
        "GET /v1/ml/moss/hb HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"in\": ["
    )
    .unwrap();
    // The next batch comes back whole and in order.
    let got = rt.block_on(async {
        let r = reqwest::Client::new()
            .get(&url)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap()
    });
    let expect: usize = names
        .iter()
        .map(|n| 512 + ais_testkit::checks::content(n, 0).len().div_ceil(512) * 512)
        .sum();
    assert!(got.len() >= expect, "{} < {expect}", got.len());
    drop(half);
}
