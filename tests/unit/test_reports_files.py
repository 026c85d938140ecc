"""Report directories: Parquet round trip with dtypes, CSV formula neutralisation, secrets never written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from test_reports_html import CHAP_C, CHAP_R, FORMULA, SCRIPT, hostile_stream, session_stream

from analyzer.api import analyze_records, load
from analyzer.reports import files, frames
from analyzer.reports.diagnosis import DIAGNOSIS_TABLES


def test_write_and_load_round_trip(tmp_path: Path) -> None:
    a = analyze_records(session_stream())
    written = a.write(tmp_path / "rep")
    names = sorted(p.name for p in written)
    assert names == sorted(
        [f"{t}.parquet" for t in (*files.PARQUET_TABLES, *DIAGNOSIS_TABLES)]
        + [f"{t}.csv" for t in files.CSV_TABLES]
        + ["capture.json"]
    )
    b = load(tmp_path / "rep")
    for table in ("pdus", "tasks", "sessions", "connections", "transitions", "anomalies"):
        assert len(getattr(a, table)) > 0, table
        assert_frame_equal(getattr(b, table), getattr(a, table), obj=table)
    for table in DIAGNOSIS_TABLES:
        assert_frame_equal(b.table(table), a.table(table), obj=table)
    assert_frame_equal(b.keys, frames.mask_key_values(a.keys))
    assert b.capture.pdus == a.capture.pdus and b.capture.stats == a.capture.stats
    assert not b.capture.secrets_available


def test_secrets_are_never_written(tmp_path: Path) -> None:
    a = analyze_records(session_stream())
    assert CHAP_R in set(a.keys["value"])  # in memory, as on the wire
    a.write(tmp_path)
    for p in tmp_path.iterdir():
        data = p.read_bytes()
        assert CHAP_R.encode() not in data and CHAP_C.encode() not in data, p.name
    assert "********" in set(load(tmp_path).keys["value"])


def test_csv_cells_neutralised(tmp_path: Path) -> None:
    a = analyze_records(hostile_stream())
    a.write(tmp_path)
    with open(tmp_path / "sessions.csv", newline="", encoding="utf-8") as f:
        row = next(csv.DictReader(f))
    assert row["target_alias"] == "'" + FORMULA + SCRIPT
    assert row["initiator_name"].endswith(SCRIPT)  # text, not a formula: left as is
    with open(tmp_path / "anomalies.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["message"] for r in rows if r["kind"] == "formula_kind"} == {"'" + FORMULA}
    # every text cell of every CSV is safe
    for name in files.CSV_TABLES:
        with open(tmp_path / f"{name}.csv", newline="", encoding="utf-8") as f:
            for r in csv.reader(f):
                for cell in r:
                    assert not cell.startswith(("=", "+", "@", "\t", "\r")), (name, cell)
    # Parquet keeps the exact text
    assert load(tmp_path).sessions.loc[0, "target_alias"] == FORMULA + SCRIPT


@pytest.mark.parametrize(
    "value, expected",
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("plain", "plain"),
        ("", ""),
        (None, None),
        (5, 5),
        (-5, -5),
    ],
)
def test_neutralise_cell(value: object, expected: object) -> None:
    assert files.neutralise_cell(value) == expected


def test_csv_numbers_untouched() -> None:
    df = pd.DataFrame({"n": pd.Series([-1, 2], dtype="Int64"), "s": pd.Series(["-x", "y"], dtype="string")})
    safe = files.csv_safe(df)
    assert list(safe["n"]) == [-1, 2] and list(safe["s"]) == ["'-x", "y"]


def test_empty_analysis_round_trip(tmp_path: Path) -> None:
    a = analyze_records([])
    a.write(tmp_path)
    b = load(tmp_path)
    for t, df in a.tables.items():
        assert_frame_equal(b.tables[t], df, obj=t)
    doc = json.loads((tmp_path / "capture.json").read_text())
    assert doc["format_version"] == files.FORMAT_VERSION and doc["pdus"] == 0


def test_load_rejects_other_directories(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load(tmp_path)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing")
