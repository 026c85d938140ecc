"""Python API: ``analyze(capture) -> Analysis`` and ``load(report_dir) -> Analysis``.

This module stays free of pandas (house style §1); the DataFrames are built in
``analyzer.reports``. ``run_analyze`` and ``run_report`` are what the CLI commands
``analyze`` and ``report`` call.

>>> a = analyze("sample_pcaps/clean_io.pcap")          # doctest: +SKIP
>>> a.sessions[["session", "initiator_name", "ended"]]  # doctest: +SKIP
>>> a.write("reports/clean_io"); a.to_html("clean_io.html")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from analyzer.records import Record

if TYPE_CHECKING:
    from analyzer.reports.analysis import Analysis, CaptureInfo

#: ``progress(done_bytes, total_bytes)``; ``total_bytes`` is None for a stream of unknown size.
Progress = Callable[[int, "int | None"], None]

_CAPTURE_SUFFIXES = (".pcapng.gz", ".pcap.gz", ".cap.gz", ".pcapng", ".pcap", ".cap", ".gz")


class _CountingFile:
    """A file read through ``read``, reporting bytes read to a progress callback."""

    def __init__(self, path: str, progress: Progress) -> None:
        self.name = path
        self._f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self._progress = progress
        try:
            self._total: int | None = os.fstat(self._f.fileno()).st_size
        except OSError:
            self._total = None
        self._done = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        if data:
            self._done += len(data)
            self._progress(self._done, self._total)
        return data

    def close(self) -> None:
        self._f.close()


def _split_options(options: dict[str, Any]) -> tuple[Any, Any]:
    from analyzer.pipeline import Options
    from analyzer.reports.collect import Limits

    pipe_names = {f.name for f in dataclasses.fields(Options)}
    limit_names = {f.name for f in dataclasses.fields(Limits)}
    unknown = set(options) - pipe_names - limit_names
    if unknown:
        raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
    pipe = {k: v for k, v in options.items() if k in pipe_names}
    if "ports" in pipe and pipe["ports"] is not None:
        pipe["ports"] = frozenset(pipe["ports"])
    elif "ports" in pipe:
        del pipe["ports"]
    return Options(**pipe), Limits(**{k: v for k, v in options.items() if k in limit_names})


def _first_frame_ts(path: str) -> int | None:
    from analyzer.capture import CaptureError, open_capture

    try:
        reader = open_capture(path)
    except CaptureError:
        return None
    try:
        for frame in reader:
            return int(frame[1])
        return None
    finally:
        reader.close()


def analyze(
    capture: str | os.PathLike[str] | BinaryIO, *, progress: Progress | None = None, **options: Any
) -> Analysis:
    """Analyse a capture file (pcap / pcapng, optionally gzip) into DataFrames.

    The tables are streamed to a temporary report directory while the capture is read (deleted
    when the Analysis is); each table is read from it the first time it is asked for, so a big
    capture returns without loading its pdus table. ``options``: any field of
    ``analyzer.pipeline.Options`` (``ports``, ``max_ooo_bytes``, ...) or of
    ``analyzer.reports.collect.Limits`` (``max_pdu_rows`` etc.; rows past a limit are counted in
    ``capture.truncated``). ``progress(done_bytes, total_bytes)`` is called as the file is read
    (on-disk bytes, so compressed bytes for .gz). Raises ``analyzer.capture.CaptureError`` when
    the file is not a readable capture.
    """
    import shutil
    import tempfile
    import weakref

    tmp = tempfile.mkdtemp(prefix="iscsi-analyzer-")
    try:
        analysis = _analyze_into(capture, Path(tmp), progress, options)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    analysis._keepalive = weakref.finalize(analysis, shutil.rmtree, tmp, ignore_errors=True)
    return analysis


def _analyze_into(
    capture: str | os.PathLike[str] | BinaryIO, directory: Path, progress: Progress | None, options: dict[str, Any]
) -> Analysis:
    """One streaming pass: every table written into ``directory`` (plus capture.json)."""
    from analyzer import __version__
    from analyzer.pipeline import iter_records
    from analyzer.render.output import safe_name
    from analyzer.reports.analysis import Analysis, CaptureInfo
    from analyzer.reports.files import write_capture
    from analyzer.reports.stream import StreamCollector

    opts, limits = _split_options(options)
    readers: list[Any] = []
    is_path = isinstance(capture, (str, os.PathLike))
    path = (
        os.fspath(capture)
        if isinstance(capture, (str, os.PathLike))
        else str(getattr(capture, "name", "<stream>"))
    )
    source: Any = capture
    counting: _CountingFile | None = None
    if is_path and progress is not None and os.path.isfile(path):
        counting = _CountingFile(path, progress)
        source = counting
    collector = StreamCollector(directory, limits)
    try:
        collector.feed_all(iter_records(source, opts, reader_out=readers))
    except BaseException:
        collector.abort()
        raise
    finally:
        if counting is not None:
            counting.close()
    collected = collector.finish()
    reader = readers[0] if readers else None
    stats = collected.stats
    first_ts = _first_frame_ts(path) if is_path else None
    if first_ts is None:
        first_ts = stats["first_ts_ns"]
    last_ts = getattr(reader, "last_ts_ns", 0) or stats["last_ts_ns"]
    # The reader's damage and the collector's CaptureDamage records are the same events: list each once.
    damage = list(dict.fromkeys([d.message for d in getattr(reader, "damage", [])] + stats.pop("damage")))
    info = CaptureInfo(
        file=safe_name(path),  # any bytes, shown escaped (the report is UTF-8 text)
        name=safe_name(os.path.basename(path)),
        size_bytes=os.path.getsize(path) if is_path and os.path.isfile(path) else None,
        format=str(getattr(reader, "format", "")),
        frames=int(getattr(reader, "frames", 0)),
        bytes=int(getattr(reader, "bytes", 0)),
        non_tcp=int(getattr(reader, "non_tcp", 0)),
        truncated_frames=int(getattr(reader, "truncated", 0)),
        first_ts_ns=first_ts,
        last_ts_ns=last_ts,
        pdus=stats.pop("pdus_seen"),
        damage=damage,
        truncated=stats.pop("truncated"),
        stats=stats,
        state_tracker=opts.state or opts.anomalies,
        anomaly_engine=opts.anomalies and importlib.util.find_spec("analyzer.anomalies.engine") is not None,
        analyzer_version=__version__,
        secrets_available=True,
        story=list(collected.story),
    )
    write_capture(directory, info.to_dict())
    return Analysis.from_dir(directory, info, tables=collected.tables, pdu_summary=collector.summary,
                             latency=collector.latency)


def analyze_records(
    records: Iterable[Record], *, capture: CaptureInfo | None = None, **limits: Any
) -> Analysis:
    """An Analysis of an already-produced record stream (tests, live capture, other front ends)."""
    from analyzer import __version__
    from analyzer.reports.analysis import Analysis, CaptureInfo
    from analyzer.reports.collect import Collector, Limits

    collector = Collector(Limits(**limits))
    collector.feed_all(records)
    collected = collector.finish()
    stats = collected.stats
    info = capture or CaptureInfo(
        name="(records)",
        first_ts_ns=stats["first_ts_ns"],
        last_ts_ns=stats["last_ts_ns"],
        frames=stats["last_frame"],
        analyzer_version=__version__,
    )
    info.pdus = stats.pop("pdus_seen")
    info.damage = [*info.damage, *stats.pop("damage")]
    info.truncated = stats.pop("truncated")
    info.stats = stats
    info.secrets_available = True
    info.story = list(collected.story)
    return Analysis.from_tables(collected.tables, info)


def load(report_dir: str | os.PathLike[str]) -> Analysis:
    """Open a directory written by ``analyze`` / ``Analysis.write`` (same tables, same dtypes; keys
    masked). Tables are read when first asked for. Raises ``analyzer.reports.files.IncompleteReport``
    (a ``ValueError``) for a directory an interrupted run left incomplete."""
    from analyzer.reports.analysis import Analysis, CaptureInfo
    from analyzer.reports.files import check_dir

    d, capture = check_dir(report_dir)
    return Analysis.from_dir(d, CaptureInfo.from_dict(capture))


def capture_stem(capture: str | os.PathLike[str]) -> str:
    """The capture's file name without its capture suffixes ("lab.pcapng.gz" -> "lab")."""
    name = os.path.basename(os.fspath(capture))
    for suffix in _CAPTURE_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def default_out_dir(capture: str | os.PathLike[str], base: str | os.PathLike[str] = "reports") -> Path:
    """``reports/<capture name>/``, the default output directory of ``iscsi-analyzer analyze``."""
    return Path(base) / capture_stem(capture)


def run_analyze(
    capture: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    progress: Progress | None = None,
    html: bool = True,
    summary: bool = True,
    **options: Any,
) -> tuple[Analysis, list[Path]]:
    """``iscsi-analyzer analyze``: analyse, write the tables (+ report.html, summary.txt).

    The tables are streamed into a temporary directory next to ``out_dir`` during the pass;
    it is renamed into place only when every file is complete (an existing report there stays
    whole until then).

    Returns the Analysis and the files written. Raises ``CaptureError`` for an unreadable file.
    """
    from analyzer.reports.tables import ReportDir, atomic_write_text

    out = Path(out_dir) if out_dir is not None else default_out_dir(capture)
    rd = ReportDir(out)
    try:
        analysis = _analyze_into(capture, rd.work, progress, options)
        if html:
            analysis.to_html(rd.work / "report.html")
        if summary:
            atomic_write_text(rd.work / "summary.txt", analysis.summary() + "\n")
        written = rd.commit()
    except BaseException:
        rd.abort()
        raise
    analysis.report_dir = rd.final
    return analysis, written


def run_report(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    show_secrets: bool = False,
    progress: Progress | None = None,
    **options: Any,
) -> tuple[Analysis, Path]:
    """``iscsi-analyzer report``: HTML report from a capture or from a directory written by ``analyze``.

    Secrets can only be shown when reading a capture: report directories hold them masked.
    """
    if os.path.isdir(source):
        analysis = load(source)
    else:
        analysis = analyze(source, progress=progress, **options)
    return analysis, analysis.to_html(output, show_secrets=show_secrets)


def analyze_many(paths: Iterable[str | os.PathLike[str]], out_dir: str | os.PathLike[str] | None = None,
                 **kwargs: Any) -> Any:
    """Many captures / ring-buffer chains on Dask; see :func:`analyzer.batch.analyze_many`.

    Keyword options of ``analyze`` (pipeline options and table limits) are accepted too.
    """
    import inspect

    from analyzer.batch import runner

    own = set(inspect.signature(runner.analyze_many).parameters)
    options, limits = _split_options({k: v for k, v in kwargs.items() if k not in own})
    rest = {k: v for k, v in kwargs.items() if k in own}
    rest.setdefault("options", options)
    rest.setdefault("limits", limits)
    return runner.analyze_many(paths, out_dir, **rest)


__all__ = [
    "analyze",
    "analyze_many",
    "analyze_records",
    "capture_stem",
    "default_out_dir",
    "load",
    "run_analyze",
    "run_report",
]


def __getattr__(name: str) -> Any:
    if name in ("Analysis", "CaptureInfo"):
        from analyzer.reports import analysis

        return getattr(analysis, name)
    raise AttributeError(name)
