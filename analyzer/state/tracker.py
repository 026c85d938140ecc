"""SessionTracker: wires the connection, cleanup and session machines, tasks, negotiation
and sequence checks together (RFC 7143 §4.2.2, §6, §7, §8, §11).

The tracker itself is dispatch: ``feed`` hands each record to a collaborator module with one
job, all working on one shared :class:`~analyzer.state.desk.Desk`:

* ``identity`` -- connections, sessions and their indexes (§6.3), SessionIdentified;
* ``machines`` -- stepping the connection/cleanup/session tables, and the coupling between the
  machines as the state-triggered rows of ``coupling.py`` say (no state change outside a row);
* ``deadlines`` -- inferred timeouts on the capture clock (M1, N5/N6);
* ``text_series`` -- key=value text rejoined across C-bit PDUs (§6.1);
* ``logins`` -- the login phase (§6.3, §11.12, §11.13), LoginKeys;
* ``reinstatement`` -- connection (§6.3.4) and session (§6.3.5) reinstatement;
* ``pending`` -- closes implied by an event on another connection;
* ``task_book`` / ``full_feature`` -- tasks by ITT and the full-feature-phase PDUs;
* ``logouts`` -- Logout (§11.14, §11.15) and Async Message (§11.9.1);
* ``summaries`` -- capture end and the Session/ConnectionSummary records.

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
(``text_series.ltds``, :class:`~analyzer.state.negotiation.TextJoiner`): negotiation, the session's names
(InitiatorName, TargetName, SessionType, TargetPortalGroupTag, TargetAlias) and SendTargets results
come from the joined text, never from a PDU's fragment. A series ends with its C=0 PDU; a new ITT,
the end of the login phase or of the Text exchange abandons one still open. Breaks of the rules
(a C=1 PDU answered with data, §6.2; C with T/F set; a pair cut without the C bit, as tgtd does
with F=0; an abandoned series) become Deviation records.

A capture that begins mid-connection starts the machines in the non-RFC ``UNKNOWN`` and
places them with inferred transitions (see ``connection.py``). What such a capture cannot show
stays unknown, never an RFC default: a key takes its §13 default only when the whole login is in
the capture (``Login.start_seen``), so MaxRecvDataSegmentLength is None ("unknown") with the
largest data segment seen each way as what the traffic proves of it, AuthMethod is absent, and the
digests are one :class:`~analyzer.records.DigestFact` per connection: negotiated in the captured
login, else detected from the full-feature PDUs as the framer framed them, else unknown. A login
that fails, is redirected or is still open at capture end reports the keys it settled so far
(``logins.partial_params``). A Status-Class 1 answer (§11.13.5) ends the connection and session as
``redirected`` (not ``login_failed``) with its TargetAddress, and the next leading login of the
same InitiatorName to the same TargetName is linked to it (``redirected_from``). Responses whose ITT we
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
tasks whose answer fell into a capture gap are concluded (``lost_in_capture_gap``) once idle
too long or beyond a count (``task_book.release_gap_tasks``); the per-session CmdSN history is
bounded. Everything else of a session (its connections, its
index entries, its CmdSN history, its summaries) stays until the capture ends, unless the
caller ``forget``s the session once it has ended (live capture over days does, after a
while): session ids come from a counter, so a forgotten id is never handed out again.
``sessions(live_only=True)`` / ``connections(live_only=True)`` walk an index of the sessions
and connections not yet ended (pruned lazily as they end), so a periodic snapshot costs
O(open ones), not O(all ever seen).
"""

from __future__ import annotations

from analyzer.records import (
    I2T,
    T2I,
    FramingResync,
    LoginRequest,
    LoginResponse,
    MalformedPdu,
    Pdu,
    Record,
    TcpClosed,
    TcpFin,
    TcpGap,
    TcpOpened,
    TcpRecord,
    TcpRst,
)
from analyzer.state import (
    connection,
    deadlines,
    full_feature,
    identity,
    logins,
    machines,
    pending,
    reinstatement,
    summaries,
    task_book,
)
from analyzer.state.books import (
    S1,
    SIDES,
)
from analyzer.state.connection import FFP_STATES, ConnInput
from analyzer.state.desk import Desk
from analyzer.state.events import (
    ConnectionSummary,
    SessionSummary,
    TrackerError,
)


class SessionTracker:
    """Sessions, connections, tasks and their RFC 7143 state histories from a record stream."""

    def __init__(self, *, time2wait_default: int = 2, time2retain_default: int = 20,
                 max_gap_tasks: int = 1024, gap_task_idle_s: int = 60) -> None:
        """``max_gap_tasks`` / ``gap_task_idle_s``: open tasks whose answer may have fallen into a
        capture gap are concluded as ``lost_in_capture_gap`` when more than this many are open, or
        when one has been idle this long (capture time) while its target answered later PDUs."""
        self._d = Desk(time2wait_default, time2retain_default, gap_task_limit=max(1, max_gap_tasks),
                       gap_task_idle_ns=gap_task_idle_s * 1_000_000_000)

    def feed(self, record: Record) -> list[Record]:
        """Account for one record (capture order) and return the records it produced."""
        out = self._d.out = []
        try:
            deadlines.fire_due(self._d, record.ts_ns)
            self._d.last_frame = max(self._d.last_frame, record.frame)
            self._d.last_ts = max(self._d.last_ts, record.ts_ns)
            self._dispatch(record)
            task_book.release_gap_tasks(self._d, self._d.last_ts)
        except Exception as exc:  # noqa: BLE001 - safety net: never raise on input (house style §2)
            conn = getattr(record, "conn", None)
            out.append(TrackerError(record.frame, record.ts_ns, conn if isinstance(conn, str) else None,
                                    f"{type(record).__name__}: {exc!r}"))
        return out

    def tick(self, ts_ns: int) -> list[Record]:
        """Capture time passed: fire the inferred timeouts due by ``ts_ns``."""
        out = self._d.out = []
        try:
            deadlines.fire_due(self._d, ts_ns)
            task_book.release_gap_tasks(self._d, ts_ns)
        except Exception as exc:  # noqa: BLE001
            out.append(TrackerError(self._d.last_frame, ts_ns, None, f"tick: {exc!r}"))
        return out

    def finish(self, ts_ns: int) -> list[Record]:
        """End of capture: fire due timeouts, close open tasks, emit the summaries."""
        out = self._d.out = []
        try:
            deadlines.fire_due(self._d, ts_ns)
            summaries.finish_capture(self._d, ts_ns)
        except Exception as exc:  # noqa: BLE001
            out.append(TrackerError(self._d.last_frame, ts_ns, None, f"finish: {exc!r}"))
        return out

    def sessions(self, live_only: bool = False) -> list[SessionSummary]:
        """Current snapshot of every session seen and not forgotten, in id order.

        ``live_only``: only the sessions that have not ended (see ``forget`` for what ended
        means: a FAILED session waiting for its Time2Retain, or one whose TCP connections are
        still open, has not). That walks an index of open sessions, so calling it periodically
        costs O(open sessions) whatever the number of sessions seen.
        """
        if live_only:
            return [summaries.session_summary(self._d, s, s.last_frame, s.last_ts)
                    for s in identity.open_session_list(self._d)]
        return [summaries.session_summary(self._d, s, s.last_frame, s.last_ts) for s in self._d.sessions.values()]

    def connections(self, live_only: bool = False) -> list[ConnectionSummary]:
        """Current snapshot of every connection seen and not forgotten.

        ``live_only``: only the connections that have not ended (TCP connection still open, or
        a connection machine not back in FREE, or a cleanup, login or implied close pending).
        """
        if live_only:
            return [summaries.conn_summary(self._d, c, c.last_frame, c.last_ts)
                    for c in identity.open_conn_list(self._d)]
        return [summaries.conn_summary(self._d, c, c.last_frame, c.last_ts) for c in self._d.conns.values()]

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
        s = self._d.sessions[session_id]
        identity.unindex(self._d, s)
        del self._d.sessions[session_id]
        self._d.open_sessions.pop(session_id, None)
        for c in s.conns:
            if self._d.conns.get(c.id) is c:
                del self._d.conns[c.id]
            self._d.open_conns.pop(c.id, None)
            c.session = None  # break the cycle: freed at once, not at the next GC
        s.conns = []

    def forget_connection(self, conn: str) -> None:
        """Drop an ended connection that belongs to no session (a TCP connection that never
        carried a PDU, e.g. a port probe). No-op for a connection of a session (use ``forget``)
        or one that has not ended (see ``forget``)."""
        if not self.connection_ended(conn):
            return
        del self._d.conns[conn]
        self._d.open_conns.pop(conn, None)

    def ended(self, session_id: str) -> bool:
        """True when the session is known and has ended, so that ``forget`` would drop it."""
        s = self._d.sessions.get(session_id)
        return s is not None and identity.session_ended(self._d, s)

    def connection_ended(self, conn: str) -> bool:
        """True when ``forget_connection`` would drop ``conn`` (ended, and of no session)."""
        c = self._d.conns.get(conn)
        return c is not None and c.session is None and identity.conn_ended(self._d, c)

    def kept(self) -> dict[str, int]:
        """Sizes of what the tracker keeps now (for memory tests and live monitoring)."""
        d = self._d
        return {"sessions": len(d.sessions), "connections": len(d.conns),
                "open_tasks": sum(len(s.tasks) for s in d.sessions.values()),
                "gap_tasks": len(d.gap_tasks), "deadlines": len(d.heap)}

    def session_connections(self, session_id: str) -> tuple[str, ...]:
        """Ids of the connections of a session (empty for an unknown or forgotten id)."""
        s = self._d.sessions.get(session_id)
        return tuple(c.id for c in s.conns) if s is not None else ()

    def _dispatch(self, r: Record) -> None:
        if isinstance(r, Pdu):
            self._pdu(r)
        elif isinstance(r, TcpRecord):
            self._tcp(r)
        elif isinstance(r, (MalformedPdu, FramingResync)):
            c = self._d.conns.get(r.conn)
            if c is not None and not (isinstance(r, FramingResync) and r.found and not r.skipped):
                task_book.damage(self._d, c, r.direction)

    def _tcp(self, r: TcpRecord) -> None:
        if isinstance(r, TcpOpened):
            if r.conn in self._d.conns:
                return
            c = identity.conn_for(self._d, r)
            c.client, c.client_port, c.server, c.server_port = r.client, r.client_port, r.server, r.server_port
            if r.handshake:
                c.handshake, c.mid_stream = True, False
                c.state = {"initiator": S1, "target": S1}
                machines.conn_step(self._d, c, "initiator", ConnInput.TRANSPORT_CONNECT_REQUESTED, r.frame, r.ts_ns,
                                "SYN sent: transport connect requested")
                machines.conn_step(self._d, c, "initiator", ConnInput.TRANSPORT_ESTABLISHED, r.frame, r.ts_ns,
                                "TCP handshake completed: initiator starts login")
                machines.conn_step(self._d, c, "target", ConnInput.TRANSPORT_ESTABLISHED, r.frame, r.ts_ns,
                                "TCP handshake completed: valid incoming connection")
            return
        if isinstance(r, TcpGap):
            gapped = self._d.conns.get(r.conn)
            # A snap-length cut loses no PDU (the framer skips cut data by its length; a cut
            # header shows as a FramingResync, which does count as damage).
            if gapped is not None and not r.snaplen:
                task_book.damage(self._d, gapped, r.direction)
            return
        if not isinstance(r, (TcpFin, TcpRst, TcpClosed)):
            return
        c = identity.conn_for(self._d, r)
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
        if c.pending is not None and pending.resolve_pending(self._d, c, r.frame, r.ts_ns, f"{what} (frame {r.frame})",
                                                           False, inp, by):
            return
        if by == "target" and any(c.state[side] in FFP_STATES for side in SIDES):
            task_book.dropped_on_request(self._d, c, r.frame, r.ts_ns, rst)
            if reinstatement.closed_for_reinstatement(self._d, c, r.frame, r.ts_ns, inp, what):
                return
        machines.conn_both(self._d, c, inp, r.frame, r.ts_ns, {side: what for side in SIDES})

    def _pdu(self, pdu: Pdu) -> None:
        c = identity.conn_for(self._d, pdu)
        c.pdus += 1
        if c.pending is not None:
            pending.pending_pdu(self._d, c, pdu)
        if pdu.direction == T2I:
            c.last_t2i_frame = pdu.frame
        c.last_pdu_frame, c.last_pdu_dir = pdu.frame, pdu.direction
        if isinstance(pdu, LoginRequest):
            logins.login_request(self._d, c, pdu)
            return
        if isinstance(pdu, LoginResponse):
            logins.login_response(self._d, c, pdu)
            return
        if c.header_digest.source != "negotiated" or c.data_digest.source != "negotiated":
            logins.observe_digests(c, pdu)
        if pdu.direction == T2I:  # a lower bound of the receiver's MaxRecvDataSegmentLength (§13.12)
            c.dsl_seen_t2i = max(c.dsl_seen_t2i, pdu.dsl)
        else:
            c.dsl_seen_i2t = max(c.dsl_seen_i2t, pdu.dsl)
        s = identity.session_of(self._d, c, pdu.frame, pdu.ts_ns)
        logins.check_dsl(self._d, c, s, pdu)
        if pdu.direction == I2T:
            full_feature.request(self._d, c, s, pdu)
        else:
            full_feature.response(self._d, c, s, pdu)
