"""Test helpers: build frames (link/IP/TCP) and pcap/pcapng files as bytes, in memory."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

# --------------------------------------------------------------------------- frames

IP4_A = bytes([10, 0, 0, 1])
IP4_B = bytes([10, 0, 0, 2])
IP6_A = bytes.fromhex("fe800000000000000000000000000001")
IP6_B = bytes.fromhex("20010db8000000000000000000000002")
MAC_A = bytes.fromhex("001122334455")
MAC_B = bytes.fromhex("66778899aabb")


def tcp(sport: int = 51000, dport: int = 3260, seq: int = 1000, ack: int = 2000, flags: int = 0x18,
        window: int = 501, payload: bytes = b"", options: bytes = b"") -> bytes:
    """A TCP header (options padded to 4 bytes) plus payload; checksum left zero."""
    options += b"\x00" * (-len(options) % 4)
    doff = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, window, 0, 0) + options + payload


def ipv4(payload: bytes, src: bytes = IP4_A, dst: bytes = IP4_B, proto: int = 6, options: bytes = b"",
         frag: int = 0x4000, total_len: int | None = None) -> bytes:
    """An IPv4 packet; ``frag`` is the flags/fragment-offset word (default DF)."""
    options += b"\x00" * (-len(options) % 4)
    ihl = 5 + len(options) // 4
    if total_len is None:
        total_len = ihl * 4 + len(payload)
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total_len, 1, frag, 64, proto, 0, src, dst) + options + payload


def ipv6(payload: bytes, src: bytes = IP6_A, dst: bytes = IP6_B, nh: int = 6,
         ext: Sequence[tuple[int, bytes]] = (), payload_len: int | None = None) -> bytes:
    """An IPv6 packet. ``ext`` is a list of (header type, header bytes) in order; each header's
    first byte (next header) is patched to chain them, ending with ``nh``."""
    chain = b""
    types = [t for t, _ in ext] + [nh]
    for i, (_t, h) in enumerate(ext):
        chain += bytes([types[i + 1]]) + h[1:]
    body = chain + payload
    first = types[0]
    plen = len(body) if payload_len is None else payload_len
    return struct.pack("!IHBB16s16s", 0x60000000, plen, first, 64, src, dst) + body


def ext_header(length_units: int = 0, fill: int = 0) -> bytes:
    """Hop-by-hop/routing/destination options header of (length_units + 1) * 8 bytes."""
    return bytes([0, length_units]) + bytes([fill]) * ((length_units + 1) * 8 - 2)


def frag_header(offset: int = 0, more: bool = False) -> bytes:
    return struct.pack("!BBHI", 0, 0, (offset << 3) | int(more), 0x12345678)


def ethernet(payload: bytes, ethertype: int = 0x0800, tags: Sequence[tuple[int, int]] = (),
             pad_to: int = 0) -> bytes:
    """Ethernet II frame; ``tags`` = [(TPID, VLAN id), ...] outermost first; padded to ``pad_to``."""
    hdr = MAC_B + MAC_A
    for tpid, vid in tags:
        hdr += struct.pack("!HH", tpid, vid)
    frame = hdr + struct.pack("!H", ethertype) + payload
    return frame + b"\x00" * max(0, pad_to - len(frame))


def sll(payload: bytes, protocol: int = 0x0800) -> bytes:
    """Linux cooked v1 (LINKTYPE 113) header."""
    return struct.pack("!HHH8sH", 0, 1, 6, MAC_A + b"\x00\x00", protocol) + payload


def sll2(payload: bytes, protocol: int = 0x0800) -> bytes:
    """Linux cooked v2 (LINKTYPE 276) header."""
    return struct.pack("!HHIHBB8s", protocol, 0, 2, 1, 0, 6, MAC_A + b"\x00\x00") + payload


def null(payload: bytes, family: int, big_endian: bool = False) -> bytes:
    """BSD loopback (LINKTYPE 0, host order) / LOOP (108, big_endian=True) header."""
    return struct.pack(">I" if big_endian else "<I", family) + payload


# --------------------------------------------------------------------------- pcap

Record = tuple[int, bytes] | tuple[int, bytes, int]  # (ts_ns, data[, orig_len])


def pcap(records: Iterable[Record], linktype: int = 1, nsec: bool = False, big_endian: bool = False,
         snaplen: int = 65535) -> bytes:
    """A classic pcap file; each record is (ts_ns, data) or (ts_ns, data, orig_len)."""
    e = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nsec else 0xA1B2C3D4
    out = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for rec in records:
        ts, data = rec[0], rec[1]
        orig = rec[2] if len(rec) > 2 else len(data)  # type: ignore[misc]
        sec, frac = divmod(ts, 1_000_000_000)
        if not nsec:
            frac //= 1000
        out.append(struct.pack(e + "IIII", sec, frac, len(data), orig) + data)
    return b"".join(out)


# --------------------------------------------------------------------------- pcapng


def _pad(b: bytes) -> bytes:
    return b + b"\x00" * (-len(b) % 4)


def block(btype: int, body: bytes, e: str = "<") -> bytes:
    """A generic pcapng block: type, total length, body (padded), total length."""
    body = _pad(body)
    n = 12 + len(body)
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def option(code: int, value: bytes, e: str = "<") -> bytes:
    return struct.pack(e + "HH", code, len(value)) + _pad(value)


def end_of_options(e: str = "<") -> bytes:
    return struct.pack(e + "HH", 0, 0)


def shb(e: str = "<", major: int = 1, options: bytes = b"") -> bytes:
    return block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, major, 0, -1) + options, e)


def idb(linktype: int = 1, snaplen: int = 0, tsresol: int | None = None, tsoffset: int | None = None,
        e: str = "<") -> bytes:
    opts = b""
    if tsresol is not None:
        opts += option(9, bytes([tsresol]), e)
    if tsoffset is not None:
        opts += option(14, struct.pack(e + "q", tsoffset), e)
    if opts:
        opts += end_of_options(e)
    return block(1, struct.pack(e + "HHI", linktype, 0, snaplen) + opts, e)


def epb(ifid: int, ticks: int, data: bytes, orig_len: int | None = None, e: str = "<",
        options: bytes = b"") -> bytes:
    orig = len(data) if orig_len is None else orig_len
    body = struct.pack(e + "IIIII", ifid, ticks >> 32, ticks & 0xFFFFFFFF, len(data), orig) + _pad(data)
    return block(6, body + options, e)


def spb(data: bytes, orig_len: int | None = None, e: str = "<") -> bytes:
    orig = len(data) if orig_len is None else orig_len
    return block(3, struct.pack(e + "I", orig) + data, e)


def pb(ifid: int, ticks: int, data: bytes, orig_len: int | None = None, e: str = "<") -> bytes:
    orig = len(data) if orig_len is None else orig_len
    return block(2, struct.pack(e + "HHIIII", ifid, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), orig) + data, e)


def isb(ifid: int = 0, e: str = "<") -> bytes:
    """Interface Statistics Block (type 5), to be skipped."""
    return block(5, struct.pack(e + "III", ifid, 0, 0), e)


def nrb(e: str = "<") -> bytes:
    """Name Resolution Block (type 4) with one IPv4 record, to be skipped."""
    rec = struct.pack(e + "HH", 1, 13) + _pad(IP4_A + b"host\x00\x00\x00\x00\x00")
    return block(4, rec + struct.pack(e + "HH", 0, 0), e)


def custom(e: str = "<") -> bytes:
    """Custom Block (type 0x00000BAD), to be skipped."""
    return block(0x00000BAD, struct.pack(e + "I", 32473) + b"whatever", e)
