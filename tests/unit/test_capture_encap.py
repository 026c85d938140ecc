"""Decapsulation (capture/encap.py), IP reassembly (fragments.py), duplicates (dedup.py), snoop."""

from __future__ import annotations

import io
import struct
from typing import Any

import dpkt
import dpkt.snoop
import pytest

from analyzer.capture import decode_frame, iter_tcp, open_capture
from analyzer.capture.dedup import FrameDecoder
from analyzer.capture.encap import Encapsulation, IpFragment, walk
from analyzer.capture.fragments import Reassembler
from tests import encap_writer as w
from tests.unit.capture_builders import end_of_options, epb, ethernet, idb, ipv4, ipv6, option, pcap, shb, tcp

PAYLOAD = bytes(range(256)) * 4
SEG4 = ipv4(tcp(seq=7, payload=PAYLOAD[:100]))
SEG6 = ipv6(tcp(seq=8, payload=PAYLOAD[:64]))


def frames(ip: bytes) -> dict[str, bytes]:
    """The IP packet in every encapsulation (Ethernet frames)."""
    e = ethernet(ip, 0x0800 if ip[0] >> 4 == 4 else 0x86DD)
    et = 0x0800 if ip[0] >> 4 == 4 else 0x86DD
    v4 = ip[0] >> 4 == 4
    return {
        "erspan1": w.eth(w.ip4(w.gre(0x88BE, e), 47), 0x0800),
        "erspan2": w.eth(w.ip4(w.erspan2(e, 7, 100, 1), 47), 0x0800),
        "erspan3": w.eth(w.ip4(w.erspan3(e, 9, 5, 1), 47), 0x0800),
        "erspan3_sub": w.eth(w.ip4(w.erspan3(e, 9, 5, 1, sub=True), 47), 0x0800),
        "gre": w.eth(w.ip4(w.gre(et, ip), 47), 0x0800),
        "gre_key_seq": w.eth(w.ip4(w.gre(et, ip, seq=3, key=77), 47), 0x0800),
        "gre_teb": w.eth(w.ip4(w.gre(0x6558, e), 47), 0x0800),
        "gre_mpls": w.eth(w.ip4(w.gre(0x8847, struct.pack("!I", (16 << 12) | 0x100 | 1) + ip), 47), 0x0800),
        "vxlan": w.eth(w.ip4(w.udp(4789, w.vxlan(e, 99), 0), 17), 0x0800),
        "mpls": w.eth(struct.pack("!II", 100 << 12, (200 << 12) | 0x1FF) + ip, 0x8847),
        "mpls_pw": w.eth(struct.pack("!I", (300 << 12) | 0x1FF) + bytes(4) + e, 0x8847),
        "pppoe": w.eth(struct.pack("!BBHHH", 0x11, 0, 5, len(ip) + 2, 0x21 if v4 else 0x57) + ip, 0x8864),
        "ipip": w.eth(w.ip4(ip, 4 if v4 else 41), 0x0800),
        "vlan_erspan": ethernet(w.ip4(w.erspan2(e, 1, 2, 3), 47), tags=[(0x8100, 10)]),
        "erspan_vlan_inner": w.eth(w.ip4(w.erspan2(ethernet(ip, et, tags=[(0x8100, 30)]), 7, 30, 1), 47), 0x0800),
    }


@pytest.mark.parametrize("ip", [SEG4, SEG6], ids=["ipv4", "ipv6"])
def test_every_encapsulation_gives_the_plain_segment(ip: bytes) -> None:
    plain = decode_frame(1, ethernet(ip, 0x0800 if ip[0] >> 4 == 4 else 0x86DD))
    assert plain is not None
    for kind, frame in frames(ip).items():
        got = decode_frame(1, frame)
        assert got is not None, kind
        assert got[:8] + (bytes(got[8]), got[9]) == plain[:8] + (bytes(plain[8]), plain[9]), kind


def test_labels_of_the_layers() -> None:
    tags: list[Encapsulation] = []
    walk(1, memoryview(frames(SEG4)["vlan_erspan"]), (4789,), tags)
    assert [t.label() for t in tags] == ["ERSPAN II session 1 VLAN 2"]
    tags = []
    walk(1, memoryview(frames(SEG4)["gre_mpls"]), (4789,), tags)
    assert [t.label() for t in tags] == ["GRE", "MPLS label 16"]
    tags = []
    walk(1, memoryview(frames(SEG4)["vxlan"]), (4789,), tags)
    assert tags == [Encapsulation("vxlan", 99)]


def _dpkt_tcp(obj: Any) -> Any:
    for _ in range(12):
        if isinstance(obj, dpkt.tcp.TCP):
            return obj
        obj = getattr(obj, "data", None)
        if not isinstance(obj, dpkt.Packet):
            return None
    return None


@pytest.mark.parametrize("kind", ["gre", "gre_key_seq", "gre_teb", "mpls", "pppoe", "ipip"])
def test_dpkt_decodes_the_same_segment(kind: str) -> None:
    """dpkt's GRE, MPLS (in Ethernet), PPPoE and IP-in-IP decoders agree with ours."""
    frame = frames(SEG4)[kind]
    theirs = _dpkt_tcp(dpkt.ethernet.Ethernet(frame))
    ours = decode_frame(1, frame)
    assert theirs is not None and ours is not None
    assert (ours[2], ours[3], ours[4], bytes(ours[8])) == (theirs.sport, theirs.dport, theirs.seq, theirs.data)


def test_vxlan_only_on_its_ports() -> None:
    frame = frames(SEG4)["vxlan"]
    other = frame.replace(struct.pack("!HH", 49152, 4789), struct.pack("!HH", 49152, 8472))
    assert decode_frame(1, other) is None
    assert walk(1, memoryview(other), (8472,)) is not None


@pytest.mark.parametrize("kind", sorted(frames(SEG4)))
def test_cut_encapsulated_frames_never_raise(kind: str) -> None:
    frame = frames(SEG4)[kind]
    for n in range(len(frame)):
        seg = decode_frame(1, frame[:n])
        assert seg is None or isinstance(seg, tuple)
        mangled = bytearray(frame)
        mangled[n] ^= 0xFF
        decode_frame(1, bytes(mangled))


def test_nested_tunnels_are_bounded() -> None:
    ip = SEG4
    for _ in range(3):
        ip = w.ip4(w.gre(0x0800, ip), 47)
    assert decode_frame(1, ethernet(ip)) is not None
    for _ in range(10):
        ip = w.ip4(w.gre(0x0800, ip), 47)
    assert decode_frame(1, ethernet(ip)) is None


# ----------------------------------------------------------------------------- fragments


def frags4(ip: bytes, size: int = 64) -> list[bytes]:
    return w.fragments4(ip[:6] + b"\x00\x00" + ip[8:], size, reverse=False)


def feed(r: Reassembler, packets: list[bytes], ts: int = 0) -> list[bytes]:
    out = []
    for i, p in enumerate(packets):
        found = walk(101, memoryview(p))
        assert isinstance(found, IpFragment)
        got = r.feed(found, i + 1, ts)
        if got is not None:
            out.append(got)
    return out


def test_ipv4_reassembly_in_any_order_and_duplicates() -> None:
    ip = ipv4(tcp(payload=PAYLOAD[:300]))
    parts = frags4(ip)
    for order in (parts, parts[::-1], parts[1:] + parts[:1], [parts[0], parts[0], *parts[1:]]):
        r = Reassembler()
        [got] = feed(r, order)
        assert got[:2] == ip[:2] and got[8:] == ip[8:] and got[6:8] == b"\x00\x00"
        assert r.pending == 0 and r.dropped == 0


def test_ipv6_reassembly() -> None:
    ip = ipv6(tcp(payload=PAYLOAD[:300]))
    r = Reassembler()
    [got] = feed(r, w.fragments6(ip, 64, reverse=True, ident=5))
    assert got == ip


def test_overlap_with_other_bytes_gives_up() -> None:
    ip = ipv4(tcp(payload=PAYLOAD[:300]))
    parts = frags4(ip)
    evil = bytearray(parts[1])
    evil[-1] ^= 1
    r = Reassembler()
    assert feed(r, [parts[1], bytes(evil), *parts[2:], parts[0]]) == []
    assert r.dropped == 1 and "different contents" in r.notes[0]


def test_timeout_and_bounds_give_up_and_count() -> None:
    ip = ipv4(tcp(payload=PAYLOAD[:300]))
    parts = frags4(ip)
    r = Reassembler(timeout_ns=10)
    feed(r, parts[:2], ts=0)
    assert feed(r, parts[2:], ts=100) == []  # the first half expired: incomplete
    assert r.dropped == 1
    r = Reassembler(max_pending=2)
    for ident in range(5):
        other = ip[:4] + struct.pack("!H", ident) + ip[6:]
        feed(r, frags4(other)[:1])
    assert r.pending == 2 and r.dropped == 3
    r.finish()
    assert r.pending == 0 and r.dropped == 5
    r = Reassembler(max_bytes=100)
    assert feed(r, parts) == [] and r.dropped >= 1


def test_fragment_cut_by_snaplen_gives_up() -> None:
    ip = ipv4(tcp(payload=PAYLOAD[:300]))
    parts = frags4(ip)
    r = Reassembler()
    assert feed(r, [parts[0][:-10], *parts[1:]]) == [] and r.dropped == 1


def test_fragments_through_the_reader() -> None:
    ip = ipv4(tcp(seq=99, payload=PAYLOAD[:500]))
    data = pcap([(i, ethernet(p)) for i, p in enumerate(frags4(ip, 96))])
    reader = open_capture(io.BytesIO(data))
    [seg] = list(iter_tcp(reader))
    assert seg[0] == len(frags4(ip, 96)) and seg[6] == 99 and bytes(seg[10]) == PAYLOAD[:500]


# ----------------------------------------------------------------------------- duplicates


def test_mirror_copy_is_dropped_but_repeats_on_one_path_are_kept() -> None:
    d = FrameDecoder()
    plain = ethernet(SEG4)
    copy = frames(SEG4)["erspan2"]
    assert d.decode(1, memoryview(copy), 1, 0) is not None  # switches detection on
    assert d.decode(1, memoryview(plain), 2, 0) is None  # the same packet through another path
    assert d.decode(1, memoryview(plain), 3, 0) is not None  # a second, identical packet
    assert d.decode(1, memoryview(copy), 4, 0) is None  # ... and its mirrored copy
    assert d.duplicates == 2


def test_ttl_is_not_part_of_the_comparison() -> None:
    d = FrameDecoder(dedup=True)
    other_ttl = SEG4[:8] + b"\x3f" + SEG4[9:]
    assert d.decode(1, memoryview(ethernet(SEG4)), 1, 0) is not None
    assert d.decode(1, memoryview(ethernet(other_ttl, tags=[(0x8100, 5)])), 2, 0) is None
    new_id = SEG4[:4] + b"\x99\x99" + SEG4[6:]  # a retransmission: a new IPv4 identification
    assert d.decode(1, memoryview(ethernet(new_id)), 3, 0) is not None


def test_plain_captures_are_not_compared_by_default() -> None:
    data = pcap([(i, ethernet(SEG4, tags=[(0x8100, 1)])) for i in range(3)])
    assert len(list(iter_tcp(open_capture(io.BytesIO(data))))) == 3
    assert len(list(iter_tcp(open_capture(io.BytesIO(data), dedup=True)))) == 1


def test_dedup_switches_the_fast_path_off_on_both_formats() -> None:
    plain, copy = ethernet(SEG4), frames(SEG4)["erspan2"]
    seq = [copy, plain, copy, plain]
    for data in (pcap([(i, f) for i, f in enumerate(seq)]),
                 shb() + idb() + b"".join(epb(0, i, f) for i, f in enumerate(seq))):
        reader = open_capture(io.BytesIO(data))
        assert [s[0] for s in iter_tcp(reader)] == [1, 3]
        assert reader.decoder.duplicates == 2


# ----------------------------------------------------------------------------- snoop, pcapng options


def snoop(records: list[tuple[int, bytes]], datalink: int = 4) -> bytes:
    out = [b"snoop\x00\x00\x00" + struct.pack(">II", 2, datalink)]
    for ts, data in records:
        pad = -len(data) % 4
        out.append(struct.pack(">IIIIII", len(data), len(data), 24 + len(data) + pad, 0, ts // 10**9,
                               ts % 10**9 // 1000) + data + bytes(pad))
    return b"".join(out)


def test_snoop_matches_dpkt() -> None:
    recs = [(1_700_000_000_000_000_000 + i * 1_001_000, ethernet(ipv4(tcp(seq=i, payload=PAYLOAD[:i]))))
            for i in range(1, 40)]
    data = snoop(recs)
    ours = [(ts, bytes(d)) for _n, ts, lt, d, _o in open_capture(io.BytesIO(data))]
    theirs = [(round(ts * 1e6) * 1000, bytes(buf)) for ts, buf in dpkt.snoop.Reader(io.BytesIO(data))]
    assert ours == theirs == recs
    segs = list(iter_tcp(open_capture(io.BytesIO(data))))
    assert [s[6] for s in segs] == list(range(1, 40))


def test_snoop_cut_short_is_damage() -> None:
    data = snoop([(0, ethernet(SEG4))] * 3)
    reader = open_capture(io.BytesIO(data[:-7]))
    assert len(list(reader)) == 2 and "cut short" in reader.damage[0].message


def test_pcapng_comments_and_direction_flags_kept() -> None:
    opts = option(1, "first ✓".encode()) + option(1, b"second") + option(2, struct.pack("<I", 2)) + end_of_options()
    data = shb() + idb() + epb(0, 1, ethernet(SEG4), options=opts) + epb(0, 2, ethernet(SEG4))
    reader = open_capture(io.BytesIO(data))
    assert len(list(reader)) == 2
    assert reader.comments == {1: ("first ✓", "second")}
    assert reader.directions == {"inbound": 0, "outbound": 1}
