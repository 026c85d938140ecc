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


# --------------------------------------------------------------------------- latency

#: A latency group keeps its exact values up to this many; past it, a log-bucketed histogram.
EXACT_LATENCIES: Final = 65536
#: Relative error bound of a percentile read from the histogram (DDSketch-style buckets).
LATENCY_RELATIVE_ERROR: Final = 0.01
_GAMMA: Final = (1 + LATENCY_RELATIVE_ERROR) / (1 - LATENCY_RELATIVE_ERROR)
_LOG_GAMMA: Final = float(np.log(_GAMMA))


class LatencyDigest:
    """Latencies (integer ns) of one group, mergeable, with a documented error bound.

    Count, min and max are always exact. Percentiles are exact (``np.percentile`` over the
    values, what the report computed from the whole tasks table) while the group holds at most
    ``EXACT_LATENCIES`` values; past that the values are folded into a histogram of
    logarithmic buckets ``(gamma^(i-1), gamma^i]`` with ``gamma = (1 + a) / (1 - a)``,
    ``a = LATENCY_RELATIVE_ERROR`` (1 %), and a percentile is read as the bucket's
    ``2 gamma^i / (gamma + 1)``, within 1 % of a value of that rank (DDSketch, Masson et al.,
    VLDB 2019). Memory is then bounded by the number of buckets (about 1,150 from 1 ns to an
    hour), whatever the capture length.
    """

    __slots__ = ("count", "exact", "hist", "max", "min", "zeros")

    def __init__(self) -> None:
        self.count = 0
        self.min: int | None = None
        self.max: int | None = None
        self.exact: array[int] | None = array("q")
        self.hist: Counter[int] = Counter()
        self.zeros = 0

    def add(self, ns: int) -> None:
        """One latency."""
        self.count += 1
        if self.min is None or ns < self.min:
            self.min = ns
        if self.max is None or ns > self.max:
            self.max = ns
        if self.exact is not None:
            self.exact.append(ns)
            if len(self.exact) > EXACT_LATENCIES:
                self._fold()
        else:
            self._bucket(ns)

    def _bucket(self, ns: int) -> None:
        if ns <= 0:
            self.zeros += 1
        else:
            self.hist[int(np.ceil(np.log(ns) / _LOG_GAMMA))] += 1

    def _fold(self) -> None:
        values, self.exact = self.exact, None
        assert values is not None
        v = np.frombuffer(values, dtype=np.int64)
        pos = v[v > 0]
        self.zeros += int((v <= 0).sum())
        idx = np.ceil(np.log(pos.astype(float)) / _LOG_GAMMA).astype(np.int64)
        for i, n in zip(*np.unique(idx, return_counts=True), strict=True):
            self.hist[int(i)] += int(n)

    def merge(self, other: LatencyDigest) -> None:
        """Add the latencies of ``other`` (another file of a chain, another worker)."""
        if other.count == 0:
            return
        self.count += other.count
        if other.min is not None and (self.min is None or other.min < self.min):
            self.min = other.min
        if other.max is not None and (self.max is None or other.max > self.max):
            self.max = other.max
        if self.exact is not None and other.exact is not None:
            self.exact.extend(other.exact)
            if len(self.exact) > EXACT_LATENCIES:
                self._fold()
            return
        if self.exact is not None:
            self._fold()
        if other.exact is not None:
            for ns in other.exact:
                self._bucket(ns)
        else:
            self.hist.update(other.hist)
            self.zeros += other.zeros

    @property
    def is_exact(self) -> bool:
        """Whether percentiles are exact (the values are all kept)."""
        return self.exact is not None

    def seconds(self) -> np.ndarray:
        """The exact values in seconds, as ``Series.dt.total_seconds()`` gives them (exact mode only)."""
        assert self.exact is not None
        out: np.ndarray = np.asarray(
            pd.to_timedelta(np.frombuffer(self.exact, dtype=np.int64), unit="ns").total_seconds(), dtype=float)
        return out

    def percentiles_s(self, qs: list[float]) -> list[float]:
        """Percentiles (0-100) in seconds: exact, or within ``LATENCY_RELATIVE_ERROR``."""
        if self.exact is not None:
            return [float(x) for x in np.percentile(self.seconds(), qs)]
        keys = sorted(self.hist)
        counts = np.cumsum([self.hist[k] for k in keys])
        out = []
        for q in qs:
            rank = q / 100 * (self.count - 1)
            if rank < self.zeros:
                out.append(0.0)
                continue
            i = int(np.searchsorted(counts, rank - self.zeros, side="right"))
            i = min(i, len(keys) - 1)
            v = 2 * _GAMMA ** keys[i] / (_GAMMA + 1) / 1e9
            lo, hi = (self.min or 0) / 1e9, (self.max or 0) / 1e9
            out.append(min(max(v, lo), hi))
        return out

    def max_s(self) -> float:
        """The largest latency in seconds (exact)."""
        if self.exact is not None:
            return float(self.seconds().max())
        return float(pd.to_timedelta(self.max or 0, unit="ns").total_seconds())


class LatencyStats:
    """Latency digests of completed SCSI commands per (operation, LUN), computed during the pass.

    A task counts when the report would take it from the tasks table: kind ``scsi``, outcome
    completed / check_condition / failed, not partial (``summary`` and the HTML latency section).
    """

    DONE: Final = frozenset(("completed", "check_condition", "failed"))

    def __init__(self) -> None:
        self.groups: dict[tuple[str, int | None], LatencyDigest] = {}

    def add_task(self, kind: str, outcome: str, partial: bool, op: str | None, lun: int | None,
                 latency_ns: int) -> None:
        """One row of the tasks table."""
        if kind != "scsi" or outcome not in self.DONE or partial:
            return
        key = (op if op is not None else "?", lun)
        d = self.groups.get(key)
        if d is None:
            d = self.groups[key] = LatencyDigest()
        d.add(latency_ns)

    def merge(self, other: LatencyStats) -> None:
        """Add ``other``'s groups."""
        for key, d in other.groups.items():
            mine = self.groups.get(key)
            if mine is None:
                mine = self.groups[key] = LatencyDigest()
            mine.merge(d)

    def by_operation(self) -> dict[str, LatencyDigest]:
        """The digests merged over LUNs, per operation name."""
        out: dict[str, LatencyDigest] = {}
        for (op, _lun), d in self.groups.items():
            m = out.get(op)
            if m is None:
                m = out[op] = LatencyDigest()
            m.merge(d)
        return out

    @classmethod
    def from_frame(cls, tasks: pd.DataFrame) -> LatencyStats:
        """The same stats from a tasks table (columns kind, outcome, partial, cdb_name, lun, latency)."""
        s = cls()
        if not len(tasks):
            return s
        m = (tasks["kind"] == "scsi") & tasks["outcome"].isin(list(cls.DONE)) & ~tasks["partial"]
        d = tasks[m]
        ops = d["cdb_name"].astype(object).fillna("?").to_numpy()
        luns = d["lun"].astype(object).to_numpy()
        lat = d["latency"].astype("int64").to_numpy()
        for op, lun, ns in zip(ops, luns, lat, strict=True):
            s.add_task("scsi", "completed", False, str(op), None if lun is pd.NA or lun is None else int(lun), int(ns))
        return s
