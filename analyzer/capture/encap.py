"""Decapsulation: remote-mirror and tunnel encapsulations down to the innermost TCP segment.

The readers' fused fast path (``files.py``) and ``packets.decode_frame``'s plain layouts
handle Ethernet/VLAN/SLL/raw IP. A frame they cannot decode comes here (slow path only):

* Ethernet types MPLS unicast/multicast (0x8847/0x8848, RFC 3032: a label stack up to the
  bottom-of-stack bit, then IPv4/IPv6 by the version nibble, or a pseudowire control word
  (RFC 4385, first nibble 0) and an Ethernet frame), PPPoE session (0x8864, RFC 2516: PPP
  protocol 0x0021 IPv4 / 0x0057 IPv6), and the VLAN tags ``packets`` already walks;
* IP protocols IPv4-in-IP (4, RFC 2003), IPv6-in-IP (41, RFC 4213), GRE (47, RFC 2784 /
  2890 / 1701; version 0 only) and UDP to a VXLAN port (RFC 7348; 4789 by default);
* GRE payloads IPv4 (0x0800), IPv6 (0x86DD), Ethernet (transparent bridging 0x6558), MPLS
  (0x8847) and ERSPAN: type I (0x88BE without the GRE sequence bit: no ERSPAN header), type
  II (0x88BE with it: an 8-byte header with the session id and the original VLAN) and type
  III (0x22EB: a 12-byte header, 20 with the platform-specific subheader; Ethernet or IP
  frame type). Arista and Juniper send the same GRE/ERSPAN formats.

dpkt 1.9.8 has GRE, PPPoE, IP-in-IP and MPLS (inside ``dpkt.ethernet``) decoders but no
ERSPAN, VXLAN or IP reassembly, and its decoders build an object and copy the payload at
every layer; here each layer is one ``unpack_from`` over the captured buffer and the TCP
payload stays a ``memoryview`` slice of it (the readers' slice contract), and malformed input
never raises. The tests check these decoders against dpkt's and tshark's.

``walk`` returns the TCP segment (as ``packets.decode_frame`` gives it), an ``IpFragment``
(an IPv4 or IPv6 fragment at any layer, for ``fragments.Reassembler``), or None. When given a
list it appends one ``Encapsulation`` per layer it removed (what ``dedup`` and the reader's
per-encapsulation counts use).
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from analyzer.capture import packets
from analyzer.capture.packets import TcpSegment

#: VXLAN's IANA port (RFC 7348 §5).
VXLAN_PORT: Final = 4789
#: How many encapsulation layers we remove before giving up (a loop guard for crafted input).
MAX_LAYERS: Final = 8
#: Longest MPLS label stack we walk (RFC 3032 stacks are a handful deep in practice).
MAX_LABELS: Final = 16

ETHERTYPE_MPLS: Final = 0x8847
ETHERTYPE_MPLS_MULTICAST: Final = 0x8848
ETHERTYPE_PPPOE_SESSION: Final = 0x8864
GRE_TEB: Final = 0x6558  #: transparent Ethernet bridging (RFC 1701 protocol type)
GRE_ERSPAN_II: Final = 0x88BE  #: ERSPAN type I (no header) and II
GRE_ERSPAN_III: Final = 0x22EB
PPP_IPV4: Final = 0x0021
PPP_IPV6: Final = 0x0057

_IPPROTO_IPIP: Final = 4
_IPPROTO_TCP: Final = 6
_IPPROTO_UDP: Final = 17
_IPPROTO_IPV6: Final = 41
_IPPROTO_FRAGMENT: Final = 44
_IPPROTO_GRE: Final = 47
_IPPROTO_AH: Final = 51
_IP6_EXT: Final = frozenset((0, 43, 60))
_VLAN_TAGS: Final = frozenset((0x8100, 0x88A8, 0x9100))

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_HH = struct.Struct("!HH")
_IP4 = struct.Struct("!BxHHHxB2x4s4s")  # ver/ihl, total, id, flags/offset, protocol, src, dst
_IP6 = struct.Struct("!B3xHBx16s16s")
_FRAG6 = struct.Struct("!BxHI")  # next header, offset/flags, identification (RFC 8200 §4.5)
_PPPOE = struct.Struct("!BBHHH")  # ver/type, code, session, length, PPP protocol
_ERSPAN2 = struct.Struct("!HHI")  # ver/vlan, cos/en/t/session, reserved/index
_ERSPAN3 = struct.Struct("!HHII")  # ver/vlan, cos/bso/t/session, timestamp, sgt/p/ft/hw/d/gra/o


class Encapsulation(NamedTuple):
    """One removed layer: ``kind`` ("erspan2", "gre", "vxlan", "mpls", ...), its identifier
    (ERSPAN session id, VXLAN VNI, top MPLS label, PPPoE session id; -1 when the layer has
    none) and the original VLAN an ERSPAN header carries (-1 otherwise)."""

    kind: str
    ident: int = -1
    vlan: int = -1

    def label(self) -> str:
        """Short text: "ERSPAN II session 7 VLAN 100", "VXLAN VNI 42", "GRE"."""
        name = _NAMES.get(self.kind, self.kind)
        if self.ident >= 0:
            name += f" {_IDENT_NAMES.get(self.kind, 'id')} {self.ident}"
        if self.vlan > 0:
            name += f" VLAN {self.vlan}"
        return name


_NAMES: Final = {"erspan1": "ERSPAN I", "erspan2": "ERSPAN II", "erspan3": "ERSPAN III", "gre": "GRE",
                 "vxlan": "VXLAN", "mpls": "MPLS", "pppoe": "PPPoE", "ipip": "IPv4-in-IP", "ip6ip": "IPv6-in-IP"}
_IDENT_NAMES: Final = {"erspan2": "session", "erspan3": "session", "vxlan": "VNI", "mpls": "label",
                       "pppoe": "session", "gre": "key"}


class IpFragment(NamedTuple):
    """An IP fragment (any layer): the buffer, where its IP header starts, the version, and
    the bounds the outer layers put on it (``end``: one past its last captured byte)."""

    data: memoryview
    ip_off: int
    version: int
    end: int


# ---------------------------------------------------------------------------- link layers


def _ether(mv: memoryview, off: int, tags: list[Encapsulation] | None) -> tuple[int, int] | None:
    """Ethernet header at ``off`` -> (offset of the IP header, version) or None."""
    n = len(mv)
    p = off + 12
    if n < p + 2:
        return None
    etype = (mv[p] << 8) | mv[p + 1]
    while etype in _VLAN_TAGS:
        p += 4
        if n < p + 2:
            return None
        etype = (mv[p] << 8) | mv[p + 1]
    return _ethertype(mv, etype, p + 2, tags)


def _ethertype(mv: memoryview, etype: int, p: int, tags: list[Encapsulation] | None) -> tuple[int, int] | None:
    if etype == packets.ETHERTYPE_IPV4:
        return p, 4
    if etype == packets.ETHERTYPE_IPV6:
        return p, 6
    if etype == ETHERTYPE_MPLS or etype == ETHERTYPE_MPLS_MULTICAST:
        return _mpls(mv, p, tags)
    if etype == ETHERTYPE_PPPOE_SESSION:
        return _pppoe(mv, p, tags)
    return None


def _mpls(mv: memoryview, p: int, tags: list[Encapsulation] | None) -> tuple[int, int] | None:
    # RFC 3032 §2.1: label (20 bits), traffic class (3), bottom of stack (1), TTL (8).
    n = len(mv)
    top = -1
    for _ in range(MAX_LABELS):
        if n < p + 4:
            return None
        entry = _U32.unpack_from(mv, p)[0]
        p += 4
        if top < 0:
            top = entry >> 12
        if entry & 0x100:
            break
    else:
        return None
    if tags is not None:
        tags.append(Encapsulation("mpls", top))
    if n <= p:
        return None
    nibble = mv[p] >> 4
    if nibble == 4:
        return p, 4
    if nibble == 6:
        return p, 6
    if nibble == 0:  # RFC 4385 pseudowire control word, then an Ethernet frame (RFC 4448)
        return _ether(mv, p + 4, tags)
    return None


def _pppoe(mv: memoryview, p: int, tags: list[Encapsulation] | None) -> tuple[int, int] | None:
    # RFC 2516 §4: ver/type 0x11, code 0x00 in a session, the length covers the PPP frame.
    if len(mv) < p + 8:
        return None
    vertype, code, session, length, proto = _PPPOE.unpack_from(mv, p)
    if vertype != 0x11 or code != 0 or length < 2:
        return None
    if tags is not None:
        tags.append(Encapsulation("pppoe", session))
    if proto == PPP_IPV4:
        return p + 8, 4
    if proto == PPP_IPV6:
        return p + 8, 6
    return None


def link_payload(linktype: int, mv: memoryview, tags: list[Encapsulation] | None) -> tuple[int, int] | None:
    """``packets``' link types plus MPLS and PPPoE behind Ethernet, SLL and SLL2."""
    if linktype == packets.LINKTYPE_ETHERNET:
        return _ether(mv, 0, tags)
    if linktype == packets.LINKTYPE_LINUX_SLL and len(mv) >= 16:
        return _ethertype(mv, (mv[14] << 8) | mv[15], 16, tags)
    if linktype == packets.LINKTYPE_LINUX_SLL2 and len(mv) >= 20:
        return _ethertype(mv, (mv[0] << 8) | mv[1], 20, tags)
    return packets.link_payload(linktype, mv)


# ---------------------------------------------------------------------------- IP and tunnels


def _gre(mv: memoryview, p: int, tags: list[Encapsulation] | None) -> tuple[int, int] | None:
    """GRE header at p -> (offset of the IP header, version) of what it carries, or None."""
    n = len(mv)
    if n < p + 4:
        return None
    flags, proto = _HH.unpack_from(mv, p)
    if flags & 0x0007:  # version 1 is PPTP's enhanced GRE (PPP payloads): not ours
        return None
    q = p + 4
    key = -1
    if flags & 0xC000:  # checksum present, or routing present (RFC 1701: both fields then)
        q += 4
    if flags & 0x2000:
        if n < q + 4:
            return None
        key = _U32.unpack_from(mv, q)[0]
        q += 4
    seq = bool(flags & 0x1000)
    if seq:
        q += 4
    if flags & 0x4000:  # RFC 1701 source route entries, up to the NULL one
        for _ in range(MAX_LABELS):
            if n < q + 4:
                return None
            af, sre_len = _U16.unpack_from(mv, q)[0], mv[q + 3]
            q += 4 + sre_len
            if af == 0 and sre_len == 0:
                break
        else:
            return None
    if n < q:
        return None
    if proto == GRE_ERSPAN_II:
        if not seq:  # type I: the mirrored Ethernet frame right after the GRE header
            if tags is not None:
                tags.append(Encapsulation("erspan1"))
            return _ether(mv, q, tags)
        if n < q + 8:
            return None
        vervlan, session, _index = _ERSPAN2.unpack_from(mv, q)
        if vervlan >> 12 != 1:
            return None
        if tags is not None:
            tags.append(Encapsulation("erspan2", session & 0x3FF, vervlan & 0xFFF))
        return _ether(mv, q + 8, tags)
    if proto == GRE_ERSPAN_III:
        if n < q + 12:
            return None
        vervlan, session, _timestamp, word3 = _ERSPAN3.unpack_from(mv, q)
        if vervlan >> 12 != 2:
            return None
        if tags is not None:
            tags.append(Encapsulation("erspan3", session & 0x3FF, vervlan & 0xFFF))
        q += 20 if word3 & 1 else 12  # O bit: the 8-byte platform-specific subheader follows
        frame_type = (word3 >> 10) & 0x1F
        if frame_type == 0:
            return _ether(mv, q, tags)
        if frame_type == 2 and n > q:  # an IP packet, version by its first nibble
            version = mv[q] >> 4
            return (q, version) if version in (4, 6) else None
        return None
    if tags is not None:
        tags.append(Encapsulation("gre", key))
    if proto == packets.ETHERTYPE_IPV4:
        return q, 4
    if proto == packets.ETHERTYPE_IPV6:
        return q, 6
    if proto == GRE_TEB:
        return _ether(mv, q, tags)
    if proto == ETHERTYPE_MPLS:
        return _mpls(mv, q, tags)
    return None


def _vxlan(mv: memoryview, p: int, tags: list[Encapsulation] | None) -> tuple[int, int] | None:
    # RFC 7348 §5: flags (I bit 0x08 = VNI valid), 24 reserved bits, VNI (24), 8 reserved.
    if len(mv) < p + 8 or not mv[p] & 0x08:
        return None
    if tags is not None:
        tags.append(Encapsulation("vxlan", _U32.unpack_from(mv, p + 4)[0] >> 8))
    return _ether(mv, p + 8, tags)


def walk(linktype: int, data: memoryview, vxlan_ports: frozenset[int] | tuple[int, ...] = (VXLAN_PORT,),
         tags: list[Encapsulation] | None = None,
         where: list[tuple[memoryview, int, int]] | None = None) -> TcpSegment | IpFragment | None:
    """Decode a frame through every encapsulation down to TCP (see the module docstring).

    ``tags`` gets one ``Encapsulation`` per layer removed, outermost first; ``where`` gets
    (buffer, start, end) of the innermost IP packet when a TCP segment is found.
    """
    try:
        link = link_payload(linktype, data, tags)
        if link is None:
            return None
        return walk_ip(data, link[0], link[1], vxlan_ports, tags, where)
    except (struct.error, IndexError, ValueError):  # belt and braces: never raise
        return None


def walk_ip(mv: memoryview, off: int, version: int, vxlan_ports: frozenset[int] | tuple[int, ...],
            tags: list[Encapsulation] | None,
            where: list[tuple[memoryview, int, int]] | None = None) -> TcpSegment | IpFragment | None:
    """From an IP header at ``off`` down to TCP, through IP-in-IP, GRE and VXLAN."""
    try:
        return _walk_ip(mv, off, version, vxlan_ports, tags, where)
    except (struct.error, IndexError, ValueError):
        return None


def _walk_ip(mv: memoryview, off: int, version: int, vxlan_ports: frozenset[int] | tuple[int, ...],
             tags: list[Encapsulation] | None,
             where: list[tuple[memoryview, int, int]] | None) -> TcpSegment | IpFragment | None:
    for _ in range(MAX_LAYERS):
        n = len(mv)
        if version == 4:
            if n - off < 20:
                return None
            vihl, total, _ident, frag, proto, src, dst = _IP4.unpack_from(mv, off)
            hlen = (vihl & 0x0F) << 2
            if vihl >> 4 != 4 or hlen < 20:
                return None
            if total == 0:  # TCP segmentation offload: trust the capture
                end = wire_end = n
            elif total < hlen:
                return None
            else:
                wire_end = off + total
                end = min(wire_end, n)
            if frag & 0x3FFF:
                return IpFragment(mv, off, 4, end)
            p = off + hlen
        elif version == 6:
            if n - off < 40:
                return None
            vbyte, plen, proto, src, dst = _IP6.unpack_from(mv, off)
            if vbyte >> 4 != 6:
                return None
            wire_end = n if plen == 0 else off + 40 + plen
            end = min(wire_end, n)
            p = off + 40
            while proto in _IP6_EXT or proto == _IPPROTO_FRAGMENT or proto == _IPPROTO_AH:
                if end - p < 8:
                    return None
                if proto == _IPPROTO_FRAGMENT:
                    if _FRAG6.unpack_from(mv, p)[1] & 0xFFF9:
                        return IpFragment(mv, off, 6, end)
                    proto, p = mv[p], p + 8  # atomic fragment (RFC 6946)
                elif proto == _IPPROTO_AH:
                    proto, p = mv[p], p + ((mv[p + 1] + 2) << 2)
                else:
                    proto, p = mv[p], p + ((mv[p + 1] + 1) << 3)
            if p > end:
                return None
        else:
            return None
        if proto == _IPPROTO_TCP:
            if where is not None:
                where.append((mv, off, end))
            return packets.tcp_segment(mv, src, dst, p, end, wire_end - end)
        if end < n:
            mv = mv[:end]  # what follows the IP packet (padding, FCS) is not the tunnel's
        nxt: tuple[int, int] | None
        if proto == _IPPROTO_IPIP or proto == _IPPROTO_IPV6:
            if tags is not None:
                tags.append(Encapsulation("ipip" if proto == _IPPROTO_IPIP else "ip6ip"))
            nxt = p, 4 if proto == _IPPROTO_IPIP else 6
        elif proto == _IPPROTO_GRE:
            nxt = _gre(mv, p, tags)
        elif proto == _IPPROTO_UDP:
            if end - p < 8:
                return None
            if _U16.unpack_from(mv, p + 2)[0] not in vxlan_ports:
                return None
            nxt = _vxlan(mv, p + 8, tags)
        else:
            return None
        if nxt is None:
            return None
        off, version = nxt
    return None
