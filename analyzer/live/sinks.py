"""Where the live analysis writes: the ``--alerts`` sink and the ``--out`` report directory.

A failing sink (a full disk, a closed pipe) never stops the capture or the analysis: the failure
is reported once, the sink is retried every ``RETRY_S`` seconds, and what could not be written
is counted and said in the final report (``SinkHealth``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

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


#: Seconds between two attempts of a sink that failed (a full disk is not freed in a moment).
RETRY_S: Final = 30.0


class SinkHealth:
    """The write failures of one sink: reported once (``pop_news``), retried every ``retry_s``,
    counted (``summary``), so that a full disk never stops the capture or the analysis."""

    def __init__(self, what: str, retry_s: float = RETRY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.retry_s = retry_s
        self.clock = clock
        self.error: str | None = None  #: the current failure (None while writes succeed)
        self.last_error: str | None = None
        self.lost: Counter[str] = Counter()  #: what could not be written, by kind ("alerts", ...)
        self.disabled = False  #: for good (the reader of stdout went away)
        self._retry_at = 0.0
        self._news: list[str] = []

    def may_try(self) -> bool:
        """False while failing and the next retry is not due (the item is then counted as lost)."""
        return not self.disabled and (self.error is None or self.clock() >= self._retry_at)

    def failed(self, exc: OSError, kind: str, n: int = 1) -> None:
        self.lost[kind] += n
        text = exc.strerror or str(exc)
        if self.error is None:
            self._news.append(f"cannot write {self.what}: {text}; retrying every {self.retry_s:g} s "
                              "(the capture and the analysis go on)")
        self.error = self.last_error = text
        self._retry_at = self.clock() + self.retry_s

    def skipped(self, kind: str, n: int = 1) -> None:
        self.lost[kind] += n

    def disable(self, why: str) -> None:
        if not self.disabled:
            self.disabled = True
            self.last_error = why
            self._news.append(f"stopped writing {self.what}: {why}")

    def succeeded(self) -> None:
        if self.error is not None:
            self._news.append(f"writing {self.what} works again ({self._lost_text()} lost meanwhile)")
            self.error = None

    def pop_news(self) -> list[str]:
        """Messages not shown yet (one per failure and one per recovery)."""
        news, self._news = self._news, []
        return news

    def _lost_text(self) -> str:
        return ", ".join(f"{n} {kind}" for kind, n in self.lost.items()) or "nothing"

    def summary(self) -> str | None:
        """One line for the final report, or None when everything was written."""
        if not self.lost and self.error is None and not self.disabled:
            return None
        return f"could not write {self._lost_text()} to {self.what} ({self.last_error})"


class _AppendFile:
    """An append-only file written with ``os.write`` (no buffer keeps a failed line for later): a
    line cut short by a full disk is ended before the next one."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._cut = False

    def write(self, text: str) -> None:
        data = (b"\n" if self._cut else b"") + text.encode("utf-8")
        done = 0
        try:
            while done < len(data):
                done += os.write(self.fd, data[done:])
        except OSError:
            self._cut = self._cut or done > 0
            raise
        self._cut = False

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


class AlertSink:
    """Anomalies as JSON lines, written one by one (``-`` = stdout). Never raises on a write."""

    def __init__(self, target: str) -> None:
        from analyzer.render.output import safe_name

        self.target = target
        self._file: _AppendFile | None = _AppendFile(target) if target != "-" else None
        self.health = SinkHealth("the alerts to " + ("stdout" if target == "-" else safe_name(target)))
        self.written = 0

    def write(self, a: Anomaly) -> None:
        """Write one alert at once (or count it as lost while the sink fails)."""
        if not self.health.may_try():
            self.health.skipped("alerts")
            return
        line = json_line(anomaly_to_row(a))
        try:
            if self._file is not None:
                self._file.write(line)
            else:
                sys.stdout.write(line)
                sys.stdout.flush()
        except BrokenPipeError:  # `| head`: keep analysing, stop writing
            self.health.skipped("alerts")
            self.health.disable("the reader of stdout went away")
            return
        except OSError as exc:
            self.health.failed(exc, "alerts")
            return
        self.written += 1
        self.health.succeeded()

    def close(self) -> None:
        """Close the file (stdout is left open)."""
        if self._file is not None:
            self._file.close()


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
        self._anomalies = _AppendFile(self.dir / "anomalies.jsonl")
        self._done = _AppendFile(self.dir / "sessions_done.jsonl")
        self._stats = _AppendFile(self.dir / "stats.jsonl")
        from analyzer.render.output import safe_name

        self.health = SinkHealth(f"the report directory {safe_name(self.dir)}")
        self.writes = 0
        self.tables_error: str | None = None
        try:  # import pandas now rather than in the middle of the capture
            import analyzer.api
            import analyzer.reports.analysis  # noqa: F401
        except ImportError as exc:
            self.tables_error = f"report tables unavailable ({exc}); writing JSON lines only"

    def anomaly(self, a: Anomaly) -> None:
        """Append one anomaly (or count it as lost while the directory cannot be written)."""
        self._append(self._anomalies, json_line(anomaly_to_row(a)), "anomalies")

    def session_done(self, s: SessionSummary, stats: StatsView | None) -> None:
        """Append a finished session's final row."""
        row = _session_dict(s)
        row["stats"] = stats.as_dict() if stats else None
        self._append(self._done, json_line(row), "finished-session rows")

    def _append(self, f: _AppendFile, line: str, kind: str) -> None:
        if not self.health.may_try():
            self.health.skipped(kind)
            return
        try:
            f.write(line)
        except OSError as exc:
            self.health.failed(exc, kind)
            return
        self.health.succeeded()

    def write(self, engine: LiveAnalyzer, status: LiveStatus, *, final: bool = False) -> list[Path]:
        """Rewrite the tables and live.json; append the stats lines. Never raises on a write: a
        failure is counted in ``health`` (the final one is always attempted)."""
        self.writes += 1
        if not final and not self.health.may_try():
            self.health.skipped("report rewrites")
            return []
        now = status.capture_ts_ns or engine.last_ts
        lines = "".join(json_line({"ts": now, "session": v.session, "initiator": v.initiator,
                                   "target": v.target, **v.stats.as_dict()})
                        for v in status.sessions if v.stats is not None)
        ok = True
        if lines:
            try:
                self._stats.write(lines)
            except OSError as exc:
                self.health.failed(exc, "statistics lines")
                ok = False
        try:
            written = [self._write_json("live.json", {**status.as_dict(), "final": final})]
            if self.tables_error is None:
                try:
                    written.extend(self._write_tables(engine, status, final))
                except OSError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a report failure must not stop the capture
                    self.tables_error = f"writing the report tables failed: {exc!r}"
        except OSError as exc:
            self.health.failed(exc, "final report" if final else "report rewrites")
            return []
        if ok:
            self.health.succeeded()
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
