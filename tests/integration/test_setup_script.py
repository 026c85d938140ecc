"""scripts/setup.sh on a scratch project (never the real .venv): a broken .venv is detected and
rebuilt, a rerun is a no-op, demo and test modes install different extras, unknown modes exit 2.

The scratch project is a stub (no dependencies, its own tiny package and a build backend that needs
nothing), so pip works offline (``PIP_NO_INDEX``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STUB = """[build-system]
requires = []
build-backend = "stub_backend"
backend-path = ["."]

[project]
name = "scratch-analyzer"
version = "0"

[project.optional-dependencies]
test = []
"""
#: A PEP 517/660 backend with no build requirements (pip builds it offline).
BACKEND = '''import base64, hashlib, os, zipfile

def _wheel(directory, files):
    dist = "scratch_analyzer-0.dist-info"
    files = {**files, dist + "/METADATA": "Metadata-Version: 2.1\\nName: scratch-analyzer\\nVersion: 0\\n",
             dist + "/WHEEL": "Wheel-Version: 1.0\\nGenerator: stub\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}
    name = "scratch_analyzer-0-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(os.path.join(directory, name), "w") as z:
        for path, text in files.items():
            data = text.encode()
            z.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
        z.writestr(dist + "/RECORD", "\\n".join(record + [dist + "/RECORD,,"]) + "\\n")
    return name

def build_wheel(directory, config_settings=None, metadata_directory=None):
    return _wheel(directory, {})

def build_editable(directory, config_settings=None, metadata_directory=None):
    return _wheel(directory, {"scratch_analyzer.pth": os.path.abspath(".") + "\\n"})
'''


def _python() -> str:
    base = getattr(sys, "_base_executable", None) or sys.executable
    probe = subprocess.run([base, "-c", "import ensurepip, venv"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"{base} cannot create virtual environments (python3-venv missing)")
    return base


@pytest.fixture()
def scratch(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    (tmp_path / "pyproject.toml").write_text(STUB)
    (tmp_path / "stub_backend.py").write_text(BACKEND)
    (tmp_path / "analyzer").mkdir()
    (tmp_path / "analyzer" / "__init__.py").write_text("")
    return tmp_path


def _setup(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SKIP_APT": "1", "PYTHON": _python(), "PIP_NO_INDEX": "1",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(["bash", str(project / "scripts" / "setup.sh"), *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def _works(project: Path) -> bool:
    p = subprocess.run([str(project / ".venv" / "bin" / "python"), "-c", "import pip, analyzer"],
                       capture_output=True, cwd="/", check=False)
    return p.returncode == 0


def _break(venv: Path, breakage: str) -> None:
    if breakage == "empty_dir":  # what an interrupted `python -m venv` leaves
        shutil.rmtree(venv)
        venv.mkdir()
    elif breakage == "no_python":
        for p in (venv / "bin").glob("python*"):
            p.unlink()
    else:  # an interpreter without pip: `python -m venv` on Debian without python3-venv
        for p in venv.glob("lib/python*/site-packages/pip"):
            shutil.rmtree(p)


@pytest.mark.slow
def test_setup_modes_and_broken_venvs_rebuilt(scratch: Path) -> None:
    """One scratch project through every case (each venv creation costs ~20 s on a busy machine)."""
    venv = scratch / ".venv"
    first = _setup(scratch, "demo")
    assert first.returncode == 0, first.stderr
    assert _works(scratch)
    stamps = [p.name for p in venv.glob(".installed*")]
    assert len(stamps) == 1 and not stamps[0].startswith(".installed-test")
    quiet = _setup(scratch, "demo")  # idempotent: nothing rebuilt
    assert quiet.returncode == 0 and "broken" not in quiet.stdout, quiet.stdout
    assert _setup(scratch, "test").returncode == 0  # the test extras on top, same venv
    stamps = [p.name for p in venv.glob(".installed*")]
    assert len(stamps) == 1 and stamps[0].startswith(".installed-test")
    for breakage in ("no_pip", "no_python", "empty_dir"):
        _break(venv, breakage)
        again = _setup(scratch, "test")
        assert again.returncode == 0, (breakage, again.stderr)
        assert ".venv is broken" in again.stdout, breakage
        assert _works(scratch), breakage
    bad = _setup(scratch, "everything")
    assert bad.returncode == 2 and "unknown mode" in bad.stderr
