"""No CHAP secret of any capture in any PDU listing format (hardening: C-bit continuation leak).

The secret values are taken from the capture itself: every Login PDU's raw text, joined per
connection direction (RFC 7143 §6.1: an item may be split across C-bit PDUs), parsed, and the
values of CHAP_C, CHAP_R and CHAP_N kept. No piece of one longer than 4 characters (other than
an all-digit one, which timestamps hold by chance) may appear in
``pdus`` as table, csv or jsonl, nor in ``anomalies --format jsonl``.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from analyzer.iscsi.text_keys import parse_keys
from analyzer.pipeline import Options, iter_records
from analyzer.records import LoginRequest, LoginResponse

SECRETS = ("CHAP_C", "CHAP_R", "CHAP_N")


def secret_values(capture: Path) -> list[str]:
    text: dict[tuple[str, str], bytearray] = defaultdict(bytearray)
    for r in iter_records(str(capture), Options(state=False, anomalies=False)):
        if isinstance(r, (LoginRequest, LoginResponse)):
            text[(r.conn, r.direction)] += r.text
    out = []
    for raw in text.values():
        out += [v for k, v in parse_keys(bytes(raw)) if k in SECRETS and len(v) > 4]
    return out


@pytest.mark.parametrize("args", [("pdus", "--format", "table"), ("pdus", "--format", "csv"),
                                  ("pdus", "--format", "jsonl"), ("anomalies", "--format", "jsonl")],
                         ids=["pdus-table", "pdus-csv", "pdus-jsonl", "anomalies-jsonl"])
def test_no_chap_secret_in_outputs(capture: Path, args: tuple[str, ...], cli_runs: Any) -> None:
    values = secret_values(capture)
    if not values:
        pytest.skip("no CHAP exchange in this capture")
    run = cli_runs.get(*args, capture)
    assert run.returncode in (0, 1), run.explain()
    pieces = {v[i:i + 5] for v in values for i in range(len(v) - 4)}
    # All-digit pieces of a hex value ("97814") occur by chance in timestamps and sequence numbers.
    leaked = sorted(p for p in pieces if not p.isdigit() and p in run.stdout)
    assert not leaked, f"pieces of CHAP values in {' '.join(args)}: {leaked[:10]}"
