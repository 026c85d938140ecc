"""Inferred timeouts (RFC 7143 §8.2 M1, §8.3 N5/N6): a heap of deadlines on the capture clock.
Each entry carries a generation number; a newer deadline for the same machine makes older
entries stale (skipped when popped). Time2Wait + Time2Retain come from the values in force
(§13.15/§13.16, Logout Response §11.15, Async Message §11.9.1).
"""

from __future__ import annotations

import heapq

from analyzer.state import (
    machines,
)
from analyzer.state.books import (
    NS,
    Q4,
    R1,
    R2,
    S4,
    Session,
)
from analyzer.state.cleanup import CleanupInput
from analyzer.state.desk import Desk
from analyzer.state.session import SessInput


def schedule_session_timeout(d: Desk, s: Session, side: str, ts: int) -> None:
    s.deadline_gen[side] += 1
    deadline = ts + (s.time2wait + s.time2retain) * NS
    for x in s.conns:
        if x.cleanup[side] in (R1, R2):
            deadline = max(deadline, x.cleanup_deadline.get(side, deadline))
    push(d, deadline, "session", s.id, side, s.deadline_gen[side])


def push(d: Desk, ts: int, kind: str, key: str, side: str, gen: int) -> None:
    d.seq += 1
    heapq.heappush(d.heap, (ts, d.seq, kind, key, side, gen))


def fire_due(d: Desk, now: int) -> None:
    while d.heap and d.heap[0][0] <= now:
        ts, _, kind, key, side, gen = heapq.heappop(d.heap)
        frame = d.last_frame
        if kind == "cleanup":
            c = d.conns.get(key)
            if c is None or c.cleanup_gen[side] != gen or c.cleanup[side] is not R1:
                continue
            machines.cleanup_step(d, c, side, CleanupInput.STATE_TIMEOUT, frame, ts,
                               "connection state timeout: Time2Wait + Time2Retain elapsed", True, "timed_out")
            if c.session is not None:
                maybe_session_timeout(d, c.session, side, frame, ts)
        else:
            s = d.sessions.get(key)
            if s is None or s.deadline_gen[side] != gen:
                continue
            maybe_session_timeout(d, s, side, frame, ts)


def maybe_session_timeout(d: Desk, s: Session, side: str, frame: int, ts: int) -> None:
    if s.state[side] is not Q4:
        return
    if any(x.cleanup[side] in (R1, R2) or x.state[side] is S4 for x in s.conns):
        return
    machines.sess_step(d, s, side, SessInput.SESSION_TIMEOUT, frame, ts,
                    "session state timeout: no continuation within Time2Wait + Time2Retain", True)
