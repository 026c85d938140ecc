"""Write a capture back out as pcapng with packet comments (for ``iscsi-analyzer annotate``).

Every frame of the source is written once, in order, as an Enhanced Packet Block with its
captured bytes, original length and timestamp (nanosecond ``if_tsresol``, so no timestamp of
a µs or ns source changes), so frame numbers and times are Wireshark's for the original
file. A frame's comments are the source's own pcapng comments (kept first) and then the
notes given for its frame number, one ``opt_comment`` each (pcapng §4.3). One Interface
Description Block is written per link type, before the first frame that needs it.

What is not carried over: the source's other blocks (name resolution, interface statistics,
decryption secrets) and interface options other than the link type; frames of several
interfaces with one link type share one interface. The output appears atomically.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from analyzer.capture.files import open_capture

#: Longest comment we write (an option's length is 16 bits).
MAX_COMMENT: Final = 65000
_SHB_TYPE: Final = 0x0A0D0D0A
_IDB_TYPE: Final = 1
_EPB_TYPE: Final = 6


@dataclass(frozen=True, slots=True)
class AnnotateResult:
    """What ``write_annotated`` wrote."""

    frames: int  #: frames written (all of the source's)
    commented: int  #: frames that got at least one of our notes
    comments: int  #: our notes written
    damage: tuple[str, ...]  #: the source's damage messages (frames up to it were written)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)


def _block(btype: int, body: bytes) -> bytes:
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def _text(comment: str) -> bytes:
    raw = comment.encode("utf-8", "replace")
    if len(raw) > MAX_COMMENT:
        raw = raw[:MAX_COMMENT].decode("utf-8", "ignore").encode("utf-8")
    return raw


def section_header() -> bytes:
    """SHB: little-endian, version 1.0, unknown section length, shb_userappl."""
    opts = _option(4, b"iscsi-analyzer annotate") + _option(0, b"")
    return _block(_SHB_TYPE, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + opts)


def interface(linktype: int) -> bytes:
    """IDB: the link type, no snap length limit, nanosecond timestamps (if_tsresol 9)."""
    opts = _option(9, b"\x09") + _option(0, b"")
    return _block(_IDB_TYPE, struct.pack("<HHI", linktype, 0, 0) + opts)


def packet(ifid: int, ts_ns: int, data: bytes | memoryview, orig_len: int, comments: Sequence[str]) -> bytes:
    """EPB with one opt_comment per comment."""
    caplen = len(data)
    opts = b"".join(_option(1, _text(c)) for c in comments)
    if opts:
        opts += _option(0, b"")
    body = (struct.pack("<IIIII", ifid, (ts_ns >> 32) & 0xFFFFFFFF, ts_ns & 0xFFFFFFFF, caplen, orig_len)
            + bytes(data) + b"\x00" * (-caplen % 4) + opts)
    return _block(_EPB_TYPE, body)


def write_annotated(source: str | os.PathLike[str], out: str | os.PathLike[str],
                    notes: Mapping[int, Sequence[str]]) -> AnnotateResult:
    """Copy ``source`` to ``out`` as pcapng, ``notes[frame_no]`` as comments on each frame.

    Raises ``CaptureError`` when the source cannot be read as a capture, ``OSError`` when the
    output cannot be written (no partial output is left behind).
    """
    out = os.fspath(out)
    directory = os.path.dirname(os.path.abspath(out))
    fd, tmp = tempfile.mkstemp(prefix=".annotate-", suffix=".pcapng", dir=directory)
    frames = commented = written = 0
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as f, open_capture(source) as reader:
            f.write(section_header())
            ifids: dict[int, int] = {}
            kept: dict[int, tuple[str, ...]] = getattr(reader, "comments", {})
            for frame_no, ts_ns, linktype, data, orig_len in reader:
                ifid = ifids.get(linktype)
                if ifid is None:
                    ifid = ifids[linktype] = len(ifids)
                    f.write(interface(linktype))
                ours = notes.get(frame_no, ())
                comments = [*kept.pop(frame_no, ()), *ours]
                f.write(packet(ifid, ts_ns, data, orig_len, comments))
                frames += 1
                if ours:
                    commented += 1
                    written += len(ours)
            damage = tuple(d.message for d in reader.damage)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return AnnotateResult(frames, commented, written, damage)
