"""Capacity of ``iscsi-analyzer live``: random 4 KiB READs at increasing rates, analysis and ring drops.

    (root) .venv/bin/python bench/live_bench.py [--rates 50mbit,100mbit,250mbit,500mbit,1gbit,max]
                                               [--seconds 10] [--snaplen N] [--no-ring] [--json FILE]

For each rate: a lab namespace (``analyzer.lab``: tgtd with a sparse LUN, ``lo`` shaped to the rate with
tbf; ``max`` = unshaped) runs ``iscsi-perf -r -b 8 -m 32`` (random 4 KiB READ(16), 32 in flight) for
``--seconds``, while ``iscsi-analyzer live -i lo --plain --status-interval 1`` (plus ``--ring`` into a
temporary directory, unless ``--no-ring``) captures the namespace's ``lo``. Reported per rate:

* offered Mbit/s and packets: ``lo``'s tx counters over the load window (every frame on ``lo`` once);
* analysed: frames the analysis saw / packets on ``lo`` (the real loss, whatever the counters say);
* analysis drops: the live status line's "dropped N of M" (the kernel's counters of the analysis
  capture, read every second while running) at the end; ``running`` says whether drop counts were
  shown as numbers while the load ran (the point of the hardening: not "counts at exit only");
* ring drops: the ring-buffer dumpcap's counts at exit;
* behind: how many of the 1-second status lines said "behind: yes";
* CPU: seconds of CPU used by the live process (the analysis) and by the dumpcap processes, per
  second of load (1.0 = one core busy), and the machine's load average at the start.

The capacity figure is the highest offered rate with 0 analysis drops. On ``lo`` the kernel's
packet-socket counters see every frame twice (sent and received; libpcap discards the sent copy),
so "received" is about twice "packets" and the drop percentage is of those copies. The
machine is usually shared (load average reported): figures measured under load are lower bounds.
Nothing leaves the namespaces; every process started is ended by pid.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analyzer.lab import initiator as ini
from analyzer.lab.errors import LabError
from analyzer.lab.netns import Namespace, unique_name
from analyzer.lab.preflight import check_prerequisites
from analyzer.lab.procs import ProcessRegistry, wait_until
from analyzer.lab.runner import control_port, signals_raise
from analyzer.lab.target import LunSpec, TargetSpec, Tgtd

IQN = "iqn.2024-01.org.iscsi-analyzer:livebench"
LIVE_ENTRY = "from analyzer.cli.live import live; live(prog_name='iscsi-analyzer live')"
TOOLS = ("ip", "ethtool", "sysctl", "tc", "tgtd", "tgtadm", "dumpcap", "iscsi-perf")
_STATUS = re.compile(r"^live \S+ \((\w+)\) up .*?drops: (.*?); backlog (\d+).*?; behind: (yes|no)", re.MULTILINE)
_DROPPED = re.compile(r"dropped (\d+)(?: of (\d+))?( so far)?")
_RING = re.compile(r"ring dropped (\d+)")
_PIDS = re.compile(r"capturing on \S+ with \w+ \(pid ([\d, ]+)\)")
_CLK = os.sysconf("SC_CLK_TCK")


@dataclass
class RateResult:
    """One rate's measurement."""

    rate: str
    seconds: float = 0.0
    offered_mbit_s: float = 0.0
    packets: int = 0
    packets_s: float = 0.0
    analysis_received: int | None = None
    analysis_dropped: int | None = None
    ring_dropped: int | None = None
    running_drop_lines: int = 0  #: status lines while running that showed drops as numbers
    status_lines: int = 0
    behind_lines: int = 0
    live_cpu: float = 0.0  #: CPU seconds of the analysis per second of load
    dumpcap_cpu: float = 0.0
    load_avg: float = 0.0
    frames: int = 0
    pdus: int = 0  #: iSCSI PDUs the analysis decoded
    incomplete: list[str] = field(default_factory=list)  #: the final status's INCOMPLETE lines
    notes: list[str] = field(default_factory=list)

    @property
    def kept_up(self) -> bool:
        """No analysis drop (a status line may still have said "behind" for a moment: a burst that the
        pipe and the kernel buffer absorbed)."""
        return self.analysis_dropped == 0


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK
    except (OSError, IndexError, ValueError):
        return 0.0


def _lo_counters(ns: Namespace) -> tuple[int, int]:
    out = ns.run(["cat", "/sys/class/net/lo/statistics/tx_bytes", "/sys/class/net/lo/statistics/tx_packets"]).stdout
    b, p = out.split()
    return int(b), int(p)


def parse_status(text: str) -> list[tuple[str, int | None, int | None, bool, int | None, bool]]:
    """(drops text, dropped, received, running, ring dropped, behind) of every status line."""
    out = []
    for m in _STATUS.finditer(text):
        drops = m.group(2)
        d = _DROPPED.search(drops)
        r = _RING.search(drops)
        out.append((drops, int(d.group(1)) if d else None, int(d.group(2)) if d and d.group(2) else None,
                    bool(d and d.group(3)), int(r.group(1)) if r else None, m.group(4) == "yes"))
    return out


def run_rate(ns: Namespace, procs: ProcessRegistry, workdir: Path, rate: str, seconds: float, *,
             ring: bool = True, snaplen: int = 0, tool: str = "dumpcap") -> RateResult:
    """One measurement at ``rate`` (a tc rate such as ``100mbit``, or ``max``)."""
    res = RateResult(rate, load_avg=os.getloadavg()[0])
    if rate == "max":
        ns.run(["tc", "qdisc", "del", "dev", "lo", "root"], check=False)
    else:
        ns.shape(rate, burst="256kb", limit="64mb")
    args = ["-i", "lo", "--plain", "--status-interval", "1", "--tool", tool]
    ring_dir = workdir / f"ring-{rate}"
    if ring:
        args += ["--ring", str(ring_dir), "--ring-size", "50", "--ring-files", "2"]
    if snaplen:
        args += ["--snaplen", str(snaplen)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    live = procs.start(f"live-{rate}", ns.exec_argv([sys.executable, "-c", LIVE_ENTRY, *args]), env=env)
    try:
        if not wait_until(lambda: "capturing on" in live.stdout() or not live.alive(), timeout=30.0):
            raise LabError(f"live did not start: {live.stderr()[-300:]}")
        if not live.alive():
            raise LabError(f"live exited: {live.stderr()[-300:]}")
        m = _PIDS.search(live.stdout())
        tool_pids = [int(x) for x in m.group(1).split(",")] if m else []
        url = ini.lun_url(ini.Portal(), IQN, 1)
        b0, p0 = _lo_counters(ns)
        c0 = _cpu_s(live.pid)
        d0 = sum(_cpu_s(p) for p in tool_pids)
        t0 = time.monotonic()
        perf = procs.start(f"perf-{rate}", ns.exec_argv(ini.perf_argv(url, blocks=8, max_requests=32, random=True,
                                                                      runtime_s=max(1, round(seconds)))))
        procs.wait(perf, timeout=seconds + 60)
        res.seconds = time.monotonic() - t0
        b1, p1 = _lo_counters(ns)
        time.sleep(1.5)  # let the analysis catch up and print a status line after the load
        res.live_cpu = round((_cpu_s(live.pid) - c0) / res.seconds, 2)
        res.dumpcap_cpu = round((sum(_cpu_s(p) for p in tool_pids) - d0) / res.seconds, 2)
        res.offered_mbit_s = round((b1 - b0) * 8 / res.seconds / 1e6, 1)
        res.packets = p1 - p0
        res.packets_s = round(res.packets / res.seconds)
        running = live.stdout()
        procs.stop(live, signal.SIGINT, timeout=120.0)
    finally:
        procs.stop(live, signal.SIGTERM, timeout=10.0)
        shutil.rmtree(ring_dir, ignore_errors=True)
    out = live.stdout()
    lines = parse_status(running)
    res.status_lines = len(lines)
    res.running_drop_lines = sum(1 for x in lines if x[1] is not None and x[3])
    res.behind_lines = sum(1 for x in lines if x[5])
    final = parse_status(out.split("final:", 1)[1]) if "final:" in out else []
    if final:
        _, res.analysis_dropped, res.analysis_received, _, res.ring_dropped, _ = final[0]
        if ring and res.ring_dropped is None:
            res.ring_dropped = 0  # the ring's count is only shown when not zero
    else:
        res.notes.append("no final status line")
    fm = re.search(r"(\d+) frames", out.split("final:", 1)[-1])
    res.frames = int(fm.group(1)) if fm else 0
    pm = re.search(r"(\d+) PDUs", out.split("final:", 1)[-1])
    res.pdus = int(pm.group(1)) if pm else 0
    res.incomplete = re.findall(r"INCOMPLETE: (.*)", out.split("final:", 1)[-1])
    return res


def run_bench(rates: list[str], seconds: float, *, ring: bool = True, snaplen: int = 0, tool: str = "dumpcap",
              log: Any = None) -> list[RateResult]:
    """Every rate in one namespace with one tgtd; returns the measurements."""
    check_prerequisites((*TOOLS, tool))
    workdir = Path(tempfile.mkdtemp(prefix="iscsi-live-bench-"))
    procs = ProcessRegistry(workdir)
    ns = Namespace(unique_name("iscsilivebench"))
    tgtd = Tgtd(ns, procs, workdir, control_port())
    results = []
    with signals_raise():
        try:
            ns.create()
            tgtd.start()
            tgtd.add_target(TargetSpec(1, IQN, luns=(LunSpec(1, 1024),)))
            for rate in rates:
                r = run_rate(ns, procs, workdir, rate, seconds, ring=ring, snaplen=snaplen, tool=tool)
                results.append(r)
                if log is not None:
                    print(row(r), file=log, flush=True)
        finally:
            procs.stop_all(keep=tgtd.proc)
            try:
                tgtd.stop()
                procs.stop_all()
            finally:
                ns.delete()
                shutil.rmtree(workdir, ignore_errors=True)
    return results


HEADER = (f"{'rate':>8} {'Mbit/s':>8} {'packets':>9} {'pkt/s':>7} {'analysed':>8} {'analysis drops':>18} {'ring drops':>10} "
          f"{'behind':>7} {'running':>7} {'CPU live':>8} {'CPU dumpcap':>11} {'load':>5}")


def row(r: RateResult) -> str:
    """One table row."""
    drops = "?" if r.analysis_dropped is None else (
        f"{r.analysis_dropped}" + (f" ({100 * r.analysis_dropped / r.analysis_received:.1f}%)"
                                   if r.analysis_received else ""))
    ring = "-" if r.ring_dropped is None else str(r.ring_dropped)
    analysed = f"{100 * min(r.frames, r.packets) / r.packets:.1f}%" if r.packets else "-"
    return (f"{r.rate:>8} {r.offered_mbit_s:>8.1f} {r.packets:>9} {r.packets_s:>7.0f} {analysed:>8} {drops:>18} {ring:>10} "
            f"{r.behind_lines:>3}/{r.status_lines:<3} {r.running_drop_lines:>7} {r.live_cpu:>8.2f} "
            f"{r.dumpcap_cpu:>11.2f} {r.load_avg:>5.1f}" + (f"  {'; '.join(r.notes)}" if r.notes else ""))


def capacity(results: list[RateResult]) -> RateResult | None:
    """The highest offered rate that kept up (None if none did)."""
    ok = [r for r in results if r.kept_up]
    return max(ok, key=lambda r: r.offered_mbit_s) if ok else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="50mbit,100mbit,250mbit,500mbit,1gbit,max")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--snaplen", type=int, default=0, help="pass --snaplen to live (header-only analysis)")
    ap.add_argument("--no-ring", action="store_true", help="no --ring capture next to the analysis")
    ap.add_argument("--tool", choices=("dumpcap", "tcpdump"), default="dumpcap", help="live --tool")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    a = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("live_bench: needs root (network namespaces, tgtd, dumpcap)", file=sys.stderr)
        return 2
    print(f"live capacity, random 4 KiB READ(16), 32 in flight, {a.seconds:g} s per rate, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
          + (f", snaplen {a.snaplen}" if a.snaplen else "") + f", {a.tool}", flush=True)
    print(HEADER, flush=True)
    try:
        results = run_bench([x.strip() for x in a.rates.split(",") if x.strip()], a.seconds,
                            ring=not a.no_ring, snaplen=a.snaplen, tool=a.tool, log=sys.stdout)
    except LabError as exc:
        print(f"live_bench: {exc}", file=sys.stderr)
        return 2
    cap = capacity(results)
    if cap is None:
        print("capacity: no rate was analysed without drops")
    else:
        print(f"capacity: {cap.offered_mbit_s:.0f} Mbit/s ({cap.packets_s:.0f} packets/s) analysed without drops "
              f"(rate {cap.rate}, load average {cap.load_avg:.1f} on {os.cpu_count()} CPUs)")
    if a.json is not None:
        a.json.write_text(json.dumps([asdict(r) | {"kept_up": r.kept_up} for r in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
