"""Shared bookkeeping for the anomaly rules: who is who, what state they are in, where the
capture lost data, and how findings are emitted (deferred to the end of a frame, rate-limited).

Theory of operation
-------------------
The pipeline feeds every record in capture order: TCP records, PDUs and the state layer's
records (which it feeds *before* the record they were derived from). Rules are Zeek-style
handlers per record type and keep only small per-connection/per-session state.

Several findings need everything one frame produced (a FIN, the transitions it caused and
the tasks it closed), whatever the order inside the frame. Such rules ``defer`` a check; the
engine runs deferred checks when a record of a later frame arrives, on ``tick`` and on
``finish``. Floods are bounded by ``emit(..., limit_key=...)``: after ``limit`` findings with
the same key the rest are counted and reported once, as a summary, at ``finish``.

Connection and session states are the *target side's* (the target decides what happens to
tasks); ``state_before(frame)`` gives the state as it was before the given frame's
transitions, so a rule running at the end of a frame can still see "it was LOGGED_IN".

Memory: what is kept per connection and session (here and in the rules) stays until the
capture ends, unless the caller ``forget``s an ended session (live capture over days): then
its entries go, with its rate-limit counters (ids are never reused, so no later finding could
have counted against them); findings the rate limits held back for it are summarised at once
instead of at ``finish``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from analyzer.records import (
    I2T,
    T2I,
    Anomaly,
    AsyncMessage,
    FramingResync,
    LoginRequest,
    LoginResponse,
    Pdu,
    Record,
    TcpFin,
    TcpGap,
    TcpOpened,
    TcpRst,
)
from analyzer.state.events import (
    CleanupDeadline,
    CleanupEnded,
    Deviation,
    LoginKeys,
    NegotiationIssue,
    Reinstatement,
    SequenceEvent,
    SessionIdentified,
    TaskRecord,
    Transition,
    Violation,
)

from .kinds import KINDS, severity_rank

NS = 1_000_000_000
MS = 1_000_000
#: connection states in which a connection is in full feature phase (RFC 7143 §8.1.1)
FFP_STATES = frozenset({"LOGGED_IN", "IN_LOGOUT", "LOGOUT_REQUESTED"})
#: most evidence frames kept on one finding
MAX_FRAMES = 50


def parse_conn(conn: str) -> tuple[str, str]:
    """("client_ip:port", "server_ip:port") from a connection id (best effort)."""
    left, _, right = conn.split("#", 1)[0].partition("->")
    return left, right


def host_of(endpoint: str) -> str:
    """The address part of "ip:port" / "[v6]:port"."""
    return endpoint.rsplit(":", 1)[0].strip("[]") if ":" in endpoint else endpoint


def secs(ns: int) -> str:
    """A duration for messages: "350 ms", "2.5 s", "1 min 5 s"."""
    if ns < NS:
        ms = ns / MS
        return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"
    s = ns / NS
    if s < 60:
        return f"{s:.1f} s"
    m, rest = divmod(int(s), 60)
    return f"{m} min {rest} s"


@dataclass(slots=True)
class ConnInfo:
    """What the rules know about one TCP connection."""

    conn: str
    session: str | None = None
    client: str | None = None
    server: str | None = None
    #: target-side (and initiator-side) connection state, RFC spelling
    state: dict[str, str] = field(default_factory=lambda: {"initiator": "UNKNOWN", "target": "UNKNOWN"})
    #: side -> (frame of the last change, state before that frame)
    before: dict[str, tuple[int, str]] = field(default_factory=dict)
    ever_ffp: bool = False
    #: direction -> ts of the last capture gap / resync (data missing from the capture)
    last_loss_ts: dict[str, int] = field(default_factory=dict)
    #: directions in which the capture had a TCP gap
    gap_dirs: set[str] = field(default_factory=set)
    #: direction -> ts of the last PDU decoded
    last_pdu_ts: dict[str, int] = field(default_factory=dict)
    # login phase (current): frames and header fields from the PDUs, keys from the state
    # layer's LoginKeys record (the text joined across C-bit PDUs, §6.1), never from one PDU
    login_frames: list[int] = field(default_factory=list)
    #: the initiator's first InitiatorName, TargetName, SessionType, InitiatorAlias, AuthMethod
    login_keys: dict[str, str] = field(default_factory=dict)
    #: the target's keys of the login (the last value of each key), e.g. TargetAddress
    login_answer: dict[str, str] = field(default_factory=dict)
    login_tsih: int | None = None
    login_isid: int | None = None
    login_first_csg: int | None = None
    auth_used: bool = False
    auth_answer: str | None = None
    #: the last Async Message that asked for a logout or announced a drop (events 1, 2, 3)
    last_async: AsyncMessage | None = None
    #: who closed the transport first: (side, "FIN"/"RST", frame)
    closed_by: tuple[str, str, int] | None = None


@dataclass(slots=True)
class SessInfo:
    """What the rules know about one session (tracker id)."""

    id: str
    initiator_name: str | None = None
    target_name: str | None = None
    isid: int | None = None
    tpgt: int | None = None
    session_type: str | None = None
    state: str = "UNKNOWN"  #: target-side session state
    before: tuple[int, str] | None = None
    logged_in_ts: int | None = None  #: when the target side last entered LOGGED_IN from a login
    conns: list[str] = field(default_factory=list)
    login_seen: bool = False


@dataclass(slots=True)
class _Suppressed:
    kind: str
    severity: str
    session: str | None
    conn: str | None
    first_message: str
    count: int = 0
    frames: list[int] = field(default_factory=list)
    first_frame: int = 0
    first_ts: int = 0


class Context:
    """Bookkeeping shared by all rules, and the output buffer."""

    def __init__(self) -> None:
        self.conns: dict[str, ConnInfo] = {}
        self.sessions: dict[str, SessInfo] = {}
        self.out: list[Anomaly] = []
        self.frame = 0
        self.now = 0
        self._deferred: list[Callable[[], None]] = []
        self._counts: dict[tuple[object, ...], int] = {}
        self._suppressed: dict[tuple[object, ...], _Suppressed] = {}
        #: session / connection id -> the rate-limit keys that name it (dropped by ``forget``)
        self._owned: dict[str, list[tuple[object, ...]]] = {}

    # ------------------------------------------------------------------ lookups

    def conn(self, conn: str) -> ConnInfo:
        c = self.conns.get(conn)
        if c is None:
            c = self.conns[conn] = ConnInfo(conn)
            client, server = parse_conn(conn)
            c.client, c.server = client or None, server or None
        return c

    def session(self, sid: str) -> SessInfo:
        s = self.sessions.get(sid)
        if s is None:
            s = self.sessions[sid] = SessInfo(sid)
        return s

    def session_of(self, conn: str | None) -> str | None:
        if conn is None:
            return None
        c = self.conns.get(conn)
        return c.session if c is not None else None

    def link(self, conn: str | None, sid: str | None) -> None:
        """Remember that ``conn`` belongs to session ``sid``."""
        if conn is None or sid is None:
            return
        c = self.conn(conn)
        if c.session != sid:
            c.session = sid
            s = self.session(sid)
            if conn not in s.conns:
                s.conns.append(conn)

    def describe_session(self, sid: str | None) -> str:
        """"session s2 (iqn.init -> iqn.target)" or "session s2"."""
        if sid is None:
            return "an unknown session"
        s = self.sessions.get(sid)
        if s is None or not (s.initiator_name or s.target_name):
            return f"session {sid}"
        return f"session {sid} ({s.initiator_name or '?'} -> {s.target_name or '?'})"

    def loss_since(self, conn: str, direction: str, ts: int) -> bool:
        """True when the capture lost data of ``conn``/``direction`` at or after ``ts``."""
        c = self.conns.get(conn)
        if c is None:
            return False
        last = c.last_loss_ts.get(direction)
        return last is not None and last >= ts

    def conn_state_before(self, conn: str, frame: int, side: str = "target") -> str:
        """The connection's ``side`` state as it was before ``frame``'s transitions."""
        c = self.conns.get(conn)
        if c is None:
            return "UNKNOWN"
        b = c.before.get(side)
        if b is not None and b[0] == frame:
            return b[1]
        return c.state[side]

    def session_state_before(self, sid: str, frame: int) -> str:
        s = self.sessions.get(sid)
        if s is None:
            return "UNKNOWN"
        if s.before is not None and s.before[0] == frame:
            return s.before[1]
        return s.state

    # ------------------------------------------------------------------ bookkeeping

    def observe(self, rec: Record) -> None:
        """Update the shared view with ``rec`` (before the rules see it)."""
        self.now = max(self.now, rec.ts_ns)
        self.frame = rec.frame
        if isinstance(rec, Pdu):
            c = self.conn(rec.conn)
            c.last_pdu_ts[rec.direction] = rec.ts_ns
            if isinstance(rec, LoginRequest):
                self._login_request(c, rec)
            elif isinstance(rec, LoginResponse):
                self._login_response(c, rec)
            elif isinstance(rec, AsyncMessage) and rec.async_event in (1, 2, 3):
                c.last_async = rec
                if rec.async_event == 3 and c.session is not None:
                    for other in self.session(c.session).conns:
                        self.conn(other).last_async = rec
            return
        t = type(rec)
        if t is Transition:
            self._transition(rec)  # type: ignore[arg-type]
        elif t in (TaskRecord, SequenceEvent, CleanupDeadline, CleanupEnded, NegotiationIssue, Violation, Deviation):
            self.link(getattr(rec, "conn", None), getattr(rec, "session", None))
        elif t is SessionIdentified:
            self._identified(rec)  # type: ignore[arg-type]
        elif t is Reinstatement:
            self.link(rec.conn, rec.session)  # type: ignore[attr-defined]
        elif t is LoginKeys:
            self._login_keys(rec)  # type: ignore[arg-type]
        elif t is TcpGap and not rec.snaplen:  # type: ignore[attr-defined]
            c = self.conn(rec.conn)  # type: ignore[attr-defined]
            c.last_loss_ts[rec.direction] = rec.ts_ns  # type: ignore[attr-defined]
            c.gap_dirs.add(rec.direction)  # type: ignore[attr-defined]
        elif t is FramingResync:
            if rec.skipped or not rec.found:  # type: ignore[attr-defined]
                self.conn(rec.conn).last_loss_ts[rec.direction] = rec.ts_ns  # type: ignore[attr-defined]
        elif t is TcpFin or t is TcpRst:
            c = self.conn(rec.conn)  # type: ignore[attr-defined]
            if c.closed_by is None:
                c.closed_by = (side_of(rec.direction), "FIN" if t is TcpFin else "RST",  # type: ignore[attr-defined]
                               rec.frame)
        elif t is TcpOpened:
            c = self.conn(rec.conn)  # type: ignore[attr-defined]
            c.client = f"{rec.client}:{rec.client_port}"  # type: ignore[attr-defined]
            c.server = f"{rec.server}:{rec.server_port}"  # type: ignore[attr-defined]

    def _login_request(self, c: ConnInfo, pdu: LoginRequest) -> None:
        if not c.login_frames:
            c.login_tsih, c.login_isid, c.login_first_csg = pdu.tsih, pdu.isid, pdu.csg
        c.login_frames.append(pdu.frame)

    def _login_response(self, c: ConnInfo, pdu: LoginResponse) -> None:
        if not c.login_frames:  # capture began inside the login
            c.login_tsih, c.login_isid, c.login_first_csg = pdu.tsih, pdu.isid, None
        c.login_frames.append(pdu.frame)

    def _login_keys(self, rec: LoginKeys) -> None:
        """The state layer's joined keys of a login that ends at this frame (before its PDU)."""
        self.link(rec.conn, rec.session)
        c = self.conn(rec.conn)
        c.login_keys, c.login_answer = {}, {}
        c.auth_used, c.auth_answer = False, None
        for k, v in rec.initiator:
            if k in ("InitiatorName", "TargetName", "SessionType", "InitiatorAlias", "AuthMethod"):
                c.login_keys.setdefault(k, v)
            if k.startswith(("CHAP_", "SRP_", "KRB_")):
                c.auth_used = True
        for k, v in rec.target:
            c.login_answer[k] = v
            if k == "AuthMethod":
                c.auth_answer = v
                if v not in ("None", "Reject", "NotUnderstood", "Irrelevant"):
                    c.auth_used = True
            elif k.startswith(("CHAP_", "SRP_", "KRB_")):
                c.auth_used = True
            elif k == "TargetPortalGroupTag" and c.session is not None:
                s = self.session(c.session)
                if s.tpgt is None:
                    try:
                        s.tpgt = int(v, 0)
                    except ValueError:
                        pass

    def end_login(self, c: ConnInfo) -> None:
        """The login phase of ``c`` is over (rules call this after reading its facts)."""
        c.login_frames = []
        c.login_keys, c.login_answer = {}, {}
        c.auth_used, c.auth_answer = False, None

    def _transition(self, t: Transition) -> None:
        if t.conn is not None:
            self.link(t.conn, t.session)
        if t.machine == "connection" and t.conn is not None:
            c = self.conn(t.conn)
            b = c.before.get(t.side)
            if b is None or b[0] != t.frame:
                c.before[t.side] = (t.frame, c.state[t.side])
            c.state[t.side] = t.to_state
            if t.to_state in FFP_STATES:
                c.ever_ffp = True
        elif t.machine == "session" and t.session is not None and t.side == "target":
            s = self.session(t.session)
            if s.before is None or s.before[0] != t.frame:
                s.before = (t.frame, s.state)
            s.state = t.to_state
            if t.to_state == "LOGGED_IN" and not t.inferred:
                s.logged_in_ts = t.ts_ns
                s.login_seen = True

    def _identified(self, rec: SessionIdentified) -> None:
        """The state layer's SessionIdentified record: who the session is (no Login-key parsing here)."""
        self.link(rec.conn, rec.session)
        s = self.session(rec.session)
        s.initiator_name = rec.initiator_name or s.initiator_name
        s.target_name = rec.target_name or s.target_name
        if rec.session_type != "unknown":
            s.session_type = rec.session_type
        if rec.isid is not None:
            try:
                s.isid = int(rec.isid, 16)
            except ValueError:
                pass
        if rec.tpgt is not None:
            s.tpgt = rec.tpgt

    # ------------------------------------------------------------------ deferral

    def defer(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once the current frame is complete."""
        self._deferred.append(fn)

    def run_deferred(self) -> None:
        while self._deferred:
            todo, self._deferred = self._deferred, []
            for fn in todo:
                fn()

    @property
    def has_deferred(self) -> bool:
        return bool(self._deferred)

    # ------------------------------------------------------------------ emission

    def emit(self, kind: str, frame: int, ts_ns: int, message: str, *, session: str | None = None,
             conn: str | None = None, frames: tuple[int, ...] | list[int] = (), severity: str | None = None,
             rfc: str | None = None, limit_key: tuple[object, ...] | None = None, limit: int = 10) -> None:
        """Append a finding (``severity``/``rfc`` default to the catalogue's)."""
        spec = KINDS[kind]
        sev = severity or spec.severity
        if session is None and conn is not None:
            session = self.session_of(conn)
        fr = sorted(set(frames) | {frame}) if frames else [frame]
        if len(fr) > MAX_FRAMES:
            fr = fr[:MAX_FRAMES]
        if limit_key is not None:
            key = (kind, *limit_key)
            n = self._counts.get(key, 0) + 1
            self._counts[key] = n
            if n == 1:
                for owner in (session, conn):
                    if owner is not None and owner in limit_key:
                        self._owned.setdefault(owner, []).append(key)
            if n > limit:
                sup = self._suppressed.get(key)
                if sup is None:
                    sup = self._suppressed[key] = _Suppressed(kind, sev, session, conn, message,
                                                              first_frame=frame, first_ts=ts_ns)
                sup.count += 1
                if severity_rank(sev) > severity_rank(sup.severity):
                    sup.severity = sev
                if len(sup.frames) < MAX_FRAMES:
                    sup.frames.append(frame)
                return
        self.out.append(Anomaly(frame, ts_ns, kind, sev, session, conn, message, rfc or spec.rfc, tuple(fr)))

    def flush_suppressed(self) -> None:
        """Summaries of the findings the rate limits held back."""
        for sup in self._suppressed.values():
            self._summary(sup)
        self._suppressed.clear()

    def _summary(self, sup: _Suppressed) -> None:
        self.out.append(Anomaly(
            sup.first_frame, sup.first_ts, sup.kind, sup.severity, sup.session, sup.conn,
            f"{sup.count} more finding{'s' if sup.count != 1 else ''} like this one were not listed "
            f"individually; the first was: {sup.first_message}", KINDS[sup.kind].rfc, tuple(sup.frames)))

    # ------------------------------------------------------------------ forgetting

    def forget(self, sid: str | None, conns: Iterable[str] = ()) -> None:
        """Drop what is kept for session ``sid`` and for ``conns`` (and the session's own
        connections): their entries, their rate-limit counters; the summaries of findings held
        back for them are emitted now."""
        owners: list[str] = list(dict.fromkeys(conns))
        if sid is not None:
            s = self.sessions.pop(sid, None)
            if s is not None:
                owners.extend(c for c in s.conns if c not in owners)
            owners.append(sid)
        for owner in owners:
            if owner != sid:
                c = self.conns.pop(owner, None)
                if c is not None and c.session is not None and c.session != sid:
                    other = self.sessions.get(c.session)
                    if other is not None and owner in other.conns:
                        other.conns.remove(owner)
            for key in self._owned.pop(owner, ()):
                self._counts.pop(key, None)
                sup = self._suppressed.pop(key, None)
                if sup is not None:
                    self._summary(sup)


def direction_word(direction: str) -> str:
    """"initiator->target" / "target->initiator"."""
    return "initiator->target" if direction == I2T else "target->initiator" if direction == T2I else direction


def side_of(direction: str) -> str:
    """The side that sends in ``direction``."""
    return "initiator" if direction == I2T else "target"
