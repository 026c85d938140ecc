"""Diagnosis against the lab captures' ground truth (manifest ``expect.sessions[].drop_cause``)."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from analyzer.diagnosis import CAUSES, Diagnosis, diagnose
from analyzer.diagnosis.messages import INITIATOR_MESSAGES, SOURCES, render_markdown
from analyzer.pipeline import iter_records

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_pcaps"
ENTRIES: list[dict[str, Any]] = json.loads((SAMPLES / "manifest.json").read_text())
CAPTURES = sorted(p.name for p in SAMPLES.iterdir() if p.suffix in (".pcap", ".pcapng"))


@cache
def _diag(name: str) -> Diagnosis:
    return diagnose(iter_records(SAMPLES / name))


def _sessions() -> list[tuple[str, dict[str, Any]]]:
    return [(e["file"], s) for e in ENTRIES for s in e["expect"]["sessions"]]


@pytest.mark.parametrize(("capture_file", "truth"), _sessions(),
                         ids=[f"{c}-stream{s['tcp_stream']}" for c, s in _sessions()])
def test_drop_cause_matches_ground_truth(capture_file: str, truth: dict[str, Any]) -> None:
    diag = _diag(capture_file)
    port = truth.get("initiator_port")
    if port is None:
        pytest.skip("manifest session without initiator_port")
    rows = [d for d in diag.drops if d.conn.split("->")[0].rsplit(":", 1)[1] == str(port)]
    if truth["ended_by"] == "logout" or ("drop_cause" in truth and truth["drop_cause"] is None):
        # logged out, or no iSCSI on it (a reconnect attempt refused while the target was down)
        assert rows == [], f"a connection without a drop got a drop cause: {rows}"
        return
    assert "drop_cause" in truth, "every session that did not log out has a drop_cause in the manifest"
    assert len(rows) == 1, rows
    assert rows[0].cause == truth["drop_cause"], rows[0].explanation
    assert rows[0].cause in CAUSES
    assert rows[0].evidence, "a cause comes with its evidence frames"
    assert rows[0].confidence in ("high", "medium", "low")


def test_admin_drop_summary_says_why_and_how_long() -> None:
    diag = _diag("admin_drop.pcap")
    (drop,) = diag.drops
    assert drop.cause == "admin_drop" and drop.ended_by == "fin_target"
    (rec,) = diag.recoveries
    assert rec.resumed_via == "new_session" and rec.resumed_session == "s2"
    assert rec.io_stopped_ms is not None and 1.0 < rec.io_stopped_ms < 500.0
    assert rec.last_completed_frame is not None and rec.last_completed_frame < drop.frame
    assert rec.first_completed_frame is not None and rec.first_completed_frame > drop.frame
    assert rec.lost_commands == 3 and rec.retried_commands == 3  # sent after the FIN, re-sent on s2
    story = " ".join(diag.story)
    assert "administrator drop" in story and "stopped for" in story and "1020" in story


def test_target_restart_and_path_failure_captures() -> None:
    restart = _diag("target_restart.pcap")
    (drop,) = restart.drops
    assert drop.cause == "target_restart" and "TSIH 0x0100" in drop.explanation
    (rec,) = restart.recoveries
    assert rec.resumed_via == "new_session" and rec.io_stopped_ms is not None and rec.io_stopped_ms > 1000
    path = _diag("path_failure.pcap")
    (drop,) = path.drops
    assert drop.cause == "network_failure"
    (rec,) = path.recoveries
    assert rec.io_stopped_ms is not None and rec.io_stopped_ms > 3000  # the outage, not the RST-to-relogin gap
    (p,) = path.paths
    assert p.down_ms > 3000 and not p.never_came_back


def test_killed_initiator_never_recovers_and_its_path_stays_down() -> None:
    diag = _diag("initiator_killed.pcap")
    (rec,) = diag.recoveries
    assert rec.resumed_via == "never" and rec.io_stopped_ms is None and rec.lost_commands == 1
    (path,) = diag.paths
    assert path.never_came_back and path.down_intervals == 1


def test_nop_timeline_of_the_nop_timeout_capture() -> None:
    diag = _diag("nop_timeout.pcap")
    target_pings = [n for n in diag.nops if n.pinger == "target"]
    assert [n.outcome for n in target_pings] == ["answered"] + ["unanswered_at_drop"] * 3
    assert target_pings[0].rtt_ms is not None and target_pings[0].rtt_ms >= 0
    (drop,) = diag.drops
    assert drop.cause == "nop_timeout" and drop.confidence == "high"
    assert drop.silence_i2t_ms is not None and drop.silence_i2t_ms > 2900  # the initiator froze 3 s before


def test_login_diagnosis_diffs_against_the_good_login() -> None:
    diag = _diag("login_failures.pcap")
    by_status = {}
    for lg in diag.logins:
        by_status.setdefault(lg.status, []).append(lg)
    (not_found,) = by_status["0x0203"]
    assert "does not exist" in not_found.explanation and not_found.compared_conn is None
    no_creds, wrong_secret = by_status["0x0201"]
    assert no_creds.compared_conn == wrong_secret.compared_conn is not None
    keys = {k for _, k, _, _ in no_creds.diff}
    assert {"AuthMethod", "CHAP_N"} <= keys
    assert wrong_secret.diff == ()  # same keys: only the secret (CHAP_R value) differs
    assert "secret" in wrong_secret.explanation


@pytest.mark.parametrize("capture_file", CAPTURES)
def test_views_work_on_every_sample_capture(capture_file: str) -> None:
    diag = _diag(capture_file)
    for name, (columns, rows) in diag.tables().items():
        for row in rows:
            assert tuple(row) == columns, name
    for q in diag.queues:
        assert 0 <= q.depth_p50 <= q.depth_p95 <= q.depth_max
        assert q.commands > 0
    for p in diag.paths:
        assert p.up_ms >= 0 and p.down_ms >= 0 and p.sessions
    for n in diag.nops:
        assert (n.outcome == "answered") == (n.rtt_ms is not None)
    for c in diag.connections:
        assert c.bytes_i2t >= 48 * c.pdus_i2t and c.bytes_t2i >= 48 * c.pdus_t2i
    assert all(r.cause == next(d.cause for d in diag.drops if d.conn == r.conn) for r in diag.recoveries)


def test_packet_loss_retransmissions_are_counted() -> None:
    diag = _diag("packet_loss.pcap")
    assert sum(c.retransmissions for c in diag.connections) > 0
    assert sum(c.retransmitted_bytes_i2t + c.retransmitted_bytes_t2i for c in diag.connections) > 0
    gaps = _diag("capture_gaps.pcap")
    assert sum(c.missing_bytes_i2t + c.missing_bytes_t2i for c in gaps.connections) > 0


@pytest.mark.parametrize("command", ["drops", "paths", "nops", "queue", "logins", "connections"])
@pytest.mark.parametrize("fmt", ["table", "csv", "jsonl"])
def test_cli_commands(command: str, fmt: str) -> None:
    out = subprocess.run([sys.executable, "-m", "analyzer", command, str(SAMPLES / "admin_drop.pcap"), "--format", fmt],
                         capture_output=True, text=True, timeout=300, cwd=ROOT, check=True).stdout
    lines = out.splitlines()
    if fmt == "jsonl":
        for line in lines:
            json.loads(line)
    else:
        assert lines, "at least a header"
    if command == "drops" and fmt != "table":
        assert "admin_drop" in out and "new_session" in out


def test_drops_story_cli() -> None:
    out = subprocess.run([sys.executable, "-m", "analyzer", "drops", str(SAMPLES / "admin_drop.pcap"), "--story"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT, check=True).stdout
    assert "administrator drop" in out and "stopped for" in out


def test_unreadable_capture_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture")
    proc = subprocess.run([sys.executable, "-m", "analyzer", "drops", str(bad)], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_initiator_messages_doc_is_generated_and_cited() -> None:
    assert (ROOT / "docs" / "initiator-messages.md").read_text() == render_markdown(), \
        "regenerate: python -m analyzer.diagnosis.messages > docs/initiator-messages.md"
    assert set(INITIATOR_MESSAGES) == set(CAUSES)
    for msgs in INITIATOR_MESSAGES.values():
        for m in msgs:
            assert m.source in SOURCES


def _safe_output_helpers() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("_safe_output_helpers", ROOT / "tests/integration/test_safe_output.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("args", [("drops", "--story"), ("drops", "--format", "table"), ("drops", "--format", "csv"),
                                  ("logins", "--format", "table"), ("logins", "--format", "csv"),
                                  ("paths", "--format", "csv"), ("connections", "--format", "table")])
def test_diagnosis_output_is_safe(args: tuple[str, ...], tmp_path: Path) -> None:
    """Hostile names (escape sequences, formulas, CHAP values) from the capture stay defanged."""
    h = _safe_output_helpers()
    hostile = h.hostile_capture(tmp_path / "hostile.pcap")
    proc = h._cli(args[0], hostile, *args[1:])
    where = " ".join(args)
    assert proc.returncode in (0, 1), proc.stderr
    h._no_secrets(proc.stdout + proc.stderr, where)
    h._terminal_clean(proc.stdout, where)
    if "csv" in args:
        h._csv_clean(proc.stdout, where)


def test_hostile_names_reach_the_paths_table(tmp_path: Path) -> None:
    """The safety test above is not vacuous: the hostile InitiatorName is in the diagnosis output."""
    h = _safe_output_helpers()
    hostile = h.hostile_capture(tmp_path / "hostile.pcap")
    out = h._cli("paths", hostile, "--format", "jsonl").stdout
    assert h.XSS in out
