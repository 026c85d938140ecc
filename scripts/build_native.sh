#!/usr/bin/env bash
# Compile the per-packet/per-PDU hot path in place with Cython (setup.py; `make setup` runs this).
# Never fails: without Cython or a C compiler the package runs as pure Python (see analyzer/_native.py).
# ISCSI_ANALYZER_NO_COMPILE=1 skips it; ISCSI_ANALYZER_PURE=1 at run time ignores what was built.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
PY=${PY:-.venv/bin/python}
if [ "${ISCSI_ANALYZER_NO_COMPILE:-0}" != 0 ] && [ -n "${ISCSI_ANALYZER_NO_COMPILE:-}" ]; then
  exit 0
fi
# The build tools (the ones pyproject's [build-system] names), once.
if ! "$PY" -c 'import Cython, setuptools, sys; sys.exit(int(setuptools.__version__.split(".")[0]) < 77)' 2>/dev/null; then
  "$PY" -m pip install -q "setuptools>=77" "Cython>=3.0" 2>/dev/null \
    || { echo "setup: Cython not available: the pure-Python package runs" >&2; exit 0; }
fi
if ! "$PY" setup.py -q build_ext --inplace -j 2 > .venv/build_native.log 2>&1; then
  echo "setup: compiling the hot path failed (see .venv/build_native.log): the pure-Python package runs" >&2
fi
grep "^iscsi-analyzer build:" .venv/build_native.log >&2 || true
exit 0
