"""The compiled hot path switch (analyzer/_native.py): ISCSI_ANALYZER_PURE really runs the .py files,
and a compiled module whose source changed since the build is never used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import analyzer
from analyzer import _native

REPO = Path(__file__).resolve().parents[2]
HOT = ("analyzer.records", "analyzer.pipeline", "analyzer.capture.files", "analyzer.tcp.reassembly",
       "analyzer.iscsi.framing", "analyzer.iscsi.pdus", "analyzer.state.tracker")

_PROBE = """
import importlib, json, sys
import analyzer
from analyzer import _native
mods = {name: importlib.import_module(name) for name in sys.argv[1:]}
print(json.dumps({"files": {n: m.__file__ for n, m in mods.items()},
                  "compiled": _native.compiled_modules(), "describe": _native.describe()}))
"""


def _probe(env_pure: str | None) -> dict[str, object]:
    env = dict(os.environ)
    env.pop(_native.ENV_PURE, None)
    if env_pure is not None:
        env[_native.ENV_PURE] = env_pure
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", _PROBE, *HOT], env=env, capture_output=True, text=True,
                         check=True, cwd=REPO).stdout
    result: dict[str, object] = json.loads(out)
    return result


def _built() -> list[str]:
    manifest = Path(analyzer.__file__).with_name(_native.MANIFEST)
    if not manifest.is_file():
        return []
    return sorted(json.loads(manifest.read_text()).get("modules", {}))


def test_pure_forced_runs_every_module_from_its_py() -> None:
    got = _probe("1")
    files = got["files"]
    assert isinstance(files, dict)
    for name, path in files.items():
        assert path.endswith(".py"), f"{name} loaded from {path} with {_native.ENV_PURE}=1"
    assert got["compiled"] == []
    assert _native.ENV_PURE in str(got["describe"])


@pytest.mark.parametrize("value", ["", "0"])
def test_pure_not_forced_by_empty_or_zero(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_native.ENV_PURE, value)
    assert not _native.pure_forced()
    monkeypatch.setenv(_native.ENV_PURE, "1")
    assert _native.pure_forced()


def test_compiled_modules_load_when_built() -> None:
    built = [m for m in _built() if m in HOT]
    if not built:
        pytest.skip("no compiled extension built (make setup builds them when Cython and gcc are available)")
    got = _probe(None)
    files = got["files"]
    assert isinstance(files, dict)
    for name in built:
        if _native._sources_match(json.loads(Path(analyzer.__file__).with_name(_native.MANIFEST).read_text())
                                  ["modules"][name]):
            assert not files[name].endswith(".py"), f"{name} built but ran from {files[name]}"
            assert name in got["compiled"]  # type: ignore[operator]


def test_stale_or_unlisted_extension_is_not_used(tmp_path: Path) -> None:
    # A package directory with a module, a fake "extension" beside it and a manifest whose hash is
    # not the source's: the finder must give the .py (a stale build never shadows an edited source).
    pkg = tmp_path / "analyzer" / "sub"
    pkg.mkdir(parents=True)
    (pkg / "mod.py").write_text("X = 1\n")
    import importlib.machinery

    (pkg / ("mod" + importlib.machinery.EXTENSION_SUFFIXES[0])).write_bytes(b"not an extension")
    finder = _native._HotPathFinder(False, {"analyzer.sub.mod": {"sub/mod.py": "0" * 64}})
    spec = finder.find_spec("analyzer.sub.mod", [str(pkg)])
    assert spec is not None and spec.origin == str(pkg / "mod.py")
    assert finder.loaded["analyzer.sub.mod"] == "stale"
    unlisted = _native._HotPathFinder(False, {})
    spec = unlisted.find_spec("analyzer.sub.mod", [str(pkg)])
    assert spec is not None and spec.origin == str(pkg / "mod.py")
    assert unlisted.find_spec("analyzer.sub", [str(tmp_path / "analyzer")]) is None  # packages: Python's own
    assert unlisted.find_spec("other.mod", [str(pkg)]) is None
