"""Captures cut by a snap length (tcpdump -s / dumpcap -s): frames keep only their first bytes.

The lab captures are cut with ``editcap -s 180`` (54 bytes of Ethernet+IPv4+TCP headers with
timestamps, so 114-126 bytes of TCP payload: a BHS and a little data). Wireshark then cannot
reassemble PDUs but still dissects the headers at the start of segments; we keep exact stream
positions (``TcpGap(snaplen=True)``) and skip cut data segments by length. Checked here:

* every PDU tshark decodes we decode too, PDU by PDU (``crosscheck.compare``); tshark shows a
  PDU whose data was cut in its header's frame, we in the frame of its last byte as for the
  uncut capture (matched by ``first_frame``);
* snap-length cuts are reported as ``capture_truncated`` (info), never as ``capture_gap``
  (loss), and they do not invent protocol findings the uncut capture does not have.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from analyzer.capture.tshark import tshark_pdus_union
from analyzer.crosscheck import compare
from analyzer.pipeline import Options, iter_records
from analyzer.records import Anomaly, Pdu, TcpGap

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"
SNAPLEN = 180

#: Captures whose cut copy agrees with tshark on every PDU.
EXACT = ("admin_drop", "capture_gaps", "clean_io", "cmdsn_window", "conformance_iscsi", "connection_reinstatement",
         "jumbo_9000", "linux_cooked", "linux_cooked_sll2", "login_failures", "logout_failures",
         "mcs_two_connections", "nop_and_text", "nop_timeout", "session_reinstatement", "tmf_abort")
#: Findings a cut capture may add (about the capture itself, or framing after a cut header).
CAPTURE_KINDS = {"capture_truncated", "framing_lost"}

pytestmark = pytest.mark.skipif(shutil.which("editcap") is None or shutil.which("tshark") is None,
                                reason="needs editcap and tshark (apt-get install tshark)")


def _cut(name: str, tmp_path: Path) -> Path:
    out = tmp_path / f"{name}_s{SNAPLEN}.pcap"
    subprocess.run(["editcap", "-s", str(SNAPLEN), str(SAMPLES / f"{name}.pcap"), str(out)], check=True,
                   capture_output=True)
    return out


@pytest.mark.parametrize("name", EXACT)
def test_cut_capture_agrees_with_tshark(name: str, tmp_path: Path) -> None:
    cut = _cut(name, tmp_path)
    records = list(iter_records(str(cut), Options(state=False, anomalies=False)))
    assert any(isinstance(r, TcpGap) and r.snaplen for r in records), "editcap did not cut any payload"
    res = compare(records, tshark_pdus_union(str(cut), ()))
    assert res.differences == [], res.differences[:5]
    assert res.ours >= res.theirs > 0


def test_cut_header_digest_capture_detects_digests(tmp_path: Path) -> None:
    """The login text (with HeaderDigest=CRC32C) is cut: the digests are detected in Full Feature
    Phase instead of being assumed off (which would frame garbage)."""
    cut = _cut("header_digest", tmp_path)
    records = list(iter_records(str(cut), Options(state=False, anomalies=False)))
    res = compare(records, tshark_pdus_union(str(cut), ()))
    # tshark alone dissects two runs of cut data as vendor opcode 0x3c PDUs.
    assert all("opcode 0x3c" in d.detail for d in res.differences), res.differences[:5]
    pdus = [r for r in records if isinstance(r, Pdu) and r.opcode not in (0x03, 0x23)]
    assert pdus and all(p.header_digest == "ok" for p in pdus)


@pytest.mark.parametrize("name", ("admin_drop", "packet_loss", "header_digest"))
def test_cut_capture_findings(name: str, tmp_path: Path) -> None:
    cut = _cut(name, tmp_path)

    def kinds(path: Path) -> Counter[str]:
        return Counter(r.kind for r in iter_records(str(path)) if isinstance(r, Anomaly))

    full, trunc = kinds(SAMPLES / f"{name}.pcap"), kinds(cut)
    assert trunc["capture_truncated"] > 0 and trunc["capture_gap"] == full["capture_gap"]
    added = {k for k in trunc if trunc[k] > full[k]} - CAPTURE_KINDS
    assert not added, f"the cut capture adds findings: {added}"
