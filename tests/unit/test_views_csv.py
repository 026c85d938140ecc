"""The generated CSV line builders write exactly what the csv module writes for the same row."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.iscsi.describe import info
from analyzer.pipeline import Options, iter_records
from analyzer.records import MalformedPdu, Pdu, TcpOpened
from analyzer.render.output import csv_safe
from analyzer.render.rows import csv_cell, csv_text_cell, pdu_csv, pdu_values

SAMPLES = sorted((Path(__file__).parents[2] / "sample_pcaps").glob("*.pcap*"))


def _csv_module_line(values: tuple[object, ...]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()[:-1]


@given(st.text(alphabet=st.sampled_from(list("ab ,\"\n\r\t=+-@\x00\x1b\x7f\x85\u200b\u202e\u2066é")), max_size=12))
def test_csv_text_cell_is_csv_cell_of_csv_safe(text: str) -> None:
    assert csv_text_cell(text) == csv_cell(csv_safe(text))


@pytest.mark.parametrize("capture", SAMPLES, ids=[p.name for p in SAMPLES])
def test_pdu_csv_line_equals_csv_module(capture: Path) -> None:
    endpoints: dict[str, TcpOpened] = {}
    checked = 0
    for rec in iter_records(str(capture), Options(state=False, anomalies=False)):
        if type(rec) is TcpOpened:
            endpoints[rec.conn] = rec
            continue
        if not isinstance(rec, (Pdu, MalformedPdu)):
            continue
        text = info(rec) if type(rec) is not MalformedPdu else f"Malformed PDU: {rec.reason}"
        safe = csv_safe(text)
        expected = _csv_module_line(pdu_values(rec, endpoints[rec.conn], safe))
        assert pdu_csv(rec, endpoints[rec.conn], csv_text_cell(text)) == expected
        checked += 1
    assert checked
