"""The plain-text summary: rates over a defined interval, long cells wrapped (never cut), the story first."""

from __future__ import annotations

import pandas as pd

from analyzer.reports import frames
from analyzer.reports.analysis import Analysis, CaptureInfo
from analyzer.state.events import TaskRecord

S = 1_000_000_000
T0 = 1_700_000_000 * S
CONN = "10.0.0.1:40000->10.0.0.2:3260"


def _task(**kw: object) -> TaskRecord:
    base: dict[str, object] = {
        "frame": 10, "ts_ns": T0, "session": "s1", "conn": CONN, "itt": 0x1F, "kind": "scsi",
        "outcome": "open_at_capture_end", "first_frame": 10, "last_frame": 10, "start_ts_ns": T0,
        "end_ts_ns": T0, "latency_ns": 0, "immediate": False, "cmdsn": 7, "lun": 0,
        "cdb_name": "READ(10)", "bytes_in": 0,
    }
    base.update(kw)
    return TaskRecord(**base)  # type: ignore[arg-type]


def _analysis(tasks: list[TaskRecord], story: list[str] | None = None, anomaly: str = "") -> Analysis:
    tables = {"tasks": frames.tasks_frame(tasks)}
    if anomaly:
        tables["anomalies"] = frames.build("anomalies", [{
            "frame": 10, "ts": T0, "severity": "warning", "kind": "connection_dropped", "message": anomaly}])
    return Analysis.from_tables(tables, CaptureInfo(name="x", pdus=1, first_ts_ns=T0, last_ts_ns=T0 + S,
                                                    story=story or []))


def test_a_session_seen_at_one_instant_has_no_rate() -> None:
    # one command open at capture end: no interval, so no MB/s or IOPS (was 1,000,000,000 IOPS)
    text = _analysis([_task()]).summary()
    row = next(line for line in text.splitlines() if line.strip().startswith("s1"))
    assert row.split()[-2:] == ["-", "-"]
    assert "1,000,000,000" not in text


def test_rates_over_first_command_to_last_end() -> None:
    tasks = [_task(itt=i, outcome="completed", start_ts_ns=T0 + i * S // 10, end_ts_ns=T0 + i * S // 10 + 1000,
                   latency_ns=1000, bytes_in=1_000_000) for i in range(11)]  # 11 commands in 1 s
    row = next(line for line in _analysis(tasks).summary().splitlines() if line.strip().startswith("s1"))
    assert row.split()[-2:] == ["11.00", "11.0"]


def test_long_messages_wrap_and_story_comes_first() -> None:
    msg = "Connection dropped without logout: the target closed the TCP connection (FIN) while it was LOGGED_IN."
    story = ["At +1.053 s (frame 488) session s1 ended: administrator drop on the target. " * 3]
    text = _analysis([_task()], story=story, anomaly=msg).summary()
    assert "~" not in text
    joined = " ".join(text.split())
    assert msg in joined  # every word kept, across continuation lines
    assert story[0].strip() in joined
    assert text.index("What happened") < text.index("Sessions") < text.index("Anomalies")
    lines = text.splitlines()
    start = lines.index("What happened") + 1
    story_block = lines[start:lines.index("", start)]
    assert len(story_block) > 1 and max(len(line) for line in story_block) <= 100
    assert pd.isna(_analysis([_task()]).tasks["latency"].iloc[0])
