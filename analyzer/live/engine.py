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

The run loop that reads the clock and the pipe is ``analyzer.live.loop``; the report and alert
sinks are ``analyzer.live.sinks``; stop signals ``analyzer.live.signals``.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from analyzer.live.stats import NS, RollingStats, StatsView
from analyzer.pipeline import Options, Pipeline
from analyzer.records import Anomaly, Record, TcpGap
from analyzer.state.events import ConnectionSummary, SessionSummary, TaskRecord


@dataclass
class LiveOptions:
    """Tuning of the live engine (defaults documented in the README)."""

    pipeline: Options = field(default_factory=Options)
    window_s: float = 60.0  #: sliding window of the rolling statistics
    tick_s: float = 0.25  #: idle tick period (wall clock)
    tick_grace_s: float = 1.0  #: idle ticks stay this far behind the estimated capture clock
    housekeeping_s: float = 1.0  #: session snapshot / view refresh period
    report_interval_s: float = 60.0  #: how often --out is rewritten
    drop_poll_s: float = 1.0  #: how often the capture's drop counters are polled
    max_anomalies: int = 1000  #: recent anomalies kept for the view and the report
    max_tasks: int = 5000  #: recent tasks kept for the report's tasks table
    max_finished: int = 200  #: finished sessions still shown before being forgotten
    forget_after_s: float = 300.0  #: a session ended this long ago (capture clock) is flushed and forgotten
    behind_lag_s: float = 2.0  #: lag beyond which the view says the analysis is behind
    #: the analysis is behind, too, when the capture pipe is at least this full (the tool then blocks
    #: on it, and the kernel drops what no longer fits in the capture buffer)
    behind_fill: float = 0.5
    vxlan_ports: tuple[int, ...] = (4789,)  #: UDP ports decoded as VXLAN (RFC 7348 §5)
    #: after a stop request, keep reading this long before signalling the capture tool: dumpcap
    #: hands packets over in blocks (up to its 250 ms read timeout) and discards the unfinished
    #: block when it is stopped, so the last moments of traffic would be lost
    stop_grace_s: float = 0.6


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
    pipe_size: int = 0  #: capacity of the capture pipe (0: unknown)
    snaplen: int = 0  #: the analysis capture's snap length (0: whole frames)
    drops_new: int = 0  #: packets the capture dropped since the previous drop poll
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
            "gap_bytes": self.gap_bytes, "backlog": self.backlog, "pipe_size": self.pipe_size,
            "snaplen": self.snaplen, "drops_new": self.drops_new, "lag_s": round(self.lag_s, 3),
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
