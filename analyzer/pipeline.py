"""The only wiring: source -> reassembler -> framer -> decoder -> tracker -> detectors (house style §1).

``Pipeline`` is sans-I/O: feed it TCP segments (``feed_segment``) and it returns records in
capture order; ``finish`` flushes what is pending at the end. ``iter_records`` drives it over a
capture file (the capture layer opens the file). Live capture feeds the same ``Pipeline``.

Capture order within a connection: a framer may emit a PDU later than the frame that carried
it (resynchronisation, a PDU cut by a gap found later); every framer record passes through the
connection's ``ConnectionOrder`` (``iscsi/ordering.py``), so the state tracker and the anomaly
rules see each connection's records in frame order and judge each PDU against the state at its
own frame.

Capture order across connections (``capture_order=True``, what ``iter_records`` uses for
file analysis): the records of all connections also wait, in one heap, while any connection
has a PDU pending at an earlier frame (``ConnectionOrder.limit``), so every record leaves the
pipeline in frame order. Live capture and batch workers keep the per-connection order only
(nothing held across connections: live shows each connection as it goes; batch cuts the work
by connection).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from analyzer.anomalies.engine import AnomalyEngine
from analyzer.iscsi.framing import DEFAULT_RESYNC_MAX_DSL, DigestState, PduFramer
from analyzer.iscsi.ordering import (
    MAX_HELD,
    MAX_HOLD_NS,
    MAX_PENDING_CONNECTIONS,
    ConnectionOrder,
    in_frame_order_below,
    pending_limit,
)
from analyzer.records import I2T, T2I, Record, TcpClosed, TcpOpened
from analyzer.state.events import ConnectionParams
from analyzer.state.tracker import SessionTracker
from analyzer.tcp.reassembly import (
    DATA,
    DEFAULT_MAX_FLOWS,
    DEFAULT_MAX_OOO_BYTES,
    DEFAULT_MAX_TOTAL_OOO_BYTES,
    DEFAULT_PORTS,
    SNAPLEN_GAP,
    TcpReassembler,
)


@dataclass
class Options:
    """What the user can tune; defaults documented in the README."""

    ports: frozenset[int] = DEFAULT_PORTS
    detect_other_ports: bool = True
    max_ooo_bytes: int = DEFAULT_MAX_OOO_BYTES
    max_total_ooo_bytes: int = DEFAULT_MAX_TOTAL_OOO_BYTES
    max_flows: int = DEFAULT_MAX_FLOWS
    resync_max_dsl: int = DEFAULT_RESYNC_MAX_DSL
    #: run the session/connection/task state machines (not needed for a plain PDU listing)
    state: bool = True
    #: run the anomaly rules (implies state)
    anomalies: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ConnEndpoints:
    client: str
    client_port: int
    server: str
    server_port: int


class Pipeline:
    """Sans-I/O pipeline over TCP segments."""

    def __init__(self, options: Options | None = None, *, capture_order: bool = False) -> None:
        self.options = opts = options or Options()
        self.reassembler = TcpReassembler(
            opts.ports,
            detect_other_ports=opts.detect_other_ports,
            max_ooo_bytes=opts.max_ooo_bytes,
            max_total_ooo_bytes=opts.max_total_ooo_bytes,
            max_flows=opts.max_flows,
        )
        self.framers: dict[tuple[str, str], PduFramer] = {}
        self.endpoints: dict[str, ConnEndpoints] = {}
        self.tracker: SessionTracker | None = None
        self.detectors: AnomalyEngine | None = None
        if opts.state or opts.anomalies:
            self.tracker = make_tracker(opts)
        if opts.anomalies:
            self.detectors = make_detectors(opts)
        self.last_frame = 0
        self.last_ts = 0
        #: capture_order: the connections with a PDU pending, and the records held for them
        self.pending: dict[str, tuple[PduFramer, PduFramer | None]] | None = {} if capture_order else None
        self._held: list[tuple[int, int, Record]] = []
        self._arrivals = 0

    # ------------------------------------------------------------------ feeding

    def feed_segment(self, frame: int, ts_ns: int, src: bytes, dst: bytes, sport: int, dport: int,
                     seq: int, ack: int, flags: int, window: int, payload: bytes | memoryview,
                     missing: int = 0) -> list[Record]:
        self.last_frame = frame
        self.last_ts = ts_ns
        reassembler = self.reassembler
        items = reassembler.feed_segment(frame, ts_ns, src, dst, sport, dport, seq, ack, flags, window, payload,
                                         missing)
        if reassembler.sunk:
            # Hot path: the bytes went straight to their framer (attached in _open); these are its records.
            recs: list[Record] = items  # type: ignore[assignment]
            if self.pending is not None and (self.pending or self._held):
                return self._release(recs, [])
            return recs if self.tracker is None or not recs else self._post(recs)
        if not items:
            return self._release([], []) if self._held else []
        return self._dispatch(items)

    def tick(self, ts_ns: int) -> list[Record]:
        """Time passes without traffic (live capture): fire the timeouts due by ``ts_ns``.

        The tracker's inferred timeouts (cleanup deadlines, session timeouts) and the anomaly
        engine's time-based rules (unanswered tasks and NOPs) run from the capture clock.
        """
        out: list[Record] = []
        if self.tracker is not None:
            out.extend(self._post_state(self.tracker.tick(ts_ns)))
        if self.detectors is not None:
            out.extend(self.detectors.tick(ts_ns))
        return out

    def finish(self) -> list[Record]:
        frame, ts = self.last_frame, self.last_ts
        out = self._dispatch(self.reassembler.finish(frame, ts))
        framers = self.framers
        rest: list[Record] = []
        for conn, d in list(framers):
            if (conn, d) in framers:
                rest.extend(self._finish_framers(conn, frame, ts))
        if self.pending is None:
            out.extend(self._post(rest))
        else:
            self.pending.clear()
            out.extend(self._release(rest, []))
        if self.tracker is not None:
            out.extend(self._post_state(self.tracker.finish(ts)))
        if self.detectors is not None:
            out.extend(self.detectors.finish(ts))
        return out

    def forget(self, session_id: str) -> list[Record]:
        """Live capture: drop everything kept for an ended session, to bound memory over days.

        A no-op unless the tracker says the session has ended (``SessionTracker.forget``: FREE
        on both sides, its TCP connections closed, no open task). Then the tracker, the anomaly
        engine (``AnomalyEngine.forget``) and ``endpoints`` let go of the session and its
        connections. Returns the anomalies this decides (findings the rate limits held back for
        it, summarised now instead of at ``finish``). File analysis never calls it: there
        ``endpoints`` and the summaries at ``finish`` must cover every session.
        """
        tracker = self.tracker
        if tracker is None or not tracker.ended(session_id):
            return []
        conns = tracker.session_connections(session_id)
        tracker.forget(session_id)
        for conn in conns:
            self.endpoints.pop(conn, None)
        if self.detectors is None:
            return []
        return list(self.detectors.forget(session_id, conns))

    def forget_connection(self, conn: str) -> list[Record]:
        """Like ``forget`` for an ended connection that belongs to no session (a port probe)."""
        tracker = self.tracker
        if tracker is None or not tracker.connection_ended(conn):
            return []
        tracker.forget_connection(conn)
        self.endpoints.pop(conn, None)
        if self.detectors is None:
            return []
        return list(self.detectors.forget_connection(conn))

    def post(self, recs: list[Record]) -> list[Record]:
        """Records framed elsewhere (batch stitching) through the tracker and detectors, as if framed here."""
        return self._post(recs)

    # ------------------------------------------------------------------ internals

    def _dispatch(self, items: Iterable[object]) -> list[Record]:
        if self.pending is None:
            return self._dispatch_items(items)
        evicted: list[str] = []
        recs = self._dispatch_items(items, evicted)
        return self._release(recs, evicted)

    def _dispatch_items(self, items: Iterable[object], evicted: list[str] | None = None) -> list[Record]:
        """The records of the reassembler's items; posted unless ``evicted`` (capture_order) is
        given: then returned as they are, the connections to forget added to ``evicted``."""
        post = self._post if evicted is None else _unposted
        out: list[Record] = []
        framers = self.framers
        pending = self.pending
        for item in items:
            if type(item) is tuple:
                tag, conn, direction, frame, ts, data = item
                framer = framers.get((conn, direction))
                if framer is None:
                    continue
                recs = framer.feed(frame, ts, data) if tag == DATA else framer.gap(frame, ts, data,
                                                                                   snaplen=tag == SNAPLEN_GAP)
                order = framer.order
                if order is not None:
                    peer = framers.get((conn, T2I if direction == I2T else I2T))
                    limit = pending_limit(framer, peer)
                    recs = order.release(recs, limit)
                    if pending is not None:
                        _note_pending(pending, conn, framer, peer, limit)
                if recs:
                    out.extend(post(recs))
                continue
            assert isinstance(item, Record)
            if type(item) is TcpOpened:
                self._open(item)
                out.extend(post([item]))
            elif type(item) is TcpClosed:
                # Flush the framers first so their last records come before the close.
                out.extend(post(self._finish_framers(item.conn, item.frame, item.ts_ns)))
                out.extend(post([item]))
                if item.reason == "evicted":
                    # A resource limit evicted it: drop its state too if it belonged to no session
                    # (a flood of probes must not grow the tracker; see --max-flows).
                    if evicted is None:
                        out.extend(self.forget_connection(item.conn))
                    else:
                        evicted.append(item.conn)
            else:
                out.extend(post([item]))
        return out

    def _release(self, recs: list[Record], evicted: list[str]) -> list[Record]:
        """capture_order: queue ``recs``; post and return the records no pending PDU can precede."""
        pending = self.pending
        assert pending is not None
        held = self._held
        limit: int | None = None
        if len(pending) > MAX_PENDING_CONNECTIONS:
            pending.clear()  # bounded cost (ordering.MAX_PENDING_CONNECTIONS): no cross-connection wait
        for framer, peer in list(pending.values()):
            low = pending_limit(framer, peer)
            if low is None:
                continue
            if limit is None or low < limit:
                limit = low
        if limit is None:
            pending.clear()
        if not held and (limit is None or in_frame_order_below(recs, limit)):
            ready = recs
        else:
            n = self._arrivals
            push = heapq.heappush
            for r in recs:
                push(held, (r.frame, n, r))
                n += 1
            self._arrivals = n
            old = self.last_ts - MAX_HOLD_NS
            ready = []
            pop = heapq.heappop
            while held and (limit is None or held[0][0] <= limit or len(held) > MAX_HELD
                            or held[0][2].ts_ns < old):
                ready.append(pop(held)[2])
            if not held:
                self._arrivals = 0
        out = self._post(ready) if self.tracker is not None and ready else ready
        for conn in evicted:
            out.extend(self.forget_connection(conn))
        return out

    def _finish_framers(self, conn: str, frame: int, ts_ns: int) -> list[Record]:
        """End of a connection's streams: both framers' last records, with what their order held."""
        recs: list[Record] = []
        order: ConnectionOrder | None = None
        for d in (I2T, T2I):
            framer = self.framers.pop((conn, d), None)
            if framer is not None:
                recs.extend(framer.finish(frame, ts_ns))
                order = framer.order or order
        return order.flush(recs) if order is not None else recs

    def _open(self, rec: TcpOpened) -> None:
        self.endpoints[rec.conn] = ConnEndpoints(rec.client, rec.client_port, rec.server, rec.server_port)
        digests = DigestState(known=rec.handshake)
        order = ConnectionOrder()
        framers = []
        for d in (I2T, T2I):
            framer = self.framers[(rec.conn, d)] = PduFramer(rec.conn, d, digests, in_sync=rec.handshake,
                                                             resync_max_dsl=self.options.resync_max_dsl)
            framer.order = order
            framers.append(framer)
        self.reassembler.attach(rec.conn, FramerSink(framers[0], framers[1], self.pending),
                                FramerSink(framers[1], framers[0], self.pending))

    def _post(self, recs: list[Record]) -> list[Record]:
        """Pass records through the state tracker and detectors; return them plus what those add."""
        tracker = self.tracker
        if tracker is None:
            return recs
        out: list[Record] = []
        for r in recs:
            out.append(r)
            added = tracker.feed(r)
            if added:
                out.extend(self._post_state(added))
            if self.detectors is not None:
                out.extend(self.detectors.feed(r))
        return out

    def _post_state(self, added: list[Record]) -> list[Record]:
        out: list[Record] = []
        for a in added:
            out.append(a)
            self._apply_feedback(a)
            if self.detectors is not None:
                out.extend(self.detectors.feed(a))
        return out

    def _apply_feedback(self, rec: Record) -> None:
        """State-layer facts the framer needs (negotiated MaxRecvDataSegmentLength for resync)."""
        if not isinstance(rec, ConnectionParams):
            return
        conn = rec.conn
        # The receiver's declared MaxRecvDataSegmentLength bounds what the sender may send (§13.12).
        for d, attr in ((I2T, "max_recv_dsl_target"), (T2I, "max_recv_dsl_initiator")):
            framer = self.framers.get((conn, d)) if conn else None
            value = getattr(rec, attr, None)
            if framer is not None and isinstance(value, int) and value > 0:
                framer.resync_max_dsl = max(value, 8192)


class FramerSink:
    """The reassembler's sink for one framer (the hot path, ``TcpReassembler.attach``): the
    framer's records, through the connection's reorder buffer. A class, not a closure: batch
    pickles the reassembler's flows with their sinks."""

    __slots__ = ("framer", "peer", "pending")

    def __init__(self, framer: PduFramer, peer: PduFramer,
                 pending: dict[str, tuple[PduFramer, PduFramer | None]] | None) -> None:
        self.framer = framer
        self.peer = peer  #: the other direction's framer
        #: the pipeline's connections with a PDU pending (capture_order), else None
        self.pending = pending

    def __call__(self, frame: int, ts_ns: int, data: bytes | memoryview) -> list[Record]:
        framer = self.framer
        recs = framer.feed(frame, ts_ns, data)
        order = framer.order
        if order is None:
            return recs
        limit = pending_limit(framer, self.peer)
        if recs or order.held:
            recs = order.release(recs, limit)
        if self.pending is not None:
            _note_pending(self.pending, framer.conn, framer, self.peer, limit)
        return recs


def _note_pending(pending: dict[str, tuple[PduFramer, PduFramer | None]], conn: str, framer: PduFramer,
                  peer: PduFramer | None, limit: int | None) -> None:
    if limit is None:
        if pending:
            pending.pop(conn, None)
    else:
        pending[conn] = (framer, peer)


def _unposted(recs: list[Record]) -> list[Record]:
    return recs


def make_tracker(opts: Options) -> SessionTracker:
    """The state tracker a pipeline with these options runs."""
    return SessionTracker()


def make_detectors(opts: Options) -> AnomalyEngine:
    """The anomaly engine a pipeline with these options runs."""
    return AnomalyEngine()



def iter_records(source: Any, options: Options | None = None, *, reader_out: list[Any] | None = None
                 ) -> Iterator[Record]:
    """Run the pipeline over a capture file or stream; yields records in capture order.

    Raises ``CaptureError`` (from the capture layer) when the file is not a readable capture.
    Damage found while reading ends the iteration early; it is available on the reader, which
    is appended to ``reader_out`` when given.
    """
    from analyzer.capture import iter_tcp, open_capture

    pipeline = Pipeline(options, capture_order=True)
    reader = open_capture(source)
    if reader_out is not None:
        reader_out.append(reader)
    feed = pipeline.feed_segment
    try:
        for seg in iter_tcp(reader):
            recs = feed(*seg)
            if recs:
                yield from recs
        # Damage ends the reading early: say so in the record stream too (capture_damaged).
        for damage in getattr(reader, "damage", ()):
            yield damage
            if pipeline.detectors is not None:
                yield from pipeline.detectors.feed(damage)
        yield from pipeline.finish()
    finally:
        reader.close()


def run_until(source: Any, stop_ns: int, options: Options | None = None) -> tuple[Pipeline, list[Any]]:
    """Run the pipeline over a capture up to (and including) time ``stop_ns``, without finishing.

    The returned pipeline's tracker holds the sessions' state at that moment (``sessions()``,
    ``connections()``); timeouts due by ``stop_ns`` have fired. Also returns the reader(s).
    """
    from analyzer.capture import iter_tcp, open_capture

    pipeline = Pipeline(options)
    reader = open_capture(source)
    try:
        for seg in iter_tcp(reader):
            if seg[1] > stop_ns:
                break
            pipeline.feed_segment(*seg)
        if pipeline.tracker is not None:
            pipeline.tracker.tick(stop_ns)
    finally:
        reader.close()
    return pipeline, [reader]


def capture_start_ns(source: Any) -> int | None:
    """Timestamp of the first frame of a capture (for times given relative to its start)."""
    from analyzer.capture import open_capture

    reader = open_capture(source)
    try:
        for frame in reader:
            return int(frame[1])
    finally:
        reader.close()
    return None
