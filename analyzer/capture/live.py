"""Live capture source: a dumpcap (fallback tcpdump) subprocess writing a capture to a pipe.

This is capture-layer code (house style §1): the only place that runs dumpcap. ``LiveCapture``
starts ``dumpcap -q -i IFACE -s 0 -B MiB -f FILTER -w -`` (pcapng on stdout; dumpcap flushes
the pipe after every packet, so frames reach us within milliseconds) and exposes the pipe as
``stream``, which ``open_capture`` reads incrementally like any other stream. When dumpcap is
not installed, ``tcpdump -U --immediate-mode -w -`` (pcap) takes its place.

Ring buffer (``RingSpec``): a *second* capture process of the same tool writes the ring files
(``dumpcap -b filesize:KB -b files:N -w DIR/live.pcapng``; ``tcpdump -C MB -W N``). We chose a
second process over duplicating the pipe in Python: the ring keeps being written at full speed
even when the analysis falls behind or stops, file rotation stays the tool's job (every file is
a complete capture with its own header), and our read loop stays a plain read. The price: two
kernel capture buffers, so in an overload the ring and the analysis can drop *different*
packets; each process's drop counts are reported separately.

Drop statistics while running: the kernel counts, per packet socket, the packets that passed the
socket's filter and those it dropped because the capture buffer was full (``PACKET_STATISTICS``).
dumpcap has no way to print them while it captures (its ``-S`` mode only prints statistics, it
does not capture), so ``poll_stats`` borrows a copy of each capture process's packet socket
(``pidfd_getfd``, Linux >= 5.6, root or CAP_SYS_PTRACE; only processes started here) and reads
the counters. Reading them resets them (the kernel hands out each count once), and libpcap adds
up what it reads at exit the same way, so the running totals are our sum plus what the tool
prints at exit ("Packets received/dropped on interface ..."): no packet is counted twice or
lost. Where ``pidfd_getfd`` is missing, tcpdump is asked with SIGUSR1 and dumpcap's counts are
known at exit only (the status says so). The interface's own ``rx_dropped`` counter
(``/sys/class/net/IFACE/statistics``) is read as well: it counts packets the NIC/driver dropped
before any capture could see them. The analysis adds its own evidence of loss (TCP gaps).

Degradation above capacity: ``snaplen`` cuts the analysis capture's frames to their first N
bytes (headers: link, IP, TCP and the 48-byte BHS fit in 256), which the pipeline marks as
snaplen gaps; the ring-buffer capture keeps ``-s 0`` so the raw evidence stays complete.

Errors (no such interface, no permission, bad filter, neither tool installed) raise
``LiveCaptureError`` with a one-line message; ``kind`` says which.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final, Self

from analyzer.capture.files import CaptureError

#: The default capture filter: the IANA iSCSI port and the "iscsi-rx" system port (RFC 7143 §13.3 / IANA).
DEFAULT_PORTS: Final = (3260, 860)
#: Seconds to wait for the capture tool to attach to the interface.
START_TIMEOUT: Final = 10.0
#: Seconds to wait for the tool to exit after SIGTERM before SIGKILL.
STOP_TIMEOUT: Final = 5.0
#: Seconds to wait for the tool to exit once its pipe has ended by itself (to read why it ended).
EXIT_WAIT: Final = 3.0

_DUMPCAP_RECV_DROP = re.compile(
    r"Packets received/dropped on interface '[^']*':\s*(\d+)/(\d+)"
    r"(?:\s*\(pcap:(\d+)/dumpcap:(\d+)/flushed:(\d+)(?:/ps_ifdrop:(\d+))?\))?")
_DUMPCAP_CAPTURED = re.compile(r"Packets captured:\s*(\d+)")
_TCPDUMP_CAPTURED = re.compile(r"(\d+) packets? captured")
_TCPDUMP_RECEIVED = re.compile(r"(\d+) packets? received by filter")
_TCPDUMP_DROPPED = re.compile(r"(\d+) packets? dropped by kernel")
_PR_SET_PDEATHSIG: Final = 1
_F_SETPIPE_SZ: Final = getattr(fcntl, "F_SETPIPE_SZ", 1031)
#: Size we ask for the capture pipe.
PIPE_SIZE: Final = 1 << 20


class LiveCaptureError(CaptureError):
    """The live capture cannot run; the message is one line. ``kind``: "interface", "permission",
    "tool", "filter", "ring" or "failed"."""

    def __init__(self, message: str, kind: str = "failed") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class RingSpec:
    """Keep the raw capture in a ring of ``files`` files of ``size_mb`` MB each in ``directory``."""

    directory: Path
    size_mb: int = 100
    files: int = 10


@dataclass(frozen=True)
class DropStats:
    """Capture-loss counters known at some moment (``None``: unknown)."""

    #: packets that passed the capture filter (delivered + dropped). While running these are the kernel's
    #: counts, which on ``lo`` see every frame twice (sent and received; libpcap discards the sent copy)
    received: int | None = None
    dropped: int | None = None  #: packets the kernel dropped because the tool's buffer was full
    if_dropped: int | None = None  #: interface rx_dropped since the capture started (NIC/driver)
    ring_dropped: int | None = None  #: packets the ring-buffer capture process dropped
    source: str = ""  #: where the numbers come from ("dumpcap at exit", "tcpdump SIGUSR1", ...)
    final: bool = False  #: True once the tool has exited (the counts are complete)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready view."""
        return {"received": self.received, "dropped": self.dropped, "if_dropped": self.if_dropped,
                "ring_dropped": self.ring_dropped, "source": self.source, "final": self.final}


#: UDP destination port of VXLAN (RFC 7348 §5).
VXLAN_PORT: Final = 4789


def default_filter(ports: tuple[int, ...] | list[int] = (), vxlan_ports: tuple[int, ...] | list[int] = ()) -> str:
    """The iSCSI ports (``tcp port 3260 or tcp port 860`` + ``ports``) plus what may carry them
    encapsulated, which ``open_capture`` unwraps: GRE/ERSPAN (IP protocol 47), VXLAN (UDP 4789 and
    ``vxlan_ports``), IP-in-IP (4, 41), IPv4 fragments (MF set or a fragment offset) and IPv6
    fragments (next header 44), MPLS (ethertypes 0x8847/0x8848) and PPPoE sessions. Unrelated
    plain TCP/UDP traffic stays out. ``pppoes`` shifts the offsets of everything after it, so it
    comes last; MPLS is matched by ethertype (the label depth is unknown to a BPF program).
    """
    allp = list(dict.fromkeys([*DEFAULT_PORTS, *ports]))
    iscsi = " or ".join(f"tcp port {p}" for p in allp)
    vx = " or ".join(f"udp dst port {p}" for p in dict.fromkeys([VXLAN_PORT, *vxlan_ports]))
    return (f"{iscsi} or ip proto 47 or ip6 proto 47 or {vx} or ip proto 4 or ip proto 41 or ip6 proto 4 "
            f"or ip6 proto 41 or (ip[6:2] & 0x3fff != 0) or ip6 proto 44 or ether proto 0x8847 "
            f"or ether proto 0x8848 or (pppoes and ({iscsi}))")


def find_tool(prefer: str | None = None) -> str:
    """``dumpcap`` if installed, else ``tcpdump``; ``prefer`` forces one. Raises LiveCaptureError."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])  # sudo may drop sbin
    for tool in ([prefer] if prefer else ["dumpcap", "tcpdump"]):
        if shutil.which(tool, path=search):
            return tool
    if prefer:
        raise LiveCaptureError(f"{prefer} not found; install it (apt-get install "
                               f"{'wireshark-common' if prefer == 'dumpcap' else 'tcpdump'})", "tool")
    raise LiveCaptureError("neither dumpcap nor tcpdump found; install one "
                           "(apt-get install wireshark-common, or apt-get install tcpdump)", "tool")


def check_interface(interface: str) -> None:
    """Raise LiveCaptureError unless ``interface`` exists in this network namespace ("any" always does)."""
    if interface == "any" or interface.isdigit():
        return
    try:
        socket.if_nametoindex(interface)
    except OSError:
        try:
            names = sorted(name for _, name in socket.if_nameindex())
        except OSError:
            names = []
        avail = f" (available: {', '.join(names)})" if names else ""
        raise LiveCaptureError(f"no such interface: {interface}{avail}", "interface") from None


def interface_rx_dropped(interface: str) -> int | None:
    """The interface's rx_dropped counter (summed over all interfaces for "any"); None if unknown."""
    base = Path("/sys/class/net")
    names = [p.name for p in base.iterdir()] if interface == "any" and base.is_dir() else [interface]
    total = 0
    found = False
    for name in names:
        try:
            total += int((base / name / "statistics" / "rx_dropped").read_text().strip())
            found = True
        except (OSError, ValueError):
            continue
    return total if found else None


def capture_argv(tool: str, interface: str, bpf: str, *, buffer_mib: int = 32, to_stdout: bool = True,
                 ring: RingSpec | None = None, snaplen: int = 0) -> list[str]:
    """The command line of the capture (``to_stdout``) or of the ring-buffer writer (``ring``).

    ``snaplen`` (0: whole frames) applies to the capture on stdout only; the ring keeps whole frames."""
    snap = str(max(0, snaplen)) if to_stdout else "0"
    if tool == "dumpcap":
        argv = ["dumpcap", "-q", "-i", interface, "-s", snap, "-B", str(max(1, buffer_mib)), "-f", bpf]
        if ring is not None and not to_stdout:
            return [*argv, "-b", f"filesize:{max(1, ring.size_mb) * 1000}", "-b", f"files:{max(2, ring.files)}",
                    "-w", str(ring.directory / "live.pcapng")]
        return [*argv, "-w", "-"]
    if tool == "tcpdump":
        argv = ["tcpdump", "-i", interface, "-s", snap, "-B", str(max(1, buffer_mib) * 1024), "-n",
                "-U", "--immediate-mode"]
        if os.geteuid() == 0:
            argv += ["-Z", "root"]  # keep the rights to write into a root-owned ring directory
        if ring is not None and not to_stdout:
            return [*argv, "-C", str(max(1, ring.size_mb)), "-W", str(max(2, ring.files)),
                    "-w", str(ring.directory / "live.pcap"), bpf]
        return [*argv, "-w", "-", bpf]
    raise ValueError(f"unknown capture tool {tool!r}")


def parse_exit_stats(tool: str, stderr: str) -> tuple[int | None, int | None]:
    """(received, dropped) from the statistics the tool printed (the last ones, if several)."""
    if tool == "dumpcap":
        m = None
        for m in _DUMPCAP_RECV_DROP.finditer(stderr):  # noqa: B007 - the last match is the one wanted
            pass
        if m is not None:
            return int(m.group(1)), int(m.group(2))
        c = _DUMPCAP_CAPTURED.search(stderr)
        return (int(c.group(1)) if c else None), None
    rec = _TCPDUMP_RECEIVED.findall(stderr)
    drop = _TCPDUMP_DROPPED.findall(stderr)
    return (int(rec[-1]) if rec else None), (int(drop[-1]) if drop else None)


def combine_counts(tool: str, received: int | None, dropped: int | None,
                   polled: tuple[int, int]) -> tuple[int | None, int | None]:
    """Final (received, dropped) from the tool's exit counts and what ``poll_stats`` took from the
    kernel while it ran (``polled``; those reads reset the kernel's counters, so the tool's exit
    counts lack them). dumpcap's "received" is its own count of the packets it got (libpcap has
    already discarded lo's sent copies), not the kernel's: the packets that passed the filter are
    those plus the dropped ones. tcpdump's "received by filter" is libpcap's sum of the kernel's
    counter, like ours, so the two add up."""
    if dropped is not None:
        dropped += polled[1]
    if tool == "dumpcap":
        return (received + dropped if received is not None and dropped is not None else received), dropped
    return (received + polled[0] if received is not None else None), dropped


#: What dumpcap ("The network adapter ... is no longer attached") and tcpdump/libpcap ("The interface
#: disappeared", "The interface went down") print when the interface goes away mid-capture.
_VANISHED: Final = ("is no longer attached", "interface disappeared", "interface went down",
                    "device has been removed", "network is down")


def describe_failure(tool: str, interface: str, stderr: str, returncode: int | None) -> LiveCaptureError:
    """One-line error from what the tool printed before it exited."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    text = " ".join(lines)
    low = text.lower()
    if any(m in low for m in _VANISHED):
        return LiveCaptureError(f"the interface {interface} went away during the capture (deleted, unplugged or "
                                "moved to another namespace); the capture stopped there", "vanished")
    if "no such device" in low or "there is no device named" in low or "no such interface" in low:
        return LiveCaptureError(f"no such interface: {interface}", "interface")
    if "permission" in low or "operation not permitted" in low:
        return LiveCaptureError(
            f"no permission to capture on {interface}: run as root, or give {tool} the capabilities "
            f"(setcap cap_net_raw,cap_net_admin=eip $(which {tool}))", "permission")
    if "filter" in low and ("invalid" in low or "syntax" in low or "parse" in low):
        return LiveCaptureError(f"invalid capture filter: {_first_error(tool, lines)}", "filter")
    detail = _first_error(tool, lines) or f"exit status {returncode}"
    return LiveCaptureError(f"{tool} failed on {interface}: {detail}", "failed")


def _first_error(tool: str, lines: list[str]) -> str:
    for ln in lines:
        if ln.startswith(f"{tool}:") and "listening on" not in ln:
            return ln[len(tool) + 1:].strip()
    for ln in lines:
        if not ln.startswith(("Capturing on", "File:", "listening on")):
            return ln
    return ""


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class _PrefixedStream:
    """The capture pipe with the bytes already read while waiting for the start put back in front."""

    def __init__(self, head: bytes, raw: IO[bytes], name: str) -> None:
        self._head = head
        self._raw = raw
        self.name = name

    def read(self, n: int = -1) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head
        try:
            return self._raw.read(n if n > 0 else 1 << 20) or b""
        except ValueError:  # closed under us at stop
            return b""

    @property
    def buffered(self) -> int:
        """Bytes already in hand (a read returns them without touching the pipe)."""
        return len(self._head)

    def fileno(self) -> int:
        """The pipe's descriptor (for select)."""
        return self._raw.fileno()


@dataclass
class _Proc:
    tool: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    stderr_path: Path


class LiveCapture:
    """dumpcap (or tcpdump) capturing ``interface`` into a pipe; ``stream`` is the pipe's read end.

    ``bpf`` replaces the default filter (``default_filter(ports)``). Use as a context manager, or
    ``start()`` / ``stop()``. Only the processes started here are ever signalled (by pid).
    """

    def __init__(self, interface: str, bpf: str | None = None, ports: tuple[int, ...] | list[int] = (),
                 ring: RingSpec | None = None, *, tool: str | None = None, buffer_mib: int = 32,
                 start_timeout: float = START_TIMEOUT, vxlan_ports: tuple[int, ...] | list[int] = (),
                 snaplen: int = 0) -> None:
        self.interface = interface
        self.bpf = bpf if bpf else default_filter(tuple(ports), tuple(vxlan_ports))
        self.snaplen = max(0, snaplen)
        self.ring = ring
        self.buffer_mib = buffer_mib
        self.start_timeout = start_timeout
        self.tool_pref = tool
        self.tool = ""
        self._main: _Proc | None = None
        self._ring: _Proc | None = None
        self._stream: _PrefixedStream | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._if_dropped0: int | None = None
        self._last_poll: DropStats = DropStats()
        #: what poll_stats read from the kernel so far, per process ("capture", "ring"): [received, dropped]
        self._kernel: dict[str, list[int]] = {}
        self._kernel_ok: bool | None = None  #: None until the first try
        self.final_stats: DropStats | None = None
        self.started_at = 0.0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the capture; returns once the tool is capturing. Raises LiveCaptureError."""
        self.tool = find_tool(self.tool_pref)
        check_interface(self.interface)
        if self.ring is not None:
            try:
                self.ring.directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LiveCaptureError(f"cannot create ring directory {self.ring.directory}: "
                                       f"{exc.strerror or exc}", "ring") from None
            if not os.access(self.ring.directory, os.W_OK):
                raise LiveCaptureError(f"ring directory {self.ring.directory} is not writable", "ring")
        self._tmpdir = tempfile.TemporaryDirectory(prefix="iscsi-live-")
        self._if_dropped0 = interface_rx_dropped(self.interface)
        try:
            self._main = self._spawn("capture", capture_argv(self.tool, self.interface, self.bpf,
                                                             buffer_mib=self.buffer_mib, snaplen=self.snaplen))
            _grow_pipe(self._main.popen.stdout)
            head = self._wait_started(self._main)
            assert self._main.popen.stdout is not None
            self._stream = _PrefixedStream(head, self._main.popen.stdout, f"{self.tool}:{self.interface}")
            if self.ring is not None:
                self._ring = self._spawn("ring", capture_argv(self.tool, self.interface, self.bpf,
                                                              buffer_mib=self.buffer_mib, to_stdout=False,
                                                              ring=self.ring), stdout=False)
                self._wait_ring_started(self._ring)
        except BaseException:
            self._terminate_all()
            self._cleanup_tmp()
            raise
        self.started_at = time.monotonic()

    @property
    def stream(self) -> _PrefixedStream:
        """The capture as a readable binary stream (pcapng from dumpcap, pcap from tcpdump)."""
        if self._stream is None:
            raise RuntimeError("LiveCapture.start() was not called")
        return self._stream

    @property
    def pids(self) -> list[int]:
        """Process ids of the capture processes started here."""
        return [p.popen.pid for p in (self._main, self._ring) if p is not None]

    def running(self) -> bool:
        """True while the main capture process runs."""
        return self._main is not None and self._main.popen.poll() is None

    def request_stop(self) -> None:
        """SIGTERM the capture process(es) without waiting (the reader then sees end of file)."""
        for p in (self._main, self._ring):
            if p is not None and p.popen.poll() is None:
                _signal(p.popen.pid, signal.SIGTERM)

    def stop(self, timeout: float = STOP_TIMEOUT) -> DropStats:
        """SIGTERM the capture process(es) we started, wait, and return the final drop counts.

        The pipe is left open: the reader gets the last frames the tool flushed, then end of file.
        Safe to call more than once.
        """
        if self.final_stats is not None:
            return self.final_stats
        main, ring = self._main, self._ring
        for p in (main, ring):
            if p is not None:
                _stop_proc(p, timeout)
        received = dropped = ring_dropped = None
        if main is not None:
            received, dropped = parse_exit_stats(main.tool, _read(main.stderr_path))
        if ring is not None:
            ring_dropped = parse_exit_stats(ring.tool, _read(ring.stderr_path))[1]
        k_main, k_ring = self._kernel.get("capture"), self._kernel.get("ring")
        if k_main is not None and main is not None:
            received, dropped = combine_counts(main.tool, received, dropped, (k_main[0], k_main[1]))
        if k_ring is not None and ring_dropped is not None:
            ring_dropped += k_ring[1]
        source = f"{self.tool} at exit" + (" + kernel counters while running" if self._kernel else "")
        self.final_stats = DropStats(received, dropped, self._if_dropped(), ring_dropped, source, True)
        return self.final_stats

    def close(self) -> None:
        """Stop if needed, close the pipe and remove the temporary stderr files."""
        self.stop()
        if self._main is not None and self._main.popen.stdout is not None:
            self._main.popen.stdout.close()
        self._cleanup_tmp()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ statistics

    def poll_stats(self) -> DropStats:
        """Drop counters now: the kernel's packet-socket counters of the capture processes (see the
        module docstring); without ``pidfd_getfd``, tcpdump is asked with SIGUSR1 and dumpcap only
        reports at exit."""
        if self.final_stats is not None:
            return self.final_stats
        if self._kernel_ok is not False:
            got = self._poll_kernel()
            if got is not None:
                return got
        received = dropped = None
        source = f"{self.tool} (counts at exit only)" if self.tool == "dumpcap" else ""
        main = self._main
        if main is not None and main.tool == "tcpdump" and main.popen.poll() is None:
            _signal(main.popen.pid, signal.SIGUSR1)
            received, dropped = parse_exit_stats("tcpdump", _read(main.stderr_path))
            if received is None:  # the answer comes asynchronously: use the previous one
                received, dropped = self._last_poll.received, self._last_poll.dropped
            source = "tcpdump SIGUSR1"
        self._last_poll = DropStats(received, dropped, self._if_dropped(), None, source, False)
        return self._last_poll

    def exit_message(self) -> str | None:
        """Why the capture process ended by itself (None while running or after a normal stop)."""
        main = self._main
        if main is None or self.final_stats is not None:
            return None
        if main.popen.poll() is None:
            # Called when the pipe reached its end: the tool is exiting (it closed its stdout), give it
            # a moment, or an interface that vanished would look like a normal end.
            try:
                main.popen.wait(timeout=EXIT_WAIT)
            except subprocess.TimeoutExpired:
                return None
        return str(describe_failure(main.tool, self.interface, _read(main.stderr_path), main.popen.returncode))

    def stderr_text(self) -> str:
        """What the main capture process printed on stderr so far."""
        return _read(self._main.stderr_path) if self._main is not None else ""

    def _poll_kernel(self) -> DropStats | None:
        """Add what the kernel counted since the last poll to ``_kernel``; None when not possible."""
        totals: dict[str, tuple[int, int]] = {}
        for name, proc in (("capture", self._main), ("ring", self._ring)):
            if proc is None or proc.popen.poll() is not None:
                continue
            got = read_packet_stats(proc.popen.pid)
            if got is None:
                if self._kernel_ok is None and name == "capture":
                    self._kernel_ok = False
                    return None
                continue
            acc = self._kernel.setdefault(name, [0, 0])
            acc[0] += got[0]
            acc[1] += got[1]
            totals[name] = (acc[0], acc[1])
        if "capture" not in totals and self._kernel_ok is None:
            return None
        self._kernel_ok = True
        main = self._kernel.get("capture", [0, 0])
        ring = self._kernel.get("ring")
        self._last_poll = DropStats(main[0], main[1], self._if_dropped(), ring[1] if ring else None,
                                    "kernel packet-socket counters", False)
        return self._last_poll

    # ------------------------------------------------------------------ internals

    def _if_dropped(self) -> int | None:
        now = interface_rx_dropped(self.interface)
        if now is None or self._if_dropped0 is None:
            return None
        return max(0, now - self._if_dropped0)

    def _spawn(self, name: str, argv: list[str], stdout: bool = True) -> _Proc:
        assert self._tmpdir is not None
        err_path = Path(self._tmpdir.name) / f"{name}.err"
        with open(err_path, "wb") as err:
            try:
                popen = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
                    stderr=err, bufsize=0, start_new_session=True,  # Ctrl-C reaches us, not the tool
                    preexec_fn=_set_pdeathsig)  # noqa: PLW1509 - started before any thread
            except OSError as exc:
                raise LiveCaptureError(f"cannot start {argv[0]}: {exc.strerror or exc}", "tool") from None
        proc = _Proc(argv[0], argv, popen, err_path)
        if name == "capture":
            self._main = proc
        else:
            self._ring = proc
        return proc

    def _wait_started(self, proc: _Proc) -> bytes:
        """Wait for the first bytes on the pipe (dumpcap writes its header once capturing) or, for
        tcpdump (whose header comes with the first packet), for "listening on"."""
        assert proc.popen.stdout is not None
        fd = proc.popen.stdout.fileno()
        deadline = time.monotonic() + self.start_timeout
        while True:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                data = os.read(fd, 1 << 16)
                if data:
                    return data
            if proc.popen.poll() is not None:
                raise describe_failure(proc.tool, self.interface, _read(proc.stderr_path), proc.popen.returncode)
            if proc.tool == "tcpdump" and "listening on" in _read(proc.stderr_path):
                time.sleep(0.1)
                if proc.popen.poll() is not None:
                    continue
                return b""
            if time.monotonic() > deadline:
                said = _first_error(proc.tool, _read(proc.stderr_path).splitlines()) or "no output"
                raise LiveCaptureError(f"{proc.tool} did not start capturing on {self.interface} within "
                                       f"{self.start_timeout:g} s: {said}")

    def _wait_ring_started(self, proc: _Proc) -> None:
        marker = "Capturing on" if proc.tool == "dumpcap" else "listening on"
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                err = describe_failure(proc.tool, self.interface, _read(proc.stderr_path), proc.popen.returncode)
                raise LiveCaptureError(f"ring buffer capture failed: {err}", "ring")
            if marker in _read(proc.stderr_path):
                time.sleep(0.2)  # the error, if any, follows the marker at once
                if proc.popen.poll() is None:
                    return
                continue
            time.sleep(0.05)
        raise LiveCaptureError(f"ring buffer capture did not start within {self.start_timeout:g} s", "ring")

    def _terminate_all(self) -> None:
        for p in (self._ring, self._main):
            if p is not None:
                _stop_proc(p, 2.0)

    def _cleanup_tmp(self) -> None:
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None


_SYS_PIDFD_GETFD: Final = 438  # the same number on every Linux architecture (unified syscall table)
_SOL_PACKET: Final = 263
_PACKET_STATISTICS: Final = 6


def _packet_inodes(pid: int) -> set[str]:
    """Socket inodes of the packet sockets in ``pid``'s network namespace (/proc/PID/net/packet)."""
    try:
        lines = Path(f"/proc/{pid}/net/packet").read_text().splitlines()[1:]
    except OSError:
        return set()
    return {ln.split()[-1] for ln in lines if ln.split()}


def read_packet_stats(pid: int) -> tuple[int, int] | None:
    """(received, dropped) the kernel counted on ``pid``'s packet sockets since they were last read
    (``PACKET_STATISTICS``; reading resets the counters). None when the sockets cannot be reached
    (no ``pidfd_getfd``, no permission, the process is gone)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pidfd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        return None
    try:
        inodes = _packet_inodes(pid)
        if not inodes:
            return None
        received = dropped = 0
        found = False
        for entry in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{entry}")
            except OSError:
                continue
            if not (link.startswith("socket:[") and link[8:-1] in inodes):
                continue
            fd = libc.syscall(_SYS_PIDFD_GETFD, pidfd, int(entry), 0)
            if fd < 0:
                return None
            try:
                sock = socket.socket(fileno=fd)
            except OSError:
                os.close(fd)
                continue
            try:
                raw = sock.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, 12)  # tpacket_stats(_v3)
            except OSError:
                continue
            finally:
                sock.close()  # closes our copy only
            packets, drops = int.from_bytes(raw[0:4], sys.byteorder), int.from_bytes(raw[4:8], sys.byteorder)
            received += packets
            dropped += drops
            found = True
        return (received, dropped) if found else None
    except OSError:
        return None
    finally:
        os.close(pidfd)


def _grow_pipe(f: IO[bytes] | None) -> None:
    """Enlarge the pipe to 1 MiB (from 64 KiB): fewer, larger reads, more slack for bursts."""
    if f is None:
        return
    for size in (PIPE_SIZE, _pipe_max_size()):
        try:
            fcntl.fcntl(f.fileno(), _F_SETPIPE_SZ, size)
            return
        except OSError:
            continue


def _pipe_max_size() -> int:
    try:
        return int(Path("/proc/sys/fs/pipe-max-size").read_text().strip())
    except (OSError, ValueError):
        return 65536


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _stop_proc(p: _Proc, timeout: float) -> None:
    if p.popen.poll() is not None:
        return
    _signal(p.popen.pid, signal.SIGTERM)
    try:
        p.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal(p.popen.pid, signal.SIGKILL)
        try:
            p.popen.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            pass
