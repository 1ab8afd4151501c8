//! S3 request bodies on their way to the owner target: `aws-chunked`
//! decoding (chunk signatures checked when signed, trailers skipped), and
//! the checks that can only be made at the end (decoded length, signed
//! payload hash). A failed check ends the stream with an error *before* it
//! ends cleanly, so the owner (which receives it chunked) never sees a
//! complete body and stores nothing; the error itself is kept in a
//! [`Failure`] slot for the response.

use super::error::{S3Error, S3Result};
use super::sigv4::{hex, ChunkChain};
use axum::body::Body;
use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};

/// The largest aws-chunked chunk accepted (clients send 64 KiB - 8 MiB).
const MAX_CHUNK: usize = 64 << 20;

/// Where a body stream leaves the S3 error that ended it.
#[derive(Clone, Default)]
pub struct Failure(Arc<Mutex<Option<S3Error>>>);

impl Failure {
    fn set(&self, e: S3Error) -> std::io::Error {
        let io = std::io::Error::other(e.message.clone());
        if let Ok(mut s) = self.0.lock() {
            s.get_or_insert(e);
        }
        io
    }
    pub fn take(&self) -> Option<S3Error> {
        self.0.lock().ok().and_then(|mut s| s.take())
    }
}

/// How the request body is framed and what it must satisfy.
pub struct Spec {
    pub chunked: bool,
    pub chunks: Option<ChunkChain>,
    pub payload_sha256: Option<String>,
    /// The decoded length the client announced.
    pub expected: Option<u64>,
}

enum Phase {
    Header,
    Data { size: usize, sig: Option<String> },
    Trailer,
    Done,
}

struct State<S> {
    inner: S,
    buf: BytesMut,
    spec: Spec,
    phase: Phase,
    eof: bool,
    seen: u64,
    sha: Option<Sha256>,
    fail: Failure,
    finished: bool,
}

/// The decoded body as a stream of chunks for `reqwest::Body::wrap_stream`.
pub fn decode(
    body: Body,
    spec: Spec,
    fail: Failure,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let sha = spec.payload_sha256.as_ref().map(|_| Sha256::new());
    let st = State {
        inner: body.into_data_stream(),
        buf: BytesMut::new(),
        phase: if spec.chunked {
            Phase::Header
        } else {
            Phase::Done
        },
        spec,
        eof: false,
        seen: 0,
        sha,
        fail,
        finished: false,
    };
    futures::stream::unfold(st, |mut st| async move {
        if st.finished {
            return None;
        }
        match next(&mut st).await {
            Ok(Some(b)) => Some((Ok(b), st)),
            Ok(None) => None,
            Err(e) => {
                st.finished = true;
                let io = st.fail.set(e);
                Some((Err(io), st))
            }
        }
    })
}

async fn next<S>(st: &mut State<S>) -> S3Result<Option<Bytes>>
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Unpin,
{
    loop {
        if !st.spec.chunked {
            // Plain body: pass through.
            return match st.inner.next().await {
                Some(Ok(b)) => Ok(Some(account(st, b)?)),
                Some(Err(e)) => Err(incomplete(st, &e.to_string())),
                None => finish(st).map(|_| None),
            };
        }
        match &st.phase {
            Phase::Header => {
                if let Some(i) = find_crlf(&st.buf) {
                    let line = String::from_utf8_lossy(&st.buf[..i]).into_owned();
                    st.buf.advance(i + 2);
                    let (size, ext) = line.split_once(';').unwrap_or((&line, ""));
                    let size = usize::from_str_radix(size.trim(), 16).map_err(|_| {
                        S3Error::invalid_request(format!(
                            "malformed aws-chunked chunk header \"{line}\""
                        ))
                    })?;
                    if size > MAX_CHUNK {
                        return Err(S3Error::invalid_request(format!(
                            "aws-chunked chunk of {size} bytes is larger than {MAX_CHUNK}"
                        )));
                    }
                    let sig = ext
                        .split(';')
                        .find_map(|e| e.trim().strip_prefix("chunk-signature="))
                        .map(str::to_string);
                    st.phase = Phase::Data { size, sig };
                    continue;
                }
                if st.buf.len() > 4096 {
                    return Err(S3Error::invalid_request(
                        "malformed aws-chunked body (chunk header too long)",
                    ));
                }
            }
            Phase::Data { size, sig } => {
                let size = *size;
                if st.buf.len() >= size + 2 {
                    if &st.buf[size..size + 2] != b"\r\n" && size > 0 {
                        return Err(S3Error::invalid_request(
                            "malformed aws-chunked body (no CRLF after a chunk)",
                        ));
                    }
                    let data = st.buf.split_to(size).freeze();
                    let sig = sig.clone();
                    if let Some(chain) = st.spec.chunks.as_mut() {
                        let sig = sig.ok_or_else(|| {
                            S3Error::signature_mismatch("an aws-chunked chunk has no signature")
                        })?;
                        chain.verify(&data, &sig)?;
                    }
                    if size == 0 {
                        // The final chunk; trailers (if any) follow.
                        st.phase = Phase::Trailer;
                        continue;
                    }
                    st.buf.advance(2);
                    st.phase = Phase::Header;
                    return Ok(Some(account(st, data)?));
                }
                if size == 0 && st.eof {
                    st.phase = Phase::Trailer;
                    continue;
                }
            }
            Phase::Trailer => {
                // Trailer lines (`x-amz-checksum-*: ...`) up to an empty line.
                while let Some(i) = find_crlf(&st.buf) {
                    let empty = i == 0;
                    st.buf.advance(i + 2);
                    if empty {
                        st.phase = Phase::Done;
                        break;
                    }
                }
                if matches!(st.phase, Phase::Done) || st.eof {
                    st.phase = Phase::Done;
                    continue;
                }
            }
            Phase::Done => {
                // Anything after the body's end is drained and ignored.
                while let Some(r) = st.inner.next().await {
                    r.map_err(|e| incomplete(st, &e.to_string()))?;
                }
                return finish(st).map(|_| None);
            }
        }
        if st.eof {
            return Err(incomplete(st, "the body ended inside an aws-chunked chunk"));
        }
        match st.inner.next().await {
            Some(Ok(b)) => st.buf.extend_from_slice(&b),
            Some(Err(e)) => return Err(incomplete(st, &e.to_string())),
            None => st.eof = true,
        }
    }
}

fn account<S>(st: &mut State<S>, b: Bytes) -> S3Result<Bytes> {
    st.seen += b.len() as u64;
    if let Some(n) = st.spec.expected {
        if st.seen > n {
            return Err(S3Error::invalid_request(format!(
                "the body is longer than the {n} bytes announced"
            )));
        }
    }
    if let Some(h) = st.sha.as_mut() {
        h.update(&b);
    }
    Ok(b)
}

fn finish<S>(st: &mut State<S>) -> S3Result<()> {
    st.finished = true;
    if let Some(n) = st.spec.expected {
        if st.seen != n {
            return Err(S3Error::new(
                axum::http::StatusCode::BAD_REQUEST,
                "IncompleteBody",
                format!("received {} of the {n} bytes announced", st.seen),
            ));
        }
    }
    if let (Some(h), Some(want)) = (st.sha.take(), st.spec.payload_sha256.as_ref()) {
        let got = hex(&h.finalize());
        if &got != want {
            return Err(S3Error::new(
                axum::http::StatusCode::BAD_REQUEST,
                "XAmzContentSHA256Mismatch",
                format!("the body's SHA-256 is {got}, the request was signed with {want}"),
            ));
        }
    }
    Ok(())
}

fn incomplete<S>(st: &State<S>, why: &str) -> S3Error {
    S3Error::new(
        axum::http::StatusCode::BAD_REQUEST,
        "IncompleteBody",
        format!("failed to receive the body after {} bytes: {why}", st.seen),
    )
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(
        chunks: Vec<&'static [u8]>,
        chunked: bool,
        expected: Option<u64>,
    ) -> (Vec<u8>, Option<S3Error>) {
        let s = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c))),
        );
        let fail = Failure::default();
        let spec = Spec {
            chunked,
            chunks: None,
            payload_sha256: None,
            expected,
        };
        let mut out = Vec::new();
        let mut st = std::pin::pin!(decode(Body::from_stream(s), spec, fail.clone()));
        while let Some(r) = st.next().await {
            match r {
                Ok(b) => out.extend_from_slice(&b),
                Err(_) => break,
            }
        }
        (out, fail.take())
    }

    #[tokio::test]
    async fn decodes_aws_chunked_across_splits() {
        let (out, err) = run(
            vec![
                b"5;chunk-signature=ab\r\nhel",
                b"lo\r\n3\r",
                b"\nabc\r\n0\r\nx-amz-checksum-crc32:AAAA\r\n\r\n",
            ],
            true,
            Some(8),
        )
        .await;
        assert!(err.is_none());
        assert_eq!(out, b"helloabc");
    }

    #[tokio::test]
    async fn short_and_malformed_bodies_fail() {
        let (_, err) = run(vec![b"5\r\nhel"], true, None).await;
        assert_eq!(err.unwrap().code, "IncompleteBody");
        let (_, err) = run(vec![b"zz\r\n"], true, None).await;
        assert_eq!(err.unwrap().code, "InvalidRequest");
        let (_, err) = run(vec![b"abc"], false, Some(5)).await;
        assert_eq!(err.unwrap().code, "IncompleteBody");
    }
}
