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
