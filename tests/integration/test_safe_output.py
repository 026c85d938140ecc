"""Hostile text in a capture cannot attack whoever reads the analyzer's output.

The capture (written by the test) carries, in its Login keys: HTML/JS (``InitiatorName``),
terminal escape sequences with BEL and a C1 CSI (``TargetAlias``), a spreadsheet formula
(``InitiatorAlias``), and a CHAP exchange whose CHAP_C / CHAP_R / CHAP_N must never be shown
unless asked for (``report --show-secrets``). Every CLI output is checked: pdus, sessions,
timeline, tasks and anomalies in table/csv/jsonl; analyze's summary, report.html and its
report directory (CSV files, summary.txt); report with and without --show-secrets.
"""

from __future__ import annotations

import csv
import io
import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import builders as b
import pytest

REPO = Path(__file__).resolve().parents[2]

XSS = "<script>alert(1)</script>"
TARGET_XSS = "iqn.2024-01.org.example:<img src=x onerror=alert(2)>"
ESCAPES = "\x1b[31mRED\x1b]0;title\x07\u009b32mGREEN\x1b[0m"
FORMULA = "=cmd|' /C calc'!A0"
CHAP_C = "0xc0ffee0123456789abcdefc0ffee"
CHAP_R = "0xdeadbeef00112233445566778899"
CHAP_N = "chapuser-topsecret"
SECRETS = (CHAP_C, CHAP_R, CHAP_N, CHAP_C[2:], CHAP_R[2:])

_SYN, _FIN, _PSH, _ACK = 0x02, 0x01, 0x08, 0x10
#: Raw control characters that must not reach a terminal (C0 except newline, DEL, C1).
_RAW_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def _frame(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0, src, dst)
    return b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00" + ip + tcp


def hostile_capture(path: Path) -> Path:
    """A CHAP login carrying the hostile keys, a READ that fails, a logout."""
    ci, si = bytes([10, 6, 0, 1]), bytes([10, 6, 0, 2])
    frames: list[bytes] = []
    c, s = 1000, 5000

    def c2s(data: bytes, flags: int = _PSH | _ACK) -> None:
        nonlocal c
        frames.append(_frame(ci, si, 41000, 3260, c, s, flags, data))
        c += len(data) + (1 if flags & (_SYN | _FIN) else 0)

    def s2c(data: bytes, flags: int = _PSH | _ACK) -> None:
        nonlocal s
        frames.append(_frame(si, ci, 3260, 41000, s, c, flags, data))
        s += len(data) + (1 if flags & (_SYN | _FIN) else 0)

    c2s(b"", _SYN)
    s2c(b"", _SYN | _ACK)
    c2s(b.login_request(csg=0, nsg=1, transit=False, itt=0x10, keys=[
        ("InitiatorName", XSS), ("InitiatorAlias", FORMULA), ("TargetName", TARGET_XSS),
        ("SessionType", "Normal"), ("AuthMethod", "CHAP,None")]))
    s2c(b.login_response(csg=0, nsg=1, transit=False, itt=0x10, tsih=0, keys=[
        ("AuthMethod", "CHAP"), ("TargetAlias", ESCAPES), ("TargetPortalGroupTag", "1")]))
    c2s(b.login_request(csg=0, nsg=1, transit=False, itt=0x10, keys=[("CHAP_A", "5")]))
    s2c(b.login_response(csg=0, nsg=1, transit=False, itt=0x10, tsih=0, keys=[
        ("CHAP_A", "5"), ("CHAP_I", "7"), ("CHAP_C", CHAP_C)]))
    c2s(b.login_request(csg=0, nsg=1, transit=True, itt=0x10, keys=[("CHAP_N", CHAP_N), ("CHAP_R", CHAP_R)]))
    s2c(b.login_response(csg=0, nsg=1, transit=True, itt=0x10, tsih=0x22, keys=[]))
    c2s(b.login_request(csg=1, nsg=3, itt=0x10, tsih=0x22, keys=[("HeaderDigest", "None"), ("DataDigest", "None")]))
    s2c(b.login_response(csg=1, nsg=3, itt=0x10, tsih=0x22, statsn=0, expcmdsn=1, maxcmdsn=9, keys=[
        ("HeaderDigest", "None"), ("DataDigest", "None"), ("TargetAlias", ESCAPES)]))
    c2s(b.scsi_command(cdb=bytes.fromhex("28000000000000000100") + bytes(6), itt=1, read=True, edtl=512,
                       cmdsn=1, expstatsn=1))
    s2c(b.scsi_response(itt=1, status=2, statsn=1, expcmdsn=2, maxcmdsn=10,
                        sense=b.fixed_sense(5, 0x24, 0)))
    c2s(b.logout_request(itt=2, cmdsn=2, expstatsn=2))
    s2c(b.logout_response(itt=2, statsn=2, expcmdsn=3, maxcmdsn=10))
    c2s(b"", _FIN | _ACK)
    s2c(b"", _FIN | _ACK)
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, f in enumerate(frames):
        out.append(struct.pack("<IIII", 1_700_000_000, i * 1000, len(f), len(f)) + f)
    path.write_bytes(b"".join(out))
    return path


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "analyzer", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=REPO, check=False)
    assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hostile_capture(tmp_path_factory.mktemp("hostile") / "hostile.pcap")


def _no_secrets(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{where}: CHAP value {secret!r} shown"


def _terminal_clean(text: str, where: str) -> None:
    bad = _RAW_CONTROL.search(text)
    assert bad is None, f"{where}: raw control character {bad.group()!r} in {text[max(0, bad.start() - 60):bad.end() + 20]!r}"


def _csv_clean(text: str, where: str) -> None:
    for row in csv.reader(io.StringIO(text)):
        for cell in row:
            if cell[:1] in ("=", "+", "@", "\t", "\r") or (cell[:1] == "-" and not _is_number(cell)):
                pytest.fail(f"{where}: formula-like CSV cell {cell!r}")


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


COMMANDS = ("pdus", "sessions", "timeline", "tasks", "anomalies")


def test_capture_carries_the_hostile_values(hostile: Path) -> None:
    """The test is only meaningful if the analyzer decodes the values at all."""
    out = _cli("sessions", "--format", "jsonl", hostile).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows and rows[0]["initiator_name"] == XSS and rows[0]["initiator_alias"] == FORMULA
    assert "RED" in (rows[0]["target_alias"] or "")


@pytest.mark.parametrize("fmt", ["table", "csv", "jsonl"])
@pytest.mark.parametrize("command", COMMANDS)
def test_cli_output_is_safe(hostile: Path, command: str, fmt: str) -> None:
    proc = _cli(command, "--format", fmt, hostile)
    where = f"{command} --format {fmt}"
    _no_secrets(proc.stdout + proc.stderr, where)
    _terminal_clean(proc.stdout, where)
    _terminal_clean(proc.stderr, where + " (stderr)")
    if fmt == "csv":
        _csv_clean(proc.stdout, where)
    if fmt == "jsonl":
        for line in proc.stdout.splitlines():
            json.loads(line)


def test_pdus_table_escapes_are_stripped_but_text_stays(hostile: Path) -> None:
    out = _cli("pdus", hostile).stdout
    assert "RED" in out or "InitiatorName" in out  # the keys are still shown, just defanged
    assert "\x1b" not in out and "\x07" not in out


def test_analyze_summary_report_and_directory_are_safe(hostile: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "report"
    proc = _cli("analyze", "--out", out_dir, hostile)
    _no_secrets(proc.stdout + proc.stderr, "analyze summary")
    _terminal_clean(proc.stdout, "analyze summary")
    html = (out_dir / "report.html").read_text(encoding="utf-8")
    _html_safe(html, "analyze report.html")
    _no_secrets(html, "analyze report.html")
    files = sorted(out_dir.iterdir())
    assert any(p.suffix == ".csv" for p in files), files
    for p in files:
        if p.suffix == ".csv":
            text = p.read_text(encoding="utf-8")
            _csv_clean(text, p.name)
            _no_secrets(text, p.name)
        elif p.suffix == ".txt":
            text = p.read_text(encoding="utf-8")
            _terminal_clean(text, p.name)
            _no_secrets(text, p.name)
        elif p.suffix == ".parquet":
            _no_secrets(p.read_bytes().decode("latin-1"), p.name)
    # The report rebuilt from the directory is just as safe.
    rebuilt = tmp_path / "rebuilt.html"
    _cli("report", out_dir, "-o", rebuilt)
    _html_safe(rebuilt.read_text(encoding="utf-8"), "report from directory")
    _no_secrets(rebuilt.read_text(encoding="utf-8"), "report from directory")


def _html_safe(html: str, where: str) -> None:
    assert XSS not in html, f"{where}: raw <script> from the capture"
    assert "<img src=x" not in html, f"{where}: raw <img> from the capture"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, f"{where}: the escaped InitiatorName is shown"
    assert "\x1b" not in html and "\x07" not in html, f"{where}: raw escape characters"


def test_report_masks_secrets_unless_asked(hostile: Path, tmp_path: Path) -> None:
    masked = tmp_path / "masked.html"
    _cli("report", hostile, "-o", masked)
    text = masked.read_text(encoding="utf-8")
    _html_safe(text, "report")
    _no_secrets(text, "report")
    shown = tmp_path / "shown.html"
    _cli("report", "--show-secrets", hostile, "-o", shown)
    text = shown.read_text(encoding="utf-8")
    _html_safe(text, "report --show-secrets")
    for secret in (CHAP_C, CHAP_R, CHAP_N):
        assert secret in text, f"report --show-secrets: {secret!r} not shown"


# --------------------------------------------------------------------------- hostile file names

#: File names (bytes: any but "/" and NUL are allowed): undecodable, a terminal title change, a forged line.
HOSTILE_NAMES = (b"clean-\xff.pcap", b"esc\x1b]0;pwned\x07.pcap", b"two\nFAKE: line.pcap")


def _run_bytes(args: list[bytes | str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable.encode(), b"-m", b"analyzer",
                           *[a.encode() if isinstance(a, str) else a for a in args]],
                          capture_output=True, timeout=300, cwd=cwd, check=False,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=["non-utf8", "osc-title", "newline"])
def test_hostile_file_names_are_shown_escaped(name: bytes, tmp_path: Path) -> None:
    import os

    src = REPO / "sample_pcaps" / "tmf_abort.pcap"
    good = os.path.join(os.fsencode(tmp_path), name)
    with open(good, "wb") as f:
        f.write(src.read_bytes())
    bad = os.path.join(os.fsencode(tmp_path), b"bad-" + name)
    with open(bad, "wb") as f:
        f.write(b"not a capture at all")
    escaped = name.decode("utf-8", "backslashreplace").replace("\x1b", "\\x1b").replace("\x07", "\\x07") \
        .replace("\n", "\\x0a")
    runs = {
        "analyze": _run_bytes(["analyze", good], tmp_path),
        "analyze --out": _run_bytes(["analyze", "-q", "--out", good + b".d", good], tmp_path),
        "report": _run_bytes(["report", "-o", good + b".html", good], tmp_path),
        "pdus bad": _run_bytes(["pdus", bad], tmp_path),
        "sessions missing": _run_bytes(["sessions", good + b".missing"], tmp_path),
    }
    for what, p in runs.items():
        out = p.stdout + p.stderr
        assert b"Traceback" not in out and b"internal error" not in out, (what, out)
        assert not _RAW_CONTROL.search(out.decode("utf-8")), (what, out)  # also: all of it is UTF-8
        assert escaped.encode() in out, (what, out)
    assert runs["analyze"].returncode == 0 and runs["analyze --out"].returncode == 0, runs
    assert runs["report"].returncode == 0, runs["report"]
    assert runs["pdus bad"].returncode == 2 and len(runs["pdus bad"].stderr.splitlines()) == 1
    assert runs["sessions missing"].returncode == 2 and len(runs["sessions missing"].stderr.splitlines()) == 1
    page = open(good + b".html", "rb").read().decode("utf-8")
    assert escaped in page and not _RAW_CONTROL.search(page.replace("\n", ""))
    report_dir = good + b".d"
    assert os.path.getsize(os.path.join(report_dir, b"report.html")) > 1000
    # the directory reads back (report from a directory)
    back = _run_bytes(["report", "-o", os.path.join(report_dir, b"again.html"), report_dir], tmp_path)
    assert back.returncode == 0, back
