"""Micro-benchmark of the capture layer: iter_tcp (read + decode to TCP) vs dpkt's reader.

    .venv/bin/python bench/bench_capture.py                 # synthetic 300 MB pcap in a tmp dir
    .venv/bin/python bench/bench_capture.py FILE [FILE...]  # your captures (pcap/pcapng/.gz)
    .venv/bin/python bench/bench_capture.py --mb 100 --pcapng --no-dpkt

The synthetic capture is Ethernet/IPv4/TCP frames of 1514 bytes (an iSCSI-like 3260 flow).
Reports frames/s and MB/s for: iterating the reader (frames only), iter_tcp (the fused
hot loop, what the pipeline uses), and dpkt.pcap.Reader + dpkt.ethernet.Ethernet decoding.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial

from analyzer.capture import iter_tcp, open_capture


def make_pcap(path: str, megabytes: int, frame_len: int = 1514) -> int:
    """Write a synthetic Ethernet/IPv4/TCP pcap of about ``megabytes`` MB; -> frame count."""
    payload_len = frame_len - 54
    eth = b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\x08\x00"
    frames = (megabytes * 1_000_000) // (frame_len + 16)
    seq = 1000
    chunk: list[bytes] = []
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        body = bytes(range(256)) * (payload_len // 256 + 1)
        body = body[:payload_len]
        for i in range(frames):
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 20 + payload_len, i & 0xFFFF, 0x4000, 64, 6, 0,
                             b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02")
            tcp = struct.pack("!HHIIHHHH", 51000, 3260, seq & 0xFFFFFFFF, 1, 0x5018, 501, 0, 0)
            seq += payload_len
            rec = eth + ip + tcp + body
            chunk.append(struct.pack("<IIII", 1_700_000_000 + i // 100000, i % 1_000_000, len(rec), len(rec)))
            chunk.append(rec)
            if len(chunk) >= 2000:
                f.write(b"".join(chunk))
                chunk.clear()
        f.write(b"".join(chunk))
    return frames


def timed(label: str, fn: Callable[[], int], size: int, repeat: int) -> float:
    """Best of ``repeat`` runs (wall clock; CPU time in brackets)."""
    best = cpu = float("inf")
    n = 0
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        n = fn()
        best = min(best, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    print(f"  {label:<26} {n:>9,} items {best:7.3f} s ({cpu:.3f} cpu) {n / best:>11,.0f} /s "
          f"{size / best / 1e6:7.1f} MB/s")
    return best


def run_frames(path: str) -> int:
    n = 0
    with open_capture(path) as r:
        for _frame in r:
            n += 1
    return n


def run_tcp(path: str) -> int:
    n = 0
    with open_capture(path) as r:
        for (_fno, _ts, _src, _dst, _sp, _dp, _seq, _ack, _fl, _win, _payload) in iter_tcp(r):
            n += 1
    return n


def run_dpkt(path: str) -> int:
    import gzip

    import dpkt

    n = 0
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        reader = dpkt.pcapng.Reader(f) if path.endswith((".pcapng", ".pcapng.gz")) else dpkt.pcap.Reader(f)
        for _ts, buf in reader:
            ip = dpkt.ethernet.Ethernet(buf).data
            if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.tcp.TCP):
                n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*")
    ap.add_argument("--mb", type=int, default=300, help="size of the synthetic capture")
    ap.add_argument("--pcapng", action="store_true", help="also convert the synthetic capture to pcapng")
    ap.add_argument("--no-dpkt", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs")
    ap.add_argument("--tshark", action="store_true", help="also time `tshark -r F -Y iscsi`")
    args = ap.parse_args()
    tmp = None
    files = args.files
    if not files:
        tmp = tempfile.mkdtemp(prefix="bench_capture_")
        path = os.path.join(tmp, "synthetic.pcap")
        t0 = time.perf_counter()
        frames = make_pcap(path, args.mb)
        print(f"wrote {path}: {frames:,} frames, {os.path.getsize(path) / 1e6:.0f} MB "
              f"in {time.perf_counter() - t0:.1f} s")
        files = [path]
        if args.pcapng and shutil.which("editcap"):
            subprocess.run(["editcap", "-F", "pcapng", path, path + "ng"], check=True)
            files.append(path + "ng")
    try:
        for path in files:
            size = os.path.getsize(path)
            print(f"{path} ({size / 1e6:.0f} MB)")
            timed("frames (CaptureReader)", partial(run_frames, path), size, args.repeat)
            timed("iter_tcp (fused loop)", partial(run_tcp, path), size, args.repeat)
            if not args.no_dpkt:
                timed("dpkt Reader + Ethernet", partial(run_dpkt, path), size, 1)
            if args.tshark and shutil.which("tshark"):
                t0 = time.perf_counter()
                subprocess.run(["tshark", "-r", path, "-Y", "iscsi"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, check=False)
                print(f"  {'tshark -Y iscsi':<28} {'':>10}        {time.perf_counter() - t0:7.3f} s")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
