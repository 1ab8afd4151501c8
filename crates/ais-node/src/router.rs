//! The router: parses each request once into an [`Endpoint`] and hands it
//! to the handler of this node's role. The only module that sees both
//! roles.

use crate::error::ApiError;
use crate::http::{error_response, Ctx, Endpoint, Query, Res};
use crate::proxy::{self, Proxy};
use crate::state::{Member, NodeCore};
use crate::target::{self, Target};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use std::net::SocketAddr;
use std::sync::Arc;

/// A running node, by role.
#[derive(Clone)]
pub enum App {
    Proxy(Arc<Proxy>),
    Target(Arc<Target>),
}

impl App {
    pub fn core(&self) -> &NodeCore {
        match self {
            App::Proxy(p) => &p.core,
            App::Target(t) => &t.core,
        }
    }
}

/// AIStore's "easy URL" of a remote bucket (`/aws/B[/O]`, `/gs/...`,
/// `/gcp/...`, `/az/...`, `/azure/...`) as the native request it stands
/// for (`/v1/buckets/B` or `/v1/objects/B/O` with that `provider`); `None`
/// for every other path. A `provider` in the query other than the path's
/// is a 400.
fn easy_url(ctx: &Ctx) -> crate::error::ApiResult<Option<Ctx>> {
    let Some((head, rest)) = ctx.path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return Ok(None);
    };
    let provider = match head {
        "aws" | "gs" | "gcp" | "az" | "azure" => ais_core::names::normalize_provider(head)?,
        _ => return Ok(None),
    };
    let native = match rest.split_once('/') {
        Some((b, o)) if !b.is_empty() && !o.is_empty() => format!("/v1/objects/{b}/{o}"),
        Some((_, "")) | None if !rest.trim_end_matches('/').is_empty() => {
            format!("/v1/buckets/{}", rest.trim_end_matches('/'))
        }
        _ => return Ok(None),
    };
    let raw_query = match ctx.query.get("provider") {
        Some(p) if ais_core::names::normalize_provider(p).ok().as_ref() == Some(&provider) => {
            ctx.raw_query.clone()
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "{}: provider=\"{other}\" contradicts the path (a {provider} bucket)",
                ctx.path
            )))
        }
        None if ctx.raw_query.is_empty() => format!("provider={provider}"),
        None => format!("{}&provider={provider}", ctx.raw_query),
    };
    Ok(Some(Ctx {
        method: ctx.method.clone(),
        path: native,
        query: Query::parse(&raw_query)?,
        raw_query,
        headers: ctx.headers.clone(),
        remote: ctx.remote,
    }))
}

/// One request from the socket (`serve.rs` calls this directly: no tower
/// router in between, the [`Endpoint`] parse is the routing).
pub async fn dispatch(app: App, remote: SocketAddr, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let (query, bad_query) = match Query::parse(&raw_query) {
        Ok(q) => (q, None),
        Err(e) => (Query::default(), Some(e)),
    };
    let ctx = Ctx {
        method: parts.method,
        path,
        raw_query,
        query,
        headers: parts.headers,
        remote,
    };
    let res = match bad_query {
        Some(e) => Err(e),
        None => handle(&app, &ctx, body).await,
    };
    match res {
        Ok(r) => r,
        Err(e) => {
            if e.status().is_server_error() {
                tracing::warn!(method = %ctx.method, path = %ctx.path, status = e.status().as_u16(), error = %e, "request failed");
            }
            error_response(&app.core().name, &ctx, e)
        }
    }
}

/// Handles one request in-process (what `dispatch` does minus the socket):
/// tests can call it without a server.
pub async fn handle(app: &App, ctx: &Ctx, body: Body) -> Res {
    // The S3 API authenticates its own way (SigV4, `s3::sigv4`) and is
    // served by any node, with no redirects.
    if let Some(bucket) = crate::s3::vhost_bucket(ctx) {
        let key = ctx.path.trim_start_matches('/');
        return Ok(crate::s3::serve(app.core(), ctx, &bucket, key, body).await);
    }
    if let Some(native) = easy_url(ctx)? {
        return route(app, &native, body).await;
    }
    route(app, ctx, body).await
}

/// [`handle`] past the S3 front door and the easy URLs.
async fn route(app: &App, ctx: &Ctx, body: Body) -> Res {
    let ep = Endpoint::parse(&ctx.path);
    if let Endpoint::S3 { bucket, key } = ep {
        return Ok(crate::s3::serve(app.core(), ctx, bucket, key, body).await);
    }
    // A non-primary proxy serves the data path and sends the rest to the
    // primary (which checks everything itself).
    if let App::Proxy(p) = app {
        if proxy::forward::needed(p, ctx, &ep) {
            return proxy::forward::to_primary(p, ctx, body).await;
        }
    }
    let is_proxy = matches!(app, App::Proxy(_));
    if is_proxy {
        crate::http::reject_internal_params(ctx)?;
    }
    let primary = match app {
        App::Proxy(p) => p.primary_opt(),
        _ => None,
    };
    let body = match crate::auth::gate(app.core(), is_proxy, primary, ctx, &ep, body).await? {
        crate::auth::Gate::Pass(b) => b,
        crate::auth::Gate::Done(r) => return Ok(r),
    };
    match (&ep, app) {
        (Endpoint::Health, _) => app.core().health(ctx),
        (Endpoint::Metrics, _) => metrics(app, ctx).await,
        (Endpoint::DaemonSetConfig, _) => app.core().config.set_node(ctx),
        (Endpoint::Daemon, _) if ctx.method == Method::PUT => {
            let msg = ais_core::api::ActMsg::parse(&crate::http::read_body(body, 1 << 20).await?)?;
            let core = app.core();
            if msg.action == "reset-stats" {
                ctx.query.reject_unknown("reset-stats", &[])?;
                core.metrics
                    .reset(crate::http::reset_errors_only(&msg.value)?);
                return Ok(crate::http::empty(StatusCode::OK));
            }
            match (core.config.node_action(ctx, &msg), app) {
                (Some(r), _) => r,
                (None, App::Target(t)) => target::lifecycle::daemon_action(t, ctx, msg).await,
                (None, App::Proxy(p)) => proxy::role::daemon_action(p, ctx, msg).await,
            }
        }
        (Endpoint::Daemon, App::Target(t)) if ctx.query.get("what") == Some("mountpaths") => {
            target::resilver::show(t)
        }
        (Endpoint::DaemonMountpaths, App::Target(t)) => {
            target::resilver::action(t, ctx, body).await
        }
        (Endpoint::Daemon, _)
            if matches!(
                ctx.query.get("what"),
                Some("node_status" | "status" | "stats" | "log")
            ) =>
        {
            node_report(app, ctx).await
        }
        (Endpoint::Daemon, _) if ctx.query.get("what") == Some("sysinfo") => {
            ctx.query.reject_unknown("sysinfo", &["what"])?;
            crate::http::json_ok(&crate::state::sysinfo())
        }
        (Endpoint::Daemon, _) => app.core().daemon_info(ctx),
        (Endpoint::Metasync, _) => {
            ctx.expect_method(&[Method::PUT])?;
            let sync = crate::http::read_json(body, 64 << 20, "metasync").await?;
            match app {
                App::Proxy(p) => p.apply_sync(&sync)?,
                App::Target(t) => t.apply_sync(&sync)?,
            }
            Ok(crate::http::empty(StatusCode::OK))
        }
        (Endpoint::Raft(kind), App::Proxy(p)) => {
            proxy::role::raft_message(p, ctx, kind, body).await
        }
        (Endpoint::Provider(p), _) => Err(ApiError::bad_request(format!(
            "easy URL /{p}/ names no bucket: use /{p}/BUCKET or /{p}/BUCKET/OBJECT"
        ))),
        (_, App::Proxy(p)) => proxy_endpoint(p, ctx, ep, body).await,
        (_, App::Target(t)) => target_endpoint(t, ctx, ep, body).await,
    }
}

/// `GET /metrics`: this node's counters, plus a target's mountpath
/// capacity and ETL counters gathered now.
/// `GET /v1/daemon?what=node_status` (also `status` and `stats`: this
/// node's identity, state and counters, as the SDK's `get_performance`
/// reads them) or `what=log`
/// (`severity=info|warning|error`; `all=true`: the same as a tar.gz).
async fn node_report(app: &App, ctx: &Ctx) -> Res {
    ctx.query
        .reject_unknown("a node report", &["what", "severity", "all"])?;
    let core = app.core();
    if ctx.query.get("what") == Some("log") {
        let sev = ctx.query.get("severity").unwrap_or("info");
        let text = crate::logring::snapshot(sev).ok_or_else(|| {
            ApiError::bad_request(format!(
                "severity=\"{sev}\": expected info, warning or error"
            ))
        })?;
        if ctx.query.get("all") == Some("true") {
            let pack = || -> std::io::Result<Vec<u8>> {
                let mut w =
                    ais_storage::archive::Writer::new(ais_storage::archive::OutFmt::TarGz, None)?;
                w.add(&format!("{}.log", core.snode.daemon_id), text.as_bytes())?;
                w.finish()
            };
            let gz = pack().map_err(|e| ApiError::internal(format!("pack the log: {e}")))?;
            return Ok(crate::http::bytes_response(
                StatusCode::OK,
                "application/gzip",
                gz,
            ));
        }
        return Ok(crate::http::bytes_response(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            text.into_bytes(),
        ));
    }
    let text = match app {
        App::Proxy(p) => p.core.metrics.render(&[], &[]),
        App::Target(t) => target::stats::render_metrics(t).await,
    };
    // Prometheus lines `name{labels} value` as a map (comments left out).
    let tracker: serde_json::Map<String, serde_json::Value> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_string(), serde_json::json!(v.parse::<f64>().ok()?))))
        .collect();
    let capacity = match app {
        App::Target(t) => serde_json::to_value(target::stats::mountpaths(t))
            .map_err(|e| ApiError::internal(e.to_string()))?,
        App::Proxy(_) => serde_json::Value::Null,
    };
    crate::http::json_ok(&serde_json::json!({
        "snode": core.snode,
        "status": "online",
        "tracker": tracker,
        "capacity": capacity,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn metrics(app: &App, ctx: &Ctx) -> Res {
    ctx.expect_method(&[Method::GET])?;
    let text = match app {
        App::Proxy(p) => p.core.metrics.render(&[], &[]),
        App::Target(t) => target::stats::render_metrics(t).await,
    };
    Ok(crate::http::bytes_response(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        text.into_bytes(),
    ))
}

async fn proxy_endpoint(p: &Arc<Proxy>, ctx: &Ctx, ep: Endpoint<'_>, body: Body) -> Res {
    match ep {
        Endpoint::Cluster => proxy::cluster::cluster(p, ctx, body).await,
        Endpoint::Join => proxy::cluster::join(p, ctx, body).await,
        Endpoint::Keepalive => proxy::cluster::keepalive(p, ctx, body).await,
        Endpoint::Buckets => proxy::buckets::list_buckets(p, ctx),
        Endpoint::Bucket(b) => proxy::buckets::bucket(p, ctx, b, body).await,
        Endpoint::Object { bucket, obj } => proxy::objects::object(p, ctx, bucket, obj, body).await,
        Endpoint::Etl(path) => proxy::etl::control(p, ctx, path, body).await,
        Endpoint::Moss(b) => proxy::objects::get_batch(p, ctx, b, body).await,
        Endpoint::ReverseDaemon => proxy::cluster::reverse_daemon(p, ctx, body).await,
        Endpoint::ReverseDaemonSetConfig => {
            ctx.expect_method(&[Method::PUT])?;
            proxy::config::reverse_put(p, ctx, "/set-config", body).await
        }
        Endpoint::ClusterSetConfig => proxy::config::set_cluster(p, ctx).await,
        Endpoint::SetPrimary(id) => proxy::role::set_primary(p, ctx, id).await,
        Endpoint::Sort(what) => proxy::dsort::handle(p, ctx, what, body).await,
        Endpoint::Download(what) => proxy::download::handle(p, ctx, what, body).await,
        _ => Err(ctx.unknown_path()),
    }
}

async fn target_endpoint(t: &Arc<Target>, ctx: &Ctx, ep: Endpoint<'_>, body: Body) -> Res {
    match ep {
        Endpoint::Cluster => t.core.daemon_info(ctx),
        Endpoint::Object { bucket, obj } => {
            target::objects::object(t, ctx, bucket, obj, body).await
        }
        Endpoint::EtlObject { etl, secret, uname } => {
            target::etl::transformer_object(t, ctx, etl, secret, uname).await
        }
        Endpoint::Moss(b) => target::batch::serve(t, ctx, b, body).await,
        Endpoint::IntList(b) => target::internal::list(t, ctx, b).await,
        Endpoint::IntNbi(b) => target::nbi::internal(t, ctx, b).await,
        Endpoint::IntObjAttrs { bucket, obj } => {
            target::internal::obj_attrs(t, ctx, bucket, obj).await
        }
        Endpoint::IntObject { bucket, obj } => {
            target::internal::delete_local(t, ctx, bucket, obj).await
        }
        Endpoint::IntEc { bucket, obj } => target::ec::internal(t, ctx, bucket, obj, body).await,
        Endpoint::IntEtl { name, what } => target::etl::internal(t, ctx, name, what, body).await,
        Endpoint::IntJobs { id, what } => target::jobs::internal(t, ctx, id, what, body).await,
        Endpoint::IntSort { id, what } => target::dsort::internal(t, ctx, id, what, body).await,
        Endpoint::IntS3 { what, bucket, obj } => {
            target::s3::internal(t, ctx, what, bucket, obj, body).await
        }
        _ => Err(ctx.unknown_path()),
    }
}

#[cfg(test)]
mod tests {
    //! Handlers in-process: a primary proxy with no targets, no socket.
    use super::*;
    use ais_cluster::{LocalLog, MetaStore, Primary, PrimaryConfig};
    use ais_core::meta::{NodeType, Snode};
    use axum::http::HeaderMap;

    async fn proxy(dir: &std::path::Path) -> App {
        let snode = Snode::new("p1", NodeType::Proxy, "127.0.0.1", 1);
        let meta = MetaStore::open(dir).unwrap();
        let config =
            crate::config::NodeConfig::open(dir.into(), Default::default(), &meta.config());
        let core = NodeCore::new("p1".into(), snode.clone(), meta.clone(), None, config).unwrap();
        let transport = Arc::new(core.rpc.clone());
        let log = Arc::new(LocalLog(meta.clone()));
        let primary = Primary::new(
            meta.clone(),
            snode,
            PrimaryConfig::default(),
            transport,
            log,
        );
        primary.take_office(|_| Vec::new()).await.unwrap();
        App::Proxy(Arc::new(Proxy::new(
            core,
            Some(primary),
            crate::proxy::jobs::Registry::new(meta, None),
        )))
    }

    fn ctx(method: Method, path_and_query: &str) -> Ctx {
        let (path, q) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        Ctx {
            method,
            path: path.into(),
            raw_query: q.into(),
            query: Query::parse(q).unwrap(),
            headers: HeaderMap::new(),
            remote: "127.0.0.1:9".parse().unwrap(),
        }
    }

    async fn call(app: &App, method: Method, pq: &str, body: &str) -> (u16, String) {
        let c = ctx(method, pq);
        let r = match handle(app, &c, Body::from(body.to_string())).await {
            Ok(r) => r,
            Err(e) => error_response("p1", &c, e),
        };
        let st = r.status().as_u16();
        let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (st, String::from_utf8_lossy(&b).into_owned())
    }

    #[tokio::test]
    async fn buckets_and_errors_in_process() {
        let d = tempfile::tempdir().unwrap();
        let app = proxy(d.path()).await;
        let (st, _) = call(
            &app,
            Method::POST,
            "/v1/buckets/b1",
            r#"{"action":"create-bck"}"#,
        )
        .await;
        assert_eq!(st, 200);
        let (st, body) = call(&app, Method::GET, "/v1/buckets", "").await;
        assert_eq!((st, body.contains("\"b1\"")), (200, true), "{body}");
        // Same bucket again: 409 with AIStore's tcode.
        let (st, body) = call(
            &app,
            Method::POST,
            "/v1/buckets/b1",
            r#"{"action":"create-bck"}"#,
        )
        .await;
        assert_eq!(st, 409);
        assert!(body.contains("ErrBucketAlreadyExists"), "{body}");
        // No targets yet: an object request is retryable, not a 404.
        let (st, body) = call(&app, Method::GET, "/v1/objects/b1/o", "").await;
        assert_eq!(st, 503, "{body}");
        // Bad input: malformed JSON, missing bucket, unknown path, bad method.
        let (st, body) = call(&app, Method::POST, "/v1/buckets/b1", "{nope").await;
        assert_eq!(st, 400, "{body}");
        let (st, body) = call(&app, Method::GET, "/v1/objects/nob/o", "").await;
        assert_eq!(st, 404);
        assert!(
            body.contains("ErrBckNotFound") && body.contains("nob"),
            "{body}"
        );
        let (st, _) = call(&app, Method::GET, "/v1/nonsense", "").await;
        assert_eq!(st, 404);
        let (st, _) = call(&app, Method::DELETE, "/v1/buckets", "").await;
        assert_eq!(st, 405);
        let (st, _) = call(&app, Method::GET, "/gs/b/o", "").await;
        assert_eq!(st, 501);
        // S3: XML errors, no redirects.
        let (st, body) = call(&app, Method::GET, "/s3/nob/o", "").await;
        assert_eq!(st, 404, "{body}");
        assert!(body.contains("<Code>NoSuchBucket</Code>"), "{body}");
        let (st, body) = call(&app, Method::GET, "/s3", "").await;
        assert_eq!(st, 200, "{body}");
        assert!(body.contains("<Name>b1</Name>"), "{body}");
        // Metadata queries.
        let (st, body) = call(&app, Method::GET, "/v1/daemon?what=bmd", "").await;
        assert_eq!(st, 200);
        assert!(body.contains("b1"), "{body}");
    }
}
