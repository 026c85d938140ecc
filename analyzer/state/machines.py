"""Driving the connection (§8.1), cleanup (§8.2) and session (§8.3) machines of a connection /
session, both sides at once, and the coupling between them (what a connection-state change
implies for cleanup, tasks, the login and the session machine).
"""

from __future__ import annotations

from collections.abc import Callable

from analyzer.state import (
    cleanup,
    connection,
    coupling,
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
    SIDES,
    Conn,
    Session,
)
from analyzer.state.cleanup import CleanupInput, CleanupState
from analyzer.state.connection import FFP_STATES, ConnInput, ConnState
from analyzer.state.coupling import Edge, Effect, Guard
from analyzer.state.desk import Desk
from analyzer.state.events import (
    CleanupDeadline,
    CleanupEnded,
    Transition,
)
from analyzer.state.machine import Spec, advance, triggered
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
        follows = coupling.CLEANUP_TRIGGERED.get((new, c.state[side]))
        if follows is not None:  # §8.2: R1 is S8 and R3 is S1; the connection machine follows
            d.out.append(triggered("connection", side, c.state[side], follows, label,
                                   desk.ctx(d, c, None, frame, ts,
                                            f"cleanup machine reached FREE ({label}: {event}); R3 is S1 (§8.2)",
                                            inferred)))
            c.state[side] = follows


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
    """Consequences of connection-state changes, as the rows of ``coupling.CONNECTION_TRIGGERED``
    say: cleanup machines, the login's end, the connection's tasks, the session machine."""
    for per_side, rows in coupling.groups():
        if not per_side:
            for row in rows:
                inside = [c.state[side] in row.states for side in SIDES]
                if (all(inside) if row.edge is Edge.ALL_IN else not any(inside)) and _guard(row.guard, c, None):
                    _EFFECTS[row.effect](d, c, None, frame, ts, cause)
            continue
        edges = any(row.edge is not Edge.IN for row in rows)
        for side in SIDES:
            ffp = c.state[side] in FFP_STATES
            entered, left = ffp and not c.was_ffp[side], not ffp and c.was_ffp[side]
            if edges and (entered or left):  # the edge is consumed by the group that has edge rows
                c.was_ffp[side] = ffp
            for row in rows:
                hit = {Edge.IN: c.state[side] in row.states, Edge.ENTERED: entered, Edge.LEFT: left}[row.edge]
                if hit and _guard(row.guard, c, side):
                    _EFFECTS[row.effect](d, c, side, frame, ts, cause)


def _last_ffp(c: Conn, side: str) -> bool:
    s = c.session
    return (s is not None and not any(x.state[side] in FFP_STATES for x in s.conns)
            and s.state[side] in (Q3, SessState.UNKNOWN))


def _graceful(c: Conn, side: str) -> bool:
    s = c.session
    return c.closure and s is not None and not any(x.cleanup[side] in (R1, R2) for x in s.conns)


def _guard(guard: Guard, c: Conn, side: str | None) -> bool:
    if guard is Guard.ALWAYS:
        return True
    if guard is Guard.LOGIN_RUNNING:
        return c.login is not None
    assert side is not None
    if guard is Guard.NO_CLEANUP_MACHINE:
        return c.cleanup[side] is None
    if guard is Guard.SESSION_SIDE_UNKNOWN:
        return c.session is not None and c.session.state[side] is SessState.UNKNOWN
    if guard is Guard.LAST_FFP_GRACEFUL:
        return _last_ffp(c, side) and _graceful(c, side)
    return _last_ffp(c, side) and not _graceful(c, side)  # LAST_FFP_FAILED


def _start_cleanup(d: Desk, c: Conn, side: str | None, frame: int, ts: int, cause: str) -> None:
    assert side is not None
    enter_cleanup(d, c, side, frame, ts, cause)


def _fail_login(d: Desk, c: Conn, side: str | None, frame: int, ts: int, cause: str) -> None:
    logins.login_failed(d, c, frame, ts, None, cause)


def _end_conn_tasks(d: Desk, c: Conn, side: str | None, frame: int, ts: int, cause: str) -> None:
    task_book.close_conn_tasks(d, c, frame, ts, c.end_outcome, c.end_note)
    if c.ended == "open":
        c.ended = "dropped"


def _place_session(d: Desk, c: Conn, side: str | None, frame: int, ts: int, cause: str) -> None:
    s = c.session
    assert s is not None and side is not None
    identity.identified(d, s, c, frame, ts)
    sess_step(d, s, side, SessInput.CONN_LOGGED_IN, frame, ts, f"connection {c.id} seen in {c.state[side].value}",
              True)


def _close_session(d: Desk, c: Conn, side: str | None, frame: int, ts: int, cause: str) -> None:
    s = c.session
    assert s is not None and side is not None
    sess_step(d, s, side, SessInput.SESSION_CLOSED, frame, ts,
              f"graceful closure: the last full-feature connection {c.id} was logged out "
              f"({c.end_note or 'close the connection'})")
    s.ended = "logout"


def _fail_session(d: Desk, c: Conn, side: str | None, frame: int, ts: int, cause: str) -> None:
    s = c.session
    assert s is not None and side is not None
    sess_step(d, s, side, SessInput.SESSION_FAILED, frame, ts,
              f"last full-feature connection {c.id} left LOGGED_IN ({cause})")
    if s.ended == "open":  # a recovery logout (§6.3.6) fails the session too
        s.ended = "logout" if c.ended == "logout" else "connection_dropped"
    deadlines.schedule_session_timeout(d, s, side, ts)


_EFFECTS: dict[Effect, Callable[[Desk, Conn, str | None, int, int, str], None]] = {
    Effect.START_CLEANUP: _start_cleanup,
    Effect.FAIL_LOGIN: _fail_login,
    Effect.END_CONN_TASKS: _end_conn_tasks,
    Effect.PLACE_SESSION: _place_session,
    Effect.CLOSE_SESSION: _close_session,
    Effect.FAIL_SESSION: _fail_session,
}
assert set(_EFFECTS) == set(Effect)


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
