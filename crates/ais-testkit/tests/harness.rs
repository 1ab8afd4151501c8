//! The harness itself: nodes in their own process groups, the log scan at
//! teardown, orderly stop.

use ais_testkit::Cluster;
use std::io::Write;

fn append(path: &std::path::Path, line: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    writeln!(f, "{line}").unwrap();
}

fn pgid(pid: u32) -> u32 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &s[s.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(2).unwrap().parse().unwrap()
}

#[test]
#[should_panic(expected = "target1: 2026-01-01T00:00:00Z ERROR ais_node::x: boom")]
fn unexpected_error_line_fails_the_test_at_drop() {
    let c = Cluster::start(1).unwrap();
    let pid = c.targets[0].pid().unwrap();
    assert_eq!(pgid(pid), pid, "a node leads its own process group");
    append(
        &c.targets[0].data.join("node.log"),
        "2026-01-01T00:00:00Z ERROR ais_node::x: boom",
    );
}

#[test]
fn allowed_errors_pass_and_stop_reports_panics() {
    let mut c = Cluster::start(1).unwrap();
    let log = c.targets[0].data.join("node.log");
    append(
        &log,
        "2026-01-01T00:00:00Z ERROR ais_node::x: expected trouble",
    );
    c.allow_log("expected trouble");
    assert!(c.log_findings().is_empty());
    append(
        &c.proxy.data.join("node.log"),
        "thread 'main' panicked at src/x.rs:1:1:",
    );
    let pid = c.proxy.pid().unwrap();
    let err = c.stop().unwrap_err().to_string();
    assert!(err.contains("proxy: thread 'main' panicked at"), "{err}");
    // Stopped and reaped: the pid names no aisnode any more.
    let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(!cmd.contains("aisnode"), "{cmd}");
    // Logs were scanned: dropping does not panic a second time.
}
