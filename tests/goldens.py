"""Golden outputs: the exact bytes every command prints for every sample and real capture.

``render(capture)`` runs the CLI in-process (click's runner, so a run costs no interpreter start)
on one capture and returns ``{file name: bytes}``:

- ``pdus.csv``, ``timeline.txt``, ``tasks.txt``, ``sessions.txt``, ``anomalies.jsonl``: the
  commands' standard output, byte for byte;
- ``exit.txt``: each command's exit status and standard error;
- ``analyze.txt``: a normalised digest of the ``analyze --out DIR`` report directory: every
  Parquet table compared as data (schema without pandas metadata, row count, SHA-256 of the rows
  as JSON), every other file by SHA-256, ``summary.txt`` in full so that a diff is readable.

Captures are named relative to the folder that holds them (``sample_pcaps/x.pcap`` and
``real_pcaps/y.pcap.gz``), so the outputs do not depend on where the checkout lives.

``tests/integration/test_golden.py`` compares; ``make golden`` (``scripts/golden.py``) rewrites
them on purpose, and the diff of ``tests/golden/`` is then reviewed in the same commit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GOLDEN_DIR = REPO / "tests" / "golden"
SAMPLE_DIR = REPO / "sample_pcaps"
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz")

#: (golden file name, CLI arguments before the capture)
COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("pdus.csv", ("pdus", "--format", "csv")),
    ("timeline.txt", ("timeline",)),
    ("tasks.txt", ("tasks",)),
    ("sessions.txt", ("sessions",)),
    ("anomalies.jsonl", ("anomalies", "--format", "jsonl")),
)


def real_pcaps_dir() -> Path | None:
    for d in (REPO.parent / "shared" / "real_pcaps", Path("/work/shared/real_pcaps")):
        if d.is_dir():
            return d
    return None


def captures() -> list[Path]:
    """Every capture with golden outputs: sample_pcaps/* then ../shared/real_pcaps/*."""
    found: list[Path] = []
    for d in (SAMPLE_DIR, real_pcaps_dir()):
        if d is not None:
            found += sorted(p for p in d.iterdir() if p.is_file() and p.name.endswith(CAPTURE_SUFFIXES))
    return found


@contextlib.contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _invoke(args: list[str]) -> tuple[int, bytes, bytes]:
    from click.testing import CliRunner

    from analyzer.cli import cli

    runner = CliRunner(env={"COLUMNS": "200", "LINES": "50", "NO_COLOR": "1", "TERM": "dumb"})
    result = runner.invoke(cli, args, catch_exceptions=True)
    err = result.stderr_bytes or b""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        err += f"EXCEPTION {type(result.exception).__name__}: {result.exception}\n".encode()
    return result.exit_code, result.stdout_bytes, err


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_default(v: Any) -> str:
    return repr(v)


def parquet_digest(path: Path) -> list[str]:
    """Schema (names and Arrow types, no metadata), row count and a hash of the rows as data."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    schema = table.schema.remove_metadata()
    lines = [f"  schema: {', '.join(f'{f.name}:{f.type}' for f in schema)}", f"  rows: {table.num_rows}"]
    h = hashlib.sha256()
    for row in table.to_pylist():
        h.update(json.dumps(row, default=_json_default, ensure_ascii=True).encode())
        h.update(b"\n")
    lines.append(f"  rows_sha256: {h.hexdigest()}")
    return lines


def report_dir_digest(out: Path) -> str:
    lines: list[str] = []
    for f in sorted(out.rglob("*")):
        if not f.is_file():
            continue
        rel = f.relative_to(out).as_posix()
        if f.suffix == ".parquet":
            lines.append(f"{rel}:")
            lines += parquet_digest(f)
        else:
            lines.append(f"{rel}: sha256 {_sha(f.read_bytes())}")
    summary = out / "summary.txt"
    if summary.is_file():
        lines.append("")
        lines.append("--- summary.txt ---")
        lines.append(summary.read_text(encoding="utf-8", errors="backslashreplace").rstrip("\n"))
    return "\n".join(lines) + "\n"


def render(capture: Path) -> dict[str, bytes]:
    """Every golden output of one capture, as bytes."""
    outputs: dict[str, bytes] = {}
    exits: list[str] = []
    arg = f"{capture.parent.name}/{capture.name}"
    with _cwd(capture.parent.parent):
        for name, args in COMMANDS:
            code, out, err = _invoke([*args, arg])
            outputs[name] = out
            exits.append(f"{name}: exit {code}")
            exits += [f"  stderr: {line}" for line in err.decode("utf-8", "backslashreplace").splitlines()]
        with tempfile.TemporaryDirectory(prefix="golden-") as tmp:
            out_dir = Path(tmp) / "report"
            code, _out, err = _invoke(["analyze", arg, "--out", str(out_dir), "--quiet"])
            exits.append(f"analyze: exit {code}")
            exits += [f"  stderr: {line}" for line in err.decode("utf-8", "backslashreplace").splitlines()]
            outputs["analyze.txt"] = report_dir_digest(out_dir).encode() if out_dir.is_dir() else b"no report\n"
    outputs["exit.txt"] = ("\n".join(exits) + "\n").encode()
    return outputs


def golden_path(capture: Path) -> Path:
    return GOLDEN_DIR / capture.name
