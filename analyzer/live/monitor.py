"""Live analysis: frames from a running capture through the ``Pipeline``, alerts as they happen.

Theory of operation
-------------------
``LiveCapture`` (capture layer) runs dumpcap into a pipe. One thread does everything: the
pipe is parsed by ``open_capture`` + ``iter_tcp`` and each TCP segment is fed at once to
``LiveAnalyzer``, which owns the ``Pipeline``. The pipe is read through ``_LoopStream``: while
it waits for bytes (``select`` with a ``tick_s`` timeout) it runs the idle work (ticks,
housekeeping, view, reports, signals), and between chunks it runs the same work when due. We
tried a reader thread + queue first: the two threads fight over the GIL, the reader only gets
to empty the 64 KiB pipe once per switch interval, and throughput collapsed to ~13 MB/s.
When the analysis is slower than the traffic, the pipe fills, dumpcap blocks, and the kernel
drops packets: dumpcap counts those drops and we report them (plus the TCP gaps they leave),
so an overload shows up as "analysis incomplete", never as silent loss.

Clocks. The analysis runs on the capture clock (frame timestamps, as offline). Time-based
rules (unanswered tasks, CLEANUP_WAIT not resolved in time, NOP-Out not answered) fire from
frame timestamps while traffic flows. When the link is idle nothing would move that clock, so
every ``tick_s`` of idle wall time we advance it ourselves: capture-now is estimated as the
last frame's timestamp plus the monotonic time elapsed since that frame was read (the offset
of the last frame), minus ``tick_grace_s`` so that a frame still in flight
in the kernel/dumpcap/pipe cannot arrive "in the past" of a timeout we already fired. Using the
monotonic clock makes wall-clock steps (NTP) harmless.

Memory over days. Records are never accumulated: each is routed once (anomalies to the
alert sink, ``TaskRecord`` into per-session rolling statistics, everything else counted)
and dropped. Rolling statistics are per-second buckets over ``window_s`` with log-binned
latency histograms (bounded whatever the I/O rate); the last ``max_anomalies`` anomalies and
``max_tasks`` tasks are kept for the view and the report. A session that ended more than
``forget_after_s`` ago (or beyond the ``max_finished`` newest ended ones) is flushed (one row in
``sessions_done.jsonl``) and forgotten: by the live structures and, through
``Pipeline.forget``, by the state tracker, the anomaly engine and the pipeline's endpoint map.
"Ended" is the tracker's word (``SessionTracker.sessions(live_only=True)`` no longer lists it:
FREE on both sides, TCP connections closed, no open task), so a FAILED session waiting for
its Time2Retain stays on view until it is really over, and the flushed row is its final
state. Connections that never belonged to a session (port probes) are forgotten the same way.
The snapshot each housekeeping builds is O(sessions not forgotten), not O(sessions seen).

This module reads the clock and the pipe, so it sits beside the CLI, not in the core.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import select
import signal
import struct
import sys
import termios
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, Final, Protocol

from analyzer.pipeline import Options, Pipeline
from analyzer.records import Anomaly, Record, TcpGap
from analyzer.state.events import ConnectionSummary, SessionSummary, TaskRecord

NS: Final = 1_000_000_000
#: Latency histogram resolution: bins per octave (2**(1/16) = 4.4 % wide bins).
BINS_PER_OCTAVE: Final = 16
#: Task outcomes whose latency is a real command-to-status time.
_LATENCY_OUTCOMES: Final = frozenset({"completed", "check_condition", "failed", "rejected", "aborted"})
_ANOMALY_COLUMNS: Final = ("frame", "ts", "severity", "kind", "session", "conn", "message", "rfc", "frames",
                           "display_filter")


@dataclass
class LiveOptions:
    """Tuning of the live engine (defaults documented in the README)."""

    pipeline: Options = field(default_factory=Options)
    window_s: float = 60.0  #: sliding window of the rolling statistics
    tick_s: float = 0.25  #: idle tick period (wall clock)
    tick_grace_s: float = 1.0  #: idle ticks stay this far behind the estimated capture clock
    housekeeping_s: float = 1.0  #: session snapshot / view refresh period
    report_interval_s: float = 60.0  #: how often --out is rewritten
    drop_poll_s: float = 5.0  #: how often the capture's drop counters are polled
    max_anomalies: int = 1000  #: recent anomalies kept for the view and the report
    max_tasks: int = 5000  #: recent tasks kept for the report's tasks table
    max_finished: int = 200  #: finished sessions still shown before being forgotten
    forget_after_s: float = 300.0  #: a session ended this long ago (capture clock) is flushed and forgotten
    behind_lag_s: float = 5.0  #: lag beyond which the view says the analysis is behind
    #: after a stop request, keep reading this long before signalling the capture tool: dumpcap
    #: hands packets over in blocks (up to its 250 ms read timeout) and discards the unfinished
    #: block when it is stopped, so the last moments of traffic would be lost
    stop_grace_s: float = 0.6


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
        r = lambda v: None if v is None else round(v, 3)
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


# --------------------------------------------------------------------------- the engine


@dataclass(frozen=True)
class ConnView:
    """One connection in the live view."""

    conn: str
    state_initiator: str
    state_target: str
    ended: str


@dataclass(frozen=True)
class SessionView:
    """One session in the live view: identity, states and rolling statistics."""

    session: str
    session_type: str
    initiator: str | None
    target: str | None
    ended: str
    state_initiator: str
    state_target: str
    connections: tuple[ConnView, ...]
    stats: StatsView | None
    tasks: int
    end_ts_ns: int


@dataclass
class LiveStatus:
    """Everything the view shows, at one moment."""

    interface: str = ""
    bpf: str = ""
    tool: str = ""
    uptime_s: float = 0.0
    frames: int = 0
    segments: int = 0
    records: int = 0
    pdus: int = 0
    capture_ts_ns: int = 0  #: estimated capture clock now
    sessions: list[SessionView] = field(default_factory=list)
    sessions_total: int = 0
    sessions_open: int = 0
    sessions_forgotten: int = 0
    anomalies: list[Anomaly] = field(default_factory=list)  #: most recent first
    anomaly_counts: dict[str, int] = field(default_factory=dict)  #: by severity
    drops: dict[str, Any] = field(default_factory=dict)
    tcp_gaps: int = 0
    gap_bytes: int = 0
    backlog: int = 0  #: bytes waiting in the capture pipe, not yet analysed
    lag_s: float = 0.0  #: wall clock minus the last analysed frame's timestamp
    behind: bool = False
    incomplete: list[str] = field(default_factory=list)  #: reasons the analysis is incomplete
    capture_running: bool = True
    stopping: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready status (live.json)."""
        return {
            "interface": self.interface, "filter": self.bpf, "tool": self.tool, "uptime_s": round(self.uptime_s, 1),
            "frames": self.frames, "segments": self.segments, "records": self.records, "pdus": self.pdus,
            "capture_ts_ns": self.capture_ts_ns, "sessions_total": self.sessions_total,
            "sessions_open": self.sessions_open, "sessions_forgotten": self.sessions_forgotten,
            "anomaly_counts": self.anomaly_counts, "drops": self.drops, "tcp_gaps": self.tcp_gaps,
            "gap_bytes": self.gap_bytes, "backlog": self.backlog, "lag_s": round(self.lag_s, 3),
            "behind": self.behind, "incomplete": self.incomplete,
            "sessions": [{"session": s.session, "type": s.session_type, "initiator": s.initiator,
                          "target": s.target, "ended": s.ended, "state_initiator": s.state_initiator,
                          "state_target": s.state_target, "tasks": s.tasks,
                          "connections": [c.__dict__ for c in s.connections],
                          "stats": s.stats.as_dict() if s.stats else None} for s in self.sessions],
        }


def pipeline_tick(p: Pipeline, ts_ns: int) -> list[Record]:
    """Advance the pipeline's clock to ``ts_ns`` without a frame: tracker timeouts, then detectors."""
    return p.tick(ts_ns)


class LiveAnalyzer:
    """The live engine without I/O: feed segments with their arrival time, tick when idle.

    ``feed``, ``tick`` and ``finish`` return the anomalies that appeared (to be alerted at once).
    Time arguments ``mono_ns`` are monotonic wall-clock nanoseconds (``time.monotonic_ns``).
    """

    def __init__(self, options: LiveOptions | None = None) -> None:
        self.options = opts = options or LiveOptions()
        self.pipeline = Pipeline(opts.pipeline)
        self.stats = RollingStats(opts.window_s)
        self.recent: deque[Anomaly] = deque(maxlen=max(1, opts.max_anomalies))
        self.recent_tasks: deque[TaskRecord] = deque(maxlen=max(1, opts.max_tasks))
        self.anomaly_counts: Counter[str] = Counter()
        self.anomaly_kinds: Counter[str] = Counter()
        self.anomalies_seen = 0
        self.record_counts: Counter[str] = Counter()
        self.records = 0
        self.segments = 0
        self.last_frame = 0
        self.last_ts = 0  #: newest frame timestamp fed
        self.last_mono = 0  #: monotonic time that frame was fed
        self.first_ts = 0
        self.ticked_ts = 0  #: capture time the pipeline was last ticked to
        self.tcp_gaps = 0
        self.gap_bytes = 0
        self.sessions_forgotten = 0  #: sessions flushed and forgotten so far
        self.finished = False
        self.final_sessions: list[SessionSummary] = []
        self.final_connections: list[ConnectionSummary] = []
        #: called with (session summary row, stats) when a finished session is forgotten
        self.on_session_done: Callable[[SessionSummary, StatsView | None], None] | None = None
        self._sessions: list[SessionSummary] = []
        self._connections: list[ConnectionSummary] = []

    # ------------------------------------------------------------------ feeding

    def feed(self, seg: tuple[Any, ...], mono_ns: int) -> list[Anomaly]:
        """One TCP segment as ``iter_tcp`` yields it, read at ``mono_ns``."""
        self.segments += 1
        frame, ts = seg[0], seg[1]
        self.last_frame = frame
        self.last_ts = max(ts, self.last_ts)
        if not self.first_ts:
            self.first_ts = ts
        self.last_mono = mono_ns
        recs = self.pipeline.feed_segment(*seg)
        return self._route(recs) if recs else []

    def capture_now(self, mono_ns: int) -> int:
        """Estimated capture clock at ``mono_ns`` (0 before the first frame)."""
        if not self.last_mono:
            return 0
        return self.last_ts + max(0, mono_ns - self.last_mono)

    def tick(self, mono_ns: int, idle: bool = True) -> list[Anomaly]:
        """Advance time-based rules. Idle: to the estimated capture clock minus the grace; busy:
        to the last frame (lets the detectors run their deferred end-of-frame checks)."""
        if not self.last_mono or self.finished:
            return []
        if idle:
            target = self.capture_now(mono_ns) - int(self.options.tick_grace_s * NS)
        else:
            target = self.last_ts
        target = max(target, self.last_ts)
        if target <= self.ticked_ts:
            return []
        self.ticked_ts = target
        recs = pipeline_tick(self.pipeline, target)
        return self._route(recs) if recs else []

    def finish(self) -> list[Anomaly]:
        """End of the capture: flush the pipeline (summaries, open tasks, final findings)."""
        if self.finished:
            return []
        self.finished = True
        recs = self.pipeline.finish()
        return self._route(recs) if recs else []

    # ------------------------------------------------------------------ routing (hot path)

    def _route(self, recs: list[Record]) -> list[Anomaly]:
        alerts: list[Anomaly] = []
        counts = self.record_counts
        self.records += len(recs)
        for r in recs:
            t = type(r)
            counts[t.__name__] += 1
            if t is TaskRecord:
                self.stats.add(r)  # type: ignore[arg-type]
                self.recent_tasks.append(r)  # type: ignore[arg-type]
            elif isinstance(r, Anomaly):
                self.recent.append(r)
                self.anomaly_counts[r.severity] += 1
                self.anomaly_kinds[r.kind] += 1
                self.anomalies_seen += 1
                alerts.append(r)
            elif t is TcpGap and not r.snaplen:  # type: ignore[attr-defined]
                self.tcp_gaps += 1
                self.gap_bytes += r.length  # type: ignore[attr-defined]
            elif t is SessionSummary and self.finished:
                self.final_sessions.append(r)  # type: ignore[arg-type]
            elif t is ConnectionSummary and self.finished:
                self.final_connections.append(r)  # type: ignore[arg-type]
        return alerts

    # ------------------------------------------------------------------ housekeeping

    def housekeeping(self, mono_ns: int) -> list[Anomaly]:
        """Refresh the session snapshot, expire statistics, flush and forget old finished sessions.

        Returns the anomalies forgetting decided (findings the rate limits held back for a
        forgotten session, summarised now rather than at the end), to be alerted.
        """
        tracker = self.pipeline.tracker
        now = self.capture_now(mono_ns) if not self.finished else self.last_ts
        if tracker is None:
            return []
        decided: list[Record] = []
        # Every session not forgotten yet: the open ones plus the ended ones we still show
        # (bounded by forget_after_s and max_finished), so this is not O(sessions ever seen).
        sessions: list[SessionSummary] = tracker.sessions()
        open_ids = {s.session for s in tracker.sessions(live_only=True)}
        forget_ns = int(self.options.forget_after_s * NS)
        # After finish the final summaries (all in the final report) are what we show: forget nothing.
        finished = [] if self.finished else sorted((s for s in sessions if s.session not in open_ids),
                                                   key=lambda s: s.end_ts_ns)
        overflow = max(0, len(finished) - self.options.max_finished)
        gone: set[str] = set()
        for i, s in enumerate(finished):
            if i < overflow or (now and now - s.end_ts_ns >= forget_ns):
                decided.extend(self._forget(s, now))
                gone.add(s.session)
        if gone:
            sessions = [s for s in sessions if s.session not in gone]
        keep = {s.session for s in sessions}
        self._sessions = sessions
        self._connections = self._tracker_connections(keep, now, forget_ns, decided)
        for key in list(self.stats.sessions):
            st = self.stats.sessions[key]
            if key not in keep and "->" in key and now and now - st.last_ts >= forget_ns:
                self.stats.forget(key)  # tasks of a connection never tied to a session
            elif now:
                st.expire(now // NS)
        return self._route(decided) if decided else []

    def _tracker_connections(self, keep: set[str], now: int, forget_ns: int,
                             decided: list[Record]) -> list[ConnectionSummary]:
        """Snapshots of the connections of ``keep`` sessions and of open connections without one;
        connections without a session that ended ``forget_ns`` ago are forgotten."""
        pipeline = self.pipeline
        out = []
        for c in pipeline.tracker.connections():
            if c.session is not None:
                if c.session in keep:
                    out.append(c)
            elif c.ended == "open":
                out.append(c)
            elif now and not self.finished and now - c.end_ts_ns >= forget_ns:
                decided.extend(pipeline.forget_connection(c.conn))
        return out

    def _forget(self, s: SessionSummary, now: int) -> list[Record]:
        if self.on_session_done is not None:
            self.on_session_done(s, self.stats.view(s.session, now or s.end_ts_ns))
        self.stats.forget(s.session)
        self.sessions_forgotten += 1
        return self.pipeline.forget(s.session)

    # ------------------------------------------------------------------ views

    def session_views(self, mono_ns: int) -> list[SessionView]:
        """Current sessions (from the last housekeeping snapshot, or the final summaries)."""
        now = self.capture_now(mono_ns) if not self.finished else self.last_ts
        sessions = self.final_sessions if self.finished else self._sessions
        conns = self.final_connections if self.finished else self._connections
        by_sess: dict[str | None, list[ConnView]] = {}
        for c in conns:
            by_sess.setdefault(c.session, []).append(ConnView(c.conn, c.state_initiator, c.state_target, c.ended))
        out = []
        for s in sessions:
            out.append(SessionView(s.session, s.session_type, s.initiator_name, s.target_name, s.ended,
                                   s.state_initiator, s.state_target, tuple(by_sess.get(s.session, ())),
                                   self.stats.view(s.session, now) if now else None, s.tasks, s.end_ts_ns))
        for cid, cv in by_sess.items():  # connections not (yet) tied to a session
            if cid is None:
                for c in cv:
                    if c.ended == "open":
                        out.append(SessionView("-", "?", None, None, "open", "?", "?", (c,), None, 0, now))
        return out

    def status(self, mono_ns: int) -> LiveStatus:
        """A LiveStatus without the capture-side fields (the runner adds those)."""
        views = self.session_views(mono_ns)
        return LiveStatus(
            frames=self.last_frame, segments=self.segments, records=self.records,
            pdus=sum(v for k, v in self.record_counts.items() if k not in _NON_PDU),
            capture_ts_ns=self.capture_now(mono_ns), sessions=views,
            sessions_total=len(views) + self.sessions_forgotten,
            sessions_open=sum(1 for v in views if v.ended == "open"),
            sessions_forgotten=self.sessions_forgotten,
            anomalies=list(reversed(self.recent))[:50], anomaly_counts=dict(self.anomaly_counts),
            tcp_gaps=self.tcp_gaps, gap_bytes=self.gap_bytes)

    def memory_cells(self) -> dict[str, int]:
        """Sizes of the engine's own bounded structures (for tests and the long-run measurement)."""
        return {"stats_sessions": len(self.stats.sessions), "stats_cells": self.stats.size(),
                "recent_anomalies": len(self.recent), "recent_tasks": len(self.recent_tasks),
                "snapshot_sessions": len(self._sessions), "snapshot_connections": len(self._connections),
                "forgotten": self.sessions_forgotten}


_NON_PDU: Final = frozenset({
    "TcpOpened", "TcpFin", "TcpRst", "TcpClosed", "TcpGap", "TcpRetransmission", "TcpOverlapConflict",
    "TcpZeroWindow", "Transition", "Violation", "ConnectionParams", "TaskRecord", "SequenceEvent",
    "NegotiationIssue", "Reinstatement", "CleanupDeadline", "CleanupEnded", "SessionSummary",
    "ConnectionSummary", "TrackerError", "Anomaly", "FramingResync", "MalformedPdu", "CaptureDamage",
})


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


# --------------------------------------------------------------------------- the run loop


class View(Protocol):
    """What the run loop needs from the terminal view (``analyzer.live.view``)."""

    def update(self, status: LiveStatus) -> None: ...
    def alert(self, a: Anomaly) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self, status: LiveStatus) -> None: ...


class CaptureSource(Protocol):
    """What the run loop needs from ``LiveCapture`` (a fake in the unit tests)."""

    interface: str
    bpf: str
    tool: str

    @property
    def stream(self) -> Any: ...
    def running(self) -> bool: ...
    def stop(self) -> Any: ...
    def poll_stats(self) -> Any: ...
    def exit_message(self) -> str | None: ...


@dataclass
class LiveResult:
    """How the run ended."""

    reason: str  #: "signal", "duration", "capture_ended", "capture_failed"
    error: str | None  #: one line when the capture failed by itself
    status: LiveStatus
    alerts: int
    abandoned_backlog: int = 0  #: bytes left unread in the pipe after a second signal


class StopSignals:
    """SIGINT/SIGTERM turned into a counter: the first asks for a clean stop, the second for an
    immediate one. Install it before starting the capture so no signal falls between the two."""

    def __init__(self) -> None:
        self.count = 0
        self.event = threading.Event()
        self._old: dict[int, Any] = {}

    def _on(self, signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        self.event.set()

    def install(self) -> StopSignals:
        """Take over SIGINT and SIGTERM (main thread only; elsewhere a no-op)."""
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._on)
        return self

    def restore(self) -> None:
        """Give the previous handlers back."""
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old.clear()


class _Abandon(Exception):
    """Second signal: stop reading at once."""


class _LoopStream:
    """The capture pipe as the reader sees it; while it waits for bytes, the run loop's idle work runs.

    ``open_capture``/``iter_tcp`` pull chunks with ``read``; we wait for the pipe with ``select``
    (``tick_s`` timeout) and call ``idle()`` on every timeout and ``busy()`` before every chunk, so
    ticks, statistics, the view and the reports run from inside the read. One thread, no queue:
    the pipe (enlarged to 1 MiB by LiveCapture) and the kernel's capture buffer are the backlog.
    """

    def __init__(self, src: Any, timeout: float, idle: Callable[[], None], busy: Callable[[], None]) -> None:
        self.src = src
        self.name = str(getattr(src, "name", "<live>"))
        self.timeout = timeout
        self.idle = idle
        self.busy = busy
        self.abandoned = False
        try:
            self.fd: int | None = src.fileno()
        except (AttributeError, OSError, ValueError):
            self.fd = None

    def read(self, n: int = -1) -> bytes:
        if self.abandoned:
            return b""
        try:
            if self.fd is not None and not getattr(self.src, "buffered", 0):
                while not select.select([self.fd], [], [], self.timeout)[0]:
                    self.idle()
            self.busy()
            return self.src.read(n if n > 0 else 1 << 20) or b""
        except _Abandon:
            self.abandoned = True
            return b""
        except (OSError, ValueError):  # pipe closed under us
            return b""

    def pending(self) -> int:
        """Bytes waiting in the pipe (FIONREAD), 0 if unknown."""
        if self.fd is None:
            return 0
        try:
            buf = fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0")
            return int(struct.unpack("i", buf)[0])
        except OSError:
            return 0


def run_live(capture: CaptureSource, engine: LiveAnalyzer, view: View, *, alerts: AlertSink | None = None,
             report: LiveReport | None = None, duration: float | None = None,
             install_signals: bool = True, stop_event: threading.Event | None = None,
             signals: StopSignals | None = None, stop_timeout: float = 10.0) -> LiveResult:
    """Analyse ``capture`` (already started) until a signal, ``duration`` or the capture's end.

    SIGINT/SIGTERM (first; or ``stop_event``): stop the capture, analyse what it delivered, write
    the final report. A second signal abandons what is still unread and finishes at once. Pass
    ``signals`` when the caller installed them already (before starting the capture); otherwise
    they are installed here when ``install_signals``, and restored at the end.
    """
    from analyzer.capture import CaptureError, iter_tcp, open_capture

    opts = engine.options
    own_signals = signals is None
    sig = signals or StopSignals()
    if own_signals and install_signals:
        sig.install()
    if engine.on_session_done is None and report is not None:
        engine.on_session_done = report.session_done

    mono = time.monotonic_ns
    start = mono()
    stop_at = 0  # monotonic time the stop was requested
    term_at = 0  # monotonic time the capture tool gets SIGTERM (stop_at + grace)
    termed = False
    reason = "capture_ended"
    error: str | None = None
    n_alerts = 0
    drops: dict[str, Any] = {}
    tick_ns = int(opts.tick_s * NS)
    due = {"tick": start + tick_ns, "house": start, "drop": start,
           "report": start + int(opts.report_interval_s * NS)}
    stream: _LoopStream

    def emit(found: Iterable[Anomaly]) -> None:
        nonlocal n_alerts
        for a in found:
            n_alerts += 1
            if alerts is not None:
                alerts.write(a)
            if report is not None:
                report.anomaly(a)
            view.alert(a)

    def status(now: int) -> LiveStatus:
        st = engine.status(now)
        st.interface, st.bpf, st.tool = capture.interface, capture.bpf, capture.tool
        st.uptime_s = (now - start) / NS
        st.drops = drops
        st.backlog = stream.pending()
        st.lag_s = max(0.0, (time.time_ns() - engine.last_ts) / NS) if engine.last_ts and st.backlog else 0.0
        st.behind = st.lag_s > opts.behind_lag_s
        st.capture_running = capture.running()
        st.stopping = bool(stop_at)
        st.incomplete = _incomplete(st, error)
        return st

    def begin_stop(why: str) -> None:
        nonlocal stop_at, term_at, reason
        if stop_at:
            return
        stop_at = mono()
        term_at = stop_at + int(opts.stop_grace_s * NS)
        reason = why
        view.message(f"stopping ({why}): ending the capture, analysing what it delivered")

    def terminate() -> None:
        nonlocal termed
        termed = True
        request = getattr(capture, "request_stop", None)
        if callable(request):
            request()  # no wait: we keep draining the pipe while the tool flushes and exits
        else:
            capture.stop()

    def periodic(idle: bool) -> None:
        nonlocal drops
        now = mono()
        if (sig.count or (stop_event is not None and stop_event.is_set())) and not stop_at:
            begin_stop("signal")
        if sig.count >= 2:
            raise _Abandon
        if duration is not None and not stop_at and now - start >= duration * NS:
            begin_stop("duration")
        if stop_at and not termed and now >= term_at:
            terminate()
        if stop_at and now - stop_at > stop_timeout * NS:
            capture.stop()  # the tool ignored SIGTERM: stop() escalates to SIGKILL; EOF follows
        if idle:
            emit(engine.tick(now, idle=True))
        elif now >= due["tick"]:
            due["tick"] = now + tick_ns
            emit(engine.tick(now, idle=False))
        if now >= due["drop"] and not stop_at:
            due["drop"] = now + int(opts.drop_poll_s * NS)
            try:
                drops = _drops_dict(capture.poll_stats())
            except Exception:  # noqa: BLE001, S110 - statistics are best effort
                pass
        if now >= due["house"]:
            due["house"] = now + int(opts.housekeeping_s * NS)
            emit(engine.housekeeping(now))
            view.update(status(now))
        if report is not None and now >= due["report"]:
            due["report"] = now + int(opts.report_interval_s * NS)
            report.write(engine, status(now))

    stream = _LoopStream(capture.stream, opts.tick_s, lambda: periodic(True), lambda: periodic(False))
    reader: Any = None
    try:
        try:
            reader = open_capture(stream)
            feed = engine.feed
            for seg in iter_tcp(reader):
                emit(feed(seg, mono()))
        except CaptureError as exc:
            if not stop_at and not stream.abandoned:
                error = str(exc)
        if not stop_at and not stream.abandoned:
            error = error or capture.exit_message()
            reason = "capture_failed" if error else "capture_ended"
        if reader is not None and not stop_at:
            for d in getattr(reader, "damage", ()):
                error = error or d.message
    finally:
        if own_signals:
            sig.restore()
        final = capture.stop()
        if final is not None:
            drops = _drops_dict(final)
        if reader is not None:
            reader.close()
    abandoned = stream.pending() if stream.abandoned else 0
    emit(engine.finish())
    end = mono()
    emit(engine.housekeeping(end))
    st = status(end)
    st.capture_running = False
    st.backlog = abandoned
    if stream.abandoned:
        st.incomplete.append(f"stopped without analysing the rest of the capture ({abandoned} bytes were "
                             f"still in the pipe; second interrupt)")
    if report is not None:
        report.write(engine, st, final=True)
    view.close(st)
    return LiveResult(reason, error, st, n_alerts, abandoned)


def _drops_dict(d: Any) -> dict[str, Any]:
    if d is None:
        return {}
    as_dict = getattr(d, "as_dict", None)
    return dict(as_dict()) if callable(as_dict) else dict(d)


def _incomplete(st: LiveStatus, error: str | None) -> list[str]:
    out = []
    dropped = st.drops.get("dropped")
    if dropped:
        out.append(f"the capture dropped {dropped} packets (kernel buffer full)")
    if st.drops.get("if_dropped"):
        out.append(f"the interface dropped {st.drops['if_dropped']} packets")
    if st.drops.get("ring_dropped"):
        out.append(f"the ring-buffer capture dropped {st.drops['ring_dropped']} packets")
    if st.tcp_gaps:
        out.append(f"{st.tcp_gaps} TCP gaps ({st.gap_bytes} bytes never captured)")
    if st.behind:
        out.append(f"analysis is behind: {st.backlog} bytes waiting in the pipe, {st.lag_s:.1f} s lag")
    if error:
        out.append(error)
    return out


__all__ = [
    "AlertSink", "LiveAnalyzer", "LiveOptions", "LiveReport", "LiveResult", "LiveStatus", "RollingStats",
    "SessionStats", "SessionView", "StatsView", "anomaly_to_row", "pipeline_tick", "run_live",
]
