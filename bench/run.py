#!/usr/bin/env python3
"""Benchmark: iscsi-analyzer against tshark on the same captures, in the same run.

Usage: python bench/run.py [--size-mb 300] [--skip-make] [--captures FILE ...]

1. Makes (with the lab, as root) a capture of >= 300 MB of sequential 64 KiB reads at MTU
   1500 and one of random 4 KiB I/O into bench/out/ (git-ignored), unless they exist.
2. Times ``iscsi-analyzer pdus --format csv`` and
   ``tshark -r FILE -Y iscsi -T fields -e frame.number -e iscsi.opcode -e iscsi.initiatortasktag``
   on each, output to /dev/null, and reads each child's own peak RSS with ``os.wait4``.
3. Checks that memory does not grow with capture length: the first quarter of the capture
   (editcap) against the whole.
4. Times ``iscsi-analyzer analyze FILE --out DIR --quiet`` (every table, report.html and
   summary.txt: the command people run) in the same interleaved series, with its own peak RSS,
   and its peak on the first tenth of the capture.

Prints the ratios and writes bench/out/results.json. Targets: ``pdus`` >= 3x faster than
tshark, <= 1/4 of its peak memory, the whole capture peaking within 1.2x of a quarter;
``analyze`` >= 2x faster than tshark (4x on sequential 64 KiB), peak RSS <= 256 MB and the
whole capture within 1.2x of its first tenth.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
VENV_BIN = ROOT / ".venv" / "bin"


def measure(cmd: list[str]) -> tuple[float, int]:
    """Run cmd with stdout to /dev/null; return (wall seconds, peak RSS in KiB of that child)."""
    with open(os.devnull, "wb") as devnull:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=devnull, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed ({proc.returncode}): {err.strip()[-300:]}")
    return wall, usage.ru_maxrss


def best_of(cmd: list[str], runs: int) -> tuple[float, int]:
    results = [measure(cmd) for _ in range(runs)]
    return min(r[0] for r in results), max(r[1] for r in results)


def best_of_interleaved(cmds: list[list[str]], runs: int) -> list[tuple[float, int]]:
    """Best wall time and peak RSS of each command, the commands taking turns (A B A B ...), so a
    slow spell of a shared machine hits both sides alike instead of one side's whole series."""
    results: list[list[tuple[float, int]]] = [[] for _ in cmds]
    for _ in range(runs):
        for i, cmd in enumerate(cmds):
            results[i].append(measure(cmd))
    return [(min(r[0] for r in rs), max(r[1] for r in rs)) for rs in results]


def ensure_capture(kind: str, size_mb: int) -> Path:
    """The lab's benchmark capture of this kind (bench/out/bench_<kind>_*_<N>mb.pcap), made if missing."""
    def existing() -> Path | None:
        for p in sorted(OUT.glob(f"bench_{kind}_*mb.pcap")):
            if p.stat().st_size >= size_mb * 1024 * 1024 * 0.9 and "_quarter" not in p.name:
                return p
        return None

    found = existing()
    if found is not None:
        return found
    OUT.mkdir(parents=True, exist_ok=True)
    exe = VENV_BIN / "iscsi-analyzer"
    cmd = [str(exe), "lab", "bench", "--kind", kind, "--size-mb", str(size_mb), "--out", str(OUT)]
    print(f"bench: making {kind} capture of {size_mb} MB with the lab ...", flush=True)
    subprocess.run(cmd, check=True)
    found = existing()
    if found is None:
        raise SystemExit(f"bench: the lab did not write a {kind} capture into {OUT}")
    return found


def part_of(path: Path, divisor: int = 4, name: str = "quarter") -> Path:
    """The first 1/divisor of the capture's frames (editcap), next to it."""
    frames = int(subprocess.run(["capinfos", "-c", "-M", str(path)], capture_output=True, text=True,
                                check=True).stdout.split()[-1])
    q = path.with_name(f"{path.stem}_{name}.pcap")
    if not q.exists():
        subprocess.run(["editcap", "-r", str(path), str(q), f"1-{max(1, frames // divisor)}"], check=True)
    return q


def quarter_of(path: Path) -> Path:
    return part_of(path, 4, "quarter")


def analyzer_cmd() -> list[str]:
    """The CLI: the venv's console script when there is one, else this interpreter's ``-m analyzer``."""
    exe = VENV_BIN / "iscsi-analyzer"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "analyzer"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=300)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--captures", nargs="*", type=Path, help="use these captures instead of making them")
    args = ap.parse_args()
    for tool in ("tshark", "editcap", "capinfos"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} not found (apt-get install tshark)", file=sys.stderr)
            return 2
    captures = args.captures or [ensure_capture("seq", args.size_mb), ensure_capture("rand", args.size_mb)]
    ours_cmd = [*analyzer_cmd(), "pdus", "--format", "csv"]
    python = VENV_BIN / "python"
    # Byte-compile the package as ``pip install`` does (an editable install, or a machine with
    # PYTHONDONTWRITEBYTECODE set, would otherwise recompile every module on every start).
    subprocess.run([str(python) if python.exists() else sys.executable, "-m", "compileall", "-q",
                    str(ROOT / "analyzer")], check=True)
    work = Path(tempfile.mkdtemp(prefix="bench-analyze-"))
    results = []
    for cap in captures:
        size = cap.stat().st_size
        tshark_cmd = ["tshark", "-r", str(cap), "-Y", "iscsi", "-T", "fields", "-e", "frame.number",
                      "-e", "iscsi.opcode", "-e", "iscsi.initiatortasktag"]
        analyze_cmd = [*analyzer_cmd(), "analyze", str(cap), "--out", str(work / "report"), "--quiet"]
        (t_ours, m_ours), (t_tshark, m_tshark), (t_an, m_an) = best_of_interleaved(
            [[*ours_cmd, str(cap)], tshark_cmd, analyze_cmd], args.runs)
        q = quarter_of(cap)
        _, m_quarter = best_of([*ours_cmd, str(q)], 1)
        tenth = part_of(cap, 10, "tenth")
        _, m_an_tenth = best_of([*analyzer_cmd(), "analyze", str(tenth), "--out", str(work / "tenth"), "--quiet"], 1)
        r = {
            "capture": cap.name, "size_mb": round(size / 2**20, 1),
            "ours_s": round(t_ours, 2), "tshark_s": round(t_tshark, 2), "speedup": round(t_tshark / t_ours, 2),
            "ours_peak_mb": round(m_ours / 1024, 1), "tshark_peak_mb": round(m_tshark / 1024, 1),
            "memory_ratio": round(m_ours / m_tshark, 3),
            "quarter_peak_mb": round(m_quarter / 1024, 1), "growth_4x": round(m_ours / m_quarter, 3),
            "ours_mb_per_s": round(size / 2**20 / t_ours, 1),
            "analyze_s": round(t_an, 2), "analyze_speedup": round(t_tshark / t_an, 2),
            "analyze_peak_mb": round(m_an / 1024, 1), "analyze_tenth_peak_mb": round(m_an_tenth / 1024, 1),
            "analyze_growth_10x": round(m_an / m_an_tenth, 3),
        }
        results.append(r)
        ok = r["speedup"] >= 3 and r["memory_ratio"] <= 0.25 and r["growth_4x"] <= 1.2
        print(f"{cap.name}: {r['size_mb']} MB  ours {t_ours:.2f}s ({r['ours_mb_per_s']} MB/s)  "
              f"tshark {t_tshark:.2f}s  speed-up {r['speedup']}x  "
              f"peak memory ours {r['ours_peak_mb']} MB / tshark {r['tshark_peak_mb']} MB "
              f"(ratio {r['memory_ratio']})  4x-longer growth {r['growth_4x']}  {'OK' if ok else 'MISSES TARGET'}",
              flush=True)
        want = 4 if "seq" in cap.name else 2
        ok_an = r["analyze_speedup"] >= want and r["analyze_peak_mb"] <= 256 and r["analyze_growth_10x"] <= 1.2
        print(f"{cap.name}: analyze {t_an:.2f}s  speed-up vs tshark {r['analyze_speedup']}x (target {want}x)  "
              f"peak {r['analyze_peak_mb']} MB (first tenth {r['analyze_tenth_peak_mb']} MB, growth "
              f"{r['analyze_growth_10x']})  {'OK' if ok_an else 'MISSES TARGET'}", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
