"""Where the live analysis writes: the ``--alerts`` sink and the ``--out`` report directory."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

from analyzer.live.stats import StatsView
from analyzer.records import Anomaly, Record
from analyzer.state.events import SessionSummary

if TYPE_CHECKING:
    from analyzer.live.engine import LiveAnalyzer, LiveStatus

_ANOMALY_COLUMNS: Final = ("frame", "ts", "severity", "kind", "session", "conn", "message", "rfc", "frames",
                           "display_filter")


# --------------------------------------------------------------------------- alert rows


def anomaly_to_row(a: Anomaly) -> dict[str, Any]:
    """The alert / anomalies.jsonl row (``analyzer.anomalies.anomaly_row`` when it exists)."""
    try:
        from analyzer.anomalies import anomaly_row  # type: ignore[attr-defined]
    except ImportError:
        anomaly_row = None
    if anomaly_row is not None:
        row = dict(anomaly_row(a))
        return {c: row.get(c) for c in _ANOMALY_COLUMNS} | {k: v for k, v in row.items() if k not in _ANOMALY_COLUMNS}
    from analyzer.render.rows import ts_text

    return {"frame": a.frame, "ts": ts_text(a.ts_ns), "severity": a.severity, "kind": a.kind,
            "session": a.session, "conn": a.conn, "message": a.message, "rfc": a.rfc,
            "frames": " ".join(str(f) for f in (a.frames or (a.frame,))), "display_filter": a.display_filter}


def json_line(row: dict[str, Any]) -> str:
    """One JSON line; non-ASCII escaped so no capture-derived byte can steer a terminal."""
    return json.dumps(row, ensure_ascii=True, default=str) + "\n"


class AlertSink:
    """Anomalies as JSON lines, flushed one by one (``-`` = stdout)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._own = target != "-"
        self._f: IO[str] = (open(target, "a", encoding="utf-8") if self._own  # noqa: SIM115
                            else sys.stdout)
        self.written = 0

    def write(self, a: Anomaly) -> None:
        """Write one alert at once."""
        try:
            self._f.write(json_line(anomaly_to_row(a)))
            self._f.flush()
            self.written += 1
        except BrokenPipeError:  # `| head`: keep analysing, stop writing
            self._own = False

    def close(self) -> None:
        """Close the file (stdout is left open)."""
        if self._own:
            self._f.close()


# --------------------------------------------------------------------------- the report directory


class LiveReport:
    """``--out DIR``: the report tables (rewritten periodically and at exit) plus append-only logs.

    * the tables of ``analyzer.reports`` (sessions, connections, anomalies, tasks, ... as Parquet +
      CSV, ``capture.json``) for the sessions still in memory, the last ``max_anomalies``
      anomalies and the last ``max_tasks`` tasks; pdus/transitions/keys stay empty (not kept live);
    * ``anomalies.jsonl``: every anomaly, appended as it appears;
    * ``sessions_done.jsonl``: one row per finished session when it is forgotten (with its stats);
    * ``stats.jsonl``: per-session rolling statistics at every report;
    * ``live.json``: the live status (drops, backlog, lag) at the last report.
    """

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._anomalies = open(self.dir / "anomalies.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self._done = open(self.dir / "sessions_done.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self._stats = open(self.dir / "stats.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self.writes = 0
        self.tables_error: str | None = None
        try:  # import pandas now rather than in the middle of the capture
            import analyzer.api
            import analyzer.reports.analysis  # noqa: F401
        except ImportError as exc:
            self.tables_error = f"report tables unavailable ({exc}); writing JSON lines only"

    def anomaly(self, a: Anomaly) -> None:
        """Append one anomaly."""
        self._anomalies.write(json_line(anomaly_to_row(a)))
        self._anomalies.flush()

    def session_done(self, s: SessionSummary, stats: StatsView | None) -> None:
        """Append a finished session's final row."""
        row = _session_dict(s)
        row["stats"] = stats.as_dict() if stats else None
        self._done.write(json_line(row))
        self._done.flush()

    def write(self, engine: LiveAnalyzer, status: LiveStatus, *, final: bool = False) -> list[Path]:
        """Rewrite the tables and live.json; append the stats lines."""
        self.writes += 1
        now = status.capture_ts_ns or engine.last_ts
        for v in status.sessions:
            if v.stats is not None:
                self._stats.write(json_line({"ts": now, "session": v.session, "initiator": v.initiator,
                                             "target": v.target, **v.stats.as_dict()}))
        self._stats.flush()
        written = [self._write_json("live.json", {**status.as_dict(), "final": final})]
        if self.tables_error is None:
            try:
                written.extend(self._write_tables(engine, status, final))
            except Exception as exc:  # noqa: BLE001 - a report failure must not stop the capture
                self.tables_error = f"writing the report tables failed: {exc!r}"
        return written

    def _write_tables(self, engine: LiveAnalyzer, status: LiveStatus, final: bool) -> list[Path]:
        from analyzer import __version__
        from analyzer.api import analyze_records
        from analyzer.reports.analysis import CaptureInfo

        tracker = engine.pipeline.tracker
        if final and engine.final_sessions:  # (forgotten sessions are not among them: already flushed)
            sessions: list[Record] = list(engine.final_sessions)
            conns: list[Record] = list(engine.final_connections)
        else:  # the snapshot of the last housekeeping (sessions not forgotten yet)
            sessions, conns = list(engine._sessions), list(engine._connections)
        records: list[Record] = [*engine.recent_tasks, *engine.recent, *sessions, *conns]
        records.sort(key=lambda r: (r.ts_ns, r.frame))
        info = CaptureInfo(file=f"live:{status.interface}", name=f"live-{status.interface}", format="live",
                           frames=engine.last_frame, first_ts_ns=engine.first_ts or None,
                           last_ts_ns=engine.last_ts or None, analyzer_version=__version__,
                           state_tracker=tracker is not None, anomaly_engine=engine.pipeline.detectors is not None)
        analysis = analyze_records(records, capture=info)
        truncated: dict[str, Any] = {"pdus": {"kept": 0, "seen": status.pdus, "limit": 0}}
        if engine.anomalies_seen > len(engine.recent):
            truncated["anomalies"] = {"kept": len(engine.recent), "seen": engine.anomalies_seen,
                                      "limit": engine.options.max_anomalies}
        tasks_seen = engine.record_counts.get("TaskRecord", 0)
        if tasks_seen > len(engine.recent_tasks):
            truncated["tasks"] = {"kept": len(engine.recent_tasks), "seen": tasks_seen,
                                  "limit": engine.options.max_tasks}
        analysis.capture.truncated = truncated
        analysis.capture.pdus = status.pdus
        analysis.capture.stats = {**analysis.capture.stats, "live": status.as_dict(), "final": final,
                                  "anomaly_kinds": dict(engine.anomaly_kinds)}
        analysis.capture.damage = list(status.incomplete)
        return analysis.write(self.dir)

    def _write_json(self, name: str, doc: dict[str, Any]) -> Path:
        path = self.dir / name
        tmp = path.with_name(name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2, default=str, ensure_ascii=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    def close(self) -> None:
        """Close the append-only files."""
        for f in (self._anomalies, self._done, self._stats):
            f.close()


def _session_dict(s: SessionSummary) -> dict[str, Any]:
    return {"session": s.session, "session_type": s.session_type, "isid": s.isid, "tsih": s.tsih,
            "initiator_name": s.initiator_name, "target_name": s.target_name, "portals": list(s.portals),
            "connections": list(s.connections), "start_frame": s.start_frame, "start_ts": s.start_ts_ns,
            "end_frame": s.end_frame, "end_ts": s.end_ts_ns, "ended": s.ended,
            "state_initiator": s.state_initiator, "state_target": s.state_target, "tasks": s.tasks}
