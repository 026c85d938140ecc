"""The golden outputs on the pure-Python path too, when the compiled hot path is what normally runs.

``make setup`` compiles the hot modules with Cython when it can, so the regular golden test
(test_golden.py) checks the compiled path; this runs the same test in a child interpreter with
ISCSI_ANALYZER_PURE=1, so CI checks both paths byte for byte. Without a compiled build both would
run the same code, and this is skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer import _native

REPO = Path(__file__).resolve().parents[2]


def test_golden_outputs_on_the_pure_path() -> None:
    if _native.pure_forced():
        pytest.skip(f"{_native.ENV_PURE} is set: test_golden.py already runs the pure path")
    if not _native.describe().startswith("hot path: compiled"):
        pytest.skip("no compiled hot path built: test_golden.py already runs the pure path")
    env = dict(os.environ, **{_native.ENV_PURE: "1"})
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                           "tests/integration/test_golden.py"], cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, "golden outputs differ on the pure path:\n" + proc.stdout[-4000:]
