"""Live sinks that cannot write (a full disk, a closed pipe): reported once, retried, counted, and
never stopping the capture or the analysis; and the capture failure messages of a vanished interface."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from test_live_unit import FakeCapture, RecordingView, _synthetic_pcapng, fast_options, offline_kinds

from analyzer.capture.live import LiveCaptureError, describe_failure
from analyzer.live.engine import LiveAnalyzer
from analyzer.live.loop import run_live
from analyzer.live.sinks import AlertSink, LiveReport, SinkHealth

needs_dev_full = pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")


@needs_dev_full
def test_full_disk_sinks_do_not_stop_the_analysis(tmp_path: Path) -> None:
    data, segs = _synthetic_pcapng()
    out = tmp_path / "out"
    out.mkdir()
    for name in ("anomalies.jsonl", "stats.jsonl", "sessions_done.jsonl"):  # every append goes to a full disk
        (out / name).symlink_to("/dev/full")
    alerts = AlertSink("/dev/full")
    report = LiveReport(out)
    view = RecordingView()
    res = run_live(FakeCapture(data, chunk=333), LiveAnalyzer(fast_options()), view, alerts=alerts, report=report,
                   install_signals=False)
    alerts.close()
    report.close()
    assert res.reason == "capture_ended" and res.error is None
    kinds, _ = offline_kinds(segs)
    assert {a.kind for a in view.alerts} == kinds  # the analysis saw everything
    assert view.closed is not None and view.closed.frames == len(segs)
    failures = [m for m in view.messages if m.startswith("cannot write")]
    assert len([m for m in failures if "alerts to /dev/full" in m]) == 1, view.messages  # reported once
    assert len([m for m in failures if "report directory" in m]) == 1, view.messages
    assert all("No space left on device" in m for m in failures)
    n = len(view.alerts)
    said = view.closed.incomplete
    assert f"could not write {n} alerts to the alerts to /dev/full (No space left on device)" in said, said
    assert any(f"{n} anomalies" in line and "report directory" in line for line in said), said
    final = json.loads((out / "live.json").read_text())  # the rest of the report is there, and says it
    assert final["final"] is True and any("could not write" in line for line in final["incomplete"])


def test_sink_health_retries_and_recovers() -> None:
    now = [100.0]
    h = SinkHealth("x", retry_s=30.0, clock=lambda: now[0])
    assert h.may_try() and h.summary() is None
    h.failed(OSError(errno.ENOSPC, "No space left on device"), "alerts")
    assert not h.may_try()
    h.skipped("alerts")
    h.failed(OSError(errno.ENOSPC, "No space left on device"), "alerts")
    assert len(h.pop_news()) == 1  # one message per failure, not per line
    now[0] += 31
    assert h.may_try()
    h.succeeded()
    assert h.pop_news() == ["writing x works again (3 alerts lost meanwhile)"]
    assert h.summary() == "could not write 3 alerts to x (No space left on device)"


def test_append_file_ends_a_cut_line(tmp_path: Path) -> None:
    from analyzer.live.sinks import _AppendFile

    f = _AppendFile(tmp_path / "a.jsonl")
    f._cut = True  # as after a short write on a full disk
    f.write('{"b": 2}\n')
    f.close()
    assert (tmp_path / "a.jsonl").read_text() == '\n{"b": 2}\n'


def test_alerts_to_a_closed_stdout_stop_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    r, w = os.pipe()
    os.close(r)
    import io
    import sys

    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.FileIO(w, "w"), write_through=True))
    data, _ = _synthetic_pcapng()
    sink = AlertSink("-")
    view = RecordingView()
    res = run_live(FakeCapture(data), LiveAnalyzer(fast_options()), view, alerts=sink, install_signals=False)
    assert res.reason == "capture_ended"
    assert sink.health.disabled and [m for m in view.messages if m.startswith("stopped writing")]


@pytest.mark.parametrize("tool, stderr", [
    ("dumpcap", "Capturing on 'veth0'\nFile: -\ndumpcap: The network adapter \"veth0\" is no longer attached; "
                "the capture has stopped.\nPackets captured: 10\n"),
    ("tcpdump", "tcpdump: pcap_loop: The interface disappeared\n10 packets captured\n"),
])
def test_vanished_interface_is_one_line(tool: str, stderr: str) -> None:
    err = describe_failure(tool, "veth0", stderr, 0)
    assert isinstance(err, LiveCaptureError) and err.kind == "vanished"
    assert "\n" not in str(err) and "veth0 went away" in str(err)
