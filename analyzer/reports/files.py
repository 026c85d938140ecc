"""Report directories: one Parquet file per table, CSV for the small tables, ``capture.json``.

Parquet is the authoritative copy (``read_dir`` loads it back with the exact dtypes of
``frames.SCHEMAS``). The CSV copies are for people and spreadsheets: text cells that a
spreadsheet would run as a formula (starting with ``= + - @``, tab or CR) are prefixed with
``'`` (OWASP "CSV injection"). Secrets in the keys table (CHAP_C, CHAP_R, CHAP_N, ...) are
masked before anything is written.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Final

import pandas as pd

from analyzer.render.output import escape_controls
from analyzer.reports import frames
from analyzer.reports.diagnosis import DIAGNOSIS_TABLES
from analyzer.reports.tables import INCOMPLETE_MARKER, ReportDir, file_error, write_table_file
from analyzer.reports.tables import read_parquet as _read_parquet

#: Tables written as Parquet (all of them).
PARQUET_TABLES: Final = ("pdus", "tasks", "sessions", "connections", "transitions", "anomalies", "keys")
#: Tables also written as CSV (the small ones).
CSV_TABLES: Final = ("sessions", "connections", "transitions", "anomalies")
CAPTURE_FILE: Final = "capture.json"
#: Leading characters that make a spreadsheet evaluate a cell.
FORMULA_CHARS: Final = ("=", "+", "-", "@", "\t", "\r")
FORMAT_VERSION: Final = 1


def neutralise_cell(value: Any) -> Any:
    """``'`` + value when a spreadsheet would treat the text cell as a formula; control
    characters shown as escapes (``analyzer.render.output.escape_controls``)."""
    if isinstance(value, str):
        value = escape_controls(value)
        if value.startswith(FORMULA_CHARS):
            return "'" + value
    return value


def csv_safe(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text columns are neutralised (numbers and timestamps untouched)."""
    out = df.copy()
    for c in out.columns:
        dt = out[c].dtype
        if isinstance(dt, (pd.StringDtype, pd.CategoricalDtype)) or dt == object:  # noqa: E721 - a NumPy dtype compares equal to its type
            out[c] = out[c].astype(object).map(neutralise_cell)
    return out


def write_dir(
    tables: dict[str, pd.DataFrame], capture: dict[str, Any], out_dir: str | os.PathLike[str]
) -> list[Path]:
    """Write the tables and capture info to ``out_dir``; returns the files written.

    Everything is written into a temporary directory first and renamed into place when
    complete (``tables.ReportDir``): an interrupted write never leaves a mixed directory.
    """
    rd = ReportDir(out_dir)
    try:
        write_into(rd.work, tables, capture)
        return rd.commit()
    except BaseException:
        rd.abort()
        raise


def write_into(out: Path, tables: dict[str, pd.DataFrame], capture: dict[str, Any]) -> list[Path]:
    """The tables (fixed Arrow schema, ``tables.arrow_schema``) and capture.json, into ``out``."""
    written: list[Path] = []
    for name in (*PARQUET_TABLES, *DIAGNOSIS_TABLES):
        df = tables.get(name)
        if df is None:
            df = frames.empty(name)
        if name == "keys":
            df = frames.mask_key_values(df)
        df = frames.conform(name, df)
        written.append(write_table_file(name, df, out / f"{name}.parquet"))
        if name in CSV_TABLES:
            path = out / f"{name}.csv"
            try:
                csv_safe(df).to_csv(path, index=False)
            except OSError as exc:
                raise file_error(path, exc) from exc
            written.append(path)
    written.append(write_capture(out, capture))
    return written


def write_capture(out: Path, capture: dict[str, Any]) -> Path:
    """``capture.json`` (the last file of a report directory)."""
    path = out / CAPTURE_FILE
    doc = {"format_version": FORMAT_VERSION, **capture}
    try:
        path.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    except OSError as exc:
        raise file_error(path, exc) from exc
    return path


def copy_dir(src: Path, capture: dict[str, Any], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Copy the table files of a complete report directory to ``out_dir`` (atomically, as ``write_dir``)."""
    rd = ReportDir(out_dir)
    try:
        for name in (*PARQUET_TABLES, *DIAGNOSIS_TABLES):
            if name in DIAGNOSIS_TABLES and not (src / f"{name}.parquet").exists():
                continue  # a report written before the diagnosis tables
            shutil.copyfile(src / f"{name}.parquet", rd.work / f"{name}.parquet")
            if name in CSV_TABLES:
                shutil.copyfile(src / f"{name}.csv", rd.work / f"{name}.csv")
        write_capture(rd.work, capture)
        return rd.commit()
    except BaseException:
        rd.abort()
        raise


class IncompleteReport(ValueError):
    """A report directory that was not completely written (an interrupted ``analyze``)."""


def check_dir(report_dir: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    """The directory and its capture info, after checking it is a complete report directory."""
    d = Path(report_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: not a report directory")
    if (d / INCOMPLETE_MARKER).exists():
        raise IncompleteReport(
            f"{d}: incomplete report directory (an 'analyze' run was interrupted while writing it); "
            "run 'iscsi-analyzer analyze' again")
    cap_path = d / CAPTURE_FILE
    if not cap_path.exists():
        raise FileNotFoundError(f"{d}: no {CAPTURE_FILE} (not written by 'iscsi-analyzer analyze')")
    try:
        capture = json.loads(cap_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise IncompleteReport(f"{cap_path}: unreadable ({exc})") from exc
    capture.pop("format_version", None)
    missing = [f"{n}.parquet" for n in PARQUET_TABLES if not (d / f"{n}.parquet").exists()]
    if missing and len(missing) < len(PARQUET_TABLES):
        raise IncompleteReport(f"{d}: incomplete report directory (missing {', '.join(missing)})")
    return d, capture


def read_dir(report_dir: str | os.PathLike[str]) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Read a directory written by ``write_dir``: (tables with their dtypes, capture info)."""
    d, capture = check_dir(report_dir)
    tables: dict[str, pd.DataFrame] = {}
    for name in (*PARQUET_TABLES, *DIAGNOSIS_TABLES):
        path = d / f"{name}.parquet"
        if path.exists():
            tables[name] = frames.conform(name, _read_parquet(path))
        else:
            tables[name] = frames.empty(name)
    return tables, capture
