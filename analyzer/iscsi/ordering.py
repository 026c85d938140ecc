"""Capture order for the records of one connection's two framers (RFC 7143 §11.2 framing).

Theory of operation
-------------------
A record carries the frame of its PDU's last byte (``framing.py``), but a framer does not
always emit a record when that frame is fed. While resynchronising (after a mid-stream start
or a capture gap) it holds the bytes of a candidate PDU until the header after it confirms it;
a PDU in progress may be cut short by a gap found later and is then reported at the frame of
its last captured byte; a data digest being detected decides at the next 4 bytes. Meanwhile the
other direction of the connection goes on: its Data-Out, R2T, Logout Response... would reach
the state machines before an earlier PDU of this direction, and be judged against the wrong
state (a Data-Out checked against a later R2T; a logged-out connection taken as dropped).

``ConnectionOrder`` is the small reorder buffer both framers of a connection share. Every
record a framer emits goes through ``release``, which holds it while the *other* framer may
still emit a record for an earlier frame (``PduFramer.pending_frame``) and returns, ordered by
frame (stable within a frame), the records that can no longer be preceded by anything. A frame
carries the bytes of one direction only, so records of one frame never need interleaving.
Nothing is held in the common case (the check is two attribute reads per segment). The buffer
is bounded by ``MAX_HELD`` records and ``MAX_HOLD_NS`` of capture time: a stream that stalls
in the middle of a PDU for longer (a connection that died without FIN) does not hold back the
other direction for ever; order is then best effort.

The buffer is referenced by both framers (not kept in the pipeline), so that whatever carries framer state
across capture files (batch) carries the held records with it.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Final

from analyzer.records import Record

if TYPE_CHECKING:
    from analyzer.iscsi.framing import PduFramer

#: Most records held while the other direction has a PDU pending ...
MAX_HELD: Final = 10_000
#: ... and the longest (capture time) a record is held.
MAX_HOLD_NS: Final = 10 * 1_000_000_000
#: Cross-connection ordering looks at every connection with a PDU pending for each release; past
#: this many such connections at once (a flood of half-open probes, each with a partial header)
#: the records of other connections are released without waiting for them, so the cost stays
#: linear in the capture (order within each connection is always kept).
MAX_PENDING_CONNECTIONS: Final = 256


class ConnectionOrder:
    """The reorder buffer shared by the two framers of one connection (see module doc)."""

    __slots__ = ("arrivals", "held", "last_ts")

    def __init__(self) -> None:
        #: (frame, arrival number, record)
        self.held: list[tuple[int, int, Record]] = []
        self.arrivals = 0
        self.last_ts = 0

    def release(self, recs: list[Record], limit: int | None) -> list[Record]:
        """Take a framer's new records; return those now in capture order (see module doc).

        ``limit``: ``pending_limit`` of the connection's two framers (passed in, not kept here,
        so that framer state has no reference cycle)."""
        held = self.held
        if not held and not recs:
            return recs
        if not held and (limit is None or in_frame_order_below(recs, limit)):
            if recs:
                self.last_ts = recs[-1].ts_ns
            return recs
        n = self.arrivals
        push = heapq.heappush
        for r in recs:
            push(held, (r.frame, n, r))
            n += 1
            self.last_ts = max(self.last_ts, r.ts_ns)
        self.arrivals = n
        old = self.last_ts - MAX_HOLD_NS
        ready: list[Record] = []
        pop = heapq.heappop
        while held and (limit is None or held[0][0] <= limit or len(held) > MAX_HELD or held[0][2].ts_ns < old):
            ready.append(pop(held)[2])
        if not held:
            self.arrivals = 0
        return ready

    def flush(self, recs: list[Record]) -> list[Record]:
        """The connection's framers have finished: everything held plus ``recs``, in order."""
        held = self.held
        if not held and in_frame_order_below(recs, None):
            return recs
        n = self.arrivals
        for r in recs:
            heapq.heappush(held, (r.frame, n, r))
            n += 1
        out = [heapq.heappop(held)[2] for _ in range(len(held))]
        self.arrivals = 0
        return out


def pending_limit(a: PduFramer | None, b: PduFramer | None) -> int | None:
    """The lowest frame either framer may still emit a record for (None: no PDU pending)."""
    pa = a.pending_frame() if a is not None else None
    pb = b.pending_frame() if b is not None else None
    if pa is None:
        return pb
    return pa if pb is None or pa < pb else pb


def in_frame_order_below(recs: list[Record], limit: int | None) -> bool:
    """``recs`` are in frame order, none after frame ``limit`` (None: no limit)."""
    prev = -1
    for r in recs:
        f = r.frame
        if f < prev:
            return False
        prev = f
    return limit is None or prev <= limit
