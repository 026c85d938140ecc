"""Partitioned Parquet datasets for ``iscsi-analyzer batch`` (the pandas side of ``analyzer.batch``).

Layout (Hive partitioning, read directly by pandas, Dask and DuckDB)::

    DIR/<table>/chain=<chain id>/part-<NNNNN>.parquet

``pdus`` has one part per capture file of the chain (rows in capture order, part names in
file order); the other tables (``tasks``, ``sessions``, ``connections``, ``transitions``,
``anomalies``, ``keys``) have one part per chain. Every part has exactly the columns and dtypes
of ``frames.SCHEMAS`` (``chain`` is not a column in the files: readers add it from the
directory name). Secrets in ``keys`` are masked, as in ``Analysis.write``.

>>> pd.read_parquet("DIR/sessions")                                         # doctest: +SKIP
>>> dd.read_parquet("DIR/pdus")                                             # doctest: +SKIP
>>> duckdb.sql("select * from read_parquet('DIR/tasks/*/*.parquet', hive_partitioning=true)")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from analyzer.records import LoginRequest, LoginResponse, MalformedPdu, Pdu, Record, TextRequest, TextResponse
from analyzer.reports import frames
from analyzer.reports.collect import Collected, Collector, Limits
from analyzer.reports.tables import read_parquet as _read_parquet
from analyzer.reports.tables import write_table_file

#: Tables written by ``batch`` (``keys`` masked).
DATASET_TABLES: Final = ("pdus", "tasks", "sessions", "connections", "transitions", "anomalies", "keys")
#: Columns of ``pdus`` holding frame numbers (renumbered to chain-global numbers).
PDU_FRAME_COLUMNS: Final = ("frame", "first_frame")
_LOW: Final = 0xFFFFFFFF
_KEY_TYPES: Final = (LoginRequest, LoginResponse, TextRequest, TextResponse)
#: Helper columns of a worker's PDU rows: capture position of the segment that produced the
#: row, position within the file's output, and the stream unit it belongs to.
SEG, ORD, UNIT = "_seg", "_ord", "_unit"


class PduRows:
    """PDU rows built where the PDUs are decoded (a batch worker), with their stream positions."""

    def __init__(self) -> None:
        self.endpoints: dict[str, Any] = {}
        self.rows: list[dict[str, Any]] = []
        self.seg: list[int] = []
        self.unit: list[int] = []

    def opened(self, rec: Any) -> None:
        """A ``TcpOpened``: the endpoints of its connection (for the src/dst columns)."""
        self.endpoints[rec.conn] = frames.endpoints_of(rec)

    def add(self, rec: Pdu | MalformedPdu, seg: int, unit: int) -> None:
        """One PDU record produced while feeding the segment at capture position ``seg``."""
        self.rows.append(frames.pdu_record_row(rec, self.endpoints.get(rec.conn)))
        self.seg.append(seg)
        self.unit.append(unit)

    def frame(self) -> pd.DataFrame:
        """The rows as a ``pdus`` table (final dtypes, no session yet) plus the helper columns.

        Built final (category columns made) where the rows are built, so that the chain only
        renumbers, fills the session column and writes."""
        df = frames.build("pdus", self.rows)
        df[SEG] = np.asarray(self.seg, dtype="int64")
        df[ORD] = np.arange(len(df), dtype="int64")
        df[UNIT] = np.asarray(self.unit, dtype="int64")
        self.rows, self.seg, self.unit = [], [], []
        return df


def renumber(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Batch frame positions (``file index << 32 | frame in file``) -> chain-global frame numbers."""
    v = values.astype("int64", copy=False)
    out: np.ndarray = offsets[v >> 32] + (v & _LOW)
    return out


def file_pdus(worker: pd.DataFrame | None, rejected_units: Iterable[int], local: pd.DataFrame | None,
              offsets: np.ndarray) -> pd.DataFrame:
    """The pdus rows of one file: the worker's rows of accepted units merged, in capture order,
    with the rows the driver decoded itself (re-run units); frames made chain-global."""
    parts = []
    if worker is not None and len(worker):
        rej = list(rejected_units)
        parts.append(worker[~worker[UNIT].isin(rej)] if rej else worker)
    if local is not None and len(local):
        parts.append(local)
    if not parts:
        return frames.empty("pdus")
    if len(parts) == 1:
        df = parts[0].drop(columns=[SEG, ORD, UNIT]).reset_index(drop=True)
    else:
        helper = pd.concat([p[[SEG, ORD]] for p in parts], ignore_index=True)
        order = np.lexsort((helper[ORD].to_numpy(), helper[SEG].to_numpy()))  # stable: (seg, ord)
        df = frames.concat("pdus", [p.drop(columns=[SEG, ORD, UNIT]).reset_index(drop=True) for p in parts])
        df = df.take(order).reset_index(drop=True)
    for c in PDU_FRAME_COLUMNS:
        df[c] = renumber(df[c].to_numpy(), offsets)
    return df


class BatchCollector(Collector):
    """``Collector`` for a chain whose PDU rows are built elsewhere (by the workers).

    ``feed(rec)`` accounts for a record like ``Collector.feed`` but builds no pdus row for a
    PDU; ``feed_local(rec, seg)`` does build one (PDUs the driver decoded itself) and keeps it
    for ``take_local``. The pdus table of ``finish`` is empty: the parts are on disk.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__(limits)
        self._local = PduRows()
        self._local_ord = 0

    def feed(self, rec: Record) -> None:
        """Account for one record (PDU rows are not built here)."""
        t = type(rec)
        if not isinstance(rec, (Pdu, MalformedPdu)):
            if t.__name__ == "TcpOpened":
                self._local.opened(rec)
            super().feed(rec)
            return
        self.counts[t.__name__] += 1
        ts = rec.ts_ns
        if ts:
            if self.first_ts is None or ts < self.first_ts:
                self.first_ts = ts
            if self.last_ts is None or ts > self.last_ts:
                self.last_ts = ts
        self.last_frame = max(self.last_frame, rec.frame)
        self._pdus.seen += 1
        self._pdus.kept += 1
        if t in _KEY_TYPES:
            for row in frames.key_rows(rec):  # type: ignore[arg-type]
                self._keys.add(row)

    def feed_local(self, rec: Record, seg: int) -> None:
        """Account for a record the driver decoded itself (its PDU row is built here)."""
        self.feed(rec)
        if isinstance(rec, (Pdu, MalformedPdu)):
            self._local.add(rec, seg, -1)

    def take_local(self) -> pd.DataFrame | None:
        """The PDU rows built by ``feed_local`` since the last call (frames already global)."""
        if not self._local.rows:
            return None
        df = self._local.frame()
        df[ORD] = df[ORD] + self._local_ord
        self._local_ord += len(df)
        return df

    def conn_sessions(self) -> dict[str, str]:
        """Connection -> session, as ``Collector.finish`` maps the pdus table."""
        out = dict(self._conn_session)
        for c in self._connections.values():
            if c.session:
                out[c.conn] = c.session
        return out


# --------------------------------------------------------------------------- files


def part_path(out_dir: str | os.PathLike[str], table: str, chain: str, part: int) -> Path:
    """``DIR/<table>/chain=<chain>/part-<part>.parquet``."""
    return Path(out_dir) / table / f"chain={chain}" / f"part-{part:05d}.parquet"


def _write(df: pd.DataFrame, path: Path, table: str | None = None) -> Path:
    """One part, written under a temporary name and renamed into place when complete, with the
    table's fixed Arrow schema (``tables.arrow_schema``: int32 dictionary indices in every part,
    so pandas, Dask and DuckDB read all parts of a table as one)."""
    name = table or path.parent.parent.name
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_table_file(name, df, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OSError(exc.errno or errno.EIO, exc.strerror or str(exc), str(path)) from exc
    return path


_DTYPES: dict[str, dict[str, Any]] = {}


def is_conformed(table: str, df: pd.DataFrame) -> bool:
    """Whether ``df`` already has exactly the table's columns and dtypes (``frames.conform``
    would only rebuild it: category columns with sorted string categories)."""
    ref = _DTYPES.get(table)
    if ref is None:
        ref = _DTYPES[table] = {str(c): d for c, d in frames.empty(table).dtypes.items()}
    if list(df.columns) != list(ref):
        return False
    for c, want in ref.items():
        got = df[c].dtype
        if isinstance(want, pd.CategoricalDtype):
            if not (isinstance(got, pd.CategoricalDtype) and got.ordered == want.ordered
                    and got.categories.dtype == want.categories.dtype and got.categories.is_monotonic_increasing):
                return False
        elif got != want:
            return False
    return True


def _conformed(table: str, df: pd.DataFrame) -> pd.DataFrame:
    return df if is_conformed(table, df) else frames.conform(table, df)


def write_spill(df: pd.DataFrame, path: Path) -> Path:
    """A pdus part without its session column yet (finished by ``finish_pdus_part``)."""
    return _write(_conformed("pdus", df), path, "pdus")


def finish_pdus_frame(part: Path | pd.DataFrame | None, conn_session: dict[str, str],
                      extra: pd.DataFrame | None = None) -> pd.DataFrame:
    """A pdus part (spilled file, or frame) plus ``extra`` rows after it, with the session column filled in."""
    if isinstance(part, Path):
        df = frames.conform("pdus", _read_parquet(part))
    elif part is None:
        df = frames.empty("pdus")
    else:
        df = _conformed("pdus", part)
    if extra is not None and len(extra):
        df = frames.concat("pdus", [df, _conformed("pdus", extra)])
    if len(df) and conn_session:
        df["session"] = frames.map_category(df["conn"], conn_session)
    return df


def finish_pdus_part(spill: Path | pd.DataFrame | None, conn_session: dict[str, str], path: Path,
                     extra: pd.DataFrame | None = None) -> tuple[Path, int]:
    """Finish a spilled pdus part (``finish_pdus_frame``) and write it as the final part."""
    df = finish_pdus_frame(spill, conn_session, extra)
    _write(df, path, "pdus")
    if isinstance(spill, Path):
        spill.unlink()
    return path, len(df)


def write_chain_tables(collected: Collected, out_dir: str | os.PathLike[str], chain: str) -> list[Path]:
    """The chain's tables other than pdus (one part each)."""
    written = []
    for name in DATASET_TABLES:
        if name == "pdus":
            continue
        df = collected.tables.get(name)
        if df is None:
            df = frames.empty(name)
        if name == "keys":
            df = frames.mask_key_values(df)
        written.append(_write(_conformed(name, df), part_path(out_dir, name, chain, 0)))
    return written


def write_tables(tables: dict[str, pd.DataFrame], out_dir: str | os.PathLike[str], chain: str) -> list[Path]:
    """Every table of one whole analysis (``Analysis.tables``) as the parts of one chain: what
    a batch run writes for a single-file chain (the benchmark's sequential baseline)."""
    written = [_write(_conformed("pdus", tables.get("pdus", frames.empty("pdus"))),
                      part_path(out_dir, "pdus", chain, 0))]
    for name in DATASET_TABLES:
        if name == "pdus":
            continue
        df = tables.get(name)
        if df is None:
            df = frames.empty(name)
        if name == "keys":
            df = frames.mask_key_values(df)
        written.append(_write(_conformed(name, df), part_path(out_dir, name, chain, 0)))
    return written


def read_table(out_dir: str | os.PathLike[str], table: str, *, chain: str | None = None,
               max_rows: int | None = None) -> pd.DataFrame:
    """One table of a batch dataset (all chains, or one) with its dtypes, without the chain column."""
    base = Path(out_dir) / table
    dirs = sorted(base.glob("chain=*")) if chain is None else [base / f"chain={chain}"]
    parts: list[pd.DataFrame] = []
    rows = 0
    for d in dirs:
        for f in sorted(d.glob("part-*.parquet")):
            if max_rows is not None and rows >= max_rows:
                break
            df = _read_parquet(f)
            if max_rows is not None and rows + len(df) > max_rows:
                df = df.iloc[: max_rows - rows]
            rows += len(df)
            parts.append(frames.conform(table, df))
    return frames.concat(table, parts)


def chain_tables(collected: Collected) -> dict[str, pd.DataFrame]:
    """The in-memory tables of a finished chain (for the whole-set HTML report)."""
    return {k: v for k, v in collected.tables.items() if k != "pdus"}


def concat_tables(per_chain: list[dict[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """Tables of several chains concatenated (for the whole-set HTML report)."""
    out: dict[str, pd.DataFrame] = {}
    for name in DATASET_TABLES:
        if name == "pdus":
            continue
        out[name] = frames.concat(name, [t[name] for t in per_chain if name in t])
    return out
