//! GET of archive members (`archpath`, or `archregx` + `archmode`) on the
//! target that holds the shard: one member as its own bytes, or every
//! matching member as a tar (AIStore's behaviour). The shard is never
//! sent whole; see `ais_storage::archive` for the member index.

use super::Target;
use crate::error::{self, ApiError, ApiResult};
use crate::http::{Ctx, Res};
use ais_core::Bck;
use ais_storage::archive::{self, ArchKind, Matcher, MemberData};
use ais_storage::StorageError;
use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use std::sync::Arc;

/// What a request asks of a shard.
#[derive(Debug, Clone)]
pub enum ArchSpec {
    /// One member by name.
    Path(String),
    /// Every member matching, as a tar.
    Match { regx: String, mode: String },
}

impl ArchSpec {
    /// From `archpath` / `archregx` / `archmode`; `None` for a plain GET.
    pub fn from_query(ctx: &Ctx) -> ApiResult<Option<ArchSpec>> {
        let path = ctx.query.get("archpath").filter(|s| !s.is_empty());
        let regx = ctx.query.get("archregx").filter(|s| !s.is_empty());
        let mode = ctx.query.get("archmode").unwrap_or("");
        match (path, regx) {
            (Some(_), Some(_)) => Err(ApiError::bad_request(
                "archpath and archregx cannot be used together",
            )),
            (Some(p), None) => Ok(Some(ArchSpec::Path(p.to_string()))),
            (None, Some(r)) => {
                Matcher::from_query(r, mode).map_err(|e| ApiError::bad_request(e.to_string()))?;
                Ok(Some(ArchSpec::Match {
                    regx: r.to_string(),
                    mode: mode.to_string(),
                }))
            }
            (None, None) if !mode.is_empty() => Err(ApiError::bad_request(
                "archmode needs archregx (the pattern to match member names with)",
            )),
            (None, None) => Ok(None),
        }
    }
}

fn kind_of(bck: &Bck, obj: &str) -> ApiResult<ArchKind> {
    ArchKind::of(obj).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{}/{obj} is not an archive (supported: .tar, .tgz, .tar.gz, .tar.lz4, .zip); \
             archpath/archregx apply to shards only",
            bck.cname()
        ))
    })
}

/// The bytes a spec selects from a shard stored here: (name in archive, bytes).
pub async fn member_bytes(
    t: &Target,
    bck: &Bck,
    obj: &str,
    spec: &ArchSpec,
) -> ApiResult<(String, Vec<u8>)> {
    let kind = kind_of(bck, obj)?;
    let path = t.store.obj_path(bck, obj);
    let (cname, node) = (format!("{}/{obj}", bck.cname()), t.core.name.clone());
    let spec = spec.clone();
    let (b, o) = (bck.clone(), obj.to_string());
    tokio::task::spawn_blocking(move || -> ApiResult<(String, Vec<u8>)> {
        let serr = |e| error::storage(&node, &b, &o, e);
        match &spec {
            ArchSpec::Path(p) => {
                let list = archive::members(&path, kind).map_err(serr)?;
                let m = archive::find(&list, &Matcher::Exact(p.clone())).ok_or_else(|| {
                    ApiError::NotFound(format!("{node}: {p} not found in {cname}"))
                })?;
                Ok((
                    m.name.clone(),
                    archive::read_bytes(&path, kind, m).map_err(serr)?,
                ))
            }
            ArchSpec::Match { regx, mode } => {
                let m = Matcher::from_query(regx, mode)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                let list = archive::members(&path, kind).map_err(serr)?;
                if archive::find(&list, &m).is_none() {
                    return Err(ApiError::NotFound(format!(
                        "{node}: no member of {cname} matches {mode} \"{regx}\""
                    )));
                }
                Ok((
                    String::new(),
                    archive::read_matching_as_tar(&path, kind, &m).map_err(serr)?,
                ))
            }
        }
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
}

/// `GET /v1/objects/B/SHARD?archpath=M` (or `archregx`): the member's bytes,
/// streamed from the shard file when stored uncompressed.
pub async fn get(t: &Arc<Target>, ctx: &Ctx, bck: &Bck, obj: &str, spec: ArchSpec) -> Res {
    let kind = kind_of(bck, obj)?;
    let foreign = t.foreign_owner(ctx, bck, obj);
    let found = match t.store.head(bck, obj).await {
        Err(e) if super::ec::recover(t, bck, obj, &e).await? => t.store.head(bck, obj).await,
        r => r,
    };
    match found {
        Ok(_) => {}
        Err(StorageError::NotFound) => return t.not_here(ctx, bck, obj, foreign).await,
        Err(e) => return Err(error::storage(&t.core.name, bck, obj, e)),
    }
    if super::verify_reads(&t.core.bucket_props(bck)?) || ctx.query.get("ais_verify").is_some() {
        t.verified_source(bck, obj).await?;
    }
    let body = match &spec {
        ArchSpec::Path(p) => {
            let path = t.store.obj_path(bck, obj);
            let (node, cname, p2, b, o) = (
                t.core.name.clone(),
                format!("{}/{obj}", bck.cname()),
                p.clone(),
                bck.clone(),
                obj.to_string(),
            );
            let (node2, b2, o2) = (node.clone(), bck.clone(), obj.to_string());
            let (data, path, member) = tokio::task::spawn_blocking(move || -> ApiResult<_> {
                let serr = |e| error::storage(&node, &b, &o, e);
                let list = archive::members(&path, kind).map_err(serr)?;
                let m = archive::find(&list, &Matcher::Exact(p2.clone())).ok_or_else(|| {
                    ApiError::NotFound(format!("{node}: {p2} not found in {cname}"))
                })?;
                Ok((
                    archive::read(&path, kind, m).map_err(serr)?,
                    path,
                    m.clone(),
                ))
            })
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??;
            match data {
                // Inflated as the client reads (a bounded channel of 256 KiB
                // pieces): memory stays flat whatever the member's size; the
                // index already checked that its bytes are there.
                MemberData::Inflate { len } => {
                    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
                    tokio::task::spawn_blocking(move || {
                        let res = archive::stream_member(&path, kind, &member, |b| {
                            tx.blocking_send(Ok(bytes::Bytes::copy_from_slice(b)))
                                .map_err(|_| std::io::Error::other("client went away"))
                        });
                        if let Err(e) = res {
                            let e = error::storage(&node2, &b2, &o2, e);
                            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                        }
                    });
                    (len, Body::from_stream(tokio_stream_of(rx)))
                }
                MemberData::Range { offset, len } => {
                    use std::io::Seek;
                    use tokio::io::AsyncReadExt;
                    let mut f = std::fs::File::open(&path)
                        .map_err(|e| ApiError::internal(format!("open {}: {e}", path.display())))?;
                    f.seek(std::io::SeekFrom::Start(offset))
                        .map_err(|e| ApiError::internal(format!("seek {}: {e}", path.display())))?;
                    let f = tokio::fs::File::from_std(f).take(len);
                    (
                        len,
                        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(f, 1 << 20)),
                    )
                }
            }
        }
        ArchSpec::Match { .. } => {
            let (_, tar) = member_bytes(t, bck, obj, &spec).await?;
            (tar.len() as u64, Body::from(tar))
        }
    };
    let mut r = Response::new(body.1);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.0));
    Ok(r)
}

/// An `archive` job on this target. Only the shard's owner works: it reads
/// each named object (from whichever target stores it, a window at a time),
/// appends it to the shard being built in a spool file on its mountpath,
/// then stores the shard like a PUT (atomically, with the bucket's
/// redundancy). With `append`, an existing shard's members come first.
pub async fn run_job(t: &Arc<Target>, job: &Arc<super::jobs::TargetJob>) -> ApiResult<()> {
    use futures::StreamExt;
    use std::sync::atomic::Ordering;
    let spec = &job.spec;
    let a = spec
        .archive
        .clone()
        .ok_or_else(|| ApiError::bad_request("archive job without a shard name"))?;
    let (src, dst) = (t.core.bck(spec.src.clone()), t.core.bck(spec.dst.clone()));
    let owner = t.core.owner(&dst.obj_uname(&a.name));
    if owner.is_none_or(|o| o.daemon_id != t.core.id) {
        job.counted.store(true, Ordering::Relaxed);
        return Ok(());
    }
    let names: Vec<String> = if !spec.msg.objnames.is_empty() {
        spec.msg.objnames.clone()
    } else {
        ais_core::api::expand_template(&spec.msg.template, ais_core::api::MAX_TEMPLATE)?
    };
    job.total_objs.store(names.len() as u64, Ordering::Relaxed);
    job.counted.store(true, Ordering::Relaxed);
    let kind = kind_of(&dst, &a.name)?;
    let fmt = kind.out_fmt();
    let spool = t.store.work_file(&dst, &a.name, "archive");
    let _guard = Spool(spool.clone());
    let io =
        |e: std::io::Error| ApiError::internal(format!("{}: build {}: {e}", t.core.name, a.name));
    let file = std::fs::File::create(&spool).map_err(io)?;
    let mut out = std::io::BufWriter::new(file.try_clone().map_err(io)?);
    let mut w = archive::Writer::new(fmt, Some(file)).map_err(io)?;
    let flush = |w: &mut archive::Writer, out: &mut std::io::BufWriter<std::fs::File>| {
        use std::io::Write;
        let chunk = w.take();
        out.write_all(&chunk)
    };
    if a.append {
        // By its attributes (`is_file` on the path would say no for a shard
        // that a name below it nested meanwhile, and the append would
        // replace it).
        let existing = t.store.obj_path(&dst, &a.name);
        if t.store.head(&dst, &a.name).await.is_ok() {
            // One member in memory at a time (each at most
            // AIS_MAX_MEMBER_INMEM): appending to a large shard, or a bomb,
            // never holds the shard.
            let (p, name) = (existing.clone(), a.name.clone());
            let serr =
                move |e: StorageError| ApiError::BadRequest(format!("append to {name}: {e}"));
            let list = {
                let (p, serr) = (p.clone(), serr.clone());
                tokio::task::spawn_blocking(move || archive::members(&p, kind).map_err(serr))
                    .await
                    .map_err(|e| ApiError::internal(e.to_string()))??
            };
            for m in list.iter().cloned() {
                let (p, serr) = (p.clone(), serr.clone());
                let (n, d) = tokio::task::spawn_blocking(move || -> ApiResult<_> {
                    Ok((
                        m.name.clone(),
                        archive::read_bytes(&p, kind, &m).map_err(serr)?,
                    ))
                })
                .await
                .map_err(|e| ApiError::internal(e.to_string()))??;
                w.add(&n, &d).map_err(io)?;
                flush(&mut w, &mut out).map_err(io)?;
            }
        }
    }
    let mut items = futures::stream::iter(names.into_iter().map(|n| {
        let (t, src) = (t.clone(), src.clone());
        async move {
            let r = super::batch::fetch_object(&t, &src, &n).await;
            (n, r)
        }
    }))
    .buffered(16);
    while let Some((n, r)) = items.next().await {
        if job.aborted.load(Ordering::Relaxed) {
            return Ok(());
        }
        let cname = format!("{}/{n}", src.cname());
        let data = match r {
            Ok(Some(d)) => d,
            Ok(None) => {
                let e = ApiError::object_not_found(&t.core.name, &src, &n);
                job.record(&cname, &e);
                if !spec.msg.coer {
                    job.fail(format!("{cname}: {e}"));
                    return Ok(());
                }
                continue;
            }
            Err(e) => {
                job.record(&cname, &e);
                if !spec.msg.coer {
                    job.fail(format!("{cname}: {e}"));
                    return Ok(());
                }
                continue;
            }
        };
        let member = if a.include_src {
            format!("{}/{n}", src.name)
        } else {
            n.clone()
        };
        w.add(&member, &data).map_err(io)?;
        flush(&mut w, &mut out).map_err(io)?;
        job.objs.fetch_add(1, Ordering::Relaxed);
        job.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
    }
    {
        use std::io::Write;
        let last = w.finish().map_err(io)?;
        out.write_all(&last).map_err(io)?;
        out.flush().map_err(io)?;
    }
    drop(out);
    super::jobs::put_to_owner(t, &dst.name, &a.name, None, &spool, Default::default())
        .await
        .map_err(|e| e.context(format!("store {}/{}", dst.cname(), a.name)))
}

struct Spool(std::path::PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A receiver as a body stream.
fn tokio_stream_of(
    rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
}
