"""TCP stream reassembly for a passive observer (one ``TcpReassembler`` for a whole capture).

Theory of operation
-------------------
Every TCP segment of the capture is fed in capture order. Segments are keyed by their
4-tuple; a flow is *iSCSI* when one of its ports is an iSCSI port (3260, 860, or one given
with ``--port``) or when the first payload on it is a plausible Login Request (RFC 7143
§11.12: byte 0 is 0x43, the version bytes are 0, the ISID type is not reserved) - the sender
of that Login Request is the initiator. Other flows are remembered only as "ignored" so they
cost one dictionary look-up per packet.

Per direction we keep ``next_seq`` (the next byte we expect) and a bounded out-of-order
buffer. The policies (documented in the README):

* **Start**: a SYN fixes the initial sequence number. Without one (capture began mid-stream)
  the first segment with payload fixes it, and the stream is marked ``handshake=False``.
* **In order** (``seq == next_seq``): delivered at once as a zero-copy ``memoryview``.
* **Retransmission** (entirely before ``next_seq``): dropped, counted as ``TcpRetransmission``.
  Only the first copy of a byte is ever delivered ("first copy wins", as in Wireshark's
  default and Zeek).
* **Overlap**: a segment that starts before ``next_seq`` but ends after it has its new tail
  delivered. Overlaps with *buffered* out-of-order data are compared byte for byte and a
  difference is reported as ``TcpOverlapConflict`` (the first copy still wins). Bytes that
  were already delivered are not kept, so a retransmission of delivered bytes cannot be
  compared; this is the one place we are blinder than a full-copy reassembler.
* **Out of order** (after ``next_seq``): copied into the buffer (bounded per direction in
  bytes and in segments, and in total). The hole is filled when the missing segment arrives.
* **Capture gap**: bytes that will never arrive in the capture. Declared when the peer
  acknowledges data past ``next_seq`` while we hold later data (Wireshark's "ACKed unseen
  segment": the receiver had it, the capture did not), when the out-of-order buffer is over
  its bound, and at FIN/RST/end of capture. A gap is an explicit ``TcpGap`` plus a gap item
  for the framer; bytes are never zero-filled and never silently skipped.
* **Sequence wrap-around**: all comparisons are modulo 2**32 (RFC 1982 style).
* **4-tuple reuse**: a SYN on a flow that has seen FIN or RST, or a SYN whose ISN differs from
  the one we have, starts a new connection whose id gets a ``#N`` suffix.
* **FIN / RST** become ``TcpFin`` / ``TcpRst`` (with the direction of the sender) once the
  bytes before them are delivered; ``TcpClosed`` follows when both sides finished or on RST.
  An RST whose sequence number lies before bytes its sender already sent is out of the
  receiver's window and ignored, as the receiver ignores it (RFC 9293 §3.10.7.4).
* **Flow limit**: at most ``max_flows`` flows (iSCSI and ignored alike) are tracked. A new flow
  beyond that evicts half of them: first flows that never carried iSCSI payload or already
  closed, then the least recently active. An evicted open flow has its buffered bytes delivered
  (after an explicit gap) and ends with ``TcpClosed(reason="evicted")`` (the ``resource_limit``
  anomaly). Its ``#N`` counter is kept so a later connection on the same 4-tuple gets a new id;
  the counters of flows that never published an id are dropped, so memory stays bounded.
  Every eviction is one ``TcpFlowsEvicted`` record (how many flows, how many never carried
  payload: SYN-only probes leave no other trace) and counts in ``evicted_flows`` /
  ``evicted_unopened``.
* **Snap length**: a frame the capture cut short (its IP length says the segment carried more
  payload than was captured) delivers its captured bytes, then the cut tail at once as a
  ``TcpGap`` with ``snaplen=True``: the stream position stays exact, so the framer skips a cut
  data segment by its length and keeps framing (headers at the start of segments survive a
  small snaplen, as they do in Wireshark). A cut segment that arrives out of order keeps only
  its captured bytes; its tail becomes an ordinary gap once proven lost.
* **Zero window**: a segment advertising window 0 starts a ``TcpZeroWindow`` episode (one
  record per episode).

Output: ``feed_segment`` returns a list whose items are either ``Record`` instances (TCP
events) or *stream items*, plain tuples for speed:

* ``(DATA, conn, direction, frame, ts_ns, data)`` with ``data`` a bytes-like object the
  consumer must copy if it keeps it (it may be a view of the capture reader's buffer);
* ``(GAP, conn, direction, frame, ts_ns, length)`` for bytes missing from the capture
  (tag ``SNAPLEN_GAP`` when a frame's tail was cut by the capture's snap length).

A consumer may ``attach`` a *sink* per direction of an open connection (the pipeline attaches
its framers' ``feed``): in-order payload of a segment that produced nothing else is then handed
to the sink at once, ``feed_segment`` returns the sink's result and sets ``sunk`` (the list holds
only what the sink returned). This is the hot path of a PDU listing; every other case (the
first payload, out-of-order data, gaps, FIN/RST) still goes out as stream items, so the order
of bytes into a consumer never changes. Sinks are dropped when the connection closes.

``TcpOpened`` is emitted lazily, just before the first payload of the flow, carrying the
frame and timestamp of the SYN when one was seen; flows that never carry a byte of payload
(port scans, refused connections) produce no records at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Final

from analyzer.records import (
    I2T,
    T2I,
    Record,
    TcpClosed,
    TcpFin,
    TcpFlowsEvicted,
    TcpGap,
    TcpOpened,
    TcpOverlapConflict,
    TcpRetransmission,
    TcpRst,
    TcpZeroWindow,
)

DATA: Final = 0  #: stream item tag: in-order payload bytes
GAP: Final = 1  #: stream item tag: bytes missing from the capture
SNAPLEN_GAP: Final = 2  #: stream item tag: bytes of a captured frame cut by the snap length

FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
ACK: Final = 0x10

MASK: Final = 0xFFFFFFFF
HALF: Final = 0x80000000

DEFAULT_PORTS: Final = frozenset({3260, 860})
#: Default bound for out-of-order bytes buffered per direction.
DEFAULT_MAX_OOO_BYTES: Final = 4 * 1024 * 1024
#: Default bound for out-of-order bytes buffered over all flows.
DEFAULT_MAX_TOTAL_OOO_BYTES: Final = 256 * 1024 * 1024
#: Default bound on tracked flows (iSCSI and ignored alike). An open iSCSI flow costs ~5 KiB
#: here and in its two framers, so 20,000 of them stay well under 300 MB; closed, ignored and
#: never-opened flows (port scans) are evicted first and cost nothing observable.
DEFAULT_MAX_FLOWS: Final = 20_000
#: Default bound on out-of-order segments buffered per direction (the buffer's bookkeeping
#: costs per segment, so a flood of tiny segments must be bounded too).
DEFAULT_MAX_OOO_SEGMENTS: Final = 4096


def seq_diff(a: int, b: int) -> int:
    """Signed distance a - b in 32-bit sequence space (RFC 1982 serial arithmetic)."""
    d = (a - b) & MASK
    return d - 0x100000000 if d >= HALF else d


def looks_like_login_request(payload: bytes | memoryview) -> bool:
    """True when ``payload`` starts with a plausible iSCSI Login Request BHS (RFC 7143 §11.12)."""
    if len(payload) < 48:
        return False
    b = bytes(payload[:48])
    # byte 0: I=1, opcode 0x03; byte 1: T C . . CSG NSG with reserved bits 0x30 zero; CSG != 2.
    if b[0] != 0x43 or b[1] & 0x30 or ((b[1] >> 2) & 3) == 2:
        return False
    # Version-max/min are 0x00 for RFC 3720/7143 (§11.12.4); TotalAHSLength is 0 for Login.
    if b[2] != 0 or b[3] != 0 or b[4] != 0:
        return False
    # The ISID's T field 0b11 is reserved (§11.12.5).
    if (b[8] >> 6) == 3:
        return False
    dsl = (b[5] << 16) | (b[6] << 8) | b[7]
    return dsl <= 65536


class HalfStream:
    """One direction of a connection."""

    __slots__ = ("next_seq", "isn", "ooo", "ooo_bytes", "fin", "fin_seq", "zero_window", "max_acked", "sink")

    def __init__(self) -> None:
        self.next_seq: int | None = None
        self.isn: int | None = None
        #: seq -> (payload bytes, frame, ts_ns): out-of-order segments waiting for the hole to fill
        self.ooo: dict[int, tuple[bytes, int, int]] = {}
        self.ooo_bytes = 0
        self.fin = False
        self.fin_seq: int | None = None
        self.zero_window = False
        #: highest ACK the *peer* sent for this direction's bytes
        self.max_acked: int | None = None
        #: consumer of in-order payload (``TcpReassembler.attach``), or None: stream items
        self.sink: Sink | None = None


class Flow:
    """A TCP connection seen in the capture."""

    __slots__ = ("conn", "client", "client_port", "server", "server_port", "halves", "iscsi", "opened",
                 "syn_frame", "syn_ts", "handshake", "closed", "rst", "last_ts", "keys")

    def __init__(self) -> None:
        self.conn = ""
        self.client = ""
        self.client_port = 0
        self.server = ""
        self.server_port = 0
        #: index 0 = initiator->target (i2t), 1 = target->initiator (t2i)
        self.halves = (HalfStream(), HalfStream())
        self.iscsi: bool | None = None  # None = not decided yet
        self.opened = False
        self.syn_frame = 0
        self.syn_ts = 0
        self.handshake = False
        self.closed = False
        self.rst = False
        self.last_ts = 0
        self.keys: tuple[tuple[bytes, int, bytes, int], tuple[bytes, int, bytes, int]] | None = None


DIRECTIONS: Final = (I2T, T2I)

#: A flow table key: (src address, src port, dst address, dst port).
FlowKey = tuple[bytes, int, bytes, int]


class FlowWatch:
    """What a watched reassembler notes (``TcpReassembler.watch``; batch stitching)."""

    __slots__ = ("created", "peak_ooo_bytes")

    def __init__(self, ooo_bytes: int) -> None:
        #: (frame, key of the segment) of every flow created
        self.created: list[tuple[int, FlowKey]] = []
        #: highest ``total_ooo_bytes`` after an out-of-order segment
        self.peak_ooo_bytes = ooo_bytes


class UnitSnapshot:
    """A unit's part of a reassembler (``unit_snapshot``): ``flows`` as (key, (flow, direction
    index), place in the flow table) and ``reuse`` counts by key."""

    __slots__ = ("flows", "reuse")

    def __init__(self, flows: list[tuple[FlowKey, tuple[Flow, int], int]], reuse: dict[FlowKey, int]) -> None:
        self.flows = flows
        self.reuse = reuse


def _digest(b: bytes) -> tuple[int, str]:
    return len(b), hashlib.blake2b(b, digest_size=16).hexdigest()


def _half_image(h: HalfStream) -> tuple[object, ...]:
    # everything but the ISN (history) and the sink (the consumer, not state)
    ooo = tuple((seq, _digest(data), fr, ts) for seq, (data, fr, ts) in h.ooo.items())
    return h.next_seq, ooo, h.ooo_bytes, h.fin, h.fin_seq, h.zero_window, h.max_acked

#: A consumer of in-order payload: (frame, ts_ns, data) -> the records it produced.
Sink = Callable[[int, int, "bytes | memoryview"], list[Record]]


class TcpReassembler:
    """Feeds TCP segments, emits TCP records and in-order stream items (see module doc)."""

    def __init__(
        self,
        ports: Iterable[int] = DEFAULT_PORTS,
        *,
        detect_other_ports: bool = True,
        max_ooo_bytes: int = DEFAULT_MAX_OOO_BYTES,
        max_total_ooo_bytes: int = DEFAULT_MAX_TOTAL_OOO_BYTES,
        max_flows: int = DEFAULT_MAX_FLOWS,
        format_ip: object = None,
        max_ooo_segments: int = DEFAULT_MAX_OOO_SEGMENTS,
    ) -> None:
        self.ports = frozenset(ports)
        self.detect_other_ports = detect_other_ports
        self.max_ooo_bytes = max_ooo_bytes
        self.max_total_ooo_bytes = max_total_ooo_bytes
        self.max_flows = max(1, max_flows)
        self.max_ooo_segments = max(1, max_ooo_segments)
        self.total_ooo_bytes = 0
        #: (src, sport, dst, dport) -> (flow, direction index)
        self.flows: dict[tuple[bytes, int, bytes, int], tuple[Flow, int]] = {}
        #: number of connections ever seen per 4-tuple, for "#N" ids
        self._reuse: dict[tuple[bytes, int, bytes, int], int] = {}
        self._format_ip = format_ip if callable(format_ip) else _format_ip
        #: flows forgotten by the flow limit (open ones end with ``TcpClosed(reason="evicted")``)
        self.evicted_flows = 0
        #: of those, flows that never carried payload (SYN-only probes, refused connections)
        self.evicted_unopened = 0
        self.segments = 0
        #: what a ``FlowWatch`` notes while one is set (``watch``), else None
        self._watch: FlowWatch | None = None
        #: open connections by id (for ``attach``)
        self._open_flows: dict[str, Flow] = {}
        #: True when the last ``feed_segment`` returned only what a sink produced
        self.sunk = False

    def attach(self, conn: str, i2t: Sink | None, t2i: Sink | None) -> None:
        """Hand the in-order payload of open connection ``conn`` to these sinks (see module doc)."""
        flow = self._open_flows.get(conn)
        if flow is not None and not flow.closed:
            flow.halves[0].sink = i2t
            flow.halves[1].sink = t2i


    # ------------------------------------------------------------------ snapshot / graft (batch)
    #
    # ``analyzer.batch`` decodes the files of a capture split in pieces on several workers and
    # stitches the results exactly. It compares and moves per-*unit* state (one unit = the two
    # 4-tuple keys of one endpoint pair: its flow and its reuse counts) through these methods
    # only, so what counts as state stays defined here, next to the fields.

    def watch(self) -> FlowWatch:
        """Start noting flow creations and the peak of the out-of-order bytes (``unwatch`` stops)."""
        self._watch = FlowWatch(self.total_ooo_bytes)
        return self._watch

    def unwatch(self) -> None:
        """Stop what ``watch`` started."""
        self._watch = None

    def unit_image(self, keys: tuple[FlowKey, FlowKey]) -> tuple[tuple[object, ...], tuple[object, ...]]:
        """Canonical image of a unit's state: (core, history). Equal images + equal input = equal output.

        ``core``: the reuse counts, the flow and both halves (next_seq, buffered bytes by digest,
        FIN/RST, window and ACK state). ``history`` (SYN frame and time, handshake, ISNs) is only
        read when a SYN comes again or before the flow carried payload. ``last_ts`` is left out:
        it only orders eviction (the caller keeps eviction out of reach, see ``max_flows``).
        """
        core: list[object] = []
        hist: list[object] = []
        for k in keys:
            core.append(self._reuse.get(k))
            e = self.flows.get(k)
            if e is None:
                core.append(None)
                continue
            flow, d = e
            core.append((d, flow.conn, flow.client, flow.client_port, flow.server, flow.server_port, flow.iscsi,
                         flow.opened, flow.closed, flow.rst, flow.keys, tuple(_half_image(h) for h in flow.halves)))
            hist.append((flow.syn_frame, flow.syn_ts, flow.handshake, tuple(h.isn for h in flow.halves)))
        return tuple(core), tuple(hist)

    def unit_snapshot(self, keys: tuple[FlowKey, FlowKey], positions: dict[FlowKey, int]) -> UnitSnapshot:
        """The unit's flows (with their places in ``flows``, from ``positions``) and reuse counts."""
        flows = [(k, e, positions[k]) for k in keys if (e := self.flows.get(k)) is not None]
        return UnitSnapshot(flows, {k: self._reuse[k] for k in keys if k in self._reuse})

    def flow_positions(self) -> dict[FlowKey, int]:
        """Key -> place in the flow table (its order is state: eviction sorts stably on it)."""
        return {k: i for i, k in enumerate(self.flows)}

    def graft(self, flows: dict[FlowKey, tuple[Flow, int]], reuse: dict[FlowKey, int | None],
              segments: int) -> None:
        """Replace the flow table by ``flows`` (in that order), set the reuse counts given (None:
        forget), add ``segments`` to the segment counter; recompute the out-of-order total and
        the open-connection index from the flows."""
        self.flows = dict(flows)
        for k, n in reuse.items():
            if n is None:
                self._reuse.pop(k, None)
            else:
                self._reuse[k] = n
        distinct = {id(f): f for f, _d in self.flows.values()}
        self.total_ooo_bytes = sum(h.ooo_bytes for f in distinct.values() for h in f.halves)
        self._open_flows = {f.conn: f for f in distinct.values() if f.opened and not f.closed}
        self.segments += segments

    # ------------------------------------------------------------------ public

    def feed_segment(
        self, frame: int, ts_ns: int, src: bytes, dst: bytes, sport: int, dport: int,
        seq: int, ack: int, flags: int, window: int, payload: bytes | memoryview, missing: int = 0,
    ) -> list[object]:
        """Feed one TCP segment (capture order). Returns TCP records and stream items.

        ``missing``: payload bytes the segment carried after ``payload`` that the capture cut
        (snaplen); see "Snap length" in the module doc.
        """
        self.segments += 1
        self.sunk = False
        entry = self.flows.get((src, sport, dst, dport))
        out: list[object] = []
        if entry is None:
            entry = self._new_flow(frame, ts_ns, src, dst, sport, dport, flags, payload, out)
            if entry is None:
                return out
        flow, d = entry
        if flow.iscsi is False:
            return out
        flow.last_ts = ts_ns
        if flags & (SYN | RST | FIN):
            if flags & SYN:
                if self._syn(flow, d, frame, ts_ns, seq, flags, out, src, dst, sport, dport):
                    # the 4-tuple was reused: continue with the new flow
                    flow, d = self.flows[(src, sport, dst, dport)]
                if not payload:
                    return out
                seq = (seq + 1) & MASK
        half = flow.halves[d]
        # ACK bookkeeping for the *other* direction (capture-loss detection).
        if flags & ACK:
            other = flow.halves[1 - d]
            ma = other.max_acked
            if ma != ack and (ma is None or ((ack - ma) & MASK) < HALF):
                other.max_acked = ack
                if other.ooo and other.next_seq is not None and seq_diff(ack, other.next_seq) > 0:
                    # The peer acknowledged bytes the capture never had: they are lost for us.
                    self._declare_gap(flow, 1 - d, frame, ts_ns, out, upto=ack)
        if window == 0 and not flags & RST:
            if not half.zero_window and flow.opened:
                half.zero_window = True
                out.append(TcpZeroWindow(frame, ts_ns, flow.conn, DIRECTIONS[d]))
        elif half.zero_window:
            half.zero_window = False
        n = len(payload)
        if n or missing:
            if flow.iscsi is None:
                if not n or not self._classify(flow, d, payload, src, dst, sport, dport):
                    return out
                d = 0 if half is flow.halves[0] else 1  # roles may have been swapped
            if not flow.opened:
                self._open(flow, frame, ts_ns, out)
            nxt = half.next_seq
            if nxt is None:
                half.next_seq = nxt = seq
            if missing and seq == nxt and not half.ooo:
                # Cut by the snaplen: deliver what was captured, then the cut tail as a gap.
                half.next_seq = (seq + n + missing) & MASK
                if n:
                    out.append((DATA, flow.conn, DIRECTIONS[d], frame, ts_ns, payload))
                self._gap_item(flow, d, frame, ts_ns, (seq + n) & MASK, missing, out, snaplen=True)
            elif missing and not n:
                pass  # out of order, nothing captured: the hole is declared when it is proven lost
            elif seq == nxt and not half.ooo:
                half.next_seq = (seq + n) & MASK
                sink = half.sink
                if sink is not None and not out and not flags & (RST | FIN):
                    # Hot path: nothing else to say about this segment; its bytes go straight on.
                    self.sunk = True
                    return sink(frame, ts_ns, payload)  # type: ignore[return-value]
                out.append((DATA, flow.conn, DIRECTIONS[d], frame, ts_ns, payload))
            else:
                self._segment_slow(flow, d, frame, ts_ns, seq, payload, out)
                watch = self._watch
                if watch is not None and self.total_ooo_bytes > watch.peak_ooo_bytes:
                    watch.peak_ooo_bytes = self.total_ooo_bytes
        if flags & (RST | FIN):
            if flags & RST:
                self._rst(flow, d, frame, ts_ns, out, (seq + n + missing) & MASK)
            else:
                self._fin(flow, d, frame, ts_ns, (seq + n + missing) & MASK, out)
        return out

    def finish(self, frame: int, ts_ns: int) -> list[object]:
        """End of capture: declare trailing gaps, close every open flow."""
        out: list[object] = []
        for flow, d in list(self.flows.values()):
            if d != 0 or flow.closed or not flow.opened:
                continue
            for i in (0, 1):
                if flow.halves[i].ooo:
                    self._declare_gap(flow, i, frame, ts_ns, out, upto=None, flush=True)
            self._close(flow, frame, ts_ns, "capture_end", out)
        return out

    # ------------------------------------------------------------------ flows

    def _new_flow(
        self, frame: int, ts_ns: int, src: bytes, dst: bytes, sport: int, dport: int, flags: int,
        payload: bytes | memoryview, out: list[object],
    ) -> tuple[Flow, int] | None:
        if flags & RST and not payload:
            return None  # a reset for a flow we never saw: nothing to say
        if len(self.flows) >= 2 * self.max_flows:  # two keys per flow
            self._evict(frame, ts_ns, out)
        flow = Flow()
        ports = self.ports
        # Who is the target? The side on an iSCSI port; if both or neither, the SYN's receiver.
        if dport in ports and (sport not in ports or flags & (SYN | ACK) == SYN):
            init = (src, sport, dst, dport)
            flow.iscsi = True
        elif sport in ports:
            init = (dst, dport, src, sport)
            flow.iscsi = True
        else:
            if not self.detect_other_ports:
                flow.iscsi = False
            # Undecided: assume the SYN sender (or this sender) is the initiator until a Login shows.
            if flags & (SYN | ACK) == (SYN | ACK):
                init = (dst, dport, src, sport)
            else:
                init = (src, sport, dst, dport)
        rev = (init[2], init[3], init[0], init[1])
        flow.keys = (init, rev)
        flow.client = self._format_ip(init[0])
        flow.client_port = init[1]
        flow.server = self._format_ip(init[2])
        flow.server_port = init[3]
        base = f"{_fmt_ep(flow.client, flow.client_port)}->{_fmt_ep(flow.server, flow.server_port)}"
        count = self._reuse.get(init, 0) + 1
        self._reuse[init] = count
        flow.conn = base if count == 1 else f"{base}#{count}"
        flow.last_ts = ts_ns
        self.flows[init] = (flow, 0)
        self.flows[rev] = (flow, 1)
        if self._watch is not None:
            self._watch.created.append((frame, (src, sport, dst, dport)))
        return self.flows[(src, sport, dst, dport)]

    def _classify(self, flow: Flow, d: int, payload: bytes | memoryview, src: bytes, dst: bytes,
                  sport: int, dport: int) -> bool:
        """Decide whether an undecided flow carries iSCSI from its first payload."""
        if looks_like_login_request(payload):
            flow.iscsi = True
            if d == 1:  # the sender of the Login Request is the initiator: swap roles
                self._swap_roles(flow)
            return True
        flow.iscsi = False
        return False

    def _swap_roles(self, flow: Flow) -> None:
        assert flow.keys is not None
        init, rev = flow.keys
        flow.keys = (rev, init)
        flow.halves = (flow.halves[1], flow.halves[0])
        flow.client, flow.server = flow.server, flow.client
        flow.client_port, flow.server_port = flow.server_port, flow.client_port
        old_conn = flow.conn
        count = self._reuse.pop(init, 1)
        if count > 1:
            self._reuse[init] = count - 1
        count = self._reuse.get(rev, 0) + 1
        self._reuse[rev] = count
        base = f"{_fmt_ep(flow.client, flow.client_port)}->{_fmt_ep(flow.server, flow.server_port)}"
        flow.conn = base if count == 1 else f"{base}#{count}"
        del old_conn
        self.flows[rev] = (flow, 0)
        self.flows[init] = (flow, 1)

    def _open(self, flow: Flow, frame: int, ts_ns: int, out: list[object]) -> None:
        flow.opened = True
        self._open_flows[flow.conn] = flow
        if flow.handshake:
            frame, ts_ns = flow.syn_frame, flow.syn_ts
        out.append(TcpOpened(frame, ts_ns, flow.conn, flow.client, flow.client_port, flow.server,
                             flow.server_port, flow.handshake))

    def _close(self, flow: Flow, frame: int, ts_ns: int, reason: str, out: list[object]) -> None:
        flow.closed = True
        for h in flow.halves:
            h.sink = None
        if self._open_flows.get(flow.conn) is flow:
            del self._open_flows[flow.conn]
        out.append(TcpClosed(frame, ts_ns, flow.conn, reason))

    def _syn(self, flow: Flow, d: int, frame: int, ts_ns: int, seq: int, flags: int, out: list[object],
             src: bytes, dst: bytes, sport: int, dport: int) -> bool:
        """Handle a SYN / SYN-ACK. Returns True if it started a new connection on a reused 4-tuple."""
        half = flow.halves[d]
        if half.isn == seq and not (flow.closed or flow.rst):
            return False  # retransmitted SYN
        if flow.opened:
            # A fresh SYN on a connection that carried data: the 4-tuple is being reused.
            if not flow.closed:
                for i in (0, 1):
                    if flow.halves[i].ooo:
                        self._declare_gap(flow, i, frame, ts_ns, out, upto=None, flush=True)
                self._close(flow, frame, ts_ns, "reused", out)
            assert flow.keys is not None
            for k in flow.keys:
                self.flows.pop(k, None)
            self._release(flow)  # bytes buffered after it closed are dropped with it
            # (a SYN+RST still starts the new flow: RST alone would make _new_flow ignore it)
            new = self._new_flow(frame, ts_ns, src, dst, sport, dport, flags & ~RST, b"", out)
            assert new is not None
            nflow, nd = new
            if flow.iscsi:
                nflow.iscsi = True
            self._syn(nflow, nd, frame, ts_ns, seq, flags, out, src, dst, sport, dport)
            return True
        if not flags & ACK:
            # The initiating SYN (possibly a new attempt on a flow that never carried data).
            flow.halves = (HalfStream(), HalfStream())
            flow.rst = False
            flow.closed = False
            half = flow.halves[d]
            flow.handshake = True
            flow.syn_frame = frame
            flow.syn_ts = ts_ns
        half.isn = seq
        half.next_seq = (seq + 1) & MASK
        return False

    def _fin(self, flow: Flow, d: int, frame: int, ts_ns: int, fin_seq: int, out: list[object]) -> None:
        half = flow.halves[d]
        if half.fin:
            return
        if half.ooo:
            self._declare_gap(flow, d, frame, ts_ns, out, upto=None, flush=True)
        if half.next_seq is not None and seq_diff(fin_seq, half.next_seq) > 0 and flow.opened:
            # Bytes before the FIN were never captured.
            self._gap_item(flow, d, frame, ts_ns, half.next_seq, seq_diff(fin_seq, half.next_seq), out)
            half.next_seq = fin_seq
        half.fin = True
        half.fin_seq = fin_seq
        if not flow.opened:
            return
        out.append(TcpFin(frame, ts_ns, flow.conn, DIRECTIONS[d]))
        if flow.halves[1 - d].fin and not flow.closed:
            self._close(flow, frame, ts_ns, "fin", out)

    def _rst(self, flow: Flow, d: int, frame: int, ts_ns: int, out: list[object], seq: int) -> None:
        if flow.rst:
            return
        nxt = flow.halves[d].next_seq
        if nxt is not None and flow.opened and seq_diff(seq, nxt) < 0:
            # Before bytes its sender already sent: out of the receiver's window, so the receiver
            # ignores it (RFC 9293 §3.10.7.4) and the connection goes on (a stack answering
            # segments that arrive after it closed, with a stale sequence number).
            return
        flow.rst = True
        if not flow.opened:
            return
        for i in (0, 1):
            if flow.halves[i].ooo:
                self._declare_gap(flow, i, frame, ts_ns, out, upto=None, flush=True)
        out.append(TcpRst(frame, ts_ns, flow.conn, DIRECTIONS[d]))
        if not flow.closed:
            self._close(flow, frame, ts_ns, "rst", out)

    def _evict(self, frame: int, ts_ns: int, out: list[object]) -> None:
        """Forget half of the flows (resource bound; see "Flow limit" in the module doc)."""
        seen: dict[int, Flow] = {}
        for flow, _ in self.flows.values():
            seen[id(flow)] = flow
        # Flows with nothing more to say go first (never opened, or closed), then the least recently active.
        ordered = sorted(seen.values(), key=lambda f: (f.opened and not f.closed, f.last_ts))
        unopened0 = self.evicted_unopened
        victims = ordered[: max(1, len(ordered) // 2)]
        for flow in victims:
            assert flow.keys is not None
            if flow.opened and not flow.closed:
                for i in (0, 1):
                    if flow.halves[i].ooo:
                        self._declare_gap(flow, i, frame, ts_ns, out, upto=None, flush=True)
                self._close(flow, frame, ts_ns, "evicted", out)
            for k in flow.keys:
                if self.flows.get(k, (None, 0))[0] is flow:
                    del self.flows[k]
            self._release(flow)
            if not flow.opened:
                self.evicted_unopened += 1
                # Its id was never published: free its "#N" number (keeps ``_reuse`` bounded).
                init = flow.keys[0]
                count = self._reuse.get(init, 0) - 1
                if count > 0:
                    self._reuse[init] = count
                else:
                    self._reuse.pop(init, None)
            self.evicted_flows += 1
        out.append(TcpFlowsEvicted(frame, ts_ns, len(victims), self.evicted_unopened - unopened0, self.max_flows))

    def _release(self, flow: Flow) -> None:
        """Drop a forgotten flow's out-of-order buffers from the memory accounting."""
        for h in flow.halves:
            self.total_ooo_bytes -= h.ooo_bytes
            h.ooo.clear()
            h.ooo_bytes = 0

    # ------------------------------------------------------------------ segments

    def _segment_slow(self, flow: Flow, d: int, frame: int, ts_ns: int, seq: int,
                      payload: bytes | memoryview, out: list[object]) -> None:
        half = flow.halves[d]
        nxt = half.next_seq
        assert nxt is not None
        n = len(payload)
        off = seq_diff(seq, nxt)
        conn = flow.conn
        direction = DIRECTIONS[d]
        if off + n <= 0:
            out.append(TcpRetransmission(frame, ts_ns, conn, direction, seq, n))
            return
        if off < 0:
            # Overlap: deliver only the new tail.
            payload = payload[-off:]
            seq = nxt
            n = len(payload)
            off = 0
        if off == 0:
            # Fills the hole (or continues the stream); compare with buffered data it overlaps.
            self._check_overlap(flow, d, frame, ts_ns, seq, payload, out)
            half.next_seq = (seq + n) & MASK
            out.append((DATA, conn, direction, frame, ts_ns, payload))
            self._drain(flow, d, out, frame, ts_ns)
            return
        # Out of order: buffer a copy.
        old = half.ooo.get(seq)
        if old is not None:
            if len(old[0]) >= n:
                if old[0][:n] != bytes(payload):
                    out.append(TcpOverlapConflict(frame, ts_ns, conn, direction, seq, n))
                out.append(TcpRetransmission(frame, ts_ns, conn, direction, seq, n))
                return
            self._check_overlap(flow, d, frame, ts_ns, seq, payload, out)
            half.ooo_bytes -= len(old[0])
            self.total_ooo_bytes -= len(old[0])
        half.ooo[seq] = (bytes(payload), frame, ts_ns)
        half.ooo_bytes += n
        self.total_ooo_bytes += n
        ma = half.max_acked
        if ma is not None and seq_diff(ma, nxt) > 0:
            # The peer already acknowledged bytes we never saw: they are lost to the capture.
            self._declare_gap(flow, d, frame, ts_ns, out, upto=ma)
        elif (half.ooo_bytes > self.max_ooo_bytes or self.total_ooo_bytes > self.max_total_ooo_bytes
              or len(half.ooo) > self.max_ooo_segments):
            # The hole is not going to be filled in reasonable time: declare it lost.
            self._declare_gap(flow, d, frame, ts_ns, out, upto=None)

    def _check_overlap(self, flow: Flow, d: int, frame: int, ts_ns: int, seq: int,
                       payload: bytes | memoryview, out: list[object]) -> None:
        half = flow.halves[d]
        n = len(payload)
        for bseq, (bdata, _bf, _bt) in half.ooo.items():
            o = seq_diff(bseq, seq)
            if o >= n or o + len(bdata) <= 0:
                continue
            lo = max(o, 0)
            hi = min(n, o + len(bdata))
            if bytes(payload[lo:hi]) != bdata[lo - o:hi - o]:
                out.append(TcpOverlapConflict(frame, ts_ns, flow.conn, DIRECTIONS[d], (seq + lo) & MASK, hi - lo))

    def _drain(self, flow: Flow, d: int, out: list[object], frame: int, ts_ns: int,
               own_frames: bool = False) -> None:
        """Deliver buffered segments that are now in order.

        They are delivered as of ``frame``/``ts_ns``, the frame that made them deliverable: a PDU
        completed by a retransmission that fills a hole is shown in that frame, as Wireshark does
        with out-of-order reassembly, and its time is when the receiver could have used it.
        With ``own_frames`` (after a capture gap was declared: nothing filled the hole, and the
        declaring frame may even be an ACK of the other direction) each segment keeps the frame
        and time it was captured in.
        """
        half = flow.halves[d]
        conn = flow.conn
        direction = DIRECTIONS[d]
        while half.ooo:
            nxt = half.next_seq
            assert nxt is not None
            best: int | None = nxt if nxt in half.ooo else None  # the common case, without a scan
            if best is None:
                for bseq in half.ooo:
                    if seq_diff(bseq, nxt) <= 0:
                        best = bseq
                        break
            if best is None:
                return
            data, bframe, bts = half.ooo.pop(best)
            half.ooo_bytes -= len(data)
            self.total_ooo_bytes -= len(data)
            off = seq_diff(best, nxt)
            if off + len(data) <= 0:
                continue  # entirely old
            chunk = data[-off:] if off < 0 else data
            half.next_seq = (nxt + len(chunk)) & MASK
            if own_frames:
                out.append((DATA, conn, direction, bframe, bts, chunk))
            else:
                out.append((DATA, conn, direction, frame, ts_ns, chunk))

    def _declare_gap(self, flow: Flow, d: int, frame: int, ts_ns: int, out: list[object], *,
                     upto: int | None, flush: bool = False) -> None:
        """Bytes from next_seq up to the first buffered segment (or ``upto``) will never arrive."""
        half = flow.halves[d]
        while half.ooo:
            nxt = half.next_seq
            assert nxt is not None
            first = min(half.ooo, key=lambda s: seq_diff(s, nxt))
            missing = seq_diff(first, nxt)
            if missing > 0:
                self._gap_item(flow, d, frame, ts_ns, nxt, missing, out)
                half.next_seq = first
            self._drain(flow, d, out, frame, ts_ns, own_frames=True)
            if not flush and (upto is None or seq_diff(upto, half.next_seq or 0) <= 0):
                break

    def _gap_item(self, flow: Flow, d: int, frame: int, ts_ns: int, seq: int, length: int,
                  out: list[object], snaplen: bool = False) -> None:
        out.append(TcpGap(frame, ts_ns, flow.conn, DIRECTIONS[d], seq, length, snaplen))
        out.append((SNAPLEN_GAP if snaplen else GAP, flow.conn, DIRECTIONS[d], frame, ts_ns, length))


def _fmt_ep(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _format_ip(addr: bytes) -> str:
    import ipaddress

    if len(addr) == 4:
        return ".".join(str(b) for b in addr)
    return str(ipaddress.IPv6Address(addr))


__all__ = ["TcpReassembler", "FlowKey", "FlowWatch", "UnitSnapshot", "DATA", "GAP", "SNAPLEN_GAP", "seq_diff",
           "looks_like_login_request", "Record"]
