"""The per-chain stateful pass: one Dask task owns a chain from its first file to its last.

Each chain is one Dask task (``chain_task`` -> ``run_chain``): it keeps the chain's true
pipeline (``stitch.ChainStitcher``), runs the state tracker, the anomaly engine and the table
collection over the chain's record stream (the sequential part, about 60% of the work on
small-I/O traffic), and writes the chain's Parquet parts itself. A chain analyses a file itself
(``ChainStitcher.add_direct``) unless a helper has decoded it already: while helpers exist (the
workers running no chain, which the client publishes in a ``distributed.Variable``), the chain
keeps ``LOOKAHEAD`` decode tasks per helper in flight for the files after the one it is on,
restricted to the helpers, and stitches their results. While it waits for one it decodes a
later file itself. With N chains and N workers, or one worker, there are no helpers and no
decode tasks: every file is analysed once, by its chain, with no warm-up and nothing pickled.

**No deadlock.** Decode tasks are only sent to workers running no chain task, and they have a
higher priority than chain tasks, so one queued on a worker runs before a chain task the client
assigns to that worker later. A chain task that must wait for a decode result first calls
``secede()`` to leave its worker's thread pool, so even a decode task sent to its own worker (a
helper list gone stale, or ``decode_all``) can run there. ``decode_all=True`` (tests) decodes
every file in a task on any worker and stitches it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from analyzer.batch.decode import DEFAULT_WARMUP_BYTES, MAX_WARMUP_FILES, FileTask, decode_file, decode_result
from analyzer.batch.inputs import Chain
from analyzer.batch.stitch import ChainStitcher
from analyzer.batch.transfer import pack, unpack
from analyzer.pipeline import Options


class Done:
    """A finished stand-in for a future: ``fn(*args)`` run now, in this process."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self._value, self._exc = fn(*args), None
        except Exception as exc:  # noqa: BLE001 - re-raised by result()
            self._value, self._exc = None, exc

    def result(self) -> Any:
        """The value, or the exception raised again."""
        if self._exc is not None:
            raise self._exc
        return self._value


#: Decode tasks kept in flight per helper worker (bounds the decoded results waiting in memory).
LOOKAHEAD: Final = 2
#: Dask priorities: decode tasks run before chain tasks queued on the same worker.
DECODE_PRIORITY: Final = 1_000_000
CHAIN_PRIORITY: Final = 0


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


def topic_of(run: str) -> str:
    return f"iscsi-analyzer-batch-{run}"


class InProcess:
    """What a chain sees of the cluster when it runs in this process: no helpers."""

    def __init__(self, emit: Callable[[dict[str, Any]], None] | None) -> None:
        self._emit = emit

    def helpers(self) -> list[str]:
        return []

    def submit(self, task: FileTask, workers: list[str] | None) -> Any:
        return Done(decode_result, (task,))  # (decode_all only)

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


class _OnCluster(InProcess):
    """What a chain task sees of the cluster: the helper workers (those running no chain, as
    the client publishes them in a ``distributed.Variable``) and the progress topic."""

    def __init__(self, run: str) -> None:
        from distributed import Variable, get_client, get_worker

        super().__init__(None)
        self.client = get_client()
        self.worker = get_worker()
        self.topic = topic_of(run)
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
                                  allow_other_workers=workers is not None, priority=DECODE_PRIORITY - task.index)

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

    side = side if side is not None else InProcess(None)
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
        "direct_files": st.direct_files, "capture": chain_capture_info(chain, st, col, job.options),
        "seconds": time.perf_counter() - t0,
    }
    return summary


def chain_task(job: ChainJob) -> bytes:
    """The Dask task of one chain: ``run_chain`` on a worker, helped by the other workers."""
    return pack(run_chain(job, _OnCluster(job.run)))


def chain_capture_info(c: Chain, st: ChainStitcher, col: Any, opts: Options) -> Any:
    """The chain's ``CaptureInfo`` (capture.json of a single capture, for the whole chain)."""
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
