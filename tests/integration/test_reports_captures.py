"""``analyze`` on the lab captures (sample_pcaps) and the real third-party ones: every file is
written, loads back with the same dtypes, and the HTML report and summary render."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pandas.testing import assert_frame_equal

from analyzer.api import analyze, load, run_analyze, run_report
from analyzer.capture import CaptureError
from analyzer.reports import files, frames

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_pcaps"
REAL = Path(os.environ.get("ISCSI_REAL_PCAPS", "/work/shared/real_pcaps"))
CDROM = REAL / "iscsi-scsi-data-cdrom.pcap.gz"
TAPEL = REAL / "iscsi-tapel.pcap.gz"
NMAP = REAL / "not-iscsi-nmap-scan-3260.pcap"


def _captures() -> list[Path]:
    found = sorted(p for p in SAMPLES.glob("*.pcap*") if p.is_file())
    found += sorted(p for p in REAL.glob("*.pcap*") if p.is_file())
    return found


def _manifest() -> dict[str, dict]:  # type: ignore[type-arg]
    path = SAMPLES / "manifest.json"
    if not path.exists():
        return {}
    return {e["file"]: e for e in json.loads(path.read_text())}


CAPTURES = _captures()


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


@pytest.mark.skipif(not CAPTURES, reason="no sample or real captures present")
@pytest.mark.parametrize("capture_path", CAPTURES, ids=[p.name for p in CAPTURES])
def test_analyze_writes_and_loads_back(capture_path: Path, tmp_path: Path) -> None:
    capture = capture_path
    calls: list[tuple[int, int | None]] = []
    a, written = run_analyze(
        capture, tmp_path / "out", progress=lambda done, total: calls.append((done, total))
    )
    expected = (
        {f"{t}.parquet" for t in files.PARQUET_TABLES}
        | {f"{t}.csv" for t in files.CSV_TABLES}
        | {"capture.json", "report.html", "summary.txt"}
    )
    assert {p.name for p in written} == expected
    assert all(p.stat().st_size > 0 for p in written)
    # progress: on-disk bytes, increasing, ending at the file size
    size = capture.stat().st_size
    assert calls and calls[-1] == (size, size)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)

    b = load(tmp_path / "out")
    for table in ("pdus", "tasks", "sessions", "connections", "transitions", "anomalies"):
        assert_frame_equal(getattr(b, table), getattr(a, table), obj=f"{capture.name}:{table}")
    assert_frame_equal(b.keys, frames.mask_key_values(a.keys))
    assert b.capture.to_dict() == a.capture.to_dict()
    assert a.capture.frames > 0 and a.capture.name == capture.name
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html.lower()

    m = _manifest().get(capture.name)
    if m is not None:
        exp = m.get("expect", {})
        isids = {s["isid"] for s in exp.get("sessions", []) if s.get("isid")}
        assert isids <= set(a.sessions["isid"].dropna()), "sessions of the manifest missing from the report"
        assert len(a.pdus) == a.capture.pdus  # not truncated at the default bound


def test_lossy_real_capture() -> None:
    a = analyze(_need(CDROM))
    st = a.capture.stats
    assert st["tcp_gaps"] > 500 and st["gap_bytes"] > 0
    assert list(a.sessions["session_type"].astype(str)) == ["Discovery", "Normal"]
    assert set(a.sessions["ended"].astype(str)) == {"logout"}
    assert a.capture.damage == []  # the file itself is fine; the loss is in the capture
    html = a.html()
    assert "TCP gaps" in html and "iqn.1991-05.com.microsoft:win2003s" in html
    text = a.summary()
    assert "TCP gaps" in text and "READ(10)" in text


def test_tapel_ends_without_logout() -> None:
    a = analyze(_need(TAPEL))
    assert list(a.sessions["ended"].astype(str)) == ["connection_dropped"]
    assert a.tasks["lun"].dropna().nunique() >= 3


def test_no_iscsi_capture_reports_so(tmp_path: Path) -> None:
    a, out = run_report(_need(NMAP), tmp_path / "r.html")
    assert len(a.pdus) == 0 and len(a.sessions) == 0 and len(a.anomalies) == 0
    html = out.read_text(encoding="utf-8")
    assert "No iSCSI traffic was found" in html
    assert "No iSCSI traffic found" in a.summary()


def test_report_from_directory_and_secrets_flag(tmp_path: Path) -> None:
    capture = _need(CDROM)
    run_analyze(capture, tmp_path / "dir", html=False, summary=False)
    a, out = run_report(tmp_path / "dir", tmp_path / "from_dir.html")
    assert out.exists() and not a.capture.secrets_available
    _, out2 = run_report(capture, tmp_path / "from_capture.html", show_secrets=True)
    assert "Secrets (CHAP_C, CHAP_R, CHAP_N) are <b>shown</b>" in out2.read_text(encoding="utf-8")


def test_default_output_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    capture = _need(TAPEL)
    monkeypatch.chdir(tmp_path)
    _, written = run_analyze(capture)
    assert {p.parent for p in written} == {Path("reports") / "iscsi-tapel"}


def test_unreadable_file_raises_capture_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.pcap"
    bad.write_text("not a capture\n" * 10)
    with pytest.raises(CaptureError):
        analyze(bad)
    with pytest.raises(CaptureError):
        analyze(bad, progress=lambda d, t: None)


def test_pdu_bound_on_a_real_capture() -> None:
    a = analyze(_need(CDROM), max_pdu_rows=100)
    assert len(a.pdus) == 100 and a.capture.pdus > 100
    assert a.capture.truncated["pdus"] == {"kept": 100, "seen": a.capture.pdus, "limit": 100}
    assert "The pdus table keeps 100 of" in a.html()
