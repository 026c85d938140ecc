"""Every Wireshark display filter we print is accepted by the installed tshark and selects
exactly the evidence frames of its finding (CLI table, jsonl and report.html print the same string).

The filters come from ``anomalies --format jsonl`` on every sample and real capture; each distinct
filter runs through ``tshark -Y`` on its capture and the frame numbers tshark selects are compared
with the finding's ``frames``.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from analyzer.records import frames_display_filter

Cli = Callable[..., Any]


def _tshark_frames(tshark: str, capture: Path, display_filter: str) -> tuple[int, list[int] | str]:
    proc = subprocess.run([tshark, "-n", "-r", str(capture), "-Y", display_filter, "-T", "fields",
                           "-e", "frame.number"], capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        return proc.returncode, proc.stderr.replace('Running as user "root" and group "root". '
                                                    "This could be dangerous.", "").strip()
    return 0, [int(x) for x in proc.stdout.split()]


def test_filter_syntax() -> None:
    assert frames_display_filter([7]) == "frame.number == 7"
    assert frames_display_filter([6, 4, 6]) == "frame.number in {4, 6}"
    assert frames_display_filter([1, 2, 3, 4, 9, 11, 12]) == "frame.number in {1..4, 9, 11, 12}"


def test_every_filter_selects_exactly_the_evidence_frames(capture: Path, cli: Cli, tshark: str) -> None:
    run = cli("anomalies", "--format", "jsonl", capture)
    assert run.returncode == 0, run.explain()
    wanted: dict[str, set[int]] = {}
    for line in run.stdout.splitlines():
        row = json.loads(line)
        frames = {int(f) for f in row["frames"].split()} or {int(row["frame"])}
        assert wanted.setdefault(row["display_filter"], frames) == frames, row
    if not wanted:
        pytest.skip(f"{capture.name}: no findings")
    with ThreadPoolExecutor(max_workers=3) as pool:
        got = dict(zip(wanted, pool.map(lambda f: _tshark_frames(tshark, capture, f), wanted), strict=True))
    bad = [f"{f!r}: tshark exit {rc}: {res}" if rc else f"{f!r}: selects {res}, evidence {sorted(wanted[f])}"
           for f, (rc, res) in got.items() if rc or res != sorted(wanted[f])]
    assert not bad, "\n".join(bad)
    # The table output prints the same strings.
    table = cli("anomalies", capture)
    shown = set(re.findall(r"Wireshark: (frame\.number .*)$", table.stdout, re.MULTILINE))
    assert shown == set(wanted)


def test_report_html_prints_the_same_filters(cli: Cli, tmp_path: Path) -> None:
    capture = Path(__file__).resolve().parents[2] / "sample_pcaps" / "capture_gaps.pcap"
    if not capture.is_file():
        pytest.skip("sample_pcaps/capture_gaps.pcap missing")
    run = cli("analyze", "-q", "--out", tmp_path / "r", capture)
    assert run.returncode == 0, run.explain()
    page = (tmp_path / "r" / "report.html").read_text()
    in_html = {html.unescape(m) for m in re.findall(r'<code class="filter"[^>]*>([^<]*)</code>', page)}
    jsonl = cli("anomalies", "--format", "jsonl", capture)
    emitted = {json.loads(line)["display_filter"] for line in jsonl.stdout.splitlines()}
    assert any(" in {" in f for f in in_html)
    assert in_html <= emitted
