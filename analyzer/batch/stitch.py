"""Boundary state and stitching: a chain's files, in order, merged into one exact record stream.

The chain's ``ChainStitcher`` keeps the *true* per-packet state ``P`` (a ``Pipeline`` whose
tracker and anomaly engine see the merged stream) and consumes the files in order, each either
analysed here (``add_direct``: its segments straight into ``P``, what a sequential run does) or
from a decode task's result (``add``, see ``decode``). For every unit a task touched after its
boundary, the stitcher compares the task's image of the unit at the boundary with ``P``'s
(``decode.unit_image``). Equal images and equal inputs give equal outputs, so the task's
records for that unit are *accepted*; otherwise the unit is *re-run*: the stitcher reads the
file again and feeds that unit's segments to ``P`` itself (records merged back in capture
order). The one input of framing that comes from the state layer, the resync
DataSegmentLength bound fed back by ``ConnectionParams``, is checked too: a unit whose framer
ran a header scan after the boundary is accepted only if the bound in force was the default
and no Login/Text PDU could have changed it. After a file, accepted units' end states are
grafted into ``P`` (``TcpReassembler.graft``; the flow table and framer orders rebuilt as the
sequential run would have left them), so ``P`` is the state a sequential run has at the end
of the file. The state tracker and anomaly engine then see exactly the record stream of a
sequential run.

**Frame numbers.** ``P`` and the tasks number frames by position (``file index << 32 |
frame``). Records are immutable: the tracker and detector seats of ``P`` (``_TrackerSeat``,
``_DetectorSeat``) hand the state machines a renumbered *copy* (chain-global frame numbers,
as if the files were concatenated), and the collector gets copies too.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any, Final

from analyzer.batch.decode import DIRS, Unit, unit_image, unit_keys, worker_options
from analyzer.batch.inputs import Chain
from analyzer.pipeline import Options, Pipeline
from analyzer.records import I2T, T2I, Record, TcpClosed, TcpOpened
from analyzer.tcp.reassembly import FlowKey

#: pdus rows a chain holds in memory before its parts wait on disk for their session column.
SPILL_ROWS: Final = 200_000
_LOW: Final = 0xFFFFFFFF


class Renumber:
    """Frame positions (``index << 32 | frame``) in records -> chain-global frame numbers.

    A record's frame fields are ``frame`` and every ``*_frame`` field. ``__call__`` returns the
    record itself when it holds no position, else a new record (records are immutable).
    """

    def __init__(self) -> None:
        self.offsets: list[int] = [0]
        self._specs: dict[type, tuple[Callable[[Any], tuple[Any, ...]], tuple[int, ...], bool]] = {}

    def _spec(self, cls: type) -> tuple[Callable[[Any], tuple[Any, ...]], tuple[int, ...], bool]:
        fields = dataclasses.fields(cls)
        names = [f.name for f in fields]
        idx = tuple(i for i, n in enumerate(names) if n == "frame" or n.endswith("_frame"))
        if len(names) == 1:
            one = names[0]

            def getter(r: Any) -> tuple[Any, ...]:
                return (getattr(r, one),)
        else:
            getter = attrgetter(*names)
        spec = self._specs[cls] = (getter, idx, all(f.init for f in fields))
        return spec

    def __call__(self, r: Record) -> Record:
        spec = self._specs.get(type(r)) or self._spec(type(r))
        getter, idx, positional = spec
        vals = getter(r)
        changed: list[Any] | None = None
        offs = self.offsets
        for i in idx:
            v = vals[i]
            if type(v) is int and v > _LOW:
                if changed is None:
                    changed = list(vals)
                changed[i] = offs[v >> 32] + (v & _LOW)
        if changed is None:
            return r
        if positional:
            return type(r)(*changed)
        names = [f.name for f in dataclasses.fields(r)]
        return dataclasses.replace(r, **{names[i]: changed[i] for i in idx})


class _TrackerSeat:
    """The tracker seat of the stitcher's pipeline: the state tracker gets renumbered records;
    follows the framers' resync bound as ``Pipeline`` feeds it back (``ChainStitcher.feedback``)."""

    def __init__(self, st: ChainStitcher, tracker: Any) -> None:
        self.st = st
        self.tracker = tracker
        #: id(record) -> (record, its renumbered copy), for the detectors and the collector
        self.memo: dict[int, tuple[Record, Record]] = {}

    def feed(self, r: Record) -> list[Record]:
        st = self.st
        g = st.renumber(r)
        if g is not r:
            self.memo[id(r)] = (r, g)
        if isinstance(r, TcpOpened):
            for d in DIRS:
                st.shadow[(r.conn, d)] = st.w_dsl
            st.opened_log.append(r.conn)
        elif isinstance(r, TcpClosed):
            for d in DIRS:
                st.shadow.pop((r.conn, d), None)
        if self.tracker is None:
            return []
        added: list[Record] = self.tracker.feed(g)
        for a in added:
            if type(a).__name__ == "ConnectionParams":
                st.feedback(a)
        return added

    def renumbered(self, r: Record) -> Record:
        """``r`` renumbered (the copy ``feed`` made, when it fed ``r``)."""
        e = self.memo.get(id(r))
        return e[1] if e is not None and e[0] is r else self.st.renumber(r)

    def out(self, recs: list[Record]) -> list[Record]:
        """The pipeline's output ``recs`` renumbered (the copies the state machines saw)."""
        memo = self.memo
        ren = self.st.renumber
        got = [e[1] if (e := memo.get(id(r))) is not None and e[0] is r else ren(r) for r in recs]
        memo.clear()
        return got

    def tick(self, ts_ns: int) -> list[Record]:
        return [] if self.tracker is None else list(self.tracker.tick(ts_ns))

    def finish(self, ts_ns: int) -> list[Record]:
        return [] if self.tracker is None else list(self.tracker.finish(ts_ns))

    def ended(self, session_id: str) -> bool:
        return self.tracker is not None and bool(self.tracker.ended(session_id))

    def connection_ended(self, conn: str) -> bool:
        return self.tracker is not None and bool(self.tracker.connection_ended(conn))

    def session_connections(self, session_id: str) -> Any:
        return self.tracker.session_connections(session_id)

    def forget(self, session_id: str) -> None:
        self.tracker.forget(session_id)

    def forget_connection(self, conn: str) -> None:
        self.tracker.forget_connection(conn)


class _DetectorSeat:
    """The detector seat of the stitcher's pipeline: the anomaly engine gets renumbered records."""

    def __init__(self, seat: _TrackerSeat, engine: Any) -> None:
        self.seat = seat
        self.engine = engine

    def feed(self, r: Record) -> list[Record]:
        return list(self.engine.feed(self.seat.renumbered(r)))

    def tick(self, ts_ns: int) -> list[Record]:
        tick = getattr(self.engine, "tick", None)
        return [] if tick is None else list(tick(ts_ns))

    def finish(self, ts_ns: int) -> list[Record]:
        return list(self.engine.finish(ts_ns))

    def forget(self, session_id: str, conns: Any) -> list[Record]:
        return list(self.engine.forget(session_id, conns))

    def forget_connection(self, conn: str) -> list[Record]:
        return list(self.engine.forget_connection(conn))


def _state_machines(options: Options) -> tuple[Any, Any]:
    """The session tracker and anomaly engine ``Pipeline(options)`` would run (None when off)."""
    tracker = engine = None
    if options.state or options.anomalies:
        try:
            from analyzer.state.tracker import SessionTracker
        except ImportError:
            return None, None
        tracker = SessionTracker()
        if options.anomalies:
            try:
                from analyzer.anomalies.engine import AnomalyEngine
            except ImportError:
                return tracker, None
            engine = AnomalyEngine()
    return tracker, engine


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
        wopts = worker_options(options)
        self.w_dsl = wopts.resync_max_dsl
        self.P = Pipeline(wopts)
        self.renumber = Renumber()
        tracker, engine = _state_machines(options)
        seat = _TrackerSeat(self, tracker)
        self.P.tracker = self.seat = seat
        self.P.detectors = _DetectorSeat(seat, engine) if engine is not None else None
        self.collector = BatchCollector(limits)
        self.out_dir = out_dir
        self.counts: list[int] = []
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

    def feedback(self, rec: Any) -> None:
        """``Pipeline``'s feedback of ``ConnectionParams``, on the shadow of the framers' resync bound."""
        for d, attr in ((I2T, "max_recv_dsl_target"), (T2I, "max_recv_dsl_initiator")):
            value = getattr(rec, attr, None)
            if (rec.conn, d) in self.shadow and isinstance(value, int) and value > 0:
                self.shadow[(rec.conn, d)] = max(value, 8192)

    # ------------------------------------------------------------------ files

    def _set_count(self, index: int, frames: int) -> None:
        import numpy as np

        offsets = self.renumber.offsets
        while len(self.counts) < index:
            self.counts.append(0)
            offsets.append(offsets[-1])
        self.counts.append(frames)
        offsets.append(offsets[-1] + frames)
        self._off_arr = np.asarray(offsets, dtype="int64")

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
        units: list[Unit] = res["units"]
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
        feed = self.collector.feed
        out = self.seat.out
        post = P.post
        rerun_creations: list[tuple[int, Unit]] = []
        groups = res["groups"]
        if not rerun:
            for _pos, _u, recs in groups:
                for r in recs:
                    if type(r) is TcpOpened:
                        acc_conns.add(r.conn)
                for r in out(post(recs)):
                    feed(r)
        else:
            rerun_set = {units[u] for u in rerun}
            rerun_creations = self._walk(res, rerun_set, acc_conns)
        res["groups"] = None
        if res["last_seg"] is not None:
            P.last_frame, P.last_ts = res["last_seg"]
        self._graft(res, rerun, boundary_keys, boundary_fkeys, acc_conns, rerun_creations)
        # ---- the file's pdus part
        local = self.collector.take_local()
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
        feed = self.P.feed_segment
        feed_local = self.collector.feed_local
        out = self.seat.out
        base = index << 32
        first_ts: int | None = None
        try:
            for fr, ts, src, dst, sp, dp, seq, ack, fl, win, pl, miss in iter_tcp(reader):
                pos = fr | base
                if first_ts is None:
                    first_ts = ts
                recs = feed(pos, ts, src, dst, sp, dp, seq, ack, fl, win, pl, miss)
                if recs:
                    for r in out(recs):
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
            return everything  # eviction (which reads every flow) could come within reach
        rerun: set[int] = set()
        for u, unit in enumerate(units):
            core, hist, login = unit_image(R, P.framers, unit)
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

    def _walk(self, res: dict[str, Any], rerun_set: set[Unit], acc_conns: set[str]) -> list[tuple[int, Unit]]:
        """Read the file again: re-run units' segments go through the true pipeline, the other
        units' records are taken from the task, all in capture order."""
        from analyzer.capture import iter_tcp, open_capture

        P = self.P
        flows = P.reassembler.flows
        coll = self.collector
        renumbered = self.seat.out
        groups = res["groups"]
        n = len(groups)
        gi = 0
        base = res["index"] << 32
        creations: list[tuple[int, Unit]] = []
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
                    for r in renumbered(out):
                        coll.feed_local(r, pos)
                    if gi < n and groups[gi][0] == pos:
                        gi += 1
                elif gi < n and groups[gi][0] == pos:
                    recs = groups[gi][2]
                    gi += 1
                    for r in recs:
                        if type(r) is TcpOpened:
                            acc_conns.add(r.conn)
                    for r in renumbered(P.post(recs)):
                        coll.feed(r)
        finally:
            reader.close()
        return creations

    def _graft(self, res: dict[str, Any], rerun: set[int], boundary_keys: list[FlowKey],
               boundary_fkeys: list[tuple[str, str]], acc_conns: set[str],
               rerun_creations: list[tuple[int, Unit]]) -> None:
        """Put accepted units' end states into the true pipeline, in the orders a sequential run leaves."""
        P = self.P
        R = P.reassembler
        units = res["units"]
        vals = dict(R.flows)
        reuse: dict[FlowKey, int | None] = {}
        reinserted: dict[FlowKey, tuple[int, int]] = {}
        es_framers: dict[tuple[str, str], Any] = {}
        live_pos = R.flow_positions()
        last_creation: dict[int, int] = {}
        for pos, u in res["creations"]:
            last_creation[u] = pos
        for u, unit in enumerate(units):
            if u in rerun:
                continue
            es = res["end"][u]
            snap = es["tcp"]
            for key in unit_keys(unit):
                vals.pop(key, None)
                reuse[key] = snap.reuse.get(key)
            for key, entry, wpos in snap.flows:
                vals[key] = entry
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
        # A flow created in this file goes to the end of the table, in creation order (as a
        # sequential run inserts it); the others keep their places.
        order = [k for k in boundary_keys if k in vals and k not in reinserted]
        order += sorted((k for k in reinserted if k in vals), key=lambda k: reinserted[k])
        seen = set(order)
        order += [k for k in vals if k not in seen]  # (defensive: nothing should be left)
        R.graft({k: vals[k] for k in order}, reuse, res["segments"])
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
            for d in DIRS:
                v = value((conn, d))
                if v is not None:
                    fvals[(conn, d)] = v
        P.framers = fvals

    # ------------------------------------------------------------------ the end

    def finish(self) -> dict[str, Any]:
        """End of the chain: flush the pipeline, write the chain's tables; returns its summary."""
        from analyzer.reports import dataset

        for r in self.seat.out(self.P.finish()):
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


def _debug_diff(res: dict[str, Any], u: int, mine: tuple[Any, Any, Any]) -> None:
    theirs = res["images"][u]
    for name, a, b in zip(("core", "hist", "login"), mine, theirs, strict=True):
        if a != b:
            print(f"batch debug: {res['path']} unit {u} {name} differs:\n  true: {a!r}\n  task: {b!r}",
                  file=sys.stderr)
