"""Test helper: re-wrap every frame of a real capture in a tunnel or mirror encapsulation.

``wrap(path, kind)`` reads a capture with our reader and returns (pcap bytes, frame map): a
nanosecond pcap (Ethernet) whose frames are the original ones inside the encapsulation
``kind`` (see ``KINDS``), with the original timestamps, and a dict from each new frame number
that should carry the original's analysis to the original frame number. Frames that are not
IP stay as they are. Generated at test time (never committed).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from analyzer.capture import open_capture
from analyzer.capture.encap import link_payload

MAC_S = bytes.fromhex("02000000aa01")
MAC_D = bytes.fromhex("02000000aa02")
OUTER_SRC = bytes([192, 0, 2, 1])
OUTER_DST = bytes([192, 0, 2, 2])

KINDS = ("erspan1", "erspan2", "erspan3", "erspan3_sub", "gre_ip", "gre_eth_key", "vxlan", "vxlan_port",
         "mpls", "mpls_pw", "pppoe", "ipip", "ipip6", "frag4", "frag6", "gre_frag", "mirror_dup",
         "two_sessions")

_ident = [0]


def ip4(payload: bytes, proto: int, wire_extra: int = 0, ident: int | None = None, frag: int = 0x4000) -> bytes:
    if ident is None:
        _ident[0] = (_ident[0] + 1) & 0xFFFF
        ident = _ident[0]
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload) + wire_extra, ident, frag, 64, proto, 0,
                       OUTER_SRC, OUTER_DST) + payload


def eth(payload: bytes, ethertype: int) -> bytes:
    return MAC_D + MAC_S + struct.pack("!H", ethertype) + payload


def gre(proto: int, payload: bytes, seq: int | None = None, key: int | None = None) -> bytes:
    flags = (0x1000 if seq is not None else 0) | (0x2000 if key is not None else 0)
    out = struct.pack("!HH", flags, proto)
    if key is not None:
        out += struct.pack("!I", key)
    if seq is not None:
        out += struct.pack("!I", seq)
    return out + payload


def erspan2(frame: bytes, session: int, vlan: int, seq: int) -> bytes:
    hdr = struct.pack("!HHI", (1 << 12) | vlan, (2 << 11) | session, 17)
    return gre(0x88BE, hdr + frame, seq=seq)


def erspan3(frame: bytes, session: int, vlan: int, seq: int, sub: bool = False) -> bytes:
    word3 = 0x1234 << 16 | (1 if sub else 0)  # SGT, frame type 0 (Ethernet), O bit
    hdr = struct.pack("!HHII", (2 << 12) | vlan, session, 0xDEADBEEF, word3)
    if sub:
        hdr += bytes(8)
    return gre(0x22EB, hdr + frame, seq=seq)


def udp(dport: int, payload: bytes, wire_extra: int) -> bytes:
    return struct.pack("!HHHH", 49152, dport, 8 + len(payload) + wire_extra, 0) + payload


def vxlan(frame: bytes, vni: int) -> bytes:
    return struct.pack("!II", 0x08000000, vni << 8) + frame


def fragments4(ip: bytes, size: int, reverse: bool) -> list[bytes]:
    hlen = (ip[0] & 0x0F) * 4
    header, data = bytearray(ip[:hlen]), ip[hlen:]
    out = []
    for off in range(0, len(data), size):
        part = data[off:off + size]
        h = bytearray(header)
        more = off + size < len(data)
        struct.pack_into("!HHH", h, 2, hlen + len(part), struct.unpack_from("!H", h, 4)[0],
                         (0x2000 if more else 0) | (off >> 3))
        out.append(bytes(h) + part)
    return out[::-1] if reverse else out


def fragments6(ip: bytes, size: int, reverse: bool, ident: int) -> list[bytes]:
    nh, data = ip[6], ip[40:]
    out = []
    for off in range(0, len(data), size):
        part = data[off:off + size]
        more = off + size < len(data)
        fh = struct.pack("!BBHI", nh, 0, off | int(more), ident)
        h = bytearray(ip[:40])
        struct.pack_into("!H", h, 4, 8 + len(part))
        h[6] = 44
        out.append(bytes(h) + fh + part)
    return out[::-1] if reverse else out


def _frames(path: Path) -> Iterator[tuple[int, int, bytes, bytes | None, int, int]]:
    """-> (frame_no, ts_ns, ethernet frame, IP packet or None, IP version, bytes cut by the snaplen)."""
    with open_capture(path) as reader:
        for frame_no, ts, linktype, data, orig in reader:
            raw = bytes(data)
            cut = orig - len(raw)
            link = link_payload(linktype, memoryview(raw), None)
            if link is None:
                # not IP: as it was, or behind an Ethernet header of the local experimental type
                yield frame_no, ts, raw if linktype == 1 else eth(raw, 0x88B5), None, 0, cut
                continue
            off, version = link
            ip = raw[off:]
            if version == 4 and len(ip) >= 20:
                total = struct.unpack_from("!H", ip, 2)[0]
                if total and cut == 0:
                    ip = ip[:total]
            elif version == 6 and len(ip) >= 40:
                plen = struct.unpack_from("!H", ip, 4)[0]
                if plen and cut == 0:
                    ip = ip[:40 + plen]
            frame = raw if linktype == 1 else eth(ip, 0x0800 if version == 4 else 0x86DD)
            yield frame_no, ts, frame, ip, version, cut


def wrap(path: Path, kind: str) -> tuple[bytes, dict[int, int]]:
    """The capture at ``path`` re-wrapped as ``kind``: (pcap bytes, new frame -> original frame)."""
    records: list[tuple[int, bytes, int]] = []
    fmap: dict[int, int] = {}

    def add(ts: int, data: bytes, cut: int, original: int | None) -> None:
        records.append((ts, data, len(data) + cut))
        if original is not None:
            fmap[len(records)] = original

    seq = 0
    for no, ts, frame, ip, version, cut in _frames(path):
        seq += 1
        if ip is None:
            add(ts, frame, cut, no)
            continue
        etype = 0x0800 if version == 4 else 0x86DD
        if kind == "erspan1":
            add(ts, eth(ip4(gre(0x88BE, frame), 47, cut), 0x0800), cut, no)
        elif kind == "erspan2":
            add(ts, eth(ip4(erspan2(frame, 7, 100, seq), 47, cut), 0x0800), cut, no)
        elif kind in ("erspan3", "erspan3_sub"):
            add(ts, eth(ip4(erspan3(frame, 300, 42, seq, kind == "erspan3_sub"), 47, cut), 0x0800), cut, no)
        elif kind == "gre_ip":
            add(ts, eth(ip4(gre(etype, ip), 47, cut), 0x0800), cut, no)
        elif kind == "gre_eth_key":
            add(ts, eth(ip4(gre(0x6558, frame, key=5), 47, cut), 0x0800), cut, no)
        elif kind in ("vxlan", "vxlan_port"):
            port = 4789 if kind == "vxlan" else 8472
            add(ts, eth(ip4(udp(port, vxlan(frame, 4242), cut), 17, cut), 0x0800), cut, no)
        elif kind == "mpls":
            labels = struct.pack("!II", (1000 << 12) | 64, (2000 << 12) | 0x100 | 64)
            add(ts, eth(labels + ip, 0x8847), cut, no)
        elif kind == "mpls_pw":
            labels = struct.pack("!I", (3000 << 12) | 0x100 | 64) + bytes(4)  # + control word
            add(ts, eth(labels + frame, 0x8847), cut, no)
        elif kind == "pppoe":
            ppp = struct.pack("!H", 0x0021 if version == 4 else 0x0057) + ip
            add(ts, eth(struct.pack("!BBHH", 0x11, 0, 0x2A, len(ppp) + cut) + ppp, 0x8864), cut, no)
        elif kind == "ipip":
            add(ts, eth(ip4(ip, 4 if version == 4 else 41, cut), 0x0800), cut, no)
        elif kind == "ipip6":
            outer = struct.pack("!IHBB16s16s", 0x60000000, len(ip) + cut, 4 if version == 4 else 41, 64,
                                bytes(15) + b"\x01", bytes(15) + b"\x02")
            add(ts, eth(outer + ip, 0x86DD), cut, no)
        elif kind in ("frag4", "frag6"):
            total = struct.unpack_from("!H", ip, 2)[0] if version == 4 else 1
            if cut or len(ip) <= 600 or total == 0 or (kind == "frag4") != (version == 4):
                add(ts, frame, cut, no)
                continue
            if version == 4:
                ip = ip[:6] + b"\x00\x00" + ip[8:]  # clear DF
                parts = fragments4(ip, 512, reverse=seq % 2 == 0)
            else:
                parts = fragments6(ip, 512, reverse=seq % 2 == 0, ident=seq)
            for i, part in enumerate(parts):
                add(ts, eth(part, etype), 0, no if i == len(parts) - 1 else None)
        elif kind == "gre_frag":
            packet = ip4(gre(etype, ip), 47, cut)
            if cut or len(packet) <= 600:
                add(ts, eth(packet, 0x0800), cut, no)
                continue
            packet = packet[:6] + b"\x00\x00" + packet[8:]
            parts = fragments4(packet, 400, reverse=False)
            for i, part in enumerate(parts):
                add(ts, eth(part, 0x0800), 0, no if i == len(parts) - 1 else None)
        elif kind == "mirror_dup":
            add(ts, frame, cut, no)
            add(ts, eth(ip4(erspan2(frame, 7, 100, seq), 47, cut), 0x0800), cut, None)
        elif kind == "two_sessions":
            add(ts, eth(ip4(erspan2(frame, 1, 10, seq), 47, cut), 0x0800), cut, no)
            add(ts, eth(ip4(erspan3(frame, 2, 20, seq), 47, cut), 0x0800), cut, None)
        else:
            raise ValueError(kind)
    out = [struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)]
    for ts, data, orig in records:
        sec, ns = divmod(ts, 1_000_000_000)
        out.append(struct.pack("<IIII", sec, ns, len(data), orig) + data)
    return b"".join(out), fmap
