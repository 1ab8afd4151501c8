//! The exact requests the ETL and job calls send (method, path and query,
//! content type, body), checked against a one-request fake server.

use ais_client::{BucketJobMsg, Client, ClientError, InitCodeMsg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the fake server saw.
#[derive(Debug)]
struct Seen {
    request_line: String,
    content_type: Option<String>,
    body: String,
}

/// Serves one request with `status` and `body`; returns the client's URL and
/// a handle that yields the request.
async fn one_shot(
    status: &'static str,
    body: &'static str,
) -> (String, tokio::task::JoinHandle<Seen>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let h = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "client closed early");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let header = |k: &str| {
            head.lines().find_map(|l| {
                let (a, b) = l.split_once(':')?;
                a.eq_ignore_ascii_case(k).then(|| b.trim().to_string())
            })
        };
        let len: usize = header("content-length")
            .map(|v| v.parse().unwrap())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let n = s.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
        }
        let resp = format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(resp.as_bytes()).await.unwrap();
        Seen {
            request_line: head.lines().next().unwrap_or("").to_string(),
            content_type: header("content-type"),
            body: String::from_utf8_lossy(&buf[head_end..]).to_string(),
        }
    });
    (url, h)
}

const JSON: Option<&str> = Some("application/json");

#[tokio::test]
async fn stop_job() {
    let (url, h) = one_shot("200 OK", "").await;
    Client::new(&url).stop_job("j1").await.unwrap();
    let s = h.await.unwrap();
    assert_eq!(s.request_line, "PUT /v1/cluster HTTP/1.1");
    assert_eq!(s.content_type.as_deref(), JSON);
    assert_eq!(s.body, r#"{"action":"stop","name":"","value":{"ID":"j1"}}"#);
}

#[tokio::test]
async fn job_status() {
    let (url, h) = one_shot("200 OK", r#"{"uuid":"j1","objs":2,"end_time":7}"#).await;
    let st = Client::new(&url).job_status("j1").await.unwrap();
    assert_eq!((st.uuid.as_str(), st.objs, st.finished()), ("j1", 2, true));
    let s = h.await.unwrap();
    assert_eq!(s.request_line, "GET /v1/cluster?what=status HTTP/1.1");
    assert_eq!(s.content_type.as_deref(), JSON);
    assert_eq!(s.body, r#"{"ID":"j1"}"#);
}

#[tokio::test]
async fn jobs() {
    let (url, h) = one_shot("200 OK", "[]").await;
    assert!(Client::new(&url).jobs().await.unwrap().is_empty());
    let s = h.await.unwrap();
    assert_eq!(s.request_line, "GET /v1/cluster?what=jobs HTTP/1.1");
    assert_eq!(s.body, "{}");
}

#[tokio::test]
async fn transform_bucket() {
    let (url, h) = one_shot("200 OK", "job-1").await;
    let msg = BucketJobMsg {
        prefix: "d/".into(),
        ..Default::default()
    };
    let id = Client::new(&url)
        .transform_bucket("src", "dst", "up", &msg)
        .await
        .unwrap();
    assert_eq!(id, "job-1");
    let s = h.await.unwrap();
    assert_eq!(
        s.request_line,
        "POST /v1/buckets/src?provider=ais&bck_to=ais/@%23/dst/ HTTP/1.1"
    );
    assert_eq!(s.content_type.as_deref(), JSON);
    assert_eq!(
        s.body,
        r#"{"action":"etl-bck","name":"","value":{"coer":false,"dry_run":false,"id":"up","num-workers":0,"prefix":"d/","prepend":""}}"#
    );
}

#[tokio::test]
async fn etl_init_code() {
    let (url, h) = one_shot("200 OK", "xid").await;
    let msg = InitCodeMsg {
        name: "up".into(),
        code: b"x".to_vec(),
        ..Default::default()
    };
    assert_eq!(Client::new(&url).etl_init_code(&msg).await.unwrap(), "xid");
    let s = h.await.unwrap();
    assert_eq!(s.request_line, "PUT /v1/etl HTTP/1.1");
    assert_eq!(s.content_type.as_deref(), JSON);
    assert!(
        s.body.starts_with(r#"{"argument":"","code":"eA==","#),
        "{}",
        s.body
    );
}

#[tokio::test]
async fn etl_lifecycle_has_no_body() {
    for (what, line) in [
        ("stop", "POST /v1/etl/up/stop HTTP/1.1"),
        ("start", "POST /v1/etl/up/start HTTP/1.1"),
        ("rm", "DELETE /v1/etl/up HTTP/1.1"),
    ] {
        let (url, h) = one_shot("200 OK", "").await;
        let c = Client::new(&url);
        match what {
            "stop" => c.etl_stop("up").await,
            "start" => c.etl_start("up").await,
            _ => c.etl_remove("up").await,
        }
        .unwrap();
        let s = h.await.unwrap();
        assert_eq!(s.request_line, line);
        assert_eq!((s.content_type, s.body.as_str()), (None, ""));
    }
}

#[tokio::test]
async fn etl_object_to() {
    let (url, h) = one_shot("200 OK", "").await;
    Client::new(&url)
        .etl_object_to(("src", "d/3.txt"), ("copy", "x/3.txt"), "up", Some("a&b"))
        .await
        .unwrap();
    let s = h.await.unwrap();
    assert_eq!(
        s.request_line,
        "PUT /v1/objects/src/d/3.txt?provider=ais&object_to=ais/@%23/copy/x/3.txt&etl_name=up&etl_args=a%26b HTTP/1.1"
    );
}

#[tokio::test]
async fn errors_are_decoded() {
    let (url, h) = one_shot(
        "404 Not Found",
        r#"{"message":"etl job nope does not exist","status":404}"#,
    )
    .await;
    let err = Client::new(&url).etl_show("nope").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(matches!(err, ClientError::Http { .. }));
    assert_eq!(err.to_string(), "etl job nope does not exist");
    assert_eq!(h.await.unwrap().request_line, "GET /v1/etl/nope HTTP/1.1");
}

#[tokio::test]
async fn etl_logs_decoded() {
    let (url, h) = one_shot("200 OK", r#"[{"target_id":"t1","logs":"aGkK"}]"#).await;
    let logs = Client::new(&url).etl_logs("up", Some("t1")).await.unwrap();
    assert_eq!(
        (logs[0].target_id.as_str(), logs[0].text().as_str()),
        ("t1", "hi\n")
    );
    assert_eq!(
        h.await.unwrap().request_line,
        "GET /v1/etl/up/logs/t1 HTTP/1.1"
    );
}
