"""Batch datasets: every part of a table has the one fixed Arrow schema, so pandas, Dask and
DuckDB read a multi-part table whose parts have very different numbers of categories (the
int8-vs-int16 dictionary index mismatch, ArrowInvalid 'Integer value 134 not in range')."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analyzer.reports import dataset, frames, tables


def _anomalies(n_kinds: int, rows: int) -> pd.DataFrame:
    return frames.build("anomalies", [
        {"frame": i, "ts": 1_700_000_000_000_000_000 + i, "severity": "warning", "kind": f"kind_{i % n_kinds:03d}",
         "session": None, "conn": "c", "message": "m", "rfc": None, "frames": str(i), "display_filter": "f"}
        for i in range(rows)
    ])


def _pdus(n_conns: int, rows: int) -> pd.DataFrame:
    return frames.build("pdus", [
        {"frame": i, "ts": 1_700_000_000_000_000_000 + i, "src": f"10.0.{i % n_conns // 250}.{i % n_conns % 250}",
         "sport": 1000 + i % n_conns, "dst": "10.1.0.1", "dport": 3260, "direction": "i2t", "opcode": "0x01",
         "opcode_name": "SCSI Command", "itt": f"0x{i:08x}", "lun": 0, "dsl": 0, "info": "x", "first_frame": i,
         "conn": f"conn{i % n_conns}", "session": f"s{i % n_conns}"}
        for i in range(rows)
    ])


@pytest.fixture
def two_part_dataset(tmp_path: Path) -> Path:
    # part 0: 3 categories (pandas alone would write int8 indices), part 1: 300 (int16)
    for chain, (k, n) in {"a": (3, 10), "b": (300, 600)}.items():
        dataset.write_tables({"pdus": _pdus(k, n), "anomalies": _anomalies(k, n)}, tmp_path, chain)
    return tmp_path


def test_parts_share_one_schema(two_part_dataset: Path) -> None:
    for table in ("pdus", "anomalies", "tasks", "sessions"):
        schemas = {pq.read_schema(p).remove_metadata() for p in (two_part_dataset / table).glob("*/*.parquet")}
        assert schemas == {tables.arrow_schema(table).remove_metadata()}, table
        for f in next(iter(schemas)):
            if pa.types.is_dictionary(f.type):
                assert f.type.index_type == pa.int32()


def test_pandas_reads_a_multi_part_table(two_part_dataset: Path) -> None:
    df = pd.read_parquet(two_part_dataset / "pdus")
    assert len(df) == 610 and df["conn"].nunique() == 300
    an = pd.read_parquet(two_part_dataset / "anomalies")
    assert len(an) == 610 and set(an["chain"].astype(str)) == {"a", "b"}
    assert len(dataset.read_table(two_part_dataset, "pdus")) == 610


def test_dask_reads_a_multi_part_table(two_part_dataset: Path) -> None:
    dd = pytest.importorskip("dask.dataframe")
    df = dd.read_parquet(str(two_part_dataset / "pdus")).compute()
    assert len(df) == 610 and df["conn"].astype(str).nunique() == 300


def test_duckdb_reads_a_multi_part_table(two_part_dataset: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    glob = str(two_part_dataset / "pdus" / "*" / "*.parquet")
    ((n, conns),) = duckdb.sql(
        f"select count(*), count(distinct conn) from read_parquet('{glob}', hive_partitioning=true)"
    ).fetchall()
    assert (n, conns) == (610, 300)
