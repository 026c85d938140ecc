"""The per-file decode task of a chain, and the *units* its state is compared by.

A decode task (``decode_file``) runs the per-packet part of the pipeline (capture -> TCP
reassembly -> PDU framing and decoding, no state machines) over one file of a chain and
builds the file's pdus rows (final dtypes, so the chain only renumbers them, fills the
session column and writes them). It first *warms up* on the tail (``warmup_bytes``) of the
files before it in the chain, discarding what that produces, so its TCP and framer state is
normally in sync at the file boundary. Frame numbers inside a task are *positions*,
``file index << 32 | frame in the file``, so states of different tasks that saw the same
frames are equal.

The state is split into *units*, one per TCP endpoint pair (both 4-tuple keys, their flows,
framers and 4-tuple reuse counts): reassembly and framing of one unit never read another
unit's state, except through global bounds (flow eviction, total out-of-order bytes) that the
stitcher checks stay out of reach. For every unit the file touches, the task reports the
unit's image at the boundary (``unit_image``: ``TcpReassembler.unit_image`` and
``PduFramer.state_image``, which define what is state) and its end state
(``TcpReassembler.unit_snapshot`` plus the unit's framers), for ``stitch.ChainStitcher``.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from analyzer.batch.transfer import pack
from analyzer.iscsi.framing import PduFramer
from analyzer.pipeline import Options, Pipeline
from analyzer.records import (
    I2T,
    T2I,
    LoginRequest,
    LoginResponse,
    Record,
    TcpOpened,
    TextRequest,
    TextResponse,
)
from analyzer.tcp.reassembly import SYN, FlowKey, TcpReassembler

#: Bytes of the previous files' tail a task decodes before its own file (see module doc).
DEFAULT_WARMUP_BYTES: Final = 4 * 1024 * 1024
#: At most this many previous files are read for the warm-up (tiny files).
MAX_WARMUP_FILES: Final = 16
DIRS: Final = (I2T, T2I)
_LOGIN_OR_TEXT: Final = (LoginRequest, LoginResponse, TextRequest, TextResponse)

#: A unit: the canonical endpoint pair (smaller endpoint first).
Unit = tuple[bytes, int, bytes, int]


def unit_keys(unit: Unit) -> tuple[FlowKey, FlowKey]:
    """The two 4-tuple keys of a unit (an endpoint pair)."""
    a, ap, b, bp = unit
    return (a, ap, b, bp), (b, bp, a, ap)


def unit_of(src: bytes, sport: int, dst: bytes, dport: int) -> Unit:
    """The unit (canonical endpoint pair) of a segment."""
    return (src, sport, dst, dport) if (src, sport) <= (dst, dport) else (dst, dport, src, sport)


def unit_image(reasm: TcpReassembler, framers: dict[tuple[str, str], PduFramer], unit: Unit
               ) -> tuple[Any, Any, Any]:
    """Canonical image of a unit's state: (core, history, login).

    ``core`` must be equal for a task's records to be accepted. ``history`` (ISNs, SYN frame,
    handshake) matters only when a SYN comes after the boundary or the flow has not carried
    payload yet; ``login`` (digest keys seen in a login) only when a Login/Text PDU follows.
    """
    keys = unit_keys(unit)
    tcp, hist = reasm.unit_image(keys)
    framing: list[Any] = []
    login: list[Any] = []
    for k in keys:
        e = reasm.flows.get(k)
        if e is None:
            continue
        conn = e[0].conn
        for d in DIRS:
            f = framers.get((conn, d))
            if f is None:
                framing.append(None)
                continue
            framing.append((f.state_image(), f.digests.image()))
            login.append(f.digests.login_image())
    return (tcp, tuple(framing)), hist, tuple(login)


@dataclass
class FileTask:
    """One file of a chain to decode (what a Dask task gets)."""

    chain: str
    index: int
    path: str
    prev: list[tuple[int, str]]  #: warm-up files (index in the chain, path), oldest first
    options: Options
    warmup_bytes: int = DEFAULT_WARMUP_BYTES


def worker_options(opts: Options) -> Options:
    """The per-packet part of ``opts``: no state machines, no anomaly rules."""
    return dataclasses.replace(opts, state=False, anomalies=False, extra=dict(opts.extra))


class _FramerLog(dict[tuple[str, str], PduFramer]):
    """A pipeline's framer table that also remembers every framer put in it since ``reset``
    (closed connections' framers leave the table; their resync counts still matter)."""

    def __init__(self) -> None:
        super().__init__()
        self.born: list[PduFramer] = []

    def __setitem__(self, key: tuple[str, str], framer: PduFramer) -> None:
        self.born.append(framer)
        super().__setitem__(key, framer)

    def reset(self) -> None:
        self.born = []


def decode_file(task: FileTask) -> bytes:
    """Decode one file of a chain (the Dask task). Returns ``pack``ed results (see ``stitch``)."""
    return pack(decode_result(task))


def _warm_up(pipe: Pipeline, task: FileTask, rows: Any) -> None:
    """Feed the tail of the previous files (records discarded). The files are read as raw frames
    (cheaper than TCP decoding all of them); only the tail is decoded, with ``decode_frame``,
    which gives exactly what ``iter_tcp`` gives."""
    from analyzer.capture import CaptureError, decode_frame, open_capture

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


def decode_result(task: FileTask) -> dict[str, Any]:
    """Decode one file of a chain after its warm-up: what ``ChainStitcher.add`` takes."""
    from analyzer.capture import CaptureError, iter_tcp, open_capture
    from analyzer.records import MalformedPdu, Pdu
    from analyzer.reports.dataset import PduRows

    t0 = time.perf_counter()
    pipe = Pipeline(worker_options(task.options))
    framers = pipe.framers = _FramerLog()
    reasm = pipe.reassembler
    rows = PduRows()
    if task.prev:
        _warm_up(pipe, task, rows)
    # ---- the boundary (a unit's image is taken when the file first touches it: until then
    # nothing in this file has changed it)
    flows = reasm.flows
    boundary: dict[Unit, Any] = {}
    boundary_conns: dict[str, int] = {}
    boundary_resyncs = [(f, f.resyncs) for f in framers.values()]
    framers.reset()
    evicted0 = reasm.evicted_flows
    segments0 = reasm.segments
    # ---- the file
    result: dict[str, Any] = {"index": task.index, "path": task.path, "error": None}
    try:
        reader = open_capture(task.path)
    except CaptureError as exc:
        result["error"] = str(exc)
        return result
    units: dict[Unit, int] = {}
    unit_list: list[Unit] = []
    key_unit: dict[FlowKey, int] = {}
    groups: list[tuple[int, int, list[Record]]] = []
    syn_units: set[int] = set()
    login_units: set[int] = set()
    syn_segments = 0
    watch = reasm.watch()
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
                    boundary[unit] = unit_image(reasm, framers, unit)
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
                        if isinstance(r, _LOGIN_OR_TEXT):
                            login_units.add(u)
    finally:
        reader.close()
    reasm.unwatch()
    fed = reasm.segments != segments0
    last_seg = (pipe.last_frame, pipe.last_ts) if fed else None
    creations = [(p, units[unit_of(*k)]) for p, k in watch.created]
    # ---- what the stitcher needs
    positions = reasm.flow_positions()
    images: dict[int, Any] = {}
    end: dict[int, Any] = {}
    for unit, u in units.items():
        images[u] = boundary[unit]
        ent_framers: list[tuple[tuple[str, str], PduFramer]] = []
        endpoints = {}
        keys = unit_keys(unit)
        for k in keys:
            e = reasm.flows.get(k)
            if e is None:
                continue
            conn = e[0].conn
            for dirn in DIRS:
                f = framers.get((conn, dirn))
                if f is not None and ((conn, dirn), f) not in ent_framers:
                    ent_framers.append(((conn, dirn), f))
            if conn in pipe.endpoints:
                endpoints[conn] = pipe.endpoints[conn]
        end[u] = {"tcp": reasm.unit_snapshot(keys, positions), "framers": ent_framers, "endpoints": endpoints}
    # Framers that ran a header scan after the boundary (closed ones included), by unit.
    conn_unit = dict(boundary_conns)
    for _pos, u, recs in groups:
        for r in recs:
            if type(r) is TcpOpened:
                conn_unit[r.conn] = u
    scanned = {(f.conn, f.direction) for f, n in boundary_resyncs if f.resyncs > n}
    scanned |= {(f.conn, f.direction) for f in framers.born if f.resyncs}
    resynced: dict[int, list[tuple[str, str]]] = {}
    for conn, dirn in sorted(scanned):
        resynced.setdefault(conn_unit.get(conn, -1), []).append((conn, dirn))
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
        peak_ooo=watch.peak_ooo_bytes,
        evicted=reasm.evicted_flows != evicted0,
        segments=reasm.segments - segments0,
        pdus=rows.frame(),
        seconds=time.perf_counter() - t0,
    )
    return result
