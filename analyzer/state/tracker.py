"""SessionTracker: wires the connection, cleanup and session machines, tasks, negotiation
and sequence checks together (RFC 7143 §4.2.2, §6, §7, §8, §11).

Theory of operation
-------------------
The tracker consumes every TCP and iSCSI record in capture order (``feed``) and emits
the records of ``events.py``. It is sans-I/O and never reads the clock: time is the
``ts_ns`` of the records, and ``tick``/``finish`` let the pipeline advance it. Inferred
timeouts (cleanup M1 and session N5/N6) fire when the capture clock passes their
deadline, in ``feed`` (before the record is handled), ``tick`` and ``finish``.

Per TCP connection we keep both endpoints' connection machines (and, once they fail,
both cleanup machines); per session both session machines. A PDU is applied to both
sides at once (sent by one, received by the other). Session identity follows §6.3:

* Login with TSIH 0: a new session (leading login). If a live session already has the
  same InitiatorName, ISID and TargetName, this is a session reinstatement (§6.3.5).
* Login with a non-zero TSIH: the session with that ISID/TSIH. A CID that a live
  connection of the session already uses means connection reinstatement (§6.3.4),
  otherwise a connection is added (MC/S). A TSIH we never saw starts a placeholder
  session marked ``mid_stream``.
* The SSID is ISID + TargetPortalGroupTag (from the target's login response).

Key=value text split across PDUs with the C bit (§6.1) is rejoined per connection and direction
(``_ltds``, :class:`~analyzer.state.negotiation.TextJoiner`): negotiation, the session's names
(InitiatorName, TargetName, SessionType, TargetPortalGroupTag, TargetAlias) and SendTargets results
come from the joined text, never from a PDU's fragment. A series ends with its C=0 PDU; a new ITT,
the end of the login phase or of the Text exchange abandons one still open. Breaks of the rules
(a C=1 PDU answered with data, §6.2; C with T/F set; a pair cut without the C bit, as tgtd does
with F=0; an abandoned series) become Deviation records.

A capture that begins mid-connection starts the machines in the non-RFC ``UNKNOWN`` and
places them with inferred transitions (see ``connection.py``). Responses whose ITT we
never saw are not flagged on such connections (their command predates the capture), nor
after a capture gap in the initiator->target direction; partial tasks are made instead.

The wire is the truth. Some closes RFC 7143 derives from an event on *another* connection
(the other connections of a session closed by a close-session Logout, §11.14; the old
connection of a connection reinstatement, §6.3.4, or of a session reinstatement, §6.3.5; the
connection a Logout names from another connection) are *pending* on the connection: applied
(T8/T7/T13/T18, or T9+T13 inferred for a named logout) when its own TCP connection closes, or
at capture end (inferred, at the implying event's frame). If the target sends a PDU on it
first, it kept the connection: the pending close is dropped, the connection stays in full
feature phase and a :class:`Deviation` says what the RFC expected. Likewise a target that closes
the connection carrying a Logout for another CID is taken as having applied the Logout to the
carrier (a Deviation). Tasks follow: a task answered is completed whatever was assumed; a task
still open when its connection closes gets the connection's end outcome, except commands the
target never accepted (CmdSN outside the window, §4.2.2.1; sent after a Logout Request,
§11.14), which are ``not_accepted``; every unanswered task carries an ``unanswered_cause``.
Cleanup reaching FREE (R3) moves the connection machine to FREE too (§8.2: R3 is S1).

Memory: open tasks live on their session and are evicted when their record is emitted;
the per-session CmdSN history is bounded. Everything else of a session (its connections, its
index entries, its CmdSN history, its summaries) stays until the capture ends, unless the
caller ``forget``s the session once it has ended (live capture over days does, after a
while): session ids come from a counter, so a forgotten id is never handed out again.
``sessions(live_only=True)`` / ``connections(live_only=True)`` walk an index of the sessions
and connections not yet ended (pruned lazily as they end), so a periodic snapshot costs
O(open ones), not O(all ever seen).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

from analyzer.iscsi.text_keys import text_tail
from analyzer.records import (
    I2T,
    R2T,
    RESERVED_TAG,
    T2I,
    AsyncMessage,
    DataIn,
    DataOut,
    FramingResync,
    LoginRequest,
    LoginResponse,
    LogoutRequest,
    LogoutResponse,
    MalformedPdu,
    NopIn,
    NopOut,
    Pdu,
    Record,
    Reject,
    ScsiCommand,
    ScsiResponse,
    Snack,
    TaskMgmtRequest,
    TaskMgmtResponse,
    TcpClosed,
    TcpFin,
    TcpGap,
    TcpOpened,
    TcpRecord,
    TcpRst,
    TextRequest,
    TextResponse,
)
from analyzer.state import cleanup, connection, session
from analyzer.state.cleanup import CleanupInput, CleanupState
from analyzer.state.connection import FFP_STATES, ConnInput, ConnState
from analyzer.state.events import (
    CleanupDeadline,
    CleanupEnded,
    ConnectionParams,
    ConnectionSummary,
    Deviation,
    NegotiationIssue,
    Reinstatement,
    SequenceEvent,
    SessionIdentified,
    SessionSummary,
    TrackerError,
    Transition,
)
from analyzer.state.machine import Context, Spec, advance
from analyzer.state.negotiation import CONNECTION_PARAMS, SESSION_PARAMS, Issue, Negotiation, TextJoiner
from analyzer.state.sequence import CmdWindow, StatSn, serial_add, serial_gt
from analyzer.state.session import LIVE_STATES, SessInput, SessState
from analyzer.state.tasks import (
    ASYNC_EVENT,
    LOGIN_STATUS,
    LOGOUT_REASON,
    LOGOUT_RESPONSE,
    REJECT_REASON,
    TMF_FUNCTION,
    DataOutSeq,
    Task,
    login_status_name,
    scsi_outcome,
)

SIDES = ("initiator", "target")
_CONN_SPECS: dict[str, Spec[ConnState, ConnInput]] = {"initiator": connection.INITIATOR,
                                                      "target": connection.TARGET}
_CLEANUP_SPECS: dict[str, Spec[CleanupState, CleanupInput]] = {"initiator": cleanup.INITIATOR,
                                                               "target": cleanup.TARGET}
_SESS_SPECS: dict[str, Spec[SessState, SessInput]] = {"initiator": session.INITIATOR, "target": session.TARGET}

_I_STAYS, _T_STAYS = connection.INITIATOR_STAYS, connection.TARGET_STAYS
_EMPTY: frozenset[ConnInput] = frozenset()
_S1, _S4, _S8 = ConnState.S1_FREE, ConnState.S4_IN_LOGIN, ConnState.S8_CLEANUP_WAIT
_R1, _R2, _R3 = CleanupState.R1_CLEANUP_WAIT, CleanupState.R2_IN_CLEANUP, CleanupState.R3_FREE
_Q1, _Q3, _Q4 = SessState.Q1_FREE, SessState.Q3_LOGGED_IN, SessState.Q4_FAILED
_CMDSN_HISTORY = 65536
_NS = 1_000_000_000
#: opcode of the PDU that opens each task kind (to match a Reject's rejected header, §11.17)
_OPENING_OPCODE = {"nop": 0x00, "scsi": 0x01, "tmf": 0x02, "text": 0x04, "logout": 0x06}
_PDU_NAMES = {
    "NopOut": "NOP-Out", "ScsiCommand": "SCSI Command", "TaskMgmtRequest": "Task Management Request",
    "LoginRequest": "Login Request", "TextRequest": "Text Request", "DataOut": "SCSI Data-Out",
    "LogoutRequest": "Logout Request", "Snack": "SNACK Request", "NopIn": "NOP-In",
    "ScsiResponse": "SCSI Response", "TaskMgmtResponse": "Task Management Response",
    "LoginResponse": "Login Response", "TextResponse": "Text Response", "DataIn": "SCSI Data-In",
    "LogoutResponse": "Logout Response", "R2T": "R2T", "AsyncMessage": "Async Message", "Reject": "Reject",
    "UnknownPdu": "unknown PDU",
}


@dataclass(slots=True, eq=False)
class _Login:
    itt: int
    isid: int
    tsih: int
    cid: int
    kind: str  #: leading, added, continuation, connection_reinstatement, session_reinstatement, unknown
    start_frame: int
    start_ts: int
    neg: Negotiation = field(default_factory=Negotiation)
    old_conn: _Conn | None = None
    old_session: _Session | None = None
    #: the replaced connection's / session's state per side when the login began (Reinstatement record)
    old_states: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class _Pending:
    """A close the RFC derives from an event on *another* connection (or a reinstatement), not
    yet confirmed by this connection's own wire: applied when its TCP connection closes (or at
    capture end, inferred); cancelled, as a :class:`Deviation`, when the target sends on it."""

    kind: str  #: "close_session", "named_logout", "carrier_logout", "conn_reinstated", "sess_reinstated"
    frame: int  #: the event that implies the close (Logout Response, final Login Response)
    ts: int
    carrier: str  #: the connection that carried that event
    what: str  #: the event, in words, for transition events and deviation details
    reason: int = 0  #: Logout reason (named_logout, carrier_logout)
    cid: int | None = None  #: the CID a logout named (carrier_logout)
    by: str | None = None  #: reinstating connection / session id


@dataclass(slots=True, eq=False)
class _Conn:
    id: str
    start_frame: int
    start_ts: int
    handshake: bool
    mid_stream: bool
    state: dict[str, ConnState]
    last_frame: int = 0
    last_ts: int = 0
    client: str | None = None
    client_port: int | None = None
    server: str | None = None
    server_port: int | None = None
    session: _Session | None = None
    cid: int | None = None
    role: str = "unknown"
    cleanup: dict[str, CleanupState | None] = field(default_factory=lambda: {"initiator": None, "target": None})
    cleanup_entered: dict[str, int] = field(default_factory=dict)
    cleanup_deadline: dict[str, int] = field(default_factory=dict)
    cleanup_gen: dict[str, int] = field(default_factory=lambda: {"initiator": 0, "target": 0})
    cleanup_override: tuple[int, int, str] | None = None  #: (Time2Wait, Time2Retain, source) for the next S8
    was_ffp: dict[str, bool] = field(default_factory=lambda: {"initiator": False, "target": False})
    login: _Login | None = None
    text_neg: Negotiation | None = None
    #: per direction: the sender's key=value text being rejoined across C-bit PDUs (§6.1)
    ltds: dict[str, TextJoiner] = field(default_factory=dict)
    #: (direction that owes an empty answer, frame and ITT of the C=1 PDU it answers) (§6.2)
    ltds_answer: tuple[str, int, int] | None = None
    params_known: bool = False
    params: dict[str, str] = field(default_factory=dict)
    header_digest: bool = False
    data_digest: bool = False
    mrdsl_initiator: int = 8192
    mrdsl_target: int = 8192
    statsn: StatSn = field(default_factory=StatSn)
    #: why new requests are not allowed any more ("after a Logout Request (§11.14)"), "" if they are
    no_new_requests: str = ""
    closure: bool = False  #: the connection is leaving FFP through a close-connection logout
    end_outcome: str = "open_at_conn_drop"  #: outcome for tasks still open when it leaves FFP
    end_note: str = ""
    end_cause: str | None = None  #: unanswered_cause for those tasks (None: from how TCP ended)
    pending: _Pending | None = None
    pings: dict[int, Task] = field(default_factory=dict)  #: open target NOP-In pings by TTT
    closed_by: tuple[str, str] | None = None  #: (side, "fin"/"rst") of the first FIN/RST
    tcp_closed: bool = False  #: TcpClosed seen: nothing more can arrive on this TCP connection
    lossy: bool = False  #: the capture lost data of this connection (either direction)
    last_pdu_frame: int = 0
    last_pdu_dir: str = ""
    last_t2i_frame: int = 0
    ended: str = "open"
    tcp_end: str | None = None
    tcp_down: bool = False
    lossy_i2t: bool = False
    login_status: tuple[int, int] | None = None
    reinstated_by: str | None = None
    reinstates: str | None = None
    pdus: int = 0
    tasks: int = 0


@dataclass(slots=True, eq=False)
class _Session:
    id: str
    state: dict[str, SessState]
    start_frame: int
    start_ts: int
    mid_stream: bool
    last_frame: int = 0
    last_ts: int = 0
    isid: int | None = None
    tsih: int | None = None
    tpgt: int | None = None
    initiator_name: str | None = None
    target_name: str | None = None
    initiator_alias: str | None = None
    target_alias: str | None = None
    session_type: str | None = None
    conns: list[_Conn] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    params_known: bool = False
    time2wait: int = 2
    time2retain: int = 20
    t2_source: str = "default"
    window: CmdWindow = field(default_factory=CmdWindow)
    recent_cmdsn: dict[int, int] = field(default_factory=dict)
    tasks: dict[int, Task] = field(default_factory=dict)
    ended: str = "open"
    reinstated_from: str | None = None
    reinstated_by: str | None = None
    deadline_gen: dict[str, int] = field(default_factory=lambda: {"initiator": 0, "target": 0})
    task_count: int = 0
    discovered_targets: list[str] = field(default_factory=list)
    indexed: bool = False
    identified: bool = False  #: SessionIdentified emitted

    def live(self) -> bool:
        return any(st in LIVE_STATES for st in self.state.values())

    def param_int(self, key: str) -> int | None:
        v = self.params.get(key)
        try:
            return int(v, 0) if v is not None else None
        except ValueError:
            return None


def _isid_hex(isid: int | None) -> str | None:
    return None if isid is None else f"{isid:012x}"


def _keys(keys: Iterable[tuple[str, str]]) -> dict[str, str]:
    return dict(keys)


def _parse_conn_id(conn: str) -> tuple[str | None, int | None, str | None, int | None]:
    try:
        left, right = conn.split("#", 1)[0].split("->", 1)
        c, cp = left.rsplit(":", 1)
        s, sp = right.rsplit(":", 1)
        return c.strip("[]"), int(cp), s.strip("[]"), int(sp)
    except ValueError:
        return None, None, None, None


class SessionTracker:
    """Sessions, connections, tasks and their RFC 7143 state histories from a record stream."""

    def __init__(self, *, time2wait_default: int = 2, time2retain_default: int = 20) -> None:
        self._t2w_default = time2wait_default
        self._t2r_default = time2retain_default
        self._conns: dict[str, _Conn] = {}
        #: every session not forgotten, by id, in creation order
        self._sessions: dict[str, _Session] = {}
        #: sessions / connections that may not have ended yet (pruned lazily by ``_open_*``)
        self._open_sessions: dict[str, _Session] = {}
        self._open_conns: dict[str, _Conn] = {}
        #: last session number handed out (ids are never reused, even after ``forget``)
        self._sid_counter = 0
        self._by_tsih: dict[tuple[int, int], _Session] = {}
        self._by_nexus: dict[tuple[str | None, int, str | None], _Session] = {}
        self._heap: list[tuple[int, int, str, str, str, int]] = []
        self._seq = 0
        self._out: list[Record] = []
        self._last_frame = 0
        self._last_ts = 0
        self._finished = False
        #: old session id -> connection carrying a running session-reinstatement login for it
        self._reinstating: dict[str, _Conn] = {}

    # ------------------------------------------------------------------ public API

    def feed(self, record: Record) -> list[Record]:
        """Account for one record (capture order) and return the records it produced."""
        out = self._out = []
        try:
            self._fire_due(record.ts_ns)
            self._last_frame = max(self._last_frame, record.frame)
            self._last_ts = max(self._last_ts, record.ts_ns)
            self._dispatch(record)
        except Exception as exc:  # noqa: BLE001 - safety net: never raise on input (house style §2)
            conn = getattr(record, "conn", None)
            out.append(TrackerError(record.frame, record.ts_ns, conn if isinstance(conn, str) else None,
                                    f"{type(record).__name__}: {exc!r}"))
        return out

    def tick(self, ts_ns: int) -> list[Record]:
        """Capture time passed: fire the inferred timeouts due by ``ts_ns``."""
        out = self._out = []
        try:
            self._fire_due(ts_ns)
        except Exception as exc:  # noqa: BLE001
            out.append(TrackerError(self._last_frame, ts_ns, None, f"tick: {exc!r}"))
        return out

    def finish(self, ts_ns: int) -> list[Record]:
        """End of capture: fire due timeouts, close open tasks, emit the summaries."""
        out = self._out = []
        try:
            self._fire_due(ts_ns)
            self._finish(ts_ns)
        except Exception as exc:  # noqa: BLE001
            out.append(TrackerError(self._last_frame, ts_ns, None, f"finish: {exc!r}"))
        return out

    def sessions(self, live_only: bool = False) -> list[SessionSummary]:
        """Current snapshot of every session seen and not forgotten, in id order.

        ``live_only``: only the sessions that have not ended (see ``forget`` for what ended
        means: a FAILED session waiting for its Time2Retain, or one whose TCP connections are
        still open, has not). That walks an index of open sessions, so calling it periodically
        costs O(open sessions) whatever the number of sessions seen.
        """
        if live_only:
            return [self._session_summary(s, s.last_frame, s.last_ts) for s in self._open_session_list()]
        return [self._session_summary(s, s.last_frame, s.last_ts) for s in self._sessions.values()]

    def connections(self, live_only: bool = False) -> list[ConnectionSummary]:
        """Current snapshot of every connection seen and not forgotten.

        ``live_only``: only the connections that have not ended (TCP connection still open, or
        a connection machine not back in FREE, or a cleanup, login or implied close pending).
        """
        if live_only:
            return [self._conn_summary(c, c.last_frame, c.last_ts) for c in self._open_conn_list()]
        return [self._conn_summary(c, c.last_frame, c.last_ts) for c in self._conns.values()]

    def forget(self, session_id: str) -> None:
        """Drop an ended session and everything kept for it, to bound memory over a long capture.

        Ended means: FREE on both sides (RFC 7143 §8.3), no open task, no session-reinstatement
        login running for it, and each of its connections ended (TCP connection closed, both
        connection machines FREE, no cleanup, login or implied close pending). A session that
        has not ended (or an unknown id) is left alone: the call is a no-op. Its connections,
        its ISID/TSIH and InitiatorName/ISID/TargetName index entries, its CmdSN history and its
        summaries go; nothing about it is emitted, now or at ``finish``. Ids come from a
        counter, so a later session never gets the forgotten id.

        What forgetting changes later: nothing the state machines would decide differently. A
        session that ended is no longer "live" for reinstatement (§6.3.5; only sessions in
        ACTIVE/LOGGED_IN/FAILED/IN_CONTINUE are), so a later leading login with its
        InitiatorName, ISID and TargetName is a new session, forgotten or not; a login naming its
        TSIH starts a placeholder ``mid_stream`` session, as for any TSIH never seen. Sessions
        not forgotten keep their reinstatement detection unchanged.
        """
        if not self.ended(session_id):
            return
        s = self._sessions[session_id]
        self._unindex(s)
        del self._sessions[session_id]
        self._open_sessions.pop(session_id, None)
        for c in s.conns:
            if self._conns.get(c.id) is c:
                del self._conns[c.id]
            self._open_conns.pop(c.id, None)
            c.session = None  # break the cycle: freed at once, not at the next GC
        s.conns = []

    def forget_connection(self, conn: str) -> None:
        """Drop an ended connection that belongs to no session (a TCP connection that never
        carried a PDU, e.g. a port probe). No-op for a connection of a session (use ``forget``)
        or one that has not ended (see ``forget``)."""
        if not self.connection_ended(conn):
            return
        del self._conns[conn]
        self._open_conns.pop(conn, None)

    def ended(self, session_id: str) -> bool:
        """True when the session is known and has ended, so that ``forget`` would drop it."""
        s = self._sessions.get(session_id)
        return s is not None and self._session_ended(s)

    def connection_ended(self, conn: str) -> bool:
        """True when ``forget_connection`` would drop ``conn`` (ended, and of no session)."""
        c = self._conns.get(conn)
        return c is not None and c.session is None and self._conn_ended(c)

    def session_connections(self, session_id: str) -> tuple[str, ...]:
        """Ids of the connections of a session (empty for an unknown or forgotten id)."""
        s = self._sessions.get(session_id)
        return tuple(c.id for c in s.conns) if s is not None else ()

    # ------------------------------------------------------------------ live index

    def _conn_ended(self, c: _Conn) -> bool:
        if not c.tcp_closed or c.login is not None or c.pending is not None or c.pings:
            return False
        for side in SIDES:
            if c.state[side] is not _S1 and not (c.state[side] is ConnState.UNKNOWN and not c.was_ffp[side]):
                return False
            if c.cleanup[side] is _R1 or c.cleanup[side] is _R2:
                return False
        return True

    def _session_ended(self, s: _Session) -> bool:
        if s.live() or s.tasks or s.id in self._reinstating:
            return False
        return all(self._conn_ended(c) for c in s.conns)

    def _open_session_list(self) -> list[_Session]:
        ended = [s for s in self._open_sessions.values() if self._session_ended(s)]
        for s in ended:
            del self._open_sessions[s.id]
        return list(self._open_sessions.values())

    def _open_conn_list(self) -> list[_Conn]:
        ended = [c for c in self._open_conns.values() if self._conn_ended(c)]
        for c in ended:
            del self._open_conns[c.id]
        return list(self._open_conns.values())

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, r: Record) -> None:
        if isinstance(r, Pdu):
            self._pdu(r)
        elif isinstance(r, TcpRecord):
            self._tcp(r)
        elif isinstance(r, (MalformedPdu, FramingResync)):
            c = self._conns.get(r.conn)
            if c is not None and not (isinstance(r, FramingResync) and r.found and not r.skipped):
                self._damage(c, r.direction)

    # ------------------------------------------------------------------ helpers: machines

    def _ctx(self, c: _Conn | None, s: _Session | None, frame: int, ts: int, event: str,
             inferred: bool = False, observer_limited: bool = False) -> Context:
        sess = s if s is not None else (c.session if c is not None else None)
        limited = observer_limited or (c is not None and (c.lossy or c.mid_stream))
        return Context(frame, ts, sess.id if sess else None, c.id if c else None, event, inferred, limited)

    def _conn_step(self, c: _Conn, side: str, inp: ConnInput, frame: int, ts: int, event: str,
                   inferred: bool = False) -> bool:
        old = c.state[side]
        new, recs = advance(_CONN_SPECS[side], old, inp, self._ctx(c, None, frame, ts, event, inferred))
        self._out.extend(recs)
        c.state[side] = new
        return new is not old

    def _conn_both(self, c: _Conn, inp: ConnInput, frame: int, ts: int, events: dict[str, str],
                   inferred: bool = False, settle: bool = True) -> None:
        for side in SIDES:
            self._conn_step(c, side, inp, frame, ts, events[side], inferred)
        if settle:
            self._settle(c, frame, ts, events["target"])

    def _cleanup_step(self, c: _Conn, side: str, inp: CleanupInput, frame: int, ts: int, event: str,
                      inferred: bool = False, outcome: str = "") -> None:
        st = c.cleanup[side]
        if st is None:
            return
        # cleanup states are inferred from the connection machine: a violation says more about us
        new, recs = advance(_CLEANUP_SPECS[side], st, inp, self._ctx(c, None, frame, ts, event, inferred, True))
        self._out.extend(recs)
        c.cleanup[side] = new
        if new is _R1 and st is _R2:  # M3: back to waiting; the original deadline still holds
            deadline = max(c.cleanup_deadline.get(side, ts), ts)
            c.cleanup_deadline[side] = deadline
            self._push(deadline, "cleanup", c.id, side, c.cleanup_gen[side])
        if new is _R3 and st is not _R3:
            label = next((r.label for r in recs if isinstance(r, Transition)), None) or "M1"
            self._out.append(CleanupEnded(frame, ts, c.session.id if c.session else None, c.id, c.cid, side,
                                          label, outcome, inferred, ts - c.cleanup_entered.get(side, ts)))
            if c.state[side] is _S8:  # §8.2: R1 is S8 and R3 is S1; the connection machine follows
                c.state[side] = _S1
                self._out.append(Transition(frame, ts, c.session.id if c.session else None, c.id, "connection",
                                            side, _S8.value, _S1.value, label,
                                            f"cleanup machine reached FREE ({label}: {event}); R3 is S1 (§8.2)",
                                            inferred))

    def _sess_step(self, s: _Session, side: str, inp: SessInput, frame: int, ts: int, event: str,
                   inferred: bool = False) -> bool:
        old = s.state[side]
        # session states are derived from connection states, often inferred (mid-stream, timeouts)
        new, recs = advance(_SESS_SPECS[side], old, inp, self._ctx(None, s, frame, ts, event, inferred, True))
        self._out.extend(recs)
        s.state[side] = new
        if new is not old:
            if not s.live():
                self._unindex(s)
            elif s.id not in self._open_sessions and s.id in self._sessions:
                self._open_sessions[s.id] = s
        return new is not old

    def _sess_both(self, s: _Session, inp: SessInput, frame: int, ts: int, event: str,
                   inferred: bool = False) -> None:
        for side in SIDES:
            self._sess_step(s, side, inp, frame, ts, event, inferred)

    def _settle(self, c: _Conn, frame: int, ts: int, cause: str) -> None:
        """Consequences of connection-state changes: cleanup machines, tasks, login end, session."""
        s = c.session
        for side in SIDES:
            if c.state[side] is _S8 and c.cleanup[side] is None:
                self._enter_cleanup(c, side, frame, ts, cause)
        left = all(c.state[side] in (_S1, _S8) for side in SIDES)
        if c.login is not None and not any(c.state[side] in (_S4, ConnState.UNKNOWN) for side in SIDES):
            self._login_failed(c, frame, ts, None, cause)
        if left:
            self._close_conn_tasks(c, frame, ts, c.end_outcome, c.end_note)
            if c.ended == "open":
                c.ended = "dropped"
        for side in SIDES:
            ffp = c.state[side] in FFP_STATES
            if ffp and not c.was_ffp[side]:
                c.was_ffp[side] = True
                if s is not None and s.state[side] is SessState.UNKNOWN:
                    self._identified(s, c, frame, ts)
                    self._sess_step(s, side, SessInput.CONN_LOGGED_IN, frame, ts,
                                    f"connection {c.id} seen in {c.state[side].value}", True)
            elif not ffp and c.was_ffp[side]:
                c.was_ffp[side] = False
                if s is not None:
                    self._session_lost_conn(s, side, c, frame, ts, cause)

    def _session_lost_conn(self, s: _Session, side: str, c: _Conn, frame: int, ts: int, cause: str) -> None:
        """§6.3.6: closure or failure when the last full-feature connection of a side is gone."""
        if any(x.state[side] in FFP_STATES for x in s.conns):
            return
        if s.state[side] not in (_Q3, SessState.UNKNOWN):
            return
        awaiting = any(x.cleanup[side] in (_R1, _R2) for x in s.conns)
        if c.closure and not awaiting:
            self._sess_step(s, side, SessInput.SESSION_CLOSED, frame, ts,
                            f"graceful closure: the last full-feature connection {c.id} was logged out "
                            f"({c.end_note or 'close the connection'})")
            s.ended = "logout"
        else:
            self._sess_step(s, side, SessInput.SESSION_FAILED, frame, ts,
                            f"last full-feature connection {c.id} left LOGGED_IN ({cause})")
            if s.ended == "open":  # a recovery logout (§6.3.6) fails the session too
                s.ended = "logout" if c.ended == "logout" else "connection_dropped"
            self._schedule_session_timeout(s, side, ts)

    def _enter_cleanup(self, c: _Conn, side: str, frame: int, ts: int, cause: str) -> None:
        c.cleanup[side] = _R1
        c.cleanup_entered[side] = ts
        c.cleanup_gen[side] += 1
        s = c.session
        if c.cleanup_override is not None:
            t2w, t2r, source = c.cleanup_override
        elif s is not None and s.params_known:
            t2w, t2r, source = s.time2wait, s.time2retain, s.t2_source
        else:
            t2w, t2r, source = self._t2w_default, self._t2r_default, "default"
        deadline = ts + (t2w + t2r) * _NS
        c.cleanup_deadline[side] = deadline
        open_tasks = sum(1 for t in s.tasks.values() if t.conn == c.id) if s is not None else 0
        self._out.append(CleanupDeadline(frame, ts, s.id if s else None, c.id, c.cid, side, t2w, t2r, source,
                                         deadline, open_tasks, cause))
        self._push(deadline, "cleanup", c.id, side, c.cleanup_gen[side])

    def _schedule_session_timeout(self, s: _Session, side: str, ts: int) -> None:
        s.deadline_gen[side] += 1
        deadline = ts + (s.time2wait + s.time2retain) * _NS
        for x in s.conns:
            if x.cleanup[side] in (_R1, _R2):
                deadline = max(deadline, x.cleanup_deadline.get(side, deadline))
        self._push(deadline, "session", s.id, side, s.deadline_gen[side])

    def _push(self, ts: int, kind: str, key: str, side: str, gen: int) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (ts, self._seq, kind, key, side, gen))

    def _fire_due(self, now: int) -> None:
        while self._heap and self._heap[0][0] <= now:
            ts, _, kind, key, side, gen = heapq.heappop(self._heap)
            frame = self._last_frame
            if kind == "cleanup":
                c = self._conns.get(key)
                if c is None or c.cleanup_gen[side] != gen or c.cleanup[side] is not _R1:
                    continue
                self._cleanup_step(c, side, CleanupInput.STATE_TIMEOUT, frame, ts,
                                   "connection state timeout: Time2Wait + Time2Retain elapsed", True, "timed_out")
                if c.session is not None:
                    self._maybe_session_timeout(c.session, side, frame, ts)
            else:
                s = self._sessions.get(key)
                if s is None or s.deadline_gen[side] != gen:
                    continue
                self._maybe_session_timeout(s, side, frame, ts)

    def _maybe_session_timeout(self, s: _Session, side: str, frame: int, ts: int) -> None:
        if s.state[side] is not _Q4:
            return
        if any(x.cleanup[side] in (_R1, _R2) or x.state[side] is _S4 for x in s.conns):
            return
        self._sess_step(s, side, SessInput.SESSION_TIMEOUT, frame, ts,
                        "session state timeout: no continuation within Time2Wait + Time2Retain", True)

    def _unindex(self, s: _Session) -> None:
        if not s.indexed:
            return
        s.indexed = False
        if s.isid is not None and s.tsih is not None and self._by_tsih.get((s.isid, s.tsih)) is s:
            del self._by_tsih[(s.isid, s.tsih)]
        if s.isid is not None:
            k = (s.initiator_name, s.isid, s.target_name)
            if self._by_nexus.get(k) is s:
                del self._by_nexus[k]

    def _index(self, s: _Session) -> None:
        if s.isid is None:
            return
        s.indexed = True
        if s.tsih:
            self._by_tsih[(s.isid, s.tsih)] = s
        self._by_nexus[(s.initiator_name, s.isid, s.target_name)] = s

    # ------------------------------------------------------------------ helpers: objects

    def _new_session(self, frame: int, ts: int, mid_stream: bool) -> _Session:
        self._sid_counter += 1
        sid = f"s{self._sid_counter}"
        init = SessState.UNKNOWN if mid_stream else _Q1
        s = _Session(sid, {"initiator": init, "target": init}, frame, ts, mid_stream,
                     last_frame=frame, last_ts=ts, time2wait=self._t2w_default, time2retain=self._t2r_default)
        self._sessions[sid] = s
        self._open_sessions[sid] = s
        return s

    def _attach(self, c: _Conn, s: _Session) -> None:
        c.session = s
        if c not in s.conns:
            s.conns.append(c)
        if s.id not in self._open_sessions and s.id in self._sessions:
            self._open_sessions[s.id] = s

    def _conn_for(self, r: TcpRecord | Pdu) -> _Conn:
        c = self._conns.get(r.conn)
        if c is None:
            c = _Conn(r.conn, r.frame, r.ts_ns, False, True,
                      {"initiator": ConnState.UNKNOWN, "target": ConnState.UNKNOWN})
            c.client, c.client_port, c.server, c.server_port = _parse_conn_id(r.conn)
            self._conns[r.conn] = c
            self._open_conns[r.conn] = c
        c.last_frame = max(c.last_frame, r.frame)
        c.last_ts = max(c.last_ts, r.ts_ns)
        return c

    def _session_of(self, c: _Conn, frame: int, ts: int) -> _Session:
        if c.session is None:
            self._attach(c, self._new_session(frame, ts, True))
        assert c.session is not None
        s = c.session
        s.last_frame = max(s.last_frame, frame)
        s.last_ts = max(s.last_ts, ts)
        return s

    def _seq_event(self, r: Pdu, s: _Session | None, kind: str, expected: int | None, observed: int | None,
                   detail: str, itt: int | None = None, phase: str | None = None) -> None:
        self._out.append(SequenceEvent(r.frame, r.ts_ns, s.id if s else None, r.conn, kind, expected, observed,
                                       detail, itt, phase))

    def _issues(self, c: _Conn, r: Record, issues: list[Issue]) -> None:
        sid = c.session.id if c.session else None
        for i in issues:
            self._out.append(NegotiationIssue(r.frame, r.ts_ns, sid, c.id, i.key, i.kind, i.offered_by, i.offer,
                                              i.answer, i.detail))

    def _emit_task(self, s: _Session, t: Task, rec: Record) -> None:
        c = self._conns.get(t.conn)
        if t.kind == "nop_in":
            if c is not None and t.ttt is not None and c.pings.get(t.ttt) is t:
                del c.pings[t.ttt]
        elif s.tasks.get(t.itt) is t:
            del s.tasks[t.itt]
        s.task_count += 1
        if c is not None:
            c.tasks += 1
        self._out.append(rec)

    @staticmethod
    def _unanswered(t: Task, outcome: str, cause: str | None) -> tuple[str, str | None]:
        """Outcome and cause of a task that got no response: a capture gap may hide the answer; a
        command outside the CmdSN window (§4.2.2.1) or sent after a Logout Request (§11.14) was
        never accepted; else ``outcome``."""
        if t.damaged:
            return "lost_in_capture_gap", "capture_gap"
        if t.cmdsn_cause is not None:
            return "not_accepted", t.cmdsn_cause
        if t.after_logout:
            return "not_accepted", "sent_after_logout_request"
        return outcome, cause

    def _end_unanswered(self, s: _Session, t: Task, frame: int, ts: int, outcome: str, cause: str | None,
                        note: str = "") -> None:
        out, why = self._unanswered(t, outcome, cause)
        self._emit_task(s, t, t.finish(frame, ts, out, note=note, cause=why))

    @staticmethod
    def _drop_cause(c: _Conn) -> str:
        if c.closed_by is None:
            return "connection_failed"
        side, how = c.closed_by
        return f"connection_{'reset' if how == 'rst' else 'closed'}_by_{side}"

    def _close_conn_tasks(self, c: _Conn, frame: int, ts: int, outcome: str, note: str) -> None:
        s = c.session
        if s is None:
            return
        cause = self._drop_cause(c) if outcome == "open_at_conn_drop" else (c.end_cause or "logout")
        for t in [t for t in s.tasks.values() if t.conn == c.id] + list(c.pings.values()):
            self._end_unanswered(s, t, frame, ts, outcome, cause, note)

    def _deviation(self, c: _Conn | None, s: _Session | None, frame: int, ts: int, kind: str, rfc: str,
                   detail: str, start_frame: int, *, side: str = "target", itt: int | None = None,
                   cid: int | None = None, expected: int | None = None, observed: int | None = None) -> None:
        sess = s if s is not None else (c.session if c is not None else None)
        self._out.append(Deviation(frame, ts, sess.id if sess else None, c.id if c else None, side, kind, rfc,
                                   detail, start_frame, itt, cid, expected, observed))

    def _identified(self, s: _Session, c: _Conn | None, frame: int, ts: int) -> None:
        """Emit SessionIdentified once per session (before the transitions of ``frame``)."""
        if s.identified:
            return
        s.identified = True
        stype = s.session_type or ("unknown" if s.mid_stream else "Normal")
        self._out.append(SessionIdentified(frame, ts, s.id, c.id if c else None, stype, _isid_hex(s.isid), s.tsih,
                                           s.tpgt, s.initiator_name, s.target_name, s.initiator_alias,
                                           s.target_alias, s.mid_stream))

    @staticmethod
    def _events(pdu: Pdu, what: str) -> dict[str, str]:
        """Per-side wording: the initiator sends I->T PDUs, the target receives them."""
        sender = "initiator" if pdu.direction == I2T else "target"
        return {side: f"{what} {'sent' if side == sender else 'received'} (frame {pdu.frame})" for side in SIDES}

    def _damage(self, c: _Conn, direction: str) -> None:
        c.lossy = True
        for p in c.pings.values():
            p.damaged = True
        if direction == I2T:
            c.lossy_i2t = True
        else:
            c.statsn.reseed()
            if c.session is not None:
                # Responses that moved the command window may be in the hole: the window we know
                # is stale, so CmdSN checks wait for the next ExpCmdSN/MaxCmdSN (§4.2.2.1).
                c.session.window = CmdWindow()
        if c.session is not None:
            for t in c.session.tasks.values():
                if t.conn == c.id:
                    t.damaged = True

    # ------------------------------------------------------------------ TCP

    def _tcp(self, r: TcpRecord) -> None:
        if isinstance(r, TcpOpened):
            if r.conn in self._conns:
                return
            c = self._conn_for(r)
            c.client, c.client_port, c.server, c.server_port = r.client, r.client_port, r.server, r.server_port
            if r.handshake:
                c.handshake, c.mid_stream = True, False
                c.state = {"initiator": _S1, "target": _S1}
                self._conn_step(c, "initiator", ConnInput.TRANSPORT_CONNECT_REQUESTED, r.frame, r.ts_ns,
                                "SYN sent: transport connect requested")
                self._conn_step(c, "initiator", ConnInput.TRANSPORT_ESTABLISHED, r.frame, r.ts_ns,
                                "TCP handshake completed: initiator starts login")
                self._conn_step(c, "target", ConnInput.TRANSPORT_ESTABLISHED, r.frame, r.ts_ns,
                                "TCP handshake completed: valid incoming connection")
            return
        if isinstance(r, TcpGap):
            gapped = self._conns.get(r.conn)
            # A snap-length cut loses no PDU (the framer skips cut data by its length; a cut
            # header shows as a FramingResync, which does count as damage).
            if gapped is not None and not r.snaplen:
                self._damage(gapped, r.direction)
            return
        if not isinstance(r, (TcpFin, TcpRst, TcpClosed)):
            return
        c = self._conn_for(r)
        if isinstance(r, TcpClosed):
            c.tcp_closed = True
            c.ltds.clear()  # nothing more can arrive: text still being rejoined is dropped (§6.1)
            c.ltds_answer = None
            if c.tcp_end is None or r.reason == "rst":
                c.tcp_end = r.reason
            if c.tcp_down:
                return
        else:
            c.tcp_end = "rst" if isinstance(r, TcpRst) else (c.tcp_end or "fin")
        inp = connection.classify_tcp(r)
        if inp is None:
            return
        c.tcp_down = True
        rst = inp is ConnInput.TRANSPORT_RESET
        by: str | None = None
        if isinstance(r, TcpClosed):
            what = f"transport {'reset' if rst else 'disconnect'} (connection closed)"
        else:
            by = "initiator" if r.direction == I2T else "target"
            what = f"{'RST' if rst else 'FIN'} from the {by}"
            if c.closed_by is None:
                c.closed_by = (by, "rst" if rst else "fin")
        if c.pending is not None and self._resolve_pending(c, r.frame, r.ts_ns, f"{what} (frame {r.frame})",
                                                           False, inp, by):
            return
        if by == "target" and any(c.state[side] in FFP_STATES for side in SIDES):
            self._dropped_on_request(c, r.frame, r.ts_ns, rst)
            if self._closed_for_reinstatement(c, r.frame, r.ts_ns, inp, what):
                return
        self._conn_both(c, inp, r.frame, r.ts_ns, {side: what for side in SIDES})

    def _closed_for_reinstatement(self, c: _Conn, frame: int, ts: int, inp: ConnInput, what: str) -> bool:
        """The target closed a connection of a session whose reinstatement login is running: the
        implicit logout of the old session (§6.3.5; target T8 "successful reinstatement"), done as
        soon as the login began (tgtd does this) rather than when it succeeds."""
        s = c.session
        x = self._reinstating.get(s.id) if s is not None else None
        if s is None or x is None or x.login is None:
            return False
        by = x.session.id if x.session is not None else "?"
        ev_t = (f"{what}: the target closed the old session's connection for the session reinstatement login "
                f"on {x.id} (frame {x.login.start_frame}), an implicit logout (§6.3.5)")
        c.closure = True
        c.end_outcome, c.end_note, c.end_cause = "terminated_by_logout", f"session reinstated by {by}", "reinstatement"
        self._conn_step(c, "target", ConnInput.REINSTATEMENT_SUCCEEDED, frame, ts, ev_t)
        self._conn_step(c, "initiator", inp, frame, ts, what)
        self._settle(c, frame, ts, ev_t)
        return True

    def _dropped_on_request(self, c: _Conn, frame: int, ts: int, rst: bool) -> None:
        """The target closes a connection right after one request it did not answer: its answer to it."""
        s = c.session
        if s is None or c.last_pdu_dir != I2T:
            return
        open_ = [t for t in s.tasks.values() if t.conn == c.id]
        if len(open_) != 1:
            return
        t = open_[0]
        if t.kind not in ("scsi", "text", "tmf", "nop") or c.last_t2i_frame >= t.first_frame or t.damaged:
            return
        if ts - t.start_ts_ns > _NS:
            return
        name = {"scsi": t.cdb_name or "SCSI Command", "text": "Text Request", "tmf": "Task Management Request",
                "nop": "NOP-Out ping"}[t.kind]
        detail = (f"the target {'reset (RST)' if rst else 'closed (FIN)'} the connection "
                  f"{(ts - t.start_ts_ns) / 1e6:.1f} ms after the {name} (ITT {t.itt:#x}, frame {t.first_frame}), "
                  f"the only outstanding request, without answering it")
        if t.cmdsn_cause is not None:
            where = "below ExpCmdSN (stale)" if t.cmdsn_cause == "cmdsn_below_window" else "above MaxCmdSN"
            detail += (f": its CmdSN {t.cmdsn} was {where}, and RFC 7143 §4.2.2.1 says the target must silently "
                       f"ignore such a command, not drop the connection")
            rfc = "§4.2.2.1"
        elif t.kind == "text":
            detail += (": RFC 7143 §11.10 allows Text Requests in full feature phase; a target that cannot "
                       "handle one should answer it or reject it (§11.17)")
            rfc = "§11.10, §11.17"
        else:
            detail += " or sending a Reject (§11.17)"
            rfc = "§11.17"
        self._deviation(c, s, frame, ts, "connection_dropped_on_request", rfc, detail, t.first_frame, itt=t.itt,
                        cid=c.cid)

    # ------------------------------------------------------------------ pending closes

    def _resolve_pending(self, c: _Conn, frame: int, ts: int, how: str, inferred: bool,
                         inp: ConnInput | None, by: str | None) -> bool:
        """Apply ``c.pending`` (its TCP connection closed, or the capture ended). False: not applied."""
        p = c.pending
        c.pending = None
        if p is None or (p.kind == "carrier_logout" and by != "target"):
            return False
        ev = {side: f"{p.what}; {how}" for side in SIDES}
        if p.kind == "close_session":
            c.closure = True
            c.end_outcome, c.end_note, c.end_cause = "terminated_by_logout", "close the session", "logout"
            for side in SIDES:
                if c.state[side] in FFP_STATES or c.state[side] in (ConnState.S2_XPT_WAIT, _S4):
                    self._conn_step(c, side, ConnInput.OTHER_CONN_CLOSE_SESSION, frame, ts, ev[side], inferred)
            if c.ended in ("open", "dropped"):
                c.ended = "session_closed"
        elif p.kind in ("named_logout", "carrier_logout"):
            c.closure = p.reason == 1
            c.end_outcome, c.end_note, c.end_cause = "terminated_by_logout", LOGOUT_REASON.get(p.reason, ""), "logout"
            for side in SIDES:
                if c.state[side] in (ConnState.S5_LOGGED_IN, ConnState.S7_LOGOUT_REQUESTED):
                    self._conn_step(c, side, ConnInput.LOGOUT_REQUEST, frame, ts,
                                    f"{p.what}, taken as closing this connection", True)
                if c.state[side] is ConnState.S6_IN_LOGOUT:
                    self._conn_step(c, side, ConnInput.LOGOUT_RESPONSE_OK, frame, ts, ev[side], True)
            c.ended = "logout"
            if p.kind == "carrier_logout":
                cid = f"CID {c.cid}" if c.cid is not None else "the carrier"
                self._deviation(c, None, frame, ts, "logout_closed_wrong_connection", "§11.14",
                                f"the target closed the connection that carried the Logout ({cid}) after {p.what}; "
                                f"a Logout naming another CID closes that connection only, the carrier stays up",
                                p.frame, cid=p.cid, expected=p.cid, observed=c.cid)
        else:  # conn_reinstated, sess_reinstated
            sess = p.kind == "sess_reinstated"
            c.closure = sess
            c.end_outcome, c.end_cause = "terminated_by_logout", "reinstatement"
            c.end_note = f"session reinstated by {p.by}" if sess else "implicit logout by connection reinstatement"
            if c.state["target"] not in (_S1, _S8, ConnState.UNKNOWN):
                self._conn_step(c, "target", ConnInput.REINSTATEMENT_SUCCEEDED, frame, ts, ev["target"], inferred)
            if c.state["initiator"] in FFP_STATES:
                if inp is None:  # no wire event: the initiator must have considered it failed (§6.3.4/§6.3.5)
                    self._conn_step(c, "initiator", ConnInput.TRANSPORT_TIMEOUT, frame, ts,
                                    f"{p.what}: the initiator must have considered this connection failed", True)
                else:
                    self._conn_step(c, "initiator", inp, frame, ts, how, inferred)
            self._settle(c, frame, ts, ev["target"])
            for side in SIDES:
                if c.cleanup[side] is not _R1:
                    continue
                if sess:
                    self._cleanup_step(c, side, CleanupInput.CLOSE_SESSION_SUCCESS, frame, ts, ev[side], inferred,
                                       "session_reinstated")
                else:
                    self._cleanup_step(c, side, CleanupInput.CLEANUP_STARTED, frame, ts, ev[side], True)
                    self._cleanup_step(c, side, CleanupInput.CLEANUP_SUCCEEDED, frame, ts, ev[side], inferred,
                                       "reinstated")
            c.ended = "reinstated"
            if not sess:
                c.reinstated_by = p.by
        self._settle(c, frame, ts, ev["target"])
        old = c.session
        if p.kind == "sess_reinstated" and old is not None and not any(x.pending for x in old.conns):
            self._complete_session_reinstatement(old, p.by or "?", frame, ts, p.what, inferred)
        return True

    def _pending_pdu(self, c: _Conn, pdu: Pdu) -> None:
        """A PDU on a connection with a pending close: the target kept it (a Deviation), or the
        carrier of a logout for another CID goes on."""
        p = c.pending
        if p is None:
            return
        if p.kind == "carrier_logout":
            c.pending = None
            return
        if pdu.direction != T2I:
            return  # the initiator's requests are request_after_logout; the target decides
        c.pending = None
        if not any(c.state[side] in FFP_STATES for side in SIDES):
            return
        name = _PDU_NAMES.get(type(pdu).__name__, "PDU")
        cid = f"CID {c.cid}" if c.cid is not None else "this connection"
        sent = f"it sent a {name} on it (frame {pdu.frame})"
        if p.kind == "close_session":
            kind, rfc = "close_session_left_connection_open", "§11.14"
            detail = (f"the target kept {cid} in full feature phase after {p.what}: {sent}; a successful "
                      f"close-session Logout ends every connection of the session")
        elif p.kind == "named_logout":
            kind, rfc = "logout_closed_wrong_connection", "§11.14"
            detail = (f"the target kept {cid} in full feature phase after {p.what}: {sent}; the named connection "
                      f"should have been closed")
        elif p.kind == "conn_reinstated":
            kind, rfc = "duplicate_cid_in_session", "§6.3.4"
            detail = (f"the target kept the old {cid} connection in full feature phase after {p.what}: {sent}; "
                      f"the session now has two connections with {cid} (a connection reinstatement logs the old "
                      f"connection out implicitly)")
        else:
            kind, rfc = "reinstated_session_left_open", "§6.3.5"
            detail = (f"the target kept this connection of the old session in full feature phase after {p.what}: "
                      f"{sent}; a session reinstatement logs the old session out implicitly")
        self._deviation(c, None, pdu.frame, pdu.ts_ns, kind, rfc, detail, p.frame, cid=c.cid)

    # ------------------------------------------------------------------ PDUs

    def _pdu(self, pdu: Pdu) -> None:
        c = self._conn_for(pdu)
        c.pdus += 1
        if c.pending is not None:
            self._pending_pdu(c, pdu)
        if pdu.direction == T2I:
            c.last_t2i_frame = pdu.frame
        c.last_pdu_frame, c.last_pdu_dir = pdu.frame, pdu.direction
        if isinstance(pdu, LoginRequest):
            self._login_request(c, pdu)
            return
        if isinstance(pdu, LoginResponse):
            self._login_response(c, pdu)
            return
        s = self._session_of(c, pdu.frame, pdu.ts_ns)
        self._check_dsl(c, s, pdu)
        if pdu.direction == I2T:
            self._request(c, s, pdu)
        else:
            self._response(c, s, pdu)

    def _check_dsl(self, c: _Conn, s: _Session | None, pdu: Pdu) -> None:
        """§13.12: a data segment must not exceed what the receiver declared."""
        if c.login is not None or isinstance(pdu, (LoginRequest, LoginResponse)):
            limit, who, phase = 8192, "default (login phase) MaxRecvDataSegmentLength 8192 [unverified]", "login"
        elif c.params_known:
            limit = c.mrdsl_target if pdu.direction == I2T else c.mrdsl_initiator
            who = f"the {'target' if pdu.direction == I2T else 'initiator'}'s MaxRecvDataSegmentLength"
            phase = "ffp"
        else:
            return
        if pdu.dsl > limit:
            self._seq_event(pdu, s, "max_recv_dsl_exceeded", limit, pdu.dsl,
                            f"{_PDU_NAMES.get(type(pdu).__name__, 'PDU')} DataSegmentLength {pdu.dsl} > {who}",
                            pdu.itt, phase)

    # ---------------------------------------------------------------- login

    def _login_request(self, c: _Conn, pdu: LoginRequest) -> None:
        keys = _keys(pdu.keys)
        new_phase = c.login is None and any(c.state[side] in (ConnState.S3_XPT_UP, _S4, ConnState.UNKNOWN)
                                            for side in SIDES)
        if new_phase:
            if c.state["target"] is ConnState.UNKNOWN:
                c.mid_stream = False  # the login is in the capture: identity is known
            self._ltds_end(c, pdu, "the initiator began a new login")
            self._begin_login(c, pdu, keys)
        s = c.session
        if s is not None:
            s.last_frame, s.last_ts = pdu.frame, pdu.ts_ns
        self._check_dsl(c, s, pdu)
        self._conn_both(c, ConnInput.LOGIN_REQUEST, pdu.frame, pdu.ts_ns,
                        self._events(pdu, "Login Request"), settle=False)
        if new_phase and c.login is not None and s is not None:
            ev = f"connection {c.id} entered IN_LOGIN ({c.login.kind} login, frame {pdu.frame})"
            self._sess_both(s, SessInput.LOGIN_STARTED, pdu.frame, pdu.ts_ns, ev)
            self._start_reinstatement_cleanup(c, pdu)
            t = Task(s.id, c.id, pdu.itt, "login", pdu.first_frame, pdu.ts_ns, True, pdu.cmdsn, None)
            s.tasks[pdu.itt] = t
        if c.login is not None:
            joined = self._ltds(c, s, pdu)
            if joined is not None:
                if joined is not pdu.keys:  # the text spanned C-bit PDUs: names may come only now
                    self._joined_identity(c, _keys(joined))
                self._issues(c, pdu, c.login.neg.feed("initiator", joined))
            if s is not None and (lt := s.tasks.get(c.login.itt)) is not None:
                lt.touch(pdu.frame, pdu.ts_ns)
        self._settle(c, pdu.frame, pdu.ts_ns, "Login Request")

    # ---------------------------------------------------------------- text split across PDUs (§6.1)

    def _ltds(self, c: _Conn, s: _Session | None,
              pdu: LoginRequest | LoginResponse | TextRequest | TextResponse) -> tuple[tuple[str, str], ...] | None:
        """The keys of the logical text data segment (§6.1) this Login/Text PDU completes -- its own
        keys when no C-bit series is open -- or None while its sender's text goes on. Checks the
        continuation rules on the way (§6.1, §6.2, C bit of §11.10-§11.13) as Deviation records."""
        side = "initiator" if pdu.direction == I2T else "target"
        name = _PDU_NAMES[type(pdu).__name__]
        login = isinstance(pdu, (LoginRequest, LoginResponse))
        for direction, other in c.ltds.items():  # a PDU of another exchange ends any series still going on
            if other.open and other.tag != pdu.itt:
                self._ltds_abandoned(c, s, pdu, other, "initiator" if direction == I2T else "target",
                                     f"the {side} began another exchange (ITT {pdu.itt:#x}, {name} of frame "
                                     f"{pdu.frame})")
        owed = c.ltds_answer
        if owed is not None:
            # Only the peer's next PDU of the exchange answers a C=1 PDU; if the sender goes on first, the
            # answer is not in the capture (or never came): nothing to check.
            c.ltds_answer = None
            if owed[0] == pdu.direction and pdu.dsl and pdu.itt == owed[2]:
                self._deviation(c, s, pdu.frame, pdu.ts_ns, "text_continuation_answer_not_empty", "§6.2",
                                f"the {side} answered the C=1 PDU of frame {owed[1]} with a {name} carrying "
                                f"{pdu.dsl} bytes of text; a PDU whose text continues must be answered by one "
                                f"without data", owed[1], side=side, itt=pdu.itt)
        more = pdu.cont
        last = pdu.transit if isinstance(pdu, (LoginRequest, LoginResponse)) else pdu.final
        if pdu.cont and last:
            bit, rfc = ("T", "§11.12" if pdu.direction == I2T else "§11.13") if login else \
                ("F", "§11.10" if pdu.direction == I2T else "§11.11")
            self._deviation(c, s, pdu.frame, pdu.ts_ns, "text_continue_with_final", rfc,
                            f"{name} with both the C and the {bit} bit set; a PDU whose text continues must have "
                            f"{bit}=0 (its text is joined with the next {name})", pdu.frame, side=side, itt=pdu.itt)
        elif not pdu.cont and not login and not pdu.final and pdu.text and pdu.text[-1] != 0:
            more = True  # tgtd cuts long SendTargets replies anywhere and continues them with F=0 only
            cut = len(text_tail(pdu.text))
            self._deviation(c, s, pdu.frame, pdu.ts_ns, "text_split_without_continue", "§6.1",
                            f"{name} with F=0 ends inside a key=value pair ({cut} bytes after its last NUL) "
                            f"without the C bit; only a C=1 PDU may split a pair. "
                            f"Its text is joined with the next {name} of the exchange", pdu.frame, side=side,
                            itt=pdu.itt)
        j = c.ltds.get(pdu.direction)
        if j is None:
            if not more:
                return pdu.keys
            j = c.ltds[pdu.direction] = TextJoiner()
        keys, breaks = j.feed(pdu.text, pdu.keys, pdu.dsl, more, pdu.frame, pdu.itt)
        for b in breaks:
            self._deviation(c, s, pdu.frame, pdu.ts_ns, b.kind, b.rfc, b.detail, b.start_frame, side=side,
                            itt=pdu.itt)
        if pdu.cont:
            c.ltds_answer = (T2I if pdu.direction == I2T else I2T, pdu.frame, pdu.itt)
        return keys

    def _ltds_abandoned(self, c: _Conn, s: _Session | None, pdu: Pdu, j: TextJoiner, owner: str, why: str) -> None:
        # The deviation is on the sender of ``pdu``, the PDU that ended the series early.
        self._deviation(c, s, pdu.frame, pdu.ts_ns, "text_continuation_abandoned", "§6.1",
                        f"the {owner}'s key=value text announced more with the C bit ({j.pdus} PDU(s) from frame "
                        f"{j.first_frame}) but {why} before it ended; that text is dropped", j.first_frame,
                        side="initiator" if pdu.direction == I2T else "target", itt=j.tag)
        j.reset()

    def _ltds_end(self, c: _Conn, pdu: Pdu, why: str) -> None:
        """The login phase or Text exchange is over (``pdu`` ended it): no text may still be
        continuing (§6.1)."""
        for direction, j in list(c.ltds.items()):
            if j.open:
                self._ltds_abandoned(c, c.session, pdu, j, "initiator" if direction == I2T else "target",
                                     f"{why} (frame {pdu.frame})")
        c.ltds.clear()
        c.ltds_answer = None

    def _joined_identity(self, c: _Conn, keys: dict[str, str]) -> None:
        """Names the first Login Request did not carry whole because its text continued in later
        PDUs (§6.1) complete the login's identity, as ``_begin_login`` would have used them."""
        login, s = c.login, c.session
        if login is None or s is None:
            return
        iname, tname, stype = keys.get("InitiatorName"), keys.get("TargetName"), keys.get("SessionType")
        if login.kind not in ("leading", "session_reinstatement") or login.tsih != 0:
            if s.initiator_name is None and iname:
                s.initiator_name = iname
            return
        if stype:
            s.session_type = stype
        if (s.initiator_name or not iname) and (s.target_name or not tname):
            return
        self._unindex(s)
        s.initiator_name, s.target_name = s.initiator_name or iname, s.target_name or tname
        if login.old_session is None:  # §6.3.5: the same InitiatorName, ISID and TargetName as a live session
            old = self._by_nexus.get((s.initiator_name, login.isid, s.target_name))
            if old is not None and old is not s:
                if old.live():
                    login.kind, login.old_session = "session_reinstatement", old
                    login.old_states = {side: old.state[side].value for side in SIDES}
                    self._reinstating[old.id] = c
                else:
                    self._unindex(old)
        self._index(s)

    def _begin_login(self, c: _Conn, pdu: LoginRequest, keys: dict[str, str]) -> None:
        iname, tname = keys.get("InitiatorName"), keys.get("TargetName")
        stype = keys.get("SessionType")
        login = _Login(pdu.itt, pdu.isid, pdu.tsih, pdu.cid, "leading", pdu.frame, pdu.ts_ns)
        c.cid = pdu.cid
        if pdu.tsih == 0:
            old = self._by_nexus.get((iname, pdu.isid, tname))
            if old is not None and old.live():
                login.kind, login.old_session = "session_reinstatement", old
                login.old_states = {side: old.state[side].value for side in SIDES}
                self._reinstating[old.id] = c
            s = self._new_session(pdu.frame, pdu.ts_ns, False)
            s.isid, s.initiator_name, s.target_name = pdu.isid, iname, tname
            s.session_type = stype or "Normal"
            c.role = "leading"
            if old is not None and login.old_session is None:
                self._unindex(old)
            self._index(s)
        else:
            found = self._by_tsih.get((pdu.isid, pdu.tsih))
            if found is None:
                s = self._new_session(pdu.frame, pdu.ts_ns, True)
                s.isid, s.tsih, s.initiator_name, s.target_name = pdu.isid, pdu.tsih, iname, tname
                login.kind, c.role = "unknown", "added"
                self._index(s)
            else:
                s = found
                old_c = next((x for x in reversed(s.conns) if x is not c and x.cid == pdu.cid
                              and (any(x.state[sd] not in (_S1, _S8) for sd in SIDES)
                                   or any(x.cleanup[sd] in (_R1, _R2) for sd in SIDES))
                              and x.ended not in ("logout", "session_closed", "reinstated")), None)
                if old_c is not None:
                    login.kind, login.old_conn, c.role = "connection_reinstatement", old_c, "reinstatement"
                    login.old_states = {side: old_c.state[side].value for side in SIDES}
                    c.reinstates = old_c.id
                elif s.state["target"] is _Q4 or s.state["initiator"] is _Q4:
                    login.kind, c.role = "continuation", "added"
                else:
                    login.kind, c.role = "added", "added"
                if s.initiator_name is None:
                    s.initiator_name = iname
        c.login = login
        self._attach(c, s)

    def _start_reinstatement_cleanup(self, c: _Conn, pdu: LoginRequest) -> None:
        """§6.3.4 / §8.2: a connection-reinstatement login starts CSM-I for the old connection (M2)."""
        login = c.login
        if login is None or login.old_conn is None:
            return
        old = login.old_conn
        if any(old.state[side] in FFP_STATES for side in SIDES):
            # The old connection still looks alive. §6.3.4 implies the initiator considers it failed,
            # but whether it really goes away is decided by its own wire (see _conn_reinstated).
            return
        for side in SIDES:
            if old.cleanup[side] is _R1:
                self._cleanup_step(old, side, CleanupInput.CLEANUP_STARTED, pdu.frame, pdu.ts_ns,
                                   f"CSM-I: reinstatement Login {'sent' if side == 'initiator' else 'received'} "
                                   f"on {c.id} (frame {pdu.frame})")

    def _login_response(self, c: _Conn, pdu: LoginResponse) -> None:
        if c.login is None and any(c.state[side] in (_S4, ConnState.UNKNOWN) for side in SIDES):
            self._adopt_login(c, pdu)
        s = c.session
        if s is None:
            s = self._session_of(c, pdu.frame, pdu.ts_ns)
        s.last_frame, s.last_ts = pdu.frame, pdu.ts_ns
        self._check_dsl(c, s, pdu)
        login = c.login
        task = s.tasks.get(pdu.itt)
        if login is not None:
            if pdu.itt != login.itt:
                self._seq_event(pdu, s, "unexpected_response", login.itt, pdu.itt,
                                "Login Response ITT differs from the login's ITT", pdu.itt)
            joined = self._ltds(c, s, pdu)
            if joined is not None:
                self._issues(c, pdu, login.neg.feed("target", joined))
                keys = _keys(joined)
                if "TargetPortalGroupTag" in keys and login.kind in ("leading", "session_reinstatement", "unknown"):
                    try:
                        s.tpgt = int(keys["TargetPortalGroupTag"], 0)
                    except ValueError:
                        pass
                if "TargetAlias" in keys:
                    s.target_alias = keys["TargetAlias"]
        if pdu.status_class == 0:  # numbering fields are valid only for class 0 (§11.13)
            gap = c.statsn.advance(pdu.statsn)
            if gap is not None:
                self._seq_event(pdu, s, "statsn_gap", gap, pdu.statsn, "Login Response StatSN jumped", pdu.itt)
            s.window.update(pdu.expcmdsn, pdu.maxcmdsn)
        inp = connection.classify_pdu(pdu, own_cid=c.cid, logout_for_self=True)
        if inp is ConnInput.LOGIN_RESPONSE_FINAL_OK:
            self._login_ok(c, s, pdu, task)
        elif inp is ConnInput.LOGIN_RESPONSE_REJECT:
            name = login_status_name(pdu.status_class, pdu.status_detail)
            ev = self._events(pdu, f"Login Response Status-Class {pdu.status_class} ({name})")
            c.login_status = (pdu.status_class, pdu.status_detail)
            self._conn_both(c, inp, pdu.frame, pdu.ts_ns, ev, settle=False)
            self._login_failed(c, pdu.frame, pdu.ts_ns, pdu, ev["target"])
            self._settle(c, pdu.frame, pdu.ts_ns, ev["target"])
        else:
            if task is not None:
                task.touch(pdu.frame, pdu.ts_ns)
            self._conn_both(c, ConnInput.LOGIN_RESPONSE_PARTIAL, pdu.frame, pdu.ts_ns,
                            self._events(pdu, "Login Response (not final)"))

    def _adopt_login(self, c: _Conn, pdu: LoginResponse) -> None:
        """Capture began inside a login phase: take identity from the response."""
        login = _Login(pdu.itt, pdu.isid, pdu.tsih, c.cid or 0, "unknown", pdu.frame, pdu.ts_ns)
        s = self._by_tsih.get((pdu.isid, pdu.tsih)) if pdu.tsih else None
        if s is None:
            s = c.session or self._new_session(pdu.frame, pdu.ts_ns, True)
            s.isid = pdu.isid
        c.login = login
        self._attach(c, s)
        t = Task(s.id, c.id, pdu.itt, "login", pdu.first_frame, pdu.ts_ns, True, None, None, partial=True)
        s.tasks.setdefault(pdu.itt, t)

    def _login_ok(self, c: _Conn, s: _Session, pdu: LoginResponse, task: Task | None) -> None:
        login = c.login
        neg = login.neg if login is not None else Negotiation()
        self._issues(c, pdu, neg.close())
        leading = login is not None and login.kind in ("leading", "session_reinstatement")
        if pdu.tsih and (s.tsih is None or leading):
            self._unindex(s)
            s.tsih = pdu.tsih
            if s.isid is None:
                s.isid = pdu.isid
            self._index(s)
        if login is not None:
            # Connection parameters (§13.1, §13.12): digests and MaxRecvDataSegmentLength each way.
            c.header_digest, c.data_digest = neg.digest("HeaderDigest"), neg.digest("DataDigest")
            c.mrdsl_initiator, c.mrdsl_target = neg.max_recv_dsl("initiator"), neg.max_recv_dsl("target")
            c.params = {k: v for k in CONNECTION_PARAMS if (v := neg.value(k)) is not None}
            c.params["AuthMethod"] = neg.auth_method()
            c.params["MaxRecvDataSegmentLength_initiator"] = str(c.mrdsl_initiator)
            c.params["MaxRecvDataSegmentLength_target"] = str(c.mrdsl_target)
            c.params["chap_used"] = "Yes" if neg.chap_used else "No"
            if neg.chap_used:
                c.params["chap_mutual"] = "Yes" if neg.chap_mutual else "No"
                if neg.chap_algorithm:
                    c.params["chap_algorithm"] = neg.chap_algorithm
            c.params_known = True
            if leading:
                s.params = {k: v for k in SESSION_PARAMS if (v := neg.value(k)) is not None}
                s.params["AuthMethod"] = c.params["AuthMethod"]
                s.params["chap_used"] = c.params["chap_used"]
                s.params_known = True
                s.session_type = neg.declared_by("initiator", "SessionType") or s.session_type or "Normal"
                s.initiator_alias = neg.declared_by("initiator", "InitiatorAlias") or s.initiator_alias
                s.target_alias = neg.declared_by("target", "TargetAlias") or s.target_alias
                for key, attr in (("DefaultTime2Wait", "time2wait"), ("DefaultTime2Retain", "time2retain")):
                    if key in neg.results:
                        try:
                            setattr(s, attr, int(neg.results[key], 0))
                            s.t2_source = "negotiated"
                        except ValueError:
                            pass
        if login is not None and login.kind in ("leading", "session_reinstatement", "unknown"):
            self._identified(s, c, pdu.frame, pdu.ts_ns)
        ev = self._events(pdu, "final Login Response, Status-Class 0,")
        self._conn_both(c, ConnInput.LOGIN_RESPONSE_FINAL_OK, pdu.frame, pdu.ts_ns, ev, settle=False)
        c.login_status = (0, 0)
        if any(c.state[side] is ConnState.S5_LOGGED_IN for side in SIDES):
            self._sess_both(s, SessInput.CONN_LOGGED_IN, pdu.frame, pdu.ts_ns,
                            f"connection {c.id} reached LOGGED_IN (frame {pdu.frame})")
        if login is not None:
            self._out.append(ConnectionParams(pdu.frame, pdu.ts_ns, c.id, c.header_digest, c.data_digest,
                                              c.mrdsl_initiator, c.mrdsl_target))
        if task is not None:
            self._emit_task(s, task, task.finish(pdu.frame, pdu.ts_ns, "completed", login_status=(0, 0),
                                                 response_name="Success"))
        c.login = None
        self._ltds_end(c, pdu, "the target ended the login phase")
        if login is not None:
            if login.old_conn is not None:
                self._conn_reinstated(c, login, pdu)
            if login.old_session is not None:
                self._reinstating.pop(login.old_session.id, None)
                self._session_reinstated(c, s, login, pdu)
        self._settle(c, pdu.frame, pdu.ts_ns, ev["target"])

    def _login_failed(self, c: _Conn, frame: int, ts: int, pdu: LoginResponse | None, cause: str) -> None:
        login, s = c.login, c.session
        c.login = None
        if pdu is not None:
            self._ltds_end(c, pdu, "the target failed the login")
        if login is None or s is None:
            return
        ev = f"login on {c.id} failed ({cause})"
        self._sess_both(s, SessInput.LOGIN_FAILED, frame, ts, ev)
        if login.kind in ("leading", "session_reinstatement") and s.ended == "open":
            s.ended = "login_failed"
        c.ended = "login_failed"
        task = s.tasks.get(login.itt)
        if task is not None:
            if pdu is not None:
                self._emit_task(s, task, task.finish(
                    frame, ts, "failed", login_status=(pdu.status_class, pdu.status_detail),
                    response=pdu.status_class << 8 | pdu.status_detail,
                    response_name=login_status_name(pdu.status_class, pdu.status_detail)))
            else:
                self._end_unanswered(s, task, frame, ts, "open_at_conn_drop", self._drop_cause(c), cause)
        if login.old_conn is not None:
            old = login.old_conn
            for side in SIDES:
                if old.cleanup[side] is _R2:
                    self._cleanup_step(old, side, CleanupInput.CLEANUP_FAILED, frame, ts,
                                       f"CSM-I: reinstatement login on {c.id} ended in FREE")
                elif side == "target" and old.state[side] in FFP_STATES:
                    self._conn_step(old, side, ConnInput.REINSTATEMENT_FAILED, frame, ts,
                                    f"connection reinstatement on {c.id} failed")
            self._settle(old, frame, ts, "failed reinstatement")
            self._out.append(self._reinst_record(c, login, frame, ts, "failed"))
        if pdu is not None and (pdu.status_class, pdu.status_detail) == (2, 0x0A) and login.kind != "leading":
            self._session_gone(s, frame, ts, pdu)
        if login.old_session is not None:
            old_s = login.old_session
            self._reinstating.pop(old_s.id, None)
            for x in old_s.conns:
                if x.state["target"] in FFP_STATES:
                    self._conn_step(x, "target", ConnInput.REINSTATEMENT_FAILED, frame, ts,
                                    f"session reinstatement by {s.id} failed")
                    self._settle(x, frame, ts, "failed session reinstatement")
            self._out.append(self._reinst_record(c, login, frame, ts, "failed"))
            if old_s.live():
                self._index(old_s)
        if s.mid_stream is False and s.state["target"] is _Q1 and s.state["initiator"] is _Q1:
            self._unindex(s)

    def _session_gone(self, s: _Session, frame: int, ts: int, pdu: LoginResponse) -> None:
        """Login Status 0x020a "Session does not exist" for a session we thought FAILED (or alive):
        the target has discarded it and its connections' state (§11.13.5); its side is FREE."""
        why = (f"the target answered Login Status 0x020a ({LOGIN_STATUS[0x020A]}) at frame {pdu.frame}: "
               f"it no longer has this session")
        for x in s.conns:
            if x.cleanup["target"] is _R2:
                self._cleanup_step(x, "target", CleanupInput.CLEANUP_FAILED, frame, ts, why)
            if x.cleanup["target"] is _R1:
                self._cleanup_step(x, "target", CleanupInput.STATE_TIMEOUT, frame, ts,
                                   f"{why}; its connection state was discarded", True, "discarded")
        if s.state["target"] is SessState.Q5_IN_CONTINUE:
            self._sess_step(s, "target", SessInput.LOGIN_FAILED, frame, ts, why)
        if s.state["target"] is _Q4:
            self._sess_step(s, "target", SessInput.SESSION_TIMEOUT, frame, ts, f"{why}: session state discarded",
                            True)

    def _reinst_record(self, c: _Conn, login: _Login, frame: int, ts: int, outcome: str) -> Reinstatement:
        kind = "connection" if login.old_conn is not None else "session"
        old_s = login.old_session.id if login.old_session is not None else (
            c.session.id if c.session is not None else None)
        return Reinstatement(frame, ts, kind, outcome, c.session.id if c.session else None, old_s, c.id,
                             login.old_conn.id if login.old_conn is not None else None,
                             _isid_hex(login.isid) or "", login.tsih, login.cid, login.start_frame, login.start_ts,
                             login.old_states.get("initiator"), login.old_states.get("target"))

    def _conn_reinstated(self, c: _Conn, login: _Login, pdu: LoginResponse) -> None:
        """§6.3.4: the old connection is implicitly logged out; CSM-I succeeded (M4).

        An old connection still in full feature phase gets a pending close (target T8, initiator
        T15 + M2/M4), applied when its TCP connection closes; if the target keeps answering on it
        instead, the session has two connections with one CID (a Deviation).
        """
        old = login.old_conn
        assert old is not None
        if any(old.state[side] in FFP_STATES for side in SIDES):
            old.pending = _Pending("conn_reinstated", pdu.frame, pdu.ts_ns, c.id,
                                   f"the successful connection reinstatement of CID {login.cid} on {c.id} "
                                   f"(frame {pdu.frame})", by=c.id)
            old.no_new_requests = (f"on a connection replaced by the connection reinstatement on {c.id} "
                                   f"(frame {pdu.frame}) (§6.3.4)")
            self._out.append(self._reinst_record(c, login, pdu.frame, pdu.ts_ns, "succeeded"))
            return
        old.end_outcome, old.end_note = "terminated_by_logout", "implicit logout by connection reinstatement"
        old.end_cause = "reinstatement"
        for side in SIDES:
            if old.cleanup[side] in (_R1, _R2):
                if old.cleanup[side] is _R1:  # reinstatement started before we saw the drop
                    self._cleanup_step(old, side, CleanupInput.CLEANUP_STARTED, pdu.frame, pdu.ts_ns,
                                       f"CSM-I: reinstatement login on {c.id}", True)
                self._cleanup_step(old, side, CleanupInput.CLEANUP_SUCCEEDED, pdu.frame, pdu.ts_ns,
                                   f"CSM-I: reinstatement on {c.id} reached LOGGED_IN", outcome="reinstated")
            elif side == "target" and old.state[side] not in (_S1, _S8, ConnState.UNKNOWN):
                self._conn_step(old, side, ConnInput.REINSTATEMENT_SUCCEEDED, pdu.frame, pdu.ts_ns,
                                f"successful connection reinstatement on {c.id}")
        old.ended, old.reinstated_by = "reinstated", c.id
        self._settle(old, pdu.frame, pdu.ts_ns, "connection reinstated")
        self._out.append(self._reinst_record(c, login, pdu.frame, pdu.ts_ns, "succeeded"))

    def _session_reinstated(self, c: _Conn, s: _Session, login: _Login, pdu: LoginResponse) -> None:
        """§6.3.5: the old session is implicitly logged out ("close the session"), its tasks terminated.

        Old connections already out of full feature phase are cleaned up now (M1); ones still in
        it get a pending close (applied when their TCP connection closes, or at capture end), and
        the old session's machines finish once none is left.
        """
        old = login.old_session
        assert old is not None
        ev_t = f"successful session reinstatement by {s.id} (implicit close-session logout, §6.3.5)"
        what = f"the successful session reinstatement by {s.id} on {c.id} (frame {pdu.frame})"
        for x in old.conns:
            if any(x.state[side] in FFP_STATES for side in SIDES):
                if x.pending is None:
                    x.pending = _Pending("sess_reinstated", pdu.frame, pdu.ts_ns, c.id, what, by=s.id)
                    x.no_new_requests = f"on a connection of a session reinstated by {s.id} (frame {pdu.frame}) (§6.3.5)"
                continue
            x.end_outcome, x.end_note, x.end_cause = "terminated_by_logout", f"session reinstated by {s.id}", \
                "reinstatement"
            x.closure = True
            if x.state["target"] is _S4:
                self._conn_step(x, "target", ConnInput.REINSTATEMENT_SUCCEEDED, pdu.frame, pdu.ts_ns, ev_t)
            for side in SIDES:
                if x.state[side] is _S8 and x.cleanup[side] is None:
                    self._enter_cleanup(x, side, pdu.frame, pdu.ts_ns, "session reinstatement")
                self._cleanup_step(x, side, CleanupInput.CLOSE_SESSION_SUCCESS, pdu.frame, pdu.ts_ns, ev_t,
                                   outcome="session_reinstated")
            if x.ended in ("open", "dropped"):
                x.ended = "reinstated"
            self._settle(x, pdu.frame, pdu.ts_ns, ev_t)
        old.reinstated_by, s.reinstated_from = s.id, old.id
        if not any(x.pending for x in old.conns):
            self._complete_session_reinstatement(old, s.id, pdu.frame, pdu.ts_ns, what, False)
        self._unindex(old)
        self._index(s)
        self._out.append(self._reinst_record(c, login, pdu.frame, pdu.ts_ns, "succeeded"))

    def _complete_session_reinstatement(self, old: _Session, by: str, frame: int, ts: int, what: str,
                                        inferred: bool) -> None:
        """The old session's machines once none of its connections is in full feature phase any more."""
        ev_t = f"{what}: the old session is cleared (implicit close-session logout, §6.3.5)"
        for x in old.conns:
            x.was_ffp = {side: x.state[side] in FFP_STATES for side in SIDES}
        if old.state["initiator"] in (_Q3, SessState.UNKNOWN):
            self._sess_step(old, "initiator", SessInput.SESSION_FAILED, frame, ts,
                            "session reinstatement: the old session must have failed", True)
        for side in SIDES:
            st = old.state[side]
            if st in (_Q4, SessState.Q5_IN_CONTINUE):
                self._sess_step(old, side, SessInput.SESSION_REINSTATED, frame, ts, ev_t, inferred)
            elif st in (_Q3, SessState.UNKNOWN, SessState.Q2_ACTIVE):
                self._sess_step(old, side, SessInput.SESSION_CLOSED, frame, ts, ev_t, inferred)
        for t in list(old.tasks.values()):
            self._end_unanswered(old, t, frame, ts, "terminated_by_logout", "reinstatement",
                                 f"session reinstated by {by}")
        old.ended = "reinstated"

    # ---------------------------------------------------------------- requests (initiator -> target)

    def _check_cmdsn(self, s: _Session, pdu: Pdu, cmdsn: int) -> str | None:
        """§4.2.2.1: non-immediate CmdSN within [ExpCmdSN, MaxCmdSN], no reuse by another ITT.

        Returns "cmdsn_above_window" / "cmdsn_below_window" when the target must silently
        discard the command (its task becomes ``not_accepted`` unless it is answered anyway).
        """
        if pdu.immediate:
            return None
        prev = s.recent_cmdsn.get(cmdsn)
        cause = None
        if s.window.contains(cmdsn) is False and s.window.max is not None:
            cause = "cmdsn_above_window" if serial_gt(cmdsn, s.window.max) else "cmdsn_below_window"
        window = f"[ExpCmdSN {s.window.exp}, MaxCmdSN {s.window.max}]"
        if prev is not None and prev != pdu.itt:
            if cause == "cmdsn_below_window":  # a stale CmdSN: the window moved past it (§4.2.2.1)
                self._seq_event(pdu, s, "cmdsn_out_of_window", s.window.exp, cmdsn,
                                f"CmdSN {cmdsn} below {window} (stale: already used by ITT {prev:#x})", pdu.itt)
            else:
                self._seq_event(pdu, s, "cmdsn_duplicate", s.window.exp, cmdsn,
                                f"CmdSN {cmdsn} already used by ITT {prev:#x}", pdu.itt)
        elif prev is None and cause is not None:
            self._seq_event(pdu, s, "cmdsn_out_of_window", s.window.exp, cmdsn, f"CmdSN {cmdsn} outside {window}",
                            pdu.itt)
        elif prev == pdu.itt:
            cause = None  # a retry keeps its CmdSN (§4.2.2.1)
        if prev is None:
            s.recent_cmdsn[cmdsn] = pdu.itt
            if len(s.recent_cmdsn) > _CMDSN_HISTORY:
                del s.recent_cmdsn[next(iter(s.recent_cmdsn))]
        return cause

    def _request(self, c: _Conn, s: _Session, pdu: Pdu) -> None:
        inp = connection.classify_pdu(pdu, own_cid=c.cid, logout_for_self=True)
        new_task = isinstance(pdu, (ScsiCommand, TaskMgmtRequest)) or (
            isinstance(pdu, NopOut) and pdu.itt != RESERVED_TAG) or (
            isinstance(pdu, TextRequest) and pdu.itt not in s.tasks)
        if new_task and c.no_new_requests:
            self._seq_event(pdu, s, "request_after_logout", None, None,
                            f"{_PDU_NAMES[type(pdu).__name__]} {c.no_new_requests}", pdu.itt)
        cause = None
        if isinstance(pdu, (ScsiCommand, TaskMgmtRequest, TextRequest, LogoutRequest, NopOut)):
            cause = self._check_cmdsn(s, pdu, pdu.cmdsn)
        if isinstance(pdu, NopOut) and pdu.ttt != RESERVED_TAG:  # answers the target's NOP-In ping (§11.18)
            ping = c.pings.get(pdu.ttt)
            if ping is not None:
                self._emit_task(s, ping, ping.finish(pdu.frame, pdu.ts_ns, "completed"))
        if isinstance(pdu, ScsiCommand):
            self._scsi_command(c, s, pdu)
        elif isinstance(pdu, DataOut):
            self._data_out(c, s, pdu)
        elif isinstance(pdu, TaskMgmtRequest):
            self._new_task(s, c, pdu, "tmf", pdu.cmdsn, tmf_function=pdu.function, ref_task_tag=pdu.ref_task_tag)
        elif isinstance(pdu, NopOut):
            if pdu.itt != RESERVED_TAG:
                self._new_task(s, c, pdu, "nop", pdu.cmdsn)
        elif isinstance(pdu, TextRequest):
            t = s.tasks.get(pdu.itt)
            if t is None or t.kind != "text":
                self._new_task(s, c, pdu, "text", pdu.cmdsn)
                c.text_neg = Negotiation()
            else:
                t.touch(pdu.frame, pdu.ts_ns)
            if c.text_neg is None:
                c.text_neg = Negotiation()
            joined = self._ltds(c, s, pdu)
            if joined is not None:
                self._issues(c, pdu, c.text_neg.feed("initiator", joined, ffp_text=True))
        elif isinstance(pdu, LogoutRequest):
            self._logout_request(c, s, pdu)
            return
        elif isinstance(pdu, Snack):
            pass
        if new_task and (t := s.tasks.get(pdu.itt)) is not None and t.first_frame == pdu.first_frame:
            t.cmdsn_cause = cause
            t.after_logout = bool(c.no_new_requests)
        if inp is not None and not self._stays(c, inp):
            self._conn_both(c, inp, pdu.frame, pdu.ts_ns, self._events(pdu, _PDU_NAMES[type(pdu).__name__]))

    def _new_task(self, s: _Session, c: _Conn, pdu: Pdu, kind: str, cmdsn: int | None, **kw: int) -> Task:
        old = s.tasks.get(pdu.itt)
        if old is not None:
            self._seq_event(pdu, s, "itt_in_use", None, pdu.itt,
                            f"ITT {pdu.itt:#x} reused while task of kind {old.kind} is open", pdu.itt)
            self._emit_task(s, old, old.finish(pdu.frame, pdu.ts_ns, "failed",
                                               note="ITT reused while the task was open"))
        t = Task(s.id, c.id, pdu.itt, kind, pdu.first_frame, pdu.ts_ns, pdu.immediate, cmdsn, pdu.lun,
                 last_frame=pdu.frame, last_ts_ns=pdu.ts_ns)
        for k, v in kw.items():
            setattr(t, k, v)
        s.tasks[pdu.itt] = t
        return t

    def _scsi_command(self, c: _Conn, s: _Session, pdu: ScsiCommand) -> None:
        old = s.tasks.get(pdu.itt)
        if old is not None and old.kind == "scsi" and old.cmdsn == pdu.cmdsn:
            old.touch(pdu.frame, pdu.ts_ns)  # retry (§6.2.1): same ITT and CmdSN
            return
        t = self._new_task(s, c, pdu, "scsi", pdu.cmdsn)
        cdb = pdu.cdb
        t.cdb_opcode, t.cdb_name, t.lba, t.transfer_length = cdb.opcode, cdb.name, cdb.lba, cdb.transfer_length
        t.read, t.write, t.edtl = pdu.read, pdu.write, pdu.edtl
        t.immediate_bytes = t.bytes_out = t.unsolicited_bytes = pdu.dsl
        if pdu.dsl and s.params_known:
            if s.params.get("ImmediateData") == "No":
                self._seq_event(pdu, s, "unsolicited_data_not_negotiated", 0, pdu.dsl,
                                "immediate data sent although ImmediateData=No (§13.11)", pdu.itt)
            fbl = s.param_int("FirstBurstLength")
            if fbl is not None and pdu.dsl > fbl:
                self._seq_event(pdu, s, "burst_length_exceeded", fbl, pdu.dsl,
                                "immediate data exceeds FirstBurstLength (§13.14)", pdu.itt)
        if pdu.dsl and pdu.write and pdu.dsl > pdu.edtl:
            self._seq_event(pdu, s, "r2t_overrun", pdu.edtl, pdu.dsl,
                            "immediate data beyond Expected Data Transfer Length", pdu.itt)

    def _data_out(self, c: _Conn, s: _Session, pdu: DataOut) -> None:
        t = s.tasks.get(pdu.itt)
        if t is None or t.kind != "scsi":
            return
        t.touch(pdu.frame, pdu.ts_ns)
        t.data_out_pdus += 1
        t.bytes_out += pdu.dsl
        seq = t.sequences.get(pdu.ttt)
        if seq is None:
            seq = t.sequences[pdu.ttt] = DataOutSeq()
        if not t.damaged and serial_gt(pdu.datasn, seq.next_datasn):
            self._seq_event(pdu, s, "datasn_gap", seq.next_datasn, pdu.datasn,
                            f"Data-Out DataSN gap in the sequence of TTT {pdu.ttt:#x}", pdu.itt)
        if not serial_gt(seq.next_datasn, pdu.datasn):
            seq.next_datasn = serial_add(pdu.datasn, 1)
        end = pdu.buffer_offset + pdu.dsl
        if pdu.ttt == RESERVED_TAG:
            t.unsolicited_bytes += pdu.dsl
            if s.params_known:
                if s.params.get("InitialR2T") == "Yes" and seq.received == 0:
                    self._seq_event(pdu, s, "unsolicited_data_not_negotiated", 0, pdu.dsl,
                                    "unsolicited Data-Out although InitialR2T=Yes (§13.10)", pdu.itt)
                fbl = s.param_int("FirstBurstLength")
                if fbl is not None and t.unsolicited_bytes > fbl >= t.unsolicited_bytes - pdu.dsl:
                    self._seq_event(pdu, s, "burst_length_exceeded", fbl, t.unsolicited_bytes,
                                    "unsolicited data exceeds FirstBurstLength (§13.14)", pdu.itt)
        elif seq.length is not None and (pdu.buffer_offset < seq.offset or end > seq.offset + seq.length):
            self._seq_event(pdu, s, "r2t_overrun", seq.offset + seq.length, end,
                            f"Data-Out [{pdu.buffer_offset}, {end}) outside the R2T's "
                            f"[{seq.offset}, {seq.offset + seq.length})", pdu.itt)
        seq.received += pdu.dsl
        if t.edtl is not None and end > t.edtl and t.write:
            self._seq_event(pdu, s, "r2t_overrun", t.edtl, end, "Data-Out beyond Expected Data Transfer Length",
                            pdu.itt)
        if pdu.final:
            t.sequences.pop(pdu.ttt, None)

    def _logout_request(self, c: _Conn, s: _Session, pdu: LogoutRequest) -> None:
        t = self._new_task(s, c, pdu, "logout", pdu.cmdsn)
        t.logout_reason, t.logout_cid = pdu.reason, pdu.cid
        what = f"Logout Request ({LOGOUT_REASON.get(pdu.reason, f'reason {pdu.reason}')}, CID {pdu.cid})"
        ev = self._events(pdu, what)
        if pdu.reason == 0:
            for x in s.conns:
                if x is not c and not x.no_new_requests:
                    x.no_new_requests = f"after the close-session Logout Request on {c.id} (frame {pdu.frame}) (§11.14)"
        inp = connection.classify_pdu(pdu, own_cid=c.cid, logout_for_self=True)
        if inp is ConnInput.LOGOUT_REQUEST:
            c.no_new_requests = "after a Logout Request (§11.14)"
            self._conn_both(c, inp, pdu.frame, pdu.ts_ns, ev)
            return
        # CSM-E (§8.2): a Logout for another CID riding this connection.
        self._conn_both(c, ConnInput.FFP_REQUEST, pdu.frame, pdu.ts_ns, ev)
        named = self._conn_by_cid(s, pdu.cid, exclude=c)
        if named is None:
            return
        x = named
        x.no_new_requests = f"after the Logout Request naming its CID {pdu.cid} on {c.id} (frame {pdu.frame}) (§11.14)"
        if any(x.state[side] in FFP_STATES for side in SIDES):
            # §11.14 expects such a Logout for a CID whose TCP connection is gone; this one still
            # looks alive, so the Logout Response and its own wire decide (see _logout_response).
            return
        for side in SIDES:
            if x.cleanup[side] is _R1:
                self._cleanup_step(x, side, CleanupInput.CLEANUP_STARTED, pdu.frame, pdu.ts_ns,
                                   f"CSM-E: {ev[side]} on {c.id}")

    @staticmethod
    def _conn_by_cid(s: _Session, cid: int, exclude: _Conn) -> _Conn | None:
        return next((x for x in reversed(s.conns) if x is not exclude and x.cid == cid
                     and x.ended not in ("logout", "session_closed", "reinstated")), None)

    # ---------------------------------------------------------------- responses (target -> initiator)

    def _advance_statsn(self, c: _Conn, s: _Session, pdu: Pdu, statsn: int, advancing: bool) -> None:
        gap = c.statsn.advance(statsn) if advancing else c.statsn.peek(statsn)
        if gap is not None:
            self._seq_event(pdu, s, "statsn_gap", gap, statsn,
                            f"{_PDU_NAMES[type(pdu).__name__]} StatSN {statsn}, expected {gap} (§4.2.2.2)",
                            pdu.itt)

    def _task_for(self, c: _Conn, s: _Session, pdu: Pdu, kind: str) -> Task | None:
        t = s.tasks.get(pdu.itt)
        if t is not None and (t.kind == kind or kind == "any"):
            t.touch(pdu.frame, pdu.ts_ns)
            return t
        if c.mid_stream or c.lossy_i2t:
            if kind == "any":
                return None
            t = Task(s.id, c.id, pdu.itt, kind, pdu.first_frame, pdu.ts_ns, False, None, pdu.lun,
                     last_frame=pdu.frame, last_ts_ns=pdu.ts_ns, partial=True, damaged=True)
            s.tasks[pdu.itt] = t
            return t
        self._seq_event(pdu, s, "unexpected_response", None, pdu.itt,
                        f"{_PDU_NAMES[type(pdu).__name__]} for ITT {pdu.itt:#x}, which no open task has",
                        pdu.itt)
        return None

    def _response(self, c: _Conn, s: _Session, pdu: Pdu) -> None:
        name = _PDU_NAMES.get(type(pdu).__name__, "PDU")
        expcmdsn = getattr(pdu, "expcmdsn", None)
        maxcmdsn = getattr(pdu, "maxcmdsn", None)
        if isinstance(expcmdsn, int) and isinstance(maxcmdsn, int):
            s.window.update(expcmdsn, maxcmdsn)
        if isinstance(pdu, DataIn):
            self._data_in(c, s, pdu)
        elif isinstance(pdu, ScsiResponse):
            self._advance_statsn(c, s, pdu, pdu.statsn, True)
            self._scsi_response(c, s, pdu)
        elif isinstance(pdu, R2T):
            self._advance_statsn(c, s, pdu, pdu.statsn, False)
            self._r2t(c, s, pdu)
        elif isinstance(pdu, NopIn):
            self._advance_statsn(c, s, pdu, pdu.statsn, pdu.itt != RESERVED_TAG)
            if pdu.itt != RESERVED_TAG and (t := self._task_for(c, s, pdu, "nop")) is not None:
                self._emit_task(s, t, t.finish(pdu.frame, pdu.ts_ns, "completed"))
            elif pdu.itt == RESERVED_TAG and pdu.ttt != RESERVED_TAG:
                # §11.19: a target ping; the initiator's NOP-Out must echo the TTT (tracked on the connection)
                ping = c.pings.get(pdu.ttt)
                if ping is None:
                    c.pings[pdu.ttt] = Task(s.id, c.id, RESERVED_TAG, "nop_in", pdu.first_frame, pdu.ts_ns, True,
                                            None, pdu.lun, last_frame=pdu.frame, last_ts_ns=pdu.ts_ns, ttt=pdu.ttt)
                else:
                    ping.touch(pdu.frame, pdu.ts_ns)
        elif isinstance(pdu, TaskMgmtResponse):
            self._advance_statsn(c, s, pdu, pdu.statsn, True)
            self._tmf_response(c, s, pdu)
        elif isinstance(pdu, TextResponse):
            self._advance_statsn(c, s, pdu, pdu.statsn, True)
            self._text_response(c, s, pdu)
        elif isinstance(pdu, LogoutResponse):
            self._advance_statsn(c, s, pdu, pdu.statsn, True)
            self._logout_response(c, s, pdu)
            return
        elif isinstance(pdu, AsyncMessage):
            self._advance_statsn(c, s, pdu, pdu.statsn, True)
            self._async(c, s, pdu)
            return
        elif isinstance(pdu, Reject):
            self._advance_statsn(c, s, pdu, pdu.statsn, True)
            self._reject(c, s, pdu)
        inp = connection.classify_pdu(pdu, own_cid=c.cid, logout_for_self=True)
        if inp is not None and not self._stays(c, inp):
            self._conn_both(c, inp, pdu.frame, pdu.ts_ns, self._events(pdu, name))

    @staticmethod
    def _stays(c: _Conn, inp: ConnInput) -> bool:
        """Hot path: the input changes no state on either side (no records, nothing to settle)."""
        st = c.state
        return (inp in _I_STAYS.get(st["initiator"], _EMPTY)) and (inp in _T_STAYS.get(st["target"], _EMPTY))

    def _data_in(self, c: _Conn, s: _Session, pdu: DataIn) -> None:
        if pdu.status_present and pdu.statsn is not None:
            self._advance_statsn(c, s, pdu, pdu.statsn, True)
        t = self._task_for(c, s, pdu, "scsi")
        if t is None:
            return
        if t.target_frame is None:
            t.target_frame = pdu.frame
        t.data_in_pdus += 1
        t.bytes_in += pdu.dsl
        self._check_datasn_in(s, t, pdu, pdu.datasn, "datasn_gap", "Data-In DataSN")
        if pdu.status_present:
            status = pdu.status if pdu.status is not None else 0
            self._answered_after_tmf(c, s, t, pdu)
            self._emit_task(s, t, t.finish(pdu.frame, pdu.ts_ns, scsi_outcome(0, status), status=status,
                                           response=0, overflow=pdu.overflow, underflow=pdu.underflow,
                                           residual=pdu.residual))

    def _answered_after_tmf(self, c: _Conn, s: _Session, t: Task, pdu: Pdu) -> None:
        if t.tmf_missing is None:
            return
        tmf_itt, tmf_frame = t.tmf_missing
        self._deviation(c, s, pdu.frame, pdu.ts_ns, "tmf_response_inconsistent", "§11.6.1",
                        f"the target answered task ITT {t.itt:#x} (frame {pdu.frame}) after it had answered the "
                        f"ABORT TASK for it (TMF ITT {tmf_itt:#x}, frame {tmf_frame}) with 'Task does not exist'",
                        tmf_frame, itt=t.itt)

    def _check_datasn_in(self, s: _Session, t: Task, pdu: Pdu, sn: int, kind: str, what: str) -> None:
        """§4.2.2.3: Data-In DataSN per command; R2TSN per command; shared for bidirectional commands."""
        shared = t.bidi or kind == "datasn_gap"
        expected = t.next_datasn_in if shared else t.next_r2tsn
        if sn != expected and serial_gt(sn, expected) and not t.damaged:
            self._seq_event(pdu, s, kind, expected, sn, f"{what} {sn}, expected {expected}", pdu.itt)
        if not serial_gt(expected, sn):
            if shared:
                t.next_datasn_in = serial_add(sn, 1)
            else:
                t.next_r2tsn = serial_add(sn, 1)

    def _r2t(self, c: _Conn, s: _Session, pdu: R2T) -> None:
        t = self._task_for(c, s, pdu, "scsi")
        if t is None:
            return
        if t.target_frame is None:
            t.target_frame = pdu.frame
        t.r2t_count += 1
        self._check_datasn_in(s, t, pdu, pdu.r2tsn, "r2tsn_gap", "R2TSN")
        mbl = s.param_int("MaxBurstLength") if s.params_known else None
        if mbl is not None and pdu.desired_length > mbl:
            self._seq_event(pdu, s, "burst_length_exceeded", mbl, pdu.desired_length,
                            "R2T Desired Data Transfer Length exceeds MaxBurstLength (§13.13)", pdu.itt)
        t.sequences[pdu.ttt] = DataOutSeq(offset=pdu.buffer_offset, length=pdu.desired_length)

    def _scsi_response(self, c: _Conn, s: _Session, pdu: ScsiResponse) -> None:
        t = self._task_for(c, s, pdu, "scsi")
        if t is None:
            return
        if pdu.response == 0 and not t.damaged and t.data_in_pdus:
            # §11.4.8: ExpDataSN = number of R2T and Data-In PDUs sent for the command.
            expected = t.data_in_pdus + t.r2t_count
            if pdu.expdatasn != expected:
                self._seq_event(pdu, s, "expdatasn_mismatch", expected, pdu.expdatasn,
                                "SCSI Response ExpDataSN differs from the R2T + Data-In PDUs seen", pdu.itt)
        self._answered_after_tmf(c, s, t, pdu)
        self._emit_task(s, t, t.finish(pdu.frame, pdu.ts_ns, scsi_outcome(pdu.response, pdu.status),
                                       status=pdu.status if pdu.response == 0 else None, response=pdu.response,
                                       sense=pdu.sense, overflow=pdu.overflow, underflow=pdu.underflow,
                                       residual=pdu.residual if (pdu.overflow or pdu.underflow) else 0))

    def _tmf_response(self, c: _Conn, s: _Session, pdu: TaskMgmtResponse) -> None:
        t = self._task_for(c, s, pdu, "tmf")
        if t is None:
            return
        self._emit_task(s, t, t.finish(pdu.frame, pdu.ts_ns, "completed" if pdu.response == 0 else "failed",
                                       response=pdu.response))
        if pdu.response == 1 and t.tmf_function == 1 and t.ref_task_tag is not None:
            ref = s.tasks.get(t.ref_task_tag)
            if ref is not None and ref.kind == "scsi":
                # §11.6.1: "Task does not exist" for a task we see open: provisional, decided by what follows
                ref.tmf_missing = (t.itt, pdu.frame)
                if ref.target_frame is not None:
                    self._deviation(c, s, pdu.frame, pdu.ts_ns, "tmf_response_inconsistent", "§11.6.1",
                                    f"the target answered ABORT TASK (TMF ITT {t.itt:#x}) for ITT {ref.itt:#x} with "
                                    f"'Task does not exist' although it had already sent PDUs for that task "
                                    f"(frame {ref.target_frame})", ref.first_frame, itt=ref.itt)
        if pdu.response != 0 or t.tmf_function is None:
            return
        # §11.5.1: tasks ended by the function (no SCSI Response follows for them).
        fn = t.tmf_function
        victims: list[Task] = []
        if fn == 1 and t.ref_task_tag is not None:
            v = s.tasks.get(t.ref_task_tag)
            victims = [v] if v is not None and v.kind == "scsi" else []
        elif fn in (2, 4, 5):
            victims = [v for v in s.tasks.values() if v.kind == "scsi" and v.lun == t.lun
                       and v.start_ts_ns <= t.start_ts_ns]
        elif fn in (6, 7):
            victims = [v for v in s.tasks.values() if v.kind == "scsi" and v.start_ts_ns <= t.start_ts_ns]
        for v in victims:
            self._emit_task(s, v, v.finish(pdu.frame, pdu.ts_ns, "aborted",
                                           note=f"{TMF_FUNCTION.get(fn, fn)} by TMF ITT {t.itt:#x}",
                                           aborted_by_itt=t.itt, cause="task_management"))

    def _text_response(self, c: _Conn, s: _Session, pdu: TextResponse) -> None:
        t = self._task_for(c, s, pdu, "text")
        if c.text_neg is None:
            c.text_neg = Negotiation()
        joined = self._ltds(c, s, pdu)
        if joined is not None:
            self._issues(c, pdu, c.text_neg.feed("target", joined, ffp_text=True))
        if not pdu.final or pdu.cont:
            return
        self._ltds_end(c, pdu, "the target ended the Text exchange with its final response")
        neg, c.text_neg = c.text_neg, None
        for name in neg.discovered_targets:
            if len(s.discovered_targets) < 1000 and name not in s.discovered_targets:
                s.discovered_targets.append(name)
        if t is not None:
            self._emit_task(s, t, t.finish(pdu.frame, pdu.ts_ns, "completed"))
        mi = neg.declared["initiator"].get("MaxRecvDataSegmentLength")
        mt = neg.declared["target"].get("MaxRecvDataSegmentLength")
        if (mi or mt) and c.params_known:
            new_i = neg.max_recv_dsl("initiator") if mi else c.mrdsl_initiator
            new_t = neg.max_recv_dsl("target") if mt else c.mrdsl_target
            if (new_i, new_t) != (c.mrdsl_initiator, c.mrdsl_target):
                c.mrdsl_initiator, c.mrdsl_target = new_i, new_t
                c.params["MaxRecvDataSegmentLength_initiator"] = str(new_i)
                c.params["MaxRecvDataSegmentLength_target"] = str(new_t)
                self._out.append(ConnectionParams(pdu.frame, pdu.ts_ns, c.id, c.header_digest, c.data_digest,
                                                  new_i, new_t))

    def _reject(self, c: _Conn, s: _Session, pdu: Reject) -> None:
        itt = pdu.rejected_itt
        if itt is None or itt == RESERVED_TAG:
            return
        t = s.tasks.get(itt)
        if t is not None and _OPENING_OPCODE.get(t.kind) == pdu.rejected_opcode:
            self._emit_task(s, t, t.finish(pdu.frame, pdu.ts_ns, "rejected", reject_reason=pdu.reason,
                                           response_name=REJECT_REASON.get(pdu.reason)))

    def _logout_response(self, c: _Conn, s: _Session, pdu: LogoutResponse) -> None:
        t = self._task_for(c, s, pdu, "logout")
        reason = t.logout_reason if t is not None and t.logout_reason is not None else 1
        cid = t.logout_cid if t is not None and t.logout_cid is not None else c.cid
        for_self = reason == 0 or c.cid is None or cid == c.cid
        ok = pdu.response == 0
        what = f"Logout Response {pdu.response} ({LOGOUT_RESPONSE.get(pdu.response, 'unknown')})"
        ev = self._events(pdu, what)
        if t is not None:
            self._emit_task(s, t, t.finish(pdu.frame, pdu.ts_ns, "completed" if ok else "failed",
                                           response=pdu.response))
        erl = s.params.get("ErrorRecoveryLevel") if s.params_known else None
        if ok and reason == 2 and erl == "0":
            self._deviation(c, s, pdu.frame, pdu.ts_ns, "logout_response_unexpected", "§11.15.1",
                            f"the target answered 0 (closed successfully) to a Logout Request removing CID {cid} "
                            f"for recovery although ErrorRecoveryLevel is 0; it should answer 2 (connection "
                            f"recovery is not supported)", t.first_frame if t is not None else pdu.frame,
                            itt=pdu.itt, cid=cid, expected=2, observed=0)
        if not ok:  # the connection(s) stay in use: new requests are fine again
            for y in (s.conns if reason == 0 else [c]):
                y.no_new_requests = ""
        if not for_self:
            # CSM-E outcome for the named connection (§8.2: M4 / M3).
            self._conn_both(c, ConnInput.FFP_RESPONSE, pdu.frame, pdu.ts_ns, ev)
            x = self._conn_by_cid(s, cid, exclude=c) if cid is not None else None
            req = f"frame {t.first_frame}, " if t is not None else ""
            carrier = _Pending("carrier_logout", pdu.frame, pdu.ts_ns, c.id,
                               f"the Logout ({LOGOUT_REASON.get(reason, reason)}) naming CID {cid} on this connection "
                               f"({req}answered 0 at frame {pdu.frame})", reason, cid)
            if x is None:
                if ok:
                    if not s.mid_stream:
                        self._deviation(c, s, pdu.frame, pdu.ts_ns, "logout_response_unexpected", "§11.15.1",
                                        f"the target answered 0 (closed successfully) to a Logout Request for CID "
                                        f"{cid}, which no connection of the session has (none in the capture); it "
                                        f"should answer 1 (CID not found)", t.first_frame if t is not None else pdu.frame,
                                        itt=pdu.itt, cid=cid, expected=1, observed=0)
                    c.pending = carrier
                return
            if any(x.cleanup[side] is _R2 for side in SIDES):
                for side in SIDES:
                    if x.cleanup[side] is _R2:
                        self._cleanup_step(x, side,
                                           CleanupInput.CLEANUP_SUCCEEDED if ok else CleanupInput.CLEANUP_FAILED,
                                           pdu.frame, pdu.ts_ns, f"CSM-E: {ev[side]} on {c.id}", outcome="logged_out")
                if ok:
                    x.ended = "logout"
            elif ok and any(x.state[side] in FFP_STATES for side in SIDES):
                x.pending = _Pending("named_logout", pdu.frame, pdu.ts_ns, c.id,
                                     f"the successful Logout ({LOGOUT_REASON.get(reason, reason)}) naming CID {cid} "
                                     f"on {c.id} (frame {pdu.frame})", reason, cid)
                c.pending = carrier
            return
        if ok:
            c.end_outcome, c.end_note = "terminated_by_logout", LOGOUT_REASON.get(reason, "")
            c.end_cause = "logout"
            c.ended = "logout"
            if reason == 0:
                self._close_session(c, s, pdu, ev)
                return
            c.closure = reason == 1
            self._conn_both(c, ConnInput.LOGOUT_RESPONSE_OK, pdu.frame, pdu.ts_ns, ev)
            return
        if pdu.response in (2, 3):  # §11.15: Time2Wait/Time2Retain valid for responses 2 and 3
            c.cleanup_override = (pdu.time2wait, pdu.time2retain, "logout_response")
        self._conn_both(c, ConnInput.LOGOUT_RESPONSE_FAIL, pdu.frame, pdu.ts_ns, ev)

    def _close_session(self, c: _Conn, s: _Session, pdu: LogoutResponse, ev: dict[str, str]) -> None:
        """§11.14: a successful close-session logout closes every connection of the session.

        Connections in CLEANUP_WAIT are cleaned up at once (M1/M4). Connections still in (or
        logging in to) full feature phase get a pending close (T8/T7/T13/T18), applied when their
        own TCP connection closes; if the target sends on one instead, it kept it open (a
        Deviation) and it stays in full feature phase. The session is closed when its last
        full-feature connection is gone.
        """
        self._conn_both(c, ConnInput.LOGOUT_RESPONSE_OK, pdu.frame, pdu.ts_ns, ev, settle=False)
        c.closure = True
        other = {side: f"close-session Logout Response "
                       f"{'received' if side == 'initiator' else 'sent'} on {c.id} (frame {pdu.frame})"
                 for side in SIDES}
        cid = f"CID {c.cid} ({c.id})" if c.cid is not None else c.id
        what = f"the successful close-session Logout on {cid} (frame {pdu.frame})"
        for x in s.conns:
            if x is c:
                continue
            if any(x.state[side] in FFP_STATES or x.state[side] in (ConnState.S2_XPT_WAIT, _S4) for side in SIDES):
                if x.pending is None or x.pending.kind != "close_session":
                    x.pending = _Pending("close_session", pdu.frame, pdu.ts_ns, c.id, what)
                continue
            cleaning = any(x.cleanup[side] in (_R1, _R2) for side in SIDES)
            for side in SIDES:
                self._cleanup_step(x, side, CleanupInput.CLOSE_SESSION_SUCCESS, pdu.frame, pdu.ts_ns, other[side],
                                   outcome="session_closed")
            if cleaning and x.ended in ("open", "dropped"):
                x.ended = "session_closed"
        self._settle(c, pdu.frame, pdu.ts_ns, other["target"])
        for t in list(s.tasks.values()):
            tc = self._conns.get(t.conn)
            if tc is None or (tc.pending is None and not any(tc.state[sd] in FFP_STATES for sd in SIDES)):
                self._end_unanswered(s, t, pdu.frame, pdu.ts_ns, "terminated_by_logout", "logout",
                                     "close the session")

    def _async(self, c: _Conn, s: _Session, pdu: AsyncMessage) -> None:
        """§11.9.1: event 1 requests logout (T11/T12/T14); 2/3 announce drops (T15/T16/T17)."""
        name = ASYNC_EVENT.get(pdu.async_event, "vendor specific" if pdu.async_event >= 248 else "reserved")
        what = f"Async Message AsyncEvent={pdu.async_event} ({name}"
        if pdu.async_event == 2:
            what += f", CID {pdu.param1}"
        if pdu.async_event in (2, 3):
            what += f", Time2Wait {pdu.param2}, Time2Retain {pdu.param3}"
        what += ")"
        ev = self._events(pdu, what)
        if pdu.async_event == 3:
            targets = [x for x in s.conns if any(x.state[sd] in FFP_STATES | {ConnState.UNKNOWN} for sd in SIDES)]
            if c not in targets:
                targets.append(c)
        elif pdu.async_event == 2:
            x = c if c.cid is None or pdu.param1 == c.cid else self._conn_by_cid(s, pdu.param1, exclude=c)
            targets = [x] if x is not None else []
        else:
            targets = []
        for x in targets:
            x.cleanup_override = (pdu.param2, pdu.param3, "async_event")
            self._conn_both(x, ConnInput.ASYNC_DROP, pdu.frame, pdu.ts_ns,
                            ev if x is c else {sd: f"{ev[sd]} on {c.id}" for sd in SIDES})
        if c not in targets:
            inp = ConnInput.ASYNC_REQUEST_LOGOUT if pdu.async_event == 1 else ConnInput.FFP_RESPONSE
            self._conn_both(c, inp, pdu.frame, pdu.ts_ns, ev)

    # ------------------------------------------------------------------ finish & summaries

    def _finish(self, ts: int) -> None:
        frame = self._last_frame
        for c in self._conns.values():
            if c.login is not None and (c.login.old_conn is not None or c.login.old_session is not None):
                self._out.append(self._reinst_record(c, c.login, frame, ts, "incomplete"))
        for c in list(self._conns.values()):
            p = c.pending
            if p is not None and p.kind == "carrier_logout":
                c.pending = None
            elif p is not None:  # nothing contradicted the implied close: apply it where it was implied
                self._resolve_pending(c, p.frame, p.ts, "nothing more was seen on this connection (inferred at "
                                      "capture end)", True, None, "target")
        for s in self._sessions.values():
            for t in list(s.tasks.values()) + [p for c in s.conns for p in c.pings.values()]:
                self._end_unanswered(s, t, max(frame, t.last_frame), ts, "open_at_capture_end", "capture_end")
            if s.ended == "open":
                s.ended = "capture_end"
        for c in self._conns.values():
            if c.ended == "open":
                c.ended = "capture_end"
        for s in self._sessions.values():
            self._out.append(self._session_summary(s, frame, ts))
        for c in self._conns.values():
            self._out.append(self._conn_summary(c, frame, ts))
        self._finished = True

    def _session_summary(self, s: _Session, frame: int, ts: int) -> SessionSummary:
        tpgt = s.tpgt
        ssid = f"{_isid_hex(s.isid)},{tpgt}" if s.isid is not None and tpgt is not None else None
        portals = tuple(dict.fromkeys(f"{c.server}:{c.server_port}" for c in s.conns if c.server))
        inits = tuple(dict.fromkeys(c.client for c in s.conns if c.client))
        params = dict(s.params)
        stype = s.session_type or ("unknown" if s.mid_stream else "Normal")
        return SessionSummary(
            frame, ts, s.id, stype, _isid_hex(s.isid), tpgt, s.tsih, ssid, s.initiator_name, s.target_name,
            s.initiator_alias, s.target_alias, portals, inits, tuple(c.id for c in s.conns),
            tuple(c.cid for c in s.conns if c.cid is not None), params, s.start_frame, s.start_ts,
            s.last_frame, s.last_ts, s.ended, s.state["initiator"].value, s.state["target"].value, s.mid_stream,
            s.reinstated_from, s.reinstated_by, s.task_count, tuple(s.discovered_targets))

    def _conn_summary(self, c: _Conn, frame: int, ts: int) -> ConnectionSummary:
        ci, ct = c.cleanup["initiator"], c.cleanup["target"]
        return ConnectionSummary(
            frame, ts, c.id, c.session.id if c.session else None, c.cid, c.client, c.client_port, c.server,
            c.server_port, c.role, dict(c.params), c.header_digest, c.data_digest, c.mrdsl_initiator,
            c.mrdsl_target, c.start_frame, c.start_ts, c.last_frame, c.last_ts, c.ended,
            c.state["initiator"].value, c.state["target"].value, ci.value if ci else None,
            ct.value if ct else None, c.mid_stream, c.handshake, c.tcp_end,
            c.login_status[0] if c.login_status else None, c.login_status[1] if c.login_status else None,
            c.reinstated_by, c.reinstates, c.pdus, c.tasks)

