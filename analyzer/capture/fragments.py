"""IPv4 (RFC 791 §3.2) and IPv6 (RFC 8200 §4.5) fragment reassembly, bounded.

Frames that are IP fragments (at any encapsulation layer) come here from the readers' slow
path. A datagram is complete when its fragments cover every byte from 0 to the end the last
fragment (MF = 0) gives; it is then rebuilt as one IP packet (the first fragment's header
with the length fixed and the fragment fields cleared; for IPv6 the unfragmentable part with
the Fragment header removed) and handed back, on the frame of the fragment that completed it
(as Wireshark shows a reassembled packet).

Bounds, reported like TCP gaps (counted, never fatal): a datagram waits at most
``TIMEOUT_NS`` of capture time (Linux's ipfrag_time is 30 s), at most ``MAX_PENDING``
datagrams and ``MAX_BYTES`` bytes wait at once (the oldest is given up first), a datagram
may not exceed 65535 bytes of payload, and fragments cut by the snaplen or overlapping with
different bytes (RFC 5722 for IPv6) give the datagram up. An exact duplicate of a fragment
(a mirrored copy) is ignored. What a given-up datagram carried is missing downstream, where
the TCP reassembler reports it as a gap.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

from analyzer.capture.encap import IpFragment

TIMEOUT_NS: Final = 30_000_000_000
MAX_PENDING: Final = 4096
MAX_BYTES: Final = 64 << 20
MAX_DATAGRAM: Final = 65535
#: How many one-line problem notes are kept (the counters count them all).
MAX_NOTES: Final = 20

_IP4 = struct.Struct("!BxHHHxB2x4s4s")
_IP6 = struct.Struct("!B3xHBx16s16s")
_FRAG6 = struct.Struct("!BxHI")
_IP6_EXT: Final = frozenset((0, 43, 60))
_IPPROTO_FRAGMENT: Final = 44
_IPPROTO_AH: Final = 51

Key = tuple[int, bytes, bytes, int, int]


@dataclass(slots=True)
class _Datagram:
    first_frame: int
    first_ts: int
    version: int
    header: bytes = b""  #: IPv4 header / IPv6 unfragmentable part, from the offset-0 fragment
    nh_pos: int = -1  #: IPv6: where in ``header`` the next-header byte to patch is
    next_header: int = 0  #: IPv6: the Fragment header's next header
    total: int = -1  #: payload length, known once the last fragment is seen
    pieces: dict[int, bytes] = field(default_factory=dict)  #: offset -> payload bytes
    size: int = 0


class Reassembler:
    """Collects IP fragments; ``feed`` returns the rebuilt packet when a datagram completes."""

    def __init__(self, timeout_ns: int = TIMEOUT_NS, max_pending: int = MAX_PENDING,
                 max_bytes: int = MAX_BYTES) -> None:
        self.timeout_ns = timeout_ns
        self.max_pending = max_pending
        self.max_bytes = max_bytes
        self.fragments = 0  #: fragment frames seen
        self.reassembled = 0  #: datagrams rebuilt
        self.dropped = 0  #: datagrams given up (timeout, bounds, cut, inconsistent)
        self.notes: list[str] = []
        self._pending: dict[Key, _Datagram] = {}  # insertion order = age order
        self._bytes = 0

    def feed(self, frag: IpFragment, frame_no: int, ts_ns: int) -> bytes | None:
        """One fragment -> the reassembled IP packet when this fragment completes it, else None."""
        self.fragments += 1
        parsed = _parse(frag)
        if parsed is None:
            self._note(frame_no, "malformed IP fragment ignored")
            self.dropped += 1
            return None
        key, offset, more, payload, header, nh_pos, next_header, cut = parsed
        self._expire(ts_ns)
        dg = self._pending.get(key)
        if dg is None:
            if len(self._pending) >= self.max_pending:
                self._give_up(next(iter(self._pending)), frame_no, "too many datagrams being reassembled")
            dg = _Datagram(frame_no, ts_ns, key[0])
            self._pending[key] = dg
        if cut:
            self._give_up(key, frame_no, "a fragment was cut by the snaplen")
            return None
        if offset + len(payload) > MAX_DATAGRAM:
            self._give_up(key, frame_no, "fragments reach beyond 65535 bytes")
            return None
        old = dg.pieces.get(offset)
        if old is not None:
            if old == payload:
                return None  # an exact copy (mirrored twice, or a retransmitted fragment)
            self._give_up(key, frame_no, "overlapping fragments with different contents")
            return None
        if offset == 0:
            dg.header, dg.nh_pos, dg.next_header = header, nh_pos, next_header
        if not more:
            if dg.total >= 0 and dg.total != offset + len(payload):
                self._give_up(key, frame_no, "two different last fragments")
                return None
            dg.total = offset + len(payload)
        dg.pieces[offset] = payload
        dg.size += len(payload)
        self._bytes += len(payload)
        while self._bytes > self.max_bytes and self._pending:
            oldest = next(iter(self._pending))
            self._give_up(oldest, frame_no, "reassembly memory bound reached")
            if oldest == key:
                return None
        if dg.total < 0 or not dg.header:
            return None
        data = _assemble(dg)
        if data is None:
            if dg.size >= dg.total:  # as many bytes as the datagram holds, but they overlap
                self._give_up(key, frame_no, "overlapping fragments")
            return None
        del self._pending[key]
        self._bytes -= dg.size
        self.reassembled += 1
        if dg.version == 4:
            hdr = bytearray(dg.header)
            struct.pack_into("!H", hdr, 2, len(hdr) + len(data))
            struct.pack_into("!H", hdr, 6, 0)
            return bytes(hdr) + data
        hdr = bytearray(dg.header)
        struct.pack_into("!H", hdr, 4, len(hdr) - 40 + len(data))
        hdr[dg.nh_pos] = dg.next_header
        return bytes(hdr) + data

    def finish(self) -> None:
        """The capture ended: datagrams still waiting are given up (and counted)."""
        for key in list(self._pending):
            dg = self._pending[key]
            self._give_up(key, dg.first_frame, "incomplete at the end of the capture")

    @property
    def pending(self) -> int:
        """Datagrams waiting for fragments."""
        return len(self._pending)

    def _expire(self, ts_ns: int) -> None:
        pending = self._pending
        while pending:
            key = next(iter(pending))
            dg = pending[key]
            if ts_ns - dg.first_ts <= self.timeout_ns:
                break
            self._give_up(key, dg.first_frame, f"not complete within {self.timeout_ns // 1_000_000_000} s")

    def _give_up(self, key: Key, frame_no: int, why: str) -> None:
        dg = self._pending.pop(key, None)
        if dg is None:
            return
        self._bytes -= dg.size
        self.dropped += 1
        version, src, dst, ident, _proto = key
        from analyzer.capture.packets import format_ip

        self._note(dg.first_frame, f"IPv{version} datagram {format_ip(src)} -> {format_ip(dst)} id {ident:#x} "
                                   f"(first fragment frame {dg.first_frame}) not reassembled: {why} (frame {frame_no})")

    def _note(self, frame_no: int, text: str) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.append(text)


def _assemble(dg: _Datagram) -> bytes | None:
    """The payload if the pieces cover 0..total exactly once, else None."""
    parts: list[bytes] = []
    at = 0
    for offset in sorted(dg.pieces):
        piece = dg.pieces[offset]
        if offset != at:
            return None  # a hole (or an overlap)
        parts.append(piece)
        at += len(piece)
    return b"".join(parts) if at == dg.total else None


def _parse(frag: IpFragment) -> tuple[Key, int, bool, bytes, bytes, int, int, bool] | None:
    """-> (key, offset, more fragments, payload, header, IPv6 nh position, IPv6 next header,
    cut by the snaplen)."""
    mv, off, end = frag.data, frag.ip_off, frag.end
    try:
        if frag.version == 4:
            vihl, total, ident, flags, proto, src, dst = _IP4.unpack_from(mv, off)
            hlen = (vihl & 0x0F) << 2
            if total < hlen:  # (total == 0, offload, cannot be a fragment we can place)
                return None
            offset = (flags & 0x1FFF) << 3
            more = bool(flags & 0x2000)
            if more and (total - hlen) & 7:
                return None  # RFC 791: every fragment but the last carries a multiple of 8 bytes
            cut = off + total > end
            return ((4, src, dst, ident, proto), offset, more, bytes(mv[off + hlen:end]),
                    bytes(mv[off:off + hlen]), -1, 0, cut)
        _vbyte, plen, nh, src, dst = _IP6.unpack_from(mv, off)
        nh_pos = off + 6
        p = off + 40
        while nh != _IPPROTO_FRAGMENT:
            if nh in _IP6_EXT:
                nh_pos, nh, p = p, mv[p], p + ((mv[p + 1] + 1) << 3)
            elif nh == _IPPROTO_AH:
                nh_pos, nh, p = p, mv[p], p + ((mv[p + 1] + 2) << 2)
            else:
                return None
            if p + 8 > end:
                return None
        next_header, offflags, ident = _FRAG6.unpack_from(mv, p)
        offset = offflags & 0xFFF8
        more = bool(offflags & 1)
        payload = mv[p + 8:end]
        if more and len(payload) & 7:
            return None
        cut = plen != 0 and off + 40 + plen > end
        return ((6, src, dst, ident, 0), offset, more, bytes(payload), bytes(mv[off:p]), nh_pos - off,
                next_header, cut)
    except (struct.error, IndexError, ValueError):
        return None
