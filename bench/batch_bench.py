"""Benchmark ``iscsi-analyzer batch``: 8 pieces of a large capture, one after another vs on Dask.

    .venv/bin/python bench/batch_bench.py [--capture bench/out/bench_rand_4k_mtu1500_300mb.pcap]
                                          [--files 8] [--workers 2]

Uses ``bench/out/bench_seq_*_300mb.pcap`` (else any ``bench_*_300mb.pcap``) when no capture is given (make one, as root, with
``.venv/bin/iscsi-analyzer lab bench --kind seq --size-mb 100 --out bench/out``). The capture is
split with ``editcap -c`` into ``--files`` pieces (dumpcap ring-buffer names). Timed:

* sequential: ``run_analyze()`` of each piece (what ``iscsi-analyzer analyze PIECE --no-html``
  does: analysis + Parquet/CSV report directory), one after another, in this process (no
  stitching);
* batch: ``analyze_many`` on a LocalCluster of ``--workers`` processes (cluster started
  beforehand; its start-up time is printed separately), pieces stitched into one chain.

Prints both times and the speed-up, and checks that the batch's sessions, tasks, transitions
and anomalies have as many rows as ``analyze()`` of the whole capture (``--check``, slow).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--capture")
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--check", action="store_true", help="also analyse the whole capture and compare row counts")
    ap.add_argument("--keep", action="store_true", help="keep the pieces and the dataset")
    args = ap.parse_args()

    from analyzer.api import analyze, run_analyze
    from analyzer.batch import analyze_many, probe_file

    cap = args.capture
    if cap is None:
        found = (sorted(glob.glob(str(REPO / "bench" / "out" / "bench_seq_*_300mb.pcap")))
                 + sorted(glob.glob(str(REPO / "bench" / "out" / "bench_*_300mb.pcap"))))
        if not found:
            print("no bench/out/bench_*_300mb.pcap: make one (as root) with\n"
                  "  .venv/bin/iscsi-analyzer lab bench --kind seq --size-mb 100 --out bench/out", file=sys.stderr)
            return 2
        cap = found[0]
    if shutil.which("editcap") is None:
        print("editcap not found (apt-get install wireshark-common)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="batch_bench_"))
    try:
        info = probe_file(cap)
        frames = info.frames or 0
        per = max(1, math.ceil(frames / args.files))
        pieces_dir = work / "pieces"
        pieces_dir.mkdir()
        subprocess.run(["editcap", "-c", str(per), cap, str(pieces_dir / "bench.pcap")], check=True)
        pieces = sorted(pieces_dir.iterdir())
        size = sum(p.stat().st_size for p in pieces)
        print(f"capture: {cap} ({size / 1e6:,.0f} MB, {frames:,} frames) -> {len(pieces)} pieces of {per:,} frames")
        print(f"cores: {os.cpu_count()}")

        print(f"load average before: {os.getloadavg()[0]:.2f} (other processes on the machine skew both timings)")
        t = time.perf_counter()
        for i, p in enumerate(pieces):
            a, _written = run_analyze(p, work / "seq" / str(i), html=False, summary=False)
            del a
        t_seq = time.perf_counter() - t
        print(f"sequential (analyze each piece, one after another): {t_seq:7.2f} s")

        import logging

        from distributed import Client, LocalCluster

        t = time.perf_counter()
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR)
        client = Client(cluster)
        t_start = time.perf_counter() - t
        try:
            t = time.perf_counter()
            res = analyze_many([pieces_dir], work / "out", client=client, html=False)
            t_batch = time.perf_counter() - t
        finally:
            client.close()
            cluster.close()
        chain = res.chains[0]
        print(f"batch (--workers {args.workers}, stitched into {len(res.chains)} chain): {t_batch:7.2f} s"
              f"   (+ {t_start:.1f} s cluster start-up; {chain.rerun_units}/{chain.units} file streams re-run)")
        speedup = t_seq / t_batch
        print(f"speed-up: {speedup:.2f}x ({t_seq / (t_batch + t_start):.2f}x counting the cluster start-up)")
        result = {"capture": cap, "pieces": len(pieces), "workers": args.workers, "sequential_s": round(t_seq, 2),
                  "batch_s": round(t_batch, 2), "cluster_start_s": round(t_start, 2), "speedup": round(speedup, 2)}
        if args.check:
            t = time.perf_counter()
            whole = analyze(cap)
            print(f"whole capture analyze(): {time.perf_counter() - t:7.2f} s")
            for name, n in (("sessions", chain.sessions), ("tasks", chain.tasks), ("anomalies", chain.anomalies)):
                ok = "ok" if n == len(getattr(whole, name)) else "DIFFERENT"
                print(f"  {name}: batch {n}, whole {len(getattr(whole, name))}: {ok}")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        print(json.dumps(result))
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    sys.exit(main())
