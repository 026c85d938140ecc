"""Driving the connection (§8.1), cleanup (§8.2) and session (§8.3) machines of a connection /
session, both sides at once, and the coupling between them (what a connection-state change
implies for cleanup, tasks, the login and the session machine).
"""

from __future__ import annotations

from analyzer.state import (
    cleanup,
    connection,
    deadlines,
    desk,
    identity,
    logins,
    session,
    task_book,
)
from analyzer.state.books import (
    NS,
    Q3,
    R1,
    R2,
    R3,
    S1,
    S4,
    S8,
    SIDES,
    Conn,
    Session,
)
from analyzer.state.cleanup import CleanupInput, CleanupState
from analyzer.state.connection import FFP_STATES, ConnInput, ConnState
from analyzer.state.desk import Desk
from analyzer.state.events import (
    CleanupDeadline,
    CleanupEnded,
    Transition,
)
from analyzer.state.machine import Spec, advance
from analyzer.state.session import SessInput, SessState

_CONN_SPECS: dict[str, Spec[ConnState, ConnInput]] = {"initiator": connection.INITIATOR,
                                                      "target": connection.TARGET}
_CLEANUP_SPECS: dict[str, Spec[CleanupState, CleanupInput]] = {"initiator": cleanup.INITIATOR,
                                                               "target": cleanup.TARGET}
_SESS_SPECS: dict[str, Spec[SessState, SessInput]] = {"initiator": session.INITIATOR, "target": session.TARGET}

_I_STAYS, _T_STAYS = connection.INITIATOR_STAYS, connection.TARGET_STAYS
_EMPTY: frozenset[ConnInput] = frozenset()


def conn_step(d: Desk, c: Conn, side: str, inp: ConnInput, frame: int, ts: int, event: str,
               inferred: bool = False) -> bool:
    old = c.state[side]
    new, recs = advance(_CONN_SPECS[side], old, inp, desk.ctx(d, c, None, frame, ts, event, inferred))
    d.out.extend(recs)
    c.state[side] = new
    return new is not old


def conn_both(d: Desk, c: Conn, inp: ConnInput, frame: int, ts: int, events: dict[str, str],
               inferred: bool = False, settle: bool = True) -> None:
    for side in SIDES:
        conn_step(d, c, side, inp, frame, ts, events[side], inferred)
    if settle:
        settle_conn(d, c, frame, ts, events["target"])


def cleanup_step(d: Desk, c: Conn, side: str, inp: CleanupInput, frame: int, ts: int, event: str,
                  inferred: bool = False, outcome: str = "") -> None:
    st = c.cleanup[side]
    if st is None:
        return
    # cleanup states are inferred from the connection machine: a violation says more about us
    new, recs = advance(_CLEANUP_SPECS[side], st, inp, desk.ctx(d, c, None, frame, ts, event, inferred, True))
    d.out.extend(recs)
    c.cleanup[side] = new
    if new is R1 and st is R2:  # M3: back to waiting; the original deadline still holds
        deadline = max(c.cleanup_deadline.get(side, ts), ts)
        c.cleanup_deadline[side] = deadline
        deadlines.push(d, deadline, "cleanup", c.id, side, c.cleanup_gen[side])
    if new is R3 and st is not R3:
        label = next((r.label for r in recs if isinstance(r, Transition)), None) or "M1"
        d.out.append(CleanupEnded(frame, ts, c.session.id if c.session else None, c.id, c.cid, side,
                                      label, outcome, inferred, ts - c.cleanup_entered.get(side, ts)))
        if c.state[side] is S8:  # §8.2: R1 is S8 and R3 is S1; the connection machine follows
            c.state[side] = S1
            d.out.append(Transition(frame, ts, c.session.id if c.session else None, c.id, "connection",
                                        side, S8.value, S1.value, label,
                                        f"cleanup machine reached FREE ({label}: {event}); R3 is S1 (§8.2)",
                                        inferred))


def sess_step(d: Desk, s: Session, side: str, inp: SessInput, frame: int, ts: int, event: str,
               inferred: bool = False) -> bool:
    old = s.state[side]
    # session states are derived from connection states, often inferred (mid-stream, timeouts)
    new, recs = advance(_SESS_SPECS[side], old, inp, desk.ctx(d, None, s, frame, ts, event, inferred, True))
    d.out.extend(recs)
    s.state[side] = new
    if new is not old:
        if not s.live():
            identity.unindex(d, s)
        elif s.id not in d.open_sessions and s.id in d.sessions:
            d.open_sessions[s.id] = s
    return new is not old


def sess_both(d: Desk, s: Session, inp: SessInput, frame: int, ts: int, event: str,
               inferred: bool = False) -> None:
    for side in SIDES:
        sess_step(d, s, side, inp, frame, ts, event, inferred)


def settle_conn(d: Desk, c: Conn, frame: int, ts: int, cause: str) -> None:
    """Consequences of connection-state changes: cleanup machines, tasks, login end, session."""
    s = c.session
    for side in SIDES:
        if c.state[side] is S8 and c.cleanup[side] is None:
            enter_cleanup(d, c, side, frame, ts, cause)
    left = all(c.state[side] in (S1, S8) for side in SIDES)
    if c.login is not None and not any(c.state[side] in (S4, ConnState.UNKNOWN) for side in SIDES):
        logins.login_failed(d, c, frame, ts, None, cause)
    if left:
        task_book.close_conn_tasks(d, c, frame, ts, c.end_outcome, c.end_note)
        if c.ended == "open":
            c.ended = "dropped"
    for side in SIDES:
        ffp = c.state[side] in FFP_STATES
        if ffp and not c.was_ffp[side]:
            c.was_ffp[side] = True
            if s is not None and s.state[side] is SessState.UNKNOWN:
                identity.identified(d, s, c, frame, ts)
                sess_step(d, s, side, SessInput.CONN_LOGGED_IN, frame, ts,
                                f"connection {c.id} seen in {c.state[side].value}", True)
        elif not ffp and c.was_ffp[side]:
            c.was_ffp[side] = False
            if s is not None:
                session_lost_conn(d, s, side, c, frame, ts, cause)


def session_lost_conn(d: Desk, s: Session, side: str, c: Conn, frame: int, ts: int, cause: str) -> None:
    """§6.3.6: closure or failure when the last full-feature connection of a side is gone."""
    if any(x.state[side] in FFP_STATES for x in s.conns):
        return
    if s.state[side] not in (Q3, SessState.UNKNOWN):
        return
    awaiting = any(x.cleanup[side] in (R1, R2) for x in s.conns)
    if c.closure and not awaiting:
        sess_step(d, s, side, SessInput.SESSION_CLOSED, frame, ts,
                        f"graceful closure: the last full-feature connection {c.id} was logged out "
                        f"({c.end_note or 'close the connection'})")
        s.ended = "logout"
    else:
        sess_step(d, s, side, SessInput.SESSION_FAILED, frame, ts,
                        f"last full-feature connection {c.id} left LOGGED_IN ({cause})")
        if s.ended == "open":  # a recovery logout (§6.3.6) fails the session too
            s.ended = "logout" if c.ended == "logout" else "connection_dropped"
        deadlines.schedule_session_timeout(d, s, side, ts)


def enter_cleanup(d: Desk, c: Conn, side: str, frame: int, ts: int, cause: str) -> None:
    c.cleanup[side] = R1
    c.cleanup_entered[side] = ts
    c.cleanup_gen[side] += 1
    s = c.session
    if c.cleanup_override is not None:
        t2w, t2r, source = c.cleanup_override
    elif s is not None and s.params_known:
        t2w, t2r, source = s.time2wait, s.time2retain, s.t2_source
    else:
        t2w, t2r, source = d.t2w_default, d.t2r_default, "default"
    deadline = ts + (t2w + t2r) * NS
    c.cleanup_deadline[side] = deadline
    open_tasks = sum(1 for t in s.tasks.values() if t.conn == c.id) if s is not None else 0
    d.out.append(CleanupDeadline(frame, ts, s.id if s else None, c.id, c.cid, side, t2w, t2r, source,
                                     deadline, open_tasks, cause))
    deadlines.push(d, deadline, "cleanup", c.id, side, c.cleanup_gen[side])


def stays(c: Conn, inp: ConnInput) -> bool:
    """Hot path: the input changes no state on either side (no records, nothing to settle)."""
    st = c.state
    return (inp in _I_STAYS.get(st["initiator"], _EMPTY)) and (inp in _T_STAYS.get(st["target"], _EMPTY))
