"""How the connection, cleanup and session machines move each other: state-triggered tables.

Theory of operation
-------------------
The three RFC 7143 machines (connection §8.1, cleanup §8.2, session §8.3) each have their
own ``(state, input) -> (label, next)`` table. What couples them is not an input on the wire
but the *state* one of them reaches, the way h11 couples its client and server machines with
a second, state-triggered table (``STATE_TRIGGERED_TRANSITIONS`` in h11's ``_state.py``). The
rows below are that second table. ``machines.settle_conn`` (after every connection step) and
``machines.cleanup_step`` (after every cleanup step) read them; no other code decides what a
state change implies.

* :data:`CLEANUP_TRIGGERED` is exact h11 shape: ``(cleanup state, connection state) ->
  connection state``. §8.2: "R1 is S8" and "R3 is S1", so a cleanup machine reaching FREE
  moves the connection machine of that side from CLEANUP_WAIT to FREE, through the cleanup
  transition's own label (M1 or M4).
* :data:`CONNECTION_TRIGGERED` has one row per consequence of a connection-machine state:
  which state (of one side, of both, entering or leaving full feature phase) triggers it, the
  guard (a named condition, evaluated in ``machines.py``, so the table stays data), and the
  effect on the other machine (an input stepped through that machine's table, or the cleanup
  machine starting in R1). Rows are evaluated in table order; consecutive per-side rows are
  evaluated side by side (initiator, then target).

Not RFC rows, observer's bookkeeping: ``END_CONN_TASKS`` (a connection that left full feature
phase on both sides ends its open tasks with the connection's end outcome, §7.1.2/§6.3.6)
and the session's ``SessionIdentified`` record emitted before the inferred placement.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from analyzer.state.cleanup import CleanupState
from analyzer.state.connection import FFP_STATES, ConnState


class Edge(Enum):
    """How the connection state triggers a row."""

    IN = "the side is in"  #: level-triggered, per side (h11 style)
    ENTERED = "the side entered"  #: per side, the first settle after it entered the states
    LEFT = "the side left"  #: per side, the first settle after it left the states
    ALL_IN = "both sides are in"  #: level-triggered, once per connection
    NONE_IN = "no side is in"  #: level-triggered, once per connection

    @property
    def per_side(self) -> bool:
        """True for the rows evaluated once per side."""
        return self in (Edge.IN, Edge.ENTERED, Edge.LEFT)


class Guard(Enum):
    """Conditions a row needs besides the state (evaluated in ``machines.py``)."""

    ALWAYS = "-"
    NO_CLEANUP_MACHINE = "the side has no cleanup machine yet"
    LOGIN_RUNNING = "a login is running on the connection"
    SESSION_SIDE_UNKNOWN = "the session machine of the side is UNKNOWN (capture began mid-session)"
    LAST_FFP_GRACEFUL = ("it was the session side's last full-feature connection (session LOGGED_IN or UNKNOWN), "
                         "left by a closing Logout, and no connection of the side awaits cleanup")
    LAST_FFP_FAILED = ("it was the session side's last full-feature connection (session LOGGED_IN or UNKNOWN), "
                       "left any other way")


class Effect(Enum):
    """What a row does to another machine."""

    START_CLEANUP = "cleanup machine starts in R1 CLEANUP_WAIT (with its Time2Wait + Time2Retain deadline)"
    FAIL_LOGIN = "the login failed: session LOGIN_FAILED, its login task ends"
    END_CONN_TASKS = "the connection's open tasks end with its end outcome (not an RFC row)"
    PLACE_SESSION = "session CONN_LOGGED_IN, inferred (places an UNKNOWN session in LOGGED_IN)"
    CLOSE_SESSION = "session SESSION_CLOSED"
    FAIL_SESSION = "session SESSION_FAILED, session timeout scheduled"


@dataclass(frozen=True, slots=True)
class Coupling:
    """One row: when the connection machine is in / enters / leaves ``states`` and ``guard``
    holds, ``target`` gets ``effect``."""

    edge: Edge
    states: frozenset[ConnState]
    guard: Guard
    target: str  #: "cleanup", "session", "login", "tasks"
    effect: Effect
    rfc: str


_LOGIN_STATES = frozenset({ConnState.S4_IN_LOGIN, ConnState.UNKNOWN})
_DOWN = frozenset({ConnState.S1_FREE, ConnState.S8_CLEANUP_WAIT})

#: Connection-state-triggered rows, in evaluation order.
CONNECTION_TRIGGERED: tuple[Coupling, ...] = (
    Coupling(Edge.IN, frozenset({ConnState.S8_CLEANUP_WAIT}), Guard.NO_CLEANUP_MACHINE, "cleanup",
             Effect.START_CLEANUP, "§8.2: S8 CLEANUP_WAIT is R1"),
    Coupling(Edge.NONE_IN, _LOGIN_STATES, Guard.LOGIN_RUNNING, "session", Effect.FAIL_LOGIN,
             "§8.3 target N8/N9 (LOGIN_FAILED): the connection left IN_LOGIN without T5"),
    Coupling(Edge.ALL_IN, _DOWN, Guard.ALWAYS, "tasks", Effect.END_CONN_TASKS, "§7.1.2 (not an RFC row)"),
    Coupling(Edge.ENTERED, FFP_STATES, Guard.SESSION_SIDE_UNKNOWN, "session", Effect.PLACE_SESSION,
             "§8.3 initiator N1/N4, target N2/N10 (CONN_LOGGED_IN, inferred placement)"),
    Coupling(Edge.LEFT, FFP_STATES, Guard.LAST_FFP_GRACEFUL, "session", Effect.CLOSE_SESSION,
             "§6.3.6, §8.3 initiator N2, target N3 (SESSION_CLOSED)"),
    Coupling(Edge.LEFT, FFP_STATES, Guard.LAST_FFP_FAILED, "session", Effect.FAIL_SESSION,
             "§6.3.6, §8.3 initiator N3, target N5 (SESSION_FAILED)"),
)

#: h11-style: (cleanup state reached, connection state of the same side) -> connection state.
#: The connection transition carries the cleanup transition's label (M1/M4).
CLEANUP_TRIGGERED: dict[tuple[CleanupState, ConnState], ConnState] = {
    (CleanupState.R3_FREE, ConnState.S8_CLEANUP_WAIT): ConnState.S1_FREE,  # §8.2: R3 is S1
}


def groups() -> list[tuple[bool, tuple[Coupling, ...]]]:
    """CONNECTION_TRIGGERED split into runs of per-side rows and per-connection rows."""
    out: list[tuple[bool, tuple[Coupling, ...]]] = []
    for row in CONNECTION_TRIGGERED:
        if out and out[-1][0] == row.edge.per_side:
            out[-1] = (out[-1][0], out[-1][1] + (row,))
        else:
            out.append((row.edge.per_side, (row,)))
    return out


for _row in CONNECTION_TRIGGERED:  # was_ffp bookkeeping tracks full feature phase only
    assert _row.edge not in (Edge.ENTERED, Edge.LEFT) or _row.states == FFP_STATES, _row
# ...and one group consumes the entered/left edge
assert sum(1 for per_side, rows in groups() if any(r.edge in (Edge.ENTERED, Edge.LEFT) for r in rows)) == 1
