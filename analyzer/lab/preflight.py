"""Checks that the lab can run here: root, and every external tool it needs.

Each failure is a `LabSetupError` whose message is one line saying what is missing and how to get it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable

from analyzer.lab.errors import LabSetupError

#: Tool -> Debian package that provides it.
TOOL_PACKAGES: dict[str, str] = {
    "ip": "iproute2",
    "tc": "iproute2",
    "ss": "iproute2",
    "ethtool": "ethtool",
    "sysctl": "procps",
    "tgtd": "tgt",
    "tgtadm": "tgt",
    "tcpdump": "tcpdump",
    "dumpcap": "wireshark-common",
    "tshark": "tshark",
    "iptables": "iptables",
    "iscsi-ls": "libiscsi-bin",
    "iscsi-inq": "libiscsi-bin",
    "iscsi-readcapacity16": "libiscsi-bin",
    "iscsi-perf": "libiscsi-bin",
    "iscsi-test-cu": "libiscsi-bin",
}

#: Tools every scenario needs (scenarios add their own, e.g. dumpcap or iptables).
BASE_TOOLS: tuple[str, ...] = (
    "ip", "tc", "ss", "ethtool", "sysctl", "tgtd", "tgtadm", "tcpdump", "tshark",
    "iscsi-ls", "iscsi-inq", "iscsi-readcapacity16", "iscsi-perf", "iscsi-test-cu",
)


def is_root() -> bool:
    """True when running with uid 0 (network namespaces and tgtd need it)."""
    return os.geteuid() == 0


def missing_tools(tools: Iterable[str]) -> list[str]:
    """The tools from `tools` that are not on PATH (also searching /usr/sbin and /sbin)."""
    path = os.environ.get("PATH", "")
    search = os.pathsep.join([path, "/usr/sbin", "/sbin", "/usr/bin"])
    return [t for t in dict.fromkeys(tools) if shutil.which(t, path=search) is None]


def check_prerequisites(tools: Iterable[str] = BASE_TOOLS) -> None:
    """Raise `LabSetupError` (one line) unless we are root and all `tools` are installed."""
    if not is_root():
        raise LabSetupError(
            "the lab must run as root (it creates a network namespace and starts tgtd); "
            "try: sudo iscsi-analyzer lab ..."
        )
    missing = missing_tools(tools)
    if missing:
        packages = sorted({TOOL_PACKAGES.get(t, t) for t in missing})
        raise LabSetupError(
            f"missing tool(s): {', '.join(missing)}; install with: apt-get install {' '.join(packages)}"
        )
