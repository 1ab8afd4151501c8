//! The HTTP server: our own accept loop over hyper's HTTP/1 connection
//! builder, so a node can be exposed on a network.
//!
//! - **connection cap** (`--max-conns`): past it a new client gets a minimal
//!   `503` in AIStore's JSON error shape and is closed; existing connections
//!   keep being served. The cap is clamped below `RLIMIT_NOFILE` (whose soft
//!   limit is raised to the hard one at start-up).
//! - **per-client cap** (`--max-conns-per-client`, default a quarter of the
//!   cap): connections from one source address past it get the same `503`,
//!   so one client holding thousands of keep-alive connections cannot lock
//!   the others out.
//! - **header timeout** (`--header-timeout`): a request head must be complete
//!   within this long of its first byte (or of the accept, for a connection
//!   that sends nothing); else the connection is closed.
//! - **idle timeout** (`--idle-timeout`): a keep-alive connection with no
//!   request and no I/O for this long is closed (gracefully; a response that
//!   makes no progress for another such period is cut).
//! - **body timeout** (`--body-timeout`): a request body that delivers no
//!   byte for this long fails with an error, so a stalled PUT is aborted
//!   (and its temp file removed by the PUT path).
//! - **header size** (`--max-header-size`): hyper's read buffer limit; a
//!   larger head gets `431`.
//!
//! Cost: the timers are per connection (one interval in the connection's
//! task, driven by counters the socket wrapper bumps), not per request;
//! hyper's own `header_read_timeout` is not used because it also runs while
//! a keep-alive connection is idle (so it would double as a short idle
//! timeout) and allocates a timer per request. The body timer is created
//! only when a body is actually waited for.

use crate::metrics::{Metrics, Op, BODY_TIMEOUTS};
use crate::router::{self, App};
use axum::http::{header, Request};
use axum::response::Response;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

/// Connection limits; a zero timeout disables that timeout.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub max_conns: usize,
    /// Connections one source address may hold (0: a quarter of `max_conns`).
    pub max_conns_per_client: usize,
    pub max_header_size: usize,
}

impl Limits {
    fn per_client(&self) -> usize {
        match self.max_conns_per_client {
            0 => (self.max_conns / 4).max(1),
            n => n.min(self.max_conns),
        }
    }
}

/// Open connections per source address.
type PerClient = Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>;

/// One connection's place in [`PerClient`], given back when it closes.
struct ClientSlot {
    map: PerClient,
    ip: std::net::IpAddr,
}

impl ClientSlot {
    /// Takes a place for `ip`, unless it already holds `cap`.
    fn take(map: &PerClient, ip: std::net::IpAddr, cap: usize) -> Option<ClientSlot> {
        let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            map: map.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Raises `RLIMIT_NOFILE`'s soft limit to the hard one; returns the soft
/// limit now in force.
pub fn raise_nofile_limit() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 1024;
        }
        if rl.rlim_cur < rl.rlim_max {
            let want = libc::rlimit {
                rlim_cur: rl.rlim_max,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                rl.rlim_cur = rl.rlim_max;
            }
        }
    }
    rl.rlim_cur
}

/// The connection cap that leaves room under `nofile` for the node's own
/// files, sockets and ETL workers (an eighth, at least 256).
pub fn clamp_conns(max_conns: usize, nofile: u64) -> usize {
    let reserve = (nofile / 8).max(256);
    let room = nofile.saturating_sub(reserve).max(16);
    (max_conns as u64).min(room).max(1) as usize
}

/// Counters shared by one connection's socket wrapper, service and
/// watchdog — all polled by the connection's one task, so relaxed atomics
/// are uncontended.
#[derive(Default)]
struct ConnWatch {
    /// Reads / writes that moved bytes.
    reads: AtomicU64,
    writes: AtomicU64,
    /// Request heads received (service calls).
    heads: AtomicU64,
    /// `reads` when the last request started or finished: reads past it,
    /// with no request in flight, are a new head arriving.
    reads_mark: AtomicU64,
    inflight: AtomicU32,
}

struct Shared {
    app: App,
    remote: SocketAddr,
    body_timeout: Option<Duration>,
    watch: ConnWatch,
    /// Its source address's place (freed with the connection).
    _slot: ClientSlot,
}

impl Shared {
    fn metrics(&self) -> &Metrics {
        &self.app.core().metrics
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets every
/// connection finish its current request and returns once all are closed
/// (the caller's hard exit bounds the wait).
pub async fn serve(
    listener: TcpListener,
    app: App,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(limits.max_header_size.max(8192))
        .keep_alive(true);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let rejecting = Arc::new(AtomicUsize::new(0));
    let per_client: PerClient = Default::default();
    let client_cap = limits.per_client();
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let core = app.core();
        let conns = &core.metrics.conns;
        let open = conns.open.fetch_add(1, Relaxed) + 1;
        let slot = if open as usize > limits.max_conns {
            None
        } else {
            ClientSlot::take(&per_client, remote.ip(), client_cap)
        };
        let Some(slot) = slot else {
            conns.open.fetch_sub(1, Relaxed);
            conns.rejected.fetch_add(1, Relaxed);
            // Bound the sockets spent on refusals too.
            if rejecting.fetch_add(1, Relaxed) < 256 {
                let msg = if open as usize > limits.max_conns {
                    too_many(&core.name, remote, "", limits.max_conns)
                } else {
                    too_many(&core.name, remote, " from this address", client_cap)
                };
                let rejecting = rejecting.clone();
                tokio::spawn(async move {
                    refuse(stream, msg).await;
                    rejecting.fetch_sub(1, Relaxed);
                });
            } else {
                rejecting.fetch_sub(1, Relaxed);
            }
            continue;
        };
        conns.accepted.fetch_add(1, Relaxed);
        // A response's last partial segment must not wait for the ACK of
        // the previous one (Nagle with delayed ACKs: tens of ms).
        let _ = stream.set_nodelay(true);
        let shared = Arc::new(Shared {
            app: app.clone(),
            remote,
            body_timeout: nonzero(limits.body_timeout),
            watch: ConnWatch::default(),
            _slot: slot,
        });
        tokio::spawn(connection(
            stream,
            shared,
            http.clone(),
            limits.clone(),
            stop_rx.clone(),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while app.core().metrics.conns.open.load(Relaxed) > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// Decrements the open-connection count however the task ends.
struct OpenGuard(App);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.core().metrics.conns.open.fetch_sub(1, Relaxed);
    }
}

async fn connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    http: hyper::server::conn::http1::Builder,
    limits: Limits,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let _open = OpenGuard(shared.app.clone());
    let io = TokioIo::new(Watched {
        inner: stream,
        shared: shared.clone(),
    });
    let conn = http.serve_connection(io, Svc(shared.clone()));
    tokio::pin!(conn);
    let header = nonzero(limits.header_timeout);
    let idle = nonzero(limits.idle_timeout);
    // Check four times per the shortest timeout (closing within +25%).
    let period = [header, idle]
        .into_iter()
        .flatten()
        .min()
        .map(|d| (d / 4).clamp(Duration::from_millis(50), Duration::from_secs(1)));
    let mut tick = tokio::time::interval(period.unwrap_or(Duration::from_secs(3600)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.reset();
    let mut dog = Dog::new(Instant::now());
    let mut draining = false;
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            biased;
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(remote = %shared.remote, error = %e, "connection ended");
                }
                return;
            }
            _ = tick.tick(), if period.is_some() => {
                let now = Instant::now();
                match dog.check(&shared.watch, header, idle, now) {
                    Verdict::Fine => {}
                    Verdict::HeaderTimeout => {
                        shared.metrics().conns.header_timeouts.fetch_add(1, Relaxed);
                        tracing::debug!(remote = %shared.remote, "request head timeout: closing");
                        return;
                    }
                    Verdict::Idle => {
                        if !draining {
                            shared.metrics().conns.idle_closed.fetch_add(1, Relaxed);
                            draining = true;
                            dog.last_active = now;
                            conn.as_mut().graceful_shutdown();
                        } else {
                            // A response nobody reads: cut it.
                            return;
                        }
                    }
                }
            }
            r = stop.changed(), if !stopping => {
                stopping = true;
                if r.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

enum Verdict {
    Fine,
    HeaderTimeout,
    Idle,
}

/// A connection's watchdog state (local to its task).
struct Dog {
    reads: u64,
    writes: u64,
    heads: u64,
    last_active: Instant,
    /// Since when a request head has been pending (bytes of it seen, or
    /// the accept for a fresh connection).
    head_since: Option<Instant>,
}

impl Dog {
    fn new(now: Instant) -> Self {
        Dog {
            reads: 0,
            writes: 0,
            heads: 0,
            last_active: now,
            head_since: Some(now),
        }
    }

    fn check(
        &mut self,
        w: &ConnWatch,
        header: Option<Duration>,
        idle: Option<Duration>,
        now: Instant,
    ) -> Verdict {
        let reads = w.reads.load(Relaxed);
        let writes = w.writes.load(Relaxed);
        let heads = w.heads.load(Relaxed);
        let busy = w.inflight.load(Relaxed) > 0;
        if busy || reads != self.reads || writes != self.writes {
            self.last_active = now;
        }
        let pending = !busy && (heads == 0 || reads != w.reads_mark.load(Relaxed));
        if !pending {
            self.head_since = None;
        } else if self.head_since.is_none() || heads != self.heads {
            self.head_since = Some(now);
        }
        self.reads = reads;
        self.writes = writes;
        self.heads = heads;
        if let (Some(t0), Some(h)) = (self.head_since, header) {
            if now.duration_since(t0) >= h {
                return Verdict::HeaderTimeout;
            }
        }
        if let Some(i) = idle {
            if !busy && now.duration_since(self.last_active) >= i {
                return Verdict::Idle;
            }
        }
        Verdict::Fine
    }
}

/// The socket, counting reads and writes for the watchdog.
struct Watched {
    inner: TcpStream,
    shared: Arc<Shared>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.shared.watch.reads.fetch_add(1, Relaxed);
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.shared.watch.writes.fetch_add(1, Relaxed);
        }
        r
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = match zerocopy_at(bufs) {
            Some((i, fd, off)) => self.poll_sendfile(cx, bufs, i, fd, off),
            None => Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
        };
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.shared.watch.writes.fetch_add(1, Relaxed);
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Slices shorter than this are never looked up as file pages (response
/// heads, small bodies: not worth the registry's lock).
const ZEROCOPY_MIN: usize = 4096;

/// The first slice that is a file's mapped pages (`ais_storage::zerocopy`):
/// its index, the file, and the file offset it starts at.
fn zerocopy_at(bufs: &[io::IoSlice<'_>]) -> Option<(usize, RawFd, u64)> {
    bufs.iter().enumerate().find_map(|(i, b)| {
        (b.len() >= ZEROCOPY_MIN)
            .then(|| ais_storage::zerocopy::file_range(b.as_ptr(), b.len()))
            .flatten()
            .map(|(fd, off)| (i, fd, off))
    })
}

impl Watched {
    /// Writes `bufs[..i]` (the response head, with MSG_MORE so it leaves
    /// with the first file bytes) and then `bufs[i]` straight from its file
    /// with sendfile(2): the page cache goes to the socket without a copy
    /// into user space. A partial write reports what went out, like writev;
    /// hyper passes the rest again.
    fn poll_sendfile(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
        i: usize,
        fd: RawFd,
        off: u64,
    ) -> Poll<io::Result<usize>> {
        let sock = self.inner.as_raw_fd();
        loop {
            std::task::ready!(self.inner.poll_write_ready(cx))?;
            match self.inner.try_io(tokio::io::Interest::WRITABLE, || {
                send_head_and_file(sock, &bufs[..i], fd, off, &bufs[i])
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }
}

/// Sends `head`, then `body` — bytes equal to `fd`'s from `off` — from the
/// file; from memory where the file cannot be sendfile'd (EINVAL, ENOSYS,
/// EOPNOTSUPP, ESPIPE: some filesystems and special files).
fn send_head_and_file(
    sock: RawFd,
    head: &[io::IoSlice<'_>],
    fd: RawFd,
    off: u64,
    body: &[u8],
) -> io::Result<usize> {
    let head_len: usize = head.iter().map(|b| b.len()).sum();
    let mut sent = 0usize;
    if head_len > 0 {
        // SAFETY: an all-zero msghdr is valid; iov points at `head`, whose
        // IoSlices are ABI-compatible with iovec and outlive the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = head.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = head.len() as _;
        // SAFETY: a valid socket and message (above).
        let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_MORE | libc::MSG_NOSIGNAL) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        sent = n as usize;
        if sent < head_len {
            return Ok(sent);
        }
    }
    let mut o = off as libc::off_t;
    // SAFETY: valid descriptors (the file's is kept open by the bytes being
    // written) and an offset variable the call updates.
    let mut n = unsafe { libc::sendfile(sock, fd, &mut o, body.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        let unsupported = matches!(
            e.raw_os_error(),
            Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::ESPIPE)
        );
        if !unsupported || sent > 0 {
            // The head went out: report it; the error (or EAGAIN) comes
            // again on the next call.
            return if sent > 0 { Ok(sent) } else { Err(e) };
        }
        // SAFETY: a valid socket and a readable buffer of body.len() bytes.
        n = unsafe { libc::send(sock, body.as_ptr().cast(), body.len(), libc::MSG_NOSIGNAL) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    if n == 0 && sent == 0 {
        // The file ended before its mapping: never send other bytes.
        return Err(io::Error::other("object file shorter than its mapping"));
    }
    Ok(sent + n as usize)
}

/// The per-connection service: body timeout and metrics around
/// `router::dispatch`, which gets the connection's remote address.
struct Svc(Arc<Shared>);

impl hyper::service::Service<Request<Incoming>> for Svc {
    type Response = Response;
    type Error = Infallible;
    type Future = ReqFuture;

    fn call(&self, req: Request<Incoming>) -> ReqFuture {
        let sh = &self.0;
        let w = &sh.watch;
        w.heads.fetch_add(1, Relaxed);
        w.inflight.fetch_add(1, Relaxed);
        w.reads_mark.store(w.reads.load(Relaxed), Relaxed);
        let (start, op, in_bytes) = if sh.metrics().enabled {
            let op = Op::of(req.method(), req.uri().path());
            let n = match op {
                Some(Op::Put) => content_length(req.headers()),
                _ => 0,
            };
            (Some(Instant::now()), op, n)
        } else {
            (None, None, 0)
        };
        let timeout = sh.body_timeout;
        let req = req.map(|b| {
            axum::body::Body::new(StallBody {
                inner: b,
                timeout,
                timer: None,
            })
        });
        ReqFuture {
            inner: Box::pin(router::dispatch(sh.app.clone(), sh.remote, req)),
            shared: self.0.clone(),
            start,
            op,
            in_bytes,
        }
    }
}

fn content_length(h: &axum::http::HeaderMap) -> u64 {
    h.get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The router's future, counting the request when its response is ready
/// and marking it done for the watchdog when dropped.
struct ReqFuture {
    inner: Pin<Box<dyn Future<Output = Response> + Send>>,
    shared: Arc<Shared>,
    start: Option<Instant>,
    op: Option<Op>,
    in_bytes: u64,
}

impl Future for ReqFuture {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let r = this.inner.as_mut().poll(cx).map(Ok);
        if let (Poll::Ready(Ok(resp)), Some(start)) = (&r, this.start) {
            let status = resp.status().as_u16();
            let bytes = match this.op {
                Some(Op::Put) => this.in_bytes,
                Some(Op::Get) => content_length(resp.headers()),
                _ => 0,
            };
            this.shared
                .metrics()
                .record(this.op, status, bytes, start.elapsed());
        }
        r
    }
}

impl Drop for ReqFuture {
    fn drop(&mut self) {
        let w = &self.shared.watch;
        w.inflight.fetch_sub(1, Relaxed);
        w.reads_mark.store(w.reads.load(Relaxed), Relaxed);
    }
}

/// A request body that fails when no byte arrives for `timeout`.
struct StallBody {
    inner: Incoming,
    timeout: Option<Duration>,
    /// Created the first time the body has to be waited for.
    timer: Option<Pin<Box<Sleep>>>,
}

#[derive(Debug)]
struct Stalled(Duration);

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no data from the client for {:?} (body read timeout)",
            self.0
        )
    }
}

impl std::error::Error for Stalled {}

impl HttpBody for StallBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(f) => {
                if let (Some(t), Some(d)) = (this.timer.as_mut(), this.timeout) {
                    t.as_mut().reset(tokio::time::Instant::now() + d);
                }
                Poll::Ready(f.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                let Some(d) = this.timeout else {
                    return Poll::Pending;
                };
                let t = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(d)));
                if t.as_mut().poll(cx).is_ready() {
                    BODY_TIMEOUTS.fetch_add(1, Relaxed);
                    return Poll::Ready(Some(Err(Box::new(Stalled(d)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The whole 503 answer to a connection past the cap.
fn too_many(node: &str, remote: SocketAddr, scope: &str, cap: usize) -> Bytes {
    let body = serde_json::json!({
        "message": format!("{node}: too many open connections{scope} (limit {cap}); try again later"),
        "method": "",
        "url_path": "",
        "remote_addr": remote.to_string(),
        "caller": "",
        "node": node,
        "status": 503,
    })
    .to_string();
    Bytes::from(format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
}

/// Writes the 503, then reads what the client sent (so closing does not
/// reset the connection before it reads the answer), at most a second.
async fn refuse(mut stream: TcpStream, msg: Bytes) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        if stream.write_all(&msg).await.is_err() {
            return;
        }
        let _ = stream.shutdown().await;
        let mut buf = [0u8; 4096];
        let mut total = 0;
        while total < (64 << 10) {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_cap_leaves_room_for_files() {
        assert_eq!(clamp_conns(8192, 1 << 20), 8192);
        assert_eq!(clamp_conns(8192, 1024), 768);
        assert_eq!(clamp_conns(50, 1024), 50);
    }

    #[test]
    fn watchdog_header_and_idle() {
        let t0 = Instant::now();
        let s = |x: u64| t0 + Duration::from_millis(x);
        let h = Some(Duration::from_secs(2));
        let i = Some(Duration::from_secs(10));
        // A connection that sends nothing: header timeout from the accept.
        let w = ConnWatch::default();
        let mut d = Dog::new(t0);
        assert!(matches!(d.check(&w, h, i, s(1000)), Verdict::Fine));
        assert!(matches!(d.check(&w, h, i, s(2100)), Verdict::HeaderTimeout));
        // One request served, then quiet: idle, never a header timeout.
        let w = ConnWatch::default();
        let mut d = Dog::new(t0);
        w.reads.store(1, Relaxed);
        w.heads.store(1, Relaxed);
        w.reads_mark.store(1, Relaxed);
        w.writes.store(1, Relaxed);
        assert!(matches!(d.check(&w, h, i, s(500)), Verdict::Fine));
        assert!(matches!(d.check(&w, h, i, s(5000)), Verdict::Fine));
        assert!(matches!(d.check(&w, h, i, s(10600)), Verdict::Idle));
        // Then half a head arrives: header timeout two seconds later.
        let w2 = ConnWatch::default();
        let mut d = Dog::new(t0);
        w2.reads.store(1, Relaxed);
        w2.heads.store(1, Relaxed);
        w2.reads_mark.store(1, Relaxed);
        assert!(matches!(d.check(&w2, h, i, s(100)), Verdict::Fine));
        w2.reads.store(2, Relaxed);
        assert!(matches!(d.check(&w2, h, i, s(200)), Verdict::Fine));
        assert!(matches!(d.check(&w2, h, i, s(1500)), Verdict::Fine));
        assert!(matches!(
            d.check(&w2, h, i, s(2300)),
            Verdict::HeaderTimeout
        ));
        // A long request in flight is neither.
        let w3 = ConnWatch::default();
        let mut d = Dog::new(t0);
        w3.heads.store(1, Relaxed);
        w3.reads.store(1, Relaxed);
        w3.inflight.store(1, Relaxed);
        assert!(matches!(d.check(&w3, h, i, s(60_000)), Verdict::Fine));
    }
}

#[cfg(test)]
mod sendfile_tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    fn received(rx: &mut std::os::unix::net::UnixStream, n: usize) -> Vec<u8> {
        let mut got = vec![0u8; n];
        rx.read_exact(&mut got).unwrap();
        got
    }

    #[test]
    fn head_then_body_from_the_file_or_from_memory_when_it_cannot_be_sent() {
        let (tx, mut rx) = std::os::unix::net::UnixStream::pair().unwrap();
        let head = b"HTTP/1.1 200 OK\r\n\r\n";
        // A regular file: the body comes from the file at `off`.
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"0123456789abcdef").unwrap();
        let body = b"6789ab";
        let n = send_head_and_file(
            tx.as_raw_fd(),
            &[io::IoSlice::new(head)],
            f.as_raw_fd(),
            6,
            body,
        )
        .unwrap();
        assert_eq!(n, head.len() + body.len());
        assert_eq!(received(&mut rx, n), [&head[..], &body[..]].concat());
        // A descriptor sendfile refuses (a pipe): the same bytes from memory.
        let mut fds = [0; 2];
        // SAFETY: a two-element array for pipe(2).
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let n =
            send_head_and_file(tx.as_raw_fd(), &[io::IoSlice::new(head)], fds[0], 0, body).unwrap();
        // The head first; the body on the next call (as hyper makes it).
        assert_eq!(n, head.len());
        let m = send_head_and_file(tx.as_raw_fd(), &[], fds[0], 0, body).unwrap();
        assert_eq!(m, body.len());
        assert_eq!(received(&mut rx, n + m), [&head[..], &body[..]].concat());
        // SAFETY: closing the pipe's descriptors we own.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}
