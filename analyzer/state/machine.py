"""The one generic ``step()`` that reads a state table (house style §4).

A :class:`Spec` is pure data: the RFC table ``(state, input) -> (label, next_state)``, the
inputs a state accepts *without* changing (``stays``, not RFC rows: e.g. a SCSI Command in
LOGGED_IN), and the placement table used to leave the non-RFC ``UNKNOWN`` state when a
capture began mid-stream. Guards ("Status-Class == 0", "CID is this connection's") live in
the ``classify_*`` functions of each machine module, never in a table.

``step`` never raises. A pair the table does not have becomes a :class:`Violation` and the
machine stays where it was: we are an observer, not a peer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

from analyzer.state.events import Transition, Violation

S = TypeVar("S", bound=Enum)
In = TypeVar("In", bound=Enum)


@dataclass(frozen=True, slots=True)
class Spec(Generic[S, In]):
    """One side of one RFC state diagram."""

    machine: str  #: "connection", "cleanup", "session"
    side: str  #: "initiator", "target"
    states: type[S]
    inputs: type[In]
    table: Mapping[tuple[S, In], tuple[str, S]]
    stays: Mapping[S, frozenset[In]]
    #: Mid-stream placement: an input seen in UNKNOWN places the machine in this state
    #: (inferred), and the input is then stepped from there.
    placement: Mapping[In, S]
    unknown: S | None


@dataclass(frozen=True, slots=True)
class Context:
    """Where and why an input happened (copied into the emitted record)."""

    frame: int
    ts_ns: int
    session: str | None
    conn: str | None
    event: str
    inferred: bool = False
    #: copied into a Violation: the state may be a guess (mid-stream, inferred) or capture data was lost
    observer_limited: bool = False


def step(spec: Spec[S, In], state: S, inp: In, ctx: Context) -> Transition | Violation | None:
    """Look ``(state, inp)`` up in ``spec``'s table.

    Returns a :class:`Transition` for an RFC row, ``None`` when the input is legal in the
    state without a transition (``spec.stays``), else a :class:`Violation` (the caller
    keeps the old state). Placement out of UNKNOWN is :func:`advance`'s job.
    """
    row = spec.table.get((state, inp))
    if row is not None:
        label, nxt = row
        return Transition(ctx.frame, ctx.ts_ns, ctx.session, ctx.conn, spec.machine, spec.side,
                          state.value, nxt.value, label, ctx.event, ctx.inferred)
    if inp in spec.stays.get(state, frozenset()):
        return None
    return Violation(ctx.frame, ctx.ts_ns, ctx.session, ctx.conn, spec.machine, spec.side,
                     state.value, inp.name, f"{inp.name} not allowed in {state.value}: {ctx.event}",
                     ctx.observer_limited or state is spec.unknown)


def advance(spec: Spec[S, In], state: S, inp: In, ctx: Context) -> tuple[S, list[Transition | Violation]]:
    """Step ``inp`` and return the new state and the records to emit.

    In the non-RFC UNKNOWN state, an input listed in ``spec.placement`` first places the
    machine in the state that input implies (a Transition with ``label=None`` and
    ``inferred=True``); other inputs leave it UNKNOWN without a record.
    """
    out: list[Transition | Violation] = []
    if spec.unknown is not None and state is spec.unknown:
        placed = spec.placement.get(inp)
        if placed is None:
            return state, out
        out.append(Transition(ctx.frame, ctx.ts_ns, ctx.session, ctx.conn, spec.machine, spec.side,
                              state.value, placed.value, None,
                              f"state inferred from first {inp.name} ({ctx.event})", True))
        state = placed
    result = step(spec, state, inp, ctx)
    if result is None:
        return state, out
    out.append(result)
    if isinstance(result, Transition):
        return spec.states(result.to_state), out
    return state, out


def triggered(machine: str, side: str, state: S, nxt: S, label: str, ctx: Context) -> Transition:
    """The Transition of a state-triggered row (``coupling.py``): ``machine`` moves from ``state``
    to ``nxt`` because another machine reached a state, under that machine's ``label``."""
    return Transition(ctx.frame, ctx.ts_ns, ctx.session, ctx.conn, machine, side, state.value, nxt.value, label,
                      ctx.event, ctx.inferred)


def rows(spec: Spec[S, In]) -> list[tuple[S, In, str, S]]:
    """The table as ``(from, input, label, to)`` rows, in table order (for renderers and tests)."""
    return [(s, i, label, nxt) for (s, i), (label, nxt) in spec.table.items()]
