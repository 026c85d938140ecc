"""Batch analysis of many captures on Dask distributed: ``analyze_many`` (``iscsi-analyzer batch``).

Theory of operation
-------------------
**Chains.** Inputs (files, directories, globs) are probed in parallel and grouped into
*chains*: files that are consecutive pieces of one capture. A file named like dumpcap's ring
buffer (or ``editcap -c``) output, ``PREFIX_NNNNN_YYYYMMDDhhmmss.EXT``, belongs to the chain of
its directory, PREFIX and EXT, ordered by NNNNN; a gap in the numbers is a gap in the capture.
Other files are chained by time continuity: same directory and link types, and the file starts
at or after the previous one's last frame, at most ``max_gap_s`` later. A ring chain is split
where the link types change or time runs backwards. Unreadable files are reported and left out;
the chain goes on without them, as a gap. Frame numbers are global within a chain, as if its
files were concatenated with ``mergecap -a``.

**Where the work runs.** Each chain is one Dask task (``chain_task`` -> ``run_chain``) that
owns the chain from its first file to its last: it keeps the chain's true pipeline, runs the
state tracker, the anomaly engine and the table collection over the chain's record stream
(the sequential part, about 60% of the work on small-I/O traffic), and writes the chain's
Parquet parts itself. Independent chains therefore run their stateful passes on separate
workers. The client only schedules: at most one chain task per worker at a time, largest
chains first, pinned to a free worker; it publishes the workers running no chain as
*helpers* (a ``distributed.Variable``) and prints the progress events the chain tasks log.
A chain analyses a file itself (``ChainStitcher.add_direct``: its segments straight into the
true pipeline, exactly what a sequential run does, nothing to verify) unless a helper has
decoded it already: while helpers exist, the chain keeps ``LOOKAHEAD`` decode tasks per
helper in flight for the files after the one it is on, restricted to the helpers (never to a
worker running a chain, whose one Python thread is busy), and stitches their results. While
it waits for one it decodes a later file itself. With N chains and N workers, or one worker,
there are no helpers and no decode tasks: every file is analysed once, by its chain, with no
warm-up and nothing pickled; when chains run out, the idle workers help the ones still running.

**No deadlock.** Decode tasks are only sent to workers running no chain task, and they have a
higher priority than chain tasks, so one queued on a worker runs before a chain task the client
assigns to that worker later. A chain task that must wait for a decode result first
calls ``secede()`` to leave its worker's thread pool, so even a decode task sent to its own worker (a
helper list gone stale, or ``decode_all``) can run there. ``decode_all=True`` (tests) decodes
every file in a task on any worker and stitches it.

**Output.** The chain task writes ``OUT/<table>/chain=<id>/part-*.parquet``: the workers must
see ``OUT`` at the same path as the client (a local cluster always does; on a remote cluster
``OUT`` must be shared storage, like the captures). A chain task returns only its summary
(file reports, counts, ``CaptureInfo``); the client writes ``batch.json`` and builds the
HTML report from the dataset on disk.

**Decoding in parallel.** A decode task (``decode_file``) runs the per-packet part of the
pipeline (capture -> TCP reassembly -> PDU framing and decoding, no state machines) and
builds the file's pdus rows (final dtypes, so the chain only renumbers them, fills the
session column and writes them). It first *warms up* on the tail (``warmup_bytes``) of the
files before it in the chain, discarding what that produces, so its TCP and framer state is
normally in sync at the file boundary. Frame numbers inside a task are *positions*,
``file index << 32 | frame in the file``, so states of different tasks that saw the same
frames are equal.

**Stitching, exactly.** The chain's ``ChainStitcher`` keeps the *true* per-packet state
``P`` (a ``Pipeline`` whose tracker and anomaly engine see the merged stream) and consumes the
files in order. The state is split into *units*, one per TCP endpoint pair (both 4-tuple
keys, their flows, framers and 4-tuple reuse counts): reassembly and framing of one unit never
read another unit's state, except through global bounds (flow eviction, total out-of-order
bytes) that the stitcher checks stay out of reach. For every unit a task touched after its
boundary, the task reports a canonical image of the unit's state at the boundary
(``unit_image``: every field that can influence later output; stale fields that are always
rewritten before they are read again are left out) and the stitcher compares it with ``P``'s
image of the unit. Equal images and equal inputs give equal outputs, so the task's records
for that unit are *accepted*; otherwise the unit is *re-run*: the stitcher reads the file
again and feeds that unit's segments to ``P`` itself (records merged back in capture order).
The one input of framing that comes from the state layer, the resync DataSegmentLength bound
fed back by ``ConnectionParams``, is checked too: a unit whose framer had to resynchronise
after the boundary is accepted only if the bound in force was the default and no Login/Text
PDU could have changed it. After a file, accepted units' end states are grafted into ``P``
(dictionary orders rebuilt as the sequential run would have left them), so ``P`` is the
state a sequential run has at the end of the file. The state tracker and anomaly engine then
see exactly the record stream of a sequential run, renumbered to chain-global frames.

**Output files.** A partitioned Parquet dataset per table (``analyzer.reports.dataset``),
the HTML report of the whole set, and ``batch.json`` (chains, files, what was stitched,
re-run or analysed directly, and where the chain's time went).
"""

from __future__ import annotations

import dataclasses
import enum
import glob
import hashlib
import io
import json
import os
import pickle
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from analyzer.iscsi.framing import _DDIGEST, _HEADER, _RESYNC, PduFramer
from analyzer.pipeline import Options, Pipeline
from analyzer.records import I2T, T2I, Record, TcpClosed, TcpOpened
from analyzer.tcp.reassembly import SYN, TcpReassembler

#: Bytes of the previous files' tail a task decodes before its own file (see module doc).
DEFAULT_WARMUP_BYTES: Final = 4 * 1024 * 1024
#: pdus rows a chain holds in memory before its parts wait on disk for their session column.
SPILL_ROWS: Final = 200_000
#: At most this many previous files are read for the warm-up (tiny files).
MAX_WARMUP_FILES: Final = 16
#: Largest silence between two files chained by time continuity.
DEFAULT_MAX_GAP_S: Final = 300.0
#: File suffixes picked up from directories.
CAPTURE_SUFFIXES: Final = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz", ".cap.gz")
#: dumpcap ring buffer / ``editcap -c`` names: PREFIX_NNNNN_YYYYMMDDhhmmss.EXT
RING_NAME: Final = re.compile(r"^(?P<prefix>.+?)_(?P<num>\d{5,})_(?P<stamp>\d{14})(?P<ext>(?:\.[A-Za-z0-9]+)+)$")

_LOW: Final = 0xFFFFFFFF
_DIRS: Final = (I2T, T2I)
#: Record fields holding frame numbers (renumbered from positions to chain-global numbers).
_FRAME_FIELDS: Final = ("frame", "first_frame", "start_frame", "end_frame", "last_frame")


class NoInput(Exception):
    """No readable capture among the inputs (one line)."""


# =========================================================================== inputs and chains


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

    @property
    def name(self) -> str:
        """The file name."""
        return os.path.basename(self.path)


@dataclass
class Chain:
    """Consecutive files of one capture, in order."""

    id: str
    files: list[FileInfo]
    how: str  #: "ring" (by name) or "time" (by time continuity) or "single"


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


def probe_file(path: str) -> FileInfo:
    """Open a capture and read its first frame (all of it for files without a ring-buffer name)."""
    from analyzer.capture import CaptureError, open_capture

    info = FileInfo(path, ring=ring_key(path))
    try:
        info.size = os.path.getsize(path)
    except OSError:
        pass
    try:
        reader = open_capture(path)
    except CaptureError as exc:
        info.error = str(exc)
        return info
    try:
        it = iter(reader)
        first = next(it, None)
        if first is not None:
            info.first_ts_ns = int(first[1])
        if info.ring is None:
            for _ in it:
                pass
            info.frames = reader.frames
            info.last_ts_ns = reader.last_ts_ns if reader.frames else None
        info.format = reader.format
        info.linktypes = tuple(getattr(reader, "linktypes", ()))
    except Exception as exc:  # noqa: BLE001 - a file we cannot read is reported, never fatal
        info.error = f"{path}: {exc}"
    finally:
        reader.close()
    return info


def _chain_id(stem: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._") or "chain"
    cid, n = base, 2
    while cid in used:
        cid = f"{base}-{n}"
        n += 1
    used.add(cid)
    return cid


def group_chains(infos: Sequence[FileInfo], max_gap_s: float = DEFAULT_MAX_GAP_S) -> list[Chain]:
    """Group readable files into chains (module doc). Files with errors are left out."""
    from analyzer.api import capture_stem

    ok = [i for i in infos if i.error is None]
    used: set[str] = set()
    chains: list[Chain] = []
    rings: dict[tuple[str, str], list[FileInfo]] = {}
    others: list[FileInfo] = []
    for i in ok:
        if i.ring is not None:
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
    # Time continuity for the rest.
    others.sort(key=lambda f: (f.first_ts_ns is None, f.first_ts_ns or 0, f.path))
    open_runs: list[list[FileInfo]] = []
    gap_ns = int(max_gap_s * 1e9)
    for f in others:
        best: list[FileInfo] | None = None
        if f.first_ts_ns is not None:
            for run in open_runs:
                last = run[-1]
                if (os.path.dirname(last.path) == os.path.dirname(f.path) and last.linktypes == f.linktypes
                        and last.last_ts_ns is not None and last.last_ts_ns <= f.first_ts_ns <= last.last_ts_ns + gap_ns
                        and (best is None or last.last_ts_ns > (best[-1].last_ts_ns or 0))):
                    best = run
        if best is None:
            open_runs.append([f])
        else:
            best.append(f)
    for run in open_runs:
        chains.append(Chain(_chain_id(capture_stem(run[0].path), used), run, "time" if len(run) > 1 else "single"))
    return chains


# =========================================================================== compact record transfer


def _record_classes() -> list[type]:
    import analyzer.iscsi.pdus
    import analyzer.state.events  # noqa: F401

    out: list[type] = []
    todo = [Record]
    while todo:
        c = todo.pop()
        out.append(c)
        todo.extend(c.__subclasses__())
    return out


_DISPATCH: dict[type, Callable[[Any], Any]] = {}


def _reducer(cls: type) -> Callable[[Any], Any]:
    names = [f.name for f in dataclasses.fields(cls)]
    if len(names) == 1:
        get1 = names[0]
        return lambda r: (cls, (getattr(r, get1),))
    from operator import attrgetter

    getter = attrgetter(*names)
    return lambda r: (cls, getter(r))


def pack(obj: Any) -> bytes:
    """Pickle with records reduced to (class, field tuple): ~10x faster than their default pickling."""
    if not _DISPATCH:
        for c in _record_classes():
            if dataclasses.is_dataclass(c):
                _DISPATCH[c] = _reducer(c)
    buf = io.BytesIO()
    p = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    p.dispatch_table = _DISPATCH
    p.dump(obj)
    return buf.getvalue()


def unpack(data: bytes) -> Any:
    """The inverse of ``pack``."""
    return pickle.loads(data)


# =========================================================================== unit state images


class _WatchedFramer(PduFramer):
    """A framer that notes when it resynchronised (the only use of ``resync_max_dsl``)."""

    def _resync(self, *args: Any, **kwargs: Any) -> Any:
        log = self.__dict__.get("_batch_log")
        if log is not None:
            log.add((self.conn, self.direction))
        return super()._resync(*args, **kwargs)


class _WorkerPipeline(Pipeline):
    """The per-packet pipeline of a task: framers watched for resynchronisation."""

    def _open(self, rec: TcpOpened) -> None:
        super()._open(rec)
        for d in _DIRS:
            f = self.framers.get((rec.conn, d))
            if f is not None and type(f) is PduFramer:
                f.__class__ = _WatchedFramer
                log = self.__dict__.get("_batch_log")
                if log is not None:
                    f._batch_log = log  # type: ignore[attr-defined]


class _Watch:
    """What the watched reassembler notes: flows created (position, key) and the peak of the
    out-of-order bytes."""

    __slots__ = ("created", "peak")

    def __init__(self, peak: int) -> None:
        self.created: list[tuple[int, tuple[bytes, int, bytes, int]]] = []
        self.peak = peak


class _WatchedReassembler(TcpReassembler):
    """A task's reassembler while it decodes its own file (the class is swapped in and out)."""

    def _new_flow(self, frame: int, ts_ns: int, src: bytes, dst: bytes, sport: int, dport: int, *rest: Any,
                  **kw: Any) -> Any:
        got = super()._new_flow(frame, ts_ns, src, dst, sport, dport, *rest, **kw)
        if got is not None:
            self._batch_watch.created.append((frame, (src, sport, dst, dport)))  # type: ignore[attr-defined]
        return got

    def _segment_slow(self, *args: Any, **kw: Any) -> None:
        super()._segment_slow(*args, **kw)
        w = self._batch_watch  # type: ignore[attr-defined]
        w.peak = max(w.peak, self.total_ooo_bytes)


def _canon(v: Any) -> Any:
    t = type(v)
    if v is None or t is int or t is str or t is bool or t is float:
        return v
    if t is bytes or t is bytearray or t is memoryview:
        return ("#", len(v), hashlib.blake2b(v, digest_size=16).hexdigest())
    if t is tuple or t is list:
        return tuple(_canon(x) for x in v)
    if t is dict:
        return ("{", tuple((_canon(k), _canon(x)) for k, x in v.items()))
    if isinstance(v, enum.Enum):
        return repr(v)
    if isinstance(v, (set, frozenset)):
        return ("set", tuple(sorted(repr(_canon(x)) for x in v)))
    return _canon_obj(v, ())


def _slot_names(cls: type) -> list[str]:
    names: list[str] = []
    for c in cls.__mro__:
        s = c.__dict__.get("__slots__", ())
        names.extend([s] if isinstance(s, str) else s)
    return names


def _canon_obj(o: Any, skip: Iterable[str]) -> tuple[Any, ...]:
    skip = set(skip)
    if hasattr(o, "__dict__"):
        items = [(k, v) for k, v in vars(o).items()]
    else:
        items = [(k, getattr(o, k)) for k in _slot_names(type(o)) if hasattr(o, k)]
    return tuple((k, _canon(v)) for k, v in sorted(items) if k not in skip and not k.startswith("_batch"))


#: Flow fields that only matter before the flow carried payload or when a SYN comes again.
_FLOW_HISTORY: Final = ("syn_frame", "syn_ts", "handshake")
#: Framer fields every mode rewrites before reading, or that are only counters/inputs.
_FRAMER_ALWAYS_SKIP: Final = ("pdus", "bytes_unframed", "resync_max_dsl", "digests", "plausible_op")
_MODE_HEADER, _MODE_DDIGEST, _MODE_RESYNC = _HEADER, _DDIGEST, _RESYNC
_PER_PDU: Final = ("keep", "data_crc", "data_complete", "dsl", "hd_status", "data_left", "last_frame", "last_ts")


def _framer_skip(f: PduFramer) -> set[str]:
    skip = set(_FRAMER_ALWAYS_SKIP)
    mode = f.mode
    if mode != _MODE_RESYNC:
        skip.update(("skipped", "resync_reason"))
    if mode != _MODE_DDIGEST:
        skip.update(("data_end", "dbuf_start"))
    if mode in (_MODE_HEADER, _MODE_RESYNC):
        skip.update(_PER_PDU)
        if len(f.hbuf) < 48 and f.need == 48:
            skip.update(("cur_hd", "cur_dd"))
        if not f.hbuf:
            skip.update(("first_frame", "first_ts"))
    return skip


def unit_keys(unit: tuple[bytes, int, bytes, int]) -> tuple[tuple[bytes, int, bytes, int], tuple[bytes, int, bytes, int]]:
    """The two 4-tuple keys of a unit (an endpoint pair)."""
    a, ap, b, bp = unit
    return (a, ap, b, bp), (b, bp, a, ap)


def unit_of(src: bytes, sport: int, dst: bytes, dport: int) -> tuple[bytes, int, bytes, int]:
    """The unit (canonical endpoint pair) of a segment."""
    return (src, sport, dst, dport) if (src, sport) <= (dst, dport) else (dst, dport, src, sport)


def unit_image(flows: dict[Any, Any], reuse: dict[Any, int], framers: dict[Any, Any],
               unit: tuple[bytes, int, bytes, int]) -> tuple[Any, Any, Any]:
    """Canonical image of a unit's state: (core, history, login).

    ``core`` must be equal for a task's records to be accepted. ``history`` (ISNs, SYN frame,
    handshake) matters only when a SYN comes after the boundary or the flow has not carried
    payload yet; ``login`` (digest keys seen in a login) only when a Login/Text PDU follows.
    """
    core: list[Any] = []
    hist: list[Any] = []
    login: list[Any] = []
    for k in unit_keys(unit):
        core.append(reuse.get(k))
        e = flows.get(k)
        if e is None:
            core.append(None)
            continue
        flow, d = e
        halves = tuple(_canon_obj(h, ("isn", "sink")) for h in flow.halves)
        core.append((d, _canon_obj(flow, ("halves", "last_ts", *_FLOW_HISTORY)), halves))
        hist.append((flow.syn_frame, flow.syn_ts, flow.handshake, tuple(h.isn for h in flow.halves)))
        for dirn in _DIRS:
            fr = framers.get((flow.conn, dirn))
            if fr is None:
                core.append(None)
                continue
            ds = fr.digests
            core.append((_canon_obj(fr, _framer_skip(fr)), ds.header, ds.data))
            login.append((ds.login_header, ds.login_data))
    return tuple(core), tuple(hist), tuple(login)


# =========================================================================== the per-file task


@dataclass
class FileTask:
    """One file of a chain to decode (what a Dask task gets)."""

    chain: str
    index: int
    path: str
    prev: list[tuple[int, str]]  #: warm-up files (index in the chain, path), oldest first
    options: Options
    warmup_bytes: int = DEFAULT_WARMUP_BYTES


def _worker_options(opts: Options) -> Options:
    return dataclasses.replace(opts, state=False, anomalies=False, extra=dict(opts.extra))


def _is_login_or_text(rec: Record) -> bool:
    return type(rec).__name__ in ("LoginRequest", "LoginResponse", "TextRequest", "TextResponse")


def decode_file(task: FileTask) -> bytes:
    """Decode one file of a chain (the Dask task). Returns ``pack``ed results (see ``ChainStitcher``)."""
    return pack(decode_result(task))


def decode_result(task: FileTask) -> dict[str, Any]:
    """Decode one file of a chain after its warm-up: what ``ChainStitcher.add`` takes."""
    from analyzer.capture import CaptureError, decode_frame, iter_tcp, open_capture
    from analyzer.records import MalformedPdu, Pdu
    from analyzer.reports.dataset import PduRows

    t0 = time.perf_counter()
    pipe = _WorkerPipeline(_worker_options(task.options))
    reasm = pipe.reassembler
    rows = PduRows()
    # ---- warm-up on the tail of the previous files (records discarded). The files are read
    # as raw frames (cheaper than TCP decoding all of them); only the tail is decoded, with
    # ``decode_frame``, which gives exactly what ``iter_tcp`` gives.
    if task.prev:
        tail: deque[tuple[int, Any]] = deque()
        size = 0
        limit = task.warmup_bytes
        for idx, path in task.prev:
            base = idx << 32
            try:
                reader = open_capture(path)
            except CaptureError:
                continue
            try:
                for frame in reader:
                    tail.append((base, frame))
                    size += len(frame[3]) + 16
                    while size > limit:
                        size -= len(tail.popleft()[1][3]) + 16
            finally:
                reader.close()
        feed = pipe.feed_segment
        for base, (no, ts, lt, data, _orig) in tail:
            seg = decode_frame(lt, data)
            if seg is None:
                continue
            for r in feed(no | base, ts, *seg):
                if type(r) is TcpOpened:
                    rows.opened(r)
        del tail
    # ---- the boundary (a unit's image is taken when the file first touches it: until then
    # nothing in this file has changed it)
    flows = reasm.flows
    boundary: dict[tuple[bytes, int, bytes, int], Any] = {}
    boundary_conns: dict[str, int] = {}
    resync_log: set[tuple[str, str]] = set()
    pipe._batch_log = resync_log  # type: ignore[attr-defined]
    for framer in pipe.framers.values():
        framer._batch_log = resync_log  # type: ignore[attr-defined]
    evicted0 = reasm.evicted_flows
    segments0 = reasm.segments
    # ---- the file
    result: dict[str, Any] = {"index": task.index, "path": task.path, "error": None}
    try:
        reader = open_capture(task.path)
    except CaptureError as exc:
        result["error"] = str(exc)
        return result
    units: dict[tuple[bytes, int, bytes, int], int] = {}
    unit_list: list[tuple[bytes, int, bytes, int]] = []
    key_unit: dict[tuple[bytes, int, bytes, int], int] = {}
    groups: list[tuple[int, int, list[Record]]] = []
    syn_units: set[int] = set()
    login_units: set[int] = set()
    syn_segments = 0
    watch = _Watch(reasm.total_ooo_bytes)
    reasm.__class__ = _WatchedReassembler
    reasm._batch_watch = watch  # type: ignore[attr-defined]
    base = task.index << 32
    feed = pipe.feed_segment
    first_ts: int | None = None
    try:
        for fr, ts, src, dst, sp, dp, seq, ack, fl, win, pl, miss in iter_tcp(reader):
            pos = fr | base
            key = (src, sp, dst, dp)
            u = key_unit.get(key)
            if u is None:
                unit = key if (src, sp) <= (dst, dp) else (dst, dp, src, sp)
                u = units.get(unit)
                if u is None:
                    # First touch of the unit in this file: its state is still the boundary state.
                    u = units[unit] = len(unit_list)
                    unit_list.append(unit)
                    boundary[unit] = unit_image(flows, reasm._reuse, pipe.framers, unit)
                    for k in unit_keys(unit):
                        e = flows.get(k)
                        if e is not None:
                            boundary_conns[e[0].conn] = u
                    if first_ts is None:
                        first_ts = ts
                key_unit[key] = u
            recs = feed(pos, ts, src, dst, sp, dp, seq, ack, fl, win, pl, miss)
            if fl & SYN:
                syn_units.add(u)
                syn_segments += 1
            if recs:
                groups.append((pos, u, recs))
                for r in recs:
                    tr = type(r)
                    if tr is TcpOpened:
                        rows.opened(r)
                    elif isinstance(r, (Pdu, MalformedPdu)):
                        rows.add(r, pos, u)
                        if _is_login_or_text(r):
                            login_units.add(u)
    finally:
        reader.close()
    reasm.__class__ = TcpReassembler
    del reasm._batch_watch  # type: ignore[attr-defined]
    fed = reasm.segments != segments0
    last_seg = (pipe.last_frame, pipe.last_ts) if fed else None
    creations = [(p, units[unit_of(*k)]) for p, k in watch.created]
    peak_ooo = watch.peak
    # ---- what the stitcher needs
    pos_of = {k: i for i, k in enumerate(flows)}
    images: dict[int, Any] = {}
    end: dict[int, Any] = {}
    for unit, u in units.items():
        images[u] = boundary[unit]
        ent_flows = []
        ent_framers = []
        endpoints = {}
        for k in unit_keys(unit):
            e = flows.get(k)
            if e is None:
                continue
            ent_flows.append((k, e, pos_of[k]))
            conn = e[0].conn
            for dirn in _DIRS:
                f = pipe.framers.get((conn, dirn))
                if f is not None and ((conn, dirn), f) not in ent_framers:
                    ent_framers.append(((conn, dirn), f))
            if conn in pipe.endpoints:
                endpoints[conn] = pipe.endpoints[conn]
        end[u] = {
            "flows": ent_flows,
            "reuse": {k: reasm._reuse[k] for k in unit_keys(unit) if k in reasm._reuse},
            "framers": ent_framers,
            "endpoints": endpoints,
        }
    # Framers that resynchronised after the boundary (closed ones included), by unit.
    conn_unit = dict(boundary_conns)
    for _pos, u, recs in groups:
        for r in recs:
            if type(r) is TcpOpened:
                conn_unit[r.conn] = u
    resynced: dict[int, list[tuple[str, str]]] = {}
    for conn, dirn in sorted(resync_log):
        resynced.setdefault(conn_unit.get(conn, -1), []).append((conn, dirn))
    for f in pipe.framers.values():
        f.__dict__.pop("_batch_log", None)
    result.update(
        frames=reader.frames,
        format=reader.format,
        bytes=reader.bytes,
        non_tcp=reader.non_tcp,
        truncated=reader.truncated,
        damage=[d.message for d in reader.damage],
        first_ts=first_ts,
        last_ts=reader.last_ts_ns if reader.frames else None,
        last_seg=last_seg,
        units=unit_list,
        groups=groups,
        images=images,
        end=end,
        creations=creations,
        syn_units=syn_units,
        login_units=login_units,
        syn_segments=syn_segments,
        resynced=resynced,
        peak_ooo=peak_ooo,
        evicted=reasm.evicted_flows != evicted0,
        segments=reasm.segments - segments0,
        pdus=rows.frame(),
        seconds=time.perf_counter() - t0,
    )
    return result


# =========================================================================== stitching (driver side)


class _StatePass:
    """The tracker seat of the stitcher's pipeline: renumbers records to chain-global frames
    before the state tracker (and the anomaly engine after it) sees them, and follows the
    framers' resync bound as ``Pipeline._apply_feedback`` sets it."""

    def __init__(self, st: ChainStitcher, tracker: Any) -> None:
        self.st = st
        self.tracker = tracker

    def feed(self, r: Record) -> list[Record]:
        st = self.st
        st.renumber(r)
        if isinstance(r, TcpOpened):
            for d in _DIRS:
                st.shadow[(r.conn, d)] = st.w_dsl
            st.opened_log.append(r.conn)
        elif isinstance(r, TcpClosed):
            for d in _DIRS:
                st.shadow.pop((r.conn, d), None)
        if self.tracker is None:
            return []
        added: list[Record] = self.tracker.feed(r)
        for a in added:
            if type(a).__name__ == "ConnectionParams":
                st.feedback(a)
        return added

    def finish(self, ts_ns: int) -> list[Record]:
        if self.tracker is None:
            return []
        out: list[Record] = self.tracker.finish(ts_ns)
        return out


@dataclass
class FileReport:
    """How one file went (``batch.json``)."""

    index: int
    path: str
    frames: int = 0
    pdus: int = 0
    seconds: float = 0.0
    units: int = 0
    rerun_units: int = 0
    error: str | None = None
    damage: list[str] = field(default_factory=list)
    direct: bool = False  #: analysed by the chain itself (no task result to stitch)
    chain_seconds: float = 0.0  #: time the chain spent on the file (stitching, or analysing it)
    waited: float = 0.0  #: time the chain waited for the file's decode task


class ChainStitcher:
    """Merges the decoded files of one chain, in order, into one exact record stream (module doc)."""

    def __init__(self, chain: Chain, options: Options, out_dir: str | os.PathLike[str] | None,
                 limits: Any = None) -> None:
        from analyzer.reports.dataset import BatchCollector

        self.chain = chain
        self.options = options
        wopts = _worker_options(options)
        self.w_dsl = wopts.resync_max_dsl
        self.P = Pipeline(wopts)
        tracker = engine = None
        if options.state or options.anomalies:
            from analyzer.pipeline import _make_detectors, _make_tracker

            tracker = _make_tracker(options)
            if options.anomalies and tracker is not None:
                engine = _make_detectors(options)
        self.P.tracker = _StatePass(self, tracker)
        self.P.detectors = engine
        self.collector = BatchCollector(limits)
        self.out_dir = out_dir
        self.counts: list[int] = []
        self.offsets: list[int] = [0]
        self._off_arr: Any = None
        self.shadow: dict[tuple[str, str], int] = {}
        self.opened_log: list[str] = []
        self.reports: list[FileReport] = []
        self.spills: list[tuple[int, Any]] = []
        self.held_rows = 0
        self.capture: dict[str, Any] = {"frames": 0, "bytes": 0, "non_tcp": 0, "truncated_frames": 0,
                                        "damage": [], "first_ts_ns": None, "last_ts_ns": None, "format": ""}
        self.next_index = 0
        self.rerun_units = 0
        self.units = 0
        self.direct_files = 0
        self.finished: Any = None

    # ------------------------------------------------------------------ frame numbers

    def renumber(self, r: Record) -> None:
        """Frame positions (``index << 32 | frame``) of a record -> chain-global frame numbers, in place."""
        names = _FIELDS_OF.get(type(r))
        if names is None:
            names = _FIELDS_OF[type(r)] = tuple(
                f.name for f in dataclasses.fields(r) if f.name in _FRAME_FIELDS)  # type: ignore[arg-type,unused-ignore]
        offs = self.offsets
        for n in names:
            v = getattr(r, n)
            if type(v) is int and v > _LOW:
                object.__setattr__(r, n, offs[v >> 32] + (v & _LOW))

    def feedback(self, rec: Any) -> None:
        """``Pipeline._apply_feedback`` on the shadow of the framers' resync bound."""
        for d, attr in ((I2T, "max_recv_dsl_target"), (T2I, "max_recv_dsl_initiator")):
            value = getattr(rec, attr, None)
            if (rec.conn, d) in self.shadow and isinstance(value, int) and value > 0:
                self.shadow[(rec.conn, d)] = max(value, 8192)

    # ------------------------------------------------------------------ files

    def _set_count(self, index: int, frames: int) -> None:
        import numpy as np

        while len(self.counts) < index:
            self.counts.append(0)
            self.offsets.append(self.offsets[-1])
        self.counts.append(frames)
        self.offsets.append(self.offsets[-1] + frames)
        self._off_arr = np.asarray(self.offsets, dtype="int64")

    def skip(self, index: int, path: str, error: str) -> FileReport:
        """File ``index`` could not be decoded: the chain goes on without it (a gap)."""
        assert index == self.next_index
        self._set_count(index, 0)
        self.next_index += 1
        rep = FileReport(index, path, error=error)
        self.reports.append(rep)
        return rep

    def add(self, res: dict[str, Any]) -> FileReport:
        """Stitch the next file's task result (files must come in chain order)."""
        from analyzer.reports import dataset

        k = res["index"]
        assert k == self.next_index, (k, self.next_index)
        if res.get("error"):
            return self.skip(k, res["path"], res["error"])
        self.next_index += 1
        self._set_count(k, res["frames"])
        self._account(k, res["frames"], res["bytes"], res["non_tcp"], res["truncated"], res["damage"],
                      res["format"], res["first_ts"], res["last_ts"])
        P = self.P
        R = P.reassembler
        units: list[tuple[bytes, int, bytes, int]] = res["units"]
        rerun = self._decide(res)
        self.units += len(units)
        self.rerun_units += len(rerun)
        # ---- the merged record stream of this file
        boundary_keys = list(R.flows)
        boundary_fkeys = list(P.framers)
        acc_conns: set[str] = set()
        for u, unit in enumerate(units):
            if u not in rerun:
                for key in unit_keys(unit):
                    e = R.flows.get(key)
                    if e is not None:
                        acc_conns.add(e[0].conn)
        self.opened_log = []
        coll = self.collector
        post = P._post
        rerun_creations: list[tuple[int, tuple[bytes, int, bytes, int]]] = []
        groups = res["groups"]
        if not rerun:
            for _pos, _u, recs in groups:
                for r in recs:
                    if type(r) is TcpOpened:
                        acc_conns.add(r.conn)
                for r in post(recs):
                    coll.feed(r)
        else:
            rerun_set = {units[u] for u in rerun}
            rerun_creations = self._walk(res, rerun, rerun_set, acc_conns)
        res["groups"] = None
        if res["last_seg"] is not None:
            P.last_frame, P.last_ts = res["last_seg"]
        self._graft(res, rerun, boundary_keys, boundary_fkeys, acc_conns, rerun_creations)
        # ---- the file's pdus part
        local = coll.take_local()
        df = dataset.file_pdus(res["pdus"], rerun, local, self._off_arr)
        res["pdus"] = None
        rep = FileReport(k, res["path"], frames=res["frames"], pdus=len(df), seconds=res["seconds"],
                         units=len(units), rerun_units=len(rerun), damage=list(res["damage"]))
        self._keep_part(k, df)
        self.reports.append(rep)
        return rep

    def add_direct(self, index: int, path: str) -> FileReport:
        """Analyse the next file here, feeding its segments to the true pipeline (no task result:
        what a sequential run does; the cheapest way when no other worker decoded the file)."""
        from analyzer.capture import CaptureError, iter_tcp, open_capture
        from analyzer.reports import dataset

        assert index == self.next_index, (index, self.next_index)
        t0 = time.perf_counter()
        try:
            reader = open_capture(path)
        except CaptureError as exc:
            return self.skip(index, path, str(exc))
        self.next_index += 1
        self.opened_log = []
        P = self.P
        feed = P.feed_segment
        feed_local = self.collector.feed_local
        base = index << 32
        first_ts: int | None = None
        try:
            for fr, ts, src, dst, sp, dp, seq, ack, fl, win, pl, miss in iter_tcp(reader):
                pos = fr | base
                if first_ts is None:
                    first_ts = ts
                for r in feed(pos, ts, src, dst, sp, dp, seq, ack, fl, win, pl, miss):
                    feed_local(r, pos)
        finally:
            reader.close()
        self._set_count(index, reader.frames)
        damage = [d.message for d in reader.damage]
        self._account(index, reader.frames, reader.bytes, reader.non_tcp, reader.truncated, damage,
                      reader.format, first_ts, reader.last_ts_ns if reader.frames else None)
        df = dataset.file_pdus(None, (), self.collector.take_local(), self._off_arr)
        rep = FileReport(index, path, frames=reader.frames, pdus=len(df), seconds=time.perf_counter() - t0,
                         damage=damage, direct=True)
        self.direct_files += 1
        self._keep_part(index, df)
        self.reports.append(rep)
        return rep

    def _account(self, k: int, frames: int, nbytes: int, non_tcp: int, truncated: int, damage: list[str],
                 fmt: str, first_ts: int | None, last_ts: int | None) -> None:
        cap = self.capture
        cap["frames"] += frames
        cap["bytes"] += nbytes
        cap["non_tcp"] += non_tcp
        cap["truncated_frames"] += truncated
        cap["damage"].extend(damage)
        cap["format"] = cap["format"] or fmt
        first = self.chain.files[k].first_ts_ns if k < len(self.chain.files) else first_ts
        if first is not None and cap["first_ts_ns"] is None:
            cap["first_ts_ns"] = first
        if last_ts is not None:
            cap["last_ts_ns"] = last_ts

    def _keep_part(self, k: int, df: Any) -> None:
        from analyzer.reports import dataset

        if self.out_dir is None:
            return  # (no dataset: the rows are only counted)
        self.spills.append((k, df))
        self.held_rows += len(df)
        if self.held_rows > SPILL_ROWS:
            # Bound memory: pdus parts wait on disk for their session column (known at the chain's end).
            for i, (kk, part) in enumerate(self.spills):
                if isinstance(part, Path):
                    continue
                spill = dataset.part_path(self.out_dir, "pdus", self.chain.id, kk).with_suffix(".spill")
                dataset.write_spill(part, spill)
                self.spills[i] = (kk, spill)
            self.held_rows = 0

    def _decide(self, res: dict[str, Any]) -> set[int]:
        """Units whose task records cannot be taken as they are (re-run by the stitcher)."""
        P = self.P
        R = P.reassembler
        units = res["units"]
        opts = P.options
        everything = set(range(len(units)))
        if -1 in res["resynced"] or res["evicted"]:
            return everything
        if len(R.flows) + 2 * (len(units) + res["syn_segments"]) + 2 >= 2 * opts.max_flows:
            return everything
        rerun: set[int] = set()
        for u, unit in enumerate(units):
            core, hist, login = unit_image(R.flows, R._reuse, P.framers, unit)
            w_core, w_hist, w_login = res["images"][u]
            ok = core == w_core
            if ok and (u in res["syn_units"] or any(
                    (e := R.flows.get(k)) is not None and not e[0].opened for k in unit_keys(unit))):
                ok = hist == w_hist
            if ok and u in res["login_units"]:
                ok = login == w_login
            if ok:
                for conn, d in res["resynced"].get(u, ()):
                    if u in res["login_units"] or self.shadow.get((conn, d), self.w_dsl) != self.w_dsl:
                        ok = False
            if not ok:
                if os.environ.get("ISCSI_ANALYZER_BATCH_DEBUG"):
                    _debug_diff(res, u, (core, hist, login))
                rerun.add(u)
        worst = R.total_ooo_bytes + res["peak_ooo"] + len(rerun) * 2 * (opts.max_ooo_bytes + 65536)
        if worst > opts.max_total_ooo_bytes:
            return everything
        return rerun

    def _walk(self, res: dict[str, Any], rerun: set[int], rerun_set: set[Any], acc_conns: set[str]
              ) -> list[tuple[int, tuple[bytes, int, bytes, int]]]:
        """Read the file again: re-run units' segments go through the true pipeline, the other
        units' records are taken from the task, all in capture order."""
        from analyzer.capture import iter_tcp, open_capture

        P = self.P
        flows = P.reassembler.flows
        coll = self.collector
        groups = res["groups"]
        n = len(groups)
        gi = 0
        base = res["index"] << 32
        creations: list[tuple[int, tuple[bytes, int, bytes, int]]] = []
        reader = open_capture(res["path"])
        try:
            for fr, ts, src, dst, sp, dp, seq, ack, fl, win, pl, miss in iter_tcp(reader):
                pos = fr | base
                while gi < n and groups[gi][0] < pos:
                    gi += 1  # (cannot happen: every group has its segment)
                unit = (src, sp, dst, dp) if (src, sp) <= (dst, dp) else (dst, dp, src, sp)
                if unit in rerun_set:
                    key = (src, sp, dst, dp)
                    before = flows.get(key)
                    out = P.feed_segment(pos, ts, src, dst, sp, dp, seq, ack, fl, win, pl, miss)
                    flows = P.reassembler.flows
                    after = flows.get(key)
                    if (after[0] if after else None) is not (before[0] if before else None):
                        creations.append((pos, unit))
                    for r in out:
                        coll.feed_local(r, pos)
                    if gi < n and groups[gi][0] == pos:
                        gi += 1
                elif gi < n and groups[gi][0] == pos:
                    recs = groups[gi][2]
                    gi += 1
                    for r in recs:
                        if type(r) is TcpOpened:
                            acc_conns.add(r.conn)
                    for r in P._post(recs):
                        coll.feed(r)
        finally:
            reader.close()
        return creations

    def _graft(self, res: dict[str, Any], rerun: set[int], boundary_keys: list[Any], boundary_fkeys: list[Any],
               acc_conns: set[str], rerun_creations: list[tuple[int, Any]]) -> None:
        """Put accepted units' end states into the true pipeline, in the orders a sequential run leaves."""
        P = self.P
        R = P.reassembler
        units = res["units"]
        vals = dict(R.flows)
        positions: dict[Any, tuple[int, int]] = {}
        reinserted: dict[Any, tuple[int, int]] = {}
        es_framers: dict[tuple[str, str], Any] = {}
        live_pos = {k: i for i, k in enumerate(R.flows)}
        last_creation: dict[int, int] = {}
        for pos, u in res["creations"]:
            last_creation[u] = pos
        for u, unit in enumerate(units):
            if u in rerun:
                continue
            es = res["end"][u]
            for key in unit_keys(unit):
                vals.pop(key, None)
                if key in es["reuse"]:
                    R._reuse[key] = es["reuse"][key]
                else:
                    R._reuse.pop(key, None)
            for key, entry, wpos in es["flows"]:
                vals[key] = entry
                positions[key] = (0, wpos)
                if u in last_creation:
                    reinserted[key] = (last_creation[u], wpos)
            for fkey, f in es["framers"]:
                f.resync_max_dsl = self.shadow.get(fkey, self.w_dsl)
                es_framers[fkey] = f
                acc_conns.add(fkey[0])
            P.endpoints.update(es["endpoints"])
        for pos, unit in rerun_creations:
            for key in unit_keys(unit):
                if key in R.flows:
                    reinserted[key] = (pos, live_pos[key])
        order = [k for k in boundary_keys if k in vals and k not in reinserted]
        order += sorted((k for k in reinserted if k in vals), key=lambda k: reinserted[k])
        seen = set(order)
        order += [k for k in vals if k not in seen]  # (defensive: nothing should be left)
        R.flows = {k: vals[k] for k in order}
        flows_seen: dict[int, Any] = {}
        for flow, _d in R.flows.values():
            flows_seen[id(flow)] = flow
        R.total_ooo_bytes = sum(h.ooo_bytes for f in flows_seen.values() for h in f.halves)
        R.segments += res["segments"]
        # framers: boundary ones still alive, then the ones opened in this file, in opening order
        reopened = set(self.opened_log)
        fvals: dict[tuple[str, str], Any] = {}

        def value(fk: tuple[str, str]) -> Any:
            return es_framers.get(fk) if fk[0] in acc_conns else P.framers.get(fk)

        for fk in boundary_fkeys:
            if fk[0] in reopened:
                continue
            v = value(fk)
            if v is not None:
                fvals[fk] = v
        for conn in self.opened_log:
            for d in _DIRS:
                v = value((conn, d))
                if v is not None:
                    fvals[(conn, d)] = v
        P.framers = fvals

    # ------------------------------------------------------------------ the end

    def finish(self) -> dict[str, Any]:
        """End of the chain: flush the pipeline, write the chain's tables; returns its summary."""
        from analyzer.reports import dataset

        P = self.P
        for r in P.finish():
            self.collector.feed_local(r, -1)
        collected = self.collector.finish()
        conn_session = self.collector.conn_sessions()
        # PDUs flushed at the end of the chain (cut short by its end) close its last part.
        tail = dataset.file_pdus(None, (), self.collector.take_local(), self._off_arr)
        if len(tail) and self.out_dir is not None:
            if self.spills:
                k, last = self.spills[-1]
                self.spills[-1] = (k, (last, tail))
            else:
                self.spills.append((0, (None, tail)))
        pdus_rows = 0
        parts: list[Any] = []
        for k, spill in self.spills:
            extra = None
            if isinstance(spill, tuple):
                spill, extra = spill
            if self.out_dir is not None:
                path = dataset.part_path(self.out_dir, "pdus", self.chain.id, k)
                _p, n = dataset.finish_pdus_part(spill, conn_session, path, extra)
                pdus_rows += n
            else:
                parts.append(dataset.finish_pdus_frame(spill, conn_session, extra))
        self.spills = []
        written = []
        if self.out_dir is not None:
            written = dataset.write_chain_tables(collected, self.out_dir, self.chain.id)
        self.finished = collected
        return {"collected": collected, "pdus": parts, "conn_session": conn_session, "written": written,
                "pdu_rows": pdus_rows}


_FIELDS_OF: dict[type, tuple[str, ...]] = {}


def _debug_diff(res: dict[str, Any], u: int, mine: tuple[Any, Any, Any]) -> None:
    theirs = res["images"][u]
    for name, a, b in zip(("core", "hist", "login"), mine, theirs, strict=True):
        if a != b:
            print(f"batch debug: {res['path']} unit {u} {name} differs:\n  true: {a!r}\n  task: {b!r}",
                  file=sys.stderr)


# =========================================================================== the chain task


#: Decode tasks kept in flight per helper worker (bounds the decoded results waiting in memory).
LOOKAHEAD: Final = 2
#: Dask priorities: decode tasks run before chain tasks queued on the same worker.
_DECODE_PRIORITY: Final = 1_000_000
_CHAIN_PRIORITY: Final = 0


@dataclass
class ChainJob:
    """What a chain task gets: one chain to analyse from its first file to its last."""

    chain: Chain
    options: Options
    out_dir: str | None
    limits: Any = None
    warmup_bytes: int = DEFAULT_WARMUP_BYTES
    run: str = ""  #: Dask run id: progress topic and helper-list variable ("" = in this process)
    lookahead: int = LOOKAHEAD
    #: every file decoded by a task (on any worker) and stitched, none analysed by the chain itself
    #: (``analyze_many(decode_all=True)``: the tests check the stitching on every split this way)
    decode_all: bool = False


def _topic(run: str) -> str:
    return f"iscsi-analyzer-batch-{run}"


class _InProcess:
    """What a chain sees of the cluster when it runs in this process: no helpers."""

    def __init__(self, emit: Callable[[dict[str, Any]], None] | None) -> None:
        self._emit = emit

    def helpers(self) -> list[str]:
        return []

    def submit(self, task: FileTask, workers: list[str] | None) -> Any:
        return _Sync._Done(decode_result, (task,))  # (decode_all only)

    def ready(self, fut: Any) -> bool:
        return True

    def result(self, fut: Any) -> dict[str, Any]:
        out: dict[str, Any] = fut.result()
        return out

    def release(self, fut: Any) -> None:
        pass

    def emit(self, msg: dict[str, Any]) -> None:
        if self._emit is not None:
            self._emit(msg)


class _OnCluster(_InProcess):
    """What a chain task sees of the cluster: the helper workers (those running no chain, as
    the client publishes them in a ``distributed.Variable``) and the progress topic."""

    def __init__(self, run: str) -> None:
        from distributed import Variable, get_client, get_worker

        super().__init__(None)
        self.client = get_client()
        self.worker = get_worker()
        self.topic = _topic(run)
        self.var = Variable(self.topic + "-helpers", self.client)  # type: ignore[no-untyped-call]
        self.seceded = False

    def helpers(self) -> list[str]:
        try:
            got = self.var.get(timeout=10)  # type: ignore[no-untyped-call]
        except Exception:  # noqa: BLE001 - no helpers known: the chain does the work itself
            return []
        me = self.worker.address
        return [w for w in (got or ()) if w != me]

    def submit(self, task: FileTask, workers: list[str] | None) -> Any:
        # Loose restriction: only if every listed helper has gone does the task run elsewhere.
        return self.client.submit(decode_file, task, pure=False, workers=workers,
                                  allow_other_workers=workers is not None, priority=_DECODE_PRIORITY - task.index)

    def ready(self, fut: Any) -> bool:
        return bool(fut.done())

    def result(self, fut: Any) -> dict[str, Any]:
        if not fut.done() and not self.seceded:
            # Waiting must never hold a thread of this worker (module doc: no deadlock).
            from distributed import secede

            secede()  # type: ignore[no-untyped-call]
            self.seceded = True
        out: dict[str, Any] = unpack(fut.result())
        return out

    def release(self, fut: Any) -> None:
        fut.release()

    def emit(self, msg: dict[str, Any]) -> None:
        self.worker.log_event(self.topic, msg)


def _file_task(job: ChainJob, i: int) -> FileTask:
    files = job.chain.files
    prev: list[tuple[int, str]] = []
    acc = 0
    j = i - 1
    while j >= 0 and acc < job.warmup_bytes and len(prev) < MAX_WARMUP_FILES:
        prev.insert(0, (j, files[j].path))
        acc += max(files[j].size, 1)
        j -= 1
    return FileTask(job.chain.id, i, files[i].path, prev, job.options, job.warmup_bytes)


def _failed_result(task: FileTask, exc: BaseException) -> dict[str, Any]:
    return {"index": task.index, "path": task.path, "error": f"{task.path}: {type(exc).__name__}: {exc}"}


def run_chain(job: ChainJob, side: Any = None) -> dict[str, Any]:
    """Analyse one chain, in order, writing its dataset parts; returns its summary (module doc).

    ``side`` is how the chain reaches the cluster (``_OnCluster`` inside a chain task); by
    default the chain runs alone in this process and analyses every file itself.
    """
    from analyzer.reports import dataset

    side = side if side is not None else _InProcess(None)
    t0 = time.perf_counter()
    chain = job.chain
    files = chain.files
    n = len(files)
    st = ChainStitcher(chain, job.options, job.out_dir, job.limits)
    held: dict[int, tuple[str, Any]] = {}  # file index -> ("future", decode future) | ("result", dict)
    nxt = 0  # the lowest file index nobody has claimed yet (analysed here, submitted or decoded here)
    inflight = 0
    while st.next_index < n:
        i = st.next_index
        helpers: list[str] | None
        if job.decode_all:
            direct = False
            helpers, want = None, 2 * job.lookahead
        else:
            direct = i not in held
            nxt = max(nxt, i + 1)
            helpers = side.helpers() if nxt < n else []
            want = job.lookahead * len(helpers)
        while nxt < n and inflight < want:
            held[nxt] = ("future", side.submit(_file_task(job, nxt), helpers))
            inflight += 1
            nxt += 1
        waited = 0.0
        if direct:
            t = time.perf_counter()
            rep = st.add_direct(i, files[i].path)
        else:
            kind, value = held.pop(i)
            if kind == "future":
                # Help while the file is decoded elsewhere: decode a later one here.
                while not side.ready(value) and nxt < n and nxt - i <= want + 1:
                    task = _file_task(job, nxt)
                    try:
                        held[nxt] = ("result", decode_result(task))
                    except Exception as exc:  # noqa: BLE001 - a file that fails is skipped
                        held[nxt] = ("result", _failed_result(task, exc))
                    nxt += 1
                t = time.perf_counter()
                try:
                    res = side.result(value)
                except Exception as exc:  # noqa: BLE001 - a task that failed is a skipped file
                    res = _failed_result(_file_task(job, i), exc)
                side.release(value)
                inflight -= 1
                waited = time.perf_counter() - t
            else:
                res = value
            t = time.perf_counter()
            rep = st.add(res)
            del res
        rep.chain_seconds = time.perf_counter() - t
        rep.waited = waited
        side.emit({"kind": "file", "chain": chain.id, "report": dataclasses.asdict(rep)})
    fin = st.finish()
    col = fin["collected"]
    tables = dataset.chain_tables(col)
    summary = {
        "id": chain.id, "how": chain.how, "reports": st.reports, "frames": st.capture["frames"],
        "pdus": col.stats.get("pdus_seen", 0), "sessions": len(tables["sessions"]), "tasks": len(tables["tasks"]),
        "anomalies": len(tables["anomalies"]), "rerun_units": st.rerun_units, "units": st.units,
        "direct_files": st.direct_files, "capture": _chain_capture_info(chain, st, col, job.options),
        "seconds": time.perf_counter() - t0,
    }
    return summary


def chain_task(job: ChainJob) -> bytes:
    """The Dask task of one chain: ``run_chain`` on a worker, helped by the other workers."""
    return pack(run_chain(job, _OnCluster(job.run)))


# =========================================================================== orchestration


@dataclass
class ChainResult:
    """One chain of a batch run."""

    id: str
    how: str
    files: list[FileReport]
    frames: int
    pdus: int
    sessions: int
    tasks: int
    anomalies: int
    rerun_units: int
    units: int
    capture: Any = None  #: ``CaptureInfo`` of the chain
    direct_files: int = 0  #: files the chain analysed itself (no task result stitched)
    seconds: float = 0.0
    error: str | None = None  #: the chain failed (a bug): its files are in ``BatchResult.failed``


@dataclass
class BatchResult:
    """What ``analyze_many`` did (also written to ``DIR/batch.json``)."""

    out_dir: str | None
    chains: list[ChainResult]
    failed: list[tuple[str, str]]  #: (path, message) of files that could not be read
    html: str | None
    seconds: float
    workers: int
    scheduler: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = dataclasses.asdict(self)
        for c in d["chains"]:
            c.pop("capture", None)
        return d


#: ``progress(message)``: one line for people (stderr in the CLI).
ProgressFn = Callable[[str], None]


class _Sync:
    """A stand-in for a Dask client that runs tasks in this process (``workers=0``; tests)."""

    class _Done:
        def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
            try:
                self._value, self._exc = fn(*args), None
            except Exception as exc:  # noqa: BLE001
                self._value, self._exc = None, exc

        def result(self) -> Any:
            if self._exc is not None:
                raise self._exc
            return self._value

    def submit(self, fn: Callable[..., Any], *args: Any, **_kw: Any) -> Any:
        return self._Done(fn, args)


def _connect(scheduler: str | None, workers: int | None) -> tuple[Any, Any, str, int]:
    if workers == 0 and scheduler is None:
        return _Sync(), None, "in-process", 0
    import logging

    from distributed import Client, LocalCluster

    if scheduler is not None:
        client = Client(scheduler)  # type: ignore[no-untyped-call]
        n = len(client.scheduler_info().get("workers", {}))
        return client, None, scheduler, n
    n = workers or os.cpu_count() or 1
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,  # type: ignore[no-untyped-call]
                           dashboard_address=None, silence_logs=logging.ERROR)
    client = Client(cluster)  # type: ignore[no-untyped-call]
    return client, cluster, f"LocalCluster({n} worker processes)", n


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


class _Progress:
    """The client's progress lines (one per file as its chain finishes it, one per chain)."""

    def __init__(self, say: ProgressFn, chains: list[Chain], t0: float, failed: list[tuple[str, str]]) -> None:
        self.say = say
        self.t0 = t0
        self.failed = failed
        self.n_files = sum(len(c.files) for c in chains)
        self.total = sum(f.size for c in chains for f in c.files)
        self.sizes = {(c.id, i): f.size for c in chains for i, f in enumerate(c.files)}
        self.files = 0
        self.bytes = 0
        self.seen: set[tuple[str, int]] = set()

    def file(self, chain: str, rep: FileReport) -> None:
        key = (chain, rep.index)
        if key in self.seen:
            return
        self.seen.add(key)
        self.files += 1
        self.bytes += self.sizes.get(key, 0)
        head = (f"[{self.files}/{self.n_files} files, {_mb(self.bytes)}/{_mb(self.total)}, "
                f"{time.perf_counter() - self.t0:.1f} s] {chain}")
        name = os.path.basename(rep.path)
        if rep.error:
            self.failed.append((rep.path, rep.error))
            self.say(f"{head}: skipped {name}: {rep.error}")
            return
        how = (f"analysed by the chain in {rep.chain_seconds:.1f} s" if rep.direct else
               f"decoded in {rep.seconds:.1f} s, stitched in {rep.chain_seconds:.1f} s"
               + (f" after waiting {rep.waited:.1f} s" if rep.waited >= 0.05 else "")
               + (f", {rep.rerun_units}/{rep.units} streams re-run" if rep.rerun_units else ""))
        self.say(f"{head}: {name}: {rep.frames:,} frames, {rep.pdus:,} PDUs ({how})")
        for d in rep.damage:
            self.say(f"batch: warning: {d}")

    def event(self, msg: Any) -> None:
        if isinstance(msg, dict) and msg.get("kind") == "file":
            self.file(msg["chain"], FileReport(**msg["report"]))

    def chain(self, r: ChainResult) -> None:
        for rep in r.files:
            self.file(r.id, rep)  # (lines whose event has not arrived yet)
        if r.error:
            self.say(f"batch: chain {r.id} failed: {r.error}")
            return
        self.say(f"batch: chain {r.id} done: {r.frames:,} frames, {r.sessions} session(s), "
                 f"{r.tasks:,} tasks, {r.anomalies} anomalies ({r.seconds:.1f} s)")


def _chain_result(summary: dict[str, Any]) -> ChainResult:
    return ChainResult(
        summary["id"], summary["how"], summary["reports"], summary["frames"], summary["pdus"],
        summary["sessions"], summary["tasks"], summary["anomalies"], summary["rerun_units"], summary["units"],
        summary["capture"], summary["direct_files"], summary["seconds"])


def _failed_chain(c: Chain, exc: BaseException) -> ChainResult:
    msg = f"{type(exc).__name__}: {exc}"
    reports = [FileReport(i, f.path, error=f"chain {c.id} failed: {msg}") for i, f in enumerate(c.files)]
    return ChainResult(c.id, c.how, reports, 0, 0, 0, 0, 0, 0, 0, None, error=msg)


def _run_chains(client: Any, jobs: list[ChainJob], prog: _Progress) -> list[ChainResult]:
    """Chain tasks on the cluster: one per worker at a time, largest chains first; the
    workers running no chain are published as helpers (module doc)."""
    import queue
    import uuid

    from distributed import Variable, wait

    run = uuid.uuid4().hex[:16]
    topic = _topic(run)
    events: queue.Queue[Any] = queue.Queue()
    client.subscribe_topic(topic, lambda ev: events.put(ev[1]))
    var = Variable(topic + "-helpers", client)  # type: ignore[no-untyped-call]
    workers = sorted(client.scheduler_info().get("workers", {}))
    if not workers:
        client.wait_for_workers(1)
        workers = sorted(client.scheduler_info().get("workers", {}))
    for j in jobs:
        j.run = run
    todo = sorted(range(len(jobs)), key=lambda k: -sum(f.size for f in jobs[k].chain.files))
    hosts: dict[str, int] = {}
    running: dict[Any, tuple[int, str]] = {}
    results: dict[int, ChainResult] = {}

    def publish() -> None:
        var.set([w for w in workers if w not in hosts])  # type: ignore[no-untyped-call]

    def start() -> None:
        while todo:
            free = [w for w in workers if w not in hosts]
            if not free:
                break
            w = free[0]
            k = todo.pop(0)
            hosts[w] = k
            publish()  # (before the chain starts: nobody sends it decode tasks any more)
            fut = client.submit(chain_task, jobs[k], pure=False, workers=[w], allow_other_workers=True,
                                priority=_CHAIN_PRIORITY)
            running[fut] = (k, w)
        publish()

    try:
        start()
        while running:
            try:
                wait(list(running), timeout=0.25, return_when="FIRST_COMPLETED")  # type: ignore[no-untyped-call]
            except TimeoutError:
                pass
            try:
                while True:
                    prog.event(events.get_nowait())
            except queue.Empty:
                pass
            done = [f for f in running if f.done()]
            for f in done:
                k, w = running.pop(f)
                del hosts[w]
                try:
                    r = _chain_result(unpack(f.result()))
                except Exception as exc:  # noqa: BLE001 - a failed chain is reported, the others go on
                    r = _failed_chain(jobs[k].chain, exc)
                f.release()
                results[k] = r
                prog.chain(r)
            if done:
                start()
    finally:
        client.unsubscribe_topic(topic)
        try:
            var.delete()  # type: ignore[no-untyped-call]
        except Exception:  # noqa: BLE001, S110 - best effort
            pass
    return [results[k] for k in range(len(jobs))]


def analyze_many(
    paths: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    client: Any = None,
    progress: ProgressFn | None = None,
    html: bool = True,
    warmup_bytes: int = DEFAULT_WARMUP_BYTES,
    max_gap_s: float = DEFAULT_MAX_GAP_S,
    decode_all: bool = False,
    **options: Any,
) -> BatchResult:
    """Analyse many captures on Dask distributed; write a partitioned Parquet dataset to ``out_dir``.

    ``paths``: files, directories and globs. Files are grouped into chains (module doc); each
    chain's result equals the analysis of its files concatenated (frame numbers global within the
    chain). ``scheduler``: address of an existing Dask scheduler (``tcp://host:8786``); else a
    ``LocalCluster`` of ``workers`` processes (default: one per CPU) is started and stopped;
    ``workers=0`` runs everything in this process. An existing ``distributed.Client`` may be passed
    as ``client``. Chain tasks write their parts of the dataset themselves: on a remote cluster
    ``out_dir`` must be shared storage that every worker sees at the same path (as the
    captures). ``decode_all``: decode every file in a task and stitch it, even where the chain
    could analyse it itself (slower; for tests of the stitching). ``options`` as for
    ``analyze``. Raises ``NoInput`` when no file is readable.
    """
    from analyzer.api import _split_options

    t0 = time.perf_counter()
    say = progress or (lambda _m: None)
    opts, limits = _split_options(options)
    files = expand_inputs(paths)
    if not files:
        raise NoInput("no capture files given (no file matched)")
    owned = client is None
    cluster = None
    if client is None:
        client, cluster, sched, nworkers = _connect(scheduler, workers)
    else:
        sched = str(getattr(client, "scheduler", "client"))
        nworkers = len(client.scheduler_info().get("workers", {}))
    say(f"batch: {len(files)} file(s) on {sched}")
    out: str | None = os.path.abspath(os.fspath(out_dir)) if out_dir is not None else None
    try:
        futs = [client.submit(probe_file, f, pure=False) for f in files]
        infos = [f.result() for f in futs]
        del futs
        failed = [(i.path, i.error or "") for i in infos if i.error is not None]
        for path, msg in failed:
            say(f"batch: skipped {path}: {msg}")
        chains = group_chains(infos, max_gap_s)
        if not chains:
            raise NoInput(f"no readable capture among {len(files)} file(s)"
                          + (f": {failed[0][1]}" if len(failed) == 1 else ""))
        for c in chains:
            say(f"batch: chain {c.id}: {len(c.files)} file(s) ({c.how}), {_mb(sum(f.size for f in c.files))}")
        if out is not None:
            _clear_dataset(out)
        jobs = [ChainJob(c, opts, out, limits, warmup_bytes, decode_all=decode_all) for c in chains]
        prog = _Progress(say, chains, t0, failed)
        if isinstance(client, _Sync):
            results = []
            for j in jobs:
                side = _InProcess(prog.event)
                try:
                    r = _chain_result(run_chain(j, side))
                except Exception as exc:  # noqa: BLE001 - a failed chain is reported, the others go on
                    r = _failed_chain(j.chain, exc)
                prog.chain(r)
                results.append(r)
        else:
            results = _run_chains(client, jobs, prog)
        html_path = None
        if out is not None:
            ok = [r for r in results if r.error is None]
            if html and ok:
                html_path = os.fspath(_write_html(out, ok, limits))
            _write_manifest(out, results, failed, sched, nworkers, t0)
        return BatchResult(out, results, failed, html_path, time.perf_counter() - t0, nworkers, sched)
    finally:
        if owned and not isinstance(client, _Sync):
            client.close()
            if cluster is not None:
                cluster.close()


def _clear_dataset(out: str) -> None:
    import shutil

    from analyzer.reports.dataset import DATASET_TABLES

    for t in DATASET_TABLES:
        d = Path(out) / t
        if d.is_dir():
            shutil.rmtree(d)


def _chain_capture_info(c: Chain, st: ChainStitcher, col: Any, opts: Options) -> Any:
    import importlib.util

    from analyzer import __version__
    from analyzer.reports.analysis import CaptureInfo

    cap = st.capture
    stats = dict(col.stats)
    return CaptureInfo(
        file=c.files[0].path if c.files else "",
        name=c.id,
        size_bytes=sum(f.size for f in c.files),
        format=cap["format"],
        frames=cap["frames"],
        bytes=cap["bytes"],
        non_tcp=cap["non_tcp"],
        truncated_frames=cap["truncated_frames"],
        first_ts_ns=cap["first_ts_ns"],
        last_ts_ns=cap["last_ts_ns"],
        pdus=stats.pop("pdus_seen", 0),
        damage=list(cap["damage"]) + list(stats.pop("damage", [])),
        truncated=stats.pop("truncated", {}),
        stats=stats,
        state_tracker=opts.state or opts.anomalies,
        anomaly_engine=opts.anomalies and importlib.util.find_spec("analyzer.anomalies.engine") is not None,
        analyzer_version=__version__,
        secrets_available=False,
    )


def _write_html(out: str, results: list[ChainResult], limits: Any) -> Path:
    """The whole set's report, from the dataset the chain tasks wrote (pdus up to the row limit)."""
    from analyzer.reports import dataset
    from analyzer.reports.analysis import Analysis, CaptureInfo

    merged = dataset.concat_tables([
        {t: dataset.read_table(out, t, chain=r.id) for t in dataset.DATASET_TABLES if t != "pdus"} for r in results])
    merged["pdus"] = dataset.read_table(out, "pdus", max_rows=limits.max_pdu_rows)
    infos = [r.capture for r in results]
    firsts = [i.first_ts_ns for i in infos if i.first_ts_ns is not None]
    lasts = [i.last_ts_ns for i in infos if i.last_ts_ns is not None]
    n_files = sum(len(r.files) for r in results)
    info = CaptureInfo(
        file=out,
        name=f"batch: {n_files} file(s) in {len(results)} chain(s)",
        size_bytes=sum(i.size_bytes or 0 for i in infos),
        format="/".join(sorted({i.format for i in infos if i.format})),
        frames=sum(i.frames for i in infos),
        bytes=sum(i.bytes for i in infos),
        non_tcp=sum(i.non_tcp for i in infos),
        truncated_frames=sum(i.truncated_frames for i in infos),
        first_ts_ns=min(firsts) if firsts else None,
        last_ts_ns=max(lasts) if lasts else None,
        pdus=sum(i.pdus for i in infos),
        damage=[d for i in infos for d in i.damage],
        stats=_sum_stats([i.stats for i in infos]),
        analyzer_version=infos[0].analyzer_version if infos else "",
        state_tracker=all(i.state_tracker for i in infos),
        anomaly_engine=all(i.anomaly_engine for i in infos),
    )
    analysis = Analysis.from_tables(merged, info)
    return analysis.to_html(Path(out) / "report.html")


def _sum_stats(stats: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in stats:
        for k, v in s.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                if k == "records" and isinstance(v, dict):
                    rec = out.setdefault("records", {})
                    for name, n in v.items():
                        rec[name] = rec.get(name, 0) + n
                continue
            if k in ("first_ts_ns",):
                out[k] = v if k not in out else min(out[k], v)
            elif k in ("last_ts_ns", "last_frame"):
                out[k] = v if k not in out else max(out[k], v)
            else:
                out[k] = out.get(k, 0) + v
    return out


def _write_manifest(out: str, results: list[ChainResult], failed: list[tuple[str, str]], sched: str,
                    nworkers: int, t0: float) -> Path:
    doc = {
        "format_version": 1,
        "scheduler": sched,
        "workers": nworkers,
        "seconds": round(time.perf_counter() - t0, 3),
        "failed": [{"path": p, "error": m} for p, m in failed],
        "chains": [
            {
                "id": r.id, "how": r.how, "frames": r.frames, "pdus": r.pdus, "sessions": r.sessions,
                "tasks": r.tasks, "anomalies": r.anomalies, "units": r.units, "rerun_units": r.rerun_units,
                "direct_files": r.direct_files, "seconds": round(r.seconds, 3), "error": r.error,
                "files": [dataclasses.asdict(f) for f in r.files],
                "capture": r.capture.to_dict() if r.capture is not None else None,
            }
            for r in results
        ],
    }
    path = Path(out) / "batch.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return path


__all__ = [
    "BatchResult",
    "Chain",
    "ChainResult",
    "ChainStitcher",
    "FileInfo",
    "NoInput",
    "analyze_many",
    "decode_file",
    "expand_inputs",
    "group_chains",
    "probe_file",
]
