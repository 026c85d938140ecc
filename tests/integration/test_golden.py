"""Golden outputs: every command's exact output on every sample and real capture.

A failure here means an output byte changed. If the change is meant, run ``make golden``,
review ``git diff tests/golden`` and commit it with the change, saying why; otherwise the
change broke something. The goldens are built by ``tests/goldens.py``.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import goldens
import pytest

CAPTURES = goldens.captures()


def _diff(name: str, want: bytes, got: bytes) -> str:
    a = want.decode("utf-8", "backslashreplace").splitlines()
    b = got.decode("utf-8", "backslashreplace").splitlines()
    lines = list(difflib.unified_diff(a, b, f"golden/{name}", f"now/{name}", lineterm="", n=1))
    return "\n".join(lines[:40]) + ("\n..." if len(lines) > 40 else "")


@pytest.mark.parametrize("golden_capture", CAPTURES, ids=[c.name for c in CAPTURES])
def test_golden_outputs(golden_capture: Path) -> None:
    capture = golden_capture
    golden = goldens.golden_path(capture)
    if not golden.is_dir():
        pytest.fail(f"no golden outputs for {capture.name}: run `make golden` and commit tests/golden/")
    outputs = goldens.render(capture)
    expected = {p.name for p in golden.iterdir() if p.is_file()}
    assert expected == set(outputs), "golden file set differs (run `make golden`)"
    problems = [_diff(name, (golden / name).read_bytes(), data)
                for name, data in sorted(outputs.items()) if (golden / name).read_bytes() != data]
    assert not problems, "output differs from the golden files:\n" + "\n\n".join(problems)


def test_every_sample_capture_has_goldens() -> None:
    missing = [c.name for c in CAPTURES if not goldens.golden_path(c).is_dir()]
    assert not missing, f"captures without golden outputs: {missing}"
