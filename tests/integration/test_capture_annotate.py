"""``annotate`` writes the capture unchanged but for comments, each on its frame (read back by tshark)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer.cli.annotate import PREFIX, finding_comment, transition_comment
from analyzer.cli.app import cli
from analyzer.pipeline import iter_records
from analyzer.records import Anomaly
from analyzer.state.events import Transition

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")

CAPTURES = ["sample_pcaps/initiator_killed.pcap", "sample_pcaps/pcapng_dumpcap.pcapng",
            "sample_pcaps/login_failures.pcap", "sample_pcaps/linux_cooked_sll2.pcap"]


def tshark_frames(path: Path | str) -> list[tuple[int, str, int, list[str]]]:
    """-> [(frame number, epoch time, length, comments)] as tshark reads the file."""
    out = subprocess.run(["tshark", "-r", str(path), "-T", "json", "-e", "frame.number", "-e",
                          "frame.time_epoch", "-e", "frame.len", "-e", "frame.comment"],
                         capture_output=True, text=True, check=True, timeout=300).stdout
    rows = []
    for pkt in json.loads(out):
        layers = pkt["_source"]["layers"]
        rows.append((int(layers["frame.number"][0]), layers["frame.time_epoch"][0], int(layers["frame.len"][0]),
                     layers.get("frame.comment", [])))
    return rows


def expected(path: str, min_severity: str = "info") -> dict[int, list[str]]:
    from analyzer.anomalies import severity_at_least

    want: dict[int, list[str]] = defaultdict(list)
    for rec in iter_records(path):
        if type(rec) is Anomaly and severity_at_least(rec.severity, min_severity):
            for f in sorted(set(rec.frames or (rec.frame,))):
                want[f].append(finding_comment(rec))
        elif type(rec) is Transition and rec.frame > 0:
            want[rec.frame].append(transition_comment(rec))
    return want


@pytest.mark.parametrize("source", CAPTURES)
def test_every_comment_sits_on_its_frame(source: str, tmp_path: Path) -> None:
    capture = source
    out = tmp_path / "out.pcapng"
    res = CliRunner().invoke(cli, ["annotate", capture, "-o", str(out)])
    assert res.exit_code == 0, res.output
    original = tshark_frames(capture)
    annotated = tshark_frames(out)
    # frames keep their numbers, timestamps and lengths
    assert [r[:3] for r in annotated] == [r[:3] for r in original]
    want = expected(capture)
    got = {n: comments for n, _t, _l, comments in annotated if comments}
    assert got == {n: c for n, c in want.items() if c}
    assert any(PREFIX in c for cs in got.values() for c in cs)


def test_min_severity_and_filter_by_kind(tmp_path: Path) -> None:
    capture = "sample_pcaps/initiator_killed.pcap"
    out = tmp_path / "w.pcapng"
    res = CliRunner().invoke(cli, ["annotate", capture, "-o", str(out), "--min-severity", "warning", "--no-states"])
    assert res.exit_code == 0, res.output
    comments = [c for *_rest, cs in tshark_frames(out) for c in cs]
    assert comments and all("(warning)" in c or "(error)" in c for c in comments)
    assert not any(" state " in c[:30] for c in comments)
    hits = subprocess.run(["tshark", "-r", str(out), "-Y", 'frame.comment contains "connection_dropped"',
                           "-T", "fields", "-e", "frame.number"], capture_output=True, text=True, check=True).stdout
    frames = {int(x) for x in hits.split()}
    drops = [r for r in iter_records(capture) if type(r) is Anomaly and r.kind == "connection_dropped"]
    assert frames == {f for a in drops for f in (a.frames or (a.frame,))}


def test_source_comments_are_kept(tmp_path: Path) -> None:
    first, second = tmp_path / "1.pcapng", tmp_path / "2.pcapng"
    capture = "sample_pcaps/initiator_killed.pcap"
    assert CliRunner().invoke(cli, ["annotate", capture, "-o", str(first), "--no-states"]).exit_code == 0
    assert CliRunner().invoke(cli, ["annotate", str(first), "-o", str(second), "--no-states"]).exit_code == 0
    once = {n: cs for n, _t, _l, cs in tshark_frames(first) if cs}
    twice = {n: cs for n, _t, _l, cs in tshark_frames(second) if cs}
    assert twice == {n: cs + cs for n, cs in once.items()}


def test_unreadable_input_and_output(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all, no no no")
    res = CliRunner().invoke(cli, ["annotate", str(bad), "-o", str(tmp_path / "o.pcapng")])
    assert res.exit_code == 2 and not (tmp_path / "o.pcapng").exists()
    res = CliRunner().invoke(cli, ["annotate", "sample_pcaps/clean_io.pcap", "-o", str(tmp_path / "no" / "o.pcapng")])
    assert res.exit_code == 2
    res = CliRunner().invoke(cli, ["annotate", "sample_pcaps/clean_io.pcap", "-o", "sample_pcaps/clean_io.pcap"])
    assert res.exit_code == 2
