"""Link, IP and TCP header decoding for captured frames (the general path).

``decode_frame`` handles every supported link type and IPv4/IPv6 layout. The common case
(IPv4 without options, unfragmented, carrying TCP, behind an Ethernet, Linux cooked, raw or
BSD loopback header) is also inlined in the readers' fused loop (``files.py``), one
``unpack_from`` per frame with the ``FAST_PATHS`` structs below; every other frame
(VLAN tags, IPv6, IP options, ...) falls back to ``decode_frame``.

Supported link types (tcpdump.org LINKTYPE / DLT numbers):

* 1 Ethernet, with any stack of 802.1Q (0x8100), 802.1ad (0x88a8) and 0x9100 tags
* 113 Linux cooked (SLL), 276 Linux cooked v2 (SLL2)
* 101 raw IP, 12 raw IP (DLT_RAW on most systems), 14 raw IP (DLT_RAW on OpenBSD):
  IPv4 or IPv6 chosen by the version nibble
* 228 raw IPv4, 229 raw IPv6
* 0 BSD loopback (NULL; 4-byte address family in the capturing host's byte order),
  108 OpenBSD loopback (LOOP; family in network byte order)

Behind these, ``decode_frame`` also removes the encapsulations of ``encap`` (ERSPAN I/II/III,
GRE, VXLAN, MPLS, PPPoE, IP-in-IP) when the plain layouts do not give a TCP segment.

What is not decoded (``decode_frame`` returns None): non-IP, non-TCP, IP fragments (the
readers reassemble them, ``fragments.Reassembler``; this stateless function cannot),
ESP, and any header that is short or inconsistent. Malformed input never raises.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any, Final

#: LINKTYPE numbers (https://www.tcpdump.org/linktypes.html).
LINKTYPE_NULL: Final = 0
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW_DLT12: Final = 12  #: DLT_RAW on most platforms
LINKTYPE_RAW_OPENBSD: Final = 14  #: DLT_RAW on OpenBSD
LINKTYPE_RAW: Final = 101
LINKTYPE_LOOP: Final = 108
LINKTYPE_LINUX_SLL: Final = 113
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229
LINKTYPE_LINUX_SLL2: Final = 276

#: Frame layout: (src_ip, dst_ip, sport, dport, seq, ack, flags, window, payload).
TcpSegment = tuple[bytes, bytes, int, int, int, int, int, int, memoryview, int]

ETHERTYPE_IPV4: Final = 0x0800
ETHERTYPE_IPV6: Final = 0x86DD
_VLAN_TAGS: Final = frozenset((0x8100, 0x88A8, 0x9100))
#: IPv6 extension headers we walk over (hop-by-hop, routing, destination options).
_IP6_EXT: Final = frozenset((0, 43, 60))
_IPPROTO_TCP: Final = 6
_IPPROTO_FRAGMENT: Final = 44
_IPPROTO_AH: Final = 51
#: BSD AF_INET6 values seen in NULL/LOOP headers: NetBSD/OpenBSD 24, FreeBSD 28, Darwin 30.
_BSD_AF_INET6: Final = frozenset((24, 28, 30))

_U16 = struct.Struct("!H")
# IPv4 (RFC 791): ver/ihl, total length, flags/fragment offset, protocol, src, dst.
_IP4 = struct.Struct("!BxHxxHxB2x4s4s")
# IPv6 (RFC 8200): version in the first nibble, payload length, next header, src, dst.
_IP6 = struct.Struct("!B3xHBx16s16s")
# TCP (RFC 9293): ports, seq, ack, data offset + flags, window.
_TCP = struct.Struct("!HHIIHH")

_IP4_TCP_FIELDS: Final = "HxxHxB2x4s4sHHIIHH"  # IPv4 from total length on, then TCP as _TCP

#: The fused fast path (files.py) per link type: (unpack_from, key1, key2, IP offset).
#: ``unpack_from(frame, 0)`` gives (k1, k2, IPv4 total length, flags/fragment offset,
#: protocol, src, dst, sport, dport, seq, ack, data offset + flags, window); the frame is
#: IPv4 with a 20-byte header (no options) when k1 == key1 and k2 == key2. The frame must
#: hold at least IP offset + 40 bytes. Anything else goes through ``decode_frame``.
FAST_PATHS: Final[dict[int, tuple[Callable[..., tuple[Any, ...]], object, object, int]]] = {
    linktype: (struct.Struct(fmt).unpack_from, key1, key2, ip_offset)
    for linktypes, fmt, key1, key2, ip_offset in (
        # ethertype 0x0800 then ver/IHL 0x45
        ((LINKTYPE_ETHERNET,), "!12xHBx" + _IP4_TCP_FIELDS, ETHERTYPE_IPV4, 0x45, 14),
        ((LINKTYPE_LINUX_SLL,), "!14xHBx" + _IP4_TCP_FIELDS, ETHERTYPE_IPV4, 0x45, 16),
        ((LINKTYPE_LINUX_SLL2,), "!H18xBx" + _IP4_TCP_FIELDS, ETHERTYPE_IPV4, 0x45, 20),
        # raw IP: ver/IHL 0x45, and an empty field as a constant second key
        ((LINKTYPE_RAW, LINKTYPE_RAW_DLT12, LINKTYPE_RAW_OPENBSD, LINKTYPE_IPV4), "!B0sx" + _IP4_TCP_FIELDS,
         0x45, b"", 0),
        # BSD loopback: AF_INET (2) from a little-endian host; LOOP: network byte order
        ((LINKTYPE_NULL,), "!IBx" + _IP4_TCP_FIELDS, 0x02000000, 0x45, 4),
        ((LINKTYPE_LOOP,), "!IBx" + _IP4_TCP_FIELDS, 2, 0x45, 4),
    )
    for linktype in linktypes
}


def _link_payload(linktype: int, data: memoryview) -> tuple[int, int] | None:
    """-> (offset of the IP header, IP version 4/6) or None."""
    n = len(data)
    if linktype == LINKTYPE_ETHERNET:
        if n < 14:
            return None
        off = 12
        etype = (data[12] << 8) | data[13]
        while etype in _VLAN_TAGS:
            off += 4
            if n < off + 2:
                return None
            etype = (data[off] << 8) | data[off + 1]
        off += 2
    elif linktype == LINKTYPE_LINUX_SLL:
        if n < 16:
            return None
        etype = (data[14] << 8) | data[15]
        off = 16
    elif linktype == LINKTYPE_LINUX_SLL2:
        if n < 20:
            return None
        etype = (data[0] << 8) | data[1]
        off = 20
    elif linktype in (LINKTYPE_RAW, LINKTYPE_RAW_DLT12, LINKTYPE_RAW_OPENBSD):
        if n < 1:
            return None
        version = data[0] >> 4
        return (0, version) if version in (4, 6) else None
    elif linktype == LINKTYPE_IPV4:
        return 0, 4
    elif linktype == LINKTYPE_IPV6:
        return 0, 6
    elif linktype == LINKTYPE_NULL or linktype == LINKTYPE_LOOP:
        if n < 4:
            return None
        if linktype == LINKTYPE_LOOP or (data[0] == 0 and data[1] == 0):
            family = (data[2] << 8) | data[3]  # network byte order (or a big-endian host)
        else:
            family = data[0] | (data[1] << 8)  # little-endian host
        if family == 2:
            return 4, 4
        if family in _BSD_AF_INET6:
            return 4, 6
        return None
    else:
        return None
    if etype == ETHERTYPE_IPV4:
        return off, 4
    if etype == ETHERTYPE_IPV6:
        return off, 6
    return None


def _tcp(data: memoryview, src: bytes, dst: bytes, off: int, end: int, missing: int) -> TcpSegment | None:
    if end - off < 20:
        return None
    sport, dport, seq, ack, offflags, window = _TCP.unpack_from(data, off)
    hlen = (offflags >> 12) << 2
    if hlen < 20 or off + hlen > end:
        return None
    return src, dst, sport, dport, seq, ack, offflags & 0xFF, window, data[off + hlen:end], missing


def _ip4(data: memoryview, off: int) -> TcpSegment | None:
    n = len(data)
    if n - off < 20:
        return None
    vihl, total, frag, proto, src, dst = _IP4.unpack_from(data, off)
    hlen = (vihl & 0x0F) << 2
    if vihl >> 4 != 4 or hlen < 20 or proto != _IPPROTO_TCP or frag & 0x3FFF:
        return None
    if total == 0:  # TCP segmentation offload on the capturing host: trust the capture
        end = wire_end = n
    elif total < hlen:
        return None
    else:
        wire_end = off + total
        end = min(wire_end, n)
    return _tcp(data, src, dst, off + hlen, end, wire_end - end)


def _ip6(data: memoryview, off: int) -> TcpSegment | None:
    n = len(data)
    if n - off < 40:
        return None
    vbyte, plen, nh, src, dst = _IP6.unpack_from(data, off)
    if vbyte >> 4 != 6:
        return None
    # A zero payload length is a jumbogram or TSO: trust the capture.
    wire_end = n if plen == 0 else off + 40 + plen
    end = min(wire_end, n)
    p = off + 40
    while nh != _IPPROTO_TCP:
        if end - p < 8:
            return None
        if nh in _IP6_EXT:
            nh, p = data[p], p + ((data[p + 1] + 1) << 3)
        elif nh == _IPPROTO_FRAGMENT:
            fragword = _U16.unpack_from(data, p + 2)[0]
            if fragword & 0xFFF9:  # offset != 0 or M set: a real fragment
                return None
            nh, p = data[p], p + 8  # atomic fragment (RFC 6946): the whole packet
        elif nh == _IPPROTO_AH:
            nh, p = data[p], p + ((data[p + 1] + 2) << 2)
        else:
            return None
    if p > end:
        return None
    return _tcp(data, src, dst, p, end, wire_end - end)


def decode_frame(linktype: int, data: bytes | memoryview) -> TcpSegment | None:
    """Decode one captured frame down to TCP.

    Returns ``(src_ip, dst_ip, sport, dport, seq, ack, tcp_flags, window, payload, missing)`` for a
    TCP segment over IPv4 or IPv6, else None. ``src_ip``/``dst_ip`` are the raw address
    bytes (4 or 16); ``tcp_flags`` is the TCP flags byte (FIN 0x01 ... CWR 0x80);
    ``window`` is the raw 16-bit field (unscaled). ``payload`` is a memoryview of the TCP
    payload, clipped to the IP length (Ethernet padding and FCS removed) and to what was
    captured (snaplen); ``missing`` is how many payload bytes the IP length says follow
    ``payload`` but were not captured (0 unless the snaplen cut the frame). IP fragments
    (IPv4 MF/offset, non-atomic IPv6 fragments) give None. Never raises on malformed input.
    """
    mv = data if isinstance(data, memoryview) else memoryview(data)
    try:
        link = _link_payload(linktype, mv)
        if link is not None:
            off, version = link
            seg = _ip4(mv, off) if version == 4 else _ip6(mv, off)
            if seg is not None:
                return seg
    except (struct.error, IndexError, ValueError):  # belt and braces: never raise
        pass
    # Not a plain layout: try the encapsulations (GRE/ERSPAN, VXLAN, MPLS, PPPoE, IP-in-IP).
    found = _encap.walk(linktype, mv)
    return found if found is not None and not isinstance(found, _encap.IpFragment) else None


def decode_plain(linktype: int, data: memoryview) -> TcpSegment | None:
    """``decode_frame`` without the encapsulations: the plain link layouts only."""
    try:
        link = _link_payload(linktype, data)
        if link is None:
            return None
        off, version = link
        return _ip4(data, off) if version == 4 else _ip6(data, off)
    except (struct.error, IndexError, ValueError):
        return None


def format_ip(addr: bytes) -> str:
    """Text form of a raw IPv4 (4 bytes) or IPv6 (16 bytes) address: "10.0.0.1", "fe80::1"."""
    if len(addr) == 4:
        return socket.inet_ntop(socket.AF_INET, addr)
    if len(addr) == 16:
        return socket.inet_ntop(socket.AF_INET6, addr)
    return addr.hex()


#: Public names for ``encap``, which walks the same headers inside tunnels.
link_payload = _link_payload
tcp_segment = _tcp

from analyzer.capture import encap as _encap  # noqa: E402 - encap imports the names above (a cycle)
