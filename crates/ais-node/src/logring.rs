//! The node's recent log in memory (a bounded ring of lines) beside stderr,
//! for `GET /v1/daemon?what=log` (the SDK's `get_node_log`,
//! `get_cluster_logs`; AIStore serves its log files): the node does not know
//! where a supervisor keeps its stderr. A leaf module.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;

/// Bytes of log kept (the oldest lines go first).
const KEEP: usize = 4 << 20;

static RING: Mutex<Ring> = Mutex::new(Ring {
    lines: VecDeque::new(),
    bytes: 0,
});

struct Ring {
    lines: VecDeque<String>,
    bytes: usize,
}

/// The tracing writer: each event to stderr and into the ring.
pub struct Tee;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Tee {
    type Writer = TeeWriter;
    fn make_writer(&'a self) -> TeeWriter {
        TeeWriter
    }
}

pub struct TeeWriter;

impl Write for TeeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = std::io::stderr().write(buf)?;
        keep(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn keep(buf: &[u8]) {
    let text = strip_ansi(&String::from_utf8_lossy(buf));
    let Ok(mut r) = RING.lock() else { return };
    for line in text.lines().filter(|l| !l.is_empty()) {
        r.bytes += line.len() + 1;
        r.lines.push_back(line.to_string());
    }
    while r.bytes > KEEP {
        match r.lines.pop_front() {
            Some(l) => r.bytes -= l.len() + 1,
            None => {
                r.bytes = 0;
                break;
            }
        }
    }
}

/// What severity asks for: `info` (every line), `warning` (warnings and
/// errors), `error`. `None`: not a severity.
pub fn snapshot(severity: &str) -> Option<String> {
    let levels: &[&str] = match severity {
        "" | "info" | "i" => &[],
        "warning" | "warn" | "w" => &[" WARN ", " ERROR "],
        "error" | "err" | "e" => &[" ERROR "],
        _ => return None,
    };
    let r = RING.lock().ok()?;
    let mut out = String::with_capacity(r.bytes);
    for l in r
        .lines
        .iter()
        .filter(|l| levels.is_empty() || levels.iter().any(|lv| l.contains(lv)))
    {
        out.push_str(l);
        out.push('\n');
    }
    Some(out)
}

/// Terminal colour codes out (the stderr copy keeps them).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\u{1b}' && it.peek() == Some(&'[') {
            it.next();
            for d in it.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_by_severity_without_colours() {
        keep(b"\x1b[2m2026\x1b[0m \x1b[32m INFO\x1b[0m a: one\n2026  WARN b: two\n");
        keep(b"2026 ERROR c: three\n");
        let all = snapshot("info").unwrap();
        assert!(all.contains("2026  INFO a: one\n"), "{all}");
        let w = snapshot("warning").unwrap();
        assert!(
            !w.contains("one") && w.contains("two") && w.contains("three"),
            "{w}"
        );
        let e = snapshot("error").unwrap();
        assert!(!e.contains("two") && e.contains("three"), "{e}");
        assert!(snapshot("loud").is_none());
    }
}
