"""Shared pieces of the atheris harnesses: input encodings, the "records or clean errors" checks,
and seed corpora built from ``sample_pcaps/``.

Every harness module ``fuzz/fuzz_<target>.py`` defines ``test_one_input(data: bytes) -> None``,
which returns normally for any input the analyzer handles as it should (records, or the one
documented clean error of that layer) and raises ``FuzzFailure`` or lets an unexpected
exception escape otherwise. It imports without atheris, so ``tests/unit/test_fuzz_regressions.py``
replays saved inputs through the same function; ``main()`` runs the fuzzer.

Segment encoding (reassembly and pipeline harnesses), repeated until the input ends::

    b0   flow selector: bits 0-2 flow index (8 flows), bit 3 sent by the "server",
         bit 4 server port is 5000 (not an iSCSI port: exercises Login detection)
    b1   TCP flags
    u32  sequence number (big-endian)      u32 acknowledgement number
    u16  window                            u16 payload length (cut to what is left)
    payload
"""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python fuzz/fuzz_x.py` from anywhere
    sys.path.insert(0, str(REPO))

from analyzer.records import Record

SEG_HEADER = struct.Struct("!BBIIHH")
CLIENT = bytes([10, 7, 0, 1])
SERVER = bytes([10, 7, 0, 2])


class FuzzFailure(AssertionError):
    """An invariant the analyzer promises was broken (not an exception it raised itself)."""


def check_records(items: Any, where: str) -> None:
    """Every stage returns a list of ``Record`` instances, nothing else."""
    if not isinstance(items, list):
        raise FuzzFailure(f"{where} returned {type(items).__name__}, not a list")
    for r in items:
        if not isinstance(r, Record):
            raise FuzzFailure(f"{where} returned a {type(r).__name__}, not a Record")


def iter_segments(data: bytes) -> Iterator[tuple[int, int, bytes, bytes, int, int, int, int, int, int, bytes]]:
    """Decode the segment encoding (module doc) into ``Pipeline.feed_segment`` arguments."""
    pos = 0
    frame = 0
    n = len(data)
    while pos + SEG_HEADER.size <= n:
        sel, flags, seq, ack, window, length = SEG_HEADER.unpack_from(data, pos)
        pos += SEG_HEADER.size
        payload = data[pos:pos + length]
        pos += len(payload)
        frame += 1
        cport = 40000 + (sel & 7)
        sport_srv = 5000 if sel & 0x10 else 3260
        if sel & 0x08:
            yield (frame, frame * 1000, SERVER, CLIENT, sport_srv, cport, seq, ack, flags, window, payload)
        else:
            yield (frame, frame * 1000, CLIENT, SERVER, cport, sport_srv, seq, ack, flags, window, payload)


def encode_segment(sel: int, flags: int, seq: int, ack: int, window: int, payload: bytes) -> bytes:
    payload = payload[:0xFFFF]
    return SEG_HEADER.pack(sel, flags, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, window & 0xFFFF, len(payload)) + payload


# --------------------------------------------------------------------------- seeds


def sample_captures() -> list[Path]:
    """Seed sources: sample_pcaps/ and the shared real captures (when present)."""
    out = sorted((REPO / "sample_pcaps").glob("*.pcap*"))
    for d in (REPO.parent / "shared" / "real_pcaps", Path("/work/shared/real_pcaps")):
        if d.is_dir():
            out += sorted(p for p in d.iterdir() if ".pcap" in p.name)
            break
    return out


def capture_segments(path: Path, limit: int = 400) -> list[tuple[Any, ...]]:
    """The first ``limit`` TCP segments of a capture, payloads copied."""
    from analyzer.capture import CaptureError, iter_tcp, open_capture

    out: list[tuple[Any, ...]] = []
    try:
        reader = open_capture(path)
    except CaptureError:
        return out
    try:
        for seg in iter_tcp(reader):
            out.append(seg[:-1] + (bytes(seg[-1]),))
            if len(out) >= limit:
                break
    finally:
        reader.close()
    return out


def segments_as_input(segs: list[tuple[Any, ...]], max_bytes: int = 64 * 1024) -> bytes:
    """Encode real segments in the harness encoding (flows numbered in order of appearance)."""
    flows: dict[tuple[Any, ...], int] = {}
    out = bytearray()
    for _f, _ts, src, dst, sport, dport, seq, ack, flags, window, payload in segs:
        fwd, rev = (src, sport, dst, dport), (dst, dport, src, sport)
        if rev in flows:
            sel = flows[rev] | 0x08
        else:
            if fwd not in flows:
                flows[fwd] = len(flows) & 7
            sel = flows[fwd]
        if 3260 not in (sport, dport) and 860 not in (sport, dport):
            sel |= 0x10
        out += encode_segment(sel, flags, seq, ack, window, payload)
        if len(out) > max_bytes:
            break
    return bytes(out)


def streams(path: Path, limit_bytes: int = 16 * 1024) -> Iterator[tuple[str, bytes]]:
    """(direction, first bytes of the reassembled stream) for each iSCSI stream of a capture."""
    from analyzer.tcp.reassembly import DATA, TcpReassembler

    r = TcpReassembler()
    bufs: dict[tuple[str, str], bytearray] = {}
    for seg in capture_segments(path, 3000):
        for item in r.feed_segment(*seg):
            if type(item) is tuple and item[0] == DATA:
                buf = bufs.setdefault((item[1], item[2]), bytearray())
                if len(buf) < limit_bytes:
                    buf += bytes(item[5])[:limit_bytes - len(buf)]
    for (_conn, direction), buf in bufs.items():
        yield direction, bytes(buf)


def split_pdus(stream: bytes, digests: bool = False) -> Iterator[bytes]:
    """Cut a stream into PDUs assuming no digests (good enough for seeds)."""
    pos = 0
    while pos + 48 <= len(stream):
        ahs = stream[pos + 4] * 4
        dsl = int.from_bytes(stream[pos + 5:pos + 8], "big")
        total = 48 + ahs + (4 if digests else 0) + dsl + (-dsl & 3) + (4 if digests and dsl else 0)
        yield stream[pos:pos + total]
        pos += total


def write_seeds(target_dir: Path, seeds: list[bytes], max_seeds: int = 300) -> int:
    import hashlib

    target_dir.mkdir(parents=True, exist_ok=True)
    seen = set()
    n = 0
    for s in seeds:
        h = hashlib.sha1(s).hexdigest()
        if h in seen or not s:
            continue
        seen.add(h)
        (target_dir / f"seed-{h[:16]}").write_bytes(s)
        n += 1
        if n >= max_seeds:
            break
    return n


# --------------------------------------------------------------------------- running


def replay_file(fn: Callable[[bytes], None], path: str) -> None:
    with open(path, "rb") as f:
        fn(f.read())


def run(test_one_input: Callable[[bytes], None], make_seeds: Callable[[Path], int] | None = None) -> None:
    """``python fuzz/fuzz_x.py [libFuzzer flags] [corpus dirs]``; ``--make-seeds DIR`` writes seeds;
    ``--replay FILE...`` runs inputs without atheris (prints the exception of each failure)."""
    argv = sys.argv
    if len(argv) >= 3 and argv[1] == "--make-seeds":
        assert make_seeds is not None
        print(f"{make_seeds(Path(argv[2]))} seeds written to {argv[2]}")
        return
    if len(argv) >= 2 and argv[1] == "--replay":
        bad = 0
        for p in argv[2:]:
            try:
                replay_file(test_one_input, p)
            except Exception as e:  # noqa: BLE001 - report and go on
                bad += 1
                print(f"{p}: {type(e).__name__}: {e}")
        sys.exit(1 if bad else 0)
    import atheris

    atheris.instrument_all()
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


def env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default
