"""The committed sample captures match sample_pcaps/manifest.json."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from analyzer.lab import manifest
from analyzer.lab.verify import LINKTYPE_NAMES, read_linktype

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"
ENTRIES: list[dict[str, Any]] = manifest.load(SAMPLES / manifest.MANIFEST_NAME)
MAX_BYTES = int(2.5 * 1024 * 1024)


def _ids(entries: list[dict[str, Any]]) -> list[str]:
    return [e["scenario"] for e in entries]


def test_manifest_exists_and_covers_enough_scenarios() -> None:
    assert (SAMPLES / manifest.MANIFEST_NAME).exists(), "run: iscsi-analyzer lab run --all --out sample_pcaps"
    assert len(ENTRIES) >= 12
    assert "clean_io.pcap" in {e["file"] for e in ENTRIES}


def test_total_size_is_small() -> None:
    assert sum((SAMPLES / e["file"]).stat().st_size for e in ENTRIES) <= 20 * 1024 * 1024


@pytest.mark.parametrize("entry", ENTRIES, ids=_ids(ENTRIES))
def test_entry_schema_file_and_link_type(entry: dict[str, Any]) -> None:
    assert manifest.validate_entry(entry) == []
    path = SAMPLES / entry["file"]
    assert path.exists()
    assert path.stat().st_size <= MAX_BYTES
    assert path.stat().st_size == entry["size_bytes"]
    fmt, linktype = read_linktype(path)
    assert fmt == entry["format"]
    assert LINKTYPE_NAMES.get(linktype, str(linktype)) == entry["link_type"]


@pytest.mark.tshark
@pytest.mark.parametrize("entry", ENTRIES, ids=_ids(ENTRIES))
def test_tshark_finds_the_manifest_pdus(entry: dict[str, Any], tshark_available: None) -> None:
    out = subprocess.run(
        ["tshark", "-n", "-r", str(SAMPLES / entry["file"]), "-Y", "iscsi", "-T", "fields",
         "-e", "iscsi.opcode", "-e", "iscsi.login.status", "-E", "occurrence=a", "-E", "aggregator=,"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    opcodes = [op for line in out.splitlines() for op in line.split("\t")[0].split(",") if op]
    assert len(opcodes) >= 1
    assert len(opcodes) >= entry["expect"]["min_pdus"]
    statuses = {f"0x{int(s, 16):04x}" for line in out.splitlines() for s in line.split("\t")[1].split(",") if s}
    for session in entry["expect"]["sessions"]:
        if session["login_status"] is not None:
            assert session["login_status"] in statuses
