"""crosscheck --deep: every field both decoders expose agrees with Wireshark's full dissection
(pyshark over tshark) on the sample and real captures, and a difference is really reported."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SAMPLE_DIR, real_capture

from analyzer.capture.wireshark import WiresharkPdu, wireshark_pdus
from analyzer.crosscheck.deep import deep_compare
from analyzer.pipeline import Options, iter_records

pytestmark = [pytest.mark.tshark,
              pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")]

#: Captures with every PDU type between them (logins, text, NOP, TMF, R2T/Data-Out, sense, digests).
CAPTURES = ["conformance_iscsi.pcap", "nop_and_text.pcap", "tmf_abort.pcap", "login_failures.pcap",
            "header_digest.pcap", "text_continuation.pcap"]
LIMIT = 400


def _deep(path: Path) -> tuple[object, list[WiresharkPdu], list[object]]:
    records = list(iter_records(str(path), Options(state=False, anomalies=False)))
    theirs = wireshark_pdus(str(path), limit=LIMIT)
    return deep_compare(records, theirs), theirs, records


@pytest.mark.parametrize("name", CAPTURES)
def test_deep_fields_agree_on_sample_captures(name: str) -> None:
    res, theirs, _ = _deep(SAMPLE_DIR / name)
    assert res.paired >= min(len(theirs), LIMIT) * 0.95
    assert res.fields_compared > 5 * res.paired
    assert res.agree, res.differences[:10]


def test_deep_fields_agree_on_real_tape_capture() -> None:
    res, _, _ = _deep(real_capture("iscsi-tapel.pcap.gz"))
    assert res.compared["sense.key"] > 0 and res.compared["cdb.opcode"] > 0
    assert res.agree, res.differences[:10]


def test_deep_reports_a_changed_field() -> None:
    res, theirs, records = _deep(SAMPLE_DIR / "conformance_iscsi.pcap")
    victim = next(w for w in theirs if "cmdsn" in w.iscsi)
    bad = dict(victim.iscsi, cmdsn=(str(int(victim.iscsi["cmdsn"][0], 0) + 1),))
    tampered = [WiresharkPdu(w.frame, w.index, bad, w.scsi) if w is victim else w for w in theirs]
    res2 = deep_compare(records, tampered)
    assert [(d.frame, d.field) for d in res2.differences] == [(victim.frame, "cmdsn")]


def test_cli_deep_exit_status_and_summary() -> None:
    proc = subprocess.run([sys.executable, "-m", "analyzer", "crosscheck", "--deep", "--limit", "100",
                           str(SAMPLE_DIR / "nop_and_text.pcap")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "deep: Wireshark's full dissection" in proc.stdout and "differences 0" in proc.stdout.splitlines()[-1]
