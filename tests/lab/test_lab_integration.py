"""End to end: real tgtd + libiscsi in a private namespace, captured and checked with tshark (needs root)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from analyzer.lab.errors import LabError
from analyzer.lab.runner import LabContext, Scenario, run_scenario
from analyzer.lab.scenarios import DISK, SCENARIOS, SECURE_IQN, UNKNOWN_IQN

pytestmark = pytest.mark.lab


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _tshark(path: Path, display_filter: str, *fields: str) -> list[list[str]]:
    argv = ["tshark", "-n", "-r", str(path), "-Y", display_filter, "-T", "fields"]
    for f in fields or ("frame.number",):
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def test_login_failures_end_to_end(lab_ready: None, tmp_path: Path) -> None:
    before = _namespaces()
    entry = run_scenario(SCENARIOS["login_failures"], tmp_path)
    path = tmp_path / "login_failures.pcap"
    assert path.exists() and path.stat().st_size == entry["size_bytes"]

    # Login Responses as tshark sees them: unknown target -> 0x0203, CHAP failures -> 0x0201, then success.
    statuses = [int(row[0], 16) for row in _tshark(path, "iscsi.opcode == 0x23", "iscsi.login.status")]
    assert 0x0203 in statuses
    assert statuses.count(0x0201) == 2
    assert 0x0000 in statuses
    assert _tshark(path, "iscsi.opcode == 0x06")  # Logout Request
    assert _tshark(path, "iscsi.opcode == 0x26")  # Logout Response
    assert _tshark(path, 'iscsi.keyvalue contains "CHAP_R"')

    expect = entry["expect"]
    failed = [(f["status"], f["target"]) for f in expect["faults"] if f["kind"] == "login_failed"]
    assert ("0x0203", UNKNOWN_IQN) in failed
    assert failed.count(("0x0201", SECURE_IQN)) == 2
    assert any(s["ended_by"] == "logout" and s["auth"] == "CHAP" for s in expect["sessions"])

    assert _namespaces() == before  # the namespace is gone again


def test_failing_scenario_cleans_up(lab_ready: None, tmp_path: Path) -> None:
    started: list[int] = []

    def body(ctx: LabContext) -> None:
        started.append(ctx.tgtd.proc.pid if ctx.tgtd.proc else -1)
        started.append(ctx.capture.proc.pid if ctx.capture.proc else -1)
        raise LabError("deliberate failure")

    scenario = Scenario("broken", "always fails", body, (DISK,), lambda facts, ctx: [])
    before = _namespaces()
    with pytest.raises(LabError, match="deliberate"):
        run_scenario(scenario, tmp_path)
    assert _namespaces() == before
    for pid in started:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    assert not (tmp_path / "broken.pcap").exists()
