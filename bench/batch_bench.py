"""Benchmark ``iscsi-analyzer batch`` against analysing the same files one after another.

    .venv/bin/python bench/batch_bench.py [--runs 3] [--workers 2] [--only a|b]
                                          [--indep-dir bench/out/indep] [--chain-capture PCAP ...]

Two workloads:

(a) 8 independent captures: ``--indep-dir``'s ``*.pcap`` (default ``bench/out/indep``: 4 seq and 4
    rand lab captures of 27-59 MB; made with ``lab bench`` as root when missing). Each is put in a
    directory of its own (a symlink), so no two are chained by time: 8 chains of one file.
(b) one capture split with ``editcap -c`` into 8 ring-buffer files: one chain of 8 files. Default
    captures: ``bench/out/bench_{seq,rand}_*_300mb_quarter.pcap`` (80 MB each; seq is decode-heavy,
    rand 4 KiB I/O is state-heavy).

Baseline ("sequential"): for each file, ``analyze(file)`` then the same seven tables written as
Parquet parts of the same dataset layout (``dataset.write_tables``), one file after another in
this process. Batch: ``analyze_many(..., html=False)`` on a LocalCluster of ``--workers``
processes started (and warmed up: imports) beforehand; its start-up is printed separately.
Runs alternate sequential/batch ``--runs`` times; we print min, median and max of each, the
speed-up of the minima and the range of the per-run ratios. The machine is shared: before each
run the CPUs actually available are measured (``workers`` spinning processes against one; 2.0 on
two idle cores), which bounds the speed-up of that run; read the minima.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

INDEP_KINDS = (("seq", 24), ("seq", 32), ("seq", 40), ("seq", 48), ("rand", 24), ("rand", 32), ("rand", 40),
               ("rand", 48))


def _indep_captures(d: Path) -> list[Path]:
    found = sorted(d.glob("*.pcap"))
    if len(found) >= 8:
        return found[:8]
    if os.geteuid() != 0:
        sys.exit(f"need 8 captures in {d}: make them as root with\n  "
                 + "\n  ".join(f".venv/bin/iscsi-analyzer lab bench --kind {k} --size-mb {s} --out {d}"
                               for k, s in INDEP_KINDS))
    d.mkdir(parents=True, exist_ok=True)
    for k, s in INDEP_KINDS:
        subprocess.run([str(REPO / ".venv" / "bin" / "iscsi-analyzer"), "lab", "bench", "--kind", k, "--size-mb",
                        str(s), "--out", str(d)], check=True)
    return sorted(d.glob("*.pcap"))[:8]


def _sequential(files: list[Path], out: Path) -> float:
    from analyzer.api import analyze
    from analyzer.reports import dataset

    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    for i, f in enumerate(files):
        a = analyze(f)
        dataset.write_tables(a.tables, out, f"f{i}")
        del a
    return time.perf_counter() - t


def _batch(client: Any, inputs: list[Path], out: Path) -> tuple[float, Any]:
    from analyzer.batch.runner import analyze_many

    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    res = analyze_many(inputs, out, client=client, html=False)
    return time.perf_counter() - t, res


_SPIN = "import time\nt = time.perf_counter()\nx = 0\nfor i in range(6_000_000):\n    x += i\nprint(time.perf_counter() - t)\n"


def _capacity(workers: int) -> float:
    """CPUs this benchmark can get right now: ``workers`` CPU-bound processes at once against one
    alone (2.0 on two idle cores; less when the machine's other users keep cores busy). The
    speed-up of ``workers`` processes cannot exceed it."""

    def spin(n: int) -> float:
        procs = [subprocess.Popen([sys.executable, "-c", _SPIN], stdout=subprocess.PIPE, text=True)
                 for _ in range(n)]
        return max(float(p.communicate()[0]) for p in procs)

    one = spin(1)
    many = spin(workers)
    return workers * one / many


def _stats(xs: list[float]) -> str:
    return f"min {min(xs):6.2f} s  median {statistics.median(xs):6.2f} s  max {max(xs):6.2f} s"


def _measure(name: str, client: Any, files: list[Path], inputs: list[Path], work: Path, runs: int,
             workers: int) -> dict[str, Any]:
    size = sum(f.stat().st_size for f in files)
    print(f"\n== ({name}) {len(files)} file(s), {size / 1e6:,.0f} MB")
    seq: list[float] = []
    bat: list[float] = []
    res: Any = None
    caps: list[float] = []
    for r in range(runs):
        load = os.getloadavg()[0]
        cap = _capacity(workers)
        s = _sequential(files, work / "seq")
        b, res = _batch(client, inputs, work / "batch")
        seq.append(s)
        bat.append(b)
        caps.append(cap)
        print(f"  run {r + 1}: sequential {s:6.2f} s, batch {b:6.2f} s  ({s / b:.2f}x; CPUs available to "
              f"{workers} processes: {cap:.2f}; load average {load:.1f})")
    ratios = [s / b for s, b in zip(seq, bat, strict=True)]
    print(f"  sequential: {_stats(seq)}")
    print(f"  batch:      {_stats(bat)}")
    chains = res.chains
    print(f"  batch: {len(chains)} chain(s); files analysed by their chain: "
          f"{sum(c.direct_files for c in chains)}, stitched from decode tasks: "
          f"{sum(len(c.files) - c.direct_files for c in chains)}; streams re-run: "
          f"{sum(c.rerun_units for c in chains)}/{sum(c.units for c in chains)}")
    speedup = min(seq) / min(bat)
    print(f"  speed-up ({name}): {speedup:.2f}x (min/min); per-run ratios {min(ratios):.2f}x .. {max(ratios):.2f}x")
    return {"workload": name, "files": len(files), "mb": round(size / 1e6, 1), "sequential_s": [round(x, 2) for x in seq],
            "batch_s": [round(x, 2) for x in bat], "speedup_min": round(speedup, 2),
            "ratio_range": [round(min(ratios), 2), round(max(ratios), 2)],
            "cpus_available": [round(c, 2) for c in caps]}


def _warm(_x: int = 0) -> int:
    import analyzer.batch
    import analyzer.reports.dataset  # noqa: F401 - imports pandas, pyarrow

    return os.getpid()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--files", type=int, default=8, help="pieces for (b)")
    ap.add_argument("--only", choices=("a", "b"))
    ap.add_argument("--indep-dir", default=str(REPO / "bench" / "out" / "indep"))
    ap.add_argument("--chain-capture", nargs="*", help="captures for (b), each split into --files pieces")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if shutil.which("editcap") is None:
        print("editcap not found (apt-get install wireshark-common)", file=sys.stderr)
        return 2

    from analyzer.batch.inputs import probe_file

    work = Path(tempfile.mkdtemp(prefix="batch_bench_"))
    results: list[dict[str, Any]] = []
    import logging

    from distributed import Client, LocalCluster

    print(f"cores: {os.cpu_count()}, workers: {args.workers}, runs: {args.runs}; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    t = time.perf_counter()
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR)
    client = Client(cluster)
    client.run(_warm)
    print(f"cluster start-up (+ imports on the workers): {time.perf_counter() - t:.1f} s (not in the timings)")
    try:
        _warm()
        if args.only in (None, "a"):
            files = _indep_captures(Path(args.indep_dir))
            inputs = []
            for i, f in enumerate(files):
                d = work / "indep" / f"{i:02d}"
                d.mkdir(parents=True)
                (d / f.name).symlink_to(f.resolve())
                inputs.append(d / f.name)
            results.append(_measure("a: 8 independent captures", client, files, inputs, work, args.runs,
                                    args.workers))
        if args.only in (None, "b"):
            caps = args.chain_capture or (sorted(glob.glob(str(REPO / "bench" / "out" / "bench_seq_*_300mb_quarter.pcap")))
                                          + sorted(glob.glob(str(REPO / "bench" / "out" / "bench_rand_*_300mb_quarter.pcap"))))
            if not caps:
                print("no capture for (b): pass --chain-capture, or make bench/out/bench_*_300mb.pcap (lab bench) "
                      "and cut a quarter of it with editcap -r", file=sys.stderr)
            for k, cap in enumerate(caps):
                frames = probe_file(cap).frames or 0
                per = max(1, math.ceil(frames / args.files))
                d = work / f"ring{k}"
                d.mkdir()
                subprocess.run(["editcap", "-c", str(per), cap, str(d / "ring.pcap")], check=True)
                pieces = sorted(d.iterdir())
                results.append(_measure(f"b: {os.path.basename(cap)} in {len(pieces)} ring files", client, pieces,
                                        [d], work, args.runs, args.workers))
    finally:
        client.close()
        cluster.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    print(json.dumps(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
