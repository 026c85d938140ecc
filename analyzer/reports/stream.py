"""The streaming pass of ``analyze``: every table written while the capture is read.

:class:`StreamCollector` accounts for records exactly as ``collect.Collector`` does (same
tables, same rows, same counters, same truncation limits) but keeps no table in memory: the
pdus, tasks, transitions and anomalies rows go straight to ``tables.TableWriter`` (Parquet
row groups, CSV chunks for transitions and anomalies), and the report aggregates of the PDUs
(``aggregates.PduSummary``) are computed on the way. What stays in memory is bounded
per-connection / per-session state: the last summary of each session and connection, the
endpoints and session of each connection, and the Login/Text keys (bounded by
``Limits.max_key_rows``; kept unmasked in memory for ``show_secrets`` reports, written masked).

The pdus table's ``session`` column is filled in per row group from what is known about the
connection when the row group is written. A connection's session is usually known from its
login on; if at the end of the pass any row group was written with a session that differs
from the final one (a row group flushed while a connection was still logging in), the pdus
file is rewritten once, row group by row group, with the final mapping, so the table is
exactly the one ``Collector`` would have built.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from operator import itemgetter
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analyzer.iscsi.describe import info as pdu_info
from analyzer.records import (
    Anomaly,
    LoginRequest,
    LoginResponse,
    MalformedPdu,
    Pdu,
    Record,
    TextRequest,
    TextResponse,
)
from analyzer.render.rows import PDU_COLUMNS, pdu_record_values
from analyzer.reports import frames
from analyzer.reports.aggregates import LatencyStats, PduSummary
from analyzer.reports.collect import Collected, Collector, Limits
from analyzer.reports.tables import (
    MAX_BUFFER_BYTES,
    POOL,
    ROW_GROUP_ROWS,
    TableWriter,
    file_error,
    use_system_allocator,
    write_table_file,
)
from analyzer.state.events import TaskRecord, Transition

_KEY_TYPES = (LoginRequest, LoginResponse, TextRequest, TextResponse)
_OPNAME = PDU_COLUMNS.index("opcode_name")
_DSL = PDU_COLUMNS.index("dsl")
_SESSION = len(PDU_COLUMNS)  # the session column follows the listing's columns


class StreamCollector(Collector):
    """Feed records in capture order, then ``finish``: the tables are files in ``directory``.

    ``finish`` returns a ``Collected`` whose ``tables`` hold only the small in-memory tables
    (sessions, connections, and keys unmasked); ``files`` lists what was written and
    ``summary`` is the PDU aggregate for the reports.
    """

    def __init__(self, directory: str | os.PathLike[str], limits: Limits | None = None, *,
                 row_group_rows: int = ROW_GROUP_ROWS, max_buffer_bytes: int = MAX_BUFFER_BYTES) -> None:
        super().__init__(limits)
        use_system_allocator()
        lim = self.limits
        self.directory = d = Path(directory)
        self.summary = PduSummary()
        self.latency = LatencyStats()
        self._pdu_w = TableWriter("pdus", d, limit=lim.max_pdu_rows, text_columns=("info",),
                                  transform=self._fill_session, row_group_rows=row_group_rows,
                                  max_buffer_bytes=max_buffer_bytes)
        self._task_w = TableWriter("tasks", d, limit=lim.max_task_rows, text_columns=("note",),
                                   row_group_rows=row_group_rows,
                                   max_buffer_bytes=max_buffer_bytes)
        self._trans_w = TableWriter("transitions", d, limit=lim.max_transition_rows, csv=True,
                                    text_columns=("event",), row_group_rows=row_group_rows,
                                  max_buffer_bytes=max_buffer_bytes)
        self._anom_w = TableWriter("anomalies", d, limit=lim.max_anomaly_rows, csv=True,
                                   text_columns=("message", "frames", "display_filter"), row_group_rows=row_group_rows,
                                  max_buffer_bytes=max_buffer_bytes)
        self._task_get = itemgetter(*frames.SCHEMAS["tasks"])
        self._trans_get = itemgetter(*frames.SCHEMAS["transitions"])
        self._anom_get = itemgetter(*frames.SCHEMAS["anomalies"])
        self._key_rows: list[dict[str, Any]] = []
        self._keys_seen = 0
        self._written_session: dict[str, str | None] = {}
        self._rewrote = False
        self.files: list[Path] = []

    # ------------------------------------------------------------------ pass

    def feed(self, rec: Record) -> None:
        """Account for one record (its rows go to the table writers)."""
        self.diagnoser.feed(rec)
        t = type(rec)
        self.counts[t.__name__] += 1
        ts = rec.ts_ns
        if ts:
            if self.first_ts is None or ts < self.first_ts:
                self.first_ts = ts
            if self.last_ts is None or ts > self.last_ts:
                self.last_ts = ts
        if rec.frame > self.last_frame:  # noqa: PLR1730 - a comparison is cheaper than max() per record
            self.last_frame = rec.frame
        if t is MalformedPdu or isinstance(rec, Pdu):
            conn = rec.conn  # type: ignore[attr-defined]
            ep = self._endpoints.get(conn)
            if ep is None:
                ep = self._endpoints[conn] = frames.endpoints_from_conn(conn)
            text = f"Malformed PDU: {rec.reason}" if t is MalformedPdu else pdu_info(rec)  # type: ignore[attr-defined,arg-type]
            row = pdu_record_values(rec, ep, text)  # type: ignore[arg-type]
            if self._pdu_w.add(row):
                self.summary.add(conn, rec.opcode, row[_OPNAME], ts, row[_DSL])  # type: ignore[attr-defined]
            if t in _KEY_TYPES:
                for kr in frames.key_rows(rec):  # type: ignore[arg-type]
                    self._keys_seen += 1
                    if len(self._key_rows) < self.limits.max_key_rows:
                        self._key_rows.append(kr)
        elif t is TaskRecord:
            if self._task_w.add(self._task_get(frames.task_row(rec))):  # type: ignore[arg-type]
                self.latency.add_task(rec.kind, rec.outcome, rec.partial, rec.cdb_name, rec.lun,  # type: ignore[attr-defined]
                                      rec.latency_ns)  # type: ignore[attr-defined]
            if rec.session:  # type: ignore[attr-defined]
                self._conn_session.setdefault(rec.conn, rec.session)  # type: ignore[attr-defined]
        elif t is Transition:
            self._trans_w.add(self._trans_get(frames.transition_row(rec)))  # type: ignore[arg-type]
            if rec.session and rec.conn:  # type: ignore[attr-defined]
                self._conn_session[rec.conn] = rec.session  # type: ignore[attr-defined]
        elif isinstance(rec, Anomaly):
            self._anom_w.add(self._anom_get(frames.anomaly_row(rec)))
        else:
            self._note(rec, t)

    def feed_all(self, records: Iterable[Record]) -> None:
        """Feed every record of ``records``."""
        feed = self.feed
        for r in records:
            feed(r)

    # ------------------------------------------------------------------ session column

    def _mapping(self) -> dict[str, str]:
        m = dict(self._conn_session)
        for c in self._connections.values():
            if c.session:
                m[c.conn] = c.session
        return m

    def _session_column(self, t: pa.Table, mapping: dict[str, str]) -> tuple[pa.Table, list[str]]:
        conn = t.column("conn").combine_chunks()
        conns = [str(c) for c in conn.dictionary.to_pylist()]
        sess = pa.array([mapping.get(c) for c in conns], pa.string())
        col = sess.take(conn.indices).dictionary_encode()
        i = t.schema.get_field_index("session")
        return t.set_column(i, t.schema.field(i), col), conns

    def _fill_session(self, t: pa.Table) -> pa.Table:
        mapping = self._mapping()
        out, conns = self._session_column(t, mapping)
        for c in conns:
            self._written_session.setdefault(c, mapping.get(c))
            if self._written_session[c] != mapping.get(c):
                self._written_session[c] = "\0changed"  # forces the final rewrite
        return out

    def _rewrite_pdus(self, mapping: dict[str, str]) -> None:
        path = self._pdu_w.path
        tmp = path.with_name(path.name + ".rewrite")
        # File objects: pyarrow cannot encode non-UTF-8 path names.
        src_fh = open(path, "rb")  # noqa: SIM115 - closed below
        src = pq.ParquetFile(src_fh)
        try:
            with open(tmp, "wb") as out, pq.ParquetWriter(out, src.schema_arrow, memory_pool=POOL) as w:
                for i in range(src.num_row_groups):
                    w.write_table(self._session_column(src.read_row_group(i), mapping)[0])
        except OSError as exc:
            raise file_error(path, exc) from exc
        finally:
            src.close()
            src_fh.close()
        os.replace(tmp, path)

    # ------------------------------------------------------------------ end

    def finish(self) -> Collected:
        """Close every table file; the small tables in memory, the counters and the file list."""
        from analyzer.reports.files import csv_safe

        files = self.files
        files += self._pdu_w.close()
        mapping = self._mapping()
        if any(mapping.get(c) != s for c, s in self._written_session.items()):
            self._rewrite_pdus(mapping)
            self._rewrote = True
        self.summary.conn_session = mapping
        files += self._task_w.close()
        files += self._trans_w.close()
        files += self._anom_w.close()
        sessions = frames.build("sessions", [frames.session_row(s) for s in self._sessions.values()])
        connections = frames.build("connections", [frames.connection_row(c) for c in self._connections.values()])
        keys = frames.build("keys", self._key_rows)
        self._key_rows = []
        diagnosis = self.finish_diagnosis()
        for name, df in diagnosis.items():  # small tables (rows per connection, drop, path, session)
            files.append(write_table_file(name, df, self.directory / f"{name}.parquet"))
        for name, df in (("sessions", sessions), ("connections", connections),
                         ("keys", frames.mask_key_values(keys))):
            files.append(write_table_file(name, frames.conform(name, df), self.directory / f"{name}.parquet"))
            if name != "keys":
                path = self.directory / f"{name}.csv"
                try:
                    csv_safe(frames.conform(name, df)).to_csv(path, index=False)
                except OSError as exc:
                    raise file_error(path, exc) from exc
                files.append(path)
        writers = {"pdus": self._pdu_w, "tasks": self._task_w, "transitions": self._trans_w,
                   "anomalies": self._anom_w}
        truncated = {
            n: {"kept": w.kept, "seen": w.seen, "limit": w.limit}
            for n, w in writers.items() if w.seen > w.kept
        }
        if self._keys_seen > len(keys):
            truncated["keys"] = {"kept": len(keys), "seen": self._keys_seen, "limit": self.limits.max_key_rows}
        order = ("pdus", "tasks", "transitions", "anomalies", "keys")
        truncated = {n: truncated[n] for n in order if n in truncated}
        stats = self.stats(self._pdu_w.seen, truncated)
        tables: dict[str, pd.DataFrame] = {"sessions": sessions, "connections": connections, "keys": keys,
                                           **diagnosis}
        return Collected(tables, stats, self.diagnosis.story if self.diagnosis else [])

    @property
    def writers(self) -> dict[str, TableWriter]:
        """The streamed tables' writers (row and row-group counts)."""
        return {"pdus": self._pdu_w, "tasks": self._task_w, "transitions": self._trans_w,
                "anomalies": self._anom_w}

    @property
    def rewrote_pdus(self) -> bool:
        """Whether ``finish`` had to rewrite the pdus file for late-known sessions."""
        return self._rewrote

    def abort(self) -> None:
        """Stop writing (the directory is thrown away by its owner)."""
        for w in (self._pdu_w, self._task_w, self._trans_w, self._anom_w):
            w.abort()
