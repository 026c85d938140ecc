"""One streaming pass over a record stream, collecting the rows of every report table.

PDU records are not kept: each becomes a row at once, rows are turned into compact
DataFrame chunks every ``CHUNK_ROWS`` rows, and the chunks are concatenated at the end.
Tables that grow with the capture are bounded (``Limits``); what was left out is counted
and reported as truncation, never silently dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Final

import pandas as pd

from analyzer.diagnosis import Diagnoser, Diagnosis
from analyzer.records import (
    Anomaly,
    CaptureDamage,
    FramingResync,
    LoginRequest,
    LoginResponse,
    MalformedPdu,
    Pdu,
    Record,
    TcpGap,
    TcpOpened,
    TcpRetransmission,
    TextRequest,
    TextResponse,
)
from analyzer.reports import frames
from analyzer.reports.diagnosis import diagnosis_frames
from analyzer.state.events import ConnectionSummary, SessionSummary, TaskRecord, Transition

#: Rows per DataFrame chunk while streaming.
CHUNK_ROWS: Final = 65536
#: Default bound on kept PDU rows (about 1 GB of memory at the very most).
DEFAULT_MAX_PDU_ROWS: Final = 2_000_000


@dataclass
class Limits:
    """Bounds on the rows kept per table; rows past a bound are counted, not kept."""

    max_pdu_rows: int = DEFAULT_MAX_PDU_ROWS
    max_task_rows: int = 2_000_000
    max_transition_rows: int = 500_000
    max_anomaly_rows: int = 200_000
    max_key_rows: int = 100_000


@dataclass
class Collected:
    """The tables and the counters of one pass."""

    tables: dict[str, pd.DataFrame]
    stats: dict[str, Any] = field(default_factory=dict)
    story: list[str] = field(default_factory=list)  #: the diagnosis's plain sentences of what happened


class _Table:
    __slots__ = ("_get", "kept", "limit", "name", "parts", "rows", "seen")

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        self._get = itemgetter(*frames.SCHEMAS[name])  # row dict -> tuple in schema order, at C speed
        self.rows: list[tuple[Any, ...]] = []
        self.parts: list[pd.DataFrame] = []
        self.kept = 0
        self.seen = 0

    def add(self, row: dict[str, Any]) -> None:
        self.seen += 1
        if self.kept >= self.limit:
            return
        self.kept += 1
        self.rows.append(self._get(row))
        if len(self.rows) >= CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            columns = dict(zip(frames.SCHEMAS[self.name], zip(*self.rows, strict=True), strict=True))
            self.parts.append(frames.build(self.name, columns))
            self.rows = []

    def frame(self) -> pd.DataFrame:
        self.flush()
        df = frames.concat(self.name, self.parts)
        self.parts = []
        return df


class Collector:
    """Feed records in capture order (``feed``), then ``finish`` for the tables."""

    def __init__(self, limits: Limits | None = None) -> None:
        lim = self.limits = limits or Limits()
        self._pdus = _Table("pdus", lim.max_pdu_rows)
        self._tasks = _Table("tasks", lim.max_task_rows)
        self._transitions = _Table("transitions", lim.max_transition_rows)
        self._anomalies = _Table("anomalies", lim.max_anomaly_rows)
        self._keys = _Table("keys", lim.max_key_rows)
        self._endpoints: dict[str, Any] = {}
        self._sessions: dict[str, SessionSummary] = {}
        self._connections: dict[str, ConnectionSummary] = {}
        self._conn_session: dict[str, str] = {}
        self.counts: Counter[str] = Counter()
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.last_frame = 0
        self.gap_bytes = 0
        self.snaplen_cuts = 0  # TcpGap records of frames cut by the snap length (not losses)
        self.snaplen_bytes = 0
        self.retransmitted_bytes = 0
        self.resync_skipped = 0
        self.damage: list[str] = []
        #: the diagnosis of the same pass (why connections dropped, paths, queues: ``analyzer.diagnosis``)
        self.diagnoser = Diagnoser()
        self.diagnosis: Diagnosis | None = None

    def finish_diagnosis(self) -> dict[str, pd.DataFrame]:
        """End the diagnosis (``self.diagnosis``); its tables (``reports.diagnosis.DIAGNOSIS_TABLES``)."""
        self.diagnosis = self.diagnoser.finish()
        return diagnosis_frames(self.diagnosis)

    def feed(self, rec: Record) -> None:
        """Account for one record."""
        self.diagnoser.feed(rec)
        t = type(rec)
        name = t.__name__
        self.counts[name] += 1
        ts = rec.ts_ns
        if ts:
            if self.first_ts is None or ts < self.first_ts:
                self.first_ts = ts
            if self.last_ts is None or ts > self.last_ts:
                self.last_ts = ts
        self.last_frame = max(self.last_frame, rec.frame)
        if isinstance(rec, (Pdu, MalformedPdu)):
            self._pdus.add(frames.pdu_record_row(rec, self._endpoints.get(rec.conn)))
            if t in (LoginRequest, LoginResponse, TextRequest, TextResponse):
                for row in frames.key_rows(rec):  # type: ignore[arg-type]
                    self._keys.add(row)
        elif t is TaskRecord:
            self._tasks.add(frames.task_row(rec))  # type: ignore[arg-type]
            if rec.session:  # type: ignore[attr-defined]
                self._conn_session.setdefault(rec.conn, rec.session)  # type: ignore[attr-defined]
        elif t is Transition:
            self._transitions.add(frames.transition_row(rec))  # type: ignore[arg-type]
            if rec.session and rec.conn:  # type: ignore[attr-defined]
                self._conn_session[rec.conn] = rec.session  # type: ignore[attr-defined]
        elif isinstance(rec, Anomaly):
            self._anomalies.add(frames.anomaly_row(rec))
        else:
            self._note(rec, t)

    def feed_all(self, records: Iterable[Record]) -> None:
        """Feed every record of ``records``."""
        feed = self.feed
        for r in records:
            feed(r)


    def _note(self, rec: Record, t: type) -> None:
        """The bookkeeping of records that are no table's rows (endpoints, summaries, counters)."""
        if t is TcpOpened:
            self._endpoints[rec.conn] = frames.endpoints_of(rec)  # type: ignore[attr-defined]
        elif t is SessionSummary:
            self._sessions[rec.session] = rec  # type: ignore[attr-defined,assignment]
        elif t is ConnectionSummary:
            self._connections[rec.conn] = rec  # type: ignore[attr-defined,assignment]
        elif t is TcpGap:
            if rec.snaplen:  # type: ignore[attr-defined]
                self.snaplen_cuts += 1
                self.snaplen_bytes += rec.length  # type: ignore[attr-defined]
            else:
                self.gap_bytes += rec.length  # type: ignore[attr-defined]
        elif t is TcpRetransmission:
            self.retransmitted_bytes += rec.length  # type: ignore[attr-defined]
        elif t is FramingResync:
            self.resync_skipped += rec.skipped  # type: ignore[attr-defined]
        elif t is CaptureDamage:
            self.damage.append(rec.message)  # type: ignore[attr-defined]

    def finish(self) -> Collected:
        """The tables (with dtypes, see ``frames``) and the pass's counters."""
        sessions = frames.build("sessions", [frames.session_row(s) for s in self._sessions.values()])
        connections = frames.build(
            "connections", [frames.connection_row(c) for c in self._connections.values()]
        )
        conn_session = dict(self._conn_session)
        for c in self._connections.values():
            if c.session:
                conn_session[c.conn] = c.session
        pdus = self._pdus.frame()
        if len(pdus) and conn_session:
            pdus["session"] = frames.map_category(pdus["conn"], conn_session)
        tables = {
            "pdus": pdus,
            "tasks": self._tasks.frame(),
            "sessions": sessions,
            "connections": connections,
            "transitions": self._transitions.frame(),
            "anomalies": self._anomalies.frame(),
            "keys": self._keys.frame(),
            **self.finish_diagnosis(),
        }
        truncated = {
            t.name: {"kept": t.kept, "seen": t.seen, "limit": t.limit}
            for t in (self._pdus, self._tasks, self._transitions, self._anomalies, self._keys)
            if t.seen > t.kept
        }
        return Collected(tables, self.stats(self._pdus.seen, truncated), self.diagnosis.story if self.diagnosis else [])

    def stats(self, pdus_seen: int, truncated: dict[str, Any]) -> dict[str, Any]:
        """The pass's counters (what ``finish`` returns as ``Collected.stats``)."""
        return {
            "records": dict(sorted(self.counts.items())),
            "pdus_seen": pdus_seen,
            "first_ts_ns": self.first_ts,
            "last_ts_ns": self.last_ts,
            "last_frame": self.last_frame,
            "tcp_gaps": self.counts.get("TcpGap", 0) - self.snaplen_cuts,
            "gap_bytes": self.gap_bytes,
            "snaplen_cut_segments": self.snaplen_cuts,
            "snaplen_cut_bytes": self.snaplen_bytes,
            "retransmissions": self.counts.get("TcpRetransmission", 0),
            "retransmitted_bytes": self.retransmitted_bytes,
            "framing_resyncs": self.counts.get("FramingResync", 0),
            "resync_skipped_bytes": self.resync_skipped,
            "malformed_pdus": self.counts.get("MalformedPdu", 0),
            "violations": self.counts.get("Violation", 0),
            "tracker_errors": self.counts.get("TrackerError", 0),
            "truncated": truncated,
            "damage": list(self.damage),
        }


def collect(records: Iterable[Record], limits: Limits | None = None) -> Collected:
    """Collect every table from a record stream in one pass."""
    c = Collector(limits)
    c.feed_all(records)
    return c.finish()
