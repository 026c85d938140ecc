"""Transport and capture findings: TCP retransmissions, zero windows, capture gaps, overlaps,
framing problems, damaged captures, evicted flows.

Kinds: tcp_retransmissions, zero_window, capture_gap, capture_truncated, tcp_overlap_conflict,
malformed_pdu, framing_lost, capture_damaged, resource_limit.

Per-stream counters are summarised once per connection and direction when the connection
closes (``TcpClosed``, which the pipeline also emits at capture end), so a lossy capture
yields one capture_gap finding per stream, not one per gap.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from analyzer.anomalies.context import NS, Context, direction_word, side_of
from analyzer.anomalies.rules.base import Handler, Rule
from analyzer.records import (
    I2T,
    T2I,
    CaptureDamage,
    FramingResync,
    MalformedPdu,
    Pdu,
    TcpClosed,
    TcpFlowsEvicted,
    TcpGap,
    TcpOverlapConflict,
    TcpRetransmission,
    TcpZeroWindow,
)
from analyzer.state.events import TaskRecord

#: tcp_retransmissions thresholds
RETRANS_MIN_COUNT = 5
RETRANS_MIN_SHARE = 0.03
RETRANS_BURST_COUNT = 10
RETRANS_BURST_NS = 1 * NS
#: zero_window: this many or more is a warning
ZERO_WINDOW_WARN = 3
#: evidence frames kept per stream
_KEEP = 20


def _bytes(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


@dataclass(slots=True)
class _Stream:
    carried: int = 0
    retrans: int = 0
    retrans_bytes: int = 0
    retrans_frames: list[int] = field(default_factory=list)
    retrans_first_ts: int = 0
    recent: deque[int] = field(default_factory=deque)
    burst: int = 0
    zero: int = 0
    zero_frames: list[int] = field(default_factory=list)
    zero_first_ts: int = 0
    gaps: int = 0
    gap_bytes: int = 0
    gap_frames: list[int] = field(default_factory=list)
    gap_first_ts: int = 0
    cut: int = 0  # segments cut by the snap length
    cut_bytes: int = 0
    cut_frames: list[int] = field(default_factory=list)
    cut_first_ts: int = 0


class TransportRule(Rule):
    """tcp_retransmissions, zero_window, capture_gap (per-stream summaries), tcp_overlap_conflict."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._lost_tasks: dict[str, int] = {}

    def handlers(self) -> dict[type, Handler]:
        return {Pdu: self.pdu, TcpGap: self.gap, TcpRetransmission: self.retrans, TcpZeroWindow: self.zero,
                TcpClosed: self.closed, TcpOverlapConflict: self.overlap, TaskRecord: self.task,
                TcpFlowsEvicted: self.flows_evicted}

    def forget(self, sid: str | None, conns: frozenset[str]) -> None:
        for cn in conns:
            self._streams.pop((cn, I2T), None)
            self._streams.pop((cn, T2I), None)
            self._lost_tasks.pop(cn, None)

    def _s(self, conn: str, direction: str) -> _Stream:
        s = self._streams.get((conn, direction))
        if s is None:
            s = self._streams[(conn, direction)] = _Stream()
        return s

    def pdu(self, pdu: Pdu) -> None:
        size = 48 + 4 * pdu.total_ahs_length + ((pdu.dsl + 3) & ~3)
        if pdu.header_digest is not None:
            size += 4
        if pdu.data_digest is not None and pdu.dsl:
            size += 4
        self._s(pdu.conn, pdu.direction).carried += size

    def gap(self, g: TcpGap) -> None:
        s = self._s(g.conn, g.direction)
        if g.snaplen:  # cut by the snap length: not lost, and the stream position is exact
            if not s.cut:
                s.cut_first_ts = g.ts_ns
            s.cut += 1
            s.cut_bytes += g.length
            s.carried += g.length
            if len(s.cut_frames) < _KEEP:
                s.cut_frames.append(g.frame)
            return
        if not s.gaps:
            s.gap_first_ts = g.ts_ns
        s.gaps += 1
        s.gap_bytes += g.length
        s.carried += g.length
        if len(s.gap_frames) < _KEEP:
            s.gap_frames.append(g.frame)

    def retrans(self, r: TcpRetransmission) -> None:
        s = self._s(r.conn, r.direction)
        if not s.retrans:
            s.retrans_first_ts = r.ts_ns
        s.retrans += 1
        s.retrans_bytes += r.length
        if len(s.retrans_frames) < _KEEP:
            s.retrans_frames.append(r.frame)
        s.recent.append(r.ts_ns)
        while s.recent and r.ts_ns - s.recent[0] > RETRANS_BURST_NS:
            s.recent.popleft()
        s.burst = max(s.burst, len(s.recent))

    def zero(self, z: TcpZeroWindow) -> None:
        s = self._s(z.conn, z.direction)
        if not s.zero:
            s.zero_first_ts = z.ts_ns
        s.zero += 1
        if len(s.zero_frames) < _KEEP:
            s.zero_frames.append(z.frame)

    def task(self, t: TaskRecord) -> None:
        if t.outcome == "lost_in_capture_gap":
            self._lost_tasks[t.conn] = self._lost_tasks.get(t.conn, 0) + 1

    def overlap(self, o: TcpOverlapConflict) -> None:
        self.ctx.emit("tcp_overlap_conflict", o.frame, o.ts_ns,
                      f"A retransmitted {direction_word(o.direction)} segment "
                      f"({o.length} bytes at seq {o.seq}) carried "
                      f"different bytes than the first copy; the first copy was analysed.",
                      conn=o.conn, limit_key=(o.conn, o.direction), limit=5)

    def flows_evicted(self, e: TcpFlowsEvicted) -> None:
        self.ctx.emit("resource_limit", e.frame, e.ts_ns,
                      f"The flow limit ({e.limit:,} flows, --max-flows) was reached: the analyzer forgot {e.flows:,} "
                      f"TCP flows at once, {e.unopened:,} of them never carried payload (SYN-only probes or refused "
                      f"connections); a connection among them is not analysed from here.",
                      limit_key=("flow_limit",), limit=3)

    def closed(self, c: TcpClosed) -> None:
        if c.reason == "evicted":
            self.ctx.emit("resource_limit", c.frame, c.ts_ns,
                          "The analyzer evicted this TCP flow's state (too many flows or too much buffered "
                          "out-of-order data); its analysis is incomplete from here.", conn=c.conn)
        self.ctx.defer(lambda: self._summarise(c.conn))

    def _summarise(self, conn: str) -> None:
        for direction in (I2T, T2I):
            s = self._streams.pop((conn, direction), None)
            if s is not None:
                self._report(conn, direction, s)
        self._lost_tasks.pop(conn, None)

    def _report(self, conn: str, direction: str, s: _Stream) -> None:
        ctx = self.ctx
        dw = direction_word(direction)
        if s.retrans >= RETRANS_MIN_COUNT:
            share = s.retrans_bytes / s.carried if s.carried else 1.0
            if share >= RETRANS_MIN_SHARE or s.burst >= RETRANS_BURST_COUNT:
                ctx.emit("tcp_retransmissions", s.retrans_frames[0], s.retrans_first_ts,
                         f"The {side_of(direction)} retransmitted {s.retrans} segments ({_bytes(s.retrans_bytes)}, "
                         f"{share:.1%} of the {dw} bytes; up to {s.burst} within 1 s): packet loss on the path.",
                         conn=conn, frames=s.retrans_frames)
        if s.zero:
            advertiser = side_of(direction)
            ctx.emit("zero_window", s.zero_frames[0], s.zero_first_ts,
                     f"The {advertiser} advertised a zero TCP receive window "
                     f"{s.zero} time{'s' if s.zero != 1 else ''}: "
                     f"it could not take more data.", conn=conn, frames=s.zero_frames,
                     severity="warning" if s.zero >= ZERO_WINDOW_WARN else "info")
        if s.gaps:
            lost = self._lost_tasks.get(conn, 0)
            tail = (f"; {lost} task{'s' if lost != 1 else ''} on this connection ended with an unknown outcome"
                    if lost and direction == T2I else "")
            ctx.emit("capture_gap", s.gap_frames[0], s.gap_first_ts,
                     f"The capture is missing {_bytes(s.gap_bytes)} of the {dw} stream in {s.gaps} "
                     f"gap{'s' if s.gaps != 1 else ''}, the first at frame {s.gap_frames[0]}: analysis of this stream "
                     f"after that point is uncertain{tail}.", conn=conn, frames=s.gap_frames)
        if s.cut:
            ctx.emit("capture_truncated", s.cut_frames[0], s.cut_first_ts,
                     f"The capture's snap length cut {s.cut} segment{'s' if s.cut != 1 else ''} of the {dw} stream "
                     f"({_bytes(s.cut_bytes)} of payload not captured): PDU headers were decoded and cut data "
                     f"segments skipped by length, so their contents (login/text keys, sense data) and data "
                     f"digests are unknown.", conn=conn, frames=s.cut_frames)

    def finish(self, ts_ns: int) -> None:
        for conn in sorted({k[0] for k in self._streams}):
            self._summarise(conn)


class FramingRule(Rule):
    """malformed_pdu, framing_lost, capture_damaged."""

    def handlers(self) -> dict[type, Handler]:
        return {MalformedPdu: self.malformed, FramingResync: self.resync, CaptureDamage: self.damage}

    def malformed(self, m: MalformedPdu) -> None:
        ctx = self.ctx
        c = ctx.conns.get(m.conn)
        after_loss = c is not None and m.direction in c.last_loss_ts
        msg = (f"A {direction_word(m.direction)} PDU (opcode 0x{m.opcode:02x}) could not be decoded: {m.reason} "
               f"(at byte {m.offset})")
        if after_loss:
            msg += "; the capture lost data of this stream earlier, so this may be a framing artefact"
        ctx.emit("malformed_pdu", m.frame, m.ts_ns, msg + ".", conn=m.conn, frames=[m.first_frame, m.frame],
                 severity="info" if after_loss else "warning", limit_key=(m.conn, m.direction), limit=10)

    def resync(self, r: FramingResync) -> None:
        if r.skipped == 0 and r.found:
            return
        ctx = self.ctx
        c = ctx.conns.get(r.conn)
        earlier_loss = c is not None and r.direction in c.gap_dirs
        why = {"gap": "after a capture gap", "mid_stream": "because the capture began mid-stream",
               "snaplen": "where the capture's snap length cut a PDU header",
               "digests_unknown": "while detecting digests (the login's digest keys were not captured)",
               "implausible_header": "because the stream did not hold a plausible iSCSI header"}.get(r.reason, r.reason)
        found = "then found a PDU header" if r.found else "and found no PDU boundary"
        sev = "warning" if r.reason == "implausible_header" and not earlier_loss else "info"
        ctx.emit("framing_lost", r.frame, r.ts_ns,
                 f"PDU framing of the {direction_word(r.direction)} stream was lost {why}: {r.skipped} bytes "
                 f"skipped, {found}; PDUs in those bytes are not analysed.", conn=r.conn, severity=sev,
                 frames=[r.start_frame] if r.start_frame else (),
                 limit_key=(r.conn, r.direction), limit=5)

    def damage(self, d: CaptureDamage) -> None:
        self.ctx.emit("capture_damaged", d.frame, d.ts_ns, f"The capture file is damaged: {d.message}.")
