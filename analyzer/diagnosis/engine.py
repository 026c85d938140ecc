"""The diagnosis engine: why connections dropped, how long I/O stopped, paths, queues, NOPs, logins.

Theory of operation. ``Diagnoser.feed(record)`` takes the pipeline's record stream (PDUs, TCP
events, the state tracker's transitions, tasks and summaries, the anomaly engine's deviations) in
capture order and keeps small per-connection and per-session facts: counters, the last PDU in
each direction, the close events, pending NOP pings, the outstanding commands and the CmdSN
window. ``finish()`` classifies every connection that ended without a clean logout (the rules
of ``causes.RULES``, first match wins) and returns a :class:`Diagnosis` with every table.

What it keeps grows with connections, sessions, drops and failed logins, not with PDUs or
tasks: queue depth is a time-weighted histogram, completed commands are only remembered as
the last one per initiator-target pair and the first one after each pending drop.

Sans-I/O: no clock, no files; times come from the records (``ts_ns``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from analyzer.diagnosis.messages import initiator_log
from analyzer.diagnosis.rows import (
    ConnectionStats,
    DropCause,
    LoginDiagnosis,
    NopPing,
    PathInterval,
    PathSummary,
    QueueStats,
    Recovery,
)
from analyzer.iscsi.opcodes import login_status_name
from analyzer.records import (
    I2T,
    RESERVED_TAG,
    AsyncMessage,
    DataIn,
    LoginRequest,
    LoginResponse,
    LogoutRequest,
    LogoutResponse,
    NopIn,
    NopOut,
    Pdu,
    Record,
    Reject,
    ScsiCommand,
    ScsiResponse,
    TcpClosed,
    TcpFin,
    TcpGap,
    TcpOpened,
    TcpRetransmission,
    TcpRst,
    TcpZeroWindow,
)

#: A target close this long after the initiator's last PDU reads as "the initiator went silent".
INITIATOR_SILENCE_NS = 5_000_000_000
#: Retransmission / zero-window evidence counts when it falls this close before the end.
TRANSPORT_WINDOW_NS = 10_000_000_000
#: Retransmissions (or zero-window episodes) in that window that make a network failure.
TRANSPORT_EVENTS = 3
#: Both directions silent this long before the capture ended, no FIN/RST: the path went dark.
DARK_PATH_NS = 3_000_000_000
#: Target-side ends of several connections of one portal within this long: one event (restart).
RESTART_WINDOW_NS = 2_000_000_000
#: A protocol error (out-of-window CmdSN, digest error, Reject, malformed PDU) this close before a close.
PROTOCOL_ERROR_NS = 1_000_000_000

#: A lost command seen again this long after the drop still counts as retried.
RETRY_WINDOW_NS = 120_000_000_000
#: Causes where the path stopped delivering before the connection ended: down from the last PDU on.
DARK_CAUSES = frozenset(("network_failure", "nop_timeout"))

SERIAL = 1 << 32
#: Outcomes of a SCSI task that got its answer.
COMPLETED = frozenset(("completed", "check_condition", "failed"))
#: Outcomes of a SCSI task lost with its connection.
LOST = frozenset(("open_at_conn_drop", "not_accepted", "open_at_capture_end", "lost_in_capture_gap"))
#: Keys whose values are secrets or nonces: compared by presence only.
HIDDEN_KEYS = frozenset(("CHAP_C", "CHAP_R", "CHAP_I"))


def _sdiff(a: int, b: int) -> int:
    """Serial-number difference a - b (RFC 1982 on 32 bits, as RFC 7143 §4.2.2.1 uses it)."""
    d = (a - b) % SERIAL
    return d - SERIAL if d >= SERIAL // 2 else d


def _pdu_bytes(p: Pdu) -> int:
    """Wire size of a PDU: BHS + AHS + digests + data segment with padding (§11.2)."""
    size = 48 + p.total_ahs_length * 4 + ((p.dsl + 3) & ~3)
    if p.header_digest is not None:
        size += 4
    if p.data_digest is not None and p.dsl:
        size += 4
    return size


@dataclass
class _Login:
    """One connection's login phase: the keys each side sent and how it ended (§6, §11.12, §11.13)."""

    first_frame: int
    first_ts: int
    initiator_keys: dict[str, str] = field(default_factory=dict)
    target_keys: dict[str, str] = field(default_factory=dict)
    #: stage (CSG: 0 security, 1 operational) -> side -> keys sent in that stage
    by_stage: dict[int, dict[str, dict[str, str]]] = field(default_factory=dict)
    stage: int = 0

    def add(self, stage: int, side: str, keys: tuple[tuple[str, str], ...]) -> None:
        self.stage = stage
        (self.initiator_keys if side == "initiator" else self.target_keys).update(keys)
        self.by_stage.setdefault(stage, {}).setdefault(side, {}).update(keys)
    status: tuple[int, int] | None = None
    status_frame: int | None = None
    succeeded: bool = False


@dataclass
class _Conn:
    conn: str
    client: str
    client_port: int
    server: str
    server_port: int
    handshake: bool
    open_frame: int
    open_ts: int
    session: str | None = None
    login: _Login | None = None
    ffp_frame: int | None = None
    ffp_ts: int | None = None
    left_ffp: tuple[int, int, str, bool] | None = None  #: frame, ts, event, inferred
    logout_req: tuple[int, int, int] | None = None  #: frame, ts, reason
    logout_ok: bool = False
    logout_failed: tuple[int, int] | None = None  #: frame, response
    fin: dict[str, tuple[int, int]] = field(default_factory=dict)
    rst: dict[str, tuple[int, int]] = field(default_factory=dict)
    closed: tuple[int, int, str] | None = None
    bytes: dict[str, int] = field(default_factory=lambda: {I2T: 0, "t2i": 0})
    pdus: dict[str, int] = field(default_factory=lambda: {I2T: 0, "t2i": 0})
    retrans_bytes: dict[str, int] = field(default_factory=lambda: {I2T: 0, "t2i": 0})
    retrans: int = 0
    missing: dict[str, int] = field(default_factory=lambda: {I2T: 0, "t2i": 0})
    snaplen: int = 0
    zero_windows: dict[str, int] = field(default_factory=lambda: {I2T: 0, "t2i": 0})
    transport_events: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=32))  #: (ts, frame)
    last_pdu: dict[str, tuple[int, int]] = field(default_factory=dict)  #: direction -> (frame, ts)
    async_events: list[tuple[int, int, int]] = field(default_factory=list)  #: frame, ts, event
    dropped_on_request: tuple[int, int] | None = None  #: deviation frame, request frame
    protocol_errors: list[tuple[int, int, str]] = field(default_factory=list)  #: frame, ts, what
    reinstated_by: tuple[str, int, int] | None = None  #: reinstating connection, its login's ts and frame
    initiator_pings: dict[int, tuple[int, int]] = field(default_factory=dict)  #: itt -> frame, ts
    target_pings: dict[int, tuple[int, int]] = field(default_factory=dict)  #: ttt -> frame, ts
    open_itts: set[int] = field(default_factory=set)
    lost: list[tuple[Any, ...]] = field(default_factory=list)  #: signatures of lost SCSI commands
    summary_ended: str | None = None
    tsih: int | None = None

    @property
    def portal(self) -> str:
        return f"[{self.server}]:{self.server_port}" if ":" in self.server else f"{self.server}:{self.server_port}"

    def end_event(self) -> tuple[int, int, str] | None:
        """The first FIN/RST (frame, ts, "fin_target"...), or the tracker's inferred end."""
        best: tuple[int, int, str] | None = None
        for kind, events in (("fin", self.fin), ("rst", self.rst)):
            for d, (frame, ts) in events.items():
                cand = (frame, ts, f"{kind}_{'initiator' if d == I2T else 'target'}")
                if best is None or (ts, frame) < (best[1], best[0]):
                    best = cand
        if best is None and self.left_ffp is not None:
            return (self.left_ffp[0], self.left_ffp[1], "timeout" if self.left_ffp[3] else "state")
        return best


@dataclass
class _Session:
    session: str
    initiator: str | None = None
    target: str | None = None
    session_type: str | None = None
    tsih: int | None = None
    depth: int = 0
    depth_since: int | None = None
    depth_ns: dict[int, int] = field(default_factory=dict)
    depth_max: int = 0
    commands: int = 0
    next_cmdsn: int | None = None
    expcmdsn: int | None = None
    maxcmdsn: int | None = None
    window: int | None = None
    window_min: int | None = None
    window_max: int | None = None
    exhausted_since: int | None = None
    exhausted: int = 0
    exhausted_ns: int = 0
    exhausted_max_ns: int = 0
    shrinks: int = 0
    first_frame: int = 0
    first_ts: int = 0
    reinstated_from: str | None = None


@dataclass
class _PendingRecovery:
    conn: str
    session: str | None
    pair: tuple[str, str]
    frame: int
    ts: int
    last: tuple[int, int] | None  #: frame, ts of the last completed command before
    first: tuple[int, int, str | None, str] | None = None  #: frame, ts, session, conn
    lost: list[tuple[Any, ...]] = field(default_factory=list)
    retried: int = 0


@dataclass
class Diagnosis:
    """Everything the diagnosis found; ``tables()`` gives (columns, rows) per table."""

    drops: list[DropCause]
    recoveries: list[Recovery]
    paths: list[PathSummary]
    path_intervals: list[PathInterval]
    queues: list[QueueStats]
    nops: list[NopPing]
    logins: list[LoginDiagnosis]
    connections: list[ConnectionStats]
    story: list[str]
    capture_start_ns: int | None = None

    def tables(self) -> dict[str, tuple[tuple[str, ...], list[dict[str, Any]]]]:
        """Every table as (column names, row dicts), for the report writers."""
        out: dict[str, tuple[tuple[str, ...], list[dict[str, Any]]]] = {}
        for name, cls, rows in (
            ("drops", DropCause, self.drops), ("recoveries", Recovery, self.recoveries),
            ("paths", PathSummary, self.paths), ("path_intervals", PathInterval, self.path_intervals),
            ("queues", QueueStats, self.queues), ("nops", NopPing, self.nops),
            ("logins", LoginDiagnosis, self.logins), ("connections", ConnectionStats, self.connections),
        ):
            out[name] = (cls.COLUMNS, [r.as_row() for r in rows])
        return out


#: Column lists per table (for writers that need them before any row).
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "drops": DropCause.COLUMNS, "recoveries": Recovery.COLUMNS, "paths": PathSummary.COLUMNS,
    "path_intervals": PathInterval.COLUMNS, "queues": QueueStats.COLUMNS, "nops": NopPing.COLUMNS,
    "logins": LoginDiagnosis.COLUMNS, "connections": ConnectionStats.COLUMNS,
}


class Diagnoser:
    """Feed records in capture order; ``finish()`` returns the :class:`Diagnosis`."""

    def __init__(self) -> None:
        self.conns: dict[str, _Conn] = {}
        self.sessions: dict[str, _Session] = {}
        self.nops: list[NopPing] = []
        self.first_ts: int | None = None
        self.last_ts = 0
        self.last_frame = 0
        #: pair -> (frame, ts) of the last completed SCSI command
        self.last_completed: dict[tuple[str, str], tuple[int, int]] = {}
        self.pending: list[_PendingRecovery] = []
        #: pending recoveries still waiting for their first completed command or for retries
        self.active: list[_PendingRecovery] = []
        self.pending_conns: set[str] = set()
        self.refused: list[tuple[str, int, int]] = []  #: portal, frame, ts of connections reset before any PDU

    # ------------------------------------------------------------------ feeding

    def feed(self, rec: Record) -> None:
        """Take one pipeline record."""
        ts = rec.ts_ns
        if self.first_ts is None:
            self.first_ts = ts
        self.last_ts = max(self.last_ts, ts)
        self.last_frame = max(self.last_frame, rec.frame)
        if isinstance(rec, Pdu):
            self._pdu(rec)
            return
        name = type(rec).__name__
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(self, rec)

    def _conn(self, conn: str) -> _Conn | None:
        return self.conns.get(conn)

    def _tcp_opened(self, r: TcpOpened) -> None:
        self.conns[r.conn] = _Conn(r.conn, r.client, r.client_port, r.server, r.server_port, r.handshake,
                                   r.frame, r.ts_ns)

    def _tcp_fin(self, r: TcpFin) -> None:
        c = self._conn(r.conn)
        if c is not None and r.direction not in c.fin:
            c.fin[r.direction] = (r.frame, r.ts_ns)
            self._maybe_pending(c, r.frame, r.ts_ns)

    def _tcp_rst(self, r: TcpRst) -> None:
        c = self._conn(r.conn)
        if c is not None and r.direction not in c.rst:
            c.rst[r.direction] = (r.frame, r.ts_ns)
            if c.login is None and not c.pdus[I2T]:
                self.refused.append((c.portal, r.frame, r.ts_ns))
            self._maybe_pending(c, r.frame, r.ts_ns)

    def _tcp_closed(self, r: TcpClosed) -> None:
        c = self._conn(r.conn)
        if c is not None and c.closed is None:
            c.closed = (r.frame, r.ts_ns, r.reason)
            self._drop_open_commands(c, r.ts_ns)

    def _tcp_retrans(self, r: TcpRetransmission) -> None:
        c = self._conn(r.conn)
        if c is not None:
            c.retrans += 1
            c.retrans_bytes[r.direction] += r.length
            c.transport_events.append((r.ts_ns, r.frame))

    def _tcp_gap(self, r: TcpGap) -> None:
        c = self._conn(r.conn)
        if c is not None:
            if r.snaplen:
                c.snaplen += r.length
            else:
                c.missing[r.direction] += r.length

    def _tcp_zero_window(self, r: TcpZeroWindow) -> None:
        c = self._conn(r.conn)
        if c is not None:
            c.zero_windows[r.direction] += 1
            c.transport_events.append((r.ts_ns, r.frame))

    def _session(self, sid: str, rec: Record) -> _Session:
        s = self.sessions.get(sid)
        if s is None:
            s = self.sessions[sid] = _Session(sid, first_frame=rec.frame, first_ts=rec.ts_ns)
        return s

    def _bind(self, conn: str | None, sid: str | None, rec: Record) -> None:
        if conn is None or sid is None:
            return
        c = self.conns.get(conn)
        if c is not None and c.session is None:
            c.session = sid
        self._session(sid, rec)

    def _transition(self, r: Any) -> None:
        self._bind(r.conn, r.session, r)
        if r.machine != "connection" or r.side != "target" or r.conn is None:
            return
        c = self.conns.get(r.conn)
        if c is None:
            return
        if r.to_state == "LOGGED_IN" and c.ffp_ts is None:
            c.ffp_frame, c.ffp_ts = r.frame, r.ts_ns
        elif r.from_state == "LOGGED_IN" and r.to_state != "IN_LOGOUT" and c.left_ffp is None:
            c.left_ffp = (r.frame, r.ts_ns, r.event, bool(r.inferred))
            self._maybe_pending(c, r.frame, r.ts_ns)

    def _session_identified(self, r: Any) -> None:
        s = self._session(r.session, r)
        s.initiator = r.initiator_name or s.initiator
        s.target = r.target_name or s.target
        s.session_type = r.session_type
        s.tsih = r.tsih
        self._bind(r.conn, r.session, r)

    def _session_summary(self, r: Any) -> None:
        s = self._session(r.session, r)
        s.initiator = s.initiator or r.initiator_name
        s.target = s.target or r.target_name
        s.session_type = s.session_type or r.session_type
        s.tsih = s.tsih if s.tsih is not None else r.tsih
        s.reinstated_from = r.reinstated_from

    def _connection_summary(self, r: Any) -> None:
        c = self.conns.get(r.conn)
        if c is not None:
            c.summary_ended = r.ended
            if r.session and c.session is None:
                c.session = r.session

    def _reinstatement(self, r: Any) -> None:
        if r.outcome != "succeeded":
            return
        by = (r.conn, r.start_ts_ns, r.start_frame)
        if r.old_conn and r.old_conn in self.conns:
            self.conns[r.old_conn].reinstated_by = by
        if r.kind == "session" and r.old_session:
            for c in self.conns.values():
                if c.session == r.old_session and c.conn != r.conn:
                    c.reinstated_by = c.reinstated_by or by

    def _deviation(self, r: Any) -> None:
        if r.kind == "connection_dropped_on_request" and r.conn in self.conns:
            self.conns[r.conn].dropped_on_request = (r.frame, r.start_frame)

    def _sequence_event(self, r: Any) -> None:
        c = self.conns.get(r.conn)
        if c is not None and r.kind not in ("statsn_gap", "datasn_gap", "expdatasn_mismatch"):
            c.protocol_errors.append((r.frame, r.ts_ns, r.kind.replace("_", " ")))

    def _malformed(self, r: Any) -> None:
        c = self.conns.get(r.conn)
        if c is not None:
            c.protocol_errors.append((r.frame, r.ts_ns, f"malformed PDU ({r.reason})"))

    def _task(self, r: Any) -> None:
        self._bind(r.conn, r.session, r)
        if r.kind != "scsi":
            return
        c = self.conns.get(r.conn)
        pair = self._pair(c) if c is not None else None
        if pair is None:
            return
        sig = (r.lun, r.lba, r.transfer_length, r.cdb_opcode)
        if r.outcome in COMPLETED:
            self.last_completed[pair] = max(self.last_completed.get(pair, (0, 0)), (r.last_frame, r.end_ts_ns),
                                            key=lambda x: x[1])
            done = False
            for p in self.active:
                if p.pair != pair or r.end_ts_ns <= p.ts:
                    continue
                if p.first is None:
                    p.first = (r.last_frame, r.end_ts_ns, r.session, r.conn)
                if r.start_ts_ns >= p.ts and r.conn != p.conn and sig in p.lost:
                    p.lost.remove(sig)
                    p.retried += 1
                if not p.lost or r.end_ts_ns - p.ts > RETRY_WINDOW_NS:
                    done = True
            if done:  # recovered, and nothing left to match as a retry
                self.active = [p for p in self.active
                               if p.first is None or (p.lost and r.end_ts_ns - p.ts <= RETRY_WINDOW_NS)]
        elif r.outcome in LOST and c is not None:
            c.lost.append(sig)
            for p in self.active:
                if p.conn == r.conn:
                    p.lost.append(sig)

    # ------------------------------------------------------------------ PDUs

    def _pdu(self, p: Pdu) -> None:
        c = self.conns.get(p.conn)
        if c is None:
            return
        d = p.direction
        c.bytes[d] += _pdu_bytes(p)
        if p.header_digest == "bad" or p.data_digest == "bad":
            c.protocol_errors.append((p.frame, p.ts_ns, "digest error"))
        c.pdus[d] += 1
        c.last_pdu[d] = (p.frame, p.ts_ns)
        t = type(p)
        s = self.sessions.get(c.session) if c.session else None
        if t is ScsiCommand:
            assert isinstance(p, ScsiCommand)
            if s is not None:
                if p.itt not in c.open_itts:
                    c.open_itts.add(p.itt)
                    self._depth(s, +1, p.ts_ns)
                    s.commands += 1
                if not p.immediate:
                    self._cmdsn(s, p.cmdsn, p.ts_ns)
        elif t is ScsiResponse or (t is DataIn and p.status_present):  # type: ignore[attr-defined]
            if s is not None and p.itt in c.open_itts:
                c.open_itts.discard(p.itt)
                self._depth(s, -1, p.ts_ns)
        elif t is LoginRequest:
            assert isinstance(p, LoginRequest)
            if c.login is None:
                c.login = _Login(p.frame, p.ts_ns)
            c.login.add(p.csg, "initiator", p.keys)
        elif t is LoginResponse:
            assert isinstance(p, LoginResponse)
            if c.login is None:
                c.login = _Login(p.frame, p.ts_ns)
            c.login.add(p.csg, "target", p.keys)
            if p.status_class != 0:
                c.login.status, c.login.status_frame = (p.status_class, p.status_detail), p.frame
            elif p.transit and p.nsg == 3:
                c.login.status, c.login.status_frame, c.login.succeeded = (0, 0), p.frame, True
                c.tsih = p.tsih
        elif t is LogoutRequest:
            assert isinstance(p, LogoutRequest)
            c.logout_req = (p.frame, p.ts_ns, p.reason)
        elif t is LogoutResponse:
            assert isinstance(p, LogoutResponse)
            if p.response == 0:
                c.logout_ok = True
                if c.session:
                    for other in self.conns.values():
                        if other.session == c.session and other.logout_req is None and \
                                other.end_event() is None and c.logout_req is not None and c.logout_req[2] == 0:
                            other.logout_ok = True  # close-session logout (§11.14)
            else:
                c.logout_failed = (p.frame, p.response)
        elif t is Reject:
            c.protocol_errors.append((p.frame, p.ts_ns, "Reject"))
        elif t is AsyncMessage:
            assert isinstance(p, AsyncMessage)
            c.async_events.append((p.frame, p.ts_ns, p.async_event))
        elif t is NopOut:
            assert isinstance(p, NopOut)
            if p.itt != RESERVED_TAG:
                c.initiator_pings[p.itt] = (p.frame, p.ts_ns)
            if p.ttt != RESERVED_TAG and p.ttt in c.target_pings:
                frame, ts = c.target_pings.pop(p.ttt)
                self.nops.append(NopPing(frame, ts, c.conn, c.session, "target", p.ttt, p.frame,
                                         (p.ts_ns - ts) / 1e6, "answered"))
            if s is not None and not p.immediate:
                self._cmdsn(s, p.cmdsn, p.ts_ns)
        elif t is NopIn:
            assert isinstance(p, NopIn)
            if p.itt != RESERVED_TAG and p.itt in c.initiator_pings:
                frame, ts = c.initiator_pings.pop(p.itt)
                self.nops.append(NopPing(frame, ts, c.conn, c.session, "initiator", p.itt, p.frame,
                                         (p.ts_ns - ts) / 1e6, "answered"))
            elif p.ttt != RESERVED_TAG:
                c.target_pings[p.ttt] = (p.frame, p.ts_ns)
        if d != I2T and s is not None and c.ffp_ts is not None:
            maxcmdsn = getattr(p, "maxcmdsn", None)
            expcmdsn = getattr(p, "expcmdsn", None)
            if isinstance(maxcmdsn, int) and isinstance(expcmdsn, int):
                self._window(s, expcmdsn, maxcmdsn, p.ts_ns)

    def _depth(self, s: _Session, delta: int, ts: int) -> None:
        if s.depth_since is not None:
            s.depth_ns[s.depth] = s.depth_ns.get(s.depth, 0) + max(0, ts - s.depth_since)
        s.depth = max(0, s.depth + delta)
        s.depth_since = ts
        s.depth_max = max(s.depth_max, s.depth)

    def _cmdsn(self, s: _Session, cmdsn: int, ts: int) -> None:
        nxt = (cmdsn + 1) % SERIAL
        if s.next_cmdsn is None or _sdiff(nxt, s.next_cmdsn) > 0:
            s.next_cmdsn = nxt
        self._check_window(s, ts)

    def _window(self, s: _Session, exp: int, mx: int, ts: int) -> None:
        # §4.2.2.1: MaxCmdSN < ExpCmdSN - 1 is invalid and ignored; only newer values count.
        if _sdiff(mx, (exp - 1) % SERIAL) < 0:
            return
        if s.maxcmdsn is not None and _sdiff(mx, s.maxcmdsn) < 0 and s.expcmdsn is not None \
                and _sdiff(exp, s.expcmdsn) <= 0:
            return
        s.expcmdsn, s.maxcmdsn = exp, mx
        size = _sdiff(mx, exp) + 1
        if s.window is not None and size < s.window:
            s.shrinks += 1
        s.window = size
        s.window_min = size if s.window_min is None else min(s.window_min, size)
        s.window_max = size if s.window_max is None else max(s.window_max, size)
        self._check_window(s, ts)

    def _check_window(self, s: _Session, ts: int) -> None:
        if s.next_cmdsn is None or s.maxcmdsn is None:
            return
        full = _sdiff(s.next_cmdsn, s.maxcmdsn) > 0  # the next CmdSN would be above MaxCmdSN
        if full and s.exhausted_since is None:
            s.exhausted_since = ts
            s.exhausted += 1
        elif not full and s.exhausted_since is not None:
            self._end_exhausted(s, ts)

    def _end_exhausted(self, s: _Session, ts: int) -> None:
        if s.exhausted_since is None:
            return
        span = max(0, ts - s.exhausted_since)
        s.exhausted_ns += span
        s.exhausted_max_ns = max(s.exhausted_max_ns, span)
        s.exhausted_since = None

    def _drop_open_commands(self, c: _Conn, ts: int) -> None:
        s = self.sessions.get(c.session) if c.session else None
        if s is not None and c.open_itts:
            self._depth(s, -len(c.open_itts), ts)
        c.open_itts.clear()
        if s is not None and s.depth_since is not None and s.depth == 0 and not any(
                o.session == c.session and o.closed is None for o in self.conns.values()):
            self._depth(s, 0, ts)
            s.depth_since = None  # the session has no connection left: stop the clock

    # ------------------------------------------------------------------ identity

    def _identity(self, c: _Conn) -> tuple[str, str, bool]:
        """(initiator, target, is_discovery) of a connection."""
        s = self.sessions.get(c.session) if c.session else None
        keys = c.login.initiator_keys if c.login is not None else {}
        ini = (s.initiator if s else None) or keys.get("InitiatorName") or c.client
        tgt = (s.target if s else None) or keys.get("TargetName") or c.portal
        discovery = (s.session_type if s else None) == "Discovery" or keys.get("SessionType") == "Discovery"
        return ini, tgt, discovery

    def _pair(self, c: _Conn) -> tuple[str, str] | None:
        ini, tgt, discovery = self._identity(c)
        return None if discovery else (ini, tgt)

    def _maybe_pending(self, c: _Conn, frame: int, ts: int) -> None:
        """A connection left full feature phase or closed: remember the moment for the recovery time."""
        if c.ffp_ts is None or c.logout_ok or c.conn in self.pending_conns:
            return
        pair = self._pair(c)
        if pair is None:
            return
        p = _PendingRecovery(c.conn, c.session, pair, frame, ts, self.last_completed.get(pair), lost=list(c.lost))
        self.pending.append(p)
        self.active.append(p)
        self.pending_conns.add(c.conn)

    # ------------------------------------------------------------------ finish

    def finish(self) -> Diagnosis:
        """Classify, measure and tabulate; call once, after the last record."""
        end_ts = self.last_ts
        for s in self.sessions.values():
            if s.depth_since is not None:
                self._depth(s, 0, end_ts)
            self._end_exhausted(s, end_ts)
        drops: list[DropCause] = []
        for c in sorted(self.conns.values(), key=lambda x: (x.open_ts, x.open_frame)):
            d = self._classify(c)
            if d is not None:
                drops.append(d)
        for c in self.conns.values():
            for pings, who in ((c.initiator_pings, "initiator"), (c.target_pings, "target")):
                for tag, (frame, ts) in pings.items():
                    outcome = "unanswered_at_capture_end" if c.end_event() is None else "unanswered_at_drop"
                    self.nops.append(NopPing(frame, ts, c.conn, c.session, who, tag, None, None, outcome))
        self.nops.sort(key=lambda n: (n.ts_ns, n.frame))
        by_conn = {d.conn: d for d in drops}
        recoveries = self._recoveries(by_conn)
        paths, intervals = self._paths(by_conn)
        queues = self._queues()
        logins = self._logins()
        connections = [self._conn_stats(c) for c in sorted(self.conns.values(), key=lambda x: (x.open_ts, x.open_frame))
                       if c.pdus[I2T] or c.pdus["t2i"]]
        from analyzer.diagnosis.story import story

        diag = Diagnosis(drops, recoveries, paths, intervals, queues, self.nops, logins, connections, [],
                         self.first_ts)
        diag.story = story(diag)
        return diag

    # ------------------------------------------------------------------ classification

    def _classify(self, c: _Conn) -> DropCause | None:
        if c.login is None and c.ffp_ts is None:
            return None  # never spoke iSCSI (a probe, a refused or mid-stream-empty connection)
        if c.summary_ended in ("logout", "session_closed") or (c.logout_ok and c.logout_failed is None):
            return None
        end = c.end_event()
        cap_end = end is None
        end_frame, end_ts, ended_by = end if end is not None else (self.last_frame, self.last_ts, "capture_end")
        evidence: list[int] = []
        closer = "target" if ended_by.endswith("_target") else "initiator" if ended_by.endswith("_initiator") else None

        def mk(cause: str, confidence: str, explanation: str) -> DropCause:
            ini, tgt, _ = self._identity(c)
            ev = tuple(sorted(set(evidence + ([end_frame] if not cap_end else []))))
            li = c.last_pdu.get(I2T)
            lt = c.last_pdu.get("t2i")
            return DropCause(end_frame, end_ts, c.conn, c.session, ini, tgt, c.client, c.portal, cause, confidence,
                             ended_by, ev, explanation,
                             None if li is None else max(0, end_ts - li[1]) / 1e6,
                             None if lt is None else max(0, end_ts - lt[1]) / 1e6,
                             len(c.lost), initiator_log(cause, closer == "target"))

        login = c.login
        if c.ffp_ts is None:
            if login is not None and login.status is not None and login.status != (0, 0):
                if login.status[0] == 1:
                    return None  # a redirect is not a failure (§11.13.5 class 1)
                evidence.append(login.status_frame or login.first_frame)
                code = f"0x{login.status[0]:02x}{login.status[1]:02x}"
                return mk("login_failure", "high", f"The target refused the login with status {code}.")
            evidence.append(login.first_frame if login else c.open_frame)
            if cap_end:
                return mk("capture_end", "medium", "The capture ended during the login.")
            return mk("login_failure", "medium", f"The connection ended ({_words(ended_by)}) during the login, "
                                                 "before a final Login Response.")
        if c.reinstated_by is not None and c.reinstated_by[1] <= end_ts:
            # the reinstatement login came first and the target closed the old one: §6.3.4, §6.3.5
            evidence.append(c.reinstated_by[2])
            return mk("reinstated", "high", "A new login with the same initiator port (ISID) "
                      f"on {c.reinstated_by[0]} replaced this connection's "
                      "session or connection; the target closed the old one (RFC 7143 §6.3.4, §6.3.5).")
        if c.logout_failed is not None:
            evidence.append(c.logout_failed[0])
            return mk("logout_failure", "high", f"The Logout Response said {c.logout_failed[1]} (not 0, §11.15.1) "
                      f"and the connection then ended ({_words(ended_by)}).")
        asyncs = [a for a in self._session_asyncs(c) if a[2] in (1, 2, 3) and a[1] <= end_ts]
        if asyncs:
            a = asyncs[-1]
            evidence.append(a[0])
            what = {1: "asked for a logout", 2: "announced it would drop this connection",
                    3: "announced it would drop all connections of the session"}[a[2]]
            return mk("target_requested", "high", f"The target {what} (Async Message event {a[2]}, frame {a[0]}) "
                      f"before the connection ended ({_words(ended_by)}).")
        if c.dropped_on_request is not None:
            evidence.extend(c.dropped_on_request)
            return mk("target_protocol_drop", "high", f"The target {_verb(ended_by)} the connection right "
                      f"after the request in frame {c.dropped_on_request[1]}, without answering it.")
        errs = [e for e in c.protocol_errors if end_ts - PROTOCOL_ERROR_NS <= e[1] <= end_ts]
        if closer == "target" and errs:
            evidence.extend(e[0] for e in errs[-4:])
            return mk("target_protocol_drop", "medium", f"The target {_verb(ended_by)} the connection "
                      f"{(end_ts - errs[-1][1]) / 1e6:.1f} ms after a protocol error ({errs[-1][2]}, frame "
                      f"{errs[-1][0]}): the target dropped it in answer to that.")
        if closer == "target":
            restart = self._restart_evidence(c, end_ts)
            if restart is not None:
                confidence, why, frames = restart
                evidence.extend(frames)
                return mk("target_restart", confidence, f"The target {_verb(ended_by)} the connection and "
                          f"{why}: the target restarted (or failed over) and lost its sessions.")
        # Retransmissions / zero windows just before the end, or any after the last PDU that got through
        # (a dead path backs its retransmissions off exponentially, past any fixed window).
        last_new = max((v[1] for v in c.last_pdu.values()), default=end_ts)
        since = min(end_ts - TRANSPORT_WINDOW_NS, last_new)
        recent = [(ts, f) for ts, f in c.transport_events if since <= ts <= end_ts]
        if len(recent) >= TRANSPORT_EVENTS:
            evidence.extend(f for _, f in recent[-8:])
            rt = sum(1 for _ in recent)
            return mk("network_failure", "medium" if not cap_end else "high",
                      f"{rt} TCP retransmissions or zero-window episodes after the last PDU that got through "
                      f"({(end_ts - last_new) / 1e9:.1f} s before the end: {_words(ended_by)}): the network path "
                      "stopped delivering.")
        pings_target = sorted(ts for ts in (v[1] for v in c.target_pings.values()) if ts <= end_ts)
        pings_initiator = sorted(ts for ts in (v[1] for v in c.initiator_pings.values()) if ts <= end_ts)
        if closer == "target" and pings_target:
            evidence.extend(f for f, ts in c.target_pings.values() if ts <= end_ts)
            conf = "high" if len(pings_target) >= 2 else "medium"
            return mk("nop_timeout", conf, f"The target pinged the initiator with {len(pings_target)} NOP-In that "
                      f"got no NOP-Out, then closed the connection ({_words(ended_by)}) "
                      f"{(end_ts - pings_target[0]) / 1e9:.1f} s after the first: the initiator was hung or "
                      "could not get its answers through.")
        if closer == "initiator" and pings_initiator:
            evidence.extend(f for f, ts in c.initiator_pings.values() if ts <= end_ts)
            return mk("nop_timeout", "high" if len(pings_initiator) >= 2 else "medium",
                      f"The initiator's NOP-Out ping got no NOP-In, then the initiator closed the connection "
                      f"({_words(ended_by)}): its NOP timeout expired (open-iscsi logs 1022).")
        if cap_end:
            li = c.last_pdu.get(I2T, (0, c.open_ts))[1]
            lt = c.last_pdu.get("t2i", (0, c.open_ts))[1]
            if self.last_ts - max(li, lt) >= DARK_PATH_NS:
                evidence.extend(x[0] for x in (c.last_pdu.get(I2T), c.last_pdu.get("t2i")) if x)
                return mk("network_failure", "low", f"Both directions were silent for "
                          f"{(self.last_ts - max(li, lt)) / 1e9:.1f} s before the capture ended, with no FIN, RST or "
                          "logout: the path went dark (or the capture missed the end).")
            return mk("capture_end", "high", "The capture ended while the connection was still in use.")
        if closer == "initiator" and errs:
            evidence.extend(e[0] for e in errs[-4:])
            return mk("initiator_gone", "medium",
                      f"The initiator {_verb(ended_by)} the connection {(end_ts - errs[-1][1]) / 1e6:.1f} ms after a "
                      f"protocol error ({errs[-1][2]}, frame {errs[-1][0]}): it gave up on the connection.")
        if closer == "initiator":
            kind = "reset (RST)" if ended_by.startswith("rst") else "closed (FIN)"
            return mk("initiator_gone", "high" if ended_by.startswith("rst") else "medium",
                      f"The initiator {kind} the connection without a logout: its process was killed or exited, "
                      "or its host went away." + (f" {len(c.lost)} command(s) in flight were lost." if c.lost else ""))
        last_i = c.last_pdu.get(I2T)
        if closer == "target" and last_i is not None and end_ts - last_i[1] >= INITIATOR_SILENCE_NS:
            evidence.append(last_i[0])
            return mk("initiator_gone", "low", f"The initiator sent nothing for {(end_ts - last_i[1]) / 1e9:.1f} s, "
                      "then "
                      f"the target closed the connection ({_words(ended_by)}): the target timed out a silent "
                      "initiator.")
        if closer == "target":
            return mk("admin_drop", "medium", f"The target {_verb(ended_by)} a logged-in connection with no "
                      "Async Message, no unanswered ping, no transport trouble and no unanswered request before it, "
                      "and no other "
                      "connection to the portal went down with it: an administrator (or a load balancer) dropped it "
                      "on the target (e.g. tgtadm --op delete).")
        evidence.append(c.left_ffp[0] if c.left_ffp else end_frame)
        return mk("initiator_gone" if ended_by == "timeout" else "capture_end", "low",
                  f"The connection left full feature phase ({c.left_ffp[2] if c.left_ffp else ended_by}).")

    def _session_asyncs(self, c: _Conn) -> list[tuple[int, int, int]]:
        out = list(c.async_events)
        if c.session:
            for o in self.conns.values():
                if o is not c and o.session == c.session:
                    out.extend(a for a in o.async_events if a[2] == 3)
        return sorted(out, key=lambda a: a[1])

    def _restart_evidence(self, c: _Conn, end_ts: int) -> tuple[str, str, list[int]] | None:
        portal = c.portal
        signals: list[str] = []
        frames: list[int] = []
        # every connection of the portal in FFP at that moment ended from the target side, together
        peers = []
        for o in self.conns.values():
            if o is c or o.portal != portal or o.ffp_ts is None or o.ffp_ts > end_ts:
                continue
            oe = o.end_event()
            if o.logout_ok or o.logout_req is not None:
                continue  # logged out: not part of a crash
            if oe is None or oe[1] >= end_ts - RESTART_WINDOW_NS:
                peers.append(o)  # up at (or just before) this end
        together: list[int] = []
        for o in peers:
            e = o.end_event()
            if e is None or not e[2].endswith("_target") or abs(e[1] - end_ts) > RESTART_WINDOW_NS:
                together = []
                break
            together.append(e[0])
        if peers and together:
            signals.append(f"all {len(peers) + 1} logged-in connections to {portal} ended from the target within "
                           f"{RESTART_WINDOW_NS / 1e9:.0f} s")
            frames.extend(together)
        # the next login to the portal got a TSIH that is not newer: the target forgot its sessions
        s = self.sessions.get(c.session) if c.session else None
        old_tsih = s.tsih if s is not None and s.tsih else c.tsih
        later = sorted((o for o in self.conns.values() if o.portal == portal and o.open_ts > end_ts and o.login
                        and o.login.succeeded and o.tsih), key=lambda o: o.open_ts)
        if old_tsih and later and later[0].tsih is not None and later[0].tsih <= old_tsih \
                and later[0].login is not None and later[0].login.initiator_keys.get("SessionType") != "Discovery":
            signals.append(f"the next login (frame {later[0].login.status_frame}) got TSIH 0x{later[0].tsih:04x}, "
                           f"not newer than the dropped session's 0x{old_tsih:04x}")
            frames.append(later[0].login.status_frame or later[0].open_frame)
        refused = [f for p, f, ts in self.refused if p == portal and ts >= end_ts]
        if refused:
            signals.append(f"{len(refused)} later connection attempt(s) to {portal} were refused (RST)")
            frames.extend(refused[:4])
        if not signals:
            return None
        return ("high" if len(signals) >= 2 else "medium", " and ".join(signals), frames)

    # ------------------------------------------------------------------ recovery

    def _recoveries(self, drops: dict[str, DropCause]) -> list[Recovery]:
        out: list[Recovery] = []
        for p in sorted(self.pending, key=lambda p: (p.ts, p.frame)):
            d = drops.get(p.conn)
            if d is None:
                continue
            via = "never"
            rs = rc = None
            if p.first is not None:
                rs, rc = p.first[2], p.first[3]
                dc = self.conns[p.conn]
                nc = self.conns.get(rc) if rc else None
                if rs is not None and rs == p.session:
                    via = "same_session"
                elif rs is not None and self.sessions.get(rs) is not None and \
                        self.sessions[rs].reinstated_from == p.session:
                    via = "reinstated_session"
                elif nc is not None and (nc.client, nc.portal) == (dc.client, dc.portal):
                    via = "new_session"
                else:
                    via = "other_path"
            stopped = None
            if p.first is not None:
                start = p.last[1] if p.last is not None else p.ts
                stopped = max(0, p.first[1] - start) / 1e6
            lost = len(self.conns[p.conn].lost)
            out.append(Recovery(p.frame, p.ts, p.conn, p.session, p.pair[0], p.pair[1], d.cause,
                                p.last[0] if p.last else None, p.last[1] if p.last else None,
                                p.first[0] if p.first else None, p.first[1] if p.first else None,
                                rs, rc, via, stopped, lost, p.retried))
        return out

    # ------------------------------------------------------------------ paths

    def _paths(self, drops: dict[str, DropCause]) -> tuple[list[PathSummary], list[PathInterval]]:
        groups: dict[tuple[str, str, str, str], list[_Conn]] = {}
        for c in self.conns.values():
            if c.ffp_ts is None:
                continue
            ini, tgt, discovery = self._identity(c)
            if discovery:
                continue
            groups.setdefault((ini, tgt, c.client, c.portal), []).append(c)
        summaries: list[PathSummary] = []
        intervals: list[PathInterval] = []
        end_of_capture = self.last_ts
        for key in sorted(groups, key=lambda k: min(c.ffp_ts or 0 for c in groups[k])):
            conns = sorted(groups[key], key=lambda c: c.ffp_ts or 0)
            spans: list[tuple[int, int, _Conn]] = []
            for c in conns:
                e = c.end_event()
                stop = e[1] if e is not None else end_of_capture
                d = drops.get(c.conn)
                if d is not None and d.cause in DARK_CAUSES:
                    # the path stopped delivering before the close: it was down from the last PDU on
                    last = max((v[1] for v in c.last_pdu.values()), default=stop)
                    stop = min(stop, max(last, c.ffp_ts or 0))
                spans.append((c.ffp_ts or 0, stop, c))
            # merge overlapping up spans
            merged: list[list[Any]] = []
            for start, stop, c in spans:
                if merged and start <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], stop)
                    merged[-1][2].append(c)
                else:
                    merged.append([start, stop, [c]])
            dup: set[str] = set()
            for i, (_s1, e1, c1) in enumerate(spans):
                for s2, _e2, c2 in spans[i + 1:]:
                    if s2 < e1 and c1.session and c2.session and c1.session != c2.session:
                        dup.update((c1.session, c2.session))
            up = down = 0
            downs = 0
            ini, tgt, addr, portal = key
            for i, (start, stop, cs) in enumerate(merged):
                sess = tuple(sorted({c.session for c in cs if c.session}))
                intervals.append(PathInterval(cs[0].ffp_frame or 0, start, ini, tgt, addr, portal, "up", start, stop,
                                              (stop - start) / 1e6, sess, None, stop >= end_of_capture
                                              and all(c.end_event() is None for c in cs)))
                up += stop - start
                last = max(cs, key=lambda c: (c.end_event() or (0, end_of_capture, ""))[1])
                d = drops.get(last.conn)
                nxt = merged[i + 1][0] if i + 1 < len(merged) else None
                if d is None and nxt is None:
                    continue
                gap_end = nxt if nxt is not None else end_of_capture
                if gap_end <= stop:
                    continue
                intervals.append(PathInterval(d.frame if d else 0, stop, ini, tgt, addr, portal, "down", stop,
                                              gap_end, (gap_end - stop) / 1e6, (), d.cause if d else None,
                                              nxt is None))
                down += gap_end - stop
                downs += 1
            last_conn = max(conns, key=lambda c: (c.end_event() or (0, end_of_capture + 1, ""))[1])
            never = last_conn.conn in drops and last_conn.end_event() is not None and \
                drops[last_conn.conn].cause not in ("capture_end",)
            sessions = tuple(dict.fromkeys(c.session for c in conns if c.session))
            summaries.append(PathSummary(conns[0].ffp_frame or 0, conns[0].ffp_ts or 0, ini, tgt, addr, portal,
                                         sessions, len(conns), conns[0].ffp_ts, up / 1e6, down / 1e6, downs,
                                         sum(1 for c in conns if c.conn in drops), never, tuple(sorted(dup))))
        return summaries, intervals

    # ------------------------------------------------------------------ queues

    def _queues(self) -> list[QueueStats]:
        out: list[QueueStats] = []
        for s in sorted(self.sessions.values(), key=lambda s: (s.first_ts, s.session)):
            if not s.commands:
                continue
            total = sum(s.depth_ns.values())
            mean = (sum(d * ns for d, ns in s.depth_ns.items()) / total) if total > 0 else float(s.depth_max)
            c = next((c for c in self.conns.values() if c.session == s.session), None)
            ini, tgt = (self._identity(c)[:2] if c is not None else (s.initiator or "", s.target or ""))
            out.append(QueueStats(s.first_frame, s.first_ts, s.session, ini, tgt, s.commands,
                                  _percentile(s.depth_ns, 0.5, s.depth_max), _percentile(s.depth_ns, 0.95, s.depth_max),
                                  s.depth_max, round(mean, 3), s.window_min, s.window_max, s.exhausted,
                                  s.exhausted_ns / 1e6, s.exhausted_max_ns / 1e6, s.shrinks))
        return out

    # ------------------------------------------------------------------ logins

    def _logins(self) -> list[LoginDiagnosis]:
        out: list[LoginDiagnosis] = []
        good = [c for c in self.conns.values() if c.login is not None and c.login.succeeded]
        for c in sorted(self.conns.values(), key=lambda x: (x.open_ts, x.open_frame)):
            lg = c.login
            if lg is None or lg.succeeded or (lg.status is not None and lg.status[0] == 1):
                continue
            if lg.status is None and c.end_event() is None:
                continue  # still logging in when the capture ended
            ini, tgt, _ = self._identity(c)
            stage = {0: "security", 1: "operational"}.get(lg.stage, "operational")
            if lg.status is None:
                stage, status, name = "transport", "", "no final Login Response"
                expl = (f"The connection ended ({_words(c.end_event()[2])}) during the "  # type: ignore[index]
                        f"{ {0: 'security', 1: 'operational'}.get(lg.stage, 'operational')} stage of the login, "
                        "before the target answered with a final status.")
                check = "The target's log for why it closed; network reachability of the portal; login timeouts."
            else:
                status = f"0x{lg.status[0]:02x}{lg.status[1]:02x}"
                name, expl, check = _login_status_words(lg.status, stage, lg)
            pair_ini = lg.initiator_keys.get("InitiatorName", ini)
            pair_tgt = lg.initiator_keys.get("TargetName", tgt)
            stype = lg.initiator_keys.get("SessionType", "Normal")
            cands = [g for g in good if g.login is not None
                     and g.login.initiator_keys.get("InitiatorName", self._identity(g)[0]) == pair_ini
                     and g.login.initiator_keys.get("TargetName", self._identity(g)[1]) == pair_tgt
                     and g.login.initiator_keys.get("SessionType", "Normal") == stype]
            cmp = min(cands, key=lambda g: abs(g.open_ts - c.open_ts)) if cands else None
            diff: tuple[tuple[str, str, str | None, str | None], ...] = ()
            if cmp is not None and cmp.login is not None:
                diff = _key_diff(lg, cmp.login)
            out.append(LoginDiagnosis(lg.status_frame or lg.first_frame, lg.first_ts, c.conn, c.session, ini, tgt,
                                      stage, status, name, expl, check, cmp.conn if cmp else None,
                                      cmp.login.first_frame if cmp and cmp.login else None, diff))
        return out

    # ------------------------------------------------------------------ connection stats

    def _conn_stats(self, c: _Conn) -> ConnectionStats:
        t0 = self.first_ts or c.open_ts
        ev: list[tuple[int, int, str]] = [(c.open_ts, c.open_frame, "SYN" if c.handshake else "mid-stream")]
        if c.login is not None:
            ev.append((c.login.first_ts, c.login.first_frame, "login"))
            if c.login.status is not None and not c.login.succeeded:
                code = f"{c.login.status[0]:02x}{c.login.status[1]:02x}"
                ev.append((c.login.first_ts, c.login.status_frame or 0, f"login-failed 0x{code}"))
        if c.ffp_ts is not None:
            ev.append((c.ffp_ts, c.ffp_frame or 0, "FFP"))
        if c.logout_req is not None:
            ev.append((c.logout_req[1], c.logout_req[0], "logout"))
        for kind, events in (("FIN", c.fin), ("RST", c.rst)):
            for d, (frame, ts) in events.items():
                ev.append((ts, frame, f"{kind}({'i' if d == I2T else 't'})"))
        ev.sort()
        history = " > ".join(f"{label} {(ts - t0) / 1e9:.3f}" for ts, _, label in ev)
        end = c.closed[1] if c.closed else self.last_ts
        return ConnectionStats(c.open_frame, c.open_ts, c.conn, c.session, c.client, c.portal,
                               max(0, end - c.open_ts) / 1e6, c.bytes[I2T], c.bytes["t2i"], c.pdus[I2T],
                               c.pdus["t2i"], c.retrans_bytes[I2T], c.retrans_bytes["t2i"], c.retrans,
                               c.missing[I2T], c.missing["t2i"], c.snaplen, c.zero_windows[I2T],
                               c.zero_windows["t2i"], None,
                               c.summary_ended or ("open" if c.closed is None else "closed"),
                               history)


def _percentile(hist: dict[int, int], q: float, default: int) -> int:
    """The q-quantile of a time-weighted histogram (depth -> nanoseconds at that depth)."""
    total = sum(hist.values())
    if total <= 0:
        return default
    acc = 0
    for depth in sorted(hist):
        acc += hist[depth]
        if acc >= q * total:
            return depth
    return max(hist)


def _verb(ended_by: str) -> str:
    return "reset (RST)" if ended_by.startswith("rst") else "closed (FIN)"


def _words(ended_by: str) -> str:
    return {
        "fin_target": "the target closed it with FIN", "fin_initiator": "the initiator closed it with FIN",
        "rst_target": "the target reset it", "rst_initiator": "the initiator reset it",
        "timeout": "timed out", "state": "left full feature phase", "capture_end": "the capture ended",
    }.get(ended_by, ended_by)


_LOGIN_WORDS: dict[tuple[int, int], tuple[str, str]] = {
    (2, 0): ("The target rejected the login for a reason it did not name (initiator error).",
             "The target's log; the keys the initiator offered (see the diff)."),
    (2, 1): (("Authentication failed: the CHAP exchange did not verify (wrong secret or user name), or the target "
             "requires CHAP and the initiator offered none."),
             "CHAP user name and secret on both sides; whether the initiator offered AuthMethod=CHAP."),
    (2, 2): ("Authorization failed: this initiator is not allowed to log in to this target.",
             "The target's ACL / initiator group (InitiatorName and address) for this target."),
    (2, 3): ("The target name does not exist at this portal.",
             "The TargetName spelling; rerun discovery (SendTargets) against this portal."),
    (2, 4): ("The target was removed and the portal gives no new address.", "Where the target moved."),
    (2, 5): ("The target does not support the iSCSI version range the initiator asked for.",
             "VersionMax/VersionMin of both sides."),
    (2, 6): ("The target refuses more connections.", "MaxConnections and the number of sessions per target."),
    (2, 7): ("A required key was missing from the login (e.g. InitiatorName, or TargetName for a Normal session).",
             "The keys of the first Login Request (see the diff)."),
    (2, 8): ("The connection cannot be added to that session.", "ISID/TSIH of the login and MaxConnections."),
    (2, 9): ("The target does not support this session type (Discovery or Normal).", "SessionType."),
    (2, 10): (("The session named by the login's TSIH does not exist (anymore) on the target: a reinstatement "
              "after the target timed the session out."), "Time2Wait/Time2Retain and how late the relogin came."),
    (2, 11): ("The request is invalid during login.", "The login PDU sequence (stages, T bit)."),
    (3, 0): ("The target had an error processing the login.", "The target's log."),
    (3, 1): ("The target service is unavailable.", "Whether the target is in maintenance or overloaded."),
    (3, 2): ("The target is out of resources.", "The target's memory/session limits."),
}


def _login_status_words(status: tuple[int, int], stage: str, lg: _Login) -> tuple[str, str, str]:
    name = login_status_name(*status)
    expl, check = _LOGIN_WORDS.get(status, ("The target refused the login.", "The target's log."))
    if status == (2, 1):
        if "CHAP_N" not in lg.initiator_keys and lg.initiator_keys.get("AuthMethod", "None").split(",")[0] == "None":
            expl += " Here the initiator offered no CHAP (AuthMethod None)."
        elif "CHAP_R" in lg.initiator_keys:
            expl += " Here the initiator answered the challenge, so the secret (or CHAP_N) is wrong."
    return name, f"Failed in the {stage} stage: {expl}", check


def _key_diff(bad: _Login, good: _Login) -> tuple[tuple[str, str, str | None, str | None], ...]:
    """Keys that differ between a failing and a succeeding login of the same initiator and target.

    Initiator keys: what each login offered in the stages the failing one reached. Target keys: only those
    the target sent
    in the failing login (it stops answering at the failure, so keys of later stages are no difference).
    The stage each login started in is compared as the pseudo-key ``(first stage)``. Secrets and nonces
    (CHAP_C/R/I) are compared by presence only.
    """
    out: list[tuple[str, str, str | None, str | None]] = []
    first_bad, first_good = min(bad.by_stage, default=None), min(good.by_stage, default=None)
    if first_bad != first_good:
        names = {0: "security", 1: "operational"}
        out.append(("initiator", "(first stage)", names.get(first_bad, str(first_bad)) if first_bad is not None
                    else None, names.get(first_good, str(first_good)) if first_good is not None else None))
    reached = set(bad.by_stage)
    good_keys: dict[str, str] = {}
    for stage in sorted(good.by_stage):
        if stage in reached:
            good_keys.update(good.by_stage[stage].get("initiator", {}))
    _diff_side(out, "initiator", bad.initiator_keys, good_keys)
    _diff_side(out, "target", bad.target_keys, {k: v for k, v in good.target_keys.items() if k in bad.target_keys})
    return tuple(out)


def _diff_side(out: list[tuple[str, str, str | None, str | None]], side: str, a: dict[str, str],
               b: dict[str, str]) -> None:
    if True:
        for key in list(dict.fromkeys(list(a) + list(b))):
            va, vb = a.get(key), b.get(key)
            if key in HIDDEN_KEYS:
                if (va is None) != (vb is None):
                    out.append((side, key, None if va is None else "(present)", None if vb is None else "(present)"))
                continue
            if va != vb:
                out.append((side, key, va, vb))


_HANDLERS: dict[str, Any] = {
    "TcpOpened": Diagnoser._tcp_opened,
    "TcpFin": Diagnoser._tcp_fin,
    "TcpRst": Diagnoser._tcp_rst,
    "TcpClosed": Diagnoser._tcp_closed,
    "TcpRetransmission": Diagnoser._tcp_retrans,
    "TcpGap": Diagnoser._tcp_gap,
    "TcpZeroWindow": Diagnoser._tcp_zero_window,
    "Transition": Diagnoser._transition,
    "SessionIdentified": Diagnoser._session_identified,
    "SessionSummary": Diagnoser._session_summary,
    "ConnectionSummary": Diagnoser._connection_summary,
    "Reinstatement": Diagnoser._reinstatement,
    "Deviation": Diagnoser._deviation,
    "TaskRecord": Diagnoser._task,
    "SequenceEvent": Diagnoser._sequence_event,
    "MalformedPdu": Diagnoser._malformed,
}


def diagnose(records: Any) -> Diagnosis:
    """Run the diagnosis over an iterable of pipeline records (e.g. ``iter_records(capture)``)."""
    d = Diagnoser()
    for r in records:
        d.feed(r)
    return d.finish()


__all__ = ["TABLE_COLUMNS", "Diagnoser", "Diagnosis", "diagnose"]
