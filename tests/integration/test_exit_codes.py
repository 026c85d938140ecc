"""The documented exit codes of the real CLI (README "Exit codes"):

0 success; 1 findings at or above ``--fail-on``; 2 usage error or unreadable input; 3 internal
error, reported in one line with a hint, the traceback only with ``--debug``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_pcaps"
SMALL = SAMPLES / "tmf_abort.pcap"


def _run(*args: str | Path, code: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", code, *map(str, args)] if code else [sys.executable, "-m", "analyzer", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO, check=False)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _explain(p: subprocess.CompletedProcess[str]) -> str:
    return f"{p.args} -> exit {p.returncode}\n--- stdout ---\n{p.stdout[:2000]}\n--- stderr ---\n{p.stderr[:3000]}"


@pytest.mark.parametrize("args", [
    ("pdus", SMALL), ("sessions", SMALL), ("timeline", SMALL), ("tasks", SMALL), ("anomalies", SMALL),
    ("anomalies", "--fail-on", "error", SMALL), ("--version",), ("--help",), ("pdus", "--help"),
])
def test_success_is_0(args: tuple[str | Path, ...]) -> None:
    p = _run(*args)
    assert p.returncode == 0, _explain(p)
    assert not p.stderr.strip(), _explain(p)


def test_findings_at_fail_on_are_1() -> None:
    p = _run("anomalies", "--fail-on", "error", "--format", "jsonl", SAMPLES / "login_failures.pcap")
    assert p.returncode == 1, _explain(p)
    assert p.stdout.strip(), "the findings are still printed"
    lines = _lines(p.stderr)
    assert len(lines) == 1 and lines[0].startswith("iscsi-analyzer: ") and "at or above error" in lines[0], \
        _explain(p)
    # Below the threshold: 0.
    p = _run("anomalies", "--fail-on", "error", "--format", "jsonl", SMALL)
    assert p.returncode == 0, _explain(p)


@pytest.mark.parametrize("args", [
    ("pdus", "--bogus-flag", SMALL), ("pdus", "--format", "xml", SMALL), ("pdus",), ("no-such-command",),
    ("anomalies", "--min-severity", "fatal", SMALL), ("sessions", "--at", "not-a-time", SMALL),
    ("pdus", "--port", "70000", SMALL),
])
def test_usage_errors_are_2(args: tuple[str | Path, ...]) -> None:
    p = _run(*args)
    assert p.returncode == 2, _explain(p)
    assert "Traceback" not in p.stderr, _explain(p)
    assert not p.stdout.strip(), _explain(p)
    lines = _lines(p.stderr)
    # click's usage block (Usage / Try ... --help / Error: ...), or our one line.
    assert any(line.startswith(("Error: ", "iscsi-analyzer: ")) for line in lines), _explain(p)
    assert len(lines) <= 3, _explain(p)


@pytest.mark.parametrize("make", ["missing", "directory", "empty", "not_a_capture", "report_missing_source"])
def test_unreadable_input_is_2_with_one_line(make: str, tmp_path: Path) -> None:
    if make == "missing":
        args: tuple[str | Path, ...] = ("pdus", tmp_path / "nope.pcap")
    elif make == "directory":
        args = ("anomalies", tmp_path)
    elif make == "empty":
        (tmp_path / "e.pcap").write_bytes(b"")
        args = ("sessions", tmp_path / "e.pcap")
    elif make == "not_a_capture":
        (tmp_path / "x.pcap").write_text("hello\n")
        args = ("analyze", "--out", tmp_path / "r", tmp_path / "x.pcap")
    else:
        args = ("report", tmp_path / "nope", "-o", tmp_path / "r.html")
    p = _run(*args)
    assert p.returncode == 2, _explain(p)
    assert "Traceback" not in p.stderr
    lines = _lines(p.stderr)
    assert lines and (len(lines) == 1 or lines[-1].startswith("Error: ")), _explain(p)
    assert not p.stdout.strip(), _explain(p)


def test_unwritable_report_directory_is_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    p = _run("analyze", "--no-html", "--out", blocker / "sub", SMALL)
    assert p.returncode == 2, _explain(p)


#: Runs the CLI in-process with a PDU decoder patched to fail: an internal error by construction.
_BROKEN = textwrap.dedent("""
    import sys
    import analyzer.iscsi.framing as framing

    def broken(*args, **kwargs):
        raise RuntimeError("simulated decoder bug")

    framing.decode_pdu = broken
    from analyzer.cli import main
    main(sys.argv[1:])
""")


@pytest.mark.parametrize("command", ["pdus", "anomalies", "analyze"])
def test_internal_error_is_3_with_one_line_and_a_hint(command: str, tmp_path: Path) -> None:
    extra = ["--out", str(tmp_path / "r")] if command == "analyze" else []
    p = _run(command, *extra, SMALL, code=_BROKEN)
    assert p.returncode == 3, _explain(p)
    lines = _lines(p.stderr)
    assert len(lines) == 1, _explain(p)
    assert "Traceback" not in p.stderr
    assert lines[0].startswith("iscsi-analyzer: internal error: RuntimeError: simulated decoder bug"), _explain(p)
    assert "--debug" in lines[0], "the hint says how to get the traceback"


def test_internal_error_with_debug_shows_the_traceback() -> None:
    p = _run("--debug", "pdus", SMALL, code=_BROKEN)
    assert p.returncode == 3, _explain(p)
    assert "Traceback (most recent call last)" in p.stderr
    assert "simulated decoder bug" in p.stderr
    assert _lines(p.stderr)[-1].startswith("iscsi-analyzer: internal error: "), _explain(p)


@pytest.mark.parametrize("args", [("pdus", "--format", "csv"), ("pdus",), ("pdus", "--format", "jsonl"),
                                  ("timeline",), ("tasks",), ("anomalies",), ("--help",)])
def test_broken_pipe_exits_0_quietly(args: tuple[str, ...]) -> None:
    """``iscsi-analyzer pdus big.pcap | head -1`` exits 0 with nothing on stderr (1 means findings)."""
    capture = [] if args == ("--help",) else [str(SAMPLES / "nop_timeout.pcap")]
    cmd = f"{sys.executable} -m analyzer {' '.join(args + tuple(capture))} | head -n 1"
    p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=300,
                       cwd=REPO, check=False)
    assert len(p.stdout.splitlines()) == 1
    assert p.returncode == 0, _explain(p)
    assert not p.stderr.strip(), _explain(p)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
@pytest.mark.parametrize("args", [("pdus", "--format", "csv"), ("pdus",), ("sessions",), ("anomalies",),
                                  ("--help",), ("pdus", "--help")])
def test_full_output_device_is_2_with_one_line(args: tuple[str, ...]) -> None:
    """Writing to a full disk is an output error (2), not an internal error (3)."""
    capture = [] if args[-1] == "--help" else [str(SAMPLES / "nop_timeout.pcap")]
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, "-m", "analyzer", *args, *capture], stdout=full,
                           stderr=subprocess.PIPE, text=True, timeout=300, cwd=REPO, check=False)
    lines = _lines(p.stderr)
    assert p.returncode == 2, p.stderr
    assert len(lines) == 1 and "cannot write the output: No space left on device" in lines[0], p.stderr
