"""The report context: the Analysis, the capture time span (t0/t1) every chart shares, and the
tasks columns the sections read (loaded once).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from analyzer.reports.html.text import TASK_COLUMNS, _ns

if TYPE_CHECKING:
    from analyzer.reports.analysis import Analysis


class _Ctx:
    def __init__(self, a: Analysis, show_secrets: bool) -> None:
        self.a = a
        self.show_secrets = show_secrets
        cap = a.capture
        #: the tasks columns the sections use (the other 33 are never loaded)
        self.tasks = a.columns("tasks", TASK_COLUMNS)
        ps = a.pdu_summary
        firsts = [cap.first_ts_ns, ps.first_ts] + [
            _ns(df[c].min())
            for df, c in (
                (a.transitions, "ts"),
                (a.connections, "start_ts"),
                (a.sessions, "start_ts"),
                (self.tasks, "start_ts"),
            )
            if len(df)
        ]
        lasts = [cap.last_ts_ns, ps.last_ts] + [
            _ns(df[c].max())
            for df, c in (
                (a.transitions, "ts"),
                (a.connections, "end_ts"),
                (a.sessions, "end_ts"),
                (self.tasks, "end_ts"),
                (a.anomalies, "ts"),
            )
            if len(df)
        ]
        fs = [v for v in firsts if v]
        ls = [v for v in lasts if v]
        self.t0: int = min(fs) if fs else 0
        self.t1: int = max(ls) if ls else self.t0
        if self.t1 <= self.t0:
            self.t1 = self.t0 + 1_000_000  # 1 ms so that scales never divide by zero

    def rel(self, ts: Any) -> float:
        v = _ns(ts)
        return 0.0 if v is None else (v - self.t0) / 1e9
