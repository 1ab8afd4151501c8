"""The local-cluster fixture itself: process groups, orderly stop, log scan."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ais_cluster import Cluster, NodeLogError, scan_log


def test_scan_log_rules() -> None:
    log = (
        "2026-01-01T00:00:00Z  INFO ais_node::node: listening\n"
        "2026-01-01T00:00:00Z \x1b[31mERROR\x1b[0m ais_node::etl: failed to start ETL etl=x\n"
        "2026-01-01T00:00:00Z ERROR ais_cluster::primary: failed to commit cluster map\n"
        "2026-01-01T00:00:00Z  WARN ais_node::node: an ERROR inside a warning is fine\n"
        "ERROR: pip's own error format is not a node error\n"
        "thread 'tokio-runtime-worker' panicked at crates/x.rs:1:2:\n"
    )
    bad = scan_log(log, ["failed to start ETL"])
    assert len(bad) == 2 and "commit cluster map" in bad[0] and "panicked at" in bad[1], bad
    assert len(scan_log(log, ["failed to start ETL", "cluster map", "panicked"])) == 1


def test_nodes_lead_their_groups_and_stop_scans_logs(tmp_path: Path) -> None:
    c = Cluster(base_dir=tmp_path / "c", num_targets=1).start()
    try:
        for n in c.nodes:
            assert os.getpgid(n.proc.pid) == n.proc.pid, n.role
            env = Path(f"/proc/{n.proc.pid}/environ").read_bytes().split(b"\0")
            assert any(kv.startswith(b"AIS_PROC_TOKEN=") for kv in env)
        t = c.targets[0]
        with open(t.log_path, "a") as f:
            f.write("2026-01-01T00:00:00Z ERROR ais_node::x: expected trouble\n")
            f.write("2026-01-01T00:00:00Z ERROR ais_node::x: boom\n")
        c.allow_log("expected trouble")
        assert [l.split(": ", 1)[0] for l in c.log_findings()] == ["target1"]
    finally:
        with pytest.raises(NodeLogError, match="target1: .*ERROR ais_node::x: boom"):
            c.stop()
    assert all(n.proc.returncode is not None for n in c.nodes)

