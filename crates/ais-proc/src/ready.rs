//! Waiting for a child's "ready" line on its stdout.

use crate::ProcError;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

/// Lines of output kept for an error message.
const KEEP: usize = 40;

/// Reads `out` line by line until one starts with `marker` and returns that
/// line; a background thread keeps draining `out` afterwards (so the child
/// never blocks on a full pipe). Fails on timeout or end of output.
pub fn wait_ready_line<R: Read + Send + 'static>(
    out: R,
    marker: &str,
    timeout: Duration,
) -> Result<String, ProcError> {
    wait_ready_line_with(out, marker, timeout, |_| {})
}

/// What the reader thread saw: the ready line, or the output before EOF.
enum Seen {
    Ready(String),
    Eof(String),
}

/// [`wait_ready_line`], also handing every line (before and after the ready
/// one) to `on_line`, from the draining thread.
pub fn wait_ready_line_with<R, F>(
    out: R,
    marker: &str,
    timeout: Duration,
    mut on_line: F,
) -> Result<String, ProcError>
where
    R: Read + Send + 'static,
    F: FnMut(&str) + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel::<Seen>();
    let m = marker.to_string();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(VecDeque::<String>::new()));
    let seen2 = seen.clone();
    std::thread::Builder::new()
        .name("ais-proc-stdout".into())
        .spawn(move || {
            let mut ready = false;
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                on_line(&line);
                if ready {
                    continue;
                }
                if line.starts_with(&m) {
                    ready = true;
                    let _ = tx.send(Seen::Ready(line));
                } else if let Ok(mut s) = seen2.lock() {
                    if s.len() == KEEP {
                        s.pop_front();
                    }
                    s.push_back(line);
                }
            }
            if !ready {
                let output = seen2
                    .lock()
                    .map(|s| s.iter().cloned().collect::<Vec<_>>().join("\n"))
                    .unwrap_or_default();
                let _ = tx.send(Seen::Eof(output));
            }
        })
        .map_err(|source| ProcError::Proc {
            pid: std::process::id(),
            what: "start stdout reader thread",
            source,
        })?;
    match rx.recv_timeout(timeout) {
        Ok(Seen::Ready(line)) => Ok(line),
        Ok(Seen::Eof(output)) => Err(ProcError::ReadyEof {
            marker: marker.to_string(),
            output,
        }),
        Err(_) => Err(ProcError::ReadyTimeout {
            marker: marker.to_string(),
            timeout,
            output: seen
                .lock()
                .map(|s| s.iter().cloned().collect::<Vec<_>>().join("\n"))
                .unwrap_or_default(),
        }),
    }
}
