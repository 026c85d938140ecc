"""Selectors of pdus, tasks, timeline and anomalies (--session, --connection, --itt, --since,
--until, --kind) and ``sessions --at``: a value naming nothing exits 2 with the valid ones; times
outside the capture are said; the rows kept are exactly the selected ones."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CLEAN = REPO / "sample_pcaps" / "clean_io.pcap"
LOGINS = REPO / "sample_pcaps" / "login_failures.pcap"
Cli = Callable[..., Any]


@pytest.fixture(autouse=True)
def _need_captures() -> None:
    if not CLEAN.is_file() or not LOGINS.is_file():
        pytest.skip("sample_pcaps missing")


def _jsonl(cli: Cli, *args: Any) -> list[dict[str, Any]]:
    run = cli(*args, "--format", "jsonl")
    assert run.returncode == 0, run.explain()
    return [json.loads(line) for line in run.stdout.splitlines()]


@pytest.mark.parametrize("args, listed", [
    (("anomalies", "--kind", "bogus_kind"), "login_failed"),
    (("tasks", "--session", "s99"), "s1, s2"),
    (("timeline", "--session", "s99"), "s1, s2"),
    (("pdus", "--session", "s99"), "s1, s2"),
    (("anomalies", "--session", "s99"), "s1, s2"),
    (("pdus", "--connection", "10.9.9.9:1"), "127.0.0.1:52230->127.0.0.1:3260"),
    (("tasks", "--connection", "10.9.9.9:1"), "127.0.0.1:52230->127.0.0.1:3260"),
    (("tasks", "--itt", "0x00000007"), "no PDU with ITT 0x00000007"),
    (("pdus", "--itt", "0xzz"), "0x followed by hex digits"),
])
@pytest.mark.parametrize("fmt", ["table", "csv"])
def test_unknown_values_exit_2_with_the_valid_ones(cli: Cli, args: tuple[str, ...], listed: str, fmt: str) -> None:
    run = cli(*args, "--format", fmt, CLEAN)
    assert run.returncode == 2, run.explain()
    assert run.stdout == "", "nothing printed, not even a header"
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("iscsi-analyzer: ") and listed in lines[0], run.explain()


def test_session_selects_exactly_its_rows(cli: Cli) -> None:
    tasks = _jsonl(cli, "tasks", CLEAN)
    pdus = _jsonl(cli, "pdus", CLEAN)
    conns_of = {t["session"]: set() for t in tasks}
    for t in tasks:
        conns_of[t["session"]].add(t["connection"])
    total = 0
    for sid in ("s1", "s2"):
        mine = _jsonl(cli, "pdus", "--session", sid, CLEAN)
        assert mine and {p["conn"] for p in mine} == conns_of[sid]
        assert mine == [p for p in pdus if p["conn"] in conns_of[sid]]
        assert _jsonl(cli, "tasks", "--session", sid, CLEAN) == [t for t in tasks if t["session"] == sid]
        total += len(mine)
    timeline = _jsonl(cli, "timeline", CLEAN)
    assert _jsonl(cli, "timeline", "--session", "s2", CLEAN) == [r for r in timeline if r["session"] == "s2"]


def test_connection_by_id_or_endpoint(cli: Cli) -> None:
    pdus = _jsonl(cli, "pdus", CLEAN)
    conn = pdus[-1]["conn"]
    by_id = _jsonl(cli, "pdus", "--connection", conn, CLEAN)
    assert by_id == [p for p in pdus if p["conn"] == conn]
    initiator = conn.split("->")[0]
    assert _jsonl(cli, "pdus", "--connection", initiator, CLEAN) == by_id
    assert len(_jsonl(cli, "pdus", "--connection", "127.0.0.1:3260", CLEAN)) == len(pdus)  # the target portal
    tasks = _jsonl(cli, "tasks", "--connection", conn, CLEAN)
    assert tasks and {t["connection"] for t in tasks} == {conn}


def test_itt_selects_its_pdus_task_transitions_and_findings(cli: Cli) -> None:
    pdus = _jsonl(cli, "pdus", LOGINS)
    anomalies = _jsonl(cli, "anomalies", LOGINS)
    failed = next(a for a in anomalies if a["kind"] == "login_failed")
    itt = next(p["itt"] for p in pdus if p["frame"] == failed["frame"])
    mine = _jsonl(cli, "pdus", "--itt", itt, LOGINS)
    assert mine == [p for p in pdus if p["itt"] == itt]
    assert {t["itt"] for t in _jsonl(cli, "tasks", "--itt", itt, LOGINS)} == {itt}
    frames = {p["frame"] for p in mine}
    found = _jsonl(cli, "anomalies", "--itt", itt, LOGINS)
    assert failed in found
    assert all(frames & {int(f) for f in a["frames"].split()} for a in found)
    steps = _jsonl(cli, "timeline", "--itt", itt, LOGINS)
    assert steps and all(s["frame"] in frames for s in steps)
    # decimal works too
    assert _jsonl(cli, "pdus", "--itt", str(int(itt, 16)), LOGINS) == mine


def test_since_until(cli: Cli) -> None:
    pdus = _jsonl(cli, "pdus", CLEAN)
    t = [Decimal(p["ts"]) for p in pdus]
    mid = t[len(t) // 2]
    since = _jsonl(cli, "pdus", "--since", str(mid), CLEAN)
    until = _jsonl(cli, "pdus", "--until", str(mid), CLEAN)
    assert since == [p for p in pdus if Decimal(p["ts"]) >= mid]
    assert until == [p for p in pdus if Decimal(p["ts"]) <= mid]
    first = _jsonl(cli, "timeline", CLEAN)[0]
    assert first["frame"] == 1  # the SYN: "+SECONDS" counts from the capture's first frame
    rel = _jsonl(cli, "pdus", "--since", "+0", "--until", f"+{mid - Decimal(first['ts'])}", CLEAN)
    assert rel == until
    tasks = _jsonl(cli, "tasks", "--since", str(mid), CLEAN)
    assert tasks and all(Decimal(x["end_ts"]) >= mid for x in tasks)


def test_times_outside_the_capture_are_said(cli: Cli) -> None:
    run = cli("timeline", "--since", "+100000", CLEAN)
    assert run.returncode == 0
    assert "is after the capture's last iSCSI frame" in run.stderr
    assert run.stdout.splitlines()[0].startswith("time")  # a valid selection: the header, no rows
    assert len(run.stdout.splitlines()) == 1
    run = cli("sessions", "--at", "+100000", CLEAN)
    assert run.returncode == 0 and "is after the capture's last frame" in run.stderr
    assert "this is the state at the end of the capture" in run.stderr
    run = cli("sessions", "--at", "0", CLEAN)
    assert run.returncode == 0 and "before the capture's first frame" in run.stderr
    run = cli("sessions", "--at", "+0.5", CLEAN)
    assert run.returncode == 0 and not run.stderr, run.explain()
