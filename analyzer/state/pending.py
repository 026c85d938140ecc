"""Pending closes: closes RFC 7143 derives from an event on another connection (close-session
Logout §11.14, a Logout naming another CID, connection §6.3.4 and session §6.3.5
reinstatement). Applied when the connection's own TCP connection closes (or, inferred, at
capture end); cancelled with a Deviation when the target sends on the connection instead.
"""

from __future__ import annotations

from analyzer.iscsi.opcodes import (
    logout_reason_name,
)
from analyzer.records import (
    T2I,
    Pdu,
)
from analyzer.state import (
    desk,
    machines,
    reinstatement,
)
from analyzer.state.books import (
    PDU_NAMES,
    R1,
    S1,
    S4,
    S8,
    SIDES,
    Conn,
)
from analyzer.state.cleanup import CleanupInput
from analyzer.state.connection import FFP_STATES, ConnInput, ConnState
from analyzer.state.desk import Desk


def resolve_pending(d: Desk, c: Conn, frame: int, ts: int, how: str, inferred: bool,
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
            if c.state[side] in FFP_STATES or c.state[side] in (ConnState.S2_XPT_WAIT, S4):
                machines.conn_step(d, c, side, ConnInput.OTHER_CONN_CLOSE_SESSION, frame, ts, ev[side], inferred)
        if c.ended in ("open", "dropped"):
            c.ended = "session_closed"
    elif p.kind in ("named_logout", "carrier_logout"):
        c.closure = p.reason == 1
        c.end_outcome, c.end_note, c.end_cause = "terminated_by_logout", logout_reason_name(p.reason), "logout"
        for side in SIDES:
            if c.state[side] in (ConnState.S5_LOGGED_IN, ConnState.S7_LOGOUT_REQUESTED):
                machines.conn_step(d, c, side, ConnInput.LOGOUT_REQUEST, frame, ts,
                                f"{p.what}, taken as closing this connection", True)
            if c.state[side] is ConnState.S6_IN_LOGOUT:
                machines.conn_step(d, c, side, ConnInput.LOGOUT_RESPONSE_OK, frame, ts, ev[side], True)
        c.ended = "logout"
        if p.kind == "carrier_logout":
            cid = f"CID {c.cid}" if c.cid is not None else "the carrier"
            desk.deviation(d, c, None, frame, ts, "logout_closed_wrong_connection", "§11.14",
                            f"the target closed the connection that carried the Logout ({cid}) after {p.what}; "
                            f"a Logout naming another CID closes that connection only, the carrier stays up",
                            p.frame, cid=p.cid, expected=p.cid, observed=c.cid)
    else:  # conn_reinstated, sess_reinstated
        sess = p.kind == "sess_reinstated"
        c.closure = sess
        c.end_outcome, c.end_cause = "terminated_by_logout", "reinstatement"
        c.end_note = f"session reinstated by {p.by}" if sess else "implicit logout by connection reinstatement"
        if c.state["target"] not in (S1, S8, ConnState.UNKNOWN):
            machines.conn_step(d, c, "target", ConnInput.REINSTATEMENT_SUCCEEDED, frame, ts, ev["target"], inferred)
        if c.state["initiator"] in FFP_STATES:
            if inp is None:  # no wire event: the initiator must have considered it failed (§6.3.4/§6.3.5)
                machines.conn_step(d, c, "initiator", ConnInput.TRANSPORT_TIMEOUT, frame, ts,
                                f"{p.what}: the initiator must have considered this connection failed", True)
            else:
                machines.conn_step(d, c, "initiator", inp, frame, ts, how, inferred)
        machines.settle_conn(d, c, frame, ts, ev["target"])
        for side in SIDES:
            if c.cleanup[side] is not R1:
                continue
            if sess:
                machines.cleanup_step(d, c, side, CleanupInput.CLOSE_SESSION_SUCCESS, frame, ts, ev[side], inferred,
                                   "session_reinstated")
            else:
                machines.cleanup_step(d, c, side, CleanupInput.CLEANUP_STARTED, frame, ts, ev[side], True)
                machines.cleanup_step(d, c, side, CleanupInput.CLEANUP_SUCCEEDED, frame, ts, ev[side], inferred,
                                   "reinstated")
        c.ended = "reinstated"
        if not sess:
            c.reinstated_by = p.by
    machines.settle_conn(d, c, frame, ts, ev["target"])
    old = c.session
    if p.kind == "sess_reinstated" and old is not None and not any(x.pending for x in old.conns):
        reinstatement.complete_session_reinstatement(d, old, p.by or "?", frame, ts, p.what, inferred)
    return True


def pending_pdu(d: Desk, c: Conn, pdu: Pdu) -> None:
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
    name = PDU_NAMES.get(type(pdu).__name__, "PDU")
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
    desk.deviation(d, c, None, pdu.frame, pdu.ts_ns, kind, rfc, detail, p.frame, cid=c.cid)
