//! Connection hygiene of a node exposed on a network, against real
//! `aisnode` processes: slow request heads are cut at the header timeout, a
//! stalled PUT body is aborted without leaving anything behind, and past
//! the connection cap new clients get a 503 while existing ones are served;
//! a flood of requests naming missing buckets does not turn into a flood of
//! catch-ups at the primary; large GETs (sent from the file with sendfile)
//! stay whole and leak nothing when clients read slowly, hang up, or never
//! read at all (cut at the idle timeout).

use ais_testkit::{raw_http, Cluster, Opts};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Held by the tests that flood a node with connections, and by the one
/// that counts how requests arriving together share a catch-up: run beside
/// a flood, its "together" spreads out and every request pays alone.
static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ALONE.lock().unwrap_or_else(|p| p.into_inner())
}

fn hostport(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

fn env(kv: &[(&str, &str)]) -> Vec<(String, String)> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// This test process needs more than the usual 1,024 descriptors.
fn raise_nofile() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}

/// One keep-alive `GET` on an open connection: status and body.
fn get_on(s: &mut TcpStream, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())?;
    read_response(s)
}

fn read_response(s: &mut TcpStream) -> std::io::Result<(u16, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((status, buf[head_end..].to_vec()))
}

fn metric(url: &str, name: &str, label: Option<(&str, &str)>) -> f64 {
    let (st, body) = raw_http(url, "GET", "/metrics", &[], b"").unwrap();
    assert_eq!(st, 200);
    let text = String::from_utf8(body).unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| match label {
            None => true,
            Some((k, v)) => s.labels.get(k) == Some(v),
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[test]
fn half_sent_heads_are_closed_at_the_header_timeout() {
    raise_nofile();
    let c = Cluster::start_with(Opts {
        targets: 0,
        env: env(&[("AIS_HEADER_TIMEOUT", "2")]),
        ..Default::default()
    })
    .unwrap();
    let addr = hostport(c.url());
    const N: usize = 1000;
    let t0 = Instant::now();
    let mut socks = Vec::with_capacity(N);
    for _ in 0..N {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
            .unwrap();
        s.set_nonblocking(true).unwrap();
        socks.push(Some(s));
    }
    let sent = t0.elapsed();
    let mut first: Option<Duration> = None;
    let mut last = Duration::ZERO;
    let mut closed = 0;
    let mut buf = [0u8; 1024];
    let deadline = t0 + sent + Duration::from_secs(6);
    while closed < N && Instant::now() < deadline {
        for slot in socks.iter_mut() {
            let Some(s) = slot else { continue };
            let gone = match s.read(&mut buf) {
                Ok(_) => true,
                Err(e) if e.kind() == ErrorKind::WouldBlock => false,
                Err(_) => true,
            };
            if gone {
                let at = t0.elapsed();
                first.get_or_insert(at);
                last = at;
                closed += 1;
                *slot = None;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(closed, N, "{closed} of {N} slow connections closed");
    let first = first.unwrap();
    assert!(
        first >= Duration::from_millis(1800),
        "closed before the header timeout: {first:?}"
    );
    // 2 s after the last one was sent, plus the watchdog's tick and slack
    // for a busy two-core box.
    assert!(
        last <= sent + Duration::from_millis(4000),
        "last closed at {last:?} (sending took {sent:?})"
    );
    // The node still serves, and counted them.
    let (st, _) = raw_http(c.url(), "GET", "/v1/health", &[], b"").unwrap();
    assert_eq!(st, 200);
    let n = metric(
        c.url(),
        "ais_proxy_conns_timeouts_total",
        Some(("kind", "header")),
    );
    assert!(n >= N as f64, "header timeouts counted: {n}");
}

#[test]
fn a_stalled_put_is_aborted_and_leaves_nothing() {
    let c = Cluster::start_with(Opts {
        targets: 1,
        env: env(&[("AIS_BODY_TIMEOUT", "2")]),
        ..Default::default()
    })
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(c.client().create_bucket("hyg")).unwrap();
    let t = &c.targets[0];
    let work = t.data.join("mp1").join(".ais-work");
    let temps = || {
        std::fs::read_dir(&work)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with("put-"))
                    .count()
            })
            .unwrap_or(0)
    };
    let mut s = TcpStream::connect(hostport(&t.url)).unwrap();
    s.write_all(
        b"PUT /v1/objects/hyg/stalled HTTP/1.1\r\nHost: x\r\nContent-Length: 4194304\r\n\r\n",
    )
    .unwrap();
    // More than the target buffers before its first write (1 MiB), so the
    // temp file exists when the client stalls.
    s.write_all(&vec![7u8; 3 << 19]).unwrap();
    let stalled_at = Instant::now();
    // The upload is under way: its temp file exists.
    let mut seen = false;
    while stalled_at.elapsed() < Duration::from_millis(1500) {
        if temps() > 0 {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(seen, "no put-* temp file under {}", work.display());
    // Then nothing more: the target gives up after the body timeout.
    s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let (status, body) = read_response(&mut s).unwrap();
    let took = stalled_at.elapsed();
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("timeout") && body.contains("nothing was stored"),
        "{body}"
    );
    assert!(
        took >= Duration::from_millis(1800) && took <= Duration::from_millis(4500),
        "aborted after {took:?}"
    );
    let mut gone = false;
    for _ in 0..50 {
        if temps() == 0 {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gone, "a put-* temp file was left in {}", work.display());
    let (st, _) = raw_http(&t.url, "HEAD", "/v1/objects/hyg/stalled", &[], b"").unwrap();
    assert_eq!(st, 404, "the object must not exist");
    let n = metric(
        &t.url,
        "ais_target_conns_timeouts_total",
        Some(("kind", "body")),
    );
    assert_eq!(n, 1.0);
}

#[test]
fn past_the_connection_cap_new_clients_get_503() {
    let _alone = alone();
    let c = Cluster::start_with(Opts {
        targets: 0,
        env: env(&[("AIS_MAX_CONNS", "50"), ("AIS_MAX_CONNS_PER_CLIENT", "50")]),
        ..Default::default()
    })
    .unwrap();
    let addr = hostport(c.url());
    let mut kept = Vec::new();
    let mut refused = None;
    for _ in 0..60 {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (st, body) = get_on(&mut s, "/v1/health").unwrap();
        if st == 503 {
            refused = Some(String::from_utf8_lossy(&body).to_string());
            break;
        }
        assert_eq!(st, 200);
        kept.push(s);
    }
    let body = refused.expect("no 503 past 60 connections with a cap of 50");
    assert!(
        (45..=50).contains(&kept.len()),
        "served {} before the cap",
        kept.len()
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], 503, "{body}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("too many open connections (limit 50)"),
        "{body}"
    );
    // Existing keep-alive connections are still served.
    for s in kept.iter_mut().take(5) {
        assert_eq!(get_on(s, "/v1/health").unwrap().0, 200);
    }
    // Once they close, new clients are served again.
    drop(kept);
    let t0 = Instant::now();
    loop {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        match get_on(&mut s, "/v1/health") {
            Ok((200, _)) => break,
            r => assert!(
                t0.elapsed() < Duration::from_secs(3),
                "still refused after the others closed: {r:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(metric(c.url(), "ais_proxy_conns_rejected_total", None) >= 1.0);
}

#[test]
fn idle_keepalive_is_closed_and_oversized_heads_get_431() {
    let c = Cluster::start_with(Opts {
        targets: 0,
        env: env(&[("AIS_IDLE_TIMEOUT", "1"), ("AIS_MAX_HEADER_SIZE", "16384")]),
        ..Default::default()
    })
    .unwrap();
    let addr = hostport(c.url());
    // A keep-alive connection used every 0.4 s stays open past the timeout...
    let mut busy = TcpStream::connect(&addr).unwrap();
    busy.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(get_on(&mut idle, "/v1/health").unwrap().0, 200);
    let t0 = Instant::now();
    for _ in 0..5 {
        assert_eq!(get_on(&mut busy, "/v1/health").unwrap().0, 200);
        std::thread::sleep(Duration::from_millis(400));
    }
    assert_eq!(get_on(&mut busy, "/v1/health").unwrap().0, 200);
    // ...while the idle one was closed by the server.
    let mut buf = [0u8; 16];
    assert_eq!(
        idle.read(&mut buf).unwrap_or(0),
        0,
        "idle connection still open"
    );
    assert!(t0.elapsed() >= Duration::from_secs(1));
    assert!(
        metric(
            c.url(),
            "ais_proxy_conns_timeouts_total",
            Some(("kind", "idle"))
        ) >= 1.0
    );

    // A request head over --max-header-size: 431.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let big = "a".repeat(32 << 10);
    s.write_all(format!("GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .unwrap();
    let (st, _) = read_response(&mut s).unwrap();
    assert_eq!(st, 431);
    // A normal one still passes.
    let (st, _) = raw_http(
        c.url(),
        "GET",
        "/v1/health",
        &[("X-Ok", &"b".repeat(4000))],
        b"",
    )
    .unwrap();
    assert_eq!(st, 200);
}

#[test]
fn a_flood_naming_missing_buckets_costs_the_primary_little() {
    let _alone = alone();
    // A client (or a broken one) sends a target many requests for buckets
    // that do not exist, as if redirected (`pid`): each would make the
    // target catch up with the primary; concurrent ones share a catch-up.
    let c = Cluster::start_with(Opts {
        targets: 1,
        ..Default::default()
    })
    .unwrap();
    let target = c.targets[0].url.clone();
    let keepalives = || {
        metric(
            c.url(),
            "ais_proxy_http_responses_total",
            Some(("class", "2xx")),
        )
    };
    let before = keepalives();
    const THREADS: usize = 30;
    const EACH: usize = 10;
    // Each wave leaves together (a barrier), as a flood's requests do.
    let wave = std::sync::Barrier::new(THREADS);
    let answers: Vec<(u16, Vec<u8>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|w| {
                let (target, wave) = (&target, &wave);
                s.spawn(move || {
                    (0..EACH)
                        .map(|i| {
                            wave.wait();
                            let path = format!("/v1/objects/nope-{w}/o{i}?pid=x");
                            raw_http(target, "GET", &path, &[], b"").unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    for (st, body) in &answers {
        assert_eq!(*st, 404, "{}", String::from_utf8_lossy(body));
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert!(v["message"].as_str().unwrap().contains("nope-"), "{v}");
    }
    let spent = keepalives() - before;
    assert!(
        spent < (THREADS * EACH / 2) as f64,
        "{spent} requests at the primary for {} requests naming missing buckets",
        THREADS * EACH
    );
    // The node serves as before.
    let cl = c.client();
    let rt = ais_testkit::checks::runtime().unwrap();
    rt.block_on(async {
        cl.create_bucket("after").await.unwrap();
        cl.put_bytes("after", "o", b"x".to_vec()).await.unwrap();
        assert_eq!(cl.get("after", "o").await.unwrap().as_ref(), b"x");
    });
}

/// Bytes that differ at every offset (an error by a page shows).
fn content(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn large_gets_survive_clients_that_hang_up_or_read_slowly() {
    // Objects from 8 KiB leave the target with sendfile from their file
    // (read into memory up to 256 KiB, one mapping up to 1 MiB, 1 MiB
    // windows beyond): partial sends to a
    // slow reader, ranges at odd offsets and clients vanishing mid-body must
    // all leave the node whole, with no descriptor or mapping kept.
    let c = Cluster::start(1).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(c.client().create_bucket("zc")).unwrap();
    let t = &c.targets[0];
    let addr = hostport(&t.url);
    let objs = [
        ("small", content((20 << 10) + 3, 3)),
        ("mid", content(600 << 10, 1)),
        ("big", content((5 << 20) + 4097, 2)),
    ];
    for (name, data) in &objs {
        let (st, _) =
            raw_http(&t.url, "PUT", &format!("/v1/objects/zc/{name}"), &[], data).unwrap();
        assert_eq!(st, 200, "PUT {name}");
    }
    let pid = t.pid().unwrap();
    // Warm: the first GETs open the ETL-free paths' lazily made state.
    for (name, data) in &objs {
        let (st, body) =
            raw_http(&t.url, "GET", &format!("/v1/objects/zc/{name}"), &[], b"").unwrap();
        assert_eq!(st, 200);
        assert!(body == *data, "{name}: body differs");
    }
    let fds_before = open_fds(pid);

    // 40 clients that read the head and a few KiB, then hang up.
    for i in 0..40 {
        let name = objs[i % 3].0;
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(format!("GET /v1/objects/zc/{name} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let mut buf = [0u8; 8192];
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0 && buf.starts_with(b"HTTP/1.1 200"), "{name}: no 200");
    }

    // A slow reader of the whole 5 MiB: the target's sends are partial
    // (the socket buffer fills) and resume where they stopped.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /v1/objects/zc/big HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let t0 = Instant::now();
    let head_end = loop {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed early");
        got.extend_from_slice(&chunk[..n]);
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    while got.len() < head_end + objs[2].1.len() {
        std::thread::sleep(Duration::from_millis(5));
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed after {} bytes", got.len() - head_end);
        got.extend_from_slice(&chunk[..n]);
    }
    assert!(got[head_end..] == objs[2].1[..], "slow read: body differs");
    assert!(t0.elapsed() > Duration::from_millis(100));
    // The same connection serves the next request (keep-alive intact).
    let (st, body) = get_on(&mut s, "/v1/objects/zc/mid").unwrap();
    assert_eq!(st, 200);
    assert!(body == objs[1].1, "mid after slow read: body differs");

    // Ranges at offsets that are not page-aligned, inside and across windows.
    for (name, start, end) in [
        ("small", 4095usize, 9000),
        ("small", 1, (20 << 10) + 2),
        ("mid", 10, 600 * 1024 - 1),
        ("mid", 4095, 300_001),
        ("big", 4095, 1_200_000),
        ("big", (1 << 20) - 3, (3 << 20) + 5),
        ("big", (5 << 20) + 1, (5 << 20) + 4096),
    ] {
        let data = &objs.iter().find(|o| o.0 == name).unwrap().1;
        let range = format!("bytes={start}-{end}");
        let (st, body) = raw_http(
            &t.url,
            "GET",
            &format!("/v1/objects/zc/{name}"),
            &[("Range", &range)],
            b"",
        )
        .unwrap();
        assert_eq!(st, 206, "{name} {range}");
        assert!(body == data[start..=end], "{name} {range}: body differs");
    }

    // Nothing kept open by the aborted downloads.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = open_fds(pid);
        if now <= fds_before + 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "descriptors: {fds_before} before, {now} after the aborted downloads"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_client_that_never_reads_a_large_body_is_cut_at_the_idle_timeout() {
    // The body leaves with sendfile, which stops at a full socket buffer:
    // the connection must not stay open (with its object file) forever.
    let c = Cluster::start_with(Opts {
        targets: 1,
        env: env(&[("AIS_IDLE_TIMEOUT", "1")]),
        ..Default::default()
    })
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(c.client().create_bucket("stuck")).unwrap();
    let t = &c.targets[0];
    // Larger than what the kernel buffers on both sides of a loopback
    // connection, so the target's sends block.
    let data = content(32 << 20, 7);
    let (st, _) = raw_http(&t.url, "PUT", "/v1/objects/stuck/big", &[], &data).unwrap();
    assert_eq!(st, 200);
    let pid = t.pid().unwrap();
    let fds_before = open_fds(pid);
    // A small receive buffer set before connecting switches the kernel's
    // autotuning off: however large this host lets buffers grow (here
    // tcp_rmem's max may be 32 MiB), the client side holds little.
    let mut s = rt
        .block_on(async {
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.set_recv_buffer_size(64 << 10)?;
            let addr: std::net::SocketAddr =
                hostport(&t.url).parse().map_err(std::io::Error::other)?;
            sock.connect(addr).await?.into_std()
        })
        .unwrap();
    s.set_nonblocking(false).unwrap();
    s.write_all(b"GET /v1/objects/stuck/big HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // The connection and the object's file are open while the body is sent.
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    assert!(open_fds(pid) > fds_before, "no GET in progress");
    // Nobody reads: both are closed within a few idle periods. (At least
    // five of them pass before the body is read: the descriptor count alone
    // can drop early — a descriptor open when it was taken, such as the
    // PUT's connection, may close meanwhile.)
    let deadline = Instant::now() + Duration::from_secs(15);
    while open_fds(pid) > fds_before || started.elapsed() < Duration::from_secs(5) {
        assert!(
            Instant::now() < deadline,
            "a never-read response kept {} descriptors open",
            open_fds(pid).saturating_sub(fds_before)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // What arrives is a cut body, never the whole object.
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(got.len() < data.len(), "the whole body arrived unread");
    // The node serves the next client.
    let (st, body) = raw_http(&t.url, "GET", "/v1/objects/stuck/big", &[], b"").unwrap();
    assert_eq!(st, 200);
    assert!(body == data, "body differs");
}

/// One client holding 9,000 keep-alive connections from one source address
/// (127.0.0.2) takes at most its share (a quarter of the node's cap); a
/// client from another address (127.0.0.1) is served at once, and so is
/// `/metrics`.
#[test]
fn one_address_holding_thousands_of_connections_does_not_lock_out_the_rest() {
    let _alone = alone();
    raise_nofile();
    let c = Cluster::start_with(Opts {
        targets: 0,
        ..Default::default()
    })
    .unwrap();
    let addr: std::net::SocketAddr = hostport(c.url()).parse().unwrap();
    let rt = ais_testkit::checks::runtime().unwrap();
    let (held, refused) = rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut held = Vec::new();
        let mut refused = 0usize;
        for _ in 0..9000 {
            // (This process out of descriptors: as many as it could.)
            let Ok(sock) = tokio::net::TcpSocket::new_v4() else {
                break;
            };
            sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
            let Ok(mut s) = sock.connect(addr).await else {
                refused += 1;
                continue;
            };
            if s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .is_err()
            {
                refused += 1;
                continue;
            }
            let mut buf = [0u8; 512];
            match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                Ok(Ok(n)) if buf[..n].starts_with(b"HTTP/1.1 200") => held.push(s),
                _ => refused += 1,
            }
        }
        (held, refused)
    });
    // The default cap is 8192 (lower where the descriptor limit is): one
    // address gets a quarter of it.
    assert!(
        (100..=2048).contains(&held.len()),
        "one address holds {} connections ({refused} refused)",
        held.len()
    );
    assert!(refused >= 1, "nothing refused: {} held", held.len());
    let t0 = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (st, _) = get_on(&mut s, "/v1/health").unwrap();
    assert_eq!(st, 200);
    let (st, _) = get_on(&mut s, "/metrics").unwrap();
    assert_eq!(st, 200);
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    drop(held);
}
