#!/usr/bin/env python3
"""Compiled (Cython) hot path vs pure Python vs tshark, on the same captures in the same run.

Usage: python bench/compiled_vs_pure.py [--runs 3] [--analyze] CAPTURE [CAPTURE ...]

For each capture, times ``iscsi-analyzer pdus --format csv`` compiled and with ISCSI_ANALYZER_PURE=1,
and ``tshark -r F -Y iscsi -T fields -e frame.number -e iscsi.opcode -e iscsi.initiatortasktag``
(output to /dev/null), taking turns (compiled, pure, tshark, compiled, ...) so a slow spell of a shared
machine hits all alike; reports the best wall time of each. ``--analyze`` also times
``analyze --out TMP`` both ways. Checks first that both paths print the same PDU listing.
Make the captures with the lab: ``iscsi-analyzer lab bench --kind seq|rand|small --out /tmp/bench``.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _env(pure: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("ISCSI_ANALYZER_PURE", None)
    if pure:
        env["ISCSI_ANALYZER_PURE"] = "1"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def measure(cmd: list[str], env: dict[str, str], stdout: str = os.devnull) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child)."""
    with open(stdout, "wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise SystemExit(f"bench: {' '.join(cmd)} failed ({code}): {err.strip()[-300:]}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("captures", nargs="+", type=Path)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--analyze", action="store_true", help="also time `analyze` compiled and pure")
    ap.add_argument("--no-tshark", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    args = ap.parse_args()
    py = sys.executable
    status = subprocess.run([py, "-c", "from analyzer import _native; print(_native.describe())"], env=_env(False), capture_output=True, text=True,
                            check=True).stdout.strip()
    print(f"bench: {status}; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    if not status.startswith("hot path: compiled"):
        print("bench: nothing compiled: run `make setup` (or scripts/build_native.sh) first", file=sys.stderr)
        return 2
    tshark = None if args.no_tshark else shutil.which("tshark")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-cvp-") as tmp:
        for cap in args.captures:
            # Same output both ways (the golden tests check the samples; this checks the big capture).
            a, b = Path(tmp) / "compiled.csv", Path(tmp) / "pure.csv"
            pdus = [py, "-m", "analyzer", "pdus", "--format", "csv", str(cap)]
            measure(pdus, _env(False), str(a))
            measure(pdus, _env(True), str(b))
            same = filecmp.cmp(a, b, shallow=False)
            a.unlink()
            b.unlink()
            cmds: dict[str, tuple[list[str], dict[str, str]]] = {
                "pdus compiled": (pdus, _env(False)),
                "pdus pure": (pdus, _env(True)),
            }
            if tshark:
                cmds["tshark"] = ([tshark, "-r", str(cap), "-Y", "iscsi", "-T", "fields", "-e", "frame.number",
                                   "-e", "iscsi.opcode", "-e", "iscsi.initiatortasktag"], dict(os.environ))
            if args.analyze:
                out = str(Path(tmp) / "report")
                analyze = [py, "-m", "analyzer", "analyze", "--out", out, str(cap)]
                cmds["analyze compiled"] = (analyze, _env(False))
                cmds["analyze pure"] = (analyze, _env(True))
            best: dict[str, tuple[float, float]] = {}
            for _ in range(args.runs):
                for name, (cmd, env) in cmds.items():
                    wall, cpu = measure(cmd, env)
                    if name not in best or wall < best[name][0]:
                        best[name] = (wall, cpu)
            row = {"capture": str(cap), "size_bytes": cap.stat().st_size, "same_output": same,
                   "load_average": os.getloadavg()[0], **{k: {"wall_s": round(w, 2), "cpu_s": round(c, 2)}
                                                         for k, (w, c) in best.items()}}
            results.append(row)
            line = [f"{cap.name} ({cap.stat().st_size / 1e6:.0f} MB, same output: {same})"]
            for k, (w, c) in best.items():
                line.append(f"  {k:18} {w:7.2f} s wall  {c:7.2f} s CPU")
            pc, pp = best["pdus compiled"][0], best["pdus pure"][0]
            line.append(f"  compiled speed-up over pure: {pp / pc:.2f}x")
            if "tshark" in best:
                t = best["tshark"][0]
                line.append(f"  vs tshark: pdus compiled {t / pc:.2f}x, pure {t / pp:.2f}x faster")
                if "analyze compiled" in best:
                    line.append(f"  vs tshark: analyze compiled {t / best['analyze compiled'][0]:.2f}x, "
                                f"pure {t / best['analyze pure'][0]:.2f}x faster")
            print("\n".join(line), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"status": status, "results": results}, indent=2) + "\n")
    return 0 if all(r["same_output"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
