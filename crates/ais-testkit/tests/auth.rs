//! Authentication and authorization (`AIS_AUTH=1`): tokens through the Rust
//! client (GETs follow the proxy's redirect, PUTs go straight to the owner
//! target), roles, bucket limits, revocation on proxy and target, expiry,
//! direct target access, and `ais auth login/logout`.

use ais_client::Client;
use ais_testkit::{bin, raw_http, Cluster, Opts};
use std::process::Command;

const ADMIN_PW: &str = "rust-admin-pw";

fn auth_cluster() -> Cluster {
    Cluster::start_with(Opts {
        targets: 2,
        env: vec![
            ("AIS_AUTH".into(), "1".into()),
            ("AIS_AUTH_SECRET".into(), "rust-test-secret".into()),
            ("AIS_AUTH_ADMIN_PASSWORD".into(), ADMIN_PW.into()),
        ],
        ..Default::default()
    })
    .unwrap()
}

fn status<T: std::fmt::Debug>(r: ais_client::Result<T>) -> (u16, String) {
    let e = r.unwrap_err();
    (e.status().unwrap_or(0), e.to_string())
}

#[test]
fn tokens_roles_buckets_revocation_expiry() {
    let mut c = auth_cluster();
    let url = c.url().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let revoked = rt.block_on(async {
        // No token, a garbage token: 401.
        let (st, msg) = status(Client::new(&url).list_buckets().await);
        assert_eq!(st, 401, "{msg}");
        assert!(msg.contains("missing token"), "{msg}");
        let (st, _) = status(Client::with_token(&url, Some("x.y.z")).list_buckets().await);
        assert_eq!(st, 401);
        let (st, msg) = status(Client::new(&url).login("admin", "nope", None).await);
        assert_eq!(st, 401, "{msg}");
        assert!(msg.contains("invalid credentials"), "{msg}");

        // Admin: everything.
        let tok = Client::new(&url)
            .login("admin", ADMIN_PW, None)
            .await
            .unwrap();
        let admin = Client::with_token(&url, Some(&tok));
        admin.create_bucket("pub").await.unwrap();
        admin.create_bucket("priv").await.unwrap();
        admin.put_bytes("pub", "a", b"aaa".to_vec()).await.unwrap();
        admin.put_bytes("priv", "s", b"sss".to_vec()).await.unwrap();
        assert_eq!(&admin.get("pub", "a").await.unwrap()[..], b"aaa");
        assert_eq!(admin.list_all("pub", "", "").await.unwrap().len(), 1);
        admin.delete_object("pub", "a").await.unwrap();
        admin.put_bytes("pub", "a", b"aaa".to_vec()).await.unwrap();

        // Read-only: GET and list, no PUT/DELETE (the PUT is refused by the target).
        admin
            .add_user("ro", "ro-pw", &["read-only".into()])
            .await
            .unwrap();
        let ro = Client::with_token(
            &url,
            Some(&Client::new(&url).login("ro", "ro-pw", None).await.unwrap()),
        );
        assert_eq!(&ro.get("pub", "a").await.unwrap()[..], b"aaa");
        assert_eq!(ro.list_all("pub", "", "").await.unwrap().len(), 1);
        assert_eq!(ro.list_buckets().await.unwrap().len(), 2);
        let (st, msg) = status(ro.put_bytes("pub", "b", b"b".to_vec()).await);
        assert_eq!(st, 403, "{msg}");
        assert!(
            msg.contains("read-only role") && msg.contains("PUT"),
            "{msg}"
        );
        let (st, _) = status(ro.delete_object("pub", "a").await);
        assert_eq!(st, 403);
        let (st, _) = status(ro.create_bucket("new").await);
        assert_eq!(st, 403);
        let (st, _) = status(ro.add_user("x", "y", &[]).await);
        assert_eq!(st, 403);

        // A role limited to one bucket.
        admin
            .add_role(
                "pub-rw",
                "rw on pub",
                1 | 2 | 4 | 16 | 256 | 512,
                Some("pub"),
            )
            .await
            .unwrap();
        admin
            .add_user("lim", "lim-pw", &["pub-rw".into()])
            .await
            .unwrap();
        let lim = Client::with_token(
            &url,
            Some(
                &Client::new(&url)
                    .login("lim", "lim-pw", None)
                    .await
                    .unwrap(),
            ),
        );
        lim.put_bytes("pub", "mine", b"m".to_vec()).await.unwrap();
        assert_eq!(&lim.get("pub", "mine").await.unwrap()[..], b"m");
        let (st, msg) = status(lim.get("priv", "s").await);
        assert_eq!(st, 403, "{msg}");
        assert!(msg.contains("no access to bucket \"ais://priv\""), "{msg}");
        let users = admin.users().await.unwrap();
        assert!(
            users.get("lim").is_some() && users.get("ro").is_some(),
            "{users}"
        );
        // Passwords are stored hashed only, in a file only the node reads
        // (the control plane's replicated AuthN document).
        let file = c.proxy.data.join("meta/docs/authn.json");
        let store = std::fs::read_to_string(&file).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(
            !store.contains("lim-pw")
                && !store.contains(ADMIN_PW)
                && store.contains("pbkdf2-sha256")
        );

        // Revocation: refused by the proxy and by a target (pushed to every node).
        // A second login in the same second is a different token.
        let t2 = Client::new(&url)
            .login("admin", ADMIN_PW, None)
            .await
            .unwrap();
        assert_ne!(t2, tok);
        let turl = c.targets[0].url.clone();
        let bearer = format!("Bearer {t2}");
        let (st, _) = raw_http(
            &turl,
            "GET",
            "/v1/objects/pub/a",
            &[("Authorization", &bearer)],
            b"",
        )
        .unwrap();
        assert!([200, 301, 307].contains(&st), "{st}");
        admin.revoke_token(&t2).await.unwrap();
        let (st, msg) = status(Client::with_token(&url, Some(&t2)).list_buckets().await);
        assert_eq!(st, 401);
        assert!(msg.contains("token revoked"), "{msg}");
        let (st, body) = raw_http(
            &turl,
            "GET",
            "/v1/objects/pub/a",
            &[("Authorization", &bearer)],
            b"",
        )
        .unwrap();
        assert_eq!(st, 401, "{}", String::from_utf8_lossy(&body));
        assert!(String::from_utf8_lossy(&body).contains("token revoked"));

        // Expiry.
        let short = Client::new(&url)
            .login("admin", ADMIN_PW, Some(1.0))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let (st, msg) = status(Client::with_token(&url, Some(&short)).list_buckets().await);
        assert_eq!(st, 401);
        assert!(msg.contains("token expired"), "{msg}");

        // Direct target access: no credential, a forged redirect credential,
        // a user token on an internal endpoint, a wrong cluster credential.
        let (st, _) = raw_http(&turl, "GET", "/v1/objects/pub/a", &[], b"").unwrap();
        assert_eq!(st, 401);
        let (st, _) = raw_http(
            &turl,
            "GET",
            "/v1/objects/pub/a?ais_auth=9999999999.AAAA",
            &[],
            b"",
        )
        .unwrap();
        assert_eq!(st, 401);
        let admin_bearer = format!("Bearer {tok}");
        let (st, body) = raw_http(
            &turl,
            "GET",
            "/v1/internal/list/pub",
            &[("Authorization", &admin_bearer)],
            b"",
        )
        .unwrap();
        assert_eq!(st, 401);
        assert!(String::from_utf8_lossy(&body).contains("cluster credential"));
        let (st, _) = raw_http(
            &turl,
            "PUT",
            "/v1/metasync",
            &[("Ais-Cluster-Auth", "forged")],
            b"{}",
        )
        .unwrap();
        assert_eq!(st, 401);
        // The proxy's redirect carries a credential the target accepts.
        let (st, hdrs, _) = ais_testkit::raw_http_full(
            &url,
            "GET",
            "/v1/objects/pub/a",
            &[("Authorization", &admin_bearer)],
            b"",
        )
        .unwrap();
        assert_eq!(st, 301, "{hdrs:?}");
        let loc = hdrs
            .iter()
            .find(|(k, _)| k == "location")
            .map(|(_, v)| v.clone())
            .unwrap();
        assert!(loc.contains("ais_auth="), "{loc}");
        let (base, path) = loc.split_at(loc.find("/v1/").unwrap());
        let (st, body) = raw_http(base, "GET", path, &[], b"").unwrap();
        assert_eq!((st, body.as_slice()), (200, b"aaa".as_slice()));
        // ... for that method and path only.
        let (st, _) = raw_http(base, "DELETE", path, &[], b"").unwrap();
        assert_eq!(st, 401);
        (turl, bearer)
    });
    // A restarted target (empty revoked set) gets the list again when it rejoins.
    let (turl, bearer) = revoked;
    c.restart_target(0).unwrap();
    c.wait_targets(2).unwrap();
    let turl_now = c.targets[0].url.clone();
    assert_eq!(turl_now, turl);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (st, _) = raw_http(
            &turl,
            "GET",
            "/v1/objects/pub/a",
            &[("Authorization", &bearer)],
            b"",
        )
        .unwrap();
        if st == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "restarted target accepts a revoked token ({st})"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn cli_login_ls_logout() {
    let c = auth_cluster();
    let tmp = tempfile::tempdir().unwrap();
    let tokf = tmp.path().join("auth.token");
    let ais = |args: &[&str]| {
        let out = Command::new(bin("ais"))
            .args(args)
            .env("AIS_ENDPOINT", c.url())
            .env("AIS_AUTHN_TOKEN_FILE", &tokf)
            .env_remove("AIS_AUTHN_TOKEN")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, _, err) = ais(&["bucket", "ls"]);
    assert!(!ok && err.contains("missing token"), "{err}");
    let (ok, _, err) = ais(&["auth", "login", "admin", "-p", ADMIN_PW]);
    assert!(ok, "{err}");
    let (ok, _, err) = ais(&["bucket", "create", "ais://clib"]);
    assert!(ok, "{err}");
    let (ok, out, err) = ais(&["bucket", "ls"]);
    assert!(ok && out.contains("ais://clib"), "{out}{err}");
    let (ok, _, err) = ais(&[
        "auth",
        "add",
        "user",
        "bob",
        "bob-pw",
        "--role",
        "read-only",
    ]);
    assert!(ok, "{err}");
    let (ok, out, _) = ais(&["auth", "show", "user"]);
    assert!(ok && out.contains("bob") && out.contains("Guest"), "{out}");
    let (ok, out, _) = ais(&["auth", "show", "role"]);
    assert!(ok && out.contains("BucketOwner"), "{out}");
    let (ok, _, err) = ais(&["auth", "rm", "user", "bob"]);
    assert!(ok, "{err}");
    let saved = std::fs::read_to_string(&tokf).unwrap();
    let (ok, _, err) = ais(&["auth", "logout"]);
    assert!(ok, "{err}");
    assert!(!tokf.exists());
    let (ok, _, err) = ais(&["bucket", "ls"]);
    assert!(!ok && err.contains("missing token"), "{err}");
    // The logged-out token itself is revoked.
    std::fs::write(&tokf, saved).unwrap();
    let (ok, _, err) = ais(&["bucket", "ls"]);
    assert!(!ok && err.contains("token revoked"), "{err}");
}

/// A user revoking their own tokens in a loop cannot grow the replicated
/// AuthN database without bound: past a cap, every token of theirs is
/// voided with one entry (their earlier tokens included). A proxy's node
/// action cannot be sent to it by a user, even an admin (only the primary,
/// with the intra-cluster credential, makes a proxy leave).
#[test]
fn self_revocations_are_capped_and_proxies_leave_only_through_the_primary() {
    let mut c = auth_cluster();
    c.add_proxy().unwrap();
    c.allow_log("control plane");
    let url = c.url().to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let tok = Client::new(&url)
            .login("admin", ADMIN_PW, None)
            .await
            .unwrap();
        let admin = Client::with_token(&url, Some(&tok));
        admin.add_user("loop", "loop-pw", &[]).await.unwrap();
        let keep = Client::new(&url)
            .login("loop", "loop-pw", None)
            .await
            .unwrap();
        for _ in 0..40 {
            let t = Client::new(&url)
                .login("loop", "loop-pw", None)
                .await
                .unwrap();
            Client::with_token(&url, Some(&t))
                .revoke_token(&t)
                .await
                .unwrap();
        }
        let db = std::fs::read_to_string(c.proxy.data.join("meta/docs/authn.json")).unwrap();
        let held = db.matches("\"owner\": \"loop\"").count();
        assert!(held <= 32, "{held} revocations of one user kept");
        // Folded into one cut-off: the token kept aside is void too.
        let (st, msg) = status(Client::with_token(&url, Some(&keep)).list_buckets().await);
        assert_eq!(st, 401, "{msg}");

        // An admin token sent straight to a (non-primary) proxy's node
        // action: refused, and the proxy keeps running.
        let other = c.proxies[0].url.clone();
        let bearer = format!("Bearer {tok}");
        for action in ["decommission-node", "shutdown-node"] {
            let (st, body) = raw_http(
                &other,
                "PUT",
                "/v1/daemon",
                &[
                    ("Authorization", &bearer),
                    ("content-type", "application/json"),
                ],
                format!("{{\"action\":\"{action}\"}}").as_bytes(),
            )
            .unwrap();
            let body = String::from_utf8_lossy(&body);
            assert_eq!(st, 403, "{action}: {body}");
            assert!(body.contains("when the primary says so"), "{body}");
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(c.proxies[0].is_running());
    c.stop().unwrap();
}
