"""``Analysis``: the tables of one capture, plus what is known about the capture file itself."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from analyzer.reports import frames
from analyzer.reports.diagnosis import DIAGNOSIS_TABLES
from analyzer.reports.tables import parquet_rows
from analyzer.reports.tables import read_parquet as _read_parquet

#: The DataFrame attributes of an ``Analysis``, in report order.
TABLES = ("pdus", "tasks", "sessions", "connections", "transitions", "anomalies", "keys", *DIAGNOSIS_TABLES)


@dataclass
class CaptureInfo:
    """The capture file and the pass over it."""

    file: str = ""
    name: str = ""
    size_bytes: int | None = None  #: size of the file on disk (compressed size for .gz)
    format: str = ""  #: "pcap" / "pcapng"
    frames: int = 0
    bytes: int = 0  #: captured bytes of all frames
    non_tcp: int = 0
    truncated_frames: int = 0  #: frames cut by the snap length
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    pdus: int = 0  #: PDUs seen (the pdus table may hold fewer, see ``truncated``)
    damage: list[str] = field(default_factory=list)  #: damaged/truncated capture file warnings
    truncated: dict[str, Any] = field(default_factory=dict)  #: table -> {kept, seen, limit}
    stats: dict[str, Any] = field(default_factory=dict)  #: gap/retransmission/resync counters, record counts
    state_tracker: bool = True
    anomaly_engine: bool = True
    analyzer_version: str = ""
    secrets_available: bool = False  #: the keys table holds unmasked values (not after ``load``)
    #: plain sentences of what happened (``analyzer.diagnosis``): why each connection dropped,
    #: how long I/O stopped, paths that stayed down; empty when nothing went wrong
    story: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        """Seconds from the first to the last frame (0 when unknown)."""
        if self.first_ts_ns is None or self.last_ts_ns is None:
            return 0.0
        return max(self.last_ts_ns - self.first_ts_ns, 0) / 1e9

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``duration_s`` included; ``secrets_available`` left out)."""
        d = asdict(self)
        d.pop("secrets_available")
        d["duration_s"] = self.duration_s
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CaptureInfo:
        """The info from ``to_dict`` output (unknown keys ignored)."""
        names = {f.name for f in fields(cls)} - {"secrets_available"}
        return cls(**{k: v for k, v in d.items() if k in names})


class _TableAttr:
    """A table of an ``Analysis``: kept in memory, or read from its report directory when first asked for."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Analysis | None, owner: type) -> Any:
        if obj is None:
            return self
        return obj.table(self.name)

    def __set__(self, obj: Analysis, value: pd.DataFrame) -> None:
        obj._tables[self.name] = value
        obj._dirty.add(self.name)


class Analysis:
    """DataFrames of one analysed capture (dtypes: ``analyzer.reports.frames.SCHEMAS``).

    An Analysis made by ``analyze`` or ``load`` is backed by a report directory: a table is read
    from its Parquet file the first time it is asked for (``a.pdus``), so analysing or loading a
    big capture does not load the pdus table. ``columns(table, names)`` reads only some columns
    (what the HTML report and the summary do). Tables given to the constructor (or assigned)
    are kept in memory as they are.
    """

    pdus = _TableAttr()
    tasks = _TableAttr()
    sessions = _TableAttr()
    connections = _TableAttr()
    transitions = _TableAttr()
    anomalies = _TableAttr()
    keys = _TableAttr()  #: Login/Text keys; unmasked right after ``analyze``, masked after ``load``
    # the diagnosis tables (``analyzer.reports.diagnosis``; empty for a report written before them)
    drops = _TableAttr()  #: why each connection ended without a clean logout
    recoveries = _TableAttr()  #: how long I/O stopped around each drop, and on which session it resumed
    paths = _TableAttr()  #: initiator address -> portal paths, up and down time
    path_intervals = _TableAttr()  #: up and down intervals of each path
    queues = _TableAttr()  #: queue depth and the CmdSN window per session
    nop_pings = _TableAttr()  #: NOP-Out / NOP-In pings and their round trips
    logins = _TableAttr()  #: failed logins explained
    connection_stats = _TableAttr()  #: per-connection transport statistics

    def __init__(
        self,
        pdus: pd.DataFrame | None = None,
        tasks: pd.DataFrame | None = None,
        sessions: pd.DataFrame | None = None,
        connections: pd.DataFrame | None = None,
        transitions: pd.DataFrame | None = None,
        anomalies: pd.DataFrame | None = None,
        keys: pd.DataFrame | None = None,
        capture: CaptureInfo | None = None,
        *,
        report_dir: str | os.PathLike[str] | None = None,
        pdu_summary: Any = None,
        latency: Any = None,
    ) -> None:
        given = {"pdus": pdus, "tasks": tasks, "sessions": sessions, "connections": connections,
                 "transitions": transitions, "anomalies": anomalies, "keys": keys}
        self._tables: dict[str, pd.DataFrame] = {k: v for k, v in given.items() if v is not None}
        self._dirty: set[str] = set()
        self.capture = capture if capture is not None else CaptureInfo()
        self.report_dir: Path | None = Path(report_dir) if report_dir is not None else None
        self._pdu_summary = pdu_summary
        self._latency = latency
        self._keepalive: Any = None  # a temporary report directory deleted with this object
        self._summary_text: str | None = None

    @classmethod
    def from_tables(cls, tables: dict[str, pd.DataFrame], capture: CaptureInfo) -> Analysis:
        """An Analysis from a dict of tables (missing tables empty)."""
        a = cls(capture=capture)
        a._tables.update({t: tables[t] if t in tables else frames.empty(t) for t in TABLES})
        return a

    @classmethod
    def from_dir(cls, report_dir: str | os.PathLike[str], capture: CaptureInfo,
                 tables: dict[str, pd.DataFrame] | None = None, pdu_summary: Any = None,
                 latency: Any = None) -> Analysis:
        """An Analysis backed by a report directory (tables read when asked for); ``tables``
        are already in memory (they win over the files: e.g. the unmasked keys)."""
        a = cls(capture=capture, report_dir=report_dir, pdu_summary=pdu_summary, latency=latency)
        a._tables.update(tables or {})
        return a

    @property
    def loaded(self) -> set[str]:
        """The tables held in memory right now (the others are read when asked for)."""
        return set(self._tables)

    def _path(self, name: str) -> Path | None:
        if self.report_dir is None:
            return None
        p = self.report_dir / f"{name}.parquet"
        return p if p.exists() else None

    def table(self, name: str) -> pd.DataFrame:
        """One table by name (read from the report directory the first time)."""
        df = self._tables.get(name)
        if df is None:
            path = self._path(name)
            df = frames.conform(name, _read_parquet(path)) if path else frames.empty(name)
            self._tables[name] = df
        return df

    def columns(self, name: str, names: list[str]) -> pd.DataFrame:
        """Some columns of a table, without loading (or keeping) the others."""
        df = self._tables.get(name)
        if df is not None:
            return df[names]
        path = self._path(name)
        if path is None:
            return frames.empty(name)[names]
        raw = _read_parquet(path, columns=names)
        schema = frames.SCHEMAS[name]
        sub = frames.conform(name, raw)
        return sub[[c for c in names if c in schema]]

    def table_rows(self, name: str) -> int:
        """Rows of a table, without loading it."""
        df = self._tables.get(name)
        if df is not None:
            return len(df)
        path = self._path(name)
        if path is None:
            return 0

        return parquet_rows(path)

    @property
    def pdu_summary(self) -> Any:
        """The PDU aggregates of the reports (``aggregates.PduSummary``), from the pass or the table."""
        if self._pdu_summary is None:
            from analyzer.reports.aggregates import PduSummary

            self._pdu_summary = PduSummary.from_frame(
                self.columns("pdus", ["opcode_name", "ts", "opcode", "dsl", "session"]))
        return self._pdu_summary

    @property
    def latency(self) -> Any:
        """Latency digests per (operation, LUN) (``aggregates.LatencyStats``), from the pass or the table."""
        if self._latency is None or "tasks" in self._dirty:
            from analyzer.reports.aggregates import LatencyStats

            self._latency = LatencyStats.from_frame(
                self.columns("tasks", ["kind", "outcome", "partial", "cdb_name", "lun", "latency"]))
        return self._latency

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """Table name -> DataFrame (loads every table)."""
        return {t: self.table(t) for t in TABLES}

    def write(self, out_dir: str | os.PathLike[str]) -> list[Path]:
        """Write Parquet (all tables), CSV (small tables) and capture.json; returns the paths.

        The directory is written under a temporary name and renamed into place when complete.
        """
        from analyzer.reports.files import copy_dir, write_dir

        if self.report_dir is not None and not self._dirty and "keys" not in self._dirty:
            if Path(out_dir).resolve() == self.report_dir.resolve():
                return sorted(p for p in self.report_dir.iterdir() if p.suffix in (".parquet", ".csv", ".json"))
            return copy_dir(self.report_dir, self.capture.to_dict(), out_dir)
        return write_dir(self.tables, self.capture.to_dict(), out_dir)

    def html(self, show_secrets: bool = False) -> str:
        """The self-contained HTML report as text."""
        from analyzer.reports.html import render

        return render(self, show_secrets=show_secrets)

    def to_html(self, path: str | os.PathLike[str], show_secrets: bool = False) -> Path:
        """Write the self-contained HTML report to ``path`` (through a temporary file, renamed
        into place when complete); returns it."""
        from analyzer.reports.tables import atomic_write_text

        p = Path(path)
        if p.parent != Path():
            p.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_text(p, self.html(show_secrets=show_secrets))

    def summary(self) -> str:
        """A plain-text summary for people (sessions, anomalies, latency, throughput)."""
        from analyzer.reports.summary import summary_text

        if self._dirty or self._summary_text is None:
            self._summary_text = summary_text(self)
        return self._summary_text

    def __repr__(self) -> str:
        sizes = ", ".join(f"{t}={self.table_rows(t)}" for t in TABLES)
        return f"Analysis({self.capture.name or self.capture.file!r}: {sizes})"
