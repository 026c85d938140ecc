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
from analyzer.reports.diagnosis import DIAGNOSIS_TABLES

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
        {f"{t}.parquet" for t in (*files.PARQUET_TABLES, *DIAGNOSIS_TABLES)}
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
    for table in ("pdus", "tasks", "sessions", "connections", "transitions", "anomalies", *DIAGNOSIS_TABLES):
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


# --------------------------------------------------------------------------- atomic outputs


def _digest(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def test_sigkill_during_analyze_keeps_the_old_report(tmp_path: Path) -> None:
    """Kill ``analyze --out DIR`` while it writes over a good report: DIR is still the old,
    complete report; the half-written temporary directory is refused by ``load``."""
    import signal
    import subprocess
    import sys
    import time

    from analyzer.reports.files import IncompleteReport

    out = tmp_path / "rep"
    run_analyze(SAMPLES / "tmf_abort.pcap", out)
    before = _digest(out)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed_while_writing = False
    for _attempt in range(3):
        proc = subprocess.Popen([sys.executable, "-m", "analyzer", "analyze", str(SAMPLES / "jumbo_9000.pcap"),
                                 "--out", str(out), "--quiet"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        work: list[Path] = []
        while time.monotonic() < deadline and proc.poll() is None:
            work = list(tmp_path.glob(".rep.tmp-*"))
            if work:  # the run has started writing its temporary directory
                break
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed_while_writing = bool(work)
        if killed_while_writing:
            break
        run_analyze(SAMPLES / "tmf_abort.pcap", out)  # it finished first: put the old report back
        before = _digest(out)
    assert killed_while_writing, "analyze finished before it could be killed"
    assert _digest(out) == before  # untouched: not a mixed directory
    b = load(out)
    assert b.capture.name == "tmf_abort.pcap" and len(b.pdus) > 0
    leftovers = list(tmp_path.glob(".rep.tmp-*"))
    assert leftovers, "the interrupted run's temporary directory"
    with pytest.raises(IncompleteReport):
        load(leftovers[0])
    # the next run cleans up after the dead one and replaces the report
    run_analyze(SAMPLES / "jumbo_9000.pcap", out)
    assert load(out).capture.name == "jumbo_9000.pcap"


@pytest.fixture
def small_tmpfs(tmp_path: Path):  # type: ignore[no-untyped-def]
    import subprocess

    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path, leave: int) -> None:
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    with open(mnt / "filler", "wb") as f:
        f.write(b"\0" * max(free - leave, 0))


def test_full_disk_keeps_the_old_report_and_names_the_file(small_tmpfs: Path) -> None:
    from click.testing import CliRunner

    from analyzer.cli import cli

    out = small_tmpfs / "rep"
    run_analyze(SAMPLES / "tmf_abort.pcap", out)
    before = _digest(out)
    html = small_tmpfs / "report.html"
    run_report(out, html)
    html_before = html.read_bytes()
    _fill(small_tmpfs, 64 * 1024)
    result = CliRunner().invoke(cli, ["analyze", str(SAMPLES / "clean_io.pcap"), "--out", str(out), "--quiet"])
    assert result.exit_code != 0
    msg = (result.stderr_bytes or b"").decode() + result.output
    assert "No space left on device" in msg and str(small_tmpfs) in msg, msg
    assert "Traceback" not in msg
    assert _digest(out) == before
    assert [p.name for p in small_tmpfs.iterdir() if p.name.startswith(".")] == []  # no temporary left
    assert load(out).capture.name == "tmf_abort.pcap"
    # report -o FILE on a full disk: the previous HTML stays whole, no temporary file
    big = analyze(SAMPLES / "clean_io.pcap")
    with pytest.raises(OSError, match="report.html"):
        big.to_html(html)
    assert html.read_bytes() == html_before
    assert [p.name for p in small_tmpfs.iterdir() if p.name.startswith(".")] == []


def test_admin_drop_summary_tells_the_story(tmp_path: Path) -> None:
    """The demo capture: tgtadm deletes the connection (FIN from the target), libiscsi logs in again."""
    import pandas as pd

    a, _ = run_analyze(_need(SAMPLES / "admin_drop.pcap"), tmp_path / "out", html=False)
    text = (tmp_path / "out" / "summary.txt").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[3] == "What happened"  # right after the two capture lines and a blank line
    story = " ".join(" ".join(lines[4:lines.index("", 4)]).split())
    # facts checked against the tables, not against the sentence generator
    drops = a.drops
    assert list(drops["cause"].astype(str)) == ["admin_drop"] and drops.loc[0, "ended_by"] == "fin_target"
    assert drops.loc[0, "session"] == "s1" and drops.loc[0, "lost_commands"] == 3
    assert "session s1" in story and "administrator drop on the target" in story
    assert "The target closed (FIN)" in story
    assert "3 command(s) were lost" in story
    t = a.tasks
    done = t[(t["kind"] == "scsi") & t["outcome"].isin(["completed", "check_condition", "failed"])]
    lost = t[(t["session"] == "s1") & (t["kind"] == "scsi") & t["latency"].isna()]
    assert len(lost) == 3
    last_before = done[done["session"] == "s1"]["end_ts"].max()
    first_after = done[(done["session"] == "s2") & (done["end_ts"] > drops.loc[0, "ts"])]["end_ts"].min()
    stopped_ms = (first_after - last_before) / pd.Timedelta(1, "ms")
    rec = a.recoveries
    assert rec.loc[0, "resumed_session"] == "s2" and rec.loc[0, "resumed_via"] == "new_session"
    assert abs(rec.loc[0, "io_stopped_ms"] - stopped_ms) < 0.05
    assert f"stopped for {stopped_ms:.1f} ms" in story and "on a new session over the same path, session s2" in story
    # the typed tables are there on disk too
    import pyarrow.parquet as pq

    schema = pq.read_schema(tmp_path / "out" / "drops.parquet")
    assert str(schema.field("ts").type) == "timestamp[ns, tz=UTC]"
    assert str(schema.field("silence_t2i_ms").type) == "double"
    assert str(pq.read_schema(tmp_path / "out" / "recoveries.parquet").field("io_stopped_ms").type) == "double"
    assert load(tmp_path / "out").capture.story == a.capture.story


def test_admin_drop_report_opens_with_the_story_and_links_its_findings(tmp_path: Path) -> None:
    import re

    a, _ = run_analyze(_need(SAMPLES / "admin_drop.pcap"), tmp_path / "out")
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    ids = re.findall(r'<section id="([a-z]+)">', html)
    assert ids[:3] == ["story", "summary", "drops"]
    assert {"paths", "queue", "nops", "anomalies"} <= set(ids)
    story = re.search(r'<section id="story">(.*?)</section>', html, re.S).group(1)  # type: ignore[union-attr]
    assert "administrator drop on the target" in story and 'href="#drop-0"' in story
    drops = re.search(r'<section id="drops">(.*?)</section>', html, re.S).group(1)  # type: ignore[union-attr]
    assert 'id="drop-0"' in drops and "frame.number == 488" in drops and "open-iscsi:" in drops
    assert "18.5 ms · new session s2" in drops
    # every timeline marker links to an anomaly row that exists
    targets = re.findall(r'<a href="#(anomaly-\d+)"><path', html)
    assert len(targets) == len(a.anomalies)
    assert all(f'id="{t}"' in html for t in targets)
