"""Connection reinstatement (RFC 7143 §6.3.4) and session reinstatement (§6.3.5): the
Reinstatement record and what a successful or running reinstatement does to the old
connection / session (cleanup M2/M4, target T8, pending closes for old connections still in
full feature phase).
"""

from __future__ import annotations

from analyzer.records import (
    LoginResponse,
)
from analyzer.state import (
    identity,
    machines,
    task_book,
)
from analyzer.state.books import (
    Q3,
    Q4,
    R1,
    R2,
    S1,
    S4,
    S8,
    SIDES,
    Conn,
    Login,
    PendingClose,
    Session,
    isid_hex,
)
from analyzer.state.cleanup import CleanupInput
from analyzer.state.connection import FFP_STATES, ConnInput, ConnState
from analyzer.state.desk import Desk
from analyzer.state.events import (
    Reinstatement,
)
from analyzer.state.session import SessInput, SessState


def closed_for_reinstatement(d: Desk, c: Conn, frame: int, ts: int, inp: ConnInput, what: str) -> bool:
    """The target closed a connection of a session whose reinstatement login is running: the
    implicit logout of the old session (§6.3.5; target T8 "successful reinstatement"), done as
    soon as the login began (tgtd does this) rather than when it succeeds."""
    s = c.session
    x = d.reinstating.get(s.id) if s is not None else None
    if s is None or x is None or x.login is None:
        return False
    by = x.session.id if x.session is not None else "?"
    ev_t = (f"{what}: the target closed the old session's connection for the session reinstatement login "
            f"on {x.id} (frame {x.login.start_frame}), an implicit logout (§6.3.5)")
    c.closure = True
    c.end_outcome, c.end_note, c.end_cause = "terminated_by_logout", f"session reinstated by {by}", "reinstatement"
    machines.conn_step(d, c, "target", ConnInput.REINSTATEMENT_SUCCEEDED, frame, ts, ev_t)
    machines.conn_step(d, c, "initiator", inp, frame, ts, what)
    machines.settle_conn(d, c, frame, ts, ev_t)
    return True


def reinst_record(d: Desk, c: Conn, login: Login, frame: int, ts: int, outcome: str) -> Reinstatement:
    kind = "connection" if login.old_conn is not None else "session"
    old_s = login.old_session.id if login.old_session is not None else (
        c.session.id if c.session is not None else None)
    return Reinstatement(frame, ts, kind, outcome, c.session.id if c.session else None, old_s, c.id,
                         login.old_conn.id if login.old_conn is not None else None,
                         isid_hex(login.isid) or "", login.tsih, login.cid, login.start_frame, login.start_ts,
                         login.old_states.get("initiator"), login.old_states.get("target"))


def conn_reinstated(d: Desk, c: Conn, login: Login, pdu: LoginResponse) -> None:
    """§6.3.4: the old connection is implicitly logged out; CSM-I succeeded (M4).

    An old connection still in full feature phase gets a pending close (target T8, initiator
    T15 + M2/M4), applied when its TCP connection closes; if the target keeps answering on it
    instead, the session has two connections with one CID (a Deviation).
    """
    old = login.old_conn
    assert old is not None
    if any(old.state[side] in FFP_STATES for side in SIDES):
        old.pending = PendingClose("conn_reinstated", pdu.frame, pdu.ts_ns, c.id,
                               f"the successful connection reinstatement of CID {login.cid} on {c.id} "
                               f"(frame {pdu.frame})", by=c.id)
        old.no_new_requests = (f"on a connection replaced by the connection reinstatement on {c.id} "
                               f"(frame {pdu.frame}) (§6.3.4)")
        d.out.append(reinst_record(d, c, login, pdu.frame, pdu.ts_ns, "succeeded"))
        return
    old.end_outcome, old.end_note = "terminated_by_logout", "implicit logout by connection reinstatement"
    old.end_cause = "reinstatement"
    for side in SIDES:
        if old.cleanup[side] in (R1, R2):
            if old.cleanup[side] is R1:  # reinstatement started before we saw the drop
                machines.cleanup_step(d, old, side, CleanupInput.CLEANUP_STARTED, pdu.frame, pdu.ts_ns,
                                   f"CSM-I: reinstatement login on {c.id}", True)
            machines.cleanup_step(d, old, side, CleanupInput.CLEANUP_SUCCEEDED, pdu.frame, pdu.ts_ns,
                               f"CSM-I: reinstatement on {c.id} reached LOGGED_IN", outcome="reinstated")
        elif side == "target" and old.state[side] not in (S1, S8, ConnState.UNKNOWN):
            machines.conn_step(d, old, side, ConnInput.REINSTATEMENT_SUCCEEDED, pdu.frame, pdu.ts_ns,
                            f"successful connection reinstatement on {c.id}")
    old.ended, old.reinstated_by = "reinstated", c.id
    machines.settle_conn(d, old, pdu.frame, pdu.ts_ns, "connection reinstated")
    d.out.append(reinst_record(d, c, login, pdu.frame, pdu.ts_ns, "succeeded"))


def session_reinstated(d: Desk, c: Conn, s: Session, login: Login, pdu: LoginResponse) -> None:
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
                x.pending = PendingClose("sess_reinstated", pdu.frame, pdu.ts_ns, c.id, what, by=s.id)
                x.no_new_requests = f"on a connection of a session reinstated by {s.id} (frame {pdu.frame}) (§6.3.5)"
            continue
        x.end_outcome, x.end_note, x.end_cause = "terminated_by_logout", f"session reinstated by {s.id}", \
            "reinstatement"
        x.closure = True
        if x.state["target"] is S4:
            machines.conn_step(d, x, "target", ConnInput.REINSTATEMENT_SUCCEEDED, pdu.frame, pdu.ts_ns, ev_t)
        for side in SIDES:
            if x.state[side] is S8 and x.cleanup[side] is None:
                machines.enter_cleanup(d, x, side, pdu.frame, pdu.ts_ns, "session reinstatement")
            machines.cleanup_step(d, x, side, CleanupInput.CLOSE_SESSION_SUCCESS, pdu.frame, pdu.ts_ns, ev_t,
                               outcome="session_reinstated")
        if x.ended in ("open", "dropped"):
            x.ended = "reinstated"
        machines.settle_conn(d, x, pdu.frame, pdu.ts_ns, ev_t)
    old.reinstated_by, s.reinstated_from = s.id, old.id
    if not any(x.pending for x in old.conns):
        complete_session_reinstatement(d, old, s.id, pdu.frame, pdu.ts_ns, what, False)
    identity.unindex(d, old)
    identity.index(d, s)
    d.out.append(reinst_record(d, c, login, pdu.frame, pdu.ts_ns, "succeeded"))


def complete_session_reinstatement(d: Desk, old: Session, by: str, frame: int, ts: int, what: str,
                                    inferred: bool) -> None:
    """The old session's machines once none of its connections is in full feature phase any more."""
    ev_t = f"{what}: the old session is cleared (implicit close-session logout, §6.3.5)"
    for x in old.conns:
        x.was_ffp = {side: x.state[side] in FFP_STATES for side in SIDES}
    if old.state["initiator"] in (Q3, SessState.UNKNOWN):
        machines.sess_step(d, old, "initiator", SessInput.SESSION_FAILED, frame, ts,
                        "session reinstatement: the old session must have failed", True)
    for side in SIDES:
        st = old.state[side]
        if st in (Q4, SessState.Q5_IN_CONTINUE):
            machines.sess_step(d, old, side, SessInput.SESSION_REINSTATED, frame, ts, ev_t, inferred)
        elif st in (Q3, SessState.UNKNOWN, SessState.Q2_ACTIVE):
            machines.sess_step(d, old, side, SessInput.SESSION_CLOSED, frame, ts, ev_t, inferred)
    for t in list(old.tasks.values()):
        task_book.end_unanswered(d, old, t, frame, ts, "terminated_by_logout", "reinstatement",
                             f"session reinstated by {by}")
    old.ended = "reinstated"
