"""analyzer.capture.packets: link/IP/TCP decoding of single frames."""

from __future__ import annotations

import pytest
from capture_builders import (
    IP4_A,
    IP4_B,
    IP6_A,
    IP6_B,
    ethernet,
    ext_header,
    frag_header,
    ipv4,
    ipv6,
    null,
    sll,
    sll2,
    tcp,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.capture import decode_frame, format_ip

PAYLOAD = b"iSCSI-PDU-bytes"
SEG = tcp(sport=51000, dport=3260, seq=0xFFFFFFF0, ack=7, flags=0x18, window=0xFFFF, payload=PAYLOAD)
V4 = ipv4(SEG)
V6 = ipv6(SEG)
EXPECT4 = (IP4_A, IP4_B, 51000, 3260, 0xFFFFFFF0, 7, 0x18, 0xFFFF, PAYLOAD)
EXPECT6 = (IP6_A, IP6_B, 51000, 3260, 0xFFFFFFF0, 7, 0x18, 0xFFFF, PAYLOAD)


def decoded(linktype: int, frame: bytes) -> tuple[object, ...] | None:
    r = decode_frame(linktype, frame)
    if r is None:
        return None
    assert isinstance(r[8], memoryview)
    return r[:8] + (bytes(r[8]),)


# (name, linktype, frame builder for an IP packet and its version)
LINKS = [
    ("ethernet", 1, lambda ip, v: ethernet(ip, 0x0800 if v == 4 else 0x86DD)),
    ("vlan", 1, lambda ip, v: ethernet(ip, 0x0800 if v == 4 else 0x86DD, tags=[(0x8100, 10)])),
    ("qinq-88a8", 1, lambda ip, v: ethernet(ip, 0x0800 if v == 4 else 0x86DD, tags=[(0x88A8, 5), (0x8100, 10)])),
    ("qinq-9100", 1, lambda ip, v: ethernet(ip, 0x0800 if v == 4 else 0x86DD,
                                            tags=[(0x9100, 5), (0x9100, 6), (0x8100, 10)])),
    ("sll", 113, lambda ip, v: sll(ip, 0x0800 if v == 4 else 0x86DD)),
    ("sll2", 276, lambda ip, v: sll2(ip, 0x0800 if v == 4 else 0x86DD)),
    ("raw101", 101, lambda ip, v: ip),
    ("raw12", 12, lambda ip, v: ip),
    ("raw14", 14, lambda ip, v: ip),
    ("null-le", 0, lambda ip, v: null(ip, 2 if v == 4 else 30)),
    ("null-be", 0, lambda ip, v: null(ip, 2 if v == 4 else 24, big_endian=True)),
    ("null-freebsd6", 0, lambda ip, v: null(ip, 2 if v == 4 else 28)),
    ("loop", 108, lambda ip, v: null(ip, 2 if v == 4 else 24, big_endian=True)),
]


@pytest.mark.parametrize("name,linktype,build", LINKS, ids=[x[0] for x in LINKS])
@pytest.mark.parametrize("version", [4, 6])
def test_link_types(name: str, linktype: int, build: object, version: int) -> None:
    ip = V4 if version == 4 else V6
    frame = build(ip, version)  # type: ignore[operator]
    assert decoded(linktype, frame) == (EXPECT4 if version == 4 else EXPECT6)
    assert decoded(linktype, memoryview(frame)) == (EXPECT4 if version == 4 else EXPECT6)


def test_raw_ipv4_ipv6_linktypes() -> None:
    assert decoded(228, V4) == EXPECT4
    assert decoded(229, V6) == EXPECT6
    assert decoded(228, V6) is None  # wrong version for the link type
    assert decoded(229, V4) is None


def test_ethernet_padding_removed() -> None:
    small = ipv4(tcp(payload=b"ab"))
    frame = ethernet(small, pad_to=60) + b"\xde\xad\xbe\xef"  # padding plus an FCS
    r = decoded(1, frame)
    assert r is not None and r[8] == b"ab"


def test_ipv6_trailing_bytes_removed() -> None:
    frame = ethernet(ipv6(tcp(payload=b"xyz")), 0x86DD) + b"\x00" * 10
    r = decoded(1, frame)
    assert r is not None and r[8] == b"xyz"


def test_snaplen_clips_payload() -> None:
    frame = ethernet(ipv4(tcp(payload=bytes(1000))))
    r = decoded(1, frame[:100])
    assert r is not None and r[8] == bytes(100 - 54)


def test_snaplen_inside_tcp_header() -> None:
    frame = ethernet(ipv4(tcp(payload=bytes(100))))
    assert decoded(1, frame[:50]) is None


def test_ip_and_tcp_options() -> None:
    seg = tcp(payload=b"data", options=b"\x02\x04\x05\xb4\x01\x03\x03\x07")  # MSS + NOP + WS
    r = decoded(1, ethernet(ipv4(seg, options=b"\x94\x04\x00\x00")))  # router alert
    assert r is not None and r[8] == b"data" and r[2:4] == (51000, 3260)


def test_ipv6_extension_headers() -> None:
    ext = [(0, ext_header(0)), (43, ext_header(1)), (60, ext_header(2))]
    r = decoded(1, ethernet(ipv6(SEG, ext=ext), 0x86DD))
    assert r == EXPECT6


def test_ipv6_atomic_fragment_is_decoded() -> None:
    r = decoded(101, ipv6(SEG, ext=[(44, frag_header(0, more=False))]))
    assert r == EXPECT6


@pytest.mark.parametrize("offset,more", [(0, True), (100, False), (100, True)])
def test_ipv6_fragments_are_skipped(offset: int, more: bool) -> None:
    assert decode_frame(101, ipv6(SEG, ext=[(44, frag_header(offset, more))])) is None


@pytest.mark.parametrize("frag", [0x2000, 0x0010, 0x2010, 0x6000])  # MF; offset; both; DF+MF
def test_ipv4_fragments_are_skipped(frag: int) -> None:
    assert decode_frame(1, ethernet(ipv4(SEG, frag=frag))) is None


def test_ipv4_unfragmented_flags() -> None:
    assert decoded(1, ethernet(ipv4(SEG, frag=0))) == EXPECT4
    assert decoded(1, ethernet(ipv4(SEG, frag=0x8000))) == EXPECT4  # reserved bit only


def test_tso_zero_total_length_uses_captured_length() -> None:
    assert decoded(1, ethernet(ipv4(SEG, total_len=0))) == EXPECT4
    assert decoded(1, ethernet(ipv6(SEG, payload_len=0), 0x86DD)) == EXPECT6


def test_ipv6_ah_header() -> None:
    ah = bytes([0, 4]) + bytes(22)  # (4 + 2) * 4 = 24 bytes
    assert decoded(101, ipv6(SEG, ext=[(51, ah)])) == EXPECT6


@pytest.mark.parametrize("frame,linktype", [
    (ethernet(ipv4(SEG, proto=17)), 1),  # UDP
    (ethernet(V4, 0x0806), 1),  # ARP ethertype
    (ethernet(V4, 0x05DC), 1),  # 802.3 length field
    (ethernet(ipv6(SEG, nh=17), 0x86DD), 1),
    (ethernet(ipv6(SEG, nh=50), 0x86DD), 1),  # ESP
    (ipv6(SEG, nh=59), 101),  # no next header
    (null(V4, 23), 0),  # unknown family
    (V4, 105),  # unsupported link type (802.11)
    (b"", 1), (b"", 0), (b"", 101), (b"", 113), (b"", 276), (b"", 228), (b"", 229),
    (ethernet(b""), 1),
    (ethernet(V4, tags=[(0x8100, 1)])[:16], 1),  # cut inside the VLAN tag
    (ethernet(V4)[:30], 1),  # cut inside IPv4
    (ethernet(V6, 0x86DD)[:40], 1),  # cut inside IPv6
    (bytes([0x50]) + V4[1:], 101),  # bad version nibble
    (ethernet(ipv4(SEG, total_len=19)), 1),  # total length < header length
    (ethernet(ipv4(SEG, total_len=30)), 1),  # total length cuts the TCP header
    (ethernet(ipv4(SEG)[:0] + bytes([0x44]) + ipv4(SEG)[1:]), 1),  # IHL 4
    (ethernet(ipv4(SEG[:12] + bytes([0x40]) + SEG[13:])), 1),  # TCP data offset 4
    (ethernet(ipv4(SEG[:12] + bytes([0xF0]) + SEG[13:])), 1),  # TCP data offset beyond the packet
    (ipv6(SEG, ext=[(0, b"\x00\xc8" + bytes(6))]), 101),  # extension header claims 1608 bytes
])
def test_not_tcp_or_malformed(frame: bytes, linktype: int) -> None:
    assert decode_frame(linktype, frame) is None


@settings(max_examples=500, deadline=None)
@given(linktype=st.sampled_from([0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 9999]), data=st.binary(max_size=200))
def test_random_bytes_never_raise(linktype: int, data: bytes) -> None:
    r = decode_frame(linktype, data)
    assert r is None or len(r) == 9


@settings(max_examples=300, deadline=None)
@given(cut=st.integers(0, 200), version=st.sampled_from([4, 6]), junk=st.binary(max_size=8))
def test_truncated_or_corrupted_real_frames_never_raise(cut: int, version: int, junk: bytes) -> None:
    ext = [(0, ext_header(0)), (44, frag_header())] if version == 6 else []
    ip = ipv4(SEG, options=b"\x01" * 8) if version == 4 else ipv6(SEG, ext=ext)
    frame = ethernet(ip, 0x0800 if version == 4 else 0x86DD, tags=[(0x8100, 3)])
    for f in (frame[:cut], frame[:cut] + junk, junk + frame[cut:]):
        decode_frame(1, f)


def test_format_ip() -> None:
    assert format_ip(IP4_A) == "10.0.0.1"
    assert format_ip(bytes.fromhex("fe800000000000000000000000000001")) == "fe80::1"
    assert format_ip(IP6_B) == "2001:db8::2"
    assert format_ip(b"\x01\x02") == "0102"


@pytest.mark.parametrize("version", [4, 6])
def test_snaplen_cut_frame_reports_missing_payload(version: int) -> None:
    """A frame cut by the snap length: the payload is what was captured, ``missing`` the rest."""
    payload = bytes(range(200))
    seg = tcp(sport=51000, dport=3260, seq=1, ack=2, flags=0x18, window=100, payload=payload)
    frame = ethernet(ipv4(seg) if version == 4 else ipv6(seg), 0x0800 if version == 4 else 0x86DD)
    keep = 60  # bytes of payload the capture kept
    cut = frame[: len(frame) - len(payload) + keep]
    r = decode_frame(1, cut)
    assert r is not None and bytes(r[8]) == payload[:keep] and r[9] == len(payload) - keep
    whole = decode_frame(1, frame)
    assert whole is not None and bytes(whole[8]) == payload and whole[9] == 0
