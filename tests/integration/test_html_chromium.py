"""The HTML report in real headless Chromium: renders non-blank, no console errors, charts in
the DOM, and hostile capture strings stay text (no script element is ever created).

Skipped when no Chromium is installed (CI installs Debian's ``chromium``). The screenshot is
decoded with a small PNG reader below (zlib + numpy, no Pillow).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from unit.test_reports_html import FORMULA, SCRIPT, hostile_stream

from analyzer.api import analyze, analyze_records

ROOT = Path(__file__).resolve().parents[2]
REAL = Path(os.environ.get("ISCSI_REAL_PCAPS", "/work/shared/real_pcaps"))
LAB = ROOT / "sample_pcaps" / "admin_drop.pcap"
LOSSY = REAL / "iscsi-scsi-data-cdrom.pcap.gz"
NMAP = REAL / "not-iscsi-nmap-scan-3260.pcap"

CHROMIUM = next(
    (p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


# --------------------------------------------------------------------------- chromium


@dataclass
class Render:
    png: bytes
    dom: str
    console: list[str]  #: console messages (errors, CSP violations, uncaught exceptions)


def _chromium(page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run(
            [
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={profile}",
                "--enable-logging=stderr",
                "--v=0",
                *extra,
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )


def _console(stderr: str) -> list[str]:
    return [
        line
        for line in stderr.splitlines()
        if ":CONSOLE" in line or "Uncaught" in line or "Refused to" in line
    ]


def render(page: Path, tmp: Path, size: str = "1400,2000") -> Render:
    shot = tmp / (page.stem + ".png")
    r1 = _chromium(page, f"--screenshot={shot}", f"--window-size={size}")
    assert shot.exists(), r1.stderr[-2000:]
    r2 = _chromium(page, "--dump-dom")
    return Render(shot.read_bytes(), r2.stdout, _console(r1.stderr) + _console(r2.stderr))


# --------------------------------------------------------------------------- png


def decode_png(data: bytes) -> np.ndarray:
    """8-bit RGB/RGBA non-interlaced PNG -> array (height, width, channels)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    width = height = channels = 0
    while pos < len(data):
        length, ctype = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if ctype == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and colour in (2, 6), (depth, colour, interlace)
            channels = 3 if colour == 2 else 4
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"IEND":
            break
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int64)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = np.frombuffer(raw, np.uint8, stride, start + 1).astype(np.int64)
        if kind == 0:
            cur = line
        elif kind == 1:  # Sub: running sum per channel
            cur = np.cumsum(line.reshape(width, channels), axis=0).reshape(-1) & 0xFF
        elif kind == 2:  # Up
            cur = (line + prev) & 0xFF
        else:  # Average (3) and Paeth (4) depend on the left neighbour: byte by byte
            lst, up, cur_l = line.tolist(), prev.tolist(), [0] * stride
            for i in range(stride):
                left = cur_l[i - channels] if i >= channels else 0
                if kind == 3:
                    cur_l[i] = (lst[i] + (left + up[i]) // 2) & 0xFF
                else:
                    ul = up[i - channels] if i >= channels else 0
                    p = left + up[i] - ul
                    pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - ul)
                    pred = left if pa <= pb and pa <= pc else up[i] if pb <= pc else ul
                    cur_l[i] = (lst[i] + pred) & 0xFF
            cur = np.array(cur_l, dtype=np.int64)
        out[y] = cur
        prev = cur
    return out.reshape(height, width, channels)


def _assert_not_blank(png: bytes) -> np.ndarray:
    img = decode_png(png)[:, :, :3].astype(np.float64)
    assert img.std() > 10, f"screenshot looks blank (std {img.std():.2f})"
    colours = np.unique(img.reshape(-1, 3)[::7], axis=0)
    assert len(colours) > 50, f"only {len(colours)} colours"
    return img


def test_png_decoder_against_a_blank_render(tmp_path: Path) -> None:
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body style='background:#fff'></body></html>")
    r = render(blank, tmp_path, "400,300")
    img = decode_png(r.png)
    assert img.shape[:2] == (300, 400)
    assert img[:, :, :3].std() < 1 and r.console == []
    with pytest.raises(AssertionError, match="blank"):
        _assert_not_blank(r.png)


def test_console_errors_are_detected(tmp_path: Path) -> None:
    """The harness itself: a page with a failing script must show up as console errors."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><p>x</p><script>undefined_function()</script></body></html>")
    r = render(bad, tmp_path, "400,300")
    assert any("Uncaught" in line for line in r.console), r.console


# --------------------------------------------------------------------------- reports


def _svgs_with_content(dom: str) -> int:
    return sum(
        1
        for body in re.findall(r"<svg\b[^>]*>(.*?)</svg>", dom, re.DOTALL)
        if re.search(r"<(rect|polyline|path|line|circle)\b", body)
    )


@pytest.mark.parametrize("capture_path", [LAB, LOSSY], ids=["lab-admin_drop", "real-lossy-cdrom"])
def test_capture_report_renders(capture_path: Path, tmp_path: Path) -> None:
    capture = capture_path
    if not capture.exists():
        pytest.skip(f"{capture} not present")
    page = analyze(capture).to_html(tmp_path / f"{capture.name}.html")
    r = render(page, tmp_path, "1400,2000")
    assert r.console == [], r.console
    _assert_not_blank(r.png)
    assert _svgs_with_content(r.dom) >= 4  # timeline, latency, MB/s, IOPS
    for anchor in ("summary", "sessions", "timeline", "latency", "throughput", "anomalies"):
        assert f'id="{anchor}"' in r.dom
    assert "<title>" in r.dom  # SVG tooltips
    assert "<script" not in r.dom


def test_hostile_names_stay_text(tmp_path: Path) -> None:
    a = analyze_records(hostile_stream())
    page = a.to_html(tmp_path / "hostile.html")
    r = render(page, tmp_path)
    assert r.console == [], r.console
    _assert_not_blank(r.png)
    assert "<script" not in r.dom.lower()  # no script element was created
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.dom  # shown as text
    assert FORMULA.replace("'", "") in r.dom.replace("'", "")
    assert SCRIPT not in r.dom


def test_empty_report_renders(tmp_path: Path) -> None:
    a = analyze(NMAP) if NMAP.exists() else analyze_records([])
    page = a.to_html(tmp_path / "empty.html")
    r = render(page, tmp_path, "1400,1200")
    assert r.console == [], r.console
    _assert_not_blank(r.png)
    assert "No iSCSI traffic was found" in r.dom
