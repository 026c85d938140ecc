"""Solaris snoop capture files (RFC 1761), read with the same streaming contract as pcap.

File header: the 8-byte magic "snoop\\0\\0\\0", version (2) and datalink type, big-endian.
Each record: original length, included length, record length (header + data + padding),
cumulative drops, seconds and microseconds, then the data padded to the record length.
Datalink 4 (Ethernet) and 0 (IEEE 802.3, Ethernet framing in practice; Wireshark reads it
as Ethernet) are supported; anything else is refused with the conversion hint.

Snoop files are rare and small, so frames skip the fused fast path: every frame goes through
the readers' slow path (``dedup.FrameDecoder``), which gives the same segments.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Generator
from typing import Any, Final

from analyzer.capture.files import CaptureError, CaptureReader, Source, convert_hint
from analyzer.capture.packets import LINKTYPE_ETHERNET

MAGIC: Final = b"snoop\x00\x00\x00"
#: snoop datalink -> LINKTYPE (RFC 1761 §"Datalink Types": 0 IEEE 802.3, 4 Ethernet).
DATALINKS: Final = {0: LINKTYPE_ETHERNET, 4: LINKTYPE_ETHERNET}
_HEADER = struct.Struct(">8sII")
_RECORD = struct.Struct(">IIIIII")
#: Largest plausible record (as pcap's MAX_RECORD, plus the 24-byte header and padding).
MAX_RECORD: Final = 262144 + 32


class SnoopReader(CaptureReader):
    """Solaris snoop, version 2: Ethernet datalinks."""

    format = "snoop"

    def __init__(self, name: str, src: Source, head: bytes,
                 closer: Callable[[], None] | None) -> None:
        super().__init__(name, src, head, closer)
        _magic, version, datalink = _HEADER.unpack_from(head, 0)
        if version != 2:
            raise CaptureError(f"{name}: unsupported snoop version {version}; {convert_hint(name)}")
        linktype = DATALINKS.get(datalink)
        if linktype is None:
            raise CaptureError(f"{name}: unsupported snoop datalink type {datalink} (only Ethernet is read); "
                               f"{convert_hint(name)}")
        self.linktype = linktype
        self.linktypes = [linktype]
        self.snaplen = 0

    def _scan(self, tcp: bool) -> Generator[Any, None, None]:
        buf = self._head
        self._head = b""
        mv = memoryview(buf)
        pos = 16
        record = _RECORD.unpack_from
        linktype = self.linktype
        slow = self.decoder.decode
        frame_no = nbytes = non_tcp = trunc = ts = 0
        try:
            while True:
                n = len(buf)
                problem = ""
                while pos + 24 <= n:
                    orig, incl, reclen, _drops, sec, usec = record(buf, pos)
                    if reclen < 24 + incl or reclen > MAX_RECORD:
                        problem = (f"snoop record after frame {frame_no} at byte {self._base + pos} has an "
                                   f"absurd length {reclen} (included length {incl})")
                        break
                    if pos + reclen > n:
                        break
                    d = pos + 24
                    e = d + incl
                    pos += reclen
                    frame_no += 1
                    nbytes += incl
                    ts = sec * 1_000_000_000 + min(usec, 999_999) * 1000
                    if incl < orig:
                        trunc += 1
                    if not tcp:
                        yield frame_no, ts, linktype, mv[d:e], orig
                        continue
                    seg = slow(linktype, mv[d:e], frame_no, ts)
                    if seg is None:
                        non_tcp += 1
                    else:
                        yield (frame_no, ts) + seg
                self.frames, self.bytes, self.non_tcp, self.truncated = frame_no, nbytes, non_tcp, trunc
                self.last_ts_ns = ts
                if problem:
                    self._damaged(problem)
                    return
                need = record(buf, pos)[2] if pos + 24 <= n else 24
                refill = self._fill(buf, pos, need)
                if refill is None:
                    return
                buf, pos = refill
                mv = memoryview(buf)
        finally:
            self.frames, self.bytes, self.non_tcp, self.truncated = frame_no, nbytes, non_tcp, trunc
            self.last_ts_ns = ts
            if tcp:
                self.decoder.finish()
