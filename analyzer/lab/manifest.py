"""`sample_pcaps/manifest.json`: one entry per capture, with ground truth read back from the capture.

The schema is checked by `validate_entry` (used by the tests and before every write). Times in `steps` and
`expect` are seconds from the capture's first frame.
"""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from analyzer.lab.errors import LabError
from analyzer.lab.procs import run

MANIFEST_NAME = "manifest.json"

#: Keys every manifest entry has, with their JSON types.
REQUIRED_KEYS: dict[str, type | tuple[type, ...]] = {
    "file": str,
    "scenario": str,
    "description": str,
    "format": str,
    "link_type": str,
    "ip_version": int,
    "mtu": int,
    "created": str,
    "size_bytes": int,
    "frames": int,
    "tools": dict,
    "target": dict,
    "initiator_name": str,
    "capture": dict,
    "steps": list,
    "expect": dict,
}

EXPECT_KEYS: dict[str, type | tuple[type, ...]] = {
    "sessions": list,
    "faults": list,
    "header_digest": str,
    "data_digest": str,
    "min_pdus": int,
    "pdu_counts": dict,
}

SESSION_KEYS = ("type", "target", "initiator", "login_status", "ended_by", "tcp_stream")
ENDED_BY = {"logout", "initiator_killed", "initiator_closed", "target_dropped", "login_failed",
            "login_redirected", "capture_ended"}
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


def validate_entry(entry: dict[str, Any]) -> list[str]:
    """Problems with one manifest entry (empty list when it is well-formed)."""
    problems: list[str] = []
    for key, typ in REQUIRED_KEYS.items():
        if key not in entry:
            problems.append(f"missing key {key!r}")
        elif not isinstance(entry[key], typ) or (typ is int and isinstance(entry[key], bool)):
            problems.append(f"{key!r} should be {typ}, is {type(entry[key]).__name__}")
    if problems:
        return problems
    if not _ISO_DATE.match(entry["created"]):
        problems.append(f"'created' is not an ISO date: {entry['created']!r}")
    if entry["ip_version"] not in (4, 6):
        problems.append(f"ip_version must be 4 or 6, is {entry['ip_version']}")
    if not entry["file"].endswith((".pcap", ".pcapng")) or "/" in entry["file"]:
        problems.append(f"'file' must be a bare .pcap/.pcapng name: {entry['file']!r}")
    for step in entry["steps"]:
        if not isinstance(step, dict) or "t" not in step or "action" not in step:
            problems.append(f"step without 't'/'action': {step!r}")
    expect = entry["expect"]
    for key, typ in EXPECT_KEYS.items():
        if key not in expect:
            problems.append(f"expect: missing key {key!r}")
        elif not isinstance(expect[key], typ):
            problems.append(f"expect: {key!r} should be {typ}")
    for sess in expect.get("sessions", []):
        missing = [k for k in SESSION_KEYS if k not in sess]
        if missing:
            problems.append(f"expect.sessions entry missing {missing}")
        elif sess["ended_by"] not in ENDED_BY:
            problems.append(f"expect.sessions: unknown ended_by {sess['ended_by']!r}")
    for fault in expect.get("faults", []):
        if not isinstance(fault, dict) or "kind" not in fault:
            problems.append(f"expect.faults entry without 'kind': {fault!r}")
    return problems


def load(path: Path) -> list[dict[str, Any]]:
    """Read a manifest (an empty list if the file does not exist)."""
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    if not isinstance(data, list):
        raise LabError(f"{path}: manifest must be a JSON list")
    return data


def merge(existing: Iterable[dict[str, Any]], new: Iterable[dict[str, Any]],
          drop_scenarios: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Replace entries of the same scenario by the new ones; drop `drop_scenarios`; keep order by name."""
    by_scenario = {e["scenario"]: e for e in existing}
    for name in drop_scenarios:
        by_scenario.pop(name, None)
    for entry in new:
        by_scenario[entry["scenario"]] = entry
    return [by_scenario[k] for k in sorted(by_scenario)]


def save(path: Path, entries: list[dict[str, Any]]) -> None:
    """Validate and write the manifest (pretty JSON, stable key order, trailing newline)."""
    for entry in entries:
        problems = validate_entry(entry)
        if problems:
            raise LabError(f"manifest entry {entry.get('scenario')!r} is invalid: {'; '.join(problems)}")
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(entries, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def _package_version(package: str) -> str:
    proc = run(["dpkg-query", "-W", "-f", "${Version}", package], check=False, timeout=10.0)
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else "unknown"


def tool_versions() -> dict[str, str]:
    """Versions of the lab's tools (from dpkg, so they match what produced the capture) and the kernel."""
    return {
        "tgt": _package_version("tgt"),
        "libiscsi": _package_version("libiscsi-bin"),
        "tcpdump": _package_version("tcpdump"),
        "wireshark": _package_version("tshark"),
        "kernel": platform.release(),
    }
