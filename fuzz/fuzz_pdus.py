"""atheris harness: ``decode_pdu`` on arbitrary BHS/AHS/data, then the Info text and the pdus row.

Input: byte 0 (bit 0 keep no data segment, bits 1-2 header digest None/ok/bad, bits 3-4 data
digest None/ok/bad), 48 bytes of BHS, TotalAHSLength*4 bytes of AHS, the rest is the data segment
(when DataSegmentLength disagrees the decoder must raise DecodeError, nothing else).
"""

from __future__ import annotations

import fuzzlib

from analyzer.iscsi.describe import info
from analyzer.iscsi.pdus import DecodeError, decode_pdu
from analyzer.records import I2T, T2I, Pdu
from analyzer.render.output import csv_safe, terminal_safe
from analyzer.render.rows import pdu_row

_DIGEST = (None, "ok", "bad", None)


class _Ep:
    client, client_port, server, server_port = "10.0.0.1", 40000, "10.0.0.2", 3260


def test_one_input(data: bytes) -> None:
    if len(data) < 49:
        return
    cfg = data[0]
    bhs = data[1:49]
    ahs_len = bhs[4] * 4
    ahs = data[49:49 + ahs_len]
    seg: bytes | None = None if cfg & 1 else data[49 + ahs_len:]
    direction = T2I if bhs[0] & 0x20 else I2T
    try:
        rec = decode_pdu(bhs, ahs, seg, 7, 7, "c", direction, 6, _DIGEST[(cfg >> 1) & 3], _DIGEST[(cfg >> 3) & 3])
    except DecodeError:
        return
    if not isinstance(rec, Pdu):
        raise fuzzlib.FuzzFailure(f"decode_pdu returned {type(rec).__name__}")
    text = info(rec)
    if not isinstance(text, str):
        raise fuzzlib.FuzzFailure("info() did not return text")
    row = pdu_row(rec, _Ep(), text)
    for v in row.values():
        csv_safe(v)
        terminal_safe(str(v))


def make_seeds(d: fuzzlib.Path) -> int:
    seeds = []
    for cap in fuzzlib.sample_captures():
        for _direction, stream in fuzzlib.streams(cap, 8192):
            for p in fuzzlib.split_pdus(stream):
                if len(p) >= 48:
                    dsl = int.from_bytes(p[5:8], "big")
                    end = 48 + p[4] * 4 + dsl
                    seeds.append(b"\x00" + p[:end])
    return fuzzlib.write_seeds(d, seeds, 500)


if __name__ == "__main__":
    fuzzlib.run(test_one_input, make_seeds)
