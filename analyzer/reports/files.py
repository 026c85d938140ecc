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
from pathlib import Path
from typing import Any, Final

import pandas as pd

from analyzer.render.output import escape_controls
from analyzer.reports import frames

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
        if isinstance(dt, (pd.StringDtype, pd.CategoricalDtype)) or dt == object:
            out[c] = out[c].astype(object).map(neutralise_cell)
    return out


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    with open(path, "wb") as fh:  # a file object: pyarrow cannot encode non-UTF-8 path names
        df.to_parquet(fh, index=False, engine="pyarrow")


def write_dir(
    tables: dict[str, pd.DataFrame], capture: dict[str, Any], out_dir: str | os.PathLike[str]
) -> list[Path]:
    """Write the tables and capture info to ``out_dir`` (created); returns the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name in PARQUET_TABLES:
        df = tables.get(name)
        if df is None:
            df = frames.empty(name)
        if name == "keys":
            df = frames.mask_key_values(df)
        df = frames.conform(name, df)
        path = out / f"{name}.parquet"
        _atomic_write(path, lambda p, d=df: _write_parquet(d, p))
        written.append(path)
        if name in CSV_TABLES:
            path = out / f"{name}.csv"
            safe = csv_safe(df)
            _atomic_write(path, lambda p, d=safe: d.to_csv(p, index=False))
            written.append(path)
    path = out / CAPTURE_FILE
    doc = {"format_version": FORMAT_VERSION, **capture}
    _atomic_write(
        path,
        lambda p: p.write_text(
            json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
        ),
    )
    written.append(path)
    return written


def read_dir(report_dir: str | os.PathLike[str]) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Read a directory written by ``write_dir``: (tables with their dtypes, capture info)."""
    d = Path(report_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: not a report directory")
    cap_path = d / CAPTURE_FILE
    if not cap_path.exists():
        raise FileNotFoundError(f"{d}: no {CAPTURE_FILE} (not written by 'iscsi-analyzer analyze')")
    capture = json.loads(cap_path.read_text(encoding="utf-8"))
    capture.pop("format_version", None)
    tables: dict[str, pd.DataFrame] = {}
    for name in PARQUET_TABLES:
        path = d / f"{name}.parquet"
        if path.exists():
            with open(path, "rb") as fh:  # a file object: pyarrow cannot encode non-UTF-8 path names
                tables[name] = frames.conform(name, pd.read_parquet(fh, engine="pyarrow"))
        else:
            tables[name] = frames.empty(name)
    return tables, capture
