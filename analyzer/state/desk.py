"""The shared desk of one :class:`~analyzer.state.tracker.SessionTracker`: the connections,
sessions, indexes, deadline heap and output list its collaborators work on, plus the helpers
that put records on the output (RFC 7143 §8 transitions are emitted by ``machines``).

Every collaborator module (identity, machines, deadlines, text_series, logins, reinstatement,
pending, task_book, full_feature, logouts, summaries) is a set of functions taking the desk as
their first argument: no collaborator keeps state of its own, so the tracker stays one object
to snapshot (batch pickles it) and one place to read what is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analyzer.records import (
    I2T,
    Pdu,
    Record,
)
from analyzer.state.books import (
    SIDES,
    Conn,
    Session,
)
from analyzer.state.events import (
    Deviation,
    NegotiationIssue,
    SequenceEvent,
)
from analyzer.state.machine import Context
from analyzer.state.negotiation import Issue
from analyzer.state.tasks import Task


@dataclass(slots=True, eq=False)
class Desk:
    """Everything one tracker keeps (the collaborators' shared state)."""

    t2w_default: int = 2  #: DefaultTime2Wait before one is negotiated (§13.15)
    t2r_default: int = 20  #: DefaultTime2Retain before one is negotiated (§13.16)
    conns: dict[str, Conn] = field(default_factory=dict)
    #: every session not forgotten, by id, in creation order
    sessions: dict[str, Session] = field(default_factory=dict)
    #: sessions / connections that may not have ended yet (pruned lazily by ``identity.open_*``)
    open_sessions: dict[str, Session] = field(default_factory=dict)
    open_conns: dict[str, Conn] = field(default_factory=dict)
    #: last session number handed out (ids are never reused, even after ``forget``)
    sid_counter: int = 0
    by_tsih: dict[tuple[int, int], Session] = field(default_factory=dict)
    by_nexus: dict[tuple[str | None, int, str | None], Session] = field(default_factory=dict)
    #: deadlines: (ts, seq, kind, key, side, generation), see ``deadlines``
    heap: list[tuple[int, int, str, str, str, int]] = field(default_factory=list)
    seq: int = 0
    #: the records produced by the call in progress (``feed``/``tick``/``finish``)
    out: list[Record] = field(default_factory=list)
    last_frame: int = 0
    last_ts: int = 0
    finished: bool = False
    #: old session id -> connection carrying a running session-reinstatement login for it
    reinstating: dict[str, Conn] = field(default_factory=dict)
    #: (InitiatorName, TargetName) -> the session whose login was redirected (§11.13.5), waiting for
    #: the follow-up login at the new address (bounded: MAX_REDIRECTS, oldest dropped)
    redirects: dict[tuple[str | None, str | None], str] = field(default_factory=dict)
    #: open tasks whose evidence may have fallen into a capture gap ((session id, ITT) -> task), oldest
    #: first: concluded as lost in the gap once idle too long or over ``gap_task_limit`` (``task_book``)
    gap_tasks: dict[tuple[str, int], Task] = field(default_factory=dict)
    gap_task_limit: int = 1024
    gap_task_idle_ns: int = 60 * 1_000_000_000
    last_gap_sweep: int = 0


def ctx(d: Desk, c: Conn | None, s: Session | None, frame: int, ts: int, event: str,
         inferred: bool = False, observer_limited: bool = False) -> Context:
    sess = s if s is not None else (c.session if c is not None else None)
    limited = observer_limited or (c is not None and (c.lossy or c.mid_stream))
    return Context(frame, ts, sess.id if sess else None, c.id if c else None, event, inferred, limited)


def seq_event(d: Desk, r: Pdu, s: Session | None, kind: str, expected: int | None, observed: int | None,
               detail: str, itt: int | None = None, phase: str | None = None) -> None:
    d.out.append(SequenceEvent(r.frame, r.ts_ns, s.id if s else None, r.conn, kind, expected, observed,
                                   detail, itt, phase))


def issues(d: Desk, c: Conn, r: Record, found: list[Issue]) -> None:
    sid = c.session.id if c.session else None
    for i in found:
        d.out.append(NegotiationIssue(r.frame, r.ts_ns, sid, c.id, i.key, i.kind, i.offered_by, i.offer,
                                          i.answer, i.detail))


def deviation(d: Desk, c: Conn | None, s: Session | None, frame: int, ts: int, kind: str, rfc: str,
               detail: str, start_frame: int, *, side: str = "target", itt: int | None = None,
               cid: int | None = None, expected: int | None = None, observed: int | None = None) -> None:
    sess = s if s is not None else (c.session if c is not None else None)
    d.out.append(Deviation(frame, ts, sess.id if sess else None, c.id if c else None, side, kind, rfc,
                               detail, start_frame, itt, cid, expected, observed))


def events(pdu: Pdu, what: str) -> dict[str, str]:
    """Per-side wording: the initiator sends I->T PDUs, the target receives them."""
    sender = "initiator" if pdu.direction == I2T else "target"
    return {side: f"{what} {'sent' if side == sender else 'received'} (frame {pdu.frame})" for side in SIDES}
