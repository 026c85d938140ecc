#!/usr/bin/env bash
# Idempotent setup: system packages (Debian) and the project's virtual environment .venv.
# Usage: scripts/setup.sh [test]   everything the test suite needs (lab tools, tshark, Chromium, test extras)
#        scripts/setup.sh demo     only what `make demo` needs (python3-venv and the package)
#        SKIP_APT=1 scripts/setup.sh ...   Python side only
# A .venv left broken by an interrupted or failed run (no interpreter, no pip) is detected and rebuilt.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

mode=${1:-test}
case "$mode" in
  demo) APT_PACKAGES=(); EXTRAS="" ;;
  test) APT_PACKAGES=(tgt libiscsi-bin tcpdump tshark wireshark-common iptables iproute2 ethtool procps util-linux
                      chromium)
        EXTRAS="[test]" ;;
  *) echo "setup: unknown mode '$mode' (use: demo or test)" >&2; exit 2 ;;
esac

PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1; then
  echo "setup: $PY not found: install Python 3.11 or later (apt-get install python3 python3-venv)" >&2
  exit 1
fi
# Stock Debian's python3 has no venv/ensurepip until python3-venv is installed.
if ! "$PY" -c "import ensurepip, venv" >/dev/null 2>&1; then
  APT_PACKAGES=(python3-venv "${APT_PACKAGES[@]}")
fi

if [ "${SKIP_APT:-0}" != 1 ] && [ ${#APT_PACKAGES[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "setup: missing system packages (${missing[*]}); run as root or install them: apt-get install ${missing[*]}" >&2
    else
      echo "setup: installing system packages: ${missing[*]}"
      export DEBIAN_FRONTEND=noninteractive
      # tshark asks whether non-root users may capture; answer no without a prompt.
      echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
      apt-get update -q >/dev/null
      apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    fi
  fi
fi

venv_healthy() {
  [ -f .venv/pyvenv.cfg ] && [ -x .venv/bin/python ] && .venv/bin/python -c "import sys, pip" >/dev/null 2>&1
}

if [ -e .venv ] && ! venv_healthy; then
  echo "setup: .venv is broken (no working interpreter or pip, e.g. after an interrupted setup); rebuilding it"
  rm -rf .venv
fi
if [ ! -e .venv ]; then
  if ! "$PY" -m venv .venv; then
    rm -rf .venv  # never leave a half-made environment behind: the next run starts clean
    echo "setup: could not create .venv with $PY (on Debian: apt-get install python3-venv)" >&2
    exit 1
  fi
fi
stamp=.venv/.installed${EXTRAS:+-test}-$(sha1sum < pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ] && [ ! -f ".venv/.installed-test-${stamp##*-}" ]; then
  # pip's warnings about this machine's optional local indexes are noise; real errors still fail the step.
  .venv/bin/pip install -q -e ".${EXTRAS}" 2> >(grep -v -e "^WARNING: Location" -e "BuildBackendWarning" >&2)
  rm -f .venv/.installed*
  touch "$stamp"
fi
# Byte-compile the package as a regular pip install would (the editable install does not, and
# with PYTHONDONTWRITEBYTECODE set every start would recompile every module). Up-to-date files are skipped.
.venv/bin/python -m compileall -q analyzer >/dev/null
