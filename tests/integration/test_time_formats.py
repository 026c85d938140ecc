"""``-t`` time formats of the tables (as tshark -t) with the zone named in the header, and IPv6
endpoints bracketed in the pdus table."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLEAN = REPO / "sample_pcaps" / "clean_io.pcap"
IPV6 = REPO / "sample_pcaps" / "ipv6.pcap"


def _run(*args: str | Path, tz: str = "UTC") -> str:
    env = {**os.environ, "TZ": tz}
    p = subprocess.run([sys.executable, "-m", "analyzer", *map(str, args)], capture_output=True, text=True,
                       env=env, cwd=REPO, timeout=300, check=False)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.fixture(scope="module")
def first_pdu() -> tuple[int, Decimal, Decimal]:
    """(frame, ts, ts of frame 1) of clean_io.pcap's first PDU."""
    if not CLEAN.is_file():
        pytest.skip("sample_pcaps missing")
    row = json.loads(_run("pdus", "--format", "jsonl", CLEAN).splitlines()[0])
    start = json.loads(_run("timeline", "--format", "jsonl", CLEAN).splitlines()[0])
    assert start["frame"] == 1
    return row["frame"], Decimal(row["ts"]), Decimal(start["ts"])


def _first_row(out: str) -> tuple[str, list[str]]:
    lines = out.splitlines()
    return lines[0], lines[1].split()


@pytest.mark.parametrize("fmt, tz, header", [
    ("r", "UTC", "time (s since frame 1)"), ("e", "UTC", "time (epoch s)"), ("u", "Etc/GMT-2", "time (UTC)"),
    ("ud", "Etc/GMT-2", "time (UTC)"), ("a", "Etc/GMT-2", "time (UTC+02:00)"),
    ("ad", "Etc/GMT+5", "time (UTC-05:00)"),
])
def test_pdus_time_formats(fmt: str, tz: str, header: str, first_pdu: tuple[int, Decimal, Decimal]) -> None:
    frame, ts, start = first_pdu
    head, row = _first_row(_run("pdus", "-t", fmt, CLEAN, tz=tz))
    assert header in head and int(row[0]) == frame
    utc = dt.datetime.fromtimestamp(int(ts), dt.UTC)
    micros = f"{int((ts % 1) * 1_000_000):06d}"
    offset = {"UTC": 0, "Etc/GMT-2": 2, "Etc/GMT+5": -5}[tz]
    local = utc + dt.timedelta(hours=offset)
    expected = {
        "r": f"{float(ts - start):.6f}",
        "e": f"{ts:.9f}",
        "u": utc.strftime("%H:%M:%S.") + micros,
        "ud": utc.strftime("%Y-%m-%d %H:%M:%S.") + micros,
        "a": local.strftime("%H:%M:%S.") + micros,
        "ad": local.strftime("%Y-%m-%d %H:%M:%S.") + micros,
    }[fmt]
    got = " ".join(row[1:3]) if fmt in ("ud", "ad") else row[1]
    assert got == expected


def test_timeline_and_tasks_name_the_zone() -> None:
    if not CLEAN.is_file():
        pytest.skip("sample_pcaps missing")
    assert _run("timeline", CLEAN).splitlines()[0].startswith("time (UTC)")
    head, row = _first_row(_run("timeline", "-t", "r", CLEAN))
    assert head.startswith("time (s since frame 1)") and row[0] == "0.000000" and row[1] == "1"
    head, row = _first_row(_run("tasks", "-t", "e", CLEAN))
    first = json.loads(_run("tasks", "--format", "jsonl", CLEAN).splitlines()[0])
    assert head.startswith("start (epoch s)") and row[0] == first["start_ts"]
    assert _run("tasks", CLEAN).splitlines()[0].startswith("session")  # without -t: unchanged
    sessions = _run("sessions", CLEAN)
    assert " UTC (frame " in sessions


def test_ipv6_endpoints_are_bracketed() -> None:
    if not IPV6.is_file():
        pytest.skip("sample_pcaps/ipv6.pcap missing")
    _, row = _first_row(_run("pdus", IPV6))
    assert row[2].startswith("[::1]:") and row[3] == "[::1]:3260"
