//! Offline bucket-to-bucket jobs with real Python transforms: outputs, naming,
//! selection, dry-run, every error recorded, abort, stop, and a target lost
//! mid-job (clear failure; a rerun completes).

use ais_client::Client;
use ais_testkit::{b64, raw_http, Cluster};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

const UPPER: &str = "import time\ndef transform(data, path, args):\n    if data.startswith(b'bad'):\n        raise ValueError('refusing ' + path.rsplit('/', 1)[-1])\n    if args == 'slow':\n        time.sleep(0.05)\n    return data.upper()\n";

fn init_etl(url: &str, name: &str, code: &str) {
    let body = json!({"name": name, "runtime": "python3", "communication": "hpush://", "code": b64(code), "dependencies": "", "init_timeout": "1m", "obj_timeout": "20s", "pool_size": 2});
    let (st, out) = raw_http(
        url,
        "PUT",
        "/v1/etl",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&out));
}

fn start(url: &str, src: &str, dst: &str, action: &str, value: Value) -> (String, Duration) {
    let body = json!({"action": action, "name": "", "value": value});
    let t0 = Instant::now();
    let (st, out) = raw_http(
        url,
        "POST",
        &format!("/v1/buckets/{src}?provider=ais&bck_to=ais/@%23/{dst}/"),
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .unwrap();
    let took = t0.elapsed();
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&out));
    (String::from_utf8(out).unwrap(), took)
}

fn status(url: &str, id: &str) -> Value {
    let (st, out) = raw_http(
        url,
        "GET",
        "/v1/cluster?what=status",
        &[("Content-Type", "application/json")],
        json!({"ID": id, "Kind": ""}).to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&out));
    serde_json::from_slice(&out).unwrap()
}

fn wait(url: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = status(url, id);
        if s["end_time"].as_i64().unwrap() != 0 {
            return s;
        }
        assert!(Instant::now() < deadline, "job {id} did not finish: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn names(url: &str, bucket: &str) -> Vec<String> {
    rt().block_on(Client::new(url).list_all(bucket, "", "name"))
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect()
}

fn fill(url: &str, bucket: &str, n: usize) {
    let rt = rt();
    rt.block_on(async {
        let cl = Client::new(url);
        cl.create_bucket(bucket).await.unwrap();
        let futs = (0..n).map(|i| {
            let cl = cl.clone();
            async move {
                cl.put_bytes(bucket, &format!("d/{i:04}.txt"), format!("object {i}"))
                    .await
                    .unwrap()
            }
        });
        futures::future::join_all(futs).await;
        for i in 0..3 {
            cl.put_bytes(bucket, &format!("bad/{i}.txt"), "bad data")
                .await
                .unwrap();
        }
    });
}

#[test]
fn transform_and_copy_buckets() {
    let c = Cluster::start(3).unwrap();
    let url = c.url().to_string();
    fill(&url, "src", 2000);
    init_etl(&url, "upper-etl", UPPER);

    // Whole prefix, extension mapping and prepend; the destination is created.
    let (id, took) = start(
        &url,
        "src",
        "dst",
        "etl-bck",
        json!({"id": "upper-etl", "prefix": "d/", "ext": {"txt": "md"}, "prepend": "out/"}),
    );
    assert!(id.starts_with("etl-"), "{id}");
    eprintln!("etl-bck start latency: {took:?}");
    let s = wait(&url, &id);
    assert_eq!(s["err"], "", "{s}");
    assert_eq!(s["aborted"], false);
    assert_eq!(
        (
            s["objs"].as_u64(),
            s["total_objs"].as_u64(),
            s["err_count"].as_u64()
        ),
        (Some(2000), Some(2000), Some(0)),
        "{s}"
    );
    let got = names(&url, "dst");
    let want: Vec<String> = (0..2000).map(|i| format!("out/d/{i:04}.md")).collect();
    assert_eq!(got, want);
    let rt = rt();
    rt.block_on(async {
        let cl = Client::new(&url);
        for i in (0..2000).step_by(37) {
            let b = cl.get("dst", &format!("out/d/{i:04}.md")).await.unwrap();
            assert_eq!(b.as_ref(), format!("OBJECT {i}").as_bytes());
        }
    });
    // Job snapshots per target, as the SDK's Job.wait() first reads them.
    let (st, out) = raw_http(
        &url,
        "GET",
        "/v1/cluster?what=qryxstats",
        &[],
        json!({"ID": id}).to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(st, 200);
    let snaps: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(snaps.as_object().unwrap().len(), 3);
    let total: u64 = snaps
        .as_object()
        .unwrap()
        .values()
        .map(|v| {
            v[0]["stats"]["out-objs"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(total, 2000);
    assert!(snaps
        .as_object()
        .unwrap()
        .values()
        .all(|v| v[0]["kind"] == "etl-bck" && v[0]["end-time"] != "0001-01-01T00:00:00Z"));

    // Template and list selection, plain copies.
    let (id, _) = start(
        &url,
        "src",
        "tmpl",
        "copy-bck",
        json!({"template": "d/{0100..0199}.txt"}),
    );
    assert_eq!(wait(&url, &id)["objs"], 100);
    let got = names(&url, "tmpl");
    assert_eq!(got.len(), 100);
    assert_eq!(got[0], "d/0100.txt");
    assert_eq!(
        rt.block_on(Client::new(&url).get("tmpl", "d/0150.txt"))
            .unwrap()
            .as_ref(),
        b"object 150"
    );
    let (id, _) = start(
        &url,
        "src",
        "lst",
        "copy-listrange",
        json!({"objnames": ["d/0001.txt", "d/0002.txt", "nope.txt"], "tobck": {"name": "lst", "provider": "ais"}}),
    );
    assert_eq!(wait(&url, &id)["objs"], 2);
    assert_eq!(names(&url, "lst"), vec!["d/0001.txt", "d/0002.txt"]);

    // An ETL's dry run (`ais etl inspect`): every object through the
    // transform, its failures recorded, nothing written, nothing created.
    let (id, _) = start(
        &url,
        "src",
        "dry",
        "etl-bck",
        json!({"id": "upper-etl", "dry_run": true, "coer": true}),
    );
    let s = wait(&url, &id);
    assert_eq!(
        (
            s["objs"].as_u64(),
            s["err_count"].as_u64(),
            s["err"].as_str()
        ),
        (Some(2000), Some(3), Some("")),
        "{s}"
    );
    assert!(s["bytes"].as_u64().unwrap() > 2000 * 8);
    let (st, _) = raw_http(&url, "HEAD", "/v1/buckets/dry", &[], b"").unwrap();
    assert_eq!(st, 404, "dry run created the destination");

    // Continue on error: every failure recorded (with its Python error), the rest written.
    let (id, _) = start(
        &url,
        "src",
        "coer",
        "etl-bck",
        json!({"id": "upper-etl", "coer": true}),
    );
    let s = wait(&url, &id);
    assert_eq!(
        (s["objs"].as_u64(), s["err_count"].as_u64()),
        (Some(2000), Some(3)),
        "{s}"
    );
    assert_eq!(s["err"], "", "{s}");
    let (st, out) = raw_http(
        &url,
        "GET",
        &format!("/v1/etl/upper-etl?uuid={id}"),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(st, 200);
    let v: Value = serde_json::from_slice(&out).unwrap();
    let mut failed: Vec<String> = v["obj_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["obj_name"].as_str().unwrap().to_string())
        .collect();
    failed.sort();
    assert_eq!(
        failed,
        vec![
            "ais://src/bad/0.txt",
            "ais://src/bad/1.txt",
            "ais://src/bad/2.txt"
        ]
    );
    assert!(
        v["obj_errors"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("ValueError: refusing"),
        "{v}"
    );
    assert_eq!(names(&url, "coer").len(), 2000);

    // Without it, the first error stops the job and says which object and why.
    let (id, _) = start(
        &url,
        "src",
        "strict",
        "etl-bck",
        json!({"id": "upper-etl", "prefix": "bad/"}),
    );
    let s = wait(&url, &id);
    assert_eq!(s["aborted"], true, "{s}");
    let err = s["err"].as_str().unwrap();
    assert!(
        err.contains("ais://src/bad/") && err.contains("ValueError: refusing"),
        "{err}"
    );

    // Bad requests: (path, action message, status, message fragment).
    let bad = [
        (
            "/v1/buckets/src?bck_to=ais/@%23/x/",
            json!({"action": "etl-bck", "value": {"id": "no-such-etl"}}),
            404,
            "etl job no-such-etl does not exist",
        ),
        (
            "/v1/buckets/src",
            json!({"action": "copy-bck", "value": {}}),
            400,
            "missing destination",
        ),
        (
            "/v1/buckets/src?bck_to=ais/@%23/src/",
            json!({"action": "copy-bck", "value": {}}),
            400,
            "onto itself",
        ),
        (
            "/v1/buckets/src?bck_to=ais/@%23/t/",
            json!({"action": "copy-bck", "value": {"template": "x{1..}"}}),
            400,
            "invalid template",
        ),
    ];
    for (path, msg, want, fragment) in bad {
        let (st, body) = raw_http(&url, "POST", path, &[], msg.to_string().as_bytes()).unwrap();
        let body = String::from_utf8_lossy(&body);
        assert_eq!(st, want, "{path} {msg}: {body}");
        assert!(body.contains(fragment), "{path} {msg}: {body}");
    }
    let (st, _) = raw_http(
        &url,
        "GET",
        "/v1/cluster?what=status",
        &[],
        json!({"ID": "nope"}).to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(st, 404);

    // A worker that dies once on an object (a passing failure) is retried on
    // its replacement: the job completes without errors. (Marks go to the
    // worker's own work dir, the only place a sandboxed worker may write.)
    let code = "import os\ndef transform(data, path, args):\n    m = os.path.basename(path)\n    if not os.path.exists(m):\n        open(m, 'w').close()\n        os._exit(9)\n    return data\n";
    init_etl(&url, "crash-once", code);
    let (id, _) = start(
        &url,
        "src",
        "retried",
        "etl-bck",
        json!({"id": "crash-once", "template": "d/{0000..0019}.txt"}),
    );
    let s = wait(&url, &id);
    assert_eq!(
        (
            s["err"].as_str(),
            s["objs"].as_u64(),
            s["err_count"].as_u64()
        ),
        (Some(""), Some(20), Some(0)),
        "{s}"
    );
}

#[test]
fn stop_job_and_lose_a_target_mid_job() {
    let mut c = Cluster::start(3).unwrap();
    let url = c.url().to_string();
    fill(&url, "src", 600);
    init_etl(&url, "slow-etl", UPPER);
    let slow = |dst: &str| {
        start(
            &url,
            "src",
            dst,
            "etl-bck",
            json!({"id": "slow-etl", "prefix": "d/", "etl_args": "slow", "num-workers": 2}),
        )
    };

    // Stop: every target stops promptly.
    let (id, _) = slow("stopped");
    std::thread::sleep(Duration::from_millis(500));
    // A running job is not removed from the records (`ais job rm`).
    let rm = |id: &str| {
        raw_http(
            &url,
            "PUT",
            "/v1/cluster",
            &[],
            json!({"action": "remove-job", "value": {"id": id}})
                .to_string()
                .as_bytes(),
        )
        .unwrap()
    };
    let (st, body) = rm(&id);
    let body = String::from_utf8_lossy(&body).to_string();
    assert_eq!(st, 409, "{body}");
    assert!(body.contains("still running"), "{body}");
    let t0 = Instant::now();
    let (st, _) = raw_http(
        &url,
        "PUT",
        "/v1/cluster",
        &[],
        json!({"action": "stop", "value": {"ID": id}})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(st, 200);
    let s = wait(&url, &id);
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        t0.elapsed()
    );
    assert_eq!(s["aborted"], true, "{s}");
    assert!(
        s["err"].as_str().unwrap().contains("aborted by user"),
        "{s}"
    );
    assert!(s["objs"].as_u64().unwrap() < 600, "{s}");
    // Finished (stopped): removed here and on the targets; then unknown.
    let (st, body) = rm(&id);
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let removed: Vec<String> = serde_json::from_slice(&body).unwrap();
    assert_eq!(removed, vec![id.clone()]);
    let (st, _) = rm(&id);
    assert_eq!(st, 404);

    // A target dies mid-job: the job fails and names it.
    let (id, _) = slow("lost");
    std::thread::sleep(Duration::from_millis(700));
    let victim = c.targets[1].id.clone();
    c.targets[1].kill();
    let s = wait(&url, &id);
    assert_eq!(s["aborted"], true, "{s}");
    let err = s["err"].as_str().unwrap();
    assert!(
        err.contains(&format!("t[{victim}]")) && err.contains("rerun"),
        "{err}"
    );
    // Back with its data; the same job again completes the work.
    c.restart_target(1).unwrap();
    c.wait_targets(3).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // The restarted target starts the ETL from cluster metadata.
        let (st, body) = raw_http(&url, "GET", "/v1/etl", &[], b"").unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        if st == 200 && v[0]["stage"] == "Running" {
            break;
        }
        assert!(Instant::now() < deadline, "ETL not running again: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The same job again (same arguments) completes the work.
    let (id, _) = slow("lost");
    let s = wait(&url, &id);
    assert_eq!(
        (s["err"].as_str(), s["objs"].as_u64()),
        (Some(""), Some(600)),
        "{s}"
    );
    // Outputs the first run finished before the target died were left alone.
    assert!(s["skipped"].as_u64().unwrap() > 0, "{s}");
    // Same job again: every output is unchanged; with force, all are redone.
    let (id, _) = slow("lost");
    let again = wait(&url, &id);
    assert_eq!(
        (again["objs"].as_u64(), again["skipped"].as_u64()),
        (Some(600), Some(600)),
        "{again}"
    );
    let (id, _) = start(
        &url,
        "src",
        "lost",
        "etl-bck",
        json!({"id": "slow-etl", "prefix": "d/", "num-workers": 8, "force": true}),
    );
    let forced = wait(&url, &id);
    assert_eq!(
        (forced["objs"].as_u64(), forced["skipped"].as_u64()),
        (Some(600), Some(0)),
        "{forced}"
    );
    let got = names(&url, "lost");
    assert_eq!(got.len(), 600);
    let rt = rt();
    for i in (0..600).step_by(29) {
        let b = rt
            .block_on(Client::new(&url).get("lost", &format!("d/{i:04}.txt")))
            .unwrap();
        assert_eq!(b.as_ref(), format!("OBJECT {i}").as_bytes());
    }
}

fn ais(endpoint: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(ais_testkit::bin("ais"))
        .args(args)
        .env("AIS_ENDPOINT", endpoint)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn job_commands_in_the_cli() {
    let c = Cluster::start(2).unwrap();
    let url = c.url().to_string();
    fill(&url, "src", 50);
    let code = std::env::temp_dir().join(format!("upper-{}.py", std::process::id()));
    std::fs::write(&code, UPPER).unwrap();
    let (ok, out, err) = ais(
        &url,
        &[
            "etl",
            "init",
            "code",
            "--name",
            "cli-upper",
            "--from-file",
            code.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = ais(
        &url,
        &[
            "etl",
            "bucket",
            "cli-upper",
            "ais://src",
            "ais://out",
            "--prefix",
            "d/",
            "--ext",
            "{txt:up}",
            "--wait",
        ],
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("etl-bck ais://src => ais://out") && out.contains("50 objects"),
        "{out}"
    );
    let (_, ls, _) = ais(&url, &["ls", "ais://out"]);
    assert!(ls.contains("d/0007.up"), "{ls}");
    // A failing job: non-zero exit, the reason, and every error listed.
    let (ok, out, err) = ais(
        &url,
        &[
            "etl",
            "bucket",
            "cli-upper",
            "ais://src",
            "ais://out2",
            "--cont-on-err",
            "--wait",
        ],
    );
    assert!(ok, "{out}{err}"); // continue-on-error: the job itself succeeds
    assert!(out.contains("3 errors"), "{out}");
    let id = out
        .split("job ")
        .nth(1)
        .unwrap()
        .split(|c: char| c == ':' || c.is_whitespace())
        .next()
        .unwrap()
        .to_string();
    let (ok, errs, _) = ais(&url, &["etl", "show", "errors", "cli-upper", &id]);
    assert!(
        ok && errs.matches("ais://src/bad/").count() == 3 && errs.contains("ValueError"),
        "{errs}"
    );
    let (ok, out, err) = ais(
        &url,
        &[
            "etl",
            "bucket",
            "cli-upper",
            "ais://src",
            "ais://out3",
            "--prefix",
            "bad/",
            "--wait",
        ],
    );
    assert!(
        !ok && err.contains("failed") && err.contains("refusing"),
        "{out}{err}"
    );
    // Inspect: every object through the ETL, the failures listed, nothing
    // written (the bucket keeps its objects, no output appears).
    let before = names(&url, "src").len();
    let (ok, out, err) = ais(
        &url,
        &["etl", "inspect", "cli-upper", "ais://src", "--wait"],
    );
    assert!(
        ok && out.contains("3 errors") && out.contains("inspect"),
        "{out}{err}"
    );
    let id = out
        .split("job ")
        .nth(1)
        .unwrap()
        .split(|c: char| c == ':' || c.is_whitespace())
        .next()
        .unwrap()
        .to_string();
    let (ok, errs, _) = ais(&url, &["etl", "show", "errors", "cli-upper", &id]);
    assert!(ok && errs.matches("ais://src/bad/").count() == 3, "{errs}");
    assert_eq!(names(&url, "src").len(), before);
    // A pipeline by name ("a>>b"), as AIStore's CLI takes it.
    let (ok, out, err) = ais(
        &url,
        &[
            "etl",
            "bucket",
            "cli-upper>>cli-upper",
            "ais://src",
            "ais://piped",
            "--prefix",
            "d/",
            "--wait",
        ],
    );
    assert!(ok, "{out}{err}");
    let (_, cat, _) = ais(&url, &["object", "cat", "ais://piped/d/0003.txt"]);
    assert_eq!(cat, "OBJECT 3", "{cat}");
    // Copy, dry run, show job, wait, stop.
    let (ok, out, err) = ais(
        &url,
        &[
            "bucket",
            "cp",
            "ais://src",
            "ais://copy",
            "--list",
            "d/0001.txt,d/0002.txt",
        ],
    );
    assert!(ok, "{out}{err}");
    let id = out
        .split("job ")
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches(|c: char| !c.is_alphanumeric())
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let (ok, out, _) = ais(&url, &["wait", &id]);
    assert!(ok && out.contains("2 objects"), "{out}");
    let (ok, out, _) = ais(&url, &["show", "job"]);
    assert!(
        ok && out.lines().next().unwrap().starts_with("JOB")
            && out.contains(&id)
            && out.contains("Finished"),
        "{out}"
    );
    let (ok, out, _) = ais(&url, &["show", "job", &id, "--json"]);
    assert!(ok && out.contains("\"total_objs\": 2"), "{out}");
    let (ok, out, _) = ais(
        &url,
        &[
            "bucket",
            "cp",
            "ais://src",
            "ais://nothing",
            "--dry-run",
            "--wait",
        ],
    );
    assert!(ok && out.contains("53 objects"), "{out}");
    let (ok, _, err) = ais(&url, &["stop", "job", "no-such-job"]);
    assert!(!ok && err.contains("not found"), "{err}");
    // One object into another bucket, transformed, without a job.
    let (ok, out, err) = ais(
        &url,
        &[
            "etl",
            "object",
            "cli-upper",
            "cp",
            "ais://src/d/0003.txt",
            "ais://copy/x/three.txt",
        ],
    );
    assert!(ok, "{out}{err}");
    let (_, cat, _) = ais(&url, &["object", "cat", "ais://copy/x/three.txt"]);
    assert_eq!(cat, "OBJECT 3");
    let _ = std::fs::remove_file(code);
}

/// The proxy's job index is persisted: a proxy restarted mid-job still
/// reports the job (running, then finished with every object), and the CLI
/// shows it.
#[test]
fn job_status_survives_a_proxy_restart() {
    let mut c = Cluster::start(2).unwrap();
    let url = c.url().to_string();
    fill(&url, "psrc", 120);
    init_etl(&url, "slow-upper", UPPER);
    // ~120 x 50 ms over 2 targets x 2 workers: a few seconds of work.
    let (id, _) = start(
        &url,
        "psrc",
        "pdst",
        "etl-bck",
        json!({"id": "slow-upper", "prefix": "d/", "etl_args": "slow", "num-workers": 2}),
    );
    assert_eq!(status(&url, &id)["end_time"], 0, "finished too soon");
    c.restart_proxy().unwrap();
    let s = status(&url, &id);
    assert_eq!(s["kind"], "etl-bck", "{s}");
    let s = wait(&url, &id);
    assert_eq!(s["err"], "", "{s}");
    assert_eq!(s["objs"], 120, "{s}");
    assert_eq!(names(&url, "pdst").len(), 120);
    let out = std::process::Command::new(ais_testkit::bin("ais"))
        .args(["show", "job", &id])
        .env("AIS_ENDPOINT", &url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains(&id), "{text}");
}

/// A stop that cannot reach a target running the job says so (503 naming
/// it: the job may still run there) instead of answering 200.
#[test]
fn a_stop_that_misses_a_target_says_so() {
    let mut c = Cluster::start(3).unwrap();
    c.allow_log("could not abort job on target");
    c.allow_log("request failed");
    let url = c.url().to_string();
    fill(&url, "src", 600);
    init_etl(&url, "slow-etl2", UPPER);
    let (id, _) = start(
        &url,
        "src",
        "dst",
        "etl-bck",
        json!({"id": "slow-etl2", "prefix": "d/", "etl_args": "slow", "num-workers": 1}),
    );
    std::thread::sleep(Duration::from_millis(300));
    let lost = c.targets[2].id.clone();
    c.targets[2].kill();
    let (st, body) = raw_http(
        &url,
        "PUT",
        "/v1/cluster",
        &[],
        json!({"action": "stop", "value": {"ID": id}})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let msg = String::from_utf8_lossy(&body);
    assert_eq!(st, 503, "{msg}");
    assert!(
        msg.contains(&lost) && msg.contains("may still run"),
        "{msg}"
    );
}

/// make-n-copies: with a mountpath per copy, every object gets its copies
/// and the job succeeds; asking for more copies than a target has
/// mountpaths keeps one per mountpath and fails the job saying so.
#[test]
fn make_n_copies_makes_them_or_says_why_not() {
    let c = Cluster::start_with(ais_testkit::Opts {
        targets: 1,
        mpaths: 2,
        ..Default::default()
    })
    .unwrap();
    let url = c.url().to_string();
    fill(&url, "mirrored", 20);
    let post = |v: Value| {
        let (st, body) = raw_http(
            &url,
            "POST",
            "/v1/buckets/mirrored",
            &[("Content-Type", "application/json")],
            json!({"action": "make-n-copies", "value": v})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
        String::from_utf8(body).unwrap()
    };
    let s = wait(&url, &post(json!(2)));
    assert_eq!(s["err"], "", "{s}");
    fn files(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| match e.file_type() {
                        Ok(t) if t.is_dir() => files(&e.path()),
                        Ok(_) => 1,
                        Err(_) => 0,
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    let copies = |mp: &str| files(&c.targets[0].data.join(mp).join("@mirror").join("mirrored"));
    // Every object (20 + 3) has its second copy on the other mountpath.
    assert_eq!(copies("mp1") + copies("mp2"), 23);
    let s = wait(&url, &post(json!(3)));
    let err = s["err"].as_str().unwrap_or("");
    assert!(err.contains("3 copies") && err.contains("has 2"), "{s}");
    let s = wait(&url, &post(json!(1)));
    assert_eq!(s["err"], "", "{s}");
    assert_eq!(
        copies("mp1") + copies("mp2"),
        0,
        "copies left after make-n-copies 1"
    );
}
