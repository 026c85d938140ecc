"""Batch analysis of many captures on Dask distributed: ``analyze_many`` (``iscsi-analyzer batch``).

Theory of operation
-------------------
The work is split in modules with one job each:

* ``inputs``: inputs (files, directories, globs) probed in parallel and grouped into *chains*,
  files that are consecutive pieces of one capture, only on evidence (ring-buffer names or
  proven TCP continuation; ``chain_by``). Frame numbers are global within a chain, as if its
  files were concatenated with ``mergecap -a``.
* ``chain``: the per-chain stateful pass, one Dask task per chain, helped by decode tasks on
  the workers running no chain.
* ``decode``: the per-file decode task (per-packet pipeline after a warm-up) and the *units*
  (endpoint pairs) whose state images decide what can be stitched.
* ``stitch``: boundary state and stitching, exactly: what a sequential run gives.
* ``transfer``: compact pickling of task results; ``output``: ``report.html``, ``batch.json``.

This module is the client side: it probes, groups, schedules the chain tasks (at most one per
worker at a time, largest chains first, pinned to a free worker), publishes the workers running
no chain as *helpers* (a ``distributed.Variable``), prints the progress events the chain tasks
log, and writes the outputs. A chain task writes ``OUT/<table>/chain=<id>/part-*.parquet``
itself: the workers must see ``OUT`` at the same path as the client (a local cluster always
does; on a remote cluster ``OUT`` must be shared storage, like the captures).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from analyzer.batch.chain import CHAIN_PRIORITY, ChainJob, Done, InProcess, chain_task, run_chain, topic_of
from analyzer.batch.decode import DEFAULT_WARMUP_BYTES
from analyzer.batch.inputs import (
    CHAIN_BY,
    DEFAULT_CHAIN_BY,
    DEFAULT_MAX_GAP_S,
    Chain,
    FileInfo,
    NoInput,
    expand_inputs,
    group_chains,
    probe_file,
)
from analyzer.batch.output import clear_dataset, write_html, write_manifest
from analyzer.batch.stitch import ChainStitcher, FileReport
from analyzer.batch.transfer import unpack
from analyzer.pipeline import Options


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

    def submit(self, fn: Callable[..., Any], *args: Any, **_kw: Any) -> Any:
        return Done(fn, args)


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
    topic = topic_of(run)
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
                                priority=CHAIN_PRIORITY)
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


class MissingExtra(RuntimeError):
    """Dask is not installed: batch analysis needs the ``batch`` extra (the message says how)."""


def require_dask() -> None:
    """Raise ``MissingExtra`` unless dask and distributed are importable."""
    import importlib

    missing = []
    for module in ("dask", "distributed"):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise MissingExtra(f"batch analysis runs on Dask, which is not installed ({', '.join(missing)} missing): "
                           "pip install 'iscsi-analyzer[batch]'")


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
    chain_by: str = DEFAULT_CHAIN_BY,
    decode_all: bool = False,
    options: Options | None = None,
    limits: Any = None,
) -> BatchResult:
    """Analyse many captures on Dask distributed; write a partitioned Parquet dataset to ``out_dir``.

    ``paths``: files, directories and globs. Files are grouped into chains (module doc); each
    chain's result equals the analysis of its files concatenated (frame numbers global within the
    chain). ``scheduler``: address of an existing Dask scheduler (``tcp://host:8786``); else a
    ``LocalCluster`` of ``workers`` processes (default: one per CPU) is started and stopped;
    ``workers=0`` runs everything in this process. An existing ``distributed.Client`` may be passed
    as ``client``. Chain tasks write their parts of the dataset themselves: on a remote cluster
    ``out_dir`` must be shared storage that every worker sees at the same path (as the
    captures). ``chain_by``: which files are pieces of one capture ("tcp", the default: ring-buffer
    names or proven TCP continuation; "name": ring-buffer names only; "none": every file alone;
    see ``analyzer.batch.inputs``). ``decode_all``: decode every file in a task and stitch it,
    even where the chain could analyse it itself (slower; for tests of the stitching).
    ``options``: the pipeline ``Options``; ``limits``: the table ``Limits`` (``analyzer.api.analyze_many``
    takes them as keyword options, as ``analyze`` does). Raises ``NoInput`` when no file is readable.
    """
    if workers != 0 or scheduler is not None or client is not None:
        require_dask()
    from analyzer.reports.collect import Limits

    t0 = time.perf_counter()
    say = progress or (lambda _m: None)
    opts = options if options is not None else Options()
    limits = limits if limits is not None else Limits()
    if chain_by not in CHAIN_BY:
        raise ValueError(f"chain_by must be one of {', '.join(CHAIN_BY)}, not {chain_by!r}")
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
        futs = [client.submit(probe_file, f, chain_by, pure=False) for f in files]
        infos = [f.result() for f in futs]
        del futs
        failed = [(i.path, i.error or "") for i in infos if i.error is not None]
        for path, msg in failed:
            say(f"batch: skipped {path}: {msg}")
        chains = group_chains(infos, max_gap_s, chain_by)
        if not chains:
            raise NoInput(f"no readable capture among {len(files)} file(s)"
                          + (f": {failed[0][1]}" if len(failed) == 1 else ""))
        for c in chains:
            say(f"batch: chain {c.id}: {len(c.files)} file(s) ({c.how}), {_mb(sum(f.size for f in c.files))}")
        if out is not None:
            clear_dataset(out)
        jobs = [ChainJob(c, opts, out, limits, warmup_bytes, decode_all=decode_all) for c in chains]
        prog = _Progress(say, chains, t0, failed)
        if isinstance(client, _Sync):
            results = []
            for j in jobs:
                side = InProcess(prog.event)
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
                html_path = os.fspath(write_html(out, ok, limits))
            write_manifest(out, results, failed, sched, nworkers, t0)
        return BatchResult(out, results, failed, html_path, time.perf_counter() - t0, nworkers, sched)
    finally:
        if owned and not isinstance(client, _Sync):
            client.close()
            if cluster is not None:
                cluster.close()


__all__ = [
    "BatchResult",
    "Chain",
    "ChainResult",
    "ChainStitcher",
    "FileInfo",
    "NoInput",
    "analyze_many",
    "expand_inputs",
    "group_chains",
    "probe_file",
]
