"""Packet capture inside the lab namespace with tcpdump (pcap) or dumpcap (pcapng).

The capture is started before any client and stopped with SIGINT (both tools then flush the file and print
their statistics on stderr, which we parse for the kernel drop count).
"""

from __future__ import annotations

import logging
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from analyzer.lab.errors import LabError
from analyzer.lab.netns import Namespace
from analyzer.lab.procs import ProcessRegistry, Started, wait_until

log = logging.getLogger(__name__)

#: Capture filter: only the iSCSI port (both directions, IPv4 and IPv6).
DEFAULT_FILTER = "tcp port 3260"

_TCPDUMP_STATS = {
    "captured": re.compile(r"(\d+) packets? captured"),
    "received": re.compile(r"(\d+) packets? received by filter"),
    "dropped": re.compile(r"(\d+) packets? dropped by kernel"),
}
_DUMPCAP_CAPTURED = re.compile(r"Packets captured:\s*(\d+)")
_DUMPCAP_RECV_DROP = re.compile(r"Packets received/dropped on interface '[^']*':\s*(\d+)/(\d+)")


@dataclass(frozen=True)
class CaptureSpec:
    """What to capture: tool, interface, file, buffer and (for `-i any`) the cooked link type."""

    path: Path
    tool: str = "tcpdump"  # "tcpdump" (pcap) | "dumpcap" (pcapng)
    interface: str = "lo"
    bpf: str = DEFAULT_FILTER
    buffer_kib: int = 32768
    linktype: str | None = None  # tcpdump -y, e.g. "LINUX_SLL2" with interface "any"
    packet_buffered: bool = True  # tcpdump -U --immediate-mode


@dataclass(frozen=True)
class CaptureStats:
    """Counters the capture tool printed when it stopped."""

    captured: int | None
    received: int | None
    dropped: int | None


def capture_argv(spec: CaptureSpec) -> list[str]:
    """The tcpdump or dumpcap command line for `spec` (snaplen 0 = whole frames)."""
    if spec.tool == "tcpdump":
        argv = ["tcpdump", "-i", spec.interface, "-s", "0", "-B", str(spec.buffer_kib), "-n", "-Z", "root"]
        if spec.packet_buffered:
            # -U flushes the file per packet; immediate mode makes libpcap hand over each packet at once, so
            # nothing is left in a half-filled TPACKET_V3 block when SIGINT ends the capture.
            argv += ["-U", "--immediate-mode"]
        if spec.linktype:
            argv += ["-y", spec.linktype]
        return [*argv, "-w", str(spec.path), spec.bpf]
    if spec.tool == "dumpcap":
        # dumpcap -B is in MiB; -q: no packet counter on stderr while running.
        return ["dumpcap", "-q", "-i", spec.interface, "-s", "0", "-B", str(max(1, spec.buffer_kib // 1024)),
                "-f", spec.bpf, "-w", str(spec.path)]
    raise ValueError(f"unknown capture tool {spec.tool!r}")


def parse_capture_stats(tool: str, stderr: str) -> CaptureStats:
    """Parse the final statistics tcpdump or dumpcap print on stderr."""
    if tool == "tcpdump":
        values: dict[str, int | None] = {}
        for key, rx in _TCPDUMP_STATS.items():
            m = rx.search(stderr)
            values[key] = int(m.group(1)) if m else None
        return CaptureStats(values["captured"], values["received"], values["dropped"])
    captured = _DUMPCAP_CAPTURED.search(stderr)
    recv_drop = _DUMPCAP_RECV_DROP.search(stderr)
    return CaptureStats(
        int(captured.group(1)) if captured else None,
        int(recv_drop.group(1)) if recv_drop else None,
        int(recv_drop.group(2)) if recv_drop else None,
    )


class Capture:
    """A running capture; `start()` returns once the tool says it is listening."""

    def __init__(self, ns: Namespace, procs: ProcessRegistry, spec: CaptureSpec) -> None:
        self.ns = ns
        self.procs = procs
        self.spec = spec
        self.proc: Started | None = None
        self.t0: float = 0.0
        self.stats: CaptureStats | None = None

    def start(self) -> None:
        """Start the capture in the namespace and wait until it is attached to the interface."""
        self.spec.path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = self.procs.start(self.spec.tool, self.ns.exec_argv(capture_argv(self.spec)))
        marker = "listening on" if self.spec.tool == "tcpdump" else "Capturing on"
        proc = self.proc
        if not wait_until(lambda: marker in proc.stderr() or not proc.alive(), timeout=10.0):
            raise LabError(f"{self.spec.tool} did not start listening within 10s")
        if not proc.alive():
            raise LabError(f"{self.spec.tool} exited: {proc.stderr().strip()}")
        time.sleep(0.3)  # the socket is bound before the message; give the ring a moment
        self.t0 = time.monotonic()
        log.info("%s pid %d capturing on %s -> %s", self.spec.tool, proc.pid, self.spec.interface, self.spec.path)

    def elapsed(self) -> float:
        """Seconds since the capture started listening (for the manifest's step times)."""
        return round(time.monotonic() - self.t0, 2)

    def stop(self) -> CaptureStats:
        """SIGINT the capture tool (flushes the file), wait for it and return its statistics."""
        if self.proc is None:
            raise LabError("capture was never started")
        time.sleep(1.0)  # let the last segments (FIN/ACK) leave the shaped queue and reach the ring
        self.procs.stop(self.proc, signal.SIGINT, timeout=15.0)
        self.stats = parse_capture_stats(self.spec.tool, self.proc.stderr())
        if not self.spec.path.exists() or self.spec.path.stat().st_size == 0:
            raise LabError(f"{self.spec.tool} wrote no capture file: {self.proc.stderr().strip()}")
        log.info("capture stopped: %s", self.stats)
        return self.stats
