"""TCP reassembly: order, retransmission, overlap, gaps, wrap-around, reuse (analyzer/tcp)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.records import (
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
from analyzer.tcp.reassembly import DATA, GAP, SNAPLEN_GAP, TcpReassembler, looks_like_login_request, seq_diff

CLI = b"\x0a\x00\x00\x01"
SRV = b"\x0a\x00\x00\x02"
SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08


class Conn:
    """Drives a reassembler like a capture of one connection would."""

    def __init__(self, r: TcpReassembler | None = None, isn_c: int = 1000, isn_s: int = 5000,
                 cport: int = 40000, sport: int = 3260) -> None:
        self.r = r or TcpReassembler()
        self.frame = 0
        self.isn_c, self.isn_s = isn_c, isn_s
        self.cport, self.sport = cport, sport
        self.out: list[object] = []

    def c2s(self, seq_off: int, data: bytes = b"", flags: int = ACK | PSH, ack_off: int = 1, win: int = 1000) -> None:
        self.frame += 1
        self.out += self.r.feed_segment(self.frame, self.frame * 1000, CLI, SRV, self.cport, self.sport,
                                        (self.isn_c + seq_off) & 0xFFFFFFFF, (self.isn_s + ack_off) & 0xFFFFFFFF,
                                        flags, win, memoryview(data))

    def s2c(self, seq_off: int, data: bytes = b"", flags: int = ACK | PSH, ack_off: int = 1, win: int = 1000) -> None:
        self.frame += 1
        self.out += self.r.feed_segment(self.frame, self.frame * 1000, SRV, CLI, self.sport, self.cport,
                                        (self.isn_s + seq_off) & 0xFFFFFFFF, (self.isn_c + ack_off) & 0xFFFFFFFF,
                                        flags, win, memoryview(data))

    def handshake(self) -> None:
        self.c2s(0, flags=SYN, ack_off=0)
        self.s2c(0, flags=SYN | ACK)
        self.c2s(1, flags=ACK)

    def stream(self, direction: str = "i2t") -> bytes:
        return b"".join(bytes(i[5]) for i in self.out if type(i) is tuple and i[0] == DATA and i[2] == direction)

    def records(self, cls: type) -> list:
        return [i for i in self.out if isinstance(i, cls)]

    def finish(self) -> None:
        self.out += self.r.finish(self.frame, self.frame * 1000)


def test_in_order_after_handshake() -> None:
    c = Conn()
    c.handshake()
    c.c2s(1, b"hello ")
    c.c2s(7, b"world")
    c.s2c(1, b"reply", ack_off=12)
    assert c.stream("i2t") == b"hello world"
    assert c.stream("t2i") == b"reply"
    opened = c.records(TcpOpened)
    assert len(opened) == 1 and opened[0].handshake and opened[0].frame == 1
    assert opened[0].client == "10.0.0.1" and opened[0].server_port == 3260
    assert opened[0].conn == "10.0.0.1:40000->10.0.0.2:3260"


def test_out_of_order_is_reordered() -> None:
    c = Conn()
    c.handshake()
    c.c2s(6, b"world")
    assert c.stream() == b""
    c.c2s(1, b"hello")
    assert c.stream() == b"helloworld"
    # the buffered segment is delivered as of the frame that filled the hole (where it became usable)
    frames = [i[3] for i in c.out if type(i) is tuple]
    assert frames == [5, 5]


def test_gap_declared_at_once_when_ack_already_passed_the_hole() -> None:
    c = Conn()
    c.handshake()
    c.c2s(1, b"aaaa")
    c.s2c(1, b"", flags=ACK, ack_off=13)   # the target has all 12 bytes; we saw 4
    c.c2s(9, b"cccc")                      # arrives after the ACK: deliver now, not at the next ACK
    items = [i for i in c.out if type(i) is tuple]
    assert [(i[0], i[3]) for i in items] == [(DATA, 4), (GAP, 6), (DATA, 6)]


def test_retransmission_dropped_and_counted() -> None:
    c = Conn()
    c.handshake()
    c.c2s(1, b"abcd")
    c.c2s(1, b"abcd")
    assert c.stream() == b"abcd"
    assert len(c.records(TcpRetransmission)) == 1


def test_partial_overlap_delivers_new_tail_only() -> None:
    c = Conn()
    c.handshake()
    c.c2s(1, b"abcd")
    c.c2s(3, b"cdef")
    assert c.stream() == b"abcdef"


def test_overlap_conflict_with_buffered_data_first_copy_wins() -> None:
    c = Conn()
    c.handshake()
    c.c2s(5, b"EFGH")          # buffered out of order
    c.c2s(5, b"XXXX")          # same range, different bytes
    c.c2s(1, b"abcd")
    assert c.stream() == b"abcdEFGH"
    assert len(c.records(TcpOverlapConflict)) == 1


def test_gap_declared_when_peer_acks_unseen_bytes() -> None:
    c = Conn()
    c.handshake()
    c.c2s(1, b"aaaa")
    c.c2s(9, b"cccc")          # bytes 5..8 lost from the capture
    c.s2c(1, b"", flags=ACK, ack_off=13)  # the target acknowledges everything
    gaps = c.records(TcpGap)
    assert len(gaps) == 1 and gaps[0].length == 4 and gaps[0].direction == "i2t"
    items = [i for i in c.out if type(i) is tuple]
    assert [i[0] for i in items] == [DATA, GAP, DATA]
    assert c.stream() == b"aaaacccc"   # never zero-filled


def test_gap_at_capture_end_flushes_buffer() -> None:
    c = Conn()
    c.handshake()
    c.c2s(1, b"aaaa")
    c.c2s(9, b"cccc")
    c.finish()
    assert [g.length for g in c.records(TcpGap)] == [4]
    assert c.stream() == b"aaaacccc"
    assert c.records(TcpClosed)[-1].reason == "capture_end"


def test_sequence_wraparound() -> None:
    c = Conn(isn_c=0xFFFFFFF0)
    c.handshake()
    c.c2s(1, b"0123456789abcdef")       # crosses 2**32
    c.c2s(17, b"XYZ")
    c.c2s(25, b"late")                   # out of order after the wrap
    c.c2s(20, b"01234")
    assert c.stream() == b"0123456789abcdefXYZ01234late"
    assert seq_diff(5, 0xFFFFFFFB) == 10


def test_mid_stream_start_without_handshake() -> None:
    c = Conn()
    c.c2s(100, b"data")
    c.s2c(200, b"resp")
    opened = c.records(TcpOpened)
    assert len(opened) == 1 and not opened[0].handshake
    assert c.stream() == b"data" and c.stream("t2i") == b"resp"


def test_fin_and_rst_events() -> None:
    c = Conn()
    c.handshake()
    c.c2s(1, b"x")
    c.c2s(2, flags=FIN | ACK)
    c.s2c(1, flags=FIN | ACK, ack_off=3)
    fins = c.records(TcpFin)
    assert [f.direction for f in fins] == ["i2t", "t2i"]
    assert c.records(TcpClosed)[0].reason == "fin"
    d = Conn(cport=40001)
    d.handshake()
    d.c2s(1, b"x")
    d.s2c(1, flags=RST)
    assert d.records(TcpRst)[0].direction == "t2i"


def test_port_scan_yields_nothing() -> None:
    c = Conn()
    c.c2s(0, flags=SYN, ack_off=0)
    c.s2c(0, flags=SYN | ACK)
    c.c2s(1, flags=RST)
    assert c.out == []


def test_tuple_reuse_gets_new_id() -> None:
    c = Conn()
    c.handshake()
    c.c2s(1, b"one")
    c.c2s(4, flags=FIN | ACK)
    c.s2c(1, flags=FIN | ACK, ack_off=5)
    c.isn_c, c.isn_s = 90000, 70000
    c.handshake()
    c.c2s(1, b"two")
    opened = c.records(TcpOpened)
    assert [o.conn for o in opened] == ["10.0.0.1:40000->10.0.0.2:3260", "10.0.0.1:40000->10.0.0.2:3260#2"]
    assert c.stream() == b"onetwo"


def test_zero_window_episode() -> None:
    c = Conn()
    c.handshake()
    c.c2s(1, b"x")
    c.s2c(1, flags=ACK, ack_off=2, win=0)
    c.s2c(1, flags=ACK, ack_off=2, win=0)
    c.s2c(1, flags=ACK, ack_off=2, win=100)
    c.s2c(1, flags=ACK, ack_off=2, win=0)
    assert [z.direction for z in c.records(TcpZeroWindow)] == ["t2i", "t2i"]


def _login_bhs() -> bytes:
    b = bytearray(48)
    b[0] = 0x43
    b[1] = 0x87
    b[8] = 0x40
    return bytes(b)


def test_login_detected_on_other_port() -> None:
    assert looks_like_login_request(_login_bhs())
    c = Conn(sport=5000)
    c.handshake()
    c.c2s(1, _login_bhs())
    assert c.records(TcpOpened)[0].server_port == 5000
    other = Conn(cport=40002, sport=5001)
    other.handshake()
    other.c2s(1, b"GET / HTTP/1.1\r\n" * 4)
    assert other.out == []


def test_login_detected_when_roles_reversed() -> None:
    # The capture's first packet is from the target side's ephemeral-looking port.
    c = Conn(cport=6000, sport=7000)
    c.s2c(50, _login_bhs())  # the "server" sends a Login Request: it is the initiator
    opened = c.records(TcpOpened)
    assert opened[0].client_port == 7000 and opened[0].server_port == 6000
    assert c.stream("i2t") == _login_bhs()


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=400), st.randoms(use_true_random=False), st.integers(0, 0xFFFFFFFF))
def test_any_segmentation_and_order_gives_same_stream(data: bytes, rnd: random.Random, isn: int) -> None:
    """Split, shuffle within a window, duplicate: the delivered stream is the original bytes."""
    c = Conn(isn_c=isn)
    c.handshake()
    cuts = sorted(rnd.sample(range(1, len(data)), min(len(data) - 1, rnd.randint(0, 12)))) if len(data) > 1 else []
    bounds = [0, *cuts, len(data)]
    segs = [(bounds[i], data[bounds[i]:bounds[i + 1]]) for i in range(len(bounds) - 1)]
    order = segs[:]
    for i in range(len(order) - 1):
        if rnd.random() < 0.3:
            order[i], order[i + 1] = order[i + 1], order[i]
    for off, chunk in order:
        c.c2s(1 + off, chunk)
        if rnd.random() < 0.2:
            c.c2s(1 + off, chunk)  # retransmission
    assert c.stream() == data
    assert not c.records(TcpGap)


def _feed_cut(c: Conn, seq_off: int, data: bytes, missing: int) -> None:
    c.frame += 1
    c.out += c.r.feed_segment(c.frame, c.frame * 1000, SRV, CLI, c.sport, c.cport, (c.isn_s + seq_off) & 0xFFFFFFFF,
                              (c.isn_c + 1) & 0xFFFFFFFF, ACK | PSH, 1000, memoryview(data), missing)


def test_snaplen_cut_tail_is_an_exact_snaplen_gap() -> None:
    """The captured bytes are delivered, the cut tail is a gap at its exact place, and the
    stream goes on in order after it (no out-of-order buffering, no ACK-proven loss)."""
    c = Conn()
    c.handshake()
    _feed_cut(c, 1, b"head", missing=96)  # a 100-byte segment cut after 4 bytes
    _feed_cut(c, 101, b"next", missing=0)
    items = [i for i in c.out if type(i) is tuple and i[2] == "t2i"]
    assert [(i[0], bytes(i[5]) if i[0] == DATA else i[5]) for i in items] == [
        (DATA, b"head"), (SNAPLEN_GAP, 96), (DATA, b"next")]
    gaps = c.records(TcpGap)
    assert len(gaps) == 1 and gaps[0].snaplen and gaps[0].length == 96
    assert gaps[0].seq == (c.isn_s + 5) & 0xFFFFFFFF


def test_snaplen_cut_with_nothing_captured_keeps_position() -> None:
    c = Conn()
    c.handshake()
    _feed_cut(c, 1, b"", missing=50)
    _feed_cut(c, 51, b"more", missing=0)
    items = [i for i in c.out if type(i) is tuple and i[2] == "t2i"]
    assert [(i[0], bytes(i[5]) if i[0] == DATA else i[5]) for i in items] == [(SNAPLEN_GAP, 50), (DATA, b"more")]


def test_evicting_syn_only_flows_leaves_a_record() -> None:
    """A SYN flood over the flow limit: every eviction is a ``TcpFlowsEvicted`` (SYN-only flows
    leave no ``TcpClosed``), counted in ``evicted_flows`` / ``evicted_unopened``."""
    r = TcpReassembler(max_flows=100)
    out: list[object] = []
    for i in range(1000):
        out += r.feed_segment(i + 1, (i + 1) * 1000, CLI, SRV, 10000 + i, 3260, 7 * i, 0, SYN, 1000, b"")
    ev = [x for x in out if isinstance(x, TcpFlowsEvicted)]
    assert ev and not any(isinstance(x, TcpClosed) for x in out)
    assert sum(e.flows for e in ev) == r.evicted_flows == r.evicted_unopened
    assert all(e.unopened == e.flows and e.limit == 100 for e in ev)
    assert r.evicted_flows >= 1000 - 100


def test_flow_eviction_reaches_stats_and_findings() -> None:
    """Through the pipeline: a ``resource_limit`` finding (bounded in number) and the count of
    ``TcpFlowsEvicted`` records in the collected stats (capture.json)."""
    from analyzer.pipeline import Options, Pipeline
    from analyzer.reports.collect import collect

    pipe = Pipeline(Options(max_flows=50))
    recs: list[object] = []
    for i in range(2000):
        recs += pipe.feed_segment(i + 1, (i + 1) * 1000, CLI, SRV, 10000 + i, 3260, 7 * i, 0, SYN, 1000, b"")
    recs += pipe.finish()
    findings = [x for x in recs if type(x).__name__ == "Anomaly" and x.kind == "resource_limit"]  # type: ignore[attr-defined]
    assert findings and len(findings) <= 4  # rate-limited: 3 and a summary
    assert "2,000" not in findings[0].message and "never carried payload" in findings[0].message  # type: ignore[attr-defined]
    stats = collect(recs).stats  # type: ignore[arg-type]
    assert stats["records"]["TcpFlowsEvicted"] == sum(1 for x in recs if isinstance(x, TcpFlowsEvicted))
    assert pipe.reassembler.evicted_unopened >= 2000 - 50
