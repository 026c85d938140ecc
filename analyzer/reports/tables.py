"""Streaming table writers: rows in, Parquet row groups (and CSV chunks) out, bounded memory.

A :class:`TableWriter` takes the rows of one table (tuples in ``frames.SCHEMAS`` column order,
each built by the row functions of ``frames`` / ``render.rows``) into a bounded buffer, and
flushes the buffer as one Parquet row group (``pyarrow.parquet.ParquetWriter``) whenever it
holds ``ROW_GROUP_ROWS`` rows or about ``MAX_BUFFER_BYTES`` of variable-length text, whichever
comes first, so that a capture that makes a table huge (long text keys, many anomalies) never
makes memory grow. A flush turns each column into one Arrow array (``pa.array`` over the column
of the buffer: no pandas, no per-row object), so the per-table cost is one transpose and one
conversion per row group.

Every table file has one fixed Arrow schema (:func:`arrow_schema`): the Arrow types pandas
gives the ``frames`` dtypes, with dictionary (category) columns always ``int32``-indexed. A
fixed index width matters for datasets of many parts: pandas picks int8/int16/int32 by the
number of categories, and a dataset whose parts disagree cannot be read as one table
(``ArrowInvalid: Integer value 134 not in range: -128 to 127``). The pandas metadata of the
schema is that of ``frames.empty(table)``, so ``pd.read_parquet`` gives the same dtypes
(categories in order of first appearance; ``frames.conform`` sorts them).

Writers write under a temporary name in their directory; :class:`ReportDir` renames a
finished report directory into place in one step (see there).
"""

from __future__ import annotations

import contextlib
import errno as _errno
import glob
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analyzer.records import SEVERITIES
from analyzer.reports import frames

#: Rows per Parquet row group (and per CSV chunk).
ROW_GROUP_ROWS: Final = 4096
#: Flush earlier when the buffered text cells of a table reach about this many characters.
MAX_BUFFER_BYTES: Final = 16 * 1024 * 1024
#: Marker file inside a report directory that is being written (``load`` refuses it).
INCOMPLETE_MARKER: Final = ".incomplete"

_TS: Final = pa.timestamp("ns", tz="UTC")
_TD: Final = pa.duration("ns")
_CAT: Final = pa.dictionary(pa.int32(), pa.string())
_SEV: Final = pa.dictionary(pa.int32(), pa.string(), ordered=True)
_ARROW_TYPES: Final[dict[str, pa.DataType]] = {
    "int": pa.int64(),
    "Int": pa.int64(),
    "UInt": pa.uint64(),
    "str": pa.large_string(),
    "cat": _CAT,
    "sev": _SEV,
    "ts": _TS,
    "td": _TD,
    "bool": pa.bool_(),
    "float": pa.float64(),
}
_SCHEMAS: dict[str, pa.Schema] = {}
#: Arrow memory for the writers comes from the system allocator: mimalloc (pyarrow's default)
#: keeps freed row-group buffers mapped, which costs tens of MB of peak RSS for nothing here.
POOL: Final = pa.system_memory_pool()


def use_system_allocator() -> None:
    """Make the system allocator pyarrow's default (``analyze`` does, for pandas' Arrow-backed
    strings too): the process then returns freed buffers instead of keeping them mapped."""
    if pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(POOL)


def arrow_schema(table: str) -> pa.Schema:
    """The one Arrow schema of every file (and dataset part) of ``table``."""
    s = _SCHEMAS.get(table)
    if s is None:
        kinds = frames.SCHEMAS[table]
        meta = pa.Schema.from_pandas(frames.empty(table), preserve_index=False).metadata
        s = pa.schema([pa.field(c, _ARROW_TYPES[k]) for c, k in kinds.items()], metadata=meta)
        _SCHEMAS[table] = s
    return s


def to_arrow(table: str, df: pd.DataFrame) -> pa.Table:
    """A conformed DataFrame of ``table`` as an Arrow table with the fixed schema."""
    t = pa.Table.from_pandas(df, preserve_index=False)
    return t.cast(arrow_schema(table))


def _severity_array(values: Sequence[Any]) -> pa.Array:
    cats = list(SEVERITIES)
    extra = sorted({str(v) for v in values if v is not None} - set(cats))
    cats += extra
    index = {c: i for i, c in enumerate(cats)}
    idx = pa.array([None if v is None else index[str(v)] for v in values], pa.int32())
    return pa.DictionaryArray.from_arrays(idx, pa.array(cats, pa.string()), ordered=True)


def _text(values: Sequence[Any]) -> list[str | None]:
    return [None if v is None else str(v) for v in values]


def column_array(kind: str, values: Sequence[Any]) -> pa.Array:
    """One column of plain Python values as an Arrow array of the kind's type (see ``frames``)."""
    if kind in ("int", "Int"):
        return pa.array(values, pa.int64(), memory_pool=POOL)
    if kind == "UInt":
        return pa.array(values, pa.uint64(), memory_pool=POOL)
    if kind == "str":
        try:
            return pa.array(values, pa.large_string(), memory_pool=POOL)
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            return pa.array(_text(values), pa.large_string(), memory_pool=POOL)
    if kind == "cat":
        try:
            arr = pa.array(values, pa.string(), memory_pool=POOL)
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            arr = pa.array(_text(values), pa.string(), memory_pool=POOL)
        return pc.dictionary_encode(arr, memory_pool=POOL)
    if kind == "sev":
        return _severity_array(values)
    if kind == "ts":
        return pa.array(values, pa.int64(), memory_pool=POOL).view(_TS)
    if kind == "td":
        return pa.array(values, pa.int64(), memory_pool=POOL).view(_TD)
    if kind == "bool":
        return pc.fill_null(pa.array(values, pa.bool_(), memory_pool=POOL), False)
    if kind == "float":
        return pa.array(values, pa.float64(), memory_pool=POOL)
    raise ValueError(f"unknown column kind {kind!r}")


def columns_table(table: str, columns: Sequence[Sequence[Any]]) -> pa.Table:
    """Columns (lists in schema order) as an Arrow table with the table's schema."""
    schema = arrow_schema(table)
    kinds = list(frames.SCHEMAS[table].values())
    arrays = [column_array(k, col) for k, col in zip(kinds, columns, strict=True)]
    return pa.Table.from_arrays(arrays, schema=schema)


def file_error(path: Path, exc: OSError) -> OSError:
    """``exc`` as an OSError that names ``path`` (pyarrow's errors often name no file)."""
    if exc.filename:
        return exc
    code = exc.errno if exc.errno is not None else (_errno.ENOSPC if "space" in str(exc).lower() else _errno.EIO)
    return OSError(code, exc.strerror or str(exc), str(path))


class TableWriter:
    """Rows of one table -> ``<dir>/<table>.parquet`` (+ ``.csv``), flushed by rows and by size.

    ``add(row)`` takes a tuple in schema order; rows past ``limit`` are counted, not kept.
    ``close()`` flushes and returns the path; the file is complete only after it.
    ``transform(table)`` (optional) may rewrite each Arrow row group before it is written
    (the pdus writer fills in the session column there).
    """

    def __init__(
        self,
        table: str,
        directory: Path,
        *,
        limit: int | None = None,
        csv: bool = False,
        text_columns: Iterable[str] = (),
        transform: Callable[[pa.Table], pa.Table] | None = None,
        row_group_rows: int = ROW_GROUP_ROWS,
        max_buffer_bytes: int = MAX_BUFFER_BYTES,
    ) -> None:
        self.name = table
        self.path = directory / f"{table}.parquet"
        self.csv_path = directory / f"{table}.csv" if csv else None
        self.limit = limit
        self.kept = 0
        self.seen = 0
        self.row_groups = 0
        self._rows: list[tuple[Any, ...]] = []
        cols = list(frames.SCHEMAS[table])
        self._text_idx = [cols.index(c) for c in text_columns]
        self._buffered_text = 0
        self._transform = transform
        self._group_rows = row_group_rows
        self._max_bytes = max_buffer_bytes
        self._writer: pq.ParquetWriter | None = None
        self._sink: Any = None  #: the open file under ``_writer``
        self._csv_started = False

    @property
    def buffered_rows(self) -> int:
        """Rows waiting for the next row group."""
        return len(self._rows)

    @property
    def buffered_text(self) -> int:
        """Characters of the text columns waiting for the next row group."""
        return self._buffered_text

    def add(self, row: tuple[Any, ...]) -> bool:
        """One row (a tuple in schema order); False when it was past the limit (counted only)."""
        self.seen += 1
        if self.limit is not None and self.kept >= self.limit:
            return False
        self.kept += 1
        self._rows.append(row)
        if self._text_idx:
            for i in self._text_idx:
                v = row[i]
                if v is not None:
                    self._buffered_text += len(v)
            if self._buffered_text >= self._max_bytes:
                self.flush()
                return True
        if len(self._rows) >= self._group_rows:
            self.flush()
        return True

    def flush(self) -> None:
        """Write the buffered rows as one row group (no-op when empty)."""
        if not self._rows:
            return
        rows, self._rows, self._buffered_text = self._rows, [], 0
        columns = list(zip(*rows, strict=True))
        self._write(columns_table(self.name, columns), columns)

    def _write(self, t: pa.Table, columns: list[Any] | None) -> None:
        if self._transform is not None:
            t = self._transform(t)
        try:
            if self._writer is None:
                self._writer = self._open_writer()
            self._writer.write_table(t)
        except OSError as exc:
            raise file_error(self.path, exc) from exc
        self.row_groups += 1
        if self.csv_path is not None and columns is not None:
            self._write_csv(dict(zip(frames.SCHEMAS[self.name], columns, strict=True)))

    def _write_csv(self, columns: dict[str, Any]) -> None:
        from analyzer.reports.files import csv_safe

        assert self.csv_path is not None
        df = csv_safe(frames.build(self.name, columns))
        try:
            df.to_csv(self.csv_path, index=False, header=not self._csv_started,
                      mode="a" if self._csv_started else "w")
        except OSError as exc:
            raise file_error(self.csv_path, exc) from exc
        self._csv_started = True

    def close(self) -> list[Path]:
        """Flush and close; the files written (an empty table still gets its files)."""
        self.flush()
        try:
            if self._writer is None:
                self._writer = self._open_writer()
                self._writer.write_table(arrow_schema(self.name).empty_table())
            self._writer.close()
            self._close_sink()
        except OSError as exc:
            raise file_error(self.path, exc) from exc
        out = [self.path]
        if self.csv_path is not None:
            if not self._csv_started:
                self._write_csv({})
            out.append(self.csv_path)
        return out

    def abort(self) -> None:
        """Close without completing (the directory is thrown away by ``ReportDir``)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        with contextlib.suppress(Exception):
            self._close_sink()
        self._rows = []

    def _open_writer(self) -> pq.ParquetWriter:
        # Through a Python file object: pyarrow cannot encode file names that are not UTF-8
        # (a capture named clean-\xff.pcap gives a report directory of that name).
        self._sink = open(self.path, "wb")  # noqa: SIM115 - closed in close()/abort()
        return pq.ParquetWriter(self._sink, arrow_schema(self.name), memory_pool=POOL)

    def _close_sink(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.close()


def read_parquet(path: Any, columns: list[str] | None = None) -> pd.DataFrame:
    """A Parquet file as a DataFrame, read through a file object (any bytes in the path)."""
    with open(path, "rb") as fh:
        return pd.read_parquet(fh, engine="pyarrow", columns=columns)


def parquet_rows(path: Any) -> int:
    """Row count of a Parquet file from its footer (any bytes in the path)."""
    with open(path, "rb") as fh:
        return int(pq.ParquetFile(fh).metadata.num_rows)


def write_table_file(table: str, df: pd.DataFrame, path: Path) -> Path:
    """A whole conformed DataFrame as one Parquet file with the fixed schema."""
    try:
        with open(path, "wb") as fh:  # a file object: pyarrow cannot encode non-UTF-8 path names
            pq.write_table(to_arrow(table, df), fh)
    except OSError as exc:
        raise file_error(path, exc) from exc
    return path


# --------------------------------------------------------------------------- report directories

#: Files a report directory may hold (anything else means the directory is not only ours).
def report_file_names() -> set[str]:
    from analyzer.reports.diagnosis import DIAGNOSIS_TABLES
    from analyzer.reports.files import CAPTURE_FILE, CSV_TABLES, PARQUET_TABLES

    names = {f"{t}.parquet" for t in (*PARQUET_TABLES, *DIAGNOSIS_TABLES)} | {f"{t}.csv" for t in CSV_TABLES}
    return names | {CAPTURE_FILE, "report.html", "summary.txt", INCOMPLETE_MARKER}


def _pid_alive(text: str) -> bool:
    if not text.isdigit():
        return False
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ReportDir:
    """A report directory written under a temporary name and renamed into place when complete.

    ``work`` is ``<parent>/.<name>.tmp-<pid>`` holding an ``.incomplete`` marker until
    ``commit``. ``commit`` removes the marker and swaps the finished directory in: an existing
    report at ``final`` is first renamed aside and deleted after the swap, so at every instant
    ``final`` is either the old complete report, absent, or the new complete report. An
    interrupted or failed write leaves only the hidden temporary directory (with its marker,
    so ``load`` refuses it); ``abort`` deletes it.

    When ``final`` exists and holds files that are not a report's (the user pointed ``--out``
    at a directory of their own), it is not replaced: the files are moved in one by one
    (each ``os.replace``), and the marker stays in ``final`` until the last one is in.
    """

    def __init__(self, final: str | os.PathLike[str]) -> None:
        self.final = Path(final)
        parent = self.final.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise file_error(parent, exc) from exc
        self.work = parent / f".{self.final.name}.tmp-{os.getpid()}"
        for stale in parent.glob(f".{glob.escape(self.final.name)}.tmp-*"):  # runs that were killed
            if stale == self.work or not _pid_alive(stale.name.rpartition("-")[2]):
                shutil.rmtree(stale, ignore_errors=True)
        try:
            self.work.mkdir()
            (self.work / INCOMPLETE_MARKER).write_text("report being written\n", encoding="utf-8")
        except OSError as exc:
            raise file_error(self.work, exc) from exc

    def _foreign(self) -> bool:
        if not self.final.is_dir():
            return False
        ours = report_file_names()
        return any(p.name not in ours for p in self.final.iterdir())

    def commit(self) -> list[Path]:
        """Put the finished directory in place; returns its files under the final name."""
        names = sorted(p.name for p in self.work.iterdir() if p.name != INCOMPLETE_MARKER)
        if self.final.exists() and not self.final.is_dir():
            raise OSError(_errno.ENOTDIR, "exists and is not a directory", str(self.final))
        if self._foreign():
            marker = self.final / INCOMPLETE_MARKER
            marker.write_text("report being written\n", encoding="utf-8")
            for n in names:
                os.replace(self.work / n, self.final / n)
            marker.unlink()
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            (self.work / INCOMPLETE_MARKER).unlink()
            old = None
            if self.final.exists():
                old = self.final.parent / f".{self.final.name}.old-{os.getpid()}"
                if old.exists():
                    shutil.rmtree(old, ignore_errors=True)
                os.replace(self.final, old)
            os.replace(self.work, self.final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        return [self.final / n for n in names]

    def abort(self) -> None:
        """Throw the temporary directory away."""
        shutil.rmtree(self.work, ignore_errors=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same directory, renamed into
    place only when complete (a full disk leaves the old file as it was and no temporary file)."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OSError(exc.errno or _errno.EIO, exc.strerror or str(exc), str(p)) from exc
    return p
