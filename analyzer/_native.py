"""Which path runs: the hot-path modules compiled with Cython from their own .py sources, or pure Python.

``setup.py`` (``make setup``, ``pip install``) may compile some modules of this package with Cython
(pure-Python mode: the same ``.py`` plus an optional augmenting ``.pxd``) into extension modules next to
their sources, and writes ``_native_manifest.json``: for each compiled module, the SHA-256 of the
source files it was built from. ``install()`` (called once by ``analyzer/__init__.py``) puts a finder
in front of Python's own, which for every ``analyzer.*`` module with a ``.py`` file picks

* the extension module, when it exists, is listed in the manifest and its sources still hash to what it
  was built from (an edited ``.py`` is never shadowed by a stale build: it runs as Python until rebuilt);
* the ``.py`` otherwise, and always when the environment variable ``ISCSI_ANALYZER_PURE`` is set to a
  non-empty value other than ``0`` (the pure path, byte-identical output; CI runs the golden tests both
  ways).

Nothing else in the package knows about this; ``iscsi-analyzer --debug ...`` prints ``describe()`` (also
``python -c "from analyzer import _native; print(_native.describe())"``).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

#: set (non-empty, not "0") to run every module from its .py even when compiled extensions exist
ENV_PURE = "ISCSI_ANALYZER_PURE"
#: written by setup.py's build_ext next to this file: {"modules": {dotted name: {source: sha256}}}
MANIFEST = "_native_manifest.json"

_HERE = os.path.dirname(os.path.abspath(__file__))
_PREFIX = __name__.rpartition(".")[0] + "."  # "analyzer."


def pure_forced() -> bool:
    """True when ISCSI_ANALYZER_PURE asks for the pure-Python path."""
    return os.environ.get(ENV_PURE, "") not in ("", "0")


def _manifest() -> dict[str, dict[str, str]]:
    path = os.path.join(_HERE, MANIFEST)
    if not os.path.isfile(path):
        return {}
    import json  # only when something was built

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        modules = data.get("modules", {})
        return modules if isinstance(modules, dict) else {}
    except (OSError, ValueError, AttributeError):
        return {}


def _sources_match(sources: dict[str, str]) -> bool:
    """The files a module was compiled from still hash as they did at build time."""
    if not isinstance(sources, dict) or not sources:
        return False
    import hashlib
    for rel, digest in sources.items():
        try:
            with open(os.path.join(_HERE, rel), "rb") as f:
                if hashlib.sha256(f.read()).hexdigest() != digest:
                    return False
        except OSError:
            return False
    return True


def _extension_file(directory: str, name: str) -> str | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(directory, name + suffix)
        if os.path.isfile(path):
            return path
    return None


class _HotPathFinder:
    """Meta-path finder for ``analyzer.*`` modules that have a .py: the checked extension, else the .py."""

    def __init__(self, pure: bool, manifest: dict[str, dict[str, str]]) -> None:
        self.pure = pure
        self.manifest = manifest
        #: dotted name -> "compiled" | "pure" | "stale" (compiled, but its sources changed since)
        self.loaded: dict[str, str] = {}

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
                  ) -> ModuleSpec | None:
        if not fullname.startswith(_PREFIX) or path is None:
            return None
        name = fullname.rpartition(".")[2]
        for directory in path:
            source = os.path.join(directory, name + ".py")
            if not os.path.isfile(source):
                continue
            sources = self.manifest.get(fullname)
            if sources is not None and not self.pure:
                ext = _extension_file(directory, name)
                if ext is not None and _sources_match(sources):
                    self.loaded[fullname] = "compiled"
                    loader = importlib.machinery.ExtensionFileLoader(fullname, ext)
                    return importlib.util.spec_from_file_location(fullname, ext, loader=loader)
                self.loaded[fullname] = "stale" if ext is not None and not self.pure else "pure"
            return importlib.util.spec_from_file_location(fullname, source)
        return None  # packages (directories) and anything else: Python's own finders


_finder: _HotPathFinder | None = None


def install() -> None:
    """Put the finder in front of sys.meta_path (idempotent)."""
    global _finder
    if _finder is None:
        _finder = _HotPathFinder(pure_forced(), _manifest())
        sys.meta_path.insert(0, _finder)


def compiled_modules() -> list[str]:
    """The modules imported so far from compiled extensions."""
    return sorted(m for m, how in (_finder.loaded if _finder else {}).items() if how == "compiled")


def describe() -> str:
    """One line: which path runs (for ``--debug``)."""
    manifest = _manifest()
    if pure_forced():
        return f"hot path: pure Python ({ENV_PURE} is set)"
    if not manifest:
        return "hot path: pure Python (no compiled extension built; `make setup` builds them when Cython is available)"
    ok = [m for m, src in sorted(manifest.items())
          if _sources_match(src) and _extension_file(os.path.join(_HERE, *m.split(".")[1:-1]), m.rpartition(".")[2])]
    stale = sorted(set(manifest) - set(ok))
    line = f"hot path: compiled (Cython) {len(ok)} of {len(manifest)} built modules"
    if stale:
        line += f"; pure Python for {', '.join(stale)} (source changed since the build: rerun `make setup`)"
    return line
