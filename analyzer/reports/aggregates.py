"""Aggregates of the pdus table computed during the pass, so reports never load that table.

The HTML report needs three things from the PDUs: how many of each opcode, the first and last
timestamp, and the data bytes over time per session (throughput charts). :class:`PduSummary`
keeps exactly these while the capture is read:

- opcode counts and min/max timestamp: exact, constant memory;
- throughput points: per connection, one (ts_ns, read bytes, write bytes) point per Data-In /
  Data-Out / SCSI Command with immediate data (``array('q')``, 24 bytes a point). They are kept
  exact while the whole capture has at most ``MAX_THROUGHPUT_POINTS`` of them (the charts are
  then identical to charts drawn from the full table); past the bound the points are dropped
  and the report charts data per task at its completion instead (what it does when the pdus
  table itself was truncated; the report says so). Memory is therefore bounded by
  ``24 * MAX_THROUGHPUT_POINTS`` bytes (about 48 MB) whatever the capture length.

``merge`` adds another summary (another file of a chain, another worker); ``from_frame``
computes the same summary from a pdus DataFrame (a report directory read back, or a batch
dataset).
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import pandas as pd

#: Most throughput points kept exact (see the module docstring).
MAX_THROUGHPUT_POINTS: Final = 2_000_000
#: Opcodes whose data segment is SCSI data: SCSI Data-In (0x25), Data-Out (0x05), Command (0x01).
DATA_IN: Final = 0x25
_DATA_OPCODES: Final = frozenset((0x25, 0x05, 0x01))


class PduSummary:
    """Opcode counts, timestamp range and per-connection throughput points of the PDUs."""

    def __init__(self, max_points: int = MAX_THROUGHPUT_POINTS) -> None:
        self.opcode_counts: Counter[str] = Counter()
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.max_points = max_points
        self.points = 0
        self.overflow = False  #: more points than ``max_points``: throughput from tasks instead
        self._ts: dict[str, array[int]] = {}
        self._read: dict[str, array[int]] = {}
        self._write: dict[str, array[int]] = {}
        self.conn_session: dict[str, str] = {}

    def add(self, conn: str, opcode: int, opcode_name: str, ts_ns: int, dsl: int | None) -> None:
        """One PDU of the pdus table."""
        self.opcode_counts[opcode_name] += 1
        if self.first_ts is None or ts_ns < self.first_ts:
            self.first_ts = ts_ns
        if self.last_ts is None or ts_ns > self.last_ts:
            self.last_ts = ts_ns
        if dsl and opcode in _DATA_OPCODES and not self.overflow:
            ts = self._ts.get(conn)
            if ts is None:
                ts = self._ts[conn] = array("q")
                self._read[conn] = array("q")
                self._write[conn] = array("q")
            ts.append(ts_ns)
            if opcode == DATA_IN:
                self._read[conn].append(dsl)
                self._write[conn].append(0)
            else:
                self._read[conn].append(0)
                self._write[conn].append(dsl)
            self.points += 1
            if self.points > self.max_points:
                self._drop_points()

    def _drop_points(self) -> None:
        self.overflow = True
        self._ts, self._read, self._write = {}, {}, {}

    def merge(self, other: PduSummary) -> None:
        """Add ``other`` (later PDUs of the same capture set) into this summary."""
        self.opcode_counts.update(other.opcode_counts)
        for v in (other.first_ts,):
            if v is not None and (self.first_ts is None or v < self.first_ts):
                self.first_ts = v
        if other.last_ts is not None and (self.last_ts is None or other.last_ts > self.last_ts):
            self.last_ts = other.last_ts
        self.conn_session.update(other.conn_session)
        if other.overflow:
            self._drop_points()
        if self.overflow:
            return
        for conn, ts in other._ts.items():
            for mine, theirs in ((self._ts, ts), (self._read, other._read[conn]), (self._write, other._write[conn])):
                mine.setdefault(conn, array("q")).extend(theirs)
        self.points += other.points
        if self.points > self.max_points:
            self._drop_points()

    def session_points(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Session -> (ts_ns, read bytes, write bytes) of its data PDUs, in capture order per
        connection (connections without a session are left out, as the report does)."""
        by_session: dict[str, list[str]] = {}
        for conn in self._ts:
            sid = self.conn_session.get(conn)
            if sid is not None:
                by_session.setdefault(sid, []).append(conn)
        out = {}
        for sid, conns in by_session.items():
            out[sid] = tuple(
                np.concatenate([np.frombuffer(d[c], dtype=np.int64) for c in conns]) if conns else np.empty(0, np.int64)
                for d in (self._ts, self._read, self._write)
            )
        return out  # type: ignore[return-value]

    @classmethod
    def from_frame(cls, pdus: pd.DataFrame, conn_session: Mapping[str, str] | None = None) -> PduSummary:
        """The summary of a whole pdus table (a report directory or a batch dataset read back)."""
        s = cls()
        if not len(pdus):
            return s
        counts = pdus["opcode_name"].astype(object).value_counts(sort=False)  # first-appearance order
        s.opcode_counts = Counter({str(k): int(v) for k, v in counts.items()})
        ts = pdus["ts"].astype("int64")
        s.first_ts, s.last_ts = int(ts.min()), int(ts.max())
        op = pdus["opcode"].astype(object)
        dsl = pdus["dsl"].fillna(0).astype("int64")
        m = op.isin(["0x25", "0x05", "0x01"]) & (dsl > 0) & pdus["session"].notna()
        sess = pdus.loc[m, "session"].astype(object).to_numpy()
        t = ts[m].to_numpy()
        d = dsl[m].to_numpy()
        is_read = (op[m] == "0x25").to_numpy()
        s.points = int(m.sum())
        if s.points > s.max_points:
            s.overflow = True
            return s
        # one pseudo-connection per session: the session column is already filled in
        for sid in pd.unique(sess):
            k = sess == sid
            key = f"session:{sid}"
            s._ts[key] = array("q", t[k].tolist())
            s._read[key] = array("q", np.where(is_read[k], d[k], 0).tolist())
            s._write[key] = array("q", np.where(is_read[k], 0, d[k]).tolist())
            s.conn_session[key] = str(sid)
        if conn_session:
            s.conn_session.update(conn_session)
        return s

    def opcode_series(self) -> pd.Series:
        """PDUs per opcode name, most first, as ``pdus["opcode_name"].value_counts()`` orders them
        (the counter keeps first-appearance order; the same sort is applied)."""
        return pd.Series(dict(self.opcode_counts), dtype="int64").sort_values(ascending=False, kind="stable")

    def to_dict(self) -> dict[str, Any]:
        """Counters for people (no points)."""
        return {"opcode_counts": dict(self.opcode_counts), "first_ts_ns": self.first_ts,
                "last_ts_ns": self.last_ts, "throughput_points": self.points, "overflow": self.overflow}
