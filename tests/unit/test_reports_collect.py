"""Streaming collection: chunking gives the same tables, bounds truncate and say so; API helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
from pandas.testing import assert_frame_equal
from test_reports_html import session_stream

from analyzer import api
from analyzer.records import Pdu
from analyzer.reports import collect, frames


def test_collect_matches_whole_list_builders() -> None:
    recs = session_stream()
    got = collect.collect(recs).tables
    conn_session = {c: "s1" for c in {r.conn for r in recs if isinstance(r, Pdu)}}
    assert_frame_equal(got["pdus"], frames.pdus_frame(recs, conn_session))
    assert_frame_equal(got["tasks"], frames.tasks_frame(recs))
    assert_frame_equal(got["sessions"], frames.sessions_frame(recs))
    assert_frame_equal(got["connections"], frames.connections_frame(recs))
    assert_frame_equal(got["transitions"], frames.transitions_frame(recs))
    assert_frame_equal(got["anomalies"], frames.anomalies_frame(recs))
    assert_frame_equal(got["keys"], frames.keys_frame(recs))


def test_small_chunks_give_identical_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    recs = session_stream()
    whole = collect.collect(recs).tables
    monkeypatch.setattr(collect, "CHUNK_ROWS", 3)
    chunked = collect.collect(recs).tables
    for name, df in whole.items():
        assert_frame_equal(chunked[name], df, obj=name)


def test_pdu_bound_truncates_and_reports() -> None:
    recs = session_stream()
    n = sum(isinstance(r, Pdu) for r in recs)
    c = collect.collect(recs, collect.Limits(max_pdu_rows=10))
    assert len(c.tables["pdus"]) == 10
    assert c.stats["pdus_seen"] == n
    assert c.stats["truncated"] == {"pdus": {"kept": 10, "seen": n, "limit": 10}}
    a = api.analyze_records(recs, max_pdu_rows=10)
    assert a.capture.truncated["pdus"]["kept"] == 10
    assert "keeps 10 of" in a.html()
    assert "pdus: kept 10 of" in a.summary()


def test_stats_count_records() -> None:
    c = collect.collect(session_stream())
    assert c.stats["records"]["ScsiCommand"] == 21
    assert c.stats["first_ts_ns"] <= c.stats["last_ts_ns"]
    assert c.stats["tcp_gaps"] == 0 and c.stats["truncated"] == {}


def test_unknown_option_rejected(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="bogus"):
        api.analyze(tmp_path / "x.pcap", bogus=1)


@pytest.mark.parametrize(
    "name, stem",
    [
        ("lab.pcap", "lab"),
        ("lab.pcapng.gz", "lab"),
        ("dir/iscsi-tapel.pcap.gz", "iscsi-tapel"),
        ("x.cap", "x"),
        ("noext", "noext"),
        (".pcap", ".pcap"),
    ],
)
def test_capture_stem(name: str, stem: str) -> None:
    assert api.capture_stem(name) == stem
    assert api.default_out_dir(name) == Path("reports") / stem


def test_analysis_reexported_lazily() -> None:
    from analyzer.reports.analysis import Analysis

    assert api.Analysis is Analysis
