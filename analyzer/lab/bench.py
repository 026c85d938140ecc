"""Large captures for benchmarking the analyzer (`iscsi-analyzer lab bench`).

Sequential 64 KiB, random 4 KiB or sequential 512-byte ("small", at MTU 9000 by default) READ(16)s
with iscsi-perf against a sparse LUN, captured with tcpdump
`-s 0` and a large kernel buffer until the file reaches the requested size. The capture is only useful if
tcpdump kept up, so the kernel drop count is reported (and written next to the capture).
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from analyzer.lab import initiator as ini
from analyzer.lab.capture import Capture, CaptureSpec
from analyzer.lab.errors import LabError
from analyzer.lab.netns import Namespace, unique_name
from analyzer.lab.preflight import check_prerequisites
from analyzer.lab.procs import ProcessRegistry
from analyzer.lab.runner import control_port, signals_raise
from analyzer.lab.target import LunSpec, TargetSpec, Tgtd

log = logging.getLogger(__name__)

BENCH_IQN = "iqn.2024-01.org.iscsi-analyzer:bench"

#: kind -> (blocks of 512 B per READ(16), requests in flight, random)
KINDS: dict[str, tuple[int, int, bool]] = {
    "seq": (128, 8, False),  # 64 KiB sequential
    "rand": (8, 32, True),  # 4 KiB random
    "small": (1, 32, False),  # 512-byte sequential: the per-PDU cost dominates
}

#: kind -> MTU when the caller gives none (small blocks are benchmarked on a jumbo-frame link)
DEFAULT_MTU: dict[str, int] = {"seq": 1500, "rand": 1500, "small": 9000}


@dataclass(frozen=True)
class BenchResult:
    """What one bench capture holds and whether tcpdump kept up."""

    file: str
    kind: str
    io_size_bytes: int
    mtu: int
    size_bytes: int
    seconds: float
    packets_captured: int | None
    packets_received: int | None
    dropped_by_kernel: int | None
    rate_limit: str | None


def bench_file_name(kind: str, size_mb: int, mtu: int) -> str:
    """e.g. `bench_seq_64k_mtu1500_300mb.pcap`."""
    io = {"seq": "64k", "rand": "4k", "small": "512b"}.get(kind, kind)
    return f"bench_{kind}_{io}_mtu{mtu}_{size_mb}mb.pcap"


def run_bench(kind: str, size_mb: int, out_dir: Path, *, mtu: int | None = None, rate: str | None = None,
              buffer_mib: int = 512, max_seconds: float = 600.0) -> BenchResult:
    """Capture at least `size_mb` MiB of `kind` I/O into `out_dir`; return the capture's statistics."""
    if kind not in KINDS:
        raise LabError(f"unknown bench kind {kind!r}; use one of {', '.join(KINDS)}")
    check_prerequisites()
    if mtu is None:
        mtu = DEFAULT_MTU[kind]
    blocks, in_flight, random = KINDS[kind]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / bench_file_name(kind, size_mb, mtu)
    workdir = Path(tempfile.mkdtemp(prefix="iscsilab-bench-"))
    procs = ProcessRegistry(workdir)
    ns = Namespace(unique_name("iscsibench"), mtu=mtu)
    tgtd = Tgtd(ns, procs, workdir, control_port())
    with signals_raise():
        try:
            ns.create()
            if rate:
                ns.shape(rate, burst="256kb", limit="64mb")
            tgtd.start()
            tgtd.add_target(TargetSpec(1, BENCH_IQN, luns=(LunSpec(1, 1024),)))
            cap = Capture(ns, procs, CaptureSpec(path, "tcpdump", "lo", buffer_kib=buffer_mib * 1024,
                                                 packet_buffered=False))
            cap.start()
            url = ini.lun_url(ini.Portal(), BENCH_IQN, 1)
            perf = procs.start("iscsi-perf", ns.exec_argv(ini.perf_argv(url, blocks=blocks, max_requests=in_flight,
                                                                         random=random)))
            t0 = time.monotonic()
            target = size_mb * 1024 * 1024
            while path.stat().st_size < target:
                if not perf.alive():
                    raise LabError(f"iscsi-perf exited early: {perf.stdout()[-300:]}")
                if time.monotonic() - t0 > max_seconds:
                    raise LabError(f"capture reached only {path.stat().st_size} bytes in {max_seconds:g}s")
                time.sleep(0.05)
            seconds = time.monotonic() - t0
            procs.stop(perf, signal.SIGINT, timeout=30.0)
            stats = cap.stop()
            result = BenchResult(path.name, kind, blocks * 512, mtu, path.stat().st_size, round(seconds, 2),
                                 stats.captured, stats.received, stats.dropped, rate)
            path.with_suffix(".json").write_text(json.dumps(asdict(result), indent=2) + "\n")
            return result
        finally:
            procs.stop_all(keep=tgtd.proc)
            try:
                tgtd.stop()
                procs.stop_all()
            finally:
                ns.delete()
                shutil.rmtree(workdir, ignore_errors=True)
