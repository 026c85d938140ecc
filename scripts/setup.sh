#!/usr/bin/env bash
# One-time, idempotent setup: system packages (Debian) and the project's virtual environment.
# Usage: scripts/setup.sh            (system packages + .venv with the test extras)
#        SKIP_APT=1 scripts/setup.sh (Python side only)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

APT_PACKAGES=(tgt libiscsi-bin tcpdump tshark wireshark-common iptables iproute2 ethtool procps chromium)

if [ "${SKIP_APT:-0}" != 1 ] && command -v apt-get >/dev/null 2>&1; then
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

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  # pip's warnings about this machine's optional local indexes are noise; real errors still fail the step.
  .venv/bin/pip install -q -e ".[test]" 2> >(grep -v -e "^WARNING: Location" -e "BuildBackendWarning" >&2)
  rm -f .venv/.installed-*
  touch "$stamp"
fi
# Byte-compile the package as a regular pip install would (the editable install does not, and
# with PYTHONDONTWRITEBYTECODE set every start would recompile every module). Up-to-date files are skipped.
.venv/bin/python -m compileall -q analyzer >/dev/null
