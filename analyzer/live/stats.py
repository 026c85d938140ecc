"""Rolling statistics of the live view: per-second buckets over a window, log-binned latency
histograms (bounded whatever the I/O rate; see ``analyzer.live.engine`` for the theory of operation)."""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Final

from analyzer.state.events import TaskRecord

NS: Final = 1_000_000_000
#: Latency histogram resolution: bins per octave (2**(1/16) = 4.4 % wide bins).
BINS_PER_OCTAVE: Final = 16
#: Task outcomes whose latency is a real command-to-status time.
_LATENCY_OUTCOMES: Final = frozenset({"completed", "check_condition", "failed", "rejected", "aborted"})


# --------------------------------------------------------------------------- rolling statistics


def latency_bin(latency_ns: int) -> int:
    """Log-scale bin of a latency (``BINS_PER_OCTAVE`` per doubling; 0 for <= 1 ns)."""
    if latency_ns <= 1:
        return 0
    return int(math.log2(latency_ns) * BINS_PER_OCTAVE)


def bin_value(b: int) -> float:
    """Representative latency (ns) of a bin: its geometric middle."""
    return float(2 ** ((b + 0.5) / BINS_PER_OCTAVE))


class _Bucket:
    __slots__ = ("bytes_in", "bytes_out", "ios", "lat", "reads", "sec", "writes")

    def __init__(self, sec: int) -> None:
        self.sec = sec
        self.ios = 0
        self.reads = 0
        self.writes = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.lat: dict[int, int] = {}


@dataclass(frozen=True)
class StatsView:
    """Rolling statistics of one session over the window."""

    iops: float
    mb_s: float  #: (Data-In + Data-Out bytes) / s, 1 MB = 10**6 bytes
    read_mb_s: float
    write_mb_s: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    samples: int  #: latencies in the window
    total_ios: int  #: SCSI tasks since the session was first seen
    total_bytes: int
    span_s: float  #: seconds the window actually covers

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view (rounded)."""
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 3)

        return {"iops": round(self.iops, 1), "mb_s": round(self.mb_s, 3), "read_mb_s": round(self.read_mb_s, 3),
                "write_mb_s": round(self.write_mb_s, 3), "p50_ms": r(self.p50_ms), "p95_ms": r(self.p95_ms),
                "p99_ms": r(self.p99_ms), "samples": self.samples, "total_ios": self.total_ios,
                "total_bytes": self.total_bytes, "span_s": round(self.span_s, 1)}


class SessionStats:
    """Per-second buckets of one session's SCSI tasks over a sliding window (bounded memory)."""

    __slots__ = ("buckets", "first_sec", "last_ts", "total_bytes", "total_ios", "window_s")

    def __init__(self, window_s: float) -> None:
        self.window_s = max(1, int(window_s))
        self.buckets: deque[_Bucket] = deque()
        self.first_sec: int | None = None
        self.total_ios = 0
        self.total_bytes = 0
        self.last_ts = 0

    def add(self, t: TaskRecord) -> None:
        """Account for one ended SCSI task (at its end time)."""
        sec = t.end_ts_ns // NS
        if self.first_sec is None:
            self.first_sec = sec
        b = self._bucket(sec)
        if b is None:
            return
        b.ios += 1
        b.reads += t.read
        b.writes += t.write
        b.bytes_in += t.bytes_in
        b.bytes_out += t.bytes_out
        self.total_ios += 1
        self.total_bytes += t.bytes_in + t.bytes_out
        self.last_ts = max(self.last_ts, t.end_ts_ns)
        if t.outcome in _LATENCY_OUTCOMES and not t.partial and t.latency_ns >= 0:
            k = latency_bin(t.latency_ns)
            b.lat[k] = b.lat.get(k, 0) + 1

    def _bucket(self, sec: int) -> _Bucket | None:
        bs = self.buckets
        if bs and bs[-1].sec == sec:
            return bs[-1]
        if not bs or sec > bs[-1].sec:
            bs.append(_Bucket(sec))
            self.expire(sec)
            return bs[-1]
        # a task ending out of order (another connection's older completion): find its bucket
        if sec <= bs[-1].sec - self.window_s:
            return None
        for b in reversed(bs):
            if b.sec == sec:
                return b
            if b.sec < sec:
                break
        nb = _Bucket(sec)
        items = sorted([*bs, nb], key=lambda x: x.sec)
        bs.clear()
        bs.extend(items)
        return nb

    def expire(self, now_sec: int) -> None:
        """Drop buckets that left the window ending at ``now_sec``."""
        bs = self.buckets
        limit = now_sec - self.window_s
        while bs and bs[0].sec <= limit:
            bs.popleft()

    def view(self, now_ns: int) -> StatsView:
        """The statistics over the window ending at capture time ``now_ns``."""
        now_sec = now_ns // NS
        self.expire(now_sec)
        ios = reads_b = writes_b = 0
        lat: Counter[int] = Counter()
        for b in self.buckets:
            ios += b.ios
            reads_b += b.bytes_in
            writes_b += b.bytes_out
            lat.update(b.lat)
        first = self.first_sec if self.first_sec is not None else now_sec
        span = float(max(1, min(self.window_s, now_sec - first + 1)))
        samples = sum(lat.values())
        p = _percentiles(lat, samples, (0.50, 0.95, 0.99))
        return StatsView(ios / span, (reads_b + writes_b) / span / 1e6, reads_b / span / 1e6,
                         writes_b / span / 1e6, p[0], p[1], p[2], samples, self.total_ios, self.total_bytes, span)

    def size(self) -> int:
        """Number of stored cells (buckets + histogram bins): the memory bound of this object."""
        return len(self.buckets) + sum(len(b.lat) for b in self.buckets)


def _percentiles(hist: Counter[int], n: int, qs: tuple[float, ...]) -> list[float | None]:
    if n == 0:
        return [None for _ in qs]
    out: list[float | None] = []
    items = sorted(hist.items())
    for q in qs:
        rank = max(1, math.ceil(q * n))
        seen = 0
        for b, c in items:
            seen += c
            if seen >= rank:
                out.append(bin_value(b) / 1e6)
                break
    return out


class RollingStats:
    """SessionStats per session id (or connection id for tasks not tied to a session yet)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.sessions: dict[str, SessionStats] = {}

    def add(self, t: TaskRecord) -> None:
        """Account for an ended task (SCSI tasks only; logins, NOPs and the like are not I/O)."""
        if t.kind != "scsi":
            return
        key = t.session or t.conn
        s = self.sessions.get(key)
        if s is None:
            s = self.sessions[key] = SessionStats(self.window_s)
        s.add(t)

    def view(self, key: str, now_ns: int) -> StatsView | None:
        """The window statistics of one session (None if it did no I/O)."""
        s = self.sessions.get(key)
        return s.view(now_ns) if s is not None else None

    def forget(self, key: str) -> None:
        """Drop a session's statistics."""
        self.sessions.pop(key, None)

    def size(self) -> int:
        """Stored cells over all sessions."""
        return sum(s.size() for s in self.sessions.values())
