"""Build: the pure-Python package, plus the per-packet/per-PDU hot path compiled with Cython when it can be.

The modules in HOT_MODULES are compiled from the SAME .py sources (Cython's pure-Python mode; a
``.pxd`` next to a module adds C types without changing its Python). Everything is optional:
without Cython or a C compiler, or when one module fails to compile, that module (or all of them)
stays plain Python and the install still succeeds. ``analyzer/_native.py`` decides at import time
which path runs (``ISCSI_ANALYZER_PURE=1`` forces the pure one) from the manifest this build writes.

    python setup.py build_ext --inplace   # what `make setup` runs for the editable checkout
    ISCSI_ANALYZER_NO_COMPILE=1 pip install .   # skip the compiled modules entirely
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))

#: source files (globs, relative to the checkout) compiled as extension modules: the capture record
#: scan and link/IP/TCP decode, TCP reassembly, PDU framing and header decode, the record types, the
#: pipeline wiring and the PDU listing's row builders. The state tracker (state/*.py), the SCSI name
#: tables and describe.py were measured compiled too (docs/compiled-hot-path.md): within noise, for
#: several minutes of C compilation on a 2-core machine, so they stay Python
#: (ISCSI_ANALYZER_COMPILE="analyzer/state/*.py,..." builds them for a measurement).
HOT_MODULES = (
    "analyzer/records.py",
    "analyzer/pipeline.py",
    "analyzer/capture/files.py",
    "analyzer/capture/packets.py",
    "analyzer/tcp/reassembly.py",
    "analyzer/iscsi/framing.py",
    "analyzer/iscsi/pdus.py",
    "analyzer/render/rows.py",
)

#: Cython directives for pure-Python mode. annotation_typing=False: the Python annotations stay
#: annotations (an `x: int` never becomes a C integer or a type check); C types come only from the
#: .pxd files, so compiled and pure behave alike byte for byte.
DIRECTIVES = {
    "language_level": 3,
    "annotation_typing": False,
    "binding": True,
    "embedsignature": False,
}

MANIFEST = os.path.join("analyzer", "_native_manifest.json")


def _hot_sources() -> list[str]:
    found: list[str] = []
    # ISCSI_ANALYZER_COMPILE=glob,glob overrides the list (for measuring one module compiled at a time)
    override = os.environ.get("ISCSI_ANALYZER_COMPILE", "")
    for pattern in override.split(",") if override else HOT_MODULES:
        for path in sorted(glob.glob(os.path.join(HERE, pattern))):
            rel = os.path.relpath(path, HERE)
            if not rel.endswith("__init__.py") and rel not in found:
                found.append(rel)
    return found


def _module_name(rel: str) -> str:
    return rel[: -len(".py")].replace(os.sep, ".")


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _warn(msg: str) -> None:
    print(f"iscsi-analyzer build: {msg}", file=sys.stderr)


class OptionalBuildExt(build_ext):
    """build_ext that cythonizes each hot module on its own and never fails the install.

    A module that does not cythonize or compile is left out (it runs as Python); the manifest lists
    the modules that were built with the SHA-256 of their .py (and .pxd), which _native.py checks.
    """

    def finalize_options(self) -> None:
        # Cythonize before setuptools prepares the extensions (it needs them as they will be built).
        self.distribution.ext_modules = self._cythonize(self.distribution.ext_modules or [])
        super().finalize_options()
        self._ok: list[str] = []

    @staticmethod
    def _cythonize(extensions: list[Extension]) -> list[Extension]:
        if os.environ.get("ISCSI_ANALYZER_NO_COMPILE", "") not in ("", "0"):
            _warn("ISCSI_ANALYZER_NO_COMPILE is set: pure-Python package only")
            return []
        try:
            from Cython.Build import cythonize
        except ImportError:
            _warn("Cython is not installed: pure-Python package only")
            return []
        built: list[Extension] = []
        for ext in extensions:
            try:
                built += cythonize([ext], compiler_directives=DIRECTIVES, quiet=True,
                                   build_dir=os.path.join("build", "cython"))
            except Exception as exc:  # noqa: BLE001  (a Cython error in one module must not fail the install)
                _warn(f"{ext.name}: not compiled ({type(exc).__name__}: {exc}); it runs as Python")
        return built

    def run(self) -> None:
        try:
            super().run()
        finally:
            self._write_manifest({name: self._sources(name) for name in self._ok})

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001  (no compiler, no Python headers, a C error: it stays Python)
            _warn(f"{ext.name}: not compiled ({type(exc).__name__}: {exc}); it runs as Python")
            return
        self._ok.append(ext.name)

    @staticmethod
    def _sources(name: str) -> dict[str, str]:
        base = os.path.join(HERE, *name.split("."))
        sources = {}
        for suffix in (".py", ".pxd"):
            if os.path.isfile(base + suffix):
                sources[os.path.relpath(base + suffix, os.path.join(HERE, "analyzer"))] = _digest(base + suffix)
        return sources

    def _write_manifest(self, modules: dict[str, dict[str, str]]) -> None:
        text = json.dumps({"modules": dict(sorted(modules.items()))}, indent=1, sort_keys=True) + "\n"
        # In place (build_ext --inplace, or pip's editable install) the manifest goes next to the sources.
        inplace = self.inplace or getattr(self, "editable_mode", False)
        targets = [os.path.join(HERE, MANIFEST)] if inplace else []
        if not inplace and self.build_lib:
            targets.append(os.path.join(self.build_lib, MANIFEST))
        for target in targets:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w", encoding="utf-8") as f:
                f.write(text)

    def get_outputs(self) -> list[str]:
        outputs = list(super().get_outputs())
        if not self.inplace and self.build_lib:
            outputs.append(os.path.join(self.build_lib, MANIFEST))
        return outputs


#: no debug info: the generated C is large (the tracker's is ~5 MB) and -g only slows its compile
_CFLAGS = ["-g0"] if os.name == "posix" else []

setup(
    ext_modules=[Extension(_module_name(rel), [rel], extra_compile_args=_CFLAGS) for rel in _hot_sources()],
    cmdclass={"build_ext": OptionalBuildExt},
)
