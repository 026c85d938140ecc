"""Logout (RFC 7143 §11.14, §11.15) and Async Message (§11.9.1): the connection transitions of a
Logout for this connection, CSM-E for a Logout naming another CID (§8.2), closing every
connection of the session on a close-session Logout, and the target's drop/logout requests.
"""

from __future__ import annotations

from analyzer.iscsi.opcodes import (
    async_event_name,
    logout_reason_name,
    logout_response_name,
)
from analyzer.records import (
    AsyncMessage,
    LogoutRequest,
    LogoutResponse,
)
from analyzer.state import (
    connection,
    desk,
    machines,
    task_book,
)
from analyzer.state.books import (
    R1,
    R2,
    S4,
    SIDES,
    Conn,
    PendingClose,
    Session,
)
from analyzer.state.cleanup import CleanupInput
from analyzer.state.connection import FFP_STATES, ConnInput, ConnState
from analyzer.state.desk import Desk


def logout_request(d: Desk, c: Conn, s: Session, pdu: LogoutRequest) -> None:
    t = task_book.new_task(d, s, c, pdu, "logout", pdu.cmdsn)
    t.logout_reason, t.logout_cid = pdu.reason, pdu.cid
    what = f"Logout Request ({logout_reason_name(pdu.reason)}, CID {pdu.cid})"
    ev = desk.events(pdu, what)
    if pdu.reason == 0:
        for x in s.conns:
            if x is not c and not x.no_new_requests:
                x.no_new_requests = f"after the close-session Logout Request on {c.id} (frame {pdu.frame}) (§11.14)"
    inp = connection.classify_pdu(pdu, own_cid=c.cid, logout_for_self=True)
    if inp is ConnInput.LOGOUT_REQUEST:
        c.no_new_requests = "after a Logout Request (§11.14)"
        machines.conn_both(d, c, inp, pdu.frame, pdu.ts_ns, ev)
        return
    # CSM-E (§8.2): a Logout for another CID riding this connection.
    machines.conn_both(d, c, ConnInput.FFP_REQUEST, pdu.frame, pdu.ts_ns, ev)
    named = conn_by_cid(s, pdu.cid, exclude=c)
    if named is None:
        return
    x = named
    x.no_new_requests = f"after the Logout Request naming its CID {pdu.cid} on {c.id} (frame {pdu.frame}) (§11.14)"
    if any(x.state[side] in FFP_STATES for side in SIDES):
        # §11.14 expects such a Logout for a CID whose TCP connection is gone; this one still
        # looks alive, so the Logout Response and its own wire decide (see _logout_response).
        return
    for side in SIDES:
        if x.cleanup[side] is R1:
            machines.cleanup_step(d, x, side, CleanupInput.CLEANUP_STARTED, pdu.frame, pdu.ts_ns,
                               f"CSM-E: {ev[side]} on {c.id}")


def conn_by_cid(s: Session, cid: int, exclude: Conn) -> Conn | None:
    return next((x for x in reversed(s.conns) if x is not exclude and x.cid == cid
                 and x.ended not in ("logout", "session_closed", "reinstated")), None)


def logout_response(d: Desk, c: Conn, s: Session, pdu: LogoutResponse) -> None:
    t = task_book.task_for(d, c, s, pdu, "logout")
    reason = t.logout_reason if t is not None and t.logout_reason is not None else 1
    cid = t.logout_cid if t is not None and t.logout_cid is not None else c.cid
    for_self = reason == 0 or c.cid is None or cid == c.cid
    ok = pdu.response == 0
    what = f"Logout Response {pdu.response} ({logout_response_name(pdu.response)})"
    ev = desk.events(pdu, what)
    if t is not None:
        task_book.emit_task(d, s, t, t.finish(pdu.frame, pdu.ts_ns, "completed" if ok else "failed",
                                       response=pdu.response))
    erl = s.params.get("ErrorRecoveryLevel") if s.params_known else None
    if ok and reason == 2 and erl == "0":
        desk.deviation(d, c, s, pdu.frame, pdu.ts_ns, "logout_response_unexpected", "§11.15.1",
                        f"the target answered 0 (closed successfully) to a Logout Request removing CID {cid} "
                        f"for recovery although ErrorRecoveryLevel is 0; it should answer 2 (connection "
                        f"recovery is not supported)", t.first_frame if t is not None else pdu.frame,
                        itt=pdu.itt, cid=cid, expected=2, observed=0)
    if not ok:  # the connection(s) stay in use: new requests are fine again
        for y in (s.conns if reason == 0 else [c]):
            y.no_new_requests = ""
    if not for_self:
        # CSM-E outcome for the named connection (§8.2: M4 / M3).
        machines.conn_both(d, c, ConnInput.FFP_RESPONSE, pdu.frame, pdu.ts_ns, ev)
        x = conn_by_cid(s, cid, exclude=c) if cid is not None else None
        req = f"frame {t.first_frame}, " if t is not None else ""
        carrier = PendingClose("carrier_logout", pdu.frame, pdu.ts_ns, c.id,
                           f"the Logout ({logout_reason_name(reason)}) naming CID {cid} on this connection "
                           f"({req}answered 0 at frame {pdu.frame})", reason, cid)
        if x is None:
            if ok:
                if not s.mid_stream:
                    desk.deviation(d, c, s, pdu.frame, pdu.ts_ns, "logout_response_unexpected", "§11.15.1",
                                    f"the target answered 0 (closed successfully) to a Logout Request for CID "
                                    f"{cid}, which no connection of the session has (none in the capture); it "
                                    f"should answer 1 (CID not found)", t.first_frame if t is not None else pdu.frame,
                                    itt=pdu.itt, cid=cid, expected=1, observed=0)
                c.pending = carrier
            return
        if any(x.cleanup[side] is R2 for side in SIDES):
            for side in SIDES:
                if x.cleanup[side] is R2:
                    machines.cleanup_step(d, x, side,
                                       CleanupInput.CLEANUP_SUCCEEDED if ok else CleanupInput.CLEANUP_FAILED,
                                       pdu.frame, pdu.ts_ns, f"CSM-E: {ev[side]} on {c.id}", outcome="logged_out")
            if ok:
                x.ended = "logout"
        elif ok and any(x.state[side] in FFP_STATES for side in SIDES):
            x.pending = PendingClose("named_logout", pdu.frame, pdu.ts_ns, c.id,
                                 f"the successful Logout ({logout_reason_name(reason)}) naming CID {cid} "
                                 f"on {c.id} (frame {pdu.frame})", reason, cid)
            c.pending = carrier
        return
    if ok:
        c.end_outcome, c.end_note = "terminated_by_logout", logout_reason_name(reason)
        c.end_cause = "logout"
        c.ended = "logout"
        if reason == 0:
            close_session(d, c, s, pdu, ev)
            return
        c.closure = reason == 1
        machines.conn_both(d, c, ConnInput.LOGOUT_RESPONSE_OK, pdu.frame, pdu.ts_ns, ev)
        return
    if pdu.response in (2, 3):  # §11.15: Time2Wait/Time2Retain valid for responses 2 and 3
        c.cleanup_override = (pdu.time2wait, pdu.time2retain, "logout_response")
    machines.conn_both(d, c, ConnInput.LOGOUT_RESPONSE_FAIL, pdu.frame, pdu.ts_ns, ev)


def close_session(d: Desk, c: Conn, s: Session, pdu: LogoutResponse, ev: dict[str, str]) -> None:
    """§11.14: a successful close-session logout closes every connection of the session.

    Connections in CLEANUP_WAIT are cleaned up at once (M1/M4). Connections still in (or
    logging in to) full feature phase get a pending close (T8/T7/T13/T18), applied when their
    own TCP connection closes; if the target sends on one instead, it kept it open (a
    Deviation) and it stays in full feature phase. The session is closed when its last
    full-feature connection is gone.
    """
    machines.conn_both(d, c, ConnInput.LOGOUT_RESPONSE_OK, pdu.frame, pdu.ts_ns, ev, settle=False)
    c.closure = True
    other = {side: f"close-session Logout Response "
                   f"{'received' if side == 'initiator' else 'sent'} on {c.id} (frame {pdu.frame})"
             for side in SIDES}
    cid = f"CID {c.cid} ({c.id})" if c.cid is not None else c.id
    what = f"the successful close-session Logout on {cid} (frame {pdu.frame})"
    for x in s.conns:
        if x is c:
            continue
        if any(x.state[side] in FFP_STATES or x.state[side] in (ConnState.S2_XPT_WAIT, S4) for side in SIDES):
            if x.pending is None or x.pending.kind != "close_session":
                x.pending = PendingClose("close_session", pdu.frame, pdu.ts_ns, c.id, what)
            continue
        cleaning = any(x.cleanup[side] in (R1, R2) for side in SIDES)
        for side in SIDES:
            machines.cleanup_step(d, x, side, CleanupInput.CLOSE_SESSION_SUCCESS, pdu.frame, pdu.ts_ns, other[side],
                               outcome="session_closed")
        if cleaning and x.ended in ("open", "dropped"):
            x.ended = "session_closed"
    machines.settle_conn(d, c, pdu.frame, pdu.ts_ns, other["target"])
    for t in list(s.tasks.values()):
        tc = d.conns.get(t.conn)
        if tc is None or (tc.pending is None and not any(tc.state[sd] in FFP_STATES for sd in SIDES)):
            task_book.end_unanswered(d, s, t, pdu.frame, pdu.ts_ns, "terminated_by_logout", "logout",
                                 "close the session")


def async_message(d: Desk, c: Conn, s: Session, pdu: AsyncMessage) -> None:
    """§11.9.1: event 1 requests logout (T11/T12/T14); 2/3 announce drops (T15/T16/T17)."""
    name = async_event_name(pdu.async_event)
    what = f"Async Message AsyncEvent={pdu.async_event} ({name}"
    if pdu.async_event == 2:
        what += f", CID {pdu.param1}"
    if pdu.async_event in (2, 3):
        what += f", Time2Wait {pdu.param2}, Time2Retain {pdu.param3}"
    what += ")"
    ev = desk.events(pdu, what)
    if pdu.async_event == 3:
        targets = [x for x in s.conns if any(x.state[sd] in FFP_STATES | {ConnState.UNKNOWN} for sd in SIDES)]
        if c not in targets:
            targets.append(c)
    elif pdu.async_event == 2:
        x = c if c.cid is None or pdu.param1 == c.cid else conn_by_cid(s, pdu.param1, exclude=c)
        targets = [x] if x is not None else []
    else:
        targets = []
    for x in targets:
        x.cleanup_override = (pdu.param2, pdu.param3, "async_event")
        machines.conn_both(d, x, ConnInput.ASYNC_DROP, pdu.frame, pdu.ts_ns,
                        ev if x is c else {sd: f"{ev[sd]} on {c.id}" for sd in SIDES})
    if c not in targets:
        inp = ConnInput.ASYNC_REQUEST_LOGOUT if pdu.async_event == 1 else ConnInput.FFP_RESPONSE
        machines.conn_both(d, c, inp, pdu.frame, pdu.ts_ns, ev)
