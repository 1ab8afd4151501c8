//! Per-ETL log on a target: a bounded ring of lines (worker stdout/stderr,
//! environment builds, errors), served by `ais etl logs`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

const MAX_BYTES: usize = 512 * 1024;

#[derive(Clone, Default)]
pub struct LogSink(Arc<Mutex<(VecDeque<String>, usize)>>);

impl LogSink {
    pub fn line(&self, l: &str) {
        let Ok(mut g) = self.0.lock() else { return };
        let (q, size) = &mut *g;
        *size += l.len() + 1;
        q.push_back(l.to_string());
        while *size > MAX_BYTES {
            match q.pop_front() {
                Some(old) => *size -= old.len() + 1,
                None => break,
            }
        }
    }

    pub fn text(&self) -> String {
        let Ok(g) = self.0.lock() else {
            return String::new();
        };
        let mut s = String::with_capacity(g.1);
        for l in &g.0 {
            s.push_str(l);
            s.push('\n');
        }
        s
    }
}

/// Streams a child's stdout and stderr, line by line, into `log`.
pub fn capture_output(child: &mut tokio::process::Child, log: &LogSink) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    fn pipe<R: tokio::io::AsyncRead + Unpin + Send + 'static>(r: R, log: LogSink) {
        tokio::spawn(async move {
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                log.line(&l);
            }
        });
    }
    if let Some(o) = child.stdout.take() {
        pipe(o, log.clone());
    }
    if let Some(e) = child.stderr.take() {
        pipe(e, log.clone());
    }
}
