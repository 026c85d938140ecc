"""Capture file readers: pcap (µs/ns, either byte order), pcapng, and gzip of either.

This is the only code that opens capture files. It streams: the source is read in big
chunks (``CHUNK_SIZE``), never sought and never read whole, so a pipe from dumpcap works
and memory does not grow with the capture. Records are located with precompiled
``struct.Struct.unpack_from`` over the chunk buffer.

Slice contract: frames and payloads are ``memoryview`` slices of the chunk buffer. The
buffer is an immutable ``bytes`` object that is never reused, so a slice stays valid for as
long as it is referenced, but it also pins its whole chunk (up to ``CHUNK_SIZE`` bytes):
consumers must copy (``bytes(view)``) whatever they keep beyond the current iteration.

Damage (a file cut mid-record, an absurd record length, a bad pcapng block length, a
truncated or corrupt gzip stream) ends the iteration cleanly: a ``CaptureDamage`` record is
appended to ``reader.damage`` and the frames read so far stand. Only ``open_capture`` raises
(``CaptureError``), for files that cannot be read as a capture at all.

pcapng: every Interface Description Block has its own link type, ``if_tsresol`` and
``if_tsoffset`` (dpkt honours only the first IDB, dpkt issue #681). A file may hold several
sections, in either byte order; each Section Header Block starts a new interface list.
Enhanced, Simple and (obsolete) Packet Blocks carry frames; all other block types are
skipped by their length.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Generator, Iterator
from types import TracebackType
from typing import Any, BinaryIO, Final, Self

from analyzer.capture.dedup import FrameDecoder
from analyzer.capture.encap import VXLAN_PORT
from analyzer.capture.packets import FAST_PATHS
from analyzer.records import CaptureDamage, CaptureStats

#: Bytes asked of the underlying file per read.
CHUNK_SIZE: Final = 1 << 20
#: Largest plausible pcap record (Wireshark's WTAP_MAX_PACKET_SIZE_STANDARD).
MAX_RECORD: Final = 262144
#: How far a pcap record may exceed the file's snaplen before we call it absurd (some
#: writers put a smaller snaplen in the header than they actually capture).
SNAPLEN_SLACK: Final = 65536
#: Largest pcapng block we accept (memory bound; Wireshark uses 16 MiB too).
MAX_BLOCK: Final = 16 << 20
#: Most interfaces one pcapng section may describe (memory bound: a crafted file of millions
#: of interface blocks would otherwise hold them all); also how many ``linktypes`` are listed.
MAX_INTERFACES: Final = 65536
#: Most frames whose pcapng comments a reader keeps (``PcapngReader.comments``).
MAX_COMMENTS: Final = 1 << 20
#: Timestamps must fit a signed 64-bit nanosecond count from the epoch (1970 to 2262, what
#: Parquet/Arrow and the time formatting take): ``ts >> TS_BITS`` is 0 exactly for those.
TS_BITS: Final = 63

#: Frame as yielded by ``CaptureReader``: (frame_no, ts_ns, linktype, data, orig_len).
Frame = tuple[int, int, int, memoryview, int]
#: Segment as yielded by ``iter_tcp``: (frame_no, ts_ns, src_ip, dst_ip, sport, dport,
#: seq, ack, tcp_flags, window, payload, missing).
TcpFrame = tuple[int, int, bytes, bytes, int, int, int, int, int, int, memoryview, int]

_PCAP_MAGICS: Final = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),  # µs, little-endian
    b"\xa1\xb2\xc3\xd4": (">", 1000),  # µs, big-endian
    b"\x4d\x3c\xb2\xa1": ("<", 1),  # ns, little-endian
    b"\xa1\xb2\x3c\x4d": (">", 1),  # ns, big-endian
}
_PCAPNG_MAGIC: Final = b"\x0a\x0d\x0d\x0a"
_EMPTY: Final = memoryview(b"")  # shared payload of segments without data (no allocation)
#: For link types without a fast path: an IP offset no frame reaches, so it is never used.
_NO_FAST_PATH: Final = (struct.Struct("B").unpack_from, None, None, 1 << 62)
#: A minimum frame length for the fast path that no frame reaches: the fast path is off.
_OFF: Final = 1 << 62
_GZIP_MAGIC: Final = b"\x1f\x8b"
_SNOOP_MAGIC: Final = b"snoop\x00\x00\x00"
#: Formats we recognise but do not read: (magic prefix, description). Capture formats get the
#: editcap command that converts them (Wireshark reads them all).
_UNSUPPORTED: Final = (
    (b"\x34\xcd\xb2\xa1", "modified (Kuznetzov) pcap"),
    (b"\xa1\xb2\xcd\x34", "modified (Kuznetzov) pcap"),
    (b"GMBU", "Microsoft Network Monitor capture"),
    (b"RTSS", "Microsoft Network Monitor capture"),
    (b"TRSNIFF data    \x1a", "Sniffer (DOS) capture"),
    (b"XCP\x00", "NetXRay / Windows Sniffer capture"),
    (b"ObserverPktBuffe", "Network Instruments Observer capture"),
    (b"\xaa\xaa\xaa\xaa", "Accellent 5Views capture"),
    (b"BZh", "bzip2-compressed file (decompress it first)"),
    (b"\xfd7zXZ\x00", "xz-compressed file (decompress it first)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed file (decompress it first)"),
    (b"\x04\x22\x4d\x18", "lz4-compressed file (decompress it first)"),
)

_SHB: Final = 0x0A0D0D0A
_IDB: Final = 1
_PB: Final = 2
_SPB: Final = 3
_EPB: Final = 6
_BOM_LE: Final = b"\x4d\x3c\x2b\x1a"
_BOM_BE: Final = b"\x1a\x2b\x3c\x4d"
#: Per byte order: block header, u32, EPB header and fields, PB fields after the block header.
_STRUCTS: Final = {
    order: (struct.Struct(order + "II").unpack_from, struct.Struct(order + "I").unpack_from,
            struct.Struct(order + "7I").unpack_from, struct.Struct(order + "HHIIII").unpack_from,
            struct.Struct(order + "HH").unpack_from)
    for order in "<>"
}
_OPT_IF_TSRESOL: Final = 9
_OPT_IF_TSOFFSET: Final = 14


class CaptureError(Exception):
    """Not a capture / unreadable: the message is one line naming the file and the problem."""


def convert_hint(name: str) -> str:
    """The command that turns a capture Wireshark reads into one we read."""
    return f"convert it with: editcap -F pcap {name} OUT.pcap"


# --------------------------------------------------------------------------- sources


class _RawSource:
    """Chunks straight from the file or stream."""

    __slots__ = ("_read", "damage")

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self.damage: str | None = None

    def read(self) -> bytes:
        if self.damage is not None:
            return b""
        try:
            return self._read(CHUNK_SIZE) or b""
        except OSError as exc:
            self.damage = f"read error: {exc.strerror or exc}"
            return b""


class _GzipSource:
    """Streaming gzip decompression (all members) of a raw source; damage instead of raising."""

    __slots__ = ("_d", "_pending", "_raw", "_raw_eof", "damage")

    def __init__(self, raw: _RawSource, first: bytes) -> None:
        self._raw = raw
        self._pending = first  # compressed bytes not yet given to a decompressor
        self._d: zlib._Decompress | None = zlib.decompressobj(31)
        self._raw_eof = False
        self.damage: str | None = None

    def _more(self) -> bytes:
        data = self._pending
        self._pending = b""
        if not data and not self._raw_eof:
            data = self._raw.read()
            if not data:
                self._raw_eof = True
        return data

    def read(self) -> bytes:
        while self.damage is None:
            d = self._d
            if d is None:  # between members
                rest = self._more()
                if not rest:
                    self.damage = self._raw.damage
                    return b""
                if rest[0] == 0x1F:  # another member (zlib checks the rest of its header)
                    self._d = zlib.decompressobj(31)
                    self._pending = rest
                elif rest.strip(b"\x00"):
                    self.damage = "trailing garbage after the gzip stream"
                continue  # (zero padding after the last member is ignored, as gzip does)
            data = d.unconsumed_tail or self._more()
            if data:
                backup = d.copy()
                try:
                    out = d.decompress(data, CHUNK_SIZE)
                except zlib.error as exc:
                    self.damage = f"gzip data corrupt ({exc})"
                    return _salvage(backup, data)
            else:  # the compressed input ended
                out = d.flush()
                if not out and not d.eof:
                    self.damage = self._raw.damage or "gzip stream truncated"
            if d.eof:
                self._pending = d.unused_data
                self._d = None
            if out:
                return out
        return b""


def _salvage(d: zlib._Decompress, data: bytes) -> bytes:
    """What ``d`` outputs for ``data`` up to the byte where decompression fails (the
    failing call returns nothing, so the data before the error would be lost)."""
    out: list[bytes] = []
    size = 0
    step = 4096
    for i in range(0, len(data), step):
        before = d.copy()
        try:
            part = d.decompress(data[i:i + step], CHUNK_SIZE)
        except zlib.error:
            for j in range(i, min(i + step, len(data))):  # byte by byte up to the error
                try:
                    out.append(before.decompress(data[j:j + 1]))
                except zlib.error:
                    break
            break
        out.append(part)
        size += len(part)
        if size >= CHUNK_SIZE or d.unconsumed_tail:
            break
    return b"".join(out)


def _read_at_least(read: Callable[[], bytes], n: int) -> bytes:
    parts: list[bytes] = []
    have = 0
    while have < n:
        chunk = read()
        if not chunk:
            break
        parts.append(chunk)
        have += len(chunk)
    return b"".join(parts)


# --------------------------------------------------------------------------- readers


#: Where a reader's chunks come from.
Source = _RawSource | _GzipSource


class CaptureReader:
    """A capture being read: iterate it once for frames, or pass it to ``iter_tcp``.

    Iterating yields ``(frame_no, ts_ns, linktype, data, orig_len)``: ``frame_no`` is
    1-based as Wireshark counts, ``ts_ns`` integer nanoseconds since the epoch,
    ``linktype`` the LINKTYPE/DLT number of the frame's interface, ``data`` a memoryview
    of the captured bytes (see the module's slice contract) and ``orig_len`` the length
    on the wire. A reader can be iterated only once (it streams).

    Counters (exact once iteration has ended; updated at every chunk during it):
    ``frames``, ``bytes`` (captured bytes of all frames), ``truncated`` (frames whose
    captured length < original length), ``non_tcp`` (``iter_tcp`` only: frames that did
    not give a TCP segment: not TCP, IP fragments held for reassembly, duplicates), and
    ``decoder``'s ``encapsulated``, ``duplicates`` and ``ip_fragments`` counts. ``damage`` lists a
    ``CaptureDamage`` when the file turned
    out damaged; its ``frame``/``ts_ns`` are those of the last good frame (0 if none).
    """

    format: str = "?"

    def __init__(self, name: str, src: _RawSource | _GzipSource, head: bytes,
                 closer: Callable[[], None] | None) -> None:
        self.name = name
        self.frames = 0
        self.bytes = 0
        self.non_tcp = 0
        self.truncated = 0
        self.damage: list[CaptureDamage] = []
        self.last_ts_ns = 0
        #: The slow path (encapsulations, IP reassembly, duplicates): ``open_capture`` sets its options.
        self.decoder = FrameDecoder()
        self._src = src
        self._head = head
        self._closer = closer
        self._closed = False
        self._gen: Generator[Any, None, None] | None = None
        self._base = 0  # offset in the (uncompressed) file of the current buffer's start
        self._read_off = len(head)  # bytes of (uncompressed) file read so far
        self._stash: tuple[bytes, int, int] | None = None  # (chunk, offset, chunk's file offset)

    def __iter__(self) -> Iterator[Frame]:
        return self._start(self._scan(False))

    def _start(self, gen: Generator[Any, None, None]) -> Generator[Any, None, None]:
        if self._gen is not None or self._closed:
            raise ValueError(f"{self.name}: a capture reader can be iterated only once")
        self._gen = gen
        return gen

    def _scan(self, tcp: bool) -> Generator[Any, None, None]:
        raise NotImplementedError

    def stats(self) -> CaptureStats:
        """The counters as a ``CaptureStats`` record (frame/ts_ns of the last frame)."""
        return CaptureStats(self.frames, self.last_ts_ns, self.frames, self.bytes, self.non_tcp,
                            self.truncated)

    def close(self) -> None:
        """Stop any iteration in progress and close the file if we opened it."""
        if self._gen is not None:
            self._gen.close()
        self._closed = True
        closer, self._closer = self._closer, None
        if closer is not None:
            closer()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ----------------------------------------------------------- shared helpers

    def _fill(self, buf: bytes, pos: int, need: int) -> tuple[bytes, int] | None:
        """-> (buffer, offset) with at least ``need`` bytes from offset on: buf[pos:] and then
        what follows in the file; None at the end of the data (damage noted if bytes are
        left over).

        Chunks are not concatenated: a record straddling two chunks is copied alone into a
        small bridge buffer, and the rest of the new chunk is used in place afterwards.
        """
        have = len(buf) - pos
        stash = self._stash
        if stash is None:
            chunk = self._src.read()
            if not chunk:
                self._eof(self._base + pos, have)
                return None
            off = 0
            start = self._read_off
            self._read_off += len(chunk)
        else:
            chunk, off, start = stash
            self._stash = None
        if not have:
            self._base = start
            return chunk, off
        rest = len(chunk) - off
        if have + rest >= need:  # bridge the straddling record
            take = need - have
            if take < rest:
                self._stash = (chunk, off + take, start)
            self._base = start + off - have
            return buf[pos:] + chunk[off:off + take], 0
        # a record longer than what we have (tiny reads from a pipe, or a huge block)
        base = start + off - have
        parts = [buf[pos:], chunk[off:]]
        have += rest
        read = self._src.read
        while have < need:
            chunk = read()
            if not chunk:
                self._eof(base, have)
                return None
            self._read_off += len(chunk)
            parts.append(chunk)
            have += len(chunk)
        self._base = base
        return b"".join(parts), 0

    def _eof(self, offset: int, leftover: int) -> None:
        src_damage = self._src.damage
        if src_damage is not None:
            self._damaged(src_damage)
        elif leftover:
            self._damaged(f"cut short in the middle of a record at byte {offset} "
                          f"({leftover} bytes left over after frame {self.frames})")

    def _damaged(self, problem: str) -> None:
        self.damage.append(CaptureDamage(self.frames, self.last_ts_ns, f"{self.name}: {problem}"))


class PcapReader(CaptureReader):
    """Classic libpcap format: magic 0xa1b2c3d4 (µs) or 0xa1b23c4d (ns), either byte order."""

    format = "pcap"

    def __init__(self, name: str, src: _RawSource | _GzipSource, head: bytes,
                 closer: Callable[[], None] | None) -> None:
        super().__init__(name, src, head, closer)
        order, self._tsmul = _PCAP_MAGICS[head[:4]]
        self.nanosecond = self._tsmul == 1
        self.big_endian = order == ">"
        major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(order + "HHiIII", head, 4)
        if major != 2:
            raise CaptureError(f"{name}: unsupported pcap version {major}.{_minor}")
        self.snaplen = snaplen
        self.linktype = network & 0xFFFF  # upper bits: FCS length flags
        self.linktypes = [self.linktype]
        self._record = struct.Struct(order + "IIII")
        self._limit = MAX_RECORD if snaplen == 0 else min(MAX_RECORD, snaplen + SNAPLEN_SLACK)

    def _scan(self, tcp: bool) -> Generator[Any, None, None]:
        buf = self._head
        self._head = b""
        mv = memoryview(buf)
        pos = 24
        record = self._record.unpack_from
        tsmul = self._tsmul
        limit = self._limit
        linktype = self.linktype
        decoder = self.decoder
        slow = decoder.decode
        empty = _EMPTY
        unpack, key1, key2, ipo = FAST_PATHS.get(linktype, _NO_FAST_PATH) if tcp else _NO_FAST_PATH
        minlen = _OFF if decoder.dedup_on else ipo + 40
        frame_no = nbytes = non_tcp = trunc = ts = 0
        try:
            while True:
                n = len(buf)
                while pos + 16 <= n:
                    sec, frac, incl, orig = record(buf, pos)
                    d = pos + 16
                    e = d + incl
                    if e > n or incl > limit:
                        break
                    pos = e
                    frame_no += 1
                    nbytes += incl
                    ts = sec * 1_000_000_000 + frac * tsmul
                    if incl < orig:
                        trunc += 1
                    if not tcp:
                        yield frame_no, ts, linktype, mv[d:e], orig
                        continue
                    # ---- fused fast path: link header + IPv4 (no options, unfragmented) + TCP
                    if incl >= minlen:
                        k1, k2, tot, frag, proto, src, dst, sport, dport, seq, ack, offflags, win = unpack(buf, d)
                        if k1 == key1 and k2 == key2 and proto == 6 and tot >= 40 and not frag & 0x3FFF:
                            ip = d + ipo
                            end = ip + tot
                            if end > e:  # cut by the snaplen: the rest of the payload was not captured
                                missing = end - e
                                end = e
                            else:
                                missing = 0
                            hl = ip + 20 + ((offflags >> 12) << 2)
                            if ip + 40 <= hl < end:
                                yield (frame_no, ts, src, dst, sport, dport, seq, ack, offflags & 0xFF, win,
                                       mv[hl:end], missing)
                            elif hl == end:
                                yield (frame_no, ts, src, dst, sport, dport, seq, ack, offflags & 0xFF, win, empty,
                                       missing)
                            else:
                                non_tcp += 1
                            continue
                    seg = slow(linktype, mv[d:e], frame_no, ts)
                    if seg is None:
                        non_tcp += 1
                    else:
                        yield (frame_no, ts) + seg
                    if minlen != _OFF and decoder.dedup_on:  # every frame is compared from now on
                        minlen = _OFF
                # the record at pos is incomplete (or absurd)
                self.frames, self.bytes, self.non_tcp, self.truncated = frame_no, nbytes, non_tcp, trunc
                self.last_ts_ns = ts
                if pos + 16 <= n:
                    incl = record(buf, pos)[2]
                    if incl > limit:
                        self._damaged(f"record after frame {frame_no} at byte {self._base + pos} has an absurd "
                                      f"length {incl} (snaplen {self.snaplen})")
                        return
                    need = 16 + incl
                else:
                    need = 16
                refill = self._fill(buf, pos, need)
                if refill is None:
                    return
                buf, pos = refill
                mv = memoryview(buf)
        finally:
            self.frames, self.bytes, self.non_tcp, self.truncated = frame_no, nbytes, non_tcp, trunc
            self.last_ts_ns = ts
            if tcp:
                decoder.finish()


def _bad_time(ts: int, frame_no: int, last_good: int) -> str:
    when = "before 1970" if ts < 0 else "after 2262"
    return f"timestamp of frame {frame_no + 1} is out of range ({when}: {ts} ns from the epoch)"


def _interface(buf: bytes, pos: int, end: int, order: str) -> tuple[int, int, int, int, int]:
    """IDB at pos -> (linktype, ts multiplier, ts divisor, ts offset ns, snaplen)."""
    linktype, snaplen = struct.unpack_from(order + "H2xI", buf, pos + 8)
    opt = struct.Struct(order + "HH")
    tsresol = 6
    tsoffset = 0
    p = pos + 16
    while p + 4 <= end:
        code, olen = opt.unpack_from(buf, p)
        p += 4
        if code == 0 or p + olen > end:
            break
        if code == _OPT_IF_TSRESOL and olen >= 1:
            tsresol = buf[p]
        elif code == _OPT_IF_TSOFFSET and olen >= 8:
            tsoffset = struct.unpack_from(order + "q", buf, p)[0]
        p += (olen + 3) & ~3
    units = 1 << (tsresol & 0x7F) if tsresol & 0x80 else 10 ** tsresol  # ticks per second
    if 1_000_000_000 % units == 0:
        mul, div = 1_000_000_000 // units, 1
    else:
        mul, div = 1_000_000_000, units
    return linktype, mul, div, tsoffset * 1_000_000_000, snaplen


class PcapngReader(CaptureReader):
    """pcapng (draft-ietf-opsawg-pcapng): every IDB's link type and timestamp resolution."""

    format = "pcapng"

    def __init__(self, name: str, src: _RawSource | _GzipSource, head: bytes,
                 closer: Callable[[], None] | None) -> None:
        super().__init__(name, src, head, closer)
        if head[8:12] not in (_BOM_LE, _BOM_BE):
            raise CaptureError(f"{name}: pcapng section header has a bad byte-order magic")
        self.linktypes: list[int] = []  # of every interface seen, in order
        #: Frame iteration only (not ``iter_tcp``): each frame's EPB comments (opt_comment), for
        #: at most MAX_COMMENTS frames, and how many frames the EPB flags mark inbound/outbound.
        self.comments: dict[int, tuple[str, ...]] = {}
        self.directions = {"inbound": 0, "outbound": 0}

    def _epb_options(self, buf: bytes, p: int, end: int, order: str, frame_no: int) -> None:
        # pcapng §4.3: opt_comment (1, UTF-8), epb_flags (2; bits 0-1: 01 inbound, 10 outbound).
        opt = _STRUCTS[order][4]
        comments: list[str] = []
        while p + 4 <= end:
            code, olen = opt(buf, p)
            p += 4
            if code == 0 or p + olen > end:
                break
            if code == 1 and len(self.comments) < MAX_COMMENTS:
                comments.append(buf[p:p + olen].decode("utf-8", "replace"))
            elif code == 2 and olen == 4:
                direction = _STRUCTS[order][1](buf, p)[0] & 3
                if direction == 1:
                    self.directions["inbound"] += 1
                elif direction == 2:
                    self.directions["outbound"] += 1
            p += (olen + 3) & ~3
        if comments:
            self.comments[frame_no] = tuple(comments)

    def _scan(self, tcp: bool) -> Generator[Any, None, None]:
        buf = self._head
        self._head = b""
        mv = memoryview(buf)
        pos = 0
        decoder = self.decoder
        slow = decoder.decode
        empty = _EMPTY
        fast_paths = FAST_PATHS if tcp and not decoder.dedup_on else {}
        unpack, key1, key2, ipo = _NO_FAST_PATH
        minlen = ipo + 40
        epb_type = _EPB
        max_block = MAX_BLOCK
        order = "<"
        block, u32, epb, pb, _opt = _STRUCTS["<"]  # replaced by each SHB's byte order
        ifaces: list[tuple[int, int, int, int, int]] = []
        cur_if = -1
        lt = mul = div = tsoff = 0
        frame_no = nbytes = non_tcp = trunc = ts = 0
        problem = ""
        try:
            while True:
                n = len(buf)
                need = 8
                while pos + 8 <= n:
                    if pos + 28 <= n:  # read as an EPB (the common block) in one go
                        btype, blen, ifid, tsh, tsl, caplen, orig = epb(buf, pos)
                    else:
                        btype, blen = block(buf, pos)
                    if btype == epb_type and 32 <= blen <= max_block and not blen & 3:  # the common case
                        e = pos + blen
                        if e > n:
                            need = blen
                            break
                        if u32(buf, e - 4)[0] != blen:
                            problem = (f"bad pcapng block length: leading {blen} != trailing "
                                       f"{u32(buf, e - 4)[0]} (enhanced packet block)")
                            break
                        if ifid != cur_if:
                            if ifid >= len(ifaces):
                                problem = f"packet block for undefined interface {ifid}"
                                break
                            lt, mul, div, tsoff, _snap = ifaces[ifid]
                            cur_if = ifid
                            unpack, key1, key2, ipo = fast_paths.get(lt, _NO_FAST_PATH)
                            minlen = ipo + 40
                        t = ((tsh << 32) | tsl) * mul
                        if div != 1:
                            t //= div
                        if tsoff:
                            t += tsoff
                        if t >> 63:  # before 1970 or after 2262: a damaged (or crafted) record
                            problem = _bad_time(t, frame_no, ts)
                            break
                        ts = t
                        d = pos + 28
                        fe = d + caplen
                        if fe > e - 4:
                            problem = f"captured length {caplen} overruns its pcapng block"
                            break
                    else:
                        if btype == _SHB:  # palindromic type; its byte-order magic says how to read the rest
                            if pos + 12 > n:
                                need = 12
                                break
                            bom = buf[pos + 8:pos + 12]
                            if bom != _BOM_LE and bom != _BOM_BE:
                                problem = "pcapng section header has a bad byte-order magic"
                                break
                            order = "<" if bom == _BOM_LE else ">"
                            block, u32, epb, pb, _opt = _STRUCTS[order]
                            blen = block(buf, pos)[1]
                        if blen < 12 or blen & 3 or blen > MAX_BLOCK:
                            problem = f"bad pcapng block length {blen} (block type {btype:#x})"
                            break
                        e = pos + blen
                        if e > n:
                            need = blen
                            break
                        if u32(buf, e - 4)[0] != blen:
                            problem = (f"bad pcapng block length: leading {blen} != trailing "
                                       f"{u32(buf, e - 4)[0]} (block type {btype:#x})")
                            break
                        if btype == _EPB:  # (too short: the good ones took the branch above)
                            problem = f"bad pcapng block length {blen} for an enhanced packet block"
                            break
                        if btype == _SHB:
                            if blen < 28 or struct.unpack_from(order + "H", buf, pos + 12)[0] != 1:
                                problem = "unsupported pcapng section (bad length or major version)"
                                break
                            ifaces = []
                            cur_if = -1
                            pos = e
                            continue
                        elif btype == _IDB:
                            if blen < 20:
                                problem = f"bad pcapng block length {blen} for an interface description"
                                break
                            if len(ifaces) >= MAX_INTERFACES:
                                problem = f"more than {MAX_INTERFACES} interfaces in one pcapng section"
                                break
                            iface = _interface(buf, pos, e - 4, order)
                            ifaces.append(iface)
                            if len(self.linktypes) < MAX_INTERFACES:
                                self.linktypes.append(iface[0])
                            pos = e
                            continue
                        elif btype == _SPB:
                            if blen < 16 or not ifaces:
                                problem = "bad simple packet block (too short, or no interface defined)"
                                break
                            orig = u32(buf, pos + 8)[0]
                            caplen = min(orig, blen - 16)
                            if 0 < ifaces[0][4] < caplen:
                                caplen = ifaces[0][4]
                            if cur_if != 0:
                                lt, mul, div, tsoff, _snap = ifaces[0]
                                cur_if = 0
                                unpack, key1, key2, ipo = fast_paths.get(lt, _NO_FAST_PATH)
                                minlen = ipo + 40
                            d = pos + 12  # no timestamp: keep the previous frame's
                        elif btype == _PB:
                            if blen < 32:
                                problem = f"bad pcapng block length {blen} for a packet block"
                                break
                            ifid, _drops, tsh, tsl, caplen, orig = pb(buf, pos + 8)
                            if ifid >= len(ifaces):
                                problem = f"packet block for undefined interface {ifid}"
                                break
                            lt, mul, div, tsoff, _snap = ifaces[ifid]
                            cur_if = ifid
                            unpack, key1, key2, ipo = fast_paths.get(lt, _NO_FAST_PATH)
                            minlen = ipo + 40
                            t = ((tsh << 32) | tsl) * mul // div + tsoff
                            if t >> 63:
                                problem = _bad_time(t, frame_no, ts)
                                break
                            ts = t
                            d = pos + 28
                        else:  # NRB, ISB, DSB, custom, ...: skip
                            pos = e
                            continue
                        fe = d + caplen
                        if fe > e - 4:
                            problem = f"captured length {caplen} overruns its pcapng block"
                            break
                    pos = e
                    frame_no += 1
                    nbytes += caplen
                    if caplen < orig:
                        trunc += 1
                    if not tcp:
                        if btype == epb_type and e - fe > 7:  # options after the (padded) data
                            self._epb_options(buf, d + ((caplen + 3) & ~3), e - 4, order, frame_no)
                        yield frame_no, ts, lt, mv[d:fe], orig
                        continue
                    # ---- fused fast path: link header + IPv4 (no options, unfragmented) + TCP
                    if caplen >= minlen:
                        k1, k2, tot, frag, proto, src, dst, sport, dport, seq, ack, offflags, win = unpack(buf, d)
                        if k1 == key1 and k2 == key2 and proto == 6 and tot >= 40 and not frag & 0x3FFF:
                            ip = d + ipo
                            end = ip + tot
                            if end > fe:  # cut by the snaplen: the rest of the payload was not captured
                                missing = end - fe
                                end = fe
                            else:
                                missing = 0
                            hl = ip + 20 + ((offflags >> 12) << 2)
                            if ip + 40 <= hl < end:
                                yield (frame_no, ts, src, dst, sport, dport, seq, ack, offflags & 0xFF, win,
                                       mv[hl:end], missing)
                            elif hl == end:
                                yield (frame_no, ts, src, dst, sport, dport, seq, ack, offflags & 0xFF, win, empty,
                                       missing)
                            else:
                                non_tcp += 1
                            continue
                    seg = slow(lt, mv[d:fe], frame_no, ts)
                    if seg is None:
                        non_tcp += 1
                    else:
                        yield (frame_no, ts) + seg
                    if fast_paths and decoder.dedup_on:  # every frame is compared from now on
                        fast_paths = {}
                        unpack, key1, key2, ipo = _NO_FAST_PATH
                        minlen = ipo + 40
                self.frames, self.bytes, self.non_tcp, self.truncated = frame_no, nbytes, non_tcp, trunc
                self.last_ts_ns = ts
                if problem:
                    self._damaged(f"{problem} at byte {self._base + pos}")
                    return
                # the block at pos is incomplete
                refill = self._fill(buf, pos, need)
                if refill is None:
                    return
                buf, pos = refill
                mv = memoryview(buf)
        finally:
            self.frames, self.bytes, self.non_tcp, self.truncated = frame_no, nbytes, non_tcp, trunc
            self.last_ts_ns = ts
            if tcp:
                decoder.finish()


# --------------------------------------------------------------------------- entry points


def open_capture(source: str | os.PathLike[str] | BinaryIO, *, vxlan_ports: tuple[int, ...] = (VXLAN_PORT,),
                 dedup: bool | None = None) -> CaptureReader:
    """Open a capture by path or readable binary stream, sniffing its format by magic.

    pcap (µs/ns, both byte orders), pcapng, and gzip of either. A stream (e.g. a pipe from
    dumpcap) is read incrementally with ``read1`` when it has one, never sought. Raises
    ``CaptureError`` for a missing or unreadable file, an empty one, an unknown magic
    ("not a pcap or pcapng file") or an unsupported format. The reader owns (and closes)
    a file it opened by path; a stream passed in is left open. Streams must be blocking
    (a read returning nothing is the end of the capture).

    ``vxlan_ports``: UDP destination ports decoded as VXLAN. ``dedup``: compare frames for
    duplicates from the first frame (True), never (False), or from the first encapsulated
    frame on (None, the default; see ``dedup``).
    """
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        try:
            f = open(name, "rb", buffering=0)  # noqa: SIM115 - closed by the reader
        except FileNotFoundError:
            raise CaptureError(f"{name}: no such file") from None
        except PermissionError:
            raise CaptureError(f"{name}: permission denied") from None
        except IsADirectoryError:
            raise CaptureError(f"{name}: is a directory") from None
        except OSError as exc:
            raise CaptureError(f"{name}: cannot open ({exc.strerror or exc})") from None
        read: Callable[[int], bytes] = f.read
        closer: Callable[[], None] | None = f.close
    else:
        name = str(getattr(source, "name", "<stream>"))
        read = getattr(source, "read1", None) or source.read
        closer = None
    try:
        reader = _sniff(name, read, closer)
        reader.decoder = FrameDecoder(vxlan_ports, dedup)
        return reader
    except BaseException:
        if closer is not None:
            closer()
        raise


def _sniff(name: str, read: Callable[[int], bytes], closer: Callable[[], None] | None) -> CaptureReader:
    raw = _RawSource(read)
    head = _read_at_least(raw.read, 24)
    if raw.damage is not None:
        raise CaptureError(f"{name}: {raw.damage}")
    if not head:
        raise CaptureError(f"{name}: empty file (0 bytes)")
    src: _RawSource | _GzipSource = raw
    what = ""
    if head[:2] == _GZIP_MAGIC:
        src = _GzipSource(raw, head)
        head = _read_at_least(src.read, 24)
        what = " (inside gzip)"
        if not head:
            raise CaptureError(f"{name}: {src.damage or 'empty capture inside gzip'}")
    magic = head[:4]
    if magic in _PCAP_MAGICS:
        if len(head) < 24:
            raise CaptureError(f"{name}: pcap file header cut short ({len(head)} of 24 bytes){what}")
        return PcapReader(name, src, head, closer)
    if magic == _PCAPNG_MAGIC:
        if len(head) < 12:
            raise CaptureError(f"{name}: pcapng section header cut short ({len(head)} bytes){what}")
        return PcapngReader(name, src, head, closer)
    if magic == b"snoo" and head.startswith(_SNOOP_MAGIC):
        if len(head) < 16:
            raise CaptureError(f"{name}: snoop file header cut short ({len(head)} of 16 bytes){what}")
        from analyzer.capture.snoop import SnoopReader

        return SnoopReader(name, src, head, closer)
    for prefix, desc in _UNSUPPORTED:
        if head.startswith(prefix):
            hint = "" if desc.endswith(")") else f"; {convert_hint(name)}"
            raise CaptureError(f"{name}: unsupported format: {desc}{what}{hint}")
    raise CaptureError(f"{name}: not a pcap or pcapng file{what}")


def iter_tcp(reader: CaptureReader) -> Iterator[TcpFrame]:
    """The fused hot loop: every TCP segment of the capture, everything else skipped.

    Yields ``(frame_no, ts_ns, src_ip, dst_ip, sport, dport, seq, ack, tcp_flags, window,
    payload, missing)`` (fields as in ``packets.decode_frame``; ``payload`` per the module's slice
    contract; ``missing`` = payload bytes the IP length says the segment carried beyond what
    was captured, i.e. cut by the snaplen). Counts frames that are not TCP (``reader.non_tcp``) and frames cut by the
    snaplen (``reader.truncated``). IPv4 (no options) + TCP behind the usual link headers
    is decoded inline (``packets.FAST_PATHS``); every other layout goes through
    ``decode_frame``, with identical results. A segment without payload gets a shared
    empty memoryview.
    """
    return reader._start(reader._scan(True))
