"""Replay every input the fuzz campaign saved (tests/fuzz_regressions/<target>/) through its harness.

Each harness's ``test_one_input`` (fuzz/fuzz_<target>.py) returns normally when the analyzer
gives records or the layer's one clean error, and raises otherwise; the harnesses import without
atheris. Also replays each harness's hand-written edge cases, so every target runs even before the
campaign saved anything for it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
FUZZ_DIR = REPO / "fuzz"
REGRESSIONS = REPO / "tests" / "fuzz_regressions"
TARGETS = ("framer", "pdus", "text_keys", "scsi", "reassembly", "capture", "pipeline")

#: Small inputs each target must take in its stride (empty, tiny, all-ones, a lone BHS...).
EDGE_CASES: dict[str, list[bytes]] = {
    "framer": [b"", b"\x00", b"\x02" + b"\xef" + b"\xff" * 240, b"\x00\x2f" + bytes(48), b"\x05\xf0\xff\xff",
               b"\x1e\x30" + b"\x01\xc0" + bytes(46) + b"\xf0\x00\x10"],
    "pdus": [b"", bytes(49), b"\x00" + b"\xff" * 60, b"\x00\x41\x00\x00\x00\xff" + bytes(43) + b"A" * 300,
             b"\x01\x03" + bytes(47)],
    "text_keys": [b"", b"\0\0", b"=", b"a=b\0c", b"CHAP_C=" + b"9" * 5000 + b"\0", b"\xff\xfe=\x80\0",
                  b"MaxRecvDataSegmentLength=" + b"9" * 5000 + b"\0"],
    "scsi": [b"", b"\x00", b"\x01", b"\x01\x70", b"\x01\x72\x00\x00\x00\x00\x00\x00\xff" + b"\x00\x0a" * 20,
             b"\x00\x28", b"\x02\x08", b"\x3e\xff" * 8],
    "reassembly": [b"", b"\x00" * 14, b"\x00\x02" + bytes(12) + b"\x08\x12" + bytes(12)],
    "capture": [b"", b"\xd4\xc3\xb2\xa1", b"\x0a\x0d\x0d\x0a" + b"\xff" * 20, b"\x1f\x8b\x08\x00" + bytes(10)],
    "pipeline": [b"", b"\x00\x02" + bytes(12)],
}


def _harness(target: str) -> ModuleType:
    if str(FUZZ_DIR) not in sys.path:
        sys.path.insert(0, str(FUZZ_DIR))
    name = f"fuzz_{target}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, FUZZ_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _cases() -> list[tuple[str, str, bytes]]:
    cases = [(t, f"edge-{i}", data) for t in TARGETS for i, data in enumerate(EDGE_CASES[t])]
    for t in TARGETS:
        d = REGRESSIONS / t
        if d.is_dir():
            cases += [(t, p.name, p.read_bytes()) for p in sorted(d.iterdir()) if p.is_file()]
    return cases


def test_regression_dirs_name_known_targets() -> None:
    if REGRESSIONS.is_dir():
        assert {p.name for p in REGRESSIONS.iterdir() if p.is_dir()} <= set(TARGETS)


@pytest.mark.parametrize(("target", "name", "data"), _cases(), ids=[f"{t}/{n}" for t, n, _ in _cases()])
def test_replay_gives_records_or_clean_errors(target: str, name: str, data: bytes) -> None:
    _harness(target).test_one_input(data)
