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
