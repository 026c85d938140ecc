"""Streaming tables: the streamed tables equal the in-memory ones, row groups are flushed by rows
and by size, the pdus session column is exact even when a connection's session is learnt late,
``Analysis`` reads tables lazily, every table has one fixed Arrow schema."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pandas.testing import assert_frame_equal
from test_reports_html import session_stream

from analyzer.api import analyze, load
from analyzer.reports import frames, tables
from analyzer.reports.analysis import Analysis, CaptureInfo
from analyzer.reports.collect import Collector
from analyzer.reports.stream import StreamCollector

STREAMED = ("pdus", "tasks", "transitions", "anomalies")


def _streamed(tmp_path: Path, records: list, **sizes: int) -> tuple[StreamCollector, Analysis]:
    sc = StreamCollector(tmp_path, **sizes)
    sc.feed_all(records)
    col = sc.finish()
    return sc, Analysis.from_dir(tmp_path, CaptureInfo(), tables=col.tables, pdu_summary=sc.summary)


@pytest.mark.parametrize("rows", [1, 3, 7, 65536])
def test_streamed_tables_equal_collected(tmp_path: Path, rows: int) -> None:
    records = session_stream() + session_stream(initiator_name="iqn.2000-01.com.example:other")
    want = Collector()
    want.feed_all(records)
    expected = want.finish()
    sc, a = _streamed(tmp_path, records, row_group_rows=rows)
    for name in (*STREAMED, "sessions", "connections"):
        assert_frame_equal(a.table(name), expected.tables[name], obj=name)
    assert_frame_equal(a.keys, expected.tables["keys"])  # unmasked in memory
    if rows < 10:
        assert sc.writers["pdus"].row_groups > 1
        assert pq.ParquetFile(tmp_path / "pdus.parquet").num_row_groups == sc.writers["pdus"].row_groups
    # the first row groups were written before the session was known: the file was fixed up
    assert sc.rewrote_pdus == (rows == 1)
    assert a.table("pdus")["session"].notna().all()


def test_flush_by_size_bounds_the_buffer(tmp_path: Path) -> None:
    w = tables.TableWriter("anomalies", tmp_path, csv=True, text_columns=("message",), max_buffer_bytes=50_000)
    text = "x" * 1000
    most = 0
    for i in range(2000):  # 2 MB of text through a 50 kB buffer
        w.add((i, i, "warning", "k", None, None, text, None, str(i), "frame.number == 1"))
        most = max(most, w.buffered_text)
    w.close()
    assert most < 50_000 + len(text)
    assert w.row_groups >= 2_000_000 // 51_000
    df = pd.read_csv(tmp_path / "anomalies.csv")
    assert len(df) == 2000 and pq.ParquetFile(tmp_path / "anomalies.parquet").metadata.num_rows == 2000


def test_limits_count_rows_past_them(tmp_path: Path) -> None:
    from analyzer.reports.collect import Limits

    sc = StreamCollector(tmp_path, Limits(max_pdu_rows=5))
    sc.feed_all(session_stream())
    col = sc.finish()
    t = col.stats["truncated"]["pdus"]
    assert t["kept"] == 5 and t["seen"] > 5
    assert pq.ParquetFile(tmp_path / "pdus.parquet").metadata.num_rows == 5


def test_every_table_has_the_fixed_schema(tmp_path: Path) -> None:
    _streamed(tmp_path, session_stream(), row_group_rows=4)
    for name in frames.SCHEMAS:
        schema = pq.read_schema(tmp_path / f"{name}.parquet")
        assert schema.remove_metadata() == tables.arrow_schema(name).remove_metadata(), name
        for f in schema:
            if pa.types.is_dictionary(f.type):
                assert f.type.index_type == pa.int32(), (name, f.name)


def test_analyze_returns_without_loading_the_pdus_table(sample: Path) -> None:
    a = analyze(sample / "clean_io.pcap")
    assert "pdus" not in a.loaded and "tasks" not in a.loaded
    assert a.table_rows("pdus") > 0 and "pdus" not in a.loaded
    assert len(a.pdus) == a.table_rows("pdus") and "pdus" in a.loaded
    d = a.report_dir
    assert d is not None and d.is_dir()
    del a
    import gc

    gc.collect()
    assert not d.exists()  # the temporary directory goes with the Analysis


def test_load_is_lazy_and_refuses_incomplete_dirs(tmp_path: Path, sample: Path) -> None:
    from analyzer.api import run_analyze
    from analyzer.reports.files import IncompleteReport

    run_analyze(sample / "tmf_abort.pcap", tmp_path / "rep", html=False, summary=False)
    b = load(tmp_path / "rep")
    assert b.loaded == set() and len(b.sessions) > 0 and b.loaded == {"sessions"}
    (tmp_path / "rep" / tables.INCOMPLETE_MARKER).write_text("x")
    with pytest.raises(IncompleteReport, match="incomplete report directory"):
        load(tmp_path / "rep")
    (tmp_path / "rep" / tables.INCOMPLETE_MARKER).unlink()
    (tmp_path / "rep" / "tasks.parquet").unlink()
    with pytest.raises(IncompleteReport, match="missing tasks.parquet"):
        load(tmp_path / "rep")


def test_write_into_a_foreign_directory_keeps_its_files(tmp_path: Path) -> None:
    from analyzer.api import analyze_records

    (tmp_path / "notes.txt").write_text("mine")
    analyze_records(session_stream()).write(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert not (tmp_path / tables.INCOMPLETE_MARKER).exists()
    assert len(load(tmp_path).pdus) > 0


@pytest.fixture
def sample() -> Path:
    return Path(__file__).resolve().parents[2] / "sample_pcaps"
