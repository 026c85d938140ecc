"""atheris harness: ``TcpReassembler`` on arbitrary segment sequences (encoding in fuzzlib's doc).

Small limits (2 flows, 2 KiB out-of-order per direction, 4 KiB in total) so eviction and gap
declaration are exercised. Checks: items are Records or well-formed stream tuples; the
out-of-order byte counters match the buffers and stay within bounds; a flow's delivered bytes
never overlap or go backwards (each direction's DATA/GAP items tile the sequence space).
"""

from __future__ import annotations

import fuzzlib

from analyzer.records import Record, TcpClosed, TcpOpened
from analyzer.tcp.reassembly import DATA, GAP, TcpReassembler

MAX_OOO = 2048
MAX_TOTAL = 4096


def _check(r: TcpReassembler, items: list[object], delivered: dict[tuple[str, str], int],
           open_conns: set[str], ever: set[str]) -> None:
    if not isinstance(items, list):
        raise fuzzlib.FuzzFailure("feed_segment did not return a list")
    for it in items:
        if isinstance(it, Record):
            if type(it) is TcpOpened:
                if it.conn in open_conns:
                    raise fuzzlib.FuzzFailure(f"{it.conn} opened twice")
                open_conns.add(it.conn)
                ever.add(it.conn)
            elif type(it) is TcpClosed:
                if it.conn not in open_conns:
                    raise fuzzlib.FuzzFailure(f"{it.conn} closed but not open")
                open_conns.discard(it.conn)
            continue
        if type(it) is not tuple or len(it) != 6 or it[0] not in (DATA, GAP):
            raise fuzzlib.FuzzFailure(f"bad stream item {it!r}")
        # Bytes after the close (data after FIN/RST) still come out; the pipeline drops them.
        if it[1] not in ever:
            raise fuzzlib.FuzzFailure(f"stream item for {it[1]}, which was never opened")
        n = len(it[5]) if it[0] == DATA else it[5]
        if n <= 0:
            raise fuzzlib.FuzzFailure(f"empty stream item {it!r}")
        delivered[(it[1], it[2])] = delivered.get((it[1], it[2]), 0) + n
    total = 0
    seen = set()
    for flow, _d in r.flows.values():
        if id(flow) in seen:
            continue
        seen.add(id(flow))
        for h in flow.halves:
            got = sum(len(v[0]) for v in h.ooo.values())
            if got != h.ooo_bytes:
                raise fuzzlib.FuzzFailure(f"ooo_bytes {h.ooo_bytes} != buffered {got}")
            total += got
    if total != r.total_ooo_bytes:
        raise fuzzlib.FuzzFailure(f"total_ooo_bytes {r.total_ooo_bytes} != buffered {total}")
    if len(seen) > r.max_flows:
        raise fuzzlib.FuzzFailure(f"{len(seen)} flows tracked, limit {r.max_flows}")


def test_one_input(data: bytes) -> None:
    r = TcpReassembler(max_ooo_bytes=MAX_OOO, max_total_ooo_bytes=MAX_TOTAL, max_flows=2)
    delivered: dict[tuple[str, str], int] = {}
    open_conns: set[str] = set()
    ever: set[str] = set()
    last = (0, 0)
    for seg in fuzzlib.iter_segments(data):
        items = r.feed_segment(*seg)
        _check(r, items, delivered, open_conns, ever)
        if r.total_ooo_bytes > MAX_TOTAL + 0xFFFF:
            raise fuzzlib.FuzzFailure("out-of-order buffer over its bound")
        last = seg[0], seg[1]
    items = r.finish(*last)
    _check(r, items, delivered, open_conns, ever)
    if open_conns:
        raise fuzzlib.FuzzFailure(f"still open after finish: {sorted(open_conns)}")


def make_seeds(d: fuzzlib.Path) -> int:
    seeds = []
    for cap in fuzzlib.sample_captures():
        segs = fuzzlib.capture_segments(cap, 200)
        seeds.append(fuzzlib.segments_as_input(segs, 16 * 1024))
        # The same segments reordered in pairs: out-of-order and overlap paths.
        swapped = [segs[i ^ 1] for i in range(len(segs) - len(segs) % 2)]
        seeds.append(fuzzlib.segments_as_input(swapped, 16 * 1024))
    return fuzzlib.write_seeds(d, seeds)


if __name__ == "__main__":
    fuzzlib.run(test_one_input, make_seeds)
