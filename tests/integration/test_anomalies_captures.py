"""Anomalies on real third-party captures and on the lab captures (checked against their manifest)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from analyzer.pipeline import Options, iter_records
from analyzer.records import Anomaly

ROOT = Path(__file__).resolve().parents[2]
REAL = Path("/work/shared/real_pcaps")
SAMPLES = ROOT / "sample_pcaps"
MANIFEST = SAMPLES / "manifest.json"

#: manifest fault kinds -> the anomaly kind that must report them
FAULT_KINDS = {
    "login_failed": "login_failed",
    "login_redirected": "login_redirected",
    "connection_dropped": "connection_dropped",
    "task_management": "task_management",
    "nop_unanswered": "nop_unanswered",
    "reject": "reject",
    "tcp_lost_segment": "capture_gap",
    # target deviations the scripted lab captures provoke (tgtd 1.0.85)
    "request_after_logout": "request_after_logout",
    "logout_response_unexpected": "logout_response_unexpected",
    "logout_closed_wrong_connection": "logout_closed_wrong_connection",
    "close_session_left_connection_open": "close_session_left_connection_open",
    "duplicate_cid_in_session": "duplicate_cid_in_session",
    "connection_dropped_on_text_request": "connection_dropped_on_request",
    "session_reinstated": "session_reinstated",
}


def anomalies(path: Path) -> list[Anomaly]:
    return [r for r in iter_records(str(path), Options()) if isinstance(r, Anomaly)]


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


# ---------------------------------------------------------------------------------------------- real captures


def test_nmap_scan_yields_nothing() -> None:
    assert anomalies(_need(REAL / "not-iscsi-nmap-scan-3260.pcap")) == []


def test_tape_library() -> None:
    found = anomalies(_need(REAL / "iscsi-tapel.pcap.gz"))
    kinds = Counter(a.kind for a in found)
    cc = [a for a in found if a.kind == "check_condition"]
    assert any("UNIT ATTENTION" in a.message and "medium may have changed" in a.message for a in cc)
    assert any("ILLEGAL REQUEST" in a.message and "Invalid field in CDB" in a.message for a in cc)
    assert any("ILLEGAL REQUEST" in a.message and "Invalid command operation code" in a.message for a in cc)
    assert any("more findings" in a.message for a in cc)  # the MODE SENSE(6) flood is summarised
    drop = next(a for a in found if a.kind == "connection_dropped")
    assert "initiator closed" in drop.message and "FIN" in drop.message and drop.frame == 1468
    assert kinds["no_authentication"] == 1 and kinds["negotiation_issue"] == 3
    assert all(a.severity == "info" for a in found), [(a.kind, a.severity) for a in found if a.severity != "info"]


def test_cdrom_mid_stream_lossy() -> None:
    found = anomalies(_need(REAL / "iscsi-scsi-data-cdrom.pcap.gz"))
    kinds = Counter(a.kind for a in found)
    cc = [a for a in found if a.kind == "check_condition"]
    assert len(cc) == 1 and "INQUIRY" in cc[0].message and "ILLEGAL REQUEST" in cc[0].message
    gaps = [a for a in found if a.kind == "capture_gap"]
    assert len(gaps) == 2  # one per direction, not one per gap
    t2i = next(a for a in gaps if "target->initiator" in a.message)
    assert "1086 gaps" in t2i.message and "32 tasks" in t2i.message
    # a lossy capture is not a broken protocol: tasks cut by gaps and the clean logouts are not anomalies
    for k in ("task_unanswered", "connection_dropped", "cmdsn_out_of_window", "statsn_gap", "logout_unanswered"):
        assert k not in kinds
    assert not [a for a in found if a.severity == "error"]


# ---------------------------------------------------------------------------------------------- lab captures


def _entries() -> list[dict[str, Any]]:
    if not MANIFEST.exists():
        return []
    return list(json.loads(MANIFEST.read_text()))


def _clean(entry: dict[str, Any]) -> bool:
    """Clean = no fault but libiscsi's plain initiator FIN after its LUN listing (iscsi-ls -s)."""
    return all(f["kind"] == "connection_dropped" and f.get("by") == "initiator" and not f.get("cause")
               for f in entry["expect"]["faults"])


ENTRIES = _entries()


@pytest.mark.skipif(not ENTRIES, reason="no sample_pcaps/manifest.json yet")
@pytest.mark.parametrize("entry", ENTRIES, ids=[e["scenario"] for e in ENTRIES])
def test_lab_capture_against_manifest(entry: dict[str, Any]) -> None:
    found = anomalies(_need(SAMPLES / entry["file"]))
    kinds = Counter(a.kind for a in found)
    faults = entry["expect"]["faults"]
    if _clean(entry):
        loud = [(a.kind, a.severity, a.message) for a in found if a.severity != "info"]
        assert not loud, loud
    for fault in faults:
        kind = FAULT_KINDS.get(fault["kind"])
        if kind is not None:
            assert kinds[kind] >= 1, (fault, dict(kinds))
    statuses = sorted(f["status"] for f in faults if f["kind"] == "login_failed")
    if statuses:
        failed = [a.message for a in found if a.kind == "login_failed"]
        codes = sorted(m.split("(")[1].split(")")[0] for m in failed)
        assert codes == statuses, failed
    pings = sum(1 for f in faults if f["kind"] == "nop_unanswered")
    assert kinds["nop_unanswered"] == pings
    for fault in faults:
        if fault["kind"] == "connection_dropped":
            drops = [a for a in found if a.kind == "connection_dropped"]
            assert any(f"the {fault['by']} " in a.message for a in drops), (fault, [a.message for a in drops])
    if any(f["kind"] == "tcp_retransmission" and f["count"] >= 10 for f in faults):
        assert kinds["tcp_retransmissions"] >= 1
    assert all(a.kind != "analyzer_error" for a in found)
