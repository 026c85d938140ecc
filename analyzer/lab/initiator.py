"""Command lines for the libiscsi tools (the initiator side of the lab).

libiscsi URLs: `iscsi://[user%password@]host[:port]/<target-iqn>/<lun>[?header_digest=crc32c]`; an IPv6
host is written in brackets. libiscsi only ever offers `DataDigest=None`; the header digest it offers by
default is `None,CRC32C` (iscsi-perf and the other utils), so the target decides.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

#: Initiator name every lab tool uses unless a scenario says otherwise.
DEFAULT_INITIATOR = "iqn.2024-01.org.iscsi-analyzer:lab-initiator"

# "Test: NAME ...passed"; with SCSI logging on, log lines can sit between the name and the outcome.
_TEST_RESULT = re.compile(r"^\s*Test:\s*(\S+)\s*\.\.\.(.*?)(passed|FAILED|skipped|SKIPPED)", re.MULTILINE | re.DOTALL)
_SUITE_LINE = re.compile(r"^Suite:\s*(\S+)", re.MULTILINE)


@dataclass(frozen=True)
class Portal:
    """Where the target listens (inside the namespace)."""

    host: str = "127.0.0.1"
    port: int = 3260

    @property
    def authority(self) -> str:
        """`host:port`, with brackets around an IPv6 host."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def ip_version(self) -> int:
        """4 or 6."""
        return 6 if ":" in self.host else 4


def portal_url(portal: Portal, user: str | None = None, password: str | None = None) -> str:
    """`iscsi://[user%password@]host:port` (for discovery)."""
    cred = ""
    if user is not None:
        cred = f"{user}%{password}@" if password is not None else f"{user}@"
    return f"iscsi://{cred}{portal.authority}"


def lun_url(portal: Portal, iqn: str, lun: int, *, user: str | None = None, password: str | None = None,
            header_digest: str | None = None) -> str:
    """`iscsi://[user%password@]host:port/iqn/lun[?header_digest=...]` for one LUN."""
    url = f"{portal_url(portal, user, password)}/{iqn}/{lun}"
    if header_digest is not None:
        url += f"?header_digest={header_digest}"
    return url


def iscsi_ls_argv(url: str, initiator: str = DEFAULT_INITIATOR, *, show_luns: bool = True) -> list[str]:
    """`iscsi-ls` (SendTargets discovery; with `-s` also logs in to each target to list its LUNs)."""
    return ["iscsi-ls", "-i", initiator, *(["-s"] if show_luns else []), url]


def iscsi_inq_argv(url: str, initiator: str = DEFAULT_INITIATOR, *, evpd: int | None = None,
                   page: int | None = None) -> list[str]:
    """`iscsi-inq` (standard INQUIRY, or a VPD page with `evpd=1, page=N`)."""
    argv = ["iscsi-inq", "-i", initiator]
    if evpd is not None:
        argv += ["-e", str(evpd)]
    if page is not None:
        argv += ["-c", str(page)]
    return [*argv, url]


def readcapacity16_argv(url: str, initiator: str = DEFAULT_INITIATOR) -> list[str]:
    """`iscsi-readcapacity16`."""
    return ["iscsi-readcapacity16", "-i", initiator, url]


def perf_argv(url: str, initiator: str = DEFAULT_INITIATOR, *, blocks: int = 8, max_requests: int = 4,
              random: bool = False, runtime_s: int | None = None, ignore_errors: bool = False,
              max_reconnects: int | None = None) -> list[str]:
    """`iscsi-perf` (READ16 load; `blocks` per request of the LUN's block size, `max_requests` in flight).

    Without `runtime_s` it runs until SIGINT/SIGTERM, then drains and logs out.
    """
    argv = ["iscsi-perf", "-i", initiator, "-b", str(blocks), "-m", str(max_requests)]
    if random:
        argv.append("-r")
    if runtime_s is not None:
        argv += ["-t", str(runtime_s)]
    if ignore_errors:
        argv.append("-n")
    if max_reconnects is not None:
        argv += ["-x", str(max_reconnects)]
    return [*argv, url]


def test_cu_argv(url: str, tests: str, initiator: str = DEFAULT_INITIATOR, *, dataloss: bool = True) -> list[str]:
    """`iscsi-test-cu` running the tests matching `tests` (FAMILY[.SUITE[.TEST]]) in verbose mode."""
    return ["iscsi-test-cu", "-i", initiator, *(["-d"] if dataloss else []), "-v", "-t", tests, url]


@dataclass(frozen=True)
class TestResult:
    """One iscsi-test-cu test and its outcome."""

    name: str
    outcome: str  # "passed" | "failed" | "skipped"


def parse_test_cu_output(text: str) -> list[TestResult]:
    """Parse iscsi-test-cu's verbose output (`Suite: X` / `  Test: Y ...passed`) into results."""
    suites = [(m.start(), m.group(1)) for m in _SUITE_LINE.finditer(text)]
    results: list[TestResult] = []
    for m in _TEST_RESULT.finditer(text):
        suite = next((name for pos, name in reversed(suites) if pos < m.start()), "")
        outcome = {"passed": "passed", "failed": "failed"}.get(m.group(3).lower(), "skipped")
        results.append(TestResult(f"{suite}.{m.group(1)}" if suite else m.group(1), outcome))
    return results



def io_argv(url: str, op: str, initiator: str = DEFAULT_INITIATOR, *, lba: int = 0, blocks: int = 8,
            count: int = 1) -> list[str]:
    """The lab's own libiscsi (ctypes) initiator: `count` READ(10)/WRITE(10) of `blocks` 512 B blocks."""
    return [sys.executable, "-m", "analyzer.lab.libiscsi_io", "--initiator", initiator, url, op,
            "--lba", str(lba), "--blocks", str(blocks), "--count", str(count)]
