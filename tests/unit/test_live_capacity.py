"""Live capacity and encapsulation: the default capture filter admits mirrored/encapsulated iSCSI and
compiles, --snaplen cuts only the analysis capture, drop counters are read while the capture runs and
the run loop reports drops and 'behind' as they happen."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from test_live_unit import FakeCapture, RecordingView, _synthetic_pcapng, fast_options

from analyzer.capture.live import (
    DropStats,
    RingSpec,
    capture_argv,
    combine_counts,
    default_filter,
    read_packet_stats,
)
from analyzer.live.engine import LiveAnalyzer, LiveStatus
from analyzer.live.loop import run_live
from analyzer.live.view import drops_text, summary_lines


def test_default_filter_admits_encapsulations_and_extra_vxlan_ports() -> None:
    f = default_filter((3261,), (8472,))
    for clause in ("tcp port 3260", "tcp port 860", "tcp port 3261", "ip proto 47", "ip6 proto 47",
                   "udp dst port 4789", "udp dst port 8472", "ip proto 4", "ip proto 41", "ip6 proto 41",
                   "(ip[6:2] & 0x3fff != 0)", "ip6 proto 44", "ether proto 0x8847", "ether proto 0x8848"):
        assert clause in f
    # pppoes shifts the offsets of everything after it: it must be the last clause
    assert f.endswith("(pppoes and (tcp port 3260 or tcp port 860 or tcp port 3261))")
    assert "udp port 53" not in f and "tcp or" not in f


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("tcpdump"), reason="needs root and tcpdump")
def test_default_filter_compiles_and_cuts_unrelated_traffic() -> None:
    f = default_filter((), (8472,))
    for iface in ("lo", "any"):
        out = subprocess.run(["tcpdump", "-i", iface, "-d", f], capture_output=True, text=True, timeout=20, check=False)
        assert out.returncode == 0, out.stderr
        assert "ret      #0" in out.stdout  # some packets are rejected: not an accept-all program
    if shutil.which("dumpcap"):
        out = subprocess.run(["dumpcap", "-i", "lo", "-d", "-f", f], capture_output=True, text=True, timeout=20, check=False)
        assert out.returncode == 0, out.stderr


def test_snaplen_applies_to_the_analysis_capture_only(tmp_path: Path) -> None:
    main = capture_argv("dumpcap", "eth0", "tcp", snaplen=256)
    assert main[main.index("-s") + 1] == "256"
    ring = capture_argv("dumpcap", "eth0", "tcp", to_stdout=False, ring=RingSpec(tmp_path), snaplen=256)
    assert ring[ring.index("-s") + 1] == "0"
    td = capture_argv("tcpdump", "eth0", "tcp", snaplen=128)
    assert td[td.index("-s") + 1] == "128"
    assert capture_argv("dumpcap", "eth0", "tcp")[4:6] == ["-s", "0"]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("dumpcap"), reason="needs root and dumpcap")
def test_kernel_packet_counters_of_a_running_dumpcap() -> None:
    proc = subprocess.Popen(["dumpcap", "-q", "-i", "lo", "-f", "udp port 9", "-w", "/dev/null"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        got = None
        deadline = time.monotonic() + 10
        while got is None and time.monotonic() < deadline:
            time.sleep(0.2)
            got = read_packet_stats(proc.pid)
        assert got is not None, "could not read the packet-socket counters of dumpcap"
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(5):
                s.sendto(b"x", ("127.0.0.1", 9))
        time.sleep(0.3)
        again = read_packet_stats(proc.pid)
        assert again is not None and again[0] >= 5 and again[1] == 0
        after = read_packet_stats(proc.pid)  # reading resets the kernel's counters
        assert after is not None and after[0] < again[0]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert read_packet_stats(proc.pid) is None


class DroppingCapture(FakeCapture):
    """A capture whose kernel counters grow by 7 dropped packets per poll."""

    snaplen = 0

    def __init__(self, data: bytes, **kw: Any) -> None:
        super().__init__(data, **kw)
        self.polls = 0

    def poll_stats(self) -> DropStats:
        self.polls += 1
        return DropStats(100 * self.polls, 7 * self.polls, 0, None, "kernel packet-socket counters", False)

    def stop(self) -> DropStats:
        super().stop()
        return DropStats(100 * self.polls, 7 * self.polls, 0, None, "fake at exit", True)


def test_run_live_reports_drops_while_running_and_says_behind() -> None:
    data, _ = _synthetic_pcapng()
    cap = DroppingCapture(data, hold_open=True)
    view = RecordingView()
    engine = LiveAnalyzer(fast_options(drop_poll_s=0.05))
    run_live(cap, engine, view, duration=0.6, install_signals=False)
    running = [u for u in view.updates if u.drops.get("dropped")]
    assert running, "no status with running drop counts"
    st = running[-1]
    assert not st.drops["final"] and st.drops["source"] == "kernel packet-socket counters"
    assert st.behind and st.drops_new == 7
    assert "dropped" in drops_text(st) and "so far" in drops_text(st)
    line = summary_lines(st)[0]
    assert "behind: yes" in line
    assert any("dropping packets" in m and "--snaplen" in m for m in view.messages)
    d = st.as_dict()
    assert d["behind"] is True and d["drops"]["dropped"] >= 7 and d["drops_new"] == 7
    assert view.closed is not None and view.closed.drops["final"]


def test_behind_when_the_pipe_fills() -> None:
    st = LiveStatus(backlog=900_000, pipe_size=1 << 20, behind=True, snaplen=256)
    line = summary_lines(st)[0]
    assert "behind: yes" in line and "snaplen 256" in line


def test_final_counts_add_what_was_polled_while_running() -> None:
    # dumpcap at exit: 500 delivered, 3 dropped since the last poll; polls took 1000 (lo: 2 copies) / 7
    assert combine_counts("dumpcap", 500, 3, (1000, 7)) == (510, 10)
    # tcpdump: "received by filter" is the kernel's counter too
    assert combine_counts("tcpdump", 40, 1, (100, 2)) == (140, 3)
    assert combine_counts("dumpcap", None, None, (5, 1)) == (None, None)
