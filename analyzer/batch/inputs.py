"""Inputs and chains: which files of a batch are pieces of one capture (``group_chains``).

A *chain* is files that are consecutive pieces of one capture; its result must equal the
analysis of its files concatenated (``mergecap -a``). Stitching files that are not pieces of
one capture would rename sessions and move frames (a lab capture's drop at frame 488 shown at
frame 1692), so files are chained only on evidence (``chain_by``):

* ``"name"``: the names say they are one ring buffer. ``PREFIX_NNNNN_YYYYMMDDhhmmss.EXT`` is
  what ``dumpcap -b`` and ``editcap -c``/``-i`` write: files of one directory, PREFIX and EXT,
  ordered by NNNNN (a gap in the numbers is a gap in the capture). A ring chain is split where
  the link types change or time runs backwards. Every other file is its own chain.
* ``"tcp"`` (the default): ring-buffer names as above; other files are chained when the next
  file provably continues the previous one's TCP streams: it starts at or after the previous
  one's last frame (at most ``max_gap_s`` later), in the same directory, with the same link
  types, at least one 4-tuple direction of the previous file's tail appears in it, and *every*
  such shared direction continues: its first sequence number is within ``SEQ_WINDOW`` of the
  previous file's highest sequence end (RFC 9293 sequence space, mod 2**32). Unrelated captures
  share no 4-tuple, or share one with unrelated random ISNs, and stay apart.
* ``"none"``: every file is its own chain.

Unreadable files are reported and left out; a chain goes on without them, as a gap.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

#: How files are chained (module doc).
CHAIN_BY: Final = ("tcp", "name", "none")
DEFAULT_CHAIN_BY: Final = "tcp"
#: Largest silence between two files chained by TCP continuation.
DEFAULT_MAX_GAP_S: Final = 300.0
#: File suffixes picked up from directories.
CAPTURE_SUFFIXES: Final = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz", ".cap.gz")
#: dumpcap ring buffer / ``editcap -c`` names: PREFIX_NNNNN_YYYYMMDDhhmmss.EXT
RING_NAME: Final = re.compile(r"^(?P<prefix>.+?)_(?P<num>\d{5,})_(?P<stamp>\d{14})(?P<ext>(?:\.[A-Za-z0-9]+)+)$")
#: Largest distance (bytes, either way) between a file's first sequence number on a 4-tuple
#: direction and the previous file's highest sequence end there, for "continues".
SEQ_WINDOW: Final = 4 << 20
#: 4-tuple directions remembered per file for the continuation test (first ones / last active ones).
TCP_KEYS: Final = 4096
_STEM_SUFFIXES: Final = (".pcapng.gz", ".pcap.gz", ".cap.gz", ".pcapng", ".pcap", ".cap", ".gz")

Key = tuple[bytes, int, bytes, int]


class NoInput(Exception):
    """No readable capture among the inputs (one line)."""


@dataclass
class FileInfo:
    """What probing a capture file found (``error`` set when it cannot be read)."""

    path: str
    size: int = 0
    error: str | None = None
    format: str = ""
    linktypes: tuple[int, ...] = ()
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None  #: only for files probed in full (not ring-buffer names)
    frames: int | None = None  #: idem
    ring: tuple[str, str, int] | None = None  #: (directory, prefix + ext, number)
    #: 4-tuple direction -> first sequence number in the file (files probed for TCP continuation)
    tcp_head: dict[Key, int] = field(default_factory=dict)
    #: 4-tuple direction -> highest sequence end (seq + payload + SYN/FIN) in the file (idem)
    tcp_tail: dict[Key, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The file name."""
        return os.path.basename(self.path)


@dataclass
class Chain:
    """Consecutive files of one capture, in order."""

    id: str
    files: list[FileInfo]
    how: str  #: "ring" (by name), "tcp" (by TCP continuation) or "single"


def capture_stem(path: str) -> str:
    """The file name without its capture suffixes ("lab.pcapng.gz" -> "lab")."""
    name = os.path.basename(path)
    for suffix in _STEM_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def expand_inputs(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Files, directories (their capture files, not recursive) and globs -> absolute paths, once each."""
    out: list[str] = []
    seen: set[str] = set()

    def add(p: str) -> None:
        a = os.path.abspath(p)
        if a not in seen:
            seen.add(a)
            out.append(a)

    for raw in paths:
        p = os.fspath(raw)
        if os.path.isdir(p):
            for name in sorted(os.listdir(p)):
                full = os.path.join(p, name)
                if os.path.isfile(full) and name.lower().endswith(CAPTURE_SUFFIXES):
                    add(full)
        elif os.path.exists(p) or not glob.has_magic(p):
            add(p)  # (a missing file is reported by the probe)
        else:
            for m in sorted(glob.glob(p)):
                if os.path.isdir(m):
                    continue
                add(m)
    return out


def ring_key(path: str) -> tuple[str, str, int] | None:
    """(directory, PREFIX + EXT, NNNNN) for a ring-buffer file name, else None."""
    m = RING_NAME.match(os.path.basename(path))
    if m is None:
        return None
    return os.path.dirname(path), m["prefix"] + m["ext"].lower(), int(m["num"])


def probe_file(path: str, chain_by: str = DEFAULT_CHAIN_BY) -> FileInfo:
    """Open a capture and read its first frame; all of it for files without a ring-buffer name
    (with ``chain_by="tcp"``, TCP-decoded, for the continuation test)."""
    from analyzer.capture import CaptureError, decode_frame, open_capture

    info = FileInfo(path, ring=ring_key(path) if chain_by != "none" else None)
    try:
        info.size = os.path.getsize(path)
    except OSError:
        pass
    try:
        reader = open_capture(path)
    except CaptureError as exc:
        info.error = str(exc)
        return info
    tcp = info.ring is None and chain_by == "tcp"
    head = info.tcp_head
    tail = info.tcp_tail
    try:
        it = iter(reader)
        for _no, ts, lt, data, _orig in it:
            if info.first_ts_ns is None:
                info.first_ts_ns = int(ts)
                if info.ring is not None:
                    break
            if not tcp:
                continue
            seg = decode_frame(lt, data)
            if seg is None:
                continue
            src, dst, sp, dp, seq, _ack, flags, _win, payload, missing = seg
            key = (src, sp, dst, dp)
            if key not in head and len(head) < TCP_KEYS:
                head[key] = seq
            end = (seq + len(payload) + missing + (1 if flags & 0x03 else 0)) & 0xFFFFFFFF  # SYN, FIN
            old = tail.pop(key, None)
            tail[key] = end if old is None or _seq_diff(end, old) > 0 else old
            if len(tail) > TCP_KEYS:
                del tail[next(iter(tail))]  # the least recently active direction
        if info.ring is None:
            info.frames = reader.frames
            info.last_ts_ns = reader.last_ts_ns if reader.frames else None
        info.format = reader.format
        info.linktypes = tuple(getattr(reader, "linktypes", ()))
    except Exception as exc:  # noqa: BLE001 - a file we cannot read is reported, never fatal
        info.error = f"{path}: {exc}"
    finally:
        reader.close()
    return info


def _seq_diff(a: int, b: int) -> int:
    d = (a - b) & 0xFFFFFFFF
    return d - 0x100000000 if d >= 0x80000000 else d


def continues_tcp(prev: FileInfo, nxt: FileInfo) -> bool:
    """True when ``nxt`` provably continues ``prev``'s TCP streams (module doc)."""
    shared = 0
    for key, seq in nxt.tcp_head.items():
        end = prev.tcp_tail.get(key)
        if end is None:
            continue
        if abs(_seq_diff(seq, end)) > SEQ_WINDOW:
            return False
        shared += 1
    return shared > 0


def _chain_id(stem: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._") or "chain"
    cid, n = base, 2
    while cid in used:
        cid = f"{base}-{n}"
        n += 1
    used.add(cid)
    return cid


def group_chains(infos: Sequence[FileInfo], max_gap_s: float = DEFAULT_MAX_GAP_S,
                 chain_by: str = DEFAULT_CHAIN_BY) -> list[Chain]:
    """Group readable files into chains (module doc). Files with errors are left out."""
    if chain_by not in CHAIN_BY:
        raise ValueError(f"chain_by must be one of {', '.join(CHAIN_BY)}, not {chain_by!r}")
    ok = [i for i in infos if i.error is None]
    used: set[str] = set()
    chains: list[Chain] = []
    rings: dict[tuple[str, str], list[FileInfo]] = {}
    others: list[FileInfo] = []
    for i in ok:
        if i.ring is not None and chain_by != "none":
            rings.setdefault((i.ring[0], i.ring[1]), []).append(i)
        else:
            others.append(i)
    for (_d, key), files in rings.items():
        files.sort(key=lambda f: f.ring[2] if f.ring else 0)
        prefix = RING_NAME.match(files[0].name)
        stem = prefix["prefix"] if prefix else key
        run: list[FileInfo] = []
        for f in files:
            prev = run[-1] if run else None
            if prev is not None and (
                (f.linktypes and prev.linktypes and f.linktypes[: len(prev.linktypes)] != prev.linktypes
                 and prev.linktypes[: len(f.linktypes)] != f.linktypes)
                or (f.first_ts_ns is not None and prev.first_ts_ns is not None and f.first_ts_ns < prev.first_ts_ns)
            ):
                chains.append(Chain(_chain_id(stem, used), run, "ring"))
                run = []
            run.append(f)
        if run:
            chains.append(Chain(_chain_id(stem, used), run, "ring"))
    others.sort(key=lambda f: (f.first_ts_ns is None, f.first_ts_ns or 0, f.path))
    open_runs: list[list[FileInfo]] = []
    gap_ns = int(max_gap_s * 1e9)
    for f in others:
        best: list[FileInfo] | None = None
        if chain_by == "tcp" and f.first_ts_ns is not None:
            for run in open_runs:
                last = run[-1]
                if (os.path.dirname(last.path) == os.path.dirname(f.path) and last.linktypes == f.linktypes
                        and last.last_ts_ns is not None and last.last_ts_ns <= f.first_ts_ns <= last.last_ts_ns + gap_ns
                        and continues_tcp(last, f)
                        and (best is None or last.last_ts_ns > (best[-1].last_ts_ns or 0))):
                    best = run
        if best is None:
            open_runs.append([f])
        else:
            best.append(f)
    for run in open_runs:
        chains.append(Chain(_chain_id(capture_stem(run[0].path), used), run, "tcp" if len(run) > 1 else "single"))
    return chains
